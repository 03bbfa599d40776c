//! Integration tests of `kubeadm_config`, run as Ansible runs it, on kubespray-shaped
//! kubeadm-config.yaml files (v1beta3 and v1beta4).

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;

const M: &str = "kubeadm_config";
const FILE: &str = "etc/kubernetes/kubeadm-config.yaml";

fn opts(fx: &Fixture, endpoint: &str) -> serde_json::Value {
    json!({
        "path": fx.path(FILE),
        "control_plane_endpoint": endpoint,
        "cert_sans": [VIP, "lb.kubeha.test", MASTER1_IP],
    })
}

fn converts(layout: Layout) {
    let fx = Fixture::kubespray(layout);
    fs::set_permissions(fx.path(FILE), fs::Permissions::from_mode(0o640)).unwrap();
    let original = fx.read(FILE);
    let before = fx.snapshot();
    let endpoint = format!("{VIP}:6443");

    // Check mode: predicts the change and the diff, writes nothing.
    let check = run_module(M, opts(&fx, &endpoint), Mode::CHECK_DIFF).ok();
    assert!(check.changed(), "{}", check.stdout);
    assert_same_tree(&before, &fx.snapshot());
    assert!(check.json.get("backup_file").is_none());
    let predicted = check.json["diff"][0]["after"].as_str().unwrap().to_string();
    assert_eq!(check.json["diff"][0]["before"], json!(original));
    assert_eq!(
        check.json["reasons"].as_array().unwrap().len(),
        2,
        "{}",
        check.stdout
    );

    // Real run: exactly the predicted text, only the intended lines differ.
    let real = run_module(M, opts(&fx, &endpoint), Mode::DIFF).ok();
    assert!(real.changed());
    let after = fx.read(FILE);
    assert_eq!(after, predicted);
    let (removed, added) = line_changes(&original, &after);
    assert_eq!(
        removed,
        vec![format!("controlPlaneEndpoint: \"{MASTER1_IP}:6443\"")]
    );
    assert_eq!(
        added,
        vec![
            format!("controlPlaneEndpoint: \"{VIP}:6443\""),
            format!("  - \"{VIP}\""),
            "  - \"lb.kubeha.test\"".to_string(),
        ]
    );
    assert_eq!(
        real.json["control_plane_endpoint_before"],
        json!(format!("{MASTER1_IP}:6443"))
    );
    assert_eq!(real.json["control_plane_endpoint_after"], json!(endpoint));
    let sans_after = real.json["cert_sans_after"].as_array().unwrap();
    assert_eq!(sans_after.len(), 11);
    // Mode kept; backup with Ansible's naming and the original content.
    assert_eq!(
        fs::metadata(fx.path(FILE)).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    let backup = real.json["backup_file"].as_str().unwrap();
    assert!(
        backup.starts_with(&format!("{}.", fx.path(FILE).display())) && backup.ends_with('~'),
        "{backup}"
    );
    assert_eq!(fs::read_to_string(backup).unwrap(), original);
    assert_eq!(
        fs::metadata(backup).unwrap().permissions().mode() & 0o7777,
        0o640
    );

    // Second run: no change, nothing touched.
    let tree = fx.snapshot();
    let again = run_module(M, opts(&fx, &endpoint), Mode::DIFF).ok();
    assert!(!again.changed(), "{}", again.stdout);
    assert!(again.json.get("diff").is_none());
    assert_eq!(again.json["reasons"], json!([]));
    assert_same_tree(&tree, &fx.snapshot());
}

#[test]
fn v1beta3_pinned_layout_converts_exactly_once() {
    converts(Layout::Pinned);
}

#[test]
fn v1beta4_kubespray_layout_converts_exactly_once() {
    converts(Layout::Kubespray);
}

#[test]
fn ipv6_endpoint_is_quoted_and_backup_can_be_skipped() {
    let fx = Fixture::kubespray(Layout::Kubespray);
    let original = fx.read(FILE);
    let out = run_module(
        M,
        json!({"path": fx.path(FILE), "control_plane_endpoint": "[fd00::10]:6443", "cert_sans": "fd00:0::10", "backup": "no"}),
        Mode::NORMAL,
    )
    .ok();
    assert!(out.changed());
    assert!(out.json.get("backup_file").is_none());
    let (removed, added) = line_changes(&original, &fx.read(FILE));
    assert_eq!(removed.len(), 1);
    assert_eq!(
        added,
        vec![
            "controlPlaneEndpoint: \"[fd00::10]:6443\"",
            "  - \"fd00::10\""
        ]
    );
    let names: Vec<_> = fs::read_dir(fx.path("etc/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("kubeadm-config.yaml.")),
        "{names:?}"
    );
}

#[test]
fn missing_cert_sans_key_is_inserted_with_sibling_indentation() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let text = "# comment kept\napiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n    timeoutForControlPlane: 4m0s\nclusterName: cluster.local\n";
    fs::write(fx.path(FILE), text).unwrap();
    run_module(M, json!({"path": fx.path(FILE), "control_plane_endpoint": "lb.kubeha.test:6443", "cert_sans": ["lb.kubeha.test"]}), Mode::NORMAL).ok();
    assert_eq!(
        fx.read(FILE),
        "# comment kept\napiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n    timeoutForControlPlane: 4m0s\n    certSANs:\n    - lb.kubeha.test\nclusterName: cluster.local\ncontrolPlaneEndpoint: lb.kubeha.test:6443\n"
    );
}

/// Every bad input fails with `failed: true`, a message naming the problem, and no file touched.
#[test]
fn bad_inputs_fail_clearly_and_change_nothing() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let path = fx.path(FILE);
    let ep = format!("{VIP}:6443");
    let cases: Vec<(serde_json::Value, Vec<String>)> = vec![
        (
            json!({"path": path, "control_plane_endpoint": VIP}),
            vec![
                "control_plane_endpoint".into(),
                "no port".into(),
                format!("{VIP}:6443"),
            ],
        ),
        (
            json!({"path": path, "control_plane_endpoint": format!("{VIP}:0")}),
            vec!["1 to 65535".into()],
        ),
        (
            json!({"path": path, "control_plane_endpoint": format!("{VIP}:65536")}),
            vec!["65536".into(), "1 to 65535".into()],
        ),
        (
            json!({"path": path, "control_plane_endpoint": "fd00::10:6443"}),
            vec!["[fd00::10]:6443".into()],
        ),
        (
            json!({"path": path, "control_plane_endpoint": ep, "cert_sans": ["not a name!"]}),
            vec!["cert_sans".into(), "not a name!".into()],
        ),
        (
            json!({"path": path, "control_plane_endpoint": ep, "colour": "blue"}),
            vec!["colour".into(), "supported options".into()],
        ),
        (
            json!({"path": path, "control_plane_endpoint": ep, "backup": "perhaps"}),
            vec!["backup".into(), "boolean".into()],
        ),
        (
            json!({"path": path, "control_plane_endpoint": ep, "cert_sans": {"a": 1}}),
            vec!["cert_sans".into(), "list".into()],
        ),
        (
            json!({"path": path}),
            vec!["control_plane_endpoint".into(), "required".into()],
        ),
        (
            json!({"path": fx.path("etc/kubernetes/nope.yaml"), "control_plane_endpoint": ep}),
            vec!["nope.yaml".into()],
        ),
        (
            json!({"path": fx.path("etc/kubernetes/manifests"), "control_plane_endpoint": ep}),
            vec!["manifests".into(), "not a regular file".into()],
        ),
        (
            json!({"path": fx.path("etc/kubernetes/admin.conf"), "control_plane_endpoint": ep}),
            vec!["admin.conf".into(), "ClusterConfiguration".into()],
        ),
    ];
    let before = fx.snapshot();
    for (options, needles) in cases {
        let msg = run_module(M, options.clone(), Mode::NORMAL).fail_msg();
        for n in &needles {
            assert!(msg.contains(n.as_str()), "{options}: {msg:?} lacks {n:?}");
        }
        assert_same_tree(&before, &fx.snapshot());
    }
}

