//! The room registry: codes to rooms, and each room's lifecycle in time.
//!
//! [`Rooms`] is the one handle the rest of the server uses for everything a room
//! does — create, join, publish, subscribe with replay, presence, close — so a
//! second backend (several instances sharing rooms) can later sit behind the same
//! methods. Timers live here: a member leaves, and a room closes, when no stream of
//! theirs has come back within the grace period.

mod event;
mod room;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use self::event::{Event, EventKind};
pub use self::room::{Backlog, RoomSnapshot};
use self::room::{IdleTimers, Room};
use crate::input::{DisplayName, MessageText, RoomCode};
use crate::session::SessionId;

/// How many random codes to try before saying every code is taken.
const CODE_ATTEMPTS: usize = 64;

/// Why a room operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomError {
    /// No open room has this code.
    NotFound,
    /// The session is not a member of this room.
    NotMember,
    /// Another member of the room uses this name.
    NameTaken,
    /// Nearly every code is in use.
    NoFreeCode,
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
    /// Events a subscriber may fall behind before it catches up from history.
    pub channel_capacity: usize,
}

/// Cheap-to-clone handle on every open room.
#[derive(Clone)]
pub struct Rooms {
    shared: Arc<Shared>,
}

struct Shared {
    settings: RoomSettings,
    // std Mutex: held only to look up, insert or remove; never across an `.await`.
    // Lock order: this map first, then a room's own lock.
    rooms: Mutex<HashMap<RoomCode, Arc<Room>>>,
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
/// start the grace timers.
pub struct StreamHandle {
    rooms: Rooms,
    room: Arc<Room>,
    session: SessionId,
    membership: u64,
}

impl Rooms {
    pub fn new(settings: RoomSettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                settings,
                rooms: Mutex::new(HashMap::new()),
            }),
        }
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

    /// Opens a room under a fresh code with `creator` as its first member.
    pub fn create(&self, creator: &SessionId, name: DisplayName) -> Result<RoomCode, RoomError> {
        let settings = &self.shared.settings;
        let mut rng = rand::rng();
        let mut map = self.map();
        let code = (0..CODE_ATTEMPTS)
            .map(|_| RoomCode::random(&mut rng))
            .find(|code| !map.contains_key(code))
            .ok_or(RoomError::NoFreeCode)?;
        let room = Arc::new(Room::new(code, settings.history, settings.channel_capacity));
        let creator_epoch = room.join(creator, name)?;
        map.insert(code, Arc::clone(&room));
        drop(map);
        tracing::info!(room = %code, "room opened");
        if let Some(epoch) = creator_epoch {
            self.schedule_member_expiry(&room, creator.clone(), epoch, settings.unclaimed_timeout);
        }
        self.schedule_close(&room, room.epoch(), settings.unclaimed_timeout);
        Ok(code)
    }

    /// Makes `session` a member named `name`; already being one is fine.
    pub fn join(
        &self,
        code: &RoomCode,
        session: &SessionId,
        name: DisplayName,
    ) -> Result<(), RoomError> {
        let room = self.room(code)?;
        if let Some(epoch) = room.join(session, name)? {
            let timeout = self.shared.settings.unclaimed_timeout;
            self.schedule_member_expiry(&room, session.clone(), epoch, timeout);
        }
        Ok(())
    }

    /// `Ok` if `session` is a member of the open room `code`.
    pub fn check_member(&self, code: &RoomCode, session: &SessionId) -> Result<(), RoomError> {
        self.room(code)?.check_member(session)
    }

    pub fn exists(&self, code: &RoomCode) -> bool {
        self.map().contains_key(code)
    }

    /// The room as its page shows it to a member; viewing counts as activity.
    pub fn snapshot(
        &self,
        code: &RoomCode,
        session: &SessionId,
    ) -> Result<RoomSnapshot, RoomError> {
        let room = self.room(code)?;
        let snapshot = room.snapshot(session)?;
        self.touched(&room, session);
        Ok(snapshot)
    }

    pub fn present(
        &self,
        code: &RoomCode,
        session: &SessionId,
    ) -> Result<Vec<DisplayName>, RoomError> {
        self.room(code)?.present(session)
    }

    /// Publishes a member's message; posting counts as activity.
    pub fn publish_message(
        &self,
        code: &RoomCode,
        session: &SessionId,
        text: MessageText,
    ) -> Result<u64, RoomError> {
        let room = self.room(code)?;
        let id = room.publish_message(session, text)?;
        self.touched(&room, session);
        Ok(id)
    }

    /// Opens an event stream for a member, replaying what came after `after`.
    pub fn subscribe(
        &self,
        code: &RoomCode,
        session: &SessionId,
        after: Option<u64>,
    ) -> Result<Subscription, RoomError> {
        let room = self.room(code)?;
        let opened = room.open_stream(session, after)?;
        Ok(Subscription {
            receiver: opened.receiver,
            backlog: opened.backlog,
            resume_after: opened.resume_after,
            membership_ended: opened.membership_ended,
            handle: StreamHandle {
                rooms: self.clone(),
                room,
                session: session.clone(),
                membership: opened.membership,
            },
        })
    }

    /// `session` leaves room `code` at once; its streams there end.
    pub fn leave(&self, code: &RoomCode, session: &SessionId) -> Result<(), RoomError> {
        self.room(code)?.leave(session)
    }

    fn stream_closed(&self, room: &Arc<Room>, session: &SessionId, membership: u64) {
        let timers = room.close_stream(session, membership);
        self.start_idle_timers(room, session, timers, self.shared.settings.grace);
    }

    fn touched(&self, room: &Arc<Room>, session: &SessionId) {
        let timers = room.touch(session);
        self.start_idle_timers(
            room,
            session,
            timers,
            self.shared.settings.unclaimed_timeout,
        );
    }

    fn start_idle_timers(
        &self,
        room: &Arc<Room>,
        session: &SessionId,
        timers: IdleTimers,
        delay: Duration,
    ) {
        if let Some(epoch) = timers.member_epoch {
            self.schedule_member_expiry(room, session.clone(), epoch, delay);
        }
        if let Some(epoch) = timers.room_epoch {
            self.schedule_close(room, epoch, delay);
        }
    }

    fn schedule_member_expiry(
        &self,
        room: &Arc<Room>,
        session: SessionId,
        epoch: u64,
        delay: Duration,
    ) {
        let room = Arc::clone(room);
        self.after(delay, move |_| room.expire_member(&session, epoch));
    }

    fn schedule_close(&self, room: &Arc<Room>, epoch: u64, delay: Duration) {
        let room = Arc::clone(room);
        self.after(delay, move |rooms| rooms.close_if_idle(&room, epoch));
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

    /// Runs `task` after `delay`: at once when the delay is zero (`--grace 0`) or
    /// when no runtime is left to wait on (the server is shutting down).
    fn after(&self, delay: Duration, task: impl FnOnce(&Rooms) + Send + 'static) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !delay.is_zero() => {
                let rooms = self.clone();
                runtime.spawn(async move {
                    tokio::time::sleep(delay).await;
                    task(&rooms);
                });
            }
            _ => task(self),
        }
    }
}

