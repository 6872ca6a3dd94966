#!/usr/bin/env bash
# How long `tdcrypt measure` takes: MRTD of Debian's OVMF.fd (2 MiB, 3 MB of SHA-384 records)
# plus the boot's events, on the test guest (kernel 8 MiB, initrd ~30 MiB), for both boot
# paths, raw and qcow2 (qcow2 is read through a raw copy). Median of 5 runs each, wall clock.
# usage: bench/bench-measure.sh [BUILD_DIR] [GUEST_IMAGE]   (default: build, the cached e2e guest)
set -euo pipefail
B=${1:-build}
IMG=${2:-$(ls -t "${TDCRYPT_CACHE:-/var/cache/tdcrypt}"/guest-*.qcow2 2>/dev/null | head -n1)}
TD=$B/cli/tdcrypt
[ -x "$TD" ] && [ -r "$IMG" ] || { echo "usage: $0 BUILD_DIR GUEST_IMAGE (build the e2e guest first)" >&2; exit 2; }
W=$(mktemp -d /tmp/bench-measure.XXXXXX)
trap 'rm -rf "$W"' EXIT
qemu-img convert -O raw "$IMG" "$W/guest.raw"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # label args...
	local label=$1
	shift
	for _ in 1 2 3 4 5; do
		/usr/bin/time -f '%e %M' -o "$W/t" "$TD" measure "$@" >/dev/null
		cat "$W/t"
	done >"$W/runs"
	printf '%-44s %6.2f s  peak RSS %6d KiB\n' "$label" "$(cut -d' ' -f1 "$W/runs" | median)" \
		"$(cut -d' ' -f2 "$W/runs" | median)"
}
echo "tdcrypt measure on $(basename "$IMG"), firmware /usr/share/ovmf/OVMF.fd ($(nproc) cores)"
run "uefi boot (GPT, GRUB, kernel, initrd), raw" --image "$W/guest.raw" --target sim
run "direct boot (patched kernel, initrd), raw" --image "$W/guest.raw" --target sim --boot direct
run "uefi boot, qcow2 (converted to raw first)" --image "$IMG" --target sim
