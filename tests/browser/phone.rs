//! The room page on a phone and the room's states: the composer always on
//! screen with the log the only thing that scrolls, the people folded into
//! "N here", Remove asking first, and a page whose room is gone saying so,
//! keeping what was typed and offering the ways on.

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::harness::{Browser, with_screenshots};
use crate::helpers::{redis_mode, spawn_app_at};
use crate::owners::join;
use crate::scenarios::{create_room, start, wait_connected};

/// The phone sizes the page is made for: a common phone, and a small one.
const PHONES: [(u32, u32); 2] = [(390, 844), (360, 640)];

/// Where the composer is, and whether anything but the log scrolls.
const LAYOUT: &str = "const send = document.getElementById('send').getBoundingClientRect();
    const log = document.getElementById('log');
    return { top: send.top, bottom: send.bottom, left: send.left, right: send.right,
      width: innerWidth, height: innerHeight,
      page_height: document.scrollingElement.scrollHeight,
      page_width: document.scrollingElement.scrollWidth,
      log_scrolls: log.scrollHeight > log.clientHeight,
      head: document.querySelector('.room-head').getBoundingClientRect().height };";

/// Checks that the composer lies inside the viewport and that the document
/// itself does not scroll.
async fn assert_composer_on_screen(browser: &Browser, when: &str) {
    let layout = browser.js(LAYOUT).await;
    let number = |key: &str| layout[key].as_f64().unwrap_or(f64::NAN);
    assert!(
        number("top") >= 0.0,
        "{when}: #send above the screen: {layout}"
    );
    assert!(
        number("bottom") <= number("height"),
        "{when}: #send below the screen: {layout}"
    );
    assert!(
        number("left") >= 0.0 && number("right") <= number("width"),
        "{when}: #send beside the screen: {layout}"
    );
    assert!(
        number("page_height") <= number("height") && number("page_width") <= number("width"),
        "{when}: the page itself scrolls: {layout}"
    );
    assert_eq!(
        layout["log_scrolls"],
        json!(true),
        "{when}: the log scrolls: {layout}"
    );
    assert!(
        number("head") <= 48.0,
        "{when}: the header is one line: {layout}"
    );
}

/// At 390×844 and 360×640, with 40 messages in the log, the composer is on
/// screen before and after the message field is focused, and while an
/// on-screen keyboard takes the lower part of the screen; only the log scrolls.
#[tokio::test]
async fn on_a_phone_the_composer_stays_on_screen_and_only_the_log_scrolls() {
    let (app, driver) = start(&["--message-burst", "100"]).await;
    for (width, height) in PHONES {
        let alice = Browser::open(&driver, &app.url("")).await;
        let a = alice.clone();
        let mut bob = app.user();
        with_screenshots("phone_composer_on_screen", &[&alice], async move {
            // Arrange
            a.set_viewport_size((width, height)).await;
            let code = create_room(&a, "Alice").await;
            bob.join("Bob", &code).await;
            for i in 1..=40 {
                bob.say(&code, &format!("message {i} of 40")).await;
            }
            a.wait_for_line("message 40 of 40").await;
            let site = a
                .client
                .find(Locator::Css(".site"))
                .await
                .expect("site header");
            assert!(
                !site.is_displayed().await.expect("shown or not"),
                "no site header"
            );

            // Act and assert
            assert_composer_on_screen(&a, &format!("{width}x{height}")).await;
            a.click("#message").await;
            assert_eq!(a.js("return document.activeElement.id;").await, "message");
            assert_composer_on_screen(&a, &format!("{width}x{height}, focused")).await;
            // An on-screen keyboard resizes the page (interactive-widget=resizes-content).
            a.set_viewport_size((width, height - 300)).await;
            assert_composer_on_screen(&a, &format!("{width}x{height}, keyboard open")).await;
        })
        .await;
    }
}

/// On a phone the people list is folded into "2 here"; opening it shows
/// everyone, with the owner's Remove button.
#[tokio::test]
async fn on_a_phone_the_people_fold_into_n_here_which_opens() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let a = alice.clone();
    let mut bob = app.user();
    with_screenshots("phone_people_fold", &[&alice], async move {
        // Arrange
        a.set_viewport_size((390, 844)).await;
        let code = create_room(&a, "Alice").await;
        bob.join("Bob", &code).await;
        a.wait_until(
            "2 here",
            "document.getElementById('people-count').textContent === '2 here'",
        )
        .await;
        let folded = a
            .js("return !document.getElementById('people').open;")
            .await;
        assert_eq!(folded, true, "folded");
        let seen = a.texts("#present li bdi").await;
        assert!(seen.iter().all(String::is_empty), "nothing shown: {seen:?}");

        // Act
        a.click("#people-count").await;

        // Assert
        a.wait_until("the list open", "document.getElementById('people').open")
            .await;
        assert_eq!(a.present().await, ["Alice", "Bob"]);
        let remove = a
            .client
            .find(Locator::Css("#present form.remove button"))
            .await
            .expect("Bob's Remove button");
        assert!(remove.is_displayed().await.expect("shown or not"));
    })
    .await;
}

