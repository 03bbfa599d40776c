//! kubeha: the library behind the conversion modules.
//!
//! Each Ansible module is a thin binary in `src/bin/` that parses its options, calls one
//! `decide` / `act` / `report` triple from this library and prints the result through
//! [`protocol::run`], the one place that turns an error into Ansible's failure JSON.
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
