//! Integration tests of `control_plane_info`, run as Ansible runs it, on kubespray-shaped trees:
//! it reports every fact and never changes anything.

mod apiserver_env;
mod common;

use apiserver_env::{free_port, Cluster};
use common::*;
use serde_json::json;
use std::fs;

const M: &str = "control_plane_info";

fn info(fx: &Fixture, mode: Mode) -> Outcome {
    run_module(
        M,
        json!({"host_root": fx.root(), "kube_config_dir": fx.kube_dir(), "home_kubeconfig": fx.path("root/.kube/config")}),
        mode,
    )
    .ok()
}

#[test]
fn pinned_master_facts() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let before = fx.snapshot();
    for mode in [Mode::NORMAL, Mode::CHECK, Mode::CHECK_DIFF] {
        let out = info(&fx, mode);
        assert!(!out.changed());
        assert_no_secrets(&out.stdout, &fx.secrets, "control_plane_info");
        let j = &out.json;
        let pinned = format!("https://{MASTER1_IP}:6443");
        for key in [
            "admin",
            "super-admin",
            "controller-manager",
            "scheduler",
            "kubelet",
            "home",
        ] {
            assert_eq!(j["servers"][key], json!(pinned), "{key}: {}", out.stdout);
        }
        assert_eq!(
            j["kubeconfigs"]["kubelet"]["auth"],
            json!("client_certificate_file")
        );
        assert_eq!(
            j["kubeconfigs"]["admin"]["auth"],
            json!("client_certificate_data")
        );
        assert_eq!(
            j["kubeadm_config"]["api_version"],
            json!("kubeadm.k8s.io/v1beta3")
        );
        assert_eq!(
            j["kubeadm_config"]["control_plane_endpoint"],
            json!(format!("{MASTER1_IP}:6443"))
        );
        assert_eq!(j["kubeadm_config"]["advertise_address"], json!(MASTER1_IP));
        assert_eq!(
            j["kubeadm_config"]["cert_sans"].as_array().unwrap().len(),
            9
        );
        let cert = &j["apiserver_cert"];
        assert_eq!(cert["chains_to_ca"], json!(true));
        assert_eq!(cert["matches_key"], json!(true));
        assert!(cert["ip_sans"]
            .as_array()
            .unwrap()
            .contains(&json!(MASTER1_IP)));
        assert!(cert["dns_sans"]
            .as_array()
            .unwrap()
            .contains(&json!("kubernetes.default.svc.cluster.local")));
        assert!(cert["not_after"].as_str().unwrap().ends_with('Z'));
        assert_eq!(j["ca_key_present"], json!(true));
        assert_eq!(
            j["static_pods"],
            json!([
                "kube-apiserver.yaml",
                "kube-controller-manager.yaml",
                "kube-scheduler.yaml"
            ])
        );
        assert_eq!(j["local_proxy"]["kind"], json!("none"));
        assert_eq!(j["etcd"]["mode"], json!("host"));
        assert!(j.get("warnings").is_none(), "{}", out.stdout);
    }
    assert_same_tree(&before, &fx.snapshot());
}

#[test]
fn kubespray_master_with_v1beta4_and_localhost_servers() {
    let fx = Fixture::kubespray(Layout::Kubespray);
    let out = info(&fx, Mode::NORMAL);
    assert_eq!(
        out.json["servers"]["scheduler"],
        json!("https://127.0.0.1:6443")
    );
    assert_eq!(
        out.json["kubeadm_config"]["api_version"],
        json!("kubeadm.k8s.io/v1beta4")
    );
}

#[test]
fn worker_with_nginx_local_proxy() {
    let fx = Fixture::worker();
    let out = info(&fx, Mode::NORMAL);
    let j = &out.json;
    assert_eq!(j["servers"]["kubelet"], json!("https://localhost:6443"));
    assert_eq!(j["kubeconfigs"]["admin"]["present"], json!(false));
    assert_eq!(j["local_proxy"]["kind"], json!("nginx"));
    assert_eq!(
        j["local_proxy"]["upstreams"],
        json!(["172.30.0.11:6443", "172.30.0.12:6443", "172.30.0.13:6443"])
    );
    assert_eq!(j["etcd"]["mode"], json!("none"));
    assert_eq!(j["apiserver_cert"]["present"], json!(false));
    assert_eq!(j["ca_key_present"], json!(false));
}

