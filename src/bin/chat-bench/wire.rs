//! The load tool's side of the wire: plain HTTP/1.1 over tokio sockets, from a
//! spread of loopback source addresses, written by hand so that the client
//! costs little next to the server it measures. (HTTP/2 over TLS is in
//! `https.rs`; scenarios send requests over either through [`Client`].)
//!
//! Messages carry their send time: the text of every benchmark message is
//! `b <microseconds since the run began>`, and a reader finds `"text":"b ` in
//! whatever arrives (the server's JSON and the floor's frames both carry it), so
//! no reader parses JSON or de-chunks a body.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// What every latency is measured from.
static START: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the run began.
pub fn now_micros() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Loopback source addresses, 127.0.0.2 to 127.0.0.254, handed out in turn:
/// one address has about 28,000 ports to connect from.
#[derive(Default)]
pub struct Sources {
    next: AtomicUsize,
}

impl Sources {
    pub fn next(&self) -> IpAddr {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % 253) as u8))
    }
}

pub async fn connect(to: SocketAddr, from: IpAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(to).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A response's status, its `Set-Cookie` and `Location` if any, and its body.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: u16,
    pub cookie: Option<String>,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// Sends a request and reads its whole answer: a keep-alive HTTP/1.1
/// connection ([`Conn`]), a connection per request ([`Fresh`]), or a stream of
/// a shared HTTP/2 connection (`https::H2`). Setup, probes and posters work
/// through it, so a scenario picks the transport and nothing else changes.
pub trait Client: Send {
    fn send(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> impl Future<Output = io::Result<Answer>> + Send;
}

/// One keep-alive HTTP/1.1 connection for requests with small answers.
pub struct Conn {
    stream: TcpStream,
    buffer: Vec<u8>,
    host: String,
}

impl Conn {
    pub async fn open(to: SocketAddr, from: IpAddr) -> std::io::Result<Self> {
        Ok(Self {
            stream: connect(to, from).await?,
            buffer: Vec::with_capacity(4096),
            host: to.to_string(),
        })
    }

    /// Sends a request and reads its whole answer (`Content-Length` bodies).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> std::io::Result<Answer> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(cookie) = cookie {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        match form {
            Some(body) => request.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            None => request.push_str("\r\n"),
        }
        self.stream.write_all(request.as_bytes()).await?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> std::io::Result<Answer> {
        let head_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        let mut answer = Answer {
            status: head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            ..Answer::default()
        };
        let mut length = 0;
        for line in head.lines().skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "set-cookie" => {
                    answer.cookie = value.split(';').next().map(str::to_owned);
                }
                "location" => answer.location = Some(value.to_owned()),
                _ => {}
            }
        }
        let body_start = head_end + 4;
        while self.buffer.len() < body_start + length {
            self.fill().await?;
        }
        answer.body = self.buffer[body_start..body_start + length].to_vec();
        self.buffer.drain(..body_start + length);
        Ok(answer)
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await? {
            0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                self.buffer.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }
}

