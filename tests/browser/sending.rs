//! Sending from the page: a message typed once reaches the room once, whatever
//! the network does to the request that carries it, and messages typed while
//! offline go out in the order they were typed.

use std::sync::Arc;

use serde::Deserialize;

use crate::harness::{Browser, SOON, with_screenshots};
use crate::owners::join;
use crate::relay::Relay;
use crate::scenarios::{create_room, start};

/// Bob creates a room in his browser and Alice joins it in hers; its code.
async fn alice_joins_bob(alice: &Browser, bob: &Browser) -> String {
    let code = create_room(bob, "Bob").await;
    join(alice, "Alice", &code).await;
    bob.wait_for_line("Alice has entered the room").await;
    code
}

/// How every message the page sends to room `code` begins.
fn post_to(code: &str) -> String {
    format!("POST /rooms/{code}/messages")
}

/// One POST the page made, as [`watch_posts`] recorded it.
#[derive(Debug, Deserialize)]
struct Post {
    /// Its `Idempotency-Key`.
    key: String,
    /// The message it carried.
    text: String,
    /// The answer's status, `"failed"` if the request failed, or `"waiting"`.
    outcome: String,
}

/// Records every POST the page makes and how it ends, in `window.posts`, to
/// show what the outbox did: the page looks `fetch` up at each send, so it
/// goes through this one, which changes nothing else.
async fn watch_posts(browser: &Browser) {
    let script = "const fetch = window.fetch;
        window.posts = [];
        window.fetch = (url, init) => {
            if (init?.method !== 'POST') return fetch(url, init);
            const post = {
                key: init.headers['Idempotency-Key'],
                text: init.body.get('message'),
                outcome: 'waiting',
            };
            window.posts.push(post);
            return fetch(url, init).then(
                (response) => { post.outcome = String(response.status); return response; },
                (failure) => { post.outcome = 'failed'; throw failure; });
        };
        return true;";
    browser.js(script).await;
}

/// Every POST the page made since [`watch_posts`], once each has ended.
async fn posts(browser: &Browser) -> Vec<Post> {
    let settled = "window.posts.every((post) => post.outcome !== 'waiting')";
    browser.wait_until("every post answered", settled).await;
    let posts = browser.js("return window.posts;").await;
    serde_json::from_value(posts).expect("the recorded posts")
}

/// The outcome of each post, in order.
fn outcomes(posts: &[Post]) -> Vec<&str> {
    posts.iter().map(|post| post.outcome.as_str()).collect()
}

/// Waits until `text` is in the log as sent, and nothing of ours is still sending.
async fn wait_delivered(browser: &Browser, text: &str) {
    browser.wait_for_line(text).await;
    let nothing_pending = "!document.querySelector('#log .pending')";
    browser
        .wait_until("no message still sending", nothing_pending)
        .await;
}

/// The answer to Alice's message is lost after the server stored it: her page
/// sends it again, and both she and Bob see it once, no longer "sending…".
#[tokio::test]
async fn a_message_whose_answer_was_lost_shows_once() {
    let (app, driver) = start(&[]).await;
    let relay = Arc::new(Relay::start(app.addr).await);
    let alice = Browser::open(&driver, &relay.base).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b, network) = (alice.clone(), bob.clone(), Arc::clone(&relay));
    with_screenshots(
        "a_message_whose_answer_was_lost",
        &[&alice, &bob],
        async move {
            // Arrange
            let code = alice_joins_bob(&a, &b).await;
            watch_posts(&a).await;
            network.drop_next_response_to(&post_to(&code));

            // Act
            a.send("only once").await;
            tokio::time::timeout(SOON, network.sprung())
                .await
                .expect("the relay drops the answer to Alice's post");
            wait_delivered(&a, "only once").await;
            // A copy stored by the retry would come before what Alice sends next.
            a.send("and then this").await;
            wait_delivered(&a, "and then this").await;
            b.wait_for_line("and then this").await;

            // Assert
            assert!(
                network.responses_dropped() >= 1,
                "the relay dropped an answer"
            );
            for (who, browser) in [("Alice", &a), ("Bob", &b)] {
                assert_eq!(
                    browser.message_texts().await,
                    ["only once", "and then this"],
                    "{who} sees each message once"
                );
            }
            let pending = a.pending_texts().await;
            assert!(pending.is_empty(), "nothing left sending: {pending:?}");
            let posts = posts(&a).await;
            assert_eq!(
                outcomes(&posts),
                ["failed", "204", "204"],
                "the page saw its post fail and sent it again: {posts:?}"
            );
            assert_eq!(posts[0].key, posts[1].key, "the same key: {posts:?}");
        },
    )
    .await;
    drop(relay);
}

