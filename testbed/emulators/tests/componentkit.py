"""Helpers of the kubelet / control-plane component tests: run an emulator script under its real
name with its log, status, pod and kube-proxy directories in a temporary tree."""

import json
import os
import signal
import socket
import subprocess
import time

EMU_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout=15.0, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return [p.decode() for p in handle.read().split(b"\0")[:-1]]
    except OSError:
        return None


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


class Tree:
    """Temporary directories standing in for /var/log/kubeha, /run/kubeha, /var/lib/kube-proxy."""

    def __init__(self, root):
        self.root = str(root)
        self.log_dir = os.path.join(self.root, "log")
        self.status_dir = os.path.join(self.root, "run")
        self.pods_dir = os.path.join(self.status_dir, "pods")
        self.proxy_dir = os.path.join(self.root, "kube-proxy")
        self.manifests = os.path.join(self.root, "manifests")
        os.makedirs(self.manifests, exist_ok=True)
        self.procs = []

    def env(self, **extra):
        env = dict(os.environ, KUBEHA_EMU_LOG_DIR=self.log_dir, KUBEHA_EMU_STATUS_DIR=self.status_dir,
                   KUBEHA_EMU_KUBE_PROXY_DIR=self.proxy_dir,
                   KUBEHA_EMU_KUBE_PROXY_BIN=os.path.join(EMU_DIR, "kube-proxy"))
        env.update(extra)
        return env

    def start(self, component, *args, **env):
        out = open(os.path.join(self.root, "%s.%d.out" % (component, len(self.procs))), "ab")
        proc = subprocess.Popen([os.path.join(EMU_DIR, component)] + list(args), env=self.env(**env),
                                stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.procs.append(proc)
        return proc

    def output(self, proc):
        index = self.procs.index(proc)
        name = [n for n in os.listdir(self.root) if n.endswith(".%d.out" % index)][0]
        with open(os.path.join(self.root, name), encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self, proc, timeout=10):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def status(self, component):
        with open(os.path.join(self.status_dir, component + ".json"), encoding="utf-8") as handle:
            return json.load(handle)

    def records(self, component):
        path = os.path.join(self.log_dir, component + ".log")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def pidfile(self, name):
        with open(os.path.join(self.pods_dir, name + ".pid"), encoding="utf-8") as handle:
            return json.load(handle)

    def write_manifest(self, name, pod):
        path = os.path.join(self.manifests, name)
        tmp = os.path.join(self.manifests, ".tmp-" + name)
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(pod, handle)
        os.replace(tmp, path)      # atomic, as Ansible writes files
        return path

    def cleanup(self):
        """Stop the emulators, then every pod process they left running (as a node reboot would)."""
        for proc in self.procs:
            self.stop(proc)
        if os.path.isdir(self.pods_dir):
            for name in os.listdir(self.pods_dir):
                if not name.endswith(".pid"):
                    continue
                try:
                    with open(os.path.join(self.pods_dir, name), encoding="utf-8") as handle:
                        record = json.load(handle)
                except (OSError, ValueError):
                    continue
                pids = [c.get("pid") for c in (record.get("containers") or {}).values()]
                pids.append((record.get("process") or {}).get("pid"))
                for pid in pids:
                    if pid and alive(pid):
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except OSError:
                            pass


def pod(name, command, args=(), namespace="kube-system", env=None):
    container = {"name": name, "image": "registry.k8s.io/%s:v1.33.0" % name, "command": list(command),
                 "args": list(args)}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"component": name}},
            "spec": {"hostNetwork": True, "containers": [container]}}


def kubelet_config(tree, port):
    path = os.path.join(tree.root, "config.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
                     "staticPodPath: %s\nhealthzPort: %d\nhealthzBindAddress: 127.0.0.1\n"
                     % (tree.manifests, port))
    return path
