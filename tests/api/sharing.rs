//! Chatting with people on your network: the real binary listening on every
//! address (`--bind 0.0.0.0:0`, `[::]:0`), reached the way a friend reaches it,
//! by this machine's address typed into a browser.
//!
//! The start-up log names the URL to give them; any IP address in `Host` is
//! ours, so pages, posts (their `Origin` is that address) and streams work; a
//! host name nobody set up gets a page a guest understands, while the log tells
//! the operator which name and what to add, once per name.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HOST, ORIGIN};

use crate::helpers::{
    Events, RunningServer, User, network_addresses, room_code, send_as_browser, session_cookie,
    user_at_from,
};

/// Longest wait for a line in the server's log.
const LOG_WAIT: Duration = Duration::from_secs(5);

/// What a guest reads for a host name that is not set up.
const WRONG_ADDRESS: &str = "This chat is not set up for the address you used.";
const ASK_FOR_THE_LINK: &str = "Ask the person who runs it for the right link.";

/// Listening on every IPv4 address, the start-up log lists a URL with this
/// machine's network address (or, on a machine without one, says so and lists
/// loopback), with the port it listens on.
#[tokio::test]
async fn the_start_up_log_lists_the_address_to_give_friends() {
    // Arrange
    let lan = network_addresses().into_iter().find(IpAddr::is_ipv4);

    // Act
    let server = RunningServer::start_on("0.0.0.0:0", &[]).await;
    let port = server.addr.port();

    // Assert
    let expected = match lan {
        Some(lan) => format!("on your network: http://{lan}:{port}/"),
        None => "no network address".to_owned(),
    };
    let listed = server.wait_for_log(&expected, LOG_WAIT).await;
    assert!(listed.is_some(), "{expected:?} in:\n{}", server.log());
    let hint = server.wait_for_log("--public-host NAME", LOG_WAIT).await;
    assert!(hint.is_some(), "the hint for names:\n{}", server.log());
    let local = format!("on this machine: http://127.0.0.1:{port}/");
    let log = server.log();
    assert!(log.contains(&local), "{local:?} in:\n{log}");
}

/// A friend who types this machine's network address (a loopback alias on a
/// machine without one) gets the home page, and with a second friend creates a
/// room, joins it and chats: every `Host` is that address, every `Origin` too.
#[tokio::test]
async fn friends_chat_through_the_machines_network_address() {
    // Arrange
    let server = RunningServer::start_on("0.0.0.0:0", &[]).await;
    let address = network_addresses()
        .into_iter()
        .find(IpAddr::is_ipv4)
        .unwrap_or(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let base = format!("http://{address}:{}", server.addr.port());

    // Act
    let (mut alice_events, bob, code) = chat_at(&base, address).await;
    say_from_page(&bob, &base, &code, "hello from the sofa").await;

    // Assert
    alice_events
        .expect_message("bob", "hello from the sofa")
        .await;
}

/// Listening on `[::]`, the bracketed address `[::1]` is ours too; the log lists
/// this machine's IPv6 network address, if it has one, and it answers as well.
#[tokio::test]
async fn over_ipv6_a_bracketed_address_is_our_host() {
    // Arrange
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    }
    let server = RunningServer::start_on("[::]:0", &[]).await;
    let port = server.addr.port();
    let loopback = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let base = format!("http://[::1]:{port}");

    // Act
    let (mut alice_events, bob, code) = chat_at(&base, loopback).await;
    say_from_page(&bob, &base, &code, "over IPv6").await;

    // Assert
    alice_events.expect_message("bob", "over IPv6").await;
    if let Some(lan) = network_addresses().into_iter().find(IpAddr::is_ipv6) {
        let url = format!("http://[{lan}]:{port}/");
        let line = format!("on your network: {url}");
        let listed = server.wait_for_log(&line, LOG_WAIT).await;
        assert!(listed.is_some(), "{line:?} in:\n{}", server.log());
        let visitor = user_at_from(&url, lan);
        assert_eq!(visitor.get_as_browser("/").await.status(), StatusCode::OK);
    }
}

