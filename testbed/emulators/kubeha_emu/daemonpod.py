"""DaemonSet pods as the DaemonSet controller and the kubelet run them together: one host process
standing in for the container (restarted with back-off when it exits, adopted across kubelet
restarts through a pidfile) and the pod object; deleting the pod object makes a new pod.

- KubeProxyPod: kube-proxy, from ConfigMap kube-system/kube-proxy mounted at /var/lib/kube-proxy,
  the process `kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=<node>`
  and the pod object kube-system/kube-proxy-<node> (the bed has no kube-proxy DaemonSet object).
  A new pod re-reads the ConfigMap (what `kubectl delete pod` is for).
- TemplatePod: the pod of a DaemonSet object whose container runs a program emulated on the node
  (EMULATED_PROGRAMS, found in the emulators' bin directory): created from the DaemonSet's CURRENT
  template (labels + controller-revision-hash and pod-template-generation, ownerReference,
  tolerations, nodeName), its
  container run with the pod's env (values, fieldRef, resourceFieldRef limits.memory) and its
  service-account token, Ready as its readiness probe says. DaemonSetPods runs one per DaemonSet.
- BoundPod: a pod another controller created and bound to this node (a ReplicaSet's, so a
  Deployment's), whose container runs an emulated program: the same container machinery as
  TemplatePod, but the kubelet only runs it; when the pod object goes, the container is stopped
  and the ReplicaSet controller makes the replacement. ControllerPods runs one per such pod.
"""

import base64
import hashlib
import http.client
import json
import os
import threading
import time

from . import common, procs, workloads

CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/kube-proxy"
PODS = "/api/v1/namespaces/kube-system/pods"
PROXY_DIR = os.environ.get("KUBEHA_EMU_KUBE_PROXY_DIR", "/var/lib/kube-proxy")
PROXY_BIN = os.environ.get("KUBEHA_EMU_KUBE_PROXY_BIN", "/usr/local/bin/kube-proxy")
POLL = 2.0
# DaemonSet containers whose program is emulated here (the first word of `command` or of the image's
# entrypoint, looked up in BIN_DIR): the emulated Cilium agent, Cilium operator and promtail (agent.py).
EMULATED_PROGRAMS = ("cilium-agent", "cilium-operator-generic", "promtail")
BIN_DIR = os.environ.get("KUBEHA_EMU_BIN_DIR", "/usr/local/bin")
# where the kubelet keeps pod volumes (the service-account token is one)
KUBELET_PODS_DIR = os.environ.get("KUBEHA_EMU_KUBELET_PODS_DIR", "/var/lib/kubelet/pods")
# the ENTRYPOINT of the emulated images, which a container without `command` runs (as the CRI does)
IMAGE_ENTRYPOINTS = {"docker.io/grafana/promtail": ["/usr/bin/promtail"]}
DAEMONSETS = "/apis/apps/v1/daemonsets"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"


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


