#!/usr/bin/env python3
"""Sum the per-layout summaries of a chaos run, record the figures in docs/reliability.md (between
the `chaos:figures` markers) and print exactly one line per suite, last:
    availability: OK/TOTAL requests
    interruptions: RECOVERED/TOTAL
    bad inputs: CLEAN/TOTAL
Exit 1 unless every suite (and failure handling, rollback, module kills, security) has full marks on both
layouts of the test bed.

Several output directories (each with its run.json from chaos/run.sh, or --seconds and --command in
the same order) are summed as one run, raw ones in chaos/out/ or the summaries chaos/keep.py kept in
chaos/results/ (the raw output does not outlive the machine): the full suite of both layouts takes longer than one working session here, so each layout
can run as its own `make chaos` invocation and be recorded together. A layout may appear in several
directories only as segments of its interruption chain (CHAOS_KILL_RANGE), with the same reference
task list and no overlap; its coverage is full when the segments' kill points together hit every task
of the conversion once."""

import argparse
import glob
import json
import os
import re
import sys
import time

# the test bed's layouts (testbed/up.sh): the issue asks for the whole conversion on both
BED_LAYOUTS = ("pinned", "kubespray")


def covers_every_task(i):
    """One chain is the full suite when it killed every task once (or every task start)."""
    return bool(i) and i.get("total", 0) > 0 and (
        (i.get("scope") == "each task once" and i.get("total") == i.get("tasks"))
        or i.get("total") == i.get("task_starts"))


def layout_covers_every_task(group):
    """One chain that covers every task, or segments whose boundaries together are every task."""
    if len(group) == 1 and not group[0].get("interruptions", {}).get("segment"):
        return covers_every_task(group[0].get("interruptions"))
    chains = [s.get("interruptions") or {} for s in group]
    if not all(c.get("segment") for c in chains):
        return False
    hit = {tuple(k["boundary"]) for c in chains for k in c.get("kills", []) if k.get("boundary")}
    wanted = {tuple(k) for k in chains[0].get("task_keys", [])}
    return bool(wanted) and hit == wanted


def layout_coverage(group):
    """One layout's coverage in words, for a run that is not the full suite."""
    if layout_covers_every_task(group):
        return "every task killed once"
    spans = sorted((c["segment"]["from"], c["segment"]["to"], c["segment"]["of"])
                   for c in (s.get("interruptions") or {} for s in group) if c.get("segment"))
    if spans:
        return "segments " + ", ".join(f"{a}-{b}" for a, b, _ in spans) + f" of {spans[0][2]} kill points"
    return f"{sum((s.get('interruptions') or {}).get('total', 0) for s in group)} kill points"


def segment_problem(group):
    """Why the summaries of one layout cannot be summed (None when they can)."""
    if len(group) == 1:
        return None
    chains = [s.get("interruptions") or {} for s in group]
    if not all(c.get("segment") for c in chains):
        return "only segments of one chain (CHAOS_KILL_RANGE) may be summed; record one run per layout"
    if len({json.dumps(c.get("task_keys")) for c in chains}) != 1:
        return "their reference runs have different task lists, so their segments do not add up"
    if len({c["segment"]["of"] for c in chains}) != 1:
        return "their chains have different numbers of kill points"
    spans = sorted((c["segment"]["from"], c["segment"]["to"]) for c in chains)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        if start <= end:
            return f"segments overlap ({spans})"
    return None


def rollback_cell(summary):
    """The doc table's word for rollback.yml after the reference run: OK (byte for byte), FAILED with
    the first differences, or - when the run had no conversion."""
    reset = summary.get("reset_after_reference")
    if not reset:
        return "-"
    if reset.get("rollback_ok"):
        return f"OK ({reset.get('rollback_seconds', '?')} s)"
    return "FAILED: " + "; ".join(reset.get("rollback_problems", []))[:200]


