//! Command line and environment: every option has a flag and a `CHAT_*` variable.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{ArgMatches, Args, Command, FromArgMatches, Parser};
use warp::http::HeaderName;

use crate::logging::LogFormat;
use crate::proxies::{self, TrustedProxies};
use crate::rooms::shared::RedisAddress;
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

    /// Longest silence, in seconds, before an event stream sends a heartbeat
    /// (event: heartbeat), which shows clients the stream is alive and keeps
    /// idle proxies from closing it.
    #[arg(long, env = "CHAT_KEEPALIVE", default_value = "15", value_parser = parse_positive_seconds)]
    pub keepalive: Duration,

    /// Longest message, in characters.
    #[arg(long, env = "CHAT_MAX_MESSAGE_CHARS", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_message_chars: u32,

    /// Secret the session-cookie key is derived from. Unset, a secret made once
    /// and kept in --data-dir is used (with --ephemeral: a random one at each
    /// start, which signs everyone out on restart).
    #[arg(long, env = "CHAT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Mark the session cookie `Secure`, so browsers send it over HTTPS only. It
    /// belongs with TLS: use it with --tls-cert/--tls-key, or behind a TLS proxy.
    #[arg(long, env = "CHAT_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// How long a session cookie stays valid after the server last set it, e.g.
    /// `30d`, `12h`, `90m` or seconds. Joining a room renews it.
    #[arg(long, env = "CHAT_SESSION_MAX_AGE", default_value = "30d", value_parser = parse_age)]
    pub session_max_age: Duration,

    /// A host name this server answers to (repeatable; comma-separated in the
    /// variable), e.g. `chat.example.com`. Requests for any other name are refused
    /// with 421, which stops DNS rebinding; `localhost` and IP addresses (such as
    /// this machine's LAN address) always work.
    #[arg(long = "public-host", env = "CHAT_PUBLIC_HOST", value_name = "NAME",
          value_delimiter = ',', value_parser = parse_host_name)]
    pub public_hosts: Vec<String>,

    /// Believe the X-Forwarded-For, -Host and -Proto headers (and
    /// --identity-header) on connections from these reverse proxies only:
    /// addresses or CIDR ranges, comma-separated, e.g. `127.0.0.1,10.0.0.0/8,::1`.
    /// Bare `--trust-proxy` trusts loopback only (127.0.0.1 and ::1: a proxy on
    /// this machine). The client address for the limits is then the last one in
    /// X-Forwarded-For; from any other peer the headers are ignored, and its own
    /// address counts.
    #[arg(long, env = "CHAT_TRUST_PROXY", value_name = "ADDRESSES", num_args = 0..=1,
          default_missing_value = proxies::LOOPBACK, value_parser = TrustedProxies::parse)]
    pub trust_proxy: Option<TrustedProxies>,

    /// Take each person's name from this request header, set by the sign-in
    /// proxy in front (e.g. `X-Remote-User` from nginx's `$remote_user`): names
    /// can then be neither chosen nor faked, and a request without the header,
    /// or from a peer not in `--trust-proxy` (which this needs), is refused
    /// with 401. The proxy must set (or clear) the header on every request.
    #[arg(long, env = "CHAT_IDENTITY_HEADER", value_name = "NAME",
          requires = "trust_proxy", value_parser = parse_header_name)]
    pub identity_header: Option<HeaderName>,

    /// Longest a long poll (`GET /rooms/{CODE}/poll`) waits for an event before it
    /// answers with none, in seconds. Keep it under the idle timeouts of proxies.
    #[arg(long, env = "CHAT_POLL_WAIT", default_value = "20", value_parser = parse_positive_seconds)]
    pub poll_wait: Duration,

    /// Seconds a client may take to send a request's headers, and its body. An
    /// idle keep-alive connection (HTTP/1.1), or an HTTP/2 connection with no
    /// open stream, is closed after as long.
    #[arg(long, env = "CHAT_REQUEST_TIMEOUT", default_value = "10", value_parser = parse_positive_seconds)]
    pub request_timeout: Duration,

    /// Seconds a client may leave data we sent it untaken before its connection
    /// is closed (a stalled or vanished reader), or, over HTTP/2, before the
    /// stream whose window it keeps shut is reset; its streams then count as closed.
    #[arg(long, env = "CHAT_SEND_TIMEOUT", default_value = "30", value_parser = parse_positive_seconds)]
    pub send_timeout: Duration,

    /// Seconds shutdown waits for requests in flight once every stream was told
    /// to reconnect; connections still open then are dropped.
    #[arg(long, env = "CHAT_DRAIN_TIMEOUT", default_value = "5", value_parser = parse_seconds)]
    pub drain_timeout: Duration,

    /// Address for a second listener serving Prometheus metrics at /metrics
    /// (off unless given; port 0 picks one, named in the start-up log).
    #[arg(long, env = "CHAT_METRICS_BIND", value_name = "ADDR")]
    pub metrics_bind: Option<SocketAddr>,

    /// How log lines are written to standard output: `text` for people
    /// (coloured only on a terminal, never with NO_COLOR set), `json` for log
    /// shippers (one object per line). RUST_LOG filters either.
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Keep rooms in this Redis (`redis://HOST:PORT/`), shared by every
    /// instance given the same one, so that several instances behind a load
    /// balancer serve the same rooms. Every instance must have the same
    /// --secret; see docs/scaling.md. `rediss://` speaks TLS; an ACL user and
    /// password go in the URL (`redis://USER:PASSWORD@HOST:PORT/`).
    /// `redis+sentinel://[USER:PASSWORD@]HOST:PORT,HOST:PORT/SERVICE` uses the
    /// primary that these Redis Sentinels name SERVICE, through failovers.
    #[arg(long, env = "CHAT_REDIS_URL", value_name = "URL", requires = "secret",
          value_parser = RedisAddress::parse)]
    pub redis: Option<RedisAddress>,

    /// With --redis: acknowledge a change (a message sent, a room made, a
    /// join) only once this many replicas of the primary confirm they have it
    /// (Redis's WAIT, up to a second; then 503), so that it survives the
    /// primary's loss in a failover. Costs a replication round trip per
    /// change; see docs/scaling.md.
    #[arg(
        long,
        env = "CHAT_REDIS_REPLICAS",
        value_name = "N",
        default_value = "0",
        requires = "redis"
    )]
    pub redis_replicas: u32,

    /// With --redis: how long an instance's hold on its members' streams lasts
    /// in Redis without being renewed (each instance renews every third of it).
    /// After a crash, members who do not come back elsewhere leave within
    /// about this; a Redis outage longer than about two thirds of it ends
    /// memberships. Longer rides out longer outages and notices crashes later.
    #[arg(long, env = "CHAT_PRESENCE_LEASE", value_name = "SECONDS", default_value = "10",
          value_parser = parse_lease)]
    pub presence_lease: Duration,

    /// With a `rediss://` --redis: PEM file with the certificate authority
    /// that signed Redis's certificate, trusted instead of the system's (for a
    /// private CA, as Redis's own TLS set-up makes one).
    #[arg(long, env = "CHAT_REDIS_CA", value_name = "FILE", requires = "redis",
          value_parser = parse_ca_file)]
    pub redis_ca: Option<CaCertificates>,

    #[command(flatten)]
    pub storage: StorageOptions,

    #[command(flatten)]
    pub limits: LimitOptions,

    #[command(flatten)]
    pub tls: TlsOptions,
}

