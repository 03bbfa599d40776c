"""The chaos suite fails a layout whose reference conversion fell back from the action plugin's
cached binary to Ansible's copy per call: the pattern it looks for must be the plugin's own warning."""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import chaoslib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
PLUGIN = os.path.join(REPO, "ansible", "ansible_collections", "kubeha", "control_plane", "plugins",
                      "plugin_utils", "cached_binary.py")


def plugin_warning_format():
    with open(PLUGIN, encoding="utf-8") as handle:
        source = handle.read()
    found = re.search(r'"(kubeha fast path not used[^"]*)"', source)
    assert found, "the action plugin no longer warns with 'kubeha fast path not used'"
    return found.group(1)


def test_a_fallback_warning_in_the_output_is_found(tmp_path):
    warning = plugin_warning_format() % ("apiserver_cert", "pipelining is off")
    out = tmp_path / "reference.out"
    out.write_text("TASK [kubeha.control_plane.master_certs : Issue the certificate]\n"
                   f"[WARNING]: {warning}\nok: [kubeha-master1]\n", encoding="utf-8")
    found = chaoslib.fast_path_fallbacks(str(out))
    assert len(found) == 1 and "apiserver_cert" in found[0] and "pipelining is off" in found[0]


def test_an_output_without_fallback_has_none(tmp_path):
    out = tmp_path / "reference.out"
    out.write_text("TASK [x]\nok: [kubeha-master1]\n[WARNING]: something else\n", encoding="utf-8")
    assert chaoslib.fast_path_fallbacks(str(out)) == []
