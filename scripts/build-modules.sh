#!/usr/bin/env bash
# Release build of the module binaries into the collection. The binaries must start on every
# host kubespray supports, not only on this machine: OpenSSL is linked statically (feature
# `vendored`) and the target is glibc 2.17 through cargo-zigbuild + zig.
# Tools: cargo-zigbuild (pinned, `cargo install`, cached in ~/.cargo/bin) and ziglang (pinned,
# from PyPI into its own venv .cache/zig-venv, so this works before or without `make venv`).
# Cargo skips the build when nothing changed. Prints each binary's size and newest GLIBC symbol.
set -euo pipefail
cd "$(dirname "$0")/.."

ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.15.2
TARGET=x86_64-unknown-linux-gnu.2.17
TRIPLE=x86_64-unknown-linux-gnu
MODULES_DIR=ansible/ansible_collections/kubeha/control_plane/plugins/modules
MODULES=(control_plane_info kubeadm_config apiserver_cert kubeconfig_server component_restart cluster_configmaps ha_verify)

export PATH="$HOME/.cargo/bin:$PATH"
# `cargo zigbuild --version` is refused by its argument parser; the plain binary answers.
# Versions are captured before matching: `grep -q` closing the pipe early would make the
# producer die of SIGPIPE, which pipefail turns into "not installed" (a reinstall every run).
if [[ $(cargo-zigbuild --version 2>/dev/null || true) != "cargo-zigbuild $ZIGBUILD_VERSION" ]]; then
    echo "build: installing cargo-zigbuild $ZIGBUILD_VERSION"
    cargo install --locked --version "$ZIGBUILD_VERSION" cargo-zigbuild
fi

venv=.cache/zig-venv
zig_installed=$("$venv/bin/python" -m pip show ziglang 2>/dev/null || true)
if [[ $zig_installed != *$'\n'"Version: $ZIGLANG_VERSION"$'\n'* ]]; then
    echo "build: installing ziglang $ZIGLANG_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "ziglang==$ZIGLANG_VERSION"
fi
# cargo-zigbuild finds zig through `python3 -m ziglang` when `zig` is not on PATH.
export PATH="$PWD/$venv/bin:$PATH"
if [[ -z ${RUSTUP_TOOLCHAIN:-} ]] && command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx "$TRIPLE" || rustup target add "$TRIPLE"
fi

present=()
for m in "${MODULES[@]}"; do
    [[ -f src/bin/$m.rs ]] && present+=(--bin "$m")
done
start=$SECONDS
cargo zigbuild --release --features vendored --target "$TARGET" "${present[@]}"
echo "build: cargo zigbuild done in $((SECONDS - start)) s"

out=target/$TRIPLE/release
mkdir -p "$MODULES_DIR"
printf '%-22s %10s  %s\n' module bytes newest-glibc
for m in "${MODULES[@]}"; do
    [[ -f $out/$m ]] || { echo "build: $m not built (no src/bin/$m.rs yet)"; continue; }
    install -m 0755 "$out/$m" "$MODULES_DIR/$m"
    size=$(stat -c %s "$MODULES_DIR/$m")
    glibc=$(objdump -T "$MODULES_DIR/$m" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    printf '%-22s %10s  %s\n' "$m" "$size" "$glibc"
done
