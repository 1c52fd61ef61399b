//! `POST /rooms/{CODE}/messages`: who may post, the rules a message must keep, and
//! how a post is answered (`204` for curl and scripts, `303` for a plain form).
//! A refused message is published nowhere.

use reqwest::StatusCode;

use crate::helpers::{location, send_as_browser, spawn_app, spawn_app_with};
use crate::web::{html_body, message_texts, plain_text_line, retry_after, user_with_a_session};

/// A post by someone who is not a member is `403` and reaches no one.
#[tokio::test]
async fn a_non_member_cannot_post_and_nothing_is_published() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let outsider = user_with_a_session(&app, "outsider").await;
    let stranger = app.user();

    // Act
    let by_outsider = outsider.post_message(&code, "psst from outside").await;
    let by_stranger = stranger.post_message(&code, "psst from nowhere").await;

    // Assert
    assert_eq!(by_outsider.status(), StatusCode::FORBIDDEN);
    assert_eq!(by_stranger.status(), StatusCode::FORBIDDEN);
    alice.say(&code, "marker").await;
    let first = alice_events.next_message().await;
    assert_eq!((first.name(), first.text()), ("alice", "marker"));
    let page = html_body(alice.get_as_browser(&format!("/rooms/{code}")).await).await;
    assert_eq!(
        message_texts(&page),
        ["marker"],
        "a refused message is not in the history"
    );
}

/// Membership is checked first: a non-member's invalid post is `403`, not `400`.
#[tokio::test]
async fn a_non_member_is_refused_before_the_message_is_judged() {
    // Arrange
    let app = spawn_app().await;
    let (_alice, code) = app.user_in_new_room("alice").await;
    let outsider = user_with_a_session(&app, "outsider").await;

    // Act
    let blank = outsider.post_message(&code, "   ").await;
    let too_long = outsider.post_message(&code, &"x".repeat(2001)).await;

    // Assert
    assert_eq!(blank.status(), StatusCode::FORBIDDEN);
    assert_eq!(too_long.status(), StatusCode::FORBIDDEN);
}

/// Messages must have 1–2000 characters after trimming; refused ones are `400`
/// and never published.
#[tokio::test]
async fn messages_must_have_between_1_and_2000_characters() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let longest = "x".repeat(2000);
    let longest_wide = "é".repeat(2000);

    // Act
    let mut refused = Vec::new();
    for text in ["", "   ", " \n\t ", &"x".repeat(2001), &"é".repeat(2001)] {
        refused.push((text.len(), alice.post_message(&code, text).await));
    }
    let accepted = alice.post_message(&code, &longest).await;
    let accepted_wide = alice
        .post_message(&code, &format!("  {longest_wide}\n"))
        .await;

    // Assert
    for (len, response) in refused {
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{len} bytes");
        plain_text_line(response).await;
    }
    assert_eq!(accepted.status(), StatusCode::NO_CONTENT);
    assert_eq!(accepted_wide.status(), StatusCode::NO_CONTENT);
    assert_eq!(events.next_message().await.text(), longest);
    assert_eq!(events.next_message().await.text(), longest_wide);
}

/// A message of nothing but invisible characters and spaces is `400` (it would
/// post a blank line), while one that uses them inside, like an emoji joined
/// with ZWJ, is published as typed.
#[tokio::test]
async fn a_message_of_only_invisible_characters_is_refused_but_emoji_sequences_pass() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let family = "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}";

    // Act
    let mut refused = Vec::new();
    for text in ["\u{200B}", "\u{200B} \u{2060}\u{FEFF}", "\u{2800}\u{3164}"] {
        refused.push((text, alice.post_message(&code, text).await));
    }
    let accepted = alice.post_message(&code, family).await;

    // Assert
    for (text, response) in refused {
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{text:?}");
        let message = plain_text_line(response).await;
        assert!(message.contains("invisible"), "{text:?}: {message:?}");
    }
    assert_eq!(accepted.status(), StatusCode::NO_CONTENT);
    assert_eq!(events.next_message().await.text(), family);
}

