//! Starts the real server on port 0 and talks to it like its users do.
//!
//! `TestApp` is one running server; `User` is one cookie jar (a browser, a curl
//! user); `Events` reads one `text/event-stream` response frame by frame, with a
//! timeout on every read so that a bug fails fast instead of hanging.
//!
//! With `CHAT_TEST_REDIS=1` (scripts/test's second run) every `TestApp` is two
//! instances sharing a `redis-server` of its own, behind a round-robin relay:
//! the same tests then check the contract against the Redis room store.
//!
//! Also the small things several test files need: [`TempDir`], free loopback
//! ports, and the server binary as a child process.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chat_live_room::Config;
use chat_live_room::rooms::shared::RedisAddress;
use clap::Parser;
use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, HeaderValue, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::redis::RedisServer;

/// Longest wait for anything the server should do promptly.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// What a browser sends as `Accept` when it navigates or posts a form.
pub const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

pub struct TestApp {
    /// Where clients connect: the server, or (with `CHAT_TEST_REDIS=1`) the
    /// round-robin relay in front of its two instances.
    pub addr: SocketAddr,
    /// The instances' own addresses: one, or two behind the relay at `addr`.
    pub instances: Vec<SocketAddr>,
    /// Tells each instance to shut down.
    shutdown: Vec<oneshot::Sender<()>>,
    /// Each instance's server task.
    servers: Vec<JoinHandle<()>>,
    /// The round-robin relay's accept loop, in Redis mode.
    relay: Option<JoinHandle<()>>,
    /// The Redis the instances share, in Redis mode; it stops when the app is dropped.
    redis: Option<RedisServer>,
}

/// Whether the tests run in Redis mode (`CHAT_TEST_REDIS=1`): every
/// [`spawn_app_with`] then starts two instances sharing a Redis of their own,
/// behind a round-robin relay, so that the core contract is checked against
/// the shared store as well as the in-memory one.
pub fn redis_mode() -> bool {
    std::env::var("CHAT_TEST_REDIS").is_ok_and(|value| value == "1")
}

/// Starts the server with the default options except `--bind 127.0.0.1:0`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the server with extra command-line options, e.g. `["--grace", "0"]`
/// (in Redis mode, two instances with them: see [`spawn_app_configured`]).
pub async fn spawn_app_with(args: &[&str]) -> TestApp {
    let mut argv = vec!["chat-live-room", "--bind", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    let config = Config::try_parse_from(argv).expect("valid test options");
    spawn_app_configured(config).await
}

/// Starts the server on 127.0.0.1 port 0 with an already parsed configuration
/// (its `--bind` is not used). In Redis mode, two instances with it, plus a
/// Redis of their own (`--redis`) and one random `--secret` (unless it has
/// one), behind a round-robin relay.
pub async fn spawn_app_configured(config: Config) -> TestApp {
    if redis_mode() {
        return spawn_redis_pair(config).await;
    }
    let (addr, shutdown, server) = spawn_instance(config).await;
    TestApp::one_instance(addr, shutdown, server)
}

/// Starts the server on IPv6 loopback, `[::1]` port 0, with extra options:
/// one instance, in Redis mode too. `None` when this machine has no IPv6
/// loopback.
pub async fn spawn_app_on_ipv6_loopback(args: &[&str]) -> Option<TestApp> {
    let listener = TcpListener::bind("[::1]:0").await.ok()?;
    let mut argv = vec!["chat-live-room", "--bind", "[::1]:0"];
    argv.extend_from_slice(args);
    let config = Config::try_parse_from(argv).expect("valid test options");
    let (addr, shutdown, server) = serve_instance(listener, config);
    Some(TestApp::one_instance(addr, shutdown, server))
}

/// One in-process server on 127.0.0.1 port 0: its address, the way to stop
/// it, and its task.
async fn spawn_instance(config: Config) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    serve_instance(listener, config)
}

/// One in-process server on `listener`: its address, the way to stop it, and
/// its task.
fn serve_instance(
    listener: TcpListener,
    mut config: Config,
) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    // Nothing a test runs writes into the checkout (the default data directory
    // is under the working directory): in-process servers keep nothing.
    config.storage.ephemeral = true;
    let addr = listener.local_addr().expect("local address");
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(chat_live_room::run(listener, config, async {
        let _ = stop.await;
    }));
    (addr, shutdown, server)
}

/// Redis mode: a Redis of this app's own, two instances of `config` sharing
/// it and one secret, and a round-robin relay in front.
async fn spawn_redis_pair(config: Config) -> TestApp {
    spawn_pair_on(RedisServer::start().await, config).await
}

/// Two instances with extra options sharing `redis` (a secured one too: its
/// URL carries the user and password, and `--redis-ca` its CA), behind a
/// round-robin relay, in either mode.
pub async fn spawn_app_on_redis(redis: RedisServer, args: &[&str]) -> TestApp {
    let url = redis.url();
    let ca = redis.ca_file();
    let ca = ca.to_str().expect("a UTF-8 temporary path");
    let secret = random_secret();
    let mut argv = vec!["chat-live-room", "--bind", "127.0.0.1:0", "--redis", &url];
    argv.extend_from_slice(&["--secret", &secret]);
    if redis.is_secured() {
        argv.extend_from_slice(&["--redis-ca", ca]);
    }
    argv.extend_from_slice(args);
    let config = Config::try_parse_from(argv).expect("valid test options");
    spawn_pair_on(redis, config).await
}

