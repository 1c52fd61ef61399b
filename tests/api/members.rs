//! `GET /rooms/{CODE}/members`: who is in the room, as JSON, for its members only —
//! everyone who joined, in join order, each with whether they have a stream open —
//! and that no two of them have names that pass for one another.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use serde_json::{Value, json};

use crate::helpers::{PATIENCE, User, spawn_app, spawn_app_with, unused_code};
use crate::web::{header, people, plain_text_line};

/// Members get a JSON list of everyone in the room with a `connected` flag, never
/// cached; others `403`; unknown rooms `404`.
#[tokio::test]
async fn the_members_list_is_for_members_only() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let (other, other_code) = app.user_in_new_room("other").await;
    let stranger = app.user();
    let unknown = unused_code(&[&code, &other_code]);

    // Act
    let listed = alice.get(&format!("/rooms/{code}/members")).await;
    let by_other = other.get(&format!("/rooms/{code}/members")).await;
    let by_stranger = stranger.get(&format!("/rooms/{code}/members")).await;
    let of_unknown = alice.get(&format!("/rooms/{unknown}/members")).await;

    // Assert
    assert_eq!(listed.status(), StatusCode::OK);
    let content_type = header(&listed, CONTENT_TYPE).unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(
        header(&listed, CACHE_CONTROL).as_deref(),
        Some("no-store"),
        "presence changes: never cached"
    );
    let list: Value = listed.json().await.expect("a JSON list of members");
    assert_eq!(
        list,
        json!([{ "name": "alice", "connected": true, "owner": true }])
    );
    assert_eq!(by_other.status(), StatusCode::FORBIDDEN);
    assert_eq!(by_stranger.status(), StatusCode::FORBIDDEN);
    assert_eq!(of_unknown.status(), StatusCode::NOT_FOUND);
}

/// Everyone who joined is listed from the moment they join, in join order;
/// `connected` follows whether they have a stream open, and closing it (within
/// the grace) unmarks them without removing them.
#[tokio::test]
async fn members_are_listed_from_joining_and_marked_connected_while_streaming() {
    // Arrange
    // A grace longer than the test: a closed stream only unmarks its member.
    let app = spawn_app_with(&["--grace", "60"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let bob = app.user_joined(&code, "bob").await;
    let carol = app.user_joined(&code, "carol").await;

    // Act
    let joined = alice.presence(&code).await;
    let bob_events = bob.open_events(&code).await;
    let streaming = carol.presence(&code).await;
    drop(bob_events);
    let closed = wait_for_presence(&alice, &code, &[("bob", false)]).await;

    // Assert
    assert_eq!(
        joined,
        people(&[("alice", true), ("bob", false), ("carol", false)])
    );
    assert_eq!(
        streaming,
        people(&[("alice", true), ("bob", true), ("carol", false)])
    );
    assert_eq!(
        closed,
        people(&[("alice", true), ("bob", false), ("carol", false)]),
        "bob is still a member while his grace runs"
    );
}

/// A name that mixes letter case with look-alike characters is a member's name
/// (`409`): `b0b`, `bo6`, `8ob` and `B0B` while bob is in, `AIice` and `ALlCE`
/// while alice is (issue 21); names that only resemble theirs join.
#[tokio::test]
async fn names_mixing_case_and_look_alikes_are_taken() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _bob = app.user_joined(&code, "bob").await;
    let _anna = app.user_joined(&code, "anna").await;

    // Act
    let mut refused = Vec::new();
    for name in ["b0b", "bo6", "8ob", "B0B", "AIice", "ALlCE"] {
        refused.push((name, app.user().join(name, &code).await));
    }
    let mut others = Vec::new();
    for name in ["rob", "ann"] {
        others.push((name, app.user().join(name, &code).await));
    }

    // Assert
    let message = format!(
        "Someone in room {code} already has that name, or one that looks the same. Please pick another name."
    );
    for (name, response) in refused {
        assert_eq!(response.status(), StatusCode::CONFLICT, "{name}");
        assert_eq!(plain_text_line(response).await, message, "{name}");
    }
    for (name, response) in others {
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name}");
    }
    assert_eq!(
        alice.members(&code).await,
        ["alice", "bob", "anna", "rob", "ann"]
    );
}

/// Polls the members list until each of `wanted` has its flag (a closed
/// connection takes the server a moment to notice); fails the test after
/// [`PATIENCE`]. Returns the whole list then.
async fn wait_for_presence(
    user: &User,
    code: &str,
    wanted: &[(&str, bool)],
) -> Vec<(String, bool)> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let list = user.presence(code).await;
        let reached = wanted
            .iter()
            .all(|&(name, flag)| list.iter().any(|(n, f)| n == name && *f == flag));
        if reached {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "presence never reached {wanted:?}: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
