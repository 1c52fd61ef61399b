//! The Server-Sent Events stream of one subscriber.
//!
//! It opens with a `hello` event (with the `retry:` hint), then sends the
//! backlog the client asked for (after `Last-Event-ID` or `?after=`), then live
//! events as the room publishes them, with a `heartbeat` event whenever the line
//! has been quiet for the keep-alive period. `hello` and `heartbeat` carry no id
//! and are not room events: they let a page tell a working stream from one a
//! proxy holds back (open, yet silent), which an `EventSource` never reports;
//! the heartbeat also keeps idle proxies from cutting the stream. A subscriber that falls behind the broadcast channel catches up from
//! the room's history, or is told to `reset` when history no longer reaches back.
//! The stream ends itself when the member leaves the room or is removed from it
//! (after the event that says so), and when the server shuts down, after a last
//! `reconnect` event; and it closes its room
//! membership when the client goes away (hyper drops the body, which drops the
//! [`StreamHandle`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use warp::Reply;
use warp::http::{HeaderValue, header};
use warp::reply::Response;

use crate::limits::StreamPlace;
use crate::rooms::{Backlog, Event, StreamHandle, Subscription};

/// SSE `event:` name telling the client to reload: events it asked for are gone.
pub const RESET_EVENT: &str = "reset";

/// The last frame of every stream when the server shuts down: reconnect soon
/// (to this server once it is back, or to the next instance), resuming from the
/// last id as always. A browser's `EventSource` does so by itself.
const RECONNECT_FRAME: &[u8] = b"retry: 1000\nevent: reconnect\ndata: {\"kind\":\"reconnect\"}\n\n";

/// How long a browser waits before reconnecting a dropped stream, in milliseconds.
const RETRY_MS: u64 = 2000;

/// Sent whenever a stream has been silent for the keep-alive period.
const HEARTBEAT_FRAME: &[u8] = b"event: heartbeat\ndata: {\"kind\":\"heartbeat\"}\n\n";

/// The first frame of every stream: the `retry:` hint, and a `hello` saying how
/// often, at most, the stream will be silent before a heartbeat.
fn hello_frame(heartbeat: Duration) -> Bytes {
    Bytes::from(format!(
        "retry: {RETRY_MS}\nevent: hello\ndata: {{\"kind\":\"hello\",\"heartbeat_ms\":{}}}\n\n",
        heartbeat.as_millis()
    ))
}

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
    raw.parse().map(Some).map_err(|_| {
        format!(
            "An event id is a whole number; \"{}\" is not.",
            crate::error::echo(raw)
        )
    })
}

