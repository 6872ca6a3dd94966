#!/usr/bin/env bash
# The real encrypted boot, end to end, on a fresh Debian 12 machine (root):
#   1. installs the build and e2e packages by name (scripts/deps.sh; QEMU, OVMF, debootstrap, ...),
#   2. builds tdcrypt (meson + ninja, into $TDCRYPT_BUILD, default <repo>/build),
#   3. runs tests/e2e/run-e2e.sh: guest image (cached in $TDCRYPT_CACHE, default
#      /var/cache/tdcrypt), simulator PKI, broker on 127.0.0.1, `tdcrypt image encrypt`,
#      `tdcrypt launch --no-tdx` under QEMU TCG, the unlock and two refused boots.
# Arguments are passed to run-e2e.sh (--keep, --only NAME, --timeout SEC).
# Cold cache: about 10 minutes on 2 cores (guest build 2-3 min, each TCG boot 1-2 min).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

"$ROOT/scripts/deps.sh" --e2e

B=${TDCRYPT_BUILD:-$ROOT/build}
T=${TDC_TESTDATA:-$ROOT/../shared/testdata/tdx}
[ -f "$B/build.ninja" ] || meson setup "$B" "$ROOT" -Dtestdata="$T" >/dev/null
ninja -C "$B" >/dev/null

exec "$ROOT/tests/e2e/run-e2e.sh" --build "$B" "$@"
