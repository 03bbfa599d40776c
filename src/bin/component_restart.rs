//! Ansible module `kubeha.control_plane.component_restart`: [`kubeha::modules::component_restart`].
fn main() -> std::process::ExitCode {
    kubeha::protocol::main::<kubeha::modules::component_restart::ComponentRestart>()
}