impl StreamHandle {
    /// What a subscriber that fell behind the channel must send to be whole again.
    pub fn catch_up(&self, after: u64) -> (Backlog, u64) {
        self.room.catch_up(after)
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        self.rooms
            .stream_closed(&self.room, &self.session, self.membership);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(grace: u64) -> RoomSettings {
        RoomSettings {
            grace: Duration::from_secs(grace),
            unclaimed_timeout: Duration::from_secs(60),
            history: 10,
            channel_capacity: 16,
        }
    }

    fn name(n: &str) -> DisplayName {
        DisplayName::parse(n).unwrap()
    }

    /// A room where alice has a stream open and bob has joined without one.
    fn alice_streaming_and_bob_joined(
        rooms: &Rooms,
    ) -> (RoomCode, SessionId, Subscription, SessionId) {
        let alice = SessionId::random();
        let code = rooms.create(&alice, name("alice")).unwrap();
        let alice_stream = rooms.subscribe(&code, &alice, None).unwrap();
        let bob = SessionId::random();
        rooms.join(&code, &bob, name("bob")).unwrap();
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
        let alice = SessionId::random();
        let code = rooms.create(&alice, name("alice")).unwrap();
        advance(59).await;
        assert!(rooms.exists(&code));
        advance(2).await;
        assert!(!rooms.exists(&code));
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_closes_after_the_grace_unless_a_stream_returns() {
        let rooms = Rooms::new(settings(5));
        let alice = SessionId::random();
        let code = rooms.create(&alice, name("alice")).unwrap();
        drop(rooms.subscribe(&code, &alice, None).unwrap());
        advance(4).await;
        let back = rooms.subscribe(&code, &alice, None).unwrap();
        advance(10).await;
        assert!(rooms.exists(&code), "a stream came back within the grace");
        drop(back);
        advance(6).await;
        assert!(!rooms.exists(&code));
    }

    #[tokio::test]
    async fn with_no_grace_the_last_stream_closes_the_room_at_once() {
        let rooms = Rooms::new(settings(0));
        let alice = SessionId::random();
        let code = rooms.create(&alice, name("alice")).unwrap();
        drop(rooms.subscribe(&code, &alice, None).unwrap());
        assert!(!rooms.exists(&code));
        assert_eq!(
            rooms.join(&code, &SessionId::random(), name("bob")),
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
            rooms.publish_message(&code, &bob, text).unwrap();
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
        drop(rooms.subscribe(&code, &bob, None).unwrap());

        advance(1).await;
        rooms.snapshot(&code, &bob).unwrap();
        advance(5).await;

        assert_eq!(
            rooms.snapshot(&code, &bob).unwrap_err(),
            RoomError::NotMember
        );
        assert_eq!(rooms.present(&code, &alice).unwrap(), vec![name("alice")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_who_never_streams_expires_and_frees_the_name() {
        let rooms = Rooms::new(settings(5));
        let (code, _alice, _alice_stream, bob) = alice_streaming_and_bob_joined(&rooms);
        assert_eq!(
            rooms.join(&code, &SessionId::random(), name("Bob")),
            Err(RoomError::NameTaken)
        );
        advance(61).await;
        assert_eq!(
            rooms.snapshot(&code, &bob).unwrap_err(),
            RoomError::NotMember
        );
        rooms
            .join(&code, &SessionId::random(), name("Bob"))
            .unwrap();
    }
}
