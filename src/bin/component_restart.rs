//! Ansible module `kubeha.control_plane.component_restart`: see its sidecar `component_restart.yml`.

use kubeha::restart::{ComponentRestart, MODULE};
use std::process::ExitCode;

fn main() -> ExitCode {
    kubeha::protocol::run(MODULE, std::env::args_os(), |args| {
        let module = ComponentRestart::from_options(args.options)?;
        module.run(args.invocation.check_mode)
    })
}
