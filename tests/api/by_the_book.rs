//! HTTP by the book: what RFC 9110 and 9112 ask of a server, checked with raw
//! requests where a polite client (curl, reqwest) would not send them: `Allow`
//! on every `405`, `408` for a head that never ends, the `Host` rules, bodies
//! framed two ways, one URL per resource, and a line of text on every refusal,
//! those hyper makes before any route runs included.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::helpers::{
    PATIENCE, RawResponse, TestApp, connect_from, next_loopback_address, read_one_response,
    read_response_to_end, run_to_end, server_command, spawn_app, spawn_app_with,
};

/// Sends `head` (a request line and headers, without the blank line that ends
/// them; `Connection: close` is added) and `body` on a fresh connection, and
/// reads the whole answer.
async fn send(app: &TestApp, head: &str, body: &str) -> RawResponse {
    let request = format!("{head}\r\nConnection: close\r\n\r\n{body}");
    app.raw_request(next_loopback_address(), request.as_bytes())
        .await
}

/// Every method a test tries on every route.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Asserts `response` is one refusal of `status` in one line of text.
fn assert_refusal(response: &RawResponse, status: u16, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.head);
    let text = response.text();
    assert!(
        text.ends_with('\n') && text.trim().lines().count() == 1 && text.trim().len() > 10,
        "{what}: a line of text, got {text:?}"
    );
    assert!(
        (response.header("content-type")).is_some_and(|t| t.starts_with("text/plain")),
        "{what}: {}",
        response.head
    );
}

// ===== 405 and Allow =====

/// On every kind of route, each method the route does not answer is `405` with
/// `Allow` listing exactly those it does (`HEAD` wherever `GET`), and each
/// method listed is answered (whatever the answer to a stranger is), never 405.
#[tokio::test]
async fn every_405_lists_exactly_the_methods_its_path_answers() {
    // Arrange: strangers' requests about a room each spend a guess.
    let app = spawn_app_with(&["--guess-burst", "1000"]).await;
    let (_alice, code) = app.user_in_new_room("alice").await;
    let reading = "GET, HEAD";
    let routes = [
        ("/".to_owned(), reading),
        ("/healthz".to_owned(), reading),
        ("/assets/style.css".to_owned(), reading),
        ("/rooms".to_owned(), "POST"),
        ("/join".to_owned(), "POST"),
        (format!("/rooms/{code}"), reading),
        (format!("/rooms/{code}/events"), reading),
        (format!("/rooms/{code}/poll"), reading),
        (format!("/rooms/{code}/members"), reading),
        (format!("/rooms/{code}/messages"), "POST"),
        (format!("/rooms/{code}/leave"), "POST"),
        (format!("/rooms/{code}/lock"), "POST"),
        (format!("/rooms/{code}/unlock"), "POST"),
        (format!("/rooms/{code}/remove"), "POST"),
    ];

    for (path, allowed) in &routes {
        for method in METHODS {
            // Act
            let head = format!("{method} {path} HTTP/1.1\r\nHost: {}", app.addr);
            let response = send(&app, &head, "").await;

            // Assert
            let what = format!("{method} {path}");
            if allowed.split(", ").any(|m| m == method) {
                assert_ne!(response.status, 405, "{what}: {}", response.head);
                continue;
            }
            assert_eq!(response.status, 405, "{what}: {}", response.head);
            assert_eq!(response.header("allow"), Some(*allowed), "{what}");
            if method != "HEAD" {
                assert_refusal(&response, 405, &what);
            }
        }
    }
}

// ===== 408 for a head that never ends =====

/// With `--request-timeout 1`, a request line cut short and a head without its
/// blank line are each answered `408` with `Connection: close` and a line of
/// text, after the timeout and not much later.
#[tokio::test]
async fn a_head_that_never_ends_is_answered_408() {
    // Arrange
    let app = spawn_app_with(&["--request-timeout", "1"]).await;
    let heads = [
        "GET /roo".to_owned(),
        format!("GET / HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n", app.addr),
    ];

    for head in heads {
        let mut stream = connect_from(app.addr, next_loopback_address(), None).await;
        stream.write_all(head.as_bytes()).await.expect("send");
        let started = Instant::now();

        // Act
        let response = read_response_to_end(&mut stream, PATIENCE).await;

        // Assert
        let took = started.elapsed();
        assert_refusal(&response, 408, &head);
        assert_eq!(response.header("connection"), Some("close"), "{head:?}");
        assert!(
            response.text().contains("did not arrive in time"),
            "{head:?}"
        );
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(3),
            "{head:?}: answered after the 1 s timeout, took {took:?}"
        );
    }
}

