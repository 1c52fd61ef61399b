//! Several instances, one chat: real `redis-server`, two or three instances of
//! the real binary sharing it (`--redis`, one `--secret`), and, where a
//! scenario needs one, nginx as a round-robin load balancer without sticky
//! sessions. Whatever instance serves them, everyone sees the same events with
//! the same ids; a stream resumes on any instance with exactly what it missed;
//! a crashed instance's members come back elsewhere or are seen to leave, once;
//! a Redis outage refuses sends instead of losing them; and nothing is left in
//! Redis once every instance is gone.
//!
//! Each test starts its own Redis, so it can count and disrupt it. A test waits
//! for what it expects to see; only where the expectation is that something
//! stops existing (keys expiring, a member's lease running out) does it look
//! again and again until a deadline.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode};
use tokio::time::Instant;

use crate::helpers::{
    Events, PATIENCE, RunningServer, SseEvent, User, polled_events, random_secret, room_code,
    run_to_end, server_command, user_at, user_at_from,
};
use crate::nginx::Nginx;
use crate::redis::RedisServer;

/// Options of every instance here: through the load balancer every client
/// comes from nginx's one address, and the tests post, join and create faster
/// than people do, so the per-address and per-member rates are out of the way.
pub(crate) const ROOMY: [&str; 16] = [
    "--message-burst",
    "10000",
    "--message-rate",
    "1000/s",
    "--create-burst",
    "10000",
    "--create-rate",
    "1000/s",
    "--join-burst",
    "10000",
    "--join-rate",
    "1000/s",
    "--guess-burst",
    "10000",
    "--guess-rate",
    "1000/s",
];

/// How long a crashed instance's presence lease lasts (the contract's 10 s).
const LEASE: Duration = Duration::from_secs(10);

/// Slack for the reaper's period (about 3 s) and a busy machine.
const MARGIN: Duration = Duration::from_secs(5);

/// Instances of the real binary sharing one Redis and one secret.
struct Deployment {
    redis: RedisServer,
    instances: Vec<RunningServer>,
}

impl Deployment {
    /// A Redis of its own that keeps nothing on disk, and `count` instances
    /// started with `args` (besides [`ROOMY`], `--redis` and `--secret`).
    async fn start(count: usize, args: &[&str]) -> Self {
        Self::start_on(RedisServer::start().await, count, args).await
    }

    /// `count` instances sharing `redis`.
    async fn start_on(redis: RedisServer, count: usize, args: &[&str]) -> Self {
        let url = redis.url();
        let secret = random_secret();
        let mut options: Vec<&str> = vec!["--redis", &url, "--secret", &secret];
        options.extend_from_slice(&ROOMY);
        options.extend_from_slice(args);
        let mut instances = Vec::new();
        for _ in 0..count {
            instances.push(RunningServer::start(&options).await);
        }
        Self { redis, instances }
    }

    /// `http://ADDR` of instance `i`.
    fn base(&self, i: usize) -> String {
        self.instances[i].url("")
    }

    /// Every instance's log, for failure messages.
    fn logs(&self) -> String {
        self.instances
            .iter()
            .enumerate()
            .map(|(i, instance)| format!("--- instance {i} ---\n{}", instance.log()))
            .collect()
    }

    /// The lines every instance logged at `WARN` or `ERROR`, for failure messages.
    fn warnings(&self) -> String {
        self.logs()
            .lines()
            .filter(|line| {
                line.starts_with("---") || line.contains(" WARN ") || line.contains(" ERROR ")
            })
            .map(|line| format!("{line}\n"))
            .collect()
    }

    /// Kills instance `i` with SIGKILL, as a crash would, and waits until it
    /// is gone.
    async fn crash(&mut self, i: usize) {
        let instance = &mut self.instances[i];
        instance.signal("KILL").await;
        let exit = instance.exit_within(PATIENCE).await;
        assert!(exit.is_some(), "instance {i} died of SIGKILL");
    }
}

/// The same person (cookie and address) reaching the instance at `base`.
pub(crate) fn same_person_at(user: &User, base: &str) -> User {
    let mut moved = user_at_from(base, user.from);
    moved.cookie = user.cookie.clone();
    moved
}

/// A user who joined room `code` as `name` through `base`.
pub(crate) async fn joined_at(base: &str, code: &str, name: &str) -> User {
    let mut user = user_at(base);
    let response = user.join(name, code).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{name} joins {code} at {base}"
    );
    user
}

/// The `Event-Id` of an accepted send.
pub(crate) fn event_id(response: &Response) -> u64 {
    response
        .headers()
        .get("event-id")
        .unwrap_or_else(|| panic!("an Event-Id header in {response:?}"))
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a numeric Event-Id")
}

/// Posts `text` as `user` and asserts the `204`; the message's id.
async fn say(user: &User, code: &str, text: &str) -> u64 {
    let response = user.post_message(code, text).await;
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "posting {text:?} at {}",
        user.url("")
    );
    event_id(&response)
}

