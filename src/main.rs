//! `chat-live-room`: parse the options, bind, serve until Ctrl-C or SIGTERM.

use std::future::Future;
use std::process::ExitCode;

use chat_live_room::{Config, app};
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// Our own events at `info`. hyper reports every client that hangs up mid-stream as
/// a connection error; for an event stream that is the normal way to end.
const DEFAULT_LOG: &str = "info,warp::server=off";

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let config = Config::parse();
    // Signal handlers first: a SIGTERM that arrives while we bind must still mean
    // "shut down cleanly", not the default "die".
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(error) => {
            tracing::error!(%error, "cannot listen for shutdown signals");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(config.bind).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(bind = %config.bind, %error, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    app::run(listener, config, shutdown).await;
    ExitCode::SUCCESS
}

/// Registers for SIGINT (Ctrl-C) and SIGTERM; the future completes on either.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
