"""HTTPS front end of the kube-apiserver emulator: threaded HTTP/1.1 server, TLS with dynamic
certificate reload, authentication, routing to the resource store, health endpoints, graceful
shutdown on SIGTERM/SIGINT (SIGHUP keeps its default action: the process exits)."""

import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..common import Reporter
from . import auth, discovery, errors, flags, patch, selectors, tables
from .errors import ApiError
from .etcd import EtcdClient, EtcdError, EtcdUnavailable
from .resources import BY_GROUP, Store
from .tlsreload import DynamicServingTLS

COMPONENT = "kube-apiserver"
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0
MAX_BODY = 3 * 1024 * 1024
WATCH_POLL = 0.5


class State:
    """Everything the request handlers share."""

    def __init__(self, opts, reporter, tls, tokens, etcd, sa_tokens=None):
        self.opts = opts
        self.reporter = reporter
        self.tls = tls
        self.tokens = tokens
        self.sa_tokens = sa_tokens
        self.etcd = etcd
        self.store = Store(etcd)
        self.url = "https://%s:%s" % (_host_for_url(opts["advertise-address"]), opts["secure-port"])
        self.shutting_down = threading.Event()
        self.etcd_ok = False
        self.etcd_error = "not checked yet"
        self.etcd_server = None
        self.namespaces_ready = False
        self.seen_identities = set()
        self.seen_lock = threading.Lock()

    def log(self, event, detail, server=None, force=True):
        self.reporter.event(event, server or self.url, detail, force=force)

    def note_identity(self, user, client_ip, method, path):
        key = user.key()
        with self.seen_lock:
            if key in self.seen_identities:
                return
            self.seen_identities.add(key)
        self.log("request", "%r from %s: first request %s %s" % (user, client_ip, method, path))

    # --- etcd health, checked once a second in the background, cached for /readyz ----------
    def health_loop(self):
        while True:
            try:
                server, _ = self.etcd.health()
                if not self.namespaces_ready:
                    # like the real bootstrap controller; /readyz waits for it
                    created = self.store.ensure_system_namespaces()
                    self.namespaces_ready = True
                    if created:
                        self.log("bootstrap", "created namespaces %s" % ",".join(created))
                if not self.etcd_ok or server != self.etcd_server:
                    self.log("connect", "etcd reachable", server=server)
                self.etcd_ok, self.etcd_error, self.etcd_server = True, None, server
                self.reporter.update(server=self.url, connected=True, last_ok=time.time())
            except (EtcdUnavailable, EtcdError, ApiError, OSError, ValueError, KeyError) as err:
                message = "etcd check failed: %s" % err
                if self.etcd_ok or message != self.etcd_error:
                    self.log("error", message, server=self.etcd_server or ",".join(self.etcd.servers))
                self.etcd_ok, self.etcd_error = False, message
                self.reporter.update(server=self.url, connected=False, last_error=message)
            time.sleep(1.0)


