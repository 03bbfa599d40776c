//! kubeha: the library behind the conversion modules.
//!
//! Each Ansible module is a binary in `src/bin/` run through [`protocol::run`], the one place that
//! turns an error into Ansible's failure JSON. Four are one call into a module type of this
//! library that parses its options, plans, applies and reports (`apiserver_cert`,
//! `cluster_configmaps`, `component_restart`, `ha_verify`); `kubeadm_config`,
//! `kubeconfig_server` and `control_plane_info` still parse their options and build their output
//! in the binary, around library calls.
//!
//! Shared plumbing: [`protocol`] (Ansible's binary-module protocol), [`options`] (strict option
//! parsing), [`fsio`] (backups and atomic writes that keep owner and mode), [`diff`] (the `--diff`
//! payload), [`error`] (typed errors whose messages name the file, the value and the fix).

pub mod diff;
pub mod endpoint;
pub mod error;
pub mod file_change;
pub mod fsio;
pub mod info;
pub mod kubeadm;
pub mod kubeapi;
pub mod kubeconfig;
pub mod options;
pub mod pki;
pub mod protocol;
pub mod restart;
pub mod verify;
pub mod yamledit;

pub use error::{Error, Result};
