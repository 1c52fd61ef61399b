//! The routing table: one function per route, composed in [`routes`], and the one
//! place where every rejection becomes the response a person sees.

use std::convert::Infallible;
use std::pin::pin;
use std::time::Duration;

use bytes::Buf;
use futures_util::{Stream, StreamExt};

use warp::filters::path::FullPath;
use warp::http::{HeaderValue, header};
use warp::reject::MethodNotAllowed;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::access;
use crate::client::{Client, Peer};
use crate::error::{self, AppError};
use crate::handlers;
use crate::http::{Format, keep_private, read_form};
use crate::input::DisplayName;
use crate::metrics::{self, Metrics};
use crate::route_table;
use crate::session::Session;
use crate::state::AppState;
use crate::target;

/// Content-Security-Policy for every response: our own scripts, styles and
/// connections only, no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Every route of the app, for our own host names only, with errors rendered and
/// security headers added.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let pages = state.pages.clone();
    let metrics = state.metrics.clone();
    let max_form_bytes = state.settings.max_form_bytes;
    // Every route but the assets answers for the person who asks (the session or
    // the signed-in name decides what it says), so none of it may be cached.
    let personal = home(&state)
        .or(create_room(&state))
        .unify()
        .or(join_room(&state))
        .unify()
        .or(room_page(&state))
        .unify()
        .or(events(&state))
        .unify()
        .or(poll(&state))
        .unify()
        .or(post_message(&state))
        .unify()
        .or(leave_room(&state))
        .unify()
        .or(lock_room(&state, true))
        .unify()
        .or(lock_room(&state, false))
        .unify()
        .or(remove_member(&state))
        .unify()
        .or(members(&state))
        .unify()
        .map(keep_private);
    // The health check and the assets answer whatever name they are asked by: a
    // load balancer may use an address or a name of its own, the assets are the
    // same for everyone (and the page refusing a foreign name needs its style),
    // and neither tells anybody anything.
    // A request whose host cannot be told is refused, and one for a resource
    // under a second URL sent to its one URL, before any route runs (see
    // `target.rs`).
    let outcome = target::addressed()
        .and(
            target::moved()
                .or(healthz(&state))
                .unify()
                .or(asset(&state))
                .unify()
                .or(state
                    .site
                    .known_host()
                    .and(state.site.signed_in())
                    .and(personal))
                .unify(),
        )
        .map(Ok)
        .or_else(|rejection| async move { Ok::<_, Rejection>((Err(rejection),)) });
    let answered = Format::filter()
        .and(warp::ext::optional::<Peer>())
        .and(warp::path::full())
        .and(outcome)
        .map(
            move |format,
                  peer: Option<Peer>,
                  path: FullPath,
                  outcome: Result<Response, Rejection>| {
                // A refusal may echo what was typed, or name the room: private too.
                let mut response = outcome.unwrap_or_else(|rejection| {
                    count_refusal(&metrics, &rejection);
                    let mut response =
                        keep_private(error::render(&rejection, format, &pages, max_form_bytes));
                    if rejection.find::<MethodNotAllowed>().is_some() {
                        add_allow(&mut response, path.as_str());
                    }
                    response
                });
                add_security_headers(&mut response, peer.is_some_and(|p| p.tls));
                response
            },
        );
    access::logged(state.site.client(), answered)
}

/// Adds `Allow` to a `405` for `path`: the methods its route answers.
fn add_allow(response: &mut Response, path: &str) {
    if let Some(route) = route_table::route_of(path) {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(route.methods));
    }
}

/// Counts the refusals an operator watches: limits, foreign hosts, other sites.
fn count_refusal(metrics: &Metrics, rejection: &Rejection) {
    let reason = match rejection.find::<AppError>() {
        Some(AppError::Limited(refused)) => refused.limit.name(),
        Some(AppError::UnknownHost) => metrics::UNKNOWN_HOST,
        Some(AppError::CrossOrigin) => metrics::CROSS_ORIGIN,
        _ => return,
    };
    metrics.refused(reason);
}

/// `GET /healthz`: `200` while serving, `503` once shutdown began.
fn healthz(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("healthz")
        .and(get_or_head())
        .and(with_state(state))
        .and_then(handlers::healthz)
}

/// `GET`, and `HEAD` wherever `GET` works (hyper sends no body for `HEAD`).
fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

fn home(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path::end()
        .and(get_or_head())
        .and(state.site.identity())
        .and(session(state))
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
        .and(state.site.identity())
        .and(session(state))
        .and(form(state))
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
        .and(state.site.identity())
        .and(session(state))
        .and(form(state))
        .and(with_state(state))
        .and_then(handlers::join_room)
}

fn room_page(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String)
        .and(get_or_head())
        .and(state.site.client())
        .and(state.site.identity())
        .and(session(state))
        .and(with_state(state))
        .and_then(handlers::room_page)
}

fn events(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "events")
        .and(reading(state))
        .and_then(handlers::events)
}

fn poll(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "poll")
        .and(reading(state))
        .and_then(handlers::poll)
}

/// What a request to read a room's events carries, for streams and polls alike.
fn reading(
    state: &AppState,
) -> impl Filter<
    Extract = (
        Client,
        Option<Session>,
        Option<String>,
        handlers::EventsQuery,
        AppState,
    ),
    Error = Rejection,
> + Clone
+ use<> {
    get_or_head()
        .and(state.site.client())
        .and(session(state))
        .and(warp::header::optional::<String>("last-event-id"))
        .and(warp::query::<handlers::EventsQuery>())
        .and(with_state(state))
}