/// Two instances of `config` sharing `redis` and one secret, behind a
/// round-robin relay.
async fn spawn_pair_on(redis: RedisServer, mut config: Config) -> TestApp {
    config.redis = Some(RedisAddress::parse(&redis.url()).expect("the test's Redis URL"));
    config.secret.get_or_insert_with(random_secret);
    let mut instances = Vec::new();
    let mut shutdown = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let (addr, stop, server) = spawn_instance(config.clone()).await;
        instances.push(addr);
        shutdown.push(stop);
        servers.push(server);
    }
    let (addr, relay) = round_robin_relay(instances.clone()).await;
    TestApp {
        addr,
        instances,
        shutdown,
        servers,
        relay: Some(relay),
        redis: Some(redis),
    }
}

/// 32 random hex digits, for a `--secret` the instances of one test share.
pub fn random_secret() -> String {
    (0..32)
        .map(|_| char::from_digit(rand::random_range(0..16), 16).expect("a hex digit"))
        .collect()
}

/// A TCP relay on 127.0.0.1 port 0 that hands each connection to the next of
/// `targets` in turn, as a round-robin load balancer without sticky sessions
/// does. It connects from the client's own source address, so that the
/// servers' per-address limits still tell the tests' users apart. Its address,
/// and its accept loop (abort it to stop accepting).
pub async fn round_robin_relay(targets: Vec<SocketAddr>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the relay");
    let addr = listener.local_addr().expect("relay address");
    let accepting = tokio::spawn(async move {
        for turn in 0.. {
            let Ok((inbound, client)) = listener.accept().await else {
                return;
            };
            let target = targets[turn % targets.len()];
            tokio::spawn(async move {
                let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                    return;
                };
                if socket.bind(SocketAddr::new(client.ip(), 0)).is_err() {
                    return;
                }
                let Ok(outbound) = socket.connect(target).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                relay_both_ways(inbound, outbound).await;
            });
        }
    });
    (addr, accepting)
}

/// Copies each direction on its own until it ends, passing each end's FIN on
/// to the other. A server that answers early and closes (a refusal of a
/// request it did not read in full) resets the relay's connection to it: what
/// the server sent still reaches the client, and what the client still sends
/// is read and dropped, as the server's own kernel would, so that the client
/// gets the answer as it would without the relay.
async fn relay_both_ways(inbound: tokio::net::TcpStream, outbound: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;

    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_server, mut to_server) = outbound.into_split();
    let up = async {
        if tokio::io::copy(&mut from_client, &mut to_server)
            .await
            .is_err()
        {
            let _ = tokio::io::copy(&mut from_client, &mut tokio::io::sink()).await;
        }
        let _ = to_server.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(up, down);
}

impl TestApp {
    /// One instance of the server, without Redis or a relay in front.
    fn one_instance(
        addr: SocketAddr,
        shutdown: oneshot::Sender<()>,
        server: JoinHandle<()>,
    ) -> Self {
        Self {
            addr,
            instances: vec![addr],
            shutdown: vec![shutdown],
            servers: vec![server],
            relay: None,
            redis: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new visitor with an empty cookie jar, from a loopback address of their own.
    pub fn user(&self) -> User {
        user_at(&self.url(""))
    }

    /// A new visitor with an empty cookie jar, from the loopback address `from`
    /// (several users from one address: one household, one attacker).
    pub fn user_from(&self, from: IpAddr) -> User {
        user_at_from(&self.url(""), from)
    }

    /// A user who created a room under `name`, and the room's code.
    pub async fn user_in_new_room(&self, name: &str) -> (User, String) {
        let mut user = self.user();
        let code = user.create_room_ok(name).await;
        (user, code)
    }

    /// A user who joined room `code` as `name`.
    pub async fn user_joined(&self, code: &str, name: &str) -> User {
        let mut user = self.user();
        let response = user.join(name, code).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "join {code} as {name}"
        );
        user
    }

    /// Starts graceful shutdown of every instance and waits (bounded) for
    /// their server tasks to end.
    pub async fn shut_down(mut self) {
        for shutdown in self.shutdown.drain(..) {
            let _ = shutdown.send(());
        }
        for server in std::mem::take(&mut self.servers) {
            tokio::time::timeout(PATIENCE, server)
                .await
                .expect("the server stops within the patience period")
                .expect("the server task does not panic");
        }
        if let Some(relay) = self.relay.take() {
            relay.abort();
        }
    }

    /// The Redis the instances share, in Redis mode.
    pub fn redis(&self) -> Option<&RedisServer> {
        self.redis.as_ref()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for shutdown in self.shutdown.drain(..) {
            let _ = shutdown.send(());
        }
        if let Some(relay) = self.relay.take() {
            relay.abort();
        }
    }
}

/// Alice in a new room and streaming, then bob joined (alice's stream has seen
/// his join) and streaming too.
pub async fn alice_and_bob_streaming(app: &TestApp) -> (String, User, Events, User, Events) {
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let bob = app.user_joined(&code, "bob").await;
    alice_events.expect_event("join", "bob").await;
    let bob_events = bob.open_events(&code).await;
    (code, alice, alice_events, bob, bob_events)
}

/// A new visitor reaching the server at `base` (e.g. through a proxy), from a
/// loopback address of their own.
pub fn user_at(base: &str) -> User {
    user_at_from(base, next_loopback_address())
}

/// A new visitor reaching the server at `base` from the loopback address `from`
/// (`127.0.0.1` for one that shares the address of curl and the proxies).
pub fn user_at_from(base: &str, from: IpAddr) -> User {
    User {
        base: base.trim_end_matches('/').to_owned(),
        client: client(from),
        cookie: None,
        from,
    }
}

/// A different loopback address each time (`127.0.x.y`): every person in a test
/// comes from an address of their own, as people do, so the per-address limits
/// count each of them apart. The whole of 127.0.0.0/8 reaches this machine.
pub fn next_loopback_address() -> IpAddr {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % (250 * 250);
    IpAddr::from([127, 0, (n / 250 + 1) as u8, (n % 250 + 1) as u8])
}

fn client(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .local_address(from)
        .build()
        .expect("http client")
}

/// One person: a cookie jar of one cookie, and requests shaped like curl's
/// (`Accept: */*`) unless a test asks for a browser's.
pub struct User {
    base: String,
    client: reqwest::Client,
    /// `name=value` of the session cookie, once the server set one.
    pub cookie: Option<String>,
    /// The loopback address this user's requests come from.
    pub from: IpAddr,
}

impl User {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn remember_cookie(&mut self, response: &Response) {
        if let Some(set) = response.headers().get(SET_COOKIE) {
            let set = set.to_str().expect("ascii cookie");
            let pair = set.split(';').next().expect("name=value");
            self.cookie = Some(pair.to_owned());
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.request_accepting(method, path, "*/*")
    }

