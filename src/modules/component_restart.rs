//! `kubeha.control_plane.component_restart`: restart one control-plane component the way the host
//! runs it and wait until a NEW process answers its health endpoint.
//! - kubelet: `systemctl restart kubelet`, a new MainPID, `http://127.0.0.1:10248/healthz`;
//! - static-pod components: the process found through /proc ([`process`]) gets SIGTERM (nix);
//!   kubelet starts a new one; then its health endpoint ([`health`]) must answer `ok`.
//!
//! With `node_name` (kubelet only) it then waits until the node's Lease has been renewed after the
//! restart and the Node is Ready, read through `kubeconfig` (the kubelet's own kubelet.conf: proof
//! that the restarted kubelet reaches the API through the server it now uses) ([`node`]).
//!
//! On timeout it fails with the last state seen (pids, last health answer, systemd state, lease).
//! Docs: the sidecar `component_restart.yml`.

use crate::error::{Error, Result};
use crate::host::health::{self, Component, HealthAnswer, HealthTarget, HealthUrl};
use crate::host::process::{self, Process};
use crate::host::systemd;
use crate::kubeapi::client::{ApiServer, Transport};
use crate::kubeapi::node::{self, NodeState};
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::protocol::{Module, ModuleOutput};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

const POLL: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The module's options.
#[derive(Debug, Clone)]
pub struct ComponentRestart {
    pub component: Component,
    pub timeout: Duration,
    pub health_url: Option<HealthUrl>,
    pub ca_cert_path: PathBuf,
    /// After a kubelet restart: the node whose heartbeat proves it, and how it is read.
    pub node: Option<NodeCheck>,
}

/// The node heartbeat check after a kubelet restart.
#[derive(Debug, Clone)]
pub struct NodeCheck {
    pub name: String,
    pub kubeconfig: PathBuf,
    pub timeout: Duration,
}

/// The process to replace and where its successor must answer.
pub struct Plan {
    /// The static pod's pid, or kubelet's systemd MainPID.
    pid_before: i32,
    target: HealthTarget,
    /// The API client for the node check, built (kubeconfig read) before anything is restarted.
    node_api: Option<ApiServer>,
}

