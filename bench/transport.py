#!/usr/bin/env python3
"""Remote commands and uploads per host in an `ansible-playbook -vvv` log (counted, not estimated).

  bench/transport.py LOG [LOG...]

Counts, per host, the lines Ansible's connection plugins print at -vvv for each remote command
(`<host> EXEC ...`, `SSH: EXEC ...` is the same command and is not counted twice) and each upload
(`<host> PUT LOCAL TO REMOTE`), and the bytes of the uploaded files that still exist on the
controller (module binaries; Ansible's temporary argument files are gone after the run and are
counted as uploads only).
"""
import collections
import os
import re
import sys

EXEC = re.compile(r"^<([^>]+)> (?:SSH: EXEC ssh |EXEC )")
PUT = re.compile(r"^<([^>]+)> PUT (\S+) TO ")


def count(path):
    hosts = collections.defaultdict(lambda: {"exec": 0, "put": 0, "put_bytes": 0})
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            m = EXEC.match(line)
            if m:
                hosts[m.group(1)]["exec"] += 1
                continue
            m = PUT.match(line)
            if m:
                h = hosts[m.group(1)]
                h["put"] += 1
                if os.path.isfile(m.group(2)):
                    h["put_bytes"] += os.path.getsize(m.group(2))
    return hosts


def main(argv):
    for path in argv:
        hosts = count(path)
        print(path)
        print("  %-18s %8s %6s %12s" % ("host", "commands", "puts", "bytes put"))
        total = {"exec": 0, "put": 0, "put_bytes": 0}
        for host in sorted(hosts):
            h = hosts[host]
            print("  %-18s %8d %6d %12d" % (host, h["exec"], h["put"], h["put_bytes"]))
            for k in total:
                total[k] += h[k]
        print("  %-18s %8d %6d %12d" % ("total", total["exec"], total["put"], total["put_bytes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
