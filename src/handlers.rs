//! What each route does, one `async fn` per route, named like it.
//!
//! Handlers parse what people typed into the types of `input`, ask [`Rooms`] to act,
//! and build the reply; refusals are returned as [`AppError`] and shaped in `error`.

use serde::Deserialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::app::AppState;
use crate::error::AppError;
use crate::http::Format;
use crate::input::{DisplayName, MessageText, RoomCode};
use crate::pages::HomeForm;
use crate::rooms::{RoomError, Rooms};
use crate::session::Session;
use crate::{assets, events};

/// `POST /rooms`.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
}

/// `POST /join`.
#[derive(Debug, Deserialize)]
pub struct JoinForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    code: String,
}

/// `POST /rooms/{CODE}/messages`.
#[derive(Debug, Deserialize)]
pub struct MessageForm {
    #[serde(default)]
    message: String,
}

/// `GET /rooms/{CODE}/events?after=ID`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
}

pub async fn home(session: Option<Session>, state: AppState) -> Result<Response, Rejection> {
    let form = HomeForm {
        name: session.and_then(|s| s.name).unwrap_or_default(),
        ..HomeForm::default()
    };
    let page = state.pages.home(&form).map_err(|_| AppError::Internal)?;
    Ok(warp::reply::html(page).into_response())
}

pub async fn create_room(
    session: Option<Session>,
    form: CreateForm,
    state: AppState,
) -> Result<Response, Rejection> {
    let name = DisplayName::parse(&form.name)
        .map_err(|e| AppError::form(StatusCode::BAD_REQUEST, e.0, &form.name, ""))?;
    let mut session = session.unwrap_or_default();
    let code = state
        .rooms
        .create(&session.id, name.clone())
        .map_err(|_| AppError::NoFreeCode)?;
    session.name = Some(name.to_string());
    Ok(see_other(
        &format!("/rooms/{code}"),
        Some(&state.cookies.set_cookie(&session)),
    ))
}

pub async fn join_room(
    session: Option<Session>,
    form: JoinForm,
    state: AppState,
) -> Result<Response, Rejection> {
    let refuse = |status, message: String| AppError::form(status, message, &form.name, &form.code);
    let name = DisplayName::parse(&form.name).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.0))?;
    let code = RoomCode::parse(&form.code).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.0))?;
    let mut session = session.unwrap_or_default();
    state
        .rooms
        .join(&code, &session.id, name.clone())
        .map_err(|error| match error {
            RoomError::NotFound => refuse(
                StatusCode::NOT_FOUND,
                format!("There is no room {code}. Check the code, or create a room."),
            ),
            RoomError::NameTaken => refuse(
                StatusCode::CONFLICT,
                format!(
                    "Someone in room {code} is already called {name}. Please pick another name."
                ),
            ),
            other => refusal(code)(other),
        })?;
    session.name = Some(name.to_string());
    Ok(see_other(
        &format!("/rooms/{code}"),
        Some(&state.cookies.set_cookie(&session)),
    ))
}

pub async fn room_page(
    code: String,
    session: Option<Session>,
    state: AppState,
) -> Result<Response, Rejection> {
    let code = parse_code(&code)?;
    let snapshot = match &session {
        Some(session) => state.rooms.snapshot(&code, &session.id),
        None => Err(RoomError::NotMember),
    };
    let page = match snapshot {
        Ok(room) => state
            .pages
            .room(code, &room, state.limits.max_message_chars),
        // A shared link: whoever follows it may join.
        Err(RoomError::NotMember) if state.rooms.exists(&code) => {
            let name = session.and_then(|s| s.name).unwrap_or_default();
            state.pages.join(code, &name)
        }
        Err(_) => return Err(AppError::RoomNotFound.into()),
    };
    let page = page.map_err(|_| AppError::Internal)?;
    Ok(warp::reply::html(page).into_response())
}

