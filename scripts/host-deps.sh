#!/bin/bash
# Host (Debian bookworm) packages the build and the tests need. Idempotent and quiet: installs
# only what is missing. Add packages to PKGS (one concern per line).
set -euo pipefail

PKGS=(
  openssl python3 python3-yaml     # emulators (Python 3 + PyYAML) and test PKI
  etcd-server                      # real etcd 3.4 behind the kube-apiserver emulator tests
  kubernetes-client                # kubectl 1.20, used by the emulator tests and the test bed
  debootstrap tar gzip curl        # test-bed images (testbed/images/build.sh), health checks
  dpkg-dev                         # dpkg-scanpackages: the node image's local apt repository (build.sh)
  python3-venv                     # .venv/ (scripts/venv.sh)
)

missing=()
for pkg in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

# kubernetes-client ships /usr/bin/kubectl; if another package already owns that path (e.g. the
# Google Cloud SDK's "kubectl" package) dpkg would refuse to overwrite it: keep the existing kubectl.
if [[ " ${missing[*]-} " == *" kubernetes-client "* ]] && owner=$(dpkg-query -S /usr/bin/kubectl 2>/dev/null); then
  echo "host-deps: /usr/bin/kubectl already provided by ${owner%%:*}; not installing kubernetes-client" >&2
  missing=("${missing[@]/kubernetes-client}")
fi
read -r -a missing <<< "${missing[*]-}"

if ((${#missing[@]})); then
  echo "host-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts etcd.service on install; the tests run their own etcd on loopback ports.
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    $SUDO systemctl disable --now etcd.service >/dev/null 2>&1 || true
  fi
fi

# The test bed needs a running Docker engine (not installed here: the host's engine is used).
if ! docker info >/dev/null 2>&1; then
  echo "host-deps: warning: no usable Docker engine (docker info failed): the test bed cannot run" >&2
fi
