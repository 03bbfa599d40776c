#!/usr/bin/env python3
"""An SSH ProxyCommand that adds a fixed one-way delay in each direction: the controller-to-host
link of an operator across a VPN, for `make bench`'s run with added latency.

  ssh -o ProxyCommand="python3 bench/latency_proxy.py --delay-ms 10 %h %p" ...

The kernel of this machine has no netem qdisc (`tc qdisc add ... netem` answers "Specified qdisc
kind is unknown"), so the delay is added here, in user space, on the SSH connection itself: every
chunk read from one side is written to the other side DELAY after it was read, in order, without
holding back the chunks behind it (a delay line, not a rate limit). --delay-ms 10 in each direction
is 20 ms of added round-trip time.
"""

import argparse
import collections
import os
import socket
import sys
import threading
import time


class DelayLine:
    """Chunks written out `delay` seconds after they came in, in order."""

    def __init__(self, delay, write, close):
        self.delay = delay
        self.write = write
        self.close = close
        self.queue = collections.deque()
        self.cond = threading.Condition()
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def put(self, data):
        with self.cond:
            self.queue.append((time.monotonic() + self.delay, data))
            self.cond.notify()

    def finish(self):
        with self.cond:
            self.done = True
            self.cond.notify()

    def _run(self):
        while True:
            with self.cond:
                while not self.queue and not self.done:
                    self.cond.wait()
                if not self.queue:
                    break
                due, data = self.queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self.cond:
                self.queue.popleft()
            try:
                self.write(data)
            except OSError:
                break
        self.close()


def pump(read, line):
    while True:
        try:
            data = read(65536)
        except OSError:
            data = b""
        if not data:
            line.finish()
            return
        line.put(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay added in each direction")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    delay = args.delay_ms / 1000.0
    sock = socket.create_connection((args.host, args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()

    def write_out(data):
        view = memoryview(data)
        while view:
            view = view[os.write(stdout, view):]

    def close_out():
        os.close(stdout)

    def shut_sock():
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    to_host = DelayLine(delay, sock.sendall, shut_sock)
    to_ssh = DelayLine(delay, write_out, close_out)
    upstream = threading.Thread(target=pump, args=(lambda n: os.read(stdin, n), to_host), daemon=True)
    upstream.start()
    pump(sock.recv, to_ssh)
    # the host closed its side: let the last chunks reach ssh, then end
    to_ssh.thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
