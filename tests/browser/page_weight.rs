//! What a room page costs to load, as Chromium counts it: the bytes a first
//! visit transfers (page and assets, compressed where the browser accepts it)
//! and what a repeat visit transfers (the page only: the assets come from the
//! cache without a request, their URLs naming their content). The figures are
//! printed for docs/performance.md ("Page weight").

use serde_json::{Value, json};

use crate::harness::{Browser, with_screenshots};
use crate::scenarios::{create_room, start, wait_connected};

/// Every navigation and resource entry of the page so far: name, type,
/// `transferSize`, `encodedBodySize`, `decodedBodySize`.
const ENTRIES: &str = "return [...performance.getEntriesByType('navigation'), \
     ...performance.getEntriesByType('resource')].map(e => ({ name: e.name, \
     type: e.initiatorType || e.entryType, transfer: e.transferSize, \
     encoded: e.encodedBodySize, decoded: e.decodedBodySize }))";

/// One loaded resource, as the browser counted it.
#[derive(Debug)]
struct Entry {
    name: String,
    transfer: u64,
    encoded: u64,
    decoded: u64,
}

async fn entries(browser: &Browser) -> Vec<Entry> {
    let Value::Array(entries) = browser.js(ENTRIES).await else {
        panic!("performance entries");
    };
    let number = |entry: &Value, key: &str| entry[key].as_u64().unwrap_or(0);
    entries
        .iter()
        .map(|entry| Entry {
            name: entry["name"].as_str().unwrap_or("").to_owned(),
            transfer: number(entry, "transfer"),
            encoded: number(entry, "encoded"),
            decoded: number(entry, "decoded"),
        })
        .collect()
}

/// Prints `entries` and their sums under `visit`.
fn report(visit: &str, entries: &[Entry]) {
    println!("{visit}: name transferSize encodedBodySize decodedBodySize");
    for entry in entries {
        let path = entry.name.splitn(4, '/').nth(3).unwrap_or(&entry.name);
        println!(
            "  /{path} {} {} {}",
            entry.transfer, entry.encoded, entry.decoded
        );
    }
    let sum = |f: fn(&Entry) -> u64| entries.iter().map(f).sum::<u64>();
    println!(
        "  total {} {} {}",
        sum(|e| e.transfer),
        sum(|e| e.encoded),
        sum(|e| e.decoded)
    );
}

/// A first visit to a room page (empty cache) fetches the page, the style,
/// the script and the icon, the style and the script compressed; a repeat
/// visit fetches the page (and the members list the script asks for) alone:
/// the style and the script come from the cache with no request at all
/// (`transferSize` 0), and the icon does not even show as an entry.
#[tokio::test]
async fn a_repeat_visit_to_a_room_fetches_only_the_page() {
    let (app, driver) = start(&[]).await;
    let alice = Browser::open(&driver, &app.url("")).await;
    let a = alice.clone();
    with_screenshots(
        "a_repeat_visit_fetches_only_the_page",
        &[&alice],
        async move {
            // Arrange: a room with a few messages, and a browser cache emptied.
            let code = create_room(&a, "Alice").await;
            for n in 1..=5 {
                a.send(&format!("message number {n} of the measured room"))
                    .await;
            }
            a.wait_for_line("message number 5 of the measured room")
                .await;
            a.goto("/").await;
            a.dev_tools("Network.clearBrowserCache", json!({})).await;
            let room = format!("/rooms/{code}");

            // Act
            a.goto(&room).await;
            wait_connected(&a).await;
            let first = entries(&a).await;
            a.goto("/").await;
            a.goto(&room).await;
            wait_connected(&a).await;
            let repeat = entries(&a).await;

            // Assert
            report("first visit", &first);
            report("repeat visit", &repeat);
            let assets = |entries: &[Entry]| -> Vec<(String, u64, u64, u64)> {
                entries
                    .iter()
                    .filter(|e| e.name.contains("/assets/"))
                    .map(|e| (e.name.clone(), e.transfer, e.encoded, e.decoded))
                    .collect()
            };
            let first_assets = assets(&first);
            assert!(
                first_assets.len() >= 2,
                "the style and the script: {first:?}"
            );
            for (name, transfer, encoded, decoded) in &first_assets {
                assert!(*transfer > 0, "{name} fetched on the first visit");
                if name.ends_with(".css") || name.ends_with(".js") {
                    assert!(
                        encoded < decoded,
                        "{name} compressed: {encoded} of {decoded}"
                    );
                }
            }
            let repeat_assets = assets(&repeat);
            let (css, js) = (".css", ".js");
            for wanted in [css, js] {
                assert!(
                    repeat_assets
                        .iter()
                        .any(|(name, ..)| name.ends_with(wanted)),
                    "the {wanted} asset on the repeat visit: {repeat:?}"
                );
            }
            for (name, transfer, _, _) in &repeat_assets {
                assert_eq!(
                    *transfer, 0,
                    "{name} came from the cache, without a request"
                );
            }
        },
    )
    .await;
}
