# shellcheck shell=bash
# Real tdcrypt-kbs brokers for the boot storm (tests/storm/storm.sh, bench/bench-storm),
# sourced, never run. Everything lives under $SD (the caller's temporary directory):
#   storm_setup                  sim PKI (`tdcrypt sim init`), the brokers' certificate,
#                                the secret (random key in $SD/secret.key) and its policy
#   broker_new NAME [WITH]       a store for broker NAME holding the secret, and its config;
#                                WITH: share broker WITH's store where the backend can
#   broker_start NAME [PORT]     starts it (PORT 0 or none: an ephemeral one, kept for
#                                restarts); $SD/NAME/pid, $SD/NAME/port
#   broker_kill NAME             kill -9 of both its processes (keeper, network process)
#   broker_stop NAME             SIGTERM, clean exit checked
#   broker_audit NAME            its audit records of the secret (JSON)
#   broker_hwm NAME              VmHWM of its two processes, summed (KiB)
#   broker_cpu NAME              CPU seconds of its two processes so far
#   db_cpu                       CPU seconds of the database server so far (postgresql)
#   pg_restart                   pg_ctl restart -m fast of the test cluster (postgresql)
#   storm_backend "$0" "$@"      first thing a caller does: checks STORM_DB and, for
#                                postgresql, runs the caller again under tests/pg/with-pg.sh
# Needs KBS (tdcrypt-kbs), TDCRYPT (the CLI), SD, and a fail function.
#
# Backends (STORM_DB):
#   sqlite      (default) one store file per broker: a second broker on the same file is
#               refused by the store's lock, so several brokers mean several stores, each
#               holding the same secret (WITH is ignored)
#   postgresql  a private cluster (initdb + pg_ctl as an unprivileged user, removed after:
#               tests/pg/with-pg.sh); each broker_new without WITH makes a database of its
#               own, brokers made WITH it share that database, its master key and secret
# (under with-pg.sh, as the meson test storm-pg runs it, postgresql is the default)
if [ -z "${STORM_DB:-}" ]; then
	STORM_DB=sqlite
	[ -n "${TDC_TEST_PG_HOST:-}" ] && STORM_DB=postgresql
fi
SECRET_ID=${SECRET_ID:-storm-root}
STORM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

storm_backend() {
	case $STORM_DB in
	sqlite) ;;
	postgresql)
		if [ -z "${TDC_TEST_PG_HOST:-}" ]; then
			exec "$STORM_ROOT/tests/pg/with-pg.sh" "$@"
		fi
		;;
	*)
		echo "STORM_DB=$STORM_DB: sqlite or postgresql" >&2
		exit 2
		;;
	esac
}

storm_setup() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker.storm \
		-keyout "$SD/broker.key" -out "$SD/broker.crt" -days 2 2>/dev/null || fail "broker certificate"
	"$TDCRYPT" sim init "$SD/sim" >/dev/null 2>&1 || fail "sim init"
	head -c 32 /dev/urandom >"$SD/secret.key"
	local mrtd
	mrtd=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mrtd"])' "$SD/sim/td.json")
	printf '{"allow_simulator":true,"mrtd":["%s"]}' "$mrtd" >"$SD/policy.json"
}

# The store of NAME (or WITH's), made by the backend; prints the config members that name
# it. Fails (status 1) when NAME shares WITH's store, which then holds the secret already.
store_init() { # NAME [WITH]
	local d=$SD/$1 db
	case $STORM_DB in
	sqlite)
		"$KBS" init --master-key "$d/master.key" --db "$d/kbs.db" 2>/dev/null || fail "$1: store init"
		printf '"db": "%s", "master_key": "%s"' "$d/kbs.db" "$d/master.key"
		;;
	postgresql)
		if [ -n "${2:-}" ]; then
			cat "$SD/$2/store.json"
			return 1
		fi
		db="tdcstorm_${1}_$$"
		"$TDC_TEST_PG_BIN/createdb" -h "$TDC_TEST_PG_HOST" -U "$TDC_TEST_PG_USER" "$db" ||
			fail "$1: createdb"
		db="postgresql:///$db?host=$TDC_TEST_PG_HOST&user=$TDC_TEST_PG_USER"
		"$KBS" init --master-key "$d/master.key" --db "$db" 2>/dev/null || fail "$1: store init"
		printf '"db": "%s", "master_key": "%s"' "$db" "$d/master.key"
		;;
	esac
}

