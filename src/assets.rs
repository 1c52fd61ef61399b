//! Static files (CSS, JavaScript, icon), compiled into the binary so the release
//! build runs from any directory, each with its gzip and brotli copies made at
//! build (`build.rs`).
//!
//! Each file is served at a URL that names its content, `/assets/style.3f2a9c1b.css`
//! (the first 8 hex digits of its SHA-256, worked out once at start), for a year
//! and `immutable`: a browser that has it never asks again, and the next release
//! links to new URLs. Pages get these URLs from the renderer ([`Assets::url`]).
//! Any other name of a file we have (the plain `/assets/style.css` that scripts
//! and pages from before a release ask for, or another build's hash) is
//! answered `308` to its current URL, itself never cached: one URL per content.

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::encoding::{self, Coding};

/// Where the files are served from.
const PREFIX: &str = "/assets/";

/// How long a content-named file may be kept, and that it never changes.
const IMMUTABLE: &str = "max-age=31536000, immutable";

/// [`IMMUTABLE`] for a request with `Authorization` (a sign-in proxy that
/// passes on the browser's): without `public`, no shared cache would store the
/// answer to it (RFC 9111 §3.5). Said only then: on any other answer it is
/// noise (REDbot warns about it).
const IMMUTABLE_PUBLIC: &str = "public, max-age=31536000, immutable";

/// Hex digits of the content hash in a file's URL: 8 (32 bits) tell one
/// release's file from the next's, and keep the URL short.
const HASH_DIGITS: usize = 8;

/// One file, as it is in `assets/`, and its copies compressed at build.
struct Source {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    gzip: &'static [u8],
    brotli: &'static [u8],
}

/// `Source` for `assets/$name`, with the copies build.rs made of it.
macro_rules! source {
    ($name:literal, $content_type:literal) => {
        Source {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/", $name)),
            gzip: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".gz")),
            brotli: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".br")),
        }
    };
}

/// Every file; build.rs compresses the same list.
const SOURCES: [Source; 3] = [
    source!("style.css", "text/css; charset=utf-8"),
    source!("chat.js", "text/javascript; charset=utf-8"),
    source!("favicon.svg", "image/svg+xml"),
];

/// The static files with their URLs; cheap to clone.
#[derive(Clone)]
pub struct Assets {
    files: Arc<[File]>,
}

/// One file as served.
struct File {
    /// Its plain name, `style.css`.
    name: &'static str,
    /// Its name with its content hash, `style.3f2a9c1b.css`.
    hashed: String,
    content_type: &'static str,
    /// Its copies, best first: brotli and gzip where they are smaller, and
    /// the file as it is last.
    copies: Vec<Encoded>,
}

/// The file in one content coding.
struct Encoded {
    coding: Coding,
    body: Bytes,
    /// Each coding's copy is a representation of its own, so each has its
    /// own `ETag` (a cache must not answer a gzip request with the brotli copy).
    etag: HeaderValue,
}

impl Assets {
    /// Hashes every file (once: at start).
    pub fn new() -> Self {
        let files = SOURCES.iter().map(File::new).collect();
        Self { files }
    }

    /// The URL of the file named `name` (`style.css`), if there is one.
    pub fn url(&self, name: &str) -> Option<String> {
        let file = self.files.iter().find(|f| f.name == name)?;
        Some(format!("{PREFIX}{}", file.hashed))
    }

    /// The response for `/assets/{name}` to a request with `headers`
    /// (`Accept-Encoding`, `If-None-Match`, `Authorization` count), or `None`
    /// when no file goes by that name.
    pub fn response(&self, name: &str, headers: &HeaderMap) -> Option<Response> {
        if let Some(file) = self.files.iter().find(|f| f.hashed == name) {
            return Some(file.response(headers));
        }
        let file = self.files.iter().find(|f| f.goes_by(name))?;
        let mut response = Response::new(Default::default());
        *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
        let location = format!("{PREFIX}{}", file.hashed);
        let headers = response.headers_mut();
        if let Ok(location) = HeaderValue::from_str(&location) {
            headers.insert(header::LOCATION, location);
        }
        // The next release moves the file: ask again each time.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Some(response)
    }
}

impl Default for Assets {
    fn default() -> Self {
        Self::new()
    }
}

