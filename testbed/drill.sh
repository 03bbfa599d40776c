#!/usr/bin/env bash
# Failover drill against the running (converted) test bed. Runs playbooks/drill.yml when it exists
# (the product's drill), then the test bed's own verification molecule/shared/verify.yml (servers of
# every component, the write-up's drill with the real kubectl through the VIP, the Python client).
# --product-only: playbooks/drill.yml alone (make demo).
# Usage: testbed/drill.sh [pinned|kubespray|kubeadm|kubeadm-dns|novip|legacy] [--product-only]
set -euo pipefail
cd "$(dirname "$0")/.."
layout=${1:-${LAYOUT:-pinned}}
product_only=; [[ ${2:-} == --product-only ]] && product_only=1
source testbed/layout.sh
inventory=$(layout_inventory "$layout" drill.sh)
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
start=$SECONDS
if [[ -f playbooks/drill.yml ]]; then
    echo "== playbooks/drill.yml"
    ansible-playbook -i "$inventory" playbooks/drill.yml
fi
if [[ -z $product_only ]]; then
    echo "== molecule/shared/verify.yml"
    ansible-playbook -i "$inventory" molecule/shared/verify.yml
fi
echo "drill.sh: drill of '$layout' passed in $((SECONDS - start)) s"
