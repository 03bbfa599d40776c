"""Shared fixtures of the emulator tests: a PKI made with the openssl CLI, a real single-member etcd
with TLS on loopback, and kube-apiserver emulators on loopback ports.

Fixtures:
  pki        (session) PKI object: ca/etcd-ca files, server/etcd/client certs, token file, make_cert()
  etcd       (session) EtcdServer: url, client cert paths
  apiserver  (session) ApiServer running against `etcd` (shared by tests that don't stop it)
  start_apiserver (function) factory: start_apiserver(**overrides) -> ApiServer, stopped at the end
  private_etcd (function) an EtcdServer the test may kill() and start() again
"""

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pytest

EMU_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APISERVER = os.path.join(EMU_DIR, "kube-apiserver")
ETCD = shutil.which("etcd")
OPENSSL = shutil.which("openssl")

ADMIN_TOKEN = "t0ken-admin-" + "a" * 20
KUBE_PROXY_TOKEN = "t0ken-kube-proxy-" + "b" * 16


def default_sighup():
    """In the child before exec: SIGHUP back to its default action (terminate)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(args, cwd):
    # keys are written to files only: never echo openssl's output
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class PKI:
    """Certificates and keys in a temporary directory, made with the openssl CLI."""

    def __init__(self, directory):
        self.dir = directory
        self.ca_crt, self.ca_key = self.make_ca("ca", "kubernetes")
        self.etcd_ca_crt, self.etcd_ca_key = self.make_ca("etcd-ca", "etcd-ca")
        self.apiserver_crt, self.apiserver_key = self.make_cert(
            "apiserver", "kube-apiserver", server=True, sans=["IP:127.0.0.1", "DNS:localhost", "DNS:kubernetes"])
        self.admin_crt, self.admin_key = self.make_cert("admin", "kubernetes-admin", orgs=["system:masters"])
        self.node_crt, self.node_key = self.make_cert("node1", "system:node:node1", orgs=["system:nodes"])
        self.etcd_server_crt, self.etcd_server_key = self.make_cert(
            "etcd-member", "etcd-member", server=True, sans=["IP:127.0.0.1", "DNS:localhost"], ca="etcd-ca",
            client=True)
        self.etcd_client_crt, self.etcd_client_key = self.make_cert(
            "etcd-node", "etcd-node", ca="etcd-ca")
        self.token_file = os.path.join(directory, "tokens.csv")
        with open(self.token_file, "w", encoding="utf-8") as handle:
            handle.write('%s,admin-token-user,uid-1,"system:masters,extra"\n' % ADMIN_TOKEN)
            handle.write("%s,system:kube-proxy,uid-2\n" % KUBE_PROXY_TOKEN)

    def path(self, name):
        return os.path.join(self.dir, name)

    def make_ca(self, name, cn):
        crt, key = self.path(name + ".crt"), self.path(name + ".key")
        _run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
              "-days", "2", "-subj", "/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"], self.dir)
        return crt, key

    def make_cert(self, name, cn, orgs=(), server=False, client=True, sans=(), ca="ca", serial=None,
                  out_dir=None):
        """Returns (crt path, key path); `serial` is an int (random by default)."""
        out_dir = out_dir or self.dir
        crt, key = os.path.join(out_dir, name + ".crt"), os.path.join(out_dir, name + ".key")
        csr = os.path.join(out_dir, name + ".csr")
        ext = os.path.join(out_dir, name + ".ext")
        subject = "".join("/O=" + o for o in orgs) + "/CN=" + cn
        _run([OPENSSL, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
              "-subj", subject], out_dir)
        usages = (["serverAuth"] if server else []) + (["clientAuth"] if client else [])
        with open(ext, "w", encoding="utf-8") as handle:
            handle.write("basicConstraints=critical,CA:FALSE\n")
            handle.write("keyUsage=critical,digitalSignature,keyEncipherment\n")
            handle.write("extendedKeyUsage=%s\n" % ",".join(usages))
            if sans:
                handle.write("subjectAltName=%s\n" % ",".join(sans))
        serial = serial if serial is not None else secrets.randbits(63)
        _run([OPENSSL, "x509", "-req", "-in", csr, "-CA", self.path(ca + ".crt"), "-CAkey", self.path(ca + ".key"),
              "-set_serial", str(serial), "-days", "2", "-extfile", ext, "-out", crt], out_dir)
        os.unlink(csr)
        os.unlink(ext)
        os.chmod(key, 0o600)
        return crt, key


class EtcdServer:
    def __init__(self, pki, directory):
        self.pki = pki
        self.port = free_port()
        peer = free_port()
        self.url = "https://127.0.0.1:%d" % self.port
        self.log = open(os.path.join(directory, "etcd.log"), "ab")
        self.args = [
            ETCD, "--name", "t1", "--data-dir", os.path.join(directory, "etcd-data"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", "http://127.0.0.1:%d" % peer,
            "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer,
            "--initial-cluster", "t1=http://127.0.0.1:%d" % peer,
            "--cert-file", pki.etcd_server_crt, "--key-file", pki.etcd_server_key,
            "--trusted-ca-file", pki.etcd_ca_crt, "--client-cert-auth"]
        self.start()

    def start(self):
        pki = self.pki
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        ctx = ssl.create_default_context(cafile=pki.etcd_ca_crt)
        ctx.load_cert_chain(pki.etcd_client_crt, pki.etcd_client_key)
        deadline = time.time() + 20
        while True:
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=2)
                conn.request("GET", "/health")
                if json.loads(conn.getresponse().read()).get("health") == "true":
                    break
            except (OSError, ValueError, http.client.HTTPException):
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("etcd did not become healthy (see %s)" % self.log.name)
            time.sleep(0.1)

    def kill(self):
        """Stop the process only (data and ports kept, start() brings it back)."""
        self.proc.terminate()
        self.proc.wait(10)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class ApiServer:
    """A running emulator plus helpers to talk to it with verified TLS."""

    def __init__(self, pki, etcd, directory, extra_args=(), cert=None, key=None, delay="1s"):
        self.pki = pki
        self.dir = directory
        self.port = free_port()
        self.url = "https://127.0.0.1:%d" % self.port
        self.log_dir = os.path.join(directory, "log")
        self.status_dir = os.path.join(directory, "run")
        self.cert = cert or pki.apiserver_crt
        self.key = key or pki.apiserver_key
        env = dict(os.environ, KUBEHA_EMU_LOG_DIR=self.log_dir, KUBEHA_EMU_STATUS_DIR=self.status_dir)
        self.stderr = open(os.path.join(directory, "apiserver.stderr"), "wb")
        args = [APISERVER, "--advertise-address=127.0.0.1", "--bind-address", "127.0.0.1",
                "--secure-port=%d" % self.port, "--tls-cert-file=" + self.cert,
                "--tls-private-key-file", self.key, "--client-ca-file=" + pki.ca_crt,
                "--etcd-servers=" + etcd.url, "--etcd-cafile=" + pki.etcd_ca_crt,
                "--etcd-certfile=" + pki.etcd_client_crt, "--etcd-keyfile=" + pki.etcd_client_key,
                "--token-auth-file=" + pki.token_file, "--shutdown-delay-duration=" + delay,
                "--allow-privileged=true", "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction", "--service-cluster-ip-range=10.233.0.0/18",
                "--kubelet-client-certificate=/nonexistent.crt", "--requestheader-allowed-names=front-proxy-client"]
        args += list(extra_args)
        self.started = time.time()
        # default signal dispositions, as under kubelet: a test runner started with nohup would
        # otherwise pass SIGHUP on as ignored (kept across exec) and the SIGHUP test could not hold
        self.proc = subprocess.Popen(args, env=env, stdout=self.stderr, stderr=subprocess.STDOUT,
                                     preexec_fn=default_sighup)
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("apiserver did not listen: %s" % self.read_stderr())
            time.sleep(0.02)
        self.listen_seconds = time.time() - self.started

    def read_stderr(self):
        with open(self.stderr.name, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def ssl_context(self, client_cert=True):
        ctx = ssl.create_default_context(cafile=self.pki.ca_crt)
        if client_cert is True:
            ctx.load_cert_chain(self.pki.admin_crt, self.pki.admin_key)
        elif client_cert:
            ctx.load_cert_chain(*client_cert)
        return ctx

    def request(self, method, path, body=None, client_cert=True, token=None, headers=None, conn=None):
        """Returns (status, headers, decoded body: dict for JSON, else str)."""
        own = conn is None
        if own:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl_context(client_cert),
                                               timeout=10)
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            if own:
                conn.close()
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return resp.status, resp, json.loads(raw)
        return resp.status, resp, raw.decode()

    def wait_ready(self, timeout=15):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = self.request("GET", "/readyz", client_cert=False)
                if last[0] == 200:
                    return
            except OSError as err:
                last = err
            time.sleep(0.1)
        raise RuntimeError("apiserver not ready: %r" % (last,))

    def kubeconfig(self, path, user="admin", token=None):
        """Writes a kubeconfig with file references (client cert of `user` or a token)."""
        if token:
            user_entry = {"token": token}
        elif user == "admin":
            user_entry = {"client-certificate": self.pki.admin_crt, "client-key": self.pki.admin_key}
        else:
            user_entry = {"client-certificate": self.pki.node_crt, "client-key": self.pki.node_key}
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url, "certificate-authority": self.pki.ca_crt}}],
            "users": [{"name": "u", "user": user_entry}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "u"}}],
        }
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle)  # JSON is YAML
        return path

    def log_records(self):
        path = os.path.join(self.log_dir, "kube-apiserver.log")
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def status(self):
        with open(os.path.join(self.status_dir, "kube-apiserver.json"), encoding="utf-8") as handle:
            return json.load(handle)

    def signal(self, signum):
        self.proc.send_signal(signum)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


@pytest.fixture(scope="session")
def pki():
    if not OPENSSL:
        pytest.fail("openssl CLI not installed (scripts/host-deps.sh installs it)")
    directory = tempfile.mkdtemp(prefix="kubeha-pki-")
    try:
        yield PKI(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def etcd(pki):
    if not ETCD:
        pytest.fail("etcd not installed (scripts/host-deps.sh installs the Debian etcd-server package)")
    directory = tempfile.mkdtemp(prefix="kubeha-etcd-")
    server = EtcdServer(pki, directory)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def apiserver(pki, etcd):
    directory = tempfile.mkdtemp(prefix="kubeha-apiserver-")
    server = ApiServer(pki, etcd, directory)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def private_etcd(pki):
    """An etcd of the test's own, which it may stop and restart."""
    directory = tempfile.mkdtemp(prefix="kubeha-etcd-")
    server = EtcdServer(pki, directory)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.stop()
        else:
            server.log.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def start_apiserver(pki, etcd):
    started = []
    directories = []

    def start(**kwargs):
        directory = tempfile.mkdtemp(prefix="kubeha-apiserver-")
        directories.append(directory)
        server = ApiServer(pki, kwargs.pop("etcd", etcd), directory, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)


sys.path.insert(0, EMU_DIR)  # lets tests import kubeha_emu modules directly
