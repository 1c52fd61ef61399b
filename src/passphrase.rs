//! Passphrases of private rooms: read at the edge, kept only as Argon2id hashes.
//!
//! Hashing is meant to be slow and to need memory (19 MiB a time, Argon2's
//! defaults), so it never runs on the runtime's threads: [`Hasher`] sends it to
//! the blocking pool, and lets only a few run at once, so that a burst of joins
//! costs queueing, not gigabytes. The queue itself is short: a check that would
//! wait behind more than a fraction of a second of others is refused at once
//! ([`HashingFailed::Busy`], `503` with `Retry-After`), so that a flood of wrong
//! passphrases cannot make a right one wait for ever. A passphrase never appears
//! in a `Debug` output, a log line, an event or a response.

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::input::Invalid;

/// Longest passphrase, in characters.
pub const MAX_PASSPHRASE_CHARS: usize = 256;

/// Hashes computed at once, at most: one fewer than the machine's cores (and
/// at most 4), so that a flood of passphrases leaves a core to everything else
/// the server does. Seen on 2 cores with 4 at once: a join that needed no hash
/// waited 3.6 s for the runtime's threads.
fn hashing_at_once() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.saturating_sub(1).clamp(1, 4)
}

/// Hashes that may wait for a place, per place. One core checks about 40
/// passphrases a second, so a full queue is about a quarter of a second of
/// work: whoever is let in is answered well within a second, and the rest are
/// told at once to try again.
const HASHING_WAITING_PER_PLACE: usize = 10;

/// A passphrase as typed: every character counts (no trimming, no
/// normalisation beyond what the browser sent).
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(String);

impl Passphrase {
    /// `None` for an empty field: the room is not private.
    pub fn parse(typed: &str) -> Result<Option<Self>, Invalid> {
        if typed.is_empty() {
            return Ok(None);
        }
        if typed.chars().count() > MAX_PASSPHRASE_CHARS {
            return Err(Invalid(format!(
                "A passphrase can be at most {MAX_PASSPHRASE_CHARS} characters."
            )));
        }
        Ok(Some(Self(typed.to_owned())))
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// A passphrase's Argon2id hash, in the PHC string format (salt and
/// parameters included).
#[derive(Clone)]
pub struct PassphraseHash(Arc<str>);

impl PassphraseHash {
    /// The PHC string, as a shared store keeps it.
    pub fn as_stored(&self) -> &str {
        &self.0
    }

    /// A hash read back from a shared store; `None` for an empty one.
    pub fn from_stored(stored: &str) -> Option<Self> {
        (!stored.is_empty()).then(|| Self(stored.into()))
    }
}

impl fmt::Debug for PassphraseHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PassphraseHash(..)")
    }
}

/// Why a hash was not computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashingFailed {
    /// The queue is full: try again in a moment.
    Busy,
    /// The blocking pool is gone (shutdown) or Argon2 refused its input: an
    /// internal error.
    Broken,
}

/// Hashes and checks passphrases off the runtime, a few at a time.
#[derive(Clone)]
pub struct Hasher {
    /// Places in the queue, running ones included: none left means busy.
    admitted: Arc<Semaphore>,
    /// Places to run.
    running: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        let at_once = hashing_at_once();
        Self {
            admitted: Arc::new(Semaphore::new(at_once * (1 + HASHING_WAITING_PER_PLACE))),
            running: Arc::new(Semaphore::new(at_once)),
        }
    }
}

impl Hasher {
    pub async fn hash(&self, passphrase: Passphrase) -> Result<PassphraseHash, HashingFailed> {
        self.run(move || {
            let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
                .map_err(|_| HashingFailed::Broken)?;
            let hash = Argon2::default()
                .hash_password(passphrase.0.as_bytes(), &salt)
                .map_err(|_| HashingFailed::Broken)?;
            Ok(PassphraseHash(hash.to_string().into()))
        })
        .await
    }

    /// Whether `passphrase` is the one `hash` was made from.
    pub async fn matches(
        &self,
        hash: PassphraseHash,
        passphrase: Passphrase,
    ) -> Result<bool, HashingFailed> {
        self.run(move || {
            let parsed = PasswordHash::new(&hash.0).map_err(|_| HashingFailed::Broken)?;
            Ok(Argon2::default()
                .verify_password(passphrase.0.as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashingFailed> + Send + 'static,
    ) -> Result<T, HashingFailed> {
        let _place = self
            .admitted
            .try_acquire()
            .map_err(|_| HashingFailed::Busy)?;
        let _running = self
            .running
            .acquire()
            .await
            .map_err(|_| HashingFailed::Broken)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| HashingFailed::Broken)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passphrase(typed: &str) -> Passphrase {
        Passphrase::parse(typed).unwrap().unwrap()
    }

    #[tokio::test]
    async fn only_the_passphrase_hashed_matches_its_hash() {
        let hasher = Hasher::default();
        let hash = hasher.hash(passphrase("open sesame")).await.unwrap();

        assert!(hash.0.starts_with("$argon2id$"), "a PHC string");
        assert!(!hash.0.contains("open sesame"));
        let right = hasher.matches(hash.clone(), passphrase("open sesame"));
        assert!(right.await.unwrap());
        for wrong in ["open sesame ", "Open sesame", "open"] {
            let matched = hasher.matches(hash.clone(), passphrase(wrong));
            assert!(!matched.await.unwrap(), "{wrong:?}");
        }
    }

    /// A check that would wait behind a full queue is refused at once, and the
    /// queue takes checks again as soon as it has room.
    #[tokio::test]
    async fn a_full_queue_refuses_at_once_instead_of_growing() {
        let hasher = Hasher::default();
        let hash = hasher.hash(passphrase("open sesame")).await.unwrap();
        let mut queued = Vec::new();
        while let Ok(place) = hasher.admitted.clone().try_acquire_owned() {
            queued.push(place);
        }
        let refused = hasher.matches(hash.clone(), passphrase("open sesame"));
        assert_eq!(refused.await.unwrap_err(), HashingFailed::Busy);
        queued.pop();
        let admitted = hasher.matches(hash, passphrase("open sesame"));
        assert!(admitted.await.unwrap());
    }

    #[test]
    fn an_empty_field_is_no_passphrase_and_a_long_one_is_refused() {
        assert_eq!(Passphrase::parse("").unwrap(), None);
        assert!(Passphrase::parse(&"x".repeat(MAX_PASSPHRASE_CHARS)).is_ok());
        assert!(Passphrase::parse(&"x".repeat(MAX_PASSPHRASE_CHARS + 1)).is_err());
        assert_eq!(format!("{:?}", passphrase("secret")), "Passphrase(..)");
    }
}
