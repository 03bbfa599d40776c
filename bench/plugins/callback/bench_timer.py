# kubeha benchmark callback: wall-clock times of every play and task (JSON), and optionally the
# bytes Ansible sends to the hosts through its ssh connection.
#
# Enable with ANSIBLE_CALLBACK_PLUGINS=bench/plugins/callback ANSIBLE_CALLBACKS_ENABLED=bench_timer.
#   BENCH_TIMER_OUT=<file.json>  plays and tasks: name, path, start, end (time.time()), hosts
#   BENCH_BYTES_OUT=<file.jsonl> one line per put_file / exec_command of the connection:
#                                {"op", "host", "bytes", "cmd_bytes", "in_bytes", "path"}
# The byte counter wraps the connection class in the controller process before the task
# workers fork, so every worker's transfers are counted (a real count, not an estimate).
from __future__ import annotations

DOCUMENTATION = """
name: bench_timer
type: aggregate
short_description: kubeha benchmark timings (plays, tasks) and bytes sent to hosts
description:
  - Writes the start and end time of every play and task to the JSON file named by BENCH_TIMER_OUT.
  - When BENCH_BYTES_OUT is set, counts the bytes the ssh connection sends.
requirements:
  - enable in ansible.cfg or ANSIBLE_CALLBACKS_ENABLED
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


def _connection_classes():
    """The connection plugins whose transfers are counted: Ansible's ssh, how every inventory of the
    test bed reaches the nodes."""
    from ansible.plugins.connection import ssh as ssh_conn

    return [ssh_conn.Connection]


def _remote_host(connection):
    """The address the ssh connection reaches (ansible_host)."""
    return connection.get_option("host") or connection._play_context.remote_addr


def _install_byte_counter(path):
    """Wrap put_file/exec_command of the connection classes to log what is sent. The plugin loader
    hands out the module already in sys.modules, so the classes wrapped here are the ones the
    task workers (forked later) use."""

    def log(entry):
        line = (json.dumps(entry) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    for cls in _connection_classes():
        if getattr(cls, "_kubeha_bench_wrapped", False):
            continue
        _wrap(cls, log)


def _wrap(cls, log):
    orig_exec = cls.exec_command
    orig_put = cls.put_file

    def exec_command(self, cmd, in_data=None, sudoable=True):
        cmd_bytes = len(cmd.encode() if isinstance(cmd, str) else cmd)
        in_bytes = len(in_data) if in_data else 0
        log({"op": "exec", "host": _remote_host(self), "cmd_bytes": cmd_bytes,
             "in_bytes": in_bytes, "bytes": cmd_bytes + in_bytes, "pid": os.getpid(), "ts": time.time()})
        return orig_exec(self, cmd, in_data=in_data, sudoable=sudoable)

    def put_file(self, in_path, out_path):
        size = os.path.getsize(in_path)
        log({"op": "put", "host": _remote_host(self), "bytes": size, "path": out_path,
             "local": os.path.basename(in_path), "pid": os.getpid(), "ts": time.time()})
        return orig_put(self, in_path, out_path)

    cls.exec_command = exec_command
    cls.put_file = put_file
    cls._kubeha_bench_wrapped = True


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._out = os.environ.get("BENCH_TIMER_OUT")
        self._plays = []
        self._tasks = []
        self._current = None
        self._start = time.time()
        bytes_out = os.environ.get("BENCH_BYTES_OUT")
        if bytes_out:
            _install_byte_counter(bytes_out)

    def _close_task(self, now):
        if self._current is not None:
            self._current["end"] = now
            self._tasks.append(self._current)
            self._current = None

    def _open_task(self, task, handler=False):
        now = time.time()
        self._close_task(now)
        self._current = {"name": task.get_name(), "path": task.get_path() or "", "action": task.action,
                         "handler": handler, "play": self._plays[-1]["name"] if self._plays else "",
                         "start": now, "end": None, "results": {}}

    def v2_playbook_on_play_start(self, play):
        now = time.time()
        self._close_task(now)
        if self._plays and self._plays[-1]["end"] is None:
            self._plays[-1]["end"] = now
        self._plays.append({"name": play.get_name(), "start": now, "end": None})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._open_task(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._open_task(task, handler=True)

    def _result(self, result, status):
        if self._current is None:
            return
        if status == "ok" and result._result.get("changed"):
            status = "changed"
        host = result._host.get_name()
        self._current["results"][host] = status
        # a loop's items that changed something (e.g. which components a component_restart loop
        # restarted): bench/floor.py replays them
        items = [r.get("item") for r in result._result.get("results") or [] if isinstance(r, dict) and r.get("changed")]
        # a single component_restart task (kubeha's worker kubelet) that restarted its literal `name`
        name = result._task.args.get("name") if result._task is not None else None
        if (not items and status == "changed" and str(self._current["action"]).endswith("component_restart")
                and isinstance(name, str) and "{{" not in name):
            items = [name]
        if items:
            self._current.setdefault("changed_items", {})[host] = items

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        now = time.time()
        self._close_task(now)
        if self._plays and self._plays[-1]["end"] is None:
            self._plays[-1]["end"] = now
        if not self._out:
            return
        summary = {h: stats.summarize(h) for h in sorted(stats.processed.keys())}
        with open(self._out, "w", encoding="utf-8") as handle:
            json.dump({"start": self._start, "end": now, "plays": self._plays, "tasks": self._tasks,
                       "stats": summary}, handle, indent=1)
