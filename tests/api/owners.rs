//! Owners: whoever creates a room owns it (`owner` in `/members`), locks it
//! against newcomers (`POST /rooms/{CODE}/lock`, `/unlock`) and removes members
//! (`POST /rooms/{CODE}/remove`), who cannot come back; when the owner leaves,
//! the member who has been there longest owns the room. Everyone hears of each
//! change as an event (`lock`, `unlock`, `remove`, `owner`); a refused request
//! publishes nothing.

use reqwest::header::ORIGIN;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    Events, PATIENCE, TestApp, User, alice_and_bob_streaming, location, polled_events,
    polled_last_id, send_as_browser, spawn_app, spawn_app_with,
};
use crate::web::{html_body, own_origin, plain_text_line};

/// `POST /rooms/{code}/{action}` as `user` (a member), shaped like curl's.
fn owner_request(user: &User, code: &str, action: &str, fields: &[(&str, &str)]) -> RequestBuilder {
    user.post_request(&format!("/rooms/{code}/{action}"), fields)
}

async fn lock(user: &User, code: &str) -> Response {
    owner_request(user, code, "lock", &[])
        .send()
        .await
        .expect("POST lock")
}

async fn unlock(user: &User, code: &str) -> Response {
    owner_request(user, code, "unlock", &[])
        .send()
        .await
        .expect("POST unlock")
}

async fn leave(user: &User, code: &str) -> Response {
    owner_request(user, code, "leave", &[])
        .send()
        .await
        .expect("POST leave")
}

async fn remove(user: &User, code: &str, name: &str) -> Response {
    owner_request(user, code, "remove", &[("name", name)])
        .send()
        .await
        .expect("POST remove")
}

/// Asserts `response` has `status` and, as curl sees it, the one line `message`.
async fn assert_refused(response: Response, status: StatusCode, message: &str, what: &str) {
    assert_eq!(response.status(), status, "{what}");
    assert_eq!(plain_text_line(response).await, message, "{what}");
}

/// What a non-owner is told when they try the owner's actions.
fn owners_only(code: &str) -> String {
    format!("Only the owner of room {code} can do that.")
}

/// What a removed member is told about the room, whatever they ask.
fn removed_from(code: &str) -> String {
    format!("The owner removed you from room {code}: you cannot rejoin it.")
}

/// The room's `/members` list as JSON, as `user` (a member) gets it.
async fn member_list(user: &User, code: &str) -> Value {
    let response = user.get(&format!("/rooms/{code}/members")).await;
    assert_eq!(response.status(), StatusCode::OK, "the members list");
    response.json().await.expect("a JSON list of members")
}

/// Posts a message as `user` and asserts each of `streams` receives it next:
/// nothing was published on them since the events already read.
async fn expect_nothing_published_before(
    user: &User,
    code: &str,
    name: &str,
    streams: &mut [&mut Events],
) {
    let marker = "nothing happened before this";
    user.say(code, marker).await;
    for events in streams.iter_mut() {
        events.expect_message(name, marker).await;
    }
}

/// Reads the next event on `events` and asserts it is `kind` about `name`, with
/// the `kind` in its JSON too.
async fn expect_notice(events: &mut Events, kind: &str, name: &str) {
    let event = events.expect_event(kind, name).await;
    assert_eq!(event.data["kind"], kind, "{event:?}");
}

/// Alice (the owner), bob and carol in one room, each with a stream open that
/// has seen everyone's joins.
async fn alice_bob_and_carol_streaming(app: &TestApp) -> (String, [(User, Events); 3]) {
    let (code, alice, mut alice_events, bob, mut bob_events) = alice_and_bob_streaming(app).await;
    let carol = app.user_joined(&code, "carol").await;
    expect_notice(&mut alice_events, "join", "carol").await;
    expect_notice(&mut bob_events, "join", "carol").await;
    let carol_events = carol.open_events(&code).await;
    (
        code,
        [
            (alice, alice_events),
            (bob, bob_events),
            (carol, carol_events),
        ],
    )
}

/// The creator owns the room: `/members` flags them, and only them, as owner.
#[tokio::test]
async fn whoever_creates_a_room_owns_it() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let bob = app.user_joined(&code, "bob").await;

    // Act
    let seen_by_alice = member_list(&alice, &code).await;
    let seen_by_bob = member_list(&bob, &code).await;

    // Assert
    let expected = json!([
        { "name": "alice", "connected": false, "owner": true },
        { "name": "bob", "connected": false, "owner": false },
    ]);
    assert_eq!(seen_by_alice, expected);
    assert_eq!(seen_by_bob, expected);
}

