//! Names from a sign-in proxy: a real nginx asking for a password (`auth_basic`)
//! in front of the server started with
//! `--trust-proxy 127.0.0.1 --identity-header X-Remote-User`.
//!
//! Each person's name is who nginx signed them in as: never what they type in a
//! form, never a header of their own, never another person's session cookie; a
//! second browser of the same person is the same member; and a request that did
//! not pass the sign-in (that does not come from nginx's address) is refused by
//! the server too, whatever it claims.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{SET_COOKIE, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::helpers::{
    Events, TempDir, TestApp, User, run_to_end, server_command, session_cookie, spawn_app_with,
    user_at,
};
use crate::nginx::Nginx;

/// The header nginx names the signed-in person in.
const IDENTITY_HEADER: &str = "X-Remote-User";

/// The server's answer to a request that did not come through the sign-in.
const SIGN_IN_FIRST: &str =
    "Sign in first: this server takes names from the sign-in in front of it.";

/// A login nginx accepts that is too long (over 32 characters) to be a name here.
const TOO_LONG: &str = "a-sign-in-name-much-too-long-to-be-a-name";

/// Everyone nginx lets in. `Alice` is another account than `alice`: nginx's
/// logins are case-sensitive.
const ACCOUNTS: [&str; 4] = ["alice", "bob", "Alice", TOO_LONG];

/// How long to listen for an event that must not come.
const QUIET: Duration = Duration::from_millis(300);

/// What the binary logs when it is run in a test.
const RUST_LOG: &str = "info,warp::server=off";

fn password(login: &str) -> String {
    format!("{login}-pw")
}

/// The `server` block of the sign-in proxy in front of `upstream`, with the
/// accounts in `htpasswd`: the configuration `docs/security.md` describes.
fn sign_in_config(htpasswd: &Path, upstream: SocketAddr) -> String {
    let htpasswd = htpasswd.display();
    format!(
        r#"
    # Every request needs a login and password; nginx answers 401 itself.
    auth_basic "chat";
    auth_basic_user_file {htpasswd};

    location / {{
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Who signed in, on every request: a header the client sent is replaced.
      proxy_set_header X-Remote-User $remote_user;
      # The password goes no further than nginx.
      proxy_set_header Authorization "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      # Event streams pass event by event.
      proxy_buffering off;
    }}"#
    )
}

/// The server taking names from `X-Remote-User`, behind nginx signing people in.
struct SignIn {
    app: TestApp,
    nginx: Nginx,
    /// Holds nginx's password file.
    _accounts: TempDir,
}

impl SignIn {
    async fn start() -> Self {
        // nginx on this machine reaches the server from 127.0.0.1.
        let app = spawn_app_with(&[
            "--trust-proxy",
            "127.0.0.1",
            "--identity-header",
            IDENTITY_HEADER,
        ])
        .await;
        let accounts = TempDir::new("signin");
        let htpasswd = accounts.path().join("htpasswd");
        // `{PLAIN}` is nginx's scheme for passwords in the clear: fine for a
        // test; a real deployment hashes them (`htpasswd -B`).
        let lines: String = ACCOUNTS
            .iter()
            .map(|login| format!("{login}:{{PLAIN}}{}\n", password(login)))
            .collect();
        std::fs::write(&htpasswd, lines).expect("write htpasswd");
        let nginx = Nginx::start(&sign_in_config(&htpasswd, app.addr)).await;
        Self {
            app,
            nginx,
            _accounts: accounts,
        }
    }

    /// Someone in a browser of their own, signed in at nginx as `login`.
    fn signed_in(&self, login: &'static str) -> SignedIn {
        SignedIn {
            user: user_at(&self.nginx.base),
            login,
        }
    }

    /// Someone at nginx who has not signed in.
    fn anonymous(&self) -> User {
        user_at(&self.nginx.base)
    }

    /// Someone who reaches the server without passing nginx (from an address
    /// of their own, not nginx's).
    fn around_the_proxy(&self) -> User {
        self.app.user()
    }
}

