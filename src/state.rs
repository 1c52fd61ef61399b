//! Everything a handler may use, built once from the configuration; cheap to clone.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::assets::Assets;
use crate::client::Site;
use crate::config::Config;
use crate::error::max_form_bytes;
use crate::http::OurNames;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::pages::Pages;
use crate::passphrase::Hasher;
use crate::rooms::shared::SharedRooms;
use crate::rooms::{RoomSettings, Rooms};
use crate::session::SessionCookies;

/// How long a room, or a member, may exist without ever opening a stream.
const UNCLAIMED_TIMEOUT: Duration = Duration::from_secs(60);

/// Rules that handlers apply to each request.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_message_chars: u32,
    /// Largest form body, in bytes: what a longest message needs.
    pub max_form_bytes: u64,
    pub keepalive: Duration,
    /// How long a request's body may take to arrive.
    pub request_timeout: Duration,
    /// Longest a long poll waits for news.
    pub poll_wait: Duration,
}

/// A handle on the [`Shared`] state: the routes hold many copies of it, and
/// warp clones each with its closure on every request, so a copy is one
/// reference count, not one per field (the shutdown token's takes a lock).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every handler shares, behind [`AppState`].
pub struct Shared {
    pub rooms: Rooms,
    pub cookies: SessionCookies,
    /// The static files, compressed at build and named by their content.
    pub assets: Assets,
    pub pages: Pages,
    pub settings: Settings,
    pub limits: Limits,
    pub metrics: Metrics,
    pub site: Site,
    /// Hashes and checks the passphrases of private rooms, off the runtime.
    pub hasher: Hasher,
    /// Cancelled when shutdown begins, so that every event stream ends itself:
    /// graceful shutdown waits for open connections to finish.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// The state for `config`. Needs a Tokio runtime (the rooms' timers and the
    /// limits' housekeeping each run one task).
    pub fn new(config: &Config) -> Result<Self, String> {
        let history = config.history as usize;
        let settings = RoomSettings {
            grace: config.grace,
            unclaimed_timeout: UNCLAIMED_TIMEOUT,
            history,
            history_bytes: config.limits.history_bytes,
            max_history_bytes: config.limits.max_history_bytes,
            channel_capacity: history.max(64),
            max_rooms: config.limits.max_rooms,
            max_members: config.limits.max_members_per_room,
        };
        let rooms = match &config.redis {
            Some(address) => Rooms::Shared(SharedRooms::connect(
                settings,
                address,
                config.presence_lease,
                config.redis_ca.as_ref().map(|ca| ca.0.as_slice()),
                config.redis_replicas,
            )?),
            None => Rooms::in_memory(settings),
        };
        let limits = Limits::new(config.limits.clone());
        let assets = Assets::new();
        Ok(Self(Arc::new(Shared {
            metrics: Metrics::new(rooms.clone(), limits.clone()),
            rooms,
            limits,
            cookies: SessionCookies::new(
                config.secret.as_deref(),
                config.secure_cookies,
                config.session_max_age,
            ),
            pages: Pages::new(&assets).expect("the views in views/ compile"),
            assets,
            settings: Settings {
                max_message_chars: config.max_message_chars,
                max_form_bytes: max_form_bytes(config.max_message_chars),
                keepalive: config.keepalive,
                request_timeout: config.request_timeout,
                poll_wait: config.poll_wait,
            },
            site: Site::new(
                OurNames::new(&config.public_hosts),
                config.trust_proxy.clone(),
                config.identity_header.clone(),
            ),
            hasher: Hasher::default(),
            shutdown: CancellationToken::new(),
        })))
    }
}
