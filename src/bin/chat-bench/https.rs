//! HTTP/2 over TLS, as browsers reach the server: a self-signed certificate
//! made for the run, a rustls client (ring) that trusts only that certificate
//! and offers only ALPN `h2`, and the `h2` crate's client on top: requests with
//! small answers ([`H2`] is a [`Client`]) and event streams, many multiplexed
//! on one connection.
//!
//! A stream's reader gives back flow-control capacity for every DATA frame as
//! it reads it: without that the server may send each stream only its initial
//! window (64 KiB) and then waits for ever.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use hyper::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use hyper::http::request;
use hyper::{Request, StatusCode};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::parts::{Room, Streams};
use crate::wire::{self, Answer, Client, Sources, Tally, tokio_stop::Stop};

/// The connection-level receive window the client grants (the stream-level one
/// stays at the protocol's 64 KiB): room for thousands of frames in flight on
/// a connection between two `WINDOW_UPDATE`s, so that it is not what paces
/// delivery to a hundred streams.
const CONNECTION_WINDOW: u32 = 1 << 20;

/// Concurrent streams hyper's server allows on one HTTP/2 connection by
/// default: opening more would wait for one of the others to end, which an
/// event stream never does.
const SERVER_MAX_STREAMS: usize = 200;

/// A self-signed certificate for 127.0.0.1 and `localhost`, written as PEM
/// files to a directory of its own (removed when dropped) for the server's
/// `--tls-cert` and `--tls-key`.
pub struct Certificate {
    dir: PathBuf,
    der: CertificateDer<'static>,
}

impl Certificate {
    pub fn generate() -> Self {
        let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .expect("generate a self-signed certificate");
        let dir = std::env::temp_dir().join(format!(
            "chat-bench-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("create a directory for the certificate");
        let certificate = Self {
            dir,
            der: cert.der().clone(),
        };
        std::fs::write(certificate.cert_path(), cert.pem()).expect("write the certificate");
        std::fs::write(certificate.key_path(), signing_key.serialize_pem())
            .expect("write the private key");
        certificate
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// `--tls-cert PATH --tls-key PATH`.
    pub fn server_args(&self) -> Vec<String> {
        let path = |path: PathBuf| {
            path.into_os_string()
                .into_string()
                .expect("the temporary directory's path is UTF-8")
        };
        vec![
            "--tls-cert".to_owned(),
            path(self.cert_path()),
            "--tls-key".to_owned(),
            path(self.key_path()),
        ]
    }

    /// A TLS client that trusts this certificate only, and asks for HTTP/2.
    pub fn connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.der.clone())
            .expect("trust the benchmark's own certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("rustls's default protocol versions with ring")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One HTTP/2 connection over TLS; clones share it, and every request is a
/// stream of its own. Its driver task ends when every clone and every stream
/// is gone (the client then says `GOAWAY`), or when the server goes.
#[derive(Clone)]
pub struct H2 {
    send: SendRequest<Bytes>,
    /// `https://ADDR`: every request's `:scheme` and `:authority`.
    origin: Arc<str>,
}

impl H2 {
    pub async fn connect(to: SocketAddr, from: IpAddr, tls: &TlsConnector) -> io::Result<Self> {
        let tcp = wire::connect(to, from).await?;
        let stream = tls.connect(ServerName::from(to.ip()), tcp).await?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(io::Error::other(
                "the server did not choose HTTP/2 (ALPN h2)",
            ));
        }
        let (send, connection) = h2::client::Builder::new()
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake(stream)
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            // An error ends every stream on it, and their readers count that.
            let _ = connection.await;
        });
        Ok(Self {
            send,
            origin: format!("https://{to}").into(),
        })
    }

    /// A request's head, as `cookie`'s member if given.
    fn head(&self, method: &str, path: &str, cookie: Option<&str>) -> request::Builder {
        let head = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.origin));
        match cookie {
            Some(cookie) => head.header(COOKIE, cookie),
            None => head,
        }
    }

    /// Sends a request (with `form` as its body, if any) on a new stream, once
    /// the connection has room for one; its answer comes through the future.
    async fn start(
        &self,
        head: request::Builder,
        form: Option<&str>,
    ) -> io::Result<ResponseFuture> {
        let body = form.map(|form| Bytes::copy_from_slice(form.as_bytes()));
        let head = match &body {
            // warp wants the length of a form before it reads it.
            Some(body) => head
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(CONTENT_LENGTH, body.len()),
            None => head,
        };
        let head = head.body(()).map_err(io::Error::other)?;
        let mut send = self.send.clone().ready().await.map_err(io::Error::other)?;
        let (answer, mut stream) = send
            .send_request(head, body.is_none())
            .map_err(io::Error::other)?;
        if let Some(body) = body {
            stream.send_data(body, true).map_err(io::Error::other)?;
        }
        Ok(answer)
    }
}

