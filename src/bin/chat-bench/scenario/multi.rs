//! multi: two instances sharing their rooms through Redis (`--redis`), on this
//! machine, beside one instance with its rooms in memory, measured the same
//! way in the same run. The benchmark starts a `redis-server` of its own
//! ([`RedisServer`]) and both instances with the same `--secret`, so that a
//! member's cookie is good on either.
//!
//! 1. **Redis memory.** N rooms of 2 members, member 0 streaming from A and
//!    member 1 from B: `used_memory` of `INFO memory` before the rooms, once
//!    their streams are open (each room holds its 2 joins), and once member 0
//!    of each has posted `--history` messages of about 100 characters (half
//!    the rooms through A, half through B) and both streams have them all.
//!    Per room: the growth to the open rooms over N; per kept message: the
//!    growth from there to full history over the N × (history − 2) events
//!    more that the rooms then hold (the 2 joins are 2 of history's places);
//!    per full room: the whole growth over N. Their streams close, and the
//!    rooms are left to close (`--grace` 1 s) while the rest runs.
//! 2. **Latency**, the `latency` scenario's shape: one room of N subscribers,
//!    one poster at a steady rate. On the one instance every subscriber
//!    streams from it; on two, the first half streams from A and the second
//!    from B, and the poster posts through A. Delays count only the steady
//!    posts (not the probes that prove the streams open), and every
//!    subscriber must have every message: the rows say how many deliveries
//!    were missing once the streams had a few seconds to take them in. The
//!    issue's target: at 200 messages/s, p99 on B within 2× the one
//!    instance's p99.
//! 3. **Fan-out, saturated**, in the same room and streams (the `fan-out`
//!    scenario's saturated half): its M posters post as soon as each post is
//!    answered, members alternately through A and B; deliveries per second,
//!    messages accepted per second, subscribers reached per message, and CPU
//!    per delivery summed over every process doing the work (one instance; or
//!    A, B and redis-server, with Redis's part on a row of its own).
//!
//! Last, what is left: every room closed and every stream gone from both
//! instances' `/metrics` (the rows sum both), and Redis's `DBSIZE` back to
//! where it began: a room's keys lapse a few seconds after its last lease
//! (about 12 s at most), so that wait is most of the scenario's idle time.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Bench;
use crate::leftovers::Baseline;
use crate::parts::{Pace, Posters, Room, Streams, percentile_ms, post_each, prove_streams, rooms};
use crate::redis_server::RedisServer;
use crate::target::{Target, cpu_seconds_of};
use crate::wire::{self, Conn};

/// `--grace` of the Redis instances, in seconds: rooms close soon after
/// their last stream, so the check of what is left waits less.
const GRACE: &str = "1";

/// What each message of the memory fill carries beyond `b <send time> `:
/// texts of about 100 characters.
const PADDING: usize = 88;

/// How long streams may take to receive what was posted before the rows
/// count it missing.
const DELIVERED_WITHIN: Duration = Duration::from_secs(10);

/// How long Redis may take to drop every key of the closed rooms, and the
/// instances to show them closed: lease (10 s) and lapse (2 s), plus time.
const SETTLE: Duration = Duration::from_secs(45);

