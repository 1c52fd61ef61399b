//! The scenarios' parts: each scenario sets rooms and members up through the
//! public contract (create, join, cookies), opens real streams or polls, posts
//! real messages, and reads the target's CPU time and memory around what it
//! measures. Requests go through a [`Client`], so the same setup, probes and
//! posters serve HTTP/1.1 and HTTP/2 over TLS alike.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::target::Target;
use crate::wire::{self, Client, Conn, Fresh, Sources, Tally, tokio_stop::Stop};

/// Setup requests in flight at once.
const SETUP_AT_ONCE: usize = 64;

/// Streams connected but not yet answered, at most: both targets listen with
/// a backlog of 128, and a connection the target has not taken in time loses
/// its SYN and waits a second for it to be sent again.
const OPENING_AT_ONCE: u64 = 64;

/// One room, as a scenario uses it: where to stream and post, and each
/// member's cookie. The floor has one channel and no sessions.
#[derive(Clone)]
pub struct Room {
    pub code: Option<String>,
    pub cookies: Vec<Option<String>>,
}

impl Room {
    pub fn stream_path(&self) -> String {
        match &self.code {
            Some(code) => format!("/rooms/{code}/events"),
            None => "/".to_owned(),
        }
    }

    pub fn post_path(&self) -> String {
        match &self.code {
            Some(code) => format!("/rooms/{code}/messages"),
            None => "/".to_owned(),
        }
    }

    pub fn poll_path(&self, after: u64) -> String {
        match &self.code {
            Some(code) => format!("/rooms/{code}/poll?after={after}"),
            None => "/".to_owned(),
        }
    }

    pub fn cookie(&self, member: usize) -> Option<&str> {
        self.cookies.get(member).and_then(Option::as_deref)
    }

    /// Member 0 posts one message of `padding` more characters through
    /// `client`; panics, naming `scenario`, unless it is answered `204`.
    pub async fn post<C: Client>(&self, client: &mut C, padding: usize, scenario: &str) {
        let form = wire::message_form(padding);
        let answer = client
            .send("POST", &self.post_path(), self.cookie(0), Some(&form))
            .await;
        match answer {
            Ok(answer) if answer.status == 204 => {}
            Ok(answer) => panic!(
                "{scenario}: a post failed: {} {}",
                answer.status,
                String::from_utf8_lossy(&answer.body).trim()
            ),
            Err(error) => panic!("{scenario}: a post failed: {error}"),
        }
    }
}

/// Rooms of `members` each, made through the contract over plain HTTP/1.1, a
/// connection per request (the floor needs none).
pub async fn rooms(
    target: &Target,
    sources: &Arc<Sources>,
    count: usize,
    members: usize,
) -> Vec<Room> {
    if target.name == "floor" {
        return vec![
            Room {
                code: None,
                cookies: vec![None; members],
            };
            count
        ];
    }
    let client = Fresh {
        to: target.addr,
        sources: Arc::clone(sources),
    };
    rooms_via(&client, count, members).await
}

