//! Network helpers: verified TLS connections ([`tls`]) and a small blocking HTTP/1.1 client over
//! them ([`http`]); nothing there knows about Kubernetes objects, `kubeapi` builds on these. For
//! `vip_probe`, the link-level reads: the host's interfaces ([`interfaces`]), the ARP
//! duplicate-address probe ([`arp`]), VRRP advertisements ([`vrrp`]), both over raw sockets
//! ([`raw`]), and the TCP listeners of the kernel's socket tables ([`listeners`]).

pub mod arp;
pub mod http;
pub mod interfaces;
pub mod listeners;
pub mod raw;
pub mod tls;
pub mod vrrp;
