//! One room: its members, its history, its broadcast channel and its open streams.
//!
//! A `Room` only changes state and reports what should happen later ("start a grace
//! timer for this member"); the registry in `rooms/mod.rs` owns the timers and the
//! map of codes, so this file has no clocks and no tasks and is tested directly.
//!
//! Someone becomes a member, and is announced with a `join`, the moment they join:
//! nobody can read a room before everyone in it can see that they are there.
//!
//! Whoever creates a room owns it; when the owner leaves, the member who has
//! been there longest becomes the owner. The owner can lock the room (no one new
//! joins) and remove members, who then cannot come back while the room lives:
//! not with the same membership, the same session, or the same name. A private
//! room keeps its passphrase's hash; checking a passphrase is slow and happens
//! outside the room's lock, so a join only carries proof that it was done for
//! this room ([`Joiner::passphrase_for`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::event::{Event, EventKind};
use super::history::{Budget, History};
use super::snapshot::{Frame, MemberRecord, RoomRecord, SentRecord};
use super::{MemberToken, RoomError, Tally};
use crate::input::{DisplayName, IdempotencyKey, MessageText, RoomCode};
use crate::passphrase::PassphraseHash;

/// What a new stream must send before the live events.
#[derive(Debug)]
pub enum Backlog {
    /// The kept events after the id the client asked for (possibly none).
    Events(Vec<Arc<Event>>),
    /// Events the client asked for are no longer kept: it must start afresh.
    Gap,
}

/// The kept events after `after`, of a room whose newest id is `last_id` and
/// oldest kept `oldest` (`last_id + 1` when it keeps none): nothing when the
/// client is up to date, a gap when history no longer reaches back, or the
/// client saw ids this room never issued (an older room under the same code).
pub fn events_after<'a>(
    after: u64,
    last_id: u64,
    oldest: u64,
    kept: impl Iterator<Item = &'a Arc<Event>>,
) -> Backlog {
    if after == last_id {
        return Backlog::Events(Vec::new());
    }
    if after > last_id || after + 1 < oldest {
        return Backlog::Gap;
    }
    Backlog::Events(kept.filter(|e| e.id > after).cloned().collect())
}

/// One person in a room's presence list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Presence {
    pub name: DisplayName,
    /// Whether they have an event stream open right now.
    pub connected: bool,
    /// Whether they own the room.
    pub owner: bool,
}

/// A room's state as the room page shows it.
#[derive(Debug)]
pub struct RoomSnapshot {
    /// The name the viewing member uses in this room.
    pub me: DisplayName,
    pub history: Vec<Arc<Event>>,
    /// Every member, in the order they joined.
    pub present: Vec<Presence>,
    /// Id of the newest event; a stream opened `after` it misses nothing.
    pub last_id: u64,
    /// Whether the viewing member owns the room.
    pub mine: bool,
    /// Which room under this code it is (see [`Room::incarnation`]).
    pub epoch: u64,
    pub locked: bool,
    /// Joining needs a passphrase: the page tells everyone so.
    pub private: bool,
}

/// Someone asking to join a room.
#[derive(Debug, Clone)]
pub struct Joiner {
    pub name: DisplayName,
    /// The membership their session holds for this room, if any.
    pub existing: Option<MemberToken>,
    /// Their session's id, opaque here: a removed session may not come back.
    pub session: String,
    /// The name is a signed-in identity, not typed: a member with that name
    /// already is this same person.
    pub identified: bool,
    /// The serial of the room whose passphrase they gave, checked.
    pub passphrase_for: Option<u64>,
}

#[cfg(test)]
impl Joiner {
    /// Someone typing `name`, in a session of their own, with no membership.
    pub fn named(name: &str) -> Self {
        Self {
            name: DisplayName::parse(name).expect("a valid name"),
            existing: None,
            session: format!("{:032x}", rand::random::<u128>()),
            identified: false,
            passphrase_for: None,
        }
    }

    /// The same, holding `token` for the room.
    pub fn holding(name: &str, token: MemberToken) -> Self {
        Self {
            existing: Some(token),
            ..Self::named(name)
        }
    }
}

/// Returned by [`Room::close_stream`] and [`Room::touch`]: the idle timers the
/// registry should start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IdleTimers {
    /// The member has no stream left: after the grace period, if this epoch still
    /// holds, they have left.
    pub member_epoch: Option<u64>,
    /// The room has no stream left: after the grace period, if this epoch still
    /// holds, the room closes.
    pub room_epoch: Option<u64>,
}

/// What [`Room::publish_message`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The message is new, with this id.
    New(u64),
    /// The member sent it before under the same key: this is its id.
    Repeat(u64),
}

/// What [`Room::join`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// A new member, announced; `epoch` starts their stream-less idle timer.
    New { token: MemberToken, epoch: u64 },
    /// The token already belonged to a member; nothing changed.
    Already(MemberToken),
}

pub struct Room {
    pub code: RoomCode,
    /// Unique among every room the registry ever opened (codes are reused).
    pub serial: u64,
    /// Random, told to pages: a client of an earlier room under the same code
    /// that says which room it read is told to start afresh, not replayed
    /// this one's events as if they were the ones it missed.
    pub incarnation: u64,
    /// Where the room's events go.
    outlet: Outlet,
    // std Mutex: never held across an `.await`; every critical section is short.
    state: Mutex<RoomState>,
}

