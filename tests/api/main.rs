//! Black-box tests: the real server on port 0, spoken to over real HTTP
//! (and, where a test says so, the real binary and the real `curl`).

mod helpers;
mod nginx;
mod redis;
mod relay;
mod web;

mod assets;
mod attacks;
mod bad_input;
mod by_the_book;
mod caching;
mod chaos;
mod contract;
mod failover;
mod forms;
mod home;
mod http2;
mod identity;
mod leaving;
mod lifecycle;
mod limits;
mod logs;
mod members;
mod messages;
mod owners;
mod polling;
mod private;
mod proxies;
mod resilience;
mod restarts;
mod room_page;
mod scaling;
mod secured_redis;
mod sessions;
mod sharing;
mod signin;
mod stream;
mod walkthrough;
