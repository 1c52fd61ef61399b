//! Who someone is in a room cannot be faked: names, cookies, hosts and origins.
//!
//! Names that look like a member's are refused; a copied cookie opens only the
//! rooms its owner had joined when it was copied; requests for a host name that
//! is not ours, and posts from another origin (however the forwarding headers
//! dress it up), are refused; and a member is announced before they can read.

use reqwest::header::{HOST, ORIGIN, SET_COOKIE};
use reqwest::{Response, StatusCode};

use crate::helpers::{room_code, session_cookie, spawn_app, spawn_app_with};

const UNKNOWN_HOST: &str = "This chat is not set up for the address you used. Ask the person who runs it for the right link.";

// ===== Names and messages =====

/// Names that pass for `alice` (other scripts, full width, capitals) are 409,
/// names with invisible or formatting characters are 400, and none of them joins.
#[tokio::test]
async fn every_spoofed_name_is_refused_and_none_joins() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let spoofs = [
        ("\u{0430}lice", StatusCode::CONFLICT),     // Cyrillic а
        ("\u{FF41}lice", StatusCode::CONFLICT),     // full-width ａ
        ("ALICE", StatusCode::CONFLICT),            // letter case
        ("al\u{200B}ice", StatusCode::BAD_REQUEST), // zero-width space inside
        ("\u{200B}", StatusCode::BAD_REQUEST),      // nothing but one
        ("bob\u{202E}", StatusCode::BAD_REQUEST),   // right-to-left override
        ("\u{3164}", StatusCode::BAD_REQUEST),      // Hangul filler
    ];

    for (name, expected) in spoofs {
        // Act
        let mut impostor = app.user();
        let response = impostor.join(name, &code).await;

        // Assert
        assert_eq!(response.status(), expected, "joining as {name:?}");
        assert_refusal_changes_nothing(&response, name);
        assert!(impostor.cookie.is_none(), "{name:?} got no session");
    }
    assert_eq!(alice.members(&code).await, ["alice"]);
    alice.say(&code, "still just me").await;
    alice_events.expect_message("alice", "still just me").await;
}

/// A message of zero-width spaces is 400 and never delivered; an emoji joined
/// with zero-width joiners is delivered exactly.
#[tokio::test]
async fn an_invisible_message_is_refused_but_an_emoji_sequence_is_delivered() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    let family = "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}";

    // Act
    let invisible = alice.post_message(&code, "\u{200B}\u{200B} \u{200B}").await;
    let emoji = alice.post_message(&code, family).await;

    // Assert
    assert_eq!(invisible.status(), StatusCode::BAD_REQUEST);
    assert_eq!(emoji.status(), StatusCode::NO_CONTENT);
    let delivered = alice_events.next_message().await;
    assert_eq!(delivered.text(), family, "the first message delivered");
}

// ===== Cookies =====

/// A copy of bob's cookie taken before he joins room B opens nothing in B, yet
/// still opens the room he had joined before the copy.
#[tokio::test]
async fn a_copied_cookie_is_useless_in_a_room_joined_after_the_copy() {
    // Arrange
    let app = spawn_app().await;
    let (_alice, room_a) = app.user_in_new_room("alice").await;
    let mut bob = app.user_joined(&room_a, "bob").await;
    let mut thief = app.user();
    thief.cookie = bob.cookie.clone();
    let (carol, room_b) = app.user_in_new_room("carol").await;
    let mut carol_events = carol.open_events(&room_b).await;
    assert_eq!(
        bob.join("bob", &room_b).await.status(),
        StatusCode::SEE_OTHER
    );
    carol_events.expect_event("join", "bob").await;

    // Act
    let page = thief.get(&format!("/rooms/{room_b}")).await;
    let events = thief.get(&format!("/rooms/{room_b}/events")).await;
    let members = thief.get(&format!("/rooms/{room_b}/members")).await;
    let post = thief.post_message(&room_b, "it's me, bob").await;

    // Assert
    assert_eq!(page.status(), StatusCode::OK);
    assert_join_form(page, &room_b).await;
    assert_eq!(events.status(), StatusCode::FORBIDDEN, "events of B");
    assert_eq!(members.status(), StatusCode::FORBIDDEN, "members of B");
    assert_eq!(post.status(), StatusCode::FORBIDDEN, "posting in B");
    assert_eq!(
        thief.members(&room_a).await,
        ["alice", "bob"],
        "A still opens"
    );
    let page_a = thief.get(&format!("/rooms/{room_a}")).await;
    assert_room_page(page_a, &room_a).await;
    carol.say(&room_b, "only us").await;
    carol_events.expect_message("carol", "only us").await;
}

