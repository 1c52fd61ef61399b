//! The real binary's log as an operator reads it: plain text into a pipe or a
//! file, colour only on a terminal and never with `NO_COLOR`, one JSON object
//! per line with `--log-format json` (or `CHAT_LOG_FORMAT=json`), and, when
//! `RUST_LOG` turns it on, an access line per request that names the route's
//! pattern, the status, the time taken and the client's address, and nothing a
//! person typed.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{BINARY, PATIENCE, RunningServer, run_to_end, server_command, user_at_from};

/// The log filter of these tests: the default, and the access log.
const WITH_ACCESS: &str = "info,warp::server=off,chat_live_room::access=debug";

/// An address no interface of this machine has (TEST-NET-3): binding it fails
/// at once, so a server started on it logs an error and exits by itself.
const UNBINDABLE: &str = "203.0.113.7:0";

/// The ANSI escape that starts every colour code.
const ESCAPE: char = '\u{1b}';

/// A server whose output is a pipe and whose environment has no `NO_COLOR`
/// writes no escape code, on its start-up lines and its access lines alike.
#[tokio::test]
async fn the_log_into_a_pipe_has_no_colour_codes() {
    // Arrange
    let mut command = server_command(WITH_ACCESS);
    command.env_remove("NO_COLOR");
    let server = RunningServer::start_command(command, &[]).await;

    // Act
    let home = server.user().get("/").await;
    let access = server
        .wait_for_log("chat_live_room::access", PATIENCE)
        .await;

    // Assert
    assert_eq!(home.status(), StatusCode::OK);
    let log = server.log();
    assert!(access.is_some(), "an access line:\n{log}");
    assert!(!log.contains(ESCAPE), "no escape codes:\n{log:?}");
}