/// The `200 text/event-stream` response for a new subscription; `place` is the
/// stream's place in the limits, given back when the stream ends.
pub fn response(
    subscription: Subscription,
    place: StreamPlace,
    keepalive: Duration,
    shutdown: CancellationToken,
) -> Response {
    let mut stream = EventStream::new(subscription, keepalive, shutdown);
    stream.place = Some(place);
    let mut response = warp::reply::stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    // No Cache-Control here: the routes mark every personal response, this
    // stream too, `no-store` in one place (`http::keep_private`).
    // nginx (and proxies that follow it) must pass each event on at once.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What a `reset` says, as JSON: the stream's `data:` line, a poll's event.
pub fn reset_json(last_id: u64) -> String {
    format!("{{\"kind\":\"{RESET_EVENT}\",\"last_id\":{last_id}}}")
}

fn reset_frame(last_id: u64) -> Bytes {
    Bytes::from(format!(
        "event: {RESET_EVENT}\ndata: {}\n\n",
        reset_json(last_id)
    ))
}

/// Most bytes of frames joined into one write.
const MAX_BATCH: usize = 64 * 1024;

/// Frames ready to send, joined so that a subscriber behind by several gets
/// them in one write (one syscall), as the floor does. A frame alone is sent
/// as it is, shared, without a copy.
#[derive(Default)]
struct Batch {
    first: Option<Bytes>,
    joined: BytesMut,
}

impl Batch {
    fn push(&mut self, frame: Bytes) {
        match &self.first {
            None => self.first = Some(frame),
            Some(first) => {
                if self.joined.is_empty() {
                    self.joined.extend_from_slice(first);
                }
                self.joined.extend_from_slice(&frame);
            }
        }
    }

    fn len(&self) -> usize {
        match self.joined.is_empty() {
            true => self.first.as_ref().map_or(0, Bytes::len),
            false => self.joined.len(),
        }
    }

    fn into_bytes(self) -> Option<Bytes> {
        match self.joined.is_empty() {
            true => self.first,
            false => Some(self.joined.freeze()),
        }
    }
}

struct EventStream {
    live: BroadcastStream<Arc<Event>>,
    handle: StreamHandle,
    /// Frames to send before taking more from the channel.
    queued: VecDeque<Bytes>,
    /// Id of the last event this subscriber was given or told to skip.
    last_id: u64,
    keepalive_every: Duration,
    /// Fires at the earliest moment a heartbeat may be due; moved on only
    /// when it fires, not at every send (a timer-wheel update per delivery).
    keepalive: Pin<Box<Sleep>>,
    /// When the stream last sent anything.
    last_sent: Instant,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The member left the room (from this tab or another).
    membership_ended: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Shutdown began and the reconnect frame was sent: the next poll ends.
    told_to_reconnect: bool,
    ended: bool,
    /// The stream's place in the per-address and per-session limits.
    place: Option<StreamPlace>,
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
            membership_ended,
            handle,
        } = subscription;
        let mut stream = Self {
            live: BroadcastStream::new(receiver),
            handle,
            queued: VecDeque::from([hello_frame(keepalive_every)]),
            last_id: resume_after,
            keepalive_every,
            keepalive: Box::pin(tokio::time::sleep(keepalive_every)),
            last_sent: Instant::now(),
            shutdown: Box::pin(shutdown.cancelled_owned()),
            membership_ended: Box::pin(membership_ended.cancelled_owned()),
            told_to_reconnect: false,
            ended: false,
            place: None,
        };
        stream.queue_backlog(backlog, resume_after);
        stream
    }

    fn queue_backlog(&mut self, backlog: Backlog, covered_up_to: u64) {
        match backlog {
            Backlog::Events(events) => {
                self.queued.extend(events.iter().map(|e| e.frame().clone()));
            }
            Backlog::Gap => {
                self.handle.reset_sent();
                self.queued.push_back(reset_frame(covered_up_to));
            }
        }
        self.last_id = covered_up_to;
    }

    fn sent_something(&mut self) {
        self.last_sent = Instant::now();
    }

    /// Whether the stream has been silent for the keep-alive period; if not,
    /// the timer is set for when it will have been.
    fn heartbeat_due(&mut self, cx: &mut Context<'_>) -> bool {
        while self.keepalive.as_mut().poll(cx).is_ready() {
            let due = self.last_sent + self.keepalive_every;
            if due <= Instant::now() {
                return true;
            }
            self.keepalive.as_mut().reset(due);
        }
        false
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended || this.told_to_reconnect {
            this.ended = true;
            return Poll::Ready(None);
        }
        // The membership ended (a leave, or a removal): what the room published
        // up to then is sent first, the news of it included, then the stream ends.
        let membership_over = this.membership_ended.as_mut().poll(cx).is_ready();
        if this.shutdown.as_mut().poll(cx).is_ready() {
            this.told_to_reconnect = true;
            return Poll::Ready(Some(Ok(Bytes::from_static(RECONNECT_FRAME))));
        }
        // Everything ready goes out as one write: the queued frames, then what
        // the channel holds, up to MAX_BATCH bytes.
        let mut batch = Batch::default();
        while batch.len() < MAX_BATCH {
            if let Some(frame) = this.queued.pop_front() {
                batch.push(frame);
                continue;
            }
            match Pin::new(&mut this.live).poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => {
                    // Events already replayed from history come round again after a lag.
                    if event.id == this.last_id + 1 {
                        this.last_id = event.id;
                        batch.push(event.frame().clone());
                    } else if event.id > this.last_id {
                        // Ids skipped: events this stream never got (a shared
                        // room's reader fell behind its history). History
                        // fills the gap, or the client is told to reset.
                        let (backlog, covered_up_to) = this.handle.catch_up(this.last_id);
                        this.queue_backlog(backlog, covered_up_to);
                    }
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => {
                    let (backlog, covered_up_to) = this.handle.catch_up(this.last_id);
                    this.queue_backlog(backlog, covered_up_to);
                }
                Poll::Ready(None) => {
                    // The room closed: what is batched goes first.
                    this.ended = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if let Some(frames) = batch.into_bytes() {
            this.sent_something();
            return Poll::Ready(Some(Ok(frames)));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        if membership_over {
            this.ended = true;
            return Poll::Ready(None);
        }
        if this.heartbeat_due(cx) {
            this.sent_something();
            let next = this.last_sent + this.keepalive_every;
            this.keepalive.as_mut().reset(next);
            return Poll::Ready(Some(Ok(Bytes::from_static(HEARTBEAT_FRAME))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;
    use crate::input::{MessageText, RoomCode};
    use crate::rooms::{Joiner, MemberToken, RoomSettings, Rooms};

    fn rooms(history: usize, channel_capacity: usize) -> Rooms {
        Rooms::in_memory(RoomSettings {
            grace: Duration::ZERO,
            unclaimed_timeout: Duration::from_secs(60),
            history,
            history_bytes: usize::MAX,
            max_history_bytes: usize::MAX,
            channel_capacity,
            max_rooms: 10,
            max_members: 10,
        })
    }

    async fn next_text(stream: &mut EventStream) -> String {
        let frame = stream.next().await.expect("a frame").expect("infallible");
        String::from_utf8(frame.to_vec()).expect("utf-8")
    }

    /// A room whose one member, alice, has this stream open.
    async fn alice_streaming(
        history: usize,
        channel_capacity: usize,
        shutdown: CancellationToken,
    ) -> (Rooms, RoomCode, MemberToken, EventStream) {
        let rooms = rooms(history, channel_capacity);
        let (code, alice) = rooms.create(Joiner::named("alice"), None).await.unwrap();
        let subscription = rooms.subscribe(&code, &alice, None, None).await.unwrap();
        let stream = EventStream::new(subscription, Duration::from_secs(60), shutdown);
        (rooms, code, alice, stream)
    }

    async fn say(rooms: &Rooms, code: &RoomCode, who: &MemberToken, n: usize) {
        for i in 0..n {
            let text = MessageText::parse(&format!("m{i}"), 100).unwrap();
            rooms.publish_message(code, who, text, None).await.unwrap();
        }
    }

    /// Frames from the stream until `n` have come, however they were joined
    /// into writes.
    async fn next_frames(stream: &mut EventStream, n: usize) -> Vec<String> {
        let mut frames: Vec<String> = Vec::new();
        while frames.len() < n {
            let text = next_text(stream).await;
            frames.extend(text.split_terminator("\n\n").map(str::to_owned));
        }
        frames
    }

    fn id_of(frame: &str) -> Option<u64> {
        frame.lines().next()?.strip_prefix("id: ")?.parse().ok()
    }

    /// A subscriber that falls behind the channel catches up from history,
    /// losing and repeating nothing.
    #[tokio::test]
    async fn a_lagging_subscriber_catches_up_from_history() {
        let (rooms, code, alice, mut stream) =
            alice_streaming(100, 4, CancellationToken::new()).await;

        say(&rooms, &code, &alice, 20).await;

        let frames = next_frames(&mut stream, 21).await;
        assert!(frames[0].starts_with("retry: 2000\nevent: hello\n"));
        let ids: Vec<u64> = frames[1..].iter().filter_map(|f| id_of(f)).collect();
        // Id 1 is alice's join, published before her stream opened.
        assert_eq!(ids, (2..=21).collect::<Vec<_>>());
    }

    /// What is ready goes out in one write, up to the batch size: a subscriber
    /// twenty events behind gets them in a few writes, not twenty.
    #[tokio::test]
    async fn frames_ready_together_go_out_together() {
        let (rooms, code, alice, mut stream) =
            alice_streaming(100, 64, CancellationToken::new()).await;

        say(&rooms, &code, &alice, 20).await;

        let first = next_text(&mut stream).await;
        assert!(first.starts_with("retry: 2000\nevent: hello\n"));
        assert_eq!(first.matches("event: message\n").count(), 20, "{first}");
    }

    /// When history no longer reaches back to where the subscriber fell behind,
    /// it is told to reset and then carries on with live events.
    #[tokio::test]
    async fn a_subscriber_beyond_history_gets_reset_then_live_events() {
        let (rooms, code, alice, mut stream) =
            alice_streaming(3, 4, CancellationToken::new()).await;
        say(&rooms, &code, &alice, 20).await;

        let frames = next_frames(&mut stream, 2).await;
        assert!(frames[0].starts_with("retry: 2000\nevent: hello\n"));
        assert!(frames[1].starts_with("event: reset\n"), "{frames:?}");
        say(&rooms, &code, &alice, 1).await;
        let live = next_frames(&mut stream, 1).await;
        assert_eq!(
            live.iter().filter_map(|f| id_of(f)).next_back(),
            Some(22),
            "{live:?}"
        );
    }

    /// Shutdown tells the client to reconnect, then ends the stream, even while it
    /// is waiting for events.
    #[tokio::test]
    async fn shutdown_ends_an_idle_stream() {
        let shutdown = CancellationToken::new();
        let (_rooms, _code, _alice, mut stream) = alice_streaming(10, 16, shutdown.clone()).await;
        assert!(
            next_text(&mut stream)
                .await
                .starts_with("retry: 2000\nevent: hello\n")
        );

        shutdown.cancel();

        assert!(next_text(&mut stream).await.contains("event: reconnect\n"));
        assert!(stream.next().await.is_none());
    }

    #[test]
    fn the_header_wins_over_the_query() {
        assert_eq!(resume_point(Some("5"), Some("2")), Ok(Some(5)));
        assert_eq!(resume_point(None, Some("2")), Ok(Some(2)));
        assert_eq!(resume_point(None, None), Ok(None));
        assert!(resume_point(Some("x"), None).is_err());
    }
}
