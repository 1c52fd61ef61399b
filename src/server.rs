//! The accept loop: connections in, HTTP/1.1 or HTTP/2 out, over plain TCP or TLS.
//!
//! One loop for both, so both get the same rules: every connection first takes a
//! place in the connection limits (or is answered `429`/`503` and closed), every
//! request is tagged with its [`Peer`] so the routes know who is asking, and
//! shutdown is bounded: stop accepting, let every event stream end itself (the
//! app's shutdown token), ask open connections to finish (HTTP/2 `GOAWAY`,
//! HTTP/1.1 no keep-alive) and drop whatever is still open after the drain
//! timeout. Slow clients are bounded too: the request timeout covers the first
//! bytes, each request's headers and idle keep-alive connections (HTTP/2 ones
//! too: no stream open for as long); the send timeout covers a client that stops
//! taking what we write (see `net.rs`) and an HTTP/2 stream whose window stays
//! shut (see `pacing.rs`). What responses hold unsent is bounded per connection,
//! per address and in all (see `backlog.rs`).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::MissedTickBehavior;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use warp::http::Request;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::backlog::Backlog;
use crate::client::Peer;
use crate::error;
use crate::head_refusals::{self, Worded};
use crate::limits::{AddressKey, ConnectionPlace, Limits, Refused};
use crate::metrics::Metrics;
use crate::net::{self, Protocol, WriteDeadline};
use crate::pacing::{Flow, Look, Spawner, Verdict};
use crate::proxies::TrustedProxies;
use crate::target;

