"""apps/v1 Deployments, ReplicaSets and StatefulSets on the emulators: the Deployment and
ReplicaSet controllers' rolling update (maxSurge/maxUnavailable honoured, status true after every
pass, observedGeneration), Recreate, the fenceposts' rounding, the kubelet running a Deployment's
pod (the emulated Cilium operator: in-cluster config, leader-election Lease, /healthz), StatefulSets
served without a controller.

Every test works in its own namespace and on its own nodes: the apiserver is shared."""

import base64
import json
import os
import shutil
import subprocess
import threading

import pytest

from componentkit import EMU_DIR, Tree, alive, free_port, kubelet_config, wait_for
from kubeha_emu import client as kclient
from kubeha_emu import workloads
from kubeha_emu.controllers import Deployments, ReplicaSets, fenceposts, schedule

KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl")
APPS = "/apis/apps/v1"
OPERATOR_TOKEN = "t0ken-cilium-operator-" + "f" * 16


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path)
    yield t
    t.cleanup()


def fresh_namespace(apiserver, name):
    apiserver.request("DELETE", "/api/v1/namespaces/" + name)
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201


def make_nodes(apiserver, prefix, count, label):
    names = []
    for i in range(count):
        name = "%s-%d" % (prefix, i)
        apiserver.request("DELETE", "/api/v1/nodes/" + name)
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {label: "yes", "kubernetes.io/hostname": name}}, "spec": {}}
        assert apiserver.request("POST", "/api/v1/nodes", body)[0] == 201
        names.append(name)
    return names


def deployment(ns, name, replicas=None, strategy=None, node_selector=None, env=None, command=("sleep", "600"),
               args=()):
    container = {"name": name, "image": "example/%s:v1" % name, "command": list(command), "args": list(args),
                 "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}
    spec = {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [container], "tolerations": [{"operator": "Exists"}],
                                  "nodeSelector": node_selector or {}}}}
    if replicas is not None:
        spec["replicas"] = replicas
    if strategy:
        spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def pods(apiserver, ns):
    return apiserver.request("GET", "/api/v1/namespaces/%s/pods" % ns)[2]["items"]


def kubelet_runs_one(apiserver, ns):
    """What the kubelets do for pods they cannot emulate, one pod per call: a bound pod not yet
    Ready becomes Running and Ready (the oldest first). Returns the pod, or None."""
    waiting = sorted((p for p in pods(apiserver, ns) if p["spec"].get("nodeName") and not workloads.pod_ready(p)),
                     key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))
    if not waiting:
        return None
    pod = waiting[0]
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True",
                                                         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    path = "/api/v1/namespaces/%s/pods/%s/status" % (ns, pod["metadata"]["name"])
    assert apiserver.request("PUT", path, pod)[0] == 200
    return pod


def check_status_is_true(apiserver, ns, name):
    """The Deployment's status says what the pods are (right after the controllers' passes)."""
    deploy = apiserver.request("GET", "%s/namespaces/%s/deployments/%s" % (APPS, ns, name))[2]
    current = workloads.template_hash(deploy)
    mine = [p for p in pods(apiserver, ns) if p["metadata"]["labels"].get("app") == name]
    status = deploy["status"]
    assert status.get("observedGeneration") == deploy["metadata"]["generation"]
    assert status.get("replicas", 0) == len(mine), (status, len(mine))
    assert status.get("updatedReplicas", 0) == sum(1 for p in mine
                                                   if p["metadata"]["labels"]["pod-template-hash"] == current)
    ready = sum(1 for p in mine if workloads.pod_ready(p))
    assert status.get("readyReplicas", 0) == ready and status.get("availableReplicas", 0) == ready
    return deploy, mine


def settle(deployments, replicasets):
    """One round of the controller-manager: the Deployment controller scales, the ReplicaSet
    controller makes or deletes pods, then both write status from what now exists."""
    deployments.sync()
    replicasets.sync()
    replicasets.sync()
    deployments.sync()


