//! The process under measurement, the server or the floor: started with the
//! flags a scenario needs, its address (and the server's metrics address, when
//! asked for) read from what it prints, its CPU time and resident memory read
//! from `/proc`, and killed when dropped (or stopped as an operator would,
//! with SIGTERM, by [`Target::terminate`]). The lines of its log that time
//! something (`took=`) are kept for the scenario to read.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

/// How long a target may take to say where it listens: the server restores
/// the rooms kept at its last stop before it listens.
const START_WITHIN: Duration = Duration::from_secs(120);

/// How long the server may take to exit after SIGTERM: the drain, then the
/// rooms written down.
const EXIT_WITHIN: Duration = Duration::from_secs(120);

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

pub struct Target {
    pub name: &'static str,
    pub addr: SocketAddr,
    /// Where the server serves `GET /metrics`, if started with a metrics
    /// listener ([`Target::watched_server`]).
    pub metrics: Option<SocketAddr>,
    child: Child,
    pid: u32,
    /// The log's lines that time something (they hold `took=`), so far.
    // std Mutex: pushed to by the log's reader, read once it has ended.
    timed: Arc<Mutex<Vec<String>>>,
    /// Reads the log until the target closes it.
    reader: JoinHandle<()>,
}

/// Every limit raised past what a scenario does: the benchmark measures speed,
/// not the limits.
pub const UNLIMITED: &[&str] = &[
    "--max-rooms",
    "100000",
    "--max-members-per-room",
    "100000",
    "--max-connections",
    "100000",
    "--max-connections-per-address",
    "100000",
    "--max-streams-per-address",
    "100000",
    "--max-streams-per-session",
    "1000",
    "--message-rate",
    "1000000/s",
    "--message-burst",
    "1000000",
    "--poll-rate",
    "1000000/s",
    "--poll-burst",
    "1000000",
    "--create-rate",
    "1000000/s",
    "--create-burst",
    "1000000",
    "--join-rate",
    "1000000/s",
    "--join-burst",
    "1000000",
    "--guess-rate",
    "1000000/s",
    "--guess-burst",
    "1000000",
];

impl Target {
    /// The chat server at `binary`, with `args` after the unlimited limits
    /// (HTTPS with `--tls-cert` and `--tls-key`).
    pub async fn server(binary: &PathBuf, args: &[&str]) -> Self {
        Self::start_server(binary, args, false).await
    }

    /// [`Target::server`] with a metrics listener as well, on a port of its
    /// own (`--metrics-bind 127.0.0.1:0`), at [`Target::metrics`].
    pub async fn watched_server(binary: &PathBuf, args: &[&str]) -> Self {
        Self::start_server(binary, args, true).await
    }

    async fn start_server(binary: &PathBuf, args: &[&str], metrics: bool) -> Self {
        let mut command = Command::new(binary);
        // A scenario that restarts the server gives the port to listen on again.
        if !args.contains(&"--bind") {
            command.args(["--bind", "127.0.0.1:0"]);
        }
        // Text lines, whatever the caller's CHAT_LOG_FORMAT: they are read below.
        command
            .args(UNLIMITED)
            .args(args)
            .env("RUST_LOG", "info")
            .env("CHAT_LOG_FORMAT", "text");
        // A measured server keeps nothing in the working directory, unless
        // the scenario gives it a data directory of its own.
        if !args.contains(&"--data-dir") {
            command.arg("--ephemeral");
        }
        // The server logs where it listens, then where its metrics are.
        let mut says = vec!["listening on "];
        if metrics {
            command.args(["--metrics-bind", "127.0.0.1:0"]);
            says.push("metrics on ");
        }
        Self::start("server", command, &says).await
    }

    /// The floor, this same program with `floor`.
    pub async fn floor() -> Self {
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let mut command = Command::new(exe);
        command.arg("floor");
        Self::start("floor", command, &[""]).await
    }

