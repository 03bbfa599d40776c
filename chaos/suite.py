#!/usr/bin/env python3
"""kubeha chaos suites on one test-bed layout (chaos/run.sh calls this once per layout).

  1. bring the test bed up (testbed/up.sh LAYOUT), capture its initial state S0
  2. bad inputs (chaos/badinputs.py): each case fails clearly and changes nothing
  3. reference run: playbooks/convert.yml uninterrupted, the availability probe through the VIP
     the whole time; its task list (kubeha_chaos callback) gives the task boundaries; security
     checks on what it wrote and printed
  4. reset to S0 (playbooks/rollback.yml, checked byte for byte: a difference fails the run, and the
     suites go on from a fresh test bed)
  5. failure handling: a certificate the CA did not sign is put on master 2 right after its
     certificate task: the play must restore master 2's originals, stop before master 3, say so,
     and the other masters keep serving (probe)
  6. interruptions: a chain of runs, run i SIGKILLed (whole process group) at its k_i-th task start;
     after each kill: invariants (every apiserver UP behind the VIP, every master's key/cert pair
     matching and chaining to the CA, nothing stray in /etc/kubernetes/manifests) and the probe;
     run i runs the phases from the one run i-1 was killed in (--tags; the earlier ones are done);
     then a last run must converge to the same final state as the reference run (the same change
     of every file except new certificates and backups, same change of the ConfigMaps' data,
     same SANs, modes and owners)

Writes DIR/summary.json and prints per-suite figures. Exit 0 only when every check passed."""

import argparse
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaoslib as C  # noqa: E402
from chaoslib import log  # noqa: E402

PLAYBOOK = "playbooks/convert.yml"
# The probe must keep at least this rate over every run (issue: at least 10 authenticated GETs/s).
MIN_RATE = 10.0
PREFLIGHT_PLAY = re.compile(r"preflight|inventory groups", re.I)


class Probes:
    """Accumulates every probe report of the layout."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.reports = []

    def start(self, name):
        return C.Probe(self.workdir, name)

    def stop(self, probe, name):
        report = probe.stop()
        report["name"] = name
        self.reports.append(report)
        failures = report["failures"]
        log(f"probe {name}: {report['ok']}/{report['total']} OK at {report['rate_achieved']} req/s"
            + (f"; failures: {failures[:5]}" if failures else ""))
        if report["rate_achieved"] < MIN_RATE:
            log(f"probe {name}: rate {report['rate_achieved']} req/s is below {MIN_RATE}: availability not proven")
        return report


def bring_up(layout):
    log(f"bringing up the test bed, layout {layout}")
    start = time.time()
    proc = subprocess.run([os.path.join(C.REPO, "testbed", "up.sh"), layout], cwd=C.REPO, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"testbed/up.sh {layout} failed (rc {proc.returncode})")
    if not C.wait_all_up(240):
        raise SystemExit("test bed up, but not every apiserver is UP behind the VIP")
    log(f"test bed up in {time.time() - start:.0f} s")


def reset_to(s0, inventory, workdir, layout):
    """rollback.yml back to S0; verified byte for byte (files) and by data (ConfigMaps)."""
    out = os.path.join(workdir, "rollback.out")
    rc, secs = C.run_playbook("playbooks/rollback.yml", inventory, out)
    problems = [] if rc == 0 else [f"rollback.yml rc {rc}"]
    if rc == 0:
        C.wait_all_up()
        now = C.state_capture()
        problems += C.diff_snapshots(s0["files"], now["files"])
        problems += [f"ConfigMap {k} data differs" for k in s0["configmaps"] if s0["configmaps"][k] != now["configmaps"][k]]
    log(f"rollback.yml: rc {rc} in {secs:.0f} s; " + ("state == S0 byte for byte" if not problems else f"differs: {problems[:6]}"))
    if problems:
        log("rollback did not return to S0: bringing the test bed up again")
        bring_up(layout)
        return C.state_capture(), {"rollback_ok": False, "rollback_problems": problems[:20]}
    return s0, {"rollback_ok": True, "rollback_seconds": round(secs, 1)}


# ------------------------------------------------------------------------------------------------
def files_under(top):
    """Every file below `top`, at any depth."""
    return [p for p in glob.glob(os.path.join(top, "**", "*"), recursive=True) if os.path.isfile(p)]


def security_checks(workdir):
    """Key files 0600 root; no key material or embedded client cert in anything the runs printed
    or wrote (ansible outputs, task logs, probe reports, the JSON report, emulator and pod logs,
    names of backups/originals). Returns a list of problems (paths only)."""
    problems = []
    # -I: text files only. Keys and kubeconfigs are PEM/YAML text; the module binaries cached under
    # /var/lib/kubeha/modules (0700, executables) carry OpenSSL's PEM marker strings, not keys
    mode_script = r"""
