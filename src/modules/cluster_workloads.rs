//! `kubeha.control_plane.cluster_workloads`: point the pod templates of named workloads
//! (DaemonSets, Deployments, StatefulSets; a CNI's agents and operator, say Cilium's with the
//! chart's `k8sServiceHost`) at the control-plane endpoint instead of a master, through the API
//! ([`crate::kubeapi::workload`]), then wait for each rollout before the next workload.
//!
//! The edit ([`repoint`], pure): in every container and init container, `KUBERNETES_SERVICE_HOST`
//! naming a master becomes the endpoint's host and that container's `KUBERNETES_SERVICE_PORT` its
//! port; any other env value that is an https URL naming a master becomes the endpoint's URL
//! (its path kept). Nothing else of the object changes. `state: original` (the rollback) puts back,
//! from the copy saved in `backup_dir` before the first change, exactly those env values
//! ([`restore`]).
//!
//! The roll: a changed pod template makes the workload's own controller roll it by its update
//! strategy (a DaemonSet's `maxUnavailable`, whose readiness probes are the health gate); the module
//! waits until the rollout is complete as `kubectl rollout status` judges it. A DaemonSet or
//! StatefulSet with `OnDelete` rolls nothing by itself: the module deletes its pods one at a time,
//! each time waiting until the workload has every pod ready again. Every listed workload's rollout
//! is waited for, changed or not, so a run interrupted mid-roll is finished by the next one.
//! Docs: the sidecar `cluster_workloads.yml`.

use crate::diff::FileDiff;
use crate::endpoint::{Endpoint, ServerUrl};
use crate::error::{Error, Result};
use crate::fsio::{self, FileAttrs};
use crate::info::cluster_pins::env_names_master;
use crate::info::pins::Masters;
use crate::kubeapi::client::{get_json, ApiServer, Put, Transport};
use crate::kubeapi::pods;
use crate::kubeapi::workload::{self, Kind as WorkloadKind, Rollout, WorkloadId};
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::protocol::{Module, ModuleOutput};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_secs(1);
/// PUTs tried before a workload that keeps changing under us is given up on.
const MAX_ATTEMPTS: u32 = 5;

/// What the pod templates are made to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Point them at `control_plane_endpoint`.
    Endpoint,
    /// Put back the env values saved in `backup_dir` (rollback).
    Original,
}

/// The module's options.
#[derive(Debug, Clone)]
pub struct ClusterWorkloads {
    pub kubeconfig: PathBuf,
    pub workloads: Vec<WorkloadId>,
    pub masters: Masters,
    pub state: State,
    /// Required with `State::Endpoint`.
    pub endpoint: Option<Endpoint>,
    pub backup_dir: Option<PathBuf>,
    pub rollout_timeout: Duration,
    pub timeout: Duration,
}

/// One env value changed (or to change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvChange {
    pub container: String,
    pub name: String,
    pub before: String,
    pub after: String,
}

/// One workload's decision, and then what happened to it.
#[derive(Debug)]
pub struct Decided {
    pub id: WorkloadId,
    pub changes: Vec<EnvChange>,
    /// The saved copy the rollback reads (state=endpoint: where it is or will be).
    pub backup_file: Option<PathBuf>,
}

/// What applying did to one workload.
#[derive(Debug)]
pub struct Rolled {
    pub rollout: Rollout,
    pub deleted_pods: Vec<String>,
    pub waited: f64,
    pub attempts: u32,
}

pub struct Plan {
    server: ApiServer,
    decided: Vec<Decided>,
}