/// Posts `text` as `user` with an `Idempotency-Key`, again and again while it
/// is refused with `503` (each with `Retry-After`), as the room page does;
/// fails the test if it is not stored within [`PATIENCE`]. The message's id.
async fn say_until_stored(user: &User, code: &str, text: &str) -> u64 {
    let key = random_secret();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let response = user
            .post_request(&format!("/rooms/{code}/messages"), &[("message", text)])
            .header("idempotency-key", &key)
            .send()
            .await
            .expect("POST message");
        match response.status() {
            StatusCode::NO_CONTENT => return event_id(&response),
            StatusCode::SERVICE_UNAVAILABLE => assert!(
                response.headers().contains_key(RETRY_AFTER),
                "a 503 says when to retry: {response:?}"
            ),
            other => panic!("posting {text:?}: {other}"),
        }
        assert!(
            Instant::now() < deadline,
            "{text:?} not stored within {PATIENCE:?} at {}",
            user.url("")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads events until a message with `text`, which is the last one returned.
async fn events_until_message(events: &mut Events, text: &str) -> Vec<SseEvent> {
    let mut seen = Vec::new();
    loop {
        let event = events.next_event().await;
        let done = event.event == "message" && event.text() == text;
        seen.push(event);
        if done {
            return seen;
        }
    }
}

/// What a user sees of an event: its id, kind, name and text.
fn seen(event: &SseEvent) -> (Option<u64>, String, String, String) {
    (
        event.id,
        event.event.clone(),
        event.name().to_owned(),
        event.text().to_owned(),
    )
}

/// Asserts that `events` have ids, each one more than the one before: none
/// lost, none repeated, in order.
fn assert_consecutive(events: &[SseEvent], what: &str) {
    let ids: Vec<Option<u64>> = events.iter().map(|event| event.id).collect();
    let first = ids.first().copied().flatten().expect("a first id");
    let expected: Vec<Option<u64>> = (first..).take(ids.len()).map(Some).collect();
    assert_eq!(ids, expected, "{what}: consecutive ids");
}

/// The `(id, text)` of every message among `events`.
pub(crate) fn messages(events: &[SseEvent]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter(|event| event.event == "message")
        .map(|event| (event.id.expect("a message id"), event.text().to_owned()))
        .collect()
}

/// The events `stream` gets next, up to and including the one with id `last`.
pub(crate) async fn events_through(stream: &mut Events, last: u64) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while events
        .last()
        .is_none_or(|event: &SseEvent| event.id < Some(last))
    {
        events.push(stream.next_event().await);
    }
    events
}

/// The messages a room's history keeps from `from` to `last`, read by
/// `member`, after checking that none is kept twice.
pub(crate) async fn kept_once(
    member: &User,
    code: &str,
    from: u64,
    last: u64,
) -> Vec<(u64, String)> {
    let mut history = member.open_long_events(code, Some(from)).await;
    let kept = messages(&events_through(&mut history, last).await);
    let texts: Vec<&str> = kept.iter().map(|(_, text)| text.as_str()).collect();
    let unique: HashSet<&str> = texts.iter().copied().collect();
    assert_eq!(
        unique.len(),
        texts.len(),
        "no message kept twice: {texts:?}"
    );
    kept
}
/// 1. A stream that moves from instance to instance with `Last-Event-ID` while a
///    member posts continuously gets exactly the events after each id it names:
///    every accepted message once, in order, and no gap.
#[tokio::test]
async fn a_stream_resumed_on_another_instance_gets_exactly_what_it_missed() {
    // Arrange
    const SENT: usize = 150;
    const HOP_EVERY: usize = 20;
    let deployment = Deployment::start(3, &[]).await;
    let mut alice = user_at(&deployment.base(0));
    let code = alice.create_room_ok("alice").await;
    let bob = joined_at(&deployment.base(1), &code, "bob").await;
    let alice_at: Vec<User> = (0..3)
        .map(|i| same_person_at(&alice, &deployment.base(i)))
        .collect();
    let mut events = alice_at[0].open_events_after(&code, 0).await;
    let sender = tokio::spawn({
        let code = code.clone();
        async move {
            let mut pace = tokio::time::interval(Duration::from_millis(5));
            let mut accepted = Vec::new();
            for i in 1..=SENT {
                pace.tick().await;
                let text = format!("m{i}");
                accepted.push((say(&bob, &code, &text).await, text));
            }
            accepted
        }
    });

    // Act
    let mut received: Vec<SseEvent> = Vec::new();
    let mut hops = 0;
    let mut since_hop = 0;
    loop {
        let event = events.next_event().await;
        let last = event.text() == format!("m{SENT}");
        let id = event.id.expect("a room event has an id");
        since_hop += usize::from(event.event == "message");
        received.push(event);
        if last {
            break;
        }
        if since_hop == HOP_EVERY {
            drop(events);
            hops += 1;
            since_hop = 0;
            events = alice_at[hops % 3].open_events_after(&code, id).await;
        }
    }
    let accepted = sender.await.expect("the sender does not fail");

    // Assert
    assert!(hops >= SENT / HOP_EVERY - 1, "{hops} hops");
    assert_consecutive(&received, "across every hop");
    assert_eq!(received[0].event, "join", "{:?}", received[0]);
    assert_eq!(received[0].name(), "alice");
    assert_eq!(received[1].event, "join", "{:?}", received[1]);
    assert_eq!(received[1].name(), "bob");
    assert_eq!(
        messages(&received),
        accepted,
        "every accepted message, once, in order"
    );
}

/// 2. Members on every instance post at once: every listener, on every
///    instance, ends with the identical sequence of ids and texts, consecutive,
///    with each sender's messages in the order they were sent and under the
///    ids their sends were answered with.
#[tokio::test]
async fn concurrent_senders_on_every_instance_give_everyone_the_same_sequence() {
    // Arrange
    const EACH: usize = 40;
    let deployment = Deployment::start(3, &[]).await;
    let names = ["ana", "ben", "cy"];
    let mut creator = user_at(&deployment.base(0));
    let code = creator.create_room_ok(names[0]).await;
    let mut senders = vec![creator];
    for (i, name) in names.iter().enumerate().skip(1) {
        senders.push(joined_at(&deployment.base(i), &code, name).await);
    }
    let mut listeners = Vec::new();
    for i in 0..3 {
        let listener = joined_at(&deployment.base(i), &code, &format!("listener{i}")).await;
        listeners.push(listener);
    }
    let mut streams = Vec::new();
    for user in senders.iter().chain(&listeners) {
        streams.push(user.open_events(&code).await);
    }

    // Act
    let mut sending = Vec::new();
    for (sender, name) in senders.into_iter().zip(names) {
        let code = code.clone();
        sending.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for k in 1..=EACH {
                let text = format!("{name} {k}");
                accepted.push((say(&sender, &code, &text).await, text));
            }
            accepted
        }));
    }
    let mut accepted = Vec::new();
    for sender in sending {
        accepted.extend(sender.await.expect("a sender does not fail"));
    }
    accepted.sort();
    let mut sequences = Vec::new();
    for stream in &mut streams {
        let mut events = Vec::new();
        while messages(&events).len() < 3 * EACH {
            events.push(stream.next_event().await);
        }
        sequences.push(events);
    }

    // Assert
    let first: Vec<_> = sequences[0].iter().map(seen).collect();
    for (i, sequence) in sequences.iter().enumerate() {
        let these: Vec<_> = sequence.iter().map(seen).collect();
        assert_eq!(these, first, "listener {i} sees what listener 0 sees");
    }
    assert_consecutive(&sequences[0], "the shared sequence");
    assert_eq!(
        messages(&sequences[0]),
        accepted,
        "every accepted message under its Event-Id"
    );
    for name in names {
        let theirs: Vec<String> = messages(&sequences[0])
            .into_iter()
            .map(|(_, text)| text)
            .filter(|text| text.split(' ').next() == Some(name))
            .collect();
        let sent: Vec<String> = (1..=EACH).map(|k| format!("{name} {k}")).collect();
        assert_eq!(theirs, sent, "{name}'s messages in the order sent");
    }
}

