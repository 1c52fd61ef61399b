//! The pages and forms people use, and every way they can be misused: the home
//! page, refused forms (shown again with the message and what was typed), the room
//! page for members and for everyone else, the members list, message rules,
//! cross-site posts, foreign or tampered cookies, escaping, and malformed requests.

use reqwest::header::{
    ACCEPT, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, LOCATION, ORIGIN, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS,
};
use reqwest::{Method, Response, StatusCode};

use crate::helpers::{
    TestApp, User, location, send_as_browser, spawn_app, spawn_app_with, unused_code,
};

/// A name and a message that would run script if a page inserted them as HTML.
const XSS: &str = "<img src=x onerror=alert(1)>";

const FORM: &str = "application/x-www-form-urlencoded";

// ===== The home page =====

/// `GET /` is an HTML page whose form has `name` and `code`, Create room and Join
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
        "Create room posts to /rooms"
    );
    assert!(page.contains("action=\"/join\""), "Join posts to /join");
    for script in page.split("<script").skip(1) {
        let tag = &script[..script.find('>').unwrap_or(script.len())];
        assert!(tag.contains("src="), "an inline script the CSP would block");
    }
}

// ===== POST /rooms =====

/// A blank, too long, or control-character name is refused with `400`, shown again
/// on the home page (browser) or as one line of text (curl), and creates no room.
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

// ===== POST /join =====

/// The code is trimmed and case-insensitive: ` abcd ` joins room `ABCD`.
#[tokio::test]
async fn joining_with_a_padded_lower_case_code_redirects_to_the_room() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let mut bob = app.user();

    // Act
    let response = bob
        .join("bob", &format!("  {}  ", code.to_lowercase()))
        .await;

    // Assert
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("/rooms/{code}"));
    assert!(bob.cookie.is_some(), "joining sets the session cookie");
    let mut bob_events = bob.open_events(&code).await;
    let joined = bob_events.next_event().await;
    assert_eq!((joined.event.as_str(), joined.name()), ("join", "bob"));
    assert_eq!(sorted(alice.members(&code).await), ["alice", "bob"]);
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
    assert_eq!(alice.members(&code).await, ["alice"]);
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
    assert_eq!(alice.members(&code).await, ["alice"]);
}

/// A name used by someone in the room, in any letter case, is `409`; the refused
/// person does not become a member and the room's members do not change.
#[tokio::test]
async fn joining_under_a_name_taken_in_any_letter_case_is_409_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("Alice").await;
    let _alice_events = alice.open_events(&code).await;
    let mallory = user_with_a_session(&app, "mallory").await;

    for taken in ["Alice", "alice", "ALICE", "aLiCe"] {
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
    assert_eq!(alice.members(&code).await, ["Alice"]);
    let carol = app.user_joined(&code, "carol").await;
    assert_eq!(
        carol.get(&format!("/rooms/{code}/members")).await.status(),
        StatusCode::OK
    );
}

// ===== GET /rooms/{CODE} =====

/// A member's room page shows the history (rendered on the server), who is
/// present, and a send form.
#[tokio::test]
async fn a_members_room_page_shows_history_and_who_is_present() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let bob = app.user_joined(&code, "bob").await;
    let _bob_events = bob.open_events(&code).await;
    alice.say(&code, "hello from the server side").await;

    // Act
    let response = bob.get_as_browser(&format!("/rooms/{code}")).await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    let page = html_body(response).await;
    assert!(
        page.contains("hello from the server side"),
        "history is on the page"
    );
    let present = after(&page, "Here now");
    let present = &present[..present.find("</ul>").unwrap_or(present.len())];
    assert!(
        present.contains("alice"),
        "alice is shown present: {present}"
    );
    assert!(present.contains("bob"), "bob is shown present: {present}");
    assert!(input_value(&page, "message").is_some(), "a send form");
    assert!(page.contains(&format!("action=\"/rooms/{code}/messages\"")));
}

