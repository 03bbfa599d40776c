//! The cluster's own facts, read through the API (GET only, TLS verified): the apiserver's version
//! (`/version`), each Node's kubelet version, and the ClusterConfiguration kubeadm uploaded to
//! ConfigMap `kube-system/kubeadm-config` (key `ClusterConfiguration`: on a plain kubeadm cluster
//! the only copy, and what every later `kubeadm upgrade` and `kubeadm join` reads), with the
//! apiserver SANs kubeadm derives from it ([`kubeadm_apiserver_sans`]).
//!
//! What the role decides from them (the endpoint policy for the version, the SANs of each master)
//! stays in the role; this module only reads and computes.

use crate::error::{Error, Result};
use crate::kubeadm::KubeadmConfig;
use crate::kubeapi::client::{get_json, Transport};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::Path;

/// Where kubeadm keeps the ClusterConfiguration (`constants.KubeadmConfigConfigMap`,
/// `ClusterConfigurationConfigMapKey`).
pub const KUBEADM_CONFIGMAP: &str = "kube-system/kubeadm-config";
pub const KUBEADM_CONFIGMAP_KEY: &str = "ClusterConfiguration";

/// What was read.
pub struct ClusterFacts {
    /// `gitVersion` of the apiserver that answered (`v1.32.4`).
    pub server_version: String,
    /// Node name and `status.nodeInfo.kubeletVersion`, in the API's order.
    pub kubelets: Vec<(String, String)>,
    /// The uploaded ClusterConfiguration, or why it cannot be used (absent, not YAML, no
    /// ClusterConfiguration, an unsupported apiVersion).
    pub kubeadm: std::result::Result<KubeadmConfig, String>,
}

/// `major.minor` of a Kubernetes version text (`v1.32.4`, `v1.33.0-rc.1+k3s1`).
pub fn minor_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// GET `/version`, the Nodes and the kubeadm-config ConfigMap. A failed `/version` or Node list is
/// an error; a missing or unusable ClusterConfiguration is reported in [`ClusterFacts::kubeadm`]
/// (a cluster kubeadm did not make has none).
pub fn read(t: &dyn Transport) -> Result<ClusterFacts> {
    let version = get_json(t, "/version")?;
    let server_version = version["gitVersion"]
        .as_str()
        .ok_or_else(|| Error::remote(t.server(), "GET /version: the answer has no gitVersion"))?
        .to_string();
    let nodes = get_json(t, "/api/v1/nodes")?;
    let kubelets = nodes["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|n| {
                    let name = n["metadata"]["name"].as_str().unwrap_or("").to_string();
                    let v = n["status"]["nodeInfo"]["kubeletVersion"]
                        .as_str()
                        .unwrap_or("");
                    (name, v.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let (namespace, name) = KUBEADM_CONFIGMAP
        .split_once('/')
        .unwrap_or(("kube-system", ""));
    let kubeadm = match crate::kubeapi::configmap::get(t, namespace, name) {
        Ok(cm) => cluster_configuration(&cm),
        Err(e) => Err(format!("cannot read ConfigMap {KUBEADM_CONFIGMAP}: {e}")),
    };
    Ok(ClusterFacts {
        server_version,
        kubelets,
        kubeadm,
    })
}

/// The ClusterConfiguration of a kubeadm-config ConfigMap object, parsed as kubeadm_config parses
/// a file, or the reason it cannot be used, naming the ConfigMap, the key and the fix.
pub fn cluster_configuration(configmap: &Value) -> std::result::Result<KubeadmConfig, String> {
    let origin = format!("ConfigMap {KUBEADM_CONFIGMAP} key {KUBEADM_CONFIGMAP_KEY}");
    let fix = "fix it with `kubectl -n kube-system edit configmap kubeadm-config` (every later kubeadm upgrade and join reads it too), or restore it from a backup";
    let Some(text) = configmap["data"][KUBEADM_CONFIGMAP_KEY].as_str() else {
        return Err(format!("{origin} is missing: {fix}"));
    };
    KubeadmConfig::parse(text, Path::new(&origin)).map_err(|e| format!("{e}; {fix}"))
}

/// The first address of a service subnet (`10.96.0.0/12` -> `10.96.0.1`); of a dual-stack list,
/// the first subnet's, as kubeadm's `GetAPIServerVirtualIP` takes it.
pub fn first_service_ip(subnets: &str) -> std::result::Result<IpAddr, String> {
    let first = subnets.split(',').next().unwrap_or("").trim();
    let (addr, bits) = first
        .split_once('/')
        .ok_or_else(|| format!("networking.serviceSubnet {first:?} is not a CIDR"))?;
    let bits: u32 = bits
        .parse()
        .map_err(|_| format!("networking.serviceSubnet {first:?}: bad prefix length"))?;
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            Ok(IpAddr::V4((u32::from(a) & mask).wrapping_add(1).into()))
        }
        Ok(IpAddr::V6(a)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            Ok(IpAddr::V6((u128::from(a) & mask).wrapping_add(1).into()))
        }
        _ => Err(format!("networking.serviceSubnet {first:?} is not a CIDR")),
    }
}

