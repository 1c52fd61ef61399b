//! history: rooms each holding their full history (`--history H`) of long
//! messages: the resident memory a kept message costs, beside its frame as
//! the server sends it, and whether memory grows while history turns over.
//!
//! Every room has one member, who posts on a keep-alive connection of its
//! own, no stream is open (so no broadcast channel holds an event), and each
//! room's member posts exactly the count asked for, so that every room holds
//! what the figures assume. Resident memory is read after each of four fills:
//!
//! 1. H/2 messages to every room. This is the warm-up: whatever setup freed
//!    (the rooms' creates) is reused here, and the allocator has seen the
//!    pattern of kept frames and freed request buffers before it is measured.
//! 2. H/2 more: every room now holds H. The growth over this fill, divided by
//!    the rooms × H/2 messages it added, is the **memory per kept message**: a
//!    slope between two points that both have the warm-up behind them, so
//!    neither setup nor start-up is in it. (A room's first event is its
//!    creator's join; it leaves history with the room's H-th message, at the
//!    very end of this fill, and freeing it leaves resident memory as it is.)
//! 3. [`SETTLING`] × H more: history turns over again and again, and still
//!    holds rooms × H. Each new frame is allocated before history drops the
//!    oldest, between others, so the allocator's free space fragments, and
//!    resident memory climbs for several turnovers (by a fraction of what
//!    history holds, in steps, at a pace that differs from run to run) before
//!    it levels off. The growth over this fill, per kept message, added to
//!    the slope, is the **memory per kept message once history has turned
//!    over**: what full rooms cost for as long as they live.
//! 4. [`MEASURED`] × H more, history turning over as before. The growth over
//!    this fill, per message posted, is the **memory growth while history
//!    turns over**: about 0, unless a message leaves something behind when
//!    history drops it (then it grows with every message, however long it
//!    runs). Measured right after fill 2 instead, it would be the settling,
//!    a few hundred bytes a message, different every run.
//!
//! Last, one kept message's frame is read as the server sends it: the newest
//! event of the first room, replayed to a stream opened after the one before
//! it (`?after=`), from `id:` to the blank line that ends it.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::Bench;
use crate::parts::{Room, last_id, post_each, rooms};
use crate::target::Target;
use crate::wire::{self, Conn, find};

/// Turnovers of history (fill 3) for resident memory to level off: in runs
/// of 1,000 rooms × 50 messages of 2 KB it did within 8 to 10.
const SETTLING: usize = 10;

/// Turnovers of history (fill 4) over which growth is measured.
const MEASURED: usize = 4;

/// How long the server may take to send a replayed frame.
const FRAME_WITHIN: Duration = Duration::from_secs(10);

pub async fn run(bench: &mut Bench) {
    let s = bench.sizes;
    assert!(
        s.history >= 2,
        "history: a history of 2 or more, to halve it"
    );
    let history = s.history.to_string();
    let target = bench
        .server(&["--history", &history, "--max-message-chars", "10000"])
        .await;
    let all = rooms(&target, &bench.sources, s.history_rooms, 1).await;
    let mut posters = Vec::with_capacity(all.len());
    for room in all {
        let conn = Conn::open(target.addr, bench.sources.next())
            .await
            .expect("connect a poster");
        posters.push((conn, room));
    }
    let (h, padding) = (s.history, s.history_padding);
    let (half, rest) = (h / 2, h - h / 2);
    let posters = post_each(posters, half, padding).await;
    let half_full = resident(&target).await;
    let posters = post_each(posters, rest, padding).await;
    let full = resident(&target).await;
    let posters = post_each(posters, SETTLING * h, padding).await;
    let settled = resident(&target).await;
    let posters = post_each(posters, MEASURED * h, padding).await;
    let turned_over = resident(&target).await;
    let frame = kept_frame(&target, &bench.sources, &posters[0].1).await;
    target.stop().await;
    let (rooms, h) = (s.history_rooms as f64, h as f64);
    let per_kept = (full - half_full) / (rooms * rest as f64);
    let per_kept_settled = per_kept + (settled - full) / (rooms * h);
    let growth = (turned_over - settled) / (rooms * h * MEASURED as f64);
    bench.ours(
        "history",
        [
            ("memory per kept message (bytes)", per_kept),
            ("its frame, as sent (bytes)", frame.len() as f64),
            (
                "memory per kept message once history has turned over (bytes)",
                per_kept_settled,
            ),
            (
                "memory growth while history turns over (bytes per message)",
                growth,
            ),
        ],
    );
}