/// One person signed in at nginx: one cookie jar, and every request carries
/// their login and password.
struct SignedIn {
    user: User,
    login: &'static str,
}

impl SignedIn {
    fn get_request(&self, path: &str) -> RequestBuilder {
        self.sign(self.user.get_request(path))
    }

    fn post_request(&self, path: &str, fields: &[(&str, &str)]) -> RequestBuilder {
        self.sign(self.user.post_request(path, fields))
    }

    fn sign(&self, request: RequestBuilder) -> RequestBuilder {
        request.basic_auth(self.login, Some(password(self.login)))
    }

    /// Sends `request`, keeping the session cookie the answer sets.
    async fn send(&mut self, request: RequestBuilder) -> Response {
        let response = request.send().await.expect("request");
        if response.headers().contains_key(SET_COOKIE) {
            self.user.cookie = Some(session_cookie(&response));
        }
        response
    }

    async fn get(&self, path: &str) -> Response {
        self.get_request(path).send().await.expect("GET")
    }

    /// Creates a room, typing `typed_name` into the form, and returns its code.
    async fn create_room(&mut self, typed_name: &str) -> String {
        let request = self.post_request("/rooms", &[("name", typed_name)]);
        let response = self.send(request).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{} creates",
            self.login
        );
        let location = response.headers()["location"].to_str().expect("ascii");
        location
            .strip_prefix("/rooms/")
            .expect("a redirect to the room")
            .to_owned()
    }

    /// Joins room `code`, typing `typed_name` into the form.
    async fn join(&mut self, typed_name: &str, code: &str) -> Response {
        let request = self.post_request("/join", &[("name", typed_name), ("code", code)]);
        self.send(request).await
    }

    async fn post_message(&self, code: &str, text: &str) -> Response {
        let path = format!("/rooms/{code}/messages");
        let request = self.post_request(&path, &[("message", text)]);
        request.send().await.expect("POST message")
    }

    async fn say(&self, code: &str, text: &str) {
        let response = self.post_message(code, text).await;
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "posting {text:?}"
        );
    }

    /// The names in the room's member list.
    async fn members(&self, code: &str) -> Vec<String> {
        let response = self.get(&format!("/rooms/{code}/members")).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}'s member list",
            self.login
        );
        let list: Vec<Value> = response.json().await.expect("JSON list of members");
        list.iter()
            .map(|member| member["name"].as_str().expect("a name").to_owned())
            .collect()
    }

    /// The room's event stream from its first event.
    async fn open_events(&self, code: &str) -> Events {
        let request = self.get_request(&format!("/rooms/{code}/events?after=0"));
        let response = tokio::time::timeout(Duration::from_secs(5), request.send())
            .await
            .expect("the stream answers promptly")
            .expect("GET events");
        assert_eq!(response.status(), StatusCode::OK, "{}'s stream", self.login);
        Events::new(response)
    }
}

/// Asserts that nothing but heartbeats comes on `events` for a moment.
async fn assert_quiet(events: &mut Events) {
    let next = events.next_event_within(QUIET).await;
    assert!(next.is_none(), "nothing more happens: {next:?}");
}

/// Alice and bob, signed in at nginx, chat under their sign-in names whatever
/// they typed as their name: the joins, the messages and the member list say
/// `alice` and `bob`.
#[tokio::test]
async fn two_signed_in_people_chat_under_their_sign_in_names() {
    // Arrange
    let site = SignIn::start().await;
    let mut alice = site.signed_in("alice");
    let mut bob = site.signed_in("bob");

    // Act
    let code = alice.create_room("Queen of Hearts").await;
    let joined = bob.join("The Builder", &code).await;
    let mut alice_events = alice.open_events(&code).await;
    let mut bob_events = bob.open_events(&code).await;
    alice.say(&code, "hi bob").await;
    bob.say(&code, "hi alice").await;

    // Assert
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    for events in [&mut alice_events, &mut bob_events] {
        events.expect_event("join", "alice").await;
        events.expect_event("join", "bob").await;
        events.expect_message("alice", "hi bob").await;
        events.expect_message("bob", "hi alice").await;
    }
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
    assert_eq!(bob.members(&code).await, ["alice", "bob"]);
}

