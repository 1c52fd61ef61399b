//! Responses handed to hyper a slice at a time, and each HTTP/2 stream watched,
//! so that a client that stops reading loses its streams instead of pinning
//! their responses in memory, and an HTTP/2 connection with nothing open is
//! closed like an idle HTTP/1.1 keep-alive connection.
//!
//! How hyper 1 serves an HTTP/2 response body (`proto/h2/mod.rs`,
//! `PipeToSendStream`): it polls the body for a chunk, keeps that chunk until
//! the stream has send capacity (the client's window is open), hands the whole
//! chunk to h2's send queue, and only then polls the body again. A body is
//! never polled while its chunk waits, so it cannot time itself out; and a
//! whole page in one chunk (a `Full` body) sits in memory, whole, for as long
//! as the client keeps its window shut. So:
//!
//! - [`Flow::pace`] serves every body in slices of at most [`SLICE`] bytes of
//!   the same buffer (no copies), and ends it only when asked after the last
//!   slice, that is once the last slice is inside the client's window: a body
//!   is alive for as long as any of it waits for the client.
//! - Each slice handed out and not yet followed by the next poll marks the
//!   stream as waiting on its client ([`Progress`], one relaxed atomic per
//!   slice: event streams stay cheap). The connection's watchdog
//!   ([`Flow::look`], run by the connection task a few times per timeout)
//!   resets a stream that waited `--send-timeout` without taking a slice.
//! - The reset: hyper runs each HTTP/2 stream as a task of the connection's
//!   executor ([`Spawner`]), so the watchdog aborts that task. Dropping it
//!   drops hyper's handles of the h2 stream, and h2 then sends `RST_STREAM`
//!   (`CANCEL`) and drops what was queued for it; the rest of the connection
//!   goes on. hyper's service is called for a request right before it hands
//!   the stream's task to the executor, in the same poll, so the stream is
//!   matched with its task through [`Flow::begin`] leaving its [`Progress`]
//!   for the executor to take.
//! - A page's buffer is owned by its reservation in `backlog.rs`: the bytes
//!   count as unsent until the last slice of them is dropped, wherever it is
//!   (hyper's buffer, h2's queue).
//!
//! HTTP/1.1 event streams are left as they are (the fan-out's hot path): one
//! response at a time per connection, and a reader that stops is cut by the
//! write deadline (`net.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use hyper::body::Body;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use warp::Reply;
use warp::http::{HeaderValue, header};
use warp::reply::Response;

use crate::backlog::{ConnectionBacklog, Reserved};
use crate::limits::Refused;

/// Largest slice of a response handed to hyper at once: one HTTP/2 frame at
/// the default frame size, so what waits for a shut window is at most this
/// much more than the window let through.
pub const SLICE: usize = 16 * 1024;

/// Above this many watched streams, those that ended are forgotten at once
/// rather than at the next look: a client making short requests quickly
/// cannot grow the list between looks.
const PRUNE_ABOVE: usize = 128;

/// What one connection's watchdog finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Streams open, or a request not long ago.
    Busy,
    /// No stream open for the request timeout: close gracefully (`GOAWAY`).
    Idle,
    /// A stream waited for the send timeout and cannot be reset on its own:
    /// close the connection.
    Stuck,
}

/// One connection's responses: what is open, what waits on the client.
pub struct Flow {
    backlog: ConnectionBacklog,
    /// Whether the connection speaks HTTP/2 (set once the protocol is known).
    http2: AtomicBool,
    /// Requests received whose response has not ended (or been dropped).
    open: AtomicUsize,
    /// Requests received so far, to see one that began and ended between looks.
    begun: AtomicU64,
    /// The HTTP/2 streams with a response under way, for the watchdog.
    watched: Mutex<Vec<Watched>>,
    /// The stream whose service was just called, for the executor to take
    /// when hyper hands it the stream's task.
    handoff: Mutex<Option<Arc<Progress>>>,
}

/// What the watchdog remembers of one stream.
struct Watched {
    progress: Weak<Progress>,
    /// Its step count when it was first seen waiting on its client.
    seen: u64,
    /// When it was first seen waiting at that step, if it is waiting.
    since: Option<Instant>,
}

/// How far one HTTP/2 stream's response got, and how to reset it.
#[derive(Default)]
pub struct Progress {
    /// Steps of the body: odd while a slice handed to hyper waits for the
    /// client's window (the body was not asked for more since), even
    /// otherwise. Only the body's task writes it; the watchdog reads it.
    steps: AtomicU64,
    /// Aborts the stream's task (h2 then resets the stream).
    abort: OnceLock<AbortHandle>,
}

impl Progress {
    /// A slice was handed to hyper.
    fn handed(&self) {
        self.steps.fetch_add(1, Ordering::Relaxed);
    }

    /// hyper asks for more: whatever was handed before is inside the window.
    fn asked(&self) {
        let steps = self.steps.load(Ordering::Relaxed);
        if steps % 2 == 1 {
            self.steps.store(steps + 1, Ordering::Relaxed);
        }
    }
}

/// The watchdog's memory of the connection as a whole.
pub struct Look {
    begun: u64,
    /// Since when nothing has been open and no request has begun.
    quiet_since: Instant,
}

impl Look {
    pub fn new() -> Self {
        Self {
            begun: 0,
            quiet_since: Instant::now(),
        }
    }
}

impl Default for Look {
    fn default() -> Self {
        Self::new()
    }
}

