//! The static files as a browser and a cache see them: linked from the pages by
//! URLs that name their content, kept a year without asking again, sent
//! compressed (brotli or gzip, whichever the client prefers of those it
//! accepts, each copy with its own `ETag`), and reached by their old plain URLs
//! through a `308`. Event streams, long polls and pages are never compressed.

use std::io::Read;

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    ETAG, IF_NONE_MATCH, LOCATION, VARY,
};

use crate::helpers::{PATIENCE, User, spawn_app};
use crate::web::header;

/// What a content-named file says to caches.
const IMMUTABLE: &str = "max-age=31536000, immutable";

/// Every file the pages link to, by plain name.
const FILES: [&str; 3] = ["style.css", "chat.js", "favicon.svg"];

/// The current URL of the file `name` (`style.css`): where its plain URL
/// leads (the pages link the same, as the first test checks).
pub async fn asset_url(user: &User, name: &str) -> String {
    let response = user.get(&format!("/assets/{name}")).await;
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT, "{name}");
    header(&response, LOCATION).expect("a Location")
}

/// `path` asked for with `Accept-Encoding: accept` (none when `None`).
async fn get_encoded(user: &User, path: &str, accept: Option<&str>) -> reqwest::Response {
    let request = user.get_request(path);
    let request = match accept {
        Some(accept) => request.header(ACCEPT_ENCODING, accept),
        None => request,
    };
    request.send().await.expect("GET an asset")
}

/// `HEAD path` with `Accept-Encoding: accept` (none when `None`).
async fn head(user: &User, path: &str, accept: Option<&str>) -> reqwest::Response {
    let request = user.get_request(path);
    let request = match accept {
        Some(accept) => request.header(ACCEPT_ENCODING, accept),
        None => request,
    };
    let (client, request) = request.build_split();
    let mut request = request.expect("a request");
    *request.method_mut() = reqwest::Method::HEAD;
    client.execute(request).await.expect("HEAD")
}

/// `body` decoded from `coding` (`br`, `gzip`, or none).
fn decode(coding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    match coding {
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut decoded)
                .expect("valid brotli");
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut decoded)
                .expect("valid gzip");
        }
        None => decoded.extend_from_slice(body),
        Some(other) => panic!("unexpected coding {other}"),
    }
    decoded
}

/// Every page links each file by `/assets/{stem}.{8 hex digits}.{extension}`,
/// served `200` with its content type, kept a year and `immutable` (and
/// `public` for a request with `Authorization`, which shared caches would
/// not store otherwise), and `Vary: Accept-Encoding`.
#[tokio::test]
async fn pages_link_each_file_by_a_url_naming_its_content_kept_a_year() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let room = alice
        .get_as_browser(&format!("/rooms/{code}"))
        .await
        .text()
        .await
        .expect("the room page");
    let home = alice.get("/").await.text().await.expect("the home page");

    for name in FILES {
        // Act
        let url = asset_url(&alice, name).await;
        let response = get_encoded(&alice, &url, None).await;
        let authorized = alice
            .get_request(&url)
            .header(AUTHORIZATION, "Basic YWxpY2U6c2VjcmV0")
            .send()
            .await
            .expect("GET with Authorization");

        // Assert
        let (stem, extension) = name.rsplit_once('.').expect("an extension");
        let hash = url
            .strip_prefix(&format!("/assets/{stem}."))
            .and_then(|rest| rest.strip_suffix(&format!(".{extension}")))
            .unwrap_or_else(|| panic!("{url}"));
        assert!(
            hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{url}"
        );
        assert!(
            room.contains(&format!("\"{url}\"")),
            "the room page links {url}"
        );
        if name != "chat.js" {
            assert!(
                home.contains(&format!("\"{url}\"")),
                "the home page links {url}"
            );
        }
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(header(&response, CACHE_CONTROL).as_deref(), Some(IMMUTABLE));
        assert_eq!(
            header(&authorized, CACHE_CONTROL).as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(header(&response, VARY).as_deref(), Some("Accept-Encoding"));
        let content_type = header(&response, CONTENT_TYPE).unwrap_or_default();
        let wanted = match extension {
            "css" => "text/css",
            "js" => "text/javascript",
            _ => "image/svg+xml",
        };
        assert!(content_type.starts_with(wanted), "{url}: {content_type}");
    }
}

