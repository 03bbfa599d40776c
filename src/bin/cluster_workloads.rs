//! Ansible module `kubeha.control_plane.cluster_workloads`: [`kubeha::modules::cluster_workloads`].
fn main() -> std::process::ExitCode {
    kubeha::protocol::main::<kubeha::modules::cluster_workloads::ClusterWorkloads>()
}
