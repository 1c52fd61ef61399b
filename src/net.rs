//! What the server's sockets need below HTTP: a listening socket with room for
//! a crowd arriving at once, and, for each accepted connection, socket options
//! that notice a vanished client, the first bytes read under a deadline (to
//! pick HTTP/1.1 or HTTP/2 without waiting for ever), and writes under a
//! deadline (a client that stops taking what we send is cut off instead of
//! holding buffers and its room).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// Idle time before the first TCP keepalive probe, the time between probes, and
/// how many may go unanswered: a peer that vanished without a FIN (pulled cable,
/// sleeping laptop, dead NAT entry) is noticed within a minute.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(20);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;

/// Longest data we sent may stay unacknowledged before the kernel gives up on
/// the connection (`TCP_USER_TIMEOUT`): without it Linux retries for about 15
/// minutes while writes keep succeeding into the send buffer. An event stream
/// writes at least every `--keepalive` (15 s), so a vanished reader's stream
/// ends within 15 + 40 s.
const UNACKNOWLEDGED_AT_MOST: Duration = Duration::from_secs(40);

/// Connections the kernel may hold for us before we accept them (capped by
/// `net.core.somaxconn`, 4096 on current kernels). Tokio's `bind` uses the
/// standard library's 128: when a server restarts, every open tab reconnects at
/// once, and past 128 the kernel drops the handshakes, which the clients
/// retry only after a second (seen in the benchmark opening 10,000 streams).
const LISTEN_BACKLOG: i32 = 4096;

/// A listening socket on `addr`, with [`LISTEN_BACKLOG`].
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // As tokio's own `bind` does: a restarted server can bind while the old
    // one's connections linger in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// The start of every HTTP/2 connection with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Sets keepalive probes, `TCP_USER_TIMEOUT` and `TCP_NODELAY` (an event is one
/// small write, and must not wait for the previous one's acknowledgement).
pub fn configure(tcp: &TcpStream) -> io::Result<()> {
    let socket = SockRef::from(tcp);
    socket.set_tcp_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    socket.set_tcp_keepalive(&keepalive)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket.set_tcp_user_timeout(Some(UNACKNOWLEDGED_AT_MOST))?;
    Ok(())
}

/// Which protocol a plain-TCP client speaks, read from its first bytes without
/// consuming them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (`curl --http2-prior-knowledge`).
    Http2,
}

/// Peeks at the first bytes until they show the protocol: they differ from the
/// HTTP/2 preface (HTTP/1.1) or match it whole (HTTP/2). `None` if the client
/// closed first; an error of kind `TimedOut` if it is too slow.
pub async fn sniff(tcp: &TcpStream, within: Duration) -> io::Result<Option<Protocol>> {
    let deadline = Instant::now() + within;
    let mut buffer = [0u8; H2_PREFACE.len()];
    loop {
        let seen = match tokio::time::timeout_at(deadline, tcp.peek(&mut buffer)).await {
            Ok(seen) => seen?,
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        };
        if seen == 0 {
            return Ok(None);
        }
        if buffer[..seen] != H2_PREFACE[..seen] {
            return Ok(Some(Protocol::Http1));
        }
        if seen == H2_PREFACE.len() {
            return Ok(Some(Protocol::Http2));
        }
        // A prefix of the preface: wait for more bytes (peek returns at once
        // while unread bytes are there, so sleep a little between looks).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A byte stream whose writes fail with `TimedOut` once one has waited `limit`
/// without any progress: the peer stopped reading (or vanished) and the kernel's
/// send buffer stayed full. hyper then closes the connection, which ends its
/// event streams like any client that goes away.
pub struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    /// Armed while a write is blocked; disarmed by any progress.
    blocked_since: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            blocked_since: None,
        }
    }

    /// Maps a write's outcome: progress disarms the deadline, waiting arms it
    /// and fails once it has passed.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match outcome {
            Poll::Ready(result) => {
                self.blocked_since = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = self.limit;
                let deadline = self
                    .blocked_since
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(deadline.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took nothing we sent for the send timeout",
                )))
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A crowd connecting at once, faster than the server accepts, is held by
    /// the kernel: every handshake completes (with the standard library's
    /// backlog of 128, those past it are dropped and retried a second later).
    #[tokio::test]
    async fn a_crowd_connecting_at_once_is_held_until_accepted() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connecting: Vec<_> = (0..600)
            .map(|_| tokio::spawn(TcpStream::connect(addr)))
            .collect();
        let within = std::time::Duration::from_millis(800);
        for connect in connecting {
            let connected = tokio::time::timeout(within, connect).await;
            assert!(
                matches!(connected, Ok(Ok(Ok(_)))),
                "connected without being accepted: {connected:?}"
            );
        }
        drop(listener);
    }

    /// A writer whose reader never reads fails after the limit, not before.
    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_takes_fails_after_the_limit() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut writer = WriteDeadline::new(ours, Duration::from_secs(30));
        writer.write_all(&[0; 64]).await.unwrap();
        let started = Instant::now();

        let error = writer.write_all(&[0; 1]).await.unwrap_err();

        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    /// A slow reader that keeps taking data is never cut off.
    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_kept() {
        let (ours, mut theirs) = tokio::io::duplex(8);
        let mut writer = WriteDeadline::new(ours, Duration::from_secs(30));
        let reader = tokio::spawn(async move {
            let mut buf = [0; 8];
            let mut total = 0;
            while total < 80 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                total += theirs.read(&mut buf).await.unwrap();
            }
        });

        writer.write_all(&[1; 80]).await.unwrap();

        reader.await.unwrap();
    }

    #[tokio::test]
    async fn the_first_bytes_tell_http1_from_http2() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (sent, expected) in [
            (&b"GET / HTTP/1.1\r\n"[..], Some(Protocol::Http1)),
            (H2_PREFACE, Some(Protocol::Http2)),
            (&b""[..], None),
        ] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            client.write_all(sent).await.unwrap();
            if sent.is_empty() {
                client.shutdown().await.unwrap();
            }

            let seen = sniff(&server, Duration::from_secs(5)).await.unwrap();

            assert_eq!(seen, expected, "{sent:?}");
        }
        let _silent = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let error = sniff(&server, Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
