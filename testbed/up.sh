#!/usr/bin/env bash
# Bring up the unconverted test-bed cluster of LAYOUT (pinned | kubespray | kubeadm | kubeadm-dns | novip), healthy, and print the
# time it took. Always new containers (testbed/down.sh first): a bed an earlier run converted (its
# apiserver pair, /var/lib/kubeha's originals and drain markers) never leaks into the next.
#
# From the layout's snapshot when it exists (testbed/bed.py: one image per node, keyed by the hash
# of everything that shapes the installed cluster): create the containers from those images, wait
# until healthy, and check that the health report equals the one of the fresh bed the snapshot was
# taken from. Otherwise install first: containers from the node image, testbed/install/site.yml (what
# `molecule prepare` runs), health, then keep the bed as the snapshot and start it from there, so the
# first bed is already one from the snapshot.
#   KUBEHA_BED_SNAPSHOT=0  install and keep that bed as it is (no snapshot taken or used)
set -euo pipefail
cd "$(dirname "$0")/.."
layout=${1:-${LAYOUT:-pinned}}
[[ -f molecule/$layout/molecule.yml ]] || { echo "up.sh: unknown layout '$layout' (pinned|kubespray|kubeadm|kubeadm-dns|novip)" >&2; exit 2; }
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG=$PWD/ansible.cfg
bed() { .venv/bin/python testbed/bed.py "$@"; }
# the layout's inventory (kubeadm's and kubeadm-dns's are plain ones in their own directories,
# novip's a kubespray one in its own directory: the other layouts' load-balancer variables do not apply)
case $layout in
    kubeadm|kubeadm-dns|novip) inventory=testbed/inventory/$layout/hosts.yml ;;
    *) inventory=testbed/inventory/$layout.yml ;;
esac
image=kubeha-node:$(testbed/images/build.sh hash | awk '{print $2}')
docker image inspect "$image" >/dev/null 2>&1 || { echo "up.sh: image $image missing: run make image" >&2; exit 1; }
export KUBEHA_NODE_IMAGE=$image
reports=reports/bed
mkdir -p "$reports"
start=$SECONDS
testbed/down.sh
key=$(bed key "$layout")

install_bed() {
    local t=$SECONDS
    bed create "$layout"
    ansible-playbook -i "$inventory" testbed/install/site.yml >"$reports/$layout-install.log" 2>&1 \
        || { tail -40 "$reports/$layout-install.log"; echo "up.sh: install failed (log $reports/$layout-install.log)" >&2; return 1; }
    bed health "$layout" --wait 120 --out "$reports/$layout-fresh-health.json" >"$reports/$layout-fresh-health.txt" \
        || { cat "$reports/$layout-fresh-health.txt"; echo "up.sh: the freshly installed bed is not healthy" >&2; return 1; }
    bed artifacts "$layout"   # kubespray's artifact; from the snapshot, `bed create --snapshot` writes it
    echo "up.sh: '$layout' installed and healthy in $((SECONDS - t)) s"
}

if [[ ${KUBEHA_BED_SNAPSHOT:-1} == 0 ]]; then
    install_bed
    echo "up.sh: test bed '$layout' up in $((SECONDS - start)) s (installed, no snapshot)"
    exit 0
fi
if ! bed snapshot-exists "$layout" "$key"; then
    echo "up.sh: no snapshot $key of layout '$layout': installing it"
    install_bed
    t=$SECONDS
    bed snapshot "$layout" "$key" "$reports/$layout-fresh-health.json"
    echo "up.sh: snapshot taken in $((SECONDS - t)) s"
fi
t=$SECONDS
bed create "$layout" --snapshot "$key"
if ! bed health "$layout" --wait 120 --out "$reports/$layout-health.json"; then
    echo "up.sh: the bed started from snapshot $key is not healthy (make clean-images drops the snapshots)" >&2
    exit 1
fi
bed compare "$layout" "$key" "$reports/$layout-health.json"
echo "up.sh: test bed '$layout' up and healthy from snapshot $key in $((SECONDS - t)) s ($((SECONDS - start)) s in all)"
