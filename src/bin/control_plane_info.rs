//! Ansible module `kubeha.control_plane.control_plane_info`: read-only facts of a control-plane
//! host (kubeconfig servers, kubeadm config, apiserver certificate, static pods, local proxy,
//! etcd mode). Always `changed: false`. Docs: the sidecar `control_plane_info.yml`.

use kubeha::info::{gather, InfoOptions};
use kubeha::protocol::{run, ModuleArgs, ModuleOutput};
use kubeha::Result;
use std::path::PathBuf;

const MODULE: &str = "control_plane_info";

fn main() -> std::process::ExitCode {
    run(MODULE, std::env::args_os(), body)
}

fn body(args: ModuleArgs) -> Result<ModuleOutput> {
    let mut o = args.options;
    o.declare(&["host_root", "kube_config_dir", "home_kubeconfig"])?;
    let host_root = PathBuf::from(o.string_or("host_root", "/")?);
    let kube_config_dir = match o.string("kube_config_dir")? {
        Some(d) => PathBuf::from(d),
        None => host_root.join("etc/kubernetes"),
    };
    let home_kubeconfig = match o.string("home_kubeconfig")? {
        Some(p) => PathBuf::from(p),
        None => host_root.join("root/.kube/config"),
    };
    o.finish()?;
    if !kube_config_dir.is_dir() {
        return Err(kubeha::Error::option(
            "kube_config_dir",
            format!("{} is not a directory; set it to the directory holding admin.conf and kubeadm-config.yaml (kubespray: /etc/kubernetes)", kube_config_dir.display()),
        ));
    }
    let opts = InfoOptions {
        kube_config_dir,
        home_kubeconfig,
        host_root,
    };
    let mut out = ModuleOutput::new(false, "");
    out.fields = gather(&opts, &mut out.warnings);
    out.msg = format!(
        "read the control plane facts under {}",
        opts.kube_config_dir.display()
    );
    Ok(out)
}
