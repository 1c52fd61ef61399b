//! Chat Live Room: real-time chat rooms over Server-Sent Events and plain HTTP POSTs.
//!
//! Someone creates a room and gets a four-letter code; friends join with it; each
//! member's `GET /rooms/{CODE}/events` stream receives every message that any member
//! posts with `POST /rooms/{CODE}/messages`. No WebSockets, so it works through
//! proxies that refuse them, from `curl` as well as from a browser.
//!
//! Start it with [`app::run`] on a listener of your own (tests bind port 0).

pub mod access;
pub mod allocator;
pub mod app;
pub mod assets;
pub mod backlog;
pub mod client;
pub mod config;
pub mod data_dir;
pub mod encoding;
pub mod error;
pub mod events;
pub mod handlers;
pub mod head_refusals;
pub mod http;
pub mod input;
pub mod limits;
pub mod links;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod pacing;
pub mod pages;
pub mod passphrase;
pub mod poll;
pub mod proxies;
pub mod rooms;
pub mod route_table;
pub mod routes;
pub mod server;
pub mod session;
pub mod sharing;
pub mod state;
pub mod target;
pub mod tls;

pub use app::run;
pub use config::Config;
