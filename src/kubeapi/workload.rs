//! Workloads (DaemonSets, Deployments, StatefulSets) through the API: named as
//! `Kind/namespace/name` ([`WorkloadId`]), read and replaced with their `resourceVersion` (a
//! concurrent writer makes the PUT fail with 409 and the caller reads again), and their rollout
//! judged from `status` as `kubectl rollout status` judges it ([`rollout`]).

use super::client::{get_json, put_json, status_error, Put, Transport};
use crate::error::{Error, Result};
use crate::net::http::Request;
use serde_json::Value;

/// The kinds kubeha edits pod templates of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    DaemonSet,
    Deployment,
    StatefulSet,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::DaemonSet => "daemonsets",
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::DaemonSet => "DaemonSet",
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
        }
    }
}

/// `Kind/namespace/name`, as the pin scan names a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadId {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl WorkloadId {
    pub fn parse(text: &str, what: &str) -> Result<WorkloadId> {
        let parts: Vec<&str> = text.split('/').collect();
        let bad = || {
            Error::option(
                what,
                format!("{text:?} is not Kind/namespace/name with Kind DaemonSet, Deployment or StatefulSet (for example DaemonSet/kube-system/cilium)"),
            )
        };
        let [kind, namespace, name] = parts[..] else {
            return Err(bad());
        };
        let kind = match kind {
            "DaemonSet" => Kind::DaemonSet,
            "Deployment" => Kind::Deployment,
            "StatefulSet" => Kind::StatefulSet,
            _ => return Err(bad()),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        if !valid(namespace) || !valid(name) {
            return Err(bad());
        }
        Ok(WorkloadId {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    pub fn path(&self) -> String {
        format!(
            "/apis/apps/v1/namespaces/{}/{}/{}",
            self.namespace,
            self.kind.plural(),
            self.name
        )
    }

    /// A file name for its saved copy: `Kind.namespace.name.json`.
    pub fn file_name(&self) -> String {
        format!("{}.{}.{}.json", self.kind.name(), self.namespace, self.name)
    }
}

impl std::fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind.name(), self.namespace, self.name)
    }
}

/// GET the workload; `None` when it does not exist.
pub fn get(t: &dyn Transport, id: &WorkloadId) -> Result<Option<Value>> {
    let path = id.path();
    let resp = t
        .send(&Request::get(&path))
        .map_err(|e| Error::remote(t.server(), format!("GET {path}: {e}")))?;
    match resp.status {
        200 => serde_json::from_slice(&resp.body).map(Some).map_err(|e| {
            Error::remote(
                t.server(),
                format!("GET {path}: the answer is not JSON: {e}"),
            )
        }),
        404 => Ok(None),
        _ => Err(status_error(&t.server(), &format!("GET {path}"), &resp)),
    }
}

/// PUT the workload (carrying the `metadata.resourceVersion` it was read with).
pub fn put(t: &dyn Transport, id: &WorkloadId, object: &Value) -> Result<Put> {
    put_json(t, &id.path(), &id.to_string(), object)
}

/// GET the workload, which must exist (for the rollout wait).
pub fn get_existing(t: &dyn Transport, id: &WorkloadId) -> Result<Value> {
    get_json(t, &id.path())
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// Every pod runs the current template and is available.
    pub done: bool,
    /// The counts, as `kubectl rollout status` words them.
    pub summary: String,
    /// `updateStrategy.type` is OnDelete: nothing rolls until its pods are deleted.
    pub on_delete: bool,
}

