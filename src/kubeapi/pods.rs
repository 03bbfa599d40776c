//! The pods a DaemonSet runs on one node, read and deleted through the API, and the node's
//! address: what a node-by-node roll needs (kube-proxy after its ConfigMap changed). Deleting a
//! DaemonSet's pod is how `kubectl` users restart it; the DaemonSet controller (the kubelet, on the
//! test bed) starts a new one with the current ConfigMap.

use super::client::{get_json, status_error, Transport};
use crate::error::{Error, Result};
use crate::net::http::Request;
use serde_json::Value;

/// A pod as the roll sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub uid: String,
    /// `status.phase`: Pending, Running, ...
    pub phase: String,
    /// `metadata.deletionTimestamp` is set: it is going away.
    pub terminating: bool,
}

/// Percent-encoding of a query value: everything but RFC 3986's unreserved characters.
pub fn query_value(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The pods matching the label `selector` scheduled on `node`.
pub fn on_node(t: &dyn Transport, namespace: &str, selector: &str, node: &str) -> Result<Vec<Pod>> {
    let path = format!(
        "/api/v1/namespaces/{namespace}/pods?labelSelector={}&fieldSelector={}",
        query_value(selector),
        query_value(&format!("spec.nodeName={node}"))
    );
    let list = get_json(t, &path)?;
    let items = list["items"].as_array().ok_or_else(|| {
        Error::remote(
            t.server(),
            format!("GET {path}: the answer has no items list"),
        )
    })?;
    Ok(items.iter().map(pod_of).collect())
}

pub fn pod_of(item: &Value) -> Pod {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Pod {
        name: text(&item["metadata"]["name"]),
        uid: text(&item["metadata"]["uid"]),
        phase: text(&item["status"]["phase"]),
        terminating: !item["metadata"]["deletionTimestamp"].is_null(),
    }
}

/// Delete a pod; a pod already gone is not an error (`false`).
pub fn delete(t: &dyn Transport, namespace: &str, name: &str) -> Result<bool> {
    let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
    let req = Request {
        method: "DELETE",
        path: &path,
        content_type: None,
        body: None,
    };
    let resp = t
        .send(&req)
        .map_err(|e| Error::remote(t.server(), format!("DELETE {path}: {e}")))?;
    match resp.status {
        200 | 202 => Ok(true),
        404 => Ok(false),
        _ => Err(status_error(&t.server(), &format!("DELETE {path}"), &resp)),
    }
}

/// The node's `InternalIP` from `status.addresses`.
pub fn internal_ip(t: &dyn Transport, node: &str) -> Result<Option<String>> {
    let object = get_json(t, &format!("/api/v1/nodes/{node}"))?;
    Ok(object["status"]["addresses"]
        .as_array()
        .and_then(|addresses| {
            addresses
                .iter()
                .find(|a| a["type"] == "InternalIP")
                .and_then(|a| a["address"].as_str())
        })
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_are_percent_encoded() {
        assert_eq!(query_value("k8s-app=kube-proxy"), "k8s-app%3Dkube-proxy");
        assert_eq!(
            query_value("spec.nodeName=kubeha-worker1"),
            "spec.nodeName%3Dkubeha-worker1"
        );
        assert_eq!(query_value("a in (b,c)"), "a%20in%20%28b%2Cc%29");
    }

    #[test]
    fn a_pod_item_reads_name_uid_phase_and_termination() {
        let p = pod_of(&json!({
            "metadata": {"name": "kube-proxy-w1", "uid": "u1", "deletionTimestamp": "2026-12-04T21:00:00Z"},
            "status": {"phase": "Running"}
        }));
        assert_eq!(
            p,
            Pod {
                name: "kube-proxy-w1".into(),
                uid: "u1".into(),
                phase: "Running".into(),
                terminating: true
            }
        );
        assert!(!pod_of(&json!({"metadata": {"name": "x"}})).terminating);
    }
}
