"""The resource types the emulator serves and their storage in etcd.

Keys: `/registry/<resource>/<namespace>/<name>` (cluster-scoped: `/registry/<resource>/<name>`);
values: the object as JSON without `metadata.resourceVersion`; `metadata.resourceVersion` is the
key's mod_revision, a list's resourceVersion is the etcd header revision. Create = txn on
create_revision == 0 (else 409 AlreadyExists), update with resourceVersion = txn on mod_revision
(stale -> 409 Conflict), update without resourceVersion = unconditional."""

import copy
import json
import re
import time
import uuid

from . import errors
from .etcd import EtcdUnavailable, EtcdError


class Resource:
    def __init__(self, group, version, plural, singular, kind, namespaced, short=(), status=False,
                 create_on_update=False, verbs=None, categories=()):
        self.group = group
        self.version = version
        self.plural = plural
        self.singular = singular
        self.kind = kind
        self.namespaced = namespaced
        self.short = list(short)
        self.status = status
        self.create_on_update = create_on_update
        self.categories = list(categories)
        self.verbs = verbs or ["create", "delete", "deletecollection", "get", "list", "patch", "update"]

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version


CORE = [
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, ["ns"], status=True,
             verbs=["create", "delete", "get", "list", "patch", "update"]),
    Resource("", "v1", "configmaps", "configmap", "ConfigMap", True, ["cm"]),
    Resource("", "v1", "secrets", "secret", "Secret", True),
    Resource("", "v1", "pods", "pod", "Pod", True, ["po"], status=True, categories=["all"]),
    Resource("", "v1", "nodes", "node", "Node", False, ["no"], status=True),
    Resource("", "v1", "events", "event", "Event", True, ["ev"], create_on_update=True),
]
COORDINATION = [
    Resource("coordination.k8s.io", "v1", "leases", "lease", "Lease", True, create_on_update=True),
]
APPS = [
    Resource("apps", "v1", "daemonsets", "daemonset", "DaemonSet", True, ["ds"], status=True),
    Resource("apps", "v1", "deployments", "deployment", "Deployment", True, ["deploy"], status=True,
             categories=["all"]),
    Resource("apps", "v1", "replicasets", "replicaset", "ReplicaSet", True, ["rs"], status=True,
             categories=["all"]),
    Resource("apps", "v1", "statefulsets", "statefulset", "StatefulSet", True, ["sts"], status=True,
             categories=["all"]),
]
ALL = CORE + COORDINATION + APPS
BY_GROUP = {}
for _r in ALL:
    BY_GROUP[(_r.group, _r.version, _r.plural)] = _r

SYSTEM_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"]

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def key_for(res, namespace, name):
    if res.namespaced:
        return "/registry/%s/%s/%s" % (res.plural, namespace, name)
    return "/registry/%s/%s" % (res.plural, name)


def prefix_for(res, namespace=None):
    if res.namespaced and namespace:
        return "/registry/%s/%s/" % (res.plural, namespace)
    return "/registry/%s/" % res.plural


def _decode(kv):
    obj = json.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


NODE_INFO_FIELDS = ("architecture", "bootID", "containerRuntimeVersion", "kernelVersion", "kubeProxyVersion",
                    "kubeletVersion", "machineID", "operatingSystem", "osImage", "systemUUID")


def _defaults(obj):
    """Fields the real apiserver always serializes (Go fields without omitempty), so that strict
    clients (the Python `kubernetes` client validates them) can read what others wrote."""
    status = obj.get("status")
    if not isinstance(status, dict):
        return
    if obj.get("kind") == "Node" and isinstance(status.get("nodeInfo"), dict):
        for field in NODE_INFO_FIELDS:
            status["nodeInfo"].setdefault(field, "")
    if obj.get("kind") == "Pod":
        for key in ("containerStatuses", "initContainerStatuses"):
            for item in status.get(key) or []:
                if isinstance(item, dict):
                    item.setdefault("name", "")
                    item.setdefault("image", "")
                    item.setdefault("imageID", "")
                    item.setdefault("ready", False)
                    item.setdefault("restartCount", 0)


