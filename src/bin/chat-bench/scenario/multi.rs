//! multi: two instances sharing their rooms through Redis (`--redis`) on this
//! machine, beside one instance with its rooms in memory, measured the same
//! way in the same run. The benchmark starts a `redis-server` of its own
//! ([`RedisServer`]) and instances A and B with the same `--secret`, so that
//! a member's cookie is good on either, and `--grace 1`.
//!
//! 1. One room of N subscribers on one instance, rooms in memory ([`load`]):
//!    latency at a steady rate (200 messages/s to 1,000 subscribers, the
//!    `latency` scenario's shape), fan-out saturated, then paced at the rate
//!    it delivered saturated, with CPU per delivery in each window.
//! 2. Redis memory per room and per kept message ([`memory`]).
//! 3. The same room on A and B, half the subscribers streaming from each;
//!    the steady poster posts through A, the fan-out posters alternately
//!    through A and B; CPU per delivery is A's, B's and redis-server's
//!    together. Paced at the one instance's rate first, saturated last. The
//!    issue's target: p99 on B (the instance not posted to) within 2× the one
//!    instance's p99.
//!
//! Last, what is left: every room closed and every stream gone in both
//! instances' `/metrics` (the rows sum A and B), and Redis's `DBSIZE` back
//! to where it began (the scenario fails otherwise), with how long that took
//! after the benchmark closed its last streams.
//!
//! Saturated, an instance's reader can fall more than `--history` events
//! behind a room's Redis stream; the instance then ends that room's streams,
//! for them to reconnect and be told what they missed. The benchmark's
//! readers do not reconnect: the rows count those streams as ended by the
//! server, what reached them stops there (CPU per delivery is then not a
//! number if nothing did), and once the grace has passed their members have
//! left, so the posters' next posts are refused.

mod load;
mod memory;

use std::time::{Duration, Instant};

use super::Bench;
use crate::leftovers::Baseline;
use crate::parts::percentile_ms;
use crate::redis_server::RedisServer;
use crate::wire;

/// `--grace` of every instance, in seconds: rooms close soon after their
/// last stream, so the check of what is left waits less.
const GRACE: &str = "1";

/// How long the instances may take to show every room closed and every
/// stream gone, once Redis has dropped the rooms' keys.
const SETTLE: Duration = Duration::from_secs(20);

/// How long Redis may take, after the benchmark closed its last streams, to
/// hold no more keys than before: a room's own keys lapse a few seconds
/// after its last lease (12 s at most), and no key is ever promised more
/// than a new room's time to get its first stream (60 s) and 2 s; the rest
/// is slack.
const KEYS_LAPSE: Duration = Duration::from_secs(90);

