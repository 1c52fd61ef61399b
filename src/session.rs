//! Who you are: a random session id, and the name you last used, in one encrypted cookie.
//!
//! The cookie is sealed with the `cookie` crate's private jar (AES-GCM): a client
//! can neither read nor forge it. A cookie that does not open with our key —
//! tampered, foreign, or from a run with another `--secret` — counts as no session.

use std::sync::Arc;

use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warp::Filter;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "chat_session";

/// A random, unguessable identifier for one browser or one curl cookie jar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }
}

/// What the cookie carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    /// The name last typed, to fill in the next form.
    #[serde(default)]
    pub name: Option<String>,
}

impl Session {
    pub fn new() -> Self {
        Self {
            id: SessionId::random(),
            name: None,
        }
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

/// Seals and opens session cookies.
#[derive(Clone)]
pub struct SessionCookies {
    key: Arc<Key>,
    /// Adds `Secure`, for deployments served over HTTPS.
    secure: bool,
}

impl SessionCookies {
    /// Derives the key from `secret` (so sessions survive a restart), or makes a
    /// random one (every restart signs everyone out).
    pub fn new(secret: Option<&str>, secure: bool) -> Self {
        let key = match secret {
            // Any passphrase works: SHA-256 stretches it to the 32 bytes that the
            // key derivation expects.
            Some(secret) => Key::derive_from(&Sha256::digest(secret.as_bytes())),
            None => Key::generate(),
        };
        Self {
            key: Arc::new(key),
            secure,
        }
    }

    /// Opens a cookie value; `None` unless it was sealed with our key.
    pub fn open(&self, sealed: &str) -> Option<Session> {
        let jar = CookieJar::new();
        let cookie = jar
            .private(&self.key)
            .decrypt(Cookie::new(COOKIE_NAME, sealed.to_owned()))?;
        serde_json::from_str(cookie.value()).ok()
    }

    /// The `Set-Cookie` header value that stores `session`.
    pub fn set_cookie(&self, session: &Session) -> String {
        let value = serde_json::to_string(session).unwrap_or_default();
        let mut jar = CookieJar::new();
        let cookie = Cookie::build((COOKIE_NAME, value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.secure);
        jar.private_mut(&self.key).add(cookie);
        jar.get(COOKIE_NAME)
            .map(|c| c.to_string())
            .unwrap_or_default()
    }

    /// Extracts the request's session, if it carries a valid one.
    pub fn filter(
        &self,
    ) -> impl Filter<Extract = (Option<Session>,), Error = std::convert::Infallible> + Clone + use<>
    {
        let cookies = self.clone();
        warp::cookie::optional::<String>(COOKIE_NAME)
            .map(move |sealed: Option<String>| sealed.and_then(|s| cookies.open(&s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed_value(header: &str) -> String {
        Cookie::parse(header.to_owned()).unwrap().value().to_owned()
    }

    #[test]
    fn a_sealed_session_opens_with_the_same_key_only() {
        let cookies = SessionCookies::new(Some("correct horse"), false);
        let session = Session {
            id: SessionId::random(),
            name: Some("alice".into()),
        };
        let sealed = sealed_value(&cookies.set_cookie(&session));
        assert_eq!(cookies.open(&sealed).unwrap().id, session.id);

        let same_secret = SessionCookies::new(Some("correct horse"), false);
        assert!(
            same_secret.open(&sealed).is_some(),
            "the secret survives restarts"
        );
        let other = SessionCookies::new(Some("battery staple"), false);
        assert!(other.open(&sealed).is_none());
    }

    #[test]
    fn a_tampered_cookie_is_no_session() {
        let cookies = SessionCookies::new(None, false);
        let mut sealed = sealed_value(&cookies.set_cookie(&Session::new())).into_bytes();
        let middle = sealed.len() / 2;
        sealed[middle] = if sealed[middle] == b'A' { b'B' } else { b'A' };
        assert!(cookies.open(&String::from_utf8(sealed).unwrap()).is_none());
        assert!(cookies.open("").is_none());
        assert!(cookies.open("not base64 at all!").is_none());
    }

    #[test]
    fn the_cookie_has_the_protective_attributes() {
        let header = SessionCookies::new(None, true).set_cookie(&Session::new());
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
            assert!(
                header.contains(attribute),
                "{attribute} missing in {header}"
            );
        }
        let header = SessionCookies::new(None, false).set_cookie(&Session::new());
        assert!(!header.contains("Secure"));
    }
}
