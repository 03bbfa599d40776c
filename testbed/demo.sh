#!/usr/bin/env bash
# The whole story from scratch on layout LAYOUT (pinned | kubespray | kubeadm | kubeadm-dns | novip): the module binaries built in
# the background while the Python tools, the node image and the unconverted cluster come up (timed),
# snapshot where every client points, convert (playbooks/convert.yml), snapshot again, run the
# product's failover drill (playbooks/drill.yml), print a per-host before/after table and the
# drill's result.
# Snapshots: reports/demo/<layout>/{before,after}.json (servers and connection states only: no keys).
set -uo pipefail
cd "$(dirname "$0")/.."
layout=${1:-${LAYOUT:-pinned}}
out=reports/demo/$layout
mkdir -p "$out"

snapshot() {   # JSON: per host, the server of each kubeconfig and of each running component
    python3 - <<'PY'
import json, subprocess, yaml
from urllib.parse import urlsplit
HOSTS = ["kubeha-master1", "kubeha-master2", "kubeha-master3", "kubeha-worker1", "kubeha-worker2"]
CONFS = ["admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf"]
COMPONENTS = ["kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler", "kube-apiserver"]
def sh(host, *cmd):
    p = subprocess.run(["docker", "exec", host, *cmd], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None
snap = {}
for host in HOSTS:
    row = {}
    for conf in CONFS:
        text = sh(host, "cat", "/etc/kubernetes/" + conf)
        if text:
            clusters = (yaml.safe_load(text) or {}).get("clusters") or []
            row[conf] = ",".join(c["cluster"]["server"] for c in clusters)
    for comp in COMPONENTS:
        text = sh(host, "cat", "/run/kubeha/%s.json" % comp)
        if text:
            st = json.loads(text)
            row[comp + " (running)"] = "%s %s" % (st.get("server"), "ok" if st.get("connected") else "NOT CONNECTED")
    # a server named by a name (layout kubeadm-dns: cluster-endpoint) goes where the node resolves it
    names = {urlsplit(s).hostname for v in list(row.values()) for s in v.split(" ")[0].split(",") if s.startswith("https://")}
    for name in sorted(n for n in names if n and n != "localhost" and not n.replace(".", "").isdigit()):
        text = sh(host, "getent", "hosts", name)
        row["%s resolves to" % name] = text.split()[0] if text else None
    snap[host] = row
cluster = {}
def cm(ns, name):
    text = sh("kubeha-master1", "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "get", "configmap", "-n", ns, name, "-o", "json")
    return json.loads(text)["data"] if text else {}
kp = cm("kube-system", "kube-proxy").get("kubeconfig.conf")
ci = cm("kube-public", "cluster-info").get("kubeconfig")
cc = cm("kube-system", "kubeadm-config").get("ClusterConfiguration")
cluster["configmap kube-proxy"] = yaml.safe_load(kp)["clusters"][0]["cluster"]["server"] if kp else None
cluster["configmap cluster-info"] = yaml.safe_load(ci)["clusters"][0]["cluster"]["server"] if ci else None
cluster["configmap kubeadm-config controlPlaneEndpoint"] = yaml.safe_load(cc).get("controlPlaneEndpoint") if cc else None
snap["cluster"] = cluster
print(json.dumps(snap, indent=1, sort_keys=True))
PY
}

# Until the conversion, the module build (CPU: OpenSSL's C sources and the LTO links) and the bed
# (downloads, debootstrap, the install over SSH) need nothing from each other: on a fresh machine the
# build runs in the background, nice'd so that the install's health waits keep their pace. setsid
# gives it its own process group, so a failed bring-up stops cargo and zig with it.
build_log=$out/build.log
echo "== demo: module binaries building in the background (log $build_log)"
setsid nice -n 10 scripts/build-modules.sh >"$build_log" 2>&1 &
build_pid=$!
stop_build() { kill -- -"$build_pid" 2>/dev/null; }
trap stop_build EXIT
start=$SECONDS
scripts/venv.sh && testbed/images/build.sh node || { echo "demo: Python tools or node image failed" >&2; exit 1; }
echo "== demo ($layout): bring up the unconverted cluster (up.sh destroys any bed first)"
testbed/up.sh "$layout" || { echo "demo: test bed did not come up" >&2; exit 1; }
up_time=$((SECONDS - start))
echo "== demo: waiting for the module build"
start=$SECONDS
if ! wait "$build_pid"; then
    tail -30 "$build_log"
    echo "demo: module build failed (log $build_log)" >&2
    exit 1
fi
trap - EXIT
grep -E '^build: cargo zigbuild done|^[a-z_]+ +[0-9]+ +GLIBC' "$build_log" | sed 's/^/  /'
build_wait=$((SECONDS - start))
snapshot >"$out/before.json"
echo "== demo ($layout): convert"
start=$SECONDS
testbed/convert.sh "$layout"
convert_rc=$? convert_time=$((SECONDS - start))
snapshot >"$out/after.json"
echo "== demo ($layout): failover drill (playbooks/drill.yml)"
# The product's drill: each master's apiserver stopped in turn while authenticated requests go
# through the endpoint. make test also runs the test bed's own check (testbed/drill.sh: this drill,
# then molecule/shared/verify.yml with the real kubectl and the Python client); the demo stops here.
start=$SECONDS
testbed/drill.sh "$layout" --product-only 2>&1 | tee "$out/drill.log" \
    | grep -E 'msg:|Drill \||ok=|failed=|FAILED|fatal' | sed 's/^/  /'
drill_rc=${PIPESTATUS[0]} drill_time=$((SECONDS - start))

python3 - "$out/before.json" "$out/after.json" <<'PY'
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
print("\n%-16s %-44s %-34s %s" % ("host", "client", "before", "after"))
for host in before:
    keys = sorted(set(before[host]) | set(after.get(host, {})))
    for k in keys:
        b, a = before[host].get(k), after.get(host, {}).get(k)
        mark = "" if b == a else "  *"
        print("%-16s %-44s %-34s %s%s" % (host, k, b, a, mark))
PY
echo
echo "demo ($layout): tools, image and test bed up in ${up_time} s (then ${build_wait} s more for the module build); conversion rc=$convert_rc in ${convert_time} s; drill rc=$drill_rc in ${drill_time} s (log $out/drill.log)"
if ((convert_rc == 0 && drill_rc == 0)); then echo "demo ($layout): RESULT: HA proven"; exit 0; fi
echo "demo ($layout): RESULT: FAILED"; exit 1
