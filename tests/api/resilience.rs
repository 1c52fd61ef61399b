//! Hard to knock over: clients that send too slowly, bodies that never finish,
//! subscribers that stop reading, shutdown that is bounded whatever the clients
//! do, the health check, the metrics, and `HEAD`.
//!
//! Every test uses real sockets, most of them byte by byte; every flag whose
//! default would make a test slow is set low. Tests that need the process itself
//! (signals, log lines, the metrics address) run the real binary.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::helpers::{
    Events, PATIENCE, RunningServer, User, closed_within, connect_from, half_sent_post,
    next_loopback_address, open_stalled_stream, read_one_response, read_response_to_end,
    spawn_app_with,
};

/// Longest a connection may outlive a 1 s request timeout before the test calls
/// it kept open.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(3);

/// Options for rooms that take many large messages quickly.
const BIG_MESSAGES: [&str; 6] = [
    "--max-message-chars",
    "20000",
    "--message-burst",
    "1000",
    "--message-rate",
    "1000/s",
];

/// Large messages posted to make a subscriber with a tiny receive buffer stall:
/// together far more than the kernel and hyper buffer for one connection.
const STALLING_MESSAGES: usize = 200;

/// The `i`th large message: its number, then 16,000 characters.
fn big_message(i: usize) -> String {
    format!("{i:03} {}", "x".repeat(16_000))
}