# apps/v1 defaulting (k8s.io/kubernetes pkg/apis/apps/v1/defaults.go, SetDefaults_DaemonSet,
# SetDefaults_Deployment, SetDefaults_ReplicaSet, SetDefaults_StatefulSet), applied to every write before generations are compared, as the real
# decoder does. Pod-template defaults (restartPolicy, dnsPolicy, ...) are not emulated.
def _apps_defaults(obj):
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("revisionHistoryLimit", 10)
    if obj.get("kind") == "DaemonSet":
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
    elif obj.get("kind") == "Deployment":
        spec.setdefault("replicas", 1)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
    elif obj.get("kind") == "ReplicaSet":
        spec.pop("revisionHistoryLimit", None)    # not a ReplicaSet field
        spec.setdefault("replicas", 1)
    elif obj.get("kind") == "StatefulSet":
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        # StatefulSetAutoDeletePVC, beta and on by default since 1.27
        policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        policy.setdefault("whenDeleted", "Retain")
        policy.setdefault("whenScaled", "Retain")


# apps/v1 keeps the internal spec.templateGeneration in this annotation (pkg/apis/apps/v1/conversion.go)
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"
DAEMONSET_STATUS_COUNTS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")
# the status fields without omitempty in the Go types, which a reset status therefore shows
RESET_STATUS = {"daemonsets": {k: 0 for k in DAEMONSET_STATUS_COUNTS}, "deployments": {},
                "replicasets": {"replicas": 0}, "statefulsets": {"replicas": 0, "availableReplicas": 0}}


