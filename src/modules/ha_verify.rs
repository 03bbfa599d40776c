//! `kubeha.control_plane.ha_verify`: prove the control-plane endpoint serves the API. The
//! endpoint's TLS certificate must verify against the cluster CA for the endpoint's host (DNS name
//! or IP), `/readyz` must answer `ok`, and an authenticated GET (client certificate of the
//! kubeconfig) must work. With `drill: local_apiserver` it holds this host's kube-apiserver down
//! ([`park`]), sends `requests` authenticated requests through the endpoint, and always brings the
//! apiserver back and waits until it is ready. With `served_cert_path` the endpoint must also
//! present exactly that certificate (the one on disk, after a reissue); with `wait` the checks are
//! repeated inside this one call until they pass, so a readiness wait costs one remote command
//! instead of one per retry. With `join_discovery` it then runs the discovery `kubeadm join`
//! performs through the endpoint ([`discovery`]): cluster-info read anonymously, its signature
//! checked with every signing bootstrap token, its CA checked against the cluster CA's pin, its
//! server the endpoint. Docs: the sidecar `ha_verify.yml`.

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::host::health::{self, Component, HealthTarget, HealthUrl};
use crate::host::park::{self, ParkPaths, Parked};
use crate::host::process;
use crate::kubeapi::client::ApiServer;
use crate::kubeapi::discovery::{self, Discovered};
use crate::kubeconfig::Kubeconfig;
use crate::net::http::{self, Request, Response};
use crate::net::tls::{self, ca_certs_from_file, ClientIdentity, TlsConfig};
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::protocol::{Module, ModuleOutput};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use openssl::x509::X509;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const AUTH_PATH: &str = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config";
const FALLBACK_PATH: &str = "/api/v1/namespaces";
const POLL: Duration = Duration::from_millis(200);
/// Pause between two tries of the checks while `wait` runs.
const WAIT_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drill {
    None,
    LocalApiserver,
}

/// The module's options.
#[derive(Debug, Clone)]
pub struct HaVerify {
    pub endpoint: Endpoint,
    pub ca_cert_path: PathBuf,
    pub kubeconfig: PathBuf,
    pub drill: Drill,
    pub requests: u32,
    pub interval: Duration,
    pub timeout: Duration,
    pub manifests_dir: PathBuf,
    pub park_dir: PathBuf,
    pub local_health_url: Option<HealthUrl>,
    pub wait: Duration,
    pub served_cert_path: Option<PathBuf>,
    pub join_discovery: bool,
}

/// What must be repaired before checking: a manifest an interrupted drill left parked.
pub struct Plan {
    leftover: Option<String>,
}

/// What the checks found.
pub struct Verified {
    /// The leftover manifest put back (in check mode: that would be).
    leftover: Option<String>,
    /// The drill's figures; `None` without a drill or in check mode.
    drill: Option<DrillOutcome>,
    /// How long the checks took to pass.
    waited: Waited,
    /// What a joining node learns, with `join_discovery`.
    discovered: Option<Discovered>,
}

/// Tries of the checks until they passed.
pub struct Waited {
    attempts: u32,
    seconds: f64,
    /// SHA-256 fingerprint of the served certificate, when `served_cert_path` was given.
    served_sha256: Option<String>,
}

/// A passed drill.
pub struct DrillOutcome {
    stats: DrillStats,
    stopped_seconds: f64,
    pid_before: i32,
}

