//! Ansible module `kubeha.control_plane.ha_verify`: see its sidecar `ha_verify.yml`.

use kubeha::verify::{HaVerify, MODULE};
use std::process::ExitCode;

fn main() -> ExitCode {
    kubeha::protocol::run(MODULE, std::env::args_os(), |args| {
        let module = HaVerify::from_options(args.options)?;
        module.run(args.invocation.check_mode)
    })
}
