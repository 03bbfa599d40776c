//! Pins: every place on a host that names a control-plane host's own address (or a name only one
//! master has) where the endpoint belongs. After a conversion these are what still breaks when that
//! master goes away. Read-only, from files only; a file that cannot be read is a warning next to
//! the scan, never a failure.
//!
//! Looked at, every path under `host_root`:
//! - kubeconfigs: the kubeadm ones in `kube_config_dir`, `/root/.kube/config`,
//!   `/home/*/.kube/config`, any other kubeconfig under `/etc` (add-ons such as kube-router or a
//!   CNI's), and the `extra_kubeconfigs` given (kubespray's `artifacts/admin.conf` on the
//!   controller): each cluster whose `server` names a master;
//! - `/etc/hosts`: the endpoint's DNS name mapped to a master's address;
//! - static pod manifests (`kube_config_dir/manifests`): a container's `--master`/`--server` flag
//!   naming a master, or its `KUBERNETES_SERVICE_HOST` set to one (kube-vip and host-network pods).
//!
//! Each pin says whether kubeha's conversion fixes it (the kubeconfigs it rewrites) and, on a
//! master, whether pointing at this very master is the endpoint policy's choice (kubeadm keeps
//! controller-manager, scheduler and, from 1.33, kubelet on the local apiserver).
//!
//! API: [`Masters`] (the addresses and names to look for), [`ScanPaths`], [`scan`] -> [`Scan`].

use crate::endpoint::{Endpoint, Host, ServerUrl};
use crate::kubeconfig::Kubeconfig;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Kubeconfigs found under /etc larger than this are not kubeconfigs kubeha would fix.
const MAX_FILE: u64 = 256 * 1024;
/// How deep the walk of /etc goes (kube-router: /etc/kube-router/kubeconfig is depth 2).
const MAX_DEPTH: usize = 6;

/// The control-plane hosts: each master's addresses and names, compared as TLS clients compare
/// them (IP addresses as addresses, names case-insensitively).
#[derive(Debug, Clone, Default)]
pub struct Masters {
    /// (master as the inventory names it, one of its addresses or names)
    entries: Vec<(String, Host)>,
}

impl Masters {
    /// `items` are `name=address` or plain addresses/names (then the item names itself).
    pub fn parse(items: &[String], what: &str) -> crate::Result<Masters> {
        let mut entries = Vec::new();
        for item in items {
            let (label, value) = match item.split_once('=') {
                Some((l, v)) => (l.trim().to_string(), v.trim()),
                None => (item.trim().to_string(), item.trim()),
            };
            let bare = value
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .unwrap_or(value);
            entries.push((label, Host::parse(bare, what)?));
        }
        Ok(Masters { entries })
    }

    /// The master `host` belongs to, if it is one of them.
    pub fn which(&self, host: &Host) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, h)| same_host(h, host))
            .map(|(label, _)| label.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn same_host(a: &Host, b: &Host) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (a.ip(), b.ip()) {
        (Some(x), Some(y)) => canonical(x) == canonical(y),
        (None, None) => a.to_string().eq_ignore_ascii_case(&b.to_string()),
        _ => false,
    }
}

/// Where to look.
#[derive(Debug, Clone)]
pub struct ScanPaths {
    pub host_root: PathBuf,
    pub kube_config_dir: PathBuf,
    pub extra_kubeconfigs: Vec<PathBuf>,
}

/// One pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// On a host: `kubeconfig`, `etc_hosts`, `static_pod_flag`, `static_pod_env`; in the cluster
    /// ([`crate::info::cluster_pins`]): `workload_env`, `workload_flag`, `configmap`.
    pub kind: &'static str,
    /// What an operator names to accept it (`kubeha_accept_pins`): on a host the file's path (the
    /// role prefixes the host), in the cluster `Kind/namespace/name`.
    pub id: String,
    /// File, and inside it the cluster, line or container.
    pub location: String,
    /// The value as written (a server URL, a hosts line, a flag, an env value).
    pub value: String,
    /// The master it names, as given in `masters`.
    pub master: String,
    /// In a kubeconfig: the cluster (by name) whose server it is.
    pub cluster: Option<String>,
    pub fixed_by_kubeha: bool,
    /// On that very master, the endpoint policy points this file at it on purpose.
    pub local_by_design: bool,
    /// What to do about it.
    pub fix: String,
}

