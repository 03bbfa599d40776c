//! The nine Ansible modules, one file each, all of one shape ([`crate::protocol::Module`]): the
//! declared option spec, `from_options`, a `plan` that only reads, `apply`, `report`. Each binary
//! in `src/bin/` is one call of [`crate::protocol::main`] with its module type.
//!
//! | module | owns |
//! |---|---|
//! | [`control_plane_info`] | read-only facts of a control-plane host |
//! | [`kubeadm_config`] | `controlPlaneEndpoint` and `apiServer.certSANs` of a kubeadm config file |
//! | [`apiserver_cert`] | the apiserver serving certificate's SANs (journaled swap) |
//! | [`kubeconfig_server`] | the `server:` of one cluster of a kubeconfig |
//! | [`component_restart`] | restarting one control-plane component and waiting for its health |
//! | [`cluster_configmaps`] | kube-proxy, kubeadm-config and cluster-info ConfigMaps through the API |
//! | [`cluster_workloads`] | workloads' pod-template env naming a master (a CNI's agents), and their rollout |
//! | [`ha_verify`] | proving the endpoint serves the API, and the local-apiserver drill |
//! | [`vip_probe`] | nothing (read-only): whether a VIP and a VRRP router id are free, and the ports' listeners |

pub mod apiserver_cert;
pub mod cluster_configmaps;
pub mod cluster_workloads;
pub mod component_restart;
pub mod control_plane_info;
pub mod ha_verify;
pub mod kubeadm_config;
pub mod kubeconfig_server;
pub mod vip_probe;

use crate::options::ModuleSpec;
use crate::protocol::Module;

/// Every module's spec, for the documentation checks.
pub const SPECS: [&ModuleSpec; 9] = [
    apiserver_cert::ApiserverCert::SPEC,
    cluster_configmaps::ClusterConfigmaps::SPEC,
    cluster_workloads::ClusterWorkloads::SPEC,
    component_restart::ComponentRestart::SPEC,
    control_plane_info::ControlPlaneInfo::SPEC,
    ha_verify::HaVerify::SPEC,
    kubeadm_config::KubeadmConfig::SPEC,
    kubeconfig_server::KubeconfigServer::SPEC,
    vip_probe::VipProbe::SPEC,
];
