//! Talking to the Kubernetes API over [`crate::net`]'s verified TLS and HTTP client: the transport built from a kubeconfig ([`client`]), conflict-safe
//! ConfigMap updates ([`configmap`]), used by the `cluster_configmaps` module.

pub mod client;
pub mod configmap;
