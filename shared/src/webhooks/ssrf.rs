//! SSRF protection: a subscriber URL may not reach into our own network. Every address a URL's
//! host resolves to is vetted, and the vetted addresses are the only ones the HTTP client may
//! connect to (its DNS resolver is [`VettingResolver`]), so a DNS answer that changes between a
//! check and the connection (rebinding) cannot slip past.
//!
//! Refused unless inside `WEBHOOK_ALLOW_NETS`: unspecified, loopback, private (RFC 1918, IPv6
//! unique-local), link-local (cloud metadata included: 169.254.169.254, fd00:ec2::254), CGNAT
//! (100.64/10), multicast, broadcast and reserved ranges; IPv6 forms that embed an IPv4 address
//! (mapped, compatible, NAT64, 6to4) are judged by the embedded address.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use ipnet::IpNet;

/// CIDR ranges explicitly allowed (WEBHOOK_ALLOW_NETS), e.g. `127.0.0.0/8` in tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AllowNets(Vec<IpNet>);

impl AllowNets {
    pub fn none() -> Self {
        Self::default()
    }

    /// True when `ip` (or the IPv4 address it embeds) lies in an allowed range.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.0
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
    }
}

impl FromStr for AllowNets {
    type Err = String;

    /// A comma- or space-separated CIDR list; a bare address is a /32 or /128.
    fn from_str(list: &str) -> Result<Self, String> {
        list.split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{item:?} is not a CIDR range"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

/// Why an address may not be connected to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused to connect to {ip}: {why} address (allow it with WEBHOOK_ALLOW_NETS)")]
pub struct Refused {
    pub ip: IpAddr,
    pub why: &'static str,
}

/// Ok when `ip` is public or explicitly allowed.
pub fn vet(ip: IpAddr, allow: &AllowNets) -> Result<(), Refused> {
    if allow.allows(ip) {
        return Ok(());
    }
    match forbidden(ip) {
        Some(why) => Err(Refused { ip, why }),
        None => Ok(()),
    }
}

/// Resolves `host:port` and vets every answer; refuses the name if any answer is forbidden
/// (a name that mixes public and private answers is itself suspicious).
pub async fn resolve_vetted(
    host: &str,
    port: u16,
    allow: &AllowNets,
) -> Result<Vec<SocketAddr>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        vet(ip, allow).map_err(|e| e.to_string())?;
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    for addr in &addrs {
        vet(addr.ip(), allow).map_err(|e| format!("{host}: {e}"))?;
    }
    Ok(addrs)
}

/// The HTTP client's DNS resolver: it only ever hands out vetted addresses.
#[derive(Clone, Debug)]
pub struct VettingResolver {
    pub allow: AllowNets,
}

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest substitutes the URL's port.
            let addrs = resolve_vetted(&host, 0, &allow).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: [([u8; 4], u8, &str); 16] = [
        ([169, 254, 169, 254], 32, "cloud metadata"),
        ([0, 0, 0, 0], 8, "unspecified"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([10, 0, 0, 0], 8, "private"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 168, 0, 0], 16, "private"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([100, 64, 0, 0], 10, "carrier-grade NAT"),
        ([192, 0, 0, 0], 24, "IETF protocol"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
        ([192, 88, 99, 0], 24, "6to4 relay"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("cloud metadata");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = embedded_v4(ip) {
        // Any IPv4 address reached through an IPv6 form is judged as itself.
        return forbidden_v4(v4).or(v4.is_broadcast().then_some("broadcast"));
    }
    let first = seg[0];
    match first {
        _ if first & 0xfe00 == 0xfc00 => Some("private (unique local)"),
        _ if first & 0xffc0 == 0xfe80 => Some("link-local"),
        _ if first & 0xffc0 == 0xfec0 => Some("site-local"),
        _ if first & 0xff00 == 0xff00 => Some("multicast"),
        0x2001 if seg[1] == 0x0db8 => Some("documentation"),
        0x2001 if seg[1] == 0 => Some("Teredo tunnel"),
        0x0100 if seg[1..4] == [0, 0, 0] => Some("discard-only"),
        _ => None,
    }
}

/// The IPv4 address inside IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`) addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let tail = Ipv4Addr::new(
        (seg[6] >> 8) as u8,
        seg[6] as u8,
        (seg[7] >> 8) as u8,
        seg[7] as u8,
    );
    match seg {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ip: &str, allow: &str, expected: Result<(), &str>) {
        let allow: AllowNets = allow.parse().unwrap();
        let got = vet(ip.parse().unwrap(), &allow).map_err(|r| r.why);
        assert_eq!(got, expected, "{ip} with allowance {allow:?}");
    }

    #[test]
    fn internal_addresses_are_refused_in_every_form() {
        let table = [
            ("10.1.2.3", "private"),
            ("172.31.255.255", "private"),
            ("192.168.0.10", "private"),
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
            ("2002:7f00:1::", "loopback"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fd12:3456::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
        ];
        for (ip, why) in table {
            check(ip, "", Err(why));
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            check(ip, "", Ok(()));
        }
    }

    #[test]
    fn the_allowance_opens_exactly_its_ranges() {
        check("127.0.0.1", "127.0.0.0/8", Ok(()));
        check("::ffff:127.0.0.1", "127.0.0.0/8", Ok(()));
        check("::1", "127.0.0.0/8", Err("loopback"));
        check("::1", "127.0.0.0/8, ::1/128", Ok(()));
        check("10.0.0.1", "127.0.0.0/8", Err("private"));
        check("10.0.0.1", "10.0.0.1", Ok(()));
        assert!("nonsense".parse::<AllowNets>().is_err());
    }

    #[tokio::test]
    async fn names_are_judged_by_what_they_resolve_to() {
        let none = AllowNets::none();
        assert!(resolve_vetted("localhost", 80, &none).await.is_err());
        assert!(resolve_vetted("[::1]", 80, &none).await.is_err());
        let loopback: AllowNets = "127.0.0.0/8, ::1/128".parse().unwrap();
        assert!(resolve_vetted("localhost", 80, &loopback).await.is_ok());
    }
}
