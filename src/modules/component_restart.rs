//! `kubeha.control_plane.component_restart`: restart one control-plane component the way the host
//! runs it and wait until a NEW process answers its health endpoint.
//! - kubelet: `systemctl restart kubelet`, a new MainPID, `http://127.0.0.1:10248/healthz`;
//! - static-pod components: the process found through /proc ([`process`]) gets SIGTERM (nix);
//!   kubelet starts a new one; then its health endpoint ([`health`]) must answer `ok`.
//!
//! On timeout it fails with the last state seen (pids, last health answer, systemd state).
//! Docs: the sidecar `component_restart.yml`.

use crate::error::{Error, Result};
use crate::host::health::{self, Component, HealthAnswer, HealthTarget, HealthUrl};
use crate::host::process::{self, Process};
use crate::host::systemd;
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::protocol::{Module, ModuleOutput};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// The process to replace and where its successor must answer.
pub struct Plan {
    /// The static pod's pid, or kubelet's systemd MainPID.
    pid_before: i32,
    target: HealthTarget,
}

/// The new process and its first healthy answer.
pub struct Restarted {
    pid_after: i32,
    started: Instant,
    target: HealthTarget,
    answer: HealthAnswer,
}

impl Module for ComponentRestart {
    const SPEC: &'static ModuleSpec = &ModuleSpec {
        name: "component_restart",
        options: &[
            OptionSpec::new("name", Kind::Str, "The component.")
                .required()
                .choices(&Component::NAMES),
            OptionSpec::new(
                "timeout",
                Kind::Int { min: 1, max: 3600 },
                "Seconds to wait for the new process and its health (1-3600).",
            )
            .default(Default::Int(120)),
            OptionSpec::new(
                "health_url",
                Kind::Str,
                "Override of the health URL (C(http) or C(https)). Its port also picks the process when several of that name run.",
            ),
            OptionSpec::new(
                "ca_cert_path",
                Kind::Path,
                "The cluster CA used to verify kube-apiserver (and components with C(--tls-cert-file)).",
            )
            .default(Default::Str("/etc/kubernetes/ssl/ca.crt")),
        ],
    };
    type Plan = Plan;
    /// `None` in check mode.
    type Applied = Option<Restarted>;

    fn from_options(o: &Options) -> Result<Self> {
        let name = o.string("name")?;
        let component = Component::parse(&name).ok_or_else(|| {
            Error::option(
                "name",
                format!("{name:?} is not one of: {}", Component::NAMES.join(", ")),
            )
        })?;
        Ok(ComponentRestart {
            component,
            timeout: Duration::from_secs(o.int("timeout")? as u64),
            health_url: o
                .opt_string("health_url")?
                .map(|u| HealthUrl::parse(&u))
                .transpose()?,
            ca_cert_path: o.path("ca_cert_path")?,
        })
    }

    fn plan(&self) -> Result<Plan> {
        if self.component == Component::Kubelet {
            return Ok(Plan {
                pid_before: systemd::main_pid("kubelet")?,
                target: self.target(None)?,
            });
        }
        let old = self.the_running_process()?;
        Ok(Plan {
            pid_before: old.pid,
            target: self.target(Some(&old))?,
        })
    }

    fn apply(&self, plan: &Plan, check_mode: bool) -> Result<Option<Restarted>> {
        if check_mode {
            return Ok(None);
        }
        match self.component {
            Component::Kubelet => self.restart_kubelet(plan.pid_before),
            _ => self.restart_static_pod(plan.pid_before),
        }
        .map(Some)
    }

    fn report(&self, plan: Plan, restarted: Option<Restarted>, _check_mode: bool) -> ModuleOutput {
        let name = self.component.name();
        let before = plan.pid_before;
        let Some(r) = restarted else {
            let msg = match self.component {
                Component::Kubelet => {
                    format!("would run `systemctl restart kubelet` (MainPID {before})")
                }
                _ => format!(
                    "would send SIGTERM to {name} (pid {before}) and wait for kubelet to start a new one"
                ),
            };
            return ModuleOutput::new(true, msg)
                .field("pid_before", before)
                .field("pid_after", Value::Null)
                .field("waited_seconds", 0.0)
                .field("health", json!({"url": plan.target.url()}));
        };
        let waited = (r.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        ModuleOutput::new(
            true,
            format!(
                "restarted {name}: pid {before} -> {}, healthy after {waited:.1}s",
                r.pid_after
            ),
        )
        .field("pid_before", before)
        .field("pid_after", r.pid_after)
        .field("waited_seconds", waited)
        .field(
            "health",
            json!({"url": r.target.url(), "status": r.answer.status, "body": r.answer.detail}),
        )
    }
}

/// What was seen last, for the timeout message.
#[derive(Debug, Default)]
struct LastState {
    pid_seen: Option<i32>,
    health: Option<HealthAnswer>,
}

impl ComponentRestart {
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

    /// The one running process of a static-pod component; none or several is a refusal.
    fn the_running_process(&self) -> Result<Process> {
        let name = self.component.name();
        let procs = self.running()?;
        match procs.as_slice() {
            [] => Err(Error::Refused(format!(
                "no running {name} process found in /proc; is kubelet running its static pod (/etc/kubernetes/manifests/{name}.yaml)? Nothing was changed"
            ))),
            [one] => Ok(one.clone()),
            many => {
                let pids: Vec<String> = many.iter().map(|p| p.pid.to_string()).collect();
                Err(Error::Refused(format!(
                    "found {} {name} processes (pids {}); name the one to restart with health_url (its --secure-port). Nothing was changed",
                    many.len(),
                    pids.join(", ")
                )))
            }
        }
    }

    /// SIGTERM to the static pod's process, then wait for kubelet's new one to be healthy.
    fn restart_static_pod(&self, old_pid: i32) -> Result<Restarted> {
        let name = self.component.name();
        let started = Instant::now();
        let deadline = started + self.timeout;
        kill(Pid::from_raw(old_pid), Signal::SIGTERM).map_err(|e| {
            Error::Refused(format!(
                "cannot send SIGTERM to {name} (pid {old_pid}): {e}; run the module as root"
            ))
        })?;
        let mut last = LastState {
            pid_seen: Some(old_pid),
            health: None,
        };
        // A new process, started by kubelet.
        let new = loop {
            let now: Vec<Process> = self
                .running()?
                .into_iter()
                .filter(|p| p.pid != old_pid)
                .collect();
            if let Some(p) = now.into_iter().next() {
                break p;
            }
            if Instant::now() >= deadline {
                let old_state = if process::alive(old_pid) {
                    "still running"
                } else {
                    "exited"
                };
                return Err(Error::Timeout(format!(
                    "{name}: no new process within {}s after SIGTERM to pid {old_pid} (old process {old_state}); check that kubelet is running (systemctl status kubelet: {}) and the manifest /etc/kubernetes/manifests/{name}.yaml",
                    self.timeout.as_secs(),
                    systemd::state("kubelet")
                )));
            }
            std::thread::sleep(POLL);
        };
        last.pid_seen = Some(new.pid);
        let target = self.target(Some(&new))?;
        let answer = self.wait_healthy(&target, deadline, &mut last, || process::alive(new.pid))?;
        Ok(Restarted {
            pid_after: new.pid,
            started,
            target,
            answer,
        })
    }

    /// `systemctl restart kubelet`, then wait for a new MainPID that answers `/healthz`.
    fn restart_kubelet(&self, before: i32) -> Result<Restarted> {
        let target = self.target(None)?;
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
        Ok(Restarted {
            pid_after: new,
            started,
            target,
            answer,
        })
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
}