class DaemonPod(threading.Thread):
    """What every DaemonSet pod on this node shares: the process, its restarts, the pidfile, and
    watching the pod object (gone or replaced = a new pod). Subclasses say how a new pod is
    prepared (new_pod) and published (create_pod), and what it does while it lives (observe)."""

    POLL = 2.0

    def __init__(self, name, api, node, pidfile, reporter, node_ip=None):
        super().__init__(name=name, daemon=True)
        self.api = api
        self.node = node
        self.node_ip = node_ip
        self.pidfile = pidfile
        self.reporter = reporter
        self.pod_name = None
        self.argv, self.env, self.log_path = [], {}, None
        self.proc = None
        self.uid = None
        self.restarts = 0
        self.backoff = 1.0
        self.next_start = 0.0
        self.stopping = threading.Event()

    # --- hooks
    def label(self):
        raise NotImplementedError

    def new_pod(self):
        """Prepare a new pod (argv, env, log_path, and pod_name/uid if it already exists); False to
        try again at the next pass."""
        raise NotImplementedError

    def create_pod(self):
        """Publish the pod object once the process runs (sets uid); True when done."""
        return False

    def pod_path(self):
        raise NotImplementedError

    def accept(self, record, proc):
        """Adopt `proc` from pidfile `record` (set the state it carries)? Default: no."""
        return False

    def extras(self):
        return {}

    def observe(self, pod):
        """Each pass while the pod object is ours (pod = the object as the API has it)."""

    def restarted(self):
        """The process exited and was started again."""

    # --- shared
    def _log(self, event, detail):
        self.reporter.event(event, self.api.server, "%s: %s" % (self.label(), detail), force=True)

    def _adopt(self):
        try:
            with open(self.pidfile, encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            return
        proc = procs.Proc.adopt(record.get("process") or {})
        if proc is not None and self.accept(record, proc):
            self.proc, self.uid = proc, record.get("uid")
            self._log("adopt", "adopted running pid %d (pod %s uid %s)" % (proc.pid, record.get("pod"), self.uid))

    def _write_pidfile(self):
        data = {"pod": "%s" % self.pod_name, "uid": self.uid,
                "pid": self.proc.pid if self.proc else None,
                "process": self.proc.record() if self.proc else None}
        data.update(self.extras())
        common.atomic_write(self.pidfile, json.dumps(data, sort_keys=True) + "\n")

    def _start_process(self):
        self.proc = procs.start(self.argv, self.env, self.log_path)
        self._log("start", "started pid %d: %s" % (self.proc.pid, " ".join(self.argv)))

    def grace(self):
        return 30.0

    def stop_process(self, why):
        if self.proc is not None:
            how = self.proc.stop(self.grace())
            self._log("stop", "pid %d %s (%s)" % (self.proc.pid, how, why))
        self.proc = None

    def step(self):
        now = time.monotonic()
        if self.proc is None:
            # A new pod: prepare it, start the container, publish the pod object.
            if not self.new_pod():
                return
            self._start_process()
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
            self.restarted()
        if self.uid is None:
            if self.create_pod():
                self._write_pidfile()
            return
        answer = self.api.get(self.pod_path())
        current = answer.json.get("metadata", {}).get("uid") if answer.status == 200 and isinstance(answer.json, dict) else None
        if answer.status == 404 or (answer.status == 200 and current != self.uid):
            self._log("delete", "pod %s uid %s is gone: stopping its container" % (self.pod_name, self.uid))
            self.stop_process("pod deleted")
            self.uid = None
            self.restarts = 0
            self.step()
        elif answer.status == 200:
            self.observe(answer.json)

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.step()
            except OSError:
                pass
            except Exception as exc:  # keep the kubelet alive; record the bug
                self.reporter.event("error", self.api.server, "%s: %r" % (self.label(), exc), force=True)
            self.stopping.wait(max(0.1, self.POLL - (time.monotonic() - started)))


class KubeProxyPod(DaemonPod):
    def __init__(self, api, node, pods_dir, log_dir, reporter, node_ip=None):
        super().__init__("kube-proxy-pod", api, node, os.path.join(pods_dir, "daemonset_kube-system_kube-proxy.pid"),
                         reporter, node_ip)
        self.pod_name = "kube-proxy-" + node
        self.log_path = os.path.join(log_dir, "%s_kube-proxy.log" % self.pod_name)
        self.cm_hash = None
        self.argv = [PROXY_BIN, "--config=%s" % os.path.join(PROXY_DIR, "config.conf"),
                     "--hostname-override=%s" % node]
        self._adopt()

    def label(self):
        return "kube-proxy pod"

    def accept(self, record, proc):
        if proc.argv != self.argv:
            return False
        self.cm_hash = record.get("configmap_sha256")
        return True

    def extras(self):
        return {"pod": "kube-system/" + self.pod_name, "configmap_sha256": self.cm_hash}

    def pod_path(self):
        return PODS + "/" + self.pod_name

    def new_pod(self):
        # mount a fresh ConfigMap; the pod object is published once the process runs
        self.uid = None
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

    def create_pod(self):
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


def container_command(container):
    """`command`, or the image's entrypoint when it has none."""
    image = str(container.get("image") or "").split("@")[0]
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return list(container.get("command") or IMAGE_ENTRYPOINTS.get(repository, []))


def emulated_container(spec):
    """(container, program path) of the pod spec's first container whose program is emulated on
    this node, or (None, None)."""
    for container in spec.get("containers") or []:
        command = container_command(container)
        program = os.path.basename(str(command[0])) if command else ""
        path = os.path.join(BIN_DIR, program)
        if program in EMULATED_PROGRAMS and os.access(path, os.X_OK):
            return container, path
    return None, None


def _mem_total():
    """What the kubelet gives `resourceFieldRef: limits.memory` without a limit: the node's
    allocatable memory, here MemTotal."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return str(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return "0"


class Probe:
    """One httpGet probe of a container, run as the kubelet's prober does (success: HTTP 200-399;
    failureThreshold consecutive failures flip a ready container back)."""

    def __init__(self, spec, container, pod_ip):
        get = spec.get("httpGet") or {}
        port = get.get("port")
        for item in container.get("ports") or []:    # a named port
            if item.get("name") == port:
                port = item.get("containerPort")
        self.host = get.get("host") or pod_ip or "127.0.0.1"
        self.port = int(port) if str(port).isdigit() else None
        self.path = get.get("path") or "/"
        self.headers = {h.get("name"): h.get("value", "") for h in get.get("httpHeaders") or [] if h.get("name")}
        self.delay = float(spec.get("initialDelaySeconds") or 0)
        self.period = float(spec.get("periodSeconds") or 10)
        self.timeout = float(spec.get("timeoutSeconds") or 1)
        self.failures_allowed = int(spec.get("failureThreshold") or 3)
        self.failures = 0
        self.last = None

    def due(self, started, now, eager=False):
        if now - started < self.delay:
            return False
        return eager or self.last is None or now - self.last >= self.period

    def check(self, now):
        self.last = now
        if self.port is None:
            return False
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("GET", self.path, headers=self.headers)
            ok = 200 <= conn.getresponse().status < 400
        except (OSError, http.client.HTTPException):
            ok = False
        finally:
            conn.close()
        self.failures = 0 if ok else self.failures + 1
        return ok


class TemplatePod(DaemonPod):
    """The pod of DaemonSet <namespace>/<name> on this node."""

    POLL = 1.0
    KIND = "daemonset"
    DELETE_ON_RETIRE = True     # the DaemonSet is gone: the garbage collector's part

    def __init__(self, api, node, namespace, name, pods_dir, log_dir, reporter, node_ip=None):
        super().__init__("%s-%s-%s" % (self.KIND, namespace, name), api, node,
                         os.path.join(pods_dir, "%s_%s_%s.pid" % (self.KIND, namespace, name)), reporter, node_ip)
        self.namespace, self.ds_name = namespace, name
        self.log_dir = log_dir
        self.pod = None            # the pod object this process runs
        self.container = None
        self.started_at = time.monotonic()
        self.started = self.ready = False
        self.startup = self.readiness = None
        self.published = None      # (ready, restarts) last written to the pod's status
        self.started_wall = time.time()
        self.retiring = False
        self._adopt()
        self.adopted = self.proc is not None   # kept running across a kubelet restart

    def label(self):
        return "daemonset %s/%s pod" % (self.namespace, self.ds_name)

    def accept(self, record, proc):
        self.pod_name = (record.get("pod") or "/").split("/", 1)[1] or None
        return bool(self.pod_name)

    def extras(self):
        return {"pod": "%s/%s" % (self.namespace, self.pod_name)}

    def pod_path(self):
        return "/api/v1/namespaces/%s/pods/%s" % (self.namespace, self.pod_name)

    def grace(self):
        spec = (self.pod or {}).get("spec") or {}
        return max(0.0, min(float(spec.get("terminationGracePeriodSeconds", 30)), 30.0))

    # --- a new pod
    def find_pod(self):
        """The pod object to run (existing or made now), or None."""
        ds = self.api.get("/apis/apps/v1/namespaces/%s/daemonsets/%s" % (self.namespace, self.ds_name))
        node = self.api.get("/api/v1/nodes/" + self.node)
        if ds.status != 200 or node.status != 200 or not isinstance(ds.json, dict) or not isinstance(node.json, dict):
            return None
        ds = ds.json
        if not workloads.should_run(node.json, ds):
            return None
        return self._existing_pod(ds) or self._create_from_template(ds)

    def new_pod(self):
        pod = self.find_pod()
        if pod is None:
            return False
        container, program = emulated_container(pod.get("spec") or {})
        if container is None:
            return False
        env = self._container_env(pod, container)
        mount = self._service_account(pod)
        if mount is None:
            return False      # ContainerCreating: the token volume cannot be mounted yet
        if mount:
            # the container's /var/run/secrets/kubernetes.io/serviceaccount: a host process has no
            # mount namespace, so the emulated programs are told where the volume is
            env["KUBEHA_EMU_SERVICEACCOUNT_DIR"] = mount
        self.pod, self.container = pod, container
        self.pod_name, self.uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        self.argv = [program] + [procs.expand(x, env) for x in container_command(container)[1:]] + [
            procs.expand(x, env) for x in container.get("args") or []]
        self.env = env
        self.log_path = os.path.join(self.log_dir, "%s_%s.log" % (self.pod_name, container.get("name")))
        self.restarted()
        return True

    def _existing_pod(self, ds):
        answer = self.api.get("/api/v1/namespaces/%s/pods?labelSelector=%s&fieldSelector=spec.nodeName=%s" % (
            self.namespace, workloads.selector_query(ds), self.node))
        if answer.status != 200 or not isinstance(answer.json, dict):
            return None
        mine = [p for p in answer.json.get("items") or [] if workloads.owned_by(p, ds)]
        mine.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        return mine[0] if mine else None

    def _create_from_template(self, ds):
        template = (ds.get("spec") or {}).get("template") or {}
        meta = template.get("metadata") or {}
        spec = json.loads(json.dumps(template.get("spec") or {}))
        spec["nodeName"] = self.node
        tolerations = spec.setdefault("tolerations", [])
        extra = [workloads.HOST_NETWORK_TOLERATION] if spec.get("hostNetwork") else []
        for tol in workloads.DAEMON_TOLERATIONS + extra:
            if not any(t.get("key") == tol["key"] and t.get("effect") == tol["effect"] for t in tolerations):
                tolerations.append(dict(tol))
        labels = workloads.pod_labels(ds)
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": self.ds_name + "-", "namespace": self.namespace, "labels": labels,
                             "annotations": dict(meta.get("annotations") or {}),
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": self.ds_name,
                                                  "uid": ds["metadata"]["uid"], "controller": True,
                                                  "blockOwnerDeletion": True}]},
                "spec": spec}
        answer = self.api.post("/api/v1/namespaces/%s/pods" % self.namespace, body)
        if answer.status != 201 or not isinstance(answer.json, dict):
            self.reporter.event("error", self.api.server, "%s: create: HTTP %d" % (self.label(), answer.status))
            return None
        self._log("create", "created pod %s/%s (revision %s)" % (self.namespace, answer.json["metadata"]["name"],
                                                                 labels[workloads.REVISION_LABEL]))
        return answer.json

    def _container_env(self, pod, container):
        """The container's environment as the kubelet builds it: values (with $(VAR) expansion),
        fieldRef and resourceFieldRef limits.memory; other sources are not emulated (left unset)."""
        fields = {"spec.nodeName": self.node, "metadata.name": pod["metadata"]["name"],
                  "metadata.namespace": self.namespace, "metadata.uid": pod["metadata"]["uid"],
                  "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default"),
                  "status.hostIP": self.node_ip or "", "status.podIP": self.node_ip or ""}
        env = {}
        for item in container.get("env") or []:
            name, source = item.get("name"), item.get("valueFrom") or {}
            if not name:
                continue
            if "value" in item or not source:
                env[name] = procs.expand(item.get("value", ""), env)
            elif "fieldRef" in source and source["fieldRef"].get("fieldPath") in fields:
                env[name] = fields[source["fieldRef"]["fieldPath"]]
            elif (source.get("resourceFieldRef") or {}).get("resource") == "limits.memory":
                env[name] = _mem_total()
        return env

    def _service_account(self, pod):
        """Mount the pod's service-account token: '' when not automounted, the volume's directory,
        or None when it cannot be mounted (yet). The token is the legacy token Secret of the pod's
        service account (type kubernetes.io/service-account-token, annotation
        kubernetes.io/service-account.name), as kubelets mounted it before bound tokens."""
        spec = pod.get("spec") or {}
        if spec.get("automountServiceAccountToken") is False:
            return ""
        account = spec.get("serviceAccountName") or "default"
        answer = self.api.get("/api/v1/namespaces/%s/secrets?fieldSelector=type=%s" % (self.namespace, SA_TOKEN_TYPE))
        if answer.status != 200 or not isinstance(answer.json, dict):
            return None
        for secret in answer.json.get("items") or []:
            annotations = (secret.get("metadata") or {}).get("annotations") or {}
            data = secret.get("data") or {}
            if annotations.get("kubernetes.io/service-account.name") == account and "token" in data:
                break
        else:
            self.reporter.event("error", self.api.server, "%s: no token Secret for service account %s/%s" % (
                self.label(), self.namespace, account))
            return None
        directory = os.path.join(KUBELET_PODS_DIR, pod["metadata"]["uid"], "volumes", "kubernetes.io~secret",
                                 secret["metadata"]["name"])
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for key, value in data.items():
            common.atomic_write(os.path.join(directory, key), base64.b64decode(value), 0o600)
        return directory

    # --- a living pod
    def restarted(self):
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        probes = (self.container or {})
        self.startup = Probe(probes["startupProbe"], probes, self.node_ip) if probes.get("startupProbe") else None
        self.readiness = Probe(probes["readinessProbe"], probes, self.node_ip) if probes.get("readinessProbe") else None
        self.started = self.startup is None
        self.ready = False

    def observe(self, pod):
        if self.container is None:   # adopted after a kubelet restart: the spec comes from the pod
            self.pod = pod
            self.container, _ = emulated_container(pod.get("spec") or {})
            if self.container is None:
                return
            self.restarted()
            self.started = True      # it was running before the kubelet restarted
        now = time.monotonic()
        if not self.started and self.startup.due(self.started_at, now):
            self.started = self.startup.check(now)
        if self.started:
            if self.readiness is None:
                self.ready = True
            # while not ready, the kubelet re-runs the probe at every status sync (prober_manager
            # UpdatePodStatus triggers it); once ready, every periodSeconds
            elif self.readiness.due(self.started_at, now, eager=not self.ready):
                ok = self.readiness.check(now)
                if ok:
                    self.ready = True
                elif self.ready and self.readiness.failures >= self.readiness.failures_allowed:
                    self.ready = False
        if self.published != (self.ready, self.restarts) or workloads.pod_ready(pod) != self.ready:
            self._publish(pod)

    def _publish(self, pod):
        name = self.container.get("name")
        status = running_status([(name, self.container.get("image", ""), self.restarts)],
                                self.started_wall, self.node_ip)
        ready = "True" if self.ready else "False"
        old = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
        for condition in status["conditions"]:
            if condition["type"] in ("Ready", "ContainersReady"):
                condition["status"] = ready
                if not self.ready:
                    condition["reason"] = "ContainersNotReady"
            previous = old.get(condition["type"])
            # a condition keeps its transition time while it holds, but not across a new container:
            # what a pod object says from before this kubelet started the process (a node rebooted
            # with the pod still bound to it) went through not-ready with the real kubelet
            carried = self.published is not None or self.adopted
            if previous and previous.get("status") == condition["status"] and carried:
                condition["lastTransitionTime"] = previous.get("lastTransitionTime")
        status["containerStatuses"][0]["ready"] = self.ready
        status["containerStatuses"][0]["started"] = self.started
        answer = self.api.put(self.pod_path() + "/status", dict(pod, status=status))
        if answer.status == 200:
            self.published = (self.ready, self.restarts)
            self._log("status", "pod %s/%s Ready=%s (restarts %d)" % (self.namespace, self.pod_name, ready,
                                                                   self.restarts))

    def retire(self):
        """The DaemonSet is gone: stop the container and delete the pod (the garbage collector's
        part), in this pod's own thread."""
        self.retiring = True
        self.stopping.set()

    def run(self):
        super().run()
        if not self.retiring:
            return     # kubelet exiting: the process keeps running, as containers do
        self.stop_process("%s deleted" % ("daemonset" if self.DELETE_ON_RETIRE else "pod"))
        try:
            if self.pod_name and self.DELETE_ON_RETIRE:
                self.api.delete(self.pod_path())
        except OSError:
            pass
        try:
            os.unlink(self.pidfile)
        except FileNotFoundError:
            pass