    /// `.header(ACCEPT, ..)` on the builder would add a second `Accept`; the
    /// one sent is chosen here.
    fn request_accepting(
        &self,
        method: reqwest::Method,
        path: &str,
        accept: &str,
    ) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(method, self.url(path))
            .header(ACCEPT, accept);
        match &self.cookie {
            Some(cookie) => request.header(COOKIE, cookie),
            None => request,
        }
    }

    pub fn get_request(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    /// A form post; `fields` are URL-encoded in order.
    pub fn post_request(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.request(reqwest::Method::POST, path)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.get_request(path).send().await.expect("GET")
    }

    pub async fn get_as_browser(&self, path: &str) -> Response {
        self.request_accepting(reqwest::Method::GET, path, BROWSER_ACCEPT)
            .send()
            .await
            .expect("GET")
    }

    pub async fn create_room(&mut self, name: &str) -> Response {
        let response = self
            .post_request("/rooms", &[("name", name)])
            .send()
            .await
            .expect("POST /rooms");
        self.remember_cookie(&response);
        response
    }

    /// Creates a room and returns its code, asserting the `303` to `/rooms/{CODE}`.
    pub async fn create_room_ok(&mut self, name: &str) -> String {
        let response = self.create_room(name).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let code = room_code(&response);
        assert_eq!(code.len(), 4);
        assert!(code.chars().all(|c| c.is_ascii_uppercase()), "{code}");
        code
    }

    pub async fn join(&mut self, name: &str, code: &str) -> Response {
        let response = self
            .post_request("/join", &[("name", name), ("code", code)])
            .send()
            .await
            .expect("POST /join");
        self.remember_cookie(&response);
        response
    }

    pub async fn post_message(&self, code: &str, text: &str) -> Response {
        self.post_request(&format!("/rooms/{code}/messages"), &[("message", text)])
            .send()
            .await
            .expect("POST message")
    }

    /// Posts a message and asserts it was accepted.
    pub async fn say(&self, code: &str, text: &str) {
        let response = self.post_message(code, text).await;
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "posting {text:?}"
        );
    }

