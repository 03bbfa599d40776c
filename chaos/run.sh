#!/usr/bin/env bash
# make chaos: kubeha's reliability suites (docs/reliability.md).
#   chaos/tls-guard.sh        no code path disables TLS verification
#   chaos/module_kill.py      apiserver_cert SIGKILLed mid-write on a fixture tree, then re-run
#   chaos/suite.py LAYOUT     per test-bed layout: bad inputs, reference run + security checks,
#                             failure handling, interruption chain, availability probe throughout
# Environment: CHAOS_LAYOUTS (default "pinned kubespray"), CHAOS_KILLS (kill points per layout:
# 0 = every task of the conversion once, at its first start (default); -1 = every task start, serial
# batches counted apart; N = N points spread over the run), CHAOS_BAD_INPUT_LAYOUTS (layouts that run the bad-input
# suite, default: all of CHAOS_LAYOUTS), CHAOS_KILL_RANGE=A-B (only the A-th to B-th kill points: a
# segment of the chain; chaos/figures.py sums the segments of a layout run apart and counts the full
# suite only when they cover every task), CHAOS_MODULE_KILLS (default 60), CHAOS_REUSE_BED=1 (no
# fresh bring-up: the running bed of that layout, rolled back first with playbooks/rollback.yml).
# The test bed is shared: everything that touches it runs under flock /tmp/kubeha-testbed.lock.
# Output: chaos/out/<UTC stamp>/ (git-ignored), with run.json (command, seconds, commit);
# chaos/keep.py copies its summaries to chaos/results/ so that segments of different sessions add up.
# Ends with exactly one line per suite:
#   availability: OK/TOTAL requests / interruptions: RECOVERED/TOTAL / bad inputs: CLEAN/TOTAL
set -uo pipefail
cd "$(dirname "$0")/.."
layouts=${CHAOS_LAYOUTS:-pinned kubespray}
bad_layouts=${CHAOS_BAD_INPUT_LAYOUTS:-$layouts}
kills=${CHAOS_KILLS:-0}
reuse=; [[ ${CHAOS_REUSE_BED:-0} == 1 ]] && reuse=1
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=chaos/out/$stamp
mkdir -p "$out" && chmod 700 "$out"
py=.venv/bin/python
start=$SECONDS
status=0

chaos/tls-guard.sh | tee "$out/tls-guard.txt" || status=1
$py chaos/module_kill.py --iterations "${CHAOS_MODULE_KILLS:-60}" --stop-iterations 20 --out "$out/module-kill.json" \
    | tee "$out/module-kill.txt" || status=1

for layout in $layouts; do
    bad=no; [[ " $bad_layouts " == *" $layout "* ]] && bad=yes
    flock /tmp/kubeha-testbed.lock $py chaos/suite.py --layout "$layout" --workdir "$out/$layout" \
        --kills "$kills" --bad-inputs "$bad" ${reuse:+--no-up --rollback-first} 2>&1 | tee "$out/$layout.log"
    [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
done

knobs="CHAOS_LAYOUTS=\"$layouts\" CHAOS_KILLS=$kills${CHAOS_KILL_RANGE:+ CHAOS_KILL_RANGE=$CHAOS_KILL_RANGE} CHAOS_BAD_INPUT_LAYOUTS=\"$bad_layouts\" CHAOS_MODULE_KILLS=${CHAOS_MODULE_KILLS:-60}${reuse:+ CHAOS_REUSE_BED=1}"
# what produced this directory, so that chaos/figures.py can sum it with later invocations (and
# chaos/keep.py can keep it in chaos/results/ across machines) without being told again
$py - "$out/run.json" "\`$knobs chaos/run.sh\` (\`make chaos\` with these knobs)" $((SECONDS - start)) \
    "$(git describe --always --dirty 2>/dev/null || echo unknown)" <<'PY'
import json, sys
path, command, seconds, commit = sys.argv[1:]
with open(path, "w", encoding="utf-8") as handle:
    json.dump({"command": command, "seconds": int(seconds), "commit": commit}, handle)
PY
$py chaos/figures.py "$out" --doc docs/reliability.md || status=1
exit $status
