//! Chat through hostile proxies: a real nginx configured like a corporate reverse
//! proxy (refuses WebSocket upgrades, buffers, compresses everything, cuts idle
//! upstreams after 5 s), and connections cut mid-stream while messages flow.
//! Also the deployment `docs/proxies.md` documents (its nginx block and server
//! command, as written there), what `--trust-proxy` makes of `X-Forwarded-*`
//! from the proxies it names, and that from anyone else, or without it, those
//! headers change nothing.
//!
//! The forward-proxy scenario (tinyproxy under the README walkthrough) lives with
//! the walkthrough in `walkthrough.rs`.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use chat_live_room::Config;
use clap::Parser;
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::Command;
use tokio::time::Instant;

use crate::helpers::{
    PATIENCE, ResumingEvents, SseEvent, TempDir, TestApp, User, next_loopback_address,
    spawn_app_configured, spawn_app_with, unused_code, user_at,
};
use crate::nginx::Nginx;
use crate::relay::Relay;

/// The proxy's idle timeout for a response from upstream (`proxy_read_timeout`).
const NGINX_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Where `docs/proxies.md` has nginx send requests, and its server listen.
const DOCUMENTED_UPSTREAM: &str = "127.0.0.1:3000";

/// The address a proxy on the same machine connects from, as nginx does here.
const PROXY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The public name `docs/proxies.md` uses for the chat.
const DOCUMENTED_HOST: &str = "chat.example";

/// `docs/proxies.md`, as it stands.
const PROXIES_DOC: &str = include_str!("../../docs/proxies.md");

/// The text of the fenced block between `start` and `end` in `docs/proxies.md`,
/// without its fences.
fn documented_block(start: &str, end: &str, language: &str) -> String {
    PROXIES_DOC
        .split(start)
        .nth(1)
        .and_then(|rest| rest.split(end).next())
        .unwrap_or_else(|| panic!("docs/proxies.md has a block between {start} and {end}"))
        .trim()
        .trim_start_matches(&format!("```{language}"))
        .trim_end_matches("```")
        .trim()
        .to_owned()
}

/// The server command of `docs/proxies.md`, as it stands there, with `extra`
/// options after it. Its `--bind` is where the documented nginx sends requests.
fn documented_server_config(extra: &[&str]) -> Config {
    let command = documented_block("<!-- server:start -->", "<!-- server:end -->", "sh");
    let argv: Vec<&str> = command
        .split_whitespace()
        .chain(extra.iter().copied())
        .collect();
    assert_eq!(argv.first(), Some(&"chat-live-room"), "{command}");
    let config = Config::try_parse_from(&argv)
        .unwrap_or_else(|error| panic!("the documented server command parses: {error}"));
    assert_eq!(
        config.bind.to_string(),
        DOCUMENTED_UPSTREAM,
        "the documented server listens where the documented nginx sends requests"
    );
    config
}

impl Nginx {
    /// The configuration `docs/proxies.md` recommends, as it stands there, in
    /// front of `upstream` (and inside the same hostile `http` settings).
    async fn documented(upstream: std::net::SocketAddr) -> Self {
        let block = documented_block("<!-- nginx:start -->", "<!-- nginx:end -->", "nginx");
        assert!(
            block.contains(DOCUMENTED_UPSTREAM),
            "the nginx block sends requests to {DOCUMENTED_UPSTREAM}:\n{block}"
        );
        let locations = block.replace(DOCUMENTED_UPSTREAM, &upstream.to_string());
        Self::start(&locations).await
    }

    /// The server started with the command `docs/proxies.md` gives (and
    /// `extra` options), behind the nginx configuration it gives.
    async fn documented_deployment(extra: &[&str]) -> (TestApp, Self) {
        let config = documented_server_config(extra);
        assert!(
            config
                .trust_proxy
                .as_ref()
                .is_some_and(|proxies| proxies.contains(PROXY)),
            "the documented server trusts its proxy, at {PROXY}"
        );
        let app = spawn_app_configured(config).await;
        let nginx = Self::documented(app.addr).await;
        (app, nginx)
    }
}

async fn app_behind_nginx(args: &[&str]) -> (TestApp, Nginx) {
    let app = spawn_app_with(args).await;
    let nginx = Nginx::hostile(app.addr).await;
    (app, nginx)
}

