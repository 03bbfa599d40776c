//! Health endpoints of the control-plane components and how to trust them:
//! - kubelet: `http://127.0.0.1:10248/healthz` (plain HTTP on loopback, as kubelet serves it);
//! - kube-apiserver: `https://127.0.0.1:<--secure-port|6443>/readyz`, verified against the cluster
//!   CA (the advertise address instead when its serving cert lacks the 127.0.0.1 SAN);
//! - kube-controller-manager / kube-scheduler: `https://127.0.0.1:<--secure-port|10257|10259>/healthz`,
//!   verified against the cluster CA when the component has `--tls-cert-file`, else as the
//!   self-signed localhost certificate it generates in memory ([`Trust::SelfSignedLocalhost`]).

use super::process::Process;
use crate::error::{Error, Result};
use crate::net::http::{self, Request};
use crate::net::tls::{ca_certs_from_file, TlsConfig, Trust};
use crate::pki::san::{sans_of, San};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

/// A component kubeha restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Kubelet,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
}

impl Component {
    pub const NAMES: [&'static str; 4] = [
        "kubelet",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ];

    pub fn parse(name: &str) -> Option<Component> {
        match name {
            "kubelet" => Some(Component::Kubelet),
            "kube-apiserver" => Some(Component::KubeApiserver),
            "kube-controller-manager" => Some(Component::KubeControllerManager),
            "kube-scheduler" => Some(Component::KubeScheduler),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Component::Kubelet => "kubelet",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
        }
    }

    pub fn default_port(&self) -> u16 {
        match self {
            Component::Kubelet => 10248,
            Component::KubeApiserver => 6443,
            Component::KubeControllerManager => 10257,
            Component::KubeScheduler => 10259,
        }
    }

    fn path(&self) -> &'static str {
        match self {
            Component::KubeApiserver => "/readyz",
            _ => "/healthz",
        }
    }
}

/// Where and how to ask a component whether it is healthy.
#[derive(Clone)]
pub struct HealthTarget {
    pub host: String,
    pub port: u16,
    pub path: String,
    /// `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
}

impl HealthTarget {
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}{}", self.host, self.port, self.path)
    }
}

/// One answer of a health endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthAnswer {
    pub ok: bool,
    pub status: Option<u16>,
    /// The body (trimmed, shortened) or the connection error.
    pub detail: String,
}

/// A parsed `health_url` override: scheme, host, port, path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl HealthUrl {
    pub fn parse(text: &str) -> Result<HealthUrl> {
        let bad = |why: &str| {
            Error::option(
                "health_url",
                format!("{text:?} {why}: write it as https://127.0.0.1:10259/healthz"),
            )
        };
        let (https, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("is not an http(s) URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6
                .split_once(']')
                .ok_or_else(|| bad("has an unclosed '['"))?;
            (format!("[{h}]"), p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("has no valid port (1-65535)"))?,
            None => return Err(bad("has no port")),
        };
        if host.is_empty() || host == "[]" {
            return Err(bad("has no host"));
        }
        Ok(HealthUrl {
            https,
            host,
            port,
            path: path.to_string(),
        })
    }
}

fn secure_port(component: Component, process: Option<&Process>) -> Result<u16> {
    match process.and_then(|p| p.flag("secure-port")) {
        None => Ok(component.default_port()),
        Some(v) => v.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            Error::Refused(format!(
                "{} runs with --secure-port={v:?}, which is not a port",
                component.name()
            ))
        }),
    }
}

/// The port a component's health endpoint listens on (from its command line).
pub fn health_port(component: Component, process: Option<&Process>) -> Result<u16> {
    secure_port(component, process)
}

