#!/bin/bash
# Boot a guest disk under QEMU TCG through OVMF + GRUB and wait for a marker line on the serial log.
#
# Usage: boot-guest.sh [options] IMAGE [-- extra qemu args]
#   --timeout SEC   give up after SEC seconds (default 300)
#   --marker STR    line to wait for (default TDCRYPT-GUEST-UP)
#   --log FILE      serial log path (default: WORK/serial.log)
#   --fwd CMD       command QEMU runs for each guest connection to 10.0.2.100:PORT, with the
#                   connection on its stdin/stdout (default: $TDCRYPT_GUESTFWD_CMD, else "true")
#   --port N        guest-side port of that one forwarded service (default 50051)
#   --mem MIB       guest memory (default 1024)   --smp N   vCPUs (default 1)
#   --write         boot IMAGE itself (default: a throwaway qcow2 overlay, IMAGE untouched)
#   --keep          keep the work directory
# Exit: 0 marker seen, 1 no marker (QEMU exited or timeout), 2 usage/setup error.
#
# Always TCG: /dev/kvm on the test machines is nested PVM that cannot run stock guest kernels.
# Network: user-mode slirp with restrict=on, so the only thing the guest can reach is the single
# guestfwd service (QEMU spawns CMD per connection; a -tcp: target would connect only once).
set -euo pipefail

TIMEOUT=300
MARKER=TDCRYPT-GUEST-UP
LOG=""
FWD=${TDCRYPT_GUESTFWD_CMD:-true}
PORT=50051
MEM=1024
SMP=1
WRITE=0
KEEP=0
IMAGE=""
EXTRA=()
usage() { sed -n '2,17p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	--timeout) TIMEOUT=$2; shift 2 ;;
	--marker) MARKER=$2; shift 2 ;;
	--log) LOG=$2; shift 2 ;;
	--fwd) FWD=$2; shift 2 ;;
	--port) PORT=$2; shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--smp) SMP=$2; shift 2 ;;
	--write) WRITE=1; shift ;;
	--keep) KEEP=1; shift ;;
	--) shift; EXTRA=("$@"); break ;;
	-h|--help) usage ;;
	-*) echo "boot-guest.sh: unknown option $1" >&2; usage ;;
	*) [ -z "$IMAGE" ] || usage; IMAGE=$1; shift ;;
	esac
done
[ -n "$IMAGE" ] && [ -r "$IMAGE" ] || usage
IMAGE=$(readlink -f "$IMAGE")

OVMF_CODE=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
for f in "$OVMF_CODE" "$OVMF_VARS"; do [ -r "$f" ] || { echo "boot-guest.sh: missing $f (apt-get install ovmf)" >&2; exit 2; }; done
command -v qemu-system-x86_64 >/dev/null || { echo "boot-guest.sh: qemu-system-x86_64 missing" >&2; exit 2; }

W=$(mktemp -d /tmp/tdcrypt-boot.XXXXXX)
QPID=""
cleanup() {
	if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; fi
	[ "$KEEP" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
[ -n "$LOG" ] || { LOG=$W/serial.log; KEEP=1; }
: > "$LOG"

FMT=$(qemu-img info --output=json "$IMAGE" | sed -n 's/^ *"format": "\(.*\)",*$/\1/p' | head -n1)
if [ "$WRITE" = 1 ]; then
	DISK=$IMAGE; CACHE=writeback
else
	qemu-img create -q -f qcow2 -b "$IMAGE" -F "$FMT" "$W/overlay.qcow2"
	DISK=$W/overlay.qcow2; FMT=qcow2; CACHE=unsafe
fi
cp "$OVMF_VARS" "$W/vars.fd"

# Inside -netdev, a comma in the command must be doubled.
NETDEV="user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:$PORT-cmd:${FWD//,/,,}"

T0=$(date +%s.%N)
qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m "$MEM" -smp "$SMP" \
	-nodefaults -no-user-config -display none -no-reboot \
	-drive if=pflash,format=raw,unit=0,readonly=on,file="$OVMF_CODE" \
	-drive if=pflash,format=raw,unit=1,file="$W/vars.fd" \
	-serial "file:$LOG" \
	-drive if=none,id=d0,file="$DISK",format="$FMT",cache=$CACHE,discard=unmap \
	-device virtio-blk-pci,drive=d0 \
	-netdev "$NETDEV" -device virtio-net-pci,netdev=n0,romfile= \
	-device virtio-rng-pci \
	"${EXTRA[@]}" </dev/null >"$W/qemu.log" 2>&1 &
QPID=$!

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
SEEN=""
RESULT=""
while :; do
	if [ -z "$SEEN" ] && grep -qF -- "$MARKER" "$LOG"; then
		SEEN=$(elapsed)
		echo "boot-guest: marker after ${SEEN}s: $(grep -F -m1 -- "$MARKER" "$LOG" | tr -d '\r')" >&2
	fi
	if ! kill -0 "$QPID" 2>/dev/null; then
		wait "$QPID" && rc=0 || rc=$?
		QPID=""
		RESULT="qemu exited rc=$rc after $(elapsed)s"
		break
	fi
	now=$(elapsed)
	if [ -n "$SEEN" ] && awk -v n="$now" -v s="$SEEN" 'BEGIN{exit !(n - s > 30)}'; then
		RESULT="guest did not power off within 30s of the marker; killed"
		break
	fi
	if awk -v n="$now" -v t="$TIMEOUT" 'BEGIN{exit !(n > t)}'; then
		RESULT="timeout after ${TIMEOUT}s"
		break
	fi
	sleep 0.2
done
echo "boot-guest: $RESULT (work dir $W)" >&2
if [ -n "$SEEN" ]; then
	echo "PASS marker ${SEEN}s total $(elapsed)s"
	exit 0
fi
[ -s "$W/qemu.log" ] && sed 's/^/qemu: /' "$W/qemu.log" >&2
echo "--- last serial lines ($LOG) ---" >&2
tail -n 25 "$LOG" | tr -d '\r' >&2
KEEP=1
echo "FAIL"
exit 1
