#!/bin/bash
# End-to-end test of tdcrypt: a real encrypted boot, no mocks but the TEE.
#
#   guest image (build-guest.sh, cached) -> tdcrypt sim init (test PKI + collateral, the MRTD of
#   the launcher's firmware) -> tdcrypt-kbs on 127.0.0.1 (ephemeral port, temporary store,
#   simulator root trusted) -> tdcrypt image encrypt --emit-policy (key registered over the admin
#   socket; the policy predicted from the encrypted image: MRTD, RTMR1-3 event by event)
#   -> tdcrypt launch --no-tdx --policy (QEMU TCG, OVMF + a vTPM + GRUB; the guest reaches only
#   the broker). The quote simulator in the guest takes its RTMRs from the vTPM's event log, so
#   the broker checks what the real firmware, GRUB and Linux measured.
#
# Runs: happy    the agent gets the key, the root is unlocked, systemd prints TDCRYPT-GUEST-UP
#                and the vTPM event log on ttyS0 and powers off; the log's events equal the
#                prediction (RTMR1, RTMR2)
#       cmdline  a copy whose grub.cfg appends one token to the kernel command line: the broker
#                refuses, naming the kernel_cmdline event (among the grub.cfg and GRUB command
#                events that changed with it) with the digest the prediction for the copy gives;
#                the guest powers off, no marker, no shell
#       initrd   a copy whose initrd has one more (harmless) cpio member: refused likewise,
#                naming the initrd event
#       kernel   a copy whose kernel file has 4 KiB more at its end: refused, naming the kernel
#       header   a copy with a foreign token added to the LUKS2 header (cryptsetup token import;
#                checksums stay valid): the agent refuses before asking for the key, powers off
#       direct   the same image booted directly (QEMU -kernel/-initrd/-append from its /boot,
#                tdcrypt launch --boot direct) under a policy from `tdcrypt policy from-image
#                --boot direct`: unlocked, and the log equals that prediction (the kernel as QEMU
#                patches it, the EFI stub's LoadOptions and initrd events)
#       dracut-happy   the Debian 12 guest with dracut (build-guest.sh --init dracut; systemd
#                in the initramfs), encrypted and registered as its own secret: tdcrypt-agent.service
#                checks the header, attests and serves the key once over the crypttab key-file
#                socket; systemd-cryptsetup maps the root; marker, audit, prediction as for happy
#       dracut-header  a copy of it with a foreign LUKS2 token: the agent refuses before asking
#                for the key, the unit's failure powers the guest off
#       genfail  a copy of the guest whose initramfs generator fails (tests/e2e/test-image-genfail.sh):
#                a clear error, no OUT, no key file, nothing mounted or looped
# The four refused boots run in parallel after the happy one; direct runs next; the dracut
# guest's boots, one after the other, then genfail.
#
# Usage: run-e2e.sh [--build DIR] [--keep]
#                   [--only happy|cmdline|initrd|kernel|header|direct|dracut-happy|dracut-header|genfail]...
#                   [--timeout SEC] [--root-build]
#   --build DIR   build directory with cli/tdcrypt, kbs/tdcrypt-kbs, agent/tdcrypt-agent
#                 (default: $TDCRYPT_BUILD, else <repo>/build)
#   --keep        keep the work directory (serial logs, broker log) even when all passed
#   --timeout     per-boot limit in seconds (default 400 for the happy path, 240 for the others)
#   --root-build  image encrypt as root (chroot guest step) instead of as nobody (preparation VM,
#                 ~10-15 min under TCG; check image-rootless)
# Env: TDCRYPT_CACHE (guest image cache, see build-guest.sh), E2E_MEM (MiB, default 1024).
# Needs root (debootstrap on a cold cache, runuser, the root-only admin socket); the image is
# built as nobody.
# Ends with one line per check, "PASS name (detail)" / "FAIL name: why", then
# "N passed, M failed"; exit status 0 only if every check passed.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${TDCRYPT_BUILD:-$ROOT/build}
KEEP=0
ROOT_BUILD=0
ONLY=()
BOOT_TIMEOUT=400
NEG_TIMEOUT=240
MEM=${E2E_MEM:-1024}
while [ $# -gt 0 ]; do
	case $1 in
	--build) BUILD=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--root-build) ROOT_BUILD=1; shift ;;
	--only) ONLY+=("$2"); shift 2 ;;
	--timeout) BOOT_TIMEOUT=$2; NEG_TIMEOUT=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
	*) echo "run-e2e.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
