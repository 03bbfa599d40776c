"""Controllers the kube-controller-manager emulator runs while it leads: the bootstrap signer keeps
`kube-public/cluster-info`'s `jws-kubeconfig-<id>` signatures in step with its `kubeconfig` key
(new nodes joining check them); the node lifecycle controller marks a node whose kubelet stopped
posting (no new heartbeat, no Lease renewal) NotReady-Unknown and taints it unreachable, as the
real one does, so that losing a whole host shows on the API as it does in a real cluster; the
DaemonSet controller keeps each DaemonSet's status true and rolls a changed template onto the
nodes (RollingUpdate with maxUnavailable, or OnDelete). Its pods are created and run by the
kubelets (daemonpod.py); this controller deletes the old ones.

Signature format (k8s.io/cluster-bootstrap/token/jws ComputeDetachedSignature): a compact JWS,
HS256, whose HMAC key is the token secret and whose protected header is
{"alg":"HS256","kid":"<token-id>"}, with the payload part removed: `<header>..<signature>`.
"""

import base64
import datetime
import hashlib
import hmac
import json
import re
import time

from . import workloads

SECRET_TYPE = "bootstrap.kubernetes.io/token"
JWS_PREFIX = "jws-kubeconfig-"
CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
SECRETS = "/api/v1/namespaces/kube-system/secrets"
TOKEN_ID = re.compile(r"^[a-z0-9]{6}$")
TOKEN_SECRET = re.compile(r"^[a-z0-9]{16}$")


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def detached_jws(content, token_id, token_secret):
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = _b64url(content.encode())
    signing_input = (header + "." + payload).encode("ascii")
    signature = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return header + ".." + _b64url(signature)


def _decoded(data, key):
    value = (data or {}).get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _expired(expiration):
    if not expiration:
        return False
    try:
        when = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    except ValueError:
        return True
    return when <= datetime.datetime.now(datetime.timezone.utc)


def signing_tokens(secrets):
    """{token-id: token-secret} of valid, unexpired bootstrap tokens usable for signing."""
    tokens = {}
    for secret in secrets:
        if secret.get("type") != SECRET_TYPE:
            continue
        data = secret.get("data") or {}
        token_id = _decoded(data, "token-id")
        token_secret = _decoded(data, "token-secret")
        if not token_id or not token_secret or not TOKEN_ID.match(token_id) \
                or not TOKEN_SECRET.match(token_secret):
            continue
        if (secret.get("metadata") or {}).get("name") != "bootstrap-token-" + token_id:
            continue
        if _decoded(data, "usage-bootstrap-signing") != "true":
            continue
        if _expired(_decoded(data, "expiration")):
            continue
        tokens[token_id] = token_secret
    return tokens


class BootstrapSigner:
    def __init__(self, client, reporter=None):
        self.client = client
        self.reporter = reporter

    def sync(self):
        """One pass. Returns a short description of what changed (or None)."""
        cm_answer = self.client.get(CLUSTER_INFO)
        if cm_answer.status != 200 or not isinstance(cm_answer.json, dict):
            return None
        configmap = cm_answer.json
        data = dict(configmap.get("data") or {})
        content = data.get("kubeconfig")
        if content is None:
            return None
        secrets_answer = self.client.get(SECRETS)
        if secrets_answer.status != 200 or not isinstance(secrets_answer.json, dict):
            return None
        tokens = signing_tokens(secrets_answer.json.get("items") or [])
        changed = []
        for key in list(data):
            if key.startswith(JWS_PREFIX) and key[len(JWS_PREFIX):] not in tokens:
                del data[key]
                changed.append("removed " + key)
        for token_id, token_secret in sorted(tokens.items()):
            key = JWS_PREFIX + token_id
            signature = detached_jws(content, token_id, token_secret)
            if data.get(key) != signature:
                data[key] = signature
                changed.append("signed " + key)
        if not changed:
            return None
        configmap["data"] = data
        answer = self.client.put(CLUSTER_INFO, configmap)   # carries metadata.resourceVersion
        if answer.status != 200:
            return None   # 409: someone changed it meanwhile; the next pass re-reads
        detail = ", ".join(changed)
        if self.reporter:
            self.reporter.event("bootstrap-signer", self.client.server, detail, force=True)
        return detail


