//! One room of N subscribers on one instance, or spread over several: the
//! first 1/k of the members stream from the first instance, the next 1/k
//! from the second, and so on. Three windows, on the same streams:
//!
//! - **steady**: the `latency` scenario's shape, one poster (member 0,
//!   through the first instance) at a steady rate. Delays count only its
//!   messages (not the probes that proved the streams open). Once it stops,
//!   the streams have a few seconds to take in every message: what they
//!   still lack is counted missing.
//! - **saturated**: the `fan-out` scenario's saturated window, M members
//!   posting as soon as each post is answered, member m through instance
//!   m mod k, measured once every poster has begun.
//! - **paced**: the same M posters, their posts spread evenly, together at a
//!   given rate (on one instance: the rate at which its saturated window
//!   delivered messages to everyone, as `fan-out` does), so that setups are
//!   compared at equal work.
//!
//! On one instance the saturated window comes before the paced one, whose
//! rate it gives; on several, the paced window (at the one instance's rate)
//! comes first, since a saturated room may not survive: see `multi.rs`.
//! CPU time is read from `/proc` for every process given: the instances and,
//! when they share one, redis-server.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::parts::{Pace, Posters, Room, Streams, prove_streams, rooms};
use crate::scenario::Bench;
use crate::target::{Target, cpu_seconds_of};
use crate::wire;

/// How long the streams may take, after the steady poster stops, to receive
/// what it posted before the rest counts as missing.
const DELIVERED_WITHIN: Duration = Duration::from_secs(10);

/// What the windows measured on one setup.
pub struct Load {
    /// Delays of the steady messages, in microseconds, by the instance
    /// their subscribers stream from.
    pub delays: Vec<Vec<u32>>,
    pub steady: Window,
    /// Steady posts × subscribers, less the deliveries of them that arrived.
    pub missing: u64,
    pub saturated: Window,
    /// Saturated posts not answered `204` (a poster stops at its first).
    pub refused: u64,
    /// What the first of those got back.
    pub first_refusal: Option<String>,
    pub paced: Window,
    /// The paced window's rate, in messages a second.
    pub rate: f64,
    /// Streams that the server ended before the benchmark closed them.
    pub ended: u64,
}

/// What the processes spent, what the posters had accepted and what the
/// readers counted, over a window.
pub struct Window {
    pub seconds: f64,
    /// CPU seconds of each process, in the order they were given.
    pub cpu_seconds: Vec<f64>,
    pub posts: u64,
    pub deliveries: u64,
}

impl Window {
    /// CPU time of process `i` per delivery, in microseconds (not a number
    /// if nothing was delivered).
    pub fn cpu_per_delivery_us_of(&self, i: usize) -> f64 {
        if self.deliveries == 0 {
            return f64::NAN;
        }
        self.cpu_seconds[i] * 1e6 / self.deliveries as f64
    }

    /// CPU time of every process together per delivery, in microseconds.
    pub fn cpu_per_delivery_us(&self) -> f64 {
        (0..self.cpu_seconds.len())
            .map(|i| self.cpu_per_delivery_us_of(i))
            .sum()
    }

    pub fn deliveries_per_second(&self) -> f64 {
        self.deliveries as f64 / self.seconds
    }

    pub fn posts_per_second(&self) -> f64 {
        self.posts as f64 / self.seconds
    }

    pub fn reached(&self) -> f64 {
        self.deliveries as f64 / self.posts.max(1) as f64
    }
}

/// The counters a window is the difference of.
struct Reading {
    at: Instant,
    cpu_seconds: Vec<f64>,
    posts: u64,
    deliveries: u64,
}

impl Reading {
    fn now(pids: &[u32], posters: &[&Posters], groups: &[(Streams, u64)]) -> Self {
        Self {
            at: Instant::now(),
            cpu_seconds: pids.iter().map(|&pid| cpu_seconds_of(pid)).collect(),
            posts: posters
                .iter()
                .map(|p| p.tally.deliveries.load(Ordering::Relaxed))
                .sum(),
            deliveries: groups.iter().map(|(s, _)| s.deliveries()).sum(),
        }
    }

    fn until(self, end: Self) -> Window {
        Window {
            seconds: (end.at - self.at).as_secs_f64(),
            cpu_seconds: end
                .cpu_seconds
                .iter()
                .zip(self.cpu_seconds)
                .map(|(after, before)| after - before)
                .collect(),
            posts: end.posts - self.posts,
            deliveries: end.deliveries - self.deliveries,
        }
    }
}

