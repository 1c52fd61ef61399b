//! Who is asking, and by which name they reached us.
//!
//! The server loop tags every request with its [`Peer`] (the socket's address,
//! and whether it came over TLS). [`Site`] turns that into the client address the
//! limits count, the host the request was meant for, and the origin our pages are
//! served from. `X-Forwarded-For`, `-Host` and `-Proto` count only on
//! connections from the proxies `--trust-proxy` names: from anyone else they
//! would let any client claim any address or host. With `--identity-header`, it
//! also reads who the sign-in proxy says the person is (their name everywhere,
//! never what they type), and refuses requests that did not come through it.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use warp::http::{HeaderMap, HeaderName};
use warp::{Filter, Rejection};

use crate::error::{AppError, echo};
use crate::http::{OurNames, host_name, same_origin};
use crate::input::DisplayName;
use crate::limits::AddressKey;
use crate::proxies::TrustedProxies;

/// The connection a request came on; the server loop adds it to every request.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
}

/// The client behind a request, as the limits count it.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The client's address: the socket's, or on a connection from a trusted
    /// proxy the one the proxy saw.
    pub ip: IpAddr,
    pub key: AddressKey,
}

/// Which names are ours and which headers to believe; cheap to clone.
#[derive(Clone)]
pub struct Site {
    /// The names requests may be for.
    names: Arc<OurNames>,
    /// The names refused so far that the log has named.
    refused: Arc<RefusedHosts>,
    /// The peers whose `X-Forwarded-*` and identity headers count
    /// (`--trust-proxy`); `None` believes nobody's.
    proxies: Option<TrustedProxies>,
    /// The header the sign-in proxy names each person in, if names come from it.
    identity_header: Option<HeaderName>,
}

/// What a request says about where it was sent.
struct Target {
    scheme: &'static str,
    host: Option<String>,
}

impl Site {
    pub fn new(
        names: OurNames,
        proxies: Option<TrustedProxies>,
        identity_header: Option<HeaderName>,
    ) -> Self {
        Self {
            names: Arc::new(names),
            refused: Arc::default(),
            proxies,
            identity_header,
        }
    }

    /// Whether names come from the sign-in proxy's header.
    pub fn names_are_identities(&self) -> bool {
        self.identity_header.is_some()
    }

    /// Who the sign-in proxy says the person is, with `--identity-header`
    /// (`None` without it). A request without the header is `401`, and so is
    /// one from a peer that is not a trusted proxy, whatever it says: it did
    /// not pass the sign-in. One whose identity cannot be a name here is `403`.
    pub fn identity(
        &self,
    ) -> impl Filter<Extract = (Option<DisplayName>,), Error = Rejection> + Clone + use<> {
        let header = self.identity_header.clone();
        self.came_through_proxy()
            .and(warp::header::headers_cloned())
            .and_then(move |from_proxy: bool, headers: HeaderMap| {
                let identity = header.as_ref().map(|header| {
                    if !from_proxy {
                        return Err(AppError::NotSignedIn);
                    }
                    let value = headers.get(header).ok_or(AppError::NotSignedIn)?;
                    let text = value.to_str().map_err(|_| AppError::BadIdentity {
                        reason: "It is not plain text.".to_owned(),
                    })?;
                    DisplayName::parse(text)
                        .map_err(|invalid| AppError::BadIdentity { reason: invalid.0 })
                });
                async move { identity.transpose().map_err(warp::reject::custom) }
            })
    }

    /// Refuses requests without a valid identity, with `--identity-header`.
    pub fn signed_in(&self) -> impl Filter<Extract = (), Error = Rejection> + Clone + use<> {
        self.identity().map(|_| ()).untuple_one()
    }

    /// Whether the request came on a connection from a trusted proxy.
    fn came_through_proxy(
        &self,
    ) -> impl Filter<Extract = (bool,), Error = Infallible> + Clone + use<> {
        let proxies = self.proxies.clone();
        warp::ext::optional::<Peer>().map(move |peer: Option<Peer>| {
            peer.zip(proxies.as_ref())
                .is_some_and(|(peer, proxies)| proxies.contains(peer.addr.ip()))
        })
    }

