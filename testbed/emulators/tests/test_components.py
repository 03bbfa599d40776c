"""kube-controller-manager / kube-scheduler emulators against the real kube-apiserver emulator:
leader election with takeover, HTTPS /healthz (self-signed) failing when the server is away, the
bootstrap signer; kube-proxy's /healthz."""

import base64
import http.client
import json
import os
import socket
import ssl
import time

import pytest

from componentkit import Tree, free_port, wait_for
from conftest import KUBE_PROXY_TOKEN
from kubeha_emu.controllers import detached_jws


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path)
    yield t
    t.cleanup()


def lease(apiserver, name):
    status, _, body = apiserver.request("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/" + name)
    return body if status == 200 else None


def holder(apiserver, name):
    body = lease(apiserver, name)
    return body and body["spec"].get("holderIdentity")


def pinned_context(port):
    """Trust exactly the certificate the component serves (it is self-signed): fetch it, then
    verify the TLS connection against it, host name included."""
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    ctx = ssl.create_default_context(cadata=pem)
    ctx.check_hostname = True
    return ctx, pem


def https_get(port, path, ctx, host="localhost"):
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=5)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def identity_of(tree, proc):
    for record in tree.records("kube-controller-manager"):
        if record["pid"] == proc.pid and record["event"] == "leader" and "acquired" in (record["detail"] or ""):
            return record["detail"].rsplit(" as ", 1)[1]
    return None


def test_leader_election_and_takeover(tmp_path, apiserver):
    # two "masters": separate status/log trees so each status file is its own
    a, b = Tree(tmp_path / "m1"), Tree(tmp_path / "m2")
    try:
        kubeconfig = apiserver.kubeconfig(str(tmp_path / "controller-manager.conf"))
        args = ["--kubeconfig=" + kubeconfig, "--authentication-kubeconfig=" + kubeconfig,
                "--bind-address=127.0.0.1", "--leader-elect=true", "--use-service-account-credentials=true",
                "--cluster-signing-cert-file=/etc/kubernetes/ssl/ca.crt"]
        apiserver.request("DELETE", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager")
        first = a.start("kube-controller-manager", *args, "--secure-port=%d" % free_port())
        wait_for(lambda: a.status("kube-controller-manager").get("leader") is True, what="first leader")
        second = b.start("kube-controller-manager", *args, "--secure-port=%d" % free_port())
        wait_for(lambda: b.status("kube-controller-manager").get("connected"), what="second connected")
        leader_id = holder(apiserver, "kube-controller-manager")
        assert leader_id.startswith(socket.gethostname() + "_")
        time.sleep(4)
        assert b.status("kube-controller-manager").get("leader") is False, "only one leader"
        assert holder(apiserver, "kube-controller-manager") == leader_id
        assert lease(apiserver, "kube-controller-manager")["spec"]["leaseDurationSeconds"] == 15

        stopped = time.time()
        assert a.stop(first) == 0
        wait_for(lambda: b.status("kube-controller-manager").get("leader") is True, timeout=30,
                 what="takeover by the second")
        took = time.time() - stopped
        new_id = holder(apiserver, "kube-controller-manager")
        assert new_id != leader_id and new_id.startswith(socket.gethostname() + "_")
        # the successor waits out the lease (15 s from its last observed renewal), as client-go does
        assert 10 <= took <= 25, took
        assert lease(apiserver, "kube-controller-manager")["spec"]["leaseTransitions"] >= 1
        assert b.stop(second) == 0
    finally:
        a.cleanup()
        b.cleanup()


def test_scheduler_healthz_follows_server(tree, pki, start_apiserver, tmp_path):
    server = start_apiserver()
    server.wait_ready()
    kubeconfig = server.kubeconfig(str(tmp_path / "scheduler.conf"))
    port = free_port()
    sched = tree.start("kube-scheduler", "--kubeconfig=" + kubeconfig, "--bind-address=127.0.0.1",
                       "--secure-port=%d" % port, "--leader-elect=false")
    # without leader election it cannot exit on "leaderelection lost", so the 500 stays observable
    wait_for(lambda: tree.status("kube-scheduler").get("connected") is True, what="scheduler connected")
    ctx, pem = pinned_context(port)
    assert https_get(port, "/healthz", ctx) == (200, "ok")
    assert https_get(port, "/healthz", ctx, host="127.0.0.1") == (200, "ok")   # IP SAN 127.0.0.1
    # CN localhost@<unix time>, as the real self-signed serving cert
    der = ssl.PEM_cert_to_DER_cert(pem)
    assert b"localhost@" in der
    # a name the certificate does not carry is refused by the verified client
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="other.invalid")

    server.stop()
    stopped = time.time()
    status, body = wait_for(lambda: (r := https_get(port, "/healthz", ctx))[0] == 500 and r, timeout=20,
                            what="healthz 500 while the server is away")
    assert time.time() - stopped >= 8, "healthz stays ok for 10 s after the last answer"
    assert server.url in body
    assert tree.status("kube-scheduler")["connected"] is False
    assert any(r["event"] == "error" and r["server"] == server.url for r in tree.records("kube-scheduler"))
    assert tree.stop(sched) == 0


