//! restart: the memory rooms across a restart (SIGTERM, then a start on the
//! same port and data directory): how long the stop takes and how much of it
//! is writing the rooms down, how big their file is, how long the start takes
//! to bring them back, and how soon every stream of a big room is back with
//! nothing missed. It answers "what does an upgrade cost the people chatting".
//!
//! The server gets a temporary `--data-dir` of its own (removed afterwards,
//! whatever happens) instead of the benchmark's usual `--ephemeral`. It is
//! filled through the contract: N rooms (10,000) of one member each, every one
//! posted full (`--history H`, 100, the default) with messages of ~100
//! characters by [`FILLERS`] keep-alive connections; then one room of M
//! members (1,000), every one streaming on a connection of its own, proven
//! by [`EACH_SIDE`] messages that every stream must get.
//!
//! Then the stop: SIGTERM, and the time until the process has exited (the
//! drain, which ends every stream with its `reconnect` frame, and the write),
//! beside the write alone as the server logs it (`kept … took=`). The
//! snapshot's size is read from the data directory before the next start
//! consumes it. Then the start: the time from starting the process to its
//! `listening on` line (the restore included), beside the restore alone as
//! the server logs it (`restored … took=`). As soon as it listens, the room's
//! member 0 posts [`EACH_SIDE`] more messages.
//!
//! Each stream reconnects as a browser's `EventSource` would, with
//! `Last-Event-ID` (the id of the last whole event it got), but every
//! [`RETRY`] instead of the `retry:` hint's second, so that the figure is what
//! the server needs rather than the browser's wait. A stream is back when it
//! has every message posted after the restart; the figure is the time until
//! the last one is, after the restarted server listens and from the SIGTERM.
//! Last, each stream's count must be exactly 2 × [`EACH_SIDE`]: the row of
//! streams that missed or repeated a message reads 0.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::Bench;
use crate::parts::{Room, rooms};
use crate::wire::{self, Conn, Fresh, Sources, Tally, tokio_stop::Stop};

/// Keep-alive connections that fill the rooms' history, each posting to its
/// share of the rooms in turn.
const FILLERS: usize = 64;

/// Messages posted to the big room before the stop, and again after the start.
const EACH_SIDE: usize = 5;

/// How long a stream waits before it tries to connect again.
const RETRY: Duration = Duration::from_millis(100);

/// How long every stream may take to be back after the start.
const BACK_WITHIN: Duration = Duration::from_secs(120);

/// The file the server keeps its rooms in, in its data directory.
const SNAPSHOT: &str = "rooms.snapshot";

