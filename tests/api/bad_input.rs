//! Requests no user would send on purpose: each gets its documented status, and
//! the server stays up for everyone else.
//!
//! Every test ends by checking that a room nobody in the test touched still
//! delivers a message. The bytes reqwest will not send (`..` in a path, a path of
//! 8 KB written as it is) go over a raw connection.

use reqwest::header::{COOKIE, HeaderValue, SET_COOKIE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::helpers::{Events, RawResponse, TestApp, User, spawn_app, spawn_app_with};

const FORM: &str = "application/x-www-form-urlencoded";

const NOT_UTF8: &str = "The form is not valid UTF-8 text.";

// ===== Form fields =====

/// Text that is not UTF-8, percent-encoded or raw, is 400 in every form field
/// (name, code, message), and nothing is created, joined or published.
#[tokio::test]
async fn invalid_utf8_in_any_form_field_is_400() {
    // Arrange
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let (alice, code, mut alice_events) = alice_streaming(&app).await;
    let visitor = app.user();
    let join = |name: &[u8], code: &[u8]| [b"name=", name, b"&code=", code].concat();
    let visitor_posts = [
        ("/rooms", b"name=%FF".to_vec()),
        ("/rooms", b"name=bo\xFFb".to_vec()),
        ("/join", join(b"%FFbob", code.as_bytes())),
        ("/join", join(b"bob\xFF", code.as_bytes())),
        ("/join", join(b"bob", b"AB%FFD")),
        ("/join", join(b"bob", b"AB\xFFD")),
    ];
    let message_bodies = [b"message=hi%FF".to_vec(), b"message=\xFFhi".to_vec()];

    // Act & Assert
    for (path, body) in visitor_posts {
        let response = post_form(&visitor, path, &body).await;
        assert_refused(
            response,
            StatusCode::BAD_REQUEST,
            path,
            &body,
            Some(NOT_UTF8),
        )
        .await;
    }
    let messages = format!("/rooms/{code}/messages");
    let messages_path = messages.as_str();
    for body in message_bodies {
        let response = post_form(&alice, messages_path, &body).await;
        assert_refused(
            response,
            StatusCode::BAD_REQUEST,
            messages_path,
            &body,
            Some(NOT_UTF8),
        )
        .await;
    }
    assert_nothing_happened(&alice, &code, &mut alice_events).await;
    elsewhere.assert_still_works().await;
}

/// NUL, BEL and ESC (`%00`, `%07`, `%1B`) are 400 in every form field.
#[tokio::test]
async fn control_characters_in_any_form_field_are_400() {
    // Arrange
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let (alice, code, mut alice_events) = alice_streaming(&app).await;
    let visitor = app.user();
    let messages = format!("/rooms/{code}/messages");
    let messages_path = messages.as_str();

    for control in ["%00", "%07", "%1B"] {
        let posts = [
            (&visitor, "/rooms", format!("name=bo{control}b")),
            (&visitor, "/join", format!("name=bob{control}&code={code}")),
            (&visitor, "/join", format!("name=bob&code=AB{control}D")),
            (&visitor, "/join", format!("name=bob&code={code}{control}")),
            (&alice, messages_path, format!("message=hi{control}there")),
            (&alice, messages_path, format!("message={control}")),
        ];
        for (user, path, body) in posts {
            // Act
            let response = post_form(user, path, body.as_bytes()).await;

            // Assert
            assert_refused(
                response,
                StatusCode::BAD_REQUEST,
                path,
                body.as_bytes(),
                None,
            )
            .await;
        }
    }
    assert_nothing_happened(&alice, &code, &mut alice_events).await;
    elsewhere.assert_still_works().await;
}

/// A 33-character name, a 5-letter code and a message over
/// `--max-message-chars` are 400; a body over 16 KiB is 413; the longest
/// allowed values pass.
#[tokio::test]
async fn over_long_fields_are_400_and_an_over_long_body_is_413() {
    // Arrange
    let app = spawn_app_with(&["--max-message-chars", "50"]).await;
    let elsewhere = Elsewhere::open(&app).await;
    let (alice, code, mut alice_events) = alice_streaming(&app).await;
    let visitor = app.user();
    let messages = format!("/rooms/{code}/messages");
    let messages_path = messages.as_str();
    let name_33 = "n".repeat(33);
    let huge = "a".repeat(16 * 1024 + 1);
    let too_long = [
        (
            &visitor,
            "/rooms",
            format!("name={name_33}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            &visitor,
            "/join",
            format!("name={name_33}&code={code}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            &visitor,
            "/join",
            format!("name=bob&code={code}A"),
            StatusCode::BAD_REQUEST,
        ),
        (
            &alice,
            messages_path,
            format!("message={}", "m".repeat(51)),
            StatusCode::BAD_REQUEST,
        ),
        (
            &visitor,
            "/rooms",
            format!("name={huge}"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            &visitor,
            "/join",
            format!("name=bob&code={code}&x={huge}"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            &alice,
            messages_path,
            format!("message={huge}"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];

    // Act & Assert
    for (user, path, body, status) in too_long {
        let response = post_form(user, path, body.as_bytes()).await;
        assert_refused(response, status, path, body.as_bytes(), None).await;
    }
    assert_nothing_happened(&alice, &code, &mut alice_events).await;
    let mut bob = app.user();
    let name_32 = "n".repeat(32);
    assert_eq!(
        bob.join(&name_32, &code).await.status(),
        StatusCode::SEE_OTHER
    );
    alice_events.expect_event("join", &name_32).await;
    alice.say(&code, &"m".repeat(50)).await;
    assert_eq!(alice_events.next_message().await.text(), "m".repeat(50));
    elsewhere.assert_still_works().await;
}

/// A field given twice is 400, on every form.
#[tokio::test]
async fn a_field_given_twice_is_400() {
    // Arrange
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let (alice, code, mut alice_events) = alice_streaming(&app).await;
    let visitor = app.user();
    let messages = format!("/rooms/{code}/messages");
    let messages_path = messages.as_str();
    let posts = [
        (&visitor, "/rooms", "name=a&name=b".to_owned()),
        (&visitor, "/join", format!("name=a&name=b&code={code}")),
        (
            &visitor,
            "/join",
            format!("name=bob&code={code}&code={code}"),
        ),
        (&alice, messages_path, "message=a&message=b".to_owned()),
    ];

    // Act & Assert
    for (user, path, body) in posts {
        let response = post_form(user, path, body.as_bytes()).await;
        assert_refused(
            response,
            StatusCode::BAD_REQUEST,
            path,
            body.as_bytes(),
            None,
        )
        .await;
    }
    assert_nothing_happened(&alice, &code, &mut alice_events).await;
    elsewhere.assert_still_works().await;
}

/// A form without the field it needs (an empty body, or only other fields) is
/// 400.
#[tokio::test]
async fn a_missing_field_is_400() {
    // Arrange: sent raw, with `Content-Length: 0` for an empty form as browsers
    // and `curl -d ''` send it (reqwest sends no length at all, which is 411).
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let (alice, code, mut alice_events) = alice_streaming(&app).await;
    let visitor = app.user();
    let messages = format!("/rooms/{code}/messages");
    let messages_path = messages.as_str();
    let posts = [
        (&visitor, "/rooms", String::new()),
        (&visitor, "/rooms", "nick=bob".to_owned()),
        (&visitor, "/join", String::new()),
        (&visitor, "/join", "name=bob".to_owned()),
        (&visitor, "/join", format!("code={code}")),
        (&alice, messages_path, String::new()),
        (&alice, messages_path, "text=hi".to_owned()),
    ];

    for (user, path, body) in posts {
        // Act
        let response = post_raw(&app, user, path, body.as_bytes()).await;

        // Assert
        assert_eq!(
            response.status, 400,
            "POST {path} {body:?}: {}",
            response.head
        );
        assert!(response.header("set-cookie").is_none(), "{path} {body:?}");
        assert!(response.header("location").is_none(), "{path} {body:?}");
        assert!(
            !response.text().trim().is_empty(),
            "{path} {body:?} says why"
        );
    }
    assert_nothing_happened(&alice, &code, &mut alice_events).await;
    elsewhere.assert_still_works().await;
}

// ===== Methods, content types, paths =====

/// A known path with the wrong method is 405.
#[tokio::test]
async fn wrong_methods_are_405() {
    // Arrange
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let (alice, code, mut alice_events) = alice_streaming(&app).await;
    let requests = [
        (Method::PUT, "/rooms".to_owned()),
        (Method::DELETE, format!("/rooms/{code}/messages")),
        (Method::GET, "/join".to_owned()),
    ];

    // Act & Assert
    for (method, path) in requests {
        let response = alice
            .send_body(method.clone(), &path, Some(FORM), b"name=x")
            .await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
    }
    assert_nothing_happened(&alice, &code, &mut alice_events).await;
    elsewhere.assert_still_works().await;
}

/// JSON and multipart bodies are 415 on every form route.
#[tokio::test]
async fn bodies_that_are_not_url_encoded_forms_are_415() {
    // Arrange
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let (alice, code, mut alice_events) = alice_streaming(&app).await;
    let visitor = app.user();
    let messages = format!("/rooms/{code}/messages");
    let messages_path = messages.as_str();
    let json = (
        "application/json",
        format!("{{\"name\":\"bob\",\"code\":\"{code}\",\"message\":\"hi\"}}"),
    );
    let multipart = (
        "multipart/form-data; boundary=x",
        "--x\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbob\r\n--x--\r\n".to_owned(),
    );

    for (content_type, body) in [json, multipart] {
        for (user, path) in [
            (&visitor, "/rooms"),
            (&visitor, "/join"),
            (&alice, messages_path),
        ] {
            // Act
            let response = user
                .send_body(Method::POST, path, Some(content_type), body.as_bytes())
                .await;

            // Assert
            let status = response.status();
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "POST {path} as {content_type}"
            );
            assert!(!response.headers().contains_key(SET_COOKIE));
        }
    }
    assert_nothing_happened(&alice, &code, &mut alice_events).await;
    elsewhere.assert_still_works().await;
}

/// Paths with `..`, a NUL, a climb out of the root or 8 KB of letters are 404.
#[tokio::test]
async fn odd_paths_are_404() {
    // Arrange
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let visitor = app.user();
    let paths = [
        "/rooms/..".to_owned(),
        "/rooms/../rooms".to_owned(),
        "/rooms/AB%00D".to_owned(),
        "/rooms/AB%00D/events".to_owned(),
        "/../../etc/passwd".to_owned(),
        "/assets/../../Cargo.toml".to_owned(),
        format!("/{}", "a".repeat(8 * 1024)),
        format!("/rooms/{}", "A".repeat(8 * 1024)),
    ];

    for path in paths {
        // Act
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            app.addr
        );
        let response = app.raw_request(visitor.from, request.as_bytes()).await;

        // Assert
        let shown = &path[..path.len().min(40)];
        assert_eq!(response.status, 404, "GET {shown}: {}", response.head);
        let body = response.text();
        assert!(body.len() < 300, "a short answer to {shown}: {body:?}");
        assert!(
            !body.contains("[package]") && !body.contains("root:"),
            "{body}"
        );
    }
    elsewhere.assert_still_works().await;
}

// ===== Event stream queries =====

/// A 300 KB or 500 KB `Last-Event-ID` is a short 400 that does not send it
/// back.
#[tokio::test]
async fn a_huge_last_event_id_is_a_short_refusal() {
    // Arrange
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let cookie = alice.cookie.clone().expect("alice's cookie");

    // 40 KiB reaches the app, which refuses the id; 500 KiB is more than the
    // 64 KiB request head the server reads at all.
    for (kib, status) in [(40, 400), (500, 431)] {
        let huge = "x".repeat(kib * 1024);
        let request = format!(
            "GET /rooms/{code}/events HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n\
             Cookie: {cookie}\r\nLast-Event-ID: {huge}\r\nConnection: close\r\n\r\n",
            app.addr
        );

        // Act
        let response = app.raw_request(alice.from, request.as_bytes()).await;

        // Assert
        assert_eq!(response.status, status, "{kib} KiB: {}", response.head);
        assert!(
            response.body.len() < 300,
            "{kib} KiB: {:?}",
            response.text()
        );
        assert!(!response.text().contains(&"x".repeat(65)), "{kib} KiB");
    }
    elsewhere.assert_still_works().await;
}

/// An `?after=` that is not an event id is 400, not a stream.
#[tokio::test]
async fn an_after_that_is_not_a_number_is_400() {
    // Arrange
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let (alice, code) = app.user_in_new_room("alice").await;

    for after in ["abc", "-1", "1.5", "%FF", "99999999999999999999999"] {
        // Act
        let path = format!("/rooms/{code}/events?after={after}");
        let response = alice.get(&path).await;

        // Assert
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    let mut events = alice.open_events_after(&code, 0).await;
    events.expect_event("join", "alice").await;
    elsewhere.assert_still_works().await;
}

// ===== Cookies =====

/// Huge, random, empty, numerous and non-ASCII cookies all count as no session:
/// the room page is the join form, the stream and posting are 403, never 500.
#[tokio::test]
async fn huge_and_garbage_cookies_count_as_no_session() {
    // Arrange
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let (alice, code, mut alice_events) = alice_streaming(&app).await;
    let many_pairs = (0..500)
        .map(|i| format!("c{i}=v{i}"))
        .chain(std::iter::once("chat_session=junk".to_owned()))
        .collect::<Vec<_>>()
        .join("; ");
    let cookie_jars: [(&str, Vec<Vec<u8>>); 7] = [
        (
            "6 KB",
            vec![format!("chat_session={}", "A".repeat(6 * 1024)).into_bytes()],
        ),
        ("random base64", vec![RANDOM_BASE64.as_bytes().to_vec()]),
        ("empty", vec![b"chat_session=".to_vec()]),
        ("no value at all", vec![b"chat_session".to_vec()]),
        ("500 in one header", vec![many_pairs.into_bytes()]),
        (
            "40 headers",
            (0..40)
                .map(|i| format!("chat_session=junk{i}").into_bytes())
                .collect(),
        ),
        (
            "non-ASCII",
            vec!["chat_session=ünïcødé€; ß=ü".as_bytes().to_vec()],
        ),
    ];

    for (what, cookies) in cookie_jars {
        let visitor = app.user();

        // Act
        let page = with_cookies(visitor.get_request(&format!("/rooms/{code}")), &cookies).await;
        let events = with_cookies(
            visitor.get_request(&format!("/rooms/{code}/events")),
            &cookies,
        )
        .await;
        let post = with_cookies(
            visitor.post_request(&format!("/rooms/{code}/messages"), &[("message", "hi")]),
            &cookies,
        )
        .await;

        // Assert
        assert_eq!(page.status(), StatusCode::OK, "{what}: room page");
        let page = page.text().await.expect("a page");
        assert!(page.contains("action=\"/join\""), "{what}: a join form");
        assert!(!page.contains("name=\"message\""), "{what}: not the room");
        assert_eq!(events.status(), StatusCode::FORBIDDEN, "{what}: events");
        assert_eq!(post.status(), StatusCode::FORBIDDEN, "{what}: posting");
    }
    assert_nothing_happened(&alice, &code, &mut alice_events).await;
    elsewhere.assert_still_works().await;
}

/// A real session cookie still counts when garbage ones come before it, in the
/// same header or in other `Cookie` headers.
#[tokio::test]
async fn a_real_cookie_among_garbage_ones_still_counts() {
    // Arrange
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let real = alice.cookie.clone().expect("alice's cookie");
    let garbage: Vec<Vec<u8>> = (0..50)
        .map(|i| format!("chat_session=junk{i}; other=x").into_bytes())
        .collect();
    let one_header = vec![format!("chat_session=; x=y; {real}").into_bytes()];
    let many_headers = [garbage, vec![real.clone().into_bytes()]].concat();
    let stranger = app.user();

    for cookies in [one_header, many_headers] {
        // Act
        let members = with_cookies(
            stranger.get_request(&format!("/rooms/{code}/members")),
            &cookies,
        )
        .await;

        // Assert
        assert_eq!(members.status(), StatusCode::OK);
    }
    elsewhere.assert_still_works().await;
}

/// More header fields than the server reads (200 `Cookie` headers) is refused
/// with 431, never a 500, and nothing else notices.
#[tokio::test]
async fn more_cookie_headers_than_the_server_reads_is_431() {
    // Arrange
    let app = spawn_app().await;
    let elsewhere = Elsewhere::open(&app).await;
    let (_alice, code) = app.user_in_new_room("alice").await;
    let cookies: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("chat_session=junk{i}").into_bytes())
        .collect();
    let visitor = app.user();

    // Act
    let page = with_cookies(visitor.get_request(&format!("/rooms/{code}")), &cookies).await;

    // Assert
    assert_eq!(page.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    elsewhere.assert_still_works().await;
}

// ===== Helpers =====

/// 66 random bytes, base64-encoded: the shape of a sealed cookie, not ours.
const RANDOM_BASE64: &str = "chat_session=K2Ij9+pSQ6u5PZYhYz2ogAqhAZ3FoB7tFkDBcQCwUa33JShSGVPDErPxYdcqzGPByge1ZBLmhQb1g9eUizNkr8Ut";

/// A room the test never touches: carol and dave chat there, and it must keep
/// working whatever the others send.
struct Elsewhere {
    code: String,
    carol: User,
    dave_events: Events,
}

impl Elsewhere {
    async fn open(app: &TestApp) -> Self {
        let (carol, code) = app.user_in_new_room("carol").await;
        let dave = app.user_joined(&code, "dave").await;
        let dave_events = dave.open_events(&code).await;
        Self {
            code,
            carol,
            dave_events,
        }
    }

    /// Carol's next message reaches dave.
    async fn assert_still_works(mut self) {
        self.carol.say(&self.code, "still here").await;
        self.dave_events.expect_message("carol", "still here").await;
    }
}

/// Alice in a new room, with her stream open.
async fn alice_streaming(app: &TestApp) -> (User, String, Events) {
    let (alice, code) = app.user_in_new_room("alice").await;
    let events = alice.open_events(&code).await;
    (alice, code, events)
}

/// Nobody joined alice's room and nothing was published in it: the next thing
/// her stream shows is the message she posts now.
async fn assert_nothing_happened(alice: &User, code: &str, alice_events: &mut Events) {
    assert_eq!(alice.members(code).await, ["alice"]);
    alice.say(code, "nothing happened").await;
    alice_events
        .expect_message("alice", "nothing happened")
        .await;
}

/// A form post of `body` exactly as given.
async fn post_form(user: &User, path: &str, body: &[u8]) -> Response {
    user.send_body(Method::POST, path, Some(FORM), body).await
}

/// The response is `status`, sets no session, sends nobody anywhere and says
/// why in one line (`message`, when given).
async fn assert_refused(
    response: Response,
    status: StatusCode,
    path: &str,
    body: &[u8],
    message: Option<&str>,
) {
    let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
    assert_eq!(response.status(), status, "POST {path} {shown:?}");
    assert!(
        !response.headers().contains_key(SET_COOKIE),
        "POST {path} {shown:?} sets no cookie"
    );
    assert!(
        !response.headers().contains_key(reqwest::header::LOCATION),
        "POST {path} {shown:?} redirects nowhere"
    );
    let line = response.text().await.expect("a body");
    assert!(!line.trim().is_empty(), "POST {path} {shown:?} says why");
    if let Some(message) = message {
        assert_eq!(line.trim(), message, "POST {path} {shown:?}");
    }
}

/// Sends `request` with each of `cookies` as a `Cookie` header of its own, the
/// bytes exactly as given.
async fn with_cookies(request: RequestBuilder, cookies: &[Vec<u8>]) -> Response {
    let (client, request) = request.build_split();
    let mut request = request.expect("a request");
    for cookie in cookies {
        let value = HeaderValue::from_bytes(cookie).expect("a header value");
        request.headers_mut().append(COOKIE, value);
    }
    client.execute(request).await.expect("request")
}

/// A form post of `body` as `user` (their cookie and address), over a raw
/// connection, with an exact `Content-Length`.
async fn post_raw(app: &TestApp, user: &User, path: &str, body: &[u8]) -> RawResponse {
    let cookie = user
        .cookie
        .as_ref()
        .map(|cookie| format!("Cookie: {cookie}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n{cookie}\
         Content-Type: {FORM}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        body.len()
    );
    app.raw_request(user.from, &[head.as_bytes(), body].concat())
        .await
}
