//! Small HTTP rules the routes share: who wants HTML, which host names are ours,
//! which posts come from our own pages, and which responses no cache may keep.

use std::net::IpAddr;

use warp::Filter;
use warp::http::{HeaderValue, header};
use warp::reply::Response;

/// `Cache-Control` of every response that depends on who asks (the session
/// cookie, or the name a sign-in proxy vouches for): the home page that fills in
/// your name or says "Signed in as alice", room pages, members, polls, event
/// streams, and refusals that echo what was typed. `no-store` forbids every
/// cache, shared (proxies, CDNs) and private (the browser's: a shared computer,
/// the back button after leaving), so `private` beside it would add nothing:
/// REDbot warns that `no-store` overrides it. No `Vary` is needed either:
/// nothing is stored to be told apart.
pub const PRIVATE: &str = "no-store";

/// Marks `response` as for the one person who asked: see [`PRIVATE`]. Replaces
/// any `Cache-Control` it had, so one rule holds whatever built the response.
pub fn keep_private(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(PRIVATE));
    response
}

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

/// Reads a URL-encoded form into `T`. Stricter than browsers need: every name and
/// value must decode to UTF-8 (a lossy decoding would turn garbage into U+FFFD and
/// accept it), and a field given twice is refused.
pub fn read_form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    for pair in body.split(|&b| b == b'&') {
        for part in pair.splitn(2, |&b| b == b'=') {
            let spaced: Vec<u8> = part
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect();
            if percent_encoding::percent_decode(&spaced)
                .decode_utf8()
                .is_err()
            {
                return Err("The form is not valid UTF-8 text.".to_owned());
            }
        }
    }
    serde_urlencoded::from_bytes(body).map_err(|error| {
        tracing::debug!(%error, "unreadable form");
        "The form could not be read: each field once, as name=value pairs.".to_owned()
    })
}

