"""kubelet emulator: static pods as host processes, Node + Lease heartbeat, mirror pods, the
kube-proxy DaemonSet pod, the pods of DaemonSets that run emulated programs and those of
ReplicaSets (Deployments) bound to this node that do, /healthz. Kubeconfig
read once at start (see client.py)."""

import copy
import os
import socket
import sys
import threading
import time

import yaml

from . import client as kclient
from . import common, daemonpod, flags, leader, pods, serving

PODS_DIR = os.environ.get("KUBEHA_EMU_PODS_DIR", os.path.join(common.STATUS_DIR, "pods"))
POD_LOG_DIR = os.environ.get("KUBEHA_EMU_POD_LOG_DIR", os.path.join(common.LOG_DIR, "pods"))
HEARTBEAT = 2.0
MIRROR_CHECK = 10.0
KNOWN = {"kubeconfig": None, "config": None, "hostname-override": None, "node-ip": None}
# The version this "binary" is, as a real kubelet's is built into it: the test-bed installer writes
# the installed Kubernetes version here (testbed/install/site.yml); $KUBEHA_KUBELET_VERSION first.
VERSION_FILE = os.environ.get("KUBEHA_EMU_VERSION_FILE", "/usr/local/lib/kubeha-emu/kube-version")
FALLBACK_VERSION = "v1.33.0-kubeha-emu"


def version():
    """gitVersion of this kubelet: $KUBEHA_KUBELET_VERSION, else the installed version file, else
    FALLBACK_VERSION. Always with a leading v, as Node.status.nodeInfo.kubeletVersion."""
    value = os.environ.get("KUBEHA_KUBELET_VERSION", "").strip()
    if not value:
        try:
            with open(VERSION_FILE, encoding="utf-8") as handle:
                value = handle.read().strip()
        except OSError:
            value = ""
    value = value or FALLBACK_VERSION
    return value if value.startswith("v") else "v" + value


