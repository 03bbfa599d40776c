"""bench/floor.py replays the restarts a conversion made: the reference's handlers and kubeha's
component_restart loop on the masters (whose changed items the bench_timer callback records)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import floor  # noqa: E402


def task(name, action, results, handler=False, changed_items=None):
    t = {"name": name, "action": action, "handler": handler, "results": results}
    if changed_items is not None:
        t["changed_items"] = changed_items
    return t


def test_handlers_and_component_restart_loops_are_both_read_in_run_order():
    timer = {"tasks": [
        task("kubeha.control_plane.convert : Master kubeconfigs | restart what changed, now",
             "kubeha.control_plane.component_restart", {"kubeha-master2": "changed"},
             changed_items={"kubeha-master2": ["kubelet", "kube-controller-manager", "kube-scheduler"]}),
        task("kubeha.control_plane.convert : Master kubeconfigs | restart what changed, now",
             "kubeha.control_plane.component_restart", {"kubeha-master3": "ok"}, changed_items={}),
        task("kubeha.control_plane.convert : Worker | restart the kubelet, wait for its node's heartbeat",
             "kubeha.control_plane.component_restart", {"kubeha-worker1": "changed", "kubeha-worker2": "skipped"},
             changed_items={"kubeha-worker1": ["kubelet"]}),
        task("Reference | restart kubelet", "ansible.builtin.systemd_service",
             {"kubeha-worker2": "changed"}, handler=True),
        task("kubeha.control_plane.convert : Kube-proxy | roll node by node when its ConfigMap changed",
             "kubeha.control_plane.component_restart", {"kubeha-master1": "changed"},
             changed_items={"kubeha-master1": ["kube-proxy"]}),
    ]}
    restarts, rolled = floor.restarts_of(timer)
    assert restarts == [("kubeha-master2", "kubelet"), ("kubeha-master2", "kube-controller-manager"),
                        ("kubeha-master2", "kube-scheduler"), ("kubeha-worker1", "kubelet"),
                        ("kubeha-worker2", "kubelet")]
    assert rolled is True


def test_a_run_without_restarts_replays_none():
    timer = {"tasks": [task("Preflight | x", "ansible.builtin.command", {"kubeha-master1": "ok"})]}
    assert floor.restarts_of(timer) == ([], False)


def test_the_reference_roll_is_read_from_its_per_node_delete_task():
    timer = {"tasks": [task("Kube-proxy node | delete them", "ansible.builtin.command", {"kubeha-master1": "changed"})]}
    assert floor.restarts_of(timer) == ([], True)
