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

PHASES = [("local proxy", "local proxy"), ("preflight", "preflight"), ("certificates", "masters: certificates"),
          ("kubeconfigs", "masters: kubeconfigs + restarts"), ("workers", "workers"),
          ("configmaps", "ConfigMaps + kube-proxy roll"), ("verify", "verify"), ("drill", "drill"),
          ("report", "report"), ("groups", "inventory groups")]
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
    probe = load(os.path.join(w, "probe.json"))
    modcost = load(os.path.join(w, "modcost.json"))
    scale = load(os.path.join(w, "scale.json"))
    ref_floor_restarts = None

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
    a("Written by `make bench` (`bench/run.sh`, `bench/report.py`) on %s. Every figure below is a ratio" % date)
    a("or a count from that one run on this machine, so the noise of a shared machine cancels out; rerun with:")
    a("")
    a("```")
    a("make bench            # about 15 minutes; needs the test bed to itself (flock /tmp/kubeha-testbed.lock)")
    a("```")
    a("")
    a("Machine: %s CPUs (%s), %s memory, kernel %s, docker %s, %s. Test bed: layout `pinned`," %
      (m["nproc"], m["cpu"], m["memory"], m["kernel"], m["docker"], m["ansible"]))
    a("3 masters + 2 workers + the HAProxy LB, containers on one host (docs/architecture.md); forks %d," % 20)
    a("pipelining on (ANSIBLE_PIPELINING=True) for both playbooks; endpoint policy `kubeadm` (the default);")
    a("kubeha with its optional HAProxy drain around each master's certificate change (`kubeha_lb_haproxy_host:")
    a("kubeha-lb`, as chaos/ runs it; the reference has no such step).")
    a("")
    a("## Headline")
    a("")
    a("| figure | value | goal |")
    a("| --- | --- | --- |")
    a("| conversion / floor (`convert.yml` wall / floor) | **%.2f** (%.1f s / %.1f s) | at most 1.5 |" % (r1, kubeha, floor))
    a("| builtin / kubeha, work beyond the floor | **%.2f** ((%.1f - %.1f) / (%.1f - %.1f)) | at least 2 |" %
      (r2, reference, floor, kubeha, floor))
    a("| availability through the VIP during the conversion | **%.2f%%** (%d/%d requests, %.1f req/s, %d failed) | 100%% |" %
      (avail, probe["ok"], probe["total"], probe.get("rate_achieved", 0), probe["failed"]))
    a("")
    a("The floor is what the conversion's unavoidable restarts and readiness waits cost on their own:")
    a("`bench/floor.py` replays exactly the restarts `convert.yml` made (its handlers that changed something:")
    a("%s), in the same serial order, and the kube-proxy roll (%s), straight through `docker exec` with 0.2 s polls," %
      (", ".join("%s on %s" % (c, h) for h, c in floor_a["restarts"]) or "none", "yes" if floor_a["kube_proxy_rolled"] else "no"))
    a("no Ansible and no file edits. Measured twice in the run: %.1f s right after the kubeha conversion and %.1f s" %
      (floor_a["floor_seconds"], floor_b["floor_seconds"]))
    a("right after the reference conversion; the floor used is their mean. It leaves out the apiserver's")
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
    a("between the two conversions): %.1f s. Test bed creation (`testbed/up.sh`): %.1f s." %
      (walls.get("rollback", 0.0), walls.get("testbed_up", 0.0)))
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
        a("bytes sent = what the docker connection's `put_file` and `exec_command` carried, counted by the")
        a("callback (binary + args file + shell commands for kubeha; the pipelined AnsiballZ payload for Python);")
        a("peak RSS = `ru_maxrss` from `wait4()` of the module re-run on the host %d times with its real arguments" % modcost["rss_runs"])
        a("(kept with ANSIBLE_KEEP_REMOTE_FILES=1; for `command` it includes the program it runs, e.g. kubectl).")
        a("Python modules pipelined; binary modules cannot be, so each call copies the binary.")
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
        a("Largest kubeha peak RSS: %.1f MB (goal: under 10 MB). Slower per call than the builtin counterpart: %s." %
          (worst_rss, ", ".join("`%s`" % p for p in slower) if slower else "none"))
        a("")
    if scale:
        a("## Scale: the worker phase")
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
            if "w16-f4" in by:
                a("With 4 forks the 16 workers take %.1f s (%.2fx the 20-fork run)." %
                  (by["w16-f4"]["worker_phase_s"], by["w16-f4"]["worker_phase_s"] / by["w16-f20"]["worker_phase_s"]))
        a("")
    else:
        a("## Scale")
        a("")
        a("Not measured in this run (BENCH_SKIP_SCALE=1).")
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
    print("bench: convert/floor=%.2f builtin/kubeha=%.2f availability=%.2f%%" % (r1, r2, avail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
