#!/bin/bash
# Boot-time unlock latency, from the agent's own CLOCK_MONOTONIC timestamps on the serial log:
#   tdcrypt-agent: timestamp event=start|quote|connected|key|mapped monotonic=S.US since_start_ms=MS
# Segments: start->quote   header check + per-boot key + quote generation (provider dependent)
#           quote->connected  TCP + TLS 1.3 mutual handshake (network round trips)
#           connected->key    HTTP request, broker verification + policy, response
#           key->mapped       keyslot open + dm-crypt activation
#   unlock excluding quote generation = (mapped - start) - (quote - start) + header check,
#   reported as "mapped - quote" (upper bound on everything but the quote) and total.
#
# Usage: bench-unlock.sh [SERIAL_LOG...]
#   With logs: parses them (one line per boot). Without: runs one happy-path boot
#   (tests/e2e/run-e2e.sh --only happy --keep, root, minutes of TCG) and parses its log.
# Env: TDCRYPT_BUILD (passed to run-e2e.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

LOGS=("$@")
if [ ${#LOGS[@]} -eq 0 ]; then
	out=$("$ROOT/tests/e2e/run-e2e.sh" --only happy --keep ${TDCRYPT_BUILD:+--build "$TDCRYPT_BUILD"} 2>&1) || {
		echo "$out" | tail -20 >&2
		echo "bench-unlock: the happy-path boot failed" >&2
		exit 1
	}
	dir=$(echo "$out" | sed -n 's/^== tdcrypt end-to-end results (work dir \([^,]*\),.*/\1/p' | tail -n1)
	LOGS=("$dir/happy.serial")
	echo "$out" | grep -E '^(PASS|FAIL) happy-marker' >&2 || true
fi

printf '%-40s %9s %9s %9s %9s %9s %9s\n' log start-quote quote-conn conn-key key-mapped \
	mapped-quote total
for f in "${LOGS[@]}"; do
	tr -d '\r' <"$f" | awk -v name="$(basename "$(dirname "$f")")/$(basename "$f")" '
		/tdcrypt-agent: timestamp event=/ {
			ev = ""; ms = ""
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^event=/) ev = substr($i, 7)
				if ($i ~ /^since_start_ms=/) ms = substr($i, 16)
			}
			# the first "connected" is the attempt that got the key (retries add more)
			if (ev != "" && !(ev in t)) t[ev] = ms + 0
		}
		END {
			if (!("start" in t) || !("mapped" in t)) { printf "%-40s no complete agent timestamps\n", name; exit 1 }
			printf "%-40s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f  ms\n", name,
				t["quote"] - t["start"], t["connected"] - t["quote"], t["key"] - t["connected"],
				t["mapped"] - t["key"], t["mapped"] - t["quote"], t["mapped"] - t["start"]
		}'
done
