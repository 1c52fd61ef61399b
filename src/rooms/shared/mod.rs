//! Rooms kept in Redis, so that every instance using the same Redis serves the
//! same rooms (`--redis`).
//!
//! Each operation is one call of one Lua script (`rooms.lua`), which Redis runs
//! alone: a room's rules (names, owner, lock, removals, idempotency, limits)
//! are checked and its state changed in one step, whichever instance asks, and
//! every event gets its id from the room's counter in the same step, so there
//! is one order for everyone. Events are a Redis stream per room; [`reader`]
//! follows the streams of the rooms this instance serves and hands each event
//! to the room's local [`feed`], whose broadcast channel the streams listen on,
//! as with rooms in memory.
//!
//! Presence is leases: an instance holding a member's streams renews its lease
//! every few seconds; closing the last stream shortens it to the grace period;
//! a lapsed lease is reaped by whichever instance touches the room next (each
//! renews its rooms' leases, which reaps too). A room no lease holds closes, and
//! every key of a room lapses a little after its last lease, so a room whose
//! instances all crashed leaves nothing behind.
//!
//! Commands go to one Redis, or to the primary Redis Sentinel names, followed
//! through failovers ([`primary`]). With `--redis-replicas N` each operation
//! is acknowledged only once `WAIT N` says N replicas have it.

mod feed;
mod primary;
mod reader;
mod reaper;

pub use self::primary::RedisAddress;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use time::OffsetDateTime;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use self::feed::{Feed, Feeds, Seeded};
use self::primary::Primary;
use self::reaper::Reaps;
use super::event::now_rfc3339;
use super::history::Budget;
use super::room::events_after;
use super::{
    Backlog, CODE_ATTEMPTS, Event, Joiner, MemberToken, Presence, Published, RoomError,
    RoomSettings, RoomSnapshot, RoomStats, StreamHandle, Subscription, Tally,
};
use crate::input::{DisplayName, IdempotencyKey, MessageText, RoomCode};
use crate::passphrase::PassphraseHash;

/// Longest a command may take before Redis counts as unreachable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest `--redis-replicas` waits for the replicas to confirm a change
/// (within [`RESPONSE_TIMEOUT`]) before it is refused as not safely stored.
const REPLICAS_TIMEOUT: Duration = Duration::from_secs(1);

/// The one script every room operation runs.
static SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("rooms.lua")));

/// What Redis is doing for this instance, for `/healthz` and `/metrics`.
#[derive(Clone)]
pub struct RedisMetrics {
    /// Seconds each script call took, Redis and network together.
    pub round_trip: Histogram,
    /// Times a command or the reader found Redis gone and had to reconnect.
    pub reconnects: Counter,
    /// Seconds between Redis storing the newest event and the reader handing
    /// it to local streams.
    pub reader_lag: Gauge<f64, AtomicU64>,
}

impl Default for RedisMetrics {
    fn default() -> Self {
        Self {
            round_trip: Histogram::new([
                0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5,
            ]),
            reconnects: Counter::default(),
            reader_lag: Gauge::default(),
        }
    }
}

/// Cheap-to-clone handle on the rooms in Redis.
#[derive(Clone)]
pub struct SharedRooms {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RoomSettings,
    /// The Redis that commands go to, followed through failovers.
    primary: Arc<Primary>,
    /// How long a lease lasts without renewal.
    lease: Duration,
    /// Replicas that must confirm a change before it is acknowledged
    /// (`--redis-replicas`); 0 acknowledges once the primary has it.
    replicas: u32,
    /// The last change was not confirmed by enough replicas (logged once).
    unconfirmed: AtomicBool,
    /// Names this process in its leases: random, so a restarted instance never
    /// renews its predecessor's.
    instance: String,
    feeds: Feeds,
    tally: Arc<Tally>,
    /// The last command reached Redis.
    reachable: AtomicBool,
    /// The reader is connected and reading.
    reading: AtomicBool,
    /// Rooms open in Redis, as last counted.
    rooms_open: AtomicU64,
    /// The reader connection's client id, to unblock its `XREAD` when a room
    /// is to be read at once; 0 while it has none.
    reader_id: AtomicI64,
    /// Wakes the reader while it has no room to read.
    feeds_added: Notify,
    /// Rooms to reap when a lease in them is due.
    reaps: Arc<Reaps>,
    /// Told when Redis answers again after an outage: leases are renewed at
    /// once, before lapsing ones are reaped by the first operation to come.
    back: Arc<Notify>,
    metrics: RedisMetrics,
    /// Cancelled when the last handle goes: the background tasks end.
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An open stream's hold on a shared room.
pub struct SharedHold {
    rooms: SharedRooms,
    feed: Arc<Feed>,
    token: MemberToken,
}

impl SharedHold {
    pub fn catch_up(&self, after: u64) -> (Backlog, u64) {
        self.feed.catch_up(after)
    }