/// The style and the script come in the coding the client prefers of those it
/// accepts (brotli over gzip when both are equal, never one at `q=0`), as they
/// are without `Accept-Encoding`; every copy decodes to the same bytes, has an
/// `ETag` of its own and answers `304` to it; `HEAD` says what `GET` says.
#[tokio::test]
async fn the_style_and_script_come_compressed_as_the_client_prefers() {
    // Arrange
    let app = spawn_app().await;
    let user = app.user();
    let cases = [
        (None, None),
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("gzip, deflate"), Some("gzip")),
        (Some("br;q=0.5, gzip"), Some("gzip")),
        (Some("br;q=0, gzip;q=0.2"), Some("gzip")),
        (Some("gzip;q=0, br;q=0"), None),
        (Some("identity"), None),
        (Some("zstd"), None),
    ];

    for name in ["style.css", "chat.js"] {
        let url = asset_url(&user, name).await;
        let plain = get_encoded(&user, &url, None)
            .await
            .bytes()
            .await
            .expect("the file");
        let mut etags = std::collections::HashSet::new();
        for (accept, wanted) in cases {
            // Act
            let response = get_encoded(&user, &url, accept).await;
            let head = head(&user, &url, accept).await;

            // Assert
            assert_eq!(response.status(), StatusCode::OK, "{url} {accept:?}");
            let coding = header(&response, CONTENT_ENCODING);
            assert_eq!(coding.as_deref(), wanted, "{url} {accept:?}");
            let etag = header(&response, ETAG).expect("an ETag");
            let length = header(&response, CONTENT_LENGTH);
            for field in [CONTENT_ENCODING, ETAG, CONTENT_LENGTH, CACHE_CONTROL, VARY] {
                assert_eq!(
                    header(&head, field.clone()),
                    header(&response, field.clone()),
                    "HEAD {url} {accept:?}: {field}"
                );
            }
            let body = response.bytes().await.expect("the body");
            assert_eq!(length, Some(body.len().to_string()), "{url} {accept:?}");
            if wanted.is_some() {
                assert!(body.len() * 2 < plain.len(), "{url} {accept:?} compressed");
            }
            assert!(
                decode(wanted, &body) == plain,
                "{url} {accept:?} decodes to the file"
            );
            let request = user.get_request(&url);
            let request = match accept {
                Some(accept) => request.header(ACCEPT_ENCODING, accept),
                None => request,
            };
            let again = request
                .header(IF_NONE_MATCH, format!("\"nope\", W/{etag}"))
                .send()
                .await
                .expect("GET with If-None-Match");
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{url} {accept:?}");
            assert_eq!(header(&again, ETAG).as_deref(), Some(etag.as_str()));
            assert_eq!(header(&again, VARY).as_deref(), Some("Accept-Encoding"));
            assert_eq!(header(&again, CACHE_CONTROL).as_deref(), Some(IMMUTABLE));
            etags.insert((wanted, etag));
        }
        // One ETag per copy: as it is, gzip, brotli.
        let codings: std::collections::HashSet<_> = etags.iter().map(|(c, _)| *c).collect();
        let tags: std::collections::HashSet<_> = etags.iter().map(|(_, t)| t).collect();
        assert_eq!(codings.len(), 3, "{etags:?}");
        assert_eq!(tags.len(), 3, "{etags:?}");
    }
}

/// The plain URL of each file (what scripts and pages from before a release
/// ask for) and a URL with another build's hash answer `308` to the current
/// URL, not to be cached; a name that is no file's is `404`.
#[tokio::test]
async fn old_urls_of_a_file_lead_to_its_current_one() {
    // Arrange
    let app = spawn_app().await;
    let user = app.user();

    for name in FILES {
        let current = asset_url(&user, name).await;
        let (stem, extension) = name.rsplit_once('.').expect("an extension");
        for old in [
            format!("/assets/{name}"),
            format!("/assets/{stem}.0123abcd.{extension}"),
        ] {
            // Act
            let response = get_encoded(&user, &old, Some("gzip, br")).await;

            // Assert
            assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT, "{old}");
            assert_eq!(
                header(&response, LOCATION).as_deref(),
                Some(current.as_str())
            );
            assert_eq!(
                header(&response, CACHE_CONTROL).as_deref(),
                Some("no-cache")
            );
        }
    }
    for missing in [
        "/assets/nope.css",
        "/assets/style.0123abcz.css",
        "/assets/style.0123abcd.js",
    ] {
        let response = user.get(missing).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
    }
}

/// Asked with `Accept-Encoding: gzip, br`, the event stream, a long poll, the
/// home page and the room page come uncompressed: a stream must pass proxies
/// as it is written, and pages are rendered per request (see
/// docs/operations.md).
#[tokio::test]
async fn streams_polls_and_pages_are_never_compressed() {
    // Arrange
    let app = spawn_app().await;
    let (alice, code) = app.user_in_new_room("alice").await;
    let accept = "gzip, deflate, br";

    // Act
    let stream = alice
        .get_request(&format!("/rooms/{code}/events"))
        .header(ACCEPT_ENCODING, accept)
        .send()
        .await
        .expect("the event stream");
    let poll = tokio::time::timeout(
        PATIENCE,
        alice
            .get_request(&format!("/rooms/{code}/poll?after=0"))
            .header(ACCEPT_ENCODING, accept)
            .send(),
    )
    .await
    .expect("the poll answers")
    .expect("a poll");
    let home = get_encoded(&alice, "/", Some(accept)).await;
    let room = get_encoded(&alice, &format!("/rooms/{code}"), Some(accept)).await;

    // Assert
    for (what, response) in [
        ("event stream", &stream),
        ("poll", &poll),
        ("home page", &home),
        ("room page", &room),
    ] {
        assert_eq!(response.status(), StatusCode::OK, "{what}");
        assert_eq!(header(response, CONTENT_ENCODING), None, "{what}");
    }
}
