//! HTTPS with `--tls-cert`/`--tls-key`: ALPN negotiates HTTP/2, so many event
//! streams (a browser's tabs) share one connection; real `curl --http2` works over
//! it; graceful shutdown still ends open streams; and the real binary refuses half
//! or unreadable TLS options with a clear message.
//!
//! Each test makes its own self-signed certificate for `localhost` and 127.0.0.1
//! (rcgen) and starts the server in-process on port 0 with it. Clients trust that
//! one certificate (reqwest) or skip verification (`curl -k`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use chat_live_room::Config;
use clap::Parser;
use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE};
use reqwest::{Response, StatusCode, Version};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{ChildStdout, Command};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};

use crate::helpers::{
    Events, PATIENCE, TempDir, TestApp, room_code, run_to_end, said, server_command,
    session_cookie, spawn_app_configured,
};
use crate::relay::Relay;

mod pinning;

/// What the server binary logs, isolated from the caller's `RUST_LOG`.
const RUST_LOG: &str = "info";

/// How many tabs' streams share the one connection.
const TABS: usize = 10;

/// Ten event streams over ONE TCP connection (HTTP/2 chosen by ALPN) all receive a message posted afterwards.
#[tokio::test]
async fn ten_event_streams_share_one_http2_connection_and_all_receive_a_message() {
    // Arrange
    let app = spawn_https_app().await;
    let relay = Relay::start(app.addr).await;
    let browser = app.client(Protocols::Alpn);
    let tabs_base = format!("https://localhost:{}", relay.addr.port());
    let (alice, code) = create_room(&browser, &tabs_base, "alice").await;
    let bob = join_room(&app.client(Protocols::Alpn), &app.url(""), &code, "bob").await;
    let events_url = format!("{tabs_base}/rooms/{code}/events");
    let mut opening = JoinSet::new();
    for _ in 0..TABS {
        let request = browser
            .get(&events_url)
            .header(ACCEPT, "text/event-stream")
            .header(COOKIE, &alice);
        opening.spawn(timeout(PATIENCE, request.send()));
    }
    let mut tabs = Vec::with_capacity(TABS);
    while let Some(opened) = opening.join_next().await {
        let response = opened
            .expect("the request task does not panic")
            .expect("the stream answers within the patience period")
            .expect("GET events over HTTPS");
        assert_eq!(response.status(), StatusCode::OK, "a tab's stream opens");
        assert_eq!(
            response.version(),
            Version::HTTP_2,
            "ALPN chose HTTP/2 for the tab's stream"
        );
        tabs.push(Events::new(response));
    }

    // Act
    bob.say(&code, "hello, every tab").await;

    // Assert
    for (tab, events) in tabs.iter_mut().enumerate() {
        let message = events.next_message().await;
        assert_eq!(
            (message.name(), message.text()),
            ("bob", "hello, every tab"),
            "tab {tab} receives bob's message"
        );
    }
    assert_eq!(
        relay.connections(),
        1,
        "creating the room and all {TABS} streams went over one TCP connection"
    );
    app.shut_down().await;
}

