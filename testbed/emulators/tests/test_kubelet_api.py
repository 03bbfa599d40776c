"""kubelet emulator against real kube-apiserver emulators (two, sharing one etcd, like two masters):
Node registration + Ready heartbeat, node Lease, mirror pods, and the kube-proxy DaemonSet pod that
only picks up a changed kube-proxy ConfigMap when its pod object is deleted."""

import json
import os
import time

import pytest

from componentkit import Tree, alive, cmdline, free_port, kubelet_config, pod, wait_for
from conftest import KUBE_PROXY_TOKEN

NODE = "kp-node1"
NS = "/api/v1/namespaces"


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path)
    yield t
    t.cleanup()


def get(server, path):
    status, _, body = server.request("GET", path)
    return body if status == 200 else None


def proxy_configmap(tree, pki, server_url, token_path, healthz_port):
    kubeconfig = ("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: %s\n"
                  "    server: %s\n  name: default\ncontexts:\n- context:\n    cluster: default\n"
                  "    namespace: default\n    user: default\n  name: default\ncurrent-context: default\n"
                  "users:\n- name: default\n  user:\n    tokenFile: %s\n" % (pki.ca_crt, server_url, token_path))
    config = ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
              "clientConnection:\n  kubeconfig: %s\nhealthzBindAddress: 127.0.0.1:%d\nmode: iptables\n"
              % (os.path.join(tree.proxy_dir, "kubeconfig.conf"), healthz_port))
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"app": "kube-proxy"}},
            "data": {"config.conf": config, "kubeconfig.conf": kubeconfig}}


def proxy_pid(tree):
    try:
        record = tree.pidfile("daemonset_kube-system_kube-proxy")
    except (OSError, ValueError):
        return None
    pid = record.get("pid")
    return pid if pid and alive(pid) else None


