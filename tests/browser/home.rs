//! The home page and a room link's join page in Chromium, at phone and desktop
//! size: Enter in any field submits the form it is in, a code typed into Join
//! goes to that room, a wrong passphrase after a room link stays on that join
//! page, and the name is remembered on the next visit.

use fantoccini::Locator;
use serde_json::json;

use crate::harness::{Browser, Chromedriver, DESKTOP, PHONE, SOON, with_screenshots};
use crate::helpers::{TestApp, User, room_code, session_cookie};
use crate::scenarios::{start, wait_connected};

/// WebDriver's Enter key.
const ENTER: &str = "\u{E007}";

const PASSPHRASE: &str = "plum tree at dawn";

/// Alice at phone size and at desktop size, each starting a room twice from
/// the home page: Enter in the name field makes a public room, Enter in the
/// passphrase field a private one. The two forms stand side by side on the
/// desktop and one above the other on the phone, and neither page scrolls
/// sideways.
#[tokio::test]
async fn starting_a_room_with_enter_in_the_name_or_the_passphrase_field() {
    let (app, driver) = start(&[]).await;
    let phone = open_at(&driver, &app, PHONE).await;
    let desktop = open_at(&driver, &app, DESKTOP).await;
    let stranger = app.user();
    let (p, d) = (phone.clone(), desktop.clone());
    with_screenshots(
        "starting_a_room_with_enter",
        &[&phone, &desktop],
        async move {
            for (browser, size) in [(&p, "phone"), (&d, "desktop")] {
                // Enter in the name field.
                browser.goto("/").await;
                assert_layout(browser, size).await;
                assert_eq!(
                    focused(browser).await,
                    "start-name",
                    "{size}: the cursor starts there"
                );
                browser.fill("#start-name", "Alice").await;
                press_enter(browser, "#start-name").await;
                let public = in_a_room(browser).await;
                assert!(
                    !asks_passphrase(&stranger, &public).await,
                    "{size}: a public room"
                );

                // Enter in the passphrase field.
                browser.goto("/").await;
                browser.fill("#start-name", "Alice").await;
                browser.fill("#start-passphrase", PASSPHRASE).await;
                press_enter(browser, "#start-passphrase").await;
                let private = in_a_room(browser).await;
                assert_ne!(private, public, "{size}: a new room");
                assert!(
                    asks_passphrase(&stranger, &private).await,
                    "{size}: a private room"
                );
            }
        },
    )
    .await;
}

/// Bob at phone size and at desktop size joins a private room from the home
/// page with Enter in each of Join's fields, the code typed in lower case: each
/// time he is in the room whose code he typed, not a new one.
#[tokio::test]
async fn joining_with_enter_in_each_field_goes_to_the_room_typed() {
    let (app, driver) = start(&[]).await;
    let mut rooms = Vec::new();
    for _ in 0..6 {
        rooms.push(private_room(&app, "Carol").await);
    }
    let phone = open_at(&driver, &app, PHONE).await;
    let desktop = open_at(&driver, &app, DESKTOP).await;
    let (p, d) = (phone.clone(), desktop.clone());
    with_screenshots("joining_with_enter", &[&phone, &desktop], async move {
        let mut rooms = rooms.into_iter();
        for (browser, size) in [(&p, "phone"), (&d, "desktop")] {
            for field in ["#code", "#name", "#passphrase"] {
                let (_carol, code) = rooms.next().expect("a room for each try");
                browser.goto("/").await;
                browser.fill("#code", &code.to_lowercase()).await;
                browser.fill("#name", "Bob").await;
                browser.fill("#passphrase", PASSPHRASE).await;

                press_enter(browser, field).await;

                browser.wait_for_path(&format!("/rooms/{code}")).await;
                wait_connected(browser).await;
                browser.wait_for_line("Bob has entered the room").await;
                assert_eq!(
                    browser.present().await,
                    ["Carol", "Bob"],
                    "{size}, Enter in {field}"
                );
            }
        }
    })
    .await;
}

/// Dora follows a private room's link at phone and at desktop size: the join
/// page names the room, has Join as its only button and the cursor in the
/// name field. A wrong passphrase keeps her on that page, with the error, the
/// room and her name, and the cursor in the passphrase field; the right one
/// lets her in.
#[tokio::test]
async fn a_room_link_with_a_wrong_passphrase_stays_on_its_join_page() {
    let (app, driver) = start(&[]).await;
    let phone_room = private_room(&app, "Carol").await;
    let desktop_room = private_room(&app, "Carol").await;
    let phone = open_at(&driver, &app, PHONE).await;
    let desktop = open_at(&driver, &app, DESKTOP).await;
    let (p, d) = (phone.clone(), desktop.clone());
    with_screenshots("a_room_link_with_a_wrong_passphrase", &[&phone, &desktop], async move {
        for (browser, size, (_carol, code)) in [(&p, "phone", phone_room), (&d, "desktop", desktop_room)] {
            browser.goto(&format!("/rooms/{code}")).await;
            assert_eq!(browser.text_of("h1").await, format!("Join room {code}"), "{size}");
            assert_eq!(browser.texts("button").await, ["Join"], "{size}: Join only");
            assert_eq!(focused(browser).await, "name", "{size}");
            assert_layout(browser, size).await;

            browser.fill("#name", "Dora").await;
            browser.fill("#passphrase", "pear tree at dusk").await;
            press_enter(browser, "#passphrase").await;

            let error = format!("That is not the passphrase of room {code}.");
            browser
                .wait_until(
                    "the wrong-passphrase error",
                    &format!("document.querySelector('.error')?.textContent === {}", json!(error)),
                )
                .await;
            assert_eq!(browser.text_of("h1").await, format!("Join room {code}"), "{size}: the same page");
            assert_eq!(browser.texts("button").await, ["Join"], "{size}: no Start room to click");
            let kept = "return [document.querySelector('input[name=code]').value, document.getElementById('name').value, document.getElementById('passphrase').value];";
            assert_eq!(browser.js(kept).await, json!([code, "Dora", ""]), "{size}");
            assert_eq!(focused(browser).await, "passphrase", "{size}: type it again");
            assert_layout(browser, size).await;

            browser.fill("#passphrase", PASSPHRASE).await;
            press_enter(browser, "#passphrase").await;
            browser.wait_for_path(&format!("/rooms/{code}")).await;
            browser.wait_for_line("Dora has entered the room").await;
        }
    })
    .await;
}

