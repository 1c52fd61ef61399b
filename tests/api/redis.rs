//! A `redis-server` of the test's own, for the tests that run several instances
//! sharing one Redis: the Debian package's binary in the foreground, on a free
//! loopback port, with a configuration the test writes in a [`TempDir`];
//! killed by PID when dropped. It can be stopped and started again on the same
//! port (with `appendonly yes` and `appendfsync always`, what it acknowledged
//! survives, as with a production Redis that restarts), and it answers the few
//! questions the tests ask of it: how many keys, which rooms' keys, and "drop
//! every client". [`RedisServer::start_secured`] starts one as operators run
//! it: TLS only, with a certificate from a CA of the test's own, and an ACL
//! user with a password (the default user off).

#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::process::{Child, Command};

use crate::helpers::{TempDir, free_port};

/// Where Debian's `redis-server` package puts the server.
const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Longest a start (or restart) may take before the test fails.
const START_WAIT: Duration = Duration::from_secs(10);

/// Longest one question to Redis may take.
const ASK_WAIT: Duration = Duration::from_secs(5);

/// What Redis keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing: a restart starts empty (`save ""`, `appendonly no`).
    None,
    /// Every write is in the append-only file before Redis answers it
    /// (`appendonly yes`, `appendfsync always`), so a restart, even after
    /// `kill -9`, keeps everything it acknowledged.
    AppendFsyncAlways,
}

/// How a secured Redis ([`RedisServer::start_secured`]) lets clients in.
pub struct Secured {
    /// The ACL user (the default user is off) and its password.
    pub user: String,
    pub password: String,
    /// The CA that signed Redis's certificate, in PEM (also in `ca.pem`).
    pub ca_pem: String,
}

/// One `redis-server` process, stopped by PID when dropped.
pub struct RedisServer {
    /// TLS and an ACL user, if started so.
    secured: Option<Secured>,
    /// The running process; `None` between [`RedisServer::stop`] and
    /// [`RedisServer::start_again`].
    child: Option<Child>,
    /// Its loopback port, the same across restarts.
    port: u16,
    /// Configuration, log and (with persistence) the append-only files.
    dir: TempDir,
}

/// The server binary, or a failure saying how to get it: tests that need Redis
/// never skip silently, and in CI (`CI` set) they must fail without it.
fn redis_server_binary() -> &'static str {
    if Path::new(REDIS_SERVER).exists() {
        return REDIS_SERVER;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{REDIS_SERVER} is missing, and in CI the Redis tests fail rather than skip: \
             install redis-server (scripts/test does)"
        );
    }
    panic!("{REDIS_SERVER} is missing: install redis-server (scripts/test does)");
}

impl RedisServer {
    /// A Redis that keeps nothing on disk.
    pub async fn start() -> Self {
        Self::start_with(Persistence::None).await
    }

    /// A Redis whose data survives [`RedisServer::restart`].
    pub async fn start_persistent() -> Self {
        Self::start_with(Persistence::AppendFsyncAlways).await
    }

    pub async fn start_with(persistence: Persistence) -> Self {
        Self::start_plain(persistence, None).await
    }

    /// A Redis without TLS or ACL users; the replica of the one on
    /// `replica_of`, if given.
    async fn start_plain(persistence: Persistence, replica_of: Option<u16>) -> Self {
        let binary = redis_server_binary();
        let dir = TempDir::new("redis");
        let port = free_port();
        write_config(&dir, port, persistence, None, replica_of);
        let mut server = Self {
            secured: None,
            child: None,
            port,
            dir,
        };
        server.spawn(binary).await;
        server
    }

    /// A Redis as operators run it: TLS only (`port 0`, `tls-port`), with a
    /// certificate for 127.0.0.1 signed by a CA the test makes (clients need
    /// `--redis-ca`), and one ACL user with a password, the default user off.
    /// Nothing on disk.
    pub async fn start_secured() -> Self {
        let binary = redis_server_binary();
        let dir = TempDir::new("redis");
        let port = free_port();
        let secured = Secured {
            user: String::from("chat"),
            password: crate::helpers::random_secret(),
            ca_pem: write_certificates(&dir),
        };
        write_config(&dir, port, Persistence::None, Some(&secured), None);
        let mut server = Self {
            secured: Some(secured),
            child: None,
            port,
            dir,
        };
        server.spawn(binary).await;
        server
    }

