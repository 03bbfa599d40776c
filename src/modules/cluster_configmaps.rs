//! `kubeha.control_plane.cluster_configmaps`: point the cluster-wide ConfigMaps at the new
//! control-plane endpoint through the REST API ([`crate::kubeapi`]). Three targeted text edits
//! (pure functions that keep every other byte of the embedded YAML), each applied with
//! [`update_key`]:
//! - `kube-system/kube-proxy` `kubeconfig.conf`: the cluster's `server`;
//! - `kube-system/kubeadm-config` `ClusterConfiguration`: `controlPlaneEndpoint`, `apiServer.certSANs`;
//! - `kube-public/cluster-info` `kubeconfig`: the server of its one cluster (named "").
//!
//! The plan decides every edit (GET + pure edit, no PUT) before any is written: a ConfigMap that
//! cannot be edited (say an unsupported ClusterConfiguration) then fails the run while all three
//! are still as they were. It does not run kubeadm.
//!
//! The originals: with `backup_dir`, each ConfigMap's JSON is saved once, before its first change;
//! `state: original` (the rollback) puts back the one key kubeha edits from that copy, and
//! nothing else (a later change to another key stays). `kube_proxy_roll_marker` is written before
//! the kube-proxy ConfigMap changes, either way, so that the kube-proxy roll happens even after an
//! interrupted run. Docs: the sidecar `cluster_configmaps.yml`.

use crate::diff::FileDiff;
use crate::endpoint::{Endpoint, ServerUrl};
use crate::error::{Error, Result};
use crate::fsio::{self, FileAttrs};
use crate::kubeadm;
use crate::kubeapi::client::{ApiServer, Transport};
use crate::kubeapi::configmap::{update_key, KeyChange, Outcome};
use crate::kubeconfig::{self, Kubeconfig};
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::pki::san::San;
use crate::protocol::{Module, ModuleOutput};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The module's options.
#[derive(Debug, Clone)]
pub struct ClusterConfigmaps {
    pub kubeconfig: PathBuf,
    pub api_server: Option<String>,
    pub state: State,
    /// Required with `State::Endpoint`.
    pub endpoint: Option<Endpoint>,
    pub cert_sans: Vec<San>,
    pub update_kube_proxy: bool,
    pub update_cluster_info: bool,
    pub update_kubeadm_config: bool,
    pub backup_dir: Option<PathBuf>,
    pub kube_proxy_roll_marker: Option<PathBuf>,
    pub timeout: Duration,
}

/// What the ConfigMaps are made to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Point them at `control_plane_endpoint`.
    Endpoint,
    /// Put back the edited key as saved in `backup_dir` (rollback).
    Original,
}

/// One ConfigMap's update (or decision), and where its original was saved.
type Updated = (Outcome, Option<String>);

/// The API server talked to, and each selected ConfigMap's decided edit.
pub struct Plan {
    server: ApiServer,
    decided: Vec<Updated>,
}