/// Without a password nginx answers 401 itself; a request that goes around
/// nginx, without its header, gets the server's 401 (pages, streams, posts);
/// only the health check answers anyone.
#[tokio::test]
async fn nobody_gets_in_without_signing_in() {
    // Arrange
    let site = SignIn::start().await;
    let mut alice = site.signed_in("alice");
    let code = alice.create_room("alice").await;
    let anonymous = site.anonymous();
    let around = site.around_the_proxy();

    // Act
    let at_nginx = [
        anonymous.get("/").await,
        anonymous
            .post_request("/rooms", &[("name", "mallory")])
            .send()
            .await
            .expect("POST /rooms"),
        anonymous
            .get_request("/")
            .basic_auth("alice", Some("not-her-password"))
            .send()
            .await
            .expect("GET /"),
    ];
    let at_server = [
        around.get("/").await,
        around.get(&format!("/rooms/{code}/events")).await,
        around
            .post_request("/rooms", &[("name", "mallory")])
            .send()
            .await
            .expect("POST /rooms"),
    ];
    let health = around.get("/healthz").await;

    // Assert
    for response in at_nginx {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers().get(WWW_AUTHENTICATE).cloned();
        assert_eq!(
            challenge.as_ref().map(|c| c.to_str().unwrap()),
            Some(r#"Basic realm="chat""#)
        );
        let body = response.text().await.expect("body");
        assert!(
            !body.contains("Sign in first"),
            "nginx answered, not the server: {body}"
        );
    }
    for response in at_server {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = response.text().await.expect("body");
        assert_eq!(body.trim(), SIGN_IN_FIRST);
    }
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(alice.members(&code).await, ["alice"]);
}

/// Someone who reaches the server around nginx and sends the header nginx
/// would, `X-Remote-User: alice` (with an `X-Forwarded-For` naming nginx's
/// address, and a copy of alice's cookie), is `401` on every page, stream and
/// post: the header counts only from nginx's address. Nothing reaches alice's
/// room.
#[tokio::test]
async fn a_request_around_the_proxy_is_401_whatever_identity_it_claims() {
    // Arrange
    let site = SignIn::start().await;
    let mut alice = site.signed_in("alice");
    let code = alice.create_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    alice_events.expect_event("join", "alice").await;
    let mut mallory = site.around_the_proxy();
    mallory.cookie = alice.user.cookie.clone();
    let as_alice = |request: RequestBuilder| {
        request
            .header(IDENTITY_HEADER, "alice")
            .header("x-forwarded-for", "127.0.0.1")
            .send()
    };
    let room = format!("/rooms/{code}");

    // Act
    let responses = [
        as_alice(mallory.get_request("/")).await,
        as_alice(mallory.get_request(&room)).await,
        as_alice(mallory.get_request(&format!("{room}/events"))).await,
        as_alice(mallory.get_request(&format!("{room}/members"))).await,
        as_alice(mallory.post_request(&format!("{room}/messages"), &[("message", "it is me")]))
            .await,
        as_alice(mallory.post_request("/join", &[("name", "alice"), ("code", &code)])).await,
        as_alice(mallory.post_request("/rooms", &[("name", "alice")])).await,
    ];

    // Assert
    for response in responses {
        let response = response.expect("request");
        let url = response.url().path().to_owned();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{url}");
        assert!(!response.headers().contains_key(SET_COOKIE), "{url}");
        let body = response.text().await.expect("body");
        assert_eq!(body.trim(), SIGN_IN_FIRST, "{url}");
    }
    assert_quiet(&mut alice_events).await;
    assert_eq!(alice.members(&code).await, ["alice"]);
}

/// A name typed into the join form, or an `X-Remote-User` header of one's own
/// sent through nginx, changes nothing: bob is bob.
#[tokio::test]
async fn the_name_is_the_sign_in_whatever_the_person_sends() {
    // Arrange
    let site = SignIn::start().await;
    let mut alice = site.signed_in("alice");
    let code = alice.create_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    alice_events.expect_event("join", "alice").await;
    let mut bob = site.signed_in("bob");

    // Act
    let request = bob
        .post_request("/join", &[("name", "mallory"), ("code", &code)])
        .header(IDENTITY_HEADER, "mallory");
    let joined = bob.send(request).await;
    let path = format!("/rooms/{code}/messages");
    let as_alice = bob
        .post_request(&path, &[("message", "it is me, alice"), ("name", "alice")])
        .header(IDENTITY_HEADER, "alice")
        .send()
        .await
        .expect("POST message");

    // Assert
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    alice_events.expect_event("join", "bob").await;
    assert_eq!(as_alice.status(), StatusCode::NO_CONTENT);
    alice_events.expect_message("bob", "it is me, alice").await;
    assert_quiet(&mut alice_events).await;
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
}

/// Bob's session cookie in alice's browser lets her into nothing of his: his
/// room is closed to her until she joins it, as herself.
#[tokio::test]
async fn another_persons_session_cookie_counts_for_nothing() {
    // Arrange
    let site = SignIn::start().await;
    let mut bob = site.signed_in("bob");
    let code = bob.create_room("bob").await;
    let mut bob_events = bob.open_events(&code).await;
    bob_events.expect_event("join", "bob").await;
    let mut alice = site.signed_in("alice");
    alice.user.cookie = bob.user.cookie.clone();

    // Act
    let members = alice.get(&format!("/rooms/{code}/members")).await;
    let events = alice.get(&format!("/rooms/{code}/events")).await;
    let message = alice.post_message(&code, "posted with bob's cookie").await;
    let page = alice.get(&format!("/rooms/{code}")).await;
    let page_status = page.status();
    let page = page.text().await.expect("the room's page");
    let joined = alice.join("bob", &code).await;

    // Assert
    assert_eq!(members.status(), StatusCode::FORBIDDEN);
    assert_eq!(events.status(), StatusCode::FORBIDDEN);
    assert_eq!(message.status(), StatusCode::FORBIDDEN);
    assert_eq!(page_status, StatusCode::OK);
    assert!(
        page.contains("Join room"),
        "the join form, not the room:\n{page}"
    );
    assert!(
        page.contains("Signed in as <strong><bdi>alice</bdi></strong>"),
        "{page}"
    );
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    bob_events.expect_event("join", "alice").await;
    assert_quiet(&mut bob_events).await;
    assert_eq!(bob.members(&code).await, ["bob", "alice"]);
    assert_eq!(alice.members(&code).await, ["bob", "alice"]);
}

/// Alice in a second browser (a session of its own) who joins a room she is in
/// already is the same member: `303`, no second join, her messages still hers.
#[tokio::test]
async fn the_same_person_in_two_browsers_is_one_member() {
    // Arrange
    let site = SignIn::start().await;
    let mut laptop = site.signed_in("alice");
    let code = laptop.create_room("alice").await;
    let mut bob = site.signed_in("bob");
    assert_eq!(bob.join("bob", &code).await.status(), StatusCode::SEE_OTHER);
    let mut bob_events = bob.open_events(&code).await;
    bob_events.expect_event("join", "alice").await;
    bob_events.expect_event("join", "bob").await;
    let mut phone = site.signed_in("alice");

    // Act
    let joined = phone.join("alice on her phone", &code).await;

    // Assert
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        joined.headers()["location"],
        format!("/rooms/{code}").as_str()
    );
    assert_ne!(phone.user.cookie, laptop.user.cookie, "two sessions");
    assert_quiet(&mut bob_events).await;
    assert_eq!(bob.members(&code).await, ["alice", "bob"]);
    phone.say(&code, "from my phone").await;
    bob_events.expect_message("alice", "from my phone").await;
    laptop.say(&code, "from my laptop").await;
    bob_events.expect_message("alice", "from my laptop").await;
}

