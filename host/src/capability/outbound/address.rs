//! Which addresses a tenant's component may connect to: deny by default.
//!
//! Only globally reachable unicast addresses pass: every block of the IANA IPv4 and IPv6
//! Special-Purpose Address Registries that is not marked globally reachable is refused, and so
//! is everything that is not unicast (multicast, broadcast) and, for IPv6, everything outside
//! the global unicast space `2000::/3` other than the well-known NAT64 prefix. IPv6 forms that
//! carry an IPv4 address — NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`), Teredo (`2001::/32`,
//! server and client), IPv4-mapped (`::ffff:0:0/96`) and IPv4-compatible (`::/96`) — have the
//! embedded address checked too: `64:ff9b::a00:5` reaches `10.0.0.5` through a NAT64 gateway.
//! Of these only NAT64 is ever allowed (the registry lists `64:ff9b::/96` as globally
//! reachable); the others are refused whatever they embed, as Rust's `is_global` does.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address may not be reached: the block it lies in, as the registries name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// The block, e.g. `10.0.0.0/8 private-use`.
    pub block: &'static str,
    /// The IPv4 address an IPv6 address embeds, when `block` is that address's.
    pub embedded: Option<Ipv4Addr>,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some(v4) => write!(f, "embeds {v4}, which is in {}", self.block),
            None => write!(f, "is in {}", self.block),
        }
    }
}

/// Whether (and why) `ip` is refused; `None` for a globally reachable unicast address.
pub fn blocked(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

/// The IPv4 blocks, the most specific first; `None` marks a globally reachable exception.
const V4: &[(Ipv4Addr, u8, Option<&str>)] = &[
    (Ipv4Addr::new(192, 0, 0, 9), 32, None),  // Port Control Protocol anycast
    (Ipv4Addr::new(192, 0, 0, 10), 32, None), // TURN anycast
    (Ipv4Addr::new(0, 0, 0, 0), 8, Some("0.0.0.0/8 \"this network\"")),
    (Ipv4Addr::new(10, 0, 0, 0), 8, Some("10.0.0.0/8 private-use")),
    (Ipv4Addr::new(100, 64, 0, 0), 10, Some("100.64.0.0/10 shared address space")),
    (Ipv4Addr::new(127, 0, 0, 0), 8, Some("127.0.0.0/8 loopback")),
    (Ipv4Addr::new(169, 254, 0, 0), 16, Some("169.254.0.0/16 link-local")),
    (Ipv4Addr::new(172, 16, 0, 0), 12, Some("172.16.0.0/12 private-use")),
    (Ipv4Addr::new(192, 0, 0, 0), 24, Some("192.0.0.0/24 IETF protocol assignments")),
    (Ipv4Addr::new(192, 0, 2, 0), 24, Some("192.0.2.0/24 documentation (TEST-NET-1)")),
    (Ipv4Addr::new(192, 88, 99, 0), 24, Some("192.88.99.0/24 6to4 relay anycast (deprecated)")),
    (Ipv4Addr::new(192, 168, 0, 0), 16, Some("192.168.0.0/16 private-use")),
    (Ipv4Addr::new(198, 18, 0, 0), 15, Some("198.18.0.0/15 benchmarking")),
    (Ipv4Addr::new(198, 51, 100, 0), 24, Some("198.51.100.0/24 documentation (TEST-NET-2)")),
    (Ipv4Addr::new(203, 0, 113, 0), 24, Some("203.0.113.0/24 documentation (TEST-NET-3)")),
    (Ipv4Addr::new(224, 0, 0, 0), 4, Some("224.0.0.0/4 multicast")),
    (Ipv4Addr::new(255, 255, 255, 255), 32, Some("255.255.255.255/32 limited broadcast")),
    (Ipv4Addr::new(240, 0, 0, 0), 4, Some("240.0.0.0/4 reserved")),
];

/// The IPv6 blocks, the most specific first; `None` marks a globally reachable block. What
/// none of them holds is outside global unicast.
const V6: &[(Ipv6Addr, u8, Option<&str>)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, Some("::/128 unspecified")),
    (Ipv6Addr::LOCALHOST, 128, Some("::1/128 loopback")),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96, Some("::ffff:0:0/96 IPv4-mapped")),
    (Ipv6Addr::UNSPECIFIED, 96, Some("::/96 IPv4-compatible (deprecated)")),
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96, None), // NAT64: its IPv4 address decides
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, Some("64:ff9b:1::/48 local-use IPv4/IPv6 translation")),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, Some("100::/64 discard-only")),
    (Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 1), 128, None), // PCP anycast
    (Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 2), 128, None), // TURN anycast
    (Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 3), 128, None), // DNS-SD SRP anycast
    (Ipv6Addr::new(0x2001, 3, 0, 0, 0, 0, 0, 0), 32, None),  // AMT
    (Ipv6Addr::new(0x2001, 4, 0x112, 0, 0, 0, 0, 0), 48, None), // AS112-v6
    (Ipv6Addr::new(0x2001, 0x20, 0, 0, 0, 0, 0, 0), 28, None), // ORCHIDv2
    (Ipv6Addr::new(0x2001, 0x30, 0, 0, 0, 0, 0, 0), 28, None), // drone remote ID entity tags
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, Some("2001::/32 Teredo")),
    (Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 48, Some("2001:2::/48 benchmarking")),
    (Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0), 28, Some("2001:10::/28 ORCHID (deprecated)")),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, Some("2001::/23 IETF protocol assignments")),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, Some("2001:db8::/32 documentation")),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, Some("2002::/16 6to4")),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, Some("3fff::/20 documentation")),
    (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3, None), // global unicast
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16, Some("5f00::/16 segment routing SIDs")),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, Some("fc00::/7 unique-local")),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, Some("fe80::/10 link-local")),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, Some("fec0::/10 site-local (deprecated)")),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, Some("ff00::/8 multicast")),
];

