//! Integration tests of `cluster_workloads` against a real etcd and the kube-apiserver emulator
//! (verified TLS, client certificate, resourceVersion and generation from the apiserver). No
//! DaemonSet controller runs here: the test plays it in a thread, reporting a complete rollout
//! only once it has seen the current generation, so the module's wait is exercised for real.

mod apiserver_env;
mod common;

use apiserver_env::Cluster;
use common::{assert_returns_documented, run_module, Mode};
use kubeha::net::http::{self, Request};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const NS: &str = "kube-system";
const DS: &str = "/apis/apps/v1/namespaces/kube-system/daemonsets/cilium";

/// The Cilium chart's agent DaemonSet with `k8sServiceHost` set to master 1.
fn cilium() -> Value {
    let env = json!([
        {"name": "K8S_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "KUBERNETES_SERVICE_HOST", "value": "10.99.0.11"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
    ]);
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "cilium", "namespace": NS, "labels": {"k8s-app": "cilium"}},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "cilium"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
            "template": {"metadata": {"labels": {"k8s-app": "cilium"}}, "spec": {
                "initContainers": [{"name": "config", "image": "quay.io/cilium/cilium", "env": env}],
                "containers": [{"name": "cilium-agent", "image": "quay.io/cilium/cilium", "env": env}]}}}
    })
}

