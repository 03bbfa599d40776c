"""Kubeconfig loading and a small verified-TLS REST client, shared by the kubelet,
kube-controller-manager, kube-scheduler and kube-proxy emulators.

Like the real components, a kubeconfig is read once, at start: a changed kubeconfig takes effect
only after a restart. TLS is always verified against the kubeconfig's CA and the server's host
name or IP. Key material is never logged.
"""

import base64
import http.client
import json
import os
import shutil
import ssl
import tempfile
import threading
import time
import urllib.parse

import yaml

from . import common

# Embedded client certificates and keys must be on disk for Python's ssl module while the context
# is built; they live in a 0700 directory under the status dir for that moment only.
SECRET_DIR = os.environ.get("KUBEHA_EMU_SECRET_DIR", os.path.join(common.STATUS_DIR, "secrets"))

DEFAULT_TIMEOUT = 3.0


class KubeconfigError(Exception):
    pass


class ClientError(OSError):
    """The server could not be reached or did not complete the exchange (no HTTP status)."""


def _resolve(base_dir, path):
    if path and not os.path.isabs(path):
        return os.path.join(base_dir, path)
    return path


def _named(items, name, what):
    for item in items or []:
        if item.get("name") == name:
            return item.get(what) or {}
    raise KubeconfigError("%s %r not found in kubeconfig" % (what, name))


class Kubeconfig:
    """The parts of a kubeconfig a component uses: server, CA, client cert/key, token."""

    def __init__(self, path):
        self.path = path
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KubeconfigError("cannot read kubeconfig %s: %s" % (path, exc)) from exc
        base_dir = os.path.dirname(os.path.abspath(path))
        context_name = data.get("current-context")
        contexts = data.get("contexts") or []
        if not context_name:
            if len(contexts) != 1:
                raise KubeconfigError("kubeconfig %s has no current-context" % path)
            context_name = contexts[0].get("name")
        context = _named(contexts, context_name, "context")
        cluster = _named(data.get("clusters"), context.get("cluster"), "cluster")
        user = {}
        if context.get("user"):
            user = _named(data.get("users"), context.get("user"), "user")
        self.server = (cluster.get("server") or "").rstrip("/")
        if not self.server.startswith("https://"):
            raise KubeconfigError("kubeconfig %s: server %r is not https" % (path, self.server))
        if cluster.get("insecure-skip-tls-verify"):
            raise KubeconfigError("kubeconfig %s: insecure-skip-tls-verify is not supported" % path)
        self.ca_file = _resolve(base_dir, cluster.get("certificate-authority"))
        self.ca_data = cluster.get("certificate-authority-data")
        self.cert_file = _resolve(base_dir, user.get("client-certificate"))
        self.key_file = _resolve(base_dir, user.get("client-key"))
        self.cert_data = user.get("client-certificate-data")
        self.key_data = user.get("client-key-data")
        self.token = user.get("token")
        self.token_file = _resolve(base_dir, user.get("tokenFile"))
        if not (self.ca_file or self.ca_data):
            raise KubeconfigError("kubeconfig %s: no certificate-authority for %s" % (path, self.server))

    def ssl_context(self):
        """A client SSLContext that verifies the server against the kubeconfig CA and host name."""
        if self.ca_data:
            cadata = base64.b64decode(self.ca_data).decode("ascii")
            context = ssl.create_default_context(cadata=cadata)
        else:
            context = ssl.create_default_context(cafile=self.ca_file)
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        if self.cert_data or self.key_data:
            self._load_embedded_chain(context)
        elif self.cert_file:
            # kubelet.conf points both at kubelet-client-current.pem (cert + key in one file).
            context.load_cert_chain(self.cert_file, self.key_file or self.cert_file)
        return context

    def _load_embedded_chain(self, context):
        os.makedirs(SECRET_DIR, mode=0o700, exist_ok=True)
        os.chmod(SECRET_DIR, 0o700)
        directory = tempfile.mkdtemp(prefix="kubeconfig-", dir=SECRET_DIR)
        try:
            files = []
            for name, embedded, path in (("cert.pem", self.cert_data, self.cert_file),
                                         ("key.pem", self.key_data, self.key_file)):
                if embedded:
                    target = os.path.join(directory, name)
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(base64.b64decode(embedded))
                    files.append(target)
                else:
                    files.append(path)
            if not all(files):
                raise KubeconfigError("kubeconfig %s: client certificate without key" % self.path)
            context.load_cert_chain(files[0], files[1])
        finally:
            shutil.rmtree(directory, ignore_errors=True)


