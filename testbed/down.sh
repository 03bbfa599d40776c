#!/usr/bin/env bash
# Destroy the test bed whatever made it: every container named kubeha-lb/-masterN/-workerN, the
# docker network kubeha, and molecule's record of the instances.
set -uo pipefail
cd "$(dirname "$0")/.."
names=$(docker ps -a --format '{{.Names}}' | grep -E '^kubeha-(lb|master[0-9]+|worker[0-9]+)$' || true)
if [[ -n $names ]]; then
    # shellcheck disable=SC2086
    docker rm -f $names >/dev/null && echo "down.sh: removed $(echo $names | wc -w) containers"
fi
if docker network inspect kubeha >/dev/null 2>&1; then
    docker network rm kubeha >/dev/null && echo "down.sh: removed network kubeha"
fi
if [[ -x .venv/bin/molecule ]]; then
    export PATH="$PWD/.venv/bin:$PATH"
    for scenario in pinned kubespray kubeadm kubeadm-dns novip; do
        # Make molecule forget the instances (its state lives in an ephemeral directory keyed by this
        # checkout's directory name). `molecule destroy` acts only on this scenario's own platforms
        # and network. Never `molecule reset`: the docker driver's reset stops and prunes EVERY
        # container labelled owner=molecule on the machine, other checkouts' and other projects' too.
        # Only where molecule believes it created them (12 s per scenario otherwise for nothing): its
        # state file under ~/.ansible/tmp/molecule.<id>.<scenario>/ says `created: true`.
        if grep -qs '^created: true' "$HOME"/.ansible/tmp/molecule.*."$scenario"/state.yml; then
            .venv/bin/molecule destroy -s "$scenario" >/dev/null 2>&1 || true
        fi
    done
fi
exit 0
