#!/bin/sh
# `tdcrypt policy explain` on real quotes ($TDC_TESTDATA) with offline policies and
# collateral, at each vector's verify_at: every rule listed with PASS/FAIL, the
# verdict, the exit code (0 released, 2 refused, 3 bad input), the JSON form; then
# online against a broker's admin socket (policy.show).
# usage: test-policy-explain.sh TDCRYPT [TDCRYPT_KBS]
set -eu
TDCRYPT=$1
KBS=${2:-}
T=${TDC_TESTDATA:?set TDC_TESTDATA}
D=$(mktemp -d /tmp/tdc-explain-XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
n_pass=0
fail() { echo "FAIL: $*"; [ -f "$D/out" ] && { echo "--- output"; cat "$D/out" "$D/err"; }; exit 1; }
ok() { n_pass=$((n_pass + 1)); echo "ok $n_pass - $1"; }

# runs explain with the given arguments; $rc is its exit code, stdout in $D/out
explain() {
	set +e
	"$TDCRYPT" policy explain "$@" >"$D/out" 2>"$D/err"
	rc=$?
	set -e
}
has() { grep -q -- "$1" "$D/out" || fail "no line '$1'"; }
rules=19 # every rule of include/tdcrypt/policy.h, configured or not

# collateral directory bundles for the vectors whose collateral is loose files
mkdir "$D/gotdx" "$D/zk"
ln -s "$T/go-tdx-guest/sample_tcbInfo_response" "$D/gotdx/tcb_info.json"
ln -s "$T/go-tdx-guest/derived/tcbInfoIssuerChain.pem" "$D/gotdx/tcb_info_issuer_chain.pem"
ln -s "$T/go-tdx-guest/sample_qeIdentity_response" "$D/gotdx/qe_identity.json"
ln -s "$T/go-tdx-guest/pckcrl" "$D/gotdx/pck_crl.der"
ln -s "$T/go-tdx-guest/rootcrl.der" "$D/gotdx/root_ca_crl.der"
ln -s "$T/zkdcap/tcbinfov3_00806f050000.json" "$D/zk/tcb_info.json"
{ cat "$T/zkdcap/tcb_signing_cert.pem"; echo
  openssl x509 -inform DER -in "$T/zkdcap/Intel_SGX_Provisioning_Certification_RootCA.cer"; } \
	>"$D/zk/tcb_info_issuer_chain.pem"
ln -s "$T/zkdcap/qeidentityv2_tdx.json" "$D/zk/qe_identity.json"
ln -s "$T/zkdcap/pck_platform_crl.der" "$D/zk/pck_crl.der"
ln -s "$T/zkdcap/intel_root_ca_crl.der" "$D/zk/root_ca_crl.der"

DCAP_Q="$T/dcap-qvl/tdx_quote"
DCAP_C="$T/dcap-qvl/tdx_quote_collateral.json"
DCAP_AT=2025-07-04T10:16:31Z
MRTD=91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7
printf '{"mrtd":["%s"],"tcb_status":["UpToDate"]}' "$MRTD" >"$D/pin.json"
printf '{}' >"$D/empty.json"

# 1. dcap-qvl quote, policy pinning its MRTD: released, every rule listed and passing
explain "$DCAP_Q" --collateral "$DCAP_C" --policy "$D/pin.json" --at "$DCAP_AT"
[ $rc = 0 ] || fail "pinned MRTD: exit $rc"
[ "$(grep -c '^PASS  ' "$D/out")" = $rules ] || fail "pinned MRTD: not $rules PASS lines"
grep -q '^FAIL' "$D/out" && fail "pinned MRTD: a FAIL line"
has "^PASS  mrtd$"
has "^      actual:   $MRTD"
has "^PASS  tcb_status$"
has "^PASS  debug  *(default)"
has "^quote verified: UpToDate"
has "^decision: release"
ok "dcap-qvl quote + MRTD pin: released, $rules rules PASS"

# 2. the same with another MRTD: refused on mrtd, and only on mrtd
OTHER=$(printf '%s' "$MRTD" | sed 's/7$/0/')
printf '{"mrtd":["%s"]}' "$OTHER" >"$D/other.json"
explain "$DCAP_Q" --collateral "$DCAP_C" --policy "$D/other.json" --at "$DCAP_AT"
[ $rc = 2 ] || fail "other MRTD: exit $rc"
[ "$(grep -c '^FAIL  ' "$D/out")" = 1 ] || fail "other MRTD: not exactly one FAIL"
has "^FAIL  mrtd$"
has "^decision: deny (mrtd)"
has "^the agent would receive: policy_denied"
ok "dcap-qvl quote + other MRTD: refused on mrtd (exit 2)"

# 3. JSON form
explain "$DCAP_Q" --collateral "$DCAP_C" --policy "$D/pin.json" --at "$DCAP_AT" --json
[ $rc = 0 ] || fail "json: exit $rc"
python3 - "$D/out" $rules <<'PY' || fail "json shape"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["allowed"] is True and o["reason_code"] is None, o
assert len(o["rules"]) == int(sys.argv[2]), len(o["rules"])
assert all(r["pass"] for r in o["rules"])
m = [r for r in o["rules"] if r["name"] == "mrtd"][0]
assert m["configured"] and m["actual"] in m["expected"], m
assert o["verification"]["verified"] is True, o["verification"]
PY
ok "--json: allowed, $rules rules, verification attached"

# 4. trustee DEBUG TD with go-tdx-guest collateral: verifies UpToDate, refused on debug
explain "$T/trustee/tdx_quote_4.dat" --collateral "$D/gotdx" --policy "$D/empty.json" \
	--at 2023-06-28T08:03:58Z
[ $rc = 2 ] || fail "debug TD: exit $rc"
has "^quote verified: UpToDate"
has "^FAIL  debug  *(default)"
has "^      actual:   DEBUG set"
has "^decision: deny (debug)"
[ "$(grep -c '^PASS  \|^FAIL  ' "$D/out")" = $rules ] || fail "debug TD: not $rules rules"
ok "trustee DEBUG TD: refused on debug (exit 2), all rules listed"
explain "$T/trustee/tdx_quote_4.dat" --collateral "$D/gotdx" --at 2023-06-28T08:03:58Z --json \
	--policy "$D/empty.json"
python3 - "$D/out" <<'PY' || fail "debug json"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["allowed"] is False and o["reason_code"] == "debug", o
assert o["agent_reason"] == "policy_denied", o
assert [r["name"] for r in o["rules"] if not r["pass"]] == ["debug"], o["rules"]
PY
ok "trustee DEBUG TD --json: reason_code debug"

# 5. zkdcap quote with SEPT_VE_DISABLE off: refused on sept_ve_disable
explain "$T/zkdcap/quote_v4.dat" --collateral "$D/zk" --policy "$D/empty.json" \
	--at 2025-02-05T11:57:03Z
[ $rc = 2 ] || fail "sept-ve: exit $rc"
has "^FAIL  sept_ve_disable  *(default)"
has "^decision: deny (sept_ve_disable)"
ok "zkdcap SEPT_VE_DISABLE off: refused on sept_ve_disable (exit 2)"

# 6. a quote that fails verification: no rules, deny with the verification reason
explain "$DCAP_Q" --collateral "$DCAP_C" --policy "$D/pin.json" --at 2025-08-01T00:00:00Z
[ $rc = 2 ] || fail "expired collateral: exit $rc"
has "^quote verification: FAIL "
has "^decision: deny (collateral_unavailable)"
grep -q '^PASS\|^FAIL  ' "$D/out" && fail "rules evaluated on an unverified quote"
ok "expired collateral: refused before the policy (exit 2)"

# 6b. a real TD's CC event log (GCE, OVMF + shim + GRUB) with the quote from the same boot:
# replayed to its RTMRs, a policy on its events released; one changed GRUB event named
COS_Q="$T/go-tdx-guest/ccel/cos-113-tdx-quote.dat"
CCEL="$T/go-tdx-guest/ccel/ccel_data.dat"
COS_AT=2025-02-10T00:00:00Z
"$TDCRYPT" eventlog show "$CCEL" --json >"$D/ccel.json" || fail "eventlog show"
python3 - "$D/ccel.json" "$D/events.json" "$D/events-bad.json" <<'PY' || fail "policy from the log"
import json, sys
log = json.load(open(sys.argv[1]))
ev = {}
for e in log["events"]:
    if e["rtmr"] is not None:
        ev.setdefault("rtmr%d" % e["rtmr"], []).append({"digest": [e["digest"]], "what": e["what"][:150]})
json.dump({"version": 1, "events": {k: ev[k] for k in ("rtmr1", "rtmr2")}}, open(sys.argv[2], "w"))
for e in ev["rtmr2"]:
    if e["what"].startswith("kernel_cmdline"):
        e["digest"] = ["00" * 48]
json.dump({"version": 1, "events": {k: ev[k] for k in ("rtmr1", "rtmr2")}}, open(sys.argv[3], "w"))
PY
explain "$COS_Q" --collateral "$D/zk" --policy "$D/events.json" --at "$COS_AT" --event-log "$CCEL" \
	--ccel-table "$T/go-tdx-guest/ccel/ccel_table.dat"
[ $rc = 0 ] || fail "real CCEL events: exit $rc"
has "^event log: 43 events, replays to the quote's RTMRs"
has "^PASS  rtmr2$"
has "^decision: release"
explain "$COS_Q" --collateral "$D/zk" --policy "$D/events-bad.json" --at "$COS_AT" --event-log "$CCEL"
[ $rc = 2 ] || fail "changed event: exit $rc"
has "^FAIL  rtmr2$"
has "event 19 is EV_IPL 'kernel_cmdline: /syslinux/vmlinuz.A"
explain "$COS_Q" --collateral "$D/zk" --policy "$D/events.json" --at "$COS_AT"
[ $rc = 2 ] || fail "no event log: exit $rc"
has "no event log in the evidence"
head -c 5000 "$CCEL" >"$D/cut.ccel"
explain "$COS_Q" --collateral "$D/zk" --policy "$D/events.json" --at "$COS_AT" --event-log "$D/cut.ccel"
[ $rc = 2 ] || fail "cut event log: exit $rc"
has "^event log: FAIL"
has "^decision: deny (evidence_invalid)"
ok "real CCEL: replayed, events released; changed kernel_cmdline event named; no/cut log refused"

# 7. bad input: exit 3
explain "$DCAP_Q" --collateral "$DCAP_C" --at "$DCAP_AT"
[ $rc = 3 ] || fail "no --secret/--policy: exit $rc"
printf '{"mrtd":["zz"]}' >"$D/bad.json"
explain "$DCAP_Q" --collateral "$DCAP_C" --policy "$D/bad.json" --at "$DCAP_AT"
[ $rc = 3 ] || fail "bad policy: exit $rc"
grep -q mrtd "$D/err" || fail "bad policy: error does not name the field"
printf 'garbage' >"$D/garbage"
explain "$D/garbage" --collateral "$DCAP_C" --policy "$D/pin.json" --at "$DCAP_AT"
[ $rc = 3 ] || fail "garbage quote: exit $rc"
explain "$DCAP_Q" --collateral "$D/nowhere" --policy "$D/pin.json" --at "$DCAP_AT"
[ $rc = 3 ] || fail "missing collateral: exit $rc"
explain "$DCAP_Q" --collateral "$DCAP_C" --policy "$D/pin.json" --at yesterday
[ $rc = 3 ] || fail "bad --at: exit $rc"
ok "bad input (usage, policy, quote, collateral, time): exit 3"

# 8. online: the policy comes from a running broker's admin socket
if [ -n "$KBS" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker.test \
		-keyout "$D/broker.key" -out "$D/broker.crt" -days 1 2>/dev/null
	"$KBS" init --master-key "$D/master.key" --db "$D/kbs.db" 2>/dev/null
	cat >"$D/kbs.json" <<J
{"listen": "127.0.0.1:0", "cert": "$D/broker.crt", "key": "$D/broker.key",
 "db": "$D/kbs.db", "master_key": "$D/master.key", "collateral_dir": "$D/none",
 "admin_socket": "$D/run/kbs.sock", "workers": 1}
J
	"$KBS" --config "$D/kbs.json" 2>"$D/log" &
	PID=$!
	for _ in $(seq 50); do [ -S "$D/run/kbs.sock" ] && break; sleep 0.1; done
	[ -S "$D/run/kbs.sock" ] || fail "no admin socket"
	export TDCRYPT_KBS_SOCKET="$D/run/kbs.sock"
	"$TDCRYPT" secret add pinned --generate 32 --policy "$D/pin.json" >/dev/null 2>&1 ||
		fail "secret add"
	"$TDCRYPT" secret add bare --generate 32 >/dev/null 2>&1 || fail "secret add (no policy)"
	explain --secret pinned "$DCAP_Q" --collateral "$DCAP_C" --at "$DCAP_AT"
	[ $rc = 0 ] || fail "online: exit $rc"
	has "^secret pinned, policy from $D/run/kbs.sock"
	has "^PASS  mrtd$"
	has "^decision: release"
	explain --secret bare "$DCAP_Q" --collateral "$DCAP_C" --at "$DCAP_AT"
	[ $rc = 2 ] || fail "online, no policy: exit $rc"
	grep -q "has no policy" "$D/err" || fail "online, no policy: message"
	explain --secret nosuch "$DCAP_Q" --collateral "$DCAP_C" --at "$DCAP_AT"
	[ $rc != 0 ] || fail "online, unknown secret: exit 0"
	grep -q "no such secret" "$D/err" || fail "online, unknown secret: message"
	ok "online (admin socket): released / no policy / unknown secret"
fi
echo "$n_pass passed, 0 failed"
