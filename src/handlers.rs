//! What each route does, one `async fn` per route, named like it.
//!
//! Handlers parse what people typed into the types of `input`, check the limits,
//! ask [`Rooms`] to act, and build the reply; refusals are returned as
//! [`AppError`] and shaped in `error`.
//!
//! Every request about a room from someone who is not a member of it spends one
//! guess from the client address's budget, whether or not the room exists: so
//! once the budget is spent, a guess that hits looks exactly like one that misses.

use std::time::Duration;

use serde::Deserialize;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::client::Client;
use crate::error::{AppError, removed_from};
use crate::http::Format;
use crate::input::{DisplayName, IdempotencyKey, Invalid, MessageText, RoomCode};
use crate::limits::{Limit, Refused, StreamPlace};
use crate::pages::{FilledForm, FormOrigin, JoinPage};
use crate::passphrase::{HashingFailed, Passphrase};
use crate::rooms::{Joiner, MemberToken, Published, RoomError, Rooms, Subscription};
use crate::session::Session;
use crate::state::AppState;
use crate::{events, poll};

/// Names the stored message's event in the reply to a post.
const EVENT_ID: &str = "event-id";

/// Passes to rooms the session was removed from that its cookie keeps.
const REMOVED_PASSES_KEPT: usize = 4;

/// `POST /rooms`.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    /// Makes the room private; empty: not private.
    #[serde(default)]
    passphrase: String,
    /// No field of the form: read only to refuse it. A code sent here (an old
    /// form, a script) means the person meant to join that room.
    #[serde(default)]
    code: String,
}

/// `POST /join`.
#[derive(Debug, Deserialize)]
pub struct JoinForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    code: String,
    /// Needed for a private room.
    #[serde(default)]
    passphrase: String,
    /// [`ROOM_LINK`] when sent from a room link's join page: a refusal is
    /// shown there again.
    #[serde(default)]
    from: String,
    /// `yes` when that page asked for a passphrase (the room is private), so
    /// that it asks again.
    #[serde(default)]
    private: String,
}

/// What the join page's form sends as `from`.
const ROOM_LINK: &str = "link";

impl JoinForm {
    /// The page this form was sent from.
    fn origin(&self) -> FormOrigin {
        match self.from == ROOM_LINK {
            true => FormOrigin::RoomLink {
                private: self.private == "yes",
            },
            false => FormOrigin::Join,
        }
    }
}

/// `POST /rooms/{CODE}/remove`.
#[derive(Debug, Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    name: String,
    /// `ask`: the room page's own form, which asks the owner first (a page
    /// with the real form); scripts and curl leave it out and remove at once.
    #[serde(default)]
    confirm: String,
}

/// `POST /rooms/{CODE}/messages`.
#[derive(Debug, Deserialize)]
pub struct MessageForm {
    #[serde(default)]
    message: String,
    /// The form's name for this message (the `Idempotency-Key` header wins).
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// `GET /rooms/{CODE}/events?after=ID`, `GET /rooms/{CODE}/poll?after=ID&wait=S`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
    /// Which room under this code the client read (the page says): another
    /// room's client is told to reset.
    epoch: Option<String>,
    /// For a poll: wait at most this many seconds (up to `--poll-wait`); `0`
    /// answers at once, so a client can see at once that polling works.
    wait: Option<String>,
}

impl EventsQuery {
    /// The room the client says it read, if it says.
    fn epoch(&self) -> Result<Option<u64>, AppError> {
        let Some(raw) = self.epoch.as_deref().filter(|raw| !raw.trim().is_empty()) else {
            return Ok(None);
        };
        raw.trim().parse().map(Some).map_err(|_| {
            AppError::BadRequest(format!(
                "epoch is a whole number (the room page's); \"{}\" is not.",
                crate::error::echo(raw)
            ))
        })
    }

    /// How long a poll may wait for news: `wait=` seconds, at most `longest`.
    fn poll_wait(&self, longest: Duration) -> Result<Duration, AppError> {
        let Some(raw) = self.wait.as_deref() else {
            return Ok(longest);
        };
        let seconds: u64 = raw.trim().parse().map_err(|_| {
            AppError::BadRequest(format!(
                "wait is a whole number of seconds; \"{}\" is not.",
                crate::error::echo(raw)
            ))
        })?;
        Ok(Duration::from_secs(seconds).min(longest))
    }
}

