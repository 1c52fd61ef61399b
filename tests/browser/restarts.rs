//! A restart of the real binary (SIGTERM, then a start on the same port and
//! data directory) while two people chat in Chromium: the pages say the server
//! is restarting, a message typed meanwhile is delivered once, and the room
//! goes on as if nothing happened.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Browser, Chromedriver, with_screenshots};
use crate::helpers::{RunningServer, TempDir, server_command_keeping};
use crate::owners::join;
use crate::scenarios::create_room;

const RUST_LOG: &str = "info,warp::server=off";

/// How long a page may take to be Live again after the server is back: a
/// reconnect the browser tried while the server was down makes chat.js fall
/// back to polling, which tries again after 1 s, 2 s, 4 s…
const BACK_PATIENCE: Duration = Duration::from_secs(30);

/// How long a page may take to show who is connected: chat.js asks for the
/// people list at once when it reconnects, then every 15 s.
const PRESENCE_PATIENCE: Duration = Duration::from_secs(15 + 10);

/// The binary keeping its rooms and secret in `data`, on `bind`
/// (`127.0.0.1:0` for any port).
async fn start_keeping(data: &Path, bind: &str) -> RunningServer {
    let command = server_command_keeping(RUST_LOG, data);
    RunningServer::start_command(command, &["--bind", bind]).await
}

/// How many lines of the log (not counting ours still sending) contain `text`.
async fn lines_with(browser: &Browser, text: &str) -> usize {
    let lines = browser.log_lines().await;
    lines.iter().filter(|line| line.contains(text)).count()
}

/// The join and leave notices in the log, in order.
async fn notices(browser: &Browser) -> Vec<String> {
    let lines = browser.log_lines().await;
    lines
        .into_iter()
        .filter(|line| line.contains("has entered the room") || line.contains("has left the room"))
        .collect()
}

/// Waits until the page says the server is restarting.
async fn wait_restarting(browser: &Browser) {
    let status = "document.getElementById('status')";
    let restarting = format!(
        "{status}.dataset.state === 'reconnecting' && {status}.textContent.includes('restarting')"
    );
    browser
        .wait_until("the restarting notice", &restarting)
        .await;
}

/// Waits until the page's status is Live again.
async fn wait_live_again(browser: &Browser) {
    let live = "(s => s.dataset.state === 'connected' && s.textContent.trim() === 'Live')(document.getElementById('status'))";
    browser
        .wait_until_within(BACK_PATIENCE, "Live again", live)
        .await;
}

/// Waits until the people list shows exactly `people` with these connection marks.
async fn wait_marks(browser: &Browser, people: &[(&str, bool)]) {
    let script = format!(
        "JSON.stringify([...document.querySelectorAll('#present li')].map(li => [li.querySelector('bdi')?.textContent, li.dataset.connected === 'true'])) === {}",
        json!(serde_json::to_string(people).expect("json"))
    );
    browser
        .wait_until_within(PRESENCE_PATIENCE, &format!("marks {people:?}"), &script)
        .await;
}

/// Alice and Bob chat; the server is stopped with SIGTERM, and while it is
/// down Alice sends a message, which waits as "sending…"; the server starts
/// again on the same port and data directory. Both pages said it was
/// restarting and are Live again without a reload, the message is there once
/// for each, nobody was shown leaving or joining, the people are the same,
/// and the conversation goes on.
#[tokio::test]
async fn a_restart_keeps_the_conversation_and_delivers_what_was_typed_once() {
    let data = TempDir::new("browser-restart");
    let mut server = start_keeping(data.path(), "127.0.0.1:0").await;
    // The port the system picked, to start again on.
    let bind = server.addr.to_string();
    let driver = Chromedriver::start().await;
    let alice = Browser::open(&driver, &server.url("")).await;
    let bob = Browser::open(&driver, &server.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots(
        "a_restart_keeps_the_conversation",
        &[&alice, &bob],
        async move {
            // Arrange
            let code = create_room(&a, "Alice").await;
            join(&b, "Bob", &code).await;
            a.wait_for_line("Bob has entered the room").await;
            a.send("before the restart").await;
            for browser in [&a, &b] {
                browser.wait_for_line("before the restart").await;
                wait_marks(browser, &[("Alice", true), ("Bob", true)]).await;
            }
            let notices_before = [notices(&a).await, notices(&b).await];
            let people_before = [a.present().await, b.present().await];
            for browser in [&a, &b] {
                browser.js("window.sameDocument = true; return true;").await;
            }

            // Act
            server.stop().await;
            for browser in [&a, &b] {
                wait_restarting(browser).await;
            }
            let typed = "typed while the server was down";
            a.send(typed).await;
            let waiting = a.pending_texts().await;
            let bob_meanwhile = b.message_texts().await;
            let mut server = start_keeping(data.path(), &bind).await;

            // Assert
            assert_eq!(
                waiting,
                [typed],
                "it waits as sending… while the server is down"
            );
            assert_eq!(
                bob_meanwhile,
                ["before the restart"],
                "Bob has not got it yet"
            );
            for browser in [&a, &b] {
                wait_live_again(browser).await;
                browser.wait_for_line(typed).await;
            }
            let nothing_pending = "!document.querySelector('#log .pending')";
            a.wait_until("nothing still sending", nothing_pending).await;
            for (who, browser) in [("Alice", &a), ("Bob", &b)] {
                assert_eq!(lines_with(browser, typed).await, 1, "{who} sees it once");
            }
            for (i, (who, browser)) in [("Alice", &a), ("Bob", &b)].into_iter().enumerate() {
                wait_marks(browser, &[("Alice", true), ("Bob", true)]).await;
                assert_eq!(
                    browser.present().await,
                    people_before[i],
                    "{who}'s people list"
                );
                assert_eq!(
                    notices(browser).await,
                    notices_before[i],
                    "{who} sees nobody leave or join for the restart"
                );
                let same = browser.js("return window.sameDocument === true;").await;
                assert_eq!(same, true, "{who}'s page was not reloaded");
            }

            // Both pages keep working: each sends, the other receives.
            b.send("after the restart").await;
            a.wait_for_line("after the restart").await;
            a.send("still here").await;
            b.wait_for_line("still here").await;
            let expected = [
                "before the restart",
                typed,
                "after the restart",
                "still here",
            ];
            for (who, browser) in [("Alice", &a), ("Bob", &b)] {
                assert_eq!(
                    browser.message_texts().await,
                    expected,
                    "{who}'s conversation"
                );
            }
            let restored = server
                .wait_for_log("restored 1 rooms", Duration::ZERO)
                .await;
            assert!(
                restored.is_some(),
                "the room came from the snapshot:\n{}",
                server.log()
            );
            server.stop().await;
        },
    )
    .await;
}
