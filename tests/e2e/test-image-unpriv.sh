#!/bin/bash
# `tdcrypt image encrypt` as an unprivileged user (runuser -u nobody) on a synthetic GPT disk:
#   layout   --no-guest build succeeds; no loop device, no mount and no chroot/mount/losetup
#            program run (mountinfo, losetup -a, /sys/block/loop* compared before and after;
#            chroot, mount, umount and losetup shims first in PATH log any call); --json has
#            per-stage times
#   sigint   SIGINT while the encrypt stage runs: exit 130, no OUT, no OUT.tmp-*, no key file
#   guest    the guest step on a disk without an initramfs generator: the preparation VM is
#            chosen (announced), the build fails with a clear error, no OUT, nothing mounted
#            or looped, no chroot/mount run, no key file
#   xfs      an XFS root (mkfs.xfs on a file, no mount) with its own ext4 /boot: --no-guest
#            encrypts the whole partition, announced on stderr and in --json ("encrypted":
#            "whole-partition", "root_fs": "xfs"); the guest step on it is refused clearly
#            (skipped without xfsprogs)
# Needs root to switch to nobody (exit 77 = skipped otherwise), e2fsprogs, dosfstools, mtools,
# gdisk, qemu-utils.
# Usage: test-image-unpriv.sh TDCRYPT_BINARY
set -uo pipefail

TD=${1:?usage: test-image-unpriv.sh TDCRYPT_BINARY}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to run the builder as nobody"; exit 77; }
PATH=$PATH:/usr/sbin:/sbin
for t in runuser mke2fs mkfs.vfat mmd mcopy sgdisk qemu-img losetup; do
	command -v $t >/dev/null || { echo "SKIP: missing $t"; exit 77; }
done
TD=$(readlink -f "$TD")
W=$(mktemp -d /tmp/tdc-unpriv-XXXXXX)
trap 'rm -rf "$W"' EXIT
chmod 0755 "$W"
FAILS=0
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
pass() { echo "PASS $*"; }

# The binary must be reachable by nobody (a build tree under /root is not).
if ! runuser -u nobody -- test -x "$TD"; then
	cp "$TD" "$W/tdcrypt" && chmod 0755 "$W/tdcrypt" && TD=$W/tdcrypt
fi

# shims: any chroot/mount/umount/losetup run by the builder is logged and fails
mkdir "$W/shim"
for t in chroot mount umount losetup; do
	printf '#!/bin/sh\necho "%s $*" >>%s/shim.log\nexit 1\n' "$t" "$W" >"$W/shim/$t"
	chmod 0755 "$W/shim/$t"
done
: >"$W/shim.log"
chmod 0666 "$W/shim.log"

# Only what concerns this test's directory counts: the machine is shared, other tests mount too.
# Whatever the builder mounts or loops lives in OUT.tmp-* next to OUT, i.e. under $W.
loops() { { losetup -a 2>/dev/null; for l in /sys/block/loop*; do [ -r "$l/loop/backing_file" ] && echo "$l $(cat "$l/loop/backing_file")"; done; } | grep -F "$W" | sort; }
snapshot() { { awk '{print $5, $9, $10}' /proc/self/mountinfo | grep -F "$W" | sort; echo --; loops; } >"$W/state.$1"; }
unchanged() { # NAME: mounts and loop devices as before, no shim called
	snapshot after
	if ! cmp -s "$W/state.before" "$W/state.after"; then
		fail "$1: mounts or loop devices changed: $(diff "$W/state.before" "$W/state.after" | tr '\n' '|')"
		return 1
	fi
	if [ -s "$W/shim.log" ]; then
		fail "$1: the builder ran $(tr '\n' '|' <"$W/shim.log")"
		return 1
	fi
	return 0
}
no_leftovers() { # NAME OUT KEY
	local n=$1 out=$2 key=$3 ok=0
	[ -e "$out" ] && { fail "$n: $out exists"; ok=1; }
	ls -d "$out".tmp-* >/dev/null 2>&1 && { fail "$n: work dir left: $(ls -d "$out".tmp-*)"; ok=1; }
	[ -e "$key" ] && { fail "$n: key file left"; ok=1; }
	return $ok
}
as_nobody() { runuser -u nobody -- env PATH="$W/shim:$PATH" "$@"; }