/// A request being answered: counted open until its response ends.
pub struct Opened {
    flow: Arc<Flow>,
    /// The stream's progress, on HTTP/2.
    progress: Option<Arc<Progress>>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.flow.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Flow {
    pub fn new(backlog: ConnectionBacklog) -> Self {
        Self {
            backlog,
            http2: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            begun: AtomicU64::new(0),
            watched: Mutex::new(Vec::new()),
            handoff: Mutex::new(None),
        }
    }

    /// Marks the connection as HTTP/2: its responses are watched.
    pub fn speaks_http2(&self) {
        self.http2.store(true, Ordering::Relaxed);
    }

    /// A request came in (called from the service, as hyper calls it).
    pub fn begin(self: &Arc<Self>) -> Opened {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.begun.fetch_add(1, Ordering::Relaxed);
        let progress = self.http2.load(Ordering::Relaxed).then(|| {
            let progress = Arc::new(Progress::default());
            let mut watched = lock(&self.watched);
            if watched.len() >= PRUNE_ABOVE {
                watched.retain(|stream| stream.progress.strong_count() > 0);
            }
            watched.push(Watched {
                progress: Arc::downgrade(&progress),
                seen: 0,
                since: None,
            });
            drop(watched);
            *lock(&self.handoff) = Some(progress.clone());
            progress
        });
        Opened {
            flow: self.clone(),
            progress,
        }
    }

    /// Reserves room in the backlog for a response of known length.
    pub fn reserve(&self, response: &Response) -> Result<Option<Reserved>, Refused> {
        match response.body().size_hint().exact() {
            Some(bytes) if bytes > 0 => {
                let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
                self.backlog.reserve(bytes).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The response, its body served in slices and watched (see the module).
    pub fn pace(&self, response: Response, reserved: Option<Reserved>, opened: Opened) -> Response {
        if reserved.is_none() && opened.progress.is_none() {
            // HTTP/1.1 and no length: an event stream, left on its hot path.
            return response;
        }
        let (mut head, body) = response.into_parts();
        if let Some(length) = body.size_hint().exact() {
            // The sliced body's length is not known to hyper: say it here.
            head.headers
                .entry(header::CONTENT_LENGTH)
                .or_insert_with(|| HeaderValue::from(length));
        }
        let paced = Paced {
            body,
            held: Bytes::new(),
            reserved,
            opened,
        };
        let body = warp::reply::stream(paced).into_response().into_body();
        Response::from_parts(head, body)
    }

    /// Looks at the connection's streams: resets those that waited on their
    /// client for `send_timeout`, and says whether the connection is idle.
    pub fn look(
        &self,
        look: &mut Look,
        send_timeout: Duration,
        request_timeout: Duration,
    ) -> Verdict {
        let now = Instant::now();
        let mut stuck = false;
        lock(&self.watched).retain_mut(|stream| {
            let Some(progress) = stream.progress.upgrade() else {
                return false;
            };
            let steps = progress.steps.load(Ordering::Relaxed);
            match stream.since {
                _ if steps % 2 == 0 => stream.since = None,
                Some(since) if stream.seen == steps => {
                    if now.duration_since(since) >= send_timeout {
                        match progress.abort.get() {
                            Some(abort) => abort.abort(),
                            None => stuck = true,
                        }
                        return false;
                    }
                }
                _ => {
                    stream.seen = steps;
                    stream.since = Some(now);
                }
            }
            true
        });
        if stuck {
            return Verdict::Stuck;
        }
        let begun = self.begun.load(Ordering::Relaxed);
        if self.open.load(Ordering::Relaxed) > 0 || begun != look.begun {
            look.begun = begun;
            look.quiet_since = now;
            return Verdict::Busy;
        }
        match now.duration_since(look.quiet_since) >= request_timeout {
            true => Verdict::Idle,
            false => Verdict::Busy,
        }
    }
}

/// The lists are only touched for a moment, never across an `.await`.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs hyper's per-stream tasks (HTTP/2) on Tokio, and gives the watchdog a
/// way to abort each: the executor of a connection's hyper builder.
#[derive(Clone)]
pub struct Spawner(pub Option<Arc<Flow>>);

impl<F> hyper::rt::Executor<F> for Spawner
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        let task = tokio::spawn(future);
        let progress = self.0.as_ref().and_then(|flow| lock(&flow.handoff).take());
        if let Some(progress) = progress {
            let _ = progress.abort.set(task.abort_handle());
        }
    }
}

/// A response body served in slices of at most [`SLICE`] bytes.
struct Paced<B> {
    body: B,
    /// What is left of the body's current chunk.
    held: Bytes,
    /// The body's room in the backlog, until its buffer is taken over.
    reserved: Option<Reserved>,
    opened: Opened,
}

/// A page's buffer together with its room in the backlog: both are let go
/// when the last slice of the buffer is dropped.
struct Owned {
    bytes: Bytes,
    _reserved: Reserved,
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl<B> Stream for Paced<B>
where
    B: Body<Data = Bytes, Error = warp::Error> + Unpin,
{
    type Item = Result<Bytes, warp::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let me = &mut *self;
        let progress = me.opened.progress.as_deref();
        if let Some(progress) = progress {
            progress.asked();
        }
        loop {
            if !me.held.is_empty() {
                let slice = me.held.split_to(me.held.len().min(SLICE));
                if let Some(progress) = progress {
                    progress.handed();
                }
                return Poll::Ready(Some(Ok(slice)));
            }
            match ready!(Pin::new(&mut me.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(bytes) = frame.into_data() else {
                        continue; // trailers: none of ours send any
                    };
                    me.held = match me.reserved.take() {
                        Some(reserved) => Bytes::from_owner(Owned {
                            bytes,
                            _reserved: reserved,
                        }),
                        None => bytes,
                    };
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => return Poll::Ready(None),
            }
        }
    }
}