pub async fn home(
    identity: Option<DisplayName>,
    session: Option<Session>,
    state: AppState,
) -> Result<Response, Rejection> {
    let form = FilledForm {
        name: session.and_then(|s| s.name).unwrap_or_default(),
        identity: identity.map(|name| name.to_string()),
        ..FilledForm::default()
    };
    let page = state.pages.home(&form).map_err(|_| AppError::Internal)?;
    Ok(warp::reply::html(page).into_response())
}

pub async fn create_room(
    client: Client,
    identity: Option<DisplayName>,
    session: Option<Session>,
    form: CreateForm,
    state: AppState,
) -> Result<Response, Rejection> {
    let refuse = |status, message: String, code: &str, origin| {
        AppError::form(status, message, &form.name, code, origin).signed_in_as(identity.as_ref())
    };
    let typed_code = form.code.trim();
    if !typed_code.is_empty() {
        // Never a new room in place of the one they named: the code goes into
        // the Join form, with the reason beside it.
        let shown = RoomCode::parse(typed_code)
            .map_or_else(|_| crate::error::echo(typed_code), |code| code.to_string());
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "Start room makes a new room and takes no room code. To join room {shown}, use Join (POST /join)."
            ),
            typed_code,
            FormOrigin::Join,
        )
        .into());
    }
    let refuse = |status, message| refuse(status, message, "", FormOrigin::Start);
    let name = name_to_use(identity.as_ref(), &form.name)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, e.0))?;
    let passphrase =
        Passphrase::parse(&form.passphrase).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.0))?;
    let mut session = session.unwrap_or_default();
    room_for_one_more(&state, &mut session).await?;
    state
        .limits
        .create_room(client.key)
        .map_err(AppError::Limited)?;
    let hash = match passphrase {
        Some(passphrase) => Some(
            state
                .hasher
                .hash(passphrase)
                .await
                .map_err(hashing_failed)?,
        ),
        None => None,
    };
    // The membership belongs to a session id no earlier copy of the cookie has.
    session.rotate_id();
    let creator = Joiner {
        name: name.clone(),
        existing: None,
        session: session.id.as_str().to_owned(),
        identified: identity.is_some(),
        passphrase_for: None,
    };
    let (code, token) = state
        .rooms
        .create(creator, hash)
        .await
        .map_err(|error| match error {
            RoomError::TooManyRooms => AppError::Limited(Refused::full(Limit::Rooms)),
            RoomError::HistoryFull => AppError::Limited(Refused::full(Limit::History)),
            RoomError::Unavailable => AppError::Unavailable,
            _ => AppError::NoFreeCode,
        })?;
    session.add_pass(code, token);
    session.name = Some(name.to_string());
    Ok(see_other(
        &format!("/rooms/{code}"),
        Some(&state.cookies.set_cookie(&session)),
    ))
}