/// The apiserver serving certificate's SANs kubeadm derives from `config` for every master, in
/// kubeadm's order (`GetAPIServerAltNames`, cmd/kubeadm/app/util/pkiutil/pki_helpers.go): the
/// `kubernetes` service names under `networking.dnsDomain`, the first service IP, the
/// controlPlaneEndpoint's host (its port dropped), then `apiServer.certSANs`. The two SANs of each
/// master itself (its node name, first, and its advertise address, after the service IP) are
/// added by the caller.
pub fn kubeadm_apiserver_sans(config: &KubeadmConfig) -> std::result::Result<Vec<String>, String> {
    let domain = config.dns_domain();
    let mut sans = vec![
        "kubernetes".to_string(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{domain}"),
        first_service_ip(&config.service_subnet())?.to_string(),
    ];
    if let Some(cpe) = config.control_plane_endpoint() {
        // kubeadm drops the port (bindPort when none is given)
        let endpoint = crate::endpoint::Endpoint::parse(&cpe, "controlPlaneEndpoint")
            .or_else(|_| {
                crate::endpoint::Endpoint::parse(&format!("{cpe}:6443"), "controlPlaneEndpoint")
            })
            .map_err(|e| format!("controlPlaneEndpoint {cpe:?}: {e}"))?;
        sans.push(endpoint.host().to_string());
    }
    sans.extend(config.cert_sans());
    let mut unique = Vec::new();
    for s in sans {
        if !unique.contains(&s) {
            unique.push(s);
        }
    }
    Ok(unique)
}

impl ClusterFacts {
    /// The `cluster_facts` result.
    pub fn to_json(&self) -> Value {
        let kubelets: serde_json::Map<String, Value> = self
            .kubelets
            .iter()
            .map(|(n, v)| (n.clone(), Value::from(v.clone())))
            .collect();
        let minor = |v: &str| minor_version(v).map(|(ma, mi)| json!({"major": ma, "minor": mi}));
        let kubeadm = match &self.kubeadm {
            Ok(c) => match kubeadm_apiserver_sans(c) {
                Ok(sans) => json!({
                    "api_version": c.api_version(),
                    "kubernetes_version": c.kubernetes_version(),
                    "control_plane_endpoint": c.control_plane_endpoint(),
                    "cluster_name": c.cluster_name(),
                    "service_subnet": c.service_subnet(),
                    "dns_domain": c.dns_domain(),
                    "cert_sans": c.cert_sans(),
                    "apiserver_sans": sans,
                }),
                Err(e) => {
                    json!({"error": format!("ConfigMap {KUBEADM_CONFIGMAP} key {KUBEADM_CONFIGMAP_KEY}: {e}")})
                }
            },
            Err(e) => json!({"error": e}),
        };
        json!({
            "server_version": self.server_version,
            "server_minor": minor(&self.server_version),
            "kubelet_versions": kubelets,
            "kubeadm": kubeadm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_as_major_and_minor() {
        assert_eq!(minor_version("v1.32.4"), Some((1, 32)));
        assert_eq!(minor_version("v1.33.0-rc.1+k3s1"), Some((1, 33)));
        assert_eq!(minor_version("1.9"), Some((1, 9)));
        assert_eq!(minor_version("latest"), None);
    }

    #[test]
    fn the_first_service_ip_is_the_subnets_first_address() {
        assert_eq!(
            first_service_ip("10.96.0.0/12").unwrap().to_string(),
            "10.96.0.1"
        );
        assert_eq!(
            first_service_ip("10.233.0.0/18").unwrap().to_string(),
            "10.233.0.1"
        );
        // dual stack: the first subnet, as kubeadm
        assert_eq!(
            first_service_ip("fd00:10:96::/112,10.96.0.0/16")
                .unwrap()
                .to_string(),
            "fd00:10:96::1"
        );
        // an address inside the subnet is masked first
        assert_eq!(
            first_service_ip("10.96.3.7/12").unwrap().to_string(),
            "10.96.0.1"
        );
        assert!(first_service_ip("10.96.0.0")
            .unwrap_err()
            .contains("not a CIDR"));
        assert!(first_service_ip("10.96.0.0/40").is_err());
    }

    fn config(text: &str) -> KubeadmConfig {
        KubeadmConfig::parse(text, Path::new("cm")).unwrap()
    }

    #[test]
    fn sans_are_kubeadms_in_kubeadms_order() {
        let c = config(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 172.30.0.11:6443\n\
             networking:\n  serviceSubnet: 10.96.0.0/12\n  dnsDomain: example.org\napiServer:\n  certSANs: [api.example.org, 10.96.0.1]\n",
        );
        assert_eq!(
            kubeadm_apiserver_sans(&c).unwrap(),
            [
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.example.org",
                "10.96.0.1",
                "172.30.0.11",
                "api.example.org"
            ]
        );
        // defaults when unset (init-defaults writes `apiServer: {}`), a DNS endpoint without port
        let c = config(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: cluster-endpoint\napiServer: {}\n",
        );
        assert_eq!(
            kubeadm_apiserver_sans(&c).unwrap(),
            [
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "10.96.0.1",
                "cluster-endpoint"
            ]
        );
    }

    #[test]
    fn an_unusable_configmap_names_the_configmap_the_key_and_the_fix() {
        let missing = cluster_configuration(&json!({"data": {"other": "x"}})).unwrap_err();
        assert!(
            missing.contains(
                "ConfigMap kube-system/kubeadm-config key ClusterConfiguration is missing"
            ),
            "{missing}"
        );
        assert!(
            missing.contains("kubectl -n kube-system edit configmap kubeadm-config"),
            "{missing}"
        );
        let broken =
            cluster_configuration(&json!({"data": {"ClusterConfiguration": "kind: [unclosed\n"}}))
                .unwrap_err();
        assert!(
            broken.contains("ConfigMap kube-system/kubeadm-config key ClusterConfiguration"),
            "{broken}"
        );
        let old = cluster_configuration(&json!({"data": {"ClusterConfiguration":
            "apiVersion: kubeadm.k8s.io/v1beta1\nkind: ClusterConfiguration\n"}}))
        .unwrap_err();
        assert!(old.contains("v1beta1"), "{old}");
        let ok = cluster_configuration(&json!({"data": {"ClusterConfiguration":
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.4\n"}}))
        .unwrap();
        assert_eq!(ok.api_version(), "kubeadm.k8s.io/v1beta4");
    }
}