def run_info(outdir):
    """What chaos/run.sh recorded about the invocation that wrote OUTDIR ({} when it did not)."""
    path = os.path.join(outdir, "run.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("outdir", nargs="+")
    parser.add_argument("--seconds", type=int, action="append", default=None,
                        help="wall time of each OUTDIR's run (once per OUTDIR, same order)")
    parser.add_argument("--doc", default=None)
    parser.add_argument("--command", action="append", default=None,
                        help="what produced each OUTDIR, as recorded in the doc (once per OUTDIR, same order)")
    args = parser.parse_args()
    if (args.seconds and len(args.seconds) != len(args.outdir)) or (args.command and len(args.command) != len(args.outdir)):
        parser.error(f"{len(args.outdir)} output directories need as many --seconds and --command "
                     f"(got {len(args.seconds or [])} and {len(args.command or [])})")
    # chaos/run.sh records what produced each directory in run.json; --seconds/--command override it
    runs_info = [run_info(outdir) for outdir in args.outdir]
    seconds = args.seconds or [r.get("seconds", 0) for r in runs_info]
    commands = args.command or [r.get("command", "`make chaos` (`chaos/run.sh`)") for r in runs_info]
    summaries, guards, module_kill = [], [], None
    for outdir in args.outdir:
        for path in sorted(glob.glob(os.path.join(outdir, "*", "summary.json"))):
            with open(path, encoding="utf-8") as handle:
                summaries.append(json.load(handle))
        mk_path = os.path.join(outdir, "module-kill.json")
        if os.path.exists(mk_path):
            with open(mk_path, encoding="utf-8") as handle:
                one = json.load(handle)
            if module_kill is None:
                module_kill = dict.fromkeys(("total", "pair_ok", "recovered_ok", "killed_mid_swap",
                                             "mismatched_right_after_kill"), 0)
            for key in module_kill:
                module_kill[key] += one[key]
        path = os.path.join(outdir, "tls-guard.txt")
        guards.append(open(path, encoding="utf-8").read().strip() if os.path.exists(path) else "not run")
    by_layout = {}
    for s in summaries:
        by_layout.setdefault(s["layout"], []).append(s)
    for layout, group in by_layout.items():
        problem = segment_problem(group)
        if problem:
            parser.error(f"layout {layout} appears in {len(group)} output directories: {problem}")

    avail_ok = sum(s.get("availability", {}).get("ok", 0) for s in summaries)
    avail_total = sum(s.get("availability", {}).get("total", 0) for s in summaries)
    rec = sum(s.get("interruptions", {}).get("recovered", 0) for s in summaries)
    rec_total = sum(s.get("interruptions", {}).get("total", 0) for s in summaries)
    bad = sum(s.get("bad_inputs", {}).get("clean", 0) for s in summaries)
    bad_total = sum(s.get("bad_inputs", {}).get("total", 0) for s in summaries)
    failure_ok = all(not s.get("failure_handling", {}).get("problems") for s in summaries if "failure_handling" in s)
    security_ok = all(not s.get("security", {}).get("problems") for s in summaries)
    # rollback.yml after the reference run must give back the bed's initial state byte for byte
    rollback_failed = [s["layout"] + (f" (kill points {s['interruptions']['segment']['from']}-"
                                      f"{s['interruptions']['segment']['to']})"
                                      if s.get("interruptions", {}).get("segment") else "")
                       for s in summaries if s.get("reset_after_reference", {}).get("rollback_ok") is False]
    rollback_verdict = "FAILED in " + ", ".join(rollback_failed) if rollback_failed else "OK"
    slow = [f"{s['layout']}:{n}" for s in summaries for n in s.get("availability", {}).get("below_min_rate", [])]
    mk_ok = bool(module_kill) and module_kill["recovered_ok"] == module_kill["total"]
    guard_ok = all(g.startswith("tls-guard: no code path") for g in guards)
    guard = guards[-1]

    # a layout's tasks and task starts once, however many segments ran it
    starts = sum(g[0].get("interruptions", {}).get("task_starts", 0) for g in by_layout.values())
    tasks = sum(g[0].get("interruptions", {}).get("tasks", 0) for g in by_layout.values())
    # make chaos asks for a kill at every task (once): a subset (CHAOS_KILLS=N) is never full marks
    coverage_full = bool(summaries) and all(layout_covers_every_task(g) for g in by_layout.values())
    # one layout's full chain is not the full suite: say which layout is still to run
    missing = [layout for layout in BED_LAYOUTS if layout not in by_layout]
    coverage_note = (": every task killed once" if coverage_full
                     else ": **a subset, not the full suite** (`make chaos` asks for every task once; "
                     + "; ".join(f"{layout}: {layout_coverage(g)}" for layout, g in by_layout.items()) + ")")
    if missing:
        coverage_note += (f"; **layouts not run: {', '.join(missing)}** (`make chaos` runs "
                          f"{' and '.join(BED_LAYOUTS)})")
    rows = []
    for s in summaries:
        a, i, b = s.get("availability", {}), s.get("interruptions", {}), s.get("bad_inputs", {})
        f = s.get("failure_handling", {})
        avail = (f"{a.get('ok')}/{a.get('total')} ({a.get('rate')} req/s over {a.get('seconds')} s)" if a else "not run")
        if not i:
            inter = "not run"
        elif i.get("total") == i.get("task_starts"):
            inter = f"{i.get('recovered')}/{i.get('total')} (every one of {i.get('task_starts')} task starts)"
        elif i.get("segment"):
            g = i["segment"]
            inter = (f"{i.get('recovered')}/{i.get('total')} (segment: kill points {g['from']}-{g['to']} of {g['of']}, "
                     f"each task once; {i.get('tasks')} tasks, {i.get('task_starts')} task starts)")
        elif covers_every_task(i):
            inter = f"{i.get('recovered')}/{i.get('total')} (each of {i.get('tasks')} tasks once, of {i.get('task_starts')} task starts)"
        else:
            inter = f"{i.get('recovered')}/{i.get('total')} (kill points spread over {i.get('task_starts')} task starts)"
        rows.append(f"| {s['layout']} ({s.get('bed', 'fresh')} bed) | {avail} | {inter} "
                    f"| {b.get('clean', '-')}/{b.get('total', '-')} "
                    f"| {'OK' if 'failure_handling' in s and not f.get('problems') else ('FAILED: ' + '; '.join(f.get('problems', []))[:200] if 'failure_handling' in s else '-')} "
                    f"| {rollback_cell(s)} "
                    f"| {('OK' if not s['security'].get('problems') else 'FAILED') if 'security' in s else '-'} "
                    f"| {str(s['reference']['seconds']) + ' s' if 'reference' in s else '-'} |")
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs = []
    for outdir, secs, command, info in zip(args.outdir, seconds, commands, runs_info):
        at = f" at commit {info['commit']}" if info.get("commit") else ""
        # a directory chaos/keep.py wrote (kept_from) is in the repository, not a run's raw output
        where = (f"summaries kept in `{outdir.rstrip('/')}/`" if "kept_from" in info else
                 f"output in `chaos/out/{os.path.basename(outdir.rstrip('/'))}/` (git-ignored)")
        runs.append(f"{command}{at}, {secs // 60} min {secs % 60} s, {where}")
    block = [
        (f"Last run: {date}, {runs[0]}." if len(runs) == 1 else
         f"Last run: recorded {date}, {len(runs)} invocations summed as one run: "
         + "; ".join(f"({n}) {r}" for n, r in enumerate(runs, 1)) + "."),
        "",
        "```",
        f"availability: {avail_ok}/{avail_total} requests",
        f"interruptions: {rec}/{rec_total}",
        f"bad inputs: {bad}/{bad_total}",
        "```",
        "",
        f"Interruption coverage: {rec_total} kill points; {tasks} tasks, {starts} task starts{coverage_note}.",
        "",
        "| layout | availability (probe through the VIP) | interruptions | bad inputs | failure handling | rollback to the initial state | security | reference run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"- module kills (`apiserver_cert` SIGKILLed mid-write on a fixture tree): "
        + (f"pair intact after the next run {module_kill['pair_ok']}/{module_kill['total']}, no staged/backup file left "
           f"{module_kill['recovered_ok']}/{module_kill['total']}; killed with a swap journal on disk: "
           f"{module_kill['killed_mid_swap']}, pair mismatched right after the kill: {module_kill['mismatched_right_after_kill']}"
           if module_kill else "not run"),
        f"- TLS guard: {guard.splitlines()[-1] if guard else 'not run'}",
        f"- rollback.yml after each reference run, byte for byte to the initial state: "
        + (f"**{rollback_verdict}**" if rollback_failed else rollback_verdict),
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
    print(f"rollback: {rollback_verdict}")
    print(f"security: {'OK' if security_ok and guard_ok else 'FAILED'}")
    if slow:
        print(f"probe rate below 10 req/s in: {', '.join(slow)}")
    print(f"interruption coverage: {rec_total} kill points; {tasks} tasks, {starts} task starts"
          + ("" if coverage_full else " (a subset: not the full suite)")
          + (f" (layouts not run: {', '.join(missing)})" if missing else ""))
    # the contract: the output ends with exactly these three lines
    print(f"availability: {avail_ok}/{avail_total} requests")
    print(f"interruptions: {rec}/{rec_total}")
    print(f"bad inputs: {bad}/{bad_total}")
    full = (coverage_full and not missing and not slow and avail_ok == avail_total > 0 and rec == rec_total > 0 and bad == bad_total > 0 and failure_ok
            and not rollback_failed and security_ok and mk_ok and guard_ok)
    return 0 if full else 1


if __name__ == "__main__":
    sys.exit(main())
