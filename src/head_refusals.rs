//! Refusals of HTTP/1.1 request heads that hyper makes before any route runs,
//! in the same words as every other refusal.
//!
//! hyper answers a head it cannot read with an empty `400` (malformed), `414`
//! (target too long) or `431` (head too large), and closes a connection whose
//! head does not arrive within its header read timeout without a word, even
//! when part of the head came. Two small pieces fill that in:
//! - [`Worded`], around the connection's bytes, sees hyper's automatic refusal
//!   go out (always the same shape: the status line, `connection: close`,
//!   `content-length: 0`, `date`, nothing else; none of our own responses looks
//!   like it, each has at least a content type) and sends the same status with
//!   a line of text instead.
//! - [`Http1`], around hyper's connection, takes the connection back when the
//!   header read timeout ends it: if bytes of an unfinished head are waiting in
//!   hyper's read buffer, it answers `408 Request Timeout` with
//!   `Connection: close` before closing. A connection that sent nothing since
//!   its last response (an idle keep-alive connection, a client that never
//!   spoke) asked nothing, and is closed silently.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// What each refusal hyper makes says.
fn words_for(status: &str) -> Option<&'static str> {
    Some(match status {
        "400" => "The request could not be read: it is not well-formed HTTP/1.1.",
        "408" => "The request's headers did not arrive in time.",
        "414" => "The address (URL) is too long.",
        "431" => "The request's headers are too large (a cookie or another header is too long).",
        _ => return None,
    })
}

/// A whole refusal: `status_line`, the headers of every refusal, and its line
/// of text; the connection closes after it.
fn refusal(status_line: &str, text: &str, date: &str) -> Vec<u8> {
    format!(
        "{status_line}\r\ncontent-type: text/plain; charset=utf-8\r\ncache-control: no-store\r\n\
         x-content-type-options: nosniff\r\nconnection: close\r\ncontent-length: {}\r\n\
         date: {date}\r\n\r\n{text}\n",
        text.len() + 1
    )
    .into_bytes()
}

/// The `408` for a head that stopped coming.
fn slow_head() -> Vec<u8> {
    let text = words_for("408").unwrap_or_default();
    refusal(
        "HTTP/1.1 408 Request Timeout",
        text,
        &http_date(OffsetDateTime::now_utc()),
    )
}

