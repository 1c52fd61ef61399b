//! Headless Chromium for tests: a chromedriver of the test's own on a free port,
//! one browser per person with a fresh profile, and a screenshot of each when a
//! scenario fails.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::helpers::TempDir;

/// Longest wait for something a person would see happen "at once".
pub const SOON: Duration = Duration::from_secs(10);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process of our own; killed when dropped.
pub struct Chromedriver {
    child: Child,
    pub url: String,
}

impl Chromedriver {
    pub async fn start() -> Self {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: `scripts/test` installs the Debian packages chromium and chromium-driver"
            );
        }
        // With --port=0 chromedriver picks a port for IPv6 and then exits if the
        // same port is taken on IPv4 (seen here about once in thirty starts):
        // try again with another pick.
        for _ in 0..5 {
            if let Some(driver) = Self::try_start().await {
                return driver;
            }
        }
        panic!("chromedriver did not start in five attempts");
    }

    async fn try_start() -> Option<Self> {
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let port = tokio::time::timeout(SOON, async {
            let mut seen = String::new();
            let mut buffer = [0u8; 1024];
            loop {
                let n = stdout
                    .read(&mut buffer)
                    .await
                    .expect("read chromedriver output");
                if n == 0 {
                    eprintln!("chromedriver exited early: {seen}");
                    return None;
                }
                seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
                if let Some(port) = started_port(&seen) {
                    return Some(port);
                }
            }
        })
        .await
        .expect("chromedriver starts or exits within the patience period")?;
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink).await;
        });
        Some(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }
}

