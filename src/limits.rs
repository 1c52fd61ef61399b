//! What one client may take, and what everyone together may.
//!
//! Rates (guesses, rooms created, joins, messages) are `governor` rate limiters
//! keyed by client address or by membership: a burst, then a steady rate. Things
//! held open (connections, event streams) are counted per address and per session
//! by [`Counter`]s whose [`Held`] guards give their place back when dropped. Every
//! refusal says which limit it was and when to try again; the routes turn it into
//! `429` (one client's doing) or `503` (the server is full), with `Retry-After`.
//! The places themselves are [`ConnectionPlace`] and [`StreamPlace`]: held by the
//! connection or the stream, given back when it ends.
//!
//! Keyed state lives only for keys in use: counters drop a key at zero, and a
//! housekeeping task forgets rate-limiter keys whose budget is whole again, so a
//! flood from many addresses cannot grow memory without bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::{LimitOptions, Rate};
use crate::input::RoomCode;
use crate::rooms::MemberToken;
use crate::session::SessionId;

/// How often rate-limiter keys whose budget is whole again are forgotten.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// When to try again after a count limit: the time it takes a person to close a
/// tab or a room to empty is unknown, so a short, fixed while.
const COUNT_RETRY: Duration = Duration::from_secs(10);

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Requests about rooms the client is not a member of (code guessing).
    Guesses,
    RoomsCreated,
    Joins,
    Messages,
    Polls,
    ConnectionsPerAddress,
    StreamsPerAddress,
    StreamsPerSession,
    RoomsPerSession,
    /// The server is full: open connections.
    Connections,
    /// The server is full: open rooms.
    Rooms,
    /// The room is full.
    MembersPerRoom,
    /// The server is full: the rooms' history holds `--max-history-bytes`.
    History,
}

impl Limit {
    /// Every limit, for metrics that list them all from the start.
    pub const ALL: [Limit; 13] = [
        Self::Guesses,
        Self::RoomsCreated,
        Self::Joins,
        Self::Messages,
        Self::Polls,
        Self::ConnectionsPerAddress,
        Self::StreamsPerAddress,
        Self::StreamsPerSession,
        Self::RoomsPerSession,
        Self::Connections,
        Self::Rooms,
        Self::MembersPerRoom,
        Self::History,
    ];

    /// The limit's name in metrics (`chat_refusals_total{reason="guesses"}`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Guesses => "guesses",
            Self::RoomsCreated => "rooms_created",
            Self::Joins => "joins",
            Self::Messages => "messages",
            Self::Polls => "polls",
            Self::ConnectionsPerAddress => "connections_per_address",
            Self::StreamsPerAddress => "streams_per_address",
            Self::StreamsPerSession => "streams_per_session",
            Self::RoomsPerSession => "rooms_per_session",
            Self::Connections => "connections",
            Self::Rooms => "rooms",
            Self::MembersPerRoom => "members_per_room",
            Self::History => "history",
        }
    }

    /// Whether the server as a whole is full (`503`), rather than one client
    /// having taken its share (`429`).
    pub fn server_is_full(self) -> bool {
        matches!(
            self,
            Self::Connections | Self::Rooms | Self::MembersPerRoom | Self::History
        )
    }

    /// The sentence the client sees.
    pub fn explain(self) -> &'static str {
        match self {
            Self::Guesses => {
                "Too many requests for rooms you are not in, from your address: wait a little before trying another code."
            }
            Self::RoomsCreated => "You have created many rooms in a short time: wait a little.",
            Self::Joins => "Too many joins from your address in a short time: wait a little.",
            Self::Messages => "You are sending messages too fast: wait a moment.",
            Self::Polls => "You are polling too fast: wait for the answer before asking again.",
            Self::ConnectionsPerAddress => {
                "Too many open connections from your address: close some first."
            }
            Self::StreamsPerAddress => {
                "Too many rooms open from your address at once: close some tabs first."
            }
            Self::StreamsPerSession => "Too many rooms open at once: close some tabs first.",
            Self::RoomsPerSession => "You are in too many rooms: leave one first.",
            Self::Connections => "The server is full right now: try again soon.",
            Self::Rooms => "The server has as many rooms open as it can: try again soon.",
            Self::MembersPerRoom => "This room is full.",
            Self::History => "The server keeps as much room history as it can: try again soon.",
        }
    }
}

/// A request refused by a limit, and how long until trying again makes sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub limit: Limit,
    pub retry_after: Duration,
}

