//! Every route the app answers, in one table: its pattern and its methods.
//! A `405`'s `Allow` header (RFC 9110 §15.5.6) and the route an access-log
//! line names both come from here. The filters in `routes.rs` must agree with
//! it: `by_the_book.rs` tries every method on every route kind.

/// One route: its pattern, where `{…}` is one non-empty path segment (a room
/// code, an asset's name), and the methods it answers.
pub struct Route {
    pub pattern: &'static str,
    pub methods: &'static str,
}

/// The methods of a route that reads: `HEAD` wherever `GET` works.
const GET: &str = "GET, HEAD";
/// The methods of a route that changes something.
const POST: &str = "POST";

const ROUTES: &[Route] = &[
    route("/", GET),
    route("/healthz", GET),
    route("/assets/{file}", GET),
    route("/rooms", POST),
    route("/join", POST),
    route("/rooms/{code}", GET),
    route("/rooms/{code}/events", GET),
    route("/rooms/{code}/poll", GET),
    route("/rooms/{code}/members", GET),
    route("/rooms/{code}/messages", POST),
    route("/rooms/{code}/leave", POST),
    route("/rooms/{code}/lock", POST),
    route("/rooms/{code}/unlock", POST),
    route("/rooms/{code}/remove", POST),
];

const fn route(pattern: &'static str, methods: &'static str) -> Route {
    Route { pattern, methods }
}

/// The route `path` (without its query) belongs to, if any.
pub fn route_of(path: &str) -> Option<&'static Route> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    ROUTES.iter().find(|route| {
        let pattern: Vec<&str> = route.pattern.split('/').skip(1).collect();
        pattern.len() == segments.len()
            && (pattern.iter().zip(&segments))
                .all(|(want, got)| want == got || (want.starts_with('{') && !got.is_empty()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_finds_its_route() {
        for (path, found) in [
            ("/", Some(("/", GET))),
            ("/healthz", Some(("/healthz", GET))),
            ("/assets/style.9511ac9f.css", Some(("/assets/{file}", GET))),
            ("/rooms", Some(("/rooms", POST))),
            ("/join", Some(("/join", POST))),
            ("/rooms/ABCD", Some(("/rooms/{code}", GET))),
            ("/rooms/abcd/events", Some(("/rooms/{code}/events", GET))),
            ("/rooms/ABCD/poll", Some(("/rooms/{code}/poll", GET))),
            ("/rooms/ABCD/members", Some(("/rooms/{code}/members", GET))),
            (
                "/rooms/ABCD/messages",
                Some(("/rooms/{code}/messages", POST)),
            ),
            ("/rooms/ABCD/leave", Some(("/rooms/{code}/leave", POST))),
            ("/rooms/ABCD/lock", Some(("/rooms/{code}/lock", POST))),
            ("/rooms/ABCD/unlock", Some(("/rooms/{code}/unlock", POST))),
            ("/rooms/ABCD/remove", Some(("/rooms/{code}/remove", POST))),
            ("/healthz/", None),
            ("/rooms/", None),
            ("/rooms/ABCD/", None),
            ("/rooms//events", None),
            ("/rooms/ABCD/secret-words", None),
            ("/assets", None),
            ("/assets/", None),
            ("/wp-login.php", None),
        ] {
            let route = route_of(path).map(|route| (route.pattern, route.methods));
            assert_eq!(route, found, "{path}");
        }
    }
}