    /// The names in the room's presence list, in the order they joined.
    pub async fn members(&self, code: &str) -> Vec<String> {
        self.presence(code)
            .await
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// The room's presence list: each member's name and whether they have a
    /// stream open.
    pub async fn presence(&self, code: &str) -> Vec<(String, bool)> {
        let response = self.get(&format!("/rooms/{code}/members")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let list: Vec<Value> = response.json().await.expect("JSON list of members");
        list.iter()
            .map(|member| {
                let name = member["name"].as_str().expect("a name").to_owned();
                let connected = member["connected"].as_bool().expect("connected or not");
                (name, connected)
            })
            .collect()
    }

    /// Opens the room's event stream and asserts it started.
    pub async fn open_events(&self, code: &str) -> Events {
        self.open_events_with(code, None).await
    }

    /// Opens the event stream resuming after `last_event_id` (the header a
    /// reconnecting `EventSource` sends).
    pub async fn open_events_after(&self, code: &str, last_event_id: u64) -> Events {
        self.open_events_with(code, Some(last_event_id)).await
    }

    /// Like [`User::open_events_after`], but a refusal or a network error is
    /// returned instead of failing the test (a reconnecting client retries).
    pub async fn try_open_events(
        &self,
        code: &str,
        last_event_id: Option<u64>,
    ) -> Result<Events, String> {
        let path = format!("/rooms/{code}/events");
        let mut request = self.request_accepting(reqwest::Method::GET, &path, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        match tokio::time::timeout(PATIENCE, request.send()).await {
            Ok(Ok(response)) if response.status() == StatusCode::OK => Ok(Events::new(response)),
            Ok(Ok(response)) => Err(format!("status {}", response.status())),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("no answer".to_owned()),
        }
    }

    /// Opens the stream of `code` (resuming after `last_event_id`) on a client
    /// of its own, without the 30 s limit the user's client puts on a whole
    /// request, body included: for streams that must outlive a minute moved
    /// on a paused clock, or a crashed instance's lease.
    pub async fn open_long_events(&self, code: &str, last_event_id: Option<u64>) -> Events {
        let client = reqwest::Client::builder()
            .local_address(self.from)
            .build()
            .expect("http client");
        let mut request = client
            .get(self.url(&format!("/rooms/{code}/events")))
            .header(ACCEPT, "text/event-stream")
            .header(COOKIE, self.cookie.as_deref().expect("a session cookie"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = tokio::time::timeout(PATIENCE, request.send())
            .await
            .expect("the stream answers promptly")
            .expect("GET events");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "opening the stream of {code} at {}",
            self.url("")
        );
        Events::new(response)
    }

    async fn open_events_with(&self, code: &str, last_event_id: Option<u64>) -> Events {
        let path = format!("/rooms/{code}/events");
        let mut request = self.request_accepting(reqwest::Method::GET, &path, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = tokio::time::timeout(PATIENCE, request.send())
            .await
            .expect("the stream answers promptly")
            .expect("GET events");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "opening the event stream of {code}"
        );
        Events::new(response)
    }
}

/// Sends `request` with a browser's `Accept` header instead of curl's
/// (`.header()` on the builder would add a second one).
pub async fn send_as_browser(request: reqwest::RequestBuilder) -> Response {
    let (client, request) = request.build_split();
    let mut request = request.expect("a request");
    request
        .headers_mut()
        .insert(ACCEPT, HeaderValue::from_static(BROWSER_ACCEPT));
    client.execute(request).await.expect("request")
}

/// `name=value` of the session cookie a response sets.
pub fn session_cookie(response: &Response) -> String {
    response
        .headers()
        .get(SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .expect("ascii cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned()
}

/// A well-formed four-letter code that is none of `taken` (the codes of the
/// open rooms), so no open room uses it.
pub fn unused_code(taken: &[&str]) -> String {
    ["ZZZZ", "YYYY", "XXXX"]
        .into_iter()
        .find(|code| !taken.contains(code))
        .expect("a free code")
        .to_owned()
}

/// The room code of a redirect to `/rooms/{CODE}`.
pub fn room_code(response: &Response) -> String {
    location(response)
        .strip_prefix("/rooms/")
        .expect("redirect to the room")
        .to_owned()
}

/// `Location` header of a redirect.
pub fn location(response: &Response) -> String {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("a Location header")
        .to_str()
        .expect("ascii location")
        .to_owned()
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// One SSE frame: its fields, in order, and its raw text.
#[derive(Debug, Clone)]
pub struct Frame {
    pub raw: String,
    pub id: Option<u64>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<u64>,
    /// Comment lines (after the `:`), e.g. ` keep-alive`.
    pub comments: Vec<String>,
}

impl Frame {
    /// The stream's own `hello` or `heartbeat`, not an event of the room.
    pub fn is_signal(&self) -> bool {
        matches!(self.event.as_deref(), Some("hello" | "heartbeat"))
    }
}

/// An event frame (one with `event:` and `data:`), its data parsed as JSON.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub event: String,
    pub data: Value,
}

impl SseEvent {
    pub fn text(&self) -> &str {
        self.data["text"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.data["name"].as_str().unwrap_or("")
    }
}

pub struct Events {
    response: Response,
    buffer: String,
    /// The start of a character a chunk ended in the middle of.
    partial: Vec<u8>,
    ended: bool,
}

impl Events {
    pub fn new(response: Response) -> Self {
        Self {
            response,
            buffer: String::new(),
            partial: Vec::new(),
            ended: false,
        }
    }

    pub fn headers(&self) -> &reqwest::header::HeaderMap {
        self.response.headers()
    }

    /// The next frame, waiting at most `wait`; `None` if the stream ended or
    /// nothing came in time.
    pub async fn next_frame_within(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                return Some(parse_frame(raw));
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(chunk))) => {
                    self.partial.extend_from_slice(&chunk);
                    let whole = match std::str::from_utf8(&self.partial) {
                        Ok(text) => text.len(),
                        Err(error) if error.error_len().is_none() => error.valid_up_to(),
                        Err(error) => panic!("a utf-8 stream: {error}"),
                    };
                    let rest = self.partial.split_off(whole);
                    let text = std::mem::replace(&mut self.partial, rest);
                    self.buffer
                        .push_str(std::str::from_utf8(&text).expect("utf-8 up to here"));
                }
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
            }
        }
    }

    /// The next frame; fails the test if none comes within [`PATIENCE`].
    pub async fn next_frame(&mut self) -> Frame {
        self.next_frame_within(PATIENCE)
            .await
            .expect("a frame arrives within the patience period")
    }

    /// The room's next event, skipping comments, `retry:` hints and the
    /// stream's own `hello` and `heartbeat`; fails the test if none comes
    /// within [`PATIENCE`].
    pub async fn next_event(&mut self) -> SseEvent {
        self.next_event_within(PATIENCE)
            .await
            .expect("an event arrives within the patience period")
    }

    pub async fn next_event_within(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next_frame_within(left).await?;
            if let (Some(event), Some(data)) = (frame.event, frame.data) {
                if matches!(event.as_str(), "hello" | "heartbeat") {
                    continue;
                }
                let data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(SseEvent {
                    id: frame.id,
                    event,
                    data,
                });
            }
        }
    }

    /// Reads the next event and asserts it is `kind` by `name`.
    pub async fn expect_event(&mut self, kind: &str, name: &str) -> SseEvent {
        let event = self.next_event().await;
        assert_eq!(
            event.event, kind,
            "expected {kind} by {name}, got {event:?}"
        );
        assert_eq!(
            event.name(),
            name,
            "expected {kind} by {name}, got {event:?}"
        );
        event
    }

    /// Reads the next event and asserts it is a message `text` by `name`.
    pub async fn expect_message(&mut self, name: &str, text: &str) -> SseEvent {
        let event = self.expect_event("message", name).await;
        assert_eq!(event.text(), text, "{event:?}");
        event
    }

    /// Reads events until the next message, skipping notices (joins and
    /// leaves); fails the test if an event does not come within [`PATIENCE`].
    pub async fn next_message(&mut self) -> SseEvent {
        loop {
            let event = self.next_event().await;
            if event.event == "message" {
                return event;
            }
        }
    }

    /// The next `n` events.
    pub async fn next_events(&mut self, n: usize) -> Vec<SseEvent> {
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(self.next_event().await);
        }
        events
    }

    /// Whether the stream has ended (the server or something between closed it).
    pub fn ended(&self) -> bool {
        self.ended && !self.buffer.contains("\n\n")
    }

    /// Waits until the server ends the stream; fails the test if it does not.
    pub async fn expect_end(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self.ended {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => panic!("the stream did not end within the patience period"),
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
            }
        }
    }
}

fn parse_frame(raw: String) -> Frame {
    let mut frame = Frame {
        raw: raw.clone(),
        id: None,
        event: None,
        data: None,
        retry: None,
        comments: Vec::new(),
    };
    for line in raw.lines().filter(|line| !line.is_empty()) {
        if let Some(comment) = line.strip_prefix(':') {
            frame.comments.push(comment.to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => frame.id = Some(value.parse().expect("numeric id")),
            "event" => frame.event = Some(value.to_owned()),
            "data" => {
                assert!(frame.data.is_none(), "one data line per event: {raw:?}");
                frame.data = Some(value.to_owned());
            }
            "retry" => frame.retry = Some(value.parse().expect("numeric retry")),
            other => panic!("unexpected SSE field {other:?} in {raw:?}"),
        }
    }
    frame
}

/// An event stream that reconnects by itself with `Last-Event-ID`, as a browser's
/// `EventSource` does, and counts how often it had to.
pub struct ResumingEvents {
    user: User,
    code: String,
    current: Option<Events>,
    /// Id of the last event received.
    pub last_id: Option<u64>,
    /// Streams opened after the first one.
    pub reconnects: usize,
}

impl ResumingEvents {
    pub async fn open(user: User, code: &str) -> Self {
        let first = user.open_events(code).await;
        Self {
            user,
            code: code.to_owned(),
            current: Some(first),
            last_id: None,
            reconnects: 0,
        }
    }

    /// The next event, reconnecting as often as needed; `None` if nothing came
    /// within `wait`.
    pub async fn next_event_within(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let Some(events) = self.current.as_mut() else {
                match self.user.try_open_events(&self.code, self.last_id).await {
                    Ok(events) => {
                        self.current = Some(events);
                        self.reconnects += 1;
                    }
                    // Like EventSource: wait a moment, then try again.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
                continue;
            };
            match events.next_event_within(left).await {
                Some(event) => {
                    if event.id.is_some() {
                        self.last_id = event.id;
                    }
                    return Some(event);
                }
                None if events.ended() => self.current = None,
                None => return None,
            }
        }
    }

    pub async fn next_event(&mut self) -> SseEvent {
        self.next_event_within(PATIENCE)
            .await
            .expect("an event arrives within the patience period")
    }

    /// Reads events until the next message, skipping notices (joins and
    /// leaves), reconnecting as often as needed.
    pub async fn next_message(&mut self) -> SseEvent {
        loop {
            let event = self.next_event().await;
            if event.event == "message" {
                return event;
            }
        }
    }

    /// The user this stream belongs to.
    pub fn user(&self) -> &User {
        &self.user
    }
}

/// A fresh directory under Cargo's scratch space for tests
/// (`target/tmp`), removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory named after `label`, unique in this test run.
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // Left over from an earlier run whose process had the same id.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port that was free a moment ago, for programs that cannot be given
/// port 0 (nginx, tinyproxy). Drawn below Linux's ephemeral range (32768 and up),
/// so that neither the tests' own client connections nor servers bound to port 0
/// can take it before the program binds it.
pub fn free_port() -> u16 {
    (0..1000)
        .map(|_| rand::random_range(20_000..32_000))
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// Waits until something accepts connections on loopback `port`; whether it
/// did within `within`.
#[must_use = "assert it, with what the failure message should show"]
pub async fn wait_for_port(port: u16, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// The server binary Cargo built for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_chat-live-room");

/// The server binary, isolated from the caller's `CHAT_*` variables, logging
/// with `RUST_LOG={rust_log}`, keeping nothing (`CHAT_EPHEMERAL`: the default
/// data directory is under the working directory, the checkout); killed when
/// dropped. [`server_command_keeping`] gives it a data directory instead.
pub fn server_command(rust_log: &str) -> Command {
    let mut command = Command::new(BINARY);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CHAT_") {
            command.env_remove(&key);
        }
    }
    command
        .env("CHAT_EPHEMERAL", "true")
        .env("RUST_LOG", rust_log)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// [`server_command`] keeping what it keeps in `data_dir` (a test's temporary
/// directory), as a server started without `--ephemeral` does.
pub fn server_command_keeping(rust_log: &str, data_dir: &std::path::Path) -> Command {
    let mut command = server_command(rust_log);
    command
        .env_remove("CHAT_EPHEMERAL")
        .env("CHAT_DATA_DIR", data_dir);
    command
}

/// Runs a command that should finish by itself, bounded by `within`.
pub async fn run_to_end(command: &mut Command, within: Duration) -> std::process::Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server binary");
    tokio::time::timeout(within, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the binary did not exit within {within:?}"))
        .expect("the binary's output")
}

/// Everything a finished binary printed: its standard output, then its
/// standard error.
pub fn said(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// ----- identity helpers -----

/// A response read off a raw connection: what a client that sends odd bytes
/// gets back.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and header lines, as sent.
    pub head: String,
    /// The body, de-chunked if it came chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The value of the first header called `name` (any letter case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field
                .trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl TestApp {
    /// Sends `request` byte for byte on a new connection from loopback address
    /// `from` and reads the response until the server closes the connection (so
    /// the request should say `Connection: close`).
    pub async fn raw_request(&self, from: IpAddr, request: &[u8]) -> RawResponse {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(SocketAddr::new(from, 0))
            .expect("bind the source");
        let mut stream = tokio::time::timeout(PATIENCE, socket.connect(self.addr))
            .await
            .expect("connects promptly")
            .expect("connect");
        // A server that answers early may close before it read everything.
        let _ = stream.write_all(request).await;
        let mut received = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received))
            .await
            .expect("the server answers and closes within the patience period");
        parse_raw_response(&received)
    }
}

fn parse_raw_response(received: &[u8]) -> RawResponse {
    let end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "a whole response head in {:?}",
                String::from_utf8_lossy(received)
            )
        });
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line in {head:?}"));
    let mut response = RawResponse {
        status,
        head,
        body: received[end + 4..].to_vec(),
    };
    if response
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        response.body = dechunk(&response.body);
    }
    response
}

fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = chunked.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&chunked[..line_end])
            .ok()
            .and_then(|size| usize::from_str_radix(size.split(';').next()?.trim(), 16).ok())
            .expect("a chunk size");
        let start = line_end + 2;
        if size == 0 || chunked.len() < start + size {
            break;
        }
        body.extend_from_slice(&chunked[start..start + size]);
        chunked = &chunked[(start + size + 2).min(chunked.len())..];
    }
    body
}

impl User {
    /// A request as this user (their cookie, curl's `Accept`) with any method,
    /// and `content_type` and `body` sent exactly as given.
    pub async fn send_body(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Response {
        let (client, request) = self.request(method, path).build_split();
        let mut request = request.expect("a request");
        if let Some(content_type) = content_type {
            request.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_str(content_type).expect("a content type"),
            );
        }
        *request.body_mut() = Some(body.to_vec().into());
        client.execute(request).await.expect("request")
    }
}

// ----- resilience helpers -----

/// The server binary as a child process on `--bind 127.0.0.1:0`, its output
/// (stdout and stderr) collected; killed when dropped.
pub struct RunningServer {
    child: tokio::process::Child,
    /// The app's address, from its `listening on http://ADDR` line.
    pub addr: SocketAddr,
    /// The metrics address, from its `metrics on http://ADDR/metrics` line, if it
    /// was started with `--metrics-bind`.
    pub metrics_addr: Option<SocketAddr>,
    /// Everything it printed so far, a line each.
    log: std::sync::Arc<std::sync::Mutex<String>>,
    /// Woken at every line printed.
    printed: std::sync::Arc<tokio::sync::Notify>,
}