fn started_port(output: &str) -> Option<u16> {
    let rest = output.split("started successfully on port ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if rest.len() > digits.len() {
        digits.parse().ok()
    } else {
        None
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// One person's browser: its own Chromium, its own profile, its own cookies.
#[derive(Clone)]
pub struct Browser {
    pub client: Client,
    /// Where this person's browser reaches the server, e.g. `http://127.0.0.1:PORT`.
    pub base: String,
    profile: Arc<TempDir>,
}

impl Browser {
    /// A new browser reaching the server at `base`.
    pub async fn open(driver: &Chromedriver, base: &str) -> Self {
        Self::open_with(driver, base, true).await
    }

    /// A new browser with JavaScript switched off.
    pub async fn open_without_javascript(driver: &Chromedriver, base: &str) -> Self {
        Self::open_with(driver, base, false).await
    }

    async fn open_with(driver: &Chromedriver, base: &str, javascript: bool) -> Self {
        let profile = TempDir::new("chat-browser-profile");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--window-size=1100,800",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut chrome_options = json!({ "binary": CHROMIUM, "args": args });
        if !javascript {
            chrome_options["prefs"] =
                json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), chrome_options);
        // An alert left open must fail the test, not be dismissed quietly.
        capabilities.insert("unhandledPromptBehavior".into(), json!("ignore"));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a Chromium session");
        Self {
            client,
            base: base.to_owned(),
            profile: Arc::new(profile),
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigate");
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .path()
            .to_owned()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("clear field");
        field.send_keys(text).await.expect("type");
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("run script")
    }

    /// Waits until `script` (a JS expression) is truthy; fails after [`SOON`].
    pub async fn wait_until(&self, what: &str, script: &str) {
        self.wait_until_within(SOON, what, script).await;
    }

    /// Waits until `script` (a JS expression) is truthy; fails after `patience`.
    pub async fn wait_until_within(&self, patience: Duration, what: &str, script: &str) {
        let deadline = tokio::time::Instant::now() + patience;
        let body = format!("return !!({script});");
        loop {
            if let Ok(Value::Bool(true)) = self.client.execute(&body, vec![]).await {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {patience:?} for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of every element matching `css`, in order. Uses WebDriver
    /// queries, not page scripts, so it works with JavaScript off.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await.expect(css) {
            texts.push(element.text().await.expect("element text"));
        }
        texts
    }

    /// Every line of the message log as the reader sees it, but for our own
    /// messages still marked as sending (the server has not sent them back).
    pub async fn log_lines(&self) -> Vec<String> {
        self.texts("#log > li:not(.pending)").await
    }

    /// The texts of the messages in the log, in order, but for those still
    /// marked as sending.
    pub async fn message_texts(&self) -> Vec<String> {
        self.texts("#log .msg:not(.pending) .text").await
    }

    /// The texts of our own messages still marked as sending, in order.
    pub async fn pending_texts(&self) -> Vec<String> {
        self.texts("#log .msg.pending .text").await
    }

    /// The names in the people list, in order (opened first where it is
    /// folded, as on a phone: WebDriver reads nothing in a closed fold).
    pub async fn present(&self) -> Vec<String> {
        self.open_people().await;
        self.texts("#present li bdi").await
    }

    /// Opens the people list where it is folded ("3 here"), as a person
    /// would; works with JavaScript off.
    pub async fn open_people(&self) {
        let people = self
            .client
            .find(Locator::Css("#people"))
            .await
            .expect("the people list");
        if people.attr("open").await.expect("open or not").is_none() {
            self.click("#people-count").await;
        }
    }

    /// The people list: each name, and whether it is marked connected. Uses
    /// WebDriver queries, so it works with JavaScript off.
    pub async fn presence(&self) -> Vec<(String, bool)> {
        self.open_people().await;
        // The script redraws the list when its stream opens: an element read a
        // moment too late is gone. Read the whole list again when that happens.
        for _ in 0..20 {
            if let Ok(people) = self.read_presence().await {
                return people;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the people list kept changing while it was read");
    }

    async fn read_presence(&self) -> Result<Vec<(String, bool)>, fantoccini::error::CmdError> {
        let mut people = Vec::new();
        for item in self.client.find_all(Locator::Css("#present li")).await? {
            let name = item.find(Locator::Css("bdi")).await?.text().await?;
            let mark = item.attr("data-connected").await?;
            people.push((name, mark.as_deref() == Some("true")));
        }
        Ok(people)
    }

    /// Waits until the browser is at `path` (a navigation has finished).
    pub async fn wait_for_path(&self, path: &str) {
        let deadline = tokio::time::Instant::now() + SOON;
        while self.path().await != path {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {SOON:?} to reach {path}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn text_of(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .expect("text")
    }

    pub async fn page_source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Waits until the log shows a line containing `text` (not one of ours
    /// still marked as sending).
    pub async fn wait_for_line(&self, text: &str) {
        let script = format!(
            "[...document.querySelectorAll('#log > li:not(.pending)')].some(li => li.textContent.includes({}))",
            json!(text)
        );
        self.wait_until(&format!("a log line with {text:?}"), &script)
            .await;
    }

    /// Types a message and presses Enter, as a person would.
    pub async fn send(&self, text: &str) {
        let field = self
            .client
            .find(Locator::Css("#message"))
            .await
            .expect("message field");
        field
            .send_keys(&format!("{text}\u{E007}"))
            .await
            .expect("type and press Enter");
    }

    pub async fn screenshot(&self, path: &Path) {
        if let Ok(png) = self.client.screenshot().await {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(path, png);
        }
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// Runs a scenario; if it fails, saves a screenshot of every browser in
/// `target/browser-screenshots/` before failing the test.
pub async fn with_screenshots<F>(name: &str, browsers: &[&Browser], scenario: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(scenario).await;
    if outcome.is_err() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
        for (i, browser) in browsers.iter().enumerate() {
            let path = dir.join(format!("{name}-{i}.png"));
            browser.screenshot(&path).await;
            eprintln!("screenshot saved: {}", path.display());
        }
    }
    // Closing the sessions ends their Chromium processes.
    for browser in browsers {
        let _ = browser.client.clone().close().await;
    }
    if let Err(failure) = outcome {
        match failure.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("scenario {name} did not finish: {error}"),
        }
    }
}

/// A phone's viewport, in CSS pixels.
pub const PHONE: (u32, u32) = (390, 844);

/// A desktop browser's viewport, in CSS pixels.
pub const DESKTOP: (u32, u32) = (1280, 800);

/// A Chrome DevTools Protocol command, sent through chromedriver's own
/// WebDriver extension (`POST /session/{id}/goog/cdp/execute`).
#[derive(Debug)]
struct DevTools {
    method: String,
    params: Value,
}

/// `url`'s parse error, named through reqwest's re-export of its `Url`.
type UrlError = <reqwest::Url as std::str::FromStr>::Err;

impl fantoccini::wd::WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, UrlError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (hyper::Method, Option<String>) {
        let body = json!({ "cmd": self.method, "params": self.params });
        (hyper::Method::POST, Some(body.to_string()))
    }
}

impl Browser {
    /// Runs a DevTools Protocol command in this browser's page; its result.
    pub async fn dev_tools(&self, method: &str, params: Value) -> Value {
        let command = DevTools {
            method: method.to_owned(),
            params,
        };
        self.client
            .issue_cmd(command)
            .await
            .unwrap_or_else(|e| panic!("DevTools {method}: {e}"))
    }

    /// Minimises the browser's window (`hidden`, as a tab in the background
    /// is), or shows it again, as the DevTools Protocol does it; then waits
    /// until the page's `document.visibilityState` says so.
    pub async fn set_page_hidden(&self, hidden: bool) {
        let window = self
            .dev_tools("Browser.getWindowForTarget", json!({}))
            .await;
        let state = if hidden { "minimized" } else { "normal" };
        let bounds = json!({ "windowId": window["windowId"], "bounds": { "windowState": state } });
        self.dev_tools("Browser.setWindowBounds", bounds).await;
        let wanted = if hidden { "hidden" } else { "visible" };
        let check = format!("document.visibilityState === '{wanted}'");
        self.wait_until(&format!("the page {wanted}"), &check).await;
    }
}

impl Browser {
    /// Sizes the window so that the page's viewport is `width` × `height` CSS
    /// pixels, as on a phone (the window's own frame, if any, is added).
    pub async fn set_viewport_size(&self, (width, height): (u32, u32)) {
        let size = |value: &Value, i: usize| value[i].as_u64().and_then(|v| u32::try_from(v).ok());
        let (mut window_w, mut window_h) = (width, height);
        for _ in 0..3 {
            self.client
                .set_window_size(window_w, window_h)
                .await
                .expect("window size");
            let inner = self.js("return [innerWidth, innerHeight];").await;
            let (Some(w), Some(h)) = (size(&inner, 0), size(&inner, 1)) else {
                panic!("the viewport's size: {inner}");
            };
            if (w, h) == (width, height) {
                return;
            }
            window_w = (window_w + width).saturating_sub(w);
            window_h = (window_h + height).saturating_sub(h);
        }
        panic!("could not make the viewport {width}x{height}");
    }
}
