//! Every refusal the server gives, and how it looks: one place maps each error to
//! its status and to a page (browsers) or a line of text (curl and scripts).

use warp::http::{HeaderValue, StatusCode, header};
use warp::reject::{
    LengthRequired, MethodNotAllowed, PayloadTooLarge, Reject, UnsupportedMediaType,
};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::http::Format;
use crate::input::RoomCode;
use crate::limits::Refused;
use crate::pages::{ErrorPage, FilledForm, FormOrigin, NoticePage, Pages};

/// Smallest limit on a form body, in bytes; see [`max_form_bytes`].
const MIN_FORM_BYTES: u64 = 16 * 1024;

/// Largest form body accepted, in bytes: enough for a message of `max_chars`
/// characters as a browser sends it (each character up to 4 UTF-8 bytes, each
/// byte percent-encoded as 3), and a little more for the field names.
pub fn max_form_bytes(max_chars: u32) -> u64 {
    (u64::from(max_chars) * 12 + 1024).max(MIN_FORM_BYTES)
}

const FORM_TYPE: &str =
    "Send the form as application/x-www-form-urlencoded (what curl -d and HTML forms send).";

/// Most characters of what a client sent that a refusal's message quotes back.
const MAX_ECHO_CHARS: usize = 32;

/// Most characters of a refused form's field shown again in the form, to be
/// corrected there: twice the longest name, so an over-long one can be shortened.
const MAX_FORM_ECHO_CHARS: usize = 64;

/// At most [`MAX_ECHO_CHARS`] of `sent`, marked when cut: a refusal never
/// sends a flood back.
pub fn echo(sent: &str) -> String {
    let kept = prefix(sent, MAX_ECHO_CHARS);
    match kept.len() < sent.len() {
        true => format!("{kept}…"),
        false => kept.to_owned(),
    }
}

