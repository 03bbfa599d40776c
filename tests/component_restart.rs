//! Integration tests of `component_restart` for a static-pod component: a small HTTPS server
//! script installed under the name `kube-scheduler` (so /proc shows `comm` = kube-scheduler, as on
//! a real host), serving `/healthz` with a self-signed localhost certificate, is kept running by a
//! supervisor thread that restarts it like kubelet does. The module must find it through /proc,
//! SIGTERM it, see a new pid and a healthy endpoint. The kubelet/systemd path runs on the test bed
//! (molecule), where kubelet is a systemd unit.

mod common;

use common::{run_module, Mode};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameBuilder, X509};
use serde_json::json;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SCRIPT: &str = r#"#!/usr/bin/python3
import http.server, os, signal, ssl, sys
port = int([a.split("=", 1)[1] for a in sys.argv if a.startswith("--secure-port=")][0])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok" if self.path == "/healthz" else b"404 page not found"
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.HTTPServer):
    allow_reuse_address = True
srv = Server(("127.0.0.1", port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.environ["TEST_TLS_CERT"], os.environ["TEST_TLS_KEY"])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
srv.serve_forever()
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A self-signed serving cert like the one kube-scheduler makes in memory.
fn self_signed(dir: &Path, dns: &str, ip: Option<&str>) -> (PathBuf, PathBuf) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", &format!("{dns}@1700000000"))
        .unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(63, MsbOption::ONE, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    let mut san = SubjectAlternativeName::new();
    san.dns(dns);
    if let Some(ip) = ip {
        san.ip(ip);
    }
    let san = san.build(&b.x509v3_context(None, None)).unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let crt_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    fs::write(&crt_path, b.build().to_pem().unwrap()).unwrap();
    fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    (crt_path, key_path)
}

/// Keeps `kube-scheduler` running like kubelet keeps a static pod running.
struct Supervisor {
    _dir: tempfile::TempDir,
    port: u16,
    stop: Arc<AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    fn start(restart: bool, dns: &str, ip: Option<&str>) -> Supervisor {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("kube-scheduler");
        fs::write(&script, SCRIPT).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let (crt, key) = self_signed(dir.path(), dns, ip);
        let port = free_port();
        let stop = Arc::new(AtomicBool::new(false));
        let child: Arc<Mutex<Option<Child>>> = Arc::new(Mutex::new(None));
        let spawn = move || {
            Command::new(&script)
                .arg(format!("--secure-port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--leader-elect=false")
                .env("TEST_TLS_CERT", &crt)
                .env("TEST_TLS_KEY", &key)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn the kube-scheduler test server")
        };
        *child.lock().unwrap() = Some(spawn());
        let (stop2, child2) = (stop.clone(), child.clone());
        let thread = std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(100));
            if stop2.load(Ordering::SeqCst) {
                return;
            }
            let mut guard = child2.lock().unwrap();
            let exited = match guard.as_mut() {
                Some(c) => c.try_wait().unwrap().is_some(),
                None => false,
            };
            if exited && restart {
                drop(guard);
                std::thread::sleep(Duration::from_millis(500)); // kubelet's back-off
                *child2.lock().unwrap() = Some(spawn());
            }
        });
        let s = Supervisor {
            _dir: dir,
            port,
            stop,
            child,
            thread: Some(thread),
        };
        s.wait_listening();
        s
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the test server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> i32 {
        self.child.lock().unwrap().as_ref().unwrap().id() as i32
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/healthz", self.port)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn check_mode_names_the_process_and_signals_nothing() {
    let sup = Supervisor::start(true, "localhost", Some("127.0.0.1"));
    let pid = sup.pid();
    let out = run_module(
        "component_restart",
        json!({"name": "kube-scheduler", "health_url": sup.url()}),
        Mode::CHECK,
    )
    .ok();
    assert!(out.changed());
    assert_eq!(out.json["pid_before"], json!(pid));
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(sup.pid(), pid, "check mode restarted the process");
}

#[test]
fn a_static_pod_component_is_signalled_and_a_new_healthy_process_is_awaited() {
    let sup = Supervisor::start(true, "localhost", Some("127.0.0.1"));
    let pid = sup.pid();
    let out = run_module(
        "component_restart",
        json!({"name": "kube-scheduler", "health_url": sup.url(), "timeout": 30}),
        Mode::NORMAL,
    )
    .ok();
    assert!(out.changed());
    assert_eq!(out.json["pid_before"], json!(pid));
    let after = out.json["pid_after"].as_i64().unwrap() as i32;
    assert_ne!(after, pid);
    assert_eq!(
        after,
        sup.pid(),
        "pid_after is not the supervisor's new child"
    );
    assert_eq!(out.json["health"]["status"], json!(200));
    assert_eq!(out.json["health"]["body"], json!("ok"));
    let waited = out.json["waited_seconds"].as_f64().unwrap();
    assert!(waited > 0.4 && waited < 30.0, "{waited}");
    // A second run restarts again (a restart is an action, not a state): again a new pid.
    let again = run_module(
        "component_restart",
        json!({"name": "kube-scheduler", "health_url": sup.url()}),
        Mode::NORMAL,
    )
    .ok();
    assert_eq!(again.json["pid_before"], json!(after));
    assert_ne!(again.json["pid_after"], json!(after));
}

#[test]
fn the_port_comes_from_the_command_line_when_no_health_url_is_given() {
    let sup = Supervisor::start(true, "localhost", Some("127.0.0.1"));
    let out = run_module(
        "component_restart",
        json!({"name": "kube-scheduler", "timeout": 30}),
        Mode::NORMAL,
    );
    if out.failed() {
        // Another kube-scheduler runs on this machine (e.g. the emulator tests): the module must
        // refuse to guess, naming ours among the candidates.
        let msg = out.fail_msg();
        assert!(
            msg.contains("health_url") && msg.contains(&sup.pid().to_string()),
            "{msg}"
        );
    } else {
        assert_eq!(out.json["health"]["url"], json!(sup.url()));
        assert_ne!(out.json["pid_after"], out.json["pid_before"]);
    }
}

#[test]
fn no_new_process_times_out_with_the_last_state() {
    let sup = Supervisor::start(false, "localhost", Some("127.0.0.1"));
    let pid = sup.pid();
    let msg = run_module(
        "component_restart",
        json!({"name": "kube-scheduler", "health_url": sup.url(), "timeout": 2}),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(
        msg.contains("no new process within 2s") && msg.contains(&pid.to_string()),
        "{msg}"
    );
}

#[test]
fn a_certificate_not_for_localhost_is_never_accepted() {
    let sup = Supervisor::start(true, "evil.example", None);
    let msg = run_module(
        "component_restart",
        json!({"name": "kube-scheduler", "health_url": sup.url(), "timeout": 4}),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(msg.contains("not healthy within 4s"), "{msg}");
    assert!(msg.contains("TLS verification failed"), "{msg}");
    assert!(
        msg.contains("hostname mismatch") || msg.contains("IP address mismatch"),
        "{msg}"
    );
}

#[test]
fn bad_inputs_fail_naming_the_option_and_signal_nothing() {
    let sup = Supervisor::start(true, "localhost", Some("127.0.0.1"));
    let pid = sup.pid();
    let cases = [
        (json!({"name": "etcd"}), "option `name`"),
        (json!({}), "option `name`"),
        (
            json!({"name": "kube-scheduler", "timeout": 0}),
            "option `timeout`",
        ),
        (
            json!({"name": "kube-scheduler", "timeout": "soon"}),
            "option `timeout`",
        ),
        (
            json!({"name": "kube-scheduler", "health_url": "127.0.0.1:10259"}),
            "option `health_url`",
        ),
        (json!({"name": "kube-scheduler", "signal": "HUP"}), "signal"),
        (
            json!({"name": "kube-scheduler", "node_name": "w1", "kubeconfig": "/etc/kubernetes/kubelet.conf"}),
            "option `node_name`: is only for name=kubelet",
        ),
        (
            json!({"name": "kubelet", "node_name": "w1"}),
            "option `kubeconfig`: is required with node_name",
        ),
        (
            json!({"name": "kubelet", "kubeconfig": "/etc/kubernetes/kubelet.conf"}),
            "option `node_name`: is required with kubeconfig",
        ),
        (
            json!({"name": "kubelet", "node_name": " ", "kubeconfig": "/etc/kubernetes/kubelet.conf"}),
            "option `node_name`: is empty",
        ),
        (
            json!({"name": "kubelet", "node_name": "w1", "kubeconfig": "/x", "node_timeout": 0}),
            "option `node_timeout`",
        ),
        (
            json!({"name": "kube-apiserver", "health_url": format!("https://127.0.0.1:{}/readyz", free_port())}),
            "no running kube-apiserver process",
        ),
    ];
    for (options, expect) in cases {
        let msg = run_module("component_restart", options.clone(), Mode::NORMAL).fail_msg();
        assert!(msg.contains(expect), "{options}: {msg}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sup.pid(), pid, "a refused run restarted the process");
}
