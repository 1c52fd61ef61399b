//! A room's life: join and leave notices, presence from joining on, the grace
//! period, the idle minute of a member who never streams, closure, shutdown, and
//! one session in two rooms. Leaving with the Leave button is in `leaving.rs`.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;

use crate::helpers::{
    Events, PATIENCE, SseEvent, TestApp, User, alice_and_bob_streaming, location, spawn_app,
    spawn_app_with,
};
use crate::web::people;

/// How long a stream must stay quiet to count as "nothing was sent".
pub const QUIET: Duration = Duration::from_millis(500);

/// How often a poll loop looks again.
pub const POLL: Duration = Duration::from_millis(25);

/// Asserts nothing arrives on `events` for `window`.
pub async fn expect_quiet(events: &mut Events, window: Duration, what: &str) {
    if let Some(event) = events.next_event_within(window).await {
        panic!("{what}, but got {event:?}");
    }
}

/// Status of `GET path` as `user`.
pub async fn status(user: &User, path: &str) -> StatusCode {
    user.get(path).await.status()
}

/// Longest real time a [`StoppedClock`] stays stopped: past it the clock runs
/// again, so a test that went wrong fails instead of hanging.
const STOPPED_AT_MOST: Duration = Duration::from_secs(20);

/// Tokio's clock, stopped: it moves only when [`StoppedClock::advance`] moves it,
/// however much real time passes. The server runs on the test's runtime, so its
/// timers (the idle minute) follow this clock.
///
/// A paused clock would jump to the next timer whenever the runtime waits for a
/// socket; a blocking task, while it runs, keeps it from doing so (see
/// `tokio::time::pause`), so one is kept running until [`StoppedClock::restart`].
/// Tokio timers do not fire meanwhile: bound waits with [`real_time`].
struct StoppedClock {
    /// Ends the holder's wait (so does dropping it, when a test fails).
    release: std::sync::mpsc::Sender<()>,
    /// The blocking task whose running keeps the paused clock from auto-advancing.
    holder: tokio::task::JoinHandle<()>,
}

impl StoppedClock {
    fn stop() -> Self {
        tokio::time::pause();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = tokio::task::spawn_blocking(move || {
            let _ = released.recv_timeout(STOPPED_AT_MOST);
        });
        Self { release, holder }
    }

    /// Moves the clock `by` at once: every timer that falls due runs.
    async fn advance(&self, by: Duration) {
        tokio::time::advance(by).await;
    }

    /// Lets the clock run with the real one again.
    async fn restart(self) {
        let _ = self.release.send(());
        self.holder.await.expect("the clock holder ends");
        tokio::time::resume();
    }
}

/// Waits `window` of real time, whatever Tokio's clock does. Dropped early, it
/// ends its blocking wait too (the runtime waits for blocking tasks at its end).
async fn real_time(window: Duration) {
    let (_stop_on_drop, stopped) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = stopped.recv_timeout(window);
    })
    .await
    .expect("a blocking wait");
}

/// The next event on `events` within `window` of real time (for a [`StoppedClock`]).
async fn next_event_in_real_time(events: &mut Events, window: Duration) -> Option<SseEvent> {
    tokio::select! {
        event = events.next_event_within(window) => event,
        () = real_time(window) => None,
    }
}

