#!/usr/bin/env bash
# The main job, end to end, on this kind of machine. Until the key broker and the
# image builder land, it builds tdcrypt and verifies real TDX quotes with real Intel
# collateral at their collateral's time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
"$ROOT/scripts/deps.sh"
T=${TDC_TESTDATA:-$ROOT/../shared/testdata/tdx}
B="$ROOT/build"
[ -f "$B/build.ninja" ] || meson setup "$B" "$ROOT" -Dtestdata="$T" >/dev/null
ninja -C "$B" >/dev/null
TD="$B/cli/tdcrypt"

echo "== a real TDX quote (dcap-qvl sample)"
"$TD" quote show "$T/dcap-qvl/tdx_quote" | head -20
echo
echo "== verified against Intel's collateral at 2025-07-04T10:16:31Z"
"$TD" quote verify "$T/dcap-qvl/tdx_quote" --collateral "$T/dcap-qvl/tdx_quote_collateral.json" \
	--at 2025-07-04T10:16:31Z || true
echo
echo "== the same collateral one month later (expired): refused"
"$TD" quote verify "$T/dcap-qvl/tdx_quote" --collateral "$T/dcap-qvl/tdx_quote_collateral.json" \
	--at 2025-08-04T10:16:31Z || echo "(exit code $?)"