pg_restart() {
	local as=()
	[ "$(id -u)" = 0 ] && as=(runuser -u "$TDC_TEST_PG_USER" --)
	"${as[@]}" "$TDC_TEST_PG_BIN/pg_ctl" -D "$TDC_TEST_PG_DIR" -m fast -w -t 60 restart \
		>/dev/null || fail "pg_ctl restart"
}

broker_config() { # NAME PORT
	local d=$SD/$1
	cat >"$d/kbs.json" <<J
{"listen": "127.0.0.1:$2", "cert": "$SD/broker.crt", "key": "$SD/broker.key",
 $(cat "$d/store.json"), "collateral_dir": "$SD/sim/collateral",
 "admin_socket": "$d/kbs.sock", "allow_simulator_root": "$SD/sim/sim-root.pem"}
J
}

broker_new() { # NAME [WITH]
	local d=$SD/$1
	mkdir -p "$d"
	if ! store_init "$1" "${2:-}" >"$d/store.json"; then
		broker_start "$1"
		return 0
	fi
	broker_start "$1"
	TDCRYPT_KBS_SOCKET=$d/kbs.sock "$TDCRYPT" secret add "$SECRET_ID" --key-file "$SD/secret.key" \
		>/dev/null 2>&1 || fail "$1: secret add"
	TDCRYPT_KBS_SOCKET=$d/kbs.sock "$TDCRYPT" policy set "$SECRET_ID" "$SD/policy.json" \
		>/dev/null || fail "$1: policy set"
}

broker_start() { # NAME [PORT]
	local d=$SD/$1 port=${2:-0} pid i
	broker_config "$1" "$port"
	: >"$d/log"
	"$KBS" --config "$d/kbs.json" 2>>"$d/log" &
	pid=$!
	echo "$pid" >"$d/pid"
	for i in $(seq 100); do
		if [ -S "$d/kbs.sock" ] && grep -q '"event":"listening"' "$d/log"; then
			grep -o '"event":"listening".*"port":[0-9]*' "$d/log" | tail -1 | grep -o '[0-9]*$' >"$d/port"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$d/log"
	fail "$1: the broker did not start"
}

broker_port() { cat "$SD/$1/port"; }

# Its network process: the keeper's only child.
broker_pids() { local p; p=$(cat "$SD/$1/pid"); echo "$p" $(pgrep -P "$p" || true); }

broker_kill() {
	local pids p
	pids=$(broker_pids "$1")
	disown "$(cat "$SD/$1/pid")" 2>/dev/null || true # no "Killed" job notice
	# shellcheck disable=SC2086
	kill -9 $pids 2>/dev/null || true
	for p in $pids; do
		while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
	done
	rm -f "$SD/$1/kbs.sock"
}

broker_stop() {
	local pid
	pid=$(cat "$SD/$1/pid")
	kill -TERM "$pid" 2>/dev/null || return 0
	wait "$pid" || fail "$1: broker exit status $?"
}

broker_audit() {
	TDCRYPT_KBS_SOCKET=$SD/$1/kbs.sock "$TDCRYPT" secret audit --secret "$SECRET_ID" --json ||
		fail "$1: audit"
}

# CPU seconds (user + system) its two processes have used so far.
broker_cpu() {
	local p
	for p in $(broker_pids "$1"); do
		sed 's/.*) //' "/proc/$p/stat" 2>/dev/null
	done | awk -v hz="$(getconf CLK_TCK)" '{ t += $12 + $13 } END { printf "%.2f\n", t / hz }'
}

# CPU seconds the database server has used so far (postgresql: the postmaster, its
# children and the children it has reaped; sqlite: 0, it runs inside the brokers).
db_cpu() {
	local pm p
	if [ "$STORM_DB" != postgresql ]; then
		echo 0
		return
	fi
	pm=$(head -n 1 "$TDC_TEST_PG_DIR/postmaster.pid")
	{
		sed 's/.*) //' "/proc/$pm/stat" | awk '{ print $12 + $13 + $14 + $15 }'
		for p in $(pgrep -P "$pm"); do
			sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }'
		done
	} | awk -v hz="$(getconf CLK_TCK)" '{ t += $1 } END { printf "%.2f\n", t / hz }'
}

broker_hwm() {
	local sum=0 p v
	for p in $(broker_pids "$1"); do
		v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
