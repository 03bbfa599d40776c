//! The `cluster_configmaps` module: point the cluster-wide ConfigMaps at the new control-plane
//! endpoint through the REST API. Three targeted text edits (A's pure functions keep every other
//! byte of the embedded YAML), each applied with [`super::configmap::update_key`]:
//! - `kube-system/kube-proxy` `kubeconfig.conf`: the cluster's `server`;
//! - `kube-system/kubeadm-config` `ClusterConfiguration`: `controlPlaneEndpoint`, `apiServer.certSANs`;
//! - `kube-public/cluster-info` `kubeconfig`: the server of its one cluster (named "").
//!
//! It does not run kubeadm.

use super::client::{ApiServer, Transport};
use super::configmap::{update_key, KeyChange, Outcome};
use crate::diff::FileDiff;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::fsio::{self, FileAttrs};
use crate::kubeadm;
use crate::kubeconfig::{self, Kubeconfig};
use crate::options::Options;
use crate::protocol::ModuleOutput;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const MODULE: &str = "cluster_configmaps";

/// The module's options.
#[derive(Debug, Clone)]
pub struct ClusterConfigmaps {
    pub kubeconfig: PathBuf,
    pub api_server: Option<String>,
    pub endpoint: Endpoint,
    pub cert_sans: Vec<String>,
    pub update_kube_proxy: bool,
    pub update_cluster_info: bool,
    pub update_kubeadm_config: bool,
    pub backup_dir: Option<PathBuf>,
    pub timeout: Duration,
}

impl ClusterConfigmaps {
    pub fn from_options(mut o: Options) -> Result<Self> {
        o.declare(&[
            "kubeconfig",
            "api_server",
            "control_plane_endpoint",
            "cert_sans",
            "update_kube_proxy",
            "update_cluster_info",
            "update_kubeadm_config",
            "backup_dir",
            "timeout",
        ])?;
        let kubeconfig = PathBuf::from(o.string_or("kubeconfig", "/etc/kubernetes/admin.conf")?);
        let api_server = o.string("api_server")?;
        if let Some(s) = &api_server {
            crate::endpoint::ServerUrl::parse(s, "api_server")?;
        }
        let endpoint_text = o.required_string("control_plane_endpoint")?;
        let endpoint = Endpoint::parse(&endpoint_text, "control_plane_endpoint")?;
        let cert_sans = o.string_list("cert_sans")?;
        for san in &cert_sans {
            kubeadm::normalize_san(san, "cert_sans")?;
        }
        let update_kube_proxy = o.bool_or("update_kube_proxy", true)?;
        let update_cluster_info = o.bool_or("update_cluster_info", true)?;
        let update_kubeadm_config = o.bool_or("update_kubeadm_config", true)?;
        let backup_dir = o.string("backup_dir")?.map(PathBuf::from);
        if let Some(d) = &backup_dir {
            if !d.is_absolute() {
                return Err(Error::option(
                    "backup_dir",
                    format!("{} is not an absolute path", d.display()),
                ));
            }
        }
        let timeout = Duration::from_secs(o.int_or("timeout", 15, 1, 600)? as u64);
        o.finish()?;
        Ok(ClusterConfigmaps {
            kubeconfig,
            api_server,
            endpoint,
            cert_sans,
            update_kube_proxy,
            update_cluster_info,
            update_kubeadm_config,
            backup_dir,
            timeout,
        })
    }

    /// Run against the API server named by the kubeconfig (or `api_server`).
    pub fn run(&self, check_mode: bool) -> Result<ModuleOutput> {
        let server =
            ApiServer::from_kubeconfig(&self.kubeconfig, self.api_server.as_deref(), self.timeout)?;
        self.run_with(&server, check_mode)
    }