impl Module for ClusterConfigmaps {
    const SPEC: &'static ModuleSpec = &ModuleSpec {
        name: "cluster_configmaps",
        options: &[
            OptionSpec::new(
                "kubeconfig",
                Kind::Path,
                "Kubeconfig with a client certificate of a cluster admin.",
            )
            .default(Default::Str("/etc/kubernetes/admin.conf")),
            OptionSpec::new(
                "api_server",
                Kind::Str,
                "Use this https URL instead of the kubeconfig's server (verified against the same CA).",
            ),
            OptionSpec::new(
                "state",
                Kind::Str,
                "C(endpoint) points the ConfigMaps at O(control_plane_endpoint). C(original) puts back, in each selected ConfigMap, the key this module edits as it was saved in O(backup_dir) before the first change (the rollback); a ConfigMap without a saved copy is left alone.",
            )
            .default(Default::Str("endpoint"))
            .choices(&["endpoint", "original"]),
            OptionSpec::new(
                "control_plane_endpoint",
                Kind::Str,
                "The new endpoint, C(host:port) (IPv6 in brackets). Required with O(state=endpoint).",
            ),
            OptionSpec::new(
                "cert_sans",
                Kind::StrList,
                "SANs that ClusterConfiguration C(apiServer.certSANs) must contain (missing ones appended).",
            )
            .default(Default::EmptyList),
            OptionSpec::new(
                "update_kube_proxy",
                Kind::Bool,
                "Update C(kube-system/kube-proxy).",
            )
            .default(Default::Bool(true)),
            OptionSpec::new(
                "update_kubeadm_config",
                Kind::Bool,
                "Update C(kube-system/kubeadm-config).",
            )
            .default(Default::Bool(true)),
            OptionSpec::new(
                "update_cluster_info",
                Kind::Bool,
                "Update C(kube-public/cluster-info).",
            )
            .default(Default::Bool(true)),
            OptionSpec::new(
                "backup_dir",
                Kind::Path,
                "Before its first change, save each ConfigMap's full JSON as C(<dir>/<namespace>.<name>.json) (mode 0600). An existing file is never overwritten, so it keeps the original state for a rollback. Required with O(state=original), which reads it.",
            ),
            OptionSpec::new(
                "kube_proxy_roll_marker",
                Kind::Path,
                "Written (mode 0600) just before the C(kube-system/kube-proxy) ConfigMap changes. kube-proxy reads its ConfigMap only when it starts, so its pods must be rolled; whoever rolls them removes this file when done, and a run interrupted in between still finds it.",
            ),
            OptionSpec::new(
                "timeout",
                Kind::Int { min: 1, max: 600 },
                "Seconds per HTTP request (1-600).",
            )
            .default(Default::Int(15)),
        ],
    };
    type Plan = Plan;
    /// The updates made; `None` in check mode (the plan's decisions stand for them).
    type Applied = Option<Vec<Updated>>;

    fn from_options(o: &Options) -> Result<Self> {
        let api_server = o.opt_string("api_server")?;
        if let Some(s) = &api_server {
            ServerUrl::parse(s, "api_server")?;
        }
        let state = match o.string("state")?.as_str() {
            "original" => State::Original,
            _ => State::Endpoint,
        };
        let endpoint = match (state, o.opt_string("control_plane_endpoint")?) {
            (_, Some(text)) => Some(Endpoint::parse(&text, "control_plane_endpoint")?),
            (State::Endpoint, None) => {
                return Err(Error::option(
                    "control_plane_endpoint",
                    "is required (with state=endpoint, the default)",
                ))
            }
            (State::Original, None) => None,
        };
        let cert_sans = San::parse_list("cert_sans", &o.list("cert_sans")?)?;
        let absolute = |name: &'static str| -> Result<Option<PathBuf>> {
            let path = o.opt_path(name)?;
            match &path {
                Some(d) if !d.is_absolute() => Err(Error::option(
                    name,
                    format!("{} is not an absolute path", d.display()),
                )),
                _ => Ok(path),
            }
        };
        let backup_dir = absolute("backup_dir")?;
        if state == State::Original && backup_dir.is_none() {
            return Err(Error::option(
                "backup_dir",
                "is required with state=original: the directory the originals were saved in",
            ));
        }
        let kube_proxy_roll_marker = absolute("kube_proxy_roll_marker")?;
        Ok(ClusterConfigmaps {
            kubeconfig: o.path("kubeconfig")?,
            api_server,
            state,
            endpoint,
            cert_sans,
            update_kube_proxy: o.bool("update_kube_proxy")?,
            update_cluster_info: o.bool("update_cluster_info")?,
            update_kubeadm_config: o.bool("update_kubeadm_config")?,
            backup_dir,
            kube_proxy_roll_marker,
            timeout: Duration::from_secs(o.int("timeout")? as u64),
        })
    }

    fn plan(&self) -> Result<Plan> {
        let server =
            ApiServer::from_kubeconfig(&self.kubeconfig, self.api_server.as_deref(), self.timeout)?;
        let decided = self.update_all(&server, true)?;
        Ok(Plan { server, decided })
    }

    fn apply(&self, plan: &Plan, check_mode: bool) -> Result<Option<Vec<Updated>>> {
        if check_mode {
            return Ok(None);
        }
        // Each update reads the ConfigMap again: what the plan saw may have changed since.
        self.update_all(&plan.server, false).map(Some)
    }

    fn report(&self, plan: Plan, updated: Option<Vec<Updated>>, check_mode: bool) -> ModuleOutput {
        let outcomes = updated.as_deref().unwrap_or(&plan.decided);
        let changed: Vec<String> = outcomes
            .iter()
            .filter(|(o, _)| o.changed)
            .map(|(o, _)| format!("{}/{}", o.namespace, o.name))
            .collect();
        let mut out = ModuleOutput::new(!changed.is_empty(), "");
        let verb = match self.state {
            State::Endpoint => "update",
            State::Original => "restore",
        };
        out.msg = match (changed.is_empty(), check_mode, &self.endpoint, self.state) {
            (true, _, Some(endpoint), State::Endpoint) => {
                format!("every selected ConfigMap already points at {endpoint}")
            }
            (true, _, _, _) => {
                "every selected ConfigMap already holds its saved original (or has none saved)"
                    .to_string()
            }
            (false, true, _, _) => format!("would {verb} {}", changed.join(", ")),
            (false, false, _, _) => format!("{verb}d {}", changed.join(", ")),
        };
        let mut list = Vec::new();
        for (o, backup) in outcomes {
            list.push(json!({
                "namespace": o.namespace,
                "name": o.name,
                "key": o.key,
                "changed": o.changed,
                "before": o.field_before,
                "after": o.field_after,
                "resource_version_before": o.resource_version_before,
                "resource_version_after": o.resource_version_after,
                "attempts": o.attempts,
                "backup_file": backup,
            }));
            if o.changed {
                let label = format!("configmap {}/{} {}", o.namespace, o.name, o.key);
                out.diffs.push(FileDiff::new(
                    &label,
                    kubeconfig::redacted(&o.text_before),
                    kubeconfig::redacted(&o.text_after),
                ));
            }
        }
        out.set("configmaps", Value::Array(list));
        if let Some(endpoint) = &self.endpoint {
            out.set("server", endpoint.url());
        }
        out.set("api_server", plan.server.server());
        out
    }
}

