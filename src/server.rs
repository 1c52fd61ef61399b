//! The accept loop: connections in, HTTP/1.1 or HTTP/2 out, over plain TCP or TLS.
//!
//! One loop for both, so both get the same rules: every connection first takes a
//! place in the connection limits (or is answered `429`/`503` and closed), every
//! request is tagged with its [`Peer`] so the routes know who is asking, and
//! shutdown is bounded: stop accepting, let every event stream end itself (the
//! app's shutdown token), ask open connections to finish (HTTP/2 `GOAWAY`,
//! HTTP/1.1 no keep-alive) and drop whatever is still open after the drain
//! timeout. Slow clients are bounded too: the request timeout covers the first
//! bytes, each request's headers and idle keep-alive connections; the send
//! timeout covers a client that stops taking what we write (see `net.rs`).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use warp::http::Request;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::client::Peer;
use crate::error;
use crate::limits::{AddressKey, ConnectionPlace, Limits, Refused};
use crate::metrics::Metrics;
use crate::net::{self, Protocol, WriteDeadline};
use crate::proxies::TrustedProxies;

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
                tokio::spawn(connection.serve(tcp, routes.clone(), place));
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
    async fn serve<R>(self, tcp: TcpStream, routes: R, place: Option<ConnectionPlace>)
    where
        R: Service<Request<Incoming>, Response = Response, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        R::Future: Send + 'static,
    {
        let peer = self.peer;
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(peer);
            routes.clone().call(request)
        });
        self.run(tcp, service, KeepAlive::Yes).await;
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
        let answer = self.run(tcp, service, KeepAlive::No);
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, answer).await;
    }

    async fn run<S>(self, tcp: TcpStream, service: S, keep_alive: KeepAlive)
    where
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
            // Boxed, like the TLS path below: a task holds only the path its
            // connection takes, not room for the larger of the two.
            Box::pin(self.http(tcp, protocol, service, keep_alive)).await;
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
        Box::pin(self.http(stream, protocol, service, keep_alive)).await;
    }

    async fn http<I, S>(self, io: I, protocol: Protocol, service: S, keep_alive: KeepAlive)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let peer: SocketAddr = self.peer.addr;
        let serving = &self.serving;
        let builder = auto::Builder::new(TokioExecutor::new());
        let mut builder = match protocol {
            Protocol::Http1 => builder.http1_only(),
            Protocol::Http2 => builder.http2_only(),
        };
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(serving.request_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .keep_alive(keep_alive == KeepAlive::Yes);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(HTTP2_PING_EVERY)
            .keep_alive_timeout(HTTP2_PING_TIMEOUT)
            .max_header_list_size(MAX_HEAD_BYTES as u32);
        let io = WriteDeadline::new(io, serving.send_timeout);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let connection = self.watcher.watch(connection);
        tokio::select! {
            outcome = connection => {
                // A client that goes away mid-stream ends its connection this way:
                // for an event stream that is the normal end, so not worth more.
                if let Err(error) = outcome {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            }
            () = self.abandon.cancelled() => {
                tracing::debug!(%peer, "connection dropped at the end of shutdown");
            }
        }
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
