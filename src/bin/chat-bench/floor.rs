//! The floor: the least a server can do for the same work, to measure ours
//! against. No HTTP framework, no JSON, no sessions, no rooms: a `GET` gets an
//! event-stream head and then every frame published, a `POST` (keep-alive)
//! publishes the message it carries as one pre-formatted SSE frame, shared by
//! every subscriber through one broadcast channel. A subscriber sends every
//! frame already queued for it in one write: one syscall, however far behind.
//!
//! It runs as its own process (`chat-bench floor`), so that its CPU time and
//! memory are read from `/proc` exactly as the server's are.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

use crate::wire::find;

const STREAM_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
const POSTED: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

/// Serves on `listener` until killed; says its address on stdout first.
pub async fn serve(listener: TcpListener, capacity: usize) {
    let (sender, _) = broadcast::channel::<Bytes>(capacity);
    let next_id = Arc::new(AtomicU64::new(1));
    if let Ok(addr) = listener.local_addr() {
        println!("{addr}");
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let sender = sender.clone();
        let next_id = Arc::clone(&next_id);
        tokio::spawn(async move {
            let _ = connection(stream, sender, next_id).await;
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    sender: broadcast::Sender<Bytes>,
    next_id: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(at) = find(&buffer, b"\r\n\r\n") {
                break at;
            }
            match stream.read(&mut chunk).await? {
                0 => return Ok(()),
                n => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        if buffer.starts_with(b"GET") {
            // A task of its own, so that the buffers of reading requests are
            // gone: an idle subscriber holds its socket, its receiver and
            // nothing else.
            tokio::spawn(subscriber(stream, sender.subscribe()));
            return Ok(());
        }
        let length = content_length(&buffer[..head_end]);
        let body_start = head_end + 4;
        while buffer.len() < body_start + length {
            match stream.read(&mut chunk).await? {
                0 => return Ok(()),
                n => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body = &buffer[body_start..body_start + length];
        let text = body
            .strip_prefix(b"message=")
            .unwrap_or(body)
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect::<Vec<u8>>();
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = format!("id: {id}\ndata: {{\"text\":\"").into_bytes();
        frame.extend_from_slice(&text);
        frame.extend_from_slice(b"\"}\n\n");
        let _ = sender.send(Bytes::from(frame));
        buffer.drain(..body_start + length);
        stream.write_all(POSTED).await?;
    }
}

async fn subscriber(
    mut stream: TcpStream,
    mut frames: broadcast::Receiver<Bytes>,
) -> std::io::Result<()> {
    stream.write_all(STREAM_HEAD).await?;
    let mut out = Vec::new();
    loop {
        out.clear();
        match frames.recv().await {
            Ok(frame) => out.extend_from_slice(&frame),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
        // Everything else already queued goes in the same write.
        loop {
            match frames.try_recv() {
                Ok(frame) => out.extend_from_slice(&frame),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        stream.write_all(&out).await?;
    }
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}
