//! churn: streams and polls opening and closing all the time (a reload storm)
//! while messages flow, then proof that nothing is left behind: once every
//! client has gone and the room's grace has passed, the server's metrics must
//! show no room, stream or connection more than before any client existed
//! (else the scenario fails), and the rows say so, with the tasks and the
//! resident memory against before.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use super::Bench;
use crate::leftovers::Baseline;
use crate::parts::{Pace, Posters, Room, Streams, prove_streams, rooms};
use crate::wire::{self, Sources};

/// `--grace`, in seconds: long enough that a churner's gap between two opens
/// under load never makes it leave.
const GRACE_SECONDS: u64 = 5;

/// How long the server may take, after the grace, to close what the clients
/// left.
const SETTLE: Duration = Duration::from_secs(20);

pub async fn run(bench: &mut Bench) {
    let s = bench.sizes;
    let grace = GRACE_SECONDS.to_string();
    let target = bench.watched_server(&["--grace", &grace]).await;
    let baseline = Baseline::take(&target, &bench.sources).await;
    let room = rooms(&target, &bench.sources, 1, s.churners + 1)
        .await
        .remove(0);
    let keeper = Streams::open(
        target.addr,
        &bench.sources,
        std::slice::from_ref(&room),
        1,
        false,
    )
    .await;
    prove_streams(
        &target,
        &bench.sources,
        std::slice::from_ref(&room),
        &keeper,
        1,
    )
    .await;
    let poster = Posters::start(
        target.addr,
        &bench.sources,
        vec![(room.clone(), 0)],
        Pace::Together(Duration::from_millis(50)),
        0,
    )
    .await;
    let stop = wire::tokio_stop::Stop::default();
    let opened = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut churners = JoinSet::new();
    for member in 1..=s.churners {
        let (room, stop, opened, failed, sources, addr) = (
            room.clone(),
            stop.clone(),
            Arc::clone(&opened),
            Arc::clone(&failed),
            Arc::clone(&bench.sources),
            target.addr,
        );
        churners.spawn(async move {
            let mut n = 0u64;
            while !stop.is_set() {
                n += 1;
                // Every other turn a poll, else a stream read for a moment.
                let ok = if n.is_multiple_of(2) {
                    poll(addr, &sources, &room, member).await
                } else {
                    glance(addr, &sources, &room, member).await
                };
                let counter = if ok { &opened } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let started = Instant::now();
    wire::pause(s.window * 2).await;
    stop.set();
    while churners.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    let (_, post_errors) = poster.stop().await;
    keeper.close().await;
    // The members' grace and the room's pass; then everything should be gone.
    let within = Duration::from_secs(GRACE_SECONDS) + SETTLE;
    let left = baseline
        .wait_back(&target, &bench.sources, "churn", within)
        .await;
    let present = wire::once(
        target.addr,
        bench.sources.next(),
        "GET",
        "/healthz",
        None,
        None,
    )
    .await;
    target.stop().await;
    assert!(
        present.is_ok_and(|a| a.status == 200),
        "the server still answers"
    );
    let failed = failed.load(Ordering::Relaxed) + post_errors;
    bench.ours(
        "churn",
        [
            (
                "streams and polls opened per second",
                opened.load(Ordering::Relaxed) as f64 / seconds,
            ),
            ("errors", failed as f64),
        ],
    );
    bench.ours("churn", left.rows());
}

/// One poll that answers at once; whether it was answered `200`.
async fn poll(addr: SocketAddr, sources: &Sources, room: &Room, member: usize) -> bool {
    let path = format!("{}&wait=0", room.poll_path(0));
    let answer = wire::once(
        addr,
        sources.next(),
        "GET",
        &path,
        room.cookie(member),
        None,
    )
    .await;
    matches!(answer, Ok(a) if a.status == 200)
}

/// One stream, opened and dropped as soon as its answer's head arrives;
/// whether that was `200`.
async fn glance(addr: SocketAddr, sources: &Sources, room: &Room, member: usize) -> bool {
    let Ok(mut stream) = wire::open_stream(
        addr,
        sources.next(),
        &room.stream_path(),
        room.cookie(member),
    )
    .await
    else {
        return false;
    };
    let mut head = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head)).await;
    matches!(read, Ok(Ok(n)) if head[..n].starts_with(b"HTTP/1.1 200"))
}
