#!/bin/sh
# The daemon's privilege split (docs/ARCHITECTURE.md, "Privilege separation"): the
# network process runs as another user, without capabilities, with no_new_privs and
# seccomp, and cannot open the store or the master key (its own check at start says so,
# and it refuses to run where it could); the keeper keeps the store, serves the admin
# socket and releases keys.
# usage: privsep.sh TDCRYPT_KBS TDCRYPT
set -eu
KBS=$1
TDCRYPT=$2
D=$(mktemp -d /tmp/tdc-privsep-XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- broker log"; cat "$D/log" 2>/dev/null; exit 1; }
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: the split drops from root to --user; run as root"
	exit 77
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker.test \
	-keyout "$D/broker.key" -out "$D/broker.crt" -days 1 2>/dev/null
"$TDCRYPT" sim init "$D/sim" >/dev/null 2>&1 || fail "sim init"
"$KBS" init --master-key "$D/master.key" --db "$D/kbs.db" 2>/dev/null
cat > "$D/kbs.json" <<J
{"listen": "127.0.0.1:0", "cert": "$D/broker.crt", "key": "$D/broker.key",
 "db": "$D/kbs.db", "master_key": "$D/master.key", "collateral_dir": "$D/sim/collateral",
 "admin_socket": "$D/run/kbs.sock", "allow_simulator_root": "$D/sim/sim-root.pem",
 "workers": 2, "user": "nobody"}
J
start() {
	: >"$D/log"
	"$KBS" --config "$D/kbs.json" "$@" 2>"$D/log" &
	PID=$!
	for _ in $(seq 100); do [ -S "$D/run/kbs.sock" ] && return 0; kill -0 "$PID" 2>/dev/null || return 1; sleep 0.1; done
	return 1
}
stop() { kill -TERM "$PID"; wait "$PID" || fail "broker exit status $?"; PID=; }

start || fail "the broker did not start"
line=$(grep '"event":"sandboxed"' "$D/log") || fail "no sandboxed line"
echo "$line" | grep -q '"store":"EACCES"' || fail "the network process could open the store: $line"
echo "$line" | grep -q '"master_key":"EACCES"' || fail "the network process could open the master key: $line"
nobody=$(id -u nobody)
echo "$line" | grep -q "\"uid\":$nobody" || fail "not running as nobody: $line"
# the network process, seen from outside: the broker's only child
NET=$(pgrep -P "$PID" | head -n1)
[ -n "$NET" ] || fail "no network process"
st=/proc/$NET/status
[ "$(awk '/^Uid:/ {print $3}' "$st")" = "$nobody" ] || fail "effective uid $(grep ^Uid: "$st")"
[ "$(awk '/^CapEff:/ {print $2}' "$st")" = 0000000000000000 ] || fail "capabilities: $(grep ^Cap "$st")"
[ "$(awk '/^CapPrm:/ {print $2}' "$st")" = 0000000000000000 ] || fail "capabilities: $(grep ^Cap "$st")"
[ "$(awk '/^NoNewPrivs:/ {print $2}' "$st")" = 1 ] || fail "no_new_privs not set"
if echo "$line" | grep -q '"seccomp":true'; then
	[ "$(awk '/^Seccomp:/ {print $2}' "$st")" = 2 ] || fail "no seccomp filter: $(grep ^Seccomp "$st")"
fi
# the keeper is the one with the store open; the network process has no descriptor of it
ls -l "/proc/$NET/fd" 2>/dev/null | grep -q "kbs.db" && fail "the network process holds the store open"
ls -l "/proc/$PID/fd" | grep -q "kbs.db" || fail "the keeper does not hold the store"
# the split still does its job: admin through the keeper, metrics from the network side
export TDCRYPT_KBS_SOCKET="$D/run/kbs.sock"
printf 'k' > "$D/key"
"$TDCRYPT" secret add s1 --key-file "$D/key" >/dev/null 2>&1 || fail "secret add"
"$TDCRYPT" broker metrics | grep -qE '^accepted +[0-9]+$' || fail "metrics through the keeper"
stop

# a store others may read (and a directory they may enter): Landlock still keeps the
# network process out; without Landlock the network process refuses to run
chmod 0755 "$D"
chmod 0644 "$D/kbs.db"
if start; then
	line=$(grep '"event":"sandboxed"' "$D/log")
	echo "$line" | grep -q '"landlock_abi":0' && fail "started without Landlock on a readable store: $line"
	echo "$line" | grep -q '"store":"EACCES"' || fail "Landlock let the network process open the store: $line"
	stop
else
	PID=
	grep -q "the network process could open the store" "$D/log" || fail "refused, but not for that: $(cat "$D/log")"
fi
chmod 0600 "$D/kbs.db"
chmod 0700 "$D"

# an unknown --user: refused
"$KBS" --config "$D/kbs.json" --user no-such-user-tdcrypt 2>"$D/log" && fail "started as an unknown user"
grep -q "no such user for the network process" "$D/log" || fail "unknown user: $(cat "$D/log")"
echo "ok"
