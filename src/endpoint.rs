//! Endpoint and server-URL validation shared by every module: `host:port` endpoints
//! (`controlPlaneEndpoint`, the VIP) and `https://host:port` server URLs (kubeconfigs).
//!
//! API: [`Endpoint::parse`] (`10.0.0.1:6443`, `vip.example.com:6443`, `[fd00::1]:6443`),
//! [`Endpoint::host`], [`Endpoint::port`], [`Endpoint::url`] (`https://...`), [`Host`],
//! [`ServerUrl::parse`] (an `https://host[:port][/path]` URL, port defaults to 443).
//! Errors name the value and say how to write it correctly.

use crate::error::{Error, Result};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A host: a DNS name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Dns(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

impl Host {
    /// Parse a bare host (no brackets, no port). `what` names the option or field in errors.
    pub fn parse(text: &str, what: &str) -> Result<Host> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(match ip {
                IpAddr::V4(v4) => Host::Ipv4(v4),
                IpAddr::V6(v6) => Host::Ipv6(v6),
            });
        }
        if is_dns_name(text) {
            return Ok(Host::Dns(text.to_ascii_lowercase()));
        }
        Err(Error::option(
            what,
            format!("{text:?} is neither an IP address nor a valid DNS name (letters, digits, '-' and '.', labels of 1-63 characters)"),
        ))
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Dns(_) => None,
            Host::Ipv4(a) => Some(IpAddr::V4(*a)),
            Host::Ipv6(a) => Some(IpAddr::V6(*a)),
        }
    }

    /// The host as it appears in a URL or endpoint (IPv6 in brackets).
    pub fn to_url_host(&self) -> String {
        match self {
            Host::Ipv6(a) => format!("[{a}]"),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Host {
    /// The bare host (a SAN value): IPv6 without brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Dns(n) => f.write_str(n),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "{a}"),
        }
    }
}

/// `host:port` as kubeadm's controlPlaneEndpoint takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: Host,
    port: u16,
}

impl Endpoint {
    /// Parse `host:port`; `what` names the option in errors.
    pub fn parse(text: &str, what: &str) -> Result<Endpoint> {
        let text = text.trim();
        let (host_text, port_text) = split_host_port(text, what)?;
        let port_text = port_text.ok_or_else(|| {
            Error::option(
                what,
                format!(
                    "{text:?} has no port: write it as host:port, for example {}:6443",
                    bracket_if_v6(host_text)
                ),
            )
        })?;
        let port = parse_port(port_text, text, what)?;
        let host = Host::parse(host_text, what)?;
        Ok(Endpoint { host, port })
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The same port on another host (the load balancer's address for an endpoint name that does
    /// not reach it yet).
    pub fn with_host(&self, host: Host) -> Endpoint {
        Endpoint {
            host,
            port: self.port,
        }
    }

    /// `https://host:port`.
    pub fn url(&self) -> String {
        format!("https://{self}")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host.to_url_host(), self.port)
    }
}

/// An `https://host[:port][/path]` server URL, as in a kubeconfig's `server:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub host: Host,
    pub port: u16,
    /// The path after the authority, `""` when none.
    pub path: String,
    /// The URL as given: what is written into a kubeconfig, byte for byte.
    given: String,
}

impl ServerUrl {
    pub fn parse(text: &str, what: &str) -> Result<ServerUrl> {
        let rest = text.strip_prefix("https://").ok_or_else(|| {
            Error::option(
                what,
                format!("{text:?} is not an https URL: write it as https://host:port, for example https://10.0.0.10:6443"),
            )
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') || path.contains(['?', '#']) {
            return Err(Error::option(
                what,
                format!("{text:?}: write the server as https://host:port without user, query or fragment"),
            ));
        }
        if authority.is_empty() || authority.starts_with(':') {
            return Err(Error::option(
                what,
                format!("{text:?} has no host: write it as https://host:port, for example https://10.0.0.10:6443"),
            ));
        }
        let (host_text, port_text) = split_host_port(authority, what)?;
        let port = match port_text {
            Some(p) => parse_port(p, text, what)?,
            None => 443,
        };
        let host = Host::parse(host_text, what)?;
        let path = if path == "/" { "" } else { path }.to_string();
        Ok(ServerUrl {
            host,
            port,
            path,
            given: text.to_string(),
        })
    }
}

impl ServerUrl {
    /// The URL exactly as the user wrote it.
    pub fn as_given(&self) -> &str {
        &self.given
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "https://{}:{}{}",
            self.host.to_url_host(),
            self.port,
            self.path
        )
    }
}