/// Polls until `member`'s `GET /rooms/{code}/members` is 404, failing after
/// `limit` (the members list, not the page: pages are rate-limited per member).
/// `member` may have left already.
pub async fn wait_until_room_is_gone(member: &User, code: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let members = status(member, &format!("/rooms/{code}/members")).await;
        if members == StatusCode::NOT_FOUND {
            return;
        }
        // A member's list, or `403` for someone who left a room that is
        // still open.
        assert!(
            [StatusCode::OK, StatusCode::FORBIDDEN].contains(&members),
            "the members list, while the room exists: {members}"
        );
        assert!(
            Instant::now() < deadline,
            "room {code} still exists after {limit:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Asserts every request about room `code` answers 404, for a member and a newcomer.
pub async fn assert_room_gone(app: &TestApp, member: &User, code: &str) {
    assert_eq!(
        status(member, &format!("/rooms/{code}")).await,
        StatusCode::NOT_FOUND,
        "page"
    );
    assert_eq!(
        status(member, &format!("/rooms/{code}/members")).await,
        StatusCode::NOT_FOUND,
        "members"
    );
    assert_eq!(
        status(member, &format!("/rooms/{code}/events")).await,
        StatusCode::NOT_FOUND,
        "events"
    );
    let mut newcomer = app.user();
    assert_eq!(
        newcomer.join("carol", code).await.status(),
        StatusCode::NOT_FOUND,
        "joining"
    );
    assert_eq!(
        status(&app.user(), &format!("/rooms/{code}")).await,
        StatusCode::NOT_FOUND,
        "page for a stranger (no session)"
    );
}

/// Joining is announced at once on the others' streams; the joiner's streams
/// (a first, a second tab, a reload) announce nothing, and closing a tab no leave.
#[tokio::test]
async fn joining_is_announced_at_once_and_opening_streams_announces_nothing() {
    // Arrange
    let app = spawn_app_with(&["--grace", "0"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;

    // Act + Assert: joining by POST announces bob at once.
    let bob = app.user_joined(&code, "bob").await;
    alice_events.expect_event("join", "bob").await;

    // Act: bob's first stream, a second tab, a reload of the first, the second
    // tab closing; with no grace, a miscounted stream would be a leave at once.
    let bob_tab_one = bob.open_events(&code).await;
    let bob_tab_two = bob.open_events(&code).await;
    drop(bob_tab_one);
    let mut bob_reloaded = bob.open_events(&code).await;
    drop(bob_tab_two);

    // Assert
    expect_quiet(
        &mut alice_events,
        QUIET,
        "no notice for bob's streams opening, reloading or closing",
    )
    .await;
    alice.say(&code, "still here?").await;
    alice_events.expect_message("alice", "still here?").await;
    // The message comes first: bob's own join is not sent to his later streams.
    bob_reloaded.expect_message("alice", "still here?").await;
    assert_eq!(
        alice.presence(&code).await,
        people(&[("alice", true), ("bob", true)])
    );
}

/// A silent joiner is announced on the others' streams and listed as not
/// connected right after the join's `303`, before they fetch anything; their
/// first stream marks them connected.
#[tokio::test]
async fn a_silent_joiner_is_announced_and_listed_before_they_read_anything() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;

    // Act: bob has the 303 to the room and has fetched nothing yet.
    let mut bob = app.user();
    let joined = bob.join("bob", &code).await;

    // Assert
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&joined), format!("/rooms/{code}"));
    let join = alice_events.expect_event("join", "bob").await;
    assert_eq!(join.id, Some(2), "after the creator's join: {join:?}");
    assert_eq!(
        alice.presence(&code).await,
        people(&[("alice", true), ("bob", false)]),
        "bob is listed, not connected, before he reads anything"
    );

    // Act + Assert: his first stream marks him connected, and announces nothing.
    let _bob_events = bob.open_events(&code).await;
    assert_eq!(
        alice.presence(&code).await,
        people(&[("alice", true), ("bob", true)])
    );
    expect_quiet(&mut alice_events, QUIET, "no second join for bob's stream").await;
}

/// Joining again a room one is in (same cookie) keeps the first name and makes no notice.
#[tokio::test]
async fn joining_again_keeps_the_name_and_makes_no_notice() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let mut bob = app.user_joined(&code, "bob").await;
    alice_events.expect_event("join", "bob").await;

    // Act
    let again = bob.join("robert", &code).await;

    // Assert
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&again), format!("/rooms/{code}"));
    expect_quiet(&mut alice_events, QUIET, "no notice for joining again").await;
    assert_eq!(
        alice.presence(&code).await,
        people(&[("alice", true), ("bob", false)])
    );
    bob.say(&code, "still bob").await;
    alice_events.expect_message("bob", "still bob").await;
}

