#!/usr/bin/env bash
# Every test of kubeha, in sections. Each section prints a header and its time; the first failing
# section stops the run (fail fast) with its name. The last line is "N passed, M failed".
# Add a section: one `section "<name>" <command...>` line below, in dependency order.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
passed=0 failed=0 total_start=$SECONDS

section() {
    local name=$1 start=$SECONDS rc
    shift
    printf '\n===== %s =====\n' "$name"
    "$@"
    rc=$?
    if ((rc == 0)); then
        passed=$((passed + 1))
        printf '===== %s: PASSED in %d s\n' "$name" $((SECONDS - start))
    else
        failed=$((failed + 1))
        printf '===== %s: FAILED (exit %d) after %d s\n' "$name" "$rc" $((SECONDS - start))
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
# what decides docs/reliability.md's figures (chaos/figures.py) and what gets committed (chaos/keep.py)
chaos_tools() { .venv/bin/python -m pytest -q -p no:cacheprovider chaos/tests; }
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
# One bed per layout serves both the playbooks' own end-to-end script and molecule's converge /
# idempotence / verify: test-playbooks.sh starts from the unconverted bed molecule's prepare leaves and
# ends rolled back, which is the state converge expects (one bring-up saved per layout, and it proves
# a rolled-back cluster converts again). Molecule's sequence otherwise as `molecule test`.
molecule_layout() {
    local s=$1 rc=0
    testbed/down.sh
    molecule syntax -s "$s" && molecule create -s "$s" && molecule prepare -s "$s" \
        && scripts/test-playbooks.sh "$s" \
        && molecule converge -s "$s" && molecule idempotence -s "$s" && molecule verify -s "$s" || rc=1
    molecule destroy -s "$s" || rc=1
    return $rc
}
molecule_pinned() { molecule_layout pinned; }
molecule_kubespray() { molecule_layout kubespray; }

section "TLS verification never disabled (chaos/tls-guard.sh)" chaos/tls-guard.sh
section "rust tests" rust
section "emulator tests (pytest)" emulators
section "chaos figures and keep (pytest)" chaos_tools
section "collection checks" collection
section "bullseye compatibility of the module binaries" bullseye
# The control (unconverted pinned cluster: master1 stopped => kubectl with admin.conf fails) runs
# inside `molecule test -s pinned`, in its prepare step, before converge.
# Per layout: molecule create + prepare, scripts/test-playbooks.sh (dry run, refusals, convert,
# second run, rollback, kubespray hook, legacy groups, local proxy removal on kubespray), then
# molecule converge, idempotence, verify (the drill), destroy.
section "pinned: molecule + test-playbooks" molecule_pinned
section "kubespray: molecule + test-playbooks" molecule_kubespray

printf '\ntest-all: everything passed in %d s\n%d passed, %d failed\n' $((SECONDS - total_start)) "$passed" "$failed"
