#!/usr/bin/env python3
"""Judge a conversion's report (reports/kubeha-report.json) against the pins planted on the test
bed (issue #18): the scan found every planted pin before the conversion, none of them is left after
it, none of the pins kubeha fixes is left, and the verdict says nothing is pinned.

    scripts/pins_check.py REPORT PIN_NAME...     (PIN_NAME as the report's accept_as)

Prints one line per finding; exit 0 when everything holds."""

import json
import sys


def judge(report, planted):
    """The problems (an empty list when the report shows what it must)."""
    problems = []
    before = {p["accept_as"] for p in report.get("pins_before", []) if not p.get("local_by_design")}
    after = [p for p in report.get("pins_after", []) if not p.get("local_by_design")]
    missing = [name for name in planted if name not in before]
    if missing:
        problems.append("the scan before the conversion did not find: " + ", ".join(missing))
    left = sorted({p["accept_as"] for p in after if p["accept_as"] in planted})
    if left:
        problems.append("still pinned after the conversion: " + ", ".join(left))
    unfixed = sorted({p["accept_as"] for p in after if p.get("fixed_by_kubeha")})
    if unfixed:
        problems.append("pins kubeha fixes are still there: " + ", ".join(unfixed))
    verdict = report.get("verdict") or {}
    if verdict.get("nothing_pinned") is not True:
        problems.append(f"verdict: {verdict}")
    return problems


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        report = json.load(handle)
    problems = judge(report, argv[2:])
    for line in problems:
        print(line)
    if not problems:
        before = [p for p in report["pins_before"] if not p.get("local_by_design")]
        print(f"{len(before)} pins before ({len(argv) - 2} planted, all found), none left after")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
