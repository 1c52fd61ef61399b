//! Command line and environment: every option has a flag and a `CHAT_*` variable.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{ArgMatches, Args, Command, FromArgMatches, Parser};

use crate::tls::TlsSettings;

/// Real-time chat rooms over Server-Sent Events and plain HTTP POSTs.
#[derive(Debug, Clone, Parser)]
#[command(name = "chat-live-room", version, about)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "CHAT_BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// Seconds a member's (and a room's) last stream may stay away before they
    /// leave (and the room closes). Fractions are allowed; 0 closes at once.
    #[arg(long, env = "CHAT_GRACE", default_value = "5", value_parser = parse_seconds)]
    pub grace: Duration,

    /// Events each room keeps for replay after a reconnect and for its page.
    #[arg(long, env = "CHAT_HISTORY", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub history: u32,

    /// Longest silence, in seconds, before an event stream sends a keep-alive comment.
    #[arg(long, env = "CHAT_KEEPALIVE", default_value = "15", value_parser = parse_positive_seconds)]
    pub keepalive: Duration,

    /// Longest message, in characters.
    #[arg(long, env = "CHAT_MAX_MESSAGE_CHARS", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_message_chars: u32,

    /// Secret the session-cookie key is derived from; random at each start if unset,
    /// which signs everyone out on restart.
    #[arg(long, env = "CHAT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Mark the session cookie `Secure`, so browsers send it over HTTPS only. It
    /// belongs with TLS: use it with --tls-cert/--tls-key, or behind a TLS proxy.
    #[arg(long, env = "CHAT_SECURE_COOKIES")]
    pub secure_cookies: bool,

    #[command(flatten)]
    pub tls: TlsOptions,
}

/// `--tls-cert` and `--tls-key` as given.
#[derive(Debug, Clone, Args)]
struct TlsPaths {
    /// PEM file with the certificate chain, leaf first. With --tls-key, the server
    /// speaks HTTPS on --bind, HTTP/2 (one connection for every tab) and HTTP/1.1.
    #[arg(long, env = "CHAT_TLS_CERT", value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM file with the private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CHAT_TLS_KEY", value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// The certificate and key to serve HTTPS with, if any: read and checked while the
/// command line is parsed, so that a wrong file is a usage error (exit 2) before
/// anything listens, and the server itself cannot fail on them.
#[derive(Clone, Default)]
pub struct TlsOptions(Option<TlsSettings>);

impl TlsOptions {
    /// The loaded certificate and key; `None` serves plain HTTP.
    pub fn settings(&self) -> Option<&TlsSettings> {
        self.0.as_ref()
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromArgMatches for TlsOptions {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let TlsPaths { tls_cert, tls_key } = TlsPaths::from_arg_matches(matches)?;
        match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => TlsSettings::load(&cert, &key)
                .map(|settings| Self(Some(settings)))
                .map_err(|error| clap::Error::raw(ErrorKind::ValueValidation, error)),
            // `requires` makes clap refuse one without the other.
            _ => Ok(Self(None)),
        }
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for TlsOptions {
    fn augment_args(command: Command) -> Command {
        TlsPaths::augment_args(command)
    }

    fn augment_args_for_update(command: Command) -> Command {
        TlsPaths::augment_args_for_update(command)
    }
}

fn parse_seconds(raw: &str) -> Result<Duration, String> {
    let seconds: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{raw} is not between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_positive_seconds(raw: &str) -> Result<Duration, String> {
    let duration = parse_seconds(raw)?;
    if duration < Duration::from_millis(10) {
        return Err(format!("{raw} is too short; give at least 0.01 seconds"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = Config::try_parse_from(["chat-live-room"]).unwrap();
        assert_eq!(config.bind, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(config.grace, Duration::from_secs(5));
        assert_eq!(config.history, 100);
        assert_eq!(config.keepalive, Duration::from_secs(15));
        assert_eq!(config.max_message_chars, 2000);
        assert!(!config.secure_cookies);
        assert!(config.tls.settings().is_none());
    }

    /// `--tls-cert` without `--tls-key`, or the other way round, is refused.
    #[test]
    fn a_tls_certificate_needs_its_key_and_the_other_way_round() {
        for half in [["--tls-cert", "cert.pem"], ["--tls-key", "key.pem"]] {
            // Act
            let parsed = Config::try_parse_from(["x", half[0], half[1]]);

            // Assert
            let error = parsed.expect_err("half of the TLS options is refused");
            assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument, "{half:?}");
        }
    }

    /// A TLS file that cannot be read is a usage error naming the file and its option.
    #[test]
    fn an_unreadable_tls_file_is_a_usage_error_naming_the_file() {
        // Arrange
        let missing = "/nonexistent/chat-live-room/cert.pem";

        // Act
        let parsed = Config::try_parse_from(["x", "--tls-cert", missing, "--tls-key", "key.pem"]);

        // Assert
        let error = parsed.expect_err("a missing certificate is refused");
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        let message = error.to_string();
        assert!(
            message.contains(missing) && message.contains("--tls-cert"),
            "{message}"
        );
    }

    #[test]
    fn durations_accept_fractions_and_refuse_nonsense() {
        let config = Config::try_parse_from(["x", "--grace", "0.5", "--keepalive", "1"]).unwrap();
        assert_eq!(config.grace, Duration::from_millis(500));
        for bad in [["--grace", "-1"], ["--grace", "soon"], ["--keepalive", "0"]] {
            assert!(
                Config::try_parse_from(["x", bad[0], bad[1]]).is_err(),
                "{bad:?}"
            );
        }
        assert!(Config::try_parse_from(["x", "--history", "0"]).is_err());
    }
}
