"""kube-apiserver emulator: authentication, storage semantics in etcd, selectors, discovery, tables."""

import json
import os
import uuid

import pytest

from conftest import ADMIN_TOKEN, KUBE_PROXY_TOKEN, free_port

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


@pytest.fixture
def ns(apiserver):
    name = "t-" + uuid.uuid4().hex[:8]
    status, _, body = apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    return name


def cm_path(ns, name=""):
    return "/api/v1/namespaces/%s/configmaps%s" % (ns, "/" + name if name else "")


# --- authentication --------------------------------------------------------------------------------

def test_anonymous_health_ok_and_api_unauthorized(apiserver):
    for path in ("/readyz", "/livez", "/healthz"):
        status, _, body = apiserver.request("GET", path, client_cert=False)
        assert (status, body) == (200, "ok"), path
    status, _, body = apiserver.request("GET", "/version", client_cert=False)
    assert status == 200 and body["gitVersion"].startswith("v1.")
    status, _, body = apiserver.request("GET", "/api/v1/configmaps", client_cert=False)
    assert status == 401
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401
    status, _, _ = apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": "anon"}},
                                     client_cert=False)
    assert status == 401


def test_anonymous_may_read_cluster_info_only(apiserver):
    """kubeadm's Role kube-public/kubeadm:bootstrap-signer-clusterinfo: system:anonymous may get
    cluster-info (joining nodes read it without credentials), nothing else in kube-public."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"},
          "data": {"kubeconfig": "apiVersion: v1\nkind: Config\n"}}
    created = apiserver.request("POST", "/api/v1/namespaces/kube-public/configmaps", cm)[0]
    assert created in (201, 409)
    path = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    status, _, body = apiserver.request("GET", path, client_cert=False)
    assert status == 200 and body["metadata"]["name"] == "cluster-info"
    assert apiserver.request("PUT", path, body, client_cert=False)[0] == 401
    assert apiserver.request("DELETE", path, client_cert=False)[0] == 401
    assert apiserver.request("GET", "/api/v1/namespaces/kube-public/configmaps", client_cert=False)[0] == 401
    assert apiserver.request("GET", path + "x", client_cert=False)[0] == 401


def test_client_cert_auth_and_identity_logged_once(apiserver):
    status, _, body = apiserver.request("GET", "/api/v1/namespaces")
    assert status == 200
    names = [n["metadata"]["name"] for n in body["items"]]
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(names)
    node = (apiserver.pki.node_crt, apiserver.pki.node_key)
    for _ in range(3):
        assert apiserver.request("GET", "/api/v1/nodes", client_cert=node)[0] == 200
    lines = [r for r in apiserver.log_records() if r["event"] == "request" and "system:node:node1" in r["detail"]]
    assert len(lines) == 1
    assert "system:nodes" in lines[0]["detail"] and "client-cert" in lines[0]["detail"]


def test_client_cert_from_other_ca_is_rejected(apiserver, pki, tmp_path):
    crt, key = pki.make_cert("stranger", "kubernetes-admin", orgs=["system:masters"], ca="etcd-ca",
                             out_dir=str(tmp_path))
    with pytest.raises(OSError):  # the handshake fails: the server verifies against --client-ca-file
        apiserver.request("GET", "/api/v1/namespaces", client_cert=(crt, key))


def test_token_auth(apiserver):
    status, _, body = apiserver.request("GET", "/api/v1/namespaces/kube-system/configmaps", client_cert=False,
                                        token=ADMIN_TOKEN)
    assert status == 200 and body["kind"] == "ConfigMapList"
    assert apiserver.request("GET", "/api/v1/nodes", client_cert=False, token=KUBE_PROXY_TOKEN)[0] == 200
    status, _, body = apiserver.request("GET", "/api/v1/nodes", client_cert=False, token="wrong-token")
    assert status == 401 and body["reason"] == "Unauthorized"
    # a bad token is rejected even where anonymous callers are allowed
    assert apiserver.request("GET", "/readyz", client_cert=False, token="wrong-token")[0] == 401
    records = [r for r in apiserver.log_records() if r["event"] == "request" and "admin-token-user" in r["detail"]]
    assert len(records) == 1 and "via token" in records[0]["detail"] and "system:masters,extra" in records[0]["detail"]


# --- storage semantics ---------------------------------------------------------------------------------

def test_configmap_create_get_list_update(apiserver, ns):
    status, _, created = apiserver.request("POST", cm_path(ns), {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one", "labels": {"app": "a"}},
        "data": {"k": "v1"}})
    assert status == 201
    meta = created["metadata"]
    assert meta["namespace"] == ns and uuid.UUID(meta["uid"]).version == 4
    assert meta["creationTimestamp"].endswith("Z") and int(meta["resourceVersion"]) > 0
    status, _, got = apiserver.request("GET", cm_path(ns, "one"))
    assert status == 200 and got["data"] == {"k": "v1"} and got["metadata"]["resourceVersion"] == meta["resourceVersion"]
    status, _, body = apiserver.request("POST", cm_path(ns), {"metadata": {"name": "one"}})
    assert status == 409 and body["reason"] == "AlreadyExists"
    got["data"]["k"] = "v2"
    status, _, updated = apiserver.request("PUT", cm_path(ns, "one"), got)
    assert status == 200 and updated["data"] == {"k": "v2"}
    assert int(updated["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert updated["metadata"]["uid"] == meta["uid"]
    assert updated["metadata"]["creationTimestamp"] == meta["creationTimestamp"]
    status, _, lst = apiserver.request("GET", cm_path(ns))
    assert status == 200 and lst["kind"] == "ConfigMapList" and lst["apiVersion"] == "v1"
    assert [i["metadata"]["name"] for i in lst["items"]] == ["one"]
    assert int(lst["metadata"]["resourceVersion"]) >= int(updated["metadata"]["resourceVersion"])
    # visible across namespaces too
    status, _, everything = apiserver.request("GET", "/api/v1/configmaps")
    assert (ns, "one") in [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everything["items"]]


def test_objects_live_in_etcd_under_registry_keys(apiserver, etcd, ns):
    from kubeha_emu.apiserver.etcd import EtcdClient
    apiserver.request("POST", cm_path(ns), {"metadata": {"name": "stored"}, "data": {"a": "b"}})
    client = EtcdClient([etcd.url], apiserver.pki.etcd_ca_crt, apiserver.pki.etcd_client_crt,
                        apiserver.pki.etcd_client_key)
    kv, _ = client.get("/registry/configmaps/%s/stored" % ns)
    assert kv is not None and json.loads(kv.value)["data"] == {"a": "b"}
    status, _, got = apiserver.request("GET", cm_path(ns, "stored"))
    assert got["metadata"]["resourceVersion"] == str(kv.mod_revision)
    node_kv, _ = client.get("/registry/namespaces/" + ns)
    assert node_kv is not None


def test_stale_put_conflicts_and_unconditional_put_wins(apiserver, ns):
    _, _, first = apiserver.request("POST", cm_path(ns), {"metadata": {"name": "race"}, "data": {"n": "0"}})
    stale = json.loads(json.dumps(first))
    first["data"]["n"] = "1"
    assert apiserver.request("PUT", cm_path(ns, "race"), first)[0] == 200
    stale["data"]["n"] = "stale"
    status, _, body = apiserver.request("PUT", cm_path(ns, "race"), stale)
    assert status == 409 and body["reason"] == "Conflict" and body["kind"] == "Status"
    assert "the object has been modified" in body["message"]
    assert apiserver.request("GET", cm_path(ns, "race"))[2]["data"] == {"n": "1"}
    del stale["metadata"]["resourceVersion"]
    status, _, body = apiserver.request("PUT", cm_path(ns, "race"), stale)
    assert status == 200 and body["data"] == {"n": "stale"}


def test_put_of_missing_configmap_is_404_but_lease_is_created(apiserver, ns):
    status, _, body = apiserver.request("PUT", cm_path(ns, "ghost"), {"metadata": {"name": "ghost"}})
    assert status == 404 and body["reason"] == "NotFound" and body["message"] == 'configmaps "ghost" not found'
    path = "/apis/coordination.k8s.io/v1/namespaces/%s/leases/holder" % ns
    status, _, lease = apiserver.request("PUT", path, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                                       "metadata": {"name": "holder"},
                                                       "spec": {"holderIdentity": "me"}})
    assert status == 201 and lease["spec"]["holderIdentity"] == "me"
    assert apiserver.request("GET", path)[2]["spec"]["holderIdentity"] == "me"


def test_create_in_missing_namespace_is_404(apiserver):
    status, _, body = apiserver.request("POST", cm_path("no-such-ns"), {"metadata": {"name": "x"}})
    assert status == 404 and body["message"] == 'namespaces "no-such-ns" not found'


def test_label_and_field_selectors(apiserver, ns):
    for name, labels in (("a", {"app": "x", "tier": "1"}), ("b", {"app": "y"}), ("c", {"tier": "2"})):
        assert apiserver.request("POST", cm_path(ns), {"metadata": {"name": name, "labels": labels}})[0] == 201

    def names(query):
        status, _, body = apiserver.request("GET", cm_path(ns) + "?" + query)
        assert status == 200, body
        return [i["metadata"]["name"] for i in body["items"]]

    assert names("labelSelector=app%3Dx") == ["a"]
    assert names("labelSelector=app%21%3Dx") == ["b", "c"]
    assert names("labelSelector=app") == ["a", "b"]
    assert names("labelSelector=%21app") == ["c"]
    assert names("labelSelector=app%2Ctier") == ["a"]
    assert names("labelSelector=tier%20in%20(1%2C2)") == ["a", "c"]
    assert names("fieldSelector=metadata.name%3Db") == ["b"]
    assert names("fieldSelector=metadata.name%21%3Db") == ["a", "c"]
    assert names("fieldSelector=metadata.namespace%3D" + ns + "&labelSelector=tier") == ["a", "c"]
    status, _, body = apiserver.request("GET", cm_path(ns) + "?fieldSelector=spec.bogus%3Dx")
    assert status == 400


def test_pods_field_selector_node_name_and_delete(apiserver, ns):
    for node in ("n1", "n2"):
        pod = {"metadata": {"name": "proxy-" + node, "labels": {"k8s-app": "kube-proxy"}},
               "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}}
        status, _, body = apiserver.request("POST", "/api/v1/namespaces/%s/pods" % ns, pod)
        assert status == 201 and body["status"]["phase"] == "Pending"
    status, _, body = apiserver.request(
        "GET", "/api/v1/namespaces/%s/pods?labelSelector=k8s-app%%3Dkube-proxy&fieldSelector=spec.nodeName%%3Dn2" % ns)
    assert [p["metadata"]["name"] for p in body["items"]] == ["proxy-n2"]
    status, _, body = apiserver.request("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")
    assert [p["metadata"]["name"] for p in body["items"] if p["metadata"]["namespace"] == ns] == ["proxy-n1"]
    status, _, deleted = apiserver.request("DELETE", "/api/v1/namespaces/%s/pods/proxy-n1" % ns)
    assert status == 200 and deleted["kind"] == "Pod" and deleted["metadata"]["name"] == "proxy-n1"
    assert apiserver.request("GET", "/api/v1/namespaces/%s/pods/proxy-n1" % ns)[0] == 404
    assert apiserver.request("DELETE", "/api/v1/namespaces/%s/pods/proxy-n1" % ns)[0] == 404


def test_delete_configmap_returns_status_and_honours_preconditions(apiserver, ns):
    _, _, cm = apiserver.request("POST", cm_path(ns), {"metadata": {"name": "gone"}})
    status, _, body = apiserver.request("DELETE", cm_path(ns, "gone"), {
        "kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": "1"}})
    assert status == 409
    status, _, body = apiserver.request("DELETE", cm_path(ns, "gone"), {"kind": "DeleteOptions", "apiVersion": "v1"})
    assert status == 200 and body["status"] == "Success" and body["details"]["uid"] == cm["metadata"]["uid"]
    assert apiserver.request("GET", cm_path(ns, "gone"))[0] == 404


def test_patches(apiserver, ns):
    apiserver.request("POST", cm_path(ns), {"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}},
                                            "data": {"x": "1", "y": "2"}})

    def patch(body, ctype):
        return apiserver.request("PATCH", cm_path(ns, "p"), json.dumps(body).encode(),
                                 headers={"Content-Type": ctype})

    status, _, body = patch({"data": {"x": "10", "y": None}, "metadata": {"labels": {"c": "3"}}},
                            "application/merge-patch+json")
    assert status == 200 and body["data"] == {"x": "10"} and body["metadata"]["labels"] == {"a": "1", "b": "2", "c": "3"}
    status, _, body = patch({"data": {"z": "3"}}, "application/strategic-merge-patch+json")
    assert status == 200 and body["data"] == {"x": "10", "z": "3"}
    status, _, body = patch([{"op": "replace", "path": "/data/x", "value": "json"},
                             {"op": "remove", "path": "/metadata/labels/a"}], "application/json-patch+json")
    assert status == 200 and body["data"]["x"] == "json" and "a" not in body["metadata"]["labels"]
    status, _, body = patch({"metadata": {"resourceVersion": "1"}, "data": {"q": "1"}}, "application/merge-patch+json")
    assert status == 409 and body["reason"] == "Conflict"
    status, _, body = patch({"data": {"q": "1"}}, "application/apply-patch+yaml")
    assert status == 415
    assert apiserver.request("PATCH", cm_path(ns, "missing"), b"{}",
                             headers={"Content-Type": "application/merge-patch+json"})[0] == 404


def test_strategic_merge_of_node_conditions_through_status(apiserver):
    name = "node-" + uuid.uuid4().hex[:6]
    node = {"metadata": {"name": name, "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}],
                       "nodeInfo": {"kubeletVersion": "v1.30.4"}}}
    status, _, created = apiserver.request("POST", "/api/v1/nodes", node)
    assert status == 201 and "namespace" not in created["metadata"]
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    status, _, body = apiserver.request("PATCH", "/api/v1/nodes/%s/status" % name, json.dumps(patch).encode(),
                                        headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert status == 200
    assert {c["type"]: c["status"] for c in body["status"]["conditions"]} == {"Ready": "True", "MemoryPressure": "False"}
    # the main resource does not change status; /status does not change spec
    body["status"]["conditions"] = []
    body["spec"] = {"unschedulable": True}
    status, _, main = apiserver.request("PUT", "/api/v1/nodes/" + name, body)
    assert status == 200 and main["spec"] == {"unschedulable": True} and len(main["status"]["conditions"]) == 2
    main["spec"] = {}
    main["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    status, _, st = apiserver.request("PUT", "/api/v1/nodes/%s/status" % name, main)
    assert status == 200 and st["spec"] == {"unschedulable": True} and st["status"]["conditions"][0]["status"] == "Unknown"
    assert apiserver.request("DELETE", "/api/v1/nodes/" + name)[0] == 200


def test_events_are_accepted(apiserver, ns):
    event = {"metadata": {"name": "x.17a"}, "involvedObject": {"kind": "Node", "name": "n"}, "reason": "Starting",
             "message": "hi", "type": "Normal"}
    assert apiserver.request("POST", "/api/v1/namespaces/%s/events" % ns, event)[0] == 201
    status, _, body = apiserver.request("GET", "/api/v1/namespaces/%s/events" % ns)
    assert [e["reason"] for e in body["items"]] == ["Starting"]


def test_watch_streams_changes_after_resource_version(apiserver, ns):
    import http.client
    import time
    apiserver.request("POST", cm_path(ns), {"metadata": {"name": "old", "labels": {"w": "1"}}})
    _, _, lst = apiserver.request("GET", cm_path(ns))
    conn = http.client.HTTPSConnection("127.0.0.1", apiserver.port, context=apiserver.ssl_context(), timeout=10)
    t0 = time.time()
    conn.request("GET", cm_path(ns) + "?watch=true&labelSelector=w&timeoutSeconds=4&resourceVersion="
                 + lst["metadata"]["resourceVersion"])
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    _, _, created = apiserver.request("POST", cm_path(ns), {"metadata": {"name": "new", "labels": {"w": "2"}}})
    apiserver.request("POST", cm_path(ns), {"metadata": {"name": "unlabelled"}})  # filtered out
    time.sleep(0.7)
    created["data"] = {"x": "y"}
    apiserver.request("PUT", cm_path(ns, "new"), created)
    time.sleep(0.7)
    apiserver.request("DELETE", cm_path(ns, "old"))
    events = []
    while True:
        line = resp.readline()
        if not line:
            break
        events.append(json.loads(line))
    assert 3.9 < time.time() - t0 < 6, "the watch must end after timeoutSeconds=4"
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "old")]
    assert events[1]["object"]["data"] == {"x": "y"} and events[0]["object"]["kind"] == "ConfigMap"
    conn.close()
    # without resourceVersion the existing objects come first as ADDED
    conn = http.client.HTTPSConnection("127.0.0.1", apiserver.port, context=apiserver.ssl_context(), timeout=10)
    conn.request("GET", cm_path(ns) + "?watch=1&timeoutSeconds=1")
    body = conn.getresponse().read().decode()
    assert sorted(json.loads(l)["object"]["metadata"]["name"] for l in body.splitlines()) == ["new", "unlabelled"]
    conn.close()


# --- discovery and tables ---------------------------------------------------------------------------------

def test_discovery(apiserver):
    _, _, api = apiserver.request("GET", "/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    _, _, v1 = apiserver.request("GET", "/api/v1")
    by_name = {r["name"]: r for r in v1["resources"]}
    assert by_name["configmaps"]["shortNames"] == ["cm"] and by_name["configmaps"]["namespaced"] is True
    assert by_name["pods"]["shortNames"] == ["po"] and by_name["nodes"]["shortNames"] == ["no"]
    assert by_name["nodes"]["namespaced"] is False and "patch" in by_name["nodes"]["verbs"]
    assert "nodes/status" in by_name and "pods/status" in by_name
    _, _, groups = apiserver.request("GET", "/apis")
    assert groups["kind"] == "APIGroupList"
    assert "coordination.k8s.io/v1" in [v["groupVersion"] for g in groups["groups"] for v in g["versions"]]
    _, _, coord = apiserver.request("GET", "/apis/coordination.k8s.io/v1")
    assert [r["name"] for r in coord["resources"]] == ["leases"] and coord["resources"][0]["kind"] == "Lease"
    assert apiserver.request("GET", "/apis/batch/v1")[0] == 404     # a group the emulator does not serve


def test_tables(apiserver, ns):
    apiserver.request("POST", cm_path(ns), {"metadata": {"name": "tab"}, "data": {"a": "1", "b": "2"}})
    status, _, table = apiserver.request("GET", cm_path(ns), headers={"Accept": TABLE})
    assert status == 200 and table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert table["rows"][0]["cells"][:2] == ["tab", 2]
    assert table["rows"][0]["object"]["metadata"]["namespace"] == ns
    pod = {"metadata": {"name": "tp"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Running", "containerStatuses": [{"name": "a", "ready": True, "restartCount": 2},
                                                                {"name": "b", "ready": False, "restartCount": 1}]}}
    assert apiserver.request("POST", "/api/v1/namespaces/%s/pods" % ns, pod)[0] == 201
    _, _, table = apiserver.request("GET", "/api/v1/namespaces/%s/pods/tp" % ns, headers={"Accept": TABLE})
    assert [c["name"] for c in table["columnDefinitions"]][:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert table["rows"][0]["cells"][:4] == ["tp", "1/2", "Running", 3]
    _, _, plain = apiserver.request("GET", cm_path(ns), headers={"Accept": "application/json"})
    assert plain["kind"] == "ConfigMapList"


# --- process ----------------------------------------------------------------------------------------------

def test_process_name_startup_time_and_status_file(apiserver):
    with open("/proc/%d/comm" % apiserver.proc.pid, encoding="utf-8") as handle:
        assert handle.read().strip() == "kube-apiserver"
    assert apiserver.listen_seconds < 1.0, "took %.2fs to listen" % apiserver.listen_seconds
    status = apiserver.status()
    assert status["component"] == "kube-apiserver" and status["pid"] == apiserver.proc.pid
    assert status["server"] == "https://127.0.0.1:%d" % apiserver.port and status["connected"] is True
    start = [r for r in apiserver.log_records() if r["event"] == "start"]
    assert len(start) == 1 and start[0]["server"] == status["server"]
    flags = [r for r in apiserver.log_records() if r["event"] == "flags"]
    assert len(flags) == 1 and "--allow-privileged" in flags[0]["detail"] and "--authorization-mode" in flags[0]["detail"]


def test_etcd_servers_tried_in_order(start_apiserver, etcd):
    dead = "https://127.0.0.1:%d" % free_port()
    server = start_apiserver(extra_args=["--etcd-servers=%s,%s" % (dead, etcd.url)])
    server.wait_ready()
    assert server.request("GET", "/api/v1/namespaces/default")[0] == 200


def test_readyz_fails_without_etcd(start_apiserver):
    dead = "https://127.0.0.1:%d" % free_port()
    server = start_apiserver(extra_args=["--etcd-servers=" + dead])
    import time
    time.sleep(1.5)
    status, _, body = server.request("GET", "/readyz?verbose", client_cert=False)
    assert status == 500 and "[-]etcd failed" in body
    assert server.request("GET", "/livez", client_cert=False)[0] == 200
    status, _, body = server.request("GET", "/api/v1/namespaces")
    assert status == 500 and "etcd" in body["message"]
    assert server.status()["connected"] is False
    assert any(r["event"] == "error" and "etcd" in r["detail"] for r in server.log_records())


def test_bad_flags_exit_2(tmp_path):
    import subprocess
    from conftest import APISERVER
    proc = subprocess.run([APISERVER, "--secure-port=1"], capture_output=True, text=True, timeout=10,
                          env=dict(os.environ, KUBEHA_EMU_LOG_DIR=str(tmp_path), KUBEHA_EMU_STATUS_DIR=str(tmp_path)))
    assert proc.returncode == 2 and "--tls-cert-file is required" in proc.stderr


def test_etcd_restart_is_detected_and_survived(start_apiserver, private_etcd):
    import time
    server = start_apiserver(etcd=private_etcd)
    server.wait_ready()
    assert server.request("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "before"}})[0] == 201
    private_etcd.kill()
    deadline = time.time() + 5
    while server.request("GET", "/readyz", client_cert=False)[0] == 200:
        assert time.time() < deadline, "readyz still ok 5s after etcd stopped"
        time.sleep(0.1)
    assert server.status()["connected"] is False
    assert server.request("GET", "/api/v1/namespaces/default/configmaps/before")[0] == 500
    private_etcd.start()
    server.wait_ready(timeout=10)
    # pooled etcd connections died with the old process: the first request must still succeed
    status, _, body = server.request("GET", "/api/v1/namespaces/default/configmaps/before")
    assert status == 200 and body["metadata"]["name"] == "before"
    assert server.status()["connected"] is True
    events = [r["event"] for r in server.log_records() if r["server"] == private_etcd.url]
    assert events[:3] == ["connect", "error", "connect"], events


def test_http10_health_check_like_haproxy(apiserver):
    import socket
    import ssl
    ctx = ssl.create_default_context(cafile=apiserver.pki.ca_crt)
    with socket.create_connection(("127.0.0.1", apiserver.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
    # answered as Go does (HTTP/1.1 status line), connection closed after the answer
    assert data.startswith(b"HTTP/1.1 200") and b"Connection: close" in data and data.endswith(b"\r\n\r\nok")
    # a bare TCP probe that never speaks TLS does not disturb the server
    with socket.create_connection(("127.0.0.1", apiserver.port), timeout=5):
        pass
    assert apiserver.request("GET", "/livez", client_cert=False)[0] == 200
