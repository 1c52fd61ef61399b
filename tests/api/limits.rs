//! No client takes more than its share: guessing, flooding and capacity limits.
//!
//! Each limit is set low by its flag, reached over real HTTP, and its refusal
//! read like a client would: the status (`429` for one client's share, `503`
//! for a full server), `Retry-After` in whole seconds, one line of text for
//! curl. A refusal changes nothing: no room, no member, no event. Connection
//! limits are reached with raw TCP connections from chosen loopback addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::helpers::{
    PATIENCE, TestApp, User, alice_and_bob_streaming, next_loopback_address,
    spawn_app_on_ipv6_loopback, spawn_app_with, unused_code,
};
use crate::web::retry_after;

/// What a client sees once its address has spent its guesses.
const GUESSES_SPENT: &str = "Too many requests for rooms you are not in, from your address: wait a little before trying another code.";

/// How often a poll loop looks again.
const POLL: Duration = Duration::from_millis(25);

/// Asserts `response` is a refusal by a limit, as curl sees it: `status`, a
/// `Retry-After` within `wait` (seconds), no cookie, no redirect, and one line
/// of text; returns that line.
async fn assert_refused(
    response: Response,
    status: StatusCode,
    wait: RangeInclusive<u64>,
) -> String {
    assert_eq!(response.status(), status, "{:?}", response.headers());
    let seconds = retry_after(&response);
    assert!(wait.contains(&seconds), "Retry-After: {seconds}");
    assert!(
        response.headers().get(SET_COOKIE).is_none(),
        "a refusal sets no cookie"
    );
    assert!(
        response.headers().get(LOCATION).is_none(),
        "a refusal leads nowhere"
    );
    let body = response.text().await.expect("a body");
    let line = body.trim_end();
    assert!(
        !line.is_empty() && !line.contains('\n'),
        "one line of text: {body:?}"
    );
    line.to_owned()
}

/// Status of `GET path` as `user`.
async fn status(user: &User, path: &str) -> StatusCode {
    user.get(path).await.status()
}

/// `POST /rooms/{code}/leave` as `member`, asserting it worked.
async fn leave(member: &User, code: &str) {
    let response = member
        .post_request(&format!("/rooms/{code}/leave"), &[])
        .send()
        .await
        .expect("POST leave");
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "leaving {code}");
}

/// A raw TCP connection to the server from the loopback address `from`.
async fn connect_from(app: &TestApp, from: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind a loopback source address");
    socket.connect(app.addr).await.expect("connect")
}

/// `GET /` as curl sends it, keeping the connection open.
const GET_HOME: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";

/// Sends `GET /` on `connection` and returns the response head (status line
/// and headers); the connection stays open.
async fn get_home_head(connection: &mut TcpStream) -> String {
    connection.write_all(GET_HOME).await.expect("send GET /");
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            return String::from_utf8_lossy(&received[..end]).into_owned();
        }
        let read = tokio::time::timeout_at(deadline, connection.read(&mut chunk))
            .await
            .expect("a response head within the patience period")
            .expect("read");
        assert!(read > 0, "closed before a response head: {received:?}");
        received.extend_from_slice(&chunk[..read]);
    }
}

/// Sends `GET /` on a connection the server refuses and reads everything until
/// the server closes it; fails the test if it does not close it.
async fn get_home_until_closed(mut connection: TcpStream) -> String {
    connection.write_all(GET_HOME).await.expect("send GET /");
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, connection.read_to_end(&mut received))
        .await
        .expect("the server closes a refused connection")
        .expect("read");
    String::from_utf8_lossy(&received).into_owned()
}

