//! Passphrases of private rooms: read at the edge, kept only as Argon2id hashes.
//!
//! Hashing is meant to be slow and to need memory (19 MiB a time, Argon2's
//! defaults), so it never runs on the runtime's threads: [`Hasher`] sends it to
//! the blocking pool, and lets only a few run at once, so that a burst of joins
//! costs queueing, not gigabytes. A passphrase never appears in a `Debug`
//! output, a log line, an event or a response.

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::input::Invalid;

/// Longest passphrase, in characters.
pub const MAX_PASSPHRASE_CHARS: usize = 256;

/// Hashes computed at once, at most: about the cores of a small machine.
const HASHING_AT_ONCE: usize = 4;

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

/// Hashing failed: the blocking pool is gone (shutdown) or Argon2 refused its
/// input; either way the request fails as an internal error.
#[derive(Debug)]
pub struct HashingFailed;

/// Hashes and checks passphrases off the runtime, a few at a time.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(HASHING_AT_ONCE)),
        }
    }
}

impl Hasher {
    pub async fn hash(&self, passphrase: Passphrase) -> Result<PassphraseHash, HashingFailed> {
        self.run(move || {
            let salt =
                SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|_| HashingFailed)?;
            let hash = Argon2::default()
                .hash_password(passphrase.0.as_bytes(), &salt)
                .map_err(|_| HashingFailed)?;
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
            let parsed = PasswordHash::new(&hash.0).map_err(|_| HashingFailed)?;
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
        let _permit = self.permits.acquire().await.map_err(|_| HashingFailed)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| HashingFailed)?
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

    #[test]
    fn an_empty_field_is_no_passphrase_and_a_long_one_is_refused() {
        assert_eq!(Passphrase::parse("").unwrap(), None);
        assert!(Passphrase::parse(&"x".repeat(MAX_PASSPHRASE_CHARS)).is_ok());
        assert!(Passphrase::parse(&"x".repeat(MAX_PASSPHRASE_CHARS + 1)).is_err());
        assert_eq!(format!("{:?}", passphrase("secret")), "Passphrase(..)");
    }
}
