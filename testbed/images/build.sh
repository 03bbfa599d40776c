#!/usr/bin/env bash
# Build the test-bed images without any registry: debootstrap --variant=minbase, then docker import.
#   kubeha-node:<hash>      Debian bookworm, systemd as PID 1 (every test-bed host); also :latest.
#                           It carries a local apt repository (node.repo: keepalived), see local_repo
#   kubeha-bullseye:<hash>  Debian bullseye, glibc 2.31 + OpenSSL 1.1 (old-host check of the modules)
#   kubeha-bullseye-arm64:<hash>  the same for arm64, run under qemu-user (the aarch64 binaries'
#                           check, scripts/test-bullseye.sh aarch64): Debian's qemu-user-static,
#                           registered with the kernel's binfmt_misc (flag F, so it works inside
#                           chroots and containers), runs debootstrap's second stage and the image
# <hash> is a hash of the recipe files; an existing tag is reused (no rebuild). The downloaded
# packages are cached as a debootstrap tarball under .cache/debootstrap/, keyed by a hash of the
# suite and package list (the part of the recipe that decides what is downloaded).
# Usage: testbed/images/build.sh [node|bullseye|bullseye-arm64|all|hash]   (default: all = node, bullseye)
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

# An image's package list: bullseye-arm64 has bullseye's
list() { echo "$here/${1%-arm64}.packages"; }

# An image's local apt repository list (node.repo), if it has one
repo_list() { echo "$here/${1%-arm64}.repo"; }

recipe_hash() {   # hash of build.sh, setup-rootfs.sh, the image's package list and its local repository's
    cat "$here/build.sh" "$here/setup-rootfs.sh" "$(list "$1")" \
        $( [[ -f $(repo_list "$1") ]] && echo "$(repo_list "$1")" ) | sha256sum | cut -c1-12
}

download_hash() {   # what debootstrap downloads depends on the suite, the architecture and the package list
    { echo "$2 $(arch_of "$1")"; cat "$(list "$1")"; } | sha256sum | cut -c1-12
}

packages() { grep -vE '^\s*(#|$)' "$(list "$1")" | paste -sd, -; }

arch_of() { if [[ $1 == *-arm64 ]]; then echo arm64; else echo amd64; fi; }

# Where the node image keeps its local apt repository (testbed/install/vars.yml testbed_apt_repo names
# the same directory): outside /var/lib/kubeha-testbed, which the install makes 0700 (apt's
# unprivileged _apt user must read the index).
REPO_DIR=/srv/kubeha-testbed-apt

# The local apt repository of an image, as an air-gapped site's mirror serves it: the .deb files of
# the packages its .repo file names and of every dependency and recommendation not installed in the
# image (what `apt-get install` of them would fetch from Debian, read by the image's own apt), plus
# a Packages index (dpkg-scanpackages, dpkg-dev on the build host) and a Release file, in REPO_DIR.
# Nothing of it is installed. The .deb files are cached under the download cache, keyed like
# debootstrap's tarball plus the .repo list (a new image package list can change what is missing).
local_repo() {   # name suite rootfs mirror
    local name=$1 suite=$2 rootfs=$3 mirror_url=$4 pkgs dir dest
    pkgs=$(grep -vE '^\s*(#|$)' "$(repo_list "$name")" | paste -sd' ' -)
    dir="$cache/$name-$suite-$({ download_hash "$name" "$suite"; cat "$(repo_list "$name")"; } | sha256sum | cut -c1-12)-repo"
    for p in $pkgs; do
        if chroot "$rootfs" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            echo "local_repo: $p is installed in the image: it must not be" >&2; return 1
        fi
    done
    if [[ ! -d $dir ]]; then
        echo "local_repo: downloading $pkgs and what they need from $mirror_url into $dir"
        # the image's own apt resolves the dependencies against its dpkg status (setup-rootfs.sh then
        # rewrites sources.list and empties resolv.conf)
        cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"
        chmod 0755 "$rootfs"   # (mktemp's 0700 would keep apt's _apt user out of the chroot)
        echo "deb $mirror_url $suite main" >"$rootfs/etc/apt/sources.list"
        rm -f "$rootfs"/var/cache/apt/archives/*.deb
        chroot "$rootfs" apt-get -qq update \
            && chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y --download-only install $pkgs >/dev/null \
            || { echo "local_repo: apt-get in the image failed" >&2; return 1; }
        rm -rf "$dir.part" && mkdir -p "$dir.part"
        mv "$rootfs"/var/cache/apt/archives/*.deb "$dir.part/"
        mv "$dir.part" "$dir"
        find "$rootfs/var/lib/apt/lists" -maxdepth 1 -type f -delete
        rm -rf "$rootfs/var/lib/apt/lists/auxfiles"
    else
        echo "local_repo: using cached $dir"
    fi
    dest=$rootfs$REPO_DIR
    install -d -m 0755 "$dest"
    # named as in Debian's pool (<name>_<version without epoch>_<arch>.deb): apt's own downloads
    # carry the epoch as %3a, which a file: URI would decode to ':'
    local deb
    for deb in "$dir"/*.deb; do
        install -m 0644 "$deb" "$dest/$(basename "$deb" | sed -E 's/_[0-9]+%3a/_/')"
    done
    ( cd "$dest" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages ) \
        || { echo "local_repo: dpkg-scanpackages failed (dpkg-dev installed?)" >&2; return 1; }
    # a flat repository's Release (no signature: the sources line says trusted=yes), so that apt
    # does not warn about a repository without one
    {
        echo "Origin: kubeha-testbed"
        echo "Label: kubeha-testbed local mirror"
        echo "Suite: $suite"
        echo "Architectures: $(arch_of "$name")"
        echo "Date: $(LC_ALL=C date -u -R)"
        echo "SHA256:"
        printf ' %s %s Packages\n' "$(sha256sum <"$dest/Packages" | cut -d' ' -f1)" "$(stat -c %s "$dest/Packages")"
    } >"$dest/Release"
    echo "local_repo: $(ls "$dest"/*.deb | wc -l) packages in $REPO_DIR: $(cd "$dest" && ls *.deb | sed 's/_.*//' | paste -sd' ' -)"
}

