//! HTML pages: the Handlebars views, compiled into the binary, and what each shows.
//!
//! Every value goes through Handlebars' HTML escaping (no triple-stash anywhere), so
//! names and messages are shown as the text people typed. The views isolate each
//! name (`<bdi>`) and each message (`dir="auto"`) from the words around it, so
//! right-to-left text in one cannot reorder the rest; that is why a notice reaches
//! the view as a name and the words after it, never as one sentence. A message's
//! `http(s)://` addresses reach the view as separate segments (see [`crate::links`])
//! that it renders as links, each still escaped. Rendering errors are logged and
//! answered with a generic page, never shown to the browser.

use std::sync::Arc;

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use serde::Serialize;

use crate::assets::Assets;
use crate::input::{DisplayName, IdempotencyKey, MAX_NAME_CHARS, RoomCode};
use crate::links;
use crate::rooms::{Event, EventContent, EventKind, Presence, RoomSnapshot};

const LAYOUT: &str = "layout";
const HOME: &str = "home";
const ROOM: &str = "room";
const JOIN: &str = "join";
const ERROR: &str = "error";
const CONFIRM_REMOVE: &str = "confirm_remove";

const VIEWS: [(&str, &str); 6] = [
    (LAYOUT, include_str!("../views/layout.hbs")),
    (HOME, include_str!("../views/home.hbs")),
    (ROOM, include_str!("../views/room.hbs")),
    (JOIN, include_str!("../views/join.hbs")),
    (ERROR, include_str!("../views/error.hbs")),
    (CONFIRM_REMOVE, include_str!("../views/confirm_remove.hbs")),
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

/// A form as the person filled it in (never the passphrase), with what was wrong
/// with it: shown again on the page it came from.
#[derive(Debug, Default, Serialize)]
pub struct FilledForm {
    pub name: String,
    pub code: String,
    pub error: Option<String>,
    /// The name the sign-in proxy gives the person, when names come from it:
    /// the form then has no name field.
    pub identity: Option<String>,
    /// Which form was sent, so its error shows beside it.
    #[serde(skip)]
    pub origin: FormOrigin,
}

/// Which form a person sent: it decides the page a refusal is shown on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum FormOrigin {
    /// The home page's "Start a room".
    #[default]
    Start,
    /// The home page's "Join a room".
    Join,
    /// The join page a room link leads to: a refusal stays on it, so the next
    /// try is another Join there, not a click on "Start room". `private`: the
    /// room has a passphrase, so the page asks for one.
    RoomLink { private: bool },
}

/// The join page for someone who followed a room link.
#[derive(Debug)]
pub struct JoinPage<'a> {
    pub code: RoomCode,
    /// The name to fill in: remembered, or typed into a refused form.
    pub name: &'a str,
    /// The sign-in proxy's name for the person: no name field then.
    pub identity: Option<&'a str>,
    /// The room has a passphrase: the page asks for it.
    pub private: bool,
    /// Why the last try was refused.
    pub error: Option<&'a str>,
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
    /// A message's text, as text and links; empty for a notice.
    text: Vec<TextSegment>,
    /// For a notice, the words after the name; the view isolates the name.
    notice: &'static str,
    at: String,
    /// When, in UTC, until the script shows the reader's local time.
    clock: String,
}

/// One piece of a message's text: plain, or an address shown as a link to itself.
#[derive(Serialize)]
struct TextSegment {
    text: String,
    link: bool,
}

/// `HH:MM` for an event of `today` (`YYYY-MM-DD`), `YYYY-MM-DD HH:MM` for an
/// older one, read from its RFC 3339 time in UTC.
fn clock(at: &str, today: &str) -> String {
    let (Some(date), Some(time)) = (at.get(..10), at.get(11..16)) else {
        return String::new();
    };
    match date == today {
        true => time.to_owned(),
        false => format!("{date} {time}"),
    }
}

impl EventView {
    /// The view of `event` as `me` sees it on `today` (UTC, `YYYY-MM-DD`).
    fn new(event: &Event, me: &DisplayName, today: &str) -> Self {
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
            clock: clock(&at, today),
            name,
            text: text.as_deref().map_or_else(Vec::new, |text| {
                links::segments(text)
                    .into_iter()
                    .map(|s| TextSegment {
                        text: s.text.to_owned(),
                        link: s.link,
                    })
                    .collect()
            }),
            notice,
            at,
        }
    }
}

/// The view helper `{{asset "style.css"}}`: the URL that names the file's
/// content, from `assets`. A name we have no file for fails the render (and
/// so every test that renders the layout), rather than linking nowhere.
const ASSET_HELPER: &str = "asset";

