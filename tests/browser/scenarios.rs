//! What two people do in their browsers, and what each of them sees.

use std::time::Duration;

use crate::harness::{Browser, Chromedriver, with_screenshots};
use crate::helpers::{TestApp, spawn_app_with};
use crate::relay::Relay;

const JOIN_BUTTON: &str = "form[action='/join'] button";
const CREATE_BUTTON: &str = "form[action='/rooms'] button";

/// How long a page may take to show that someone's connection changed: chat.js
/// asks for the people list a second after a join or leave, and every 15 s.
const PRESENCE_PATIENCE: Duration = Duration::from_secs(15 + 10);

/// Creates a room from the home page and waits for the live connection.
pub(crate) async fn create_room(browser: &Browser, name: &str) -> String {
    browser.goto("/").await;
    browser.fill("#start-name", name).await;
    browser.click(CREATE_BUTTON).await;
    wait_connected(browser).await;
    browser.text_of("h1.code").await
}

/// Joins from the home page with the code typed as given.
async fn join_room(browser: &Browser, name: &str, typed_code: &str) {
    browser.goto("/").await;
    browser.fill("#name", name).await;
    browser.fill("#code", typed_code).await;
    browser.click(JOIN_BUTTON).await;
}

pub(crate) async fn wait_connected(browser: &Browser) {
    let script = "document.getElementById('status')?.dataset.state === 'connected'";
    browser.wait_until("the live connection", script).await;
}

/// Waits until the people list names exactly `names`, in order.
async fn wait_present(browser: &Browser, names: &[&str]) {
    let script = format!(
        "JSON.stringify([...document.querySelectorAll('#present li')].map(li => li.querySelector('bdi')?.textContent)) === {:?}",
        serde_json::to_string(names).expect("json")
    );
    browser
        .wait_until(&format!("presence {names:?}"), &script)
        .await;
}

/// Waits until the people list shows exactly `people` with these connection
/// marks, then checks that each mark is also said in words.
async fn wait_marks(browser: &Browser, people: &[(&str, bool)]) {
    let script = format!(
        "JSON.stringify([...document.querySelectorAll('#present li')].map(li => [li.querySelector('bdi')?.textContent, li.dataset.connected === 'true'])) === {:?}",
        serde_json::to_string(people).expect("json")
    );
    browser
        .wait_until_within(PRESENCE_PATIENCE, &format!("marks {people:?}"), &script)
        .await;
    let said = browser
        .js("return [...document.querySelectorAll('#present li')].map(li => [li.dataset.connected, li.querySelector('.visually-hidden')?.textContent, li.querySelector('.dot')?.title]);")
        .await;
    for entry in said.as_array().expect("a list") {
        let words = if entry[0] == "true" {
            "connected"
        } else {
            "not connected"
        };
        assert_eq!(entry[1], words, "the mark is said in words: {said}");
        assert_eq!(entry[2], words, "the dot's title says it too: {said}");
    }
}

pub(crate) async fn start(args: &[&str]) -> (TestApp, Chromedriver) {
    (spawn_app_with(args).await, Chromedriver::start().await)
}

/// A creates a room, B joins with the code in lower case; both see the join and
/// each other; messages both ways arrive in both logs, in order, as text.
#[tokio::test]
async fn two_people_chat_both_ways() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots("two_people_chat_both_ways", &[&alice, &bob], async move {
        let code = create_room(&a, "Alice").await;
        assert!(a.client.title().await.unwrap().contains(&code), "the title names the room");

        join_room(&b, "Bob", &code.to_lowercase()).await;
        b.wait_for_path(&format!("/rooms/{code}")).await;
        wait_connected(&b).await;

        for browser in [&a, &b] {
            browser.wait_for_line("Bob has entered the room").await;
            wait_present(browser, &["Alice", "Bob"]).await;
            wait_marks(browser, &[("Alice", true), ("Bob", true)]).await;
        }
        a.send("Hi Bob!").await;
        b.wait_for_line("Hi Bob!").await;
        b.send("Hello Alice").await;
        a.wait_for_line("Hello Alice").await;
        a.send("Shall we start?").await;
        b.wait_for_line("Shall we start?").await;

        let expected = ["Hi Bob!", "Hello Alice", "Shall we start?"];
        assert_eq!(a.message_texts().await, expected);
        assert_eq!(b.message_texts().await, expected);
        for browser in [&a, &b] {
            let lines = browser.log_lines().await;
            let joins = lines.iter().filter(|l| l.contains("Bob has entered")).count();
            assert_eq!(joins, 1, "Bob's join is shown once: {lines:?}");
        }
        let field = "document.activeElement.id === 'message' && document.activeElement.value === ''";
        assert_eq!(a.js(&format!("return {field};")).await, true, "Enter sends, clears, keeps focus");
        let mine = a.js("return [...document.querySelectorAll('#log .msg.mine .text')].map(p => p.textContent);").await;
        assert_eq!(mine, serde_json::json!(["Hi Bob!", "Shall we start?"]), "own messages set apart");
    })
    .await;
}

