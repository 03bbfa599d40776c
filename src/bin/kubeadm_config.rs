//! Ansible module `kubeha.control_plane.kubeadm_config`: set ClusterConfiguration
//! `controlPlaneEndpoint` and make `apiServer.certSANs` a superset of `cert_sans` in a kubeadm
//! config file, changing no other byte. Docs: the sidecar `kubeadm_config.yml`.

use kubeha::diff::FileDiff;
use kubeha::endpoint::Endpoint;
use kubeha::protocol::{run, ModuleArgs, ModuleOutput};
use kubeha::{file_change, kubeadm, Result};
use serde_json::json;
use std::path::PathBuf;

const MODULE: &str = "kubeadm_config";

fn main() -> std::process::ExitCode {
    run(MODULE, std::env::args_os(), body)
}

fn body(args: ModuleArgs) -> Result<ModuleOutput> {
    let mut o = args.options;
    o.declare(&["path", "control_plane_endpoint", "cert_sans", "backup"])?;
    let path = PathBuf::from(o.string_or("path", "/etc/kubernetes/kubeadm-config.yaml")?);
    let endpoint = Endpoint::parse(
        &o.required_string("control_plane_endpoint")?,
        "control_plane_endpoint",
    )?;
    let cert_sans = o.string_list("cert_sans")?;
    let backup = o.bool_or("backup", true)?;
    o.finish()?;
    for san in &cert_sans {
        kubeadm::normalize_san(san, "cert_sans")?;
    }

    let target = file_change::read_target(&path)?;
    let plan = kubeadm::plan_endpoint_and_sans(&target.text, &path, &endpoint, &cert_sans)?;
    let mut out = ModuleOutput::new(false, "");
    out.set("path", path.display().to_string());
    out.set("api_version", plan.api_version.clone());
    out.set("control_plane_endpoint_before", json!(plan.endpoint_before));
    out.set("control_plane_endpoint_after", plan.endpoint_after.clone());
    out.set("cert_sans_before", json!(plan.sans_before));
    out.set("cert_sans_after", json!(plan.sans_after));
    out.set("reasons", json!(plan.reasons));
    let Some(new_text) = &plan.new_text else {
        out.msg = format!(
            "{} already has controlPlaneEndpoint {} and the certSANs",
            path.display(),
            plan.endpoint_after
        );
        return Ok(out);
    };
    let backup_file = file_change::apply(&target, new_text, args.invocation.check_mode, backup)?;
    out.changed = true;
    out.msg = format!(
        "{} {}: {}",
        if args.invocation.check_mode {
            "would update"
        } else {
            "updated"
        },
        path.display(),
        plan.reasons.join("; ")
    );
    if let Some(b) = backup_file {
        out.set("backup_file", b.display().to_string());
    }
    out.diffs.push(FileDiff::new(
        &path.display().to_string(),
        target.text.clone(),
        new_text.clone(),
    ));
    Ok(out)
}
