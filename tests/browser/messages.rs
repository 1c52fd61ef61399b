//! What people expect of a chat page's messages: several lines with Shift+Enter,
//! an unread count in the title (and notifications, if asked for) while the tab
//! is hidden, links that are links and nothing else, a paste too long kept whole
//! and not sent, and the date on messages of another day.

use serde_json::{Value, json};

use crate::harness::{Browser, with_screenshots};
use crate::owners::join;
use crate::scenarios::{create_room, start, wait_connected};

/// WebDriver's Shift and Enter keys; a modifier stays down until pressed again.
const SHIFT: &str = "\u{E008}";
const ENTER: &str = "\u{E007}";

/// Alice creates a room and Bob joins it; its code.
async fn bob_joins_alice(alice: &Browser, bob: &Browser) -> String {
    let code = create_room(alice, "Alice").await;
    join(bob, "Bob", &code).await;
    alice.wait_for_line("Bob has entered the room").await;
    code
}

/// Types into the composer as a person does (WebDriver keys).
async fn type_keys(browser: &Browser, keys: &str) {
    browser
        .client
        .find(fantoccini::Locator::Css("#message"))
        .await
        .expect("the composer")
        .send_keys(keys)
        .await
        .expect("type");
}

/// The last message's text, and how many lines it takes on the screen.
async fn last_message(browser: &Browser) -> (String, u64) {
    let script =
        "const text = [...document.querySelectorAll('#log .msg:not(.pending) .text')].pop();
        const range = document.createRange();
        range.selectNodeContents(text);
        const lines = new Set([...range.getClientRects()].map((box) => Math.round(box.top))).size;
        return [text.textContent, lines];";
    let found = browser.js(script).await;
    let text = found[0].as_str().expect("a message").to_owned();
    (text, found[1].as_u64().expect("a line count"))
}

/// Shift+Enter starts a new line and Enter sends: both people see the message on
/// two lines, live and in the history after a reload.
#[tokio::test]
async fn shift_enter_makes_a_two_line_message_both_see_on_two_lines() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots("shift_enter_two_lines", &[&alice, &bob], async move {
        // Arrange
        let _code = bob_joins_alice(&a, &b).await;

        // Act
        type_keys(&a, &format!("first line{SHIFT}{ENTER}{SHIFT}second line")).await;
        let typed = a
            .js("return document.getElementById('message').value;")
            .await;
        type_keys(&a, ENTER).await;

        // Assert
        assert_eq!(typed, "first line\nsecond line", "Shift+Enter made a line");
        b.wait_for_line("second line").await;
        a.wait_for_line("second line").await;
        for browser in [&a, &b] {
            let shown = last_message(browser).await;
            assert_eq!(shown, ("first line\nsecond line".to_owned(), 2));
            assert_eq!(browser.message_texts().await.len(), 1, "sent once");
        }
        b.client.refresh().await.expect("reload");
        wait_connected(&b).await;
        assert_eq!(
            last_message(&b).await,
            ("first line\nsecond line".to_owned(), 2),
            "the history shows the line break too"
        );
        assert_eq!(
            a.js("return document.getElementById('message').value;")
                .await,
            ""
        );
    })
    .await;
}

/// While Bob's page is hidden his title counts Alice's messages (not the lock
/// notice, not his own), and the bell he turned on notifies each, marked when it
/// names him; seen again, the title is the room's alone.
#[tokio::test]
async fn the_title_counts_unread_messages_while_the_page_is_hidden() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots("unread_in_the_title", &[&alice, &bob], async move {
        // Arrange
        let code = bob_joins_alice(&a, &b).await;
        let title = format!("Room {code}");
        assert_eq!(b.client.title().await.expect("title"), title);
        let origin = json!({ "permissions": ["notifications"], "origin": b.base });
        b.dev_tools("Browser.grantPermissions", origin).await;
        b.click("#bell").await;
        b.wait_until(
            "the bell on",
            "document.getElementById('bell').ariaPressed === 'true'",
        )
        .await;
        // Notifications as the page makes them, kept for the test to read.
        let spy = "const Real = window.Notification;
            window.notified = [];
            window.Notification = class {
                static get permission() { return Real.permission; }
                constructor(title, options) { window.notified.push([title, options.body]); }
            };";
        b.js(spy).await;
        b.set_page_hidden(true).await;

        // Act
        a.click("#lock button").await;
        b.wait_for_line("locked the room").await;
        let own = "const input = document.getElementById('message');
            input.value = 'my own';
            document.getElementById('send').requestSubmit();";
        b.js(own).await;
        b.wait_for_line("my own").await;
        a.send("hello there").await;
        a.send("are you there, bob?").await;
        b.wait_for_line("are you there, bob?").await;

        // Assert
        assert_eq!(
            b.client.title().await.expect("title"),
            format!("(2) {title}")
        );
        assert_eq!(
            b.js("return window.notified;").await,
            json!([
                ["Alice", "hello there"],
                ["Alice mentioned you", "are you there, bob?"]
            ])
        );
        assert_eq!(
            a.client.title().await.expect("title"),
            title,
            "Alice saw all"
        );
        b.set_page_hidden(false).await;
        let cleared = format!("document.title === {}", json!(title));
        b.wait_until("the count cleared", &cleared).await;
        a.send("seen at once").await;
        b.wait_for_line("seen at once").await;
        assert_eq!(b.client.title().await.expect("title"), title);
        assert_eq!(b.js("return window.notified.length;").await, 2);
    })
    .await;
}

