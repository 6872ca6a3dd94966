#!/bin/sh
# Operating the real tdcrypt-kbs (docs/PROTOCOL.md section 9, docs/ARCHITECTURE.md
# "Operations"): /metrics in the Prometheus text format after a release and a denial
# (checked by prom-check.py), /healthz, the metrics listener's limits; SIGHUP with a new
# certificate (a connection opened before keeps working, new ones get the new
# certificate: the pin changes), with a broken or non-reloadable config (the old one
# stays, the error is logged); SIGUSR2 drains: /healthz 503, no new connections, the
# release in flight finishes, exit 0.
# usage: ops.sh TDCRYPT_KBS TDCRYPT KBS_PROBE PROM_CHECK
set -eu
KBS=$1
TDCRYPT=$2
PROBE=$3
PROM="python3 $4"
D=$(mktemp -d /tmp/tdc-ops-XXXXXX)
PID=
BG=
cleanup() {
	[ -n "$BG" ] && kill "$BG" 2>/dev/null
	[ -n "$PID" ] && kill "$PID" 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- broker log"; cat "$D/log" 2>/dev/null; exit 1; }
# waits up to 10 s for a line matching $2 in file $1
wait_line() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
pin_of() { openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1; }
newcert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker.test \
		-keyout "$1.key" -out "$1.crt" -days 1 2>/dev/null
}
http() { curl -s -m 5 -o "$D/body" -w '%{http_code}' "$@" || true; }

newcert "$D/a"
newcert "$D/b"
cp "$D/a.crt" "$D/broker.crt"
cp "$D/a.key" "$D/broker.key"
PIN_A=$(pin_of "$D/a.crt")
PIN_B=$(pin_of "$D/b.crt")
"$TDCRYPT" sim init "$D/sim" >/dev/null 2>&1 || fail "sim init"
"$KBS" init --master-key "$D/master.key" --db "$D/kbs.db" 2>/dev/null
user=
[ "$(id -u)" = 0 ] && user='"user": "nobody",'
cat > "$D/kbs.json" <<J
{"listen": "127.0.0.1:0", "metrics_listen": "127.0.0.1:0", $user
 "cert": "$D/broker.crt", "key": "$D/broker.key",
 "db": "$D/kbs.db", "master_key": "$D/master.key", "collateral_dir": "$D/sim/collateral",
 "admin_socket": "$D/run/kbs.sock", "allow_simulator_root": "$D/sim/sim-root.pem",
 "workers": 2}
J
cp "$D/kbs.json" "$D/good.json"
: >"$D/log"
"$KBS" --config "$D/kbs.json" 2>"$D/log" &
PID=$!
wait_line "$D/log" '"event":"listening"' || fail "the broker did not start"
PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$D/log")
MPORT=$(sed -n 's/.*"event":"listening".*"metrics_port":\([0-9]*\).*/\1/p' "$D/log")
[ -n "$PORT" ] && [ -n "$MPORT" ] || fail "no ports in the listening line"
grep '"event":"listening"' "$D/log" | grep -q "\"spki_sha256\":\"$PIN_A\"" || fail "listening: not certificate A"
M=http://127.0.0.1:$MPORT
export TDCRYPT_KBS_SOCKET="$D/run/kbs.sock"
wait_line "$D/log" '"event":"sandboxed"' || fail "not sandboxed"

# ---- secrets: one released to the simulated TD, one denied by its policy
printf 'ops-test-secret-value' > "$D/key"
"$TDCRYPT" secret add luks-root --key-file "$D/key" >/dev/null 2>&1 || fail "secret add"
"$TDCRYPT" secret add other --key-file "$D/key" >/dev/null 2>&1 || fail "secret add"
MRTD=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["mrtd"])' "$D/sim/td.json")
printf '{"allow_simulator":true,"mrtd":["%s"]}' "$MRTD" > "$D/p0.json"
printf '{"allow_simulator":true,"mrtd":["%096d"]}' 1 > "$D/p1.json"
"$TDCRYPT" policy set luks-root "$D/p0.json" >/dev/null || fail "policy set"
"$TDCRYPT" policy set other "$D/p1.json" >/dev/null || fail "policy set"

