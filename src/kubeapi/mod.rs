//! Talking to the Kubernetes API over [`crate::net`]'s verified TLS and HTTP client: the transport built from a kubeconfig ([`client`]), conflict-safe
//! ConfigMap updates ([`configmap`], used by the `cluster_configmaps` module), a node's heartbeat
//! and readiness ([`node`], used by `component_restart` after a kubelet restart), a DaemonSet's
//! pods on one node ([`pods`], used by `component_restart`'s kube-proxy roll).

pub mod client;
pub mod configmap;
pub mod discovery;
pub mod node;
pub mod pods;
pub mod workload;
