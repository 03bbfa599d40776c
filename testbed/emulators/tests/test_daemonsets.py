"""apps/v1 DaemonSets and Deployments on the kube-apiserver emulator (generation, defaults, status
subresource, discovery, kubectl get/patch/rollout status), the emulated DaemonSet controller's
rolling update (maxUnavailable honoured, OnDelete), the kubelet running a DaemonSet's pod from its
template, and the emulated Cilium agent (in-cluster config, /healthz following the API).

Every test works in its own namespace and on its own nodes: the apiserver is shared."""

import base64
import json
import os
import shutil
import subprocess
import threading
import urllib.request

import pytest

from componentkit import EMU_DIR, Tree, alive, free_port, kubelet_config, wait_for
from kubeha_emu import agent, workloads
from kubeha_emu import client as kclient
from kubeha_emu.controllers import DaemonSets, Deployments, ReplicaSets

KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl")
APPS = "/apis/apps/v1"
AGENT_TOKEN = "t0ken-cilium-agent-" + "c" * 16


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path)
    yield t
    t.cleanup()


def fresh_namespace(apiserver, name):
    apiserver.request("DELETE", "/api/v1/namespaces/" + name)
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201


def daemonset(namespace, name="agent", env=None, strategy=None, node_selector=None, command=("sleep", "600"),
              args=(), probe_port=None):
    container = {"name": name, "image": "example/%s:v1" % name, "command": list(command), "args": list(args),
                 "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}
    if probe_port:
        container["readinessProbe"] = {"httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": probe_port,
                                                   "scheme": "HTTP"}, "periodSeconds": 30, "failureThreshold": 3}
    spec = {"selector": {"matchLabels": {"k8s-app": name}},
            "template": {"metadata": {"labels": {"k8s-app": name}},
                         "spec": {"hostNetwork": True, "containers": [container],
                                  "tolerations": [{"operator": "Exists"}]}}}
    if node_selector:
        spec["template"]["spec"]["nodeSelector"] = node_selector
    if strategy:
        spec["updateStrategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


def test_daemonset_and_deployment_resources(apiserver):
    ns = "ds-api"
    fresh_namespace(apiserver, ns)
    # discovery, as kubectl reads it
    groups = apiserver.request("GET", "/apis")[2]
    assert {"groupVersion": "apps/v1", "version": "v1"} in [g["preferredVersion"] for g in groups["groups"]
                                                            if g["name"] == "apps"]
    assert apiserver.request("GET", "/apis/apps")[2]["preferredVersion"]["groupVersion"] == "apps/v1"
    resources = {r["name"]: r for r in apiserver.request("GET", APPS)[2]["resources"]}
    assert resources["daemonsets"]["shortNames"] == ["ds"] and resources["daemonsets"]["namespaced"]
    assert "daemonsets/status" in resources and "deployments/status" in resources
    assert resources["deployments"]["shortNames"] == ["deploy"]

    status, _, ds = apiserver.request("POST", "%s/namespaces/%s/daemonsets" % (APPS, ns), daemonset(ns))
    assert status == 201, ds
    assert ds["metadata"]["generation"] == 1
    # apps/v1 defaults, and the status the strategy resets on create
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    assert ds["status"]["desiredNumberScheduled"] == 0
    assert ds["metadata"]["annotations"] == {"deprecated.daemonset.template.generation": "1"}
    path = "%s/namespaces/%s/daemonsets/agent" % (APPS, ns)

    # a label change is not a spec change; a template change is
    ds["metadata"]["labels"] = {"team": "net"}
    ds = apiserver.request("PUT", path, ds)[2]
    assert ds["metadata"]["generation"] == 1
    ds["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    ds = apiserver.request("PUT", path, ds)[2]
    assert ds["metadata"]["generation"] == 2
    # a merge patch of the spec bumps it, one of the metadata does not
    assert ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
    patched = apiserver.request("PATCH", path, {"spec": {"minReadySeconds": 3},
                                                "metadata": {"annotations": {
                                                    "deprecated.daemonset.template.generation": "9"}}},
                                headers={"Content-Type": "application/merge-patch+json"})[2]
    # not a template change: the template generation stays (and is the server's to set)
    assert patched["metadata"]["generation"] == 3
    assert patched["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
    # /status changes only status; the main resource cannot change status
    patched["status"] = {"desiredNumberScheduled": 4, "observedGeneration": 3}
    patched["spec"]["minReadySeconds"] = 99
    after = apiserver.request("PUT", path + "/status", patched)[2]
    assert after["status"]["desiredNumberScheduled"] == 4
    assert after["spec"]["minReadySeconds"] == 3 and after["metadata"]["generation"] == 3
    after["status"] = {}
    assert apiserver.request("PUT", path, after)[2]["status"]["desiredNumberScheduled"] == 4

    # validation the controller relies on
    bad = daemonset(ns, "bad")
    bad["spec"]["selector"]["matchLabels"] = {"k8s-app": "other"}
    assert apiserver.request("POST", "%s/namespaces/%s/daemonsets" % (APPS, ns), bad)[0] == 422
    moved = apiserver.request("GET", path)[2]
    moved["spec"]["selector"] = {"matchLabels": {}}
    assert apiserver.request("PUT", path, moved)[0] == 422
    moved["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    moved["spec"]["selector"] = {"matchLabels": {"k8s-app": "agent", "x": "y"}}
    status, _, refused = apiserver.request("PUT", path, moved)
    assert status == 422 and "field is immutable" in refused["message"]

    # listed across namespaces and per namespace
    everywhere = apiserver.request("GET", APPS + "/daemonsets")[2]
    assert everywhere["kind"] == "DaemonSetList"
    assert ("ds-api", "agent") in [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in everywhere["items"]]
    listed = apiserver.request("GET", APPS + "/namespaces/%s/daemonsets" % ns)[2]["items"]
    assert [d["metadata"]["name"] for d in listed] == ["agent"]

    # Deployments: generation on spec and on annotations (they are copied to ReplicaSets)
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "op", "namespace": ns},
              "spec": {"selector": {"matchLabels": {"app": "op"}},
                       "template": {"metadata": {"labels": {"app": "op"}},
                                    "spec": {"containers": [{"name": "op", "image": "example/op:v1"}]}}}}
    status, _, deploy = apiserver.request("POST", "%s/namespaces/%s/deployments" % (APPS, ns), deploy)
    assert status == 201 and deploy["metadata"]["generation"] == 1
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": "25%", "maxSurge": "25%"}
    deploy["metadata"]["annotations"] = {"note": "x"}
    deploy = apiserver.request("PUT", "%s/namespaces/%s/deployments/op" % (APPS, ns), deploy)[2]
    assert deploy["metadata"]["generation"] == 2


@pytest.fixture
def kubectl(apiserver, tmp_path):
    if not KUBECTL:
        pytest.skip("kubectl not installed")
    config = apiserver.kubeconfig(str(tmp_path / "kubectl.conf"))

    def run(*args, check=True, timeout=60):
        proc = subprocess.run([KUBECTL, "--kubeconfig", config, *args], capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError("kubectl %s failed (%d): %s%s" % (" ".join(args), proc.returncode, proc.stdout,
                                                                   proc.stderr))
        return proc
    return run


def test_kubectl_get_patch_and_rollout_status(apiserver, kubectl):
    ns = "ds-kubectl"
    fresh_namespace(apiserver, ns)
    body = daemonset(ns, "cilium", env={"KUBERNETES_SERVICE_HOST": "10.0.0.11", "KUBERNETES_SERVICE_PORT": "6443",
                                        "OTHER": "kept"}, strategy={"type": "RollingUpdate",
                                                                    "rollingUpdate": {"maxUnavailable": 2}})
    assert apiserver.request("POST", "%s/namespaces/%s/daemonsets" % (APPS, ns), body)[0] == 201
    rows = [line.split() for line in kubectl("get", "ds", "-A").stdout.splitlines()]
    assert rows[0][:8] == ["NAMESPACE", "NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE"]
    assert [ns, "cilium", "0", "0", "0", "0", "0", "<none>"] in [r[:8] for r in rows]

    # the conversion's patch: strategic merge of one env entry, merged by name into the list
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "cilium", "env": [
        {"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.10"}]}]}}}}
    kubectl("-n", ns, "patch", "ds", "cilium", "-p", json.dumps(patch))
    ds = json.loads(kubectl("-n", ns, "get", "ds", "cilium", "-o", "json").stdout)
    assert ds["metadata"]["generation"] == 2
    container = ds["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.10"},
                                {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
                                {"name": "OTHER", "value": "kept"}]
    assert container["image"] == "example/cilium:v1"

    # rollout status: not observed yet -> waits (times out); observed and rolled -> success
    waiting = kubectl("-n", ns, "rollout", "status", "ds/cilium", "--timeout=3s", check=False)
    assert waiting.returncode != 0 and "Waiting for daemon set spec update to be observed" in waiting.stdout
    path = "%s/namespaces/%s/daemonsets/cilium/status" % (APPS, ns)
    ds["status"] = {"observedGeneration": 2, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                    "updatedNumberScheduled": 1, "numberReady": 2, "numberAvailable": 2, "numberMisscheduled": 0}
    assert apiserver.request("PUT", path, ds)[0] == 200
    waiting = kubectl("-n", ns, "rollout", "status", "ds/cilium", "--timeout=3s", check=False)
    assert waiting.returncode != 0 and "1 out of 2 new pods have been updated" in waiting.stdout
    ds = apiserver.request("GET", path)[2]
    ds["status"]["updatedNumberScheduled"] = 2
    assert apiserver.request("PUT", path, ds)[0] == 200
    done = kubectl("-n", ns, "rollout", "status", "ds/cilium", "--timeout=10s")
    assert 'daemon set "cilium" successfully rolled out' in done.stdout


