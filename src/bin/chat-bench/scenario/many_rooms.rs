//! many-rooms: many small rooms, each member streaming, one member of each
//! posting once every half second, their posts spread evenly over it (a
//! steady flow, not every room at the same instant): CPU per delivery and
//! latency. Then proof that nothing is left behind: once every client has
//! gone and the rooms' grace (1 s here) has passed, the server's metrics must
//! show no room, stream or connection more than before any client existed
//! (else the scenario fails), and the rows say so, with the tasks and the
//! resident memory against before.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Bench;
use crate::leftovers::Baseline;
use crate::parts::{Pace, Posters, Streams, Window, percentile_ms, prove_streams, rooms};
use crate::wire;

/// `--grace`, in seconds: every member streams from the moment it joins until
/// the end, so the rooms may close soon after.
const GRACE_SECONDS: u64 = 1;

/// How long the server may take, after the grace, to close what the clients
/// left.
const SETTLE: Duration = Duration::from_secs(20);

/// How often each room's poster posts.
const EVERY: Duration = Duration::from_millis(500);

pub async fn run(bench: &mut Bench) {
    let s = bench.sizes;
    let grace = GRACE_SECONDS.to_string();
    let target = bench.watched_server(&["--grace", &grace]).await;
    let baseline = Baseline::take(&target, &bench.sources).await;
    let all = rooms(&target, &bench.sources, s.many_rooms, s.many_rooms_members).await;
    let streams = Streams::open(
        target.addr,
        &bench.sources,
        &all,
        s.many_rooms_members,
        true,
    )
    .await;
    prove_streams(
        &target,
        &bench.sources,
        &all,
        &streams,
        s.many_rooms_members,
    )
    .await;
    let who = all.iter().map(|room| (room.clone(), 0)).collect();
    let posters = Posters::start(target.addr, &bench.sources, who, Pace::Spread(EVERY), 0).await;
    wire::pause(Duration::from_secs(1)).await;
    let window = Window::measure(&target, &streams, &posters, s.window).await;
    let (_, errors) = posters.stop().await;
    let stream_errors = Arc::clone(&streams.tally);
    let mut delays = streams.close().await;
    let within = Duration::from_secs(GRACE_SECONDS) + SETTLE;
    let left = baseline
        .wait_back(&target, &bench.sources, "many-rooms", within)
        .await;
    target.stop().await;
    let stream_errors = stream_errors.errors.load(Ordering::Relaxed);
    assert_eq!(errors + stream_errors, 0, "many rooms: errors");
    bench.ours(
        "many-rooms",
        [
            ("CPU per delivery (µs)", window.cpu_per_delivery_us()),
            ("p50 latency (ms)", percentile_ms(&mut delays, 50.0)),
            ("p99 latency (ms)", percentile_ms(&mut delays, 99.0)),
        ],
    );
    bench.ours("many-rooms", left.rows());
}
