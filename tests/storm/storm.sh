#!/usr/bin/env bash
# Boot storms against real tdcrypt-kbs brokers on 127.0.0.1 (issue 9), each checked
# against the brokers' audit (audit-check.py): every agent gets its key exactly once and
# every key has its durable 'released' record.
#   1. one broker, 2,000 agents, 500 at once: released rows == agents with a key, exactly
#   2. the same with kill -9 of the broker mid-storm and its restart on the same store:
#      the agents retry and all get their keys; a release recorded just before the crash
#      whose answer was lost is recorded again on the retry (each after an unsettled
#      attempt: past the handshake, then no answer or `internal`); the store checks whole
#   3. two brokers (SQLite: each with its own store holding the same secret; PostgreSQL:
#      on one database), the agents spread over both; one is killed -9 mid-storm and the
#      agents finish on the other; its store is read back after a restart
#   4. (PostgreSQL) two brokers on one database, `pg_ctl restart -m fast` mid-storm: the
#      brokers reconnect, the agents retry, every key has its record
# The agents come from 127.0.0.2.. (storm --sources), so the brokers' default
# per-source limits apply unchanged. STORM_DB=sqlite|postgresql selects the store backend
# (brokers.sh; postgresql runs the whole under tests/pg/with-pg.sh, a private cluster).
# usage: storm.sh STORM TDCRYPT_KBS TDCRYPT [--small]
#   --small: 400 agents, 100 at once (the sanitizer builds: memory errors, not scale)
#   STORM_KEEP=1: keep the work directory (brokers' logs, storm JSON, audits)
set -euo pipefail
STORM=$1
KBS=$2
TDCRYPT=$3
AGENTS=2000
CONC=500
if [ "${4:-}" = --small ]; then
	AGENTS=400
	CONC=100
fi
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=brokers.sh
. "$HERE/brokers.sh"
storm_backend "$0" "$@"
SD=$(mktemp -d /tmp/tdc-storm-XXXXXX)
STORM_PID=
cleanup() {
	local p
	disown -a 2>/dev/null || true # no "Killed" job notices
	[ -n "$STORM_PID" ] && kill "$STORM_PID" 2>/dev/null || true
	for p in "$SD"/*/pid; do
		[ -f "$p" ] && kill -9 $(pgrep -P "$(cat "$p")") "$(cat "$p")" 2>/dev/null || true
	done
	[ -n "${STORM_KEEP:-}" ] && echo "kept $SD" || rm -rf "$SD"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	local l
	for l in "$SD"/*/log; do
		[ -f "$l" ] && { echo "--- $l (last lines)"; tail -5 "$l"; }
	done
	exit 1
}

storm() { # JSON BROKER... (runs in the background; STORM_PID)
	local out=$1 addrs="" b
	shift
	for b in "$@"; do addrs="$addrs${addrs:+,}127.0.0.1:$(broker_port "$b")"; done
	"$STORM" --brokers "$addrs" --broker-cert "$SD/broker.crt" --sim-dir "$SD/sim" \
		--secret "$SECRET_ID" --agents "$AGENTS" --concurrency "$CONC" --deadline 100 \
		--expect-key-file "$SD/secret.key" --json "$out" --progress 2>"$out.log" &
	STORM_PID=$!
}

storm_wait() { # JSON
	local rc=0
	wait "$STORM_PID" || rc=$?
	STORM_PID=
	grep -v '^storm: progress' "$1.log" | sed 's/^/   /'
	[ "$rc" = 0 ] || fail "storm exit status $rc"
}

