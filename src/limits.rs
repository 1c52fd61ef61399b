//! What one client may take, and what everyone together may.
//!
//! Rates (guesses, rooms created, joins, messages) are `governor` rate limiters
//! keyed by client address or by membership: a burst, then a steady rate. The
//! per-address ones also hold an IPv6 client's /56 and /48 to a shared budget
//! ([`AddressRateLimiter`]), since one subscriber holds many /64s. Things
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
use std::time::{Duration, Instant};

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

/// Passphrases one address may have waiting or being checked at once: Argon2
/// costs the server tens of milliseconds each, so one address must not fill the
/// queue that everyone's joins wait in. A person types one at a time.
const PASSPHRASE_CHECKS_PER_ADDRESS: usize = 1;

/// Wrong passphrases a private room takes before it turns away addresses that
/// keep trying, and the steady rate after that: about the typing mistakes of a
/// room full of people, and nowhere near a search of even a short passphrase.
const WRONG_PASSPHRASES_PER_ROOM: u32 = 20;
const WRONG_PASSPHRASE_EVERY: Duration = Duration::from_secs(10);

/// Once a room's budget of wrong passphrases is spent, an address that has
/// sent one for it gets one more try this often. An address that has sent none
/// (the friend who was just told the passphrase) is checked at once: the
/// budget stops a search, not the room's own people.
const RETRY_AFTER_WRONG_PASSPHRASE: Duration = Duration::from_secs(600);

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
    /// Room pages one member loads.
    Pages,
    /// Passphrases from one address being checked at once.
    PassphraseChecks,
    /// Wrong passphrases for one room, from an address that already sent one.
    WrongPassphrases,
    /// The server is busy: as many passphrases are waiting to be checked as
    /// it checks in a fraction of a second.
    PassphraseQueue,
    /// Too many bytes of responses unsent to this connection or address
    /// (`backlog.rs`).
    Backlog,
    /// The server is full: bytes of responses unsent in all.
    BacklogInAll,
    /// The server is full: the rooms' history holds `--max-history-bytes`.
    History,
}

impl Limit {
    /// Every limit, for metrics that list them all from the start.
    pub const ALL: [Limit; 19] = [
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
        Self::Pages,
        Self::PassphraseChecks,
        Self::WrongPassphrases,
        Self::PassphraseQueue,
        Self::Backlog,
        Self::BacklogInAll,
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
            Self::Pages => "pages",
            Self::PassphraseChecks => "passphrase_checks",
            Self::WrongPassphrases => "wrong_passphrases",
            Self::PassphraseQueue => "passphrase_queue",
            Self::Backlog => "backlog",
            Self::BacklogInAll => "backlog_in_all",
            Self::History => "history",
        }
    }

    /// Whether the server as a whole is full (`503`), rather than one client
    /// having taken its share (`429`).
    pub fn server_is_full(self) -> bool {
        matches!(
            self,
            Self::Connections
                | Self::Rooms
                | Self::MembersPerRoom
                | Self::PassphraseQueue
                | Self::BacklogInAll
                | Self::History
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
            Self::Pages => "You are loading this room's page too often: wait a moment.",
            Self::PassphraseChecks => {
                "Your last passphrase is still being checked: wait for its answer."
            }
            Self::WrongPassphrases => {
                "Too many wrong passphrases for this room: wait a while before trying again."
            }
            Self::PassphraseQueue => {
                "The server is checking many passphrases right now: try again in a moment."
            }
            Self::Backlog => {
                "Too much of what we sent you is still unread: read it before asking for more."
            }
            Self::BacklogInAll => "The server is busy sending right now: try again soon.",
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

/// The wider IPv6 networks whose /64s share a rate budget, narrowest first, and
/// how many times an address's burst each may spend at once. A home usually
/// gets a /56 (256 /64s) and a site or a free tunnel a /48 (65,536): without
/// these, each of its /64s would have a budget of its own. In the long run a
/// /48 gets what one IPv4 address gets (the steady rate is the same); the
/// larger bursts let a household or an office join a room together.
const SHARED_NETWORKS: [(u8, u32); 2] = [(56, 2), (48, 4)];

impl AddressKey {
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => Self::v6_network(u128::from(v6), 64),
            },
        }
    }

    /// The IPv6 network of `prefix` bits (at most 64) around this key's /64,
    /// whose budget it shares; `None` for an IPv4 address, budgeted alone.
    pub fn network(self, prefix: u8) -> Option<Self> {
        match self.0 {
            IpAddr::V4(_) => None,
            IpAddr::V6(v6) => Some(Self::v6_network(u128::from(v6), prefix.min(64))),
        }
    }

    fn v6_network(bits: u128, prefix: u8) -> Self {
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
        Self(IpAddr::V6((bits & mask).into()))
    }
}

