//! Which apiservers answer behind the endpoint, as seen from this host: every master serves its own
//! certificate (its own key and serial), so the certificate presented on a TLS connection through
//! the endpoint identifies the backend the load balancer chose. The survey opens `connections`
//! connections through the endpoint and one to each master directly, and reports the SHA-256
//! fingerprint of each presented certificate. Every chain is verified against the cluster CA; a
//! direct connection also verifies the master's address; a connection through the endpoint does
//! not check the endpoint's name, which the certificates do not carry before the conversion: the
//! caller compares exact fingerprints, which is stricter. The judgment (every master behind the
//! endpoint, nothing else) is the caller's, across hosts.
//!
//! With them, [`resolution`]: whether the endpoint's name resolves on this host, through the
//! system's resolver (getaddrinfo, as every client on the host resolves it).
//!
//! These are the only network reads of `control_plane_info`; they never send a request, only
//! look names up and handshake.

use crate::endpoint::{Endpoint, Host};
use crate::error::{Error, Result};
use crate::net::tls::{self, TlsConfig};
use serde_json::{json, Map, Value};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

/// Time for one connection and its handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Distinct error messages kept in the result (the rest are counted, not listed).
const KEEP_ERRORS: usize = 5;

/// One master's apiserver, connected to directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub address: Endpoint,
}

impl Backend {
    /// `name=address:port` (an IPv6 address in brackets).
    pub fn parse(text: &str, option: &str) -> Result<Backend> {
        let (name, address) = text.split_once('=').ok_or_else(|| {
            Error::option(
                option,
                format!("{text:?} is not name=address:port (for example master1=10.0.0.11:6443)"),
            )
        })?;
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::option(
                option,
                format!("{text:?} has no name before '='"),
            ));
        }
        Ok(Backend {
            name: name.to_string(),
            address: Endpoint::parse(address.trim(), option)?,
        })
    }
}

/// What to survey.
#[derive(Clone)]
pub struct Survey {
    pub endpoint: Option<Endpoint>,
    pub connections: u32,
    pub backends: Vec<Backend>,
    /// The cluster CA as trust, or why it could not be read (then every connection is an error
    /// naming that, so the caller still sees the whole survey instead of a failed module).
    pub tls: std::result::Result<TlsConfig, String>,
}

fn presented(
    address: &Endpoint,
    config: &std::result::Result<TlsConfig, String>,
    check_name: bool,
) -> std::result::Result<String, String> {
    let config = config.as_ref().map_err(|e| e.clone())?;
    let host = address.host().to_url_host();
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let cert = if check_name {
        tls::served_certificate(&host, address.port(), config, deadline)?
    } else {
        tls::presented_certificate(&host, address.port(), config, deadline)?
    };
    let der = cert
        .to_der()
        .map_err(|e| format!("cannot encode the presented certificate: {e}"))?;
    Ok(tls::fingerprint_sha256(&der))
}

/// The endpoint's name looked up as clients on this host look it up (`getaddrinfo`, so
/// `/etc/hosts` and DNS as nsswitch.conf orders them): `{name, addresses}` or `{name, error}`;
/// `None` for an IP address, which needs no lookup.
pub fn resolution(endpoint: &Endpoint) -> Option<Value> {
    let Host::Dns(name) = endpoint.host() else {
        return None;
    };
    Some(match (name.as_str(), endpoint.port()).to_socket_addrs() {
        Ok(addrs) => {
            let mut list: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            list.dedup();
            if list.is_empty() {
                json!({"name": name, "error": "resolves to no address"})
            } else {
                json!({"name": name, "addresses": list})
            }
        }
        Err(e) => json!({"name": name, "error": e.to_string()}),
    })
}

