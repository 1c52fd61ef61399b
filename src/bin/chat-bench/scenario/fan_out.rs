//! fan-out: 1 room × N subscribers, M of them posting; deliveries are what the
//! readers counted, so frames a target drops for a lagging subscriber (ours
//! skips past its history, the floor's channel overwrites) are not.
//!
//! Saturated (each poster posts again as soon as it is answered), ours takes
//! in far more messages than it delivers to everyone (a subscriber that falls
//! behind skips what its room's history no longer holds), and each of the
//! floor's subscribers writes hundreds of frames per syscall: not the same
//! work, so saturated CPU per delivery is given for ours alone. The comparison
//! is at equal work: both driven by the same M posters paced to the rate at
//! which ours delivered messages saturated (its deliveries per second over N),
//! their posts spread evenly (each posts every M / rate seconds). The rows say
//! whether both then reach every subscriber with every message.

use std::time::Duration;

use super::Bench;
use crate::parts::{Pace, Posters, Room, Streams, Window, prove_streams, rooms};
use crate::target::Target;
use crate::wire;

pub async fn run(bench: &mut Bench) {
    let subscribers = bench.sizes.fan_out_subscribers as f64;
    let target = bench.server(&[]).await;
    let (room, streams) = open(bench, &target).await;
    let ours = window(bench, &target, &room, &streams, Pace::Saturated).await;
    let rate = ours.deliveries_per_second() / subscribers;
    assert!(rate > 0.0, "the server delivered nothing");
    let paced = Pace::Spread(Duration::from_secs_f64(
        bench.sizes.fan_out_posters as f64 / rate,
    ));
    let ours_paced = window(bench, &target, &room, &streams, paced).await;
    streams.close().await;
    target.stop().await;

    let target = Target::floor().await;
    let (room, streams) = open(bench, &target).await;
    let floor_paced = window(bench, &target, &room, &streams, paced).await;
    let floor = window(bench, &target, &room, &streams, Pace::Saturated).await;
    streams.close().await;
    target.stop().await;

    let reached = |w: &Window| w.deliveries as f64 / w.posts.max(1) as f64;
    let compared = [
        (
            "CPU per delivery (µs)",
            ours_paced.cpu_per_delivery_us(),
            floor_paced.cpu_per_delivery_us(),
        ),
        (
            "messages per second, paced to what ours delivered",
            ours_paced.posts_per_second(),
            floor_paced.posts_per_second(),
        ),
        (
            "subscribers reached per message, paced",
            reached(&ours_paced),
            reached(&floor_paced),
        ),
        (
            "messages accepted per second, saturated",
            ours.posts_per_second(),
            floor.posts_per_second(),
        ),
        (
            "subscribers reached per message, saturated",
            reached(&ours),
            reached(&floor),
        ),
        (
            "deliveries per second, saturated",
            ours.deliveries_per_second(),
            floor.deliveries_per_second(),
        ),
    ];
    bench.compared("fan-out", compared);
    bench.ours(
        "fan-out",
        [(
            "CPU per delivery, saturated (µs)",
            ours.cpu_per_delivery_us(),
        )],
    );
}

/// The fan-out room on `target`, every subscriber's stream open and proven.
async fn open(bench: &Bench, target: &Target) -> (Room, Streams) {
    let subscribers = bench.sizes.fan_out_subscribers;
    let mut room = rooms(target, &bench.sources, 1, subscribers).await;
    let streams = Streams::open(target.addr, &bench.sources, &room, subscribers, false).await;
    prove_streams(target, &bench.sources, &room, &streams, subscribers).await;
    (room.remove(0), streams)
}

/// One window of the fan-out room's posters at `pace`, measured once every
/// poster has begun.
async fn window(
    bench: &Bench,
    target: &Target,
    room: &Room,
    streams: &Streams,
    pace: Pace,
) -> Window {
    let who = (0..bench.sizes.fan_out_posters)
        .map(|m| (room.clone(), m))
        .collect();
    let posters = Posters::start(target.addr, &bench.sources, who, pace, 0).await;
    let warm_up = match pace {
        Pace::Saturated => Duration::from_secs(1),
        Pace::Together(every) | Pace::Spread(every) => every.max(Duration::from_secs(1)),
    };
    wire::pause(warm_up).await;
    let window = Window::measure(target, streams, &posters, bench.sizes.window).await;
    let (_, errors) = posters.stop().await;
    assert_eq!(errors, 0, "posting failed");
    window
}
