#!/usr/bin/env python3
"""Same behaviour, two checkouts: run another checkout's playbooks and this one's on the same bed
state and compare what they leave, for a refactoring that must not change what kubeha does.

    .venv/bin/python scripts/same_behaviour.py OTHER_CHECKOUT [--layout pinned]

For each checkout in turn (OTHER first): the bed is started from the layout's snapshot
(testbed/up.sh: the same CA, certificates, kubeconfigs and etcd data both times), then its
playbooks run with this checkout's inventory: the dry run (--check --diff), the conversion, a
second run, the rollback. After each step the state is read off the bed: every file under
/etc/kubernetes, /root/.kube (not kubectl's cache) and kubeha's state directory (not the module
cache) on every node, with owner, mode and SHA-256, and the data of the three ConfigMaps kubeha
edits. OTHER_CHECKOUT must hold its module binaries (its scripts/build-modules.sh, or cargo build
--release copied into plugins/modules).

Equal apart from what differs by nature from run to run: a certificate issued anew is compared by
subject, issuer, SANs and validity length, a private key made anew as "a new key" (never its
content); timestamps and process ids in backup, temporary and rolled-back names are masked; the
report's times are dropped. The dry run's diffs are compared as a set (the order of tasks may
change), the second run's changed count must be 0 in both. Exit 0 when equal, 1 with the
differences listed, 2 when a step failed. Differences in kubeha's own state directory (what it keeps, how it
names it) are listed apart and do not fail the comparison. Logs in reports/same-behaviour/<layout>/<a|b>/.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from cryptography import x509

ROOT = Path(__file__).resolve().parent.parent
NODES = ["kubeha-master1", "kubeha-master2", "kubeha-master3", "kubeha-worker1", "kubeha-worker2"]
CONFIGMAPS = ["kube-system/kube-proxy", "kube-system/kubeadm-config", "kube-public/cluster-info"]
STEPS = [
    ("check", ["playbooks/convert.yml", "--check", "--diff"]),
    ("convert", ["playbooks/convert.yml"]),
    ("again", ["playbooks/convert.yml"]),
    ("rollback", ["playbooks/rollback.yml"]),
]

# Run on each node: path -> [uid, gid, mode, sha256, PEM text of a certificate or None].
READ_STATE = r"""
import hashlib, json, os, sys
out = {}
for top in ("/etc/kubernetes", "/root/.kube", "/var/lib/kubeha"):
    for d, dirs, files in os.walk(top):
        dirs[:] = [x for x in dirs if os.path.join(d, x) not in ("/root/.kube/cache", "/var/lib/kubeha/modules")]
        for f in files:
            p = os.path.join(d, f)
            if os.path.islink(p):
                out[p] = ["link", os.readlink(p)]
                continue
            st = os.stat(p)
            data = open(p, "rb").read()
            pem = data.decode() if p.endswith((".crt", ".pem")) and b"BEGIN CERTIFICATE" in data else None
            out[p] = [st.st_uid, st.st_gid, oct(st.st_mode & 0o7777), hashlib.sha256(data).hexdigest(), pem]