/// Longest a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a refused connection is kept to read its request and answer it.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request head (request line and headers) read, HTTP/1.1 and HTTP/2 alike;
/// larger ones are answered `431` before any route runs. Ours need a few KiB (the
/// session cookie is at most 4 KiB); hyper's defaults (about 400 KiB for HTTP/1.1,
/// 16 MiB for HTTP/2) would let each connection pin that much memory. For HTTP/1.1
/// hyper applies the same bound to the frames it queues for a slow reader before
/// it stops taking more from the event stream, which is as much as we want to
/// hold for one, and still dozens of events per write.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How often an idle HTTP/2 connection is pinged, and how long the answer may
/// take: a vanished HTTP/2 client is noticed even while none of its streams has
/// anything to say.
const HTTP2_PING_EVERY: Duration = Duration::from_secs(20);
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Most streams open at once on one HTTP/2 connection (hyper's default is 200).
/// A browser puts all its tabs on one connection, and each tab holds an event
/// stream: a session may hold 32 of them (`--max-streams-per-session`), and
/// 16 more leave room for the page loads, assets and posts of those tabs. A
/// browser waits for a free stream past this (it reads our SETTINGS); what one
/// connection may pin is bounded by this times what one stream may hold.
pub const HTTP2_MAX_STREAMS: u32 = 48;

/// Most bytes h2 queues for one stream beyond what it has sent (hyper's default
/// is 400 KiB): four slices of a response (`pacing.rs`), enough to keep a fast
/// reader's window full, little to hold for a slow one.
const HTTP2_MAX_SEND_BUFFER: usize = 64 * 1024;

/// The receive window of each HTTP/2 stream (hyper's default is 1 MiB): what a
/// client may send us ahead on one stream. The largest form is a few dozen KiB.
const HTTP2_STREAM_WINDOW: u32 = 64 * 1024;

/// How many looks the watchdog of an HTTP/2 connection takes per timeout: a
/// stalled stream is reset, an idle connection closed, at most a quarter of
/// the timeout late.
const LOOKS_PER_TIMEOUT: u32 = 4;

/// How the loop serves: its limits, its timeouts, and whether to speak TLS.
#[derive(Clone)]
pub struct Serving {
    pub limits: Limits,
    /// Counts connections refused by a limit.
    pub metrics: Metrics,
    /// The proxies of `--trust-proxy`: their connections carry many clients,
    /// so they are not counted per address (streams still are, by forwarded
    /// address). Every other peer's are.
    pub trust_proxy: Option<TrustedProxies>,
    /// Whether connections count against the connection limits: not on the
    /// metrics listener, which must answer most when the server is full.
    pub count_connections: bool,
    pub tls: Option<TlsAcceptor>,
    /// `--request-timeout`: for the first bytes and each request's headers, and
    /// for an idle keep-alive connection.
    pub request_timeout: Duration,
    /// `--send-timeout`: longest a write may wait for the client to take data.
    pub send_timeout: Duration,
    /// `--drain-timeout`: longest shutdown waits for connections to finish.
    pub drain_timeout: Duration,
}

/// Serves `filter` on `listener` until `shutdown` completes, then drains.
///
/// `shutdown` must also end the event streams (the app cancels its shutdown
/// token in it): a connection with a stream open would otherwise never close.
pub async fn serve<F>(
    listener: TcpListener,
    serving: Serving,
    filter: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    let graceful = GracefulShutdown::new();
    // Cancelled when shutdown begins: handshakes under way give up.
    let stopping = CancellationToken::new();
    // Cancelled when the drain time is over: connections still open are dropped.
    let abandon = CancellationToken::new();
    let mut shutdown = pin!(shutdown);
    // One service for the whole server, boxed: each connection holds a
    // pointer to it, not a copy of every route, and a request's copy of it
    // (hyper asks for one per request) is one reference count.
    let routes = warp::service(filter.boxed());
    // What responses hold unsent, shared by the listener's connections.
    let backlog = Backlog::default();
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    if !is_connection_error(&error) {
                        // Most likely out of file descriptors: give connections
                        // time to close before trying again.
                        tracing::error!(%error, "cannot accept a connection");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let from_proxy = (serving.trust_proxy.as_ref()).is_some_and(|t| t.contains(addr.ip()));
        let counted = (!from_proxy).then(|| AddressKey::of(addr.ip()));
        let place = match serving.count_connections {
            true => serving.limits.connection(counted).map(Some),
            false => Ok(None),
        };
        if let Err(error) = net::configure(&tcp) {
            tracing::debug!(%addr, %error, "cannot set socket options");
        }
        let connection = Connection {
            serving: serving.clone(),
            peer: Peer {
                addr,
                tls: serving.tls.is_some(),
            },
            watcher: graceful.watcher(),
            stopping: stopping.clone(),
            abandon: abandon.clone(),
        };
        match place {
            Ok(place) => {
                let flow = Arc::new(Flow::new(backlog.connection(counted)));
                tokio::spawn(connection.serve(tcp, routes.clone(), place, flow));
            }
            Err(refused) => {
                tracing::debug!(%addr, ?refused.limit, "connection refused by a limit");
                serving.metrics.refused(refused.limit.name());
                tokio::spawn(connection.refuse(tcp, refused));
            }
        }
    }
    drop(listener);
    stopping.cancel();
    let open = graceful.count();
    tracing::debug!(open, "waiting for open connections to close");
    let drain = serving.drain_timeout;
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open {drain:?} after shutdown began; dropping them");
        abandon.cancel();
        // Dropped connections end on their next poll; give them that poll.
        tokio::task::yield_now().await;
    }
}

/// Whether an HTTP/1.1 connection may carry more than one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeepAlive {
    Yes,
    /// One answer, then close: for refused connections.
    No,
}

/// One accepted TCP connection, and what it needs to be served.
struct Connection {
    serving: Serving,
    peer: Peer,
    /// Held from the accept on, so that shutdown also waits for handshakes.
    watcher: Watcher,
    stopping: CancellationToken,
    abandon: CancellationToken,
}

