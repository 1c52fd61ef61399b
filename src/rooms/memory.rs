//! The rooms of one process, kept in memory: the backend without `--redis`.
//!
//! [`LocalRooms`] maps codes to rooms and owns their lifecycle in time, which
//! lives in [`timers`](super::timers): a member leaves, and a room closes, when
//! no stream of theirs has come back within the grace period.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::history::Budget;
use super::room::{IdleTimers, Joined, OpenedStream, Room};
use super::snapshot::{self, Snapshot, SnapshotError};
use super::timers::{Due, Timers};
use super::{
    Backlog, CODE_ATTEMPTS, Joiner, MemberToken, Presence, Published, RoomError, RoomSettings,
    RoomSnapshot, RoomStats, StreamHandle, Subscription, Tally,
};
use crate::input::{DisplayName, IdempotencyKey, MessageText, RoomCode};
use crate::passphrase::PassphraseHash;

/// Cheap-to-clone handle on every open room.
#[derive(Clone)]
pub struct LocalRooms {
    shared: Arc<Shared>,
}

struct Shared {
    settings: RoomSettings,
    // std Mutex: held only to look up, insert or remove; never across an `.await`.
    // Lock order: this map first, then a room's own lock.
    rooms: Mutex<HashMap<RoomCode, Arc<Room>>>,
    /// Serial number of the next room opened.
    next_serial: AtomicU64,
    timers: Arc<Timers>,
    tally: Arc<Tally>,
    /// What every room's history may keep, and keeps.
    history: Arc<Budget>,
    /// Set when the server stops and will keep its rooms: from then on no
    /// deadline runs, so streams ending at the stop make nobody leave.
    held: AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.timers.stop();
    }
}

/// An open stream's hold on its room: dropping it closes the stream, which may
/// start the grace timers.
pub struct LocalHold {
    rooms: LocalRooms,
    room: Arc<Room>,
    token: MemberToken,
    membership: u64,
}

impl LocalRooms {
    /// The registry, and the task that runs its timers (it ends when the last
    /// handle is dropped). Needs a Tokio runtime.
    pub fn new(settings: RoomSettings) -> Self {
        let timers = Arc::new(Timers::default());
        let rooms = Self {
            shared: Arc::new(Shared {
                rooms: Mutex::new(HashMap::new()),
                next_serial: AtomicU64::new(1),
                timers: Arc::clone(&timers),
                tally: Arc::default(),
                history: Budget::new(
                    settings.history,
                    settings.history_bytes,
                    settings.max_history_bytes,
                ),
                held: AtomicBool::new(false),
                settings,
            }),
        };
        let registry = Arc::downgrade(&rooms.shared);
        tokio::spawn(async move {
            while let Some(due) = timers.next_due().await {
                let Some(shared) = registry.upgrade() else {
                    break;
                };
                LocalRooms { shared }.run(due);
            }
        });
        rooms
    }

    fn map(&self) -> MutexGuard<'_, HashMap<RoomCode, Arc<Room>>> {
        self.shared
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn room(&self, code: &RoomCode) -> Result<Arc<Room>, RoomError> {
        self.map().get(code).cloned().ok_or(RoomError::NotFound)
    }

