#!/usr/bin/env bash
# Release build of the module binaries into the collection. The binaries must start on every
# host kubespray supports, not only on this machine: OpenSSL is linked statically (feature
# `vendored`) and the target is glibc 2.17 through cargo-zigbuild + zig.
# Tools: cargo-zigbuild and ziglang (pinned, both from PyPI into their own venv .cache/zig-venv, so
# this works before or without `make venv`).
# Cargo skips the build when nothing changed. Prints each binary's size and newest GLIBC symbol.
#
# Usage: scripts/build-modules.sh [x86_64|aarch64]   (default x86_64)
#   x86_64   into plugins/modules/<module> (the module files Ansible finds)
#   aarch64  into <collection>/bin/aarch64/<module> (the action plugin picks them for aarch64
#            hosts). rustup cannot fetch another target's standard library on a machine without
#            its servers, so this uses Debian's own Rust (`rustc-web`, bookworm-security) and its
#            arm64 standard library (`libstd-rust-web-dev:arm64`, installed here when missing),
#            with its own target directory (another rustc would otherwise invalidate the x86_64
#            build's cache). Same cargo-zigbuild and zig, target aarch64 glibc 2.17.
set -euo pipefail
cd "$(dirname "$0")/.."

ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.15.2
ARCH=${1:-x86_64}
COLLECTION=ansible/ansible_collections/kubeha/control_plane
case $ARCH in
    x86_64) TRIPLE=x86_64-unknown-linux-gnu; MODULES_DIR=$COLLECTION/plugins/modules ;;
    aarch64) TRIPLE=aarch64-unknown-linux-gnu; MODULES_DIR=$COLLECTION/bin/aarch64 ;;
    *) echo "usage: $0 [x86_64|aarch64]" >&2; exit 2 ;;
esac
TARGET=$TRIPLE.2.17
MODULES=(control_plane_info kubeadm_config apiserver_cert kubeconfig_server component_restart cluster_configmaps cluster_workloads ha_verify vip_probe)

export PATH="$HOME/.cargo/bin:$PATH"
# Both tools from PyPI into one venv: cargo-zigbuild's wheel is a prebuilt binary (a `cargo install`
# compiled it for 77 s on a fresh 2-core machine), ziglang carries zig.
venv=.cache/zig-venv
installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("cargo-zigbuild"), m.version("ziglang"))' \
    2>/dev/null || true)
if [[ $installed != "$ZIGBUILD_VERSION $ZIGLANG_VERSION" ]]; then
    echo "build: installing cargo-zigbuild $ZIGBUILD_VERSION and ziglang $ZIGLANG_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "cargo-zigbuild==$ZIGBUILD_VERSION" "ziglang==$ZIGLANG_VERSION"
fi
# cargo finds the venv's cargo-zigbuild first on PATH; cargo-zigbuild finds zig through
# `python3 -m ziglang` when `zig` is not on PATH.
export PATH="$PWD/$venv/bin:$PATH"
if [[ $ARCH == aarch64 ]]; then
    if [[ ! -x /usr/bin/rustc || ! -d /usr/lib/rustlib/$TRIPLE/lib ]]; then
        echo "build: installing Debian's rustc-web and its arm64 standard library"
        dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web libstd-rust-web-dev:arm64 >/dev/null
    fi
    export RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=target/debian-rustc
    echo "build: $($RUSTC --version) for $TRIPLE"
elif [[ -z ${RUSTUP_TOOLCHAIN:-} ]] && command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx "$TRIPLE" || rustup target add "$TRIPLE"
fi

present=()
for m in "${MODULES[@]}"; do
    [[ -f src/bin/$m.rs ]] && present+=(--bin "$m")
done
start=$SECONDS
cargo zigbuild --release --features vendored --target "$TARGET" "${present[@]}"
echo "build: cargo zigbuild done in $((SECONDS - start)) s"

out=${CARGO_TARGET_DIR:-target}/$TRIPLE/release
mkdir -p "$MODULES_DIR"
printf '%-22s %10s  %s\n' module bytes newest-glibc
for m in "${MODULES[@]}"; do
    [[ -f $out/$m ]] || { echo "build: $m not built (no src/bin/$m.rs yet)"; continue; }
    install -m 0755 "$out/$m" "$MODULES_DIR/$m"
    size=$(stat -c %s "$MODULES_DIR/$m")
    # readelf, not objdump: it reads the symbol versions of an ELF file of any architecture
    glibc=$(readelf -W --dyn-syms "$MODULES_DIR/$m" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    printf '%-22s %10s  %s\n' "$m" "$size" "$glibc"
done

if [[ $ARCH == aarch64 ]]; then
    # The aarch64 archive, beside the Galaxy one (which leaves bin/ out): unpack it into the
    # installed collection's directory.
    version=$(awk '$1 == "version:" {print $2}' "$COLLECTION/galaxy.yml")
    mkdir -p build
    archive=build/kubeha-control_plane-$version-aarch64.tar.gz
    tar -C "$COLLECTION" --owner=0 --group=0 -czf "$archive" bin/aarch64
    echo "build: $archive ($(stat -c %s "$archive") bytes): tar -xzf it in the installed kubeha/control_plane directory"
fi
