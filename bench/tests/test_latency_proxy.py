"""bench/latency_proxy.py, the SSH ProxyCommand of `make bench`'s run with added latency: every
byte arrives, in order, and never earlier than the delay (a lower bound only: the machine being
slow can add time, never remove it)."""

import os
import socket
import subprocess
import sys
import threading
import time

PROXY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "latency_proxy.py")


def echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
        conn.close()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


def read_exactly(stream, size):
    got = b""
    while len(got) < size:
        chunk = stream.read(size - len(got))
        assert chunk, "the proxy closed before %d bytes" % size
        got += chunk
    return got


def test_round_trip_is_delayed_and_bytes_arrive_in_order():
    port = echo_server()
    proc = subprocess.Popen([sys.executable, PROXY, "--delay-ms", "25", "127.0.0.1", str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    try:
        for i in range(3):
            message = (b"%d-" % i) * 50
            start = time.monotonic()
            proc.stdin.write(message)
            assert read_exactly(proc.stdout, len(message)) == message
            # 25 ms each way: at least 50 ms for the round trip
            assert time.monotonic() - start >= 0.050
        payload = os.urandom(3 * 1024 * 1024)
        writer = threading.Thread(target=proc.stdin.write, args=(payload,))
        writer.start()
        assert read_exactly(proc.stdout, len(payload)) == payload
        writer.join()
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
