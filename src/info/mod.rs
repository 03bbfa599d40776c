//! The `control_plane_info` module: read-only facts about a control-plane host, gathered from its
//! files (never from the network, but for the name lookup and TLS handshakes of [`lb_survey`]):
//! the server of every kubeconfig, the kubeadm config's endpoint facts, the apiserver certificate
//! ([`cert`]), the static pods, a kubespray local proxy ([`proxy`]) and the etcd mode. Problems with one file are reported next to it (and as a
//! warning); they never fail the whole module, so an operator always sees the full picture.
//!
//! API: [`InfoOptions`] (paths, every one rooted at `host_root`), [`gather`]`(&InfoOptions)` ->
//! the result fields as a JSON object. Key material is never read into the result: kubeconfig
//! users are reported by auth kind only.

pub mod cert;
pub mod cluster_facts;
pub mod cluster_pins;
pub mod disk;
pub mod lb_survey;
pub mod pins;
pub mod proxy;

use crate::kubeadm::KubeadmConfig;
use crate::kubeconfig::Kubeconfig;
use crate::yamledit::{self, YamlText};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Where to look.
#[derive(Debug, Clone)]
pub struct InfoOptions {
    /// `/etc/kubernetes` on a kubespray host.
    pub kube_config_dir: PathBuf,
    /// The root user's kubeconfig (`/root/.kube/config`).
    pub home_kubeconfig: PathBuf,
    /// Prefix of host-wide paths (`/etc/nginx`, `/etc/etcd.env`, systemd units).
    pub host_root: PathBuf,
}

/// The kubeconfigs kubeadm and kubespray write, by report key and file name.
pub const KUBECONFIGS: [(&str, &str); 5] = [
    ("admin", "admin.conf"),
    ("super-admin", "super-admin.conf"),
    ("controller-manager", "controller-manager.conf"),
    ("scheduler", "scheduler.conf"),
    ("kubelet", "kubelet.conf"),
];