# ---- /healthz and /metrics
[ "$(http "$M/healthz")" = 200 ] || fail "healthz: $(cat "$D/body")"
[ "$(cat "$D/body")" = ok ] || fail "healthz body: $(cat "$D/body")"
"$PROBE" --sim "$D/sim" --port "$PORT" --secret luks-root --pin "$PIN_A" > "$D/r1" || fail "probe: $(cat "$D/r1")"
grep -q '^response 200 released$' "$D/r1" || fail "release: $(cat "$D/r1")"
"$PROBE" --sim "$D/sim" --port "$PORT" --secret other > "$D/r2" || fail "probe: $(cat "$D/r2")"
grep -q '^response 403 policy_denied$' "$D/r2" || fail "denial: $(cat "$D/r2")"
curl -s -m 5 -D "$D/headers" -o "$D/metrics" "$M/metrics" || fail "scrape"
grep -qi '^content-type: text/plain; version=0.0.4' "$D/headers" || fail "content type: $(cat "$D/headers")"
vals=$($PROM "$D/metrics" tdcrypt_kbs_releases_total \
	'tdcrypt_kbs_denials_total{reason="policy_denied"}' \
	'tdcrypt_kbs_denials_total{reason="quote_invalid"}' \
	tdcrypt_kbs_verification_duration_seconds_count \
	'tdcrypt_kbs_store_operation_duration_seconds_count{op="release"}' \
	'tdcrypt_kbs_store_operation_duration_seconds_count{op="audit"}' \
	'tdcrypt_kbs_store_operation_duration_seconds_count{op="ping"}' \
	tdcrypt_kbs_queue_depth tdcrypt_kbs_draining \
	'tdcrypt_kbs_handshake_failures_total{class="timeout"}' \
	tdcrypt_kbs_unauthenticated_refusals_total tdcrypt_kbs_memory_trims_total) ||
	fail "metrics format: $vals"
[ "$(echo $vals)" = "1 1 0 2 1 1 1 0 0 0 0 0" ] || fail "metrics values: $(echo $vals)"
$PROM "$D/metrics" 'tdcrypt_kbs_open_connections{lane="normal"}' >/dev/null || fail "no open connections gauge"
grep -q 'luks-root\|other\|127.0.0.1\|kbs-probe' "$D/metrics" && fail "metrics carry request data"
# one set of counters: the admin socket's JSON says the same
j=$("$TDCRYPT" broker metrics --json) || fail "broker metrics"
echo "$j" | grep -q "\"released\": *1," || fail "admin metrics: $j"
echo "$j" | grep -q "\"policy_denied\": *1" || fail "admin metrics: $j"
# a handshake without a client certificate is counted by class
curl -sk -m 5 "https://127.0.0.1:$PORT/metrics" >/dev/null 2>&1 && fail "the RA-TLS port answered plain /metrics"
sleep 0.2
curl -s -m 5 -o "$D/metrics" "$M/metrics"
[ "$($PROM "$D/metrics" 'tdcrypt_kbs_handshake_failures_total{class="no_certificate"}')" -ge 1 ] ||
	fail "no_certificate not counted"
# the listener's parser: only GET of its two paths, no body, small requests
[ "$(http "$M/")" = 404 ] || fail "GET /"
[ "$(http "$M/v1/keys/luks-root")" = 404 ] || fail "a key path on the metrics listener"
[ "$(http -X POST -d x "$M/metrics")" = 405 ] || fail "POST /metrics"
[ "$(http -H "X-Pad: $(head -c 3000 /dev/zero | tr '\0' a)" "$M/metrics")" = 413 ] || fail "large request"
# at most 8 connections at once, each for at most 2 s
python3 - "$MPORT" <<'P' || fail "metrics connection cap"
import socket, sys, time
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
time.sleep(0.3)
extra = socket.create_connection(("127.0.0.1", port))
extra.settimeout(3)
assert extra.recv(100) == b"", "a ninth connection was kept"
held[0].settimeout(4)
assert held[0].recv(100) == b"", "an idle connection was kept past its deadline"
P
curl -s -m 5 -o "$D/metrics" "$M/metrics"
[ "$($PROM "$D/metrics" tdcrypt_kbs_metrics_connections_refused_total)" -ge 1 ] || fail "cap not counted"

