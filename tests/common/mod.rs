//! Shared harness of the integration tests: run a module binary exactly as Ansible does
//! (argv[1] = a JSON arguments file holding the options plus `_ansible_*` keys), record every
//! output, build kubespray-like fixture trees (kubeadm-like CA and certs, kubeadm-format
//! kubeconfigs, v1beta3/v1beta4 kubeadm configs, manifests), snapshot trees and diff lines.
//!
//! API (each test file does `mod common;`):
//! - [`bin_path`]`(name)`: the built binary of a module (Cargo builds every binary of the package
//!   before integration tests run);
//! - [`Mode`] (`NORMAL`, `CHECK`, `DIFF`, `CHECK_DIFF`), [`run_module`]`(name, options, mode)` ->
//!   [`Outcome`] (`json`, `stdout`, `stderr`); every run is also written to
//!   [`outputs_dir`] (`target/tmp/module-outputs/`) so a test can scan all outputs for secrets;
//! - [`Pki`] (`Pki::new()`: CA RSA-2048, apiserver pair with kubeadm's SANs, client certs) and
//!   [`Fixture::kubespray`]`(layout)`: a tree under a temp dir with `etc/kubernetes/...`,
//!   `root/.kube/config`, `var/lib/kubelet/pki/...`, `etc/etcd.env`, ... and the list of
//!   [`Fixture::secrets`] (base64 lines and PEM body lines of every key and client cert, tokens);
//! - [`snapshot`]`(dir)` (`BTreeMap<path, Entry>`: bytes + mode, symlink targets),
//!   [`line_changes`]`(before, after)` -> (removed lines, added lines);
//! - [`assert_no_secrets`]`(text, secrets)`.
#![allow(dead_code)]

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509NameBuilder, X509};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The built binary of module `name` (next to the test executable's `deps/` directory).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    dir.join(name)
}

/// Every module output of the suite lands here, one file per run.
pub fn outputs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("module-outputs")
}

/// Ansible's flags for one run.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    pub check: bool,
    pub diff: bool,
}

impl Mode {
    pub const NORMAL: Mode = Mode {
        check: false,
        diff: false,
    };
    pub const CHECK: Mode = Mode {
        check: true,
        diff: false,
    };
    pub const DIFF: Mode = Mode {
        check: false,
        diff: true,
    };
    pub const CHECK_DIFF: Mode = Mode {
        check: true,
        diff: true,
    };
}

/// What a module printed.
#[derive(Debug)]
pub struct Outcome {
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
    pub exit_ok: bool,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        self.json["failed"] == json!(true)
    }
    pub fn changed(&self) -> bool {
        self.json["changed"] == json!(true)
    }
    pub fn msg(&self) -> String {
        self.json["msg"].as_str().unwrap_or_default().to_string()
    }
    /// Assert success and return self.
    pub fn ok(self) -> Self {
        assert!(!self.failed(), "module failed: {}", self.stdout);
        self
    }
    /// Assert failure and return the message.
    pub fn fail_msg(&self) -> String {
        assert!(self.failed(), "expected a failure, got: {}", self.stdout);
        assert_eq!(self.json["changed"], json!(false), "{}", self.stdout);
        self.msg()
    }
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Write the args file like Ansible and run the module with it as argv[1].
pub fn run_module(name: &str, options: Value, mode: Mode) -> Outcome {
    let mut args = match options {
        Value::Object(m) => m,
        other => panic!("options must be an object, got {other}"),
    };
    add_ansible_keys(&mut args, mode);
    run_module_raw(name, &Value::Object(args).to_string())
}

/// The `_ansible_*` keys Ansible adds, plus one it may add in the future.
pub fn add_ansible_keys(args: &mut Map<String, Value>, mode: Mode) {
    args.insert("_ansible_check_mode".into(), json!(mode.check));
    args.insert("_ansible_diff".into(), json!(mode.diff));
    args.insert("_ansible_no_log".into(), json!(false));
    args.insert("_ansible_verbosity".into(), json!(0));
    args.insert("_ansible_tmpdir".into(), Value::Null);
    args.insert(
        "_ansible_module_name".into(),
        json!("kubeha.control_plane.x"),
    );
    args.insert("_ansible_future_key".into(), json!({"nested": [1, 2]}));
}

