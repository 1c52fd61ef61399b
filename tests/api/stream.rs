//! The event stream: its headers, its frame format, replay after a reconnect,
//! `reset` beyond history, keep-alives, ordering, and noticing a closed connection.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::ACCEPT;

use crate::helpers::{
    Events, PATIENCE, SseEvent, User, alice_and_bob_streaming, spawn_app, spawn_app_with,
};

/// How long a stream must stay quiet to count as "nothing was sent".
const QUIET: Duration = Duration::from_millis(300);

/// The SSE id of an event, which every event must have.
fn id_of(event: &SseEvent) -> u64 {
    event.id.unwrap_or_else(|| panic!("an id on {event:?}"))
}

/// Asserts `at` has the shape of an RFC 3339 date-time in UTC:
/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
fn assert_rfc3339_utc(at: &str) {
    let bytes = at.as_bytes();
    let number = |range: std::ops::Range<usize>| -> u32 {
        let part = at.get(range.clone()).unwrap_or_else(|| panic!("{at:?}"));
        assert!(
            part.bytes().all(|b| b.is_ascii_digit()),
            "digits at {range:?} in {at:?}"
        );
        part.parse().unwrap()
    };
    assert!(at.ends_with('Z'), "UTC, ending with Z: {at:?}");
    assert!(bytes.len() >= 20, "too short for RFC 3339: {at:?}");
    assert_eq!(
        (bytes[4], bytes[7], bytes[10], bytes[13], bytes[16]),
        (b'-', b'-', b'T', b':', b':'),
        "separators of {at:?}"
    );
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (hour, minute, second) = (number(11..13), number(14..16), number(17..19));
    assert!(year >= 2020, "{at:?}");
    assert!(
        (1..=12).contains(&month) && (1..=31).contains(&day),
        "{at:?}"
    );
    assert!(hour < 24 && minute < 60 && second <= 60, "{at:?}");
    let rest = &at[19..at.len() - 1];
    if !rest.is_empty() {
        let fraction = rest
            .strip_prefix('.')
            .unwrap_or_else(|| panic!("only a fraction may follow the seconds: {at:?}"));
        assert!(
            !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()),
            "fraction of {at:?}"
        );
    }
}

/// Opens `/rooms/{code}/events{query}` with an optional `Last-Event-ID`, asserting 200.
async fn open_raw(user: &User, path: &str, last_event_id: Option<&str>) -> Events {
    let mut request = user.get_request(path).header(ACCEPT, "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = tokio::time::timeout(PATIENCE, request.send())
        .await
        .expect("the stream answers promptly")
        .expect("GET events");
    assert_eq!(response.status(), StatusCode::OK, "opening {path}");
    Events::new(response)
}

/// A member's event stream answers 200 with the SSE content type and no buffering.
#[tokio::test]
async fn the_event_stream_has_the_sse_headers() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;

    // Act
    let response = alice
        .get_request(&format!("/rooms/{code}/events"))
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .expect("GET events");

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("a {name} header"))
            .to_str()
            .expect("ascii header")
            .to_owned()
    };
    assert_eq!(
        header("content-type")
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_ascii_lowercase(),
        "text/event-stream"
    );
    assert_eq!(header("cache-control").to_ascii_lowercase(), "no-store");
    assert_eq!(header("x-accel-buffering").to_ascii_lowercase(), "no");
}