/// Markup in a message is shown as text, and no script from it runs.
#[tokio::test]
async fn markup_in_a_message_is_shown_as_text() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots(
        "markup_in_a_message_is_shown_as_text",
        &[&alice, &bob],
        async move {
            let code = create_room(&a, "Alice").await;
            join_room(&b, "<b>Bob</b>", &code).await;
            wait_connected(&b).await;
            let attack = "<img src=x onerror=alert(1)>";

            a.send(attack).await;

            for browser in [&a, &b] {
                browser.wait_for_line(attack).await;
                assert_eq!(browser.message_texts().await, [attack]);
                assert_eq!(
                    browser
                        .js("return document.querySelectorAll('#log img, #present b').length;")
                        .await,
                    0
                );
                assert!(
                    browser.client.get_alert_text().await.is_err(),
                    "no alert fired"
                );
            }
            b.client.refresh().await.expect("reload");
            wait_connected(&b).await;
            assert_eq!(
                b.message_texts().await,
                [attack],
                "the server-rendered history is escaped too"
            );
            assert!(
                b.client.get_alert_text().await.is_err(),
                "no alert fired after a reload"
            );
            wait_present(&b, &["Alice", "<b>Bob</b>"]).await;
        },
    )
    .await;
}

/// B reloads the page: the room survives, its history is there, and nobody sees
/// B leave or join again.
#[tokio::test]
async fn a_reload_keeps_the_room_and_makes_no_notices() {
    let grace = Duration::from_secs(2);
    let (app, driver) = start(&["--grace", "2"]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots(
        "a_reload_keeps_the_room_and_makes_no_notices",
        &[&alice, &bob],
        async move {
            let code = create_room(&a, "Alice").await;
            join_room(&b, "Bob", &code).await;
            wait_connected(&b).await;
            a.send("before the reload").await;
            b.wait_for_line("before the reload").await;

            b.client.refresh().await.expect("reload");
            wait_connected(&b).await;
            // Absence over the grace period can only be shown by letting it pass.
            tokio::time::sleep(grace + Duration::from_secs(1)).await;
            a.send("after the grace period").await;

            for browser in [&a, &b] {
                browser.wait_for_line("after the grace period").await;
                assert_eq!(
                    browser.message_texts().await,
                    ["before the reload", "after the grace period"]
                );
                let lines = browser.log_lines().await;
                let notices = |text: &str| lines.iter().filter(|l| l.contains(text)).count();
                assert_eq!(notices("Bob has entered the room"), 1, "{lines:?}");
                assert_eq!(notices("Bob has left the room"), 0, "{lines:?}");
                wait_present(browser, &["Alice", "Bob"]).await;
            }
        },
    )
    .await;
}

/// B's connection is cut while A sends three messages: B reconnects by itself and
/// shows all three, once each.
#[tokio::test]
async fn a_cut_connection_resumes_without_losing_or_repeating_messages() {
    let (app, driver) = start(&["--grace", "30"]).await;
    let relay = Relay::start(app.addr).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &relay.base).await;
    let (a, b) = (alice.clone(), bob.clone());
    let relay = std::sync::Arc::new(relay);
    let network = std::sync::Arc::clone(&relay);
    with_screenshots("a_cut_connection_resumes", &[&alice, &bob], async move {
        let code = create_room(&a, "Alice").await;
        join_room(&b, "Bob", &code).await;
        wait_connected(&b).await;
        a.send("before the cut").await;
        b.wait_for_line("before the cut").await;

        network.refuse();
        let reconnecting = "document.getElementById('status').dataset.state === 'reconnecting'";
        b.wait_until("the reconnecting indicator", reconnecting)
            .await;
        for text in ["one", "two", "three"] {
            a.send(text).await;
            a.wait_for_line(text).await;
        }
        network.restore();

        wait_connected(&b).await;
        b.wait_for_line("three").await;
        assert_eq!(
            b.message_texts().await,
            ["before the cut", "one", "two", "three"]
        );
        let lines = b.log_lines().await;
        assert!(
            !lines.iter().any(|l| l.contains("has left")),
            "no leave notice: {lines:?}"
        );
    })
    .await;
    drop(relay);
}

