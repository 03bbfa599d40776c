//! The `component_restart` module: restart one control-plane component the way the host runs it
//! and wait until a NEW process answers its health endpoint.
//! - kubelet: `systemctl restart kubelet`, a new MainPID, `http://127.0.0.1:10248/healthz`;
//! - static-pod components: the process found through /proc ([`process`]) gets SIGTERM (nix);
//!   kubelet starts a new one; then its health endpoint ([`health`]) must answer `ok`.
//!
//! On timeout it fails with the last state seen (pids, last health answer, systemd state).

pub mod health;
pub mod process;
pub mod systemd;

use crate::error::{Error, Result};
use crate::options::Options;
use crate::protocol::ModuleOutput;
use health::{Component, HealthAnswer, HealthTarget, HealthUrl};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use process::Process;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const MODULE: &str = "component_restart";

const POLL: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The module's options.
#[derive(Debug, Clone)]
pub struct ComponentRestart {
    pub component: Component,
    pub timeout: Duration,
    pub health_url: Option<HealthUrl>,
    pub ca_cert_path: PathBuf,
}

/// What was seen last, for the timeout message.
#[derive(Debug, Default)]
struct LastState {
    pid_seen: Option<i32>,
    health: Option<HealthAnswer>,
}

impl ComponentRestart {
    pub fn from_options(mut o: Options) -> Result<Self> {
        o.declare(&["name", "timeout", "health_url", "ca_cert_path"])?;
        let name = o.required_string("name")?;
        let component = Component::parse(&name).ok_or_else(|| {
            Error::option(
                "name",
                format!("{name:?} is not one of: {}", Component::NAMES.join(", ")),
            )
        })?;
        let timeout = Duration::from_secs(o.int_or("timeout", 120, 1, 3600)? as u64);
        let health_url = o
            .string("health_url")?
            .map(|u| HealthUrl::parse(&u))
            .transpose()?;
        let ca_cert_path =
            PathBuf::from(o.string_or("ca_cert_path", "/etc/kubernetes/ssl/ca.crt")?);
        o.finish()?;
        Ok(ComponentRestart {
            component,
            timeout,
            health_url,
            ca_cert_path,
        })
    }

    pub fn run(&self, check_mode: bool) -> Result<ModuleOutput> {
        match self.component {
            Component::Kubelet => self.restart_kubelet(check_mode),
            _ => self.restart_static_pod(check_mode),
        }
    }

    fn target(&self, p: Option<&Process>) -> Result<HealthTarget> {
        health::target_for(
            self.component,
            p,
            &self.ca_cert_path,
            self.health_url.as_ref(),
        )
    }

    /// The running process of the component; with several (e.g. several test beds on one host),
    /// the one whose health port is the `health_url`'s.
    fn running(&self) -> Result<Vec<Process>> {
        let all = process::find(self.component.name());
        let Some(url) = &self.health_url else {
            return Ok(all);
        };
        let mut matching = Vec::new();
        for p in all {
            if health::health_port(self.component, Some(&p))? == url.port {
                matching.push(p);
            }
        }
        Ok(matching)
    }

    fn restart_static_pod(&self, check_mode: bool) -> Result<ModuleOutput> {
        let name = self.component.name();
        let procs = self.running()?;
        let old = match procs.as_slice() {
            [] => {
                return Err(Error::Refused(format!(
                    "no running {name} process found in /proc; is kubelet running its static pod (/etc/kubernetes/manifests/{name}.yaml)? Nothing was changed"
                )))
            }
            [one] => one.clone(),
            many => {
                let pids: Vec<String> = many.iter().map(|p| p.pid.to_string()).collect();
                return Err(Error::Refused(format!(
                    "found {} {name} processes (pids {}); name the one to restart with health_url (its --secure-port). Nothing was changed",
                    many.len(),
                    pids.join(", ")
                )));
            }
        };
        let target = self.target(Some(&old))?;
        if check_mode {
            return Ok(ModuleOutput::new(
                true,
                format!(
                    "would send SIGTERM to {name} (pid {}) and wait for kubelet to start a new one",
                    old.pid
                ),
            )
            .field("pid_before", old.pid)
            .field("pid_after", Value::Null)
            .field("waited_seconds", 0.0)
            .field("health", json!({"url": target.url()})));
        }
        let started = Instant::now();
        let deadline = started + self.timeout;
        kill(Pid::from_raw(old.pid), Signal::SIGTERM).map_err(|e| {
            Error::Refused(format!(
                "cannot send SIGTERM to {name} (pid {}): {e}; run the module as root",
                old.pid
            ))
        })?;
        let mut last = LastState {
            pid_seen: Some(old.pid),
            health: None,
        };
        // A new process, started by kubelet.
        let new = loop {
            let now: Vec<Process> = self
                .running()?
                .into_iter()
                .filter(|p| p.pid != old.pid)
                .collect();
            if let Some(p) = now.into_iter().next() {
                break p;
            }
            if Instant::now() >= deadline {
                let old_state = if process::alive(old.pid) {
                    "still running"
                } else {
                    "exited"
                };
                return Err(Error::Timeout(format!(
                    "{name}: no new process within {}s after SIGTERM to pid {} (old process {old_state}); check that kubelet is running (systemctl status kubelet: {}) and the manifest /etc/kubernetes/manifests/{name}.yaml",
                    self.timeout.as_secs(),
                    old.pid,
                    systemd::state("kubelet")
                )));
            }
            std::thread::sleep(POLL);
        };
        last.pid_seen = Some(new.pid);
        let target = self.target(Some(&new))?;
        let answer = self.wait_healthy(&target, deadline, &mut last, || process::alive(new.pid))?;
        Ok(self.report(old.pid, new.pid, started, &target, &answer))
    }

