#!/usr/bin/env bash
# Drop the test bed's images: every bed snapshot (kubeha-bed:<layout>-<node>-<key>, testbed/bed.py)
# and the node images (kubeha-node, kubeha-bullseye). The debootstrap download cache
# (.cache/debootstrap/) is kept. The next `testbed/up.sh` builds and installs everything afresh.
set -euo pipefail
tags=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^kubeha-(bed|node|bullseye):' || true)
if [[ -z $tags ]]; then
    echo "clean-images: no kubeha images"
    exit 0
fi
# shellcheck disable=SC2086
docker rmi $tags >/dev/null
echo "clean-images: removed $(echo $tags | wc -w) images"
