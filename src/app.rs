//! The running server: state built from the configuration, served on a listener
//! the caller bound, until the caller's shutdown signal.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::pages::Pages;
use crate::rooms::{RoomSettings, Rooms};
use crate::routes::routes;
use crate::session::SessionCookies;

/// How long a room, or a member, may exist without ever opening a stream.
const UNCLAIMED_TIMEOUT: Duration = Duration::from_secs(60);

/// Limits that handlers apply to each request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message_chars: u32,
    pub keepalive: Duration,
}

/// Everything a handler may use; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub rooms: Rooms,
    pub cookies: SessionCookies,
    pub pages: Pages,
    pub limits: Limits,
    /// Cancelled when shutdown begins, so that every event stream ends itself:
    /// graceful shutdown (warp's, or ours over TLS) waits for open connections
    /// to finish.
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(config: &Config) -> Self {
        let history = config.history as usize;
        Self {
            rooms: Rooms::new(RoomSettings {
                grace: config.grace,
                unclaimed_timeout: UNCLAIMED_TIMEOUT,
                history,
                channel_capacity: history.max(64),
            }),
            cookies: SessionCookies::new(config.secret.as_deref(), config.secure_cookies),
            pages: Pages::new().expect("the views in views/ compile"),
            limits: Limits {
                max_message_chars: config.max_message_chars,
                keepalive: config.keepalive,
            },
            shutdown: CancellationToken::new(),
        }
    }
}

/// Serves the app on `listener` until `shutdown` completes, then ends every event
/// stream and waits for the open connections to finish. With `config.tls` it
/// speaks HTTPS (HTTP/2 and HTTP/1.1, see [`crate::tls`]); without, plain HTTP.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let state = AppState::new(&config);
    let streams = state.shutdown.clone();
    let tls = config.tls.settings();
    if let Ok(addr) = listener.local_addr() {
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!("listening on {scheme}://{addr}");
    }
    let stop = async move {
        shutdown.await;
        tracing::info!("shutting down");
        streams.cancel();
    };
    match tls {
        Some(tls) => crate::tls::serve(listener, tls, routes(state), stop).await,
        None => {
            warp::serve(routes(state))
                .incoming(listener)
                .graceful(stop)
                .run()
                .await
        }
    }
}
