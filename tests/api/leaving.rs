//! Leaving with the Leave button (`POST /rooms/{CODE}/leave`): announced at once,
//! every stream of the member ends, the name is free, and the last one out
//! closes the room.

use std::time::Duration;

use reqwest::header::ORIGIN;
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::time::Instant;

use crate::helpers::{
    PATIENCE, User, alice_and_bob_streaming, location, send_as_browser, spawn_app_with, unused_code,
};
use crate::lifecycle::{POLL, assert_room_gone, status, wait_until_room_is_gone};

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
    alice_events.expect_event("join", "carol").await;
    let _carol_events = carol.open_events(&code).await;

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

/// Someone who left can join again under the same name and is announced again, on joining.
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
    let rejoin_announced = alice_events.next_event().await;
    let mut bob_events = bob.open_events(&code).await;

    // Assert
    assert_eq!(rejoined.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&rejoined), format!("/rooms/{code}"));
    assert_eq!(
        (rejoin_announced.event.as_str(), rejoin_announced.name()),
        ("join", "bob"),
        "{rejoin_announced:?}"
    );
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
    alice_events.expect_event("join", "bob").await;
    let mut newcomer_events = newcomer.open_events(&code).await;
    newcomer.say(&code, "hello, I am the new bob").await;
    newcomer_events
        .expect_message("bob", "hello, I am the new bob")
        .await;
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
    assert_no_longer_a_member(&bob, &code).await;
}