#[test]
fn broken_files_are_reported_not_fatal() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let cfg = fx.path("etc/kubernetes/kubeadm-config.yaml");
    let text = fx.read("etc/kubernetes/kubeadm-config.yaml").replace(
        "v1beta3\nkind: ClusterConfiguration",
        "v1beta2\nkind: ClusterConfiguration",
    );
    fs::write(&cfg, text).unwrap();
    fs::write(fx.path("etc/kubernetes/scheduler.conf"), "clusters: [\n").unwrap();
    fs::write(
        fx.path("etc/kubernetes/manifests/kube-apiserver.yaml.bak"),
        "x",
    )
    .unwrap();
    fs::remove_file(fx.path("etc/kubernetes/ssl/ca.key")).unwrap();
    let before = fx.snapshot();
    let out = info(&fx, Mode::NORMAL);
    let j = &out.json;
    assert_eq!(
        j["kubeadm_config"]["api_version"],
        json!("kubeadm.k8s.io/v1beta2")
    );
    assert_eq!(j["kubeadm_config"]["supported"], json!(false));
    assert!(j["kubeconfigs"]["scheduler"]["error"]
        .as_str()
        .unwrap()
        .contains("not valid YAML"));
    assert_eq!(j["ca_key_present"], json!(false));
    let warnings = j["warnings"].to_string();
    assert!(warnings.contains("kube-apiserver.yaml.bak"), "{warnings}");
    assert!(warnings.contains("v1beta2"), "{warnings}");
    assert_same_tree(&before, &fx.snapshot());
}

#[test]
fn bad_options_fail_clearly() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let before = fx.snapshot();
    let cases = [
        (
            json!({"kube_config_dir": fx.path("nope")}),
            vec!["kube_config_dir", "not a directory"],
        ),
        (
            json!({"kube_config_dir": fx.kube_dir(), "verbose": true}),
            vec!["verbose", "supported options"],
        ),
        (
            json!({"kube_config_dir": ["a"]}),
            vec!["kube_config_dir", "a list"],
        ),
        (
            json!({"kube_config_dir": fx.path("etc/kubernetes/admin.conf")}),
            vec!["admin.conf", "not a directory"],
        ),
    ];
    for (options, needles) in cases {
        let msg = run_module(M, options.clone(), Mode::NORMAL).fail_msg();
        for n in needles {
            assert!(msg.contains(n), "{options}: {msg:?} lacks {n:?}");
        }
    }
    assert_same_tree(&before, &fx.snapshot());
}

/// With `masters`, the pins of an unconverted pinned master: every kubeconfig kubeha converts
/// names master 1 (fixed by kubeha), plus a planted user kubeconfig, a kubeconfig of an add-on
/// under /etc and kubespray's artifacts file on the controller (not fixed), each named with its
/// fix. The tree is left as it was, and no key material is printed.
#[test]
fn pins_of_a_pinned_master_are_listed_with_their_fixes() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let admin = fx.read("etc/kubernetes/admin.conf");
    for rel in [
        "home/ops/.kube/config",
        "etc/kube-router/kubeconfig",
        "controller/artifacts/admin.conf",
    ] {
        let p = fx.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, &admin).unwrap();
    }
    let before = fx.snapshot();
    let out = run_module(
        M,
        json!({
            "host_root": fx.root(), "kube_config_dir": fx.kube_dir(),
            "home_kubeconfig": fx.path("root/.kube/config"),
            "masters": [format!("master1={MASTER1_IP}"), "master2=172.30.0.12", "master3=172.30.0.13"],
            "endpoint": format!("{VIP}:6443"),
            "this_host": [MASTER1_IP],
            "extra_kubeconfigs": [fx.path("controller/artifacts/admin.conf")],
        }),
        Mode::CHECK,
    )
    .ok();
    assert!(!out.changed());
    assert_no_secrets(&out.stdout, &fx.secrets, "control_plane_info pins");
    let pins = out.json["pins"].as_array().expect("pins").clone();
    let root = fx.root().display().to_string();
    let found: Vec<(String, bool, bool)> = pins
        .iter()
        .map(|p| {
            (
                p["location"].as_str().unwrap().replace(&root, ""),
                p["fixed_by_kubeha"].as_bool().unwrap(),
                p["local_by_design"].as_bool().unwrap(),
            )
        })
        .collect();
    let cluster = |f: &str| format!("{f} cluster \"cluster.local\"");
    let want = vec![
        (cluster("/etc/kubernetes/admin.conf"), true, false),
        (cluster("/etc/kubernetes/super-admin.conf"), true, false),
        (
            cluster("/etc/kubernetes/controller-manager.conf"),
            true,
            true,
        ),
        (cluster("/etc/kubernetes/scheduler.conf"), true, true),
        (cluster("/etc/kubernetes/kubelet.conf"), true, true),
        (cluster("/root/.kube/config"), true, false),
        (cluster("/home/ops/.kube/config"), false, false),
        (cluster("/controller/artifacts/admin.conf"), false, false),
        (cluster("/etc/kube-router/kubeconfig"), false, false),
    ];
    assert_eq!(found, want, "{}", out.stdout);
    for p in &pins {
        assert_eq!(p["master"], "master1");
        assert_eq!(p["kind"], "kubeconfig");
        if p["fixed_by_kubeha"] == json!(false) {
            let fix = p["fix"].as_str().unwrap();
            assert!(fix.contains(&format!("https://{VIP}:6443")), "{fix}");
        }
    }
    assert_same_tree(&before, &fx.snapshot());
    // masters without endpoint: refused naming the option
    let msg = run_module(
        M,
        json!({"kube_config_dir": fx.kube_dir(), "masters": ["10.0.0.11"]}),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(
        msg.contains("`endpoint`") && msg.contains("masters"),
        "{msg}"
    );
}

