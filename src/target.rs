//! What a request is for, settled before any route looks at it: the host it
//! names (RFC 9112 §3.2) and its path in one spelling (RFC 3986 §6.2.2).
//!
//! warp routes on the path exactly as sent and reads the host from the target
//! or the `Host` line, whichever it finds. So the accept loop hands every
//! request to [`prepare`] first, which rewrites what can be rewritten and notes
//! the rest for the routes:
//! - `%54FCK` and `TFCK` are one path: percent-encoded letters, digits and
//!   `-._~` are decoded before routing, so a code typed that way finds its room
//!   (and spends no guess).
//! - A path ending in `/` (other than `/` itself) is the same resource as the
//!   path without it, which is its one URL: [`Moved`] notes where to, and the
//!   routes answer `308` there, query kept (`308`, not `301`: a POST stays a POST).
//! - An absolute-form target (`GET http://host/ HTTP/1.1`, as sent to proxies)
//!   names the host: its authority replaces the `Host` line.
//! - No `Host` on an HTTP/1.1 request, two `Host` lines, or one that is not a
//!   host is [`Misaddressed`], which the routes refuse with `400`. HTTP/1.0
//!   needs no `Host` (the health check answers it; every other route calls a
//!   request without a name not ours, `421`).

use std::borrow::Cow;

use warp::http::uri::{Authority, PathAndQuery};
use warp::http::{HeaderValue, Request, StatusCode, Uri, Version, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::error::AppError;

/// The one URL of a resource asked for under another (a trailing slash): the
/// canonical path, with the query as sent.
#[derive(Debug, Clone)]
pub struct Moved(String);

/// Why a request's host cannot be told (RFC 9112 §3.2): answered `400`.
#[derive(Debug, Clone, Copy)]
pub struct Misaddressed(&'static str);

/// Settles `request`'s path and host before routing; see the module's notes.
pub fn prepare<B>(request: &mut Request<B>) {
    if let Some(problem) = host_problem(request) {
        request.extensions_mut().insert(problem);
    }
    if let Some(authority) = request.uri().authority() {
        // RFC 9112 §3.2.2: the target's authority, not the `Host` line.
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            request.headers_mut().insert(header::HOST, host);
        }
    }
    let Some(target) = request.uri().path_and_query().cloned() else {
        return;
    };
    let with_query = |path: &str| match target.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let path = decode_unreserved(target.path());
    if let Some(canonical) = without_trailing_slash(&path) {
        request
            .extensions_mut()
            .insert(Moved(with_query(canonical)));
    }
    if path != target.path() {
        rewrite(request, &with_query(&path));
    }
}

/// What is wrong with the request's `Host`, if anything.
fn host_problem<B>(request: &Request<B>) -> Option<Misaddressed> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Some(Misaddressed("A request may carry only one Host header.")),
        (Some(host), None) if Authority::try_from(host.as_bytes()).is_err() => Some(Misaddressed(
            "The Host header does not name a host (a name or an address, and a port).",
        )),
        (None, _) if request.version() == Version::HTTP_11 => Some(Misaddressed(
            "An HTTP/1.1 request must name its host in a Host header.",
        )),
        _ => None,
    }
}

/// Replaces the request's path and query, keeping scheme and authority.
fn rewrite<B>(request: &mut Request<B>, path_and_query: &str) {
    let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) else {
        return;
    };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

/// `path` with every percent-encoded unreserved character (letters, digits,
/// `-._~`) decoded; every other escape, `%2F` included, stays as sent. A path
/// without escapes (nearly every one) is taken as it is, without a copy.
fn decode_unreserved(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = bytes.get(at + 1..at + 3).and_then(|hex| {
            let hex = std::str::from_utf8(hex).ok()?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            (byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)).then_some(byte)
        });
        match (bytes[at], escaped) {
            (b'%', Some(byte)) => {
                decoded.push(char::from(byte));
                at += 3;
            }
            _ => {
                let len = path[at..].chars().next().map_or(1, char::len_utf8);
                decoded.push_str(&path[at..at + len]);
                at += len;
            }
        }
    }
    Cow::Owned(decoded)
}

/// The canonical path of one that ends in `/` (all its final slashes gone), or
/// `None` if it is canonical already. `/` is the home page's one URL; a path
/// that starts with `//` is left alone (no route has one), since `//name` in a
/// `Location` would send a browser to another host.
fn without_trailing_slash(path: &str) -> Option<&str> {
    if path.len() <= 1 || !path.ends_with('/') || path.starts_with("//") {
        return None;
    }
    let trimmed = path.trim_end_matches('/');
    Some(if trimmed.is_empty() { "/" } else { trimmed })
}

