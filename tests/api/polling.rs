//! Long polling, `GET /rooms/{CODE}/poll?after=ID`: for clients behind proxies
//! that hold event streams. An answer at once when there is news, else a wait of
//! at most `--poll-wait`; the same event objects as the stream's `data:` lines; a
//! `reset` when history cannot fill the gap; members only; rate-limited; and a
//! member who keeps polling is present like one with a stream open.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::helpers::{
    Events, PATIENCE, PollingTab, RunningServer, alice_and_bob_streaming, poll_path, polled_events,
    polled_last_id, spawn_app, spawn_app_with, unused_code,
};
use crate::lifecycle::{QUIET, expect_quiet, wait_until_room_is_gone};
use crate::web::{header, retry_after};

/// What "at once" and "promptly" mean for an answer.
const PROMPT: Duration = Duration::from_secs(1);

/// The `data:` lines of the next `n` events on `events`, exactly as sent.
async fn next_data_lines(events: &mut Events, n: usize) -> Vec<String> {
    let mut lines = Vec::with_capacity(n);
    while lines.len() < n {
        let frame = events.next_frame().await;
        if frame.is_signal() {
            continue;
        }
        if let Some(data) = frame.data {
            lines.push(data);
        }
    }
    lines
}

/// `(kind, name, text)` of each polled event, for readable comparisons.
fn summary(answer: &Value) -> Vec<(String, String, String)> {
    polled_events(answer)
        .iter()
        .map(|event| {
            let field = |key: &str| event[key].as_str().unwrap_or_default().to_owned();
            (field("kind"), field("name"), field("text"))
        })
        .collect()
}

fn expected(events: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|&(kind, name, text)| (kind.to_owned(), name.to_owned(), text.to_owned()))
        .collect()
}

/// A poll with news answers at once, as JSON never cached, with exactly the objects of the stream's `data:` lines.
#[tokio::test]
async fn a_poll_with_news_answers_at_once_with_the_streams_event_objects() {
    // Arrange: the default 20 s wait, so only news explains a prompt answer.
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let bob = app.user_joined(&code, "bob").await;
    bob.say(&code, "hello \"alice\"\n<b>").await;
    let mut replay = alice.open_events_after(&code, 0).await;
    let data_lines = next_data_lines(&mut replay, 3).await;

    // Act
    let started = Instant::now();
    let response = alice.poll_response_within(&code, Some(0), PATIENCE).await;
    let answered_after = started.elapsed();

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        answered_after < PROMPT,
        "answered at once, took {answered_after:?}"
    );
    assert_eq!(
        header(&response, CONTENT_TYPE).as_deref(),
        Some("application/json")
    );
    assert_eq!(
        header(&response, CACHE_CONTROL).as_deref(),
        Some("no-store")
    );
    let body = response.text().await.expect("the poll's body");
    let answer: Value = serde_json::from_str(&body).expect("the answer is JSON");
    assert_eq!(
        summary(&answer),
        expected(&[
            ("join", "alice", ""),
            ("join", "bob", ""),
            ("message", "bob", "hello \"alice\"\n<b>"),
        ]),
        "after=0: everything kept, from the creator's join: {body}"
    );
    assert_eq!(polled_last_id(&answer), 3, "{body}");
    let streamed: Vec<Value> = data_lines
        .iter()
        .map(|line| serde_json::from_str(line).expect("JSON data"))
        .collect();
    assert_eq!(
        polled_events(&answer),
        streamed.as_slice(),
        "each event is the object of the stream's data line for the same id"
    );
    for line in &data_lines {
        assert!(
            body.contains(line.as_str()),
            "the stream's data line is in the answer byte for byte: {line} in {body}"
        );
    }
}