/// Remove asks first: saying no keeps Bob in the room, saying yes removes him.
#[tokio::test]
async fn remove_asks_first_and_no_keeps_the_member() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let a = alice.clone();
    let mut bob = app.user();
    with_screenshots("remove_asks_first", &[&alice], async move {
        // Arrange
        let code = create_room(&a, "Alice").await;
        bob.join("Bob", &code).await;
        let button = "#present form.remove button";
        a.wait_until(
            "Bob's Remove button",
            &format!("document.querySelector(\"{button}\")"),
        )
        .await;

        // Act: no.
        a.click(button).await;
        let asked = a.client.get_alert_text().await.expect("a question");
        assert_eq!(asked, "Remove Bob from the room? They cannot come back.");
        a.client.dismiss_alert().await.expect("no");

        // Assert
        assert_eq!(
            bob.members(&code).await,
            ["Alice", "Bob"],
            "Bob is still in"
        );

        // Act: yes.
        a.click(button).await;
        a.client.accept_alert().await.expect("yes");

        // Assert
        a.wait_for_line("Bob was removed from the room by its owner")
            .await;
        assert_eq!(
            bob.post_message(&code, "still here?").await.status(),
            reqwest::StatusCode::FORBIDDEN
        );
    })
    .await;
}

/// Bob, on his phone, is removed while typing: his page says so, hides the
/// controls that no longer work, keeps his text, and a new room is one click away.
#[tokio::test]
async fn a_removed_member_keeps_the_unsent_text_and_is_offered_ways_on() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    with_screenshots("removed_member_page", &[&alice, &bob], async move {
        // Arrange
        b.set_viewport_size((390, 844)).await;
        let code = create_room(&a, "Alice").await;
        join(&b, "Bob", &code).await;
        b.fill("#message", "half a thought").await;
        let button = "#present form.remove button";
        a.wait_until(
            "Bob's Remove button",
            &format!("document.querySelector(\"{button}\")"),
        )
        .await;

        // Act
        a.click(button).await;
        a.client.accept_alert().await.expect("yes");

        // Assert
        b.wait_until(
            "Bob's page to close",
            "document.getElementById('status').dataset.state === 'closed'",
        )
        .await;
        assert_eq!(
            b.text_of("#status").await,
            "The owner removed you from this room."
        );
        let shown = |css: &'static str| {
            let b = b.clone();
            async move {
                match b.client.find(Locator::Css(css)).await {
                    Ok(element) => element.is_displayed().await.expect("shown or not"),
                    Err(_) => false,
                }
            }
        };
        for gone in [".people", "#menu", "#copy-link", "#lock", "#send button"] {
            assert!(!shown(gone).await, "{gone} is hidden");
        }
        assert_eq!(
            b.js("return document.getElementById('message').value;")
                .await,
            "half a thought"
        );
        assert!(shown("#ended a[href='/']").await, "Home");
        assert_eq!(b.text_of("#ended button").await, "Start a new room");

        // Act: a new room.
        b.click("#ended button").await;

        // Assert
        b.wait_until(
            "a new room",
            &format!(
                "location.pathname.startsWith('/rooms/') && location.pathname !== '/rooms/{code}'"
            ),
        )
        .await;
        wait_connected(&b).await;
        let me = b
            .js("return document.querySelector('p.me').textContent;")
            .await;
        assert_eq!(me, "You are Bob, the owner");
    })
    .await;
}

/// Copy link copies the address this browser used.
#[tokio::test]
async fn copy_link_copies_the_address_the_browser_used() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let a = alice.clone();
    with_screenshots("copy_link", &[&alice], async move {
        let code = create_room(&a, "Alice").await;
        // Headless Chromium may refuse the clipboard: catch what is written.
        a.js("window.copied = []; navigator.clipboard.writeText = async (t) => { copied.push(t); }; return true;")
            .await;
        a.click("#copy-link").await;
        a.wait_until("the link copied", "window.copied.length === 1").await;
        let expected = format!("{}/rooms/{code}", a.base);
        assert_eq!(a.js("return window.copied[0];").await, Value::String(expected));
        assert_eq!(a.text_of("#copy-link").await, "Copied!");
    })
    .await;
}

/// The server restarts without Alice's room: her page, first "restarting",
/// then says the room is gone, keeps her unsent text, and offers the ways on;
/// it no longer claims to be restarting.
#[tokio::test]
async fn a_server_back_without_the_room_is_said_so() {
    if redis_mode() {
        return; // shared rooms outlive a restart
    }
    let (app, driver) = start(&[]).await;
    let addr = app.addr;
    let alice = Browser::open(&driver, &app.url("")).await;
    let a = alice.clone();
    with_screenshots("server_back_without_the_room", &[&alice], async move {
        // Arrange
        create_room(&a, "Alice").await;
        a.fill("#message", "typed during the restart").await;

        // Act
        app.shut_down().await;
        let status = "document.getElementById('status')";
        a.wait_until(
            "the restarting notice",
            &format!("{status}.textContent.includes('restarting')"),
        )
        .await;
        let _back = spawn_app_at(addr).await;

        // Assert
        a.wait_until(
            "the page to close",
            &format!("{status}.dataset.state === 'closed'"),
        )
        .await;
        assert_eq!(
            a.text_of("#status").await,
            "The server restarted without this room: it is gone."
        );
        assert_eq!(
            a.js("return document.getElementById('message').value;")
                .await,
            "typed during the restart"
        );
        assert_eq!(a.text_of("#ended button").await, "Start a new room");
        assert_eq!(a.text_of("#ended a").await, "Home");
    })
    .await;
}