/// Someone who is not a member (no cookie, or a session elsewhere) gets a join form
/// with the code filled in, and sees none of the room's messages.
#[tokio::test]
async fn a_non_member_gets_a_join_form_with_the_code_filled_in() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    alice.say(&code, "members only chatter").await;
    let stranger = app.user();
    let other = user_with_a_session(&app, "other").await;

    for visitor in [&stranger, &other] {
        // Act
        let response = visitor.get_as_browser(&format!("/rooms/{code}")).await;

        // Assert
        assert_eq!(response.status(), StatusCode::OK);
        let page = html_body(response).await;
        assert_eq!(input_value(&page, "code"), Some(code.clone()));
        assert!(input_value(&page, "name").is_some(), "a name field");
        assert!(page.contains("action=\"/join\""), "the form joins");
        assert!(
            !page.contains("members only chatter"),
            "a non-member must not see the history"
        );
    }
}

/// A code of no open room, or a path that is not a code at all, is a `404` page
/// with a link home (for someone who has a session).
#[tokio::test]
async fn an_unknown_or_malformed_room_is_a_404_page_with_a_link_home() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let unknown = unused_code(&[&code]);

    for path in [
        format!("/rooms/{unknown}"),
        "/rooms/AB1".to_owned(),
        "/rooms/ABCDE".to_owned(),
        "/rooms/%3Cb%3E".to_owned(),
    ] {
        // Act & Assert
        assert_room_page_is_404(&alice, &path).await;
    }
}

/// Someone with no cookie following a link to a room that does not exist (e.g. one
/// that closed) gets the same `404` page, and `404` from its events and members.
#[tokio::test]
async fn a_visitor_without_a_cookie_gets_404_for_an_unknown_room() {
    // Arrange
    let app = spawn_app().await;
    let (_alice, code) = app.user_in_new_room("alice").await;
    let unknown = unused_code(&[&code]);
    let stranger = app.user();

    // Act
    let events = stranger.get(&format!("/rooms/{unknown}/events")).await;
    let members = stranger.get(&format!("/rooms/{unknown}/members")).await;

    // Assert
    assert_eq!(events.status(), StatusCode::NOT_FOUND, "events");
    assert_eq!(members.status(), StatusCode::NOT_FOUND, "members");
    assert_room_page_is_404(&stranger, "/rooms/AB1").await;
    assert_room_page_is_404(&stranger, &format!("/rooms/{unknown}")).await;
}

// ===== GET /rooms/{CODE}/members =====

/// Members get a JSON list of present names; others `403`; unknown rooms `404`.
#[tokio::test]
async fn the_members_list_is_for_members_only() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let (other, other_code) = app.user_in_new_room("other").await;
    let stranger = app.user();
    let unknown = unused_code(&[&code, &other_code]);

    // Act
    let listed = alice.get(&format!("/rooms/{code}/members")).await;
    let by_other = other.get(&format!("/rooms/{code}/members")).await;
    let by_stranger = stranger.get(&format!("/rooms/{code}/members")).await;
    let of_unknown = alice.get(&format!("/rooms/{unknown}/members")).await;

    // Assert
    assert_eq!(listed.status(), StatusCode::OK);
    let content_type = header(&listed, CONTENT_TYPE).unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let names: Vec<String> = listed.json().await.expect("a JSON list of names");
    assert_eq!(names, ["alice"]);
    assert_eq!(by_other.status(), StatusCode::FORBIDDEN);
    assert_eq!(by_stranger.status(), StatusCode::FORBIDDEN);
    assert_eq!(of_unknown.status(), StatusCode::NOT_FOUND);
}

// ===== POST /rooms/{CODE}/messages =====

