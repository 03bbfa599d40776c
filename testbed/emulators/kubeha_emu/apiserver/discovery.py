"""Discovery documents: /api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>, /version."""

import os

from .resources import ALL

VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.4",
    "gitCommit": "a51b3b711150f57ffc1f526a640ec058514ed596",
    "gitTreeState": "clean",
    "buildDate": "2024-08-14T19:10:27Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def image_version(image):
    """The version a kube-apiserver image's tag names (registry.k8s.io/kube-apiserver:v1.32.5 ->
    v1.32.5), or None for another image or a tag that is not a version."""
    if not image or "@" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or name.rsplit("/", 1)[-1] != "kube-apiserver":
        return None
    parts = tag.lstrip("v").split("-", 1)[0].split("+", 1)[0].split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        return None
    return tag if tag.startswith("v") else "v" + tag


def version():
    body = dict(VERSION)
    # $KUBEHA_APISERVER_VERSION (e.g. v1.29.7), else the tag of the static pod's image the emulated
    # kubelet hands the process (pods.IMAGE_ENV), as the real binary in that image reports its own
    override = os.environ.get("KUBEHA_APISERVER_VERSION") or image_version(os.environ.get("KUBEHA_EMU_IMAGE"))
    if override:
        parts = override.lstrip("v").split(".")
        body.update(gitVersion=override, major=parts[0], minor=parts[1] if len(parts) > 1 else "0")
    return body


def groups():
    """{group: [versions]} of the served resources, core group excluded."""
    out = {}
    for res in ALL:
        if res.group:
            out.setdefault(res.group, [])
            if res.version not in out[res.group]:
                out[res.group].append(res.version)
    return out


def api_versions(server_address):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name, versions):
    vs = [{"groupVersion": "%s/%s" % (name, v), "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_group_list():
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(name, versions) for name, versions in sorted(groups().items())]}


def api_group(name):
    versions = groups().get(name)
    if not versions:
        return None
    body = _group(name, versions)
    body.update(kind="APIGroup", apiVersion="v1")
    return body


def resource_list(group, version):
    resources = []
    for res in ALL:
        if res.group != group or res.version != version:
            continue
        entry = {"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced,
                 "kind": res.kind, "verbs": res.verbs}
        if res.short:
            entry["shortNames"] = res.short
        if res.categories:
            entry["categories"] = res.categories
        resources.append(entry)
        if res.status:
            resources.append({"name": res.plural + "/status", "singularName": "", "namespaced": res.namespaced,
                              "kind": res.kind, "verbs": ["get", "patch", "update"]})
    if not resources:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "%s/%s" % (group, version) if group else version, "resources": resources}
