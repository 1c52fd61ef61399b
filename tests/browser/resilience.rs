//! A room page left open for a long time, and through a server restart: it stays
//! small, keeps the reader's place, and says what is happening.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Browser, with_screenshots};
use crate::scenarios::{create_room, start, wait_connected};

/// The most entries (messages and notices) a page keeps: `MAX_LOG_ENTRIES` in
/// assets/chat.js.
const MAX_LOG_ENTRIES: usize = 500;

/// Messages Bob posts in all: enough to push the first ones out of the log.
const MESSAGES: usize = MAX_LOG_ENTRIES + 20;

/// `message 007`: fixed width, so no text is part of another.
fn message(n: usize) -> String {
    format!("message {n:03}")
}

/// Every entry of the log, as the message text or the notice: one script, not a
/// WebDriver query per entry.
async fn entries(browser: &Browser) -> Vec<String> {
    let script = "return [...document.querySelectorAll('#log > li')]
        .map(li => li.querySelector('.text')?.textContent ?? li.textContent);";
    let entries = browser.js(script).await;
    serde_json::from_value(entries).expect("a list of texts")
}

/// Where the entry with `text` is, in pixels below the top of the log's view.
async fn offset_in_view(browser: &Browser, text: &str) -> f64 {
    let script = format!(
        "const log = document.getElementById('log');
        const item = [...log.children].find(li => li.querySelector('.text')?.textContent === {});
        return item.getBoundingClientRect().top - log.getBoundingClientRect().top;",
        json!(text)
    );
    browser.js(&script).await.as_f64().expect("a number")
}

/// A tab that sees more than 500 entries keeps the newest 500, in order, dropping
/// the oldest as new ones come (those the server rendered too); a reader scrolled
/// up keeps their place while entries above them go.
#[tokio::test]
async fn a_long_running_tab_keeps_only_the_newest_entries() {
    // History reaches back past every message, so no stream is ever told to reset.
    let (app, driver) = start(&[
        "--message-burst",
        "1000",
        "--message-rate",
        "100/s",
        "--history",
        "1000",
    ])
    .await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let a = alice.clone();
    let mut bob = app.user();
    with_screenshots("a_long_running_tab_keeps_only_the_newest_entries", &[&alice], async move {
        let code = create_room(&a, "Alice").await;
        let joined = bob.join("Bob", &code).await;
        assert_eq!(joined.status(), StatusCode::SEE_OTHER);
        let post = |range: std::ops::Range<usize>| {
            let (bob, code) = (&bob, &code);
            async move {
                for n in range {
                    bob.say(code, &message(n)).await;
                }
            }
        };
        // The first entries come with the page: two joins and 20 messages.
        post(0..20).await;
        a.wait_for_line(&message(19)).await;
        a.client.refresh().await.expect("reload");
        wait_connected(&a).await;
        assert_eq!(entries(&a).await.len(), 22, "rendered by the server");

        post(20..400).await;
        a.wait_for_line(&message(399)).await;
        assert_eq!(entries(&a).await.len(), 402, "nothing dropped below the limit");
        // Alice scrolls up to read message 300 at the top of the log.
        let kept = message(300);
        let scroll = format!(
            "const log = document.getElementById('log');
            const item = [...log.children].find(li => li.querySelector('.text')?.textContent === {});
            log.scrollTop += item.getBoundingClientRect().top - log.getBoundingClientRect().top;
            return true;",
            json!(kept)
        );
        a.js(&scroll).await;
        let reading = offset_in_view(&a, &kept).await;

        post(400..MESSAGES).await;
        a.wait_for_line(&message(MESSAGES - 1)).await;

        // 522 entries came: the joins and the first 20 messages are gone.
        let newest: Vec<String> = (MESSAGES - MAX_LOG_ENTRIES..MESSAGES).map(message).collect();
        assert_eq!(entries(&a).await, newest, "the newest {MAX_LOG_ENTRIES}, newest last");
        let moved = offset_in_view(&a, &kept).await - reading;
        assert!(moved.abs() < 2.0, "the reader stays where they were (moved {moved}px)");
        let pill_hidden = "return document.getElementById('new-messages').hidden;";
        assert_eq!(a.js(pill_hidden).await, false, "the button is offered");
        a.click("#new-messages").await;
        let at_end = "(l => l.scrollHeight - l.scrollTop - l.clientHeight < 48)(document.getElementById('log'))";
        a.wait_until("the end of the log", at_end).await;

        // The server renders all 522 it keeps; the page keeps the newest 500.
        a.client.refresh().await.expect("reload");
        wait_connected(&a).await;
        assert_eq!(entries(&a).await, newest, "after a reload");
        a.wait_until("the end of the log", at_end).await;
    })
    .await;
}

/// When the server shuts down, its last frame on the stream makes the page say it
/// is restarting; the page keeps trying to reconnect, keeps its messages, and
/// does not reload.
#[tokio::test]
async fn a_server_shutting_down_is_shown_as_restarting() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let a = alice.clone();
    with_screenshots("a_server_shutting_down_is_shown_as_restarting", &[&alice], async move {
        create_room(&a, "Alice").await;
        a.send("before the restart").await;
        a.wait_for_line("before the restart").await;
        a.js("window.sameDocument = true; return true;").await;

        app.shut_down().await;

        let status = "document.getElementById('status')";
        let restarting = format!(
            "{status}.dataset.state === 'reconnecting' && {status}.textContent.includes('restarting')"
        );
        a.wait_until("the restarting notice", &restarting).await;
        // Failed reconnects (one a second, as the last frame's `retry:` asks) keep it.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            a.js(&format!("return {restarting};")).await,
            true,
            "still restarting: {}",
            a.text_of("#status").await
        );
        assert_eq!(a.js("return window.sameDocument === true;").await, Value::Bool(true), "no reload");
        assert_eq!(a.message_texts().await, ["before the restart"]);
    })
    .await;
}
