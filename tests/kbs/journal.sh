#!/bin/sh
# The broker's log formats against the real thing (docs/OPERATIONS.md "Logs"): a real
# systemd-journald, run in a private mount namespace with its own /run/systemd/journal
# and /run/log/journal, receives the events of the keeper and of the sandboxed network
# process natively (--log journal, and --log auto when $JOURNAL_STREAM is stderr's
# DEV:INODE); journalctl reads them back: MESSAGE, PRIORITY from the level, TDCRYPT_EVENT,
# TDCRYPT_REQUEST_ID, TDCRYPT_SECRET_ID, and never the secret. Then --log text and
# --log json on stderr, and an auto whose $JOURNAL_STREAM is another file's: JSON lines.
# usage: journal.sh TDCRYPT_KBS TDCRYPT KBS_PROBE   (root: it mounts; else skipped)
set -eu
KBS=$1
TDCRYPT=$2
PROBE=$3
if [ -z "${TDC_JOURNAL_NS:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (mount namespace, journald)"; exit 77; }
	[ -x /lib/systemd/systemd-journald ] || { echo "FAIL: no systemd-journald (Debian: systemd)"; exit 1; }
	TDC_JOURNAL_NS=1 exec unshare -m --propagation private "$0" "$@"
fi
D=$(mktemp -d /tmp/tdc-journal-XXXXXX)
PID=
JPID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null
	[ -n "$JPID" ] && kill "$JPID" 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- broker stderr"; cat "$D/log" 2>/dev/null; exit 1; }
wait_line() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# ---- a journald of our own: nothing outside this namespace sees its sockets or files
mkdir -p /run/systemd /run/log
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
[ -d /var/log/journal ] && mount -t tmpfs tmpfs /var/log/journal
mkdir -p /run/systemd/journal
/lib/systemd/systemd-journald >"$D/journald.out" 2>&1 &
JPID=$!
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
[ -S /run/systemd/journal/socket ] || fail "journald did not start: $(cat "$D/journald.out")"
# journald reads its socket on its own time: --sync has it write what it has received
J() { journalctl --sync 2>/dev/null || sleep 1; journalctl -D /run/log/journal --no-pager "$@"; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker.test \
	-keyout "$D/broker.key" -out "$D/broker.crt" -days 1 2>/dev/null
"$TDCRYPT" sim init "$D/sim" >/dev/null 2>&1 || fail "sim init"
"$KBS" init --master-key "$D/master.key" --db "$D/kbs.db" 2>/dev/null
cat > "$D/kbs.json" <<J
{"listen": "127.0.0.1:0", "user": "nobody",
 "cert": "$D/broker.crt", "key": "$D/broker.key",
 "db": "$D/kbs.db", "master_key": "$D/master.key", "collateral_dir": "$D/sim/collateral",
 "admin_socket": "$D/run/kbs.sock", "allow_simulator_root": "$D/sim/sim-root.pem",
 "workers": 1}
J
export TDCRYPT_KBS_SOCKET="$D/run/kbs.sock"
SECRET=journal-test-secret-value-5f3a
printf '%s' "$SECRET" > "$D/key"
MRTD=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["mrtd"])' "$D/sim/td.json")
printf '{"allow_simulator":true,"mrtd":["%s"]}' "$MRTD" > "$D/p0.json"
printf '{"allow_simulator":true,"mrtd":["%096d"]}' 1 > "$D/p1.json"

# start_broker ARGS...: the broker, its stderr in $D/log; waits for the admin socket
start_broker() {
	: >"$D/log"
	"$KBS" --config "$D/kbs.json" "$@" 2>>"$D/log" &
	PID=$!
	for _ in $(seq 100); do [ -S "$D/run/kbs.sock" ] && return 0; sleep 0.1; done
	fail "the broker did not start ($*)"
}
stop_broker() { kill "$PID"; wait "$PID" || true; PID=; }
# the port: from the journal's listening entry, or from stderr
port_of() {
	for _ in $(seq 50); do
		p=$(J -o export TDCRYPT_EVENT=listening | sed -n 's/^TDCRYPT_PORT=//p' | tail -1)
		[ -n "$p" ] && { echo "$p"; return; }
		sleep 0.1
	done
}

