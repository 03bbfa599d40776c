"""bench/transport.py's per-host summary of a byte log: the figures `make bench` judges the goal
"bytes sent per conversion at most 1.2 times the binaries' size per host" with."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import transport  # noqa: E402


def entry(op, host, size, local=None):
    e = {"op": op, "host": host, "bytes": size, "ts": 0}
    if local:
        e["local"] = local
    return e


def test_commands_uploads_and_binaries_are_counted_per_host():
    binaries = {"apiserver_cert": 1000, "ha_verify": 500}
    log = [entry("exec", "10.0.0.1", 40), entry("put", "10.0.0.1", 1000, "apiserver_cert"),
           entry("exec", "10.0.0.1", 300), entry("put", "10.0.0.1", 1000, "apiserver_cert"),
           entry("put", "10.0.0.1", 500, "ha_verify"), entry("exec", "10.0.0.2", 60),
           entry("put", "10.0.0.2", 200, "AnsiballZ_tmp")]
    s = transport.summarise(log, binaries)
    one, two = s["hosts"]["10.0.0.1"], s["hosts"]["10.0.0.2"]
    assert (one["commands"], one["uploads"], one["bytes"]) == (2, 3, 2840)
    # the same binary twice is one binary: the ratio shows the second upload as waste
    assert one["binaries"] == ["apiserver_cert", "ha_verify"] and one["binaries_bytes"] == 1500
    assert one["bytes_over_binaries"] == round(2840 / 1500, 3)
    assert two["binaries"] == [] and two["bytes_over_binaries"] is None
    assert s["total"]["commands"] == 3 and s["total"]["bytes"] == 3100
    assert s["total"]["worst_bytes_over_binaries"] == one["bytes_over_binaries"]


def test_module_binaries_lists_only_binaries(tmp_path):
    (tmp_path / "apiserver_cert").write_bytes(b"\x7fELF" + b"0" * 96)
    (tmp_path / "apiserver_cert.yml").write_text("DOCUMENTATION: x\n")
    assert transport.module_binaries(str(tmp_path)) == {"apiserver_cert": 100}


def test_hosts_are_named_as_the_inventory_names_them(tmp_path):
    inv = tmp_path / "inventory.yml"
    inv.write_text("all:\n  hosts:\n    kubeha-master1:\n      ansible_host: 10.0.0.1\n", encoding="utf-8")
    s = transport.summarise([entry("exec", "10.0.0.1", 10), entry("exec", "10.0.0.9", 5)], {},
                            transport.inventory_names(str(inv)))
    assert sorted(s["hosts"]) == ["10.0.0.9", "kubeha-master1"]