/// With `--request-timeout 1`, a silent connection, a head sent a byte every 300 ms
/// and an idle keep-alive connection are each closed in 1–3 s; others are still served.
#[tokio::test]
async fn slowloris_connections_are_closed_after_the_request_timeout() {
    // Arrange
    let app = spawn_app_with(&["--request-timeout", "1"]).await;
    let silent = async {
        let mut stream = connect_from(app.addr, next_loopback_address(), None).await;
        closed_within(&mut stream, TIMEOUT_MARGIN).await
    };
    let dripping = async {
        let stream = connect_from(app.addr, next_loopback_address(), None).await;
        let (mut reader, mut writer) = stream.into_split();
        let head = format!("GET / HTTP/1.1\r\nHost: {}\r\nX-Drip: ", app.addr);
        let drip = tokio::spawn(async move {
            for byte in head.bytes().chain(std::iter::repeat(b'a')) {
                if writer.write_all(&[byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        let closed = closed_within(&mut reader, TIMEOUT_MARGIN).await;
        drip.abort();
        closed
    };
    let idle = async {
        let mut stream = connect_from(app.addr, next_loopback_address(), None).await;
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
        stream.write_all(request.as_bytes()).await.expect("send");
        let response = read_one_response(&mut stream, PATIENCE).await;
        assert_eq!(response.status, 200, "{response:?}");
        closed_within(&mut stream, TIMEOUT_MARGIN).await
    };

    // Act
    let (silent, dripping, idle) = tokio::join!(silent, dripping, idle);

    // Assert
    for (what, closed) in [
        ("a connection that sends nothing", silent),
        ("a request head sent a byte every 300 ms", dripping),
        ("an idle keep-alive connection", idle),
    ] {
        let closed = closed
            .unwrap_or_else(|| panic!("{what} is still open {TIMEOUT_MARGIN:?} after it started"));
        assert!(
            closed >= Duration::from_millis(800),
            "{what} is given the request timeout (1 s) before it is closed, closed after {closed:?}"
        );
    }
    let response = app.user().get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK, "others are still served");
}

/// A POST that sends 6 of its 100 announced bytes, then nothing, gets `408` after the request timeout.
#[tokio::test]
async fn a_half_sent_body_is_answered_408_after_the_request_timeout() {
    // Arrange
    let app = spawn_app_with(&["--request-timeout", "1"]).await;
    let mut stream = half_sent_post(app.addr, next_loopback_address(), "/rooms").await;
    let started = Instant::now();

    // Act
    let response = read_response_to_end(&mut stream, PATIENCE).await;

    // Assert
    let took = started.elapsed();
    assert_eq!(response.status, 408, "{response:?}");
    assert_eq!(
        response.text().trim(),
        "The request body did not arrive in time."
    );
    assert!(
        took >= Duration::from_millis(800) && took <= TIMEOUT_MARGIN,
        "answered after the 1 s request timeout, not much later: took {took:?}"
    );
}

/// A body cut short by the client (`shutdown(Write)`) is `400` saying so, and the binary logs no `ERROR`.
#[tokio::test]
async fn a_body_cut_short_by_the_client_is_400_without_an_error_line() {
    // Arrange
    let mut server = RunningServer::start(&[]).await;
    let mut stream = half_sent_post(server.addr, next_loopback_address(), "/rooms").await;

    // Act
    stream.shutdown().await.expect("shut down the sending side");
    let response = read_response_to_end(&mut stream, PATIENCE).await;

    // Assert
    assert_eq!(response.status, 400, "{response:?}\n{}", server.log());
    assert_eq!(
        response.text().trim(),
        "The request body ended before all of it arrived."
    );
    let still_served = server.user().get("/healthz").await;
    assert_eq!(still_served.status(), StatusCode::OK);
    server.signal("TERM").await;
    let exit = server.exit_within(PATIENCE).await;
    assert!(
        exit.is_some_and(|exit| exit.success()),
        "exit 0 on SIGTERM, got {exit:?}"
    );
    let log = server.log();
    assert!(
        !log.lines().any(|line| line.contains("ERROR")),
        "no ERROR line for a client that cut its body short:\n{log}"
    );
}

/// A room where alice posts, bob streams normally, and carol's stream is on a
/// connection with a tiny receive buffer that never reads.
struct StalledRoom {
    code: String,
    alice: User,
    bob: User,
    bob_events: Events,
    /// Carol's connection: kept open, never read.
    carol_stream: tokio::net::TcpStream,
}

async fn stalled_room(addr: std::net::SocketAddr, user: impl Fn() -> User) -> StalledRoom {
    let mut alice = user();
    let code = alice.create_room_ok("alice").await;
    let mut bob = user();
    assert_eq!(bob.join("bob", &code).await.status(), StatusCode::SEE_OTHER);
    let mut bob_events = bob.open_events(&code).await;
    let mut carol = user();
    assert_eq!(
        carol.join("carol", &code).await.status(),
        StatusCode::SEE_OTHER
    );
    bob_events.expect_event("join", "carol").await;
    let cookie = carol.cookie.clone().expect("carol's session cookie");
    let carol_stream = open_stalled_stream(addr, carol.from, &cookie, &code).await;
    let presence = bob.presence(&code).await;
    assert!(
        presence.contains(&("carol".to_owned(), true)),
        "carol's stream counts as connected: {presence:?}"
    );
    StalledRoom {
        code,
        alice,
        bob,
        bob_events,
        carol_stream,
    }
}

/// A subscriber that never reads is dropped and announced gone (`--send-timeout 1`),
/// while another member gets each of 200 × 16 KB messages within 1 s of its posting.
#[tokio::test]
async fn a_stalled_reader_is_dropped_and_never_slows_the_others() {
    // Arrange
    let mut args = vec!["--send-timeout", "1", "--grace", "0"];
    args.extend(BIG_MESSAGES);
    let app = spawn_app_with(&args).await;
    let StalledRoom {
        code,
        alice,
        bob,
        mut bob_events,
        carol_stream,
    } = stalled_room(app.addr, || app.user()).await;
    let started = Instant::now();
    let mut carol_left = None;

    // Act
    for i in 0..STALLING_MESSAGES {
        let text = big_message(i);
        let posted = Instant::now();
        alice.say(&code, &text).await;
        loop {
            let left = Duration::from_secs(1).saturating_sub(posted.elapsed());
            let event = bob_events.next_event_within(left).await.unwrap_or_else(|| {
                panic!("bob gets message {i} within 1 s of its posting (carol stalled)")
            });
            match (event.event.as_str(), event.name()) {
                ("message", "alice") => {
                    assert_eq!(event.text(), text, "message {i} in order");
                    break;
                }
                ("leave", "carol") => carol_left = Some(started.elapsed()),
                _ => panic!("unexpected {event:?}"),
            }
        }
    }
    if carol_left.is_none() {
        let event = bob_events
            .next_event_within(PATIENCE)
            .await
            .unwrap_or_else(|| panic!("carol's leave within {PATIENCE:?} of the last post"));
        assert_eq!((event.event.as_str(), event.name()), ("leave", "carol"));
        carol_left = Some(started.elapsed());
    }

    // Assert
    let carol_left = carol_left.expect("carol's leave");
    assert!(
        carol_left <= Duration::from_secs(6),
        "the stalled reader is announced gone within a few seconds, took {carol_left:?}"
    );
    let members = bob.members(&code).await;
    assert_eq!(members, ["alice", "bob"], "carol is no longer listed");
    drop(carol_stream);
}

/// SIGTERM with a stalled reader and a half-sent POST open exits 0 within `--drain-timeout 2`
/// (and a little), and a normal stream's last event is `reconnect`.
#[tokio::test]
async fn sigterm_exits_within_the_drain_timeout_whatever_the_clients_do() {
    // Arrange
    let mut args = vec!["--drain-timeout", "2"];
    args.extend(BIG_MESSAGES);
    let mut server = RunningServer::start(&args).await;
    let StalledRoom {
        code,
        alice,
        bob,
        mut bob_events,
        carol_stream,
    } = stalled_room(server.addr, || server.user()).await;
    for i in 0..STALLING_MESSAGES {
        alice.say(&code, &big_message(i)).await;
        let message = bob_events.next_message().await;
        assert_eq!(message.text(), big_message(i));
    }
    let presence = bob.presence(&code).await;
    assert!(
        presence.contains(&("carol".to_owned(), true)),
        "carol is stalled, not gone, before the signal: {presence:?}"
    );
    let mut half_post = half_sent_post(server.addr, next_loopback_address(), "/rooms").await;

    // Act
    let signalled = Instant::now();
    server.signal("TERM").await;
    let exit = server.exit_within(Duration::from_secs(10)).await;
    let took = signalled.elapsed();

    // Assert
    let exit = exit.unwrap_or_else(|| panic!("no exit 10 s after SIGTERM:\n{}", server.log()));
    assert!(exit.success(), "exit 0, got {exit}:\n{}", server.log());
    assert!(
        took <= Duration::from_millis(3500),
        "exits within the 2 s drain timeout and a little, took {took:?}:\n{}",
        server.log()
    );
    let mut last = None;
    while let Some(frame) = bob_events.next_frame_within(PATIENCE).await {
        last = Some(frame);
    }
    assert!(bob_events.ended(), "bob's stream ended");
    let last = last.expect("a last frame on bob's stream");
    assert_eq!(
        last.event.as_deref(),
        Some("reconnect"),
        "bob's stream ends with the reconnect event: {last:?}"
    );
    assert_eq!(last.retry, Some(1000), "{last:?}");
    assert!(
        closed_within(&mut half_post, PATIENCE).await.is_some(),
        "the half-sent POST's connection is closed"
    );
    drop(carol_stream);
}

/// A second SIGTERM while a half-sent POST keeps a 30 s drain busy exits at once, saying why.
#[tokio::test]
async fn a_second_signal_exits_at_once() {
    // Arrange
    let mut server =
        RunningServer::start(&["--drain-timeout", "30", "--request-timeout", "30"]).await;
    let _half_post = half_sent_post(server.addr, next_loopback_address(), "/rooms").await;
    let healthy = server.user().get("/healthz").await;
    assert_eq!(healthy.status(), StatusCode::OK);
    server.signal("TERM").await;
    assert!(
        server
            .wait_for_log("shutting down", PATIENCE)
            .await
            .is_some(),
        "the first signal starts the shutdown:\n{}",
        server.log()
    );
    assert!(
        server.is_running(),
        "the half-sent POST keeps the drain busy:\n{}",
        server.log()
    );

    // Act
    let signalled = Instant::now();
    server.signal("TERM").await;
    let exit = server.exit_within(Duration::from_secs(10)).await;
    let took = signalled.elapsed();

    // Assert
    let exit = exit.unwrap_or_else(|| panic!("no exit after a second SIGTERM:\n{}", server.log()));
    assert!(
        took <= Duration::from_secs(2),
        "exits at once, took {took:?}"
    );
    assert_eq!(exit.code(), Some(1), "{exit}:\n{}", server.log());
    assert!(
        server
            .wait_for_log("second signal: exiting at once", PATIENCE)
            .await
            .is_some(),
        "the log says why:\n{}",
        server.log()
    );
}

/// `/healthz` is `200 ok` without a cookie, from an address out of guesses, by `HEAD`, for any host.
#[tokio::test]
async fn healthz_is_200_for_anyone_while_serving() {
    // Arrange
    let app = spawn_app_with(&["--guess-burst", "1"]).await;
    let guesser = app.user();
    assert_eq!(
        guesser.get("/rooms/ZZZZ").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        guesser.get("/rooms/YYYY").await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the guess budget is spent"
    );

    // Act
    let plain = app.user().get("/healthz").await;
    let spent = guesser.get("/healthz").await;
    let head = head(&guesser, "/healthz").await;
    let foreign = app
        .raw_request(
            next_loopback_address(),
            b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        )
        .await;

    // Assert
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get(SET_COOKIE).is_none(), "no session");
    assert_eq!(plain.text().await.expect("body").trim(), "ok");
    assert_eq!(spent.status(), StatusCode::OK, "not limited");
    assert_eq!(head.status(), StatusCode::OK);
    assert!(
        head.bytes().await.expect("body").is_empty(),
        "HEAD: no body"
    );
    assert_eq!(foreign.status, 200, "any host name: {foreign:?}");
}

/// A health check whose head is finished after shutdown began is answered `503 draining`.
#[tokio::test]
async fn healthz_is_503_once_shutdown_began() {
    // Arrange
    let app = spawn_app_with(&[]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let mut check = connect_from(app.addr, next_loopback_address(), None).await;
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n", app.addr);
    check.write_all(head.as_bytes()).await.expect("send");
    // Connections are accepted in order: once a later one is answered, the
    // server has taken this one.
    let later = app.user().get("/healthz").await;
    assert_eq!(later.status(), StatusCode::OK);

    // Act
    let shutting_down = tokio::spawn(app.shut_down());
    let reconnect = loop {
        let frame = alice_events.next_frame().await;
        if frame.event.is_some() && !frame.is_signal() {
            break frame;
        }
    };
    assert_eq!(
        reconnect.event.as_deref(),
        Some("reconnect"),
        "shutdown began: {reconnect:?}"
    );
    check.write_all(b"\r\n").await.expect("finish the head");
    let response = read_response_to_end(&mut check, PATIENCE).await;

    // Assert
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.text().trim(), "draining");
    tokio::time::timeout(PATIENCE, shutting_down)
        .await
        .expect("the server stops")
        .expect("no panic");
}

/// The metrics text, scraped from `addr`: every sample by `name{labels}`.
async fn scrape(client: &reqwest::Client, addr: std::net::SocketAddr) -> BTreeMap<String, f64> {
    let response = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..])
    );
    parse_openmetrics(&response.text().await.expect("the metrics text"))
}

