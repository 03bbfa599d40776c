#!/usr/bin/env python3
"""Sum the per-layout summaries of a chaos run, record the figures in docs/reliability.md (between
the `chaos:figures` markers) and print exactly one line per suite, last:
    availability: OK/TOTAL requests
    interruptions: RECOVERED/TOTAL
    bad inputs: CLEAN/TOTAL
Exit 1 unless every suite (and failure handling, module kills, security) has full marks."""

import argparse
import glob
import json
import os
import re
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("outdir")
    parser.add_argument("--seconds", type=int, default=0)
    parser.add_argument("--doc", default=None)
    parser.add_argument("--command", default="`make chaos` (`chaos/run.sh`)",
                        help="what produced OUTDIR, as recorded in the doc (when it was not chaos/run.sh)")
    args = parser.parse_args()
    summaries = []
    for path in sorted(glob.glob(os.path.join(args.outdir, "*", "summary.json"))):
        with open(path, encoding="utf-8") as handle:
            summaries.append(json.load(handle))
    mk_path = os.path.join(args.outdir, "module-kill.json")
    module_kill = json.load(open(mk_path, encoding="utf-8")) if os.path.exists(mk_path) else None
    guard = open(os.path.join(args.outdir, "tls-guard.txt"), encoding="utf-8").read().strip() \
        if os.path.exists(os.path.join(args.outdir, "tls-guard.txt")) else "not run"

    avail_ok = sum(s.get("availability", {}).get("ok", 0) for s in summaries)
    avail_total = sum(s.get("availability", {}).get("total", 0) for s in summaries)
    rec = sum(s.get("interruptions", {}).get("recovered", 0) for s in summaries)
    rec_total = sum(s.get("interruptions", {}).get("total", 0) for s in summaries)
    bad = sum(s.get("bad_inputs", {}).get("clean", 0) for s in summaries)
    bad_total = sum(s.get("bad_inputs", {}).get("total", 0) for s in summaries)
    failure_ok = all(not s.get("failure_handling", {}).get("problems") for s in summaries if "failure_handling" in s)
    security_ok = all(not s.get("security", {}).get("problems") for s in summaries)
    slow = [f"{s['layout']}:{n}" for s in summaries for n in s.get("availability", {}).get("below_min_rate", [])]
    mk_ok = bool(module_kill) and module_kill["recovered_ok"] == module_kill["total"]
    guard_ok = guard.startswith("tls-guard: no code path")

    starts = sum(s.get("interruptions", {}).get("task_starts", 0) for s in summaries)
    tasks = sum(s.get("interruptions", {}).get("tasks", 0) for s in summaries)

    def covers_every_task(i):
        """A layout's chain is the full suite when it killed every task once (or every task start)."""
        return bool(i) and i.get("total", 0) > 0 and (
            (i.get("scope") == "each task once" and i.get("total") == i.get("tasks"))
            or i.get("total") == i.get("task_starts"))
    # make chaos asks for a kill at every task (once): a subset (CHAOS_KILLS=N) is never full marks
    coverage_full = bool(summaries) and all(covers_every_task(s.get("interruptions")) for s in summaries)
    rows = []
    for s in summaries:
        a, i, b = s.get("availability", {}), s.get("interruptions", {}), s.get("bad_inputs", {})
        f = s.get("failure_handling", {})
        avail = (f"{a.get('ok')}/{a.get('total')} ({a.get('rate')} req/s over {a.get('seconds')} s)" if a else "not run")
        if not i:
            inter = "not run"
        elif i.get("total") == i.get("task_starts"):
            inter = f"{i.get('recovered')}/{i.get('total')} (every one of {i.get('task_starts')} task starts)"
        elif covers_every_task(i):
            inter = f"{i.get('recovered')}/{i.get('total')} (each of {i.get('tasks')} tasks once, of {i.get('task_starts')} task starts)"
        else:
            inter = f"{i.get('recovered')}/{i.get('total')} (kill points spread over {i.get('task_starts')} task starts)"
        rows.append(f"| {s['layout']} ({s.get('bed', 'fresh')} bed) | {avail} | {inter} "
                    f"| {b.get('clean', '-')}/{b.get('total', '-')} "
                    f"| {'OK' if 'failure_handling' in s and not f.get('problems') else ('FAILED: ' + '; '.join(f.get('problems', []))[:200] if 'failure_handling' in s else '-')} "
                    f"| {('OK' if not s['security'].get('problems') else 'FAILED') if 'security' in s else '-'} "
                    f"| {str(s['reference']['seconds']) + ' s' if 'reference' in s else '-'} |")
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = [
        f"Last run: {date}, {args.command}, {args.seconds // 60} min {args.seconds % 60} s, "
        f"output in `chaos/out/{os.path.basename(args.outdir.rstrip('/'))}/` (git-ignored).",
        "",
        "```",
        f"availability: {avail_ok}/{avail_total} requests",
        f"interruptions: {rec}/{rec_total}",
        f"bad inputs: {bad}/{bad_total}",
        "```",
        "",
        f"Interruption coverage: {rec_total} kill points; {tasks} tasks, {starts} task starts"
        + (": every task killed once." if coverage_full
           else ": **a subset, not the full suite** (`make chaos` asks for every task once)."),
        "",
        "| layout | availability (probe through the VIP) | interruptions | bad inputs | failure handling | security | reference run |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"- module kills (`apiserver_cert` SIGKILLed mid-write on a fixture tree): "
        + (f"pair intact after the next run {module_kill['pair_ok']}/{module_kill['total']}, no staged/backup file left "
           f"{module_kill['recovered_ok']}/{module_kill['total']}; killed with a swap journal on disk: "
           f"{module_kill['killed_mid_swap']}, pair mismatched right after the kill: {module_kill['mismatched_right_after_kill']}"
           if module_kill else "not run"),
        f"- TLS guard: {guard.splitlines()[-1] if guard else 'not run'}",
    ]
    for s in summaries:
        fh = s.get("failure_handling")
        if fh:
            block.append(f"- failure handling ({s['layout']}): playbook rc {fh.get('rc')}, probe {fh.get('probe_ok')}/{fh.get('probe_total')}; "
                         f"message: \"{fh.get('message', '')[:600]}\"")
    if args.doc and os.path.exists(args.doc):
        text = open(args.doc, encoding="utf-8").read()
        new = re.sub(r"(<!-- chaos:figures -->\n).*?(\n<!-- /chaos:figures -->)",
                     lambda m: m.group(1) + "\n".join(block) + m.group(2), text, flags=re.S)
        with open(args.doc, "w", encoding="utf-8") as handle:
            handle.write(new)
    print(f"failure handling: {'OK' if failure_ok and any('failure_handling' in s for s in summaries) else 'FAILED'}")
    print(f"module kills: {module_kill['recovered_ok']}/{module_kill['total']}" if module_kill else "module kills: not run")
    print(f"security: {'OK' if security_ok and guard_ok else 'FAILED'}")
    print(f"availability: {avail_ok}/{avail_total} requests")
    print(f"interruptions: {rec}/{rec_total}")
    print(f"bad inputs: {bad}/{bad_total}")
    if slow:
        print(f"probe rate below 10 req/s in: {', '.join(slow)}")
    print(f"interruption coverage: {rec_total} kill points; {tasks} tasks, {starts} task starts"
          + ("" if coverage_full else " (a subset: not the full suite)"))
    full = (coverage_full and not slow and avail_ok == avail_total > 0 and rec == rec_total > 0 and bad == bad_total > 0 and failure_ok
            and security_ok and mk_ok and guard_ok)
    return 0 if full else 1


if __name__ == "__main__":
    sys.exit(main())
