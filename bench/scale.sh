#!/usr/bin/env bash
# Scale benchmark (docs/benchmarks.md): the worker phase of playbooks/convert.yml with 2, 8 and 16
# workers, and 16 workers with fewer forks. Called by bench/run.sh while it holds the test-bed lock,
# on a fresh unconverted bed (testbed/up.sh). Adds kubeha-worker3..16 (same image and container
# options as molecule's, network kubeha, 172.30.0.30+), installs them with the test bed's own
# installer (testbed/install/site.yml, worker part; idempotent for the existing hosts), and removes
# them at the end (also on failure).
#   bench/scale.sh <workdir>      writes <workdir>/scale-*.json (bench_timer) and scale.json
# BENCH_SCALE_RUNS="w2-f20 w8-f20 w16-f20 w16-f4 w16-f20-s20" (the default) picks the runs; the first
# three are always made (they are the scale figure), the last two only when named.
set -euo pipefail
# an unexpected exit names its line (a silent exit under set -e once cost a whole bench run)
trap 'echo "scale: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
W=${1:?workdir}
MAX=16
image=$(docker inspect -f '{{.Config.Image}}' kubeha-master1)
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_PIPELINING=True
export ANSIBLE_CALLBACK_PLUGINS=$PWD/bench/plugins/callback ANSIBLE_CALLBACKS_ENABLED=bench_timer
# the same /etc/hosts records molecule gives the bed's containers (etc_hosts of the scenario)
add_hosts=$(.venv/bin/python -c '
import yaml
p = yaml.safe_load(open("molecule/pinned/molecule.yml"))["platforms"][0]
print(" ".join("--add-host=%s:%s" % kv for kv in (p.get("etc_hosts") or {}).items()))')
extra=()
for i in $(seq 3 $MAX); do extra+=("kubeha-worker$i"); done

# systemd in each container takes 7 inotify instances, counted per user for the whole machine
# (fs.inotify.max_user_instances, 128 by default): 20 containers need 140. When the limit is below what
# the bed plus the new workers need, raise it for the duration of this step (root only) and put the old
# value back at the end: it only matters when a container starts.
inotify=/proc/sys/fs/inotify/max_user_instances
inotify_old=$(cat "$inotify")
inotify_in_use() {  # find exits non-zero when a process vanishes under it: not an error here
    (find /proc/*/fd -lname 'anon_inode:inotify' 2>/dev/null || true) | wc -l
}
inotify_used=$(inotify_in_use)
inotify_need=$((inotify_used + 7 * ${#extra[@]} + 32))
if (( inotify_old < inotify_need )); then
    if echo "$inotify_need" >"$inotify" 2>/dev/null; then
        echo "scale: fs.inotify.max_user_instances raised from $inotify_old to $inotify_need for this step" \
             "($inotify_used in use, 7 per new container); restored at the end"
    else
        echo "scale: fs.inotify.max_user_instances is $inotify_old, $inotify_used in use, this step needs" \
             "$inotify_need and cannot raise it (not root?): the new workers' systemd will not start" >&2
        exit 1
    fi
fi

cleanup() {
    docker rm -f "${extra[@]}" >/dev/null 2>&1 || true
    if [[ $(cat "$inotify") != "$inotify_old" ]]; then echo "$inotify_old" >"$inotify" || true; fi
}
trap cleanup EXIT

echo "scale: adding ${#extra[@]} worker containers ($image)"
for i in $(seq 3 $MAX); do
    name=kubeha-worker$i
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker run -d --name "$name" --hostname "$name" --label kubeha_layout=pinned --label kubeha_bench=scale \
        --network kubeha --ip "172.30.0.$((30 + i - 3))" $add_hosts \
        --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SYS_PTRACE --security-opt seccomp=unconfined \
        --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw -e container=docker \
        --tmpfs /run --tmpfs /run/lock --tmpfs /tmp:exec --stop-signal SIGRTMIN+3 \
        "$image" /lib/systemd/systemd >/dev/null
done

# If a container's systemd exits at once all the same (another user of inotify instances started
# meanwhile), say so here instead of failing later in the install.
sleep 5
stopped=$(for name in "${extra[@]}"; do
    [[ $(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null) == true ]] || echo "$name"
done)
if [[ -n $stopped ]]; then
    echo "scale: $(echo "$stopped" | wc -l) of ${#extra[@]} worker containers exited at start: $(echo $stopped)" >&2
    echo "scale: inotify instances in use on this machine: $(inotify_in_use)" \
         "of fs.inotify.max_user_instances=$(cat /proc/sys/fs/inotify/max_user_instances)" >&2
    exit 1
fi

# the new workers are reached as the bed's own nodes are: SSH as the login user with sudo (a new key
# for the whole bed, host keys read out of band; testbed/bed.py ssh-access)
access=()
for i in $(seq 3 $MAX); do access+=(--extra "kubeha-worker$i=172.30.0.$((30 + i - 3))"); done
.venv/bin/python testbed/bed.py ssh-access pinned "${access[@]}"

inv() {   # inv <file> <comma-separated workers>
    .venv/bin/python bench/inventory.py --workers $MAX --only-workers "$2" --out "$1"
}
all=$(printf 'kubeha-worker%d,' $(seq 1 $MAX))
w2=kubeha-worker1,kubeha-worker2
w8=$(printf 'kubeha-worker%d,' $(seq 3 10))
inv "$W/inv-scale-all.yml" "$all"
inv "$W/inv-scale-2.yml" "$w2"
inv "$W/inv-scale-8.yml" "$w8"
inv "$W/inv-scale-10.yml" "$w2,$w8"

scale_start=$(date -u '+%Y-%m-%d %H:%M UTC')
scale_load_start=$(cut -d' ' -f1-3 /proc/loadavg)
start=$SECONDS
echo "scale: installing the new workers (testbed/install/site.yml)"
.venv/bin/ansible-playbook -i "$W/inv-scale-all.yml" -f 20 testbed/install/site.yml >"$W/scale-install.log" 2>&1 \
    || { tail -30 "$W/scale-install.log"; exit 1; }
echo "scale: install took $((SECONDS - start)) s"

play() {   # play <tag> <inventory> <forks> <playbook> [args]
    local tag=$1 inventory=$2 forks=$3 book=$4
    shift 4
    local t0 t1
    t0=$(date +%s.%N)
    BENCH_TIMER_OUT=$W/scale-$tag.json .venv/bin/ansible-playbook -i "$inventory" -f "$forks" "$book" "$@" \
        >"$W/scale-$tag.log" 2>&1 || { tail -40 "$W/scale-$tag.log"; exit 1; }
    t1=$(date +%s.%N)
    echo "scale: $tag $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s"
}

# masters (and workers 1-2) converted by a full run; the worker phase of that run is the 2-worker point
play w2-f20 "$W/inv-scale-2.yml" 20 playbooks/convert.yml -e kubeha_worker_serial=100%
play w8-f20 "$W/inv-scale-8.yml" 20 playbooks/convert.yml --tags workers -e kubeha_worker_serial=100%
play rb-a "$W/inv-scale-10.yml" 20 playbooks/rollback.yml --tags workers
play w16-f20 "$W/inv-scale-all.yml" 20 playbooks/convert.yml --tags workers -e kubeha_worker_serial=100%
want() { [[ " ${BENCH_SCALE_RUNS:-w2-f20 w8-f20 w16-f20 w16-f4 w16-f20-s20} " == *" $1 "* ]]; }
if want w16-f4; then
    play rb-b "$W/inv-scale-all.yml" 20 playbooks/rollback.yml --tags workers
    play w16-f4 "$W/inv-scale-all.yml" 4 playbooks/convert.yml --tags workers -e kubeha_worker_serial=100%
fi
if want w16-f20-s20; then
    play rb-c "$W/inv-scale-all.yml" 20 playbooks/rollback.yml --tags workers
    play w16-f20-s20 "$W/inv-scale-all.yml" 20 playbooks/convert.yml --tags workers
fi

.venv/bin/python - "$W" "$scale_start" "$scale_load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF'
import json, sys
w = sys.argv[1]
json.dump({"note": "Measured from %s; load averages at its start %s, at its end %s." % tuple(sys.argv[2:5])},
          open("%s/scale-meta.json" % w, "w"), indent=1)
runs = [("w2-f20", 2, 20, "100%"), ("w8-f20", 8, 20, "100%"), ("w16-f20", 16, 20, "100%"),
        ("w16-f4", 16, 4, "100%"), ("w16-f20-s20", 16, 20, "20%")]
out = []
for tag, workers, forks, serial in runs:
    try:
        timer = json.load(open("%s/scale-%s.json" % (w, tag)))
    except OSError:  # run not picked (BENCH_SCALE_RUNS)
        continue
    plays = [p for p in timer["plays"] if "workers" in p["name"].lower()]
    seconds = sum(p["end"] - p["start"] for p in plays)
    out.append({"run": tag, "workers": workers, "forks": forks, "serial": serial, "worker_phase_s": round(seconds, 2)})
json.dump(out, open("%s/scale.json" % w, "w"), indent=1)
for row in out:
    print("scale: %(run)-12s workers=%(workers)2d forks=%(forks)2d serial=%(serial)4s worker phase %(worker_phase_s)6.1f s" % row)
EOF
