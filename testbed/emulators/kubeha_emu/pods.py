"""Static pods: each file in staticPodPath (not starting with '.') is a Pod; its containers run as
host processes. One worker thread per manifest file, like the kubelet's pod workers.

Pidfile `<pods_dir>/<manifest-file>.pid` (JSON): {"file", "pod", "sha256", "pid" (first
container), "containers": {name: {"pid", "starttime", "argv"}}}. `sha256` is the hash of the
decoded manifest (canonical JSON), so only a change of the Pod object restarts it, as the real
kubelet derives a static pod's UID from the decoded object."""

import hashlib
import json
import os
import threading
import time

import yaml

from . import common, procs

BACKOFF_START = 1.0
BACKOFF_MAX = 10.0
BACKOFF_RESET = 30.0


def load_manifest(path):
    """(pod, sha256) or raises ValueError."""
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        pod = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ValueError("not YAML/JSON: %s" % exc) from exc
    if not isinstance(pod, dict) or pod.get("kind", "Pod") != "Pod":
        raise ValueError("not a Pod")
    meta = pod.get("metadata") or {}
    if not meta.get("name"):
        raise ValueError("Pod without metadata.name")
    containers = (pod.get("spec") or {}).get("containers")
    if not isinstance(containers, list) or not containers:
        raise ValueError("Pod without spec.containers")
    digest = hashlib.sha256(json.dumps(pod, sort_keys=True, default=str).encode()).hexdigest()
    return pod, digest


# The image a container runs, handed to its process: an emulated program has no image of its own, so
# the one the manifest names tells it what it is (kube-apiserver reports the image tag as its
# version, apiserver/discovery.py), as the real binary in that image would.
IMAGE_ENV = "KUBEHA_EMU_IMAGE"


def container_argv(container):
    env = {}
    for item in container.get("env") or []:
        if isinstance(item, dict) and item.get("name") and "value" in item:
            env[item["name"]] = procs.expand(item.get("value", ""), env)
    argv = [procs.expand(x, env) for x in (container.get("command") or [])]
    argv += [procs.expand(x, env) for x in (container.get("args") or [])]
    if container.get("image") and IMAGE_ENV not in env:
        env[IMAGE_ENV] = str(container["image"])
    return argv, env


