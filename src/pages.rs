//! HTML pages: the Handlebars views, compiled into the binary, and what each shows.
//!
//! Every value goes through Handlebars' HTML escaping (no triple-stash anywhere), so
//! names and messages are shown as the text people typed. The views isolate each
//! name (`<bdi>`) and each message (`dir="auto"`) from the words around it, so
//! right-to-left text in one cannot reorder the rest; that is why a notice reaches
//! the view as a name and the words after it, never as one sentence. Rendering
//! errors are logged and answered with a generic page, never shown to the browser.

use std::sync::Arc;

use handlebars::Handlebars;
use serde::Serialize;

use crate::input::{DisplayName, IdempotencyKey, MAX_NAME_CHARS, RoomCode};
use crate::rooms::{Event, EventContent, EventKind, Presence, RoomSnapshot};

const LAYOUT: &str = "layout";
const HOME: &str = "home";
const ROOM: &str = "room";
const JOIN: &str = "join";
const ERROR: &str = "error";

const VIEWS: [(&str, &str); 5] = [
    (LAYOUT, include_str!("../views/layout.hbs")),
    (HOME, include_str!("../views/home.hbs")),
    (ROOM, include_str!("../views/room.hbs")),
    (JOIN, include_str!("../views/join.hbs")),
    (ERROR, include_str!("../views/error.hbs")),
];

/// A page with no way on from this address: a request for a host name that is
/// not ours gets it, and any link on it would get it again. Registered apart
/// from [`VIEWS`].
const NOTICE: &str = "notice";

/// The page could not be rendered; the cause has been logged.
#[derive(Debug)]
pub struct RenderFailed;

/// The compiled views; cheap to clone.
#[derive(Clone)]
pub struct Pages {
    registry: Arc<Handlebars<'static>>,
}

/// The home page's form, with what was typed and what was wrong with it.
#[derive(Debug, Default, Serialize)]
pub struct HomeForm {
    pub name: String,
    pub code: String,
    pub error: Option<String>,
    /// The name the sign-in proxy gives the person, when names come from it:
    /// the form then has no name field.
    pub identity: Option<String>,
}

/// A page that explains a refusal and offers a way on.
#[derive(Debug, Serialize)]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
    pub link_href: String,
    pub link_text: String,
}

/// A page that tells a guest why they cannot go on here, and what to do instead.
#[derive(Debug, Serialize)]
pub struct NoticePage {
    pub title: String,
    pub message: String,
    pub advice: String,
}

/// What a join notice says after the person's name.
const ENTERED: &str = "has entered the room";
/// What a leave notice says after the person's name.
const LEFT: &str = "has left the room";
const LOCKED: &str = "locked the room: no one new can join";
const UNLOCKED: &str = "unlocked the room";
const REMOVED: &str = "was removed from the room by its owner";
const NOW_OWNER: &str = "is now the owner of the room";

#[derive(Serialize)]
struct EventView {
    id: u64,
    is_message: bool,
    mine: bool,
    /// The author of a message, or whom a notice is about.
    name: String,
    text: Option<String>,
    /// For a notice, the words after the name; the view isolates the name.
    notice: &'static str,
    at: String,
    /// `HH:MM` UTC, until the script shows the reader's local time.
    clock: String,
}

impl EventView {
    fn new(event: &Event, me: &DisplayName) -> Self {
        let notice = match event.kind {
            EventKind::Join => ENTERED,
            EventKind::Leave => LEFT,
            EventKind::Lock => LOCKED,
            EventKind::Unlock => UNLOCKED,
            EventKind::Remove => REMOVED,
            EventKind::Owner => NOW_OWNER,
            EventKind::Message => "",
        };
        let EventContent { name, text, at, .. } = event.content();
        Self {
            id: event.id,
            is_message: event.kind == EventKind::Message,
            mine: event.kind == EventKind::Message && name == me.as_str(),
            clock: at.get(11..16).unwrap_or("").to_owned(),
            name,
            text,
            notice,
            at,
        }
    }
}

impl Pages {
    /// Compiles the views; fails only if a view in this repository is malformed.
    pub fn new() -> Result<Self, handlebars::TemplateError> {
        let mut registry = Handlebars::new();
        for (name, source) in VIEWS {
            registry.register_template_string(name, source)?;
        }
        registry.register_template_string(NOTICE, include_str!("../views/notice.hbs"))?;
        Ok(Self {
            registry: Arc::new(registry),
        })
    }

    fn render(&self, view: &str, data: &impl Serialize) -> Result<String, RenderFailed> {
        self.registry.render(view, data).map_err(|error| {
            tracing::error!(view, %error, "page failed to render");
            RenderFailed
        })
    }

