"""Real clients against the kube-apiserver emulator: kubectl (Debian's kubernetes-client, 1.20, or
$KUBECTL) and the Python `kubernetes` client, both with TLS verification on."""

import os
import shutil
import subprocess
import uuid

import pytest

from conftest import KUBE_PROXY_TOKEN

KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl")


@pytest.fixture
def kubectl(apiserver, tmp_path):
    if not KUBECTL:
        pytest.skip("kubectl not installed (scripts/host-deps.sh installs Debian's kubernetes-client)")
    config = apiserver.kubeconfig(str(tmp_path / "admin.conf"))
    env = dict(os.environ, KUBECONFIG=config, HOME=str(tmp_path))

    def run(*args, check=True, stdin=None, kubeconfig=None):
        proc = subprocess.run([KUBECTL, "--cache-dir", str(tmp_path / "cache")] + list(args), env=dict(
            env, KUBECONFIG=kubeconfig or config), capture_output=True, text=True, timeout=60, input=stdin)
        if check and proc.returncode != 0:
            raise AssertionError("kubectl %s failed (%d): %s%s" % (" ".join(args), proc.returncode, proc.stdout,
                                                                   proc.stderr))
        return proc

    return run


def _table(text):
    lines = [line.split() for line in text.strip().splitlines()]
    return lines[0], lines[1:]


def _pod(name, node, labels):
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "img"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0}]}}


def test_kubectl_get_pods_all_namespaces_and_nodes(apiserver, kubectl):
    suffix = uuid.uuid4().hex[:6]
    for node in ("a", "b"):
        status, _, body = apiserver.request("POST", "/api/v1/namespaces/kube-system/pods",
                                            _pod("kube-proxy-%s-%s" % (node, suffix), "node-%s-%s" % (node, suffix),
                                                 {"k8s-app": "kube-proxy"}))
        assert status == 201, body
    node_name = "node-a-" + suffix
    assert apiserver.request("POST", "/api/v1/nodes", {
        "metadata": {"name": node_name, "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.30.4"}}})[0] == 201

    proc = kubectl("get", "pod")
    assert proc.returncode == 0 and "No resources found in default namespace." in proc.stderr
    header, rows = _table(kubectl("get", "pod", "-A").stdout)
    assert header == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert ["kube-system", "kube-proxy-a-" + suffix, "1/1", "Running", "0"] in [r[:5] for r in rows]

    header, rows = _table(kubectl("get", "nodes").stdout)
    assert header == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [node_name, "Ready", "control-plane"] in [r[:3] for r in rows]

    # the delete the conversion uses to restart kube-proxy on one node
    out = kubectl("delete", "pod", "-n", "kube-system", "-l", "k8s-app=kube-proxy",
                  "--field-selector", "spec.nodeName=" + node_name).stdout
    assert 'pod "kube-proxy-a-%s" deleted' % suffix in out and "kube-proxy-b-" not in out
    names = [r[0] for r in _table(kubectl("get", "pod", "-n", "kube-system").stdout)[1]]
    assert "kube-proxy-b-" + suffix in names and "kube-proxy-a-" + suffix not in names


def test_kubectl_configmaps_apply_get_yaml(apiserver, kubectl, tmp_path):
    name = "kube-proxy-" + uuid.uuid4().hex[:6]
    manifest = tmp_path / "cm.yaml"
    template = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: kube-system\n"
                "data:\n  kubeconfig.conf: |\n    server: https://%s:6443\n  config.conf: x\n")
    manifest.write_text(template % (name, "172.30.0.11"))
    assert "configmap/%s created" % name in kubectl("apply", "-f", str(manifest)).stdout
    assert "unchanged" in kubectl("apply", "-f", str(manifest)).stdout
    manifest.write_text(template % (name, "172.30.0.10"))
    assert "configmap/%s configured" % name in kubectl("apply", "-f", str(manifest)).stdout
    out = kubectl("-n", "kube-system", "get", "cm", name, "-o", "yaml").stdout
    assert "server: https://172.30.0.10:6443" in out and "resourceVersion:" in out and "kind: ConfigMap" in out
    header, rows = _table(kubectl("get", "cm", "-n", "kube-system").stdout)
    assert header == ["NAME", "DATA", "AGE"]
    assert [name, "2"] in [r[:2] for r in rows]
    _, _, stored = apiserver.request("GET", "/api/v1/namespaces/kube-system/configmaps/" + name)
    assert stored["data"]["kubeconfig.conf"] == "server: https://172.30.0.10:6443\n"


def test_kubectl_raw_readyz_and_token_kubeconfig(apiserver, kubectl, tmp_path):
    assert kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    token_config = apiserver.kubeconfig(str(tmp_path / "token.conf"), token=KUBE_PROXY_TOKEN)
    out = kubectl("get", "ns", "kube-system", kubeconfig=token_config).stdout
    assert "kube-system" in out and "Active" in out
    bad = apiserver.kubeconfig(str(tmp_path / "bad.conf"), token="not-a-token")
    proc = kubectl("get", "ns", kubeconfig=bad, check=False)
    assert proc.returncode != 0 and "Unauthorized" in proc.stderr


def test_python_kubernetes_client_lists_configmaps_with_verification(apiserver, tmp_path):
    kubernetes = pytest.importorskip("kubernetes", reason="the kubernetes client is installed in .venv by make venv")
    config_path = apiserver.kubeconfig(str(tmp_path / "admin.conf"))
    name = "py-" + uuid.uuid4().hex[:6]
    apiserver.request("POST", "/api/v1/namespaces/kube-system/configmaps", {"metadata": {"name": name},
                                                                            "data": {"k": "v"}})
    api_client = kubernetes.config.new_client_from_config(config_file=config_path)
    assert api_client.configuration.verify_ssl is True
    v1 = kubernetes.client.CoreV1Api(api_client)
    cms = v1.list_namespaced_config_map("kube-system")
    assert name in [c.metadata.name for c in cms.items]
    cm = v1.read_namespaced_config_map(name, "kube-system")
    cm.data["k"] = "v2"
    assert v1.replace_namespaced_config_map(name, "kube-system", cm).data == {"k": "v2"}
    with pytest.raises(kubernetes.client.ApiException) as err:
        v1.replace_namespaced_config_map(name, "kube-system", cm)  # cm carries the old resourceVersion
    assert err.value.status == 409
    # verification really is on: a client trusting another CA refuses the server
    other = apiserver.kubeconfig(str(tmp_path / "other.conf"))
    text = open(other, encoding="utf-8").read().replace(apiserver.pki.ca_crt, apiserver.pki.etcd_ca_crt)
    open(other, "w", encoding="utf-8").write(text)
    bad = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=other))
    import urllib3
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        bad.list_namespaced_config_map("kube-system", _request_timeout=5)
