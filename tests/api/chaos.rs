//! Chaos loses nothing: the real server binary, subscribers whose event streams
//! go through a relay that cuts a tenth of them every second (half with a reset,
//! half with a FIN), and posters posting straight to the server all the while.
//! Every subscriber reconnects by itself with `Last-Event-ID`, as `EventSource`
//! does, and ends with every message exactly once, in order; afterwards the
//! server's gauges are back where they were and its resident memory is within a
//! few MiB of where it was after a first, warm-up round of the same.
//!
//! The test prints its figures (run it with `--nocapture`); `docs/operations.md`
//! quotes them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::seq::IndexedRandom as _;
use reqwest::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval, interval_at, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    PATIENCE, ResumingEvents, RunningServer, SseEvent, User, user_at, user_at_from,
};
use crate::relay::{ConnectionId, Cut, Relay};

const ROOMS: usize = 2;
const SUBSCRIBERS_PER_ROOM: usize = 20;
const POSTERS_PER_ROOM: usize = 2;
/// Each poster posts one message this often.
const POST_EVERY: Duration = Duration::from_millis(50);
/// The relay cuts one in this many of its open connections every [`CUT_EVERY`].
const CUT_ONE_IN: usize = 10;
const CUT_EVERY: Duration = Duration::from_secs(1);
const WARM_UP: Duration = Duration::from_secs(5);
const CHAOS: Duration = Duration::from_secs(30);
/// Longest wait, once posting stopped, for every subscriber to have every
/// message, and for the server's gauges to settle: generous, for CI's two busy
/// cores.
const CATCH_UP: Duration = Duration::from_secs(30);
/// How far the resident memory may grow from the warm-up to the end.
const RSS_SLACK_KIB: u64 = 8 * 1024;
/// A subscriber waits this long for an event, then looks again (between rounds
/// its stream is quiet).
const READ_WAIT: Duration = Duration::from_secs(5);

/// The limits raised so that only the chaos can lose anything: posters post
/// 20 a second, history reaches back to the first message, and a member whose
/// stream is down is not announced as gone for 30 s.
const SERVER_ARGS: &[&str] = &[
    "--metrics-bind",
    "127.0.0.1:0",
    "--message-rate",
    "100000/s",
    "--message-burst",
    "100000",
    "--history",
    "10000",
    "--grace",
    "30",
];