/// The same after a first request on a kept-alive connection: the second
/// request's head stops halfway, and gets its `408`.
#[tokio::test]
async fn a_second_head_that_never_ends_is_answered_408() {
    // Arrange
    let app = spawn_app_with(&["--request-timeout", "1"]).await;
    let mut stream = connect_from(app.addr, next_loopback_address(), None).await;
    let first = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    stream.write_all(first.as_bytes()).await.expect("send");
    assert_eq!(read_one_response(&mut stream, PATIENCE).await.status, 200);

    // Act
    stream.write_all(b"GET /heal").await.expect("send");
    let response = read_response_to_end(&mut stream, PATIENCE).await;

    // Assert
    assert_refusal(&response, 408, "the second head");
}

/// A connection that sends nothing at all, and a kept-alive one that sends
/// nothing after its first answer, asked nothing: each is closed after the
/// request timeout without a byte (what the README says).
#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_without_a_word() {
    // Arrange
    let app = spawn_app_with(&["--request-timeout", "1"]).await;
    let silent = connect_from(app.addr, next_loopback_address(), None).await;
    let mut idle = connect_from(app.addr, next_loopback_address(), None).await;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    idle.write_all(request.as_bytes()).await.expect("send");
    assert_eq!(read_one_response(&mut idle, PATIENCE).await.status, 200);

    for (what, mut stream) in [("silent", silent), ("idle", idle)] {
        // Act
        let started = Instant::now();
        let mut received = Vec::new();
        let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received)).await;

        // Assert
        assert!(read.is_ok(), "{what}: closed within {PATIENCE:?}");
        assert!(
            received.is_empty(),
            "{what}: nothing sent, got {:?}",
            String::from_utf8_lossy(&received)
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{what}");
    }
}

// ===== Host (RFC 9112 §3.2) =====

/// An HTTP/1.1 request without `Host`, one with two `Host` lines (even the
/// same twice), and one whose `Host` is no host are `400` with a line saying
/// so, on the health check and the pages alike.
#[tokio::test]
async fn a_request_without_one_good_host_is_400() {
    // Arrange
    let app = spawn_app().await;
    let host = app.addr;
    let cases = [
        ("GET {path} HTTP/1.1".to_owned(), "must name its host"),
        (
            format!("GET {{path}} HTTP/1.1\r\nHost: {host}\r\nHost: {host}"),
            "only one Host",
        ),
        (
            format!("GET {{path}} HTTP/1.1\r\nHost: {host}\r\nHost: evil.example"),
            "only one Host",
        ),
        (
            "GET {path} HTTP/1.1\r\nHost: a b".to_owned(),
            "does not name a host",
        ),
    ];

    for (head, says) in cases {
        for path in ["/healthz", "/"] {
            // Act
            let head = head.replace("{path}", path);
            let response = send(&app, &head, "").await;

            // Assert
            assert_refusal(&response, 400, &head);
            assert!(
                response.text().contains(says),
                "{head:?}: {:?}",
                response.text()
            );
        }
    }
}

/// An absolute-form target is judged by its authority, not by the `Host` line:
/// ours with a foreign `Host` is answered, a foreign one with our `Host` is 421.
#[tokio::test]
async fn an_absolute_target_is_judged_by_its_authority() {
    // Arrange
    let app = spawn_app().await;
    let ours = app.addr;

    // Act
    let answered = send(
        &app,
        &format!("GET http://{ours}/ HTTP/1.1\r\nHost: evil.example"),
        "",
    )
    .await;
    let refused = send(
        &app,
        &format!("GET http://evil.example/ HTTP/1.1\r\nHost: {ours}"),
        "",
    )
    .await;

    // Assert
    assert_eq!(answered.status, 200, "{}", answered.head);
    assert_refusal(&refused, 421, "a foreign authority");
}