impl RunningServer {
    /// Starts the binary with `args` (logging at `info`), and waits for the line
    /// naming its address (and the metrics line, with `--metrics-bind`).
    pub async fn start(args: &[&str]) -> Self {
        Self::start_logging("info,warp::server=off", args).await
    }

    /// Like [`RunningServer::start`], but logging with `RUST_LOG={rust_log}`
    /// (`trace`: to show that something is never logged, at any level).
    pub async fn start_logging(rust_log: &str, args: &[&str]) -> Self {
        Self::start_with_env(rust_log, &[], args).await
    }

    /// Like [`RunningServer::start_logging`], with extra environment variables
    /// (the allocator's, for memory measurements).
    pub async fn start_with_env(rust_log: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut command = server_command(rust_log);
        command.envs(env.iter().copied());
        Self::start_command(command, args).await
    }

    /// Starts `command` (from [`server_command`] or [`server_command_keeping`])
    /// with `--bind 127.0.0.1:0` (unless `args` bind elsewhere) and `args`, and
    /// waits for the line naming its address (and the metrics line, with
    /// `--metrics-bind`).
    pub async fn start_command(mut command: Command, args: &[&str]) -> Self {
        if !args.contains(&"--bind") {
            command.args(["--bind", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let printed = std::sync::Arc::new(tokio::sync::Notify::new());
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(collect_output(stdout, log.clone(), printed.clone()));
        tokio::spawn(collect_output(stderr, log.clone(), printed.clone()));
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: None,
            log,
            printed,
        };
        let wait = Duration::from_secs(10);
        server.addr = server
            .logged_address("listening on http://", wait)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no `listening on http://…` line within {wait:?}:\n{}",
                    server.log()
                )
            });
        if args.contains(&"--metrics-bind") {
            server.metrics_addr = Some(
                server
                    .logged_address("metrics on http://", wait)
                    .await
                    .unwrap_or_else(|| {
                        panic!(
                            "no `metrics on http://…` line within {wait:?}:\n{}",
                            server.log()
                        )
                    }),
            );
        }
        server
    }

    /// The address printed right after `prefix` in the log, once it is printed.
    async fn logged_address(&self, prefix: &str, within: Duration) -> Option<SocketAddr> {
        let line = self.wait_for_log(prefix, within).await?;
        let (_, rest) = line.split_once(prefix)?;
        rest.split(['/', ' ', '"'])
            .next()
            .and_then(|addr| addr.trim().parse().ok())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new visitor of this server, from a loopback address of their own.
    pub fn user(&self) -> User {
        user_at(&self.url(""))
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits until a line containing `text` is printed; that line, or `None` if
    /// none came within `within`.
    pub async fn wait_for_log(&self, text: &str, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let printed = self.printed.notified();
            let mut printed = std::pin::pin!(printed);
            printed.as_mut().enable();
            if let Some(line) = self.log().lines().find(|line| line.contains(text)) {
                return Some(line.to_owned());
            }
            tokio::time::timeout_at(deadline, printed).await.ok()?;
        }
    }

    /// Sends `signal` (`TERM`, `INT`) to the process with the `kill` program.
    pub async fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the server is still running");
        let status = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {pid}: {status}");
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM").await;
        match self.exit_within(PATIENCE).await {
            Some(status) => status,
            None => panic!(
                "the server did not exit within {PATIENCE:?} of SIGTERM:\n{}",
                self.log()
            ),
        }
    }

    /// Stops it as an operator would (SIGTERM); it must exit cleanly.
    pub async fn stop(&mut self) {
        let exit = self.terminate().await;
        assert!(
            exit.success(),
            "exit 0 on SIGTERM, got {exit}:\n{}",
            self.log()
        );
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its exit status, if it exits within `within`.
    pub async fn exit_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()
            .map(|status| status.expect("wait for the server"))
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // SIGKILL, unless it already exited.
        let _ = self.child.start_kill();
    }
}