/// Joining spends a guess (someone trying codes, or passphrases, gets only so
/// many), unless the session holds a pass for the room already; so does a wrong
/// passphrase, with the join. The guess is spent before the store is asked
/// anything about the code: once the budget is spent, a live code and a dead
/// one are refused alike, after the same work. The passphrase is checked off
/// the runtime before the room is asked, and the room checks that it was
/// checked for it.
pub async fn join_room(
    client: Client,
    identity: Option<DisplayName>,
    session: Option<Session>,
    form: JoinForm,
    state: AppState,
) -> Result<Response, Rejection> {
    let origin = form.origin();
    let refuse = |status, message: String| {
        // A room link whose room has closed has no join page to go back to.
        let origin = match status {
            StatusCode::NOT_FOUND => FormOrigin::Join,
            _ => origin,
        };
        AppError::form(status, message, &form.name, &form.code, origin)
            .signed_in_as(identity.as_ref())
    };
    let name = name_to_use(identity.as_ref(), &form.name)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, e.0))?;
    let code = RoomCode::parse(&form.code).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.0))?;
    let refused = |error| join_refused(code, error, refuse);
    let passphrase =
        Passphrase::parse(&form.passphrase).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.0))?;
    let mut session = session.unwrap_or_default();
    let existing = session.pass(code);
    // A pass is proof the room let this session in once: what became of that
    // membership costs no guess, and someone removed hears so first.
    let already = match existing {
        Some(token) => match state.rooms.check_member(&code, &token).await {
            Ok(()) => true,
            Err(RoomError::Removed) => return Err(refused(RoomError::Removed).into()),
            Err(RoomError::Unavailable) => return Err(AppError::Unavailable.into()),
            Err(_) => false,
        },
        None => false,
    };
    let mut passphrase_for = None;
    if !already {
        let limits = &state.limits;
        limits.guess(client.key).map_err(AppError::Limited)?;
        limits.join(client.key).map_err(AppError::Limited)?;
        if state
            .rooms
            .removed(&code, existing, session.id.as_str())
            .await
            .map_err(refused)?
        {
            return Err(refused(RoomError::Removed).into());
        }
        room_for_one_more(&state, &mut session).await?;
        let private = match state.rooms.passphrase(&code).await {
            Err(RoomError::Unavailable) => return Err(AppError::Unavailable.into()),
            found => found.ok().flatten(),
        };
        if let Some((serial, hash)) = private {
            let Some(passphrase) = passphrase else {
                return Err(refused(RoomError::WrongPassphrase).into());
            };
            let place = limits
                .passphrase_check(code, client.key)
                .map_err(AppError::Limited)?;
            let matches = state.hasher.matches(hash, passphrase).await;
            drop(place);
            match matches.map_err(hashing_failed)? {
                true => passphrase_for = Some(serial),
                false => {
                    limits.wrong_passphrase(code, client.key);
                    return Err(refuse(
                        StatusCode::FORBIDDEN,
                        format!("That is not the passphrase of room {code}."),
                    )
                    .into());
                }
            }
        }
    }
    // The membership belongs to a session id no earlier copy of the cookie has.
    session.rotate_id();
    let joiner = Joiner {
        name: name.clone(),
        existing,
        session: session.id.as_str().to_owned(),
        identified: identity.is_some(),
        passphrase_for,
    };
    let token = state.rooms.join(&code, joiner).await.map_err(refused)?;
    session.add_pass(code, token);
    session.name = Some(name.to_string());
    Ok(see_other(
        &format!("/rooms/{code}"),
        Some(&state.cookies.set_cookie(&session)),
    ))
}

/// `POST /rooms/{CODE}/lock` and `/unlock`: the owner closes the door to
/// newcomers, or opens it again.
pub async fn set_locked(
    code: String,
    locked: bool,
    client: Client,
    session: Option<Session>,
    format: Format,
    state: AppState,
) -> Result<Response, Rejection> {
    let code = parse_code(&code)?;
    let (_, token) = member(&state, code, client, session).await?;
    state
        .rooms
        .set_locked(&code, &token, locked)
        .await
        .map_err(refusal(code))?;
    Ok(done(format, &format!("/rooms/{code}")))
}

/// `POST /rooms/{CODE}/remove` with `name`: the owner removes a member.
pub async fn remove_member(
    code: String,
    client: Client,
    session: Option<Session>,
    format: Format,
    form: RemoveForm,
    state: AppState,
) -> Result<Response, Rejection> {
    let code = parse_code(&code)?;
    let (_, token) = member(&state, code, client, session).await?;
    let name = DisplayName::parse(&form.name).map_err(|e| AppError::BadRequest(e.0))?;
    if form.confirm == "ask" {
        let page = state
            .pages
            .confirm_remove(code, &name)
            .map_err(|_| AppError::Internal)?;
        return Ok(warp::reply::html(page).into_response());
    }
    state
        .rooms
        .remove(&code, &token, &name)
        .await
        .map_err(refusal(code))?;
    Ok(done(format, &format!("/rooms/{code}")))
}

