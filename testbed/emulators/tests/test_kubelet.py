"""kubelet emulator, static pods (standalone mode, no apiserver needed): run, restart on exit,
restart on manifest change, ignore dot-files, stop on removal, adopt after a kubelet restart."""

import http.client
import os
import signal
import time

import pytest

from componentkit import Tree, alive, cmdline, free_port, kubelet_config, pod, wait_for


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path)
    yield t
    t.cleanup()


def pid_of(tree, manifest, container):
    record = tree.pidfile(manifest)
    pid = record["containers"][container]["pid"]
    return pid if alive(pid) else None


def start_kubelet(tree, port):
    return tree.start("kubelet", "--config=" + kubelet_config(tree, port), "--hostname-override=node1",
                      "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
                      "--node-ip=127.0.0.1")


def test_static_pod_lifecycle(tree):
    port = free_port()
    tree.write_manifest("sleeper.yaml", pod("sleeper", ["sleep"], ["300"], env={"N": "300"}))
    # a backup left in the manifests dir: must be ignored
    tree.write_manifest(".sleeper.yaml.bak", pod("backup", ["sleep"], ["299"]))
    kubelet = start_kubelet(tree, port)

    pid = wait_for(lambda: pid_of(tree, "sleeper.yaml", "sleeper"), what="static pod started")
    assert cmdline(pid) == ["sleep", "300"]
    assert os.getpgid(pid) == pid, "pod process must run in its own session"
    record = tree.pidfile("sleeper.yaml")
    assert record["pid"] == pid and len(record["sha256"]) == 64
    assert not os.path.exists(os.path.join(tree.pods_dir, ".sleeper.yaml.bak.pid"))
    assert os.path.exists(os.path.join(tree.log_dir, "pods", "sleeper_sleeper.log"))

    # /healthz of the kubelet itself
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    conn.request("GET", "/healthz")
    answer = conn.getresponse()
    assert (answer.status, answer.read()) == (200, b"ok")

    # killed -> restarted after the 1 s back-off
    os.kill(pid, signal.SIGKILL)
    killed = time.time()
    pid2 = wait_for(lambda: (p := pid_of(tree, "sleeper.yaml", "sleeper")) and p != pid and p,
                    what="restart after kill")
    assert time.time() - killed >= 0.9
    assert cmdline(pid2) == ["sleep", "300"]

    # manifest changed -> old process terminated, new one with the new command
    tree.write_manifest("sleeper.yaml", pod("sleeper", ["sleep"], ["$(N)1"], env={"N": "30"}))
    pid3 = wait_for(lambda: (p := pid_of(tree, "sleeper.yaml", "sleeper")) and p != pid2 and p,
                    what="restart on manifest change")
    assert cmdline(pid3) == ["sleep", "301"]
    wait_for(lambda: not alive(pid2), what="old process gone")

    # a whitespace-only rewrite is the same Pod: no restart
    path = os.path.join(tree.manifests, "sleeper.yaml")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n\n")
    time.sleep(2.5)
    assert pid_of(tree, "sleeper.yaml", "sleeper") == pid3

    # nothing ran for the dot-file
    assert not any(cmdline_is(p, ["sleep", "299"]) for p in all_pids())

    # removed -> stopped, pidfile gone
    os.unlink(path)
    wait_for(lambda: not alive(pid3), what="pod stopped after manifest removal")
    wait_for(lambda: not os.path.exists(os.path.join(tree.pods_dir, "sleeper.yaml.pid")), what="pidfile removed")

    assert tree.stop(kubelet) == 0
    events = [r["event"] for r in tree.records("kubelet")]
    assert {"start", "exit", "stop"} <= set(events)
    ignored = [r for r in tree.records("kubelet") if r["event"] == "start" and "container-runtime-endpoint" in (r["detail"] or "")]
    assert ignored, "ignored flags are logged once"


def all_pids():
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def cmdline_is(pid, argv):
    return cmdline(pid) == argv


def test_adopts_running_pods_after_kubelet_restart(tree):
    port = free_port()
    # a shebang script as pod command: /proc cmdline then starts with the interpreter
    script = os.path.join(tree.root, "kube-scheduler")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write("#!/usr/bin/python3\nimport time\ntime.sleep(400)\n")
    os.chmod(script, 0o755)
    tree.write_manifest("kube-scheduler.yaml", pod("kube-scheduler", [script], ["--leader-elect=true"]))
    kubelet = start_kubelet(tree, port)
    pid = wait_for(lambda: pid_of(tree, "kube-scheduler.yaml", "kube-scheduler"), what="pod started")
    assert cmdline(pid) == ["/usr/bin/python3", script, "--leader-elect=true"]
    with open("/proc/%d/comm" % pid) as handle:
        assert handle.read().strip() == "kube-scheduler"
    assert tree.stop(kubelet) == 0
    time.sleep(0.5)
    assert alive(pid), "pod processes survive a kubelet stop (KillMode=process)"

    kubelet2 = start_kubelet(tree, port)
    wait_for(lambda: any(r["event"] == "adopt" and r["pid"] == kubelet2.pid for r in tree.records("kubelet")),
             what="adopt event")
    time.sleep(3)
    assert alive(pid) and pid_of(tree, "kube-scheduler.yaml", "kube-scheduler") == pid, "adopted, not restarted"

    # an adopted process is not our child: its death is still noticed and it is restarted
    os.kill(pid, signal.SIGKILL)
    pid2 = wait_for(lambda: (p := pid_of(tree, "kube-scheduler.yaml", "kube-scheduler")) and p != pid and p,
                    what="adopted pod restarted after kill")
    assert cmdline(pid2) == ["/usr/bin/python3", script, "--leader-elect=true"]

    # manifest changed while the kubelet is down: the new kubelet replaces the process
    assert tree.stop(kubelet2) == 0
    tree.write_manifest("kube-scheduler.yaml", pod("kube-scheduler", ["sleep"], ["401"]))
    start_kubelet(tree, port)
    pid3 = wait_for(lambda: (p := pid_of(tree, "kube-scheduler.yaml", "kube-scheduler")) and p != pid2 and p,
                    what="restart for a manifest changed while down")
    assert cmdline(pid3) == ["sleep", "401"]
    assert not alive(pid2)


def test_removed_while_down_is_stopped(tree):
    port = free_port()
    tree.write_manifest("a.yaml", pod("a", ["sleep"], ["500"]))
    kubelet = start_kubelet(tree, port)
    pid = wait_for(lambda: pid_of(tree, "a.yaml", "a"), what="pod started")
    assert tree.stop(kubelet) == 0
    os.unlink(os.path.join(tree.manifests, "a.yaml"))
    start_kubelet(tree, port)
    wait_for(lambda: not alive(pid), what="orphaned pod stopped by the new kubelet")
