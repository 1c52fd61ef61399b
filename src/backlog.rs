//! How many bytes of responses the server holds that their clients have not
//! taken yet, bounded per connection, per client address and in all.
//!
//! A rendered page sits in memory until the client has read it; a client that
//! reads nothing (an HTTP/2 receive window of 0, a full TCP window) and asks
//! again and again would pin a page per request. Every response of known length
//! reserves its length here before it is sent, and gives it back when the last
//! of its bytes has left memory (the page's buffer is owned by its
//! [`Reserved`], see `pacing.rs`). A response that would go over a bound is not
//! sent: the request is answered `429` (this connection or address has too much
//! waiting: it is the client's doing) or `503` (the server as a whole is full),
//! with `Retry-After`. Refusing rather than waiting: a waiting request would
//! hold its rendered page, which is the memory being bounded, and a browser
//! never has megabytes of pages unread on one address, so only a client that
//! does not read is refused.
//!
//! Event streams reserve nothing: an event's bytes are formatted once per room
//! and shared by every subscriber, so one that is not read costs a reference,
//! and a stream that is not read is reset after `--send-timeout` (`pacing.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::limits::{AddressKey, Limit, Refused};

/// Most bytes unsent on one connection: three of the largest room pages (a
/// room of 100 messages of 2,000 characters that escape to 6 bytes each renders
/// to 1.2 MB), several times what a browser's tabs load at once.
pub const PER_CONNECTION: usize = 4 * 1024 * 1024;

/// Most bytes unsent to one client address (IPv4 address or IPv6 /64), over
/// all of its connections: a dozen of the largest pages.
pub const PER_ADDRESS: usize = 16 * 1024 * 1024;

/// Most bytes unsent in all: with the per-address bound, 16 attacking
/// addresses fill it, and then the server refuses large pages (`503`) instead
/// of growing; small machines (2 cores, a few GiB) stay alive.
pub const IN_ALL: usize = 256 * 1024 * 1024;

/// What is unsent in all and per address: one per listener, shared by its
/// connections.
#[derive(Clone, Default)]
pub struct Backlog {
    totals: Arc<Mutex<Totals>>,
}

#[derive(Default)]
struct Totals {
    /// Bytes unsent in all.
    all: usize,
    /// Bytes unsent per address; an address is forgotten at zero.
    addresses: HashMap<AddressKey, usize>,
}

impl Backlog {
    /// The share of one connection, from `address` (`None` behind a trusted
    /// proxy, where every connection comes from the proxy and only the
    /// per-connection and total bounds apply).
    pub fn connection(&self, address: Option<AddressKey>) -> ConnectionBacklog {
        ConnectionBacklog {
            backlog: self.clone(),
            address,
            unsent: Arc::new(Mutex::new(0)),
        }
    }

    /// Bytes unsent in all (for tests and metrics).
    pub fn unsent(&self) -> usize {
        self.lock().all
    }

    /// The lock is never held across an `.await`; a panic while holding it
    /// cannot leave the counts half-updated (each update is one statement).
    fn lock(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's share of the [`Backlog`].
#[derive(Clone)]
pub struct ConnectionBacklog {
    backlog: Backlog,
    address: Option<AddressKey>,
    /// Bytes unsent on this connection; only changed under the backlog's lock.
    unsent: Arc<Mutex<usize>>,
}

impl ConnectionBacklog {
    /// Reserves `bytes` for a response, or says which bound it would break.
    pub fn reserve(&self, bytes: usize) -> Result<Reserved, Refused> {
        let mut totals = self.backlog.lock();
        let mut unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
        let address = match self.address {
            Some(key) => totals.addresses.get(&key).copied().unwrap_or(0),
            None => 0,
        };
        if *unsent + bytes > PER_CONNECTION || address + bytes > PER_ADDRESS {
            return Err(Refused::full(Limit::Backlog));
        }
        if totals.all + bytes > IN_ALL {
            return Err(Refused::full(Limit::BacklogInAll));
        }
        *unsent += bytes;
        totals.all += bytes;
        if let Some(key) = self.address {
            *totals.addresses.entry(key).or_insert(0) += bytes;
        }
        drop(unsent);
        drop(totals);
        Ok(Reserved {
            connection: self.clone(),
            bytes,
        })
    }

    fn release(&self, bytes: usize) {
        let mut totals = self.backlog.lock();
        let mut unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
        *unsent = unsent.saturating_sub(bytes);
        totals.all = totals.all.saturating_sub(bytes);
        if let Some(key) = self.address
            && let Some(count) = totals.addresses.get_mut(&key)
        {
            *count = count.saturating_sub(bytes);
            if *count == 0 {
                totals.addresses.remove(&key);
            }
        }
    }
}

/// Bytes of one response counted as unsent, given back when dropped.
pub struct Reserved {
    connection: ConnectionBacklog,
    bytes: usize,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.connection.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn address(last: u8) -> Option<AddressKey> {
        Some(AddressKey::of(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))))
    }

    #[test]
    fn a_connection_gets_its_bound_and_gets_it_back_when_sent() {
        let backlog = Backlog::default();
        let connection = backlog.connection(address(1));
        let first = connection.reserve(PER_CONNECTION - 10).unwrap();

        let refused = connection.reserve(11).map(drop).unwrap_err();
        let fits = connection.reserve(10);

        assert_eq!(refused.limit, Limit::Backlog);
        assert!(fits.is_ok());
        drop((first, fits));
        assert_eq!(backlog.unsent(), 0);
        assert!(backlog.lock().addresses.is_empty(), "zero is forgotten");
    }

    #[test]
    fn an_address_is_bounded_over_its_connections_and_others_are_not() {
        let backlog = Backlog::default();
        let held: Vec<_> = (0..PER_ADDRESS / PER_CONNECTION)
            .map(|_| backlog.connection(address(1)).reserve(PER_CONNECTION))
            .collect::<Result<_, _>>()
            .unwrap();

        let same = backlog.connection(address(1)).reserve(1).map(drop);
        let other = backlog.connection(address(2)).reserve(1).map(drop);
        let proxied = backlog.connection(None).reserve(1).map(drop);

        assert_eq!(same.unwrap_err().limit, Limit::Backlog);
        assert!(other.is_ok() && proxied.is_ok());
        drop(held);
    }

    #[test]
    fn the_total_is_bounded_with_a_server_full_refusal() {
        let backlog = Backlog::default();
        let held: Vec<_> = (0..=255u8)
            .map_while(|last| {
                backlog
                    .connection(address(last))
                    .reserve(PER_CONNECTION)
                    .ok()
            })
            .collect();

        let refused = backlog.connection(address(9)).reserve(1).map(drop);

        assert_eq!(held.len(), IN_ALL / PER_CONNECTION);
        assert_eq!(refused.unwrap_err().limit, Limit::BacklogInAll);
        assert!(Limit::BacklogInAll.server_is_full());
        assert!(!Limit::Backlog.server_is_full());
    }
}
