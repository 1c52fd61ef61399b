//! Command line and environment: every option has a flag and a `CHAT_*` variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

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

    /// Mark the session cookie `Secure` (serve over HTTPS, or behind a TLS proxy).
    #[arg(long, env = "CHAT_SECURE_COOKIES")]
    pub secure_cookies: bool,
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
