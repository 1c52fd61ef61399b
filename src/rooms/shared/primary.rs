//! Where this instance sends its commands: the one Redis that `--redis`
//! names, or the primary that Redis Sentinel names (`redis+sentinel://`),
//! followed through failovers.
//!
//! With Sentinel, the primary is asked of the sentinels at start, again as
//! soon as a command or the reader finds it gone or read-only (and every
//! quarter second until one answers with a primary that answers as one), and
//! every few seconds besides, for a demotion nothing failed on. A new primary
//! gets a fresh connection manager; the reader notices the change by its
//! generation and reconnects.

use std::fmt;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{IntoConnectionInfo, RedisConnectionInfo, RedisError, RedisResult};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

/// The port sentinels listen on unless the URL says otherwise.
const SENTINEL_PORT: u16 = 26379;

/// How long asking the sentinels (and checking the primary they name) may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the sentinels are asked again while the primary is in doubt.
const WHILE_IN_DOUBT: Duration = Duration::from_millis(250);

/// How often they are asked while all is well, for a demotion that no command
/// has failed on yet.
const WHILE_WELL: Duration = Duration::from_secs(5);

/// Where Redis is, as `--redis` names it.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisAddress {
    /// One Redis: a `redis://` or `rediss://` URL.
    Direct(String),
    /// Whichever Redis the sentinels call `service`'s primary:
    /// `redis+sentinel://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/SERVICE`.
    /// The user and password are the data nodes'; the sentinels take none.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        service: String,
        username: Option<String>,
        password: Option<String>,
    },
}

/// Never shows a password: the address is logged and printed in errors.
impl fmt::Debug for RedisAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Direct(_) => f.write_str("RedisAddress::Direct(…)"),
            Self::Sentinel {
                sentinels, service, ..
            } => write!(f, "RedisAddress::Sentinel({sentinels:?}, {service:?})"),
        }
    }
}

impl RedisAddress {
    /// Reads `--redis`. Errors never repeat the URL: it may hold a password.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("redis+sentinel://") {
            return Self::parse_sentinel(rest);
        }
        if raw.starts_with("rediss+sentinel://") {
            return Err(String::from(
                "TLS to Sentinel is not supported: use redis+sentinel:// on a private network",
            ));
        }
        redis::Client::open(raw)
            .map(|_| Self::Direct(raw.to_owned()))
            .map_err(|error| format!("not a Redis URL: {error}"))
    }

    fn parse_sentinel(rest: &str) -> Result<Self, String> {
        let usage =
            "a Sentinel URL is redis+sentinel://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/SERVICE";
        let (authority, service) = rest.split_once('/').ok_or(usage)?;
        let service = service.trim_end_matches('/');
        if service.is_empty() || service.contains(['/', '?', '#']) {
            return Err(usage.into());
        }
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((credentials, hosts)) => (Some(credentials), hosts),
            None => (None, authority),
        };
        let sentinels = hosts
            .split(',')
            .map(|host| {
                let (name, port) = match host.rsplit_once(':') {
                    // An IPv6 literal in brackets has colons of its own.
                    Some((name, port)) if !port.ends_with(']') => (
                        name,
                        port.parse::<u16>()
                            .map_err(|_| format!("{port:?} is not a port; {usage}"))?,
                    ),
                    _ => (host, SENTINEL_PORT),
                };
                let name = name.trim_start_matches('[').trim_end_matches(']');
                if name.is_empty() {
                    return Err(usage.to_owned());
                }
                Ok((name.to_owned(), port))
            })
            .collect::<Result<Vec<_>, String>>()?;
        // The credentials are read as a plain URL's are (percent-decoded).
        let (username, password) = match credentials {
            None => (None, None),
            Some(credentials) => {
                let info = format!("redis://{credentials}@localhost/")
                    .into_connection_info()
                    .map_err(|_| format!("the user and password cannot be read; {usage}"))?;
                let settings = info.redis_settings();
                (
                    settings.username().map(str::to_owned),
                    settings.password().map(str::to_owned),
                )
            }
        };
        Ok(Self::Sentinel {
            sentinels,
            service: service.to_owned(),
            username,
            password,
        })
    }
}

