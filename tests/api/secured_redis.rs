//! Redis as operators run it: TLS only (`rediss://`, a certificate from a CA
//! of their own, trusted with `--redis-ca`) and an ACL user with a password in
//! the URL, the default user off. The contract's core runs on such a Redis
//! as on any; a wrong password or an untrusted certificate stops the server
//! at start, saying which, instead of serving `503`s.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{random_secret, run_to_end, said, server_command, spawn_app_on_redis};
use crate::redis::RedisServer;

/// The core of the contract on a TLS-only, password-protected Redis: create,
/// join, stream, post, history, lock, private, leave, across two instances.
#[tokio::test]
async fn the_core_of_the_contract_holds_on_a_tls_only_password_protected_redis() {
    // Arrange
    let redis = RedisServer::start_secured().await;
    let app = spawn_app_on_redis(redis, &[]).await;

    // Act and Assert: create, join, stream, post.
    let (alice, code) = app.user_in_new_room("alice").await;
    let bob = app.user_joined(&code, "bob").await;
    let mut alice_events = alice.open_events(&code).await;
    let mut bob_events = bob.open_events(&code).await;
    bob.say(&code, "over TLS").await;
    alice_events.expect_message("bob", "over TLS").await;
    bob_events.expect_message("bob", "over TLS").await;
    // History: a poll from the start has it.
    let history = alice.poll_ok(&code, Some(0)).await;
    let texts: Vec<String> = crate::helpers::polled_events(&history)
        .iter()
        .filter(|event| event["kind"] == "message")
        .map(|event| event["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(texts, ["over TLS"], "history");
    // Lock: a newcomer is turned away until the owner unlocks.
    let path = |what: &str| format!("/rooms/{code}/{what}");
    let locked = alice
        .post_request(&path("lock"), &[])
        .send()
        .await
        .expect("lock");
    assert_eq!(locked.status(), StatusCode::NO_CONTENT, "lock");
    let mut carol = app.user();
    assert_eq!(
        carol.join("carol", &code).await.status(),
        StatusCode::LOCKED
    );
    let unlocked = alice
        .post_request(&path("unlock"), &[])
        .send()
        .await
        .expect("unlock");
    assert_eq!(unlocked.status(), StatusCode::NO_CONTENT, "unlock");
    assert_eq!(
        carol.join("carol", &code).await.status(),
        StatusCode::SEE_OTHER
    );
    // Leave: announced to those who stay.
    let left = bob
        .post_request(&path("leave"), &[])
        .send()
        .await
        .expect("leave");
    assert!(
        left.status().is_redirection() || left.status().is_success(),
        "leave: {left:?}"
    );
    alice_events.expect_event("lock", "alice").await;
    alice_events.expect_event("unlock", "alice").await;
    alice_events.expect_event("join", "carol").await;
    alice_events.expect_event("leave", "bob").await;
    assert_eq!(alice.members(&code).await, ["alice", "carol"]);
    // Private: only the passphrase lets someone in.
    let dave = app.user();
    let created = dave
        .post_request(
            "/rooms",
            &[("name", "dave"), ("passphrase", "correct horse battery")],
        )
        .send()
        .await
        .expect("create a private room");
    assert_eq!(
        created.status(),
        StatusCode::SEE_OTHER,
        "private room created"
    );
    let private = crate::helpers::room_code(&created);
    let erin = app.user();
    let refused = erin
        .post_request("/join", &[("name", "erin"), ("code", &private)])
        .send()
        .await
        .expect("join without the passphrase");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "no passphrase");
    let admitted = erin
        .post_request(
            "/join",
            &[
                ("name", "erin"),
                ("code", &private),
                ("passphrase", "correct horse battery"),
            ],
        )
        .send()
        .await
        .expect("join with the passphrase");
    assert_eq!(admitted.status(), StatusCode::SEE_OTHER, "the passphrase");
}

/// The real binary given a wrong password, or no `--redis-ca` for a private
/// CA's certificate, stops at start with a message naming the problem (and
/// never panics); the right ones start it.
#[tokio::test]
async fn a_wrong_password_or_an_untrusted_certificate_stops_the_server_at_start() {
    // Arrange
    let redis = RedisServer::start_secured().await;
    let ca = redis.ca_file();
    let ca = ca.to_str().expect("a UTF-8 temporary path");
    let secret = random_secret();
    let wrong_password = redis.url_with_password("not-the-password");
    let right = redis.url();
    let cases: [(&str, Vec<&str>, &[&str]); 2] = [
        (
            "a wrong password",
            vec!["--redis", &wrong_password, "--redis-ca", ca],
            &["password"],
        ),
        (
            "no --redis-ca",
            vec!["--redis", &right],
            &["certificate", "--redis-ca"],
        ),
    ];

    for (what, args, names) in cases {
        // Act
        let mut command = server_command("info");
        command
            .args(["--bind", "127.0.0.1:0", "--secret", &secret])
            .args(&args);
        let output = run_to_end(&mut command, Duration::from_secs(20)).await;

        // Assert
        let log = said(&output);
        assert!(
            log.contains("cannot start"),
            "{what}: stops at start:\n{log}"
        );
        for name in names {
            assert!(
                log.contains(name),
                "{what}: names the problem ({name}):\n{log}"
            );
        }
        assert!(!log.contains("panicked"), "{what}: no panic:\n{log}");
        assert!(
            !output.status.success(),
            "{what}: exits with an error status"
        );
        assert!(
            !log.contains("listening on"),
            "{what}: never served:\n{log}"
        );
        assert!(
            !log.contains("not-the-password") && !log.contains(&right),
            "{what}: no password in the log:\n{log}"
        );
    }
}
