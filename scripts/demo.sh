#!/usr/bin/env bash
# The main job, end to end, on this kind of machine (Debian 12, root, no TDX):
# installs what it needs, builds tdcrypt, builds (or reuses) a small Debian 12 guest,
# creates a simulator PKI, starts tdcrypt-kbs on 127.0.0.1 with its embedded SQLite
# store, encrypts the guest with `tdcrypt image encrypt --emit-policy` (key registered with
# the broker; the release policy predicted from the encrypted image itself: MRTD of the
# firmware, RTMR1 and RTMR2 event by event), boots it under QEMU (TCG, OVMF, a vTPM) with the
# quote simulator, and shows the unlock and that what the firmware, GRUB and Linux measured is
# what was predicted; then shows the broker refusing the same guest booted with a changed
# kernel command line, naming the event.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
log=$(mktemp /tmp/tdcrypt-demo.XXXXXX.log)
./scripts/e2e.sh --only happy --only cmdline --keep "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
W=$(sed -n 's/.*work dir \([^ ,)]*\).*/\1/p' "$log" | head -1)
TD=${TDCRYPT_BUILD:-$(pwd)/build}/cli/tdcrypt
if [ -n "$W" ] && [ -d "$W" ]; then
	echo
	echo "== the reference values predicted from the encrypted image (tdcrypt measure --target sim)"
	"$TD" measure --image "$W/enc.raw" --target sim 2>/dev/null | grep -E '^(firmware|MRTD|RTMR|measured|note)' | cut -c1-150
	echo
	echo "== the guest's serial console: the agent unlocking the root (QEMU TCG, simulated quote)"
	grep -a -E 'tdcrypt-agent|TDCRYPT-GUEST-UP' "$W/happy.serial" | grep -v timestamp
	echo
	echo "== what the boot measured (the vTPM log) against the prediction"
	cat "$W/happy.compare" 2>/dev/null
	echo
	echo "== the same guest with one word added to its kernel command line"
	grep -a -E 'tdcrypt-agent' "$W/cmdline.serial" | grep -v timestamp
	echo
	echo "== the broker's audit log"
	cut -c1-400 "$W/audit-happy.txt" "$W/audit-neg.txt" 2>/dev/null
	echo
	echo "(work directory with serial logs, broker log, store and policy: $W)"
fi
exit "$rc"
