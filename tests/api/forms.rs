//! The home page and its two forms, Start a room (`POST /rooms`) and Join a room
//! (`POST /join`): what they accept, and every way they are refused — shown again
//! with the message and what was typed (cut short when it is long), as a page for
//! a browser or one line for curl — including bodies no form would send.

use reqwest::header::{CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS};
use reqwest::{Method, StatusCode};

use crate::helpers::{User, location, send_as_browser, spawn_app, unused_code};
use crate::web::{
    FORM, XSS, assert_changes_nothing, assert_home_page, assert_not_a_member, header, html_body,
    html_unescape, input_value, people, plain_text_line, send_raw, user_with_a_session,
};

// ===== The home page =====

/// `GET /` is an HTML page whose forms have `name` and `code`, Start room and Join
/// buttons, and the security headers (no inline script allowed).
#[tokio::test]
async fn the_home_page_is_a_form_with_name_code_and_both_buttons_and_security_headers() {
    // Arrange
    let app = spawn_app().await;
    let visitor = app.user();

    // Act
    let response = send_as_browser(visitor.get_request("/")).await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, X_CONTENT_TYPE_OPTIONS),
        Some("nosniff".into())
    );
    let csp = header(&response, CONTENT_SECURITY_POLICY).expect("a Content-Security-Policy");
    let script_src = csp_directive(&csp, "script-src")
        .or_else(|| csp_directive(&csp, "default-src"))
        .unwrap_or_else(|| panic!("the CSP restricts scripts: {csp}"));
    assert!(
        !script_src.contains("'unsafe-inline'"),
        "inline scripts must stay blocked: {csp}"
    );
    let page = html_body(response).await;
    assert_home_page(&page);
    assert_eq!(input_value(&page, "name").as_deref(), Some(""));
    assert_eq!(input_value(&page, "code").as_deref(), Some(""));
    assert!(
        page.contains("action=\"/rooms\""),
        "Start room posts to /rooms"
    );
    assert!(page.contains("action=\"/join\""), "Join posts to /join");
    for script in page.split("<script").skip(1) {
        let tag = &script[..script.find('>').unwrap_or(script.len())];
        assert!(tag.contains("src="), "an inline script the CSP would block");
    }
}

// ===== POST /rooms =====

/// A blank, too long, control-character or invisible-character name is refused
/// with `400`, shown again on the home page (browser) or as one line of text
/// (curl), and creates no room.
#[tokio::test]
async fn creating_a_room_with_a_bad_name_is_refused_and_the_typed_name_kept() {
    // Arrange
    let app = spawn_app().await;
    let visitor = app.user();
    let too_long = "a".repeat(33);
    let cases = [
        ("", "name"),
        ("   ", "name"),
        (too_long.as_str(), "32"),
        ("al\u{7}ice", "control"),
        ("al\tice", "control"),
        ("al\u{200B}ice", "invisible"),
        ("\u{200B}", "invisible"),
        ("bob\u{202E}", "invisible"),
        ("\u{3164}", "invisible"),
    ];

    for (name, hint) in cases {
        // Act
        let message = assert_form_refused(
            &visitor,
            "/rooms",
            &[("name", name)],
            StatusCode::BAD_REQUEST,
        )
        .await;

        // Assert
        assert!(
            message.to_lowercase().contains(hint),
            "the message for {name:?} says what is wrong ({hint}): {message:?}"
        );
    }
    let mut control = app.user();
    control.create_room_ok(&"é".repeat(32)).await;
}

/// A refused form quotes back at most 64 characters of each typed value: a
/// 10,000-character name or code gets a short answer, not a flood.
#[tokio::test]
async fn a_refused_form_quotes_back_only_the_start_of_a_long_typed_value() {
    // Arrange
    let app = spawn_app().await;
    let visitor = app.user();
    let long_name = "n".repeat(10_000);
    let long_code = "c".repeat(10_000);
    let forms = [
        ("/rooms", vec![("name", long_name.as_str())], "name"),
        (
            "/join",
            vec![("name", "dora"), ("code", long_code.as_str())],
            "code",
        ),
    ];

    for (path, fields, long_field) in forms {
        // Act
        let curl = visitor
            .post_request(path, &fields)
            .send()
            .await
            .expect("POST");
        let browser = send_as_browser(visitor.post_request(path, &fields)).await;

        // Assert
        assert_eq!(curl.status(), StatusCode::BAD_REQUEST, "curl: {path}");
        let line = plain_text_line(curl).await;
        assert!(line.len() < 300, "a short refusal of {path}: {line:?}");
        assert_eq!(browser.status(), StatusCode::BAD_REQUEST, "browser: {path}");
        let page = html_body(browser).await;
        assert_home_page(&page);
        let kept = input_value(&page, long_field).expect("the field is on the page");
        let typed = fields
            .iter()
            .find(|(field, _)| *field == long_field)
            .expect("typed")
            .1;
        let quoted = kept.trim_end_matches(|c: char| !c.is_ascii_alphabetic());
        assert!(
            !quoted.is_empty() && typed.starts_with(quoted),
            "the {long_field} shown again is the start of what was typed: {kept:?}"
        );
        assert!(
            kept.chars().count() <= 65,
            "at most 64 characters (and a mark) of the {long_field} are quoted, not {}",
            kept.chars().count()
        );
        assert!(
            !page.contains(&typed[..65]),
            "no more than 64 characters of the {long_field} anywhere on the page"
        );
    }
}