/// The first `chars` characters of `text`.
fn prefix(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// A request the server refuses, with what the person asking needs to know.
#[derive(Debug)]
pub enum AppError {
    /// A form was refused; it is shown again with what was typed, on the page
    /// it came from (the home page, or a room link's join page).
    Form {
        status: StatusCode,
        form: FilledForm,
    },
    /// No open room has this code (or the code is not a code at all).
    RoomNotFound,
    /// The session is not a member of the room.
    NotMember(RoomCode),
    /// A post whose `Origin` is another site.
    CrossOrigin,
    /// A message that breaks the rules; the page offers the way back to the room.
    BadMessage { code: RoomCode, reason: String },
    /// Any other malformed request.
    BadRequest(String),
    /// Every room code is in use.
    NoFreeCode,
    /// A post whose body is not a URL-encoded form.
    NotAForm,
    /// A form sent with `Transfer-Encoding` (chunked), with or without a
    /// `Content-Length` beside it: hyper drops the length then, so the two
    /// cannot be told apart, and a form is read up to the length it announces.
    ChunkedForm,
    /// A body that ended before its `Content-Length` (the client went away).
    IncompleteBody,
    /// A body that did not arrive within the request timeout.
    SlowBody,
    /// A request for a host name that is not ours (DNS rebinding, a stray proxy).
    UnknownHost,
    /// A limit refused the request: `429`, or `503` when the server is full.
    Limited(Refused),
    /// Names come from a sign-in proxy, and the request did not pass one.
    NotSignedIn,
    /// The sign-in proxy's name for the person cannot be a name here.
    BadIdentity { reason: String },
    /// Only the room's owner may do this.
    NotOwner(RoomCode),
    /// The owner removed this member from the room.
    Removed(RoomCode),
    /// The shared room store (Redis) cannot be reached. Usually nothing was
    /// done; if Redis went away while answering, it may have been: a message
    /// sent again under its idempotency key is still stored once.
    Unavailable,
    /// Something went wrong on our side; already logged.
    Internal,
}

impl Reject for AppError {}

impl AppError {
    pub fn form(
        status: StatusCode,
        message: impl Into<String>,
        name: &str,
        code: &str,
        origin: FormOrigin,
    ) -> Self {
        Self::Form {
            status,
            form: FilledForm {
                // Unmarked: what is shown goes back into the form's fields.
                name: prefix(name, MAX_FORM_ECHO_CHARS).to_owned(),
                code: prefix(code, MAX_FORM_ECHO_CHARS).to_owned(),
                error: Some(message.into()),
                identity: None,
                origin,
            },
        }
    }

    /// With names from a sign-in proxy, a form shown again has no name field:
    /// it says who the person is signed in as.
    pub fn signed_in_as(mut self, identity: Option<&crate::input::DisplayName>) -> Self {
        if let Self::Form { form, .. } = &mut self {
            form.identity = identity.map(ToString::to_string);
        }
        self
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Form { status, .. } => *status,
            Self::RoomNotFound => StatusCode::NOT_FOUND,
            Self::NotMember(_) | Self::CrossOrigin => StatusCode::FORBIDDEN,
            Self::NotSignedIn => StatusCode::UNAUTHORIZED,
            Self::BadIdentity { .. } | Self::NotOwner(_) | Self::Removed(_) => {
                StatusCode::FORBIDDEN
            }
            Self::BadMessage { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NoFreeCode | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnknownHost => StatusCode::MISDIRECTED_REQUEST,
            Self::NotAForm => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ChunkedForm => StatusCode::LENGTH_REQUIRED,
            Self::IncompleteBody => StatusCode::BAD_REQUEST,
            Self::SlowBody => StatusCode::REQUEST_TIMEOUT,
            Self::Limited(refused) => limit_status(refused),
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Form { form, .. } => form.error.clone().unwrap_or_default(),
            Self::RoomNotFound => {
                "There is no room with that code. It may have closed when everyone left.".into()
            }
            Self::NotMember(code) => format!("You are not in room {code}: join it first."),
            Self::CrossOrigin => "Posts from other sites are refused.".into(),
            Self::BadMessage { reason, .. } => reason.clone(),
            Self::BadRequest(reason) => reason.clone(),
            Self::NoFreeCode => "Every room code is in use right now; try again soon.".into(),
            Self::NotAForm => FORM_TYPE.into(),
            Self::ChunkedForm => {
                "A form post must come with a Content-Length alone: Transfer-Encoding (a chunked body) is not accepted, with or without a Content-Length.".into()
            }
            Self::IncompleteBody => "The request body ended before all of it arrived.".into(),
            Self::SlowBody => "The request body did not arrive in time.".into(),
            Self::UnknownHost => format!("{WRONG_ADDRESS} {ASK_FOR_THE_LINK}"),
            Self::Limited(refused) => refused.limit.explain().into(),
            Self::NotSignedIn => {
                "Sign in first: this server takes names from the sign-in in front of it.".into()
            }
            Self::BadIdentity { reason } => {
                format!("Your sign-in name cannot be used as a name here. {reason}")
            }
            Self::NotOwner(code) => format!("Only the owner of room {code} can do that."),
            Self::Removed(code) => removed_from(*code),
            Self::Unavailable => {
                "The chat cannot reach its store for a moment: try again in a few seconds (a message sent again with the same idempotency key is stored once).".into()
            }
            Self::Internal => "Something went wrong on our side; please try again.".into(),
        }
    }

    fn page(&self) -> ErrorPage {
        let (title, link_href, link_text) = match self {
            Self::RoomNotFound => ("No such room", "/".to_owned(), "Start or join a room"),
            Self::NotMember(code) => ("Join first", format!("/rooms/{code}"), "Join the room"),
            Self::NotOwner(code) => ("Owners only", format!("/rooms/{code}"), "Back to the room"),
            Self::Removed(_) => ("Removed", "/".to_owned(), "Home"),
            Self::BadMessage { code, .. } => (
                "Message not sent",
                format!("/rooms/{code}"),
                "Back to the room",
            ),
            _ => ("Sorry", "/".to_owned(), "Home"),
        };
        ErrorPage {
            title: title.to_owned(),
            message: self.message(),
            link_href,
            link_text: link_text.to_owned(),
        }
    }

    /// The response: a page for browsers, one line of text otherwise.
    pub fn to_response(&self, format: Format, pages: &Pages) -> Response {
        let status = self.status();
        let html = match (self, format) {
            (_, Format::Text) => None,
            (Self::Form { form, .. }, Format::Html) => pages.refused_form(form).ok(),
            (Self::UnknownHost, Format::Html) => pages.notice(&wrong_address()).ok(),
            (_, Format::Html) => pages.error(&self.page()).ok(),
        };
        let mut response = match html {
            Some(page) => with_status(warp::reply::html(page), status),
            None => text(status, &self.message()),
        };
        match self {
            Self::Limited(refused) => add_retry_after(&mut response, refused),
            Self::Unavailable => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(UNAVAILABLE_RETRY_SECONDS),
                );
            }
            _ => {}
        }
        response
    }
}