impl Module for HaVerify {
    const SPEC: &'static ModuleSpec = &ModuleSpec {
        name: "ha_verify",
        options: &[
            OptionSpec::new("endpoint", Kind::Str, "The endpoint, C(host:port).").required(),
            OptionSpec::new("ca_cert_path", Kind::Path, "The cluster CA.")
                .default(Default::Str("/etc/kubernetes/ssl/ca.crt")),
            OptionSpec::new(
                "kubeconfig",
                Kind::Path,
                "Kubeconfig whose current user has a client certificate.",
            )
            .default(Default::Str("/etc/kubernetes/admin.conf")),
            OptionSpec::new(
                "drill",
                Kind::Str,
                "C(none) checks only; C(local_apiserver) runs the drill.",
            )
            .choices(&["none", "local_apiserver"])
            .default(Default::Str("none")),
            OptionSpec::new(
                "requests",
                Kind::Int {
                    min: 1,
                    max: 10_000,
                },
                "Authenticated requests sent during the drill (1-10000).",
            )
            .default(Default::Int(20)),
            OptionSpec::new(
                "interval_ms",
                Kind::Int {
                    min: 0,
                    max: 10_000,
                },
                "Pause between drill requests in milliseconds.",
            )
            .default(Default::Int(100)),
            OptionSpec::new(
                "timeout",
                Kind::Int { min: 1, max: 3600 },
                "Seconds allowed for each wait (apiserver stop, readiness after restore).",
            )
            .default(Default::Int(120)),
            OptionSpec::new(
                "manifests_dir",
                Kind::Path,
                "kubelet's static pod directory.",
            )
            .default(Default::Str("/etc/kubernetes/manifests")),
            OptionSpec::new(
                "drill_park_dir",
                Kind::Path,
                "Where the manifest waits during the drill; must be outside O(manifests_dir).",
            )
            .default(Default::Str("/etc/kubernetes/manifests-kubeha-drill")),
            OptionSpec::new("local_health_url", Kind::Str, LOCAL_HEALTH_URL_DOC),
            OptionSpec::new(
                "wait",
                Kind::Int { min: 0, max: 3600 },
                "Seconds to keep repeating the checks until they pass (0 checks once).",
            )
            .default(Default::Int(0)),
            OptionSpec::new(
                "served_cert_path",
                Kind::Path,
                "PEM certificate the endpoint must present as its serving certificate (compared byte for byte).",
            ),
            OptionSpec::new(
                "join_discovery",
                Kind::Bool,
                "Also run the discovery C(kubeadm join) performs through the endpoint - cluster-info read anonymously, its signature checked with every signing bootstrap token, its CA against the cluster CA's pin, its server the endpoint (retried while O(wait) lasts).",
            )
            .default(Default::Bool(false)),
        ],
    };
    type Plan = Plan;
    type Applied = Verified;

    fn from_options(o: &Options) -> Result<Self> {
        let endpoint = Endpoint::parse(&o.string("endpoint")?, "endpoint")?;
        let drill = match o.string("drill")?.as_str() {
            "local_apiserver" => Drill::LocalApiserver,
            _ => Drill::None,
        };
        let manifests_dir = o.path("manifests_dir")?;
        let park_dir = o.path("drill_park_dir")?;
        if park_dir.starts_with(&manifests_dir) {
            return Err(Error::option(
                "drill_park_dir",
                format!("{} is inside the manifests directory {}; kubelet would run the parked manifest: choose a directory outside it", park_dir.display(), manifests_dir.display()),
            ));
        }
        let local_health_url = o
            .opt_string("local_health_url")?
            .map(|u| {
                HealthUrl::parse(&u).map_err(|e| Error::option("local_health_url", e.to_string()))
            })
            .transpose()?;
        Ok(HaVerify {
            endpoint,
            ca_cert_path: o.path("ca_cert_path")?,
            kubeconfig: o.path("kubeconfig")?,
            drill,
            requests: o.int("requests")? as u32,
            interval: Duration::from_millis(o.int("interval_ms")? as u64),
            timeout: Duration::from_secs(o.int("timeout")? as u64),
            manifests_dir,
            park_dir,
            local_health_url,
            wait: Duration::from_secs(o.int("wait")? as u64),
            served_cert_path: o.opt_path("served_cert_path")?,
            join_discovery: o.bool("join_discovery")?,
        })
    }

    fn plan(&self) -> Result<Plan> {
        Ok(Plan {
            leftover: park::restore_leftover(&self.park_paths(), true)?,
        })
    }

    fn apply(&self, plan: &Plan, check_mode: bool) -> Result<Verified> {
        // A drill killed before it could restore the apiserver manifest is repaired first.
        let leftover = match (&plan.leftover, check_mode) {
            (Some(_), false) => park::restore_leftover(&self.park_paths(), false)?,
            _ => plan.leftover.clone(),
        };
        let probe = Prober::new(self)?;
        let expected = self.expected_certificate()?;
        let waited = self.until_serving(&probe, expected.as_ref())?;
        let discovered = if self.join_discovery {
            Some(self.join_discovery(&probe)?)
        } else {
            None
        };
        let drill = if self.drill == Drill::None || check_mode {
            None
        } else {
            Some(self.drill(probe)?)
        };
        Ok(Verified {
            leftover,
            drill,
            waited,
            discovered,
        })
    }

    fn report(&self, _plan: Plan, verified: Verified, check_mode: bool) -> ModuleOutput {
        let mut out = ModuleOutput::new(false, "");
        if let Some(what) = &verified.leftover {
            out.changed = true;
            out.warnings.push(what.clone());
        }
        out.set(
            "restored_leftover",
            verified
                .leftover
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
        out.set("endpoint", self.endpoint.to_string());
        out.set("readyz", "ok");
        out.set("authenticated", true);
        let waited = &verified.waited;
        out.set("attempts", waited.attempts);
        out.set("waited_seconds", (waited.seconds * 10.0).round() / 10.0);
        if let Some(fp) = &waited.served_sha256 {
            out.set("served_cert_sha256", fp.clone());
        }
        if let Some(d) = &verified.discovered {
            out.set(
                "join_discovery",
                json!({"server": d.server, "ca_cert_hash": d.ca_cert_hash, "signed_with": d.signed_with}),
            );
            if d.signed_with.is_empty() {
                out.warnings.push(format!(
                    "join discovery: cluster-info names {} and carries the cluster CA, but no bootstrap token signs it now (they expire, 24 h by default): create one for the next join (kubeadm token create) and the bootstrap signer signs the current cluster-info",
                    d.server
                ));
            }
        }
        let Some(d) = verified.drill else {
            out.msg = format!(
                "{} serves the API: certificate verified against {} for host {}{}, /readyz ok, authenticated GET ok{}{}",
                self.endpoint,
                self.ca_cert_path.display(),
                self.endpoint.host(),
                match &self.served_cert_path {
                    Some(p) => format!(" and equal to {}", p.display()),
                    None => String::new(),
                },
                if waited.attempts > 1 {
                    format!(" (after {} tries, {:.1}s)", waited.attempts, waited.seconds)
                } else {
                    String::new()
                },
                if check_mode && self.drill != Drill::None { " (check mode: no drill)" } else { "" }
            );
            return out;
        };
        let stats = &d.stats;
        out.changed = true;
        out.set("restored", true);
        out.set("requests_ok", stats.ok);
        out.set("requests_failed", stats.failed);
        out.set("latency_ms", stats.latency_json());
        out.set(
            "apiserver_stopped_seconds",
            (d.stopped_seconds * 1000.0).round() / 1000.0,
        );
        out.set("pid_before", d.pid_before);
        out.set("failures", json!([]));
        out.msg = format!(
            "drill passed: with the local kube-apiserver stopped, {}/{} authenticated requests through {} succeeded; the apiserver was back and ready after {:.1}s",
            stats.ok,
            stats.ok + stats.failed,
            self.endpoint,
            d.stopped_seconds
        );
        out
    }
}

