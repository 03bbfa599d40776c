#!/usr/bin/env python3
"""Module cost: each kubeha binary module against a Python builtin module, on one host.

Passes of bench/modcost.yml against --host (a converted master of the test bed), over SSH as
the bed's login user with sudo, as every test reaches the bed, after one untimed call of each module
(so that every kubeha binary is in the host's module cache):
  1. timing: every task loops --n times with ANSIBLE_PIPELINING=True (the Python modules are
     pipelined; the kubeha modules run through their action plugin, one remote command per call
     with the binary cached on the host). Wall time per call = task time / n (bench_timer
     callback); remote commands, uploads and bytes sent per call = what the ssh connection's
     exec_command and put_file carried during the task (counted by the same callback) / n.
  2. memory: one call per task with ANSIBLE_KEEP_REMOTE_FILES=1 and pipelining off (so the plugin
     takes Ansible's normal path and each module stays on the host with its real arguments: binary +
     args file; AnsiballZ_<module>.py). Each is then run again on the host (sudo) --rss-runs times
     under a wait4() wrapper: peak RSS (ru_maxrss of the module process and anything it waited
     for, e.g. the kubectl a command module runs) and the module's own run time on the host.
  3. transfer: what one SSH round trip and one put_file cost on this host, by size. The ssh
     connection's put_file is an sftp `put` over the node's ControlPersist master; the same is timed
     --transfer-runs times for a 300-byte file and for each kubeha binary, interleaved (so load
     changes hit all sizes alike), and `ssh <node> true` over the master for the round trip.
     put(binary) - put(300 B) is the part of an uncached binary module's call that its size costs.
Writes --out (JSON) and prints a table.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import bedssh

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# Ansible makes its temporary directories as the login user (before become), so somewhere it may write
REMOTE_TMP = "/var/tmp/kubeha-bench-tmp"

WRAPPER = r"""
import json, os, sys, time
runs = int(sys.argv[1])
out = []
for d in sorted(os.listdir(sys.argv[2]), key=lambda n: float(n.split("-")[2])):
    path = os.path.join(sys.argv[2], d)
    files = os.listdir(path)
    py = [f for f in files if f.startswith("AnsiballZ_") and f.endswith(".py")]
    if py:
        argv = ["/usr/bin/python3", os.path.join(path, py[0])]
    else:
        binary = [f for f in files if f != "args"]
        argv = [os.path.join(path, binary[0]), os.path.join(path, "args")]
    rss, secs = [], []
    for _ in range(runs):
        start = time.time()
        pid = os.fork()
        if pid == 0:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, 1); os.dup2(fd, 2)
            os.execv(argv[0], argv)
        _, status, usage = os.wait4(pid, 0)
        secs.append(time.time() - start)
        rss.append(usage.ru_maxrss)
    out.append({"dir": d, "module": os.path.basename(argv[1]) if py else os.path.basename(argv[0]), "rc": status,
                "rss_kb": rss, "seconds": secs, "size": sum(os.path.getsize(os.path.join(path, f)) for f in files)})
