#!/usr/bin/env bash
# Static tests of the collection kubeha.control_plane and the playbooks (no test bed needed):
#   1. ansible-doc renders every module (sidecar docs) with the repository's ansible.cfg, and the
#      role's entry points (meta/argument_specs.yml, checked against defaults/main.yml)
#   2. ansible-galaxy collection build: tarball < 20 MB (prints its size), only collection content
#   3. ansible-lint --profile production on the whole repository (.ansible-lint: what it skips, and why)
#   4. ansible-test sanity (binaries excluded), run inside ansible_collections/kubeha/control_plane
#   5. ansible-playbook --syntax-check of every playbook
# Needs .venv (scripts/venv.sh) and the release binaries in plugins/modules (make build).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export ANSIBLE_CONFIG=$root/ansible.cfg
export PATH="$root/.venv/bin:$PATH"
coll=ansible/ansible_collections/kubeha/control_plane
modules=(control_plane_info kubeadm_config apiserver_cert kubeconfig_server component_restart cluster_configmaps cluster_workloads ha_verify vip_probe)
fail=0
step() { printf '\n== %s\n' "$*"; }
bad() { echo "FAIL: $*"; fail=1; }

step "1. ansible-doc renders every module"
for m in "${modules[@]}"; do
    [[ -f $coll/plugins/modules/$m.yml ]] || { bad "$m: sidecar $coll/plugins/modules/$m.yml missing"; continue; }
    [[ -x $coll/plugins/modules/$m ]] || { bad "$m: binary missing (run make build)"; continue; }
    if out=$(ansible-doc "kubeha.control_plane.$m" 2>&1) && grep -q "OPTIONS" <<<"$out" && grep -q "EXAMPLES" <<<"$out"; then
        echo "ok   kubeha.control_plane.$m ($(grep -c '' <<<"$out") lines)"
    else
        bad "ansible-doc kubeha.control_plane.$m"; echo "$out" | tail -5
    fi
done

step "1b. the role's argument specs: every variable of defaults/main.yml declared, none with a second default"
role=$coll/roles/convert
if python3 - "$role" <<'PY'
import sys, yaml
role = sys.argv[1]
defaults = yaml.safe_load(open(role + "/defaults/main.yml"))
specs = yaml.safe_load(open(role + "/meta/argument_specs.yml"))["argument_specs"]
declared = set()
bad = []
for entry, spec in specs.items():
    for name, option in (spec.get("options") or {}).items():
        declared.add(name)
        if "default" in option:
            bad.append("%s: %s has a default in the spec (defaults/main.yml holds it)" % (entry, name))
bad += ["%s (defaults/main.yml) is declared by no entry point" % n for n in sorted(set(defaults) - declared)]
print("\n".join(bad) if bad else "ok   %d variables, %d entry points" % (len(defaults), len(specs)))
sys.exit(1 if bad else 0)
PY
then :; else bad "role argument specs"; fi
for entry in $(python3 -c "import yaml, sys; print(' '.join(yaml.safe_load(open(sys.argv[1]))['argument_specs']))" "$role/meta/argument_specs.yml"); do
    ansible-doc -t role kubeha.control_plane.convert -e "$entry" >/dev/null 2>&1 || bad "ansible-doc -t role kubeha.control_plane.convert -e $entry"
done

step "2. ansible-galaxy collection build"
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
if ansible-galaxy collection build "$coll" --output-path "$build" >/dev/null; then
    tarball=$(ls "$build"/kubeha-control_plane-*.tar.gz)
    size=$(stat -c %s "$tarball")
    echo "tarball $(basename "$tarball"): $size bytes ($(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1048576}') MiB)"
    ((size < 20 * 1024 * 1024)) || bad "tarball is $size bytes, Galaxy's limit is 20 MB"
    # only collection content: no sources, build trees, caches or editor files
    # list once: `tar | grep -q` under pipefail fails when grep exits early and tar gets SIGPIPE
    listing=$(tar -tzf "$tarball")
    unexpected=$(grep -Ev '^(MANIFEST\.json|FILES\.json|README\.md|CHANGELOG\.md|galaxy\.yml|meta/|meta/runtime\.yml|plugins/|plugins/modules/|plugins/modules/[a-z_]+(\.yml)?|plugins/action/|plugins/action/[a-z_]+\.py|plugins/plugin_utils/|plugins/plugin_utils/[a-z_]+\.py|roles/|roles/convert/.*|docs/.*|tests/|tests/sanity/|tests/sanity/ignore-[0-9.]+\.txt)$' <<<"$listing" || true)
    [[ -z $unexpected ]] || bad "unexpected files in the tarball: $unexpected"
    for m in "${modules[@]}"; do
        grep -qx "plugins/modules/$m" <<<"$listing" || bad "tarball lacks the binary plugins/modules/$m"
    done
