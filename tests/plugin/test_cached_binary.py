"""The action plugin kubeha.control_plane (plugins/plugin_utils/cached_binary.py, an action plugin per module), run by ansible-playbook on this machine over
the local connection (root, pipelining as ansible.cfg sets it), against a copy of a kubectl-written
kubeconfig from tests/fixtures/realworld. The test bed runs the same plugin over SSH with become.

What is checked: the first call uploads the binary into the cache (root-owned, 0700, named by its
SHA-256), every later call is one remote command; the result (check mode, diff, real run) is the
one Ansible's normal path gives; a bad binary in the cache is replaced and never run; the fallbacks
(no pipelining, become to a non-root user, noexec cache, turned off) warn and still give the
module's result; module_defaults and no_log behave as with the plain module; two playbooks filling
an empty cache at once both succeed.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = os.path.join(REPO, "ansible", "ansible_collections", "kubeha", "control_plane", "plugins", "modules")
FIXTURE = os.path.join(REPO, "tests", "fixtures", "realworld", "kubeconfig", "kubectl-admin-conf-embedded.conf")
OLD = "https://10.0.0.11:6443"
NEW = "https://10.0.0.100:6443"
FALLBACK = "kubeha fast path not used"

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(MODULES, "kubeconfig_server")), reason="module binaries not built (make build)")


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture
def work():
    root = tempfile.mkdtemp(prefix="kubeha-plugin-")
    os.chmod(root, 0o755)
    kubeconfig = os.path.join(root, "admin.conf")
    shutil.copy(FIXTURE, kubeconfig)
    os.chmod(kubeconfig, 0o644)
    yield {"root": root, "kubeconfig": kubeconfig, "cache": os.path.join(root, "cache", "modules")}
    subprocess.run(["umount", os.path.join(root, "noexec")], capture_output=True, check=False)
    shutil.rmtree(root)


def playbook(work, task, extra=None, verbosity=3, play=None, name="play.yml", show=True, env=None):
    """Run one task on localhost; returns (rc, the task's result as JSON, the whole output)."""
    play = dict(play or {})
    tasks = [dict(task, register="r")]
    if show:
        tasks.append({"ansible.builtin.debug": {"msg": "RESULT {{ r | to_json }}"}})
    play.update({"hosts": "localhost", "gather_facts": False, "tasks": tasks})
    path = os.path.join(work["root"], name)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump([play], handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **(env or {}))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", "kubeha_module_cache_dir=" + work["cache"], path]
    if verbosity:
        argv.append("-" + "v" * verbosity)
    for key, value in (extra or {}).items():
        argv += ["-e", json.dumps({key: value})]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False)
    out = proc.stdout + proc.stderr
    match = re.search(r'"msg": "RESULT (.*)"\n', out)
    result = json.loads(json.loads('"%s"' % match.group(1))) if match else None
    return proc.returncode, result, out


def server_task(work, server=NEW, **keys):
    task = {"kubeha.control_plane.kubeconfig_server": {"path": work["kubeconfig"], "server": server, "backup": False}}
    task.update(keys)
    return task


def remote_commands(out):
    return len(re.findall(r"^<localhost> EXEC ", out, re.M))


def uploads(out):
    return len(re.findall(r"^<localhost> PUT ", out, re.M))


def comparable(result):
    return {k: v for k, v in result.items() if k not in ("warnings",)}


def test_first_call_uploads_once_then_every_call_is_one_remote_command(work):
    rc, first, out = playbook(work, server_task(work, check_mode=True, diff=True))
    assert rc == 0, out
    assert uploads(out) == 1 and FALLBACK not in out, out
    binary = os.path.join(MODULES, "kubeconfig_server")
    cached = os.path.join(work["cache"], "kubeconfig_server-" + sha256(binary))
    assert sha256(cached) == sha256(binary)
    st = os.stat(work["cache"])
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o700)
    assert os.stat(cached).st_mode & 0o7777 == 0o700
    assert os.listdir(work["cache"]) == [os.path.basename(cached)], "no temporary name left"

    rc, again, out = playbook(work, server_task(work, check_mode=True, diff=True))
    assert rc == 0, out
    assert (remote_commands(out), uploads(out)) == (1, 0), out
    assert again == first and first["changed"] is True
    assert first["server_before"] == OLD and first["server_after"] == NEW
    # the arguments went on standard input: nothing of them on any command line
    assert work["kubeconfig"] not in "\n".join(line for line in out.splitlines() if "EXEC" in line)