/// With JavaScript off, B can still join and send a message that A receives live.
#[tokio::test]
async fn without_javascript_a_person_can_still_send() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open_without_javascript(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots(
        "without_javascript_a_person_can_still_send",
        &[&alice, &bob],
        async move {
            let code = create_room(&a, "Alice").await;
            a.send("can you read this?").await;
            join_room(&b, "Bob", &code).await;
            b.wait_for_path(&format!("/rooms/{code}")).await;
            assert!(b.text_of("#status").await.contains("need JavaScript"));
            assert_eq!(
                b.message_texts().await,
                ["can you read this?"],
                "history is on the page"
            );
            // Bob is announced when he joins, though he never opens a stream.
            let lines = b.log_lines().await;
            assert_eq!(
                lines.last().map(String::as_str),
                Some("Bob has entered the room"),
                "his own join is in the history: {lines:?}"
            );
            assert_eq!(
                b.presence().await,
                [("Alice".to_owned(), true), ("Bob".to_owned(), false)],
                "the server marks who has the room open"
            );
            a.wait_for_line("Bob has entered the room").await;
            wait_marks(&a, &[("Alice", true), ("Bob", false)]).await;

            b.fill("#message", "yes, without JavaScript").await;
            b.click("#send button").await;

            a.wait_for_line("yes, without JavaScript").await;
            b.wait_for_path(&format!("/rooms/{code}")).await;
            let texts = b.message_texts().await;
            assert_eq!(
                texts,
                ["can you read this?", "yes, without JavaScript"],
                "the post came back to the room"
            );
        },
    )
    .await;
}

/// A leaves, then B leaves: the room is gone, and joining it shows "no such room".
#[tokio::test]
async fn when_everyone_leaves_the_room_is_gone() {
    let (app, driver) = start(&["--grace", "0"]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    let probe = app.user();
    with_screenshots(
        "when_everyone_leaves_the_room_is_gone",
        &[&alice, &bob],
        async move {
            let code = create_room(&a, "Alice").await;
            join_room(&b, "Bob", &code).await;
            wait_connected(&b).await;
            wait_present(&a, &["Alice", "Bob"]).await;

            a.click("form.leave button").await;
            a.wait_for_path("/").await;
            b.wait_for_line("Alice has left the room").await;
            wait_present(&b, &["Bob"]).await;
            b.click("form.leave button").await;
            b.wait_for_path("/").await;
            // The room closes as soon as Bob's stream has ended.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while probe.get(&format!("/rooms/{code}")).await.status()
                != reqwest::StatusCode::NOT_FOUND
            {
                assert!(tokio::time::Instant::now() < deadline, "the room closes");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }

            join_room(&b, "Bob", &code).await;
            b.wait_for_path("/join").await;
            assert!(b.text_of(".error").await.contains("There is no room"));
        },
    )
    .await;
}

/// Someone who joins is listed at once, marked not connected until a page of
/// theirs has the room open; a right-to-left name is isolated wherever it shows.
#[tokio::test]
async fn a_newcomer_is_listed_at_once_with_a_connection_mark() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    let carol = app.user();
    with_screenshots(
        "a_newcomer_is_listed_at_once_with_a_connection_mark",
        &[&alice, &bob],
        async move {
            let code = create_room(&a, "Alice").await;
            wait_marks(&a, &[("Alice", true)]).await;

            // Carol joins with a plain HTTP client and never opens a stream.
            let mut carol = carol;
            let joined = carol.join("Carol", &code).await;
            assert_eq!(joined.status(), reqwest::StatusCode::SEE_OTHER);
            a.wait_for_line("Carol has entered the room").await;
            wait_present(&a, &["Alice", "Carol"]).await;
            // Past the refresh that follows a join, she is still not connected.
            tokio::time::sleep(Duration::from_secs(2)).await;
            wait_marks(&a, &[("Alice", true), ("Carol", false)]).await;

            // Bob's name is right-to-left letters, then Latin ones.
            let rtl = "\u{5D0}\u{5D1} Bob";
            join_room(&b, rtl, &code).await;
            wait_present(&a, &["Alice", "Carol", rtl]).await;
            wait_connected(&b).await;
            wait_marks(&a, &[("Alice", true), ("Carol", false), (rtl, true)]).await;
            wait_marks(&b, &[("Alice", true), ("Carol", false), (rtl, true)]).await;
            let hello = "\u{5E9}\u{5DC}\u{5D5}\u{5DD} Alice";
            b.send(hello).await;
            a.wait_for_line(hello).await;

            let isolated = format!(
                "(name => {{
                    const bdi = (css) => [...document.querySelectorAll(css)].filter(b => b.textContent === name).length;
                    return [bdi('#log .notice bdi'), bdi('#log .msg bdi.who'), bdi('#present li bdi'),
                        [...document.querySelectorAll('#log .msg .text')].every(p => p.dir === 'auto')];
                }})({})",
                serde_json::json!(rtl)
            );
            let expected = serde_json::json!([1, 1, 1, true]);
            assert_eq!(a.js(&format!("return {isolated};")).await, expected, "live");
            a.client.refresh().await.expect("reload");
            wait_connected(&a).await;
            assert_eq!(
                a.js(&format!("return {isolated};")).await,
                expected,
                "rendered by the server"
            );
            assert_eq!(
                a.presence().await,
                [
                    ("Alice".to_owned(), true),
                    ("Carol".to_owned(), false),
                    (rtl.to_owned(), true)
                ],
                "the marks rendered by the server"
            );
            let me = "document.querySelector('.me bdi')?.textContent";
            assert_eq!(b.js(&format!("return {me};")).await, rtl, "You are <bdi>NAME</bdi>");
        },
    )
    .await;
}

