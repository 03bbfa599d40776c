//! Ansible module `kubeha.control_plane.kubeconfig_server`: [`kubeha::modules::kubeconfig_server`].
fn main() -> std::process::ExitCode {
    kubeha::protocol::main::<kubeha::modules::kubeconfig_server::KubeconfigServer>()
}