impl Client for H2 {
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> io::Result<Answer> {
        let head = self.head(method, path, cookie);
        let answer = self.start(head, form).await?;
        let (head, mut body) = answer.await.map_err(io::Error::other)?.into_parts();
        let header = |name| head.headers.get(name).and_then(|v| v.to_str().ok());
        let mut answer = Answer {
            status: head.status.as_u16(),
            cookie: header(SET_COOKIE)
                .and_then(|v| v.split(';').next())
                .map(str::to_owned),
            location: header(LOCATION).map(str::to_owned),
            body: Vec::new(),
        };
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(io::Error::other)?;
            body.flow_control()
                .release_capacity(chunk.len())
                .map_err(io::Error::other)?;
            answer.body.extend_from_slice(&chunk);
        }
        Ok(answer)
    }
}

/// One event stream for each of `room`'s first `count` members, spread evenly
/// over `connections` HTTP/2 connections (each from its own source address),
/// once every stream has its `200`; `timed`: record every message's delay.
/// The streams keep their connections: closing them closes those.
pub async fn open_streams(
    to: SocketAddr,
    sources: &Sources,
    tls: &TlsConnector,
    room: &Room,
    count: usize,
    connections: usize,
    timed: bool,
) -> Streams {
    let per_connection = count.div_ceil(connections.max(1));
    assert!(
        per_connection <= SERVER_MAX_STREAMS,
        "{per_connection} streams on one connection: the server allows {SERVER_MAX_STREAMS}"
    );
    let mut streams = Streams::none();
    let path = room.stream_path();
    for first in (0..count).step_by(per_connection.max(1)) {
        let connection = H2::connect(to, sources.next(), tls)
            .await
            .expect("connect over HTTP/2");
        for member in first..count.min(first + per_connection) {
            let head = connection
                .head("GET", &path, room.cookie(member))
                .header(ACCEPT, "text/event-stream");
            let answer = connection.start(head, None).await.expect("open a stream");
            let (tally, stop) = (Arc::clone(&streams.tally), streams.stop.clone());
            streams.read(read_stream(answer, tally, timed.then(Vec::new), stop));
        }
    }
    streams.wait_open(count as u64).await;
    streams
}

/// An event stream opened by [`open_streams`]: counts the messages its DATA
/// frames carry (recording each one's delay, with `latencies`) until `stop`.
async fn read_stream(
    answer: ResponseFuture,
    tally: Arc<Tally>,
    mut latencies: Option<Vec<u32>>,
    stop: Stop,
) -> Option<Vec<u32>> {
    let answer = tokio::select! {
        answer = answer => answer,
        () = stop.wait() => return latencies,
    };
    let mut body = match answer {
        Ok(answer) if answer.status() == StatusCode::OK => answer.into_body(),
        _ => {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            return latencies;
        }
    };
    tally.opened.fetch_add(1, Ordering::Relaxed);
    let mut buffer = Vec::with_capacity(8192);
    loop {
        let data = tokio::select! {
            data = body.data() => data,
            () = stop.wait() => break,
        };
        let Some(Ok(chunk)) = data else {
            if !stop.is_set() {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
            break;
        };
        // The window back at once, so that the server may go on sending.
        if body.flow_control().release_capacity(chunk.len()).is_err() {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            break;
        }
        buffer.extend_from_slice(&chunk);
        wire::count_messages(&mut buffer, &tally, latencies.as_mut());
    }
    latencies
}