/// HTTP/1.0 needs no `Host` (RFC 9112 §3.2 asks it of HTTP/1.1): the health
/// check answers, and the pages, which answer only our own names, say `421`.
#[tokio::test]
async fn http_1_0_without_host_reaches_only_the_health_check() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let health = send(&app, "GET /healthz HTTP/1.0", "").await;
    let home = send(&app, "GET / HTTP/1.0", "").await;

    // Assert
    assert_eq!(health.status, 200, "{}", health.head);
    assert_refusal(&home, 421, "GET / HTTP/1.0");
}

// ===== One URL per resource =====

/// Every path ending in `/` (but `/`) is `308` to the same path without it,
/// query kept, whether or not a route is there; the answers there are the
/// resource's (`/assets` is a 404 as before). `//name/` is no redirect to
/// another host.
#[tokio::test]
async fn a_trailing_slash_is_308_to_the_one_url() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let cases = [
        ("/healthz/".to_owned(), "/healthz".to_owned()),
        (
            "/assets/style.css/".to_owned(),
            "/assets/style.css".to_owned(),
        ),
        ("/assets/".to_owned(), "/assets".to_owned()),
        (format!("/rooms/{code}/"), format!("/rooms/{code}")),
        (
            format!("/rooms/{code}/events/?after=0"),
            format!("/rooms/{code}/events?after=0"),
        ),
        ("/nope//".to_owned(), "/nope".to_owned()),
    ];

    for (path, canonical) in cases {
        // Act
        let response = send(
            &app,
            &format!("GET {path} HTTP/1.1\r\nHost: {}", app.addr),
            "",
        )
        .await;

        // Assert
        assert_eq!(response.status, 308, "{path}: {}", response.head);
        assert_eq!(
            response.header("location"),
            Some(canonical.as_str()),
            "{path}"
        );
    }
    let assets = send(
        &app,
        &format!("GET /assets HTTP/1.1\r\nHost: {}", app.addr),
        "",
    )
    .await;
    assert_refusal(&assets, 404, "/assets");
    let other_host = send(
        &app,
        &format!("GET //evil.example/ HTTP/1.1\r\nHost: {}", app.addr),
        "",
    )
    .await;
    assert_refusal(&other_host, 404, "//evil.example/");
    // A post to a slashed path moves too, and posts nothing.
    let cookie = alice.cookie.clone().expect("alice's cookie");
    let body = "message=twice";
    let post = format!(
        "POST /rooms/{code}/messages/ HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}",
        app.addr,
        body.len()
    );
    let moved = send(&app, &post, body).await;
    assert_eq!(moved.status, 308, "{}", moved.head);
    let poll = alice.poll_ok(&code, Some(0)).await;
    assert!(
        !poll.to_string().contains("twice"),
        "nothing posted: {poll}"
    );
}

