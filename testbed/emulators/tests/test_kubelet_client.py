"""kubeha_emu.client: kubeconfig loading (file paths, embedded data, the kubelet's combined pem,
tokenFile) against the real kube-apiserver emulator, with TLS verified: a server whose certificate
is from another CA, or does not name the host, is refused; a server named by a name is verified for
the name and looked up again at every connection."""

import base64
import json
import os
import socket
import threading

import pytest

from conftest import KUBE_PROXY_TOKEN
from kubeha_emu import client as kclient
from kubeha_emu import common


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "LOG_DIR", str(tmp_path / "log"))
    monkeypatch.setattr(common, "STATUS_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(kclient, "SECRET_DIR", str(tmp_path / "run" / "secrets"))
    return tmp_path


def write_kubeconfig(path, server, cluster, user):
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "ctx",
              "clusters": [{"name": "other", "cluster": {"server": "https://192.0.2.1:6443",
                                                         "certificate-authority": "/nonexistent"}},
                           {"name": "c", "cluster": dict(cluster, server=server)}],
              "users": [{"name": "u", "user": user}],
              "contexts": [{"name": "wrong", "context": {"cluster": "other", "user": "u"}},
                           {"name": "ctx", "context": {"cluster": "c", "user": "u"}}]}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    return str(path)


def b64file(path):
    with open(path, "rb") as handle:
        return base64.b64encode(handle.read()).decode()


def can_read_kube_system(api):
    answer = api.get("/api/v1/namespaces/kube-system")
    return answer.status, (answer.json or {}).get("metadata", {}).get("name")


def test_paths_and_current_context(dirs, pki, apiserver):
    path = write_kubeconfig(dirs / "admin.conf", apiserver.url, {"certificate-authority": pki.ca_crt},
                            {"client-certificate": pki.admin_crt, "client-key": pki.admin_key})
    api = kclient.Client(path)
    assert api.server == apiserver.url
    assert can_read_kube_system(api) == (200, "kube-system")
    assert api.healthy()[0]


def test_embedded_data_leaves_no_key_on_disk(dirs, pki, apiserver):
    path = write_kubeconfig(dirs / "scheduler.conf", apiserver.url,
                            {"certificate-authority-data": b64file(pki.ca_crt)},
                            {"client-certificate-data": b64file(pki.admin_crt),
                             "client-key-data": b64file(pki.admin_key)})
    reporter = common.Reporter("kube-scheduler")
    api = kclient.Client(path, reporter=reporter)
    assert can_read_kube_system(api) == (200, "kube-system")
    secret_dir = dirs / "run" / "secrets"
    assert oct(os.stat(secret_dir).st_mode & 0o777) == "0o700"
    assert os.listdir(secret_dir) == [], "embedded key material must not stay on disk"
    with open(pki.admin_key, encoding="utf-8") as handle:
        key_body = handle.read().splitlines()[1]
    logged = (dirs / "log" / "kube-scheduler.log").read_text()
    assert key_body not in logged and "PRIVATE KEY" not in logged and b64file(pki.admin_key)[:40] not in logged
    status = json.loads((dirs / "run" / "kube-scheduler.json").read_text())
    assert status["server"] == apiserver.url and status["connected"] is True


def test_kubelet_combined_pem_relative_paths(dirs, pki, apiserver):
    pki_dir = dirs / "pki"
    pki_dir.mkdir()
    combined = pki_dir / "kubelet-client-current.pem"
    with open(pki.node_crt, encoding="utf-8") as crt, open(pki.node_key, encoding="utf-8") as key:
        combined.write_text(crt.read() + key.read())
    os.chmod(combined, 0o600)
    # relative paths are relative to the kubeconfig's directory, as in client-go
    path = write_kubeconfig(dirs / "kubelet.conf", apiserver.url, {"certificate-authority": pki.ca_crt},
                            {"client-certificate": "pki/kubelet-client-current.pem",
                             "client-key": "pki/kubelet-client-current.pem"})
    api = kclient.Client(path)
    assert can_read_kube_system(api) == (200, "kube-system")


def test_token_file(dirs, pki, apiserver):
    token = dirs / "token"
    token.write_text(KUBE_PROXY_TOKEN + "\n")
    path = write_kubeconfig(dirs / "kubeconfig.conf", apiserver.url, {"certificate-authority": pki.ca_crt},
                            {"tokenFile": str(token)})
    api = kclient.Client(path)
    assert can_read_kube_system(api) == (200, "kube-system")
    # without credentials the same request is refused: the token is what authenticated us
    anonymous = kclient.Client(write_kubeconfig(dirs / "anon.conf", apiserver.url,
                                                {"certificate-authority": pki.ca_crt}, {}))
    assert anonymous.get("/api/v1/namespaces/kube-system").status in (401, 403)
    assert not anonymous.healthy()[0]


