//! What this instance keeps of a shared room while it serves the room's
//! streams: a mirror of the room's kept events, the broadcast channel its local
//! subscribers listen on, and the memberships whose streams it holds.
//!
//! The reader (`reader.rs`) appends what Redis publishes, in order, to each
//! feed; a feed exists while a stream or poll of this instance reads its room,
//! so a subscriber that falls behind catches up from the mirror without asking
//! Redis, exactly as it would from a room in memory.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::input::RoomCode;
use crate::rooms::history::{Budget, History};
use crate::rooms::room::events_after;
use crate::rooms::{Backlog, Event, MemberToken, Tally};

/// Every room this instance reads, by code.
pub(super) struct Feeds {
    // std Mutex: held to look up, insert or remove; never across an `.await`.
    map: Mutex<HashMap<RoomCode, Arc<Feed>>>,
    /// What the mirrors may keep, each and together: the bounds Redis keeps
    /// to, so that an instance serving every room holds no more than Redis.
    history: Arc<Budget>,
}

impl Feeds {
    pub fn new(history: Arc<Budget>) -> Self {
        Self {
            map: Mutex::default(),
            history,
        }
    }

    /// What the mirrors keep, for the metrics.
    pub fn history(&self) -> &Budget {
        &self.history
    }

    fn map(&self) -> MutexGuard<'_, HashMap<RoomCode, Arc<Feed>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The feed of room `code`, made if there is none, counting one more
    /// reader of it; give it back with [`Feeds::leave`].
    pub fn enter(&self, code: RoomCode, capacity: usize) -> Arc<Feed> {
        let mut map = self.map();
        let feed = map
            .entry(code)
            .or_insert_with(|| Arc::new(Feed::new(code, Arc::clone(&self.history), capacity)));
        feed.state().readers += 1;
        Arc::clone(feed)
    }

    /// A reader of `feed` is done; the last one forgets the feed.
    pub fn leave(&self, feed: &Arc<Feed>) {
        let mut map = self.map();
        let mut state = feed.state();
        state.readers = state.readers.saturating_sub(1);
        if state.readers == 0 && map.get(&feed.code).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            map.remove(&feed.code);
        }
    }

    /// `feed` belongs to an older room under the same code: a fresh one takes
    /// its place, and the old one's members are told their room is gone.
    pub fn replace(&self, feed: &Arc<Feed>, capacity: usize) -> Arc<Feed> {
        let mut map = self.map();
        let fresh = Arc::new(Feed::new(feed.code, Arc::clone(&self.history), capacity));
        fresh.state().readers += 1;
        map.insert(feed.code, Arc::clone(&fresh));
        drop(map);
        feed.end_everyone();
        self.leave(feed);
        fresh
    }

    /// Whether `token` streams room `code` here, in the room's current feed.
    pub fn streaming(&self, code: &RoomCode, token: &MemberToken) -> bool {
        let feed = self.map().get(code).cloned();
        feed.is_some_and(|feed| feed.streaming(token))
    }

    /// Every feed whose place in its room's stream is known, for the reader.
    pub fn seeded(&self) -> Vec<Arc<Feed>> {
        self.map()
            .values()
            .filter(|feed| feed.state().epoch.is_some())
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Arc<Feed>> {
        self.map().values().cloned().collect()
    }
}

/// What [`Feed::seed`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Seeded {
    /// The mirror starts here: the reader should take the room in at once.
    Now,
    /// It had started, for the same room.
    Already,
    /// It mirrors an earlier room under the same code.
    OtherRoom,
}

pub(super) struct Feed {
    pub code: RoomCode,
    sender: broadcast::Sender<Arc<Event>>,
    state: Mutex<FeedState>,
    /// Held while this instance changes its lease on a member of the room, so
    /// that a stream closing and another opening reach Redis in their order.
    pub leases: tokio::sync::Mutex<()>,
}

struct FeedState {
    /// The room incarnation mirrored; `None` until the first subscriber seeds it.
    epoch: Option<String>,
    history: History,
    /// Id of the newest event mirrored: where the reader carries on.
    last_id: u64,
    /// Streams and polls of this instance reading the room.
    readers: usize,
    /// Memberships with a stream open here.
    members: HashMap<MemberToken, LocalMember>,
}

struct LocalMember {
    streams: usize,
    ended: CancellationToken,
}