/// `time` in the form of HTTP's `Date` (RFC 9110 §5.6.7):
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(time: OffsetDateTime) -> String {
    let weekday = time.weekday().to_string();
    let month = time.month().to_string();
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        weekday.get(..3).unwrap_or(&weekday),
        time.day(),
        month.get(..3).unwrap_or(&month),
        time.year(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// hyper's automatic refusal, if `written` is exactly one, reworded.
fn reword(written: &[u8]) -> Option<Vec<u8>> {
    // Cheap first: every write of every response passes here.
    if !written.starts_with(b"HTTP/1.1 4") || written.len() > 256 {
        return None;
    }
    let head = std::str::from_utf8(written)
        .ok()?
        .strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let text = words_for(status_line.get(9..12)?)?;
    if lines.next()? != "connection: close" || lines.next()? != "content-length: 0" {
        return None;
    }
    let date = lines.next()?.strip_prefix("date: ")?;
    match lines.next() {
        Some(_) => None,
        None => Some(refusal(status_line, text, date)),
    }
}

/// The bytes of an HTTP/1.1 connection, with hyper's automatic refusals
/// reworded (see the module's notes).
pub struct Worded<T> {
    inner: T,
    /// A reworded refusal being written: hyper was told the whole of its own
    /// was, so this goes out before anything else. Boxed, as it is rare: every
    /// open connection carries the field.
    pending: Option<Box<Pending>>,
}

/// A reworded refusal, and how much of it is written.
struct Pending {
    bytes: Vec<u8>,
    sent: usize,
}

impl<T> Worded<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

impl<T: AsyncWrite + Unpin> Worded<T> {
    /// Writes what is left of a reworded refusal.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(pending) = &mut self.pending else {
            return Poll::Ready(Ok(()));
        };
        while pending.sent < pending.bytes.len() {
            let written =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &pending.bytes[pending.sent..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            pending.sent += written;
        }
        self.pending = None;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Worded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Worded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        let Some(reworded) = reword(buf) else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        this.pending = Some(Box::new(Pending {
            bytes: reworded,
            sent: 0,
        }));
        // As much as the socket takes now; the rest at hyper's flush.
        if let Poll::Ready(Err(error)) = this.poll_pending(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's refusal is a head alone: one slice with bytes in it.
        let mut filled = bufs.iter().filter(|buf| !buf.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            return self.poll_write(cx, only);
        }
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// hyper's HTTP/1.1 connection on [`Worded`] bytes, answering `408` where its
/// header read timeout would close without a word (see the module's notes).
pub struct Http1<T, S: HttpService<Incoming>> {
    /// hyper's connection, until it ends.
    connection: Option<http1::Connection<TokioIo<Worded<T>>, S>>,
    /// The `408` being written, then hyper's timeout error to end with.
    answering: Option<Answer>,
}

/// Writing a `408`, then closing.
type Answer = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

impl<T, S: HttpService<Incoming>> Http1<T, S> {
    pub fn new(connection: http1::Connection<TokioIo<Worded<T>>, S>) -> Self {
        Self {
            connection: Some(connection),
            answering: None,
        }
    }
}

impl<T, S, B> Http1<T, S>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    http1::Connection<TokioIo<Worded<T>>, S>: Unpin,
{
    /// Lets the request under way finish, then closes (no keep-alive).
    pub fn graceful_shutdown(self: Pin<&mut Self>) {
        if let Some(connection) = &mut self.get_mut().connection {
            Pin::new(connection).graceful_shutdown();
        }
    }
}

impl<T, S, B> Future for Http1<T, S>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    http1::Connection<TokioIo<Worded<T>>, S>: Unpin,
{
    type Output = Result<(), hyper::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(connection) = &mut this.connection {
            let outcome = ready!(Pin::new(connection).poll(cx));
            let Some(connection) = this.connection.take() else {
                return Poll::Ready(outcome);
            };
            let error = match outcome {
                Err(error) if error.is_timeout() => error,
                outcome => return Poll::Ready(outcome),
            };
            // The head hyper waited for: whatever came of it is still unread.
            let parts = connection.into_parts();
            if parts.read_buf.is_empty() {
                return Poll::Ready(Err(error));
            }
            let mut io = parts.io.into_inner();
            let answer = async move {
                // The client may be gone; nothing more to do then.
                if io.write_all(&slow_head()).await.is_ok() {
                    let _ = io.shutdown().await;
                }
                Err(error)
            };
            this.answering = Some(Box::pin(answer));
        }
        match &mut this.answering {
            Some(answer) => {
                let outcome = ready!(answer.as_mut().poll(cx));
                this.answering = None;
                Poll::Ready(outcome)
            }
            None => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Sun, 06 Dec 2026 19:22:14 GMT";

    fn hypers(status_line: &str) -> Vec<u8> {
        format!("{status_line}\r\nconnection: close\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n")
            .into_bytes()
    }

    #[test]
    fn hypers_empty_refusals_get_their_line_of_text() {
        for (status_line, says) in [
            ("HTTP/1.1 400 Bad Request", "not well-formed"),
            ("HTTP/1.1 414 URI Too Long", "too long"),
            ("HTTP/1.1 431 Request Header Fields Too Large", "too large"),
        ] {
            let reworded = reword(&hypers(status_line)).expect(status_line);
            let text = String::from_utf8(reworded).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(status_line), "{head}");
            assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
            assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
            assert!(head.contains(&format!("\r\ndate: {DATE}")), "{head}");
            assert!(body.contains(says) && body.ends_with('\n'), "{body:?}");
        }
    }

    /// Anything else passes as written: our own responses, other statuses, and
    /// any write that is not one whole automatic refusal.
    #[test]
    fn every_other_write_passes_untouched() {
        let with_type = format!(
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: text/plain\r\n\
             content-length: 0\r\ndate: {DATE}\r\n\r\n"
        );
        let whole = hypers("HTTP/1.1 400 Bad Request");
        for written in [
            with_type.as_bytes(),
            &hypers("HTTP/1.1 404 Not Found"),
            &whole[..whole.len() - 1],
            b"id: 4\nevent: message\ndata: {}\n\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        ] {
            assert_eq!(
                reword(written),
                None,
                "{:?}",
                String::from_utf8_lossy(written)
            );
        }
    }

    #[test]
    fn dates_are_written_as_http_wants() {
        let time = OffsetDateTime::from_unix_timestamp(784_111_777).unwrap();
        assert_eq!(http_date(time), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
