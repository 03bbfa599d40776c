"""chaos/figures.py and chaos/keep.py on synthetic chaos output: what counts as full marks, what
makes the figures exit 1, and what keep.py refuses to commit. The suites themselves need the test
bed (`make chaos`); these tools decide what docs/reliability.md records, so they are tested here."""

import json
import os
import subprocess
import sys

import pytest

CHAOS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = [["play", f"task {n}"] for n in range(1, 5)]


def summary(layout, kill_range=None, rollback_ok=True, recovered=None):
    """One layout's summary.json as chaos/suite.py writes it: a chain of kill points 1-4 over four
    tasks (or the segment kill_range of it), every kill recovered unless `recovered` says fewer."""
    first, last = kill_range or (1, len(TASKS))
    kills = [{"kill_at": n, "boundary": TASKS[n - 1], "problems": []} for n in range(first, last + 1)]
    total = len(kills)
    return {
        "layout": layout, "bed": "fresh",
        "availability": {"ok": 100, "total": 100, "seconds": 10.0, "rate": 10.0, "below_min_rate": []},
        "interruptions": {"recovered": total if recovered is None else recovered, "total": total,
                          "task_starts": 6, "tasks": len(TASKS), "scope": "each task once",
                          "kills": kills, "final_problems": [], "task_keys": TASKS,
                          "segment": {"from": first, "to": last, "of": len(TASKS)} if kill_range else None},
        "bad_inputs": {"clean": 3, "total": 3},
        "failure_handling": {"problems": [], "rc": 2, "probe_ok": 5, "probe_total": 5, "message": "stopped"},
        "security": {"problems": []},
        "reference": {"seconds": 60.0},
        "reset_after_reference": ({"rollback_ok": True, "rollback_seconds": 80.0} if rollback_ok else
                                  {"rollback_ok": False, "rollback_problems": ["kubeha-master1:/etc/kubernetes/ssl/apiserver.crt differs"]}),
    }


def run_dir(tmp_path, name, *summaries, run_json=True):
    """A chaos/out/<stamp> directory as chaos/run.sh leaves it."""
    out = tmp_path / name
    for s in summaries:
        (out / s["layout"]).mkdir(parents=True)
        (out / s["layout"] / "summary.json").write_text(json.dumps(s))
    (out / "module-kill.json").write_text(json.dumps(
        {"total": 2, "pair_ok": 2, "recovered_ok": 2, "killed_mid_swap": 1, "mismatched_right_after_kill": 0}))
    (out / "tls-guard.txt").write_text("tls-guard: no code path disables TLS verification (self-test ok)\n")
    if run_json:
        (out / "run.json").write_text(json.dumps({"command": "make chaos", "seconds": 125, "commit": "abc1234"}))
    return str(out)


def figures(*dirs, doc=None):
    argv = [sys.executable, os.path.join(CHAOS, "figures.py"), *dirs] + (["--doc", doc] if doc else [])
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_both_layouts_in_full_are_full_marks_and_end_with_the_three_lines(tmp_path):
    proc = figures(run_dir(tmp_path, "a", summary("pinned"), summary("kubespray")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-3:] == ["availability: 200/200 requests", "interruptions: 8/8",
                                             "bad inputs: 6/6"]
    assert "rollback: OK" in proc.stdout


def test_a_rollback_that_is_not_byte_for_byte_fails_and_is_named(tmp_path):
    proc = figures(run_dir(tmp_path, "a", summary("pinned"), summary("kubespray", rollback_ok=False)))
    assert proc.returncode == 1
    assert "rollback: FAILED in kubespray" in proc.stdout


def test_a_missing_layout_is_not_the_full_suite(tmp_path):
    proc = figures(run_dir(tmp_path, "a", summary("pinned")))
    assert proc.returncode == 1
    assert "layouts not run: kubespray" in proc.stdout


def test_one_unrecovered_kill_fails(tmp_path):
    proc = figures(run_dir(tmp_path, "a", summary("pinned"), summary("kubespray", recovered=3)))
    assert proc.returncode == 1
    assert "interruptions: 7/8" in proc.stdout


def test_segments_that_cover_every_task_sum_to_full_marks_and_the_doc_names_the_failing_segment(tmp_path):
    doc = tmp_path / "reliability.md"
    doc.write_text("head\n<!-- chaos:figures -->\nold\n<!-- /chaos:figures -->\ntail\n")
    first = run_dir(tmp_path, "a", summary("pinned", (1, 2)), summary("kubespray"))
    second = run_dir(tmp_path, "b", summary("pinned", (3, 4), rollback_ok=False))
    proc = figures(first, second, doc=str(doc))
    assert proc.returncode == 1
    assert "rollback: FAILED in pinned (kill points 3-4)" in proc.stdout
    text = doc.read_text()
    assert "old" not in text and text.startswith("head\n") and text.endswith("tail\n")
    assert "FAILED: kubeha-master1:/etc/kubernetes/ssl/apiserver.crt differs" in text
    assert "initial state: **FAILED in pinned (kill points 3-4)**" in text
    # the same segments with both rollbacks byte for byte: full marks
    third = run_dir(tmp_path, "c", summary("pinned", (3, 4)))
    assert figures(first, third).returncode == 0


def test_overlapping_segments_are_refused(tmp_path):
    proc = figures(run_dir(tmp_path, "a", summary("pinned", (1, 3)), summary("kubespray")),
                   run_dir(tmp_path, "b", summary("pinned", (3, 4))))
    assert proc.returncode == 2
    assert "segments overlap" in proc.stderr


def keep(*dirs, results):
    return subprocess.run([sys.executable, os.path.join(CHAOS, "keep.py"), *dirs, "--results", results],
                          capture_output=True, text=True, check=False)


def test_keep_copies_what_figures_needs_and_figures_reads_it(tmp_path):
    out = run_dir(tmp_path, "20261125T000000Z", summary("pinned"), summary("kubespray"))
    (tmp_path / "20261125T000000Z" / "pinned" / "reference.out").write_text("ansible output\n")
    results = tmp_path / "results"
    proc = keep(out, results=str(results))
    assert proc.returncode == 0, proc.stderr
    kept = results / "20261125T000000Z"
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == [
        "kubespray/summary.json", "module-kill.json", "pinned/summary.json", "run.json", "tls-guard.txt"]
    assert json.loads((kept / "run.json").read_text())["kept_from"]
    assert figures(str(kept)).returncode == 0
    # never twice into the same place
    assert keep(out, results=str(results)).returncode != 0


@pytest.mark.parametrize("secret", ["client-key-data: QUJD", "-----BEGIN RSA PRIVATE KEY-----",
                                    "-----BEGIN CERTIFICATE-----", "client-certificate-data: QUJD"])
def test_keep_refuses_key_material_and_writes_nothing(tmp_path, secret):
    s = summary("pinned")
    s["failure_handling"]["message"] = f"oops {secret}"
    out = run_dir(tmp_path, "x", s)
    results = tmp_path / "results"
    proc = keep(out, results=str(results))
    assert proc.returncode != 0 and "not keeping key material" in proc.stderr
    assert not results.exists() or not any(results.iterdir())


def test_keep_refuses_a_run_without_run_json(tmp_path):
    out = run_dir(tmp_path, "x", summary("pinned"), run_json=False)
    proc = keep(out, results=str(tmp_path / "results"))
    assert proc.returncode != 0 and "no run.json" in proc.stderr
