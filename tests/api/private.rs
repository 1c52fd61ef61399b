//! Private rooms: a room created with a passphrase lets in only those who type
//! it (`POST /join` with `passphrase`), once; its members never need it again.
//! Every try by someone not yet in spends a guess of their address's budget, so
//! passphrases cannot be tried for long. The passphrase is kept only as a hash:
//! no page, list, event, refusal or log line ever shows it.

use reqwest::header::ORIGIN;
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::helpers::{
    PATIENCE, RunningServer, TestApp, User, location, polled_events, send_as_browser,
    session_cookie, spawn_app, spawn_app_with,
};
use crate::web::{assert_changes_nothing, html_body, own_origin, plain_text_line, retry_after};

/// A passphrase no page or log line would contain by chance.
const PASSPHRASE: &str = "correct-horse-battery-staple-7731";

/// A wrong passphrase, as distinctive: refusals must not quote it back either.
const WRONG: &str = "tr0ub4dor-and-three-9142";

/// What a client is told once its address has spent its guesses.
const GUESSES_SPENT: &str = "Too many requests for rooms you are not in, from your address: wait a little before trying another code.";

/// Longest passphrase, in characters.
const LONGEST: usize = 256;

/// `POST /rooms` creating a room as `name` with `passphrase`.
fn create_request(user: &User, name: &str, passphrase: &str) -> RequestBuilder {
    user.post_request("/rooms", &[("name", name), ("passphrase", passphrase)])
}

/// `POST /join` of room `code` as `name`, with `passphrase` if given.
fn join_request(user: &User, name: &str, code: &str, passphrase: Option<&str>) -> RequestBuilder {
    let mut fields = vec![("name", name), ("code", code)];
    if let Some(passphrase) = passphrase {
        fields.push(("passphrase", passphrase));
    }
    user.post_request("/join", &fields)
}

/// Sends `request` as `user` and keeps the session cookie it sets, if any.
async fn send_keeping_cookie(user: &mut User, request: RequestBuilder) -> Response {
    let response = request.send().await.expect("POST");
    keep_cookie(user, &response);
    response
}

fn keep_cookie(user: &mut User, response: &Response) {
    if response.headers().contains_key(reqwest::header::SET_COOKIE) {
        user.cookie = Some(session_cookie(response));
    }
}

/// Joins room `code` as `name` with `passphrase` (if given), as curl would.
async fn join(user: &mut User, name: &str, code: &str, passphrase: Option<&str>) -> Response {
    let request = join_request(user, name, code, passphrase);
    send_keeping_cookie(user, request).await
}

/// A user who created a room as `name` with the passphrase field `passphrase`
/// (empty: a public room), and the room's code.
async fn user_in_new_room_with(app: &TestApp, name: &str, passphrase: &str) -> (User, String) {
    let mut user = app.user();
    let request = create_request(&user, name, passphrase);
    let created = send_keeping_cookie(&mut user, request).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER, "creating a room");
    let code = location(&created)
        .strip_prefix("/rooms/")
        .expect("sent to the new room")
        .to_owned();
    (user, code)
}

/// Asserts `response` is `status` with, as curl sees it, the one line `message`,
/// and sets no session nor sends anyone to the room.
async fn assert_refused(response: Response, status: StatusCode, message: &str, what: &str) {
    assert_eq!(response.status(), status, "{what}");
    assert_changes_nothing(&response);
    assert_eq!(plain_text_line(response).await, message, "{what}");
}

fn private_room(code: &str) -> String {
    format!("Room {code} is private: type its passphrase to join.")
}

fn not_the_passphrase(code: &str) -> String {
    format!("That is not the passphrase of room {code}.")
}

/// Who typed the passphrase gets in: `303` to the room, announced, and they
/// stream and post like anyone.
#[tokio::test]
async fn the_right_passphrase_lets_someone_in() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = user_in_new_room_with(&app, "alice", PASSPHRASE).await;
    let mut alice_events = alice.open_events(&code).await;
    let mut bob = app.user();

    // Act
    let joined = join(&mut bob, "bob", &code, Some(PASSPHRASE)).await;

    // Assert
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&joined), format!("/rooms/{code}"));
    alice_events.expect_event("join", "bob").await;
    let mut bob_events = bob.open_events(&code).await;
    bob.say(&code, "the horse was right").await;
    bob_events
        .expect_message("bob", "the horse was right")
        .await;
    alice_events
        .expect_message("bob", "the horse was right")
        .await;
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
}

