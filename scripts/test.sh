#!/usr/bin/env bash
# Sets up and runs every tdcrypt test on Debian 12:
#   1. the unit/vector/synthetic suites in a normal build,
#   2. the same suites under AddressSanitizer + UndefinedBehaviorSanitizer,
#   3. a short libFuzzer run of every parser (clang), seeded with the real quotes,
#   4. the real encrypted boot under QEMU TCG with OVMF and a vTPM (tests/e2e/run-e2e.sh):
#      happy path under the policy predicted from the image, its measurements compared event
#      by event with the prediction; a changed kernel command line, initrd or kernel
#      refused by the broker naming the event; a tampered LUKS header refused by the agent;
#      a direct kernel boot under its own predicted policy. The guest image is cached in
#      /var/cache/tdcrypt (TDCRYPT_CACHE).
#   5. the Debian packages of HEAD (tests/pkg/build-debs.sh, meson suite 'pkg'): built from a
#      clean checkout, lintian, contents against meson install, installed and run.
# Ends with one line "N passed, N failed". Exit status 0 only if nothing failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
"$ROOT/scripts/deps.sh" || { echo "0 passed, 1 failed"; exit 1; }

TESTDATA=${TDC_TESTDATA:-$ROOT/../shared/testdata/tdx}
FUZZ_SECONDS=${FUZZ_SECONDS:-15}
OUT=${TDC_TEST_OUT:-$ROOT/build-test}
mkdir -p "$OUT"
passed=0
failed=0
failures=()

count_meson() { # builddir label [log name, default testlog.json]
	local log="$1/meson-logs/${3:-testlog.json}" p f
	[ -f "$log" ] || return
	read -r p f < <(python3 "$ROOT/scripts/count-tests.py" "$log" 2>"$OUT/$2-failed.txt")
	passed=$((passed + p))
	failed=$((failed + f))
	while read -r name; do failures+=("$2: $name"); done <"$OUT/$2-failed.txt"
}

run_suite() { # label builddir meson-args...
	local label=$1 dir=$2
	shift 2
	echo "== $label"
	if ! { [ -f "$dir/build.ninja" ] || meson setup "$dir" "$ROOT" -Dtestdata="$TESTDATA" "$@" >"$OUT/$label-setup.log" 2>&1; } ||
		! ninja -C "$dir" >"$OUT/$label-build.log" 2>&1; then
		echo "   build failed: see $OUT/$label-build.log"; tail -20 "$OUT/$label-build.log"
		failed=$((failed + 1)); failures+=("$label: build")
		return
	fi
	meson test -C "$dir" --print-errorlogs --num-processes 2 >"$OUT/$label-test.log" 2>&1
	grep -E '^(Ok|Fail|Skipped|Timeout):' "$OUT/$label-test.log" | sed 's/^/   /'
	count_meson "$dir" "$label"
}

run_suite plain "$OUT/plain" -Djournal=enabled
run_suite asan "$OUT/asan" -Djournal=enabled -Db_sanitize=address,undefined -Db_lundef=false

echo "== fuzz (${FUZZ_SECONDS}s per target)"
FZ="$OUT/fuzz"
if { [ -f "$FZ/build.ninja" ] || CC=clang meson setup "$FZ" "$ROOT" -Dfuzz=true -Dtests=false >"$OUT/fuzz-setup.log" 2>&1; } &&
	ninja -C "$FZ" >"$OUT/fuzz-build.log" 2>&1; then
	seeds="$OUT/fuzz-seeds"
	rm -rf "$seeds"; mkdir -p "$seeds"
	python3 "$ROOT/fuzz/seed.py" "$TESTDATA" "$seeds"
	for bin in "$FZ"/fuzz/fuzz-*; do
		[ -f "$bin" ] && [ -x "$bin" ] || continue
		t=$(basename "$bin")
		corpus="$OUT/fuzz-corpus/$t"
		mkdir -p "$seeds/${t#fuzz-}"
		mkdir -p "$corpus"
		if "$bin" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=1024 -max_len=65536 \
			"$corpus" "$seeds/${t#fuzz-}" >"$OUT/$t.log" 2>&1; then
			passed=$((passed + 1)); echo "   $t ok ($(grep -o 'Done [0-9]* runs' "$OUT/$t.log" | tail -1))"
		else
			failed=$((failed + 1)); failures+=("fuzz: $t"); echo "   $t FAILED: see $OUT/$t.log"; tail -30 "$OUT/$t.log"
		fi
	done
else
	echo "   fuzz build failed: see $OUT/fuzz-build.log"; tail -20 "$OUT/fuzz-build.log"
	failed=$((failed + 1)); failures+=("fuzz: build")
fi

echo "== end-to-end (real encrypted boot under QEMU TCG)"
if [ "${TDC_SKIP_E2E:-0}" = 1 ]; then
	echo "   skipped (TDC_SKIP_E2E=1)"
elif ! "$ROOT/scripts/deps.sh" --e2e; then
	failed=$((failed + 1)); failures+=("e2e: package install")
elif [ ! -x "$OUT/plain/cli/tdcrypt" ]; then
	failed=$((failed + 1)); failures+=("e2e: no build")
else
	"$ROOT/tests/e2e/run-e2e.sh" --build "$OUT/plain" >"$OUT/e2e.log" 2>&1
	grep -E '^(PASS|FAIL) ' "$OUT/e2e.log" | sed 's/^/   /'
	p=$(grep -c '^PASS ' "$OUT/e2e.log"); f=$(grep -c '^FAIL ' "$OUT/e2e.log")
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		f=1; echo "   no result lines: see $OUT/e2e.log"; tail -30 "$OUT/e2e.log"
	fi
	passed=$((passed + p)); failed=$((failed + f))
	while read -r l; do failures+=("e2e: ${l#FAIL }"); done < <(grep '^FAIL ' "$OUT/e2e.log")
fi

# the Debian packages, once (built from a clean checkout of HEAD, not from this build); last,
# so that the test guest the e2e stage caches is there to install into
echo "== pkg (Debian packages of HEAD: dpkg-buildpackage, lintian, install)"
if [ -f "$OUT/plain/build.ninja" ]; then
	meson test -C "$OUT/plain" --setup pkg --suite pkg --print-errorlogs >"$OUT/pkg-test.log" 2>&1
	grep -E '^(Ok|Fail|Skipped|Timeout):|^(FAIL|SKIP): |^== ' "$OUT/pkg-test.log" | sed 's/^/   /'
	count_meson "$OUT/plain" pkg testlog-pkg.json
else
	failed=$((failed + 1)); failures+=("pkg: no build")
fi

for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