/// A host name nobody set up: the guest gets `421` with a page (or, from curl,
/// a line) saying what to do, in no operator words; the log tells the operator
/// which name and to add `--public-host`, once however often it is asked for.
#[tokio::test]
async fn a_name_not_set_up_gets_a_guest_page_and_the_operator_a_hint() {
    // Arrange
    let server = RunningServer::start_on("0.0.0.0:0", &[]).await;
    let port = server.addr.port();
    let guest = user_at_from(
        &format!("http://127.0.0.1:{port}"),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    );
    let host = format!("chat.example:{port}");

    // Act
    let page = send_as_browser(guest.get_request("/").header(HOST, &host)).await;
    let line = guest.get_request("/").header(HOST, &host).send().await;
    let line = line.expect("GET / as curl");
    let again = guest.get_request("/rooms/ABCD").header(HOST, &host).send();
    assert_eq!(again.await.expect("GET").status(), 421);
    let other = guest.get_request("/").header(HOST, "other.example").send();
    assert_eq!(other.await.expect("GET").status(), 421);

    // Assert: the guest's page and line.
    assert_eq!(page.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(content_type(&page).starts_with("text/html"));
    let html = page.text().await.expect("page");
    assert!(html.contains(WRONG_ADDRESS), "{html}");
    assert!(html.contains(ASK_FOR_THE_LINK), "{html}");
    assert!(!html.contains("public-host"), "no operator words: {html}");
    assert_eq!(line.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(content_type(&line).starts_with("text/plain"));
    let text = line.text().await.expect("text");
    assert_eq!(text, format!("{WRONG_ADDRESS} {ASK_FOR_THE_LINK}\n"));

    // Assert: the operator's hint, once per name.
    let last = server.wait_for_log("--public-host other.example", LOG_WAIT);
    assert!(
        last.await.is_some(),
        "a hint for other.example:\n{}",
        server.log()
    );
    let log = server.log();
    let hints: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("--public-host chat.example"))
        .collect();
    assert_eq!(hints.len(), 1, "one hint for chat.example:\n{log}");
    assert!(hints[0].contains("WARN"), "{}", hints[0]);
    assert!(hints[0].contains("host name chat.example"), "{}", hints[0]);
}

// ----- helpers of this file -----

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// At `base` (an address of this machine), from `from`: the home page loads,
/// alice creates a room and opens its stream, bob joins, alice sees him join.
/// Every form is posted as the page at `base` posts it (`Origin: base`).
/// Alice's stream, bob, and the room's code.
async fn chat_at(base: &str, from: IpAddr) -> (Events, User, String) {
    let mut alice = user_at_from(base, from);
    let mut bob = user_at_from(base, from);
    let home = alice.get_as_browser("/").await;
    assert_eq!(home.status(), StatusCode::OK, "GET {base}/");
    let origin = base.trim_end_matches('/');

    let created = alice
        .post_request("/rooms", &[("name", "alice")])
        .header(ORIGIN, origin)
        .send()
        .await
        .expect("POST /rooms");
    assert_eq!(created.status(), StatusCode::SEE_OTHER, "create at {base}");
    alice.cookie = Some(session_cookie(&created));
    let code = room_code(&created);
    let room = alice.get_as_browser(&format!("/rooms/{code}")).await;
    assert_eq!(room.status(), StatusCode::OK, "the room page at {base}");
    let mut alice_events = alice.open_events(&code).await;

    let joined = bob
        .post_request("/join", &[("name", "bob"), ("code", &code)])
        .header(ORIGIN, origin)
        .send()
        .await
        .expect("POST /join");
    assert_eq!(joined.status(), StatusCode::SEE_OTHER, "join at {base}");
    bob.cookie = Some(session_cookie(&joined));
    alice_events.expect_event("join", "bob").await;
    (alice_events, bob, code)
}

/// `user` posts `text` to room `code` as the room page at `base` does.
async fn say_from_page(user: &User, base: &str, code: &str, text: &str) {
    let sent = user
        .post_request(&format!("/rooms/{code}/messages"), &[("message", text)])
        .header(ORIGIN, base)
        .send()
        .await
        .expect("POST a message");
    assert_eq!(sent.status(), StatusCode::NO_CONTENT, "post at {base}");
}