/// Where a room's events go: the history (the state's), every open stream, and
/// the registry's running totals.
struct Outlet {
    /// Every open stream holds a receiver. Sending happens under the state lock so
    /// the channel's order is the history's order.
    sender: broadcast::Sender<Arc<Event>>,
    tally: Arc<Tally>,
}

struct RoomState {
    /// Set once the registry removed the room; every later call answers `NotFound`.
    closed: bool,
    next_id: u64,
    history: History,
    members: HashMap<MemberToken, Member>,
    /// Members joined so far, to list people in the order they came.
    joins: u64,
    open_streams: usize,
    /// Set anew whenever the room's stream count leaves or reaches zero, so a close
    /// timer started earlier can tell it has been overtaken.
    epoch: u64,
    /// Source of epochs for the room and its members. One counter for all, so an
    /// epoch never repeats, even for a new membership of the same person.
    ticks: u64,
    owner: Option<MemberToken>,
    /// No one new may join.
    locked: bool,
    passphrase: Option<PassphraseHash>,
    /// Who the owner removed: their memberships, sessions and names.
    removed_members: HashSet<MemberToken>,
    removed_sessions: HashSet<String>,
    removed_names: Vec<DisplayName>,
    /// The idempotency keys of the messages history holds, and their ids.
    sent: HashMap<(MemberToken, IdempotencyKey), u64>,
    /// The same keys in the order their messages came, to forget each key when
    /// its message leaves history.
    sent_order: VecDeque<(u64, (MemberToken, IdempotencyKey))>,
}

struct Member {
    name: DisplayName,
    /// The session that joined, so that a removal shuts it out.
    session: String,
    /// Unique per membership in this room; also the order people came in.
    order: u64,
    streams: usize,
    /// Whether a stream was ever opened: until then the member keeps their place
    /// by activity (posts, page views) rather than by a stream and its grace.
    streamed: bool,
    /// Set anew whenever the member's stream count leaves or reaches zero.
    epoch: u64,
    /// Cancelled when the membership ends, so the member's open streams end too.
    ended: CancellationToken,
    /// Restored after a restart and not back yet: counts as connected, since
    /// their stream ended only because the server stopped.
    restored: bool,
}

/// What a new stream starts from.
pub struct OpenedStream {
    pub receiver: broadcast::Receiver<Arc<Event>>,
    pub backlog: Backlog,
    /// Id of the newest event the backlog covers.
    pub resume_after: u64,
    /// Cancelled when the member leaves.
    pub membership_ended: CancellationToken,
    /// Which membership the stream belongs to; given back to [`Room::close_stream`].
    pub membership: u64,
}

