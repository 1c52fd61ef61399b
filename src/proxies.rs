//! Which peers may speak for their clients: the `--trust-proxy` list.
//!
//! A reverse proxy tells the server who its client is (`X-Forwarded-For`), which
//! name and scheme the client used (`X-Forwarded-Host`, `-Proto`) and, behind a
//! sign-in proxy, who the person is (`--identity-header`). Any client can write
//! those headers, so they count only on connections whose peer is in this list,
//! as with nginx's `set_real_ip_from`: addresses and CIDR ranges, IPv4 or IPv6,
//! read once from the command line into [`TrustedProxies`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// What a bare `--trust-proxy` trusts: a proxy on the same machine, which
/// connects from the loopback address (IPv4 or IPv6). Never everyone.
pub const LOOPBACK: &str = "127.0.0.1,::1";

/// The peers whose forwarded headers count; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[AddressRange]>);

impl TrustedProxies {
    /// A comma-separated list of addresses and CIDR ranges, e.g.
    /// `127.0.0.1,10.0.0.0/8,::1`; at least one.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ranges = raw
            .split(',')
            .map(|entry| AddressRange::parse(entry.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(ranges.into()))
    }

    /// Whether a connection from `peer` comes from one of the proxies. An
    /// IPv4 peer seen on a dual-stack socket (`::ffff:10.0.0.1`) is the IPv4
    /// address it stands for.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|range| range.contains(peer))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, range) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{range}")?;
        }
        Ok(())
    }
}

/// One address (`10.1.2.3`, `::1`) or CIDR range (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    /// The first address of the range: no bits set past the prefix.
    network: IpAddr,
    /// How many leading bits every address of the range shares with `network`.
    prefix: u8,
}

impl AddressRange {
    fn parse(raw: &str) -> Result<Self, String> {
        let refusal = || {
            format!(
                "{raw:?} is not an address or a CIDR range: give the proxies' addresses, \
                 comma-separated, like 127.0.0.1,10.0.0.0/8,::1"
            )
        };
        let (address, prefix) = match raw.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (raw, None),
        };
        let address: IpAddr = address.trim().parse().map_err(|_| refusal())?;
        let width = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => width,
            Some(prefix) => match prefix.trim().parse::<u8>() {
                Ok(prefix) if prefix <= width => prefix,
                _ => return Err(format!("{raw:?}: the prefix length must be 0 to {width}")),
            },
        };
        let range = Self::new(address, prefix);
        if range.network != address {
            return Err(format!(
                "{raw:?} has bits set past its /{prefix} prefix: did you mean {range}?"
            ));
        }
        Ok(range.canonical())
    }

    /// The range of `prefix` bits around `address`.
    fn new(address: IpAddr, prefix: u8) -> Self {
        let network = match address {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_v4(prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(prefix))),
        };
        Self { network, prefix }
    }

    /// An IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) as the IPv4 range it
    /// is, since peers are compared in their canonical form.
    fn canonical(self) -> Self {
        match self.network {
            IpAddr::V6(v6) if self.prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Self::new(IpAddr::V4(v4), self.prefix - 96),
                None => self,
            },
            _ => self,
        }
    }

    fn contains(self, addr: IpAddr) -> bool {
        match (self.network, addr) {
            (IpAddr::V4(network), IpAddr::V4(addr)) => {
                u32::from(addr) & mask_v4(self.prefix) == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(addr)) => {
                u128::from(addr) & mask_v6(self.prefix) == u128::from(network)
            }
            _ => false,
        }
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = match self.network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        match self.prefix == width {
            true => write!(f, "{}", self.network),
            false => write!(f, "{}/{}", self.network, self.prefix),
        }
    }
}

/// The leading `prefix` bits of an IPv4 address set (`prefix` at most 32).
fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// The leading `prefix` bits of an IPv6 address set (`prefix` at most 128).
fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Addresses and ranges of both families are read, and only their peers
    /// are trusted.
    #[test]
    fn a_list_trusts_its_addresses_and_ranges_only() {
        let trusted = TrustedProxies::parse(" 127.0.0.1, 10.0.0.0/8 ,::1,fd00:1::/32").unwrap();
        for inside in [
            "127.0.0.1",
            "10.0.0.1",
            "10.255.255.255",
            "::1",
            "fd00:1:ffff::9",
        ] {
            assert!(trusted.contains(ip(inside)), "{inside}");
        }
        for outside in ["127.0.0.2", "11.0.0.1", "9.255.255.255", "::2", "fd00:2::1"] {
            assert!(!trusted.contains(ip(outside)), "{outside}");
        }
        assert_eq!(trusted.to_string(), "127.0.0.1,10.0.0.0/8,::1,fd00:1::/32");
    }

    /// An IPv4 peer on a dual-stack socket is its IPv4 address, and a mapped
    /// range is the IPv4 range.
    #[test]
    fn mapped_addresses_are_their_ipv4_selves() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert!(trusted.contains(ip("::ffff:10.1.2.3")));
        let mapped = TrustedProxies::parse("::ffff:192.168.0.0/112").unwrap();
        assert_eq!(mapped.to_string(), "192.168.0.0/16");
        assert!(mapped.contains(ip("192.168.7.7")));
        assert!(mapped.contains(ip("::ffff:192.168.7.7")));
    }

    /// `/0` is everyone, on purpose; `/32` and `/128` are one address.
    #[test]
    fn prefix_lengths_at_the_ends() {
        let everyone = TrustedProxies::parse("0.0.0.0/0,::/0").unwrap();
        assert!(everyone.contains(ip("203.0.113.1")) && everyone.contains(ip("2001:db8::1")));
        let one = TrustedProxies::parse("192.0.2.1/32,2001:db8::1/128").unwrap();
        assert_eq!(one.to_string(), "192.0.2.1,2001:db8::1");
        assert!(!one.contains(ip("192.0.2.2")) && !one.contains(ip("2001:db8::2")));
    }

    /// Nonsense, an old boolean value, an empty entry, a prefix too long and a
    /// range with host bits set are refused, each saying what is wrong.
    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for bad in ["", "true", "1", "localhost", "127.0.0.1,", "[::1]"] {
            let refusal = TrustedProxies::parse(bad).unwrap_err();
            assert!(
                refusal.contains("like 127.0.0.1,10.0.0.0/8,::1"),
                "{bad:?}: {refusal}"
            );
        }
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x"] {
            let refusal = TrustedProxies::parse(bad).unwrap_err();
            assert!(refusal.contains("0 to 32"), "{bad:?}: {refusal}");
        }
        let sloppy = TrustedProxies::parse("10.1.2.3/8").unwrap_err();
        assert!(sloppy.contains("did you mean 10.0.0.0/8?"), "{sloppy}");
    }
}