/// The new process and its first healthy answer.
pub struct Restarted {
    pid_after: i32,
    started: Instant,
    target: HealthTarget,
    answer: HealthAnswer,
    /// The node's heartbeat after the restart (with `node_name`).
    node: Option<NodeState>,
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
            OptionSpec::new(
                "node_name",
                Kind::Str,
                "Only with O(name=kubelet). After the restart, wait until this node's Lease (C(kube-node-lease/<node_name>)) has been renewed after the restart and the Node is Ready, read through O(kubeconfig).",
            ),
            OptionSpec::new(
                "kubeconfig",
                Kind::Path,
                "The kubeconfig the O(node_name) check reads the Lease and the Node with (TLS verified against its CA). Use the kubelet's own C(kubelet.conf). The check then proves that the kubelet's credentials work through the server it now uses.",
            ),
            OptionSpec::new(
                "node_timeout",
                Kind::Int { min: 1, max: 3600 },
                "Seconds to wait for the O(node_name) check after the kubelet is healthy (1-3600).",
            )
            .default(Default::Int(120)),
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
            node: node_check(o, component)?,
        })
    }

    fn plan(&self) -> Result<Plan> {
        if self.component == Component::Kubelet {
            let node_api = match &self.node {
                Some(check) => Some(ApiServer::from_kubeconfig(
                    &check.kubeconfig,
                    None,
                    PROBE_TIMEOUT,
                )?),
                None => None,
            };
            return Ok(Plan {
                pid_before: systemd::main_pid("kubelet")?,
                target: self.target(None)?,
                node_api,
            });
        }
        let old = self.the_running_process()?;
        Ok(Plan {
            pid_before: old.pid,
            target: self.target(Some(&old))?,
            node_api: None,
        })
    }

    fn apply(&self, plan: &Plan, check_mode: bool) -> Result<Option<Restarted>> {
        if check_mode {
            return Ok(None);
        }
        match self.component {
            Component::Kubelet => self.restart_kubelet(plan.pid_before, plan.node_api.as_ref()),
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
            let mut out = ModuleOutput::new(true, msg)
                .field("pid_before", before)
                .field("pid_after", Value::Null)
                .field("waited_seconds", 0.0)
                .field("health", json!({"url": plan.target.url()}));
            if let (Some(check), Some(api)) = (&self.node, &plan.node_api) {
                out.msg.push_str(&format!(
                    ", then wait for node {}'s lease renewal through {}",
                    check.name,
                    api.server()
                ));
            }
            return out;
        };
        let waited = (r.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        let mut out = ModuleOutput::new(
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
        );
        if let (Some(check), Some(state), Some(api)) = (&self.node, &r.node, &plan.node_api) {
            let renew = state.renew_time.as_ref().map(|(text, _)| text.clone());
            out.msg.push_str(&format!(
                "; node {} Ready, lease renewed at {} through {}",
                check.name,
                renew.as_deref().unwrap_or("?"),
                api.server()
            ));
            out.set(
                "node",
                json!({"name": check.name, "ready": state.ready, "lease_renew_time": renew, "server": api.server()}),
            );
        }
        out
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
            node: None,
        })
    }

    /// `systemctl restart kubelet`, then wait for a new MainPID that answers `/healthz`, then (with
    /// a node check) for the node's lease renewal after the restart.
    fn restart_kubelet(&self, before: i32, node_api: Option<&ApiServer>) -> Result<Restarted> {
        let target = self.target(None)?;
        let started = Instant::now();
        let deadline = started + self.timeout;
        // the kubelet stamps renewTime with this host's clock: compare with the same clock
        let restarted_at = SystemTime::now();
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
        let node = match (&self.node, node_api) {
            (Some(check), Some(api)) => Some(wait_node_renewed(check, api, restarted_at)?),
            _ => None,
        };
        Ok(Restarted {
            pid_after: new,
            started,
            target,
            answer,
            node,
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

/// The `node_name` check's options: only for the kubelet, and only with a `kubeconfig`.
fn node_check(o: &Options, component: Component) -> Result<Option<NodeCheck>> {
    let name = o.opt_string("node_name")?;
    let kubeconfig = o.opt_path("kubeconfig")?;
    let timeout = Duration::from_secs(o.int("node_timeout")? as u64);
    match (name, kubeconfig) {
        (None, None) => Ok(None),
        (Some(_), _) if component != Component::Kubelet => Err(Error::option(
            "node_name",
            format!(
                "is only for name=kubelet (the node's lease is the kubelet's heartbeat), not {}",
                component.name()
            ),
        )),
        (Some(name), Some(kubeconfig)) if !name.trim().is_empty() => Ok(Some(NodeCheck {
            name,
            kubeconfig,
            timeout,
        })),
        (Some(_), Some(_)) => Err(Error::option("node_name", "is empty: give the node's name")),
        (Some(_), None) => Err(Error::option(
            "kubeconfig",
            "is required with node_name: the kubeconfig to read the node's Lease with (the kubelet's kubelet.conf)",
        )),
        (None, Some(_)) => Err(Error::option(
            "node_name",
            "is required with kubeconfig: the node whose Lease proves the restarted kubelet",
        )),
    }
}

/// Poll the node's Lease and Node until the lease was renewed after `restarted_at` and the node is
/// Ready; on timeout fail with what was seen last.
fn wait_node_renewed(
    check: &NodeCheck,
    api: &dyn Transport,
    restarted_at: SystemTime,
) -> Result<NodeState> {
    let deadline = Instant::now() + check.timeout;
    loop {
        let last: std::result::Result<NodeState, String> = match node::state(api, &check.name) {
            Ok(state) => {
                let renewed = state
                    .renew_time
                    .as_ref()
                    .is_some_and(|(_, at)| *at > restarted_at);
                if renewed && state.ready {
                    return Ok(state);
                }
                Ok(state)
            }
            Err(e) => Err(e.to_string()),
        };
        if Instant::now() >= deadline {
            let seen = match &last {
                Ok(state) => format!(
                    "lease renewTime {}, Ready {}",
                    state
                        .renew_time
                        .as_ref()
                        .map(|(text, _)| text.as_str())
                        .unwrap_or("absent"),
                    state.ready
                ),
                Err(e) => format!("last error: {e}"),
            };
            return Err(Error::Timeout(format!(
                "kubelet restarted and healthy, but node {} did not renew its lease after the restart and report Ready within {}s through {} ({seen}); check `journalctl -u kubelet` for errors reaching that server",
                check.name,
                check.timeout.as_secs(),
                api.server()
            )));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::{Request, Response};
    use serde_json::json;
    use std::cell::Cell;

    /// An API server whose node renews its lease at `renewals[i]` on the i-th look (then keeps the
    /// last one) and is Ready from look `ready_from` on.
    struct Node {
        renewals: Vec<&'static str>,
        ready_from: usize,
        looks: Cell<usize>,
    }

    impl Transport for Node {
        fn send(&self, req: &Request<'_>) -> std::result::Result<Response, String> {
            let look = self.looks.get();
            let body = if req.path.contains("/leases/") {
                let renew = self.renewals[look.min(self.renewals.len() - 1)];
                json!({"spec": {"holderIdentity": "w1", "renewTime": renew}})
            } else {
                // the Node is read after the Lease: one look done
                self.looks.set(look + 1);
                let status = if look >= self.ready_from {
                    "True"
                } else {
                    "False"
                };
                json!({"status": {"conditions": [{"type": "Ready", "status": status}]}})
            };
            Ok(Response {
                status: 200,
                headers: vec![],
                body: serde_json::to_vec(&body).unwrap(),
            })
        }
        fn server(&self) -> String {
            "https://172.30.0.10:6443".into()
        }
    }

    fn check(timeout: u64) -> NodeCheck {
        NodeCheck {
            name: "w1".into(),
            kubeconfig: "/etc/kubernetes/kubelet.conf".into(),
            timeout: Duration::from_secs(timeout),
        }
    }

    fn at(text: &str) -> SystemTime {
        node::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn waits_for_a_renewal_after_the_restart_and_ready() {
        let api = Node {
            renewals: vec![
                "2026-12-04T21:00:00.000000Z",
                "2026-12-04T21:00:02.000000Z",
                "2026-12-04T21:00:04.500000Z",
            ],
            ready_from: 0,
            looks: Cell::new(0),
        };
        // restarted at 21:00:03: the first two renewals are the old process's
        let state = wait_node_renewed(&check(10), &api, at("2026-12-04T21:00:03Z")).unwrap();
        assert_eq!(
            state.renew_time.unwrap().0,
            "2026-12-04T21:00:04.500000Z".to_string()
        );
        assert_eq!(api.looks.get(), 3);
    }

    #[test]
    fn a_renewed_node_that_is_not_ready_times_out_saying_so() {
        let api = Node {
            renewals: vec!["2026-12-04T21:00:05Z"],
            ready_from: usize::MAX,
            looks: Cell::new(0),
        };
        let e = wait_node_renewed(&check(1), &api, at("2026-12-04T21:00:03Z")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("node w1"), "{msg}");
        assert!(msg.contains("Ready false"), "{msg}");
        assert!(msg.contains("2026-12-04T21:00:05Z"), "{msg}");
        assert!(msg.contains("https://172.30.0.10:6443"), "{msg}");
    }

    #[test]
    fn a_lease_not_renewed_since_the_restart_times_out() {
        let api = Node {
            renewals: vec!["2026-12-04T21:00:02Z"],
            ready_from: 0,
            looks: Cell::new(0),
        };
        let e = wait_node_renewed(&check(1), &api, at("2026-12-04T21:00:03Z")).unwrap_err();
        assert!(e.to_string().contains("did not renew its lease"), "{e}");
    }
}
