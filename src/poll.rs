//! Long polling: the event stream's answer for networks whose proxies hold a
//! stream instead of passing it on.
//!
//! `GET /rooms/{CODE}/poll?after=ID` answers at once with the events after `ID`
//! when there are any, else waits (at most `--poll-wait`) for the next one, and
//! answers `{"events": [...], "last_id": N}` where each event is exactly the
//! object the stream's `data:` line carries (the same bytes), and a gap that
//! history cannot fill is a `reset` object, as on the stream. While a poll waits
//! it holds its room like an open stream: a member who keeps polling is present,
//! one whose polls stop leaves after the grace period, and polling announces
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;
use warp::http::{HeaderValue, header};
use warp::reply::Response;

use crate::rooms::{Backlog, Event, Subscription};

/// Answers a poll: what the subscription has after `after` (or, without one,
/// what comes next), waiting at most `wait` (and no longer once `shutdown`
/// begins) for something to arrive.
pub async fn answer(
    mut subscription: Subscription,
    after: Option<u64>,
    wait: Duration,
    shutdown: CancellationToken,
) -> Response {
    let mut answer = Answer::new(after.unwrap_or(subscription.resume_after));
    match std::mem::replace(&mut subscription.backlog, Backlog::Events(Vec::new())) {
        Backlog::Events(events) => answer.extend(&events),
        Backlog::Gap => answer.reset(&subscription, subscription.resume_after),
    }
    if answer.is_empty() {
        tokio::select! {
            received = subscription.receiver.recv() => answer.receive(received, &subscription),
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => {}
            () = subscription.membership_ended.cancelled() => {}
        }
    }
    // Whatever else has arrived by now goes in the same answer.
    while !answer.reset {
        match subscription.receiver.try_recv() {
            Ok(event) => answer.take(&event, &subscription),
            Err(TryRecvError::Lagged(_)) => answer.catch_up(&subscription),
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    answer.response()
}

/// The events of one answer, as JSON objects joined in one buffer.
struct Answer {
    /// `,`-separated JSON objects.
    events: BytesMut,
    /// Id of the newest event given, or covered by a reset.
    last_id: u64,
    /// A reset was given: the client starts afresh, nothing may follow it.
    reset: bool,
}

impl Answer {
    fn new(after: u64) -> Self {
        Self {
            events: BytesMut::new(),
            last_id: after,
            reset: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Adds `event` unless an earlier answer part already covered it.
    fn push(&mut self, event: &Event) {
        if event.id <= self.last_id || self.reset {
            return;
        }
        if !self.events.is_empty() {
            self.events.put_u8(b',');
        }
        self.events.put(event.json());
        self.last_id = event.id;
    }

    /// Adds a live event; one that skips ids (events this poll never got:
    /// a shared room's reader fell behind its history) is filled in from
    /// history, or makes the answer a reset.
    fn take(&mut self, event: &Event, subscription: &Subscription) {
        if event.id > self.last_id + 1 {
            self.catch_up(subscription);
        } else {
            self.push(event);
        }
    }

    fn extend(&mut self, events: &[Arc<Event>]) {
        for event in events {
            self.push(event);
        }
    }

    fn receive(&mut self, received: Result<Arc<Event>, RecvError>, subscription: &Subscription) {
        match received {
            Ok(event) => self.take(&event, subscription),
            Err(RecvError::Lagged(_)) => self.catch_up(subscription),
            Err(RecvError::Closed) => {}
        }
    }

    /// Fell behind the channel while answering: take what history has.
    fn catch_up(&mut self, subscription: &Subscription) {
        match subscription.handle.catch_up(self.last_id) {
            (Backlog::Events(events), _) => self.extend(&events),
            (Backlog::Gap, newest) => self.reset(subscription, newest),
        }
    }

    /// History no longer reaches back to where the client asked: tell it to
    /// start afresh, and nothing else.
    fn reset(&mut self, subscription: &Subscription, newest: u64) {
        subscription.handle.reset_sent();
        self.events.clear();
        self.events
            .put(crate::events::reset_json(newest).as_bytes());
        self.last_id = newest;
        self.reset = true;
    }

    fn response(self) -> Response {
        let mut body = BytesMut::with_capacity(self.events.len() + 40);
        body.put_slice(b"{\"events\":[");
        body.put(self.events);
        body.put_slice(format!("],\"last_id\":{}}}", self.last_id).as_bytes());
        let mut response = Response::new(Bytes::from(body).into());
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // Cache-Control: set by the routes on every personal response
        // (`http::keep_private`).
        response
    }
}
