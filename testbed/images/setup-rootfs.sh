#!/usr/bin/env bash
# Post-debootstrap fixes of a root file system so that it runs as a container image.
# Usage: setup-rootfs.sh ROOTFS SUITE MIRROR (systemd|plain)
set -euo pipefail
rootfs=$1 suite=$2 mirror=$3 kind=$4

# apt sources of the image itself (same mirror as the build)
cat >"$rootfs/etc/apt/sources.list" <<SRC
deb $mirror $suite main
SRC

# Docker bind-mounts these at run time; the build host's copies must not leak into the image.
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"
# Empty machine-id: systemd generates a transient one at each boot (a distinct one per container).
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"

if [[ $kind == systemd ]]; then
    # Services the Debian packages enable but that the install playbook writes and starts itself,
    # the kubespray way (etcd.service from /etc/systemd/system, haproxy on the LB only, nginx as a
    # static pod on workers): disabled, not masked, so our own units can be enabled later.
    for unit in etcd.service haproxy.service nginx.service; do
        systemctl --root="$rootfs" disable "$unit" >/dev/null 2>&1 || true
    done
    # Units that fail or make no sense in an unprivileged container.
    systemctl --root="$rootfs" mask \
        systemd-firstboot.service systemd-remount-fs.service systemd-sysctl.service \
        systemd-modules-load.service systemd-udevd.service systemd-udev-trigger.service \
        systemd-hwdb-update.service systemd-journald-audit.socket systemd-binfmt.service \
        sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
        sys-fs-fuse-connections.mount dev-hugepages.mount proc-sys-fs-binfmt_misc.automount \
        getty.target console-getty.service \
        apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
        fstrim.timer dpkg-db-backup.timer >/dev/null 2>&1
    # Default target: multi-user (no graphical), journald to memory only.
    ln -sf /lib/systemd/system/multi-user.target "$rootfs/etc/systemd/system/default.target"
    mkdir -p "$rootfs/etc/systemd/journald.conf.d"
    printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' >"$rootfs/etc/systemd/journald.conf.d/kubeha.conf"
    # SSH the way operators reach their hosts: the login user kubeha (no password: key only, the key
    # is installed per bed by testbed/bed.py), passwordless sudo, no root login, no passwords.
    chroot "$rootfs" useradd --create-home --shell /bin/bash kubeha
    chroot "$rootfs" passwd --lock kubeha >/dev/null
    printf 'kubeha ALL=(ALL:ALL) NOPASSWD: ALL\n' >"$rootfs/etc/sudoers.d/kubeha"
    chmod 0440 "$rootfs/etc/sudoers.d/kubeha"
    printf '%s\n' 'PermitRootLogin no' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' \
        'AllowUsers kubeha' >"$rootfs/etc/ssh/sshd_config.d/kubeha.conf"
    # No host keys in the image (every container would share them): each node makes its own at its
    # first boot, before sshd starts; bed.py reads them out of band into the bed's known_hosts.
    rm -f "$rootfs"/etc/ssh/ssh_host_*
    cat >"$rootfs/etc/systemd/system/kubeha-ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=SSH host keys of this node (made at first boot)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
RequiredBy=ssh.service
UNIT
    systemctl --root="$rootfs" enable kubeha-ssh-hostkeys.service ssh.service >/dev/null 2>&1
    # nginx-light's default site would listen on :80 if anybody started it; the test bed never does.
    rm -f "$rootfs/etc/nginx/sites-enabled/default"
fi

# Smaller image: no package caches.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*_Packages
rm -rf "$rootfs"/tmp/* "$rootfs"/var/tmp/*