/// `?after=ID` and the `Last-Event-ID` header both resume after that id; without either, a poll waits for what comes next.
#[tokio::test]
async fn a_poll_resumes_after_the_id_it_names_or_waits_for_what_comes_next() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let bob = app.user_joined(&code, "bob").await;
    bob.say(&code, "first").await;

    // Act
    let after_query = alice.poll_ok(&code, Some(2)).await;
    let with_header = alice
        .get_request(&poll_path(&code, None))
        .header("last-event-id", "2")
        .send()
        .await
        .expect("GET poll");
    let header_status = with_header.status();
    let with_header: Value = with_header.json().await.expect("a JSON answer");
    let waiting = {
        let (tab, code) = (alice.another_tab(), code.clone());
        tokio::spawn(async move { tab.poll(&code, None).await })
    };
    alice.wait_for_presence(&code, "alice", true).await;
    bob.say(&code, "second").await;
    let (next_status, next_answer) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the waiting poll answers")
        .expect("the poll task ends");

    // Assert
    let only_first = expected(&[("message", "bob", "first")]);
    assert_eq!(summary(&after_query), only_first, "?after=2: {after_query}");
    assert_eq!(polled_last_id(&after_query), 3);
    assert_eq!(header_status, StatusCode::OK);
    assert_eq!(
        summary(&with_header),
        only_first,
        "Last-Event-ID: 2: {with_header}"
    );
    assert_eq!(next_status, StatusCode::OK);
    assert_eq!(
        summary(&next_answer),
        expected(&[("message", "bob", "second")]),
        "without an id: none of the history, only the next event: {next_answer}"
    );
    assert_eq!(polled_last_id(&next_answer), 4);
}

/// With nothing new, a poll answers `{"events":[],"last_id":ID}` when `--poll-wait` (1 s) ends, not before.
#[tokio::test]
async fn an_idle_poll_answers_empty_when_the_wait_ends() {
    // Arrange
    let app = spawn_app_with(&["--poll-wait", "1"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;

    // Act
    let started = Instant::now();
    let (status, answer) = alice.poll(&code, Some(1)).await;
    let waited = started.elapsed();

    // Assert
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({ "events": [], "last_id": 1 }));
    assert!(
        waited >= Duration::from_millis(900),
        "the poll waits out --poll-wait 1 before answering empty; it answered after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "the poll answers when --poll-wait 1 ends; it took {waited:?}"
    );
}

/// `wait=0` answers at once, with nothing new; `wait=1` waits a second, not the
/// default 20; a `wait` that is not a whole number of seconds is `400`.
#[tokio::test]
async fn a_poll_waits_at_most_what_it_asks_for() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let path = |wait: &str| format!("/rooms/{code}/poll?after=1&wait={wait}");

    // Act
    let started = Instant::now();
    let at_once = alice.get(&path("0")).await;
    let at_once_took = started.elapsed();
    let started = Instant::now();
    let one_second = alice.get(&path("1")).await;
    let one_second_took = started.elapsed();
    let malformed = alice.get(&path("soon")).await;

    // Assert
    assert_eq!(at_once.status(), StatusCode::OK);
    let answer: Value = at_once.json().await.expect("JSON");
    assert_eq!(answer, json!({ "events": [], "last_id": 1 }));
    assert!(at_once_took < PROMPT, "wait=0 took {at_once_took:?}");
    assert_eq!(one_second.status(), StatusCode::OK);
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(3)).contains(&one_second_took),
        "wait=1 took {one_second_took:?}"
    );
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let said = malformed.text().await.expect("text");
    assert!(said.contains("wait is a whole number of seconds"), "{said}");
}

/// A waiting poll answers within a second of a message being posted, with that message.
#[tokio::test]
async fn a_waiting_poll_answers_promptly_when_a_message_is_posted() {
    // Arrange: the default 20 s wait; bob only ever polls, so he shows as
    // connected exactly while his poll waits.
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let bob = app.user_joined(&code, "bob").await;
    let waiting = {
        let code = code.clone();
        tokio::spawn(async move {
            let answer = bob.poll(&code, Some(2)).await;
            (answer, Instant::now())
        })
    };
    alice.wait_for_presence(&code, "bob", true).await;

    // Act
    let posted = Instant::now();
    alice.say(&code, "are you there?").await;
    let ((status, answer), answered) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the waiting poll answers")
        .expect("the poll task ends");

    // Assert
    assert_eq!(status, StatusCode::OK, "{answer}");
    let took = answered.saturating_duration_since(posted);
    assert!(took < PROMPT, "answered {took:?} after the post");
    assert_eq!(
        summary(&answer),
        expected(&[("message", "alice", "are you there?")]),
        "{answer}"
    );
    assert_eq!(polled_last_id(&answer), 3);
}