/// Run a module on an exact arguments text (for malformed-arguments tests).
pub fn run_module_raw(name: &str, args_text: &str) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let args_path = dir.path().join("args");
    fs::write(&args_path, args_text).expect("write args");
    let out = Command::new(bin_path(name))
        .arg(&args_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin_path(name).display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    record(name, args_text, &stdout, &stderr);
    let trimmed = stdout.trim();
    let json: Value = serde_json::from_str(trimmed).unwrap_or_else(|e| {
        panic!("{name}: stdout is not exactly one JSON object ({e}): {stdout:?} stderr: {stderr:?}")
    });
    assert!(
        json.is_object(),
        "{name}: stdout is not an object: {stdout}"
    );
    assert_eq!(
        trimmed.lines().count(),
        1,
        "{name}: more than one line on stdout: {stdout}"
    );
    if json["failed"] != json!(true) {
        assert_returns_documented(name, &json);
    }
    Outcome {
        json,
        stdout,
        stderr,
        exit_ok: out.status.success(),
    }
}

/// The module names of the collection (one binary and one sidecar each).
pub const MODULES: [&str; 9] = [
    "control_plane_info",
    "kubeadm_config",
    "apiserver_cert",
    "kubeconfig_server",
    "component_restart",
    "cluster_configmaps",
    "cluster_workloads",
    "ha_verify",
    "vip_probe",
];

/// The sidecar docs `<module>.yml` of the collection, parsed (DOCUMENTATION, EXAMPLES, RETURN).
pub fn sidecar(module: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("ansible/ansible_collections/kubeha/control_plane/plugins/modules")
        .join(format!("{module}.yml"));
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// Keys every Ansible module result may carry without documenting them in RETURN.
const COMMON_RETURNS: [&str; 5] = ["changed", "msg", "diff", "warnings", "failed"];

/// Every key of a successful result is documented in the sidecar's RETURN, and every RETURN key
/// documented as `returned: always` or `success` is there: the docs cannot drift from the code.
/// Called on every successful run of the suite.
pub fn assert_returns_documented(module: &str, result: &Value) {
    let docs = sidecar(module);
    let documented = docs["RETURN"]
        .as_object()
        .unwrap_or_else(|| panic!("{module}.yml: RETURN is not a mapping"));
    let result = result.as_object().expect("a result object");
    for key in result.keys() {
        assert!(
            COMMON_RETURNS.contains(&key.as_str()) || documented.contains_key(key),
            "{module} returned `{key}`, which its sidecar's RETURN does not document"
        );
    }
    for (key, spec) in documented {
        let when = spec["returned"].as_str().unwrap_or_default();
        if when == "always" || when == "success" {
            assert!(
                result.contains_key(key),
                "{module}.yml documents `{key}` as returned {when}, but the result lacks it: {}",
                Value::Object(result.clone())
            );
        }
    }
}

fn record(name: &str, args: &str, stdout: &str, stderr: &str) {
    let dir = outputs_dir();
    let _ = fs::create_dir_all(&dir);
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    let test = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let file = dir.join(format!("{test}-{}-{n}-{name}.out", std::process::id()));
    let _ = fs::write(
        file,
        format!("args: {args}\nstdout: {stdout}\nstderr: {stderr}\n"),
    );
}

/// One file-system entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File {
        bytes: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Dir {
        mode: u32,
    },
    Symlink(PathBuf),
}

/// Every entry under `dir` (symlinks not followed), keyed by relative path.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Entry> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let path = e.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            let rel = path.strip_prefix(dir).expect("prefix").to_path_buf();
            let entry = if meta.file_type().is_symlink() {
                Entry::Symlink(fs::read_link(&path).expect("readlink"))
            } else if meta.is_dir() {
                stack.push(path.clone());
                Entry::Dir {
                    mode: meta.mode() & 0o7777,
                }
            } else {
                Entry::File {
                    bytes: fs::read(&path).expect("read"),
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                }
            };
            out.insert(rel, entry);
        }
    }
    out
}