impl Pin {
    /// A pin kubeha does not fix (everything but the kubeconfigs it converts).
    pub fn left(
        kind: &'static str,
        id: String,
        location: String,
        value: String,
        master: &str,
        fix: String,
    ) -> Pin {
        Pin {
            kind,
            id,
            location,
            value,
            master: master.to_string(),
            cluster: None,
            fixed_by_kubeha: false,
            local_by_design: false,
            fix,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "kind": self.kind,
            "id": self.id,
            "location": self.location,
            "value": self.value,
            "master": self.master,
            "fixed_by_kubeha": self.fixed_by_kubeha,
            "local_by_design": self.local_by_design,
            "fix": self.fix,
        });
        if let Some(cluster) = &self.cluster {
            out["cluster"] = json!(cluster);
        }
        out
    }
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub pins: Vec<Pin>,
    /// Files read (kubeconfigs, hosts file, manifests).
    pub files: usize,
    pub warnings: Vec<String>,
    /// Kubeconfigs that could not be read or parsed: (path as the host names it, why).
    pub unreadable: Vec<(String, String)>,
}

/// The kubeconfigs kubeha's conversion rewrites, by file name in `kube_config_dir`.
const KUBEHA_KUBECONFIGS: [&str; 5] = [
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "kubelet.conf",
];
/// Those the kubeadm endpoint policy keeps on the local apiserver of a master.
const LOCAL_BY_POLICY: [&str; 3] = ["controller-manager.conf", "scheduler.conf", "kubelet.conf"];

/// Scan one host. `this_host` names the host scanned (its addresses and names) so that a master's
/// own kubeconfigs pointing at itself by policy are told apart.
pub fn scan(
    paths: &ScanPaths,
    masters: &Masters,
    endpoint: &Endpoint,
    this_host: &Masters,
) -> Scan {
    let mut out = Scan::default();
    if masters.is_empty() {
        return out;
    }
    let ctx = Context {
        paths,
        masters,
        endpoint,
        this_host,
    };
    for file in ctx.kubeconfig_files() {
        ctx.kubeconfig(&file, &mut out);
    }
    ctx.hosts_file(&mut out);
    ctx.manifests(&mut out);
    out
}

struct Context<'a> {
    paths: &'a ScanPaths,
    masters: &'a Masters,
    endpoint: &'a Endpoint,
    this_host: &'a Masters,
}