/// Plays the DaemonSet controller: once it has seen a generation, it reports every pod of it
/// updated and available (after `delay`, the time a roll takes).
fn controller(c: &Cluster, delay: Duration) -> (Arc<AtomicBool>, std::thread::JoinHandle<u32>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (tls, port) = (c.admin_tls(), c.apiservers[0].0);
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut generations_seen = 0;
        while !flag.load(Ordering::SeqCst) {
            let send = |method: &str, path: &str, body: Option<&Value>| {
                let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
                let req = Request {
                    method,
                    path,
                    content_type: bytes.as_ref().map(|_| "application/json"),
                    body: bytes.as_deref(),
                };
                http::https("127.0.0.1", port, &tls, &req, Duration::from_secs(5)).unwrap()
            };
            let resp = send("GET", DS, None);
            if resp.status == 200 {
                let mut ds: Value = serde_json::from_slice(&resp.body).unwrap();
                let generation = ds["metadata"]["generation"].as_i64().unwrap();
                if ds["status"]["observedGeneration"].as_i64().unwrap_or(0) < generation {
                    std::thread::sleep(delay);
                    ds["status"] = json!({"observedGeneration": generation, "desiredNumberScheduled": 3,
                        "currentNumberScheduled": 3, "updatedNumberScheduled": 3, "numberReady": 3,
                        "numberAvailable": 3, "numberMisscheduled": 0});
                    let put = send("PUT", &format!("{DS}/status"), Some(&ds));
                    if put.status == 200 {
                        generations_seen += 1;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        generations_seen
    });
    (stop, handle)
}

fn env_of(ds: &Value, container: &str) -> Vec<String> {
    let spec = &ds["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten()
        .filter(|c| c["name"] == container)
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| {
            v["value"]
                .as_str()
                .map(|s| format!("{}={s}", v["name"].as_str().unwrap()))
        })
        .collect()
}

fn get(c: &Cluster, path: &str) -> Value {
    let r = c.request("GET", path, None);
    assert_eq!(r.status, 200, "GET {path}");
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn a_pinned_agent_daemonset_is_repointed_rolled_and_restored() {
    let c = Cluster::start(1);
    let kubeconfig = c.admin_kubeconfig(c.apiservers[0].0);
    let created = c.request(
        "POST",
        "/apis/apps/v1/namespaces/kube-system/daemonsets",
        Some(&cilium()),
    );
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let (stop, handle) = controller(&c, Duration::from_millis(1500));
    let backup_dir = c.path("workloads");
    let opts = json!({
        "kubeconfig": kubeconfig,
        "workloads": ["DaemonSet/kube-system/cilium"],
        "masters": ["m1=10.99.0.11", "m2=10.99.0.12"],
        "control_plane_endpoint": "10.99.0.10:6443",
        "backup_dir": backup_dir,
        "rollout_timeout": 30,
    });
    // let the controller see generation 1 first
    std::thread::sleep(Duration::from_millis(2000));
    let before = get(&c, DS);
    assert_eq!(before["status"]["observedGeneration"], 1);

    // Check mode: the change and its diff predicted, nothing written.
    let check = run_module("cluster_workloads", opts.clone(), Mode::CHECK_DIFF).ok();
    assert!(check.changed());
    assert_returns_documented("cluster_workloads", &check.json);
    let env = &check.json["workloads"][0]["env"];
    assert_eq!(env.as_array().unwrap().len(), 2, "{env}");
    assert_eq!(
        env[1],
        json!({"container": "cilium-agent", "name": "KUBERNETES_SERVICE_HOST", "before": "10.99.0.11", "after": "10.99.0.10"})
    );
    assert_eq!(check.json["workloads"][0]["rollout"], Value::Null);
    let diff = check.json["diff"].to_string();
    assert!(
        diff.contains("cilium-agent KUBERNETES_SERVICE_HOST=10.99.0.10"),
        "{diff}"
    );
    assert!(
        !diff.contains("K8S_NODE_NAME"),
        "only the changed values: {diff}"
    );
    let after_check = get(&c, DS);
    assert_eq!(
        after_check["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert!(!backup_dir.exists(), "check mode saved a copy");

    // The real run: repointed, the original saved, the rollout of the new generation waited for.
    let run = run_module("cluster_workloads", opts.clone(), Mode::DIFF).ok();
    assert!(run.changed(), "{}", run.stdout);
    assert_returns_documented("cluster_workloads", &run.json);
    let w = &run.json["workloads"][0];
    assert_eq!(
        w["rollout"], "3 of 3 updated pods scheduled, 3 of 3 available",
        "{w}"
    );
    assert!(
        w["waited_seconds"].as_f64().unwrap() >= 1.0,
        "the module did not wait for the controller: {w}"
    );
    let now = get(&c, DS);
    assert_eq!(now["metadata"]["generation"], 2);
    assert_eq!(
        env_of(&now, "cilium-agent"),
        [
            "KUBERNETES_SERVICE_HOST=10.99.0.10",
            "KUBERNETES_SERVICE_PORT=6443"
        ]
    );
    assert_eq!(env_of(&now, "config"), env_of(&now, "cilium-agent"));
    assert_eq!(
        now["spec"]["updateStrategy"],
        before["spec"]["updateStrategy"]
    );
    let saved = backup_dir.join("DaemonSet.kube-system.cilium.json");
    let mode = std::fs::metadata(&saved)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.unwrap(), 0o600);

    // Idempotent: nothing to change, the (complete) rollout checked, no PUT.
    let again = run_module("cluster_workloads", opts.clone(), Mode::NORMAL).ok();
    assert!(!again.changed(), "{}", again.stdout);
    assert_eq!(
        get(&c, DS)["metadata"]["resourceVersion"],
        now["metadata"]["resourceVersion"]
    );

    // A workload that does not exist: refused before the first one is touched.
    let mut missing = opts.clone();
    missing["workloads"] = json!([
        "DaemonSet/kube-system/cilium",
        "Deployment/kube-system/cilium-operator"
    ]);
    missing["control_plane_endpoint"] = json!("10.99.0.20:6443");
    let msg = run_module("cluster_workloads", missing, Mode::NORMAL).fail_msg();
    assert!(
        msg.contains("Deployment/kube-system/cilium-operator does not exist"),
        "{msg}"
    );
    assert_eq!(
        get(&c, DS)["metadata"]["resourceVersion"],
        now["metadata"]["resourceVersion"]
    );

    // The rollback: the saved env values back, the rollout waited for again.
    let rollback = json!({"kubeconfig": opts["kubeconfig"], "state": "original",
        "workloads": ["DaemonSet/kube-system/cilium"], "masters": ["m1=10.99.0.11", "m2=10.99.0.12"],
        "backup_dir": backup_dir, "rollout_timeout": 30});
    let back = run_module("cluster_workloads", rollback.clone(), Mode::NORMAL).ok();
    assert!(back.changed(), "{}", back.stdout);
    let restored = get(&c, DS);
    assert_eq!(
        restored["spec"], before["spec"],
        "the rollback put back the original template"
    );
    assert_eq!(restored["status"]["observedGeneration"], 3);
    let again = run_module("cluster_workloads", rollback, Mode::NORMAL).ok();
    assert!(!again.changed(), "{}", again.stdout);

    stop.store(true, Ordering::SeqCst);
    assert_eq!(
        handle.join().unwrap(),
        3,
        "generations 1, 2 (the change) and 3 (the rollback)"
    );
}

#[test]
fn a_rollout_that_does_not_complete_fails_naming_it_and_its_counts() {
    let c = Cluster::start(1);
    let kubeconfig = c.admin_kubeconfig(c.apiservers[0].0);
    let mut ds = cilium();
    ds["metadata"]["name"] = json!("stuck");
    let path = "/apis/apps/v1/namespaces/kube-system/daemonsets";
    assert_eq!(c.request("POST", path, Some(&ds)).status, 201);
    // no controller: the generation is never observed
    let out = run_module(
        "cluster_workloads",
        json!({"kubeconfig": kubeconfig, "workloads": ["DaemonSet/kube-system/stuck"],
               "masters": ["10.99.0.11"], "control_plane_endpoint": "10.99.0.10:6443",
               "backup_dir": c.path("w"), "rollout_timeout": 2}),
        Mode::NORMAL,
    );
    let msg = out.fail_msg();
    assert!(
        msg.contains("the rollout of DaemonSet/kube-system/stuck did not complete within 2s")
            && msg.contains("generation 2")
            && msg.contains("rollback.yml"),
        "{msg}"
    );
    // the change itself stays (the controller may still roll it), and its original is saved
    assert!(c.path("w/DaemonSet.kube-system.stuck.json").exists());
}
