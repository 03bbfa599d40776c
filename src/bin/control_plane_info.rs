//! Ansible module `kubeha.control_plane.control_plane_info`: [`kubeha::modules::control_plane_info`].
fn main() -> std::process::ExitCode {
    kubeha::protocol::main::<kubeha::modules::control_plane_info::ControlPlaneInfo>()
}