def host_ip(node):
    """The node address a kubelet without --node-ip reports: like the real one (pkg/kubelet/nodestatus
    NodeAddress -> the first non-loopback IPv4 address the node name resolves to), or None."""
    try:
        infos = socket.getaddrinfo(node, None, socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        address = info[4][0]
        if not address.startswith("127."):
            return address
    return None


def load_config(path):
    config = {}
    if path:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    return {
        "staticPodPath": config.get("staticPodPath") or "/etc/kubernetes/manifests",
        "healthzPort": int(config.get("healthzPort", 10248)),
        "healthzBindAddress": config.get("healthzBindAddress") or "127.0.0.1",
    }


class NodeAgent(threading.Thread):
    """Registers the Node, heartbeats its Ready condition and its Lease, keeps mirror pods."""

    def __init__(self, api, node, node_ip, static, reporter):
        super().__init__(name="node-status", daemon=True)
        self.api = api
        self.node = node
        self.node_ip = node_ip
        self.static = static
        self.reporter = reporter
        self.registered = False
        self.started = time.time()
        self.mirrors = {}        # mirror pod key -> (digest, running, last check)
        self.stopping = threading.Event()

    def labels(self):
        labels = {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                  "beta.kubernetes.io/arch": "amd64"}
        for pod, _digest, _running in self.static.pods().values():
            if pod.get("metadata", {}).get("name") == "kube-apiserver":
                labels["node-role.kubernetes.io/control-plane"] = ""
        return labels

    def node_status(self, previous=None):
        now = daemonpod.rfc3339()
        since = daemonpod.rfc3339(self.started)
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                 "lastTransitionTime": since}
        for condition in (previous or {}).get("conditions") or []:
            if condition.get("type") == "Ready" and condition.get("status") == "True":
                ready["lastTransitionTime"] = condition.get("lastTransitionTime") or since
        status = dict(previous or {})
        status["conditions"] = [ready]
        addresses = [{"type": "Hostname", "address": self.node}]
        if self.node_ip:
            addresses.insert(0, {"type": "InternalIP", "address": self.node_ip})
        status["addresses"] = addresses
        status["nodeInfo"] = {"kubeletVersion": version(), "kubeProxyVersion": "",
                              "operatingSystem": "linux", "architecture": "amd64",
                              "containerRuntimeVersion": "kubeha-emu://1"}
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": 10250}}
        return status

    def register(self):
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node, "labels": self.labels()},
                "spec": {}, "status": self.node_status()}
        answer = self.api.post("/api/v1/nodes", body)
        if answer.status in (200, 201, 409):
            if not self.registered:
                self.reporter.event("register", self.api.server, "node %s registered (HTTP %d)" % (
                    self.node, answer.status), force=True)
            self.registered = True

    def update_status(self):
        answer = self.api.get("/api/v1/nodes/" + self.node)
        if answer.status == 404:
            self.registered = False
            return
        if answer.status != 200 or not isinstance(answer.json, dict):
            return
        node = answer.json
        labels = node.setdefault("metadata", {}).setdefault("labels", {})
        wanted = self.labels()
        if any(labels.get(k) != v for k, v in wanted.items()):
            labels.update(wanted)
            changed = self.api.put("/api/v1/nodes/" + self.node, node)
            if changed.status != 200:
                return
            node = changed.json
        node["status"] = self.node_status(node.get("status"))
        self.api.put("/api/v1/nodes/%s/status" % self.node, node)

    def renew_lease(self):
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + self.node
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": 40, "renewTime": leader.micro_time()}
        answer = self.api.get(path)
        if answer.status == 404:
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.node, "namespace": "kube-node-lease",
                                  "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": self.node,
                                                       "uid": ""}]},
                     "spec": spec}
            self.api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)
        elif answer.status == 200 and isinstance(answer.json, dict):
            lease = answer.json
            lease["spec"] = dict(lease.get("spec") or {}, **spec)
            self.api.put(path, lease)

    def mirror_pod(self, pod, digest, running):
        mirror = copy.deepcopy(pod)
        meta = mirror.setdefault("metadata", {})
        namespace = meta.get("namespace") or "default"
        meta.update({"name": "%s-%s" % (meta["name"], self.node), "namespace": namespace})
        for field in ("uid", "resourceVersion", "creationTimestamp"):
            meta.pop(field, None)
        annotations = dict(meta.get("annotations") or {})
        annotations.update({"kubernetes.io/config.mirror": digest, "kubernetes.io/config.hash": digest,
                            "kubernetes.io/config.source": "file"})
        meta["annotations"] = annotations
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": "",
                                    "controller": True}]
        mirror.setdefault("spec", {})["nodeName"] = self.node
        containers = [(c.get("name"), c.get("image", ""), 0) for c in mirror["spec"].get("containers") or []]
        status = daemonpod.running_status(containers, time.time(), self.node_ip)
        if not running:
            status["phase"] = "Pending"
            for item in status["conditions"] + status["containerStatuses"]:
                if "ready" in item:
                    item["ready"] = False
                elif item["type"] in ("Ready", "ContainersReady"):
                    item["status"] = "False"
        mirror["status"] = status
        return namespace, meta["name"], mirror

    def sync_mirrors(self):
        now = time.monotonic()
        seen = set()
        for pod, digest, running in self.static.pods().values():
            namespace, name, mirror = self.mirror_pod(pod, digest, running)
            key = (namespace, name)
            seen.add(key)
            known = self.mirrors.get(key)
            if known and known[0] == digest and known[1] == running and now - known[2] < MIRROR_CHECK:
                continue
            path = "/api/v1/namespaces/%s/pods/%s" % (namespace, name)
            answer = self.api.get(path)
            if answer.status == 200 and isinstance(answer.json, dict):
                current = answer.json
                if current.get("metadata", {}).get("annotations", {}).get("kubernetes.io/config.mirror") != digest:
                    self.api.delete(path)
                    answer = self.api.post("/api/v1/namespaces/%s/pods" % namespace, mirror)
                elif known is None or known[1] != running:
                    current["status"] = mirror["status"]
                    answer = self.api.put(path + "/status", current)
            elif answer.status == 404:
                answer = self.api.post("/api/v1/namespaces/%s/pods" % namespace, mirror)
            if answer.status in (200, 201):
                self.mirrors[key] = (digest, running, now)
        for key in list(self.mirrors):
            if key not in seen:
                answer = self.api.delete("/api/v1/namespaces/%s/pods/%s" % key)
                if answer.status in (200, 202, 404):
                    del self.mirrors[key]

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            for step in ((self.update_status if self.registered else self.register),
                         self.renew_lease, self.sync_mirrors):
                try:
                    step()
                except OSError:
                    break       # server unreachable: logged by the client; try again next round
                except Exception as exc:  # keep heartbeating; record the bug
                    self.reporter.event("error", self.api.server, "node agent: %r" % exc, force=True)
            self.stopping.wait(max(0.1, HEARTBEAT - (time.monotonic() - started)))


