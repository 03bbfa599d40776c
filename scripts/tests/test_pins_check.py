"""scripts/pins_check.py: what counts as a planted pin found, left, or not fixed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pins_check as pc  # noqa: E402

PLANTED = ["DaemonSet/kube-system/cilium", "kubeha-worker1:/home/ops/.kube/config"]


def pin(name, fixed=True, local=False):
    return {"accept_as": name, "fixed_by_kubeha": fixed, "local_by_design": local}


def report(before, after, nothing_pinned=True):
    return {"pins_before": before, "pins_after": after, "verdict": {"nothing_pinned": nothing_pinned}}


def test_every_planted_pin_found_and_none_left_passes():
    r = report([pin(n) for n in PLANTED] + [pin("x:/etc/kubernetes/admin.conf")],
               [pin("kubeha-master1:/etc/kubernetes/kubelet.conf", local=True)])
    assert pc.judge(r, PLANTED) == []


def test_a_planted_pin_the_scan_missed_fails():
    r = report([pin(PLANTED[0])], [])
    assert pc.judge(r, PLANTED) == ["the scan before the conversion did not find: " + PLANTED[1]]


def test_a_planted_pin_still_there_fails_and_so_does_an_unfixed_one():
    r = report([pin(n) for n in PLANTED], [pin(PLANTED[0]), pin("other", fixed=True)], nothing_pinned=False)
    problems = pc.judge(r, PLANTED)
    assert problems[0] == "still pinned after the conversion: " + PLANTED[0]
    assert problems[1] == "pins kubeha fixes are still there: " + PLANTED[0] + ", other"
    assert problems[2].startswith("verdict:")


def test_a_local_by_design_pin_counts_for_nothing():
    r = report([pin(PLANTED[0], local=True), pin(PLANTED[1])], [])
    assert pc.judge(r, PLANTED) == ["the scan before the conversion did not find: " + PLANTED[0]]