/// Without the passphrase (no field, or an empty one) a private room says it is
/// private (`403`), and nobody joins.
#[tokio::test]
async fn a_private_room_needs_its_passphrase() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = user_in_new_room_with(&app, "alice", PASSPHRASE).await;
    let mut alice_events = alice.open_events(&code).await;
    let mut bob = app.user();

    // Act
    let without = join(&mut bob, "bob", &code, None).await;
    let empty = join(&mut bob, "bob", &code, Some("")).await;
    let in_a_browser =
        send_as_browser(join_request(&bob, "bob", &code, None).header(ORIGIN, own_origin(&app)))
            .await;

    // Assert
    assert_refused(
        without,
        StatusCode::FORBIDDEN,
        &private_room(&code),
        "no field",
    )
    .await;
    assert_refused(empty, StatusCode::FORBIDDEN, &private_room(&code), "empty").await;
    assert_eq!(in_a_browser.status(), StatusCode::FORBIDDEN, "a browser");
    let page = html_body(in_a_browser).await;
    assert!(
        page.contains(&private_room(&code)),
        "the form says why: {page}"
    );
    assert!(bob.cookie.is_none(), "bob holds no session");
    alice.say(&code, "still alone").await;
    alice_events.expect_message("alice", "still alone").await;
    assert_eq!(alice.members(&code).await, ["alice"]);
}

/// A wrong passphrase, even one letter off, is `403` saying so, and nobody
/// joins.
#[tokio::test]
async fn a_wrong_passphrase_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = user_in_new_room_with(&app, "alice", PASSPHRASE).await;
    let mut alice_events = alice.open_events(&code).await;
    let mut bob = app.user();
    let capitalised = PASSPHRASE.replacen('c', "C", 1);
    let with_a_space = format!("{PASSPHRASE} ");

    // Act
    let mut refused = Vec::new();
    for wrong in [WRONG, &capitalised, &with_a_space] {
        refused.push((wrong, join(&mut bob, "bob", &code, Some(wrong)).await));
    }

    // Assert
    for (wrong, response) in refused {
        assert_refused(
            response,
            StatusCode::FORBIDDEN,
            &not_the_passphrase(&code),
            wrong,
        )
        .await;
    }
    alice.say(&code, "still alone").await;
    alice_events.expect_message("alice", "still alone").await;
    assert_eq!(alice.members(&code).await, ["alice"]);
}

/// Members are in: joining again without the passphrase is `303` and announces
/// nothing, for the creator and for whoever typed it; their streams open.
#[tokio::test]
async fn members_do_not_need_the_passphrase_again() {
    // Arrange
    let app = spawn_app().await;
    let (mut alice, code) = user_in_new_room_with(&app, "alice", PASSPHRASE).await;
    let mut alice_events = alice.open_events(&code).await;
    let mut bob = app.user();
    let joined = join(&mut bob, "bob", &code, Some(PASSPHRASE)).await;
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    alice_events.expect_event("join", "bob").await;

    // Act
    let bob_again = join(&mut bob, "bob", &code, None).await;
    let alice_again = join(&mut alice, "alice", &code, None).await;
    let mut bob_events = bob.open_events(&code).await;

    // Assert
    assert_eq!(bob_again.status(), StatusCode::SEE_OTHER, "bob again");
    assert_eq!(location(&bob_again), format!("/rooms/{code}"));
    assert_eq!(alice_again.status(), StatusCode::SEE_OTHER, "alice again");
    bob.say(&code, "back without it").await;
    alice_events.expect_message("bob", "back without it").await;
    bob_events.expect_message("bob", "back without it").await;
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
}