impl Room {
    /// A new room with nobody in it yet.
    pub fn new(
        code: RoomCode,
        serial: u64,
        history: Arc<Budget>,
        channel_capacity: usize,
        tally: Arc<Tally>,
        passphrase: Option<PassphraseHash>,
    ) -> Self {
        let (sender, _) = broadcast::channel(channel_capacity.max(1));
        Self {
            code,
            serial,
            incarnation: rand::random(),
            outlet: Outlet { sender, tally },
            state: Mutex::new(RoomState {
                closed: false,
                next_id: 1,
                history: History::new(history),
                members: HashMap::new(),
                joins: 0,
                open_streams: 0,
                epoch: 0,
                ticks: 0,
                owner: None,
                locked: false,
                passphrase,
                removed_members: HashSet::new(),
                removed_sessions: HashSet::new(),
                removed_names: Vec::new(),
                sent: HashMap::new(),
                sent_order: VecDeque::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, RoomState> {
        // A panic elsewhere must not take every later request down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open_state(&self) -> Result<MutexGuard<'_, RoomState>, RoomError> {
        let state = self.state();
        if state.closed {
            return Err(RoomError::NotFound);
        }
        Ok(state)
    }

    /// Makes someone a member and announces them; the first member owns the
    /// room. A joiner whose session's membership is still current (or, when
    /// names are signed-in identities, whose name is a member's) is that member:
    /// nothing changes. Everyone else needs an unlocked room, the passphrase of
    /// a private one, and a name nobody in the room uses or was removed under.
    pub fn join(&self, joiner: Joiner, max_members: usize) -> Result<Joined, RoomError> {
        let mut state = self.open_state()?;
        if let Some(token) = joiner.existing
            && state.members.contains_key(&token)
        {
            return Ok(Joined::Already(token));
        }
        // A signed-in name is the person only when it is exactly theirs: a
        // look-alike login (`Alice`, `аlice`) is another person, refused below
        // as a taken name.
        if joiner.identified
            && let Some((token, _)) = state
                .members
                .iter()
                .find(|(_, member)| member.name.as_str() == joiner.name.as_str())
        {
            return Ok(Joined::Already(*token));
        }
        let removed = state.removed(joiner.existing, &joiner.session);
        let removed_identity = joiner.identified
            && state
                .removed_names
                .iter()
                .any(|name| name.as_str() == joiner.name.as_str());
        if removed || removed_identity {
            return Err(RoomError::Removed);
        }
        if state.locked {
            return Err(RoomError::Locked);
        }
        if state.passphrase.is_some() && joiner.passphrase_for != Some(self.serial) {
            return Err(RoomError::WrongPassphrase);
        }
        if state.member_named(&joiner.name).is_some() {
            return Err(RoomError::NameTaken);
        }
        if state
            .removed_names
            .iter()
            .any(|name| name.same_person_as(&joiner.name))
        {
            return Err(RoomError::NameRemoved);
        }
        if state.members.len() >= max_members {
            return Err(RoomError::RoomFull);
        }
        let token = MemberToken::random();
        let epoch = state.admit(token, joiner.name.clone(), joiner.session);
        state.owner.get_or_insert(token);
        state.publish(&self.outlet, EventKind::Join, joiner.name, None);
        Ok(Joined::New { token, epoch })
    }

    /// Whether the owner removed this membership or this session.
    pub fn removed(&self, token: Option<MemberToken>, session: &str) -> bool {
        self.state().removed(token, session)
    }

    /// The hash a joiner's passphrase must match, if the room is private.
    pub fn passphrase(&self) -> Result<Option<PassphraseHash>, RoomError> {
        Ok(self.open_state()?.passphrase.clone())
    }

    /// The owner locks (`true`) or unlocks the room; everyone hears of it. Asking
    /// for what already is changes nothing.
    pub fn set_locked(&self, token: &MemberToken, locked: bool) -> Result<(), RoomError> {
        let mut state = self.open_state()?;
        let owner = state.owner_name(token)?;
        if state.locked != locked {
            state.locked = locked;
            let kind = match locked {
                true => EventKind::Lock,
                false => EventKind::Unlock,
            };
            state.publish(&self.outlet, kind, owner, None);
        }
        Ok(())
    }

    /// The owner removes the member called `name`: everyone (them included)
    /// hears of it, then their streams end, and they cannot come back.
    pub fn remove(&self, token: &MemberToken, name: &DisplayName) -> Result<(), RoomError> {
        let mut state = self.open_state()?;
        state.owner_name(token)?;
        let (removed, _) = state.member_named(name).ok_or(RoomError::NoSuchMember)?;
        if removed == *token {
            return Err(RoomError::CannotRemoveOwner);
        }
        if let Some(member) = state.members.remove(&removed) {
            state.removed_members.insert(removed);
            state.removed_sessions.insert(member.session.clone());
            state.removed_names.push(member.name.clone());
            state.publish(&self.outlet, EventKind::Remove, member.name, None);
            member.ended.cancel();
        }
        Ok(())
    }

    pub fn check_member(&self, token: &MemberToken) -> Result<(), RoomError> {
        let state = self.open_state()?;
        state.check_member(token)
    }

    /// Publishes a member's message, unless the same member already sent one
    /// under `key` that history still holds: then nothing changes and the first
    /// one's id is the answer.
    pub fn publish_message(
        &self,
        token: &MemberToken,
        text: MessageText,
        key: Option<IdempotencyKey>,
    ) -> Result<Published, RoomError> {
        let mut state = self.open_state()?;
        let name = state
            .members
            .get(token)
            .ok_or(RoomError::NotMember)?
            .name
            .clone();
        let sent = key.map(|key| (*token, key));
        if let Some(id) = sent.as_ref().and_then(|sent| state.sent.get(sent)) {
            return Ok(Published::Repeat(*id));
        }
        self.outlet.tally.messages.fetch_add(1, Ordering::Relaxed);
        let id = state.publish(
            &self.outlet,
            EventKind::Message,
            name,
            Some(text.into_string()),
        );
        if let Some(sent) = sent {
            state.sent.insert(sent.clone(), id);
            state.sent_order.push_back((id, sent));
        }
        Ok(Published::New(id))
    }

    /// The id of the message a member sent under `key`, if history still holds it.
    pub fn sent_under(&self, token: &MemberToken, key: &IdempotencyKey) -> Option<u64> {
        let state = self.state();
        state.sent.get(&(*token, key.clone())).copied()
    }

    /// Opens a stream for a member: subscribes to live events and collects the
    /// backlog after `after`. Announces nothing: the member was announced on joining.
    pub fn open_stream(
        &self,
        token: &MemberToken,
        after: Option<u64>,
    ) -> Result<OpenedStream, RoomError> {
        let mut state = self.open_state()?;
        let tick = state.tick();
        let member = state.members.get_mut(token).ok_or(RoomError::NotMember)?;
        member.streams += 1;
        member.streamed = true;
        member.restored = false;
        if member.streams == 1 {
            member.epoch = tick;
        }
        let membership_ended = member.ended.clone();
        let membership = member.order;
        state.open_streams += 1;
        if state.open_streams == 1 {
            state.epoch = tick;
        }
        // Subscribed and collected under one lock: nothing falls between the two.
        let receiver = self.outlet.sender.subscribe();
        let backlog = match after {
            Some(after) => state.events_after(after),
            None => Backlog::Events(Vec::new()),
        };
        // Replayed events go to this stream too; live ones are counted as they
        // are published, once per stream listening.
        if let Backlog::Events(events) = &backlog {
            let replayed = u64::try_from(events.len()).unwrap_or(u64::MAX);
            self.outlet
                .tally
                .deliveries
                .fetch_add(replayed, Ordering::Relaxed);
        }
        Ok(OpenedStream {
            receiver,
            backlog,
            resume_after: state.last_id(),
            membership_ended,
            membership,
        })
    }

    /// Activity without a stream (a page view, a post — someone without
    /// JavaScript): a member who has never opened a stream stays for another idle
    /// period from now. A member whose streams just closed is in their grace
    /// period, which activity does not stretch; the room lives by its streams alone.
    pub fn touch(&self, token: &MemberToken) -> IdleTimers {
        let mut state = self.state();
        let mut timers = IdleTimers::default();
        if state.closed {
            return timers;
        }
        let tick = state.tick();
        if let Some(member) = state.members.get_mut(token)
            && member.streams == 0
            && !member.streamed
        {
            member.epoch = tick;
            timers.member_epoch = Some(tick);
        }
        timers
    }

    /// A stream of `membership` closed. A stream that outlived its membership (the
    /// person left and joined again) counts only for the room.
    pub fn close_stream(&self, token: &MemberToken, membership: u64) -> IdleTimers {
        let mut state = self.state();
        let mut closed = IdleTimers::default();
        let tick = state.tick();
        if let Some(member) = state.members.get_mut(token)
            && member.order == membership
        {
            member.streams = member.streams.saturating_sub(1);
            if member.streams == 0 {
                member.epoch = tick;
                closed.member_epoch = Some(tick);
            }
        }
        state.open_streams = state.open_streams.saturating_sub(1);
        if state.open_streams == 0 {
            state.epoch = tick;
            closed.room_epoch = Some(tick);
        }
        closed
    }

    /// Ends a membership that has had no stream since `epoch`, announcing the leave.
    pub fn expire_member(&self, token: &MemberToken, epoch: u64) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        let idle = state
            .members
            .get(token)
            .is_some_and(|m| m.streams == 0 && m.epoch == epoch);
        if idle {
            state.remove_member(token, &self.outlet);
        }
    }

    /// The member leaves now (the Leave button), without waiting for a grace period.
    pub fn leave(&self, token: &MemberToken) -> Result<(), RoomError> {
        let mut state = self.open_state()?;
        if !state.members.contains_key(token) {
            return Err(RoomError::NotMember);
        }
        state.remove_member(token, &self.outlet);
        Ok(())
    }

    /// Marks the room closed if it has had no stream since `epoch`.
    pub fn close_if_idle(&self, epoch: u64) -> bool {
        let mut state = self.state();
        if state.closed || state.open_streams > 0 || state.epoch != epoch {
            return false;
        }
        state.closed = true;
        state.history.clear();
        for member in state.members.values() {
            member.ended.cancel();
        }
        state.members.clear();
        true
    }

    /// Members and open streams, for the metrics; a closed room has none.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state();
        match state.closed {
            true => (0, 0),
            false => (state.members.len(), state.open_streams),
        }
    }

    /// The room's epoch as it stands; used for the close timer of a new room.
    pub fn epoch(&self) -> u64 {
        self.state().epoch
    }

    pub fn catch_up(&self, after: u64) -> (Backlog, u64) {
        let state = self.state();
        (state.events_after(after), state.last_id())
    }

    pub fn present(&self, token: &MemberToken) -> Result<Vec<Presence>, RoomError> {
        let state = self.open_state()?;
        state.check_member(token)?;
        Ok(state.present())
    }

    pub fn snapshot(&self, token: &MemberToken) -> Result<RoomSnapshot, RoomError> {
        let state = self.open_state()?;
        state.check_member(token)?;
        let me = state
            .members
            .get(token)
            .ok_or(RoomError::NotMember)?
            .name
            .clone();
        Ok(RoomSnapshot {
            me,
            history: state.history.iter().cloned().collect(),
            present: state.present(),
            last_id: state.last_id(),
            mine: state.owner == Some(*token),
            locked: state.locked,
            private: state.passphrase.is_some(),
            epoch: self.incarnation,
        })
    }
}

/// What [`Room::restore`] brought back: the epochs its timers start from.
pub struct Restored {
    /// The room's epoch: it closes if no stream came back by the restart grace.
    pub room_epoch: u64,
    /// Each member's epoch: they leave if no stream of theirs came back.
    pub members: Vec<(MemberToken, u64)>,
}

impl Room {
    /// The room as a snapshot keeps it; `None` once closed.
    pub fn export(&self) -> Option<RoomRecord> {
        let state = self.state();
        if state.closed {
            return None;
        }
        let mut members: Vec<_> = state.members.iter().collect();
        members.sort_by_key(|(_, member)| member.order);
        let mut removed_members: Vec<String> =
            state.removed_members.iter().map(|t| t.to_hex()).collect();
        removed_members.sort();
        let mut removed_sessions: Vec<String> = state.removed_sessions.iter().cloned().collect();
        removed_sessions.sort();
        Some(RoomRecord {
            code: self.code.to_string(),
            serial: self.serial,
            incarnation: self.incarnation,
            next_id: state.next_id,
            joins: state.joins,
            owner: state.owner.map(MemberToken::to_hex),
            locked: state.locked,
            passphrase: state.passphrase.as_ref().map(|h| h.as_stored().to_owned()),
            members: members
                .into_iter()
                .map(|(token, member)| MemberRecord {
                    token: token.to_hex(),
                    name: member.name.to_string(),
                    session: member.session.clone(),
                    order: member.order,
                    streamed: member.streamed,
                })
                .collect(),
            removed_members,
            removed_sessions,
            removed_names: state.removed_names.iter().map(|n| n.to_string()).collect(),
            history: state.history.iter().cloned().map(Frame).collect(),
            sent: state
                .sent_order
                .iter()
                .map(|(id, (token, key))| SentRecord {
                    token: token.to_hex(),
                    key: key.as_str().to_owned(),
                    id: *id,
                })
                .collect(),
        })
    }

    /// A room as a snapshot kept it, with no stream open: every member counts
    /// as connected until a stream of theirs comes back (or their timer, set
    /// by the caller from the epochs returned, says they did not).
    pub fn restore(
        record: RoomRecord,
        history: Arc<Budget>,
        channel_capacity: usize,
        tally: Arc<Tally>,
    ) -> Result<(Self, Restored), String> {
        let token = |hex: &str| MemberToken::from_hex(hex).ok_or(format!("token {hex:?}"));
        let name = |text: &str| DisplayName::parse(text).map_err(|_| format!("name {text:?}"));
        let code = RoomCode::parse(&record.code).map_err(|_| format!("code {:?}", record.code))?;
        let passphrase = match record.passphrase.as_deref() {
            Some(stored) => Some(PassphraseHash::from_stored(stored).ok_or("empty passphrase")?),
            None => None,
        };
        let mut room = Self::new(
            code,
            record.serial,
            history,
            channel_capacity,
            tally,
            passphrase,
        );
        room.incarnation = record.incarnation;
        let mut restored = Restored {
            room_epoch: 0,
            members: Vec::with_capacity(record.members.len()),
        };
        {
            let state = room.state.get_mut().unwrap_or_else(PoisonError::into_inner);
            state.next_id = record.next_id.max(1);
            state.joins = record.joins;
            state.locked = record.locked;
            for kept in record.members {
                let token = token(&kept.token)?;
                let epoch = state.tick();
                state.members.insert(
                    token,
                    Member {
                        name: name(&kept.name)?,
                        session: kept.session,
                        order: kept.order,
                        streams: 0,
                        streamed: kept.streamed,
                        epoch,
                        ended: CancellationToken::new(),
                        restored: true,
                    },
                );
                restored.members.push((token, epoch));
            }
            state.owner = match record.owner.as_deref() {
                Some(owner) => Some(token(owner)?).filter(|t| state.members.contains_key(t)),
                None => None,
            };
            for removed in &record.removed_members {
                state.removed_members.insert(token(removed)?);
            }
            state.removed_sessions = record.removed_sessions.into_iter().collect();
            for removed in &record.removed_names {
                state.removed_names.push(name(removed)?);
            }
            for Frame(event) in record.history {
                if event.id >= state.next_id {
                    return Err(format!("event {} after the next id", event.id));
                }
                state.history.push(event);
            }
            let oldest = state.history.front().map_or(state.next_id, |e| e.id);
            for sent in record.sent {
                if sent.id < oldest {
                    continue;
                }
                let key = IdempotencyKey::parse(&sent.key)
                    .map_err(|_| format!("idempotency key {:?}", sent.key))?;
                let sent_by = (token(&sent.token)?, key);
                state.sent.insert(sent_by.clone(), sent.id);
                state.sent_order.push_back((sent.id, sent_by));
            }
            state.epoch = state.tick();
            restored.room_epoch = state.epoch;
        }
        Ok((room, restored))
    }
}

impl RoomState {
    fn tick(&mut self) -> u64 {
        self.ticks += 1;
        self.ticks
    }

    /// Whether the owner removed this membership or this session.
    fn removed(&self, token: Option<MemberToken>, session: &str) -> bool {
        token.is_some_and(|token| self.removed_members.contains(&token))
            || self.removed_sessions.contains(session)
    }

    /// `Ok` for a member; `Removed` for one the owner removed.
    fn check_member(&self, token: &MemberToken) -> Result<(), RoomError> {
        if self.members.contains_key(token) {
            Ok(())
        } else if self.removed_members.contains(token) {
            Err(RoomError::Removed)
        } else {
            Err(RoomError::NotMember)
        }
    }

    /// The member whose name would be taken for `name`.
    fn member_named(&self, name: &DisplayName) -> Option<(MemberToken, &Member)> {
        self.members
            .iter()
            .find(|(_, member)| member.name.same_person_as(name))
            .map(|(token, member)| (*token, member))
    }

    /// The owner's name, if `token` is the owner's; else why not.
    fn owner_name(&self, token: &MemberToken) -> Result<DisplayName, RoomError> {
        self.check_member(token)?;
        match (self.owner == Some(*token), self.members.get(token)) {
            (true, Some(owner)) => Ok(owner.name.clone()),
            _ => Err(RoomError::NotOwner),
        }
    }

    /// Adds a member who has no stream yet; returns their epoch.
    fn admit(&mut self, token: MemberToken, name: DisplayName, session: String) -> u64 {
        self.joins += 1;
        let epoch = self.tick();
        let member = Member {
            name,
            session,
            order: self.joins,
            streams: 0,
            streamed: false,
            epoch,
            ended: CancellationToken::new(),
            restored: false,
        };
        self.members.insert(token, member);
        epoch
    }

    /// Ends a membership: the room hears of it, then the member's streams end
    /// (after the `leave`, which they are sent too). An owner who leaves hands
    /// the room to the member who has been there longest.
    fn remove_member(&mut self, token: &MemberToken, outlet: &Outlet) {
        let Some(member) = self.members.remove(token) else {
            return;
        };
        self.publish(outlet, EventKind::Leave, member.name, None);
        member.ended.cancel();
        if self.owner == Some(*token) {
            let next = self
                .members
                .iter()
                .min_by_key(|(_, member)| member.order)
                .map(|(token, member)| (*token, member.name.clone()));
            self.owner = next.as_ref().map(|(token, _)| *token);
            if let Some((_, name)) = next {
                self.publish(outlet, EventKind::Owner, name, None);
            }
        }
    }

    fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    fn publish(
        &mut self,
        outlet: &Outlet,
        kind: EventKind,
        name: DisplayName,
        text: Option<String>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let event = Arc::new(Event::new(id, kind, &name, text.as_deref()));
        if let Some(dropped) = self.history.push(Arc::clone(&event)) {
            while let Some((id, _)) = self.sent_order.front()
                && *id <= dropped
            {
                if let Some((_, sent)) = self.sent_order.pop_front() {
                    self.sent.remove(&sent);
                }
            }
        }
        // An error only means that nobody is listening right now.
        if let Ok(streams) = outlet.sender.send(event) {
            let streams = u64::try_from(streams).unwrap_or(u64::MAX);
            outlet
                .tally
                .deliveries
                .fetch_add(streams, Ordering::Relaxed);
        }
        id
    }

    fn events_after(&self, after: u64) -> Backlog {
        let oldest_kept = self.history.front().map_or(self.next_id, |e| e.id);
        events_after(after, self.last_id(), oldest_kept, self.history.iter())
    }

    fn present(&self) -> Vec<Presence> {
        let mut members: Vec<(&MemberToken, &Member)> = self.members.iter().collect();
        members.sort_by_key(|(_, m)| m.order);
        members
            .into_iter()
            .map(|(token, m)| Presence {
                name: m.name.clone(),
                connected: m.streams > 0 || m.restored,
                owner: self.owner == Some(*token),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_MEMBERS: usize = 100;

    fn text(t: &str) -> MessageText {
        MessageText::parse(t, 100).unwrap()
    }

    fn join(room: &Room, who: &str) -> MemberToken {
        match room.join(Joiner::named(who), MAX_MEMBERS).unwrap() {
            Joined::New { token, .. } => token,
            Joined::Already(_) => panic!("{who} was new"),
        }
    }

    fn room_with(history: usize) -> (Room, MemberToken) {
        let room = Room::new(
            RoomCode::parse("ABCD").unwrap(),
            1,
            Budget::new(history, usize::MAX, usize::MAX),
            16,
            Arc::default(),
            None,
        );
        let alice = join(&room, "alice");
        (room, alice)
    }

    fn ids(backlog: Backlog) -> Vec<u64> {
        match backlog {
            Backlog::Events(events) => events.iter().map(|e| e.id).collect(),
            Backlog::Gap => panic!("unexpected gap"),
        }
    }

    fn names(present: Vec<Presence>) -> Vec<(String, bool)> {
        present
            .into_iter()
            .map(|p| (p.name.to_string(), p.connected))
            .collect()
    }

    /// Joining announces the member at once; their streams announce nothing.
    #[test]
    fn joining_announces_the_member_and_streams_do_not() {
        let (room, alice) = room_with(10);
        let mut rx = room.open_stream(&alice, None).unwrap().receiver;

        let bob = join(&room, "bob");

        assert_eq!(rx.try_recv().unwrap().kind, EventKind::Join);
        assert_eq!(
            names(room.present(&alice).unwrap()),
            [("alice".into(), true), ("bob".into(), false)]
        );
        room.open_stream(&bob, None).unwrap();
        assert!(rx.try_recv().is_err(), "a stream makes no notice");
        assert_eq!(
            names(room.present(&bob).unwrap()),
            [("alice".into(), true), ("bob".into(), true)]
        );
    }

    fn kinds_and_names(rx: &mut broadcast::Receiver<Arc<Event>>) -> Vec<(EventKind, String)> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| (e.kind, e.content().name))
            .collect()
    }

    /// When the owner leaves, the member who has been there longest owns the
    /// room, and everyone is told.
    #[test]
    fn ownership_passes_to_the_longest_present_member() {
        let (room, alice) = room_with(10);
        let bob = join(&room, "bob");
        join(&room, "carol");
        let mut rx = room.open_stream(&bob, None).unwrap().receiver;

        room.leave(&alice).unwrap();

        assert_eq!(
            kinds_and_names(&mut rx),
            [
                (EventKind::Leave, "alice".into()),
                (EventKind::Owner, "bob".into())
            ]
        );
        let owners: Vec<String> = room
            .present(&bob)
            .unwrap()
            .into_iter()
            .filter(|p| p.owner)
            .map(|p| p.name.to_string())
            .collect();
        assert_eq!(owners, ["bob"]);
        assert_eq!(room.set_locked(&bob, true), Ok(()));
    }

    /// A locked room lets no one new in, but its members back; only the owner
    /// locks, and only a change is announced.
    #[test]
    fn only_the_owner_locks_and_a_locked_room_keeps_newcomers_out() {
        let (room, alice) = room_with(10);
        let bob = join(&room, "bob");
        let mut rx = room.open_stream(&alice, None).unwrap().receiver;

        assert_eq!(room.set_locked(&bob, true), Err(RoomError::NotOwner));
        room.set_locked(&alice, true).unwrap();
        room.set_locked(&alice, true).unwrap();

        assert_eq!(
            kinds_and_names(&mut rx),
            [(EventKind::Lock, "alice".into())]
        );
        assert_eq!(
            room.join(Joiner::named("carol"), MAX_MEMBERS),
            Err(RoomError::Locked)
        );
        assert_eq!(
            room.join(Joiner::holding("bob", bob), MAX_MEMBERS),
            Ok(Joined::Already(bob))
        );
        room.set_locked(&alice, false).unwrap();
        assert_eq!(
            kinds_and_names(&mut rx),
            [(EventKind::Unlock, "alice".into())]
        );
        join(&room, "carol");
    }

    /// A removed member hears of it, is no member any more, and cannot come
    /// back: not with their membership, their session, or their name.
    #[test]
    fn a_removed_member_cannot_come_back() {
        let (room, alice) = room_with(10);
        let bob_joining = Joiner::named("bob");
        let Joined::New { token: bob, .. } = room.join(bob_joining.clone(), MAX_MEMBERS).unwrap()
        else {
            panic!("bob is new");
        };
        let carol = join(&room, "carol");
        let mut bobs = room.open_stream(&bob, None).unwrap();

        assert_eq!(
            room.remove(&carol, &DisplayName::parse("bob").unwrap()),
            Err(RoomError::NotOwner)
        );
        assert_eq!(
            room.remove(&alice, &DisplayName::parse("alice").unwrap()),
            Err(RoomError::CannotRemoveOwner)
        );
        assert_eq!(
            room.remove(&alice, &DisplayName::parse("dave").unwrap()),
            Err(RoomError::NoSuchMember)
        );
        room.remove(&alice, &DisplayName::parse("Bob").unwrap())
            .unwrap();

        assert_eq!(
            kinds_and_names(&mut bobs.receiver),
            [(EventKind::Remove, "bob".into())],
            "bob hears of it"
        );
        assert!(bobs.membership_ended.is_cancelled(), "his streams end");
        assert_eq!(room.check_member(&bob), Err(RoomError::Removed));
        let again = |joiner| room.join(joiner, MAX_MEMBERS);
        assert_eq!(again(Joiner::holding("bob", bob)), Err(RoomError::Removed));
        assert_eq!(
            again(Joiner {
                name: DisplayName::parse("robert").unwrap(),
                ..bob_joining
            }),
            Err(RoomError::Removed),
            "the same session under another name"
        );
        assert_eq!(again(Joiner::named("BOB")), Err(RoomError::NameRemoved));
        let signed_in_bob = Joiner {
            identified: true,
            ..Joiner::named("bob")
        };
        assert_eq!(
            again(signed_in_bob),
            Err(RoomError::Removed),
            "a signed-in name is the person"
        );
    }

    /// With names from a sign-in proxy, the same name is the same person: a
    /// second session joins as the member they already are.
    #[test]
    fn a_signed_in_name_is_one_member_in_every_session() {
        let (room, alice) = room_with(10);
        let elsewhere = Joiner {
            identified: true,
            ..Joiner::named("alice")
        };
        assert_eq!(
            room.join(elsewhere, MAX_MEMBERS),
            Ok(Joined::Already(alice))
        );
        assert_eq!(
            room.join(Joiner::named("alice"), MAX_MEMBERS),
            Err(RoomError::NameTaken),
            "a typed name is not an identity"
        );
        let look_alike = Joiner {
            identified: true,
            ..Joiner::named("Alice")
        };
        assert_eq!(
            room.join(look_alike, MAX_MEMBERS),
            Err(RoomError::NameTaken),
            "another login that looks the same is another person"
        );
    }

    #[test]
    fn names_are_unique_without_regard_to_case() {
        let (room, _) = room_with(10);
        assert_eq!(
            room.join(Joiner::named("ALICE"), MAX_MEMBERS),
            Err(RoomError::NameTaken)
        );
        let bob = join(&room, "bob");
        assert_eq!(
            room.join(Joiner::holding("other", bob), MAX_MEMBERS),
            Ok(Joined::Already(bob)),
            "already a member"
        );
    }

    /// A token from another room (or a membership that ended) makes a new member.
    #[test]
    fn a_stale_token_joins_afresh() {
        let (room, _) = room_with(10);
        let stale = MemberToken::random();
        assert!(matches!(
            room.join(Joiner::holding("bob", stale), MAX_MEMBERS),
            Ok(Joined::New { token, .. }) if token != stale
        ));
    }

    #[test]
    fn a_full_room_refuses_newcomers_but_not_its_members() {
        let (room, alice) = room_with(10);
        assert_eq!(room.join(Joiner::named("bob"), 1), Err(RoomError::RoomFull));
        assert_eq!(
            room.join(Joiner::holding("alice", alice), 1),
            Ok(Joined::Already(alice))
        );
    }

    #[test]
    fn backlog_replays_after_an_id_or_reports_a_gap() {
        let (room, alice) = room_with(3);
        for i in 0..5 {
            room.publish_message(&alice, text(&format!("m{i}")), None)
                .unwrap();
        }
        // History keeps ids 4, 5, 6 (id 1 is alice's join).
        assert_eq!(ids(room.catch_up(3).0), vec![4, 5, 6]);
        assert_eq!(ids(room.catch_up(5).0), vec![6]);
        assert_eq!(ids(room.catch_up(6).0), Vec::<u64>::new());
        assert!(matches!(room.catch_up(2).0, Backlog::Gap));
        assert!(matches!(room.catch_up(99).0, Backlog::Gap));
    }

    #[test]
    fn a_member_leaves_only_if_no_stream_came_back() {
        let (room, alice) = room_with(10);
        let mut rx = room.open_stream(&alice, None).unwrap().receiver;
        let closed = room.close_stream(&alice, 1);
        let stale = closed.member_epoch.unwrap();
        room.open_stream(&alice, None).unwrap();
        room.expire_member(&alice, stale);
        assert!(rx.try_recv().is_err(), "a reload announces nothing");

        let closed = room.close_stream(&alice, 1);
        room.expire_member(&alice, closed.member_epoch.unwrap());
        assert_eq!(rx.try_recv().unwrap().kind, EventKind::Leave);
        assert_eq!(room.snapshot(&alice).err(), Some(RoomError::NotMember));
    }

    /// Someone who joined and never streamed is announced when they go, too.
    #[test]
    fn a_member_who_never_streamed_is_announced_leaving() {
        let (room, alice) = room_with(10);
        let mut rx = room.open_stream(&alice, None).unwrap().receiver;
        let bob = join(&room, "bob");
        let Joined::Already(_) = room.join(Joiner::holding("bob", bob), MAX_MEMBERS).unwrap()
        else {
            panic!("bob is a member");
        };
        let epoch = room.touch(&bob).member_epoch.unwrap();

        room.expire_member(&bob, epoch);

        assert_eq!(rx.try_recv().unwrap().kind, EventKind::Join);
        assert_eq!(rx.try_recv().unwrap().kind, EventKind::Leave);
    }

    #[test]
    fn a_room_closes_only_if_idle_since_the_epoch() {
        let (room, alice) = room_with(10);
        room.open_stream(&alice, None).unwrap();
        let stale = room.close_stream(&alice, 1).room_epoch.unwrap();
        room.open_stream(&alice, None).unwrap();
        assert!(!room.close_if_idle(stale));
        let idle = room.close_stream(&alice, 1).room_epoch.unwrap();
        assert!(room.close_if_idle(idle));
        assert_eq!(room.snapshot(&alice).err(), Some(RoomError::NotFound));
    }

    #[test]
    fn a_stream_that_outlived_its_membership_leaves_the_next_one_alone() {
        let (room, alice) = room_with(10);
        let old = room.open_stream(&alice, None).unwrap();
        room.leave(&alice).unwrap();
        let alice = join(&room, "alice");
        let new = room.open_stream(&alice, None).unwrap();

        let late = room.close_stream(&alice, old.membership);

        assert_eq!(
            late.member_epoch, None,
            "the new membership still has its stream"
        );
        assert_eq!(
            names(room.present(&alice).unwrap()),
            [("alice".into(), true)]
        );
        let last = room.close_stream(&alice, new.membership);
        assert!(last.member_epoch.is_some());
        assert!(last.room_epoch.is_some());
    }

    /// A member's repeat of a key is answered with the first message's id and
    /// stored once; another member's same key is theirs; a key is forgotten with
    /// its message when history drops it.
    #[test]
    fn a_key_stores_a_message_once_while_history_holds_it() {
        let (room, alice) = room_with(3);
        let bob = join(&room, "bob");
        let key = || Some(IdempotencyKey::parse("k1").unwrap());

        let first = room.publish_message(&alice, text("hi"), key()).unwrap();
        let again = room.publish_message(&alice, text("hi"), key()).unwrap();
        let bobs = room.publish_message(&bob, text("hi"), key()).unwrap();

        assert_eq!(first, Published::New(3));
        assert_eq!(again, Published::Repeat(3));
        assert_eq!(bobs, Published::New(4));
        for n in 0..3 {
            room.publish_message(&bob, text(&format!("m{n}")), None)
                .unwrap();
        }
        assert_eq!(
            room.publish_message(&alice, text("hi"), key()).unwrap(),
            Published::New(8),
            "history no longer holds the first"
        );
    }
}