/// A member who joined and never opened a stream is announced leaving after a
/// minute without activity, and not before.
///
/// The server runs on this test's runtime, so the minute passes by moving a
/// stopped Tokio clock forward instead of waiting for it.
#[tokio::test]
async fn a_member_who_never_streams_leaves_after_an_idle_minute() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_long_events(&code, None).await;
    let bob = app.user_joined(&code, "bob").await;
    alice_events.expect_event("join", "bob").await;

    // Act + Assert: 59 s after he joined, bob is still there.
    let clock = StoppedClock::stop();
    clock.advance(Duration::from_secs(59)).await;
    if let Some(event) = next_event_in_real_time(&mut alice_events, QUIET).await {
        panic!("no leave inside the minute, but got {event:?}");
    }
    assert_eq!(
        alice.presence(&code).await,
        people(&[("alice", true), ("bob", false)])
    );

    // Act + Assert: at 61 s he is announced leaving; alice, who streams, stays.
    clock.advance(Duration::from_secs(2)).await;
    let leave = next_event_in_real_time(&mut alice_events, PATIENCE)
        .await
        .expect("bob's leave arrives as the minute is over");
    assert_eq!(
        (leave.event.as_str(), leave.name()),
        ("leave", "bob"),
        "{leave:?}"
    );
    assert_eq!(alice.presence(&code).await, people(&[("alice", true)]));
    assert_eq!(
        status(&bob, &format!("/rooms/{code}/events")).await,
        StatusCode::FORBIDDEN,
        "bob's session is no longer a member"
    );
    clock.restart().await;
}

/// When a member's only stream closes and the grace passes, `leave` is sent and the membership ends.
#[tokio::test]
async fn a_member_leaves_after_the_grace_period() {
    // Arrange
    let grace = Duration::from_millis(500);
    let app = spawn_app_with(&["--grace", "0.5"]).await;
    let (code, alice, mut alice_events, bob, bob_events) = alice_and_bob_streaming(&app).await;

    // Act
    let closed_at = Instant::now();
    drop(bob_events);
    let leave = alice_events.next_event_within(grace + PATIENCE).await;

    // Assert
    let leave = leave.expect("bob's leave arrives");
    assert_eq!(
        (leave.event.as_str(), leave.name()),
        ("leave", "bob"),
        "{leave:?}"
    );
    assert!(
        closed_at.elapsed() >= grace - Duration::from_millis(50),
        "the leave waits out the grace period; it came after {:?}",
        closed_at.elapsed()
    );
    assert_eq!(alice.members(&code).await, ["alice"]);
    assert_eq!(
        status(&bob, &format!("/rooms/{code}/events")).await,
        StatusCode::FORBIDDEN,
        "bob's session is no longer a member"
    );
}

/// A reload inside the grace period makes no leave or join notice, and the room carries on.
#[tokio::test]
async fn a_reload_inside_the_grace_period_makes_no_notices() {
    // Arrange
    let grace = Duration::from_millis(1500);
    let app = spawn_app_with(&["--grace", "1.5"]).await;
    let (code, alice, mut alice_events, bob, bob_events) = alice_and_bob_streaming(&app).await;

    // Act
    drop(bob_events);
    let mut bob_events = bob.open_events(&code).await;

    // Assert
    expect_quiet(
        &mut alice_events,
        grace + QUIET,
        "no leave or join for a reload",
    )
    .await;
    bob.say(&code, "back").await;
    alice_events.expect_message("bob", "back").await;
    bob_events.expect_message("bob", "back").await;
    alice.say(&code, "welcome back").await;
    bob_events.expect_message("alice", "welcome back").await;
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
}

