"""testbed/freeze.py's verdicts without docker: the Cilium agents' check beside kube-proxy's."""

import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = importlib.util.spec_from_file_location("freeze", os.path.join(HERE, "..", "freeze.py"))
freeze = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(freeze)


def samples(agent_ages):
    """Two samples during a freeze of master 1; `agent_ages`: each live node's agent age per sample."""
    live = [n for n in freeze.MASTERS + freeze.WORKERS if n != "kubeha-master1"]
    out = []
    for i, age in enumerate(agent_ages):
        out.append({"t": 2.0 * i, "api": {"ok": True, "seconds": 0.1}, "wall": 1000.0 + 2 * i,
                    "proxy": {w: {"age": 1.0, "server": "https://172.30.0.10:6443"} for w in freeze.WORKERS},
                    "cilium": {n: {"age": age if n == "kubeha-worker2" else 1.0, "server": "https://172.30.0.10:6443"}
                               for n in live}})
    return out


def test_agents_that_keep_their_server_pass():
    checks = freeze.judge(samples([1.0, 2.5]), "kubeha-master1", 120, 15)
    assert checks["cilium-agent"]["ok"], checks["cilium-agent"]
    assert "kubeha-worker2 2 s" in checks["cilium-agent"]["detail"]
    assert "kubeha-master1" not in checks["cilium-agent"]["detail"]


def test_an_agent_without_an_answer_for_longer_than_its_healthz_window_fails():
    checks = freeze.judge(samples([1.0, 31.0]), "kubeha-master1", 120, 15)
    assert not checks["cilium-agent"]["ok"]
    assert "kubeha-worker2 31 s" in checks["cilium-agent"]["detail"]
    # an agent whose status file cannot be read is not taken as connected
    gone = samples([1.0])
    gone[0]["cilium"]["kubeha-master2"]["age"] = None
    assert not freeze.judge(gone, "kubeha-master1", 120, 15)["cilium-agent"]["ok"]


def test_status_age_reads_the_node_clock_and_the_status_file(monkeypatch):
    calls = []

    def docker(*argv, **kw):
        calls.append(argv)
        out = '1000.5\n{"last_ok": 990.0, "server": "https://172.30.0.11:6443"}\n'
        return type("Proc", (), {"returncode": 0, "stdout": out})()

    monkeypatch.setattr(freeze, "docker", docker)
    assert freeze.status_age("kubeha-worker1", "cilium-agent") == (10.5, "https://172.30.0.11:6443")
    assert calls == [("exec", "kubeha-worker1", "sh", "-c", "date +%s.%N && cat /run/kubeha/cilium-agent.json")]