# --- node lifecycle (pkg/controller/nodelifecycle/node_lifecycle_controller.go, tryUpdateNodeHealth
# and the tainting passes). Defaults: --node-monitor-period 5s; --node-monitor-grace-period 50s
# since Kubernetes 1.32 (kubernetes/kubernetes#126287), 40s before; kubespray sets 40s and 5s.
NODES = "/api/v1/nodes"
NODE_LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
# The conditions a kubelet posts that the controller sets to Unknown with Ready.
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def _ready(node):
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return None


class NodeLifecycle:
    """Node health as the real controller judges it: a node's probe time is the controller's own
    clock when it last SAW something new from the kubelet (the Ready condition's heartbeat or the
    node Lease's renewTime changing), never the kubelet's timestamps themselves (clock skew). A
    node first seen gets a full grace period, so a newly elected leader does not mark every node
    at once. After the grace period without news: every kubelet condition Unknown (reason
    NodeStatusUnknown) and the unreachable taints (NoSchedule and NoExecute); when the kubelet
    posts Ready again, the taints go."""

    def __init__(self, client, reporter=None, grace=50.0, period=5.0, clock=time.monotonic, selector=None):
        self.client = client
        # only the nodes with these labels (tests that share an apiserver with other tests' nodes)
        self.nodes_path = NODES + ("?labelSelector=" + selector if selector else "")
        self.reporter = reporter
        self.grace = grace
        self.period = period
        self.clock = clock
        self.health = {}        # node -> (probe time, last heartbeat seen, last lease renewTime seen)
        self.last_pass = None

    def due(self):
        now = self.clock()
        if self.last_pass is not None and now - self.last_pass < self.period:
            return False
        self.last_pass = now
        return True

    def sync(self):
        """One monitor pass (at most every `period`). Returns the changes made, as text."""
        if not self.due():
            return []
        nodes = self.client.get(self.nodes_path)
        leases = self.client.get(NODE_LEASES)
        if nodes.status != 200 or not isinstance(nodes.json, dict):
            return []
        renewals = {}
        if leases.status == 200 and isinstance(leases.json, dict):
            for lease in leases.json.get("items") or []:
                renewals[(lease.get("metadata") or {}).get("name")] = (lease.get("spec") or {}).get("renewTime")
        now = self.clock()
        changes = []
        for node in nodes.json.get("items") or []:
            name = (node.get("metadata") or {}).get("name")
            if not name:
                continue
            ready = _ready(node)
            heartbeat = (ready or {}).get("lastHeartbeatTime")
            renewal = renewals.get(name)
            known = self.health.get(name)
            if known is None or known[1] != heartbeat or known[2] != renewal:
                probe = now
            else:
                probe = known[0]
            self.health[name] = (probe, heartbeat, renewal)
            if now - probe > self.grace and (ready is None or ready.get("status") != "Unknown"):
                node = self.mark_unknown(node) or node
                if _ready(node) and _ready(node).get("status") == "Unknown":
                    changes.append("%s: Ready Unknown (no heartbeat or lease renewal for %.0f s)" % (name, now - probe))
            change = self.taint(node)
            if change:
                changes.append("%s: %s" % (name, change))
        present = {(n.get("metadata") or {}).get("name") for n in nodes.json.get("items") or []}
        for name in set(self.health) - present:
            del self.health[name]
        if changes and self.reporter:
            self.reporter.event("node-lifecycle", self.client.server, "; ".join(changes), force=True)
        return changes

    def mark_unknown(self, node):
        """PUT the node's status with every kubelet condition Unknown; the updated node, or None
        (409: the kubelet wrote meanwhile, it is alive; the next pass looks again)."""
        stamp = _rfc3339()
        status = dict(node.get("status") or {})
        conditions = [dict(c) for c in status.get("conditions") or []]
        present = {c.get("type") for c in conditions}
        if "Ready" not in present:
            conditions.append({"type": "Ready", "reason": "NodeStatusNeverUpdated",
                               "message": "Kubelet never posted node status.", "lastHeartbeatTime": stamp,
                               "status": "Unknown", "lastTransitionTime": stamp})
        for c in conditions:
            if c.get("type") in NODE_CONDITIONS and c.get("status") != "Unknown":
                c.update({"status": "Unknown", "reason": UNKNOWN_REASON, "message": UNKNOWN_MESSAGE,
                          "lastTransitionTime": stamp})
        status["conditions"] = conditions
        body = dict(node, status=status)
        answer = self.client.put("%s/%s/status" % (NODES, node["metadata"]["name"]), body)
        return answer.json if answer.status == 200 and isinstance(answer.json, dict) else None

    def taint(self, node):
        """The unreachable taints while Ready is Unknown, none otherwise. Returns what changed."""
        ready = _ready(node)
        unreachable = ready is not None and ready.get("status") == "Unknown"
        spec = dict(node.get("spec") or {})
        taints = [t for t in spec.get("taints") or [] if t.get("key") != UNREACHABLE]
        if unreachable:
            taints += [{"key": UNREACHABLE, "effect": "NoSchedule"},
                       {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": _rfc3339()}]
        had = sorted(t.get("effect") for t in spec.get("taints") or [] if t.get("key") == UNREACHABLE)
        want = ["NoExecute", "NoSchedule"] if unreachable else []
        if had == want:
            return None
        if taints:
            spec["taints"] = taints
        else:
            spec.pop("taints", None)
        answer = self.client.put("%s/%s" % (NODES, node["metadata"]["name"]), dict(node, spec=spec))
        if answer.status != 200:
            return None
        return ("tainted %s" % UNREACHABLE) if unreachable else ("removed %s taints" % UNREACHABLE)


def _rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- DaemonSets (pkg/controller/daemon: daemon_controller.go updateDaemonSetStatus, update.go
# rollingUpdate with maxSurge 0). The real controller also creates the pods; here each kubelet
# creates its node's pod from the current template when it has none (daemonpod.py), which the
# manage loop and the kubelet do together in a real cluster.
DAEMONSETS = "/apis/apps/v1/daemonsets"


class DaemonSets:
    def __init__(self, client, reporter=None, selector=None):
        self.client = client
        self.reporter = reporter
        # only the DaemonSets with these labels (tests sharing an apiserver)
        self.query = "?labelSelector=" + selector if selector else ""

    def sync(self):
        """One pass over every DaemonSet. Returns what was done, as text."""
        dss = self.client.get(DAEMONSETS + self.query)
        nodes = self.client.get(NODES)
        if dss.status != 200 or nodes.status != 200 or not isinstance(dss.json, dict) \
                or not isinstance(nodes.json, dict):
            return []
        done = []
        for ds in dss.json.get("items") or []:
            done += self.sync_one(ds, nodes.json.get("items") or [])
        if done and self.reporter:
            self.reporter.event("daemonset-controller", self.client.server, "; ".join(done), force=True)
        return done

    def sync_one(self, ds, nodes):
        meta = ds["metadata"]
        ns, name = meta["namespace"], meta["name"]
        pods = self.client.get("/api/v1/namespaces/%s/pods?labelSelector=%s" % (ns, workloads.selector_query(ds)))
        if pods.status != 200 or not isinstance(pods.json, dict):
            return []
        by_node = {}
        for pod in pods.json.get("items") or []:
            if workloads.owned_by(pod, ds) and (pod.get("spec") or {}).get("nodeName"):
                by_node.setdefault(pod["spec"]["nodeName"], []).append(pod)
        for found in by_node.values():   # the oldest pod first, as podByCreationTimestampAndPhase
            found.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        eligible = [n["metadata"]["name"] for n in nodes if workloads.should_run(n, ds)]
        current = workloads.template_hash(ds)
        done = []
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            for pod in self.rolling_update(ds, eligible, by_node, current):
                answer = self.client.request(
                    "DELETE", "/api/v1/namespaces/%s/pods/%s" % (ns, pod["metadata"]["name"]),
                    {"preconditions": {"uid": pod["metadata"]["uid"]}})
                if answer.status == 200:
                    done.append("%s/%s: deleted old pod %s on %s" % (ns, name, pod["metadata"]["name"],
                                                                     pod["spec"]["nodeName"]))
                    by_node[pod["spec"]["nodeName"]].remove(pod)
        status = self.status(ds, nodes, eligible, by_node, current)
        if status != ds.get("status"):
            answer = self.client.put("%s/%s/daemonsets/%s/status" % ("/apis/apps/v1/namespaces", ns, name),
                                     dict(ds, status=status))
            if answer.status == 200:
                old = ds.get("status") or {}
                changed = sorted(k for k in status if status[k] != old.get(k))
                done.append("%s/%s: status %s" % (ns, name, ", ".join("%s=%s" % (k, status[k]) for k in changed)))
        return done

    @staticmethod
    def rolling_update(ds, eligible, by_node, current):
        """The old pods to delete now: every unavailable old pod (counted as unavailable), plus
        available old pods while fewer than maxUnavailable nodes are unavailable. A node that should run the pod and has
        none counts as unavailable (the real manage loop has already created its new pod there,
        not yet available)."""
        spec = ds.get("spec") or {}
        rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
        min_ready = spec.get("minReadySeconds") or 0
        max_unavailable = workloads.scaled_value(rolling.get("maxUnavailable", 1), len(eligible), True)
        max_surge = workloads.scaled_value(rolling.get("maxSurge", 0), len(eligible), True)
        if max_unavailable == 0 and max_surge == 0:
            max_unavailable = 1   # updatedDesiredNodeCounts: never a rollout that cannot progress
        unavailable = 0
        replace, candidates = [], []
        for node in eligible:
            pods = by_node.get(node) or []
            new = [p for p in pods if workloads.is_updated(p, ds, current)]
            old = [p for p in pods if p not in new]
            if not pods or (new and old) or len(pods) > 1:
                unavailable += 1
            elif new:
                if not workloads.pod_available(new[0], min_ready):
                    unavailable += 1
            elif not workloads.pod_available(old[0], min_ready):
                replace.append(old[0])      # replaced at once, and counted (update.go since the
                unavailable += 1            # contextual-logging rewrite; older ones did not count it)
            elif unavailable < max_unavailable:
                candidates.append(old[0])
        room = max(0, min(max_unavailable - unavailable, len(candidates)))
        return replace + candidates[:room]

    @staticmethod
    def status(ds, nodes, eligible, by_node, current):
        spec = ds.get("spec") or {}
        min_ready = spec.get("minReadySeconds") or 0
        desired = len(eligible)
        scheduled = ready = available = updated = 0
        for node in eligible:
            pods = by_node.get(node)
            if not pods:
                continue
            scheduled += 1
            if workloads.pod_ready(pods[0]):
                ready += 1
                if workloads.pod_available(pods[0], min_ready):
                    available += 1
            if workloads.is_updated(pods[0], ds, current):
                updated += 1
        misscheduled = sum(1 for n in nodes if n["metadata"]["name"] not in eligible
                           and by_node.get(n["metadata"]["name"]))
        status = dict(ds.get("status") or {})
        status.update({"desiredNumberScheduled": desired, "currentNumberScheduled": scheduled,
                       "numberMisscheduled": misscheduled, "numberReady": ready,
                       "updatedNumberScheduled": updated, "numberAvailable": available,
                       "observedGeneration": ds["metadata"].get("generation", 0)})
        # numberUnavailable, like numberAvailable, is omitempty in the Go type
        if desired - available:
            status["numberUnavailable"] = desired - available
        else:
            status.pop("numberUnavailable", None)
        if not available:
            status.pop("numberAvailable", None)
        if not updated:
            status.pop("updatedNumberScheduled", None)
        return status
