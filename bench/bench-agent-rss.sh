#!/bin/sh
# Peak RSS of tdcrypt-agent for one complete boot-time run with the simulator quote
# provider against a local broker (loopback): header check of a LUKS2 file, per-boot
# key, sim quote, RA-TLS handshake with SPKI pin, key release, keyslot check
# (--no-activate: this host has no device-mapper; activation would add the kernel's
# memory, not the agent's). Goal (issue 3): <= 16 MiB.
# Measured with /usr/bin/time -v ("Maximum resident set size", the kernel's ru_maxrss
# of the agent process, i.e. its VmHWM).
# usage: bench-agent-rss.sh [BUILD_DIR] [RUNS]     (default: build, 5)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:-$HERE/../build}
RUNS=${2:-5}
TDCRYPT=$B/cli/tdcrypt
KBS=$B/kbs/tdcrypt-kbs
AGENT=$B/agent/tdcrypt-agent
for x in "$TDCRYPT" "$KBS" "$AGENT" /usr/bin/time; do
	[ -x "$x" ] || { echo "bench-agent-rss: missing $x (build first; apt-get install time)" >&2; exit 2; }
done
command -v cryptsetup >/dev/null || { echo "bench-agent-rss: needs cryptsetup" >&2; exit 2; }

D=$(mktemp -d /tmp/tdc-agent-rss-XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
die() { echo "bench-agent-rss: $*" >&2; [ -f "$D/kbs.log" ] && tail -5 "$D/kbs.log" >&2; exit 1; }

# simulator, broker credentials and store
"$TDCRYPT" sim init "$D/sim" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker.bench \
	-keyout "$D/broker.key" -out "$D/broker.crt" -days 1 2>/dev/null
PIN=$(openssl x509 -in "$D/broker.crt" -pubkey -noout | openssl pkey -pubin -outform DER |
	sha256sum | cut -d' ' -f1)
"$KBS" init --master-key "$D/master.key" --db "$D/kbs.db" 2>/dev/null
cat >"$D/kbs.json" <<J
{"listen": "127.0.0.1:0", "cert": "$D/broker.crt", "key": "$D/broker.key",
 "db": "$D/kbs.db", "master_key": "$D/master.key", "collateral_dir": "$D/sim/collateral",
 "admin_socket": "$D/run/kbs.sock", "allow_simulator_root": "$D/sim/sim-root.pem"}
J
"$KBS" --config "$D/kbs.json" 2>"$D/kbs.log" &
PID=$!
for _ in $(seq 100); do [ -S "$D/run/kbs.sock" ] && break; sleep 0.1; done
[ -S "$D/run/kbs.sock" ] || die "broker did not start"
PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$D/kbs.log" | head -n1)
[ -n "$PORT" ] || die "no port in the broker log"
export TDCRYPT_KBS_SOCKET="$D/run/kbs.sock"

# the LUKS2 file (docs/LUKS-HEADER.md: aes-xts-plain64, 512-bit key, 4096-byte sectors,
# PBKDF2 with 1000 iterations) and the broker secret that opens keyslot 0
head -c 32 /dev/urandom >"$D/key"
truncate -s 32M "$D/disk.img"
cryptsetup luksFormat -q --type luks2 --cipher aes-xts-plain64 --key-size 512 \
	--sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --hash sha256 \
	--key-file "$D/key" "$D/disk.img" || die "luksFormat"
HDR=$(od -An -tu1 -j8 -N8 "$D/disk.img" | awk '{ v = 0; for (i = 1; i <= 8; i++) v = v * 256 + $i; print v }')
DIGEST=$(head -c $((2 * HDR)) "$D/disk.img" | sha256sum | cut -d' ' -f1)
MRTD=$(sed -n 's/.*"mrtd": *"\([0-9a-f]*\)".*/\1/p' "$D/sim/td.json")
printf '{"allow_simulator": true, "mrtd": ["%s"]}' "$MRTD" >"$D/policy.json"
"$TDCRYPT" secret add luks-root --key-file "$D/key" --policy "$D/policy.json" >/dev/null 2>&1 ||
	die "secret add"

echo "console=ttyS0 root=/dev/mapper/root tdcrypt.provider=sim" >"$D/cmdline"
cat >"$D/agent.json" <<J
{"brokers": ["127.0.0.1:$PORT"], "broker_spki_sha256": ["$PIN"], "secret_id": "luks-root",
 "luks": {"device": "$D/disk.img", "name": "bench-root", "header_sha256": "$DIGEST"},
 "provider": "sim", "sim_dir": "$D/sim", "cmdline_file": "$D/cmdline",
 "timeouts": {"total_s": 30, "attempt_s": 20, "connect_s": 5}}
J

echo "tdcrypt-agent peak RSS, one full sim-provider run each (--no-activate), $RUNS runs:"
max=0
i=0
while [ $i -lt "$RUNS" ]; do
	i=$((i + 1))
	set +e
	/usr/bin/time -v "$AGENT" --config "$D/agent.json" --cmdline "$D/cmdline" --no-activate \
		>"$D/agent.out" 2>"$D/agent.err"
	rc=$?
	set -e
	[ $rc = 0 ] || { cat "$D/agent.err" >&2; die "agent exit $rc"; }
	kib=$(sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$D/agent.err")
	wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$D/agent.err")
	printf '  run %d: max RSS %5d KiB, wall %s\n' "$i" "$kib" "$wall"
	[ "$kib" -gt "$max" ] && max=$kib
done
grep -q '"decision":"released"' "$D/kbs.log" || die "the broker released nothing"
if [ "$max" -le 16384 ]; then verdict=met; else verdict="NOT met"; fi
printf 'peak: %d KiB (%s MiB); goal <= 16 MiB: %s\n' "$max" \
	"$(awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }')" "$verdict"
[ "$max" -le 16384 ]
