//! Ansible module `kubeha.control_plane.apiserver_cert`: see its sidecar `apiserver_cert.yml`.

use kubeha::pki::apiserver_cert::{ApiserverCert, MODULE};
use std::process::ExitCode;

fn main() -> ExitCode {
    kubeha::protocol::run(MODULE, std::env::args_os(), |args| {
        let module = ApiserverCert::from_options(args.options)?;
        module.run(args.invocation.check_mode)
    })
}