/// What lies outside every block of [`V6`].
const V6_ELSEWHERE: &str = "reserved IPv6 space outside global unicast 2000::/3";

fn blocked_v4(ip: Ipv4Addr) -> Option<Blocked> {
    let bits = ip.to_bits();
    let within = |net: Ipv4Addr, len: u8| (bits ^ net.to_bits()).checked_shr(32 - u32::from(len)).unwrap_or(0) == 0;
    let (_, _, block) = V4.iter().find(|(net, len, _)| within(*net, *len))?;
    block.map(|block| Blocked { block, embedded: None })
}

fn blocked_v6(ip: Ipv6Addr) -> Option<Blocked> {
    if let Some((v4, blocked)) = embedded_v4(ip).into_iter().flatten().find_map(|v4| blocked_v4(v4).map(|b| (v4, b))) {
        return Some(Blocked { embedded: Some(v4), ..blocked });
    }
    let bits = ip.to_bits();
    let within = |net: Ipv6Addr, len: u8| (bits ^ net.to_bits()).checked_shr(128 - u32::from(len)).unwrap_or(0) == 0;
    match V6.iter().find(|(net, len, _)| within(*net, *len)) {
        Some((_, _, block)) => block.map(|block| Blocked { block, embedded: None }),
        None => Some(Blocked { block: V6_ELSEWHERE, embedded: None }),
    }
}

