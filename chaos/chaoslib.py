"""Shared helpers of kubeha's chaos suites: the test bed's hosts, state snapshots, the probe,
ansible-playbook runs (with the kubeha_chaos callback), invariants and state comparison.

Nothing here prints file contents: snapshots hold checksums; the few file contents kept for the
final-state comparison (kubeconfigs, kubeadm configs, ConfigMaps' data) stay in memory and only
paths and line numbers are ever reported. Key files are never read on the controller."""

import base64
import difflib
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAOS = os.path.join(REPO, "chaos")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
MODULES_DIR = os.path.join(REPO, "ansible", "ansible_collections", "kubeha", "control_plane", "plugins", "modules")

LB = "kubeha-lb"
MASTERS = ["kubeha-master1", "kubeha-master2", "kubeha-master3"]
WORKERS = ["kubeha-worker1", "kubeha-worker2"]
NODES = MASTERS + WORKERS
IPS = {"kubeha-lb": "172.30.0.10", "kubeha-master1": "172.30.0.11", "kubeha-master2": "172.30.0.12",
       "kubeha-master3": "172.30.0.13", "kubeha-worker1": "172.30.0.21", "kubeha-worker2": "172.30.0.22"}
VIP = "172.30.0.10:6443"
# The name every apiserver certificate carries before and after the conversion (kubeadm puts it in
# every serving cert): the probe verifies the chain against the cluster CA AND this name.
TLS_NAME = "kubernetes"
CONFIGMAPS = [("kube-system", "kube-proxy"), ("kube-system", "kubeadm-config"), ("kube-public", "cluster-info")]
# every file kubeha may change on a node: kubeadm's files, root's and the users' kubeconfigs
SNAP_DIRS = ["/etc/kubernetes", "/root/.kube", "/home"]


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(host, script, check=True, timeout=120, user=None, stdin=None):
    """Run a shell script in a test-bed container; returns CompletedProcess (text)."""
    argv = ["docker", "exec", "-i"]
    if user:
        argv += ["-u", user]
    argv += [host, "bash", "-c", script]
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{host}: `{script[:120]}` rc={proc.returncode}: {proc.stderr.strip()[:400]}")
    return proc


# ------------------------------------------------------------------------------------------------
# Snapshots
_SNAP_PY = r"""
import hashlib, json, os, sys
out = {}
SKIP = {"/root/.kube/cache", "/root/.kube/http-cache"}
for top in sys.argv[1:]:
    if not os.path.lexists(top):
        continue
    for root, dirs, files in os.walk(top):
        # kubectl's discovery/HTTP caches (~/.kube/cache, ~/.kube/http-cache): written by every
        # kubectl call (the suites' and the playbooks'), rebuilt by kubectl, not configuration
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP]
        dirs.sort()
        for name in sorted(dirs + files):
            p = os.path.join(root, name)
            st = os.lstat(p)
            if os.path.islink(p):
                out[p] = {"link": os.readlink(p), "mode": oct(st.st_mode & 0o7777), "uid": st.st_uid, "gid": st.st_gid}
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    out[p] = {"sha256": hashlib.sha256(f.read()).hexdigest(), "mode": oct(st.st_mode & 0o7777),
                              "uid": st.st_uid, "gid": st.st_gid, "size": st.st_size}
            elif os.path.isdir(p):
                out[p] = {"dir": True, "mode": oct(st.st_mode & 0o7777), "uid": st.st_uid, "gid": st.st_gid}
print(json.dumps(out))
"""


def snapshot_files(hosts=None, dirs=None):
    """{host: {path: {sha256|link|dir, mode, uid, gid}}} of every file under dirs on every host."""
    hosts = hosts or NODES
    dirs = dirs or SNAP_DIRS
    result = {}
    for host in hosts:
        proc = sh(host, "python3 -c " + shlex.quote(_SNAP_PY) + " " + " ".join(map(shlex.quote, dirs)))
        result[host] = json.loads(proc.stdout)
    return result


def kubectl(args, host="kubeha-master1", timeout=60, check=True):
    return sh(host, "kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=10s " + args,
              check=check, timeout=timeout)