/// `command` run on a terminal of its own (`script` gives it a
/// pseudo-terminal): what it printed, once it ended.
async fn on_a_terminal(command: &str, no_color: Option<&str>) -> String {
    let mut script = Command::new("script");
    script
        .args(["--quiet", "--return", "--command", command, "/dev/null"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("CHAT_LOG_FORMAT")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(value) = no_color {
        script.env("NO_COLOR", value);
    }
    let output = run_to_end(&mut script, Duration::from_secs(20)).await;
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// On a terminal the log is coloured, unless `NO_COLOR` is set to anything
/// but the empty string. (The server is asked to listen on an address it
/// cannot have, so it logs an error and exits by itself.)
#[tokio::test]
async fn on_a_terminal_the_log_is_coloured_unless_no_color_is_set() {
    // Arrange
    let command = format!("{BINARY} --ephemeral --bind {UNBINDABLE}");

    // Act
    let coloured = on_a_terminal(&command, None).await;
    let empty = on_a_terminal(&command, Some("")).await;
    let plain = on_a_terminal(&command, Some("1")).await;

    // Assert
    for (what, log) in [
        ("coloured", &coloured),
        ("empty", &empty),
        ("plain", &plain),
    ] {
        assert!(log.contains("cannot listen"), "{what}: {log:?}");
    }
    assert!(
        coloured.contains(ESCAPE),
        "colour on a terminal: {coloured:?}"
    );
    assert!(
        empty.contains(ESCAPE),
        "an empty NO_COLOR counts as unset: {empty:?}"
    );
    assert!(
        !plain.contains(ESCAPE),
        "no colour with NO_COLOR=1: {plain:?}"
    );
}

/// Every line of `log` as JSON, failing on the first that is not.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect()
}

/// With `--log-format json` every line is a JSON object with `timestamp`,
/// `level`, `target` and `message`; the access lines (with `RUST_LOG`
/// turning them on) carry `method`, `route` (the pattern: no code, no query),
/// `status`, `duration_ms` and `client`, the address the limits count (the one
/// a trusted proxy forwarded). Nothing in the log holds the message text, the
/// passphrase or the session cookie.
#[tokio::test]
async fn json_lines_parse_and_access_lines_say_what_was_asked_and_nothing_typed() {
    // Arrange
    let server = RunningServer::start_logging(
        WITH_ACCESS,
        &["--log-format", "json", "--trust-proxy", "127.0.0.1"],
    )
    .await;
    let text = "the eagle lands at midnight";
    let passphrase = "plum tree at dawn";
    let mut alice = server.user();
    let created = alice
        .post_request("/rooms", &[("name", "alice"), ("passphrase", passphrase)])
        .header("Origin", server.url(""))
        .send()
        .await
        .expect("POST /rooms");
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let code = crate::helpers::room_code(&created);
    let cookie = crate::helpers::session_cookie(&created);
    alice.cookie = Some(cookie.clone());
    let proxied = user_at_from(&server.url(""), IpAddr::from([127, 0, 0, 1]));

    // Act
    let posted = alice
        .post_request(&format!("/rooms/{code}/messages"), &[("message", text)])
        .header("Origin", server.url(""))
        .send()
        .await
        .expect("post a message");
    let polled = alice
        .get(&format!("/rooms/{code}/poll?after=0&wait=0"))
        .await;
    let forwarded = proxied
        .get_request("/healthz?token=hunter2")
        .header("X-Forwarded-For", "198.51.100.23")
        .send()
        .await
        .expect("GET /healthz through the proxy");
    assert_eq!(posted.status(), StatusCode::NO_CONTENT);
    assert_eq!(polled.status(), StatusCode::OK);
    assert_eq!(forwarded.status(), StatusCode::OK);
    let last = server
        .wait_for_log("/healthz", PATIENCE)
        .await
        .expect("an access line for /healthz");

    // Assert
    let log = server.log();
    let lines = json_lines(&log);
    for line in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line.get(field).is_some(), "{field} in {line}");
        }
    }
    let access: Vec<&Value> = lines
        .iter()
        .filter(|line| line["target"] == "chat_live_room::access")
        .collect();
    let routes: Vec<(&str, &str, u64)> = access
        .iter()
        .map(|line| {
            let method = line["method"].as_str().expect("a method");
            let route = line["route"].as_str().expect("a route");
            let status = line["status"].as_u64().expect("a numeric status");
            assert!(line["duration_ms"].as_f64().is_some(), "{line}");
            (method, route, status)
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("POST", "/rooms", 303),
            ("POST", "/rooms/{code}/messages", 204),
            ("GET", "/rooms/{code}/poll", 200),
            ("GET", "/healthz", 200),
        ],
        "{log}"
    );
    let clients: Vec<&str> = access
        .iter()
        .map(|line| line["client"].as_str().expect("a client"))
        .collect();
    let alice_from = alice.from.to_string();
    assert_eq!(
        clients,
        [&*alice_from, &*alice_from, &*alice_from, "198.51.100.23"],
        "{log}"
    );
    let cookie_value = cookie.split_once('=').expect("name=value").1;
    for secret in [text, passphrase, cookie_value, "hunter2", &code] {
        assert!(
            !access.iter().any(|line| line.to_string().contains(secret)),
            "{secret:?} in an access line:\n{last}"
        );
    }
    for secret in [text, passphrase, cookie_value, "hunter2"] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}

/// `CHAT_LOG_FORMAT=json` does what `--log-format json` does, for an error at
/// start too; an unknown format is a usage error naming the two there are.
#[tokio::test]
async fn chat_log_format_picks_json_and_refuses_what_it_does_not_know() {
    // Arrange
    let mut json = server_command("info");
    json.env("CHAT_LOG_FORMAT", "json")
        .args(["--bind", UNBINDABLE]);
    let mut unknown = server_command("info");
    unknown.args(["--log-format", "xml"]);

    // Act
    let json = run_to_end(&mut json, Duration::from_secs(20)).await;
    let unknown = run_to_end(&mut unknown, Duration::from_secs(20)).await;

    // Assert
    let log = String::from_utf8_lossy(&json.stdout);
    let lines = json_lines(&log);
    assert!(
        lines
            .iter()
            .any(|line| line["level"] == "ERROR" && line["message"] == "cannot listen"),
        "{log}"
    );
    assert!(!json.status.success());
    assert_eq!(unknown.status.code(), Some(2));
    let usage = String::from_utf8_lossy(&unknown.stderr);
    assert!(usage.contains("text") && usage.contains("json"), "{usage}");
}