pub async fn room_page(
    code: String,
    client: Client,
    identity: Option<DisplayName>,
    session: Option<Session>,
    state: AppState,
) -> Result<Response, Rejection> {
    let code = parse_code(&code)?;
    let snapshot = match session.as_ref().and_then(|s| s.pass(code)) {
        Some(token) => match state.rooms.snapshot(&code, &token).await {
            Ok(snapshot) => {
                // Each render is the room's whole history, held until the
                // client takes it: a member gets a burst of them, not a flood.
                state.limits.page(code, token).map_err(AppError::Limited)?;
                Some(snapshot)
            }
            Err(RoomError::Unavailable) => return Err(AppError::Unavailable.into()),
            Err(_) => match state.rooms.check_member(&code, &token).await {
                // Someone removed hears so, and it costs them no guess.
                Err(RoomError::Removed) => return Err(AppError::Removed(code).into()),
                Err(RoomError::Unavailable) => return Err(AppError::Unavailable.into()),
                _ => None,
            },
        },
        None => None,
    };
    let page = match snapshot {
        Some(room) => state
            .pages
            .room(code, &room, state.settings.max_message_chars),
        None => {
            // Anyone else spends a guess before the store is asked anything.
            state.limits.guess(client.key).map_err(AppError::Limited)?;
            if let Some(session) = &session
                && state
                    .rooms
                    .removed(&code, session.pass(code), session.id.as_str())
                    .await
                    .map_err(refusal(code))?
            {
                return Err(AppError::Removed(code).into());
            }
            if !state.rooms.exists(&code).await.map_err(refusal(code))? {
                return Err(AppError::RoomNotFound.into());
            }
            // A shared link: whoever follows it may join.
            let private = match state.rooms.passphrase(&code).await {
                Err(RoomError::Unavailable) => return Err(AppError::Unavailable.into()),
                found => found.ok().flatten().is_some(),
            };
            let name = session.and_then(|s| s.name).unwrap_or_default();
            state.pages.join(&JoinPage {
                code,
                name: &name,
                identity: identity.as_ref().map(DisplayName::as_str),
                private,
                error: None,
            })
        }
    };
    let page = page.map_err(|_| AppError::Internal)?;
    // `no-store`, like every response about someone: `http::keep_private`.
    Ok(warp::reply::html(page).into_response())
}

pub async fn events(
    code: String,
    client: Client,
    session: Option<Session>,
    last_event_id: Option<String>,
    query: EventsQuery,
    state: AppState,
) -> Result<Response, Rejection> {
    let reading = Reading::start(
        &state,
        &code,
        client,
        session,
        last_event_id,
        query,
        Reader::Stream,
    )
    .await?;
    Ok(events::response(
        reading.subscription,
        reading.place,
        state.settings.keepalive,
        state.shutdown.clone(),
    ))
}

/// `GET /rooms/{CODE}/poll?after=ID`: the events after `ID`, at once or as soon
/// as there are any (see `poll`).
pub async fn poll(
    code: String,
    client: Client,
    session: Option<Session>,
    last_event_id: Option<String>,
    query: EventsQuery,
    state: AppState,
) -> Result<Response, Rejection> {
    let wait = query.poll_wait(state.settings.poll_wait)?;
    let reading = Reading::start(
        &state,
        &code,
        client,
        session,
        last_event_id,
        query,
        Reader::Poll,
    )
    .await?;
    let response = poll::answer(
        reading.subscription,
        reading.after,
        wait,
        state.shutdown.clone(),
    )
    .await;
    drop(reading.place);
    Ok(response)
}

/// Who reads a room's events: an event stream, or a long poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Stream,
    Poll,
}

/// What an event stream and a long poll both start from.
struct Reading {
    subscription: Subscription,
    /// Its place in the stream limits, held while it reads.
    place: StreamPlace,
    /// Where the client asked to resume (`Last-Event-ID`, else `?after=`).
    after: Option<u64>,
}

impl Reading {
    /// Checks membership (and spends a guess otherwise), reads the resume point,
    /// takes a place in the limits, and subscribes.
    ///
    /// A poll that comes sooner than the member's poll rate allows is held until
    /// it does, when that is within `--poll-wait`: a client keeping up with a
    /// busy room then gets bigger batches, not refusals. Only a client far past
    /// the rate gets `429`.
    async fn start(
        state: &AppState,
        code: &str,
        client: Client,
        session: Option<Session>,
        last_event_id: Option<String>,
        query: EventsQuery,
        reader: Reader,
    ) -> Result<Self, AppError> {
        let code = parse_code(code)?;
        let (session, token) = member(state, code, client, session).await?;
        let after = events::resume_point(last_event_id.as_deref(), query.after.as_deref())
            .map_err(AppError::BadRequest)?;
        let epoch = query.epoch()?;
        if reader == Reader::Poll
            && let Err(refused) = state.limits.poll(code, token)
        {
            if refused.retry_after > state.settings.poll_wait {
                return Err(AppError::Limited(refused));
            }
            tokio::time::sleep(refused.retry_after).await;
            state.limits.poll(code, token).map_err(AppError::Limited)?;
        }
        let place = state
            .limits
            .stream(client.key, &session.id)
            .map_err(AppError::Limited)?;
        let subscription = state
            .rooms
            .subscribe(&code, &token, after, epoch)
            .await
            .map_err(refusal(code))?;
        Ok(Self {
            subscription,
            place,
            after,
        })
    }
}