def test_wrong_ca_is_refused(dirs, pki, apiserver):
    other_ca, _ = pki.make_ca("other-ca", "not-the-cluster-ca")
    path = write_kubeconfig(dirs / "bad.conf", apiserver.url, {"certificate-authority": other_ca},
                            {"client-certificate": pki.admin_crt, "client-key": pki.admin_key})
    reporter = common.Reporter("kube-proxy")
    api = kclient.Client(path, reporter=reporter)
    with pytest.raises(kclient.ClientError, match="CERTIFICATE_VERIFY_FAILED"):
        api.get("/api/v1/namespaces/kube-system")
    ok, reason = api.healthy()
    assert not ok and "CERTIFICATE_VERIFY_FAILED" in reason
    records = [json.loads(line) for line in (dirs / "log" / "kube-proxy.log").read_text().splitlines()]
    assert any(r["event"] == "error" and r["server"] == apiserver.url for r in records)


def test_wrong_host_name_is_refused(dirs, pki, start_apiserver):
    crt, key = pki.make_cert("elsewhere", "kube-apiserver", server=True, sans=["DNS:elsewhere.invalid"])
    server = start_apiserver(cert=crt, key=key)
    path = write_kubeconfig(dirs / "admin.conf", server.url, {"certificate-authority": pki.ca_crt},
                            {"client-certificate": pki.admin_crt, "client-key": pki.admin_key})
    api = kclient.Client(path)
    with pytest.raises(kclient.ClientError, match="IP address mismatch|doesn't match|hostname"):
        api.get("/api/v1/namespaces/kube-system")


def test_kubeconfig_errors(dirs):
    with pytest.raises(kclient.KubeconfigError):
        kclient.Kubeconfig(str(dirs / "missing.conf"))
    path = write_kubeconfig(dirs / "insecure.conf", "https://127.0.0.1:1", {"insecure-skip-tls-verify": True}, {})
    with pytest.raises(kclient.KubeconfigError, match="insecure-skip-tls-verify"):
        kclient.Kubeconfig(path)


class Forwarder:
    """A TCP forwarder on 127.0.0.2:<port> to 127.0.0.1:<port>, what HAProxy (mode tcp) is to the
    bed's apiservers; counts the connections it took."""

    def __init__(self, port):
        self.port, self.connections = port, 0
        self.listener = socket.create_server(("127.0.0.2", port))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.port))
            for src, dst in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        # shutdown wakes the accept() of the serving thread (a close alone would leave it listening)
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)


def test_a_server_name_is_verified_and_looked_up_again_at_every_connection(dirs, pki, start_apiserver,
                                                                           monkeypatch):
    # layout kubeadm-dns: every kubeconfig names https://cluster-endpoint:6443, which /etc/hosts maps
    # to master 1 until the operator repoints it to the load balancer. The client must verify TLS for
    # the name (the certificate has no IP SAN here) and resolve the name anew for every connection
    # (glibc reads /etc/hosts at each lookup; the client must not keep an address either), so that a
    # component started before the change reaches the new address.
    crt, key = pki.make_cert("cpe-apiserver", "kube-apiserver", server=True, sans=["DNS:cluster-endpoint"])
    server = start_apiserver(cert=crt, key=key)
    table, lookups = {"cluster-endpoint": "127.0.0.1"}, []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host in table:
            lookups.append(table[host])
            host = table[host]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    url = "https://cluster-endpoint:%d" % server.port
    path = write_kubeconfig(dirs / "kubelet.conf", url, {"certificate-authority": pki.ca_crt},
                            {"client-certificate": pki.admin_crt, "client-key": pki.admin_key})
    api = kclient.Client(path)
    assert can_read_kube_system(api) == (200, "kube-system")
    assert lookups == ["127.0.0.1"]
    # the name repointed (the load balancer's address): the next request goes there, by the name
    lb = Forwarder(server.port)
    try:
        table["cluster-endpoint"] = "127.0.0.2"
        assert can_read_kube_system(api) == (200, "kube-system")
        assert can_read_kube_system(api) == (200, "kube-system")
        assert lookups == ["127.0.0.1", "127.0.0.2", "127.0.0.2"] and lb.connections == 2
    finally:
        lb.close()
    # nothing listens there any more: no fallback to the address of the first connection
    with pytest.raises(kclient.ClientError, match="Connection refused|ECONNREFUSED"):
        api.get("/api/v1/namespaces/kube-system")
    # the same certificate by the address alone is refused: the name is what is verified
    by_ip = kclient.Client(write_kubeconfig(dirs / "by-ip.conf", server.url, {"certificate-authority": pki.ca_crt},
                                            {"client-certificate": pki.admin_crt, "client-key": pki.admin_key}))
    with pytest.raises(kclient.ClientError, match="IP address mismatch|doesn't match|hostname"):
        by_ip.get("/api/v1/namespaces/kube-system")
