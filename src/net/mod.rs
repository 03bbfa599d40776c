//! Network helpers: verified TLS connections ([`tls`]) and a small blocking HTTP/1.1 client over
//! them ([`http`]). Nothing here knows about Kubernetes objects; `kubeapi` builds on these.

pub mod http;
pub mod tls;
