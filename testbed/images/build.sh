#!/usr/bin/env bash
# Build the test-bed images without any registry: debootstrap --variant=minbase, then docker import.
#   kubeha-node:<hash>      Debian bookworm, systemd as PID 1 (every test-bed host); also :latest
#   kubeha-bullseye:<hash>  Debian bullseye, glibc 2.31 + OpenSSL 1.1 (old-host check of the modules)
# <hash> is a hash of the recipe files; an existing tag is reused (no rebuild). The downloaded
# packages are cached as a debootstrap tarball under .cache/debootstrap/, keyed by a hash of the
# suite and package list (the part of the recipe that decides what is downloaded).
# Usage: testbed/images/build.sh [node|bullseye|all|hash]   (default: all)
# Env: KUBEHA_IMAGE_FORCE=1 rebuilds even when the tag exists; KUBEHA_IMAGE_CACHE=DIR moves the
# download cache (an empty DIR measures a build from scratch).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${KUBEHA_IMAGE_CACHE:-"$repo/.cache/debootstrap"}
which=${1:-all}

# Mirror: the one configured for bookworm in /etc/apt (deb822 .sources or one-line .list files).
mirror() {
    local uri
    uri=$(awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm( |$|\n)/ && !/security/ {
                 if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { s=substr($0,RSTART,RLENGTH); sub(/URIs:[ \t]*/,"",s); print s; exit } }' \
              /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [[ -z $uri ]]; then
        uri=$(grep -hE '^deb [^ ]+ bookworm ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
              | awk '{print $2; exit}' || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

recipe_hash() {   # hash of build.sh, setup-rootfs.sh and the image's package list
    cat "$here/build.sh" "$here/setup-rootfs.sh" "$here/$1.packages" | sha256sum | cut -c1-12
}

download_hash() {   # what debootstrap downloads depends only on the suite and the package list
    { echo "$2"; cat "$here/$1.packages"; } | sha256sum | cut -c1-12
}

packages() { grep -vE '^\s*(#|$)' "$here/$1.packages" | paste -sd, -; }

build_one() {   # name suite kind
    local name=$1 suite=$2 kind=$3 image hash tarball rootfs start mirror_url
    hash=$(recipe_hash "$name")
    image="kubeha-$name:$hash"
    if [[ ${KUBEHA_IMAGE_FORCE:-0} != 1 ]] && docker image inspect "$image" >/dev/null 2>&1; then
        echo "image $image exists (recipe unchanged): not rebuilt"
        [[ $name == node ]] && docker tag "$image" kubeha-node:latest
        return 0
    fi
    start=$SECONDS
    mirror_url=$(mirror)
    mkdir -p "$cache"
    tarball="$cache/$name-$suite-$(download_hash "$name" "$suite").tgz"
    rootfs=$(mktemp -d /var/tmp/kubeha-rootfs-"$name".XXXXXX)
    trap 'rm -rf "$rootfs"' RETURN
    if [[ ! -s $tarball ]]; then
        echo "debootstrap: downloading $suite packages from $mirror_url into $tarball"
        rm -f "$tarball.part"
        debootstrap --variant=minbase --include="$(packages "$name")" \
            --make-tarball="$tarball.part" "$suite" "$rootfs/download" "$mirror_url" >"$rootfs.log" 2>&1 \
            || { tail -30 "$rootfs.log"; echo "debootstrap --make-tarball failed" >&2; return 1; }
        mv "$tarball.part" "$tarball"
        rm -rf "$rootfs/download"
    else
        echo "debootstrap: using cached $tarball"
    fi
    echo "debootstrap: installing $suite into $rootfs"
    debootstrap --variant=minbase --include="$(packages "$name")" --unpack-tarball="$tarball" \
        "$suite" "$rootfs" "$mirror_url" >"$rootfs.log" 2>&1 \
        || { tail -30 "$rootfs.log"; echo "debootstrap failed (log $rootfs.log)" >&2; return 1; }
    rm -f "$rootfs.log"
    "$here/setup-rootfs.sh" "$rootfs" "$suite" "$mirror_url" "$kind"
    local changes=()
    if [[ $kind == systemd ]]; then
        changes=(-c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker')
    else
        changes=(-c 'CMD ["/bin/bash"]')
    fi
    tar -C "$rootfs" --numeric-owner -c . | docker import "${changes[@]}" \
        -m "kubeha $name image, recipe $hash" - "$image" >/dev/null
    [[ $name == node ]] && docker tag "$image" kubeha-node:latest
    echo "built $image in $((SECONDS - start)) s"
}

case $which in
    node) build_one node bookworm systemd ;;
    bullseye) build_one bullseye bullseye plain ;;
    all) build_one node bookworm systemd; build_one bullseye bullseye plain ;;
    hash) echo "node $(recipe_hash node) bullseye $(recipe_hash bullseye)" ;;
    *) echo "usage: $0 [node|bullseye|all|hash]" >&2; exit 2 ;;
esac