    /// The request's client.
    pub fn client(&self) -> impl Filter<Extract = (Client,), Error = Infallible> + Clone + use<> {
        warp::ext::optional::<Peer>()
            .and(self.came_through_proxy())
            .and(warp::header::headers_cloned())
            .map(
                move |peer: Option<Peer>, from_proxy: bool, headers: HeaderMap| {
                    let socket = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.addr.ip());
                    let ip = match from_proxy {
                        true => forwarded_for(&headers).unwrap_or(socket),
                        false => socket,
                    };
                    Client {
                        ip,
                        key: AddressKey::of(ip),
                    }
                },
            )
    }

    /// Refuses (`421`) a request for a host name that is not ours, and tells the
    /// operator (once per name) how to make it ours.
    pub fn known_host(&self) -> impl Filter<Extract = (), Error = Rejection> + Clone + use<> {
        let names = Arc::clone(&self.names);
        let refused = Arc::clone(&self.refused);
        self.target()
            .and_then(move |target: Target| {
                let ours = target
                    .host
                    .as_deref()
                    .is_some_and(|host| names.contains(host));
                if let (false, Some(host)) = (ours, target.host.as_deref()) {
                    refused.tell_operator(&host_name(host));
                }
                async move {
                    match ours {
                        true => Ok(()),
                        false => Err(warp::reject::custom(AppError::UnknownHost)),
                    }
                }
            })
            .untuple_one()
    }

    /// Refuses (`403`) a post that another site's page made a browser send
    /// (CSRF): its `Origin` must be exactly the scheme, host and port the request
    /// was sent to.
    pub fn from_this_site(&self) -> impl Filter<Extract = (), Error = Rejection> + Clone + use<> {
        warp::header::optional::<String>("origin")
            .or_else(|_| async { Ok::<_, Rejection>((Some("?".to_owned()),)) })
            .and(self.target())
            .and_then(|origin: Option<String>, target: Target| async move {
                match same_origin(origin.as_deref(), target.scheme, target.host.as_deref()) {
                    true => Ok(()),
                    false => Err(warp::reject::custom(AppError::CrossOrigin)),
                }
            })
            .untuple_one()
    }

    /// The scheme and host the client used: from the request, or on a
    /// connection from a trusted proxy from the `X-Forwarded-*` headers it added.
    fn target(&self) -> impl Filter<Extract = (Target,), Error = Infallible> + Clone + use<> {
        warp::ext::optional::<Peer>()
            .and(self.came_through_proxy())
            .and(warp::host::optional().or_else(|_| async { Ok::<_, Infallible>((None,)) }))
            .and(text_header("x-forwarded-host"))
            .and(text_header("x-forwarded-proto"))
            .map(
                move |peer: Option<Peer>,
                      from_proxy: bool,
                      host: Option<warp::host::Authority>,
                      forwarded_host: Option<String>,
                      forwarded_proto: Option<String>| {
                    let mut scheme = match peer.is_some_and(|p| p.tls) {
                        true => "https",
                        false => "http",
                    };
                    let mut host = host.map(|h| h.as_str().to_owned());
                    if from_proxy {
                        if let Some(forwarded) = first_entry(forwarded_host) {
                            host = Some(forwarded);
                        }
                        match first_entry(forwarded_proto).as_deref() {
                            Some(proto) if proto.eq_ignore_ascii_case("https") => scheme = "https",
                            Some(proto) if proto.eq_ignore_ascii_case("http") => scheme = "http",
                            _ => {}
                        }
                    }
                    Target { scheme, host }
                },
            )
    }
}

/// Most refused host names the log names; later ones are only counted (the
/// `unknown_host` refusals in the metrics).
const MAX_LOGGED_HOSTS: usize = 32;