print(json.dumps(out))
"""


MODULES_DIR = os.path.join(REPO, "ansible", "ansible_collections", "kubeha", "control_plane", "plugins", "modules")


def transfer_costs(ip, runs):
    """Median seconds of a put_file-equivalent per file size, and of an empty SSH round trip."""
    small = tempfile.NamedTemporaryFile(prefix="kubeha-bench-", delete=False)
    small.write(b"x" * 300)
    small.close()
    files = {"300 B": small.name}
    for name in sorted(os.listdir(MODULES_DIR)):
        path = os.path.join(MODULES_DIR, name)
        if not name.endswith(".yml") and os.path.isfile(path):
            files[name] = path
    times = {name: [] for name in files}
    times["exec round trip"] = []
    target = "/tmp/kubeha-bench-put"
    try:
        # the control master up before the first timed transfer, as Ansible's is after a play's first task
        bedssh.login(ip, "true", capture_output=True, check=True)
        for _ in range(runs):
            for name, path in files.items():
                start = time.time()
                bedssh.sftp_put(ip, path, target)
                times[name].append(time.time() - start)
            start = time.time()
            bedssh.login(ip, "true", capture_output=True, check=True)
            times["exec round trip"].append(time.time() - start)
    finally:
        os.unlink(small.name)
        bedssh.login(ip, "rm", "-f", target, capture_output=True)
    sizes = {name: os.path.getsize(path) for name, path in files.items() if name != "300 B"}
    sizes["300 B"] = 300
    return {name: {"bytes": sizes.get(name), "median_s": statistics.median(v), "min_s": min(v)}
            for name, v in times.items()}


def transfer_figures(ip, runs):
    """The transfer part of --out: costs by size, how many runs, when they started."""
    started = time.time()
    return {"transfer_runs": runs, "transfer": transfer_costs(ip, runs), "transfer_started": started}


def playbook(inventory, host, n, timer, env_extra):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "plugins", "callback"),
        "ANSIBLE_CALLBACKS_ENABLED": "bench_timer",
        "BENCH_TIMER_OUT": timer,
    })
    env.update(env_extra)
    cmd = [os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", inventory, os.path.join(HERE, "modcost.yml"),
           "-e", "bench_host=%s" % host, "-e", "bench_n=%d" % n]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit("modcost: ansible-playbook failed (rc %d)" % proc.returncode)
    with open(timer, encoding="utf-8") as handle:
        return json.load(handle)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--host", default="kubeha-master1")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--rss-runs", type=int, default=5)
    parser.add_argument("--transfer-runs", type=int, default=15)
    parser.add_argument("--transfer-only", action="store_true",
                        help="only step 3, added to an existing --out (the other figures are kept)")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timing-only", action="store_true",
                        help="only step 1 (no memory or transfer figures): the run with added latency")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    ip = bedssh.address(args.inventory, args.host)
    if args.transfer_only:
        with open(args.out, encoding="utf-8") as handle:
            result = json.load(handle)
        result.update(transfer_figures(ip, args.transfer_runs))
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
        print_transfer(result["transfer"])
        return 0
    bytes_log = os.path.join(args.workdir, "modcost-bytes.jsonl")
    if os.path.exists(bytes_log):
        os.unlink(bytes_log)

    # one call of each module first, untimed, so that every binary is in the host's module cache (the
    # conversion before may not have used all seven on this host): the timing is of cached calls
    playbook(args.inventory, args.host, 1, os.path.join(args.workdir, "modcost-warm-timer.json"), {"ANSIBLE_PIPELINING": "True"})
    timing = playbook(args.inventory, args.host, args.n, os.path.join(args.workdir, "modcost-timer.json"),
                      {"ANSIBLE_PIPELINING": "True", "BENCH_BYTES_OUT": bytes_log})
    with open(bytes_log, encoding="utf-8") as handle:
        sent = [json.loads(line) for line in handle if line.strip()]

    if args.timing_only:
        result = {"host": args.host, "n": args.n, "pairs": per_call_rows(timing, sent, args.n, None)}
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
        print_rows(result["pairs"])
        return 0

    bedssh.root(ip, "rm", "-rf", REMOTE_TMP, check=True)
    keep = playbook(args.inventory, args.host, 1, os.path.join(args.workdir, "modcost-keep-timer.json"),
                    {"ANSIBLE_PIPELINING": "False", "ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": REMOTE_TMP})
    proc = bedssh.root(ip, "python3", "-", str(args.rss_runs), REMOTE_TMP,
                       input=WRAPPER, capture_output=True, text=True, check=True)
    kept = json.loads(proc.stdout)
    bedssh.root(ip, "rm", "-rf", REMOTE_TMP, check=True)
    pair_tasks = [t for t in keep["tasks"] if t["name"].startswith("Pair ")]
    if len(kept) != len(pair_tasks):
        raise SystemExit("modcost: %d kept module dirs for %d tasks" % (len(kept), len(pair_tasks)))
    kept_by_task = dict(zip([t["name"] for t in pair_tasks], kept))
    rows = per_call_rows(timing, sent, args.n, kept_by_task)
    result = {"host": args.host, "n": args.n, "rss_runs": args.rss_runs, "pairs": rows}
    result.update(transfer_figures(ip, args.transfer_runs))
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    print_rows(rows)
    print_transfer(result["transfer"])
    return 0


def per_call_rows(timing, sent, n, kept_by_task):
    """Per pair and side: wall time, remote commands, uploads and bytes per call (from the timing
    pass and the connection's byte log), and the memory figures when kept_by_task has them."""
    rows = {}
    for task in timing["tasks"]:
        if not task["name"].startswith("Pair "):
            continue
        pair, side = [part.strip() for part in task["name"][5:].split("|", 1)]
        during = [e for e in sent if task["start"] <= e["ts"] <= task["end"]]
        entry = {
            "task": task["name"],
            "status": sorted(set(task.get("results", {}).values())),
            "wall_per_call_s": (task["end"] - task["start"]) / n,
            "bytes_per_call": sum(e["bytes"] for e in during) / n,
            "put_bytes_per_call": sum(e["bytes"] for e in during if e["op"] == "put") / n,
            "exec_bytes_per_call": sum(e["bytes"] for e in during if e["op"] == "exec") / n,
            "execs_per_call": sum(1 for e in during if e["op"] == "exec") / n,
            "puts_per_call": sum(1 for e in during if e["op"] == "put") / n,
        }
        if kept_by_task is not None:
            k = kept_by_task[task["name"]]
            entry.update({
                "module_file_bytes": k["size"],
                "peak_rss_kb_max": max(k["rss_kb"]),
                "peak_rss_kb_median": statistics.median(k["rss_kb"]),
                "host_run_s_median": statistics.median(k["seconds"]),
            })
        rows.setdefault(pair, {})["kubeha" if side == "kubeha" else "builtin"] = entry
        if side != "kubeha":
            rows[pair]["builtin_name"] = side.replace("builtin ", "")
    return rows


def print_rows(rows):
    print("%-20s %-28s %9s %9s %8s %8s %10s %10s" % ("module", "builtin", "ms/call", "ms/call", "cmds", "cmds",
                                                      "bytes", "bytes"))
    for pair, row in rows.items():
        k, b = row["kubeha"], row["builtin"]
        print("%-20s %-28s %9.0f %9.0f %8.2f %8.2f %10.0f %10.0f" % (
            pair, row["builtin_name"][:28], k["wall_per_call_s"] * 1000, b["wall_per_call_s"] * 1000,
            k["execs_per_call"], b["execs_per_call"], k["bytes_per_call"], b["bytes_per_call"]))


def print_transfer(transfer):
    print("%-22s %10s %12s %12s" % ("transfer", "bytes", "median ms", "min ms"))
    for name, row in transfer.items():
        print("%-22s %10s %12.0f %12.0f" % (name, row["bytes"] if row["bytes"] is not None else "-",
                                             row["median_s"] * 1000, row["min_s"] * 1000))


if __name__ == "__main__":
    sys.exit(main())