/// A repeat of a message already stored under its idempotency key (the answer
/// to the first was lost) is answered like the first, without storing it again
/// or spending the member's message budget.
pub async fn post_message(
    code: String,
    client: Client,
    session: Option<Session>,
    format: Format,
    key_header: Option<String>,
    form: MessageForm,
    state: AppState,
) -> Result<Response, Rejection> {
    let code = parse_code(&code)?;
    let (_, token) = member(&state, code, client, session).await?;
    let reason = |e: Invalid| AppError::BadMessage { code, reason: e.0 };
    let key = key_header
        .or(form.idempotency_key)
        .map(|key| IdempotencyKey::parse(&key))
        .transpose()
        .map_err(reason)?;
    let text = MessageText::parse(&form.message, state.settings.max_message_chars as usize)
        .map_err(reason)?;
    if let Some(key) = &key
        && let Some(id) = state
            .rooms
            .sent_under(&code, &token, key)
            .await
            .map_err(refusal(code))?
    {
        return Ok(sent(format, code, id));
    }
    state
        .limits
        .message(code, token)
        .map_err(AppError::Limited)?;
    let (Published::New(id) | Published::Repeat(id)) = state
        .rooms
        .publish_message(&code, &token, text, key)
        .await
        .map_err(refusal(code))?;
    Ok(sent(format, code, id))
}

/// The reply to a stored message, like any post's, naming the message's event
/// id in `Event-Id`: a page shows the message as sending until that event
/// arrives, and a repeat gets the first's id.
fn sent(format: Format, code: RoomCode, id: u64) -> Response {
    let mut response = done(format, &format!("/rooms/{code}"));
    response
        .headers_mut()
        .insert(EVENT_ID, HeaderValue::from(id));
    response
}

pub async fn leave_room(
    code: String,
    client: Client,
    session: Option<Session>,
    format: Format,
    state: AppState,
) -> Result<Response, Rejection> {
    let code = parse_code(&code)?;
    let (_, token) = member(&state, code, client, session).await?;
    state
        .rooms
        .leave(&code, &token)
        .await
        .map_err(refusal(code))?;
    Ok(done(format, "/"))
}

pub async fn members(
    code: String,
    client: Client,
    session: Option<Session>,
    state: AppState,
) -> Result<Response, Rejection> {
    let code = parse_code(&code)?;
    let (_, token) = member(&state, code, client, session).await?;
    let present = state
        .rooms
        .present(&code, &token)
        .await
        .map_err(refusal(code))?;
    Ok(warp::reply::json(&present).into_response())
}

