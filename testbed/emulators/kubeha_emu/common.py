"""Event log and status file every emulator writes, so tests can prove which server a component
used and whether it reached it (contract in docs/architecture.md)."""

import json
import os
import tempfile
import threading
import time

LOG_DIR = os.environ.get("KUBEHA_EMU_LOG_DIR", "/var/log/kubeha")
STATUS_DIR = os.environ.get("KUBEHA_EMU_STATUS_DIR", "/run/kubeha")


def atomic_write(path, data, mode=0o644):
    """Write `data` (bytes or str) to `path` so that readers never see a partial file."""
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class Reporter:
    """Writes the JSON-lines event log and the status file of one component.

    Repeated identical events (same event, server and detail) are logged once per `quiet` seconds,
    so a component polling every second does not flood its log, but every change of server or of
    outcome is logged at once.
    """

    def __init__(self, component, quiet=30.0):
        self.component = component
        self.quiet = quiet
        self.lock = threading.Lock()
        self.last = {}
        self.status = {
            "component": component,
            "pid": os.getpid(),
            "server": None,
            "connected": False,
            "last_ok": None,
            "last_error": None,
            "updated": None,
        }
        os.makedirs(LOG_DIR, exist_ok=True)
        self.log_path = os.path.join(LOG_DIR, component + ".log")
        self.status_path = os.path.join(STATUS_DIR, component + ".json")

    def event(self, event, server=None, detail=None, force=False):
        now = time.time()
        key = (event, server, detail)
        with self.lock:
            previous = self.last.get(event)
            if not force and previous and previous[0] == key and now - previous[1] < self.quiet:
                return
            self.last[event] = (key, now)
            record = {
                "ts": round(now, 3),
                "component": self.component,
                "pid": os.getpid(),
                "event": event,
                "server": server,
                "detail": detail,
            }
            with open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")

    def ok(self, server, detail=None):
        """Record a successful exchange with `server`."""
        self.event("connect", server, detail)
        self.update(server=server, connected=True, last_ok=time.time())

    def fail(self, server, error):
        """Record a failed exchange with `server`."""
        self.event("error", server, str(error))
        self.update(server=server, connected=False, last_error=str(error))

    def update(self, **fields):
        with self.lock:
            self.status.update(fields)
            self.status["updated"] = time.time()
            snapshot = json.dumps(self.status, sort_keys=True)
        atomic_write(self.status_path, snapshot + "\n")