pub async fn run(bench: &mut Bench) {
    let s = bench.sizes;
    let dir = TempDir::new();
    let data = dir
        .path()
        .to_str()
        .expect("a UTF-8 temporary path")
        .to_owned();
    let history = s.restart_history.to_string();
    let flags = ["--data-dir", data.as_str(), "--history", history.as_str()];
    let target = bench.server(&flags).await;
    let addr = target.addr;
    let full = rooms(&target, &bench.sources, s.restart_rooms, 1).await;
    fill(
        addr,
        &bench.sources,
        &full,
        s.restart_history,
        s.restart_padding,
    )
    .await;
    let members = s.restart_members;
    let big = rooms(&target, &bench.sources, 1, members).await.remove(0);
    let followers = Followers::start(addr, &bench.sources, &big, members);
    followers
        .wait(|t| t.opened >= members as u64, BACK_WITHIN)
        .await;
    post(addr, &bench.sources, &big, EACH_SIDE).await;
    let before = (members * EACH_SIDE) as u64;
    assert!(
        followers
            .wait(|t| t.deliveries >= before, BACK_WITHIN)
            .await,
        "restart: every stream got the messages before the stop"
    );

    let stopped_at = Instant::now();
    let (exit, said) = target.terminate().await;
    let written = took(&said, "kept ");
    let size = std::fs::metadata(dir.path().join(SNAPSHOT))
        .expect("restart: the snapshot in the data directory")
        .len();

    let bind = addr.to_string();
    let again = [&flags[..], &["--bind", bind.as_str()]].concat();
    let started_at = Instant::now();
    let target = bench.server(&again).await;
    let listening_at = Instant::now();
    let restored = took(&target.timed_lines(), "restored ");
    post(addr, &bench.sources, &big, EACH_SIDE).await;
    let all = 2 * before;
    let back = followers.wait(|t| t.deliveries >= all, BACK_WITHIN).await;
    let back_at = Instant::now();
    let counts = followers.close().await;
    target.stop().await;
    assert!(
        back,
        "restart: the streams were not all back within {BACK_WITHIN:?}"
    );
    let wrong = counts
        .iter()
        .filter(|&&count| count != (2 * EACH_SIDE) as u64)
        .count();
    if wrong > 0 {
        eprintln!(
            "restart: {wrong} of {members} streams did not get each of the {} messages once",
            2 * EACH_SIDE
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    bench.ours(
        "restart",
        [
            ("SIGTERM to exit: drain and write (ms)", ms(exit)),
            ("snapshot write, as logged (ms)", ms(written)),
            ("snapshot file (MiB)", size as f64 / (1024.0 * 1024.0)),
            (
                "start to listening, restore included (ms)",
                ms(listening_at - started_at),
            ),
            ("restore, as logged (ms)", ms(restored)),
            (
                "every stream back with all it missed, after listening (ms)",
                ms(back_at - listening_at),
            ),
            (
                "every stream back with all it missed, from SIGTERM (ms)",
                ms(back_at - stopped_at),
            ),
            ("streams that missed or repeated a message", wrong as f64),
        ],
    );
}

/// A directory of the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("chat-bench-restart-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("restart: make a temporary data directory");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The duration after `took=` on the first of `lines` that holds `what`
/// (tracing writes a `Duration` as `Debug`: `12.3ms`, `1.2s`, `800µs`).
fn took(lines: &[String], what: &str) -> Duration {
    let line = lines
        .iter()
        .find(|line| line.contains(what))
        .unwrap_or_else(|| panic!("restart: no log line with {what:?} and took= in {lines:?}"));
    let word = line
        .split("took=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default();
    let digits = word
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(word.len());
    let (number, unit) = word.split_at(digits);
    let number: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("restart: a duration, not {word:?} in {line}"));
    let seconds = match unit {
        "s" => number,
        "ms" => number / 1e3,
        "µs" | "us" => number / 1e6,
        "ns" => number / 1e9,
        _ => panic!("restart: a duration's unit, not {unit:?} in {line}"),
    };
    Duration::from_secs_f64(seconds)
}

/// Posts `count` messages of `padding` more characters to each of `rooms`
/// as its member 0, over [`FILLERS`] keep-alive connections, each posting to
/// its share of the rooms one after another.
async fn fill(addr: SocketAddr, sources: &Sources, rooms: &[Room], count: usize, padding: usize) {
    let mut fillers = JoinSet::new();
    for first in 0..FILLERS.min(rooms.len()) {
        let share: Vec<Room> = rooms.iter().skip(first).step_by(FILLERS).cloned().collect();
        let from = sources.next();
        fillers.spawn(async move {
            let mut conn = Conn::open(addr, from).await.expect("connect a filler");
            for room in share {
                for _ in 0..count {
                    room.post(&mut conn, padding, "restart: fill").await;
                }
            }
        });
    }
    fillers.join_all().await;
}

/// Posts `count` messages to `room` as its member 0, one after another.
async fn post(addr: SocketAddr, sources: &Arc<Sources>, room: &Room, count: usize) {
    let mut client = Fresh {
        to: addr,
        sources: Arc::clone(sources),
    };
    for _ in 0..count {
        room.post(&mut client, 0, "restart").await;
    }
}

/// What every follower adds to, read as plain numbers.
struct Counts {
    opened: u64,
    deliveries: u64,
}

/// A stream for every member of a room that reconnects whenever it ends,
/// resuming after the last event it got; each counts its own messages.
struct Followers {
    tally: Arc<Tally>,
    stop: Stop,
    tasks: JoinSet<u64>,
}

impl Followers {
    fn start(addr: SocketAddr, sources: &Sources, room: &Room, members: usize) -> Self {
        let (tally, stop) = (Arc::new(Tally::default()), Stop::default());
        let mut tasks = JoinSet::new();
        for member in 0..members {
            let (tally, stop) = (Arc::clone(&tally), stop.clone());
            let (path, cookie) = (room.stream_path(), room.cookie(member).map(str::to_owned));
            let from = sources.next();
            tasks.spawn(follow(addr, from, path, cookie, tally, stop));
        }
        Self { tally, stop, tasks }
    }

    /// Waits until `done` holds of the counts (true), or `within` passed (false).
    async fn wait(&self, done: impl Fn(Counts) -> bool, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let counts = Counts {
                opened: self.tally.opened.load(Ordering::Relaxed),
                deliveries: self.tally.deliveries.load(Ordering::Relaxed),
            };
            if done(counts) {
                return true;
            }
            assert_eq!(
                self.tally.errors.load(Ordering::Relaxed),
                0,
                "restart: a stream was refused"
            );
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops every stream: the messages each one got.
    async fn close(mut self) -> Vec<u64> {
        self.stop.set();
        let mut counts = Vec::new();
        while let Some(done) = self.tasks.join_next().await {
            counts.push(done.expect("a follower"));
        }
        counts
    }
}

/// One member's stream until `stop`, opened again (with `Last-Event-ID`)
/// whenever it ends or cannot connect: the benchmark messages it got.
async fn follow(
    addr: SocketAddr,
    from: IpAddr,
    path: String,
    cookie: Option<String>,
    tally: Arc<Tally>,
    stop: Stop,
) -> u64 {
    let mut resume = Resume::default();
    while !stop.is_set() {
        let last_id = resume.last_id;
        if let Ok(stream) =
            wire::open_stream_after(addr, from, &path, cookie.as_deref(), last_id).await
        {
            resume.read(stream, &tally, &stop).await;
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = stop.wait() => {}
        }
    }
    resume.messages
}

/// Where a stream is: the id of the last whole event it got, and the
/// messages it got, across its connections.
#[derive(Default)]
struct Resume {
    last_id: Option<u64>,
    messages: u64,
}

impl Resume {
    /// Reads one connection's stream until it ends (or `stop`).
    async fn read(&mut self, mut stream: TcpStream, tally: &Tally, stop: &Stop) {
        let (mut head, mut text, mut lines) = (Vec::new(), Vec::new(), Vec::new());
        let mut pending_id = None;
        let mut head_done = false;
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let read = tokio::select! {
                read = stream.read(&mut chunk) => read,
                () = stop.wait() => return,
            };
            let n = match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if head_done {
                text.extend_from_slice(&chunk[..n]);
                lines.extend_from_slice(&chunk[..n]);
            } else {
                head.extend_from_slice(&chunk[..n]);
                let Some(end) = wire::find(&head, b"\r\n\r\n") else {
                    continue;
                };
                if !head.starts_with(b"HTTP/1.1 200") {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                tally.opened.fetch_add(1, Ordering::Relaxed);
                head_done = true;
                let body = head.split_off(end + 4);
                text.extend_from_slice(&body);
                lines.extend_from_slice(&body);
            }
            // The server ended the response: the last chunk (`0`, no trailers).
            let ended = lines.ends_with(b"\r\n0\r\n\r\n") || lines == b"0\r\n\r\n";
            let mut count = 0;
            wire::take_messages(&mut text, |_| count += 1);
            self.messages += count;
            tally.deliveries.fetch_add(count, Ordering::Relaxed);
            self.take_ids(&mut lines, &mut pending_id);
            if ended {
                return;
            }
        }
    }

    /// Reads the whole lines of `buffer`: an `id: N` line is the event's id,
    /// the blank line that ends the event makes it the last one got.
    fn take_ids(&mut self, buffer: &mut Vec<u8>, pending_id: &mut Option<u64>) {
        let mut from = 0;
        while let Some(at) = buffer[from..].iter().position(|&b| b == b'\n') {
            let line = &buffer[from..from + at];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(id) = line.strip_prefix(b"id: ") {
                *pending_id = std::str::from_utf8(id).ok().and_then(|id| id.parse().ok());
            } else if line.is_empty()
                && let Some(id) = pending_id.take()
            {
                self.last_id = Some(id);
            }
            from += at + 1;
        }
        buffer.drain(..from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_duration_is_read_in_its_unit() {
        let lines = |took: &str| vec![format!("INFO restored 3 rooms took={took} bytes=10")];
        assert_eq!(
            took(&lines("1.5s"), "restored "),
            Duration::from_millis(1500)
        );
        assert_eq!(
            took(&lines("12.5ms"), "restored "),
            Duration::from_micros(12_500)
        );
        assert_eq!(
            took(&lines("800µs"), "restored "),
            Duration::from_micros(800)
        );
        assert_eq!(
            took(&lines("900ns"), "restored "),
            Duration::from_nanos(900)
        );
    }

    #[test]
    fn an_event_is_the_last_one_got_only_once_it_is_whole() {
        let mut resume = Resume::default();
        let mut pending = None;
        let mut buffer = b"4a\r\nid: 7\ndata: {}\n\n\r\n4a\r\nid: 8\ndata: {".to_vec();
        resume.take_ids(&mut buffer, &mut pending);
        assert_eq!((resume.last_id, pending), (Some(7), Some(8)));
        buffer.extend_from_slice(b"}\n\n\r\n");
        resume.take_ids(&mut buffer, &mut pending);
        assert_eq!((resume.last_id, pending), (Some(8), None));
        assert!(buffer.is_empty());
    }
}