/// `disk_paths`: per directory its nearest existing one, free space, writability and the disk
/// usage of its files; a relative path is refused naming the option.
#[test]
fn disk_paths_report_room_for_the_copies() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let state = fx.path("var/lib/kubeha");
    let out = run_module(
        "control_plane_info",
        json!({"kube_config_dir": fx.kube_dir(), "host_root": fx.root(),
               "disk_paths": [fx.kube_dir(), state]}),
        Mode::NORMAL,
    )
    .ok();
    let disk = &out.json["disk"];
    let etc = &disk[fx.kube_dir().display().to_string()];
    assert_eq!(etc["exists"], json!(true), "{}", out.stdout);
    assert_eq!(etc["writable"], json!(true));
    // the fixture's kubeconfigs, kubeadm config and certificates: some KiB, not nothing
    assert!(etc["files_kb"].as_u64().unwrap() >= 8, "{etc}");
    assert!(etc["free_kb"].as_u64().unwrap() > 0);
    let st = &disk[state.display().to_string()];
    assert_eq!(st["exists"], json!(false));
    // the fixture has var/lib (kubelet's files) but no var/lib/kubeha yet
    assert_eq!(
        st["nearest"],
        json!(fx.path("var/lib").display().to_string())
    );
    assert_eq!(st["files_kb"], json!(0));
    assert_returns_documented("control_plane_info", &out.json);
    let msg = run_module(
        "control_plane_info",
        json!({"kube_config_dir": fx.kube_dir(), "disk_paths": ["var/lib/kubeha"]}),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(
        msg.contains("option `disk_paths`") && msg.contains("not an absolute path"),
        "{msg}"
    );
}