/// A post by someone who is not a member is `403` and reaches no one.
#[tokio::test]
async fn a_non_member_cannot_post_and_nothing_is_published() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let outsider = user_with_a_session(&app, "outsider").await;
    let stranger = app.user();

    // Act
    let by_outsider = outsider.post_message(&code, "psst from outside").await;
    let by_stranger = stranger.post_message(&code, "psst from nowhere").await;

    // Assert
    assert_eq!(by_outsider.status(), StatusCode::FORBIDDEN);
    assert_eq!(by_stranger.status(), StatusCode::FORBIDDEN);
    alice.say(&code, "marker").await;
    let first = alice_events.next_message().await;
    assert_eq!((first.name(), first.text()), ("alice", "marker"));
    let page = html_body(alice.get_as_browser(&format!("/rooms/{code}")).await).await;
    assert!(
        !page.contains("psst"),
        "a refused message is not in the history"
    );
}

/// Membership is checked first: a non-member's invalid post is `403`, not `400`.
#[tokio::test]
async fn a_non_member_is_refused_before_the_message_is_judged() {
    // Arrange
    let app = spawn_app().await;
    let (_alice, code) = app.user_in_new_room("alice").await;
    let outsider = user_with_a_session(&app, "outsider").await;

    // Act
    let blank = outsider.post_message(&code, "   ").await;
    let too_long = outsider.post_message(&code, &"x".repeat(2001)).await;

    // Assert
    assert_eq!(blank.status(), StatusCode::FORBIDDEN);
    assert_eq!(too_long.status(), StatusCode::FORBIDDEN);
}

/// Messages must have 1–2000 characters after trimming; refused ones are `400`
/// and never published.
#[tokio::test]
async fn messages_must_have_between_1_and_2000_characters() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let longest = "x".repeat(2000);
    let longest_wide = "é".repeat(2000);

    // Act
    let mut refused = Vec::new();
    for text in ["", "   ", " \n\t ", &"x".repeat(2001), &"é".repeat(2001)] {
        refused.push((text.len(), alice.post_message(&code, text).await));
    }
    let accepted = alice.post_message(&code, &longest).await;
    let accepted_wide = alice
        .post_message(&code, &format!("  {longest_wide}\n"))
        .await;

    // Assert
    for (len, response) in refused {
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{len} bytes");
        plain_text_line(response).await;
    }
    assert_eq!(accepted.status(), StatusCode::NO_CONTENT);
    assert_eq!(accepted_wide.status(), StatusCode::NO_CONTENT);
    assert_eq!(events.next_message().await.text(), longest);
    assert_eq!(events.next_message().await.text(), longest_wide);
}