const LOCAL_HEALTH_URL_DOC: &str = "Override of the local apiserver's C(/readyz) URL; its port also picks the local process when several run.";

impl HaVerify {
    /// The join discovery through the endpoint, retried while `wait` lasts (the bootstrap signer
    /// re-signs cluster-info within seconds of a change); the error is the last try's.
    fn join_discovery(&self, probe: &Prober) -> Result<Discovered> {
        let ca = ca_certs_from_file(&self.ca_cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::content(&self.ca_cert_path, "holds no certificate"))?;
        let transport = |tls: &TlsConfig| ApiServer {
            host: probe.host.clone(),
            port: probe.port,
            prefix: String::new(),
            tls: tls.clone(),
            timeout: probe.timeout,
        };
        let (anonymous, admin) = (transport(&probe.anonymous), transport(&probe.authenticated));
        let deadline = Instant::now() + self.wait;
        loop {
            match discovery::discover(&anonymous, &admin, &self.endpoint, &ca) {
                Ok(d) => return Ok(d),
                Err(e) if Instant::now() >= deadline => {
                    return Err(discovery::error(&self.endpoint, e))
                }
                Err(_) => std::thread::sleep(WAIT_POLL),
            }
        }
    }

    /// The certificate named by `served_cert_path`, read once for every try.
    fn expected_certificate(&self) -> Result<Option<ExpectedCert>> {
        let Some(path) = &self.served_cert_path else {
            return Ok(None);
        };
        let pem = crate::fsio::read(path)?;
        let cert = X509::from_pem(&pem).map_err(|e| Error::Content {
            path: path.clone(),
            reason: format!("not a PEM certificate ({e}); served_cert_path must name the apiserver's serving certificate"),
        })?;
        Ok(Some(ExpectedCert::new(path, &cert)?))
    }

