//! A client that opens HTTP/2 and reads nothing (a receive window of 0) cannot
//! pin the server's memory: streams per connection are few, a stream whose
//! window stays shut for `--send-timeout` is reset, what responses hold unsent
//! is bounded per connection and per address, memory returns once the attack
//! ends; and an HTTP/2 connection with no open stream is closed after
//! `--request-timeout`, while one with an event stream is kept.
//!
//! The attacker is the `h2` crate's client over cleartext HTTP/2 with prior
//! knowledge, its `SETTINGS_INITIAL_WINDOW_SIZE` 0, never releasing capacity.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use h2::Reason;
use h2::client::SendRequest;
use reqwest::StatusCode;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use crate::helpers::{PATIENCE, RunningServer, User, next_loopback_address, spawn_app_with};

/// Most streams the server lets one HTTP/2 connection open at once.
const MAX_STREAMS: usize = 48;

/// The room page that costs the most memory: 100 messages of 2,000 `=`, which
/// the page escapes to `&#x3D;` (1.2 MB).
const HEAVY_MESSAGES: usize = 100;
const HEAVY_CHARS: usize = 2_000;

/// The backlog bounds (`src/backlog.rs`).
const PER_CONNECTION: usize = 4 * 1024 * 1024;
const PER_ADDRESS: usize = 16 * 1024 * 1024;

/// One HTTP/2 connection (cleartext, prior knowledge) from a loopback address.
struct H2c {
    send: SendRequest<Bytes>,
    /// The connection's task: it ends when the server closes the connection.
    connection: JoinHandle<Result<(), h2::Error>>,
    authority: String,
}

impl H2c {
    /// Connects from `from`; with `shut`, the client's receive window is 0 and
    /// the server can send no body at all.
    async fn connect(to: SocketAddr, from: IpAddr, shut: bool) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(from, 0))
            .expect("bind a loopback address");
        let tcp: TcpStream = timeout(PATIENCE, socket.connect(to))
            .await
            .expect("connects in time")
            .expect("connect");
        let mut builder = h2::client::Builder::new();
        if shut {
            builder.initial_window_size(0);
        }
        let (send, connection) = timeout(PATIENCE, builder.handshake::<_, Bytes>(tcp))
            .await
            .expect("handshake in time")
            .expect("HTTP/2 handshake");
        Self {
            send,
            connection: tokio::spawn(connection),
            authority: to.to_string(),
        }
    }

    /// Starts `GET path` (as the member with `cookie`, if any).
    async fn start(&mut self, path: &str, cookie: Option<&str>) -> h2::client::ResponseFuture {
        let mut request = warp::http::Request::get(format!("http://{}{path}", self.authority));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let request = request.body(()).expect("request");
        let send = timeout(PATIENCE, self.send.clone().ready())
            .await
            .expect("room for one more stream in time")
            .expect("connection open");
        self.send = send;
        let (response, _) = self.send.send_request(request, true).expect("send request");
        response
    }

    /// `GET path` up to its response's head.
    async fn get(
        &mut self,
        path: &str,
        cookie: Option<&str>,
    ) -> warp::http::Response<h2::RecvStream> {
        let response = self.start(path, cookie).await;
        timeout(PATIENCE, response)
            .await
            .expect("response head in time")
            .expect("response head")
    }

    /// Whether the server closed the connection within `within`.
    async fn closed_within(&mut self, within: Duration) -> bool {
        timeout(within, &mut self.connection).await.is_ok()
    }
}

/// A room whose page is the largest there is; its member and code.
async fn heavy_room(user: &mut User) -> String {
    let code = user.create_room_ok("alice").await;
    let text = "=".repeat(HEAVY_CHARS);
    for _ in 0..HEAVY_MESSAGES {
        user.say(&code, &text).await;
    }
    code
}

/// Options that let one member post the heavy room's messages at once, and
/// ask for its page as often as the attack does (the bound under test here is
/// the backlog's, not the per-member page rate's).
const FAST_POSTING: [&str; 6] = [
    "--message-rate",
    "1000/s",
    "--message-burst",
    "200",
    "--page-burst",
    "100000",
];