impl File {
    fn new(source: &Source) -> Self {
        let digest = Sha256::digest(source.body);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let hash = &hex[..HASH_DIGITS];
        let hashed = match source.name.rsplit_once('.') {
            Some((stem, extension)) => format!("{stem}.{hash}.{extension}"),
            None => format!("{}.{hash}", source.name),
        };
        let compressed = [(Coding::Brotli, source.brotli), (Coding::Gzip, source.gzip)];
        let copies = compressed
            .into_iter()
            .filter(|(_, body)| body.len() < source.body.len())
            .chain([(Coding::Identity, source.body)])
            .map(|(coding, body)| {
                let suffix = coding
                    .header_value()
                    .map_or(String::new(), |c| format!("-{c}"));
                let etag = format!("\"{}{suffix}\"", &hex[..16]);
                Encoded {
                    coding,
                    body: Bytes::from_static(body),
                    etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
                }
            })
            .collect();
        Self {
            name: source.name,
            hashed,
            content_type: source.content_type,
            copies,
        }
    }

    /// Whether `name` is this file under another name of it: its plain name,
    /// or its stem, a hash, and its extension (another build's URL).
    fn goes_by(&self, name: &str) -> bool {
        if name == self.name {
            return true;
        }
        let (Some((stem, extension)), Some((name_stem, name_extension))) =
            (self.name.rsplit_once('.'), name.rsplit_once('.'))
        else {
            return false;
        };
        let Some((name_stem, hash)) = name_stem.rsplit_once('.') else {
            return false;
        };
        name_stem == stem
            && name_extension == extension
            && hash.len() == HASH_DIGITS
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// The copy the client asks for, or `304` if it has that copy already.
    fn response(&self, request: &HeaderMap) -> Response {
        let text = |name| {
            request
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let (accept_encoding, if_none_match) =
            (text(header::ACCEPT_ENCODING), text(header::IF_NONE_MATCH));
        let cache_control = match request.contains_key(header::AUTHORIZATION) {
            true => IMMUTABLE_PUBLIC,
            false => IMMUTABLE,
        };
        let codings: Vec<Coding> = self.copies.iter().map(|c| c.coding).collect();
        let coding = encoding::negotiate(accept_encoding, &codings);
        // The identity copy is always there (last).
        let Some(copy) = self
            .copies
            .iter()
            .find(|c| c.coding == coding)
            .or(self.copies.last())
        else {
            return Response::new(Default::default());
        };
        let mut response = match if_none_match.is_some_and(|tags| matches(tags, &copy.etag)) {
            true => {
                let mut response = Response::new(Default::default());
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                response
            }
            false => {
                let mut response = Response::new(copy.body.clone().into());
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.content_type),
                );
                if let Some(value) = copy.coding.header_value() {
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(value));
                }
                response
            }
        };
        let headers = response.headers_mut();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
        headers.insert(header::ETAG, copy.etag.clone());
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        response
    }
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, as RFC 9110
/// §13.1.2 asks for `GET`: a `W/` prefix does not matter), or is `*`.
fn matches(if_none_match: &str, etag: &HeaderValue) -> bool {
    let etag = etag.as_bytes();
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_has_a_url_naming_its_content() {
        let assets = Assets::new();
        for name in ["style.css", "chat.js", "favicon.svg"] {
            let url = assets.url(name).expect("a URL");
            let (stem, extension) = name.split_once('.').expect("a dot");
            let hash = url
                .strip_prefix(&format!("/assets/{stem}."))
                .and_then(|rest| rest.strip_suffix(&format!(".{extension}")))
                .unwrap_or_else(|| panic!("{url}"));
            assert_eq!(hash.len(), HASH_DIGITS, "{url}");
            assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{url}");
        }
        assert_eq!(assets.url("nope.css"), None);
    }

    #[test]
    fn other_names_of_a_file_go_to_its_url() {
        let assets = Assets::new();
        let url = assets.url("chat.js").expect("a URL");
        for name in ["chat.js", "chat.0123abcd.js"] {
            let response = assets
                .response(name, &HeaderMap::new())
                .expect("a response");
            assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT, "{name}");
            assert_eq!(
                response.headers()[header::LOCATION].to_str().ok(),
                Some(url.as_str())
            );
        }
        for name in [
            "chat.0123abcg.js",
            "chat.0123abc.js",
            "chat.0123abcd.css",
            "chat",
            "",
        ] {
            assert!(assets.response(name, &HeaderMap::new()).is_none(), "{name}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_a_list() {
        let etag = HeaderValue::from_static("\"ab\"");
        assert!(matches("\"ab\"", &etag));
        assert!(matches("W/\"ab\"", &etag));
        assert!(matches("\"x\", \"ab\"", &etag));
        assert!(matches("*", &etag));
        assert!(!matches("\"ab-gzip\"", &etag));
        assert!(!matches("ab", &etag));
    }
}
