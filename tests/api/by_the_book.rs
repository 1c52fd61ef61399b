//! HTTP by the book: what RFC 9110 and 9112 ask of a server, checked with raw
//! requests where a polite client (curl, reqwest) would not send them: `Allow`
//! on every `405`, `408` for a head that never ends, the `Host` rules, bodies
//! framed two ways, one URL per resource, and a line of text on every refusal,
//! those hyper makes before any route runs included.

use crate::helpers::{
    PATIENCE, TestApp, next_loopback_address, run_to_end, server_command, spawn_app,
};

/// Sends `head` (a request line and headers, without the blank line that ends
/// them; `Connection: close` is added) and `body` on a fresh connection, and
/// reads the whole answer.
async fn send(app: &TestApp, head: &str, body: &str) -> crate::helpers::RawResponse {
    let request = format!("{head}\r\nConnection: close\r\n\r\n{body}");
    app.raw_request(next_loopback_address(), request.as_bytes())
        .await
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