fn post_message(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "messages")
        .and(warp::post())
        .and(state.site.from_this_site())
        .and(state.site.client())
        .and(session(state))
        .and(Format::filter())
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(form(state))
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
        .and(session(state))
        .and(Format::filter())
        .and(with_state(state))
        .and_then(handlers::leave_room)
}

/// `POST /rooms/{CODE}/lock` (`locked`), or `/unlock`.
fn lock_room(
    state: &AppState,
    locked: bool,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    let action = if locked { "lock" } else { "unlock" };
    warp::path("rooms")
        .and(warp::path::param::<String>())
        .and(warp::path(action))
        .and(warp::path::end())
        .and(warp::post())
        .and(state.site.from_this_site())
        .map(move |code: String| (code, locked))
        .untuple_one()
        .and(state.site.client())
        .and(session(state))
        .and(Format::filter())
        .and(with_state(state))
        .and_then(handlers::set_locked)
}

fn remove_member(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "remove")
        .and(warp::post())
        .and(state.site.from_this_site())
        .and(state.site.client())
        .and(session(state))
        .and(Format::filter())
        .and(form(state))
        .and(with_state(state))
        .and_then(handlers::remove_member)
}

/// The session cookie, if it is this person's: with names from a sign-in proxy,
/// a session made for another identity (a shared computer, a copied cookie)
/// counts for nothing.
fn session(
    state: &AppState,
) -> impl Filter<Extract = (Option<Session>,), Error = Rejection> + Clone + use<> {
    state.site.identity().and(state.cookies.filter()).map(
        |identity: Option<DisplayName>, session: Option<Session>| {
            session.filter(|session| {
                identity
                    .as_ref()
                    .is_none_or(|name| session.name.as_deref() == Some(name.as_str()))
            })
        },
    )
}

fn members(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "members")
        .and(get_or_head())
        .and(state.site.client())
        .and(session(state))
        .and(with_state(state))
        .and_then(handlers::members)
}

fn asset(
    state: &AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("assets" / String)
        .and(get_or_head())
        .and(warp::header::headers_cloned())
        .and(with_state(state))
        .and_then(handlers::asset)
}

fn with_state(
    state: &AppState,
) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone + use<> {
    let state = state.clone();
    warp::any().map(move || state.clone())
}

/// A URL-encoded form body of at most the form limit, arriving within the
/// request timeout, read strictly: text that is not UTF-8, or a field given
/// twice, is refused rather than guessed at.
fn form<T>(state: &AppState) -> impl Filter<Extract = (T,), Error = Rejection> + Clone + use<T>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    let within = state.settings.request_timeout;
    not_chunked()
        .and(warp::body::content_length_limit(
            state.settings.max_form_bytes,
        ))
        .and(
            warp::header::optional::<String>("content-type")
                .or_else(|_| async { Ok::<_, Rejection>((Some(String::new()),)) }),
        )
        .and(warp::body::stream())
        .and_then(move |content_type: Option<String>, body| async move {
            if let Some(content_type) = content_type {
                let essence = content_type.split(';').next().unwrap_or("").trim();
                if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                    return Err(warp::reject::custom(AppError::NotAForm));
                }
            }
            let body = read_body(body, within).await?;
            read_form(&body).map_err(|reason| warp::reject::custom(AppError::BadRequest(reason)))
        })
}

/// Refuses a body sent with `Transfer-Encoding` (`411`, saying so): a form is
/// read up to the `Content-Length` it announces, and a request with both is one
/// a proxy may frame differently from us (RFC 9112 §6.3), so not worth reading.
fn not_chunked() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("transfer-encoding")
        .or_else(|_| async { Ok::<_, Rejection>((Some(String::new()),)) })
        .and_then(|encoding: Option<String>| async move {
            match encoding {
                Some(_) => Err(warp::reject::custom(AppError::ChunkedForm)),
                None => Ok(()),
            }
        })
        .untuple_one()
}

/// The whole body, or why not: it stopped before its end, or took too long.
async fn read_body(
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
    within: Duration,
) -> Result<Vec<u8>, Rejection> {
    let collect = async {
        let mut body = pin!(body);
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk.map_err(|error| {
                tracing::debug!(%error, "request body ended early");
                AppError::IncompleteBody
            })?;
            while chunk.has_remaining() {
                let part = chunk.chunk();
                bytes.extend_from_slice(part);
                let taken = part.len();
                chunk.advance(taken);
            }
        }
        Ok::<_, AppError>(bytes)
    };
    match tokio::time::timeout(within, collect).await {
        Ok(outcome) => outcome.map_err(warp::reject::custom),
        Err(_) => Err(warp::reject::custom(AppError::SlowBody)),
    }
}

/// How long browsers keep to HTTPS once they saw it here: a year.
const HSTS: &str = "max-age=31536000";

/// The headers that keep every response from being misused: HSTS over TLS and
/// `nosniff` on all; a document's policy (CSP, framing, referrer) on everything
/// but event streams, which no browser renders. hyper keeps a connection's last
/// response header map, cleared but not shrunk, for the connection's life: a
/// stream's five headers at most fit the map's first allocation (six), where
/// eight grew it and cost about a kilobyte more per idle stream
/// (`chat-bench --only idle`).
fn add_security_headers(response: &mut Response, tls: bool) {
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
    let headers = response.headers_mut();
    if tls {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static(HSTS));
    }
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    if is_stream {
        return;
    }
    let document = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in document {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
}
