"""Controllers the kube-controller-manager emulator runs while it leads: the bootstrap signer keeps
`kube-public/cluster-info`'s `jws-kubeconfig-<id>` signatures in step with its `kubeconfig` key
(new nodes joining check them); the node lifecycle controller marks a node whose kubelet stopped
posting (no new heartbeat, no Lease renewal) NotReady-Unknown and taints it unreachable, as the
real one does, so that losing a whole host shows on the API as it does in a real cluster.

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
