#!/usr/bin/env python3
"""Keep what chaos/figures.py needs from a run's raw output (chaos/out/<stamp>/, git-ignored, 0700,
holding the probe's copy of admin.conf) in chaos/results/<stamp>/, to be committed: the full suite of
both layouts takes more than one working session and the raw output does not outlive the machine, so
segments run in different sessions are summed from the kept summaries.

Kept: run.json (what chaos/run.sh ran, how long, at which commit), tls-guard.txt, module-kill.json and
each layout's summary.json. Nothing else: the ansible outputs, task logs and emulator logs stay in
chaos/out/. Refuses when a kept file holds key material or embedded client credentials (the suites'
security scan already checks every output; this is the last gate before a commit)."""

import argparse
import glob
import json
import os
import re
import shutil
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SECRET = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|client-key-data|client-certificate-data"
                    r"|-----BEGIN CERTIFICATE-----")


def kept_files(outdir):
    """(source, path relative to the kept directory) of every file to keep; run.json first."""
    files = [(os.path.join(outdir, "run.json"), "run.json")]
    for name in ("tls-guard.txt", "module-kill.json"):
        if os.path.exists(os.path.join(outdir, name)):
            files.append((os.path.join(outdir, name), name))
    for summary in sorted(glob.glob(os.path.join(outdir, "*", "summary.json"))):
        files.append((summary, os.path.relpath(summary, outdir)))
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", nargs="+", help="chaos/out/<stamp> directories written by chaos/run.sh")
    parser.add_argument("--results", default=RESULTS, help="where to keep them (default: chaos/results)")
    args = parser.parse_args()
    for outdir in args.outdir:
        stamp = os.path.basename(outdir.rstrip("/"))
        dest = os.path.join(args.results, stamp)
        if not os.path.exists(os.path.join(outdir, "run.json")):
            sys.exit(f"{outdir}: no run.json (chaos/run.sh writes it at the end of a run); write "
                     f'{{"command": ..., "seconds": ..., "commit": ...}} there by hand for an older run')
        files = kept_files(outdir)
        if not any(rel.endswith("summary.json") for _, rel in files):
            sys.exit(f"{outdir}: no <layout>/summary.json: not a finished chaos run")
        for source, _ in files:
            with open(source, encoding="utf-8") as handle:
                hit = SECRET.search(handle.read())
            if hit:
                sys.exit(f"{source}: holds {hit.group(0)!r}; not keeping key material or credentials")
        if os.path.exists(dest):
            sys.exit(f"{dest} exists already; remove it to keep {outdir} again")
        for source, rel in files:
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            if rel == "run.json":
                with open(source, encoding="utf-8") as handle:
                    info = json.load(handle)
                info["kept_from"] = f"chaos/out/{stamp}"
                with open(os.path.join(dest, rel), "w", encoding="utf-8") as handle:
                    json.dump(info, handle, indent=1)
                    handle.write("\n")
            else:
                shutil.copyfile(source, os.path.join(dest, rel))
        print(f"kept {len(files)} files of {outdir} in {os.path.relpath(dest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