/// A stream whose window stays shut is reset (`CANCEL`) within the send timeout; the connection goes on.
#[tokio::test]
async fn a_stream_whose_window_stays_shut_is_reset_after_the_send_timeout() {
    // Arrange
    let app = spawn_app_with(&["--send-timeout", "1"]).await;
    let mut attacker = H2c::connect(app.addr, next_loopback_address(), true).await;
    let started = Instant::now();
    let response = attacker.get("/", None).await;
    assert_eq!(response.status(), StatusCode::OK, "the head is sent");
    let mut body = response.into_body();

    // Act
    let ended = timeout(Duration::from_secs(4), body.data()).await;

    // Assert
    let error = match ended {
        Ok(Some(Err(error))) => error,
        other => panic!("the stream was not reset within 4 s: {other:?}"),
    };
    assert_eq!(error.reason(), Some(Reason::CANCEL), "{error}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before the send timeout: {:?}",
        started.elapsed()
    );
    let again = attacker.get("/", None).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "the connection still serves"
    );
}

/// One connection gets at most 48 streams at once: the 49th waits until one of them ends.
#[tokio::test]
async fn stream_forty_nine_on_one_connection_waits_for_a_free_one() {
    // Arrange
    let app = spawn_app_with(&[]).await;
    let mut attacker = H2c::connect(app.addr, next_loopback_address(), true).await;
    let first = attacker.get("/", None).await;
    assert_eq!(
        attacker.send.current_max_send_streams(),
        MAX_STREAMS,
        "the server's SETTINGS_MAX_CONCURRENT_STREAMS"
    );
    let mut held = vec![first];
    for _ in 1..MAX_STREAMS {
        held.push(attacker.get("/", None).await);
    }

    // Act
    let mut last = attacker.start("/", None).await;
    let early = timeout(Duration::from_millis(800), &mut last).await;
    drop(held.pop());
    let late = timeout(PATIENCE, last).await;

    // Assert
    assert!(early.is_err(), "stream 49 was answered while 48 were open");
    let late = late
        .expect("stream 49 answered once one ended")
        .expect("head");
    assert_eq!(late.status(), StatusCode::OK);
}