/// What outlives a restart of this process, and where it is kept.
#[derive(Debug, Clone, Args)]
pub struct StorageOptions {
    /// Directory (created if missing; relative paths from the working
    /// directory) holding what outlives a restart: the session secret, unless
    /// --secret is given, and the rooms between a stop and the next start. Not
    /// used with --redis, which keeps both elsewhere.
    #[arg(
        long,
        env = "CHAT_DATA_DIR",
        value_name = "DIR",
        default_value = "chat-data",
        conflicts_with = "ephemeral"
    )]
    pub data_dir: PathBuf,

    /// Write nothing anywhere: a random secret at each start (everyone is
    /// signed out by a restart), and rooms end when the server stops.
    #[arg(long, env = "CHAT_EPHEMERAL")]
    pub ephemeral: bool,

    /// Seconds after a start during which the members of rooms kept across a
    /// restart count as present: nobody is told they left or joined because
    /// of the restart, and whoever has not reconnected by then leaves.
    #[arg(long, env = "CHAT_RESTART_GRACE", value_name = "SECONDS", default_value = "60",
          value_parser = parse_seconds)]
    pub restart_grace: Duration,
}

impl StorageOptions {
    /// The data directory this configuration uses: none when ephemeral, or
    /// with --redis (which holds the rooms and needs --secret).
    pub fn data_dir(&self, redis: bool) -> Option<&std::path::Path> {
        (!self.ephemeral && !redis).then_some(self.data_dir.as_path())
    }
}