impl Context<'_> {
    fn under_root(&self, absolute: &str) -> PathBuf {
        self.paths.host_root.join(absolute.trim_start_matches('/'))
    }

    /// `path` as the host names it (without `host_root`): a pin's id.
    fn host_path(&self, path: &Path) -> String {
        match path.strip_prefix(&self.paths.host_root) {
            Ok(rest) => format!("/{}", rest.display()),
            Err(_) => path.display().to_string(),
        }
    }

    /// Every kubeconfig to look at, each real file once.
    fn kubeconfig_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = KUBEHA_KUBECONFIGS
            .iter()
            .map(|f| self.paths.kube_config_dir.join(f))
            .collect();
        files.push(self.under_root("/root/.kube/config"));
        if let Ok(homes) = fs::read_dir(self.under_root("/home")) {
            let mut homes: Vec<PathBuf> = homes
                .filter_map(|e| e.ok())
                .map(|e| e.path().join(".kube/config"))
                .collect();
            homes.sort();
            files.extend(homes);
        }
        files.extend(self.paths.extra_kubeconfigs.iter().cloned());
        let mut found = Vec::new();
        walk(&self.under_root("/etc"), 0, &mut found);
        found.sort();
        files.extend(found);
        let mut seen = BTreeSet::new();
        files
            .into_iter()
            .filter(|f| f.is_file())
            .filter(|f| seen.insert(fs::canonicalize(f).unwrap_or_else(|_| f.clone())))
            .collect()
    }

    fn kubeconfig(&self, path: &Path, out: &mut Scan) {
        let config = match Kubeconfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                out.warnings.push(format!("pin scan: {e}"));
                out.unreadable.push((self.host_path(path), e.to_string()));
                return;
            }
        };
        out.files += 1;
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let in_config_dir = path.parent() == Some(self.paths.kube_config_dir.as_path());
        let root_home = path == self.under_root("/root/.kube/config");
        let fixed = root_home || (in_config_dir && KUBEHA_KUBECONFIGS.contains(&file_name));
        for cluster in config.clusters() {
            let Ok(url) = ServerUrl::parse(&cluster.server, "server") else {
                continue;
            };
            let Some(master) = self.masters.which(&url.host) else {
                continue;
            };
            let local_by_design = in_config_dir
                && LOCAL_BY_POLICY.contains(&file_name)
                && self.this_host.which(&url.host).is_some();
            let fix = if fixed {
                "the conversion sets it (kubeha.control_plane.kubeconfig_server)".to_string()
            } else {
                format!(
                    "set cluster {:?} to {} (kubeha.control_plane.kubeconfig_server path={} cluster={:?}), then restart what reads it",
                    cluster.name,
                    self.endpoint.url(),
                    path.display(),
                    cluster.name
                )
            };
            out.pins.push(Pin {
                kind: "kubeconfig",
                id: self.host_path(path),
                location: format!("{} cluster {:?}", path.display(), cluster.name),
                value: cluster.server.clone(),
                master: master.to_string(),
                cluster: Some(cluster.name.clone()),
                fixed_by_kubeha: fixed,
                local_by_design,
                fix,
            });
        }
    }

    /// `/etc/hosts` lines that resolve the endpoint's name to a master.
    fn hosts_file(&self, out: &mut Scan) {
        let Host::Dns(name) = self.endpoint.host() else {
            return;
        };
        let path = self.under_root("/etc/hosts");
        let Ok(text) = fs::read_to_string(&path) else {
            return;
        };
        out.files += 1;
        for (number, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or("");
            let mut fields = content.split_whitespace();
            let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            if !fields.any(|n| n.eq_ignore_ascii_case(name)) {
                continue;
            }
            let host = match ip {
                IpAddr::V4(a) => Host::Ipv4(a),
                IpAddr::V6(a) => Host::Ipv6(a),
            };
            if let Some(master) = self.masters.which(&host) {
                out.pins.push(Pin::left(
                    "etc_hosts",
                    self.host_path(&path),
                    format!("{} line {}", path.display(), number + 1),
                    line.trim().to_string(),
                    master,
                    format!(
                        "remove the line or map {name} to the load balancer's address (kubespray before v2.29 wrote it)"
                    ),
                ));
            }
        }
    }

    /// Static pods whose containers reach the API through one master.
    fn manifests(&self, out: &mut Scan) {
        let dir = self.paths.kube_config_dir.join("manifests");
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
            })
            .collect();
        files.sort();
        for path in files {
            let Ok(text) = fs::read_to_string(&path) else {
                out.warnings
                    .push(format!("pin scan: {}: cannot be read", path.display()));
                continue;
            };
            let Ok(pod) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
                out.warnings
                    .push(format!("pin scan: {}: is not valid YAML", path.display()));
                continue;
            };
            out.files += 1;
            for container in containers(&pod) {
                self.container(&path, container, out);
            }
        }
    }

    fn container(&self, path: &Path, c: &serde_yaml_ng::Value, out: &mut Scan) {
        let name = c.get("name").and_then(|n| n.as_str()).unwrap_or("?");
        let location = format!("{} container {name:?}", path.display());
        let words: Vec<&str> = ["command", "args"]
            .iter()
            .filter_map(|k| c.get(*k).and_then(|v| v.as_sequence()))
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        for (i, word) in words.iter().enumerate() {
            for flag in ["--master", "--server"] {
                let value = match word.strip_prefix(flag) {
                    Some(rest) if rest.starts_with('=') => &rest[1..],
                    Some("") => words.get(i + 1).copied().unwrap_or(""),
                    _ => continue,
                };
                let Ok(url) = ServerUrl::parse(value, flag) else {
                    continue;
                };
                if let Some(master) = self.masters.which(&url.host) {
                    out.pins.push(Pin::left(
                        "static_pod_flag",
                        self.host_path(path),
                        location.clone(),
                        format!("{flag}={value}"),
                        master,
                        format!(
                            "set {flag} to {} in {}",
                            self.endpoint.url(),
                            path.display()
                        ),
                    ));
                }
            }
        }
        let env = c.get("env").and_then(|e| e.as_sequence());
        for var in env.into_iter().flatten() {
            if var.get("name").and_then(|n| n.as_str()) != Some("KUBERNETES_SERVICE_HOST") {
                continue;
            }
            let Some(value) = var.get("value").and_then(|v| v.as_str()) else {
                continue;
            };
            let Ok(host) = Host::parse(value, "KUBERNETES_SERVICE_HOST") else {
                continue;
            };
            if let Some(master) = self.masters.which(&host) {
                out.pins.push(Pin::left(
                    "static_pod_env",
                    self.host_path(path),
                    location.clone(),
                    format!("KUBERNETES_SERVICE_HOST={value}"),
                    master,
                    format!(
                        "set KUBERNETES_SERVICE_HOST to {} (and KUBERNETES_SERVICE_PORT to {}) in {}",
                        self.endpoint.host(),
                        self.endpoint.port(),
                        path.display()
                    ),
                ));
            }
        }
    }
}