/// `--max-message-chars 10`: 11 characters are refused, 10 accepted.
#[tokio::test]
async fn the_message_limit_is_configurable() {
    // Arrange
    let app = spawn_app_with(&["--max-message-chars", "10"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;

    // Act
    let eleven = alice.post_message(&code, "abcdefghijk").await;
    let ten = alice.post_message(&code, "abcdefghij").await;

    // Assert
    assert_eq!(eleven.status(), StatusCode::BAD_REQUEST);
    assert_eq!(ten.status(), StatusCode::NO_CONTENT);
    assert_eq!(events.next_message().await.text(), "abcdefghij");
}

/// A form body over 16 KiB is `413` and publishes nothing.
#[tokio::test]
async fn a_form_body_over_16_kib_is_413() {
    // Arrange
    let app = spawn_app_with(&["--max-message-chars", "100000"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;

    // Act
    let huge = alice.post_message(&code, &"x".repeat(17 * 1024)).await;

    // Assert
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    alice.say(&code, "after the big one").await;
    assert_eq!(events.next_message().await.text(), "after the big one");
}

/// A plain HTML form post is `303` back to the room; curl's post is `204`.
#[tokio::test]
async fn a_browser_form_post_redirects_to_the_room_and_curl_gets_204() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let path = format!("/rooms/{code}/messages");

    // Act
    let browser = send_as_browser(alice.post_request(&path, &[("message", "from a form")])).await;
    let curl = alice.post_message(&code, "from curl").await;

    // Assert
    assert_eq!(browser.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&browser), format!("/rooms/{code}"));
    assert_eq!(curl.status(), StatusCode::NO_CONTENT);
    assert_eq!(events.next_message().await.text(), "from a form");
    assert_eq!(events.next_message().await.text(), "from curl");
}

// ===== Cross-site posts =====

/// `POST /rooms` from another origin is `403` and sets no session; from our own
/// origin it works.
#[tokio::test]
async fn creating_a_room_from_another_origin_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let visitor = app.user();
    let own = own_origin(&app);

    for origin in ["http://evil.example", "http://127.0.0.1:1"] {
        // Act
        let response = visitor
            .post_request("/rooms", &[("name", "alice")])
            .header(ORIGIN, origin)
            .send()
            .await
            .expect("POST /rooms");

        // Assert
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
        assert_changes_nothing(&response);
    }
    let ours = visitor
        .post_request("/rooms", &[("name", "alice")])
        .header(ORIGIN, &own)
        .send()
        .await
        .expect("POST /rooms");
    assert_eq!(ours.status(), StatusCode::SEE_OTHER);
    assert!(ours.headers().contains_key(SET_COOKIE));
}

/// `POST /join` from another origin is `403` and makes no one a member; from our
/// own origin it works.
#[tokio::test]
async fn joining_from_another_origin_is_refused_and_the_name_stays_free() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let bob = user_with_a_session(&app, "bob").await;

    // Act
    let response = bob
        .post_request("/join", &[("name", "bob"), ("code", &code)])
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .expect("POST /join");

    // Assert
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_changes_nothing(&response);
    assert_not_a_member(&bob, &code).await;
    assert_eq!(alice.members(&code).await, ["alice"]);
    let ours = bob
        .post_request("/join", &[("name", "bob"), ("code", &code)])
        .header(ORIGIN, own_origin(&app))
        .send()
        .await
        .expect("POST /join");
    assert_eq!(
        ours.status(),
        StatusCode::SEE_OTHER,
        "the name bob was still free"
    );
}

/// A message posted from another origin is `403` and published nowhere; from our
/// own origin it is published.
#[tokio::test]
async fn posting_a_message_from_another_origin_is_refused_and_not_published() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;
    let path = format!("/rooms/{code}/messages");

    // Act
    let evil = alice
        .post_request(&path, &[("message", "forged")])
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .expect("POST message");
    let ours = alice
        .post_request(&path, &[("message", "genuine")])
        .header(ORIGIN, own_origin(&app))
        .send()
        .await
        .expect("POST message");

    // Assert
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    assert_eq!(ours.status(), StatusCode::NO_CONTENT);
    assert_eq!(events.next_message().await.text(), "genuine");
    let page = html_body(alice.get_as_browser(&format!("/rooms/{code}")).await).await;
    assert!(!page.contains("forged"));
}

// ===== Sessions =====

/// One session creates two rooms and uses both; messages stay in their room.
#[tokio::test]
async fn one_session_can_create_and_use_two_rooms_at_once() {
    // Arrange
    let app = spawn_app().await;
    let mut alice = app.user();
    let room_a = alice.create_room_ok("alice").await;
    let room_b = alice.create_room_ok("alice").await;
    assert_ne!(room_a, room_b);
    let mut a_events = alice.open_events(&room_a).await;
    let mut b_events = alice.open_events(&room_b).await;

    // Act
    alice.say(&room_a, "only in A").await;
    alice.say(&room_b, "only in B").await;

    // Assert
    assert_eq!(a_events.next_message().await.text(), "only in A");
    assert_eq!(b_events.next_message().await.text(), "only in B");
    let page_b = html_body(alice.get_as_browser(&format!("/rooms/{room_b}")).await).await;
    assert!(page_b.contains("only in B") && !page_b.contains("only in A"));
    assert_eq!(alice.members(&room_a).await, ["alice"]);
    assert_eq!(alice.members(&room_b).await, ["alice"]);
}

