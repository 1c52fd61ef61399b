//! The home page's two forms, "Start a room" and "Join a room", and the join page
//! a room link leads to: a code sent to Start room is refused, never ignored; a
//! refused join from a room link is shown on that join page again; the cursor
//! starts where the person types next; the name last used is filled in.

use reqwest::{Response, StatusCode};

use crate::helpers::{
    TestApp, User, location, send_as_browser, session_cookie, spawn_app, unused_code,
};
use crate::web::{
    assert_changes_nothing, assert_home_page, html_body, html_unescape, input_value, people,
    plain_text_line,
};

// ===== The two forms =====

/// Start a room (name, passphrase "makes it private") and Join a room (code,
/// name, passphrase "only if the room has one") are two forms, each with one
/// submit button: Enter in a field submits the form it is in.
#[tokio::test]
async fn the_home_page_has_a_start_form_and_a_join_form_each_with_one_button() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let page = html_body(app.user().get_as_browser("/").await).await;

    // Assert
    let start = form(&page, "/rooms");
    assert_eq!(input_names(start), ["name", "passphrase"], "{start}");
    assert_eq!(buttons(start), ["Start room"], "{start}");
    assert!(start.contains("makes it private"), "{start}");
    let join = form(&page, "/join");
    assert_eq!(input_names(join), ["code", "name", "passphrase"], "{join}");
    assert_eq!(buttons(join), ["Join"], "{join}");
    assert!(join.contains("only if the room has one"), "{join}");
    assert_eq!(page.matches("<form").count(), 2, "two forms");
    assert_eq!(
        autofocused(&page),
        ["start-name"],
        "the cursor starts in Start's name"
    );
}

// ===== A code sent to Start room =====

/// `POST /rooms` with a code (an old form, a script) is `400` and creates no
/// room: curl gets one line naming the code and `/join`; a browser gets the
/// home page with the code and name kept in the Join form, the error beside it.
#[tokio::test]
async fn a_code_sent_to_start_room_is_refused_and_creates_no_room() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let bob = app.user();
    let fields = [("name", "bob"), ("code", code.as_str()), ("passphrase", "")];

    // Act
    let curl = bob
        .post_request("/rooms", &fields)
        .send()
        .await
        .expect("POST");
    let browser = send_as_browser(bob.post_request("/rooms", &fields)).await;

    // Assert
    assert_eq!(curl.status(), StatusCode::BAD_REQUEST);
    assert_changes_nothing(&curl);
    let line = plain_text_line(curl).await;
    assert!(line.contains(&code) && line.contains("/join"), "{line:?}");
    assert_eq!(browser.status(), StatusCode::BAD_REQUEST);
    assert_changes_nothing(&browser);
    let page = html_body(browser).await;
    assert_home_page(&page);
    let join = form(&page, "/join");
    assert!(
        html_unescape(join).contains(&line),
        "the error is by Join: {join}"
    );
    assert_eq!(input_value(join, "code").as_deref(), Some(code.as_str()));
    assert_eq!(input_value(join, "name").as_deref(), Some("bob"));
    assert_eq!(autofocused(&page), ["code"], "the cursor goes to the code");
    assert_eq!(
        alice.presence(&code).await,
        people(&[("alice", true)]),
        "bob joined nothing"
    );
}

/// Any non-blank code is refused, even one that is no code; a blank one is no
/// code at all, and the room is made.
#[tokio::test]
async fn only_a_blank_code_lets_start_room_make_a_room() {
    // Arrange
    let app = spawn_app().await;
    let visitor = app.user();

    for typed in ["zz", "abcd", "  q "] {
        // Act
        let response = visitor
            .post_request("/rooms", &[("name", "bob"), ("code", typed)])
            .send()
            .await
            .expect("POST");

        // Assert
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{typed:?}");
        assert_changes_nothing(&response);
    }
    let made = visitor
        .post_request("/rooms", &[("name", "bob"), ("code", "  ")])
        .send()
        .await
        .expect("POST");
    assert_eq!(made.status(), StatusCode::SEE_OTHER, "a blank code is none");
}

// ===== The join page of a room link =====

