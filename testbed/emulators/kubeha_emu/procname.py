"""Make an emulator's process look like the real component to process tools.

Debian's `pidof` (sysvinit-utils) matches the basename of argv[0] or of the executable and skips
scripts unless given `-x`; the write-up's drill is `kill -s SIGHUP $(pidof kube-apiserver)`. So the
script re-executes its interpreter once with argv[0] set to the component's name (same pid, as
`exec -a` does) and sets the kernel's `comm` to it, so `pidof`, `ps` and /proc-based tools see
`kube-apiserver`, not `python3`.
"""

import ctypes
import os
import sys

_MARK = "KUBEHA_EMU_PROCNAME"
_PR_SET_NAME = 15


def become(name, script):
    """Re-exec as `name` unless already done for this name; then set comm. Never returns on
    re-exec. A child started by another emulator carries that emulator's mark, so it re-execs."""
    if os.environ.get(_MARK) != name:
        env = dict(os.environ)
        env[_MARK] = name
        interpreter = os.path.realpath("/proc/self/exe")
        os.execve(interpreter, [name, os.path.realpath(script)] + sys.argv[1:], env)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass  # comm stays the script name, which the kernel already set for the shebang exec