/// What one client, and everyone together, may take. Every default is far above
/// what a real group of people does; docs/security.md explains each one.
#[derive(Debug, Clone, Args)]
pub struct LimitOptions {
    /// Most rooms open at once (then 503).
    #[arg(long, env = "CHAT_MAX_ROOMS", default_value_t = 10_000, value_parser = at_least_one)]
    pub max_rooms: usize,

    /// Most members in one room (then 503).
    #[arg(long, env = "CHAT_MAX_MEMBERS_PER_ROOM", default_value_t = 10_000, value_parser = at_least_one)]
    pub max_members_per_room: usize,

    /// Bytes of events one room keeps for replay and for its page, besides
    /// --history's count: the oldest go first beyond it (100 messages of 2,000
    /// plain characters fit in the default). Bytes, or with K, M or G (KiB,
    /// MiB, GiB).
    #[arg(long, env = "CHAT_HISTORY_BYTES", value_name = "BYTES", default_value = "256K",
          value_parser = parse_bytes)]
    pub history_bytes: usize,

    /// Bytes of events all rooms together keep. Once reached, new rooms are
    /// refused (503) and a room's new events push out its own oldest. Bytes,
    /// or with K, M or G.
    #[arg(long, env = "CHAT_MAX_HISTORY_BYTES", value_name = "BYTES", default_value = "512M",
          value_parser = parse_bytes)]
    pub max_history_bytes: usize,

    /// Most open connections in all (further ones are answered 503 and closed).
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = at_least_one)]
    pub max_connections: usize,

    /// Most open connections from one client address (then 429). Not applied
    /// to connections from the proxies of --trust-proxy.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256, value_parser = at_least_one)]
    pub max_connections_per_address: usize,

    /// Most open event streams from one client address (then 429).
    #[arg(long, env = "CHAT_MAX_STREAMS_PER_ADDRESS", default_value_t = 256, value_parser = at_least_one)]
    pub max_streams_per_address: usize,

    /// Most open event streams of one session, all rooms together (then 429).
    #[arg(long, env = "CHAT_MAX_STREAMS_PER_SESSION", default_value_t = 32, value_parser = at_least_one)]
    pub max_streams_per_session: usize,

    /// Most rooms one session may be a member of at once (then 429). At most 40:
    /// the cookie holds a pass for each, and browsers keep cookies up to 4 KiB.
    #[arg(long, env = "CHAT_MAX_ROOMS_PER_SESSION", default_value_t = 20,
          value_parser = clap::value_parser!(u16).range(1..=40))]
    pub max_rooms_per_session: u16,

    /// Steady rate of messages per member, as `N/s`, `N/min` or `N/h`.
    #[arg(long, env = "CHAT_MESSAGE_RATE", default_value = "1/s", value_parser = parse_rate)]
    pub message_rate: Rate,

    /// Messages a member may send at once before the steady rate applies.
    #[arg(long, env = "CHAT_MESSAGE_BURST", default_value = "20")]
    pub message_burst: NonZeroU32,

    /// Steady rate of long polls per member (a poll that waits for news takes
    /// one; a client that keeps up gets a batch of events with each).
    #[arg(long, env = "CHAT_POLL_RATE", default_value = "4/s", value_parser = parse_rate)]
    pub poll_rate: Rate,

    /// Long polls a member may make at once before the steady rate applies.
    #[arg(long, env = "CHAT_POLL_BURST", default_value = "20")]
    pub poll_burst: NonZeroU32,

    /// Steady rate of room pages per member: each render holds the room's
    /// whole history until the client has taken it.
    #[arg(long, env = "CHAT_PAGE_RATE", default_value = "1/s", value_parser = parse_rate)]
    pub page_rate: Rate,

    /// Room pages a member may load at once before the steady rate applies.
    #[arg(long, env = "CHAT_PAGE_BURST", default_value = "20")]
    pub page_burst: NonZeroU32,

    /// Steady rate of rooms created per client address.
    #[arg(long, env = "CHAT_CREATE_RATE", default_value = "1/min", value_parser = parse_rate)]
    pub create_rate: Rate,

    /// Rooms one address may create at once before the steady rate applies.
    #[arg(long, env = "CHAT_CREATE_BURST", default_value = "10")]
    pub create_burst: NonZeroU32,

    /// Steady rate of joins per client address.
    #[arg(long, env = "CHAT_JOIN_RATE", default_value = "30/min", value_parser = parse_rate)]
    pub join_rate: Rate,

    /// Joins one address may make at once before the steady rate applies.
    #[arg(long, env = "CHAT_JOIN_BURST", default_value = "60")]
    pub join_burst: NonZeroU32,

    /// Steady rate of guesses per client address: requests about a room from
    /// someone who is not a member of it, whether or not the room exists. The
    /// /64s of an IPv6 /56 and of a /48 share this rate (and twice and four
    /// times the burst); the same holds for rooms created and joins.
    #[arg(long, env = "CHAT_GUESS_RATE", default_value = "6/min", value_parser = parse_rate)]
    pub guess_rate: Rate,

    /// Guesses one address may make at once before the steady rate applies.
    #[arg(long, env = "CHAT_GUESS_BURST", default_value = "30")]
    pub guess_burst: NonZeroU32,
}

