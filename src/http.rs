//! Small HTTP rules the routes share: who wants HTML, and which posts come from us.

use warp::Filter;

/// How a reply should be shaped for the client that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A browser navigating: pages, redirects after form posts.
    Html,
    /// curl, `fetch`, scripts: short plain-text bodies and bare statuses.
    Text,
}

impl Format {
    /// HTML when the `Accept` header names `text/html` at least as highly as any
    /// other type: true of a browser navigating or posting a form, false of curl
    /// (`*/*`) and of `fetch` (`*/*`).
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Text;
        };
        let mut html = 0.0_f32;
        let mut other = 0.0_f32;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "text/html" | "application/xhtml+xml" => html = html.max(quality),
                "*/*" | "" => {}
                _ => other = other.max(quality),
            }
        }
        if html > 0.0 && html >= other {
            Self::Html
        } else {
            Self::Text
        }
    }

    /// Reads the request's `Accept` header; never rejects.
    pub fn filter() -> impl Filter<Extract = (Format,), Error = warp::Rejection> + Clone {
        warp::header::optional::<String>("accept")
            .or_else(|_| async { Ok::<_, warp::Rejection>((None,)) })
            .map(|accept: Option<String>| Self::from_accept(accept.as_deref()))
    }
}

/// Whether a POST with this `Origin` may change anything: no `Origin` (curl, old
/// browsers) or one naming the host the request was sent to.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(host) = host else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        // `Origin: null` (sandboxed frames, some redirects) names no origin of ours.
        return false;
    };
    normalise(scheme, authority) == normalise(scheme, host)
}

fn normalise(scheme: &str, authority: &str) -> String {
    let authority = authority.trim().trim_end_matches('/').to_ascii_lowercase();
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => ":443",
        _ => ":80",
    };
    match authority.strip_suffix(default_port) {
        Some(bare) => bare.to_owned(),
        None => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_navigating_want_html() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert_eq!(Format::from_accept(Some(chrome)), Format::Html);
        assert_eq!(Format::from_accept(Some("text/html")), Format::Html);
    }

    #[test]
    fn curl_fetch_and_scripts_want_text() {
        for accept in [
            None,
            Some("*/*"),
            Some("application/json"),
            Some("text/event-stream"),
        ] {
            assert_eq!(Format::from_accept(accept), Format::Text, "{accept:?}");
        }
        let json_first = "application/json, text/html;q=0.5";
        assert_eq!(Format::from_accept(Some(json_first)), Format::Text);
        assert_eq!(Format::from_accept(Some("text/html;q=0")), Format::Text);
    }

    #[test]
    fn posts_from_our_own_pages_or_without_origin_are_allowed() {
        assert!(same_origin(None, Some("chat.example")));
        assert!(same_origin(
            Some("http://127.0.0.1:3000"),
            Some("127.0.0.1:3000")
        ));
        assert!(same_origin(
            Some("https://Chat.Example"),
            Some("chat.example:443")
        ));
    }

    #[test]
    fn posts_from_other_origins_are_refused() {
        assert!(!same_origin(
            Some("http://evil.example"),
            Some("chat.example")
        ));
        assert!(!same_origin(
            Some("http://127.0.0.1:3001"),
            Some("127.0.0.1:3000")
        ));
        assert!(!same_origin(Some("null"), Some("chat.example")));
        assert!(!same_origin(Some("http://chat.example"), None));
    }
}
