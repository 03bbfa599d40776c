//! `component_restart` with `name: kube-proxy`: the DaemonSet's pods rolled node by node through
//! the API, against a real etcd and the kube-apiserver emulator. A thread plays the DaemonSet
//! controller (a deleted kube-proxy pod comes back with a new uid, Running) and a loopback server
//! plays kube-proxy's /healthz on the node's InternalIP.

mod apiserver_env;
mod common;

use apiserver_env::{free_port, Cluster};
use common::{run_module, Mode};
use kubeha::net::http::{self, Request};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PODS: &str = "/api/v1/namespaces/kube-system/pods";

fn send(c: &Cluster, method: &str, path: &str, body: &Value) -> Value {
    let r = c.request(method, path, (!body.is_null()).then_some(body));
    assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn pod(node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": format!("kube-proxy-{node}"), "namespace": "kube-system",
                        "labels": {"k8s-app": "kube-proxy"}},
           "spec": {"nodeName": node}})
}

/// Create the node's kube-proxy pod, Running; its uid.
fn run_pod(c: &Cluster, node: &str) -> String {
    let created = send(c, "POST", PODS, &pod(node));
    let mut running = created.clone();
    running["status"] = json!({"phase": "Running"});
    send(
        c,
        "PUT",
        &format!("{PODS}/kube-proxy-{node}/status"),
        &running,
    );
    created["metadata"]["uid"].as_str().unwrap().to_string()
}

fn uid(c: &Cluster, node: &str) -> Option<String> {
    let r = c.request("GET", &format!("{PODS}/kube-proxy-{node}"), None);
    (r.status == 200).then(|| {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["metadata"]["uid"].as_str().unwrap().to_string()
    })
}

