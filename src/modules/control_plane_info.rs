//! `kubeha.control_plane.control_plane_info`: read-only facts of a control-plane host (kubeconfig
//! servers, kubeadm config, apiserver certificate, static pods, local proxy, etcd mode), gathered
//! by [`crate::info`]. Always `changed: false`. Docs: the sidecar `control_plane_info.yml`.

use crate::error::{Error, Result};
use crate::info::{gather, InfoOptions};
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::protocol::{Module, ModuleOutput};
use serde_json::{Map, Value};

pub struct ControlPlaneInfo {
    paths: InfoOptions,
}

/// The facts, and one warning per unreadable or odd file.
pub struct Facts {
    fields: Map<String, Value>,
    warnings: Vec<String>,
}

impl Module for ControlPlaneInfo {
    const SPEC: &'static ModuleSpec = &ModuleSpec {
        name: "control_plane_info",
        options: &[
            OptionSpec::new(
                "kube_config_dir",
                Kind::Path,
                "The Kubernetes configuration directory. Defaults to O(host_root)C(/etc/kubernetes).",
            ),
            OptionSpec::new(
                "home_kubeconfig",
                Kind::Path,
                "The root user's kubeconfig. Defaults to O(host_root)C(/root/.kube/config).",
            ),
            OptionSpec::new(
                "host_root",
                Kind::Path,
                "Prefix of every host path looked at (to inspect a mounted root file system).",
            )
            .default(Default::Str("/")),
        ],
    };
    type Plan = Facts;
    type Applied = ();

    fn from_options(o: &Options) -> Result<Self> {
        let host_root = o.path("host_root")?;
        let kube_config_dir = o
            .opt_path("kube_config_dir")?
            .unwrap_or_else(|| host_root.join("etc/kubernetes"));
        let home_kubeconfig = o
            .opt_path("home_kubeconfig")?
            .unwrap_or_else(|| host_root.join("root/.kube/config"));
        if !kube_config_dir.is_dir() {
            return Err(Error::option(
                "kube_config_dir",
                format!("{} is not a directory; set it to the directory holding admin.conf and kubeadm-config.yaml (kubespray: /etc/kubernetes)", kube_config_dir.display()),
            ));
        }
        Ok(ControlPlaneInfo {
            paths: InfoOptions {
                kube_config_dir,
                home_kubeconfig,
                host_root,
            },
        })
    }

    fn plan(&self) -> Result<Facts> {
        let mut warnings = Vec::new();
        let fields = gather(&self.paths, &mut warnings);
        Ok(Facts { fields, warnings })
    }

    /// Nothing to carry out: the module only reads.
    fn apply(&self, _facts: &Facts, _check_mode: bool) -> Result<()> {
        Ok(())
    }

    fn report(&self, facts: Facts, _applied: (), _check_mode: bool) -> ModuleOutput {
        let mut out = ModuleOutput::new(
            false,
            format!(
                "read the control plane facts under {}",
                self.paths.kube_config_dir.display()
            ),
        );
        out.fields = facts.fields;
        out.warnings = facts.warnings;
        out
    }
}
