#!/bin/sh
# tdcrypt-kbs and `tdcrypt secret|policy` end to end: init, start the daemon on an
# ephemeral loopback port, manage secrets and policies over the admin socket,
# check that no secret reaches the log, stop it with SIGTERM.
set -eu
KBS=$1
TDCRYPT=$2
D=$(mktemp -d /tmp/tdc-kbs-cli-XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- broker log"; cat "$D/log" 2>/dev/null; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker.test \
	-keyout "$D/broker.key" -out "$D/broker.crt" -days 1 2>/dev/null
# the store: a file, or (under tests/pg/with-pg.sh) a new PostgreSQL database
DB="$D/kbs.db"
if [ -n "${TDC_TEST_PG_HOST:-}" ]; then
	name="tdccli_$$"
	"$TDC_TEST_PG_BIN/createdb" -h "$TDC_TEST_PG_HOST" -U "$TDC_TEST_PG_USER" "$name" || fail "createdb"
	DB="postgresql:///$name?host=$TDC_TEST_PG_HOST&user=$TDC_TEST_PG_USER"
fi
"$KBS" init --master-key "$D/master.key" --db "$DB" 2>/dev/null || fail "init"
[ "$(stat -c %a "$D/master.key")" = 600 ] || fail "master key mode"
"$KBS" init --master-key "$D/master.key" --db "$DB" 2>"$D/err" && fail "init over an existing store"
grep -q "exists; init only makes a new one" "$D/err" || fail "init refusal: $(cat "$D/err")"
cat > "$D/kbs.json" <<J
{"listen": "127.0.0.1:0", "cert": "$D/broker.crt", "key": "$D/broker.key",
 "db": "$DB", "master_key": "$D/master.key", "collateral_dir": "$D/none",
 "admin_socket": "$D/run/kbs.sock", "workers": 1}
J
# a flag overrides the file
"$KBS" --config "$D/kbs.json" --workers 2 2>"$D/log" &
PID=$!
for _ in $(seq 50); do [ -S "$D/run/kbs.sock" ] && break; sleep 0.1; done
[ -S "$D/run/kbs.sock" ] || fail "no admin socket"
grep -q '"event":"listening"' "$D/log" || fail "no listening line"
grep -q '"workers":2' "$D/log" || fail "flag did not override the config"
[ "$(stat -c %a "$D/run/kbs.sock")" = 600 ] || fail "admin socket mode"
export TDCRYPT_KBS_SOCKET="$D/run/kbs.sock"

printf 'top-secret-passphrase' > "$D/key"
"$TDCRYPT" secret add luks-root --key-file "$D/key" >/dev/null 2>"$D/err" || fail "secret add"
grep -q "no policy" "$D/err" || fail "no warning about the missing policy"
echo -n 'from-stdin' | "$TDCRYPT" secret add data --generate 32 >/dev/null 2>&1 || fail "generate"
echo -n 'from-stdin' | "$TDCRYPT" secret add piped >/dev/null 2>&1 || fail "stdin"
"$TDCRYPT" secret add luks-root --key-file "$D/key" >/dev/null 2>&1 && fail "duplicate accepted"
out=$("$TDCRYPT" secret list)
echo "$out" | grep -q "^luks-root .*NONE" || fail "list: $out"
echo "$out" | grep -q "^data " || fail "list: $out"
printf '{"mrtd":["%096d"],"tcb_status":["UpToDate"]}' 0 > "$D/policy.json"
"$TDCRYPT" policy set luks-root "$D/policy.json" >/dev/null || fail "policy set"
"$TDCRYPT" policy show luks-root | grep -q '"allow_debug":false' || fail "policy show defaults"
printf '{"mrtd":["zz"]}' > "$D/bad.json"
set +e
"$TDCRYPT" policy set luks-root "$D/bad.json" 2>"$D/err"; rc=$?
set -e
[ $rc = 3 ] || fail "bad policy: exit $rc"
"$TDCRYPT" secret rotate luks-root --generate 64 >/dev/null || fail "rotate"
printf '{"legacy-a":"pw1","legacy-b":"pw2"}' > "$D/secret.json"
"$TDCRYPT" secret import "$D/secret.json" 2>"$D/err" | grep -q "imported 2" || fail "import"
grep -q PLAINTEXT "$D/err" || fail "no plaintext warning"
"$TDCRYPT" secret rm piped >/dev/null || fail "rm"
"$TDCRYPT" secret list | grep -q "^piped " && fail "rm did not remove"
"$TDCRYPT" secret audit >/dev/null || fail "audit"
# the store while the broker runs: a second broker, init and restore refused; check and an
# online backup work
if [ -n "${TDC_TEST_PG_HOST:-}" ]; then
	# PostgreSQL: brokers share the store, but not an admin socket
	"$KBS" --config "$D/kbs.json" 2>"$D/err2" && fail "a second broker on the same admin socket"
	grep -q "the admin socket is in use by a running broker" "$D/err2" || fail "second broker: $(cat "$D/err2")"
	"$KBS" init --config "$D/kbs.json" 2>"$D/err2" && fail "init over a live store"
	grep -q "exists; init only makes a new one" "$D/err2" || fail "init: $(cat "$D/err2")"
	"$KBS" check --config "$D/kbs.json" | grep -q "quick_check ok, master key ok" || fail "check"
	"$KBS" backup --config "$D/kbs.json" --out "$D/backup.db" 2>"$D/err2" && fail "backup of PostgreSQL"
	grep -q "pg_dump" "$D/err2" || fail "backup refusal: $(cat "$D/err2")"
	"$KBS" --config "$D/kbs.json" --db "${DB%%\?*}?host=/nonexistent" 2>"$D/err2" && fail "unreachable database accepted"
	grep -q "cannot connect to the store" "$D/err2" || fail "unreachable: $(cat "$D/err2")"
	kill -TERM "$PID"
	wait "$PID" || fail "broker exit status"
	PID=
	for s in top-secret-passphrase from-stdin pw1 pw2 dG9wLXNlY3JldC1wYXNzcGhyYXNl; do
		grep -q "$s" "$D/log" && fail "secret '$s' in the log"
	done
	echo "ok (postgresql)"
	exit 0
fi
"$KBS" --config "$D/kbs.json" 2>"$D/err2" && fail "a second broker on the same store"
grep -q "the store is in use" "$D/err2" || fail "second broker: $(cat "$D/err2")"
"$KBS" init --config "$D/kbs.json" 2>"$D/err2" && fail "init over a live store"
grep -q "exists; init only makes a new one" "$D/err2" || fail "init: $(cat "$D/err2")"
"$KBS" check --config "$D/kbs.json" | grep -q "quick_check ok, master key ok" || fail "check"
"$KBS" backup --config "$D/kbs.json" --out "$D/backup.db" 2>/dev/null || fail "online backup"
[ "$(stat -c %a "$D/backup.db")" = 600 ] || fail "backup mode"
"$KBS" restore --config "$D/kbs.json" --from "$D/backup.db" 2>"$D/err2" && fail "restore under a live broker"
grep -q "the store is in use" "$D/err2" || fail "restore: $(cat "$D/err2")"
out=$("$TDCRYPT" broker metrics) || fail "metrics"
echo "$out" | grep -qE '^accepted +[0-9]+$' || fail "metrics: $out"
"$TDCRYPT" broker metrics --json | grep -q '"handshake_failed":' || fail "metrics --json"

kill -TERM "$PID"
wait "$PID" || fail "broker exit status"
PID=
grep -q '"event":"stopping"' "$D/log" || fail "no clean stop"
# stopped: the backup replaces the store (the later rotation and removal undone)
"$KBS" restore --config "$D/kbs.json" --from "$D/backup.db" 2>/dev/null || fail "restore"
"$KBS" check --full --config "$D/kbs.json" | grep -q "integrity_check ok" || fail "check --full"
[ -e "$D/run/kbs.sock" ] && fail "admin socket left behind"
for s in top-secret-passphrase from-stdin pw1 pw2 dG9wLXNlY3JldC1wYXNzcGhyYXNl; do
	grep -q "$s" "$D/log" && fail "secret '$s' in the log"
done
echo "ok"