/// Assert two snapshots are identical, naming the first differing path.
pub fn assert_same_tree(before: &BTreeMap<PathBuf, Entry>, after: &BTreeMap<PathBuf, Entry>) {
    for (k, v) in before {
        match after.get(k) {
            None => panic!("{} disappeared", k.display()),
            Some(w) if w != v => panic!("{} changed", k.display()),
            _ => {}
        }
    }
    for k in after.keys() {
        assert!(before.contains_key(k), "{} appeared", k.display());
    }
}

/// Line diff (LCS): the lines only in `before` and the lines only in `after`, in order.
pub fn line_changes(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            added.push(b[j].to_string());
            j += 1;
        } else {
            removed.push(a[i].to_string());
            i += 1;
        }
    }
    (removed, added)
}

/// Assert that `text` holds no key material: no PEM markers and none of `secrets`.
pub fn assert_no_secrets(text: &str, secrets: &[String], context: &str) {
    for marker in ["PRIVATE KEY", "BEGIN CERTIFICATE"] {
        assert!(
            !text.contains(marker),
            "{context}: output contains {marker:?}"
        );
    }
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "{context}: output contains secret material ({} chars starting {:?})",
            s.len(),
            &s[..8.min(s.len())]
        );
    }
}

/// A kubeadm-like PKI: cluster CA (RSA-2048), apiserver serving pair, client pairs.
pub struct Pki {
    pub ca: X509,
    pub ca_key: PKey<Private>,
}

fn name(cn: &str, orgs: &[&str]) -> openssl::x509::X509Name {
    let mut b = X509NameBuilder::new().expect("name");
    for o in orgs {
        b.append_entry_by_text("O", o).expect("O");
    }
    b.append_entry_by_text("CN", cn).expect("CN");
    b.build()
}

pub fn rsa2048() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey")
}

/// PKCS#1 PEM, as kubeadm writes keys.
pub fn key_pem(key: &PKey<Private>) -> Vec<u8> {
    key.rsa().expect("rsa").private_key_to_pem().expect("pem")
}

/// A self-signed RSA-2048 CA like kubeadm's (CN `cn`, 10 years, CA:TRUE, keyCertSign, SKI).
pub fn self_signed_ca(cn: &str) -> (X509, PKey<Private>) {
    let ca_key = rsa2048();
    let subject = name(cn, &[]);
    let mut b = X509::builder().expect("builder");
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(63, MsbOption::ONE, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(&subject).unwrap();
    b.set_pubkey(&ca_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(3650).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .digital_signature()
            .key_encipherment()
            .build()
            .unwrap(),
    )
    .unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(ski).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    (b.build(), ca_key)
}

impl Pki {
    pub fn new() -> Pki {
        let (ca, ca_key) = self_signed_ca("kubernetes");
        Pki { ca, ca_key }
    }

    /// A leaf signed by the CA: serving (`dns`/`ips` SANs, serverAuth) or client (clientAuth).
    pub fn leaf(
        &self,
        cn: &str,
        orgs: &[&str],
        dns: &[&str],
        ips: &[&str],
        server: bool,
    ) -> (X509, PKey<Private>) {
        let key = rsa2048();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(63, MsbOption::ONE, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name(cn, orgs)).unwrap();
        b.set_issuer_name(self.ca.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()
                .unwrap(),
        )
        .unwrap();
        let eku = if server {
            ExtendedKeyUsage::new().server_auth().build().unwrap()
        } else {
            ExtendedKeyUsage::new().client_auth().build().unwrap()
        };
        b.append_extension(eku).unwrap();
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&self.ca), None))
            .unwrap();
        b.append_extension(aki).unwrap();
        if !dns.is_empty() || !ips.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for d in dns {
                san.dns(d);
            }
            for i in ips {
                san.ip(i);
            }
            let ext = san.build(&b.x509v3_context(Some(&self.ca), None)).unwrap();
            b.append_extension(ext).unwrap();
        }
        b.sign(&self.ca_key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }
}

/// kubeadm-config.yaml versions the fixtures write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeadmApi {
    V1beta3,
    V1beta4,
}

/// Which server the kubeconfigs point at before conversion (the layouts kubespray leaves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Everything at master 1's IP (the write-up; v1beta3).
    Pinned,
    /// kubespray v2.12-v2.30 defaults: master kubeconfigs at 127.0.0.1 (v1beta4 here).
    Kubespray,
}

