//! The reader: one dedicated Redis connection per instance that follows the
//! event streams of every room this instance serves (`XREAD BLOCK`) and hands
//! each event to the room's local feed.
//!
//! It reads each stream from the last id its feed holds, so after a lost
//! connection (or a Redis restart) it carries on where it was, and nothing
//! published meanwhile is missed, as it would be with `PUBLISH`. A short block
//! lets it take in rooms that new streams brought without a second channel.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::Value;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::{Inner, Reply, entries, room_key};

/// Longest one read waits for news before it looks again at which rooms to read.
const BLOCK: Duration = Duration::from_millis(200);

/// Most events taken from one room's stream in one read.
const BATCH: usize = 512;

/// Waits between attempts to reach Redis again.
const RETRY_AFTER: Duration = Duration::from_millis(250);

pub(super) async fn read(inner: Weak<Inner>, stop: CancellationToken) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(2)));
    let mut failed = false;
    loop {
        // The primary as it is now, and which one it is: after a failover
        // the reader reads from the new one.
        let Some((client, generation)) = inner
            .upgrade()
            .map(|inner| (inner.primary.client(), inner.primary.generation()))
        else {
            return;
        };
        let connected = tokio::select! {
            connected = async { client?.get_multiplexed_async_connection_with_config(&config).await } => connected,
            () = stop.cancelled() => return,
        };
        let mut connection = match connected {
            Ok(connection) => connection,
            Err(error) => {
                let Some(inner) = inner.upgrade() else { return };
                if !failed {
                    tracing::warn!(%error, "redis reader cannot connect");
                    failed = true;
                }
                inner.reading.store(false, Ordering::Relaxed);
                inner.primary.in_doubt();
                drop(inner);
                tokio::select! {
                    () = tokio::time::sleep(RETRY_AFTER) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        if failed {
            tracing::info!("redis reader connected again");
            failed = false;
            // Redis is back: the leases first, before an operation reaps them.
            if let Some(inner) = inner.upgrade() {
                inner.back.notify_one();
            }
        }
        let id: redis::RedisResult<i64> = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut connection)
            .await;
        if let (Ok(id), Some(inner)) = (id, inner.upgrade()) {
            inner.reader_id.store(id, Ordering::Relaxed);
        }
        loop {
            let Some(inner) = inner.upgrade() else { return };
            if inner.primary.generation() != generation {
                tracing::info!("redis reader moving to the new primary");
                inner.reading.store(false, Ordering::Relaxed);
                break;
            }
            inner.reading.store(true, Ordering::Relaxed);
            let feeds = inner.feeds.seeded();
            if feeds.is_empty() {
                // Nothing to read; a ping keeps the health check honest.
                let ping = redis::cmd("PING");
                let pinged: redis::RedisResult<String> = tokio::select! {
                    pinged = ping.query_async(&mut connection) => pinged,
                    () = stop.cancelled() => return,
                };
                if pinged.is_err() {
                    inner.reading.store(false, Ordering::Relaxed);
                    break;
                }
                tokio::select! {
                    () = inner.feeds_added.notified() => continue,
                    () = tokio::time::sleep(BLOCK) => continue,
                    () = stop.cancelled() => return,
                }
            }
            let mut command = redis::cmd("XREAD");
            command
                .arg("COUNT")
                .arg(BATCH)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS");
            let keys: Vec<String> = feeds
                .iter()
                .map(|feed| room_key(&feed.code, "events"))
                .collect();
            command.arg(&keys);
            for feed in &feeds {
                command.arg(format!("{}-0", feed.last_id()));
            }
            let read: redis::RedisResult<Value> = tokio::select! {
                read = command.query_async(&mut connection) => read,
                () = stop.cancelled() => return,
            };
            match read {
                Ok(reply) => {
                    let mut newest_ms = None;
                    for stream in reply.items() {
                        let parts = stream.items();
                        let (Some(key), Some(found)) =
                            (parts.first().and_then(Reply::text), parts.get(1))
                        else {
                            continue;
                        };
                        let Some(feed) = keys.iter().position(|k| *k == key).map(|i| &feeds[i])
                        else {
                            continue;
                        };
                        newest_ms = newest_ms.max(stored_at(found));
                        feed.deliver(entries(found), &inner.tally);
                    }
                    if let Some(stored) = newest_ms {
                        let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
                        let lag = (now as f64 - stored as f64).max(0.0) / 1000.0;
                        inner.metrics.reader_lag.set(lag);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "redis reader lost its connection");
                    inner.reading.store(false, Ordering::Relaxed);
                    inner.primary.in_doubt();
                    inner.metrics.reconnects.inc();
                    failed = true;
                    break;
                }
            }
        }
    }
}

/// When Redis stored the newest of these entries (their `ms` field).
fn stored_at(found: &Value) -> Option<i64> {
    let newest = found.items().last()?;
    let fields = newest.items().get(1)?.items();
    fields
        .chunks(2)
        .find(|pair| pair[0].text().as_deref() == Some("ms"))
        .and_then(|pair| pair.get(1)?.number())
}