impl Connection {
    /// Serves the routes on the connection, holding its place in the limits.
    /// Every response goes through the connection's [`Flow`]: counted open
    /// until it ends, its room reserved in the backlog (or refused), and its
    /// body paced and watched (see `pacing.rs`).
    async fn serve<R>(
        self,
        tcp: TcpStream,
        routes: R,
        place: Option<ConnectionPlace>,
        flow: Arc<Flow>,
    ) where
        R: Service<Request<Incoming>, Response = Response, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        R::Future: Send + 'static,
    {
        let peer = self.peer;
        let metrics = self.serving.metrics.clone();
        let answering = flow.clone();
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(peer);
            target::prepare(&mut request);
            // Here, not in the future below: hyper hands the stream to the
            // executor right after this call, and the executor takes what
            // `begin` leaves for it.
            let opened = answering.begin();
            let answer = routes.clone().call(request);
            let flow = answering.clone();
            let metrics = metrics.clone();
            async move {
                let Ok(mut response) = answer.await;
                let reserved = match flow.reserve(&response) {
                    Ok(reserved) => reserved,
                    Err(refused) => {
                        tracing::debug!(addr = %peer.addr, ?refused.limit, "response refused by a limit");
                        metrics.refused(refused.limit.name());
                        response = error::refused(refused);
                        None
                    }
                };
                Ok::<_, Infallible>(flow.pace(response, reserved, opened))
            }
        });
        self.run(tcp, service, KeepAlive::Yes, Some(flow)).await;
        drop(place);
    }

    /// Answers every request on the connection with the limit's refusal, then
    /// closes it (HTTP/1.1 without keep-alive). A refused connection holds no
    /// place in the limits, so all of it, handshake and sniff included, gets a
    /// short while: a flood past the limit cannot pile up open sockets.
    async fn refuse(self, tcp: TcpStream, refused: Refused) {
        let service = service_fn(move |_: Request<Incoming>| async move {
            Ok::<_, Infallible>(error::refused(refused))
        });
        let answer = self.run(tcp, service, KeepAlive::No, None);
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, answer).await;
    }

    async fn run<S>(
        self,
        tcp: TcpStream,
        service: S,
        keep_alive: KeepAlive,
        flow: Option<Arc<Flow>>,
    ) where
        S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let peer = self.peer.addr;
        let within = self.serving.request_timeout;
        let Some(acceptor) = self.serving.tls.clone() else {
            // Nothing is read until the client has shown its protocol, under the
            // request timeout: a connection that sends nothing holds nothing long.
            let protocol = tokio::select! {
                sniffed = net::sniff(&tcp, within) => match sniffed {
                    Ok(Some(protocol)) => protocol,
                    Ok(None) => return,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "no request in time");
                        return;
                    }
                },
                () = self.stopping.cancelled() => return,
            };
            self.http(tcp, protocol, service, keep_alive, flow).await;
            return;
        };
        let handshake = Box::pin(tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            acceptor.accept(tcp),
        ));
        let stream = tokio::select! {
            outcome = handshake => match outcome {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            },
            () = self.stopping.cancelled() => return,
        };
        let protocol = match stream.get_ref().1.alpn_protocol() {
            Some(b"h2") => Protocol::Http2,
            _ => Protocol::Http1,
        };
        self.http(stream, protocol, service, keep_alive, flow).await;
    }

    /// Serves HTTP on the connection until it ends. Each protocol's connection
    /// is a box of its own size: a task holds only the state of the protocol
    /// its client speaks, and an idle HTTP/1.1 event stream (most connections)
    /// carries nothing of HTTP/2's.
    fn http<I, S>(
        self,
        io: I,
        protocol: Protocol,
        service: S,
        keep_alive: KeepAlive,
        flow: Option<Arc<Flow>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let serving = &self.serving;
        let io = WriteDeadline::new(io, serving.send_timeout);
        match protocol {
            // HTTP/1.1 needs no watchdog: one response at a time, a stalled
            // write is cut by the write deadline, an idle connection by
            // hyper's header read timeout. Heads hyper refuses itself (too
            // large, malformed, too slow) are answered in words, as every
            // other refusal is (`head_refusals.rs`).
            Protocol::Http1 => {
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(serving.request_timeout)
                    .max_buf_size(MAX_HEAD_BYTES)
                    .keep_alive(keep_alive == KeepAlive::Yes)
                    .serve_connection(TokioIo::new(Worded::new(io)), service);
                let connection = head_refusals::Http1::new(connection);
                Box::pin(self.drive(connection, head_refusals::Http1::graceful_shutdown, None))
            }
            Protocol::Http2 => {
                if let Some(flow) = &flow {
                    flow.speaks_http2();
                }
                let connection = http2::Builder::new(Spawner(flow.clone()))
                    .timer(TokioTimer::new())
                    .keep_alive_interval(HTTP2_PING_EVERY)
                    .keep_alive_timeout(HTTP2_PING_TIMEOUT)
                    .max_header_list_size(MAX_HEAD_BYTES as u32)
                    .max_concurrent_streams(HTTP2_MAX_STREAMS)
                    .max_send_buf_size(HTTP2_MAX_SEND_BUFFER)
                    .initial_stream_window_size(HTTP2_STREAM_WINDOW)
                    .serve_connection(TokioIo::new(io), service);
                Box::pin(self.drive(connection, http2::Connection::graceful_shutdown, flow))
            }
        }
    }

    /// Drives a connection until it ends, shutdown asks it to end (gracefully,
    /// then for good once the drain time is over), or, with a `watched` flow
    /// (HTTP/2), the watchdog finds it idle (`GOAWAY`, then dropped if the
    /// client does not go within the request timeout) or stuck.
    /// `finish` asks the connection to finish what is under way and close.
    async fn drive<C>(self, connection: C, finish: fn(Pin<&mut C>), watched: Option<Arc<Flow>>)
    where
        C: Future<Output = Result<(), hyper::Error>>,
    {
        let peer: SocketAddr = self.peer.addr;
        let serving = &self.serving;
        let mut connection = pin!(connection);
        // The watchdog's timer, on HTTP/2 only.
        let mut looks = watched.as_ref().map(|_| {
            let every = (serving.send_timeout.min(serving.request_timeout) / LOOKS_PER_TIMEOUT)
                .max(Duration::from_millis(10));
            let mut looks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            looks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            looks
        });
        let mut look = Look::new();
        // Set once the connection was asked to close: by shutdown, or for idling.
        let mut closing = false;
        // After an idle connection's `GOAWAY`, when it is dropped if still open
        // (at the watchdog's first look after it).
        let mut gone_by = None;
        loop {
            tokio::select! {
                outcome = connection.as_mut() => {
                    // A client that goes away mid-stream ends its connection this
                    // way: for an event stream that is the normal end, so not
                    // worth more.
                    if let Err(error) = outcome {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    break;
                }
                () = self.stopping.cancelled(), if !closing => {
                    closing = true;
                    finish(connection.as_mut());
                }
                () = next_look(&mut looks) => {
                    if gone_by.is_some_and(|by| tokio::time::Instant::now() >= by) {
                        tracing::debug!(%peer, "idle HTTP/2 connection dropped after its GOAWAY");
                        break;
                    }
                    let verdict = watched.as_ref().map(|flow| {
                        flow.look(&mut look, serving.send_timeout, serving.request_timeout)
                    });
                    match verdict {
                        Some(Verdict::Idle) if !closing => {
                            tracing::debug!(%peer, "idle HTTP/2 connection closed");
                            closing = true;
                            gone_by = Some(tokio::time::Instant::now() + serving.request_timeout);
                            finish(connection.as_mut());
                        }
                        Some(Verdict::Stuck) => {
                            tracing::debug!(%peer, "a stream's client took nothing for the send timeout");
                            break;
                        }
                        _ => {}
                    }
                }
                () = self.abandon.cancelled() => {
                    tracing::debug!(%peer, "connection dropped at the end of shutdown");
                    break;
                }
            }
        }
        // Shutdown waits for every connection's watcher to be dropped.
        drop(self.watcher);
    }
}

/// The watchdog's next look, or never without a watchdog.
async fn next_look(looks: &mut Option<tokio::time::Interval>) {
    match looks {
        Some(looks) => {
            looks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Errors of one incoming connection that `accept` reports; the next one is fine.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