/// The refused host names the log has named. A person who reaches the server by
/// a name it was not told about gets a page for guests; the operator's hint
/// (which name, and `--public-host`) goes to the log, once per name and for at
/// most [`MAX_LOGGED_HOSTS`] names: requests for made-up names (scanners, DNS
/// rebinding) cannot flood the log or fill the memory.
#[derive(Debug, Default)]
struct RefusedHosts {
    /// Each at most [`echo`]'s length. A std mutex, never held across an await.
    logged: Mutex<HashSet<String>>,
}

/// What to log about a refused host name.
#[derive(Debug, PartialEq, Eq)]
enum Mention {
    /// The name, with the hint.
    Name,
    /// The name, with the hint, and that further names go unmentioned.
    LastName,
    /// Nothing: already named, or enough names named.
    Nothing,
}

impl RefusedHosts {
    /// Logs the hint for `name` if it is new and the log has room for it. No
    /// name at all (`Host: :3000`) is nothing an operator could add.
    fn tell_operator(&self, name: &str) {
        if name.is_empty() {
            return;
        }
        let name = echo(name);
        let mention = self.mention(&name);
        if mention == Mention::Nothing {
            return;
        }
        tracing::warn!(
            "refused a request for the host name {name}: \
             if people reach this server by that name, start it with --public-host {name}"
        );
        if mention == Mention::LastName {
            tracing::warn!(
                "{MAX_LOGGED_HOSTS} host names refused: further ones are only counted \
                 (unknown_host in the metrics)"
            );
        }
    }

    fn mention(&self, name: &str) -> Mention {
        let Ok(mut logged) = self.logged.lock() else {
            return Mention::Nothing;
        };
        if logged.len() >= MAX_LOGGED_HOSTS || !logged.insert(name.to_owned()) {
            return Mention::Nothing;
        }
        match logged.len() == MAX_LOGGED_HOSTS {
            true => Mention::LastName,
            false => Mention::Name,
        }
    }
}

/// The (first) header `name` as text; one that is not text counts as absent.
fn text_header(
    name: &'static str,
) -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>(name).or_else(|_| async { Ok::<_, Infallible>((None,)) })
}

/// The first entry of a comma-separated header value, trimmed.
fn first_entry(value: Option<String>) -> Option<String> {
    let value = value?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then(|| first.to_owned())
}

/// The address the proxy saw: the last entry of the last `X-Forwarded-For`
/// (earlier entries are whatever the client claimed). A bare address, or one
/// with a port.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get_all("x-forwarded-for").iter().next_back()?;
    let last = value.to_str().ok()?.rsplit(',').next()?.trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    /// Each refused name is mentioned once, and only so many names at all.
    #[test]
    fn refused_host_names_are_mentioned_once_each_up_to_a_bound() {
        let refused = RefusedHosts::default();
        assert_eq!(refused.mention("chat.example"), Mention::Name);
        assert_eq!(refused.mention("chat.example"), Mention::Nothing);
        for n in 2..MAX_LOGGED_HOSTS {
            assert_eq!(refused.mention(&format!("n{n}.example")), Mention::Name);
        }
        assert_eq!(refused.mention("last.example"), Mention::LastName);
        assert_eq!(refused.mention("more.example"), Mention::Nothing);
        assert_eq!(refused.mention("chat.example"), Mention::Nothing);
    }

    /// Only the entry our proxy appended counts; what the client wrote before it
    /// does not.
    #[test]
    fn the_forwarded_address_is_the_last_one() {
        let forwarded = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
        assert_eq!(forwarded_for(&forwarded), Some([203, 0, 113, 7].into()));
        let two = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.1:4711"),
        ]);
        assert_eq!(forwarded_for(&two), Some([198, 51, 100, 1].into()));
        assert_eq!(
            forwarded_for(&headers(&[("x-forwarded-for", "junk")])),
            None
        );
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
    }
}
