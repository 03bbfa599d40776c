//! Cluster pins: the objects in the cluster that name a master where the endpoint belongs, read
//! through the API ([`read`], TLS verified against the cluster CA) and judged by a pure function
//! ([`scan`]). What the host scan ([`super::pins`]) is for files, this is for the API:
//! - workloads (DaemonSets, Deployments, StatefulSets): a container of the pod template whose
//!   `KUBERNETES_SERVICE_HOST` (or any https URL in its env) names a master, as the Cilium Helm
//!   chart renders `k8sServiceHost`, or whose `--master`/`--server`/`--k8s-api-server` flag does;
//! - ConfigMaps: the three kubeha converts (kube-proxy's kubeconfig, kubeadm-config's
//!   `controlPlaneEndpoint`, cluster-info's kubeconfig), Calico's `kubernetes-services-endpoint`
//!   (its `KUBERNETES_SERVICE_HOST` key), Cilium's `k8s-api-server-urls`/`k8s-api-server`, and any
//!   other key holding a kubeconfig.
//!
//! Secrets are never read. Each pin says whether kubeha's conversion fixes it and what to do if
//! not; its id (`Kind/namespace/name`) is what `kubeha_accept_pins` names.

use super::pins::{Masters, Pin, Scan};
use crate::endpoint::{Endpoint, Host, ServerUrl};
use crate::error::{Error, Result};
use crate::kubeadm::KubeadmConfig;
use crate::kubeapi::client::{status_error, Transport};
use crate::kubeconfig::Kubeconfig;
use crate::net::http::Request;
use serde_json::Value;
use std::path::Path;

/// Every object the scan judges, as the API returned them.
#[derive(Debug, Default)]
pub struct ClusterObjects {
    /// (kind, object) of the DaemonSets, Deployments and StatefulSets of every namespace.
    pub workloads: Vec<(&'static str, Value)>,
    pub configmaps: Vec<Value>,
}

/// The lists read, each across all namespaces: (kind, path).
const LISTS: [(&str, &str); 4] = [
    ("DaemonSet", "/apis/apps/v1/daemonsets"),
    ("Deployment", "/apis/apps/v1/deployments"),
    ("StatefulSet", "/apis/apps/v1/statefulsets"),
    ("ConfigMap", "/api/v1/configmaps"),
];

/// Read every object the scan judges. A kind the server does not serve (404) is a warning, not an
/// error: the scan then says what it could not look at.
pub fn read(t: &dyn Transport) -> Result<(ClusterObjects, Vec<String>)> {
    let mut objects = ClusterObjects::default();
    let mut warnings = Vec::new();
    for (kind, path) in LISTS {
        let resp = t
            .send(&Request::get(path))
            .map_err(|e| Error::remote(t.server(), format!("GET {path}: {e}")))?;
        if resp.status == 404 {
            warnings.push(format!(
                "cluster pin scan: {} does not serve {path}: its {kind}s were not looked at",
                t.server()
            ));
            continue;
        }
        if resp.status != 200 {
            return Err(status_error(&t.server(), &format!("GET {path}"), &resp));
        }
        let list: Value = serde_json::from_slice(&resp.body).map_err(|e| {
            Error::remote(
                t.server(),
                format!("GET {path}: the answer is not JSON: {e}"),
            )
        })?;
        let Some(items) = list["items"].as_array() else {
            return Err(Error::remote(
                t.server(),
                format!("GET {path}: the answer has no items list"),
            ));
        };
        for item in items {
            if kind == "ConfigMap" {
                objects.configmaps.push(item.clone());
            } else {
                objects.workloads.push((kind, item.clone()));
            }
        }
    }
    Ok((objects, warnings))
}

/// The CNI agent DaemonSets kubeha recognises, by name: (CNI, DaemonSet name).
const CNI_AGENTS: [(&str, &str); 5] = [
    ("cilium", "cilium"),
    ("calico", "calico-node"),
    ("flannel", "kube-flannel-ds"),
    ("kube-router", "kube-router"),
    ("weave", "weave-net"),
];

/// The CNI whose agent DaemonSet runs in the cluster, and that DaemonSet's id, if kubeha
/// recognises one (what `kubeha_cni` is checked against).
pub fn detect_cni(objects: &ClusterObjects) -> Option<(&'static str, String)> {
    CNI_AGENTS.iter().find_map(|(cni, agent)| {
        objects.workloads.iter().find_map(|(kind, object)| {
            let (namespace, name) = name_of(object);
            (*kind == "DaemonSet" && name == *agent)
                .then(|| (*cni, format!("DaemonSet/{namespace}/{name}")))
        })
    })
}

/// Judge the objects: every place naming one of `masters` where `endpoint` belongs.
pub fn scan(objects: &ClusterObjects, masters: &Masters, endpoint: &Endpoint) -> Scan {
    let mut out = Scan::default();
    if masters.is_empty() {
        return out;
    }
    for (kind, object) in &objects.workloads {
        out.files += 1;
        workload(kind, object, masters, endpoint, &mut out);
    }
    for object in &objects.configmaps {
        configmap(object, masters, endpoint, &mut out);
    }
    out
}

fn name_of(object: &Value) -> (String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        text(&object["metadata"]["namespace"]),
        text(&object["metadata"]["name"]),
    )
}

