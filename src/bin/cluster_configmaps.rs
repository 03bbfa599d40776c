//! Ansible module `kubeha.control_plane.cluster_configmaps`: [`kubeha::modules::cluster_configmaps`].
fn main() -> std::process::ExitCode {
    kubeha::protocol::main::<kubeha::modules::cluster_configmaps::ClusterConfigmaps>()
}
