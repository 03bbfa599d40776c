#!/usr/bin/env python3
"""Bad-input suite: every case of chaos/badinputs.yml must fail with a clear message (all `expect`
regexes found in the failure message) and change nothing (files under /etc/kubernetes,
/root/.kube and /root/chaos-fixtures on every node, every ConfigMap's resourceVersion).

    chaos/badinputs.py --inventory INV --workdir DIR [--only REGEX]

Prints one line per case and `bad inputs: CLEAN/TOTAL`; writes DIR/badinputs.json."""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaoslib as C  # noqa: E402

SNAP = C.SNAP_DIRS + ["/root/chaos-fixtures"]


def run_module_case(case, inventory, workdir, idx):
    task = {"name": "chaos case", f"kubeha.control_plane.{case['module']}": case["args"]}
    if case.get("become_user"):
        task.update({"become": True, "become_user": case["become_user"]})
    play = [{"name": "chaos bad input", "hosts": case["host"], "gather_facts": False, "tasks": [task]}]
    path = os.path.join(workdir, f"case-{idx:02d}.yml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(play, handle, sort_keys=False)
    out = os.path.join(workdir, f"case-{idx:02d}.out")
    rc, secs = C.run_playbook(os.path.relpath(path, C.REPO), inventory, out, stdout_callback="ansible.posix.json",
                              timeout=600)
    with open(out, encoding="utf-8") as handle:
        text = handle.read()
    try:
        data = json.loads(text[text.index("{"):])
        result = data["plays"][0]["tasks"][0]["hosts"][case["host"]]
    except (ValueError, KeyError, IndexError):
        return rc, False, f"no result in ansible output (rc {rc})", secs
    return rc, bool(result.get("failed")), str(result.get("msg", "")), secs


def run_raw_case(case, workdir, idx):
    binary = os.path.join(C.MODULES_DIR, case["module"])
    host = case["host"]
    args = dict(case["args"], _ansible_check_mode=False, _ansible_diff=False, _ansible_no_log=False,
                _ansible_verbosity=0, _ansible_tmpdir=None)
    start = time.time()
    # through `docker exec -i` (not `docker cp`: /tmp in the containers is a tmpfs mount, which
    # `docker cp` does not see; it writes under it into the image layer)
    with open(binary, "rb") as handle:
        subprocess.run(["docker", "exec", "-i", host, "sh", "-c", "cat > /tmp/chaos-module"], stdin=handle,
                       check=True, capture_output=True)
    C.sh(host, "chmod 0755 /tmp/chaos-module && cat > /tmp/chaos-args.json && chmod 0644 /tmp/chaos-args.json",
         stdin=json.dumps(args))
    proc = C.sh(host, "/tmp/chaos-module /tmp/chaos-args.json", check=False, user=case.get("user"))
    C.sh(host, "rm -f /tmp/chaos-module /tmp/chaos-args.json", check=False)
    with open(os.path.join(workdir, f"case-{idx:02d}.out"), "w", encoding="utf-8") as handle:
        handle.write(proc.stdout + proc.stderr)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, False, f"non-JSON module output (rc {proc.returncode})", time.time() - start
    return proc.returncode, bool(result.get("failed")), str(result.get("msg", "")), time.time() - start


def run_playbook_case(case, inventory, workdir, idx):
    out = os.path.join(workdir, f"case-{idx:02d}.out")
    extra = ["-e", json.dumps(case["extra"])] if case.get("extra") else []
    rc, secs = C.run_playbook("playbooks/convert.yml", inventory, out, extra=extra, timeout=900)
    with open(out, encoding="utf-8") as handle:
        text = handle.read()
    # the failure messages: everything from the first failed host result on
    marks = [m.start() for m in re.finditer(r"^(fatal|failed): ", text, re.M)]
    message = text[marks[0]:] if marks else ""
    return rc, rc != 0 and bool(marks), message, secs


def save_results(workdir, results):
    with open(os.path.join(workdir, "badinputs.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--only", default=None, help="regex on case names")
    parser.add_argument("--label", default="")
    parser.add_argument("--cases", default=os.path.join(C.CHAOS, "badinputs.yml"),
                        help="the case table (chaos/badinputs-kubeadm.yml for the kubeadm layout)")
    args = parser.parse_args()
    with open(args.cases, encoding="utf-8") as handle:
        table = yaml.safe_load(handle)
    cases = [c for c in table["cases"] if not args.only or re.search(args.only, c["name"])]
    os.makedirs(args.workdir, exist_ok=True)
    results = []
    save_results(args.workdir, results)  # a run with no case still leaves its (empty) results
    for idx, case in enumerate(cases, 1):
        problems = []
        C.wait_all_up()
        # ConfigMaps before the setup: a setup may take the API away (etcd without quorum, a
        # stopped apiserver); the setup itself changes none, and they are read again after teardown
        # (configmaps_after_setup: a setup that edits a ConfigMap itself, put back by the teardown:
        # the ConfigMaps are compared from after the setup to before the teardown instead)
        after_setup = case.get("configmaps_after_setup", False)
        cms_before = None if after_setup else C.snapshot_configmaps()
        cms_after = None
        try:
            for step in case.get("setup") or []:
                C.sh(step["host"], step["script"])
            if after_setup:
                cms_before = C.snapshot_configmaps()
            files_before = C.snapshot_files(C.NODES, SNAP)
            try:
                if case["kind"] == "module":
                    rc, failed, msg, secs = run_module_case(case, args.inventory, args.workdir, idx)
                elif case["kind"] == "raw":
                    rc, failed, msg, secs = run_raw_case(case, args.workdir, idx)
                else:
                    rc, failed, msg, secs = run_playbook_case(case, args.inventory, args.workdir, idx)
            except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                # a harness error is this case's failure (DIRTY), not the end of the suite
                rc, failed, msg, secs = None, False, f"harness error: {error}", 0.0
                problems.append(f"harness error: {error}")
            files_after = C.snapshot_files(C.NODES, SNAP)
            if after_setup:
                cms_after = C.snapshot_configmaps()
        finally:
            for step in case.get("teardown") or []:
                C.sh(step["host"], step["script"], check=False)
        C.wait_all_up()
        if not after_setup:
            cms_after = C.snapshot_configmaps()
        if not failed:
            problems.append("did not fail")
        missing = [rx for rx in case.get("expect", []) if not re.search(rx, msg, re.I)]
        if missing:
            problems.append(f"message lacks {missing}")
        changed = C.diff_snapshots(files_before, files_after) + C.diff_configmaps(cms_before, cms_after)
        if changed:
            problems.append(f"changed: {changed[:6]}")
        clean = not problems
        short = re.sub(r"\s+", " ", msg)[:300]
        results.append({"name": case["name"], "kind": case["kind"], "clean": clean, "seconds": round(secs, 1),
                        "problems": problems, "message": short})
        print(f"  bad input {idx:2d} {'CLEAN' if clean else 'DIRTY'} {case['name']} ({secs:.0f} s)"
              + ("" if clean else f": {problems}"), flush=True)
        if not clean:
            print(f"      message: {short}", flush=True)
        # after every case: the results so far survive a crash of the harness
        save_results(args.workdir, results)
    good = sum(r["clean"] for r in results)
    print(f"bad inputs{args.label}: {good}/{len(results)}")
    return 0 if good == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
