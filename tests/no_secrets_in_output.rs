//! No module output ever contains key material. Self-contained: runs every module binary that
//! exists (ours and the other modules') on fixture trees full of keys, embedded client certs
//! and tokens, in normal, check and diff modes and in failure cases, and checks every output for
//! PEM markers, any base64 line of the fixture's keys and client certs, and the token. Then it
//! scans every output recorded by the whole suite (`target/tmp/module-outputs/`) for PEM
//! markers, base64-embedded PEM and the fixtures' token. The successful runs of cluster_configmaps,
//! ha_verify and component_restart (which need a live apiserver or component) are recorded by
//! their own test files, which Cargo runs before this one.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::sync::Mutex;

const MODES: [Mode; 4] = [Mode::CHECK_DIFF, Mode::CHECK, Mode::DIFF, Mode::NORMAL];

/// Which kinds of runs of each module were scanned: (successes, failures, runs with `--diff`).
static COVERAGE: Mutex<BTreeMap<String, (u32, u32, u32)>> = Mutex::new(BTreeMap::new());

fn check(fx: &Fixture, module: &str, options: Value, mode: Mode) {
    assert!(
        bin_path(module).exists(),
        "{module} is not built: {}",
        bin_path(module).display()
    );
    let out = run_module(module, options, mode);
    assert_no_secrets(&out.stdout, &fx.secrets, module);
    assert_no_secrets(&out.stderr, &fx.secrets, module);
    let mut coverage = COVERAGE.lock().unwrap();
    let seen = coverage.entry(module.to_string()).or_default();
    if out.failed() {
        seen.1 += 1;
    } else {
        seen.0 += 1;
    }
    if mode.diff {
        seen.2 += 1;
    }
}