/// Not a check but a picture: a two-person conversation for the README, one at
/// a desktop, one on a phone. `scripts/screenshot` runs it and writes
/// `docs/screenshot.png` and `docs/screenshot-phone.png`.
#[tokio::test]
#[ignore = "writes docs/screenshot*.png; run by scripts/screenshot"]
async fn screenshot_of_a_conversation() {
    let (app, driver) = start(&[]).await;
    let maya = Browser::open(&driver, &app.url("")).await;
    let tom = Browser::open(&driver, &app.url("")).await;
    // Maya at a desktop, Tom on his phone.
    maya.set_viewport_size((1280, 800)).await;
    tom.set_viewport_size((390, 844)).await;
    let code = create_room(&maya, "Maya").await;
    join_room(&tom, "Tom", &code).await;
    wait_connected(&tom).await;
    let lines = [
        (&maya, "Hi Tom! Did the hotel Wi-Fi let you in this time?"),
        (
            &tom,
            "It did. Same proxy that kills every chat app, and this just works.",
        ),
        (&maya, "Plain HTTP all the way down. Dinner at 8?"),
        (&tom, "Perfect. I'll book the place by the river."),
        (&maya, "See you there!"),
    ];
    for (who, text) in lines {
        who.send(text).await;
        maya.wait_for_line(text).await;
        tom.wait_for_line(text).await;
    }
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    for (who, file) in [(&maya, "screenshot.png"), (&tom, "screenshot-phone.png")] {
        who.js("document.activeElement?.blur(); return true;").await;
        who.screenshot(&docs.join(file)).await;
        assert!(docs.join(file).exists(), "{file} was written");
    }
    maya.close().await;
    tom.close().await;
}

/// A reader who scrolled up to read is not pulled down by a new message: a
/// "New messages" button appears instead, and takes them to the end.
#[tokio::test]
async fn a_reader_who_scrolled_up_is_offered_the_new_messages() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots("a_reader_who_scrolled_up", &[&alice, &bob], async move {
        let code = create_room(&a, "Alice").await;
        join_room(&b, "Bob", &code).await;
        wait_connected(&b).await;
        // Enough to overflow the log, few enough to stay inside the message burst.
        for n in 0..15 {
            let line = format!("line {n}");
            a.send(&line).await;
            a.wait_for_line(&line).await;
        }
        b.wait_for_line("line 14").await;
        let pill_hidden = "return document.getElementById('new-messages').hidden;";
        assert_eq!(b.js(pill_hidden).await, true, "no button while following");

        b.js("document.getElementById('log').scrollTop = 0; return true;").await;
        a.send("news").await;
        b.wait_for_line("news").await;

        let scroll_top = "return document.getElementById('log').scrollTop;";
        assert_eq!(b.js(scroll_top).await, 0, "the reader stays where they were");
        assert_eq!(b.js(pill_hidden).await, false, "the button is offered");
        b.click("#new-messages").await;
        let at_end = "(l => l.scrollHeight - l.scrollTop - l.clientHeight < 48)(document.getElementById('log'))";
        b.wait_until("the end of the log", at_end).await;
        assert_eq!(b.js(pill_hidden).await, true, "the button goes once used");
    })
    .await;
}