/// With JavaScript off, the name Alice started a room under is filled in on
/// her next visit to the home page (both forms), and on a private room link's
/// join page, where the cursor then waits in the passphrase field.
#[tokio::test]
async fn the_name_is_remembered_on_the_next_visit_without_javascript() {
    let (app, driver) = start(&[]).await;
    let (_carol, other_room) = private_room(&app, "Carol").await;
    let alice = Browser::open_without_javascript(&driver, &app.url("")).await;
    let a = alice.clone();
    with_screenshots("the_name_is_remembered", &[&alice], async move {
        a.goto("/").await;
        a.fill("#start-name", "Alice Ångström").await;
        press_enter(&a, "#start-name").await;
        let deadline = tokio::time::Instant::now() + SOON;
        while !a.path().await.starts_with("/rooms/") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new room's page"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }

        a.goto("/").await;
        for field in ["#start-name", "#name"] {
            assert_eq!(
                value(&a, field).await,
                "Alice Ångström",
                "{field} on the home page"
            );
        }
        a.goto(&format!("/rooms/{other_room}")).await;
        assert_eq!(
            value(&a, "#name").await,
            "Alice Ångström",
            "on the join page"
        );
        assert_eq!(focused(&a).await, "passphrase");
    })
    .await;
}

// ===== Helpers =====

/// A browser whose page is `size` CSS pixels.
async fn open_at(driver: &Chromedriver, app: &TestApp, size: (u32, u32)) -> Browser {
    let browser = Browser::open(driver, &app.url("")).await;
    browser.goto("/").await;
    browser.set_viewport_size(size).await;
    let seen = browser
        .js("return [window.innerWidth, window.innerHeight];")
        .await;
    assert_eq!(seen, json!([size.0, size.1]), "the viewport");
    browser
}

/// Presses Enter in the field `css`, as a person typing there would.
async fn press_enter(browser: &Browser, css: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(ENTER)
        .await
        .expect("press Enter");
}

/// The `id` of the element that has the keyboard focus.
async fn focused(browser: &Browser) -> String {
    let element = browser.client.active_element().await.expect("focus");
    element.attr("id").await.expect("id").unwrap_or_default()
}

/// The current value of the input `css` (read through WebDriver, so also
/// with JavaScript off).
async fn value(browser: &Browser, css: &str) -> String {
    let field = browser.client.find(Locator::Css(css)).await.expect(css);
    field
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default()
}

/// Waits until the browser shows a room page, connected; the room's code.
async fn in_a_room(browser: &Browser) -> String {
    browser
        .wait_until(
            "a room page",
            "location.pathname.startsWith('/rooms/') && document.getElementById('room')",
        )
        .await;
    wait_connected(browser).await;
    let path = browser.path().await;
    path.trim_start_matches("/rooms/").to_owned()
}

/// Whether room `code`'s join page asks a stranger for a passphrase.
async fn asks_passphrase(stranger: &User, code: &str) -> bool {
    let response = stranger.get_as_browser(&format!("/rooms/{code}")).await;
    assert_eq!(response.status(), 200, "the join page of {code}");
    let page = response.text().await.expect("the page");
    page.contains("name=\"passphrase\"")
}

/// A private room (passphrase [`PASSPHRASE`]) made by `name` through the API:
/// its creator and code.
async fn private_room(app: &TestApp, name: &str) -> (User, String) {
    let mut creator = app.user();
    let response = creator
        .post_request("/rooms", &[("name", name), ("passphrase", PASSPHRASE)])
        .send()
        .await
        .expect("POST /rooms");
    assert_eq!(response.status(), 303, "a private room");
    creator.cookie = Some(session_cookie(&response));
    let code = room_code(&response);
    (creator, code)
}

/// The forms fit the viewport's width (no sideways scrolling); on the desktop
/// the home page's two forms stand side by side, on a phone one above the
/// other.
async fn assert_layout(browser: &Browser, size: &str) {
    let fits = "return document.documentElement.scrollWidth <= window.innerWidth;";
    assert_eq!(
        browser.js(fits).await,
        true,
        "{size}: no sideways scrolling"
    );
    let forms = browser
        .js("return [...document.querySelectorAll('form')].map(f => { const r = f.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; });")
        .await;
    let forms = forms.as_array().expect("a list");
    for form in forms {
        assert!(
            form[0].as_f64() >= Some(0.0),
            "{size}: a form starts inside: {form}"
        );
        let right = browser.js("return window.innerWidth;").await;
        assert!(
            form[2].as_f64() <= right.as_f64(),
            "{size}: a form ends inside: {form}"
        );
    }
    if let [start, join] = &forms[..] {
        let side_by_side = start[1] == join[1] && start[2].as_f64() <= join[0].as_f64();
        let stacked = start[3].as_f64() <= join[1].as_f64();
        match size {
            "phone" => assert!(stacked, "{size}: one above the other: {forms:?}"),
            _ => assert!(side_by_side, "{size}: side by side: {forms:?}"),
        }
    }
}
