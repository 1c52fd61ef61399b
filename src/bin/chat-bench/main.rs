//! chat-bench: the load tool for Chat Live Room, with the floor beside it.
//!
//! `cargo run --release --bin chat-bench` starts the release server (built
//! next to this program) and the floor (this program, `chat-bench floor`),
//! runs each scenario against both where the floor can do the same work, and
//! prints one table: every figure of ours, the floor's, and ours as a ratio of
//! the floor's. `--quick` runs every scenario tiny, to prove the tool works;
//! `--only NAME` runs one; `--rounds N` takes the median of N rounds.

mod floor;
mod https;
mod scenarios;
mod target;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use scenarios::{
    Pace, Posters, Room, Streams, Window, percentile_ms, prove_streams, prove_streams_via, rooms,
    rooms_via,
};
use target::Target;
use wire::{Conn, Sources};

/// How big each scenario is: the sizes, or tiny ones (`--quick`).
#[derive(Clone, Copy)]
struct Sizes {
    fan_out_subscribers: usize,
    fan_out_posters: usize,
    latency_subscribers: usize,
    latency_rate: u64,
    idle_rooms: usize,
    idle_per_room: usize,
    polling_members: usize,
    polling_rate: u64,
    many_rooms: usize,
    many_rooms_members: usize,
    churners: usize,
    history_rooms: usize,
    history: usize,
    history_padding: usize,
    http2_streams: usize,
    http2_connections: usize,
    http2_rate: u64,
    window: Duration,
}

const FULL: Sizes = Sizes {
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
    http2_connections: 10,
    http2_rate: 100,
    window: Duration::from_secs(5),
};

const QUICK: Sizes = Sizes {
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
    window: Duration::from_millis(1000),
};

/// One line of the report.
struct Row {
    scenario: &'static str,
    figure: &'static str,
    ours: f64,
    floor: Option<f64>,
}

struct Bench {
    server: PathBuf,
    sizes: Sizes,
    sources: Arc<Sources>,
    rows: Vec<Row>,
}

const SCENARIOS: [&str; 8] = [
    "fan-out",
    "latency",
    "idle",
    "polling",
    "many-rooms",
    "churn",
    "history",
    "http2",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("floor") {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the floor");
            floor::serve(listener, 4096).await;
        });
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let only: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1].as_str())
        .collect();
    let rounds: usize = args
        .windows(2)
        .find(|w| w[0] == "--rounds")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(1)
        .max(1);
    let server = args
        .windows(2)
        .find(|w| w[0] == "--server")
        .map(|w| PathBuf::from(&w[1]))
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("the benchmark's own path");
            exe.with_file_name("chat-live-room")
        });
    for name in &only {
        assert!(
            SCENARIOS.contains(name),
            "no scenario {name}; there are {SCENARIOS:?}"
        );
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut bench = Bench {
            server,
            sizes: if quick { QUICK } else { FULL },
            sources: Arc::new(Sources::default()),
            rows: Vec::new(),
        };
        for name in SCENARIOS {
            if !only.is_empty() && !only.contains(&name) {
                continue;
            }
            eprintln!("-- {name}");
            let mut runs = Vec::new();
            for _ in 0..rounds {
                let before = bench.rows.len();
                bench.run(name).await;
                runs.push(bench.rows.split_off(before));
            }
            bench.rows.extend(median(runs));
        }
        print_report(&bench.rows, quick, rounds);
    });
}

impl Bench {
    async fn run(&mut self, name: &str) {
        match name {
            "fan-out" => self.fan_out().await,
            "latency" => self.latency().await,
            "idle" => self.idle().await,
            "polling" => self.polling().await,
            "many-rooms" => self.many_rooms().await,
            "churn" => self.churn().await,
            "history" => self.history().await,
            "http2" => self.http2().await,
            _ => unreachable!("checked above"),
        }
    }

