//! axe-core in real Chromium on every page a person meets: the home page, a
//! room link's join page, the room as its owner and as a member once messages
//! and notices are in the log, the page asking before a removal, the page
//! of a member removed, and the error pages, each in light and dark, at desktop
//! size and phone size. Any violation fails the test, listed with the
//! elements it was found on.
//!
//! axe-core comes from npm (`scripts/test` installs it into `.tools/`, which git
//! ignores) and is injected into the page by WebDriver, which no page policy
//! stops; the sizes and colour schemes are set through the DevTools protocol.

use std::path::PathBuf;

use serde_json::json;

use crate::harness::{Browser, with_screenshots};
use crate::scenarios::{create_room, start, wait_connected};

/// Sizes a page is checked at: a desktop window and a phone.
const SIZES: [Size; 2] = [
    Size {
        name: "1280x800",
        width: 1280,
        height: 800,
        mobile: false,
    },
    Size {
        name: "390x844",
        width: 390,
        height: 844,
        mobile: true,
    },
];

const SCHEMES: [&str; 2] = ["light", "dark"];

struct Size {
    name: &'static str,
    width: u32,
    height: u32,
    mobile: bool,
}

fn axe_source() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: `scripts/test` installs axe-core from npm",
            path.display()
        )
    })
}

/// Runs axe-core on the page `browser` shows, at every size and in both
/// colour schemes, and returns one line per violation and element.
async fn violations(browser: &Browser, axe: &str, page: &str) -> Vec<String> {
    browser
        .client
        .execute(&format!("{axe}\nreturn typeof window.axe;"), vec![])
        .await
        .expect("inject axe-core");
    let mut found = Vec::new();
    for size in &SIZES {
        let metrics = json!({
            "width": size.width,
            "height": size.height,
            "deviceScaleFactor": 1,
            "mobile": size.mobile,
        });
        browser
            .dev_tools("Emulation.setDeviceMetricsOverride", metrics)
            .await;
        for scheme in SCHEMES {
            let media =
                json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] });
            browser.dev_tools("Emulation.setEmulatedMedia", media).await;
            let run = r#"
                const done = arguments[arguments.length - 1];
                axe.run(document).then(
                    results => done(results.violations.flatMap(v => v.nodes.map(n =>
                        `${v.id} (${v.impact}): ${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`))),
                    error => done([`axe failed: ${error}`]));
            "#;
            let lines = browser
                .client
                .execute_async(run, vec![])
                .await
                .expect("run axe-core");
            for line in lines.as_array().expect("a list of violations") {
                let line = line.as_str().unwrap_or_default();
                found.push(format!("{page}, {}, {scheme}: {line}", size.name));
            }
        }
    }
    browser
        .dev_tools("Emulation.clearDeviceMetricsOverride", json!({}))
        .await;
    found
}

/// Every page, theme and size: no violations.
#[tokio::test]
async fn every_page_passes_axe_core_in_light_and_dark_on_desktop_and_phone() {
    let axe = axe_source();
    let (app, driver) = start(&[]).await;
    let owner = Browser::open(&driver, &app.url("")).await;
    let member = Browser::open(&driver, &app.url("")).await;
    let guest = Browser::open(&driver, &app.url("")).await;
    let browsers = [&owner, &member, &guest];
    let (o, m, g) = (owner.clone(), member.clone(), guest.clone());
    with_screenshots("accessibility", &browsers, async move {
        let mut found = Vec::new();

        g.goto("/").await;
        found.extend(violations(&g, &axe, "home").await);

        let code = create_room(&o, "Ada").await;
        m.goto(&format!("/rooms/{code}")).await;
        found.extend(violations(&m, &axe, "join page").await);

        m.fill("#name", "Grace").await;
        m.click("form[action='/join'] button[type='submit']").await;
        wait_connected(&m).await;
        o.send("Hello Grace, see https://example.org/notes").await;
        m.send("Hi Ada!").await;
        // A third person comes and goes: the log has notices of both kinds.
        g.goto(&format!("/rooms/{code}")).await;
        g.fill("#name", "Linus").await;
        g.click("form[action='/join'] button[type='submit']").await;
        wait_connected(&g).await;
        g.click("form.leave button").await;
        o.wait_for_line("Hi Ada!").await;
        m.wait_for_line("Hello Grace").await;
        o.wait_for_line("Linus has left the room").await;

        found.extend(violations(&o, &axe, "room as owner").await);
        found.extend(violations(&m, &axe, "room as member").await);

        // The page that asks before a removal (what a browser without
        // JavaScript gets; `submit()` skips the script's own question).
        o.js("document.querySelector('form.remove').submit();")
            .await;
        o.wait_until(
            "the question",
            "document.querySelector('form.actions') !== null",
        )
        .await;
        found.extend(violations(&o, &axe, "remove, asked first").await);
        // Saying yes: the member's page says the room ended for them.
        o.click("form.actions button[type='submit']").await;
        m.wait_until(
            "the closed page",
            "document.getElementById('room').dataset.closed !== undefined",
        )
        .await;
        found.extend(violations(&m, &axe, "removed member").await);

        g.goto("/rooms/QQQQ").await;
        found.extend(violations(&g, &axe, "no such room").await);
        g.goto("/no/such/page").await;
        found.extend(violations(&g, &axe, "not found").await);

        assert!(
            found.is_empty(),
            "axe-core found {} violation(s):\n{}",
            found.len(),
            found.join("\n")
        );
    })
    .await;
}
