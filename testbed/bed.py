#!/usr/bin/env python3
"""Test-bed containers, their snapshots and their health (used by testbed/up.sh).

A layout's hosts, addresses and container options are read from molecule/<layout>/molecule.yml, the
one place they are declared (molecule's scenario and this script create the same containers).

A *snapshot* is the unconverted cluster a fresh install leaves, kept as one image per node:
`kubeha-bed:<layout>-<node>-<key>`. The key hashes everything that shapes the installed cluster
(the node image's recipe hash, the installer, the emulators, the scenario and the inventory), so any change to them makes a new key and the next bring-up installs afresh. The images are
committed from stopped containers (systemd shut down, etcd closed cleanly), so a bed started from
them has the same certificates, keys, etcd data, ConfigMaps and units as the bed that was installed.
No snapshot holds a key: the login user's authorized key and the SSH host keys are removed before
the commit, every node makes new host keys at its boot, and `ssh-access` gives each bed a new key.
Each image carries, as the label `kubeha.health`, the health report of the fresh bed it was taken
from; a bed started from the snapshot must pass the same checks with the same results.

  bed.py key LAYOUT                    the snapshot key of the layout, as the files are now
  bed.py snapshot-exists LAYOUT KEY    exit 0 if every node's snapshot image exists
  bed.py create LAYOUT [--snapshot KEY]   network + containers (node image, or the snapshot), then
                                       ssh-access
  bed.py ssh-access LAYOUT             a new login key for this bed and the nodes' host keys
  bed.py snapshot LAYOUT KEY HEALTH.json  stop the bed, commit each node, remove the containers
  bed.py health LAYOUT [--wait S] [--out F]  wait until the bed is healthy, print the report
  bed.py compare LAYOUT KEY HEALTH.json    the report equals the one the snapshot was taken with
  bed.py artifacts LAYOUT                  kubespray's <inventory dir>/artifacts/admin.conf on this machine
  bed.py images [--layout L]               list the snapshot images (tag per line)
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the bed's login key, known_hosts and SSH control sockets (testbed/inventory/group_vars/all/testbed.yml)
SSH_DIR = os.path.join(REPO, ".cache", "bed", "ssh")
LOGIN_USER = "kubeha"
SNAPSHOT_REPOSITORY = "kubeha-bed"
# kubespray's artifacts_dir ({{ inventory_dir }}/artifacts) for the bed's inventories; git-ignored,
# rewritten at every bring-up, and not part of the snapshot key. A layout whose inventory has a
# directory of its own (testbed/inventory/novip/hosts.yml) has it there (artifacts_dir)
ARTIFACTS_DIR = os.path.join("testbed", "inventory", "artifacts")
# what shapes an installed bed, besides the node image (whose own recipe hash is part of the key) and
# the scenario's molecule.yml (hosts, addresses, container options). This script and up.sh only
# orchestrate: the committed images hold what the installer wrote.
KEY_PATHS = [
    "testbed/install",
    "testbed/emulators",  # the package and every command; its tests/ is skipped (key_files)
    "testbed/inventory",
]


# the scenario groups of a control-plane node, a Kubernetes node and the load balancer: kubespray's,
# or those of the plain inventory (layouts kubeadm and kubeadm-dns: control_plane, workers)
CONTROL_PLANE_GROUPS = ("kube_control_plane", "control_plane")
NODE_GROUPS = ("k8s_cluster", "control_plane", "workers")
# layouts whose cluster kubespray made, so that kubespray's artifacts/admin.conf is on the controller
# (novip: pinned's cluster without the load balancer, issue #20)
KUBESPRAY_LAYOUTS = ("pinned", "kubespray", "novip")
# layouts whose cluster kubeadm alone made (stacked etcd as a static pod, kubeadm's pki): kubeadm-dns
# is kubeadm's with the controlPlaneEndpoint a name (cluster-endpoint, in the scenario's etc_hosts)
KUBEADM_LAYOUTS = ("kubeadm", "kubeadm-dns")


class BedError(Exception):
    """Something the bed could not do; the message says what and where."""


def run(*argv, check=True, capture=True, timeout=None):
    proc = subprocess.run(argv, capture_output=capture, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise BedError("%s: exit %d: %s" % (" ".join(argv[:4]), proc.returncode, (proc.stderr or "").strip()[-400:]))
    return proc


def scenario(layout):
    path = os.path.join(REPO, "molecule", layout, "molecule.yml")
    if not os.path.isfile(path):
        raise BedError("unknown layout %r: no %s" % (layout, path))
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def platforms(layout):
    return scenario(layout)["platforms"]


def node_image():
    """The node image a bed is installed on: $KUBEHA_NODE_IMAGE (up.sh sets it, molecule.yml reads
    it), else the tag of the current recipe."""
    if os.environ.get("KUBEHA_NODE_IMAGE"):
        return os.environ["KUBEHA_NODE_IMAGE"]
    out = run(os.path.join(REPO, "testbed", "images", "build.sh"), "hash").stdout.split()
    # "kubeha-node <hash> kubeha-bullseye <hash>"
    return "kubeha-node:" + out[1]


def key_files(layout):
    paths = [os.path.join("molecule", layout, "molecule.yml")] + KEY_PATHS
    for rel in paths:
        full = os.path.join(REPO, rel)
        if os.path.isfile(full):
            yield rel
            continue
        for root, dirs, files in os.walk(full):
            dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "tests") and not is_artifacts_dir(root, d))
            for name in sorted(files):
                if not name.endswith(".pyc"):
                    yield os.path.relpath(os.path.join(root, name), REPO)


def is_artifacts_dir(root, name):
    """kubespray's artifacts directory beside one of the bed's inventories (testbed/inventory/artifacts,
    testbed/inventory/<layout>/artifacts): written at every bring-up, not what shapes the bed."""
    inventories = os.path.join(REPO, "testbed", "inventory")
    return name == "artifacts" and (root == inventories or os.path.dirname(root) == inventories)


def artifacts_dir(layout):
    """kubespray's {{ inventory_dir }}/artifacts for the layout's inventory: its own directory's
    (testbed/inventory/<layout>/hosts.yml), or the shared one of testbed/inventory/<layout>.yml."""
    own = os.path.join("testbed", "inventory", layout)
    return os.path.join(own, "artifacts") if os.path.isfile(os.path.join(REPO, own, "hosts.yml")) else ARTIFACTS_DIR


def snapshot_key(layout):
    digest = hashlib.sha256()
    digest.update(("layout %s\nimage %s\n" % (layout, node_image())).encode())
    for rel in key_files(layout):
        with open(os.path.join(REPO, rel), "rb") as handle:
            data = handle.read()
        digest.update(("%s %d\n" % (rel, len(data))).encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def snapshot_tag(layout, node, key):
    return "%s:%s-%s-%s" % (SNAPSHOT_REPOSITORY, layout, node, key)


def image_exists(tag):
    return run("docker", "image", "inspect", tag, check=False).returncode == 0


def snapshot_exists(layout, key):
    return all(image_exists(snapshot_tag(layout, p["name"], key)) for p in platforms(layout))


def network_of(layout):
    for platform in platforms(layout):
        for net in platform.get("docker_networks") or []:
            return net
    raise BedError("molecule/%s/molecule.yml declares no docker network" % layout)


def create(layout, key=None):
    """Create the network and every container, as molecule's docker driver does for the scenario."""
    net = network_of(layout)
    if run("docker", "network", "inspect", net["name"], check=False).returncode != 0:
        ipam = net["ipam_config"][0]
        run("docker", "network", "create", "--subnet", ipam["subnet"], "--gateway", ipam["gateway"], net["name"])
    base = None if key else node_image()
    for p in platforms(layout):
        image = snapshot_tag(layout, p["name"], key) if key else base
        argv = ["docker", "run", "-d", "--name", p["name"], "--hostname", p["name"],
                "--stop-signal", p.get("stop_signal", "SIGTERM"), "--cgroupns", p.get("cgroupns_mode", "private"),
                "--label", "owner=kubeha-bed"]
        for cap in p.get("capabilities") or []:
            argv += ["--cap-add", cap]
        for opt in p.get("security_opts") or []:
            argv += ["--security-opt", opt]
        for vol in p.get("volumes") or []:
            argv += ["-v", vol]
        for name, value in (p.get("env") or {}).items():
            argv += ["-e", "%s=%s" % (name, value)]
        for name, addr in (p.get("etc_hosts") or {}).items():
            argv += ["--add-host", "%s:%s" % (name, addr)]
        for mount in p.get("tmpfs") or []:
            argv += ["--tmpfs", mount]
        for name, value in (p.get("labels") or {}).items():
            argv += ["--label", "%s=%s" % (name, value)]
        nets = p.get("networks") or []
        if nets:
            argv += ["--network", nets[0]["name"], "--ip", nets[0]["ipv4_address"]]
        argv += [image] + p["command"].split()
        run(*argv)
    ssh_access(layout)
    if key:
        artifacts(layout)   # the installed cluster's admin.conf is in the snapshot
    return [p["name"] for p in platforms(layout)]