pub async fn events(
    code: String,
    session: Option<Session>,
    last_event_id: Option<String>,
    query: EventsQuery,
    state: AppState,
) -> Result<Response, Rejection> {
    let code = parse_code(&code)?;
    let session = member_session(&state.rooms, code, session)?;
    let after = events::resume_point(last_event_id.as_deref(), query.after.as_deref())
        .map_err(AppError::BadRequest)?;
    let subscription = state
        .rooms
        .subscribe(&code, &session.id, after)
        .map_err(refusal(code))?;
    Ok(events::response(
        subscription,
        state.limits.keepalive,
        state.shutdown.clone(),
    ))
}

pub async fn post_message(
    code: String,
    session: Option<Session>,
    format: Format,
    form: MessageForm,
    state: AppState,
) -> Result<Response, Rejection> {
    let code = parse_code(&code)?;
    let session = member_session(&state.rooms, code, session)?;
    let text = MessageText::parse(&form.message, state.limits.max_message_chars as usize)
        .map_err(|e| AppError::BadMessage { code, reason: e.0 })?;
    state
        .rooms
        .publish_message(&code, &session.id, text)
        .map_err(refusal(code))?;
    Ok(done(format, &format!("/rooms/{code}")))
}

pub async fn leave_room(
    code: String,
    session: Option<Session>,
    format: Format,
    state: AppState,
) -> Result<Response, Rejection> {
    let code = parse_code(&code)?;
    let session = member_session(&state.rooms, code, session)?;
    state
        .rooms
        .leave(&code, &session.id)
        .map_err(refusal(code))?;
    Ok(done(format, "/"))
}

pub async fn members(
    code: String,
    session: Option<Session>,
    state: AppState,
) -> Result<Response, Rejection> {
    let code = parse_code(&code)?;
    let session = member_session(&state.rooms, code, session)?;
    let present = state
        .rooms
        .present(&code, &session.id)
        .map_err(refusal(code))?;
    Ok(warp::reply::json(&present).into_response())
}

pub async fn asset(name: String, if_none_match: Option<String>) -> Result<Response, Rejection> {
    assets::response(&name, if_none_match.as_deref()).ok_or_else(warp::reject::not_found)
}

/// A code in a path that is not a code names no room.
fn parse_code(raw: &str) -> Result<RoomCode, AppError> {
    RoomCode::parse(raw).map_err(|_| AppError::RoomNotFound)
}

/// The session, if it belongs to a member of the room: `404` for no such room, else
/// `403` for no session or a non-member. Checked before anything the request
/// carries is looked at, so a stranger learns nothing from it.
fn member_session(
    rooms: &Rooms,
    code: RoomCode,
    session: Option<Session>,
) -> Result<Session, AppError> {
    if !rooms.exists(&code) {
        return Err(AppError::RoomNotFound);
    }
    let session = session.ok_or(AppError::NotMember(code))?;
    rooms
        .check_member(&code, &session.id)
        .map_err(refusal(code))?;
    Ok(session)
}

/// How a refusal from the room store reads for a request about room `code`.
fn refusal(code: RoomCode) -> impl Fn(RoomError) -> AppError {
    move |error| match error {
        RoomError::NotFound => AppError::RoomNotFound,
        RoomError::NotMember => AppError::NotMember(code),
        RoomError::NoFreeCode => AppError::NoFreeCode,
        RoomError::NameTaken => AppError::form(
            StatusCode::CONFLICT,
            format!("That name is taken in room {code}."),
            "",
            code.as_str(),
        ),
    }
}

/// The reply to a post that worked: `204` for scripts and curl; for a plain HTML
/// form, `303` to `next`, so the form works without JavaScript.
fn done(format: Format, next: &str) -> Response {
    match format {
        Format::Html => see_other(next, None),
        Format::Text => {
            warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response()
        }
    }
}

/// `303 See Other`, optionally setting the session cookie.
fn see_other(location: &str, set_cookie: Option<&str>) -> Response {
    let mut response =
        warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}