    /// Rows of figures the floor has no counterpart for.
    fn ours(
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

    async fn server(&self, args: &[&str]) -> Target {
        Target::server(&self.server, args).await
    }

    /// 1 room × N subscribers, M of them posting; deliveries are what the
    /// readers counted, so frames a target drops for a lagging subscriber (ours
    /// skips past its history, the floor's channel overwrites) are not.
    ///
    /// Saturated (each poster posts again as soon as it is answered), ours
    /// takes in far more messages than it delivers to everyone (a subscriber
    /// that falls behind skips what its room's history no longer holds), and
    /// each of the floor's subscribers writes hundreds of frames per syscall:
    /// not the same work, so saturated CPU per delivery is given for ours
    /// alone. The comparison is at equal work: both driven by the same M
    /// posters paced to the rate at which ours delivered messages saturated
    /// (its deliveries per second over N), their posts spread evenly (each
    /// posts every M / rate seconds). The rows say whether both then reach
    /// every subscriber with every message.
    async fn fan_out(&mut self) {
        let subscribers = self.sizes.fan_out_subscribers as f64;
        let target = self.server(&[]).await;
        let (room, streams) = self.fan_out_streams(&target).await;
        let ours = self
            .fan_out_window(&target, &room, &streams, Pace::Saturated)
            .await;
        let rate = ours.deliveries_per_second() / subscribers;
        assert!(rate > 0.0, "the server delivered nothing");
        let paced = Pace::Spread(Duration::from_secs_f64(
            self.sizes.fan_out_posters as f64 / rate,
        ));
        let ours_paced = self.fan_out_window(&target, &room, &streams, paced).await;
        streams.close().await;
        target.stop().await;

        let target = Target::floor().await;
        let (room, streams) = self.fan_out_streams(&target).await;
        let floor_paced = self.fan_out_window(&target, &room, &streams, paced).await;
        let floor = self
            .fan_out_window(&target, &room, &streams, Pace::Saturated)
            .await;
        streams.close().await;
        target.stop().await;

        let reached = |w: &Window| w.deliveries as f64 / w.posts.max(1) as f64;
        let compared = [
            (
                "CPU per delivery (µs)",
                ours_paced.cpu_per_delivery_us(),
                floor_paced.cpu_per_delivery_us(),
            ),
            (
                "messages per second, paced to what ours delivered",
                ours_paced.posts_per_second(),
                floor_paced.posts_per_second(),
            ),
            (
                "subscribers reached per message, paced",
                reached(&ours_paced),
                reached(&floor_paced),
            ),
            (
                "messages accepted per second, saturated",
                ours.posts_per_second(),
                floor.posts_per_second(),
            ),
            (
                "subscribers reached per message, saturated",
                reached(&ours),
                reached(&floor),
            ),
            (
                "deliveries per second, saturated",
                ours.deliveries_per_second(),
                floor.deliveries_per_second(),
            ),
        ];
        for (figure, ours, floor) in compared {
            self.rows.push(Row {
                scenario: "fan-out",
                figure,
                ours,
                floor: Some(floor),
            });
        }
        self.ours(
            "fan-out",
            [(
                "CPU per delivery, saturated (µs)",
                ours.cpu_per_delivery_us(),
            )],
        );
    }

    /// The fan-out room on `target`, every subscriber's stream open and proven.
    async fn fan_out_streams(&self, target: &Target) -> (Room, Streams) {
        let subscribers = self.sizes.fan_out_subscribers;
        let mut room = rooms(target, &self.sources, 1, subscribers).await;
        let streams = Streams::open(target.addr, &self.sources, &room, subscribers, false).await;
        prove_streams(target, &self.sources, &room, &streams, subscribers).await;
        (room.remove(0), streams)
    }

    /// One window of the fan-out room's posters at `pace`, measured once every
    /// poster has begun.
    async fn fan_out_window(
        &self,
        target: &Target,
        room: &Room,
        streams: &Streams,
        pace: Pace,
    ) -> Window {
        let who = (0..self.sizes.fan_out_posters)
            .map(|m| (room.clone(), m))
            .collect();
        let posters = Posters::start(target.addr, &self.sources, who, pace, 0).await;
        let warm_up = match pace {
            Pace::Saturated => Duration::from_secs(1),
            Pace::Together(every) | Pace::Spread(every) => every.max(Duration::from_secs(1)),
        };
        wire::pause(warm_up).await;
        let window = Window::measure(target, streams, &posters, self.sizes.window).await;
        let (_, errors) = posters.stop().await;
        assert_eq!(errors, 0, "posting failed");
        window
    }

    /// 1 poster at a steady rate, N subscribers: delivery latency.
    async fn latency(&mut self) {
        let s = self.sizes;
        let mut figures = Vec::new();
        for target in [self.server(&[]).await, Target::floor().await] {
            let room = rooms(&target, &self.sources, 1, s.latency_subscribers).await;
            let streams = Streams::open(
                target.addr,
                &self.sources,
                &room,
                s.latency_subscribers,
                true,
            )
            .await;
            prove_streams(
                &target,
                &self.sources,
                &room,
                &streams,
                s.latency_subscribers,
            )
            .await;
            let every = Duration::from_micros(1_000_000 / s.latency_rate);
            let posters = Posters::start(
                target.addr,
                &self.sources,
                vec![(room[0].clone(), 0)],
                Pace::Together(every),
                0,
            )
            .await;
            wire::pause(s.window).await;
            let (_, errors) = posters.stop().await;
            wire::pause(Duration::from_millis(500)).await;
            let mut delays = streams.close().await;
            target.stop().await;
            assert_eq!(errors, 0, "posting failed");
            figures.push((
                percentile_ms(&mut delays, 50.0),
                percentile_ms(&mut delays, 99.0),
            ));
        }
        for (figure, pick) in [("p50 latency (ms)", 0), ("p99 latency (ms)", 1)] {
            let value = |f: &(f64, f64)| if pick == 0 { f.0 } else { f.1 };
            self.rows.push(Row {
                scenario: "latency",
                figure,
                ours: value(&figures[0]),
                floor: Some(value(&figures[1])),
            });
        }
    }

    /// Many open streams doing nothing: memory per stream, and what the
    /// heartbeats cost.
    async fn idle(&mut self) {
        let s = self.sizes;
        let count = (s.idle_rooms * s.idle_per_room) as f64;
        let mut per_stream = Vec::new();
        let mut heartbeat_cpu = 0.0;
        for target in [
            self.server(&["--keepalive", "2"]).await,
            Target::floor().await,
        ] {
            let all = rooms(&target, &self.sources, s.idle_rooms, s.idle_per_room).await;
            wire::pause(Duration::from_millis(500)).await;
            let before = target.rss_bytes();
            let streams =
                Streams::open(target.addr, &self.sources, &all, s.idle_per_room, false).await;
            prove_streams(&target, &self.sources, &all, &streams, s.idle_per_room).await;
            wire::pause(Duration::from_millis(500)).await;
            per_stream.push((target.rss_bytes() as f64 - before as f64) / count / 1024.0);
            if target.name == "server" {
                let cpu = target.cpu_seconds();
                let seconds = s.window.as_secs_f64() * 2.0;
                wire::pause(Duration::from_secs_f64(seconds)).await;
                let heartbeats = count * seconds / 2.0;
                heartbeat_cpu = (target.cpu_seconds() - cpu) * 1e6 / heartbeats;
            }
            streams.close().await;
            target.stop().await;
        }
        self.rows.push(Row {
            scenario: "idle",
            figure: "resident memory per stream (KiB)",
            ours: per_stream[0],
            floor: Some(per_stream[1]),
        });
        self.ours("idle", [("CPU per heartbeat (µs)", heartbeat_cpu)]);
    }

    /// N members long-polling one room while one posts at a steady rate.
    async fn polling(&mut self) {
        let s = self.sizes;
        let target = self.server(&[]).await;
        let room = rooms(&target, &self.sources, 1, s.polling_members)
            .await
            .remove(0);
        let tally = Arc::new(wire::Tally::default());
        let stop = wire::tokio_stop::Stop::default();
        let mut pollers = tokio::task::JoinSet::new();
        for member in 0..s.polling_members {
            let mut conn = Conn::open(target.addr, self.sources.next())
                .await
                .expect("connect");
            let (room, tally, stop) = (room.clone(), Arc::clone(&tally), stop.clone());
            pollers.spawn(async move {
                let mut delays = Vec::new();
                let mut after = 0;
                while !stop.is_set() {
                    let path = room.poll_path(after);
                    let answer = tokio::select! {
                        answer = conn.send("GET", &path, room.cookie(member), None) => answer,
                        () = stop.wait() => break,
                    };
                    let Ok(answer) =
                        answer.map_err(|_| tally.errors.fetch_add(1, Ordering::Relaxed))
                    else {
                        break;
                    };
                    if answer.status != 200 {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    let now = wire::now_micros();
                    let mut body = answer.body;
                    after = last_id(&body).unwrap_or(after);
                    let mut count = 0;
                    wire::take_messages(&mut body, |sent| {
                        count += 1;
                        delays.push(now.saturating_sub(sent) as u32);
                    });
                    tally.deliveries.fetch_add(count, Ordering::Relaxed);
                }
                delays
            });
        }
        wire::pause(Duration::from_millis(500)).await;
        let every = Duration::from_micros(1_000_000 / s.polling_rate);
        let posters = Posters::start(
            target.addr,
            &self.sources,
            vec![(room.clone(), 0)],
            Pace::Together(every),
            0,
        )
        .await;
        wire::pause(Duration::from_secs(1)).await;
        let (cpu, delivered) = (
            target.cpu_seconds(),
            tally.deliveries.load(Ordering::Relaxed),
        );
        wire::pause(s.window).await;
        let cpu = target.cpu_seconds() - cpu;
        let delivered = tally.deliveries.load(Ordering::Relaxed) - delivered;
        let (_, errors) = posters.stop().await;
        stop.set();
        let mut delays = Vec::new();
        while let Some(done) = pollers.join_next().await {
            delays.extend(done.unwrap_or_default());
        }
        target.stop().await;
        assert_eq!(
            errors + tally.errors.load(Ordering::Relaxed),
            0,
            "polling failed"
        );
        self.ours(
            "polling",
            [
                ("CPU per delivery (µs)", cpu * 1e6 / delivered.max(1) as f64),
                ("p50 latency (ms)", percentile_ms(&mut delays, 50.0)),
                ("p99 latency (ms)", percentile_ms(&mut delays, 99.0)),
            ],
        );
    }

    /// Many small rooms, each member streaming, one member of each posting.
    async fn many_rooms(&mut self) {
        let s = self.sizes;
        let target = self.server(&[]).await;
        let all = rooms(&target, &self.sources, s.many_rooms, s.many_rooms_members).await;
        let streams =
            Streams::open(target.addr, &self.sources, &all, s.many_rooms_members, true).await;
        prove_streams(&target, &self.sources, &all, &streams, s.many_rooms_members).await;
        let who = all.iter().map(|room| (room.clone(), 0)).collect();
        let posters = Posters::start(
            target.addr,
            &self.sources,
            who,
            Pace::Together(Duration::from_millis(500)),
            0,
        )
        .await;
        wire::pause(Duration::from_secs(1)).await;
        let window = Window::measure(&target, &streams, &posters, s.window).await;
        let (_, errors) = posters.stop().await;
        let stream_errors = Arc::clone(&streams.tally);
        let mut delays = streams.close().await;
        target.stop().await;
        let stream_errors = stream_errors.errors.load(Ordering::Relaxed);
        assert_eq!(errors + stream_errors, 0, "many rooms: errors");
        self.ours(
            "many-rooms",
            [
                ("CPU per delivery (µs)", window.cpu_per_delivery_us()),
                ("p50 latency (ms)", percentile_ms(&mut delays, 50.0)),
                ("p99 latency (ms)", percentile_ms(&mut delays, 99.0)),
            ],
        );
    }

    /// Streams and polls opening and closing all the time (a reload storm)
    /// while messages flow; memory afterwards against before.
    async fn churn(&mut self) {
        let s = self.sizes;
        // A grace long enough that a churner's gap between two opens under
        // load never makes it leave.
        let target = self.server(&["--grace", "5"]).await;
        let room = rooms(&target, &self.sources, 1, s.churners + 1)
            .await
            .remove(0);
        let keeper = Streams::open(
            target.addr,
            &self.sources,
            std::slice::from_ref(&room),
            1,
            false,
        )
        .await;
        prove_streams(
            &target,
            &self.sources,
            std::slice::from_ref(&room),
            &keeper,
            1,
        )
        .await;
        wire::pause(Duration::from_millis(500)).await;
        let before = target.rss_bytes();
        let poster = Posters::start(
            target.addr,
            &self.sources,
            vec![(room.clone(), 0)],
            Pace::Together(Duration::from_millis(50)),
            0,
        )
        .await;
        let stop = wire::tokio_stop::Stop::default();
        let opened = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut churners = tokio::task::JoinSet::new();
        for member in 1..=s.churners {
            let (room, stop, opened, failed, sources, addr) = (
                room.clone(),
                stop.clone(),
                Arc::clone(&opened),
                Arc::clone(&failed),
                Arc::clone(&self.sources),
                target.addr,
            );
            churners.spawn(async move {
                let mut n = 0u64;
                while !stop.is_set() {
                    n += 1;
                    // Every other turn a poll, else a stream read for a moment.
                    let ok = if n.is_multiple_of(2) {
                        let path = format!("{}&wait=0", room.poll_path(0));
                        let answer = wire::once(
                            addr,
                            sources.next(),
                            "GET",
                            &path,
                            room.cookie(member),
                            None,
                        )
                        .await;
                        matches!(answer, Ok(a) if a.status == 200)
                    } else {
                        match wire::open_stream(
                            addr,
                            sources.next(),
                            &room.stream_path(),
                            room.cookie(member),
                        )
                        .await
                        {
                            Ok(mut stream) => {
                                let mut head = [0u8; 64];
                                let read = tokio::time::timeout(
                                    Duration::from_secs(5),
                                    tokio::io::AsyncReadExt::read(&mut stream, &mut head),
                                )
                                .await;
                                matches!(read, Ok(Ok(n)) if head[..n].starts_with(b"HTTP/1.1 200"))
                            }
                            Err(_) => false,
                        }
                    };
                    let counter = if ok { &opened } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let started = std::time::Instant::now();
        wire::pause(s.window * 2).await;
        stop.set();
        while churners.join_next().await.is_some() {}
        let seconds = started.elapsed().as_secs_f64();
        let (_, post_errors) = poster.stop().await;
        keeper.close().await;
        // Everyone's grace (5 s) and the room's pass; then memory should be back.
        wire::pause(Duration::from_secs(7)).await;
        let after = target.rss_bytes();
        let present = wire::once(
            target.addr,
            self.sources.next(),
            "GET",
            "/healthz",
            None,
            None,
        )
        .await;
        target.stop().await;
        assert!(
            present.is_ok_and(|a| a.status == 200),
            "the server still answers"
        );
        let failed = failed.load(Ordering::Relaxed) + post_errors;
        self.ours(
            "churn",
            [
                (
                    "streams and polls opened per second",
                    opened.load(Ordering::Relaxed) as f64 / seconds,
                ),
                ("errors", failed as f64),
                (
                    "memory after, against before (MiB)",
                    (after as f64 - before as f64) / 1048576.0,
                ),
            ],
        );
    }

    /// Rooms each holding their full history of long messages: memory per kept
    /// message against the message's own size.
    async fn history(&mut self) {
        let s = self.sizes;
        let history = s.history.to_string();
        let target = self
            .server(&["--history", &history, "--max-message-chars", "10000"])
            .await;
        let all = rooms(&target, &self.sources, s.history_rooms, 1).await;
        wire::pause(Duration::from_millis(500)).await;
        let before = target.rss_bytes();
        let who: Vec<(Room, usize)> = all.iter().map(|room| (room.clone(), 0)).collect();
        let posters = Posters::start(
            target.addr,
            &self.sources,
            who,
            Pace::Saturated,
            s.history_padding,
        )
        .await;
        let wanted = (s.history_rooms * s.history) as u64;
        while posters.tally.deliveries.load(Ordering::Relaxed) < wanted {
            wire::pause(Duration::from_millis(20)).await;
        }
        let (sent, errors) = posters.stop().await;
        wire::pause(Duration::from_millis(500)).await;
        let kept = (s.history_rooms * s.history) as f64;
        let per_message = (target.rss_bytes() as f64 - before as f64) / kept;
        target.stop().await;
        assert_eq!(errors, 0, "history: errors after {sent} posts");
        let text = ("b 12345678 ".len() + s.history_padding) as f64;
        self.ours(
            "history",
            [
                ("memory per kept message (bytes)", per_message),
                ("the message's text (bytes)", text),
            ],
        );
    }

    /// HTTP/2 over TLS, as browsers connect: N streams of one room, each a
    /// member of its own, multiplexed on a few connections (rooms set up and
    /// messages posted over HTTP/2 too, on one more connection). Resident
    /// memory per stream (the streams' connections, TLS included, shared among
    /// them), then CPU per delivery and latency while one member posts at a
    /// steady rate.
    async fn http2(&mut self) {
        let s = self.sizes;
        let certificate = https::Certificate::generate();
        let tls_args = certificate.server_args();
        let tls_args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
        let target = self.server(&tls_args).await;
        let tls = certificate.connector();
        let mut setup = https::H2::connect(target.addr, self.sources.next(), &tls)
            .await
            .expect("connect over HTTP/2");
        let room = rooms_via(&setup, 1, s.http2_streams).await;
        wire::pause(Duration::from_millis(500)).await;
        let before = target.rss_bytes();
        let streams = https::open_streams(
            target.addr,
            &self.sources,
            &tls,
            &room[0],
            s.http2_streams,
            s.http2_connections,
            true,
        )
        .await;
        prove_streams_via(&mut setup, &room, &streams, s.http2_streams).await;
        wire::pause(Duration::from_millis(500)).await;
        let per_stream =
            (target.rss_bytes() as f64 - before as f64) / s.http2_streams as f64 / 1024.0;
        let every = Duration::from_micros(1_000_000 / s.http2_rate);
        let posters = Posters::with(vec![(setup, room[0].clone(), 0)], Pace::Together(every), 0);
        wire::pause(Duration::from_secs(1)).await;
        let window = Window::measure(&target, &streams, &posters, s.window).await;
        let (sent, errors) = posters.stop().await;
        // Every stream gets every message, the probe included: none stalled
        // for want of flow-control window.
        let expected = (sent + 1) * s.http2_streams as u64;
        let all_arrived = streams.wait_for(expected, Duration::from_secs(10)).await;
        let (delivered, stream_errors) = (
            streams.deliveries(),
            streams.tally.errors.load(Ordering::Relaxed),
        );
        let mut delays = streams.close().await;
        target.stop().await;
        assert_eq!(errors + stream_errors, 0, "http2: errors");
        assert!(
            all_arrived,
            "http2: {delivered} of {expected} messages arrived"
        );
        self.ours(
            "http2",
            [
                ("resident memory per stream (KiB)", per_stream),
                ("CPU per delivery (µs)", window.cpu_per_delivery_us()),
                ("p50 latency (ms)", percentile_ms(&mut delays, 50.0)),
                ("p99 latency (ms)", percentile_ms(&mut delays, 99.0)),
            ],
        );
    }
}

/// The `"last_id":N` of a poll's answer.
fn last_id(body: &[u8]) -> Option<u64> {
    let at = wire::find(body, b"\"last_id\":")? + b"\"last_id\":".len();
    let digits: String = body[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    digits.parse().ok()
}

/// Each figure's median over the rounds.
fn median(runs: Vec<Vec<Row>>) -> Vec<Row> {
    let mut runs = runs.into_iter();
    let Some(mut first) = runs.next() else {
        return Vec::new();
    };
    let rest: Vec<Vec<Row>> = runs.collect();
    for (i, row) in first.iter_mut().enumerate() {
        let mut ours: Vec<f64> = std::iter::once(row.ours)
            .chain(rest.iter().filter_map(|r| r.get(i).map(|r| r.ours)))
            .collect();
        ours.sort_by(f64::total_cmp);
        row.ours = ours[ours.len() / 2];
        if let Some(floor) = row.floor {
            let mut floors: Vec<f64> = std::iter::once(floor)
                .chain(rest.iter().filter_map(|r| r.get(i).and_then(|r| r.floor)))
                .collect();
            floors.sort_by(f64::total_cmp);
            row.floor = Some(floors[floors.len() / 2]);
        }
    }
    first
}

fn print_report(rows: &[Row], quick: bool, rounds: usize) {
    println!(
        "chat-bench{}: {} round(s), {} cores",
        if quick { " --quick" } else { "" },
        rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| scenario | figure | ours | floor | ours / floor |");
    println!("|---|---|---:|---:|---:|");
    for row in rows {
        let (floor, ratio) = match row.floor {
            Some(floor) => (format!("{floor:.3}"), format!("{:.2}×", row.ours / floor)),
            None => ("—".to_owned(), "—".to_owned()),
        };
        println!(
            "| {} | {} | {:.3} | {floor} | {ratio} |",
            row.scenario, row.figure, row.ours
        );
    }
}
