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
//! - [`plan_endpoint_and_sans`]`(config, endpoint, sans)`: the pure decision, with the
//!   reasons for each change and the new text (`None` when nothing changes);

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::pki::san::San;
use crate::yamledit::{self, Seg, YamlText};
use serde_yaml_ng::Value;
use std::path::Path;

/// The kubeadm API versions this module edits.
pub const SUPPORTED_API_VERSIONS: [&str; 2] = ["kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"];

/// A parsed kubeadm configuration: the text parsed once, and where its documents are.
#[derive(Debug, Clone)]
pub struct KubeadmConfig {
    yaml: YamlText,
    cluster_doc: usize,
    init_doc: Option<usize>,
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
        KubeadmConfig::from_yaml(YamlText::parse(text, origin)?)
    }

    /// Find the ClusterConfiguration (and InitConfiguration) among the documents of `yaml`.
    pub fn from_yaml(yaml: YamlText) -> Result<KubeadmConfig> {
        let origin = yaml.origin();
        let kind_of = |v: &Value| str_at(v, &["kind"]);
        let docs = yaml.docs();
        let cluster_doc = docs
            .iter()
            .position(|(_, v)| kind_of(v).as_deref() == Some("ClusterConfiguration"))
            .ok_or_else(|| {
                Error::content(
                    origin,
                    "has no document with `kind: ClusterConfiguration`; point `path` at the kubeadm config kubespray writes (/etc/kubernetes/kubeadm-config.yaml)",
                )
            })?;
        let api_version = str_at(&docs[cluster_doc].1, &["apiVersion"]).unwrap_or_default();
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
        let init_doc = docs
            .iter()
            .position(|(_, v)| kind_of(v).as_deref() == Some("InitConfiguration"));
        Ok(KubeadmConfig {
            yaml,
            cluster_doc,
            init_doc,
        })
    }

    /// The ClusterConfiguration document.
    fn cluster(&self) -> &Value {
        &self.yaml.docs()[self.cluster_doc].1
    }

    /// The InitConfiguration document, when there is one.
    fn init(&self) -> Option<&Value> {
        self.init_doc.map(|i| &self.yaml.docs()[i].1)
    }

    pub fn yaml(&self) -> &YamlText {
        &self.yaml
    }

    pub fn origin(&self) -> &Path {
        self.yaml.origin()
    }

    /// Index of the ClusterConfiguration among the file's documents (see [`yamledit::documents`]).
    pub fn cluster_doc(&self) -> usize {
        self.cluster_doc
    }

    pub fn api_version(&self) -> String {
        str_at(self.cluster(), &["apiVersion"]).unwrap_or_default()
    }

    pub fn control_plane_endpoint(&self) -> Option<String> {
        str_at(self.cluster(), &["controlPlaneEndpoint"]).filter(|s| !s.is_empty())
    }

    pub fn cert_sans(&self) -> Vec<String> {
        let path = [Seg::key("apiServer"), Seg::key("certSANs")];
        match yamledit::get(self.cluster(), &path) {
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

    /// `kubernetesVersion` (`v1.32.4`), when set.
    pub fn kubernetes_version(&self) -> Option<String> {
        str_at(self.cluster(), &["kubernetesVersion"]).filter(|s| !s.is_empty())
    }

    /// `clusterName`, kubeadm's default `kubernetes` when unset.
    pub fn cluster_name(&self) -> String {
        str_at(self.cluster(), &["clusterName"]).unwrap_or_else(|| "kubernetes".into())
    }

    /// `networking.serviceSubnet`, kubeadm's default `10.96.0.0/12` when unset.
    pub fn service_subnet(&self) -> String {
        str_at(self.cluster(), &["networking", "serviceSubnet"])
            .unwrap_or_else(|| "10.96.0.0/12".into())
    }

    /// `networking.dnsDomain`, kubeadm's default `cluster.local` when unset.
    pub fn dns_domain(&self) -> String {
        str_at(self.cluster(), &["networking", "dnsDomain"])
            .unwrap_or_else(|| "cluster.local".into())
    }

    /// InitConfiguration `localAPIEndpoint.advertiseAddress` (absent in the ConfigMap's copy).
    pub fn advertise_address(&self) -> Option<String> {
        self.init()
            .as_ref()
            .and_then(|v| str_at(v, &["localAPIEndpoint", "advertiseAddress"]))
    }

    /// InitConfiguration `nodeRegistration.name`.
    pub fn node_name(&self) -> Option<String> {
        self.init()
            .as_ref()
            .and_then(|v| str_at(v, &["nodeRegistration", "name"]))
    }
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
/// `apiServer.certSANs` contain every one of `sans` (missing ones appended, existing kept). The
/// config was parsed once; each edit's result is parsed once, by its re-parse check.
pub fn plan_endpoint_and_sans(
    config: &KubeadmConfig,
    endpoint: &Endpoint,
    sans: &[San],
) -> Result<EndpointPlan> {
    let wanted_endpoint = endpoint.to_string();
    let endpoint_before = config.control_plane_endpoint();
    let sans_before = config.cert_sans();
    // What is there, compared in canonical form (an entry that is no valid SAN as written).
    let present: Vec<String> = sans_before
        .iter()
        .map(|s| San::parse(s).map_or_else(|_| s.clone(), |san| san.canonical()))
        .collect();
    let mut missing: Vec<String> = Vec::new();
    for san in sans {
        let n = san.canonical();
        if !present.contains(&n) && !missing.contains(&n) {
            missing.push(n);
        }
    }
    let mut reasons = Vec::new();
    let doc = config.cluster_doc();
    let mut current: Option<YamlText> = None;
    if endpoint_before.as_deref() != Some(wanted_endpoint.as_str()) {
        reasons.push(match &endpoint_before {
            Some(old) => format!("controlPlaneEndpoint is {old}, wanted {wanted_endpoint}"),
            None => format!("controlPlaneEndpoint is not set, wanted {wanted_endpoint}"),
        });
        let path = [Seg::key("controlPlaneEndpoint")];
        let input = current.as_ref().unwrap_or(config.yaml());
        if let Some(t) = yamledit::set_scalar(input, doc, &path, &wanted_endpoint)? {
            current = Some(t);
        }
    }
    if !missing.is_empty() {
        reasons.push(format!("apiServer.certSANs lacks {}", missing.join(", ")));
        let path = [Seg::key("apiServer"), Seg::key("certSANs")];
        let input = current.as_ref().unwrap_or(config.yaml());
        if let Some(t) = yamledit::ensure_list_items(input, doc, &path, &missing)? {
            current = Some(t);
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
            Some(current.map_or_else(|| config.yaml().text().to_string(), YamlText::into_text))
        },
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sans(items: &[&str]) -> Vec<San> {
        items.iter().map(|s| San::parse(s).unwrap()).collect()
    }

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
        let config = KubeadmConfig::parse(V3, Path::new("k.yaml")).unwrap();
        let plan =
            plan_endpoint_and_sans(&config, &e, &sans(&["10.0.0.10", "KUBERNETES"])).unwrap();
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
        let config = KubeadmConfig::parse(&t, Path::new("k.yaml")).unwrap();
        let again = plan_endpoint_and_sans(&config, &e, &sans(&["10.0.0.10"])).unwrap();
        assert!(again.new_text.is_none() && again.reasons.is_empty());
    }

    /// Parse once: the file once, then each of the two edits' results once (their re-parse
    /// checks), where the text-passing version parsed it 14 times (seven calls of two parses).
    #[test]
    fn a_plan_parses_the_file_once_and_each_edit_once() {
        use crate::yamledit::documents_parses;
        let e = Endpoint::parse("10.0.0.10:6443", "x").unwrap();
        let before = documents_parses();
        let config = KubeadmConfig::parse(V3, Path::new("k.yaml")).unwrap();
        let plan = plan_endpoint_and_sans(&config, &e, &sans(&["10.0.0.10"])).unwrap();
        assert_eq!(plan.reasons.len(), 2);
        assert_eq!(documents_parses() - before, 3);
    }

    /// One SAN type: a bracketed IPv6 SAN (as `apiserver_cert` takes it) goes into certSANs in
    /// kubeadm's form, and an IPv4-mapped or upper-case spelling of a present SAN is no change.
    #[test]
    fn sans_are_compared_and_written_in_canonical_form() {
        let e = Endpoint::parse("10.0.0.11:6443", "x").unwrap();
        let config = KubeadmConfig::parse(V3, Path::new("k.yaml")).unwrap();
        let plan =
            plan_endpoint_and_sans(&config, &e, &sans(&["[FD00::10]", "Kubernetes."])).unwrap();
        assert_eq!(plan.reasons, vec!["apiServer.certSANs lacks fd00::10"]);
        assert!(plan
            .new_text
            .unwrap()
            .contains("  - 10.0.0.11\n  - fd00::10\n"));
        let plan = plan_endpoint_and_sans(&config, &e, &sans(&["::ffff:10.0.0.11"])).unwrap();
        assert!(plan.new_text.is_none(), "{:?}", plan.reasons);
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
