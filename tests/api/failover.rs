//! Redis that fails over: two instances of the real binary find the primary
//! through three Redis Sentinels (`redis+sentinel://`, Debian's
//! `redis-sentinel`), and with `--redis-replicas 1` acknowledge a message only
//! once a replica has it. The primary is killed under load: sends are refused
//! with `503` and `Retry-After` while the sentinels fail over, the instances
//! follow the new primary, every acknowledged message is in the history once,
//! and the streams open throughout catch up.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use tokio::time::Instant;

use crate::helpers::{RunningServer, random_secret, user_at};
use crate::redis::{RedisServer, SentinelGroup};
use crate::scaling::{
    ROOMY, event_id, events_through, joined_at, kept_once, messages, same_person_at,
    wait_for_health,
};

/// Longest the instances may take, from the primary's death, to acknowledge a
/// message again: the sentinels call it down, agree, promote a replica and
/// point the other replica at it (which `--redis-replicas 1` waits for), and
/// the instances follow: about 4 s here. docs/scaling.md states this bound.
const FAILOVER_BOUND: Duration = Duration::from_secs(15);

/// What the sender saw of one message: its text, its id once stored, and how
/// often it was refused first.
#[derive(Debug)]
struct Sent {
    text: String,
    id: u64,
    refusals: usize,
    stored_at: Instant,
}

