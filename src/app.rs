//! The running server: state built from the configuration, served on listeners
//! the caller bound (or that it binds from the configuration), until the
//! caller's shutdown signal.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::data_dir::DataDir;
use crate::net;
use crate::rooms::LocalRooms;
use crate::rooms::snapshot::Snapshot;
use crate::routes::routes;
use crate::server::{self, Serving};
use crate::sharing;
use crate::state::AppState;

/// Where the server listens: the app, and the metrics if asked for.
pub struct Listeners {
    pub app: TcpListener,
    /// `--metrics-bind`: Prometheus text at `/metrics`.
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured listeners (`--bind`, `--metrics-bind`), inside a
    /// Tokio runtime (the sockets register with it).
    pub fn bind(config: &Config) -> io::Result<Self> {
        Self::with_app(net::listen(config.bind)?, config)
    }

    /// `app`, and the metrics listener `config` asks for.
    pub fn with_app(app: TcpListener, config: &Config) -> io::Result<Self> {
        let metrics = match config.metrics_bind {
            Some(addr) => Some(net::listen(addr)?),
            None => None,
        };
        Ok(Self { app, metrics })
    }
}

/// Serves the app on `listener` (and the metrics, if configured) until
/// `shutdown` completes. For tests and embedding: a metrics listener that cannot
/// be bound, or a start that fails (an unusable data directory), is logged and
/// ends the call; `main` binds with [`Listeners::bind`] and exits with an error
/// status instead.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let listeners = match Listeners::with_app(listener, &config) {
        Ok(listeners) => listeners,
        Err(error) => {
            tracing::error!(%error, "cannot listen for metrics");
            return;
        }
    };
    if let Err(error) = serve(listeners, config, shutdown).await {
        tracing::error!("cannot start: {error}");
    }
}

/// Serves until `shutdown` completes, then ends every event stream (each with a
/// last `reconnect` event) and waits, at most `--drain-timeout`, for the open
/// connections to finish. With `config.tls` the app speaks HTTPS (HTTP/2 and
/// HTTP/1.1); without, plain HTTP. The metrics are always plain HTTP. An error
/// is why it could not start (nothing was served).
pub async fn serve(
    listeners: Listeners,
    mut config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let bound = listeners.app.local_addr().unwrap_or(config.bind);
    // Locked for as long as this server runs: dropped at the end of `serve`.
    let data = match config.storage.data_dir(config.redis.is_some()) {
        Some(path) => Some(DataDir::open(path).map_err(|error| error.to_string())?),
        None => None,
    };
    if let (None, Some(data)) = (&config.secret, &data) {
        config.secret = Some(data.secret().map_err(|error| error.to_string())?);
    }
    let state = AppState::new(&config)?;
    // The rooms to keep across a restart: the memory rooms, with a data directory.
    let kept = match (&data, state.rooms.local()) {
        (Some(data), Some(rooms)) => {
            restore_rooms(rooms, data, config.storage.restart_grace)?;
            Some((rooms.clone(), data))
        }
        _ => None,
    };
    // A Redis that refuses us (credentials, certificate) is a mistake to stop at.
    state.rooms.check_access().await?;
    let tls = config.tls.settings().map(|tls| tls.acceptor());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("listening on {scheme}://{bound}");
    sharing::log_where_to_reach(&listeners.app, scheme, &config.public_hosts);
    if let Some(proxies) = &config.trust_proxy {
        tracing::info!("believing X-Forwarded-* headers only from the proxies at {proxies}");
    }
    let stopping = CancellationToken::new();
    let streams = state.shutdown.clone();
    let signal = stopping.clone();
    let held = kept.as_ref().map(|(rooms, _)| rooms.clone());
    tokio::spawn(async move {
        shutdown.await;
        // Before the streams end: their ending must not make anyone leave.
        if let Some(rooms) = held {
            rooms.hold();
        }
        // Stop first, then say so: a log write can fail (a closed stdout).
        streams.cancel();
        signal.cancel();
        tracing::info!("shutting down");
    });
    let serving = Serving {
        limits: state.limits.clone(),
        metrics: state.metrics.clone(),
        trust_proxy: config.trust_proxy.clone(),
        count_connections: true,
        tls,
        request_timeout: config.request_timeout,
        send_timeout: config.send_timeout,
        drain_timeout: config.drain_timeout,
    };
    let metrics = listeners.metrics.map(|listener| {
        let address = listener.local_addr().ok();
        if let Some(address) = address {
            tracing::info!("metrics on http://{address}/metrics");
        }
        let serving = Serving {
            tls: None,
            count_connections: false,
            ..serving.clone()
        };
        let routes = state.metrics.routes();
        let stop = stopping.clone();
        tokio::spawn(async move {
            server::serve(listener, serving, routes, stop.cancelled_owned()).await;
        })
    });
    server::serve(
        listeners.app,
        serving,
        routes(state),
        stopping.cancelled_owned(),
    )
    .await;
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    // Every connection has finished (or was dropped): nothing changes the
    // rooms any more, and whatever was acknowledged is in them.
    if let Some((rooms, data)) = kept {
        keep_rooms(&rooms, data);
    }
    Ok(())
}

/// The file in the data directory that holds the rooms from a stop to the next start.
const ROOMS_FILE: &str = "rooms.snapshot";

/// Where an unreadable snapshot is put aside (for whoever wants to look), so
/// that it is not read again.
const UNREADABLE_ROOMS_FILE: &str = "rooms.snapshot.unreadable";

/// Opens the rooms kept at the last stop, if any, and consumes their file
/// before anything is served: a later start (after a crash, say) must not
/// bring back rooms as they were before this run changed them.
fn restore_rooms(rooms: &LocalRooms, data: &DataDir, grace: Duration) -> Result<(), String> {
    let file = data.path().join(ROOMS_FILE);
    let bytes = match data.read(ROOMS_FILE) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(()),
        Err(error) => return Err(format!("cannot read {}: {error}", file.display())),
    };
    let started = Instant::now();
    let consumed = match Snapshot::decode(&bytes).and_then(|snapshot| rooms.import(snapshot, grace))
    {
        Ok(count) => {
            tracing::info!(
                file = %file.display(),
                bytes = bytes.len(),
                took = ?started.elapsed(),
                "restored {count} rooms kept at the last stop"
            );
            data.consume(ROOMS_FILE, None)
        }
        Err(error) => {
            tracing::error!(
                file = %file.display(),
                aside = UNREADABLE_ROOMS_FILE,
                "not restoring the rooms kept at the last stop: {error}"
            );
            data.consume(ROOMS_FILE, Some(UNREADABLE_ROOMS_FILE))
        }
    };
    consumed.map_err(|error| format!("cannot remove {} once read: {error}", file.display()))
}

/// Writes every room down for the next start.
fn keep_rooms(rooms: &LocalRooms, data: &DataDir) {
    let file = data.path().join(ROOMS_FILE);
    let started = Instant::now();
    let snapshot = rooms.export();
    let count = snapshot.rooms.len();
    if count == 0 {
        return;
    }
    let written = snapshot
        .encode()
        .map_err(|error| error.to_string())
        .and_then(|bytes| {
            data.write(ROOMS_FILE, &bytes)
                .map(|()| bytes.len())
                .map_err(|error| error.to_string())
        });
    match written {
        Ok(bytes) => tracing::info!(
            file = %file.display(),
            bytes,
            took = ?started.elapsed(),
            "kept {count} rooms for the next start"
        ),
        Err(error) => tracing::error!(
            file = %file.display(),
            "could not keep the rooms; they end with this run: {error}"
        ),
    }
}