    /// Opens a room under a fresh code with `creator` as its first member and
    /// owner; with a passphrase's hash, the room is private.
    pub fn create(
        &self,
        creator: Joiner,
        passphrase: Option<PassphraseHash>,
    ) -> Result<(RoomCode, MemberToken), RoomError> {
        let settings = &self.shared.settings;
        let mut rng = rand::rng();
        let mut map = self.map();
        if map.len() >= settings.max_rooms {
            return Err(RoomError::TooManyRooms);
        }
        if self.shared.history.full() {
            return Err(RoomError::HistoryFull);
        }
        let code = (0..CODE_ATTEMPTS)
            .map(|_| RoomCode::random(&mut rng))
            .find(|code| !map.contains_key(code))
            .ok_or(RoomError::NoFreeCode)?;
        let serial = self.shared.next_serial.fetch_add(1, Ordering::Relaxed);
        let room = Arc::new(Room::new(
            code,
            serial,
            Arc::clone(&self.shared.history),
            settings.channel_capacity,
            Arc::clone(&self.shared.tally),
            passphrase,
        ));
        let creator = Joiner {
            passphrase_for: Some(serial),
            ..creator
        };
        let joined = room.join(creator, settings.max_members)?;
        map.insert(code, Arc::clone(&room));
        drop(map);
        tracing::info!(room = %code, "room opened");
        let token = self.joined(&room, joined);
        self.schedule(
            settings.unclaimed_timeout,
            Due::CloseRoom {
                epoch: room.epoch(),
                room,
            },
        );
        Ok((code, token))
    }

    /// Makes someone a member named `name`, announcing them; `existing` is the
    /// token their session holds for this room, and being a member already is fine.
    pub fn join(&self, code: &RoomCode, joiner: Joiner) -> Result<MemberToken, RoomError> {
        let room = self.room(code)?;
        let joined = room.join(joiner, self.shared.settings.max_members)?;
        Ok(self.joined(&room, joined))
    }

    /// Whether the owner of room `code` removed this membership or session
    /// (no: if there is no such room).
    pub fn removed(&self, code: &RoomCode, token: Option<MemberToken>, session: &str) -> bool {
        self.room(code)
            .is_ok_and(|room| room.removed(token, session))
    }

    /// For a private room, the hash a joiner's passphrase must match, and the
    /// room's serial (what [`Joiner::passphrase_for`] names once it matched).
    pub fn passphrase(&self, code: &RoomCode) -> Result<Option<(u64, PassphraseHash)>, RoomError> {
        let room = self.room(code)?;
        Ok(room.passphrase()?.map(|hash| (room.serial, hash)))
    }

    /// The owner locks (`true`) or unlocks the room.
    pub fn set_locked(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        locked: bool,
    ) -> Result<(), RoomError> {
        self.room(code)?.set_locked(token, locked)
    }

    /// The owner removes the member called `name`.
    pub fn remove(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        name: &DisplayName,
    ) -> Result<(), RoomError> {
        self.room(code)?.remove(token, name)
    }

    fn joined(&self, room: &Arc<Room>, joined: Joined) -> MemberToken {
        match joined {
            Joined::Already(token) => token,
            Joined::New { token, epoch } => {
                let timeout = self.shared.settings.unclaimed_timeout;
                self.schedule(
                    timeout,
                    Due::ExpireMember {
                        room: Arc::clone(room),
                        token,
                        epoch,
                    },
                );
                token
            }
        }
    }

    /// `Ok` if `token` proves a membership of the open room `code`.
    pub fn check_member(&self, code: &RoomCode, token: &MemberToken) -> Result<(), RoomError> {
        self.room(code)?.check_member(token)
    }

    pub fn exists(&self, code: &RoomCode) -> bool {
        self.map().contains_key(code)
    }

    /// How many rooms are open.
    pub fn count(&self) -> usize {
        self.map().len()
    }

    /// Rooms, members and streams now, and the running totals.
    pub fn stats(&self) -> RoomStats {
        let rooms: Vec<Arc<Room>> = self.map().values().cloned().collect();
        let (members, streams) = rooms
            .iter()
            .map(|room| room.counts())
            .fold((0, 0), |(m, s), (members, streams)| {
                (m + members, s + streams)
            });
        let tally = &self.shared.tally;
        RoomStats {
            rooms: rooms.len() as u64,
            members: members as u64,
            streams: streams as u64,
            messages: tally.messages.load(Ordering::Relaxed),
            deliveries: tally.deliveries.load(Ordering::Relaxed),
            resets: tally.resets.load(Ordering::Relaxed),
            history_bytes: self.shared.history.held(),
            history_trims: self.shared.history.trimmed(),
        }
    }