impl ClusterConfigmaps {
    /// Update (or, in check mode, only decide) each selected ConfigMap, in a fixed order.
    fn update_all(&self, t: &dyn Transport, check_mode: bool) -> Result<Vec<Updated>> {
        let server = match &self.endpoint {
            Some(endpoint) => Some(ServerUrl::parse(&endpoint.url(), "control_plane_endpoint")?),
            None => None,
        };
        let mut outcomes: Vec<Updated> = Vec::new();
        let save = |ns: &str, name: &str| -> Option<PathBuf> {
            self.backup_dir
                .as_ref()
                .map(|d| d.join(format!("{ns}.{name}.json")))
        };
        let mut run_one = |ns: &str,
                           name: &str,
                           key: &str,
                           edit: &dyn Fn(&str) -> Result<KeyChange>|
         -> Result<()> {
            let backup = save(ns, name);
            let marker = self
                .kube_proxy_roll_marker
                .as_ref()
                .filter(|_| (ns, name) == ("kube-system", "kube-proxy"));
            let before_write = |original: &Value| -> Result<()> {
                if let Some(path) = marker {
                    write_marker(path, ns, name)?;
                }
                match (&backup, self.state) {
                    (Some(path), State::Endpoint) => save_original(path, original),
                    _ => Ok(()),
                }
            };
            if self.state == State::Original {
                let Some(path) = &backup else {
                    return Ok(());
                };
                let Some(saved) = saved_key(path, ns, name, key)? else {
                    return Ok(());
                };
                let restore = |text: &str| -> Result<KeyChange> { Ok(restore_edit(text, &saved)) };
                let outcome = update_key(t, ns, name, key, check_mode, &restore, &before_write)?;
                outcomes.push((outcome, Some(path.display().to_string())));
                return Ok(());
            }
            let outcome = update_key(t, ns, name, key, check_mode, edit, &before_write)?;
            let saved = backup
                .filter(|p| p.exists())
                .map(|p| p.display().to_string());
            outcomes.push((outcome, saved));
            Ok(())
        };
        // `server` is None only with state=original, where run_one never calls these edits
        let server_edit = |text: &str, label: &str| -> Result<KeyChange> {
            match &server {
                Some(server) => server_edit(text, label, server),
                None => Err(Error::option("control_plane_endpoint", "is required")),
            }
        };
        if self.update_kube_proxy {
            run_one("kube-system", "kube-proxy", "kubeconfig.conf", &|text| {
                server_edit(text, "kube-system/kube-proxy kubeconfig.conf")
            })?;
        }
        if self.update_kubeadm_config {
            run_one(
                "kube-system",
                "kubeadm-config",
                "ClusterConfiguration",
                &|text| self.kubeadm_edit(text),
            )?;
        }
        if self.update_cluster_info {
            run_one("kube-public", "cluster-info", "kubeconfig", &|text| {
                server_edit(text, "kube-public/cluster-info kubeconfig")
            })?;
        }
        Ok(outcomes)
    }