/// The stream starts with `retry:` and a `hello` a page can see; every event,
/// replayed or live, has an id, a name and one JSON data line that agree; the
/// history starts with the creator's join.
#[tokio::test]
async fn every_event_has_an_id_a_name_and_one_json_data_line() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let bob = app.user_joined(&code, "bob").await;

    // Act: alice's stream replays the whole history (both joins); bob's is live only.
    let mut events = alice.open_events_after(&code, 0).await;
    let first = events.next_frame().await;
    let mut bob_events = bob.open_events(&code).await;
    alice.say(&code, "hello").await;
    bob.say(&code, "hi alice").await;
    let mut frames = Vec::new();
    while frames.len() < 4 {
        let frame = events.next_frame().await;
        if frame.event.as_deref() == Some("heartbeat") {
            continue; // not expected within the default 15 s, but not a room event
        }
        if frame.event.is_some() {
            frames.push(frame);
        } else {
            assert!(
                frame.data.is_none() && frame.id.is_none(),
                "a frame with data or id but no event name: {:?}",
                frame.raw
            );
        }
    }

    // Assert
    assert!(
        first.retry.is_some() && first.raw.starts_with("retry:"),
        "the stream starts with a retry hint: {:?}",
        first.raw
    );
    assert_eq!(first.event.as_deref(), Some("hello"), "{:?}", first.raw);
    assert_eq!(first.id, None, "hello is not a room event: {:?}", first.raw);
    let hello: serde_json::Value =
        serde_json::from_str(first.data.as_deref().unwrap_or_default()).expect("JSON");
    assert_eq!(
        hello,
        serde_json::json!({"kind": "hello", "heartbeat_ms": 15000}),
        "hello says how often a quiet stream hears from the server"
    );
    let expected = [
        ("join", "alice", None),
        ("join", "bob", None),
        ("message", "alice", Some("hello")),
        ("message", "bob", Some("hi alice")),
    ];
    let mut last_id = 0;
    for (frame, (kind, name, text)) in frames.iter().zip(expected) {
        let raw = &frame.raw;
        let lines: Vec<&str> = raw.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("data:")).count(),
            1,
            "exactly one data line: {raw:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("id:")),
            "an id line: {raw:?}"
        );
        assert_eq!(frame.event.as_deref(), Some(kind), "{raw:?}");
        let id = frame.id.expect("an id");
        let data: serde_json::Value =
            serde_json::from_str(frame.data.as_deref().expect("data")).expect("JSON data");
        assert_eq!(
            data["id"].as_u64(),
            Some(id),
            "data id equals SSE id: {raw:?}"
        );
        assert_eq!(data["kind"].as_str(), Some(kind), "{raw:?}");
        assert_eq!(data["name"].as_str(), Some(name), "{raw:?}");
        if let Some(text) = text {
            assert_eq!(data["text"].as_str(), Some(text), "{raw:?}");
        }
        assert_rfc3339_utc(data["at"].as_str().expect("an `at` string"));
        assert!(id > last_id, "ids strictly increase: {id} after {last_id}");
        last_id = id;
    }
    assert_eq!(frames[0].id, Some(1), "the creator's join is event 1");
    // Bob's stream, opened after his join, carries the later events with the same ids.
    let hello = bob_events.expect_message("alice", "hello").await;
    assert_eq!(Some(id_of(&hello)), frames[2].id);
    let hi = bob_events.expect_message("bob", "hi alice").await;
    assert_eq!(Some(id_of(&hi)), frames[3].id);
}

/// A multi-line message arrives as one data line and its text, like unicode text, round-trips exactly.
#[tokio::test]
async fn multi_line_and_unicode_messages_round_trip() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let texts = [
        "a\nb",
        "first line\n\nthird line",
        "héllo wörld ✓ 日本語 🎉",
    ];

    // Act
    for text in texts {
        alice.say(&code, text).await;
    }

    // Assert
    for text in texts {
        let frame = loop {
            let frame = events.next_frame().await;
            if frame.event.is_some() && !frame.is_signal() {
                break frame;
            }
        };
        let data_lines = frame.raw.lines().filter(|l| l.starts_with("data:")).count();
        assert_eq!(data_lines, 1, "one data line: {:?}", frame.raw);
        let data: serde_json::Value =
            serde_json::from_str(frame.data.as_deref().unwrap()).expect("JSON data");
        assert_eq!(data["text"].as_str(), Some(text), "{:?}", frame.raw);
    }
}

/// Posts three messages and returns the id of the first, read from `events`.
async fn three_messages(user: &User, code: &str, name: &str, events: &mut Events) -> u64 {
    for text in ["one", "two", "three"] {
        user.say(code, text).await;
    }
    let first = events.expect_message(name, "one").await;
    events.expect_message(name, "two").await;
    events.expect_message(name, "three").await;
    id_of(&first)
}

/// Asserts the next events are "two", "three", then the live `live`, in order, no duplicates.
async fn expect_replay_then_live(
    user: &User,
    code: &str,
    name: &str,
    resumed: &mut Events,
    first_id: u64,
    live: &str,
) {
    let two = resumed.expect_message(name, "two").await;
    let three = resumed.expect_message(name, "three").await;
    user.say(code, live).await;
    let next = resumed.expect_message(name, live).await;
    let ids = [id_of(&two), id_of(&three), id_of(&next)];
    assert!(
        first_id < ids[0] && ids[0] < ids[1] && ids[1] < ids[2],
        "replay then live, in order: {first_id} then {ids:?}"
    );
}

/// A stream opened with `Last-Event-ID` replays exactly the kept events after it, then goes live.
#[tokio::test]
async fn last_event_id_replays_the_events_after_it() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let first = three_messages(&alice, &code, "alice", &mut events).await;

    // Act
    let mut resumed = alice.open_events_after(&code, first).await;

    // Assert
    expect_replay_then_live(&alice, &code, "alice", &mut resumed, first, "live").await;
}

