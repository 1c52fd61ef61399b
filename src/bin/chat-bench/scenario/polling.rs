//! polling: N members long-polling one room while one posts at a steady rate.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Bench;
use crate::parts::{Pace, Posters, last_id, percentile_ms, rooms};
use crate::wire::{self, Conn};

pub async fn run(bench: &mut Bench) {
    let s = bench.sizes;
    let target = bench.server(&[]).await;
    let room = rooms(&target, &bench.sources, 1, s.polling_members)
        .await
        .remove(0);
    let tally = Arc::new(wire::Tally::default());
    let stop = wire::tokio_stop::Stop::default();
    let mut pollers = tokio::task::JoinSet::new();
    for member in 0..s.polling_members {
        let mut conn = Conn::open(target.addr, bench.sources.next())
            .await
            .expect("connect");
        let (room, tally, stop) = (room.clone(), Arc::clone(&tally), stop.clone());
        pollers.spawn(async move {
            let mut delays = Vec::new();
            let mut after = 0;
            while !stop.is_set() {
                let path = room.poll_path(after);
                let answer = tokio::select! {
                    answer = conn.send("GET", &path, room.cookie(member), None) => answer,
                    () = stop.wait() => break,
                };
                let Ok(answer) = answer.map_err(|_| tally.errors.fetch_add(1, Ordering::Relaxed))
                else {
                    break;
                };
                if answer.status != 200 {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                let now = wire::now_micros();
                let mut body = answer.body;
                after = last_id(&body).unwrap_or(after);
                let mut count = 0;
                wire::take_messages(&mut body, |sent| {
                    count += 1;
                    delays.push(now.saturating_sub(sent) as u32);
                });
                tally.deliveries.fetch_add(count, Ordering::Relaxed);
            }
            delays
        });
    }
    wire::pause(Duration::from_millis(500)).await;
    let every = Duration::from_micros(1_000_000 / s.polling_rate);
    let posters = Posters::start(
        target.addr,
        &bench.sources,
        vec![(room.clone(), 0)],
        Pace::Together(every),
        0,
    )
    .await;
    wire::pause(Duration::from_secs(1)).await;
    let (cpu, delivered) = (
        target.cpu_seconds(),
        tally.deliveries.load(Ordering::Relaxed),
    );
    wire::pause(s.window).await;
    let cpu = target.cpu_seconds() - cpu;
    let delivered = tally.deliveries.load(Ordering::Relaxed) - delivered;
    let (_, errors) = posters.stop().await;
    stop.set();
    let mut delays = Vec::new();
    while let Some(done) = pollers.join_next().await {
        delays.extend(done.unwrap_or_default());
    }
    target.stop().await;
    assert_eq!(
        errors + tally.errors.load(Ordering::Relaxed),
        0,
        "polling failed"
    );
    bench.ours(
        "polling",
        [
            ("CPU per delivery (µs)", cpu * 1e6 / delivered.max(1) as f64),
            ("p50 latency (ms)", percentile_ms(&mut delays, 50.0)),
            ("p99 latency (ms)", percentile_ms(&mut delays, 99.0)),
        ],
    );
}