/// A member of room A who joins room B stays a member of A; both keep working.
#[tokio::test]
async fn joining_a_second_room_keeps_the_first_membership() {
    // Arrange
    let app = spawn_app().await;
    let (mut alice, room_a) = app.user_in_new_room("alice").await;
    let mut a_events = alice.open_events(&room_a).await;
    let (bob, room_b) = app.user_in_new_room("bob").await;
    let mut bob_events = bob.open_events(&room_b).await;

    // Act
    let joined = alice.join("alice", &room_b).await;
    let mut b_events = alice.open_events(&room_b).await;
    alice.say(&room_a, "hello A").await;
    alice.say(&room_b, "hello B").await;

    // Assert
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    assert_eq!(a_events.next_message().await.text(), "hello A");
    assert_eq!(b_events.next_message().await.text(), "hello B");
    let seen_by_bob = bob_events.next_message().await;
    assert_eq!(
        (seen_by_bob.name(), seen_by_bob.text()),
        ("alice", "hello B")
    );
    assert_eq!(alice.members(&room_a).await, ["alice"]);
    assert_eq!(sorted(alice.members(&room_b).await), ["alice", "bob"]);
}

/// A cookie with one character changed counts as no session.
#[tokio::test]
async fn a_tampered_cookie_counts_as_no_session() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let mut mallory = app.user();
    mallory.cookie = Some(tampered(alice.cookie.as_deref().expect("alice's cookie")));

    // Act & Assert
    assert_counts_as_no_session(&mallory, &code).await;
    // The untampered cookie still works, so the refusals above are the tampering's.
    assert_eq!(
        alice.get(&format!("/rooms/{code}/members")).await.status(),
        StatusCode::OK
    );
}

/// A cookie made by another server instance counts as no session.
#[tokio::test]
async fn a_cookie_from_another_server_counts_as_no_session() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let elsewhere = spawn_app().await;
    let (zed, _) = elsewhere.user_in_new_room("zed").await;
    let mut foreigner = app.user();
    foreigner.cookie = zed.cookie.clone();

    // Act & Assert
    assert_counts_as_no_session(&foreigner, &code).await;
    let home = html_body(foreigner.get_as_browser("/").await).await;
    assert_eq!(
        input_value(&home, "name").as_deref(),
        Some(""),
        "zed is unknown here"
    );
}

// ===== Escaping =====

/// A name and a message that look like HTML are escaped on the page and exact in
/// the event stream and the members list.
#[tokio::test]
async fn html_in_names_and_messages_is_escaped_on_the_page_and_exact_in_the_stream() {
    // Arrange
    let app = spawn_app().await;
    let (attacker, code) = app.user_in_new_room(XSS).await;
    let mut events = attacker.open_events(&code).await;

    // Act
    attacker.say(&code, XSS).await;

    // Assert
    let joined = events.next_event().await;
    assert_eq!((joined.event.as_str(), joined.name()), ("join", XSS));
    let message = events.next_message().await;
    assert_eq!((message.name(), message.text()), (XSS, XSS));
    assert_eq!(attacker.members(&code).await, [XSS]);
    let page = html_body(attacker.get_as_browser(&format!("/rooms/{code}")).await).await;
    assert!(page.contains("&lt;img"), "the text is shown escaped");
    assert!(!page.contains("<img src=x"), "no raw markup from users");
    assert!(
        html_unescape(&page).matches(XSS).count() >= 3,
        "the name (present list, notice, author) and the message read as typed"
    );
}

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
}

// ===== Malformed requests =====