pub async fn run(bench: &mut Bench) {
    let history = bench.sizes.multi_history.to_string();
    let alone = bench.server(&["--history", &history]).await;
    let one = load::run(bench, &[&alone], &[alone.pid()], None).await;
    alone.stop().await;

    let redis = RedisServer::start().await;
    let (url, secret) = (redis.url(), format!("{:032x}", rand::random::<u128>()));
    let args = [
        "--redis",
        &url,
        "--secret",
        &secret,
        "--grace",
        GRACE,
        "--history",
        &history,
    ];
    let a = bench.watched_server(&args).await;
    let b = bench.watched_server(&args).await;
    let keys_before = redis.dbsize().await;
    let base_a = Baseline::take(&a, &bench.sources).await;
    let base_b = Baseline::take(&b, &bench.sources).await;
    let memory = memory::measure(bench, &redis, &a, &b).await;
    let pids = [a.pid(), b.pid(), redis.pid()];
    let two = load::run(bench, &[&a, &b], &pids, Some(one.rate)).await;
    let closed = Instant::now();
    let keys_back_after = keys_back(&redis, keys_before, closed).await;
    let left_a = base_a
        .wait_back(&a, &bench.sources, "multi (A)", SETTLE)
        .await;
    let left_b = base_b
        .wait_back(&b, &bench.sources, "multi (B)", SETTLE)
        .await;
    a.stop().await;
    b.stop().await;
    redis.stop().await;

    for (setup, load) in [("one instance", &one), ("two + Redis", &two)] {
        if let Some(first) = &load.first_refusal {
            eprintln!(
                "multi, {setup}: {} saturated posts refused; the first got: {first}",
                load.refused
            );
        }
    }
    let p = |delays: &[u32], at: f64| percentile_ms(&mut delays.to_vec(), at);
    let one_p99 = p(&one.delays[0], 99.0);
    let b_p99 = p(&two.delays[1], 99.0);
    let redis_part = |w: &load::Window| w.cpu_per_delivery_us_of(w.cpu_seconds.len() - 1);
    bench.ours(
        "multi",
        [
            ("one instance: p50 latency (ms)", p(&one.delays[0], 50.0)),
            ("one instance: p99 latency (ms)", one_p99),
            (
                "two + Redis, on A: p50 latency (ms)",
                p(&two.delays[0], 50.0),
            ),
            (
                "two + Redis, on A: p99 latency (ms)",
                p(&two.delays[0], 99.0),
            ),
            (
                "two + Redis, on B: p50 latency (ms)",
                p(&two.delays[1], 50.0),
            ),
            ("two + Redis, on B: p99 latency (ms)", b_p99),
            (
                "p99 on B / one instance's p99 (target ≤ 2)",
                b_p99 / one_p99,
            ),
            (
                "one instance: deliveries missing, steady",
                one.missing as f64,
            ),
            (
                "two + Redis: deliveries missing, steady",
                two.missing as f64,
            ),
            (
                "one instance: CPU per delivery, steady (µs)",
                one.steady.cpu_per_delivery_us(),
            ),
            (
                "two + Redis: CPU per delivery, steady, A + B + Redis (µs)",
                two.steady.cpu_per_delivery_us(),
            ),
            (
                "two + Redis: Redis's part, steady (µs)",
                redis_part(&two.steady),
            ),
            (
                "messages per second, paced to what one instance delivered",
                one.rate,
            ),
            (
                "one instance: messages accepted per second, paced",
                one.paced.posts_per_second(),
            ),
            (
                "two + Redis: messages accepted per second, paced",
                two.paced.posts_per_second(),
            ),
            (
                "one instance: subscribers reached per message, paced",
                one.paced.reached(),
            ),
            (
                "two + Redis: subscribers reached per message, paced",
                two.paced.reached(),
            ),
            (
                "one instance: CPU per delivery, paced (µs)",
                one.paced.cpu_per_delivery_us(),
            ),
            (
                "two + Redis: CPU per delivery, paced, A + B + Redis (µs)",
                two.paced.cpu_per_delivery_us(),
            ),
            (
                "two + Redis: Redis's part, paced (µs)",
                redis_part(&two.paced),
            ),
        ],
    );
    for (rows, load) in [(ONE_SATURATED, &one), (TWO_SATURATED, &two)] {
        let w = &load.saturated;
        let figures = [
            w.deliveries_per_second(),
            w.posts_per_second(),
            w.reached(),
            w.cpu_per_delivery_us(),
            load.refused as f64,
            load.ended as f64,
        ];
        bench.ours("multi", rows.into_iter().zip(figures));
    }
    bench.ours(
        "multi",
        [
            (
                "two + Redis: Redis's part, saturated (µs)",
                redis_part(&two.saturated),
            ),
            (
                "Redis memory per room of 2 streaming (bytes)",
                memory.per_room,
            ),
            (
                "Redis memory per kept message of ~100 chars (bytes)",
                memory.per_message,
            ),
            (
                "Redis memory per room with full history (bytes)",
                memory.per_full_room,
            ),
        ],
    );
    bench.ours("multi", left_a.plus(&left_b).rows());
    bench.ours(
        "multi",
        [
            ("Redis keys left (DBSIZE after − before)", 0.0),
            (
                "seconds from the streams' close to DBSIZE back",
                keys_back_after.as_secs_f64(),
            ),
        ],
    );
}

/// The saturated window's rows of each setup.
const ONE_SATURATED: [&str; 6] = [
    "one instance: deliveries per second, saturated",
    "one instance: messages accepted per second, saturated",
    "one instance: subscribers reached per message, saturated",
    "one instance: CPU per delivery, saturated (µs)",
    "one instance: posts refused, saturated",
    "one instance: streams ended by the server (all windows)",
];
const TWO_SATURATED: [&str; 6] = [
    "two + Redis: deliveries per second, saturated",
    "two + Redis: messages accepted per second, saturated",
    "two + Redis: subscribers reached per message, saturated",
    "two + Redis: CPU per delivery, saturated, A + B + Redis (µs)",
    "two + Redis: posts refused, saturated",
    "two + Redis: streams ended by the server (all windows)",
];

/// Waits until Redis holds no more keys than `before`, up to [`KEYS_LAPSE`]
/// after `closed` (when the benchmark closed its last streams); how long
/// after that it was. Fails the scenario, naming the keys, if they are still
/// there.
async fn keys_back(redis: &RedisServer, before: u64, closed: Instant) -> Duration {
    loop {
        let now = redis.dbsize().await;
        if now <= before {
            return closed.elapsed();
        }
        assert!(
            closed.elapsed() < KEYS_LAPSE,
            "multi: {now} keys in Redis {KEYS_LAPSE:?} after every client had gone, against \
             {before} before:\n{}",
            redis.describe_keys().await
        );
        wire::pause(Duration::from_millis(200)).await;
    }
}