    /// How many room and member deadlines are waiting (bounded by rooms and members).
    pub fn pending_timers(&self) -> usize {
        self.shared.timers.pending()
    }

    /// The room as its page shows it to a member; viewing counts as activity.
    pub fn snapshot(
        &self,
        code: &RoomCode,
        token: &MemberToken,
    ) -> Result<RoomSnapshot, RoomError> {
        let room = self.room(code)?;
        let snapshot = room.snapshot(token)?;
        self.touched(&room, token);
        Ok(snapshot)
    }

    /// Everyone in the room, for a member.
    pub fn present(
        &self,
        code: &RoomCode,
        token: &MemberToken,
    ) -> Result<Vec<Presence>, RoomError> {
        self.room(code)?.present(token)
    }

    /// Publishes a member's message, once per idempotency key while history
    /// holds it; posting counts as activity.
    pub fn publish_message(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        text: MessageText,
        key: Option<IdempotencyKey>,
    ) -> Result<Published, RoomError> {
        let room = self.room(code)?;
        let published = room.publish_message(token, text, key)?;
        self.touched(&room, token);
        Ok(published)
    }

    /// The id of the message the member already sent under `key`, if any.
    pub fn sent_under(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        key: &IdempotencyKey,
    ) -> Result<Option<u64>, RoomError> {
        Ok(self.room(code)?.sent_under(token, key))
    }

    /// Opens an event stream for a member, replaying what came after `after`;
    /// a client that read another room under this code (`epoch`) gets a gap.
    pub fn subscribe(
        &self,
        code: &RoomCode,
        token: &MemberToken,
        after: Option<u64>,
        epoch: Option<u64>,
    ) -> Result<Subscription, RoomError> {
        let room = self.room(code)?;
        let mut opened: OpenedStream = room.open_stream(token, after)?;
        if epoch.is_some_and(|epoch| epoch != room.incarnation) {
            opened.backlog = Backlog::Gap;
        }
        Ok(Subscription {
            receiver: opened.receiver,
            backlog: opened.backlog,
            resume_after: opened.resume_after,
            membership_ended: opened.membership_ended,
            handle: StreamHandle::local(LocalHold {
                rooms: self.clone(),
                room,
                token: *token,
                membership: opened.membership,
            }),
        })
    }

    /// The member leaves room `code` at once; their streams there end.
    pub fn leave(&self, code: &RoomCode, token: &MemberToken) -> Result<(), RoomError> {
        self.room(code)?.leave(token)
    }

    /// From now on nobody leaves and no room closes by a deadline: the server
    /// is stopping to write its rooms down, and its streams ending is no
    /// one going away. (Leaving on purpose still works.)
    pub fn hold(&self) {
        self.shared.held.store(true, Ordering::Release);
    }

    /// Every open room, as a snapshot keeps them.
    pub fn export(&self) -> Snapshot {
        let rooms: Vec<Arc<Room>> = self.map().values().cloned().collect();
        Snapshot {
            version: snapshot::VERSION,
            next_serial: self.shared.next_serial.load(Ordering::Relaxed),
            rooms: rooms.iter().filter_map(|room| room.export()).collect(),
        }
    }

