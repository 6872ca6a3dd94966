#!/bin/sh
# The broker's systemd unit passes systemd-analyze verify (with ExecStart pointed at the
# binary under test), and says what docs/OPERATIONS.md says: a stop drains, a reload is HUP.
set -eu
KBS=$1
UNIT=$2
command -v systemd-analyze >/dev/null 2>&1 || { echo "no systemd-analyze"; exit 77; }
D=$(mktemp -d /tmp/tdc-unit-XXXXXX)
trap 'rm -rf "$D"' EXIT
sed "s|^ExecStart=/usr/bin/tdcrypt-kbs|ExecStart=$(readlink -f "$KBS")|" "$UNIT" >"$D/tdcrypt-kbs.service"
out=$(systemd-analyze verify "$D/tdcrypt-kbs.service" 2>&1 || true)
[ -z "$out" ] || { echo "FAIL: systemd-analyze: $out"; exit 1; }
grep -q '^KillSignal=SIGUSR2$' "$UNIT" || { echo "FAIL: a stop does not drain"; exit 1; }
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$UNIT" || { echo "FAIL: no reload"; exit 1; }
echo ok
