"""The emulators must be found by the write-up's `pidof kube-apiserver` (Debian's pidof skips
scripts without -x), keep their pid across the re-exec, and show the real name in `comm`."""

import os
import shutil
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


@pytest.mark.skipif(shutil.which("pidof") is None, reason="pidof (sysvinit-utils) not installed")
def test_pidof_finds_script_by_component_name(tmp_path):
    script = tmp_path / "kube-fakecomponent"
    script.write_text(
        "#!%s\nimport sys, time\nsys.path.insert(0, %r)\n"
        "from kubeha_emu.procname import become\nbecome('kube-fakecomponent', __file__)\n"
        "print('ready', flush=True)\ntime.sleep(60)\n" % ("/usr/bin/python3", ROOT)
    )
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "KUBEHA_EMU_PROCNAME"}
    proc = subprocess.Popen([str(script), "--flag=1"], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        found = subprocess.run(["pidof", "kube-fakecomponent"], capture_output=True, text=True)
        assert found.stdout.split() == [str(proc.pid)], "pidof must find the same pid after re-exec"
        with open("/proc/%d/comm" % proc.pid) as handle:
            assert handle.read().strip() == "kube-fakecompon"  # comm is cut at 15 characters
        with open("/proc/%d/cmdline" % proc.pid, "rb") as handle:
            argv = handle.read().split(b"\0")[:-1]
        assert argv[0] == b"kube-fakecomponent" and argv[-1] == b"--flag=1"
    finally:
        proc.kill()
        proc.wait()
