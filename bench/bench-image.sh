#!/bin/bash
# Image encryption throughput and memory, next to a sparse copy of the same raw image.
#
# Input: a GPT raw disk (ESP + ext4 root, 4 KiB blocks) of SIZE with USED of file data
# (one large file, a few medium ones and many small ones, incompressible), built once per run
# with mke2fs -d (nothing mounted). Then, REPS times each, in alternating order, same page
# cache state (input read once before):
#   copy     cp --sparse=always IN OUT && sync
#   encrypt  tdcrypt image encrypt IN OUT --no-guest --format raw ... && sync
#            (layout only: ESP + clear /boot + LUKS2 root written from the in-use blocks; the
#            guest is not modified, so this times the builder's I/O and AES-XTS, not chroot work)
# Reports the medians, the ratio encrypt/copy (goal <= 1.5), MiB/s over the bytes in use,
# and the builder's peak RSS (/usr/bin/time -v) for the two disk sizes (it must not grow
# with the image: streaming, goal <= 256 MiB).
#
# With --baseline DIR, the tdcrypt of that build tree (e.g. main's) is timed too, in the same
# alternation, so two versions are compared in one run on a shared machine (ratios, not
# absolutes). --only-size runs one disk size instead of SIZE and SIZE/2.
#
# Usage: bench-image.sh [--size 4G] [--used 1536M] [--reps 3] [--dir /var/tmp] [--build DIR]
#                       [--baseline DIR] [--only-size]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SIZE=4G
USED=1536M
REPS=3
DIR=/var/tmp
BUILD=${TDCRYPT_BUILD:-$ROOT/build}
BASE=
ONE=0
while [ $# -gt 0 ]; do
	case $1 in
	--size) SIZE=$2; shift 2 ;;
	--used) USED=$2; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--build) BUILD=$2; shift 2 ;;
	--baseline) BASE=$2; shift 2 ;;
	--only-size) ONE=1; shift ;;
	-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "bench-image: unknown argument $1" >&2; exit 2 ;;
	esac
done
TD=$BUILD/cli/tdcrypt
[ -x "$TD" ] || { echo "bench-image: no $TD (build first)" >&2; exit 2; }
if [ -n "$BASE" ]; then
	TDB=$BASE/cli/tdcrypt
	[ -x "$TDB" ] || { echo "bench-image: no $TDB" >&2; exit 2; }
fi
mib() { case $1 in *G) echo $(( ${1%G} * 1024 )) ;; *M) echo "${1%M}" ;; *) echo "$1" ;; esac; }
SIZE_MIB=$(mib "$SIZE")
USED_MIB=$(mib "$USED")

W=$(mktemp -d "$DIR/tdcrypt-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
log() { echo "bench-image: $*" >&2; }

# Incompressible bytes, fast (AES-CTR keystream).
rnd() { { openssl enc -aes-128-ctr -nosalt -pass pass:"$2" -pbkdf2 -iter 1 </dev/zero 2>/dev/null || true; } | head -c "$1"; }

# mk_disk OUT SIZE_MIB USED_MIB: GPT disk, p1 ESP 64 MiB, p2 ext4 root with USED_MIB of data.
mk_disk() {
	local out=$1 size=$2 used=$3 t=$W/tree
	rm -rf "$t"
	mkdir -p "$t/boot/grub" "$t/etc" "$t/data/small" "$t/data/medium"
	printf 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="bench"\n' >"$t/etc/os-release"
	printf 'menuentry x {\n\tlinux /boot/vmlinuz root=UUID=x ro\n}\n' >"$t/boot/grub/grub.cfg"
	# 60 % in one file, 25 % in 8 medium files, 15 % in 128 KiB files
	local big=$(( used * 60 / 100 )) med=$(( used * 25 / 100 / 8 )) small=$(( used * 15 / 100 * 8 ))
	rnd "${big}M" big >"$t/data/big.bin"
	local i
	for i in $(seq 8); do rnd "${med}M" "m$i" >"$t/data/medium/$i.bin"; done
	rnd "$(( small * 128 ))K" small | split -b 128K -a 4 - "$t/data/small/f"
	local root_mib=$(( size - 1 - 64 - 1 ))
	mke2fs -q -t ext4 -b 4096 -d "$t" "$W/root.img" "${root_mib}M" >/dev/null
	truncate -s 64M "$W/esp.img"
	mkfs.vfat -F 16 -n ESP "$W/esp.img" >/dev/null
	truncate -s "${size}M" "$out"
	sgdisk --clear --new=1:1MiB:+64MiB --typecode=1:EF00 --change-name=1:esp \
		--new=2:0:+${root_mib}MiB --typecode=2:8304 --change-name=2:root "$out" >/dev/null
	dd if="$W/esp.img" of="$out" bs=1M seek=1 conv=notrunc,sparse status=none
	dd if="$W/root.img" of="$out" bs=1M seek=65 conv=notrunc,sparse status=none
	rm -rf "$t" "$W/root.img" "$W/esp.img"
}

median() { sort -n | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }

run_copy() { # IN; prints "seconds cpu" (cpu: cp's user + system time; the kernel's writeback
	# threads are in neither side's count)
	rm -f "$W/copy.raw"
	local a; a=$(now)
	/usr/bin/time -v -o "$W/ctime.txt" cp --sparse=always "$1" "$W/copy.raw"
	sync
	echo "$(secs "$a" "$(now)") $(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$W/ctime.txt")"
}
run_encrypt() { # IN [TDCRYPT]; prints "seconds peak_rss_kib stages" (stages: the builder's own split)
	rm -f "$W/enc.raw" "$W/key.bin"
	local a; a=$(now)
	/usr/bin/time -v -o "$W/time.txt" "${2:-$TD}" image encrypt "$1" "$W/enc.raw" --no-guest \
		--format raw --secret-id bench --key-out "$W/key.bin" --json >"$W/enc.json" 2>"$W/enc.log" ||
		{ cat "$W/enc.log" >&2; exit 1; }
	sync
	local t; t=$(secs "$a" "$(now)")
	local cpu; cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$W/time.txt")
	echo "$t $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/time.txt") cpu=$cpu,$(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["seconds"]
print(",".join("%s=%.2f" % (k, v) for k, v in t.items() if k != "total"))' "$W/enc.json")"
}

