#!/usr/bin/env python3
"""Availability probe: authenticated GETs through the VIP at a steady rate, every failure recorded.

Runs on the controller beside `ansible-playbook`. Each request opens a new TCP+TLS connection
(as kubectl does per invocation), verifies the server certificate against the cluster CA for the
endpoint's host, authenticates with the client certificate of a kubeconfig and GETs a ConfigMap.
A request counts as OK only on HTTP 200 with a JSON body of kind ConfigMap.

Bounded: stops after --max-seconds or --max-requests, or at SIGTERM/SIGINT, whichever is first,
then writes a JSON report and prints `availability: OK/TOTAL requests`.
"""

import argparse
import base64
import http.client
import json
import os
import signal
import ssl
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import yaml


def load_kubeconfig(path, workdir):
    """Return (server, ssl.SSLContext) for the current context of a kubeconfig.

    Embedded key material is written to 0600 files in a 0700 temporary directory, because
    Python's ssl module loads certificates from files; nothing is ever printed."""
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    context_name = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
    if context_name not in contexts:
        raise SystemExit(f"{path}: current-context {context_name!r} not found")
    context = contexts[context_name]
    cluster = clusters[context["cluster"]]
    user = users.get(context.get("user"), {})

    def material(data_key, path_key, name):
        if user.get(path_key) or cluster.get(path_key):
            return user.get(path_key) or cluster.get(path_key)
        blob = user.get(data_key) or cluster.get(data_key)
        if not blob:
            return None
        target = os.path.join(workdir, name)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(base64.b64decode(blob))
        return target

    ca = material("certificate-authority-data", "certificate-authority", "ca.crt")
    cert = material("client-certificate-data", "client-certificate", "client.crt")
    key = material("client-key-data", "client-key", "client.key")
    tls = ssl.create_default_context(cafile=ca)
    tls.check_hostname = True
    tls.verify_mode = ssl.CERT_REQUIRED
    tls.load_cert_chain(cert, key)
    return cluster["server"], tls


class NamedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPSConnection to host:port that verifies the certificate for `server_name` (SNI and
    host-name check), like a kubeconfig's `tls-server-name`. Verification stays on."""

    def __init__(self, host, port, server_name, **kwargs):
        super().__init__(host, port, **kwargs)
        self._server_name = server_name

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name or self.host)


def one_request(host, port, tls, path, timeout, server_name=None):
    connection = NamedHTTPSConnection(host, port, server_name, context=tls, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return f"HTTP {response.status}: {body[:120]!r}"
        if json.loads(body).get("kind") != "ConfigMap":
            return "unexpected body"
        return None
    except (OSError, http.client.HTTPException, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--endpoint", required=True, help="host:port of the VIP")
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument("--max-requests", type=int, default=40000)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=16,
                        help="requests in flight at most (each on its own connection); keeps the rate under load")
    parser.add_argument("--path", default="/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    parser.add_argument("--out", required=True, help="JSON report path")
    parser.add_argument("--tls-server-name", default=None,
                        help="name the server certificate must be valid for (default: the endpoint host); "
                             "'kubernetes' is in every kubeadm apiserver certificate, before and after the conversion")
    args = parser.parse_args()

    host, _, port = args.endpoint.rpartition(":")
    host = host.strip("[]")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    with tempfile.TemporaryDirectory(prefix="kubeha-probe-") as workdir:
        os.chmod(workdir, 0o700)
        _, tls = load_kubeconfig(args.kubeconfig, workdir)
        # The schedule is kept by this thread; each request runs on a worker of a pool, so a slow
        # TLS handshake (a loaded machine, a backend being drained) does not lower the rate: the
        # next request still starts on time on another worker, on its own new connection.
        lock = threading.Lock()
        results = {"ok": 0, "done": 0, "failures": [], "latencies": [], "late": 0}

        def worker(sent, due):
            t0 = time.monotonic()
            error = one_request(host, int(port), tls, args.path, args.timeout, args.tls_server_name)
            latency = (time.monotonic() - t0) * 1000.0
            with lock:
                results["done"] += 1
                results["latencies"].append(latency)
                if t0 - due > 0.5:
                    results["late"] += 1
                if error is None:
                    results["ok"] += 1
                else:
                    results["failures"].append({"t": round(sent, 3), "since_start": round(sent - started, 3),
                                                "cause": error})

        pool = ThreadPoolExecutor(max_workers=args.workers)
        started = time.time()
        interval = 1.0 / args.rate
        total = 0
        next_at = time.monotonic()
        while not stop.is_set():
            if total >= args.max_requests or time.time() - started >= args.max_seconds:
                break
            pool.submit(worker, time.time(), time.monotonic())
            total += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
        elapsed = time.time() - started
        # every request sent is awaited (each is bounded by --timeout) and counted
        pool.shutdown(wait=True)
        ok = results["ok"]
        failures = sorted(results["failures"], key=lambda f: f["t"])
        latencies = results["latencies"]
        total = results["done"]

    latencies.sort()
    report = {
        "endpoint": args.endpoint,
        "tls_server_name": args.tls_server_name or host,
        "started": started,
        "seconds": round(elapsed, 3),
        "rate_target": args.rate,
        "rate_achieved": round(total / elapsed, 2) if elapsed else 0.0,
        "total": total,
        "ok": ok,
        "failed": len(failures),
        "late": results["late"],
        "failures": failures,
        "latency_ms": {
            "p50": round(latencies[len(latencies) // 2], 1) if latencies else None,
            "p99": round(latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
            "max": round(latencies[-1], 1) if latencies else None,
        },
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    print(f"availability: {ok}/{total} requests")
    return 0 if ok == total and total > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
