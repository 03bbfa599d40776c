//! `kubeha.control_plane.control_plane_info`: read-only facts of a control-plane host (kubeconfig
//! servers, kubeadm config, apiserver certificate, static pods, local proxy, etcd mode), gathered
//! by [`crate::info`], and with `masters` the pins: every place that names a master where the
//! endpoint belongs ([`crate::info::pins`]); with `cluster_kubeconfig` the cluster's facts (versions,
//! kubeadm's ClusterConfiguration: [`crate::info::cluster_facts`]) and, with `masters`, the cluster's
//! objects that name a master ([`crate::info::cluster_pins`]), both through the API; with `disk_paths` the room for kubeha's copies
//! ([`crate::info::disk`]); with `lb_survey_connections` / `lb_survey_backends` the certificates
//! presented through the endpoint (or `lb_survey_address` on its port) and by each master directly
//! ([`crate::info::lb_survey`]); with `endpoint` a name, how this host resolves it.
//! Always `changed: false`. Docs: the sidecar `control_plane_info.yml`.

use crate::endpoint::{Endpoint, Host};
use crate::error::{Error, Result};
use crate::info::cluster_facts;
use crate::info::cluster_pins;
use crate::info::disk;
use crate::info::lb_survey::{self, Backend, Survey};
use crate::info::pins::{self, Masters, Pin, ScanPaths};
use crate::info::{gather, InfoOptions};
use crate::kubeapi::client::ApiServer;
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::protocol::{Module, ModuleOutput};
use serde_json::{Map, Value};

pub struct ControlPlaneInfo {
    paths: InfoOptions,
    /// The pin scan, when `masters` is given.
    pin_scan: Option<PinScan>,
    /// Directories whose free space, writability and file sizes are reported.
    disk_paths: Vec<std::path::PathBuf>,
    /// Which apiservers answer behind the endpoint, when asked for.
    survey: Option<Survey>,
    /// The endpoint, when given: a name is looked up as this host's clients look it up.
    endpoint: Option<Endpoint>,
    /// Read the cluster's facts (versions, kubeadm's ClusterConfiguration) with this kubeconfig,
    /// and, with a pin scan, the cluster's objects too.
    cluster_kubeconfig: Option<std::path::PathBuf>,
}

struct PinScan {
    endpoint: Endpoint,
    masters: Masters,
    this_host: Masters,
    extra_kubeconfigs: Vec<std::path::PathBuf>,
}

/// How long one API request of the cluster scan may take.
const CLUSTER_SCAN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The facts, and one warning per unreadable or odd file.
pub struct Facts {
    fields: Map<String, Value>,
    warnings: Vec<String>,
}