#[test]
fn no_module_output_contains_key_material() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let vip = format!("https://{VIP}:6443");
    let kube = fx.kube_dir();
    let info = json!({"host_root": fx.root(), "kube_config_dir": kube, "home_kubeconfig": fx.path("root/.kube/config")});
    for mode in MODES {
        check(&fx, "control_plane_info", info.clone(), mode);
    }
    check(
        &fx,
        "control_plane_info",
        json!({"host_root": fx.root(), "kube_config_dir": kube.join("ssl/ca.key")}),
        Mode::DIFF,
    );
    for file in [
        "admin.conf",
        "super-admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
        "kubelet.conf",
    ] {
        for mode in MODES {
            check(
                &fx,
                "kubeconfig_server",
                json!({"path": kube.join(file), "server": vip}),
                mode,
            );
        }
        check(
            &fx,
            "kubeconfig_server",
            json!({"path": kube.join(file), "server": vip, "cluster": "nope"}),
            Mode::DIFF,
        );
    }
    for mode in MODES {
        check(
            &fx,
            "kubeconfig_server",
            json!({"path": fx.path("root/.kube/config"), "server": vip}),
            mode,
        );
        check(
            &fx,
            "kubeadm_config",
            json!({"path": kube.join("kubeadm-config.yaml"), "control_plane_endpoint": format!("{VIP}:6443"), "cert_sans": [VIP]}),
            mode,
        );
    }
    // Failures on files full of secrets: the messages must not quote them.
    let admin = fx.read("etc/kubernetes/admin.conf");
    let broken_b64 = kube.join("broken-b64.conf");
    fs::write(
        &broken_b64,
        admin.replacen("client-key-data: ", "client-key-data: !!", 1),
    )
    .unwrap();
    let broken_yaml = kube.join("broken-yaml.conf");
    fs::write(
        &broken_yaml,
        admin.replacen("    client-key-data: ", "  client-key-data: [", 1),
    )
    .unwrap();
    for path in [&broken_b64, &broken_yaml] {
        check(
            &fx,
            "kubeconfig_server",
            json!({"path": path, "server": vip}),
            Mode::CHECK_DIFF,
        );
        check(
            &fx,
            "kubeadm_config",
            json!({"path": path, "control_plane_endpoint": format!("{VIP}:6443")}),
            Mode::DIFF,
        );
    }
    check(
        &fx,
        "kubeadm_config",
        json!({"path": kube.join("ssl/apiserver.key"), "control_plane_endpoint": format!("{VIP}:6443")}),
        Mode::DIFF,
    );
    check(
        &fx,
        "kubeconfig_server",
        json!({"path": kube.join("ssl/ca.key"), "server": vip}),
        Mode::DIFF,
    );

    // The other modules, where they exist: real runs on the fixture PKI and failure paths that
    // touch the kubeconfig and keys but reach no cluster (port 1 on loopback refuses at once).
    let ssl = kube.join("ssl");
    let cert_opts = json!({
        "cert_path": ssl.join("apiserver.crt"), "key_path": ssl.join("apiserver.key"),
        "ca_cert_path": ssl.join("ca.crt"), "ca_key_path": ssl.join("ca.key"), "sans": [VIP, "lb.kubeha.test"],
    });
    for mode in MODES {
        check(&fx, "apiserver_cert", cert_opts.clone(), mode);
    }
    let mut no_ca_key = cert_opts.clone();
    no_ca_key["ca_key_path"] = json!(ssl.join("missing-ca.key"));
    no_ca_key["regenerate"] = json!("always");
    check(&fx, "apiserver_cert", no_ca_key, Mode::DIFF);
    let mut wrong_key = cert_opts.clone();
    wrong_key["key_path"] = json!(ssl.join("ca.key"));
    check(&fx, "apiserver_cert", wrong_key, Mode::DIFF);
    for mode in [Mode::CHECK_DIFF, Mode::DIFF] {
        check(
            &fx,
            "cluster_configmaps",
            json!({"kubeconfig": kube.join("admin.conf"), "api_server": "https://127.0.0.1:1", "control_plane_endpoint": format!("{VIP}:6443"), "cert_sans": [VIP], "timeout": 2}),
            mode,
        );
        check(
            &fx,
            "ha_verify",
            json!({"endpoint": "127.0.0.1:1", "ca_cert_path": ssl.join("ca.crt"), "kubeconfig": kube.join("admin.conf"), "timeout": 2}),
            mode,
        );
    }
    check(
        &fx,
        "cluster_configmaps",
        json!({"kubeconfig": broken_b64, "control_plane_endpoint": format!("{VIP}:6443")}),
        Mode::DIFF,
    );
    for (kubeconfig, mode) in [
        (kube.join("admin.conf"), Mode::CHECK_DIFF),
        (broken_b64.clone(), Mode::DIFF),
    ] {
        check(
            &fx,
            "cluster_workloads",
            json!({"kubeconfig": kubeconfig, "workloads": ["DaemonSet/kube-system/cilium"], "masters": ["10.0.0.11"], "control_plane_endpoint": format!("{VIP}:6443"), "timeout": 2}),
            mode,
        );
    }
    check(
        &fx,
        "ha_verify",
        json!({"endpoint": "127.0.0.1:1", "kubeconfig": broken_yaml, "ca_cert_path": ssl.join("ca.crt"), "timeout": 2}),
        Mode::DIFF,
    );
    // vip_probe on loopback: the address is local (no ARP probe) and no listen, so no raw socket;
    // its failures name the option.
    for mode in [Mode::CHECK_DIFF, Mode::NORMAL] {
        check(
            &fx,
            "vip_probe",
            json!({"address": "127.0.0.1", "listen": 0, "ports": [1]}),
            mode,
        );
    }
    check(&fx, "vip_probe", json!({"address": "fd00::10"}), Mode::DIFF);
    // component_restart only with an invalid name: a valid one would restart this machine's services.
    check(
        &fx,
        "component_restart",
        json!({"name": "kube-everything", "client_key": "x"}),
        Mode::DIFF,
    );

    // Every module was scanned in failure and diff runs; those that can succeed here (no live
    // cluster or component needed) also in successful runs.
    let coverage = COVERAGE.lock().unwrap();
    for module in MODULES {
        let (ok, failed, diff) = coverage.get(module).copied().unwrap_or_default();
        assert!(failed > 0 && diff > 0, "{module}: {coverage:?}");
        let needs_live_peer = [
            "component_restart",
            "cluster_configmaps",
            "cluster_workloads",
            "ha_verify",
        ];
        assert!(
            ok > 0 || needs_live_peer.contains(&module),
            "{module}: no successful run scanned: {coverage:?}"
        );
    }
}

/// Every output recorded by any test of the suite so far (fixtures differ per test, so this scan
/// looks for what every leak would show: PEM markers, base64 of a PEM header, the fixture token).
#[test]
fn recorded_outputs_of_the_suite_hold_no_key_material() {
    // Make sure there is at least this test's own output to scan.
    let fx = Fixture::kubespray(Layout::Kubespray);
    check(
        &fx,
        "kubeconfig_server",
        json!({"path": fx.path("etc/kubernetes/admin.conf"), "server": format!("https://{VIP}:6443")}),
        Mode::DIFF,
    );
    let dir = outputs_dir();
    let mut scanned = 0;
    for entry in fs::read_dir(&dir).expect("outputs dir") {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap_or_default();
        for needle in [
            "PRIVATE KEY",
            "BEGIN CERTIFICATE",
            "LS0tLS1CRUdJTi",
            KUBE_PROXY_TOKEN,
        ] {
            assert!(
                !text.contains(needle),
                "{} contains {needle:?}",
                path.display()
            );
        }
        scanned += 1;
    }
    assert!(scanned >= 1, "no recorded outputs in {}", dir.display());
}
