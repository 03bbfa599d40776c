//! `kubeha.control_plane.kubeadm_config`: set ClusterConfiguration `controlPlaneEndpoint` and make
//! `apiServer.certSANs` a superset of `cert_sans` in a kubeadm config file, changing no other byte
//! ([`crate::kubeadm`] decides). Docs: the sidecar `kubeadm_config.yml`.

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::file_change::{self, Target};
use crate::kubeadm::{self, EndpointPlan};
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::pki::san::San;
use crate::protocol::{Module, ModuleOutput};
use serde_json::json;
use std::path::PathBuf;

pub struct KubeadmConfig {
    path: PathBuf,
    endpoint: Endpoint,
    cert_sans: Vec<San>,
    backup: bool,
    original_dir: Option<PathBuf>,
}

/// The file as read and kubeadm's decision on it.
pub struct Plan {
    target: Target,
    decision: EndpointPlan,
}

impl Module for KubeadmConfig {
    const SPEC: &'static ModuleSpec = &ModuleSpec {
        name: "kubeadm_config",
        options: &[
            OptionSpec::new(
                "path",
                Kind::Path,
                "The kubeadm config file. Symlinks are followed.",
            )
            .default(Default::Str("/etc/kubernetes/kubeadm-config.yaml")),
            OptionSpec::new(
                "control_plane_endpoint",
                Kind::Str,
                "The new C(controlPlaneEndpoint) as C(host:port); port 1-65535, IPv6 in brackets (C([fd00::10]:6443)).",
            )
            .required(),
            OptionSpec::new(
                "cert_sans",
                Kind::StrList,
                "Names and IP addresses C(apiServer.certSANs) must contain.",
            )
            .default(Default::EmptyList),
            file_change::BACKUP_OPTION,
            file_change::ORIGINAL_DIR_OPTION,
        ],
    };
    type Plan = Plan;
    type Applied = Option<PathBuf>;

    fn from_options(o: &Options) -> Result<Self> {
        let endpoint = Endpoint::parse(
            &o.string("control_plane_endpoint")?,
            "control_plane_endpoint",
        )?;
        let cert_sans = San::parse_list("cert_sans", &o.list("cert_sans")?)?;
        Ok(KubeadmConfig {
            path: o.path("path")?,
            endpoint,
            cert_sans,
            backup: o.bool("backup")?,
            original_dir: o.opt_path("original_dir")?,
        })
    }

    fn plan(&self) -> Result<Plan> {
        let target = file_change::read_target(&self.path)?;
        let config = kubeadm::KubeadmConfig::parse(&target.text, &self.path)?;
        let decision = kubeadm::plan_endpoint_and_sans(&config, &self.endpoint, &self.cert_sans)?;
        Ok(Plan { target, decision })
    }

    /// The backup file, when one was written.
    fn apply(&self, plan: &Plan, check_mode: bool) -> Result<Option<PathBuf>> {
        match &plan.decision.new_text {
            Some(text) => file_change::apply(
                &plan.target,
                text,
                check_mode,
                self.backup,
                self.original_dir.as_deref(),
            ),
            None => Ok(None),
        }
    }

    fn report(&self, plan: Plan, backup_file: Option<PathBuf>, check_mode: bool) -> ModuleOutput {
        let d = &plan.decision;
        let path = self.path.display().to_string();
        let mut out = ModuleOutput::new(d.new_text.is_some(), "");
        out.set("path", path.clone());
        out.set("api_version", d.api_version.clone());
        out.set("control_plane_endpoint_before", json!(d.endpoint_before));
        out.set("control_plane_endpoint_after", d.endpoint_after.clone());
        out.set("cert_sans_before", json!(d.sans_before));
        out.set("cert_sans_after", json!(d.sans_after));
        out.set("reasons", json!(d.reasons));
        let Some(new_text) = &d.new_text else {
            out.msg = format!(
                "{path} already has controlPlaneEndpoint {} and the certSANs",
                d.endpoint_after
            );
            return out;
        };
        file_change::report_change(
            &mut out,
            &path,
            check_mode,
            &d.reasons,
            backup_file,
            plan.target.text.clone(),
            new_text.clone(),
        );
        out
    }
}
