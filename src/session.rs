//! Who you are: a random session id, your memberships and the name you last used,
//! in one encrypted cookie.
//!
//! The cookie is sealed with the `cookie` crate's private jar (AES-GCM): a client
//! can neither read nor forge it. A cookie that does not open with our key —
//! tampered, foreign, from a run with another `--secret`, or older than
//! `--session-max-age` — counts as no session.
//!
//! Membership of a room is the [`MemberToken`] minted at that join and carried
//! here, not the session id: a copy of someone's cookie taken before they join a
//! room gives nothing in that room. The session id itself is replaced at every
//! create and join, so such a copy shares nothing else with it either.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warp::Filter;
use warp::http::{HeaderMap, header};

use crate::input::RoomCode;
use crate::rooms::MemberToken;

/// Name of the session cookie over plain HTTP.
pub const COOKIE_NAME: &str = "chat_session";

/// Name of the session cookie with `--secure-cookies`: browsers accept a
/// `__Host-` cookie only over HTTPS, for the whole host, from the host itself,
/// so neither a sibling subdomain nor a network attacker can plant one.
pub const SECURE_COOKIE_NAME: &str = "__Host-chat_session";

/// Longest sealed value opened; anything longer is not ours.
const MAX_SEALED_BYTES: usize = 4096;

/// A random, unguessable identifier for one browser or one curl cookie jar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Proof of membership of one room, as the cookie keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPass {
    #[serde(with = "code_text")]
    pub code: RoomCode,
    pub token: MemberToken,
}

/// A room code in the cookie is its four letters.
mod code_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::input::RoomCode;

    pub fn serialize<S: Serializer>(code: &RoomCode, serializer: S) -> Result<S::Ok, S::Error> {
        code.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<RoomCode, D::Error> {
        let text = String::deserialize(deserializer)?;
        RoomCode::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What the cookie carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    /// The name last typed, to fill in the next form.
    #[serde(default)]
    pub name: Option<String>,
    /// The rooms this session joined (some may have closed since).
    #[serde(default)]
    pub rooms: Vec<RoomPass>,
    /// When the server sealed this value, in seconds since the Unix epoch.
    #[serde(default)]
    issued: u64,
}

impl Session {
    pub fn new() -> Self {
        Self {
            id: SessionId::random(),
            name: None,
            rooms: Vec::new(),
            issued: 0,
        }
    }

    /// The membership token this session holds for room `code`, if any.
    pub fn pass(&self, code: RoomCode) -> Option<MemberToken> {
        self.rooms
            .iter()
            .find(|pass| pass.code == code)
            .map(|pass| pass.token)
    }

    /// Gives the session a new id: done whenever it gains a membership, so that
    /// a copy of the cookie taken (or planted) before shares no stream limit
    /// and no removal with it from then on.
    pub fn rotate_id(&mut self) {
        self.id = SessionId::random();
    }

    /// Records the membership of room `code`, replacing an older one.
    pub fn add_pass(&mut self, code: RoomCode, token: MemberToken) {
        self.rooms.retain(|pass| pass.code != code);
        self.rooms.push(RoomPass { code, token });
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Seals and opens session cookies.
#[derive(Clone)]
pub struct SessionCookies {
    key: Arc<Key>,
    /// Adds `Secure` and the `__Host-` prefix, for deployments served over HTTPS.
    secure: bool,
    /// How long a sealed session stays valid.
    max_age: Duration,
}

impl SessionCookies {
    /// Derives the key from `secret` (so sessions survive a restart), or makes a
    /// random one (every restart signs everyone out).
    pub fn new(secret: Option<&str>, secure: bool, max_age: Duration) -> Self {
        let key = match secret {
            // Any passphrase works: SHA-256 stretches it to the 32 bytes that the
            // key derivation expects.
            Some(secret) => Key::derive_from(&Sha256::digest(secret.as_bytes())),
            None => Key::generate(),
        };
        Self {
            key: Arc::new(key),
            secure,
            max_age,
        }
    }

    /// The cookie's name: `__Host-` prefixed with `--secure-cookies`.
    pub fn name(&self) -> &'static str {
        if self.secure {
            SECURE_COOKIE_NAME
        } else {
            COOKIE_NAME
        }
    }

    /// Opens a cookie value; `None` unless it was sealed with our key and has not
    /// expired.
    pub fn open(&self, sealed: &str) -> Option<Session> {
        self.open_at(sealed, now_seconds())
    }

    fn open_at(&self, sealed: &str, now: u64) -> Option<Session> {
        if sealed.len() > MAX_SEALED_BYTES {
            return None;
        }
        let jar = CookieJar::new();
        let cookie = jar
            .private(&self.key)
            .decrypt(Cookie::new(self.name(), sealed.to_owned()))?;
        let session: Session = serde_json::from_str(cookie.value()).ok()?;
        let age = now.saturating_sub(session.issued);
        (age < self.max_age.as_secs()).then_some(session)
    }

    /// The `Set-Cookie` header value that stores `session`, sealed now.
    pub fn set_cookie(&self, session: &Session) -> String {
        let session = Session {
            issued: now_seconds(),
            ..session.clone()
        };
        let value = serde_json::to_string(&session).unwrap_or_default();
        let max_age =
            time::Duration::seconds(i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX));
        let mut jar = CookieJar::new();
        let cookie = Cookie::build((self.name(), value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(max_age)
            .secure(self.secure);
        jar.private_mut(&self.key).add(cookie);
        jar.get(self.name())
            .map(|c| c.to_string())
            .unwrap_or_default()
    }

    /// Extracts the request's session, if it carries a valid one. Every `Cookie`
    /// header counts (HTTP/2 clients may split them); one that is not text, or
    /// holds a value that does not open, counts as none.
    pub fn filter(
        &self,
    ) -> impl Filter<Extract = (Option<Session>,), Error = std::convert::Infallible> + Clone + use<>
    {
        let cookies = self.clone();
        warp::header::headers_cloned().map(move |headers: HeaderMap| {
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .filter(|(name, _)| *name == cookies.name())
                .find_map(|(_, sealed)| cookies.open(sealed.trim()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn sealed_value(header: &str) -> String {
        Cookie::parse(header.to_owned()).unwrap().value().to_owned()
    }

    #[test]
    fn a_sealed_session_opens_with_the_same_key_only() {
        let cookies = SessionCookies::new(Some("correct horse"), false, DAY);
        let session = Session {
            name: Some("alice".into()),
            ..Session::new()
        };
        let sealed = sealed_value(&cookies.set_cookie(&session));
        assert_eq!(cookies.open(&sealed).unwrap().id, session.id);

        let same_secret = SessionCookies::new(Some("correct horse"), false, DAY);
        assert!(
            same_secret.open(&sealed).is_some(),
            "the secret survives restarts"
        );
        let other = SessionCookies::new(Some("battery staple"), false, DAY);
        assert!(other.open(&sealed).is_none());
    }

    #[test]
    fn a_tampered_cookie_is_no_session() {
        let cookies = SessionCookies::new(None, false, DAY);
        let mut sealed = sealed_value(&cookies.set_cookie(&Session::new())).into_bytes();
        let middle = sealed.len() / 2;
        sealed[middle] = if sealed[middle] == b'A' { b'B' } else { b'A' };
        assert!(cookies.open(&String::from_utf8(sealed).unwrap()).is_none());
        assert!(cookies.open("").is_none());
        assert!(cookies.open("not base64 at all!").is_none());
    }

    #[test]
    fn the_cookie_has_the_protective_attributes() {
        let header = SessionCookies::new(None, true, DAY).set_cookie(&Session::new());
        assert!(header.starts_with("__Host-chat_session="), "{header}");
        for attribute in [
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Secure",
            "Max-Age=86400",
        ] {
            assert!(
                header.contains(attribute),
                "{attribute} missing in {header}"
            );
        }
        let header = SessionCookies::new(None, false, DAY).set_cookie(&Session::new());
        assert!(!header.contains("Secure"));
        assert!(header.starts_with("chat_session="), "{header}");
    }

    /// A sealed session carries its issue time and stops opening after the max age.
    #[test]
    fn a_session_expires_after_the_max_age() {
        let cookies = SessionCookies::new(Some("s"), false, DAY);
        let sealed = sealed_value(&cookies.set_cookie(&Session::new()));
        let now = now_seconds();

        assert!(cookies.open_at(&sealed, now + 86_399).is_some());
        assert!(cookies.open_at(&sealed, now + 86_400).is_none());
    }

    #[test]
    fn a_huge_value_is_not_even_tried() {
        let cookies = SessionCookies::new(None, false, DAY);
        assert!(cookies.open(&"A".repeat(1 << 20)).is_none());
    }

    /// The most rooms `--max-rooms-per-session` allows (40), with the longest
    /// tokens and name, still fit the 4 KiB browsers keep for a cookie.
    #[test]
    fn forty_rooms_fit_in_a_cookie() {
        let cookies = SessionCookies::new(None, true, DAY);
        let longest: MemberToken = serde_json::from_str(&u128::MAX.to_string()).unwrap();
        let mut session = Session {
            name: Some("𝔄".repeat(32)),
            ..Session::new()
        };
        for n in 0..40u8 {
            let letter = char::from(b'A' + n % 26);
            let code = RoomCode::parse(&format!("{letter}{letter}Q{}", char::from(b'A' + n / 26)));
            session.add_pass(code.unwrap(), longest);
        }

        let header = cookies.set_cookie(&session);

        let pair = header.split(';').next().unwrap();
        assert!(pair.len() <= 4096, "{} bytes", pair.len());
        assert_eq!(
            cookies.open(&sealed_value(&header)).unwrap().rooms.len(),
            40
        );
    }
}