/// The curl walkthrough's basics work over HTTPS with real `curl --http2 -k`: create with -c, stream with -N (replaying from `Last-Event-ID: 0`), post with -b.
#[tokio::test]
async fn curl_creates_streams_and_posts_over_https_with_http2() {
    // Arrange
    require_curl_with_http2().await;
    let app = spawn_https_app().await;
    let server = format!("https://127.0.0.1:{}", app.addr.port());
    let workdir = TempDir::new("http2-curl");
    let create = curl(&workdir)
        .args(["-c", "alice.jar", "-d", "name=alice", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{http_code} %{redirect_url}"])
        .arg(format!("{server}/rooms"))
        .output();
    let created = timeout(PATIENCE, create)
        .await
        .expect("curl creates the room within the patience period")
        .expect("run curl");
    let created = String::from_utf8_lossy(&created.stdout).into_owned();
    let code = created.get(created.len().saturating_sub(4)..).unwrap_or("");
    let mut stream = curl(&workdir)
        .args(["-N", "-b", "alice.jar", "-D", "-", "-H", "Last-Event-ID: 0"])
        .arg(format!("{server}/rooms/{code}/events"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start curl -N");
    let mut lines = BufReader::new(stream.stdout.take().expect("piped stdout")).lines();
    let status_line = read_until(&mut lines, |line| line.starts_with("HTTP/")).await;
    let joined = read_until(&mut lines, |line| line == "event: join").await;

    // Act
    let post = curl(&workdir)
        .args([
            "-b",
            "alice.jar",
            "-d",
            "message=hello over h2",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_version} %{http_code}"])
        .arg(format!("{server}/rooms/{code}/messages"))
        .output();
    let posted = timeout(PATIENCE, post)
        .await
        .expect("curl posts within the patience period")
        .expect("run curl");
    let delivered = read_until(&mut lines, |line| {
        line.starts_with("data:") && line.contains("hello over h2")
    })
    .await;

    // Assert
    assert!(
        created.starts_with("2 303 ") && created.contains(&format!("/rooms/{code}")),
        "POST /rooms over HTTP/2 answers 303 to the room: {created:?}"
    );
    assert!(
        workdir.path().join("alice.jar").is_file(),
        "curl keeps the session cookie in its jar"
    );
    assert_eq!(
        status_line.as_deref().map(str::trim_end),
        Some("HTTP/2 200"),
        "the event stream is served over HTTP/2"
    );
    assert!(
        joined.is_some(),
        "the stream replays alice's join (Last-Event-ID: 0)"
    );
    assert_eq!(
        String::from_utf8_lossy(&posted.stdout),
        "2 204",
        "the message post over HTTP/2 is accepted"
    );
    assert!(
        delivered.is_some(),
        "the posted message arrives on the curl stream"
    );
    app.shut_down().await;
}

/// On shutdown, open HTTP/2 streams (and one over HTTP/1.1 with TLS) end and the server stops within the patience period.
#[tokio::test]
async fn graceful_shutdown_ends_open_http2_streams_promptly() {
    // Arrange
    let app = spawn_https_app().await;
    let browser = app.client(Protocols::Alpn);
    let old_browser = app.client(Protocols::Http1Only);
    let (alice, code) = create_room(&browser, &app.url(""), "alice").await;
    let mut streams = Vec::new();
    for (client, version) in [
        (&browser, Version::HTTP_2),
        (&browser, Version::HTTP_2),
        (&browser, Version::HTTP_2),
        (&old_browser, Version::HTTP_11),
    ] {
        let response =
            open_events(client, &app.url(&format!("/rooms/{code}/events")), &alice).await;
        assert_eq!(response.version(), version, "the protocol ALPN chose");
        streams.push(Events::new(response));
    }

    // Act
    let started = Instant::now();
    app.shut_down().await;
    let took = started.elapsed();

    // Assert
    assert!(took <= PATIENCE, "shutdown took {took:?}");
    for events in &mut streams {
        events.expect_end().await;
    }
}

/// `--help` names the TLS options and their variables, and ties `--secure-cookies` to TLS.
#[tokio::test]
async fn help_names_the_tls_options_and_ties_secure_cookies_to_tls() {
    // Arrange
    let mut command = server_command(RUST_LOG);
    command.arg("--help");

    // Act
    let help = run_to_end(&mut command, PATIENCE).await;

    // Assert
    assert!(help.status.success(), "--help exits 0");
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in ["--tls-cert", "--tls-key", "CHAT_TLS_CERT", "CHAT_TLS_KEY"] {
        assert!(text.contains(needle), "--help mentions {needle}:\n{text}");
    }
    // Its lines: from the option's own to the next option's.
    let secure_cookies: String = text
        .lines()
        .skip_while(|line| line.trim_start() != "--secure-cookies")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('-'))
        .collect();
    assert!(
        secure_cookies.contains("TLS"),
        "--secure-cookies' help says it belongs with TLS:\n{secure_cookies}"
    );
}

/// `--tls-cert` without `--tls-key` (flag or variable), an unreadable file, or a wrong key make the binary exit non-zero with a clear message.
#[tokio::test]
async fn the_binary_refuses_half_or_unreadable_tls_options_clearly() {
    // Arrange
    let certificate = TestCertificate::new();
    let cert = certificate.cert_path.to_str().expect("utf-8 path");
    let key = certificate.key_path.to_str().expect("utf-8 path");
    let missing = certificate.dir.path().join("no-such-cert.pem");
    let missing = missing.to_str().expect("utf-8 path");
    let mut cert_only = server_command(RUST_LOG);
    cert_only.args(["--tls-cert", cert]);
    let mut cert_only_from_env = server_command(RUST_LOG);
    cert_only_from_env.env("CHAT_TLS_CERT", cert);
    let mut unreadable_cert = server_command(RUST_LOG);
    unreadable_cert.args(["--tls-cert", missing, "--tls-key", key]);
    let mut cert_as_key = server_command(RUST_LOG);
    cert_as_key.args(["--tls-cert", cert, "--tls-key", cert]);
    let other = TestCertificate::new();
    let mut someone_elses_key = server_command(RUST_LOG);
    someone_elses_key.args(["--tls-cert", cert, "--tls-key"]);
    someone_elses_key.arg(&other.key_path);
    let cases: [(&str, &mut Command, &[&str]); 5] = [
        ("--tls-cert alone", &mut cert_only, &["--tls-key"]),
        (
            "CHAT_TLS_CERT alone",
            &mut cert_only_from_env,
            &["--tls-key"],
        ),
        (
            "a missing certificate",
            &mut unreadable_cert,
            &[missing, "--tls-cert"],
        ),
        (
            "a key file with no key",
            &mut cert_as_key,
            &["--tls-key", "PRIVATE KEY"],
        ),
        (
            "the key of another certificate",
            &mut someone_elses_key,
            &["--tls-key", "--tls-cert"],
        ),
    ];

    for (case, command, expected) in cases {
        // Act
        let output = run_to_end(command.args(["--bind", "127.0.0.1:0"]), PATIENCE).await;

        // Assert
        let said = said(&output);
        assert!(
            !output.status.success(),
            "{case}: the binary exits non-zero, got {} saying:\n{said}",
            output.status
        );
        assert!(!said.contains("panicked"), "{case}: no panic:\n{said}");
        for needle in expected {
            assert!(
                said.contains(needle),
                "{case}: it mentions {needle}:\n{said}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The server over HTTPS, in-process

/// A self-signed certificate for `localhost` and 127.0.0.1, and its key, as PEM
/// files in a directory of their own.
struct TestCertificate {
    dir: TempDir,
    cert_pem: String,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl TestCertificate {
    fn new() -> Self {
        let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("generate a self-signed certificate");
        let dir = TempDir::new("http2-cert");
        let cert_pem = cert.pem();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, &cert_pem).expect("write cert.pem");
        std::fs::write(&key_path, signing_key.serialize_pem()).expect("write key.pem");
        Self {
            dir,
            cert_pem,
            cert_path,
            key_path,
        }
    }
}

/// One server speaking HTTPS: a `helpers::TestApp` started with a certificate.
struct HttpsApp {
    addr: SocketAddr,
    server: TestApp,
    certificate: TestCertificate,
}

/// Which protocols a client offers in ALPN.
#[derive(Clone, Copy)]
enum Protocols {
    /// `h2` and `http/1.1`, as browsers do.
    Alpn,
    /// `http/1.1` only.
    Http1Only,
}

/// Starts the server on port 0 with `--tls-cert` and `--tls-key` of a fresh certificate.
async fn spawn_https_app() -> HttpsApp {
    let certificate = TestCertificate::new();
    let config = Config::try_parse_from([
        "chat-live-room".as_ref(),
        "--bind".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--tls-cert".as_ref(),
        certificate.cert_path.as_os_str(),
        "--tls-key".as_ref(),
        certificate.key_path.as_os_str(),
    ])
    .expect("valid TLS options");
    assert!(config.tls.settings().is_some(), "the TLS files are loaded");
    let server = spawn_app_configured(config).await;
    HttpsApp {
        addr: server.addr,
        server,
        certificate,
    }
}

impl HttpsApp {
    /// `https://localhost:PORT{path}`: the name the certificate is for.
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A client that trusts this server's certificate and resolves `localhost`
    /// to 127.0.0.1 (the port comes from each URL).
    fn client(&self, protocols: Protocols) -> reqwest::Client {
        let root = reqwest::Certificate::from_pem(self.certificate.cert_pem.as_bytes())
            .expect("the test certificate as a root");
        let builder = reqwest::Client::builder()
            .add_root_certificate(root)
            .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(PATIENCE);
        match protocols {
            Protocols::Alpn => builder,
            Protocols::Http1Only => builder.http1_only(),
        }
        .build()
        .expect("https client")
    }

    /// Starts graceful shutdown and waits (bounded) for the server task to end.
    async fn shut_down(self) {
        self.server.shut_down().await;
    }
}

/// One person seen by the tests: the session cookie (`name=value`) and a client.
struct Person {
    client: reqwest::Client,
    base: String,
    cookie: String,
}

impl Person {
    /// Posts a message and asserts it was accepted.
    async fn say(&self, code: &str, text: &str) {
        let response = post_form(
            &self.client,
            &format!("{}/rooms/{code}/messages", self.base),
            Some(&self.cookie),
            &[("message", text)],
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "posting {text:?}"
        );
    }
}

/// Creates a room as `name`; returns the session cookie and the room's code.
async fn create_room(client: &reqwest::Client, base: &str, name: &str) -> (String, String) {
    let response = post_form(client, &format!("{base}/rooms"), None, &[("name", name)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "create a room");
    (session_cookie(&response), room_code(&response))
}

/// Joins room `code` as `name`.
async fn join_room(client: &reqwest::Client, base: &str, code: &str, name: &str) -> Person {
    let response = post_form(
        client,
        &format!("{base}/join"),
        None,
        &[("name", name), ("code", code)],
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "join {code} as {name}"
    );
    Person {
        client: client.clone(),
        base: base.to_owned(),
        cookie: session_cookie(&response),
    }
}

/// A form post (values are plain words here, so only spaces need encoding).
async fn post_form(
    client: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> Response {
    let body = fields
        .iter()
        .map(|(key, value)| format!("{key}={}", value.replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&");
    let mut request = client
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    timeout(PATIENCE, request.send())
        .await
        .expect("the server answers within the patience period")
        .expect("POST over HTTPS")
}

/// Opens an event stream and asserts it started.
async fn open_events(client: &reqwest::Client, url: &str, cookie: &str) -> Response {
    let request = client
        .get(url)
        .header(ACCEPT, "text/event-stream")
        .header(COOKIE, cookie);
    let response = timeout(PATIENCE, request.send())
        .await
        .expect("the stream answers within the patience period")
        .expect("GET events over HTTPS");
    assert_eq!(response.status(), StatusCode::OK, "the event stream opens");
    response
}

// ---------------------------------------------------------------------------
// Programs: curl and the server binary

/// Fails (never skips) when curl is missing or cannot speak HTTP/2.
async fn require_curl_with_http2() {
    let version = Command::new("curl").arg("--version").output().await;
    let version = match version {
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(error) => panic!(
            "`curl` is needed by this test but could not be run ({error}); \
             `scripts/test` installs it (with apt-get) before running the tests"
        ),
    };
    assert!(
        version.contains("HTTP2"),
        "this curl cannot speak HTTP/2 (no HTTP2 in its features):\n{version}"
    );
}

/// `curl -q -sS --http2 -k` in `workdir`, with no proxy and no `.curlrc`.
fn curl(workdir: &TempDir) -> Command {
    let mut command = Command::new("curl");
    command
        .args(["-q", "-sS", "--http2", "-k"])
        .current_dir(workdir.path())
        .env("CURL_HOME", workdir.path())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Reads lines until one matches; `None` if the output ends or [`PATIENCE`] passes.
async fn read_until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    matches: impl Fn(&str) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) if matches(line.trim_end()) => return Some(line),
            Ok(Ok(Some(_))) => {}
            _ => return None,
        }
    }
}