/// Checks the shape of OpenMetrics text (comments, `name{labels} value` lines,
/// `# EOF` at the end) and returns its samples.
fn parse_openmetrics(text: &str) -> BTreeMap<String, f64> {
    let is_name = |name: &str| {
        name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        }) && !name.is_empty()
    };
    assert!(text.ends_with("# EOF\n"), "ends with `# EOF`: {text}");
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split(' ').next().unwrap_or("");
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&kind),
                "a known comment: {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("`series value`: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("a number: {line:?}"));
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("labels end with `}}`: {line:?}"));
                for label in labels.split(',') {
                    let (key, quoted) = label
                        .split_once('=')
                        .unwrap_or_else(|| panic!("label=\"value\": {line:?}"));
                    assert!(is_name(key), "a label name: {line:?}");
                    assert!(
                        quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                        "a quoted label value: {line:?}"
                    );
                }
                name
            }
            None => series,
        };
        assert!(is_name(name), "a metric name: {line:?}");
        samples.insert(series.to_owned(), value);
    }
    samples
}

/// The value of `series` in `samples`, failing the test if it is missing.
fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} in {samples:#?}"))
}

/// Every refusal reason, listed at zero before anything was refused.
const REFUSAL_REASONS: [&str; 13] = [
    "guesses",
    "rooms_created",
    "joins",
    "messages",
    "connections_per_address",
    "streams_per_address",
    "streams_per_session",
    "rooms_per_session",
    "connections",
    "rooms",
    "members_per_room",
    "unknown_host",
    "cross_origin",
];

