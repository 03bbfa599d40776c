"""The kube-proxy DaemonSet pod as the DaemonSet controller and the kubelet run it together:
ConfigMap kube-system/kube-proxy mounted at /var/lib/kube-proxy, the process
`kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=<node>`, and the pod
object kube-system/kube-proxy-<node>. Deleting that pod object (what `kubectl delete pod` does to
pick up a new ConfigMap) makes a new pod: the process restarts with a freshly fetched ConfigMap."""

import hashlib
import json
import os
import threading
import time

from . import common, procs

CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/kube-proxy"
PODS = "/api/v1/namespaces/kube-system/pods"
PROXY_DIR = os.environ.get("KUBEHA_EMU_KUBE_PROXY_DIR", "/var/lib/kube-proxy")
PROXY_BIN = os.environ.get("KUBEHA_EMU_KUBE_PROXY_BIN", "/usr/local/bin/kube-proxy")
POLL = 2.0


def rfc3339(ts=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts if ts is not None else time.time()))


def running_status(containers, started_at, node_ip=None):
    """A pod status that `kubectl get pod` shows as Running and ready."""
    status = {
        "phase": "Running",
        "conditions": [{"type": t, "status": "True", "lastTransitionTime": rfc3339(started_at)}
                       for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
        "startTime": rfc3339(started_at),
        "containerStatuses": [{"name": name, "ready": True, "started": True, "restartCount": restarts,
                               "image": image, "imageID": "", "state": {"running": {"startedAt": rfc3339(started_at)}}}
                              for name, image, restarts in containers],
    }
    if node_ip:
        status["hostIP"] = node_ip
        status["podIP"] = node_ip
    return status


class KubeProxyPod(threading.Thread):
    def __init__(self, api, node, pods_dir, log_dir, reporter, node_ip=None):
        super().__init__(name="kube-proxy-pod", daemon=True)
        self.api = api
        self.node = node
        self.node_ip = node_ip
        self.pod_name = "kube-proxy-" + node
        self.pidfile = os.path.join(pods_dir, "daemonset_kube-system_kube-proxy.pid")
        self.log_path = os.path.join(log_dir, "%s_kube-proxy.log" % self.pod_name)
        self.reporter = reporter
        self.proc = None
        self.uid = None
        self.cm_hash = None
        self.restarts = 0
        self.backoff = 1.0
        self.next_start = 0.0
        self.stopping = threading.Event()
        self.argv = [PROXY_BIN, "--config=%s" % os.path.join(PROXY_DIR, "config.conf"),
                     "--hostname-override=%s" % node]
        self._adopt()

    def _log(self, event, detail):
        self.reporter.event(event, self.api.server, "kube-proxy pod: " + detail, force=True)

    def _adopt(self):
        try:
            with open(self.pidfile, encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            return
        proc = procs.Proc.adopt(record.get("process") or {})
        if proc is not None and proc.argv == self.argv:
            self.proc, self.uid, self.cm_hash = proc, record.get("uid"), record.get("configmap_sha256")
            self._log("adopt", "adopted running kube-proxy pid %d (pod uid %s)" % (proc.pid, self.uid))

    def _write_pidfile(self):
        data = {"pod": "kube-system/" + self.pod_name, "uid": self.uid, "configmap_sha256": self.cm_hash,
                "pid": self.proc.pid if self.proc else None,
                "process": self.proc.record() if self.proc else None}
        common.atomic_write(self.pidfile, json.dumps(data, sort_keys=True) + "\n")

    def _fetch_and_mount(self):
        answer = self.api.get(CONFIGMAP)
        if answer.status != 200 or not isinstance(answer.json, dict):
            self.reporter.event("error", self.api.server, "kube-proxy pod: ConfigMap kube-system/kube-proxy: HTTP %d" % answer.status)
            return False
        data = answer.json.get("data") or {}
        if "config.conf" not in data or "kubeconfig.conf" not in data:
            self.reporter.event("error", self.api.server, "kube-proxy pod: ConfigMap lacks config.conf/kubeconfig.conf")
            return False
        os.makedirs(PROXY_DIR, exist_ok=True)
        for key in ("config.conf", "kubeconfig.conf"):
            common.atomic_write(os.path.join(PROXY_DIR, key), data[key])
        self.cm_hash = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        return True

    def _pod_object(self):
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.pod_name, "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-proxy"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-proxy",
                                              "uid": "", "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"nodeName": self.node, "hostNetwork": True, "priorityClassName": "system-node-critical",
                     "containers": [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy",
                                     "command": self.argv}],
                     "volumes": [{"name": "kube-proxy", "configMap": {"name": "kube-proxy"}}]},
            "status": running_status([("kube-proxy", "registry.k8s.io/kube-proxy", self.restarts)],
                                     time.time(), self.node_ip),
        }

    def _create_pod(self):
        answer = self.api.post(PODS, self._pod_object())
        if answer.status == 409:
            existing = self.api.get(PODS + "/" + self.pod_name)
            if existing.status == 200 and isinstance(existing.json, dict):
                self.uid = existing.json.get("metadata", {}).get("uid")
                return True
            return False
        if answer.status not in (200, 201) or not isinstance(answer.json, dict):
            return False
        created = answer.json
        self.uid = created.get("metadata", {}).get("uid")
        if not created.get("status", {}).get("phase"):
            created["status"] = self._pod_object()["status"]
            self.api.put(PODS + "/" + self.pod_name + "/status", created)
        self._log("create", "created pod kube-system/%s uid %s" % (self.pod_name, self.uid))
        return True

    def _start_process(self):
        self.proc = procs.start(self.argv, {}, self.log_path)
        self._log("start", "started pid %d: %s" % (self.proc.pid, " ".join(self.argv)))

    def step(self):
        now = time.monotonic()
        if self.proc is None:
            # A new pod: mount a fresh ConfigMap, start the container, publish the pod object.
            if not self._fetch_and_mount():
                return
            self._start_process()
            self.uid = None
            self._write_pidfile()
        elif not self.proc.alive():
            if not self.next_start:
                ran = now - self.proc.started
                if ran >= 30:
                    self.backoff = 1.0
                self.next_start = now + self.backoff
                self._log("exit", "pid %d exited after %.1fs; restart in %.0fs" % (self.proc.pid, ran, self.backoff))
                self.backoff = min(self.backoff * 2, 10.0)
            if now < self.next_start:
                return
            self.next_start = 0.0
            self.restarts += 1
            self._start_process()
            self._write_pidfile()
        if self.uid is None:
            if self._create_pod():
                self._write_pidfile()
            return
        answer = self.api.get(PODS + "/" + self.pod_name)
        current = answer.json.get("metadata", {}).get("uid") if answer.status == 200 and isinstance(answer.json, dict) else None
        if answer.status == 404 or (answer.status == 200 and current != self.uid):
            self._log("delete", "pod kube-system/%s uid %s is gone: restarting with a fresh ConfigMap" % (
                self.pod_name, self.uid))
            how = self.proc.stop(30.0)
            self._log("stop", "pid %d %s" % (self.proc.pid, how))
            self.proc = None
            self.uid = None
            self.restarts = 0
            self.step()

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.step()
            except OSError:
                pass
            except Exception as exc:  # keep the kubelet alive; record the bug
                self.reporter.event("error", self.api.server, "kube-proxy pod: %r" % exc, force=True)
            self.stopping.wait(max(0.1, POLL - (time.monotonic() - started)))
