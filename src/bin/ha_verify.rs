//! Ansible module `kubeha.control_plane.ha_verify`: [`kubeha::modules::ha_verify`].
fn main() -> std::process::ExitCode {
    kubeha::protocol::main::<kubeha::modules::ha_verify::HaVerify>()
}