    /// Starts `command` and reads from what it prints an address after each
    /// of `prefixes`, in that order: where it listens, then (if asked) where
    /// its metrics are.
    async fn start(name: &'static str, mut command: Command, prefixes: &[&str]) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start the {name}: {e}"));
        let pid = child.id().expect("a running child");
        // Both say where they listen on stdout (the server in its log).
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let timed = Arc::new(Mutex::new(Vec::new()));
        let mut addrs = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let addr = tokio::time::timeout(START_WITHIN, find_addr(&mut lines, prefix, &timed))
                .await
                .unwrap_or_else(|_| panic!("the {name} did not say where it listens"));
            addrs.push(addr);
        }
        // The rest is drained, so that the child never blocks on a full pipe.
        let kept = Arc::clone(&timed);
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep_if_timed(&kept, line);
            }
        });
        Self {
            name,
            addr: addrs[0],
            metrics: addrs.get(1).copied(),
            child,
            pid,
            timed,
            reader,
        }
    }

    /// Stops the server as an operator would, with SIGTERM, and waits for it
    /// to exit (and its log to end): how long that took, and the lines of its
    /// log that time something (ANSI colours taken out).
    pub async fn terminate(mut self) -> (Duration, Vec<String>) {
        let started = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-s", "TERM", &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s TERM {}: {status}", self.pid);
        let exit = tokio::time::timeout(EXIT_WITHIN, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the {} did not exit within {EXIT_WITHIN:?}", self.name))
            .expect("wait for the target");
        let took = started.elapsed();
        assert!(
            exit.success(),
            "the {} exited with {exit} on SIGTERM",
            self.name
        );
        let _ = (&mut self.reader).await;
        (took, self.timed_lines())
    }

    /// The lines of the log so far that time something (`took=`), ANSI
    /// colours taken out.
    pub fn timed_lines(&self) -> Vec<String> {
        self.timed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// User plus system CPU time so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.pid)
    }

    /// The process id, for what is read of it in `/proc`.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resident memory now, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// User plus system CPU time so far of process `pid`, in seconds (0 once it
/// has gone).
pub fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15; here 11 and 12 (0-based after ')').
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / TICKS_PER_SECOND
}

/// The address on the first line of `lines` that holds `prefix`, right after
/// it: `http://ADDR`, `https://ADDR` or `http://ADDR/metrics` from the server,
/// a bare address from the floor.
async fn find_addr(
    lines: &mut Lines<BufReader<ChildStdout>>,
    prefix: &str,
    timed: &Mutex<Vec<String>>,
) -> SocketAddr {
    while let Ok(Some(line)) = lines.next_line().await {
        let Some(at) = line.find(prefix) else {
            keep_if_timed(timed, line);
            continue;
        };
        let word = line[at + prefix.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default();
        let authority = word.rsplit("://").next().unwrap_or(word);
        let authority = authority.split('/').next().unwrap_or(authority);
        if let Ok(addr) = authority.parse() {
            return addr;
        }
    }
    panic!("ended before saying where it listens");
}

/// Keeps `line` (its ANSI colours taken out) if it times something.
fn keep_if_timed(timed: &Mutex<Vec<String>>, line: String) {
    let line = without_colours(&line);
    if line.contains("took=") {
        timed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
}

/// `line` without its ANSI escape sequences (`ESC [ … letter`): a server
/// built before issue 24 colours its log even into a pipe (`--server PATH`
/// may be one); later ones colour only a terminal.
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coloured_log_line_is_kept_plain_when_it_times_something() {
        let timed = Mutex::new(Vec::new());
        let coloured = "\u{1b}[2m2026-12-06T18:34:16Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m kept 3 rooms \
                        \u{1b}[3mtook\u{1b}[0m\u{1b}[2m=\u{1b}[0m12.5ms";
        keep_if_timed(&timed, coloured.to_owned());
        keep_if_timed(&timed, "listening on http://127.0.0.1:1".to_owned());
        let kept = timed.into_inner().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(
            kept,
            ["2026-12-06T18:34:16Z  INFO kept 3 rooms took=12.5ms"]
        );
    }
}