pub async fn healthz(state: AppState) -> Result<Response, Rejection> {
    let trouble = match &state.rooms {
        Rooms::Shared(shared) => shared.trouble(),
        Rooms::Local(_) => None,
    };
    let (status, text) = match (state.shutdown.is_cancelled(), trouble) {
        (true, _) => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
        (false, Some(trouble)) => (StatusCode::SERVICE_UNAVAILABLE, trouble),
        (false, None) => (StatusCode::OK, "ok"),
    };
    let mut response = crate::error::text(status, text);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn asset(
    name: String,
    headers: HeaderMap,
    state: AppState,
) -> Result<Response, Rejection> {
    (state.assets)
        .response(&name, &headers)
        .ok_or_else(warp::reject::not_found)
}

/// A code in a path that is not a code names no room (and is no guess: it
/// cannot be one).
fn parse_code(raw: &str) -> Result<RoomCode, AppError> {
    RoomCode::parse(raw).map_err(|_| AppError::RoomNotFound)
}

/// The session and its membership token, if it proves membership of the room.
/// Anyone else spends a guess and gets `404` for no such room, else `403`.
/// Checked before anything the request carries is looked at, so a stranger
/// learns nothing from it.
async fn member(
    state: &AppState,
    code: RoomCode,
    client: Client,
    session: Option<Session>,
) -> Result<(Session, MemberToken), AppError> {
    if let Some(session) = session
        && let Some(token) = session.pass(code)
    {
        match state.rooms.check_member(&code, &token).await {
            Ok(()) => return Ok((session, token)),
            Err(RoomError::Removed) => return Err(AppError::Removed(code)),
            Err(RoomError::Unavailable) => return Err(AppError::Unavailable),
            Err(_) => {}
        }
    }
    state.limits.guess(client.key).map_err(AppError::Limited)?;
    match state.rooms.exists(&code).await {
        Ok(true) => Err(AppError::NotMember(code)),
        Ok(false) => Err(AppError::RoomNotFound),
        Err(_) => Err(AppError::Unavailable),
    }
}

/// Forgets the session's passes to rooms it is no longer in, then checks that
/// it may join one more. The passes of the last few rooms it was removed from
/// are kept (they count as no room): they are what shuts it out of those rooms
/// once its id has changed.
async fn room_for_one_more(state: &AppState, session: &mut Session) -> Result<(), AppError> {
    let mut current = Vec::with_capacity(session.rooms.len());
    let mut removed = Vec::new();
    for pass in session.rooms.drain(..) {
        match state.rooms.check_member(&pass.code, &pass.token).await {
            Ok(()) => current.push(pass),
            Err(RoomError::Removed) => removed.push(pass),
            Err(RoomError::Unavailable) => return Err(AppError::Unavailable),
            Err(_) => {}
        }
    }
    let members = current.len();
    let keep_removed = removed.len().saturating_sub(REMOVED_PASSES_KEPT);
    current.extend(removed.drain(keep_removed..));
    session.rooms = current;
    state
        .limits
        .another_room(members)
        .map_err(AppError::Limited)
}

/// How a passphrase that could not be checked reads: a full queue is the
/// server being busy (`503`, try again in a moment).
fn hashing_failed(failed: HashingFailed) -> AppError {
    match failed {
        HashingFailed::Busy => AppError::Limited(Refused {
            limit: Limit::PassphraseQueue,
            retry_after: Duration::from_secs(1),
        }),
        HashingFailed::Broken => AppError::Internal,
    }
}

/// The name to join or create under: the signed-in identity, else what was
/// typed.
fn name_to_use(identity: Option<&DisplayName>, typed: &str) -> Result<DisplayName, Invalid> {
    identity
        .cloned()
        .map_or_else(|| DisplayName::parse(typed), Ok)
}

/// How a refused join reads: why the room would not let them in, on the form
/// shown again (`refuse` makes it); any other refusal as [`refusal`] says.
fn join_refused(
    code: RoomCode,
    error: RoomError,
    refuse: impl Fn(StatusCode, String) -> AppError,
) -> AppError {
    let (status, message) = match error {
        RoomError::NotFound => (
            StatusCode::NOT_FOUND,
            format!("There is no room {code}. Check the code, or create a room."),
        ),
        RoomError::NameTaken => (
            StatusCode::CONFLICT,
            format!(
                "Someone in room {code} already has that name, or one that looks the same. Please pick another name."
            ),
        ),
        RoomError::NameRemoved => (
            StatusCode::CONFLICT,
            format!(
                "The owner of room {code} removed someone of that name. Please pick another name."
            ),
        ),
        RoomError::Locked => (
            StatusCode::LOCKED,
            format!("Room {code} is locked: its owner lets no one new in for now."),
        ),
        RoomError::Removed => (StatusCode::FORBIDDEN, removed_from(code)),
        RoomError::WrongPassphrase => (
            StatusCode::FORBIDDEN,
            format!("Room {code} is private: type its passphrase to join."),
        ),
        other => return refusal(code)(other),
    };
    refuse(status, message)
}

/// How a refusal from the room store reads for a request about room `code`.
fn refusal(code: RoomCode) -> impl Fn(RoomError) -> AppError {
    move |error| match error {
        RoomError::NotFound => AppError::RoomNotFound,
        RoomError::NotMember => AppError::NotMember(code),
        RoomError::NoFreeCode => AppError::NoFreeCode,
        RoomError::RoomFull => AppError::Limited(Refused::full(Limit::MembersPerRoom)),
        RoomError::TooManyRooms => AppError::Limited(Refused::full(Limit::Rooms)),
        RoomError::HistoryFull => AppError::Limited(Refused::full(Limit::History)),
        RoomError::Removed => AppError::Removed(code),
        RoomError::NameTaken
        | RoomError::NameRemoved
        | RoomError::Locked
        | RoomError::WrongPassphrase => join_refused(code, error, |status, message| {
            AppError::form(status, message, "", code.as_str(), FormOrigin::Join)
        }),
        RoomError::NotOwner => AppError::NotOwner(code),
        RoomError::NoSuchMember => {
            AppError::BadRequest(format!("Nobody of that name is in room {code}."))
        }
        RoomError::CannotRemoveOwner => AppError::BadRequest(
            "The owner cannot remove themselves; to go, leave the room.".to_owned(),
        ),
        RoomError::Unavailable => AppError::Unavailable,
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