impl Client for Conn {
    fn send(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> impl Future<Output = io::Result<Answer>> + Send {
        Conn::send(self, method, path, cookie, form)
    }
}

/// Each request on a new HTTP/1.1 connection, from the next source address.
#[derive(Clone)]
pub struct Fresh {
    pub to: SocketAddr,
    pub sources: Arc<Sources>,
}

impl Client for Fresh {
    fn send(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> impl Future<Output = io::Result<Answer>> + Send {
        once(self.to, self.sources.next(), method, path, cookie, form)
    }
}

/// One request on a connection of its own.
pub async fn once(
    to: SocketAddr,
    from: IpAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> std::io::Result<Answer> {
    Conn::open(to, from)
        .await?
        .send(method, path, cookie, form)
        .await
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What every reader adds to: deliveries, and (when sampling) latencies.
#[derive(Default)]
pub struct Tally {
    /// Streams whose answer's head has arrived: subscribed.
    pub opened: AtomicU64,
    pub deliveries: AtomicU64,
    /// Frames or answers that were not what a reader expected.
    pub errors: AtomicU64,
    /// Only messages sent at or after this ([`now_micros`]) have their delay
    /// recorded, so that a scenario can time a window alone: 0 (the default)
    /// records every one.
    pub timed_from: AtomicU64,
}

const MARK: &[u8] = b"\"text\":\"b ";

/// Finds every benchmark message in `buffer`, calling `seen` with each one's
/// send time; keeps what may be the start of one not yet complete.
pub fn take_messages(buffer: &mut Vec<u8>, mut seen: impl FnMut(u64)) {
    let mut from = 0;
    while let Some(at) = find(&buffer[from..], MARK) {
        let digits_start = from + at + MARK.len();
        let digits = buffer[digits_start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits_start + digits == buffer.len() {
            // The number may go on in the next read.
            buffer.drain(..from + at);
            return;
        }
        let sent = std::str::from_utf8(&buffer[digits_start..digits_start + digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        seen(sent);
        from = digits_start + digits;
    }
    // Keep only what may be the start of the next mark.
    let done = from.max(buffer.len().saturating_sub(MARK.len() - 1));
    buffer.drain(..done.min(buffer.len()));
}

/// An open event stream: counts what arrives and, if `latencies` is given,
/// records each message's delay in microseconds. A stream that ends before
/// `stop` (the connection closed, or the response's last chunk came, which
/// leaves a keep-alive connection open) counts as an error.
pub async fn read_stream(
    mut stream: TcpStream,
    tally: Arc<Tally>,
    mut latencies: Option<Vec<u32>>,
    stop: tokio_stop::Stop,
) -> Option<Vec<u32>> {
    let mut buffer = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut head_done = false;
    loop {
        let read = tokio::select! {
            read = stream.read(&mut chunk) => read,
            () = stop.wait() => break,
        };
        let n = match read {
            Ok(0) | Err(_) => {
                if !stop.is_set() {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                }
                break;
            }
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        // The server ended the response: the last chunk (`0`, no trailers),
        // alone or after the last frame's chunk.
        let ended = buffer.ends_with(b"\r\n0\r\n\r\n") || buffer == b"0\r\n\r\n";
        if !head_done {
            let Some(end) = find(&buffer, b"\r\n\r\n") else {
                continue;
            };
            if !buffer.starts_with(b"HTTP/1.1 200") {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            buffer.drain(..end + 4);
            head_done = true;
            tally.opened.fetch_add(1, Ordering::Relaxed);
        }
        count_messages(&mut buffer, &tally, latencies.as_mut());
        if ended {
            if !stop.is_set() {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
            break;
        }
    }
    latencies
}

/// Counts every benchmark message complete in `buffer` as a delivery and, with
/// `latencies`, records each one's delay in microseconds (if it was sent at or
/// after the tally's `timed_from`).
pub fn count_messages(buffer: &mut Vec<u8>, tally: &Tally, mut latencies: Option<&mut Vec<u32>>) {
    let (now, from) = (now_micros(), tally.timed_from.load(Ordering::Relaxed));
    let mut count = 0;
    take_messages(buffer, |sent| {
        count += 1;
        if let Some(latencies) = latencies.as_mut().filter(|_| sent >= from) {
            latencies.push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
        }
    });
    tally.deliveries.fetch_add(count, Ordering::Relaxed);
}

/// Opens an event stream at `path` (with `cookie`), returning the socket once
/// the request is sent; the answer is read by [`read_stream`].
pub async fn open_stream(
    to: SocketAddr,
    from: IpAddr,
    path: &str,
    cookie: Option<&str>,
) -> std::io::Result<TcpStream> {
    open_stream_after(to, from, path, cookie, None).await
}

/// [`open_stream`], resuming after the event `last_event_id` (sent as
/// `Last-Event-ID`, as a browser's `EventSource` does when it reconnects).
pub async fn open_stream_after(
    to: SocketAddr,
    from: IpAddr,
    path: &str,
    cookie: Option<&str>,
    last_event_id: Option<u64>,
) -> std::io::Result<TcpStream> {
    let mut stream = connect(to, from).await?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nAccept: text/event-stream\r\n");
    if let Some(cookie) = cookie {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if let Some(id) = last_event_id {
        request.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    Ok(stream)
}

/// A benchmark message's form body, sent now.
pub fn message_form(padding: usize) -> String {
    let mut body = format!("message=b+{}", now_micros());
    if padding > 0 {
        body.push('+');
        body.extend(std::iter::repeat_n('x', padding));
    }
    body
}

pub mod tokio_stop {
    //! A stop signal every task of a phase can wait on.
    use std::sync::Arc;
    use tokio::sync::watch;

    #[derive(Clone)]
    pub struct Stop(Arc<watch::Sender<bool>>, watch::Receiver<bool>);

    impl Default for Stop {
        fn default() -> Self {
            let (sender, receiver) = watch::channel(false);
            Self(Arc::new(sender), receiver)
        }
    }

    impl Stop {
        pub fn set(&self) {
            self.0.send_replace(true);
        }

        pub fn is_set(&self) -> bool {
            *self.1.borrow()
        }

        pub async fn wait(&self) {
            let mut receiver = self.1.clone();
            let _ = receiver.wait_for(|stopped| *stopped).await;
        }
    }
}

/// Waits for `d`; named so that the scenarios read as what they do.
pub async fn pause(d: Duration) {
    tokio::time::sleep(d).await;
}
