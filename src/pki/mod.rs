//! Certificates of the control plane: SAN handling ([`san`]), loading and checking keys and certs
//! ([`material`]), the pure reissue decision ([`decide`]), kubeadm-equivalent issuance
//! ([`issue`]), the crash-safe journaled pair swap ([`swap`]) and the `apiserver_cert` module that
//! ties them together ([`apiserver_cert`]).

pub mod apiserver_cert;
pub mod decide;
pub mod issue;
pub mod material;
pub mod san;
pub mod swap;