class Response:
    def __init__(self, status, reason, body):
        self.status = status
        self.reason = reason
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def ok(self):
        return 200 <= self.status < 300

    def __repr__(self):
        return "<Response %d %s>" % (self.status, self.reason)


class Client:
    """REST client for one kubeconfig. A new connection per request; 3 s timeout by default.

    Every exchange is reported to `reporter` (if given): answered requests as ok, unreachable
    servers, TLS failures, 401/403 and 5xx answers as failures. `last_ok` is the time of the last
    good answer (used by the /healthz endpoints)."""

    def __init__(self, kubeconfig, reporter=None, timeout=DEFAULT_TIMEOUT, user_agent="kubeha-emu"):
        if isinstance(kubeconfig, str):
            kubeconfig = Kubeconfig(kubeconfig)
        self.config = kubeconfig
        self.server = kubeconfig.server
        parsed = urllib.parse.urlsplit(self.server)
        self.host = parsed.hostname
        self.port = parsed.port or 443
        self.prefix = parsed.path.rstrip("/")
        self.context = kubeconfig.ssl_context()
        self.reporter = reporter
        self.timeout = timeout
        self.user_agent = user_agent
        self.last_ok = None
        self.last_error = None
        self._token = None
        self._token_read = 0.0
        self._lock = threading.Lock()

    def _bearer(self):
        if self.config.token:
            return self.config.token
        if self.config.token_file:
            # client-go re-reads a tokenFile about once a minute.
            now = time.monotonic()
            with self._lock:
                if self._token is None or now - self._token_read > 60:
                    with open(self.config.token_file, encoding="utf-8") as handle:
                        self._token = handle.read().strip()
                    self._token_read = now
                return self._token
        return None

    def request(self, method, path, body=None, content_type="application/json", timeout=None):
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
            headers["Content-Type"] = content_type
        try:
            token = self._bearer()
        except OSError as exc:
            self._failed("cannot read token file: %s" % exc)
            raise ClientError("cannot read token file: %s" % exc) from exc
        if token:
            headers["Authorization"] = "Bearer " + token
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                           timeout=timeout or self.timeout)
        try:
            conn.request(method, self.prefix + path, body=data, headers=headers)
            answer = conn.getresponse()
            response = Response(answer.status, answer.reason, answer.read())
        except (OSError, http.client.HTTPException) as exc:
            reason = "%s %s: %s" % (method, path.split("?")[0], exc.__class__.__name__ + ": " + str(exc))
            self._failed(reason)
            raise ClientError(reason) from exc
        finally:
            conn.close()
        if response.status in (401, 403) or response.status >= 500:
            self._failed("%s %s: HTTP %d %s" % (method, path.split("?")[0], response.status,
                                                response.reason))
        else:
            self.last_ok = time.time()
            if self.reporter:
                self.reporter.ok(self.server)
        return response

    def _failed(self, reason):
        self.last_error = reason
        if self.reporter:
            self.reporter.fail(self.server, reason)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body, content_type="application/merge-patch+json", **kw):
        return self.request("PATCH", path, body, content_type=content_type, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def healthy(self, window=10.0):
        """(ok, reason): ok when the server answered within the last `window` seconds."""
        if self.last_ok is not None and time.time() - self.last_ok <= window:
            return True, "ok"
        return False, "no answer from %s in the last %ds: %s" % (
            self.server, int(window), self.last_error or "no request yet")
