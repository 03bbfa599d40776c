//! Ansible module `kubeha.control_plane.vip_probe`: [`kubeha::modules::vip_probe`].
fn main() -> std::process::ExitCode {
    kubeha::protocol::main::<kubeha::modules::vip_probe::VipProbe>()
}
