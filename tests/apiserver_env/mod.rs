//! A real etcd (TLS, loopback, temp ports) and the kube-apiserver emulator
//! (`testbed/emulators/kube-apiserver`) for the REST-path tests of cluster_configmaps and
//! ha_verify, plus kubeadm-like ConfigMaps seeded into it. etcd missing fails the test with the
//! command that installs it.
#![allow(dead_code)]

use crate::common::{key_pem, kubeconfig_text, Pki};
use kubeha::net::http::{self, Request, Response};
use kubeha::net::tls::{ClientIdentity, TlsConfig};
use serde_json::{json, Value};
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn etcd_binary() -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(dir).join("etcd");
        if p.exists() {
            return p;
        }
    }
    panic!("etcd is not installed: run `make deps` (scripts/host-deps.sh installs the Debian package etcd-server)");
}

pub fn emulator() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/emulators/kube-apiserver");
    assert!(p.exists(), "{} is missing", p.display());
    p
}

fn kill(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// etcd's member cert: serverAuth AND clientAuth (etcd's gateway dials itself with it).
fn etcd_member_cert(
    pki: &Pki,
) -> (
    openssl::x509::X509,
    openssl::pkey::PKey<openssl::pkey::Private>,
) {
    use openssl::x509::extension::{ExtendedKeyUsage, SubjectAlternativeName};
    let key = crate::common::rsa2048();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "etcd-member").unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(
        &openssl::bn::BigNum::from_u32(7)
            .unwrap()
            .to_asn1_integer()
            .unwrap(),
    )
    .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(pki.ca.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    b.append_extension(
        ExtendedKeyUsage::new()
            .server_auth()
            .client_auth()
            .build()
            .unwrap(),
    )
    .unwrap();
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&b.x509v3_context(Some(&pki.ca), None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&pki.ca_key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    (b.build(), key)
}

/// etcd + one or more apiserver emulators sharing it.
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub pki: Pki,
    etcd: Child,
    pub etcd_url: String,
    pub apiservers: Vec<(u16, Child)>,
}

impl Cluster {
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Start etcd and `n` apiservers.
    pub fn start(n: usize) -> Cluster {
        let etcd_bin = etcd_binary();
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let pki = Pki::new();
        write(&d.join("ca.crt"), &pki.ca.to_pem().unwrap(), 0o644);
        write(&d.join("ca.key"), &key_pem(&pki.ca_key), 0o600);
        let (crt, key) = pki.leaf(
            "kube-apiserver",
            &[],
            &["localhost", "kubernetes"],
            &["127.0.0.1"],
            true,
        );
        write(&d.join("apiserver.crt"), &crt.to_pem().unwrap(), 0o644);
        write(&d.join("apiserver.key"), &key_pem(&key), 0o600);
        let (crt, key) = pki.leaf("kubernetes-admin", &["system:masters"], &[], &[], false);
        write(&d.join("admin.crt"), &crt.to_pem().unwrap(), 0o644);
        write(&d.join("admin.key"), &key_pem(&key), 0o600);
        // etcd has its own CA, as in kubespray.
        let etcd_pki = Pki::new();
        write(
            &d.join("etcd-ca.crt"),
            &etcd_pki.ca.to_pem().unwrap(),
            0o644,
        );
        let (crt, key) = etcd_member_cert(&etcd_pki);
        write(&d.join("etcd.crt"), &crt.to_pem().unwrap(), 0o644);
        write(&d.join("etcd.key"), &key_pem(&key), 0o600);
        let (crt, key) = etcd_pki.leaf("etcd-node", &[], &[], &[], false);
        write(&d.join("etcd-client.crt"), &crt.to_pem().unwrap(), 0o644);
        write(&d.join("etcd-client.key"), &key_pem(&key), 0o600);
        fs::write(d.join("tokens.csv"), "").unwrap();

        let port = free_port();
        let peer = free_port();
        let etcd_url = format!("https://127.0.0.1:{port}");
        let log = fs::File::create(d.join("etcd.log")).unwrap();
        let etcd = Command::new(etcd_bin)
            .args(["--name", "t1", "--data-dir"])
            .arg(d.join("etcd-data"))
            .args([
                "--listen-client-urls",
                &etcd_url,
                "--advertise-client-urls",
                &etcd_url,
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args(["--initial-cluster", &format!("t1=http://127.0.0.1:{peer}")])
            .arg("--cert-file")
            .arg(d.join("etcd.crt"))
            .arg("--key-file")
            .arg(d.join("etcd.key"))
            .arg("--trusted-ca-file")
            .arg(d.join("etcd-ca.crt"))
            .arg("--client-cert-auth")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start etcd");
        let mut c = Cluster {
            tmp,
            pki,
            etcd,
            etcd_url,
            apiservers: Vec::new(),
        };
        for _ in 0..n {
            let port = free_port();
            let child = c.spawn_apiserver(port);
            c.apiservers.push((port, child));
        }
        for i in 0..n {
            c.wait_ready(c.apiservers[i].0);
        }
        c.seed();
        c
    }

    /// The emulator's command line for `port` (also what a test "kubelet" runs).
    pub fn apiserver_command(&self, port: u16) -> Command {
        let d = self.dir();
        let mut cmd = Command::new(emulator());
        cmd.arg("--advertise-address=127.0.0.1")
            .args(["--bind-address", "127.0.0.1"])
            .arg(format!("--secure-port={port}"))
            .arg(format!(
                "--tls-cert-file={}",
                d.join("apiserver.crt").display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                d.join("apiserver.key").display()
            ))
            .arg(format!("--client-ca-file={}", d.join("ca.crt").display()))
            .arg(format!("--etcd-servers={}", self.etcd_url))
            .arg(format!("--etcd-cafile={}", d.join("etcd-ca.crt").display()))
            .arg(format!(
                "--etcd-certfile={}",
                d.join("etcd-client.crt").display()
            ))
            .arg(format!(
                "--etcd-keyfile={}",
                d.join("etcd-client.key").display()
            ))
            .arg(format!(
                "--token-auth-file={}",
                d.join("tokens.csv").display()
            ))
            .arg("--shutdown-delay-duration=1s")
            .env("KUBEHA_EMU_LOG_DIR", d.join(format!("log-{port}")))
            .env("KUBEHA_EMU_STATUS_DIR", d.join(format!("run-{port}")))
            .stdout(Stdio::from(
                fs::File::create(d.join(format!("apiserver-{port}.out"))).unwrap(),
            ))
            .stderr(Stdio::from(
                fs::File::create(d.join(format!("apiserver-{port}.err"))).unwrap(),
            ));
        cmd
    }

    fn spawn_apiserver(&self, port: u16) -> Child {
        self.apiserver_command(port)
            .spawn()
            .expect("start the kube-apiserver emulator")
    }

    pub fn wait_ready(&self, port: u16) {
        let tls = TlsConfig::with_ca(vec![self.pki.ca.clone()]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http::https(
                "127.0.0.1",
                port,
                &tls,
                &Request::get("/readyz"),
                Duration::from_secs(2),
            ) {
                if r.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "apiserver emulator on {port} not ready: {} / etcd: {}",
                fs::read_to_string(self.path(&format!("apiserver-{port}.err"))).unwrap_or_default(),
                fs::read_to_string(self.path("etcd.log"))
                    .unwrap_or_default()
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn admin_tls(&self) -> TlsConfig {
        let mut tls = TlsConfig::with_ca(vec![self.pki.ca.clone()]);
        tls.identity = Some(
            ClientIdentity::from_pem(
                &fs::read(self.path("admin.crt")).unwrap(),
                &fs::read(self.path("admin.key")).unwrap(),
                "test admin",
            )
            .unwrap(),
        );
        tls
    }

    /// An authenticated request to apiserver `i`.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        let req = Request {
            method,
            path,
            content_type: bytes.as_ref().map(|_| "application/json"),
            body: bytes.as_deref(),
        };
        http::https(
            "127.0.0.1",
            self.apiservers[0].0,
            &self.admin_tls(),
            &req,
            Duration::from_secs(10),
        )
        .unwrap()
    }

    pub fn configmap(&self, ns: &str, name: &str) -> Value {
        let r = self.request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/configmaps/{name}"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    /// Write an admin kubeconfig (embedded client cert, like admin.conf) for apiserver `port`.
    pub fn admin_kubeconfig(&self, port: u16) -> PathBuf {
        let text = kubeconfig_text(
            "kubernetes",
            &format!("https://127.0.0.1:{port}"),
            &self.pki.ca.to_pem().unwrap(),
            "kubernetes-admin",
            Some(&fs::read(self.path("admin.crt")).unwrap()),
            Some(&fs::read(self.path("admin.key")).unwrap()),
            None,
        );
        let p = self.path(&format!("admin-{port}.conf"));
        write(&p, text.as_bytes(), 0o600);
        p
    }

    fn seed(&self) {
        for ns in ["kube-system", "kube-public"] {
            let r = self.request(
                "POST",
                "/api/v1/namespaces",
                Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
            );
            assert!(
                r.status == 201 || r.status == 200 || r.status == 409,
                "{}",
                r.text()
            );
        }
        let ca_b64 = openssl::base64::encode_block(&self.pki.ca.to_pem().unwrap());
        let objects = [
            (
                "kube-system",
                "kube-proxy",
                json!({
                    "config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\nmode: iptables\n",
                    "kubeconfig.conf": KUBE_PROXY_KUBECONFIG,
                }),
            ),
            (
                "kube-system",
                "kubeadm-config",
                json!({"ClusterConfiguration": CLUSTER_CONFIGURATION}),
            ),
            (
                "kube-public",
                "cluster-info",
                json!({
                    "kubeconfig": format!("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca_b64}\n    server: https://172.30.0.11:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n"),
                    "jws-kubeconfig-abcdef": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..x",
                }),
            ),
        ];
        for (ns, name, data) in objects {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data});
            let r = self.request(
                "POST",
                &format!("/api/v1/namespaces/{ns}/configmaps"),
                Some(&body),
            );
            assert!(
                r.status == 201 || r.status == 200,
                "seed {ns}/{name}: {} {}",
                r.status,
                r.text()
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, c) in self.apiservers.iter_mut() {
            kill(c);
        }
        kill(&mut self.etcd);
    }
}

pub const KUBE_PROXY_KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n    server: https://127.0.0.1:6443\n  name: default\ncontexts:\n- context:\n    cluster: default\n    namespace: default\n    user: default\n  name: default\ncurrent-context: default\nusers:\n- name: default\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n";

pub const CLUSTER_CONFIGURATION: &str = "apiServer:\n  certSANs:\n  - kubernetes\n  - 172.30.0.11\n  extraArgs:\n  - name: authorization-mode\n    value: Node,RBAC\napiVersion: kubeadm.k8s.io/v1beta4\ncertificatesDir: /etc/kubernetes/ssl\nclusterName: cluster.local\ncontrolPlaneEndpoint: 172.30.0.11:6443\n# kept by kubeha\nkind: ClusterConfiguration\nkubernetesVersion: v1.33.1\nnetworking:\n  dnsDomain: cluster.local\n  serviceSubnet: 10.233.0.0/18\n";