def artifact_admin_conf(admin, cluster_name, address, port):
    """What kubespray's role kubernetes/client (v2.28-v2.30, kubeconfig_localhost: true) writes to
    {{ artifacts_dir }}/admin.conf: the first master's admin.conf with its user and context renamed
    kubernetes-admin-<cluster_name> (the cluster keeps the name <cluster_name>) and the server
    https://<external_apiserver_address>:<port>, dumped by to_nice_yaml(indent=2)."""
    username = "kubernetes-admin-" + cluster_name
    context = "%s@%s" % (username, cluster_name)
    out = dict(admin)
    out["clusters"] = [{"cluster": dict(admin["clusters"][0]["cluster"], server="https://%s:%s" % (address, port)),
                        "name": cluster_name}]
    out["contexts"] = [{"context": {"user": username, "cluster": cluster_name}, "name": context}]
    out["current-context"] = context
    out["users"] = [{"name": username, "user": admin["users"][0]["user"]}]
    return yaml.safe_dump(out, indent=2, default_flow_style=False, allow_unicode=True, sort_keys=True)


def artifacts(layout):
    """kubespray's artifact of the install, on the controller: the external address is the first
    control-plane host's (kube_apiserver_access_address: no loadbalancer_apiserver when the cluster
    was installed; the inventory's LB is what the conversion adds), read over SSH as kubespray's
    slurp does. Written 0600 in a 0750 directory, like its tasks."""
    if layout not in KUBESPRAY_LAYOUTS:
        print("bed: layout %s was not made by kubespray: no artifacts/admin.conf" % layout)
        return
    conf = scenario(layout)
    hostvars = conf["provisioner"]["inventory"]["host_vars"]
    first = next(p["name"] for p in conf["platforms"] if "kube_control_plane" in p.get("groups", []))
    text = run(*ssh_command(hostvars[first]["ip"], LOGIN_USER, "sudo", "-n", "cat", "/etc/kubernetes/admin.conf"),
               timeout=30).stdout
    address = hostvars[first].get("access_ip") or hostvars[first]["ip"]
    directory = os.path.join(REPO, artifacts_dir(layout))
    os.makedirs(directory, mode=0o750, exist_ok=True)
    path = os.path.join(directory, "admin.conf")
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(artifact_admin_conf(yaml.safe_load(text), "cluster.local", address, 6443))
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)
    print("bed: %s written (server https://%s:6443)" % (os.path.relpath(path, REPO), address))


