//! Where other people can reach this server, as the start-up log tells it.
//!
//! Listening on every address (`--bind 0.0.0.0:3000` or `[::]:3000`), the log
//! lists one URL for each address of this machine's network interfaces, this
//! machine's own (loopback) first, as development servers do: the person who
//! runs the chat reads off the one to give their friends. Any IP address works
//! in `Host` (see [`crate::http::OurNames`]); a name needs `--public-host`, and
//! the log says so. IPv6 link-local addresses (`fe80::`) are left out: they
//! work only with a zone (`%eth0`), which browsers do not take in a URL.

use std::net::{IpAddr, SocketAddr};

use socket2::SockRef;
use tokio::net::TcpListener;

/// A URL to give people, and for whom it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareUrl {
    pub url: String,
    /// A loopback address: it reaches this machine only.
    pub this_machine_only: bool,
}

/// The URLs at which a server listening on `bound` can be reached, given this
/// machine's interface addresses: none unless `bound` is an unspecified address
/// (then `bound` alone says where). Listening on `[::]`, IPv4 addresses count
/// too when the socket takes IPv4 (`ipv4_too`, Linux's default). Loopback
/// first, then IPv4, then IPv6, each once, in the interfaces' order.
pub fn urls(
    scheme: &str,
    bound: SocketAddr,
    ipv4_too: bool,
    interfaces: &[IpAddr],
) -> Vec<ShareUrl> {
    if !bound.ip().is_unspecified() {
        return Vec::new();
    }
    let mut reachable: Vec<IpAddr> = Vec::new();
    for &ip in interfaces {
        let family_listened = match (bound.ip(), ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
            (IpAddr::V6(_), IpAddr::V4(_)) => ipv4_too,
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        };
        let usable = match ip {
            IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_multicast(),
            IpAddr::V6(v6) => {
                !v6.is_unspecified() && !v6.is_multicast() && !v6.is_unicast_link_local()
            }
        };
        if family_listened && usable && !reachable.contains(&ip) {
            reachable.push(ip);
        }
    }
    reachable.sort_by_key(|ip| (!ip.is_loopback(), ip.is_ipv6()));
    reachable
        .into_iter()
        .map(|ip| ShareUrl {
            url: format!("{scheme}://{}/", SocketAddr::new(ip, bound.port())),
            this_machine_only: ip.is_loopback(),
        })
        .collect()
}

/// Logs where people can reach the server listening on `listener`, and which
/// names it answers to (`public_hosts`, from `--public-host`).
pub fn log_where_to_reach(listener: &TcpListener, scheme: &str, public_hosts: &[String]) {
    let Ok(bound) = listener.local_addr() else {
        return;
    };
    let names = match public_hosts.is_empty() {
        true => None,
        false => Some(public_hosts.join(", ")),
    };
    if bound.ip().is_loopback() {
        tracing::info!(
            "only this machine can connect (right behind a proxy on it); \
             --bind 0.0.0.0:{} lets others on your network in",
            bound.port()
        );
    } else if bound.ip().is_unspecified() {
        let ipv4_too = bound.is_ipv6() && SockRef::from(listener).only_v6().is_ok_and(|only| !only);
        let interfaces = match if_addrs::get_if_addrs() {
            Ok(interfaces) => interfaces.iter().map(|interface| interface.ip()).collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot list this machine's addresses");
                Vec::new()
            }
        };
        let urls = urls(scheme, bound, ipv4_too, &interfaces);
        for url in &urls {
            match url.this_machine_only {
                true => tracing::info!("on this machine: {}", url.url),
                false => tracing::info!("on your network: {}", url.url),
            }
        }
        if !urls.iter().any(|url| !url.this_machine_only) {
            tracing::warn!("this machine has no network address yet: only it can connect");
        }
    }
    match (names, bound.ip().is_loopback()) {
        (Some(names), _) => tracing::info!("answering to IP addresses, localhost and {names}"),
        (None, true) => {}
        (None, false) => tracing::info!(
            "answering to IP addresses and localhost: for a name, start with --public-host NAME"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    fn listed(urls: &[ShareUrl]) -> Vec<&str> {
        urls.iter().map(|url| url.url.as_str()).collect()
    }

    const MACHINE: [&str; 6] = [
        "192.0.2.2",
        "fd00::2",
        "fe80::fc:ff:fe00:1",
        "127.0.0.1",
        "::1",
        "10.8.0.1",
    ];

    #[test]
    fn on_every_ipv4_address_each_ipv4_address_is_listed_loopback_first() {
        let urls = urls(
            "http",
            "0.0.0.0:3000".parse().unwrap(),
            false,
            &ips(&MACHINE),
        );
        assert_eq!(
            listed(&urls),
            [
                "http://127.0.0.1:3000/",
                "http://192.0.2.2:3000/",
                "http://10.8.0.1:3000/"
            ]
        );
        assert!(urls[0].this_machine_only);
        assert!(!urls[1].this_machine_only);
    }

    /// IPv6 addresses in brackets; link-local ones left out (they need a zone).
    #[test]
    fn on_every_ipv6_address_ipv6_in_brackets_and_ipv4_when_the_socket_takes_it() {
        let bound = "[::]:8443".parse().unwrap();
        let both = urls("https", bound, true, &ips(&MACHINE));
        assert_eq!(
            listed(&both),
            [
                "https://127.0.0.1:8443/",
                "https://[::1]:8443/",
                "https://192.0.2.2:8443/",
                "https://10.8.0.1:8443/",
                "https://[fd00::2]:8443/",
            ]
        );
        let v6_only = urls("https", bound, false, &ips(&MACHINE));
        assert_eq!(
            listed(&v6_only),
            ["https://[::1]:8443/", "https://[fd00::2]:8443/"]
        );
    }

    #[test]
    fn on_one_address_that_address_says_it_all() {
        for bound in ["127.0.0.1:3000", "192.0.2.2:3000", "[::1]:3000"] {
            assert!(urls("http", bound.parse().unwrap(), true, &ips(&MACHINE)).is_empty());
        }
    }

    #[test]
    fn each_address_is_listed_once() {
        let urls = urls(
            "http",
            "0.0.0.0:3000".parse().unwrap(),
            false,
            &ips(&["192.0.2.2", "192.0.2.2", "127.0.0.1"]),
        );
        assert_eq!(
            listed(&urls),
            ["http://127.0.0.1:3000/", "http://192.0.2.2:3000/"]
        );
    }
}