def run(argv):
    if "--version" in argv or "--version=true" in argv:
        print("Kubernetes " + version())
        return 0
    values, ignored = flags.parse(argv, KNOWN)
    reporter = common.Reporter("kubelet")
    reporter.event("start", None, "pid %d, flags ignored: %s" % (os.getpid(), " ".join(ignored) or "none"),
                   force=True)
    try:
        config = load_config(values["config"])
    except (OSError, yaml.YAMLError, ValueError) as exc:
        reporter.event("error", None, "config %s: %s" % (values["config"], exc), force=True)
        return 1
    node = (values["hostname-override"] or socket.gethostname()).lower()
    node_ip = values["node-ip"] or host_ip(node)
    api = None
    if values["kubeconfig"]:
        try:
            api = kclient.Client(values["kubeconfig"], reporter=reporter, user_agent="kubelet/" + node)
        except (kclient.KubeconfigError, OSError, ValueError) as exc:
            reporter.event("error", None, "kubeconfig %s: %s" % (values["kubeconfig"], exc), force=True)
            return 1
        reporter.update(server=api.server, node=node)
    else:
        reporter.event("start", None, "no --kubeconfig: standalone mode (static pods only)", force=True)
        reporter.update(node=node)
    stop = threading.Event()
    serving.install_sigterm(stop)
    # The kubelet's own liveness: ok whether or not the apiserver answers.
    health = serving.serve(config["healthzBindAddress"], config["healthzPort"],
                           {"/healthz": lambda: (True, "ok")})
    static = pods.StaticPods(config["staticPodPath"], PODS_DIR, POD_LOG_DIR, reporter)
    threads = []
    if api is not None:
        threads.append(NodeAgent(api, node, node_ip, static, reporter))
        threads.append(daemonpod.KubeProxyPod(api, node, PODS_DIR, POD_LOG_DIR, reporter, node_ip))
        threads.append(daemonpod.DaemonSetPods(api, node, PODS_DIR, POD_LOG_DIR, reporter, node_ip))
        threads.append(daemonpod.ControllerPods(api, node, PODS_DIR, POD_LOG_DIR, reporter, node_ip))
    static.sync()
    for thread in threads:
        thread.start()
    while not stop.is_set():
        try:
            static.sync()
        except Exception as exc:  # keep running pods; record the bug
            reporter.event("error", None, "static pods: %r" % exc, force=True)
        reporter.update()
        stop.wait(1.0)
    # Like the real kubelet, leave the pod processes running (the unit has KillMode=process).
    static.stop()
    for thread in threads:
        thread.stopping.set()
    health.shutdown()
    reporter.event("stop", api.server if api else None, "exit 0 (pod processes left running)", force=True)
    return 0


def main():
    sys.exit(run(sys.argv[1:]))
