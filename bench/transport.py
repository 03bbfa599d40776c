#!/usr/bin/env python3
"""What a run sent to each host, counted, not estimated.

  bench/transport.py LOG [LOG...]            from `ansible-playbook -vvv` logs
  bench/transport.py --bytes FILE.jsonl      from bench_timer's byte log (BENCH_BYTES_OUT)
      [--json OUT] [--inventory INV]         also write the per-host summary as JSON; name hosts as INV does

From a -vvv log: per host, the lines Ansible's connection plugins print for each remote command
(`<host> EXEC ...`, `SSH: EXEC ...` is the same command and is not counted twice) and each upload
(`<host> PUT LOCAL TO REMOTE`), and the bytes of the uploaded files that still exist on the
controller (module binaries; Ansible's temporary argument files are gone after the run and are
counted as uploads only).

From a byte log (the callback wraps the connection's exec_command and put_file): per host, remote
commands, uploads, every byte sent (command lines, standard input, uploaded files), and the kubeha
module binaries uploaded (distinct names and their sizes): `bytes / binaries` is the figure the
goal "bytes sent per conversion at most 1.2 times the binaries' size per host" judges.
"""
import argparse
import collections
import json
import os
import re
import sys

EXEC = re.compile(r"^<([^>]+)> (?:SSH: EXEC ssh |EXEC )")
PUT = re.compile(r"^<([^>]+)> PUT (\S+) TO ")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTION = os.path.join(REPO, "ansible", "ansible_collections", "kubeha", "control_plane", "plugins", "modules")


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


def module_binaries(modules_dir=COLLECTION):
    """{module name: size} of the x86_64 binaries in the collection."""
    return {name: os.path.getsize(os.path.join(modules_dir, name)) for name in sorted(os.listdir(modules_dir))
            if not name.endswith((".yml", ".py")) and os.path.isfile(os.path.join(modules_dir, name))}


def inventory_names(path):
    """{address: inventory name} of a generated benchmark inventory (bench/inventory.py)."""
    import yaml
    with open(path, encoding="utf-8") as handle:
        hosts = yaml.safe_load(handle)["all"]["hosts"]
    return {vars_["ansible_host"]: name for name, vars_ in hosts.items() if vars_.get("ansible_host")}


def summarise(entries, binaries, names=None):
    """Per host (its inventory name when names maps its address) and in total: commands, uploads,
    bytes sent, binaries uploaded and their size."""
    names = names or {}
    hosts = {}
    for e in entries:
        h = hosts.setdefault(names.get(e["host"], e["host"]), {"commands": 0, "uploads": 0, "bytes": 0, "upload_bytes": 0,
                                         "binaries": set()})
        h["bytes"] += e["bytes"]
        if e["op"] == "exec":
            h["commands"] += 1
        else:
            h["uploads"] += 1
            h["upload_bytes"] += e["bytes"]
            if e.get("local") in binaries:
                h["binaries"].add(e["local"])
    out = {}
    for host, h in sorted(hosts.items()):
        size = sum(binaries[b] for b in h["binaries"])
        out[host] = {"commands": h["commands"], "uploads": h["uploads"], "bytes": h["bytes"],
                     "upload_bytes": h["upload_bytes"], "binaries": sorted(h["binaries"]), "binaries_bytes": size,
                     "bytes_over_binaries": round(h["bytes"] / size, 3) if size else None}
    total = {k: sum(h[k] for h in out.values()) for k in ("commands", "uploads", "bytes", "upload_bytes", "binaries_bytes")}
    ratios = [h["bytes_over_binaries"] for h in out.values() if h["bytes_over_binaries"] is not None]
    total["worst_bytes_over_binaries"] = max(ratios) if ratios else None
    return {"hosts": out, "total": total}


def read_byte_log(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="*", help="ansible-playbook -vvv logs")
    parser.add_argument("--bytes", help="bench_timer byte log (JSON lines)")
    parser.add_argument("--json", help="with --bytes: write the summary here")
    parser.add_argument("--inventory", help="with --bytes: name the hosts as this inventory does")
    args = parser.parse_args(argv)
    if args.bytes:
        names = inventory_names(args.inventory) if args.inventory else None
        summary = summarise(read_byte_log(args.bytes), module_binaries(), names)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(summary, handle, indent=1)
        print("%-18s %8s %7s %12s %12s %7s" % ("host", "commands", "uploads", "bytes sent", "binaries", "ratio"))
        for host, h in summary["hosts"].items():
            print("%-18s %8d %7d %12d %12d %7s" % (host, h["commands"], h["uploads"], h["bytes"], h["binaries_bytes"],
                                                  "-" if h["bytes_over_binaries"] is None else "%.2f" % h["bytes_over_binaries"]))
        t = summary["total"]
        print("%-18s %8d %7d %12d %12d" % ("total", t["commands"], t["uploads"], t["bytes"], t["binaries_bytes"]))
    for path in args.logs:
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