def _validate_apps(res, obj, old=None):
    """The checks of the apps/v1 validation the controllers rely on: a selector that selects the
    template's labels, and (on update) the same selector (immutable in apps/v1); a StatefulSet's
    spec may change only in the fields ValidateStatefulSetUpdate allows."""
    spec = obj.get("spec") or {}
    name = obj.get("metadata", {}).get("name", "")
    selector = (spec.get("selector") or {}).get("matchLabels")
    if not isinstance(selector, dict) or not selector:
        raise errors.invalid(res.kind, name, "spec.selector: Required value", res.group)
    labels = (((spec.get("template") or {}).get("metadata") or {}).get("labels")) or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        raise errors.invalid(res.kind, name, "spec.template.metadata.labels: Invalid value: %s: `selector` "
                             "does not match template `labels`" % json.dumps(labels, sort_keys=True), res.group)
    if old is None:
        return
    if res.plural == "statefulsets":
        # ValidateStatefulSetUpdate: only these spec fields may change
        mutable = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                   "minReadySeconds")
        before = {k: v for k, v in (old.get("spec") or {}).items() if k not in mutable}
        after = {k: v for k, v in spec.items() if k not in mutable}
        if before != after:
            raise errors.invalid(res.kind, name, "spec: Forbidden: updates to statefulset spec for fields other "
                                 "than 'replicas', 'ordinals', 'template', 'updateStrategy', "
                                 "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                                 res.group)
    if (old.get("spec") or {}).get("selector") != spec.get("selector"):
        raise errors.invalid(res.kind, name, "spec.selector: Invalid value: %s: field is immutable"
                             % json.dumps(spec.get("selector"), sort_keys=True), res.group)


def _encode(obj):
    _defaults(obj)
    stored = copy.deepcopy(obj)
    stored.get("metadata", {}).pop("resourceVersion", None)
    return json.dumps(stored, sort_keys=True, separators=(",", ":")).encode()


def _etcd(fn, *args):
    try:
        return fn(*args)
    except EtcdUnavailable as err:
        raise errors.ApiError(500, "InternalError", "Internal error occurred: etcd unavailable: %s" % err)
    except EtcdError as err:
        raise errors.internal(str(err))


class Store:
    def __init__(self, etcd):
        self.etcd = etcd

    # --- helpers ---------------------------------------------------------------------------
    def _check_meta(self, res, obj, namespace, name=None):
        if not isinstance(obj, dict):
            raise errors.bad_request("the body must be a JSON object")
        kind = obj.get("kind")
        if kind and kind != res.kind:
            raise errors.bad_request("the API version in the data (%s) does not match the expected "
                                     "API version (%s) or kind %s != %s"
                                     % (obj.get("apiVersion"), res.api_version, kind, res.kind))
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if name is not None:
            if meta.get("name") and meta["name"] != name:
                raise errors.bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                         % (meta["name"], name))
            meta["name"] = name
        if res.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the "
                                         "namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj["kind"] = res.kind
        obj["apiVersion"] = res.api_version

    def _namespace_exists(self, namespace):
        kv, _ = _etcd(self.etcd.get, key_for(BY_GROUP[("", "v1", "namespaces")], None, namespace))
        return kv is not None

    # --- verbs -----------------------------------------------------------------------------
    def get(self, res, namespace, name):
        kv, _ = _etcd(self.etcd.get, key_for(res, namespace, name))
        if kv is None:
            raise errors.not_found(res.plural, name, res.group)
        return _decode(kv)

    def list(self, res, namespace=None, label_match=None, field_match=None, revision=None):
        kvs, rev = _etcd(self.etcd.list, prefix_for(res, namespace), revision)
        items = []
        for kv in kvs:
            if not res.namespaced and kv.key.count("/") != 3:
                continue
            obj = _decode(kv)
            if label_match and not label_match(obj.get("metadata", {}).get("labels")):
                continue
            if field_match and not field_match(obj):
                continue
            items.append(obj)
        return items, rev

    def create(self, res, namespace, obj):
        self._check_meta(res, obj, namespace)
        meta = obj["metadata"]
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise errors.invalid(res.kind, "", "metadata.name: Required value: name or generateName is required")
        name = meta["name"]
        if (res.plural != "events" and not _NAME_RE.match(name)) or len(name) > 253:
            raise errors.invalid(res.kind, name, "metadata.name: Invalid value: %r: a lowercase RFC 1123 "
                                 "subdomain must consist of lower case alphanumeric characters, '-' or '.'" % name)
        if res.namespaced and not self._namespace_exists(namespace):
            raise errors.not_found("namespaces", namespace)
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(field, None)
        if res.plural == "pods" and not obj.get("status"):
            # the real pod strategy always resets status on create (kubelets set it through
            # /status); the emulator keeps a status sent on create so mirror pods show it at once
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        if res.plural == "namespaces":
            obj["status"] = {"phase": "Active"}
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        if res.group == "apps":
            _apps_defaults(obj)
            _validate_apps(res, obj)
            if res.plural == "daemonsets":   # spec.templateGeneration 1, in apps/v1 this annotation
                meta.setdefault("annotations", {})[TEMPLATE_GENERATION] = "1"
            # the real strategies reset status on create (fields without omitempty stay, at 0)
            obj["status"] = dict(RESET_STATUS[res.plural])
        if res.plural in ("pods", "daemonsets", "deployments", "replicasets", "statefulsets"):
            meta["generation"] = 1
        rev = _etcd(self.etcd.create, key_for(res, namespace, name), _encode(obj))
        if rev is None:
            raise errors.already_exists(res.plural, name, res.group)
        meta["resourceVersion"] = str(rev)
        return obj

    def update(self, res, namespace, name, obj, subresource=None, _allow_create=True):
        """PUT. With metadata.resourceVersion: compare-and-swap on it; without: unconditional."""
        self._check_meta(res, obj, namespace, name)
        wanted = obj["metadata"].get("resourceVersion") or None
        key = key_for(res, namespace, name)
        kv, _ = _etcd(self.etcd.get, key)
        if kv is None:
            if res.create_on_update and _allow_create and not subresource:
                return self.create(res, namespace, obj), True
            raise errors.not_found(res.plural, name, res.group)
        for _ in range(10):
            old = _decode(kv)
            if wanted is not None and wanted != old["metadata"]["resourceVersion"]:
                raise errors.conflict(res.plural, name, res.group)
            new = self._merge_update(res, old, obj, subresource)
            rev, current = _etcd(self.etcd.update, key, _encode(new), kv.mod_revision)
            if rev is not None:
                new["metadata"]["resourceVersion"] = str(rev)
                return new, False
            if current is None:
                raise errors.not_found(res.plural, name, res.group)
            if wanted is not None:
                raise errors.conflict(res.plural, name, res.group)
            kv = current  # unconditional update raced with another writer: retry on the new state
        raise errors.conflict(res.plural, name, res.group)

    def _merge_update(self, res, old, obj, subresource):
        """Server-owned fields come from the stored object; with a status subresource the main
        resource cannot change status and /status can change only status."""
        if subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(obj.get("status"))
            if new["status"] is None:
                new.pop("status")
            # metadata labels/annotations may change through /status for nodes and pods
            for field in ("labels", "annotations"):
                if field in obj.get("metadata", {}):
                    new["metadata"][field] = copy.deepcopy(obj["metadata"][field])
            return new
        new = copy.deepcopy(obj)
        if res.group == "apps":
            _apps_defaults(new)
            _validate_apps(res, new, old)
        meta = new["metadata"]
        if res.plural == "daemonsets":
            # the strategy owns the template generation: +1 when the template changes
            generation = int((old["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION) or 1)
            if (new.get("spec") or {}).get("template") != (old.get("spec") or {}).get("template"):
                generation += 1
            meta.setdefault("annotations", {})[TEMPLATE_GENERATION] = str(generation)
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        if res.status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if "generation" in old["metadata"]:
            gen = old["metadata"]["generation"]
            # any spec change bumps it (the apps and pod strategies' PrepareForUpdate); a
            # Deployment's annotations too, as they are copied to its ReplicaSets
            if new.get("spec") != old.get("spec") or (
                    res.plural == "deployments" and meta.get("annotations") != old["metadata"].get("annotations")):
                gen += 1
            meta["generation"] = gen
        return new

    def patch(self, res, namespace, name, apply_patch, subresource=None):
        """`apply_patch(old) -> new`. Retries on concurrent writes unless the patch pinned a
        resourceVersion (then a stale one is a 409)."""
        key = key_for(res, namespace, name)
        for _ in range(10):
            kv, _ = _etcd(self.etcd.get, key)
            if kv is None:
                raise errors.not_found(res.plural, name, res.group)
            old = _decode(kv)
            new = apply_patch(copy.deepcopy(old))
            if not isinstance(new, dict):
                raise errors.bad_request("the patch result is not an object")
            self._check_meta(res, new, namespace, name)
            pinned = new["metadata"].get("resourceVersion")
            if pinned and pinned != old["metadata"]["resourceVersion"]:
                raise errors.conflict(res.plural, name, res.group)
            if subresource == "status":
                merged = self._merge_update(res, old, new, "status")
            else:
                merged = self._merge_update(res, old, new, None)
            rev, current = _etcd(self.etcd.update, key, _encode(merged), kv.mod_revision)
            if rev is not None:
                merged["metadata"]["resourceVersion"] = str(rev)
                return merged
            if current is None:
                raise errors.not_found(res.plural, name, res.group)
        raise errors.conflict(res.plural, name, res.group)

    def delete(self, res, namespace, name, precondition_rv=None, precondition_uid=None):
        key = key_for(res, namespace, name)
        kv, _ = _etcd(self.etcd.get, key)
        if kv is None:
            raise errors.not_found(res.plural, name, res.group)
        old = _decode(kv)
        if precondition_uid and precondition_uid != old["metadata"].get("uid"):
            raise errors.ApiError(409, "Conflict", "Precondition failed: UID in precondition: %s, UID in "
                                  "object meta: %s" % (precondition_uid, old["metadata"].get("uid")))
        if precondition_rv and precondition_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, name, res.group)
        prev, ok = _etcd(self.etcd.delete, key, kv.mod_revision)
        if not ok:
            if precondition_rv:
                raise errors.conflict(res.plural, name, res.group)
            prev, ok = _etcd(self.etcd.delete, key)
            if not ok:
                raise errors.not_found(res.plural, name, res.group)
        if res.plural == "namespaces":
            # the real namespace controller empties a terminating namespace; here it is immediate
            for other in ALL:
                if other.namespaced:
                    _etcd(self.etcd.delete_prefix, prefix_for(other, name))
        return _decode(prev) if prev else old

    def ensure_system_namespaces(self):
        ns = BY_GROUP[("", "v1", "namespaces")]
        created = []
        for name in SYSTEM_NAMESPACES:
            try:
                self.create(ns, None, {"metadata": {"name": name}})
                created.append(name)
            except errors.ApiError as err:
                if err.code != 409:
                    raise
        return created