# --- the DaemonSet controller, driven pass by pass against the shared apiserver ------------------

def make_nodes(apiserver, prefix, count, label):
    names = []
    for i in range(count):
        name = "%s-%d" % (prefix, i)
        apiserver.request("DELETE", "/api/v1/nodes/" + name)
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {label: "yes"}}, "spec": {}}
        assert apiserver.request("POST", "/api/v1/nodes", body)[0] == 201
        names.append(name)
    return names


def kubelet_pod(apiserver, ds, node, ready):
    """What a kubelet does for `ds` on `node`: a pod from the current template, Ready or not."""
    meta = ds["metadata"]
    labels = workloads.pod_labels(ds)
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": meta["name"] + "-", "namespace": meta["namespace"], "labels": labels,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True}]},
            "spec": dict(ds["spec"]["template"]["spec"], nodeName=node),
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                           "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    status, _, pod = apiserver.request("POST", "/api/v1/namespaces/%s/pods" % meta["namespace"], body)
    assert status == 201, pod
    return pod


def set_ready(apiserver, pod):
    pod = apiserver.request("GET", "/api/v1/namespaces/%s/pods/%s" % (pod["metadata"]["namespace"],
                                                                     pod["metadata"]["name"]))[2]
    pod["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    assert apiserver.request("PUT", "/api/v1/namespaces/%s/pods/%s/status" % (
        pod["metadata"]["namespace"], pod["metadata"]["name"]), pod)[0] == 200