pub const MASTER1_IP: &str = "172.30.0.11";
pub const VIP: &str = "172.30.0.10";
pub const NODE: &str = "kubeha-master1";
pub const KUBE_PROXY_TOKEN: &str = "kubeproxytoken0123456789abcdefghij";

/// A kubespray-like master's files under a temporary root.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub layout: Layout,
    /// Strings that must never appear in any module output.
    pub secrets: Vec<String>,
}

fn b64(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
}

/// Base64 lines of a PEM body (what a leak of the PEM would show) and the one-line base64 of the
/// whole PEM (what a kubeconfig embeds), split in chunks so partial leaks are caught too.
fn secret_strings(pem: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let text = String::from_utf8_lossy(pem);
    for line in text.lines() {
        if !line.starts_with("-----") && line.len() >= 16 {
            out.push(line.to_string());
        }
    }
    let embedded = b64(pem);
    for chunk in embedded.as_bytes().chunks(48) {
        if chunk.len() >= 16 {
            out.push(String::from_utf8_lossy(chunk).into_owned());
        }
    }
    out
}

pub fn kubeconfig_text(
    cluster: &str,
    server: &str,
    ca_pem: &[u8],
    user: &str,
    cert: Option<&[u8]>,
    key: Option<&[u8]>,
    pem_path: Option<&str>,
) -> String {
    let user_body = match (cert, key, pem_path) {
        (Some(c), Some(k), _) => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(c),
            b64(k)
        ),
        (_, _, Some(p)) => format!("    client-certificate: {p}\n    client-key: {p}\n"),
        _ => "    token: ".to_string() + KUBE_PROXY_TOKEN + "\n",
    };
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: {cluster}\ncontexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {user}@{cluster}\ncurrent-context: {user}@{cluster}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n{user_body}",
        b64(ca_pem)
    )
}

pub fn kubeadm_config_text(api: KubeadmApi, endpoint: &str) -> String {
    let v = match api {
        KubeadmApi::V1beta3 => "v1beta3",
        KubeadmApi::V1beta4 => "v1beta4",
    };
    let extra_args = match api {
        KubeadmApi::V1beta3 => "  extraArgs:\n    anonymous-auth: \"True\"\n    authorization-mode: Node,RBAC\n    service-node-port-range: 30000-32767\n".to_string(),
        KubeadmApi::V1beta4 => "  extraArgs:\n  - name: anonymous-auth\n    value: \"True\"\n  - name: authorization-mode\n    value: Node,RBAC\n  - name: service-node-port-range\n    value: 30000-32767\n".to_string(),
    };
    format!(
        "apiVersion: kubeadm.k8s.io/{v}
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: \"{MASTER1_IP}\"
  bindPort: 6443
nodeRegistration:
  name: \"{NODE}\"
  criSocket: unix:///var/run/containerd/containerd.sock
  taints:
  - effect: NoSchedule
    key: node-role.kubernetes.io/control-plane
---
apiVersion: kubeadm.k8s.io/{v}
kind: ClusterConfiguration
clusterName: cluster.local
etcd:
  external:
    endpoints:
    - https://172.30.0.11:2379
    - https://172.30.0.12:2379
    - https://172.30.0.13:2379
    caFile: /etc/ssl/etcd/ssl/ca.pem
    certFile: /etc/ssl/etcd/ssl/node-{NODE}.pem
    keyFile: /etc/ssl/etcd/ssl/node-{NODE}-key.pem
dns:
  imageRepository: registry.k8s.io/coredns
  imageTag: v1.11.3
networking:
  dnsDomain: cluster.local
  serviceSubnet: \"10.233.0.0/18\"
  podSubnet: \"10.233.64.0/18\"
kubernetesVersion: v1.31.4
controlPlaneEndpoint: \"{endpoint}\"
certificatesDir: /etc/kubernetes/ssl
imageRepository: registry.k8s.io
apiServer:
{extra_args}  certSANs:
  # names and addresses the apiserver certificate must cover
  - \"kubernetes\"
  - \"kubernetes.default\"
  - \"kubernetes.default.svc\"
  - \"kubernetes.default.svc.cluster.local\"
  - \"10.233.0.1\"
  - \"localhost\"
  - \"127.0.0.1\"
  - \"{NODE}\"
  - \"{MASTER1_IP}\"
controllerManager:
  extraArgs:
{cm_args}scheduler:
  extraArgs:
{sched_args}---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 0.0.0.0
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
mode: ipvs
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
clusterDNS:
- 10.233.0.3
# kubespray sets the cgroup driver explicitly
cgroupDriver: systemd
",
        cm_args = match api {
            KubeadmApi::V1beta3 => "    bind-address: 0.0.0.0\n",
            KubeadmApi::V1beta4 => "  - name: bind-address\n    value: 0.0.0.0\n",
        },
        sched_args = match api {
            KubeadmApi::V1beta3 => "    bind-address: 0.0.0.0\n",
            KubeadmApi::V1beta4 => "  - name: bind-address\n    value: 0.0.0.0\n",
        },
    )
}

