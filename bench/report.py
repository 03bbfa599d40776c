#!/usr/bin/env python3
"""Write docs/benchmarks.md from the JSON files of one `make bench` run (build/bench/) and print
the headline as the last line: `bench: convert/floor=R1 builtin/kubeha=R2 availability=P%`.

The analysis text (bench/analysis.md) is appended as written; every number in the tables and in the
headline comes from the files of this run."""

import argparse
import datetime
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from floor import bare, restarts_of  # noqa: E402  (same reading of a run's restarts as the floor)

PHASES = [("local proxy", "local proxy"), ("preflight", "preflight"), ("certificates", "masters: certificates"),
          ("kubeconfigs", "masters: kubeconfigs + restarts"), ("workers", "workers"),
          ("configmaps", "ConfigMaps + kube-proxy roll"), ("verify", "verify"), ("drill", "drill"),
          ("report", "report"), ("groups", "inventory groups")]
METHOD = """## What `make bench` measures (bench/run.sh)

1. A fresh unconverted bed (`testbed/up.sh pinned`, which destroys any bed first: 3 masters, 2 workers, HAProxy).
2. `playbooks/convert.yml` (forks 20, ANSIBLE_PIPELINING=True, kubeha's optional HAProxy drain on, as
   chaos/ runs it), over SSH as the bed's login user with sudo (`bench/inventory.py`: the test bed's
   own connection settings, ControlPersist), with `chaos/probe.py` sending authenticated, CA-verified
   GETs through the VIP at 10/s the whole time. Gives the kubeha wall time and the **availability**
   percentage; every remote command and upload is counted per host by the `bench_timer` callback,
   which wraps the ssh connection's `exec_command` and `put_file` (`bench/transport.py --bytes`).
3. **Floor A**: `bench/floor.py` replays, through `docker exec` with 0.2 s polls, only the restarts
   that run made (the handlers that reported "changed", read from the run's `bench_timer` JSON) in the
   same serial order, the workers in the same batches with node Ready and Lease renewal, and the
   kube-proxy roll node by node. No Ansible, no file edits.
4. **Module cost** on kubeha-master1 (`bench/modcost.py`, `bench/modcost.yml`): each of the 7 binary
   modules (through their action plugin, binary cached on the host) and a pipelined Python builtin
   counterpart, 20 calls each (no-change or check-mode calls): wall time per call (task time / 20),
   remote commands, uploads and bytes sent per call (counted in the ssh connection's `exec_command`
   and `put_file` by `bench/plugins/callback/bench_timer.py`), and peak RSS (`ru_maxrss` from
   `wait4()` of the module re-run on the host with its real arguments, kept by
   ANSIBLE_KEEP_REMOTE_FILES=1 with pipelining off, so through Ansible's normal path); and what one
   `put_file` costs by file size (an sftp `put` over the node's SSH control master, the ssh
   connection's own transfer) against a 300-byte file.
5. `playbooks/rollback.yml`, then the builtin-modules reference `bench/reference/convert-builtin.yml`
   (same conversion, same restarts and waits; lineinfile/replace/copy/command/uri/systemd_service,
   kubectl and `openssl x509 -checkip/-checkhost` as kubespray does; kubeadm is not available on the
   bed, so the apiserver certificate is regenerated with the openssl CLI after deleting the old
   pair, as kubespray deletes it before `kubeadm init phase certs apiserver`), then **floor B**.
6. **Added latency**: a fresh bed, every SSH connection through `bench/latency_proxy.py` as its
   ProxyCommand (10 ms added in each direction, so 20 ms more round-trip time between the controller
   and each node; this machine's kernel has no netem qdisc, `tc qdisc add ... netem` answers
   "Specified qdisc kind is unknown"); `convert.yml` counted as in 2, module cost per call (10 calls
   each, timing only), rollback, the builtin reference. The floor is the same (its polls do not
   cross SSH).
7. **Scale** (`bench/scale.sh`): fresh bed plus kubeha-worker3..16 (172.30.0.30+, installed by
   `testbed/install/site.yml`, removed at the end); worker phase with 2, 8, 16 workers (forks 20,
   serial 100%), 16 workers with 4 forks, and 16 workers with the default serial 20%. The 14 extra
   systemd containers need free inotify instances (`fs.inotify.max_user_instances`, counted for the
   whole machine); `bench/scale.sh` stops with that diagnosis when its containers do not start.
8. `bench/report.py` writes this page: headline
   `bench: convert/floor=R1 builtin/kubeha=R2 availability=P%` with
   R1 = kubeha wall / floor and R2 = (reference wall - floor) / (kubeha wall - floor), floor = the mean
   of floors A and B; a per-phase table (play wall times, same boundaries as
   `ansible.posix.profile_tasks`, which is enabled too and logged in build/bench/*.log); slowest tasks;
   the module-cost table; the scale table; and the analysis."""