/// An empty passphrase makes no private room, and a public room lets in whoever
/// joins, passphrase field or not: there is nothing to check it against.
#[tokio::test]
async fn a_public_room_ignores_a_passphrase() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = user_in_new_room_with(&app, "alice", "").await;
    let mut alice_events = alice.open_events(&code).await;

    // Act
    let with_one = join(&mut app.user(), "bob", &code, Some(PASSPHRASE)).await;
    let without = join(&mut app.user(), "carol", &code, None).await;

    // Assert
    assert_eq!(
        with_one.status(),
        StatusCode::SEE_OTHER,
        "with a passphrase"
    );
    assert_eq!(without.status(), StatusCode::SEE_OTHER, "without one");
    alice_events.expect_event("join", "bob").await;
    alice_events.expect_event("join", "carol").await;
}

/// Each wrong passphrase spends a guess: once the address's burst is spent,
/// even the right passphrase is `429` with `Retry-After`, while someone at
/// another address still gets in with it.
#[tokio::test]
async fn wrong_passphrases_spend_the_guessing_budget() {
    // Arrange
    let app = spawn_app_with(&["--guess-burst", "3", "--guess-rate", "1/min"]).await;
    let (alice, code) = user_in_new_room_with(&app, "alice", PASSPHRASE).await;
    let mut alice_events = alice.open_events(&code).await;
    let mut mallory = app.user();
    for attempt in 1..=3 {
        let wrong = format!("{WRONG}-{attempt}");
        let refused = join(&mut mallory, "mallory", &code, Some(&wrong)).await;
        assert_eq!(
            refused.status(),
            StatusCode::FORBIDDEN,
            "wrong try {attempt}"
        );
    }

    // Act
    let right_but_late = join(&mut mallory, "mallory", &code, Some(PASSPHRASE)).await;
    let elsewhere = join(&mut app.user(), "bob", &code, Some(PASSPHRASE)).await;

    // Assert
    assert_eq!(
        right_but_late.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the right passphrase, once the guesses are spent"
    );
    let retry_after = retry_after(&right_but_late);
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_changes_nothing(&right_but_late);
    assert_eq!(plain_text_line(right_but_late).await, GUESSES_SPENT);
    assert!(mallory.cookie.is_none(), "mallory holds no session");
    assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER, "another address");
    alice_events.expect_event("join", "bob").await;
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
}

/// A passphrase may have 256 characters (not bytes), not 257: `400` for
/// creating or joining with a longer one, and no room, no member.
#[tokio::test]
async fn a_passphrase_longer_than_256_characters_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let longest = "é".repeat(LONGEST);
    let too_long = "x".repeat(LONGEST + 1);
    let (alice, code) = user_in_new_room_with(&app, "alice", &longest).await;
    let mut creator = app.user();

    // Act
    let create_too_long = create_request(&creator, "carol", &too_long);
    let created = send_keeping_cookie(&mut creator, create_too_long).await;
    let joined_too_long = join(&mut app.user(), "dave", &code, Some(&too_long)).await;
    let joined_longest = join(&mut app.user(), "bob", &code, Some(&longest)).await;

    // Assert
    let message = format!("A passphrase can be at most {LONGEST} characters.");
    assert_refused(created, StatusCode::BAD_REQUEST, &message, "creating").await;
    assert!(creator.cookie.is_none(), "no room was made for carol");
    assert_refused(
        joined_too_long,
        StatusCode::BAD_REQUEST,
        &message,
        "joining",
    )
    .await;
    assert_eq!(
        joined_longest.status(),
        StatusCode::SEE_OTHER,
        "256 characters"
    );
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
}

/// What a response showed: its status, its head (status line and headers) and
/// its body.
struct Shown {
    /// The step of the test that got it.
    what: &'static str,
    status: StatusCode,
    /// The status line and the headers, a line each.
    head: String,
    body: String,
}

impl Shown {
    async fn read(what: &'static str, response: Response) -> Self {
        let status = response.status();
        let mut head = format!("{status}\n");
        for (name, value) in response.headers() {
            let value = String::from_utf8_lossy(value.as_bytes());
            head.push_str(&format!("{name}: {value}\n"));
        }
        let body = tokio::time::timeout(PATIENCE, response.text())
            .await
            .expect("the body arrives promptly")
            .expect("the body");
        Self {
            what,
            status,
            head,
            body,
        }
    }
}