/// By default the session cookie lasts 30 days, on creating and on joining.
#[tokio::test]
async fn the_session_cookie_lasts_thirty_days_by_default() {
    // Arrange
    let app = spawn_app().await;
    let mut alice = app.user();
    let mut bob = app.user();

    // Act
    let created = alice.create_room("alice").await;
    let code = room_code(&created);
    let joined = bob.join("bob", &code).await;

    // Assert
    for response in [&created, &joined] {
        let cookie = set_cookie(response);
        assert!(cookie.starts_with("chat_session="), "{cookie}");
        assert_has_attribute(&cookie, "Max-Age=2592000");
        assert!(!has_attribute(&cookie, "Secure"), "{cookie}");
    }
}

/// `--session-max-age 90m` makes the cookie's `Max-Age` 5400 seconds.
#[tokio::test]
async fn the_session_max_age_flag_sets_the_cookies_max_age() {
    // Arrange
    let app = spawn_app_with(&["--session-max-age", "90m"]).await;
    let mut alice = app.user();

    // Act
    let created = alice.create_room("alice").await;

    // Assert
    assert_has_attribute(&set_cookie(&created), "Max-Age=5400");
}

/// With `--secure-cookies` the cookie is `__Host-chat_session`: `Secure`, for
/// the whole host (`Path=/`) and tied to it (no `Domain`).
#[tokio::test]
async fn secure_cookies_are_host_prefixed_secure_and_for_the_whole_host() {
    // Arrange
    let app = spawn_app_with(&["--secure-cookies"]).await;
    let mut alice = app.user();

    // Act
    let created = alice.create_room("alice").await;

    // Assert
    let cookie = set_cookie(&created);
    assert!(cookie.starts_with("__Host-chat_session="), "{cookie}");
    assert_has_attribute(&cookie, "Secure");
    assert_has_attribute(&cookie, "Path=/");
    assert!(
        !cookie.to_ascii_lowercase().contains("domain="),
        "no Domain: {cookie}"
    );
    let code = room_code(&created);
    assert_eq!(alice.members(&code).await, ["alice"], "the cookie works");
}

// ===== Hosts =====

/// A request for a host name that is not ours is 421 with the reason, on pages
/// and posts alike, and creates no room; the assets, the same for everyone, are
/// served, so the page that refuses the name has its style.
#[tokio::test]
async fn a_foreign_host_is_421_and_creates_no_room() {
    // Arrange: room for one room only, so a room made by mistake would show.
    let app = spawn_app_with(&["--max-rooms", "1"]).await;
    let mut mallory = app.user();

    // Act
    let mut gets = Vec::new();
    let style_url = crate::assets::asset_url(&mallory, "style.css").await;
    let style = mallory
        .get_request(&style_url)
        .header(HOST, "evil.example")
        .send()
        .await
        .expect("GET the style");
    for path in ["/", "/rooms/ABCD"] {
        let response = mallory
            .get_request(path)
            .header(HOST, "evil.example")
            .send()
            .await
            .expect("GET");
        gets.push((path, response));
    }
    let post = mallory
        .post_request("/rooms", &[("name", "mallory")])
        .header(HOST, "evil.example")
        .send()
        .await
        .expect("POST /rooms");

    // Assert
    assert_eq!(style.status(), StatusCode::OK, "the assets answer any name");
    for (path, response) in gets {
        let status = response.status();
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "GET {path}");
        assert_eq!(response.text().await.expect("body").trim(), UNKNOWN_HOST);
    }
    assert_eq!(post.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_refusal_changes_nothing(&post, "POST /rooms for evil.example");
    assert_eq!(post.text().await.expect("body").trim(), UNKNOWN_HOST);
    mallory.create_room_ok("mallory").await;
}

/// `localhost` and any IP address, with the port, are always ours, whatever
/// address the server listens on (the one a friend typed may be forwarded to
/// ours: a NAT, a port forward), posts from a page there included.
#[tokio::test]
async fn localhost_and_any_ip_address_are_our_hosts() {
    // Arrange: listening on 127.0.0.1 only.
    let app = spawn_app().await;
    let port = app.addr.port();

    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("192.0.2.77:{port}"),
        format!("[fd00::9]:{port}"),
    ] {
        let mut visitor = app.user();

        // Act
        let home = visitor.get_request("/").header(HOST, &host).send().await;
        let create = visitor
            .post_request("/rooms", &[("name", "alice")])
            .header(HOST, &host)
            .header(ORIGIN, format!("http://{host}"))
            .send()
            .await
            .expect("POST /rooms");

        // Assert
        assert_eq!(home.expect("GET /").status(), StatusCode::OK, "{host}");
        assert_eq!(create.status(), StatusCode::SEE_OTHER, "{host}");
        visitor.cookie = Some(session_cookie(&create));
        let code = room_code(&create);
        assert_eq!(visitor.members(&code).await, ["alice"], "{host}");
    }
}