/// A member who types the room's code percent-encoded (`%54FCK` for `TFCK`)
/// reaches the room, page and stream, and spends no guess: with a budget of
/// one guess, three tries are all answered.
#[tokio::test]
async fn a_percent_encoded_code_reaches_the_room_without_a_guess() {
    // Arrange
    let app = spawn_app_with(&["--guess-burst", "1"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let encoded: String = code.bytes().map(|b| format!("%{b:02X}")).collect();
    let lower: String = code
        .to_lowercase()
        .bytes()
        .map(|b| format!("%{b:02x}"))
        .collect();
    let cookie = alice.cookie.clone().expect("alice's cookie");

    for path in [
        format!("/rooms/{encoded}"),
        format!("/rooms/{lower}"),
        format!("/rooms/{encoded}/members"),
    ] {
        // Act
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}",
            app.addr
        );
        let response = app
            .raw_request(
                alice.from,
                format!("{head}\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await;

        // Assert
        assert_eq!(
            response.status,
            200,
            "{path}: {} {:?}",
            response.head,
            response.text()
        );
    }
    let members = alice.members(&code).await;
    assert_eq!(members, ["alice"]);
}

// ===== Refusals hyper makes, in words =====

/// A malformed request (`400`), a target too long (`414`) and a head too
/// large (`431`), refused before any route runs, each come with a line of
/// text like every other refusal.
#[tokio::test]
async fn refusals_before_routing_come_with_a_line_of_text() {
    // Arrange
    let app = spawn_app().await;
    let host = app.addr;
    let cases = [
        (
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nBad Header: x"),
            400,
        ),
        (format!("G@T / HTTP/1.1\r\nHost: {host}"), 400),
        (
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1\r\nContent-Length: 2"),
            400,
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: {host}", "a".repeat(70_000)),
            414,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: {host}\r\nCookie: {}",
                "a".repeat(500_000)
            ),
            431,
        ),
    ];

    for (head, status) in cases {
        // Act
        let response = send(&app, &head, "").await;

        // Assert
        let what = format!("{status}: {}", &head[..head.len().min(40)]);
        assert_refusal(&response, status, &what);
        assert_eq!(response.header("connection"), Some("close"), "{what}");
    }
}

// ===== Bodies framed two ways =====

/// A form sent chunked (with or without a `Content-Length` beside it) is `411`
/// saying that `Transfer-Encoding` is the trouble; one with neither header is
/// `411` asking for a `Content-Length`. No room is created either way.
#[tokio::test]
async fn each_unframed_form_is_told_what_was_wrong() {
    // Arrange
    let app = spawn_app().await;
    let host = app.addr;
    let form = "content-type: application/x-www-form-urlencoded";
    let chunked_body = "6\r\nname=a\r\n0\r\n\r\n";
    let cases = [
        (
            format!(
                "POST /rooms HTTP/1.1\r\nHost: {host}\r\n{form}\r\nContent-Length: 6\r\nTransfer-Encoding: chunked"
            ),
            chunked_body,
            "Transfer-Encoding",
        ),
        (
            format!("POST /rooms HTTP/1.1\r\nHost: {host}\r\n{form}\r\nTransfer-Encoding: chunked"),
            chunked_body,
            "Transfer-Encoding",
        ),
        (
            format!("POST /rooms HTTP/1.1\r\nHost: {host}\r\n{form}"),
            "",
            "needs a Content-Length",
        ),
    ];

    for (head, body, says) in cases {
        // Act
        let response = send(&app, &head, body).await;

        // Assert
        assert_eq!(response.status, 411, "{head:?}: {}", response.head);
        assert!(
            response.text().contains(says),
            "{head:?}: {:?}",
            response.text()
        );
        assert_eq!(
            response.text().lines().count(),
            1,
            "one line: {:?}",
            response.text()
        );
        assert!(response.header("location").is_none(), "no room was created");
    }
}

// ===== Small words =====

/// `--help` says what `--keepalive` sends: a heartbeat event, not a comment.
#[tokio::test]
async fn help_says_keepalive_sends_a_heartbeat_event() {
    // Act
    let help = run_to_end(server_command("warn").arg("--help"), PATIENCE).await;

    // Assert
    let text = String::from_utf8_lossy(&help.stdout);
    let keepalive = text
        .split("--keepalive")
        .nth(1)
        .and_then(|rest| rest.split("\n      --").next())
        .unwrap_or_else(|| panic!("--help describes --keepalive:\n{text}"));
    assert!(keepalive.contains("event: heartbeat"), "{keepalive}");
    assert!(!keepalive.contains("comment"), "{keepalive}");
}

// ===== The metrics listener =====

/// The metrics listener keeps the same rules: `/metrics/` is a `308` to
/// `/metrics`, another method is `405` with `Allow: GET, HEAD`, and another
/// path is `404`, each refusal in a line of text.
#[tokio::test]
async fn the_metrics_listener_answers_by_the_same_rules() {
    // Arrange
    let server = crate::helpers::RunningServer::start(&["--metrics-bind", "127.0.0.1:0"]).await;
    let metrics = server.metrics_addr.expect("a metrics listener");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let url = |path: &str| format!("http://{metrics}{path}");

    // Act
    let slash = client.get(url("/metrics/?x=1")).send().await.expect("GET");
    let post = client.post(url("/metrics")).send().await.expect("POST");
    let other = client.get(url("/other")).send().await.expect("GET");
    let scrape = client.get(url("/metrics")).send().await.expect("GET");

    // Assert
    assert_eq!(slash.status(), 308);
    assert_eq!(slash.headers()["location"], "/metrics?x=1");
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert_eq!(other.status(), 404);
    assert_eq!(scrape.status(), 200);
    for refused in [post, other] {
        let text = refused.text().await.expect("a body");
        assert!(text.trim().len() > 10 && text.ends_with('\n'), "{text:?}");
    }
}