/// Asserts neither passphrase (the room's, or the wrong one typed) is in `text`.
fn assert_no_passphrase(text: &str, what: &str) {
    assert!(
        !text.contains(PASSPHRASE),
        "{what} shows the passphrase:\n{text}"
    );
    assert!(
        !text.contains(WRONG),
        "{what} shows the wrong passphrase:\n{text}"
    );
}

/// No response shows a passphrase, right or wrong — not the redirects, pages,
/// refusals, members list, stream or polls — and the real binary, logging
/// everything it can (`RUST_LOG=trace`), never writes one down.
#[tokio::test]
async fn a_passphrase_is_never_shown_nor_logged() {
    // Arrange
    let mut server = RunningServer::start_logging("trace", &[]).await;
    let origin = format!("http://{}", server.addr);
    let browser = |request: RequestBuilder| send_as_browser(request.header(ORIGIN, &origin));
    let mut alice = server.user();
    let mut bob = server.user();
    let mut shown = Vec::new();

    // Act: alice creates the room in a browser and streams it.
    let created = browser(create_request(&alice, "alice", PASSPHRASE)).await;
    keep_cookie(&mut alice, &created);
    let code = location(&created)
        .strip_prefix("/rooms/")
        .expect("sent to the room")
        .to_owned();
    shown.push(Shown::read("creating", created).await);
    let mut alice_events = alice.open_events(&code).await;
    // Bob tries without it, with a wrong one and with one too long, in a
    // browser (the form comes back) and as curl; and sends the field twice.
    let too_long = format!("{PASSPHRASE}{}", "x".repeat(LONGEST));
    for (what, passphrase) in [
        ("no passphrase", None),
        ("a wrong one", Some(WRONG)),
        ("one too long", Some(too_long.as_str())),
    ] {
        let in_browser = browser(join_request(&bob, "bob", &code, passphrase)).await;
        shown.push(Shown::read(what, in_browser).await);
        let by_curl = join_request(&bob, "bob", &code, passphrase).send().await;
        shown.push(Shown::read(what, by_curl.expect("POST /join")).await);
    }
    let fields = [
        ("name", "bob"),
        ("code", code.as_str()),
        ("passphrase", PASSPHRASE),
        ("passphrase", WRONG),
    ];
    let twice = bob.post_request("/join", &fields).send().await;
    shown.push(Shown::read("the field twice", twice.expect("POST /join")).await);
    let too_long_room = browser(create_request(&server.user(), "carol", &too_long)).await;
    shown.push(Shown::read("creating with one too long", too_long_room).await);
    // Bob gets in, and both look at everything a member can see.
    let joined = browser(join_request(&bob, "bob", &code, Some(PASSPHRASE))).await;
    keep_cookie(&mut bob, &joined);
    shown.push(Shown::read("joining", joined).await);
    let join_event = alice_events.expect_event("join", "bob").await;
    bob.say(&code, "in").await;
    let message_event = alice_events.expect_message("bob", "in").await;
    for member in [&alice, &bob] {
        let page = member.get_as_browser(&format!("/rooms/{code}")).await;
        shown.push(Shown::read("the room page", page).await);
        let members = member.get(&format!("/rooms/{code}/members")).await;
        shown.push(Shown::read("the members", members).await);
        let poll = member.get(&format!("/rooms/{code}/poll?after=0")).await;
        shown.push(Shown::read("a poll", poll).await);
    }
    let home = bob.get_as_browser("/").await;
    shown.push(Shown::read("the home page", home).await);
    server.stop().await;

    // Assert: every step did what it should...
    let statuses: Vec<(&str, StatusCode)> = shown.iter().map(|s| (s.what, s.status)).collect();
    assert_eq!(
        statuses,
        [
            ("creating", StatusCode::SEE_OTHER),
            ("no passphrase", StatusCode::FORBIDDEN),
            ("no passphrase", StatusCode::FORBIDDEN),
            ("a wrong one", StatusCode::FORBIDDEN),
            ("a wrong one", StatusCode::FORBIDDEN),
            ("one too long", StatusCode::BAD_REQUEST),
            ("one too long", StatusCode::BAD_REQUEST),
            ("the field twice", StatusCode::BAD_REQUEST),
            ("creating with one too long", StatusCode::BAD_REQUEST),
            ("joining", StatusCode::SEE_OTHER),
            ("the room page", StatusCode::OK),
            ("the members", StatusCode::OK),
            ("a poll", StatusCode::OK),
            ("the room page", StatusCode::OK),
            ("the members", StatusCode::OK),
            ("a poll", StatusCode::OK),
            ("the home page", StatusCode::OK),
        ]
    );
    let poll = shown.iter().find(|s| s.what == "a poll").expect("a poll");
    let poll: serde_json::Value = serde_json::from_str(&poll.body).expect("the poll's JSON");
    assert_eq!(
        polled_events(&poll).len(),
        3,
        "both joins and bob's message: {poll}"
    );
    // ...and none showed a passphrase.
    for shown in &shown {
        assert_no_passphrase(&shown.head, shown.what);
        assert_no_passphrase(&shown.body, shown.what);
    }
    for event in [&join_event, &message_event] {
        assert_no_passphrase(&event.data.to_string(), "an event on the stream");
    }
    // The log is whole once the shutdown line is in it.
    let stopped = server.wait_for_log("shutting down", PATIENCE).await;
    let log = server.log();
    assert!(stopped.is_some(), "the server logged its shutdown:\n{log}");
    assert!(
        log.contains(" TRACE ") && log.contains(&format!("room={code}")),
        "the server logged at trace level, about this room too:\n{log}"
    );
    assert_no_passphrase(&log, "the server's log");
}

