"""Host processes standing in for containers: start in their own session (so they outlive the
kubelet, like containers do), recognise them again after a kubelet restart through /proc, stop
them with SIGTERM then SIGKILL."""

import os
import re
import signal
import subprocess
import time

_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


def expand(text, env):
    """Kubernetes $(VAR) expansion in command/args: $(VAR) from the container env, $$ -> $,
    unknown references left as they are."""
    def repl(match):
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return _VAR.sub(repl, str(text))


def stat(pid):
    """(state, starttime) of `pid`, or None when there is no such process."""
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except (OSError, ValueError):
        return None
    fields = text[text.rfind(")") + 2:].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0")[:-1]]


def exe_matches(pid, argv):
    """True when the program `pid` runs is argv[0]'s. Daemons such as nginx rewrite their process
    title ("nginx: master process ..."), so their cmdline no longer shows the argv they were started
    with; pid + starttime already pin the process instance, this only confirms the program."""
    if not argv:
        return False
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return False
    return os.path.basename(exe) == os.path.basename(argv[0])


def cmdline_matches(actual, argv):
    """True when /proc cmdline `actual` is `argv`, also when the kernel ran argv[0] through a
    shebang interpreter (then cmdline is [interpreter..., /path/to/argv0, args...])."""
    if not actual or not argv:
        return False
    if actual == list(argv):
        return True
    tail = len(argv) - 1
    if len(actual) < len(argv):
        return False
    head = actual[len(actual) - len(argv)]
    return os.path.basename(head) == os.path.basename(argv[0]) and \
        (tail == 0 or actual[-tail:] == list(argv[1:]))


class Proc:
    """A running pod process: our child (popen) or adopted after a kubelet restart (pid only)."""

    def __init__(self, pid, starttime, argv, popen=None, started=None):
        self.pid = pid
        self.starttime = starttime
        self.argv = list(argv)
        self.popen = popen
        self.started = started if started is not None else time.monotonic()

    def alive(self):
        if self.popen is not None:
            return self.popen.poll() is None
        info = stat(self.pid)
        return info is not None and info[0] not in ("Z", "X") and info[1] == self.starttime

    def exit_code(self):
        return self.popen.returncode if self.popen is not None else None

    def signal(self, signum):
        try:
            if os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, signum)
            else:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, grace):
        """SIGTERM, wait up to `grace` seconds, SIGKILL. Returns how it ended."""
        if not self.alive():
            return "already exited"
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self.alive():
                return "terminated"
            time.sleep(0.1)
        self.signal(signal.SIGKILL)
        for _ in range(50):
            if not self.alive():
                break
            time.sleep(0.1)
        return "killed"

    def record(self):
        return {"pid": self.pid, "starttime": self.starttime, "argv": self.argv}

    @classmethod
    def adopt(cls, record):
        """The process a pidfile record describes, if it still runs the same command."""
        try:
            pid = int(record["pid"])
            starttime = int(record["starttime"])
            argv = list(record["argv"])
        except (KeyError, TypeError, ValueError):
            return None
        info = stat(pid)
        if info is None or info[0] in ("Z", "X") or info[1] != starttime:
            return None
        if not (cmdline_matches(cmdline(pid), argv) or exe_matches(pid, argv)):
            return None
        return cls(pid, starttime, argv, popen=None)


def start(argv, env, log_path):
    """Start `argv` in a new session with stdout/stderr appended to `log_path`."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    full_env = dict(os.environ)
    full_env.update(env)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 env=full_env, start_new_session=True, close_fds=True)
    info = None
    for _ in range(20):
        info = stat(popen.pid)
        if info is not None:
            break
        time.sleep(0.01)
    return Proc(popen.pid, info[1] if info else 0, argv, popen=popen)
