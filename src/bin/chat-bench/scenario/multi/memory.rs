//! What Redis holds for rooms: N rooms of 2 members, member 0 streaming from
//! instance A and member 1 from B, measured by Redis's `used_memory` (`INFO
//! memory`, the bytes its allocator handed out) at three points:
//!
//! 1. before the rooms, once Redis has loaded the rooms' script;
//! 2. once every room's streams are open (each room holds its 2 joins);
//! 3. once member 0 of each room has posted `--history` messages of about 100
//!    characters (half the rooms through A, half through B) and both streams
//!    of every room have them all: every room's history is full.
//!
//! Per room: (2 − 1) / N. Per kept message: (3 − 2) over the N × (history −
//! 2) events more that the rooms then hold (their 2 joins were 2 of
//! history's places). Per room with full history: (3 − 1) / N. The streams
//! close at the end, and the rooms are left to close by themselves.

use std::time::Duration;

use crate::parts::{Room, Streams, post_each, rooms};
use crate::redis_server::RedisServer;
use crate::scenario::Bench;
use crate::target::Target;
use crate::wire::{self, Conn};

/// What each message carries beyond `b <send time> `: texts of about 100
/// characters.
const PADDING: usize = 88;

/// Rooms whose member posts at the same time while history fills (each
/// group on new connections, once the group before has finished). With all
/// 1,000 at once, each instance's lease renewals (one script call per room,
/// one room after another, each queued behind the posts in flight) went at
/// about 13 rooms a second: a round took far longer than the 10 s lease, the
/// streaming members' leases lapsed, they were reaped as gone, and their
/// next posts were refused (403).
const AT_ONCE: usize = 16;

/// How long the streams may take to receive every message posted.
const DELIVERED_WITHIN: Duration = Duration::from_secs(20);

/// Bytes of Redis memory.
pub struct Memory {
    pub per_room: f64,
    pub per_message: f64,
    pub per_full_room: f64,
}

/// Measures, with instances `a` and `b` sharing `redis`.
pub async fn measure(bench: &Bench, redis: &RedisServer, a: &Target, b: &Target) -> Memory {
    let (count, history) = (bench.sizes.multi_rooms, bench.sizes.multi_history);
    assert!(history > 2, "multi: a history longer than the 2 joins");
    // Redis learns the instances' script at their first call of it; a join
    // to a room that does not exist makes that call and leaves no key.
    let warm_up = wire::once(
        a.addr,
        bench.sources.next(),
        "POST",
        "/join",
        None,
        Some("name=warm&code=ZZZZ"),
    )
    .await
    .expect("join a room that does not exist");
    assert_eq!(warm_up.status, 404, "multi: warm-up join: {warm_up:?}");
    let before = settled(redis).await;

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
    let opened = settled(redis).await;

    for (g, group) in all.chunks(AT_ONCE).enumerate() {
        let mut posters = Vec::with_capacity(group.len());
        for (n, room) in group.iter().enumerate() {
            let via = [a, b][(g * AT_ONCE + n) % 2];
            let conn = Conn::open(via.addr, bench.sources.next())
                .await
                .expect("connect a poster");
            posters.push((conn, room.clone()));
        }
        post_each(posters, history, PADDING).await;
    }
    let posted = (count * history) as u64;
    for (on, streams) in [("A", &streams_a), ("B", &streams_b)] {
        assert!(
            streams.wait_for(posted, DELIVERED_WITHIN).await,
            "multi: the streams on {on} received {} of the {posted} messages posted",
            streams.deliveries()
        );
    }
    let full = settled(redis).await;
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
async fn settled(redis: &RedisServer) -> f64 {
    wire::pause(Duration::from_millis(500)).await;
    redis.used_memory().await as f64
}