/// The current primary: a client for new connections (the reader's, checks)
/// and the shared connection manager commands go through.
struct Node {
    client: redis::Client,
    commands: ConnectionManager,
    /// `host:port`, for the log.
    address: String,
}

/// How the primary is found.
enum Discovery {
    /// Named once and for all.
    Fixed,
    /// Asked of the sentinels; the client keeps their connections.
    Sentinel(Box<Mutex<SentinelClient>>),
}

/// Cheap to share; follows the primary (see the module's comment).
pub(super) struct Primary {
    discovery: Discovery,
    current: RwLock<Option<Node>>,
    /// Counts primaries this instance has used: the reader reconnects when it
    /// changes.
    generation: AtomicU64,
    /// A command found the primary gone or read-only: ask again soon.
    in_doubt: AtomicBool,
    lost: Notify,
    config: ConnectionManagerConfig,
}

impl Primary {
    /// Reaches the primary of `address`; `ca` is trusted for `rediss://`.
    /// A direct Redis has its node at once; a sentinel's waits for
    /// [`Primary::follow`] to find it.
    pub(super) fn new(
        address: &RedisAddress,
        ca: Option<&[u8]>,
        config: ConnectionManagerConfig,
    ) -> Result<Self, String> {
        // Errors name the flag, not the URL: it may hold a password.
        let (discovery, current) = match address {
            RedisAddress::Direct(url) => {
                let client = match ca {
                    None => redis::Client::open(url.as_str()),
                    Some(ca) => redis::Client::build_with_tls(
                        url.as_str(),
                        redis::TlsCertificates {
                            client_tls: None,
                            root_cert: Some(ca.to_vec()),
                        },
                    ),
                }
                .map_err(|e| format!("--redis: {e}"))?;
                let node = node(client, config.clone()).map_err(|e| format!("--redis: {e}"))?;
                (Discovery::Fixed, Some(node))
            }
            RedisAddress::Sentinel {
                sentinels,
                service,
                username,
                password,
            } => {
                if ca.is_some() {
                    return Err(String::from(
                        "--redis-ca: Sentinel is reached without TLS, so there is no certificate to check",
                    ));
                }
                let mut settings = RedisConnectionInfo::default();
                if let Some(username) = username {
                    settings = settings.set_username(username);
                }
                if let Some(password) = password {
                    settings = settings.set_password(password);
                }
                let urls: Vec<String> = sentinels
                    .iter()
                    .map(|(host, port)| {
                        if host.contains(':') {
                            format!("redis://[{host}]:{port}/")
                        } else {
                            format!("redis://{host}:{port}/")
                        }
                    })
                    .collect();
                let client = SentinelClient::build(
                    urls,
                    service.as_str(),
                    Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(settings)),
                    SentinelServerType::Master,
                )
                .map_err(|e| format!("--redis: {e}"))?;
                (Discovery::Sentinel(Box::new(Mutex::new(client))), None)
            }
        };
        Ok(Self {
            discovery,
            current: RwLock::new(current),
            generation: AtomicU64::new(0),
            in_doubt: AtomicBool::new(false),
            lost: Notify::new(),
            config,
        })
    }

    /// What `take` takes of the current primary (a handle, cheap to clone),
    /// or an error while none is known.
    fn of_node<T>(&self, take: impl FnOnce(&Node) -> T) -> RedisResult<T> {
        self.current
            .read()
            .ok()
            .and_then(|node| node.as_ref().map(take))
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotConnected, "no primary found yet").into()
            })
    }

    /// The connection manager of the current primary.
    pub(super) fn commands(&self) -> RedisResult<ConnectionManager> {
        self.of_node(|node| node.commands.clone())
    }

    /// A client for a connection of its own to the current primary.
    pub(super) fn client(&self) -> RedisResult<redis::Client> {
        self.of_node(|node| node.client.clone())
    }

    /// Changes whenever the primary does.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Whether the sentinels say where the primary is.
    pub(super) fn follows_sentinels(&self) -> bool {
        matches!(self.discovery, Discovery::Sentinel(_))
    }

    /// A command failed as it would on a primary that is gone or was demoted:
    /// the sentinels are asked again at once.
    pub(super) fn in_doubt(&self) {
        if self.follows_sentinels() && !self.in_doubt.swap(true, Ordering::Relaxed) {
            self.lost.notify_one();
        }
    }

    /// Asks the sentinels where the primary is, and moves there if it moved.
    /// An error if none of them names a primary that answers as one (in
    /// time, and to this instance's user and password).
    pub(super) async fn discover(&self) -> RedisResult<()> {
        let Discovery::Sentinel(sentinels) = &self.discovery else {
            return Ok(());
        };
        let client = tokio::time::timeout(DISCOVERY_TIMEOUT, async {
            sentinels.lock().await.async_get_client().await
        })
        .await
        .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()))?;
        let address = client.get_connection_info().addr().to_string();
        let known = self
            .current
            .read()
            .ok()
            .and_then(|node| node.as_ref().map(|node| node.address == address))
            .unwrap_or(false);
        if !known {
            let fresh = node(client, self.config.clone())?;
            if let Ok(mut current) = self.current.write() {
                let was = current.replace(fresh).map(|node| node.address);
                self.generation.fetch_add(1, Ordering::Relaxed);
                match was {
                    None => tracing::info!(primary = %address, "redis primary found"),
                    Some(was) => {
                        tracing::warn!(primary = %address, %was, "redis primary changed: following it");
                    }
                }
            }
        }
        self.in_doubt.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// With Sentinel: keeps finding the primary until `stop`.
    pub(super) async fn follow(&self, stop: CancellationToken) {
        if !self.follows_sentinels() {
            return;
        }
        let mut failing = false;
        loop {
            let found = match self.discover().await {
                Ok(()) => {
                    failing = false;
                    true
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "the sentinels name no primary that answers: asking again");
                        failing = true;
                    }
                    false
                }
            };
            let wait = if found && !self.in_doubt.load(Ordering::Relaxed) {
                WHILE_WELL
            } else {
                WHILE_IN_DOUBT
            };
            tokio::select! {
                () = self.lost.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

fn node(client: redis::Client, config: ConnectionManagerConfig) -> RedisResult<Node> {
    let address = client.get_connection_info().addr().to_string();
    let commands = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
    Ok(Node {
        client,
        commands,
        address,
    })
}

/// The error says the node answered as a replica: a demoted primary.
pub(super) fn read_only(error: &RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_names_its_sentinels_service_and_credentials() {
        let parsed = RedisAddress::parse(
            "redis+sentinel://chat:p%40ss@127.0.0.1:26380,[::1],sentinel-3/chat",
        )
        .unwrap();
        assert_eq!(
            parsed,
            RedisAddress::Sentinel {
                sentinels: vec![
                    ("127.0.0.1".into(), 26380),
                    ("::1".into(), SENTINEL_PORT),
                    ("sentinel-3".into(), SENTINEL_PORT)
                ],
                service: "chat".into(),
                username: Some("chat".into()),
                password: Some("p@ss".into()),
            }
        );
        assert!(
            !format!("{parsed:?}").contains("p@ss"),
            "the password is never shown"
        );
    }

    #[test]
    fn a_sentinel_url_without_a_service_or_with_a_bad_port_is_refused() {
        for bad in [
            "redis+sentinel://127.0.0.1:26379",
            "redis+sentinel://127.0.0.1:26379/",
            "redis+sentinel://127.0.0.1:port/chat",
            "redis+sentinel://:26379/chat",
            "redis+sentinel://127.0.0.1/chat/extra",
            "rediss+sentinel://127.0.0.1/chat",
        ] {
            assert!(RedisAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sentinels_are_reached_without_tls_so_a_ca_is_a_mistake() {
        let address = RedisAddress::parse("redis+sentinel://127.0.0.1/chat").unwrap();
        let config = ConnectionManagerConfig::new();
        let refused = Primary::new(&address, Some(b"PEM"), config.clone()).err();
        assert!(refused.is_some_and(|why| why.starts_with("--redis-ca")));
        let primary = Primary::new(&address, None, config).unwrap();
        assert!(primary.follows_sentinels());
        assert!(
            primary.commands().is_err(),
            "no primary before the sentinels name one"
        );
    }

    #[test]
    fn a_plain_url_is_one_redis() {
        assert_eq!(
            RedisAddress::parse(" redis://127.0.0.1:6379/ "),
            Ok(RedisAddress::Direct("redis://127.0.0.1:6379/".into()))
        );
        assert!(RedisAddress::parse("nonsense").is_err());
    }
}
