#!/usr/bin/env bash
# Bring up the unconverted test-bed cluster: molecule create + prepare of scenario LAYOUT
# (pinned | kubespray). Prints the time it took.
set -euo pipefail
cd "$(dirname "$0")/.."
layout=${1:-${LAYOUT:-pinned}}
[[ -d molecule/$layout ]] || { echo "up.sh: unknown layout '$layout' (pinned|kubespray)" >&2; exit 2; }
export KUBEHA_NODE_IMAGE=${KUBEHA_NODE_IMAGE:-kubeha-node:$(testbed/images/build.sh hash | awk '{print $2}')}
docker image inspect "$KUBEHA_NODE_IMAGE" >/dev/null 2>&1 || { echo "up.sh: image $KUBEHA_NODE_IMAGE missing: run make image" >&2; exit 1; }
# Always from new containers: an unconverted cluster and nothing else. Re-running prepare on a bed
# that is already up would keep whatever an earlier run left behind: install keeps existing keys and
# certificates (so a converted apiserver pair stays), and kubeha's state (/var/lib/kubeha: saved
# originals, drain markers) survives, so a later rollback restores an earlier bed's originals.
# down.sh also makes molecule forget its instances (else `molecule create` believes they exist).
testbed/down.sh
export PATH="$PWD/.venv/bin:$PATH"
start=$SECONDS
.venv/bin/molecule create -s "$layout"
KUBEHA_SKIP_CONTROL=${KUBEHA_SKIP_CONTROL:-1} .venv/bin/molecule prepare -s "$layout" --force
echo "up.sh: test bed '$layout' up in $((SECONDS - start)) s (molecule create + prepare)"