/// With 40 subscribers through the relay and posters posting directly, a relay
/// that cuts 4 streams a second (2 with a reset, 2 with a FIN) for 30 s loses
/// and repeats nothing: every subscriber has every message once, in the same
/// order; the streams, members and connections come back to what they were
/// after a warm-up round, and the resident memory is within 8 MiB of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_a_tenth_of_the_streams_every_second_loses_nothing() {
    // Arrange: the binary, the relay, two rooms of two posters and twenty
    // subscribers each; every subscriber has heard "ready" (so its stream has
    // an id to resume from) before the rounds begin.
    let started = Instant::now();
    let server = Server::start().await;
    let relay = Arc::new(Relay::start_keeping_source(server.addr).await);
    let mut posters = Vec::new();
    let mut codes = Vec::new();
    for room in 0..ROOMS {
        let index = room * POSTERS_PER_ROOM;
        let mut creator = user_at(&server.base);
        let code = creator.create_room_ok(&format!("poster{index}")).await;
        posters.push(Poster::new(index, room, &code, &creator));
        for index in index + 1..index + POSTERS_PER_ROOM {
            let mut poster = user_at(&server.base);
            let joined = poster.join(&format!("poster{index}"), &code).await;
            assert_eq!(joined.status(), StatusCode::SEE_OTHER);
            posters.push(Poster::new(index, room, &code, &poster));
        }
        codes.push(code);
    }
    let stop_listening = CancellationToken::new();
    let mut subscribers = Vec::new();
    for (room, code) in codes.iter().enumerate() {
        let mut streams = Vec::new();
        for n in 0..SUBSCRIBERS_PER_ROOM {
            let mut joiner = user_at(&server.base);
            let joined = joiner.join(&format!("sub{n}"), code).await;
            assert_eq!(joined.status(), StatusCode::SEE_OTHER);
            // The same person (address and cookie), reaching the server
            // through the relay.
            let mut listener = user_at_from(&relay.base, joiner.from);
            listener.cookie = joiner.cookie.clone();
            streams.push(ResumingEvents::open(listener, code).await);
        }
        user_at_from(&server.base, posters[room * POSTERS_PER_ROOM].from)
            .with_cookie(&posters[room * POSTERS_PER_ROOM].cookie)
            .say(code, "ready")
            .await;
        for mut events in streams {
            let ready = events.next_message().await;
            assert_eq!(ready.text(), "ready", "{ready:?}");
            subscribers.push(Subscriber::listen(room, events, stop_listening.clone()));
        }
    }
    let gauges = Gauges {
        rooms: ROOMS as u64,
        members: (ROOMS * (POSTERS_PER_ROOM + SUBSCRIBERS_PER_ROOM)) as u64,
        streams: (ROOMS * SUBSCRIBERS_PER_ROOM) as u64,
        // Every stream's (the metrics listener's do not count).
        connections: (ROOMS * SUBSCRIBERS_PER_ROOM) as u64,
    };

    // Act: a warm-up round, then the chaos, each followed by the subscribers
    // catching up and the server's gauges settling.
    let warm_up = run_round(WARM_UP, &relay, &mut posters, &subscribers).await;
    let before = server.settled(gauges).await;
    let rss_before = server.rss_kib();
    let chaos = run_round(CHAOS, &relay, &mut posters, &subscribers).await;
    let after = server.settled(gauges).await;
    let rss_after = server.rss_kib();
    stop_listening.cancel();
    let mut heard = Vec::new();
    for subscriber in subscribers {
        heard.push((subscriber.room, subscriber.finish().await));
    }

    // Assert
    let posted_in_chaos: u64 = chaos.posted.iter().sum();
    let delivered_in_chaos: usize = heard
        .iter()
        .map(|(room, heard)| heard.messages.len() - warm_up.heard_in(*room, &posters))
        .sum();
    let reconnects: usize = heard.iter().map(|(_, heard)| heard.reconnects).sum();
    let cuts = Cuts {
        abrupt: warm_up.cuts.abrupt + chaos.cuts.abrupt,
        clean: warm_up.cuts.clean + chaos.cuts.clean,
    };
    let counted_in_chaos = after.deliveries - before.deliveries;
    println!(
        "chaos: {subscribers} subscribers in {ROOMS} rooms through the relay, {poster_count} posters \
         posting directly every {POST_EVERY:?}; every {CUT_EVERY:?} the relay cut 1 in {CUT_ONE_IN} of \
         its open connections\n\
         rounds: warm-up {WARM_UP:?} ({} messages, {} cuts), chaos {CHAOS:?} ({posted_in_chaos} \
         messages, {} cuts); whole test {:.1} s\n\
         connections cut: {} ({} abrupt, {} clean); reconnects: {reconnects}; relayed connections: {}\n\
         chaos round: {posted_in_chaos} messages, {delivered_in_chaos} deliveries received by \
         subscribers, {counted_in_chaos} counted by the server\n\
         RSS: {:.1} MiB after the warm-up, {:.1} MiB after the chaos ({:+.1} MiB)\n\
         gauges after the warm-up {:?}, after the chaos {:?}",
        warm_up.posted.iter().sum::<u64>(),
        warm_up.cuts.total(),
        chaos.cuts.total(),
        started.elapsed().as_secs_f64(),
        cuts.total(),
        cuts.abrupt,
        cuts.clean,
        relay.connections(),
        mib(rss_before),
        mib(rss_after),
        (rss_after as f64 - rss_before as f64) / 1024.0,
        before.gauges,
        after.gauges,
        subscribers = ROOMS * SUBSCRIBERS_PER_ROOM,
        poster_count = posters.len(),
    );
    for (room, code) in codes.iter().enumerate() {
        let in_room: Vec<&Heard> = heard
            .iter()
            .filter(|(r, _)| *r == room)
            .map(|(_, heard)| heard)
            .collect();
        let expected: Vec<(usize, u64)> = posters
            .iter()
            .filter(|poster| poster.room == room)
            .map(|poster| (poster.index, poster.posted))
            .collect();
        for (n, heard) in in_room.iter().enumerate() {
            heard.assert_every_message_once_in_order(&format!("sub{n} of {code}"), &expected);
            assert_eq!(
                heard.messages, in_room[0].messages,
                "sub{n} of {code} heard the messages with other ids or in another order than sub0"
            );
            assert!(
                heard.others.is_empty(),
                "sub{n} of {code} got notices during the rounds (reconnecting must announce nothing): {:?}",
                heard.others
            );
        }
    }
    assert!(
        chaos.cuts.abrupt >= 30 && chaos.cuts.clean >= 30,
        "the relay cut too little to prove anything: {:?}",
        chaos.cuts
    );
    assert!(
        reconnects >= cuts.total() / 2,
        "subscribers reconnected {reconnects} times for {cuts:?}"
    );
    assert_eq!(
        after.messages - before.messages,
        posted_in_chaos,
        "the server counts every message posted once"
    );
    assert_eq!(after.resets, 0, "no stream was told to reset");
    assert_eq!(after.refusals, 0, "no request was refused: {after:?}");
    assert!(
        rss_after <= rss_before + RSS_SLACK_KIB,
        "the server's resident memory grew from {:.1} MiB after the warm-up to {:.1} MiB after the chaos",
        mib(rss_before),
        mib(rss_after)
    );
    let log = server.log();
    let alarming: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" ERROR ") || line.contains(" WARN "))
        .collect();
    assert!(
        alarming.is_empty(),
        "cut connections are normal, not worth a warning:\n{}",
        alarming.join("\n")
    );
    // Every event a stream hands out counts, replays after a reconnect too; some
    // of those were lost in flight when the relay cut, so the server counts at
    // least what the subscribers received.
    assert!(
        counted_in_chaos >= delivered_in_chaos as u64,
        "the server counted fewer deliveries ({counted_in_chaos}) than the subscribers received \
         ({delivered_in_chaos})"
    );
}

