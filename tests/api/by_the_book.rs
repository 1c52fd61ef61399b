//! HTTP by the book: what RFC 9110 and 9112 ask of a server, checked with raw
//! requests where a polite client (curl, reqwest) would not send them: `Allow`
//! on every `405`, `408` for a head that never ends, the `Host` rules, bodies
//! framed two ways, one URL per resource, and a line of text on every refusal,
//! those hyper makes before any route runs included.

use crate::helpers::{
    PATIENCE, RawResponse, TestApp, next_loopback_address, run_to_end, server_command, spawn_app,
    spawn_app_with,
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
