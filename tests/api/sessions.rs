//! Whom a request speaks for: one session in several rooms at once, cookies that
//! were tampered with or made by another server (no session at all), and posts
//! from other sites, which would otherwise speak for the cookie's owner.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, ORIGIN, SET_COOKIE};

use crate::helpers::{User, spawn_app};
use crate::web::{
    assert_changes_nothing, assert_not_a_member, html_body, input_value, message_texts, own_origin,
    people, user_with_a_session,
};

// ===== One session, several rooms =====

/// One session creates two rooms and uses both; messages stay in their room.
#[tokio::test]
async fn one_session_can_create_and_use_two_rooms_at_once() {
    // Arrange
    let app = spawn_app().await;
    let mut alice = app.user();
    let room_a = alice.create_room_ok("alice").await;
    let room_b = alice.create_room_ok("alice").await;
    assert_ne!(room_a, room_b);
    let mut a_events = alice.open_events(&room_a).await;
    let mut b_events = alice.open_events(&room_b).await;

    // Act
    alice.say(&room_a, "only in A").await;
    alice.say(&room_b, "only in B").await;

    // Assert
    assert_eq!(a_events.next_message().await.text(), "only in A");
    assert_eq!(b_events.next_message().await.text(), "only in B");
    let page_b = html_body(alice.get_as_browser(&format!("/rooms/{room_b}")).await).await;
    assert_eq!(message_texts(&page_b), ["only in B"]);
    assert_eq!(alice.presence(&room_a).await, people(&[("alice", true)]));
    assert_eq!(alice.presence(&room_b).await, people(&[("alice", true)]));
}

/// A member of room A who joins room B stays a member of A; both keep working.
#[tokio::test]
async fn joining_a_second_room_keeps_the_first_membership() {
    // Arrange
    let app = spawn_app().await;
    let (mut alice, room_a) = app.user_in_new_room("alice").await;
    let mut a_events = alice.open_events(&room_a).await;
    let (bob, room_b) = app.user_in_new_room("bob").await;
    let mut bob_events = bob.open_events(&room_b).await;

    // Act
    let joined = alice.join("alice", &room_b).await;
    let mut b_events = alice.open_events(&room_b).await;
    alice.say(&room_a, "hello A").await;
    alice.say(&room_b, "hello B").await;

    // Assert
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    assert_eq!(a_events.next_message().await.text(), "hello A");
    assert_eq!(b_events.next_message().await.text(), "hello B");
    bob_events.expect_event("join", "alice").await;
    bob_events.expect_message("alice", "hello B").await;
    assert_eq!(alice.presence(&room_a).await, people(&[("alice", true)]));
    assert_eq!(
        alice.presence(&room_b).await,
        people(&[("bob", true), ("alice", true)])
    );
}

// ===== Cookies that prove nothing =====

/// A cookie with one character changed counts as no session.
#[tokio::test]
async fn a_tampered_cookie_counts_as_no_session() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let mut mallory = app.user();
    mallory.cookie = Some(tampered(alice.cookie.as_deref().expect("alice's cookie")));

    // Act & Assert
    assert_counts_as_no_session(&mallory, &code).await;
    // The untampered cookie still works, so the refusals above are the tampering's.
    assert_eq!(
        alice.get(&format!("/rooms/{code}/members")).await.status(),
        StatusCode::OK
    );
}

/// A cookie made by another server instance counts as no session.
#[tokio::test]
async fn a_cookie_from_another_server_counts_as_no_session() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let elsewhere = spawn_app().await;
    let (zed, _) = elsewhere.user_in_new_room("zed").await;
    let mut foreigner = app.user();
    foreigner.cookie = zed.cookie.clone();

    // Act & Assert
    assert_counts_as_no_session(&foreigner, &code).await;
    let home = html_body(foreigner.get_as_browser("/").await).await;
    assert_eq!(
        input_value(&home, "name").as_deref(),
        Some(""),
        "zed is unknown here"
    );
}