// ---------------------------------------------------------------------------
// Rounds

/// What a round did.
struct Round {
    /// Messages each poster posted in the round, by poster index.
    posted: Vec<u64>,
    cuts: Cuts,
}

impl Round {
    /// Messages a subscriber of `room` has heard at the end of this round (the
    /// first round).
    fn heard_in(&self, room: usize, posters: &[Poster]) -> usize {
        posters
            .iter()
            .filter(|poster| poster.room == room)
            .map(|poster| self.posted[poster.index] as usize)
            .sum()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Cuts {
    abrupt: usize,
    clean: usize,
}

impl Cuts {
    fn total(&self) -> usize {
        self.abrupt + self.clean
    }
}

/// Every poster posts for `length` while the relay cuts; then the cutting
/// stops and every subscriber catches up with every message posted so far.
async fn run_round(
    length: Duration,
    relay: &Arc<Relay>,
    posters: &mut [Poster],
    subscribers: &[Subscriber],
) -> Round {
    let stop_cutting = CancellationToken::new();
    let cutter = tokio::spawn(cut_repeatedly(Arc::clone(relay), stop_cutting.clone()));
    let posting: Vec<JoinHandle<u64>> = posters
        .iter()
        .map(|poster| tokio::spawn(poster.clone().post_for(length)))
        .collect();
    let mut posted = Vec::new();
    for (poster, task) in posters.iter_mut().zip(posting) {
        let next = timeout(length + CATCH_UP, task)
            .await
            .expect("posting ends on time")
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        posted.push(next - poster.posted);
        poster.posted = next;
    }
    stop_cutting.cancel();
    let cuts = cutter.await.expect("the cutter does not panic");
    let deadline = Instant::now() + CATCH_UP;
    for (n, subscriber) in subscribers.iter().enumerate() {
        let expected: u64 = posters
            .iter()
            .filter(|poster| poster.room == subscriber.room)
            .map(|poster| poster.posted)
            .sum();
        let mut progress = subscriber.progress.clone();
        let caught_up = timeout_at(
            deadline,
            progress.wait_for(|&heard| heard as u64 >= expected),
        )
        .await;
        let heard = *subscriber.progress.borrow();
        assert!(
            matches!(caught_up, Ok(Ok(_))),
            "subscriber {n} (room {}) heard {} of {expected} messages {CATCH_UP:?} after posting stopped",
            subscriber.room,
            heard
        );
    }
    Round { posted, cuts }
}

/// Every [`CUT_EVERY`] until `stop`, cuts one in [`CUT_ONE_IN`] of the relay's
/// open connections, chosen at random, alternately abruptly and cleanly.
async fn cut_repeatedly(relay: Arc<Relay>, stop: CancellationToken) -> Cuts {
    let mut cuts = Cuts::default();
    let mut tick = interval_at(Instant::now() + CUT_EVERY, CUT_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return cuts,
            _ = tick.tick() => {}
        }
        let open = relay.open_connections();
        let chosen: Vec<ConnectionId> = open
            .choose_multiple(&mut rand::rng(), open.len().div_ceil(CUT_ONE_IN))
            .copied()
            .collect();
        for id in chosen {
            let how = if cuts.total() % 2 == 0 {
                Cut::Abrupt
            } else {
                Cut::Clean
            };
            if relay.cut_one(id, how) {
                match how {
                    Cut::Abrupt => cuts.abrupt += 1,
                    Cut::Clean => cuts.clean += 1,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Posters and subscribers

/// A member who posts numbered messages (`p{index} {n}`) straight to the
/// server, with a fresh connection each round.
#[derive(Clone)]
struct Poster {
    index: usize,
    room: usize,
    code: String,
    base: String,
    from: IpAddr,
    cookie: String,
    /// Messages posted so far; the next one is numbered so.
    posted: u64,
}

impl Poster {
    fn new(index: usize, room: usize, code: &str, user: &User) -> Self {
        Self {
            index,
            room,
            code: code.to_owned(),
            base: user.url(""),
            from: user.from,
            cookie: user.cookie.clone().expect("a member has a cookie"),
            posted: 0,
        }
    }

    /// Posts one message every [`POST_EVERY`] for `length`; the number of the
    /// next message.
    async fn post_for(self, length: Duration) -> u64 {
        let user = user_at_from(&self.base, self.from).with_cookie(&self.cookie);
        let end = Instant::now() + length;
        let mut tick = interval(POST_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut next = self.posted;
        loop {
            tick.tick().await;
            if Instant::now() >= end {
                return next;
            }
            user.say(&self.code, &format!("p{} {next}", self.index))
                .await;
            next += 1;
        }
    }
}

trait WithCookie {
    fn with_cookie(self, cookie: &str) -> Self;
}

impl WithCookie for User {
    fn with_cookie(mut self, cookie: &str) -> Self {
        self.cookie = Some(cookie.to_owned());
        self
    }
}

/// One subscriber's stream, read by a task of its own until the test stops it.
struct Subscriber {
    room: usize,
    /// Messages heard so far.
    progress: watch::Receiver<usize>,
    task: JoinHandle<Heard>,
}

/// What a subscriber heard after "ready".
#[derive(Debug, Default)]
struct Heard {
    /// Each message's id and text, in the order received.
    messages: Vec<(u64, String)>,
    /// Every other event (there should be none).
    others: Vec<SseEvent>,
    reconnects: usize,
}

impl Subscriber {
    fn listen(room: usize, mut events: ResumingEvents, stop: CancellationToken) -> Self {
        let (progress, watching) = watch::channel(0);
        let task = tokio::spawn(async move {
            let mut heard = Heard::default();
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => break,
                    event = events.next_event_within(READ_WAIT) => event,
                };
                match event {
                    // Quiet (between rounds): look again.
                    None => {}
                    Some(event) if event.event == "message" => {
                        let id = event.id.expect("a message has an id");
                        heard.messages.push((id, event.text().to_owned()));
                    }
                    Some(event) => heard.others.push(event),
                }
                progress.send_replace(heard.messages.len());
            }
            heard.reconnects = events.reconnects;
            heard
        });
        Self {
            room,
            progress: watching,
            task,
        }
    }

    async fn finish(self) -> Heard {
        timeout(PATIENCE, self.task)
            .await
            .expect("a subscriber stops when told")
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
    }
}

impl Heard {
    /// Ids only grow, and each poster's messages are all there, once each, in
    /// the order posted; `expected` is each poster's index and count.
    fn assert_every_message_once_in_order(&self, who: &str, expected: &[(usize, u64)]) {
        if let Some(pair) = self.messages.windows(2).find(|pair| pair[1].0 <= pair[0].0) {
            panic!(
                "{who} got id {} after id {} ({:?} after {:?}): a repeat or a reorder",
                pair[1].0, pair[0].0, pair[1].1, pair[0].1
            );
        }
        let mut by_poster: HashMap<usize, Vec<u64>> = HashMap::new();
        for (_, text) in &self.messages {
            let (poster, n) = text
                .strip_prefix('p')
                .and_then(|rest| rest.split_once(' '))
                .and_then(|(poster, n)| Some((poster.parse().ok()?, n.parse().ok()?)))
                .unwrap_or_else(|| panic!("{who} got a message nobody posted: {text:?}"));
            by_poster.entry(poster).or_default().push(n);
        }
        for &(poster, count) in expected {
            let got = by_poster.remove(&poster).unwrap_or_default();
            if let Some(position) = (0..count).zip(&got).position(|(want, got)| want != *got) {
                panic!(
                    "{who}: poster {poster}'s message {position} came as {} (lost, repeated or reordered)",
                    got[position]
                );
            }
            assert_eq!(
                got.len() as u64,
                count,
                "{who} got {} of poster {poster}'s {count} messages",
                got.len()
            );
        }
        assert!(
            by_poster.is_empty(),
            "{who} got messages from posters of another room: {:?}",
            by_poster.keys()
        );
    }
}

// ---------------------------------------------------------------------------
// The server binary

/// The running server binary (killed when dropped), and a client for its metrics.
struct Server {
    running: RunningServer,
    addr: SocketAddr,
    base: String,
    /// `http://ADDR/metrics`.
    metrics: String,
    /// Without a pool: each scrape is one connection, closed after it.
    scraper: reqwest::Client,
}

/// The server's gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gauges {
    rooms: u64,
    members: u64,
    streams: u64,
    connections: u64,
}

/// One scrape of `/metrics`.
#[derive(Debug, Clone, Copy)]
struct Scrape {
    gauges: Gauges,
    messages: u64,
    deliveries: u64,
    resets: u64,
    /// All reasons together.
    refusals: u64,
}

impl Server {
    /// Starts the binary with [`SERVER_ARGS`]; the addresses of its app and
    /// metrics listeners come from its log.
    async fn start() -> Self {
        let running = RunningServer::start(SERVER_ARGS).await;
        let addr = running.addr;
        let metrics = running.metrics_addr.expect("the metrics address");
        Self {
            running,
            addr,
            base: format!("http://{addr}"),
            metrics: format!("http://{metrics}/metrics"),
            scraper: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(PATIENCE)
                .build()
                .expect("http client"),
        }
    }

    fn log(&self) -> String {
        self.running.log()
    }

    /// Its resident memory (`VmRSS`), in KiB.
    fn rss_kib(&self) -> u64 {
        let pid = self.running.pid().expect("the server is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("VmRSS in {status}"))
    }

    async fn scrape(&self) -> Scrape {
        let response = self
            .scraper
            .get(&self.metrics)
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.expect("the metrics text");
        let mut values: HashMap<&str, u64> = HashMap::new();
        let mut refusals = 0;
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: u64 = value.parse().unwrap_or_else(|_| panic!("{line:?}"));
            if name.starts_with("chat_refusals_total{") {
                refusals += value;
            } else {
                values.insert(name, value);
            }
        }
        let value = |name: &str| {
            *values
                .get(name)
                .unwrap_or_else(|| panic!("{name} in the metrics:\n{text}"))
        };
        Scrape {
            gauges: Gauges {
                rooms: value("chat_rooms"),
                members: value("chat_members"),
                streams: value("chat_streams"),
                connections: value("chat_connections"),
            },
            messages: value("chat_messages_total"),
            deliveries: value("chat_deliveries_total"),
            resets: value("chat_resets_total"),
            refusals,
        }
    }

    /// Scrapes until the gauges read `want` (closed connections take a moment
    /// to be noticed, cut streams to come back); fails the test if they do not
    /// within [`CATCH_UP`]. Polls: the server announces none of this.
    async fn settled(&self, want: Gauges) -> Scrape {
        let deadline = Instant::now() + CATCH_UP;
        loop {
            let scrape = self.scrape().await;
            if scrape.gauges == want {
                return scrape;
            }
            assert!(
                Instant::now() < deadline,
                "the server's gauges did not come to {want:?} within {CATCH_UP:?}: {scrape:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
