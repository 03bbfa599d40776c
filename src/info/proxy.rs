//! Kubespray's local API proxy on nodes (`loadbalancer_apiserver_localhost`): nginx
//! (`/etc/nginx/nginx.conf` and manifest `nginx-proxy.yml`) or haproxy
//! (`/etc/haproxy/haproxy.cfg` and manifest `haproxy.yml`). Kubespray never removes it when an external LB is added, so the
//! conversion must know it is there and where it forwards.
//!
//! API: [`local_proxy_fact`], and the pure [`nginx_upstreams`] / [`haproxy_upstreams`].

use serde_json::{json, Value};
use std::path::Path;

/// `server host:port;` lines of an nginx config (the upstream block of kubespray's template).
pub fn nginx_upstreams(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.ends_with(';'))
        .filter_map(|l| l.strip_prefix("server "))
        .map(|rest| rest.split([' ', ';']).next().unwrap_or("").to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `server <name> host:port ...` lines of an haproxy config.
pub fn haproxy_upstreams(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("server "))
        .filter_map(|rest| rest.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// Which local proxy is present, its files and upstreams.
pub fn local_proxy_fact(root: &Path, manifests: &Path, warnings: &mut Vec<String>) -> Value {
    type Parser = fn(&str) -> Vec<String>;
    let kinds: [(&str, &str, &str, Parser); 2] = [
        (
            "nginx",
            "etc/nginx/nginx.conf",
            "nginx-proxy.yml",
            nginx_upstreams,
        ),
        (
            "haproxy",
            "etc/haproxy/haproxy.cfg",
            "haproxy.yml",
            haproxy_upstreams,
        ),
    ];
    for (kind, conf, manifest, parse) in kinds {
        let conf_path = root.join(conf);
        let manifest_path = manifests.join(manifest);
        if !manifest_path.is_file() && !conf_path.is_file() {
            continue;
        }
        let upstreams = match std::fs::read_to_string(&conf_path) {
            Ok(t) => parse(&t),
            Err(_) => {
                warnings.push(format!(
                    "{} exists but {} cannot be read",
                    manifest_path.display(),
                    conf_path.display()
                ));
                Vec::new()
            }
        };
        return json!({
            "kind": kind,
            "present": manifest_path.is_file(),
            "config": conf_path.is_file().then(|| conf_path.display().to_string()),
            "manifest": manifest_path.is_file().then(|| manifest_path.display().to_string()),
            "upstreams": upstreams,
        });
    }
    json!({"kind": "none", "present": false})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_read() {
        let nginx = "stream {\n  upstream kube_apiserver {\n    least_conn;\n    server 10.0.0.11:6443;\n    server 10.0.0.12:6443 max_fails=1;\n    # server 10.0.0.99:6443;\n  }\n}\n";
        assert_eq!(
            nginx_upstreams(nginx),
            vec!["10.0.0.11:6443", "10.0.0.12:6443"]
        );
        let haproxy = "backend kube_api_backend\n  server master1 10.0.0.11:6443 check\n";
        assert_eq!(haproxy_upstreams(haproxy), vec!["10.0.0.11:6443"]);
    }
}
