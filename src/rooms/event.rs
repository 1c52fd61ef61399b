//! One thing that happened in a room, with its Server-Sent Events frame.
//!
//! The frame is formatted once, when the event is published, and shared as
//! [`Bytes`] by the history and by every subscriber: ten thousand streams cost one
//! `serde_json` call, not ten thousand.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::input::DisplayName;

/// What kind of thing happened; also the SSE `event:` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Message,
    Join,
    Leave,
    /// The owner (`name`) locked the room: no one new may join.
    Lock,
    /// The owner (`name`) unlocked the room.
    Unlock,
    /// The owner removed the member `name`.
    Remove,
    /// `name` owns the room now (the owner before them left).
    Owner,
}

impl EventKind {
    /// The SSE `event:` field and the JSON `kind` field.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::Remove => "remove",
            Self::Owner => "owner",
        }
    }

    /// The kind an `event:` name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Message,
            Self::Join,
            Self::Leave,
            Self::Lock,
            Self::Unlock,
            Self::Remove,
            Self::Owner,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

/// An event as kept in a room's history and sent to its subscribers: its id,
/// its kind, and its SSE frame. Everything else it says (who, the text, when)
/// lives only in the frame's JSON, so a kept message costs its frame and little
/// more; a page that shows it reads it back with [`Event::content`].
#[derive(Debug)]
pub struct Event {
    /// Per-room sequence number; only grows. Also the SSE `id:`.
    pub id: u64,
    pub kind: EventKind,
    /// The complete SSE frame (`id`, `event`, `data`, blank line).
    frame: Bytes,
    /// Where in `frame` the JSON of the `data:` line is: long polls send it
    /// without formatting it again.
    data: std::ops::Range<u32>,
}

/// What an event says, as its JSON carries it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EventContent {
    pub id: u64,
    pub kind: EventKind,
    /// Who sent the message, entered, left, locked or unlocked the room, was
    /// removed, or owns it now.
    pub name: String,
    /// The message text; absent for every other kind.
    #[serde(default)]
    pub text: Option<String>,
    /// When the server accepted it, RFC 3339 in UTC.
    pub at: String,
}

/// Now, as an event's `at` says it (RFC 3339, UTC).
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}

/// Room in a frame for the JSON's field names and punctuation (about 60 bytes)
/// and a few escaped characters; text with more is written with a grown buffer.
const FRAME_SLACK: usize = 96;

