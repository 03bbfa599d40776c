//! Integration tests of `kubeconfig_server`, run as Ansible runs it, on kubeadm-format
//! kubeconfigs (embedded client certs; kubelet.conf with a PEM path).

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;

const M: &str = "kubeconfig_server";

fn converts(fx: &Fixture, rel: &str, old_server: &str) {
    let path = fx.path(rel);
    let original = fx.read(rel);
    let new = format!("https://{VIP}:6443");
    let before = fx.snapshot();
    let options = json!({"path": path, "server": new});

    let check = run_module(M, options.clone(), Mode::CHECK_DIFF).ok();
    assert!(check.changed(), "{}", check.stdout);
    assert_same_tree(&before, &fx.snapshot());
    assert_eq!(check.json["server_before"], json!(old_server));
    assert_eq!(check.json["server_after"], json!(new));
    assert_eq!(check.json["cluster"], json!("cluster.local"));
    let diff = &check.json["diff"][0];
    let (r, a) = line_changes(
        diff["before"].as_str().unwrap(),
        diff["after"].as_str().unwrap(),
    );
    assert_eq!(
        (r, a),
        (
            vec![format!("    server: {old_server}")],
            vec![format!("    server: {new}")]
        )
    );
    assert_no_secrets(&check.stdout, &fx.secrets, rel);

    let real = run_module(M, options.clone(), Mode::DIFF).ok();
    assert!(real.changed());
    assert_no_secrets(&real.stdout, &fx.secrets, rel);
    let after = fx.read(rel);
    let (removed, added) = line_changes(&original, &after);
    assert_eq!(removed, vec![format!("    server: {old_server}")]);
    assert_eq!(added, vec![format!("    server: {new}")]);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let backup = real.json["backup_file"].as_str().unwrap();
    assert_eq!(fs::read_to_string(backup).unwrap(), original);
    assert_eq!(
        fs::metadata(backup).unwrap().permissions().mode() & 0o7777,
        0o600
    );

    let tree = fx.snapshot();
    let again = run_module(M, options, Mode::DIFF).ok();
    assert!(!again.changed(), "{}", again.stdout);
    assert_same_tree(&tree, &fx.snapshot());
}

#[test]
fn pinned_admin_conf_moves_to_the_vip() {
    let fx = Fixture::kubespray(Layout::Pinned);
    converts(
        &fx,
        "etc/kubernetes/admin.conf",
        &format!("https://{MASTER1_IP}:6443"),
    );
}

#[test]
fn kubespray_scheduler_conf_moves_from_localhost_to_the_vip() {
    let fx = Fixture::kubespray(Layout::Kubespray);
    converts(
        &fx,
        "etc/kubernetes/scheduler.conf",
        "https://127.0.0.1:6443",
    );
}

#[test]
fn kubelet_conf_with_pem_path_and_root_kube_config() {
    let fx = Fixture::kubespray(Layout::Pinned);
    converts(
        &fx,
        "etc/kubernetes/kubelet.conf",
        &format!("https://{MASTER1_IP}:6443"),
    );
    converts(
        &fx,
        "root/.kube/config",
        &format!("https://{MASTER1_IP}:6443"),
    );
}

#[test]
fn named_cluster_among_two_is_the_only_one_changed() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let rel = "etc/kubernetes/admin.conf";
    let original = fx.read(rel);
    let two = original.replace(
        "contexts:\n",
        "- cluster:\n    server: https://127.0.0.1:6443\n  name: local\ncontexts:\n",
    );
    fs::write(fx.path(rel), &two).unwrap();
    let out = run_module(
        M,
        json!({"path": fx.path(rel), "server": "https://lb.kubeha.test:6443", "cluster": "local"}),
        Mode::NORMAL,
    )
    .ok();
    assert_eq!(out.json["cluster"], json!("local"));
    let (r, a) = line_changes(&two, &fx.read(rel));
    assert_eq!(r, vec!["    server: https://127.0.0.1:6443"]);
    assert_eq!(a, vec!["    server: https://lb.kubeha.test:6443"]);
}

