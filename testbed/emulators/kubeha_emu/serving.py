"""The small HTTP(S) servers the components expose: kubelet and kube-proxy plain-HTTP /healthz,
kube-controller-manager and kube-scheduler HTTPS /healthz with a self-signed certificate generated
at start (as the real ones do without --tls-cert-file)."""

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time



class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server naming)
        path = self.path.split("?")[0]
        check = self.server.checks.get(path)
        if check is None:
            code, text = 404, "404 page not found"
        else:
            ok, reason = check()
            code, text = (200, "ok") if ok else (self.server.fail_code, reason)
        body = (text + ("" if text.endswith("\n") or code == 200 else "\n")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, checks, fail_code):
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.checks = checks
        self.fail_code = fail_code
        super().__init__(address, _Handler)


def self_signed_context():
    """A server SSLContext with a fresh self-signed certificate: CN localhost@<unix-ts>, SANs
    DNS:localhost and IP:127.0.0.1. The key exists on disk only in a 0700 temp dir, for the moment
    it takes to load it."""
    directory = tempfile.mkdtemp(prefix="selfsigned-")
    os.chmod(directory, 0o700)
    try:
        key = os.path.join(directory, "tls.key")
        crt = os.path.join(directory, "tls.crt")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "365",
             "-keyout", key, "-out", crt, "-subj", "/CN=localhost@%d" % int(time.time()),
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(crt, key)
        return context
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def serve(host, port, checks, fail_code=500, tls_context=None):
    """Serve `checks` ({path: callable -> (ok, reason)}) in a daemon thread; returns the server."""
    server = _Server((host, int(port)), checks, fail_code)
    if tls_context is not None:
        # The handshake happens in the handler thread, so a stalled client cannot block accept().
        server.socket = tls_context.wrap_socket(server.socket, server_side=True,
                                                do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name="serve-%s" % port, daemon=True)
    thread.start()
    return server


def install_sigterm(stop_event):
    """SIGTERM/SIGINT set `stop_event` so the main loop exits gracefully."""
    import signal

    def handler(signum, frame):
        stop_event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

