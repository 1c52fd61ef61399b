//! What the memory rooms hold, written down at a stop and read back at the
//! next start, so that rooms outlive a restart of the process.
//!
//! A [`Snapshot`] is every room's state that a person could notice losing:
//! its code and which room under that code it is (`incarnation`, told to
//! pages), its members with their tokens (their cookies hold them), sessions
//! and order, its owner, lock, passphrase hash and removed members, its
//! history with the ids it gave (kept as the very SSE frames that were sent,
//! so that a replay after the restart is byte for byte what was missed), the
//! idempotency keys of the messages history holds, and the next id. What only
//! this process knew is not kept: open streams (every one ended at the stop,
//! and their clients reconnect), epochs and timers (the restart grace sets
//! them anew), and the metrics' running totals.
//!
//! The format is JSON with a `version` field, read before anything else: a
//! file of another version is refused as a whole, never half read. Version 1
//! is the only one so far; a change of format adds a version and a test that
//! reads a file the older build wrote.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Event;

/// The format this build writes, and the only one it reads.
pub const VERSION: u32 = 1;

/// Every room of a process, as written at a stop.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`VERSION`] when written; first in the file.
    pub version: u32,
    /// The serial of the next room opened, so serials stay unique.
    pub next_serial: u64,
    pub rooms: Vec<RoomRecord>,
}

/// One room.
#[derive(Debug, Serialize, Deserialize)]
pub struct RoomRecord {
    /// The four letters.
    pub code: String,
    pub serial: u64,
    /// Which room under this code it is: pages that say so resume in it.
    pub incarnation: u64,
    /// The id the next event gets.
    pub next_id: u64,
    /// Members joined so far (the next one's `order` is one more).
    pub joins: u64,
    /// The owner's token, in hex.
    pub owner: Option<String>,
    pub locked: bool,
    /// The passphrase's Argon2id hash (PHC string), for a private room.
    pub passphrase: Option<String>,
    pub members: Vec<MemberRecord>,
    /// Tokens of removed memberships, in hex.
    pub removed_members: Vec<String>,
    pub removed_sessions: Vec<String>,
    pub removed_names: Vec<String>,
    /// The kept events, oldest first.
    pub history: Vec<Frame>,
    /// The idempotency keys of the messages history holds.
    pub sent: Vec<SentRecord>,
}

/// One member.
#[derive(Debug, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Their token, in hex, as their cookie holds it.
    pub token: String,
    pub name: String,
    /// The session that joined (a removal shuts it out).
    pub session: String,
    /// Their place in the order people came in.
    pub order: u64,
    /// Whether they ever opened a stream.
    pub streamed: bool,
}

/// A message sent under an idempotency key.
#[derive(Debug, Serialize, Deserialize)]
pub struct SentRecord {
    /// The sender's token, in hex.
    pub token: String,
    pub key: String,
    pub id: u64,
}

/// A kept event, written as its SSE frame (text) and read back from it.
#[derive(Debug, Clone)]
pub struct Frame(pub Arc<Event>);

impl Serialize for Frame {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Frames are written from text (`Event::new`, the shared store's script).
        match std::str::from_utf8(self.0.frame()) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => Err(serde::ser::Error::custom("an event frame that is not text")),
        }
    }
}

impl<'de> Deserialize<'de> for Frame {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Event::from_frame(Bytes::from(text))
            .map(|event| Self(Arc::new(event)))
            .ok_or_else(|| D::Error::custom("not an event frame"))
    }
}

/// Why a snapshot file cannot be read.
#[derive(Debug)]
pub enum SnapshotError {
    /// Written by a build with another format.
    Version(u32),
    /// Not a snapshot at all, cut short, or saying something impossible.
    Invalid(String),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(version) => write!(
                f,
                "written in format version {version}; this build reads version {VERSION}"
            ),
            Self::Invalid(why) => write!(f, "not a snapshot this build can read: {why}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl Snapshot {
    /// The file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, SnapshotError> {
        serde_json::to_vec(self).map_err(|error| SnapshotError::Invalid(error.to_string()))
    }

    /// A snapshot from a file's bytes: its version first, then the rest.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let invalid = |error: serde_json::Error| SnapshotError::Invalid(error.to_string());
        let Versioned { version } = serde_json::from_slice(bytes).map_err(invalid)?;
        if version != VERSION {
            return Err(SnapshotError::Version(version));
        }
        serde_json::from_slice(bytes).map_err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::DisplayName;
    use crate::rooms::EventKind;

    /// A frame goes out as text and comes back as the same event.
    #[test]
    fn a_snapshot_reads_back_as_written() {
        let name = DisplayName::parse("alice").unwrap();
        let event = Arc::new(Event::new(3, EventKind::Message, &name, Some("hi \"x\"\n")));
        let snapshot = Snapshot {
            version: VERSION,
            next_serial: 9,
            rooms: vec![RoomRecord {
                code: "ABCD".into(),
                serial: 8,
                incarnation: 77,
                next_id: 4,
                joins: 1,
                owner: None,
                locked: true,
                passphrase: None,
                members: Vec::new(),
                removed_members: Vec::new(),
                removed_sessions: Vec::new(),
                removed_names: Vec::new(),
                history: vec![Frame(Arc::clone(&event))],
                sent: Vec::new(),
            }],
        };

        let back = Snapshot::decode(&snapshot.encode().unwrap()).unwrap();

        assert_eq!(back.next_serial, 9);
        let room = &back.rooms[0];
        assert_eq!((room.incarnation, room.next_id, room.locked), (77, 4, true));
        assert_eq!(room.history[0].0.frame(), event.frame());
    }

    /// Another version, or something that is not a snapshot, is refused whole.
    #[test]
    fn another_version_or_garbage_is_refused() {
        assert!(matches!(
            Snapshot::decode(br#"{"version":2,"rooms":"whatever"}"#),
            Err(SnapshotError::Version(2))
        ));
        for garbage in [&b""[..], b"{", b"[]", br#"{"version":1}"#] {
            assert!(
                matches!(Snapshot::decode(garbage), Err(SnapshotError::Invalid(_))),
                "{garbage:?}"
            );
        }
        let frame = br#"{"version":1,"next_serial":1,"rooms":[{"code":"ABCD","serial":1,
            "incarnation":1,"next_id":2,"joins":0,"owner":null,"locked":false,
            "passphrase":null,"members":[],"removed_members":[],"removed_sessions":[],
            "removed_names":[],"history":["not a frame"],"sent":[]}]}"#;
        assert!(matches!(
            Snapshot::decode(frame),
            Err(SnapshotError::Invalid(_))
        ));
    }
}