/// Cheap-to-clone handle on every limit's state.
#[derive(Clone)]
pub struct Limits {
    shared: Arc<Shared>,
}

struct Shared {
    options: LimitOptions,
    guesses: AddressRateLimiter,
    rooms_created: AddressRateLimiter,
    joins: AddressRateLimiter,
    messages: RateLimiter<(RoomCode, MemberToken)>,
    polls: RateLimiter<(RoomCode, MemberToken)>,
    pages: RateLimiter<(RoomCode, MemberToken)>,
    wrong_passphrases: WrongPassphrases,
    passphrase_checks: Arc<Counter<AddressKey>>,
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

/// A passphrase check's place in its address's share; dropping it gives the
/// place back.
#[must_use = "the place is given back when this is dropped"]
pub struct PassphraseCheckPlace {
    _by_address: CounterGuard<AddressKey>,
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
            guesses: AddressRateLimiter::new(options.guess_rate, options.guess_burst),
            rooms_created: AddressRateLimiter::new(options.create_rate, options.create_burst),
            // Joins by non-members spend a guess first, so the guesses' shared
            // budgets bound them already; joins share too, so that no change
            // in what a join spends can reopen a /48's many budgets.
            joins: AddressRateLimiter::new(options.join_rate, options.join_burst),
            messages: RateLimiter::new(options.message_rate, options.message_burst),
            polls: RateLimiter::new(options.poll_rate, options.poll_burst),
            pages: RateLimiter::new(options.page_rate, options.page_burst),
            wrong_passphrases: WrongPassphrases::new(),
            passphrase_checks: Arc::default(),
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
        self.shared.guesses.spend(client, Limit::Guesses)
    }

    pub fn create_room(&self, client: AddressKey) -> Result<(), Refused> {
        self.shared.rooms_created.spend(client, Limit::RoomsCreated)
    }

    pub fn join(&self, client: AddressKey) -> Result<(), Refused> {
        self.shared.joins.spend(client, Limit::Joins)
    }

    pub fn message(&self, code: RoomCode, member: MemberToken) -> Result<(), Refused> {
        self.shared.messages.spend(&(code, member), Limit::Messages)
    }

    pub fn poll(&self, code: RoomCode, member: MemberToken) -> Result<(), Refused> {
        self.shared.polls.spend(&(code, member), Limit::Polls)
    }

    /// A member loads the room's page (each render is the room's whole
    /// history, so a member gets a burst of them, then a steady rate).
    pub fn page(&self, code: RoomCode, member: MemberToken) -> Result<(), Refused> {
        self.shared.pages.spend(&(code, member), Limit::Pages)
    }

    /// A place for checking one passphrase from `client`, and whether room
    /// `code` will have it checked (see [`WrongPassphrases`]).
    pub fn passphrase_check(
        &self,
        code: RoomCode,
        client: AddressKey,
    ) -> Result<PassphraseCheckPlace, Refused> {
        let shared = &self.shared;
        shared.wrong_passphrases.may_try(code, client)?;
        let by_address = shared.passphrase_checks.hold(
            client,
            PASSPHRASE_CHECKS_PER_ADDRESS,
            Limit::PassphraseChecks,
        )?;
        Ok(PassphraseCheckPlace {
            _by_address: by_address,
        })
    }