impl Module for ClusterWorkloads {
    const SPEC: &'static ModuleSpec = &ModuleSpec {
        name: "cluster_workloads",
        options: &[
            OptionSpec::new(
                "kubeconfig",
                Kind::Path,
                "Kubeconfig with a client certificate of a cluster admin (TLS verified against its CA).",
            )
            .default(Default::Str("/etc/kubernetes/admin.conf")),
            OptionSpec::new(
                "workloads",
                Kind::StrList,
                "The workloads whose pod templates are repointed, in this order, each C(Kind/namespace/name) with Kind DaemonSet, Deployment or StatefulSet (C(DaemonSet/kube-system/cilium)). Each must exist.",
            )
            .required(),
            OptionSpec::new(
                "masters",
                Kind::StrList,
                "The control-plane hosts' addresses and names (C(name=address) or bare): only env values naming one of them are changed. Required with O(state=endpoint).",
            )
            .default(Default::EmptyList),
            OptionSpec::new(
                "state",
                Kind::Str,
                "C(endpoint) points the env values at O(control_plane_endpoint). C(original) puts back the env values this module changed, as saved in O(backup_dir) before the first change (the rollback); a workload without a saved copy is left alone.",
            )
            .default(Default::Str("endpoint"))
            .choices(&["endpoint", "original"]),
            OptionSpec::new(
                "control_plane_endpoint",
                Kind::Str,
                "The endpoint, C(host:port) (IPv6 in brackets). Required with O(state=endpoint).",
            ),
            OptionSpec::new(
                "backup_dir",
                Kind::Path,
                "Before its first change, save each workload's JSON as C(<dir>/<Kind>.<namespace>.<name>.json) (mode 0600, never overwritten). Required with O(state=original), which reads it.",
            ),
            OptionSpec::new(
                "rollout_timeout",
                Kind::Int { min: 1, max: 3600 },
                "Seconds to wait for each workload's rollout (1-3600).",
            )
            .default(Default::Int(300)),
            OptionSpec::new(
                "timeout",
                Kind::Int { min: 1, max: 600 },
                "Seconds per HTTP request (1-600).",
            )
            .default(Default::Int(15)),
        ],
    };
    type Plan = Plan;
    /// Per workload, in order; `None` in check mode.
    type Applied = Option<Vec<Rolled>>;

    fn from_options(o: &Options) -> Result<Self> {
        let state = match o.string("state")?.as_str() {
            "original" => State::Original,
            _ => State::Endpoint,
        };
        let workloads = o
            .list("workloads")?
            .iter()
            .map(|w| WorkloadId::parse(w, "workloads"))
            .collect::<Result<Vec<_>>>()?;
        let masters = Masters::parse(&o.list("masters")?, "masters")?;
        let endpoint = o
            .opt_string("control_plane_endpoint")?
            .map(|e| Endpoint::parse(&e, "control_plane_endpoint"))
            .transpose()?;
        let backup_dir = o.opt_path("backup_dir")?;
        if let Some(d) = backup_dir.as_ref().filter(|d| !d.is_absolute()) {
            return Err(Error::option(
                "backup_dir",
                format!("{} is not an absolute path", d.display()),
            ));
        }
        match state {
            State::Endpoint if endpoint.is_none() => {
                return Err(Error::option(
                    "control_plane_endpoint",
                    "is required (with state=endpoint, the default)",
                ))
            }
            State::Endpoint if masters.is_empty() => {
                return Err(Error::option(
                    "masters",
                    "is required with state=endpoint: the masters' addresses whose env values are repointed",
                ))
            }
            State::Original if backup_dir.is_none() => {
                return Err(Error::option(
                    "backup_dir",
                    "is required with state=original: the directory the originals were saved in",
                ))
            }
            _ => {}
        }
        Ok(ClusterWorkloads {
            kubeconfig: o.path("kubeconfig")?,
            workloads,
            masters,
            state,
            endpoint,
            backup_dir,
            rollout_timeout: Duration::from_secs(o.int("rollout_timeout")? as u64),
            timeout: Duration::from_secs(o.int("timeout")? as u64),
        })
    }

    /// Every workload read and its edit decided before any is written: one that is missing or
    /// cannot be edited fails the run while all are as they were.
    fn plan(&self) -> Result<Plan> {
        let server = ApiServer::from_kubeconfig(&self.kubeconfig, None, self.timeout)?;
        let mut decided = Vec::new();
        for id in &self.workloads {
            let object = self.read(&server, id)?;
            let (_, changes) = self.edit(id, &object)?;
            decided.push(Decided {
                id: id.clone(),
                changes,
                backup_file: self.backup_dir.as_ref().map(|d| d.join(id.file_name())),
            });
        }
        Ok(Plan { server, decided })
    }

    fn apply(&self, plan: &Plan, check_mode: bool) -> Result<Option<Vec<Rolled>>> {
        if check_mode {
            return Ok(None);
        }
        let mut done = Vec::new();
        for d in &plan.decided {
            let rolled = self.update_and_roll(&plan.server, d).map_err(|e| {
                let before: Vec<String> = plan.decided[..done.len()]
                    .iter()
                    .map(|d| d.id.to_string())
                    .collect();
                Error::Refused(format!(
                    "{} stopped: {e} (workloads done before it: {})",
                    d.id,
                    if before.is_empty() {
                        "none".into()
                    } else {
                        before.join(", ")
                    }
                ))
            })?;
            done.push(rolled);
        }
        Ok(Some(done))
    }

    fn report(&self, plan: Plan, rolled: Option<Vec<Rolled>>, check_mode: bool) -> ModuleOutput {
        let changed: Vec<String> = plan
            .decided
            .iter()
            .filter(|d| !d.changes.is_empty())
            .map(|d| d.id.to_string())
            .collect();
        let deleted_any = rolled
            .as_ref()
            .is_some_and(|r| r.iter().any(|r| !r.deleted_pods.is_empty()));
        let mut out = ModuleOutput::new(!changed.is_empty() || deleted_any, "");
        let verb = match self.state {
            State::Endpoint => "repoint",
            State::Original => "restore",
        };
        out.msg = match (changed.is_empty(), check_mode) {
            (true, _) => match (&self.endpoint, self.state) {
                (Some(e), State::Endpoint) => {
                    format!("no selected workload names a master where {e} belongs; every rollout complete")
                }
                _ => "every selected workload holds its saved env values (or has none saved); every rollout complete".into(),
            },
            (false, true) => format!("would {verb} and roll {}", changed.join(", ")),
            (false, false) => format!("{verb}ed and rolled {}", changed.join(", ")),
        };
        let mut list = Vec::new();
        for (i, d) in plan.decided.iter().enumerate() {
            let r = rolled.as_ref().and_then(|r| r.get(i));
            let changes: Vec<Value> = d
                .changes
                .iter()
                .map(|c| json!({"container": c.container, "name": c.name, "before": c.before, "after": c.after}))
                .collect();
            list.push(json!({
                "id": d.id.to_string(),
                "changed": !d.changes.is_empty(),
                "env": changes,
                "rollout": r.map(|r| r.rollout.summary.clone()),
                "deleted_pods": r.map(|r| r.deleted_pods.clone()).unwrap_or_default(),
                "waited_seconds": r.map(|r| r.waited),
                "attempts": r.map(|r| r.attempts).unwrap_or(0),
                "backup_file": d.backup_file.as_ref().filter(|p| p.exists()).map(|p| p.display().to_string()),
            }));
            if !d.changes.is_empty() {
                let line = |c: &EnvChange, v: &str| format!("{} {}={}\n", c.container, c.name, v);
                let before: String = d.changes.iter().map(|c| line(c, &c.before)).collect();
                let after: String = d.changes.iter().map(|c| line(c, &c.after)).collect();
                out.diffs
                    .push(FileDiff::new(&format!("{} env", d.id), before, after));
            }
        }
        out.set("workloads", Value::Array(list));
        out.set("api_server", plan.server.server());
        out
    }
}