// ===== Cross-site posts =====

/// `POST /rooms` from another origin is `403` and sets no session; from our own
/// origin it works.
#[tokio::test]
async fn creating_a_room_from_another_origin_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let visitor = app.user();
    let own = own_origin(&app);

    for origin in ["http://evil.example", "http://127.0.0.1:1"] {
        // Act
        let response = visitor
            .post_request("/rooms", &[("name", "alice")])
            .header(ORIGIN, origin)
            .send()
            .await
            .expect("POST /rooms");

        // Assert
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
        assert_changes_nothing(&response);
    }
    let ours = visitor
        .post_request("/rooms", &[("name", "alice")])
        .header(ORIGIN, &own)
        .send()
        .await
        .expect("POST /rooms");
    assert_eq!(ours.status(), StatusCode::SEE_OTHER);
    assert!(ours.headers().contains_key(SET_COOKIE));
}

/// `POST /join` from another origin is `403` and makes no one a member; from our
/// own origin it works.
#[tokio::test]
async fn joining_from_another_origin_is_refused_and_the_name_stays_free() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let bob = user_with_a_session(&app, "bob").await;

    // Act
    let response = bob
        .post_request("/join", &[("name", "bob"), ("code", &code)])
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .expect("POST /join");

    // Assert
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_changes_nothing(&response);
    assert_not_a_member(&bob, &code).await;
    assert_eq!(alice.presence(&code).await, people(&[("alice", true)]));
    let ours = bob
        .post_request("/join", &[("name", "bob"), ("code", &code)])
        .header(ORIGIN, own_origin(&app))
        .send()
        .await
        .expect("POST /join");
    assert_eq!(
        ours.status(),
        StatusCode::SEE_OTHER,
        "the name bob was still free"
    );
}

/// A message posted from another origin is `403` and published nowhere; from our
/// own origin it is published.
#[tokio::test]
async fn posting_a_message_from_another_origin_is_refused_and_not_published() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let path = format!("/rooms/{code}/messages");

    // Act
    let evil = alice
        .post_request(&path, &[("message", "forged")])
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .expect("POST message");
    let ours = alice
        .post_request(&path, &[("message", "genuine")])
        .header(ORIGIN, own_origin(&app))
        .send()
        .await
        .expect("POST message");

    // Assert
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    assert_eq!(ours.status(), StatusCode::NO_CONTENT);
    assert_eq!(events.next_message().await.text(), "genuine");
    let page = html_body(alice.get_as_browser(&format!("/rooms/{code}")).await).await;
    assert_eq!(message_texts(&page), ["genuine"]);
}

// ===== Helpers =====

/// No, tampered and foreign sessions alike: events and posts `403`, the room page
/// a join form.
async fn assert_counts_as_no_session(user: &User, code: &str) {
    let events = user
        .get_request(&format!("/rooms/{code}/events"))
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .expect("GET events");
    assert_eq!(events.status(), StatusCode::FORBIDDEN, "events");
    let post = user.post_message(code, "who am I").await;
    assert_eq!(post.status(), StatusCode::FORBIDDEN, "messages");
    assert_not_a_member(user, code).await;
    let page = user.get_as_browser(&format!("/rooms/{code}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = html_body(page).await;
    assert_eq!(
        input_value(&page, "code").as_deref(),
        Some(code),
        "a join form"
    );
    assert_eq!(
        input_value(&page, "name").as_deref(),
        Some(""),
        "nobody known"
    );
    assert!(input_value(&page, "message").is_none(), "not the room page");
}

/// The cookie with one character in the middle of its value changed.
fn tampered(cookie: &str) -> String {
    let (name, value) = cookie.split_once('=').expect("name=value");
    let mut chars: Vec<char> = value.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    format!("{name}={}", chars.into_iter().collect::<String>())
}
