//! big-room: one room of N members (10,000), every one of them streaming, and
//! one of them posting a steady R messages a second (20), one every 1/R s:
//! how quickly everyone gets a message, what each delivery costs, whether
//! every member is reached, and how much memory the room holds with everyone
//! streaming — on ours and on the floor. It answers "how big a room does one
//! instance hold, and how quickly does everyone hear".
//!
//! Setup goes through the contract: one create and N − 1 joins (the limits
//! raised by [`crate::target::UNLIMITED`], `--max-members-per-room`
//! included), then N streams, each on a connection of its own from the spread
//! of loopback source addresses (about 40 a source address at full size), and
//! the probe every one of them must get.
//!
//! Latency is timed over the usual window (`sizes.window`, 5 s: 100 messages
//! and a million deliveries at full size, ten thousand of them above the
//! p99), after a second of warm-up; the probe and the warm-up are not timed
//! (the tally's `timed_from`). Each reader keeps its own delays, R × 5 s
//! `u32`s: half a kilobyte a reader, 5 MB for all of them. The readers share
//! the machine's cores with the target, so a delay includes the reader's own
//! turn to run: the same for ours and for the floor.
//!
//! CPU per delivery is the target's CPU time over the window per delivery the
//! readers counted in it. Subscribers reached per message counts the whole
//! run instead: once the poster stops, the readers are given time to receive
//! everything sent (else the scenario says how much was missing), so the row
//! reads N when no member missed a message. Resident memory is read at the
//! end of the window, every stream open and messages flowing.
//!
//! `--quick` is 500 members at 20 a second, not fewer: the floor's CPU time
//! over its one-second window must stay above the 10 ms that `/proc` counts
//! in, or its CPU per delivery reads 0 and the ratio to it ∞.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Bench;
use crate::parts::{Pace, Posters, Streams, Window, percentile_ms, prove_streams, rooms};
use crate::target::Target;
use crate::wire;

/// Posting before the window, untimed: the first messages reach streams
/// that have only just been proven.
const WARM_UP: Duration = Duration::from_secs(1);

/// How long, after the poster stops, every message may take to reach everyone.
const DRAIN: Duration = Duration::from_secs(30);

/// What one target did with the big room.
struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    cpu_per_delivery_us: f64,
    /// Deliveries per message posted, over the whole run.
    reached: f64,
    rss_mib: f64,
}

pub async fn run(bench: &mut Bench) {
    let ours = measure(bench, bench.server(&[]).await).await;
    let floor = measure(bench, Target::floor().await).await;
    let compared = [
        ("p50 latency (ms)", ours.p50_ms, floor.p50_ms),
        ("p99 latency (ms)", ours.p99_ms, floor.p99_ms),
        (
            "CPU per delivery (µs)",
            ours.cpu_per_delivery_us,
            floor.cpu_per_delivery_us,
        ),
        (
            "subscribers reached per message",
            ours.reached,
            floor.reached,
        ),
        ("resident memory (MiB)", ours.rss_mib, floor.rss_mib),
    ];
    bench.compared("big-room", compared);
}

/// The big room on `target`: set up, streamed, posted to, measured; then the
/// target is stopped.
async fn measure(bench: &Bench, target: Target) -> Figures {
    let (members, rate) = (bench.sizes.big_room_members, bench.sizes.big_room_rate);
    let room = rooms(&target, &bench.sources, 1, members).await;
    let streams = Streams::open(target.addr, &bench.sources, &room, members, true).await;
    prove_streams(&target, &bench.sources, &room, &streams, members).await;
    let before = streams.deliveries();
    // One poster: spread over its interval is one message every 1/rate s.
    let every = Duration::from_micros(1_000_000 / rate);
    let posters = Posters::start(
        target.addr,
        &bench.sources,
        vec![(room[0].clone(), 0)],
        Pace::Spread(every),
        0,
    )
    .await;
    wire::pause(WARM_UP).await;
    streams
        .tally
        .timed_from
        .store(wire::now_micros(), Ordering::Relaxed);
    let window = Window::measure(&target, &streams, &posters, bench.sizes.window).await;
    let rss = target.rss_bytes();
    let (sent, errors) = posters.stop().await;
    let expected = before + sent * members as u64;
    let all_arrived = streams.wait_for(expected, DRAIN).await;
    let (delivered, stream_errors) = (
        streams.deliveries() - before,
        streams.tally.errors.load(Ordering::Relaxed),
    );
    let mut delays = streams.close().await;
    let name = target.name;
    target.stop().await;
    assert_eq!(errors + stream_errors, 0, "big-room on the {name}: errors");
    if !all_arrived {
        eprintln!(
            "big-room on the {name}: {delivered} of {} deliveries arrived within {DRAIN:?}",
            sent * members as u64
        );
    }
    Figures {
        p50_ms: percentile_ms(&mut delays, 50.0),
        p99_ms: percentile_ms(&mut delays, 99.0),
        cpu_per_delivery_us: window.cpu_per_delivery_us(),
        reached: delivered as f64 / sent.max(1) as f64,
        rss_mib: rss as f64 / (1024.0 * 1024.0),
    }
}
