//! Talking to HTTPS servers of the cluster: verified TLS ([`tls`]), a small HTTP/1.1 client
//! ([`http`]), the Kubernetes API transport built from a kubeconfig ([`client`]), conflict-safe
//! ConfigMap updates ([`configmap`]) and the `cluster_configmaps` module ([`cluster_configmaps`]).

pub mod client;
pub mod cluster_configmaps;
pub mod configmap;
pub mod http;
pub mod tls;
