"""labelSelector and fieldSelector of list requests.

Label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma = AND.
Field selectors: `metadata.name`, `metadata.namespace`, and per resource `spec.nodeName`,
`status.phase` (pods), `type` (secrets, events); operators `=`, `==`, `!=`."""

import re

from .errors import bad_request

_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")


def _split_top(text):
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_labels(text):
    """Returns a predicate over a labels dict."""
    reqs = []
    for term in _split_top(text or ""):
        m = re.match(r"^([A-Za-z0-9_./-]+)\s*(!=|==|=)\s*([A-Za-z0-9_.-]*)$", term)
        if m:
            key, op, value = m.groups()
            reqs.append((key, "!=" if op == "!=" else "=", {value}))
            continue
        m = _SET_RE.match(term)
        if not m:
            raise bad_request("unable to parse requirement: %s" % term)
        neg, key, op, values = m.groups()
        if op:
            if neg:
                raise bad_request("unable to parse requirement: %s" % term)
            reqs.append((key, op, {v.strip() for v in values.split(",") if v.strip()}))
        else:
            reqs.append((key, "!exists" if neg else "exists", None))

    def match(labels):
        labels = labels or {}
        for key, op, values in reqs:
            present = key in labels
            if op == "=" and not (present and labels[key] in values):
                return False
            if op == "!=" and present and labels[key] in values:
                return False
            if op == "in" and not (present and labels[key] in values):
                return False
            if op == "notin" and present and labels[key] in values:
                return False
            if op == "exists" and not present:
                return False
            if op == "!exists" and present:
                return False
        return True

    return match


FIELDS = {
    "metadata.name": lambda o: o.get("metadata", {}).get("name", ""),
    "metadata.namespace": lambda o: o.get("metadata", {}).get("namespace", ""),
}
EXTRA_FIELDS = {
    "pods": {
        "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
        "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
        "spec.restartPolicy": lambda o: (o.get("spec") or {}).get("restartPolicy", ""),
        "spec.schedulerName": lambda o: (o.get("spec") or {}).get("schedulerName", ""),
    },
    "nodes": {"spec.unschedulable": lambda o: str(bool((o.get("spec") or {}).get("unschedulable"))).lower()},
    "secrets": {"type": lambda o: o.get("type", "")},
    "events": {
        "type": lambda o: o.get("type", ""),
        "reason": lambda o: o.get("reason", ""),
        "involvedObject.name": lambda o: (o.get("involvedObject") or {}).get("name", ""),
        "involvedObject.kind": lambda o: (o.get("involvedObject") or {}).get("kind", ""),
    },
    "namespaces": {"status.phase": lambda o: (o.get("status") or {}).get("phase", "")},
}


def parse_fields(text, resource):
    reqs = []
    known = dict(FIELDS)
    known.update(EXTRA_FIELDS.get(resource, {}))
    for term in _split_top(text or ""):
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(!=|==|=)\s*(.*)$", term)
        if not m:
            raise bad_request("invalid field selector: %s" % term)
        field, op, value = m.groups()
        if field not in known:
            raise bad_request('"%s" is not a known field selector: only "%s"'
                              % (field, '", "'.join(sorted(known))))
        reqs.append((known[field], op == "!=", value))

    def match(obj):
        for getter, negate, value in reqs:
            if (getter(obj) == value) == negate:
                return False
        return True

    return match