/// What a guest who used a host name we were not told about reads: no operator
/// words (the operator's hint goes to the log; see `client::RefusedHosts`).
const WRONG_ADDRESS: &str = "This chat is not set up for the address you used.";
const ASK_FOR_THE_LINK: &str = "Ask the person who runs it for the right link.";

/// The page for a host name that is not ours. No link: every page of this
/// address would answer the same.
fn wrong_address() -> NoticePage {
    NoticePage {
        title: "Wrong address".to_owned(),
        message: WRONG_ADDRESS.to_owned(),
        advice: ASK_FOR_THE_LINK.to_owned(),
    }
}

/// When to try again while the shared store is unreachable: Redis restarts,
/// and the connection comes back, within a few seconds.
const UNAVAILABLE_RETRY_SECONDS: u64 = 2;

/// What someone the owner removed from room `code` is told, wherever they ask.
pub fn removed_from(code: RoomCode) -> String {
    format!("The owner removed you from room {code}: you cannot rejoin it.")
}

fn limit_status(refused: &Refused) -> StatusCode {
    match refused.limit.server_is_full() {
        true => StatusCode::SERVICE_UNAVAILABLE,
        false => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// `Retry-After` in whole seconds, at least one.
fn add_retry_after(response: &mut Response, refused: &Refused) {
    let seconds = refused.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}

/// The whole answer to a connection refused by a limit, before any route ran.
pub fn refused(refused: Refused) -> Response {
    let mut response = text(limit_status(&refused), refused.limit.explain());
    add_retry_after(&mut response, &refused);
    response
}

fn with_status(reply: impl warp::Reply, status: StatusCode) -> Response {
    warp::reply::with_status(reply, status).into_response()
}

/// A plain-text reply of one line.
pub fn text(status: StatusCode, message: &str) -> Response {
    let mut response = with_status(format!("{message}\n"), status);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Turns any rejection — ours or warp's — into the response the client sees.
/// `max_form_bytes` is the form limit, for the `413` message.
pub fn render(
    rejection: &Rejection,
    format: Format,
    pages: &Pages,
    max_form_bytes: u64,
) -> Response {
    if let Some(error) = rejection.find::<AppError>() {
        return error.to_response(format, pages);
    }
    let (status, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "There is no page here.".to_owned())
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "That method is not allowed here.".to_owned(),
        )
    } else if rejection.find::<PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("A form can be at most {} KiB.", max_form_bytes / 1024),
        )
    } else if rejection.find::<LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "A form post needs a Content-Length header.".to_owned(),
        )
    } else if let Some(error) = rejection.find::<warp::body::BodyDeserializeError>() {
        tracing::debug!(%error, "unreadable form");
        (
            StatusCode::BAD_REQUEST,
            "The form could not be read.".to_owned(),
        )
    } else if rejection.find::<UnsupportedMediaType>().is_some() {
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, FORM_TYPE.to_owned())
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        (
            StatusCode::BAD_REQUEST,
            "The query string could not be read.".to_owned(),
        )
    } else if let Some(error) = rejection.find::<warp::reject::InvalidHeader>() {
        (
            StatusCode::BAD_REQUEST,
            format!("{}.", echo(&error.to_string())),
        )
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Internal.message(),
        )
    };
    match format {
        Format::Html => {
            let page = ErrorPage {
                title: status.canonical_reason().unwrap_or("Error").to_owned(),
                message: message.clone(),
                link_href: "/".to_owned(),
                link_text: "Home".to_owned(),
            };
            match pages.error(&page) {
                Ok(page) => with_status(warp::reply::html(page), status),
                Err(_) => text(status, &message),
            }
        }
        Format::Text => text(status, &message),
    }
}
