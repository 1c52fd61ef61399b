//! The one place where rooms wait for time to pass.
//!
//! Each room, and each member of a room, has at most one deadline pending: when a
//! new one is set (a stream closed again, a stream-less member posted again) it
//! replaces the old. One background task owns a [`DelayQueue`] of those deadlines
//! and runs each as it falls due, so a flood of creates, joins, posts or page views
//! moves deadlines around but never adds tasks, and the queue never holds more
//! than one entry per room and per member.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tokio_util::time::delay_queue::Key;

use super::MemberToken;
use super::room::Room;

/// Whose deadline an entry is: a room's (close when idle) or one member's (leave).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Slot {
    /// [`Room::serial`]: unique for the life of the registry, unlike codes.
    room: u64,
    member: Option<MemberToken>,
}

/// What to do when a deadline falls due; the epoch tells whether it still holds.
pub(super) enum Due {
    /// Close the room if it has had no stream since `epoch`.
    CloseRoom { room: Arc<Room>, epoch: u64 },
    /// End the membership if it has had no stream since `epoch`.
    ExpireMember {
        room: Arc<Room>,
        token: MemberToken,
        epoch: u64,
    },
}

impl Due {
    fn slot(&self) -> Slot {
        match self {
            Self::CloseRoom { room, .. } => Slot {
                room: room.serial,
                member: None,
            },
            Self::ExpireMember { room, token, .. } => Slot {
                room: room.serial,
                member: Some(*token),
            },
        }
    }
}

/// The pending deadlines; shared by the registry (which sets them) and the task
/// that waits for them.
#[derive(Default)]
pub(super) struct Timers {
    // std Mutex: held only to insert, remove or poll the queue; never across an
    // `.await` (the task polls the queue inside `poll_fn`).
    queue: Mutex<Queue>,
    /// Cancelled when the registry is dropped: the task ends.
    stop: CancellationToken,
}

#[derive(Default)]
struct Queue {
    deadlines: DelayQueue<Due>,
    /// Where each slot's pending deadline sits in the queue.
    keys: HashMap<Slot, Key>,
}

impl Timers {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the slot's deadline to `delay` from now, replacing any earlier one.
    pub(super) fn set(&self, delay: Duration, due: Due) {
        let slot = due.slot();
        let mut queue = self.queue();
        if let Some(old) = queue.keys.remove(&slot) {
            queue.deadlines.try_remove(&old);
        }
        let key = queue.deadlines.insert_at(due, Instant::now() + delay);
        queue.keys.insert(slot, key);
    }

    /// How many deadlines are pending (for tests and metrics).
    pub(super) fn pending(&self) -> usize {
        self.queue().keys.len()
    }

    pub(super) fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits for the next deadline to fall due and returns it; `None` once
    /// stopped. An empty queue is not an end: `insert_at` wakes the waiting task.
    pub(super) async fn next_due(&self) -> Option<Due> {
        let due = poll_fn(|cx| {
            let mut queue = self.queue();
            match queue.deadlines.poll_expired(cx) {
                Poll::Ready(Some(expired)) => {
                    let due = expired.into_inner();
                    queue.keys.remove(&due.slot());
                    Poll::Ready(due)
                }
                Poll::Ready(None) | Poll::Pending => Poll::Pending,
            }
        });
        tokio::select! {
            due = due => Some(due),
            () = self.stop.cancelled() => None,
        }
    }
}