    /// Run against any transport (the tests' fake included).
    pub fn run_with(&self, t: &dyn Transport, check_mode: bool) -> Result<ModuleOutput> {
        // Decide every edit (GET + pure edit, no PUT) before writing any: a ConfigMap that cannot
        // be edited (say an unsupported ClusterConfiguration) then fails the run while all three
        // are still as they were, instead of after kube-proxy's was already rewritten.
        if !check_mode {
            self.update_all(t, true)?;
        }
        let outcomes = self.update_all(t, check_mode)?;
        Ok(self.report(t, check_mode, &outcomes))
    }

    /// Update (or, in check mode, only decide) each selected ConfigMap, in a fixed order.
    fn update_all(
        &self,
        t: &dyn Transport,
        check_mode: bool,
    ) -> Result<Vec<(Outcome, Option<String>)>> {
        let server = self.endpoint.url();
        let mut outcomes: Vec<(Outcome, Option<String>)> = Vec::new();
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
            let before_write = |original: &Value| -> Result<()> {
                match &backup {
                    Some(path) => save_original(path, original),
                    None => Ok(()),
                }
            };
            let outcome = update_key(t, ns, name, key, check_mode, edit, &before_write)?;
            let saved = backup
                .filter(|p| p.exists())
                .map(|p| p.display().to_string());
            outcomes.push((outcome, saved));
            Ok(())
        };
        if self.update_kube_proxy {
            run_one("kube-system", "kube-proxy", "kubeconfig.conf", &|text| {
                server_edit(text, "kube-system/kube-proxy kubeconfig.conf", &server)
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
                server_edit(text, "kube-public/cluster-info kubeconfig", &server)
            })?;
        }
        Ok(outcomes)
    }

    fn report(
        &self,
        t: &dyn Transport,
        check_mode: bool,
        outcomes: &[(Outcome, Option<String>)],
    ) -> ModuleOutput {
        let changed: Vec<String> = outcomes
            .iter()
            .filter(|(o, _)| o.changed)
            .map(|(o, _)| format!("{}/{}", o.namespace, o.name))
            .collect();
        let mut out = ModuleOutput::new(!changed.is_empty(), "");
        out.msg = match (changed.is_empty(), check_mode) {
            (true, _) => format!(
                "every selected ConfigMap already points at {}",
                self.endpoint
            ),
            (false, true) => format!("would update {}", changed.join(", ")),
            (false, false) => format!("updated {}", changed.join(", ")),
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
        out.set("server", self.endpoint.url());
        out.set("api_server", t.server());
        out
    }

    fn kubeadm_edit(&self, text: &str) -> Result<KeyChange> {
        let origin = Path::new("kube-system/kubeadm-config ClusterConfiguration");
        let plan = kubeadm::plan_endpoint_and_sans(text, origin, &self.endpoint, &self.cert_sans)?;
        Ok(KeyChange {
            new_text: plan.new_text,
            field_before: json!({"controlPlaneEndpoint": plan.endpoint_before, "certSANs": plan.sans_before}),
            field_after: json!({"controlPlaneEndpoint": plan.endpoint_after, "certSANs": plan.sans_after}),
        })
    }
}

/// The server edit of an embedded kubeconfig (kube-proxy's, cluster-info's).
fn server_edit(text: &str, label: &str, server: &str) -> Result<KeyChange> {
    let origin = Path::new(label);
    let config = Kubeconfig::parse(text, origin)?;
    let before = config.current_cluster()?.server.clone();
    let new_text = kubeconfig::rewrite_server(text, origin, None, server)?;
    Ok(KeyChange {
        new_text,
        field_before: json!({"server": before}),
        field_after: json!({"server": server}),
    })
}

/// Save a ConfigMap's JSON once: an existing file holds the state before the first change and
/// is never overwritten.
fn save_original(path: &Path, object: &Value) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(dir, "create the backup directory", e))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(dir, "set the mode of", e))?;
        }
    }
    let text = serde_json::to_vec_pretty(object)
        .map_err(|e| Error::Refused(format!("cannot encode the ConfigMap backup: {e}")))?;
    let attrs = FileAttrs {
        mode: 0o600,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    fsio::write_new(path, &text, attrs)
}
