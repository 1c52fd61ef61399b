//! http2: HTTP/2 over TLS, as browsers connect: N streams of one room, each a
//! member of its own, multiplexed on a few connections (rooms set up and
//! messages posted over HTTP/2 too, on one more connection). Resident memory
//! per stream (the streams' connections, TLS included, shared among them),
//! then CPU per delivery and latency while one member posts at a steady rate.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Bench;
use crate::https;
use crate::parts::{Pace, Posters, Window, percentile_ms, prove_streams_via, rooms_via};
use crate::wire;

pub async fn run(bench: &mut Bench) {
    let s = bench.sizes;
    let certificate = https::Certificate::generate();
    let tls_args = certificate.server_args();
    let tls_args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
    let target = bench.server(&tls_args).await;
    let tls = certificate.connector();
    let mut setup = https::H2::connect(target.addr, bench.sources.next(), &tls)
        .await
        .expect("connect over HTTP/2");
    let room = rooms_via(&setup, 1, s.http2_streams).await;
    wire::pause(Duration::from_millis(500)).await;
    let before = target.rss_bytes();
    let streams = https::open_streams(
        target.addr,
        &bench.sources,
        &tls,
        &room[0],
        s.http2_streams,
        s.http2_connections,
        true,
    )
    .await;
    prove_streams_via(&mut setup, &room, &streams, s.http2_streams).await;
    wire::pause(Duration::from_millis(500)).await;
    let per_stream = (target.rss_bytes() as f64 - before as f64) / s.http2_streams as f64 / 1024.0;
    let every = Duration::from_micros(1_000_000 / s.http2_rate);
    let posters = Posters::with(vec![(setup, room[0].clone(), 0)], Pace::Together(every), 0);
    wire::pause(Duration::from_secs(1)).await;
    let window = Window::measure(&target, &streams, &posters, s.window).await;
    let (sent, errors) = posters.stop().await;
    // Every stream gets every message, the probe included: none stalled
    // for want of flow-control window.
    let expected = (sent + 1) * s.http2_streams as u64;
    let all_arrived = streams.wait_for(expected, Duration::from_secs(10)).await;
    let (delivered, stream_errors) = (
        streams.deliveries(),
        streams.tally.errors.load(Ordering::Relaxed),
    );
    let mut delays = streams.close().await;
    target.stop().await;
    assert_eq!(errors + stream_errors, 0, "http2: errors");
    assert!(
        all_arrived,
        "http2: {delivered} of {expected} messages arrived"
    );
    bench.ours(
        "http2",
        [
            ("resident memory per stream (KiB)", per_stream),
            ("CPU per delivery (µs)", window.cpu_per_delivery_us()),
            ("p50 latency (ms)", percentile_ms(&mut delays, 50.0)),
            ("p99 latency (ms)", percentile_ms(&mut delays, 99.0)),
        ],
    );
}
