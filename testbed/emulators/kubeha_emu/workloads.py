"""What the DaemonSet controller (controllers.py) and the kubelet's DaemonSet pods (daemonpod.py)
must agree on: a DaemonSet's template hash (the pods' `controller-revision-hash` label), on which
nodes it runs, which pods are its own, and when a pod is ready and available.

Template hash as k8s.io/kubernetes pkg/controller/controller_utils.go ComputeHash: FNV-1a 32 of the
template (and the collision count), the decimal value encoded with apimachinery's
rand.SafeEncodeString. The real one hashes the Go struct printed by spew (DeepHashObject); this
one the template's canonical JSON, so the values differ from a real cluster's but change exactly
when the template does."""

import calendar
import json
import time

REVISION_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"
SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"

# pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations: tolerations every daemon pod gets
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                           "effect": "NoSchedule"}


def pod_labels(ds):
    """The labels of a new pod of `ds`: its template's, the template hash and generation."""
    labels = dict((((ds.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})
    labels[REVISION_LABEL] = template_hash(ds)
    generation = ((ds.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION)
    if generation:
        labels[GENERATION_LABEL] = generation
    return labels


def is_updated(pod, ds, current_hash):
    """daemon/util IsPodUpdated: the pod's hash is the template's, or its template generation is."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    generation = ((ds.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION)
    return labels.get(REVISION_LABEL) == current_hash or (
        generation is not None and labels.get(GENERATION_LABEL) == generation)


def template_hash(ds):
    template = (ds.get("spec") or {}).get("template") or {}
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    collisions = (ds.get("status") or {}).get("collisionCount")
    if collisions is not None:
        data += int(collisions).to_bytes(4, "little")
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(SAFE_ALPHANUMS[ord(ch) % len(SAFE_ALPHANUMS)] for ch in str(value))


def _tolerates(tolerations, taint):
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol.get("key") == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def should_run(node, ds):
    """NodeShouldRunDaemonPod's answer for a new pod: the template's nodeSelector matches the node's
    labels and every NoSchedule/NoExecute taint is tolerated (with the daemon tolerations).
    Node affinity is not emulated."""
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    extra = DAEMON_TOLERATIONS + ([HOST_NETWORK_TOLERATION] if spec.get("hostNetwork") else [])
    return fits(node, spec, extra)


def fits(node, pod_spec, extra_tolerations=()):
    """The scheduler's NodeAffinity (nodeSelector only) and TaintToleration filters: the pod spec's
    nodeSelector matches the node's labels and every NoSchedule/NoExecute taint is tolerated."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    tolerations = list(pod_spec.get("tolerations") or []) + list(extra_tolerations)
    taints = list((node.get("spec") or {}).get("taints") or [])
    if (node.get("spec") or {}).get("unschedulable"):   # NodeUnschedulable: this taint's toleration
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    return all(_tolerates(tolerations, t) for t in taints if t.get("effect") in ("NoSchedule", "NoExecute"))


def matches(selector_labels, labels):
    """A matchLabels selector against an object's labels (an empty selector matches nothing here)."""
    return bool(selector_labels) and all((labels or {}).get(k) == v for k, v in selector_labels.items())


def owned_by(pod, ds):
    uid = (ds.get("metadata") or {}).get("uid")
    return any(ref.get("controller") and ref.get("uid") == uid
               for ref in (pod.get("metadata") or {}).get("ownerReferences") or [])


def owner(pod):
    """(kind, name, uid) of the pod's controller ownerReference, or None."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("kind"), ref.get("name"), ref.get("uid")
    return None


def selector_query(ds):
    labels = ((ds.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join("%s=%s" % kv for kv in sorted(labels.items()))


def _ready_condition(pod):
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return None


def pod_ready(pod):
    condition = _ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def pod_available(pod, min_ready_seconds=0, now=None):
    """podutil.IsPodAvailable: Ready, and for at least minReadySeconds."""
    if not pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = _ready_condition(pod).get("lastTransitionTime")
    try:
        when = calendar.timegm(time.strptime(since, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return False
    return when + min_ready_seconds <= (now if now is not None else time.time())


def scaled_value(value, total, round_up):
    """intstr.GetScaledValueFromIntOrPercent: an int, or "N%" of `total`."""
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        return int(text)
    scaled = int(text[:-1]) * total
    return -(-scaled // 100) if round_up else scaled // 100