def test_controller_manager_exits_when_leadership_lost(tree, start_apiserver, tmp_path):
    server = start_apiserver()
    server.wait_ready()
    kubeconfig = server.kubeconfig(str(tmp_path / "cm.conf"))
    server.request("DELETE", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager")
    proc = tree.start("kube-controller-manager", "--kubeconfig=" + kubeconfig, "--bind-address=127.0.0.1",
                      "--secure-port=%d" % free_port())
    wait_for(lambda: tree.status("kube-controller-manager").get("leader") is True, what="leads")
    server.stop()
    # renewDeadline 10 s, then "leaderelection lost" and exit 1 (the kubelet restarts it)
    assert proc.wait(25) == 1
    assert any(r["event"] == "leader" and r["detail"] == "leaderelection lost"
               for r in tree.records("kube-controller-manager"))


def secret(token_id, token_secret, signing=True):
    data = {"token-id": token_id, "token-secret": token_secret}
    if signing:
        data["usage-bootstrap-signing"] = "true"
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": "bootstrap-token-" + token_id, "namespace": "kube-system"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def test_jws_matches_upstream_vectors():
    # known answers from k8s.io/cluster-bootstrap/token/jws's own unit test
    content = "Hello from the other side. I must have called a thousand times."
    assert detached_jws(content, "joshua", "my voice is my passcode") == \
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8"
    assert detached_jws("", "joshua", "my voice is my passcode") == \
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk"


def test_bootstrap_signer(tree, start_apiserver, tmp_path):
    server = start_apiserver()
    server.wait_ready()
    base = "/api/v1/namespaces"
    for name in ("bootstrap-token-abcdef", "bootstrap-token-zzzzzz"):
        server.request("DELETE", base + "/kube-system/secrets/" + name)
    server.request("DELETE", base + "/kube-public/configmaps/cluster-info")
    status, _, _ = server.request("POST", base + "/kube-system/secrets", secret("abcdef", "0123456789abcdef"))
    assert status == 201
    assert server.request("POST", base + "/kube-system/secrets", secret("zzzzzz", "0123456789abcdef", False))[0] == 201
    kubeconfig_text = "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    server: https://10.0.0.1:6443\n"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"},
          "data": {"kubeconfig": kubeconfig_text, "jws-kubeconfig-gone00": "stale"}}
    assert server.request("POST", base + "/kube-public/configmaps", cm)[0] == 201
    kubeconfig = server.kubeconfig(str(tmp_path / "cm.conf"))
    server.request("DELETE", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager")
    tree.start("kube-controller-manager", "--kubeconfig=" + kubeconfig, "--bind-address=127.0.0.1",
               "--secure-port=%d" % free_port())

    def data():
        return server.request("GET", base + "/kube-public/configmaps/cluster-info")[2]["data"]

    wait_for(lambda: data().get("jws-kubeconfig-abcdef") == detached_jws(kubeconfig_text, "abcdef", "0123456789abcdef"),
             what="cluster-info signed")
    assert "jws-kubeconfig-zzzzzz" not in data(), "tokens without usage-bootstrap-signing are not used"
    assert "jws-kubeconfig-gone00" not in data(), "signatures of tokens that no longer exist are removed"

    # the conversion rewrites the kubeconfig (new server): the signature follows
    current = server.request("GET", base + "/kube-public/configmaps/cluster-info")[2]
    new_text = kubeconfig_text.replace("10.0.0.1", "172.30.0.10")
    current["data"]["kubeconfig"] = new_text
    assert server.request("PUT", base + "/kube-public/configmaps/cluster-info", current)[0] == 200
    wait_for(lambda: data().get("jws-kubeconfig-abcdef") == detached_jws(new_text, "abcdef", "0123456789abcdef"),
             what="re-signed after the change")
    assert data()["kubeconfig"] == new_text


def test_kube_proxy_healthz(tree, pki, start_apiserver, tmp_path):
    server = start_apiserver()
    server.wait_ready()
    token = tmp_path / "token"
    token.write_text(KUBE_PROXY_TOKEN)
    kubeconfig = tmp_path / "kubeconfig.conf"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "default",
        "clusters": [{"name": "default", "cluster": {"server": server.url, "certificate-authority": pki.ca_crt}}],
        "users": [{"name": "default", "user": {"tokenFile": str(token)}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "namespace": "default", "user": "default"}}]}))
    port = free_port()
    config = tmp_path / "config.conf"
    config.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                      "clientConnection:\n  kubeconfig: %s\nhealthzBindAddress: 127.0.0.1:%d\nmode: iptables\n"
                      % (kubeconfig, port))
    proxy = tree.start("kube-proxy", "--config=%s" % config, "--hostname-override=node1")

    def healthz():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        conn.request("GET", "/healthz")
        answer = conn.getresponse()
        return answer.status, answer.read().decode()

    wait_for(lambda: healthz() == (200, "ok"), what="kube-proxy healthy")
    status = tree.status("kube-proxy")
    assert status["server"] == server.url and status["connected"] is True
    server.stop()
    wait_for(lambda: healthz()[0] == 503, timeout=20, what="kube-proxy unhealthy without server")
    assert tree.stop(proxy) == 0
    assert os.path.exists(os.path.join(tree.log_dir, "kube-proxy.log"))


