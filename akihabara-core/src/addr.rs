//! Addresses of peers: which are on the public internet, and which network
//! a caller's address belongs to for per-address budgets.
//!
//! ```
//! use akihabara_core::addr::{caller_network, is_public};
//! use std::net::IpAddr;
//! let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
//! let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
//! // One /64: one caller for the budgets.
//! assert_eq!(caller_network(a), caller_network(b));
//! assert!(!is_public("10.0.0.1".parse().unwrap()));
//! ```

use std::net::{IpAddr, Ipv6Addr};

/// Whether `ip` is on the public internet (a miner may be sent to it without
/// the operator's leave, a chain's axon address may be called):
/// not loopback, private, link-local, unspecified, broadcast, documentation
/// or shared (100.64/10) space.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// The network a caller's address counts as, for caps and budgets kept per
/// address: an IPv4 address itself (an IPv4-mapped IPv6 address as its IPv4
/// address), an IPv6 address as its /64. One IPv6 host is usually given a
/// whole /64, so counting its addresses one by one would give it 2^64
/// budgets.
pub fn caller_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

/// The block a caller's address belongs to, coarser than
/// [`caller_network`]: an IPv4 /24, an IPv6 /48 (a site's usual
/// allocation). For budgets that must stay bounded when more networks call
/// than can be counted one by one.
///
/// ```
/// use akihabara_core::addr::caller_block;
/// let a = caller_block("2001:db8:1:2::1".parse().unwrap());
/// assert_eq!(a, caller_block("2001:db8:1:ffff::9".parse().unwrap()));
/// assert_ne!(a, caller_block("2001:db8:2::1".parse().unwrap()));
/// assert_eq!(caller_block("192.0.2.77".parse().unwrap()).to_string(), "192.0.2.0");
/// ```
pub fn caller_block(ip: IpAddr) -> IpAddr {
    match caller_network(ip) {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & !0xff).into()),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_outside_the_public_internet_are_named() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        for public in ["1.1.1.1", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn ipv6_callers_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let net = |s: &str| caller_network(s.parse().expect("ip"));
        assert_eq!(
            net("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            net("2001:db8:1:2::")
        );
        assert_eq!(
            net("2001:db8:1:2:ffff::1"),
            "2001:db8:1:2::".parse::<IpAddr>().expect("ip")
        );
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:192.0.2.7"), net("192.0.2.7"));
        assert_ne!(net("192.0.2.7"), net("192.0.2.8"));
        assert_eq!(net("192.0.2.7"), "192.0.2.7".parse::<IpAddr>().expect("ip"));
    }
}