# ---- SIGHUP with a new certificate (same paths, the config unchanged)
"$PROBE" --sim "$D/sim" --port "$PORT" --secret luks-root --again-wait "$D/go1" > "$D/r3" &
BG=$!
wait_line "$D/r3" '^response 200 released' || fail "first request before the reload: $(cat "$D/r3")"
cp "$D/b.crt" "$D/broker.crt"
cp "$D/b.key" "$D/broker.key"
kill -HUP "$PID"
wait_line "$D/log" '"event":"reloaded"' || fail "no reloaded line"
grep '"event":"reloaded"' "$D/log" | grep -q "$PIN_B" || fail "reloaded: not certificate B"
touch "$D/go1"
wait "$BG" || fail "the connection opened before the reload: $(cat "$D/r3")"
BG=
[ "$(grep -c '^response 200 released$' "$D/r3")" = 2 ] || fail "old connection after the reload: $(cat "$D/r3")"
grep -q "^spki $PIN_A$" "$D/r3" || fail "the old connection was not on certificate A"
set +e
"$PROBE" --sim "$D/sim" --port "$PORT" --pin "$PIN_A" > "$D/r4"; rc=$?
set -e
[ $rc = 6 ] || fail "a new connection with the old pin: exit $rc $(cat "$D/r4")"
"$PROBE" --sim "$D/sim" --port "$PORT" --pin "$PIN_B" > "$D/r5" || fail "new pin: $(cat "$D/r5")"
grep -q '^response 200 released$' "$D/r5" || fail "release after the reload: $(cat "$D/r5")"

# ---- SIGHUP with a broken config, a non-reloadable change, a key that does not match
n_failed() { grep -c '"event":"reload_failed"' "$D/log" || true; }
printf '{"listen": ' > "$D/kbs.json"
kill -HUP "$PID"
wait_line "$D/log" '"event":"reload_failed"' || fail "broken config: no reload_failed line"
sed 's/"workers": 2/"workers": 3/' "$D/good.json" > "$D/kbs.json"
kill -HUP "$PID"
for _ in $(seq 100); do [ "$(n_failed)" -ge 2 ] && break; sleep 0.1; done
grep '"event":"reload_failed"' "$D/log" | grep -q 'workers' || fail "workers change not refused"
cp "$D/good.json" "$D/kbs.json"
cp "$D/a.key" "$D/broker.key"
kill -HUP "$PID"
for _ in $(seq 100); do [ "$(n_failed)" -ge 3 ] && break; sleep 0.1; done
grep '"event":"reload_failed"' "$D/log" | grep -q 'broker key' || fail "mismatched key not refused"
[ "$(grep -c '"event":"reloaded"' "$D/log")" = 1 ] || fail "a bad reload was applied"
kill -0 "$PID" 2>/dev/null || fail "the broker died on a bad reload"
"$PROBE" --sim "$D/sim" --port "$PORT" --pin "$PIN_B" > "$D/r6" || fail "after bad reloads: $(cat "$D/r6")"
grep -q '^response 200 released$' "$D/r6" || fail "after bad reloads: $(cat "$D/r6")"
cp "$D/b.key" "$D/broker.key"

# ---- SIGUSR2: drain
[ "$(http "$M/healthz")" = 200 ] || fail "healthz before the drain"
"$PROBE" --sim "$D/sim" --port "$PORT" --secret luks-root --split-wait "$D/go2" > "$D/r7" &
BG=$!
wait_line "$D/r7" '^held$' || fail "no request in flight: $(cat "$D/r7")"
# the broker has read what the probe sent (nothing left in its sockets' receive queues)
for _ in $(seq 600); do
	q=$(ss -Htn state established "( sport = :$PORT )" | awk '{s += $1} END {print s + 0}')
	[ "$q" = 0 ] && break
	sleep 0.05
done
kill -USR2 "$PID"
wait_line "$D/log" '"event":"draining"' || fail "no draining line"
grep '"event":"draining"' "$D/log" | grep -q '"in_flight":1' || fail "in flight: $(grep draining "$D/log")"
[ "$(http "$M/healthz")" = 503 ] || fail "healthz while draining"
[ "$(cat "$D/body")" = draining ] || fail "healthz body while draining: $(cat "$D/body")"
curl -s -m 5 -o "$D/metrics" "$M/metrics"
[ "$($PROM "$D/metrics" tdcrypt_kbs_draining)" = 1 ] || fail "draining gauge"
set +e
"$PROBE" --sim "$D/sim" --port "$PORT" > "$D/r8"; rc=$?
set -e
[ $rc = 4 ] || fail "a new connection while draining: exit $rc $(cat "$D/r8")"
kill -0 "$PID" 2>/dev/null || fail "the broker left before the request in flight finished"
touch "$D/go2"
wait "$BG" || fail "the request in flight: $(cat "$D/r7")"
BG=
grep -q '^response 200 released$' "$D/r7" || fail "the request in flight was not released: $(cat "$D/r7")"
wait "$PID" || fail "broker exit status $? after the drain"
PID=
grep -q '"event":"drained"' "$D/log" || fail "no drained line"
grep -q 'ops-test-secret-value' "$D/log" && fail "the secret in the log"
echo "ok"