    /// `redis://127.0.0.1:PORT/`, as `--redis` takes it; when secured,
    /// `rediss://USER:PASSWORD@127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        match &self.secured {
            None => format!("redis://127.0.0.1:{}/", self.port),
            Some(secured) => self.url_with_password(&secured.password),
        }
    }

    /// The secured URL with another password.
    pub fn url_with_password(&self, password: &str) -> String {
        let user = self.secured.as_ref().map_or("default", |s| s.user.as_str());
        format!("rediss://{user}:{password}@127.0.0.1:{}/", self.port)
    }

    /// Whether it was started by [`RedisServer::start_secured`].
    pub fn is_secured(&self) -> bool {
        self.secured.is_some()
    }

    /// The file holding the CA that signed a secured Redis's certificate, for
    /// `--redis-ca`.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A client for [`RedisServer::url`], trusting the test's CA when secured.
    fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.secured {
            None => redis::Client::open(self.url()),
            Some(secured) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(secured.ca_pem.clone().into_bytes()),
                },
            ),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// What Redis logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Kills the process (SIGKILL: no chance to save anything more) and waits
    /// for it to be gone; the port refuses connections from then on.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            tokio::time::timeout(START_WAIT, child.wait())
                .await
                .expect("redis-server exits after SIGKILL")
                .expect("wait for redis-server");
        }
    }

    /// Starts it again after [`RedisServer::stop`], on the same port and with
    /// the same configuration and data directory, and waits until it answers.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        self.spawn(redis_server_binary()).await;
    }

    /// [`RedisServer::stop`], then [`RedisServer::start_again`].
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    async fn spawn(&mut self, binary: &str) {
        let child = Command::new(binary)
            .arg(self.dir.path().join("redis.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        self.wait_until_answering().await;
    }

    /// Waits until `PING` is answered with `PONG` (Redis refuses commands while
    /// it loads its append-only file, and the port opens before that).
    async fn wait_until_answering(&mut self) {
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            let pong = tokio::time::timeout(ASK_WAIT, async {
                let mut connection = self.try_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .ok()
            })
            .await;
            if matches!(pong, Ok(Some(ref pong)) if pong == "PONG") {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("redis-server exited at start ({status}):\n{}", self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer PING within {START_WAIT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn try_connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        self.client()?.get_multiplexed_async_connection().await
    }

    /// A new connection of the test's own; fails the test if Redis is down.
    pub async fn connection(&self) -> MultiplexedConnection {
        tokio::time::timeout(ASK_WAIT, self.try_connection())
            .await
            .expect("Redis answers promptly")
            .unwrap_or_else(|error| panic!("connect to Redis at {}: {error}", self.url()))
    }

    /// Runs `command` on a new connection.
    pub async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let mut connection = self.connection().await;
        tokio::time::timeout(ASK_WAIT, command.query_async::<T>(&mut connection))
            .await
            .expect("Redis answers promptly")
            .unwrap_or_else(|error| panic!("{command:?}: {error}"))
    }

    /// `DBSIZE`: how many keys there are.
    pub async fn dbsize(&self) -> u64 {
        self.query(&redis::cmd("DBSIZE")).await
    }

    /// `KEYS pattern`, sorted.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.query(redis::cmd("KEYS").arg(pattern)).await;
        keys.sort();
        keys
    }

    /// `KEYS room:*`: every room's keys, sorted.
    pub async fn room_keys(&self) -> Vec<String> {
        self.keys("room:*").await
    }

    /// Every key with its type and its time to live in milliseconds (`-1`:
    /// none), a line each: what a failure message shows of what was left.
    pub async fn describe_keys(&self) -> String {
        let mut lines = String::new();
        for key in self.keys("*").await {
            let kind: String = self.query(redis::cmd("TYPE").arg(&key)).await;
            let ttl: i64 = self.query(redis::cmd("PTTL").arg(&key)).await;
            lines.push_str(&format!("{key} ({kind}) pttl {ttl}\n"));
        }
        lines
    }

    /// `CLIENT KILL TYPE normal`: closes every client connection (but the one
    /// asking), as a Redis failover or a network blip would; how many it closed.
    pub async fn kill_clients(&self) -> u64 {
        self.query(redis::cmd("CLIENT").arg(&["KILL", "TYPE", "normal"]))
            .await
    }

    /// `CLIENT LIST TYPE normal`: one line per client connection (the one
    /// asking included).
    pub async fn clients(&self) -> Vec<String> {
        let list: String = self
            .query(redis::cmd("CLIENT").arg(&["LIST", "TYPE", "normal"]))
            .await;
        list.lines().map(str::to_owned).collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// Writes a CA's certificate (`ca.pem`, also returned) and a certificate for
/// 127.0.0.1 signed by it, with its key (`redis.crt`, `redis.key`), in `dir`.
fn write_certificates(dir: &TempDir) -> String {
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "chat tests' Redis CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("the CA");
    let key = rcgen::KeyPair::generate().expect("Redis's key");
    let params = rcgen::CertificateParams::new(vec![String::from("127.0.0.1")]).expect("params");
    let certificate = params.signed_by(&key, &ca).expect("Redis's certificate");
    let path = dir.path();
    std::fs::write(path.join("ca.pem"), ca.pem()).expect("write ca.pem");
    std::fs::write(path.join("redis.crt"), certificate.pem()).expect("write redis.crt");
    std::fs::write(path.join("redis.key"), key.serialize_pem()).expect("write redis.key");
    ca.pem()
}

/// Writes `redis.conf` in `dir`: loopback only, `port`, foreground, nothing on
/// disk unless `persistence` asks for the append-only file, which then lives in
/// `dir`. When `secured`: TLS only on `port` (with `write_certificates`' files)
/// and only its ACL user. With `replica_of`, a replica of the Redis on that
/// loopback port.
fn write_config(
    dir: &TempDir,
    port: u16,
    persistence: Persistence,
    secured: Option<&Secured>,
    replica_of: Option<u16>,
) {
    let path = dir.path().display();
    let append_only = match persistence {
        Persistence::None => "appendonly no",
        Persistence::AppendFsyncAlways => "appendonly yes\nappendfsync always",
    };
    let listen = match secured {
        None => format!("port {port}"),
        Some(Secured { user, password, .. }) => format!(
            "port 0
tls-port {port}
tls-cert-file {path}/redis.crt
tls-key-file {path}/redis.key
tls-ca-cert-file {path}/ca.pem
tls-auth-clients no
user default off
user {user} on >{password} ~* &* +@all"
        ),
    };
    let replica = replica_of.map_or(String::new(), |primary| {
        format!("replicaof 127.0.0.1 {primary}\n")
    });
    let config = format!(
        "{listen}
bind 127.0.0.1
daemonize no
save \"\"
{append_only}
dir {path}
logfile {path}/redis.log
{replica}"
    );
    std::fs::write(dir.path().join("redis.conf"), config).expect("write redis.conf");
}

impl RedisServer {
    /// A Redis that replicates `primary` (`replicaof`), keeping nothing on
    /// disk, once its link to the primary is up and it has the data.
    pub async fn start_replica_of(primary: &RedisServer) -> Self {
        let server = Self::start_plain(Persistence::None, Some(primary.port)).await;
        let linked = async || {
            let replication = server.info("replication").await;
            replication.contains("master_link_status:up")
        };
        wait_until(START_WAIT, linked, || {
            format!("the replica reaches its primary\n{}", server.log())
        })
        .await;
        server
    }

    /// `INFO section`.
    pub async fn info(&self, section: &str) -> String {
        self.query(redis::cmd("INFO").arg(section)).await
    }
}

/// Debian's `redis-sentinel` package's program (a name for `redis-server` that
/// starts it as a sentinel).
const REDIS_SENTINEL: &str = "/usr/bin/redis-sentinel";

/// A primary, its replicas and three Redis Sentinels watching it as
/// [`SentinelGroup::SERVICE`], each process on a free loopback port with a
/// configuration the test writes, killed by PID when dropped. The sentinels
/// judge the primary down after two seconds without an answer (one second
/// was seen to call a just-promoted primary down too, and fail over twice),
/// so a failover takes a few seconds.
pub struct SentinelGroup {
    /// Every data node, the first one the primary at start.
    pub nodes: Vec<RedisServer>,
    sentinels: Vec<SentinelProcess>,
}

struct SentinelProcess {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl SentinelGroup {
    /// The name the sentinels know the primary by.
    pub const SERVICE: &'static str = "chat";

    /// A primary with `replicas` replicas and three sentinels, once every
    /// sentinel knows every replica and the other two sentinels (until then
    /// they could not agree on a failover).
    pub async fn start(replicas: usize) -> Self {
        if !Path::new(REDIS_SENTINEL).exists() {
            panic!(
                "{REDIS_SENTINEL} is missing, and the Sentinel tests fail rather than skip: \
                 install redis-sentinel (scripts/test does)"
            );
        }
        let primary = RedisServer::start().await;
        let mut nodes = Vec::new();
        for _ in 0..replicas {
            nodes.push(RedisServer::start_replica_of(&primary).await);
        }
        nodes.insert(0, primary);
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(SentinelProcess::start(nodes[0].port).await);
        }
        let group = Self { nodes, sentinels };
        let acquainted = async || {
            for sentinel in &group.sentinels {
                let replicas_known: Vec<redis::Value> = sentinel
                    .query(redis::cmd("SENTINEL").arg("REPLICAS").arg(Self::SERVICE))
                    .await;
                let sentinels_known: Vec<redis::Value> = sentinel
                    .query(redis::cmd("SENTINEL").arg("SENTINELS").arg(Self::SERVICE))
                    .await;
                if replicas_known.len() != replicas || sentinels_known.len() != 2 {
                    return false;
                }
            }
            true
        };
        wait_until(Duration::from_secs(30), acquainted, || {
            format!(
                "the sentinels find each other and the replicas\n{}",
                group.logs()
            )
        })
        .await;
        group
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/chat`, as
    /// `--redis` takes it.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect();
        format!("redis+sentinel://{}/{}", hosts.join(","), Self::SERVICE)
    }

    /// The port of the node the first sentinel calls the primary now.
    pub async fn primary_port(&self) -> u16 {
        let (_, port): (String, String) = self.sentinels[0]
            .query(
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(Self::SERVICE),
            )
            .await;
        port.parse().expect("a port")
    }

    /// The node listening on `port`.
    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// The node listening on `port`, to stop it.
    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// Every sentinel's and every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let sentinels = self.sentinels.iter().enumerate().map(|(i, sentinel)| {
            let log = std::fs::read_to_string(sentinel.dir.path().join("sentinel.log"));
            format!(
                "--- sentinel {i} (port {}) ---\n{}\n",
                sentinel.port,
                log.unwrap_or_default()
            )
        });
        let nodes = (self.nodes.iter())
            .map(|node| format!("--- node on port {} ---\n{}\n", node.port, node.log()));
        sentinels.chain(nodes).collect()
    }
}

impl SentinelProcess {
    async fn start(primary_port: u16) -> Self {
        let dir = TempDir::new("sentinel");
        let port = free_port();
        let path = dir.path().display();
        let service = SentinelGroup::SERVICE;
        // Sentinel rewrites its configuration as it learns: it lives in `dir`.
        // A failover whose election split the votes is tried again after twice
        // `failover-timeout`: 6 s here, inside the test's bound.
        let config = format!(
            "port {port}
bind 127.0.0.1
daemonize no
dir {path}
logfile {path}/sentinel.log
sentinel monitor {service} 127.0.0.1 {primary_port} 2
sentinel down-after-milliseconds {service} 2000
sentinel failover-timeout {service} 3000
sentinel parallel-syncs {service} 1
"
        );
        let file = dir.path().join("sentinel.conf");
        std::fs::write(&file, config).expect("write sentinel.conf");
        let child = Command::new(REDIS_SENTINEL)
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-sentinel");
        let sentinel = Self { child, port, dir };
        let answers = async || {
            sentinel
                .try_query::<String>(&redis::cmd("PING"))
                .await
                .is_ok()
        };
        wait_until(START_WAIT, answers, || {
            String::from("redis-sentinel answers")
        })
        .await;
        sentinel
    }

    /// `command` on a new connection, within [`ASK_WAIT`].
    async fn try_query<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?;
        let asked = async {
            let mut connection = client.get_multiplexed_async_connection().await?;
            command.query_async::<T>(&mut connection).await
        };
        tokio::time::timeout(ASK_WAIT, asked)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()))
    }

    /// `command` on a new connection; fails the test if it is not answered.
    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        self.try_query(command)
            .await
            .unwrap_or_else(|error| panic!("{command:?}: {error}"))
    }
}

/// Asks `ready` again and again (every 50 ms) until it says yes; fails the
/// test, with `what` (what was awaited, and the logs), if it has not within
/// `within`.
async fn wait_until(
    within: Duration,
    mut ready: impl AsyncFnMut() -> bool,
    what: impl Fn() -> String,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !ready().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {}",
            what()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