class DaemonSetPods(threading.Thread):
    """The kubelet's side of DaemonSets: every POLL seconds, one TemplatePod per DaemonSet whose
    pod template runs an emulated program; a TemplatePod whose DaemonSet is gone is retired."""

    def __init__(self, api, node, pods_dir, log_dir, reporter, node_ip=None):
        super().__init__(name="daemonset-pods", daemon=True)
        self.api, self.node, self.node_ip = api, node, node_ip
        self.pods_dir, self.log_dir, self.reporter = pods_dir, log_dir, reporter
        self.pods = {}
        self.stopping = threading.Event()

    def sync(self):
        answer = self.api.get(DAEMONSETS)
        if answer.status != 200 or not isinstance(answer.json, dict):
            return
        wanted = set()
        for ds in answer.json.get("items") or []:
            template = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
            if emulated_container(template)[0] is None:
                continue
            key = (ds["metadata"]["namespace"], ds["metadata"]["name"])
            wanted.add(key)
            if key not in self.pods:
                self.pods[key] = TemplatePod(self.api, self.node, key[0], key[1], self.pods_dir, self.log_dir,
                                             self.reporter, self.node_ip)
                self.pods[key].start()
        for key in set(self.pods) - wanted:
            self.pods.pop(key).retire()

    def run(self):
        while not self.stopping.is_set():
            try:
                self.sync()
            except OSError:
                pass
            except Exception as exc:  # keep the kubelet alive; record the bug
                self.reporter.event("error", self.api.server, "daemonset pods: %r" % exc, force=True)
            self.stopping.wait(POLL)
        for pod in self.pods.values():
            pod.stopping.set()        # kubelet exiting: leave the processes running


