//! The rooms: create, join, publish, subscribe with replay, presence, close.
//!
//! [`Rooms`] is the one handle the rest of the server uses for everything a room
//! does, whichever backend holds the rooms: [`memory`] keeps them in this
//! process (the default), [`shared`] keeps them in Redis so that several
//! instances serve the same rooms (`--redis`). Both answer the same operations
//! with the same refusals; only the shared one can also be [`RoomError::Unavailable`].
//!
//! Being a member is proven by a [`MemberToken`] minted at that join: the session
//! cookie carries it, so a copy of the cookie made before the join proves nothing.

mod event;
mod history;
mod memory;
mod room;
pub mod shared;
pub mod snapshot;
mod timers;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use self::event::{Event, EventContent, EventKind};
use self::memory::LocalHold;
pub use self::memory::LocalRooms;
pub use self::room::{Backlog, Joiner, Presence, Published, RoomSnapshot};
use self::shared::{SharedHold, SharedRooms};
use crate::input::{DisplayName, IdempotencyKey, MessageText, RoomCode};
use crate::passphrase::PassphraseHash;

/// How many random codes to try before saying every code is taken.
const CODE_ATTEMPTS: usize = 64;

/// Why a room operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomError {
    /// No open room has this code.
    NotFound,
    /// The session is not a member of this room.
    NotMember,
    /// Another member of the room uses this name (or one that looks the same).
    NameTaken,
    /// The room has as many members as it may.
    RoomFull,
    /// The server has as many rooms open as it may.
    TooManyRooms,
    /// Every room's history together holds as many bytes as it may
    /// (`--max-history-bytes`): no new room until some close.
    HistoryFull,
    /// Nearly every code is in use.
    NoFreeCode,
    /// Only the room's owner may do this.
    NotOwner,
    /// The room is locked: no one new may join.
    Locked,
    /// The owner removed this member (or this session): they may not come back.
    Removed,
    /// The owner removed someone of this name; a newcomer must pick another.
    NameRemoved,
    /// The room is private and the passphrase was missing or wrong.
    WrongPassphrase,
    /// Nobody of that name is in the room.
    NoSuchMember,
    /// The owner cannot remove themselves (they can leave).
    CannotRemoveOwner,
    /// The shared store (Redis) cannot be reached: try again (the operation
    /// was not done, unless Redis went away while answering).
    Unavailable,
}

/// Proof of one membership: minted when someone joins a room, kept in their
/// session cookie. Random, so that it cannot be guessed from anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberToken(u128);

impl MemberToken {
    fn random() -> Self {
        Self(rand::random())
    }

    /// As the shared store writes it: 32 hex digits.
    fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    fn from_hex(hex: &str) -> Option<Self> {
        u128::from_str_radix(hex, 16).ok().map(Self)
    }
}

/// Running totals over every room the registry ever opened, for the metrics.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages published.
    messages: AtomicU64,
    /// Events handed to open streams: each event once per stream it went to.
    deliveries: AtomicU64,
    /// `reset` events sent to streams that asked for more than history keeps.
    resets: AtomicU64,
}

/// How the rooms stand, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomStats {
    pub rooms: u64,
    pub members: u64,
    pub streams: u64,
    pub messages: u64,
    pub deliveries: u64,
    pub resets: u64,
    /// Bytes of event frames kept in history (with Redis: in this instance's
    /// mirrors of the rooms it serves).
    pub history_bytes: u64,
    /// Events history let go to keep to its byte bounds.
    pub history_trims: u64,
}

/// Timing and size rules shared by every room.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// How long a member's last stream, and a room's last stream, may stay away
    /// before the member leaves or the room closes.
    pub grace: Duration,
    /// How long a new member (or a new room) may go without opening a stream.
    pub unclaimed_timeout: Duration,
    /// Events kept for replay and for the room page.
    pub history: usize,
    /// Bytes of event frames one room's history keeps.
    pub history_bytes: usize,
    /// Bytes of event frames every room's history together keeps.
    pub max_history_bytes: usize,
    /// Events a subscriber may fall behind before it catches up from history.
    pub channel_capacity: usize,
    /// Most rooms open at once.
    pub max_rooms: usize,
    /// Most members in one room.
    pub max_members: usize,
}

/// What opening an event stream gives its subscriber.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Arc<Event>>,
    pub backlog: Backlog,
    /// Id of the newest event covered by the backlog; live events start after it.
    pub resume_after: u64,
    /// Cancelled when the member leaves the room: the stream ends.
    pub membership_ended: CancellationToken,
    pub handle: StreamHandle,
}

/// An open stream's hold on its room: dropping it closes the stream, which may
/// start the grace period of the member and of the room.
pub struct StreamHandle(Hold);

enum Hold {
    Local(LocalHold),
    Shared(SharedHold),
}

impl StreamHandle {
    fn local(hold: LocalHold) -> Self {
        Self(Hold::Local(hold))
    }

    fn shared(hold: SharedHold) -> Self {
        Self(Hold::Shared(hold))
    }

    /// What a subscriber that fell behind the channel must send to be whole
    /// again, and the id of the newest event that covers.
    pub fn catch_up(&self, after: u64) -> (Backlog, u64) {
        match &self.0 {
            Hold::Local(hold) => hold.catch_up(after),
            Hold::Shared(hold) => hold.catch_up(after),
        }
    }

    /// Counts a `reset` sent on this stream.
    pub fn reset_sent(&self) {
        match &self.0 {
            Hold::Local(hold) => hold.reset_sent(),
            Hold::Shared(hold) => hold.reset_sent(),
        }
    }
}