/// `spec.containers` and `spec.initContainers` of a pod manifest.
fn containers(pod: &serde_yaml_ng::Value) -> Vec<&serde_yaml_ng::Value> {
    let spec = pod.get("spec");
    ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.and_then(|s| s.get(*k)).and_then(|v| v.as_sequence()))
        .flatten()
        .collect()
}

/// Regular files under `dir` that look like kubeconfigs (small, text, with `clusters:` and
/// `server:`), without following symlinked directories.
fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, depth + 1, found);
        } else if kind.is_file() && looks_like_kubeconfig(&path) {
            found.push(path);
        }
    }
}

fn looks_like_kubeconfig(path: &Path) -> bool {
    let small = fs::metadata(path)
        .map(|m| m.len() <= MAX_FILE)
        .unwrap_or(false);
    if !small {
        return false;
    }
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            text.contains("clusters:") && text.contains("server:")
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KC: &str = "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: QUJD\n    server: SERVER\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: u\n  name: u@kubernetes\ncurrent-context: u@kubernetes\nusers:\n- name: u\n  user:\n    token: abc\n";

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn kc(server: &str) -> String {
        KC.replace("SERVER", server)
    }

    fn masters() -> Masters {
        Masters::parse(
            &[
                "master1=10.0.0.11".into(),
                "master1=master1.example.com".into(),
                "master2=10.0.0.12".into(),
            ],
            "masters",
        )
        .unwrap()
    }

    fn run(root: &Path, endpoint: &str, this: &[&str]) -> Scan {
        let paths = ScanPaths {
            host_root: root.to_path_buf(),
            kube_config_dir: root.join("etc/kubernetes"),
            extra_kubeconfigs: vec![root.join("controller/artifacts/admin.conf")],
        };
        let this: Vec<String> = this.iter().map(|s| s.to_string()).collect();
        scan(
            &paths,
            &masters(),
            &Endpoint::parse(endpoint, "endpoint").unwrap(),
            &Masters::parse(&this, "this_host").unwrap(),
        )
    }

    #[test]
    fn every_planted_pin_is_found_and_classified() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "etc/kubernetes/admin.conf",
            &kc("https://10.0.0.11:6443"),
        );
        write(
            root,
            "etc/kubernetes/scheduler.conf",
            &kc("https://10.0.0.12:6443"),
        );
        write(
            root,
            "etc/kubernetes/kubelet.conf",
            &kc("https://10.0.0.10:6443"),
        );
        write(
            root,
            "root/.kube/config",
            &kc("https://MASTER1.example.com:6443"),
        );
        write(root, "home/ops/.kube/config", &kc("https://10.0.0.11:6443"));
        write(
            root,
            "etc/kube-router/kubeconfig",
            &kc("https://[::ffff:10.0.0.12]:6443"),
        );
        write(
            root,
            "controller/artifacts/admin.conf",
            &kc("https://10.0.0.11:6443"),
        );
        write(
            root,
            "etc/hosts",
            "127.0.0.1 localhost\n10.0.0.11 api.example.com master1 # old\n10.0.0.10 other\n",
        );
        write(
            root,
            "etc/kubernetes/manifests/kube-vip.yaml",
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: kube-vip\n    args: [manager, --master, https://10.0.0.11:6443]\n    env:\n    - name: KUBERNETES_SERVICE_HOST\n      value: 10.0.0.12\n",
        );
        write(root, "etc/ssl/big.pem", "-----BEGIN CERTIFICATE-----\n");
        let s = run(root, "api.example.com:6443", &["10.0.0.12", "master2"]);
        let got: Vec<(&str, String, &str, bool, bool)> = s
            .pins
            .iter()
            .map(|p| {
                (
                    p.kind,
                    p.location.replace(&root.display().to_string(), ""),
                    p.master.as_str(),
                    p.fixed_by_kubeha,
                    p.local_by_design,
                )
            })
            .collect();
        let want = vec![
            (
                "kubeconfig",
                "/etc/kubernetes/admin.conf cluster \"kubernetes\"".to_string(),
                "master1",
                true,
                false,
            ),
            (
                "kubeconfig",
                "/etc/kubernetes/scheduler.conf cluster \"kubernetes\"".to_string(),
                "master2",
                true,
                true,
            ),
            (
                "kubeconfig",
                "/root/.kube/config cluster \"kubernetes\"".to_string(),
                "master1",
                true,
                false,
            ),
            (
                "kubeconfig",
                "/home/ops/.kube/config cluster \"kubernetes\"".to_string(),
                "master1",
                false,
                false,
            ),
            (
                "kubeconfig",
                "/controller/artifacts/admin.conf cluster \"kubernetes\"".to_string(),
                "master1",
                false,
                false,
            ),
            (
                "kubeconfig",
                "/etc/kube-router/kubeconfig cluster \"kubernetes\"".to_string(),
                "master2",
                false,
                false,
            ),
            (
                "etc_hosts",
                "/etc/hosts line 2".to_string(),
                "master1",
                false,
                false,
            ),
            (
                "static_pod_flag",
                "/etc/kubernetes/manifests/kube-vip.yaml container \"kube-vip\"".to_string(),
                "master1",
                false,
                false,
            ),
            (
                "static_pod_env",
                "/etc/kubernetes/manifests/kube-vip.yaml container \"kube-vip\"".to_string(),
                "master2",
                false,
                false,
            ),
        ];
        assert_eq!(got, want);
        assert_eq!(s.pins[3].cluster.as_deref(), Some("kubernetes"));
        assert_eq!(s.pins[6].cluster, None, "a hosts line has no cluster");
        // Ids are the paths as the host names them (what kubeha_accept_pins names, with the host).
        let ids: Vec<&str> = s.pins.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "/etc/kubernetes/admin.conf",
                "/etc/kubernetes/scheduler.conf",
                "/root/.kube/config",
                "/home/ops/.kube/config",
                "/controller/artifacts/admin.conf",
                "/etc/kube-router/kubeconfig",
                "/etc/hosts",
                "/etc/kubernetes/manifests/kube-vip.yaml",
                "/etc/kubernetes/manifests/kube-vip.yaml",
            ]
        );
        // Seven kubeconfigs (kubelet.conf names the VIP: no pin; the /etc walk finds the ones in
        // /etc/kubernetes again, each is read once), /etc/hosts, one manifest.
        assert_eq!(s.files, 9, "{:?}", s.warnings);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        let json =
            serde_json::to_string(&s.pins.iter().map(Pin::to_json).collect::<Vec<_>>()).unwrap();
        assert!(
            !json.contains("QUJD") && !json.contains("abc"),
            "no key material: {json}"
        );
    }

    #[test]
    fn an_ip_endpoint_skips_the_hosts_file_and_bad_files_are_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "etc/hosts", "10.0.0.11 master1\n");
        write(
            root,
            "etc/kubernetes/admin.conf",
            "clusters: [\n  - {broken\nserver: x\n",
        );
        let s = run(root, "10.0.0.10:6443", &[]);
        assert!(s.pins.is_empty(), "{:?}", s.pins);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("admin.conf"), "{:?}", s.warnings);
        assert_eq!(s.unreadable.len(), 1);
        assert_eq!(s.unreadable[0].0, "/etc/kubernetes/admin.conf");
    }

    #[test]
    fn masters_are_compared_as_tls_clients_compare_hosts() {
        let m = masters();
        let h = |t: &str| Host::parse(t, "x").unwrap();
        assert_eq!(m.which(&h("10.0.0.11")), Some("master1"));
        assert_eq!(m.which(&h("::ffff:10.0.0.12")), Some("master2"));
        assert_eq!(m.which(&h("Master1.Example.com")), Some("master1"));
        assert_eq!(m.which(&h("10.0.0.10")), None);
        assert!(Masters::parse(&["m1=not a host".into()], "masters").is_err());
    }
}