impl Refused {
    /// A refusal by a count limit, or by the server being full.
    pub fn full(limit: Limit) -> Self {
        Self {
            limit,
            retry_after: COUNT_RETRY,
        }
    }
}

/// The key for per-address limits: an IPv4 address, or an IPv6 /64 network
/// (one subscriber usually gets a whole /64, so single IPv6 addresses are free).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(network.into()))
                }
            },
        }
    }
}

/// Cheap-to-clone handle on every limit's state.
#[derive(Clone)]
pub struct Limits {
    shared: Arc<Shared>,
}

struct Shared {
    options: LimitOptions,
    guesses: RateLimiter<AddressKey>,
    rooms_created: RateLimiter<AddressKey>,
    joins: RateLimiter<AddressKey>,
    messages: RateLimiter<(RoomCode, MemberToken)>,
    polls: RateLimiter<(RoomCode, MemberToken)>,
    connections: Arc<Counter<()>>,
    connections_by_address: Arc<Counter<AddressKey>>,
    streams_by_address: Arc<Counter<AddressKey>>,
    streams_by_session: Arc<Counter<SessionId>>,
}

/// An open connection's place in the limits; dropping it gives the place back.
#[must_use = "the place is given back when this is dropped"]
pub struct ConnectionPlace {
    _all: CounterGuard<()>,
    /// `None` when connections are not counted per address (`--trust-proxy`).
    _by_address: Option<CounterGuard<AddressKey>>,
}

/// An open event stream's place in the limits; dropping it gives the place back.
#[must_use = "the place is given back when this is dropped"]
pub struct StreamPlace {
    _by_address: CounterGuard<AddressKey>,
    _by_session: CounterGuard<SessionId>,
}

impl Limits {
    /// The limits, and a task that keeps their keyed state small (it ends when
    /// the last handle is dropped). Needs a Tokio runtime.
    pub fn new(options: LimitOptions) -> Self {
        let shared = Arc::new(Shared {
            guesses: RateLimiter::new(options.guess_rate, options.guess_burst),
            rooms_created: RateLimiter::new(options.create_rate, options.create_burst),
            joins: RateLimiter::new(options.join_rate, options.join_burst),
            messages: RateLimiter::new(options.message_rate, options.message_burst),
            polls: RateLimiter::new(options.poll_rate, options.poll_burst),
            connections: Arc::default(),
            connections_by_address: Arc::default(),
            streams_by_address: Arc::default(),
            streams_by_session: Arc::default(),
            options,
        });
        tokio::spawn(housekeeping(Arc::downgrade(&shared)));
        Self { shared }
    }

    /// Spends one guess: a request about a room from someone not in it.
    pub fn guess(&self, client: AddressKey) -> Result<(), Refused> {
        self.shared.guesses.spend(&client, Limit::Guesses)
    }

    pub fn create_room(&self, client: AddressKey) -> Result<(), Refused> {
        self.shared
            .rooms_created
            .spend(&client, Limit::RoomsCreated)
    }

    pub fn join(&self, client: AddressKey) -> Result<(), Refused> {
        self.shared.joins.spend(&client, Limit::Joins)
    }

    pub fn message(&self, code: RoomCode, member: MemberToken) -> Result<(), Refused> {
        self.shared.messages.spend(&(code, member), Limit::Messages)
    }

    pub fn poll(&self, code: RoomCode, member: MemberToken) -> Result<(), Refused> {
        self.shared.polls.spend(&(code, member), Limit::Polls)
    }

    /// Whether a session already in `rooms` rooms may join one more.
    pub fn another_room(&self, rooms: usize) -> Result<(), Refused> {
        if rooms >= usize::from(self.shared.options.max_rooms_per_session) {
            return Err(Refused {
                limit: Limit::RoomsPerSession,
                retry_after: Duration::from_secs(60),
            });
        }
        Ok(())
    }

    /// A place for a new connection from `client`; `None` for the address when
    /// its connections are not to be counted (every client comes through one
    /// trusted proxy).
    pub fn connection(&self, client: Option<AddressKey>) -> Result<ConnectionPlace, Refused> {
        let shared = &self.shared;
        let all =
            shared
                .connections
                .hold((), shared.options.max_connections, Limit::Connections)?;
        let by_address = client
            .map(|client| {
                shared.connections_by_address.hold(
                    client,
                    shared.options.max_connections_per_address,
                    Limit::ConnectionsPerAddress,
                )
            })
            .transpose()?;
        Ok(ConnectionPlace {
            _all: all,
            _by_address: by_address,
        })
    }

