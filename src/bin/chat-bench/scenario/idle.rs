//! idle: many open streams doing nothing: memory per stream, on ours and on
//! the floor, and what ours spends on the heartbeats.

use std::time::Duration;

use super::Bench;
use crate::parts::{Streams, prove_streams, rooms};
use crate::target::Target;
use crate::wire;

pub async fn run(bench: &mut Bench) {
    let s = bench.sizes;
    let count = (s.idle_rooms * s.idle_per_room) as f64;
    let mut per_stream = Vec::new();
    let mut heartbeat_cpu = 0.0;
    for target in [
        bench.server(&["--keepalive", "2"]).await,
        Target::floor().await,
    ] {
        let all = rooms(&target, &bench.sources, s.idle_rooms, s.idle_per_room).await;
        wire::pause(Duration::from_millis(500)).await;
        let before = target.rss_bytes();
        let streams =
            Streams::open(target.addr, &bench.sources, &all, s.idle_per_room, false).await;
        prove_streams(&target, &bench.sources, &all, &streams, s.idle_per_room).await;
        wire::pause(Duration::from_millis(500)).await;
        per_stream.push((target.rss_bytes() as f64 - before as f64) / count / 1024.0);
        if target.name == "server" {
            let cpu = target.cpu_seconds();
            let seconds = s.window.as_secs_f64() * 2.0;
            wire::pause(Duration::from_secs_f64(seconds)).await;
            let heartbeats = count * seconds / 2.0;
            heartbeat_cpu = (target.cpu_seconds() - cpu) * 1e6 / heartbeats;
        }
        streams.close().await;
        target.stop().await;
    }
    bench.compared(
        "idle",
        [(
            "resident memory per stream (KiB)",
            per_stream[0],
            per_stream[1],
        )],
    );
    bench.ours("idle", [("CPU per heartbeat (µs)", heartbeat_cpu)]);
}