/// `?after=ID` replays like `Last-Event-ID` does.
#[tokio::test]
async fn after_query_replays_the_events_after_it() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let first = three_messages(&alice, &code, "alice", &mut events).await;

    // Act
    let mut resumed = open_raw(&alice, &format!("/rooms/{code}/events?after={first}"), None).await;

    // Assert
    expect_replay_then_live(&alice, &code, "alice", &mut resumed, first, "live").await;
}

/// When both are given, `Last-Event-ID` wins over `?after=`.
#[tokio::test]
async fn last_event_id_header_wins_over_the_after_query() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events_after(&code, 0).await;
    let join = events.expect_event("join", "alice").await;
    let first = three_messages(&alice, &code, "alice", &mut events).await;
    let before_everything = id_of(&join) - 1;

    // Act
    let mut resumed = open_raw(
        &alice,
        &format!("/rooms/{code}/events?after={before_everything}"),
        Some(&first.to_string()),
    )
    .await;

    // Assert
    expect_replay_then_live(&alice, &code, "alice", &mut resumed, first, "live").await;
}

/// Resuming from beyond the kept history sends `reset` first, then live events still arrive.
#[tokio::test]
async fn resuming_beyond_history_sends_reset_then_live_events() {
    // Arrange
    let app = spawn_app_with(&["--history", "3"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events_after(&code, 0).await;
    let join = events.expect_event("join", "alice").await;
    for i in 1..=6 {
        alice.say(&code, &format!("m{i}")).await;
    }
    for i in 1..=6 {
        events.expect_message("alice", &format!("m{i}")).await;
    }

    // Act
    let mut resumed = alice.open_events_after(&code, id_of(&join)).await;
    let first = resumed.next_event().await;
    alice.say(&code, "after the reset").await;

    // Assert
    assert_eq!(
        first.event, "reset",
        "the first event is a reset: {first:?}"
    );
    resumed.expect_message("alice", "after the reset").await;
}

/// Ids past any the room issued, however large, are answered with a `reset`
/// by the stream (`Last-Event-ID` and `?after=`) and by the long poll, as
/// history beyond its reach is, whichever backend holds the room: 1e14 and up
/// (which Lua writes as `1e+14`), 2^53 + 1 (past a double's exact integers) and
/// u64::MAX. One more than u64::MAX is no id at all: `400`.
#[tokio::test]
async fn ids_far_past_the_newest_are_answered_with_a_reset() {
    // Arrange: ids 1 (alice's join) and 2; a stream stays open, so that (with
    // Redis) the instance mirrors the room and asks Redis with the id itself.
    let app = spawn_app_with(&["--poll-wait", "1"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    alice.say(&code, "hello").await;
    let newest = id_of(&events.expect_message("alice", "hello").await);
    let far = [
        "99999999999999",
        "100000000000000",
        "9007199254740993",
        "18446744073709551615",
    ];

    for id in far {
        // Act
        let mut by_header = open_raw(&alice, &format!("/rooms/{code}/events"), Some(id)).await;
        let mut by_query =
            open_raw(&alice, &format!("/rooms/{code}/events?after={id}"), None).await;
        let polled = alice.poll_ok(&code, Some(id.parse().unwrap())).await;

        // Assert
        for (how, stream) in [
            ("Last-Event-ID", &mut by_header),
            ("?after=", &mut by_query),
        ] {
            let first = stream.next_event().await;
            assert_eq!(first.event, "reset", "{how} {id}: {first:?}");
        }
        assert_eq!(
            polled,
            serde_json::json!({ "events": [{ "kind": "reset", "last_id": newest }], "last_id": newest }),
            "a poll after {id}"
        );
    }
    let beyond = "18446744073709551616";
    let by_header = alice
        .get_request(&format!("/rooms/{code}/events"))
        .header(ACCEPT, "text/event-stream")
        .header("last-event-id", beyond)
        .send()
        .await
        .expect("GET events");
    let polled = alice
        .get(&format!("/rooms/{code}/poll?after={beyond}"))
        .await;
    assert_eq!(
        by_header.status(),
        StatusCode::BAD_REQUEST,
        "Last-Event-ID {beyond}"
    );
    assert_eq!(
        polled.status(),
        StatusCode::BAD_REQUEST,
        "a poll after {beyond}"
    );
    alice.say(&code, "still fine").await;
    events.expect_message("alice", "still fine").await;
}

/// Resuming from the latest id replays nothing and sends no reset.
#[tokio::test]
async fn resuming_from_the_latest_id_replays_nothing() {
    // Arrange
    let app = spawn_app_with(&["--history", "3"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    for i in 1..=6 {
        alice.say(&code, &format!("m{i}")).await;
    }
    let mut latest = 0;
    for i in 1..=6 {
        latest = id_of(&events.expect_message("alice", &format!("m{i}")).await);
    }

    // Act
    let mut resumed = alice.open_events_after(&code, latest).await;
    alice.say(&code, "live").await;

    // Assert
    let next = resumed.next_event().await;
    assert_eq!(
        next.event, "message",
        "nothing before the live message: {next:?}"
    );
    assert_eq!(next.text(), "live");
    assert_eq!(next.id, Some(latest + 1));
}

/// An idle stream gets a `heartbeat` event (no id: not a room event) at least
/// every keep-alive period, repeatedly, as its `hello` promised.
#[tokio::test]
async fn an_idle_stream_gets_heartbeats() {
    // Arrange
    let app = spawn_app_with(&["--keepalive", "0.2"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let hello = events.next_frame().await;
    assert!(
        hello.retry.is_some(),
        "the retry hint first: {:?}",
        hello.raw
    );
    assert_eq!(
        hello.data.as_deref(),
        Some(r#"{"kind":"hello","heartbeat_ms":200}"#)
    );

    // Act
    let mut heartbeats = 0;
    while heartbeats < 3 {
        let frame = events
            .next_frame_within(Duration::from_secs(1))
            .await
            .unwrap_or_else(|| panic!("a heartbeat within a second (after {heartbeats})"));

        // Assert
        assert_eq!(
            (frame.event.as_deref(), frame.data.as_deref(), frame.id),
            (Some("heartbeat"), Some(r#"{"kind":"heartbeat"}"#), None),
            "an idle stream sends nothing but heartbeats: {:?}",
            frame.raw
        );
        heartbeats += 1;
    }
}

/// Posts `"{name} 0"` to `"{name} {n-1}"`, one after another.
async fn post_numbered(user: &User, code: &str, name: &str, n: usize) {
    for i in 0..n {
        user.say(code, &format!("{name} {i}")).await;
    }
}

/// Messages posted concurrently by two members reach both streams, all of them, in one order.
#[tokio::test]
async fn concurrent_messages_reach_every_stream_in_the_same_order() {
    // Arrange
    let app = spawn_app().await;
    let (code, alice, mut alice_events, bob, mut bob_events) = alice_and_bob_streaming(&app).await;
    const EACH: usize = 20;

    // Act
    tokio::join!(
        post_numbered(&alice, &code, "alice", EACH),
        post_numbered(&bob, &code, "bob", EACH)
    );

    // Assert
    let alice_got = alice_events.next_events(2 * EACH).await;
    let bob_got = bob_events.next_events(2 * EACH).await;
    let summary = |events: &[SseEvent]| -> Vec<(u64, String, String, String)> {
        events
            .iter()
            .map(|e| {
                (
                    id_of(e),
                    e.event.clone(),
                    e.name().to_owned(),
                    e.text().to_owned(),
                )
            })
            .collect()
    };
    let alice_seen = summary(&alice_got);
    assert_eq!(alice_seen, summary(&bob_got), "both streams in one order");
    assert!(
        alice_seen.windows(2).all(|w| w[0].0 < w[1].0),
        "ids strictly increase: {alice_seen:?}"
    );
    for name in ["alice", "bob"] {
        let texts: Vec<&str> = alice_seen
            .iter()
            .filter(|(_, kind, who, _)| kind == "message" && who == name)
            .map(|(_, _, _, text)| text.as_str())
            .collect();
        let posted: Vec<String> = (0..EACH).map(|i| format!("{name} {i}")).collect();
        assert_eq!(texts, posted, "all of {name}'s messages, in posting order");
    }
}

/// A client closing its stream is noticed at once, not at the next keep-alive write.
#[tokio::test]
async fn a_closed_stream_is_noticed_at_once() {
    // Arrange
    let app = spawn_app_with(&["--grace", "0", "--keepalive", "60"]).await;
    let (_code, _alice, mut alice_events, _bob, bob_events) = alice_and_bob_streaming(&app).await;
    assert!(
        alice_events.next_event_within(QUIET).await.is_none(),
        "nothing happens while both streams are open"
    );

    // Act
    drop(bob_events);

    // Assert
    let leave = alice_events
        .next_event_within(PATIENCE)
        .await
        .expect("bob's leave arrives long before the 60 s keep-alive");
    assert_eq!(leave.event, "leave", "{leave:?}");
    assert_eq!(leave.name(), "bob", "{leave:?}");
}
