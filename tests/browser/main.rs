//! Real-browser tests: two independent headless Chromium sessions, driven through
//! chromedriver, chatting through the real server started on port 0.

#[path = "../api/helpers.rs"]
mod helpers;

mod harness;
mod scenarios;