    fn kubeadm_edit(&self, text: &str) -> Result<KeyChange> {
        let Some(endpoint) = &self.endpoint else {
            return Err(Error::option("control_plane_endpoint", "is required"));
        };
        let origin = Path::new("kube-system/kubeadm-config ClusterConfiguration");
        let config = kubeadm::KubeadmConfig::parse(text, origin)?;
        let plan = kubeadm::plan_endpoint_and_sans(&config, endpoint, &self.cert_sans)?;
        Ok(KeyChange {
            new_text: plan.new_text,
            field_before: json!({"controlPlaneEndpoint": plan.endpoint_before, "certSANs": plan.sans_before}),
            field_after: json!({"controlPlaneEndpoint": plan.endpoint_after, "certSANs": plan.sans_after}),
        })
    }
}

/// The server edit of an embedded kubeconfig (kube-proxy's, cluster-info's).
fn server_edit(text: &str, label: &str, server: &ServerUrl) -> Result<KeyChange> {
    let config = Kubeconfig::parse(text, Path::new(label))?;
    let before = config.current_cluster()?.server.clone();
    Ok(KeyChange {
        new_text: config.with_server(None, server)?,
        field_before: json!({"server": before}),
        field_after: json!({"server": server.as_given()}),
    })
}

/// The text of `key` in a ConfigMap saved by [`save_original`]; `None` when nothing was saved for
/// it (never changed) or the saved object had no such key.
fn saved_key(path: &Path, ns: &str, name: &str, key: &str) -> Result<Option<String>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = fsio::read_text(path)?;
    let object: Value = serde_json::from_str(&text).map_err(|e| {
        Error::content(
            path,
            format!("is not the JSON of ConfigMap {ns}/{name} this module saved ({e}); restore it from your own backup or remove it to keep the current ConfigMap"),
        )
    })?;
    if object["metadata"]["namespace"] != ns || object["metadata"]["name"] != name {
        return Err(Error::content(
            path,
            format!("does not hold ConfigMap {ns}/{name}; restore it from your own backup or remove it to keep the current ConfigMap"),
        ));
    }
    Ok(object["data"][key].as_str().map(str::to_string))
}

/// The rollback edit: the saved text when the current one differs.
fn restore_edit(current: &str, saved: &str) -> KeyChange {
    KeyChange {
        new_text: (current != saved).then(|| saved.to_string()),
        field_before: json!({"matches_saved": current == saved}),
        field_after: json!({"matches_saved": true}),
    }
}

/// The roll marker, written before the first PUT of the ConfigMap it is for (atomically: a run
/// killed while writing it leaves the old one or the new one).
fn write_marker(path: &Path, ns: &str, name: &str) -> Result<()> {
    let text = format!("ConfigMap {ns}/{name} changed by kubeha; its pods must be rolled\n");
    write_once_private(path, text.as_bytes())
}

/// Write `content` to `path` (0600, owned by this process's user) unless it exists: an existing
/// file is never overwritten ([`fsio::write_once`], directories 0700).
fn write_once_private(path: &Path, content: &[u8]) -> Result<()> {
    let attrs = FileAttrs {
        mode: 0o600,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    fsio::write_once(path, content, attrs).map(|_| ())
}

/// Save a ConfigMap's JSON once: an existing file holds the state before the first change and
/// is never overwritten.
fn save_original(path: &Path, object: &Value) -> Result<()> {
    let text = serde_json::to_vec_pretty(object)
        .map_err(|e| Error::Refused(format!("cannot encode the ConfigMap backup: {e}")))?;
    write_once_private(path, &text)
}
