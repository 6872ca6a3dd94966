#!/bin/bash
# `tdcrypt image encrypt` on a real guest whose initramfs generator fails inside the guest step:
# the cached build-guest.sh image with one extra initramfs-tools hook that exits 1 (written into
# a private raw copy with debugfs, nothing mounted). Expected: a nonzero exit naming the
# generator, no OUT, no OUT.tmp-*, no key file, nothing of the work dir left mounted or looped.
# Needs what the guest step needs today (root: loop mount + chroot).
# Usage: test-image-genfail.sh GUEST.qcow2 [BUILD_DIR]   (GUEST: tests/e2e/build-guest.sh's output)
set -uo pipefail

GUEST=${1:?usage: test-image-genfail.sh GUEST.qcow2 [BUILD_DIR]}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$(readlink -f "${2:-$ROOT/build}")
TD=$BUILD/cli/tdcrypt
PATH=$PATH:/usr/sbin:/sbin
[ "$(id -u)" = 0 ] || { echo "SKIP: the guest step needs root"; exit 77; }
for t in debugfs sgdisk qemu-img losetup; do command -v $t >/dev/null || { echo "SKIP: missing $t"; exit 77; }; done
W=$(mktemp -d /tmp/tdc-genfail-XXXXXX)
trap 'rm -rf "$W"' EXIT

qemu-img convert -f qcow2 -O raw "$GUEST" "$W/in.raw" || { echo "FAIL genfail: cannot convert $GUEST"; exit 1; }
# partition 2 is the root (build-guest.sh layout); write the hook into a copy of it
start=$(sgdisk -i 2 "$W/in.raw" | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
size=$(sgdisk -i 2 "$W/in.raw" | sed -n 's/^Partition size: \([0-9]*\).*/\1/p')
dd if="$W/in.raw" of="$W/root.img" bs=512 skip="$start" count="$size" conv=sparse status=none
# shellcheck disable=SC2016 # the hook's own $1
printf '#!/bin/sh\n[ "$1" = prereqs ] && exit 0\necho "tdcrypt test: this generator fails" >&2\nexit 1\n' >"$W/hook"
debugfs -w -R "write $W/hook /etc/initramfs-tools/hooks/00-tdcrypt-test-fail" "$W/root.img" >/dev/null 2>&1
for c in "sif /etc/initramfs-tools/hooks/00-tdcrypt-test-fail mode 0100755" \
	"sif /etc/initramfs-tools/hooks/00-tdcrypt-test-fail uid 0" \
	"sif /etc/initramfs-tools/hooks/00-tdcrypt-test-fail gid 0"; do
	debugfs -w -R "$c" "$W/root.img" >/dev/null 2>&1
done
dd if="$W/root.img" of="$W/in.raw" bs=512 seek="$start" conv=notrunc,sparse status=none
rm -f "$W/root.img"

mounts_before=$(grep -cF "$W" /proc/self/mountinfo)
a=$(date +%s)
"$TD" image encrypt "$W/in.raw" "$W/out.raw" --format raw --secret-id genfail \
	--broker 10.0.2.100:50051 --broker-pin "$(printf '%064d' 0)" --key-out "$W/key.bin" \
	--agent "$BUILD/agent/tdcrypt-agent" --guest-dir "$ROOT/guest" >"$W/out.log" 2>&1
rc=$?
secs=$(( $(date +%s) - a ))
FAILS=0
fail() { echo "FAIL genfail: $*"; FAILS=$((FAILS + 1)); }
[ "$rc" != 0 ] || fail "the build succeeded"
grep -q "update-initramfs" "$W/out.log" || fail "the error does not name the generator: $(tail -3 "$W/out.log" | tr '\n' '|')"
[ ! -e "$W/out.raw" ] || fail "OUT exists"
[ ! -e "$W/key.bin" ] || fail "the key file exists"
for d in "$W"/out.raw.tmp-*; do [ -e "$d" ] && fail "work dir left: $d"; done
[ "$(grep -cF "$W" /proc/self/mountinfo)" = "$mounts_before" ] || fail "mounts left: $(grep -F "$W" /proc/self/mountinfo)"
losetup -a 2>/dev/null | grep -qF "$W" && fail "loop devices left: $(losetup -a | grep -F "$W")"
if [ "$FAILS" = 0 ]; then
	echo "PASS genfail (exit $rc after ${secs} s: $(grep -m1 "image encrypt:" "$W/out.log" | cut -c1-200))"
	exit 0
fi
exit 1
