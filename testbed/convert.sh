#!/usr/bin/env bash
# Convert the running test bed: playbooks/convert.yml against testbed/inventory/<layout>.
# Usage: testbed/convert.sh [pinned|kubespray|kubeadm|kubeadm-dns|novip|legacy] [extra ansible-playbook args]
set -euo pipefail
cd "$(dirname "$0")/.."
layout=${1:-${LAYOUT:-pinned}}
shift || true
source testbed/layout.sh
inventory=$(layout_inventory "$layout" convert.sh)
[[ -f playbooks/convert.yml ]] || { echo "convert.sh: playbooks/convert.yml missing" >&2; exit 1; }
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
start=$SECONDS
ansible-playbook -i "$inventory" playbooks/convert.yml "$@"
echo "convert.sh: conversion of '$layout' took $((SECONDS - start)) s"
