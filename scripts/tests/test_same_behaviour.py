"""The pure parts of scripts/same_behaviour.py: what it masks, how it reads a --diff log, which
differences it counts as kubeha's own state."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import same_behaviour as sb  # noqa: E402

LOG = """TASK [x] ***
--- before: /etc/kubernetes/admin.conf
+++ after: /etc/kubernetes/admin.conf
@@ -5,1 +5,1 @@
-    server: https://172.30.0.11:6443
+    server: https://172.30.0.10:6443

changed: [kubeha-master1]
--- before
+++ after: /var/lib/kubeha/kube-proxy-roll-pending
@@ -0,0 +1 @@
+marker

PLAY RECAP *********
kubeha-master1 : ok=3 changed=2 unreachable=0
kubeha-worker1 : ok=1 changed=1 unreachable=0
"""


def test_masks_times_and_pids_only():
    assert sb.mask("/etc/kubernetes/admin.conf.1234.2026-12-05@04:01:02~") == "/etc/kubernetes/admin.conf.<pid>.<time>~"
    assert sb.mask("/var/lib/kubeha/original.rolled-back-20261205T040102Z/x") == "/var/lib/kubeha/original.rolled-back-<time>/x"
    assert sb.mask("/etc/kubernetes/ssl/.apiserver.crt.kubeha-77.tmp") == "/etc/kubernetes/ssl/.apiserver.crt.kubeha-<pid>.tmp"
    assert sb.mask("/etc/kubernetes/admin.conf") == "/etc/kubernetes/admin.conf"


def test_reads_each_diff_block_and_the_recap():
    blocks = sb.dry_run_diffs(LOG)
    assert len(blocks) == 2
    admin = next(b for b in blocks if "admin.conf" in b)
    assert admin.splitlines()[-2:] == ["-    server: https://172.30.0.11:6443", "+    server: https://172.30.0.10:6443"]
    marker = next(b for b in blocks if "roll-pending" in b)
    assert marker.splitlines()[-1] == "+marker"
    assert sb.recap_changed(LOG) == 3


def test_state_directory_differences_are_told_apart():
    blocks = sb.dry_run_diffs(LOG)
    admin = next(b for b in blocks if "admin.conf" in b)
    marker = next(b for b in blocks if "roll-pending" in b)
    assert not sb.is_state(admin)
    assert sb.is_state(marker)
    assert sb.is_state("kubeha-master1:/var/lib/kubeha/original/etc/kubernetes/kubelet.conf")
    assert not sb.is_state("kubeha-master1:/etc/kubernetes/kubelet.conf")


def test_report_times_are_dropped_everything_else_kept():
    report = {"generated_time": "t", "kubeconfigs": [{"host": "m1", "duration": 3, "after": "x"}]}
    assert sb.strip_times(report) == {"kubeconfigs": [{"host": "m1", "after": "x"}]}


def test_compare_counts_only_the_clusters_differences_as_failures():
    def run(files, log=LOG, report=None):
        state = {"files": files, "configmaps": {c: "d" for c in sb.CONFIGMAPS}, "raw": {}}
        return {"states": {s: state for s, _ in sb.STEPS}, "logs": {"check": log, "again": "PLAY RECAP\nh : changed=0\n"},
                "report": report or {"kubeconfigs": []}, "start": state}
    same = {"m1:/etc/kubernetes/admin.conf": "0:0 0o600 aa"}
    a = run({**same, "m1:/var/lib/kubeha/original/etc/kubernetes/kubelet.conf": "0:0 0o600 bb"})
    cluster, state, _ = sb.compare(a, run(same))
    assert cluster == [] and len(state) == len(sb.STEPS)
    cluster, _, _ = sb.compare(a, run({"m1:/etc/kubernetes/admin.conf": "0:0 0o600 cc"}))
    assert len(cluster) == len(sb.STEPS) and "admin.conf" in cluster[0]