/// A locked room turns newcomers away with `423` and says why; its members post
/// and re-join as before; unlocked, newcomers get in again. Everyone sees one
/// `lock` and one `unlock` by the owner, however often she asks.
#[tokio::test]
async fn the_owner_locks_newcomers_out_and_lets_them_in_again() {
    // Arrange
    let app = spawn_app().await;
    let (code, alice, mut alice_events, mut bob, mut bob_events) =
        alice_and_bob_streaming(&app).await;
    let mut dave = app.user();

    // Act
    let locked = lock(&alice, &code).await;
    let locked_again = lock(&alice, &code).await;
    let dave_while_locked = dave.join("dave", &code).await;
    let bob_rejoins = bob.join("bob", &code).await;
    bob.say(&code, "still here").await;
    let unlocked = unlock(&alice, &code).await;
    let unlocked_again = unlock(&alice, &code).await;
    let dave_after = dave.join("dave", &code).await;

    // Assert
    assert_eq!(locked.status(), StatusCode::NO_CONTENT, "lock");
    assert_eq!(locked_again.status(), StatusCode::NO_CONTENT, "lock again");
    assert_refused(
        dave_while_locked,
        StatusCode::LOCKED,
        &format!("Room {code} is locked: its owner lets no one new in for now."),
        "a newcomer joining a locked room",
    )
    .await;
    assert_eq!(
        bob_rejoins.status(),
        StatusCode::SEE_OTHER,
        "a member re-joining"
    );
    assert_eq!(location(&bob_rejoins), format!("/rooms/{code}"));
    assert_eq!(unlocked.status(), StatusCode::NO_CONTENT, "unlock");
    assert_eq!(
        unlocked_again.status(),
        StatusCode::NO_CONTENT,
        "unlock again"
    );
    assert_eq!(
        dave_after.status(),
        StatusCode::SEE_OTHER,
        "joining, unlocked"
    );
    // Exactly this, in this order: a second lock or unlock, the refused join or
    // bob's re-join would each have come between.
    for events in [&mut alice_events, &mut bob_events] {
        expect_notice(events, "lock", "alice").await;
        events.expect_message("bob", "still here").await;
        expect_notice(events, "unlock", "alice").await;
        expect_notice(events, "join", "dave").await;
    }
    assert_eq!(bob.members(&code).await, ["alice", "bob", "dave"]);
}

/// A member who is not the owner gets `403` for lock, unlock and remove, and
/// nothing changes: no event, the room stays locked, nobody is removed.
#[tokio::test]
async fn only_the_owner_may_lock_unlock_or_remove() {
    // Arrange
    let app = spawn_app().await;
    let (
        code,
        [
            (alice, mut alice_events),
            (bob, mut bob_events),
            (_carol, mut carol_events),
        ],
    ) = alice_bob_and_carol_streaming(&app).await;
    assert_eq!(lock(&alice, &code).await.status(), StatusCode::NO_CONTENT);
    for events in [&mut alice_events, &mut bob_events, &mut carol_events] {
        expect_notice(events, "lock", "alice").await;
    }

    // Act
    let bob_unlocks = unlock(&bob, &code).await;
    let bob_locks = lock(&bob, &code).await;
    let bob_removes_carol = remove(&bob, &code, "carol").await;
    let bob_removes_alice = remove(&bob, &code, "alice").await;

    // Assert
    for (response, what) in [
        (bob_unlocks, "unlock"),
        (bob_locks, "lock"),
        (bob_removes_carol, "remove carol"),
        (bob_removes_alice, "remove the owner"),
    ] {
        assert_refused(response, StatusCode::FORBIDDEN, &owners_only(&code), what).await;
    }
    expect_nothing_published_before(
        &alice,
        &code,
        "alice",
        &mut [&mut alice_events, &mut bob_events, &mut carol_events],
    )
    .await;
    assert_eq!(alice.members(&code).await, ["alice", "bob", "carol"]);
    let refused = app.user().join("dave", &code).await;
    assert_eq!(refused.status(), StatusCode::LOCKED, "still locked");
}