    /// A passphrase for room `code` from `client` was wrong.
    pub fn wrong_passphrase(&self, code: RoomCode, client: AddressKey) {
        self.shared.wrong_passphrases.record(code, client);
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
        shared.pages.forget_idle();
        shared.wrong_passphrases.forget_idle();
    }
}

/// Each private room's budget of wrong passphrases.
///
/// Checking a passphrase costs Argon2 time, and guessing one is the one attack
/// a private room's code does not stop. So every wrong passphrase for a room is
/// spent from that room's own budget; once it is spent, addresses that have sent
/// a wrong one for the room lately are refused before anything is checked,
/// while an address that has sent none is still checked at once. A search from
/// many addresses gets one try per address per [`RETRY_AFTER_WRONG_PASSPHRASE`],
/// and the room's own people are never locked out by it.
struct WrongPassphrases {
    by_room: RateLimiter<RoomCode>,
    /// Rooms whose budget is spent, and until when.
    // std Mutex: held only to read or write one entry; never across an `.await`.
    spent: Mutex<HashMap<RoomCode, Instant>>,
    /// One try per address per room while the room's budget is spent; each
    /// wrong passphrase spends it too, so a fresh address is one with no recent
    /// wrong passphrase for the room.
    by_room_and_address: RateLimiter<(RoomCode, AddressKey)>,
}

impl WrongPassphrases {
    fn new() -> Self {
        let by_room = Rate {
            interval: WRONG_PASSPHRASE_EVERY,
        };
        let by_room_and_address = Rate {
            interval: RETRY_AFTER_WRONG_PASSPHRASE,
        };
        Self {
            by_room: RateLimiter::new(by_room, nonzero(WRONG_PASSPHRASES_PER_ROOM)),
            spent: Mutex::new(HashMap::new()),
            by_room_and_address: RateLimiter::new(by_room_and_address, NonZeroU32::MIN),
        }
    }

    /// Whether a passphrase for room `code` from `client` is to be checked.
    fn may_try(&self, code: RoomCode, client: AddressKey) -> Result<(), Refused> {
        let now = Instant::now();
        let spent_until = {
            let spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
            spent.get(&code).copied().filter(|until| *until > now)
        };
        match spent_until {
            None => Ok(()),
            Some(_) => self
                .by_room_and_address
                .spend(&(code, client), Limit::WrongPassphrases),
        }
    }

    fn record(&self, code: RoomCode, client: AddressKey) {
        // Whatever is left of the address's try: it is spent now. A refusal here
        // only means it was spent already.
        let _ = self
            .by_room_and_address
            .spend(&(code, client), Limit::WrongPassphrases);
        if let Err(refused) = self.by_room.spend(&code, Limit::WrongPassphrases) {
            let until = Instant::now() + refused.retry_after;
            let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
            spent.insert(code, until);
        }
    }

    fn forget_idle(&self) {
        self.by_room.forget_idle();
        self.by_room_and_address.forget_idle();
        let now = Instant::now();
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        spent.retain(|_, until| *until > now);
        spent.shrink_to_fit();
    }
}

/// `n` as a budget's size; the constants given here are never zero, and a
/// budget of one is the safe reading if one ever were.
fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
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

/// A budget per client address and, for an IPv6 client, shared budgets for
/// the networks around its /64 ([`SHARED_NETWORKS`]): a request spends from
/// each, and is refused when any is spent.
struct AddressRateLimiter {
    address: RateLimiter<AddressKey>,
    /// Each shared network's prefix length and budget, narrowest first.
    networks: [(u8, RateLimiter<AddressKey>); SHARED_NETWORKS.len()],
}

impl AddressRateLimiter {
    fn new(rate: Rate, burst: NonZeroU32) -> Self {
        Self {
            address: RateLimiter::new(rate, burst),
            networks: SHARED_NETWORKS.map(|(prefix, times)| {
                (
                    prefix,
                    RateLimiter::new(rate, burst.saturating_mul(nonzero(times))),
                )
            }),
        }
    }

