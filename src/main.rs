//! `chat-live-room`: ask the allocator to give large buffers back, parse the
//! options, start the log, bind, serve until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use chat_live_room::app::{self, Listeners};
use chat_live_room::{Config, allocator, logging};
use clap::Parser;

fn main() -> ExitCode {
    // Before the runtime's threads exist: this may start the process again.
    allocator::give_large_buffers_back();
    serve()
}

#[tokio::main]
async fn serve() -> ExitCode {
    // Options first: they say how to log. A usage error is clap's to print.
    let config = Config::parse();
    logging::init(config.log_format);
    // Signal handlers first: a SIGTERM that arrives while we bind must still mean
    // "shut down cleanly", not the default "die".
    let mut signals = match Signals::register() {
        Ok(signals) => signals,
        Err(error) => {
            tracing::error!(%error, "cannot listen for shutdown signals");
            return ExitCode::FAILURE;
        }
    };
    let listeners = match Listeners::bind(&config) {
        Ok(listeners) => listeners,
        Err(error) => {
            let metrics = config.metrics_bind.map(|addr| addr.to_string());
            tracing::error!(bind = %config.bind, ?metrics, %error, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    // The first signal starts a graceful shutdown, bounded by --drain-timeout; a
    // second one means "now": whoever sends it has stopped waiting.
    let (first, shutdown) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        signals.next().await;
        let _ = first.send(());
        signals.next().await;
        // Exits even if the log line cannot be written (tracing's fallback panics
        // on a closed stderr): the guard's drop runs on the way out either way.
        let _exit = ExitNow;
        tracing::warn!("second signal: exiting at once");
    });
    let served = app::serve(listeners, config, async {
        let _ = shutdown.await;
    })
    .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("cannot start: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Ends the process with status 1 when dropped.
struct ExitNow;

impl Drop for ExitNow {
    fn drop(&mut self) {
        std::process::exit(1);
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, registered once and heard as often as they come.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The next signal of either kind.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn register() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