impl ClusterWorkloads {
    fn read(&self, t: &dyn Transport, id: &WorkloadId) -> Result<Value> {
        workload::get(t, id)?.ok_or_else(|| {
            Error::remote(
                t.server(),
                format!("{id} does not exist: remove it from workloads (is that the CNI this cluster runs?)"),
            )
        })
    }

    /// The edited object (None: nothing to change) and the changes, for the current state.
    fn edit(&self, id: &WorkloadId, object: &Value) -> Result<(Option<Value>, Vec<EnvChange>)> {
        match (self.state, &self.endpoint) {
            (State::Endpoint, Some(endpoint)) => Ok(repoint(object, &self.masters, endpoint)),
            (State::Endpoint, None) => Err(Error::option("control_plane_endpoint", "is required")),
            (State::Original, _) => {
                let Some(saved) = self.saved(id)? else {
                    return Ok((None, Vec::new()));
                };
                Ok(restore(object, &saved, &self.masters))
            }
        }
    }

    /// The copy saved before the first change, if any.
    fn saved(&self, id: &WorkloadId) -> Result<Option<Value>> {
        let Some(path) = self.backup_dir.as_ref().map(|d| d.join(id.file_name())) else {
            return Ok(None);
        };
        if !path.exists() {
            return Ok(None);
        }
        let text = fsio::read_text(&path)?;
        let object: Value = serde_json::from_str(&text).map_err(|e| {
            Error::content(&path, format!("is not the JSON of {id} this module saved ({e}); restore it from your own backup or remove it to keep the current {id}"))
        })?;
        if object["metadata"]["namespace"] != id.namespace.as_str()
            || object["metadata"]["name"] != id.name.as_str()
        {
            return Err(Error::content(
                &path,
                format!("does not hold {id}; restore it from your own backup or remove it to keep the current {id}"),
            ));
        }
        Ok(Some(object))
    }

