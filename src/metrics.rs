//! What the server tells its operator: Prometheus metrics, served in the
//! OpenMetrics text format on a listener of their own (`--metrics-bind`).
//!
//! Rooms, members, streams and connections are read from the registry and the
//! limits at each scrape, and so are the running totals of messages, deliveries
//! and resets, so no request path does anything for the metrics but count its
//! refusals.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::limits::{Limit, Limits};
use crate::rooms::Rooms;

/// `Content-Type` of the metrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why a request was refused, as a label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// Refusals that are not limits, by their label.
pub const UNKNOWN_HOST: &str = "unknown_host";
pub const CROSS_ORIGIN: &str = "cross_origin";

/// The metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    refusals: Family<Reason, Counter>,
}

impl Metrics {
    pub fn new(rooms: Rooms, limits: Limits) -> Self {
        let mut registry = Registry::default();
        let refusals = Family::<Reason, Counter>::default();
        // Every reason from the start, at zero, so a dashboard sees them all.
        for reason in Limit::ALL
            .map(Limit::name)
            .into_iter()
            .chain([UNKNOWN_HOST, CROSS_ORIGIN])
        {
            let _ = refusals.get_or_create(&Reason { reason });
        }
        registry.register(
            "chat_refusals",
            "Requests and connections refused, by reason (a limit's name, unknown_host, cross_origin)",
            refusals.clone(),
        );
        if let Rooms::Shared(shared) = &rooms {
            let redis = shared.metrics();
            registry.register(
                "chat_redis_round_trip_seconds",
                "Time each room operation took in Redis, network included",
                redis.round_trip.clone(),
            );
            registry.register(
                "chat_redis_reconnects",
                "Times this instance lost Redis (commands or reader) and connected again",
                redis.reconnects.clone(),
            );
            registry.register(
                "chat_redis_reader_lag_seconds",
                "Time from Redis storing the newest event read to the reader passing it on",
                redis.reader_lag.clone(),
            );
        }
        registry.register_collector(Box::new(Now { rooms, limits }));
        Self {
            registry: Arc::new(registry),
            refusals,
        }
    }

    /// Counts one refusal.
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&Reason { reason }).inc();
    }

    /// The routes of the metrics listener: `GET /metrics` (and `HEAD`), by
    /// the app listener's HTTP rules: `/metrics/` is a `308` to the one URL,
    /// and a refusal says what it is in words (a `405` with its `Allow`).
    pub fn routes(&self) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
        let metrics = self.clone();
        let scrape = warp::path!("metrics")
            .and(warp::get().or(warp::head()).unify())
            .map(move || match metrics.encode() {
                Ok(text) => {
                    let mut response = Response::new(text.into());
                    response
                        .headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
                    response
                }
                Err(_) => crate::error::text(StatusCode::INTERNAL_SERVER_ERROR, "metrics failed"),
            });
        crate::target::moved()
            .or(scrape)
            .unify()
            .or_else(|rejection: Rejection| async move {
                Ok::<_, Rejection>((metrics_refusal(&rejection),))
            })
    }

    /// The metrics as OpenMetrics text.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// What the metrics listener answers a request it has no route for.
fn metrics_refusal(rejection: &Rejection) -> Response {
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        let mut response = crate::error::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "That method is not allowed here.",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    crate::error::text(
        StatusCode::NOT_FOUND,
        "There is no page here: the metrics are at /metrics.",
    )
}

/// Reads the rooms and the limits at each scrape.
struct Now {
    rooms: Rooms,
    limits: Limits,
}

impl fmt::Debug for Now {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Now")
    }
}

impl Collector for Now {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = self.rooms.stats();
        let connections = self.limits.open_connections() as u64;
        // Every connection, stream and timer is a task: a number that keeps
        // growing while the others fall back is a leak.
        let tasks = tokio::runtime::Handle::try_current()
            .map_or(0, |runtime| runtime.metrics().num_alive_tasks()) as u64;
        let gauges = [
            ("chat_rooms", "Rooms open.", stats.rooms),
            ("chat_members", "Members of open rooms.", stats.members),
            ("chat_streams", "Event streams open.", stats.streams),
            (
                "chat_connections",
                "Client connections open (the metrics listener's are not counted).",
                connections,
            ),
            ("chat_tasks", "Tokio tasks alive in the server.", tasks),
            (
                "chat_history_bytes",
                "Bytes of events kept in history (with Redis: this instance's copies).",
                stats.history_bytes,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let counters = [
            ("chat_messages", "Messages published.", stats.messages),
            (
                "chat_deliveries",
                "Events handed to event streams, each once per stream.",
                stats.deliveries,
            ),
            (
                "chat_resets",
                "Streams told to reset: they asked for more than history keeps.",
                stats.resets,
            ),
            (
                "chat_history_trims",
                "Events let go from history to keep to --history-bytes or --max-history-bytes.",
                stats.history_trims,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
