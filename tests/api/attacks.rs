//! What a determined stranger tried in the second attack, and what now stops
//! it: a live code told from a dead one by the time the store takes once the
//! guess budget is spent; wrong passphrases queueing Argon2 work until a right
//! one waits for seconds; a cookie copied before its owner joins sharing limits
//! and bans with them; and a member rendering the room's page without end.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;

use crate::helpers::{
    RunningServer, User, next_loopback_address, random_secret, spawn_app_with, user_at_from,
};
use crate::redis::RedisServer;

/// The passphrase of the private room under attack.
const PASSPHRASE: &str = "correct-horse-battery-staple-7731";

/// What an address that keeps sending wrong passphrases for a room is told.
const WRONG_PASSPHRASES: &str =
    "Too many wrong passphrases for this room: wait a while before trying again.";

/// `POST /join` of room `code` as `name` with `passphrase`.
async fn join_with(user: &mut User, name: &str, code: &str, passphrase: &str) -> reqwest::Response {
    let response = user
        .post_request(
            "/join",
            &[("name", name), ("code", code), ("passphrase", passphrase)],
        )
        .send()
        .await
        .expect("POST /join");
    if let Some(set) = response.headers().get(reqwest::header::SET_COOKIE) {
        let pair = set.to_str().expect("ascii cookie").split(';').next();
        user.cookie = pair.map(str::to_owned);
    }
    response
}

/// A user who created a private room as `name`, and the room's code.
async fn user_in_private_room(base: &str, name: &str) -> (User, String) {
    let mut user = crate::helpers::user_at(base);
    let created = user
        .post_request("/rooms", &[("name", name), ("passphrase", PASSPHRASE)])
        .send()
        .await
        .expect("POST /rooms");
    assert_eq!(
        created.status(),
        StatusCode::SEE_OTHER,
        "create a private room"
    );
    let code = crate::helpers::room_code(&created);
    user.cookie = Some(crate::helpers::session_cookie(&created));
    (user, code)
}

/// How many scripts Redis has run (`EVALSHA` and `EVAL`), from `INFO
/// commandstats`: every room operation of an instance is one script call.
async fn scripts_run(redis: &RedisServer) -> u64 {
    let info: String = redis.query(redis::cmd("INFO").arg("commandstats")).await;
    info.lines()
        .filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
        .filter_map(|line| {
            let calls = line.split("calls=").nth(1)?.split(',').next()?;
            calls.parse::<u64>().ok()
        })
        .sum()
}

/// Once an address has spent its guesses, its joins and page views of a live
/// room cost the store nothing, cookie or not: the refusal comes before any
/// work that could take longer for a live code than for a dead one.
#[tokio::test]
async fn a_spent_guess_budget_asks_the_store_nothing() {
    // Arrange: a Redis-backed instance, a live room, and a stranger with a
    // session of his own (a room of his) who has spent his guesses.
    let redis = RedisServer::start().await;
    let (url, secret) = (redis.url(), random_secret());
    let server = RunningServer::start(&[
        "--redis",
        &url,
        "--secret",
        &secret,
        "--guess-burst",
        "3",
        "--guess-rate",
        "1/h",
    ])
    .await;
    let mut alice = server.user();
    let live = alice.create_room_ok("alice").await;
    let mut mallory = server.user();
    mallory.create_room_ok("mallory").await;
    for _ in 0..3 {
        let dead = mallory.get("/rooms/QQQQ").await;
        assert_eq!(dead.status(), StatusCode::NOT_FOUND, "a guess that misses");
    }
    let before = scripts_run(&redis).await;

    // Act
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(join_with(&mut mallory, "mallory", &live, "").await.status());
        statuses.push(mallory.get(&format!("/rooms/{live}")).await.status());
        let events = mallory.get(&format!("/rooms/{live}/events")).await;
        statuses.push(events.status());
    }
    let after = scripts_run(&redis).await;

    // Assert
    assert!(
        statuses.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "every request refused for the spent budget: {statuses:?}"
    );
    assert_eq!(
        after - before,
        0,
        "scripts Redis ran for 60 refused requests about a live room\n{}",
        server.log()
    );
}

