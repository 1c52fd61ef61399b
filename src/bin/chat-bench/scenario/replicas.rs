//! replicas: what `--redis-replicas 1` costs a sender. One instance on a
//! Redis primary that has one replica (both started by the benchmark, on this
//! machine's loopback), one member sending one message after another on a
//! keep-alive connection, each as soon as the one before was acknowledged:
//! the time from sending each to its `204`. First with `--redis-replicas 0`
//! (acknowledged once the primary has it), then, on a fresh instance and the
//! same Redis, with `--redis-replicas 1` (acknowledged once the replica
//! confirms it too: Redis's `WAIT`, in the same round trip). The difference is
//! what a message's safety through a failover costs; on a network, add one
//! round trip from the primary to its replica.

use super::Bench;
use crate::parts::{percentile_ms, rooms};
use crate::redis_server::RedisServer;
use crate::wire::Conn;

/// Sends before the measured ones, so that connections and the script are
/// warm.
const WARM_UP: usize = 50;

pub async fn run(bench: &mut Bench) {
    let primary = RedisServer::start().await;
    let replica = RedisServer::start_replica_of(&primary).await;
    let (url, secret) = (primary.url(), format!("{:032x}", rand::random::<u128>()));
    let mut delays = Vec::new();
    for replicas in ["0", "1"] {
        let args = [
            "--redis",
            &url,
            "--secret",
            &secret,
            "--redis-replicas",
            replicas,
        ];
        let server = bench.server(&args).await;
        let room = &rooms(&server, &bench.sources, 1, 1).await[0];
        let mut connection = Conn::open(server.addr, bench.sources.next())
            .await
            .expect("replicas: connect");
        let mut taken = Vec::with_capacity(bench.sizes.replicas_sends);
        for i in 0..WARM_UP + bench.sizes.replicas_sends {
            let sent = std::time::Instant::now();
            room.post(&mut connection, 0, "replicas").await;
            if i >= WARM_UP {
                taken.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
        }
        delays.push(taken);
        server.stop().await;
    }
    replica.stop().await;
    primary.stop().await;
    let p = |delays: &[u32], at: f64| percentile_ms(&mut delays.to_vec(), at);
    let (alone, confirmed) = (&delays[0], &delays[1]);
    bench.ours(
        "replicas",
        [
            ("--redis-replicas 0: send p50 (ms)", p(alone, 50.0)),
            ("--redis-replicas 0: send p99 (ms)", p(alone, 99.0)),
            ("--redis-replicas 1: send p50 (ms)", p(confirmed, 50.0)),
            ("--redis-replicas 1: send p99 (ms)", p(confirmed, 99.0)),
            (
                "p50 added by waiting for the replica (ms)",
                p(confirmed, 50.0) - p(alone, 50.0),
            ),
        ],
    );
}
