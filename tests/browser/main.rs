//! Real-browser tests: two independent headless Chromium sessions, driven through
//! chromedriver, chatting through the real server started on port 0.

#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/nginx.rs"]
mod nginx;
#[path = "../api/redis.rs"]
mod redis;
#[path = "../api/relay.rs"]
mod relay;

mod accessibility;
mod harness;
mod holding;
mod home;
mod messages;
mod owners;
mod page_weight;
mod phone;
mod presence;
mod resilience;
mod restarts;
mod scenarios;
mod sending;