def snapshot_configmaps():
    """{ns/name: {resourceVersion, data_sha256}} of every ConfigMap in the cluster, and
    {Kind/ns/name: {generation, spec_sha256}} of every DaemonSet and Deployment (their status and
    resourceVersion change as the controllers work; their spec only when someone edits it)."""
    last = None
    for _ in range(20):
        proc = kubectl("get configmaps -A -o json", check=False)
        workloads = kubectl("get daemonsets,deployments -A -o json", check=False)
        if proc.returncode == 0 and workloads.returncode == 0:
            items = json.loads(proc.stdout)["items"]
            out = {f"{i['metadata']['namespace']}/{i['metadata']['name']}": {
                "resourceVersion": i["metadata"]["resourceVersion"],
                "data_sha256": hashlib.sha256(json.dumps(i.get("data") or {}, sort_keys=True).encode()).hexdigest()}
                for i in items}
            for i in json.loads(workloads.stdout)["items"]:
                out[f"{i['kind']}/{i['metadata']['namespace']}/{i['metadata']['name']}"] = {
                    "generation": i["metadata"].get("generation"),
                    "spec_sha256": hashlib.sha256(json.dumps(i.get("spec") or {}, sort_keys=True).encode()).hexdigest()}
            return out
        last = (proc.stderr.strip() or workloads.stderr.strip())[:300]
        time.sleep(2)
    raise RuntimeError(f"cannot list ConfigMaps and workloads: {last}")


def configmap_data(ns, name):
    last = None
    for _ in range(20):
        proc = kubectl(f"-n {ns} get configmap {name} -o json", check=False)
        if proc.returncode == 0:
            return json.loads(proc.stdout).get("data") or {}
        last = proc.stderr.strip()[:300]
        time.sleep(2)
    raise RuntimeError(f"cannot read ConfigMap {ns}/{name}: {last}")


def diff_snapshots(before, after, ignore=None):
    """Paths that differ (added, removed, changed content/mode/owner), per host. ignore: regex."""
    rx = re.compile(ignore) if ignore else None
    out = []
    for host in sorted(set(before) | set(after)):
        b, a = before.get(host, {}), after.get(host, {})
        for path in sorted(set(b) | set(a)):
            if rx and rx.search(path):
                continue
            if path not in b:
                out.append(f"{host}:{path} added")
            elif path not in a:
                out.append(f"{host}:{path} removed")
            elif b[path] != a[path]:
                what = [k for k in sorted(set(b[path]) | set(a[path])) if b[path].get(k) != a[path].get(k)]
                out.append(f"{host}:{path} changed ({','.join(what)})")
    return out


def diff_configmaps(before, after):
    out = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            what = key if key.startswith(("DaemonSet/", "Deployment/")) else f"ConfigMap {key}"
            out.append(f"{what}: {before.get(key)} -> {after.get(key)}")
    return out


# ------------------------------------------------------------------------------------------------
# Final-state comparison across runs (and across bring-ups of the test bed): the CHANGE each file
# went through (a line diff from the same bring-up's initial state) must be identical.
# Files compared: every non-key file under /etc/kubernetes and /root/.kube. New certificates
# (apiserver.crt/.key) are compared by their SANs, issuer and key match instead; backups excluded.
CONTENT_EXCLUDE = re.compile(r"(\.key$|-key\.pem$|apiserver\.crt$|~$|\.kubeha-swap|/\.[^/]*$|\.pem$)")
KEY_FILES = re.compile(r"(\.key$|-key\.pem$|\.pem$)")


def read_texts(hosts=None):
    """{host: {path: text}} of every comparable (non-key) file. In memory only."""
    hosts = hosts or NODES
    texts = {}
    for host in hosts:
        snap = snapshot_files([host])[host]
        paths = [p for p, m in snap.items() if "sha256" in m and not CONTENT_EXCLUDE.search(p)]
        script = ("import json,sys\nout={}\nfor p in sys.argv[1:]:\n    out[p]=open(p,'rb').read().decode('utf-8','replace')\n"
                  "print(json.dumps(out))")
        proc = sh(host, "python3 -c " + shlex.quote(script) + " " + " ".join(map(shlex.quote, paths)))
        texts[host] = json.loads(proc.stdout)
    return texts


