//! The log, on standard output: lines for people (`--log-format text`, coloured
//! only on a terminal and never with `NO_COLOR`) or one JSON object per line for
//! log shippers (`--log-format json`), filtered by `RUST_LOG`.
//!
//! The access log (one line per request, see [`crate::access`]) has a target of
//! its own, [`ACCESS_TARGET`], at `debug`: off by default, on with
//! `RUST_LOG=info,warp::server=off,chat_live_room::access=debug`.

use std::ffi::OsString;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Our own events at `info`. hyper reports every client that hangs up mid-stream
/// as a connection error; for an event stream that is the normal way to end.
pub const DEFAULT_FILTER: &str = "info,warp::server=off";

/// The target of the access log's lines.
pub const ACCESS_TARGET: &str = "chat_live_room::access";

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: a time, a level, a target, the message and its fields.
    #[default]
    Text,
    /// For machines: one JSON object per line, its fields at the top level
    /// beside `timestamp`, `level`, `target` and `message`.
    Json,
}

/// Sends the log to standard output in `format`, filtered by `RUST_LOG` (or
/// [`DEFAULT_FILTER`]). Also takes the `log` crate's records (warp's).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => {
            let ansi = colour(
                std::io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR"),
            );
            builder.with_ansi(ansi).init();
        }
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).init(),
    }
}

/// Whether text lines are coloured: only for a terminal, and not when
/// `NO_COLOR` is set to anything but the empty string (no-color.org).
fn colour(terminal: bool, no_color: Option<OsString>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsString::new())));
        assert!(!colour(true, Some(OsString::from("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsString::from("1"))));
    }
}
