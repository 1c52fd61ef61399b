//! Reaps a room the moment a lease in it is due to lapse, so a member whose
//! last stream closed leaves when the grace period ends, as with rooms in
//! memory, rather than at the next renewal. Renewals reap too, every few
//! seconds; they cover what no timer here knows of (an instance that crashed).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Inner;
use crate::input::RoomCode;

/// Deadlines closer together than this are reaped together.
const BUCKET: Duration = Duration::from_millis(50);

/// Rooms to reap, by when.
#[derive(Default)]
pub(super) struct Reaps {
    due: Mutex<BTreeSet<(Instant, RoomCode)>>,
    added: Notify,
}

impl Reaps {
    fn due(&self) -> MutexGuard<'_, BTreeSet<(Instant, RoomCode)>> {
        self.due.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reaps room `code` once `after` has passed (a little later, so that
    /// Redis's clock has passed the lease's deadline too).
    pub fn after(&self, after: Duration, code: RoomCode) {
        // One entry per room per bucket, however many streams close at once.
        let at = round_up(Instant::now() + after + BUCKET);
        self.due().insert((at, code));
        self.added.notify_one();
    }
}

/// `at` moved up to the next multiple of [`BUCKET`] since a fixed origin.
fn round_up(at: Instant) -> Instant {
    static ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    let since = at.saturating_duration_since(*ORIGIN).as_millis();
    let bucket = BUCKET.as_millis();
    let rounded = since.div_ceil(bucket) * bucket;
    *ORIGIN + Duration::from_millis(u64::try_from(rounded).unwrap_or(u64::MAX))
}

pub(super) async fn run(reaps: Arc<Reaps>, inner: Weak<Inner>, stop: CancellationToken) {
    loop {
        let next = reaps.due().first().map(|(at, _)| *at);
        let wait = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait => {}
            () = reaps.added.notified() => continue,
            () = stop.cancelled() => return,
        }
        let now = Instant::now();
        let due: Vec<RoomCode> = {
            let mut set = reaps.due();
            let mut due = Vec::new();
            while let Some(&(at, code)) = set.first()
                && at <= now
            {
                set.pop_first();
                due.push(code);
            }
            due
        };
        let Some(inner) = inner.upgrade() else { return };
        for code in due {
            // `exists` reaps, and closes the room if nothing holds it.
            let _ = inner.call(&code, "exists", &[]).await;
        }
    }
}
