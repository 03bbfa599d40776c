//! `kubeha.control_plane.component_restart`: restart one control-plane component the way it runs
//! and wait until a NEW process answers its health endpoint.
//! - kubelet: `systemctl restart kubelet`, a new MainPID, `http://127.0.0.1:10248/healthz`;
//! - static-pod components: the process found through /proc ([`process`]) gets SIGTERM (nix);
//!   kubelet starts a new one; then its health endpoint ([`health`]) must answer `ok`;
//! - kube-proxy, a DaemonSet: node by node, its pod is deleted through the API ([`pods`]), a new
//!   one must run on that node and answer `/healthz` on the node's address; with a pending
//!   marker, only while the marker (cluster_configmaps' `kube_proxy_roll_marker`) exists, removed
//!   once every node is done.
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
use crate::kubeapi::pods::{self, Pod};
use crate::net::http::{self, Request};
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::protocol::{Module, ModuleOutput};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

const POLL: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Every name O(name) takes: the host's components, then kube-proxy.
const NAMES: [&str; 5] = [
    "kubelet",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
];

/// The module's options: a component of this host, or the kube-proxy roll.
#[derive(Debug, Clone)]
pub enum ComponentRestart {
    Host(HostRestart),
    KubeProxy(KubeProxyRoll),
}

/// A component of this host: kubelet (systemd) or a static pod.
#[derive(Debug, Clone)]
pub struct HostRestart {
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

/// kube-proxy's pods, rolled node by node through the API.
#[derive(Debug, Clone)]
pub struct KubeProxyRoll {
    pub kubeconfig: PathBuf,
    /// Node names, in roll order.
    pub nodes: Vec<String>,
    /// The address of a node's /healthz where given (`name=address`); else its InternalIP.
    pub addresses: std::collections::BTreeMap<String, String>,
    pub pending_marker: Option<PathBuf>,
    pub healthz_port: u16,
    /// Per node.
    pub timeout: Duration,
}

/// What the run will do.
pub enum Plan {
    Host(HostPlan),
    Roll(RollPlan),
}

/// What was done (`None` in check mode).
pub enum Applied {
    Host(Option<Box<Restarted>>),
    Roll(Option<Vec<Rolled>>),
}

/// The process to replace and where its successor must answer.
pub struct HostPlan {
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
                .choices(&NAMES),
            OptionSpec::new(
                "timeout",
                Kind::Int { min: 1, max: 3600 },
                "Seconds to wait for the new process and its health (1-3600); for kube-proxy, per node.",
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
                "The kubeconfig the O(node_name) check reads the Lease and the Node with (TLS verified against its CA). Use the kubelet's own C(kubelet.conf). The check then proves that the kubelet's credentials work through the server it now uses. With O(name=kube-proxy), required. A cluster admin's kubeconfig to list and delete the pods with.",
            ),
            OptionSpec::new(
                "node_timeout",
                Kind::Int { min: 1, max: 3600 },
                "Seconds to wait for the O(node_name) check after the kubelet is healthy (1-3600).",
            )
            .default(Default::Int(120)),
            OptionSpec::new(
                "nodes",
                Kind::StrList,
                "With O(name=kube-proxy), required. The nodes whose kube-proxy pod is rolled, one at a time, in this order, each C(name) or C(name=address) (the address its /healthz is checked on; default the Node's InternalIP).",
            )
            .default(Default::EmptyList),
            OptionSpec::new(
                "pending_marker",
                Kind::Path,
                "With O(name=kube-proxy). Roll only when this file exists (cluster_configmaps writes it before the kube-proxy ConfigMap changes); it is removed once every node is done, so an interrupted roll is redone by the next run.",
            ),
            OptionSpec::new(
                "healthz_port",
                Kind::Int { min: 1, max: 65535 },
                "With O(name=kube-proxy). The port of kube-proxy's C(healthzBindAddress); its new pod must answer HTTP 200 on C(http://<node InternalIP>:<port>/healthz).",
            )
            .default(Default::Int(10256)),
        ],
    };
    type Plan = Plan;
    type Applied = Applied;

    fn from_options(o: &Options) -> Result<Self> {
        let name = o.string("name")?;
        let roll_options = ["nodes", "pending_marker"];
        if name == "kube-proxy" {
            return kube_proxy_roll(o).map(ComponentRestart::KubeProxy);
        }
        for option in roll_options {
            let given = match option {
                "nodes" => !o.list(option)?.is_empty(),
                _ => o.opt_path(option)?.is_some(),
            };
            if given {
                return Err(Error::option(
                    option,
                    format!("is only for name=kube-proxy, not {name}"),
                ));
            }
        }
        let component = Component::parse(&name).ok_or_else(|| {
            Error::option(
                "name",
                format!("{name:?} is not one of: {}", NAMES.join(", ")),
            )
        })?;
        Ok(ComponentRestart::Host(HostRestart {
            component,
            timeout: Duration::from_secs(o.int("timeout")? as u64),
            health_url: o
                .opt_string("health_url")?
                .map(|u| HealthUrl::parse(&u))
                .transpose()?,
            ca_cert_path: o.path("ca_cert_path")?,
            node: node_check(o, component)?,
        }))
    }

    fn plan(&self) -> Result<Plan> {
        match self {
            ComponentRestart::Host(h) => h.plan().map(Plan::Host),
            ComponentRestart::KubeProxy(r) => r.plan().map(Plan::Roll),
        }
    }

    fn apply(&self, plan: &Plan, check_mode: bool) -> Result<Applied> {
        match (self, plan) {
            (ComponentRestart::Host(h), Plan::Host(p)) => h
                .apply(p, check_mode)
                .map(|r| Applied::Host(r.map(Box::new))),
            (ComponentRestart::KubeProxy(r), Plan::Roll(p)) => {
                r.apply(p, check_mode).map(Applied::Roll)
            }
            _ => Err(Error::Refused(
                "internal error: plan of another kind".into(),
            )),
        }
    }

    fn report(&self, plan: Plan, applied: Applied, _check_mode: bool) -> ModuleOutput {
        match (self, plan, applied) {
            (ComponentRestart::Host(h), Plan::Host(p), Applied::Host(a)) => {
                h.report(p, a.map(|r| *r))
            }
            (ComponentRestart::KubeProxy(r), Plan::Roll(p), Applied::Roll(a)) => r.report(p, a),
            _ => ModuleOutput::new(false, "internal error: result of another kind"),
        }
    }
}