/// The windows on `instances`, counting the CPU time of processes `pids`;
/// the paced one at `rate` messages a second (on one instance, `None`: the
/// rate its saturated window delivered to everyone).
pub async fn run(bench: &Bench, instances: &[&Target], pids: &[u32], rate: Option<f64>) -> Load {
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
        let one = std::slice::from_ref(&part);
        let streams = Streams::open(instance.addr, &bench.sources, one, size, true).await;
        groups.push((streams, size as u64));
    }
    for (streams, size) in &groups {
        let one = std::slice::from_ref(&room);
        prove_streams(first, &bench.sources, one, streams, *size as usize).await;
    }
    let load = Posting {
        bench,
        instances,
        pids,
        room: &room,
        groups: &groups,
    };

    let (steady, missing) = load.steady().await;
    let (saturated, refused, first_refusal, paced, rate) = match rate {
        None => {
            let (saturated, refused, first_refusal) = load.window(Pace::Saturated).await;
            let rate = saturated.deliveries_per_second() / n as f64;
            assert!(rate > 0.0, "multi: the one instance delivered nothing");
            let paced = load.paced(rate).await;
            (saturated, refused, first_refusal, paced, rate)
        }
        Some(rate) => {
            let paced = load.paced(rate).await;
            let (saturated, refused, first_refusal) = load.window(Pace::Saturated).await;
            (saturated, refused, first_refusal, paced, rate)
        }
    };
    let mut delays = Vec::with_capacity(k);
    let mut ended = 0;
    for (streams, _) in groups {
        ended += streams.tally.errors.load(Ordering::Relaxed);
        delays.push(streams.close().await);
    }
    Load {
        delays,
        steady,
        missing,
        saturated,
        refused,
        first_refusal,
        paced,
        rate,
        ended,
    }
}

/// What every window posts to and measures.
struct Posting<'a> {
    bench: &'a Bench,
    instances: &'a [&'a Target],
    pids: &'a [u32],
    room: &'a Room,
    /// Each instance's streams, and how many.
    groups: &'a [(Streams, u64)],
}

impl Posting<'_> {
    /// The steady window: its measures, and the deliveries missing after it.
    async fn steady(&self) -> (Window, u64) {
        let (s, groups, first) = (self.bench.sizes, self.groups, self.instances[0]);
        let before: Vec<u64> = groups.iter().map(|(s, _)| s.deliveries()).collect();
        for (streams, _) in groups {
            let from = wire::now_micros();
            streams.tally.timed_from.store(from, Ordering::Relaxed);
        }
        let every = Duration::from_micros(1_000_000 / s.latency_rate);
        let who = vec![(self.room.clone(), 0)];
        let sources = &self.bench.sources;
        let poster = Posters::start(first.addr, sources, who, Pace::Together(every), 0).await;
        let start = Reading::now(self.pids, &[&poster], groups);
        wire::pause(s.window).await;
        let window = start.until(Reading::now(self.pids, &[&poster], groups));
        let (posts, errors, failure) = poster.finish().await;
        assert_eq!(errors, 0, "multi: a steady post failed: {failure:?}");
        let mut missing = 0;
        for ((streams, size), before) in groups.iter().zip(before) {
            let expected = before + posts * size;
            streams.wait_for(expected, DELIVERED_WITHIN).await;
            missing += expected.saturating_sub(streams.deliveries());
            // Nothing after this is timed.
            streams.tally.timed_from.store(u64::MAX, Ordering::Relaxed);
        }
        (window, missing)
    }

    /// The paced window, at `rate` messages a second: its measures. Every
    /// post must succeed.
    async fn paced(&self, rate: f64) -> Window {
        let posters = self.posters() as f64;
        let every = Duration::from_secs_f64(posters / rate);
        let (window, refused, first) = self.window(Pace::Spread(every)).await;
        assert_eq!(refused, 0, "multi: a paced post failed: {first:?}");
        window
    }

    /// How many members post in the saturated and paced windows.
    fn posters(&self) -> usize {
        let s = self.bench.sizes;
        s.fan_out_posters.min(s.latency_subscribers)
    }

    /// One window of the posters at `pace`, measured once every poster has
    /// begun: its measures, the posts that failed, and what the first got.
    async fn window(&self, pace: Pace) -> (Window, u64, Option<String>) {
        let k = self.instances.len();
        let count = self.posters();
        let mut posters = Vec::with_capacity(k);
        for (i, instance) in self.instances.iter().enumerate() {
            let who = (i..count)
                .step_by(k)
                .map(|m| (self.room.clone(), m))
                .collect();
            let sources = &self.bench.sources;
            posters.push(Posters::start(instance.addr, sources, who, pace, 0).await);
        }
        let warm_up = match pace {
            Pace::Saturated => Duration::from_secs(1),
            Pace::Together(every) | Pace::Spread(every) => every.max(Duration::from_secs(1)),
        };
        wire::pause(warm_up).await;
        let all: Vec<&Posters> = posters.iter().collect();
        let start = Reading::now(self.pids, &all, self.groups);
        wire::pause(self.bench.sizes.window).await;
        let window = start.until(Reading::now(self.pids, &all, self.groups));
        let (mut failed, mut first) = (0, None);
        for posters in posters {
            let (_, errors, failure) = posters.finish().await;
            failed += errors;
            first = first.or(failure);
        }
        (window, failed, first)
    }
}