/// The server refuses to start with `--identity-header` (or
/// `CHAT_IDENTITY_HEADER`) but without `--trust-proxy`, and says why.
#[tokio::test]
async fn the_server_will_not_take_names_without_trusting_its_proxy() {
    // Arrange
    let within = Duration::from_secs(10);

    // Act
    let by_option = run_to_end(
        server_command(RUST_LOG).args([
            "--bind",
            "127.0.0.1:0",
            "--identity-header",
            IDENTITY_HEADER,
        ]),
        within,
    )
    .await;
    let by_environment = run_to_end(
        server_command(RUST_LOG)
            .args(["--bind", "127.0.0.1:0"])
            .env("CHAT_IDENTITY_HEADER", IDENTITY_HEADER),
        within,
    )
    .await;

    // Assert
    for refused in [by_option, by_environment] {
        assert!(!refused.status.success(), "refused: {refused:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("--trust-proxy"),
            "says what is missing:\n{stderr}"
        );
    }
}

/// The home page and a room's join page say who is signed in, and ask for no
/// name.
#[tokio::test]
async fn pages_say_who_is_signed_in_and_ask_for_no_name() {
    // Arrange
    let site = SignIn::start().await;
    let mut alice = site.signed_in("alice");
    let code = alice.create_room("alice").await;
    let bob = site.signed_in("bob");

    // Act
    let home = bob.get("/").await;
    let join = bob.get(&format!("/rooms/{code}")).await;

    // Assert
    for page in [home, join] {
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.expect("the page");
        assert!(
            page.contains("Signed in as <strong><bdi>bob</bdi></strong>"),
            "{page}"
        );
        assert!(!page.contains(r#"id="name""#), "no name field:\n{page}");
        assert!(!page.contains(r#"name="name""#), "no name field:\n{page}");
    }
}

/// A sign-in name that cannot be a name here (too long) is refused with `403`
/// and a reason, and makes no room.
#[tokio::test]
async fn a_sign_in_name_that_cannot_be_a_name_here_is_refused() {
    // Arrange
    let site = SignIn::start().await;
    let mut long = site.signed_in(TOO_LONG);

    // Act
    let home = long.get("/").await;
    let request = long.post_request("/rooms", &[("name", "short")]);
    let create = long.send(request).await;

    // Assert
    assert_eq!(home.status(), StatusCode::FORBIDDEN);
    let reason = home.text().await.expect("body");
    assert!(
        reason.contains("Your sign-in name cannot be used as a name here."),
        "{reason}"
    );
    assert_eq!(create.status(), StatusCode::FORBIDDEN);
    assert!(long.user.cookie.is_none(), "no session, no room");
}

/// Another account whose name looks like a member's (`Alice`, next to `alice`)
/// does not become that member: it is refused as any look-alike name is, and
/// cannot speak in the room.
#[tokio::test]
async fn a_look_alike_sign_in_is_not_the_member_it_looks_like() {
    // Arrange
    let site = SignIn::start().await;
    let mut alice = site.signed_in("alice");
    let code = alice.create_room("alice").await;
    let mut alice_events = alice.open_events(&code).await;
    alice_events.expect_event("join", "alice").await;
    let mut other = site.signed_in("Alice");

    // Act
    let joined = other.join("Alice", &code).await;
    let message = other.post_message(&code, "I am alice now").await;

    // Assert
    assert_eq!(joined.status(), StatusCode::CONFLICT);
    assert_eq!(message.status(), StatusCode::FORBIDDEN);
    assert_quiet(&mut alice_events).await;
    assert_eq!(alice.members(&code).await, ["alice"]);
}