def test_node_lifecycle_marks_a_silent_node_unknown_and_untaints_it_when_it_returns(apiserver, tmp_path):
    """The emulated node lifecycle controller against the real apiserver emulator, on its own clock:
    a node whose heartbeat and Lease stop is Ready=Unknown with the unreachable taints after the
    grace period counted from the last news the controller SAW; the node that keeps renewing stays
    Ready; the kubelet posting again removes the taints; a new leader grants a full grace period."""
    from kubeha_emu import client as kclient
    from kubeha_emu.controllers import NodeLifecycle

    nodes, leases = "/api/v1/nodes", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"

    def post_node(name, heartbeat):
        apiserver.request("DELETE", "%s/%s" % (nodes, name))
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"lc-test": "yes"}},
                "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                           "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat}]}}
        assert apiserver.request("POST", nodes, body)[0] == 201

    def renew(name, stamp):
        current = apiserver.request("GET", "%s/%s" % (leases, name))
        if current[0] == 404:
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": name, "namespace": "kube-node-lease"},
                     "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": stamp}}
            assert apiserver.request("POST", leases, lease)[0] == 201
        else:
            lease = current[2]
            lease["spec"]["renewTime"] = stamp
            assert apiserver.request("PUT", "%s/%s" % (leases, name), lease)[0] == 200

    def node(name):
        return apiserver.request("GET", "%s/%s" % (nodes, name))[2]

    def ready(name):
        return [c for c in node(name)["status"]["conditions"] if c["type"] == "Ready"][0]

    def unreachable_taints(name):
        return sorted(t["effect"] for t in node(name)["spec"].get("taints") or []
                      if t["key"] == "node.kubernetes.io/unreachable")

    post_node("lc-silent", "2026-01-01T00:00:00Z")
    post_node("lc-alive", "2026-01-01T00:00:00Z")
    renew("lc-silent", "2026-01-01T00:00:00.000000Z")
    now = [1000.0]
    api = kclient.Client(apiserver.kubeconfig(str(tmp_path / "lc.conf")))
    lc = NodeLifecycle(api, grace=40, period=5, clock=lambda: now[0], selector="lc-test=yes")

    def at(t, alive_stamp):
        now[0] = 1000.0 + t
        renew("lc-alive", alive_stamp)
        return lc.sync()

    assert at(0, "2026-01-01T00:00:01.000000Z") == []
    renew("lc-silent", "2026-01-01T00:00:30.000000Z")          # last news from lc-silent at t=30
    assert at(30, "2026-01-01T00:00:31.000000Z") == []
    assert at(32, "2026-01-01T00:00:32.000000Z") == [], "a pass within the monitor period does nothing"
    assert at(69, "2026-01-01T00:00:33.000000Z") == [], "39 s since its last renewal: within the grace period"
    changes = at(75, "2026-01-01T00:00:34.000000Z")
    assert any(c.startswith("lc-silent: Ready Unknown") for c in changes), changes
    assert ready("lc-silent")["status"] == "Unknown"
    assert ready("lc-silent")["reason"] == "NodeStatusUnknown"
    assert ready("lc-silent")["message"] == "Kubelet stopped posting node status."
    assert unreachable_taints("lc-silent") == ["NoExecute", "NoSchedule"]
    assert ready("lc-alive")["status"] == "True" and unreachable_taints("lc-alive") == []

    # the kubelet posts again: Ready True from it, the taints removed by the controller
    back = node("lc-silent")
    back["status"]["conditions"] = [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                     "lastHeartbeatTime": "2026-01-01T00:02:00Z",
                                     "lastTransitionTime": "2026-01-01T00:02:00Z"}]
    assert apiserver.request("PUT", "%s/lc-silent/status" % nodes, back)[0] == 200
    changes = at(81, "2026-01-01T00:00:35.000000Z")
    assert changes == ["lc-silent: removed node.kubernetes.io/unreachable taints"], changes
    assert ready("lc-silent")["status"] == "True" and unreachable_taints("lc-silent") == []

    # a new leader sees lc-silent silent since long ago, yet gives it a full grace period
    renew("lc-silent", "2026-01-01T00:03:00.000000Z")
    lc = NodeLifecycle(api, grace=40, period=5, clock=lambda: now[0], selector="lc-test=yes")
    assert at(200, "2026-01-01T00:00:36.000000Z") == []
    assert at(239, "2026-01-01T00:00:37.000000Z") == []
    assert any(c.startswith("lc-silent: Ready Unknown") for c in at(245, "2026-01-01T00:00:38.000000Z"))
    for name in ("lc-silent", "lc-alive"):
        apiserver.request("DELETE", "%s/%s" % (nodes, name))
        apiserver.request("DELETE", "%s/%s" % (leases, name))
