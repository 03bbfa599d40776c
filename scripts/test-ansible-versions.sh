#!/usr/bin/env bash
# The action plugin every kubeha module runs through (tests/plugin) on each ansible-core release
# from the one the collection's meta/runtime.yml requires to the newest: 2.15 (requires_ansible),
# 2.16 (kubespray's own requirements pin ansible 9.x = ansible-core 2.16), 2.17, 2.18, and 2.19
# (the repository's .venv, the newest on PyPI when this was written). One venv per release under
# .cache/ansible-core-<version>, made once (pip from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
versions=(2.15.13 2.16.19 2.17.14 2.18.19)
fail=0
run() {  # label, python
    local label=$1 py=$2 out
    if out=$("$py" -m pytest -q -p no:cacheprovider tests/plugin 2>&1); then
        echo "ok   ansible-core $label: $(tail -1 <<<"$out")"
    else
        echo "FAIL ansible-core $label"; tail -30 <<<"$out"; fail=1
    fi
}
for v in "${versions[@]}"; do
    venv=.cache/ansible-core-$v
    if [[ ! -x $venv/bin/ansible-playbook ]]; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "ansible-core==$v" "$(grep -E '^pytest==' requirements.txt)" "$(grep -E '^pyyaml==' requirements.txt)"
    fi
    run "$v" "$venv/bin/python"
done
run "$(.venv/bin/python -c 'import ansible.release as r; print(r.__version__)') (.venv)" .venv/bin/python
exit "$fail"
