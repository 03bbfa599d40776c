//! Helpers for the host a module runs on: control-plane processes found through /proc
//! ([`process`]), the few systemd operations kubelet needs ([`systemd`]), and the components'
//! local health endpoints and how to trust them ([`health`]), and parking a static pod's manifest
//! so kubelet stops it for a drill ([`park`]).

pub mod health;
pub mod park;
pub mod process;
pub mod systemd;
