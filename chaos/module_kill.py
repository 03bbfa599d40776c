#!/usr/bin/env python3
"""Kill `apiserver_cert` in the middle of its own write, many times, on a fixture tree.

The module is run exactly as Ansible runs a binary module (argv[1] = JSON args file) with
`regenerate: always`, so every run swaps key and certificate. Each iteration SIGKILLs it after a
random delay spread over its whole run time (some kills land before the journal exists, some while
the staged pair is written, some between the key and the certificate renames). Then it records
whether the pair left on disk matched, runs the module again (as the next ansible-playbook run
would) and requires: the run succeeds, key and certificate match, the certificate chains to the CA
and carries every SAN, no journal or staged dot-file is left, the key is 0600.

A second mode stops the module with SIGSTOP as soon as its journal appears (the swap has started),
waits, then SIGKILLs it: the widest window in which a real crash can leave a half-done swap.

Prints `module kills: RECOVERED/TOTAL` and writes a JSON report. Key material is never printed."""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SANS_OLD = "DNS:kube-apiserver,DNS:kubernetes,DNS:kubernetes.default,DNS:localhost,IP:10.233.0.1,IP:127.0.0.1,IP:172.30.0.11"
SANS_NEW = ["kubernetes", "kubernetes.default", "localhost", "10.233.0.1", "127.0.0.1", "172.30.0.11",
            "172.30.0.10", "lb-apiserver.kubernetes.local"]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def fixture(root):
    ssl_dir = os.path.join(root, "ssl")
    os.makedirs(ssl_dir)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
            "-subj", "/CN=kubernetes", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign", cwd=ssl_dir)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
            "-subj", "/CN=kube-apiserver", cwd=ssl_dir)
    with open(os.path.join(ssl_dir, "ext.cnf"), "w", encoding="utf-8") as handle:
        handle.write(f"subjectAltName={SANS_OLD}\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                     "extendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n")
    openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "apiserver.crt", "-days", "365", "-extfile", "ext.cnf", cwd=ssl_dir)
    for name in ("apiserver.csr", "ext.cnf", "ca.srl"):
        if os.path.exists(os.path.join(ssl_dir, name)):
            os.remove(os.path.join(ssl_dir, name))
    os.chmod(os.path.join(ssl_dir, "apiserver.key"), 0o600)
    os.chmod(os.path.join(ssl_dir, "ca.key"), 0o600)
    return ssl_dir


def args_file(workdir, ssl_dir, regenerate):
    path = os.path.join(workdir, f"args-{regenerate}.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({
            "cert_path": os.path.join(ssl_dir, "apiserver.crt"), "key_path": os.path.join(ssl_dir, "apiserver.key"),
            "ca_cert_path": os.path.join(ssl_dir, "ca.crt"), "ca_key_path": os.path.join(ssl_dir, "ca.key"),
            "sans": SANS_NEW, "regenerate": regenerate, "backup": False,
            "_ansible_check_mode": False, "_ansible_diff": False, "_ansible_no_log": False,
            "_ansible_verbosity": 0, "_ansible_tmpdir": None}, handle)
    return path


def pair_state(ssl_dir):
    """(match, chains, sans_ok, mode_ok, leftovers) of the pair on disk."""
    crt, key, ca = (os.path.join(ssl_dir, n) for n in ("apiserver.crt", "apiserver.key", "ca.crt"))
    c = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"], capture_output=True, check=False)
    k = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], capture_output=True, check=False)
    match = c.returncode == 0 and k.returncode == 0 and c.stdout == k.stdout
    chains = subprocess.run(["openssl", "verify", "-CAfile", ca, crt], capture_output=True, check=False).returncode == 0
    sans = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-ext", "subjectAltName"],
                          capture_output=True, text=True, check=False).stdout
    sans_ok = "172.30.0.10" in sans and "lb-apiserver.kubernetes.local" in sans
    mode_ok = (os.stat(key).st_mode & 0o777) == 0o600
    leftovers = sorted(n for n in os.listdir(ssl_dir) if n.startswith(".") or n.endswith("~"))
    return match, chains, sans_ok, mode_ok, leftovers