/// The links of the last message: each one's text, `href` and `rel`.
async fn links(browser: &Browser) -> Value {
    let script = "const text = [...document.querySelectorAll('#log .msg:not(.pending) .text')].pop();
        return [...text.querySelectorAll('*')].map((e) => [e.tagName, e.textContent, e.getAttribute('href'), e.rel]);";
    browser.js(script).await
}

/// An http(s) address in a message is a link (`rel="noopener noreferrer nofollow
/// ugc"`), the same live and after a reload; `javascript:` and HTML stay text.
#[tokio::test]
async fn links_in_messages_are_links_and_nothing_else_is() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots("links_in_messages", &[&alice, &bob], async move {
        // Arrange
        let _code = bob_joins_alice(&a, &b).await;
        let typed = "see (https://example.com/a_(b)). javascript:alert(1) <b>x</b> https://b.example/?q=1&r=\"2\"";
        let expected = json!([
            ["A", "https://example.com/a_(b)", "https://example.com/a_(b)", "noopener noreferrer nofollow ugc"],
            ["A", "https://b.example/?q=1&r=\"2", "https://b.example/?q=1&r=\"2", "noopener noreferrer nofollow ugc"],
        ]);

        // Act
        a.send(typed).await;
        b.wait_for_line("javascript:alert(1)").await;

        // Assert
        let html = "return [...document.querySelectorAll('#log .msg:not(.pending) .text')].pop().innerHTML;";
        let live = b.js(html).await;
        assert_eq!(links(&b).await, expected, "live: {live}");
        assert_eq!(b.message_texts().await, [typed]);
        b.client.refresh().await.expect("reload");
        wait_connected(&b).await;
        assert_eq!(links(&b).await, expected, "rendered by the server");
        assert_eq!(b.js(html).await, live, "the same markup live and rendered");
        assert_eq!(b.message_texts().await, [typed]);
        assert!(b.client.get_alert_text().await.is_err(), "no alert fired");
    })
    .await;
}

/// Near the limit the composer says how many characters are left; a paste
/// 100 characters too long is kept whole, said to be too long, and not sent.
#[tokio::test]
async fn a_paste_too_long_is_kept_whole_and_not_sent() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots("a_paste_too_long", &[&alice, &bob], async move {
        // Arrange
        let _code = bob_joins_alice(&a, &b).await;
        let paste = |chars: usize| {
            format!(
                "const input = document.getElementById('message');
                input.value = 'é'.repeat({chars});
                input.dispatchEvent(new InputEvent('input', {{ inputType: 'insertFromPaste' }}));
                const left = document.getElementById('chars-left');
                return [left.hidden, left.textContent, input.value.length];"
            )
        };
        assert_eq!(
            a.js(&paste(1700)).await[0],
            true,
            "far from the limit: quiet"
        );
        assert_eq!(
            a.js(&paste(1900)).await,
            json!([false, "100 characters left", 1900])
        );

        // Act
        let pasted = a.js(&paste(2100)).await;
        type_keys(&a, ENTER).await;

        // Assert
        assert_eq!(
            pasted,
            json!([false, "100 characters too long", 2100]),
            "kept whole"
        );
        a.wait_until("the refusal", "!document.getElementById('error').hidden")
            .await;
        assert_eq!(
            a.text_of("#error").await,
            "Not sent: the message is 100 characters too long."
        );
        let kept = a
            .js("return document.getElementById('message').value.length;")
            .await;
        assert_eq!(kept, 2100, "the text is still there to shorten");
        assert_eq!(a.texts("#log .msg").await.len(), 0, "nothing sending");
        a.js("document.getElementById('message').value = ''; return 1;")
            .await;
        a.send("short").await;
        b.wait_for_line("short").await;
        assert_eq!(
            b.message_texts().await,
            ["short"],
            "the long one never went"
        );
    })
    .await;
}

/// Bob's clock is two days ahead: a message sent now is of an earlier day for
/// him, and shows its date (in his zone), live and after a reload; Alice, whose
/// day it is, sees the time alone.
#[tokio::test]
async fn a_message_of_another_day_shows_its_date() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots("another_day", &[&alice, &bob], async move {
        // Arrange: every page Bob opens from now on runs two days ahead.
        let ahead = "(() => {
            const Real = Date;
            window.RealDate = Real;
            Date = class extends Real {
                constructor(...given) { super(...(given.length ? given : [Real.now() + 2 * 86400000])); }
                static now() { return Real.now() + 2 * 86400000; }
            };
        })();";
        b.dev_tools("Page.addScriptToEvaluateOnNewDocument", json!({ "source": ahead }))
            .await;
        let _code = bob_joins_alice(&a, &b).await;

        // Act
        a.send("from the past").await;
        b.wait_for_line("from the past").await;
        a.wait_for_line("from the past").await;

        // Assert
        let shown = "const time = [...document.querySelectorAll('#log .msg:not(.pending) time')].pop();
            const at = new (window.RealDate ?? Date)(time.dateTime);
            return [time.textContent,
                at.toLocaleString([], { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' }),
                at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })];";
        let seen = b.js(shown).await;
        assert_eq!(seen[0], seen[1], "Bob sees the date: {seen}");
        let seen = a.js(shown).await;
        assert_eq!(seen[0], seen[2], "Alice sees the time alone: {seen}");
        b.client.refresh().await.expect("reload");
        wait_connected(&b).await;
        let seen = b.js(shown).await;
        assert_eq!(seen[0], seen[1], "and after a reload: {seen}");
    })
    .await;
}