def test_results_equal_the_normal_path_in_check_mode_diff_and_real_runs(work):
    for keys in ({"check_mode": True, "diff": True}, {"check_mode": True}, {"diff": True}):
        shutil.copy(FIXTURE, work["kubeconfig"])
        rc, plain, out = playbook(work, server_task(work, **keys), extra={"kubeha_module_cache": False})
        assert rc == 0 and FALLBACK not in out, out
        after_plain = open(work["kubeconfig"], encoding="utf-8").read()
        shutil.copy(FIXTURE, work["kubeconfig"])
        rc, fast, out = playbook(work, server_task(work, **keys))
        assert rc == 0, out
        assert comparable(fast) == comparable(plain), keys
        assert open(work["kubeconfig"], encoding="utf-8").read() == after_plain
    assert "diff" in fast and fast["changed"] is True
    assert NEW in open(work["kubeconfig"], encoding="utf-8").read()


def test_a_failure_is_the_module_failure_of_the_normal_path(work):
    rc, plain, _ = playbook(work, server_task(work, server="https://:6443", ignore_errors=True), extra={"kubeha_module_cache": False})
    rc2, fast, out = playbook(work, server_task(work, server="https://:6443", ignore_errors=True))
    assert fast["failed"] is True and comparable(fast) == comparable(plain), out
    assert "option `server`" in fast["msg"]


def test_a_bad_binary_in_the_cache_is_replaced_and_never_run(work):
    playbook(work, server_task(work, check_mode=True))
    cached = os.path.join(work["cache"], "kubeconfig_server-" + sha256(os.path.join(MODULES, "kubeconfig_server")))
    ran = os.path.join(work["root"], "impostor-ran")
    for bad in (b"#!/bin/sh\ntouch %s\n" % ran.encode(), open(cached, "rb").read()[:4096]):
        with open(cached, "wb") as handle:
            handle.write(bad)
        rc, result, out = playbook(work, server_task(work, check_mode=True))
        assert rc == 0 and result["server_before"] == OLD, out
        assert uploads(out) == 1, "detected as a miss and uploaded again"
        assert not os.path.exists(ran), "the replaced binary was run"
        assert sha256(cached) == sha256(os.path.join(MODULES, "kubeconfig_server"))


def test_older_versions_of_a_module_are_dropped_and_others_kept(work):
    os.makedirs(work["cache"], mode=0o700)
    stale = os.path.join(work["cache"], "kubeconfig_server-" + "0" * 64)
    other = os.path.join(work["cache"], "ha_verify-" + "0" * 64)
    for path in (stale, other):
        with open(path, "wb") as handle:
            handle.write(b"old")
    playbook(work, server_task(work, check_mode=True))
    assert not os.path.exists(stale) and os.path.exists(other)


def test_no_pipelining_falls_back_with_a_warning(work):
    rc, result, out = playbook(work, server_task(work, check_mode=True), extra={"ansible_pipelining": False})
    assert rc == 0, out
    assert FALLBACK in out and "pipelining is off" in out, out
    assert result["server_after"] == NEW
    assert not os.path.exists(work["cache"])