#[test]
fn bad_inputs_fail_clearly_and_change_nothing() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let admin = fx.path("etc/kubernetes/admin.conf");
    let text = fx.read("etc/kubernetes/admin.conf");
    let no_clusters = fx.path("etc/kubernetes/empty.conf");
    fs::write(
        &no_clusters,
        "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\n",
    )
    .unwrap();
    let two_no_ctx = fx.path("etc/kubernetes/two.conf");
    fs::write(
        &two_no_ctx,
        text.replace(
            "contexts:\n",
            "- cluster:\n    server: https://127.0.0.1:6443\n  name: local\ncontexts:\n",
        )
        .replace("current-context: kubernetes-admin@cluster.local\n", ""),
    )
    .unwrap();
    let dangling = fx.path("etc/kubernetes/dangling.conf");
    fs::write(
        &dangling,
        text.replace("    cluster: cluster.local\n", "    cluster: gone\n"),
    )
    .unwrap();
    let malformed = fx.path("etc/kubernetes/malformed.conf");
    fs::write(
        &malformed,
        "apiVersion: v1\nclusters:\n- cluster: {server: [\n",
    )
    .unwrap();
    let vip = format!("https://{VIP}:6443");
    let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
        (
            json!({"path": admin, "server": format!("http://{VIP}:6443")}),
            vec!["server", "not an https URL"],
        ),
        (
            json!({"path": admin, "server": format!("{VIP}:6443")}),
            vec!["server", "https://"],
        ),
        (
            json!({"path": admin, "server": format!("https://{VIP}:0")}),
            vec!["1 to 65535"],
        ),
        (
            json!({"path": admin, "server": "https://fd00::10:6443"}),
            vec!["[fd00::10]:6443"],
        ),
        (
            json!({"path": admin, "server": vip, "cluster": "nope"}),
            vec!["admin.conf", "no cluster named \"nope\"", "cluster.local"],
        ),
        (
            json!({"path": no_clusters, "server": vip}),
            vec!["empty.conf", "has no clusters"],
        ),
        (
            json!({"path": two_no_ctx, "server": vip}),
            vec!["two.conf", "name the cluster with the `cluster` option"],
        ),
        (
            json!({"path": dangling, "server": vip}),
            vec!["dangling.conf", "\"gone\""],
        ),
        (
            json!({"path": malformed, "server": vip}),
            vec!["malformed.conf", "not valid YAML"],
        ),
        (
            json!({"path": fx.path("etc/kubernetes/missing.conf"), "server": vip}),
            vec!["missing.conf"],
        ),
        (
            json!({"path": fx.path("etc/kubernetes/manifests"), "server": vip}),
            vec!["not a regular file"],
        ),
        (
            json!({"path": admin, "server": vip, "insecure-skip-tls-verify": true}),
            vec!["insecure-skip-tls-verify", "supported options"],
        ),
        (
            json!({"path": admin, "server": ["a"]}),
            vec!["server", "a list"],
        ),
        (json!({"server": vip}), vec!["path", "required"]),
    ];
    let before = fx.snapshot();
    for (options, needles) in cases {
        let out = run_module(M, options.clone(), Mode::CHECK_DIFF);
        let msg = out.fail_msg();
        for n in &needles {
            assert!(msg.contains(n), "{options}: {msg:?} lacks {n:?}");
        }
        assert_no_secrets(&out.stdout, &fx.secrets, "failure");
        let msg = run_module(M, options.clone(), Mode::NORMAL).fail_msg();
        assert!(msg.contains(needles[0]), "{msg}");
        assert_same_tree(&before, &fx.snapshot());
    }
}

#[test]
fn arguments_that_are_not_a_json_object_fail_as_json() {
    let out = run_module_raw(M, "[1, 2]");
    assert!(out.fail_msg().contains("JSON object"));
    let out = run_module_raw(M, "{not json");
    assert!(out.fail_msg().contains("not valid JSON"));
}

