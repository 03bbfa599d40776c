"""Adoption of a pod's process after a kubelet restart (kubeha_emu.procs.Proc.adopt): the same
process instance (pid + starttime) running the recorded program is adopted, also when it rewrote its
process title as nginx does; anything else is not."""

import os
import shutil
import subprocess
import time

import pytest

from kubeha_emu import procs

SLEEP = shutil.which("sleep")


def start_titled(title):
    """`sleep 30` whose cmdline is [title, "30"] (bash's exec -a), like a daemon that set its title."""
    proc = subprocess.Popen(["bash", "-c", 'exec -a "$0" %s 30' % SLEEP, title])
    for _ in range(100):
        if procs.cmdline(proc.pid) and procs.cmdline(proc.pid)[0] == title:
            return proc
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the titled process did not start")


def record(proc, argv):
    return {"pid": proc.pid, "starttime": procs.stat(proc.pid)[1], "argv": argv}


def test_adopts_a_process_that_rewrote_its_title():
    proc = start_titled("sleep: master process sleep 30")
    try:
        assert not procs.cmdline_matches(procs.cmdline(proc.pid), ["sleep", "30"])
        adopted = procs.Proc.adopt(record(proc, ["sleep", "30"]))
        assert adopted is not None and adopted.pid == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_does_not_adopt_another_program_or_instance():
    proc = start_titled("something else")
    try:
        assert procs.Proc.adopt(record(proc, ["nginx", "-g", "daemon off;"])) is None
        stale = record(proc, ["sleep", "30"])
        stale["starttime"] += 1  # same pid, another process instance
        assert procs.Proc.adopt(stale) is None
    finally:
        proc.kill()
        proc.wait()