/// Rooms of `members` each, made through the contract by `client`: member 0
/// creates each room, the others join it.
pub async fn rooms_via<C>(client: &C, count: usize, members: usize) -> Vec<Room>
where
    C: Client + Clone + 'static,
{
    let permits = Arc::new(Semaphore::new(SETUP_AT_ONCE));
    let mut created = JoinSet::new();
    for r in 0..count {
        let (mut client, permits) = (client.clone(), Arc::clone(&permits));
        created.spawn(async move {
            let _permit = permits.acquire().await;
            let form = format!("name=r{r}m0");
            let answer = client
                .send("POST", "/rooms", None, Some(&form))
                .await
                .expect("create a room");
            assert_eq!(answer.status, 303, "create: {answer:?}");
            let code = answer
                .location
                .and_then(|l| l.rsplit('/').next().map(str::to_owned))
                .expect("the room's code");
            (r, code, answer.cookie)
        });
    }
    let mut rooms: Vec<Room> = (0..count)
        .map(|_| Room {
            code: None,
            cookies: Vec::new(),
        })
        .collect();
    while let Some(done) = created.join_next().await {
        let (r, code, cookie) = done.expect("a create task");
        rooms[r] = Room {
            code: Some(code),
            cookies: vec![cookie],
        };
    }
    let mut joined = JoinSet::new();
    for (r, room) in rooms.iter().enumerate() {
        let code = room.code.clone().unwrap_or_default();
        for m in 1..members {
            let (mut client, permits) = (client.clone(), Arc::clone(&permits));
            let code = code.clone();
            joined.spawn(async move {
                let _permit = permits.acquire().await;
                let form = format!("name=r{r}m{m}&code={code}");
                let answer = client
                    .send("POST", "/join", None, Some(&form))
                    .await
                    .expect("join a room");
                assert_eq!(answer.status, 303, "join: {answer:?}");
                (r, m, answer.cookie)
            });
        }
    }
    for room in &mut rooms {
        room.cookies.resize(members, None);
    }
    while let Some(done) = joined.join_next().await {
        let (r, m, cookie) = done.expect("a join task");
        rooms[r].cookies[m] = cookie;
    }
    rooms
}

/// Open event streams, read by tasks that count (and maybe time) deliveries.
pub struct Streams {
    pub tally: Arc<Tally>,
    pub stop: Stop,
    readers: JoinSet<Option<Vec<u32>>>,
}

