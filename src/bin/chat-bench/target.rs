//! The process under measurement, the server or the floor: started with the
//! flags a scenario needs, its address read from what it prints, its CPU time
//! and resident memory read from `/proc`, and killed when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

pub struct Target {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
    pid: u32,
}

/// Every limit raised past what a scenario does: the benchmark measures speed,
/// not the limits.
pub const UNLIMITED: &[&str] = &[
    "--max-rooms",
    "100000",
    "--max-members-per-room",
    "100000",
    "--max-connections",
    "100000",
    "--max-connections-per-address",
    "100000",
    "--max-streams-per-address",
    "100000",
    "--max-streams-per-session",
    "1000",
    "--message-rate",
    "1000000/s",
    "--message-burst",
    "1000000",
    "--poll-rate",
    "1000000/s",
    "--poll-burst",
    "1000000",
    "--create-rate",
    "1000000/s",
    "--create-burst",
    "1000000",
    "--join-rate",
    "1000000/s",
    "--join-burst",
    "1000000",
    "--guess-rate",
    "1000000/s",
    "--guess-burst",
    "1000000",
];

impl Target {
    /// The chat server at `binary`, with `args` after the unlimited limits
    /// (HTTPS with `--tls-cert` and `--tls-key`).
    pub async fn server(binary: &PathBuf, args: &[&str]) -> Self {
        let mut command = Command::new(binary);
        command
            .args(["--bind", "127.0.0.1:0"])
            .args(UNLIMITED)
            .args(args)
            .env("RUST_LOG", "info");
        Self::start("server", command, "listening on ").await
    }

    /// The floor, this same program with `floor`.
    pub async fn floor() -> Self {
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let mut command = Command::new(exe);
        command.arg("floor");
        Self::start("floor", command, "").await
    }

    async fn start(name: &'static str, mut command: Command, prefix: &str) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start the {name}: {e}"));
        let pid = child.id().expect("a running child");
        // Both say where they listen on stdout (the server in its log).
        let out = BoxedLines::new(child.stdout.take().expect("stdout"));
        let addr = tokio::time::timeout(Duration::from_secs(20), out.find_addr(prefix))
            .await
            .unwrap_or_else(|_| panic!("the {name} did not say where it listens"));
        Self {
            name,
            addr,
            child,
            pid,
        }
    }

    /// User plus system CPU time so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // utime and stime are fields 14 and 15; here 11 and 12 (0-based after ')').
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        ticks as f64 / TICKS_PER_SECOND
    }

    /// Resident memory now, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The lines a child prints, read until its address appears; the rest is
/// drained in the background so that the child never blocks on a full pipe.
struct BoxedLines(Box<dyn tokio::io::AsyncRead + Unpin + Send>);

impl BoxedLines {
    fn new(reader: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Self {
        Self(Box::new(reader))
    }

    async fn find_addr(self, prefix: &str) -> SocketAddr {
        let mut lines = BufReader::new(self.0).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Some(at) = line.find(prefix) else {
                continue;
            };
            let rest = &line[at + prefix.len()..];
            let word = rest.split_whitespace().next().unwrap_or_default();
            // `http://ADDR` or `https://ADDR` from the server, a bare address
            // from the floor.
            let word = word.rsplit("://").next().unwrap_or(word);
            if let Ok(addr) = word.parse() {
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return addr;
            }
        }
        panic!("ended before saying where it listens");
    }
}