/// Asserts no further message arrives on `events` within 300 ms: none came twice.
async fn assert_no_message_twice(events: &mut ResumingEvents) {
    let nothing_more = events.next_event_within(Duration::from_millis(300)).await;
    assert!(
        nothing_more.as_ref().is_none_or(|e| e.event != "message"),
        "no message twice: {nothing_more:?}"
    );
}

/// The proxy really is hostile: it refuses WebSocket upgrades with `403`.
#[tokio::test]
async fn the_proxy_refuses_websocket_upgrades() {
    // Arrange
    let (_app, nginx) = app_behind_nginx(&[]).await;
    let user = user_at(&nginx.base);

    // Act
    let upgrade = user
        .get_request("/")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .send()
        .await
        .expect("request");
    let plain = user.get("/").await;

    // Assert
    assert_eq!(upgrade.status(), StatusCode::FORBIDDEN);
    assert_eq!(plain.status(), StatusCode::OK);
}

/// Through the buffering, compressing proxy a posted message reaches another
/// person's stream within a second, also for a client that accepts gzip
/// (real `curl --compressed`, as browsers do).
#[tokio::test]
async fn events_pass_the_buffering_compressing_proxy_at_once() {
    // Arrange
    let (_app, nginx) = app_behind_nginx(&[]).await;
    let mut alice = user_at(&nginx.base);
    let code = alice.create_room_ok("alice").await;
    let mut bob = user_at(&nginx.base);
    assert_eq!(bob.join("bob", &code).await.status(), StatusCode::SEE_OTHER);
    let mut plain = ResumingEvents::open(bob, &code).await;
    let cookie = alice.cookie.clone().expect("alice's cookie");
    let mut curl = Command::new("curl")
        .args(["--compressed", "-sN", "-H"])
        .arg(format!("Cookie: {cookie}"))
        .arg(format!("{}/rooms/{code}/events", nginx.base))
        .env_remove("http_proxy")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("curl is missing: `scripts/test` installs it");
    let mut gzipped = tokio::io::BufReader::new(curl.stdout.take().expect("stdout")).lines();
    let first_line = tokio::time::timeout(Duration::from_secs(5), gzipped.next_line()).await;
    assert!(
        matches!(first_line, Ok(Ok(Some(ref l))) if l.starts_with("retry:")),
        "{first_line:?}"
    );

    for n in 0..3 {
        // Act
        let text = format!("message {n}");
        let posted = Instant::now();
        alice.say(&code, &text).await;

        // Assert
        let event = plain.next_message().await;
        assert_eq!(event.text(), text);
        let line = loop {
            let line = tokio::time::timeout(Duration::from_secs(5), gzipped.next_line())
                .await
                .expect("curl reads a line")
                .expect("curl's output")
                .expect("curl's stream goes on");
            if line.contains("\"kind\":\"message\"") {
                break line;
            }
        };
        assert!(line.contains(&text), "{line}");
        let waited = posted.elapsed();
        assert!(
            waited < Duration::from_secs(1),
            "message {n} took {waited:?} through the proxy"
        );
    }
    assert_eq!(plain.reconnects, 0);
}

/// With a keep-alive shorter than the proxy's idle timeout, a stream that sits
/// idle for 20 s stays the same open stream and then carries the next message.
#[tokio::test]
async fn an_idle_stream_stays_open_through_the_proxy() {
    // Arrange
    let (_app, nginx) = app_behind_nginx(&["--keepalive", "2"]).await;
    let mut alice = user_at(&nginx.base);
    let code = alice.create_room_ok("alice").await;
    let mut events = alice.open_events(&code).await;
    let idle_until = Instant::now() + Duration::from_secs(20);

    // Act
    let mut keepalives = 0;
    while Instant::now() < idle_until {
        let left = idle_until.saturating_duration_since(Instant::now());
        if let Some(frame) = events.next_frame_within(left).await {
            keepalives += usize::from(frame.event.as_deref() == Some("heartbeat"));
        }
        assert!(
            !events.ended(),
            "the proxy cut the stream after {keepalives} keep-alives"
        );
    }
    alice.say(&code, "still there?").await;

    // Assert
    let event = events.next_message().await;
    assert_eq!(event.text(), "still there?");
    assert!(
        keepalives >= 8,
        "a heartbeat every 2 s: {keepalives} in 20 s"
    );
}