/// Refuses (`400`) a request [`prepare`] found [`Misaddressed`].
pub fn addressed() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::ext::optional::<Misaddressed>()
        .and_then(|problem: Option<Misaddressed>| async move {
            match problem {
                Some(Misaddressed(reason)) => Err(warp::reject::custom(AppError::BadRequest(
                    reason.to_owned(),
                ))),
                None => Ok(()),
            }
        })
        .untuple_one()
}

/// `308` to the one URL of a resource asked for under another; rejects (as
/// not found, the weakest rejection) any request that was not.
pub fn moved() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::ext::optional::<Moved>().and_then(|moved: Option<Moved>| async move {
        let location = moved
            .and_then(|Moved(location)| HeaderValue::from_str(&location).ok())
            .ok_or_else(warp::reject::not_found)?;
        let mut response =
            warp::reply::with_status(warp::reply(), StatusCode::PERMANENT_REDIRECT).into_response();
        response.headers_mut().insert(header::LOCATION, location);
        Ok::<_, Rejection>(response)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(request: &str, hosts: &[&str], version: Version) -> Request<()> {
        let mut builder = Request::get(request).version(version);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        let mut request = builder.body(()).unwrap();
        prepare(&mut request);
        request
    }

    fn misaddressed(request: &Request<()>) -> bool {
        request.extensions().get::<Misaddressed>().is_some()
    }

    fn moved_to(request: &Request<()>) -> Option<&str> {
        request.extensions().get::<Moved>().map(|m| m.0.as_str())
    }

    #[test]
    fn unreserved_characters_are_decoded_and_others_kept() {
        assert_eq!(decode_unreserved("/rooms/%54FCK"), "/rooms/TFCK");
        assert_eq!(decode_unreserved("/rooms/%74%66ck"), "/rooms/tfck");
        assert_eq!(decode_unreserved("/a%2Db%5F%7E%2e"), "/a-b_~.");
        assert_eq!(decode_unreserved("/a%2Fb%20c%25"), "/a%2Fb%20c%25");
        assert_eq!(decode_unreserved("/a%4"), "/a%4");
        assert_eq!(decode_unreserved("/a%zz%"), "/a%zz%");
    }

    #[test]
    fn a_trailing_slash_moves_to_the_path_without_it() {
        assert_eq!(without_trailing_slash("/healthz/"), Some("/healthz"));
        assert_eq!(
            without_trailing_slash("/rooms/X/events//"),
            Some("/rooms/X/events")
        );
        assert_eq!(without_trailing_slash("/"), None);
        assert_eq!(without_trailing_slash("/healthz"), None);
        assert_eq!(without_trailing_slash("//evil.example/"), None);
    }

    #[test]
    fn prepare_decodes_the_path_and_notes_the_one_url_with_the_query() {
        let request = prepared("/rooms/%54FCK/events/?after=3", &["h"], Version::HTTP_11);
        assert_eq!(request.uri().path(), "/rooms/TFCK/events/");
        assert_eq!(request.uri().query(), Some("after=3"));
        assert_eq!(moved_to(&request), Some("/rooms/TFCK/events?after=3"));
        let canonical = prepared("/rooms/TFCK", &["h"], Version::HTTP_11);
        assert_eq!(moved_to(&canonical), None);
    }

    #[test]
    fn host_rules_of_rfc_9112() {
        assert!(!misaddressed(&prepared("/", &["h:3000"], Version::HTTP_11)));
        assert!(misaddressed(&prepared("/", &[], Version::HTTP_11)));
        assert!(misaddressed(&prepared("/", &["a", "a"], Version::HTTP_11)));
        assert!(misaddressed(&prepared("/", &["a", "b"], Version::HTTP_10)));
        assert!(misaddressed(&prepared("/", &["a b"], Version::HTTP_11)));
        assert!(!misaddressed(&prepared("/", &[], Version::HTTP_10)));
    }

    #[test]
    fn an_absolute_target_names_the_host() {
        let request = prepared(
            "http://127.0.0.1:3000/x%41/",
            &["evil.example"],
            Version::HTTP_11,
        );
        assert_eq!(request.headers()[header::HOST], "127.0.0.1:3000");
        assert_eq!(
            request.uri().authority().unwrap().as_str(),
            "127.0.0.1:3000"
        );
        assert_eq!(request.uri().path(), "/xA/");
        assert_eq!(moved_to(&request), Some("/xA"));
    }
}
