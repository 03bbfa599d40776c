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
//! are still as they were. It does not run kubeadm. Docs: the sidecar `cluster_configmaps.yml`.

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
    pub endpoint: Endpoint,
    pub cert_sans: Vec<San>,
    pub update_kube_proxy: bool,
    pub update_cluster_info: bool,
    pub update_kubeadm_config: bool,
    pub backup_dir: Option<PathBuf>,
    pub timeout: Duration,
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
                "control_plane_endpoint",
                Kind::Str,
                "The new endpoint, C(host:port) (IPv6 in brackets).",
            )
            .required(),
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
                "Before its first change, save each ConfigMap's full JSON as C(<dir>/<namespace>.<name>.json) (mode 0600). An existing file is never overwritten, so it keeps the original state for a rollback.",
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
        let endpoint = Endpoint::parse(
            &o.string("control_plane_endpoint")?,
            "control_plane_endpoint",
        )?;
        let cert_sans = San::parse_list("cert_sans", &o.list("cert_sans")?)?;
        let backup_dir = o.opt_path("backup_dir")?;
        if let Some(d) = &backup_dir {
            if !d.is_absolute() {
                return Err(Error::option(
                    "backup_dir",
                    format!("{} is not an absolute path", d.display()),
                ));
            }
        }
        Ok(ClusterConfigmaps {
            kubeconfig: o.path("kubeconfig")?,
            api_server,
            endpoint,
            cert_sans,
            update_kube_proxy: o.bool("update_kube_proxy")?,
            update_cluster_info: o.bool("update_cluster_info")?,
            update_kubeadm_config: o.bool("update_kubeadm_config")?,
            backup_dir,
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
        out.set("api_server", plan.server.server());
        out
    }
}

impl ClusterConfigmaps {
    /// Update (or, in check mode, only decide) each selected ConfigMap, in a fixed order.
    fn update_all(&self, t: &dyn Transport, check_mode: bool) -> Result<Vec<Updated>> {
        let server = ServerUrl::parse(&self.endpoint.url(), "control_plane_endpoint")?;
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

    fn kubeadm_edit(&self, text: &str) -> Result<KeyChange> {
        let origin = Path::new("kube-system/kubeadm-config ClusterConfiguration");
        let config = kubeadm::KubeadmConfig::parse(text, origin)?;
        let plan = kubeadm::plan_endpoint_and_sans(&config, &self.endpoint, &self.cert_sans)?;
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
