//! kubeha: the library behind the conversion modules.
//!
//! Layers, each importing only those below it:
//! - [`modules`]: the nine Ansible modules, one file and one shape each (option spec, plan,
//!   apply, report), run by [`protocol`]; each binary in `src/bin/` is one line;
//! - domain: [`pki`] (certificates), [`kubeapi`] (ConfigMaps through the API), [`kubeadm`] and
//!   [`kubeconfig`] (the two file formats, edited in place), [`info`] (read-only host facts),
//!   [`endpoint`] (addresses and URLs);
//! - helpers: [`host`] (processes, systemd, health endpoints, manifest parking), [`net`] (verified
//!   TLS, HTTP; interfaces, ARP, VRRP and TCP listeners for `vip_probe`), [`yamledit`]
//!   (byte-preserving YAML edits), [`file_change`] and [`fsio`] (backups and atomic writes that
//!   keep owner and mode), [`diff`] (the `--diff` payload);
//! - [`protocol`] (Ansible's binary-module protocol, the one place an error becomes the failure
//!   JSON), [`options`] (the option spec and strict parsing), [`error`] (typed errors whose
//!   messages name the file, the value and the fix).

pub mod diff;
pub mod endpoint;
pub mod error;
pub mod file_change;
pub mod fsio;
pub mod host;
pub mod info;
pub mod kubeadm;
pub mod kubeapi;
pub mod kubeconfig;
pub mod modules;
pub mod net;
pub mod options;
pub mod pki;
pub mod protocol;
pub mod yamledit;

pub use error::{Error, Result};