/// Unknown paths are `404`; a wrong method on a known path is `405` or `404`,
/// never `500`.
#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_never_500() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;

    // Act & Assert
    for path in [
        "/nope".to_owned(),
        format!("/rooms/{code}/nope"),
        format!("/rooms/{code}/events/more"),
        "/assets/nope.js".to_owned(),
        "/index.html".to_owned(),
    ] {
        let response = alice.get(&path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "GET {path}");
    }
    for (method, path) in [
        (Method::DELETE, format!("/rooms/{code}/messages")),
        (Method::GET, format!("/rooms/{code}/messages")),
        (Method::GET, "/join".to_owned()),
        (Method::GET, "/rooms".to_owned()),
        (Method::GET, "/rooms/".to_owned()),
        (Method::PUT, "/rooms".to_owned()),
        (Method::DELETE, format!("/rooms/{code}")),
        (Method::POST, format!("/rooms/{code}")),
        (Method::POST, format!("/rooms/{code}/events")),
        (Method::PATCH, "/".to_owned()),
    ] {
        let response = send_raw(&alice, method.clone(), &path, None, None).await;
        let status = response.status();
        assert!(
            status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_FOUND,
            "{method} {path}: {status}"
        );
    }
}

/// A `Last-Event-ID` (or `?after=`) that is not a number is `400`, not a stream.
#[tokio::test]
async fn a_malformed_last_event_id_is_400() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let path = format!("/rooms/{code}/events");

    // Act
    let by_header = alice
        .get_request(&path)
        .header("last-event-id", "abc")
        .send()
        .await
        .expect("GET events");
    let by_query = alice.get(&format!("{path}?after=abc")).await;

    // Assert
    assert_eq!(by_header.status(), StatusCode::BAD_REQUEST);
    plain_text_line(by_header).await;
    assert_eq!(by_query.status(), StatusCode::BAD_REQUEST);
    let mut events = alice.open_events(&code).await;
    assert_eq!(
        events.next_event().await.event,
        "join",
        "the room still works"
    );
}

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

/// No, tampered and foreign sessions alike: events and posts `403`, the room page
/// a join form.
async fn assert_counts_as_no_session(user: &User, code: &str) {
    let events = user
        .get_request(&format!("/rooms/{code}/events"))
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .expect("GET events");
    assert_eq!(events.status(), StatusCode::FORBIDDEN, "events");
    let post = user.post_message(code, "who am I").await;
    assert_eq!(post.status(), StatusCode::FORBIDDEN, "messages");
    assert_not_a_member(user, code).await;
    let page = user.get_as_browser(&format!("/rooms/{code}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = html_body(page).await;
    assert_eq!(
        input_value(&page, "code").as_deref(),
        Some(code),
        "a join form"
    );
    assert_eq!(
        input_value(&page, "name").as_deref(),
        Some(""),
        "nobody known"
    );
    assert!(input_value(&page, "message").is_none(), "not the room page");
}

/// `GET path` is `404`: a page with a link home for a browser, a line for curl.
async fn assert_room_page_is_404(user: &User, path: &str) {
    let browser = send_as_browser(user.get_request(path)).await;
    assert_eq!(
        browser.status(),
        StatusCode::NOT_FOUND,
        "browser: GET {path}"
    );
    let page = html_body(browser).await;
    assert!(page.contains("href=\"/\""), "a link home on {path}");
    let curl = user.get(path).await;
    assert_eq!(curl.status(), StatusCode::NOT_FOUND, "curl: GET {path}");
    plain_text_line(curl).await;
}

/// The user is not a member of the open room `code`: its members list is `403`.
async fn assert_not_a_member(user: &User, code: &str) {
    let response = user.get(&format!("/rooms/{code}/members")).await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "not a member of {code}"
    );
}

/// A request as `user` (their cookie, curl's `Accept`) with any method, content
/// type and raw body.
async fn send_raw(
    user: &User,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Response {
    let (client, request) = user.get_request(path).build_split();
    let mut request = request.expect("a request");
    *request.method_mut() = method;
    if let Some(content_type) = content_type {
        request.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("a content type"),
        );
    }
    if let Some(body) = body {
        *request.body_mut() = Some(body.to_vec().into());
    }
    client.execute(request).await.expect("request")
}

/// A refusal neither sets a session nor sends anyone on to a room.
fn assert_changes_nothing(response: &Response) {
    assert!(
        !response.headers().contains_key(SET_COOKIE),
        "a refusal sets no cookie"
    );
    assert!(
        !response.headers().contains_key(LOCATION),
        "a refusal redirects nowhere"
    );
}

/// The home page: its form with `name`, `code`, Create room and Join.
fn assert_home_page(page: &str) {
    assert!(input_value(page, "name").is_some(), "a name field");
    assert!(input_value(page, "code").is_some(), "a code field");
    let buttons = button_labels(page);
    assert!(buttons.iter().any(|b| b == "Create room"), "{buttons:?}");
    assert!(buttons.iter().any(|b| b == "Join"), "{buttons:?}");
}

/// A user who has a session (they created a room of their own).
async fn user_with_a_session(app: &TestApp, name: &str) -> User {
    let (user, _) = app.user_in_new_room(name).await;
    assert!(user.cookie.is_some());
    user
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

fn own_origin(app: &TestApp) -> String {
    format!("http://{}", app.addr)
}

fn header(response: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_owned())
}

async fn html_body(response: Response) -> String {
    let content_type = header(&response, CONTENT_TYPE).unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "an HTML page, not {content_type:?}"
    );
    response.text().await.expect("body")
}

