//! latency: 1 poster at a steady rate, N subscribers: how long each message
//! takes to reach each of them, on ours and on the floor.

use std::time::Duration;

use super::Bench;
use crate::parts::{Pace, Posters, Streams, percentile_ms, prove_streams, rooms};
use crate::target::Target;
use crate::wire;

pub async fn run(bench: &mut Bench) {
    let s = bench.sizes;
    let mut figures = Vec::new();
    for target in [bench.server(&[]).await, Target::floor().await] {
        let room = rooms(&target, &bench.sources, 1, s.latency_subscribers).await;
        let streams = Streams::open(
            target.addr,
            &bench.sources,
            &room,
            s.latency_subscribers,
            true,
        )
        .await;
        prove_streams(
            &target,
            &bench.sources,
            &room,
            &streams,
            s.latency_subscribers,
        )
        .await;
        let every = Duration::from_micros(1_000_000 / s.latency_rate);
        let posters = Posters::start(
            target.addr,
            &bench.sources,
            vec![(room[0].clone(), 0)],
            Pace::Together(every),
            0,
        )
        .await;
        wire::pause(s.window).await;
        let (_, errors) = posters.stop().await;
        wire::pause(Duration::from_millis(500)).await;
        let mut delays = streams.close().await;
        target.stop().await;
        assert_eq!(errors, 0, "posting failed");
        figures.push((
            percentile_ms(&mut delays, 50.0),
            percentile_ms(&mut delays, 99.0),
        ));
    }
    let ((ours_p50, ours_p99), (floor_p50, floor_p99)) = (figures[0], figures[1]);
    bench.compared(
        "latency",
        [
            ("p50 latency (ms)", ours_p50, floor_p50),
            ("p99 latency (ms)", ours_p99, floor_p99),
        ],
    );
}