def pods_by_revision(apiserver, ns):
    out = {}
    for pod in apiserver.request("GET", "/api/v1/namespaces/%s/pods" % ns)[2]["items"]:
        out.setdefault(pod["metadata"]["labels"][workloads.REVISION_LABEL], []).append(pod)
    return out


def test_controller_status_and_rolling_update_honours_max_unavailable(apiserver, tmp_path):
    ns, label = "ds-roll", "ds-roll-node"
    fresh_namespace(apiserver, ns)
    nodes = make_nodes(apiserver, "dsroll", 5, label)
    body = daemonset(ns, "cilium", env={"KUBERNETES_SERVICE_HOST": "10.0.0.11"}, node_selector={label: "yes"},
                     strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}})
    body["metadata"]["labels"] = {"test": ns}
    ds = apiserver.request("POST", "%s/namespaces/%s/daemonsets" % (APPS, ns), body)[2]
    api = kclient.Client(apiserver.kubeconfig(str(tmp_path / "c.conf")))
    controller = DaemonSets(api, selector="test=" + ns)
    path = "%s/namespaces/%s/daemonsets/cilium" % (APPS, ns)

    controller.sync()
    status = apiserver.request("GET", path)[2]["status"]
    assert status["desiredNumberScheduled"] == 5 and status["currentNumberScheduled"] == 0
    assert status["numberUnavailable"] == 5 and status["observedGeneration"] == 1
    old = [kubelet_pod(apiserver, ds, n, ready=True) for n in nodes]
    controller.sync()
    status = apiserver.request("GET", path)[2]["status"]
    assert (status["currentNumberScheduled"], status["numberReady"], status["updatedNumberScheduled"],
            status["numberAvailable"]) == (5, 5, 5, 5)
    assert "numberUnavailable" not in status

    # the template changes: at most 2 nodes without an available pod at any time
    ds = apiserver.request("GET", path)[2]
    ds["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "10.0.0.10"
    ds = apiserver.request("PUT", path, ds)[2]
    assert ds["metadata"]["generation"] == 2
    old_hash, new_hash = old[0]["metadata"]["labels"][workloads.REVISION_LABEL], workloads.template_hash(ds)
    assert old_hash != new_hash
    deleted = [d for d in controller.sync() if "deleted old pod" in d]
    assert len(deleted) == 2, deleted
    status = apiserver.request("GET", path)[2]["status"]
    assert status["observedGeneration"] == 2 and status.get("updatedNumberScheduled", 0) == 0
    assert status["currentNumberScheduled"] == 3 and status["numberUnavailable"] == 2
    # nothing more while those two nodes have no pod, nor while their new pods are not ready
    assert not [d for d in controller.sync() if "deleted" in d]
    still_old = {p["spec"]["nodeName"] for p in pods_by_revision(apiserver, ns)[old_hash]}
    emptied = [n for n in nodes if n not in still_old]
    new = [kubelet_pod(apiserver, ds, n, ready=False) for n in emptied]
    assert not [d for d in controller.sync() if "deleted" in d]
    set_ready(apiserver, new[0])
    # one new pod available: one more old pod may go
    assert len([d for d in controller.sync() if "deleted" in d]) == 1
    set_ready(apiserver, new[1])
    for _ in range(6):
        revisions = pods_by_revision(apiserver, ns)
        for node in nodes:
            if not any(p["spec"]["nodeName"] == node for pods in revisions.values() for p in pods):
                set_ready(apiserver, kubelet_pod(apiserver, ds, node, ready=False))
        controller.sync()
        unavailable = apiserver.request("GET", path)[2]["status"].get("numberUnavailable", 0)
        assert unavailable <= 2
    revisions = pods_by_revision(apiserver, ns)
    assert list(revisions) == [new_hash] and len(revisions[new_hash]) == 5
    controller.sync()
    status = apiserver.request("GET", path)[2]["status"]
    assert (status["updatedNumberScheduled"], status["numberAvailable"], status["observedGeneration"]) == (5, 5, 2)

    # an unavailable old pod is replaced at once, and uses up the budget (20% of 5 -> 1), as in
    # update.go (allowedReplacementPods, numUnavailable++): no available old pod goes with it
    ds = apiserver.request("GET", path)[2]
    ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = "20%"
    ds["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "10.0.0.12"
    ds = apiserver.request("PUT", path, ds)[2]
    current = pods_by_revision(apiserver, ns)[new_hash]
    broken = current[0]
    broken["status"]["conditions"][0]["status"] = "False"
    apiserver.request("PUT", "/api/v1/namespaces/%s/pods/%s/status" % (ns, broken["metadata"]["name"]), broken)
    deleted = [d for d in controller.sync() if "deleted" in d]
    assert len(deleted) == 1 and broken["metadata"]["name"] in deleted[0], deleted
    apiserver.request("DELETE", "/api/v1/namespaces/" + ns)
    for node in nodes:
        apiserver.request("DELETE", "/api/v1/nodes/" + node)


def test_controller_on_delete_strategy_deletes_nothing(apiserver, tmp_path):
    ns, label = "ds-ondelete", "ds-ondelete-node"
    fresh_namespace(apiserver, ns)
    nodes = make_nodes(apiserver, "dsondel", 3, label)
    body = daemonset(ns, "agent", node_selector={label: "yes"}, strategy={"type": "OnDelete"})
    body["metadata"]["labels"] = {"test": ns}
    ds = apiserver.request("POST", "%s/namespaces/%s/daemonsets" % (APPS, ns), body)[2]
    assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}
    for node in nodes:
        kubelet_pod(apiserver, ds, node, ready=True)
    controller = DaemonSets(kclient.Client(apiserver.kubeconfig(str(tmp_path / "c.conf"))), selector="test=" + ns)
    path = "%s/namespaces/%s/daemonsets/agent" % (APPS, ns)
    ds["spec"]["template"]["spec"]["containers"][0]["args"] = ["700"]
    ds = apiserver.request("PUT", path, ds)[2]
    for _ in range(3):
        assert not [d for d in controller.sync() if "deleted" in d]
    status = apiserver.request("GET", path)[2]["status"]
    assert status["observedGeneration"] == 2 and status["numberAvailable"] == 3
    assert "updatedNumberScheduled" not in status          # 0 up to date (omitempty)
    # a pod deleted by hand is replaced (by the kubelet) from the new template: 1 up to date
    victim = pods_by_revision(apiserver, ns)
    (old_hash, pods), = victim.items()
    apiserver.request("DELETE", "/api/v1/namespaces/%s/pods/%s" % (ns, pods[0]["metadata"]["name"]))
    kubelet_pod(apiserver, ds, pods[0]["spec"]["nodeName"], ready=True)
    controller.sync()
    assert apiserver.request("GET", path)[2]["status"]["updatedNumberScheduled"] == 1
    apiserver.request("DELETE", "/api/v1/namespaces/" + ns)
    for node in nodes:
        apiserver.request("DELETE", "/api/v1/nodes/" + node)


# --- the kubelet runs the pod, the emulated agent talks to the API -------------------------------

def add_agent_token(pki):
    with open(pki.token_file, encoding="utf-8") as handle:
        if AGENT_TOKEN in handle.read():
            return
    with open(pki.token_file, "a", encoding="utf-8") as handle:
        handle.write('%s,system:serviceaccount:ds-kubelet:cilium,uid-cilium,"system:serviceaccounts"\n' % AGENT_TOKEN)


def process_env(pid):
    with open("/proc/%d/environ" % pid, "rb") as handle:
        return dict(item.split("=", 1) for item in handle.read().decode().split("\0") if "=" in item)


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def test_kubelet_runs_the_daemonset_pod_and_the_agent_follows_its_template(tree, pki, apiserver, tmp_path):
    ns, node = "ds-kubelet", "ds-kubelet-node"
    fresh_namespace(apiserver, ns)
    add_agent_token(pki)
    apiserver.request("DELETE", "/api/v1/nodes/" + node)
    with open(pki.ca_crt, "rb") as handle:
        ca = handle.read()
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "cilium-token-x7k2p", "namespace": ns,
                           "annotations": {"kubernetes.io/service-account.name": "cilium"}},
              "data": {"token": base64.b64encode(AGENT_TOKEN.encode()).decode(),
                       "ca.crt": base64.b64encode(ca).decode(), "namespace": base64.b64encode(ns.encode()).decode()}}
    assert apiserver.request("POST", "/api/v1/namespaces/%s/secrets" % ns, secret)[0] == 201
    health = free_port()
    body = daemonset(ns, "cilium", command=("cilium-agent",), args=("--config-dir=/tmp/cilium/config-map",
                                                                    "--agent-health-port=%d" % health),
                     env={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(apiserver.port)},
                     node_selector={"kubernetes.io/hostname": node}, probe_port=health,
                     strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}})
    spec = body["spec"]["template"]["spec"]
    spec["serviceAccountName"] = "cilium"
    spec["containers"][0]["env"].append({"name": "K8S_NODE_NAME",
                                         "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}})
    body["metadata"]["labels"] = {"test": ns}
    assert apiserver.request("POST", "%s/namespaces/%s/daemonsets" % (APPS, ns), body)[0] == 201

    kubelet_conf = apiserver.kubeconfig(str(tmp_path / "kubelet.conf"), user="node")
    kubelet_args = ["--kubeconfig=" + kubelet_conf, "--config=" + kubelet_config(tree, free_port()),
                    "--hostname-override=" + node, "--node-ip=127.0.0.1"]
    kubelet_env = dict(KUBEHA_EMU_BIN_DIR=EMU_DIR, KUBEHA_EMU_KUBELET_PODS_DIR=str(tmp_path / "kubelet-pods"),
                       KUBEHA_EMU_AGENT_HEALTH_WINDOW="6")
    kubelet = tree.start("kubelet", *kubelet_args, **kubelet_env)

    def the_pod():
        items = apiserver.request("GET", "/api/v1/namespaces/%s/pods" % ns)[2]["items"]
        return items[0] if len(items) == 1 else None

    pod = wait_for(the_pod, timeout=20, what="the DaemonSet's pod")
    ds = apiserver.request("GET", "%s/namespaces/%s/daemonsets/cilium" % (APPS, ns))[2]
    assert pod["spec"]["nodeName"] == node and pod["metadata"]["generateName"] == "cilium-"
    assert pod["metadata"]["labels"] == {"k8s-app": "cilium", workloads.REVISION_LABEL: workloads.template_hash(ds),
                                         "pod-template-generation": "1"}
    assert pod["metadata"]["ownerReferences"][0]["uid"] == ds["metadata"]["uid"]
    assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"} \
        in pod["spec"]["tolerations"]
    record = wait_for(lambda: tree.pidfile("daemonset_%s_cilium" % ns), what="pidfile")
    pid = record["pid"]
    env = process_env(pid)
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1" and env["K8S_NODE_NAME"] == node
    # the agent: in-cluster config from the env and the mounted token, its server logged
    status = wait_for(lambda: (s := tree.status("cilium-agent")).get("connected") and s, what="agent connected")
    assert status["server"] == "https://127.0.0.1:%d" % apiserver.port and status["node"] == node
    assert any(r["event"] == "connect" and r["server"] == status["server"] for r in tree.records("cilium-agent"))
    lease = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cilium-agent-" + node
    first = wait_for(lambda: apiserver.request("GET", lease)[2]["spec"]["renewTime"], what="agent lease")
    wait_for(lambda: apiserver.request("GET", lease)[2]["spec"]["renewTime"] != first, timeout=6, what="renewed")
    assert any(r["event"] == "request" and "system:serviceaccount:ds-kubelet:cilium" in r["detail"]
               for r in apiserver.log_records())
    # Ready from the readiness probe
    wait_for(lambda: workloads.pod_ready(the_pod() or {}), timeout=15, what="pod Ready")

    # a kubelet restart leaves the container running and adopts it: same process, same pod
    assert tree.stop(kubelet) == 0
    kubelet = tree.start("kubelet", *kubelet_args, **kubelet_env)
    wait_for(lambda: any(r["event"] == "adopt" and str(pid) in r["detail"] for r in tree.records("kubelet")),
             what="agent adopted by the new kubelet")
    assert alive(pid) and the_pod()["metadata"]["uid"] == pod["metadata"]["uid"]
    wait_for(lambda: workloads.pod_ready(the_pod() or {}), timeout=15, what="pod Ready after the kubelet restart")

    # the template changes; the controller rolls it: the kubelet runs the new template
    controller = DaemonSets(kclient.Client(apiserver.kubeconfig(str(tmp_path / "c.conf"))), selector="test=" + ns)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "cilium", "env": [
        {"name": "KUBERNETES_SERVICE_HOST", "value": "localhost"}]}]}}}}
    apiserver.request("PATCH", "%s/namespaces/%s/daemonsets/cilium" % (APPS, ns), patch,
                      headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert process_env(pid)["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"   # a template change alone restarts nothing
    assert any("deleted old pod" in d for d in controller.sync())
    new = wait_for(lambda: (p := the_pod()) and p["metadata"]["uid"] != pod["metadata"]["uid"] and p,
                   timeout=20, what="a new pod")
    ds = apiserver.request("GET", "%s/namespaces/%s/daemonsets/cilium" % (APPS, ns))[2]
    assert new["metadata"]["labels"][workloads.REVISION_LABEL] == workloads.template_hash(ds)
    assert new["metadata"]["labels"]["pod-template-generation"] == "2"
    assert not alive(pid)
    pid2 = wait_for(lambda: tree.pidfile("daemonset_%s_cilium" % ns)["pid"] != pid and
                    tree.pidfile("daemonset_%s_cilium" % ns)["pid"], what="restarted")
    assert process_env(pid2)["KUBERNETES_SERVICE_HOST"] == "localhost"
    wait_for(lambda: (s := tree.status("cilium-agent")).get("server") == "https://localhost:%d" % apiserver.port
             and s.get("connected"), what="agent on its new server")
    wait_for(lambda: workloads.pod_ready(the_pod() or {}), timeout=15, what="new pod Ready")
    controller.sync()
    status = apiserver.request("GET", "%s/namespaces/%s/daemonsets/cilium" % (APPS, ns))[2]["status"]
    assert (status["desiredNumberScheduled"], status["updatedNumberScheduled"], status["numberReady"]) == (1, 1, 1)

    # the DaemonSet goes: its pod and process go too
    apiserver.request("DELETE", "%s/namespaces/%s/daemonsets/cilium" % (APPS, ns))
    wait_for(lambda: not alive(pid2) and the_pod() is None, timeout=15, what="pod gone with its DaemonSet")
    apiserver.request("DELETE", "/api/v1/namespaces/" + ns)
    apiserver.request("DELETE", "/api/v1/nodes/" + node)


def test_in_cluster_config_resolution(tmp_path):
    with pytest.raises(kclient.KubeconfigError) as err:
        agent.InClusterConfig({"KUBERNETES_SERVICE_PORT": "6443"})
    assert "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined" in str(err.value)
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("abc")
    config = agent.InClusterConfig({"KUBERNETES_SERVICE_HOST": "172.30.0.11", "KUBERNETES_SERVICE_PORT": "6443",
                                    "KUBEHA_EMU_SERVICEACCOUNT_DIR": str(sa)})
    assert config.server == "https://172.30.0.11:6443"
    assert config.token_file == str(sa / "token") and config.ca_file is None and "ca.crt" in config.ca_error
    v6 = agent.InClusterConfig({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443",
                                "KUBEHA_EMU_SERVICEACCOUNT_DIR": str(sa)})
    assert v6.server == "https://[fd00::1]:443"
    (sa / "token").unlink()
    with pytest.raises(OSError):
        agent.InClusterConfig({"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1",
                               "KUBEHA_EMU_SERVICEACCOUNT_DIR": str(sa)})


def test_agent_refuses_without_service_env_and_healthz_follows_the_api(tree, pki, start_apiserver, tmp_path):
    refused = tree.start("cilium-agent", "--config-dir=/tmp/none")
    assert refused.wait(20) == 1
    assert any("must be defined" in (r["detail"] or "") for r in tree.records("cilium-agent"))

    add_agent_token(pki)
    server = start_apiserver()
    server.wait_ready()
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(AGENT_TOKEN)
    shutil.copy(pki.ca_crt, sa / "ca.crt")
    port = free_port()
    tree.start("cilium-agent", "--config-dir=/tmp/none", "--agent-health-port=%d" % port,
               KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(server.port),
               KUBEHA_EMU_SERVICEACCOUNT_DIR=str(sa), K8S_NODE_NAME="agent-node", KUBEHA_EMU_AGENT_HEALTH_WINDOW="5")
    url = "http://127.0.0.1:%d/healthz" % port
    wait_for(lambda: http_status(url) == 200, timeout=20, what="healthz 200")
    assert tree.status("cilium-agent")["server"] == server.url
    server.stop()
    wait_for(lambda: http_status(url) == 503, timeout=20, what="healthz 503 without the API")
    status = tree.status("cilium-agent")
    assert status["connected"] is False and status["last_error"]


def test_the_planted_objects_run_on_the_emulated_kubelet(tree, pki, apiserver, tmp_path):
    """testbed/install/templates/pins.yaml.j2 as the installer renders and applies it (kubeha-apply,
    twice: the second run changes nothing), then a kubelet runs both DaemonSets' pods: the Cilium
    agent and promtail reach the server their KUBERNETES_SERVICE_HOST/PORT name, Ready by their
    chart's probes (ports 9879 and 3101 on this machine)."""
    jinja2 = pytest.importorskip("jinja2")
    if not KUBECTL:
        pytest.skip("kubectl not installed")
    repo = os.path.dirname(os.path.dirname(EMU_DIR))
    tokens = {"cilium": "t0ken-pins-cilium-" + "d" * 16, "promtail": "t0ken-pins-promtail-" + "e" * 16,
              "cilium-operator": "t0ken-pins-cilium-operator-" + "9" * 16}
    with open(pki.token_file, encoding="utf-8") as handle:
        known = handle.read()
    with open(pki.token_file, "a", encoding="utf-8") as handle:
        for sa, ns in (("cilium", "kube-system"), ("promtail", "logging"), ("cilium-operator", "kube-system")):
            if tokens[sa] not in known:
                handle.write('%s,system:serviceaccount:%s:%s,uid-%s,"system:serviceaccounts"\n'
                             % (tokens[sa], ns, sa, sa))
    env = jinja2.Environment()
    env.filters["b64encode"] = lambda text: base64.b64encode(text.encode()).decode()
    with open(os.path.join(repo, "testbed/install/templates/pins.yaml.j2"), encoding="utf-8") as handle:
        template = env.from_string(handle.read())
    with open(pki.ca_crt, "rb") as handle:
        ca_b64 = base64.b64encode(handle.read()).decode()
    manifest = tmp_path / "pins.yaml"
    manifest.write_text(template.render(first_master_ip="127.0.0.1", kube_apiserver_port=apiserver.port,
                                        ca_crt_b64=ca_b64, cilium_token=tokens["cilium"],
                                        cilium_operator_token=tokens["cilium-operator"],
                                        promtail_token=tokens["promtail"]))
    admin = apiserver.kubeconfig(str(tmp_path / "admin.conf"))
    apply = [os.path.join(repo, ".venv/bin/python"), os.path.join(repo, "testbed/install/files/kubeha-apply"),
             admin, str(manifest)]
    if not os.path.exists(apply[0]):
        apply[0] = "python3"
    run_env = dict(os.environ, PATH=os.path.dirname(KUBECTL) + os.pathsep + os.environ.get("PATH", ""))
    first = subprocess.run(apply, capture_output=True, text=True, env=run_env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "created DaemonSet kube-system/cilium" in first.stdout
    assert "created DaemonSet logging/promtail" in first.stdout
    again = subprocess.run(apply, capture_output=True, text=True, env=run_env, timeout=120)
    assert again.returncode == 0 and "created" not in again.stdout and "updated" not in again.stdout, again.stdout
    stop_threads, threads = threading.Event(), []
    try:
        node = "pins-node"
        apiserver.request("DELETE", "/api/v1/nodes/" + node)
        kubelet_conf = apiserver.kubeconfig(str(tmp_path / "kubelet.conf"), user="node")
        tree.start("kubelet", "--kubeconfig=" + kubelet_conf, "--config=" + kubelet_config(tree, free_port()),
                   "--hostname-override=" + node, "--node-ip=127.0.0.1",
                   KUBEHA_EMU_BIN_DIR=EMU_DIR, KUBEHA_EMU_KUBELET_PODS_DIR=str(tmp_path / "kubelet-pods"))

        def pod_of(ns, app_label):
            items = apiserver.request("GET", "/api/v1/namespaces/%s/pods?labelSelector=%s&fieldSelector="
                                      "spec.nodeName=%s" % (ns, app_label, node))[2]["items"]
            return items[0] if len(items) == 1 else None

        server = "https://127.0.0.1:%d" % apiserver.port
        for component in ("cilium-agent", "promtail"):
            wait_for(lambda: (s := tree.status(component)).get("connected") and s["server"] == server, timeout=30,
                     what="%s connected to %s" % (component, server))
        cilium = wait_for(lambda: (p := pod_of("kube-system", "k8s-app=cilium")) and workloads.pod_ready(p) and p,
                          timeout=40, what="cilium pod Ready")
        promtail = wait_for(lambda: (p := pod_of("logging", "app.kubernetes.io/name=promtail")) and
                            workloads.pod_ready(p) and p, timeout=40, what="promtail pod Ready")
        assert cilium["spec"]["serviceAccountName"] == "cilium" and cilium["metadata"]["generateName"] == "cilium-"
        record = tree.pidfile("daemonset_kube-system_cilium")
        env = process_env(record["pid"])
        assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("127.0.0.1", str(apiserver.port))
        assert env["K8S_NODE_NAME"] == node and env["CILIUM_K8S_NAMESPACE"] == "kube-system"
        assert int(env["GOMEMLIMIT"]) > 0
        assert os.path.basename(record["process"]["argv"][0]) == "cilium-agent"
        assert record["process"]["argv"][1:] == ["--config-dir=/tmp/cilium/config-map"]
        record = tree.pidfile("daemonset_logging_promtail")
        assert record["process"]["argv"][1:] == ["-config.file=/etc/promtail/promtail.yaml"]   # the image's entrypoint
        assert process_env(record["pid"])["HOSTNAME"] == node
        assert promtail["metadata"]["ownerReferences"][0]["name"] == "promtail"

        # the operator Deployment, with the controller-manager's Deployment and ReplicaSet
        # controllers (kube-system only, where this test's objects are): one replica runs on the
        # node, the other stays Pending (the chart's required anti-affinity, one node here)
        api = kclient.Client(admin)

        def controllers():
            while not stop_threads.is_set():
                try:
                    Deployments(api, namespace="kube-system").sync()
                    ReplicaSets(api, namespace="kube-system").sync()
                except OSError:
                    pass
                stop_threads.wait(1.0)
        threads.append(threading.Thread(target=controllers, daemon=True))
        threads[-1].start()
        operators = "/api/v1/namespaces/kube-system/pods?labelSelector=io.cilium/app=operator"
        wait_for(lambda: (s := tree.status("cilium-operator")).get("connected") and s["server"] == server,
                 timeout=30, what="cilium-operator connected to %s" % server)
        running = wait_for(lambda: [p for p in apiserver.request("GET", operators)[2]["items"]
                                    if p["spec"].get("nodeName") == node and workloads.pod_ready(p)],
                           timeout=40, what="operator pod Ready (its /healthz on 127.0.0.1:9234)")
        assert running[0]["spec"]["serviceAccountName"] == "cilium-operator"
        assert running[0]["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        status = wait_for(lambda: (d := apiserver.request("GET", "%s/namespaces/kube-system/deployments/cilium-operator"
                                                          % APPS)[2]["status"]).get("availableReplicas") == 1 and d,
                          timeout=20, what="one replica available")
        assert (status["replicas"], status["updatedReplicas"], status["unavailableReplicas"]) == (2, 2, 1)
        pending = [p for p in apiserver.request("GET", operators)[2]["items"] if not p["spec"].get("nodeName")]
        assert len(pending) == 1
        lease = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cilium-operator-resource-lock"
        wait_for(lambda: apiserver.request("GET", lease)[2]["spec"]["holderIdentity"]
                 == tree.status("cilium-operator")["identity"], timeout=20, what="the operator's lock held by it")
    finally:
        stop_threads.set()
        for thread in threads:
            thread.join(10)
        for path in ("%s/namespaces/kube-system/daemonsets/cilium" % APPS,
                     "%s/namespaces/logging/daemonsets/promtail" % APPS,
                     "%s/namespaces/kube-system/deployments/cilium-operator" % APPS,
                     "/api/v1/namespaces/kube-system/configmaps/cilium-config",
                     "/api/v1/namespaces/kube-system/secrets/cilium-token",
                     "/api/v1/namespaces/kube-system/secrets/cilium-operator-token"):
            apiserver.request("DELETE", path)
        cleanup = kclient.Client(admin)
        for _ in range(2):      # the garbage collector's part: the operator's ReplicaSet and pods
            ReplicaSets(cleanup, namespace="kube-system").sync()
        cilium_pods = "/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app=cilium"
        wait_for(lambda: not apiserver.request("GET", cilium_pods)[2]["items"], timeout=15, what="cilium pods gone")
        apiserver.request("DELETE", "/api/v1/namespaces/logging")
        apiserver.request("DELETE", "/api/v1/nodes/pins-node")