bench_size() { # SIZE_MIB USED_MIB
	local in=$W/in-$1.raw
	log "building a ${1} MiB disk with ${2} MiB of files"
	mk_disk "$in" "$1" "$2"
	local alloc; alloc=$(( $(stat -c %b "$in") * $(stat -c %B "$in") / 1048576 ))
	cat "$in" >/dev/null # page cache: same state for every run
	local c=() e=() r=() bl=() i t rss st bst="" bt cc
	for i in $(seq "$REPS"); do
		if [ $(( i % 2 )) = 1 ]; then
			read -r t cc < <(run_copy "$in"); c+=("$t"); read -r t rss st < <(run_encrypt "$in"); e+=("$t"); r+=("$rss")
			[ -z "$BASE" ] || { read -r bt _ bst < <(run_encrypt "$in" "$TDB"); bl+=("$bt"); }
		else
			[ -z "$BASE" ] || { read -r bt _ bst < <(run_encrypt "$in" "$TDB"); bl+=("$bt"); }
			read -r t rss st < <(run_encrypt "$in"); e+=("$t"); r+=("$rss"); read -r t cc < <(run_copy "$in"); c+=("$t")
		fi
		log "rep $i: copy ${c[-1]} s (cpu=$cc), encrypt ${e[-1]} s ($st), RSS ${r[-1]} KiB${BASE:+, baseline ${bl[-1]} s ($bst)}, load $(cut -d' ' -f1 /proc/loadavg)"
	done
	local cm em rm_
	cm=$(printf '%s\n' "${c[@]}" | median)
	em=$(printf '%s\n' "${e[@]}" | median)
	if [ -n "$BASE" ]; then
		awk -v b="$BASE" -v cm="$cm" -v bm="$(printf '%s\n' "${bl[@]}" | median)" 'BEGIN{
			printf "baseline %s: encrypt %.2f s, ratio %.2f (median)\n", b, bm, bm / cm }'
	fi
	rm_=$(printf '%s\n' "${r[@]}" | sort -n | tail -n1)
	local out_alloc; out_alloc=$(( $(stat -c %b "$W/enc.raw") * $(stat -c %B "$W/enc.raw") / 1048576 ))
	awk -v s="$1" -v al="$alloc" -v oa="$out_alloc" -v cm="$cm" -v em="$em" -v rss="$rm_" -v n="$REPS" 'BEGIN{
		printf "disk %5d MiB, %5d MiB allocated (output %d MiB): copy %.2f s (%.0f MiB/s), encrypt %.2f s (%.0f MiB/s), ratio %.2f, peak RSS %.1f MiB (median of %d)\n",
			s, al, oa, cm, al / cm, em, al / em, em / cm, rss / 1024, n }'
	rm -f "$in" "$W/copy.raw" "$W/enc.raw"
}

echo "bench-image: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), dir $DIR"
bench_size "$SIZE_MIB" "$USED_MIB"
# the same data on a disk half the size: memory must not depend on the size
[ "$ONE" = 1 ] || bench_size $(( SIZE_MIB / 2 )) "$USED_MIB"
echo "bench-image: load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
