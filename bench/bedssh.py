"""SSH to a test-bed node the way Ansible's ssh connection reaches it (the bed's login key and
known_hosts from testbed/bed.py ssh-access, host keys verified, a ControlPersist master per node),
for the benchmark's own measurements: running a command as root with sudo, and a file upload by
sftp, which is what Ansible's ssh connection uses for put_file (transfer_method smart tries sftp
first)."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))
import bed  # noqa: E402

import yaml  # noqa: E402


def options():
    """ssh/sftp options: the testbed inventory's (key, known_hosts, ControlPersist) in their own
    control-socket directory, so the benchmark's masters never reuse Ansible's."""
    control = os.path.join(bed.SSH_DIR, "cp-bench")
    os.makedirs(control, mode=0o700, exist_ok=True)
    return bed.ssh_options() + ["-o", "ControlMaster=auto", "-o", "ControlPersist=120",
                                "-o", "ControlPath=" + os.path.join(control, "%C")]


def address(inventory, host):
    """The node's address in a generated benchmark inventory (bench/inventory.py)."""
    with open(inventory, encoding="utf-8") as handle:
        hosts = yaml.safe_load(handle)["all"]["hosts"]
    return hosts[host]["ansible_host"]


def root(ip, *remote, **kwargs):
    """Run a command on the node as root (sudo, no password), like a task with become."""
    return subprocess.run(["ssh", *options(), "%s@%s" % (bed.LOGIN_USER, ip), "sudo", "-n", *remote], **kwargs)


def login(ip, *remote, **kwargs):
    """Run a command on the node as the login user (no sudo)."""
    return subprocess.run(["ssh", *options(), "%s@%s" % (bed.LOGIN_USER, ip), *remote], **kwargs)


def sftp_put(ip, local, remote):
    """Upload one file by sftp over the node's control master (what put_file does)."""
    return subprocess.run(["sftp", *options(), "-b", "-", "%s@%s" % (bed.LOGIN_USER, ip)],
                          input="put %s %s\n" % (local, remote), text=True, capture_output=True, check=True)
