#!/usr/bin/env bash
# Bring up the unconverted test-bed cluster: molecule create + prepare of scenario LAYOUT
# (pinned | kubespray). Prints the time it took.
set -euo pipefail
cd "$(dirname "$0")/.."
layout=${1:-${LAYOUT:-pinned}}
[[ -d molecule/$layout ]] || { echo "up.sh: unknown layout '$layout' (pinned|kubespray)" >&2; exit 2; }
export KUBEHA_NODE_IMAGE=${KUBEHA_NODE_IMAGE:-kubeha-node:$(testbed/images/build.sh hash | awk '{print $2}')}
docker image inspect "$KUBEHA_NODE_IMAGE" >/dev/null 2>&1 || { echo "up.sh: image $KUBEHA_NODE_IMAGE missing: run make image" >&2; exit 1; }
# Unless this layout's bed is running, start clean: another scenario's containers (same names, same
# network) must go, and so must molecule's record of instances that no longer exist (else `molecule
# create` believes they do and skips them).
current=$(docker ps --filter name='^kubeha-master1$' --format '{{.Label "kubeha_layout"}}' 2>/dev/null || true)
if [[ $current != "$layout" ]]; then
    echo "up.sh: no running '$layout' bed (found '${current:-none}'): testbed/down.sh first"
    testbed/down.sh
fi
export PATH="$PWD/.venv/bin:$PATH"
start=$SECONDS
.venv/bin/molecule create -s "$layout"
KUBEHA_SKIP_CONTROL=${KUBEHA_SKIP_CONTROL:-1} .venv/bin/molecule prepare -s "$layout" --force
echo "up.sh: test bed '$layout' up in $((SECONDS - start)) s (molecule create + prepare)"