    /// Opens the rooms of `snapshot` (into a registry with none yet), each
    /// member counting as present for `restart_grace`: whoever has no stream
    /// back by then leaves, and a room with none closes, as after their grace.
    /// How many rooms were restored.
    pub fn import(
        &self,
        snapshot: Snapshot,
        restart_grace: Duration,
    ) -> Result<usize, SnapshotError> {
        let settings = &self.shared.settings;
        let mut restored = Vec::with_capacity(snapshot.rooms.len());
        for record in snapshot.rooms {
            let code = record.code.clone();
            let (room, timers) = Room::restore(
                record,
                Arc::clone(&self.shared.history),
                settings.channel_capacity,
                Arc::clone(&self.shared.tally),
            )
            .map_err(|why| SnapshotError::Invalid(format!("room {code}: {why}")))?;
            restored.push((Arc::new(room), timers));
        }
        let count = restored.len();
        let mut next_serial = snapshot.next_serial;
        for (room, timers) in restored {
            next_serial = next_serial.max(room.serial + 1);
            self.map().insert(room.code, Arc::clone(&room));
            for (token, epoch) in timers.members {
                let room = Arc::clone(&room);
                self.schedule(restart_grace, Due::ExpireMember { room, token, epoch });
            }
            let epoch = timers.room_epoch;
            self.schedule(restart_grace, Due::CloseRoom { room, epoch });
        }
        self.shared
            .next_serial
            .fetch_max(next_serial, Ordering::Relaxed);
        Ok(count)
    }

    fn stream_closed(&self, room: &Arc<Room>, token: &MemberToken, membership: u64) {
        let timers = room.close_stream(token, membership);
        self.start_idle_timers(room, token, timers, self.shared.settings.grace);
    }

    fn touched(&self, room: &Arc<Room>, token: &MemberToken) {
        let timers = room.touch(token);
        self.start_idle_timers(room, token, timers, self.shared.settings.unclaimed_timeout);
    }

    fn start_idle_timers(
        &self,
        room: &Arc<Room>,
        token: &MemberToken,
        timers: IdleTimers,
        delay: Duration,
    ) {
        if let Some(epoch) = timers.member_epoch {
            let room = Arc::clone(room);
            let token = *token;
            self.schedule(delay, Due::ExpireMember { room, token, epoch });
        }
        if let Some(epoch) = timers.room_epoch {
            let room = Arc::clone(room);
            self.schedule(delay, Due::CloseRoom { room, epoch });
        }
    }

    /// Runs `due` after `delay`: at once when the delay is zero (`--grace 0`) or
    /// when no runtime is left to wait on (a stream dropped as the server stops).
    fn schedule(&self, delay: Duration, due: Due) {
        if delay.is_zero() || tokio::runtime::Handle::try_current().is_err() {
            self.run(due);
        } else {
            self.shared.timers.set(delay, due);
        }
    }

    fn run(&self, due: Due) {
        if self.shared.held.load(Ordering::Acquire) {
            return;
        }
        match due {
            Due::ExpireMember { room, token, epoch } => room.expire_member(&token, epoch),
            Due::CloseRoom { room, epoch } => self.close_if_idle(&room, epoch),
        }
    }

    fn close_if_idle(&self, room: &Arc<Room>, epoch: u64) {
        let mut map = self.map();
        // The code may already belong to a newer room; only ours may be removed.
        let ours = map.get(&room.code).is_some_and(|r| Arc::ptr_eq(r, room));
        if ours && room.close_if_idle(epoch) {
            map.remove(&room.code);
            drop(map);
            tracing::info!(room = %room.code, "room closed");
        }
    }
}

impl LocalHold {
    /// What a subscriber that fell behind the channel must send to be whole again.
    pub fn catch_up(&self, after: u64) -> (Backlog, u64) {
        self.room.catch_up(after)
    }