fn bracket_if_v6(host: &str) -> String {
    if host.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Split `host[:port]`, with IPv6 hosts in brackets. An unbracketed IPv6 is refused with the fix.
fn split_host_port<'a>(text: &'a str, what: &str) -> Result<(&'a str, Option<&'a str>)> {
    if text.is_empty() {
        return Err(Error::option(what, "is empty: write it as host:port"));
    }
    if let Some(inner) = text.strip_prefix('[') {
        let close = inner.find(']').ok_or_else(|| {
            Error::option(
                what,
                format!("{text:?} opens '[' without closing it: write IPv6 as [fd00::1]:6443"),
            )
        })?;
        let host = &inner[..close];
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(Error::option(
                what,
                format!("{text:?}: {host:?} in brackets is not an IPv6 address; only IPv6 addresses are written in brackets"),
            ));
        }
        let after = &inner[close + 1..];
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(Error::option(
                    what,
                    format!("{text:?}: expected ':port' after the bracketed IPv6 address"),
                )),
            },
        };
    }
    if text.matches(':').count() > 1 {
        let hint = match text.rsplit_once(':') {
            Some((h, p)) if h.parse::<Ipv6Addr>().is_ok() && p.parse::<u16>().is_ok() => {
                format!("[{h}]:{p}")
            }
            _ => "[fd00::1]:6443".to_string(),
        };
        return Err(Error::option(
            what,
            format!("{text:?} looks like an IPv6 address without brackets: write it as {hint}"),
        ));
    }
    Ok(match text.split_once(':') {
        Some(("", port)) => {
            return Err(Error::option(
                what,
                format!("{text:?} has no host before ':{port}': write it as host:port, for example 10.0.0.10:{port}"),
            ))
        }
        Some((h, p)) => (h, Some(p)),
        None => (text, None),
    })
}

fn parse_port(port: &str, whole: &str, what: &str) -> Result<u16> {
    match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(Error::option(
            what,
            format!("{whole:?}: port {port:?} is not a number from 1 to 65535 (the apiserver usually listens on 6443)"),
        )),
    }
}

/// RFC 1123 host name: labels of letters, digits and '-', not starting or ending with '-'.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    // An all-numeric dotted name would be a malformed IPv4 address, not a name.
    if name
        .split('.')
        .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_print() {
        let e = Endpoint::parse("10.0.0.10:6443", "x").unwrap();
        assert_eq!(e.port(), 6443);
        assert_eq!(e.url(), "https://10.0.0.10:6443");
        let e = Endpoint::parse("[fd00::10]:6443", "x").unwrap();
        assert_eq!(e.to_string(), "[fd00::10]:6443");
        assert_eq!(e.host().to_string(), "fd00::10");
        let e = Endpoint::parse("VIP.Example.com:443", "x").unwrap();
        assert_eq!(e.host(), &Host::Dns("vip.example.com".into()));
    }

    #[test]
    fn bad_endpoints_say_how_to_fix_them() {
        let cases = [
            ("10.0.0.10", "host:port"),
            ("10.0.0.10:0", "1 to 65535"),
            ("10.0.0.10:65536", "1 to 65535"),
            ("fd00::1:6443", "[fd00::1]:6443"),
            ("fd00::1", "without brackets"),
            ("bad_name!:6443", "DNS name"),
            ("[10.0.0.1]:6443", "not an IPv6"),
            ("10.0.0:6443", "DNS name"),
            (":6443", "\":6443\" has no host before ':6443'"),
        ];
        for (input, needle) in cases {
            let err = Endpoint::parse(input, "control_plane_endpoint")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{input}: {err}");
            assert!(err.contains("control_plane_endpoint"), "{err}");
        }
    }

    #[test]
    fn server_urls() {
        let u = ServerUrl::parse("https://10.0.0.10:6443", "server").unwrap();
        assert_eq!(u.port, 6443);
        assert_eq!(ServerUrl::parse("https://lb.local", "s").unwrap().port, 443);
        assert_eq!(
            ServerUrl::parse("https://[fd00::1]:6443/", "s")
                .unwrap()
                .to_string(),
            "https://[fd00::1]:6443"
        );
        for bad in [
            "http://10.0.0.1:6443",
            "10.0.0.1:6443",
            "https://10.0.0.1:0",
            "https://fd00::1:6443",
        ] {
            assert!(ServerUrl::parse(bad, "server").is_err(), "{bad}");
        }
        // the message names the URL as written, not an empty host
        for no_host in ["https://:6443", "https://", "https:///api"] {
            let err = ServerUrl::parse(no_host, "server").unwrap_err().to_string();
            assert!(
                err.contains(&format!("{no_host:?} has no host")) && err.contains("server"),
                "{no_host}: {err}"
            );
        }
    }
}
