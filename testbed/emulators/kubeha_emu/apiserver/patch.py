"""PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch (maps merge, lists with a merge
key merge element-wise, directives `$patch: replace|delete`, `$retainKeys`,
`$deleteFromPrimitiveList/<k>`, `$setElementOrder/<k>`), and JSON patch (RFC 6902)."""

import copy
import json

from .errors import ApiError, bad_request

# Lists that a strategic merge patch merges by key (as the Kubernetes Go types declare them);
# every other list is replaced. None = a list of primitives merged as a set.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "volumes": "name", "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "ports": "containerPort", "conditions": "type", "addresses": "type", "taints": "key",
    "ownerReferences": "uid", "imagePullSecrets": "name", "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey", "resourceClaims": "name", "finalizers": None,
}


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _smp_list(key, original, patch):
    merge_key = MERGE_KEYS.get(key, "")
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    if merge_key == "" or not isinstance(original, list):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    result = copy.deepcopy(original)
    if merge_key is None:  # primitive set
        for item in patch:
            if item not in result:
                result.append(item)
        return result
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request("strategic merge patch: list %s needs maps with key %s" % (key, merge_key))
        if merge_key not in item:
            raise bad_request("map: %s does not contain declared merge key: %s" % (item, merge_key))
        index = next((i for i, o in enumerate(result)
                      if isinstance(o, dict) and o.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
            continue
        if index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def strategic_merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value)
        else:
            result[key] = value
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request("json patch: invalid path %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def json_patch(target, ops):
    doc = copy.deepcopy(target)
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    for op in ops:
        try:
            kind = op["op"]
            parts = _pointer(op["path"])
            if kind in ("move", "copy"):
                value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
                if kind == "move":
                    doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
                kind = "add"
            else:
                value = op.get("value")
            if kind == "test":
                if _walk(doc, parts) != value:
                    raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request")
                continue
            if not parts:
                doc = copy.deepcopy(value)
                continue
            parent = _walk(doc, parts[:-1])
            last = parts[-1]
            if isinstance(parent, list):
                if kind == "add":
                    parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(value))
                elif kind == "remove":
                    parent.pop(int(last))
                elif kind == "replace":
                    parent[int(last)] = copy.deepcopy(value)
                else:
                    raise bad_request("json patch: unknown op %r" % kind)
            else:
                if kind == "add":
                    parent[last] = copy.deepcopy(value)
                elif kind == "remove":
                    del parent[last]
                elif kind == "replace":
                    if last not in parent:
                        raise KeyError(last)
                    parent[last] = copy.deepcopy(value)
                else:
                    raise bad_request("json patch: unknown op %r" % kind)
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request: %s" % err)
    return doc


def apply(content_type, target, body):
    ctype = (content_type or "").split(";")[0].strip().lower()
    try:
        patch = json.loads(body or b"null")
    except ValueError as err:
        raise bad_request("the patch body is not JSON: %s" % err)
    if ctype == "application/merge-patch+json":
        return merge_patch(target, patch)
    if ctype == "application/strategic-merge-patch+json":
        if not isinstance(patch, dict):
            raise bad_request("strategic merge patch must be a JSON object")
        return strategic_merge_patch(target, patch)
    if ctype == "application/json-patch+json":
        return json_patch(target, patch)
    raise ApiError(415, "UnsupportedMediaType",
                   'the body of the request was in an unknown format - accepted media types include: '
                   'application/json-patch+json, application/merge-patch+json, '
                   'application/strategic-merge-patch+json (server-side apply is not emulated)')