/// `--max-message-chars 10`: 11 characters are refused, 10 accepted.
#[tokio::test]
async fn the_message_limit_is_configurable() {
    // Arrange
    let app = spawn_app_with(&["--max-message-chars", "10"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;

    // Act
    let eleven = alice.post_message(&code, "abcdefghijk").await;
    let ten = alice.post_message(&code, "abcdefghij").await;

    // Assert
    assert_eq!(eleven.status(), StatusCode::BAD_REQUEST);
    assert_eq!(ten.status(), StatusCode::NO_CONTENT);
    assert_eq!(events.next_message().await.text(), "abcdefghij");
}

/// The form limit is what the longest message needs as a browser sends it: 2,000
/// CJK characters (18 KB percent-encoded) are delivered; a body past the limit is
/// `413`, says the limit, and publishes nothing.
#[tokio::test]
async fn the_form_limit_fits_the_longest_message_and_no_more() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let longest = "語".repeat(2000);

    // Act
    let fits = alice.post_message(&code, &longest).await;
    let huge = alice.post_message(&code, &"x".repeat(25 * 1024)).await;

    // Assert
    assert_eq!(fits.status(), StatusCode::NO_CONTENT);
    assert_eq!(events.next_message().await.text(), longest);
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        huge.text().await.unwrap(),
        "A form can be at most 24 KiB.\n"
    );
    alice.say(&code, "after the big one").await;
    assert_eq!(events.next_message().await.text(), "after the big one");
}

/// A plain HTML form post is `303` back to the room; curl's post is `204`.
#[tokio::test]
async fn a_browser_form_post_redirects_to_the_room_and_curl_gets_204() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let path = format!("/rooms/{code}/messages");

    // Act
    let browser = send_as_browser(alice.post_request(&path, &[("message", "from a form")])).await;
    let curl = alice.post_message(&code, "from curl").await;

    // Assert
    assert_eq!(browser.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&browser), format!("/rooms/{code}"));
    assert_eq!(curl.status(), StatusCode::NO_CONTENT);
    assert_eq!(events.next_message().await.text(), "from a form");
    assert_eq!(events.next_message().await.text(), "from curl");
}

/// A send repeated with the same `Idempotency-Key` (its answer was lost) is
/// answered like the first, `Event-Id` included, and stored once; a new key is
/// a new message.
#[tokio::test]
async fn a_repeated_idempotency_key_stores_the_message_once() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let path = format!("/rooms/{code}/messages");
    let send = |key: &'static str, text: &'static str| {
        alice
            .post_request(&path, &[("message", text)])
            .header("idempotency-key", key)
            .send()
    };

    // Act
    let first = send("k-1", "once").await.unwrap();
    let repeat = send("k-1", "once").await.unwrap();
    let other = send("k-2", "twice").await.unwrap();

    // Assert
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(repeat.status(), StatusCode::NO_CONTENT);
    assert_eq!(other.status(), StatusCode::NO_CONTENT);
    let event_id = |response: &reqwest::Response| {
        response.headers()["event-id"]
            .to_str()
            .expect("ascii")
            .parse::<u64>()
            .expect("a number")
    };
    let once = events.next_message().await;
    assert_eq!(once.text(), "once");
    assert_eq!(Some(event_id(&first)), once.id, "Event-Id names the event");
    assert_eq!(
        event_id(&repeat),
        event_id(&first),
        "the repeat is answered alike"
    );
    let twice = events.next_message().await;
    assert_eq!(twice.text(), "twice");
    assert_eq!(Some(event_id(&other)), twice.id);
    assert_eq!(
        message_texts(&html_body(alice.get(&format!("/rooms/{code}")).await).await),
        ["once", "twice"]
    );
}

/// The room page's form carries a fresh key for its next message, and a form
/// posted twice with it (a double click, a resent form) is stored once.
#[tokio::test]
async fn the_form_carries_a_fresh_key_and_a_resent_form_is_stored_once() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let room = format!("/rooms/{code}");
    let key_in = |page: &str| {
        let at = page
            .find("name=\"idempotency_key\" value=\"")
            .expect("a key field")
            + 30;
        page[at..at + 32].to_owned()
    };
    let key = key_in(&html_body(alice.get(&room).await).await);
    let path = format!("{room}/messages");
    let form = [
        ("message", "from a form"),
        ("idempotency_key", key.as_str()),
    ];

    // Act
    let first = send_as_browser(alice.post_request(&path, &form)).await;
    let again = send_as_browser(alice.post_request(&path, &form)).await;

    // Assert
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(events.next_message().await.text(), "from a form");
    alice.say(&code, "next").await;
    assert_eq!(events.next_message().await.text(), "next", "no second copy");
    assert_ne!(key_in(&html_body(alice.get(&room).await).await), key);
}