impl HostRestart {
    fn plan(&self) -> Result<HostPlan> {
        if self.component == Component::Kubelet {
            let node_api = match &self.node {
                Some(check) => Some(ApiServer::from_kubeconfig(
                    &check.kubeconfig,
                    None,
                    PROBE_TIMEOUT,
                )?),
                None => None,
            };
            return Ok(HostPlan {
                pid_before: systemd::main_pid("kubelet")?,
                target: self.target(None)?,
                node_api,
            });
        }
        let old = self.the_running_process()?;
        Ok(HostPlan {
            pid_before: old.pid,
            target: self.target(Some(&old))?,
            node_api: None,
        })
    }

    fn apply(&self, plan: &HostPlan, check_mode: bool) -> Result<Option<Restarted>> {
        if check_mode {
            return Ok(None);
        }
        match self.component {
            Component::Kubelet => self.restart_kubelet(plan.pid_before, plan.node_api.as_ref()),
            _ => self.restart_static_pod(plan.pid_before),
        }
        .map(Some)
    }

    fn report(&self, plan: HostPlan, restarted: Option<Restarted>) -> ModuleOutput {
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

impl HostRestart {
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

/// What the kube-proxy roll found before touching anything.
pub struct RollPlan {
    api: ApiServer,
    /// No marker was asked for, or it exists.
    pending: bool,
    /// Each node and its kube-proxy pods now.
    before: Vec<(String, Vec<Pod>)>,
}

/// One node's roll.
pub struct Rolled {
    node: String,
    deleted: Vec<Pod>,
    new: Pod,
    healthz: String,
    waited: f64,
}

/// The label kubeadm and kubespray give kube-proxy's pods.
const KUBE_PROXY_SELECTOR: &str = "k8s-app=kube-proxy";
const KUBE_PROXY_NAMESPACE: &str = "kube-system";

/// The kube-proxy roll's options.
fn kube_proxy_roll(o: &Options) -> Result<KubeProxyRoll> {
    for option in ["node_name", "health_url"] {
        if o.opt_string(option)?.is_some() {
            return Err(Error::option(
                option,
                "is not for name=kube-proxy: its pods are checked on each node's healthz_port",
            ));
        }
    }
    let kubeconfig = o.opt_path("kubeconfig")?.ok_or_else(|| {
        Error::option(
            "kubeconfig",
            "is required with name=kube-proxy: a cluster admin's kubeconfig (/etc/kubernetes/admin.conf) to list and delete its pods with",
        )
    })?;
    let mut nodes = Vec::new();
    let mut addresses = std::collections::BTreeMap::new();
    for entry in o.list("nodes")? {
        match entry.split_once('=') {
            Some((name, address)) if !address.trim().is_empty() => {
                nodes.push(name.to_string());
                addresses.insert(name.to_string(), address.trim().to_string());
            }
            Some(_) => {
                return Err(Error::option(
                    "nodes",
                    format!(
                        "{entry:?} has no address after `=`: write name=address, or the name alone"
                    ),
                ))
            }
            None => nodes.push(entry),
        }
    }
    if nodes.is_empty() {
        return Err(Error::option(
            "nodes",
            "is required with name=kube-proxy: the nodes whose kube-proxy pod is rolled, in order",
        ));
    }
    if let Some(bad) = nodes
        .iter()
        .find(|n| n.trim().is_empty() || n.contains('/'))
    {
        return Err(Error::option(
            "nodes",
            format!("{bad:?} is not a node name"),
        ));
    }
    Ok(KubeProxyRoll {
        kubeconfig,
        nodes,
        addresses,
        pending_marker: o.opt_path("pending_marker")?,
        healthz_port: u16::try_from(o.int("healthz_port")?)
            .map_err(|_| Error::option("healthz_port", "is not a TCP port"))?,
        timeout: Duration::from_secs(o.int("timeout")? as u64),
    })
}

impl KubeProxyRoll {
    /// Read-only: is a roll pending, and which pods run on each node now.
    fn plan(&self) -> Result<RollPlan> {
        let api = ApiServer::from_kubeconfig(&self.kubeconfig, None, PROBE_TIMEOUT)?;
        let pending = self.pending_marker.as_ref().map_or(true, |m| m.exists());
        let mut before = Vec::new();
        if pending {
            for node in &self.nodes {
                before.push((
                    node.clone(),
                    pods::on_node(&api, KUBE_PROXY_NAMESPACE, KUBE_PROXY_SELECTOR, node)?,
                ));
            }
        }
        Ok(RollPlan {
            api,
            pending,
            before,
        })
    }

    fn apply(&self, plan: &RollPlan, check_mode: bool) -> Result<Option<Vec<Rolled>>> {
        if check_mode || !plan.pending {
            return Ok(None);
        }
        let mut rolled = Vec::new();
        for node in &self.nodes {
            let done =
                self.roll_one(&plan.api, node).map_err(|e| {
                    let finished: Vec<&str> =
                        rolled.iter().map(|r: &Rolled| r.node.as_str()).collect();
                    let marker = match &self.pending_marker {
                        Some(m) => format!(
                            "; {} is kept, so the next run rolls every node again",
                            m.display()
                        ),
                        None => String::new(),
                    };
                    Error::Refused(format!(
                    "kube-proxy roll stopped at node {node}: {e} (rolled before it: {}){marker}",
                    if finished.is_empty() { "none".to_string() } else { finished.join(", ") }
                ))
                })?;
            rolled.push(done);
        }
        if let Some(marker) = &self.pending_marker {
            match std::fs::remove_file(marker) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(marker, "remove the roll marker", e)),
            }
        }
        Ok(Some(rolled))
    }

    /// Delete the node's kube-proxy pods, wait for a new one Running there, then for its /healthz.
    fn roll_one(&self, api: &ApiServer, node: &str) -> Result<Rolled> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let old = pods::on_node(api, KUBE_PROXY_NAMESPACE, KUBE_PROXY_SELECTOR, node)?;
        let mut deleted = Vec::new();
        for pod in old.iter().filter(|p| !p.terminating) {
            if pods::delete(api, KUBE_PROXY_NAMESPACE, &pod.name)? {
                deleted.push(pod.clone());
            }
        }
        let old_uids: Vec<&str> = old.iter().map(|p| p.uid.as_str()).collect();
        let new = loop {
            let now = pods::on_node(api, KUBE_PROXY_NAMESPACE, KUBE_PROXY_SELECTOR, node)?;
            let fresh = now.into_iter().find(|p| {
                !old_uids.contains(&p.uid.as_str()) && p.phase == "Running" && !p.terminating
            });
            if let Some(p) = fresh {
                break p;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "no new Running kube-proxy pod ({KUBE_PROXY_SELECTOR}) on node {node} within {}s after deleting {}",
                    self.timeout.as_secs(),
                    if deleted.is_empty() { "nothing (no pod ran there)".to_string() } else {
                        deleted.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
                    }
                )));
            }
            std::thread::sleep(POLL);
        };
        let address = match self.addresses.get(node) {
            Some(given) => given.trim_start_matches('[').trim_end_matches(']').to_string(),
            None => pods::internal_ip(api, node)?.ok_or_else(|| {
                Error::remote(
                    api.server(),
                    format!("node {node} has no InternalIP in status.addresses: give its address in nodes as {node}=<address>"),
                )
            })?,
        };
        let healthz = format!(
            "http://{}:{}/healthz",
            if address.contains(':') {
                format!("[{address}]")
            } else {
                address.clone()
            },
            self.healthz_port
        );
        loop {
            let last = match http::http(
                &address,
                self.healthz_port,
                &Request::get("/healthz"),
                PROBE_TIMEOUT,
            ) {
                Ok(resp) if resp.status == 200 => break,
                Ok(resp) => format!("HTTP {} {}", resp.status, resp.snippet()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "the new kube-proxy pod {} on node {node} runs, but {healthz} did not answer 200 within {}s (last: {last}); is healthzBindAddress reachable from this host?",
                    new.name,
                    self.timeout.as_secs()
                )));
            }
            std::thread::sleep(POLL);
        }
        Ok(Rolled {
            node: node.to_string(),
            deleted,
            new,
            healthz,
            waited: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        })
    }

    fn report(&self, plan: RollPlan, rolled: Option<Vec<Rolled>>) -> ModuleOutput {
        if !plan.pending {
            let marker = self
                .pending_marker
                .as_ref()
                .map(|m| m.display().to_string())
                .unwrap_or_default();
            return ModuleOutput::new(
                false,
                format!("no kube-proxy roll pending ({marker} absent)"),
            )
            .field("nodes", json!([]));
        }
        let Some(rolled) = rolled else {
            let nodes: Vec<Value> = plan
                .before
                .iter()
                .map(|(node, pods)| {
                    json!({"node": node, "pods_before": pods.iter().map(|p| p.name.clone()).collect::<Vec<_>>()})
                })
                .collect();
            let names: Vec<&str> = self.nodes.iter().map(String::as_str).collect();
            // a roll pending and nothing applied: check mode
            return ModuleOutput::new(
                true,
                format!(
                    "would roll kube-proxy node by node on: {}",
                    names.join(", ")
                ),
            )
            .field("nodes", Value::Array(nodes));
        };
        let nodes: Vec<Value> = rolled
            .iter()
            .map(|r| {
                json!({
                    "node": r.node,
                    "pods_before": r.deleted.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
                    "pod_after": r.new.name,
                    "healthz": r.healthz,
                    "waited_seconds": r.waited,
                })
            })
            .collect();
        let names: Vec<&str> = rolled.iter().map(|r| r.node.as_str()).collect();
        ModuleOutput::new(
            true,
            format!(
                "rolled kube-proxy on {} node(s), one at a time: {}",
                names.len(),
                names.join(", ")
            ),
        )
        .field("nodes", Value::Array(nodes))
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
