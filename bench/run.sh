#!/usr/bin/env bash
# make bench: measure kubeha on the test bed and write docs/benchmarks.md (see that page).
# Every figure is a ratio or a count from this one run. Steps, on the shared test bed (held under
# flock /tmp/kubeha-testbed.lock for the whole run):
#   1. fresh unconverted bed (layout pinned: 3 masters, 2 workers): testbed/up.sh (destroys any bed first)
#   2. playbooks/convert.yml with the availability probe running (chaos/probe.py through the VIP)
#   3. floor A: only the restarts and waits that run made (bench/floor.py)
#   4. module cost on kubeha-master1 (bench/modcost.py)
#   5. playbooks/rollback.yml (back to the unconverted state), then the builtin-modules reference
#      bench/reference/convert-builtin.yml, then floor B
#   6. scale: fresh bed, 16 workers, worker phase with 2/8/16 workers and 4/20 forks (bench/scale.sh)
#   7. bench/report.py writes docs/benchmarks.md; the last line is the headline.
# BENCH_SKIP_SCALE=1 skips step 6 (the report then says so).
set -euo pipefail
cd "$(dirname "$0")/.."
W=build/bench
rm -rf "$W"
mkdir -p "$W"
install -d -m 0700 "$W/secrets"
export ANSIBLE_CONFIG=$PWD/ansible.cfg
# pipelining on for both playbooks (kubeha's builtin tasks and the reference), as a tuned setup
export ANSIBLE_PIPELINING=True ANSIBLE_FORCE_COLOR=0
export ANSIBLE_CALLBACK_PLUGINS=$PWD/bench/plugins/callback
export ANSIBLE_CALLBACKS_ENABLED=bench_timer,ansible.posix.profile_tasks
export PROFILE_TASKS_TASK_OUTPUT_LIMIT=all PROFILE_TASKS_SORT_ORDER=none
FORKS=20
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

exec 9>/tmp/kubeha-testbed.lock
echo "bench: waiting for the test-bed lock"
flock 9
echo "bench: lock held"
echo "{}" >"$W/walls.json"
run_t0=$(now)
# the machine is shared: the load averages at both ends of the run go into the report
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
echo "{\"start\": \"$(loadavg)\"}" >"$W/load.json"
wall() {  # wall <name> <seconds>
    python3 - "$W/walls.json" "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); d[sys.argv[2]] = float(sys.argv[3]); json.dump(d, open(sys.argv[1], "w"), indent=1)
EOF
}
run_play() {  # run_play <name> <inventory> <playbook> [args]: wall time of ansible-playbook
    local name=$1 inventory=$2 book=$3 t0 t1
    shift 3
    t0=$(now)
    if ! BENCH_TIMER_OUT=$PWD/$W/$name-timer.json .venv/bin/ansible-playbook -i "$inventory" -f $FORKS "$book" "$@" \
        >"$W/$name.log" 2>&1; then
        tail -60 "$W/$name.log"
        echo "bench: $name failed (log: $W/$name.log)" >&2
        exit 1
    fi
    t1=$(now)
    wall "$name" "$(elapsed "$t0" "$t1")"
    echo "bench: $name $(elapsed "$t0" "$t1") s"
}

echo "bench: 1/7 fresh test bed"
t0=$(now)
testbed/up.sh pinned >"$W/up.log" 2>&1 || { tail -40 "$W/up.log"; exit 1; }
wall testbed_up "$(elapsed "$t0" "$(now)")"
.venv/bin/python bench/inventory.py --layout pinned --out "$W/inventory.yml"
INV=$W/inventory.yml

echo "bench: 2/7 kubeha conversion with the availability probe"
(umask 077 && docker exec kubeha-master1 cat /etc/kubernetes/admin.conf >"$W/secrets/admin.conf")
.venv/bin/python chaos/probe.py --kubeconfig "$W/secrets/admin.conf" --endpoint 172.30.0.10:6443 \
    --tls-server-name kubernetes --rate 10 --max-seconds 1800 --out "$W/probe.json" >"$W/probe.log" 2>&1 &
probe_pid=$!
sleep 2
run_play kubeha "$INV" playbooks/convert.yml
sleep 2
kill -TERM "$probe_pid"
wait "$probe_pid" || true
cat "$W/probe.log"

echo "bench: 3/7 floor A (the same restarts and waits, nothing else)"
t0=$(now)
.venv/bin/python bench/floor.py --timer "$W/kubeha-timer.json" --inventory "$INV" --out "$W/floor-a.json"

echo "bench: 4/7 module cost (kubeha-master1)"
.venv/bin/python bench/modcost.py --inventory "$INV" --host kubeha-master1 --n 20 --rss-runs 5 \
    --workdir "$W" --out "$W/modcost.json" | tee "$W/modcost.txt"

echo "bench: 5/7 rollback, builtin-modules reference, floor B"
run_play rollback "$INV" playbooks/rollback.yml
run_play reference "$INV" bench/reference/convert-builtin.yml
.venv/bin/python bench/floor.py --timer "$W/kubeha-timer.json" --inventory "$INV" --out "$W/floor-b.json"

if [[ ${BENCH_SKIP_SCALE:-0} != 1 ]]; then
    echo "bench: 6/7 scale (fresh bed, up to 16 workers)"
    testbed/up.sh pinned >>"$W/up.log" 2>&1 || { tail -40 "$W/up.log"; exit 1; }
    # a scale failure (e.g. no room for 14 more containers) must not throw away the figures above
    ANSIBLE_CALLBACKS_ENABLED=bench_timer bench/scale.sh "$W" ||
        echo "bench: scale step failed (log above); the report has no scale figures" >&2
fi
rm -rf "$W/secrets"
wall total "$(elapsed "$run_t0" "$(now)")"
python3 - "$W/load.json" "$(loadavg)" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); d["end"] = sys.argv[2]; json.dump(d, open(sys.argv[1], "w"), indent=1)
EOF

echo "bench: 7/7 report"
.venv/bin/python bench/report.py --workdir "$W" --out docs/benchmarks.md