# Let the kernel run arm64 programs through Debian's qemu-user-static (flag F: the interpreter is
# opened now, so chroots and containers need no copy of it). Idempotent.
enable_qemu_aarch64() {
    [[ -e /usr/lib/binfmt.d/qemu-aarch64.conf ]] \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null
    [[ -e /proc/sys/fs/binfmt_misc/register ]] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] \
        || cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
}

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
    local arch
    arch=$(arch_of "$name")
    [[ $arch == amd64 ]] || enable_qemu_aarch64
    mirror_url=$(mirror)
    mkdir -p "$cache"
    tarball="$cache/$name-$suite-$(download_hash "$name" "$suite").tgz"
    rootfs=$(mktemp -d /var/tmp/kubeha-rootfs-"$name".XXXXXX)
    trap 'rm -rf "$rootfs"' RETURN
    if [[ ! -s $tarball ]]; then
        echo "debootstrap: downloading $suite packages from $mirror_url into $tarball"
        rm -f "$tarball.part"
        debootstrap --arch="$arch" --variant=minbase --include="$(packages "$name")" \
            --make-tarball="$tarball.part" "$suite" "$rootfs/download" "$mirror_url" >"$rootfs.log" 2>&1 \
            || { tail -30 "$rootfs.log"; echo "debootstrap --make-tarball failed" >&2; return 1; }
        mv "$tarball.part" "$tarball"
        rm -rf "$rootfs/download"
    else
        echo "debootstrap: using cached $tarball"
    fi
    echo "debootstrap: installing $suite into $rootfs"
    debootstrap --arch="$arch" --variant=minbase --include="$(packages "$name")" --unpack-tarball="$tarball" \
        "$suite" "$rootfs" "$mirror_url" >"$rootfs.log" 2>&1 \
        || { tail -30 "$rootfs.log"; echo "debootstrap failed (log $rootfs.log)" >&2; return 1; }
    rm -f "$rootfs.log"
    if [[ -f $(repo_list "$name") ]]; then local_repo "$name" "$suite" "$rootfs" "$mirror_url" || return 1; fi
    "$here/setup-rootfs.sh" "$rootfs" "$suite" "$mirror_url" "$kind"
    local changes=()
    if [[ $kind == systemd ]]; then
        changes=(-c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker')
    else
        changes=(-c 'CMD ["/bin/bash"]')
    fi
    tar -C "$rootfs" --numeric-owner -c . | docker import --platform "linux/$arch" "${changes[@]}" \
        -m "kubeha $name image, recipe $hash" - "$image" >/dev/null
    [[ $name == node ]] && docker tag "$image" kubeha-node:latest
    echo "built $image in $((SECONDS - start)) s"
}

case $which in
    node) build_one node bookworm systemd ;;
    bullseye) build_one bullseye bullseye plain ;;
    bullseye-arm64) build_one bullseye-arm64 bullseye plain ;;
    all) build_one node bookworm systemd; build_one bullseye bullseye plain ;;
    hash) echo "node $(recipe_hash node) bullseye $(recipe_hash bullseye) bullseye-arm64 $(recipe_hash bullseye-arm64)" ;;
    *) echo "usage: $0 [node|bullseye|bullseye-arm64|all|hash]" >&2; exit 2 ;;
esac
