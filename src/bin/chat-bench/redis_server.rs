//! A `redis-server` of the benchmark's own, for the instances of the `multi`
//! scenario to share: Debian's binary in the foreground on a free loopback
//! port, with a configuration written into a directory of its own (nothing on
//! disk: `save ""`, `appendonly no`), killed by PID and its directory removed
//! when dropped. It answers what the scenario asks of it: how many keys
//! (`DBSIZE`), how much memory (`INFO memory`), and its process id (for its CPU time in `/proc`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::process::{Child, Command};

/// Where Debian's `redis-server` package puts the server.
const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Longest a start may take before the benchmark gives up.
const START_WAIT: Duration = Duration::from_secs(10);

/// Longest one question to Redis may take.
const ASK_WAIT: Duration = Duration::from_secs(10);

/// Starts tried, each on another port, before giving up (a port found free
/// may be taken before Redis binds it).
const ATTEMPTS: usize = 5;

/// One `redis-server` process, killed when dropped.
pub struct RedisServer {
    child: Child,
    pid: u32,
    /// Its loopback port (below the ephemeral range, so that none of the
    /// benchmark's own outgoing connections can hold it).
    port: u16,
    /// Its configuration and log.
    dir: PathBuf,
    /// The benchmark's connection, for `DBSIZE` and `INFO`.
    connection: MultiplexedConnection,
}

impl RedisServer {
    /// Starts Redis and waits until it answers `PING`; panics, saying how to
    /// install it, if `redis-server` is missing.
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// A Redis that replicates `primary`, once its link to it is up.
    pub async fn start_replica_of(primary: &RedisServer) -> Self {
        let replica = Self::start_with(&format!("replicaof 127.0.0.1 {}\n", primary.port)).await;
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            let info: String = replica.ask(redis::cmd("INFO").arg("replication")).await;
            if info.contains("master_link_status:up") {
                return replica;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the replica did not reach its primary within {START_WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts Redis with `extra` configuration lines.
    async fn start_with(extra: &str) -> Self {
        assert!(
            std::path::Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing: the multi scenario needs it \
             (apt-get install -y redis-server)"
        );
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            match Self::try_start(extra).await {
                Ok(server) => return server,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("redis-server did not start:\n{}", failures.join("\n"));
    }

    async fn try_start(extra: &str) -> Result<Self, String> {
        let port = free_port().ok_or("no free port in 20000-32000")?;
        let dir =
            std::env::temp_dir().join(format!("chat-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\nsave \"\"\nappendonly no\n\
             dir {dir}\nlogfile {dir}/redis.log\n{extra}",
            dir = dir.display()
        );
        let config_path = dir.join("redis.conf");
        std::fs::write(&config_path, config).map_err(|e| format!("redis.conf: {e}"))?;
        let mut child = Command::new(REDIS_SERVER)
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start {REDIS_SERVER}: {e}"))?;
        let pid = child.id().ok_or("redis-server exited at once")?;
        let url = format!("redis://127.0.0.1:{port}/");
        let deadline = tokio::time::Instant::now() + START_WAIT;
        let connection = loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("redis-server exited ({status}):\n{log}"));
            }
            let answered = tokio::time::timeout(Duration::from_secs(1), async {
                let mut connection = connect(&url).await.ok()?;
                let pong: String = redis::cmd("PING").query_async(&mut connection).await.ok()?;
                (pong == "PONG").then_some(connection)
            })
            .await;
            if let Ok(Some(connection)) = answered {
                break connection;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill().await;
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("redis-server did not answer within {START_WAIT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(Self {
            child,
            pid,
            port,
            dir,
            connection,
        })
    }

    /// `redis://127.0.0.1:PORT/`, as `--redis` takes it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The process id, for its CPU time in `/proc`.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `DBSIZE`: how many keys there are.
    pub async fn dbsize(&self) -> u64 {
        self.ask(&redis::cmd("DBSIZE")).await
    }

    /// `used_memory` of `INFO memory`: bytes Redis has allocated.
    pub async fn used_memory(&self) -> u64 {
        let info: String = self.ask(redis::cmd("INFO").arg("memory")).await;
        info.lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|bytes| bytes.trim().parse().ok())
            .unwrap_or_else(|| panic!("no used_memory in INFO memory:\n{info}"))
    }

    /// Every key with its type and time to live in milliseconds (`-1`:
    /// none), a line each: what a failure shows of what was left.
    pub async fn describe_keys(&self) -> String {
        let mut keys: Vec<String> = self.ask(redis::cmd("KEYS").arg("*")).await;
        keys.sort();
        let mut lines = String::new();
        for key in keys {
            let kind: String = self.ask(redis::cmd("TYPE").arg(&key)).await;
            let ttl: i64 = self.ask(redis::cmd("PTTL").arg(&key)).await;
            lines.push_str(&format!("{key} ({kind}) pttl {ttl}\n"));
            if kind == "zset" {
                let members: Vec<String> = self
                    .ask(
                        redis::cmd("ZRANGE")
                            .arg(&key)
                            .arg(0)
                            .arg(-1)
                            .arg("WITHSCORES"),
                    )
                    .await;
                lines.push_str(&format!("  {}\n", members.join(" ")));
            }
        }
        lines
    }

    async fn ask<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let mut connection = self.connection.clone();
        tokio::time::timeout(ASK_WAIT, command.query_async::<T>(&mut connection))
            .await
            .unwrap_or_else(|_| panic!("Redis did not answer {command:?} within {ASK_WAIT:?}"))
            .unwrap_or_else(|error| panic!("{command:?}: {error}"))
    }

    /// Kills Redis and waits for it to be gone.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn connect(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

/// A loopback port free now, below the ephemeral range (32768 and up).
fn free_port() -> Option<u16> {
    (0..1000)
        .map(|_| rand::random_range(20_000..32_000))
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
}
