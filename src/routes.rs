//! The routing table: one function per route, composed in [`routes`], and the one
//! place where every rejection becomes the response a person sees.

use std::convert::Infallible;

use warp::http::{HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::error::{self, AppError, MAX_FORM_BYTES};
use crate::handlers;
use crate::http::{Format, read_form};
use crate::state::AppState;

/// Content-Security-Policy for every response: our own scripts, styles and
/// connections only, no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Every route of the app, for our own host names only, with errors rendered and
/// security headers added.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let pages = state.pages.clone();
    let app = home(&state)
        .or(create_room(&state))
        .unify()
        .or(join_room(&state))
        .unify()
        .or(room_page(&state))
        .unify()
        .or(events(&state))
        .unify()
        .or(post_message(&state))
        .unify()
        .or(leave_room(&state))
        .unify()
        .or(members(&state))
        .unify()
        .or(asset())
        .unify();
    let outcome = state
        .site
        .known_host()
        .and(app)
        .map(Ok)
        .or_else(|rejection| async move { Ok::<_, Rejection>((Err(rejection),)) });
    Format::filter()
        .and(outcome)
        .map(move |format, outcome: Result<Response, Rejection>| {
            let mut response =
                outcome.unwrap_or_else(|rejection| error::render(&rejection, format, &pages));
            add_security_headers(&mut response);
            response
        })
}

fn home(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path::end()
        .and(warp::get())
        .and(state.cookies.filter())
        .and(with_state(state))
        .and_then(handlers::home)
}

fn create_room(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms")
        .and(warp::post())
        .and(state.site.from_this_site())
        .and(state.site.client())
        .and(state.cookies.filter())
        .and(form())
        .and(with_state(state))
        .and_then(handlers::create_room)
}

fn join_room(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("join")
        .and(warp::post())
        .and(state.site.from_this_site())
        .and(state.site.client())
        .and(state.cookies.filter())
        .and(form())
        .and(with_state(state))
        .and_then(handlers::join_room)
}

fn room_page(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String)
        .and(warp::get())
        .and(state.site.client())
        .and(state.cookies.filter())
        .and(with_state(state))
        .and_then(handlers::room_page)
}

fn events(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "events")
        .and(warp::get())
        .and(state.site.client())
        .and(state.cookies.filter())
        .and(warp::header::optional::<String>("last-event-id"))
        .and(warp::query::<handlers::EventsQuery>())
        .and(with_state(state))
        .and_then(handlers::events)
}

fn post_message(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "messages")
        .and(warp::post())
        .and(state.site.from_this_site())
        .and(state.site.client())
        .and(state.cookies.filter())
        .and(Format::filter())
        .and(form())
        .and(with_state(state))
        .and_then(handlers::post_message)
}

fn leave_room(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "leave")
        .and(warp::post())
        .and(state.site.from_this_site())
        .and(state.site.client())
        .and(state.cookies.filter())
        .and(Format::filter())
        .and(with_state(state))
        .and_then(handlers::leave_room)
}

fn members(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "members")
        .and(warp::get())
        .and(state.site.client())
        .and(state.cookies.filter())
        .and(with_state(state))
        .and_then(handlers::members)
}

fn asset() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("assets" / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("if-none-match"))
        .and_then(handlers::asset)
}

fn with_state(
    state: &AppState,
) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone + use<> {
    let state = state.clone();
    warp::any().map(move || state.clone())
}

/// A URL-encoded form body of at most [`MAX_FORM_BYTES`], read strictly: text that
/// is not UTF-8, or a field given twice, is refused rather than guessed at.
fn form<T>() -> impl Filter<Extract = (T,), Error = Rejection> + Clone
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    warp::body::content_length_limit(MAX_FORM_BYTES)
        .and(
            warp::header::optional::<String>("content-type")
                .or_else(|_| async { Ok::<_, Rejection>((Some(String::new()),)) }),
        )
        .and(warp::body::bytes())
        .and_then(
            |content_type: Option<String>, body: bytes::Bytes| async move {
                if let Some(content_type) = content_type {
                    let essence = content_type.split(';').next().unwrap_or("").trim();
                    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                        return Err(warp::reject::custom(AppError::NotAForm));
                    }
                }
                read_form(&body)
                    .map_err(|reason| warp::reject::custom(AppError::BadRequest(reason)))
            },
        )
}

fn add_security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    let defaults = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in defaults {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
}