def test_become_to_a_non_root_user_falls_back_with_a_warning(work):
    task = server_task(work, check_mode=True, become=True)
    rc, result, out = playbook(work, task, play={"become_method": "su", "become_user": "nobody", "become_flags": "-s /bin/sh"})
    assert rc == 0, out
    assert FALLBACK in out and "become_user is nobody, not root" in out, out
    assert result["server_before"] == OLD


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a noexec tmpfs needs root")
def test_a_noexec_cache_directory_falls_back_with_a_warning(work):
    mount = os.path.join(work["root"], "noexec")
    os.makedirs(mount)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,size=64m", "tmpfs", mount], check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    work = dict(work, cache=os.path.join(mount, "modules"))
    rc, result, out = playbook(work, server_task(work, check_mode=True))
    assert rc == 0, out
    assert FALLBACK in out and "nothing can be executed in the cache directory" in out, out
    assert result["server_after"] == NEW


def test_module_defaults_and_no_log_behave_as_with_the_plain_module(work):
    task = {"kubeha.control_plane.kubeconfig_server": {"path": work["kubeconfig"]}, "check_mode": True}
    play = {"module_defaults": {"kubeha.control_plane.kubeconfig_server": {"server": NEW, "backup": False}}}
    rc, result, out = playbook(work, task, play=play)
    assert rc == 0 and result["server_after"] == NEW, out
    # no_log: the displayed result is censored at every verbosity; the arguments never appear
    rc, _, out = playbook(work, server_task(work, check_mode=True, no_log=True), verbosity=4, show=False)
    assert rc == 0 and "the output has been hidden due to the fact that 'no_log: true'" in out, out
    assert NEW not in out and work["kubeconfig"] not in out


def test_two_playbooks_filling_an_empty_cache_at_once_both_succeed(work):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    for name in ("a.yml", "b.yml"):
        with open(os.path.join(work["root"], name), "w", encoding="utf-8") as handle:
            json.dump([{"hosts": "localhost", "gather_facts": False, "tasks": [server_task(work, check_mode=True)]}], handle)
    procs = [subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
                               "-e", "kubeha_module_cache_dir=" + work["cache"], os.path.join(work["root"], name)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)
             for name in ("a.yml", "b.yml")]
    for proc in procs:
        out = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0 and FALLBACK not in out, out
    assert len(os.listdir(work["cache"])) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="the remote script checks that it runs as root")
def test_without_openssl_the_checksum_falls_back_to_sha256sum(work):
    """The remote script hashes with OpenSSL where it is there, else coreutils' sha256sum: run it with
    a PATH that has no openssl and a cached 'binary' (a script) that must be run only when its
    SHA-256 is the expected one."""
    sys.path.insert(0, os.path.join(REPO, "ansible"))
    from ansible_collections.kubeha.control_plane.plugins.plugin_utils import cached_binary as plugin
    tools = os.path.join(work["root"], "bin")
    os.makedirs(tools)
    for tool in ("sh", "id", "uname", "cut", "sha256sum", "cat"):
        os.symlink(shutil.which(tool), os.path.join(tools, tool))
    os.makedirs(work["cache"])
    fake = b"#!/bin/sh\necho '{\"changed\": false, \"msg\": \"ran\"}'\n"
    sha = hashlib.sha256(fake).hexdigest()
    with open(os.path.join(work["cache"], "x-" + sha), "wb") as handle:
        handle.write(fake)
    os.chmod(os.path.join(work["cache"], "x-" + sha), 0o700)
    script = plugin.SUM + 'd=%s; m=x\n' % work["cache"] + plugin.ARCH % {
        "marker": plugin.MARKER, "cases": "x86_64) n=%s;; aarch64) n=%s;;" % (sha, sha)} + plugin.RUN % {"marker": plugin.MARKER}
    env = {"PATH": tools}
    out = subprocess.run([os.path.join(tools, "sh"), "-c", script], env=env, capture_output=True, text=True, check=False)
    assert json.loads(out.stdout)["msg"] == "ran", out
    with open(os.path.join(work["cache"], "x-" + sha), "ab") as handle:
        handle.write(b"# changed\n")
    out = subprocess.run([os.path.join(tools, "sh"), "-c", script], env=env, capture_output=True, text=True, check=False)
    assert out.stdout.strip() == plugin.MARKER + " miss x86_64", out