/// Unread pages are bounded: per connection (the 4th heavy page is refused) and per address (over connections).
#[tokio::test]
async fn unread_pages_are_bounded_per_connection_and_per_address() {
    // Arrange
    let app = spawn_app_with(&FAST_POSTING).await;
    let mut alice = app.user();
    let code = heavy_room(&mut alice).await;
    let cookie = alice.cookie.clone().expect("alice's cookie");
    let page = alice.get(&format!("/rooms/{code}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let size = page.bytes().await.expect("the page").len();
    assert!(size > 1_000_000, "the heavy page is {size} bytes");
    let path = format!("/rooms/{code}");
    let from = next_loopback_address();

    // Act
    let mut statuses = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..6 {
        let mut attacker = H2c::connect(app.addr, from, true).await;
        let mut answers = Vec::new();
        for _ in 0..4 {
            answers.push(attacker.get(&path, Some(&cookie)).await);
        }
        statuses.push(answers.iter().map(|r| r.status()).collect::<Vec<_>>());
        connections.push((attacker, answers));
    }
    let elsewhere = H2c::connect(app.addr, next_loopback_address(), true)
        .await
        .get(&path, Some(&cookie))
        .await;

    // Assert
    let fit_connection = PER_CONNECTION / size;
    let fit_address = PER_ADDRESS / size;
    let refused = connections[0].1[fit_connection]
        .headers()
        .get("retry-after");
    assert!(refused.is_some(), "a refusal says when to try again");
    let served: usize = statuses
        .iter()
        .flatten()
        .filter(|s| **s == StatusCode::OK)
        .count();
    assert_eq!(
        statuses[0][fit_connection],
        StatusCode::TOO_MANY_REQUESTS,
        "page {} on one connection: {statuses:?}",
        fit_connection + 1
    );
    assert_eq!(
        served, fit_address,
        "pages held for one address: {statuses:?}"
    );
    assert_eq!(
        elsewhere.status(),
        StatusCode::OK,
        "another address is served"
    );
}

/// An HTTP/2 connection with no open stream gets GOAWAY and is closed after the request timeout.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_request_timeout() {
    // Arrange
    let app = spawn_app_with(&["--request-timeout", "1"]).await;
    let mut client = H2c::connect(app.addr, next_loopback_address(), false).await;
    let response = client.get("/", None).await;
    let mut body = response.into_body();
    while let Some(chunk) = timeout(PATIENCE, body.data()).await.expect("body in time") {
        chunk.expect("body");
    }
    let idle_from = Instant::now();

    // Act
    let closed = client.closed_within(Duration::from_secs(4)).await;

    // Assert
    assert!(closed, "the idle connection is still open after 4 s");
    assert!(
        idle_from.elapsed() >= Duration::from_millis(900),
        "not before the request timeout: {:?}",
        idle_from.elapsed()
    );
}

/// A connection whose only stream is an open event stream is not idle: it stays, and the stream still delivers, while an idle one beside it is closed.
#[tokio::test]
async fn an_http2_connection_with_an_event_stream_is_not_idle() {
    // Arrange
    let app = spawn_app_with(&["--request-timeout", "1"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let cookie = alice.cookie.clone().expect("alice's cookie");
    let mut client = H2c::connect(app.addr, next_loopback_address(), false).await;
    let mut idle = H2c::connect(app.addr, next_loopback_address(), false).await;
    let response = client
        .get(&format!("/rooms/{code}/events"), Some(&cookie))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut events = response.into_body();

    // Act
    let idle_closed = idle.closed_within(Duration::from_secs(3)).await;
    let closed = client.closed_within(Duration::from_secs(1)).await;
    alice.say(&code, "still here").await;

    // Assert
    assert!(idle_closed, "the idle connection beside it is closed");
    assert!(
        !closed,
        "a connection with an open stream was closed as idle"
    );
    let mut seen = String::new();
    let deadline = Instant::now() + PATIENCE;
    while !seen.contains("still here") {
        let chunk = tokio::time::timeout_at(deadline, events.data())
            .await
            .expect("the message in time")
            .expect("the stream is open")
            .expect("data");
        let _ = events.flow_control().release_capacity(chunk.len());
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Resident memory of a process, in KiB (`VmRSS` of `/proc/PID/status`).
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Connections and requests of the memory attack: from each of `ADDRESSES`
/// addresses, `CONNECTIONS` connections each asking for the heavy page as
/// often as it has streams.
const ADDRESSES: usize = 2;
const CONNECTIONS: usize = 4;

/// The attack of issue 21 on the real binary, started as an operator would
/// (nothing set in its environment: it fixes glibc's mmap threshold itself,
/// see `allocator.rs`): every stream is reset, RSS during it is bounded, and
/// after it returns to within 20% of before.
#[tokio::test]
async fn memory_pinned_by_shut_windows_is_bounded_and_returns() {
    // Arrange
    let mut args = vec!["--send-timeout", "3"];
    args.extend_from_slice(&FAST_POSTING);
    let server = RunningServer::start(&args).await;
    let pid = server.pid().expect("running");
    let mut alice = server.user();
    let code = heavy_room(&mut alice).await;
    let cookie = alice.cookie.clone().expect("alice's cookie");
    let path = format!("/rooms/{code}");
    for _ in 0..3 {
        let page = alice.get(&path).await;
        assert_eq!(page.status(), StatusCode::OK);
        page.bytes().await.expect("the page");
    }
    let before = resident_kib(pid);

    // Act
    let mut attackers = Vec::new();
    let mut served = 0;
    for _ in 0..ADDRESSES {
        let from = next_loopback_address();
        for _ in 0..CONNECTIONS {
            let mut attacker = H2c::connect(server.addr, from, true).await;
            let mut answers = Vec::new();
            for _ in 0..MAX_STREAMS {
                let answer = attacker.get(&path, Some(&cookie)).await;
                served += usize::from(answer.status() == StatusCode::OK);
                answers.push(answer);
            }
            attackers.push((attacker, answers));
        }
    }
    let during = resident_kib(pid);
    // The server resets every stream after the send timeout.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut reset = 0;
    for (_, answers) in &mut attackers {
        for answer in answers.iter_mut() {
            let ended = tokio::time::timeout_at(deadline, answer.body_mut().data()).await;
            reset += usize::from(matches!(ended, Ok(Some(Err(_)))));
        }
    }
    drop(attackers);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = resident_kib(pid);

    // Assert
    println!(
        "h2 pin probe: {ADDRESSES} addresses x {CONNECTIONS} connections x {MAX_STREAMS} \
         streams asking for a {HEAVY_MESSAGES} x {HEAVY_CHARS} '=' page: {served} served, \
         {reset} reset; VmRSS before {before} KiB, during {during} KiB, after {after} KiB"
    );
    assert_eq!(
        reset,
        ADDRESSES * CONNECTIONS * MAX_STREAMS,
        "every stream was reset"
    );
    let bound_kib = (ADDRESSES * PER_ADDRESS / 1024) as u64;
    assert!(
        during <= before + 2 * bound_kib,
        "during the attack: {during} KiB, before {before} KiB"
    );
    assert!(
        after * 10 <= before * 12,
        "after the attack {after} KiB, more than 20% over {before} KiB"
    );
}