/// `lb_survey_*`: the certificate presented through the endpoint and by each master directly, as
/// fingerprints; an unreachable master and a foreign CA are errors in the result, never a failure.
#[test]
fn lb_survey_reports_the_presented_certificates() {
    let cluster = Cluster::start(1);
    let port = cluster.apiservers[0].0;
    let closed = free_port();
    let served = openssl::x509::X509::from_pem(&fs::read(cluster.path("apiserver.crt")).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    let want = openssl::sha::sha256(&served)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let options = |ca: &std::path::Path| {
        json!({
            "host_root": cluster.dir(), "kube_config_dir": cluster.dir(),
            "endpoint": format!("127.0.0.1:{port}"),
            "lb_survey_connections": 3,
            "lb_survey_backends": [format!("m1=127.0.0.1:{port}"), format!("m2=127.0.0.1:{closed}")],
            "ca_cert_path": ca,
        })
    };
    for mode in [Mode::NORMAL, Mode::CHECK] {
        let out = run_module(M, options(&cluster.path("ca.crt")), mode).ok();
        assert!(!out.changed());
        let s = &out.json["lb_survey"];
        assert_eq!(
            s["through_endpoint"],
            json!([want, want, want]),
            "{}",
            out.stdout
        );
        assert_eq!(s["direct"]["m1"], json!(want));
        assert_eq!(s["direct"]["m2"], json!("error"));
        let errors = s["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .as_str()
                .unwrap()
                .starts_with("m2 directly: cannot connect"),
            "{errors:?}"
        );
        assert_returns_documented(M, &out.json);
    }

    // Signed by another CA than the one given: every handshake fails verification.
    let (other_ca, _) = self_signed_ca("not the cluster CA");
    let other = cluster.path("other-ca.crt");
    fs::write(&other, other_ca.to_pem().unwrap()).unwrap();
    let out = run_module(M, options(&other), Mode::NORMAL).ok();
    let s = &out.json["lb_survey"];
    assert_eq!(s["through_endpoint"], json!(["error", "error", "error"]));
    assert_eq!(s["direct"]["m1"], json!("error"));
    assert!(
        s["errors"][0]
            .as_str()
            .unwrap()
            .contains("TLS verification failed"),
        "{s}"
    );

    // An unreadable CA: every entry an error naming it, not a failed module.
    let missing = cluster.path("no-such-ca.crt");
    let out = run_module(M, options(&missing), Mode::NORMAL).ok();
    let first = out.json["lb_survey"]["errors"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        first.contains("ca_cert_path") && first.contains("no-such-ca.crt"),
        "{first}"
    );

    // A name that resolves nowhere (.invalid, RFC 6761): reported, and every connection an error.
    let mut o = options(&cluster.path("ca.crt"));
    o["endpoint"] = json!("lb.kubeha.invalid:6443");
    o["lb_survey_connections"] = json!(1);
    let out = run_module(M, o, Mode::NORMAL).ok();
    assert_eq!(
        out.json["endpoint_resolution"]["name"],
        json!("lb.kubeha.invalid")
    );
    assert!(
        out.json["endpoint_resolution"]["error"].is_string(),
        "{}",
        out.stdout
    );
    assert_eq!(out.json["lb_survey"]["through_endpoint"], json!(["error"]));
    // lb_survey_address: the same name, but the survey connects to the address given on the
    // endpoint's port (a name not yet repointed to the load balancer); the name is still looked up.
    let mut o = options(&cluster.path("ca.crt"));
    o["endpoint"] = json!(format!("lb.kubeha.invalid:{port}"));
    o["lb_survey_address"] = json!("127.0.0.1");
    let out = run_module(M, o, Mode::NORMAL).ok();
    assert_eq!(
        out.json["lb_survey"]["through_endpoint"],
        json!([want, want, want]),
        "{}",
        out.stdout
    );
    assert!(
        out.json["endpoint_resolution"]["error"].is_string(),
        "{}",
        out.stdout
    );
    assert_returns_documented(M, &out.json);
    // Without a survey, a name is still looked up (the role's verify step judges it).
    let out = run_module(
        M,
        json!({"host_root": cluster.dir(), "kube_config_dir": cluster.dir(), "endpoint": "localhost:6443"}),
        Mode::NORMAL,
    )
    .ok();
    let addresses = out.json["endpoint_resolution"]["addresses"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        addresses.contains(&json!("127.0.0.1")) || addresses.contains(&json!("::1")),
        "{addresses:?}"
    );
    // An IP endpoint needs no lookup.
    let out = run_module(M, options(&cluster.path("ca.crt")), Mode::NORMAL).ok();
    assert!(
        out.json.get("endpoint_resolution").is_none(),
        "{}",
        out.stdout
    );

    // Bad options fail, naming the option.
    let mut o = options(&cluster.path("ca.crt"));
    o.as_object_mut().unwrap().remove("endpoint");
    let msg = run_module(M, o, Mode::NORMAL).fail_msg();
    assert!(
        msg.contains("endpoint") && msg.contains("lb_survey_connections"),
        "{msg}"
    );
    let mut o = options(&cluster.path("ca.crt"));
    o["lb_survey_address"] = json!("not an address");
    let msg = run_module(M, o, Mode::NORMAL).fail_msg();
    assert!(
        msg.contains("lb_survey_address") && msg.contains("not an address"),
        "{msg}"
    );
    let mut o = options(&cluster.path("ca.crt"));
    o.as_object_mut().unwrap().remove("endpoint");
    o["lb_survey_connections"] = json!(0);
    o["lb_survey_address"] = json!("127.0.0.1");
    let msg = run_module(M, o, Mode::NORMAL).fail_msg();
    assert!(
        msg.contains("endpoint") && msg.contains("lb_survey_address"),
        "{msg}"
    );
    let mut o = options(&cluster.path("ca.crt"));
    o["lb_survey_backends"] = json!(["127.0.0.1:6443"]);
    let msg = run_module(M, o, Mode::NORMAL).fail_msg();
    assert!(
        msg.contains("lb_survey_backends") && msg.contains("name=address:port"),
        "{msg}"
    );
}

/// `cluster_kubeconfig`: the cluster's objects naming a master, read through a real (emulated)
/// apiserver with TLS verified: a Cilium-shaped DaemonSet's env (not fixed by kubeha), kube-proxy's
/// ConfigMap (fixed by the conversion), Calico's kubernetes-services-endpoint; an object naming the
/// endpoint is no pin. An API that cannot be read is a warning and `cluster_pin_scan_error`, never a
/// failure; without `masters` no pins are looked for.
#[test]
fn cluster_pins_are_read_through_the_api() {
    let cluster = Cluster::start(1);
    let port = cluster.apiservers[0].0;
    let kubeconfig = cluster.admin_kubeconfig(port);
    let kubeconfig_text = |server: &str| {
        format!("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: {server}\n  name: default\n")
    };
    let ns = "kubeha-pins-test";
    let created = cluster.request(
        "POST",
        "/api/v1/namespaces",
        Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
    );
    assert!(
        created.status == 201 || created.status == 409,
        "{}",
        created.status
    );
    let env = |host: &str| json!([{"name": "KUBERNETES_SERVICE_HOST", "value": host}, {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"}]);
    let daemonset = |name: &str, host: &str| {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": name, "namespace": ns, "labels": {"k8s-app": name}},
               "spec": {"selector": {"matchLabels": {"k8s-app": name}},
                        "template": {"metadata": {"labels": {"k8s-app": name}},
                                     "spec": {"containers": [{"name": "agent", "image": "x", "env": env(host)}]}}}})
    };
    let configmap = |name: &str, data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data});
    for (path, body) in [
        (
            "/apis/apps/v1/namespaces/kubeha-pins-test/daemonsets",
            daemonset("cilium", "10.99.0.11"),
        ),
        (
            "/apis/apps/v1/namespaces/kubeha-pins-test/daemonsets",
            daemonset("on-the-vip", "10.99.0.10"),
        ),
        (
            "/api/v1/namespaces/kubeha-pins-test/configmaps",
            configmap(
                "kubernetes-services-endpoint",
                json!({"KUBERNETES_SERVICE_HOST": "10.99.0.12", "KUBERNETES_SERVICE_PORT": "6443"}),
            ),
        ),
        (
            "/api/v1/namespaces/kubeha-pins-test/configmaps",
            configmap(
                "addon",
                json!({"kubeconfig": kubeconfig_text("https://10.99.0.11:6443")}),
            ),
        ),
    ] {
        let r = cluster.request("POST", path, Some(&body));
        assert!(
            r.status == 201 || r.status == 409,
            "POST {path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let options = |kubeconfig: &std::path::Path| {
        json!({
            "host_root": cluster.dir(), "kube_config_dir": cluster.dir(),
            "masters": ["m1=10.99.0.11", "m2=10.99.0.12"],
            "endpoint": "10.99.0.10:6443",
            "cluster_kubeconfig": kubeconfig,
        })
    };
    let out = run_module(M, options(&kubeconfig), Mode::CHECK).ok();
    assert!(!out.changed());
    assert_returns_documented(M, &out.json);
    // only this test's namespace: the shared apiserver may hold other tests' objects
    let mine: Vec<(String, String, String, bool)> = out.json["cluster_pins"]
        .as_array()
        .expect("cluster_pins")
        .iter()
        .filter(|p| p["id"].as_str().unwrap_or("").contains(&format!("/{ns}/")))
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap().to_string(),
                p["master"].as_str().unwrap().to_string(),
                p["fixed_by_kubeha"].as_bool().unwrap(),
            )
        })
        .collect();
    let want = vec![
        (
            format!("DaemonSet/{ns}/cilium"),
            "KUBERNETES_SERVICE_HOST=10.99.0.11".to_string(),
            "m1".to_string(),
            false,
        ),
        (
            format!("ConfigMap/{ns}/addon"),
            "server: https://10.99.0.11:6443".to_string(),
            "m1".to_string(),
            false,
        ),
        (
            format!("ConfigMap/{ns}/kubernetes-services-endpoint"),
            "KUBERNETES_SERVICE_HOST: 10.99.0.12".to_string(),
            "m2".to_string(),
            false,
        ),
    ];
    assert_eq!(mine, want, "{}", out.stdout);
    assert!(
        out.json["cluster_pin_scan_objects"].as_u64().unwrap() >= 4,
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("BEGIN"),
        "no key material: {}",
        out.stdout
    );

    // An apiserver that does not answer: a warning and the reason, the module does not fail.
    let dead = cluster.admin_kubeconfig(free_port());
    let out = run_module(M, options(&dead), Mode::NORMAL).ok();
    let error = out.json["cluster_pin_scan_error"]
        .as_str()
        .expect("error")
        .to_string();
    assert!(
        error.contains("cannot connect") || error.contains("onnection refused"),
        "{error}"
    );
    assert!(out.json.get("cluster_pins").is_none(), "{}", out.stdout);
    assert_returns_documented(M, &out.json);

    // Without masters there is nothing to look for: no pins, only the cluster's facts.
    let out = run_module(
        M,
        json!({"kube_config_dir": cluster.dir(), "cluster_kubeconfig": kubeconfig}),
        Mode::NORMAL,
    )
    .ok();
    assert!(out.json.get("cluster_pins").is_none(), "{}", out.stdout);
    assert!(
        out.json["cluster_facts"]["server_version"].is_string(),
        "{}",
        out.stdout
    );
}