    /// Run the checks (readiness, served certificate, authenticated GET) until they pass or
    /// `wait` runs out; the error is the last try's.
    fn until_serving(&self, probe: &Prober, expected: Option<&ExpectedCert>) -> Result<Waited> {
        let started = Instant::now();
        let deadline = started + self.wait;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.check_once(probe, expected) {
                Ok(served_sha256) => {
                    return Ok(Waited {
                        attempts,
                        seconds: started.elapsed().as_secs_f64(),
                        served_sha256,
                    })
                }
                Err(e) if self.wait.is_zero() => return Err(e),
                Err(e) if Instant::now() + WAIT_POLL > deadline => {
                    return Err(Error::Timeout(format!(
                        "{} did not pass the checks within {}s ({attempts} tries); last: {e}",
                        self.endpoint,
                        self.wait.as_secs()
                    )))
                }
                Err(_) => std::thread::sleep(WAIT_POLL),
            }
        }
    }

    /// One try: `/readyz`, then the served certificate, then an authenticated GET.
    fn check_once(
        &self,
        probe: &Prober,
        expected: Option<&ExpectedCert>,
    ) -> Result<Option<String>> {
        let remote =
            |what: &str, e: String| Error::remote(self.endpoint.url(), format!("{what}: {e}"));
        probe.readyz().map_err(|e| remote("/readyz", e))?;
        let served = match expected {
            Some(want) => Some(
                probe
                    .served_matches(want)
                    .map_err(|e| remote("served certificate", e))?,
            ),
            None => None,
        };
        probe
            .authenticated()
            .map_err(|e| remote("authenticated GET", e))?;
        Ok(served)
    }

    fn park_paths(&self) -> ParkPaths {
        ParkPaths::new(&self.manifests_dir, &self.park_dir, "kube-apiserver.yaml")
    }

    fn local_target(&self, p: Option<&process::Process>) -> Result<HealthTarget> {
        health::target_for(
            Component::KubeApiserver,
            p,
            &self.ca_cert_path,
            self.local_health_url.as_ref(),
        )
    }

    fn local_apiserver(&self) -> Result<Option<process::Process>> {
        let mut all = process::find("kube-apiserver");
        if let Some(url) = &self.local_health_url {
            let mut keep = Vec::new();
            for p in all {
                if health::health_port(Component::KubeApiserver, Some(&p))? == url.port {
                    keep.push(p);
                }
            }
            all = keep;
        }
        match all.len() {
            0 | 1 => Ok(all.into_iter().next()),
            n => Err(Error::Refused(format!(
                "found {n} kube-apiserver processes (pids {}); name the local one with local_health_url",
                all.iter().map(|p| p.pid.to_string()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Park the local apiserver's manifest, probe the endpoint while it is down, always put it
    /// back and wait until it is ready; any failed request fails the drill.
    fn drill(&self, probe: Prober) -> Result<DrillOutcome> {
        let old = self.local_apiserver()?.ok_or_else(|| {
            Error::Refused("no kube-apiserver process runs on this host; the drill needs a control-plane host with a running apiserver".into())
        })?;
        let local = self.local_target(Some(&old))?;
        park::catch_signals()?;
        let deadline = Instant::now() + self.timeout;
        let parked = Parked::park(&self.park_paths())?;
        let outcome = self.hold_down_and_probe(&probe, &old, &local, deadline);
        // Always put the manifest back, whatever happened.
        let restored = parked.restore();
        let ready = match &restored {
            Ok(()) => self.wait_ready_again(&local, Instant::now() + self.timeout),
            Err(e) => Err(Error::Refused(format!(
                "could not restore the kube-apiserver manifest: {e}"
            ))),
        };
        let stats = match outcome {
            Ok(s) => s,
            Err(e) => {
                let ready_note = match &ready {
                    Ok(_) => "the local apiserver is back and ready".to_string(),
                    Err(r) => r.to_string(),
                };
                return Err(Error::Refused(format!(
                    "drill aborted: {e}; the manifest was restored: {}; {ready_note}",
                    restored.is_ok()
                )));
            }
        };
        let back_at = ready?;
        if stats.failed > 0 {
            return Err(Error::Refused(format!(
                "drill: {} of {} requests through {} failed while the local apiserver was down (first: {}); the apiserver was restored and is ready",
                stats.failed,
                stats.ok + stats.failed,
                self.endpoint,
                stats.errors.first().cloned().unwrap_or_default()
            )));
        }
        Ok(DrillOutcome {
            stopped_seconds: back_at.duration_since(stats.stopped_at).as_secs_f64(),
            stats,
            pid_before: old.pid,
        })
    }

    fn hold_down_and_probe(
        &self,
        probe: &Prober,
        old: &process::Process,
        local: &HealthTarget,
        deadline: Instant,
    ) -> Result<DrillStats> {
        // Wait for kubelet to stop the pod; past half the time allowed, stop it ourselves.
        let half = Instant::now() + self.timeout / 2;
        let mut signalled = false;
        while process::alive(old.pid) {
            check_interrupt()?;
            if Instant::now() >= half && !signalled {
                let _ = kill(Pid::from_raw(old.pid), Signal::SIGTERM);
                signalled = true;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "kube-apiserver (pid {}) still runs {}s after its manifest was parked",
                    old.pid,
                    self.timeout.as_secs()
                )));
            }
            std::thread::sleep(POLL);
        }
        let stopped_at = Instant::now();
        while health::probe(local, Duration::from_secs(2)).ok {
            check_interrupt()?;
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!("{} still answers ok although kube-apiserver pid {} exited; another apiserver serves that port", local.url(), old.pid)));
            }
            std::thread::sleep(POLL);
        }
        let mut stats = DrillStats::new(stopped_at);
        for i in 0..self.requests {
            check_interrupt()?;
            let started = Instant::now();
            match probe.authenticated() {
                Ok(_) => {
                    stats.ok += 1;
                    stats
                        .latencies
                        .push(started.elapsed().as_secs_f64() * 1000.0);
                }
                Err(e) => {
                    stats.failed += 1;
                    stats.errors.push(format!("request {}: {e}", i + 1));
                }
            }
            if i + 1 < self.requests {
                std::thread::sleep(self.interval);
            }
        }
        Ok(stats)
    }

    fn wait_ready_again(&self, local: &HealthTarget, deadline: Instant) -> Result<Instant> {
        let mut last;
        loop {
            let running = self.local_apiserver().ok().flatten().is_some();
            if running {
                let a = health::probe(local, Duration::from_secs(2));
                if a.ok {
                    return Ok(Instant::now());
                }
                last = format!(
                    "{}{}",
                    a.status.map(|s| format!("HTTP {s} ")).unwrap_or_default(),
                    a.detail
                );
            } else {
                last = "no kube-apiserver process yet".into();
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "the manifest was restored but the local kube-apiserver was not ready within {}s (last: {last}); check kubelet (systemctl status kubelet) and the apiserver's log",
                    self.timeout.as_secs()
                )));
            }
            std::thread::sleep(POLL);
        }
    }
}

