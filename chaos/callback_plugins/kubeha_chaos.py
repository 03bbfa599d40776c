# kubeha chaos callback: records every task start, kills ansible-playbook at task start N, and runs a
# fault-injection command after a chosen task succeeded on a chosen host.
#
# Enable with ANSIBLE_CALLBACK_PLUGINS=<repo>/chaos/callback_plugins and
# ANSIBLE_CALLBACKS_ENABLED=kubeha_chaos. Environment:
#   KUBEHA_CHAOS_TASKLOG   file: one line per task start, "<n>\t<play>\t<task>" (appended, fsynced)
#   KUBEHA_CHAOS_KILL_AT   N >= 1: at the N-th v2_playbook_on_task_start, SIGKILL the process group
#                          of ansible-playbook (it must lead its own group: start it with setsid;
#                          otherwise only its own pid is killed, never the caller's group)
#   KUBEHA_CHAOS_KILL_TASK "<occurrence>\t<play>\t<task>": the same kill at the start of the
#                          occurrence-th start of that task in that play (a re-run after a kill
#                          skips tasks a first run needs, so a plain index would drift; the
#                          occurrence keeps serial batches apart: master 1, 2, 3)
#   KUBEHA_CHAOS_INJECT_AFTER  "<task name substring>@<inventory host>": when that task is ok on
#                          that host (first time only), run KUBEHA_CHAOS_INJECT_CMD (sh -c) and wait
#                          for it before Ansible goes on
#   KUBEHA_CHAOS_INJECT_CMD    the command
# Nothing of the task results is written anywhere: only task and host names.
from __future__ import annotations

import os
import signal
import subprocess
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: kubeha_chaos
type: aggregate
short_description: kill ansible-playbook at task N and inject faults (kubeha chaos suites)
description:
  - Test-only callback of kubeha's chaos suites; see chaos/callback_plugins/kubeha_chaos.py.
requirements:
  - enable it in ANSIBLE_CALLBACKS_ENABLED
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kubeha_chaos"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._count = 0
        self._play = ""
        self._tasklog = os.environ.get("KUBEHA_CHAOS_TASKLOG") or None
        kill_at = os.environ.get("KUBEHA_CHAOS_KILL_AT", "").strip()
        self._kill_at = int(kill_at) if kill_at else 0
        kill_task = os.environ.get("KUBEHA_CHAOS_KILL_TASK", "")
        self._kill_task = None
        if kill_task:
            occurrence, play, task = kill_task.split("\t", 2)
            self._kill_task = (int(occurrence), play, task)
        self._seen = {}
        inject = os.environ.get("KUBEHA_CHAOS_INJECT_AFTER", "")
        self._inject_task, _, self._inject_host = inject.rpartition("@")
        self._inject_cmd = os.environ.get("KUBEHA_CHAOS_INJECT_CMD", "")
        self._injected = False

    def _log(self, line):
        if not self._tasklog:
            return
        with open(self._tasklog, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name().strip()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._count += 1
        name = task.get_name().strip().replace("\t", " ")
        key = (self._play, name)
        self._seen[key] = self._seen.get(key, 0) + 1
        by_task = self._kill_task is not None and self._kill_task == (self._seen[key], self._play, name)
        if by_task or (self._kill_at and self._count == self._kill_at):
            self._log(f"{self._count}\t{self._play}\t{name}\tKILL")
            if os.getpgrp() == os.getpid():
                os.killpg(os.getpgrp(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # never reached
        self._log(f"{self._count}\t{self._play}\t{name}")

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_runner_on_ok(self, result):
        if self._injected or not self._inject_task or not self._inject_cmd:
            return
        if result._host.get_name() != self._inject_host:
            return
        if self._inject_task not in result._task.get_name():
            return
        self._injected = True
        self._log(f"-\t{self._play}\tINJECT after {result._task.get_name().strip()} on {self._inject_host}")
        completed = subprocess.run(["sh", "-c", self._inject_cmd], check=False)
        self._log(f"-\t{self._play}\tINJECT rc={completed.returncode}")