/// Appends every line of `output` to `log`, and wakes `printed` at each.
pub async fn collect_output(
    output: impl tokio::io::AsyncRead + Unpin,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    printed: std::sync::Arc<tokio::sync::Notify>,
) {
    use tokio::io::AsyncBufReadExt;

    let mut lines = tokio::io::BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        {
            let mut log = log.lock().expect("log lock");
            log.push_str(&line);
            log.push('\n');
        }
        printed.notify_waiters();
    }
}

/// A TCP connection to `addr` from loopback address `from`; with
/// `receive_buffer`, the socket's receive buffer is set that small before it
/// connects (so the window it offers stays tiny).
pub async fn connect_from(
    addr: SocketAddr,
    from: IpAddr,
    receive_buffer: Option<u32>,
) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    if let Some(size) = receive_buffer {
        socket
            .set_recv_buffer_size(size)
            .expect("set the receive buffer");
    }
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind the source");
    tokio::time::timeout(PATIENCE, socket.connect(addr))
        .await
        .expect("connects promptly")
        .expect("connect")
}

/// Reads and throws away whatever comes until the server closes the connection
/// (end of stream or an error such as a reset); how long that took, or `None` if
/// it was still open after `within`.
pub async fn closed_within(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    within: Duration,
) -> Option<Duration> {
    use tokio::io::AsyncReadExt;

    let started = tokio::time::Instant::now();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match tokio::time::timeout_at(started + within, reader.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads one response with a `Content-Length` off a connection that stays open.
pub async fn read_one_response(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    within: Duration,
) -> RawResponse {
    use tokio::io::AsyncReadExt;

    let deadline = tokio::time::Instant::now() + within;
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let response = parse_raw_response(&received);
            let length: usize = response
                .header("content-length")
                .and_then(|length| length.parse().ok())
                .unwrap_or_else(|| panic!("a Content-Length in {:?}", response.head));
            if received.len() >= end + 4 + length {
                return response;
            }
        }
        let read = tokio::time::timeout_at(deadline, reader.read(&mut buffer))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "a whole response within {within:?}, got {:?}",
                    String::from_utf8_lossy(&received)
                )
            })
            .expect("read the response");
        assert!(
            read > 0,
            "the connection closed mid-response: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..read]);
    }
}

/// Reads a response until the server closes the connection, bounded by `within`.
pub async fn read_response_to_end(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    within: Duration,
) -> RawResponse {
    use tokio::io::AsyncReadExt;

    let mut received = Vec::new();
    let outcome = tokio::time::timeout(within, reader.read_to_end(&mut received)).await;
    assert!(
        outcome.is_ok(),
        "the server answers and closes within {within:?}, got so far {:?}",
        String::from_utf8_lossy(&received)
    );
    parse_raw_response(&received)
}

/// Opens room `code`'s event stream with `cookie` on a connection from `from`
/// whose receive buffer is tiny, and reads its response head (asserting `200`):
/// a subscriber that will never read again.
pub async fn open_stalled_stream(
    addr: SocketAddr,
    from: IpAddr,
    cookie: &str,
    code: &str,
) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = connect_from(addr, from, Some(1024)).await;
    let request = format!(
        "GET /rooms/{code}/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Cookie: {cookie}\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut received = Vec::new();
    let mut buffer = [0; 512];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
            .await
            .expect("the stream's head arrives promptly")
            .expect("read the head");
        assert!(read > 0, "the server closed the stream before its head");
        received.extend_from_slice(&buffer[..read]);
    }
    let head = String::from_utf8_lossy(&received);
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "the stalled subscriber's stream opens: {head}"
    );
    stream
}

/// Sends the head of a form POST to `path` announcing a body of 100 bytes, and
/// 6 of them; the rest never comes.
pub async fn half_sent_post(addr: SocketAddr, from: IpAddr, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;

    let mut stream = connect_from(addr, from, None).await;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=a"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the first part");
    stream
}

// ----- polling helpers -----

/// Path of room `code`'s long poll, resuming after `after` when given.
pub fn poll_path(code: &str, after: Option<u64>) -> String {
    match after {
        Some(after) => format!("/rooms/{code}/poll?after={after}"),
        None => format!("/rooms/{code}/poll"),
    }
}

/// The events of a poll's answer (`{"events": [...], "last_id": N}`).
pub fn polled_events(answer: &Value) -> &[Value] {
    answer["events"]
        .as_array()
        .unwrap_or_else(|| panic!("an answer with an `events` list: {answer}"))
}