/// A flood of wrong passphrases for a private room (40 addresses, 30 each,
/// five at a time per address: 200 in flight) lets nobody in and does not make
/// a right passphrase from a fresh address wait: once the room's
/// wrong-passphrase budget is spent (a few dozen checks, about a second of
/// work), the flood is refused before anything is checked, and the friend is
/// answered within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_right_passphrase_is_answered_within_a_second_during_a_flood_of_wrong_ones() {
    // Arrange
    let server = RunningServer::start(&[]).await;
    let (alice, code) = user_in_private_room(&server.url(""), "alice").await;
    let attackers: Vec<IpAddr> = (0..40).map(|_| next_loopback_address()).collect();

    // Act: the flood starts; the friend comes as soon as the room turns
    // guessers away (or, where nothing does, after 3 s, with the flood still
    // under way).
    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel::<String>();
    let flood = attackers.iter().flat_map(|from| {
        (0..5).map(|lane| {
            let mut user = user_at_from(&server.url(""), *from);
            let code = code.clone();
            let answered = answered.clone();
            async move {
                let mut statuses = Vec::new();
                for attempt in 0..6 {
                    let wrong = format!("not-it-{lane}-{attempt}");
                    let answer = join_with(&mut user, "mallory", &code, &wrong).await;
                    statuses.push(answer.status());
                    let _ = answered.send(answer.text().await.unwrap_or_default());
                }
                statuses
            }
        })
    });
    let flood = tokio::spawn(join_all(flood.collect::<Vec<_>>()));
    let mut seen = 0;
    let turned_away = async {
        while let Some(text) = answers.recv().await {
            seen += 1;
            if text.trim() == WRONG_PASSPHRASES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), turned_away).await;
    println!("the friend comes after {seen} of the flood's answers");
    let mut friend = server.user();
    let asked = Instant::now();
    let joined = join_with(&mut friend, "bob", &code, PASSPHRASE).await;
    let waited = asked.elapsed();
    let statuses: Vec<StatusCode> = flood.await.expect("the flood ends").concat();

    // Assert
    println!("a right passphrase during a flood of 1,200 wrong ones: answered in {waited:?}");
    let mut counted = std::collections::BTreeMap::new();
    for status in &statuses {
        *counted.entry(status.as_u16()).or_insert(0) += 1;
    }
    println!("the flood was answered: {counted:?}");
    assert_eq!(joined.status(), StatusCode::SEE_OTHER, "the friend gets in");
    assert!(
        waited < Duration::from_secs(1),
        "the friend waited {waited:?}"
    );
    assert!(
        statuses.iter().all(|s| [
            StatusCode::FORBIDDEN,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE
        ]
        .contains(s)),
        "nobody of the flood got in: {counted:?}"
    );
    assert!(
        counted.get(&403).copied().unwrap_or(0) <= 61,
        "the room's budget, and one more try per address: {counted:?}"
    );
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
}

