//! The `ha_verify` module: prove the control-plane endpoint serves the API. The endpoint's TLS
//! certificate must verify against the cluster CA for the endpoint's host (DNS name or IP),
//! `/readyz` must answer `ok`, and an authenticated GET (client certificate of the kubeconfig)
//! must work. With `drill: local_apiserver` it holds this host's kube-apiserver down
//! ([`park`]), sends `requests` authenticated requests through the endpoint, and always brings the
//! apiserver back and waits until it is ready.

pub mod park;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::kubeapi::http::{self, Request, Response};
use crate::kubeapi::tls::{ca_certs_from_pem, ClientIdentity, TlsConfig};
use crate::kubeconfig::Kubeconfig;
use crate::options::Options;
use crate::protocol::ModuleOutput;
use crate::restart::health::{self, Component, HealthTarget, HealthUrl};
use crate::restart::process;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use park::{ParkPaths, Parked};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const MODULE: &str = "ha_verify";
const AUTH_PATH: &str = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config";
const FALLBACK_PATH: &str = "/api/v1/namespaces";
const POLL: Duration = Duration::from_millis(200);

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
}

impl HaVerify {
    pub fn from_options(mut o: Options) -> Result<Self> {
        o.declare(&[
            "endpoint",
            "ca_cert_path",
            "kubeconfig",
            "drill",
            "requests",
            "interval_ms",
            "timeout",
            "manifests_dir",
            "drill_park_dir",
            "local_health_url",
        ])?;
        let endpoint = Endpoint::parse(&o.required_string("endpoint")?, "endpoint")?;
        let ca_cert_path =
            PathBuf::from(o.string_or("ca_cert_path", "/etc/kubernetes/ssl/ca.crt")?);
        let kubeconfig = PathBuf::from(o.string_or("kubeconfig", "/etc/kubernetes/admin.conf")?);
        let drill = match o
            .choice_or("drill", &["none", "local_apiserver"], "none")?
            .as_str()
        {
            "local_apiserver" => Drill::LocalApiserver,
            _ => Drill::None,
        };
        let requests = o.int_or("requests", 20, 1, 10_000)? as u32;
        let interval = Duration::from_millis(o.int_or("interval_ms", 100, 0, 10_000)? as u64);
        let timeout = Duration::from_secs(o.int_or("timeout", 120, 1, 3600)? as u64);
        let manifests_dir =
            PathBuf::from(o.string_or("manifests_dir", "/etc/kubernetes/manifests")?);
        let park_dir =
            PathBuf::from(o.string_or("drill_park_dir", "/etc/kubernetes/manifests-kubeha-drill")?);
        if park_dir.starts_with(&manifests_dir) {
            return Err(Error::option(
                "drill_park_dir",
                format!("{} is inside the manifests directory {}; kubelet would run the parked manifest: choose a directory outside it", park_dir.display(), manifests_dir.display()),
            ));
        }
        let local_health_url = o
            .string("local_health_url")?
            .map(|u| {
                HealthUrl::parse(&u).map_err(|e| Error::option("local_health_url", e.to_string()))
            })
            .transpose()?;
        o.finish()?;
        Ok(HaVerify {
            endpoint,
            ca_cert_path,
            kubeconfig,
            drill,
            requests,
            interval,
            timeout,
            manifests_dir,
            park_dir,
            local_health_url,
        })
    }

    fn park_paths(&self) -> ParkPaths {
        ParkPaths::new(&self.manifests_dir, &self.park_dir, "kube-apiserver.yaml")
    }

    pub fn run(&self, check_mode: bool) -> Result<ModuleOutput> {
        let mut out = ModuleOutput::new(false, "");
        // A drill killed before it could restore the apiserver manifest is repaired first.
        let leftover = park::restore_leftover(&self.park_paths(), check_mode)?;
        if let Some(what) = &leftover {
            out.changed = true;
            out.warnings.push(what.clone());
        }
        out.set(
            "restored_leftover",
            leftover.clone().map(Value::String).unwrap_or(Value::Null),
        );

        let probe = Prober::new(self)?;
        out.set("endpoint", self.endpoint.to_string());
        let readyz = probe.readyz();
        out.set("readyz", readyz.clone().unwrap_or_else(|e| e.clone()));
        let auth = probe.authenticated();
        out.set("authenticated", auth.is_ok());
        match (&readyz, &auth) {
            (Ok(_), Ok(_)) => {}
            (Err(e), _) => return Err(Error::remote(self.endpoint.url(), format!("/readyz: {e}"))),
            (_, Err(e)) => {
                return Err(Error::remote(
                    self.endpoint.url(),
                    format!("authenticated GET: {e}"),
                ))
            }
        }
        if self.drill == Drill::None || check_mode {
            out.msg = format!(
                "{} serves the API: certificate verified against {} for host {}, /readyz ok, authenticated GET ok{}",
                self.endpoint,
                self.ca_cert_path.display(),
                self.endpoint.host(),
                if check_mode && self.drill != Drill::None { " (check mode: no drill)" } else { "" }
            );
            return Ok(out);
        }
        self.drill(probe, out)
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

    fn drill(&self, probe: Prober, mut out: ModuleOutput) -> Result<ModuleOutput> {
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
        out.changed = true;
        out.set("restored", restored.is_ok());
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
        let stopped_seconds = back_at.duration_since(stats.stopped_at).as_secs_f64();
        out.set("requests_ok", stats.ok);
        out.set("requests_failed", stats.failed);
        out.set("latency_ms", stats.latency_json());
        out.set(
            "apiserver_stopped_seconds",
            (stopped_seconds * 1000.0).round() / 1000.0,
        );
        out.set("pid_before", old.pid);
        out.set(
            "failures",
            Value::Array(
                stats
                    .errors
                    .iter()
                    .map(|e| Value::String(e.clone()))
                    .collect(),
            ),
        );
        if stats.failed > 0 {
            return Err(Error::Refused(format!(
                "drill: {} of {} requests through {} failed while the local apiserver was down (first: {}); the apiserver was restored and is ready",
                stats.failed,
                stats.ok + stats.failed,
                self.endpoint,
                stats.errors.first().cloned().unwrap_or_default()
            )));
        }
        out.msg = format!(
            "drill passed: with the local kube-apiserver stopped, {}/{} authenticated requests through {} succeeded; the apiserver was back and ready after {:.1}s",
            stats.ok,
            stats.ok + stats.failed,
            self.endpoint,
            stopped_seconds
        );
        Ok(out)
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
        let ca_pem = crate::fsio::read(&v.ca_cert_path)?;
        let cas = ca_certs_from_pem(&ca_pem, &v.ca_cert_path.display().to_string())?;
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
