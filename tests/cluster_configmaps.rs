//! Integration tests of `cluster_configmaps` against a real etcd and the kube-apiserver emulator
//! (verified TLS, client certificate, resourceVersion from etcd). The 409 retry loop is
//! unit-tested with a fake transport in `src/kubeapi/configmap.rs`.

mod apiserver_env;
mod common;

use apiserver_env::{Cluster, CLUSTER_CONFIGURATION, KUBE_PROXY_KUBECONFIG};
use common::{line_changes, run_module, Mode};
use serde_json::{json, Value};

fn rvs(c: &Cluster) -> Vec<String> {
    [
        ("kube-system", "kube-proxy"),
        ("kube-system", "kubeadm-config"),
        ("kube-public", "cluster-info"),
    ]
    .iter()
    .map(|(ns, n)| {
        c.configmap(ns, n)["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    })
    .collect()
}

fn data(c: &Cluster, ns: &str, name: &str, key: &str) -> String {
    c.configmap(ns, name)["data"][key]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn configmaps_are_pointed_at_the_endpoint_with_minimal_edits() {
    let c = Cluster::start(1);
    let kubeconfig = c.admin_kubeconfig(c.apiservers[0].0);
    let backup_dir = c.path("backups");
    let opts = json!({
        "kubeconfig": kubeconfig,
        "control_plane_endpoint": "172.30.0.10:6443",
        "cert_sans": ["172.30.0.10", "lb.kubeha.local"],
        "backup_dir": backup_dir,
    });
    let before_rvs = rvs(&c);
    let cluster_info_before = data(&c, "kube-public", "cluster-info", "kubeconfig");

    // Check mode: predicts three changes, writes nothing.
    let check = run_module("cluster_configmaps", opts.clone(), Mode::CHECK_DIFF).ok();
    assert!(check.changed());
    assert_eq!(
        check.json["configmaps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["changed"] == json!(true))
            .count(),
        3
    );
    assert_eq!(rvs(&c), before_rvs);
    assert!(!backup_dir.exists());

    // Real run.
    let real = run_module("cluster_configmaps", opts.clone(), Mode::DIFF).ok();
    assert!(real.changed());
    let maps = real.json["configmaps"].as_array().unwrap().clone();
    assert_eq!(maps.len(), 3);
    let after_rvs = rvs(&c);
    for (i, m) in maps.iter().enumerate() {
        assert_eq!(m["changed"], json!(true), "{m}");
        assert_eq!(m["resource_version_before"], json!(before_rvs[i]));
        assert_eq!(m["resource_version_after"], json!(after_rvs[i]));
        assert_ne!(before_rvs[i], after_rvs[i]);
        assert_eq!(m["attempts"], json!(1));
    }
    assert_eq!(
        maps[0]["before"],
        json!({"server": "https://127.0.0.1:6443"})
    );
    assert_eq!(
        maps[0]["after"],
        json!({"server": "https://172.30.0.10:6443"})
    );
    assert_eq!(
        maps[1]["before"]["controlPlaneEndpoint"],
        json!("172.30.0.11:6443")
    );
    assert_eq!(
        maps[1]["after"]["certSANs"],
        json!([
            "kubernetes",
            "172.30.0.11",
            "172.30.0.10",
            "lb.kubeha.local"
        ])
    );

    // Exactly the expected lines changed.
    let (removed, added) = line_changes(
        KUBE_PROXY_KUBECONFIG,
        &data(&c, "kube-system", "kube-proxy", "kubeconfig.conf"),
    );
    assert_eq!(
        (removed, added),
        (
            vec!["    server: https://127.0.0.1:6443".to_string()],
            vec!["    server: https://172.30.0.10:6443".to_string()]
        )
    );
    let (removed, added) = line_changes(
        CLUSTER_CONFIGURATION,
        &data(&c, "kube-system", "kubeadm-config", "ClusterConfiguration"),
    );
    assert_eq!(removed, vec!["controlPlaneEndpoint: 172.30.0.11:6443"]);
    assert_eq!(
        added,
        vec![
            "  - 172.30.0.10",
            "  - lb.kubeha.local",
            "controlPlaneEndpoint: 172.30.0.10:6443"
        ]
    );
    let (removed, added) = line_changes(
        &cluster_info_before,
        &data(&c, "kube-public", "cluster-info", "kubeconfig"),
    );
    assert_eq!(
        (removed, added),
        (
            vec!["    server: https://172.30.0.11:6443".to_string()],
            vec!["    server: https://172.30.0.10:6443".to_string()]
        )
    );
    // Other keys untouched.
    assert_eq!(
        data(&c, "kube-public", "cluster-info", "jws-kubeconfig-abcdef"),
        "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..x"
    );

    // Backups hold the original objects; the diff is redacted.
    let saved: Value = serde_json::from_slice(
        &std::fs::read(backup_dir.join("kube-system.kube-proxy.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        saved["data"]["kubeconfig.conf"],
        json!(KUBE_PROXY_KUBECONFIG)
    );
    assert_eq!(saved["metadata"]["resourceVersion"], json!(before_rvs[0]));
    let diff = real.json["diff"].as_array().unwrap();
    assert_eq!(diff.len(), 3);
    let ci_diff = diff[2]["before"].as_str().unwrap();
    assert!(
        ci_diff.contains("certificate-authority-data: <redacted>"),
        "{ci_diff}"
    );

    // Second run: nothing changes, backups kept as they were.
    let saved_bytes = std::fs::read(backup_dir.join("kube-system.kube-proxy.json")).unwrap();
    let again = run_module("cluster_configmaps", opts, Mode::NORMAL).ok();
    assert!(!again.changed(), "{}", again.stdout);
    assert_eq!(rvs(&c), after_rvs);
    assert_eq!(
        std::fs::read(backup_dir.join("kube-system.kube-proxy.json")).unwrap(),
        saved_bytes
    );
}

#[test]
fn bad_inputs_fail_clearly_and_change_nothing() {
    let c = Cluster::start(1);
    let kubeconfig = c.admin_kubeconfig(c.apiservers[0].0);
    // a kubeconfig whose CA is another cluster's: TLS verification must fail
    let other = common::Pki::new();
    let wrong_ca = c.path("wrong-ca.conf");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let ca_b64 = openssl::base64::encode_block(&c.pki.ca.to_pem().unwrap());
    let other_b64 = openssl::base64::encode_block(&other.ca.to_pem().unwrap());
    std::fs::write(&wrong_ca, text.replace(&ca_b64, &other_b64)).unwrap();
    let before = rvs(&c);
    let base = |extra: Value| {
        let mut o = json!({"kubeconfig": kubeconfig, "control_plane_endpoint": "172.30.0.10:6443"});
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        o
    };
    let cases = [
        (
            base(json!({"control_plane_endpoint": "172.30.0.10"})),
            "has no port",
        ),
        (
            base(json!({"control_plane_endpoint": "172.30.0.10:0"})),
            "control_plane_endpoint",
        ),
        (
            base(json!({"control_plane_endpoint": "172.30.0.10:65536"})),
            "control_plane_endpoint",
        ),
        (
            base(json!({"control_plane_endpoint": "fd00::10:6443"})),
            "control_plane_endpoint",
        ),
        (
            base(json!({"kubeconfig": c.path("missing.conf")})),
            "missing.conf",
        ),
        (
            base(json!({"kubeconfig": wrong_ca})),
            "TLS verification failed",
        ),
        (
            base(json!({"api_server": "http://127.0.0.1:1"})),
            "api_server",
        ),
        (
            base(
                json!({"api_server": format!("https://127.0.0.1:{}", apiserver_env::free_port())}),
            ),
            "cannot connect",
        ),
        (base(json!({"cert_sans": ["bad name"]})), "cert_sans"),
        (
            base(json!({"update_kube_proxy": "maybe"})),
            "update_kube_proxy",
        ),
        (
            base(json!({"controlplane_endpoint": "x"})),
            "controlplane_endpoint",
        ),
    ];
    for (opts, expect) in cases {
        let msg = run_module("cluster_configmaps", opts.clone(), Mode::NORMAL).fail_msg();
        assert!(msg.contains(expect), "{opts}: {msg}");
    }
    assert_eq!(rvs(&c), before);
}

/// A ConfigMap that cannot be edited (here an unsupported ClusterConfiguration apiVersion in
/// kubeadm-config, the second of the three) fails the run before ANY ConfigMap is written: the
/// first one (kube-proxy) would otherwise already point at the new endpoint.
#[test]
fn an_uneditable_configmap_fails_the_run_before_any_write() {
    let c = Cluster::start(1);
    let kubeconfig = c.admin_kubeconfig(c.apiservers[0].0);
    let mut cm = c.configmap("kube-system", "kubeadm-config");
    let old_api = "apiVersion: kubeadm.k8s.io/v1beta2\n";
    cm["data"]["ClusterConfiguration"] =
        json!(CLUSTER_CONFIGURATION.replace("apiVersion: kubeadm.k8s.io/v1beta4\n", old_api));
    assert!(cm["data"]["ClusterConfiguration"]
        .as_str()
        .unwrap()
        .contains(old_api));
    let r = c.request(
        "PUT",
        "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        Some(&cm),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let before = rvs(&c);
    let kube_proxy_before = data(&c, "kube-system", "kube-proxy", "kubeconfig.conf");
    let backup_dir = c.path("backups");
    let msg = run_module(
        "cluster_configmaps",
        json!({"kubeconfig": kubeconfig, "control_plane_endpoint": "172.30.0.10:6443", "backup_dir": backup_dir}),
        Mode::DIFF,
    )
    .fail_msg();
    assert!(
        msg.contains("kubeadm-config") && msg.contains("v1beta2"),
        "{msg}"
    );
    assert_eq!(
        rvs(&c),
        before,
        "a ConfigMap was written before the failure"
    );
    assert_eq!(
        data(&c, "kube-system", "kube-proxy", "kubeconfig.conf"),
        kube_proxy_before
    );
    assert!(
        !backup_dir.exists(),
        "backups written for a run that changed nothing"
    );
}

/// The rollback: `state: original` puts back the edited key of each ConfigMap from the copy saved
/// before the first change, and only that key (a later change to another key stays); the kube-proxy
/// roll marker is written before the kube-proxy ConfigMap changes, in both directions; a second
/// rollback changes nothing; without a saved copy a ConfigMap is left alone.
#[test]
fn the_rollback_puts_back_only_the_edited_keys_and_marks_kube_proxy_for_a_roll() {
    let c = Cluster::start(1);
    let kubeconfig = c.admin_kubeconfig(c.apiservers[0].0);
    let backup_dir = c.path("backups");
    let marker = c.path("kube-proxy-roll-pending");
    let originals: Vec<String> = [
        ("kube-system", "kube-proxy", "kubeconfig.conf"),
        ("kube-system", "kubeadm-config", "ClusterConfiguration"),
        ("kube-public", "cluster-info", "kubeconfig"),
    ]
    .iter()
    .map(|(ns, n, k)| data(&c, ns, n, k))
    .collect();
    let convert = json!({
        "kubeconfig": kubeconfig,
        "control_plane_endpoint": "172.30.0.10:6443",
        "backup_dir": backup_dir,
        "kube_proxy_roll_marker": marker,
        // cluster-info is left as it is: nothing saved for it, nothing to restore
        "update_cluster_info": false,
    });
    run_module("cluster_configmaps", convert.clone(), Mode::NORMAL).ok();
    assert!(
        marker.exists(),
        "no roll marker after the kube-proxy change"
    );
    assert!(!backup_dir.join("kube-public.cluster-info.json").exists());
    std::fs::remove_file(&marker).unwrap();
    // the converted state, then someone changes another key of the kube-proxy ConfigMap
    let converted_proxy = data(&c, "kube-system", "kube-proxy", "kubeconfig.conf");
    assert_ne!(converted_proxy, originals[0]);
    let mut proxy = c.configmap("kube-system", "kube-proxy");
    proxy["data"]["config.conf"] = json!("mode: ipvs\n");
    let put = c.request(
        "PUT",
        "/api/v1/namespaces/kube-system/configmaps/kube-proxy",
        Some(&proxy),
    );
    assert_eq!(put.status, 200);

    let rollback = json!({
        "kubeconfig": kubeconfig,
        "state": "original",
        "backup_dir": backup_dir,
        "kube_proxy_roll_marker": marker,
    });
    // check mode: predicts the two restores, writes nothing (no marker either)
    let before_rvs = rvs(&c);
    let check = run_module("cluster_configmaps", rollback.clone(), Mode::CHECK_DIFF).ok();
    assert!(check.changed());
    assert_eq!(
        check.json["configmaps"].as_array().unwrap().len(),
        2,
        "{}",
        check.stdout
    );
    assert_eq!(rvs(&c), before_rvs);
    assert!(!marker.exists());
    assert!(check.json["msg"]
        .as_str()
        .unwrap()
        .starts_with("would restore"));

    let real = run_module("cluster_configmaps", rollback.clone(), Mode::NORMAL).ok();
    assert!(real.changed(), "{}", real.stdout);
    assert!(real.json.get("server").is_none());
    assert_eq!(
        data(&c, "kube-system", "kube-proxy", "kubeconfig.conf"),
        originals[0]
    );
    assert_eq!(
        data(&c, "kube-system", "kubeadm-config", "ClusterConfiguration"),
        originals[1]
    );
    assert_eq!(
        data(&c, "kube-public", "cluster-info", "kubeconfig"),
        originals[2]
    );
    // the other key's later change stays
    assert_eq!(
        data(&c, "kube-system", "kube-proxy", "config.conf"),
        "mode: ipvs\n"
    );
    assert!(
        marker.exists(),
        "no roll marker after the kube-proxy restore"
    );

    let after = rvs(&c);
    let again = run_module("cluster_configmaps", rollback, Mode::NORMAL).ok();
    assert!(!again.changed(), "{}", again.stdout);
    assert_eq!(rvs(&c), after);
}

/// `state: original` without `backup_dir`, a saved copy that is not the ConfigMap's JSON, and a
/// relative marker path fail naming the option or the file, and change nothing.
#[test]
fn rollback_inputs_that_cannot_work_fail_clearly() {
    let c = Cluster::start(1);
    let kubeconfig = c.admin_kubeconfig(c.apiservers[0].0);
    let backup_dir = c.path("backups");
    std::fs::create_dir_all(&backup_dir).unwrap();
    let before = rvs(&c);
    let msg = run_module(
        "cluster_configmaps",
        json!({"kubeconfig": kubeconfig, "state": "original"}),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(
        msg.contains("option `backup_dir`") && msg.contains("state=original"),
        "{msg}"
    );
    let msg = run_module(
        "cluster_configmaps",
        json!({"kubeconfig": kubeconfig, "control_plane_endpoint": "172.30.0.10:6443", "kube_proxy_roll_marker": "pending"}),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(msg.contains("option `kube_proxy_roll_marker`"), "{msg}");
    let msg = run_module(
        "cluster_configmaps",
        json!({"kubeconfig": kubeconfig}),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(
        msg.contains("option `control_plane_endpoint`") && msg.contains("required"),
        "{msg}"
    );
    let broken = backup_dir.join("kube-system.kube-proxy.json");
    std::fs::write(
        &broken,
        "{\"metadata\": {\"namespace\": \"kube-system\", \"name\": \"other\"}}",
    )
    .unwrap();
    let msg = run_module(
        "cluster_configmaps",
        json!({"kubeconfig": kubeconfig, "state": "original", "backup_dir": backup_dir}),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(
        msg.contains("kube-system.kube-proxy.json")
            && msg.contains("does not hold ConfigMap kube-system/kube-proxy"),
        "{msg}"
    );
    std::fs::write(&broken, "not json").unwrap();
    let msg = run_module(
        "cluster_configmaps",
        json!({"kubeconfig": kubeconfig, "state": "original", "backup_dir": backup_dir}),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(
        msg.contains("kube-system.kube-proxy.json") && msg.contains("is not the JSON"),
        "{msg}"
    );
    assert_eq!(rvs(&c), before);
}