/// A steady rate: one more allowed every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub interval: Duration,
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

fn at_least_one(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{raw:?} is not a whole number of at least 1")),
    }
}

/// A size in bytes, plain or with `K`, `M` or `G` (binary: `KiB`, `MiB` and
/// `GiB` are the same), from 1 KiB to 1 TiB.
fn parse_bytes(raw: &str) -> Result<usize, String> {
    let refusal = || format!("{raw:?} is not a size like 262144, 256K, 512M or 1G");
    let text = raw.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| refusal())?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(refusal()),
    };
    match number.checked_mul(1 << shift) {
        Some(bytes) if (1 << 10..=1 << 40).contains(&bytes) => {
            usize::try_from(bytes).map_err(|_| refusal())
        }
        _ => Err(format!("{raw}: give between 1K and 1024G")),
    }
}

/// `N/s`, `N/min` or `N/h` (also `N/second`, `N/minute`, `N/hour`).
fn parse_rate(raw: &str) -> Result<Rate, String> {
    let refusal = || format!("{raw:?} is not a rate like 10/min, 1/s or 100/h");
    let (count, unit) = raw.trim().split_once('/').ok_or_else(refusal)?;
    let count: u32 = count.trim().parse().map_err(|_| refusal())?;
    let unit = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(refusal()),
    };
    if count == 0 || count > 1_000_000 {
        return Err(format!("{raw}: give between 1 and 1000000 per unit"));
    }
    Ok(Rate {
        interval: unit / count,
    })
}

/// A duration with a unit (`30d`, `12h`, `90m`, `45s`) or plain seconds.
fn parse_age(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let refusal = || format!("{raw:?} is not a duration like 30d, 12h, 90m or 3600");
    let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => raw.split_at(at),
        None => (raw, "s"),
    };
    let number: u64 = number.parse().map_err(|_| refusal())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(refusal()),
    };
    match number.checked_mul(unit) {
        Some(seconds) if (60..=400 * 86_400).contains(&seconds) => Ok(Duration::from_secs(seconds)),
        _ => Err(format!("{raw} is not between a minute and 400 days")),
    }
}

/// A presence lease: at least 3 seconds (renewed every second at most), at most a day.
fn parse_lease(raw: &str) -> Result<Duration, String> {
    let lease = parse_seconds(raw)?;
    if !(Duration::from_secs(3)..=Duration::from_secs(86_400)).contains(&lease) {
        return Err(format!("{raw} is not between 3 and 86400 seconds"));
    }
    Ok(lease)
}

/// The certificates of a certificate authority, in PEM, as read at start.
#[derive(Clone)]
pub struct CaCertificates(pub Vec<u8>);

impl fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaCertificates({} bytes)", self.0.len())
    }
}