want() { [ ${#ONLY[@]} -eq 0 ] && return 0; local o; for o in "${ONLY[@]}"; do [ "$o" = "$1" ] && return 0; done; return 1; }

T0=$(date +%s.%N)
el() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
log() { printf '[e2e %6ss] %s\n' "$(el)" "$*" >&2; }

# ---- results ---------------------------------------------------------------------------------------
RESULTS=()
NPASS=0
NFAIL=0
pass() { RESULTS+=("PASS $1${2:+ ($2)}"); NPASS=$((NPASS + 1)); log "PASS $1${2:+ ($2)}"; }
fail() { RESULTS+=("FAIL $1: $2"); NFAIL=$((NFAIL + 1)); log "FAIL $1: $2"; }
# check NAME WHY-IF-FAILED COMMAND...: PASS if the command succeeds
check() { local n=$1 why=$2; shift 2; if "$@"; then pass "$n"; else fail "$n" "$why"; fi; }
finish() {
	echo "== tdcrypt end-to-end results (work dir ${W:-none}, $(el) s)"
	local r
	for r in "${RESULTS[@]}"; do echo "$r"; done
	echo "$NPASS passed, $NFAIL failed"
}

W=""
KBS_PID=""
cleanup() {
	local p
	for p in "${W:-/nonexistent}"/*.qpid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
	if [ -n "$KBS_PID" ]; then kill "$KBS_PID" 2>/dev/null; wait "$KBS_PID" 2>/dev/null; fi
	if [ -n "$W" ] && [ "$KEEP" = 0 ] && [ "$NFAIL" = 0 ]; then rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'fail interrupted "signal"; finish; exit 1' INT TERM
abort() { fail "$1" "$2"; finish; exit 1; }

# ---- helpers -----------------------------------------------------------------------------------------
# json FILE a.b.c: one member of a JSON document
json() {
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d = d[k]
print(d)' "$1" "$2"
}
# kbs_events EVENT FIELD: FIELD of every JSON log line of the broker with "event": EVENT
kbs_events() {
	python3 -c 'import json, sys
for line in open(sys.argv[3], errors="replace"):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if isinstance(o, dict) and o.get("event") == sys.argv[1]:
        print(o.get(sys.argv[2], ""))' "$1" "$2" "$W/kbs.log"
}
# audit_snap NAME: the secret's audit records (admin socket) into audit-NAME.json
audit_snap() { "$TD" secret audit --secret "$SECRET" --json >"$W/audit-$1.json" 2>"$W/audit-$1.err" || true; }
# audit_new OLD NEW: "decision<TAB>reason" of each record in NEW that is not in OLD
audit_new() {
	python3 -c 'import json, sys
def recs(p):
    try:
        d = json.load(open(p))
    except (OSError, ValueError):
        return []
    return d.get("records", []) if isinstance(d, dict) else d
old = {r.get("id") for r in recs(sys.argv[1])}
for r in recs(sys.argv[2]):
    if r.get("id") not in old:
        print("%s\t%s" % (r.get("decision"), (r.get("reason") or "").replace("\n", " ")))' \
		"$W/audit-$1.json" "$W/audit-$2.json"
}
# eventlog_of SERIAL OUT: the vTPM event log the guest printed (base64) as a file
eventlog_of() {
	tr -d '\r' <"$1" | sed -n '/^TDCRYPT-EVENTLOG-BEGIN$/,/^TDCRYPT-EVENTLOG-END$/p' |
		grep -v '^TDCRYPT-EVENTLOG' | base64 -d >"$2" 2>/dev/null && [ -s "$2" ]
}
# measured_as_predicted NAME IMAGE [measure args]: NAME's guest log against tdcrypt measure
measured_as_predicted() {
	local name=$1 img=$2
	shift 2
	eventlog_of "$W/$name.serial" "$W/$name.tpmlog" &&
		"$TD" eventlog show "$W/$name.tpmlog" --tpm --json >"$W/$name.log.json" &&
		"$TD" measure --image "$img" --target sim "$@" --json >"$W/$name.pred.json" &&
		python3 "$HERE/compare-measure.py" "$W/$name.pred.json" "$W/$name.log.json" 1 2 \
			>"$W/$name.compare" 2>&1
}
# predicted_digest PRED_JSON ROLE: the digest tdcrypt measure predicts for the RTMR2 event of ROLE
predicted_digest() {
	python3 -c 'import json, sys
for e in json.load(open(sys.argv[1]))["rtmrs"][2]["events"]:
    if e["role"] == sys.argv[2]:
        print(e["digest"]); break' "$1" "$2"
}
tail_serial() {
	tr -d '\r' <"$1" | sed 's/\x1b\[[0-9;=?]*[a-zA-Z]//g' | grep -av '^[[:space:]]*$' | tail -n "${2:-6}" | tr '\n' '|'
}
# An interactive prompt on the console (GRUB, initramfs shell, emergency mode, getty) ends a boot
# at once: nothing will type into it, and its mere appearance is a failure.
PROMPTS='grub> |\(initramfs\) |BusyBox v[0-9.]+ .*built-in shell|emergency mode|Give root password|login: '
no_shell() { ! tr -d '\r' <"$1" | grep -qaE "$PROMPTS"; }

# boot NAME IMAGE TIMEOUT: boots IMAGE (writes discarded) until the guest powers off, TIMEOUT
# passes, or a prompt appears; writes NAME.res:
#   marker=<s|-> exit=<poweroff|timeout|prompt|killed-after-marker> rc=<qemu rc> total=<s>
boot() {
	local name=$1 img=$2 limit=$3 slog=$W/$1.serial rc="" t1 seen=- why now qp
	: >"$slog"
	t1=$(date +%s.%N)
	"$TD" launch --no-tdx --policy "${BOOT_POLICY:-$W/policy.json}" --snapshot --image "$img" \
		--memory "$MEM" --cpus "${BOOT_CPUS:-2}" \
		--broker-forward "127.0.0.1:$PORT" --serial-log "$slog" --name "e2e-$name" \
		</dev/null >"$W/$name.qemu" 2>&1 &
	qp=$!
	echo "$qp" >"$W/$name.qpid"
	while :; do
		now=$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
		if [ "$seen" = - ] && grep -qa TDCRYPT-GUEST-UP "$slog"; then seen=$now; fi
		if ! kill -0 "$qp" 2>/dev/null; then wait "$qp"; rc=$?; why=poweroff; break; fi
		if [ "$seen" != - ] && awk -v n="$now" -v s="$seen" 'BEGIN{exit !(n - s > 90)}'; then
			kill "$qp"; wait "$qp" 2>/dev/null; why=killed-after-marker; break
		fi
		if [ "$seen" = - ] && tr -d '\r' <"$slog" | grep -qaE "$PROMPTS"; then
			kill "$qp"; wait "$qp" 2>/dev/null; why=prompt; break
		fi
		if awk -v n="$now" -v t="$limit" 'BEGIN{exit !(n > t)}'; then
			kill "$qp"; wait "$qp" 2>/dev/null; why=timeout; break
		fi
		sleep 0.5
	done
	rm -f "$W/$name.qpid"
	echo "marker=$seen exit=$why rc=$rc total=$now" >"$W/$name.res"
	log "boot $name: marker=$seen exit=$why total=${now}s"
}
res() { sed -n "s/.*$2=\([^ ]*\).*/\1/p" "$W/$1.res"; }
# agent_times SERIAL: the agent's milestones as "start->quote X ms, ..." (bench/bench-unlock.sh)
agent_times() {
	tr -d '\r' <"$1" | awk '/tdcrypt-agent: timestamp event=/ {
		for (i = 1; i <= NF; i++) { if ($i ~ /^event=/) ev = substr($i, 7); if ($i ~ /^since_start_ms=/) ms = substr($i, 16) }
		if (!(ev in t)) t[ev] = ms + 0 }
		END { printf "agent: quote %.0f ms, handshake %.0f ms, key %.0f ms, unlock %.0f ms, total %.0f ms",
			t["quote"], t["connected"] - t["quote"], t["key"] - t["connected"], t["mapped"] - t["key"], t["mapped"] }'
}

# ---- preflight --------------------------------------------------------------------------------------
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || abort preflight "no build directory (--build DIR)"
TD=$BUILD/cli/tdcrypt
KBS=$BUILD/kbs/tdcrypt-kbs
AGENT=$BUILD/agent/tdcrypt-agent
W0=$(mktemp /tmp/tdcrypt-e2e-help.XXXXXX)
trap 'rm -f "$W0"; cleanup' EXIT
[ "$(id -u)" = 0 ] || abort preflight "needs root (debootstrap, mount + chroot, the root-only admin socket)"
for b in "$TD" "$KBS" "$AGENT"; do [ -x "$b" ] || abort preflight "missing $b (build tdcrypt first)"; done
for c in qemu-system-x86_64 qemu-img sgdisk debugfs cryptsetup openssl python3 swtpm swtpm_setup \
	cpio /usr/bin/time; do
	command -v "$c" >/dev/null || abort preflight "missing $c (scripts/e2e.sh installs it)"
done
"$TD" --help >"$W0" 2>&1 || true
for v in launch "image encrypt" "sim init" "policy set" "secret audit" measure "eventlog show" \
	"policy from-image"; do
	grep -q "tdcrypt $v" "$W0" || abort preflight "$TD has no '$v' command"
done
W=$(mktemp -d /tmp/tdcrypt-e2e.XXXXXX)
log "work dir $W, build $BUILD"

# ---- 1. guest image (cached) -------------------------------------------------------------------------
t=$(date +%s)
GUEST=$("$HERE/build-guest.sh" 2>"$W/build-guest.log") ||
	abort guest-image "build-guest.sh failed: $(tail -3 "$W/build-guest.log" | tr '\n' '|')"
pass guest-image "$(basename "$GUEST"), $(($(date +%s) - t)) s"

# ---- 2. simulator PKI + collateral, broker ------------------------------------------------------------
# The simulated TDX module reports the MRTD of the firmware the launcher boots (OVMF.fd).
"$TD" sim init "$W/sim" --days 7 >"$W/sim.log" 2>&1 || abort sim-init "$(tail -3 "$W/sim.log")"
# The broker's TLS identity: a throwaway P-256 key; the agent pins its SPKI.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=tdcrypt-e2e-broker -keyout "$W/broker.key" -out "$W/broker.crt" 2>/dev/null ||
	abort broker-cert "openssl req failed"
PIN=$(openssl x509 -in "$W/broker.crt" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -c1-64)
export TDCRYPT_KBS_SOCKET=$W/kbs.sock
"$KBS" init --master-key "$W/master.key" --db "$W/kbs.db" >"$W/kbs-init.log" 2>&1 ||
	abort broker-init "$(tail -3 "$W/kbs-init.log")"
"$KBS" --listen 127.0.0.1:0 --cert "$W/broker.crt" --key "$W/broker.key" --db "$W/kbs.db" \
	--master-key "$W/master.key" --collateral-dir "$W/sim/collateral" \
	--admin-socket "$W/kbs.sock" --allow-simulator-root "$W/sim/sim-root.pem" \
	</dev/null >"$W/kbs.log" 2>&1 &
KBS_PID=$!
PORT=""
for _ in $(seq 100); do
	PORT=$(kbs_events listening port 2>/dev/null | head -n1)
	[ -n "$PORT" ] && [ -S "$W/kbs.sock" ] && break
	kill -0 "$KBS_PID" 2>/dev/null || break
	sleep 0.1
done
[ -n "$PORT" ] && [ -S "$W/kbs.sock" ] || abort broker-start "tdcrypt-kbs did not start: $(tail -3 "$W/kbs.log" | tr '\n' '|')"
if grep -q "SIMULATOR ROOT" "$W/kbs.log" && [ -n "$(kbs_events simulator_trusted sim_root_sha256)" ]; then
	pass broker-start "127.0.0.1:$PORT, simulator root announced"
else
	fail broker-start "no loud simulator-root warning in the broker log"
fi

# ---- 3. encrypt the guest -------------------------------------------------------------------------------
# As nobody (issue 11): the guest step runs in a preparation boot of the image under QEMU; the
# check fails if the builder creates a loop device or a mount under its work dir, or runs chroot,
# mount, umount or losetup (shims first in PATH log any call). The key goes to a file nobody
# writes and root registers it. --root-build: as root (chroot guest step, faster).
SECRET=e2e-root
ENC=$W/enc.raw
if [ "$ROOT_BUILD" = 1 ]; then
	/usr/bin/time -f '%e %M' -o "$W/encrypt.time" \
		"$TD" image encrypt "$GUEST" "$ENC" --format raw --secret-id "$SECRET" \
		--broker 10.0.2.100:50051 --broker-pin "$PIN" --register-admin-socket "$W/kbs.sock" \
		--sim-dir "$W/sim" --agent "$AGENT" --guest-dir "$ROOT/guest" --timeout 60 --json \
		--emit-policy "$W/policy.json" >"$W/encrypt.json" 2>"$W/encrypt.log" ||
		abort image-encrypt "$(tail -5 "$W/encrypt.log" | tr '\n' '|')"
else
	NB=$W/nobody
	mkdir -p "$NB/shim"
	cp -r "$W/sim" "$NB/sim"
	for t in chroot mount umount losetup; do
		printf '#!/bin/sh\necho "%s $*" >>%s/shim.log\nexit 1\n' "$t" "$NB" >"$NB/shim/$t"
		chmod 0755 "$NB/shim/$t"
	done
	: >"$NB/shim.log"
	chown -R nobody: "$NB"
	chmod 0755 "$W"
	nb_state() { { awk '{print $5, $9, $10}' /proc/self/mountinfo | grep -F "$NB"; echo --;
		{ losetup -a 2>/dev/null; for l in /sys/block/loop*; do [ -r "$l/loop/backing_file" ] &&
			echo "$l $(cat "$l/loop/backing_file")"; done; } | grep -F "$NB"; } | sort; }
	nb_state >"$W/nb.before"
	/usr/bin/time -f '%e %M' -o "$W/encrypt.time" \
		runuser -u nobody -- env PATH="$NB/shim:$PATH" HOME="$NB" \
		"$TD" image encrypt "$GUEST" "$NB/enc.raw" --format raw --secret-id "$SECRET" \
		--broker 10.0.2.100:50051 --broker-pin "$PIN" --key-out "$NB/enc.key" \
		--sim-dir "$NB/sim" --agent "$AGENT" --guest-dir "$ROOT/guest" --timeout 60 --json \
		--emit-policy "$NB/policy.json" >"$W/encrypt.json" 2>"$W/encrypt.log" ||
		abort image-encrypt "as nobody: $(tail -5 "$W/encrypt.log" | tr '\n' '|')"
	nb_state >"$W/nb.after"
	"$TD" secret add "$SECRET" --key-file "$NB/enc.key" >"$W/secret-add.log" 2>&1 ||
		abort image-encrypt "secret add: $(tail -3 "$W/secret-add.log" | tr '\n' '|')"
	rm -f "$NB/enc.key"
	mv "$NB/enc.raw" "$ENC" && mv "$NB/policy.json" "$W/policy.json" ||
		abort image-encrypt "no image or policy from the rootless build"
	if ! cmp -s "$W/nb.before" "$W/nb.after"; then
		fail image-rootless "mounts or loop devices appeared: $(diff "$W/nb.before" "$W/nb.after" | tr '\n' '|')"
	elif [ -s "$NB/shim.log" ]; then
		fail image-rootless "the builder ran $(tr '\n' '|' <"$NB/shim.log")"
	elif ! grep -q 'guest step in a preparation VM (not root)' "$W/encrypt.log" ||
		[ "$(json "$W/encrypt.json" guest_step)" != vm ]; then
		fail image-rootless "the preparation VM was not chosen and announced"
	else
		pass image-rootless "as nobody, guest step in the preparation VM ($(json "$W/encrypt.json" seconds.guest | cut -c1-6) s): no loop device, no mount, no chroot"
	fi
fi
read -r ENC_S ENC_RSS <"$W/encrypt.time" || true
pass image-encrypt "${ENC_S:-?} s (encrypt stage $(json "$W/encrypt.json" seconds.encrypt | cut -c1-5) s), peak RSS ${ENC_RSS:-?} KiB, $(du -m "$ENC" | cut -f1) MiB allocated"

# Where /boot and the LUKS root are, from the --json summary.
BOOT_OFF=$(json "$W/encrypt.json" partitions.boot.offset) && ROOT_OFF=$(json "$W/encrypt.json" partitions.root.offset) ||
	abort image-layout "no boot/root offsets in the --json summary"
debugfs -R "cat /grub/grub.cfg" "$ENC?offset=$BOOT_OFF" >"$W/grub.cfg" 2>/dev/null &&
	grep -q '^[[:space:]]*linux' "$W/grub.cfg" || abort image-layout "no grub.cfg with a linux line on the clear /boot"
if [ "$(dd if="$ENC" bs=1 skip="$ROOT_OFF" count=6 status=none | od -An -tx1 | tr -d ' \n')" = 4c554b53babe ]; then
	pass image-layout "LUKS2 root at $ROOT_OFF, clear /boot at $BOOT_OFF"
else
	abort image-layout "no LUKS2 magic at the root partition"
fi

# ---- 4. policy: predicted from the encrypted image by image encrypt --emit-policy -----------------------
"$TD" policy set "$SECRET" "$W/policy.json" >"$W/policy.log" 2>&1 ||
	abort policy "$(tail -3 "$W/policy.log" | tr '\n' '|')"
POLICY_SUMMARY=$(python3 -c 'import json, sys
p = json.load(open(sys.argv[1]))
ev = p.get("events", {})
print("MRTD %s..., RTMR1 %d events, RTMR2 %d events, RTMR3 %s, firmware %s" % (p["mrtd"][0][:16],
      len(ev.get("rtmr1", [])), len(ev.get("rtmr2", [])), "pinned" if "rtmr3" in p else "-",
      p["reference"]["firmware"]))' "$W/policy.json" 2>&1)
SIM_MRTD=$(json "$W/sim/td.json" mrtd)
if [ "$(json "$W/policy.json" mrtd | tr -d "[]' ")" = "$SIM_MRTD" ] &&
	grep -q '"rtmr2"' "$W/policy.json" && grep -q '"kernel_cmdline' "$W/policy.json"; then
	pass policy "from --emit-policy: $POLICY_SUMMARY"
else
	fail policy "the emitted policy lacks MRTD or RTMR2 events: $POLICY_SUMMARY"
fi

# The launcher's isolation, on the exact command line the boots use.
"$TD" launch --no-tdx --policy "$W/policy.json" --snapshot --image "$ENC" \
	--broker-forward "127.0.0.1:$PORT" --serial-log "$W/x.serial" --print >"$W/launch.txt" 2>&1
check launch-isolation "$(cat "$W/launch.txt")" sh -c "grep -q 'user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:50051-cmd:[^ ]*/tdcrypt forward 127.0.0.1:$PORT' '$W/launch.txt' &&
	grep -q -- '-accel tcg ' '$W/launch.txt' && grep -q -- '-bios /usr/share/ovmf/OVMF.fd ' '$W/launch.txt' &&
	grep -q -- 'tpm-tis' '$W/launch.txt' &&
	! grep -qE 'hostfwd|accel kvm|enable-kvm|-monitor [^n]|-qmp|-vnc|-gdb' '$W/launch.txt' && [ \$(grep -o guestfwd= '$W/launch.txt' | wc -l) = 1 ]"

# ---- 5. happy path ----------------------------------------------------------------------------------------
if want happy; then
	log "boot: happy path (timeout ${BOOT_TIMEOUT}s)"
	audit_snap pre-happy
	boot happy "$ENC" "$BOOT_TIMEOUT"
	audit_snap post-happy
	audit_new pre-happy post-happy >"$W/audit-happy.txt"
	S=$W/happy.serial
	if [ "$(res happy marker)" != - ]; then
		pass happy-marker "after $(res happy marker) s: $(grep -a -m1 -o 'TDCRYPT-GUEST-UP.*' "$S" | tr -d '\r')"
	else
		fail happy-marker "no marker ($(res happy exit)); last serial lines: $(tail_serial "$S")"
	fi
	check happy-root-decrypted "the marker does not show root=/dev/mapper/..." grep -qa 'TDCRYPT-GUEST-UP root=/dev/mapper/' "$S"
	if grep -qa 'tdcrypt-agent: .* unlocked as /dev/mapper/' "$S"; then
		pass happy-agent-unlocked "$(agent_times "$S")"
	else
		fail happy-agent-unlocked "no 'unlocked as /dev/mapper' from the agent: $(grep -a 'tdcrypt' "$S" | tail -3 | tr -d '\r' | tr '\n' '|')"
	fi
	check happy-poweroff "the guest did not power off by itself ($(res happy exit))" test "$(res happy exit)" = poweroff
	check happy-no-shell "a prompt appeared" no_shell "$S"
	check happy-audit-released "no 'released' audit record with a replayed event log: $(cut -c1-200 "$W/audit-happy.txt" | tr '\n' '|')" \
		grep -q '^released.*event log replayed' "$W/audit-happy.txt"
	# what the firmware, GRUB and Linux measured (the vTPM log the guest printed), event by event
	if measured_as_predicted happy "$ENC"; then
		pass happy-measured-as-predicted "$(tr '\n' ' ' <"$W/happy.compare")"
	else
		fail happy-measured-as-predicted "$(tr '\n' '|' <"$W/happy.compare" 2>/dev/null)"
	fi
fi

# ---- 6. refused boots, in parallel ---------------------------------------------------------------------------
# (a) a changed kernel command line: one harmless token appended in grub.cfg of a copy
mk_cmdline_copy() {
	local fs="$W/cmdline.raw?offset=$BOOT_OFF"
	cp --sparse=always "$ENC" "$W/cmdline.raw" &&
		sed 's/^\([[:space:]]*linux\(efi\)\?[[:space:]].*\)$/\1 tdcrypt.e2e=tampered/' "$W/grub.cfg" >"$W/grub-tampered.cfg" &&
		debugfs -w -R "rm /grub/grub.cfg" "$fs" >/dev/null 2>&1 &&
		debugfs -w -R "write $W/grub-tampered.cfg /grub/grub.cfg" "$fs" >/dev/null 2>&1 &&
		debugfs -R "cat /grub/grub.cfg" "$fs" 2>/dev/null | grep -q 'tdcrypt.e2e=tampered'
}
# (b) a changed initrd: one more cpio member appended (the kernel unpacks concatenated archives)
mk_initrd_copy() {
	local fs="$W/initrd.raw?offset=$BOOT_OFF" name
	cp --sparse=always "$ENC" "$W/initrd.raw" &&
		name=$(debugfs -R "ls -l /" "$fs" 2>/dev/null | awk '$NF ~ /^initrd.img-/ {print $NF; exit}') &&
		[ -n "$name" ] &&
		debugfs -R "dump /$name $W/initrd.img" "$fs" >/dev/null 2>&1 &&
		mkdir -p "$W/initrd-extra" && echo e2e >"$W/initrd-extra/tdcrypt-e2e-extra" &&
		(cd "$W/initrd-extra" && echo tdcrypt-e2e-extra | cpio -o -H newc --quiet) >>"$W/initrd.img" &&
		debugfs -w -R "rm /$name" "$fs" >/dev/null 2>&1 &&
		debugfs -w -R "write $W/initrd.img /$name" "$fs" >/dev/null 2>&1
}
# (c) a changed kernel: 4 KiB of zeros appended to the bzImage (the boot loader loads the whole
#     file, the kernel ignores what lies past its payload)
mk_kernel_copy() {
	local fs="$W/kernel.raw?offset=$BOOT_OFF" name
	cp --sparse=always "$ENC" "$W/kernel.raw" &&
		name=$(debugfs -R "ls -l /" "$fs" 2>/dev/null | awk '$NF ~ /^vmlinuz-/ {print $NF; exit}') &&
		[ -n "$name" ] &&
		debugfs -R "dump /$name $W/vmlinuz" "$fs" >/dev/null 2>&1 &&
		head -c 4096 /dev/zero >>"$W/vmlinuz" &&
		debugfs -w -R "rm /$name" "$fs" >/dev/null 2>&1 &&
		debugfs -w -R "write $W/vmlinuz /$name" "$fs" >/dev/null 2>&1
}
# (d) a tampered LUKS2 header: a foreign token imported with cryptsetup (checksums stay valid,
#     so only the agent's pinned header digest and structure rules can catch it)
#     mk_header_copy [IMAGE ROOT_OFFSET OUT]: of the initramfs-tools image by default
mk_header_copy() {
	local src=${1:-$ENC} off=${2:-$ROOT_OFF} out=${3:-$W/header.raw}
	cp --sparse=always "$src" "$out" &&
		dd if="$out" of="$W/hdr.img" bs=1M count=16 iflag=skip_bytes skip="$off" status=none &&
		echo '{"type":"e2e-foreign","keyslots":[]}' >"$W/token.json" &&
		cryptsetup token import --batch-mode --json-file "$W/token.json" "$W/hdr.img" >"$W/token.log" 2>&1 &&
		cryptsetup luksDump "$W/hdr.img" 2>/dev/null | grep -q e2e-foreign &&
		dd if="$W/hdr.img" of="$out" bs=1M oflag=seek_bytes seek="$off" conv=notrunc status=none
}
NEG=()
if want cmdline; then
	if mk_cmdline_copy; then NEG+=(cmdline); else fail cmdline-setup "cannot edit grub.cfg in a copy"; fi
fi
if want initrd; then
	if mk_initrd_copy; then NEG+=(initrd); else fail initrd-setup "cannot change the initrd in a copy"; fi
fi
if want kernel; then
	if mk_kernel_copy; then NEG+=(kernel); else fail kernel-setup "cannot change the kernel in a copy"; fi
fi
if want header; then
	if mk_header_copy; then NEG+=(header); else fail header-setup "cannot add a token: $(tail -2 "$W/token.log" 2>/dev/null)"; fi
fi
if [ ${#NEG[@]} -gt 0 ]; then
	log "boots: ${NEG[*]} (parallel, timeout ${NEG_TIMEOUT}s)"
	audit_snap pre-neg
	pids=()
	for n in "${NEG[@]}"; do
		(trap - INT TERM EXIT; BOOT_CPUS=1 boot "$n" "$W/$n.raw" "$NEG_TIMEOUT") &
		pids+=($!)
	done
	wait "${pids[@]}"
	audit_snap post-neg
	audit_new pre-neg post-neg >"$W/audit-neg.txt"
fi
# A changed copy NAME was refused by policy: no marker; the denial names its ROLE event with the
# digest the prediction for the copy gives (PATTERN, an extended regex with @D@ for the first 16
# hex digits of it); the agent says "denied"; the guest powers off without a shell.
check_refused_boot() { # NAME ROLE WHAT PATTERN
	local n=$1 role=$2 what=$3 re=$4 S=$W/$1.serial D
	check "$n-no-marker" "the guest reached userspace" test "$(res "$n" marker)" = -
	"$TD" measure --image "$W/$n.raw" --target sim --json >"$W/$n.pred.json" 2>/dev/null
	D=$(predicted_digest "$W/$n.pred.json" "$role" | cut -c1-16)
	re=${re//@D@/${D:-no-prediction}}
	check "$n-audit-names-event" "no denied audit record naming $what with digest ${D:-?}: $(cut -c1-400 "$W/audit-neg.txt" | tr '\n' '|')" \
		grep -qE -- "$re" "$W/audit-neg.txt"
	check "$n-agent-denied" "the agent did not report 'denied': $(grep -a 'tdcrypt' "$S" | tail -3 | tr -d '\r' | tr '\n' '|')" \
		grep -qa 'tdcrypt-agent: denied' "$S"
	check "$n-poweroff" "the guest did not power off by itself ($(res "$n" exit))" test "$(res "$n" exit)" = poweroff
	check "$n-no-shell" "a prompt appeared" no_shell "$S"
}
if [[ " ${NEG[*]} " == *" cmdline "* ]]; then
	check_refused_boot cmdline cmdline kernel_cmdline '^denied.*rtmr2.*kernel_cmdline: [^;]*digest @D@'
fi
if [[ " ${NEG[*]} " == *" initrd "* ]]; then
	check_refused_boot initrd initrd "the initrd" "^denied.*rtmr2.*'/initrd.img', digest @D@"
fi
if [[ " ${NEG[*]} " == *" kernel "* ]]; then
	check_refused_boot kernel kernel "the kernel" "^denied.*rtmr2.*'/vmlinuz', digest @D@"
fi
if [[ " ${NEG[*]} " == *" header "* ]]; then
	S=$W/header.serial
	check header-no-marker "the guest reached userspace" test "$(res header marker)" = -
	check header-agent-refused "the agent did not report bad-header: $(grep -a 'tdcrypt' "$S" | tail -3 | tr -d '\r' | tr '\n' '|')" \
		grep -qa 'tdcrypt-agent: bad-header' "$S"
	check header-no-quote "the agent went on to quote or connect" sh -c "! grep -qaE 'event=(quote|connected)' '$S'"
	# the only new audit record may be the parallel cmdline run's denial
	check header-no-key-request "unexpected audit records: $(cut -c1-300 "$W/audit-neg.txt" | tr '\n' '|')" \
		test "$(grep -vciE '^denied.*rtmr2' "$W/audit-neg.txt")" = 0
	check header-poweroff "the guest did not power off by itself ($(res header exit))" test "$(res header exit)" = poweroff
	check header-no-shell "a prompt appeared" no_shell "$S"
fi

# ---- 7. direct kernel boot of the same image, under its own predicted policy ----------------------------
if want direct; then
	if "$TD" policy from-image "$ENC" --target sim --boot direct --memory "$MEM" \
		-o "$W/policy-direct.json" >"$W/policy-direct.log" 2>&1 &&
		"$TD" policy set "$SECRET" "$W/policy-direct.json" >>"$W/policy-direct.log" 2>&1; then
		log "boot: direct (timeout ${BOOT_TIMEOUT}s)"
		audit_snap pre-direct
		BOOT_POLICY=$W/policy-direct.json boot direct "$ENC" "$BOOT_TIMEOUT"
		audit_snap post-direct
		audit_new pre-direct post-direct >"$W/audit-direct.txt"
		S=$W/direct.serial
		if [ "$(res direct marker)" != - ] && grep -qa 'TDCRYPT-GUEST-UP root=/dev/mapper/' "$S"; then
			pass direct-unlocked "after $(res direct marker) s, $(agent_times "$S")"
		else
			fail direct-unlocked "no marker ($(res direct exit)): $(grep -a 'tdcrypt' "$S" | tail -3 | tr -d '\r' | tr '\n' '|')"
		fi
		check direct-audit-released "no 'released' audit record: $(cut -c1-200 "$W/audit-direct.txt" | tr '\n' '|')" \
			grep -q '^released.*event log replayed' "$W/audit-direct.txt"
		if measured_as_predicted direct "$ENC" --boot direct --memory "$MEM"; then
			pass direct-measured-as-predicted "$(tr '\n' ' ' <"$W/direct.compare")"
		else
			fail direct-measured-as-predicted "$(tr '\n' '|' <"$W/direct.compare" 2>/dev/null)"
		fi
		check direct-no-shell "a prompt appeared" no_shell "$S"
	else
		fail direct-policy "$(tail -3 "$W/policy-direct.log" | tr '\n' '|')"
	fi
fi

# ---- 8. the dracut guest: systemd-cryptsetup reads the key from the agent's socket ---------------------
if want dracut-happy || want dracut-header; then
	t=$(date +%s)
	if ! DGUEST=$("$HERE/build-guest.sh" --init dracut 2>"$W/build-guest-dracut.log"); then
		fail dracut-guest-image "build-guest.sh --init dracut failed: $(tail -3 "$W/build-guest-dracut.log" | tr '\n' '|')"
	elif pass dracut-guest-image "$(basename "$DGUEST"), $(($(date +%s) - t)) s" &&
		DSECRET=e2e-root-dracut && DENC=$W/dracut.raw &&
		! /usr/bin/time -f '%e' -o "$W/encrypt-dracut.time" "$TD" image encrypt "$DGUEST" "$DENC" --format raw --secret-id "$DSECRET" \
			--broker 10.0.2.100:50051 --broker-pin "$PIN" --register-admin-socket "$W/kbs.sock" \
			--sim-dir "$W/sim" --agent "$AGENT" --guest-dir "$ROOT/guest" --timeout 60 --json \
			--emit-policy "$W/policy-dracut.json" >"$W/encrypt-dracut.json" 2>"$W/encrypt-dracut.log"; then
		fail dracut-image-encrypt "$(tail -5 "$W/encrypt-dracut.log" | tr '\n' '|')"
	elif ! "$TD" policy set "$DSECRET" "$W/policy-dracut.json" >"$W/policy-dracut.log" 2>&1; then
		fail dracut-policy "$(tail -3 "$W/policy-dracut.log" | tr '\n' '|')"
	else
		pass dracut-image-encrypt "$(cat "$W/encrypt-dracut.time") s, $(du -m "$DENC" | cut -f1) MiB allocated"
		DROOT_OFF=$(json "$W/encrypt-dracut.json" partitions.root.offset)
		if want dracut-happy; then
			log "boot: dracut-happy (timeout ${BOOT_TIMEOUT}s)"
			SECRET=$DSECRET audit_snap pre-dracut
			BOOT_POLICY=$W/policy-dracut.json boot dracut-happy "$DENC" "$BOOT_TIMEOUT"
			SECRET=$DSECRET audit_snap post-dracut
			S=$W/dracut-happy.serial
			if [ "$(res dracut-happy marker)" != - ] && grep -qa 'TDCRYPT-GUEST-UP root=/dev/mapper/' "$S"; then
				pass dracut-happy-unlocked "after $(res dracut-happy marker) s: $(grep -a -m1 -o 'TDCRYPT-GUEST-UP.*' "$S" | tr -d '\r')"
			else
				fail dracut-happy-unlocked "no marker ($(res dracut-happy exit)); last serial lines: $(tail_serial "$S")"
			fi
			check dracut-happy-key-served "the agent did not serve the key over the socket: $(grep -a 'tdcrypt' "$S" | tail -3 | tr -d '\r' | tr '\n' '|')" \
				grep -qa 'tdcrypt-agent: key sent once to pid [0-9]* over /run/tdcrypt/key.sock' "$S"
			check dracut-happy-agent-did-not-map "the agent mapped the root itself" sh -c "! grep -qa 'tdcrypt-agent: .* unlocked as' '$S'"
			check dracut-happy-systemd-cryptsetup "systemd-cryptsetup did not map the root: $(grep -a 'ryptsetup' "$S" | tail -3 | tr -d '\r' | tr '\n' '|')" \
				sh -c "tr -d '\\r' <'$S' | sed 's/\x1b\[[0-9;]*m//g' | grep -qaE 'Finished .*ography Setup for'"
			check dracut-happy-poweroff "the guest did not power off by itself ($(res dracut-happy exit))" test "$(res dracut-happy exit)" = poweroff
			check dracut-happy-no-shell "a prompt appeared" no_shell "$S"
			SECRET=$DSECRET audit_new pre-dracut post-dracut >"$W/audit-dracut.txt"
			check dracut-happy-audit-released "no 'released' audit record with a replayed event log: $(cut -c1-200 "$W/audit-dracut.txt" | tr '\n' '|')" \
				grep -q '^released.*event log replayed' "$W/audit-dracut.txt"
			if measured_as_predicted dracut-happy "$DENC"; then
				pass dracut-happy-measured-as-predicted "$(tr '\n' ' ' <"$W/dracut-happy.compare")"
			else
				fail dracut-happy-measured-as-predicted "$(tr '\n' '|' <"$W/dracut-happy.compare" 2>/dev/null)"
			fi
		fi
		if want dracut-header; then
			if mk_header_copy "$DENC" "$DROOT_OFF" "$W/dracut-header.raw"; then
				log "boot: dracut-header (timeout ${NEG_TIMEOUT}s)"
				SECRET=$DSECRET audit_snap pre-dracut-header
				BOOT_POLICY=$W/policy-dracut.json boot dracut-header "$W/dracut-header.raw" "$NEG_TIMEOUT"
				SECRET=$DSECRET audit_snap post-dracut-header
				audit_new pre-dracut-header post-dracut-header >"$W/audit-dracut-header.txt"
				S=$W/dracut-header.serial
				check dracut-header-no-marker "the guest reached userspace" test "$(res dracut-header marker)" = -
				check dracut-header-agent-refused "the agent did not report bad-header: $(grep -a 'tdcrypt' "$S" | tail -3 | tr -d '\r' | tr '\n' '|')" \
					grep -qa 'tdcrypt-agent: bad-header' "$S"
				check dracut-header-no-quote "the agent went on to quote or connect" sh -c "! grep -qaE 'event=(quote|connected)' '$S'"
				check dracut-header-no-key-request "unexpected audit records: $(cut -c1-300 "$W/audit-dracut-header.txt" | tr '\n' '|')" \
					test ! -s "$W/audit-dracut-header.txt"
				check dracut-header-no-systemd-cryptsetup "systemd-cryptsetup ran" sh -c "! sed 's/\x1b\[[0-9;]*m//g' '$S' | grep -qaE 'Starting .*ography Setup for'"
				check dracut-header-poweroff "the guest did not power off by itself ($(res dracut-header exit))" test "$(res dracut-header exit)" = poweroff
				check dracut-header-no-shell "a prompt appeared" no_shell "$S"
			else
				fail dracut-header-setup "cannot add a token: $(tail -2 "$W/token.log" 2>/dev/null)"
			fi
		fi
	fi
fi

# ---- genfail: the guest's initramfs generator fails inside the guest step (root path)
if want genfail; then
	log "genfail: a generator that fails in the guest"
	"$HERE/test-image-genfail.sh" "$GUEST" "$BUILD" >"$W/genfail.log" 2>&1
	rc=$?
	if [ $rc = 0 ] && grep -q '^PASS genfail' "$W/genfail.log"; then
		pass genfail "$(sed -n 's/^PASS genfail (\(.*\))$/\1/p' "$W/genfail.log" | cut -c1-200)"
	else
		fail genfail "exit $rc: $(tail -3 "$W/genfail.log" | tr '\n' '|')"
	fi
fi

finish
[ "$NFAIL" = 0 ]
