//! Owners in their browsers: whoever creates a room sees its controls (lock,
//! remove), uses them with or without JavaScript, and hands them on by leaving;
//! everyone else sees what the owner did. And a private room, from the page.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::error::CmdError;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Browser, SOON, with_screenshots};
use crate::helpers::send_as_browser;
use crate::scenarios::{create_room, start, wait_connected};

const JOIN_BUTTON: &str = "form[action='/join'] button";
const CREATE_BUTTON: &str = "form[action='/rooms'] button";
const LOCK_BUTTON: &str = "#lock button";

/// Joins room `code` from the home page, typing `passphrase` unless empty, and
/// clicks Join; where the browser ends up is the caller's to check.
async fn try_join(browser: &Browser, name: &str, code: &str, passphrase: &str) {
    browser.goto("/").await;
    browser.fill("#name", name).await;
    browser.fill("#code", code).await;
    if !passphrase.is_empty() {
        browser.fill("#passphrase", passphrase).await;
    }
    browser.click(JOIN_BUTTON).await;
}

/// Joins room `code` from the home page and waits for the live connection.
pub(crate) async fn join(browser: &Browser, name: &str, code: &str) {
    try_join(browser, name, code, "").await;
    browser.wait_for_path(&format!("/rooms/{code}")).await;
    wait_connected(browser).await;
}

/// The names in the people list, as a page script reads them.
const PEOPLE: &str = "[...document.querySelectorAll('#present li')]";

/// Waits until the people list names exactly `names`, in order.
async fn wait_present(browser: &Browser, names: &[&str]) {
    let script = format!(
        "JSON.stringify({PEOPLE}.map(li => li.querySelector('bdi')?.textContent)) === {:?}",
        json!(names).to_string()
    );
    browser
        .wait_until(&format!("people {names:?}"), &script)
        .await;
}

/// Waits until the people list offers a Remove button for exactly `names`.
async fn wait_remove_buttons(browser: &Browser, names: &[&str]) {
    let script = format!(
        "JSON.stringify({PEOPLE}.filter(li => li.querySelector('form.remove button'))
            .map(li => li.querySelector('bdi')?.textContent)) === {:?}",
        json!(names).to_string()
    );
    browser
        .wait_until(&format!("Remove buttons for {names:?}"), &script)
        .await;
}

/// Whether an element matching `css` is on the page and shown. WebDriver
/// queries only, so it works with JavaScript off.
async fn shown(browser: &Browser, css: &str) -> bool {
    match browser.client.find(Locator::Css(css)).await {
        Ok(element) => element.is_displayed().await.expect("displayed or not"),
        Err(_) => false,
    }
}