/// The `last_id` of a poll's answer.
pub fn polled_last_id(answer: &Value) -> u64 {
    answer["last_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("an answer with a numeric `last_id`: {answer}"))
}

impl User {
    /// Another tab of this user's browser: the same cookie, the same address.
    pub fn another_tab(&self) -> User {
        User {
            base: self.base.clone(),
            client: client(self.from),
            cookie: self.cookie.clone(),
            from: self.from,
        }
    }

    /// `GET /rooms/{code}/poll[?after=ID]`; fails the test if no answer comes
    /// within `within`.
    pub async fn poll_response_within(
        &self,
        code: &str,
        after: Option<u64>,
        within: Duration,
    ) -> Response {
        tokio::time::timeout(within, self.get_request(&poll_path(code, after)).send())
            .await
            .unwrap_or_else(|_| {
                panic!("the poll of {code} after {after:?} answers within {within:?}")
            })
            .expect("GET poll")
    }

    /// A long poll of room `code` after `after` that answers within [`PATIENCE`]
    /// (so the server should run with a short `--poll-wait`, or have news): its
    /// status and its body, as JSON when it is JSON, else as a JSON string.
    pub async fn poll(&self, code: &str, after: Option<u64>) -> (StatusCode, Value) {
        let response = self.poll_response_within(code, after, PATIENCE).await;
        let status = response.status();
        let body = tokio::time::timeout(PATIENCE, response.text())
            .await
            .expect("the poll's body arrives promptly")
            .expect("the poll's body");
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    }

    /// Like [`User::poll`], asserting a `200` and returning the answer.
    pub async fn poll_ok(&self, code: &str, after: Option<u64>) -> Value {
        let (status, answer) = self.poll(code, after).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "polling {code} after {after:?}: {answer}"
        );
        answer
    }

    /// Waits until the presence list shows `name` with `connected` as given;
    /// fails the test after [`PATIENCE`].
    pub async fn wait_for_presence(&self, code: &str, name: &str, connected: bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let presence = self.presence(code).await;
            if presence.iter().any(|(n, c)| n == name && *c == connected) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} not listed with connected: {connected} within {PATIENCE:?}: {presence:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A tab that long-polls a room over and over, as a browser does behind a proxy
/// that holds event streams: each poll resumes after the last id it was given.
/// The server should run with a short `--poll-wait` (each poll must answer
/// within [`PATIENCE`]).
pub struct PollingTab {
    /// Every event the polls returned, in order.
    events: tokio::sync::mpsc::Receiver<Value>,
    /// Tells the loop to make no further poll.
    stop: Option<oneshot::Sender<()>>,
    /// The loop: it ends with the moment its last poll was answered.
    polling: Option<JoinHandle<tokio::time::Instant>>,
}

impl PollingTab {
    /// Starts polling room `code` as `tab`, after event `after`.
    pub fn start(tab: User, code: &str, after: u64) -> Self {
        let (found, events) = tokio::sync::mpsc::channel(1024);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let code = code.to_owned();
        let polling = tokio::spawn(async move {
            let mut after = after;
            loop {
                let answer = tab.poll_ok(&code, Some(after)).await;
                let answered = tokio::time::Instant::now();
                for event in polled_events(&answer) {
                    found.try_send(event.clone()).expect("room for the event");
                }
                after = polled_last_id(&answer);
                if stopped.try_recv().is_ok() {
                    return answered;
                }
            }
        });
        Self {
            events,
            stop: Some(stop),
            polling: Some(polling),
        }
    }

    /// The next event the polls returned; fails the test if none comes within
    /// [`PATIENCE`] (or the loop failed).
    pub async fn next_event(&mut self) -> Value {
        tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .expect("an event is polled within the patience period")
            .expect("the polling loop is still running")
    }

    /// Lets the poll under way finish and makes no other; the moment that last
    /// poll was answered. Fails the test if a poll failed.
    pub async fn stop(mut self) -> tokio::time::Instant {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let polling = self.polling.take().expect("a polling loop");
        tokio::time::timeout(PATIENCE, polling)
            .await
            .expect("the last poll answers within the patience period")
            .expect("every poll was answered with 200")
    }
}

impl Drop for PollingTab {
    fn drop(&mut self) {
        if let Some(polling) = self.polling.take() {
            polling.abort();
        }
    }
}

/// Starts one instance with in-memory rooms and the default options on `addr`,
/// where an earlier server listened: a restart that lost every room.
pub async fn spawn_app_at(addr: SocketAddr) -> TestApp {
    let config = Config::try_parse_from(["chat-live-room"]).expect("the default options");
    let listener = TcpListener::bind(addr).await.expect("bind the old address");
    let (addr, shutdown, server) = serve_instance(listener, config);
    TestApp::one_instance(addr, shutdown, server)
}

// ----- sharing helpers -----

impl RunningServer {
    /// The server binary listening on `bind` (`0.0.0.0:0`, `[::]:0`) instead of
    /// 127.0.0.1, with `args`, logging at `info`; waits for its `listening on`
    /// line. Its `addr` is then the unspecified address and the port.
    pub async fn start_on(bind: &str, args: &[&str]) -> Self {
        let args = [&["--bind", bind][..], args].concat();
        Self::start_command(server_command("info,warp::server=off"), &args).await
    }
}

/// This machine's addresses that are neither loopback nor link-local (a LAN
/// address, as a friend would type it), IPv4 first.
pub fn network_addresses() -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = if_addrs::get_if_addrs()
        .expect("list this machine's addresses")
        .iter()
        .map(|interface| interface.ip())
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unicast_link_local(),
        })
        .collect();
    addresses.sort_by_key(|ip| ip.is_ipv6());
    addresses.dedup();
    addresses
}
