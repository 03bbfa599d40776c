//! Ansible module `kubeha.control_plane.kubeadm_config`: [`kubeha::modules::kubeadm_config`].
fn main() -> std::process::ExitCode {
    kubeha::protocol::main::<kubeha::modules::kubeadm_config::KubeadmConfig>()
}
