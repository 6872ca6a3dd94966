#!/bin/sh
# The broker's systemd unit passes systemd-analyze verify (with ExecStart pointed at the
# binary under test, its Documentation= man pages looked up among the built ones), and says
# what docs/OPERATIONS.md says: a stop drains, a reload is HUP.
# usage: unit-check.sh TDCRYPT-KBS UNIT [BUILT-MAN-PAGE...]
set -eu
KBS=$1
UNIT=$2
shift 2
command -v systemd-analyze >/dev/null 2>&1 || { echo "no systemd-analyze"; exit 77; }
D=$(mktemp -d /tmp/tdc-unit-XXXXXX)
trap 'rm -rf "$D"' EXIT
sed "s|^ExecStart=/usr/sbin/tdcrypt-kbs|ExecStart=$(readlink -f "$KBS")|" "$UNIT" >"$D/tdcrypt-kbs.service"
man=--man=no
if [ $# -gt 0 ]; then
	for p in "$@"; do
		mkdir -p "$D/man/man${p##*.}"
		ln -s "$(readlink -f "$p")" "$D/man/man${p##*.}/"
	done
	man=--man=yes
fi
out=$(MANPATH=$D/man systemd-analyze verify "$man" "$D/tdcrypt-kbs.service" 2>&1 || true)
[ -z "$out" ] || { echo "FAIL: systemd-analyze: $out"; exit 1; }
grep -q '^KillSignal=SIGUSR2$' "$UNIT" || { echo "FAIL: a stop does not drain"; exit 1; }
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$UNIT" || { echo "FAIL: no reload"; exit 1; }
echo ok