/// Cheap-to-clone handle on every open room, in whichever backend holds them.
#[derive(Clone)]
pub enum Rooms {
    /// In this process only.
    Local(LocalRooms),
    /// In Redis, shared by every instance that uses it.
    Shared(SharedRooms),
}

/// Calls the same method on whichever backend `$rooms` is, awaiting the shared one.
macro_rules! either {
    ($rooms:expr, $method:ident($($arg:expr),*)) => {
        match $rooms {
            Rooms::Local(rooms) => rooms.$method($($arg),*),
            Rooms::Shared(rooms) => rooms.$method($($arg),*).await,
        }
    };
}

impl Rooms {
    /// Rooms in this process, and the task that runs their timers. Needs a
    /// Tokio runtime.
    pub fn in_memory(settings: RoomSettings) -> Self {
        Self::Local(LocalRooms::new(settings))
    }

    /// Opens a room under a fresh code with `creator` as its first member and
    /// owner; with a passphrase's hash, the room is private.
    pub async fn create(
        &self,
        creator: Joiner,
        passphrase: Option<PassphraseHash>,
    ) -> Result<(RoomCode, MemberToken), RoomError> {
        either!(self, create(creator, passphrase))
    }

    /// Makes someone a member, announcing them; `existing` is the token their
    /// session holds for this room, and being a member already is fine.
    pub async fn join(&self, code: &RoomCode, joiner: Joiner) -> Result<MemberToken, RoomError> {
        either!(self, join(code, joiner))
    }

    /// Whether the owner of room `code` removed this membership or session
    /// (no: if there is no such room).
    pub async fn removed(
        &self,
        code: &RoomCode,
        token: Option<MemberToken>,
        session: &str,
    ) -> Result<bool, RoomError> {
        match self {
            Self::Local(rooms) => Ok(rooms.removed(code, token, session)),
            Self::Shared(rooms) => rooms.removed(code, token, session).await,
        }
    }

    /// For a private room, the hash a joiner's passphrase must match, and the
    /// room's serial (what [`Joiner::passphrase_for`] names once it matched).
    pub async fn passphrase(
        &self,
        code: &RoomCode,
    ) -> Result<Option<(u64, PassphraseHash)>, RoomError> {
        either!(self, passphrase(code))
    }

    /// The owner locks (`true`) or unlocks the room.
    pub async fn set_locked(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        locked: bool,
    ) -> Result<(), RoomError> {
        either!(self, set_locked(code, token, locked))
    }

    /// The owner removes the member called `name`.
    pub async fn remove(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        name: &DisplayName,
    ) -> Result<(), RoomError> {
        either!(self, remove(code, token, name))
    }

    /// `Ok` if `token` proves a membership of the open room `code`.
    pub async fn check_member(
        &self,
        code: &RoomCode,
        token: &MemberToken,
    ) -> Result<(), RoomError> {
        either!(self, check_member(code, token))
    }

    /// Whether a room with this code is open.
    pub async fn exists(&self, code: &RoomCode) -> Result<bool, RoomError> {
        match self {
            Self::Local(rooms) => Ok(rooms.exists(code)),
            Self::Shared(rooms) => rooms.exists(code).await,
        }
    }

    /// At start: whether the store will serve this instance. Rooms in
    /// memory always will; Redis may refuse it (see `SharedRooms::check_access`).
    pub async fn check_access(&self) -> Result<(), String> {
        match self {
            Self::Local(_) => Ok(()),
            Self::Shared(rooms) => rooms.check_access().await,
        }
    }

    /// Rooms, members and streams now, and the running totals; with Redis,
    /// as this instance last heard (see `SharedRooms::stats`).
    pub fn stats(&self) -> RoomStats {
        match self {
            Self::Local(rooms) => rooms.stats(),
            Self::Shared(rooms) => rooms.stats(),
        }
    }

    /// The room as its page shows it to a member; viewing counts as activity.
    pub async fn snapshot(
        &self,
        code: &RoomCode,
        token: &MemberToken,
    ) -> Result<RoomSnapshot, RoomError> {
        either!(self, snapshot(code, token))
    }

    /// Everyone in the room, for a member.
    pub async fn present(
        &self,
        code: &RoomCode,
        token: &MemberToken,
    ) -> Result<Vec<Presence>, RoomError> {
        either!(self, present(code, token))
    }

    /// Publishes a member's message, once per idempotency key while history
    /// holds it; posting counts as activity.
    pub async fn publish_message(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        text: MessageText,
        key: Option<IdempotencyKey>,
    ) -> Result<Published, RoomError> {
        either!(self, publish_message(code, token, text, key))
    }

    /// The id of the message the member already sent under `key`, if any.
    pub async fn sent_under(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        key: &IdempotencyKey,
    ) -> Result<Option<u64>, RoomError> {
        either!(self, sent_under(code, token, key))
    }

    /// Opens an event stream for a member, replaying what came after `after`.
    /// A client that says which room it read (`epoch`, from the page) and read
    /// an earlier room under this code gets a gap (a `reset`): never this
    /// room's events as the ones it missed.
    pub async fn subscribe(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        after: Option<u64>,
        epoch: Option<u64>,
    ) -> Result<Subscription, RoomError> {
        either!(self, subscribe(code, token, after, epoch))
    }

    /// The member leaves room `code` at once; their streams there end.
    pub async fn leave(&self, code: &RoomCode, token: &MemberToken) -> Result<(), RoomError> {
        either!(self, leave(code, token))
    }

    /// The rooms of this process, if they live here (not in Redis).
    pub fn local(&self) -> Option<&LocalRooms> {
        match self {
            Self::Local(rooms) => Some(rooms),
            Self::Shared(_) => None,
        }
    }
}