def _host_for_url(host):
    return "[%s]" % host if host and ":" in host else host


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address, state):
        self.state = state
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.conns = {}
        self.conns_lock = threading.Lock()
        self.draining = False
        super().__init__(address, Handler)

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()[:2]

    def finish_request(self, request, client_address):
        ctx = self.state.tls.context()
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            tls_sock = ctx.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            # handshake failures (a client rejecting our cert, a TCP health probe) are normal
            request.close()
            return
        self.RequestHandlerClass(tls_sock, client_address, self)

    def shutdown_request(self, request):
        try:
            request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        request.close()

    def handle_error(self, request, client_address):
        err = sys.exc_info()[1]
        if isinstance(err, (OSError, ValueError)):
            return
        self.state.log("error", "unexpected error serving %s: %r" % (client_address[0], err))

    def drain(self, timeout=60.0):
        """Close idle keep-alive connections, let busy ones finish their request, wait for all."""
        self.draining = True
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.conns_lock:
                conns = list(self.conns.items())
            if not conns:
                return True
            for handler, busy in conns:
                if not busy:
                    try:
                        handler.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            time.sleep(0.05)
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-emulator"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    # --- connection bookkeeping for the drain -------------------------------------------------
    def setup(self):
        super().setup()
        self.state = self.server.state
        try:
            cert = self.connection.getpeercert()
        except (ValueError, OSError):
            cert = None
        self.cert_user = auth.user_from_peercert(cert)
        with self.server.conns_lock:
            self.server.conns[self] = False

    def finish(self):
        with self.server.conns_lock:
            self.server.conns.pop(self, None)
        try:
            super().finish()
        except OSError:
            pass

    def parse_request(self):
        with self.server.conns_lock:
            self.server.conns[self] = True
        return super().parse_request()

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            with self.server.conns_lock:
                if self in self.server.conns:
                    self.server.conns[self] = False
            if self.server.draining:
                self.close_connection = True

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):  # no access log: the JSON log has one line per identity
        pass

    # --- responses ------------------------------------------------------------------------------
    def send_body(self, code, body, content_type="application/json"):
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode() + b"\n"
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        if content_type.startswith("text/"):
            self.send_header("X-Content-Type-Options", "nosniff")
        if self.server.draining or self.close_connection:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error_status(self, err):
        self.send_body(err.code, err.status())

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ApiError(413, "RequestEntityTooLarge", "the request body is too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge", "the request body is too large")
        return self.rfile.read(length) if length else b""

    def json_body(self):
        raw = self.read_body()
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype not in ("application/json", "*/*", ""):
            raise ApiError(415, "UnsupportedMediaType",
                           'the body of the request was in an unknown format - accepted media types '
                           'include: application/json (got %s)' % ctype)
        try:
            return json.loads(raw or b"null")
        except ValueError as err:
            raise errors.bad_request("the request body is not valid JSON: %s" % err)

    # --- verbs ------------------------------------------------------------------------------------
    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def authenticate(self):
        if self.cert_user:
            return self.cert_user
        header = self.headers.get("Authorization", "")
        if header[:7].lower() == "bearer " and (self.state.tokens or self.state.sa_tokens):
            token = header[7:].strip()
            for authenticator in (self.state.tokens, self.state.sa_tokens):
                user = authenticator.lookup(token) if authenticator else None
                if user:
                    return user
            return None  # a wrong token is 401 even on anonymous paths, as the real one
        if header:
            return None
        return auth.ANONYMOUS

    def dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        self.query = {k: v[-1] for k, v in query.items()}
        try:
            user = self.authenticate()
            if user is None or (user is auth.ANONYMOUS and not auth.anonymous_allowed(path, method)):
                if method in ("POST", "PUT", "PATCH", "DELETE"):
                    self.read_body()
                raise errors.unauthorized()
            self.state.note_identity(user, self.client_address[0], method, path)
            self.route(method, path)
        except ApiError as err:
            self.send_error_status(err)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as err:  # a bug must answer 500, not kill the connection silently
            self.state.log("error", "internal error on %s %s: %r" % (method, path, err))
            try:
                self.send_error_status(errors.internal(repr(err)))
            except OSError:
                self.close_connection = True

    # --- routing ------------------------------------------------------------------------------------
    def route(self, method, path):
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")] if path != "/" else []
        if parts and parts[0] in ("livez", "readyz", "healthz"):
            return self.health(parts[0], parts[1:])
        if method != "GET" and (not parts or parts[0] not in ("api", "apis")):
            raise errors.method_not_allowed()
        if not parts:
            return self.send_body(200, {"paths": sorted(["/api", "/api/v1", "/apis", "/healthz", "/livez",
                                                         "/readyz", "/version"] + [
                "/apis/%s" % g for g in discovery.groups()] + [
                "/apis/%s/%s" % (g, v) for g, vs in discovery.groups().items() for v in vs])})
        if parts == ["version"]:
            return self.send_body(200, discovery.version())
        if parts[0] == "openapi":
            return self.openapi(parts[1:])
        if parts[0] == "api":
            if len(parts) == 1:
                if method != "GET":
                    raise errors.method_not_allowed()
                return self.send_body(200, discovery.api_versions(
                    "%s:%s" % (self.state.opts["advertise-address"], self.state.opts["secure-port"])))
            return self.resource_path(method, "", parts[1], parts[2:])
        if parts[0] == "apis":
            if len(parts) == 1:
                return self.send_body(200, discovery.api_group_list())
            if len(parts) == 2:
                body = discovery.api_group(parts[1])
                if body is None:
                    raise errors.not_found_path()
                return self.send_body(200, body)
            return self.resource_path(method, parts[1], parts[2], parts[3:])
        raise errors.not_found_path()

    def openapi(self, rest):
        # kubectl 1.20 validates manifests against /openapi/v2 (protobuf). An empty document is a
        # valid protobuf openapi_v2.Document with no definitions: kubectl then finds no schema for
        # the kind and skips client-side validation, which is what a server without schemas means.
        if rest == ["v2"]:
            accept = self.headers.get("Accept", "")
            if "protobuf" in accept:
                return self.send_body(200, b"", "application/octet-stream")
            return self.send_body(200, {"swagger": "2.0", "info": {"title": "Kubernetes (kubeha emulator)",
                                                                   "version": discovery.version()["gitVersion"]},
                                        "paths": {}, "definitions": {}})
        raise errors.not_found_path()

    def resource_path(self, method, group, version, rest):
        if not rest:
            if method != "GET":
                raise errors.method_not_allowed()
            body = discovery.resource_list(group, version)
            if body is None:
                raise errors.not_found_path()
            return self.send_body(200, body)
        namespace = None
        if (len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in BY_GROUP
                and BY_GROUP[(group, version, rest[2])].namespaced):
            namespace = rest[1]
            rest = rest[2:]
        res = BY_GROUP.get((group, version, rest[0]))
        if res is None or len(rest) > 3:
            raise errors.not_found_path()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and (sub != "status" or not res.status):
            raise errors.not_found_path()
        if res.namespaced and name is not None and namespace is None:
            raise errors.not_found_path()
        if "dryRun" in self.query and method != "GET":
            raise errors.bad_request("dryRun is not supported by the kube-apiserver emulator")
        store = self.state.store
        if name is None:
            if method == "GET":
                if self.query.get("watch") in ("true", "1"):
                    return self.watch(res, namespace)
                return self.list(res, namespace)
            if method == "POST":
                if res.namespaced and namespace is None:
                    raise errors.method_not_allowed()
                obj = store.create(res, namespace, self.json_body())
                return self.send_body(201, obj)
            if method == "DELETE":
                self.read_body()
                label_match = selectors.parse_labels(self.query.get("labelSelector"))
                field_match = selectors.parse_fields(self.query.get("fieldSelector"), res.plural)
                items, rev = store.list(res, namespace, label_match, field_match)
                deleted = []
                for obj in items:
                    meta = obj["metadata"]
                    try:
                        deleted.append(store.delete(res, meta.get("namespace"), meta["name"]))
                    except ApiError as err:
                        if err.code != 404:
                            raise
                return self.send_body(200, self.list_body(res, deleted, rev))
            raise errors.method_not_allowed()
        if method == "GET":
            obj = store.get(res, namespace, name)
            if self.wants_table():
                return self.send_body(200, tables.table(res, [obj], include=self.query.get("includeObject",
                                                                                           "Metadata")))
            return self.send_body(200, obj)
        if method == "PUT":
            obj, created = store.update(res, namespace, name, self.json_body(), sub)
            return self.send_body(201 if created else 200, obj)
        if method == "PATCH":
            body = self.read_body()
            ctype = self.headers.get("Content-Type")
            obj = store.patch(res, namespace, name, lambda old: patch.apply(ctype, old, body), sub)
            return self.send_body(200, obj)
        if method == "DELETE":
            if sub:
                raise errors.method_not_allowed()
            raw = self.read_body()
            options = {}
            if raw.strip():
                try:
                    options = json.loads(raw) or {}
                except ValueError as err:
                    raise errors.bad_request("invalid DeleteOptions: %s" % err)
            pre = options.get("preconditions") or {}
            old = store.delete(res, namespace, name, pre.get("resourceVersion"), pre.get("uid"))
            if res.plural == "pods":
                return self.send_body(200, old)
            return self.send_body(200, errors.success_status(res.plural, name, old["metadata"].get("uid"),
                                                             res.group))
        raise errors.method_not_allowed()

    def wants_table(self):
        accept = self.headers.get("Accept", "")
        for part in accept.split(","):
            params = [p.strip() for p in part.split(";")]
            if "as=Table" in params and ("g=meta.k8s.io" in params or len(params) <= 2):
                return True
        return False

    def list_body(self, res, items, rev):
        for obj in items:
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
        return {"kind": res.kind + "List", "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(rev)}, "items": items}

    def list(self, res, namespace):
        label_match = selectors.parse_labels(self.query.get("labelSelector"))
        field_match = selectors.parse_fields(self.query.get("fieldSelector"), res.plural)
        items, rev = self.state.store.list(res, namespace, label_match, field_match)
        if self.wants_table():
            return self.send_body(200, tables.table(res, items, rev, self.query.get("includeObject", "Metadata")))
        return self.send_body(200, self.list_body(res, items, rev))

    def watch(self, res, namespace):
        """A polling watch: every WATCH_POLL seconds the collection is listed from etcd and the
        differences (by mod_revision) are streamed as ADDED/MODIFIED/DELETED events, chunked.
        With resourceVersion N > 0 the baseline is the collection at etcd revision N (history kept
        until compaction); without, every existing object is sent as ADDED first."""
        label_match = selectors.parse_labels(self.query.get("labelSelector"))
        field_match = selectors.parse_fields(self.query.get("fieldSelector"), res.plural)
        store = self.state.store
        rv = self.query.get("resourceVersion") or ""
        try:
            timeout = float(self.query.get("timeoutSeconds") or 1800)
        except ValueError:
            raise errors.bad_request("invalid timeoutSeconds")
        def snapshot(revision=None):
            items, rev = store.list(res, namespace, label_match, field_match, revision)
            return {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in items}, rev

        if rv not in ("", "0"):
            try:
                known, _ = snapshot(int(rv))
            except ValueError:
                raise errors.bad_request("invalid resourceVersion %r" % rv)
            except ApiError:
                raise ApiError(410, "Expired", "too old resource version: %s" % rv)
        else:
            known = {}
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        as_table = self.wants_table()
        include = self.query.get("includeObject", "Metadata")

        def emit(kind, obj):
            if as_table:  # kubectl get -w asks for Tables: one row per event, as the real server
                obj = tables.table(res, [obj], include=include)
            data = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        deadline = time.time() + timeout
        try:
            while time.time() < deadline and not self.server.draining:
                try:
                    current, _ = snapshot()
                except ApiError:
                    time.sleep(WATCH_POLL)
                    continue
                for key, obj in current.items():
                    old = known.get(key)
                    if old is None:
                        emit("ADDED", obj)
                    elif old["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                        emit("MODIFIED", obj)
                for key, obj in known.items():
                    if key not in current:
                        emit("DELETED", obj)
                known = current
                time.sleep(WATCH_POLL)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True

    # --- health ----------------------------------------------------------------------------------------
    def health(self, endpoint, rest):
        state = self.state
        checks = [("ping", True, None), ("log", True, None)]
        if endpoint in ("readyz", "healthz"):
            checks.append(("etcd", state.etcd_ok, state.etcd_error))
        if endpoint == "readyz":
            checks.append(("shutdown", not state.shutting_down.is_set(), "process is shutting down"))
        if rest:
            found = [c for c in checks if c[0] == rest[0]]
            if not found or len(rest) > 1:
                raise errors.not_found_path()
            ok = found[0][1]
            return self.send_body(200 if ok else 500, "ok" if ok else "internal server error: %s\n" % found[0][2],
                                  "text/plain; charset=utf-8")
        ok = all(c[1] for c in checks)
        verbose = "verbose" in self.query
        if ok and not verbose:
            return self.send_body(200, "ok", "text/plain; charset=utf-8")
        lines = []
        for name, passed, _ in checks:
            lines.append("[+]%s ok" % name if passed else "[-]%s failed: reason withheld" % name)
        lines.append("%s check %s" % (endpoint, "passed" if ok else "failed"))
        return self.send_body(200 if ok else 500, "\n".join(lines) + "\n", "text/plain; charset=utf-8")


def _read_required(opts, name):
    if not opts.get(name):
        raise flags.FlagError("--%s is required" % name)
    return opts[name]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, ignored = flags.parse(argv)
        for name in ("tls-cert-file", "tls-private-key-file", "etcd-servers"):
            _read_required(opts, name)
        delay = flags.duration(opts["shutdown-delay-duration"])
        port = int(opts["secure-port"])
    except (flags.FlagError, ValueError) as err:
        print("kube-apiserver: %s" % err, file=sys.stderr)
        return 2
    if not opts["advertise-address"]:
        opts["advertise-address"] = opts["bind-address"] if opts["bind-address"] not in ("0.0.0.0", "::") \
            else "127.0.0.1"
    reporter = Reporter(COMPONENT)
    url = "https://%s:%d" % (_host_for_url(opts["advertise-address"]), port)

    def tls_log(event, detail):
        reporter.event(event, url, detail, force=True)

    try:
        tls = DynamicServingTLS(opts["tls-cert-file"], opts["tls-private-key-file"], opts["client-ca-file"], tls_log)
        tokens = auth.TokenFile(opts["token-auth-file"]) if opts["token-auth-file"] else None
        sa_tokens = auth.ServiceAccountTokens([opts["service-account-key-file"]],
                                              [opts["service-account-issuer"]]) \
            if opts["service-account-key-file"] else None
        etcd = EtcdClient(opts["etcd-servers"].split(","), opts["etcd-cafile"], opts["etcd-certfile"],
                          opts["etcd-keyfile"])
    except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
        reporter.event("error", url, "startup failed: %s" % err, force=True)
        print("kube-apiserver: startup failed: %s" % err, file=sys.stderr)
        return 1
    state = State(opts, reporter, tls, tokens, etcd, sa_tokens)
    try:
        httpd = TLSServer((opts["bind-address"], port), state)
    except OSError as err:
        reporter.event("error", url, "cannot listen on %s:%d: %s" % (opts["bind-address"], port, err), force=True)
        print("kube-apiserver: cannot listen: %s" % err, file=sys.stderr)
        return 1
    if ignored:
        reporter.event("flags", url, "accepted and ignored flags: %s" % " ".join("--" + k for k in sorted(ignored)),
                       force=True)
    reporter.update(server=url, connected=False)
    threading.Thread(target=state.health_loop, name="etcd-health", daemon=True).start()

    def on_signal(signum, _frame):
        if state.shutting_down.is_set():
            reporter.event("stop", url, "second signal %d: exiting at once" % signum, force=True)
            os._exit(1)
        state.shutting_down.set()
        reporter.event("stop", url, "signal %d: /readyz fails now, serving for %.1fs more" % (signum, delay),
                       force=True)

        def later():
            time.sleep(delay)
            httpd.shutdown()

        threading.Thread(target=later, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reporter.event("start", url, "listening on %s:%d, etcd %s" % (opts["bind-address"], port, opts["etcd-servers"]),
                   force=True)
    print("kube-apiserver emulator serving on %s:%d" % (opts["bind-address"], port), file=sys.stderr, flush=True)
    httpd.serve_forever(poll_interval=0.1)
    httpd.socket.close()  # listener closed: new connections are refused
    drained = httpd.drain()
    reporter.event("stop", url, "listener closed, in-flight requests %s; exiting"
                   % ("finished" if drained else "still running after 60s"), force=True)
    reporter.update(server=url, connected=False)
    return 0