// ===== POST /join =====

/// The code is trimmed and case-insensitive: ` abcd ` joins room `ABCD`, and the
/// joiner is in the room (not yet connected) from that moment, announced to those
/// streaming.
#[tokio::test]
async fn joining_with_a_padded_lower_case_code_redirects_to_the_room() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let mut bob = app.user();

    // Act
    let response = bob
        .join("bob", &format!("  {}  ", code.to_lowercase()))
        .await;

    // Assert
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("/rooms/{code}"));
    assert!(bob.cookie.is_some(), "joining sets the session cookie");
    alice_events.expect_event("join", "bob").await;
    assert_eq!(
        alice.presence(&code).await,
        people(&[("alice", true), ("bob", false)])
    );
    let _bob_events = bob.open_events(&code).await;
    assert_eq!(
        bob.presence(&code).await,
        people(&[("alice", true), ("bob", true)])
    );
}

/// A code that is not 4 letters is `400`, with the home page keeping name and code.
#[tokio::test]
async fn joining_with_a_malformed_code_is_refused_with_the_typed_values_kept() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let dora = user_with_a_session(&app, "dora").await;

    for bad_code in ["", "abc", "1234", "ab1d", "abcde", "ab cd"] {
        // Act
        let message = assert_form_refused(
            &dora,
            "/join",
            &[("name", "dora"), ("code", bad_code)],
            StatusCode::BAD_REQUEST,
        )
        .await;

        // Assert
        assert!(
            message.contains('4'),
            "the message explains codes: {message:?}"
        );
    }
    assert_not_a_member(&dora, &code).await;
    assert_eq!(alice.presence(&code).await, people(&[("alice", true)]));
}

/// A well-formed code of no open room is `404`, with the typed values kept.
#[tokio::test]
async fn joining_a_room_that_does_not_exist_is_404_with_the_typed_values_kept() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let (dora, dora_code) = app.user_in_new_room("dora").await;
    let unknown = unused_code(&[&code, &dora_code]);

    // Act
    let message = assert_form_refused(
        &dora,
        "/join",
        &[("name", "dora"), ("code", &unknown.to_lowercase())],
        StatusCode::NOT_FOUND,
    )
    .await;

    // Assert
    assert!(
        message.contains(&unknown),
        "the message names the code: {message:?}"
    );
    assert_eq!(
        dora.get(&format!("/rooms/{unknown}/members"))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "no room was opened under {unknown}"
    );
    assert_not_a_member(&dora, &code).await;
    assert_eq!(alice.presence(&code).await, people(&[("alice", true)]));
}

/// A name used by someone in the room, in any letter case or in a spelling that
/// looks the same (Cyrillic `А`, full-width `Ａ`), is `409`; the refused person does
/// not become a member and the room's members do not change.
#[tokio::test]
async fn joining_under_a_taken_or_look_alike_name_is_409_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("Alice").await;
    let _alice_events = alice.open_events(&code).await;
    let mallory = user_with_a_session(&app, "mallory").await;

    for taken in [
        "Alice",
        "alice",
        "ALICE",
        "aLiCe",
        " Alice ",
        "\u{410}lice",
        "\u{FF21}lice",
    ] {
        // Act
        let message = assert_form_refused(
            &mallory,
            "/join",
            &[("name", taken), ("code", &code)],
            StatusCode::CONFLICT,
        )
        .await;

        // Assert
        assert!(
            message.to_lowercase().contains("name"),
            "the message is about the name: {message:?}"
        );
    }
    assert_not_a_member(&mallory, &code).await;
    assert_eq!(alice.presence(&code).await, people(&[("Alice", true)]));
    let carol = app.user_joined(&code, "carol").await;
    assert_eq!(
        carol.presence(&code).await,
        people(&[("Alice", true), ("carol", false)])
    );
}

// ===== Escaping =====

/// What was typed into a refused form, and a name carried in the session, are
/// escaped when shown again.
#[tokio::test]
async fn typed_values_shown_again_in_forms_are_escaped() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let typed_name = "\"><script>alert(1)</script>";
    let typed_code = "\"><b>x";
    let visitor = app.user();
    let (attacker, _) = app.user_in_new_room(XSS).await;

    // Act
    let refused = send_as_browser(
        visitor.post_request("/join", &[("name", typed_name), ("code", typed_code)]),
    )
    .await;
    let join_form = attacker.get_as_browser(&format!("/rooms/{code}")).await;

    // Assert
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = html_body(refused).await;
    assert!(
        !page.contains("<script>alert(1)"),
        "the typed name is escaped"
    );
    assert!(!page.contains("\"><b>"), "the typed code is escaped");
    assert_eq!(input_value(&page, "name").as_deref(), Some(typed_name));
    assert_eq!(input_value(&page, "code").as_deref(), Some(typed_code));
    assert_eq!(join_form.status(), StatusCode::OK);
    let page = html_body(join_form).await;
    assert!(
        !page.contains("<img src=x"),
        "the session's name is escaped"
    );
    assert_eq!(
        input_value(&page, "name").as_deref(),
        Some(XSS),
        "and reads as typed"
    );
}