/// With `--grace 0` the room closes as soon as its last stream closes: every request is 404.
#[tokio::test]
async fn with_no_grace_the_room_closes_when_its_last_stream_closes() {
    // Arrange
    let app = spawn_app_with(&["--grace", "0"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let events = alice.open_events(&code).await;

    // Act
    drop(events);

    // Assert
    wait_until_room_is_gone(&alice, &code, Duration::from_secs(1)).await;
    assert_room_gone(&app, &alice, &code).await;
}

/// With a grace the room outlives its last stream briefly, then closes.
#[tokio::test]
async fn with_a_grace_the_room_closes_after_it() {
    // Arrange
    let grace = Duration::from_millis(500);
    let app = spawn_app_with(&["--grace", "0.5"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let events = alice.open_events(&code).await;

    // Act
    let closed_at = Instant::now();
    drop(events);

    // Assert
    assert_eq!(
        status(&app.user(), &format!("/rooms/{code}")).await,
        StatusCode::OK,
        "right after the last stream closed the room still exists"
    );
    assert_eq!(alice.members(&code).await, ["alice"]);
    wait_until_room_is_gone(&alice, &code, grace + PATIENCE).await;
    assert!(
        closed_at.elapsed() >= grace - Duration::from_millis(50),
        "the room waited out the grace; it closed after {:?}",
        closed_at.elapsed()
    );
    assert_room_gone(&app, &alice, &code).await;
}

/// A closed room's code stays closed, its history is gone, and new rooms still start fresh.
#[tokio::test]
async fn a_closed_room_stays_gone_and_new_rooms_start_fresh() {
    // Arrange
    let app = spawn_app_with(&["--grace", "0"]).await;
    let (mut alice, old_code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&old_code).await;
    alice.say(&old_code, "a secret from the old room").await;
    events
        .expect_message("alice", "a secret from the old room")
        .await;
    drop(events);
    wait_until_room_is_gone(&alice, &old_code, Duration::from_secs(1)).await;

    // Act
    let mut newcomer = app.user();
    let join_old = newcomer.join("dave", &old_code).await.status();
    let new_code = alice.create_room_ok("alice").await;
    let mut new_events = alice.open_events_after(&new_code, 0).await;

    // Assert
    assert_eq!(
        join_old,
        StatusCode::NOT_FOUND,
        "the old code names no room"
    );
    let join = new_events.expect_event("join", "alice").await;
    assert_eq!(
        join.id,
        Some(1),
        "a new room's history starts afresh with its creator's join: {join:?}"
    );
    let page = alice.get(&format!("/rooms/{new_code}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("page text");
    assert!(
        !page.contains("a secret from the old room"),
        "the new room has none of the old history"
    );
    alice.say(&new_code, "fresh start").await;
    new_events.expect_message("alice", "fresh start").await;
    assert_eq!(
        status(&alice, &format!("/rooms/{old_code}")).await,
        StatusCode::NOT_FOUND
    );
}

/// Graceful shutdown ends every open stream and completes promptly.
#[tokio::test]
async fn graceful_shutdown_ends_open_streams() {
    // Arrange
    let app = spawn_app().await;
    let (_code, _alice, mut alice_events, _bob, mut bob_events) =
        alice_and_bob_streaming(&app).await;

    // Act
    let started = Instant::now();
    tokio::time::timeout(PATIENCE, app.shut_down())
        .await
        .expect("shutdown completes within the patience period");

    // Assert
    assert!(started.elapsed() < PATIENCE);
    alice_events.expect_end().await;
    bob_events.expect_end().await;
}

/// One session streams in two rooms at once, and each message reaches only its own room.
#[tokio::test]
async fn one_session_in_two_rooms_gets_each_rooms_messages_only() {
    // Arrange
    let app = spawn_app().await;
    let (mut alice, room_a) = app.user_in_new_room("alice").await;
    let (bob, room_b) = app.user_in_new_room("bob").await;
    let mut bob_b = bob.open_events(&room_b).await;
    let joined = alice.join("alice", &room_b).await;
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    bob_b.expect_event("join", "alice").await;
    let mut alice_a = alice.open_events(&room_a).await;
    let mut alice_b = alice.open_events(&room_b).await;

    // Act
    alice.say(&room_b, "to B").await;
    alice.say(&room_a, "to A").await;
    bob.say(&room_b, "bob to B").await;

    // Assert
    alice_a.expect_message("alice", "to A").await;
    for events in [&mut alice_b, &mut bob_b] {
        events.expect_message("alice", "to B").await;
        events.expect_message("bob", "bob to B").await;
    }
    expect_quiet(&mut alice_a, QUIET, "room A hears nothing of room B").await;
    assert_eq!(alice.members(&room_a).await, ["alice"]);
    assert_eq!(alice.members(&room_b).await, ["bob", "alice"]);
    assert_eq!(
        status(&bob, &format!("/rooms/{room_a}/members")).await,
        StatusCode::FORBIDDEN,
        "bob is not in room A"
    );
}
