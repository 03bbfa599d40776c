#!/usr/bin/env python3
"""Module cost: each kubeha binary module against a Python builtin module, on one host.

Two passes of bench/modcost.yml against --host (a converted master of the test bed):
  1. timing: every task loops --n times with ANSIBLE_PIPELINING=True (used by the Python modules;
     Ansible copies binary modules instead). Wall time per call = task time / n (bench_timer
     callback); bytes sent per call = what the docker connection's put_file and exec_command
     carried during the task (counted by the same callback) / n.
  2. memory: one call per task with ANSIBLE_KEEP_REMOTE_FILES=1 and pipelining off, so each
     module stays on the host with its real arguments (binary + args file; AnsiballZ_<module>.py).
     Each is then run again on the host --rss-runs times under a wait4() wrapper: peak RSS
     (ru_maxrss of the module process and anything it waited for, e.g. the kubectl a command
     module runs) and the module's own run time on the host.
  3. transfer: what one docker-connection round trip and one put_file cost on this host, by size.
     The connection's put_file is `docker exec -i <host> sh -c "dd of=..."` with the file on stdin;
     the same command is timed --transfer-runs times for a 300-byte file and for each kubeha binary,
     interleaved (so load changes hit all sizes alike), and `docker exec <host> true` for the round
     trip. put(binary) - put(300 B) is the part of a binary module's call that its size costs.
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
REMOTE_TMP = "/root/.ansible/kubeha-bench-tmp"

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


def transfer_costs(host, runs):
    """Median seconds of a put_file-equivalent per file size, and of an empty docker exec round trip."""
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
        for _ in range(runs):
            for name, path in files.items():
                with open(path, "rb") as handle:
                    start = time.time()
                    subprocess.run(["docker", "exec", "-i", host, "/bin/sh", "-c", "dd of=%s bs=65536" % target],
                                   stdin=handle, capture_output=True, check=True)
                    times[name].append(time.time() - start)
            start = time.time()
            subprocess.run(["docker", "exec", host, "true"], capture_output=True, check=True)
            times["exec round trip"].append(time.time() - start)
    finally:
        os.unlink(small.name)
        subprocess.run(["docker", "exec", host, "rm", "-f", target], capture_output=True)
    sizes = {name: os.path.getsize(path) for name, path in files.items() if name != "300 B"}
    sizes["300 B"] = 300
    return {name: {"bytes": sizes.get(name), "median_s": statistics.median(v), "min_s": min(v)}
            for name, v in times.items()}


def transfer_figures(host, runs):
    """The transfer part of --out: costs by size, how many runs, when they started."""
    started = time.time()
    return {"transfer_runs": runs, "transfer": transfer_costs(host, runs), "transfer_started": started}


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
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    if args.transfer_only:
        with open(args.out, encoding="utf-8") as handle:
            result = json.load(handle)
        result.update(transfer_figures(args.host, args.transfer_runs))
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
        print_transfer(result["transfer"])
        return 0
    bytes_log = os.path.join(args.workdir, "modcost-bytes.jsonl")
    if os.path.exists(bytes_log):
        os.unlink(bytes_log)

    timing = playbook(args.inventory, args.host, args.n, os.path.join(args.workdir, "modcost-timer.json"),
                      {"ANSIBLE_PIPELINING": "True", "BENCH_BYTES_OUT": bytes_log})
    with open(bytes_log, encoding="utf-8") as handle:
        sent = [json.loads(line) for line in handle if line.strip()]

    subprocess.run(["docker", "exec", args.host, "rm", "-rf", REMOTE_TMP], check=True)
    keep = playbook(args.inventory, args.host, 1, os.path.join(args.workdir, "modcost-keep-timer.json"),
                    {"ANSIBLE_PIPELINING": "False", "ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": REMOTE_TMP})
    proc = subprocess.run(["docker", "exec", "-i", args.host, "python3", "-", str(args.rss_runs), REMOTE_TMP],
                          input=WRAPPER, capture_output=True, text=True, check=True)
    kept = json.loads(proc.stdout)
    subprocess.run(["docker", "exec", args.host, "rm", "-rf", REMOTE_TMP], check=True)
    pair_tasks = [t for t in keep["tasks"] if t["name"].startswith("Pair ")]
    if len(kept) != len(pair_tasks):
        raise SystemExit("modcost: %d kept module dirs for %d tasks" % (len(kept), len(pair_tasks)))

    rows = {}
    kept_by_task = dict(zip([t["name"] for t in pair_tasks], kept))
    for task in timing["tasks"]:
        if not task["name"].startswith("Pair "):
            continue
        pair, side = [part.strip() for part in task["name"][5:].split("|", 1)]
        during = [e for e in sent if task["start"] <= e["ts"] <= task["end"]]
        k = kept_by_task[task["name"]]
        entry = {
            "task": task["name"],
            "status": sorted(set(task.get("results", {}).values())),
            "wall_per_call_s": (task["end"] - task["start"]) / args.n,
            "bytes_per_call": sum(e["bytes"] for e in during) / args.n,
            "put_bytes_per_call": sum(e["bytes"] for e in during if e["op"] == "put") / args.n,
            "exec_bytes_per_call": sum(e["bytes"] for e in during if e["op"] == "exec") / args.n,
            "execs_per_call": sum(1 for e in during if e["op"] == "exec") / args.n,
            "puts_per_call": sum(1 for e in during if e["op"] == "put") / args.n,
            "module_file_bytes": k["size"],
            "peak_rss_kb_max": max(k["rss_kb"]),
            "peak_rss_kb_median": statistics.median(k["rss_kb"]),
            "host_run_s_median": statistics.median(k["seconds"]),
        }
        rows.setdefault(pair, {})["kubeha" if side == "kubeha" else "builtin"] = entry
        if side != "kubeha":
            rows[pair]["builtin_name"] = side.replace("builtin ", "")
    result = {"host": args.host, "n": args.n, "rss_runs": args.rss_runs, "pairs": rows}
    result.update(transfer_figures(args.host, args.transfer_runs))
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    print("%-20s %-28s %9s %9s %10s %10s %8s %8s" % ("module", "builtin", "ms/call", "ms/call", "bytes", "bytes",
                                                      "RSS MB", "RSS MB"))
    for pair, row in rows.items():
        k, b = row["kubeha"], row["builtin"]
        print("%-20s %-28s %9.0f %9.0f %10.0f %10.0f %8.1f %8.1f" % (
            pair, row["builtin_name"][:28], k["wall_per_call_s"] * 1000, b["wall_per_call_s"] * 1000,
            k["bytes_per_call"], b["bytes_per_call"], k["peak_rss_kb_max"] / 1024, b["peak_rss_kb_max"] / 1024))
    print_transfer(result["transfer"])
    return 0


def print_transfer(transfer):
    print("%-22s %10s %12s %12s" % ("transfer", "bytes", "median ms", "min ms"))
    for name, row in transfer.items():
        print("%-22s %10s %12.0f %12.0f" % (name, row["bytes"] if row["bytes"] is not None else "-",
                                             row["median_s"] * 1000, row["min_s"] * 1000))


if __name__ == "__main__":
    sys.exit(main())
