//! Two people chatting through a real nginx that holds event streams back (as
//! antivirus web filters and scanning proxies do): their pages notice by
//! themselves and poll instead. Through the ordinary hostile nginx, which passes
//! each event on, the same pages stay on the event stream.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::harness::{Browser, Chromedriver, with_screenshots};
use crate::helpers::spawn_app_with;
use crate::nginx::Nginx;

const JOIN_BUTTON: &str = "form[action='/join'] button";
const CREATE_BUTTON: &str = "form[action='/rooms'] button";

/// How soon after a page loads it must have noticed a held stream: chat.js
/// gives a stream 8 s to say `hello`.
const NOTICE_HELD_STREAM: Duration = Duration::from_secs(15);

/// How long a message may take to reach the other person once they poll.
const PER_MESSAGE: Duration = Duration::from_secs(2);

/// How long chat.js polls before it first tries a stream again.
const STREAM_AGAIN: Duration = Duration::from_secs(15);

/// The presence list refreshes every 15 s.
const PRESENCE_PATIENCE: Duration = Duration::from_secs(25);

const STATUS: &str = "document.getElementById('status')";

/// Creates a room from the home page; its code.
async fn create_room(browser: &Browser, name: &str) -> String {
    browser.goto("/").await;
    browser.fill("#start-name", name).await;
    browser.click(CREATE_BUTTON).await;
    browser
        .wait_until("the room page", "document.getElementById('room')")
        .await;
    browser.text_of("h1.code").await
}

async fn join_room(browser: &Browser, name: &str, code: &str) {
    browser.goto("/").await;
    browser.fill("#name", name).await;
    browser.fill("#code", code).await;
    browser.click(JOIN_BUTTON).await;
    browser
        .wait_until("the room page", "document.getElementById('room')")
        .await;
}

/// Waits until the page says it is in `state` (`connected`, `polling`).
async fn wait_state(browser: &Browser, state: &str, patience: Duration) {
    let script = format!("{STATUS}.dataset.state === '{state}'");
    browser
        .wait_until_within(patience, &format!("the page to be {state}"), &script)
        .await;
}

/// `from` sends `text`; `to` shows it within [`PER_MESSAGE`], and both show
/// it once.
async fn say(from: &Browser, to: &Browser, text: &str) {
    let sent = Instant::now();
    from.send(text).await;
    let script = format!(
        "[...document.querySelectorAll('#log .msg .text')].some(p => p.textContent === {})",
        serde_json::json!(text)
    );
    to.wait_until_within(PER_MESSAGE, &format!("{text:?} to arrive"), &script)
        .await;
    let took = sent.elapsed();
    from.wait_for_line(text).await;
    for browser in [from, to] {
        let copies = browser
            .message_texts()
            .await
            .into_iter()
            .filter(|shown| shown == text)
            .count();
        assert_eq!(copies, 1, "{text:?} is shown once (arrived in {took:?})");
    }
}

/// Waits until both people are listed, each marked connected.
async fn wait_both_connected(browser: &Browser) {
    let script = "[...document.querySelectorAll('#present li')].map(li => li.dataset.connected).join() === 'true,true'";
    browser
        .wait_until_within(PRESENCE_PATIENCE, "both marked connected", script)
        .await;
}

/// How many requests this page made to `path_part` (e.g. `/poll`).
async fn requests_to(browser: &Browser, path_part: &str) -> u64 {
    let script = format!(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('{path_part}')).length;"
    );
    browser.js(&script).await.as_u64().expect("a count")
}

/// What a browser gets from `path` through the proxy within `wait`, asking as
/// browsers do (gzip accepted): the response's bytes so far.
async fn first_bytes(base: &str, path: &str, cookie: &str, wait: Duration) -> Vec<u8> {
    let authority = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept-Encoding: gzip, deflate, br\r\nCookie: {cookie}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut buffer = [0u8; 4096];
        while let Ok(read @ 1..) = stream.read(&mut buffer).await {
            got.extend_from_slice(&buffer[..read]);
        }
    })
    .await;
    got
}

