"""kube-apiserver emulator: graceful shutdown on SIGTERM, SIGHUP, serving certificate reload."""

import http.client
import os
import shutil
import signal
import socket
import ssl
import time

import pytest


def served_serial(server):
    """Serial number of the certificate a NEW verified TLS connection gets."""
    ctx = ssl.create_default_context(cafile=server.pki.ca_crt)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return int(tls.getpeercert()["serialNumber"], 16)


def file_serial(pki, path):
    import subprocess
    out = subprocess.run([pki_openssl(), "x509", "-noout", "-serial", "-in", path], capture_output=True, text=True,
                         check=True).stdout
    return int(out.strip().split("=", 1)[1], 16)


def pki_openssl():
    return shutil.which("openssl")


def own_cert_dir(pki, tmp_path):
    """A copy of the serving pair in a directory the test may rewrite."""
    directory = tmp_path / "ssl"
    directory.mkdir()
    crt, key = str(directory / "apiserver.crt"), str(directory / "apiserver.key")
    shutil.copy(pki.apiserver_crt, crt)
    shutil.copy(pki.apiserver_key, key)
    return crt, key


def new_pair(pki, tmp_path, name, serial):
    staging = tmp_path / name
    staging.mkdir()
    return pki.make_cert("apiserver", "kube-apiserver", server=True, serial=serial,
                         sans=["IP:127.0.0.1", "DNS:localhost"], out_dir=str(staging))


def test_sigterm_readyz_fails_first_then_listener_closes_then_exit_0(start_apiserver):
    server = start_apiserver(delay="2s")
    server.wait_ready()
    keep = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=10)
    assert server.request("GET", "/api/v1/namespaces/default", conn=keep)[0] == 200
    server.signal(signal.SIGTERM)
    t0 = time.time()
    time.sleep(0.2)
    status, _, body = server.request("GET", "/readyz", client_cert=False)
    assert status == 500 and "shutdown" in body, body
    # during --shutdown-delay-duration everything else is still served, on new and old connections
    assert server.request("GET", "/livez", client_cert=False)[0] == 200
    assert server.request("GET", "/api/v1/namespaces/kube-system")[0] == 200
    assert server.request("GET", "/api/v1/namespaces/default", conn=keep)[0] == 200
    status, _, body = server.request("GET", "/readyz?verbose", client_cert=False)
    assert "[-]shutdown failed" in body and "[+]etcd ok" in body
    assert time.time() - t0 < 2.0, "the checks above must run inside the delay"
    assert server.proc.poll() is None
    rc = server.proc.wait(10)
    elapsed = time.time() - t0
    assert rc == 0
    assert elapsed >= 2.0, "exited after %.2fs, before the 2s shutdown delay" % elapsed
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    stops = [r for r in server.log_records() if r["event"] == "stop"]
    assert len(stops) == 2 and "readyz fails" in stops[0]["detail"] and "listener closed" in stops[1]["detail"]
    keep.close()


def test_sigint_behaves_like_sigterm(start_apiserver):
    server = start_apiserver(delay="1s")
    server.wait_ready()
    server.signal(signal.SIGINT)
    time.sleep(0.2)
    assert server.request("GET", "/readyz", client_cert=False)[0] == 500
    assert server.proc.wait(10) == 0


def test_sighup_exits_like_the_real_one(start_apiserver):
    server = start_apiserver()
    server.wait_ready()
    server.signal(signal.SIGHUP)
    assert server.proc.wait(5) == -signal.SIGHUP


def test_replaced_cert_is_served_to_new_connections(start_apiserver, pki, tmp_path):
    crt, key = own_cert_dir(pki, tmp_path)
    server = start_apiserver(cert=crt, key=key)
    server.wait_ready()
    old = file_serial(pki, crt)
    assert served_serial(server) == old
    keep = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=10)
    assert server.request("GET", "/api/v1/namespaces/default", conn=keep)[0] == 200
    new_crt, new_key = new_pair(pki, tmp_path, "next", serial=0x1234567)
    # atomic swap of both files, key first (for an instant the pair on disk is mismatched)
    os.replace(new_key, key)
    os.replace(new_crt, crt)
    assert served_serial(server) == 0x1234567
    assert server.request("GET", "/api/v1/namespaces/default", conn=keep)[0] == 200  # old connection lives on
    assert server.request("GET", "/api/v1/namespaces/default")[0] == 200
    reloads = [r for r in server.log_records() if r["event"] == "cert-reload"]
    assert len(reloads) == 1 and crt in reloads[0]["detail"]
    keep.close()


def test_mismatched_pair_keeps_old_cert_until_key_matches(start_apiserver, pki, tmp_path):
    crt, key = own_cert_dir(pki, tmp_path)
    server = start_apiserver(cert=crt, key=key)
    server.wait_ready()
    old = file_serial(pki, crt)
    new_crt, new_key = new_pair(pki, tmp_path, "next", serial=0x7654321)
    os.replace(new_crt, crt)  # new cert, old key: mismatched
    for _ in range(3):
        assert served_serial(server) == old
        assert server.request("GET", "/api/v1/namespaces/default")[0] == 200
    errors = [r for r in server.log_records() if r["event"] == "error" and "keeping the previous pair" in r["detail"]]
    assert len(errors) == 1, errors  # logged once per state of the files, not per connection
    os.replace(new_key, key)
    assert served_serial(server) == 0x7654321
    # and a garbage cert file is refused the same way
    with open(crt, "w", encoding="utf-8") as handle:
        handle.write("not a certificate\n")
    assert served_serial(server) == 0x7654321
    assert server.request("GET", "/readyz", client_cert=False)[0] == 200


def test_in_flight_request_finishes_after_listener_closed(start_apiserver):
    server = start_apiserver(delay="1s")
    server.wait_ready()
    ctx = server.ssl_context()
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    body = b'{"metadata": {"name": "in-flight"}, "data": {"a": "b"}}'
    head = ("POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % len(body)).encode()
    tls.sendall(head + body[:10])  # the request is in flight: headers read, body incomplete
    time.sleep(0.3)
    server.signal(signal.SIGTERM)
    time.sleep(1.6)  # past the delay: the listener is closed now
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    assert server.proc.poll() is None, "exited with a request in flight"
    tls.sendall(body[10:])
    resp = http.client.HTTPResponse(tls)
    resp.begin()
    assert resp.status == 201 and resp.getheader("Connection") == "close"
    assert b'"in-flight"' in resp.read()
    tls.close()
    assert server.proc.wait(10) == 0


def test_pidof_finds_the_script(start_apiserver):
    pidof = shutil.which("pidof")
    if not pidof:
        pytest.skip("pidof not installed")
    server = start_apiserver()
    # Debian's pidof (sysvinit-utils) needs -x for scripts; procps' pidof matches comm directly
    out = subprocess_out([pidof, "-x", "kube-apiserver"])
    assert str(server.proc.pid) in out.split()


def subprocess_out(args):
    import subprocess
    return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout
