"""Controllers the kube-controller-manager emulator runs while it leads: the bootstrap signer keeps
`kube-public/cluster-info`'s `jws-kubeconfig-<id>` signatures in step with its `kubeconfig` key
(new nodes joining check them); the node lifecycle controller marks a node whose kubelet stopped
posting (no new heartbeat, no Lease renewal) NotReady-Unknown and taints it unreachable, as the
real one does, so that losing a whole host shows on the API as it does in a real cluster; the
DaemonSet controller keeps each DaemonSet's status true and rolls a changed template onto the
nodes (RollingUpdate with maxUnavailable, or OnDelete). Its pods are created and run by the
kubelets (daemonpod.py); this controller deletes the old ones. The Deployment controller keeps one
ReplicaSet per template and rolls between them (RollingUpdate with maxSurge/maxUnavailable, or
Recreate); the ReplicaSet controller creates and deletes their pods, bound to a node as the
scheduler would, and the kubelets run those whose program is emulated.

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


# --- Deployments and ReplicaSets (pkg/controller/deployment: sync.go calculateStatus and
# getNewReplicaSet, rolling.go, recreate.go, progress.go, util/deployment_util.go NewRSNewReplicas,
# MaxUnavailable and ResolveFenceposts; pkg/controller/replicaset/replica_set.go manageReplicas and
# replica_set_utils.go calculateStatus). The pods are created by the ReplicaSet controller as in a
# real cluster, and bound to a node at once: the emulated controller-manager also does the
# scheduler's part (`schedule` below), so kube-scheduler's emulator stays a leader-election stand-in.
DEPLOYMENTS = "/apis/apps/v1/deployments"
REPLICASETS = "/apis/apps/v1/replicasets"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _path(kind_plural, namespace, name=None, group="/apis/apps/v1"):
    base = "%s/namespaces/%s/%s" % (group, namespace, kind_plural)
    return base + "/" + name if name else base


def fenceposts(deploy):
    """ResolveFenceposts: (maxSurge rounded up, maxUnavailable rounded down) of spec.replicas; both
    0 makes maxUnavailable 1."""
    spec = deploy.get("spec") or {}
    replicas = spec.get("replicas", 1)
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = workloads.scaled_value(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = workloads.scaled_value(rolling.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(deploy):
    spec = deploy.get("spec") or {}
    replicas = spec.get("replicas", 1)
    if (spec.get("strategy") or {}).get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0
    return min(fenceposts(deploy)[1], replicas)


def _rs_replicas(rs):
    return (rs.get("spec") or {}).get("replicas", 0)


def _rs_status(rs, field):
    return (rs.get("status") or {}).get(field, 0)


def _created(obj):
    return ((obj.get("metadata") or {}).get("creationTimestamp") or "", obj["metadata"]["name"])


def _template_without_hash(template):
    template = json.loads(json.dumps(template or {}))
    labels = (template.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return template


def _condition(status, kind):
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def _set_condition(status, kind, value, reason, message, refresh=False):
    """SetDeploymentCondition: an unchanged (status, reason) is left as it is (unless `refresh`:
    RemoveDeploymentCondition first, as syncRolloutStatus does for ReplicaSetUpdated, which renews
    lastUpdateTime); the same status keeps its lastTransitionTime; the condition moves to the end."""
    current = _condition(status, kind)
    if current and current.get("status") == value and current.get("reason") == reason and not refresh:
        return
    stamp = _rfc3339()
    condition = {"type": kind, "status": value, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
                 "reason": reason, "message": message}
    if current and current.get("status") == value:
        condition["lastTransitionTime"] = current.get("lastTransitionTime") or stamp
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != kind] + [condition]


class Deployments:
    """Deployment controller: one ReplicaSet per pod template (`<name>-<pod-template-hash>`), scaled
    by the strategy. RollingUpdate: the new ReplicaSet grows while all ReplicaSets' replicas stay
    within replicas + maxSurge (NewRSNewReplicas); old ones shrink, unhealthy replicas first, while
    the available pods stay at least replicas - maxUnavailable (reconcileOldReplicaSets).
    Recreate: old ReplicaSets to 0, the new one scaled up once no old pod runs. Status from the
    ReplicaSets' own status (written by the ReplicaSet controller from the pods the kubelets run),
    with the Available and Progressing conditions."""

    def __init__(self, client, reporter=None, namespace=None):
        self.client = client
        self.reporter = reporter
        self.namespace = namespace     # tests sharing an apiserver: only this namespace

    def sync(self):
        path = _path("deployments", self.namespace) if self.namespace else DEPLOYMENTS
        deploys = self.client.get(path)
        if deploys.status != 200 or not isinstance(deploys.json, dict):
            return []
        done = []
        for deploy in deploys.json.get("items") or []:
            done += self.sync_one(deploy)
        if done and self.reporter:
            self.reporter.event("deployment-controller", self.client.server, "; ".join(done), force=True)
        return done

    def replica_sets(self, deploy):
        ns = deploy["metadata"]["namespace"]
        answer = self.client.get(_path("replicasets", ns) + "?labelSelector=" + workloads.selector_query(deploy))
        if answer.status != 200 or not isinstance(answer.json, dict):
            return None
        return sorted((rs for rs in answer.json.get("items") or [] if workloads.owned_by(rs, deploy)), key=_created)

    def sync_one(self, deploy):
        meta = deploy["metadata"]
        ns, name = meta["namespace"], meta["name"]
        all_rs = self.replica_sets(deploy)
        if all_rs is None:
            return []
        wanted = _template_without_hash((deploy.get("spec") or {}).get("template"))
        new_rs = next((rs for rs in all_rs if _template_without_hash(rs["spec"].get("template")) == wanted), None)
        old_rss = [rs for rs in all_rs if rs is not new_rs]
        spec = deploy.get("spec") or {}
        replicas = spec.get("replicas", 1)
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        status = json.loads(json.dumps(deploy.get("status") or {}))
        done = []
        if new_rs is None and not (strategy == "Recreate" and self._old_pods_running(old_rss)):
            initial = replicas if strategy == "Recreate" else self._new_rs_replicas(deploy, all_rs, None)
            new_rs = self._create_rs(deploy, old_rss, initial, status, done)
            if new_rs is None:
                self._write_status(deploy, status, done)
                return done
            all_rs = old_rss + [new_rs]
        elif new_rs is not None:
            self._annotate(deploy, new_rs, old_rss)
            if _condition(status, "Progressing") is None:
                _set_condition(status, "Progressing", "True", "FoundNewReplicaSet",
                               'Found new replica set "%s"' % new_rs["metadata"]["name"])
        if spec.get("paused"):
            pass   # a paused Deployment is only kept in status
        elif strategy == "Recreate":
            for rs in old_rss:
                if _rs_replicas(rs):
                    self._scale(rs, 0, deploy, done)
            if new_rs is not None and not any(_rs_replicas(rs) for rs in old_rss) \
                    and not self._old_pods_running(old_rss) and _rs_replicas(new_rs) != replicas:
                self._scale(new_rs, replicas, deploy, done)
        else:
            self.rolling(deploy, new_rs, old_rss, done)
        self._cleanup(deploy, old_rss)
        self._sync_status(deploy, [rs for rs in old_rss + [new_rs] if rs is not None], new_rs, status, done)
        return done

    # --- the rolling update (rolling.go rolloutRolling)
    def rolling(self, deploy, new_rs, old_rss, done):
        replicas = (deploy.get("spec") or {}).get("replicas", 1)
        all_rs = old_rss + [new_rs]
        # reconcileNewReplicaSet
        if _rs_replicas(new_rs) > replicas:
            self._scale(new_rs, replicas, deploy, done)
            return
        if _rs_replicas(new_rs) < replicas:
            count = self._new_rs_replicas(deploy, all_rs, new_rs)
            if count != _rs_replicas(new_rs):
                self._scale(new_rs, count, deploy, done)
                return
        # reconcileOldReplicaSets
        active_old = [rs for rs in old_rss if _rs_replicas(rs) > 0]
        if not active_old:
            return
        all_pods = sum(_rs_replicas(rs) for rs in all_rs)
        min_available = replicas - max_unavailable(deploy)
        new_unavailable = _rs_replicas(new_rs) - _rs_status(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        cleaned = 0
        for rs in active_old:                       # cleanupUnhealthyReplicas, oldest first
            if cleaned >= max_scaled_down:
                break
            unhealthy = _rs_replicas(rs) - _rs_status(rs, "availableReplicas")
            if _rs_replicas(rs) == 0 or unhealthy <= 0:
                continue
            count = min(max_scaled_down - cleaned, unhealthy)
            self._scale(rs, _rs_replicas(rs) - count, deploy, done)
            cleaned += count
        # scaleDownOldReplicaSetsForRollingUpdate
        available = sum(_rs_status(rs, "availableReplicas") for rs in old_rss + [new_rs])
        if available <= min_available:
            return
        budget, scaled = available - min_available, 0
        for rs in active_old:
            if scaled >= budget:
                break
            if _rs_replicas(rs) == 0:
                continue
            count = min(_rs_replicas(rs), budget - scaled)
            self._scale(rs, _rs_replicas(rs) - count, deploy, done)
            scaled += count

    @staticmethod
    def _new_rs_replicas(deploy, all_rs, new_rs):
        """NewRSNewReplicas for RollingUpdate: as many as replicas + maxSurge leaves room for."""
        replicas = (deploy.get("spec") or {}).get("replicas", 1)
        current = _rs_replicas(new_rs) if new_rs else 0
        surge = fenceposts(deploy)[0]
        total = sum(_rs_replicas(rs) for rs in all_rs if rs is not None)
        if total >= replicas + surge:
            return current
        return current + max(0, min(replicas + surge - total, replicas - current))

    # --- ReplicaSets
    def _old_pods_running(self, old_rss):
        """recreate.go oldPodsRunning: a pod of an old ReplicaSet that is not Succeeded/Failed."""
        for rs in old_rss:
            if _rs_status(rs, "replicas"):
                return True
            pods = ReplicaSets(self.client).pods_of(rs)
            if pods:
                return True
        return False

    def _annotate(self, deploy, new_rs, old_rss):
        """The new ReplicaSet's revision (above every old one's) and desired/max replicas."""
        revisions = [int((rs["metadata"].get("annotations") or {}).get(REVISION) or 0) for rs in old_rss]
        annotations = dict(new_rs["metadata"].get("annotations") or {})
        wanted = dict(annotations)
        if int(annotations.get(REVISION) or 0) <= max(revisions or [0]):
            wanted[REVISION] = str(max(revisions or [0]) + 1)
        replicas = (deploy.get("spec") or {}).get("replicas", 1)
        wanted[DESIRED_REPLICAS] = str(replicas)
        wanted[MAX_REPLICAS] = str(replicas + (fenceposts(deploy)[0] if (deploy.get("spec") or {}).get(
            "strategy", {}).get("type", "RollingUpdate") == "RollingUpdate" else 0))
        if wanted != annotations:
            new_rs["metadata"]["annotations"] = wanted
            answer = self.client.put(_path("replicasets", new_rs["metadata"]["namespace"], new_rs["metadata"]["name"]),
                                     new_rs)
            if answer.status == 200:
                new_rs.clear()
                new_rs.update(answer.json)

    def _create_rs(self, deploy, old_rss, replicas, status, done):
        meta, spec = deploy["metadata"], deploy.get("spec") or {}
        ns = meta["namespace"]
        digest = workloads.template_hash(deploy)
        template = json.loads(json.dumps(spec.get("template") or {}))
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
        selector = json.loads(json.dumps(spec.get("selector") or {}))
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
        revisions = [int((rs["metadata"].get("annotations") or {}).get(REVISION) or 0) for rs in old_rss]
        surge = fenceposts(deploy)[0] if (spec.get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate" else 0
        annotations.update({REVISION: str(max(revisions or [0]) + 1), DESIRED_REPLICAS: str(spec.get("replicas", 1)),
                            MAX_REPLICAS: str(spec.get("replicas", 1) + surge)})
        name = "%s-%s" % (meta["name"], digest)
        body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": ns, "labels": dict(template["metadata"]["labels"]),
                             "annotations": annotations,
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                                  "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
                "spec": {"replicas": replicas, "minReadySeconds": spec.get("minReadySeconds", 0),
                         "selector": selector, "template": template}}
        answer = self.client.post(_path("replicasets", ns), body)
        if answer.status == 201 and isinstance(answer.json, dict):
            done.append("%s/%s: created ReplicaSet %s with %d replicas" % (ns, meta["name"], name, replicas))
            _set_condition(status, "Progressing", "True", "NewReplicaSetCreated", 'Created new replica set "%s"' % name)
            return answer.json
        if answer.status == 409:
            # a ReplicaSet of that name with another template: a hash collision; the next pass
            # hashes with status.collisionCount + 1
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            done.append("%s/%s: hash collision on %s" % (ns, meta["name"], name))
        return None

    def _scale(self, rs, replicas, deploy, done):
        rs = json.loads(json.dumps(rs))
        old = _rs_replicas(rs)
        rs["spec"]["replicas"] = replicas
        rs["metadata"].setdefault("annotations", {})[DESIRED_REPLICAS] = str((deploy.get("spec") or {}).get("replicas", 1))
        answer = self.client.put(_path("replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"]), rs)
        if answer.status == 200:
            done.append("%s/%s: scaled ReplicaSet %s from %d to %d" % (
                deploy["metadata"]["namespace"], deploy["metadata"]["name"], rs["metadata"]["name"], old, replicas))

    def _cleanup(self, deploy, old_rss):
        """cleanupDeployment: old ReplicaSets with no replicas beyond revisionHistoryLimit go."""
        limit = (deploy.get("spec") or {}).get("revisionHistoryLimit", 10)
        cleanable = [rs for rs in old_rss if _rs_replicas(rs) == 0 and _rs_status(rs, "replicas") == 0
                     and _rs_status(rs, "observedGeneration") >= rs["metadata"].get("generation", 0)]
        cleanable.sort(key=lambda rs: int((rs["metadata"].get("annotations") or {}).get(REVISION) or 0))
        for rs in cleanable[:max(0, len(cleanable) - limit)]:
            self.client.delete(_path("replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"]))

    # --- status (sync.go calculateStatus, progress.go syncRolloutStatus)
    def _sync_status(self, deploy, all_rs, new_rs, status, done):
        spec = deploy.get("spec") or {}
        replicas = spec.get("replicas", 1)
        available = sum(_rs_status(rs, "availableReplicas") for rs in all_rs)
        total = sum(_rs_replicas(rs) for rs in all_rs)
        status.update({"observedGeneration": deploy["metadata"].get("generation", 0),
                       "replicas": sum(_rs_status(rs, "replicas") for rs in all_rs),
                       "updatedReplicas": _rs_status(new_rs, "replicas") if new_rs else 0,
                       "readyReplicas": sum(_rs_status(rs, "readyReplicas") for rs in all_rs),
                       "availableReplicas": available,
                       "unavailableReplicas": max(0, total - available)})
        if available >= replicas - max_unavailable(deploy):
            _set_condition(status, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            _set_condition(status, "Available", "False", "MinimumReplicasUnavailable",
                           "Deployment does not have minimum availability.")
        old = deploy.get("status") or {}
        progressing = _condition(status, "Progressing")
        complete_before = progressing is not None and progressing.get("reason") == "NewReplicaSetAvailable" \
            and status["replicas"] == status["updatedReplicas"]
        if new_rs is not None and not complete_before:
            rs_name = new_rs["metadata"]["name"]
            if (status["updatedReplicas"] == replicas and status["replicas"] == replicas
                    and available == replicas):
                _set_condition(status, "Progressing", "True", "NewReplicaSetAvailable",
                               'ReplicaSet "%s" has successfully progressed.' % rs_name)
            elif (status["updatedReplicas"] > old.get("updatedReplicas", 0)
                  or status["replicas"] - status["updatedReplicas"] < old.get("replicas", 0) - old.get("updatedReplicas", 0)
                  or status["readyReplicas"] > old.get("readyReplicas", 0) or available > old.get("availableReplicas", 0)):
                _set_condition(status, "Progressing", "True", "ReplicaSetUpdated",
                               'ReplicaSet "%s" is progressing.' % rs_name, refresh=True)
            elif progressing is not None and progressing.get("reason") != "ProgressDeadlineExceeded" \
                    and _timed_out(progressing, spec.get("progressDeadlineSeconds", 600)):
                _set_condition(status, "Progressing", "False", "ProgressDeadlineExceeded",
                               'ReplicaSet "%s" has timed out progressing.' % rs_name)
        for key in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                    "unavailableReplicas", "collisionCount"):
            if not status.get(key):      # omitempty in apps/v1 DeploymentStatus
                status.pop(key, None)
        self._write_status(deploy, status, done)

    def _write_status(self, deploy, status, done):
        if status == (deploy.get("status") or {}):
            return
        meta = deploy["metadata"]
        answer = self.client.put(_path("deployments", meta["namespace"], meta["name"]) + "/status",
                                 dict(deploy, status=status))
        if answer.status == 200:
            old = deploy.get("status") or {}
            changed = sorted(k for k in status if k != "conditions" and status[k] != old.get(k))
            done.append("%s/%s: status %s" % (meta["namespace"], meta["name"],
                                             ", ".join("%s=%s" % (k, status[k]) for k in changed) or "conditions"))


def _timed_out(condition, deadline):
    try:
        since = datetime.datetime.strptime(condition.get("lastUpdateTime") or "", "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    since = since.replace(tzinfo=datetime.timezone.utc)
    return since + datetime.timedelta(seconds=deadline) < datetime.datetime.now(datetime.timezone.utc)


def _active(pod):
    """controller.IsPodActive: not Succeeded/Failed, not being deleted."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") \
        and not (pod.get("metadata") or {}).get("deletionTimestamp")