    pub fn reset_sent(&self) {
        self.rooms
            .inner
            .tally
            .resets
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for SharedHold {
    fn drop(&mut self) {
        let inner = &self.rooms.inner;
        let last_here = self.feed.stream_closed(self.token);
        if last_here && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let rooms = self.rooms.clone();
            let feed = Arc::clone(&self.feed);
            let token = self.token;
            runtime.spawn(async move {
                rooms.release(&feed, token).await;
                rooms.inner.feeds.leave(&feed);
            });
        } else {
            inner.feeds.leave(&self.feed);
        }
    }
}

/// What `open` gave a new stream.
struct Opened {
    receiver: broadcast::Receiver<Arc<Event>>,
    membership_ended: CancellationToken,
    /// The room's epoch, which a client may name.
    epoch: u64,
    /// The room's newest id, and its oldest kept.
    seq: u64,
    oldest: u64,
    /// The kept events after what the client asked for (all, to seed a feed).
    events: Vec<Arc<Event>>,
    seeded: Seeded,
}

/// The refusal a script answered with.
fn refusal(name: &[u8]) -> RoomError {
    match name {
        b"NotFound" => RoomError::NotFound,
        b"NotMember" => RoomError::NotMember,
        b"NameTaken" => RoomError::NameTaken,
        b"RoomFull" => RoomError::RoomFull,
        b"TooManyRooms" => RoomError::TooManyRooms,
        b"HistoryFull" => RoomError::HistoryFull,
        b"NotOwner" => RoomError::NotOwner,
        b"Locked" => RoomError::Locked,
        b"Removed" => RoomError::Removed,
        b"NameRemoved" => RoomError::NameRemoved,
        b"WrongPassphrase" => RoomError::WrongPassphrase,
        b"NoSuchMember" => RoomError::NoSuchMember,
        b"CannotRemoveOwner" => RoomError::CannotRemoveOwner,
        // The code tried is in use (only `create` says so): another is tried.
        b"Taken" => RoomError::NoFreeCode,
        other => {
            tracing::error!(reply = %String::from_utf8_lossy(other), "unexpected reply from the room script");
            RoomError::Unavailable
        }
    }
}

/// Reading the parts of a script's reply.
trait Reply {
    fn text(&self) -> Option<String>;
    fn number(&self) -> Option<i64>;
    fn items(&self) -> &[Value];
}

impl Reply for Value {
    fn text(&self) -> Option<String> {
        match self {
            Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
            Value::SimpleString(text) => Some(text.clone()),
            Value::Int(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn number(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
            _ => None,
        }
    }

    fn items(&self) -> &[Value] {
        match self {
            Value::Array(items) => items,
            _ => &[],
        }
    }
}

/// A script reply that is not what the script returns: a bug, logged.
fn malformed() -> RoomError {
    tracing::error!("malformed reply from the room script");
    RoomError::Unavailable
}

fn number_at(reply: &[Value], i: usize) -> Result<i64, RoomError> {
    reply.get(i).and_then(Reply::number).ok_or_else(malformed)
}

fn id_at(reply: &[Value], i: usize) -> Result<u64, RoomError> {
    u64::try_from(number_at(reply, i)?).map_err(|_| malformed())
}

fn text_at(reply: &[Value], i: usize) -> Result<String, RoomError> {
    reply.get(i).and_then(Reply::text).ok_or_else(malformed)
}

/// Stream entries (`[[id, [field, value, ...]], ...]`) as events, with the
/// membership each ended, if any.
fn entries(value: &Value) -> Vec<(Arc<Event>, Option<MemberToken>)> {
    value
        .items()
        .iter()
        .filter_map(|entry| {
            let fields = entry.items().get(1)?.items();
            let mut frame = None;
            let mut ended = None;
            for pair in fields.chunks(2) {
                match (pair[0].text().as_deref(), pair.get(1)) {
                    (Some("f"), Some(Value::BulkString(bytes))) => {
                        frame = Event::from_frame(bytes::Bytes::copy_from_slice(bytes));
                    }
                    (Some("e"), Some(value)) => {
                        ended = value.text().as_deref().and_then(MemberToken::from_hex);
                    }
                    _ => {}
                }
            }
            Some((Arc::new(frame?), ended))
        })
        .collect()
}

/// The name, as JSON, and its three comparison keys. The script takes the
/// third key (`capitals`) as its operation's last argument.
fn name_args(name: &DisplayName) -> [String; 5] {
    let [skeleton, folded, capitals] = name.comparison_keys();
    [
        name.as_str().to_owned(),
        serde_json::to_string(name.as_str()).unwrap_or_else(|_| String::from("\"\"")),
        skeleton.to_owned(),
        folded.to_owned(),
        capitals.to_owned(),
    ]
}

impl SharedRooms {
    /// Rooms in the Redis at `address`, with the tasks that read their events
    /// and renew this instance's leases (and, with Sentinel, follow the
    /// primary). Connects lazily: while Redis cannot be reached, operations
    /// answer [`RoomError::Unavailable`] and `/healthz` says so. Needs a Tokio
    /// runtime.
    ///
    /// `lease` is how long an instance's lease on a member's streams lasts
    /// (`--presence-lease`): after a crash, members who do not come back
    /// elsewhere leave within it (plus a renewal). Each instance renews its
    /// leases, and so reaps its rooms', every third of it.
    ///
    /// `ca`: the PEM certificates to trust for a `rediss://` URL instead of the
    /// system's (`--redis-ca`). `replicas`: how many replicas must have a
    /// change before it is acknowledged (`--redis-replicas`).
    pub fn connect(
        settings: RoomSettings,
        address: &RedisAddress,
        lease: Duration,
        ca: Option<&[u8]>,
        replicas: u32,
    ) -> Result<Self, String> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_max_delay(Duration::from_secs(1));
        let primary = Arc::new(Primary::new(address, ca, config)?);
        let history = Budget::new(
            settings.history,
            settings.history_bytes,
            settings.max_history_bytes,
        );
        let inner = Arc::new(Inner {
            settings,
            primary,
            lease,
            replicas,
            unconfirmed: AtomicBool::new(false),
            instance: format!("{:016x}", rand::random::<u64>()),
            feeds: Feeds::new(history),
            tally: Arc::default(),
            reachable: AtomicBool::new(false),
            reading: AtomicBool::new(false),
            rooms_open: AtomicU64::new(0),
            reader_id: AtomicI64::new(0),
            feeds_added: Notify::new(),
            reaps: Arc::default(),
            back: Arc::default(),
            metrics: RedisMetrics::default(),
            stop: CancellationToken::new(),
        });
        let stop = inner.stop.clone();
        if inner.primary.follows_sentinels() {
            let primary = Arc::clone(&inner.primary);
            let stop = stop.clone();
            tokio::spawn(async move { primary.follow(stop).await });
        }
        tokio::spawn(reader::read(Arc::downgrade(&inner), stop.clone()));
        tokio::spawn(reaper::run(
            Arc::clone(&inner.reaps),
            Arc::downgrade(&inner),
            stop.clone(),
        ));
        tokio::spawn(renew(
            Arc::downgrade(&inner),
            lease / 3,
            Arc::clone(&inner.back),
            stop,
        ));
        Ok(Self { inner })
    }

    /// Connects once, at start: a Redis that answers but refuses this
    /// instance (wrong user or password, no password given, a TLS certificate
    /// not signed by whom it trusts) is a mistake to stop at, with the reason.
    /// A Redis that cannot be reached yet is not: the instance starts and
    /// keeps trying, as it does after any outage.
    pub async fn check_access(&self) -> Result<(), String> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let answered = async {
            // With Sentinel, the primary first: the sentinels' answer is
            // checked against it with this instance's user and password.
            self.inner.primary.discover().await?;
            let mut connection = self
                .inner
                .primary
                .client()?
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        };
        let error = match tokio::time::timeout(2 * RESPONSE_TIMEOUT, answered).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error)) => error,
            Err(_) => {
                tracing::warn!("redis does not answer yet: starting, and trying again");
                return Ok(());
            }
        };
        match access_refused(&error) {
            Some(reason) => Err(format!("redis {reason}: {error}")),
            None => {
                tracing::warn!(%error, "redis unreachable at start: starting, and trying again");
                Ok(())
            }
        }
    }

    /// The metrics `/metrics` shows for Redis.
    pub fn metrics(&self) -> &RedisMetrics {
        &self.inner.metrics
    }

    /// Why this instance cannot serve right now, if it cannot: Redis is
    /// unreachable, or the reader is not reading.
    pub fn trouble(&self) -> Option<&'static str> {
        if !self.inner.reachable.load(Ordering::Relaxed) {
            Some("redis unreachable")
        } else if !self.inner.reading.load(Ordering::Relaxed) {
            Some("redis reader not running")
        } else {
            None
        }
    }

    /// Runs one operation of the script on room `code`: the reply after its
    /// `ok`, or the refusal.
    async fn call(
        &self,
        code: &RoomCode,
        operation: &str,
        args: &[&str],
    ) -> Result<Vec<Value>, RoomError> {
        self.inner.call(code, operation, args).await
    }

    pub async fn create(
        &self,
        creator: Joiner,
        passphrase: Option<PassphraseHash>,
    ) -> Result<(RoomCode, MemberToken), RoomError> {
        let settings = &self.inner.settings;
        let token = MemberToken::random();
        let token_hex = token.to_hex();
        let [name, name_json, skeleton, folded, capitals] = name_args(&creator.name);
        let pass = passphrase.as_ref().map_or("", PassphraseHash::as_stored);
        let max_rooms = settings.max_rooms.to_string();
        for _ in 0..CODE_ATTEMPTS {
            let code = RoomCode::random(&mut rand::rng());
            let epoch = rand::random::<u64>().to_string();
            let args = [
                token_hex.as_str(),
                &name,
                &name_json,
                &skeleton,
                &folded,
                &creator.session,
                pass,
                &max_rooms,
                &epoch,
                &capitals,
            ];
            match self.call(&code, "create", &args).await {
                Ok(_) => {
                    tracing::info!(room = %code, "room opened");
                    return Ok((code, token));
                }
                Err(RoomError::NoFreeCode) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(RoomError::NoFreeCode)
    }

    pub async fn join(&self, code: &RoomCode, joiner: Joiner) -> Result<MemberToken, RoomError> {
        let token = MemberToken::random().to_hex();
        let [name, name_json, skeleton, folded, capitals] = name_args(&joiner.name);
        let existing = joiner.existing.map(MemberToken::to_hex).unwrap_or_default();
        let identified = if joiner.identified { "1" } else { "0" };
        let checked_for = joiner
            .passphrase_for
            .map(|serial| serial.to_string())
            .unwrap_or_default();
        let max_members = self.inner.settings.max_members.to_string();
        let args = [
            token.as_str(),
            &name,
            &name_json,
            &skeleton,
            &folded,
            &joiner.session,
            identified,
            &existing,
            &checked_for,
            &max_members,
            &capitals,
        ];
        let reply = self.call(code, "join", &args).await?;
        MemberToken::from_hex(&text_at(&reply, 0)?).ok_or_else(malformed)
    }

    pub async fn removed(
        &self,
        code: &RoomCode,
        token: Option<MemberToken>,
        session: &str,
    ) -> Result<bool, RoomError> {
        let token = token.map(MemberToken::to_hex).unwrap_or_default();
        let reply = self.call(code, "removed", &[&token, session]).await?;
        Ok(number_at(&reply, 0)? == 1)
    }

    /// The serial a checked passphrase names is the room's epoch: a new room
    /// under the same code wants its own passphrase checked.
    pub async fn passphrase(
        &self,
        code: &RoomCode,
    ) -> Result<Option<(u64, PassphraseHash)>, RoomError> {
        let reply = self.call(code, "passphrase", &[]).await?;
        let epoch: u64 = text_at(&reply, 0)?.parse().map_err(|_| malformed())?;
        Ok(PassphraseHash::from_stored(&text_at(&reply, 1)?).map(|hash| (epoch, hash)))
    }

    pub async fn set_locked(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        locked: bool,
    ) -> Result<(), RoomError> {
        let locked = if locked { "1" } else { "0" };
        self.call(code, "lock", &[&token.to_hex(), locked]).await?;
        Ok(())
    }

    pub async fn remove(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        name: &DisplayName,
    ) -> Result<(), RoomError> {
        let [skeleton, folded, capitals] = name.comparison_keys();
        self.call(
            code,
            "remove",
            &[&token.to_hex(), skeleton, folded, capitals],
        )
        .await?;
        Ok(())
    }

    pub async fn check_member(
        &self,
        code: &RoomCode,
        token: &MemberToken,
    ) -> Result<(), RoomError> {
        self.call(code, "check", &[&token.to_hex()]).await?;
        Ok(())
    }

    pub async fn exists(&self, code: &RoomCode) -> Result<bool, RoomError> {
        match self.call(code, "exists", &[]).await {
            Ok(_) => Ok(true),
            Err(RoomError::NotFound) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Rooms open in Redis (as last counted, every few seconds); members and
    /// streams of this instance's feeds; totals of this instance.
    pub fn stats(&self) -> RoomStats {
        let inner = &self.inner;
        let (members, streams) = inner
            .feeds
            .all()
            .iter()
            .map(|feed| feed.counts())
            .fold((0, 0), |(m, s), (members, streams)| {
                (m + members, s + streams)
            });
        RoomStats {
            rooms: inner.rooms_open.load(Ordering::Relaxed),
            members: members as u64,
            streams: streams as u64,
            messages: inner.tally.messages.load(Ordering::Relaxed),
            deliveries: inner.tally.deliveries.load(Ordering::Relaxed),
            resets: inner.tally.resets.load(Ordering::Relaxed),
            history_bytes: inner.feeds.history().held(),
            history_trims: inner.feeds.history().trimmed(),
        }
    }

    /// The room as a member sees it; `page`: with its history, and counting
    /// as activity.
    async fn view(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        page: bool,
    ) -> Result<RoomSnapshot, RoomError> {
        let page_flag = if page { "1" } else { "0" };
        let reply = self
            .call(code, "view", &[&token.to_hex(), page_flag])
            .await?;
        let me = DisplayName::parse(&text_at(&reply, 0)?).map_err(|_| malformed())?;
        let owner_token = reply.get(1).and_then(Reply::number) == Some(1);
        let locked = number_at(&reply, 2)? == 1;
        let last_id = id_at(&reply, 3)?;
        let epoch = text_at(&reply, 7)?.parse().map_err(|_| malformed())?;
        let owner = reply.get(6).and_then(Reply::text);
        let private = number_at(&reply, 8)? == 1;
        let mut people: Vec<(i64, Presence)> = reply
            .get(4)
            .map(Reply::items)
            .unwrap_or_default()
            .chunks(4)
            .filter_map(|member| {
                let token = member[0].text()?;
                let name = DisplayName::parse(&member.get(1)?.text()?).ok()?;
                let order = member.get(2)?.number()?;
                let open = member.get(3)?.number()?;
                Some((
                    order,
                    Presence {
                        name,
                        connected: open > 0,
                        owner: owner.as_deref() == Some(token.as_str()),
                    },
                ))
            })
            .collect();
        people.sort_by_key(|(order, _)| *order);
        let history = reply
            .get(5)
            .map(entries)
            .unwrap_or_default()
            .into_iter()
            .map(|(event, _)| event)
            .collect();
        Ok(RoomSnapshot {
            me,
            history,
            present: people.into_iter().map(|(_, p)| p).collect(),
            last_id,
            mine: owner_token,
            locked,
            private,
            epoch,
        })
    }

    pub async fn snapshot(
        &self,
        code: &RoomCode,
        token: &MemberToken,
    ) -> Result<RoomSnapshot, RoomError> {
        self.view(code, token, true).await
    }

    pub async fn present(
        &self,
        code: &RoomCode,
        token: &MemberToken,
    ) -> Result<Vec<Presence>, RoomError> {
        Ok(self.view(code, token, false).await?.present)
    }

    pub async fn publish_message(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        text: MessageText,
        key: Option<IdempotencyKey>,
    ) -> Result<Published, RoomError> {
        let token = token.to_hex();
        let text_json =
            serde_json::to_string(&text.into_string()).map_err(|_| RoomError::Unavailable)?;
        // A message sent without a key is stored under one of ours, so that
        // sending it again after a lost connection (`Inner::send`) stores it
        // once. Ours start with `!`, which no client's key has, so no client
        // names them.
        let ours = key.is_none();
        let field = match key {
            Some(key) => format!("{token}|{}", key.as_str()),
            None => format!("{token}|!{:032x}", rand::random::<u128>()),
        };
        let reply = self
            .call(code, "publish", &[&token, &text_json, &field])
            .await?;
        let id = id_at(&reply, 0)?;
        match number_at(&reply, 1)? {
            // Under our own key, only our own second sending repeats it.
            repeat if repeat == 1 || ours => {
                self.inner.tally.messages.fetch_add(1, Ordering::Relaxed);
                Ok(Published::New(id))
            }
            _ => Ok(Published::Repeat(id)),
        }
    }

    pub async fn sent_under(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        key: &IdempotencyKey,
    ) -> Result<Option<u64>, RoomError> {
        let field = format!("{}|{}", token.to_hex(), key.as_str());
        let reply = self.call(code, "sent", &[&field]).await?;
        Ok(u64::try_from(number_at(&reply, 0)?).ok())
    }

    pub async fn leave(&self, code: &RoomCode, token: &MemberToken) -> Result<(), RoomError> {
        self.call(code, "leave", &[&token.to_hex()]).await?;
        Ok(())
    }

    /// Opens a stream: leases the member for this instance, and takes the
    /// backlog from Redis, which is ahead of (or level with) the local feed.
    /// The receiver is subscribed first, so nothing falls between the two.
    pub async fn subscribe(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        after: Option<u64>,
        epoch: Option<u64>,
    ) -> Result<Subscription, RoomError> {
        let inner = &self.inner;
        let capacity = inner.settings.channel_capacity;
        let mut feed = inner.feeds.enter(*code, capacity);
        let opened = loop {
            let opened = match self.open_on(&feed, token, after).await {
                Ok(opened) => opened,
                Err(error) => {
                    inner.feeds.leave(&feed);
                    return Err(error);
                }
            };
            match opened.seeded {
                Seeded::Now => {
                    inner.wake_reader().await;
                    break opened;
                }
                Seeded::Already => break opened,
                Seeded::OtherRoom => {
                    // The feed mirrors a room that closed; this stream is of
                    // the new one under the same code.
                    feed.stream_closed(*token);
                    feed = inner.feeds.replace(&feed, capacity);
                }
            }
        };
        let Opened {
            receiver,
            membership_ended,
            epoch: current,
            seq,
            oldest,
            events,
            ..
        } = opened;
        let backlog = match after {
            _ if epoch.is_some_and(|epoch| epoch != current) => Backlog::Gap,
            None => Backlog::Events(Vec::new()),
            Some(after) => events_after(after, seq, oldest, events.iter()),
        };
        if let Backlog::Events(events) = &backlog {
            let replayed = u64::try_from(events.len()).unwrap_or(u64::MAX);
            inner
                .tally
                .deliveries
                .fetch_add(replayed, Ordering::Relaxed);
        }
        Ok(Subscription {
            receiver,
            backlog,
            resume_after: seq,
            membership_ended,
            handle: StreamHandle::shared(SharedHold {
                rooms: self.clone(),
                feed,
                token: *token,
            }),
        })
    }

    /// Runs `open` for a stream of `token` on `feed`: leases the member for
    /// this instance and reads the room's position (and, for a feed not yet
    /// seeded, its whole history, which seeds it). The receiver is subscribed
    /// before, so nothing falls between the two.
    async fn open_on(
        &self,
        feed: &Feed,
        token: &MemberToken,
        after: Option<u64>,
    ) -> Result<Opened, RoomError> {
        let receiver = feed.subscribe();
        let from = match (feed.last_id(), after) {
            (0, _) => Some(0),
            (_, after) => after,
        };
        let from = from.map(|id| id.to_string()).unwrap_or_default();
        let guard = feed.leases.lock().await;
        let reply = self
            .call(
                &feed.code,
                "open",
                &[&token.to_hex(), &self.inner.instance, &from],
            )
            .await?;
        let room_epoch = text_at(&reply, 0)?;
        let epoch = room_epoch.parse().map_err(|_| malformed())?;
        let (seq, oldest) = (id_at(&reply, 1)?, id_at(&reply, 2)?);
        // Counted open under the lease lock: a close of this member's last
        // stream here, waiting for it, then sees this one and keeps the lease.
        let membership_ended = feed.stream_opened(*token);
        drop(guard);
        let events: Vec<Arc<Event>> = reply
            .get(3)
            .map(entries)
            .unwrap_or_default()
            .into_iter()
            .map(|(event, _)| event)
            .collect();
        let seeded = feed.seed(&room_epoch, seq, &events);
        Ok(Opened {
            receiver,
            membership_ended,
            epoch,
            seq,
            oldest,
            events,
            seeded,
        })
    }

    /// This instance's last stream of `token` in the feed's room closed: its
    /// lease runs for the grace period (unless a stream opened again meanwhile).
    async fn release(&self, feed: &Feed, token: MemberToken) {
        let _guard = feed.leases.lock().await;
        let inner = &self.inner;
        // A stream of theirs opened again meanwhile (in this feed, or in the
        // one that replaced it): the lease stays open.
        if feed.streaming(&token) || inner.feeds.streaming(&feed.code, &token) {
            return;
        }
        // Failing is fine: the lease lapses by itself.
        let closed = self
            .call(&feed.code, "close", &[&token.to_hex(), &inner.instance])
            .await;
        let grace = inner.settings.grace;
        if closed.is_ok() && !grace.is_zero() {
            inner.reaps.after(grace, feed.code);
        }
    }
}

impl Inner {
    /// Every key the script is given, in its order (`rooms.lua`): the room's,
    /// then the global index.
    fn keys(code: &RoomCode) -> [String; 11] {
        [
            room_key(code, "meta"),
            room_key(code, "members"),
            room_key(code, "names"),
            room_key(code, "removed"),
            room_key(code, "events"),
            room_key(code, "idem"),
            room_key(code, "idemq"),
            room_key(code, "presence"),
            room_key(code, "holds"),
            String::from(ROOMS_KEY),
            String::from(HISTORY_KEY),
        ]
    }

    async fn call(
        &self,
        code: &RoomCode,
        operation: &str,
        args: &[&str],
    ) -> Result<Vec<Value>, RoomError> {
        let settings = &self.settings;
        let mut script = redis::cmd("EVALSHA");
        let keys = Self::keys(code);
        script.arg(SCRIPT.get_hash()).arg(keys.len()).arg(&keys);
        script
            .arg(code.as_str())
            .arg(now_rfc3339())
            .arg(settings.history.max(1))
            .arg(settings.unclaimed_timeout.as_millis() as u64)
            .arg(settings.grace.as_millis() as u64)
            .arg(self.lease.as_millis() as u64)
            .arg(settings.history_bytes)
            .arg(settings.max_history_bytes)
            .arg(operation);
        for arg in args {
            script.arg(*arg);
        }
        let started = Instant::now();
        let script = &script;
        let (invoked, resent) = self
            .send(|connection| self.run_script(connection, script))
            .await;
        let reply = match invoked {
            Ok((reply, confirmed)) if confirmed >= self.replicas => {
                if self.unconfirmed.swap(false, Ordering::Relaxed) {
                    tracing::info!("redis replicas confirm changes again");
                }
                reply
            }
            Ok((reply, confirmed)) => {
                // Done on the primary, but not known to survive its loss: not
                // acknowledged. Sent again, it is done once (see `send`).
                if !self.unconfirmed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        confirmed,
                        wanted = self.replicas,
                        "redis replicas do not confirm changes in time: refusing them"
                    );
                }
                if operation != "refresh" {
                    return Err(RoomError::Unavailable);
                }
                reply
            }
            Err(error) => {
                self.unreachable(&error);
                return Err(RoomError::Unavailable);
            }
        };
        self.metrics
            .round_trip
            .observe(started.elapsed().as_secs_f64());
        if !self.reachable.swap(true, Ordering::Relaxed) {
            self.back.notify_one();
        }
        let Value::Array(mut items) = reply else {
            return Err(malformed());
        };
        if items.is_empty() {
            return Err(malformed());
        }
        match items.remove(0) {
            Value::BulkString(status) if status == b"ok" => Ok(items),
            Value::BulkString(status) => match (operation, refusal(&status)) {
                // Sent again after its connection closed: the first may have
                // run, and then the member is gone because of it. (Every other
                // operation answers the same when run twice: see `send`.)
                ("leave", RoomError::NotMember) | ("remove", RoomError::NoSuchMember) if resent => {
                    Ok(items)
                }
                (_, refused) => Err(refused),
            },
            _ => Err(malformed()),
        }
    }

    /// Runs the script (loading it first into a Redis that has not seen it)
    /// and, with `--redis-replicas`, `WAIT`s for the replicas in the same
    /// pipeline, on the same connection, so that the replicas it counts have
    /// this change: the reply, and how many replicas confirmed it.
    async fn run_script(
        &self,
        mut connection: ConnectionManager,
        script: &redis::Cmd,
    ) -> redis::RedisResult<(Value, u32)> {
        for attempt in 0..2 {
            let run = if self.replicas == 0 {
                script
                    .query_async::<Value>(&mut connection)
                    .await
                    .map(|reply| (reply, 0))
            } else {
                redis::pipe()
                    .add_command(script.clone())
                    .cmd("WAIT")
                    .arg(self.replicas)
                    .arg(REPLICAS_TIMEOUT.as_millis() as u64)
                    .query_async::<(Value, u32)>(&mut connection)
                    .await
            };
            match run {
                Err(error)
                    if attempt == 0
                        && error.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    SCRIPT.load_async(&mut connection).await?;
                }
                done => return done,
            }
        }
        Err(std::io::Error::other("the room script would not load").into())
    }

    /// Sends a command on the shared connection, and sends it once more if
    /// that connection turned out to be closed (Redis's `timeout`, a NAT or
    /// firewall dropping an idle connection, `CLIENT KILL`, a failover): the
    /// connection manager has begun a fresh connection by then, which the
    /// second attempt waits for. A refused connection or a timeout means
    /// Redis itself is not answering, and is not sent again. Each attempt is
    /// bounded by [`RESPONSE_TIMEOUT`]: while Redis is down, an attempt waits
    /// for the manager's reconnection attempts, which its response timeout
    /// (per command, once connected) does not bound. Also whether it was
    /// sent again.
    ///
    /// Whether the first attempt reached Redis cannot be told (its reply is
    /// what was lost), so every command must do no harm when run twice: the
    /// script's operations answer a repeat as they answered the first
    /// (`create` and `join` recognise their own fresh token, a message is
    /// stored under a key even when its sender gave none), but for `leave`
    /// and `remove`, whose repeat finds the member gone ([`Inner::call`]).
    async fn send<T, F, Fut>(&self, attempt: F) -> (redis::RedisResult<T>, bool)
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let bounded = |attempt: Fut| async move {
            tokio::time::timeout(RESPONSE_TIMEOUT, attempt)
                .await
                .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()))
        };
        // On the primary's connection as it is now: a failover replaces it.
        let once = || async {
            match self.primary.commands() {
                Ok(connection) => bounded(attempt(connection)).await,
                Err(error) => Err(error),
            }
        };
        match once().await {
            Err(error) if connection_closed(&error) => {
                tracing::debug!(%error, "redis connection closed: sending again on a fresh one");
                self.metrics.reconnects.inc();
                (once().await, true)
            }
            done => (done, false),
        }
    }

    /// A room's feed was just seeded: the reader must take it in before Redis
    /// trims what it should read (it reads only the rooms it knew when its
    /// `XREAD` began), so its wait is cut short.
    async fn wake_reader(&self) {
        self.feeds_added.notify_one();
        let reader = self.reader_id.load(Ordering::Relaxed);
        if reader != 0 {
            let unblock = redis::cmd("CLIENT").arg("UNBLOCK").arg(reader).clone();
            let unblock = &unblock;
            let (unblocked, _) =
                self.send(|mut connection| async move {
                    unblock.query_async::<i64>(&mut connection).await
                })
                .await;
            if let Err(error) = unblocked {
                self.unreachable(&error);
            }
        }
    }

    /// Renews this instance's leases on the members of `feed`'s room whose
    /// streams it holds (the script reaps the room's lapsed ones too), and ends
    /// the streams of memberships that ended elsewhere, or of a closed room.
    async fn renew(&self, feed: &Feed) {
        let members = feed.members();
        if members.is_empty() {
            return;
        }
        let tokens: Vec<String> = members.iter().map(|t| t.to_hex()).collect();
        let mut args: Vec<&str> = vec![&self.instance];
        args.extend(tokens.iter().map(String::as_str));
        let _guard = feed.leases.lock().await;
        match self.call(&feed.code, "refresh", &args).await {
            Ok(reply) => {
                let gone: Vec<MemberToken> = reply
                    .first()
                    .map(Reply::items)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|t| MemberToken::from_hex(&t.text()?))
                    .collect();
                feed.end(&gone);
            }
            Err(RoomError::NotFound) => feed.end_everyone(),
            Err(_) => {}
        }
    }

    /// A command failed: Redis is gone (counted once per outage), or the
    /// script failed (a bug, logged).
    fn unreachable(&self, error: &redis::RedisError) {
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || primary::read_only(error)
        {
            // Perhaps the primary failed over: the sentinels know.
            self.primary.in_doubt();
            if self.reachable.swap(false, Ordering::Relaxed) {
                tracing::warn!(%error, "redis unreachable");
                self.metrics.reconnects.inc();
            }
        } else {
            tracing::error!(%error, "redis command failed");
        }
    }
}

