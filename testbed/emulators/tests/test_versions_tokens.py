"""What the kubeadm layout (issue #19) needs of the emulators, usable by every layout: the emulated
kubelet hands a static pod's process the image it names and kube-apiserver reports that image's tag
as its version; the kubelet reports the installed version and, without --node-ip, the address its
node name resolves to; kube-apiserver authenticates service-account tokens (JWT, RS256) signed with
--service-account-key-file, minted by testbed/install/files/kubeha-satoken as the token controller
and the TokenRequest API would."""

import json
import os
import socket
import subprocess
import time

import pytest

from conftest import ADMIN_TOKEN
from componentkit import Tree, free_port, kubelet_config, pod, wait_for
from kubeha_emu import kubelet, pods
from kubeha_emu.apiserver import discovery

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SATOKEN = os.path.join(REPO, "testbed", "install", "files", "kubeha-satoken")
ISSUER = "https://kubernetes.default.svc.cluster.local"


def test_image_version():
    assert discovery.image_version("registry.k8s.io/kube-apiserver:v1.32.5") == "v1.32.5"
    assert discovery.image_version("kube-apiserver:1.33.1") == "v1.33.1"
    assert discovery.image_version("registry.k8s.io:5000/kube-apiserver:v1.31.0-rc.1") == "v1.31.0-rc.1"
    for other in ("registry.k8s.io/etcd:3.5.16-0", "registry.k8s.io/kube-apiserver", None, "",
                  "registry.k8s.io/kube-apiserver@sha256:abcd", "registry.k8s.io/kube-apiserver:latest"):
        assert discovery.image_version(other) is None


def test_version_from_image_and_override(monkeypatch):
    monkeypatch.delenv("KUBEHA_APISERVER_VERSION", raising=False)
    monkeypatch.setenv("KUBEHA_EMU_IMAGE", "registry.k8s.io/kube-apiserver:v1.32.5")
    assert (discovery.version()["gitVersion"], discovery.version()["minor"]) == ("v1.32.5", "32")
    monkeypatch.setenv("KUBEHA_APISERVER_VERSION", "v1.29.7")
    assert discovery.version()["gitVersion"] == "v1.29.7"
    monkeypatch.delenv("KUBEHA_APISERVER_VERSION")
    monkeypatch.delenv("KUBEHA_EMU_IMAGE")
    assert discovery.version()["gitVersion"] == discovery.VERSION["gitVersion"]


def test_container_gets_its_image():
    argv, env = pods.container_argv({"name": "etcd", "image": "registry.k8s.io/etcd:3.5.16-0",
                                     "command": ["etcd"], "args": ["--name=$(N)"],
                                     "env": [{"name": "N", "value": "m1"}]})
    assert argv == ["etcd", "--name=m1"]
    assert env == {"N": "m1", pods.IMAGE_ENV: "registry.k8s.io/etcd:3.5.16-0"}
    assert pods.container_argv({"name": "x", "command": ["true"]})[1] == {}


def test_kubelet_version(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBEHA_KUBELET_VERSION", raising=False)
    path = tmp_path / "kube-version"
    monkeypatch.setattr(kubelet, "VERSION_FILE", str(path))
    assert kubelet.version() == kubelet.FALLBACK_VERSION
    path.write_text("v1.32.5\n")
    assert kubelet.version() == "v1.32.5"
    path.write_text("1.28.6\n")
    assert kubelet.version() == "v1.28.6"
    monkeypatch.setenv("KUBEHA_KUBELET_VERSION", "v1.33.1")
    assert kubelet.version() == "v1.33.1"
    proc = subprocess.run([os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kubelet"),
                           "--version"], capture_output=True, text=True, timeout=20,
                          env=dict(os.environ, KUBEHA_KUBELET_VERSION="v1.32.5"))
    assert (proc.returncode, proc.stdout) == (0, "Kubernetes v1.32.5\n")


def test_kubelet_host_ip(monkeypatch):
    def fake(name, *args, **kwargs):
        table = {"node-a": ["127.0.1.1", "172.30.0.11"], "node-b": ["127.0.0.1"]}
        if name not in table:
            raise socket.gaierror("no such name")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in table[name]]
    monkeypatch.setattr(kubelet.socket, "getaddrinfo", fake)
    assert kubelet.host_ip("node-a") == "172.30.0.11"
    assert kubelet.host_ip("node-b") is None
    assert kubelet.host_ip("node-c") is None