/// A room link shows a join page with the code in the form and Join its only
/// button; a public room's page asks no passphrase, a private room's does.
#[tokio::test]
async fn a_room_link_shows_a_join_page_with_the_code_and_join_only() {
    // Arrange
    let app = spawn_app().await;
    let (_alice, public) = app.user_in_new_room("alice").await;
    let (_carol, private) = user_in_private_room(&app, "carol").await;
    let stranger = app.user();

    for (code, asks_passphrase) in [(&public, false), (&private, true)] {
        // Act
        let page = join_page(&stranger, code).await;

        // Assert
        let join = form(&page, "/join");
        assert_eq!(input_value(join, "code").as_deref(), Some(code.as_str()));
        assert_eq!(buttons(&page), ["Join"], "Join is the only action");
        assert_eq!(
            input_names(join).contains(&"passphrase".to_owned()),
            asks_passphrase,
            "{join}"
        );
        assert_eq!(autofocused(&page), ["name"], "nobody known: the name");
    }
}

/// With the name remembered, a private room's join page puts the cursor in
/// the passphrase field; a public room's keeps it in the name field.
#[tokio::test]
async fn with_the_name_remembered_a_private_rooms_join_page_focuses_the_passphrase() {
    // Arrange
    let app = spawn_app().await;
    let (_alice, public) = app.user_in_new_room("alice").await;
    let (_carol, private) = user_in_private_room(&app, "carol").await;
    let (dora, _) = app.user_in_new_room("dora").await;

    // Act
    let public_page = join_page(&dora, &public).await;
    let private_page = join_page(&dora, &private).await;

    // Assert
    assert_eq!(input_value(&public_page, "name").as_deref(), Some("dora"));
    assert_eq!(autofocused(&public_page), ["name"]);
    assert_eq!(input_value(&private_page, "name").as_deref(), Some("dora"));
    assert_eq!(autofocused(&private_page), ["passphrase"]);
}

/// A join sent from a room link's page and refused (wrong or missing
/// passphrase, name taken, bad name, room locked) keeps its status and shows
/// that join page again, with the error, the code and the typed name; curl
/// gets the same one line as from the home page.
#[tokio::test]
async fn a_refused_join_from_a_room_link_stays_on_its_join_page() {
    // Arrange
    let app = spawn_app().await;
    let (carol, private) = user_in_private_room(&app, "carol").await;
    let _carol_events = carol.open_events(&private).await;
    let (alice, locked) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&locked).await;
    let lock = alice
        .post_request(&format!("/rooms/{locked}/lock"), &[])
        .send()
        .await
        .expect("lock");
    assert_eq!(lock.status(), StatusCode::NO_CONTENT);
    let cases = [
        (&private, "dora", "wrong horse", StatusCode::FORBIDDEN),
        (&private, "dora", "", StatusCode::FORBIDDEN),
        (&private, "Carol", PASSPHRASE, StatusCode::CONFLICT),
        (&private, "   ", PASSPHRASE, StatusCode::BAD_REQUEST),
        (&locked, "dora", "", StatusCode::LOCKED),
    ];
    let dora = app.user();

    for (code, name, passphrase, status) in cases {
        let asks_passphrase = code == &private;
        let fields = [
            ("code", code.as_str()),
            ("from", "link"),
            ("private", if asks_passphrase { "yes" } else { "" }),
            ("name", name),
            ("passphrase", passphrase),
        ];
        let what = format!("{name:?} {passphrase:?} into {code}");

        // Act
        let curl = dora
            .post_request("/join", &fields)
            .send()
            .await
            .expect("POST");
        let browser = send_as_browser(dora.post_request("/join", &fields)).await;

        // Assert
        assert_eq!(curl.status(), status, "curl: {what}");
        let line = plain_text_line(curl).await;
        assert_eq!(browser.status(), status, "browser: {what}");
        assert_changes_nothing(&browser);
        let page = html_body(browser).await;
        assert!(
            page.contains(&format!("Join room <span class=\"code\">{code}</span>")),
            "{what}: {page}"
        );
        assert_eq!(buttons(&page), ["Join"], "not the home page: {what}");
        assert!(
            html_unescape(&page).contains(&line),
            "{what}: the error {line:?}"
        );
        assert_eq!(
            input_value(&page, "code").as_deref(),
            Some(code.as_str()),
            "{what}"
        );
        assert_eq!(input_value(&page, "name").as_deref(), Some(name), "{what}");
        assert_eq!(
            input_value(&page, "passphrase").is_some(),
            asks_passphrase,
            "{what}: the passphrase field as before"
        );
        assert!(
            passphrase.is_empty() || !page.contains(passphrase),
            "{what}: the passphrase is not sent back"
        );
    }
    assert_eq!(carol.presence(&private).await, people(&[("carol", true)]));
}