/// The value of header `name` in a response `head`.
fn head_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Asserts a raw response is a refusal with `status_line` and a `Retry-After`
/// of at least a second.
fn assert_raw_refusal(response: &str, status_line: &str) {
    assert!(response.starts_with(status_line), "{response:?}");
    let seconds: u64 = head_header(response, "retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(seconds >= 1, "Retry-After: {seconds}");
}

/// Opens connections from `from` until one is served `200` (the server
/// notices a closed connection a moment after the client drops it).
async fn wait_for_a_connection(app: &TestApp, from: IpAddr) -> TcpStream {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut connection = connect_from(app, from).await;
        let head = get_home_head(&mut connection).await;
        if head.starts_with("HTTP/1.1 200") {
            return connection;
        }
        assert!(
            Instant::now() < deadline,
            "no place for a connection after {PATIENCE:?}: {head}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Tasks alive in this test's runtime, where the server runs too.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Creates a room and joins it, each in a session of its own, on `visitor`'s
/// one client.
async fn create_and_join(visitor: &mut User) {
    visitor.cookie = None;
    let code = visitor.create_room_ok("host").await;
    visitor.cookie = None;
    let joined = visitor.join("guest", &code).await;
    assert_eq!(joined.status(), StatusCode::SEE_OTHER, "joining {code}");
}

// ----- guessing -----

/// Requests about missing rooms from one address get 404 for the burst, then 429 with Retry-After and the reason.
#[tokio::test]
async fn a_guesser_gets_404s_for_the_burst_then_429() {
    // Arrange
    let app = spawn_app_with(&["--guess-burst", "4", "--guess-rate", "1/min"]).await;
    let mut guesser = app.user_from(next_loopback_address());
    let missing = unused_code(&[]);

    // Act: one guess of each kind.
    let burst = [
        status(&guesser, &format!("/rooms/{missing}")).await,
        guesser.join("mallory", &missing).await.status(),
        status(&guesser, &format!("/rooms/{missing}/events")).await,
        status(&guesser, &format!("/rooms/{missing}/members")).await,
    ];
    let refused = guesser.get(&format!("/rooms/{missing}")).await;

    // Assert
    assert_eq!(burst, [StatusCode::NOT_FOUND; 4]);
    let line = assert_refused(refused, StatusCode::TOO_MANY_REQUESTS, 1..=60).await;
    assert_eq!(line, GUESSES_SPENT);
    let page = guesser.get_as_browser(&format!("/rooms/{missing}")).await;
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&page) >= 1);
    let content_type = page.headers().get(CONTENT_TYPE).expect("a content type");
    assert!(
        content_type.to_str().unwrap().starts_with("text/html"),
        "{content_type:?}"
    );
    assert!(page.text().await.unwrap().contains(GUESSES_SPENT));
}

/// Once an address is limited, a room that exists answers 429 too (a hit looks like a miss) and it is not joined.
#[tokio::test]
async fn a_limited_guesser_cannot_tell_a_hit_from_a_miss() {
    // Arrange
    let app = spawn_app_with(&["--guess-burst", "3"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let missing = unused_code(&[&code]);
    let mut guesser = app.user_from(next_loopback_address());
    for _ in 0..3 {
        assert_eq!(
            status(&guesser, &format!("/rooms/{missing}")).await,
            StatusCode::NOT_FOUND
        );
    }

    // Act
    let hit_page = guesser.get(&format!("/rooms/{code}")).await;
    let miss_page = guesser.get(&format!("/rooms/{missing}")).await;
    let hit_join = guesser.join("mallory", &code).await;
    let hit_events = guesser.get(&format!("/rooms/{code}/events")).await;
    let hit_members = guesser.get(&format!("/rooms/{code}/members")).await;
    let hit_post = guesser.post_message(&code, "let me in").await;

    // Assert
    let hit = assert_refused(hit_page, StatusCode::TOO_MANY_REQUESTS, 1..=10).await;
    let miss = assert_refused(miss_page, StatusCode::TOO_MANY_REQUESTS, 1..=10).await;
    assert_eq!(
        hit, miss,
        "the same answer for a room that exists and one that does not"
    );
    for response in [hit_join, hit_events, hit_members, hit_post] {
        let line = assert_refused(response, StatusCode::TOO_MANY_REQUESTS, 1..=10).await;
        assert_eq!(line, GUESSES_SPENT);
    }
    assert_eq!(alice.members(&code).await, ["alice"], "nobody joined");
    assert!(guesser.cookie.is_none(), "the guesser holds no session");
}

/// Another address keeps its whole budget while one address is limited.
#[tokio::test]
async fn a_second_address_is_not_limited_by_the_first() {
    // Arrange
    let app = spawn_app_with(&["--guess-burst", "2"]).await;
    let (_alice, code) = app.user_in_new_room("alice").await;
    let missing = unused_code(&[&code]);
    let guesser = app.user_from(next_loopback_address());
    for _ in 0..3 {
        guesser.get(&format!("/rooms/{missing}")).await;
    }
    assert_eq!(
        status(&guesser, &format!("/rooms/{code}")).await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Act
    let neighbour = app.user_from(next_loopback_address());
    let miss = status(&neighbour, &format!("/rooms/{missing}")).await;
    let hit = neighbour.get(&format!("/rooms/{code}")).await;

    // Assert
    assert_eq!(miss, StatusCode::NOT_FOUND);
    assert_eq!(hit.status(), StatusCode::OK, "the join form");
    assert!(hit.text().await.unwrap().contains(&code));
}

// ----- IPv6 networks -----

/// Where a proxy on this machine connects from; a bare `--trust-proxy` trusts it.
const LOCAL_PROXY: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Sends `request` for the client at `client`, as a proxy does with
/// `X-Forwarded-For`; the status.
async fn forwarded_for(request: reqwest::RequestBuilder, client: &str) -> StatusCode {
    let response = request
        .header("x-forwarded-for", client)
        .send()
        .await
        .expect("a request through the proxy");
    response.status()
}

/// Asks about room `code`, from `proxy`, for each client in turn; each
/// client's status.
async fn guesses_for(proxy: &User, code: &str, clients: &[&str]) -> Vec<(String, StatusCode)> {
    let mut statuses = Vec::new();
    for client in clients {
        let request = proxy.get_request(&format!("/rooms/{code}"));
        statuses.push(((*client).to_owned(), forwarded_for(request, client).await));
    }
    statuses
}

/// `clients` paired with the statuses they should get.
fn expected(clients: &[&str], statuses: &[StatusCode]) -> Vec<(String, StatusCode)> {
    clients
        .iter()
        .map(|client| (*client).to_owned())
        .zip(statuses.iter().copied())
        .collect()
}

const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
const LIMITED: StatusCode = StatusCode::TOO_MANY_REQUESTS;

/// Behind a trusted proxy, with `--guess-burst 2 --guess-rate 1/h`, the IPv6
/// /64s of a /56 share its budget (twice the burst: 4) and those of a /48 its
/// own (four times: 8): a fresh /64 in a spent /56 or /48 is refused, another
/// /48 and IPv4 addresses keep theirs, and a refusal by a /64 costs its
/// networks nothing.
#[tokio::test]
async fn the_64s_of_an_ipv6_48_share_its_guesses() {
    // Arrange
    let app = spawn_app_with(&["--trust-proxy", "--guess-burst", "2", "--guess-rate", "1/h"]).await;
    let proxy = app.user_from(LOCAL_PROXY);
    let missing = unused_code(&[]);
    let clients = [
        // One /64 spends its burst of 2 and is refused a third.
        "2001:db8:1:100::1",
        "2001:db8:1:100::2",
        "2001:db8:1:100:ffff::3",
        // A second /64 of the /56 2001:db8:1:100::/56 spends the /56's 4.
        "2001:db8:1:101::1",
        "2001:db8:1:101::2",
        "2001:db8:1:1ff::1",
        // Two more /56s of the /48 2001:db8:1::/48 spend the /48's 8.
        "2001:db8:1:200::1",
        "2001:db8:1:200::2",
        "2001:db8:1:300::1",
        "2001:db8:1:300::2",
        "2001:db8:1:400::1",
        "2001:db8:1:ffff::1",
        // Another /48, and IPv4.
        "2001:db8:2:100::1",
        "198.51.100.7",
    ];

    // Act
    let statuses = guesses_for(&proxy, &missing, &clients).await;

    // Assert
    let wanted = [
        [NOT_FOUND, NOT_FOUND, LIMITED].as_slice(),
        &[NOT_FOUND, NOT_FOUND, LIMITED],
        &[NOT_FOUND; 4],
        &[LIMITED, LIMITED],
        &[NOT_FOUND, NOT_FOUND],
    ]
    .concat();
    assert_eq!(statuses, expected(&clients, &wanted));
    let refused = proxy
        .get_request(&format!("/rooms/{missing}"))
        .header("x-forwarded-for", "2001:db8:1:500::1")
        .send()
        .await
        .expect("GET the room");
    let line = assert_refused(refused, LIMITED, 61..=3600).await;
    assert_eq!(line, GUESSES_SPENT, "the /48's steady rate: one an hour");
}

/// Behind a trusted proxy, with `--create-burst 1 --create-rate 1/h`, the IPv6
/// /64s of a /56 create 2 rooms between them and those of a /48 4; another
/// /48 still creates.
#[tokio::test]
async fn the_64s_of_an_ipv6_48_share_its_room_creations() {
    // Arrange
    let app = spawn_app_with(&[
        "--trust-proxy",
        "--create-burst",
        "1",
        "--create-rate",
        "1/h",
    ])
    .await;
    let clients = [
        "2001:db8:1:100::1",
        "2001:db8:1:101::1",
        "2001:db8:1:102::1",
        "2001:db8:1:200::1",
        "2001:db8:1:300::1",
        "2001:db8:1:400::1",
        "2001:db8:2::1",
    ];

    // Act
    let mut statuses = Vec::new();
    for client in clients {
        let request = app
            .user_from(LOCAL_PROXY)
            .post_request("/rooms", &[("name", "someone")]);
        statuses.push((client.to_owned(), forwarded_for(request, client).await));
    }

    // Assert
    let created = StatusCode::SEE_OTHER;
    let wanted = [
        created, created, LIMITED, created, created, LIMITED, created,
    ];
    assert_eq!(statuses, expected(&clients, &wanted));
}

/// With the default limits, behind a trusted proxy, one guess from each of
/// the 256 /64s of an IPv6 /56 gets 60 answers (twice the burst of 30), and
/// one from each /64 of 254 more /56s of the same /48 gets 60 more: the /48
/// gets 120 at once, then one every 10 s, the steady rate of one IPv4
/// address. Prints the figures docs/security.md quotes.
#[tokio::test]
async fn an_ipv6_48_gets_four_bursts_of_guesses_then_one_every_ten_seconds() {
    // Arrange
    let app = spawn_app_with(&["--trust-proxy"]).await;
    let proxy = app.user_from(LOCAL_PROXY);
    let missing = unused_code(&[]);
    let home: Vec<String> = (0..256)
        .map(|n| format!("2001:db8:1:1{n:02x}::1"))
        .collect();
    let site: Vec<String> = (2..256).map(|n| format!("2001:db8:1:{n:x}00::1")).collect();
    let answered = |statuses: &[(String, StatusCode)]| {
        statuses.iter().filter(|(_, s)| *s == NOT_FOUND).count()
    };

    // Act
    let home = guesses_for(
        &proxy,
        &missing,
        &home.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let site = guesses_for(
        &proxy,
        &missing,
        &site.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let refused = proxy
        .get_request(&format!("/rooms/{missing}"))
        .header("x-forwarded-for", "2001:db8:1:ff01::1")
        .send()
        .await
        .expect("GET the room");

    // Assert
    let (from_home, from_site) = (answered(&home), answered(&site));
    let retry = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok());
    eprintln!(
        "one IPv6 /56, one guess from each of its 256 /64s: {from_home} answered; \
         254 more /56s of its /48: {from_site} more; \
         the /48 in all: {} at once, then {} with Retry-After: {}",
        from_home + from_site,
        refused.status(),
        retry.unwrap_or("none")
    );
    assert_eq!((from_home, from_site), (60, 60));
    let retry = retry_after(&refused);
    assert!((1..=10).contains(&retry), "one guess every 10 s: {retry}");
    assert_refused(refused, LIMITED, 1..=10).await;
}

/// Over real IPv6 connections from `::1` (the server listening on `[::1]`): a
/// peer not in `--trust-proxy 127.0.0.1` is budgeted by its own /64 whatever
/// `X-Forwarded-For` says, and with a bare `--trust-proxy`, which trusts
/// `::1`, the /64s it forwards from different /56s of one /48 share the /48's
/// budget, while another /48 keeps its own.
#[tokio::test]
async fn real_ipv6_connections_are_budgeted_by_their_networks() {
    // Arrange
    let options = ["--guess-burst", "2", "--guess-rate", "1/h"];
    let untrusting =
        spawn_app_on_ipv6_loopback(&[&["--trust-proxy", "127.0.0.1"], &options[..]].concat()).await;
    let trusting = spawn_app_on_ipv6_loopback(&[&["--trust-proxy"], &options[..]].concat()).await;
    let (Some(untrusting), Some(trusting)) = (untrusting, trusting) else {
        eprintln!("this machine has no IPv6 loopback ([::1]): nothing to test");
        return;
    };
    let loopback = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let missing = unused_code(&[]);
    let forged = ["2001:db8:7::1", "2001:db8:8::1", "2001:db8:9::1"];
    let forwarded: Vec<String> = (1..=9)
        .map(|n| format!("2001:db8:1:{n}00::1"))
        .chain(["2001:db8:2:100::1".to_owned()])
        .collect();
    let forwarded: Vec<&str> = forwarded.iter().map(String::as_str).collect();

    // Act
    let direct = guesses_for(&untrusting.user_from(loopback), &missing, &forged).await;
    let through = guesses_for(&trusting.user_from(loopback), &missing, &forwarded).await;

    // Assert
    assert_eq!(direct, expected(&forged, &[NOT_FOUND, NOT_FOUND, LIMITED]));
    let wanted = [[NOT_FOUND; 8].as_slice(), &[LIMITED, NOT_FOUND]].concat();
    assert_eq!(through, expected(&forwarded, &wanted));
}

/// Real IPv6 sources, in a network namespace of the test's own (`unshare -rn`)
/// whose loopback gets addresses in two /48s: one guess from a /64 in each of
/// nine /56s of one /48 gets eight answers (the /48's four times the burst of
/// 2) and the ninth `429`, while a /64 of the other /48 is answered. Where the
/// machine allows no such namespace the test says so and checks nothing.
#[tokio::test]
async fn real_sources_in_one_ipv6_48_share_its_budget() {
    // Arrange
    let can_unshare = tokio::process::Command::new("unshare")
        .args(["-rn", "ip", "link", "set", "lo", "up"])
        .output()
        .await
        .is_ok_and(|output| output.status.success());
    if !can_unshare {
        eprintln!("no network namespace of our own here (unshare -rn, ip): nothing to test");
        return;
    }
    let sources: Vec<String> = (1..=9)
        .map(|n| format!("2001:db8:1:{n}00::1"))
        .chain(["2001:db8:2:100::1".to_owned()])
        .collect();
    let mut probe = tokio::process::Command::new("unshare");
    probe
        .args(["-rn", "bash", "-c", NAMESPACE_PROBE])
        .env("BINARY", crate::helpers::BINARY)
        .env("SOURCES", sources.join(" "))
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CHAT_") {
            probe.env_remove(&key);
        }
    }

    // Act
    let output = tokio::time::timeout(Duration::from_secs(30), probe.output())
        .await
        .expect("the probe ends within 30 s")
        .expect("run unshare");

    // Assert
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{shown}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let statuses: Vec<(String, StatusCode)> = shown
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(source, status)| {
            let status = status.parse::<u16>().expect("a status code");
            (
                source.to_owned(),
                StatusCode::from_u16(status).expect("a status"),
            )
        })
        .collect();
    let wanted = [[NOT_FOUND; 8].as_slice(), &[LIMITED, NOT_FOUND]].concat();
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    assert_eq!(statuses, expected(&sources, &wanted));
}

/// Run by `unshare -rn bash -c` (a user and network namespace of its own):
/// puts each of `$SOURCES` on the loopback, starts `$BINARY` on `[::1]`,
/// and prints each source and the status one guess from it gets.
const NAMESPACE_PROBE: &str = r#"
set -eu
ip link set lo up
for source in $SOURCES; do ip -6 addr add "$source/128" dev lo nodad; done
# The namespace is this probe's own: nothing else listens on its ports. The
# server ends itself if this script is killed before it can stop it.
timeout 60 "$BINARY" --ephemeral --bind '[::1]:3000' --guess-burst 2 --guess-rate 1/h &
server=$!
trap 'kill $server 2>/dev/null' EXIT
ready=
for _ in $(seq 200); do
  if curl -sf -o /dev/null -g 'http://[::1]:3000/healthz'; then ready=1; break; fi
  sleep 0.05
done
[ -n "$ready" ] || { echo "the server did not start" >&2; exit 1; }
for source in $SOURCES; do
  curl -s -o /dev/null -w "$source %{http_code}
" --interface "$source" -g 'http://[::1]:3000/rooms/QQQQ'
done
"#;

/// A member's requests about their own room spend no guesses, even from an address that has no guesses left.
#[tokio::test]
async fn members_are_never_charged_for_their_own_room() {
    // Arrange
    let app = spawn_app_with(&["--guess-burst", "3"]).await;
    let household = next_loopback_address();
    let mut alice = app.user_from(household);
    let code = alice.create_room_ok("alice").await;
    let missing = unused_code(&[&code]);

    // Act: far more than the burst, all about her own room.
    for _ in 0..10 {
        assert_eq!(
            status(&alice, &format!("/rooms/{code}")).await,
            StatusCode::OK
        );
        assert_eq!(alice.members(&code).await, ["alice"]);
    }
    let events = alice.open_events(&code).await;
    alice.say(&code, "still here").await;

    // Assert: her address still has its three guesses, and then none.
    for _ in 0..3 {
        assert_eq!(
            status(&alice, &format!("/rooms/{missing}")).await,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        status(&alice, &format!("/rooms/{missing}")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...yet her own room still answers her, and a guesser at her address is refused.
    assert_eq!(
        status(&alice, &format!("/rooms/{code}")).await,
        StatusCode::OK
    );
    alice.say(&code, "and still here").await;
    let housemate = app.user_from(household);
    assert_eq!(
        status(&housemate, &format!("/rooms/{code}")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    drop(events);
}

/// Paths whose code is not four letters name no room and spend no guesses.
#[tokio::test]
async fn malformed_codes_spend_no_guesses() {
    // Arrange
    let app = spawn_app_with(&["--guess-burst", "2"]).await;
    let visitor = app.user_from(next_loopback_address());

    // Act
    let mut answers = Vec::new();
    for path in [
        "/rooms/AB",
        "/rooms/ABCDE",
        "/rooms/AB1D",
        "/rooms/ABC/members",
    ] {
        for _ in 0..3 {
            answers.push(status(&visitor, path).await);
        }
    }

    // Assert
    assert!(
        answers.iter().all(|s| *s == StatusCode::NOT_FOUND),
        "{answers:?}"
    );
    let missing = unused_code(&[]);
    for _ in 0..2 {
        assert_eq!(
            status(&visitor, &format!("/rooms/{missing}")).await,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        status(&visitor, &format!("/rooms/{missing}")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

// ----- flooding -----

/// A member past the message burst gets 429 + Retry-After; the others receive exactly the accepted messages, in order.
#[tokio::test]
async fn a_flooding_member_is_refused_and_only_accepted_messages_arrive() {
    // Arrange
    let app = spawn_app_with(&["--message-burst", "5", "--message-rate", "1/min"]).await;
    let (code, alice, mut alice_events, bob, mut bob_events) = alice_and_bob_streaming(&app).await;

    // Act
    let mut answers = Vec::new();
    for n in 1..=8 {
        answers.push(alice.post_message(&code, &format!("flood {n}")).await);
    }
    bob.say(&code, "bob is not limited by alice").await;

    // Assert
    let statuses: Vec<StatusCode> = answers.iter().map(Response::status).collect();
    assert_eq!(
        statuses,
        [
            [StatusCode::NO_CONTENT; 5].as_slice(),
            [StatusCode::TOO_MANY_REQUESTS; 3].as_slice()
        ]
        .concat()
    );
    for refused in answers.into_iter().skip(5) {
        let line = assert_refused(refused, StatusCode::TOO_MANY_REQUESTS, 1..=60).await;
        assert!(line.contains("too fast"), "{line:?}");
    }
    for n in 1..=5 {
        let text = format!("flood {n}");
        assert_eq!(bob_events.next_message().await.text(), text);
        alice_events.expect_message("alice", &text).await;
    }
    bob_events
        .expect_message("bob", "bob is not limited by alice")
        .await;
    alice_events
        .expect_message("bob", "bob is not limited by alice")
        .await;
}

// ----- rooms and members -----

/// With --max-rooms 2 a third create is 503 with Retry-After, and no room or session is made.
#[tokio::test]
async fn creating_past_max_rooms_is_503_and_makes_no_room() {
    // Arrange
    let app = spawn_app_with(&["--max-rooms", "2"]).await;
    let (_alice, first) = app.user_in_new_room("alice").await;
    let (_bob, second) = app.user_in_new_room("bob").await;
    let mut carol = app.user();

    // Act
    let refused = carol.create_room("carol").await;

    // Assert
    let line = assert_refused(refused, StatusCode::SERVICE_UNAVAILABLE, 1..=3600).await;
    assert!(line.contains("try again"), "{line:?}");
    assert!(carol.cookie.is_none(), "carol has no session");
    assert_eq!(status(&carol, "/").await, StatusCode::OK);
    let dave = app.user();
    for code in [&first, &second] {
        assert_eq!(
            status(&dave, &format!("/rooms/{code}")).await,
            StatusCode::OK
        );
    }
}

/// With --max-members-per-room 2 a third join is 503, and the room and its stream see nothing of it.
#[tokio::test]
async fn joining_a_full_room_is_503_and_changes_nothing() {
    // Arrange
    let app = spawn_app_with(&["--max-members-per-room", "2"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let bob = app.user_joined(&code, "bob").await;
    let mut alice_events = alice.open_events(&code).await;
    let mut carol = app.user();

    // Act
    let refused = carol.join("carol", &code).await;

    // Assert
    let line = assert_refused(refused, StatusCode::SERVICE_UNAVAILABLE, 1..=3600).await;
    assert!(line.contains("full"), "{line:?}");
    assert!(carol.cookie.is_none());
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
    bob.say(&code, "just us").await;
    alice_events.expect_message("bob", "just us").await;
}

/// With --create-burst 2 --create-rate 1/h one address is refused a third room (429); another address creates.
#[tokio::test]
async fn creating_too_fast_from_one_address_is_429() {
    // Arrange
    let app = spawn_app_with(&["--create-burst", "2", "--create-rate", "1/h"]).await;
    let busy = next_loopback_address();
    for name in ["one", "two"] {
        app.user_from(busy).create_room_ok(name).await;
    }
    let mut third = app.user_from(busy);

    // Act
    let refused = third.create_room("three").await;
    let elsewhere = app.user().create_room("four").await;

    // Assert
    let seconds = retry_after(&refused);
    assert!(
        seconds > 60,
        "the next room comes in about an hour: {seconds}"
    );
    assert_refused(refused, StatusCode::TOO_MANY_REQUESTS, 1..=3600).await;
    assert!(third.cookie.is_none());
    assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER);
}

/// With --join-burst 2 --join-rate 1/h one address is refused a third join (429); members rejoining and other addresses are not.
#[tokio::test]
async fn joining_too_fast_from_one_address_is_429() {
    // Arrange
    let app = spawn_app_with(&["--join-burst", "2", "--join-rate", "1/h"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let busy = next_loopback_address();
    let mut first = app.user_from(busy);
    assert_eq!(
        first.join("one", &code).await.status(),
        StatusCode::SEE_OTHER
    );
    let mut second = app.user_from(busy);
    assert_eq!(
        second.join("two", &code).await.status(),
        StatusCode::SEE_OTHER
    );
    let mut third = app.user_from(busy);

    // Act
    let refused = third.join("three", &code).await;
    let rejoin = first.join("one", &code).await;
    let elsewhere = app.user().join("four", &code).await;

    // Assert
    assert_refused(refused, StatusCode::TOO_MANY_REQUESTS, 61..=3600).await;
    assert!(third.cookie.is_none());
    assert_eq!(
        rejoin.status(),
        StatusCode::SEE_OTHER,
        "a member rejoining is not charged"
    );
    assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER);
    assert_eq!(alice.members(&code).await, ["alice", "one", "two", "four"]);
}

/// With --max-rooms-per-session 2 a session in two rooms may not join or create a third (429) until it leaves one.
#[tokio::test]
async fn a_session_in_too_many_rooms_must_leave_one_first() {
    // Arrange
    let app = spawn_app_with(&["--max-rooms-per-session", "2"]).await;
    let (mut alice, own) = app.user_in_new_room("alice").await;
    let (bob, bobs) = app.user_in_new_room("bob").await;
    let (carol, carols) = app.user_in_new_room("carol").await;
    assert_eq!(
        alice.join("alice", &bobs).await.status(),
        StatusCode::SEE_OTHER
    );

    // Act
    let join_third = alice.join("alice", &carols).await;
    let create_third = alice.create_room("alice").await;

    // Assert
    assert_refused(join_third, StatusCode::TOO_MANY_REQUESTS, 1..=3600).await;
    assert_refused(create_third, StatusCode::TOO_MANY_REQUESTS, 1..=3600).await;
    assert_eq!(carol.members(&carols).await, ["carol"]);
    assert_eq!(
        status(&alice, &format!("/rooms/{own}")).await,
        StatusCode::OK
    );

    // Act + Assert: after leaving bob's room, carol's may be joined.
    leave(&alice, &bobs).await;
    assert_eq!(bob.members(&bobs).await, ["bob"]);
    assert_eq!(
        alice.join("alice", &carols).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(carol.members(&carols).await, ["carol", "alice"]);
}

// ----- streams -----

/// With --max-streams-per-session 2 a third stream is 429; closing one frees its place; other sessions are unaffected.
#[tokio::test]
async fn a_session_may_hold_only_so_many_streams() {
    // Arrange
    let app = spawn_app_with(&["--max-streams-per-session", "2"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let first = alice.open_events(&code).await;
    let _second = alice.open_events(&code).await;

    // Act
    let refused = alice.get(&format!("/rooms/{code}/events")).await;

    // Assert
    let line = assert_refused(refused, StatusCode::TOO_MANY_REQUESTS, 1..=3600).await;
    assert!(line.contains("close some tabs"), "{line:?}");
    let bob = app.user_joined(&code, "bob").await;
    let _bobs = bob.open_events(&code).await;

    // Act + Assert: a closed stream gives its place back.
    drop(first);
    let deadline = Instant::now() + PATIENCE;
    while let Err(why) = alice.try_open_events(&code, None).await {
        assert!(
            Instant::now() < deadline,
            "no place after closing a stream: {why}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// With --max-streams-per-address 2 a third stream from the same address is 429, even for another person; other addresses are unaffected.
#[tokio::test]
async fn an_address_may_hold_only_so_many_streams() {
    // Arrange
    let app = spawn_app_with(&["--max-streams-per-address", "2"]).await;
    let shared = next_loopback_address();
    let mut alice = app.user_from(shared);
    let code = alice.create_room_ok("alice").await;
    let mut bob = app.user_from(shared);
    assert_eq!(bob.join("bob", &code).await.status(), StatusCode::SEE_OTHER);
    let mut carol = app.user_from(shared);
    assert_eq!(
        carol.join("carol", &code).await.status(),
        StatusCode::SEE_OTHER
    );
    let _alices = alice.open_events(&code).await;
    let _bobs = bob.open_events(&code).await;

    // Act
    let refused = carol.get(&format!("/rooms/{code}/events")).await;

    // Assert
    assert_refused(refused, StatusCode::TOO_MANY_REQUESTS, 1..=3600).await;
    let dave = app.user_joined(&code, "dave").await;
    let _daves = dave.open_events(&code).await;
    assert_eq!(
        alice.presence(&code).await,
        [
            ("alice".to_owned(), true),
            ("bob".to_owned(), true),
            ("carol".to_owned(), false),
            ("dave".to_owned(), true),
        ]
    );
}

// ----- connections -----

/// With --max-connections-per-address 2 a third open connection from the address is answered 429 and closed; another address is served.
#[tokio::test]
async fn an_address_may_hold_only_so_many_connections() {
    // Arrange
    let app = spawn_app_with(&["--max-connections-per-address", "2"]).await;
    let busy = next_loopback_address();
    let mut first = connect_from(&app, busy).await;
    let mut second = connect_from(&app, busy).await;
    assert!(get_home_head(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(get_home_head(&mut second).await.starts_with("HTTP/1.1 200"));

    // Act
    let third = get_home_until_closed(connect_from(&app, busy).await).await;
    let mut elsewhere = connect_from(&app, next_loopback_address()).await;

    // Assert
    assert_raw_refusal(&third, "HTTP/1.1 429");
    assert!(third.contains("Too many open connections"), "{third:?}");
    assert!(
        get_home_head(&mut elsewhere)
            .await
            .starts_with("HTTP/1.1 200")
    );

    // Act + Assert: a closed connection gives its place back.
    drop(first);
    let _again = wait_for_a_connection(&app, busy).await;
}

/// With --max-connections 2 a third open connection, from any address, is answered 503 and closed.
#[tokio::test]
async fn the_server_holds_only_so_many_connections() {
    // Arrange
    let app = spawn_app_with(&["--max-connections", "2"]).await;
    let mut first = connect_from(&app, next_loopback_address()).await;
    let mut second = connect_from(&app, next_loopback_address()).await;
    assert!(get_home_head(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(get_home_head(&mut second).await.starts_with("HTTP/1.1 200"));

    // Act
    let newcomer = next_loopback_address();
    let third = get_home_until_closed(connect_from(&app, newcomer).await).await;

    // Assert
    assert_raw_refusal(&third, "HTTP/1.1 503");
    assert!(third.contains("full"), "{third:?}");

    // Act + Assert: a closed connection gives its place back.
    drop(second);
    let _again = wait_for_a_connection(&app, newcomer).await;
}

// ----- tasks -----

/// Creating and joining 300 rooms adds a small, fixed number of tasks, not tasks per room.
#[tokio::test]
async fn a_flood_of_rooms_and_joins_adds_no_tasks_per_room() {
    // Arrange: one client (one connection), a fresh session per request.
    let app = spawn_app_with(&[
        "--create-burst",
        "100000",
        "--join-burst",
        "100000",
        "--guess-burst",
        "100000",
    ])
    .await;
    let mut visitor = app.user();
    create_and_join(&mut visitor).await;
    let before = alive_tasks();

    // Act
    for _ in 0..300 {
        create_and_join(&mut visitor).await;
    }
    let after = alive_tasks();

    // Assert
    assert!(
        after < before + 20,
        "{before} tasks before 300 rooms and joins, {after} after"
    );
}

/// A member without a stream posting and viewing the room many times adds no tasks.
#[tokio::test]
async fn posting_and_viewing_add_no_tasks() {
    // Arrange
    let app = spawn_app_with(&["--message-burst", "100000", "--page-burst", "100000"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    alice.say(&code, "warming up").await;
    let page = alice.get(&format!("/rooms/{code}")).await;
    page.text().await.expect("the room page");
    let before = alive_tasks();

    // Act
    for n in 0..200 {
        alice.say(&code, &format!("message {n}")).await;
        let page = alice.get(&format!("/rooms/{code}")).await;
        assert_eq!(page.status(), StatusCode::OK);
        page.text().await.expect("the room page");
    }
    let after = alive_tasks();

    // Assert
    assert!(
        after < before + 5,
        "{before} tasks before 200 posts and views, {after} after"
    );
}