/// `kubeconfigs`: every file of a master in one call, each with its own server; check mode
/// predicts all of them and writes nothing; the real run changes only the `server:` lines and
/// backs up each file; the second run changes nothing.
#[test]
fn several_kubeconfigs_in_one_call() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let vip = format!("https://{VIP}:6443");
    let local = format!("https://{MASTER1_IP}:6443");
    let files = [
        ("etc/kubernetes/admin.conf", vip.as_str()),
        ("etc/kubernetes/kubelet.conf", vip.as_str()),
        ("etc/kubernetes/controller-manager.conf", local.as_str()),
        ("root/.kube/config", vip.as_str()),
    ];
    let originals: Vec<String> = files.iter().map(|(rel, _)| fx.read(rel)).collect();
    let items: Vec<_> = files
        .iter()
        .map(|(rel, server)| json!({"path": fx.path(rel), "server": server}))
        .collect();
    let options = json!({"kubeconfigs": items});
    let before = fx.snapshot();

    let check = run_module(M, options.clone(), Mode::CHECK_DIFF).ok();
    assert_same_tree(&before, &fx.snapshot());
    let results = check.json["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let changed: Vec<bool> = results
        .iter()
        .map(|r| r["changed"] == json!(true))
        .collect();
    // controller-manager.conf already names master 1: no change predicted for it.
    assert_eq!(changed, vec![true, true, false, true], "{}", check.stdout);
    assert!(check.changed());
    assert_eq!(check.json["diff"].as_array().unwrap().len(), 3);
    assert!(
        check.json.get("server_before").is_none(),
        "{}",
        check.stdout
    );
    assert_no_secrets(&check.stdout, &fx.secrets, "kubeconfigs");

    let real = run_module(M, options.clone(), Mode::NORMAL).ok();
    for (i, (rel, server)) in files.iter().enumerate() {
        let (removed, added) = line_changes(&originals[i], &fx.read(rel));
        if changed[i] {
            assert_eq!(added, vec![format!("    server: {server}")], "{rel}");
            assert_eq!(removed.len(), 1, "{rel}");
            let backup = real.json["results"][i]["backup_file"].as_str().unwrap();
            assert_eq!(fs::read_to_string(backup).unwrap(), originals[i], "{rel}");
        } else {
            assert!(removed.is_empty() && added.is_empty(), "{rel}");
            assert!(real.json["results"][i].get("backup_file").is_none());
        }
    }
    let tree = fx.snapshot();
    let again = run_module(M, options, Mode::DIFF).ok();
    assert!(!again.changed(), "{}", again.stdout);
    assert_same_tree(&tree, &fx.snapshot());
}

/// One bad file among several: the call fails naming it and no file is written; mixing
/// `kubeconfigs` with `path` and leaving an item's `server` out fail naming the option.
#[test]
fn several_kubeconfigs_one_bad_changes_none() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let vip = format!("https://{VIP}:6443");
    fs::write(fx.path("etc/kubernetes/broken.conf"), "clusters: [\n").unwrap();
    let before = fx.snapshot();
    let msg = run_module(
        M,
        json!({"kubeconfigs": [
            {"path": fx.path("etc/kubernetes/admin.conf"), "server": vip},
            {"path": fx.path("etc/kubernetes/broken.conf"), "server": vip},
            {"path": fx.path("etc/kubernetes/missing.conf"), "server": vip},
        ]}),
        Mode::NORMAL,
    )
    .fail_msg();
    // Every file that cannot be changed is named, not only the first.
    assert!(
        msg.contains("broken.conf") && msg.contains("missing.conf"),
        "{msg}"
    );
    assert_same_tree(&before, &fx.snapshot());

    let msg = run_module(
        M,
        json!({"path": fx.path("etc/kubernetes/admin.conf"), "kubeconfigs": [
            {"path": fx.path("etc/kubernetes/admin.conf"), "server": vip}]}),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(
        msg.contains("`kubeconfigs`") && msg.contains("mutually exclusive with path"),
        "{msg}"
    );
    let msg = run_module(
        M,
        json!({"kubeconfigs": [{"path": fx.path("etc/kubernetes/admin.conf")}]}),
        Mode::NORMAL,
    )
    .fail_msg();
    assert!(
        msg.contains("kubeconfigs[0]") && msg.contains("`server`: is required"),
        "{msg}"
    );
    let msg = run_module(M, json!({"server": vip}), Mode::NORMAL).fail_msg();
    assert!(
        msg.contains("`path`: is required (or give the files as a kubeconfigs list)"),
        "{msg}"
    );
    assert_same_tree(&before, &fx.snapshot());
}