/// The target's resident memory in bytes, once what it just did has settled.
async fn resident(target: &Target) -> f64 {
    wire::pause(Duration::from_millis(500)).await;
    target.rss_bytes() as f64
}

/// The newest event of `room` (a message its member posted) as the server
/// sends it on a stream: its frame, from `id:` to the blank line that ends it.
async fn kept_frame(target: &Target, sources: &wire::Sources, room: &Room) -> Vec<u8> {
    // A poll from before history's start answers at once with its newest id
    // (as a reset, or after the events).
    let path = room.poll_path(0);
    let answer = wire::once(
        target.addr,
        sources.next(),
        "GET",
        &path,
        room.cookie(0),
        None,
    )
    .await
    .expect("poll");
    assert_eq!(answer.status, 200, "history: poll: {answer:?}");
    let newest = last_id(&answer.body).expect("the poll's last_id");
    let path = format!("{}?after={}", room.stream_path(), newest.saturating_sub(1));
    let stream = wire::open_stream(target.addr, sources.next(), &path, room.cookie(0))
        .await
        .expect("open a stream");
    let frame = tokio::time::timeout(FRAME_WITHIN, first_frame_with_id(stream))
        .await
        .expect("history: the kept message was not replayed in time")
        .expect("history: read the replayed frame");
    let mut messages = 0;
    wire::take_messages(&mut frame.clone(), |_| messages += 1);
    assert!(
        frame.starts_with(format!("id: {newest}\n").as_bytes()) && messages == 1,
        "history: the replayed frame is not the newest message: {:?}",
        String::from_utf8_lossy(&frame)
    );
    frame
}

/// The first frame with an id (`id: ` up to and with the blank line that ends
/// it) of the event stream answered on `stream`, read from its chunked body.
async fn first_frame_with_id(mut stream: TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut body = Vec::new();
    let mut head_done = false;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if !head_done && let Some(end) = find(&raw, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") || !head.contains("transfer-encoding: chunked") {
                return Err(std::io::Error::other(format!("not a chunked 200: {head}")));
            }
            raw.drain(..end + 4);
            head_done = true;
        }
        if head_done {
            dechunk(&mut raw, &mut body)?;
            // Frames end with a blank line; the first with an id is an event's.
            let mut from = 0;
            while let Some(end) = find(&body[from..], b"\n\n") {
                let frame = &body[from..from + end + 2];
                if frame.starts_with(b"id: ") {
                    return Ok(frame.to_vec());
                }
                from += end + 2;
            }
        }
        match stream.read(&mut chunk).await? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => raw.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Moves every whole chunk of `raw` (`SIZE\r\nDATA\r\n`, size in hex) onto
/// the end of `body`; what is left is the start of the next.
fn dechunk(raw: &mut Vec<u8>, body: &mut Vec<u8>) -> std::io::Result<()> {
    while let Some(line_end) = find(raw, b"\r\n") {
        let line = String::from_utf8_lossy(&raw[..line_end]);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| std::io::Error::other(format!("a chunk's size, not {line:?}")))?;
        let data = line_end + 2;
        if raw.len() < data + size + 2 {
            break;
        }
        body.extend_from_slice(&raw[data..data + size]);
        raw.drain(..data + size + 2);
    }
    Ok(())
}