def cert_facts(hosts=None):
    """{host: {sans, issuer, pair_match, chains}} of apiserver.crt on each master (no key material)."""
    hosts = hosts or MASTERS
    script = r"""
set -e
S=/etc/kubernetes/ssl
c=$(openssl x509 -in $S/apiserver.crt -noout -pubkey | sha256sum | cut -c1-64)
k=$(openssl pkey -in $S/apiserver.key -pubout 2>/dev/null | sha256sum | cut -c1-64)
echo "match=$([ "$c" = "$k" ] && echo yes || echo no)"
echo "chains=$(openssl verify -CAfile $S/ca.crt $S/apiserver.crt >/dev/null 2>&1 && echo yes || echo no)"
echo "issuer=$(openssl x509 -in $S/apiserver.crt -noout -issuer)"
echo "sans=$(openssl x509 -in $S/apiserver.crt -noout -ext subjectAltName | tail -n +2 | tr -d ' ')"
echo "keymode=$(stat -c '%a %U %G' $S/apiserver.key)"
"""
    out = {}
    for host in hosts:
        proc = sh(host, script)
        facts = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
        facts["sans"] = sorted(facts.get("sans", "").split(","))
        out[host] = facts
    return out


def text_delta(initial, final):
    """{host:path: [diff lines]} of every file whose content changed, + added/removed files."""
    delta = {}
    for host in sorted(set(initial) | set(final)):
        a, b = initial.get(host, {}), final.get(host, {})
        for path in sorted(set(a) | set(b)):
            if path not in a:
                delta[f"{host}:{path}"] = ["<added>"]
            elif path not in b:
                delta[f"{host}:{path}"] = ["<removed>"]
            elif a[path] != b[path]:
                delta[f"{host}:{path}"] = [l for l in difflib.unified_diff(
                    a[path].splitlines(), b[path].splitlines(), lineterm="", n=0)][2:]
    return delta


def configmap_delta(initial, final):
    delta = {}
    for key in sorted(set(initial) | set(final)):
        a, b = initial.get(key, {}), final.get(key, {})
        for field in sorted(set(a) | set(b)):
            if a.get(field) != b.get(field):
                delta[f"{key}:{field}"] = [l for l in difflib.unified_diff(
                    (a.get(field) or "").splitlines(), (b.get(field) or "").splitlines(), lineterm="", n=0)][2:]
    return delta


def state_capture():
    """What a final-state comparison needs (in memory)."""
    return {
        "texts": read_texts(),
        "certs": cert_facts(),
        "configmaps": {f"{ns}/{name}": configmap_data(ns, name) for ns, name in CONFIGMAPS},
        "files": snapshot_files(),
    }


def compare_final(ref_initial, ref_final, initial, final):
    """Differences between the change of a reference run and the change of a run under test.
    Reports only paths, never contents."""
    problems = []
    d_ref = text_delta(ref_initial["texts"], ref_final["texts"])
    d_run = text_delta(initial["texts"], final["texts"])
    for key in sorted(set(d_ref) | set(d_run)):
        if d_ref.get(key) != d_run.get(key):
            problems.append(f"{key}: change differs from the reference run "
                            f"({len(d_ref.get(key, []))} vs {len(d_run.get(key, []))} diff lines)")
    c_ref = configmap_delta(ref_initial["configmaps"], ref_final["configmaps"])
    c_run = configmap_delta(initial["configmaps"], final["configmaps"])
    for key in sorted(set(c_ref) | set(c_run)):
        if c_ref.get(key) != c_run.get(key):
            problems.append(f"ConfigMap {key}: change differs from the reference run")
    for host in MASTERS:
        r, f = ref_final["certs"][host], final["certs"][host]
        for field in ("sans", "match", "chains", "keymode"):
            if r.get(field) != f.get(field):
                problems.append(f"{host}: apiserver.crt {field} differs from the reference run")
    # modes and owners of every file (content of certs/keys excluded above)
    for host in NODES:
        for path, meta in final["files"][host].items():
            ref_meta = ref_final["files"][host].get(path)
            if re.search(r"~$|\.kubeha-swap", path):
                problems.append(f"{host}:{path}: backup/journal left behind")
                continue
            if ref_meta is None:
                problems.append(f"{host}:{path}: not present after the reference run")
            elif (ref_meta.get("mode"), ref_meta.get("uid"), ref_meta.get("gid")) != (meta.get("mode"), meta.get("uid"), meta.get("gid")):
                problems.append(f"{host}:{path}: mode/owner differs from the reference run")
        for path in ref_final["files"][host]:
            if path not in final["files"][host]:
                problems.append(f"{host}:{path}: missing (present after the reference run)")
    return problems