# ---- synthetic disk (built as nobody too): ESP + 1 GiB ext4 root with 384 MiB of data --------------
D=$W/d
mkdir -p "$D/tree/etc" "$D/tree/boot/grub" "$D/tree/data"
printf 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n' >"$D/tree/etc/os-release"
echo 'linux /vmlinuz root=UUID=1 ro' >"$D/tree/boot/grub/grub.cfg"
head -c 200000 /dev/urandom >"$D/tree/boot/vmlinuz-6.1.0-test"
# incompressible data, enough that encrypting takes a while (the SIGINT lands mid-stage)
openssl enc -aes-128-ctr -pass pass:tdcrypt -nosalt -pbkdf2 -in /dev/zero 2>/dev/null | head -c 384M >"$D/tree/data/blob"
chown -R nobody: "$W"
as_nobody sh -ec "cd '$D'; mke2fs -q -t ext4 -b 4096 -d tree root.img 1024M; truncate -s 33M esp.img;
	mkfs.vfat -F 32 esp.img >/dev/null; head -c 50000 /dev/urandom >efi.bin; export MTOOLS_SKIP_CHECK=1;
	mmd -i esp.img ::/EFI ::/EFI/BOOT; mcopy -i esp.img efi.bin ::/EFI/BOOT/BOOTX64.EFI;
	truncate -s 1060M disk.raw; sgdisk --new=1:2048:+33M -t 1:EF00 --new=2:0:+1024M -t 2:8304 disk.raw >/dev/null;
	dd if=esp.img of=disk.raw bs=1M seek=1 conv=notrunc,sparse status=none;
	dd if=root.img of=disk.raw bs=1M seek=34 conv=notrunc,sparse status=none; rm -f root.img esp.img" ||
	{ echo "FAIL setup: cannot build the synthetic disk"; exit 1; }
rm -rf "$D/tree"
snapshot before

# ---- layout build as nobody ------------------------------------------------------------------------
if as_nobody "$TD" image encrypt "$D/disk.raw" "$D/out.raw" --no-guest --format raw \
	--key-out "$D/key" --json >"$D/out.json" 2>"$D/out.err"; then
	if [ -s "$D/out.raw" ] && [ "$(stat -c %U "$D/out.raw")" = nobody ] &&
		python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
st = [s["stage"] for s in d["stages"]]
assert "encrypt" in st and "convert" in st, st
assert all(s["seconds"] >= 0 for s in d["stages"])
assert d["seconds"]["total"] > 0' "$D/out.json"; then
		unchanged layout && pass "layout: built as nobody, $(du -m "$D/out.raw" | cut -f1) MiB, stages: $(python3 -c 'import json,sys; print(" ".join("%s=%.2fs" % (s["stage"], s["seconds"]) for s in json.load(open(sys.argv[1]))["stages"]))' "$D/out.json")"
	else
		fail "layout: no OUT owned by nobody or no per-stage times in --json: $(head -c 300 "$D/out.json")"
	fi
	# with --json (and no terminal) there is no progress bar: no carriage returns
	grep -q $'\r' "$D/out.err" && fail "layout: a progress bar on a non-terminal stderr"
else
	fail "layout: build as nobody failed: $(tail -3 "$D/out.err" | tr '\n' '|')"
fi
rm -f "$D/out.raw" "$D/key"

# ---- SIGINT while encrypting ------------------------------------------------------------------------
mkfifo "$D/err.fifo"
chown nobody: "$D/err.fifo"
as_nobody "$TD" image encrypt "$D/disk.raw" "$D/int.raw" --no-guest --format raw \
	--key-out "$D/int.key" 2>"$D/err.fifo" >/dev/null &
PID=$!
seen=0
while IFS= read -r line; do
	echo "$line" >>"$D/int.err"
	case $line in
	*"] encrypt"*)
		# the builder runs as nobody under runuser: signal the tdcrypt process itself
		# runuser forks (PAM session): signal the tdcrypt process, its deepest descendant
		CP=$PID
		while C=$(pgrep -P "$CP" | head -n1) && [ -n "$C" ]; do CP=$C; done
		kill -INT "$CP"
		seen=1 ;;
	esac
done <"$D/err.fifo"
wait "$PID"
RC=$?
if [ "$seen" = 0 ]; then
	fail "sigint: the encrypt stage never started: $(tr '\n' '|' <"$D/int.err")"
elif [ "$RC" != 130 ]; then
	fail "sigint: exit $RC, not 130: $(tail -2 "$D/int.err" | tr '\n' '|')"
elif no_leftovers sigint "$D/int.raw" "$D/int.key" && unchanged sigint; then
	pass "sigint: exit 130, $(grep -o 'interrupted.*' "$D/int.err" | head -1)"
fi

