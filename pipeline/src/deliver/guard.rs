//! Which addresses the notifier may call: public ones, and those in
//! `notifier.allowed_networks`. Loopback, private, link-local (where cloud metadata
//! services answer), unique-local, shared (CGNAT), unspecified and multicast addresses are
//! refused, however the URL names them: an IP literal is checked before the request, a
//! host name at connection time, on the very addresses it resolved to (the HTTP client's
//! resolver is [`GuardedResolver`]), so a name that resolves to a public address when the
//! config is saved and to an internal one later (DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// The networks allowed besides public addresses.
pub type Allowed = Arc<Vec<IpNet>>;

/// Parses `notifier.allowed_networks`: comma-separated CIDRs (`127.0.0.0/8, 10.1.0.0/16`)
/// or addresses (a single host). The error names the entry.
pub fn parse_allowed(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("notifier.allowed_networks: `{s}` is not a network (a CIDR such as 10.0.0.0/8) or an address")
                })
        })
        .collect()
}

/// What kind of non-public address `ip` is, if it is one.
fn internal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if first & 0xfe00 == 0xfc00 {
                Some("unique-local (private)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // NAT64: the IPv4 address it stands for decides.
                let s = v6.segments();
                internal_v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ))
            } else {
                None
            }
        }
    }
}

fn internal_v4(v4: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = v4.octets();
    if v4.is_loopback() {
        Some("loopback")
    } else if v4.is_private() {
        Some("private")
    } else if v4.is_link_local() {
        Some("link-local (where cloud metadata services answer)")
    } else if v4.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if v4.is_broadcast() || v4.is_multicast() {
        Some("multicast or broadcast")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (CGNAT)")
    } else {
        None
    }
}

/// `Ok` when the notifier may connect to `ip`; else why not (naming the setting).
pub fn check(ip: IpAddr, allowed: &[IpNet]) -> Result<(), String> {
    match internal(ip) {
        Some(kind) if !allowed.iter().any(|n| n.contains(&ip)) => Err(format!(
            "{ip} is a {kind} address; the notifier calls those only when notifier.allowed_networks lists them"
        )),
        _ => Ok(()),
    }
}

/// A connection refused by [`check`] (recognised in the HTTP client's error chain).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Whether `error` (or one of its sources) is a [`Refused`]: its message.
pub fn refused(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = e {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        e = err.source();
    }
    None
}

/// The HTTP client's resolver: the system's, keeping only the addresses [`check`] allows.
#[derive(Debug)]
pub struct GuardedResolver(pub Allowed);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut why = None;
            let ok: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match check(a.ip(), &allowed) {
                    Ok(()) => true,
                    Err(e) => {
                        why.get_or_insert(e);
                        false
                    }
                })
                .collect();
            if ok.is_empty() {
                let why = why.unwrap_or_else(|| format!("{host} has no address"));
                return Err(Box::new(Refused(format!("{host}: {why}")))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Checks a URL whose host is an IP literal (a name is checked when it resolves).
pub fn check_literal(url: &reqwest::Url, allowed: &[IpNet]) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => check(ip, allowed),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(check(ip, &[]).is_err(), "{ip} was allowed");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(check(ip.parse().unwrap(), &[]).is_ok(), "{ip} was refused");
        }
        let allowed = parse_allowed("127.0.0.0/8, 10.1.0.0/16,192.168.1.7").unwrap();
        assert!(check("127.0.0.1".parse().unwrap(), &allowed).is_ok());
        assert!(check("10.1.9.9".parse().unwrap(), &allowed).is_ok());
        assert!(check("10.2.0.1".parse().unwrap(), &allowed).is_err());
        assert!(check("192.168.1.7".parse().unwrap(), &allowed).is_ok());
        let e = parse_allowed("10.0.0.0/8, nonsense").unwrap_err();
        assert!(e.contains("`nonsense`"), "{e}");
    }
}