def ssh_options():
    """ssh/sftp options that reach the bed as its inventories do: the bed's key only, no prompt,
    host keys verified against the known_hosts ssh-access wrote."""
    return ["-i", os.path.join(SSH_DIR, "id_ed25519"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "UserKnownHostsFile=" + os.path.join(SSH_DIR, "known_hosts"), "-o", "StrictHostKeyChecking=yes"]


def ssh_command(ip, user=LOGIN_USER, *remote):
    return ["ssh", *ssh_options(), "-o", "ConnectTimeout=5", "%s@%s" % (user, ip)] + list(remote)


def ssh_access(layout, wait=90, extra=()):
    """Reach the bed the way operators reach their hosts: a new ed25519 key for the login user (made
    here, for this bed, never committed), installed as its only authorized key; known_hosts built
    from each node's own host key, read out of band (as from a new VM's console), so that the
    connection verifies host keys from the first login on. Then prove it: the login user gets root
    with sudo and no password, root cannot log in. extra: (name, ip) of nodes started beside the
    layout's own from the same image (bench/scale.sh's additional workers), given the same access."""
    os.makedirs(SSH_DIR, mode=0o700, exist_ok=True)
    key = os.path.join(SSH_DIR, "id_ed25519")
    for path in (key, key + ".pub"):
        if os.path.exists(path):
            os.unlink(path)
    # control sockets of an earlier bed's connections lead to hosts that are gone
    control = os.path.join(SSH_DIR, "cp")
    if os.path.isdir(control):
        for name in os.listdir(control):
            os.unlink(os.path.join(control, name))
    os.makedirs(control, mode=0o700, exist_ok=True)
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kubeha-bed-" + layout, "-f", key)
    with open(key + ".pub", encoding="utf-8") as handle:
        public = handle.read()
    hostvars = scenario(layout)["provisioner"]["inventory"]["host_vars"]
    nodes = [(p["name"], hostvars[p["name"]]["ip"]) for p in platforms(layout)] + list(extra)
    install = ("install -d -m 0700 -o {u} -g {u} /home/{u}/.ssh && umask 077 && cat >/home/{u}/.ssh/authorized_keys"
               " && chown {u}:{u} /home/{u}/.ssh/authorized_keys").format(u=LOGIN_USER)
    known = []
    deadline = time.monotonic() + wait
    for name, ip in nodes:
        proc = subprocess.run(["docker", "exec", "-i", name, "sh", "-c", install], input=public, text=True,
                              capture_output=True, check=False, timeout=60)
        if proc.returncode != 0:
            raise BedError("%s: cannot install the login key: %s" % (name, proc.stderr.strip()[-300:]))
        # the node makes its host keys at boot (kubeha-ssh-hostkeys.service), then sshd starts
        while True:
            proc = run("docker", "exec", name, "sh", "-c",
                       "systemctl is-active -q ssh.service && cat /etc/ssh/ssh_host_ed25519_key.pub", check=False, timeout=30)
            if proc.returncode == 0 and proc.stdout.startswith("ssh-ed25519 "):
                break
            if time.monotonic() > deadline:
                raise BedError("%s: sshd not running with a host key after %d s" % (name, wait))
            time.sleep(0.5)
        keytype, blob = proc.stdout.split()[:2]
        known.append("%s,%s %s %s" % (ip, name, keytype, blob))
    tmp = os.path.join(SSH_DIR, "known_hosts.new")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write("\n".join(known) + "\n")
    os.replace(tmp, os.path.join(SSH_DIR, "known_hosts"))
    for name, ip in nodes:
        proc = run(*ssh_command(ip, LOGIN_USER, "sudo", "-n", "id", "-u"), check=False, timeout=30)
        if proc.returncode != 0 or proc.stdout.strip() != "0":
            raise BedError("%s: ssh %s@%s with sudo did not give root: %s" % (name, LOGIN_USER, ip, proc.stderr.strip()[-300:]))
        if run(*ssh_command(ip, "root", "true"), check=False, timeout=30).returncode == 0:
            raise BedError("%s: root can log in over SSH; the bed must not allow it" % name)
    print("bed: ssh as %s with sudo on %d nodes, host keys verified (%s)" % (LOGIN_USER, len(known), SSH_DIR))


def snapshot(layout, key, health_path):
    """Stop every node (systemd shuts down, etcd syncs), commit it as its snapshot image, remove it."""
    with open(health_path, encoding="utf-8") as handle:
        health = json.load(handle)
    if not health.get("healthy"):
        raise BedError("refusing to snapshot an unhealthy bed (%s)" % health_path)
    names = [p["name"] for p in platforms(layout)]
    started = time.monotonic()
    # no key in a snapshot: each bed from it gets new host keys at boot and its own login key
    for name in names:
        run("docker", "exec", name, "sh", "-c", "rm -f /etc/ssh/ssh_host_* /home/%s/.ssh/authorized_keys" % LOGIN_USER)
    run("docker", "stop", "-t", "60", *names, timeout=180)
    stopped = time.monotonic()
    # a container systemd could not shut down within the timeout was killed: its etcd or files may
    # be mid-write, so such a bed is not kept
    for name in names:
        code = run("docker", "inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        if code == "137":
            raise BedError("%s did not shut down within 60 s (killed): not kept as a snapshot" % name)
    label = json.dumps(health["checks"], sort_keys=True, separators=(",", ":"))
    for name in names:
        run("docker", "commit", "--change", "LABEL kubeha.health=" + json.dumps(label),
            "--change", "LABEL kubeha.snapshot=%s" % key, name, snapshot_tag(layout, name, key), timeout=300)
    run("docker", "rm", *names)
    print("bed: stopped in %.0f s, committed in %.0f s" % (stopped - started, time.monotonic() - stopped))
    # older snapshots of this layout (another key) are dead weight: drop them
    for tag in list_images(layout):
        if not tag.endswith("-" + key):
            run("docker", "rmi", tag, check=False)


def list_images(layout=None):
    out = run("docker", "images", SNAPSHOT_REPOSITORY, "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    return sorted(t for t in out if layout is None or t.split(":", 1)[1].startswith(layout + "-"))


# ---- health ------------------------------------------------------------------------------------

LB_SCRIPT = r"""
set -u
ca=/etc/haproxy/kubernetes-ca.crt
for ip in $MASTER_IPS; do
    if out=$(curl -sS --fail --max-time 3 --cacert $ca https://$ip:6443/readyz 2>&1); then r=ok; else r=fail; fi
    printf 'apiserver %s /readyz (CA verified)\t%s\t%s\n' "$ip" "$r" "${out:0:80}"
done
# through the load balancer's address; "kubernetes" is a SAN of every apiserver certificate (the VIP
# itself is not one before the conversion), so TLS is verified against the cluster CA
if out=$(curl -sS --fail --max-time 3 --cacert $ca --connect-to kubernetes:6443:$VIP:6443 https://kubernetes:6443/readyz 2>&1); then r=ok; else r=fail; fi
printf 'VIP %s:6443 /readyz (CA verified)\t%s\t%s\n' "$VIP" "$r" "${out:0:80}"
up=$(python3 -c '
import socket
s = socket.socket(socket.AF_UNIX); s.connect("/run/haproxy/admin.sock")
s.sendall(b"show servers state kube_apiserver\n"); data = b""
while True:
    chunk = s.recv(65536)
    if not chunk: break
    data += chunk
rows = [l.split() for l in data.decode().splitlines() if l and not l.startswith("#") and len(l.split()) > 5]
print(",".join(sorted(r[3] + ("=UP" if r[5] == "2" else "=DOWN") for r in rows)))' 2>&1)
if [[ -n $up && $up != *DOWN* && $up == *=UP* ]]; then r=ok; else r=fail; fi
printf 'HAProxy backends\t%s\t%s\n' "$r" "$up"
"""

NODE_SCRIPT = r"""
set -u
# a layout without the load balancer (novip): each apiserver's /readyz from the first master, as
# LB_SCRIPT checks it from the load balancer elsewhere (same check names)
for ip in ${APISERVER_IPS:-}; do
    if out=$(curl -sS --fail --max-time 3 --cacert $APISERVER_CA https://$ip:6443/readyz 2>&1); then r=ok; else r=fail; fi
    printf 'apiserver %s /readyz (CA verified)\t%s\t%s\n' "$ip" "$r" "${out:0:80}"
done
for c in $COMPONENTS; do
    out=$(python3 -c '
import json, sys
try:
    s = json.load(open("/run/kubeha/%s.json" % sys.argv[1]))
except (OSError, ValueError) as e:
    print("fail\tno status"); sys.exit()
print(("ok" if s.get("connected") else "fail") + "\t" + str(s.get("server")))' "$c")
    printf '%s on %s connected\t%s\n' "$c" "$(hostname)" "$out"
done
if [[ -n ${ETCD:-} ]]; then
    E=/etc/ssl/etcd/ssl H=$(hostname)
    ca=${ETCD_CA:-$E/ca.pem} cert=${ETCD_CERT:-$E/admin-$H.pem} key=${ETCD_KEY:-$E/admin-$H-key.pem}
    if out=$(ETCDCTL_API=3 etcdctl --endpoints=https://$IP:2379 --cacert=$ca --cert=$cert \
            --key=$key --command-timeout=3s endpoint health 2>&1); then r=ok; else r=fail; fi
    printf 'etcd member on %s healthy\t%s\t%s\n' "$H" "$r" "https://$IP:2379"
    if [[ -n ${ETCD_STATIC_POD:-} ]]; then
        # the etcd serving :2379 is the static pod's container: the process the kubelet started
        # from /etc/kubernetes/manifests/etcd.yaml (its pidfile), the real etcd binary with the
        # manifest's data dir and name, and no etcd.service beside it
        out=$(python3 -c '
import json, os, sys
rec = json.load(open("/run/kubeha/pods/etcd.yaml.pid"))
pid = rec["containers"]["etcd"]["pid"]
argv = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")[:-1]
exe = os.readlink("/proc/%d/exe" % pid)
args = [a.decode() for a in argv]
ok = exe == "/usr/bin/etcd" and "--data-dir=/var/lib/etcd" in args and "--name=" + sys.argv[1] in args
print(("ok" if ok else "fail") + "\tpod %s, %s %s" % (rec.get("pod"), exe, " ".join(a for a in args if a.startswith(("--name", "--data-dir")))))
' "$H" 2>&1) || out="fail	$out"
        if systemctl is-active -q etcd.service; then out="fail	etcd.service runs beside the static pod"; fi
        printf 'etcd static pod on %s running\t%s\n' "$H" "$out"
    fi
fi
if [[ -n ${ETCD_MEMBERS:-} ]]; then
    # every master a started member of one cluster (kubeadm: added one by one at each join)
    out=$(ETCDCTL_API=3 etcdctl --endpoints=https://$IP:2379 --cacert=$ETCD_CA --cert=$ETCD_CERT --key=$ETCD_KEY \
        --command-timeout=3s member list -w simple 2>&1 | awk -F', ' '$2 == "started" {print $3}' | sort | tr '\n' ' ')
    if [[ "${out% }" == "$ETCD_MEMBERS" ]]; then r=ok; else r=fail; fi
    printf 'etcd members started\t%s\t%s\n' "$r" "${out% }"
fi
if [[ -n ${NODES:-} ]]; then
    # Ready=True with a heartbeat from this boot: a bed started from a snapshot holds the Ready
    # conditions its etcd data had when the snapshot was taken
    since=$(date -u -d "$(ps -o lstart= -p 1)" +%Y-%m-%dT%H:%M:%SZ)
    out=$(kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=5s get nodes \
        -o 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}@{.status.conditions[?(@.type=="Ready")].lastHeartbeatTime} {end}' 2>&1)
    for n in $NODES; do
        seen=$(tr ' ' '\n' <<<"$out" | grep "^$n=" || true)
        beat=${seen#*@}
        if [[ $seen == "$n=True@"* && ! $beat < $since ]]; then r=ok d=$n; else r=fail d="$seen, booted $since"; fi
        printf 'node %s Ready\t%s\t%s\n' "$n" "$r" "$d"
    done
    # the cilium-operator Deployment (pins.yaml.j2), run by the emulated Deployment/ReplicaSet
    # controllers and kubelets: rolled out as kubectl rollout status judges it, every pod Ready
    # since this boot (a snapshot's etcd holds the Ready its pods had when it was taken)
    k="kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=5s -n kube-system"
    d=$($k get deploy cilium-operator -o 'jsonpath={.metadata.generation}/{.status.observedGeneration}/{.spec.replicas}/{.status.updatedReplicas}/{.status.replicas}/{.status.availableReplicas}' 2>&1)
    p=$($k get pods -l io.cilium/app=operator -o 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}@{.status.conditions[?(@.type=="Ready")].lastTransitionTime} {end}' 2>&1)
    IFS=/ read -r gen seen want updated total avail rest <<<"$d"
    # absent status fields (omitempty) are 0
    gen=${gen:-0} seen=${seen:-0} want=${want:-0} updated=${updated:-0} total=${total:-0} avail=${avail:-0} r=ok
    if ! [[ "$gen $seen $want $updated $total $avail" =~ ^[0-9]+( [0-9]+){5}$ && -z ${rest:-} ]]; then
        gen=1 seen=0 want=0 updated=0 total=0 avail=0 r=fail       # no such Deployment, no answer
    fi
    if [[ $r == ok ]]; then
        # kubectl rollout status's rule, and some replicas
        ((want >= 1 && seen >= gen && updated >= want && total <= updated && avail >= updated)) || r=fail
    fi
    n=0
    for item in $p; do
        n=$((n + 1))
        [[ $item == True@* && ! ${item#True@} < $since ]] || r=fail
    done
    [[ $n -eq ${want:-0} ]] || r=fail
    if [[ $r == ok ]]; then dd="$want of $want updated and available"; else dd="deployment: $d; pods: $p; booted $since"; fi
    printf 'deployment kube-system/cilium-operator rolled out\t%s\t%s\n' "$r" "$dd"
fi
"""


def health_targets(layout):
    """(host, script, environment) of every health probe of the layout, from its scenario."""
    conf = scenario(layout)
    plats, hostvars = conf["platforms"], conf["provisioner"]["inventory"]["host_vars"]
    def member(platform, names):
        return any(g in names for g in platform.get("groups") or [])

    masters = [p["name"] for p in plats if member(p, CONTROL_PLANE_GROUPS)]
    nodes = [p["name"] for p in plats if member(p, NODE_GROUPS)]
    lbs = [p["name"] for p in plats if "kubeha_lb" in p.get("groups", [])]
    kubeadm = layout in KUBEADM_LAYOUTS
    targets = [(lb, LB_SCRIPT, {"MASTER_IPS": " ".join(hostvars[m]["ip"] for m in masters),
                                "VIP": hostvars[lb]["ip"]}) for lb in lbs]
    for node in nodes:
        # cilium-agent and promtail: the DaemonSet pods planted for issue #18 (testbed/install/templates/pins.yaml.j2)
        env = {"COMPONENTS": "kubelet kube-proxy cilium-agent promtail", "IP": hostvars[node]["ip"]}
        if node in masters:
            env["COMPONENTS"] += " kube-controller-manager kube-scheduler"
            env["ETCD"] = "1"
            if kubeadm:
                # stacked etcd (kubeadm): its certificates under /etc/kubernetes/pki/etcd, the
                # healthcheck-client certificate kubeadm makes for probes, run as a static pod
                env.update(ETCD_CA="/etc/kubernetes/pki/etcd/ca.crt",
                           ETCD_CERT="/etc/kubernetes/pki/etcd/healthcheck-client.crt",
                           ETCD_KEY="/etc/kubernetes/pki/etcd/healthcheck-client.key", ETCD_STATIC_POD="1")
        if node == masters[0]:
            env["NODES"] = " ".join(nodes)
            if kubeadm:
                env["ETCD_MEMBERS"] = " ".join(sorted(masters))
            if not lbs:
                # no load balancer (layout novip, before kubeha provisions the VIP): the apiservers'
                # /readyz from here, verified against the cluster CA (kubespray's pki -> ssl link)
                env["APISERVER_IPS"] = " ".join(hostvars[m]["ip"] for m in masters)
                env["APISERVER_CA"] = "/etc/kubernetes/pki/ca.crt"
        targets.append((node, NODE_SCRIPT, env))
    return targets


def health_once(layout, targets):
    checks = {}

    def collect(host, script, env):
        argv = ["docker", "exec"]
        for name, value in env.items():
            argv += ["-e", "%s=%s" % (name, value)]
        proc = run(*argv, host, "bash", "-c", script, check=False, timeout=60)
        if proc.returncode != 0 and not proc.stdout:
            checks["%s reachable" % host] = {"ok": False, "detail": (proc.stderr or "").strip()[-200:]}
            return
        for line in proc.stdout.splitlines():
            name, verdict, detail = (line.split("\t") + ["", ""])[:3]
            checks[name] = {"ok": verdict == "ok", "detail": detail if verdict == "ok" else ""}
            if verdict != "ok":
                checks[name]["error"] = detail

    for host, script, env in targets:
        collect(host, script, env)
    # what each check names (servers, members, backends) must not depend on timing; readyz bodies do
    for name, check in checks.items():
        if "/readyz" in name and check["ok"]:
            check["detail"] = "ok"
    return {"layout": layout, "healthy": bool(checks) and all(c["ok"] for c in checks.values()),
            "checks": checks}


def health(layout, wait):
    deadline = time.monotonic() + wait
    targets = health_targets(layout)
    while True:
        report = health_once(layout, targets)
        if report["healthy"] or time.monotonic() >= deadline:
            return report
        time.sleep(1)


def diff_reports(reference, checks):
    """Differences between the fresh bed's checks and these: a check missing on either side, or
    another verdict or detail (servers, members, backends, node names)."""
    diffs = []
    names = sorted(set(reference) | set(checks))
    for name in names:
        ref, now = reference.get(name), checks.get(name)
        if ref is None or now is None:
            diffs.append("%s: %s" % (name, "not checked on the fresh bed" if ref is None else "missing"))
        elif (ref["ok"], ref["detail"]) != (now["ok"], now["detail"]):
            diffs.append("%s: fresh %s %r, now %s %r" % (name, ref["ok"], ref["detail"], now["ok"],
                                                        now.get("detail") or now.get("error")))
    return diffs, len(names)


def compare(layout, key, report):
    """Differences between a report and the one the snapshot of `key` was taken with."""
    # every node's image carries the same label: the first one's is read
    tag = snapshot_tag(layout, platforms(layout)[0]["name"], key)
    out = run("docker", "image", "inspect", tag, "--format", '{{ index .Config.Labels "kubeha.health" }}').stdout
    return diff_reports(json.loads(out.strip()), report["checks"])


def print_report(report):
    for name, check in sorted(report["checks"].items()):
        print("  %-4s %s%s" % ("ok" if check["ok"] else "FAIL", name,
                               ("  " + check.get("error", "")) if not check["ok"] else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    # each subcommand's positional arguments, then its options
    commands = {
        "key": (["layout"], {}),
        "snapshot-exists": (["layout", "key"], {}),
        "create": (["layout"], {"--snapshot": {"metavar": "KEY"}}),
        "ssh-access": (["layout"], {"--extra": {"action": "append", "default": [], "metavar": "NAME=IP",
                                                "help": "a node beside the layout's own (repeatable)"}}),
        "snapshot": (["layout", "key", "health"], {}),
        "health": (["layout"], {"--wait": {"type": float, "default": 0}, "--out": {}}),
        "compare": (["layout", "key", "health"], {}),
        "images": ([], {"--layout": {}}),
        "artifacts": (["layout"], {}),
    }
    for name, (positionals, options) in commands.items():
        cmd = sub.add_parser(name)
        for arg in positionals:
            cmd.add_argument(arg)
        for opt, kwargs in options.items():
            cmd.add_argument(opt, **kwargs)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "key":
            print(snapshot_key(args.layout))
        elif args.cmd == "snapshot-exists":
            return 0 if snapshot_exists(args.layout, args.key) else 1
        elif args.cmd == "create":
            print("bed: created %s" % " ".join(create(args.layout, args.snapshot)))
        elif args.cmd == "ssh-access":
            extra = []
            for item in args.extra:
                name, sep, ip = item.partition("=")
                if not sep or not name or not ip:
                    raise BedError("--extra %r: expected NAME=IP, e.g. kubeha-worker3=172.30.0.30" % item)
                extra.append((name, ip))
            ssh_access(args.layout, extra=extra)
        elif args.cmd == "snapshot":
            snapshot(args.layout, args.key, args.health)
            print("bed: snapshot %s of layout %s kept (%d images)" % (args.key, args.layout,
                                                                      len(list_images(args.layout))))
        elif args.cmd == "health":
            report = health(args.layout, args.wait)
            if args.out:
                os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
                with open(args.out, "w", encoding="utf-8") as handle:
                    json.dump(report, handle, indent=1, sort_keys=True)
            print_report(report)
            print("bed: %s %s (%d checks)" % (args.layout, "healthy" if report["healthy"] else "NOT healthy",
                                             len(report["checks"])))
            return 0 if report["healthy"] else 1
        elif args.cmd == "compare":
            with open(args.health, encoding="utf-8") as handle:
                report = json.load(handle)
            diffs, count = compare(args.layout, args.key, report)
            for line in diffs:
                print("  differs: " + line)
            print("bed: from snapshot %s: %s the fresh bed's %d health checks" % (
                args.key, "passes, with the same results," if not diffs else "does NOT pass", count))
            return 1 if diffs else 0
        elif args.cmd == "artifacts":
            artifacts(args.layout)
        elif args.cmd == "images":
            print("\n".join(list_images(args.layout)))
    except (BedError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as err:
        print("bed: %s" % err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