/// The texts of the elements matching `css`, read with WebDriver queries (so
/// JavaScript may be off). The script redraws the people list when a notice
/// comes, when its stream opens, and every 15 s: an element read a moment too
/// late is gone, so read them all again.
async fn texts_settled(browser: &Browser, css: &str) -> Vec<String> {
    for _ in 0..20 {
        if let Ok(texts) = try_texts(browser, css).await {
            return texts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{css} kept changing while it was read");
}

async fn try_texts(browser: &Browser, css: &str) -> Result<Vec<String>, CmdError> {
    let mut texts = Vec::new();
    for element in browser.client.find_all(Locator::Css(css)).await? {
        texts.push(element.text().await?);
    }
    Ok(texts)
}

/// Who the people list marks as the owner: by the word `owner`, and by
/// `data-owner`.
async fn marked_owners(browser: &Browser) -> (Vec<String>, Vec<String>) {
    let by_word = texts_settled(browser, "#present li:has(span.owner) bdi").await;
    let by_mark = texts_settled(browser, "#present li[data-owner='true'] bdi").await;
    (by_word, by_mark)
}

/// The names with a Remove button in the people list.
async fn remove_buttons(browser: &Browser) -> Vec<String> {
    texts_settled(browser, "#present li:has(form.remove button) bdi").await
}

/// Clicks the Remove button in `name`'s entry of the people list, looking
/// again if the script redrew the list meanwhile. The page then asks first.
async fn click_remove(browser: &Browser, name: &str) {
    let deadline = tokio::time::Instant::now() + SOON;
    while !try_click_remove(browser, name).await.unwrap_or(false) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Remove button for {name} within {SOON:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn try_click_remove(browser: &Browser, name: &str) -> Result<bool, CmdError> {
    for item in browser.client.find_all(Locator::Css("#present li")).await? {
        if item.find(Locator::Css("bdi")).await?.text().await? == name {
            let button = item.find(Locator::Css("form.remove button")).await?;
            button.click().await?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Waits until the log shows `text` as a line of its own, reading the page
/// with WebDriver queries (no page scripts: JavaScript may be off) as a page
/// load finishes.
async fn wait_for_logged(browser: &Browser, text: &str) {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        // Read during a page load, an element can go stale: read again.
        let lines = try_texts(browser, "#log > li").await.unwrap_or_default();
        if lines.iter().any(|line| line == text) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {SOON:?} for {text:?} in {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The HTTP status the page's own address answers now (a request from the
/// page, with its cookies).
async fn status_of_this_page(browser: &Browser) -> u64 {
    let status = browser
        .js("return fetch(location.href, { cache: 'no-store' }).then(r => r.status);")
        .await;
    status.as_u64().expect("a status")
}

fn locked_message(code: &str) -> String {
    format!("Room {code} is locked: its owner lets no one new in for now.")
}

/// Alice owns her room: she alone sees the Remove buttons and the lock. She
/// locks it (everyone sees it, a newcomer is refused), removes Bob (Carol sees
/// him go; Bob's page says he was removed, and reloading it shows he cannot
/// come back), and unlocks it (a newcomer gets in); her page never reloads.
#[tokio::test]
async fn the_owner_locks_the_room_and_removes_a_member_through_the_page() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let carol = Browser::open(&driver, &app.url("")).await;
    let (a, b, c) = (alice.clone(), bob.clone(), carol.clone());
    let mut dave = app.user();
    with_screenshots(
        "the_owner_locks_and_removes",
        &[&alice, &bob, &carol],
        async move {
            // Arrange
            let code = create_room(&a, "Alice").await;
            join(&b, "Bob", &code).await;
            join(&c, "Carol", &code).await;
            for browser in [&a, &b, &c] {
                wait_present(browser, &["Alice", "Bob", "Carol"]).await;
            }
            wait_remove_buttons(&a, &["Bob", "Carol"]).await;
            assert_eq!(a.text_of("p.me").await, "You are Alice, the owner");
            assert!(shown(&a, LOCK_BUTTON).await, "Alice has her lock button");
            assert_eq!(a.text_of(LOCK_BUTTON).await, "Lock the room");
            assert_eq!(b.text_of("p.me").await, "You are Bob");
            assert!(remove_buttons(&b).await.is_empty(), "Bob can remove no one");
            assert!(!shown(&b, "#lock").await, "Bob has no lock button");
            for browser in [&a, &b, &c] {
                let alice_only = vec!["Alice".to_owned()];
                assert_eq!(
                    marked_owners(browser).await,
                    (alice_only.clone(), alice_only)
                );
                assert!(!shown(browser, "#lock-state").await, "not locked yet");
            }
            a.js("window.sameDocument = true; return true;").await;

            // Act: lock.
            a.click(LOCK_BUTTON).await;

            // Assert
            for browser in [&a, &b, &c] {
                browser
                    .wait_for_line("Alice locked the room: no one new can join")
                    .await;
                browser
                    .wait_until(
                        "the lock state shown",
                        "!document.getElementById('lock-state').hidden",
                    )
                    .await;
                assert_eq!(
                    browser.text_of("#lock-state").await,
                    "Locked: no one new can join."
                );
                assert!(shown(browser, "#locked-badge").await, "the Locked badge");
            }
            a.wait_until(
                "the unlock button",
                "document.querySelector('#lock button').textContent === 'Unlock the room'",
            )
            .await;
            assert!(!shown(&b, "#lock").await, "still no lock button for Bob");
            let refused =
                send_as_browser(dave.post_request("/join", &[("name", "Dave"), ("code", &code)]))
                    .await;
            assert_eq!(refused.status(), StatusCode::LOCKED);
            let page = refused.text().await.expect("the page");
            assert!(
                page.contains(&format!("role=\"alert\">{}</p>", locked_message(&code))),
                "the home page again, with why: {page}"
            );

            // Act: remove Bob (and say yes when asked).
            click_remove(&a, "Bob").await;
            let asked = a.client.get_alert_text().await.expect("Remove asks first");
            assert_eq!(asked, "Remove Bob from the room? They cannot come back.");
            a.client.accept_alert().await.expect("yes");

            // Assert
            for browser in [&a, &c] {
                browser
                    .wait_for_line("Bob was removed from the room by its owner")
                    .await;
                wait_present(browser, &["Alice", "Carol"]).await;
            }
            wait_remove_buttons(&a, &["Carol"]).await;
            let closed = "document.getElementById('status').dataset.state === 'closed'";
            b.wait_until("Bob's page to close", closed).await;
            assert_eq!(
                b.text_of("#status").await,
                "The owner removed you from this room."
            );
            assert!(
                !shown(&b, "#send button").await,
                "Bob's Send button is gone"
            );
            assert!(!shown(&b, ".people").await, "and so is the people list");
            assert!(shown(&b, "#ended a[href='/']").await, "Home is offered");
            b.wait_for_line("Bob was removed from the room by its owner")
                .await;
            b.client.refresh().await.expect("reload");
            assert_eq!(b.text_of("h1").await, "Removed");
            assert_eq!(
                b.text_of("p.lead").await,
                format!("The owner removed you from room {code}: you cannot rejoin it.")
            );
            assert_eq!(status_of_this_page(&b).await, 403);

            // Act: unlock.
            a.click(LOCK_BUTTON).await;

            // Assert
            for browser in [&a, &c] {
                browser.wait_for_line("Alice unlocked the room").await;
                browser
                    .wait_until(
                        "the lock state gone",
                        "document.getElementById('lock-state').hidden",
                    )
                    .await;
            }
            assert_eq!(a.text_of(LOCK_BUTTON).await, "Lock the room");
            let joined = dave.join("Dave", &code).await;
            assert_eq!(
                joined.status(),
                StatusCode::SEE_OTHER,
                "unlocked, Dave gets in"
            );
            for browser in [&a, &c] {
                browser.wait_for_line("Dave has entered the room").await;
                wait_present(browser, &["Alice", "Carol", "Dave"]).await;
            }
            assert_eq!(
                a.js("return window.sameDocument === true;").await,
                true,
                "Alice's page never reloaded"
            );
            let errors = a.texts("#error:not([hidden])").await;
            assert!(errors.is_empty(), "no error on Alice's page: {errors:?}");
        },
    )
    .await;
}

/// When the owner leaves, the member there longest owns the room: Bob's page
/// says so, shows him the lock and the Remove buttons without a reload, and
/// his lock works.
#[tokio::test]
async fn ownership_passes_when_the_owner_leaves() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    let mut carol = app.user();
    with_screenshots("ownership_passes", &[&alice, &bob], async move {
        // Arrange
        let code = create_room(&a, "Alice").await;
        join(&b, "Bob", &code).await;
        // Carol joins after Bob, with a plain HTTP client.
        let joined = carol.join("Carol", &code).await;
        assert_eq!(joined.status(), StatusCode::SEE_OTHER);
        wait_present(&b, &["Alice", "Bob", "Carol"]).await;
        assert!(!shown(&b, "#lock").await, "not Bob's lock yet");
        assert!(remove_buttons(&b).await.is_empty());
        b.js("window.sameDocument = true; return true;").await;

        // Act
        a.click("form.leave button").await;
        a.wait_for_path("/").await;

        // Assert
        b.wait_for_line("Alice has left the room").await;
        b.wait_for_line("Bob is now the owner of the room").await;
        b.wait_until(
            "Bob's lock button",
            "!document.getElementById('lock').hidden",
        )
        .await;
        assert_eq!(b.text_of(LOCK_BUTTON).await, "Lock the room");
        wait_present(&b, &["Bob", "Carol"]).await;
        wait_remove_buttons(&b, &["Carol"]).await;
        let bob_only = vec!["Bob".to_owned()];
        assert_eq!(marked_owners(&b).await, (bob_only.clone(), bob_only));
        b.click(LOCK_BUTTON).await;
        b.wait_for_line("Bob locked the room: no one new can join")
            .await;
        assert!(shown(&b, "#lock-state").await, "Bob's lock worked");
        assert_eq!(
            b.js("return window.sameDocument === true;").await,
            true,
            "Bob's page never reloaded"
        );
    })
    .await;
}

/// Without JavaScript the owner's controls are plain forms: each post comes
/// back to the room page, which the server renders with the lock state and
/// the notices; a newcomer sees the home page again with why; Bob, removed,
/// is shown so when he next sends.
#[tokio::test]
async fn without_javascript_the_owners_controls_work_as_plain_forms() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open_without_javascript(&driver, &app.url("")).await;
    let bob = Browser::open_without_javascript(&driver, &app.url("")).await;
    let dave = Browser::open_without_javascript(&driver, &app.url("")).await;
    let (a, b, d) = (alice.clone(), bob.clone(), dave.clone());
    with_screenshots(
        "without_javascript_owners",
        &[&alice, &bob, &dave],
        async move {
            // Arrange
            a.goto("/").await;
            a.fill("#start-name", "Alice").await;
            a.click(CREATE_BUTTON).await;
            let deadline = tokio::time::Instant::now() + SOON;
            while !a.path().await.starts_with("/rooms/") {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the new room's page"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let code = a.text_of("h1.code").await;
            let room = format!("/rooms/{code}");
            try_join(&b, "Bob", &code, "").await;
            b.wait_for_path(&room).await;
            a.client.refresh().await.expect("reload");
            a.open_people().await;
            b.open_people().await;
            assert_eq!(a.present().await, ["Alice", "Bob"]);
            assert_eq!(a.text_of("p.me").await, "You are Alice, the owner");
            assert_eq!(remove_buttons(&a).await, ["Bob"]);
            assert!(shown(&a, LOCK_BUTTON).await);
            assert_eq!(a.text_of(LOCK_BUTTON).await, "Lock the room");
            assert!(remove_buttons(&b).await.is_empty());
            assert!(!shown(&b, "#lock").await, "Bob has no lock button");
            let alice_only = vec!["Alice".to_owned()];
            assert_eq!(marked_owners(&b).await, (alice_only.clone(), alice_only));

            // Act: lock.
            a.click(LOCK_BUTTON).await;

            // Assert
            wait_for_logged(&a, "Alice locked the room: no one new can join").await;
            assert_eq!(a.path().await, room, "back to the room");
            a.open_people().await;
            assert!(shown(&a, "#lock-state").await, "the lock state, rendered");
            assert!(
                shown(&a, "#locked-badge").await,
                "the Locked badge, rendered"
            );
            assert_eq!(a.text_of(LOCK_BUTTON).await, "Unlock the room");
            b.client.refresh().await.expect("reload");
            wait_for_logged(&b, "Alice locked the room: no one new can join").await;
            b.open_people().await;
            assert!(shown(&b, "#lock-state").await);
            try_join(&d, "Dave", &code, "").await;
            d.wait_for_path("/join").await;
            assert_eq!(d.text_of(".error").await, locked_message(&code));

            // Act: remove Bob, after saying yes on the page that asks.
            click_remove(&a, "Bob").await;
            a.wait_for_path(&format!("{room}/remove")).await;
            assert_eq!(a.text_of("h1").await, "Remove Bob?");
            a.click("form.actions button[type='submit']").await;

            // Assert
            wait_for_logged(&a, "Bob was removed from the room by its owner").await;
            assert_eq!(a.path().await, room, "back to the room");
            a.open_people().await;
            assert_eq!(a.present().await, ["Alice"]);
            assert!(remove_buttons(&a).await.is_empty());
            // Bob's page is as it was; what he sends next shows he is out.
            b.fill("#message", "am I still here?").await;
            b.click("#send button").await;
            b.wait_for_path(&format!("{room}/messages")).await;
            assert_eq!(b.text_of("h1").await, "Removed");
            assert_eq!(
                b.text_of("p.lead").await,
                format!("The owner removed you from room {code}: you cannot rejoin it.")
            );
            b.goto(&room).await;
            assert_eq!(
                b.text_of("h1").await,
                "Removed",
                "and so does the room's address"
            );

            // Act: unlock.
            a.click(LOCK_BUTTON).await;

            // Assert
            wait_for_logged(&a, "Alice unlocked the room").await;
            assert_eq!(a.path().await, room, "back to the room");
            a.open_people().await;
            assert!(!shown(&a, "#lock-state").await);
            assert_eq!(a.text_of(LOCK_BUTTON).await, "Lock the room");
            // Dave tries again from the form shown with the error, still filled in.
            d.click(JOIN_BUTTON).await;
            d.wait_for_path(&room).await;
            wait_for_logged(&d, "Dave has entered the room").await;
            d.open_people().await;
            assert_eq!(d.present().await, ["Alice", "Dave"]);
            let messages = a.message_texts().await;
            assert!(
                messages.is_empty(),
                "Bob's message never got in: {messages:?}"
            );
        },
    )
    .await;
}

/// Alice makes her room private with a passphrase: Bob is told to type it,
/// then that his guess is wrong, and gets in with the right one; the
/// passphrase shows in no page and no address.
#[tokio::test]
async fn a_private_room_from_the_page() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b) = (alice.clone(), bob.clone());
    let passphrase = "plum tree at dawn";
    let wrong = "pear tree at dusk";
    with_screenshots("a_private_room_from_the_page", &[&alice, &bob], async move {
        // Arrange
        a.goto("/").await;
        let field = a.client.find(Locator::Css("#start-passphrase")).await.expect("field");
        assert_eq!(field.attr("type").await.expect("type").as_deref(), Some("password"));
        a.fill("#start-name", "Alice").await;
        a.fill("#start-passphrase", passphrase).await;
        a.click(CREATE_BUTTON).await;
        wait_connected(&a).await;
        let code = a.text_of("h1.code").await;
        let mut seen = vec![(a.client.current_url().await.expect("url"), a.page_source().await)];

        // Act and assert: without it.
        try_join(&b, "Bob", &code, "").await;
        b.wait_for_path("/join").await;
        assert_eq!(
            b.text_of(".error").await,
            format!("Room {code} is private: type its passphrase to join.")
        );
        seen.push((b.client.current_url().await.expect("url"), b.page_source().await));

        // A wrong one, typed into the form shown again (name and code kept).
        b.fill("#passphrase", wrong).await;
        b.click(JOIN_BUTTON).await;
        b.wait_until(
            "the wrong-passphrase error",
            &format!(
                "document.querySelector('.error')?.textContent === {}",
                json!(format!("That is not the passphrase of room {code}."))
            ),
        )
        .await;
        let kept = "return [document.getElementById('name').value, document.getElementById('code').value, document.getElementById('passphrase').value];";
        assert_eq!(b.js(kept).await, json!(["Bob", code, ""]), "the guess is not sent back");
        seen.push((b.client.current_url().await.expect("url"), b.page_source().await));

        // The right one.
        b.fill("#passphrase", passphrase).await;
        b.click(JOIN_BUTTON).await;
        b.wait_for_path(&format!("/rooms/{code}")).await;
        wait_connected(&b).await;
        for browser in [&a, &b] {
            browser.wait_for_line("Bob has entered the room").await;
            wait_present(browser, &["Alice", "Bob"]).await;
        }
        seen.push((b.client.current_url().await.expect("url"), b.page_source().await));
        a.client.refresh().await.expect("reload");
        wait_connected(&a).await;
        seen.push((a.client.current_url().await.expect("url"), a.page_source().await));
        for browser in [&a, &b] {
            assert_eq!(browser.text_of("#private-badge").await, "Private");
        }

        for (url, source) in &seen {
            let url = url.as_str();
            for secret in [passphrase, wrong] {
                // As typed, and as a form or a URL would encode it.
                let forms = [secret.to_owned(), secret.replace(' ', "+"), secret.replace(' ', "%20")];
                for form in &forms {
                    assert!(!url.contains(form.as_str()), "{secret:?} is in the address {url}");
                    assert!(!source.contains(form.as_str()), "{secret:?} is in the page at {url}");
                }
            }
        }
    })
    .await;
}