/// The removed member's open stream gets the `remove` about them, then ends;
/// the others see it too. After that, everything they ask about the room is
/// `403` with the reason, and they cannot join again, under any name, with the
/// same session.
#[tokio::test]
async fn a_removed_member_hears_of_it_and_is_shut_out() {
    // Arrange
    let app = spawn_app().await;
    let (
        code,
        [
            (alice, mut alice_events),
            (mut bob, mut bob_events),
            (_carol, mut carol_events),
        ],
    ) = alice_bob_and_carol_streaming(&app).await;

    // Act
    let removed = remove(&alice, &code, "bob").await;

    // Assert: everyone hears of it, bob too, and then bob's stream ends.
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let told = bob_events.expect_event("remove", "bob").await;
    assert_eq!(told.data["kind"], "remove", "{told:?}");
    assert!(told.id.is_some(), "a room event, with an id: {told:?}");
    bob_events.expect_end().await;
    assert!(bob_events.ended(), "bob's stream ended");
    expect_notice(&mut alice_events, "remove", "bob").await;
    expect_notice(&mut carol_events, "remove", "bob").await;
    assert_eq!(alice.members(&code).await, ["alice", "carol"]);

    // Assert: whatever bob asks about the room is refused with the reason.
    let reason = removed_from(&code);
    let asked = [
        (bob.post_message(&code, "let me back").await, "a post"),
        (
            bob.get(&format!("/rooms/{code}/events")).await,
            "the stream",
        ),
        (
            bob.get(&format!("/rooms/{code}/poll?after=0")).await,
            "a poll",
        ),
        (
            bob.get(&format!("/rooms/{code}/members")).await,
            "the members",
        ),
        (bob.get(&format!("/rooms/{code}")).await, "the room page"),
    ];
    for (response, what) in asked {
        assert_refused(response, StatusCode::FORBIDDEN, &reason, what).await;
    }
    let page = bob.get_as_browser(&format!("/rooms/{code}")).await;
    assert_eq!(
        page.status(),
        StatusCode::FORBIDDEN,
        "the room page, in a browser"
    );
    let page = html_body(page).await;
    assert!(page.contains(&reason), "the page says why: {page}");

    // Assert: bob cannot join again, by his name or another.
    let as_bob = bob.join("bob", &code).await;
    assert_refused(as_bob, StatusCode::FORBIDDEN, &reason, "re-joining").await;
    let as_robert = bob.join("robert", &code).await;
    assert_refused(
        as_robert,
        StatusCode::FORBIDDEN,
        &reason,
        "re-joining as robert",
    )
    .await;
    // Once he is in another room his cookie no longer holds this room's
    // membership (passes to rooms left are dropped): his session is still known.
    bob.create_room_ok("bob").await;
    let from_elsewhere = bob.join("robert", &code).await;
    assert_refused(
        from_elsewhere,
        StatusCode::FORBIDDEN,
        &reason,
        "re-joining from another room",
    )
    .await;
    expect_nothing_published_before(
        &alice,
        &code,
        "alice",
        &mut [&mut alice_events, &mut carol_events],
    )
    .await;
}

/// Someone else cannot take the name of a removed member, in any letter case or
/// look-alike spelling, nor in both at once (`B0B`, issue 21), with a fresh
/// session (`409`); another name is fine.
#[tokio::test]
async fn nobody_new_may_take_a_removed_members_name() {
    // Arrange
    let app = spawn_app().await;
    let (code, alice, mut alice_events, _bob, _bob_events) = alice_and_bob_streaming(&app).await;
    assert_eq!(
        remove(&alice, &code, "bob").await.status(),
        StatusCode::NO_CONTENT
    );
    expect_notice(&mut alice_events, "remove", "bob").await;

    // Act
    let mut refused = Vec::new();
    // The third with a Cyrillic "о" (U+043E).
    for name in ["bob", "BOB", "b\u{043E}b", "B0B", "b0b", "8ob"] {
        let response = app.user().join(name, &code).await;
        refused.push((name, response));
    }
    let mut robert = app.user();
    let other_name = robert.join("robert", &code).await;

    // Assert
    let message =
        format!("The owner of room {code} removed someone of that name. Please pick another name.");
    for (name, response) in refused {
        assert_refused(response, StatusCode::CONFLICT, &message, name).await;
    }
    assert_eq!(other_name.status(), StatusCode::SEE_OTHER, "another name");
    expect_notice(&mut alice_events, "join", "robert").await;
}