/// `/metrics` parses as OpenMetrics, counts what the test did, and its gauges return to zero after.
#[tokio::test]
async fn metrics_count_what_happened_and_return_to_zero() {
    // Arrange
    let server = RunningServer::start(&[
        "--metrics-bind",
        "127.0.0.1:0",
        "--grace",
        "0",
        "--guess-burst",
        "1",
    ])
    .await;
    let metrics = server.metrics_addr.expect("the metrics address");
    let scraper = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let before = scrape(&scraper, metrics).await;
    for reason in REFUSAL_REASONS {
        let series = format!("chat_refusals_total{{reason=\"{reason}\"}}");
        assert_eq!(sample(&before, &series), 0.0, "{series} from the start");
    }
    let mut alice = server.user();
    let room_a = alice.create_room_ok("alice").await;
    let mut alice_events = alice.open_events(&room_a).await;
    let mut bob = server.user();
    assert_eq!(
        bob.join("bob", &room_a).await.status(),
        StatusCode::SEE_OTHER
    );
    alice_events.expect_event("join", "bob").await;
    let mut carol = server.user();
    let room_b = carol.create_room_ok("carol").await;
    let mut carol_events = carol.open_events(&room_b).await;
    alice.say(&room_a, "one").await;
    alice.say(&room_a, "two").await;
    carol.say(&room_b, "three").await;
    alice_events.expect_message("alice", "one").await;
    alice_events.expect_message("alice", "two").await;
    carol_events.expect_message("carol", "three").await;
    let guesser = server.user();
    assert_eq!(
        guesser.get("/rooms/ZZZZ").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        guesser.get("/rooms/YYYY").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // Act
    let during = scrape(&scraper, metrics).await;
    // Bob first: once alice's stream is gone (grace 0), room A closes.
    for (user, code) in [(&bob, &room_a), (&alice, &room_a), (&carol, &room_b)] {
        let left = user
            .post_request(&format!("/rooms/{code}/leave"), &[])
            .send()
            .await
            .expect("POST leave");
        assert!(
            left.status().is_success() || left.status().is_redirection(),
            "leaving {code}: {}",
            left.status()
        );
    }
    drop((alice_events, carol_events, alice, bob, carol, guesser));
    let deadline = Instant::now() + PATIENCE;
    let after = loop {
        let after = scrape(&scraper, metrics).await;
        let settled = ["chat_rooms", "chat_members", "chat_streams"]
            .iter()
            .all(|gauge| sample(&after, gauge) == 0.0)
            && sample(&after, "chat_connections") == 0.0
            && sample(&after, "chat_tasks") <= sample(&before, "chat_tasks");
        if settled || Instant::now() >= deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Assert
    assert_eq!(sample(&during, "chat_rooms"), 2.0);
    assert_eq!(sample(&during, "chat_members"), 3.0);
    assert_eq!(sample(&during, "chat_streams"), 2.0);
    assert_eq!(sample(&during, "chat_messages_total"), 3.0);
    assert_eq!(
        sample(&during, "chat_deliveries_total"),
        4.0,
        "bob's join and two messages to alice's stream, one to carol's"
    );
    assert_eq!(
        sample(&during, "chat_refusals_total{reason=\"guesses\"}"),
        1.0
    );
    assert!(sample(&during, "chat_connections") >= 2.0, "{during:#?}");
    for gauge in ["chat_rooms", "chat_members", "chat_streams"] {
        assert_eq!(sample(&after, gauge), 0.0, "{gauge} back to zero");
    }
    assert_eq!(
        sample(&after, "chat_connections"),
        0.0,
        "no client connection is left (the scrape's does not count)"
    );
    assert!(
        sample(&during, "chat_tasks") > sample(&before, "chat_tasks"),
        "streams and connections are tasks: {during:#?}"
    );
    assert_eq!(
        sample(&after, "chat_tasks"),
        sample(&before, "chat_tasks"),
        "no task is left behind by the rooms, streams and connections that ended"
    );
}

/// `HEAD` works on `/`, room pages, an asset and `/healthz`; room pages carry `Cache-Control: no-store`.
#[tokio::test]
async fn head_works_where_get_does_and_room_pages_are_not_stored() {
    // Arrange
    let app = spawn_app_with(&[]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let stranger = app.user();
    let room = format!("/rooms/{code}");
    let script = crate::assets::asset_url(&alice, "chat.js").await;
    let cases: [(&User, &str); 5] = [
        (&alice, "/"),
        (&alice, &room),
        (&stranger, &room),
        (&alice, &script),
        (&stranger, "/healthz"),
    ];

    for (user, path) in cases {
        // Act
        let get = user.get(path).await;
        let head = head(user, path).await;

        // Assert
        assert_eq!(get.status(), StatusCode::OK, "GET {path}");
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        assert_eq!(
            head.headers().get(CONTENT_TYPE),
            get.headers().get(CONTENT_TYPE),
            "HEAD {path} has GET's Content-Type"
        );
        if path == room {
            for response in [&get, &head] {
                assert_eq!(
                    response.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
                    Some(&b"no-store"[..]),
                    "{path} for {:?}",
                    user.cookie
                );
            }
        }
        assert!(
            head.bytes().await.expect("HEAD body").is_empty(),
            "HEAD {path}: no body"
        );
    }
}

/// `HEAD path` as `user`.
async fn head(user: &User, path: &str) -> reqwest::Response {
    let (client, request) = user.get_request(path).build_split();
    let mut request = request.expect("a request");
    *request.method_mut() = reqwest::Method::HEAD;
    client.execute(request).await.expect("HEAD")
}