impl Module for ControlPlaneInfo {
    const SPEC: &'static ModuleSpec = &ModuleSpec {
        name: "control_plane_info",
        options: &[
            OptionSpec::new(
                "kube_config_dir",
                Kind::Path,
                "The Kubernetes configuration directory. Defaults to O(host_root)C(/etc/kubernetes).",
            ),
            OptionSpec::new(
                "home_kubeconfig",
                Kind::Path,
                "The root user's kubeconfig. Defaults to O(host_root)C(/root/.kube/config).",
            ),
            OptionSpec::new(
                "host_root",
                Kind::Path,
                "Prefix of every host path looked at (to inspect a mounted root file system).",
            )
            .default(Default::Str("/")),
            OptionSpec::new(
                "masters",
                Kind::StrList,
                "Scan for pins: the control-plane hosts' addresses and names, each C(name=address) or a bare address or name.",
            )
            .default(Default::EmptyList),
            OptionSpec::new(
                "endpoint",
                Kind::Str,
                "The control-plane endpoint C(host:port): the one the pins should name instead, and the one O(lb_survey_connections) connects through; required with either. A name is looked up as the host's clients look it up (RV(endpoint_resolution)).",
            ),
            OptionSpec::new(
                "this_host",
                Kind::StrList,
                "The addresses and names of the host scanned, so that a master's own kubeconfigs on its local apiserver by policy are told apart.",
            )
            .default(Default::EmptyList),
            OptionSpec::new(
                "extra_kubeconfigs",
                Kind::StrList,
                "More kubeconfigs to scan, such as kubespray's C(artifacts/admin.conf) on the controller.",
            )
            .default(Default::EmptyList),
            OptionSpec::new(
                "cluster_kubeconfig",
                Kind::Path,
                "Read the cluster's facts through the API with this kubeconfig (a cluster admin's, TLS verified against its CA; GET only) under RV(cluster_facts) - the apiserver's version, each Node's kubelet version, kubeadm's ClusterConfiguration from C(kube-system/kubeadm-config) and the apiserver SANs kubeadm derives from it. With O(masters), also scan the cluster for pins - DaemonSets, Deployments and StatefulSets whose pod template names a master (C(KUBERNETES_SERVICE_HOST), an https URL in the env, C(--master)/C(--server)), and ConfigMaps that do (kube-proxy, kubeadm-config, cluster-info, Calico's C(kubernetes-services-endpoint), Cilium's C(k8s-api-server-urls), any kubeconfig). Reported under RV(cluster_pins); a failed read is a warning and RV(cluster_pin_scan_error). Run it on one host.",
            ),
            OptionSpec::new(
                "disk_paths",
                Kind::StrList,
                "Directories (absolute) to report under RV(disk), each with the nearest existing one, its free space, whether it is writable, and the disk usage of the files in it two levels deep.",
            )
            .default(Default::EmptyList),
            OptionSpec::new(
                "lb_survey_connections",
                Kind::Int { min: 0, max: 1000 },
                "TLS connections to open through O(endpoint), each reporting under RV(lb_survey.through_endpoint) the SHA-256 fingerprint of the certificate presented (the chain verified against O(ca_cert_path), not the name, which the certificates may not carry yet); 0 opens none.",
            )
            .default(Default::Int(0)),
            OptionSpec::new(
                "lb_survey_address",
                Kind::Str,
                "Open the O(lb_survey_connections) to this address (the load balancer's) on O(endpoint)'s port instead of to O(endpoint)'s name: for a name that still resolves to a master until it is repointed to the load balancer (the role's kubeha_endpoint_hosts_address). RV(endpoint_resolution) still looks the name up.",
            ),
            OptionSpec::new(
                "lb_survey_backends",
                Kind::StrList,
                "The masters' apiservers to connect to directly, each C(name=address:port); each certificate is verified against O(ca_cert_path) for that address and its fingerprint reported under RV(lb_survey.direct).",
            )
            .default(Default::EmptyList),
            OptionSpec::new(
                "ca_cert_path",
                Kind::Path,
                "The cluster CA the survey verifies every certificate against.",
            )
            .default(Default::Str("/etc/kubernetes/ssl/ca.crt")),
        ],
    };
    type Plan = Facts;
    type Applied = ();

    fn from_options(o: &Options) -> Result<Self> {
        let host_root = o.path("host_root")?;
        let kube_config_dir = o
            .opt_path("kube_config_dir")?
            .unwrap_or_else(|| host_root.join("etc/kubernetes"));
        let home_kubeconfig = o
            .opt_path("home_kubeconfig")?
            .unwrap_or_else(|| host_root.join("root/.kube/config"));
        if !kube_config_dir.is_dir() {
            return Err(Error::option(
                "kube_config_dir",
                format!("{} is not a directory; set it to the directory holding admin.conf and kubeadm-config.yaml (kubespray: /etc/kubernetes)", kube_config_dir.display()),
            ));
        }
        let masters = Masters::parse(&o.list("masters")?, "masters")?;
        let endpoint = o
            .opt_string("endpoint")?
            .map(|e| Endpoint::parse(&e, "endpoint"))
            .transpose()?;
        let connections = u32::try_from(o.int("lb_survey_connections")?).unwrap_or(0);
        let backends = o
            .list("lb_survey_backends")?
            .iter()
            .map(|b| Backend::parse(b, "lb_survey_backends"))
            .collect::<Result<Vec<_>>>()?;
        if connections > 0 && endpoint.is_none() {
            return Err(Error::option(
                "endpoint",
                "is required with lb_survey_connections: give the endpoint to connect through (host:port)",
            ));
        }
        let through = match (o.opt_string("lb_survey_address")?, &endpoint) {
            (None, _) => endpoint.clone(),
            (Some(_), None) => {
                return Err(Error::option(
                    "endpoint",
                    "is required with lb_survey_address: give the endpoint whose port the survey connects to (host:port)",
                ))
            }
            (Some(address), Some(e)) => Some(e.with_host(Host::parse(address.trim(), "lb_survey_address")?)),
        };
        let ca_cert_path = o.path("ca_cert_path")?;
        let survey = (connections > 0 || !backends.is_empty()).then(|| {
            let tls = crate::net::tls::ca_certs_from_file(&ca_cert_path)
                .map(crate::net::tls::TlsConfig::with_ca)
                .map_err(|e| format!("ca_cert_path: {e}"));
            Survey {
                endpoint: through,
                connections,
                backends,
                tls,
            }
        });
        let pin_scan = match (masters.is_empty(), endpoint.clone()) {
            (true, _) => None,
            (false, None) => {
                return Err(Error::option(
                    "endpoint",
                    "is required with masters: give the endpoint the pins should name instead (host:port)",
                ))
            }
            (false, Some(endpoint)) => Some(PinScan {
                endpoint,
                masters,
                this_host: Masters::parse(&o.list("this_host")?, "this_host")?,
                extra_kubeconfigs: o
                    .list("extra_kubeconfigs")?
                    .into_iter()
                    .map(std::path::PathBuf::from)
                    .collect(),
            }),
        };
        let cluster_kubeconfig = o.opt_path("cluster_kubeconfig")?;
        let disk_paths: Vec<std::path::PathBuf> = o
            .list("disk_paths")?
            .into_iter()
            .map(std::path::PathBuf::from)
            .collect();
        if let Some(bad) = disk_paths.iter().find(|p| !p.is_absolute()) {
            return Err(Error::option(
                "disk_paths",
                format!("{} is not an absolute path", bad.display()),
            ));
        }
        Ok(ControlPlaneInfo {
            cluster_kubeconfig,
            disk_paths,
            survey,
            endpoint,
            paths: InfoOptions {
                kube_config_dir,
                home_kubeconfig,
                host_root,
            },
            pin_scan,
        })
    }

    fn plan(&self) -> Result<Facts> {
        let mut warnings = Vec::new();
        let mut fields = gather(&self.paths, &mut warnings);
        // One client for both reads of the cluster (its kubeconfig loaded once); a kubeconfig that
        // cannot be used is each read's error, as an API that does not answer.
        let api = self.cluster_kubeconfig.as_ref().map(|kubeconfig| {
            ApiServer::from_kubeconfig(kubeconfig, None, CLUSTER_SCAN_TIMEOUT)
                .map_err(|e| e.to_string())
        });
        if let Some(p) = &self.pin_scan {
            let paths = ScanPaths {
                host_root: self.paths.host_root.clone(),
                kube_config_dir: self.paths.kube_config_dir.clone(),
                extra_kubeconfigs: p.extra_kubeconfigs.clone(),
            };
            let scan = pins::scan(&paths, &p.masters, &p.endpoint, &p.this_host);
            fields.insert(
                "pins".into(),
                Value::Array(scan.pins.iter().map(Pin::to_json).collect()),
            );
            fields.insert("pin_scan_files".into(), Value::from(scan.files));
            let unreadable: Vec<Value> = scan
                .unreadable
                .iter()
                .map(|(path, why)| serde_json::json!({"path": path, "reason": why}))
                .collect();
            fields.insert("pin_scan_unreadable".into(), Value::Array(unreadable));
            warnings.extend(scan.warnings);
            if let Some(api) = &api {
                let read = api
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|api| cluster_pins::read(api).map_err(|e| e.to_string()));
                match read {
                    Ok((objects, read_warnings)) => {
                        let scan = cluster_pins::scan(&objects, &p.masters, &p.endpoint);
                        fields.insert(
                            "cluster_pins".into(),
                            Value::Array(scan.pins.iter().map(Pin::to_json).collect()),
                        );
                        fields.insert("cluster_pin_scan_objects".into(), Value::from(scan.files));
                        let cni = cluster_pins::detect_cni(&objects)
                            .map(|(name, id)| serde_json::json!({"name": name, "agent": id}));
                        fields.insert("cluster_cni".into(), cni.unwrap_or(Value::Null));
                        warnings.extend(read_warnings);
                    }
                    Err(e) => {
                        let text = format!("cluster pin scan: {e}");
                        warnings.push(text.clone());
                        fields.insert("cluster_pin_scan_error".into(), Value::from(text));
                    }
                }
            }
        }
        if let Some(api) = &api {
            let read = api
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|api| cluster_facts::read(api).map_err(|e| e.to_string()));
            let facts = match read {
                Ok(facts) => facts.to_json(),
                Err(e) => {
                    let text = format!("cluster facts: {e}");
                    warnings.push(text.clone());
                    serde_json::json!({"error": text})
                }
            };
            fields.insert("cluster_facts".into(), facts);
        }
        if !self.disk_paths.is_empty() {
            let mut space = serde_json::Map::new();
            for path in &self.disk_paths {
                let fact = match disk::look(path) {
                    Ok(d) => d.to_json(),
                    Err(e) => {
                        warnings.push(e.clone());
                        serde_json::json!({"error": e})
                    }
                };
                space.insert(path.display().to_string(), fact);
            }
            fields.insert("disk".into(), Value::Object(space));
        }
        if let Some(resolved) = self.endpoint.as_ref().and_then(lb_survey::resolution) {
            fields.insert("endpoint_resolution".into(), resolved);
        }
        if let Some(survey) = &self.survey {
            fields.insert("lb_survey".into(), survey.run());
        }
        Ok(Facts { fields, warnings })
    }

    /// Nothing to carry out: the module only reads.
    fn apply(&self, _facts: &Facts, _check_mode: bool) -> Result<()> {
        Ok(())
    }

    fn report(&self, facts: Facts, _applied: (), _check_mode: bool) -> ModuleOutput {
        let mut out = ModuleOutput::new(
            false,
            format!(
                "read the control plane facts under {}",
                self.paths.kube_config_dir.display()
            ),
        );
        out.fields = facts.fields;
        out.warnings = facts.warnings;
        out
    }
}
