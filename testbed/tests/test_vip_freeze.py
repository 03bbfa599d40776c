"""testbed/vip_freeze.py without docker: the VIP holder from `ip -4 -o addr`, the figures of a round
from its probes, the verdict, the table, the endpoint read from the layout's inventory."""

import importlib.util
import os
import ssl
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
SPEC = importlib.util.spec_from_file_location("vip_freeze", os.path.join(HERE, "..", "vip_freeze.py"))
vf = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(vf)

# `ip -4 -o addr show` in a master container holding the VIP (keepalived adds it as a /32)
HOLDER = """1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 172.30.0.12/24 brd 172.30.0.255 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet 172.30.0.10/32 scope global eth0\\       valid_lft forever preferred_lft forever
"""


def test_the_vip_is_found_as_an_address_of_an_interface():
    assert vf.holds(HOLDER, "172.30.0.10")
    # another master: its own address only; an address that merely starts like the VIP is not it
    assert not vf.holds(HOLDER.replace("172.30.0.10/32", "172.30.0.101/32"), "172.30.0.10")
    assert not vf.holds("", "172.30.0.10")
    assert vf.holds(HOLDER, "172.30.0.12")


def probes(spec, t0=100.0, step=0.2):
    """Probes every `step` s from t0 - 1 s: `spec` is a string of '+' (answered) and '-' (failed)."""
    return [{"start": t0 - 1.0 + i * step, "end": t0 - 1.0 + i * step + 0.01, "ok": c == "+"}
            for i, c in enumerate(spec)]


def test_figures_of_a_round():
    # 5 before the pause (t0 = 100), then 16 failures (3.2 s), answers again, a late failure, thaw
    # at t0 + 8 s; after it 10 probes of which 1 failed
    spec = "+++++" + "-" * 16 + "+" * 10 + "-" + "+" * 13 + "+++++-++++"
    figures = vf.round_figures(probes(spec), 100.0, 108.0, 110.0)
    assert figures["probes_before"] == 5 and figures["failed_before"] == 0
    assert figures["unreachable_s"] == 3.2
    assert figures["probes_frozen"] == 40 and figures["failed_frozen"] == 17
    assert figures["failed_after_first_ok"] == 1
    assert figures["steady_s"] == 5.2          # the late failure started at t0 + 5.2 s
    assert (figures["failed_after_thaw"], figures["probes_after_thaw"]) == (1, 10)


def test_a_vip_that_never_answers_while_frozen_has_no_unreachable_figure():
    figures = vf.round_figures(probes("+++++" + "-" * 20), 100.0, 104.0, 104.0)
    assert figures["unreachable_s"] is None and figures["failed_frozen"] == 20


def test_no_failure_is_a_steady_endpoint():
    figures = vf.round_figures(probes("+" * 30), 100.0, 104.0, 105.0)
    assert figures["unreachable_s"] == 0.0 and figures["steady_s"] == 0.0 and figures["failed_frozen"] == 0


def rnd(n, holder="kubeha-master1", new="kubeha-master2", after=None, gap=3.4, **kw):
    return dict({"round": n, "holder": holder, "new_holder": new, "holder_after": after or new,
                 "unreachable_s": gap, "failed_frozen": 16, "probes_frozen": 100, "steady_s": gap - 0.2,
                 "failed_after_thaw": 0, "probes_after_thaw": 100}, **kw)


def test_verdict_without_preemption_wants_the_vip_to_stay_where_it_moved():
    rounds = [rnd(1), rnd(2, "kubeha-master2", "kubeha-master3"), rnd(3, "kubeha-master3", "kubeha-master1"),
              rnd(4), rnd(5, "kubeha-master2", "kubeha-master3")]
    assert vf.judge(rounds, 5.0, preempt=False) == (True, [])
    # the returning master took it back: not what the configuration says
    rounds[2]["holder_after"] = "kubeha-master3"
    ok, reasons = vf.judge(rounds, 5.0, preempt=False)
    assert not ok and reasons == ["round 3: after the thaw the VIP is on kubeha-master3, not kubeha-master1 "
                                  "(no preemption expected)"]


def test_verdict_with_preemption_wants_the_vip_back_on_the_returning_master():
    rounds = [rnd(n, after="kubeha-master1") for n in range(1, 6)]
    assert vf.judge(rounds, 5.0, preempt=True) == (True, [])
    assert not vf.judge(rounds, 5.0, preempt=False)[0]