/// A PEM file holding at least one certificate, read while the command line
/// is parsed, so that a wrong file is a usage error before anything starts.
fn parse_ca_file(raw: &str) -> Result<CaCertificates, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let pem = std::fs::read(raw).map_err(|error| format!("cannot read {raw}: {error}"))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{raw} is not a PEM file of certificates: {error}"))?;
    if certificates.is_empty() {
        return Err(format!(
            "{raw} holds no certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(CaCertificates(pem))
}

/// A host name as a browser puts it in `Host`, without port: lower case.
fn parse_header_name(raw: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(raw.trim().as_bytes())
        .map_err(|_| format!("{raw:?} is not a header name"))
}

fn parse_host_name(raw: &str) -> Result<String, String> {
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if valid {
        Ok(name)
    } else {
        Err(format!(
            "{raw:?} is not a host name like chat.example.com (no scheme, no port)"
        ))
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
        assert_eq!(config.session_max_age, Duration::from_secs(30 * 86_400));
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert_eq!(config.send_timeout, Duration::from_secs(30));
        assert_eq!(config.drain_timeout, Duration::from_secs(5));
        assert_eq!(config.metrics_bind, None);
        assert_eq!(config.poll_wait, Duration::from_secs(20));
        assert_eq!(config.storage.data_dir, PathBuf::from("chat-data"));
        assert!(!config.storage.ephemeral);
        assert_eq!(config.storage.restart_grace, Duration::from_secs(60));
        assert!(config.public_hosts.is_empty());
        assert_eq!(config.trust_proxy, None);
        let limits = config.limits;
        assert_eq!(limits.history_bytes, 256 << 10);
        assert_eq!(limits.max_history_bytes, 512 << 20);
        assert_eq!(limits.max_rooms, 10_000);
        assert_eq!(limits.max_members_per_room, 10_000);
        assert_eq!(limits.max_connections, 10_000);
        assert_eq!(limits.max_connections_per_address, 256);
        assert_eq!(limits.max_streams_per_address, 256);
        assert_eq!(limits.max_streams_per_session, 32);
        assert_eq!(limits.max_rooms_per_session, 20);
        assert_eq!(limits.message_rate.interval, Duration::from_secs(1));
        assert_eq!(limits.message_burst.get(), 20);
        assert_eq!(limits.poll_rate.interval, Duration::from_millis(250));
        assert_eq!(limits.poll_burst.get(), 20);
        assert_eq!(limits.page_rate.interval, Duration::from_secs(1));
        assert_eq!(limits.page_burst.get(), 20);
        assert_eq!(limits.create_rate.interval, Duration::from_secs(60));
        assert_eq!(limits.create_burst.get(), 10);
        assert_eq!(limits.join_rate.interval, Duration::from_secs(2));
        assert_eq!(limits.join_burst.get(), 60);
        assert_eq!(limits.guess_rate.interval, Duration::from_secs(10));
        assert_eq!(limits.guess_burst.get(), 30);
    }

    #[test]
    fn rates_ages_and_host_names_are_read_or_refused() {
        assert_eq!(
            parse_rate("10/min").unwrap().interval,
            Duration::from_secs(6)
        );
        assert_eq!(
            parse_rate(" 2/s ").unwrap().interval,
            Duration::from_millis(500)
        );
        for bad in ["", "10", "0/s", "x/s", "10/day", "-1/s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_age("3600").unwrap(), Duration::from_secs(3600));
        for bad in ["", "d", "5x", "1s", "999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_host_name("Chat.Example.COM.").unwrap(),
            "chat.example.com"
        );
        for bad in ["", "http://x", "x:80", "a b"] {
            assert!(parse_host_name(bad).is_err(), "{bad:?}");
        }
        let config = Config::try_parse_from([
            "x",
            "--public-host",
            "a.example",
            "--public-host",
            "b.example",
        ])
        .unwrap();
        assert_eq!(config.public_hosts, ["a.example", "b.example"]);
    }

    /// `--trust-proxy` takes a list of addresses and ranges; bare, it trusts
    /// loopback only; anything else (an old `true`) is a usage error saying what
    /// it takes.
    #[test]
    fn trust_proxy_takes_addresses_and_bare_means_loopback() {
        let trusted = |argv: &[&str]| {
            Config::try_parse_from([&["x"], argv].concat())
                .map(|config| config.trust_proxy.map(|t| t.to_string()))
        };
        assert_eq!(
            trusted(&["--trust-proxy", "10.0.0.0/8,::1"])
                .unwrap()
                .as_deref(),
            Some("10.0.0.0/8,::1")
        );
        let bare = trusted(&["--trust-proxy", "--public-host", "a.example"]).unwrap();
        assert_eq!(bare.as_deref(), Some("127.0.0.1,::1"));
        let last = trusted(&["--public-host", "a.example", "--trust-proxy"]).unwrap();
        assert_eq!(last.as_deref(), Some("127.0.0.1,::1"));
        for bad in ["true", "10.0.0.0/40", "10.0.0.1/8"] {
            let error = trusted(&["--trust-proxy", bad]).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::ValueValidation, "{bad}");
            assert!(error.to_string().contains("--trust-proxy"), "{error}");
        }
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
        let sizes = |flag: &str, value: &str| {
            Config::try_parse_from(["x", flag, value]).map(|c| {
                let limits = c.limits;
                (limits.history_bytes, limits.max_history_bytes)
            })
        };
        assert_eq!(sizes("--history-bytes", "4096").unwrap().0, 4096);
        assert_eq!(sizes("--history-bytes", "64K").unwrap().0, 64 << 10);
        assert_eq!(sizes("--max-history-bytes", "2GiB").unwrap().1, 2 << 30);
        assert_eq!(sizes("--max-history-bytes", "3m").unwrap().1, 3 << 20);
        for refused in ["0", "1000", "2T", "1.5G", "-1K", "K", "2000G"] {
            assert!(sizes("--history-bytes", refused).is_err(), "{refused}");
        }
    }

    /// `--ephemeral` writes nowhere, so it cannot be given a directory; with
    /// --redis no data directory is used.
    #[test]
    fn ephemeral_and_a_data_directory_exclude_each_other() {
        let both = Config::try_parse_from(["x", "--ephemeral", "--data-dir", "/tmp/d"]);
        assert_eq!(
            both.expect_err("refused").kind(),
            ErrorKind::ArgumentConflict
        );
        let ephemeral = Config::try_parse_from(["x", "--ephemeral"]).unwrap();
        assert_eq!(ephemeral.storage.data_dir(false), None);
        let kept = Config::try_parse_from(["x", "--data-dir", "/tmp/d"]).unwrap();
        assert_eq!(
            kept.storage.data_dir(false),
            Some(std::path::Path::new("/tmp/d"))
        );
        assert_eq!(kept.storage.data_dir(true), None, "Redis keeps the rooms");
    }

    #[test]
    fn redis_needs_a_secret_and_a_lease_it_can_renew() {
        let redis = ["x", "--redis", "redis://127.0.0.1:6379/"];
        assert!(Config::try_parse_from(redis).is_err(), "no --secret");
        let config = Config::try_parse_from([&redis[..], &["--secret", "s"]].concat()).unwrap();
        assert_eq!(config.presence_lease, Duration::from_secs(10));
        for bad in ["2", "90000", "soon"] {
            let parsed = Config::try_parse_from(
                [&redis[..], &["--secret", "s", "--presence-lease", bad]].concat(),
            );
            assert!(parsed.is_err(), "--presence-lease {bad}");
        }
        assert!(Config::try_parse_from(["x", "--redis", "nonsense", "--secret", "s"]).is_err());
    }

    #[test]
    fn replicas_to_wait_for_need_redis_and_a_count() {
        let redis = [
            "x",
            "--redis",
            "redis+sentinel://127.0.0.1/chat",
            "--secret",
            "s",
        ];
        assert_eq!(Config::try_parse_from(redis).unwrap().redis_replicas, 0);
        let waits = Config::try_parse_from([&redis[..], &["--redis-replicas", "1"]].concat());
        assert_eq!(waits.unwrap().redis_replicas, 1);
        for bad in ["-1", "one"] {
            let parsed = Config::try_parse_from([&redis[..], &["--redis-replicas", bad]].concat());
            assert!(parsed.is_err(), "--redis-replicas {bad}");
        }
        assert!(
            Config::try_parse_from(["x", "--redis-replicas", "1"]).is_err(),
            "no --redis"
        );
    }

    #[test]
    fn a_redis_ca_needs_redis_and_a_readable_pem_file() {
        let redis = ["x", "--redis", "rediss://127.0.0.1:6379/", "--secret", "s"];
        let with_ca = |ca: &str| Config::try_parse_from([&redis[..], &["--redis-ca", ca]].concat());
        assert!(
            Config::try_parse_from(["x", "--redis-ca", "Cargo.toml"]).is_err(),
            "no --redis"
        );
        assert!(with_ca("/no/such/file").is_err(), "unreadable");
        assert!(with_ca("Cargo.toml").is_err(), "no certificate in it");
        assert!(Config::try_parse_from(redis).unwrap().redis_ca.is_none());
    }
}
