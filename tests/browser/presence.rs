//! The people list in a big room: the page keeps it from the events instead of
//! fetching everyone after each one. Every tab of a room of N fetching the
//! whole list at every join costs N × N entries: at 10,000 people, gigabytes
//! of JSON for each newcomer.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::{Browser, with_screenshots};
use crate::scenarios::{create_room, start};

/// More people than the page treats as a small room (`SMALL_ROOM` in chat.js).
const CROWD: u8 = 55;

/// Longer than a small room's refresh after a notice (1 s).
const PAST_A_SMALL_ROOMS_REFRESH: Duration = Duration::from_millis(1500);

/// The `/members` requests this page has made so far.
async fn members_fetched(browser: &Browser) -> u64 {
    let count = browser
        .js("return performance.getEntriesByType('resource').filter((e) => e.name.includes('/members')).length;")
        .await;
    count.as_u64().expect("a count")
}

/// Waits until the people list holds `count` names, `name` among them (or not).
async fn wait_list(browser: &Browser, count: usize, name: &str, listed: bool) {
    let script = format!(
        "((names) => names.length === {count} && names.includes({name:?}) === {listed})\
         ([...document.querySelectorAll('#present li bdi')].map((b) => b.textContent))"
    );
    browser
        .wait_until(&format!("{count} listed, {name} {listed}"), &script)
        .await;
}

/// In a room of more than fifty, each join adds its person to the list at
/// once and each leave takes them off, and the page does not fetch the whole
/// list for either (a small room's page fetches it a second after each).
#[tokio::test]
async fn a_big_rooms_list_follows_the_events_without_fetching_everyone() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let a = alice.clone();
    with_screenshots("big_rooms_list", &[&alice], async move {
        // Arrange: a crowd joins, each from an address of its own (the join
        // limit is per address).
        let code = create_room(&a, "Alice").await;
        let mut crowd = Vec::new();
        for i in 0..CROWD {
            let mut user = app.user_from(IpAddr::V4(Ipv4Addr::new(127, 0, 77, i + 1)));
            let joined = user.join(&format!("Person {i}"), &code).await;
            assert_eq!(joined.status(), StatusCode::SEE_OTHER, "Person {i} joins");
            crowd.push(user);
        }
        let everyone = usize::from(CROWD) + 1;
        wait_list(&a, everyone, "Person 54", true).await;
        // The refresh the first fifty's notices asked for has come and gone.
        tokio::time::sleep(PAST_A_SMALL_ROOMS_REFRESH).await;
        let fetched = members_fetched(&a).await;

        // Act: three more join, and one of them leaves, each after the delay
        // at which a small room's page would have fetched the list.
        let mut late = Vec::new();
        for (i, name) in ["Xena", "Yuri", "Zoe"].into_iter().enumerate() {
            let mut user = app.user_from(IpAddr::V4(Ipv4Addr::new(127, 0, 78, 1 + i as u8)));
            let joined = user.join(name, &code).await;
            assert_eq!(joined.status(), StatusCode::SEE_OTHER, "{name} joins");
            wait_list(&a, everyone + i + 1, name, true).await;
            tokio::time::sleep(PAST_A_SMALL_ROOMS_REFRESH).await;
            late.push(user);
        }
        let left = late[0]
            .post_request(&format!("/rooms/{code}/leave"), &[])
            .send()
            .await
            .expect("POST leave");
        assert!(left.status().is_success() || left.status().is_redirection());
        wait_list(&a, everyone + 2, "Xena", false).await;
        tokio::time::sleep(PAST_A_SMALL_ROOMS_REFRESH).await;

        // Assert: four notices, and at most one fetch (the page's own slow
        // refresh, 7.5 s or more apart in a room this size, may fall in these
        // 6 s; a small room's page would have fetched after each notice).
        let fetched_since = members_fetched(&a).await - fetched;
        assert!(
            fetched_since <= 1,
            "the page fetched /members {fetched_since} times for four notices"
        );
    })
    .await;
}