class BoundPod(TemplatePod):
    """Pod <namespace>/<name>, bound to this node by its controller (a ReplicaSet's): run as it is."""

    KIND = "pod"
    DELETE_ON_RETIRE = False    # it is gone already; its controller makes the next one

    def __init__(self, api, node, namespace, name, pods_dir, log_dir, reporter, node_ip=None):
        super().__init__(api, node, namespace, name, pods_dir, log_dir, reporter, node_ip)
        self.pod_name = name

    def label(self):
        return "pod %s/%s" % (self.namespace, self.ds_name)

    def accept(self, record, proc):
        return record.get("pod") == "%s/%s" % (self.namespace, self.ds_name)

    def find_pod(self):
        answer = self.api.get("/api/v1/namespaces/%s/pods/%s" % (self.namespace, self.ds_name))
        if answer.status != 200 or not isinstance(answer.json, dict):
            return None
        pod = answer.json
        if (pod.get("spec") or {}).get("nodeName") != self.node or pod["metadata"].get("deletionTimestamp"):
            return None
        if self.uid is not None and pod["metadata"].get("uid") != self.uid:
            return None      # same name, another pod: ControllerPods starts a new BoundPod for it
        return pod


def controller_pod(pod):
    """A pod made by a ReplicaSet (or a Deployment), not terminated, whose container is emulated here."""
    owner = workloads.owner(pod)
    return owner is not None and owner[0] in ("ReplicaSet", "Deployment") \
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") \
        and emulated_container(pod.get("spec") or {})[0] is not None