    /// A place for a new event stream of `session` from `client`.
    pub fn stream(&self, client: AddressKey, session: &SessionId) -> Result<StreamPlace, Refused> {
        let shared = &self.shared;
        let by_address = shared.streams_by_address.hold(
            client,
            shared.options.max_streams_per_address,
            Limit::StreamsPerAddress,
        )?;
        let by_session = shared.streams_by_session.hold(
            session.clone(),
            shared.options.max_streams_per_session,
            Limit::StreamsPerSession,
        )?;
        Ok(StreamPlace {
            _by_address: by_address,
            _by_session: by_session,
        })
    }

    /// Open connections right now.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.total()
    }
}

/// Forgets rate-limiter keys whose budget is whole again, every minute.
async fn housekeeping(shared: Weak<Shared>) {
    let mut every = tokio::time::interval(HOUSEKEEPING_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.guesses.forget_idle();
        shared.rooms_created.forget_idle();
        shared.joins.forget_idle();
        shared.messages.forget_idle();
        shared.polls.forget_idle();
    }
}

/// A burst, then a steady rate, per key.
struct RateLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    fn new(rate: Rate, burst: NonZeroU32) -> Self {
        // `Rate` is never zero (the command line refuses it); the fallback is
        // there so no request path can panic.
        let quota = Quota::with_period(rate.interval)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    fn spend(&self, key: &K, limit: Limit) -> Result<(), Refused> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            Refused {
                limit,
                retry_after: wait,
            }
        })
    }

    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// How many of something each key holds open.
struct Counter<K> {
    // std Mutex: held only to add or take one; never across an `.await`.
    counts: Mutex<HashMap<K, usize>>,
}

impl<K> Default for Counter<K> {
    fn default() -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
        }
    }
}

/// One place held in a [`Counter`]; dropping it gives the place back.
struct CounterGuard<K: Hash + Eq> {
    counter: Arc<Counter<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Counter<K> {
    fn hold(
        self: &Arc<Self>,
        key: K,
        max: usize,
        limit: Limit,
    ) -> Result<CounterGuard<K>, Refused> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= max {
            return Err(Refused::full(limit));
        }
        *count += 1;
        Ok(CounterGuard {
            counter: Arc::clone(self),
            key,
        })
    }

    fn total(&self) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.values().sum()
    }
}

impl<K: Hash + Eq> Drop for CounterGuard<K> {
    fn drop(&mut self) {
        let mut counts = self
            .counter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_network() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddressKey::of(a), AddressKey::of(b));
        assert_ne!(AddressKey::of(a), AddressKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let plain: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(AddressKey::of(mapped), AddressKey::of(plain));
    }

    #[test]
    fn a_counter_gives_places_back_and_forgets_empty_keys() {
        let counter: Arc<Counter<u8>> = Arc::default();
        let first = counter.hold(1, 2, Limit::StreamsPerAddress).unwrap();
        let second = counter.hold(1, 2, Limit::StreamsPerAddress).unwrap();
        let refused = counter.hold(1, 2, Limit::StreamsPerAddress).err();
        assert_eq!(refused.map(|r| r.limit), Some(Limit::StreamsPerAddress));
        assert!(
            counter.hold(2, 2, Limit::StreamsPerAddress).is_ok(),
            "another key"
        );
        drop(first);
        let third = counter.hold(1, 2, Limit::StreamsPerAddress).unwrap();
        drop((second, third));
        assert!(counter.counts.lock().unwrap().is_empty());
    }

    #[test]
    fn a_rate_allows_its_burst_then_says_when_to_come_back() {
        let rate = Rate {
            interval: Duration::from_secs(10),
        };
        let limiter = RateLimiter::new(rate, NonZeroU32::new(3).unwrap());
        for _ in 0..3 {
            limiter.spend(&1u8, Limit::Guesses).unwrap();
        }
        let refused = limiter.spend(&1u8, Limit::Guesses).unwrap_err();
        assert_eq!(refused.limit, Limit::Guesses);
        assert!(refused.retry_after > Duration::from_secs(9));
        assert!(refused.retry_after <= Duration::from_secs(10));
        limiter.spend(&2u8, Limit::Guesses).unwrap();
    }
}
