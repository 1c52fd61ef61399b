//! Black-box tests: the real server on port 0, spoken to over real HTTP
//! (and, where a test says so, the real binary and the real `curl`).

mod helpers;
mod relay;

mod contract;
mod http2;
mod lifecycle;
mod pages_and_forms;
mod proxies;
mod stream;
mod walkthrough;
