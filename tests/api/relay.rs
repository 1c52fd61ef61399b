//! A TCP relay in front of the server whose connections a test can cut, the way
//! a network blip, a dropped Wi-Fi or a proxy restart would.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

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
}

impl Relay {
    /// Relays every connection made to it to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let base = format!("http://{addr}");
        let state = Arc::new(Mutex::new(RelayState {
            generation: CancellationToken::new(),
            open: true,
        }));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (shared, count, stopped) = (Arc::clone(&state), Arc::clone(&accepted), stop.clone());
        tokio::spawn(async move {
            loop {
                let mut inbound = tokio::select! {
                    () = stopped.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((inbound, _)) => inbound,
                        Err(_) => return,
                    },
                };
                let (open, cut) = {
                    let state = shared.lock().expect("relay state");
                    (state.open, state.generation.clone())
                };
                if !open {
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut.cancelled() => {}
                    }
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
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}