fn write(path: &Path, content: &[u8], mode: u32) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn manifest(name: &str, command: &str, args: &[String]) -> String {
    let mut s = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: kube-system\n  labels:\n    component: {name}\n    tier: control-plane\nspec:\n  hostNetwork: true\n  containers:\n  - name: {name}\n    image: registry.k8s.io/{name}:v1.31.4\n    command:\n    - {command}\n");
    for a in args {
        s.push_str(&format!("    - {a}\n"));
    }
    s
}

impl Fixture {
    /// A master of the given layout: certificates, kubeconfigs, kubeadm config, manifests,
    /// host etcd (`etcd.service`, `/etc/etcd.env`).
    pub fn kubespray(layout: Layout) -> Fixture {
        let api = match layout {
            Layout::Pinned => KubeadmApi::V1beta3,
            Layout::Kubespray => KubeadmApi::V1beta4,
        };
        Fixture::build(layout, api, false)
    }

    /// A worker of layout `kubespray`: kubelet.conf at localhost and the nginx local proxy.
    pub fn worker() -> Fixture {
        Fixture::build(Layout::Kubespray, KubeadmApi::V1beta4, true)
    }

    fn build(layout: Layout, api: KubeadmApi, worker: bool) -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let pki = Pki::new();
        let ca_pem = pki.ca.to_pem().unwrap();
        let kube = root.join("etc/kubernetes");
        let ssl = kube.join("ssl");
        let mut secrets = vec![KUBE_PROXY_TOKEN.to_string()];
        write(&ssl.join("ca.crt"), &ca_pem, 0o644);
        let local = match layout {
            Layout::Pinned => MASTER1_IP,
            Layout::Kubespray => "127.0.0.1",
        };
        let master_server = format!("https://{local}:6443");
        let mut add_secret_pem = |pem: &[u8]| secrets.extend(secret_strings(pem));
        if !worker {
            let ca_key_pem = key_pem(&pki.ca_key);
            add_secret_pem(&ca_key_pem);
            write(&ssl.join("ca.key"), &ca_key_pem, 0o600);
            let (api_cert, api_key) = pki.leaf(
                "kube-apiserver",
                &[],
                &[
                    NODE,
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                    "localhost",
                ],
                &["10.233.0.1", MASTER1_IP, "127.0.0.1"],
                true,
            );
            let api_key_pem = key_pem(&api_key);
            add_secret_pem(&api_key_pem);
            write(
                &ssl.join("apiserver.crt"),
                &api_cert.to_pem().unwrap(),
                0o644,
            );
            write(&ssl.join("apiserver.key"), &api_key_pem, 0o600);
            symlink("ssl", kube.join("pki")).unwrap();
            for (file, cn, orgs, user) in [
                (
                    "admin.conf",
                    "kubernetes-admin",
                    vec!["kubeadm:cluster-admins"],
                    "kubernetes-admin",
                ),
                (
                    "super-admin.conf",
                    "kubernetes-super-admin",
                    vec!["system:masters"],
                    "kubernetes-super-admin",
                ),
                (
                    "controller-manager.conf",
                    "system:kube-controller-manager",
                    vec![],
                    "system:kube-controller-manager",
                ),
                (
                    "scheduler.conf",
                    "system:kube-scheduler",
                    vec![],
                    "system:kube-scheduler",
                ),
            ] {
                let (c, k) = pki.leaf(cn, &orgs, &[], &[], false);
                let cp = c.to_pem().unwrap();
                let kp = key_pem(&k);
                add_secret_pem(&cp);
                add_secret_pem(&kp);
                let server = local;
                let text = kubeconfig_text(
                    "cluster.local",
                    &format!("https://{server}:6443"),
                    &ca_pem,
                    user,
                    Some(&cp),
                    Some(&kp),
                    None,
                );
                write(&kube.join(file), text.as_bytes(), 0o600);
                if file == "admin.conf" {
                    write(&root.join("root/.kube/config"), text.as_bytes(), 0o600);
                }
            }
            write(
                &kube.join("kubeadm-config.yaml"),
                kubeadm_config_text(api, &format!("{MASTER1_IP}:6443")).as_bytes(),
                0o644,
            );
            let mdir = kube.join("manifests");
            write(
                &mdir.join("kube-apiserver.yaml"),
                manifest(
                    "kube-apiserver",
                    "kube-apiserver",
                    &[
                        format!("--advertise-address={MASTER1_IP}"),
                        "--secure-port=6443".into(),
                        "--tls-cert-file=/etc/kubernetes/ssl/apiserver.crt".into(),
                    ],
                )
                .as_bytes(),
                0o600,
            );
            write(
                &mdir.join("kube-controller-manager.yaml"),
                manifest(
                    "kube-controller-manager",
                    "kube-controller-manager",
                    &["--kubeconfig=/etc/kubernetes/controller-manager.conf".into()],
                )
                .as_bytes(),
                0o600,
            );
            write(
                &mdir.join("kube-scheduler.yaml"),
                manifest(
                    "kube-scheduler",
                    "kube-scheduler",
                    &["--kubeconfig=/etc/kubernetes/scheduler.conf".into()],
                )
                .as_bytes(),
                0o600,
            );
            write(&root.join("etc/systemd/system/etcd.service"), b"[Unit]\nDescription=etcd\n[Service]\nEnvironmentFile=/etc/etcd.env\nExecStart=/usr/local/bin/etcd\n", 0o644);
            write(&root.join("etc/etcd.env"), format!("ETCD_NAME=etcd1\nETCD_LISTEN_CLIENT_URLS=https://{MASTER1_IP}:2379,https://127.0.0.1:2379\n").as_bytes(), 0o640);
        } else {
            let mdir = kube.join("manifests");
            write(&root.join("etc/nginx/nginx.conf"), b"stream {\n  upstream kube_apiserver {\n    least_conn;\n    server 172.30.0.11:6443;\n    server 172.30.0.12:6443;\n    server 172.30.0.13:6443;\n  }\n  server {\n    listen 127.0.0.1:6443;\n    proxy_pass kube_apiserver;\n  }\n}\n", 0o644);
            write(
                &mdir.join("nginx-proxy.yml"),
                manifest("nginx-proxy", "nginx", &["-g".into(), "daemon off;".into()]).as_bytes(),
                0o600,
            );
        }
        // kubelet.conf: client cert by path, as kubeadm writes it.
        let (kc, kk) = pki.leaf(
            &format!("system:node:{NODE}"),
            &["system:nodes"],
            &[],
            &[],
            false,
        );
        let mut pem = kc.to_pem().unwrap();
        let kkp = key_pem(&kk);
        secrets.extend(secret_strings(&pem));
        secrets.extend(secret_strings(&kkp));
        pem.extend_from_slice(&kkp);
        let pem_path = root.join("var/lib/kubelet/pki/kubelet-client-current.pem");
        write(&pem_path, &pem, 0o600);
        let kubelet_server = if worker {
            "https://localhost:6443".to_string()
        } else {
            master_server.clone()
        };
        let text = kubeconfig_text(
            "cluster.local",
            &kubelet_server,
            &ca_pem,
            "default-auth",
            None,
            None,
            Some(&pem_path.to_string_lossy()),
        );
        write(&kube.join("kubelet.conf"), text.as_bytes(), 0o600);
        Fixture {
            tmp,
            layout,
            secrets,
        }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn kube_dir(&self) -> PathBuf {
        self.root().join("etc/kubernetes")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn snapshot(&self) -> BTreeMap<PathBuf, Entry> {
        snapshot(self.root())
    }
}