/// A removed member's poll that is waiting for news answers at once, with the
/// `remove` about them; their next poll is `403`.
#[tokio::test]
async fn a_removed_members_waiting_poll_answers_with_the_removal() {
    // Arrange: a poll wait far longer than the test, so only news answers it.
    let app = spawn_app_with(&["--poll-wait", "60"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let bob = app.user_joined(&code, "bob").await;
    expect_notice(&mut alice_events, "join", "bob").await;
    let last_id = polled_last_id(&bob.poll_ok(&code, Some(0)).await);
    let waiting = {
        let bob = bob.another_tab();
        let code = code.clone();
        tokio::spawn(async move { bob.poll(&code, Some(last_id)).await })
    };
    // A waiting poll holds the room like a stream: bob shows as connected.
    alice.wait_for_presence(&code, "bob", true).await;

    // Act
    let removed = remove(&alice, &code, "bob").await;
    let (status, answer) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the waiting poll answers within the patience period")
        .expect("the polling task");

    // Assert
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(status, StatusCode::OK, "{answer}");
    let events = polled_events(&answer);
    assert_eq!(events.len(), 1, "just the removal: {answer}");
    assert_eq!(events[0]["kind"], "remove", "{answer}");
    assert_eq!(events[0]["name"], "bob", "{answer}");
    let (next, reason) = bob.poll(&code, Some(polled_last_id(&answer))).await;
    assert_eq!(next, StatusCode::FORBIDDEN, "the next poll");
    assert_eq!(reason, Value::String(format!("{}\n", removed_from(&code))));
    expect_notice(&mut alice_events, "remove", "bob").await;
}

/// The owner cannot remove themselves (`400`: leaving is the way out), nor a
/// name nobody in the room has (`400`); neither publishes anything.
#[tokio::test]
async fn removing_yourself_or_nobody_is_a_bad_request() {
    // Arrange
    let app = spawn_app().await;
    let (code, alice, mut alice_events, _bob, mut bob_events) = alice_and_bob_streaming(&app).await;

    // Act
    let herself = remove(&alice, &code, "alice").await;
    let herself_in_capitals = remove(&alice, &code, "ALICE").await;
    let nobody = remove(&alice, &code, "zoe").await;

    // Assert
    let not_herself = "The owner cannot remove themselves; to go, leave the room.";
    assert_refused(herself, StatusCode::BAD_REQUEST, not_herself, "herself").await;
    assert_refused(
        herself_in_capitals,
        StatusCode::BAD_REQUEST,
        not_herself,
        "herself, in capitals",
    )
    .await;
    assert_refused(
        nobody,
        StatusCode::BAD_REQUEST,
        &format!("Nobody of that name is in room {code}."),
        "a name nobody has",
    )
    .await;
    expect_nothing_published_before(
        &alice,
        &code,
        "alice",
        &mut [&mut alice_events, &mut bob_events],
    )
    .await;
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
}

/// When the owner leaves, the member who has been there longest owns the room:
/// everyone sees her `leave`, then `owner` naming him, and `/members` flags him.
/// A member who is not the owner leaving passes nothing on.
#[tokio::test]
async fn ownership_passes_to_the_longest_present_member_when_the_owner_leaves() {
    // Arrange
    let app = spawn_app().await;
    let (
        code,
        [
            (alice, mut alice_events),
            (bob, mut bob_events),
            (carol, mut carol_events),
        ],
    ) = alice_bob_and_carol_streaming(&app).await;
    let dave = app.user_joined(&code, "dave").await;
    for events in [&mut alice_events, &mut bob_events, &mut carol_events] {
        expect_notice(events, "join", "dave").await;
    }

    // Act
    let dave_leaves = leave(&dave, &code).await;
    let alice_leaves = leave(&alice, &code).await;

    // Assert
    assert_eq!(dave_leaves.status(), StatusCode::NO_CONTENT, "dave leaves");
    assert_eq!(
        alice_leaves.status(),
        StatusCode::NO_CONTENT,
        "alice leaves"
    );
    for events in [&mut bob_events, &mut carol_events] {
        expect_notice(events, "leave", "dave").await;
        expect_notice(events, "leave", "alice").await;
        expect_notice(events, "owner", "bob").await;
    }
    alice_events.expect_end().await;
    assert_eq!(
        member_list(&carol, &code).await,
        json!([
            { "name": "bob", "connected": true, "owner": true },
            { "name": "carol", "connected": true, "owner": false },
        ])
    );
    assert_refused(
        lock(&carol, &code).await,
        StatusCode::FORBIDDEN,
        &owners_only(&code),
        "carol locks",
    )
    .await;
    assert_eq!(
        lock(&bob, &code).await.status(),
        StatusCode::NO_CONTENT,
        "bob locks"
    );
    expect_notice(&mut carol_events, "lock", "bob").await;
}

/// An owner whose streams close and stay away past the grace period leaves, and
/// the room passes on as if she had pressed Leave.
#[tokio::test]
async fn ownership_passes_when_the_owner_goes_away_for_the_grace_period() {
    // Arrange
    let app = spawn_app_with(&["--grace", "0.3"]).await;
    let (code, alice, alice_events, bob, mut bob_events) = alice_and_bob_streaming(&app).await;

    // Act: alice closes her tab.
    drop(alice_events);

    // Assert
    expect_notice(&mut bob_events, "leave", "alice").await;
    expect_notice(&mut bob_events, "owner", "bob").await;
    assert_eq!(
        member_list(&bob, &code).await,
        json!([{ "name": "bob", "connected": true, "owner": true }])
    );
    assert_eq!(lock(&bob, &code).await.status(), StatusCode::NO_CONTENT);
    expect_notice(&mut bob_events, "lock", "bob").await;
    let gone = alice.get(&format!("/rooms/{code}/members")).await;
    assert_eq!(
        gone.status(),
        StatusCode::FORBIDDEN,
        "alice is no member now"
    );
}

/// A browser posting the owner's forms (`Accept: text/html`) is sent back to
/// the room with `303`; a non-owner's browser gets a page saying why not.
#[tokio::test]
async fn the_owners_forms_send_a_browser_back_to_the_room() {
    // Arrange
    let app = spawn_app().await;
    let (
        code,
        [
            (alice, mut alice_events),
            (bob, _bob_events),
            (_carol, mut carol_events),
        ],
    ) = alice_bob_and_carol_streaming(&app).await;
    let as_browser =
        |request: RequestBuilder| send_as_browser(request.header(ORIGIN, own_origin(&app)));

    // Act
    let locked = as_browser(owner_request(&alice, &code, "lock", &[])).await;
    let page_locked = html_body(alice.get_as_browser(&format!("/rooms/{code}")).await).await;
    let unlocked = as_browser(owner_request(&alice, &code, "unlock", &[])).await;
    let removed = as_browser(owner_request(&alice, &code, "remove", &[("name", "carol")])).await;
    let by_bob = as_browser(owner_request(&bob, &code, "lock", &[])).await;

    // Assert
    for (response, what) in [(locked, "lock"), (unlocked, "unlock"), (removed, "remove")] {
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{what}");
        assert_eq!(location(&response), format!("/rooms/{code}"), "{what}");
    }
    assert!(
        page_locked.contains("Unlock the room"),
        "the owner's page offers to unlock: {page_locked}"
    );
    assert_eq!(
        by_bob.status(),
        StatusCode::FORBIDDEN,
        "bob is not the owner"
    );
    let refusal = html_body(by_bob).await;
    assert!(refusal.contains(&owners_only(&code)), "{refusal}");
    expect_notice(&mut alice_events, "lock", "alice").await;
    expect_notice(&mut alice_events, "unlock", "alice").await;
    expect_notice(&mut alice_events, "remove", "carol").await;
    expect_notice(&mut carol_events, "lock", "alice").await;
    expect_notice(&mut carol_events, "unlock", "alice").await;
    expect_notice(&mut carol_events, "remove", "carol").await;
    carol_events.expect_end().await;
}

/// The room page's Remove form carries `confirm=ask`: it gets a page asking
/// first, whose own form removes; nobody is removed until then. Scripts and
/// curl, which leave the field out, remove at once.
#[tokio::test]
async fn a_remove_that_asks_first_gets_a_page_and_removes_nobody() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _bob = app.user_joined(&code, "bob").await;
    let fields = [("name", "bob"), ("confirm", "ask")];

    // Act
    let asked = send_as_browser(owner_request(&alice, &code, "remove", &fields)).await;

    // Assert
    assert_eq!(asked.status(), StatusCode::OK);
    let page = asked.text().await.expect("the page");
    assert!(page.contains("<h1>Remove <bdi>bob</bdi>?</h1>"), "{page}");
    assert!(page.contains("They cannot come back"), "{page}");
    assert!(
        page.contains(&format!("action=\"/rooms/{code}/remove\""))
            && page.contains("name=\"name\" value=\"bob\"")
            && !page.contains("name=\"confirm\""),
        "a form that removes: {page}"
    );
    assert!(
        page.contains(&format!("href=\"/rooms/{code}\">Cancel</a>")),
        "{page}"
    );
    assert_eq!(
        alice.members(&code).await,
        ["alice", "bob"],
        "nobody removed yet"
    );

    // Act: yes.
    let removed = send_as_browser(owner_request(&alice, &code, "remove", &[("name", "bob")])).await;

    // Assert
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    assert_eq!(alice.members(&code).await, ["alice"]);
}