# ---- a failing guest step ------------------------------------------------------------------------------
echo '#!/bin/sh' >"$D/agent"
chmod 0755 "$D/agent"
mkdir -p "$D/guest"
chown -R nobody: "$D"
as_nobody "$TD" image encrypt "$D/disk.raw" "$D/g.raw" --format raw --key-out "$D/g.key" \
	--secret-id s --broker 10.0.2.100:50051 --broker-pin "$(printf '%064d' 0)" \
	--agent "$D/agent" --guest-dir "$D/guest" >/dev/null 2>"$D/g.err"
RC=$?
if [ "$RC" = 0 ]; then
	fail "guest: the build succeeded without root"
elif ! grep -q 'guest step in a preparation VM (not root)' "$D/g.err"; then
	fail "guest: the preparation VM was not announced: $(head -2 "$D/g.err" | tr '\n' '|')"
elif ! grep -q 'lacks its initramfs generator' "$D/g.err"; then
	fail "guest: no clear error: $(tail -2 "$D/g.err" | tr '\n' '|')"
elif no_leftovers guest "$D/g.raw" "$D/g.key" && unchanged guest; then
	pass "guest: exit $RC, preparation VM announced, $(grep -o 'the guest lacks.*' "$D/g.err" | head -1 | cut -c1-120)"
fi

# ---- an XFS root: whole partition, announced; the guest step refused -------------------------------
if command -v mkfs.xfs >/dev/null; then
	X=$W/x
	mkdir -p "$X/btree/grub"
	echo 'linux /vmlinuz ro' >"$X/btree/grub/grub.cfg"
	chown -R nobody: "$X"
	# mkfs.xfs refuses < 300 MB unless it believes it runs under xfstests
	as_nobody sh -ec "cd '$X'; truncate -s 64M root.img; TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 mkfs.xfs -q root.img
		mke2fs -q -t ext4 -d btree boot.img 32M; truncate -s 33M esp.img; mkfs.vfat -F 32 esp.img >/dev/null
		truncate -s 131M disk.raw
		sgdisk --new=1:2048:+33M -t 1:EF00 --new=2:0:+32M -t 2:8300 --new=3:0:+64M -t 3:8304 disk.raw >/dev/null
		dd if=esp.img of=disk.raw bs=1M seek=1 conv=notrunc,sparse status=none
		dd if=boot.img of=disk.raw bs=1M seek=34 conv=notrunc,sparse status=none
		dd if=root.img of=disk.raw bs=1M seek=66 conv=notrunc,sparse status=none" ||
		{ echo "FAIL setup: cannot build the XFS disk"; exit 1; }
	if as_nobody "$TD" image encrypt "$X/disk.raw" "$X/out.raw" --no-guest --format raw \
		--key-out "$X/key" --json >"$X/out.json" 2>"$X/out.err"; then
		if ! grep -q 'whole partition encrypted (64 MiB, allocated or not): xfs root' "$X/out.err"; then
			fail "xfs: no announcement on stderr: $(tr '\n' '|' <"$X/out.err")"
		elif ! python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["root_fs"] == "xfs" and d["encrypted"] == "whole-partition", d
assert "xfs root" in d["encrypted_reason"] and d["root_used_blocks"] == d["root_fs_blocks"] == 16384' "$X/out.json"; then
			fail "xfs: --json does not say whole-partition: $(head -c 400 "$X/out.json")"
		elif unchanged xfs; then
			pass "xfs: whole partition, $(grep -o 'whole partition.*' "$X/out.err" | cut -c1-100)"
		fi
	else
		fail "xfs: layout build failed: $(tail -3 "$X/out.err" | tr '\n' '|')"
	fi
	as_nobody "$TD" image encrypt "$X/disk.raw" "$X/g.raw" --format raw --key-out "$X/g.key" \
		--secret-id s --broker 10.0.2.100:50051 --broker-pin "$(printf '%064d' 0)" \
		--agent "$D/agent" --guest-dir "$D/guest" >/dev/null 2>"$X/g.err"
	RC=$?
	if [ "$RC" = 0 ]; then
		fail "xfs: the guest step on an XFS root succeeded"
	elif ! grep -q 'guest step needs an ext4 root' "$X/g.err"; then
		fail "xfs: no clear error for the guest step: $(tail -2 "$X/g.err" | tr '\n' '|')"
	elif no_leftovers xfs-guest "$X/g.raw" "$X/g.key" && unchanged xfs-guest; then
		pass "xfs: guest step refused, exit $RC"
	fi
else
	echo "SKIP xfs: no mkfs.xfs"
fi

echo "$FAILS failed"
[ "$FAILS" = 0 ]