for f in $(grep -rIlE 'PRIVATE KEY|client-key-data' /etc/kubernetes /etc/ssl/etcd /var/lib/kubeha /root/.kube /var/lib/kubelet/pki 2>/dev/null); do
  echo "$(stat -c '%a %U %G' "$f") $f"
done
"""
    checked = 0
    for host in C.NODES:
        for line in C.sh(host, mode_script).stdout.splitlines():
            mode, owner, group, path = line.split(" ", 3)
            checked += 1
            if mode != "600" or owner != "root":
                problems.append(f"{host}:{path} holds key material with mode {mode} owner {owner}:{group}")
    # needles: pieces of every private key and embedded client cert/key on the bed (memory only)
    needles = set()
    needle_script = r"""
import base64, glob, os, re, sys, yaml
out = set()
def chunks(b64):
    b64 = re.sub(r"\s+", "", b64)
    for i in range(0, max(len(b64) - 48, 1), max(len(b64) // 4, 48)):
        if len(b64[i:i + 48]) == 48:
            out.add(b64[i:i + 48])
for top in ("/etc/kubernetes", "/etc/ssl/etcd", "/root/.kube", "/var/lib/kubelet/pki"):
    for root, dirs, files in os.walk(top):
        for n in files:
            p = os.path.join(root, n)
            try:
                t = open(p, encoding="utf-8", errors="replace").read()
            except OSError:
                continue
            for m in re.finditer(r"-----BEGIN [A-Z ]*PRIVATE KEY-----(.*?)-----END", t, re.S):
                chunks(m.group(1))
            for m in re.finditer(r"(client-key-data|client-certificate-data):\s*(\S+)", t):
                chunks(m.group(2))
                try:
                    inner = base64.b64decode(m.group(2)).decode("ascii", "replace")
                    for mm in re.finditer(r"-----BEGIN [A-Z ]+-----(.*?)-----END", inner, re.S):
                        chunks(mm.group(1))
                except ValueError:
                    pass
for p in glob.glob("/etc/kubernetes/tokens.csv") + glob.glob("/var/run/secrets/kubernetes.io/serviceaccount/token"):
    for line in open(p):
        tok = line.split(",")[0].strip()
        if len(tok) >= 16:
            out.add(tok)
print("\n".join(sorted(out)))
"""
    for host in C.NODES:
        needles |= set(C.sh(host, "python3 -c " + shlex.quote(needle_script)).stdout.split())
    # collect what the emulators and pods logged, and the names of kubeha's originals/backups
    logs_dir = os.path.join(workdir, "host-logs")
    os.makedirs(logs_dir, exist_ok=True)
    for host in C.NODES + [C.LB]:
        proc = subprocess.run(["docker", "exec", host, "bash", "-c",
                               "cd / && tar -cf - var/log/kubeha 2>/dev/null; true"], capture_output=True, check=False)
        with open(os.path.join(logs_dir, f"{host}.tar"), "wb") as handle:
            handle.write(proc.stdout)
        names = C.sh(host, "find /var/lib/kubeha /etc/kubernetes -printf '%p %m %u\\n' 2>/dev/null; true").stdout
        with open(os.path.join(logs_dir, f"{host}.names"), "w", encoding="utf-8") as handle:
            handle.write(names)
    scanned = []
    generic = re.compile(rb"PRIVATE KEY-----|client-key-data:\s*[A-Za-z0-9+/=]{16}|client-certificate-data:\s*[A-Za-z0-9+/=]{16}")
    # everything the runs wrote, and kubeha's report with all else under reports/ (the bed's health
    # reports sit in a folder there)
    files = [p for p in files_under(workdir) if not p.endswith("probe-admin.conf")]
    files += files_under(os.path.join(C.REPO, "reports"))
    for path in files:
        with open(path, "rb") as handle:
            data = handle.read()
        scanned.append(path)
        if generic.search(data):
            problems.append(f"{path}: key material or embedded client cert pattern")
        text = data.decode("latin-1")
        for needle in needles:
            if needle in text:
                problems.append(f"{path}: contains a piece of a private key / client cert / token from the bed")
                break
    log(f"security: {checked} files with key material checked for 0600 root; {len(scanned)} outputs/logs "
        f"({sum(os.path.getsize(p) for p in scanned) // 1024} KiB) scanned against {len(needles)} secret pieces")
    return problems, {"key_files_checked": checked, "outputs_scanned": len(scanned), "needles": len(needles)}


# ------------------------------------------------------------------------------------------------
def rogue_pair_cmd(host):
    """Shell (run on the controller) that puts a key/cert pair the cluster CA did NOT sign in place
    of apiserver.crt/key on `host`, key first, each by rename (the apiserver then serves it)."""
    ip = C.IPS[host]
    inner = (
        "set -e; d=$(mktemp -d /root/chaos-rogue.XXXX); cd $d; "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout k -out c -days 1 -subj /CN=kube-apiserver "
        f"-addext subjectAltName=DNS:kubernetes,DNS:{host},IP:{ip},IP:172.30.0.10,IP:127.0.0.1 2>/dev/null; "
        "chmod 600 k; S=/etc/kubernetes/ssl; cp -p k $S/.chaos-rogue.key; cp -p c $S/.chaos-rogue.crt; "
        "mv $S/.chaos-rogue.key $S/apiserver.key; mv $S/.chaos-rogue.crt $S/apiserver.crt; cd /; rm -rf $d")
    return f"docker exec {host} bash -c {shlex.quote(inner)}"


def failure_handling(inventory, workdir, probes, s0):
    victim, after = "kubeha-master2", "kubeha-master3"
    problems = []
    probe = probes.start("failure")
    out = os.path.join(workdir, "failure.out")
    tasklog = os.path.join(workdir, "failure.tasks")
    rc, secs = C.run_playbook(PLAYBOOK, inventory, out, extra=["-e", "kubeha_apiserver_ready_timeout=30"],
                              tasklog=tasklog, inject_after=f"Master certs | apiserver certificate@{victim}",
                              inject_cmd=rogue_pair_cmd(victim))
    C.wait_all_up()
    time.sleep(3)
    report = probes.stop(probe, "failure")
    with open(out, encoding="utf-8") as handle:
        text = handle.read()
    injected = any("INJECT rc=0" in "\t".join(l) for l in C.tasklog_lines(tasklog))
    if not injected:
        problems.append("the fault was not injected")
    if rc == 0:
        problems.append("the playbook succeeded although master 2's apiserver served a certificate the CA did not sign")
    msg = re.sub(r"\s+", " ", text[text.find("kubeha stopped at master"):][:1500]) if "kubeha stopped at master" in text else ""
    for rx in (rf"kubeha stopped at master {victim}", r"Restored", r"apiserver\.crt", r"apiserver\.key", r"ready again"):
        if not re.search(rx, msg):
            problems.append(f"failure message lacks /{rx}/")
    files = C.snapshot_files([victim, after])
    for path in ("/etc/kubernetes/ssl/apiserver.crt", "/etc/kubernetes/ssl/apiserver.key", "/etc/kubernetes/kubeadm-config.yaml"):
        if files[victim].get(path) != s0["files"][victim].get(path):
            problems.append(f"{victim}:{path} not restored to its original")
    changed_after = C.diff_snapshots({after: s0["files"][after]}, {after: files[after]})
    if changed_after:
        problems.append(f"{after} was changed: the play did not stop before the next master: {changed_after[:6]}")
    problems += C.invariants(C.manifests_now(), final=True)
    if report["failed"]:
        problems.append(f"probe: {report['failed']} failed requests")
    log(f"failure handling: rc {rc} in {secs:.0f} s; message: {msg[:400]}")
    return problems, {"rc": rc, "seconds": round(secs, 1), "message": msg[:1500], "probe_ok": report["ok"],
                      "probe_total": report["total"]}


# The conversion's phases in playbook order: (tags of playbooks/convert.yml, its plays' names).
# Plays tagged `always` (inventory groups, resume, preflight) run in every run whatever --tags says.
PHASES = [
    (("vip",), re.compile(r"\| VIP, one master at a time|\| preflight again, through the VIP")),
    (("masters",), re.compile(r"\| masters, one at a time")),
    (("workers",), re.compile(r"\| workers in batches")),
    (("configmaps", "kube_proxy"), re.compile(r"\| cluster ConfigMaps")),
    (("local_proxy",), re.compile(r"\| remove kubespray's local proxy")),
    (("verify", "report"), re.compile(r"\| verify every host")),
    (("drill",), re.compile(r"\| failover drill")),
    (("report",), re.compile(r"\| report$")),
]


def phase_of(play):
    """Index in PHASES of the play's phase; -1 for the plays every run runs (preflight, resume)."""
    return next((i for i, (_, rx) in enumerate(PHASES) if rx.search(play)), -1)


def resume_tags(previous_kill_play):
    """--tags for the run after a run killed in `previous_kill_play`: that phase and every later
    one. The killed run had completed every earlier phase (plays run in order; a phase it skipped
    itself had been completed by an earlier run, by the same argument), so re-running them would
    only find them done. None (a full run) when the kill was in the always-run plays. The final run
    of the chain is always a full run, compared with the reference run's final state."""
    first = phase_of(previous_kill_play) if previous_kill_play else -1
    if first < 0:
        return None
    return sorted({tag for tags, _ in PHASES[first:] for tag in tags})


def interruption_chain(inventory, workdir, probes, kill_points, ref_initial, s_ref, s0, ref_tasks):
    """s0: the initial state of this bed; ref_initial/s_ref: the reference run's initial and final.
    Run i starts at the phase where run i-1 was killed (resume_tags): the phases before it are
    done, and skipping them saves their time in every later run of the chain."""
    results = []
    previous_play = None
    for i, k in enumerate(kill_points, 1):
        name = f"kill{i:02d}-at{k}"
        tasklog = os.path.join(workdir, f"{name}.tasks")
        probe = probes.start(name)
        # the boundary of the reference run: the occurrence-th start of (play, task), which a re-run
        # reaches at another index (it skips what an earlier run finished)
        play, task = ref_tasks[k - 1][1], ref_tasks[k - 1][2]
        occurrence = sum(1 for l in ref_tasks[:k] if (l[1], l[2]) == (play, task))
        tags = resume_tags(previous_play)
        rc, secs = C.run_playbook(PLAYBOOK, inventory, os.path.join(workdir, f"{name}.out"), tasklog=tasklog,
                                  kill_task=(occurrence, play, task),
                                  extra=["--tags", ",".join(tags)] if tags else ())
        busy = C.wait_remote_modules_gone()
        problems = [f"remote modules still running on {busy}"] if busy else []
        problems += C.invariants(s0["manifests"])
        report = probes.stop(probe, name)
        if report["failed"]:
            problems.append(f"probe: {report['failed']} failed requests")
        admin = C.haproxy_state(admin=True)
        drained = [h for h in C.MASTERS if admin.get(h, ("", ""))[1] != "READY"]
        killed = [l for l in C.tasklog_lines(tasklog) if l[-1] == "KILL"]
        where = f"{killed[0][1]} / {killed[0][2]}" if killed else "(not killed)"
        if not killed:
            # never counted as a recovered kill: this boundary was not interrupted
            problems.append(f"not killed: the run (rc {rc}) never started occurrence {occurrence} of '{task}'")
        results.append({"kill_at": k, "rc": rc, "seconds": round(secs, 1), "task": where, "problems": problems,
                        "left_drained": drained, "boundary": [play, task], "tags": tags or "all"})
        previous_play = killed[0][1] if killed else previous_play
        log(f"interruption {i}/{len(kill_points)}: killed at task {k} [{where}] rc {rc} after {secs:.0f} s; "
            + ("invariants OK" if not problems else f"PROBLEMS: {problems}"))
    # the run after the last kill must converge
    probe = probes.start("converge")
    rc, secs = C.run_playbook(PLAYBOOK, inventory, os.path.join(workdir, "converge.out"),
                              tasklog=os.path.join(workdir, "converge.tasks"))
    report = probes.stop(probe, "converge")
    final = C.state_capture()
    final_problems = [] if rc == 0 else [f"final run rc {rc}"]
    final_problems += C.compare_final(ref_initial, s_ref, s0, final)
    final_problems += C.invariants(s0["manifests"], final=True)
    if report["failed"]:
        final_problems.append(f"probe: {report['failed']} failed requests")
    log(f"interruptions: final run rc {rc} in {secs:.0f} s; "
        + ("same final state as the reference run" if not final_problems else f"PROBLEMS: {final_problems[:10]}"))
    recovered = sum(1 for r in results if not r["problems"]) if not final_problems else 0
    return recovered, results, final_problems


def choose_kill_points(ref_tasks, count):
    """Task-start indexes (1-based, of the reference run) to kill at.

    count == 0: every task of the conversion once (the issue's "each task, once"): the first start
    of every (play, task) of the reference run. A task that a serial play runs once per master
    (or a loop of includes runs once per node) is one task; its first start is the one on the
    first master or node, and the chain's re-runs pass its later starts on their way.
    count < 0: every task start, serial batches and included tasks counted separately (each
    occurrence is a kill point; about 2.5 times as many).
    count > 0: `count` points spread evenly over the task starts after the read-only preflight
    (where state can change), plus the first and the last."""
    total = len(ref_tasks)
    if count < 0:
        return list(range(1, total + 1))
    if count == 0:
        seen = set()
        points = []
        for index, line in enumerate(ref_tasks, 1):
            key = (line[1], line[2])
            if key not in seen:
                seen.add(key)
                points.append(index)
        return points
    first_change = next((int(l[0]) for l in ref_tasks if l[0].isdigit() and not PREFLIGHT_PLAY.search(l[1])), 1)
    if count >= total - first_change + 1:
        return list(range(1, total + 1))
    span = total - first_change
    points = sorted({first_change + round(j * span / (count - 1)) for j in range(count)})
    return points


def select_range(text, total):
    """'A-B' -> (A, B), 1-based and inclusive, within 1..total."""
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)) <= total:
        raise SystemExit(f"--kill-range / CHAOS_KILL_RANGE={text!r}: expected A-B with 1 <= A <= B <= {total} "
                         f"(the number of kill points)")
    return int(match.group(1)), int(match.group(2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--kills", type=int, default=int(os.environ.get("CHAOS_KILLS", "0")),
                        help="kill points (0 = every task once, its first start; -1 = every task start; N = N spread points)")
    parser.add_argument("--kill-range", default=os.environ.get("CHAOS_KILL_RANGE", ""),
                        help="A-B: only the A-th to B-th of the kill points (1-based, inclusive), a segment of the "
                             "chain; segments of one layout run apart are summed by chaos/figures.py")
    parser.add_argument("--bad-inputs", choices=["yes", "no"], default="yes")
    parser.add_argument("--failure", choices=["yes", "no"], default="yes")
    parser.add_argument("--conversion", choices=["yes", "no"], default="yes",
                        help="no: only the bad-input suite (no reference run, failure handling, interruptions)")
    parser.add_argument("--no-up", action="store_true", help="use the running test bed (no fresh bring-up)")
    parser.add_argument("--rollback-first", action="store_true",
                        help="with --no-up: run playbooks/rollback.yml first (a bed an earlier run converted)")
    args = parser.parse_args()
    if args.kill_range:
        select_range(args.kill_range, 10 ** 9)  # the form now; the bounds once the kill points are known
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    os.chmod(workdir, 0o700)
    summary = {"layout": args.layout, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    ok = True
    if not args.no_up:
        bring_up(args.layout)
    inventory = C.write_inventory(args.layout, os.path.join(workdir, "inventory.yml"))
    summary["bed"] = "fresh" if not args.no_up else ("reused, rolled back" if args.rollback_first else "reused")
    if args.rollback_first:
        rc, secs = C.run_playbook("playbooks/rollback.yml", inventory, os.path.join(workdir, "rollback-first.out"))
        log(f"rollback.yml of the reused bed: rc {rc} in {secs:.0f} s")
        if rc != 0 or not C.wait_all_up():
            raise SystemExit("the reused bed could not be rolled back; bring up a fresh one")
    s0 = C.state_capture()
    s0["manifests"] = C.manifests_now()
    probes = Probes(workdir)

    if args.bad_inputs == "yes":
        log("bad-input suite")
        proc = subprocess.run([sys.executable, os.path.join(C.CHAOS, "badinputs.py"), "--inventory", inventory,
                               "--workdir", os.path.join(workdir, "badinputs"), "--label", f" ({args.layout})"]
                              + (["--cases", os.path.join(C.CHAOS, "badinputs-kubeadm.yml")] if args.layout == "kubeadm" else []),
                              text=True, check=False)
        with open(os.path.join(workdir, "badinputs", "badinputs.json"), encoding="utf-8") as handle:
            bad = json.load(handle)
        summary["bad_inputs"] = {"clean": sum(r["clean"] for r in bad), "total": len(bad)}
        ok &= proc.returncode == 0
        now = C.state_capture()
        drift = C.diff_snapshots(s0["files"], now["files"])
        if drift:
            log(f"bed drifted during the bad-input suite: {drift[:10]}")
            ok = False

    if args.conversion == "no":
        summary["ok"] = bool(ok)
        summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(os.path.join(workdir, "summary.json"), "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
        log(f"layout {args.layout}: bad inputs {summary.get('bad_inputs', {}).get('clean', '-')}/"
            f"{summary.get('bad_inputs', {}).get('total', '-')} (no conversion suites in this run)")
        return 0 if ok else 1

    log("reference run (uninterrupted) with the probe")
    probe = probes.start("reference")
    reflog = os.path.join(workdir, "reference.tasks")
    rc, secs = C.run_playbook(PLAYBOOK, inventory, os.path.join(workdir, "reference.out"), tasklog=reflog)
    report = probes.stop(probe, "reference")
    ref_tasks = C.tasklog_lines(reflog)
    log(f"reference run: rc {rc} in {secs:.0f} s, {len(ref_tasks)} task starts")
    if rc != 0:
        raise SystemExit(f"the reference conversion failed (rc {rc}); see {workdir}/reference.out")
    s_ref = C.state_capture()
    # the suite runs over SSH as the sudo user, as operators do: every kubeha module call must take
    # the action plugin's cached-binary path (it warns when it falls back to a copy per call)
    fell_back = C.fast_path_fallbacks(os.path.join(workdir, "reference.out"))
    summary["reference"] = {"rc": rc, "seconds": round(secs, 1), "task_starts": len(ref_tasks),
                            "fast_path_fallbacks": len(fell_back)}
    if fell_back:
        ok = False
        log(f"TRANSPORT: {len(fell_back)} kubeha module call(s) fell back to a copy per call, first: {fell_back[0]}")
    sec_problems, sec_info = security_checks(workdir)
    summary["security"] = dict(sec_info, problems=sec_problems)
    ok &= not sec_problems
    for p in sec_problems:
        log(f"SECURITY: {p}")

    s0_kept = s0
    s0, reset_info = reset_to(s0, inventory, workdir, args.layout)
    s0.setdefault("manifests", C.manifests_now())
    summary["reset_after_reference"] = reset_info
    # rollback.yml's promise is the state before kubeha, byte for byte: a difference is a failure
    # even though the chain then goes on from a new bed
    ok &= reset_info["rollback_ok"]
    if s0 is not s0_kept:
        # a fresh bed: the reference delta is still comparable (same hosts, IPs, layout)
        s0["manifests"] = C.manifests_now()

    if args.failure == "yes":
        log("failure handling: a certificate the CA did not sign on kubeha-master2")
        f_problems, f_info = failure_handling(inventory, workdir, probes, s0)
        summary["failure_handling"] = dict(f_info, problems=f_problems)
        ok &= not f_problems
        for p in f_problems:
            log(f"FAILURE HANDLING: {p}")

    kill_points = choose_kill_points(ref_tasks, args.kills)
    all_points = len(kill_points)
    segment = None
    if args.kill_range:
        first, last = select_range(args.kill_range, all_points)
        kill_points = kill_points[first - 1:last]
        segment = {"from": first, "to": last, "of": all_points}
    task_keys = sorted({(l[1], l[2]) for l in ref_tasks})
    tasks = len(task_keys)
    log(f"interruption chain: {len(kill_points)} kill points"
        + (f" (points {segment['from']}-{segment['to']} of {all_points})" if segment else "")
        + f" ({tasks} tasks, {len(ref_tasks)} task starts): {kill_points}")
    recovered, results, final_problems = interruption_chain(inventory, workdir, probes, kill_points, s0_kept, s_ref, s0,
                                                            ref_tasks)
    scope = ("each task once" if args.kills == 0 else "every task start" if args.kills < 0 or len(kill_points) == len(ref_tasks)
             else "a subset")
    if segment:
        scope += f", segment {segment['from']}-{segment['to']} of {all_points} points"
    summary["interruptions"] = {"recovered": recovered, "total": len(kill_points), "task_starts": len(ref_tasks),
                                "tasks": tasks, "scope": scope, "kills": results, "final_problems": final_problems,
                                "segment": segment, "task_keys": [list(k) for k in task_keys]}
    ok &= recovered == len(kill_points)
    if s0 is not s0_kept:
        log("note: the chain ran on a fresh test bed; compared by per-file change against the reference run")

    total = sum(r["total"] for r in probes.reports)
    good = sum(r["ok"] for r in probes.reports)
    seconds = sum(r["seconds"] for r in probes.reports)
    summary["availability"] = {"ok": good, "total": total, "seconds": round(seconds, 1),
                               "rate": round(total / seconds, 2) if seconds else 0,
                               "failures": [f for r in probes.reports for f in r["failures"]][:50],
                               "per_run": [{k: r[k] for k in ("name", "ok", "total", "rate_achieved", "seconds")}
                                           for r in probes.reports]}
    slow = [r["name"] for r in probes.reports if r["rate_achieved"] < MIN_RATE]
    summary["availability"]["below_min_rate"] = slow
    ok &= good == total and not slow
    summary["ok"] = bool(ok)
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(os.path.join(workdir, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    log(f"layout {args.layout}: availability {good}/{total}, interruptions {recovered}/{len(kill_points)}, "
        f"bad inputs {summary.get('bad_inputs', {}).get('clean', '-')}/{summary.get('bad_inputs', {}).get('total', '-')}, "
        f"failure handling {'OK' if not summary.get('failure_handling', {}).get('problems') else 'FAILED'}, "
        f"rollback {'OK' if reset_info['rollback_ok'] else 'FAILED'}, "
        f"security {'OK' if not sec_problems else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