/// Gather every fact. `warnings` collects one sentence per unreadable or odd file.
pub fn gather(opts: &InfoOptions, warnings: &mut Vec<String>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut kubeconfigs = Map::new();
    let mut servers = Map::new();
    let mut files: Vec<(String, PathBuf)> = KUBECONFIGS
        .iter()
        .map(|(key, file)| (key.to_string(), opts.kube_config_dir.join(file)))
        .collect();
    files.push(("home".into(), opts.home_kubeconfig.clone()));
    for (key, path) in files {
        let fact = kubeconfig_fact(&path, warnings);
        if let Some(server) = fact.get("server").and_then(Value::as_str) {
            servers.insert(key.clone(), json!(server));
        }
        kubeconfigs.insert(key, Value::Object(fact));
    }
    out.insert("kubeconfigs".into(), Value::Object(kubeconfigs));
    out.insert("servers".into(), Value::Object(servers));
    out.insert(
        "kubeadm_config".into(),
        kubeadm_fact(&opts.kube_config_dir.join("kubeadm-config.yaml"), warnings),
    );
    let ssl = cert::certificates_dir(&opts.kube_config_dir);
    out.insert("certificates_dir".into(), json!(ssl.display().to_string()));
    out.insert(
        "apiserver_cert".into(),
        cert::apiserver_fact(&ssl, warnings),
    );
    out.insert("ca_key_present".into(), json!(ssl.join("ca.key").is_file()));
    let manifests = opts.kube_config_dir.join("manifests");
    let pods = static_pods(&manifests);
    out.insert("static_pods".into(), json!(pods));
    let stray: Vec<&String> = pods
        .iter()
        .filter(|n| !(n.ends_with(".yaml") || n.ends_with(".yml") || n.ends_with(".json")))
        .collect();
    if !stray.is_empty() {
        warnings.push(format!(
            "{} holds files kubelet will run as static pods although they do not look like manifests: {}",
            manifests.display(),
            stray.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    out.insert(
        "local_proxy".into(),
        proxy::local_proxy_fact(&opts.host_root, &manifests, warnings),
    );
    out.insert("etcd".into(), etcd_fact(&opts.host_root, &manifests));
    out
}

fn kubeconfig_fact(path: &Path, warnings: &mut Vec<String>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("path".into(), json!(path.display().to_string()));
    if !path.exists() {
        m.insert("present".into(), json!(false));
        return m;
    }
    m.insert("present".into(), json!(true));
    match Kubeconfig::load(path) {
        Ok(k) => {
            match k.current_cluster() {
                Ok(c) => {
                    m.insert("cluster".into(), json!(c.name));
                    m.insert("server".into(), json!(c.server));
                    m.insert("ca".into(), json!(c.ca.kind()));
                }
                Err(e) => {
                    warnings.push(e.to_string());
                    m.insert("error".into(), json!(e.to_string()));
                }
            }
            m.insert(
                "all_servers".into(),
                json!(k
                    .clusters()
                    .iter()
                    .map(|c| json!({"cluster": c.name, "server": c.server}))
                    .collect::<Vec<_>>()),
            );
            if let Ok(Some(user)) = k.current_user() {
                m.insert("user".into(), json!(user.name));
                m.insert("auth".into(), json!(user.auth_kind().as_str()));
                if let Some(p) = user.client_certificate_path() {
                    m.insert(
                        "client_certificate_path".into(),
                        json!(p.display().to_string()),
                    );
                }
            }
        }
        Err(e) => {
            warnings.push(e.to_string());
            m.insert("error".into(), json!(e.to_string()));
        }
    }
    m
}

fn kubeadm_fact(path: &Path, warnings: &mut Vec<String>) -> Value {
    let mut m = Map::new();
    m.insert("path".into(), json!(path.display().to_string()));
    if !path.exists() {
        m.insert("present".into(), json!(false));
        return Value::Object(m);
    }
    m.insert("present".into(), json!(true));
    let text = match crate::fsio::read_text(path) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(e.to_string());
            m.insert("error".into(), json!(e.to_string()));
            return Value::Object(m);
        }
    };
    // The apiVersion is reported even when the version is one the edit modules refuse.
    let parsed = YamlText::parse(text, path).and_then(|yaml| {
        let cluster = yaml.docs().iter().find(|(_, v)| {
            yamledit::get(v, &[yamledit::Seg::key("kind")]).and_then(|k| k.as_str())
                == Some("ClusterConfiguration")
        });
        if let Some(v) = cluster.and_then(|(_, doc)| {
            yamledit::get(doc, &[yamledit::Seg::key("apiVersion")]).and_then(|v| v.as_str())
        }) {
            m.insert("api_version".into(), json!(v));
        }
        KubeadmConfig::from_yaml(yaml)
    });
    match parsed {
        Ok(c) => {
            m.insert("supported".into(), json!(true));
            m.insert(
                "control_plane_endpoint".into(),
                json!(c.control_plane_endpoint()),
            );
            m.insert("cert_sans".into(), json!(c.cert_sans()));
            m.insert("advertise_address".into(), json!(c.advertise_address()));
            m.insert("node_name".into(), json!(c.node_name()));
            m.insert("cluster_name".into(), json!(c.cluster_name()));
            m.insert("service_subnet".into(), json!(c.service_subnet()));
            m.insert("dns_domain".into(), json!(c.dns_domain()));
        }
        Err(e) => {
            warnings.push(e.to_string());
            m.insert("supported".into(), json!(false));
            m.insert("error".into(), json!(e.to_string()));
        }
    }
    Value::Object(m)
}

/// Files kubelet would run from the static-pod directory (every name not starting with a dot).
pub fn static_pods(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn etcd_fact(root: &Path, manifests: &Path) -> Value {
    let unit_dirs = [
        "etc/systemd/system",
        "lib/systemd/system",
        "usr/lib/systemd/system",
    ];
    let unit = unit_dirs
        .iter()
        .map(|d| root.join(d).join("etcd.service"))
        .find(|p| p.is_file());
    let env = root.join("etc/etcd.env");
    let manifest = ["etcd.yaml", "etcd.yml"]
        .iter()
        .map(|f| manifests.join(f))
        .find(|p| p.is_file());
    let mode = if unit.is_some() || env.is_file() {
        "host"
    } else if manifest.is_some() {
        "kubeadm"
    } else {
        "none"
    };
    json!({
        "mode": mode,
        "unit_file": unit.map(|p| p.display().to_string()),
        "env_file": env.is_file().then(|| env.display().to_string()),
        "manifest": manifest.map(|p| p.display().to_string()),
    })
}
