#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Exit codes of `tdcrypt quote verify` on real vectors: 0 UpToDate, 1 verified but
# degraded (OutOfDate), 2 rejected (wrong PCK CRL), 3 bad input (garbage quote).
# usage: cli-verify.sh TDCRYPT TESTDATA_DIR
set -u
exe=$1
td=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

expect() {
	want=$1
	name=$2
	shift 2
	"$exe" quote verify "$@" >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ "$got" -ne "$want" ]; then
		echo "FAIL $name: exit $got, want $want"
		cat "$tmp/out" "$tmp/err"
		fail=1
	else
		echo "ok   $name: exit $got"
	fi
}

# dcap-qvl bundle: UpToDate; the same as JSON; hex text input.
expect 0 dcap-qvl-uptodate "$td/dcap-qvl/tdx_quote" \
	--collateral "$td/dcap-qvl/tdx_quote_collateral.json" --at 2025-07-04T10:16:31Z
expect 0 dcap-qvl-json "$td/dcap-qvl/tdx_quote" --json \
	--collateral "$td/dcap-qvl/tdx_quote_collateral.json" --at @1751624191
grep -q '"status":"UpToDate"' "$tmp/out" || grep -q '"status": *"UpToDate"' "$tmp/out" || {
	echo "FAIL dcap-qvl-json: no UpToDate status in JSON"; fail=1; }
od -An -v -tx1 "$td/dcap-qvl/tdx_quote" >"$tmp/quote.hex"
expect 0 dcap-qvl-hex-text "$tmp/quote.hex" \
	--collateral "$td/dcap-qvl/tdx_quote_collateral.json" --at 2025-07-04T10:16:31Z
# one second after the PCK CRL expires: rejected
expect 2 dcap-qvl-expired "$td/dcap-qvl/tdx_quote" \
	--collateral "$td/dcap-qvl/tdx_quote_collateral.json" --at 2025-07-19T10:00:36Z
# eval 17 < 18: stale, rejected
expect 2 dcap-qvl-stale "$td/dcap-qvl/tdx_quote" --min-tcb-eval 18 \
	--collateral "$td/dcap-qvl/tdx_quote_collateral.json" --at 2025-07-04T10:16:31Z

# an explicit anchor (DER or PEM), here Intel's own root: verifies, with a warning
expect 0 test-root-der "$td/dcap-qvl/tdx_quote" \
	--test-root-ca-for-testing-only "$td/dcap-qvl/TrustedRootCA.der" \
	--collateral "$td/dcap-qvl/tdx_quote_collateral.json" --at 2025-07-04T10:16:31Z
grep -q "WARNING" "$tmp/err" || { echo "FAIL test-root-der: no warning"; fail=1; }
expect 0 test-root-pem "$td/dcap-qvl/tdx_quote" \
	--test-root-ca-for-testing-only "$td/go-tdx-guest/trusted_root.pem" \
	--collateral "$td/dcap-qvl/tdx_quote_collateral.json" --at 2025-07-04T10:16:31Z
# any other anchor: rejected
expect 2 test-root-other "$td/dcap-qvl/tdx_quote" \
	--test-root-ca-for-testing-only "$td/zkdcap/tcb_signing_cert.pem" \
	--collateral "$td/dcap-qvl/tdx_quote_collateral.json" --at 2025-07-04T10:16:31Z

# zkdcap: a directory bundle built from the PCS responses.
b="$tmp/zkdcap"
mkdir "$b"
cp "$td/zkdcap/tcbinfov3_00806f050000.json" "$b/tcb_info.json"
cp "$td/zkdcap/qeidentityv2_tdx.json" "$b/qe_identity.json"
# TCB Signing cert + root (the PEM copy of the same root certificate)
cat "$td/zkdcap/tcb_signing_cert.pem" "$td/go-tdx-guest/trusted_root.pem" \
	>"$b/tcb_info_issuer_chain.pem"
cp "$td/zkdcap/pck_platform_crl.der" "$b/pck_crl.der"
cp "$td/zkdcap/intel_root_ca_crl.der" "$b/root_ca_crl.der"
expect 1 zkdcap-v4-outofdate "$td/zkdcap/quote_tdx_00806f050000.dat" \
	--collateral "$b" --at 2025-01-21T13:44:20Z
grep -q "OutOfDate" "$tmp/out" || { echo "FAIL zkdcap-v4-outofdate: no OutOfDate"; fail=1; }
cp "$td/zkdcap/pck_processor_crl.der" "$b/pck_crl.der"
expect 2 zkdcap-v4-wrong-pck-crl "$td/zkdcap/quote_tdx_00806f050000.dat" \
	--collateral "$b" --at 2025-02-05T11:52:15Z
grep -q "\[crl\]" "$tmp/err" || { echo "FAIL zkdcap-v4-wrong-pck-crl: not a CRL error"; fail=1; }

# garbage quote, missing collateral, bad time, bad usage: bad input
head -c 2000 /dev/zero | tr '\0' 'Z' >"$tmp/garbage"
expect 3 garbage "$tmp/garbage" --collateral "$td/dcap-qvl/tdx_quote_collateral.json" \
	--at 2025-07-04T10:16:31Z
expect 3 no-collateral "$td/dcap-qvl/tdx_quote" --collateral "$tmp/does-not-exist" \
	--at 2025-07-04T10:16:31Z
expect 3 bad-time "$td/dcap-qvl/tdx_quote" \
	--collateral "$td/dcap-qvl/tdx_quote_collateral.json" --at yesterday
expect 3 usage "$td/dcap-qvl/tdx_quote"

exit $fail