fn count(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Judge the rollout from the object's `status`, as kubectl's rollout status viewers do
/// (k8s.io/kubectl pkg/polymorphichelpers/rollout_status.go): the controller has seen the current
/// generation, and every wanted pod runs the current template and is available.
pub fn rollout(kind: Kind, object: &Value) -> Rollout {
    let generation = count(&object["metadata"]["generation"]);
    let status = &object["status"];
    let observed = count(&status["observedGeneration"]);
    let strategy = match kind {
        Kind::Deployment => &object["spec"]["strategy"]["type"],
        _ => &object["spec"]["updateStrategy"]["type"],
    };
    let on_delete = strategy == "OnDelete";
    if observed < generation {
        return Rollout {
            done: false,
            summary: format!("waiting for the controller to see generation {generation} (it has seen {observed})"),
            on_delete,
        };
    }
    let (done, summary) = match kind {
        Kind::DaemonSet => {
            let desired = count(&status["desiredNumberScheduled"]);
            let updated = count(&status["updatedNumberScheduled"]);
            let available = count(&status["numberAvailable"]);
            (
                updated >= desired && available >= desired,
                format!("{updated} of {desired} updated pods scheduled, {available} of {desired} available"),
            )
        }
        Kind::Deployment => {
            let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let updated = count(&status["updatedReplicas"]);
            let replicas = count(&status["replicas"]);
            let available = count(&status["availableReplicas"]);
            (
                updated >= wanted && replicas <= updated && available >= updated,
                format!("{updated} of {wanted} replicas updated, {replicas} in all, {available} available"),
            )
        }
        Kind::StatefulSet => {
            let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let updated = count(&status["updatedReplicas"]);
            let ready = count(&status["readyReplicas"]);
            let revisions_match = status["updateRevision"] == status["currentRevision"];
            (
                updated >= wanted && ready >= wanted && revisions_match,
                format!("{updated} of {wanted} replicas updated, {ready} ready"),
            )
        }
    };
    Rollout {
        done,
        summary,
        on_delete,
    }
}

/// The label selector of a workload's pods (`spec.selector.matchLabels`) as query text.
pub fn selector(object: &Value) -> Option<String> {
    let labels = object["spec"]["selector"]["matchLabels"].as_object()?;
    let parts: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_parse_and_name_their_path() {
        let id = WorkloadId::parse("DaemonSet/kube-system/cilium", "w").unwrap();
        assert_eq!(
            id.path(),
            "/apis/apps/v1/namespaces/kube-system/daemonsets/cilium"
        );
        assert_eq!(id.to_string(), "DaemonSet/kube-system/cilium");
        assert_eq!(id.file_name(), "DaemonSet.kube-system.cilium.json");
        for bad in [
            "Pod/kube-system/x",
            "DaemonSet/kube-system",
            "DaemonSet//x",
            "DaemonSet/a/B",
            "DaemonSet/a/b/c",
        ] {
            let e = WorkloadId::parse(bad, "workloads").unwrap_err().to_string();
            assert!(e.contains("workloads") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn rollouts_are_judged_as_kubectl_judges_them() {
        let ds = |gen: i64, observed: i64, desired: i64, updated: i64, available: i64| {
            json!({"metadata": {"generation": gen}, "spec": {"updateStrategy": {"type": "RollingUpdate"}},
                   "status": {"observedGeneration": observed, "desiredNumberScheduled": desired,
                              "updatedNumberScheduled": updated, "numberAvailable": available}})
        };
        assert!(rollout(Kind::DaemonSet, &ds(2, 2, 5, 5, 5)).done);
        let stale = rollout(Kind::DaemonSet, &ds(3, 2, 5, 5, 5));
        assert!(
            !stale.done && stale.summary.contains("generation 3"),
            "{stale:?}"
        );
        let midway = rollout(Kind::DaemonSet, &ds(2, 2, 5, 3, 4));
        assert!(
            !midway.done && midway.summary.starts_with("3 of 5 updated"),
            "{midway:?}"
        );
        assert!(!rollout(Kind::DaemonSet, &ds(2, 2, 5, 5, 4)).done);
        let mut od = ds(2, 2, 5, 1, 5);
        od["spec"]["updateStrategy"]["type"] = json!("OnDelete");
        assert!(rollout(Kind::DaemonSet, &od).on_delete);
        let dep = |updated: i64, replicas: i64, available: i64| {
            json!({"metadata": {"generation": 4}, "spec": {"replicas": 2},
                   "status": {"observedGeneration": 4, "updatedReplicas": updated, "replicas": replicas, "availableReplicas": available}})
        };
        assert!(rollout(Kind::Deployment, &dep(2, 2, 2)).done);
        assert!(
            !rollout(Kind::Deployment, &dep(2, 3, 2)).done,
            "an old replica still runs"
        );
        assert!(!rollout(Kind::Deployment, &dep(1, 2, 2)).done);
        let sts = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "updatedReplicas": 1, "readyReplicas": 1, "updateRevision": "a", "currentRevision": "b"}});
        assert!(!rollout(Kind::StatefulSet, &sts).done);
    }

    #[test]
    fn the_selector_is_the_match_labels() {
        let o =
            json!({"spec": {"selector": {"matchLabels": {"k8s-app": "cilium", "tier": "node"}}}});
        assert_eq!(selector(&o).as_deref(), Some("k8s-app=cilium,tier=node"));
        assert_eq!(selector(&json!({"spec": {}})), None);
    }
}
