//! Ansible module `kubeha.control_plane.kubeconfig_server`: set the `server:` of one cluster of a
//! kubeconfig (the named one, or the current context's), changing no other byte. The diff never
//! shows key material. Docs: the sidecar `kubeconfig_server.yml`.

use kubeha::diff::FileDiff;
use kubeha::endpoint::ServerUrl;
use kubeha::kubeconfig::{self, Kubeconfig};
use kubeha::protocol::{run, ModuleArgs, ModuleOutput};
use kubeha::{file_change, Result};
use std::path::PathBuf;

const MODULE: &str = "kubeconfig_server";

fn main() -> std::process::ExitCode {
    run(MODULE, std::env::args_os(), body)
}

fn body(args: ModuleArgs) -> Result<ModuleOutput> {
    let mut o = args.options;
    o.declare(&["path", "server", "cluster", "backup"])?;
    let path = PathBuf::from(o.required_string("path")?);
    let server = o.required_string("server")?;
    let cluster = o.string("cluster")?;
    let backup = o.bool_or("backup", true)?;
    o.finish()?;
    ServerUrl::parse(&server, "server")?;

    let target = file_change::read_target(&path)?;
    let config = Kubeconfig::parse(&target.text, &path)?;
    let chosen = config.resolve_cluster(cluster.as_deref())?;
    let new_text = kubeconfig::rewrite_server(&target.text, &path, cluster.as_deref(), &server)?;
    let mut out = ModuleOutput::new(false, "");
    out.set("path", path.display().to_string());
    out.set("cluster", chosen.name.clone());
    out.set("server_before", chosen.server.clone());
    out.set("server_after", server.clone());
    let Some(new_text) = new_text else {
        out.msg = format!(
            "cluster {:?} in {} already uses {server}",
            chosen.name,
            path.display()
        );
        out.set("reasons", serde_json::json!([]));
        return Ok(out);
    };
    let reason = format!(
        "cluster {:?} uses {}, wanted {server}",
        chosen.name, chosen.server
    );
    out.set("reasons", serde_json::json!([reason]));
    let backup_file = file_change::apply(&target, &new_text, args.invocation.check_mode, backup)?;
    out.changed = true;
    out.msg = format!(
        "{} {}: {reason}",
        if args.invocation.check_mode {
            "would update"
        } else {
            "updated"
        },
        path.display()
    );
    if let Some(b) = backup_file {
        out.set("backup_file", b.display().to_string());
    }
    out.diffs.push(FileDiff::new(
        &path.display().to_string(),
        kubeconfig::redacted(&target.text),
        kubeconfig::redacted(&new_text),
    ));
    Ok(out)
}