def _deletion_rank(pod):
    """controller.ActivePods ordering, the pods to delete first first: unassigned before assigned,
    Pending before Unknown before Running, not ready before ready, ready for less time first, more
    restarts first, newer first."""
    status = pod.get("status") or {}
    phase = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase"), 0)
    ready = workloads.pod_ready(pod)
    since = next((c.get("lastTransitionTime") or "" for c in status.get("conditions") or []
                  if c.get("type") == "Ready"), "")
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    created = (pod.get("metadata") or {}).get("creationTimestamp") or ""
    return (bool((pod.get("spec") or {}).get("nodeName")), phase, ready,
            _Reverse(since) if ready else _Reverse(""), -restarts, _Reverse(created))


class _Reverse:
    def __init__(self, value):
        self.value = value

    def __lt__(self, other):
        return self.value > other.value

    def __eq__(self, other):
        return self.value == other.value


def _anti_affinity_terms(pod_spec):
    """requiredDuringSchedulingIgnoredDuringExecution pod anti-affinity terms by hostname."""
    terms = ((((pod_spec.get("affinity") or {}).get("podAntiAffinity") or {})
              .get("requiredDuringSchedulingIgnoredDuringExecution")) or [])
    return [t for t in terms if t.get("topologyKey") == "kubernetes.io/hostname"]