/// 1. The primary is killed while both instances serve a room under load, with
///    `--redis-replicas 1`: every send either gets `204` or `503` with
///    `Retry-After`; every message acknowledged (before, during or after) is
///    in the room's history exactly once and in the order sent; the streams
///    open throughout get them all; and the instances acknowledge again on the
///    new primary within [`FAILOVER_BOUND`].
#[tokio::test]
async fn a_failover_loses_no_acknowledged_message_and_the_instances_follow_it() {
    // Arrange: a primary, two replicas (so that the new primary still has one
    // to confirm to), three sentinels, two instances.
    let mut group = SentinelGroup::start(2).await;
    let url = group.url();
    let secret = random_secret();
    let mut options = vec![
        "--redis",
        &url,
        "--secret",
        &secret,
        "--redis-replicas",
        "1",
        "--grace",
        "30",
        "--history",
        "10000",
    ];
    options.extend_from_slice(&ROOMY);
    let instances = [
        RunningServer::start(&options).await,
        RunningServer::start(&options).await,
    ];
    let logs = |group: &SentinelGroup| {
        let instances: String = instances
            .iter()
            .enumerate()
            .map(|(i, instance)| format!("--- instance {i} ---\n{}", instance.log()))
            .collect();
        format!("{instances}{}", group.logs())
    };
    let bases = [instances[0].url(""), instances[1].url("")];
    for base in &bases {
        wait_for_health(base, StatusCode::OK, FAILOVER_BOUND, &logs(&group)).await;
    }
    let mut alice = user_at(&bases[0]);
    let code = alice.create_room_ok("alice").await;
    let bob = joined_at(&bases[1], &code, "bob").await;
    let mut alice_events = alice.open_long_events(&code, None).await;
    let mut bob_events = bob.open_long_events(&code, None).await;
    let first = alice.post_message(&code, "first").await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT, "{}", logs(&group));
    let first = event_id(&first);
    // Bob sends one message after another, alternating instances, each under
    // its own key and sent again after a refusal until it is stored, as the
    // room page does.
    let (stop_sending, stopped) = tokio::sync::watch::channel(false);
    let (stored_tx, mut stored) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let sender = tokio::spawn({
        let at = [
            same_person_at(&bob, &bases[0]),
            same_person_at(&bob, &bases[1]),
        ];
        let code = code.clone();
        async move {
            let mut sent = Vec::new();
            let mut odd_answers = Vec::new();
            for i in 0usize.. {
                if *stopped.borrow() {
                    break;
                }
                let text = format!("m{i}");
                let key = random_secret();
                let mut refusals = 0;
                loop {
                    let response = at[(i + refusals) % 2]
                        .post_request(&format!("/rooms/{code}/messages"), &[("message", &text)])
                        .header("idempotency-key", &key)
                        .send()
                        .await
                        .expect("POST message");
                    match response.status() {
                        StatusCode::NO_CONTENT => {
                            let stored_at = Instant::now();
                            let _ = stored_tx.send(stored_at);
                            sent.push(Sent {
                                text: text.clone(),
                                id: event_id(&response),
                                refusals,
                                stored_at,
                            });
                            break;
                        }
                        StatusCode::SERVICE_UNAVAILABLE
                            if response.headers().contains_key(RETRY_AFTER) =>
                        {
                            refusals += 1;
                        }
                        other => {
                            let body = response.text().await.unwrap_or_default();
                            odd_answers.push(format!("{text}: {other} {body}"));
                            refusals += 1;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (sent, odd_answers)
        }
    });
    for _ in 0..20 {
        stored.recv().await.expect("the sender stores messages");
    }

    // Act: the primary dies.
    let old_primary = group.primary_port().await;
    let killed_at = Instant::now();
    group.node_mut(old_primary).stop().await;
    // Until 20 messages are stored after the death.
    let mut after = 0;
    while after < 20 {
        let at = tokio::time::timeout(FAILOVER_BOUND * 2, stored.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "messages are stored again after the failover\n{}",
                    logs(&group)
                )
            })
            .expect("the sender stores messages");
        if at > killed_at {
            after += 1;
        }
    }
    let _ = stop_sending.send(true);
    let (sent, odd_answers) = sender.await.expect("the sender does not fail");
    let new_primary = group.primary_port().await;

    // Assert
    assert!(
        odd_answers.is_empty(),
        "only 204 or 503 with Retry-After: {odd_answers:?}"
    );
    assert_ne!(new_primary, old_primary, "the sentinels promoted a replica");
    let back_after = sent
        .iter()
        .find(|message| message.stored_at > killed_at)
        .map(|message| message.stored_at - killed_at)
        .expect("a message stored after the death");
    eprintln!(
        "failover: the first message after the primary's death was stored {back_after:?} after it"
    );
    assert!(
        back_after < FAILOVER_BOUND,
        "acknowledged again within {FAILOVER_BOUND:?}: {back_after:?}\n{}",
        logs(&group)
    );
    assert!(
        sent.iter().any(|message| message.refusals > 0),
        "the sender met the failover (503 with Retry-After): {sent:?}"
    );
    let last = sent.last().expect("messages were sent").id;
    let kept = kept_once(&alice, &code, first, last).await;
    let sent_texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
    let kept_texts: Vec<&str> = kept.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(
        kept_texts, sent_texts,
        "every acknowledged message is in the history once, in the order sent"
    );
    for message in &sent {
        assert!(
            kept.contains(&(message.id, message.text.clone())),
            "{message:?} is kept under the id its 204 gave"
        );
    }
    for (name, events) in [("alice", &mut alice_events), ("bob", &mut bob_events)] {
        let caught_up = events_through(events, last).await;
        let received: Vec<(u64, String)> = messages(&caught_up)
            .into_iter()
            .filter(|(id, _)| *id > first)
            .collect();
        assert_eq!(
            received, kept,
            "{name}'s stream, open throughout, gets every message once"
        );
    }
    for base in &bases {
        wait_for_health(base, StatusCode::OK, FAILOVER_BOUND, &logs(&group)).await;
    }
}

/// 2. With `--redis-replicas 1` and no replica left to confirm it (the one
///    there was is gone), a send is not acknowledged: `503` with
///    `Retry-After`, however often it is sent again. Once a replica is back,
///    the same send (same idempotency key) gets its `204`, and the message is
///    in the history once.
#[tokio::test]
async fn a_send_no_replica_confirms_is_refused_and_stored_once_when_one_does() {
    // Arrange
    let primary = RedisServer::start().await;
    let (url, secret) = (primary.url(), random_secret());
    let mut options = vec!["--redis", &url, "--secret", &secret];
    options.extend_from_slice(&["--redis-replicas", "1"]);
    options.extend_from_slice(&ROOMY);
    let mut replica = RedisServer::start_replica_of(&primary).await;
    let instance = RunningServer::start(&options).await;
    let mut alice = user_at(&instance.url(""));
    let code = alice.create_room_ok("alice").await;
    replica.stop().await;
    let send = || async {
        alice
            .post_request(&format!("/rooms/{code}/messages"), &[("message", "safe")])
            .header("idempotency-key", "k1")
            .send()
            .await
            .expect("POST message")
    };

    // Act
    let alone = [send().await, send().await];
    let _replica = RedisServer::start_replica_of(&primary).await;
    let confirmed = send().await;

    // Assert
    for refused in &alone {
        assert_eq!(
            (
                refused.status(),
                refused.headers().contains_key(RETRY_AFTER)
            ),
            (StatusCode::SERVICE_UNAVAILABLE, true),
            "without a replica: not acknowledged\n{}",
            instance.log()
        );
    }
    assert_eq!(
        confirmed.status(),
        StatusCode::NO_CONTENT,
        "{}",
        instance.log()
    );
    let id = event_id(&confirmed);
    let kept = kept_once(&alice, &code, 0, id).await;
    assert_eq!(
        kept,
        [(id, String::from("safe"))],
        "stored once, under its id"
    );
}