    /// PUT the edit (re-read and re-edited on a conflict), then wait for the rollout.
    fn update_and_roll(&self, t: &dyn Transport, d: &Decided) -> Result<Rolled> {
        let started = Instant::now();
        let mut attempts = 0;
        let mut old_pods: Vec<pods::Pod> = Vec::new();
        loop {
            let object = self.read(t, &d.id)?;
            let (Some(edited), _) = self.edit(&d.id, &object)? else {
                break;
            };
            if attempts >= MAX_ATTEMPTS {
                return Err(Error::remote(
                    t.server(),
                    format!("{} changed under every one of {MAX_ATTEMPTS} attempts to update it (409 Conflict); stop the other writer (a Helm or GitOps controller?) and rerun", d.id),
                ));
            }
            if attempts == 0 {
                if let (Some(path), State::Endpoint) = (&d.backup_file, self.state) {
                    save_once(path, &object)?;
                }
                old_pods = workload_pods(t, &d.id, &object)?;
            }
            attempts += 1;
            match workload::put(t, &d.id, &edited)? {
                Put::Stored(_) => break,
                Put::Conflict => {
                    std::thread::sleep(Duration::from_millis(100 * u64::from(attempts)))
                }
            }
        }
        let deadline = started + self.rollout_timeout;
        let mut deleted_pods = Vec::new();
        let object = self.wait_observed(t, &d.id, deadline)?;
        let now = workload::rollout(d.id.kind, &object);
        if now.on_delete && !now.done {
            // Nothing rolls by itself: one pod at a time, the workload whole again before the next.
            let mut targets = old_pods;
            if targets.is_empty() {
                targets = workload_pods(t, &d.id, &object)?;
            }
            for pod in targets {
                if pods::delete(t, &d.id.namespace, &pod.name)? {
                    deleted_pods.push(pod.name.clone());
                }
                self.wait_whole(t, &d.id, &pod, deadline)?;
            }
        }
        let rollout = self.wait_rollout(t, &d.id, deadline)?;
        Ok(Rolled {
            rollout,
            deleted_pods,
            waited: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            attempts,
        })
    }

    /// The workload once its controller has seen the current generation.
    fn wait_observed(
        &self,
        t: &dyn Transport,
        id: &WorkloadId,
        deadline: Instant,
    ) -> Result<Value> {
        loop {
            let object = workload::get_existing(t, id)?;
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
            let observed = object["status"]["observedGeneration"].as_i64().unwrap_or(0);
            if observed >= generation {
                return Ok(object);
            }
            if Instant::now() >= deadline {
                return Err(self.timed_out(id, &workload::rollout(id.kind, &object)));
            }
            std::thread::sleep(POLL);
        }
    }

    fn wait_rollout(
        &self,
        t: &dyn Transport,
        id: &WorkloadId,
        deadline: Instant,
    ) -> Result<Rollout> {
        loop {
            let object = workload::get_existing(t, id)?;
            let rollout = workload::rollout(id.kind, &object);
            if rollout.done {
                return Ok(rollout);
            }
            if Instant::now() >= deadline {
                return Err(self.timed_out(id, &rollout));
            }
            std::thread::sleep(POLL);
        }
    }