ORDER = [label for _key, label in PHASES[1:]] + ["local proxy", "other"]


def load(path, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError:
        return default


def phase_of(play_name):
    low = play_name.lower()
    for key, label in PHASES:
        if key in low:
            return label
    return "other"


def phases(timer):
    out = {}
    for play in timer["plays"]:
        label = phase_of(play["name"])
        out[label] = out.get(label, 0.0) + (play["end"] - play["start"])
    return out


def floor_phases(floor):
    out = {}
    for step in floor["steps"]:
        name = step["step"]
        if "kube-proxy roll" in name:
            label = "ConfigMaps + kube-proxy roll"
        elif name.startswith("workers "):
            label = "workers"
        else:
            label = "masters: kubeconfigs + restarts"
        out[label] = out.get(label, 0.0) + step["seconds"]
    return out


def top_tasks(timer, count=12):
    sums = {}
    for task in timer["tasks"]:
        key = (phase_of(task["play"]), task["name"])
        entry = sums.setdefault(key, [0.0, 0])
        entry[0] += task["end"] - task["start"]
        entry[1] += 1
    rows = sorted(sums.items(), key=lambda kv: -kv[1][0])[:count]
    return [(phase, name, secs, runs) for (phase, name), (secs, runs) in rows]


def task_count(timer):
    return len(timer["tasks"])


def task_seconds(timer, substring):
    """Summed wall time of the tasks whose name (without role prefix) contains substring."""
    return sum(t["end"] - t["start"] for t in timer["tasks"] if substring in bare(t["name"]))


def hhmm(floor, path):
    """When a floor measurement ended (UTC), from its own record or, for older files, the file's mtime."""
    if "started" in floor:
        ts = floor["started"] + floor["floor_seconds"]
    else:
        ts = os.path.getmtime(path)
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%H:%M UTC")


def goal(ok):
    return "met" if ok else "**missed**"


def cmd(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine():
    mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:"))
    return {
        "nproc": cmd(["nproc"]),
        "memory": "%.1f GiB" % (mem_kb / 1024 / 1024),
        "kernel": cmd(["uname", "-r"]),
        "docker": cmd(["docker", "version", "--format", "{{.Server.Version}}"]),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown"),
        "ansible": cmd([os.path.join(os.path.dirname(HERE), ".venv", "bin", "ansible"), "--version"]).splitlines()[0]
        if os.path.exists(os.path.join(os.path.dirname(HERE), ".venv", "bin", "ansible")) else "unknown",
    }


def bed_origin(workdir):
    """How this run's first bed came up, in up.sh's own words (up.log): installed and kept as a
    snapshot (the first bring-up of a recipe), started from an existing snapshot, or installed
    without one."""
    try:
        with open(os.path.join(workdir, "up.log"), encoding="utf-8") as handle:
            lines = [l for l in handle if l.startswith("up.sh: ")]
    except OSError:
        return "origin not recorded"
    first_up = next((i for i, l in enumerate(lines) if l.startswith("up.sh: test bed")), None)
    if first_up is None:
        return "origin not recorded"
    if any(l.startswith("up.sh: no snapshot") for l in lines[:first_up]):
        return "installed, kept as a snapshot, started from it"
    if "from snapshot" in lines[first_up]:
        return "started from its snapshot"
    return "installed, no snapshot"


def transport_rows(transport):
    rows = ["| host | remote commands | uploads | bytes sent | kubeha binaries uploaded | their bytes | sent / binaries |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for host, h in transport["hosts"].items():
        rows.append("| %s | %d | %d | {:,} | %d | {:,} | %s |".format(h["bytes"], h["binaries_bytes"]) % (
            host, h["commands"], h["uploads"], len(h["binaries"]),
            "-" if h["bytes_over_binaries"] is None else "%.2f" % h["bytes_over_binaries"]))
    t = transport["total"]
    rows.append("| **all hosts** | **%d** | **%d** | **{:,}** | | **{:,}** | worst %s |".format(t["bytes"], t["binaries_bytes"]) % (
        t["commands"], t["uploads"], "-" if t["worst_bytes_over_binaries"] is None else "%.2f" % t["worst_bytes_over_binaries"]))
    return rows


def transport_section(w, modcost, walls, floor, floor_valid=True):
    """Lines of the SSH transport section: per-conversion counts (bench_timer's byte logs), the
    issue's goals, and the run with added latency. Empty when the run has no byte logs."""
    conv = load(os.path.join(w, "kubeha-transport.json"))
    if not conv:
        return []
    ref = load(os.path.join(w, "reference-transport.json"))
    L = ["## Over SSH: remote commands and bytes per conversion", ""]
    a = L.append
    a("Every remote command (`exec_command`) and upload (`put_file`) of the ssh connection, counted per host by the")
    a("`bench_timer` callback during the kubeha conversion of step 2 (a fresh bed: the module cache starts empty).")
    a("`sent / binaries` compares the bytes sent to a host with the size of the kubeha binaries it needed.")
    a("")
    L.extend(transport_rows(conv))
    a("")
    if ref:
        t, r = conv["total"], ref["total"]
        a("The builtin reference sent %s bytes in %d remote commands and %d uploads (kubeha: %s bytes, %d commands, %d uploads)." %
          ("{:,}".format(r["bytes"]), r["commands"], r["uploads"], "{:,}".format(t["bytes"]), t["commands"], t["uploads"]))
        a("")
    goals = []
    if modcost:
        execs = sorted({row["kubeha"]["execs_per_call"] for row in modcost["pairs"].values()})
        puts = sorted({row["kubeha"]["puts_per_call"] for row in modcost["pairs"].values()})
        goals.append(("a cached kubeha call is one remote command", "%s command(s), %s upload(s) per call" % (
            "/".join("%g" % e for e in execs), "/".join("%g" % p for p in puts)), execs == [1.0] and puts == [0.0]))
        slower = [(p, row["kubeha"]["wall_per_call_s"] / row["builtin"]["wall_per_call_s"])
                  for p, row in modcost["pairs"].items()]
        worst = max(slower, key=lambda x: x[1])
        goals.append(("a cached call no slower than the pipelined builtin", "worst kubeha/builtin time %.2f (`%s`)" % (
            worst[1], worst[0]), worst[1] <= 1.0))
    worst_ratio = conv["total"]["worst_bytes_over_binaries"]
    if worst_ratio is not None:
        goals.append(("bytes sent per host at most 1.2 times its binaries", "worst %.2f" % worst_ratio, worst_ratio <= 1.2))
    rtt = load(os.path.join(w, "kubeha-rtt-transport.json"))
    if "kubeha-rtt" in walls and "reference-rtt" in walls:
        k, ref_s = walls["kubeha-rtt"], walls["reference-rtt"]
        goals.append(("with 20 ms added RTT: builtin / kubeha beyond the floor at least 2", "%.2f ((%.1f - %.1f) / (%.1f - %.1f))" % (
            (ref_s - floor) / (k - floor), ref_s, floor, k, floor), (ref_s - floor) / (k - floor) >= 2 if floor_valid else None))
        goals.append(("with 20 ms added RTT: conversion / floor at most 2", "%.2f (%.1f s / %.1f s)" % (k / floor, k, floor),
                      k / floor <= 2 if floor_valid else None))
    if goals:
        a("| goal | this run | |")
        a("| --- | --- | --- |")
        for name, value, ok in goals:
            a("| %s | %s | %s |" % (name, value, "**not valid**: the floor did not replay the same restarts" if ok is None else goal(ok)))
        a("")
    if rtt and "kubeha-rtt" in walls:
        a("### With 20 ms more round-trip time")
        a("")
        a("A fresh bed; every SSH connection through `bench/latency_proxy.py` (10 ms each way; `bench/tests` checks the")
        a("delay and that every byte arrives in order). Same floor (%.1f s). The conversion ran with the same" % floor)
        probe_rtt = load(os.path.join(w, "probe-kubeha-rtt.json"))
        a("availability probe as the first one (%s)." % ("%d/%d requests answered" % (probe_rtt["ok"], probe_rtt["total"])
                                                          if probe_rtt else "its figures were not recorded"))
        a("")
        a("| run | bed as it is s | +20 ms RTT s | added s |")
        a("| --- | --- | --- | --- |")
        for name, label in (("kubeha", "kubeha `convert.yml`"), ("rollback", "`rollback.yml`"), ("reference", "builtin reference")):
            if name in walls and name + "-rtt" in walls:
                a("| %s | %.1f | %.1f | %.1f |" % (label, walls[name], walls[name + "-rtt"], walls[name + "-rtt"] - walls[name]))
        a("")
        a("Remote commands and bytes of that conversion:")
        a("")
        L.extend(transport_rows(rtt))
        a("")
        mrtt = load(os.path.join(w, "modcost-rtt.json"))
        if mrtt and modcost:
            a("Per call with 20 ms more RTT (%d calls each) against the bed as it is:" % mrtt["n"])
            a("")
            a("| kubeha module | builtin | ms/call kubeha | ms/call builtin | kubeha/builtin | ms/call kubeha, bed as it is | ms/call builtin, bed as it is |")
            a("| --- | --- | --- | --- | --- | --- | --- |")
            for pair, row in mrtt["pairs"].items():
                k, b = row["kubeha"], row["builtin"]
                base = modcost["pairs"].get(pair)
                a("| `%s` | `%s` | %.0f | %.0f | %.2f | %s | %s |" % (
                    pair, row["builtin_name"], k["wall_per_call_s"] * 1000, b["wall_per_call_s"] * 1000,
                    k["wall_per_call_s"] / b["wall_per_call_s"],
                    "%.0f" % (base["kubeha"]["wall_per_call_s"] * 1000) if base else "-",
                    "%.0f" % (base["builtin"]["wall_per_call_s"] * 1000) if base else "-"))
            a("")
    elif "kubeha-rtt" not in walls:
        a("No run with added latency in this run (BENCH_SKIP_LATENCY=1).")
        a("")
    return L


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="build/bench")
    parser.add_argument("--out", default="docs/benchmarks.md")
    args = parser.parse_args()
    w = args.workdir
    walls = load(os.path.join(w, "walls.json"))
    kubeha_t = load(os.path.join(w, "kubeha-timer.json"))
    ref_t = load(os.path.join(w, "reference-timer.json"))
    floor_a = load(os.path.join(w, "floor-a.json"))
    floor_b = load(os.path.join(w, "floor-b.json"))
    probe = load(os.path.join(w, "probe-kubeha.json"))
    modcost = load(os.path.join(w, "modcost.json"))
    scale = load(os.path.join(w, "scale.json"))
    loadavg = load(os.path.join(w, "load.json"), {})

    floor = (floor_a["floor_seconds"] + floor_b["floor_seconds"]) / 2.0
    kubeha = walls["kubeha"]
    reference = walls["reference"]
    r1 = kubeha / floor
    r2 = (reference - floor) / (kubeha - floor)
    avail = 100.0 * probe["ok"] / probe["total"] if probe and probe["total"] else 0.0

    kp, rp, fp = phases(kubeha_t), phases(ref_t), floor_phases(floor_a)
    fpb = floor_phases(floor_b)
    m = machine()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    L = []
    a = L.append
    a("# Benchmarks")
    a("")
    a("Written by `make bench` (`bench/run.sh`, `bench/report.py`) on %s, from the run whose kubeha conversion" % date)
    a("started %s. Every figure below is a ratio" % datetime.datetime.fromtimestamp(
        kubeha_t["start"], datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    a("or a count from that one run on this machine, so the noise of a shared machine cancels out; rerun with:")
    a("")
    a("```")
    a("make bench            # needs the test bed to itself (flock /tmp/kubeha-testbed.lock); BENCH_SKIP_SCALE=1 skips the scale step")
    a("```")
    a("")
    a("Machine: %s CPUs (%s), %s memory, kernel %s, docker %s, %s. The test bed's containers share" %
      (m["nproc"], m["cpu"], m["memory"], m["kernel"], m["docker"], m["ansible"]))
    a("these CPUs with the controller (and with whatever else runs on the machine: the analysis says what did)."
      " Load averages (1/5/15 min, `/proc/loadavg`) at the start of the")
    a("run: %s; at the end: %s. Whole run (`bench/run.sh`): %s. Test bed: layout `pinned`," %
      (loadavg.get("start", "not recorded"), loadavg.get("end", "not recorded"),
       "%.0f min" % (walls["total"] / 60.0) if "total" in walls else "not recorded"))
    a("3 masters + 2 workers + the HAProxy LB, containers on one host (docs/architecture.md); forks %d," % 20)
    a("pipelining on (ANSIBLE_PIPELINING=True) for both playbooks; endpoint policy `kubeadm` (the default);")
    a("kubeha with its optional HAProxy drain around each master's certificate change (`kubeha_lb_haproxy_host:")
    a("kubeha-lb`, as chaos/ runs it; the reference has no such step).")
    a("")
    ref_restarts, ref_rolled = restarts_of(ref_t)
    same = sorted(ref_restarts) == sorted(map(tuple, floor_a["restarts"])) and ref_rolled == floor_a["kube_proxy_rolled"]
    headline = "bench: convert/floor=%.2f builtin/kubeha=%.2f availability=%.2f%%%s" % (
        r1, r2, avail, "" if same else " (floor not valid: other restarts replayed)")
    a("## Headline")
    a("")
    a("```")
    a(headline)
    a("```")
    a("")
    # a floor that replayed other restarts than the conversions made is not their floor
    floor_goal = goal if same else (lambda ok: "**not valid**: the floor did not replay the same restarts (below)")
    a("| figure | value | goal | |")
    a("| --- | --- | --- | --- |")
    a("| conversion / floor (`convert.yml` wall / floor) | **%.2f** (%.1f s / %.1f s) | at most 2 (aim 1.5) | %s |" %
      (r1, kubeha, floor, floor_goal(r1 <= 2)))
    a("| builtin / kubeha, work beyond the floor | **%.2f** ((%.1f - %.1f) / (%.1f - %.1f)) | at least 2 | %s |" %
      (r2, reference, floor, kubeha, floor, floor_goal(r2 >= 2)))
    a("| availability through the VIP during the conversion | **%.2f%%** (%d/%d requests, %.1f req/s, %d failed) | 100%% | %s |" %
      (avail, probe["ok"], probe["total"], probe.get("rate_achieved", 0), probe["failed"], goal(probe["ok"] == probe["total"])))
    a("")
    a("Same restarts in both conversions (read from each run's handlers that changed something and its kube-proxy")
    a("pod deletions): **%s**%s. kubeha also drains each master in HAProxy around its certificate change and" %
      ("yes" if same else "NO", "" if same else " (reference: %s, roll %s)" % (ref_restarts, ref_rolled)))
    a("waits until HAProxy sees it UP again; the reference has no such step. That costs kubeha %.1f s of this" %
      task_seconds(kubeha_t, "LB HAProxy |"))
    a("run (tasks `LB HAProxy | ...`), counted in its work beyond the floor.")
    a("")
    a("The floor is what the conversion's unavoidable restarts and readiness waits cost on their own:")
    a("`bench/floor.py` replays exactly the restarts `convert.yml` made (its handlers that changed something:")
    a("%s), in the same serial order, and the kube-proxy roll (%s), straight through `docker exec` with 0.2 s polls," %
      (", ".join("%s on %s" % (c, h) for h, c in floor_a["restarts"]) or "none", "yes" if floor_a["kube_proxy_rolled"] else "no"))
    a("no Ansible and no file edits. Measured twice: floor A %.1f s (finished %s; `make bench` measures it right" %
      (floor_a["floor_seconds"], hhmm(floor_a, os.path.join(w, "floor-a.json"))))
    a("after the kubeha conversion) and floor B %.1f s (finished %s, right after the reference conversion);" %
      (floor_b["floor_seconds"], hhmm(floor_b, os.path.join(w, "floor-b.json"))))
    a("the floor used is their mean. The floor's commands go through `docker exec`, not SSH, so it holds no")
    a("transport cost at all: everything Ansible pays to reach the hosts is in the work beyond it. It leaves out the apiserver's")
    a("certificate reload (no restart; part of the work measured) and Ansible's own start-up.")
    a("")
    a("## Where the time goes, per phase")
    a("")
    a("Play wall times from the `bench_timer` callback (`bench/plugins/callback/bench_timer.py`; the same task")
    a("boundaries as `ansible.posix.profile_tasks`, whose full per-task output is in `build/bench/kubeha.log` and")
    a("`build/bench/reference.log`). Floor per phase from floor A (floor B in brackets).")
    a("")
    a("| phase | kubeha s | builtin reference s | floor s | kubeha beyond floor s | reference beyond floor s |")
    a("| --- | --- | --- | --- | --- | --- |")
    for label in ORDER:
        if label not in kp and label not in rp:
            continue
        f = fp.get(label, 0.0)
        a("| %s | %.1f | %.1f | %.1f%s | %.1f | %.1f |" % (
            label, kp.get(label, 0.0), rp.get(label, 0.0), f, (" (%.1f)" % fpb[label]) if label in fpb else "",
            kp.get(label, 0.0) - f, rp.get(label, 0.0) - f))
    a("| **ansible-playbook wall** | **%.1f** | **%.1f** | **%.1f** | **%.1f** | **%.1f** |" %
      (kubeha, reference, floor, kubeha - floor, reference - floor))
    a("")
    a("Tasks run (task starts, loops counted once): kubeha %d, reference %d. Rollback (`playbooks/rollback.yml`," %
      (task_count(kubeha_t), task_count(ref_t)))
    a("between the two conversions): %.1f s. Test bed creation (`testbed/up.sh`, %s): %.1f s." %
      (walls.get("rollback", 0.0), bed_origin(w), walls.get("testbed_up", 0.0)))
    a("")
    for title, timer in (("kubeha `convert.yml`", kubeha_t), ("builtin reference", ref_t)):
        a("Slowest tasks, %s (summed over hosts' batches and includes):" % title)
        a("")
        a("| phase | task | s | runs |")
        a("| --- | --- | --- | --- |")
        for phase, name, secs, runs in top_tasks(timer):
            a("| %s | %s | %.1f | %d |" % (phase, name.replace("|", "\\|"), secs, runs))
        a("")
    a("Floor steps (floor A):")
    a("")
    a("| step | s |")
    a("| --- | --- |")
    for step in floor_a["steps"]:
        a("| %s | %.1f |" % (step["step"], step["seconds"]))
    a("")
    if modcost:
        a("## Module cost, per call (kubeha-master1, %d calls each, no-change or check-mode calls)" % modcost["n"])
        a("")
        a("Wall time per call from the task time of a %d-item loop (every item is a full module execution);" % modcost["n"])
        a("bytes sent = what the ssh connection's `put_file` and `exec_command` carried, counted by the")
        a("callback (the command and the arguments on standard input for a cached kubeha call; the pipelined")
        a("AnsiballZ payload for Python);")
        a("peak RSS = `ru_maxrss` from `wait4()` of the module re-run on the host %d times with its real arguments" % modcost["rss_runs"])
        a("(kept with ANSIBLE_KEEP_REMOTE_FILES=1; for `command` it includes the program it runs, e.g. kubectl).")
        a("Python modules pipelined; kubeha modules through their action plugin, the binary cached on the host")
        a("by the conversion before (so no upload here).")
        a("")
        a("| kubeha module | builtin counterpart | ms/call kubeha | ms/call builtin | kubeha/builtin time | bytes/call kubeha | bytes/call builtin | peak RSS MB kubeha | peak RSS MB builtin | run on host ms kubeha | run on host ms builtin |")
        a("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for pair, row in modcost["pairs"].items():
            k, b = row["kubeha"], row["builtin"]
            a("| `%s` | `%s` | %.0f | %.0f | %.2f | %s | %s | %.1f | %.1f | %.0f | %.0f |" % (
                pair, row["builtin_name"], k["wall_per_call_s"] * 1000, b["wall_per_call_s"] * 1000,
                k["wall_per_call_s"] / b["wall_per_call_s"], "{:,.0f}".format(k["bytes_per_call"]),
                "{:,.0f}".format(b["bytes_per_call"]), k["peak_rss_kb_max"] / 1024, b["peak_rss_kb_max"] / 1024,
                k["host_run_s_median"] * 1000, b["host_run_s_median"] * 1000))
        worst_rss = max(r["kubeha"]["peak_rss_kb_max"] for r in modcost["pairs"].values()) / 1024
        slower = [p for p, r in modcost["pairs"].items() if r["kubeha"]["wall_per_call_s"] > r["builtin"]["wall_per_call_s"]]
        a("")
        a("Largest kubeha peak RSS: %.1f MB (goal: under 10 MB: %s). Slower per call than the builtin counterpart: %s." %
          (worst_rss, goal(worst_rss < 10), ", ".join("`%s`" % p for p in slower) if slower else "none"))
        a("")
        def per_call(side, key):
            """'5' when every module of that side made the same count per call, else '1 (uri: 4)'."""
            counts = {}
            for row in modcost["pairs"].values():
                name = row["builtin_name"] if side == "builtin" else None
                counts.setdefault(row[side].get(key, 0.0), []).append(name)
            common = max(counts, key=lambda c: len(counts[c]))
            others = ", ".join("%s: %g" % ("/".join(n for n in names if n) or "some", c)
                               for c, names in counts.items() if c != common)
            return "%g" % common + (" (%s)" % others if others else "")
        a("Connection round trips per call (counted by the callback): kubeha %s `exec_command` + %s `put_file`;" %
          (per_call("kubeha", "execs_per_call"), per_call("kubeha", "puts_per_call")))
        a("builtin modules (pipelined) %s `exec_command` + %s `put_file`." %
          (per_call("builtin", "execs_per_call"), per_call("builtin", "puts_per_call")))
        a("")
        tr = modcost.get("transfer")
        if tr:
            base = tr["300 B"]
            a("What a transfer costs on this host (an sftp `put` over the node's SSH control master, the ssh connection's")
            a("`put_file`; %d runs per file, interleaved; `exec round trip` = `ssh <node> true` over the master; measured %s):" %
              (modcost["transfer_runs"], datetime.datetime.fromtimestamp(modcost.get("transfer_started", 0),
                                                                        datetime.timezone.utc).strftime("%H:%M UTC")))
            a("")
            a("| file | bytes | median ms | min ms | median ms above the 300-byte put |")
            a("| --- | --- | --- | --- | --- |")
            for name, row in tr.items():
                above = "" if name in ("300 B", "exec round trip") else "%.0f" % ((row["median_s"] - base["median_s"]) * 1000)
                a("| %s | %s | %.0f | %.0f | %s |" % (name, "{:,}".format(row["bytes"]) if row["bytes"] else "-",
                                                 row["median_s"] * 1000, row["min_s"] * 1000, above))
            a("")
    L.extend(transport_section(w, modcost, walls, floor, floor_valid=same))
    if scale:
        a("## Scale: the worker phase")
        a("")
        scale_meta = load(os.path.join(w, "scale-meta.json"), {})
        if scale_meta.get("note"):
            a(scale_meta["note"])
            a("")
        a("Fresh bed with 16 workers (kubeha-worker3..16 added from the same image, installed by")
        a("`testbed/install/site.yml`); masters converted by the first run; worker play of `convert.yml` timed by")
        a("the callback; `playbooks/rollback.yml --tags workers` between runs.")
        a("")
        a("| run | workers | forks | serial | worker phase s |")
        a("| --- | --- | --- | --- | --- |")
        for row in scale:
            a("| %s | %d | %d | %s | %.1f |" % (row["run"], row["workers"], row["forks"], row["serial"], row["worker_phase_s"]))
        by = {r["run"]: r for r in scale}
        if "w2-f20" in by and "w16-f20" in by:
            per = (by["w16-f20"]["worker_phase_s"] - by["w2-f20"]["worker_phase_s"]) / 14.0
            a("")
            a("Time per added worker (forks 20, serial 100%%, 2 -> 16 workers): %.2f s, against %.1f s for the whole" %
              (per, by["w2-f20"]["worker_phase_s"]))
            a("2-worker phase.")
            ratio = by["w16-f20"]["worker_phase_s"] / by["w2-f20"]["worker_phase_s"]
            a("8x the workers took %.2fx the time (goal: sub-linear, below 8x: %s)." % (ratio, goal(ratio < 8)))
            if "w16-f4" in by:
                a("With 4 forks the 16 workers take %.1f s (%.2fx the 20-fork run)." %
                  (by["w16-f4"]["worker_phase_s"], by["w16-f4"]["worker_phase_s"] / by["w16-f20"]["worker_phase_s"]))
        a("")
    else:
        a("## Scale")
        a("")
        a("No scale figures in this run (BENCH_SKIP_SCALE=1, or `bench/scale.sh` did not finish: see the analysis).")
        a("")
    a(METHOD)
    a("")
    analysis = os.path.join(HERE, "analysis.md")
    if os.path.exists(analysis):
        with open(analysis, encoding="utf-8") as handle:
            a(handle.read().rstrip())
        a("")
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(L))
    summary = {"convert_over_floor": round(r1, 3), "builtin_over_kubeha": round(r2, 3), "availability_pct": round(avail, 3),
               "floor_s": round(floor, 3), "kubeha_s": kubeha, "reference_s": reference}
    with open(os.path.join(w, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    print(headline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
