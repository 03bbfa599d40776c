//! Integration tests of `ha_verify` against a real etcd and two kube-apiserver emulators: one is
//! the "endpoint" (another master behind the VIP), the other is this host's "local" apiserver,
//! run by a kubelet stand-in thread that runs it while `manifests/kube-apiserver.yaml` exists and
//! stops it when the manifest goes away, as kubelet does with static pods.

mod apiserver_env;
mod common;

use apiserver_env::{free_port, Cluster};
use common::{run_module, Mode};
use serde_json::{json, Value};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Kubelet {
    stop: Arc<AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn sigterm(c: &Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

impl Kubelet {
    fn start(manifest: PathBuf, mut command: impl FnMut() -> Command + Send + 'static) -> Kubelet {
        let stop = Arc::new(AtomicBool::new(false));
        let child: Arc<Mutex<Option<Child>>> = Arc::new(Mutex::new(None));
        let (stop2, child2) = (stop.clone(), child.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let mut guard = child2.lock().unwrap();
                let running = match guard.as_mut() {
                    Some(c) => c.try_wait().unwrap().is_none(),
                    None => false,
                };
                if manifest.exists() && !running {
                    *guard = Some(command().spawn().unwrap());
                } else if !manifest.exists() && running {
                    if let Some(c) = guard.as_ref() {
                        sigterm(c);
                    }
                    if let Some(mut c) = guard.take() {
                        drop(guard);
                        let _ = c.wait();
                        continue;
                    }
                }
                drop(guard);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Kubelet {
            stop,
            child,
            thread: Some(thread),
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(|c| c.id())
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(mut c) = self.child.lock().unwrap().take() {
            sigterm(&c);
            let _ = c.wait();
        }
    }
}

struct Env {
    cluster: Cluster,
    local_port: u16,
    kubelet: Kubelet,
    manifests: PathBuf,
    park: PathBuf,
    kubeconfig: PathBuf,
}

impl Env {
    fn start() -> Env {
        let cluster = Cluster::start(1);
        let local_port = free_port();
        let manifests = cluster.path("manifests");
        let park = cluster.path("manifests-kubeha-drill");
        fs::create_dir(&manifests).unwrap();
        fs::write(
            manifests.join("kube-apiserver.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n",
        )
        .unwrap();
        // The local apiserver's command, built once (the Cluster is not Send).
        let template = cluster.apiserver_command(local_port);
        let program = template.get_program().to_owned();
        let args: Vec<_> = template.get_args().map(|a| a.to_owned()).collect();
        let envs: Vec<_> = template
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        let kubelet = Kubelet::start(manifests.join("kube-apiserver.yaml"), move || {
            let mut c = Command::new(&program);
            c.args(&args);
            for (k, v) in &envs {
                if let Some(v) = v {
                    c.env(k, v);
                }
            }
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c
        });
        cluster.wait_ready(local_port);
        let kubeconfig = cluster.admin_kubeconfig(cluster.apiservers[0].0);
        Env {
            cluster,
            local_port,
            kubelet,
            manifests,
            park,
            kubeconfig,
        }
    }

    fn options(&self, extra: Value) -> Value {
        let mut o = json!({
            "endpoint": format!("127.0.0.1:{}", self.cluster.apiservers[0].0),
            "ca_cert_path": self.cluster.path("ca.crt"),
            "kubeconfig": self.kubeconfig,
            "manifests_dir": self.manifests,
            "drill_park_dir": self.park,
            "local_health_url": format!("https://127.0.0.1:{}/readyz", self.local_port),
            "requests": 10,
            "interval_ms": 50,
            "timeout": 30,
        });
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        o
    }

    fn manifest_in_place(&self) -> bool {
        self.manifests.join("kube-apiserver.yaml").exists()
            && !self.park.join("kube-apiserver.yaml").exists()
    }
}

#[test]
fn connectivity_checks_and_check_mode_run_no_drill() {
    let env = Env::start();
    let pid = env.kubelet.pid();
    let out = run_module("ha_verify", env.options(json!({})), Mode::NORMAL).ok();
    assert!(!out.changed());
    assert_eq!(out.json["readyz"], json!("ok"));
    assert_eq!(out.json["authenticated"], json!(true));
    let check = run_module(
        "ha_verify",
        env.options(json!({"drill": "local_apiserver"})),
        Mode::CHECK,
    )
    .ok();
    assert!(!check.changed());
    assert!(
        check.msg().contains("check mode: no drill"),
        "{}",
        check.msg()
    );
    assert_eq!(
        env.kubelet.pid(),
        pid,
        "check mode stopped the local apiserver"
    );
    assert!(env.manifest_in_place());
}

#[test]
fn the_drill_holds_the_local_apiserver_down_and_always_restores_it() {
    let env = Env::start();
    let pid = env.kubelet.pid().unwrap();
    let out = run_module(
        "ha_verify",
        env.options(json!({"drill": "local_apiserver"})),
        Mode::NORMAL,
    )
    .ok();
    assert!(out.changed());
    assert_eq!(out.json["requests_ok"], json!(10));
    assert_eq!(out.json["requests_failed"], json!(0));
    assert_eq!(out.json["restored"], json!(true));
    assert_eq!(out.json["pid_before"], json!(pid));
    let lat = &out.json["latency_ms"];
    assert!(
        lat["min"].as_f64().unwrap() <= lat["avg"].as_f64().unwrap()
            && lat["avg"].as_f64().unwrap() <= lat["max"].as_f64().unwrap(),
        "{lat}"
    );
    assert!(out.json["apiserver_stopped_seconds"].as_f64().unwrap() > 0.0);
    assert!(env.manifest_in_place());
    assert_ne!(
        env.kubelet.pid(),
        Some(pid),
        "the apiserver was not restarted"
    );
    env.cluster.wait_ready(env.local_port);
}

#[test]
fn a_drill_whose_requests_fail_reports_counts_and_still_restores() {
    let env = Env::start();
    // The "endpoint" is the local apiserver itself: with it down, every request fails.
    let opts = env.options(json!({"drill": "local_apiserver", "endpoint": format!("127.0.0.1:{}", env.local_port), "requests": 3}));
    let msg = run_module("ha_verify", opts, Mode::NORMAL).fail_msg();
    assert!(
        msg.contains("3 of 3 requests") && msg.contains("restored"),
        "{msg}"
    );
    assert!(env.manifest_in_place());
    env.cluster.wait_ready(env.local_port);
}

#[test]
fn sigterm_during_the_drill_restores_the_manifest() {
    let env = Env::start();
    let dir = tempfile::tempdir().unwrap();
    let mut args = env
        .options(json!({"drill": "local_apiserver", "requests": 200, "interval_ms": 100}))
        .as_object()
        .unwrap()
        .clone();
    common::add_ansible_keys(&mut args, Mode::NORMAL);
    let args_file = dir.path().join("args");
    fs::write(&args_file, Value::Object(args).to_string()).unwrap();
    let child = Command::new(common::bin_path("ha_verify"))
        .arg(&args_file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !env.park.join("kube-apiserver.yaml").exists() {
        assert!(
            Instant::now() < deadline,
            "the drill never parked the manifest"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["failed"], json!(true), "{json}");
    assert!(
        json["msg"]
            .as_str()
            .unwrap()
            .contains("interrupted by a signal"),
        "{json}"
    );
    assert!(env.manifest_in_place());
    env.cluster.wait_ready(env.local_port);
}

#[test]
fn a_manifest_left_parked_by_a_killed_drill_is_restored_first() {
    let env = Env::start();
    fs::create_dir_all(&env.park).unwrap();
    fs::rename(
        env.manifests.join("kube-apiserver.yaml"),
        env.park.join("kube-apiserver.yaml"),
    )
    .unwrap();
    let check = run_module("ha_verify", env.options(json!({})), Mode::CHECK).ok();
    assert!(check.json["restored_leftover"]
        .as_str()
        .unwrap()
        .starts_with("would restore"));
    assert!(
        !env.manifests.join("kube-apiserver.yaml").exists(),
        "check mode restored it"
    );
    let out = run_module("ha_verify", env.options(json!({})), Mode::NORMAL).ok();
    assert!(out.changed());
    assert!(out.json["restored_leftover"]
        .as_str()
        .unwrap()
        .starts_with("restored"));
    assert!(env.manifest_in_place());
    env.cluster.wait_ready(env.local_port);
}

#[test]
fn bad_inputs_fail_clearly_and_leave_the_manifest_alone() {
    let env = Env::start();
    let other = common::Pki::new();
    let other_ca = env.cluster.path("other-ca.crt");
    fs::write(&other_ca, other.ca.to_pem().unwrap()).unwrap();
    let cases = [
        (json!({"endpoint": "127.0.0.1"}), "has no port"),
        (json!({"endpoint": "127.0.0.1:0"}), "endpoint"),
        (
            json!({"endpoint": format!("127.0.0.1:{}", free_port())}),
            "cannot connect",
        ),
        (json!({"ca_cert_path": other_ca}), "TLS verification failed"),
        (json!({"drill": "everything"}), "option `drill`"),
        (json!({"requests": 0}), "option `requests`"),
        (
            json!({"drill_park_dir": env.manifests.join("parked")}),
            "inside the manifests directory",
        ),
        (
            json!({"kubeconfig": env.cluster.path("nope.conf")}),
            "nope.conf",
        ),
        (json!({"drill_mode": "x"}), "drill_mode"),
    ];
    let manifest = fs::read(env.manifests.join("kube-apiserver.yaml")).unwrap();
    for (extra, expect) in cases {
        let mut extra = extra;
        extra["drill"] = extra
            .get("drill")
            .cloned()
            .unwrap_or(json!("local_apiserver"));
        let msg = run_module("ha_verify", env.options(extra.clone()), Mode::NORMAL).fail_msg();
        assert!(msg.contains(expect), "{extra}: {msg}");
        assert!(env.manifest_in_place());
        assert_eq!(
            fs::read(env.manifests.join("kube-apiserver.yaml")).unwrap(),
            manifest
        );
    }
    assert!(!env.park.exists());
}

/// `served_cert_path`: the endpoint must present exactly that certificate; its fingerprint is
/// reported as openssl prints it. Another certificate fails naming both fingerprints, and with
/// `wait` the failure says how long and how often it tried.
#[test]
fn served_certificate_is_compared_with_the_one_on_disk() {
    let env = Env::start();
    let on_disk = env.cluster.path("apiserver.crt");
    let out = run_module(
        "ha_verify",
        env.options(json!({"served_cert_path": on_disk})),
        Mode::NORMAL,
    )
    .ok();
    let pem = fs::read(&on_disk).unwrap();
    let der = openssl::x509::X509::from_pem(&pem)
        .unwrap()
        .to_der()
        .unwrap();
    let want: Vec<String> = openssl::sha::sha256(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(out.json["served_cert_sha256"], json!(want.join(":")));
    assert_eq!(out.json["attempts"], json!(1));
    assert!(!out.changed());

    // A certificate the endpoint does not serve (valid, same CA): refused, and again after waiting.
    let other = env.cluster.path("other-leaf.crt");
    fs::write(&other, env.cluster.pki.ca.to_pem().unwrap()).unwrap();
    let msg = run_module(
        "ha_verify",
        env.options(json!({"served_cert_path": other})),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(
        msg.contains("served certificate: serves the certificate SHA-256"),
        "{msg}"
    );
    assert!(msg.contains(&other.display().to_string()), "{msg}");
    let started = Instant::now();
    let msg = run_module(
        "ha_verify",
        env.options(json!({"served_cert_path": other, "wait": 2})),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(msg.contains("did not pass the checks within 2s"), "{msg}");
    assert!(!msg.contains("(1 tries)"), "it tried only once: {msg}");
    assert!(started.elapsed() >= Duration::from_secs(1), "{msg}");

    // Not a certificate: named with the file.
    let garbage = env.cluster.path("garbage.crt");
    fs::write(&garbage, "not a certificate\n").unwrap();
    let msg = run_module(
        "ha_verify",
        env.options(json!({"served_cert_path": garbage})),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(
        msg.contains("garbage.crt") && msg.contains("not a PEM certificate"),
        "{msg}"
    );
}

/// `wait`: an apiserver that comes back while the module waits passes within the one call.
#[test]
fn wait_repeats_the_checks_until_the_apiserver_is_back() {
    let env = Env::start();
    let manifest = env.manifests.join("kube-apiserver.yaml");
    let aside = env.cluster.path("kube-apiserver.yaml.aside");
    fs::rename(&manifest, &aside).unwrap();
    // The stand-in kubelet stops it; readiness must fail before the wait starts.
    let local = json!({"endpoint": format!("127.0.0.1:{}", env.local_port)});
    let deadline = Instant::now() + Duration::from_secs(20);
    while run_module("ha_verify", env.options(local.clone()), Mode::NORMAL).json["failed"]
        != json!(true)
    {
        assert!(
            Instant::now() < deadline,
            "the local apiserver did not stop"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let back = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        fs::rename(&aside, &manifest).unwrap();
    });
    let mut opts = env.options(local);
    opts["wait"] = json!(60);
    opts["served_cert_path"] = json!(env.cluster.path("apiserver.crt"));
    let out = run_module("ha_verify", opts, Mode::NORMAL).ok();
    back.join().unwrap();
    assert!(out.json["attempts"].as_u64().unwrap() > 1, "{}", out.json);
    assert!(
        out.json["waited_seconds"].as_f64().unwrap() >= 1.0,
        "{}",
        out.json
    );
    assert!(
        out.json["msg"].as_str().unwrap().contains("tries"),
        "{}",
        out.json
    );
}

/// `join_discovery`: what `kubeadm join --token abcdef.0123456789abcdef
/// --discovery-token-ca-cert-hash sha256:...` would learn through the endpoint. A cluster-info
/// signed for its current kubeconfig and naming the endpoint passes (the CA pin reported as
/// kubeadm wants it); a kubeconfig changed after its signature, or naming another server, fails
/// naming why; with no signing token it passes with a warning. The token secret is never printed.
#[test]
fn join_discovery_checks_cluster_info_as_kubeadm_join_would() {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;
    let c = Cluster::start(1);
    let port = c.apiservers[0].0;
    let kubeconfig = c.admin_kubeconfig(port);
    let b64url = |d: &[u8]| {
        openssl::base64::encode_block(d)
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_")
    };
    let sign = |content: &str| {
        let header = b64url(br#"{"alg":"HS256","kid":"abcdef"}"#);
        let input = format!("{header}.{}", b64url(content.as_bytes()));
        let key = PKey::hmac(b"0123456789abcdef").unwrap();
        let mut s = Signer::new(MessageDigest::sha256(), &key).unwrap();
        format!(
            "{header}..{}",
            b64url(&s.sign_oneshot_to_vec(input.as_bytes()).unwrap())
        )
    };
    let ca = openssl::x509::X509::from_pem(&fs::read(c.path("ca.crt")).unwrap()).unwrap();
    let ca_b64 = openssl::base64::encode_block(&ca.to_pem().unwrap());
    let pin = format!(
        "sha256:{}",
        openssl::sha::sha256(&ca.public_key().unwrap().public_key_to_der().unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let info_text = |server: &str| {
        format!("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca_b64}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n")
    };
    let path = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
    let put_info = |data: Value| {
        let mut cm: Value = serde_json::from_slice(&c.request("GET", path, None).body).unwrap();
        cm["data"] = data;
        let r = c.request("PUT", path, Some(&cm));
        assert_eq!(r.status, 200, "{}", r.text());
    };
    let b64 = |s: &str| openssl::base64::encode_block(s.as_bytes());
    let token = json!({"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
        "data": {"token-id": b64("abcdef"), "token-secret": b64("0123456789abcdef"),
                 "usage-bootstrap-signing": b64("true"), "usage-bootstrap-authentication": b64("true")}});
    let r = c.request(
        "POST",
        "/api/v1/namespaces/kube-system/secrets",
        Some(&token),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let endpoint = format!("127.0.0.1:{port}");
    let opts = json!({"endpoint": endpoint, "ca_cert_path": c.path("ca.crt"), "kubeconfig": kubeconfig,
        "manifests_dir": c.path("m"), "drill_park_dir": c.path("p"), "join_discovery": true, "timeout": 5});

    // Signed for its current kubeconfig, naming the endpoint: a join would go there.
    let good = info_text(&format!("https://{endpoint}"));
    put_info(json!({"kubeconfig": good, "jws-kubeconfig-abcdef": sign(&good)}));
    let out = run_module("ha_verify", opts.clone(), Mode::NORMAL).ok();
    assert_eq!(
        out.json["join_discovery"],
        json!({"server": format!("https://{endpoint}"), "ca_cert_hash": pin, "signed_with": ["abcdef"]})
    );
    assert!(
        !out.stdout.contains("0123456789abcdef"),
        "the token secret was printed: {}",
        out.stdout
    );
    common::assert_returns_documented("ha_verify", &out.json);

    // The kubeconfig changed after it was signed (the bootstrap signer did not renew it).
    let stale = info_text(&format!("https://{endpoint}/"));
    put_info(json!({"kubeconfig": stale, "jws-kubeconfig-abcdef": sign(&good)}));
    let started = Instant::now();
    let mut waiting = opts.clone();
    waiting["wait"] = json!(3);
    let msg = run_module("ha_verify", waiting, Mode::NORMAL).fail_msg();
    assert!(
        msg.contains("jws-kubeconfig-abcdef")
            && msg.contains("not renewed after the kubeconfig changed"),
        "{msg}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "retried while `wait` lasts (the signer may catch up)"
    );
    assert!(!msg.contains("0123456789abcdef"), "{msg}");

    // Correctly signed, but naming master 1: a node joining now would be pinned to it.
    let pinned = info_text("https://172.30.0.11:6443");
    put_info(json!({"kubeconfig": pinned, "jws-kubeconfig-abcdef": sign(&pinned)}));
    let msg = run_module("ha_verify", opts.clone(), Mode::NORMAL).fail_msg();
    assert!(
        msg.contains("cluster-info names https://172.30.0.11:6443 where the endpoint"),
        "{msg}"
    );

    // No signing token left (they expire): the server and CA still checked, a warning says so.
    assert_eq!(
        c.request(
            "DELETE",
            "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef",
            None
        )
        .status,
        200
    );
    put_info(json!({"kubeconfig": good}));
    let out = run_module("ha_verify", opts, Mode::NORMAL).ok();
    assert_eq!(out.json["join_discovery"]["signed_with"], json!([]));
    assert!(
        out.stdout.contains("no bootstrap token signs it now"),
        "{}",
        out.stdout
    );
}