impl Pages {
    /// Compiles the views, which link to the files of `assets` by their
    /// content-named URLs; fails only if a view in this repository is malformed.
    pub fn new(assets: &Assets) -> Result<Self, handlebars::TemplateError> {
        let mut registry = Handlebars::new();
        let assets = assets.clone();
        registry.register_helper(
            ASSET_HELPER,
            Box::new(
                move |helper: &Helper,
                      _: &Handlebars,
                      _: &Context,
                      _: &mut RenderContext,
                      out: &mut dyn Output|
                      -> HelperResult {
                    let name = helper
                        .param(0)
                        .and_then(|p| p.value().as_str())
                        .ok_or(RenderErrorReason::ParamNotFoundForIndex(ASSET_HELPER, 0))?;
                    let url = assets.url(name).ok_or_else(|| {
                        RenderErrorReason::Other(format!("no asset is called {name:?}"))
                    })?;
                    out.write(&url)?;
                    Ok(())
                },
            ),
        );
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

    /// The home page: "Start a room" and "Join a room", each its own form, the
    /// refused one (if any) showing its error and taking the cursor.
    pub fn home(&self, form: &FilledForm) -> Result<String, RenderFailed> {
        #[derive(Serialize)]
        struct Home<'a> {
            title: &'a str,
            form: &'a FilledForm,
            max_name: usize,
            start_error: Option<&'a str>,
            join_error: Option<&'a str>,
            /// Where the cursor starts: the Start form's name, or the Join
            /// form's code after a refused join.
            focus_start: bool,
            focus_code: bool,
        }
        let joining = form.origin != FormOrigin::Start;
        let error = form.error.as_deref();
        self.render(
            HOME,
            &Home {
                title: "Chat Live Room",
                form,
                max_name: MAX_NAME_CHARS,
                start_error: error.filter(|_| !joining),
                join_error: error.filter(|_| joining),
                focus_start: !joining && form.identity.is_none(),
                focus_code: joining,
            },
        )
    }

    /// A refused form, shown again on the page it came from: a room link's join
    /// page if it came from one (and names a room), else the home page.
    pub fn refused_form(&self, form: &FilledForm) -> Result<String, RenderFailed> {
        match (form.origin, RoomCode::parse(&form.code)) {
            (FormOrigin::RoomLink { private }, Ok(code)) => self.join(&JoinPage {
                code,
                name: &form.name,
                identity: form.identity.as_deref(),
                private,
                error: form.error.as_deref(),
            }),
            _ => self.home(form),
        }
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
            /// Joining needs a passphrase: a badge says so.
            private: bool,
            /// Which room under this code the page shows: its stream and polls
            /// say so, and are told to reset if the code is another room's by then.
            epoch: u64,
        }
        let today = time::OffsetDateTime::now_utc().date().to_string();
        let history = room
            .history
            .iter()
            .map(|e| EventView::new(e, &room.me, &today))
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
                private: room.private,
                epoch: room.epoch,
            },
        )
    }

    /// For someone who followed a room link without being a member yet: Join is
    /// the only action. The cursor starts in the name field, or in the
    /// passphrase field of a private room when the name is known already.
    pub fn join(&self, page: &JoinPage) -> Result<String, RenderFailed> {
        #[derive(Serialize)]
        struct Join<'a> {
            title: String,
            code: RoomCode,
            name: &'a str,
            identity: Option<&'a str>,
            private: bool,
            error: Option<&'a str>,
            max_name: usize,
            focus_name: bool,
            focus_passphrase: bool,
            focus_button: bool,
        }
        let name_known = page.identity.is_some() || !page.name.is_empty();
        let focus_passphrase = page.private && name_known;
        let focus_name = page.identity.is_none() && !focus_passphrase;
        self.render(
            JOIN,
            &Join {
                title: format!("Join room {}", page.code),
                code: page.code,
                name: page.name,
                identity: page.identity,
                private: page.private,
                error: page.error,
                max_name: MAX_NAME_CHARS,
                focus_name,
                focus_passphrase,
                focus_button: !focus_name && !focus_passphrase,
            },
        )
    }

    /// Asks the owner whether to remove `name`, for a browser without the
    /// script (the script asks on the room page itself).
    pub fn confirm_remove(
        &self,
        code: RoomCode,
        name: &DisplayName,
    ) -> Result<String, RenderFailed> {
        #[derive(Serialize)]
        struct Confirm<'a> {
            title: String,
            code: RoomCode,
            name: &'a DisplayName,
        }
        let title = format!("Remove {name}?");
        self.render(CONFIRM_REMOVE, &Confirm { title, code, name })
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
            private: false,
            epoch: 7,
        };
        let code = RoomCode::parse("ABCD").expect("a valid code");
        Pages::new(&Assets::new())
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
    fn addresses_in_messages_are_links_and_nothing_else_is_markup() {
        let typed = "see https://a.example/?q=<b>&x=\"1\"). <b>x</b> javascript:alert(1)\nbye";
        let page = room_page(
            vec![],
            vec![Event::new(1, EventKind::Message, &name("bob"), Some(typed))],
        );
        let expected = "<p class=\"text\" dir=\"auto\">see <a href=\"https://a.example/?q&#x3D;&lt;b&gt;&amp;x&#x3D;&quot;1\" \
            rel=\"noopener noreferrer nofollow ugc\" target=\"_blank\">https://a.example/?q&#x3D;&lt;b&gt;&amp;x&#x3D;&quot;1</a>&quot;). \
            &lt;b&gt;x&lt;/b&gt; javascript:alert(1)\nbye</p>";
        assert!(page.contains(expected), "{page}");
    }

    #[test]
    fn times_say_the_date_unless_the_day_is_today() {
        let at = "2026-11-26T05:52:51.125965744Z";
        assert_eq!(clock(at, "2026-11-26"), "05:52");
        assert_eq!(clock(at, "2026-11-27"), "2026-11-26 05:52");
        assert_eq!(clock("", "2026-11-27"), "");
        // An event of now is of today, as the page works it out.
        let page = room_page(
            vec![],
            vec![Event::new(1, EventKind::Message, &name("bob"), Some("hi"))],
        );
        let time = &page[page.find("<time").expect("a time")..];
        let clock =
            &time[time.find('>').expect("its text") + 1..time.find("</time>").expect("its end")];
        assert_eq!(clock.len(), 5, "{clock}");
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
