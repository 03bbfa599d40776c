//! Certificates of the control plane: SAN handling ([`san`]), loading and checking keys and certs
//! ([`material`]), the pure reissue decision ([`decide`]), kubeadm-equivalent issuance
//! ([`issue`]) and the crash-safe journaled pair swap ([`swap`]). The `apiserver_cert` module
//! ties them together ([`crate::modules::apiserver_cert`]).

pub mod decide;
pub mod issue;
pub mod material;
pub mod san;
pub mod swap;