// ===== Bodies no form would send =====

/// Form bodies with bad percent-encoding, no body, missing or repeated fields are
/// refused with a `4xx` and a message, and the server keeps answering.
#[tokio::test]
async fn bad_form_encodings_are_refused_with_a_message_and_never_crash_the_server() {
    // Arrange
    let app = spawn_app().await;
    let visitor = app.user();
    let raw_bodies: [&[u8]; 8] = [
        b"name=%ZZ%&code=%G",
        b"name=%E0%A4%A&code=%",
        b"",
        b"name=bob",
        b"code=ABCD",
        b"name=a&name=b&code=ABCD",
        b"&&&===&",
        b"name=\xff\xfe&code=\xff",
    ];

    for body in raw_bodies {
        // Act
        let response = send_raw(&visitor, Method::POST, "/join", Some(FORM), Some(body)).await;

        // Assert
        let shown = String::from_utf8_lossy(body).into_owned();
        assert!(
            response.status().is_client_error(),
            "{shown:?}: {}",
            response.status()
        );
        assert_changes_nothing(&response);
        let line = plain_text_line(response).await;
        assert!(!line.is_empty(), "{shown:?}");
    }
    for content_type in [Some(FORM), None] {
        let response = send_raw(&visitor, Method::POST, "/join", content_type, None).await;
        let status = response.status();
        assert!(
            status.is_client_error(),
            "no body, {content_type:?}: {status}"
        );
        assert_changes_nothing(&response);
    }
    assert_eq!(visitor.get("/").await.status(), StatusCode::OK);
}

/// A form post whose body is not URL-encoded (a `text/plain` or multipart form, or
/// JSON) is refused with a `4xx` and a message, never a `500`.
#[tokio::test]
async fn a_post_that_is_not_url_encoded_is_a_4xx_not_a_500() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let posts = [
        ("/rooms".to_owned(), "text/plain", "name=bob"),
        (
            "/join".to_owned(),
            "application/json",
            "{\"name\":\"bob\",\"code\":\"ABCD\"}",
        ),
        (
            format!("/rooms/{code}/messages"),
            "multipart/form-data; boundary=x",
            "--x\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhi\r\n--x--\r\n",
        ),
        (
            format!("/rooms/{code}/messages"),
            "text/plain",
            "message=hi",
        ),
    ];

    let mut wrong = Vec::new();
    for (path, content_type, body) in posts {
        // Act
        let response = send_raw(
            &alice,
            Method::POST,
            &path,
            Some(content_type),
            Some(body.as_bytes()),
        )
        .await;

        // Assert (all cases first, then one report)
        let status = response.status();
        if status.is_client_error() {
            plain_text_line(response).await;
        } else {
            wrong.push(format!("POST {path} as {content_type}: {status}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected a 4xx (e.g. 415) with a message, got: {wrong:#?}"
    );
    alice.say(&code, "still fine").await;
    assert_eq!(events.next_message().await.text(), "still fine");
}

// ===== Helpers =====

/// Sends a refused form as curl and as a browser: both get `status` and change
/// nothing; curl gets one line of text, the browser the home page showing that
/// message with every typed value kept. Returns the message.
async fn assert_form_refused(
    user: &User,
    path: &str,
    fields: &[(&str, &str)],
    status: StatusCode,
) -> String {
    let curl = user.post_request(path, fields).send().await.expect("POST");
    assert_eq!(curl.status(), status, "curl: POST {path} {fields:?}");
    assert_changes_nothing(&curl);
    let message = plain_text_line(curl).await;

    let browser = send_as_browser(user.post_request(path, fields)).await;
    assert_eq!(browser.status(), status, "browser: POST {path} {fields:?}");
    assert_changes_nothing(&browser);
    let page = html_body(browser).await;
    assert_home_page(&page);
    assert!(
        html_unescape(&page).contains(&message),
        "the page shows {message:?} for {fields:?}"
    );
    for (field, typed) in fields {
        assert_eq!(
            input_value(&page, field).as_deref(),
            Some(*typed),
            "the typed {field} is kept"
        );
    }
    message
}

/// The value of a CSP directive, e.g. `'self'` for `script-src`.
fn csp_directive(csp: &str, name: &str) -> Option<String> {
    csp.split(';').map(str::trim).find_map(|directive| {
        let (key, value) = directive.split_once(' ').unwrap_or((directive, ""));
        (key.eq_ignore_ascii_case(name)).then(|| value.to_owned())
    })
}