json.dump(out, sys.stdout)
"""

MASKS = [
    (re.compile(r"\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$"), ".<pid>.<time>~"),
    (re.compile(r"rolled-back-\d{8}T\d{6}Z"), "rolled-back-<time>"),
    (re.compile(r"\.kubeha-\d+\.tmp$"), ".kubeha-<pid>.tmp"),
]


def mask(path):
    for rx, repl in MASKS:
        path = rx.sub(repl, path)
    return path


def sh(argv, **kw):
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kw).stdout


def cert_summary(pem):
    c = x509.load_pem_x509_certificate(pem.encode())
    try:
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = sorted(str(v.value) for v in san)
    except x509.ExtensionNotFound:
        names = []
    days = (c.not_valid_after_utc - c.not_valid_before_utc).days
    return f"certificate subject={c.subject.rfc4514_string()} issuer={c.issuer.rfc4514_string()} sans={names} days={days}"


def read_state(start):
    """The bed's state; a file whose content differs from `start` (the same run's first state)
    and is a certificate or a key is described instead of hashed (issued anew in each run)."""
    files, raw_digests = {}, {}
    for node in NODES:
        raw = json.loads(sh(["docker", "exec", node, "python3", "-c", READ_STATE]))
        raw_digests.update({f"{node}:{p}": e[3] for p, e in raw.items() if e[0] != "link"})
        for path, entry in raw.items():
            key = f"{node}:{mask(path)}"
            if entry[0] == "link":
                files[key] = f"link -> {entry[1]}"
                continue
            uid, gid, mode, digest, pem = entry
            before = (start or {}).get("raw", {}).get(f"{node}:{path}")
            if start is not None and before != digest:
                if pem:
                    digest = cert_summary(pem)
                elif path.endswith(".key") or path.endswith("-key.pem") or ".key." in path:
                    digest = "a new key"
            files[key] = f"{uid}:{gid} {mode} {digest}"
    cms = {}
    for cm in CONFIGMAPS:
        ns, name = cm.split("/")
        obj = json.loads(sh(["docker", "exec", "kubeha-master1", "kubectl", "--kubeconfig",
                             "/etc/kubernetes/admin.conf", "-n", ns, "get", "configmap", name, "-o", "json"]))
        cms[cm] = hashlib.sha256(json.dumps(obj.get("data", {}), sort_keys=True).encode()).hexdigest()
    return {"files": files, "configmaps": cms, "raw": raw_digests}


def dry_run_diffs(log_text):
    """Each diff block of an Ansible --diff log (from `--- before` to the last +/-/space/@ line)."""
    blocks, cur = [], None
    for line in log_text.splitlines():
        if line.startswith("--- before"):
            if cur:
                blocks.append("\n".join(cur))
            cur = [mask(line)]
        elif cur is not None and (line[:1] in "+- @" and line != ""):
            cur.append(mask(line))
        elif cur is not None:
            blocks.append("\n".join(cur))
            cur = None
    if cur:
        blocks.append("\n".join(cur))
    return sorted(blocks)


def recap_changed(log_text):
    total, in_recap = 0, False
    for line in log_text.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
        elif in_recap:
            m = re.search(r"changed=(\d+)", line)
            total += int(m.group(1)) if m else 0
    return total


def strip_times(obj):
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items()
                if not re.search(r"(time|date|duration|seconds|_at|^generated)$", k)}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


def run_checkout(checkout, label, layout, inventory, logs):
    logs.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(ROOT / "testbed/up.sh"), layout], check=True, cwd=ROOT,
                   stdout=open(logs / "up.log", "w"), stderr=subprocess.STDOUT)
    env = dict(os.environ, ANSIBLE_CONFIG=str(checkout / "ansible.cfg"),
               PATH=f"{ROOT / '.venv/bin'}:{os.environ['PATH']}")
    start = read_state(None)
    result = {"states": {}, "logs": {}, "report": None}
    report = checkout / "reports/kubeha-report.json"
    for step, args in STEPS:
        if report.exists():
            report.unlink()
        log = logs / f"{step}.log"
        rc = subprocess.run(["ansible-playbook", "-i", str(inventory)] + args, cwd=checkout, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT).returncode
        if rc != 0:
            print(f"{label}: {step} failed (rc {rc}), see {log}", file=sys.stderr)
            sys.exit(2)
        result["states"][step] = read_state(start)
        result["logs"][step] = log.read_text()
        if step == "convert" and report.exists():
            (logs / "report.json").write_text(report.read_text())
            result["report"] = strip_times(json.loads(report.read_text()))
        print(f"{label}: {step} done", flush=True)
    result["start"] = start
    return result


STATE_DIR = "/var/lib/kubeha"


def is_state(text):
    """A file of kubeha's own state directory (originals, saved ConfigMaps, markers), or a dry-run
    diff of one (or of a task's own arguments, which name no file)."""
    first = text.splitlines()[0] if text else ""
    if first.startswith("---"):
        return STATE_DIR in text.splitlines()[1] or not re.search(r"(before|after): /", text)
    return f":{STATE_DIR}" in first


def compare(a, b):
    """(differences in the cluster's files and objects, differences in kubeha's state directory)."""
    cluster, state = [], []
    for step, _ in STEPS:
        sa, sb = a["states"][step], b["states"][step]
        for key in sorted(set(sa["files"]) | set(sb["files"])):
            va, vb = sa["files"].get(key, "absent"), sb["files"].get(key, "absent")
            if va != vb:
                (state if is_state(key) else cluster).append(f"after {step}: {key}: {va[:160]} | {vb[:160]}")
        for cm in CONFIGMAPS:
            if sa["configmaps"][cm] != sb["configmaps"][cm]:
                cluster.append(f"after {step}: ConfigMap {cm} data differs")
    da, db = dry_run_diffs(a["logs"]["check"]), dry_run_diffs(b["logs"]["check"])
    for label, only in (("a", [x for x in da if x not in db]), ("b", [x for x in db if x not in da])):
        for block in only:
            (state if is_state(block) else cluster).append(
                f"dry run: a diff only in {label}: " + " / ".join(block.splitlines()[:6]))
    for label, r in (("a", a), ("b", b)):
        n = recap_changed(r["logs"]["again"])
        if n != 0:
            cluster.append(f"{label}: the second run changed {n} task(s)")
    ra, rb = a["report"] or {}, b["report"] or {}
    for key in sorted(set(ra) | set(rb)):
        if key not in ra or key not in rb:
            state.append(f"report: key {key!r} only in {'a' if key in ra else 'b'}")
        elif ra[key] != rb[key]:
            cluster.append(f"report: {key!r} differs: {json.dumps(ra[key])[:300]} | {json.dumps(rb[key])[:300]}")
    # The bed started from the same state both times.
    if a["start"]["raw"] != b["start"]["raw"]:
        cluster.append("the two runs did not start from the same bed state")
    return cluster, state, len(db)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("other", type=Path, help="the other checkout (run first, as a)")
    ap.add_argument("--layout", default="pinned")
    args = ap.parse_args()
    inventory = ROOT / f"testbed/inventory/{args.layout}.yml"
    logs = ROOT / "reports/same-behaviour" / args.layout
    a = run_checkout(args.other.resolve(), "a", args.layout, inventory, logs / "a")
    b = run_checkout(ROOT, "b", args.layout, inventory, logs / "b")
    cluster, state, n_diffs = compare(a, b)
    files = len(b["states"]["convert"]["files"])
    changed = sum(1 for k, v in b["states"]["convert"]["files"].items() if b["start"]["files"].get(k) != v)
    print(f"compared {len(STEPS)} steps x {files} files on {len(NODES)} nodes ({changed} changed by the "
          f"conversion) + {len(CONFIGMAPS)} ConfigMaps, {n_diffs} dry-run diffs, the report")
    recaps = {lbl: {s: recap_changed(r["logs"][s]) for s, _ in STEPS} for lbl, r in (("a", a), ("b", b))}
    print(f"changed tasks per step (not compared: tasks were merged): {recaps}")
    if state:
        print(f"kubeha's own state ({STATE_DIR}, its dry-run diffs, report keys), {len(state)} difference(s):\n  "
              + "\n  ".join(state))
    if cluster:
        print(f"DIFFERENT: the cluster's files, ConfigMaps, dry-run diffs or report, {len(cluster)}:\n  "
              + "\n  ".join(cluster))
        return 1
    print("SAME: every step left the cluster's files and ConfigMaps as the other checkout's did, with the same "
          "dry-run diffs and report" + (" (kubeha's own state differs as listed)" if state else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
