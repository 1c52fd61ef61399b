//! Static files (CSS, JavaScript, icon), compiled into the binary so the release
//! build runs from any directory. Each has an `ETag`, so browsers revalidate
//! cheaply instead of downloading again.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 3] = [
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/style.css"),
    },
    Asset {
        name: "chat.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/chat.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../assets/favicon.svg"),
    },
];

/// Each asset's `ETag`, in the order of [`ASSETS`]: hashed once, on first use.
static ETAGS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|a| etag(a.body)).collect());

/// The response for `/assets/{name}`, or `None` when there is no such file.
pub fn response(name: &str, if_none_match: Option<&str>) -> Option<Response> {
    let index = ASSETS.iter().position(|a| a.name == name)?;
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let unchanged =
        if_none_match.is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag.as_str()));
    let mut response = if unchanged {
        let mut response = Response::new(Default::default());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        Response::new(asset.body.into())
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    Some(response)
}

fn etag(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}