def test_node_lease_mirror_pods_and_kube_proxy(tree, pki, apiserver, start_apiserver, tmp_path):
    second = start_apiserver()
    second.wait_ready()
    for path in (NS + "/kube-system/configmaps/kube-proxy", NS + "/kube-system/pods/kube-proxy-" + NODE,
                 NS + "/kube-system/pods/kube-apiserver-" + NODE, "/api/v1/nodes/" + NODE,
                 "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + NODE):
        apiserver.request("DELETE", path)

    # kubelet.conf as kubeadm writes it: client cert and key in kubelet-client-current.pem
    pem = tmp_path / "kubelet-client-current.pem"
    with open(pki.node_crt) as crt, open(pki.node_key) as key:
        pem.write_text(crt.read() + key.read())
    os.chmod(pem, 0o600)
    kubelet_conf = tmp_path / "kubelet.conf"
    kubelet_conf.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "system:node:%s@kubernetes" % NODE,
        "clusters": [{"name": "kubernetes", "cluster": {"server": apiserver.url, "certificate-authority": pki.ca_crt}}],
        "users": [{"name": "default-auth", "user": {"client-certificate": str(pem), "client-key": str(pem)}}],
        "contexts": [{"name": "system:node:%s@kubernetes" % NODE,
                      "context": {"cluster": "kubernetes", "user": "default-auth"}}]}))
    token = tmp_path / "token"
    token.write_text(KUBE_PROXY_TOKEN + "\n")
    tree.write_manifest("kube-apiserver.yaml", pod("kube-apiserver", ["sleep"], ["600"]))
    port = free_port()
    args = ["--kubeconfig=%s" % kubelet_conf, "--config=" + kubelet_config(tree, port),
            "--hostname-override=" + NODE, "--node-ip=127.0.0.1", "--v=2"]
    kubelet = tree.start("kubelet", *args)

    # Node registered and heart-beating
    node = wait_for(lambda: get(apiserver, "/api/v1/nodes/" + NODE), what="node registered")
    labels = wait_for(lambda: (n := get(apiserver, "/api/v1/nodes/" + NODE)) and
                      "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"] and n["metadata"]["labels"],
                      what="control-plane label")
    assert labels["kubernetes.io/hostname"] == NODE
    ready = [c for c in get(apiserver, "/api/v1/nodes/" + NODE)["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + NODE
    first = wait_for(lambda: get(apiserver, lease_path), what="node lease")["spec"]
    assert first["holderIdentity"] == NODE
    wait_for(lambda: get(apiserver, lease_path)["spec"]["renewTime"] != first["renewTime"], timeout=6,
             what="lease renewed")
    # mirror pod of the static pod
    mirror = wait_for(lambda: get(apiserver, NS + "/kube-system/pods/kube-apiserver-" + NODE), what="mirror pod")
    assert mirror["spec"]["nodeName"] == NODE
    assert mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"] == \
        tree.pidfile("kube-apiserver.yaml")["sha256"]
    status = tree.status("kubelet")
    assert status["server"] == apiserver.url and status["connected"] is True

    # no kube-proxy before its ConfigMap can be read
    time.sleep(3)
    assert proxy_pid(tree) is None
    assert get(apiserver, NS + "/kube-system/pods/kube-proxy-" + NODE) is None

    healthz_port = free_port()
    cm = proxy_configmap(tree, pki, apiserver.url, token, healthz_port)
    assert apiserver.request("POST", NS + "/kube-system/configmaps", cm)[0] == 201
    pid1 = wait_for(lambda: proxy_pid(tree), what="kube-proxy started")
    assert cmdline(pid1)[-2:] == ["--config=%s" % os.path.join(tree.proxy_dir, "config.conf"),
                                  "--hostname-override=" + NODE]
    wait_for(lambda: tree.status("kube-proxy").get("connected") and tree.status("kube-proxy")["server"] == apiserver.url,
             what="kube-proxy talks to the first server")
    pod1 = wait_for(lambda: get(apiserver, NS + "/kube-system/pods/kube-proxy-" + NODE), what="kube-proxy pod")
    assert pod1["metadata"]["labels"]["k8s-app"] == "kube-proxy"
    assert pod1["spec"]["nodeName"] == NODE
    assert pod1["status"]["phase"] == "Running"

    # the ConfigMap changes: the running kube-proxy keeps its kubeconfig...
    current = get(apiserver, NS + "/kube-system/configmaps/kube-proxy")
    current["data"] = proxy_configmap(tree, pki, second.url, token, healthz_port)["data"]
    assert apiserver.request("PUT", NS + "/kube-system/configmaps/kube-proxy", current)[0] == 200
    time.sleep(4)
    assert proxy_pid(tree) == pid1
    assert tree.status("kube-proxy")["server"] == apiserver.url

    # ...until its pod is deleted: then a new process with the fresh ConfigMap, and a new pod
    assert apiserver.request("DELETE", NS + "/kube-system/pods/kube-proxy-" + NODE)[0] == 200
    pid2 = wait_for(lambda: (p := proxy_pid(tree)) and p != pid1 and p, what="kube-proxy restarted")
    assert not alive(pid1)
    wait_for(lambda: tree.status("kube-proxy")["server"] == second.url and tree.status("kube-proxy")["connected"],
             what="kube-proxy talks to the second server")
    pod2 = wait_for(lambda: get(apiserver, NS + "/kube-system/pods/kube-proxy-" + NODE), what="pod re-created")
    assert pod2["metadata"]["uid"] != pod1["metadata"]["uid"]
    with open(os.path.join(tree.proxy_dir, "kubeconfig.conf")) as handle:
        assert second.url in handle.read()

    # kubelet restart: kube-proxy and static pods adopted, kube-proxy pod kept
    static_pid = tree.pidfile("kube-apiserver.yaml")["pid"]
    assert tree.stop(kubelet) == 0
    kubelet2 = tree.start("kubelet", *args)
    wait_for(lambda: any(r["event"] == "adopt" and r["pid"] == kubelet2.pid and "kube-proxy" in r["detail"]
                         for r in tree.records("kubelet")), what="kube-proxy adopted")
    time.sleep(4)
    assert proxy_pid(tree) == pid2
    assert tree.pidfile("kube-apiserver.yaml")["pid"] == static_pid and alive(static_pid)
    assert get(apiserver, NS + "/kube-system/pods/kube-proxy-" + NODE)["metadata"]["uid"] == pod2["metadata"]["uid"]

    # the kubelet keeps its own kubeconfig's server: it never followed the ConfigMap
    assert tree.status("kubelet")["server"] == apiserver.url
    # removing the static pod removes its mirror pod
    os.unlink(os.path.join(tree.manifests, "kube-apiserver.yaml"))
    wait_for(lambda: get(apiserver, NS + "/kube-system/pods/kube-apiserver-" + NODE) is None, what="mirror pod deleted")
    assert node["metadata"]["name"] == NODE