    /// Spends one from the address's budget, then from each network's,
    /// narrowest first, stopping at the first refusal. governor cannot look
    /// without spending, so a refused request has spent from the budgets
    /// before the one that refused: only narrower ones, the requester's own
    /// /64 (and its /56 when the /48 refuses). So a refused request never
    /// costs a wider network, and one /64 or one /56 spending past its share
    /// takes nothing more from its neighbours in the /48.
    fn spend(&self, client: AddressKey, limit: Limit) -> Result<(), Refused> {
        self.address.spend(&client, limit)?;
        for (prefix, limiter) in &self.networks {
            if let Some(network) = client.network(*prefix) {
                limiter.spend(&network, limit)?;
            }
        }
        Ok(())
    }

    fn forget_idle(&self) {
        self.address.forget_idle();
        for (_, limiter) in &self.networks {
            limiter.forget_idle();
        }
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

    /// An IPv6 key lies in the /56 and the /48 its address lies in; an IPv4
    /// address (mapped or not) lies in no shared network.
    #[test]
    fn an_ipv6_key_shares_its_56_and_its_48() {
        let key = |text: &str| AddressKey::of(text.parse().unwrap());
        let home = key("2001:db8:1:2ff::1");
        assert_eq!(home.network(56), Some(key("2001:db8:1:200::")));
        assert_eq!(home.network(48), Some(key("2001:db8:1::")));
        assert_eq!(home.network(64), Some(home));
        let next_door = key("2001:db8:1:300::1");
        assert_ne!(home.network(56), next_door.network(56), "another /56");
        assert_eq!(home.network(48), next_door.network(48), "the same /48");
        let elsewhere = key("2001:db8:2:200::1");
        assert_ne!(home.network(48), elsewhere.network(48), "another /48");
        assert_eq!(key("::1").network(48), Some(key("::")));
        assert_eq!(key("192.0.2.1").network(48), None);
        assert_eq!(key("::ffff:192.0.2.1").network(56), None);
    }

    /// Many /64s of one /48 get the /56's and then the /48's burst between
    /// them, another /48 keeps its own, and IPv4 addresses stay apart; a
    /// refusal by a network spends nothing wider.
    #[test]
    fn the_64s_of_a_48_share_its_budget() {
        let rate = Rate {
            interval: Duration::from_secs(3600),
        };
        let limiter = AddressRateLimiter::new(rate, NonZeroU32::new(2).unwrap());
        let key = |text: String| AddressKey::of(text.parse().unwrap());
        let spend = |text: String| limiter.spend(key(text), Limit::Guesses).is_ok();
        // Two /64s of the /56 2001:db8:1:100::/56 spend its burst of 4.
        assert!((0..4).all(|n| spend(format!("2001:db8:1:10{}::1", n / 2))));
        assert!(!spend("2001:db8:1:102::1".to_owned()), "the /56 is spent");
        assert!(!spend("2001:db8:1:1ff::1".to_owned()), "the /56 is spent");
        // The /48's burst of 8 is 4 more, from other /56s; none of the
        // refusals above took from it.
        assert!((0..4).all(|n| spend(format!("2001:db8:1:{}00::1", n + 2))));
        let refused = limiter.spend(key("2001:db8:1:900::1".to_owned()), Limit::Guesses);
        assert!(refused.is_err_and(|r| r.retry_after > Duration::from_secs(3000)));
        assert!(spend("2001:db8:2::1".to_owned()), "another /48");
        assert!((1..=9).all(|n| spend(format!("192.0.2.{n}"))), "IPv4 apart");
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

#[cfg(test)]
mod wrong_passphrase_tests {
    use super::*;

    #[test]
    fn a_room_locks_out_known_guessers_after_its_budget() {
        let budget = WrongPassphrases::new();
        let code = RoomCode::parse("ABCD").unwrap();
        let mallory = AddressKey::of([192, 0, 2, 1].into());
        let mut checked = 0;
        while budget.may_try(code, mallory).is_ok() && checked < 100 {
            budget.record(code, mallory);
            checked += 1;
        }
        assert_eq!(checked, WRONG_PASSPHRASES_PER_ROOM + 1);
    }
}