/// Through a proxy that holds event streams back, each page notices within
/// seconds of loading and says it is polling; then each message reaches the
/// other person within a second or two, once, and both are marked connected.
/// (With the fallback taken out of chat.js, this test fails: the pages never
/// leave "Connecting…" and no message arrives.)
#[tokio::test]
async fn through_a_proxy_that_holds_streams_the_pages_poll_and_chat() {
    let app = spawn_app_with(&[]).await;
    let nginx = Nginx::holding(app.addr).await;
    let driver = Chromedriver::start().await;
    let alice = Browser::open(&driver, &nginx.base).await;
    let bob = Browser::open(&driver, &nginx.base).await;
    let (a, b) = (alice.clone(), bob.clone());
    let base = nginx.base.clone();
    with_screenshots("through_a_holding_proxy", &[&alice, &bob], async move {
        // Arrange
        let code = create_room(&a, "Alice").await;
        let opened = Instant::now();
        join_room(&b, "Bob", &code).await;

        // Act
        wait_state(&a, "polling", NOTICE_HELD_STREAM).await;
        wait_state(&b, "polling", NOTICE_HELD_STREAM).await;
        let noticed = opened.elapsed();

        // Assert
        assert!(
            a.text_of("#status").await.starts_with("Polling"),
            "the page says how it is connected"
        );
        say(&a, &b, "can you hear me?").await;
        say(&b, &a, "yes, through the filter").await;
        for n in 1..=3 {
            say(&a, &b, &format!("message {n}")).await;
        }
        assert_eq!(
            b.message_texts().await,
            [
                "can you hear me?",
                "yes, through the filter",
                "message 1",
                "message 2",
                "message 3"
            ]
        );
        wait_both_connected(&a).await;
        // The proxy really holds streams: a browser-like request for the
        // stream gets nothing at all, while a page passes at once.
        let cookie = a
            .client
            .get_named_cookie("chat_session")
            .await
            .expect("the session cookie");
        let cookie = format!("{}={}", cookie.name(), cookie.value());
        let page = first_bytes(&base, "/", "", Duration::from_secs(2)).await;
        assert!(page.starts_with(b"HTTP/1.1 200"), "pages pass at once");
        let stream = first_bytes(
            &base,
            &format!("/rooms/{code}/events"),
            &cookie,
            Duration::from_secs(3),
        )
        .await;
        assert!(
            stream.is_empty(),
            "the proxy held the stream back (noticed after {noticed:?}), yet sent {} bytes",
            stream.len()
        );
    })
    .await;
}

/// When the proxy stops holding streams (a filter switched off), a polling
/// page returns to the event stream by itself: it says it is live again, and
/// messages keep arriving once each.
#[tokio::test]
async fn a_polling_page_returns_to_the_stream_when_it_gets_through() {
    let app = spawn_app_with(&[]).await;
    let nginx = Nginx::holding(app.addr).await;
    let driver = Chromedriver::start().await;
    let alice = Browser::open(&driver, &nginx.base).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    let upstream = app.addr;
    with_screenshots("returns_to_the_stream", &[&alice, &bob], async move {
        // Arrange
        let code = create_room(&a, "Alice").await;
        join_room(&b, "Bob", &code).await;
        wait_state(&a, "polling", NOTICE_HELD_STREAM).await;
        say(&b, &a, "while polling").await;

        // Act
        nginx.stop_holding(upstream).await;

        // Assert: chat.js tries a stream again 15 s after it began to poll.
        wait_state(&a, "connected", STREAM_AGAIN + NOTICE_HELD_STREAM).await;
        assert_eq!(a.text_of("#status").await, "Live");
        let polls = requests_to(&a, "/poll").await;
        say(&b, &a, "live again").await;
        say(&a, &b, "and back").await;
        assert_eq!(
            a.message_texts().await,
            ["while polling", "live again", "and back"]
        );
        assert_eq!(requests_to(&a, "/poll").await, polls, "polling stopped");
    })
    .await;
}

/// Through the ordinary hostile proxy, which passes each event on, the pages
/// stay on the event stream: they say they are live and never poll.
#[tokio::test]
async fn through_the_hostile_proxy_the_pages_stay_on_the_stream() {
    // A heartbeat within the proxy's 5 s idle timeout, as docs/proxies.md advises.
    let app = spawn_app_with(&["--keepalive", "2"]).await;
    let nginx = Nginx::hostile(app.addr).await;
    let driver = Chromedriver::start().await;
    let alice = Browser::open(&driver, &nginx.base).await;
    let bob = Browser::open(&driver, &nginx.base).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots("through_the_hostile_proxy", &[&alice, &bob], async move {
        // Arrange
        let code = create_room(&a, "Alice").await;
        join_room(&b, "Bob", &code).await;
        wait_state(&a, "connected", NOTICE_HELD_STREAM).await;
        wait_state(&b, "connected", NOTICE_HELD_STREAM).await;

        // Act
        say(&a, &b, "straight through").await;
        say(&b, &a, "no polling here").await;
        wait_both_connected(&a).await;
        // Longer than a held stream would be given to say hello.
        tokio::time::sleep(NOTICE_HELD_STREAM).await;
        say(&a, &b, "still live").await;

        // Assert
        for browser in [&a, &b] {
            assert_eq!(browser.text_of("#status").await, "Live");
            assert_eq!(
                requests_to(browser, "/poll").await,
                0,
                "the page never polled"
            );
        }
    })
    .await;
}
