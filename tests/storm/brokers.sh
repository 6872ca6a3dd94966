# shellcheck shell=bash
# Real tdcrypt-kbs brokers for the boot storm (tests/storm/storm.sh, bench/bench-storm),
# sourced, never run. Everything lives under $SD (the caller's temporary directory):
#   storm_setup                  sim PKI (`tdcrypt sim init`), the brokers' certificate,
#                                the secret (random key in $SD/secret.key) and its policy
#   broker_new NAME              a store for broker NAME holding the secret (the backend's
#                                way: STORM_DB), and its config
#   broker_start NAME [PORT]     starts it (PORT 0 or none: an ephemeral one, kept for
#                                restarts); $SD/NAME/pid, $SD/NAME/port
#   broker_kill NAME             kill -9 of both its processes (keeper, network process)
#   broker_stop NAME             SIGTERM, clean exit checked
#   broker_audit NAME            its audit records of the secret (JSON)
#   broker_hwm NAME              VmHWM of its two processes, summed (KiB)
#   broker_cpu NAME              CPU seconds of its two processes so far
# Needs KBS (tdcrypt-kbs), TDCRYPT (the CLI), SD, and a fail function.
#
# Backends (STORM_DB):
#   sqlite      (default) one store file per broker: a second broker on the same file is
#               refused by the store's lock, so several brokers mean several stores, each
#               holding the same secret
#   postgresql  TODO (issue 9, the lead's `--db postgresql://...`): one cluster made by
#               initdb + pg_ctl in $SD as an unprivileged user, every broker on the same
#               database (the secret registered once); until the broker takes such a URL,
#               storm_backend_check skips (exit 77)
STORM_DB=${STORM_DB:-sqlite}
SECRET_ID=${SECRET_ID:-storm-root}

storm_backend_check() {
	case $STORM_DB in
	sqlite) ;;
	postgresql)
		if ! "$KBS" --help 2>&1 | grep -q 'postgresql://'; then
			echo "SKIP: STORM_DB=postgresql: this tdcrypt-kbs has no PostgreSQL store yet"
			exit 77
		fi
		# TODO: pg_setup (initdb + pg_ctl start in $SD/pg as an unprivileged user, one
		# database), pg_teardown in the caller's cleanup, and store_init below
		echo "SKIP: STORM_DB=postgresql: the storm's PostgreSQL hook is not written yet"
		exit 77
		;;
	*) fail "STORM_DB=$STORM_DB: sqlite or postgresql" ;;
	esac
}

storm_setup() {
	storm_backend_check
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker.storm \
		-keyout "$SD/broker.key" -out "$SD/broker.crt" -days 2 2>/dev/null || fail "broker certificate"
	"$TDCRYPT" sim init "$SD/sim" >/dev/null 2>&1 || fail "sim init"
	head -c 32 /dev/urandom >"$SD/secret.key"
	local mrtd
	mrtd=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mrtd"])' "$SD/sim/td.json")
	printf '{"allow_simulator":true,"mrtd":["%s"]}' "$mrtd" >"$SD/policy.json"
}

# The store of NAME, made by the backend; prints the config members that name it.
store_init() {
	local d=$SD/$1
	case $STORM_DB in
	sqlite)
		"$KBS" init --master-key "$d/master.key" --db "$d/kbs.db" 2>/dev/null || fail "$1: store init"
		printf '"db": "%s", "master_key": "%s"' "$d/kbs.db" "$d/master.key"
		;;
	esac
}

broker_config() { # NAME PORT
	local d=$SD/$1
	cat >"$d/kbs.json" <<J
{"listen": "127.0.0.1:$2", "cert": "$SD/broker.crt", "key": "$SD/broker.key",
 $(cat "$d/store.json"), "collateral_dir": "$SD/sim/collateral",
 "admin_socket": "$d/kbs.sock", "allow_simulator_root": "$SD/sim/sim-root.pem"}
J
}

broker_new() {
	local d=$SD/$1
	mkdir -p "$d"
	store_init "$1" >"$d/store.json"
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

broker_hwm() {
	local sum=0 p v
	for p in $(broker_pids "$1"); do
		v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