/// With the default keep-alive (longer than the proxy's 5 s), the proxy cuts
/// the idle stream; a client that reconnects with `Last-Event-ID` (as
/// EventSource does) still gets every message once, in order, over 20 s.
#[tokio::test]
async fn a_stream_the_proxy_keeps_cutting_loses_nothing() {
    // Arrange
    let (_app, nginx) = app_behind_nginx(&[]).await;
    let mut alice = user_at(&nginx.base);
    let code = alice.create_room_ok("alice").await;
    let mut bob = user_at(&nginx.base);
    assert_eq!(bob.join("bob", &code).await.status(), StatusCode::SEE_OTHER);
    let mut events = ResumingEvents::open(bob, &code).await;
    let start = Instant::now();

    // Act: a message every 7 s, each after the proxy has cut the idle stream.
    let mut received = Vec::new();
    for n in 0..3 {
        tokio::time::sleep_until(start + Duration::from_secs(7 * n + 1)).await;
        alice.say(&code, &format!("after {} s", 7 * n + 1)).await;
        received.push(events.next_message().await);
    }

    // Assert
    let texts: Vec<&str> = received.iter().map(SseEvent::text).collect();
    assert_eq!(texts, ["after 1 s", "after 8 s", "after 15 s"]);
    assert!(
        events.reconnects >= 2,
        "the proxy cut the idle stream ({} reconnects)",
        events.reconnects
    );
    assert_no_message_twice(&mut events).await;
}

/// A stream the proxy has cut resumes with `Last-Event-ID` and replays exactly
/// the events posted while it was gone.
#[tokio::test]
async fn a_cut_stream_replays_exactly_what_it_missed() {
    // Arrange
    let (_app, nginx) = app_behind_nginx(&[]).await;
    let mut alice = user_at(&nginx.base);
    let code = alice.create_room_ok("alice").await;
    let mut bob = user_at(&nginx.base);
    assert_eq!(bob.join("bob", &code).await.status(), StatusCode::SEE_OTHER);
    let mut events = bob.open_events(&code).await;
    alice.say(&code, "before").await;
    let before = events.next_message().await;
    let cut_within = NGINX_READ_TIMEOUT + Duration::from_secs(5);
    while events.next_frame_within(cut_within).await.is_some() {}
    assert!(events.ended(), "the proxy cut the idle stream");

    // Act
    for text in ["one", "two", "three"] {
        alice.say(&code, text).await;
    }
    let mut resumed = bob
        .try_open_events(&code, before.id)
        .await
        .expect("the stream reopens");

    // Assert
    let replayed = resumed.next_events(3).await;
    let texts: Vec<&str> = replayed.iter().map(SseEvent::text).collect();
    assert_eq!(texts, ["one", "two", "three"]);
    alice.say(&code, "live").await;
    assert_eq!(
        resumed.next_event().await.text(),
        "live",
        "nothing twice, then live"
    );
}

