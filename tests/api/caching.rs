//! Caching: every response that depends on who asks (the session cookie, or the
//! name a sign-in proxy vouches for) is `Cache-Control: no-store`, so no shared
//! cache hands one person's page to the next; assets and `/healthz` keep their
//! own rules. Checked header by header, and by REDbot (PyPI `redbot`, installed
//! by `scripts/test` into `.tools/venv`), which must find nothing wrong (no
//! warning of any kind) with the pages a person sees, the assets and
//! `/healthz`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::helpers::{PATIENCE, send_as_browser, session_cookie, spawn_app, spawn_app_with};
use crate::web::header;

/// What every personal response says to caches.
const NO_STORE: &str = "no-store";

/// Asserts each response's `Cache-Control` is `wanted`, naming the first that is not.
fn assert_cache_control(responses: &[(&str, &Response)], wanted: &str) {
    for (what, response) in responses {
        assert_eq!(
            header(response, CACHE_CONTROL).as_deref(),
            Some(wanted),
            "{what} ({})",
            response.status()
        );
    }
}

/// The home page (with and without a session), the answers to creating and
/// joining, the room page, the join page, a refused join that shows the form
/// again, the members list, a poll and the event stream are all `no-store`;
/// an asset and `/healthz` keep their own `Cache-Control`.
#[tokio::test]
async fn every_response_about_someone_is_never_stored() {
    // Arrange
    let app = spawn_app().await;
    let mut alice = app.user();
    let created = alice.create_room("alice").await;
    let code = crate::helpers::room_code(&created);
    let mut bob = app.user();
    let joined = bob.join("bob", &code).await;
    let stranger = app.user();
    let room = format!("/rooms/{code}");

    // Act
    let home = stranger.get("/").await;
    let home_remembering = alice.get_as_browser("/").await;
    let room_page = alice.get_as_browser(&room).await;
    let join_page = stranger.get_as_browser(&room).await;
    let refused =
        send_as_browser(stranger.post_request("/join", &[("name", "ALlCE"), ("code", &code)]))
            .await;
    let members = alice.get(&format!("{room}/members")).await;
    let poll = alice.poll_response_within(&code, Some(0), PATIENCE).await;
    let events = alice.open_events(&code).await;
    let script = crate::assets::asset_url(&stranger, "chat.js").await;
    let asset = stranger.get(&script).await;
    let health = stranger.get("/healthz").await;

    // Assert
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(members.status(), StatusCode::OK);
    assert_eq!(poll.status(), StatusCode::OK);
    assert_cache_control(
        &[
            ("home page", &home),
            ("home page with a session", &home_remembering),
            ("room created", &created),
            ("room joined", &joined),
            ("room page", &room_page),
            ("join page", &join_page),
            ("refused join", &refused),
            ("members", &members),
            ("poll", &poll),
        ],
        NO_STORE,
    );
    assert_eq!(
        events
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some(NO_STORE),
        "event stream"
    );
    assert_cache_control(&[("asset", &asset)], "max-age=31536000, immutable");
    assert_cache_control(&[("/healthz", &health)], "no-store");
}

/// With `--identity-header`, the home page that says "Signed in as alice", the
/// room page and the members list are `no-store`.
#[tokio::test]
async fn signed_in_pages_are_never_stored() {
    // Arrange
    let app = spawn_app_with(&[
        "--trust-proxy",
        "127.0.0.1",
        "--identity-header",
        "X-Remote-User",
    ])
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let as_alice = |request: reqwest::RequestBuilder| request.header("X-Remote-User", "alice");
    let created = as_alice(client.post(app.url("/rooms")))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("name=alice")
        .send()
        .await
        .expect("POST /rooms");
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let code = crate::helpers::room_code(&created);
    let cookie = session_cookie(&created);
    let get = |path: String| {
        as_alice(client.get(app.url(&path)))
            .header(COOKIE, cookie.clone())
            .header("Accept", "text/html")
            .send()
    };

    // Act
    let home = get("/".to_owned()).await.expect("GET /");
    let room_page = get(format!("/rooms/{code}")).await.expect("GET room");
    let members = get(format!("/rooms/{code}/members"))
        .await
        .expect("GET members");

    // Assert
    assert_cache_control(
        &[
            ("room created", &created),
            ("home page", &home),
            ("room page", &room_page),
            ("members", &members),
        ],
        NO_STORE,
    );
    let home = home.text().await.expect("the home page");
    assert!(home.contains("Signed in as"), "{home}");
}

/// The interpreter of the checkout's REDbot, if it is installed.
fn redbot_python() -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python");
    let installed = std::process::Command::new(&python)
        .args(["-c", "import redbot.resource, thor"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    installed.then_some(python)
}

/// REDbot finds nothing wrong with the home page (with and without a
/// session), the room page with the member's cookie, the join page, the
/// members JSON, `/healthz`, each asset at its content-named URL and an
/// asset's plain URL (`tests/redbot/check.py` prints every note and fails on
/// any at warning level or worse, of any category: caching, compression,
/// validation, headers). In CI a missing REDbot fails the test; elsewhere
/// the test says so and passes.
#[tokio::test]
async fn redbot_finds_nothing_wrong() {
    // Arrange
    let Some(python) = redbot_python() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "REDbot is missing from .tools/venv: scripts/test installs it"
        );
        eprintln!("skipped: REDbot is not in .tools/venv (scripts/test installs it)");
        return;
    };
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let cookie = alice.cookie.clone().expect("alice's session");
    let style = crate::assets::asset_url(&alice, "style.css").await;
    let script = crate::assets::asset_url(&alice, "chat.js").await;
    let icon = crate::assets::asset_url(&alice, "favicon.svg").await;
    let html = ("Accept", "text/html");
    let resources = json!([
        { "name": "home page", "url": app.url("/"), "headers": [html] },
        { "name": "home page with a session", "url": app.url("/"),
          "headers": [html, ("Cookie", &cookie)] },
        { "name": "room page", "url": app.url(&format!("/rooms/{code}")),
          "headers": [html, ("Cookie", &cookie)] },
        { "name": "join page", "url": app.url(&format!("/rooms/{code}")), "headers": [html] },
        { "name": "members", "url": app.url(&format!("/rooms/{code}/members")),
          "headers": [("Cookie", &cookie)] },
        { "name": "/healthz", "url": app.url("/healthz"), "headers": [] },
        { "name": "style", "url": app.url(&style), "headers": [] },
        { "name": "script", "url": app.url(&script), "headers": [] },
        { "name": "icon", "url": app.url(&icon), "headers": [] },
        { "name": "plain URL of the script", "url": app.url("/assets/chat.js"), "headers": [] },
    ]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/redbot/check.py");

    // Act
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start REDbot");
    let mut stdin = child.stdin.take().expect("REDbot's stdin");
    stdin
        .write_all(resources.to_string().as_bytes())
        .await
        .expect("hand REDbot its resources");
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("REDbot finished within 2 minutes")
        .expect("REDbot's output");

    // Assert
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    assert!(
        output.status.success(),
        "REDbot found a problem or could not fetch (exit {:?}):\n{report}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        report.matches("== ").count(),
        10,
        "a report for each resource:\n{report}"
    );
}
