//! kubeadm configuration files (`/etc/kubernetes/kubeadm-config.yaml`, and the
//! `ClusterConfiguration` text kept in the `kube-system/kubeadm-config` ConfigMap): read the facts
//! the conversion needs and set `controlPlaneEndpoint` and `apiServer.certSANs` as a targeted
//! text edit (see [`crate::yamledit`]) that keeps every other byte.
//!
//! Only `kubeadm.k8s.io/v1beta3` and `v1beta4` are accepted: both keep `controlPlaneEndpoint` and
//! `apiServer.certSANs` where this module edits them; other versions are refused.
//!
//! API:
//! - [`KubeadmConfig::load`]`(path)`, [`KubeadmConfig::parse`]`(text, origin)`: finds the
//!   `kind: ClusterConfiguration` document (and `InitConfiguration`, when present);
//! - facts: [`KubeadmConfig::api_version`], [`KubeadmConfig::control_plane_endpoint`],
//!   [`KubeadmConfig::cert_sans`], [`KubeadmConfig::cluster_name`],
//!   [`KubeadmConfig::service_subnet`], [`KubeadmConfig::dns_domain`],
//!   [`KubeadmConfig::advertise_address`], [`KubeadmConfig::node_name`];
//! - [`plan_endpoint_and_sans`]`(text, origin, endpoint, sans)`: the pure decision, with the
//!   reasons for each change and the new text (`None` when nothing changes);
//! - [`normalize_san`]: a SAN as it is compared and written (IPs canonical, names lowercase).

use crate::endpoint::{is_dns_name, Endpoint};
use crate::error::{Error, Result};
use crate::yamledit::{self, Seg};
use serde_yaml_ng::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The kubeadm API versions this module edits.
pub const SUPPORTED_API_VERSIONS: [&str; 2] = ["kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"];

/// A parsed kubeadm configuration.
#[derive(Debug, Clone)]
pub struct KubeadmConfig {
    origin: PathBuf,
    cluster_doc: usize,
    cluster: Value,
    init: Option<Value>,
}

fn str_at(value: &Value, path: &[&str]) -> Option<String> {
    let segs: Vec<Seg> = path.iter().map(|k| Seg::key(k)).collect();
    match yamledit::get(value, &segs)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => serde_yaml_ng::to_string(other)
            .ok()
            .map(|s| s.trim().to_string()),
    }
}