/// 3. With `--history 5`, a `Last-Event-ID` older than what the room keeps gets
///    `reset` on another instance (stream and poll alike), then live events;
///    one the room still keeps gets exactly what came after it.
#[tokio::test]
async fn resuming_beyond_the_kept_history_on_another_instance_resets() {
    // Arrange
    let deployment = Deployment::start(2, &["--history", "5"]).await;
    let mut alice = user_at(&deployment.base(0));
    let code = alice.create_room_ok("alice").await;
    let alice_b = same_person_at(&alice, &deployment.base(1));
    let mut events = alice.open_events_after(&code, 0).await;
    let join = events.expect_event("join", "alice").await;
    let mut ids = Vec::new();
    for i in 1..=10 {
        ids.push(say(&alice_b, &code, &format!("m{i}")).await);
    }
    for i in 1..=10 {
        events.expect_message("alice", &format!("m{i}")).await;
    }
    let join_id = join.id.expect("a join id");

    // Act
    let mut too_old = alice_b.open_events_after(&code, join_id).await;
    let reset = too_old.next_event().await;
    let polled = alice_b.poll_ok(&code, Some(join_id)).await;
    let mut kept = alice_b.open_events_after(&code, ids[6]).await;
    say(&alice, &code, "after the reset").await;

    // Assert
    assert_eq!(reset.event, "reset", "{reset:?}");
    too_old.expect_message("alice", "after the reset").await;
    let first_polled = &polled_events(&polled)[0];
    assert_eq!(first_polled["kind"], "reset", "{polled}");
    for (i, id) in ids.iter().enumerate().skip(7) {
        let event = kept.expect_message("alice", &format!("m{}", i + 1)).await;
        assert_eq!(event.id, Some(*id));
    }
    kept.expect_message("alice", "after the reset").await;
}

