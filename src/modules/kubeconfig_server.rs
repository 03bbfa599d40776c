//! `kubeha.control_plane.kubeconfig_server`: set the `server:` of one cluster of a kubeconfig (the
//! named one, or the current context's), changing no other byte. The diff never shows key
//! material. Docs: the sidecar `kubeconfig_server.yml`.

use crate::endpoint::ServerUrl;
use crate::error::Result;
use crate::file_change::{self, Target};
use crate::kubeconfig::{self, Kubeconfig};
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::protocol::{Module, ModuleOutput};
use serde_json::json;
use std::path::PathBuf;

pub struct KubeconfigServer {
    path: PathBuf,
    server: ServerUrl,
    cluster: Option<String>,
    backup: bool,
}

/// The file as read, the cluster chosen, and the new text when the server changes.
pub struct Plan {
    target: Target,
    cluster: String,
    server_before: String,
    new_text: Option<String>,
    reasons: Vec<String>,
}

impl Module for KubeconfigServer {
    const SPEC: &'static ModuleSpec = &ModuleSpec {
        name: "kubeconfig_server",
        options: &[
            OptionSpec::new("path", Kind::Path, "The kubeconfig file. Symlinks are followed.")
                .required(),
            OptionSpec::new(
                "server",
                Kind::Str,
                "The new server, an C(https://host:port) URL (IPv6 in brackets).",
            )
            .required(),
            OptionSpec::new(
                "cluster",
                Kind::Str,
                "Name of the cluster entry to change. Required when the file has several clusters and no current-context.",
            ),
            OptionSpec::new(
                "backup",
                Kind::Bool,
                "Keep a copy of the original file next to it with Ansible's backup naming.",
            )
            .default(Default::Bool(true)),
        ],
    };
    type Plan = Plan;
    type Applied = Option<PathBuf>;

    fn from_options(o: &Options) -> Result<Self> {
        Ok(KubeconfigServer {
            path: o.path("path")?,
            server: ServerUrl::parse(&o.string("server")?, "server")?,
            cluster: o.opt_string("cluster")?,
            backup: o.bool("backup")?,
        })
    }

    fn plan(&self) -> Result<Plan> {
        let target = file_change::read_target(&self.path)?;
        let config = Kubeconfig::parse(&target.text, &self.path)?;
        let chosen = config.resolve_cluster(self.cluster.as_deref())?;
        let (cluster, server_before) = (chosen.name.clone(), chosen.server.clone());
        let new_text = config.with_server(self.cluster.as_deref(), &self.server)?;
        let reasons = match new_text {
            Some(_) => vec![format!(
                "cluster {cluster:?} uses {server_before}, wanted {}",
                self.server.as_given()
            )],
            None => Vec::new(),
        };
        Ok(Plan {
            target,
            cluster,
            server_before,
            new_text,
            reasons,
        })
    }

    /// The backup file, when one was written.
    fn apply(&self, plan: &Plan, check_mode: bool) -> Result<Option<PathBuf>> {
        match &plan.new_text {
            Some(text) => file_change::apply(&plan.target, text, check_mode, self.backup),
            None => Ok(None),
        }
    }

    fn report(&self, plan: Plan, backup_file: Option<PathBuf>, check_mode: bool) -> ModuleOutput {
        let path = self.path.display().to_string();
        let mut out = ModuleOutput::new(plan.new_text.is_some(), "");
        out.set("path", path.clone());
        out.set("cluster", plan.cluster.clone());
        out.set("server_before", plan.server_before.clone());
        out.set("server_after", self.server.as_given());
        out.set("reasons", json!(plan.reasons));
        let Some(new_text) = &plan.new_text else {
            out.msg = format!(
                "cluster {:?} in {path} already uses {}",
                plan.cluster,
                self.server.as_given()
            );
            return out;
        };
        file_change::report_change(
            &mut out,
            &path,
            check_mode,
            &plan.reasons,
            backup_file,
            kubeconfig::redacted(&plan.target.text),
            kubeconfig::redacted(new_text),
        );
        out
    }
}