/// A client whose TCP connection is cut again and again mid-stream, while
/// messages keep flowing, gets every message once, in order.
#[tokio::test]
async fn connections_cut_mid_stream_lose_and_repeat_nothing() {
    // Arrange: alice may post all 60 messages at once (the default is 20).
    let app = spawn_app_with(&["--message-burst", "60"]).await;
    let relay = Relay::start(app.addr).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut bob = user_at(&relay.base);
    assert_eq!(bob.join("bob", &code).await.status(), StatusCode::SEE_OTHER);
    let mut events = ResumingEvents::open(bob, &code).await;
    let total = 60;

    // Act
    let poster = tokio::spawn(async move {
        for n in 0..total {
            alice.say(&code, &format!("m{n:02}")).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let mut received = Vec::new();
    while received.len() < total {
        received.push(events.next_message().await.text().to_owned());
        if received.len() % 15 == 7 {
            relay.cut();
        }
    }
    poster.await.expect("the poster finishes");

    // Assert
    let expected: Vec<String> = (0..total).map(|n| format!("m{n:02}")).collect();
    assert_eq!(received, expected);
    assert!(
        events.reconnects >= 4,
        "the relay cut {} times",
        events.reconnects
    );
    assert_no_message_twice(&mut events).await;
}

/// The deployment in `docs/proxies.md` works as written (its nginx block, its
/// server command with `--trust-proxy` and `--public-host`): a browser's form
/// post passes the Origin check, events arrive at once, an idle stream with the
/// default keep-alive stays open for 20 s, the documented public name is
/// answered and any other name gets `421`.
#[tokio::test]
async fn the_documented_nginx_configuration_works() {
    // Arrange
    let (_app, nginx) = Nginx::documented_deployment(&[]).await;
    let mut alice = user_at(&nginx.base);
    let code = alice.create_room_ok("alice").await;
    let mut events = alice.open_events(&code).await;
    let idle_until = Instant::now() + Duration::from_secs(20);

    // Act
    while Instant::now() < idle_until {
        let left = idle_until.saturating_duration_since(Instant::now());
        events.next_frame_within(left).await;
        assert!(!events.ended(), "the proxy cut the idle stream");
    }
    let posted = Instant::now();
    let browser_post = alice
        .post_request(
            &format!("/rooms/{code}/messages"),
            &[("message", "from the browser")],
        )
        .header("origin", nginx.base.clone())
        .send()
        .await
        .expect("post");
    let page_for = |host: &str| alice.get_request("/").header("host", host).send();
    let public_name = page_for(DOCUMENTED_HOST).await.expect("GET /");
    let other_name = page_for("other.example").await.expect("GET /");

    // Assert
    assert_eq!(
        browser_post.status(),
        StatusCode::NO_CONTENT,
        "the browser's host and scheme reach the server"
    );
    let event = events.next_message().await;
    assert_eq!(event.text(), "from the browser");
    assert!(
        posted.elapsed() < Duration::from_secs(1),
        "took {:?}",
        posted.elapsed()
    );
    assert_eq!(public_name.status(), StatusCode::OK, "--public-host");
    assert_eq!(other_name.status(), StatusCode::MISDIRECTED_REQUEST);
}

/// With a bare `--trust-proxy` (loopback), behind a proxy on this machine that
/// rewrites `Host` and ends TLS, a post whose `Origin` is the
/// `X-Forwarded-Proto` and `X-Forwarded-Host` the proxy adds is accepted;
/// another origin is still refused.
#[tokio::test]
async fn the_forwarded_host_counts_as_our_own_origin() {
    // Arrange
    let app = spawn_app_with(&["--trust-proxy", "--public-host", "chat.example"]).await;
    let mut alice = app.user_from(PROXY);
    let code = alice.create_room_ok("alice").await;
    let post = |origin: &'static str| {
        alice
            .post_request(&format!("/rooms/{code}/messages"), &[("message", "hi")])
            .header("origin", origin)
            .header("x-forwarded-host", "chat.example")
            .header("x-forwarded-proto", "https")
            .send()
    };

    // Act
    let ours = post("https://chat.example").await.expect("post");
    let theirs = post("https://evil.example").await.expect("post");

    // Assert
    assert_eq!(ours.status(), StatusCode::NO_CONTENT);
    assert_eq!(theirs.status(), StatusCode::FORBIDDEN);
}

/// Asks about room `code` (a guess, for someone not in it), with a forged
/// `X-Forwarded-For` if given; the status.
async fn guess(user: &User, code: &str, forged_for: Option<&str>) -> StatusCode {
    let request = user.get_request(&format!("/rooms/{code}"));
    let request = match forged_for {
        Some(address) => request.header("x-forwarded-for", address),
        None => request,
    };
    let response = request.send().await.expect("GET the room");
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        assert!(
            response.headers().contains_key("retry-after"),
            "a 429 says when to retry"
        );
    }
    response.status()
}

/// Behind the documented nginx with `--trust-proxy`, a post from the page's
/// origin is accepted and the guess limit counts each client's own address (the
/// last `X-Forwarded-For` entry, which nginx appends): a client that used up its
/// guesses is refused, also when it sends a forged `X-Forwarded-For`, while
/// another client (another address to nginx) is not, even one naming the first.
#[tokio::test]
async fn behind_nginx_with_trust_proxy_each_client_address_has_its_own_guess_limit() {
    // Arrange
    let (_app, nginx) =
        Nginx::documented_deployment(&["--guess-burst", "2", "--guess-rate", "1/h"]).await;
    let mut alice = user_at(&nginx.base);
    let code = alice.create_room_ok("alice").await;
    let unused = unused_code(&[&code]);
    let mallory = user_at(&nginx.base);
    let carol = user_at(&nginx.base);
    assert_ne!(mallory.from, carol.from, "two addresses as nginx sees them");
    let mallory_address = mallory.from.to_string();

    // Act
    let browser_post = alice
        .post_request(&format!("/rooms/{code}/messages"), &[("message", "hi")])
        .header("origin", nginx.base.clone())
        .send()
        .await
        .expect("post");
    let mut mallory_guesses = Vec::new();
    for _ in 0..3 {
        mallory_guesses.push(guess(&mallory, &unused, None).await);
    }
    let mallory_forging = guess(&mallory, &unused, Some("203.0.113.9")).await;
    let carol_guesses = [
        guess(&carol, &unused, Some(&mallory_address)).await,
        guess(&carol, &unused, None).await,
    ];

    // Assert
    assert_eq!(browser_post.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        mallory_guesses,
        [
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "two guesses, then refused"
    );
    assert_eq!(
        mallory_forging,
        StatusCode::TOO_MANY_REQUESTS,
        "nginx appends the real address after the forged one"
    );
    assert_eq!(
        carol_guesses,
        [StatusCode::NOT_FOUND, StatusCode::NOT_FOUND],
        "another client has guesses of its own"
    );
}

/// With `--trust-proxy 127.0.0.1,10.0.0.0/8`, a client that reaches the server
/// from another address (not a listed proxy) cannot use the forwarding
/// headers: a forged `X-Forwarded-For` does not free it from its guess limit,
/// and `X-Forwarded-Host` and `-Proto` do not make another origin its own (403,
/// no room). The listed proxy is believed: each address it forwards has its
/// own guesses, and its forwarded origin is ours.
#[tokio::test]
async fn forwarded_headers_count_only_from_the_listed_proxies() {
    // Arrange
    let app = spawn_app_with(&[
        "--trust-proxy",
        "127.0.0.1,10.0.0.0/8",
        "--public-host",
        "chat.example",
        "--guess-burst",
        "2",
        "--guess-rate",
        "1/h",
    ])
    .await;
    let mut proxy = app.user_from(PROXY);
    let code = proxy.create_room_ok("alice").await;
    let unused = unused_code(&[&code]);
    let mut mallory = app.user();
    let forwarded_origin = |user: &User| {
        user.post_request("/rooms", &[("name", "someone")])
            .header("origin", "https://chat.example")
            .header("x-forwarded-host", "chat.example")
            .header("x-forwarded-proto", "https")
            .send()
    };

    // Act
    let mut mallory_guesses = Vec::new();
    for n in 0..4 {
        let forged = format!("203.0.113.{n}");
        mallory_guesses.push(guess(&mallory, &unused, Some(&forged)).await);
    }
    let mut forwarded_guesses = Vec::new();
    for n in 0..4 {
        let forwarded = format!("198.51.100.{n}");
        forwarded_guesses.push(guess(&proxy, &unused, Some(&forwarded)).await);
    }
    let mallory_post = forwarded_origin(&mallory).await.expect("post");
    let proxy_post = forwarded_origin(&proxy).await.expect("post");

    // Assert
    assert_eq!(
        mallory_guesses,
        [
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "mallory's own address is limited, whatever X-Forwarded-For says"
    );
    assert_eq!(
        forwarded_guesses,
        [StatusCode::NOT_FOUND; 4],
        "each address the proxy forwards has guesses of its own"
    );
    assert_eq!(mallory_post.status(), StatusCode::FORBIDDEN);
    assert!(mallory_post.headers().get("set-cookie").is_none());
    mallory.create_room_ok("mallory").await;
    assert_eq!(proxy_post.status(), StatusCode::SEE_OTHER);
}

/// With `--trust-proxy 127.0.0.1` and `--max-connections-per-address 2`, a
/// client at another address gets two connections and its third is refused
/// (`429`, closed) whatever `X-Forwarded-For` it sends; the proxy's own
/// connections, which carry many clients, are not counted per address.
#[tokio::test]
async fn only_the_listed_proxies_connections_escape_the_per_address_count() {
    // Arrange
    let app = spawn_app_with(&[
        "--trust-proxy",
        "127.0.0.1",
        "--max-connections-per-address",
        "2",
    ])
    .await;
    let stranger = next_loopback_address();
    let mut held = Vec::new();
    for n in 0..2 {
        let (head, connection) = forwarded_get(&app, stranger, &format!("198.51.100.{n}")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(connection);
    }

    // Act
    let (third, _) = forwarded_get(&app, stranger, "198.51.100.9").await;
    let mut through_proxy = Vec::new();
    for n in 0..4 {
        through_proxy.push(forwarded_get(&app, PROXY, &format!("203.0.113.{n}")).await);
    }

    // Assert
    assert!(third.starts_with("HTTP/1.1 429"), "{third}");
    assert!(third.contains("Too many open connections"), "{third}");
    for (head, _connection) in &through_proxy {
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
}

/// A new connection from the loopback address `from` carrying `GET /` with
/// `X-Forwarded-For: forwarded_for`: what came back before the response head
/// ended or the server closed, and the connection, still open if the server
/// kept it.
async fn forwarded_get(app: &TestApp, from: IpAddr, forwarded_for: &str) -> (String, TcpStream) {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(std::net::SocketAddr::new(from, 0))
        .expect("bind a loopback source address");
    let mut connection = socket.connect(app.addr).await.expect("connect");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nX-Forwarded-For: {forwarded_for}\r\n\r\n",
        app.addr
    );
    connection
        .write_all(request.as_bytes())
        .await
        .expect("send GET /");
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + PATIENCE;
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout_at(deadline, connection.read(&mut chunk))
            .await
            .expect("an answer within the patience period")
            .expect("read");
        if read == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..read]);
    }
    if received.starts_with(b"HTTP/1.1 429") {
        // The refusal's body follows its head; the server then closes.
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(PATIENCE, connection.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the server closes a refused connection");
        received.extend_from_slice(&rest);
    }
    (String::from_utf8_lossy(&received).into_owned(), connection)
}

/// Without `--trust-proxy` the `X-Forwarded-*` headers change nothing: a post
/// with another site's `Origin` is refused (403, nothing published) whatever
/// `X-Forwarded-Host` says, and a forged `X-Forwarded-For` neither frees the
/// address that used up its guesses nor blames the address it names.
#[tokio::test]
async fn without_trust_proxy_forwarded_headers_change_nothing() {
    // Arrange
    let app = spawn_app_with(&["--guess-burst", "2", "--guess-rate", "1/h"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let unused = unused_code(&[&code]);
    let mallory = app.user();
    let carol = app.user();
    let carol_address = carol.from.to_string();

    // Act
    let cross_site = alice
        .post_request(&format!("/rooms/{code}/messages"), &[("message", "forged")])
        .header("origin", "http://evil.example")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .expect("post");
    let mut mallory_guesses = Vec::new();
    for n in 0..4 {
        let forged = format!("203.0.113.{n}, {carol_address}");
        mallory_guesses.push(guess(&mallory, &unused, Some(&forged)).await);
    }
    let carol_guess = guess(&carol, &unused, None).await;
    alice.say(&code, "real").await;

    // Assert
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        events.next_message().await.text(),
        "real",
        "the refused post published nothing"
    );
    assert_eq!(
        mallory_guesses,
        [
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "the socket's address is limited, whatever X-Forwarded-For says"
    );
    assert_eq!(
        carol_guess,
        StatusCode::NOT_FOUND,
        "the address X-Forwarded-For named was not charged"
    );
}

/// The one-line deployment check in `docs/proxies.md` shows what the document
/// promises for a healthy deployment: the `retry:` hint and the probe's `join`
/// at once, then heartbeats.
#[tokio::test]
async fn the_documented_deployment_check_works() {
    // Arrange
    let app = spawn_app_with(&["--keepalive", "0.5"]).await;
    let doc = include_str!("../../docs/proxies.md");
    let section = doc
        .split("## Check a deployment with one command")
        .nth(1)
        .expect("the section");
    let command = section
        .split("```sh")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the command")
        .trim()
        .replace("S=https://chat.example", &format!("S={}", app.url("")))
        .replace("--max-time 60", "--max-time 2");
    let dir = TempDir::new("deployment-check");

    // Act
    let output = Command::new("bash")
        .args(["-c", &command])
        .current_dir(dir.path())
        .env_remove("http_proxy")
        .output()
        .await
        .expect("bash and curl run (`scripts/test` installs curl)");

    // Assert
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.starts_with("retry: 2000\n"), "{shown}");
    assert!(
        shown.contains("event: join\n") && shown.contains("\"name\":\"probe\""),
        "{shown}"
    );
    assert!(shown.matches("event: heartbeat\n").count() >= 2, "{shown}");
}
