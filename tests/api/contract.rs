//! The core flow: create, join, stream, post.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

/// Creating a room redirects to it and sets a protected session cookie.
#[tokio::test]
async fn creating_a_room_redirects_to_it_and_sets_the_session_cookie() {
    let app = spawn_app().await;
    let mut alice = app.user();

    let response = alice.create_room("alice").await;

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            cookie.contains(attribute),
            "{attribute} missing from {cookie}"
        );
    }
    let code = crate::helpers::location(&response);
    let page = alice.get(&code).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains(" here</summary>"));
}

/// A message posted by one member reaches every member's stream; streams opened
/// after everyone joined carry no join notices before it.
#[tokio::test]
async fn a_posted_message_reaches_every_members_stream() {
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let bob = app.user_joined(&code.to_lowercase(), "bob").await;
    let mut alice_events = alice.open_events(&code).await;
    let mut bob_events = bob.open_events(&code).await;

    bob.say(&code, "hello alice").await;

    for events in [&mut alice_events, &mut bob_events] {
        events.expect_message("bob", "hello alice").await;
    }
}