/// Someone removed from a private room is told that they were removed,
/// whatever passphrase they bring (none, a wrong one, the right one), and
/// asking costs them no guesses: the room page says so too, past the budget.
#[tokio::test]
async fn a_removed_member_of_a_private_room_is_told_so() {
    // Arrange
    let app = spawn_app_with(&["--guess-burst", "2", "--guess-rate", "1/min"]).await;
    let (alice, code) = user_in_new_room_with(&app, "alice", PASSPHRASE).await;
    let mut bob = app.user();
    let joined = join(&mut bob, "bob", &code, Some(PASSPHRASE)).await;
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    let removed = alice
        .post_request(&format!("/rooms/{code}/remove"), &[("name", "bob")])
        .send()
        .await
        .expect("POST remove");
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let told = format!("The owner removed you from room {code}: you cannot rejoin it.");

    // Act and assert: more tries than the guess budget holds.
    for passphrase in [None, Some(WRONG), Some(PASSPHRASE), None] {
        let again = join(&mut bob, "bob", &code, passphrase).await;
        assert_refused(
            again,
            StatusCode::FORBIDDEN,
            &told,
            "a removed member's join",
        )
        .await;
    }
    let page = bob.get(&format!("/rooms/{code}")).await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN, "no guess was spent");
    assert_eq!(plain_text_line(page).await, told);
}

/// Everyone's room page says "Private" on a private room, and only there.
#[tokio::test]
async fn a_private_rooms_page_says_so_to_everyone() {
    // Arrange
    let app = spawn_app().await;
    let mut alice = app.user();
    let request = create_request(&alice, "alice", PASSPHRASE);
    let created = send_keeping_cookie(&mut alice, request).await;
    let code = location(&created).trim_start_matches("/rooms/").to_owned();
    let mut bob = app.user();
    join(&mut bob, "bob", &code, Some(PASSPHRASE)).await;
    let (public_owner, public_code) = app.user_in_new_room("carol").await;
    let badge = "id=\"private-badge\"";

    // Act and assert
    for user in [&alice, &bob] {
        let page = html_body(user.get_as_browser(&format!("/rooms/{code}")).await).await;
        assert!(
            page.contains(badge) && page.contains(">Private</span>"),
            "{page}"
        );
    }
    let page = html_body(
        public_owner
            .get_as_browser(&format!("/rooms/{public_code}"))
            .await,
    )
    .await;
    assert!(!page.contains(badge), "{page}");
}