/// A gap history cannot fill (`--history 3`) is answered with the stream's `reset` and the newest id; one it can fill, with the events.
#[tokio::test]
async fn a_gap_beyond_history_is_answered_with_a_reset() {
    // Arrange: ids 1 (alice's join) to 5; only 3, 4 and 5 are kept.
    let app = spawn_app_with(&["--history", "3"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    for text in ["one", "two", "three", "four"] {
        alice.say(&code, text).await;
    }
    let mut stream = alice.open_events_after(&code, 1).await;
    let stream_reset = next_data_lines(&mut stream, 1).await;

    // Act
    let beyond = alice.poll_ok(&code, Some(1)).await;
    let within = alice.poll_ok(&code, Some(2)).await;

    // Assert
    assert_eq!(
        beyond,
        json!({ "events": [{ "kind": "reset", "last_id": 5 }], "last_id": 5 }),
        "id 2 is gone: reset to the newest id"
    );
    let stream_reset: Value = serde_json::from_str(&stream_reset[0]).expect("JSON data");
    assert_eq!(
        polled_events(&beyond)[0],
        stream_reset,
        "the same reset object as the stream's"
    );
    assert_eq!(
        summary(&within),
        expected(&[
            ("message", "alice", "two"),
            ("message", "alice", "three"),
            ("message", "alice", "four"),
        ]),
        "ids 3 to 5 are all kept: {within}"
    );
    assert_eq!(polled_last_id(&within), 5);
}

/// Polls are for members: `403` for someone who is not in the room, `404` for a room that does not exist.
#[tokio::test]
async fn polls_are_for_members_only() {
    // Arrange
    let app = spawn_app().await;
    let (_alice, code) = app.user_in_new_room("alice").await;
    let (other, other_code) = app.user_in_new_room("other").await;
    let stranger = app.user();
    let missing = unused_code(&[&code, &other_code]);

    // Act
    let (by_stranger, _) = stranger.poll(&code, Some(0)).await;
    let (by_other_room, _) = other.poll(&code, Some(0)).await;
    let (of_missing, _) = other.poll(&missing, Some(0)).await;

    // Assert
    assert_eq!(by_stranger, StatusCode::FORBIDDEN, "no session");
    assert_eq!(
        by_other_room,
        StatusCode::FORBIDDEN,
        "a member of another room"
    );
    assert_eq!(of_missing, StatusCode::NOT_FOUND);
}

/// A poll by someone who is not a member spends a guess, like `/events`: past the burst, `429`.
#[tokio::test]
async fn polls_by_non_members_spend_guesses() {
    // Arrange
    let app = spawn_app_with(&["--guess-burst", "2", "--guess-rate", "1/min"]).await;
    let (_alice, code) = app.user_in_new_room("alice").await;
    let guesser = app.user();
    let missing = unused_code(&[&code]);

    // Act
    let (first, _) = guesser.poll(&code, Some(0)).await;
    let (second, _) = guesser.poll(&missing, Some(0)).await;
    let third = guesser.poll_response_within(&code, Some(0), PATIENCE).await;

    // Assert
    assert_eq!(
        [first, second],
        [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND]
    );
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&third, RETRY_AFTER).is_some(), "a Retry-After");
}

