#!/usr/bin/env bash
# Runs a command against a private PostgreSQL 15 cluster: initdb + pg_ctl in a temporary
# directory, as an unprivileged user (postgres when run as root, else the caller), Unix
# socket only (no TCP port), removed afterwards. The command sees
#   TDC_TEST_PG_HOST / TDC_TEST_PG_USER: where to connect (tests make their own databases)
#   TDC_TEST_PG_DIR: the cluster (for pg_ctl restart by fault tests)
# Usage: with-pg.sh COMMAND [ARGS...]   (exit status: the command's; 77 = skipped)
set -uo pipefail
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
	echo "with-pg: no PostgreSQL server installed (Debian package postgresql)" >&2
	exit 77
fi
if [ "$(id -u)" -eq 0 ]; then
	PGUSER_OS=postgres
	id "$PGUSER_OS" >/dev/null 2>&1 || { echo "with-pg: no postgres user" >&2; exit 77; }
	as() { runuser -u "$PGUSER_OS" -- "$@"; }
else
	PGUSER_OS=$(id -un)
	as() { "$@"; }
fi
D=$(mktemp -d /tmp/tdc-pg.XXXXXX)
chmod 755 "$D"
chown "$PGUSER_OS" "$D"
cleanup() {
	as "$BIN/pg_ctl" -D "$D/data" -m immediate stop >/dev/null 2>&1
	rm -rf "$D"
}
trap cleanup EXIT
as "$BIN/initdb" -D "$D/data" -U "$PGUSER_OS" --auth=trust -E UTF8 --no-instructions \
	>"$D/initdb.log" 2>&1 || { cat "$D/initdb.log" >&2; exit 1; }
# fsync stays on: the audit's durability is what the tests are about
as "$BIN/pg_ctl" -D "$D/data" -l "$D/server.log" -w -t 60 \
	-o "-c listen_addresses='' -c unix_socket_directories='$D' -c max_connections=200" \
	start >/dev/null || { cat "$D/server.log" >&2; exit 1; }
export TDC_TEST_PG_HOST="$D" TDC_TEST_PG_USER="$PGUSER_OS" TDC_TEST_PG_DIR="$D/data"
export TDC_TEST_PG_BIN="$BIN"
"$@"
rc=$?
[ $rc -eq 0 ] || { echo "--- server log" >&2; tail -20 "$D/server.log" >&2; }
exit $rc