    fn restart_kubelet(&self, check_mode: bool) -> Result<ModuleOutput> {
        let before = systemd::main_pid("kubelet")?;
        let target = self.target(None)?;
        if check_mode {
            return Ok(ModuleOutput::new(
                true,
                format!("would run `systemctl restart kubelet` (MainPID {before})"),
            )
            .field("pid_before", before)
            .field("pid_after", Value::Null)
            .field("waited_seconds", 0.0)
            .field("health", json!({"url": target.url()})));
        }
        let started = Instant::now();
        let deadline = started + self.timeout;
        systemd::restart("kubelet")?;
        let mut last = LastState::default();
        let new = loop {
            let pid = systemd::main_pid("kubelet")?;
            last.pid_seen = Some(pid);
            if pid != 0 && pid != before {
                break pid;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "kubelet: no new MainPID within {}s after `systemctl restart kubelet` (before {before}, now {pid}, state {}); see `journalctl -u kubelet`",
                    self.timeout.as_secs(),
                    systemd::state("kubelet")
                )));
            }
            std::thread::sleep(POLL);
        };
        let answer = self.wait_healthy(&target, deadline, &mut last, || true)?;
        Ok(self.report(before, new, started, &target, &answer))
    }

    fn wait_healthy(
        &self,
        target: &HealthTarget,
        deadline: Instant,
        last: &mut LastState,
        still_there: impl Fn() -> bool,
    ) -> Result<HealthAnswer> {
        loop {
            let answer = health::probe(
                target,
                PROBE_TIMEOUT.min(
                    deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(200)),
                ),
            );
            if answer.ok {
                return Ok(answer);
            }
            last.health = Some(answer);
            if Instant::now() >= deadline {
                let h = last.health.as_ref();
                let systemd_state = if self.component == Component::Kubelet {
                    systemd::state("kubelet")
                } else {
                    format!("kubelet {}", systemd::state("kubelet"))
                };
                return Err(Error::Timeout(format!(
                    "{}: not healthy within {}s: new pid {} ({}), last answer of {}: {}{}; systemd: {systemd_state}",
                    self.component.name(),
                    self.timeout.as_secs(),
                    last.pid_seen.map(|p| p.to_string()).unwrap_or_else(|| "none".into()),
                    if still_there() { "running" } else { "gone" },
                    target.url(),
                    h.and_then(|h| h.status).map(|s| format!("HTTP {s} ")).unwrap_or_default(),
                    h.map(|h| h.detail.clone()).unwrap_or_default(),
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    fn report(
        &self,
        before: i32,
        after: i32,
        started: Instant,
        target: &HealthTarget,
        answer: &HealthAnswer,
    ) -> ModuleOutput {
        let waited = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        ModuleOutput::new(
            true,
            format!(
                "restarted {}: pid {before} -> {after}, healthy after {waited:.1}s",
                self.component.name()
            ),
        )
        .field("pid_before", before)
        .field("pid_after", after)
        .field("waited_seconds", waited)
        .field(
            "health",
            json!({"url": target.url(), "status": answer.status, "body": answer.detail}),
        )
    }
}