def run_module(binary, args, timeout=60):
    proc = subprocess.run([binary, args], capture_output=True, text=True, timeout=timeout, check=False)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return {"failed": True, "msg": "non-JSON output", "rc": proc.returncode}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=None)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--stop-iterations", type=int, default=20)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    binary = args.binary
    if not binary:
        for cand in (os.path.join(REPO, "ansible/ansible_collections/kubeha/control_plane/plugins/modules/apiserver_cert"),
                     os.path.join(REPO, "target/debug/apiserver_cert")):
            if os.path.exists(cand):
                binary = cand
                break
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="kubeha-modkill-") as workdir:
        os.chmod(workdir, 0o700)
        ssl_dir = fixture(os.path.join(workdir, "tree"))
        always = args_file(workdir, ssl_dir, "always")
        normal = args_file(workdir, ssl_dir, "missing_sans")
        # calibrate: how long one complete swap takes
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            result = run_module(binary, always)
            times.append(time.monotonic() - t0)
            if result.get("failed"):
                print(f"module kills: calibration run failed: {result.get('msg')}")
                return 1
        span = max(times) * 1.2
        journal = None
        total = args.iterations + args.stop_iterations
        for i in range(total):
            mode = "kill" if i < args.iterations else "stop"
            proc = subprocess.Popen([binary, always], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            saw_journal = False
            if mode == "kill":
                time.sleep(rng.uniform(0, span))
            else:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and proc.poll() is None:
                    if any(n.endswith(".kubeha-swap.json") for n in os.listdir(ssl_dir)):
                        proc.send_signal(signal.SIGSTOP)
                        saw_journal = True
                        break
                time.sleep(rng.uniform(0, 0.05))
            exited_before_kill = proc.poll() is not None
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            names = os.listdir(ssl_dir)
            journal_left = any(n.endswith(".kubeha-swap.json") for n in names)
            match_after_kill = pair_state(ssl_dir)[0]
            again = run_module(binary, normal)
            match, chains, sans_ok, mode_ok, leftovers = pair_state(ssl_dir)
            pair_ok = (not again.get("failed")) and match and chains and sans_ok and mode_ok
            ok = pair_ok and not leftovers
            for name in leftovers:  # count each kill's own litter only (fixture tree)
                os.remove(os.path.join(ssl_dir, name))
            results.append({"i": i, "mode": mode, "exited_before_kill": exited_before_kill, "journal_seen": saw_journal,
                            "journal_left": journal_left, "pair_matched_after_kill": match_after_kill,
                            "rerun_failed": bool(again.get("failed")), "rerun_msg": again.get("msg") if again.get("failed") else None,
                            "recovered": again.get("recovered"), "match": match, "chains": chains, "sans_ok": sans_ok,
                            "key_0600": mode_ok, "leftovers": leftovers, "pair_ok": pair_ok, "ok": ok})
    good = sum(1 for r in results if r["ok"])
    pairs = sum(1 for r in results if r["pair_ok"])
    litter = sorted({re.sub(r"\d+", "<n>", n) for r in results for n in r["leftovers"]})
    summary = {
        "binary": binary, "seed": seed, "swap_seconds": [round(t, 3) for t in times], "total": len(results), "recovered_ok": good, "pair_ok": pairs,
        "leftover_patterns": litter, "runs_with_leftovers": sum(1 for r in results if r["leftovers"]),
        "killed_mid_swap": sum(1 for r in results if r["journal_left"]),
        "mismatched_right_after_kill": sum(1 for r in results if not r["pair_matched_after_kill"]),
        "exited_before_kill": sum(1 for r in results if r["exited_before_kill"]),
        "results": results,
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    print(f"module kills: key/cert pair intact after the next run {pairs}/{len(results)}; "
          f"no staged/backup file left {good}/{len(results)}" + (f" (left: {litter})" if litter else "") + "; "
          f"(killed mid-swap: {summary['killed_mid_swap']}, "
          f"pair mismatched right after the kill: {summary['mismatched_right_after_kill']}, "
          f"finished before the kill: {summary['exited_before_kill']})")
    return 0 if good == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
