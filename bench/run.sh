#!/usr/bin/env bash
# make bench: measure kubeha on the test bed and write docs/benchmarks.md (see that page).
# Every figure is a ratio or a count from this one run. Ansible reaches the nodes over SSH as the
# bed's login user with sudo (bench/inventory.py), as every test does. Steps, on the shared test bed
# (held under flock /tmp/kubeha-testbed.lock for the whole run):
#   1. fresh unconverted bed (layout pinned: 3 masters, 2 workers): testbed/up.sh (destroys any bed first)
#   2. playbooks/convert.yml with the availability probe running (chaos/probe.py through the VIP);
#      every remote command and upload counted per host (bench_timer's byte log, bench/transport.py)
#   3. floor A: only the restarts and waits that run made (bench/floor.py)
#   4. module cost on kubeha-master1 (bench/modcost.py)
#   5. playbooks/rollback.yml (back to the unconverted state), then the builtin-modules reference
#      bench/reference/convert-builtin.yml (counted too), then floor B
#   6. added latency: fresh bed, every SSH connection through bench/latency_proxy.py (20 ms more
#      round-trip time; this kernel has no netem): convert (counted, with the probe as in 2), module
#      cost per call, rollback, reference
#   7. scale: fresh bed, 16 workers, worker phase with 2/8/16 workers and 4/20 forks (bench/scale.sh)
#   8. bench/report.py writes docs/benchmarks.md; the last line is the headline.
# BENCH_SKIP_SCALE=1 skips step 7, BENCH_SKIP_LATENCY=1 step 6 (the report then says so).
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
ADDED_RTT_MS=20
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
    # every kubeha module call over SSH must take the action plugin's cached binary
    if grep -q "kubeha fast path not used" "$W/$name.log"; then
        grep -m3 "kubeha fast path not used" "$W/$name.log"
        echo "bench: $name fell back to Ansible's copy per call (log: $W/$name.log)" >&2
        exit 1
    fi
}
counted_play() {  # counted_play <name> <inventory> <playbook> [args]: run_play, every byte sent counted
    local name=$1
    rm -f "$W/$name-bytes.jsonl"
    BENCH_BYTES_OUT=$PWD/$W/$name-bytes.jsonl run_play "$@"
    if [[ ! -s $W/$name-bytes.jsonl ]]; then
        echo "bench: $name: the byte counter saw no remote command (bench_timer did not wrap the connection)" >&2
        exit 1
    fi
    .venv/bin/python bench/transport.py --bytes "$W/$name-bytes.jsonl" --json "$W/$name-transport.json" --inventory "$2"
}

echo "bench: 1/8 fresh test bed"
t0=$(now)
testbed/up.sh pinned >"$W/up.log" 2>&1 || { tail -40 "$W/up.log"; exit 1; }
wall testbed_up "$(elapsed "$t0" "$(now)")"
.venv/bin/python bench/inventory.py --layout pinned --out "$W/inventory.yml"
INV=$W/inventory.yml

# probed_conversion <name> <inventory>: convert.yml, counted, with the availability probe running
# (both conversions carry the same probe load, so that their times compare)
probed_conversion() {
    local name=$1 inventory=$2 probe_pid
    (umask 077 && docker exec kubeha-master1 cat /etc/kubernetes/admin.conf >"$W/secrets/admin.conf")
    .venv/bin/python chaos/probe.py --kubeconfig "$W/secrets/admin.conf" --endpoint 172.30.0.10:6443 \
        --tls-server-name kubernetes --rate 10 --max-seconds 1800 --out "$W/probe-$name.json" >"$W/probe-$name.log" 2>&1 &
    probe_pid=$!
    sleep 2
    counted_play "$name" "$inventory" playbooks/convert.yml
    sleep 2
    kill -TERM "$probe_pid"
    wait "$probe_pid" || true
    cat "$W/probe-$name.log"
}

echo "bench: 2/8 kubeha conversion with the availability probe"
probed_conversion kubeha "$INV"

echo "bench: 3/8 floor A (the same restarts and waits, nothing else)"
t0=$(now)
.venv/bin/python bench/floor.py --timer "$W/kubeha-timer.json" --inventory "$INV" --out "$W/floor-a.json"

echo "bench: 4/8 module cost (kubeha-master1)"
.venv/bin/python bench/modcost.py --inventory "$INV" --host kubeha-master1 --n 20 --rss-runs 5 \
    --workdir "$W" --out "$W/modcost.json" | tee "$W/modcost.txt"

echo "bench: 5/8 rollback, builtin-modules reference, floor B"
run_play rollback "$INV" playbooks/rollback.yml
counted_play reference "$INV" bench/reference/convert-builtin.yml
.venv/bin/python bench/floor.py --timer "$W/kubeha-timer.json" --inventory "$INV" --out "$W/floor-b.json"

if [[ ${BENCH_SKIP_LATENCY:-0} != 1 ]]; then
    echo "bench: 6/8 ${ADDED_RTT_MS} ms added round-trip time (fresh bed, SSH through bench/latency_proxy.py)"
    testbed/up.sh pinned >>"$W/up.log" 2>&1 || { tail -40 "$W/up.log"; exit 1; }
    .venv/bin/python bench/inventory.py --layout pinned --added-rtt-ms "$ADDED_RTT_MS" --out "$W/inventory-rtt.yml"
    probed_conversion kubeha-rtt "$W/inventory-rtt.yml"
    .venv/bin/python bench/modcost.py --inventory "$W/inventory-rtt.yml" --host kubeha-master1 --n 10 --timing-only \
        --workdir "$W/rtt" --out "$W/modcost-rtt.json" | tee "$W/modcost-rtt.txt"
    run_play rollback-rtt "$W/inventory-rtt.yml" playbooks/rollback.yml
    counted_play reference-rtt "$W/inventory-rtt.yml" bench/reference/convert-builtin.yml
fi

if [[ ${BENCH_SKIP_SCALE:-0} != 1 ]]; then
    echo "bench: 7/8 scale (fresh bed, up to 16 workers)"
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

echo "bench: 8/8 report"
.venv/bin/python bench/report.py --workdir "$W" --out docs/benchmarks.md