/// The IPv4 addresses an IPv6 address carries: NAT64 and IPv4-mapped or -compatible in the
/// last 32 bits, 6to4 in bits 16-47, Teredo its server in bits 32-63 and its client, inverted,
/// in the last 32 bits.
fn embedded_v4(ip: Ipv6Addr) -> [Option<Ipv4Addr>; 2] {
    let o = ip.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => [Some(last), None],
        // `::` and `::1` are themselves, not IPv4-compatible forms of 0.0.0.0 and 0.0.0.1.
        [0, 0, 0, 0, 0, 0, _, _] if ip.to_bits() > 1 => [Some(last), None],
        [0x2002, ..] => [Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])), None],
        [0x2001, 0, ..] => [Some(Ipv4Addr::new(o[4], o[5], o[6], o[7])), Some(!last)],
        _ => [None, None],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> Option<Blocked> {
        blocked(ip.parse().unwrap())
    }

    #[test]
    fn refuses_every_special_purpose_ipv4_block() {
        for (ip, block) in [
            ("0.0.0.0", "0.0.0.0/8"),
            ("0.1.2.3", "0.0.0.0/8"),
            ("10.1.2.3", "10.0.0.0/8"),
            ("100.64.0.1", "100.64.0.0/10"),
            ("100.127.255.255", "100.64.0.0/10"),
            ("127.0.0.1", "127.0.0.0/8"),
            ("127.0.0.2", "127.0.0.0/8"),
            ("169.254.169.254", "169.254.0.0/16"),
            ("172.16.0.1", "172.16.0.0/12"),
            ("172.31.255.255", "172.16.0.0/12"),
            ("192.0.0.1", "192.0.0.0/24"),
            ("192.0.0.8", "192.0.0.0/24"),
            ("192.0.0.170", "192.0.0.0/24"),
            ("192.0.2.1", "192.0.2.0/24"),
            ("192.88.99.1", "192.88.99.0/24"),
            ("192.168.1.1", "192.168.0.0/16"),
            ("198.18.0.1", "198.18.0.0/15"),
            ("198.19.255.255", "198.18.0.0/15"),
            ("198.51.100.7", "198.51.100.0/24"),
            ("203.0.113.7", "203.0.113.0/24"),
            ("224.0.0.1", "224.0.0.0/4"),
            ("239.255.255.250", "224.0.0.0/4"),
            ("240.0.0.1", "240.0.0.0/4"),
            ("255.255.255.254", "240.0.0.0/4"),
            ("255.255.255.255", "255.255.255.255/32"),
        ] {
            let refusal = refused(ip).unwrap_or_else(|| panic!("{ip} passed"));
            assert!(refusal.block.starts_with(block), "{ip}: {refusal}");
            assert_eq!(refusal.embedded, None, "{ip}");
        }
    }

    #[test]
    fn refuses_every_special_purpose_ipv6_block() {
        for (ip, block) in [
            ("::", "::/128"),
            ("::1", "::1/128"),
            ("::ffff:93.184.216.34", "::ffff:0:0/96"),
            ("::808:808", "::/96"),
            ("64:ff9b:1::a00:1", "64:ff9b:1::/48"),
            ("64:ff9b:1::808:808", "64:ff9b:1::/48"),
            ("100::1", "100::/64"),
            ("2001:0:808:808::f7f7:f7f7", "2001::/32"), // Teredo of 8.8.8.8 for 8.8.8.8
            ("2001:2::1", "2001:2::/48"),
            ("2001:10::1", "2001:10::/28"),
            ("2001:1::4", "2001::/23"),
            ("2001:db8::1", "2001:db8::/32"),
            ("2002:808:808::1", "2002::/16"),
            ("3fff::1", "3fff::/20"),
            ("5f00::1", "5f00::/16"),
            ("fc00::1", "fc00::/7"),
            ("fd00::1", "fc00::/7"),
            ("fe80::1", "fe80::/10"),
            ("fec0::1", "fec0::/10"),
            ("ff02::1", "ff00::/8"),
            ("4000::1", V6_ELSEWHERE),
            ("1::1", V6_ELSEWHERE),
        ] {
            let refusal = refused(ip).unwrap_or_else(|| panic!("{ip} passed"));
            assert!(refusal.block.starts_with(block), "{ip}: {refusal}");
        }
    }

    #[test]
    fn checks_the_ipv4_address_inside_ipv6_forms() {
        for (ip, embedded, block) in [
            ("64:ff9b::a00:1", "10.0.0.1", "10.0.0.0/8"),              // NAT64
            ("64:ff9b::7f00:1", "127.0.0.1", "127.0.0.0/8"),           // NAT64
            ("64:ff9b::a9fe:a9fe", "169.254.169.254", "169.254"),      // NAT64 of the metadata service
            ("2002:a00:1::", "10.0.0.1", "10.0.0.0/8"),                // 6to4
            ("2002:c0a8:101::1", "192.168.1.1", "192.168.0.0/16"),     // 6to4
            ("::a00:1", "10.0.0.1", "10.0.0.0/8"),                     // IPv4-compatible
            ("::ffff:127.0.0.1", "127.0.0.1", "127.0.0.0/8"),          // IPv4-mapped
            ("::ffff:a9fe:a9fe", "169.254.169.254", "169.254"),        // IPv4-mapped
            ("2001:0:a00:1::", "10.0.0.1", "10.0.0.0/8"),              // Teredo server
            ("2001:0:808:808::80ff:fefe", "127.0.1.1", "127.0.0.0/8"), // Teredo client (inverted)
        ] {
            let refusal = refused(ip).unwrap_or_else(|| panic!("{ip} passed"));
            assert_eq!(refusal.embedded, Some(embedded.parse().unwrap()), "{ip}: {refusal}");
            assert!(refusal.block.starts_with(block), "{ip}: {refusal}");
        }
    }

    #[test]
    fn passes_globally_reachable_unicast() {
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.0.9",
            "192.0.0.10",
            "192.0.3.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "64:ff9b::808:808", // NAT64 of 8.8.8.8
            "2001:1::1",
            "2001:3::1",
            "2001:4:112::1",
            "2001:20::1",
            "2620:4f:8000::1",
        ] {
            assert_eq!(refused(public), None, "{public}");
        }
    }

    #[test]
    fn says_which_block_and_which_embedded_address() {
        assert_eq!(refused("10.0.0.5").unwrap().to_string(), "is in 10.0.0.0/8 private-use");
        let nat64 = refused("64:ff9b::a00:5").unwrap().to_string();
        assert_eq!(nat64, "embeds 10.0.0.5, which is in 10.0.0.0/8 private-use");
    }
}