/// A "kube-proxy /healthz" on 127.0.0.1: HTTP 200 to every request.
fn healthz_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let body = r#"{"lastUpdated": "now"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn kube_proxy_is_rolled_node_by_node_only_while_the_marker_says_so() {
    let c = Cluster::start(1);
    let port = c.apiservers[0].0;
    let kubeconfig = c.admin_kubeconfig(port);
    let nodes = ["w1", "w2"];
    // w2's /healthz address given explicitly (as the role does); w1's read from its Node
    for node in nodes {
        send(
            &c,
            "POST",
            "/api/v1/nodes",
            &json!({"metadata": {"name": node}}),
        );
        let mut n = send(&c, "GET", &format!("/api/v1/nodes/{node}"), &json!(null));
        n["status"] = json!({"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]});
        send(&c, "PUT", &format!("/api/v1/nodes/{node}/status"), &n);
    }
    let before: Vec<String> = nodes.iter().map(|n| run_pod(&c, n)).collect();
    let healthz_port = healthz_server();
    let marker = c.path("kube-proxy-roll-pending");
    let options = json!({
        "name": "kube-proxy",
        "kubeconfig": kubeconfig,
        "nodes": ["w1", "w2=127.0.0.1"],
        "pending_marker": marker,
        "healthz_port": healthz_port,
        "timeout": 20,
    });

    // no marker: nothing pending, nothing touched
    let out = run_module("component_restart", options.clone(), Mode::NORMAL).ok();
    assert!(!out.changed(), "{}", out.stdout);
    assert!(
        out.msg().contains("no kube-proxy roll pending"),
        "{}",
        out.stdout
    );
    // check mode without a marker (the conversion's dry run): predicts the roll, touches nothing
    let mut predict = options.clone();
    predict.as_object_mut().unwrap().remove("pending_marker");
    let out = run_module("component_restart", predict, Mode::CHECK_DIFF).ok();
    assert!(out.changed());
    assert_eq!(
        out.json["nodes"][1]["pods_before"],
        json!(["kube-proxy-w2"])
    );
    let now: Vec<Option<String>> = nodes.iter().map(|n| uid(&c, n)).collect();
    assert_eq!(now, before.iter().cloned().map(Some).collect::<Vec<_>>());

    // the DaemonSet controller: a deleted pod comes back (new uid), Running
    let stop = Arc::new(AtomicBool::new(false));
    let controller = {
        let stop = stop.clone();
        let tls = c.admin_tls();
        std::thread::spawn(move || {
            let mut recreated = 0;
            while !stop.load(Ordering::SeqCst) {
                for node in ["w1", "w2"] {
                    let path = format!("{PODS}/kube-proxy-{node}");
                    let gone = http::https(
                        "127.0.0.1",
                        port,
                        &tls,
                        &Request::get(&path),
                        Duration::from_secs(5),
                    )
                    .map(|r| r.status == 404)
                    .unwrap_or(false);
                    if gone {
                        let body = serde_json::to_vec(&pod(node)).unwrap();
                        let req = Request {
                            method: "POST",
                            path: PODS,
                            content_type: Some("application/json"),
                            body: Some(&body),
                        };
                        let created: Value = serde_json::from_slice(
                            &http::https("127.0.0.1", port, &tls, &req, Duration::from_secs(5))
                                .unwrap()
                                .body,
                        )
                        .unwrap();
                        let mut running = created;
                        running["status"] = json!({"phase": "Running"});
                        let body = serde_json::to_vec(&running).unwrap();
                        let status_path = format!("{path}/status");
                        let req = Request {
                            method: "PUT",
                            path: &status_path,
                            content_type: Some("application/json"),
                            body: Some(&body),
                        };
                        http::https("127.0.0.1", port, &tls, &req, Duration::from_secs(5)).unwrap();
                        recreated += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            recreated
        })
    };

    std::fs::write(&marker, "pending\n").unwrap();
    let out = run_module("component_restart", options.clone(), Mode::NORMAL).ok();
    assert!(out.changed(), "{}", out.stdout);
    assert!(!marker.exists(), "the marker stays after a full roll");
    let rolled = out.json["nodes"].as_array().unwrap();
    assert_eq!(rolled.len(), 2);
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(rolled[i]["node"], json!(node));
        assert_eq!(
            rolled[i]["pods_before"],
            json!([format!("kube-proxy-{node}")])
        );
        assert_eq!(
            rolled[i]["healthz"],
            json!(format!("http://127.0.0.1:{healthz_port}/healthz"))
        );
        let new_uid = uid(&c, node).unwrap();
        assert_ne!(new_uid, before[i], "{node}: same pod");
    }
    stop.store(true, Ordering::SeqCst);
    assert_eq!(controller.join().unwrap(), 2);

    // a node whose pod never comes back: a timeout naming the node; the marker is kept
    std::fs::write(&marker, "pending\n").unwrap();
    let mut short = options.clone();
    short["timeout"] = json!(2);
    short["nodes"] = json!(["w1"]);
    let msg = run_module("component_restart", short, Mode::NORMAL).fail_msg();
    assert!(
        msg.contains("node w1") && msg.contains("no new Running kube-proxy pod"),
        "{msg}"
    );
    assert!(msg.contains("is kept"), "{msg}");
    assert!(marker.exists());
    let _ = free_port();
}

#[test]
fn kube_proxy_options_that_cannot_work_fail_naming_the_option() {
    let cases = [
        (
            json!({"name": "kube-proxy", "nodes": ["w1"]}),
            "option `kubeconfig`",
        ),
        (
            json!({"name": "kube-proxy", "kubeconfig": "/etc/kubernetes/admin.conf"}),
            "option `nodes`",
        ),
        (
            json!({"name": "kube-proxy", "kubeconfig": "/x", "nodes": ["w1"], "node_name": "w1"}),
            "option `node_name`",
        ),
        (
            json!({"name": "kube-proxy", "kubeconfig": "/x", "nodes": ["a/b"]}),
            "option `nodes`",
        ),
        (
            json!({"name": "kube-proxy", "kubeconfig": "/x", "nodes": ["w1"], "healthz_port": 70000}),
            "option `healthz_port`",
        ),
        (
            json!({"name": "kube-scheduler", "nodes": ["w1"]}),
            "option `nodes`: is only for name=kube-proxy",
        ),
        (
            json!({"name": "kube-proxy", "kubeconfig": "/x", "nodes": ["w1="]}),
            "has no address after `=`",
        ),
        (
            json!({"name": "kube-proxy", "kubeconfig": "/nonexistent/admin.conf", "nodes": ["w1"]}),
            "/nonexistent/admin.conf",
        ),
    ];
    for (options, expect) in cases {
        let msg = run_module("component_restart", options.clone(), Mode::NORMAL).fail_msg();
        assert!(msg.contains(expect), "{options}: {msg}");
    }
}
