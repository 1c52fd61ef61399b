//! The access log: one line per request answered by the routes, under the target
//! [`ACCESS_TARGET`] at `debug` (off unless `RUST_LOG` turns it on, see
//! [`crate::logging`]).
//!
//! A line holds the method, the route's pattern (`/rooms/{code}/events`, never
//! the path as sent: no room code, no query string), the status, how long the
//! response took to start (for an event stream or a long poll: until its head,
//! not its end) and the client's address as the limits count it (the one a
//! trusted proxy forwarded). Never a body, a cookie or a header: message text
//! and passphrases travel in bodies, sessions in cookies. Requests refused
//! before any route runs (a connection over a limit, a head too large or too
//! slow) are not in it; the metrics and the debug log count those.

use std::convert::Infallible;
use std::time::Instant;

use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::client::Client;
use crate::logging::ACCESS_TARGET;
use crate::route_table;

/// What an access line names a path that is no route's.
const NO_ROUTE: &str = "(no route)";

/// `routes`, with a line in the access log for each response, when the log
/// takes such lines (decided once, here: the filter is fixed at start).
/// Otherwise `routes` alone, which costs nothing more per request.
pub fn logged<C, R>(client: C, routes: R) -> BoxedFilter<(Response,)>
where
    C: Filter<Extract = (Client,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::DEBUG) {
        return routes.boxed();
    }
    warp::any()
        .map(Instant::now)
        .and(warp::method())
        .and(warp::path::full())
        .and(client)
        .and(routes)
        .map(
            |started: Instant,
             method: Method,
             path: FullPath,
             client: Client,
             response: Response| {
                let micros = started.elapsed().as_micros();
                tracing::debug!(
                    target: ACCESS_TARGET,
                    method = %method,
                    route = route_pattern(path.as_str()),
                    status = response.status().as_u16(),
                    duration_ms = micros as f64 / 1000.0,
                    client = %client.ip,
                    "request"
                );
                response
            },
        )
        .boxed()
}

/// The pattern of the route `path` (without its query) belongs to;
/// [`NO_ROUTE`] for a path no route takes.
fn route_pattern(path: &str) -> &'static str {
    route_table::route_of(path).map_or(NO_ROUTE, |route| route.pattern)
}
