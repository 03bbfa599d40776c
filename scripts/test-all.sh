#!/usr/bin/env bash
# Every test of kubeha, in sections. Each section prints a header and its time; the first failing
# section stops the run (fail fast) with its name. The run ends with a table of every section's
# seconds and the line "N passed, M failed".
#   scripts/test-all.sh          `make test`: setup, every host-only test, and per layout one bed
#                                 from its snapshot with the dry run, the conversion, the second run
#                                 (changed=0), the drill and the byte-for-byte rollback
#   scripts/test-all.sh --full   `make test-full`: the above with every end-to-end check of
#                                 scripts/test-playbooks.sh (refusals, resume of a drained master,
#                                 kubespray hook, legacy groups, local proxy removal), the plain
#                                 kubeadm layouts' beds and checks (kubeadm, kubeadm-dns), layout novip's
#                                 (no load balancer: kubeha provisions the VIP), and, per layout,
#                                 `molecule test` from scratch (install, control, converge,
#                                 idempotence, verify, destroy)
# Add a section: one `section "<name>" <command...>` line below, in dependency order.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
tier=core
[[ ${1:-} == --full ]] && tier=full
passed=0 failed=0 total_start=$SECONDS
names=() times=() verdicts=()

table() {
    printf '\n%-64s %8s  %s\n' "section ($tier tier)" "seconds" "result"
    local i
    for i in "${!names[@]}"; do printf '%-64s %8d  %s\n' "${names[$i]}" "${times[$i]}" "${verdicts[$i]}"; done
    printf '%-64s %8d\n' "total" $((SECONDS - total_start))
}

section() {
    local name=$1 start=$SECONDS rc
    shift
    printf '\n===== %s =====\n' "$name"
    "$@"
    rc=$?
    names+=("$name") times+=($((SECONDS - start)))
    if ((rc == 0)); then
        passed=$((passed + 1)) verdicts+=(passed)
        printf '===== %s: PASSED in %d s\n' "$name" $((SECONDS - start))
    else
        failed=$((failed + 1)) verdicts+=("FAILED (exit $rc)")
        printf '===== %s: FAILED (exit %d) after %d s\n' "$name" "$rc" $((SECONDS - start))
        table
        testbed/down.sh >/dev/null 2>&1
        printf '\ntest-all: stopped at the first failure: "%s"\n%d passed, %d failed\n' "$name" "$passed" "$failed"
        exit 1
    fi
}

if_script() {   # run scripts/<name> if it exists, else the fallback command
    local script=$1
    shift
    if [[ -x scripts/$script ]]; then "scripts/$script"; else "$@"; fi
}