/// The `data-epoch` of room `code`'s page, as `user` (a member) gets it.
async fn page_epoch(user: &User, code: &str) -> u64 {
    let page = user.get_as_browser(&format!("/rooms/{code}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("the room page");
    html.split_once("data-epoch=\"")
        .and_then(|(_, rest)| rest.split('"').next())
        .and_then(|epoch| epoch.parse().ok())
        .unwrap_or_else(|| panic!("a numeric data-epoch in the room page:\n{html}"))
}

/// Opens `user`'s stream at `path` (with its query) resuming after `last_event_id`.
async fn open_stream_at(user: &User, path: &str, last_event_id: u64) -> Events {
    let response = user
        .get_request(path)
        .header("last-event-id", last_event_id.to_string())
        .send()
        .await
        .expect("GET events");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    Events::new(response)
}

/// 3a. A `Last-Event-ID` far past the room's newest (1e14, which Lua would
///     write `1e+14`, and u64::MAX) is answered with `reset`, as a stale one
///     is, and logs no error.
#[tokio::test]
async fn an_id_far_past_the_newest_resets_and_logs_no_error() {
    // Arrange
    let deployment = Deployment::start(1, &[]).await;
    let mut alice = user_at(&deployment.base(0));
    let code = alice.create_room_ok("alice").await;
    let _live = alice.open_events(&code).await;

    for id in [100_000_000_000_000, u64::MAX] {
        // Act
        let mut resumed = open_stream_at(&alice, &format!("/rooms/{code}/events"), id).await;

        // Assert
        let first = resumed.next_event().await;
        assert_eq!(first.event, "reset", "Last-Event-ID {id}: {first:?}");
    }
    assert!(
        !deployment.logs().contains(" ERROR "),
        "no error logged:\n{}",
        deployment.warnings()
    );
}

/// 3b. A client of an earlier room under the same code (its page named another
///     epoch) resuming on another instance gets `reset`, never this room's
///     events as the ones it missed; a client of this room resumes normally.
#[tokio::test]
async fn a_client_of_another_room_under_the_code_resets_on_any_instance() {
    // Arrange
    let deployment = Deployment::start(2, &[]).await;
    let mut alice = user_at(&deployment.base(0));
    let code = alice.create_room_ok("alice").await;
    let alice_b = same_person_at(&alice, &deployment.base(1));
    let first = say(&alice, &code, "one").await;
    say(&alice, &code, "two").await;
    let epoch = page_epoch(&alice, &code).await;

    // Act
    let path = |epoch: u64| format!("/rooms/{code}/events?epoch={epoch}");
    let mut other_room = open_stream_at(&alice_b, &path(epoch.wrapping_add(1)), first).await;
    let mut this_room = open_stream_at(&alice_b, &path(epoch), first).await;

    // Assert
    assert_eq!(
        page_epoch(&alice_b, &code).await,
        epoch,
        "one epoch everywhere"
    );
    let reset = other_room.next_event().await;
    assert_eq!(reset.event, "reset", "{reset:?}");
    this_room.expect_message("alice", "two").await;
}

/// 4. `kill -9` of one of three instances behind the load balancer: a member
///    whose stream it held resumes through the load balancer on another with
///    exactly what they missed and is not seen to leave; one who does not come
///    back is seen to `leave` exactly once, within the lease and a margin, by
///    listeners on every surviving instance; the room stays open.
#[tokio::test]
async fn a_crashed_instances_members_resume_elsewhere_or_leave_once() {
    // Arrange
    let mut deployment = Deployment::start(3, &["--grace", "1", "--trust-proxy"]).await;
    let addrs: Vec<_> = deployment.instances.iter().map(|i| i.addr).collect();
    let balancer = Nginx::load_balancer(&addrs).await;
    let mut alice = user_at(&balancer.base);
    let code = alice.create_room_ok("alice").await;
    let bob = joined_at(&balancer.base, &code, "bob").await;
    let carol = joined_at(&balancer.base, &code, "carol").await;
    let dave = joined_at(&balancer.base, &code, "dave").await;
    // Watchers on the instances that survive; carol and dave on the one that dies.
    let mut alice_b = same_person_at(&alice, &deployment.base(1))
        .open_long_events(&code, None)
        .await;
    let mut bob_c = same_person_at(&bob, &deployment.base(2))
        .open_long_events(&code, None)
        .await;
    let mut carol_a = same_person_at(&carol, &deployment.base(0))
        .open_long_events(&code, None)
        .await;
    let mut dave_a = same_person_at(&dave, &deployment.base(0))
        .open_long_events(&code, None)
        .await;
    let before = say(&alice, &code, "before the crash").await;
    for events in [&mut alice_b, &mut bob_c, &mut carol_a, &mut dave_a] {
        events.expect_message("alice", "before the crash").await;
    }
    alice.wait_for_presence(&code, "dave", true).await;
    alice.wait_for_presence(&code, "carol", true).await;

    // Act
    deployment.crash(0).await;
    let crashed = Instant::now();
    carol_a.expect_end().await;
    dave_a.expect_end().await;
    drop(dave_a);
    let carol_again = carol.open_long_events(&code, Some(before)).await;
    say(&bob, &code, "after the crash").await;
    let mut listeners = [alice_b, bob_c, carol_again];
    let mut left_at = Vec::new();
    for events in &mut listeners {
        let left = loop {
            let wait = (LEASE + MARGIN + MARGIN).saturating_sub(crashed.elapsed());
            let event = events.next_event_within(wait).await.unwrap_or_else(|| {
                panic!(
                    "no `leave` for dave within {:?} of the crash:\n{}",
                    LEASE + MARGIN + MARGIN,
                    deployment.logs()
                )
            });
            if event.event == "leave" && event.name() == "dave" {
                break crashed.elapsed();
            }
        };
        left_at.push(left);
    }
    // A second reaper announcing the same departure would do so within its period.
    tokio::time::sleep(MARGIN).await;
    say(&alice, &code, "after the reaping").await;

    // Assert
    for (i, events) in listeners.iter_mut().enumerate() {
        let rest: Vec<_> = events_until_message(events, "after the reaping")
            .await
            .iter()
            .map(|event| (event.event.clone(), event.name().to_owned()))
            .collect();
        assert_eq!(
            rest,
            [("message".to_owned(), "alice".to_owned())],
            "listener {i}: nothing but the marker after dave's one leave"
        );
    }
    let mut carol_from_before = carol.open_long_events(&code, Some(before)).await;
    let resumed = events_until_message(&mut carol_from_before, "after the reaping").await;
    let resumed: Vec<_> = resumed
        .iter()
        .map(|event| (event.id, event.event.clone(), event.name().to_owned()))
        .collect();
    assert_eq!(
        resumed,
        [
            (Some(before + 1), "message".to_owned(), "bob".to_owned()),
            (Some(before + 2), "leave".to_owned(), "dave".to_owned()),
            (Some(before + 3), "message".to_owned(), "alice".to_owned()),
        ],
        "carol, resumed elsewhere, gets exactly what came after her last id"
    );
    assert!(
        left_at.iter().all(|at| *at <= LEASE + MARGIN),
        "dave's leave came {left_at:?} after the crash"
    );
    assert_eq!(alice.members(&code).await, ["alice", "bob", "carol"]);
    let erin = joined_at(&balancer.base, &code, "erin").await;
    say(&erin, &code, "the room is still open").await;
}

/// Reads `redis`'s key count until it is `expected`; fails the test, naming
/// what is left and for how long, if that takes longer than `within`.
async fn wait_for_dbsize(redis: &RedisServer, expected: u64, within: Duration, logs: &str) {
    let deadline = Instant::now() + within;
    loop {
        if redis.dbsize().await == expected {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "Redis still holds {} keys, not {expected}, {within:?} later:\n{}\n{logs}",
                redis.dbsize().await,
                redis.describe_keys().await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// 5. Every instance killed with members streaming: within grace, lease and a
///    margin, Redis is back to the keys it had before (the room's keys expire
///    by themselves).
#[tokio::test]
async fn when_every_instance_crashed_the_rooms_keys_expire() {
    // Arrange
    let redis = RedisServer::start().await;
    let keys_before = redis.dbsize().await;
    let grace = Duration::from_secs(1);
    let mut deployment = Deployment::start_on(redis, 2, &["--grace", "1"]).await;
    let mut alice = user_at(&deployment.base(0));
    let code = alice.create_room_ok("alice").await;
    let bob = joined_at(&deployment.base(1), &code, "bob").await;
    let mut alice_events = alice.open_events(&code).await;
    let mut bob_events = bob.open_events(&code).await;
    say(&bob, &code, "hello").await;
    alice_events.expect_message("bob", "hello").await;
    bob_events.expect_message("bob", "hello").await;
    let room_keys = deployment.redis.room_keys().await;
    assert!(
        room_keys.iter().any(|key| key.contains(&code)),
        "the room lives in Redis: {room_keys:?}"
    );

    // Act
    deployment.crash(0).await;
    deployment.crash(1).await;

    // Assert
    let logs = deployment.logs();
    wait_for_dbsize(
        &deployment.redis,
        keys_before,
        grace + LEASE + Duration::from_secs(2) + MARGIN,
        &logs,
    )
    .await;
}

/// 5a. An instance killed right after its owner removed a member: the room's
///     keys, its list of removed people included, all expire with its lease,
///     so that a later room drawing the same code inherits no bans.
#[tokio::test]
async fn after_a_crash_right_after_a_removal_every_key_of_the_room_expires() {
    // Arrange
    let redis = RedisServer::start().await;
    let keys_before = redis.dbsize().await;
    let mut deployment = Deployment::start_on(redis, 1, &["--grace", "1"]).await;
    let base = deployment.base(0);
    let mut alice = user_at(&base);
    let code = alice.create_room_ok("alice").await;
    let _bob = joined_at(&base, &code, "bob").await;
    let _alice_events = alice.open_events(&code).await;

    // Act
    let removed = alice
        .post_request(&format!("/rooms/{code}/remove"), &[("name", "bob")])
        .send()
        .await
        .expect("POST remove");
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    deployment.crash(0).await;

    // Assert
    let removed_key = format!("room:{{{code}}}:removed");
    let ttl: i64 = deployment
        .redis
        .query(::redis::cmd("PTTL").arg(&removed_key))
        .await;
    assert!(
        ttl > 0,
        "{removed_key} lapses with the room (PTTL {ttl}):\n{}",
        deployment.redis.describe_keys().await
    );
    let logs = deployment.logs();
    wait_for_dbsize(
        &deployment.redis,
        keys_before,
        LEASE + Duration::from_secs(2) + MARGIN,
        &logs,
    )
    .await;
}

/// 5b. Everyone leaves (no crash): the room closes on every instance after the
///     grace, and Redis is back to the keys it had before.
#[tokio::test]
async fn a_room_everyone_left_closes_everywhere_and_leaves_nothing_behind() {
    // Arrange
    let redis = RedisServer::start().await;
    let keys_before = redis.dbsize().await;
    let deployment = Deployment::start_on(redis, 2, &["--grace", "1"]).await;
    let mut alice = user_at(&deployment.base(0));
    let code = alice.create_room_ok("alice").await;
    let bob = joined_at(&deployment.base(1), &code, "bob").await;
    let alice_events = alice.open_events(&code).await;
    let bob_events = bob.open_events(&code).await;

    // Act
    drop(alice_events);
    drop(bob_events);

    // Assert
    let deadline = Instant::now() + Duration::from_secs(1) + LEASE + MARGIN;
    for base in [deployment.base(0), deployment.base(1)] {
        let stranger = user_at(&base);
        loop {
            let page = stranger.get(&format!("/rooms/{code}")).await.status();
            if page == StatusCode::NOT_FOUND {
                break;
            }
            assert_eq!(
                page,
                StatusCode::OK,
                "the join form, while the room is open"
            );
            assert!(
                Instant::now() < deadline,
                "room {code} still open at {base}:\n{}",
                deployment.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    wait_for_dbsize(&deployment.redis, keys_before, MARGIN, &deployment.logs()).await;
}

/// What a send during the disruption got.
#[derive(Debug)]
struct Outcome {
    text: String,
    status: StatusCode,
    /// The `Event-Id` of a `204`.
    id: Option<u64>,
    retry_after: bool,
}

/// `GET /healthz` at `base`: status and body.
async fn health(base: &str) -> (StatusCode, String) {
    let response = user_at(base).get("/healthz").await;
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// Asks `/healthz` at `base` until it answers `status`; the body that came
/// with it. Fails after `within`.
pub(crate) async fn wait_for_health(
    base: &str,
    status: StatusCode,
    within: Duration,
    logs: &str,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (now, body) = health(base).await;
        if now == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz at {base} still {now} {body:?}, not {status}, after {within:?}:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `/metrics` text of `instance`.
pub(crate) async fn metrics_text(instance: &RunningServer) -> String {
    let addr = instance.metrics_addr.expect("started with --metrics-bind");
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics text")
}

/// The value of the sample `series` (name and labels, as printed) in `text`.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// 6. Redis disrupted while a member keeps sending through both instances: its
///    client connections killed, then Redis down and restarted on the same
///    port (with `appendfsync always`, so it keeps what it acknowledged).
///    While it is down sends answer `503` with `Retry-After` and `/healthz`
///    says so; afterwards `/healthz` is `200` again, every message that got a
///    `204` is in the history once, and the streams that stayed open catch up.
#[tokio::test]
async fn a_redis_outage_refuses_sends_loses_nothing_and_streams_catch_up() {
    // Arrange
    let redis = RedisServer::start_persistent().await;
    let mut deployment = Deployment::start_on(
        redis,
        2,
        &[
            "--grace",
            "30",
            "--history",
            "10000",
            "--metrics-bind",
            "127.0.0.1:0",
            // The outage below lasts as long as a busy machine takes to see
            // it begin and end (several seconds each way); the default lease
            // rides out only about 7 s, so this deployment chose a longer one.
            "--presence-lease",
            "60",
        ],
    )
    .await;
    let (a, b) = (deployment.base(0), deployment.base(1));
    let mut alice = user_at(&a);
    let code = alice.create_room_ok("alice").await;
    let bob = joined_at(&b, &code, "bob").await;
    let mut alice_events = alice.open_long_events(&code, None).await;
    let mut bob_events = bob.open_long_events(&code, None).await;
    let before = say(&alice, &code, "before").await;
    alice_events.expect_message("alice", "before").await;
    bob_events.expect_message("alice", "before").await;
    let (stop_sending, mut stopped) = tokio::sync::watch::channel(false);
    // Each refusal the sender meets, as it meets it.
    let (refusals, mut sender_refused) = tokio::sync::mpsc::unbounded_channel::<()>();
    let sender = tokio::spawn({
        let at = [same_person_at(&bob, &a), same_person_at(&bob, &b)];
        let code = code.clone();
        async move {
            let mut outcomes = Vec::new();
            let mut pace = tokio::time::interval(Duration::from_millis(20));
            for i in 0.. {
                tokio::select! {
                    _ = pace.tick() => {}
                    _ = stopped.changed() => return outcomes,
                }
                let text = format!("m{i}");
                let response = at[i % 2].post_message(&code, &text).await;
                if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                    let _ = refusals.send(());
                }
                outcomes.push(Outcome {
                    status: response.status(),
                    id: (response.status() == StatusCode::NO_CONTENT).then(|| event_id(&response)),
                    retry_after: response.headers().contains_key(RETRY_AFTER),
                    text,
                });
            }
            outcomes
        }
    });

    // Act: every client connection dropped; both instances recover.
    let killed = deployment.redis.kill_clients().await;
    let recovered = say_until_stored(&alice, &code, "after the kill").await;
    say_until_stored(&same_person_at(&alice, &b), &code, "after the kill, on b").await;
    // Both healthy again, so that the 503 awaited below is the outage's, not
    // what is left of the kill; and the kill's refusals are not the outage's.
    let logs = deployment.logs();
    for base in [&a, &b] {
        wait_for_health(base, StatusCode::OK, PATIENCE, &logs).await;
    }
    while sender_refused.try_recv().is_ok() {}
    // Redis down.
    deployment.redis.stop().await;
    let logs = deployment.logs();
    let mut down = Vec::new();
    for base in [&a, &b] {
        down.push(wait_for_health(base, StatusCode::SERVICE_UNAVAILABLE, PATIENCE, &logs).await);
    }
    let refused = [
        alice.post_message(&code, "while down").await,
        same_person_at(&alice, &b)
            .post_message(&code, "while down, on b")
            .await,
    ];
    let refused: Vec<(StatusCode, bool)> = refused
        .iter()
        .map(|r| (r.status(), r.headers().contains_key(RETRY_AFTER)))
        .collect();
    // The sender, posting all along, meets the outage before it ends.
    tokio::time::timeout(PATIENCE, sender_refused.recv())
        .await
        .expect("the sender is refused while Redis is down")
        .expect("the sender is still sending");
    // Redis back, with its data.
    deployment.redis.start_again().await;
    let logs = deployment.logs();
    for base in [&a, &b] {
        wait_for_health(base, StatusCode::OK, Duration::from_secs(15), &logs).await;
    }
    let last_from_a = say(&alice, &code, "after the restart").await;
    let last_from_b = say(
        &same_person_at(&alice, &b),
        &code,
        "after the restart, on b",
    )
    .await;
    let _ = stop_sending.send(true);
    let outcomes = sender.await.expect("the sender does not fail");
    let last = outcomes
        .iter()
        .filter_map(|outcome| outcome.id)
        .fold(last_from_a.max(last_from_b), u64::max);

    // Assert
    assert!(killed >= 2, "both instances had connections: {killed}");
    assert!(recovered > before);
    for body in &down {
        assert!(
            body.to_lowercase().contains("redis"),
            "/healthz says what is wrong: {body:?}"
        );
    }
    assert_eq!(
        refused,
        [(StatusCode::SERVICE_UNAVAILABLE, true); 2],
        "sends while Redis is down: 503 with Retry-After"
    );
    for outcome in &outcomes {
        assert!(
            outcome.status == StatusCode::NO_CONTENT
                || (outcome.status == StatusCode::SERVICE_UNAVAILABLE && outcome.retry_after),
            "every send is stored (204) or refused (503, Retry-After): {outcome:?}"
        );
    }
    assert!(
        outcomes
            .iter()
            .any(|o| o.status == StatusCode::SERVICE_UNAVAILABLE),
        "the sender met the outage: {outcomes:?}"
    );
    let kept = kept_once(&bob, &code, before, last).await;
    for outcome in outcomes.iter().filter(|o| o.id.is_some()) {
        let stored = (outcome.id.expect("an id"), outcome.text.clone());
        assert!(
            kept.contains(&stored),
            "{stored:?} got 204 and is in the history: {kept:?}"
        );
    }
    for (name, events) in [("alice", &mut alice_events), ("bob", &mut bob_events)] {
        let caught_up = events_through(events, last).await;
        assert_eq!(
            messages(&caught_up),
            kept,
            "{name}'s stream, open throughout, catches up with the history"
        );
    }
    for (i, instance) in deployment.instances.iter().enumerate() {
        let text = metrics_text(instance).await;
        let reconnects = metric(&text, "chat_redis_reconnects_total");
        assert!(
            reconnects.is_some_and(|n| n >= 1.0),
            "instance {i} counted its reconnects: {reconnects:?}\n{text}"
        );
        let round_trips = metric(&text, "chat_redis_round_trip_seconds_count");
        assert!(
            round_trips.is_some_and(|n| n > 0.0),
            "instance {i} measured round trips: {round_trips:?}\n{text}"
        );
        assert!(
            metric(&text, "chat_redis_reader_lag_seconds").is_some(),
            "instance {i} reports its reader's lag:\n{text}"
        );
    }
}

/// 6b. Connections dropped again and again while Redis is up (`CLIENT KILL
///     TYPE normal` every 100 ms, as Redis's `timeout`, a NAT dropping idle
///     connections or a failover would) are invisible: while rooms are
///     created, joined, posted to and viewed on both instances, nobody gets a
///     `503`; every acknowledged message is in the history exactly once; no
///     room is made twice; and the streams open throughout deliver everything.
#[tokio::test]
async fn dropped_redis_connections_are_invisible_to_users() {
    // Arrange
    const KILLING: Duration = Duration::from_secs(3);
    const KILL_EVERY: Duration = Duration::from_millis(100);
    // Alice loads her room's page far more often than a person does.
    let pages = ["--page-rate", "1000/s", "--page-burst", "10000"];
    let args = [&["--grace", "30", "--history", "10000"][..], &pages].concat();
    let deployment = Deployment::start(2, &args).await;
    let bases = [deployment.base(0), deployment.base(1)];
    let rooms_before: u64 = deployment
        .redis
        .query(::redis::cmd("ZCARD").arg("chat:rooms"))
        .await;
    let mut alice = user_at(&bases[0]);
    let code = alice.create_room_ok("alice").await;
    let bob = joined_at(&bases[1], &code, "bob").await;
    let mut alice_events = alice.open_long_events(&code, None).await;
    let mut bob_events = bob.open_long_events(&code, None).await;
    let first = say(&alice, &code, "first").await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Each worker does one kind of request, alternating instances, until told
    // to stop: what went wrong (request and answer), and what it made.
    let worker = |kind: &'static str| {
        let bases = bases.clone();
        let code = code.clone();
        let bob = [
            same_person_at(&bob, &bases[0]),
            same_person_at(&bob, &bases[1]),
        ];
        let alice = [
            same_person_at(&alice, &bases[0]),
            same_person_at(&alice, &bases[1]),
        ];
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut made = Vec::new();
            for i in 0usize.. {
                if *stopped.borrow_and_update() {
                    break;
                }
                let at = i % 2;
                let (what, response) = match kind {
                    "create" => {
                        let mut creator = user_at(&bases[at]);
                        let response = creator.create_room(&format!("c{i}")).await;
                        if response.status() == StatusCode::SEE_OTHER {
                            made.push((room_code(&response), 0));
                        }
                        (format!("create c{i}"), response)
                    }
                    "join" => {
                        let mut joiner = user_at(&bases[at]);
                        (
                            format!("join j{i}"),
                            joiner.join(&format!("j{i}"), &code).await,
                        )
                    }
                    "post" => {
                        let text = format!("m{i}");
                        let mut request = bob[at].post_request(
                            &format!("/rooms/{code}/messages"),
                            &[("message", &text)],
                        );
                        // Half with the page's Idempotency-Key, half without, as curl sends.
                        if i % 4 < 2 {
                            request = request.header("idempotency-key", format!("k{i}"));
                        }
                        let response = request.send().await.expect("POST message");
                        if response.status() == StatusCode::NO_CONTENT {
                            made.push((text.clone(), event_id(&response)));
                        }
                        (format!("post {text}"), response)
                    }
                    _ => (
                        format!("page {i}"),
                        alice[at].get(&format!("/rooms/{code}")).await,
                    ),
                };
                let status = response.status();
                if !(status.is_success() || status == StatusCode::SEE_OTHER) {
                    let body = response.text().await.unwrap_or_default();
                    failures.push(format!("{what} at {}: {status} {body}", bases[at]));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (failures, made)
        })
    };
    let workers: Vec<_> = ["create", "join", "post", "page"]
        .into_iter()
        .map(worker)
        .collect();

    // Act: every client connection dropped, ten times a second.
    let mut killed = 0;
    let mut kills = tokio::time::interval(KILL_EVERY);
    let until = Instant::now() + KILLING;
    while Instant::now() < until {
        kills.tick().await;
        killed += deployment.redis.kill_clients().await;
    }
    let _ = stop.send(true);
    let mut failures = Vec::new();
    let mut made = Vec::new();
    for worker in workers {
        let (failed, kind_made) = worker.await.expect("a worker does not fail");
        failures.extend(failed);
        made.push(kind_made);
    }
    let (created, posted) = (&made[0], &made[2]);
    let last = say(&alice, &code, "last").await;

    // Assert
    assert!(killed >= 20, "connections were dropped: {killed}");
    assert!(
        failures.is_empty(),
        "{} requests failed while Redis was up, e.g. {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        deployment.warnings()
    );
    assert!(posted.len() >= 20, "messages flowed: {}", posted.len());
    let rooms_after: u64 = deployment
        .redis
        .query(::redis::cmd("ZCARD").arg("chat:rooms"))
        .await;
    assert_eq!(
        rooms_after,
        rooms_before + 1 + created.len() as u64,
        "one room per create that answered, none made twice"
    );
    let kept = kept_once(&bob, &code, first, last).await;
    for (text, id) in posted {
        let stored = (*id, text.clone());
        assert!(
            kept.contains(&stored),
            "{stored:?} got 204 and is in the history: {kept:?}"
        );
    }
    for (name, events) in [("alice", &mut alice_events), ("bob", &mut bob_events)] {
        let delivered = events_through(events, last).await;
        let delivered = messages(&delivered);
        assert_eq!(
            delivered
                .iter()
                .filter(|(id, _)| *id > first)
                .cloned()
                .collect::<Vec<_>>(),
            kept,
            "{name}'s stream, open throughout, delivers every message once"
        );
    }
}

/// 7. Rooms created at once on every instance never share a code: with random
///    codes from 26⁴ and 1,500 rooms, a store that did not make creation
///    atomic across instances would very likely hand one out twice.
#[tokio::test]
async fn rooms_created_concurrently_on_every_instance_never_share_a_code() {
    // Arrange
    const WORKERS_PER_INSTANCE: usize = 16;
    const ROOMS_PER_WORKER: usize = 32;
    let deployment = Deployment::start(3, &[]).await;
    let bases: Vec<String> = (0..3).map(|i| deployment.base(i)).collect();

    // Act
    let mut workers = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        for w in 0..WORKERS_PER_INSTANCE {
            let base = base.clone();
            workers.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for r in 0..ROOMS_PER_WORKER {
                    let name = format!("c{i}w{w}r{r}");
                    let mut creator = user_at(&base);
                    let response = creator.create_room(&name).await;
                    outcomes.push(match response.status() {
                        StatusCode::SEE_OTHER => Ok((room_code(&response), name, creator)),
                        status => Err(format!(
                            "{name} at {base}: {status}: {}",
                            response.text().await.unwrap_or_default()
                        )),
                    });
                }
                outcomes
            }));
        }
    }
    let mut created = Vec::new();
    let mut refused = Vec::new();
    for worker in workers {
        for outcome in worker.await.expect("a creator does not fail") {
            match outcome {
                Ok(room) => created.push(room),
                Err(refusal) => refused.push(refusal),
            }
        }
    }

    // Assert
    assert!(
        refused.is_empty(),
        "{} of {} creations refused, e.g. {:?}:\n{}",
        refused.len(),
        refused.len() + created.len(),
        &refused[..refused.len().min(3)],
        deployment.warnings()
    );
    let codes: HashSet<&str> = created.iter().map(|(code, _, _)| code.as_str()).collect();
    assert_eq!(
        codes.len(),
        created.len(),
        "every room has a code of its own"
    );
    for (n, (code, name, creator)) in created.iter().enumerate() {
        let elsewhere = same_person_at(creator, &bases[n % 3]);
        assert_eq!(
            elsewhere.members(code).await,
            [name.as_str()],
            "room {code} holds its creator alone"
        );
    }
}

/// 8a. A long poll waiting on one instance is answered by a message posted on
///     the other.
#[tokio::test]
async fn a_long_poll_on_one_instance_is_answered_by_a_message_posted_on_another() {
    // Arrange
    let deployment = Deployment::start(2, &["--poll-wait", "30"]).await;
    let mut alice = user_at(&deployment.base(0));
    let code = alice.create_room_ok("alice").await;
    let bob = joined_at(&deployment.base(0), &code, "bob").await;
    let latest = say(&alice, &code, "before the poll").await;
    let alice_b = same_person_at(&alice, &deployment.base(1));
    let poll = tokio::spawn({
        let path = format!("/rooms/{code}/poll?after={latest}");
        async move {
            let started = Instant::now();
            let response = bob.get(&path).await;
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("a JSON answer");
            (status, body, started.elapsed())
        }
    });
    // A member whose poll is waiting is listed as connected.
    alice.wait_for_presence(&code, "bob", true).await;

    // Act
    let id = say(&alice_b, &code, "hello from the other instance").await;

    // Assert
    let (status, body, took) = tokio::time::timeout(PATIENCE, poll)
        .await
        .expect("the waiting poll answers promptly")
        .expect("the poll does not fail");
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = polled_events(&body);
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["id"], id);
    assert_eq!(events[0]["text"], "hello from the other instance");
    assert!(
        took < Duration::from_secs(30),
        "answered by the message, not the wait"
    );
}

/// 8b. A send retried with the same `Idempotency-Key` on the other instance
///     (its first answer was lost) is answered alike and stored once.
#[tokio::test]
async fn a_send_retried_on_another_instance_with_the_same_key_is_stored_once() {
    // Arrange
    let deployment = Deployment::start(2, &[]).await;
    let mut alice = user_at(&deployment.base(0));
    let code = alice.create_room_ok("alice").await;
    let alice_b = same_person_at(&alice, &deployment.base(1));
    let mut events = alice.open_events(&code).await;
    let path = format!("/rooms/{code}/messages");
    let send = |user: &User, text: &str| {
        user.post_request(&path, &[("message", text)])
            .header("idempotency-key", "retry-1")
            .send()
    };

    // Act
    let first = send(&alice, "once").await.expect("POST");
    let retry = send(&alice_b, "once").await.expect("POST");
    say(&alice_b, &code, "next").await;

    // Assert
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(retry.status(), StatusCode::NO_CONTENT);
    assert_eq!(event_id(&retry), event_id(&first), "answered alike");
    let once = events.expect_message("alice", "once").await;
    assert_eq!(once.id, Some(event_id(&first)));
    events.expect_message("alice", "next").await;
    let history = alice_b.poll_ok(&code, Some(0)).await;
    let texts: Vec<&str> = polled_events(&history)
        .iter()
        .filter(|event| event["kind"] == "message")
        .map(|event| event["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(texts, ["once", "next"], "stored once");
}

/// 8c. The owner's lock set on one instance turns a newcomer away (`423`) on
///     the other; unlocked there, the newcomer gets in on the first. A member
///     removed on one instance cannot post or come back on the other.
#[tokio::test]
async fn a_lock_or_a_removal_on_one_instance_holds_on_the_other() {
    // Arrange
    let deployment = Deployment::start(2, &[]).await;
    let (a, b) = (deployment.base(0), deployment.base(1));
    let mut alice = user_at(&a);
    let code = alice.create_room_ok("alice").await;
    let alice_b = same_person_at(&alice, &b);
    let bob = joined_at(&b, &code, "bob").await;
    let owner_action = |user: &User, action: &str, fields: &[(&str, &str)]| {
        user.post_request(&format!("/rooms/{code}/{action}"), fields)
            .send()
    };

    // Act
    let locked = owner_action(&alice, "lock", &[]).await.expect("POST lock");
    let mut carol = user_at(&b);
    let refused = carol.join("carol", &code).await;
    let unlocked = owner_action(&alice_b, "unlock", &[])
        .await
        .expect("POST unlock");
    let carol_a = joined_at(&a, &code, "carol").await;
    let removed = owner_action(&alice_b, "remove", &[("name", "bob")])
        .await
        .expect("POST remove");
    let bob_a = same_person_at(&bob, &a);
    let bob_posts = bob_a.post_message(&code, "let me back in").await;
    let mut bob_again = same_person_at(&bob, &a);
    let bob_rejoins = bob_again.join("bob", &code).await;

    // Assert
    assert_eq!(locked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        refused.status(),
        StatusCode::LOCKED,
        "locked on a, refused on b"
    );
    assert_eq!(unlocked.status(), StatusCode::NO_CONTENT, "the owner, on b");
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(bob_posts.status(), StatusCode::FORBIDDEN);
    assert_eq!(bob_rejoins.status(), StatusCode::FORBIDDEN);
    assert_eq!(carol_a.members(&code).await, ["alice", "carol"]);
}

/// `--redis` without `--secret` is refused at start, saying why: instances that
/// each made up a secret could not read each other's cookies.
#[tokio::test]
async fn redis_without_a_shared_secret_is_refused_at_start() {
    // Arrange
    let redis = RedisServer::start().await;
    let mut command = server_command("info");
    command.args(["--bind", "127.0.0.1:0", "--redis", &redis.url()]);

    // Act
    let output = run_to_end(&mut command, Duration::from_secs(10)).await;

    // Assert
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused: {}", output.status);
    assert!(stderr.contains("--secret"), "says why: {stderr}");
    assert_eq!(redis.dbsize().await, 0, "and wrote nothing");
}

/// The tests' own Redis (`crate::redis`): it starts empty on a port of its own, counts keys,
/// drops its clients when told, loses nothing acknowledged across a `kill -9`
/// restart with `appendfsync always`, and starts empty again without it.
#[tokio::test]
async fn the_redis_helper_starts_counts_keys_drops_clients_and_restarts() {
    // Arrange
    let mut persistent = RedisServer::start_persistent().await;
    let mut plain = RedisServer::start().await;
    assert_ne!(persistent.port(), plain.port());
    assert_eq!(persistent.dbsize().await, 0);
    let mut other = persistent.connection().await;
    let _: () = ::redis::cmd("SET")
        .arg(&["room:{ABCD}:meta", "1"])
        .query_async(&mut other)
        .await
        .expect("SET");
    let _: () = plain
        .query(::redis::cmd("SET").arg(&["room:{WXYZ}:meta", "1"]))
        .await;

    // Act
    let killed = persistent.kill_clients().await;
    let after_kill = ::redis::cmd("PING").query_async::<String>(&mut other).await;
    persistent.restart().await;
    plain.restart().await;

    // Assert
    assert!(killed >= 1, "the other connection was closed");
    assert!(
        after_kill.is_err(),
        "a killed connection fails: {after_kill:?}"
    );
    assert_eq!(persistent.dbsize().await, 1, "{}", persistent.log());
    assert_eq!(persistent.room_keys().await, ["room:{ABCD}:meta"]);
    assert_eq!(plain.dbsize().await, 0);
    assert!(plain.room_keys().await.is_empty());
}