    pub fn home(&self, form: &HomeForm) -> Result<String, RenderFailed> {
        #[derive(Serialize)]
        struct Home<'a> {
            title: &'a str,
            form: &'a HomeForm,
            max_name: usize,
        }
        let title = "Chat Live Room";
        self.render(
            HOME,
            &Home {
                title,
                form,
                max_name: MAX_NAME_CHARS,
            },
        )
    }

    pub fn room(
        &self,
        code: RoomCode,
        room: &RoomSnapshot,
        max_message_chars: u32,
    ) -> Result<String, RenderFailed> {
        #[derive(Serialize)]
        struct Room<'a> {
            title: String,
            script: bool,
            code: RoomCode,
            me: &'a DisplayName,
            /// Everyone in the room, in the order they joined, each marked
            /// connected (a stream open now) or not.
            present: &'a [Presence],
            history: Vec<EventView>,
            last_id: u64,
            max_message_chars: u32,
            /// A fresh key for the form's next message: posted twice (a retry, a
            /// double click), it is stored once.
            idempotency_key: IdempotencyKey,
            /// The viewer owns the room: the page offers lock and remove.
            mine: bool,
            locked: bool,
            /// Which room under this code the page shows: its stream and polls
            /// say so, and are told to reset if the code is another room's by then.
            epoch: u64,
        }
        let history = room
            .history
            .iter()
            .map(|e| EventView::new(e, &room.me))
            .collect();
        self.render(
            ROOM,
            &Room {
                title: format!("Room {code}"),
                script: true,
                code,
                me: &room.me,
                present: &room.present,
                history,
                last_id: room.last_id,
                max_message_chars,
                idempotency_key: IdempotencyKey::random(),
                mine: room.mine,
                locked: room.locked,
                epoch: room.epoch,
            },
        )
    }

    /// For someone who followed a room link without being a member yet.
    pub fn join(
        &self,
        code: RoomCode,
        name: &str,
        identity: Option<&str>,
    ) -> Result<String, RenderFailed> {
        #[derive(Serialize)]
        struct Join<'a> {
            title: String,
            code: RoomCode,
            name: &'a str,
            identity: Option<&'a str>,
            max_name: usize,
        }
        let title = format!("Join room {code}");
        self.render(
            JOIN,
            &Join {
                title,
                code,
                name,
                identity,
                max_name: MAX_NAME_CHARS,
            },
        )
    }

    pub fn error(&self, page: &ErrorPage) -> Result<String, RenderFailed> {
        self.render(ERROR, page)
    }

    pub fn notice(&self, page: &NoticePage) -> Result<String, RenderFailed> {
        self.render(NOTICE, page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(typed: &str) -> DisplayName {
        DisplayName::parse(typed).expect("a valid name")
    }

    fn room_page(present: Vec<Presence>, history: Vec<Event>) -> String {
        let snapshot = RoomSnapshot {
            me: name("alice"),
            last_id: history.last().map_or(0, |e| e.id),
            history: history.into_iter().map(Arc::new).collect(),
            present,
            mine: true,
            locked: false,
            epoch: 7,
        };
        let code = RoomCode::parse("ABCD").expect("a valid code");
        Pages::new()
            .expect("the views compile")
            .room(code, &snapshot, 2000)
            .expect("the room page renders")
    }

    #[test]
    fn no_view_renders_unescaped_values() {
        for (view, source) in VIEWS {
            assert!(!source.contains("{{{"), "{view} has a triple-stash");
        }
    }

    #[test]
    fn names_in_notices_and_lines_are_isolated() {
        let rtl = "\u{5D0}\u{5D1} bob";
        let page = room_page(
            vec![],
            vec![
                Event::new(1, EventKind::Join, &name(rtl), None),
                Event::new(2, EventKind::Message, &name(rtl), Some("שלום")),
                Event::new(3, EventKind::Leave, &name(rtl), None),
            ],
        );
        assert!(page.contains(&format!("<bdi>{rtl}</bdi> has entered the room")));
        assert!(page.contains(&format!("<bdi class=\"who\">{rtl}</bdi>")));
        assert!(page.contains("<p class=\"text\" dir=\"auto\">שלום</p>"));
        assert!(page.contains(&format!("<bdi>{rtl}</bdi> has left the room")));
        assert!(page.contains("You are <strong><bdi>alice</bdi></strong>"));
    }

    #[test]
    fn each_person_present_is_marked_connected_or_not() {
        let page = room_page(
            vec![
                Presence {
                    name: name("alice"),
                    connected: true,
                    owner: true,
                },
                Presence {
                    name: name("<b>bob</b>"),
                    connected: false,
                    owner: false,
                },
            ],
            vec![],
        );
        let list = &page[page.find("id=\"present\"").expect("the list")..];
        let list = &list[..list.find("</ul>").expect("its end")];
        let items: Vec<&str> = list.split("<li ").skip(1).collect();
        assert_eq!(items.len(), 2, "{list}");
        assert!(items[0].starts_with("data-connected=\"true\""), "{list}");
        assert!(items[0].contains("<bdi>alice</bdi>"), "{list}");
        assert!(items[0].contains(">connected</span>"), "{list}");
        assert!(items[1].starts_with("data-connected=\"false\""), "{list}");
        assert!(
            items[1].contains("<bdi>&lt;b&gt;bob&lt;/b&gt;</bdi>"),
            "{list}"
        );
        assert!(items[1].contains(">not connected</span>"), "{list}");
    }
}