/// A poll that comes a little sooner than the poll rate allows is held until it
/// does and then answered, not refused: a client keeping up with a busy room gets
/// its events a moment later, in one batch.
#[tokio::test]
async fn a_poll_a_little_too_soon_is_held_not_refused() {
    // Arrange: two polls at once, then one every 500 ms.
    let app = spawn_app_with(&["--poll-burst", "2", "--poll-rate", "2/s"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    alice.poll_ok(&code, Some(0)).await;
    alice.poll_ok(&code, Some(0)).await;
    let asked = Instant::now();

    // Act
    let (status, answer) = alice.poll(&code, Some(0)).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["last_id"], 1);
    let held = asked.elapsed();
    assert!(
        held >= Duration::from_millis(300) && held < Duration::from_secs(2),
        "held for {held:?}"
    );
}

/// Past `--poll-burst 3` at `--poll-rate 1/min`, a member's next poll is `429` with `Retry-After`, counted as `polls`; others poll on.
#[tokio::test]
async fn polling_too_fast_is_refused_with_429() {
    // Arrange: the real binary, for its metrics.
    let server = RunningServer::start(&[
        "--poll-burst",
        "3",
        "--poll-rate",
        "1/min",
        "--metrics-bind",
        "127.0.0.1:0",
    ])
    .await;
    let mut alice = server.user();
    let code = alice.create_room_ok("alice").await;
    let mut bob = server.user();
    let joined = bob.join("bob", &code).await;
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    let metrics = server.metrics_addr.expect("the metrics address");
    let refused_before = refusals_for_polls(metrics).await;

    // Act
    let mut burst = Vec::new();
    for _ in 0..3 {
        burst.push(alice.poll(&code, Some(0)).await.0);
    }
    let refused = alice.poll_response_within(&code, Some(0), PATIENCE).await;
    let refused_after = refusals_for_polls(metrics).await;
    let (by_bob, _) = bob.poll(&code, Some(0)).await;

    // Assert
    assert_eq!(burst, [StatusCode::OK; 3], "the burst is served");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = retry_after(&refused);
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let text = refused.text().await.expect("the refusal's text");
    assert!(text.contains("polling too fast"), "{text}");
    assert_eq!(
        refused_after - refused_before,
        1.0,
        "one refusal counted with reason=\"polls\""
    );
    assert_eq!(by_bob, StatusCode::OK, "the limit is per member");
}

/// `chat_refusals_total{reason="polls"}` scraped from the metrics listener at `addr`.
async fn refusals_for_polls(addr: std::net::SocketAddr) -> f64 {
    let text = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .timeout(PATIENCE)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(r#"chat_refusals_total{reason="polls"} "#))
        .unwrap_or_else(|| panic!("a polls refusal counter in the metrics:\n{text}"))
        .parse()
        .expect("a number")
}

/// A member who keeps polling stays listed, shows as connected while a poll waits, and polling makes no join or leave notice.
#[tokio::test]
async fn a_member_who_keeps_polling_stays_present_without_notices() {
    // Arrange
    let app = spawn_app_with(&["--grace", "1", "--poll-wait", "1"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let bob = app.user_joined(&code, "bob").await;
    alice_events.expect_event("join", "bob").await;

    // Act: three seconds of polls, each waiting out its second.
    let polling = PollingTab::start(bob.another_tab(), &code, 2);
    let mut listed = Vec::new();
    for _ in 0..3 {
        expect_quiet(
            &mut alice_events,
            Duration::from_secs(1),
            "no notice while bob polls",
        )
        .await;
        listed.push(alice.members(&code).await);
    }
    alice.wait_for_presence(&code, "bob", true).await;
    polling.stop().await;

    // Assert
    for members in &listed {
        assert_eq!(members, &["alice", "bob"], "bob stays listed: {listed:?}");
    }
}

/// When a member's polls stop, `leave` comes after the grace (1 s), and within a second more, as for a closed stream.
#[tokio::test]
async fn a_member_whose_polls_stop_leaves_after_the_grace() {
    // Arrange
    let grace = Duration::from_secs(1);
    let app = spawn_app_with(&["--grace", "1", "--poll-wait", "1"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let bob = app.user_joined(&code, "bob").await;
    alice_events.expect_event("join", "bob").await;
    let polling = PollingTab::start(bob.another_tab(), &code, 2);
    bob.wait_for_presence(&code, "bob", true).await;

    // Act
    let stopped = polling.stop().await;
    let leave = alice_events.next_event_within(grace + PATIENCE).await;

    // Assert
    let waited = stopped.elapsed();
    let leave = leave.expect("bob's leave arrives");
    assert_eq!(
        (leave.event.as_str(), leave.name()),
        ("leave", "bob"),
        "{leave:?}"
    );
    assert!(
        waited >= grace - Duration::from_millis(100),
        "the leave waits out the grace; it came {waited:?} after the last poll"
    );
    assert!(
        waited <= grace + Duration::from_secs(1),
        "the leave comes within a second of the grace; it came {waited:?} after the last poll"
    );
    assert_eq!(alice.members(&code).await, ["alice"]);
    assert_eq!(
        bob.poll(&code, Some(0)).await.0,
        StatusCode::FORBIDDEN,
        "bob is no longer a member"
    );
}

/// A poll its client abandons (a closed tab) ends at once on the server: `leave` comes after the grace, not after `--poll-wait`.
#[tokio::test]
async fn an_abandoned_poll_counts_as_stopped() {
    // Arrange: a wait far longer than the grace.
    let grace = Duration::from_secs(1);
    let app = spawn_app_with(&["--grace", "1", "--poll-wait", "20"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let bob = app.user_joined(&code, "bob").await;
    alice_events.expect_event("join", "bob").await;
    let waiting = {
        let (tab, code) = (bob.another_tab(), code.clone());
        tokio::spawn(async move { tab.poll(&code, Some(2)).await })
    };
    alice.wait_for_presence(&code, "bob", true).await;

    // Act: the tab closes; its connection goes with it.
    waiting.abort();
    let abandoned = Instant::now();
    let leave = alice_events.next_event_within(grace + PATIENCE).await;

    // Assert
    let waited = abandoned.elapsed();
    let leave = leave.expect("bob's leave arrives");
    assert_eq!(
        (leave.event.as_str(), leave.name()),
        ("leave", "bob"),
        "{leave:?}"
    );
    assert!(
        waited <= grace + Duration::from_secs(1),
        "the leave comes within a second of the grace; it came {waited:?} after the tab closed"
    );
}

/// A room whose only member polled closes after the grace once the polls stop.
#[tokio::test]
async fn a_room_closes_when_its_last_poller_stops() {
    // Arrange
    let app = spawn_app_with(&["--grace", "1", "--poll-wait", "1"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let polling = PollingTab::start(alice.another_tab(), &code, 1);
    alice.wait_for_presence(&code, "alice", true).await;

    // Act
    polling.stop().await;

    // Assert
    wait_until_room_is_gone(&alice, &code, Duration::from_secs(1) + PATIENCE).await;
    assert_eq!(alice.poll(&code, Some(0)).await.0, StatusCode::NOT_FOUND);
}

/// Two tabs of one member, one polling and one streaming: no notices, both receive; the polling tab alone keeps the member present.
#[tokio::test]
async fn a_polling_tab_and_a_streaming_tab_of_one_member_both_receive() {
    // Arrange
    let grace = Duration::from_secs(1);
    let app = spawn_app_with(&["--grace", "1", "--poll-wait", "1"]).await;
    let (code, alice, mut alice_events, bob, mut bob_events) = alice_and_bob_streaming(&app).await;
    let mut bob_polling = PollingTab::start(bob.another_tab(), &code, 2);

    // Act
    expect_quiet(
        &mut alice_events,
        grace + QUIET,
        "no notice for bob's second tab",
    )
    .await;
    alice.say(&code, "hello, both tabs").await;
    let streamed = bob_events.next_event().await;
    let polled = bob_polling.next_event().await;
    alice_events
        .expect_message("alice", "hello, both tabs")
        .await;
    drop(bob_events);
    expect_quiet(
        &mut alice_events,
        grace + QUIET,
        "no leave while bob's polling tab is open",
    )
    .await;
    alice.say(&code, "still there?").await;
    let polled_later = bob_polling.next_event().await;

    // Assert
    assert_eq!(
        (streamed.event.as_str(), streamed.text()),
        ("message", "hello, both tabs")
    );
    assert_eq!(
        polled, streamed.data,
        "the polling tab gets the same event as the streaming one"
    );
    assert_eq!(
        (polled_later["kind"].as_str(), polled_later["text"].as_str()),
        (Some("message"), Some("still there?")),
        "{polled_later}"
    );
    assert_eq!(
        alice.presence(&code).await.len(),
        2,
        "both are still in the room"
    );
    bob_polling.stop().await;
}

/// When the server shuts down, a waiting poll answers at once: `200`, no events.
#[tokio::test]
async fn a_waiting_poll_answers_at_once_when_the_server_shuts_down() {
    // Arrange: the default 20 s wait.
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let waiting = {
        let (tab, code) = (alice.another_tab(), code.clone());
        tokio::spawn(async move {
            let answer = tab.poll(&code, Some(1)).await;
            (answer, Instant::now())
        })
    };
    alice.wait_for_presence(&code, "alice", true).await;

    // Act
    let began = Instant::now();
    app.shut_down().await;
    let ((status, answer), answered) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the waiting poll answers")
        .expect("the poll task ends");

    // Assert
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({ "events": [], "last_id": 1 }));
    let took = answered.saturating_duration_since(began);
    assert!(took < PROMPT, "answered {took:?} after shutdown began");
}
