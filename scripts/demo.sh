#!/usr/bin/env bash
# The main job, end to end, on this kind of machine (Debian 12, root, no TDX):
# installs what it needs, builds tdcrypt, builds (or reuses) a small Debian 12 guest,
# creates a simulator PKI, starts tdcrypt-kbs on 127.0.0.1 with its embedded SQLite
# store, encrypts the guest with `tdcrypt image encrypt` (key registered with the
# broker, policy pinned to the guest's measurements), boots it under QEMU (TCG) with
# the quote simulator, and shows the unlock; then shows the broker refusing the same
# guest booted with a changed kernel command line.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp /tmp/tdcrypt-demo.XXXXXX.log)
./scripts/e2e.sh --only happy --only cmdline --keep "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
W=$(sed -n 's/.*work dir \([^ ,)]*\).*/\1/p' "$log" | head -1)
if [ -n "$W" ] && [ -d "$W" ]; then
	echo
	echo "== the guest's serial console: the agent unlocking the root (QEMU TCG, simulated quote)"
	grep -a -E 'tdcrypt-agent|TDCRYPT-GUEST-UP' "$W/happy.serial" | grep -v timestamp
	echo
	echo "== the same guest with one word added to its kernel command line (RTMR2 changes)"
	grep -a -E 'tdcrypt-agent' "$W/cmdline.serial" | grep -v timestamp
	echo
	echo "== the broker's audit log"
	cat "$W/audit-happy.txt" "$W/audit-neg.txt" 2>/dev/null
	echo
	echo "(work directory with serial logs, broker log and store: $W)"
fi
exit "$rc"