pub async fn run(bench: &mut Bench) {
    let history = bench.sizes.multi_history.to_string();
    let alone = bench.server(&["--history", &history]).await;
    let one = room_load(bench, &[&alone], &[alone.pid()]).await;
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
    let memory = redis_memory(bench, &redis, &a, &b).await;
    let two = room_load(bench, &[&a, &b], &[a.pid(), b.pid(), redis.pid()]).await;
    let keys_left = keys_back(&redis, keys_before).await;
    let left_a = base_a
        .wait_back(&a, &bench.sources, "multi (A)", SETTLE)
        .await;
    let left_b = base_b
        .wait_back(&b, &bench.sources, "multi (B)", SETTLE)
        .await;
    a.stop().await;
    b.stop().await;
    redis.stop().await;

    let p = |delays: &[u32], at: f64| percentile_ms(&mut delays.to_vec(), at);
    let single_p99 = p(&one.delays[0], 99.0);
    bench.ours(
        "multi",
        [
            ("one instance: p50 latency (ms)", p(&one.delays[0], 50.0)),
            ("one instance: p99 latency (ms)", single_p99),
            (
                "two + Redis, on A (posted to): p50 latency (ms)",
                p(&two.delays[0], 50.0),
            ),
            (
                "two + Redis, on A (posted to): p99 latency (ms)",
                p(&two.delays[0], 99.0),
            ),
            (
                "two + Redis, on B: p50 latency (ms)",
                p(&two.delays[1], 50.0),
            ),
            (
                "two + Redis, on B: p99 latency (ms)",
                p(&two.delays[1], 99.0),
            ),
            (
                "cross-instance p99 (on B) / one instance's p99 (target ≤ 2)",
                p(&two.delays[1], 99.0) / single_p99,
            ),
            (
                "one instance: deliveries missing at the steady rate",
                one.missing as f64,
            ),
            (
                "two + Redis: deliveries missing at the steady rate",
                two.missing as f64,
            ),
        ],
    );
    bench.ours(
        "multi",
        one.saturated.rows([
            "one instance: deliveries per second, saturated",
            "one instance: messages accepted per second, saturated",
            "one instance: subscribers reached per message, saturated",
            "one instance: CPU per delivery, saturated (µs)",
        ]),
    );
    bench.ours(
        "multi",
        two.saturated.rows([
            "two + Redis: deliveries per second, saturated",
            "two + Redis: messages accepted per second, saturated",
            "two + Redis: subscribers reached per message, saturated",
            "two + Redis: CPU per delivery, saturated, A + B + Redis (µs)",
        ]),
    );
    bench.ours(
        "multi",
        [
            (
                "two + Redis, saturated: Redis's part of CPU per delivery (µs)",
                two.saturated
                    .cpu_per_delivery_us(two.saturated.cpu_seconds.len() - 1),
            ),
            (
                "posts refused, saturated (one; two + Redis)",
                (one.saturated.refused + two.saturated.refused) as f64,
            ),
            (
                "streams ended by the server (one; two + Redis)",
                (one.stream_errors + two.stream_errors) as f64,
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
        [("Redis keys left (DBSIZE after − before)", keys_left)],
    );
}

/// What Redis holds for rooms: bytes per room, per kept message, per room
/// with its full history.
struct Memory {
    per_room: f64,
    per_message: f64,
    per_full_room: f64,
}

/// Part 1 of the module's description.
async fn redis_memory(bench: &Bench, redis: &RedisServer, a: &Target, b: &Target) -> Memory {
    let (count, history) = (bench.sizes.multi_rooms, bench.sizes.multi_history);
    assert!(history > 2, "multi: a history longer than the 2 joins");
    let before = settled_memory(redis).await;
    let all = rooms(a, &bench.sources, count, 2).await;
    let on_b: Vec<Room> = all
        .iter()
        .map(|room| Room {
            code: room.code.clone(),
            cookies: vec![room.cookies[1].clone()],
        })
        .collect();
    let streams_a = Streams::open(a.addr, &bench.sources, &all, 1, false).await;
    let streams_b = Streams::open(b.addr, &bench.sources, &on_b, 1, false).await;
    let opened = settled_memory(redis).await;
    let mut posters = Vec::with_capacity(count);
    for (n, room) in all.iter().enumerate() {
        let via = if n % 2 == 0 { a } else { b };
        let conn = Conn::open(via.addr, bench.sources.next())
            .await
            .expect("connect a poster");
        posters.push((conn, room.clone()));
    }
    post_each(posters, history, PADDING).await;
    let posted = (count * history) as u64;
    for (on, streams) in [("A", &streams_a), ("B", &streams_b)] {
        assert!(
            streams.wait_for(posted, DELIVERED_WITHIN).await,
            "multi: the streams on {on} received {} of the {posted} messages posted",
            streams.deliveries()
        );
    }
    let full = settled_memory(redis).await;
    streams_a.close().await;
    streams_b.close().await;
    let (count, history) = (count as f64, history as f64);
    Memory {
        per_room: (opened - before) / count,
        per_message: (full - opened) / (count * (history - 2.0)),
        per_full_room: (full - before) / count,
    }
}

/// Redis's `used_memory` once what was just done has settled, in bytes.
async fn settled_memory(redis: &RedisServer) -> f64 {
    wire::pause(Duration::from_millis(500)).await;
    redis.used_memory().await as f64
}

/// What parts 2 and 3 measured on one setup.
struct Load {
    /// Delays of the steady posts' messages, in microseconds, by the
    /// instance their subscribers stream from.
    delays: Vec<Vec<u32>>,
    /// Posts × subscribers, less the deliveries of them that arrived.
    missing: u64,
    saturated: Saturated,
    /// Streams that ended before the benchmark closed them.
    stream_errors: u64,
}

/// Parts 2 and 3 on `instances` (the first is posted to at the steady rate),
/// counting the CPU time of the processes `pids`.
async fn room_load(bench: &Bench, instances: &[&Target], pids: &[u32]) -> Load {
    let s = bench.sizes;
    let (first, n, k) = (instances[0], s.latency_subscribers, instances.len());
    let room = rooms(first, &bench.sources, 1, n).await.remove(0);
    let mut groups = Vec::with_capacity(k);
    for (i, instance) in instances.iter().enumerate() {
        let part = Room {
            code: room.code.clone(),
            cookies: room.cookies[i * n / k..(i + 1) * n / k].to_vec(),
        };
        let size = part.cookies.len();
        let streams = Streams::open(
            instance.addr,
            &bench.sources,
            std::slice::from_ref(&part),
            size,
            true,
        )
        .await;
        groups.push((streams, size as u64));
    }
    for (streams, size) in &groups {
        let one = std::slice::from_ref(&room);
        prove_streams(first, &bench.sources, one, streams, *size as usize).await;
    }

    // The steady rate: only its messages are timed.
    let before: Vec<u64> = groups.iter().map(|(s, _)| s.deliveries()).collect();
    for (streams, _) in &groups {
        let now = wire::now_micros();
        streams.tally.timed_from.store(now, Ordering::Relaxed);
    }
    let every = Duration::from_micros(1_000_000 / s.latency_rate);
    let poster = Posters::start(
        first.addr,
        &bench.sources,
        vec![(room.clone(), 0)],
        Pace::Together(every),
        0,
    )
    .await;
    wire::pause(s.window).await;
    let (posts, errors) = poster.stop().await;
    assert_eq!(errors, 0, "multi: posting at a steady rate failed");
    let mut missing = 0;
    for ((streams, size), before) in groups.iter().zip(before) {
        let expected = before + posts * size;
        streams.wait_for(expected, DELIVERED_WITHIN).await;
        missing += expected.saturating_sub(streams.deliveries());
        streams.tally.timed_from.store(u64::MAX, Ordering::Relaxed);
    }

    let saturated = saturate(bench, instances, pids, &room, &groups).await;
    let mut delays = Vec::with_capacity(k);
    let mut stream_errors = 0;
    for (streams, _) in groups {
        stream_errors += streams.tally.errors.load(Ordering::Relaxed);
        delays.push(streams.close().await);
    }
    Load {
        delays,
        missing,
        saturated,
        stream_errors,
    }
}

/// Part 3's window: what the processes spent, what was accepted and what
/// arrived.
struct Saturated {
    seconds: f64,
    /// CPU seconds of each process, in the order they were given.
    cpu_seconds: Vec<f64>,
    posts: u64,
    deliveries: u64,
    /// Posts not answered `204` (a poster stops at its first).
    refused: u64,
}

impl Saturated {
    /// CPU time per delivery of process `i`, in microseconds.
    fn cpu_per_delivery_us(&self, i: usize) -> f64 {
        self.cpu_seconds[i] * 1e6 / self.deliveries.max(1) as f64
    }

    /// Rows named `names`: deliveries per second, messages accepted per
    /// second, subscribers reached per message, CPU per delivery of every
    /// process together.
    fn rows(&self, names: [&'static str; 4]) -> [(&'static str, f64); 4] {
        let cpu = (0..self.cpu_seconds.len())
            .map(|i| self.cpu_per_delivery_us(i))
            .sum();
        let figures = [
            self.deliveries as f64 / self.seconds,
            self.posts as f64 / self.seconds,
            self.deliveries as f64 / self.posts.max(1) as f64,
            cpu,
        ];
        [0, 1, 2, 3].map(|i| (names[i], figures[i]))
    }
}

/// Part 3: the room's first M members post as fast as they are answered,
/// member m through instance m mod k; measured once every poster has begun.
async fn saturate(
    bench: &Bench,
    instances: &[&Target],
    pids: &[u32],
    room: &Room,
    groups: &[(Streams, u64)],
) -> Saturated {
    let s = bench.sizes;
    let (k, count) = (
        instances.len(),
        s.fan_out_posters.min(s.latency_subscribers),
    );
    let mut posters = Vec::with_capacity(k);
    for (i, instance) in instances.iter().enumerate() {
        let who = (i..count).step_by(k).map(|m| (room.clone(), m)).collect();
        posters.push(Posters::start(instance.addr, &bench.sources, who, Pace::Saturated, 0).await);
    }
    wire::pause(Duration::from_secs(1)).await;
    let read = || {
        let cpu: Vec<f64> = pids.iter().map(|&pid| cpu_seconds_of(pid)).collect();
        let posts: u64 = posters
            .iter()
            .map(|p| p.tally.deliveries.load(Ordering::Relaxed))
            .sum();
        let deliveries: u64 = groups.iter().map(|(s, _)| s.deliveries()).sum();
        (Instant::now(), cpu, posts, deliveries)
    };
    let (started, cpu, posts, deliveries) = read();
    wire::pause(s.window).await;
    let (ended, cpu_after, posts_after, deliveries_after) = read();
    let mut refused = 0;
    for posters in posters {
        refused += posters.stop().await.1;
    }
    Saturated {
        seconds: (ended - started).as_secs_f64(),
        cpu_seconds: cpu_after
            .iter()
            .zip(cpu)
            .map(|(after, before)| after - before)
            .collect(),
        posts: posts_after - posts,
        deliveries: deliveries_after - deliveries,
        refused,
    }
}

/// Waits until Redis holds no more keys than `before`, up to [`SETTLE`]; the
/// keys more, which is 0 unless the scenario then fails, naming them.
async fn keys_back(redis: &RedisServer, before: u64) -> f64 {
    let started = Instant::now();
    loop {
        let now = redis.dbsize().await;
        if now <= before {
            return 0.0;
        }
        assert!(
            started.elapsed() < SETTLE,
            "multi: {now} keys in Redis {SETTLE:?} after every client had gone, against \
             {before} before:\n{}",
            redis.describe_keys().await
        );
        wire::pause(Duration::from_millis(200)).await;
    }
}