    /// Counts a `reset` sent on this stream.
    pub fn reset_sent(&self) {
        self.rooms
            .shared
            .tally
            .resets
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for LocalHold {
    fn drop(&mut self) {
        self.rooms
            .stream_closed(&self.room, &self.token, self.membership);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rooms = LocalRooms;

    fn settings(grace: u64) -> RoomSettings {
        RoomSettings {
            grace: Duration::from_secs(grace),
            unclaimed_timeout: Duration::from_secs(60),
            history: 10,
            history_bytes: usize::MAX,
            max_history_bytes: usize::MAX,
            channel_capacity: 16,
            max_rooms: 100,
            max_members: 100,
        }
    }

    fn name(n: &str) -> DisplayName {
        DisplayName::parse(n).unwrap()
    }

    /// A room where alice has a stream open and bob has joined without one.
    fn alice_streaming_and_bob_joined(
        rooms: &Rooms,
    ) -> (RoomCode, MemberToken, Subscription, MemberToken) {
        let (code, alice) = rooms.create(Joiner::named("alice"), None).unwrap();
        let alice_stream = rooms.subscribe(&code, &alice, None, None).unwrap();
        let bob = rooms.join(&code, Joiner::named("bob")).unwrap();
        (code, alice, alice_stream, bob)
    }

    /// Lets spawned timers whose deadline has passed run to completion.
    async fn advance(secs: u64) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_that_never_gets_a_stream_closes_within_a_minute() {
        let rooms = Rooms::new(settings(5));
        let (code, _alice) = rooms.create(Joiner::named("alice"), None).unwrap();
        advance(59).await;
        assert!(rooms.exists(&code));
        advance(2).await;
        assert!(!rooms.exists(&code));
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_closes_after_the_grace_unless_a_stream_returns() {
        let rooms = Rooms::new(settings(5));
        let (code, alice) = rooms.create(Joiner::named("alice"), None).unwrap();
        drop(rooms.subscribe(&code, &alice, None, None).unwrap());
        advance(4).await;
        let back = rooms.subscribe(&code, &alice, None, None).unwrap();
        advance(10).await;
        assert!(rooms.exists(&code), "a stream came back within the grace");
        drop(back);
        advance(6).await;
        assert!(!rooms.exists(&code));
    }

    #[tokio::test]
    async fn with_no_grace_the_last_stream_closes_the_room_at_once() {
        let rooms = Rooms::new(settings(0));
        let (code, alice) = rooms.create(Joiner::named("alice"), None).unwrap();
        drop(rooms.subscribe(&code, &alice, None, None).unwrap());
        assert!(!rooms.exists(&code));
        assert_eq!(
            rooms.join(&code, Joiner::named("bob")),
            Err(RoomError::NotFound)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn posting_and_viewing_keep_a_member_without_a_stream() {
        let rooms = Rooms::new(settings(5));
        let (code, _alice, _alice_stream, bob) = alice_streaming_and_bob_joined(&rooms);
        for _ in 0..3 {
            advance(50).await;
            let text = MessageText::parse("no JavaScript here", 100).unwrap();
            rooms.publish_message(&code, &bob, text, None).unwrap();
        }
        advance(50).await;
        rooms.snapshot(&code, &bob).unwrap();
        advance(59).await;
        assert!(
            rooms.snapshot(&code, &bob).is_ok(),
            "active for 4 minutes without a stream"
        );
        advance(61).await;
        assert_eq!(
            rooms.snapshot(&code, &bob).unwrap_err(),
            RoomError::NotMember,
            "idle for a minute: gone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn activity_does_not_stretch_a_grace_period() {
        let rooms = Rooms::new(settings(5));
        let (code, alice, _alice_stream, bob) = alice_streaming_and_bob_joined(&rooms);
        drop(rooms.subscribe(&code, &bob, None, None).unwrap());

        advance(1).await;
        rooms.snapshot(&code, &bob).unwrap();
        advance(5).await;

        assert_eq!(
            rooms.snapshot(&code, &bob).unwrap_err(),
            RoomError::NotMember
        );
        let present = rooms.present(&code, &alice).unwrap();
        assert_eq!(present.len(), 1);
        assert_eq!(present[0].name, name("alice"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_who_never_streams_expires_and_frees_the_name() {
        let rooms = Rooms::new(settings(5));
        let (code, _alice, _alice_stream, bob) = alice_streaming_and_bob_joined(&rooms);
        assert_eq!(
            rooms.join(&code, Joiner::named("Bob")),
            Err(RoomError::NameTaken)
        );
        advance(61).await;
        assert_eq!(
            rooms.snapshot(&code, &bob).unwrap_err(),
            RoomError::NotMember
        );
        rooms.join(&code, Joiner::named("Bob")).unwrap();
    }

    /// A client that names the room it read (its epoch) resumes in that room,
    /// and is told to start afresh in any other room under the same code.
    #[tokio::test]
    async fn a_client_of_another_room_under_the_code_gets_a_gap() {
        let rooms = Rooms::new(settings(5));
        let (code, alice) = rooms.create(Joiner::named("alice"), None).unwrap();
        let epoch = rooms.snapshot(&code, &alice).unwrap().epoch;

        let same = rooms
            .subscribe(&code, &alice, Some(0), Some(epoch))
            .unwrap();
        let other = rooms
            .subscribe(&code, &alice, Some(0), Some(epoch.wrapping_add(1)))
            .unwrap();

        assert!(matches!(same.backlog, Backlog::Events(ref events) if events.len() == 1));
        assert!(matches!(other.backlog, Backlog::Gap));
    }

    /// Rooms written down and read back in a new registry keep their ids,
    /// members, owner, lock and keys; everyone counts as present (no notice)
    /// for the restart grace, and whoever has no stream back by then leaves.
    #[tokio::test(start_paused = true)]
    async fn restored_members_count_as_present_for_the_restart_grace() {
        let before = Rooms::new(settings(5));
        let (code, alice) = before.create(Joiner::named("alice"), None).unwrap();
        let bob = before.join(&code, Joiner::named("bob")).unwrap();
        let key = IdempotencyKey::parse("k").unwrap();
        let text = || MessageText::parse("hi", 100).unwrap();
        before
            .publish_message(&code, &alice, text(), Some(key.clone()))
            .unwrap();
        before.set_locked(&code, &alice, true).unwrap();
        let epoch = before.snapshot(&code, &alice).unwrap().epoch;
        before.hold();
        let bytes = before.export().encode().unwrap();

        let after = Rooms::new(settings(5));
        let restored = Snapshot::decode(&bytes).unwrap();
        assert_eq!(after.import(restored, Duration::from_secs(60)).unwrap(), 1);

        let page = after.snapshot(&code, &bob).unwrap();
        assert_eq!((page.epoch, page.last_id, page.locked), (epoch, 4, true));
        assert!(
            page.present.iter().all(|p| p.connected),
            "{:?}",
            page.present
        );
        assert_eq!(
            after.publish_message(&code, &alice, text(), Some(key)),
            Ok(Published::Repeat(3)),
            "stored once under its key"
        );
        let mut alice_stream = after.subscribe(&code, &alice, Some(4), None).unwrap();
        advance(61).await;
        assert_eq!(
            alice_stream.receiver.try_recv().unwrap().content().name,
            "bob",
            "bob, not back, left when the restart grace ended"
        );
        assert_eq!(after.present(&code, &alice).unwrap().len(), 1);
        assert!(after.create(Joiner::named("carol"), None).is_ok());
    }

    /// A flood of joins, posts and page views moves deadlines but adds none: one
    /// per room and one per member, however often they are touched.
    #[tokio::test(start_paused = true)]
    async fn timers_stay_one_per_room_and_member_under_a_flood() {
        let rooms = Rooms::new(settings(5));
        let (code, alice) = rooms.create(Joiner::named("alice"), None).unwrap();
        for i in 0..50 {
            rooms
                .join(&code, Joiner::named(&format!("guest{i}")))
                .unwrap();
        }
        for _ in 0..1000 {
            rooms.snapshot(&code, &alice).unwrap();
            let text = MessageText::parse("again", 100).unwrap();
            rooms.publish_message(&code, &alice, text, None).unwrap();
        }

        assert_eq!(rooms.pending_timers(), 1 + 51);
    }
}