rust() { if_script test-rust.sh cargo test; }
emulators() { .venv/bin/python -m pytest -q testbed/emulators/tests; }
# what decides docs/reliability.md's figures (chaos/figures.py), what gets committed (chaos/keep.py), and
# the benchmark's transport counts and latency proxy (bench/transport.py, bench/latency_proxy.py)
chaos_tools() { .venv/bin/python -m pytest -q -p no:cacheprovider chaos/tests bench/tests scripts/tests; }
# the bed's snapshot key and the comparison of a snapshot bed's health with the fresh bed's (testbed/bed.py)
bed_tools() { .venv/bin/python -m pytest -q -p no:cacheprovider testbed/tests; }
# the action plugin every module runs through (module cache, one remote command per call, fallbacks),
# over the local connection on this machine, on ansible-core 2.15 to 2.19 (one venv each)
action_plugin() { scripts/test-ansible-versions.sh; }
collection() {
    if [[ -x scripts/test-collection.sh ]]; then scripts/test-collection.sh; else echo "no scripts/test-collection.sh"; fi
}
bullseye() {
    # the release binaries start and answer valid JSON on Debian bullseye (glibc 2.31, OpenSSL 1.1)
    if [[ -x scripts/test-bullseye.sh ]]; then scripts/test-bullseye.sh; else bullseye_fallback; fi
}
bullseye_fallback() {
    local image dir m
    testbed/images/build.sh bullseye || return 1
    image=kubeha-bullseye:$(testbed/images/build.sh hash | awk '{print $4}')
    dir=ansible/ansible_collections/kubeha/control_plane/plugins/modules
    for m in "$dir"/*; do
        [[ $m == *.yml || ! -f $m ]] && continue
        echo '{"_ansible_check_mode": true}' >/tmp/kubeha-args.json
        docker run --rm --network none -v "$PWD/$dir:/m:ro" -v /tmp/kubeha-args.json:/args.json:ro "$image" \
            "/m/$(basename "$m")" /args.json | python3 -c 'import json,sys; json.load(sys.stdin)' \
            || { echo "bullseye: $(basename "$m") did not print one JSON object"; return 1; }
        echo "bullseye: $(basename "$m") ok"
    done
}
# Per layout, make test: a new bed from the layout's snapshot (testbed/up.sh installs it and takes
# the snapshot the first time, and checks that the bed from the snapshot passes the fresh bed's
# health checks with the same results), then scripts/test-playbooks.sh's core tier on it, which ends
# rolled back byte for byte.
bed() { testbed/up.sh "$1"; }
playbooks() { KUBEHA_TEST_TIER=$tier scripts/test-playbooks.sh "$1"; }
# the control on the unconverted pinned cluster: master1's apiserver stopped => kubectl with
# admin.conf FAILS (shows the drill can fail, and that the conversion is what makes it pass)
control() { ansible-playbook -i testbed/inventory/pinned.yml molecule/pinned/control.yml; }
# make test-full only: the whole molecule scenario, from new containers and a fresh install (no
# snapshot), as `molecule test` runs it
# (and no kubeha module call may fall back to Ansible's copy-per-call path: the plugin warns when it does)
molecule_test() {
    local log=reports/molecule-$1.log
    mkdir -p reports
    testbed/down.sh && molecule test -s "$1" 2>&1 | tee "$log" && ! grep -q "kubeha fast path not used" "$log" \
        || { grep -m3 -A2 "kubeha fast path not used" "$log"; return 1; }
}

section "setup: host packages (scripts/host-deps.sh)" scripts/host-deps.sh
section "setup: Python tools (scripts/venv.sh)" scripts/venv.sh
section "setup: module binaries (scripts/build-modules.sh)" scripts/build-modules.sh
section "setup: test-bed images (testbed/images/build.sh)" testbed/images/build.sh
section "TLS verification never disabled (chaos/tls-guard.sh)" chaos/tls-guard.sh
section "rust tests" rust
section "emulator tests (pytest)" emulators
section "chaos, bench and script tools (pytest)" chaos_tools
section "test-bed tools (pytest)" bed_tools
section "collection checks" collection
section "action plugin on ansible-core 2.15-2.19 (tests/plugin, local connection)" action_plugin
section "bullseye compatibility of the module binaries" bullseye
if [[ $tier == full ]]; then
    # the aarch64 binaries (Debian's rustc-web + arm64 std, cargo-zigbuild) in an arm64 bullseye
    # under qemu-user: every module starts and answers, bullseye's openssl verifies apiserver_cert's
    section "aarch64: module binaries in an arm64 bullseye under qemu-user" scripts/test-bullseye.sh aarch64
fi
section "pinned: bed from the snapshot, healthy as the fresh one" bed pinned
section "pinned: control (unconverted: master1 down => no API)" control
section "pinned: dry run, convert, again, drill, rollback ($tier)" playbooks pinned
section "kubespray: bed from the snapshot, healthy as the fresh one" bed kubespray
section "kubespray: dry run, convert, again, drill, rollback ($tier)" playbooks kubespray
if [[ $tier == full ]]; then
    # the plain kubeadm layout (issue #19): make test-full only, to keep make test inside its budget
    section "kubeadm: bed from the snapshot, healthy as the fresh one" bed kubeadm
    section "kubeadm: dry run, convert, again, drill, rollback ($tier)" playbooks kubeadm
    # the same cluster made with --control-plane-endpoint cluster-endpoint:6443 (the name in /etc/hosts)
    section "kubeadm-dns: bed from the snapshot, healthy as the fresh one" bed kubeadm-dns
    section "kubeadm-dns: dry run, convert, again, drill, rollback ($tier)" playbooks kubeadm-dns
    # no load balancer: kubeha provisions the VIP (keepalived + HAProxy on the masters, issue #20)
    section "novip: bed from the snapshot, healthy as the fresh one" bed novip
    section "novip: dry run, convert, again, drill, rollback ($tier)" playbooks novip
    section "pinned: molecule test (fresh install, no snapshot)" molecule_test pinned
    section "kubespray: molecule test (fresh install, no snapshot)" molecule_test kubespray
    section "kubeadm: molecule test (fresh install, no snapshot)" molecule_test kubeadm
    section "kubeadm-dns: molecule test (fresh install, no snapshot)" molecule_test kubeadm-dns
    section "novip: molecule test (fresh install, no snapshot)" molecule_test novip
fi
testbed/down.sh >/dev/null 2>&1

table
printf '\ntest-all: everything passed in %d s\n%d passed, %d failed\n' $((SECONDS - total_start)) "$passed" "$failed"
