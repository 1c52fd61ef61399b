//! A TCP relay in front of the server whose connections a test can cut, the way
//! a network blip, a dropped Wi-Fi or a proxy restart would: all at once
//! ([`Relay::cut`]), or one by one, abruptly (a reset) or cleanly (a FIN), with
//! [`Relay::cut_one`].
//!
//! It can also lay a trap for the next HTTP request that begins a certain way
//! (`POST /rooms/ABCD/messages`): cut its connection before the server sees it
//! ([`Relay::cut_next_request_to`]), or let the server act on it and cut the
//! connection as its answer starts, so the client never learns that it did
//! ([`Relay::drop_next_response_to`]). [`Relay::sprung`] waits until the trap has
//! sprung. The relay reads each direction itself, a chunk at a time, and looks at
//! the start of every chunk from the client: on a keep-alive connection a request
//! may follow others, and it is written (at least its request line) in one piece.
//!
//! A browser whose reused keep-alive connection fails before any answer sends
//! the request again by itself on another one (Chromium does so even for a
//! POST), and its page never hears of it. So that the failure reaches the page, a
//! trap goes on catching the request until it has caught it on a connection
//! that carried nothing before: one the browser opened for it, whose failure it
//! reports. (A connection the browser opened ahead of need and left idle would
//! not do: Chromium resends on those too. The tests have not met one.)

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Longest a cleanly cut connection waits for both ends to close their side.
const CLEAN_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The most bytes relayed per read, either way.
const CHUNK: usize = 16 * 1024;

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
    /// The trap armed now, if any, and what the traps have done so far.
    traps: Arc<Traps>,
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
        let traps = Arc::new(Traps::default());
        let stop = CancellationToken::new();
        let (shared, count, stopped) = (Arc::clone(&state), Arc::clone(&accepted), stop.clone());
        let all_traps = Arc::clone(&traps);
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
                let traps = Arc::clone(&all_traps);
                tokio::spawn(async move {
                    relay_one(inbound, target, source, &traps, cut_all, cut_this).await;
                    shared.lock().expect("relay state").connections.remove(&id);
                });
            }
        });
        Self {
            addr,
            base,
            state,
            accepted,
            traps,
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

    /// Arms a trap: the next request that begins with `prefix` (e.g.
    /// `"POST /rooms/ABCD/messages"`) never reaches the server; its connection
    /// is reset instead. It also catches the browser's own resends of that
    /// request (see the module's doc), so the client's code sees one failure.
    /// Replaces a trap armed before and not yet sprung.
    pub fn cut_next_request_to(&self, prefix: &str) {
        self.traps.arm(prefix, Catch::CutRequest);
    }

    /// Arms a trap: the next request that begins with `prefix` reaches the
    /// server, but its connection is reset as soon as the server's answer
    /// starts, so the server acts on it and the client never hears that it did.
    /// It also catches the browser's own resends of that request (see the
    /// module's doc), so the client's code sees one failure. Replaces a trap
    /// armed before and not yet sprung.
    pub fn drop_next_response_to(&self, prefix: &str) {
        self.traps.arm(prefix, Catch::DropResponse);
    }

    /// Waits until the trap armed last has sprung: it caught its request on a
    /// new connection, and every connection it caught a request on is cut. At
    /// once if no trap was armed.
    pub async fn sprung(&self) {
        let mut state = self.traps.state.subscribe();
        let _ = state
            .wait_for(|state| state.armed.is_none() && state.cutting == 0)
            .await;
    }

    /// Requests the traps have cut before they reached the server, so far
    /// (counting the browser's own resends).
    pub fn requests_cut(&self) -> usize {
        self.traps.requests_cut.load(Ordering::SeqCst)
    }

    /// Answers the traps have kept from the client by cutting their connection,
    /// so far (counting those to the browser's own resends).
    pub fn responses_dropped(&self) -> usize {
        self.traps.responses_dropped.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

/// What a trap does to the request it catches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Catch {
    /// Resets the connection instead of forwarding the request.
    CutRequest,
    /// Forwards the request, then resets the connection instead of forwarding
    /// the first bytes of the answer.
    DropResponse,
}

/// A trap waiting for the requests that begin with `prefix`.
#[derive(Debug)]
struct Trap {
    prefix: Vec<u8>,
    catch: Catch,
}

/// The relay's traps, shared by every connection.
#[derive(Default)]
struct Traps {
    /// The trap armed now, and the connections caught and not yet cut (a
    /// watch, so that [`Relay::sprung`] can await the end of both).
    state: watch::Sender<TrapState>,
    /// Requests a trap cut before they reached the server, so far.
    requests_cut: AtomicUsize,
    /// Answers a trap kept from the client, so far.
    responses_dropped: AtomicUsize,
}

#[derive(Debug, Default)]
struct TrapState {
    /// Waiting for its request; disarmed once it has caught it on a new
    /// connection.
    armed: Option<Trap>,
    /// Connections a trap caught a request on, not yet cut.
    cutting: usize,
}

impl Traps {
    fn arm(&self, prefix: &str, catch: Catch) {
        let trap = Trap {
            prefix: prefix.as_bytes().to_vec(),
            catch,
        };
        self.state.send_modify(|state| state.armed = Some(trap));
    }

    /// Whether the armed trap catches the request that begins with `chunk`,
    /// and what it does to it. `first`: nothing came before it on its
    /// connection, so the browser will not resend it, and the trap is done.
    fn catches(&self, chunk: &[u8], first: bool) -> Option<Catch> {
        let mut caught = None;
        self.state.send_if_modified(|state| {
            let Some(trap) = &state.armed else {
                return false;
            };
            if !chunk.starts_with(&trap.prefix) {
                return false;
            }
            caught = Some(trap.catch);
            state.cutting += 1;
            if first {
                state.armed = None;
            }
            true
        });
        caught
    }

    /// A connection a trap caught a request on is cut.
    fn fired(&self, catch: Catch) {
        let counter = match catch {
            Catch::CutRequest => &self.requests_cut,
            Catch::DropResponse => &self.responses_dropped,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.state.send_modify(|state| state.cutting -= 1);
    }

    /// A connection a trap caught a request on ended some other way (cut by
    /// the test, or closed by an end) before the trap could cut it.
    fn missed(&self) {
        self.state.send_modify(|state| state.cutting -= 1);
    }
}

/// Why a relayed connection stopped before both ends had closed it.
enum Stopped {
    /// A trap caught a request on it and it must be cut.
    Trapped(Catch),
    /// Reading or writing failed (an end reset it).
    Failed,
}

/// Relays `inbound` to `target` until either end closes, every connection is
/// cut, or this one is (by [`Relay::cut_one`] or a trap).
async fn relay_one(
    mut inbound: TcpStream,
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
    traps: &Traps,
    cut_all: CancellationToken,
    cut_this: oneshot::Receiver<Cut>,
) {
    let Ok(mut outbound) = connect(target, source).await else {
        return;
    };
    // Set when a request is forwarded whose answer must not be.
    let drop_answer = AtomicBool::new(false);
    let how = tokio::select! {
        relayed = relay_both_ways(&mut inbound, &mut outbound, traps, &drop_answer) => match relayed {
            Err(Stopped::Trapped(catch)) => {
                reset_on_close(&inbound);
                reset_on_close(&outbound);
                drop((inbound, outbound));
                traps.fired(catch);
                return;
            }
            Ok(()) | Err(Stopped::Failed) => None,
        },
        () = cut_all.cancelled() => None,
        how = cut_this => how.ok(),
    };
    if drop_answer.load(Ordering::SeqCst) {
        // Ended before the answer came: the trap cannot fire here.
        traps.missed();
    }
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

/// Relays both ways, each until its sender closes (then closes the other end's
/// side, as the sender did), or until a trap catches a request or a read or
/// write fails.
async fn relay_both_ways(
    inbound: &mut TcpStream,
    outbound: &mut TcpStream,
    traps: &Traps,
    drop_answer: &AtomicBool,
) -> Result<(), Stopped> {
    let (mut from_client, mut to_client) = inbound.split();
    let (mut from_server, mut to_server) = outbound.split();
    tokio::try_join!(
        relay_requests(&mut from_client, &mut to_server, traps, drop_answer),
        relay_answers(&mut from_server, &mut to_client, drop_answer),
    )?;
    Ok(())
}

/// Client to server: each chunk may begin a request a trap is waiting for.
async fn relay_requests(
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
    traps: &Traps,
    drop_answer: &AtomicBool,
) -> Result<(), Stopped> {
    let mut chunk = vec![0u8; CHUNK];
    let mut first = true;
    loop {
        let n = from.read(&mut chunk).await.map_err(|_| Stopped::Failed)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        match traps.catches(&chunk[..n], first) {
            Some(Catch::CutRequest) => return Err(Stopped::Trapped(Catch::CutRequest)),
            Some(Catch::DropResponse) => drop_answer.store(true, Ordering::SeqCst),
            None => {}
        }
        to.write_all(&chunk[..n])
            .await
            .map_err(|_| Stopped::Failed)?;
        first = false;
    }
}

/// Server to client: without pipelining (browsers do not pipeline), the first
/// bytes after a request begin its answer.
async fn relay_answers(
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
    drop_answer: &AtomicBool,
) -> Result<(), Stopped> {
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut chunk).await.map_err(|_| Stopped::Failed)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        if drop_answer.load(Ordering::SeqCst) {
            return Err(Stopped::Trapped(Catch::DropResponse));
        }
        to.write_all(&chunk[..n])
            .await
            .map_err(|_| Stopped::Failed)?;
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
