//! A room's own address, `/rooms/{CODE}`, and the paths under it as a browser or
//! curl meets them: the page a member sees (history, everyone who joined with a
//! connected mark, a send form), the join form everyone else gets, `404` for rooms
//! that do not exist, escaping of what people typed, and malformed requests.

use reqwest::{Method, StatusCode};

use crate::helpers::{User, send_as_browser, spawn_app, unused_code};
use crate::web::{
    XSS, html_body, html_unescape, input_value, message_texts, people, plain_text_line,
    present_list, send_raw, user_with_a_session,
};

// ===== GET /rooms/{CODE} =====

/// A member's room page shows the history (rendered on the server), everyone who
/// joined in join order, each marked connected or not, and a send form.
#[tokio::test]
async fn a_members_room_page_shows_history_and_who_is_present() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let _alice_events = alice.open_events(&code).await;
    let bob = app.user_joined(&code, "bob").await;
    let _bob_events = bob.open_events(&code).await;
    let _carol = app.user_joined(&code, "carol").await;
    alice.say(&code, "hello from the server side").await;

    // Act
    let response = bob.get_as_browser(&format!("/rooms/{code}")).await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    let page = html_body(response).await;
    assert_eq!(
        message_texts(&page),
        ["hello from the server side"],
        "history is on the page"
    );
    assert_eq!(
        present_list(&page),
        people(&[("alice", true), ("bob", true), ("carol", false)]),
        "everyone who joined, carol (no stream open) marked not connected"
    );
    assert!(
        page.contains("<textarea id=\"message\" name=\"message\""),
        "a send form"
    );
    assert!(page.contains(&format!("action=\"/rooms/{code}/messages\"")));
}

/// Someone who is not a member (no cookie, or a session elsewhere) gets a join form
/// with the code filled in, and sees none of the room's messages or members.
#[tokio::test]
async fn a_non_member_gets_a_join_form_with_the_code_filled_in() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice-the-member").await;
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
        assert!(
            !page.contains("alice-the-member"),
            "a non-member must not see who is in the room"
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

// ===== Escaping =====

/// A name and a message that look like HTML are escaped on the page and exact in
/// the event stream (the creator's join, replayed from the start, and the message)
/// and the members list.
#[tokio::test]
async fn html_in_names_and_messages_is_escaped_on_the_page_and_exact_in_the_stream() {
    // Arrange
    let app = spawn_app().await;
    let (attacker, code) = app.user_in_new_room(XSS).await;
    let mut events = attacker.open_events_after(&code, 0).await;

    // Act
    attacker.say(&code, XSS).await;

    // Assert
    let joined = events.next_event().await;
    assert_eq!((joined.event.as_str(), joined.name()), ("join", XSS));
    let message = events.next_message().await;
    assert_eq!((message.name(), message.text()), (XSS, XSS));
    assert_eq!(attacker.presence(&code).await, people(&[(XSS, true)]));
    let page = html_body(attacker.get_as_browser(&format!("/rooms/{code}")).await).await;
    assert!(page.contains("&lt;img"), "the text is shown escaped");
    assert!(!page.contains("<img src=x"), "no raw markup from users");
    assert_eq!(present_list(&page), people(&[(XSS, true)]));
    assert_eq!(message_texts(&page), [XSS]);
    assert!(
        html_unescape(&page).matches(XSS).count() >= 4,
        "the name (present list, you-are, join notice, author) and the message read as typed"
    );
}

/// An `http(s)://` address in a message is a link on the page, with `rel`
/// "noopener noreferrer nofollow ugc", without the punctuation that ends the
/// sentence; `javascript:` and HTML stay text.
#[tokio::test]
async fn addresses_in_the_history_are_links_and_nothing_else_is() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let typed =
        "see (https://a.example/x_(y)?q=1&r=2). javascript:alert(1) <b>x</b> ftp://b.example";

    // Act
    alice.say(&code, typed).await;
    let page = html_body(alice.get_as_browser(&format!("/rooms/{code}")).await).await;

    // Assert
    let link = "<a href=\"https://a.example/x_(y)?q&#x3D;1&amp;r&#x3D;2\" \
        rel=\"noopener noreferrer nofollow ugc\" target=\"_blank\">https://a.example/x_(y)?q&#x3D;1&amp;r&#x3D;2</a>";
    let text = format!(
        "<p class=\"text\" dir=\"auto\">see ({link}). javascript:alert(1) &lt;b&gt;x&lt;/b&gt; ftp://b.example</p>"
    );
    assert!(page.contains(&text), "{page}");
    assert_eq!(
        page.matches("nofollow ugc").count(),
        1,
        "one link in the log"
    );
}

/// A browser's form posts a line break as CRLF: the room keeps it as one `\n`,
/// in the stream and on the page.
#[tokio::test]
async fn a_line_break_posted_as_crlf_is_kept_as_one_newline() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut events = alice.open_events(&code).await;

    // Act
    let posted = alice
        .post_request(
            &format!("/rooms/{code}/messages"),
            &[("message", "first line\r\nsecond line\r\n")],
        )
        .send()
        .await
        .expect("POST message");

    // Assert
    assert!(posted.status().is_success(), "{}", posted.status());
    assert_eq!(
        events.next_message().await.text(),
        "first line\nsecond line"
    );
    let page = html_body(alice.get_as_browser(&format!("/rooms/{code}")).await).await;
    assert_eq!(message_texts(&page), ["first line\nsecond line"]);
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

/// A `Last-Event-ID` (or `?after=`) that is not a number is `400`, not a stream,
/// and the refusal quotes at most a short prefix of it; a 500 KB one (past the
/// largest request head read) gets a short refusal too.
#[tokio::test]
async fn a_malformed_last_event_id_is_400() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let path = format!("/rooms/{code}/events");
    // Long enough to show the quoting is cut, short enough for any head limit
    // (hyper reads at least 8 KiB of head).
    let long = "x".repeat(4_000);
    let huge = "x".repeat(500 * 1024);

    // Act
    let by_header = alice
        .get_request(&path)
        .header("last-event-id", "abc")
        .send()
        .await
        .expect("GET events");
    let by_query = alice.get(&format!("{path}?after=abc")).await;
    let by_long_header = alice
        .get_request(&path)
        .header("last-event-id", &long)
        .send()
        .await
        .expect("GET events");
    let by_huge_header = alice
        .get_request(&path)
        .header("last-event-id", &huge)
        .send()
        .await
        .expect("GET events");

    // Assert
    assert_eq!(by_header.status(), StatusCode::BAD_REQUEST);
    plain_text_line(by_header).await;
    assert_eq!(by_query.status(), StatusCode::BAD_REQUEST);
    plain_text_line(by_query).await;
    assert_eq!(by_long_header.status(), StatusCode::BAD_REQUEST);
    let line = plain_text_line(by_long_header).await;
    assert!(
        line.len() < 300 && !line.contains(&long[..65]),
        "at most 64 characters of the id are quoted: {line:?}"
    );
    let status = by_huge_header.status();
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "a 500 KB id is refused, not streamed: {status}"
    );
    let body = by_huge_header.bytes().await.expect("the body");
    assert!(
        body.len() < 300,
        "a short refusal, not the id sent back ({} bytes)",
        body.len()
    );
    let mut events = alice.open_events(&code).await;
    alice.say(&code, "the room still works").await;
    assert_eq!(events.next_message().await.text(), "the room still works");
}

// ===== Helpers =====

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