/// The command failed because its connection was closed under it (reset,
/// broken pipe, end of stream), not because Redis refused a connection or did
/// not answer in time: on a fresh connection it may well succeed.
fn connection_closed(error: &redis::RedisError) -> bool {
    error.is_connection_dropped() && !error.is_connection_refusal() && !error.is_timeout()
}

/// Why Redis, which answered, will not serve this instance, if that is what
/// `error` says: nothing that waiting would mend.
fn access_refused(error: &redis::RedisError) -> Option<&'static str> {
    use redis::ErrorKind;
    match error.kind() {
        ErrorKind::AuthenticationFailed => Some(
            "refused the user and password in --redis (wrong password, unknown or disabled user)",
        ),
        ErrorKind::Server(_) => Some(
            "refused this instance (no user and password in --redis, or the user lacks a permission)",
        ),
        ErrorKind::InvalidClientConfig => Some("cannot be reached as --redis says"),
        // rustls reports a certificate it does not trust as invalid data.
        ErrorKind::Io if error.to_string().contains("certificate") => Some(
            "sent a TLS certificate this instance does not trust (signed by --redis-ca, or a CA the system trusts?)",
        ),
        _ => None,
    }
}

/// Room `code`'s key for `part`: every key of a room is in the hash slot of
/// `{CODE}`, so that one script may use them all (in a Redis Cluster too).
fn room_key(code: &RoomCode, part: &str) -> String {
    format!("room:{{{}}}:{part}", code.as_str())
}

