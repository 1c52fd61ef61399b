//! A TCP relay in front of the server whose connections a test can cut, the way
//! a network blip, a dropped Wi-Fi or a proxy restart would: all at once
//! ([`Relay::cut`]), or one by one, abruptly (a reset) or cleanly (a FIN), with
//! [`Relay::cut_one`].

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Longest a cleanly cut connection waits for both ends to close their side.
const CLEAN_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// How [`Relay::cut_one`] ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Both ends get a reset (RST), as when a NAT box or a proxy dies: the
    /// sockets close with `SO_LINGER` 0.
    Abrupt,
    /// Both ends get a FIN, as when a proxy closes a connection politely; the
    /// relay then reads what each end still sends until it closes its side too,
    /// so that no reset follows.
    Clean,
}

/// One relayed connection, as [`Relay::open_connections`] names it.
pub type ConnectionId = u64;

pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The same as a URL, e.g. `http://127.0.0.1:PORT`.
    pub base: String,
    state: Arc<Mutex<RelayState>>,
    accepted: Arc<AtomicUsize>,
    stop: CancellationToken,
}

struct RelayState {
    /// Cancelled to cut every connection open now.
    generation: CancellationToken,
    /// While false, new connections are dropped at once.
    open: bool,
    /// Connections open now, each with the way to cut it alone.
    connections: HashMap<ConnectionId, oneshot::Sender<Cut>>,
    next_id: ConnectionId,
}

impl Relay {
    /// Relays every connection made to it to `target`, from `127.0.0.1`.
    pub async fn start(target: SocketAddr) -> Self {
        Self::start_with(target, false).await
    }

    /// Relays every connection made to it to `target` from the client's own
    /// loopback address (as a transparent proxy does), so that the server's
    /// per-address limits still count each client apart.
    pub async fn start_keeping_source(target: SocketAddr) -> Self {
        Self::start_with(target, true).await
    }

    async fn start_with(target: SocketAddr, keep_source: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let base = format!("http://{addr}");
        let state = Arc::new(Mutex::new(RelayState {
            generation: CancellationToken::new(),
            open: true,
            connections: HashMap::new(),
            next_id: 0,
        }));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (shared, count, stopped) = (Arc::clone(&state), Arc::clone(&accepted), stop.clone());
        tokio::spawn(async move {
            loop {
                let (inbound, client) = tokio::select! {
                    () = stopped.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(_) => return,
                    },
                };
                let (cut_all, cut_this, id) = {
                    let mut state = shared.lock().expect("relay state");
                    if !state.open {
                        continue;
                    }
                    let (sender, receiver) = oneshot::channel();
                    let id = state.next_id;
                    state.next_id += 1;
                    state.connections.insert(id, sender);
                    (state.generation.clone(), receiver, id)
                };
                count.fetch_add(1, Ordering::SeqCst);
                let source = keep_source.then(|| client.ip());
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    relay_one(inbound, target, source, cut_all, cut_this).await;
                    shared.lock().expect("relay state").connections.remove(&id);
                });
            }
        });
        Self {
            addr,
            base,
            state,
            accepted,
            stop,
        }
    }

    /// Drops every connection open now; new ones are relayed as before.
    pub fn cut(&self) {
        let mut state = self.state.lock().expect("relay state");
        state.generation.cancel();
        state.generation = CancellationToken::new();
    }

    /// Drops every open connection and refuses new ones until [`Relay::restore`].
    pub fn refuse(&self) {
        self.state.lock().expect("relay state").open = false;
        self.cut();
    }

    pub fn restore(&self) {
        self.state.lock().expect("relay state").open = true;
    }

    /// Connections relayed so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The connections open now (not yet cut, and not closed by either end).
    pub fn open_connections(&self) -> Vec<ConnectionId> {
        let state = self.state.lock().expect("relay state");
        let mut ids: Vec<ConnectionId> = state.connections.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Cuts connection `id` the way `how` says; whether it was still open.
    pub fn cut_one(&self, id: ConnectionId, how: Cut) -> bool {
        let sender = self
            .state
            .lock()
            .expect("relay state")
            .connections
            .remove(&id);
        sender.is_some_and(|sender| sender.send(how).is_ok())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

/// Relays `inbound` to `target` until either end closes, every connection is
/// cut, or this one is.
async fn relay_one(
    mut inbound: TcpStream,
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
    cut_all: CancellationToken,
    cut_this: oneshot::Receiver<Cut>,
) {
    let Ok(mut outbound) = connect(target, source).await else {
        return;
    };
    let how = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => None,
        () = cut_all.cancelled() => None,
        how = cut_this => how.ok(),
    };
    match how {
        Some(Cut::Abrupt) => {
            reset_on_close(&inbound);
            reset_on_close(&outbound);
        }
        Some(Cut::Clean) => close_cleanly(inbound, outbound).await,
        // Dropped: a FIN, or a reset where unread data was waiting.
        None => {}
    }
}

async fn connect(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(target).await;
    };
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

/// Makes closing `stream` send a reset instead of a FIN.
fn reset_on_close(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Sends both ends a FIN, then reads until each has closed its side too (a
/// socket closed with unread data would send a reset instead).
async fn close_cleanly(mut inbound: TcpStream, mut outbound: TcpStream) {
    let _ = inbound.shutdown().await;
    let _ = outbound.shutdown().await;
    let _ = tokio::time::timeout(CLEAN_CLOSE_WAIT, async {
        tokio::join!(read_to_close(&mut inbound), read_to_close(&mut outbound))
    })
    .await;
}

async fn read_to_close(stream: &mut TcpStream) {
    let mut buffer = [0u8; 8192];
    while let Ok(1..) = stream.read(&mut buffer).await {}
}