/// The health target of a component, from its running process's flags (or `url` if given).
pub fn target_for(
    component: Component,
    process: Option<&Process>,
    ca_cert_path: &Path,
    url: Option<&HealthUrl>,
) -> Result<HealthTarget> {
    let loopback = Ipv4Addr::LOCALHOST.to_string();
    let (mut host, mut port, mut path, https) = match component {
        Component::Kubelet => (loopback.clone(), 10248, "/healthz".to_string(), false),
        _ => (
            loopback.clone(),
            secure_port(component, process)?,
            component.path().to_string(),
            true,
        ),
    };
    let cert_file = process.and_then(|p| p.flag("tls-cert-file"));
    if component == Component::KubeApiserver {
        // Use 127.0.0.1 when the serving cert names it (kubespray's does), else the advertise address.
        if let (Some(cert_file), Some(p)) = (&cert_file, process) {
            if let Ok(cert) = crate::pki::material::load_cert(Path::new(cert_file)) {
                let names_loopback = sans_of(&cert)
                    .iter()
                    .any(|s| s.same(&San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))));
                if !names_loopback {
                    if let Some(adv) = p.flag("advertise-address") {
                        host = adv;
                    }
                }
            }
        }
    } else if component != Component::Kubelet {
        if let Some(bind) = process.and_then(|p| p.flag("bind-address")) {
            if let Ok(ip) = bind.parse::<IpAddr>() {
                if !ip.is_unspecified() {
                    host = ip.to_string();
                }
            }
        }
    }
    let mut https = https;
    if let Some(u) = url {
        host = u.host.clone();
        port = u.port;
        path = u.path.clone();
        https = u.https;
    }
    let tls = if !https {
        None
    } else if component == Component::KubeApiserver
        || cert_file.is_some()
        || component == Component::Kubelet
    {
        Some(TlsConfig::with_ca(ca_certs_from_file(ca_cert_path)?))
    } else {
        Some(TlsConfig {
            trust: Trust::SelfSignedLocalhost,
            identity: None,
            server_name: None,
        })
    };
    Ok(HealthTarget {
        host,
        port,
        path,
        tls,
    })
}

/// Ask once.
pub fn probe(target: &HealthTarget, timeout: Duration) -> HealthAnswer {
    let req = Request::get(&target.path);
    let result = match &target.tls {
        Some(tls) => http::https(&target.host, target.port, tls, &req, timeout),
        None => http::http(&target.host, target.port, &req, timeout),
    };
    match result {
        Ok(resp) => HealthAnswer {
            ok: resp.status == 200 && resp.text().trim() == "ok",
            status: Some(resp.status),
            detail: resp.snippet(),
        },
        Err(e) => HealthAnswer {
            ok: false,
            status: None,
            detail: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_urls_parse_and_bad_ones_name_the_option() {
        let u = HealthUrl::parse("https://127.0.0.1:10259/healthz").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "127.0.0.1", 10259, "/healthz")
        );
        let u = HealthUrl::parse("http://[::1]:10248").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("[::1]", 10248, "/")
        );
        for bad in [
            "127.0.0.1:10259",
            "https://127.0.0.1/healthz",
            "https://x:0/",
            "ftp://x:1/",
        ] {
            let e = HealthUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains("health_url") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn controller_manager_without_cert_flag_is_trusted_as_self_signed() {
        let p = Process {
            pid: 1,
            comm: "kube-controller".into(),
            argv: vec![
                "kube-controller-manager".into(),
                "--secure-port=20257".into(),
                "--bind-address=0.0.0.0".into(),
            ],
        };
        let t = target_for(
            Component::KubeControllerManager,
            Some(&p),
            Path::new("/nonexistent"),
            None,
        )
        .unwrap();
        assert_eq!(t.url(), "https://127.0.0.1:20257/healthz");
        assert!(matches!(t.tls.unwrap().trust, Trust::SelfSignedLocalhost));
        let k = target_for(Component::Kubelet, None, Path::new("/nonexistent"), None).unwrap();
        assert_eq!(k.url(), "http://127.0.0.1:10248/healthz");
    }
}
