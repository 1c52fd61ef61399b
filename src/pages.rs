//! HTML pages: the Handlebars views, compiled into the binary, and what each shows.
//!
//! Every value goes through Handlebars' HTML escaping (no triple-stash anywhere), so
//! names and messages are shown as the text people typed. Rendering errors are
//! logged and answered with a generic page, never shown to the browser.

use std::sync::Arc;

use handlebars::Handlebars;
use serde::Serialize;

use crate::input::{DisplayName, MAX_NAME_CHARS, RoomCode};
use crate::rooms::{Event, EventKind, RoomSnapshot};

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
}

/// A page that explains a refusal and offers a way on.
#[derive(Debug, Serialize)]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
    pub link_href: String,
    pub link_text: String,
}

#[derive(Serialize)]
struct EventView<'a> {
    id: u64,
    is_message: bool,
    mine: bool,
    name: &'a str,
    text: Option<&'a str>,
    notice: String,
    at: &'a str,
    /// `HH:MM` UTC, until the script shows the reader's local time.
    clock: &'a str,
}

impl<'a> EventView<'a> {
    fn new(event: &'a Event, me: &DisplayName) -> Self {
        let name = event.name.as_str();
        let notice = match event.kind {
            EventKind::Join => format!("{name} has entered the room"),
            EventKind::Leave => format!("{name} has left the room"),
            EventKind::Message => String::new(),
        };
        Self {
            id: event.id,
            is_message: event.kind == EventKind::Message,
            mine: event.kind == EventKind::Message && event.name == *me,
            name,
            text: event.text.as_deref(),
            notice,
            at: &event.at,
            clock: event.at.get(11..16).unwrap_or(""),
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
            present: &'a [DisplayName],
            history: Vec<EventView<'a>>,
            last_id: u64,
            max_message_chars: u32,
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
            },
        )
    }

    /// For someone who followed a room link without being a member yet.
    pub fn join(&self, code: RoomCode, name: &str) -> Result<String, RenderFailed> {
        #[derive(Serialize)]
        struct Join<'a> {
            title: String,
            code: RoomCode,
            name: &'a str,
            max_name: usize,
        }
        let title = format!("Join room {code}");
        self.render(
            JOIN,
            &Join {
                title,
                code,
                name,
                max_name: MAX_NAME_CHARS,
            },
        )
    }

    pub fn error(&self, page: &ErrorPage) -> Result<String, RenderFailed> {
        self.render(ERROR, page)
    }
}
