# Copyright: (c) 2026, the kubeha authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run kubeha's binary modules from a per-host cache: one remote command per call.

Every kubeha module has an action plugin of its name (plugins/action/<module>.py) that is this class:
Ansible runs a collection's action plugin of a module's name in place of its normal module path.
(Not one plugin routed from meta/runtime.yml: ansible-lint then calls every kubeha task
non-canonical and ansible-test wants documentation for the routed plugin.)

Ansible's own path for a binary module makes a remote temporary directory, copies the whole binary
(5 to 6 MB) and an arguments file, fixes permissions, runs it and removes the directory: five remote
commands and two uploads on every call.
This plugin keeps each binary on the host once, in a root-owned 0700 directory, named by the module
and its SHA-256 (`kubeconfig_server-<sha256>`; the install removes the module's older versions),
and runs it with the arguments on standard input (pipelining, the way Ansible runs Python modules):

  cached call     one remote command: check the cached binary's SHA-256, run it as `BINARY -`
  first call      that command reports the miss; then a temporary directory, the upload, and one
                  command that copies the file into the cache under a temporary name, checks its
                  SHA-256 and renames it into place only if it matches, then runs it

A cached binary whose checksum does not match (truncated, replaced) is never run: it is a miss and
is replaced. Two forks or two playbooks on one host are safe: each writes its own temporary name and
the rename is atomic.

Ansible's normal path is used instead, with a warning saying why, when the fast path cannot work:
pipelining off (the arguments must go on standard input), async, become to a user other than root
or a become method without pipelining, no root on the host, a cache directory where nothing can be
executed (noexec) or written, or a checksum mismatch after the upload. A host whose architecture has
no kubeha binary fails clearly instead.

Architectures: the module file itself (plugins/modules/<module>) is the x86_64 binary; the aarch64
binaries are <collection>/bin/aarch64/<module> (`scripts/build-modules.sh aarch64`, shipped as their
own archive). The remote command picks the checksum for `uname -m` among the architectures that have
a binary on the controller, so a cached call stays one command on either. Ansible's normal path can
only copy the module file, so it is refused (clearly) on a host that is not x86_64.

Variables:
  kubeha_module_cache_dir   the cache directory (default /var/lib/kubeha/modules)
  kubeha_module_cache       false: always use Ansible's normal path (default true)
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shlex

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash
from ansible.vars.clean import remove_internal_keys

try:  # ansible-core 2.19 and later encode module arguments through a serialization profile
    from ansible.module_utils.common.json import Direction, get_module_encoder
except ImportError:  # pragma: no cover - ansible-core 2.16 to 2.18
    Direction = get_module_encoder = None

display = Display()

DEFAULT_CACHE_DIR = "/var/lib/kubeha/modules"
# `uname -m` of the hosts kubeha can have binaries for, and where each binary is, relative to the
# collection's root (None: the module file itself)
ARCHITECTURES = {"x86_64": None, "aarch64": "bin/aarch64"}
# first word of every line the remote scripts print instead of a module result
MARKER = "kubeha-fast-path:"

# Run the cached binary if its SHA-256 is the expected one. Prints a MARKER line instead when the
# binary cannot be run from the cache; the module's own result is the binary's standard output.
# SHA-256 through OpenSSL where it is there (kubeha's hosts have it): about 5 times faster than
# coreutils' sha256sum, which has no SHA extensions (10 ms against 55 ms for a 6.8 MB file, measured
# on the test bed), and this runs before every call
SUM = """\
sum256() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r; else sha256sum; fi; }
"""

# The checksum of this host's architecture picks the binary (`arm64` is how some kernels name aarch64).
ARCH = """\
a=$(uname -m); [ "$a" != arm64 ] || a=aarch64
case "$a" in %(cases)s *) echo "%(marker)s architecture $a"; exit 0;; esac
b="$d/$m-$n"
"""

RUN = """\
if [ "$(id -u)" != 0 ]; then echo "%(marker)s not-root"; exit 0; fi
if [ -f "$b" ] && [ "$(sum256 <"$b" 2>/dev/null | cut -c1-64)" = "$n" ]; then
    "$b" -; rc=$?
    [ "$rc" -ne 126 ] || echo "%(marker)s noexec"
    exit "$rc"
fi
echo "%(marker)s miss $a"
"""

# Copy an uploaded binary into the cache: a temporary name in the cache directory, the checksum
# checked there, then an atomic rename; the upload directory is removed whatever happens.
INSTALL = """\
umask 077
give_up() { rm -f "${t:-}"; rm -rf "$up"; echo "%(marker)s $1"; exit 0; }
mkdir -p "$d" && chown root:root "$d" && chmod 0700 "$d" || give_up unwritable
t=$(mktemp "$d/.$m-$n.XXXXXX") || give_up unwritable
cat "$up/binary" >"$t" || give_up unwritable
rm -rf "$up"
[ "$(sum256 <"$t" | cut -c1-64)" = "$n" ] || give_up checksum
chmod 0700 "$t" && mv -f "$t" "$b" || give_up unwritable
for old in "$d/$m"-*; do [ "$old" = "$b" ] || rm -f "$old"; done
"""

REASONS = {
    "not-root": "the remote command does not run as root (become to root is needed to keep the cache)",
    "noexec": "nothing can be executed in the cache directory %(dir)s (mounted noexec?): set kubeha_module_cache_dir to an exec-able path",
    "unwritable": "the cache directory %(dir)s cannot be created or written",
    "checksum": "the binary copied into %(dir)s does not have the expected SHA-256 %(sha)s",
}

_digests = {}


def sha256_of(path):
    """SHA-256 of a local binary, remembered per (path, size, mtime) for this process."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]


class CachedBinaryAction(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        # the task's own action (resolved_action names this plugin once the routing applied)
        module = self._task.action

        reason = self._why_not_fast(task_vars)
        if reason is None:
            data = self._run_cached(module, task_vars)
            if MARKER not in data:
                return merge_hash(result, data)
            reason = data[MARKER]
        if reason:
            result.setdefault("warnings", []).append(
                "kubeha fast path not used for %s: %s; running the module the normal way (a copy of the binary per call)" % (module, reason))
        self._refuse_other_architecture(reason)
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    # ---- when the fast path applies ------------------------------------------------------------

    def _why_not_fast(self, task_vars):
        """None when the fast path applies; else why not ("" when the user turned it off)."""
        if not boolean(self._templar.template(task_vars.get("kubeha_module_cache", True)), strict=False):
            display.vvv("kubeha: kubeha_module_cache is false: Ansible's normal path for binary modules")
            return ""
        if self._task.async_val:
            return "async tasks run through Ansible's async wrapper"
        conn = self._connection
        if not getattr(conn, "has_pipelining", False):
            return "the connection %s cannot pipeline (the arguments go on standard input)" % conn.transport
        try:
            pipelining = conn.get_option("pipelining")
        except KeyError:
            pipelining = getattr(self._play_context, "pipelining", False)
        if not pipelining:
            return "pipelining is off (set pipelining = True under [connection] in ansible.cfg, or ansible_pipelining)"
        if conn.become:
            become_user = self.get_become_option("become_user") or "root"
            if become_user != "root":
                return "become_user is %s, not root" % become_user
            if not getattr(conn.become, "pipelining", True):
                return "the become method %s cannot pipeline" % conn.become.name
        return None

    # ---- the fast path -------------------------------------------------------------------------

    def _refuse_other_architecture(self, reason):
        """Ansible's normal path copies the module file, the x86_64 binary: refuse it elsewhere."""
        res = self._low_level_execute_command("uname -m", sudoable=False)
        arch = to_text(res.get("stdout", "")).strip()
        if res.get("rc") == 0 and arch != "x86_64":
            raise AnsibleActionFail(
                "kubeha: this host is %s and Ansible's normal module path can only run the x86_64 binary; the fast path"
                " (module cache) runs the %s binary but cannot be used here: %s" % (arch, arch, reason or "kubeha_module_cache is false"))

    def _run_cached(self, module, task_vars):
        """The module's result, or {MARKER: reason} when the normal path has to take over."""
        binaries = self._binaries(module)
        sums = dict((arch, sha256_of(path)) for arch, path in binaries.items())
        cache_dir = self._templar.template(task_vars.get("kubeha_module_cache_dir", DEFAULT_CACHE_DIR))
        if not isinstance(cache_dir, str) or not cache_dir.startswith("/") or "\n" in cache_dir:
            raise AnsibleActionFail("kubeha_module_cache_dir must be an absolute path, got %r" % (cache_dir,))
        name = module.rpartition(".")[2]
        cases = " ".join("%s) n=%s;;" % (arch, sha) for arch, sha in sorted(sums.items()))
        prelude = SUM + "d=%s; m=%s\n" % (shlex.quote(cache_dir.rstrip("/") or "/"), shlex.quote(name))
        prelude += ARCH % {"marker": MARKER, "cases": cases}
        run = RUN % {"marker": MARKER}
        args = self._arguments(module, task_vars)

        res = self._remote(prelude + run, args)
        state = self._marker(res)
        sha = None
        if state is not None and state.startswith("miss "):
            arch = state.split(" ", 1)[1]
            local, sha = binaries[arch], sums[arch]
            display.vvv("kubeha: the %s binary of %s is not in %s on this host yet: uploading it once" % (arch, name, cache_dir))
            upload = self._make_tmp_path()
            self._transfer_file(local, self._connection._shell.join_path(upload, "binary"))
            self._connection._shell.tmpdir = None  # the install script removes it
            install = INSTALL % {"marker": MARKER}
            res = self._remote(prelude + "up=%s\n" % shlex.quote(upload) + install + run, args)
            state = self._marker(res)
        if state is None:
            return self._result(res)
        if state.startswith("architecture "):
            arch = state.split(" ", 1)[1]
            if arch in ARCHITECTURES:
                raise AnsibleActionFail(
                    "kubeha: this host is %s and the controller has no %s binary of %s (%s); build it with"
                    " `scripts/build-modules.sh %s` or install kubeha's %s archive" % (
                        arch, arch, name, self._arch_path(binaries["x86_64"], arch), arch, arch))
            raise AnsibleActionFail("kubeha has module binaries for %s only; this host is %s" % (", ".join(ARCHITECTURES), arch))
        if state.startswith("miss"):  # installed and still not there: the cache is not ours to trust
            state = "checksum"
        return {MARKER: REASONS.get(state, state) % {"dir": cache_dir, "sha": sha}}

    def _binaries(self, module):
        """{architecture: local binary} for the architectures whose binary is on the controller."""
        found = self._shared_loader_obj.module_loader.find_plugin_with_context(module, collection_list=self._task.collections)
        if not found.resolved or not found.plugin_resolved_path:
            raise AnsibleActionFail("kubeha: the module %s has no binary on the controller (build it: make build)" % module)
        module_file = found.plugin_resolved_path
        binaries = {"x86_64": module_file}
        for arch, where in ARCHITECTURES.items():
            path = where and self._arch_path(module_file, arch)
            if path and os.path.isfile(path):
                binaries[arch] = path
        return binaries

    @staticmethod
    def _arch_path(module_file, arch):
        """<collection>/<ARCHITECTURES[arch]>/<module>; the module file is <collection>/plugins/modules/<module>."""
        root = os.path.dirname(os.path.dirname(os.path.dirname(module_file)))
        return os.path.join(root, ARCHITECTURES[arch], os.path.basename(module_file))

    def _arguments(self, module, task_vars):
        """The arguments object Ansible would write to the binary's arguments file."""
        args = dict(self._task.args)
        self._update_module_args(module, args, task_vars)
        if get_module_encoder is not None:
            return json.dumps(args, cls=get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE))
        return json.dumps(args)

    def _remote(self, script, args):
        # the script is on the command line (no secret in it); the arguments go on standard input
        cmd = "/bin/sh -c " + shlex.quote(script)
        return self._low_level_execute_command(cmd, sudoable=True, in_data=to_bytes(args))

    @staticmethod
    def _marker(res):
        out = to_text(res.get("stdout", "")).strip()
        if out.startswith(MARKER) and "\n" not in out:
            return out[len(MARKER):].strip()
        return None

    def _result(self, res):
        """Parse the module's output as Ansible's normal path does."""
        if "profile" in inspect.signature(self._parse_returned_data).parameters:
            data = self._parse_returned_data(res, "legacy")
        else:  # pragma: no cover - ansible-core before 2.19
            data = self._parse_returned_data(res)
        remove_internal_keys(data)
        return data