impl Survey {
    /// Connect and report: `through_endpoint` (one fingerprint or "error" per connection),
    /// `direct` ({master: fingerprint or "error"}), `errors` (the first distinct messages, each
    /// naming where it happened).
    pub fn run(&self) -> Value {
        // Every connection at once: a survey costs one connection's time, also when the endpoint
        // does not answer (each connection then waits for its own timeout or "no route to host").
        let (via, direct): (Vec<_>, Vec<_>) = std::thread::scope(|scope| {
            let via: Vec<_> = self
                .endpoint
                .iter()
                .flat_map(|e| std::iter::repeat(e).take(self.connections as usize))
                .map(|e| {
                    scope.spawn(move || (format!("through {e}"), presented(e, &self.tls, false)))
                })
                .collect();
            let direct: Vec<_> = self
                .backends
                .iter()
                .map(|b| {
                    scope.spawn(move || (b.name.clone(), presented(&b.address, &self.tls, true)))
                })
                .collect();
            let join = |handles: Vec<
                std::thread::ScopedJoinHandle<'_, (String, std::result::Result<String, String>)>,
            >| {
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            (
                                String::new(),
                                Err("the connection's thread panicked".into()),
                            )
                        })
                    })
                    .collect::<Vec<_>>()
            };
            (join(via), join(direct))
        });
        let mut errors: Vec<String> = Vec::new();
        let mut note = |line: String| {
            if errors.len() < KEEP_ERRORS && !errors.contains(&line) {
                errors.push(line);
            }
        };
        let mut through = Vec::new();
        for (where_, result) in via {
            match result {
                Ok(fp) => through.push(Value::from(fp)),
                Err(e) => {
                    note(format!("{where_}: {e}"));
                    through.push(Value::from("error"));
                }
            }
        }
        let mut by_master = Map::new();
        for (name, result) in direct {
            let fp = match result {
                Ok(fp) => fp,
                Err(e) => {
                    note(format!("{name} directly: {e}"));
                    "error".to_string()
                }
            };
            by_master.insert(name, Value::from(fp));
        }
        json!({"through_endpoint": through, "direct": by_master, "errors": errors})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_parses_name_address_and_port() {
        let b = Backend::parse("master1=10.0.0.11:6443", "lb_survey_backends").unwrap();
        assert_eq!(b.name, "master1");
        assert_eq!(b.address.port(), 6443);
        let v6 = Backend::parse("m2=[2001:db8::2]:6443", "lb_survey_backends").unwrap();
        assert_eq!(v6.address.host().to_url_host(), "[2001:db8::2]");
    }

    #[test]
    fn backend_refuses_what_is_not_name_equals_address() {
        for bad in [
            "10.0.0.11:6443",
            "=10.0.0.11:6443",
            "m1=10.0.0.11",
            "m1=host:notaport",
        ] {
            let e = Backend::parse(bad, "lb_survey_backends")
                .unwrap_err()
                .to_string();
            assert!(e.contains("lb_survey_backends"), "{bad}: {e}");
        }
    }

    #[test]
    fn resolution_of_names_only() {
        let ip = Endpoint::parse("10.0.0.10:6443", "t").unwrap();
        assert_eq!(resolution(&ip), None);
        let local = resolution(&Endpoint::parse("localhost:6443", "t").unwrap()).unwrap();
        assert_eq!(local["name"], "localhost");
        assert!(
            local["addresses"].as_array().is_some_and(|a| !a.is_empty()),
            "{local}"
        );
        // .invalid never resolves (RFC 6761)
        let bad = resolution(&Endpoint::parse("lb.kubeha.invalid:6443", "t").unwrap()).unwrap();
        assert!(
            bad["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}"
        );
        assert!(bad.get("addresses").is_none());
    }

    #[test]
    fn unreachable_endpoint_and_backend_report_error_not_failure() {
        // a port nothing listens on, on loopback: refused at once
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let addr = Endpoint::parse(&format!("127.0.0.1:{port}"), "t").unwrap();
        let survey = Survey {
            endpoint: Some(addr.clone()),
            connections: 3,
            backends: vec![Backend {
                name: "m1".into(),
                address: addr,
            }],
            tls: Ok(TlsConfig::with_ca(Vec::new())),
        };
        let out = survey.run();
        assert_eq!(out["through_endpoint"], json!(["error", "error", "error"]));
        assert_eq!(out["direct"]["m1"], "error");
        let errors = out["errors"].as_array().unwrap();
        assert_eq!(
            errors.len(),
            2,
            "one distinct message per place: {errors:?}"
        );
        assert!(errors[0]
            .as_str()
            .unwrap()
            .starts_with(&format!("through 127.0.0.1:{port}: ")));

        let no_ca = Survey {
            tls: Err("ca_cert_path /nonexistent/ca.crt: cannot read".into()),
            ..survey
        };
        let out = no_ca.run();
        assert_eq!(out["direct"]["m1"], "error");
        assert!(out["errors"][0]
            .as_str()
            .unwrap()
            .ends_with("/nonexistent/ca.crt: cannot read"));
    }
}
