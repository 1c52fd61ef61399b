//! The scenarios, one module each, and what every one of them is given: the
//! server to start, how big to be ([`Sizes`]), the loopback source addresses
//! to connect from, and the report's rows to add its figures to.

pub mod big_room;
pub mod churn;
pub mod fan_out;
pub mod history;
pub mod http2;
pub mod idle;
pub mod latency;
pub mod many_rooms;
pub mod multi;
pub mod polling;
pub mod replicas;
pub mod restart;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::target::Target;
use crate::wire::Sources;

/// How big each scenario is: the sizes, or tiny ones (`--quick`).
#[derive(Clone, Copy)]
pub struct Sizes {
    /// fan-out: streams of the one room.
    pub fan_out_subscribers: usize,
    /// fan-out: how many of those members post.
    pub fan_out_posters: usize,
    /// latency: streams of the one room.
    pub latency_subscribers: usize,
    /// latency: messages a second, from one poster.
    pub latency_rate: u64,
    /// idle: rooms, each with `idle_per_room` streams.
    pub idle_rooms: usize,
    pub idle_per_room: usize,
    /// polling: members long-polling the one room.
    pub polling_members: usize,
    /// polling: messages a second, from one poster.
    pub polling_rate: u64,
    /// many-rooms: rooms, each with `many_rooms_members` streaming members.
    pub many_rooms: usize,
    pub many_rooms_members: usize,
    /// churn: members opening and dropping streams and polls.
    pub churners: usize,
    /// history: rooms, their `--history`, and the characters each message
    /// carries beyond its send time.
    pub history_rooms: usize,
    pub history: usize,
    pub history_padding: usize,
    /// http2: streams of the one room, over `http2_connections` connections
    /// (at most 48 streams each: the server allows no more per connection).
    pub http2_streams: usize,
    pub http2_connections: usize,
    /// http2: messages a second, from one poster.
    pub http2_rate: u64,
    /// big-room: members of the one room, every one streaming.
    pub big_room_members: usize,
    /// big-room: messages a second, from one poster.
    pub big_room_rate: u64,
    /// multi: rooms (2 members each) whose Redis memory is measured, and
    /// the instances' `--history` (each room filled to it).
    pub multi_rooms: usize,
    pub multi_history: usize,
    /// restart: rooms of one member, each posted full (`--history`
    /// `restart_history`) with messages of `restart_padding` more characters,
    /// and the members (each streaming) of the room whose streams must be back.
    pub restart_rooms: usize,
    pub restart_history: usize,
    pub restart_padding: usize,
    pub restart_members: usize,
    /// replicas: messages sent one after another, measured with each setting.
    pub replicas_sends: usize,
    /// How long each measured window lasts.
    pub window: Duration,
}

pub const FULL: Sizes = Sizes {
    fan_out_subscribers: 1000,
    fan_out_posters: 600,
    latency_subscribers: 1000,
    latency_rate: 200,
    idle_rooms: 15,
    idle_per_room: 1000,
    polling_members: 1000,
    polling_rate: 20,
    many_rooms: 1000,
    many_rooms_members: 5,
    churners: 200,
    history_rooms: 1000,
    history: 50,
    history_padding: 2000,
    http2_streams: 1000,
    http2_connections: 25,
    http2_rate: 100,
    big_room_members: 10_000,
    big_room_rate: 20,
    multi_rooms: 1000,
    multi_history: 100,
    restart_rooms: 10_000,
    restart_history: 100,
    restart_padding: 100,
    restart_members: 1000,
    replicas_sends: 2000,
    window: Duration::from_secs(5),
};

pub const QUICK: Sizes = Sizes {
    fan_out_subscribers: 20,
    fan_out_posters: 4,
    latency_subscribers: 20,
    latency_rate: 50,
    idle_rooms: 2,
    idle_per_room: 10,
    polling_members: 10,
    polling_rate: 10,
    many_rooms: 10,
    many_rooms_members: 3,
    churners: 5,
    history_rooms: 5,
    history: 10,
    history_padding: 200,
    http2_streams: 20,
    http2_connections: 2,
    http2_rate: 20,
    big_room_members: 500,
    big_room_rate: 20,
    multi_rooms: 10,
    multi_history: 100,
    restart_rooms: 20,
    restart_history: 10,
    restart_padding: 50,
    restart_members: 20,
    replicas_sends: 50,
    window: Duration::from_millis(1000),
};

/// One line of the report.
pub struct Row {
    pub scenario: &'static str,
    pub figure: &'static str,
    pub ours: f64,
    pub floor: Option<f64>,
}

/// What a scenario runs with, and the rows it reports.
pub struct Bench {
    /// The chat server's binary.
    pub server: PathBuf,
    pub sizes: Sizes,
    pub sources: Arc<Sources>,
    pub rows: Vec<Row>,
}

impl Bench {
    /// Rows of figures the floor has no counterpart for.
    pub fn ours(
        &mut self,
        scenario: &'static str,
        figures: impl IntoIterator<Item = (&'static str, f64)>,
    ) {
        for (figure, ours) in figures {
            self.rows.push(Row {
                scenario,
                figure,
                ours,
                floor: None,
            });
        }
    }

    /// Rows of figures beside the floor's: (figure, ours, the floor's).
    pub fn compared(
        &mut self,
        scenario: &'static str,
        figures: impl IntoIterator<Item = (&'static str, f64, f64)>,
    ) {
        for (figure, ours, floor) in figures {
            self.rows.push(Row {
                scenario,
                figure,
                ours,
                floor: Some(floor),
            });
        }
    }

    /// The server, with `args`.
    pub async fn server(&self, args: &[&str]) -> Target {
        Target::server(&self.server, args).await
    }

    /// The server, with `args` and a metrics listener (for [`crate::leftovers`]).
    pub async fn watched_server(&self, args: &[&str]) -> Target {
        Target::watched_server(&self.server, args).await
    }
}
