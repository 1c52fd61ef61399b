//! A room's life: join and leave notices, the grace period, closure, shutdown,
//! and one session in two rooms.

use std::time::Duration;

use reqwest::header::ORIGIN;
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::time::Instant;

use crate::helpers::{
    Events, PATIENCE, TestApp, User, alice_and_bob_streaming, location, send_as_browser, spawn_app,
    spawn_app_with, unused_code,
};

/// How long a stream must stay quiet to count as "nothing was sent".
const QUIET: Duration = Duration::from_millis(500);

/// How often a poll loop looks again.
const POLL: Duration = Duration::from_millis(25);

/// Asserts nothing arrives on `events` for `window`.
async fn expect_quiet(events: &mut Events, window: Duration, what: &str) {
    if let Some(event) = events.next_event_within(window).await {
        panic!("{what}, but got {event:?}");
    }
}

/// Status of `GET path` as `user`.
async fn status(user: &User, path: &str) -> StatusCode {
    user.get(path).await.status()
}

/// Polls until `member`'s `GET /rooms/{code}` is 404, failing after `limit`.
async fn wait_until_room_is_gone(member: &User, code: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let page = status(member, &format!("/rooms/{code}")).await;
        if page == StatusCode::NOT_FOUND {
            return;
        }
        assert_eq!(page, StatusCode::OK, "the room page, while the room exists");
        assert!(
            Instant::now() < deadline,
            "room {code} still exists after {limit:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Asserts every request about room `code` answers 404, for a member and a newcomer.
async fn assert_room_gone(app: &TestApp, member: &User, code: &str) {
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

/// `join` is announced when a member's first stream opens; a second tab adds no join, closing it no leave.
#[tokio::test]
async fn join_is_announced_by_the_first_stream_only() {
    // Arrange
    let app = spawn_app_with(&["--grace", "0"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    alice_events.expect_event("join", "alice").await;

    // Act + Assert: joining by POST announces nothing.
    let bob = app.user_joined(&code, "bob").await;
    expect_quiet(&mut alice_events, QUIET, "no notice at POST /join").await;

    // Act + Assert: bob's first stream announces him.
    let mut bob_tab_one = bob.open_events(&code).await;
    alice_events.expect_event("join", "bob").await;
    bob_tab_one.expect_event("join", "bob").await;

    // Act + Assert: a second tab announces nothing, and closing it makes no leave.
    let bob_tab_two = bob.open_events(&code).await;
    drop(bob_tab_two);
    expect_quiet(
        &mut alice_events,
        QUIET,
        "no notice for a second tab opening or closing",
    )
    .await;
    alice.say(&code, "still here?").await;
    alice_events.expect_message("alice", "still here?").await;
    bob_tab_one.expect_message("alice", "still here?").await;
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
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
    let mut events = alice.open_events(&code).await;
    events.expect_event("join", "alice").await;

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
    let mut events = alice.open_events(&code).await;
    events.expect_event("join", "alice").await;

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
    events.expect_event("join", "alice").await;
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
    let mut new_events = alice.open_events(&new_code).await;

    // Assert
    assert_eq!(
        join_old,
        StatusCode::NOT_FOUND,
        "the old code names no room"
    );
    let join = new_events.expect_event("join", "alice").await;
    assert_eq!(join.id, Some(1), "a new room's ids start afresh: {join:?}");
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
    let joined = alice.join("alice", &room_b).await;
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    let mut bob_b = bob.open_events(&room_b).await;
    bob_b.expect_event("join", "bob").await;
    let mut alice_a = alice.open_events(&room_a).await;
    alice_a.expect_event("join", "alice").await;
    let mut alice_b = alice.open_events(&room_b).await;
    alice_b.expect_event("join", "alice").await;
    bob_b.expect_event("join", "alice").await;

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

/// `POST /rooms/{code}/leave` as `user`, shaped like curl's (`Accept: */*`).
fn leave_request(user: &User, code: &str) -> RequestBuilder {
    user.post_request(&format!("/rooms/{code}/leave"), &[])
}

/// Leaves room `code` as curl would.
async fn leave(user: &User, code: &str) -> Response {
    leave_request(user, code).send().await.expect("POST leave")
}

/// Asserts `user` is no member of the existing room `code`: events and posts
/// `403`, the room page a join form for it.
async fn assert_no_longer_a_member(user: &User, code: &str) {
    assert_eq!(
        status(user, &format!("/rooms/{code}/events")).await,
        StatusCode::FORBIDDEN,
        "events"
    );
    assert_eq!(
        user.post_message(code, "am I still here?").await.status(),
        StatusCode::FORBIDDEN,
        "messages"
    );
    let page = user.get_as_browser(&format!("/rooms/{code}")).await;
    assert_eq!(page.status(), StatusCode::OK, "the room page");
    let page = page.text().await.expect("page text");
    assert!(page.contains("action=\"/join\""), "a join form: {page}");
    assert!(
        page.contains(&format!("value=\"{code}\"")),
        "the code is filled in: {page}"
    );
    assert!(
        !page.contains(&format!("action=\"/rooms/{code}/messages\"")),
        "not the room page: {page}"
    );
}

/// Leaving is announced at once, even with a long grace, and ends the membership.
#[tokio::test]
async fn leaving_is_announced_at_once_and_ends_the_membership() {
    // Arrange
    let app = spawn_app_with(&["--grace", "30"]).await;
    let (code, alice, mut alice_events, bob, _bob_events) = alice_and_bob_streaming(&app).await;

    // Act
    let response = leave(&bob, &code).await;

    // Assert: within the patience period, far inside the 30 s grace.
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    alice_events.expect_event("leave", "bob").await;
    assert_eq!(alice.members(&code).await, ["alice"]);
    assert_no_longer_a_member(&bob, &code).await;
}

/// Every open stream of the member who leaves ends.
#[tokio::test]
async fn leaving_ends_all_of_the_members_streams() {
    // Arrange
    let app = spawn_app_with(&["--grace", "30"]).await;
    let (code, alice, mut alice_events, bob, mut bob_tab_one) = alice_and_bob_streaming(&app).await;
    let mut bob_tab_two = bob.open_events(&code).await;

    // Act
    let response = leave(&bob, &code).await;

    // Assert
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    bob_tab_one.expect_end().await;
    bob_tab_two.expect_end().await;
    alice_events.expect_event("leave", "bob").await;
    alice.say(&code, "just me").await;
    alice_events.expect_message("alice", "just me").await;
}

/// curl gets `204` for leaving; a browser posting the form gets `303` to the home page.
#[tokio::test]
async fn leaving_replies_204_to_curl_and_303_home_to_a_browser() {
    // Arrange
    let app = spawn_app_with(&["--grace", "30"]).await;
    let (code, alice, mut alice_events, bob, _bob_events) = alice_and_bob_streaming(&app).await;
    let carol = app.user_joined(&code, "carol").await;
    let _carol_events = carol.open_events(&code).await;
    alice_events.expect_event("join", "carol").await;

    // Act
    let by_curl = leave(&bob, &code).await;
    let by_browser = send_as_browser(
        leave_request(&carol, &code).header(ORIGIN, format!("http://{}", app.addr)),
    )
    .await;

    // Assert
    assert_eq!(by_curl.status(), StatusCode::NO_CONTENT, "curl");
    assert_eq!(by_browser.status(), StatusCode::SEE_OTHER, "a browser");
    assert_eq!(location(&by_browser), "/");
    alice_events.expect_event("leave", "bob").await;
    alice_events.expect_event("leave", "carol").await;
    assert_eq!(alice.members(&code).await, ["alice"]);
}

/// Leaving is refused to a non-member (`403`), for an unknown room (`404`) and
/// from another site (`403`, and the member stays).
#[tokio::test]
async fn leaving_is_refused_to_strangers_unknown_rooms_and_other_sites() {
    // Arrange
    let app = spawn_app_with(&["--grace", "30"]).await;
    let (code, alice, mut alice_events, bob, mut bob_events) = alice_and_bob_streaming(&app).await;
    let no_session = app.user();
    let (elsewhere, other_room) = app.user_in_new_room("dave").await;
    let unknown = unused_code(&[&code, &other_room]);

    // Act
    let by_no_session = leave(&no_session, &code).await.status();
    let by_elsewhere = leave(&elsewhere, &code).await.status();
    let of_unknown = leave(&bob, &unknown).await.status();
    let cross_origin = leave_request(&bob, &code)
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .expect("POST leave")
        .status();

    // Assert
    assert_eq!(by_no_session, StatusCode::FORBIDDEN, "no session");
    assert_eq!(
        by_elsewhere,
        StatusCode::FORBIDDEN,
        "a member of another room"
    );
    assert_eq!(of_unknown, StatusCode::NOT_FOUND, "an unknown room");
    assert_eq!(cross_origin, StatusCode::FORBIDDEN, "another site");
    bob.say(&code, "still here").await;
    alice_events.expect_message("bob", "still here").await;
    bob_events.expect_message("bob", "still here").await;
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
}

/// With `--grace 0` the room closes as soon as its last member left and their stream ended.
#[tokio::test]
async fn with_no_grace_the_room_closes_when_its_last_member_leaves() {
    // Arrange
    let app = spawn_app_with(&["--grace", "0"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    events.expect_event("join", "alice").await;

    // Act
    let response = leave(&alice, &code).await;
    events.expect_end().await;

    // Assert
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let mut newcomer = app.user();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let join = newcomer.join("carol", &code).await.status();
        if join == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(
            join,
            StatusCode::SEE_OTHER,
            "joining, while the room exists"
        );
        assert!(Instant::now() < deadline, "room {code} still exists");
        tokio::time::sleep(POLL).await;
    }
    assert_room_gone(&app, &alice, &code).await;
}

/// With a grace the room outlives its last member's leaving briefly, then closes.
#[tokio::test]
async fn with_a_grace_the_room_closes_after_its_last_member_leaves() {
    // Arrange
    let grace = Duration::from_millis(500);
    let app = spawn_app_with(&["--grace", "0.5"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    events.expect_event("join", "alice").await;

    // Act
    let left_at = Instant::now();
    let response = leave(&alice, &code).await;
    events.expect_end().await;

    // Assert
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        status(&app.user(), &format!("/rooms/{code}")).await,
        StatusCode::OK,
        "right after the last member left the room still exists"
    );
    wait_until_room_is_gone(&alice, &code, grace + PATIENCE).await;
    assert!(
        left_at.elapsed() >= grace - Duration::from_millis(50),
        "the room waited out the grace; it closed after {:?}",
        left_at.elapsed()
    );
    assert_room_gone(&app, &alice, &code).await;
}

/// Someone who left can join again under the same name and is announced again.
#[tokio::test]
async fn someone_who_left_can_join_again_with_the_same_name() {
    // Arrange
    let app = spawn_app_with(&["--grace", "30"]).await;
    let (code, alice, mut alice_events, mut bob, mut bob_events) =
        alice_and_bob_streaming(&app).await;
    assert_eq!(leave(&bob, &code).await.status(), StatusCode::NO_CONTENT);
    bob_events.expect_end().await;
    alice_events.expect_event("leave", "bob").await;

    // Act
    let rejoined = bob.join("bob", &code).await;
    let mut bob_events = bob.open_events(&code).await;

    // Assert
    assert_eq!(rejoined.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&rejoined), format!("/rooms/{code}"));
    alice_events.expect_event("join", "bob").await;
    bob_events.expect_event("join", "bob").await;
    bob.say(&code, "back again").await;
    alice_events.expect_message("bob", "back again").await;
    bob_events.expect_message("bob", "back again").await;
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
}

/// The name of someone who left is free for a newcomer at once, even with a long grace.
#[tokio::test]
async fn the_name_of_someone_who_left_is_free_at_once() {
    // Arrange
    let app = spawn_app_with(&["--grace", "30"]).await;
    let (code, alice, mut alice_events, bob, _bob_events) = alice_and_bob_streaming(&app).await;
    assert_eq!(leave(&bob, &code).await.status(), StatusCode::NO_CONTENT);
    alice_events.expect_event("leave", "bob").await;

    // Act
    let mut newcomer = app.user();
    let joined = newcomer.join("bob", &code).await;

    // Assert
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    let mut newcomer_events = newcomer.open_events(&code).await;
    alice_events.expect_event("join", "bob").await;
    newcomer_events.expect_event("join", "bob").await;
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
    assert_no_longer_a_member(&bob, &code).await;
}