/// A key that is not a short plain token is `400` and publishes nothing.
#[tokio::test]
async fn a_malformed_idempotency_key_is_400() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let path = format!("/rooms/{code}/messages");

    // Act
    let spaced = alice
        .post_request(&path, &[("message", "x"), ("idempotency_key", "a b")])
        .send()
        .await
        .unwrap();
    let long = alice
        .post_request(&path, &[("message", "x")])
        .header("idempotency-key", "k".repeat(65))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(spaced.status(), StatusCode::BAD_REQUEST);
    assert_eq!(long.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        plain_text_line(long).await,
        "An idempotency key is 1 to 64 letters, digits, '-', '_', '.' or '~'."
    );
    alice.say(&code, "after").await;
    assert_eq!(events.next_message().await.text(), "after");
}

/// A message of 2,000 four-byte characters: about 8 KB of frame, the largest
/// a member can make at the default `--max-message-chars`.
fn big_message(n: usize) -> String {
    format!("{n} {}", "😀".repeat(1_990))
}

/// A room of big messages keeps at most `--history-bytes` of them (20 KiB:
/// two such frames), the oldest going first: a stream resuming just before the
/// two newest gets exactly them, one resuming before that gets `reset`, and
/// the page shows the two newest.
#[tokio::test]
async fn a_room_keeps_at_most_its_history_bytes_of_big_messages() {
    // Arrange
    let app = spawn_app_with(&["--history-bytes", "20K"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;

    // Act: ids 2 to 6.
    let mut ids = Vec::new();
    for n in 1..=5 {
        alice.say(&code, &big_message(n)).await;
        ids.push(events.next_message().await.id.expect("an id"));
    }

    // Assert
    let mut kept = alice.open_events_after(&code, ids[2]).await;
    let replayed: Vec<String> = kept
        .next_events(2)
        .await
        .iter()
        .map(|event| event.text().to_owned())
        .collect();
    assert_eq!(replayed, [big_message(4), big_message(5)]);
    let mut beyond = alice.open_events_after(&code, ids[1]).await;
    let first = beyond.next_event().await;
    assert_eq!(
        first.event, "reset",
        "message 3 is no longer kept: {first:?}"
    );
    let page = html_body(alice.get_as_browser(&format!("/rooms/{code}")).await).await;
    assert_eq!(message_texts(&page), [big_message(4), big_message(5)]);
}

/// Once all rooms together keep nearly `--max-history-bytes` (64 KiB here,
/// with 20 KiB a room: two big messages each), so that another room's
/// history would not fit, a new room is refused with `503` and
/// `Retry-After`, while rooms already open go on.
#[tokio::test]
async fn rooms_over_the_total_history_bytes_refuse_new_rooms_with_503() {
    // Arrange: three rooms of two big messages, 48 KiB.
    let app = spawn_app_with(&["--history-bytes", "20K", "--max-history-bytes", "64K"]).await;
    let mut rooms = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let (user, code) = app.user_in_new_room(name).await;
        for n in 1..=2 {
            user.say(&code, &big_message(n)).await;
        }
        rooms.push((user, code));
    }

    // Act
    let mut dave = app.user();
    let refused = dave.create_room("dave").await;
    let (alice, code) = &rooms[0];
    let posted = alice.post_message(code, &big_message(3)).await;

    // Assert
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after(&refused) >= 1);
    assert_eq!(posted.status(), StatusCode::NO_CONTENT, "rooms open go on");
    let page = html_body(alice.get_as_browser(&format!("/rooms/{code}")).await).await;
    assert_eq!(message_texts(&page), [big_message(2), big_message(3)]);
}