impl Feed {
    fn new(code: RoomCode, history: Arc<Budget>, capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            code,
            sender,
            state: Mutex::new(FeedState {
                epoch: None,
                history: History::new(history),
                last_id: 0,
                readers: 0,
                members: HashMap::new(),
            }),
            leases: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Starts the mirror from what a subscriber's script saw (the room's
    /// `epoch`, newest id `seq`, and its kept `events`), unless it started
    /// already.
    pub fn seed(&self, epoch: &str, seq: u64, events: &[Arc<Event>]) -> Seeded {
        let mut state = self.state();
        match &state.epoch {
            Some(mirrored) if mirrored == epoch => Seeded::Already,
            Some(_) => Seeded::OtherRoom,
            None => {
                state.epoch = Some(epoch.to_owned());
                state.history.clear();
                for event in events {
                    state.history.push(Arc::clone(event));
                }
                state.last_id = seq;
                Seeded::Now
            }
        }
    }

    /// Where the reader carries on: the newest id mirrored.
    pub fn last_id(&self) -> u64 {
        self.state().last_id
    }

    /// Events the reader read, in order: kept, sent to every local
    /// subscriber, and the memberships they ended closed here.
    ///
    /// When they do not follow on from the mirror (Redis trimmed events the
    /// reader never saw: it fell behind a room posting faster than it could
    /// read), the mirror forgets what it kept, so that every subscriber, seeing
    /// the ids jump, catches up from it and is told to reset, as one that fell
    /// behind the channel would be.
    pub fn deliver(&self, events: Vec<(Arc<Event>, Option<MemberToken>)>, tally: &Tally) {
        let mut state = self.state();
        if events
            .first()
            .is_some_and(|(first, _)| first.id > state.last_id + 1)
        {
            tracing::warn!(room = %self.code, "the reader fell behind the kept history");
            state.history.clear();
        }
        for (event, ended) in events {
            if event.id <= state.last_id {
                continue;
            }
            state.last_id = event.id;
            state.history.push(Arc::clone(&event));
            // Sent under the lock, so the channel's order is the history's.
            if let Ok(streams) = self.sender.send(event) {
                let streams = u64::try_from(streams).unwrap_or(u64::MAX);
                tally.deliveries.fetch_add(streams, Ordering::Relaxed);
            }
            // The member's streams here end; each still closes its lease
            // when it goes.
            if let Some(token) = ended
                && let Some(member) = state.members.get(&token)
            {
                member.ended.cancel();
            }
        }
    }

    /// What a subscriber behind by more than the channel holds must send.
    pub fn catch_up(&self, after: u64) -> (Backlog, u64) {
        let state = self.state();
        // The subscriber's first events came from Redis, which the mirror may
        // not have caught up with yet: the rest comes live.
        if after >= state.last_id {
            return (Backlog::Events(Vec::new()), after);
        }
        let oldest = state.history.front().map_or(state.last_id + 1, |e| e.id);
        let backlog = events_after(after, state.last_id, oldest, state.history.iter());
        (backlog, state.last_id)
    }

    /// A stream (or poll) of `token` opened here: the token it ends on.
    pub fn stream_opened(&self, token: MemberToken) -> CancellationToken {
        let mut state = self.state();
        let member = state.members.entry(token).or_insert_with(|| LocalMember {
            streams: 0,
            ended: CancellationToken::new(),
        });
        member.streams += 1;
        member.ended.clone()
    }

    /// A stream of `token` closed here; true if it was their last one here.
    pub fn stream_closed(&self, token: MemberToken) -> bool {
        let mut state = self.state();
        let Some(member) = state.members.get_mut(&token) else {
            return false;
        };
        member.streams = member.streams.saturating_sub(1);
        if member.streams > 0 {
            return false;
        }
        state.members.remove(&token);
        true
    }

    /// Whether `token` has a stream open here.
    pub fn streaming(&self, token: &MemberToken) -> bool {
        self.state().members.contains_key(token)
    }

    /// The memberships with a stream open here, not yet ended.
    pub fn members(&self) -> Vec<MemberToken> {
        let state = self.state();
        state
            .members
            .iter()
            .filter(|(_, member)| !member.ended.is_cancelled())
            .map(|(token, _)| *token)
            .collect()
    }

    /// These memberships ended (Redis says they are members no more).
    pub fn end(&self, tokens: &[MemberToken]) {
        let state = self.state();
        for token in tokens {
            if let Some(member) = state.members.get(token) {
                member.ended.cancel();
            }
        }
    }

    /// The room closed, or the feed cannot be whole: every stream of it here ends.
    pub fn end_everyone(&self) {
        let state = self.state();
        for member in state.members.values() {
            member.ended.cancel();
        }
    }

    /// Streams open here, for the metrics.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state();
        let streams = state.members.values().map(|m| m.streams).sum();
        (state.members.len(), streams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::DisplayName;
    use crate::rooms::EventKind;

    fn events(ids: std::ops::RangeInclusive<u64>) -> Vec<(Arc<Event>, Option<MemberToken>)> {
        let name = DisplayName::parse("alice").unwrap();
        ids.map(|id| {
            (
                Arc::new(Event::new(id, EventKind::Message, &name, Some("hi"))),
                None,
            )
        })
        .collect()
    }

    fn ids(backlog: Backlog) -> Option<Vec<u64>> {
        match backlog {
            Backlog::Events(events) => Some(events.iter().map(|e| e.id).collect()),
            Backlog::Gap => None,
        }
    }

    /// A subscriber behind catches up from the mirror, as from a room in
    /// memory; once the reader skipped ids, the mirror cannot fill the gap and
    /// says so.
    #[test]
    fn the_mirror_fills_what_it_holds_and_admits_a_gap() {
        let budget = Budget::new(5, usize::MAX, usize::MAX);
        let feed = Feed::new(RoomCode::parse("ABCD").unwrap(), budget, 16);
        let tally = Tally::default();
        assert_eq!(feed.seed("1", 2, &[]), Seeded::Now);
        assert_eq!(feed.seed("1", 2, &[]), Seeded::Already);
        assert_eq!(feed.seed("2", 2, &[]), Seeded::OtherRoom);

        feed.deliver(events(3..=6), &tally);
        assert_eq!(ids(feed.catch_up(4).0), Some(vec![5, 6]));

        feed.deliver(events(10..=11), &tally);
        assert_eq!(ids(feed.catch_up(6).0), None, "7 to 9 were never read");
        assert_eq!(ids(feed.catch_up(10).0), Some(vec![11]));
    }
}
