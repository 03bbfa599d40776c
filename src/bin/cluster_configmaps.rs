//! Ansible module `kubeha.control_plane.cluster_configmaps`: see its sidecar `cluster_configmaps.yml`.

use kubeha::kubeapi::cluster_configmaps::{ClusterConfigmaps, MODULE};
use std::process::ExitCode;

fn main() -> ExitCode {
    kubeha::protocol::run(MODULE, std::env::args_os(), |args| {
        let module = ClusterConfigmaps::from_options(args.options)?;
        module.run(args.invocation.check_mode)
    })
}