else
    bad "ansible-galaxy collection build"
fi

step "3. ansible-lint --profile production, whole repository"
if ansible-lint; then
    echo "ok   ansible-lint"
else
    bad "ansible-lint"
fi

step "4. ansible-test sanity (binaries excluded)"
# ansible-test reads every file under plugins/modules; a binary module crashes it (field guide 3).
# The binaries are git-ignored: the test runs on a copy of the collection's git-tracked files,
# placed at ansible_collections/kubeha/control_plane as ansible-test requires.
# Offline here: ansible-test's --venv/--docker modes download get-pip.py from ci-files.testing.ansible.com
# (unreachable). So: a venv .cache/sanity-venv with the pinned ansible-core and the sanity tests'
# own pinned requirements (ansible-test's requirements files, from PyPI), and, for the tests that
# make per-test venvs (runtime-metadata, validate-modules, yamllint, ...), a bootstrap that runs
# pip from pip's own wheel (PyPI) in place of get-pip.py, in ansible-test's cache.
sv=.cache/sanity-venv
core_pin=$(grep -E '^ansible-core==' requirements.txt)
if [[ ! -f $sv/.kubeha-stamp || $(cat "$sv/.kubeha-stamp") != "$core_pin" ]]; then
    rm -rf "$sv"; python3 -m venv "$sv"
    "$sv/bin/pip" install -q "$core_pin"
    req_dir=$sv/lib/python3.11/site-packages/ansible_test/_data/requirements
    "$sv/bin/pip" install -q -r "$req_dir/sanity.yamllint.txt" -r "$req_dir/sanity.validate-modules.txt" \
        -r "$req_dir/sanity.runtime-metadata.txt" -r "$req_dir/sanity.ansible-doc.txt" -r "$req_dir/sanity.pep8.txt"
    echo "$core_pin" >"$sv/.kubeha-stamp"
fi
pip_ver=$("$sv/bin/python" -c 'import re, inspect, ansible_test._internal.python_requirements as r; print(re.search(r"pip=.([0-9.]+)", inspect.getsource(r.get_venv_packages)).group(1))')
boot=$HOME/.ansible/test/cache/get_pip_${pip_ver//./_}.py
if [[ ! -f $boot ]] || ! grep -q 'kubeha scripts/test-collection.sh' "$boot"; then
    mkdir -p .cache/pip-bootstrap "$(dirname "$boot")"
    "$sv/bin/pip" download -q --no-deps "pip==$pip_ver" -d .cache/pip-bootstrap
    cat >"$boot" <<BOOT
# pip bootstrap for ansible-test in place of get-pip.py (not reachable offline): runs pip $pip_ver
# from its PyPI wheel. Written by kubeha scripts/test-collection.sh
import sys
sys.path.insert(0, "$root/.cache/pip-bootstrap/pip-$pip_ver-py3-none-any.whl")
from pip._internal.cli.main import main
sys.exit(main(["install"] + [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]))
BOOT
fi
sanity=$(mktemp -d)
trap 'rm -rf "$build" "$sanity"' EXIT
dest=$sanity/ansible_collections/kubeha/control_plane
mkdir -p "$dest"
git ls-files -z -- "$coll" | while IFS= read -r -d '' f; do
    rel=${f#"$coll"/}
    mkdir -p "$dest/$(dirname "$rel")"
    cp -p "$f" "$dest/$rel"
done
untracked=$(git ls-files --others --exclude-standard -- "$coll")
[[ -z $untracked ]] || echo "note: not yet committed, so not in this sanity run: $untracked"
if (
    cd "$dest"
    git init -q . && git add -A && git -c user.email=sanity@kubeha -c user.name=sanity commit -qm sanity
    "$root/$sv/bin/ansible-test" sanity --python 3.11 --color no 2>&1 | grep -Ev '^(Collecting|Downloading|Installing|Successfully|Using cached| +━)'
    exit "${PIPESTATUS[0]}"
); then
    echo "ok   ansible-test sanity"
else
    bad "ansible-test sanity"
fi

step "5. ansible-playbook --syntax-check"
while IFS= read -r pb; do
    if ansible-playbook -i localhost, --syntax-check "$pb" >/dev/null 2>&1; then
        echo "ok   $pb"
    else
        bad "syntax-check $pb"; ansible-playbook -i localhost, --syntax-check "$pb" 2>&1 | tail -5
    fi
done < <(find playbooks -name '*.yml' -not -path '*/roles/*' -not -path 'playbooks/kubespray/*' | sort)

if ((fail)); then echo; echo "test-collection: FAILED"; exit 1; fi
echo; echo "test-collection: all passed"
