//! What a scenario leaves behind in the server. The server counts what it
//! holds open in the gauges of its `/metrics` (a [`Target::watched_server`]):
//! a scenario reads them, with the resident memory, before its clients exist
//! ([`Baseline::take`]), and once they have all gone waits for the rooms,
//! streams and connections to come back to that ([`Baseline::wait_back`]).
//! Whatever is still open after the deadline was leaked: the scenario fails;
//! tasks are only reported, and memory is the allocator's to keep or return.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::target::Target;
use crate::wire::{self, Sources};

/// How long tasks may take to end once rooms, streams and connections are
/// back (a closed connection's task ends a moment after its socket does).
const TASKS_SETTLE: Duration = Duration::from_secs(2);

/// The gauges of the server's `/metrics` that say what it holds open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    pub rooms: u64,
    pub streams: u64,
    /// Client connections (the metrics listener's are not counted).
    pub connections: u64,
    /// Every Tokio task alive: connections, streams, timers, housekeeping.
    pub tasks: u64,
}

impl Gauges {
    /// Scrapes `target`'s metrics, over a connection of its own from `from`.
    pub async fn read(target: &Target, from: IpAddr) -> io::Result<Self> {
        let to = target
            .metrics
            .expect("a server with a metrics listener (Target::watched_server)");
        let answer = wire::once(to, from, "GET", "/metrics", None, None).await?;
        if answer.status != 200 {
            return Err(io::Error::other(format!(
                "GET /metrics answered {}",
                answer.status
            )));
        }
        Self::parse(&String::from_utf8_lossy(&answer.body))
            .ok_or_else(|| io::Error::other("a gauge missing from /metrics"))
    }

    /// The gauges in OpenMetrics text: `chat_rooms 3` and so on.
    fn parse(text: &str) -> Option<Self> {
        let gauge = |name: &str| {
            text.lines()
                .filter_map(|line| line.split_once(' '))
                .find(|(metric, _)| *metric == name)
                .and_then(|(_, value)| value.trim().parse().ok())
        };
        Some(Self {
            rooms: gauge("chat_rooms")?,
            streams: gauge("chat_streams")?,
            connections: gauge("chat_connections")?,
            tasks: gauge("chat_tasks")?,
        })
    }

    /// No more rooms, streams or connections open than `before`.
    fn back_to(&self, before: &Self) -> bool {
        self.rooms <= before.rooms
            && self.streams <= before.streams
            && self.connections <= before.connections
    }
}

/// The server before a scenario's clients existed: what it held open, and its
/// resident memory.
pub struct Baseline {
    gauges: Gauges,
    rss: u64,
}

/// What is still there once a scenario's clients have all gone.
pub struct Leftovers {
    rooms: f64,
    streams: f64,
    /// Tasks after, less tasks before.
    tasks: f64,
    /// Resident memory after, less before, in MiB.
    memory_mib: f64,
}

impl Baseline {
    pub async fn take(target: &Target, sources: &Sources) -> Self {
        let gauges = Gauges::read(target, sources.next())
            .await
            .expect("read the server's metrics");
        Self {
            gauges,
            rss: target.rss_bytes(),
        }
    }

    /// Waits until the rooms, streams and connections of `target` are back to
    /// this baseline (then a moment more for the tasks), and says what is left.
    /// Panics, naming `scenario`, if they are not back `within`.
    pub async fn wait_back(
        &self,
        target: &Target,
        sources: &Sources,
        scenario: &str,
        within: Duration,
    ) -> Leftovers {
        let started = Instant::now();
        let read = || async {
            Gauges::read(target, sources.next())
                .await
                .expect("read the server's metrics")
        };
        let mut now = read().await;
        while !now.back_to(&self.gauges) {
            assert!(
                started.elapsed() < within,
                "{scenario}: left open {within:?} after every client had gone: {now:?}, against \
                 {:?} before",
                self.gauges
            );
            wire::pause(Duration::from_millis(100)).await;
            now = read().await;
        }
        let settled = Instant::now();
        while now.tasks > self.gauges.tasks && settled.elapsed() < TASKS_SETTLE {
            wire::pause(Duration::from_millis(100)).await;
            now = read().await;
        }
        let less = |after: u64, before: u64| after as f64 - before as f64;
        Leftovers {
            rooms: less(now.rooms, self.gauges.rooms),
            streams: less(now.streams, self.gauges.streams),
            tasks: less(now.tasks, self.gauges.tasks),
            memory_mib: less(target.rss_bytes(), self.rss) / 1048576.0,
        }
    }
}

impl Leftovers {
    /// What two servers left, together (the instances of one service).
    pub fn plus(&self, other: &Self) -> Self {
        Self {
            rooms: self.rooms + other.rooms,
            streams: self.streams + other.streams,
            tasks: self.tasks + other.tasks,
            memory_mib: self.memory_mib + other.memory_mib,
        }
    }

    /// The report's rows.
    pub fn rows(&self) -> [(&'static str, f64); 4] {
        [
            ("rooms left open", self.rooms),
            ("streams left open", self.streams),
            ("tasks left (after − before)", self.tasks),
            ("memory after, against before (MiB)", self.memory_mib),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_read_from_openmetrics_text() {
        let text = "# HELP chat_rooms Rooms open.\n# TYPE chat_rooms gauge\nchat_rooms 3\n\
                    chat_members 9\nchat_streams 7\nchat_connections 2\nchat_tasks 15\n\
                    chat_messages_total 40\n# EOF\n";
        let gauges = Gauges::parse(text).expect("every gauge");
        assert_eq!(
            gauges,
            Gauges {
                rooms: 3,
                streams: 7,
                connections: 2,
                tasks: 15,
            }
        );
        assert_eq!(Gauges::parse("chat_rooms 3\n"), None);
    }
}