# Waits until the running storm has had N keys from its broker number B (0-based; all:
# from any), by the storm's own count.
wait_progress() { # JSON N B|all
	local i line got k n
	for i in $(seq 1200); do
		line=$(grep -E '^storm: progress( [0-9]+)+$' "$1.log" | tail -n 1 || true)
		if [ -n "$line" ]; then
			read -r -a n <<<"${line#storm: progress }"
			got=0
			if [ "$3" = all ]; then
				for k in "${n[@]}"; do got=$((got + k)); done
			else
				got=${n[$3]}
			fi
			[ "$got" -ge "$2" ] && return 0
		fi
		kill -0 "$STORM_PID" 2>/dev/null || fail "the storm ended before $2 releases"
		sleep 0.05
	done
	fail "the storm did not reach $2 releases"
}

audit_check() { # JSON MODE BROKER...
	local out=$1 mode=$2 b files=()
	shift 2
	for b in "$@"; do
		broker_audit "$b" >"$SD/$b.audit.json"
		files+=("$SD/$b.audit.json")
	done
	if ! python3 "$HERE/audit-check.py" "$out" "$mode" "${files[@]}" | sed 's/^/   /'; then
		fail "audit check ($out)"
	fi
}

store_check() { # BROKER
	"$KBS" check --config "$SD/$1/kbs.json" >/dev/null 2>&1 || fail "$1: store check"
}

storm_setup
echo "storm: $AGENTS agents, $CONC at once, store $STORM_DB"

echo "== 1. one broker"
broker_new one
storm "$SD/one.json" one
storm_wait "$SD/one.json"
audit_check "$SD/one.json" exact one
# the key comparison can fail: a wrong expected key makes every agent count as lost
set +e
"$STORM" --brokers "127.0.0.1:$(broker_port one)" --broker-cert "$SD/broker.crt" \
	--sim-dir "$SD/sim" --secret "$SECRET_ID" --agents 10 --concurrency 5 --deadline 60 \
	--expect-key 00 --json "$SD/wrong.json" 2>/dev/null
rc=$?
set -e
[ "$rc" = 1 ] || fail "a wrong key: storm exit status $rc"
grep -q '"wrong_key":10,' "$SD/wrong.json" || fail "a wrong key was not seen"
broker_stop one

echo "== 2. one broker, kill -9 mid-storm, restarted on the same store"
broker_new crash
storm "$SD/crash.json" crash
wait_progress "$SD/crash.json" $((AGENTS / 4)) all
broker_kill crash
echo "   killed after $((AGENTS / 4))+ releases"
sleep 1
broker_start crash "$(broker_port crash)"
storm_wait "$SD/crash.json"
audit_check "$SD/crash.json" crash crash
store_check crash
broker_stop crash

echo "== 3. two brokers, one killed -9 mid-storm"
broker_new a
broker_new b a
storm "$SD/two.json" a b
wait_progress "$SD/two.json" $((AGENTS / 8)) 0
broker_kill a
echo "   broker a killed after $((AGENTS / 8))+ releases of its own"
storm_wait "$SD/two.json"
python3 - "$SD/two.json" <<'P' || fail "the agents did not use both brokers"
import json, sys
b = json.load(open(sys.argv[1]))["brokers"]
print("   releases: a %d, b %d" % (b[0]["released"], b[1]["released"]))
sys.exit(0 if b[0]["released"] > 0 and b[1]["released"] > 0 else 1)
P
# a's store after the crash, read back through a restarted a
broker_start a "$(broker_port a)"
audit_check "$SD/two.json" crash a b
store_check a
broker_stop a
broker_stop b

if [ "$STORM_DB" = postgresql ]; then
	echo "== 4. two brokers on one database, PostgreSQL restarted mid-storm"
	broker_new c
	broker_new d c
	storm "$SD/pg.json" c d
	wait_progress "$SD/pg.json" $((AGENTS / 4)) all
	pg_restart
	kill -0 "$STORM_PID" 2>/dev/null || fail "the storm was over when the database came back"
	echo "   pg_ctl restart -m fast after $((AGENTS / 4))+ releases"
	storm_wait "$SD/pg.json"
	audit_check "$SD/pg.json" crash c d
	store_check c
	broker_stop c
	broker_stop d
fi
echo "ok"