/// A `--public-host` name is answered; any other name is still 421.
#[tokio::test]
async fn a_public_host_is_answered_and_other_names_are_still_421() {
    // Arrange
    let app = spawn_app_with(&["--public-host", "chat.example"]).await;
    let visitor = app.user();

    // Act
    let ours = visitor
        .post_request("/rooms", &[("name", "alice")])
        .header(HOST, "chat.example")
        .header(ORIGIN, "http://chat.example")
        .send()
        .await
        .expect("POST /rooms");
    let home = visitor.get_request("/").header(HOST, "chat.example").send();
    let home = home.await.expect("GET /");
    let foreign = visitor
        .get_request("/")
        .header(HOST, "evil.example")
        .send()
        .await
        .expect("GET /");

    // Assert
    assert_eq!(ours.status(), StatusCode::SEE_OTHER);
    assert_eq!(home.status(), StatusCode::OK);
    assert_eq!(foreign.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(foreign.text().await.expect("body").trim(), UNKNOWN_HOST);
}

// ===== Origins and forwarding headers =====

/// Without `--trust-proxy`, `X-Forwarded-Host` cannot make another site's origin
/// ours: the post is 403 and creates no room.
#[tokio::test]
async fn a_spoofed_forwarded_host_is_403_without_trust_proxy() {
    // Arrange
    let app = spawn_app_with(&["--max-rooms", "1"]).await;
    let mut mallory = app.user();

    // Act
    let response = mallory
        .post_request("/rooms", &[("name", "mallory")])
        .header(ORIGIN, "http://evil.example")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .expect("POST /rooms");

    // Assert
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_refusal_changes_nothing(&response, "POST /rooms from evil.example");
    mallory.create_room_ok("mallory").await;
}

/// An `Origin` with our host and port but `https` is another origin on plain
/// HTTP: 403.
#[tokio::test]
async fn an_origin_with_the_wrong_scheme_is_403() {
    // Arrange
    let app = spawn_app().await;
    let visitor = app.user();

    // Act
    let response = visitor
        .post_request("/rooms", &[("name", "alice")])
        .header(ORIGIN, format!("https://{}", app.addr))
        .send()
        .await
        .expect("POST /rooms");

    // Assert
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_refusal_changes_nothing(&response, "POST /rooms from https");
}

/// With `--trust-proxy`, on a connection from the proxy (loopback, where a
/// bare `--trust-proxy` trusts), the forwarded host is the one checked and
/// compared with `Origin`: a public host's own page may post, another name is
/// 421.
#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_host_is_our_origin() {
    // Arrange
    let app = spawn_app_with(&["--trust-proxy", "--public-host", "chat.example"]).await;
    let visitor = app.user_from(std::net::Ipv4Addr::LOCALHOST.into());

    // Act
    let ours = visitor
        .post_request("/rooms", &[("name", "alice")])
        .header("x-forwarded-host", "chat.example")
        .header(ORIGIN, "http://chat.example")
        .send()
        .await
        .expect("POST /rooms");
    let foreign = visitor
        .post_request("/rooms", &[("name", "mallory")])
        .header("x-forwarded-host", "evil.example")
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .expect("POST /rooms");

    // Assert
    assert_eq!(ours.status(), StatusCode::SEE_OTHER);
    assert_eq!(foreign.status(), StatusCode::MISDIRECTED_REQUEST);
}

// ===== Helpers =====

/// The `Set-Cookie` header of a response, whole.
fn set_cookie(response: &Response) -> String {
    response
        .headers()
        .get(SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .expect("ascii cookie")
        .to_owned()
}

fn has_attribute(cookie: &str, attribute: &str) -> bool {
    cookie
        .split(';')
        .skip(1)
        .any(|a| a.trim().eq_ignore_ascii_case(attribute))
}

fn assert_has_attribute(cookie: &str, attribute: &str) {
    assert!(has_attribute(cookie, attribute), "{attribute} in {cookie}");
}

/// A refusal sets no session and sends nobody to a room.
fn assert_refusal_changes_nothing(response: &Response, what: &str) {
    assert!(
        !response.headers().contains_key(SET_COOKIE),
        "{what:?}: a refusal sets no cookie"
    );
    assert!(
        !response.headers().contains_key(reqwest::header::LOCATION),
        "{what:?}: a refusal redirects nowhere"
    );
}

/// The page is the form to join room `code`, not the room.
async fn assert_join_form(page: Response, code: &str) {
    let page = page.text().await.expect("a page");
    assert!(page.contains("action=\"/join\""), "a join form: {page}");
    assert!(
        !page.contains(&format!("action=\"/rooms/{code}/messages\"")),
        "not the room page"
    );
}

/// The page is room `code` itself, with its message form.
async fn assert_room_page(page: Response, code: &str) {
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("a page");
    assert!(
        page.contains(&format!("action=\"/rooms/{code}/messages\"")),
        "the room page of {code}"
    );
}