def read_pidfile(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


class Container:
    def __init__(self, name, argv, env):
        self.name = name
        self.argv = argv
        self.env = env
        self.proc = None
        self.backoff = BACKOFF_START
        self.next_start = 0.0
        self.restarts = 0


class PodWorker(threading.Thread):
    """Keeps the processes of one manifest file in line with its desired content."""

    def __init__(self, filename, pods_dir, log_dir, reporter, adopt_record=None, on_change=None):
        super().__init__(name="pod-" + filename, daemon=True)
        self.filename = filename
        self.pidfile = os.path.join(pods_dir, filename + ".pid")
        self.log_dir = log_dir
        self.reporter = reporter
        self.adopt_record = adopt_record
        self.on_change = on_change
        self.lock = threading.Lock()
        self.desired = None          # (pod, digest) or None = remove
        self.desired_set = False
        self.pod = None
        self.digest = None
        self.containers = []
        self.shutdown = threading.Event()   # kubelet exiting: leave processes running
        self.finished = threading.Event()

    # -- called by the kubelet loop
    def set_desired(self, pod, digest):
        with self.lock:
            self.desired = (pod, digest) if pod is not None else None
            self.desired_set = True

    @property
    def pod_name(self):
        return (self.pod or {}).get("metadata", {}).get("name")

    def running(self):
        return bool(self.containers) and all(c.proc is not None and c.proc.alive() for c in self.containers)

    # -- worker
    def run(self):
        while not self.shutdown.is_set():
            with self.lock:
                desired = self.desired
                have_desired = self.desired_set
            if have_desired:
                if desired is None:
                    self._stop_all("manifest removed")
                    try:
                        os.unlink(self.pidfile)
                    except FileNotFoundError:
                        pass
                    self._changed()
                    break
                pod, digest = desired
                if digest != self.digest:
                    self._switch(pod, digest)
                self._keep_running()
            self.shutdown.wait(0.2)
        self.finished.set()

    def _changed(self):
        if self.on_change:
            self.on_change(self)

    def _log(self, event, detail):
        self.reporter.event(event, None, "%s: %s" % (self.filename, detail), force=True)

    def _switch(self, pod, digest):
        record, self.adopt_record = self.adopt_record, None
        old_containers = self.containers
        if self.digest is None and record:
            old_containers = self._from_record(record)
            if record.get("sha256") == digest:
                specs = {c.get("name"): c for c in pod["spec"]["containers"]}
                adopted = [c for c in old_containers
                           if c.name in specs and c.proc is not None and container_argv(specs[c.name])[0] == c.argv]
                if len(adopted) == len(old_containers) == len(specs):
                    self.pod, self.digest, self.containers = pod, digest, adopted
                    for container in adopted:
                        container.env = container_argv(specs[container.name])[1]
                    self._log("adopt", "pod %s: adopted running processes %s" % (
                        self.pod_name, ", ".join("%s=%d" % (c.name, c.proc.pid) for c in adopted)))
                    self._write_pidfile()
                    self._changed()
                    return
        if old_containers:
            self.containers = old_containers
            reason = "manifest changed" if self.digest or record else "stale processes"
            self._stop_all(reason)
        self.pod, self.digest = pod, digest
        self.containers = []
        for spec in pod["spec"]["containers"]:
            argv, env = container_argv(spec)
            self.containers.append(Container(spec.get("name") or "container", argv, env))
        self._changed()

    def _from_record(self, record):
        containers = []
        for name, item in (record.get("containers") or {}).items():
            container = Container(name, list(item.get("argv") or []), {})
            container.proc = procs.Proc.adopt(item)
            if container.proc is not None:
                container.proc.started = time.monotonic()
            containers.append(container)
        return containers

    def _grace(self):
        spec = (self.pod or {}).get("spec") or {}
        try:
            return max(0.0, min(float(spec.get("terminationGracePeriodSeconds", 30)), 30.0))
        except (TypeError, ValueError):
            return 30.0

    def _stop_all(self, reason):
        for container in self.containers:
            if container.proc is not None and container.proc.alive():
                how = container.proc.stop(self._grace())
                self._log("stop", "%s/%s pid %d %s (%s)" % (self.pod_name or "?", container.name,
                                                            container.proc.pid, how, reason))
            container.proc = None
        self.containers = []

    def _keep_running(self):
        now = time.monotonic()
        started_any = False
        for container in self.containers:
            proc = container.proc
            if proc is not None and proc.alive():
                if now - proc.started >= BACKOFF_RESET:
                    container.backoff = BACKOFF_START
                continue
            if proc is not None:
                ran = now - proc.started
                self._log("exit", "%s/%s pid %d exited (code %s) after %.1fs; restart in %.0fs" % (
                    self.pod_name, container.name, proc.pid, proc.exit_code(), ran,
                    BACKOFF_START if ran >= BACKOFF_RESET else container.backoff))
                if ran >= BACKOFF_RESET:
                    container.backoff = BACKOFF_START
                container.next_start = now + container.backoff
                container.backoff = min(container.backoff * 2, BACKOFF_MAX)
                container.proc = None
                container.restarts += 1
            if now < container.next_start:
                continue
            if not container.argv:
                if container.next_start != float("inf"):
                    self._log("error", "%s/%s has no command: cannot run it" % (self.pod_name, container.name))
                container.next_start = float("inf")
                continue
            log_path = os.path.join(self.log_dir, "%s_%s.log" % (self.pod_name, container.name))
            try:
                container.proc = procs.start(container.argv, container.env, log_path)
            except OSError as exc:
                self._log("error", "%s/%s cannot start %s: %s" % (self.pod_name, container.name,
                                                                 container.argv[0], exc))
                container.next_start = now + container.backoff
                container.backoff = min(container.backoff * 2, BACKOFF_MAX)
                continue
            started_any = True
            self._log("start", "%s/%s pid %d: %s" % (self.pod_name, container.name, container.proc.pid,
                                                    " ".join(container.argv)))
        if started_any:
            self._write_pidfile()
            self._changed()

    def _write_pidfile(self):
        containers = {c.name: c.proc.record() for c in self.containers if c.proc is not None}
        first = next(iter(containers.values()), {})
        data = {"file": self.filename, "pod": "%s/%s" % (
            (self.pod.get("metadata") or {}).get("namespace") or "default", self.pod_name),
            "sha256": self.digest, "pid": first.get("pid"), "containers": containers}
        common.atomic_write(self.pidfile, json.dumps(data, sort_keys=True) + "\n")


class StaticPods:
    """Scans staticPodPath every second and drives one PodWorker per manifest file."""

    def __init__(self, manifest_dir, pods_dir, log_dir, reporter, on_change=None):
        self.manifest_dir = manifest_dir
        self.pods_dir = pods_dir
        self.log_dir = log_dir
        self.reporter = reporter
        self.on_change = on_change
        self.workers = {}
        self.errors = {}
        self.records = {}
        os.makedirs(pods_dir, exist_ok=True)
        # Pidfiles left by a previous kubelet: adopt or clean up (kube-proxy has its own prefix).
        for name in sorted(os.listdir(pods_dir)):
            if name.endswith(".pid") and not name.startswith("."):
                record = read_pidfile(os.path.join(pods_dir, name))
                if record is not None and record.get("file") == name[:-4]:
                    self.records[name[:-4]] = record

    def manifests(self):
        found = {}
        try:
            names = sorted(os.listdir(self.manifest_dir))
        except OSError as exc:
            self.reporter.event("error", None, "staticPodPath %s: %s" % (self.manifest_dir, exc))
            return found
        for name in names:
            path = os.path.join(self.manifest_dir, name)
            if name.startswith(".") or not os.path.isfile(path):
                continue
            try:
                found[name] = load_manifest(path)
                self.errors.pop(name, None)
            except (OSError, ValueError) as exc:
                if self.errors.get(name) != str(exc):
                    self.errors[name] = str(exc)
                    self.reporter.event("error", None, "manifest %s: %s" % (path, exc), force=True)
        return found

    def sync(self):
        found = self.manifests()
        for name, (pod, digest) in found.items():
            worker = self.workers.get(name)
            if worker is None or worker.finished.is_set():
                worker = PodWorker(name, self.pods_dir, self.log_dir, self.reporter,
                                   adopt_record=self.records.pop(name, None), on_change=self.on_change)
                self.workers[name] = worker
                worker.set_desired(pod, digest)
                worker.start()
            else:
                worker.set_desired(pod, digest)
        for name, worker in list(self.workers.items()):
            if name not in found:
                worker.set_desired(None, None)
                if worker.finished.is_set():
                    del self.workers[name]
        # Processes recorded for manifests that are gone: stop them, as the kubelet kills the
        # containers of pods it no longer has.
        for name, record in list(self.records.items()):
            if name in found:
                continue
            del self.records[name]
            worker = PodWorker(name, self.pods_dir, self.log_dir, self.reporter, adopt_record=None)
            worker.pod = {"metadata": {"name": (record.get("pod") or "?/?").split("/")[-1]}}
            worker.containers = worker._from_record(record)
            worker.set_desired(None, None)
            self.workers[name] = worker
            worker.start()

    def pods(self):
        """{filename: (pod, digest, running)} of the workers that have a desired pod."""
        result = {}
        for name, worker in self.workers.items():
            if worker.pod is not None and worker.digest is not None and not worker.finished.is_set():
                result[name] = (worker.pod, worker.digest, worker.running())
        return result

    def stop(self):
        for worker in self.workers.values():
            worker.shutdown.set()