/// Alice's message is lost on its way to the server: her page sends it again,
/// and both she and Bob see it once.
#[tokio::test]
async fn a_message_lost_on_its_way_is_sent_again() {
    let (app, driver) = start(&[]).await;
    let relay = Arc::new(Relay::start(app.addr).await);
    let alice = Browser::open(&driver, &relay.base).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b, network) = (alice.clone(), bob.clone(), Arc::clone(&relay));
    with_screenshots("a_message_lost_on_its_way", &[&alice, &bob], async move {
        // Arrange
        let code = alice_joins_bob(&a, &b).await;
        watch_posts(&a).await;
        network.cut_next_request_to(&post_to(&code));

        // Act
        a.send("are you there?").await;
        tokio::time::timeout(SOON, network.sprung())
            .await
            .expect("the relay cuts Alice's post");
        wait_delivered(&a, "are you there?").await;
        b.wait_for_line("are you there?").await;

        // Assert
        assert!(network.requests_cut() >= 1, "the relay cut a request");
        for (who, browser) in [("Alice", &a), ("Bob", &b)] {
            assert_eq!(
                browser.message_texts().await,
                ["are you there?"],
                "{who} sees the message once"
            );
        }
        let pending = a.pending_texts().await;
        assert!(pending.is_empty(), "nothing left sending: {pending:?}");
        let posts = posts(&a).await;
        assert_eq!(
            outcomes(&posts),
            ["failed", "204"],
            "the page saw its post fail and sent it again: {posts:?}"
        );
        assert_eq!(posts[0].key, posts[1].key, "the same key: {posts:?}");
    })
    .await;
    drop(relay);
}

/// Alice types three messages while her connection is down: they wait in her
/// log as "sending…", in the order she typed them, and Bob has none; when the
/// connection returns they go out, and both see the three in order, once each.
#[tokio::test]
async fn messages_typed_offline_go_out_in_order_when_back_online() {
    // Alice is not taken for gone while she is offline.
    let (app, driver) = start(&["--grace", "30"]).await;
    let relay = Arc::new(Relay::start(app.addr).await);
    let alice = Browser::open(&driver, &relay.base).await;
    let bob = Browser::open(&driver, &app.url("")).await;
    let (a, b, network) = (alice.clone(), bob.clone(), Arc::clone(&relay));
    with_screenshots("messages_typed_offline", &[&alice, &bob], async move {
        // Arrange
        alice_joins_bob(&a, &b).await;
        watch_posts(&a).await;
        let typed = ["first", "second", "third"];
        network.refuse();
        let reconnecting = "document.getElementById('status').dataset.state === 'reconnecting'";
        a.wait_until("Alice's reconnecting indicator", reconnecting)
            .await;

        // Act
        for text in typed {
            a.send(text).await;
        }
        let failed = "window.posts.some((post) => post.outcome === 'failed')";
        a.wait_until("a send that failed", failed).await;
        let waiting = a.pending_texts().await;
        let bob_before = b.message_texts().await;
        network.restore();
        wait_delivered(&a, "third").await;
        b.wait_for_line("third").await;

        // Assert
        assert_eq!(waiting, typed, "offline, they wait in typing order");
        assert!(
            bob_before.is_empty(),
            "offline, Bob has none of them: {bob_before:?}"
        );
        for (who, browser) in [("Alice", &a), ("Bob", &b)] {
            assert_eq!(
                browser.message_texts().await,
                typed,
                "{who} sees them in order, once each"
            );
        }
        let pending = a.pending_texts().await;
        assert!(pending.is_empty(), "nothing left sending: {pending:?}");
        let posts = posts(&a).await;
        let sent: Vec<&str> = posts
            .iter()
            .filter(|post| post.outcome == "204")
            .map(|post| post.text.as_str())
            .collect();
        assert_eq!(
            sent, typed,
            "the server took each once, in order: {posts:?}"
        );
        for post in &posts {
            let first = posts.iter().find(|p| p.text == post.text).expect("itself");
            assert_eq!(post.key, first.key, "one key per message: {posts:?}");
        }
    })
    .await;
    drop(relay);
}