#[test]
fn unsupported_or_malformed_files_are_refused_byte_identical() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let path = fx.path(FILE);
    let original = fx.read(FILE);
    let variants = [
        (
            original.replace(
                "kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration",
                "kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration",
            ),
            vec!["v1beta2", "kubeadm config migrate"],
        ),
        (
            original.replace(
                "kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration",
                "kubeadm.k8s.io/v1beta5\nkind: ClusterConfiguration",
            ),
            vec!["v1beta5", "supported"],
        ),
        (
            original.replace("certSANs:\n", "certSANs: [\n"),
            vec!["not valid YAML"],
        ),
        (
            original.replace("apiServer:\n", "apiServer: &api\n"),
            vec!["anchor"],
        ),
    ];
    for (text, needles) in variants {
        fs::write(&path, &text).unwrap();
        let before = fx.snapshot();
        let msg = run_module(M, json!({"path": path, "control_plane_endpoint": format!("{VIP}:6443"), "cert_sans": [VIP]}), Mode::NORMAL).fail_msg();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        for n in needles {
            assert!(msg.contains(n), "{msg:?} lacks {n:?}");
        }
        assert_same_tree(&before, &fx.snapshot());
    }
}

#[test]
fn symlinked_config_is_edited_through_the_link() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let real = fx.path("etc/kubernetes/kubeadm-config.real.yaml");
    fs::rename(fx.path(FILE), &real).unwrap();
    std::os::unix::fs::symlink("kubeadm-config.real.yaml", fx.path(FILE)).unwrap();
    run_module(
        M,
        json!({"path": fx.path(FILE), "control_plane_endpoint": format!("{VIP}:6443")}),
        Mode::NORMAL,
    )
    .ok();
    assert!(fs::symlink_metadata(fx.path(FILE))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::read_to_string(real)
        .unwrap()
        .contains(&format!("controlPlaneEndpoint: \"{VIP}:6443\"")));
}