impl KubeadmConfig {
    pub fn load(path: &Path) -> Result<KubeadmConfig> {
        let text = crate::fsio::read_text(path)?;
        KubeadmConfig::parse(&text, path)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<KubeadmConfig> {
        let docs = yamledit::parse_documents(text, origin)?;
        let kind_of = |v: &Value| str_at(v, &["kind"]);
        let cluster_doc = docs
            .iter()
            .position(|(_, v)| kind_of(v).as_deref() == Some("ClusterConfiguration"))
            .ok_or_else(|| {
                Error::content(
                    origin,
                    "has no document with `kind: ClusterConfiguration`; point `path` at the kubeadm config kubespray writes (/etc/kubernetes/kubeadm-config.yaml)",
                )
            })?;
        let cluster = docs[cluster_doc].1.clone();
        let api_version = str_at(&cluster, &["apiVersion"]).unwrap_or_default();
        if !SUPPORTED_API_VERSIONS.contains(&api_version.as_str()) {
            return Err(Error::content(
                origin,
                format!(
                    "ClusterConfiguration apiVersion {api_version:?} is not supported (supported: {}); migrate the file with `kubeadm config migrate --old-config {} --new-config <new file>` first",
                    SUPPORTED_API_VERSIONS.join(", "),
                    origin.display()
                ),
            ));
        }
        let init = docs
            .iter()
            .find(|(_, v)| kind_of(v).as_deref() == Some("InitConfiguration"))
            .map(|(_, v)| v.clone());
        Ok(KubeadmConfig {
            origin: origin.to_path_buf(),
            cluster_doc,
            cluster,
            init,
        })
    }

    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Index of the ClusterConfiguration among the file's documents (see [`yamledit::documents`]).
    pub fn cluster_doc(&self) -> usize {
        self.cluster_doc
    }

    pub fn api_version(&self) -> String {
        str_at(&self.cluster, &["apiVersion"]).unwrap_or_default()
    }

    pub fn control_plane_endpoint(&self) -> Option<String> {
        str_at(&self.cluster, &["controlPlaneEndpoint"]).filter(|s| !s.is_empty())
    }

    pub fn cert_sans(&self) -> Vec<String> {
        let path = [Seg::key("apiServer"), Seg::key("certSANs")];
        match yamledit::get(&self.cluster, &path) {
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => serde_yaml_ng::to_string(other)
                        .ok()
                        .map(|s| s.trim().to_string()),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `clusterName`, kubeadm's default `kubernetes` when unset.
    pub fn cluster_name(&self) -> String {
        str_at(&self.cluster, &["clusterName"]).unwrap_or_else(|| "kubernetes".into())
    }

    /// `networking.serviceSubnet`, kubeadm's default `10.96.0.0/12` when unset.
    pub fn service_subnet(&self) -> String {
        str_at(&self.cluster, &["networking", "serviceSubnet"])
            .unwrap_or_else(|| "10.96.0.0/12".into())
    }

    /// `networking.dnsDomain`, kubeadm's default `cluster.local` when unset.
    pub fn dns_domain(&self) -> String {
        str_at(&self.cluster, &["networking", "dnsDomain"])
            .unwrap_or_else(|| "cluster.local".into())
    }

    /// InitConfiguration `localAPIEndpoint.advertiseAddress` (absent in the ConfigMap's copy).
    pub fn advertise_address(&self) -> Option<String> {
        self.init
            .as_ref()
            .and_then(|v| str_at(v, &["localAPIEndpoint", "advertiseAddress"]))
    }

    /// InitConfiguration `nodeRegistration.name`.
    pub fn node_name(&self) -> Option<String> {
        self.init
            .as_ref()
            .and_then(|v| str_at(v, &["nodeRegistration", "name"]))
    }
}

/// A SAN as compared and written: IP addresses in canonical form, DNS names in lowercase
/// (`*.` wildcards allowed). `option` names the option in errors.
pub fn normalize_san(san: &str, option: &str) -> Result<String> {
    let san = san.trim();
    if let Ok(ip) = san.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let name = san.strip_prefix("*.").unwrap_or(san);
    if is_dns_name(name) {
        return Ok(san.to_ascii_lowercase());
    }
    if san.starts_with('[') || san.contains(':') {
        return Err(Error::option(
            option,
            format!("{san:?} is not a valid SAN: write IPv6 addresses without brackets and without a port (e.g. fd00::1), names without a port"),
        ));
    }
    Err(Error::option(
        option,
        format!("{san:?} is neither an IP address nor a valid DNS name"),
    ))
}

/// The decision for a kubeadm config: what is there, what should be, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPlan {
    pub api_version: String,
    pub endpoint_before: Option<String>,
    pub endpoint_after: String,
    pub sans_before: Vec<String>,
    pub sans_after: Vec<String>,
    /// One sentence per change; empty when nothing changes.
    pub reasons: Vec<String>,
    /// The new text, `None` when nothing changes.
    pub new_text: Option<String>,
}

/// Decide (pure): set ClusterConfiguration `controlPlaneEndpoint` to `endpoint` and make
/// `apiServer.certSANs` contain every one of `sans` (missing ones appended, existing kept).
pub fn plan_endpoint_and_sans(
    text: &str,
    origin: &Path,
    endpoint: &Endpoint,
    sans: &[String],
) -> Result<EndpointPlan> {
    let config = KubeadmConfig::parse(text, origin)?;
    let wanted_endpoint = endpoint.to_string();
    let endpoint_before = config.control_plane_endpoint();
    let sans_before = config.cert_sans();
    let present: Vec<String> = sans_before
        .iter()
        .map(|s| normalize_san(s, "cert_sans").unwrap_or_else(|_| s.clone()))
        .collect();
    let mut missing: Vec<String> = Vec::new();
    for san in sans {
        let n = normalize_san(san, "cert_sans")?;
        if !present.contains(&n) && !missing.contains(&n) {
            missing.push(n);
        }
    }
    let mut reasons = Vec::new();
    let doc = config.cluster_doc();
    let mut current = text.to_string();
    if endpoint_before.as_deref() != Some(wanted_endpoint.as_str()) {
        reasons.push(match &endpoint_before {
            Some(old) => format!("controlPlaneEndpoint is {old}, wanted {wanted_endpoint}"),
            None => format!("controlPlaneEndpoint is not set, wanted {wanted_endpoint}"),
        });
        let path = [Seg::key("controlPlaneEndpoint")];
        if let Some(t) = yamledit::set_scalar(&current, origin, doc, &path, &wanted_endpoint)? {
            current = t;
        }
    }
    if !missing.is_empty() {
        reasons.push(format!("apiServer.certSANs lacks {}", missing.join(", ")));
        let path = [Seg::key("apiServer"), Seg::key("certSANs")];
        if let Some(t) = yamledit::ensure_list_items(&current, origin, doc, &path, &missing)? {
            current = t;
        }
    }
    let mut sans_after = sans_before.clone();
    sans_after.extend(missing);
    Ok(EndpointPlan {
        api_version: config.api_version(),
        endpoint_before,
        endpoint_after: wanted_endpoint,
        sans_before,
        sans_after,
        new_text: if reasons.is_empty() {
            None
        } else {
            Some(current)
        },
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.11\n  bindPort: 6443\nnodeRegistration:\n  name: master1\n---\napiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nclusterName: cluster.local\ncontrolPlaneEndpoint: 10.0.0.11:6443\nnetworking:\n  serviceSubnet: 10.233.0.0/18\napiServer:\n  certSANs:\n  - kubernetes\n  - 10.0.0.11\n---\nkind: KubeletConfiguration\n";

    #[test]
    fn facts_are_read() {
        let c = KubeadmConfig::parse(V3, Path::new("k.yaml")).unwrap();
        assert_eq!(c.advertise_address().as_deref(), Some("10.0.0.11"));
        assert_eq!(
            c.control_plane_endpoint().as_deref(),
            Some("10.0.0.11:6443")
        );
        assert_eq!(c.cert_sans(), vec!["kubernetes", "10.0.0.11"]);
        assert_eq!(c.service_subnet(), "10.233.0.0/18");
        assert_eq!(c.dns_domain(), "cluster.local");
        assert_eq!(c.node_name().as_deref(), Some("master1"));
    }

    #[test]
    fn plan_changes_only_the_two_fields() {
        let e = Endpoint::parse("10.0.0.10:6443", "x").unwrap();
        let plan = plan_endpoint_and_sans(
            V3,
            Path::new("k.yaml"),
            &e,
            &["10.0.0.10".into(), "KUBERNETES".into()],
        )
        .unwrap();
        assert_eq!(plan.reasons.len(), 2, "{:?}", plan.reasons);
        let t = plan.new_text.unwrap();
        assert_eq!(
            t,
            V3.replace(
                "controlPlaneEndpoint: 10.0.0.11:6443",
                "controlPlaneEndpoint: 10.0.0.10:6443"
            )
            .replace("  - 10.0.0.11\n", "  - 10.0.0.11\n  - 10.0.0.10\n")
        );
        // applied, the plan finds nothing more to do
        let again =
            plan_endpoint_and_sans(&t, Path::new("k.yaml"), &e, &["10.0.0.10".into()]).unwrap();
        assert!(again.new_text.is_none() && again.reasons.is_empty());
    }

    #[test]
    fn other_api_versions_are_refused() {
        let old = V3.replace(
            "kubeadm.k8s.io/v1beta3\nkind: Cluster",
            "kubeadm.k8s.io/v1beta2\nkind: Cluster",
        );
        let e = KubeadmConfig::parse(&old, Path::new("/etc/kubernetes/kubeadm-config.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("v1beta2")
                && e.contains("kubeadm config migrate")
                && e.contains("/etc/kubernetes/kubeadm-config.yaml"),
            "{e}"
        );
    }
}