# ------------------------------------------------------------------------------------------------
# Invariants that must hold at any moment, checked after every kill.
HAPROXY_STATE = r"""
import socket
s = socket.socket(socket.AF_UNIX); s.connect("/run/haproxy/admin.sock")
s.sendall(b"show servers state kube_apiserver\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
for l in data.decode().splitlines():
    f = l.split()
    if l and not l.startswith("#") and len(f) > 5:
        print(f[3], "UP" if f[5] == "2" else "DOWN", "READY" if f[6] == "0" else "ADMIN-" + f[6])
"""


def haproxy_state(admin=False):
    """{server: "UP"|"DOWN"} (operational state from the health check); admin=True: {server:
    (op, admin)} where admin is READY or ADMIN-<flags> (e.g. drained through the admin socket)."""
    proc = sh(LB, "python3 -c " + shlex.quote(HAPROXY_STATE))
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    if admin:
        return {r[0]: (r[1], r[2]) for r in rows}
    return {r[0]: r[1] for r in rows}


def invariants(expect_manifests, wait=90, final=False):
    """All apiservers UP behind the VIP, every master's key/cert pair matching and chaining to the
    CA, no stray file in /etc/kubernetes/manifests. Waits up to `wait` s for readiness.
    At most one master may be drained in HAProxy (a run killed between kubeha's drain and ready of
    the master it was changing: the next run puts it back); final=True: none may be."""
    problems = []
    deadline = time.time() + wait
    while True:
        state = haproxy_state()
        down = [h for h in MASTERS if state.get(h) != "UP"]
        if not down or time.time() > deadline:
            break
        time.sleep(1)
    if down:
        problems.append(f"apiservers not UP behind the VIP after {wait} s: {down}")
    admin = haproxy_state(admin=True)
    drained = [h for h in MASTERS if admin.get(h, ("", ""))[1] != "READY"]
    if len(drained) > (0 if final else 1):
        problems.append(f"masters taken out of HAProxy (admin state): {drained}")
    for host, facts in cert_facts().items():
        if facts.get("match") != "yes":
            problems.append(f"{host}: apiserver.key does not match apiserver.crt")
        if facts.get("chains") != "yes":
            problems.append(f"{host}: apiserver.crt does not chain to ca.crt")
    for host in NODES:
        proc = sh(host, "ls -A /etc/kubernetes/manifests")
        names = sorted(proc.stdout.split())
        if names != sorted(expect_manifests[host]):
            problems.append(f"{host}: /etc/kubernetes/manifests holds {names}, expected {sorted(expect_manifests[host])}")
    return problems


def manifests_now():
    return {h: sorted(sh(h, "ls -A /etc/kubernetes/manifests").stdout.split()) for h in NODES}