    /// After deleting `gone`: it is gone and the workload has every pod ready again.
    fn wait_whole(
        &self,
        t: &dyn Transport,
        id: &WorkloadId,
        gone: &pods::Pod,
        deadline: Instant,
    ) -> Result<()> {
        loop {
            let object = workload::get_existing(t, id)?;
            let present = workload_pods(t, id, &object)?;
            let still = present.iter().any(|p| p.uid == gone.uid);
            let (ready, wanted) = match id.kind {
                WorkloadKind::DaemonSet => (
                    object["status"]["numberReady"].as_i64().unwrap_or(0),
                    object["status"]["desiredNumberScheduled"]
                        .as_i64()
                        .unwrap_or(0),
                ),
                _ => (
                    object["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    object["spec"]["replicas"].as_i64().unwrap_or(1),
                ),
            };
            if !still && ready >= wanted {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "{id} (updateStrategy OnDelete): after deleting pod {}, {ready} of {wanted} pods ready within {}s; see kubectl -n {} get pods",
                    gone.name,
                    self.rollout_timeout.as_secs(),
                    id.namespace
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    fn timed_out(&self, id: &WorkloadId, rollout: &Rollout) -> Error {
        let saved = match (&self.backup_dir, self.state) {
            (Some(d), State::Endpoint) => format!(
                "; its original is saved in {}, rollback.yml puts it back",
                d.join(id.file_name()).display()
            ),
            _ => String::new(),
        };
        Error::Timeout(format!(
            "the rollout of {id} did not complete within {}s: {} (kubectl -n {} rollout status {}/{}){saved}",
            self.rollout_timeout.as_secs(),
            rollout.summary,
            id.namespace,
            id.kind.name().to_ascii_lowercase(),
            id.name
        ))
    }
}

/// The pods of a workload, by its selector.
fn workload_pods(t: &dyn Transport, id: &WorkloadId, object: &Value) -> Result<Vec<pods::Pod>> {
    let Some(selector) = workload::selector(object) else {
        return Ok(Vec::new());
    };
    let path = format!(
        "/api/v1/namespaces/{}/pods?labelSelector={}",
        id.namespace,
        pods::query_value(&selector)
    );
    let list = get_json(t, &path)?;
    Ok(list["items"]
        .as_array()
        .map(|items| items.iter().map(pods::pod_of).collect())
        .unwrap_or_default())
}

/// Save a workload's JSON once (0600; an existing copy is the original and is kept).
fn save_once(path: &Path, object: &Value) -> Result<()> {
    let text = serde_json::to_vec_pretty(object)
        .map_err(|e| Error::Refused(format!("cannot encode the workload backup: {e}")))?;
    let attrs = FileAttrs {
        mode: 0o600,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    fsio::write_once(path, &text, attrs).map(|_| ())
}

/// The env lists of every init container, then every container (the order the kubelet starts
/// them): (container name, env array).
fn env_lists(object: &mut Value) -> Vec<(String, &mut Vec<Value>)> {
    let mut out = Vec::new();
    let spec = &mut object["spec"]["template"]["spec"];
    let Some(spec) = spec.as_object_mut() else {
        return out;
    };
    let mut lists: Vec<(&String, &mut Value)> = spec
        .iter_mut()
        .filter(|(k, _)| *k == "containers" || *k == "initContainers")
        .collect();
    lists.sort_by_key(|(k, _)| *k != "initContainers");
    for (_, list) in lists {
        for container in list.as_array_mut().into_iter().flatten() {
            let name = container["name"].as_str().unwrap_or("?").to_string();
            if let Some(env) = container.get_mut("env").and_then(Value::as_array_mut) {
                out.push((name, env));
            }
        }
    }
    out
}

/// This container's `KUBERNETES_SERVICE_HOST` names a master (so its `KUBERNETES_SERVICE_PORT`
/// follows the host).
fn service_host_pinned(env: &[Value], masters: &Masters) -> bool {
    env.iter().any(|v| {
        v["name"] == "KUBERNETES_SERVICE_HOST"
            && v["value"]
                .as_str()
                .is_some_and(|s| env_names_master("KUBERNETES_SERVICE_HOST", s, masters).is_some())
    })
}

/// The forward edit: every env value naming a master repointed at `endpoint`.
pub fn repoint(
    object: &Value,
    masters: &Masters,
    endpoint: &Endpoint,
) -> (Option<Value>, Vec<EnvChange>) {
    let mut edited = object.clone();
    let mut changes = Vec::new();
    for (container, env) in env_lists(&mut edited) {
        let host_pinned = service_host_pinned(env, masters);
        for var in env.iter_mut() {
            let (Some(name), Some(value)) = (var["name"].as_str(), var["value"].as_str()) else {
                continue;
            };
            let after = if name == "KUBERNETES_SERVICE_HOST"
                && env_names_master(name, value, masters).is_some()
            {
                endpoint.host().to_string()
            } else if name == "KUBERNETES_SERVICE_PORT" && host_pinned {
                endpoint.port().to_string()
            } else if env_names_master(name, value, masters).is_some() {
                match ServerUrl::parse(value, "env") {
                    Ok(url) => format!("{}{}", endpoint.url(), url.path),
                    Err(_) => continue,
                }
            } else {
                continue;
            };
            if after != value {
                changes.push(EnvChange {
                    container: container.clone(),
                    name: name.to_string(),
                    before: value.to_string(),
                    after: after.clone(),
                });
                var["value"] = Value::String(after);
            }
        }
    }
    ((!changes.is_empty()).then_some(edited), changes)
}

/// The rollback edit: the env values [`repoint`] would change in the saved copy, put back.
pub fn restore(
    object: &Value,
    saved: &Value,
    masters: &Masters,
) -> (Option<Value>, Vec<EnvChange>) {
    let mut saved_copy = saved.clone();
    let mut wanted: Vec<(String, String, String)> = Vec::new();
    for (container, env) in env_lists(&mut saved_copy) {
        let host_pinned = service_host_pinned(env, masters);
        for var in env.iter() {
            let (Some(name), Some(value)) = (var["name"].as_str(), var["value"].as_str()) else {
                continue;
            };
            if env_names_master(name, value, masters).is_some()
                || (name == "KUBERNETES_SERVICE_PORT" && host_pinned)
            {
                wanted.push((container.clone(), name.to_string(), value.to_string()));
            }
        }
    }
    let mut edited = object.clone();
    let mut changes = Vec::new();
    for (container, env) in env_lists(&mut edited) {
        for var in env.iter_mut() {
            let Some(name) = var["name"].as_str().map(str::to_string) else {
                continue;
            };
            let Some((_, _, value)) = wanted
                .iter()
                .find(|(c, n, _)| *c == container && *n == name)
            else {
                continue;
            };
            let current = var["value"].as_str().unwrap_or("").to_string();
            if current != *value {
                changes.push(EnvChange {
                    container: container.clone(),
                    name: name.clone(),
                    before: current,
                    after: value.clone(),
                });
                var["value"] = Value::String(value.clone());
            }
        }
    }
    ((!changes.is_empty()).then_some(edited), changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masters() -> Masters {
        Masters::parse(
            &[
                "m1=10.0.0.11".into(),
                "m1=master1".into(),
                "m2=10.0.0.12".into(),
            ],
            "masters",
        )
        .unwrap()
    }

    fn ep() -> Endpoint {
        Endpoint::parse("10.0.0.10:6443", "e").unwrap()
    }

    /// The Cilium chart's DaemonSet with k8sServiceHost set, plus an unrelated env and a URL.
    fn cilium() -> Value {
        let env = json!([
            {"name": "K8S_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.11"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
        ]);
        json!({
            "metadata": {"name": "cilium", "namespace": "kube-system", "resourceVersion": "7", "generation": 1},
            "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
                     "template": {"metadata": {"labels": {"k8s-app": "cilium"}}, "spec": {
                "initContainers": [{"name": "config", "image": "c", "env": env}],
                "containers": [
                    {"name": "cilium-agent", "image": "c", "env": env},
                    {"name": "sidecar", "image": "s", "env": [
                        {"name": "API", "value": "https://master1:6443/api"},
                        {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
                        {"name": "OTHER", "value": "10.0.0.11"}]},
                    {"name": "no-env", "image": "n"}]}}}
        })
    }

    #[test]
    fn repoint_changes_only_the_values_naming_a_master() {
        let (edited, changes) = repoint(&cilium(), &masters(), &ep());
        let edited = edited.expect("a change");
        let got: Vec<(String, String, String, String)> = changes
            .iter()
            .map(|c| {
                (
                    c.container.clone(),
                    c.name.clone(),
                    c.before.clone(),
                    c.after.clone(),
                )
            })
            .collect();
        let row = |c: &str, n: &str, b: &str, a: &str| {
            (c.to_string(), n.to_string(), b.to_string(), a.to_string())
        };
        assert_eq!(
            got,
            vec![
                row(
                    "config",
                    "KUBERNETES_SERVICE_HOST",
                    "10.0.0.11",
                    "10.0.0.10"
                ),
                row(
                    "cilium-agent",
                    "KUBERNETES_SERVICE_HOST",
                    "10.0.0.11",
                    "10.0.0.10"
                ),
                row(
                    "sidecar",
                    "API",
                    "https://master1:6443/api",
                    "https://10.0.0.10:6443/api"
                ),
            ]
        );
        // Everything else is as it was: the port (already the endpoint's), the valueFrom, OTHER,
        // the strategy, the resourceVersion the PUT must carry.
        let mut back = edited.clone();
        for (_, env) in env_lists(&mut back) {
            for var in env.iter_mut() {
                if var["value"] == "10.0.0.10" {
                    var["value"] = json!("10.0.0.11");
                }
                if var["value"] == "https://10.0.0.10:6443/api" {
                    var["value"] = json!("https://master1:6443/api");
                }
            }
        }
        assert_eq!(back, cilium());
        assert_eq!(edited["metadata"]["resourceVersion"], "7");
        // Idempotent: a second pass changes nothing.
        assert_eq!(repoint(&edited, &masters(), &ep()), (None, vec![]));
    }

    #[test]
    fn the_port_follows_the_host_and_restore_puts_back_exactly_what_changed() {
        let other = Endpoint::parse("lb.example.com:8443", "e").unwrap();
        let (edited, changes) = repoint(&cilium(), &masters(), &other);
        let edited = edited.unwrap();
        assert_eq!(changes.len(), 5, "{changes:?}");
        assert!(changes.iter().any(|c| c.container == "cilium-agent"
            && c.name == "KUBERNETES_SERVICE_PORT"
            && c.after == "8443"));
        // the sidecar's port is not the service host's (its host is not pinned): left alone
        assert!(!changes
            .iter()
            .any(|c| c.container == "sidecar" && c.name == "KUBERNETES_SERVICE_PORT"));
        // Someone else changed another env value since: the rollback keeps that change.
        let mut later = edited.clone();
        later["spec"]["template"]["spec"]["containers"][1]["env"][2]["value"] =
            json!("changed later");
        let (restored, back) = restore(&later, &cilium(), &masters());
        let restored = restored.unwrap();
        assert_eq!(back.len(), 5);
        let mut want = cilium();
        want["spec"]["template"]["spec"]["containers"][1]["env"][2]["value"] =
            json!("changed later");
        assert_eq!(restored, want);
        assert_eq!(restore(&cilium(), &cilium(), &masters()), (None, vec![]));
    }

    #[test]
    fn nothing_pinned_nothing_changed() {
        let mut o = cilium();
        o["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] = json!("10.0.0.10");
        o["spec"]["template"]["spec"]["initContainers"][0]["env"][1]["value"] = json!("10.96.0.1");
        o["spec"]["template"]["spec"]["containers"][1]["env"][0]["value"] =
            json!("https://10.0.0.10:6443");
        assert_eq!(repoint(&o, &masters(), &ep()), (None, vec![]));
    }
}
