"""The interruption chain's phase skipping (chaos/suite.py PHASES, resume_tags) against
playbooks/convert.yml itself, so that a renamed play or a new tag cannot silently make a chain
run skip work that was not done."""

import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import suite  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))


def plays():
    with open(os.path.join(REPO, "playbooks", "convert.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def play_tags(play):
    """The tags a play runs under: its own, or (include_role with apply) its tasks' tags."""
    tags = set(play.get("tags") or [])
    for task in play.get("tasks") or []:
        tags |= set(task.get("tags") or [])
    return tags


def test_every_play_is_an_always_play_or_in_one_phase_whose_tags_select_it():
    for play in plays():
        tags = play_tags(play)
        index = suite.phase_of(play["name"])
        if "always" in tags:
            assert index == -1, play["name"]
        else:
            assert index >= 0, f"{play['name']}: in no phase of chaos/suite.py PHASES"
            assert tags & set(suite.PHASES[index][0]), f"{play['name']}: {tags} vs {suite.PHASES[index][0]}"


def test_phases_follow_the_playbook_order():
    indexes = [suite.phase_of(p["name"]) for p in plays()]
    assert indexes == sorted(indexes), indexes


def test_a_run_after_a_kill_runs_that_phase_and_every_later_one():
    assert suite.resume_tags(None) is None
    assert suite.resume_tags("Kubeha | preflight (read-only, every host; any problem stops the run before any change)") is None
    after_masters = suite.resume_tags("Kubeha | masters, one at a time, kubeconfigs and restarts")
    assert "masters" in after_masters and "workers" in after_masters and "report" in after_masters
    after_workers = suite.resume_tags("Kubeha | workers in batches")
    assert "masters" not in after_workers
    assert {"workers", "configmaps", "kube_proxy", "local_proxy", "verify", "report"} <= set(after_workers)
    assert suite.resume_tags("Kubeha | report") == ["report"]