def wait_remote_modules_gone(timeout=180):
    """After ansible-playbook was killed, the module it ran in a container may still be running
    (docker exec's client died, the process inside did not). Wait for every one to end."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        busy = []
        for host in NODES:
            # binary modules run from ~/.ansible/tmp; pipelined Python modules (pipelining=True)
            # run as `/bin/sh -c '/usr/bin/python3 && sleep 0'` with the module on stdin
            proc = sh(host, "ps -eo args | grep -cE '[.]ansible/tmp|&& [s]leep 0' || true", check=False)
            if proc.stdout.strip() not in ("", "0"):
                busy.append(host)
        if not busy:
            return []
        time.sleep(1)
    return busy


# ------------------------------------------------------------------------------------------------
# Probe and playbook runs
class Probe:
    """chaos/probe.py in the background through the VIP; stop() returns its report."""

    def __init__(self, workdir, name, rate=12.0, max_seconds=1800):
        self.workdir = workdir
        self.report_path = os.path.join(workdir, f"probe-{name}.json")
        kubeconfig = admin_kubeconfig(workdir)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(CHAOS, "probe.py"), "--kubeconfig", kubeconfig, "--endpoint", VIP,
             "--tls-server-name", TLS_NAME, "--rate", str(rate), "--max-seconds", str(max_seconds),
             "--out", self.report_path],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        with open(self.report_path, encoding="utf-8") as handle:
            report = json.load(handle)
        report["stdout"] = out.strip()
        return report


def admin_kubeconfig(workdir):
    """A copy of master1's original admin.conf for the probe (0600, in the 0700 work dir; it never
    leaves it). Its server is not used: the probe always goes through the VIP."""
    path = os.path.join(workdir, "probe-admin.conf")
    if not os.path.exists(path):
        proc = subprocess.run(["docker", "exec", "kubeha-master1", "cat", "/etc/kubernetes/admin.conf"],
                              capture_output=True, check=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(proc.stdout)
    return path


def ansible_env(tasklog=None, kill_at=None, kill_task=None, inject_after=None, inject_cmd=None, stdout_callback=None):
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + ":" + env.get("PATH", "")
    env["ANSIBLE_CONFIG"] = os.path.join(REPO, "ansible.cfg")
    env["ANSIBLE_CALLBACK_PLUGINS"] = os.path.join(CHAOS, "callback_plugins")
    env["ANSIBLE_CALLBACKS_ENABLED"] = "kubeha_chaos"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    for key in ("KUBEHA_CHAOS_TASKLOG", "KUBEHA_CHAOS_KILL_AT", "KUBEHA_CHAOS_KILL_TASK", "KUBEHA_CHAOS_INJECT_AFTER",
                "KUBEHA_CHAOS_INJECT_CMD"):
        env.pop(key, None)
    if tasklog:
        env["KUBEHA_CHAOS_TASKLOG"] = tasklog
    if kill_at:
        env["KUBEHA_CHAOS_KILL_AT"] = str(kill_at)
    if kill_task:
        env["KUBEHA_CHAOS_KILL_TASK"] = "\t".join(map(str, kill_task))
    if inject_after:
        env["KUBEHA_CHAOS_INJECT_AFTER"] = inject_after
        env["KUBEHA_CHAOS_INJECT_CMD"] = inject_cmd
    if stdout_callback:
        env["ANSIBLE_STDOUT_CALLBACK"] = stdout_callback
    return env


def run_playbook(playbook, inventory, outfile, extra=(), timeout=1800, **envargs):
    """ansible-playbook in its own session (so the callback may kill its whole process group).
    Output goes to outfile (scanned for secrets later). Returns (rc, seconds)."""
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, os.path.join(REPO, playbook), *extra]
    start = time.time()
    with open(outfile, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=ansible_env(**envargs), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
    return rc, time.time() - start


def fast_path_fallbacks(outfile):
    """The lines of an ansible-playbook output where the kubeha action plugin warned that it ran a
    module the normal way (a copy of the binary per call) instead of its cached binary."""
    with open(outfile, encoding="utf-8", errors="replace") as handle:
        return [line.strip() for line in handle if "kubeha fast path not used" in line]


def tasklog_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [l.rstrip("\n").split("\t") for l in handle if l.strip()]


def write_inventory(layout, path, lb_drain=True):
    """Kubespray-format YAML inventory of the test bed, from the molecule scenario that builds it
    (hosts, groups, group_vars, host_vars), over SSH as the test bed's inventories connect."""
    import yaml
    with open(os.path.join(REPO, "molecule", layout, "molecule.yml"), encoding="utf-8") as handle:
        scenario = yaml.safe_load(handle)
    inv = scenario["provisioner"]["inventory"]
    host_vars = inv.get("host_vars") or {}
    groups = {}
    for platform in scenario["platforms"]:
        for group in platform.get("groups") or []:
            groups.setdefault(group, []).append(platform["name"])
    # over SSH as the sudo user, as the test bed's own inventories (testbed/inventory/group_vars/all/testbed.yml)
    with open(os.path.join(REPO, "testbed", "inventory", "group_vars", "all", "testbed.yml"), encoding="utf-8") as handle:
        conn = yaml.safe_load(handle)
    group_vars = dict(conn, **((inv.get("group_vars") or {}).get("all") or {}))
    group_vars["kubeha_testbed_ssh_dir"] = os.path.join(REPO, ".cache", "bed", "ssh")
    # what an operator with this HAProxy adds: kubeha drains each master there around its change
    if lb_drain:
        group_vars["kubeha_lb_haproxy_host"] = LB
    hosts = {}
    for p in scenario["platforms"]:
        hv = dict(host_vars.get(p["name"]) or {})
        hv["ansible_host"] = hv["ip"]
        hosts[p["name"]] = hv
    out = {"all": {"hosts": hosts,
                   "vars": group_vars,
                   "children": {g: {"hosts": {h: None for h in members}} for g, members in groups.items()}}}
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(out, handle, sort_keys=False)
    return path


def wait_all_up(timeout=180):
    """Until HAProxy sees every master UP (after a case or an injection)."""
    deadline = time.time() + timeout
    state = {}
    while time.time() < deadline:
        try:
            state = haproxy_state()
        except RuntimeError:
            state = {}
        if all(state.get(h) == "UP" for h in MASTERS):
            return True
        time.sleep(1)
    return False