/// Whether a POST with this `Origin` may change anything: no `Origin` (curl, old
/// browsers) or one naming exactly our origin — the scheme, host and port the
/// request was sent to.
pub fn same_origin(origin: Option<&str>, scheme: &str, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(host) = host else {
        return false;
    };
    let Some((origin_scheme, authority)) = origin.split_once("://") else {
        // `Origin: null` (sandboxed frames, some redirects) names no origin of ours.
        return false;
    };
    origin_scheme.eq_ignore_ascii_case(scheme)
        && normalise(scheme, authority) == normalise(scheme, host)
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

/// The host name of a `Host` value (`name:port`, `[v6]:port`, `name`), lower
/// case, without its port, brackets or final dot.
pub fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The names this server answers to (the `Host` of a request, without its port).
#[derive(Debug, Clone)]
pub struct OurNames {
    /// `--public-host` names, lower case.
    public_hosts: Vec<String>,
}

impl OurNames {
    pub fn new(public_hosts: &[String]) -> Self {
        Self {
            public_hosts: public_hosts.to_vec(),
        }
    }

    /// Whether a request for `host` is meant for us: any IP address (IPv4, or
    /// IPv6 in brackets), `localhost`, or a `--public-host` name. A page on
    /// another site can make a browser send an address only to that address, and
    /// then its origin is that address: ours. A page whose own name was
    /// re-pointed at our address (DNS rebinding) sends its own name, which is not
    /// on the list. So a friend who types `http://192.168.1.5:3000/` is answered,
    /// whichever address we listen on.
    pub fn contains(&self, host: &str) -> bool {
        if is_ip_literal(host) {
            return true;
        }
        let name = host_name(host);
        !name.is_empty()
            && (name == "localhost"
                || name.ends_with(".localhost")
                || self.public_hosts.contains(&name))
    }
}

/// Whether `host` (a `Host` value) names an IP address: `192.168.1.5`,
/// `192.168.1.5:3000`, `[fd00::2]`, `[fd00::2]:3000`. An IPv6 address must be
/// in brackets, as in a URL.
fn is_ip_literal(host: &str) -> bool {
    let host = host.trim();
    let name = host_name(host);
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => !host.starts_with('['),
        Ok(IpAddr::V6(_)) => host.starts_with('['),
        Err(_) => false,
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
        assert!(same_origin(None, "http", Some("chat.example")));
        assert!(same_origin(
            Some("http://127.0.0.1:3000"),
            "http",
            Some("127.0.0.1:3000")
        ));
        assert!(same_origin(
            Some("https://Chat.Example"),
            "https",
            Some("chat.example:443")
        ));
    }

    #[test]
    fn posts_from_other_origins_are_refused() {
        assert!(!same_origin(
            Some("http://evil.example"),
            "http",
            Some("chat.example")
        ));
        assert!(!same_origin(
            Some("http://127.0.0.1:3001"),
            "http",
            Some("127.0.0.1:3000")
        ));
        assert!(!same_origin(Some("null"), "http", Some("chat.example")));
        assert!(!same_origin(Some("http://chat.example"), "http", None));
    }

    /// The scheme is part of the origin: an http page may not post to our https.
    #[test]
    fn another_scheme_is_another_origin() {
        assert!(!same_origin(
            Some("http://chat.example"),
            "https",
            Some("chat.example")
        ));
        assert!(!same_origin(
            Some("https://chat.example:80"),
            "http",
            Some("chat.example")
        ));
    }

    #[derive(Debug, serde::Deserialize)]
    struct Named {
        name: String,
    }

    #[test]
    fn forms_must_be_utf8_with_each_field_once() {
        let named: Named = read_form(b"name=J%C3%BCrgen+M").unwrap();
        assert_eq!(named.name, "Jürgen M");
        assert!(read_form::<Named>(b"name=%FF%FE").is_err(), "not UTF-8");
        assert!(read_form::<Named>(b"name=a&name=b").is_err(), "twice");
        assert!(read_form::<Named>(&[b'n', b'a', b'm', b'e', b'=', 0xC3]).is_err());
    }

    fn names() -> OurNames {
        OurNames::new(&["chat.example".to_owned()])
    }

    #[test]
    fn our_hosts_are_localhost_and_the_public_names() {
        let ours = names();
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "chat.example",
            "Chat.Example.:443",
            "app.localhost:3000",
        ] {
            assert!(ours.contains(host), "{host}");
        }
        for foreign in [
            "evil.example",
            "chat.example.evil.example",
            "localhost.evil.example",
            "",
            ":3000",
            "[]",
        ] {
            assert!(!ours.contains(foreign), "{foreign}");
        }
    }

    /// An address cannot be re-pointed like a name (DNS rebinding needs a name),
    /// so any IP address is ours, with or without a port: the one a friend types.
    #[test]
    fn any_ip_address_is_ours_with_or_without_a_port() {
        let ours = names();
        for host in [
            "127.0.0.1:3000",
            "127.0.4.17",
            "192.168.1.5",
            "192.168.1.5:3000",
            "10.0.0.7.",
            "[::1]",
            "[::1]:3000",
            "[fd00::2]:3000",
            "[2001:DB8::1]",
            "[::ffff:192.168.1.5]:3000",
        ] {
            assert!(ours.contains(host), "{host}");
        }
    }

    /// Only addresses written as in a URL count: IPv6 in brackets, IPv4 without;
    /// anything else that merely looks numeric is a name, and not ours.
    #[test]
    fn odd_address_spellings_are_names_and_refused() {
        let ours = names();
        for foreign in [
            "[192.168.1.5]:3000",
            "::1",
            "fd00::2",
            "[fe80::1%25eth0]:3000",
            "192.168.1",
            "0x7f.1",
            "192.168.1.256",
            "1.2.3.4.example",
        ] {
            assert!(!ours.contains(foreign), "{foreign}");
        }
    }

    /// A page loaded from an address posts with that address as its origin; the
    /// post goes to the same address, so it is our own page's post.
    #[test]
    fn posts_from_a_page_loaded_by_ip_address_are_ours() {
        assert!(same_origin(
            Some("http://192.168.1.5:3000"),
            "http",
            Some("192.168.1.5:3000")
        ));
        assert!(same_origin(
            Some("http://[fd00::2]:3000"),
            "http",
            Some("[fd00::2]:3000")
        ));
        assert!(same_origin(
            Some("https://192.168.1.5"),
            "https",
            Some("192.168.1.5:443")
        ));
        assert!(!same_origin(
            Some("http://192.168.1.6:3000"),
            "http",
            Some("192.168.1.5:3000")
        ));
        assert!(!same_origin(
            Some("http://evil.example:3000"),
            "http",
            Some("192.168.1.5:3000")
        ));
    }
}