/// `component` and `restart`: a component is listed when its file changes, or when it has been
/// running since before the file's last change (a run interrupted between the write and the
/// restart); not when it started after the change, or when nothing of that name runs. The
/// "component" here is a copy of `sleep` under a name no other process has.
#[test]
fn restart_lists_changed_and_stale_components() {
    let fx = Fixture::kubespray(Layout::Pinned);
    let vip = format!("https://{VIP}:6443");
    let local = format!("https://{MASTER1_IP}:6443");
    let name = format!("khsleep{}", std::process::id() % 100_000);
    let sleeper = fx.root().join(&name);
    fs::copy("/bin/sleep", &sleeper).unwrap();
    let set_mtime = |rel: &str, when: &str| {
        let ok = std::process::Command::new("touch")
            .args(["-m", "-d", when])
            .arg(fx.path(rel))
            .status()
            .unwrap()
            .success();
        assert!(ok, "touch {rel}");
    };
    let cm = "etc/kubernetes/controller-manager.conf";
    let admin = "etc/kubernetes/admin.conf";
    // controller-manager.conf already names master 1 (no change); admin.conf changes
    let options = json!({"kubeconfigs": [
        {"path": fx.path(cm), "server": local, "component": name},
        {"path": fx.path(admin), "server": vip, "component": "kubeha-nothing-runs-by-this-name"},
    ]});

    // the component is not running: only the changed file's component is listed
    let out = run_module(M, options.clone(), Mode::CHECK_DIFF).ok();
    assert_eq!(
        out.json["restart"],
        json!(["kubeha-nothing-runs-by-this-name"]),
        "{}",
        out.stdout
    );
    assert_eq!(out.json["results"][0]["stale"], json!(false));
    assert_returns_documented(M, &out.json);

    // running, and its file older than the process: not stale
    set_mtime(cm, "2000-01-01 00:00:00");
    let mut child = std::process::Command::new(&sleeper)
        .arg("30")
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let out = run_module(M, options.clone(), Mode::CHECK_DIFF).ok();
    assert_eq!(
        out.json["results"][0]["stale"],
        json!(false),
        "{}",
        out.stdout
    );
    assert!(!out.json["restart"]
        .as_array()
        .unwrap()
        .contains(&json!(name)));

    // the file changed after the process started: stale, listed first, said in the file's msg
    set_mtime(cm, "now");
    let out = run_module(M, options.clone(), Mode::NORMAL).ok();
    assert_eq!(out.json["results"][0]["changed"], json!(false));
    assert_eq!(
        out.json["results"][0]["stale"],
        json!(true),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.json["restart"],
        json!([name, "kubeha-nothing-runs-by-this-name"]),
        "{}",
        out.stdout
    );
    assert!(out.json["results"][0]["msg"]
        .as_str()
        .unwrap()
        .contains("restart it"));
    let _ = child.kill();
    let _ = child.wait();

    // single-file shape: `restart` at the top level too; nothing changes, nothing runs
    let out = run_module(
        M,
        json!({"path": fx.path(admin), "server": vip, "component": name}),
        Mode::NORMAL,
    )
    .ok();
    assert!(!out.changed());
    assert_eq!(out.json["restart"], json!([]), "{}", out.stdout);
    assert_eq!(out.json["stale"], json!(false));
}
