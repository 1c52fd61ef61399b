//! The Server-Sent Events stream of one subscriber.
//!
//! It sends a `retry:` hint, then the backlog the client asked for (after
//! `Last-Event-ID` or `?after=`), then live events as the room publishes them, with a
//! `: keep-alive` comment whenever the line has been quiet for the keep-alive
//! period. A subscriber that falls behind the broadcast channel catches up from
//! the room's history, or is told to `reset` when history no longer reaches back.
//! The stream ends itself when the server shuts down, and closes its room
//! membership when the client goes away (hyper drops the body, which drops the
//! [`StreamHandle`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use warp::Reply;
use warp::http::{HeaderValue, header};
use warp::reply::Response;

use crate::rooms::{Backlog, Event, StreamHandle, Subscription};

/// SSE `event:` name telling the client to reload: events it asked for are gone.
pub const RESET_EVENT: &str = "reset";

/// How long a browser waits before reconnecting a dropped stream, in milliseconds.
const RETRY_MS: u64 = 2000;

const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Where a stream should resume: the `Last-Event-ID` header wins over `?after=`,
/// because a browser reconnecting an `EventSource` sends the header with the
/// original URL.
pub fn resume_point(
    last_event_id: Option<&str>,
    after: Option<&str>,
) -> Result<Option<u64>, String> {
    let Some(raw) = last_event_id.or(after) else {
        return Ok(None);
    };
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse()
        .map(Some)
        .map_err(|_| format!("An event id is a whole number; {raw:?} is not."))
}

/// The `200 text/event-stream` response for a new subscription.
pub fn response(
    subscription: Subscription,
    keepalive: Duration,
    shutdown: CancellationToken,
) -> Response {
    let stream = EventStream::new(subscription, keepalive, shutdown);
    let mut response = warp::reply::stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx (and proxies that follow it) must pass each event on at once.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn reset_frame(last_id: u64) -> Bytes {
    Bytes::from(format!(
        "event: {RESET_EVENT}\ndata: {{\"kind\":\"{RESET_EVENT}\",\"last_id\":{last_id}}}\n\n"
    ))
}

struct EventStream {
    live: BroadcastStream<Arc<Event>>,
    handle: StreamHandle,
    /// Frames to send before taking more from the channel.
    queued: VecDeque<Bytes>,
    /// Id of the last event this subscriber was given or told to skip.
    last_id: u64,
    keepalive_every: Duration,
    keepalive: Pin<Box<Sleep>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    ended: bool,
}

impl EventStream {
    fn new(
        subscription: Subscription,
        keepalive_every: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        let Subscription {
            receiver,
            backlog,
            resume_after,
            handle,
        } = subscription;
        let mut stream = Self {
            live: BroadcastStream::new(receiver),
            handle,
            queued: VecDeque::from([Bytes::from(format!("retry: {RETRY_MS}\n\n"))]),
            last_id: resume_after,
            keepalive_every,
            keepalive: Box::pin(tokio::time::sleep(keepalive_every)),
            shutdown: Box::pin(shutdown.cancelled_owned()),
            ended: false,
        };
        stream.queue_backlog(backlog, resume_after);
        stream
    }

    fn queue_backlog(&mut self, backlog: Backlog, covered_up_to: u64) {
        match backlog {
            Backlog::Events(events) => {
                self.queued.extend(events.iter().map(|e| e.frame().clone()));
            }
            Backlog::Gap => self.queued.push_back(reset_frame(covered_up_to)),
        }
        self.last_id = covered_up_to;
    }

    fn sent_something(&mut self) {
        let next = Instant::now() + self.keepalive_every;
        self.keepalive.as_mut().reset(next);
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended || this.shutdown.as_mut().poll(cx).is_ready() {
            this.ended = true;
            return Poll::Ready(None);
        }
        loop {
            if let Some(frame) = this.queued.pop_front() {
                this.sent_something();
                return Poll::Ready(Some(Ok(frame)));
            }
            match Pin::new(&mut this.live).poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => {
                    // Events already replayed from history come round again after a lag.
                    if event.id > this.last_id {
                        this.last_id = event.id;
                        this.sent_something();
                        return Poll::Ready(Some(Ok(event.frame().clone())));
                    }
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => {
                    let (backlog, covered_up_to) = this.handle.catch_up(this.last_id);
                    this.queue_backlog(backlog, covered_up_to);
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => break,
            }
        }
        if this.keepalive.as_mut().poll(cx).is_ready() {
            this.sent_something();
            return Poll::Ready(Some(Ok(Bytes::from_static(KEEP_ALIVE))));
        }
        Poll::Pending
    }
}
