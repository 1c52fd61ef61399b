//! The accept loop: connections in, HTTP/1.1 or HTTP/2 out, over plain TCP or TLS.
//!
//! One loop for both, so both get the same rules: every connection first takes a
//! place in the connection limits (or is answered `429`/`503` and closed), every
//! request is tagged with its [`Peer`] so the routes know who is asking, and
//! shutdown is bounded: stop accepting, let every event stream end itself (the
//! app's shutdown token), ask open connections to finish (HTTP/2 `GOAWAY`,
//! HTTP/1.1 no keep-alive) and drop whatever is still open after
//! [`DRAIN_TIMEOUT`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
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

/// Longest shutdown waits for open connections to close once every event stream
/// was told to end; connections still open then are dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How the loop serves: its limits, and whether to speak TLS.
pub struct Serving {
    pub limits: Limits,
    /// With `--trust-proxy` every connection comes from the proxy, so connections
    /// are not counted per address (streams still are, by forwarded address).
    pub trust_proxy: bool,
    pub tls: Option<TlsAcceptor>,
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
        let counted = (!serving.trust_proxy).then(|| AddressKey::of(addr.ip()));
        let place = serving.limits.connection(counted);
        let connection = Connection {
            tls: serving.tls.clone(),
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
                tokio::spawn(connection.serve(tcp, filter.clone(), place));
            }
            Err(refused) => {
                tracing::debug!(%addr, ?refused.limit, "connection refused by a limit");
                tokio::spawn(connection.refuse(tcp, refused));
            }
        }
    }
    drop(listener);
    stopping.cancel();
    let open = graceful.count();
    tracing::debug!(open, "waiting for open connections to close");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open {DRAIN_TIMEOUT:?} after shutdown began; dropping them"
        );
        abandon.cancel();
    }
}

/// One accepted TCP connection, and what it needs to be served.
struct Connection {
    tls: Option<TlsAcceptor>,
    peer: Peer,
    /// Held from the accept on, so that shutdown also waits for handshakes.
    watcher: Watcher,
    stopping: CancellationToken,
    abandon: CancellationToken,
}

impl Connection {
    /// Serves the routes on the connection, holding its place in the limits.
    async fn serve<F>(self, tcp: TcpStream, filter: F, place: ConnectionPlace)
    where
        F: Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
    {
        let peer = self.peer;
        let routes = warp::service(filter);
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(peer);
            routes.clone().call(request)
        });
        self.run(tcp, service, None).await;
        drop(place);
    }

    /// Answers every request on the connection with the limit's refusal, then
    /// closes it (HTTP/1.1 without keep-alive; any connection after a short while).
    async fn refuse(self, tcp: TcpStream, refused: Refused) {
        let service = service_fn(move |_: Request<Incoming>| async move {
            Ok::<_, Infallible>(error::refused(refused))
        });
        self.run(tcp, service, Some(REFUSAL_TIMEOUT)).await;
    }

    async fn run<S>(self, tcp: TcpStream, service: S, limit: Option<Duration>)
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let peer = self.peer.addr;
        match self.tls.clone() {
            None => self.http(tcp, service, limit).await,
            Some(acceptor) => {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
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
                self.http(stream, service, limit).await;
            }
        }
    }

    async fn http<I, S>(self, io: I, service: S, limit: Option<Duration>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let peer: SocketAddr = self.peer.addr;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().max_buf_size(MAX_HEAD_BYTES);
        builder.http2().max_header_list_size(MAX_HEAD_BYTES as u32);
        if limit.is_some() {
            builder.http1().keep_alive(false);
        }
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let connection = self.watcher.watch(connection);
        let limit = tokio::time::sleep(limit.unwrap_or(Duration::MAX));
        tokio::select! {
            outcome = connection => {
                // A client that goes away mid-stream ends its connection this way:
                // for an event stream that is the normal end, so not worth more.
                if let Err(error) = outcome {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            }
            () = limit => {}
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
