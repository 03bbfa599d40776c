//! Subject alternative names, the one SAN type of the crate: parsing the operator's list (IPv6
//! with or without brackets), reading them from a certificate, comparing them the way TLS clients
//! do (IP SANs as addresses, DNS SANs case-insensitively), and the canonical form kubeadm's
//! `certSANs` get.

use crate::error::{Error, Result};
use openssl::x509::X509Ref;
use std::fmt;
use std::net::IpAddr;

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// A DNS name, kept as written; compared case-insensitively without a trailing dot.
    Dns(String),
    Ip(IpAddr),
}

impl San {
    /// Parse an operator-given SAN: an IPv4/IPv6 address (brackets allowed) or a DNS name.
    pub fn parse(text: &str) -> std::result::Result<San, String> {
        let t = text.trim();
        let unbracketed = t
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(t);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        if is_dns_name(t) {
            Ok(San::Dns(t.trim_end_matches('.').to_string()))
        } else {
            Err(format!(
                "{text:?} is neither an IP address nor a DNS name (letters, digits, '-' and '.', labels of 1-63 characters, an optional leading '*.')"
            ))
        }
    }

    /// Parse a whole option list, naming the option and the bad item.
    pub fn parse_list(option: &str, items: &[String]) -> Result<Vec<San>> {
        let mut out: Vec<San> = Vec::new();
        for item in items {
            let san = San::parse(item).map_err(|reason| Error::option(option, reason))?;
            if !out.iter().any(|s| s.same(&san)) {
                out.push(san);
            }
        }
        Ok(out)
    }

    /// The form compared and written into kubeadm's `certSANs`: an IP address canonical and
    /// without brackets, a DNS name in lowercase without a trailing dot.
    pub fn canonical(&self) -> String {
        match self {
            San::Dns(name) => name.trim_end_matches('.').to_ascii_lowercase(),
            San::Ip(ip) => canonical_ip(*ip).to_string(),
        }
    }

    /// Whether two SANs name the same thing for a TLS client.
    pub fn same(&self, other: &San) -> bool {
        match (self, other) {
            (San::Ip(a), San::Ip(b)) => canonical_ip(*a) == canonical_ip(*b),
            (San::Dns(a), San::Dns(b)) => a
                .trim_end_matches('.')
                .eq_ignore_ascii_case(b.trim_end_matches('.')),
            _ => false,
        }
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(name) => f.write_str(name),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// IPv4-mapped IPv6 addresses compare equal to their IPv4 form.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// A SAN name: an RFC 1123 host name ([`crate::endpoint::is_dns_name`], the rule kubeadm
/// applies to certSANs), optionally a wildcard `*.` in front.
fn is_dns_name(name: &str) -> bool {
    crate::endpoint::is_dns_name(name.strip_prefix("*.").unwrap_or(name))
}

/// The DNS and IP SANs of a certificate, in the certificate's order. Other kinds (email, URI) are
/// not serving names and are left out.
pub fn sans_of(cert: &X509Ref) -> Vec<San> {
    let mut out = Vec::new();
    if let Some(names) = cert.subject_alt_names() {
        for name in names.iter() {
            if let Some(dns) = name.dnsname() {
                out.push(San::Dns(dns.to_string()));
            } else if let Some(bytes) = name.ipaddress() {
                if let Ok(octets) = <[u8; 4]>::try_from(bytes) {
                    out.push(San::Ip(IpAddr::from(octets)));
                } else if let Ok(octets) = <[u8; 16]>::try_from(bytes) {
                    out.push(San::Ip(IpAddr::from(octets)));
                }
            }
        }
    }
    out
}

/// The required SANs that `present` does not cover, in the order they were required.
pub fn missing_sans(present: &[San], required: &[San]) -> Vec<San> {
    required
        .iter()
        .filter(|want| !present.iter().any(|have| have.same(want)))
        .cloned()
        .collect()
}

/// Render a SAN list for the result.
pub fn to_strings(sans: &[San]) -> Vec<String> {
    sans.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_compare_as_addresses_and_names_case_insensitively() {
        let have = vec![
            San::parse("KUBERNETES.default").unwrap(),
            San::parse("10.0.0.1").unwrap(),
            San::parse("fd00::0001").unwrap(),
        ];
        let want = vec![
            San::parse("kubernetes.default.").unwrap(),
            San::parse("[fd00::1]").unwrap(),
            San::parse("::ffff:10.0.0.1").unwrap(),
            San::parse("lb.example.com").unwrap(),
        ];
        let missing = missing_sans(&have, &want);
        assert_eq!(to_strings(&missing), vec!["lb.example.com"]);
    }

    #[test]
    fn bad_names_are_refused_naming_the_value() {
        for bad in [
            "",
            "a..b",
            "-bad.example",
            "a b",
            "10.0.0.1:6443",
            "https://x",
            "10.0.0",
            "under_score.example",
        ] {
            let err = San::parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(San::parse("*.apps.example.com").is_ok());
    }

    #[test]
    fn duplicates_in_the_option_are_dropped() {
        let list = San::parse_list("sans", &["a.example".into(), "A.example".into()]).unwrap();
        assert_eq!(list.len(), 1);
        let err = San::parse_list("sans", &["ok".into(), "no way".into()]).unwrap_err();
        assert!(err.to_string().starts_with("option `sans`"), "{err}");
    }
}
