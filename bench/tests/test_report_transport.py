"""bench/report.py's SSH transport section: the goals are judged from the run's own counts."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import report  # noqa: E402
import transport  # noqa: E402


def write(path, data):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def conversion(binary_bytes, sent):
    log = [{"op": "put", "host": "172.30.0.11", "bytes": binary_bytes, "local": "apiserver_cert"},
           {"op": "exec", "host": "172.30.0.11", "bytes": sent - binary_bytes}]
    return transport.summarise(log, {"apiserver_cert": binary_bytes})


def modcost(kubeha_ms, builtin_ms, execs=1.0, puts=0.0):
    return {"n": 20, "pairs": {"apiserver_cert": {
        "builtin_name": "command openssl",
        "kubeha": {"wall_per_call_s": kubeha_ms / 1000.0, "execs_per_call": execs, "puts_per_call": puts},
        "builtin": {"wall_per_call_s": builtin_ms / 1000.0, "execs_per_call": 1.0, "puts_per_call": 0.0}}}}


def test_goals_met_and_missed_are_told_apart(tmp_path):
    write(tmp_path / "kubeha-transport.json", conversion(1000, 1100))
    write(tmp_path / "kubeha-rtt-transport.json", conversion(1000, 1500))
    mc = modcost(90, 100)
    write(tmp_path / "modcost-rtt.json", modcost(130, 120))
    walls = {"kubeha": 60.0, "reference": 90.0, "kubeha-rtt": 70.0, "reference-rtt": 100.0}
    text = "\n".join(report.transport_section(str(tmp_path), mc, walls, 40.0))
    assert "| a cached kubeha call is one remote command | 1 command(s), 0 upload(s) per call | met |" in text
    assert "| a cached call no slower than the pipelined builtin | worst kubeha/builtin time 0.90 (`apiserver_cert`) | met |" in text
    assert "| bytes sent per host at most 1.2 times its binaries | worst 1.10 | met |" in text
    # (100 - 40) / (70 - 40) = 2.00: met; 70 / 40 = 1.75: met
    assert "at least 2 | 2.00 ((100.0 - 40.0) / (70.0 - 40.0)) | met |" in text
    assert "conversion / floor at most 2 | 1.75 (70.0 s / 40.0 s) | met |" in text
    assert "| kubeha `convert.yml` | 60.0 | 70.0 | 10.0 |" in text
    assert "| `apiserver_cert` | `command openssl` | 130 | 120 | 1.08 | 90 | 100 |" in text


def test_a_call_that_uploads_or_a_host_sent_too_much_is_missed(tmp_path):
    write(tmp_path / "kubeha-transport.json", conversion(1000, 1300))
    text = "\n".join(report.transport_section(str(tmp_path), modcost(150, 100, execs=2.0, puts=1.0), {}, 40.0))
    assert "| a cached kubeha call is one remote command | 2 command(s), 1 upload(s) per call | **missed** |" in text
    assert "worst kubeha/builtin time 1.50 (`apiserver_cert`) | **missed** |" in text
    assert "| bytes sent per host at most 1.2 times its binaries | worst 1.30 | **missed** |" in text
    assert "No run with added latency" in text


def test_no_byte_log_no_section(tmp_path):
    assert report.transport_section(str(tmp_path), None, {}, 40.0) == []


def test_floor_ratios_are_not_judged_when_the_floor_is_not_valid(tmp_path):
    write(tmp_path / "kubeha-transport.json", conversion(1000, 1100))
    write(tmp_path / "kubeha-rtt-transport.json", conversion(1000, 1100))
    walls = {"kubeha": 60.0, "reference": 90.0, "kubeha-rtt": 70.0, "reference-rtt": 100.0}
    text = "\n".join(report.transport_section(str(tmp_path), None, walls, 40.0, floor_valid=False))
    assert "conversion / floor at most 2 | 1.75 (70.0 s / 40.0 s) | **not valid**" in text
    assert text.count("**not valid**") == 2
    assert "| bytes sent per host at most 1.2 times its binaries | worst 1.10 | met |" in text