/// Once a private room's wrong-passphrase budget is spent (20 wrong, and the
/// 21st finds it empty), an address that sent a wrong one is refused (`429`,
/// before anything is checked) even with the right one, while an address that
/// sent none still gets in.
#[tokio::test]
async fn a_rooms_wrong_passphrase_budget_stops_the_guessers_not_the_guests() {
    // Arrange: enough guesses that the room's budget, not the address's, runs out.
    let app = spawn_app_with(&["--guess-burst", "100", "--join-burst", "100"]).await;
    let (alice, code) = user_in_private_room(&app.url(""), "alice").await;
    let mut mallory = app.user();
    let mut wrong = Vec::new();
    for attempt in 0..25 {
        let guess = format!("not-it-{attempt}");
        let answer = join_with(&mut mallory, "mallory", &code, &guess).await;
        wrong.push(answer.status());
    }

    // Act
    let mallory_right = join_with(&mut mallory, "mallory", &code, PASSPHRASE).await;
    let guest = join_with(&mut app.user(), "bob", &code, PASSPHRASE).await;

    // Assert
    assert_eq!(
        &wrong[..21],
        &[StatusCode::FORBIDDEN; 21],
        "checked and wrong"
    );
    assert_eq!(
        &wrong[21..],
        &[StatusCode::TOO_MANY_REQUESTS; 4],
        "the room's budget is spent"
    );
    assert_eq!(mallory_right.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(mallory_right.headers().contains_key(RETRY_AFTER));
    let text = mallory_right.text().await.expect("body");
    assert_eq!(text.trim(), WRONG_PASSPHRASES);
    assert_eq!(guest.status(), StatusCode::SEE_OTHER, "a fresh address");
    assert_eq!(alice.members(&code).await, ["alice", "bob"]);
}

/// A cookie copied (or planted) before its owner joins a room shares nothing
/// with them afterwards: streams the copy holds open do not count against the
/// owner's, and a removal of the copy does not shut the owner out.
#[tokio::test]
async fn a_cookie_copied_before_joining_shares_no_limit_and_no_ban() {
    // Arrange: mallory's session, in his hands and planted in the victim's browser.
    let app = spawn_app_with(&["--max-streams-per-session", "2"]).await;
    let mut mallory = app.user();
    let mallorys_room = mallory.create_room_ok("mallory").await;
    let mut victim = app.user();
    victim.cookie = mallory.cookie.clone();
    let (alice, alices_room) = app.user_in_new_room("alice").await;
    let (carol, carols_room) = app.user_in_new_room("carol").await;

    // Act: the victim joins alice's room with the planted cookie; mallory
    // fills the old session's streams and gets himself removed from carol's.
    let joined = victim.join("victor", &alices_room).await;
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    let _held = [
        mallory.open_events(&mallorys_room).await,
        mallory.open_events(&mallorys_room).await,
    ];
    let mallory_joined = mallory.join("mallory", &carols_room).await;
    assert_eq!(mallory_joined.status(), StatusCode::SEE_OTHER);
    let removed = carol
        .post_request(
            &format!("/rooms/{carols_room}/remove"),
            &[("name", "mallory")],
        )
        .send()
        .await
        .expect("remove");
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);

    // Assert
    let stream = victim.try_open_events(&alices_room, None).await;
    assert!(
        stream.is_ok(),
        "the victim's own stream: {:?}",
        stream.err()
    );
    let into_carols = victim.join("victor", &carols_room).await;
    assert_eq!(
        into_carols.status(),
        StatusCode::SEE_OTHER,
        "the victim is not shut out of carol's room"
    );
    assert!(
        alice
            .members(&alices_room)
            .await
            .contains(&"victor".to_owned())
    );
}

/// A member renders the room's page a burst of times, then at the steady rate:
/// further loads are `429` with `Retry-After`, and others are not affected.
#[tokio::test]
async fn a_member_loads_the_room_page_a_burst_of_times_then_waits() {
    // Arrange
    let app = spawn_app_with(&["--page-burst", "5", "--page-rate", "1/min"]).await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let bob = app.user_joined(&code, "bob").await;
    let page = format!("/rooms/{code}");
    for load in 1..=5 {
        assert_eq!(
            alice.get(&page).await.status(),
            StatusCode::OK,
            "load {load}"
        );
    }

    // Act
    let sixth = alice.get(&page).await;
    let bobs = bob.get(&page).await;

    // Assert
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = sixth.headers()[RETRY_AFTER]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(
        sixth.text().await.expect("body").trim(),
        "You are loading this room's page too often: wait a moment."
    );
    assert_eq!(bobs.status(), StatusCode::OK, "another member");
}
