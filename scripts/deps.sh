#!/usr/bin/env bash
# Installs the Debian 12 packages tdcrypt needs to build and test, by name.
# Idempotent: only calls apt-get when something is missing.
set -euo pipefail

BUILD_PKGS=(build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
	libssl-dev libjson-c-dev libcmocka-dev libcryptsetup-dev libsqlite3-dev
	libcurl4-openssl-dev libpq-dev postgresql libseccomp-dev libsystemd-dev libext2fs-dev e2fsprogs cryptsetup-bin dosfstools mtools gdisk qemu-utils
	xfsprogs btrfs-progs
	openssl python3 jq time curl iproute2
	scdoc man-db groff-base systemd
	debhelper dpkg-dev fakeroot lintian comerr-dev pkgconf
	clevis clevis-luks jose)
# scdoc: the man pages; debhelper ... pkgconf: the Debian packages (tests/pkg, debian/control
# Build-Depends); systemd: systemd-analyze and systemd-sysusers for the unit and the user, and
# systemd-journald for the broker's journal test; libsystemd-dev: its native journal logging;
# clevis clevis-luks jose: the clevis pin's test (tests/agent/clevis.sh); xfsprogs btrfs-progs:
# the non-ext4 root tests (tests/e2e/test-image-build.c, test-image-unpriv.sh; btrfs optional).

# --e2e: also what the real encrypted boot needs (QEMU, OVMF, debootstrap, ...).
E2E_PKGS=(qemu-system-x86 qemu-utils ovmf debootstrap gdisk dosfstools mtools e2fsprogs
	cryptsetup-bin busybox-static grub-efi-amd64-bin grub-common time swtpm swtpm-tools cpio)
want=("${BUILD_PKGS[@]}")
for a in "$@"; do
	case $a in
	--e2e) want+=("${E2E_PKGS[@]}") ;;
	*) want+=("$a") ;;
	esac
done

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
