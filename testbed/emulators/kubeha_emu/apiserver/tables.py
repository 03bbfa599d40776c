"""meta.k8s.io/v1 Table output (what kubectl asks for with `Accept: ...;as=Table`), with the
real apiserver's columns for pods, nodes, configmaps, secrets, namespaces, leases, events,
daemonsets, deployments, replicasets and statefulsets (pkg/printers/internalversion/printers.go)."""

import calendar
import time


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return "%dm" % minutes if rest == 0 else "%dm%ds" % (minutes, rest)
    if minutes < 180:
        return "%dm" % minutes
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return "%dh" % hours if rest == 0 else "%dh%dm" % (hours, rest)
    if hours < 48:
        return "%dh" % hours
    if hours < 24 * 8:
        rest = hours % 24
        return "%dd" % (hours // 24) if rest == 0 else "%dd%dh" % (hours // 24, rest)
    if hours < 24 * 365 * 2:
        return "%dd" % (hours // 24)
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return "%dy" % (hours // 24 // 365) if days == 0 else "%dy%dd" % (hours // 24 // 365, days)
    return "%dy" % (hours // 24 // 365)


def age(obj):
    ts = (obj.get("metadata") or {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    try:
        created = calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "<unknown>"
    return human_duration(time.time() - created)


def col(name, typ="string", fmt="", desc="", priority=0):
    return {"name": name, "type": typ, "format": fmt, "description": desc, "priority": priority}


NAME = col("Name", fmt="name", desc="Name must be unique within a namespace.")
AGE = col("Age", desc="CreationTimestamp is a timestamp representing the server time when this object was created.")


def _pod_cells(o):
    spec = o.get("spec") or {}
    status = o.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for c in statuses:
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            reason = state["terminated"].get("reason") or "Terminated"
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")] or (
        [status["podIP"]] if status.get("podIP") else [])
    return ["%d/%d" % (ready, total), reason, restarts, age(o), ips[0] if ips else "<none>",
            spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>", "<none>"]


def _node_cells(o):
    status = o.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    ready = conds.get("Ready")
    state = "Ready" if ready == "True" else "NotReady" if ready in ("False",) else "Unknown"
    if (o.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = (o.get("metadata") or {}).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    if labels.get("kubernetes.io/role"):
        roles.append(labels["kubernetes.io/role"])
    info = status.get("nodeInfo") or {}
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return [state, ",".join(roles) or "<none>", age(o), info.get("kubeletVersion", ""),
            addrs.get("InternalIP", "<none>"), addrs.get("ExternalIP", "<none>"),
            info.get("osImage", "<unknown>"), info.get("kernelVersion", "<unknown>"),
            info.get("containerRuntimeVersion", "<unknown>")]


def _images(o):
    containers = ((((o.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    return [",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)]


def _selector(o):
    labels = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join("%s=%s" % kv for kv in sorted(labels.items())) or "<none>"


def _daemonset_cells(o):
    st = o.get("status") or {}
    node_selector = ((((o.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeSelector")) or {}
    return [st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0), st.get("numberReady", 0),
            st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            ",".join("%s=%s" % kv for kv in sorted(node_selector.items())) or "<none>", age(o)] + _images(o) + [
        _selector(o)]


def _deployment_cells(o):
    st = o.get("status") or {}
    return ["%d/%d" % (st.get("readyReplicas", 0), (o.get("spec") or {}).get("replicas", 0)),
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0), age(o)] + _images(o) + [_selector(o)]


def _replicaset_cells(o):
    st = o.get("status") or {}
    return [(o.get("spec") or {}).get("replicas", 0), st.get("replicas", 0), st.get("readyReplicas", 0),
            age(o)] + _images(o) + [_selector(o)]


def _statefulset_cells(o):
    st = o.get("status") or {}
    return ["%d/%d" % (st.get("readyReplicas", 0), (o.get("spec") or {}).get("replicas", 0)), age(o)] + _images(o)


COLUMNS = {
    "pods": ([NAME, col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
              col("Status", desc="The aggregate status of the containers in this pod."),
              col("Restarts", "integer", desc="The number of times the containers in this pod have been restarted."),
              AGE, col("IP", priority=1), col("Node", priority=1), col("Nominated Node", priority=1),
              col("Readiness Gates", priority=1)], _pod_cells),
    "nodes": ([NAME, col("Status"), col("Roles"), AGE, col("Version"), col("Internal-IP", priority=1),
               col("External-IP", priority=1), col("OS-Image", priority=1), col("Kernel-Version", priority=1),
               col("Container-Runtime", priority=1)], _node_cells),
    "configmaps": ([NAME, col("Data", "string"), AGE],
                   lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {}), age(o)]),
    "secrets": ([NAME, col("Type"), col("Data", "string"), AGE],
                lambda o: [o.get("type", "Opaque"), len(o.get("data") or {}), age(o)]),
    "namespaces": ([NAME, col("Status"), AGE],
                   lambda o: [(o.get("status") or {}).get("phase", ""), age(o)]),
    "leases": ([NAME, col("Holder"), AGE],
               lambda o: [(o.get("spec") or {}).get("holderIdentity", ""), age(o)]),
    "daemonsets": ([NAME, col("Desired", "integer"), col("Current", "integer"), col("Ready", "integer"),
                    col("Up-to-date", "integer"), col("Available", "integer"), col("Node Selector"), AGE,
                    col("Containers", priority=1), col("Images", priority=1), col("Selector", priority=1)],
                   _daemonset_cells),
    "deployments": ([NAME, col("Ready"), col("Up-to-date", "integer"), col("Available", "integer"), AGE,
                     col("Containers", priority=1), col("Images", priority=1), col("Selector", priority=1)],
                    _deployment_cells),
    "replicasets": ([NAME, col("Desired", "integer"), col("Current", "integer"), col("Ready", "integer"), AGE,
                     col("Containers", priority=1), col("Images", priority=1), col("Selector", priority=1)],
                    _replicaset_cells),
    "statefulsets": ([NAME, col("Ready"), AGE, col("Containers", priority=1), col("Images", priority=1)],
                     _statefulset_cells),
    "events": ([col("Last Seen"), col("Type"), col("Reason"), col("Object"), col("Message")],
               None),
}


def _event_row(o):
    inv = o.get("involvedObject") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or (o.get("metadata") or {}).get("creationTimestamp")
    seen = age({"metadata": {"creationTimestamp": (last or "")[:19] + "Z"}}) if last else "<unknown>"
    return [seen, o.get("type", ""), o.get("reason", ""),
            "%s/%s" % ((inv.get("kind") or "").lower(), inv.get("name", "")), o.get("message", "")]


def _partial(obj, include):
    if include == "Object":
        return obj
    if include == "None":
        return None
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(res, objs, list_rv=None, include="Metadata"):
    cols, cells = COLUMNS.get(res.plural, ([NAME, AGE], lambda o: [age(o)]))
    rows = []
    for obj in objs:
        if res.plural == "events":
            row = _event_row(obj)
        else:
            row = [obj.get("metadata", {}).get("name", "")] + cells(obj)
        entry = {"cells": row}
        partial = _partial(obj, include)
        if partial is not None:
            entry["object"] = partial
        rows.append(entry)
    body = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": cols,
            "rows": rows}
    if list_rv is not None:
        body["metadata"]["resourceVersion"] = str(list_rv)
    return body