/// A curl-style refusal: one line of plain text. Returns the line.
async fn plain_text_line(response: Response) -> String {
    let content_type = header(&response, CONTENT_TYPE).unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "plain text, not {content_type:?}"
    );
    let body = response.text().await.expect("body");
    let line = body.trim_end_matches('\n');
    assert!(!line.trim().is_empty(), "a message");
    assert!(!line.contains('\n'), "one line: {body:?}");
    assert!(!line.starts_with('<'), "not markup: {body:?}");
    line.to_owned()
}

/// The value of a CSP directive, e.g. `'self'` for `script-src`.
fn csp_directive(csp: &str, name: &str) -> Option<String> {
    csp.split(';').map(str::trim).find_map(|directive| {
        let (key, value) = directive.split_once(' ').unwrap_or((directive, ""));
        (key.eq_ignore_ascii_case(name)).then(|| value.to_owned())
    })
}

/// The text after the first occurrence of `marker` (empty if absent).
fn after<'a>(page: &'a str, marker: &str) -> &'a str {
    page.find(marker)
        .map_or("", |at| &page[at + marker.len()..])
}

/// The (unescaped) value of the `<input name="{field}">`, `Some("")` if it has no
/// value, `None` if there is no such input.
fn input_value(page: &str, field: &str) -> Option<String> {
    let wanted = format!("name=\"{field}\"");
    page.split("<input")
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap_or(rest.len())])
        .find(|tag| tag.split_whitespace().any(|attribute| attribute == wanted))
        .map(|tag| {
            attribute(tag, "value")
                .map(html_unescape)
                .unwrap_or_default()
        })
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let pattern = format!("{name}=\"");
    tag.match_indices(&pattern)
        .find(|(at, _)| tag[..*at].ends_with(char::is_whitespace))
        .map(|(at, _)| {
            let value = &tag[at + pattern.len()..];
            &value[..value.find('"').unwrap_or(value.len())]
        })
}

fn button_labels(page: &str) -> Vec<String> {
    page.split("<button")
        .skip(1)
        .filter_map(|rest| {
            let start = rest.find('>')? + 1;
            let end = rest.find("</button>")?;
            Some(html_unescape(rest.get(start..end)?.trim()))
        })
        .collect()
}

/// Decodes the character references a page may use.
fn html_unescape(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| decode_entity(&rest[1..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(entity: &str) -> Option<char> {
    match entity {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let number = entity.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// The cookie with one character in the middle of its value changed.
fn tampered(cookie: &str) -> String {
    let (name, value) = cookie.split_once('=').expect("name=value");
    let mut chars: Vec<char> = value.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    format!("{name}={}", chars.into_iter().collect::<String>())
}
