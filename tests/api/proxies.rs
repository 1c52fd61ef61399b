//! Chat through hostile proxies: a real nginx configured like a corporate reverse
//! proxy (refuses WebSocket upgrades, buffers, compresses everything, cuts idle
//! upstreams after 5 s), and connections cut mid-stream while messages flow.
//!
//! The forward-proxy scenario (tinyproxy under the README walkthrough) lives with
//! the walkthrough in `walkthrough.rs`.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::helpers::{
    ResumingEvents, SseEvent, TempDir, TestApp, free_port, spawn_app_with, user_at, wait_for_port,
};
use crate::relay::Relay;

/// The proxy's idle timeout for a response from upstream (`proxy_read_timeout`).
const NGINX_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// nginx of the test's own: foreground, its own prefix directory and
/// configuration, a free loopback port; killed by PID when dropped.
struct Nginx {
    child: Child,
    base: String,
    _dir: TempDir,
}

impl Nginx {
    /// A reverse proxy to `upstream` configured the way hostile networks are.
    async fn hostile(upstream: std::net::SocketAddr) -> Self {
        let locations = format!(
            r#"
    location / {{
      # No WebSockets here.
      if ($http_upgrade) {{ return 403; }}
      proxy_pass http://{upstream};
      # Buffering stays on (the default); idle upstreams are cut after 5 s.
      proxy_read_timeout 5s;
    }}"#
        );
        Self::start(&locations).await
    }

    /// The configuration `docs/proxies.md` recommends, as it stands there, in
    /// front of `upstream` (and inside the same hostile `http` settings).
    async fn documented(upstream: std::net::SocketAddr) -> Self {
        let doc = include_str!("../../docs/proxies.md");
        let block = doc
            .split("<!-- nginx:start -->")
            .nth(1)
            .and_then(|rest| rest.split("<!-- nginx:end -->").next())
            .expect("docs/proxies.md has the nginx block between its markers");
        let locations = block
            .trim()
            .trim_start_matches("```nginx")
            .trim_end_matches("```")
            .replace("127.0.0.1:3000", &upstream.to_string());
        Self::start(&locations).await
    }

    /// nginx with `locations` inside its one `server` block.
    async fn start(locations: &str) -> Self {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("nginx is missing: `scripts/test` installs the Debian package nginx-light");
        let dir = TempDir::new("nginx");
        let port = free_port();
        let prefix = dir.path().display();
        let config = format!(
            r#"
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  # Compress every type, for every client that accepts it.
  gzip on;
  gzip_types *;
  gzip_min_length 1;
  gzip_proxied any;
  server {{
    listen 127.0.0.1:{port};
{locations}
  }}
}}
"#
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start nginx");
        assert!(
            wait_for_port(port, Duration::from_secs(10)).await,
            "nginx did not start listening:\n{}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
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
            keepalives += frame
                .comments
                .iter()
                .filter(|c| c.trim() == "keep-alive")
                .count();
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
        "a keep-alive every 2 s: {keepalives} in 20 s"
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
    // Arrange
    let app = spawn_app_with(&[]).await;
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

/// The nginx configuration in `docs/proxies.md` works as written: a browser's
/// form post passes the Origin check, events arrive at once, and an idle stream
/// with the default keep-alive stays open for 20 s.
#[tokio::test]
async fn the_documented_nginx_configuration_works() {
    // Arrange
    let app = spawn_app_with(&[]).await;
    let nginx = Nginx::documented(app.addr).await;
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

    // Assert
    assert_eq!(
        browser_post.status(),
        StatusCode::NO_CONTENT,
        "Host reaches the server"
    );
    let event = events.next_message().await;
    assert_eq!(event.text(), "from the browser");
    assert!(
        posted.elapsed() < Duration::from_secs(1),
        "took {:?}",
        posted.elapsed()
    );
}

/// Behind a proxy that rewrites `Host`, a post whose `Origin` matches the
/// `X-Forwarded-Host` the proxy adds is accepted; another origin is still refused.
#[tokio::test]
async fn the_forwarded_host_counts_as_our_own_origin() {
    // Arrange
    let app = spawn_app_with(&[]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let post = |origin: &'static str| {
        alice
            .post_request(&format!("/rooms/{code}/messages"), &[("message", "hi")])
            .header("origin", origin)
            .header("x-forwarded-host", "chat.example")
            .send()
    };

    // Act
    let ours = post("https://chat.example").await.expect("post");
    let theirs = post("https://evil.example").await.expect("post");

    // Assert
    assert_eq!(ours.status(), StatusCode::NO_CONTENT);
    assert_eq!(theirs.status(), StatusCode::FORBIDDEN);
}

/// The one-line deployment check in `docs/proxies.md` shows what the document
/// promises for a healthy deployment: the `retry:` hint and the probe's `join`
/// at once, then keep-alives.
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
    assert!(shown.matches(": keep-alive").count() >= 2, "{shown}");
}