/// Made by the Cilium Helm chart: its pin is fixed through the chart's values.
fn is_cilium(object: &Value) -> bool {
    let labels = &object["metadata"]["labels"];
    let (_, name) = name_of(object);
    labels["app.kubernetes.io/part-of"] == "cilium"
        || labels["k8s-app"] == "cilium"
        || name == "cilium"
        || name.starts_with("cilium-")
}

/// A host as written in an env value: a bare address or name (IPv6 maybe in brackets), or an
/// https URL.
pub fn host_in(value: &str) -> Option<Host> {
    if value.starts_with("https://") {
        return ServerUrl::parse(value, "env").ok().map(|u| u.host);
    }
    let bare = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    Host::parse(bare, "env").ok()
}

/// The master an env value pins a container to (`KUBERNETES_SERVICE_HOST` naming one, or an
/// https URL naming one), if any: what the scan reports and `cluster_workloads` repoints.
pub fn env_names_master<'m>(name: &str, value: &str, masters: &'m Masters) -> Option<&'m str> {
    if name != "KUBERNETES_SERVICE_HOST" && !value.starts_with("https://") {
        return None;
    }
    host_in(value).and_then(|h| masters.which(&h))
}

fn workload(kind: &str, object: &Value, masters: &Masters, endpoint: &Endpoint, out: &mut Scan) {
    let (namespace, name) = name_of(object);
    let id = format!("{kind}/{namespace}/{name}");
    let spec = &object["spec"]["template"]["spec"];
    let containers = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten();
    for container in containers {
        let cname = container["name"].as_str().unwrap_or("?");
        let location = format!("{kind} {namespace}/{name} container {cname:?}");
        for var in container["env"].as_array().into_iter().flatten() {
            let (Some(var_name), Some(value)) = (var["name"].as_str(), var["value"].as_str())
            else {
                continue;
            };
            let Some(master) = env_names_master(var_name, value, masters) else {
                continue;
            };
            let fix = if is_cilium(object) {
                format!(
                    "set the Cilium Helm values k8sServiceHost={} and k8sServicePort={} (helm upgrade cilium --reuse-values --set ...; kubespray v2.30 and later renders them from the endpoint), then let the agents roll",
                    endpoint.host(),
                    endpoint.port()
                )
            } else if var_name == "KUBERNETES_SERVICE_HOST" {
                format!(
                    "kubectl -n {namespace} set env {}/{name} -c {cname} KUBERNETES_SERVICE_HOST={} KUBERNETES_SERVICE_PORT={} (or in the manifest or chart that made it)",
                    kind.to_ascii_lowercase(),
                    endpoint.host(),
                    endpoint.port()
                )
            } else {
                format!(
                    "set {var_name} to {} in {kind} {namespace}/{name} (or in the manifest or chart that made it)",
                    endpoint.url()
                )
            };
            out.pins.push(Pin::left(
                "workload_env",
                id.clone(),
                location.clone(),
                format!("{var_name}={value}"),
                master,
                fix,
            ));
        }
        let words: Vec<&str> = ["command", "args"]
            .iter()
            .filter_map(|k| container[*k].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (i, word) in words.iter().enumerate() {
            for flag in ["--master", "--server", "--k8s-api-server"] {
                let value = match word.strip_prefix(flag) {
                    Some(rest) if rest.starts_with('=') => &rest[1..],
                    Some("") => words.get(i + 1).copied().unwrap_or(""),
                    _ => continue,
                };
                let Some(master) = host_in(value).and_then(|h| masters.which(&h)) else {
                    continue;
                };
                out.pins.push(Pin::left(
                    "workload_flag",
                    id.clone(),
                    location.clone(),
                    format!("{flag}={value}"),
                    master,
                    format!(
                        "set {flag} to {} in {kind} {namespace}/{name} (or in the manifest or chart that made it)",
                        endpoint.url()
                    ),
                ));
            }
        }
    }
}

/// The ConfigMap keys kubeha's `cluster_configmaps` converts.
const CONVERTED: [(&str, &str, &str); 3] = [
    ("kube-system", "kube-proxy", "kubeconfig.conf"),
    ("kube-public", "cluster-info", "kubeconfig"),
    ("kube-system", "kubeadm-config", "ClusterConfiguration"),
];

fn configmap(object: &Value, masters: &Masters, endpoint: &Endpoint, out: &mut Scan) {
    let (namespace, name) = name_of(object);
    let Some(data) = object["data"].as_object() else {
        return;
    };
    let id = format!("ConfigMap/{namespace}/{name}");
    let mut looked = false;
    for (key, value) in data {
        let Some(text) = value.as_str() else {
            continue;
        };
        let location = format!("ConfigMap {namespace}/{name} key {key:?}");
        let fixed = CONVERTED.contains(&(namespace.as_str(), name.as_str(), key.as_str()));
        let converted_fix = "the conversion sets it (kubeha.control_plane.cluster_configmaps)";
        let mut found: Vec<(String, Host, String)> = Vec::new();
        if key == "ClusterConfiguration" && name == "kubeadm-config" {
            looked = true;
            let origin = Path::new("kube-system/kubeadm-config ClusterConfiguration");
            let cpe = KubeadmConfig::parse(text, origin)
                .ok()
                .and_then(|c| c.control_plane_endpoint());
            if let Some(cpe) = cpe {
                if let Ok(e) = Endpoint::parse(&cpe, "controlPlaneEndpoint") {
                    found.push((
                        format!("controlPlaneEndpoint: {cpe}"),
                        e.host().clone(),
                        converted_fix.to_string(),
                    ));
                }
            }
        } else if key == "KUBERNETES_SERVICE_HOST" {
            looked = true;
            if let Some(host) = host_in(text.trim()) {
                found.push((
                    format!("KUBERNETES_SERVICE_HOST: {}", text.trim()),
                    host,
                    format!(
                        "set KUBERNETES_SERVICE_HOST to {} and KUBERNETES_SERVICE_PORT to {} in ConfigMap {namespace}/{name} (Calico's kubernetes-services-endpoint), then restart the pods that read it",
                        endpoint.host(),
                        endpoint.port()
                    ),
                ));
            }
        } else if key == "k8s-api-server-urls" || key == "k8s-api-server" {
            looked = true;
            for url in text.split_whitespace() {
                if let Some(host) = host_in(url) {
                    found.push((
                        format!("{key}: {url}"),
                        host,
                        format!(
                            "set the Cilium Helm value k8s.apiServerURLs (ConfigMap {namespace}/{name} key {key}) to {}, then let the agents roll",
                            endpoint.url()
                        ),
                    ));
                }
            }
        } else if text.contains("clusters:") && text.contains("server:") {
            looked = true;
            let origin = Path::new(&location);
            if let Ok(config) = Kubeconfig::parse(text, origin) {
                for cluster in config.clusters() {
                    if let Ok(url) = ServerUrl::parse(&cluster.server, "server") {
                        let fix = if fixed {
                            converted_fix.to_string()
                        } else {
                            format!(
                                "set cluster {:?}'s server to {} in ConfigMap {namespace}/{name} key {key}, then restart what reads it",
                                cluster.name,
                                endpoint.url()
                            )
                        };
                        found.push((format!("server: {}", cluster.server), url.host, fix));
                    }
                }
            }
        }
        for (value, host, fix) in found {
            let Some(master) = masters.which(&host) else {
                continue;
            };
            let mut pin = Pin::left(
                "configmap",
                id.clone(),
                location.clone(),
                value,
                master,
                fix,
            );
            pin.fixed_by_kubeha = fixed;
            out.pins.push(pin);
        }
    }
    if looked {
        out.files += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    fn endpoint() -> Endpoint {
        Endpoint::parse("10.0.0.10:6443", "endpoint").unwrap()
    }

    fn env(host: &str) -> Value {
        json!([{"name": "KUBERNETES_SERVICE_HOST", "value": host},
               {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"}])
    }

    /// The Cilium chart's objects with k8sServiceHost set, a host-network agent, and objects that
    /// name no master (the endpoint, a Service address, no env at all).
    fn objects() -> ClusterObjects {
        let kubeconfig = |server: &str| {
            format!("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: QUJD\n    server: {server}\n  name: \"\"\ncontexts: []\nusers: []\n")
        };
        ClusterObjects {
            workloads: vec![
                (
                    "DaemonSet",
                    json!({
                    "metadata": {"namespace": "kube-system", "name": "cilium", "labels": {"k8s-app": "cilium"}},
                    "spec": {"template": {"spec": {
                        "initContainers": [{"name": "config", "env": env("10.0.0.11")}],
                        "containers": [{"name": "cilium-agent", "env": env("10.0.0.11")}]}}}}),
                ),
                (
                    "Deployment",
                    json!({
                    "metadata": {"namespace": "kube-system", "name": "cilium-operator"},
                    "spec": {"template": {"spec": {"containers": [{"name": "cilium-operator", "env": env("10.0.0.11")}]}}}}),
                ),
                (
                    "DaemonSet",
                    json!({
                    "metadata": {"namespace": "logging", "name": "log-shipper"},
                    "spec": {"template": {"spec": {"hostNetwork": true, "containers": [
                        {"name": "shipper", "env": env("master1.example.com"),
                         "args": ["--master", "https://10.0.0.12:6443", "--v=2"]}]}}}}),
                ),
                (
                    "DaemonSet",
                    json!({
                    "metadata": {"namespace": "kube-system", "name": "kube-proxy"},
                    "spec": {"template": {"spec": {"containers": [{"name": "kube-proxy",
                        "command": ["kube-proxy", "--config=/var/lib/kube-proxy/config.conf"]}]}}}}),
                ),
                (
                    "Deployment",
                    json!({
                    "metadata": {"namespace": "apps", "name": "web"},
                    "spec": {"template": {"spec": {"containers": [{"name": "web",
                        "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.10"},
                                {"name": "API", "value": "https://10.0.0.12:6443/x"},
                                {"name": "OTHER", "value": "10.0.0.11"}]}]}}}}),
                ),
            ],
            configmaps: vec![
                json!({"metadata": {"namespace": "kube-system", "name": "kube-proxy"},
                       "data": {"kubeconfig.conf": kubeconfig("https://10.0.0.11:6443"), "config.conf": "mode: iptables\n"}}),
                json!({"metadata": {"namespace": "kube-public", "name": "cluster-info"},
                       "data": {"kubeconfig": kubeconfig("https://10.0.0.10:6443")}}),
                json!({"metadata": {"namespace": "kube-system", "name": "kubeadm-config"},
                       "data": {"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 10.0.0.11:6443\n"}}),
                json!({"metadata": {"namespace": "kube-system", "name": "kubernetes-services-endpoint"},
                       "data": {"KUBERNETES_SERVICE_HOST": "10.0.0.12", "KUBERNETES_SERVICE_PORT": "6443"}}),
                json!({"metadata": {"namespace": "kube-system", "name": "cilium-config"},
                       "data": {"k8s-api-server-urls": "https://10.0.0.11:6443 https://10.0.0.10:6443", "tunnel-protocol": "vxlan"}}),
                json!({"metadata": {"namespace": "tools", "name": "addon"},
                       "data": {"kubeconfig": kubeconfig("https://master1.example.com:6443")}}),
                json!({"metadata": {"namespace": "tools", "name": "empty"}}),
            ],
        }
    }

    #[test]
    fn every_planted_cluster_pin_is_found_and_classified() {
        let s = scan(&objects(), &masters(), &endpoint());
        let got: Vec<(&str, &str, &str, &str, bool)> = s
            .pins
            .iter()
            .map(|p| {
                (
                    p.kind,
                    p.id.as_str(),
                    p.value.as_str(),
                    p.master.as_str(),
                    p.fixed_by_kubeha,
                )
            })
            .collect();
        let want = vec![
            (
                "workload_env",
                "DaemonSet/kube-system/cilium",
                "KUBERNETES_SERVICE_HOST=10.0.0.11",
                "master1",
                false,
            ),
            (
                "workload_env",
                "DaemonSet/kube-system/cilium",
                "KUBERNETES_SERVICE_HOST=10.0.0.11",
                "master1",
                false,
            ),
            (
                "workload_env",
                "Deployment/kube-system/cilium-operator",
                "KUBERNETES_SERVICE_HOST=10.0.0.11",
                "master1",
                false,
            ),
            (
                "workload_env",
                "DaemonSet/logging/log-shipper",
                "KUBERNETES_SERVICE_HOST=master1.example.com",
                "master1",
                false,
            ),
            (
                "workload_flag",
                "DaemonSet/logging/log-shipper",
                "--master=https://10.0.0.12:6443",
                "master2",
                false,
            ),
            (
                "workload_env",
                "Deployment/apps/web",
                "API=https://10.0.0.12:6443/x",
                "master2",
                false,
            ),
            (
                "configmap",
                "ConfigMap/kube-system/kube-proxy",
                "server: https://10.0.0.11:6443",
                "master1",
                true,
            ),
            (
                "configmap",
                "ConfigMap/kube-system/kubeadm-config",
                "controlPlaneEndpoint: 10.0.0.11:6443",
                "master1",
                true,
            ),
            (
                "configmap",
                "ConfigMap/kube-system/kubernetes-services-endpoint",
                "KUBERNETES_SERVICE_HOST: 10.0.0.12",
                "master2",
                false,
            ),
            (
                "configmap",
                "ConfigMap/kube-system/cilium-config",
                "k8s-api-server-urls: https://10.0.0.11:6443",
                "master1",
                false,
            ),
            (
                "configmap",
                "ConfigMap/tools/addon",
                "server: https://master1.example.com:6443",
                "master1",
                false,
            ),
        ];
        assert_eq!(got, want);
        // The init container's pin names it, the Cilium fix names the chart's values.
        assert!(
            s.pins[0].location.contains("container \"config\""),
            "{:?}",
            s.pins[0]
        );
        assert!(
            s.pins[0].fix.contains("k8sServiceHost=10.0.0.10"),
            "{:?}",
            s.pins[0]
        );
        assert!(s.pins[3].fix.contains("kubectl -n logging set env daemonset/log-shipper -c shipper KUBERNETES_SERVICE_HOST=10.0.0.10 KUBERNETES_SERVICE_PORT=6443"), "{:?}", s.pins[3]);
        assert!(
            s.pins[6].fix.contains("cluster_configmaps"),
            "{:?}",
            s.pins[6]
        );
        // No key material from the kubeconfigs read.
        let text =
            serde_json::to_string(&s.pins.iter().map(Pin::to_json).collect::<Vec<_>>()).unwrap();
        assert!(!text.contains("QUJD"), "{text}");
        // 5 workloads, 6 ConfigMaps with a key the scan reads (not the one without data).
        assert_eq!(s.files, 11);
    }

    #[test]
    fn the_cni_is_recognised_by_its_agent_daemonset() {
        assert_eq!(
            detect_cni(&objects()),
            Some(("cilium", "DaemonSet/kube-system/cilium".to_string()))
        );
        let calico = ClusterObjects {
            workloads: vec![(
                "DaemonSet",
                json!({"metadata": {"namespace": "calico-system", "name": "calico-node"}}),
            )],
            configmaps: vec![],
        };
        assert_eq!(
            detect_cni(&calico),
            Some(("calico", "DaemonSet/calico-system/calico-node".to_string()))
        );
        assert_eq!(detect_cni(&ClusterObjects::default()), None);
    }

    #[test]
    fn no_masters_no_pins() {
        let s = scan(&objects(), &Masters::default(), &endpoint());
        assert!(s.pins.is_empty());
    }

    struct Fake(Vec<(&'static str, u16, Value)>);
    impl Transport for Fake {
        fn send(
            &self,
            req: &Request<'_>,
        ) -> std::result::Result<crate::net::http::Response, String> {
            let (_, status, body) = self
                .0
                .iter()
                .find(|(p, _, _)| *p == req.path)
                .ok_or_else(|| format!("unexpected {}", req.path))?;
            Ok(crate::net::http::Response {
                status: *status,
                headers: vec![],
                body: serde_json::to_vec(body).unwrap(),
            })
        }
        fn server(&self) -> String {
            "https://10.0.0.10:6443".into()
        }
    }

    #[test]
    fn read_lists_every_kind_and_a_kind_not_served_is_a_warning() {
        let list = |items: Value| json!({"kind": "List", "items": items});
        let fake = Fake(vec![
            (
                "/apis/apps/v1/daemonsets",
                200,
                list(json!([{"metadata": {"name": "a"}}])),
            ),
            ("/apis/apps/v1/deployments", 200, list(json!([]))),
            ("/apis/apps/v1/statefulsets", 404, json!({})),
            (
                "/api/v1/configmaps",
                200,
                list(json!([{"metadata": {"name": "c"}}, {"metadata": {"name": "d"}}])),
            ),
        ]);
        let (objects, warnings) = read(&fake).unwrap();
        assert_eq!(objects.workloads.len(), 1);
        assert_eq!(objects.workloads[0].0, "DaemonSet");
        assert_eq!(objects.configmaps.len(), 2);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("statefulsets"), "{warnings:?}");
        let denied = Fake(vec![(
            "/apis/apps/v1/daemonsets",
            403,
            json!({"message": "forbidden"}),
        )]);
        let e = read(&denied).unwrap_err().to_string();
        assert!(e.contains("daemonsets") && e.contains("403"), "{e}");
    }
}