/// `cluster_kubeconfig` reads the cluster's facts through a real (emulated) apiserver: its version,
/// each Node's kubelet version, kubeadm's ClusterConfiguration from kube-system/kubeadm-config and
/// the apiserver SANs kubeadm derives from it; a cluster without that ConfigMap (or with one that
/// does not parse) gets an error naming it and the fix, never a failed module.
#[test]
fn cluster_facts_are_read_through_the_api() {
    let cluster = Cluster::start(1);
    let port = cluster.apiservers[0].0;
    let kubeconfig = cluster.admin_kubeconfig(port);
    let options = json!({"kube_config_dir": cluster.dir(), "cluster_kubeconfig": kubeconfig});
    let facts = || {
        let out = run_module(M, options.clone(), Mode::CHECK).ok();
        assert!(!out.changed());
        assert_returns_documented(M, &out.json);
        out.json["cluster_facts"].clone()
    };
    let before = facts();
    let version = before["server_version"]
        .as_str()
        .expect("server_version")
        .to_string();
    assert!(version.starts_with("v1."), "{before}");
    assert_eq!(before["server_minor"]["major"], 1, "{before}");

    let cm_path = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config";
    let configmap = |text: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
               "data": {"ClusterConfiguration": text}})
    };
    let put = |body: &serde_json::Value| {
        let r = cluster.request("PUT", cm_path, Some(body));
        if r.status == 404 {
            let r = cluster.request(
                "POST",
                "/api/v1/namespaces/kube-system/configmaps",
                Some(body),
            );
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        } else {
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        }
    };
    let r = cluster.request(
        "POST",
        "/api/v1/nodes",
        Some(
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "facts-node"},
                     "status": {"nodeInfo": {"kubeletVersion": "v1.32.4"}}}),
        ),
    );
    assert!(
        r.status == 201 || r.status == 409,
        "POST node: {}",
        r.status
    );
    put(&configmap(
        "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\ncontrolPlaneEndpoint: 172.30.0.11:6443\n\
         kind: ClusterConfiguration\nkubernetesVersion: v1.32.4\n\
         networking:\n  dnsDomain: cluster.local\n  serviceSubnet: 10.96.0.0/12\n",
    ));
    let after = facts();
    assert_eq!(
        after["kubelet_versions"]["facts-node"], "v1.32.4",
        "{after}"
    );
    let kubeadm = &after["kubeadm"];
    assert_eq!(kubeadm["kubernetes_version"], "v1.32.4", "{after}");
    assert_eq!(
        kubeadm["control_plane_endpoint"], "172.30.0.11:6443",
        "{after}"
    );
    assert_eq!(
        kubeadm["apiserver_sans"],
        json!([
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
            "172.30.0.11"
        ]),
        "{after}"
    );

    // A ClusterConfiguration that does not parse: the error names the ConfigMap, the key and the fix.
    put(&configmap("kind: [unclosed\n"));
    let kubeadm_error = || {
        let f = facts();
        f["kubeadm"]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("kubeadm.error: {f}"))
            .to_string()
    };
    let error = kubeadm_error();
    assert!(
        error.contains("ConfigMap kube-system/kubeadm-config key ClusterConfiguration")
            && error.contains("kubectl -n kube-system edit configmap kubeadm-config"),
        "{error}"
    );
    // No ConfigMap at all (a cluster kubeadm did not make): an error naming it, not a failure.
    let r = cluster.request("DELETE", cm_path, None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let error = kubeadm_error();
    assert!(
        error.contains("cannot read ConfigMap kube-system/kubeadm-config"),
        "{error}"
    );
}