def test_verdict_fails_on_a_long_gap_a_missing_move_too_few_rounds_and_errors():
    rounds = [rnd(n) for n in range(1, 6)]
    rounds[1]["unreachable_s"] = 5.4
    rounds[2].update(unreachable_s=None, new_holder=None, holder_after="kubeha-master1")
    ok, reasons = vf.judge(rounds, 5.0, preempt=False)
    assert not ok
    assert "round 2: unreachable 5.4 s > 5.0 s" in reasons
    assert "round 3: the VIP never answered while kubeha-master1 was frozen" in reasons
    assert "round 3: no live master took the VIP" in reasons
    assert vf.judge(rounds[:1], 5.0, preempt=False) == (False, ["1 round(s), at least 5 needed"])
    broken = [rnd(n) for n in range(1, 6)]
    broken[4]["error"] = "after the thaw the VIP is held by ['kubeha-master1', 'kubeha-master2']"
    assert vf.judge(broken, 5.0, preempt=False)[1] == ["round 5: " + broken[4]["error"]]


def test_table_rows_line_up_with_the_header():
    header = vf.table_header()
    row = vf.table_row(rnd(1, after="kubeha-master1"))
    assert header.split() [:3] == ["round", "holder", "new"]
    assert row.split() == ["1", "master1", "master2", "3.40", "s", "16/100", "3.2", "s", "master1", "0/100"]
    assert row.index("master2") == header.index("new holder")
    assert vf.table_row({"round": 2, "error": "the VIP is held by no master before the pause"}) \
        == "2      ERROR: the VIP is held by no master before the pause"


def test_expected_holder():
    assert vf.expected_holder("a", "b", preempt=True) == "a"
    assert vf.expected_holder("a", "b", preempt=False) == "b"


def test_the_endpoint_comes_from_the_layouts_inventory(tmp_path):
    assert vf.endpoint_of("novip") == ("172.30.0.10", 8443)
    # layouts without an inventory directory of their own, or without loadbalancer_apiserver there
    assert vf.endpoint_of("pinned") is None
    assert vf.endpoint_of("kubeadm") is None
    gv = tmp_path / "testbed/inventory/other/group_vars/all"
    gv.mkdir(parents=True)
    (gv / "lb.yml").write_text("loadbalancer_apiserver: {address: 10.0.0.5}\n")
    assert vf.endpoint_of("other", root=tmp_path) == ("10.0.0.5", 6443)


def test_readyz_reports_a_refused_connection_within_its_budget():
    context = ssl.create_default_context()
    ok, error = vf.readyz("127.0.0.1", 1, context, "kubernetes", 1.0)
    assert not ok and "ConnectionRefusedError" in error


@pytest.mark.parametrize("error, name", [
    ("SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch, "
     "certificate is not valid for '172.30.0.10'. (_ssl.c:1006)", "kubernetes"),
])
def test_auto_server_name_falls_back_to_kubernetes_when_the_vip_is_not_in_the_certificate(monkeypatch, error, name):
    monkeypatch.setattr(vf, "readyz", lambda *a: (False, error))
    assert vf.choose_server_name("172.30.0.10", 8443, None, "auto", 1.0)[0] == name
    monkeypatch.setattr(vf, "readyz", lambda *a: (True, ""))
    assert vf.choose_server_name("172.30.0.10", 8443, None, "auto", 1.0)[0] == "172.30.0.10"
    assert vf.choose_server_name("172.30.0.10", 8443, None, "api.example", 1.0) == ("api.example", "given")
    monkeypatch.setattr(vf, "readyz", lambda *a: (False, "TimeoutError: timed out"))
    with pytest.raises(SystemExit, match="does not answer"):
        vf.choose_server_name("172.30.0.10", 8443, None, "auto", 1.0)


def test_where_the_vip_went_after_the_thaws_in_words():
    rounds = [rnd(1, after="kubeha-master1"), rnd(2), rnd(3, after=None, error="x")]
    rounds[2]["holder_after"] = None
    assert vf.where_after(rounds) == "went back to the returning master 1 time(s), stayed on the new holder 1 time(s)"
    assert vf.where_after([]) == "was on no single master"
