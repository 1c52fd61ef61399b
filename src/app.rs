//! The running server: state built from the configuration, served on a listener
//! the caller bound, until the caller's shutdown signal.

use std::future::Future;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::routes::routes;
use crate::server::{self, Serving};
use crate::state::AppState;

/// Serves the app on `listener` until `shutdown` completes, then ends every event
/// stream and waits (boundedly) for the open connections to finish. With
/// `config.tls` it speaks HTTPS (HTTP/2 and HTTP/1.1); without, plain HTTP.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let bound = listener.local_addr().unwrap_or(config.bind);
    let state = AppState::new(&config, bound.ip());
    let streams = state.shutdown.clone();
    let tls = config.tls.settings().map(|tls| tls.acceptor());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("listening on {scheme}://{bound}");
    if !bound.ip().is_loopback() && config.public_hosts.is_empty() {
        tracing::info!(
            "answering to IP addresses and localhost only: give --public-host NAME for each name people use"
        );
    }
    let stop = async move {
        shutdown.await;
        tracing::info!("shutting down");
        streams.cancel();
    };
    let serving = Serving {
        limits: state.limits.clone(),
        trust_proxy: config.trust_proxy,
        tls,
        request_timeout: config.request_timeout,
        send_timeout: config.send_timeout,
        drain_timeout: config.drain_timeout,
    };
    server::serve(listener, serving, routes(state), stop).await;
}