/// The global index of open rooms (not in any room's slot).
const ROOMS_KEY: &str = "chat:rooms";

/// The bytes each open room's history keeps, and (`*`) all of theirs.
const HISTORY_KEY: &str = "chat:history";

/// Every few seconds: renews this instance's leases on the members whose
/// streams it holds (reaping the room's lapsed ones), ends the streams of
/// memberships that ended elsewhere, and counts the rooms open.
async fn renew(inner: Weak<Inner>, every: Duration, back: Arc<Notify>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = back.notified() => {}
            () = stop.cancelled() => return,
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        // All rooms at once: one after another, each behind the posts in
        // flight, a thousand busy rooms took longer than a lease lasts.
        let mut renewals = tokio::task::JoinSet::new();
        for feed in inner.feeds.all() {
            let inner = Arc::clone(&inner);
            renewals.spawn(async move { inner.renew(&feed).await });
        }
        while renewals.join_next().await.is_some() {}
        let now_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let count = redis::cmd("ZCOUNT")
            .arg(ROOMS_KEY)
            .arg(now_ms)
            .arg("+inf")
            .clone();
        let count = &count;
        let (counted, _) = inner
            .send(|mut connection| async move { count.query_async::<u64>(&mut connection).await })
            .await;
        match counted {
            Ok(rooms) => {
                inner.rooms_open.store(rooms, Ordering::Relaxed);
                if !inner.reachable.swap(true, Ordering::Relaxed) {
                    inner.back.notify_one();
                }
            }
            Err(error) => inner.unreachable(&error),
        }
    }
}