def schedule(pod, nodes, pods):
    """The scheduler's choice for `pod` among `nodes` (None: unschedulable, it stays Pending).
    Filters: nodeSelector, taints against tolerations (TaintToleration, NodeUnschedulable), required
    pod anti-affinity on kubernetes.io/hostname (matchLabels, the pod's own namespace). Score: the
    fewest pods of the same owner (the default topology spread over hostnames), ties by node name
    where the real scheduler picks at random among equal scores."""
    spec = pod.get("spec") or {}
    ns = pod["metadata"]["namespace"]
    bound = [p for p in pods if _active(p) and (p.get("spec") or {}).get("nodeName")]
    candidates = []
    for node in nodes:
        name = node["metadata"]["name"]
        if not workloads.fits(node, spec):
            continue
        here = [p for p in bound if p["spec"]["nodeName"] == name]
        if any(workloads.matches((t.get("labelSelector") or {}).get("matchLabels"), (p.get("metadata") or {}).get("labels"))
               and p["metadata"].get("namespace") in (t.get("namespaces") or [ns])
               for t in _anti_affinity_terms(spec) for p in here):
            continue
        owner = workloads.owner(pod)
        same = sum(1 for p in here if workloads.owner(p) == owner)
        candidates.append((same, name))
    return min(candidates)[1] if candidates else None