fn check_interrupt() -> Result<()> {
    if park::interrupted() {
        Err(Error::Refused("interrupted by a signal".into()))
    } else {
        Ok(())
    }
}

struct DrillStats {
    stopped_at: Instant,
    ok: u32,
    failed: u32,
    latencies: Vec<f64>,
    errors: Vec<String>,
}

impl DrillStats {
    fn new(stopped_at: Instant) -> Self {
        DrillStats {
            stopped_at,
            ok: 0,
            failed: 0,
            latencies: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn latency_json(&self) -> Value {
        if self.latencies.is_empty() {
            return json!({"min": null, "avg": null, "max": null});
        }
        let r = |v: f64| (v * 10.0).round() / 10.0;
        let min = self.latencies.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = self.latencies.iter().cloned().fold(0.0, f64::max);
        let avg = self.latencies.iter().sum::<f64>() / self.latencies.len() as f64;
        json!({"min": r(min), "avg": r(avg), "max": r(max)})
    }
}

/// The certificate the endpoint must serve, as DER, with its fingerprint for messages.
pub struct ExpectedCert {
    path: String,
    der: Vec<u8>,
    sha256: String,
}

impl ExpectedCert {
    fn new(path: &std::path::Path, cert: &X509) -> Result<Self> {
        let content = |reason: String| Error::Content {
            path: path.to_path_buf(),
            reason,
        };
        let der = cert
            .to_der()
            .map_err(|e| content(format!("cannot encode the certificate: {e}")))?;
        Ok(ExpectedCert {
            path: path.display().to_string(),
            sha256: tls::fingerprint_sha256(&der),
            der,
        })
    }
}

/// Requests to the endpoint: anonymous `/readyz` and authenticated GETs, TLS verified against
/// the cluster CA for the endpoint's host.
struct Prober {
    host: String,
    port: u16,
    anonymous: TlsConfig,
    authenticated: TlsConfig,
    path: std::cell::RefCell<&'static str>,
    timeout: Duration,
}

impl Prober {
    fn new(v: &HaVerify) -> Result<Prober> {
        let cas = ca_certs_from_file(&v.ca_cert_path)?;
        let config = Kubeconfig::load(&v.kubeconfig)?;
        let creds = config.client_credentials()?;
        let identity = ClientIdentity::from_pem(
            creds.cert_pem.expose(),
            creds.key_pem.expose(),
            &v.kubeconfig.display().to_string(),
        )?;
        let anonymous = TlsConfig::with_ca(cas);
        let mut authenticated = anonymous.clone();
        authenticated.identity = Some(identity);
        Ok(Prober {
            host: v.endpoint.host().to_url_host(),
            port: v.endpoint.port(),
            anonymous,
            authenticated,
            path: std::cell::RefCell::new(AUTH_PATH),
            timeout: Duration::from_secs(10).min(v.timeout),
        })
    }

    fn get(&self, tls: &TlsConfig, path: &str) -> std::result::Result<Response, String> {
        http::https(
            &self.host,
            self.port,
            tls,
            &Request::get(path),
            self.timeout,
        )
    }

    /// The served leaf certificate (verified like every request) is `want`; its fingerprint.
    fn served_matches(&self, want: &ExpectedCert) -> std::result::Result<String, String> {
        let served = tls::served_certificate(
            &self.host,
            self.port,
            &self.anonymous,
            Instant::now() + self.timeout,
        )?;
        let der = served
            .to_der()
            .map_err(|e| format!("cannot encode the served certificate: {e}"))?;
        let fingerprint = tls::fingerprint_sha256(&der);
        if der == want.der {
            Ok(fingerprint)
        } else {
            Err(format!(
                "serves the certificate SHA-256 {fingerprint}, not {} (SHA-256 {}); the apiserver has not loaded it yet",
                want.path, want.sha256
            ))
        }
    }

    fn readyz(&self) -> std::result::Result<String, String> {
        let r = self.get(&self.anonymous, "/readyz")?;
        if r.status == 200 && r.text().trim() == "ok" {
            Ok("ok".into())
        } else {
            Err(format!("HTTP {}: {}", r.status, r.snippet()))
        }
    }

    fn authenticated(&self) -> std::result::Result<u16, String> {
        let path = *self.path.borrow();
        let r = self.get(&self.authenticated, path)?;
        if r.status == 404 && path == AUTH_PATH {
            *self.path.borrow_mut() = FALLBACK_PATH;
            return self.authenticated();
        }
        if r.status == 200 {
            Ok(r.status)
        } else {
            Err(format!("GET {path}: HTTP {}: {}", r.status, r.snippet()))
        }
    }
}