impl Streams {
    /// One HTTP/1.1 stream for each of the first `per_room` members of every
    /// room, each on a connection of its own, at most [`OPENING_AT_ONCE`]
    /// waiting for their answer; `timed`: record every message's delay.
    pub async fn open(
        addr: SocketAddr,
        sources: &Arc<Sources>,
        rooms: &[Room],
        per_room: usize,
        timed: bool,
    ) -> Self {
        let mut streams = Self::none();
        let mut connected: u64 = 0;
        for room in rooms {
            for member in 0..per_room {
                while connected.saturating_sub(streams.answered()) >= OPENING_AT_ONCE {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                connected += 1;
                let stream = wire::open_stream(
                    addr,
                    sources.next(),
                    &room.stream_path(),
                    room.cookie(member),
                )
                .await
                .expect("open a stream");
                let (tally, stop) = (Arc::clone(&streams.tally), streams.stop.clone());
                streams.read(wire::read_stream(stream, tally, timed.then(Vec::new), stop));
            }
        }
        streams.wait_open((rooms.len() * per_room) as u64).await;
        streams
    }

    /// No streams yet: [`Streams::read`] adds them.
    pub fn none() -> Self {
        Self {
            tally: Arc::new(Tally::default()),
            stop: Stop::default(),
            readers: JoinSet::new(),
        }
    }

    /// Runs a stream's reader, which counts into `self.tally` until
    /// `self.stop`; it returns the delays it recorded, if asked to.
    pub fn read(&mut self, reader: impl Future<Output = Option<Vec<u32>>> + Send + 'static) {
        self.readers.spawn(reader);
    }

    /// Waits until `count` streams have their answer's head (`200`).
    pub async fn wait_open(&self, count: u64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.tally.opened.load(Ordering::Relaxed) < count {
            assert!(Instant::now() < deadline, "streams did not all open");
            assert_eq!(
                self.tally.errors.load(Ordering::Relaxed),
                0,
                "a stream was refused"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Streams answered so far, `200` or not (a stream that fails once open
    /// counts twice, hence the saturating use).
    fn answered(&self) -> u64 {
        self.tally.opened.load(Ordering::Relaxed) + self.tally.errors.load(Ordering::Relaxed)
    }

    pub fn deliveries(&self) -> u64 {
        self.tally.deliveries.load(Ordering::Relaxed)
    }

    /// Waits until `total` deliveries have been counted (or `within` passed).
    pub async fn wait_for(&self, total: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.deliveries() < total {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Closes every stream; the delays recorded, all together.
    pub async fn close(mut self) -> Vec<u32> {
        self.stop.set();
        let mut all = Vec::new();
        while let Some(done) = self.readers.join_next().await {
            if let Ok(Some(mut latencies)) = done {
                all.append(&mut latencies);
            }
        }
        all
    }
}

/// Posts one message to each room as its member 0 (over plain HTTP/1.1, a
/// connection per room) and waits until every open stream has it: the streams
/// are all open and receiving.
pub async fn prove_streams(
    target: &Target,
    sources: &Arc<Sources>,
    rooms: &[Room],
    streams: &Streams,
    per_room: usize,
) {
    let mut client = Fresh {
        to: target.addr,
        sources: Arc::clone(sources),
    };
    prove_streams_via(&mut client, rooms, streams, per_room).await;
}

/// [`prove_streams`], posting through `client`.
pub async fn prove_streams_via(
    client: &mut impl Client,
    rooms: &[Room],
    streams: &Streams,
    per_room: usize,
) {
    let before = streams.deliveries();
    for room in rooms {
        let answer = client
            .send(
                "POST",
                &room.post_path(),
                room.cookie(0),
                Some(&wire::message_form(0)),
            )
            .await
            .expect("post");
        assert!(answer.status == 204, "post: {answer:?}");
    }
    let expected = before + (rooms.len() * per_room) as u64;
    assert!(
        streams.wait_for(expected, Duration::from_secs(60)).await,
        "every stream got the probe: {} of {expected}",
        streams.deliveries()
    );
}

/// Every poster posts `count` messages of `padding` more characters to its
/// room, one after another, all rooms at once; the posters, once all are
/// answered `204`.
pub async fn post_each(
    posters: Vec<(Conn, Room)>,
    count: usize,
    padding: usize,
) -> Vec<(Conn, Room)> {
    let mut posting = JoinSet::new();
    for (n, (mut conn, room)) in posters.into_iter().enumerate() {
        posting.spawn(async move {
            for _ in 0..count {
                room.post(&mut conn, padding, "filling rooms").await;
            }
            (n, conn, room)
        });
    }
    let mut done = posting.join_all().await;
    done.sort_by_key(|(n, _, _)| *n);
    done.into_iter()
        .map(|(_, conn, room)| (conn, room))
        .collect()
}

/// How often posters post.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Each posts again as soon as its last post is answered.
    Saturated,
    /// Each posts once every interval, all of them at about the same instants.
    Together(Duration),
    /// Each posts once every interval, their turns spread evenly over it:
    /// together, a steady `posters / interval` messages a second.
    Spread(Duration),
}

/// Posters, each as a member of its room, posting at a [`Pace`]; the tally
/// counts posts answered `204` (as `deliveries`) and failures.
pub struct Posters {
    pub stop: Stop,
    pub tally: Arc<Tally>,
    /// What the first post that failed got back, for the scenario to show.
    // std Mutex: set once by a poster, read after they have stopped.
    first_failure: Arc<Mutex<Option<String>>>,
    tasks: JoinSet<()>,
}

impl Posters {
    /// Each poster on a keep-alive HTTP/1.1 connection of its own.
    pub async fn start(
        addr: SocketAddr,
        sources: &Arc<Sources>,
        who: Vec<(Room, usize)>,
        pace: Pace,
        padding: usize,
    ) -> Self {
        let mut posters = Vec::with_capacity(who.len());
        for (room, member) in who {
            let conn = Conn::open(addr, sources.next())
                .await
                .expect("connect a poster");
            posters.push((conn, room, member));
        }
        Self::with(posters, pace, padding)
    }

    /// Each poster posting through its own client.
    pub fn with<C>(posters: Vec<(C, Room, usize)>, pace: Pace, padding: usize) -> Self
    where
        C: Client + 'static,
    {
        let stop = Stop::default();
        let tally = Arc::new(Tally::default());
        let first_failure = Arc::new(Mutex::new(None));
        let mut tasks = JoinSet::new();
        let (start, count) = (tokio::time::Instant::now(), posters.len() as u32);
        for (n, (mut client, room, member)) in posters.into_iter().enumerate() {
            let (stop, tally) = (stop.clone(), Arc::clone(&tally));
            let failure = Arc::clone(&first_failure);
            let first = match pace {
                Pace::Saturated => None,
                Pace::Together(every) => Some((start, every)),
                Pace::Spread(every) => Some((start + every * n as u32 / count, every)),
            };
            tasks.spawn(async move {
                let path = room.post_path();
                let mut ticks = first.map(|(first, every)| {
                    let mut ticks = tokio::time::interval_at(first, every);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    ticks
                });
                while !stop.is_set() {
                    if let Some(ticks) = ticks.as_mut() {
                        tokio::select! {
                            _ = ticks.tick() => {}
                            () = stop.wait() => break,
                        }
                    }
                    let form = wire::message_form(padding);
                    match client
                        .send("POST", &path, room.cookie(member), Some(&form))
                        .await
                    {
                        Ok(answer) if answer.status == 204 => {
                            tally.deliveries.fetch_add(1, Ordering::Relaxed);
                        }
                        failed => {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                            let got = match failed {
                                Ok(answer) => format!(
                                    "{} {}",
                                    answer.status,
                                    String::from_utf8_lossy(&answer.body).trim()
                                ),
                                Err(error) => error.to_string(),
                            };
                            let mut first = failure.lock().unwrap_or_else(PoisonError::into_inner);
                            first.get_or_insert(got);
                            break;
                        }
                    }
                }
            });
        }
        Self {
            stop,
            tally,
            first_failure,
            tasks,
        }
    }

    /// Stops every poster: posts answered `204`, and posts that failed.
    pub async fn stop(self) -> (u64, u64) {
        let (posts, errors, _) = self.finish().await;
        (posts, errors)
    }

    /// [`Posters::stop`], and what the first post that failed got back (its
    /// status and body, or the error), if one did.
    pub async fn finish(mut self) -> (u64, u64, Option<String>) {
        self.stop.set();
        while self.tasks.join_next().await.is_some() {}
        let first = self.first_failure.lock();
        (
            self.tally.deliveries.load(Ordering::Relaxed),
            self.tally.errors.load(Ordering::Relaxed),
            first.unwrap_or_else(PoisonError::into_inner).clone(),
        )
    }
}

/// What the target spent, what the posters had accepted and what the readers
/// counted, over a window.
pub struct Window {
    pub seconds: f64,
    pub cpu_seconds: f64,
    /// Posts answered `204`.
    pub posts: u64,
    /// Messages the stream readers counted: what arrived, not what was sent.
    pub deliveries: u64,
}

impl Window {
    pub async fn measure(
        target: &Target,
        streams: &Streams,
        posters: &Posters,
        length: Duration,
    ) -> Self {
        let posted = || posters.tally.deliveries.load(Ordering::Relaxed);
        let (cpu, posts, deliveries, started) = (
            target.cpu_seconds(),
            posted(),
            streams.deliveries(),
            Instant::now(),
        );
        tokio::time::sleep(length).await;
        Self {
            seconds: started.elapsed().as_secs_f64(),
            cpu_seconds: target.cpu_seconds() - cpu,
            posts: posted() - posts,
            deliveries: streams.deliveries() - deliveries,
        }
    }

    /// CPU time per delivered event, in microseconds.
    pub fn cpu_per_delivery_us(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.deliveries.max(1) as f64
    }

    pub fn posts_per_second(&self) -> f64 {
        self.posts as f64 / self.seconds
    }

    pub fn deliveries_per_second(&self) -> f64 {
        self.deliveries as f64 / self.seconds
    }
}

/// The `"last_id":N` of a poll's answer.
pub fn last_id(body: &[u8]) -> Option<u64> {
    let at = wire::find(body, b"\"last_id\":")? + b"\"last_id\":".len();
    let digits: String = body[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    digits.parse().ok()
}

/// The `p`th percentile of `samples` (sorted here), in milliseconds.
pub fn percentile_ms(samples: &mut [u32], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    let at = ((samples.len() - 1) as f64 * p / 100.0).round() as usize;
    samples[at] as f64 / 1000.0
}