def conditions(deploy):
    return {c["type"]: (c["status"], c["reason"]) for c in deploy["status"].get("conditions") or []}


def test_fenceposts_round_as_the_real_controller():
    def d(replicas, surge, unavailable):
        return {"spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": {
            "maxSurge": surge, "maxUnavailable": unavailable}}}}
    assert fenceposts(d(2, "25%", "50%")) == (1, 1)     # cilium-operator's: surge rounds up
    assert fenceposts(d(3, "25%", "25%")) == (1, 0)     # unavailable rounds down
    assert fenceposts(d(3, "40%", "40%")) == (2, 1)
    assert fenceposts(d(1, 0, 0)) == (0, 1)             # both 0: unavailable 1
    assert fenceposts(d(10, 3, "30%")) == (3, 3)


def test_deployment_rolling_update_honours_max_surge_and_max_unavailable(apiserver, tmp_path):
    ns, label = "deploy-roll", "deploy-roll-node"
    fresh_namespace(apiserver, ns)
    nodes = make_nodes(apiserver, "deproll", 6, label)
    body = deployment(ns, "op", replicas=4, node_selector={label: "yes"}, env={"KUBERNETES_SERVICE_HOST": "10.0.0.11"},
                      strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}})
    assert apiserver.request("POST", "%s/namespaces/%s/deployments" % (APPS, ns), body)[0] == 201
    api = kclient.Client(apiserver.kubeconfig(str(tmp_path / "c.conf")))
    deployments, replicasets = Deployments(api, namespace=ns), ReplicaSets(api, namespace=ns)
    path = "%s/namespaces/%s/deployments/op" % (APPS, ns)

    settle(deployments, replicasets)
    rss = apiserver.request("GET", "%s/namespaces/%s/replicasets" % (APPS, ns))[2]["items"]
    assert len(rss) == 1
    rs = rss[0]
    deploy = apiserver.request("GET", path)[2]
    first_hash = workloads.template_hash(deploy)
    assert rs["metadata"]["name"] == "op-" + first_hash and rs["spec"]["replicas"] == 4
    assert rs["metadata"]["ownerReferences"][0]["uid"] == deploy["metadata"]["uid"]
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "op", "pod-template-hash": first_hash}
    created = pods(apiserver, ns)
    assert len(created) == 4
    assert all(p["metadata"]["generateName"] == rs["metadata"]["name"] + "-" for p in created)
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in created)
    assert len({p["spec"]["nodeName"] for p in created}) == 4     # spread over distinct nodes
    deploy, _ = check_status_is_true(apiserver, ns, "op")
    # Available is availableReplicas >= replicas - maxUnavailable: 0 >= 3 is not
    assert conditions(deploy)["Available"] == ("False", "MinimumReplicasUnavailable")
    while kubelet_runs_one(apiserver, ns):
        pass
    settle(deployments, replicasets)
    deploy, _ = check_status_is_true(apiserver, ns, "op")
    assert deploy["status"]["availableReplicas"] == 4 and "unavailableReplicas" not in deploy["status"]
    assert conditions(deploy) == {"Available": ("True", "MinimumReplicasAvailable"),
                                  "Progressing": ("True", "NewReplicaSetAvailable")}

    # the template changes: never more than 4 + 1 pods, never fewer than 4 - 1 available
    deploy["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "10.0.0.10"
    deploy = apiserver.request("PUT", path, deploy)[2]
    assert deploy["metadata"]["generation"] == 2
    new_hash = workloads.template_hash(deploy)
    most, fewest_ready = 0, 4
    for _ in range(30):
        settle(deployments, replicasets)
        deploy, mine = check_status_is_true(apiserver, ns, "op")
        most = max(most, len(mine))
        ready = sum(1 for p in mine if workloads.pod_ready(p))
        fewest_ready = min(fewest_ready, ready)
        assert len(mine) <= 5 and ready >= 3, (len(mine), ready)
        # spread per ReplicaSet (the default topology spread counts the pods of the same owner)
        on_nodes = [p["spec"]["nodeName"] for p in mine if p["metadata"]["labels"]["pod-template-hash"] == new_hash]
        assert len(on_nodes) == len(set(on_nodes))
        status = deploy["status"]
        if (status.get("updatedReplicas"), status.get("replicas"), status.get("availableReplicas")) == (4, 4, 4):
            break
        assert conditions(deploy)["Progressing"][1] in ("NewReplicaSetCreated", "ReplicaSetUpdated")
        kubelet_runs_one(apiserver, ns)     # one new pod becomes Ready per round
    else:
        pytest.fail("the rollout did not finish: %s" % deploy["status"])
    assert most == 5 and fewest_ready == 3      # both limits were used, neither exceeded
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in mine} == {new_hash}
    assert conditions(deploy)["Progressing"] == ("True", "NewReplicaSetAvailable")
    rss = {r["metadata"]["name"]: r for r in apiserver.request("GET", "%s/namespaces/%s/replicasets" % (APPS, ns))[2]["items"]}
    assert rss["op-" + first_hash]["spec"]["replicas"] == 0 and rss["op-" + new_hash]["spec"]["replicas"] == 4
    assert rss["op-" + new_hash]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"

    if KUBECTL:
        config = apiserver.kubeconfig(str(tmp_path / "kubectl.conf"))
        done = subprocess.run([KUBECTL, "--kubeconfig", config, "-n", ns, "rollout", "status", "deploy/op",
                               "--timeout=10s"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and 'deployment "op" successfully rolled out' in done.stdout, done
        listed = subprocess.run([KUBECTL, "--kubeconfig", config, "-n", ns, "get", "rs"], capture_output=True,
                                text=True, timeout=30).stdout.split("\n")
        assert listed[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]

    # a pod deleted by hand is replaced by its ReplicaSet
    victim = mine[0]
    apiserver.request("DELETE", "/api/v1/namespaces/%s/pods/%s" % (ns, victim["metadata"]["name"]))
    settle(deployments, replicasets)
    names = {p["metadata"]["name"] for p in pods(apiserver, ns)}
    assert len(names) == 4 and victim["metadata"]["name"] not in names

    # the Deployment goes: its ReplicaSets and pods too (the garbage collector's part)
    apiserver.request("DELETE", path)
    replicasets.sync()
    replicasets.sync()
    assert not apiserver.request("GET", "%s/namespaces/%s/replicasets" % (APPS, ns))[2]["items"]
    assert not pods(apiserver, ns)
    apiserver.request("DELETE", "/api/v1/namespaces/" + ns)
    for node in nodes:
        apiserver.request("DELETE", "/api/v1/nodes/" + node)


def test_deployment_recreate_and_scheduling_constraints(apiserver, tmp_path):
    ns, label = "deploy-recreate", "deploy-recreate-node"
    fresh_namespace(apiserver, ns)
    nodes = make_nodes(apiserver, "deprec", 2, label)
    body = deployment(ns, "op", replicas=3, node_selector={label: "yes"}, strategy={"type": "Recreate"})
    # the chart's operator anti-affinity: one pod per node, the third stays Pending
    body["spec"]["template"]["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "op"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    deploy = apiserver.request("POST", "%s/namespaces/%s/deployments" % (APPS, ns), body)[2]
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    api = kclient.Client(apiserver.kubeconfig(str(tmp_path / "c.conf")))
    deployments, replicasets = Deployments(api, namespace=ns), ReplicaSets(api, namespace=ns)
    settle(deployments, replicasets)
    placed = sorted(p["spec"].get("nodeName") or "" for p in pods(apiserver, ns))
    assert placed == [""] + nodes, placed
    while kubelet_runs_one(apiserver, ns):
        pass
    settle(deployments, replicasets)
    deploy, _ = check_status_is_true(apiserver, ns, "op")
    assert (deploy["status"]["replicas"], deploy["status"]["availableReplicas"]) == (3, 2)
    assert deploy["status"]["unavailableReplicas"] == 1
    assert conditions(deploy)["Available"] == ("False", "MinimumReplicasUnavailable")   # 2 < 3 - 0

    # Recreate: every old pod goes before the new ReplicaSet has any
    deploy["spec"]["replicas"] = 2
    deploy["spec"]["template"]["spec"]["containers"][0]["args"] = ["700"]
    deploy = apiserver.request("PUT", "%s/namespaces/%s/deployments/op" % (APPS, ns), deploy)[2]
    deployments.sync()
    rss = apiserver.request("GET", "%s/namespaces/%s/replicasets" % (APPS, ns))[2]["items"]
    assert [r["spec"]["replicas"] for r in rss] == [0]       # old scaled to 0, no new one yet
    replicasets.sync()
    assert not pods(apiserver, ns)
    replicasets.sync()
    settle(deployments, replicasets)
    mine = pods(apiserver, ns)
    assert len(mine) == 2 and {p["metadata"]["labels"]["pod-template-hash"] for p in mine} == {
        workloads.template_hash(deploy)}
    apiserver.request("DELETE", "/api/v1/namespaces/" + ns)
    for node in nodes:
        apiserver.request("DELETE", "/api/v1/nodes/" + node)


def test_schedule_filters_and_spreads():
    def node(name, labels=None, taints=None, unschedulable=False):
        return {"metadata": {"name": name, "labels": labels or {}},
                "spec": {"taints": taints or [], "unschedulable": unschedulable}}
    owner = [{"kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": True}]
    pod = {"metadata": {"namespace": "n", "labels": {"app": "a"}, "ownerReferences": owner},
           "spec": {"nodeSelector": {"os": "linux"}}}
    nodes = [node("a", {"os": "linux"}, [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
             node("b", {"os": "linux"}), node("c", {"os": "windows"}), node("d", {"os": "linux"}, unschedulable=True),
             node("e", {"os": "linux"})]
    running = {"metadata": {"namespace": "n", "labels": {"app": "a"}, "ownerReferences": owner},
               "spec": {"nodeName": "b"}, "status": {"phase": "Running"}}
    assert schedule(pod, nodes, []) == "b"
    assert schedule(pod, nodes, [running]) == "e"                  # spread: fewest of its owner's pods
    pod["spec"]["tolerations"] = [{"operator": "Exists"}]
    assert schedule(pod, nodes, [running]) == "a"                  # tolerates the taint and cordon
    assert schedule(pod, nodes[:2], [running, dict(running, spec={"nodeName": "a"})]) == "a"   # spread, not refuse
    pod["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "a"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    assert schedule(pod, nodes[:2], [running, dict(running, spec={"nodeName": "a"})]) is None


def test_statefulsets_and_replicasets_are_served(apiserver, tmp_path):
    ns = "sts-api"
    fresh_namespace(apiserver, ns)
    resources = {r["name"]: r for r in apiserver.request("GET", APPS)[2]["resources"]}
    assert resources["statefulsets"]["shortNames"] == ["sts"] and resources["statefulsets"]["namespaced"]
    assert resources["statefulsets"]["kind"] == "StatefulSet" and "statefulsets/status" in resources
    assert resources["replicasets"]["shortNames"] == ["rs"] and "replicasets/status" in resources
    body = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": ns},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "db", "image": "example/db:v1", "env": [
                                      {"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.11"}]}]}}}}
    status, _, sts = apiserver.request("POST", "%s/namespaces/%s/statefulsets" % (APPS, ns), body)
    assert status == 201, sts
    assert sts["metadata"]["generation"] == 1 and sts["status"] == {"replicas": 0, "availableReplicas": 0}
    assert sts["spec"]["replicas"] == 1 and sts["spec"]["podManagementPolicy"] == "OrderedReady"
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["spec"]["revisionHistoryLimit"] == 10
    path = "%s/namespaces/%s/statefulsets/db" % (APPS, ns)
    sts["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "10.0.0.10"
    sts = apiserver.request("PUT", path, sts)[2]
    assert sts["metadata"]["generation"] == 2
    sts["spec"]["serviceName"] = "other"
    status, _, refused = apiserver.request("PUT", path, sts)
    assert status == 422 and "updates to statefulset spec for fields other than" in refused["message"]
    sts = apiserver.request("GET", path)[2]
    sts["status"] = {"replicas": 1, "readyReplicas": 1, "observedGeneration": 2}
    assert apiserver.request("PUT", path + "/status", sts)[2]["status"]["readyReplicas"] == 1
    everywhere = apiserver.request("GET", APPS + "/statefulsets")
    assert everywhere[0] == 200 and everywhere[2]["kind"] == "StatefulSetList"
    assert (ns, "db") in [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in everywhere[2]["items"]]
    if KUBECTL:
        config = apiserver.kubeconfig(str(tmp_path / "kubectl.conf"))
        rows = subprocess.run([KUBECTL, "--kubeconfig", config, "-n", ns, "get", "sts"], capture_output=True,
                              text=True, timeout=30).stdout.splitlines()
        assert rows[0].split() == ["NAME", "READY", "AGE"] and rows[1].split()[:2] == ["db", "1/1"]
    apiserver.request("DELETE", "/api/v1/namespaces/" + ns)


# --- the kubelet runs a Deployment's pod: the emulated Cilium operator ---------------------------

def add_operator_token(pki, ns):
    with open(pki.token_file, encoding="utf-8") as handle:
        if OPERATOR_TOKEN in handle.read():
            return
    with open(pki.token_file, "a", encoding="utf-8") as handle:
        handle.write('%s,system:serviceaccount:%s:cilium-operator,uid-cilium-operator,"system:serviceaccounts"\n'
                     % (OPERATOR_TOKEN, ns))


def operator_deployment(ns, node, server_port, health_port, host="127.0.0.1"):
    body = deployment(ns, "cilium-operator", replicas=1, command=("cilium-operator-generic",),
                      args=("--config-dir=/tmp/cilium/config-map", "--debug=$(CILIUM_DEBUG)",
                            "--operator-api-serve-addr=127.0.0.1:%d" % health_port),
                      node_selector={"kubernetes.io/hostname": node},
                      env={"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(server_port)})
    spec = body["spec"]["template"]["spec"]
    spec.update(serviceAccountName="cilium-operator", hostNetwork=True, terminationGracePeriodSeconds=1)
    container = spec["containers"][0]
    container["env"] += [{"name": "K8S_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                         {"name": "CILIUM_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    container["readinessProbe"] = {"httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": health_port,
                                               "scheme": "HTTP"}, "periodSeconds": 5, "timeoutSeconds": 3,
                                   "failureThreshold": 5}
    return body


def process_env(pid):
    with open("/proc/%d/environ" % pid, "rb") as handle:
        return dict(item.split("=", 1) for item in handle.read().decode().split("\0") if "=" in item)


def test_kubelet_runs_the_operator_pod_and_the_deployment_rolls(tree, pki, apiserver, tmp_path):
    ns, node = "deploy-kubelet", "deploy-kubelet-node"
    fresh_namespace(apiserver, ns)
    add_operator_token(pki, ns)
    apiserver.request("DELETE", "/api/v1/nodes/" + node)
    with open(pki.ca_crt, "rb") as handle:
        ca = handle.read()
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "cilium-operator-token", "namespace": ns,
                           "annotations": {"kubernetes.io/service-account.name": "cilium-operator"}},
              "data": {"token": base64.b64encode(OPERATOR_TOKEN.encode()).decode(),
                       "ca.crt": base64.b64encode(ca).decode(), "namespace": base64.b64encode(ns.encode()).decode()}}
    assert apiserver.request("POST", "/api/v1/namespaces/%s/secrets" % ns, secret)[0] == 201
    health = free_port()
    body = operator_deployment(ns, node, apiserver.port, health)
    assert apiserver.request("POST", "%s/namespaces/%s/deployments" % (APPS, ns), body)[0] == 201

    # the controller-manager's two controllers, for this namespace only, every second
    api = kclient.Client(apiserver.kubeconfig(str(tmp_path / "c.conf")))
    stop = threading.Event()

    def controllers():
        deployments, replicasets = Deployments(api, namespace=ns), ReplicaSets(api, namespace=ns)
        while not stop.is_set():
            try:
                deployments.sync()
                replicasets.sync()
            except OSError:
                pass
            stop.wait(1.0)
    runner = threading.Thread(target=controllers, daemon=True)
    runner.start()
    try:
        kubelet_conf = apiserver.kubeconfig(str(tmp_path / "kubelet.conf"), user="node")
        tree.start("kubelet", "--kubeconfig=" + kubelet_conf, "--config=" + kubelet_config(tree, free_port()),
                   "--hostname-override=" + node, "--node-ip=127.0.0.1",
                   KUBEHA_EMU_BIN_DIR=EMU_DIR, KUBEHA_EMU_KUBELET_PODS_DIR=str(tmp_path / "kubelet-pods"))
        # the ReplicaSet's pod is bound to the node once the kubelet has registered it
        pod = wait_for(lambda: (p := pods(apiserver, ns)) and len(p) == 1 and p[0]["spec"].get("nodeName") and p[0],
                       timeout=20, what="the operator pod")
        deploy = apiserver.request("GET", "%s/namespaces/%s/deployments/cilium-operator" % (APPS, ns))[2]
        digest = workloads.template_hash(deploy)
        assert pod["metadata"]["name"].startswith("cilium-operator-%s-" % digest)
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert pod["spec"]["nodeName"] == node
        pidfile = "pod_%s_%s" % (ns, pod["metadata"]["name"])
        record = wait_for(lambda: tree.pidfile(pidfile), what="pidfile")
        pid = record["pid"]
        assert os.path.basename(record["process"]["argv"][0]) == "cilium-operator-generic"
        env = process_env(pid)
        assert (env["KUBERNETES_SERVICE_HOST"], env["CILIUM_K8S_NAMESPACE"], env["K8S_NODE_NAME"]) == (
            "127.0.0.1", ns, node)
        server = "https://127.0.0.1:%d" % apiserver.port
        wait_for(lambda: (s := tree.status("cilium-operator")).get("connected") and s["server"] == server,
                 timeout=20, what="operator connected")
        lease = "/apis/coordination.k8s.io/v1/namespaces/%s/leases/cilium-operator-resource-lock" % ns
        holder = wait_for(lambda: apiserver.request("GET", lease)[2]["spec"]["holderIdentity"], timeout=20,
                          what="the operator's leader-election lease")
        assert holder.startswith(os.uname().nodename + "-") and len(holder) == len(os.uname().nodename) + 11
        assert tree.status("cilium-operator")["identity"] == holder
        wait_for(lambda: tree.status("cilium-operator").get("leader") is True, what="operator leading")
        wait_for(lambda: workloads.pod_ready(pods(apiserver, ns)[0]), timeout=20, what="operator pod Ready")
        done = wait_for(lambda: (d := apiserver.request("GET", "%s/namespaces/%s/deployments/cilium-operator"
                                                        % (APPS, ns))[2]["status"]).get("availableReplicas") == 1
                        and d, timeout=20, what="deployment available")
        assert (done["observedGeneration"], done["updatedReplicas"], done["replicas"]) == (1, 1, 1)

        # repointed (env and, here, the health port: both pods run on this one machine): the new
        # pod comes first (maxSurge 25% of 1 = 1, maxUnavailable 0), the old one goes once it is Ready
        new_health = free_port()
        patch = {"spec": {"template": {"spec": {"containers": [{
            "name": "cilium-operator",
            "args": ["--config-dir=/tmp/cilium/config-map", "--debug=$(CILIUM_DEBUG)",
                     "--operator-api-serve-addr=127.0.0.1:%d" % new_health],
            "readinessProbe": {"httpGet": {"port": new_health}},
            "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "localhost"}]}]}}}}
        deploy = apiserver.request("PATCH", "%s/namespaces/%s/deployments/cilium-operator" % (APPS, ns), patch,
                                   headers={"Content-Type": "application/strategic-merge-patch+json"})[2]
        assert deploy["metadata"]["generation"] == 2
        both = wait_for(lambda: len(p := pods(apiserver, ns)) == 2 and p, timeout=20, what="the surge pod")
        assert any(p["metadata"]["uid"] == pod["metadata"]["uid"] for p in both)   # the old one stays for now
        status = wait_for(lambda: (d := apiserver.request("GET", "%s/namespaces/%s/deployments/cilium-operator"
                                                          % (APPS, ns))[2]["status"]).get("updatedReplicas") == 1
                          and d.get("replicas") == 1 and d.get("availableReplicas") == 1 and d,
                          timeout=40, what="rolled out")
        assert status["observedGeneration"] == 2
        wait_for(lambda: not alive(pid), timeout=20, what="old operator stopped")
        (new,) = pods(apiserver, ns)
        assert new["metadata"]["uid"] != pod["metadata"]["uid"] and workloads.pod_ready(new)
        new_pid = tree.pidfile("pod_%s_%s" % (ns, new["metadata"]["name"]))["pid"]
        assert process_env(new_pid)["KUBERNETES_SERVICE_HOST"] == "localhost"
        wait_for(lambda: tree.status("cilium-operator")["server"] == "https://localhost:%d" % apiserver.port,
                 what="operator on its new server")
        assert not os.path.exists(os.path.join(tree.pods_dir, pidfile + ".pid"))

        # the Deployment goes: ReplicaSets, pod and container go too
        apiserver.request("DELETE", "%s/namespaces/%s/deployments/cilium-operator" % (APPS, ns))
        wait_for(lambda: not pods(apiserver, ns) and not alive(new_pid), timeout=20, what="pod and container gone")
    finally:
        stop.set()
        runner.join(10)
        apiserver.request("DELETE", "/api/v1/namespaces/" + ns)
        apiserver.request("DELETE", "/api/v1/nodes/" + node)


def test_operator_healthz_follows_the_api(tree, pki, start_apiserver, tmp_path):
    refused = tree.start("cilium-operator-generic", "--config-dir=/tmp/none")
    assert refused.wait(20) == 1
    assert any("must be defined" in (r["detail"] or "") for r in tree.records("cilium-operator"))
    add_operator_token(pki, "kube-system")
    server = start_apiserver()
    server.wait_ready()
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(OPERATOR_TOKEN)
    shutil.copy(pki.ca_crt, sa / "ca.crt")
    port = free_port()
    tree.start("cilium-operator-generic", "--operator-api-serve-addr=127.0.0.1:%d" % port,
               KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(server.port),
               KUBEHA_EMU_SERVICEACCOUNT_DIR=str(sa))
    url = "http://127.0.0.1:%d/healthz" % port
    wait_for(lambda: http_get(url) == (200, "ok"), timeout=20, what="healthz 200")
    # CILIUM_K8S_NAMESPACE unset: the lock is in `default`, as the operator assumes
    lease = server.request("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/cilium-operator-resource-lock")
    assert lease[0] == 200 and lease[2]["spec"]["leaseDurationSeconds"] == 15
    server.stop()
    code, _ = wait_for(lambda: (r := http_get(url))[0] == 500 and r, timeout=10, what="healthz 500 without the API")
    assert code == 500


def http_get(url):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode().strip()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode().strip()
    except OSError:
        return None, None