class ReplicaSets:
    """ReplicaSet controller: as many active pods as spec.replicas, created from the template (owner
    the ReplicaSet, `generateName: <rs>-`, bound by `schedule`), the surplus deleted in the order of
    controller.ActivePods; status replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
    observedGeneration from the pods seen at the start of the pass (as the real one). Also the
    garbage collector's part for Deployments: a ReplicaSet whose owning Deployment is gone is
    deleted, and so are pods whose owning ReplicaSet is gone."""

    def __init__(self, client, reporter=None, namespace=None):
        self.client = client
        self.reporter = reporter
        self.namespace = namespace

    def pods_of(self, rs, pods=None):
        if pods is None:
            answer = self.client.get("/api/v1/namespaces/%s/pods?labelSelector=%s" % (
                rs["metadata"]["namespace"], workloads.selector_query(rs)))
            if answer.status != 200 or not isinstance(answer.json, dict):
                return []
            pods = answer.json.get("items") or []
        selector = ((rs.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return [p for p in pods if workloads.owned_by(p, rs) and _active(p)
                and workloads.matches(selector, (p.get("metadata") or {}).get("labels"))]

    def sync(self):
        path = _path("replicasets", self.namespace) if self.namespace else REPLICASETS
        rss = self.client.get(path)
        nodes = self.client.get(NODES)
        if rss.status != 200 or nodes.status != 200 or not isinstance(rss.json, dict) \
                or not isinstance(nodes.json, dict):
            return []
        done = []
        items = rss.json.get("items") or []
        live = []
        for rs in items:
            owner = workloads.owner(rs)
            if owner and owner[0] == "Deployment":
                found = self.client.get(_path("deployments", rs["metadata"]["namespace"], owner[1]))
                if found.status == 404 or (found.status == 200 and found.json["metadata"].get("uid") != owner[2]):
                    self.client.request("DELETE", _path("replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"]),
                                        {"preconditions": {"uid": rs["metadata"]["uid"]}})
                    done.append("%s/%s: deleted (its Deployment is gone)" % (rs["metadata"]["namespace"],
                                                                           rs["metadata"]["name"]))
                    continue
            live.append(rs)
        by_namespace = {}
        for rs in live:
            by_namespace.setdefault(rs["metadata"]["namespace"], []).append(rs)
        pods_path = "/api/v1/namespaces/%s/pods" % self.namespace if self.namespace else "/api/v1/pods"
        answer = self.client.get(pods_path)
        if answer.status == 200 and isinstance(answer.json, dict):
            uids = {rs["metadata"]["uid"] for rs in live}
            for pod in answer.json.get("items") or []:
                owner = workloads.owner(pod)
                if owner and owner[0] == "ReplicaSet" and owner[2] not in uids:
                    gone = self.client.delete("/api/v1/namespaces/%s/pods/%s" % (pod["metadata"]["namespace"],
                                                                                pod["metadata"]["name"]))
                    if gone.status == 200:
                        done.append("%s/%s: deleted pod (its ReplicaSet is gone)" % (
                            pod["metadata"]["namespace"], pod["metadata"]["name"]))
        for ns, rss_here in by_namespace.items():
            answer = self.client.get("/api/v1/namespaces/%s/pods" % ns)
            if answer.status != 200 or not isinstance(answer.json, dict):
                continue
            pods = answer.json.get("items") or []
            for rs in rss_here:
                done += self.sync_one(rs, pods, nodes.json.get("items") or [])
        if done and self.reporter:
            self.reporter.event("replicaset-controller", self.client.server, "; ".join(done), force=True)
        return done

    def sync_one(self, rs, pods, nodes):
        meta = rs["metadata"]
        ns, name = meta["namespace"], meta["name"]
        mine = self.pods_of(rs, pods)
        status = self.status(rs, mine)
        done = []
        for pod in mine:       # pending pods the scheduler could not place yet
            if not (pod.get("spec") or {}).get("nodeName"):
                node = schedule(pod, nodes, pods)
                if node:
                    pod["spec"]["nodeName"] = node
                    if self.client.put("/api/v1/namespaces/%s/pods/%s" % (ns, pod["metadata"]["name"]), pod).status == 200:
                        done.append("%s/%s: bound pod %s to %s" % (ns, name, pod["metadata"]["name"], node))
        diff = len(mine) - (rs.get("spec") or {}).get("replicas", 0)
        if diff < 0:
            for _ in range(-diff):
                pod = self.new_pod(rs)
                node = schedule(pod, nodes, pods)
                if node:
                    pod["spec"]["nodeName"] = node
                answer = self.client.post("/api/v1/namespaces/%s/pods" % ns, pod)
                if answer.status == 201 and isinstance(answer.json, dict):
                    pods.append(answer.json)
                    done.append("%s/%s: created pod %s on %s" % (ns, name, answer.json["metadata"]["name"],
                                                                 node or "<pending: no node fits>"))
        elif diff > 0:
            for pod in sorted(mine, key=_deletion_rank)[:diff]:
                answer = self.client.request("DELETE", "/api/v1/namespaces/%s/pods/%s" % (ns, pod["metadata"]["name"]),
                                             {"preconditions": {"uid": pod["metadata"]["uid"]}})
                if answer.status == 200:
                    done.append("%s/%s: deleted pod %s on %s" % (ns, name, pod["metadata"]["name"],
                                                                 pod["spec"].get("nodeName") or "<none>"))
        if status != rs.get("status"):
            answer = self.client.put(_path("replicasets", ns, name) + "/status", dict(rs, status=status))
            if answer.status == 200:
                done.append("%s/%s: status %s" % (ns, name, ", ".join(
                    "%s=%s" % kv for kv in sorted(status.items()))))
        return done

    @staticmethod
    def new_pod(rs):
        template = json.loads(json.dumps((rs.get("spec") or {}).get("template") or {}))
        meta = template.get("metadata") or {}
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": rs["metadata"]["name"] + "-", "namespace": rs["metadata"]["namespace"],
                             "labels": dict(meta.get("labels") or {}),
                             "annotations": dict(meta.get("annotations") or {}),
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                  "name": rs["metadata"]["name"], "uid": rs["metadata"]["uid"],
                                                  "controller": True, "blockOwnerDeletion": True}]},
                "spec": template.get("spec") or {}}

    @staticmethod
    def status(rs, pods):
        spec = rs.get("spec") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = spec.get("minReadySeconds") or 0
        status = {"replicas": len(pods),
                  "fullyLabeledReplicas": sum(1 for p in pods if workloads.matches(labels, p["metadata"].get("labels"))),
                  "readyReplicas": sum(1 for p in pods if workloads.pod_ready(p)),
                  "availableReplicas": sum(1 for p in pods if workloads.pod_available(p, min_ready)),
                  "observedGeneration": rs["metadata"].get("generation", 0)}
        for key in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"):
            if not status[key]:   # omitempty in apps/v1 ReplicaSetStatus
                del status[key]
        return status