class ControllerPods(threading.Thread):
    """The kubelet's side of the pods controllers bind to this node (ReplicaSets', so Deployments'):
    every POLL seconds, one BoundPod per such pod whose program is emulated; a BoundPod whose pod
    object is gone is retired (its container stopped), and so is a container a pidfile left from
    before a kubelet restart whose pod went meanwhile."""

    def __init__(self, api, node, pods_dir, log_dir, reporter, node_ip=None):
        super().__init__(name="controller-pods", daemon=True)
        self.api, self.node, self.node_ip = api, node, node_ip
        self.pods_dir, self.log_dir, self.reporter = pods_dir, log_dir, reporter
        self.pods = {}
        self.swept = False
        self.stopping = threading.Event()

    def sync(self):
        answer = self.api.get("/api/v1/pods?fieldSelector=spec.nodeName=" + self.node)
        if answer.status != 200 or not isinstance(answer.json, dict):
            return
        wanted = set()
        for pod in answer.json.get("items") or []:
            if not controller_pod(pod):
                continue
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            wanted.add(key)
            if key not in self.pods:
                self.pods[key] = BoundPod(self.api, self.node, key[0], key[1], self.pods_dir, self.log_dir,
                                          self.reporter, self.node_ip)
                self.pods[key].start()
        if not self.swept:      # containers of pods deleted while the kubelet was down
            self.swept = True
            try:
                names = os.listdir(self.pods_dir)
            except OSError:
                names = []
            for name in names:
                parts = name[:-len(".pid")].split("_") if name.startswith("pod_") and name.endswith(".pid") else []
                key = tuple(parts[1:]) if len(parts) == 3 else None
                if key and key not in wanted and key not in self.pods and self._ours(name, key):
                    orphan = BoundPod(self.api, self.node, key[0], key[1], self.pods_dir, self.log_dir,
                                      self.reporter, self.node_ip)
                    orphan.retire()
                    orphan.start()
        for key in set(self.pods) - wanted:
            self.pods.pop(key).retire()

    def _ours(self, name, key):
        """A BoundPod's pidfile (not a static pod's that happens to be named alike)."""
        try:
            with open(os.path.join(self.pods_dir, name), encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            return False
        return record.get("pod") == "%s/%s" % key and "file" not in record

    def run(self):
        while not self.stopping.is_set():
            try:
                self.sync()
            except OSError:
                pass
            except Exception as exc:  # keep the kubelet alive; record the bug
                self.reporter.event("error", self.api.server, "controller pods: %r" % exc, force=True)
            self.stopping.wait(POLL)
        for pod in self.pods.values():
            pod.stopping.set()        # kubelet exiting: leave the processes running