def test_static_pod_process_sees_its_image(tmp_path):
    tree = Tree(tmp_path)
    try:
        out = os.path.join(str(tmp_path), "image.txt")
        manifest = pod("kube-apiserver", ["sh", "-c", 'echo "$KUBEHA_EMU_IMAGE" > %s; exec sleep 300' % out])
        manifest["spec"]["containers"][0]["image"] = "registry.k8s.io/kube-apiserver:v1.32.5"
        tree.write_manifest("kube-apiserver.yaml", manifest)
        tree.start("kubelet", "--config=" + kubelet_config(tree, free_port()), "--hostname-override=node1")
        wait_for(lambda: os.path.exists(out) and open(out).read().strip(), what="pod wrote its image")
        with open(out, encoding="utf-8") as handle:
            assert handle.read().strip() == "registry.k8s.io/kube-apiserver:v1.32.5"
    finally:
        tree.cleanup()


def mint(tmp_path, *args):
    out = str(tmp_path / ("token-%d" % len(os.listdir(tmp_path))))
    kind, key = args[0], args[1]
    proc = subprocess.run([SATOKEN, kind, key] + list(args[2:5]) + [out] + list(args[5:]),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "changed\n"
    # idempotent: an existing token is kept
    again = subprocess.run([SATOKEN, kind, key] + list(args[2:5]) + [out] + list(args[5:]),
                           capture_output=True, text=True, timeout=30)
    assert (again.returncode, again.stdout) == (0, "")
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    with open(out, encoding="utf-8") as handle:
        return handle.read().strip()


@pytest.fixture(scope="module")
def sa_keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sa")
    keys = {}
    for name in ("sa", "other"):
        key, pub = str(directory / (name + ".key")), str(directory / (name + ".pub"))
        subprocess.run(["openssl", "genrsa", "-traditional", "-out", key, "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", key, "-pubout", "-out", pub], check=True, capture_output=True)
        keys[name] = (key, pub)
    return keys


def test_service_account_tokens(start_apiserver, sa_keys, tmp_path):
    key, pub = sa_keys["sa"]
    server = start_apiserver(extra_args=["--service-account-key-file=" + pub, "--service-account-issuer=" + ISSUER])
    server.wait_ready()
    legacy = mint(tmp_path, "legacy", key, "kube-system", "cilium", "cilium-token")
    bound = mint(tmp_path, "bound", key, "kube-system", "kube-proxy", ISSUER)
    header, claims, _sig = bound.split(".")
    claims = json.loads(__import__("base64").urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER] and claims["exp"] > time.time() + 300 * 86400
    assert claims["sub"] == "system:serviceaccount:kube-system:kube-proxy"
    for token in (legacy, bound):
        status, _resp, _body = server.request("GET", "/api/v1/namespaces/kube-system/configmaps",
                                              client_cert=False, token=token)
        assert status == 200
    # the static token file still works beside them
    status, _resp, _body = server.request("GET", "/api/v1/namespaces", client_cert=False, token=ADMIN_TOKEN)
    assert status == 200
    other_key = sa_keys["other"][0]
    rejected = [
        mint(tmp_path, "legacy", other_key, "kube-system", "cilium", "cilium-token"),     # another key
        mint(tmp_path, "bound", key, "kube-system", "kube-proxy", "https://elsewhere"),   # another issuer
        mint(tmp_path, "bound", key, "kube-system", "kube-proxy", ISSUER, "-10"),         # expired
        legacy[:-6] + ("AAAAAA" if not legacy.endswith("AAAAAA") else "BBBBBB"),          # tampered
        "not-a-jwt",
    ]
    for token in rejected:
        status, _resp, _body = server.request("GET", "/api/v1/namespaces", client_cert=False, token=token)
        assert status == 401, token[:40]
    # who the server saw
    wait_for(lambda: any("system:serviceaccount:kube-system:kube-proxy" in str(r) for r in server.log_records()),
             what="bound token user logged")
