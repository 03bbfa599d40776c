//! Ansible module `kubeha.control_plane.apiserver_cert`: [`kubeha::modules::apiserver_cert`].
fn main() -> std::process::ExitCode {
    kubeha::protocol::main::<kubeha::modules::apiserver_cert::ApiserverCert>()
}