def fake_uname(work, machine):
    """A directory to put first in PATH whose `uname -m` says `machine` (the remote script asks it)."""
    tools = os.path.join(work["root"], "uname-" + machine)
    os.makedirs(tools)
    with open(os.path.join(tools, "uname"), "w", encoding="utf-8") as handle:
        handle.write("#!/bin/sh\necho %s\n" % machine)
    os.chmod(os.path.join(tools, "uname"), 0o755)
    return tools + os.pathsep + os.environ["PATH"]


def collection_copy(work, aarch64_binary=None):
    """A copy of the collection (ANSIBLE_COLLECTIONS_PATH) with `aarch64_binary` as bin/aarch64/kubeconfig_server."""
    source = os.path.dirname(os.path.dirname(MODULES))
    root = os.path.join(work["root"], "collections")
    target = os.path.join(root, "ansible_collections", "kubeha", "control_plane")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("bin", "__pycache__"))
    if aarch64_binary is not None:
        os.makedirs(os.path.join(target, "bin", "aarch64"))
        path = os.path.join(target, "bin", "aarch64", "kubeconfig_server")
        with open(path, "wb") as handle:
            handle.write(aarch64_binary)
        os.chmod(path, 0o755)
    return root


@pytest.mark.skipif(os.geteuid() != 0, reason="the remote script checks that it runs as root")
def test_the_binary_of_the_host_architecture_is_uploaded_and_run(work):
    """An aarch64 host (uname -m says so) gets bin/aarch64/<module>, checked by its own SHA-256; an
    x86_64 host the module file; a host of another architecture, or an aarch64 host when the
    controller has no aarch64 binary, fails naming both; Ansible's normal path (which copies the x86_64
    module file) is refused on a host that is not x86_64."""
    stand_in = b"#!/bin/sh\ncat >/dev/null\necho '{\"changed\": false, \"msg\": \"the aarch64 binary ran\"}'\n"
    collections = collection_copy(work, stand_in)
    aarch64 = {"ANSIBLE_COLLECTIONS_PATH": collections, "PATH": fake_uname(work, "aarch64")}
    rc, result, out = playbook(work, server_task(work, check_mode=True), env=aarch64)
    assert rc == 0 and result["msg"] == "the aarch64 binary ran", out
    assert os.listdir(work["cache"]) == ["kubeconfig_server-" + hashlib.sha256(stand_in).hexdigest()]
    rc, result, out = playbook(work, server_task(work, check_mode=True), env=aarch64)
    assert rc == 0 and result["msg"] == "the aarch64 binary ran" and (remote_commands(out), uploads(out)) == (1, 0), out

    # the same collection on an x86_64 host: the module file, not the aarch64 one
    rc, result, out = playbook(work, server_task(work, check_mode=True), env={"ANSIBLE_COLLECTIONS_PATH": collections})
    assert rc == 0 and result["server_after"] == NEW, out
    assert "kubeconfig_server-" + sha256(os.path.join(MODULES, "kubeconfig_server")) in os.listdir(work["cache"])

    rc, result, out = playbook(work, server_task(work, check_mode=True, ignore_errors=True),
                               env={"ANSIBLE_COLLECTIONS_PATH": collections, "PATH": fake_uname(work, "riscv64")})
    assert result["failed"] and "binaries for x86_64, aarch64 only; this host is riscv64" in result["msg"], out

    shutil.rmtree(os.path.join(collections, "ansible_collections", "kubeha", "control_plane", "bin"))
    rc, result, out = playbook(work, server_task(work, check_mode=True, ignore_errors=True), env=aarch64)
    assert result["failed"] and "this host is aarch64 and the controller has no aarch64 binary of kubeconfig_server" in result["msg"], out
    assert "scripts/build-modules.sh aarch64" in result["msg"], out

    rc, result, out = playbook(work, server_task(work, check_mode=True, ignore_errors=True), env=aarch64,
                               extra={"kubeha_module_cache": False})
    assert result["failed"] and "can only run the x86_64 binary" in result["msg"], out