# ---- 1. --log journal: a release and a denial, read back field by field
start_broker --log journal
"$TDCRYPT" secret add luks-root --key-file "$D/key" >/dev/null 2>&1 || fail "secret add"
"$TDCRYPT" secret add other --key-file "$D/key" >/dev/null 2>&1 || fail "secret add"
"$TDCRYPT" policy set luks-root "$D/p0.json" >/dev/null || fail "policy set"
"$TDCRYPT" policy set other "$D/p1.json" >/dev/null || fail "policy set"
PORT=$(port_of)
[ -n "$PORT" ] || fail "no listening entry with TDCRYPT_PORT in the journal: $(J -o export | tail -40)"
"$PROBE" --sim "$D/sim" --port "$PORT" --secret luks-root > "$D/r1" || fail "probe: $(cat "$D/r1")"
grep -q '^response 200 released$' "$D/r1" || fail "release: $(cat "$D/r1")"
"$PROBE" --sim "$D/sim" --port "$PORT" --secret other > "$D/r2" || true
grep -q '^response 403 policy_denied$' "$D/r2" || fail "denial: $(cat "$D/r2")"
stop_broker
J -o export TDCRYPT_EVENT=request > "$D/req"
J -o json TDCRYPT_EVENT=request > "$D/req.json"
python3 - "$D/req.json" "$D/r1" <<'PY' || fail "the request entries: $(cat "$D/req")"
import json, sys
es = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rel = [e for e in es if e.get("TDCRYPT_DECISION") == "released"]
den = [e for e in es if e.get("TDCRYPT_DECISION") == "denied"]
assert len(rel) == 1 and len(den) == 1, es
r, d = rel[0], den[0]
assert r["PRIORITY"] == "6" and d["PRIORITY"] == "4", (r["PRIORITY"], d["PRIORITY"])
assert r["TDCRYPT_SECRET_ID"] == "luks-root" and d["TDCRYPT_SECRET_ID"] == "other"
assert d["TDCRYPT_REASON_CODE"] == "policy_denied", d
assert r["SYSLOG_IDENTIFIER"] == "tdcrypt-kbs" and r["_TRANSPORT"] == "journal"
assert len(r["TDCRYPT_REQUEST_ID"]) >= 8 and r["TDCRYPT_REQUEST_ID"] != d["TDCRYPT_REQUEST_ID"]
assert r["MESSAGE"].startswith("request ") and "secret_id=luks-root" in r["MESSAGE"], r["MESSAGE"]
# the request id the client was answered with is the one in the journal
probe = open(sys.argv[2]).read()
assert r["TDCRYPT_REQUEST_ID"] in probe or "request_id" not in probe, probe
PY
# the request events come from the sandboxed network process, the starting one from the
# keeper (the process started): both reached the journal
NETPID=$(J -o export TDCRYPT_EVENT=request | sed -n 's/^_PID=//p' | sort -u)
KPID=$(J -o export TDCRYPT_EVENT=starting | sed -n 's/^_PID=//p' | sort -u)
if [ -z "$NETPID" ] || [ -z "$KPID" ] || [ "$NETPID" = "$KPID" ]; then
	fail "request from pid '$NETPID', starting from '$KPID': not both processes"
fi
J -o export TDCRYPT_EVENT=sandboxed | grep -q '^PRIORITY=6$' || fail "no sandboxed entry"
J -o export TDCRYPT_EVENT=stopping | grep -q . || fail "no stopping entry"
# nothing left on stderr but the testing-only warning printed before the log is set up
grep -q '"event"' "$D/log" && fail "--log journal: events on stderr too"
# never the secret, in any field, nor in the journal files
J -o export | grep -q "$SECRET" && fail "the secret in the journal"
grep -rqa "$SECRET" /run/log/journal && fail "the secret in the journal files"
grep -q "$SECRET" "$D/log" && fail "the secret on stderr"

# ---- 2. --log auto (the default) with $JOURNAL_STREAM naming stderr: the journal
: >"$D/log"
N0=$(J -o export TDCRYPT_EVENT=starting | grep -c '^MESSAGE=' || true)
JOURNAL_STREAM=$(stat -c '%d:%i' "$D/log") start_broker
stop_broker
N1=$(J -o export TDCRYPT_EVENT=starting | grep -c '^MESSAGE=' || true)
[ "$N1" = $((N0 + 1)) ] || fail "auto with \$JOURNAL_STREAM = stderr: not in the journal ($N0 -> $N1)"
grep -q '"event"' "$D/log" && fail "auto, journal: events on stderr too"

# ---- 3. --log auto with $JOURNAL_STREAM naming another file: JSON lines on stderr
JOURNAL_STREAM=$(stat -c '%d:%i' "$D/kbs.json") start_broker
wait_line "$D/log" '"event":"listening"' || fail "auto, another stream: no JSON listening line"
stop_broker
N2=$(J -o export TDCRYPT_EVENT=starting | grep -c '^MESSAGE=' || true)
[ "$N2" = "$N1" ] || fail "auto with another \$JOURNAL_STREAM: went to the journal"
grep '"event"' "$D/log" | python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' ||
	fail "json: not one object a line"

# ---- 4. --log text: one line an event, "TS LEVEL EVENT key=value", a denial readable
start_broker --log text
wait_line "$D/log" ' info listening ' || fail "text: no listening line"
PORT=$(sed -n 's/.* info listening .*port=\([0-9]*\).*/\1/p' "$D/log" | head -1)
"$PROBE" --sim "$D/sim" --port "$PORT" --secret luks-root > "$D/r3" || fail "probe: $(cat "$D/r3")"
"$PROBE" --sim "$D/sim" --port "$PORT" --secret other > "$D/r4" || true
stop_broker
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z warning request .*secret_id=other .*reason_code=policy_denied' "$D/log" ||
	fail "text: no denial line"
grep -Eq '^[0-9-]{10}T[0-9:]{8}Z info request .*decision=released' "$D/log" || fail "text: no release line"
grep -q '"event"' "$D/log" && fail "text: JSON lines"
grep -q "$SECRET" "$D/log" && fail "the secret in the text log"
echo "ok: journal (fields, both processes, auto), json, text; no secret anywhere"