impl Event {
    pub fn new(id: u64, kind: EventKind, name: &DisplayName, text: Option<&str>) -> Self {
        let at = now_rfc3339();
        #[derive(Serialize)]
        struct Json<'a> {
            id: u64,
            kind: EventKind,
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            text: Option<&'a str>,
            at: &'a str,
        }
        let json = Json {
            id,
            kind,
            name: name.as_str(),
            text,
            at: &at,
        };
        // The frame is written in one buffer, sized for the usual case (JSON
        // as long as what it quotes, plus its field names): history keeps this
        // allocation as it is, so it must not be half spare (as `format!` and
        // growing leave it), and writing it directly spares the two copies
        // (the JSON, then the frame) that used to be made and freed for it.
        let head = format!("id: {id}\nevent: {}\ndata: ", kind.name());
        let quoted = name.as_str().len() + text.map_or(0, str::len) + at.len();
        let mut frame = Vec::with_capacity(head.len() + quoted + FRAME_SLACK);
        frame.extend_from_slice(head.as_bytes());
        // serde_json escapes every line break inside strings, so the JSON is one line
        // and one `data:` field carries it whole.
        if serde_json::to_writer(&mut frame, &json).is_err() {
            frame.truncate(head.len());
            frame.extend_from_slice(b"{}");
        }
        let data_end = frame.len();
        frame.extend_from_slice(b"\n\n");
        // Exact (only text that escapes long leaves much spare), so that
        // `Bytes` takes the buffer as it is, with no header of its own.
        frame.shrink_to_fit();
        let span = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            id,
            kind,
            data: span(head.len())..span(data_end),
            frame: Bytes::from(frame),
        }
    }

    /// An event from a frame formatted elsewhere (by the shared store's script,
    /// to the same bytes [`Event::new`] writes): `None` unless it is one.
    pub fn from_frame(frame: Bytes) -> Option<Self> {
        let text = std::str::from_utf8(&frame).ok()?;
        let rest = text.strip_prefix("id: ")?;
        let (id, rest) = rest.split_once("\nevent: ")?;
        let (kind, rest) = rest.split_once("\ndata: ")?;
        let json = rest.strip_suffix("\n\n")?;
        let start = frame.len() - rest.len();
        let span = |n: usize| u32::try_from(n).ok();
        Some(Self {
            id: id.parse().ok()?,
            kind: EventKind::from_name(kind)?,
            data: span(start)?..span(start + json.len())?,
            frame,
        })
    }

    /// The bytes every subscriber receives for this event.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The event as JSON (the `data:` line's), sharing the frame's bytes.
    pub fn json(&self) -> Bytes {
        self.frame
            .slice(self.data.start as usize..self.data.end as usize)
    }

    /// What the event says, read back from its JSON (for pages, not for the
    /// hot path: streams and polls send the bytes as they are).
    pub fn content(&self) -> EventContent {
        serde_json::from_slice(&self.json()).unwrap_or_else(|_| EventContent {
            id: self.id,
            kind: self.kind,
            name: String::new(),
            text: None,
            at: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_read_back_is_the_event_it_was() {
        let name = DisplayName::parse("bob").unwrap();
        let event = Event::new(7, EventKind::Message, &name, Some("hi \"there\"\n"));
        let back = Event::from_frame(event.frame().clone()).unwrap();
        assert_eq!((back.id, back.kind), (7, EventKind::Message));
        assert_eq!(back.json(), event.json());
        assert_eq!(back.content(), event.content());
        assert!(
            Event::from_frame(Bytes::from_static(b"id: x\nevent: join\ndata: {}\n\n")).is_none()
        );
    }

    #[test]
    fn frame_is_one_sse_event_with_matching_id_and_kind() {
        let name = DisplayName::parse("alice").unwrap();
        let event = Event::new(7, EventKind::Message, &name, Some("two\nlines"));
        let frame = std::str::from_utf8(event.frame()).unwrap();
        let lines: Vec<&str> = frame.strip_suffix("\n\n").unwrap().split('\n').collect();
        assert_eq!(lines[0], "id: 7");
        assert_eq!(lines[1], "event: message");
        assert_eq!(lines.len(), 3, "one data line: {frame:?}");
        let data: serde_json::Value =
            serde_json::from_str(lines[2].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["id"], 7);
        assert_eq!(data["kind"], "message");
        assert_eq!(data["name"], "alice");
        assert_eq!(data["text"], "two\nlines");
        assert!(data["at"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn the_json_is_the_data_line() {
        let name = DisplayName::parse("alice").unwrap();
        let event = Event::new(3, EventKind::Message, &name, Some("hi"));
        let frame = std::str::from_utf8(event.frame()).unwrap();
        let json = std::str::from_utf8(&event.json()).unwrap().to_owned();
        assert!(frame.contains(&format!("\ndata: {json}\n\n")), "{frame}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["text"], "hi");
    }

    /// What a page shows is read back from the frame: nothing is kept twice.
    #[test]
    fn the_content_is_what_the_json_says() {
        let name = DisplayName::parse("Zoë").unwrap();
        let event = Event::new(9, EventKind::Message, &name, Some("\"quoted\" <b>\n"));
        let content = event.content();
        assert_eq!((content.id, content.kind), (9, EventKind::Message));
        assert_eq!(content.name, "Zoë");
        assert_eq!(content.text.as_deref(), Some("\"quoted\" <b>\n"));
        assert!(content.at.ends_with('Z'));
        let notice = Event::new(10, EventKind::Lock, &name, None).content();
        assert_eq!((notice.kind, notice.text), (EventKind::Lock, None));
    }

    /// Text that escapes to several times its length (control characters
    /// become `\u00XX`) outgrows the frame's first estimate and still makes one
    /// whole frame whose JSON reads back as the text.
    #[test]
    fn text_that_escapes_long_still_makes_a_whole_frame() {
        let name = DisplayName::parse("alice").unwrap();
        let text = "\u{1}\"\\".repeat(300);
        let event = Event::new(4, EventKind::Message, &name, Some(&text));
        let frame = std::str::from_utf8(event.frame()).unwrap();
        assert!(
            frame.starts_with("id: 4\nevent: message\ndata: {"),
            "{frame}"
        );
        assert!(frame.ends_with("}\n\n"));
        assert_eq!(frame.matches('\n').count(), 4, "one data line");
        assert_eq!(event.content().text.as_deref(), Some(text.as_str()));
    }

    #[test]
    fn notices_carry_no_text() {
        let name = DisplayName::parse("bob").unwrap();
        let event = Event::new(1, EventKind::Leave, &name, None);
        let frame = std::str::from_utf8(event.frame()).unwrap();
        assert!(frame.contains("event: leave\n"));
        assert!(!frame.contains("\"text\""));
    }
}