/// A join from a room link whose room has closed since (here: a code no room
/// has) has no join page to go back to: the home page shows the `404`, code and
/// name kept in Join.
#[tokio::test]
async fn a_join_from_the_link_of_a_closed_room_lands_on_the_home_page() {
    // Arrange
    let app = spawn_app().await;
    let (_alice, open) = app.user_in_new_room("alice").await;
    let code = unused_code(&[&open]);
    let dora = app.user();
    let fields = [("code", code.as_str()), ("from", "link"), ("name", "dora")];

    // Act
    let response = send_as_browser(dora.post_request("/join", &fields)).await;

    // Assert
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let page = html_body(response).await;
    assert_home_page(&page);
    let join = form(&page, "/join");
    assert!(join.contains(&format!("There is no room {code}")), "{join}");
    assert_eq!(input_value(join, "code").as_deref(), Some(code.as_str()));
    assert_eq!(input_value(join, "name").as_deref(), Some("dora"));
}

// ===== The name remembered =====

/// After starting a room, and after joining one, the name used is filled in
/// on the home page (both forms) and on the next room link's join page.
#[tokio::test]
async fn the_name_used_last_is_filled_in_on_the_next_visit() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("Alice Ångström").await;
    let (_other, other_room) = app.user_in_new_room("zed").await;
    let bob = app.user_joined(&code, "Bob").await;

    for (user, name) in [(&alice, "Alice Ångström"), (&bob, "Bob")] {
        // Act
        let home = html_body(user.get_as_browser("/").await).await;
        let link = join_page(user, &other_room).await;

        // Assert
        for action in ["/rooms", "/join"] {
            let form = form(&home, action);
            assert_eq!(input_value(form, "name").as_deref(), Some(name), "{action}");
        }
        assert_eq!(
            input_value(&link, "name").as_deref(),
            Some(name),
            "join page"
        );
    }
}

// ===== Helpers =====

const PASSPHRASE: &str = "correct horse";

/// A user who created a private room (passphrase [`PASSPHRASE`]) as `name`.
async fn user_in_private_room(app: &TestApp, name: &str) -> (User, String) {
    let mut user = app.user();
    let created = user
        .post_request("/rooms", &[("name", name), ("passphrase", PASSPHRASE)])
        .send()
        .await
        .expect("POST /rooms");
    assert_eq!(created.status(), StatusCode::SEE_OTHER, "a private room");
    user.cookie = Some(session_cookie(&created));
    let code = room_of(&created);
    (user, code)
}

fn room_of(response: &Response) -> String {
    location(response)
        .strip_prefix("/rooms/")
        .expect("sent to a room")
        .to_owned()
}

/// The join page `user` gets by following the link of room `code`.
async fn join_page(user: &User, code: &str) -> String {
    let response = user.get_as_browser(&format!("/rooms/{code}")).await;
    assert_eq!(response.status(), StatusCode::OK, "the join page of {code}");
    let page = html_body(response).await;
    assert!(input_value(&page, "message").is_none(), "not the room page");
    page
}

/// The `<form>` of `page` that posts to `action`, up to its end.
fn form<'a>(page: &'a str, action: &str) -> &'a str {
    let marker = format!("action=\"{action}\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("a form posting to {action}: {page}"));
    let start = page[..at].rfind("<form").expect("the form's start");
    let end = page[at..].find("</form>").expect("the form's end") + at;
    &page[start..end]
}

/// The `name` of every input that a person types into, in order (hidden ones
/// aside).
fn input_names(html: &str) -> Vec<String> {
    tags(html, "<input")
        .filter(|tag| !tag.contains("type=\"hidden\""))
        .filter_map(|tag| attribute(tag, "name"))
        .collect()
}

/// The labels of every button, in order.
fn buttons(html: &str) -> Vec<String> {
    html.split("<button")
        .skip(1)
        .filter_map(|rest| {
            let start = rest.find('>')? + 1;
            let end = rest.find("</button>")?;
            Some(html_unescape(rest.get(start..end)?.trim()))
        })
        .collect()
}

/// The `id` (else the label, for a button) of every element with `autofocus`.
fn autofocused(html: &str) -> Vec<String> {
    tags(html, "<input")
        .chain(tags(html, "<button"))
        .filter(|tag| tag.split_whitespace().any(|word| word == "autofocus"))
        .map(|tag| attribute(tag, "id").unwrap_or_else(|| "button".to_owned()))
        .collect()
}

/// Every tag opened with `open`, from after `open` up to its `>`.
fn tags<'a>(html: &'a str, open: &str) -> impl Iterator<Item = &'a str> {
    html.split(open)
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap_or(rest.len())])
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let pattern = format!(" {name}=\"");
    let at = tag.find(&pattern)? + pattern.len();
    let value = &tag[at..];
    Some(html_unescape(&value[..value.find('"')?]))
}
