#!/usr/bin/env bash
# The Debian packages, from a clean checkout (git archive of HEAD, so commit first):
#  1. dpkg-buildpackage -us -uc -b builds tdcrypt, tdcrypt-kbs and tdcrypt-agent, and the
#     changelog's version is the project's;
#  2. lintian finds no error;
#  3. the packages hold exactly what `meson install` installs (debian/tmp: the package
#     build's own meson install), with the same modes;
#  4. `apt install ./tdcrypt*.deb` on this machine's root, in an overlay (the machine itself is
#     not changed) with the maintainer scripts in a chroot: the programs answer --version,
#     the system user exists, /etc/tdcrypt and /var/lib/tdcrypt are 0700, the installed unit
#     passes systemd-analyze verify (its man pages found), the man pages and completion are
#     there, the unit is not enabled; the installed broker starts on the package's layout
#     with its network process as the system user, takes a secret over the default admin
#     socket, drains on SIGUSR2; a purge leaves the store;
#  5. on the cached Debian 12 test guest (a clean root with initramfs-tools; skipped when
#     scripts/test.sh's e2e stage has not built it yet): tdcrypt and tdcrypt-agent install
#     and run, the initramfs trigger runs the packaged hook, which adds nothing without
#     /etc/tdcrypt/agent.json and the agent once it exists.
# Needs root (overlay, loop mount, chroot). usage: build-debs.sh SRCDIR VERSION
set -uo pipefail
SRC=$(readlink -f "$1")
VERSION=$2
CACHE=${TDCRYPT_CACHE:-/var/cache/tdcrypt}
export LC_ALL=C.UTF-8

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (overlay, loop mounts, chroot)"
for t in git dpkg-buildpackage lintian chroot; do
	command -v "$t" >/dev/null 2>&1 || skip "no $t (scripts/deps.sh installs it)"
done
git -C "$SRC" rev-parse --verify -q HEAD >/dev/null || skip "$SRC is not a git checkout"

W=$(mktemp -d /tmp/tdc-pkg-XXXXXX)
MOUNTS=()
LOOP=
KBS_PID=
cleanup() {
	[ -n "$KBS_PID" ] && kill -KILL "$KBS_PID" 2>/dev/null
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"
	done
	[ -n "$LOOP" ] && losetup -d "$LOOP"
	[ -n "${KEEP:-}" ] && { echo "kept $W"; return; }
	rm -rf "$W"
}
trap cleanup EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
die() { echo "FAIL: $*"; exit 1; }
mnt() { # mount args... DIR (the last one)
	mount "$@" || return 1
	MOUNTS+=("${!#}")
}
t0=$SECONDS
stage() { echo "== $* (at $((SECONDS - t0)) s)"; }

# ---- 1. build from a clean checkout
stage "dpkg-buildpackage"
[ -z "$(git -C "$SRC" status --porcelain --untracked-files=no)" ] ||
	echo "note: the working tree has uncommitted changes; the packages are built from HEAD"
B=$W/tdcrypt-$VERSION
git -C "$SRC" archive --prefix="tdcrypt-$VERSION/" HEAD | tar -x -C "$W" || die "git archive"
[ -d "$B/debian" ] || die "HEAD has no debian/"
cv=$(dpkg-parsechangelog -l "$B/debian/changelog" -S Version)
[ "$cv" = "$VERSION" ] || bad "debian/changelog is at $cv, the project at $VERSION"
(cd "$B" && nice dpkg-buildpackage -us -uc -b) >"$W/build.log" 2>&1 ||
	{ tail -40 "$W/build.log"; die "dpkg-buildpackage failed (log above)"; }
DEBS=()
for p in tdcrypt tdcrypt-kbs tdcrypt-agent; do
	f=$W/${p}_${cv}_amd64.deb
	[ -f "$f" ] || die "no $(basename "$f")"
	DEBS+=("$f")
done
CHANGES=$W/tdcrypt_${cv}_amd64.changes

# ---- 2. lintian
stage "lintian"
lintian --fail-on error --tag-display-limit 0 "$CHANGES" >"$W/lintian.log" 2>&1
rc=$?
grep -v 'running with root privileges' "$W/lintian.log" | sed 's/^/   /'
[ "$rc" -eq 0 ] || bad "lintian reports errors (exit $rc)"

# ---- 3. the packages hold what meson installs
stage "contents against meson install"
# "mode path" of every entry; man pages and docs compressed by dh_compress compare by their
# name without .gz; the packaging's own files (copyright, changelog, overrides) are left out
norm() {
	sed -E 's#^([^ ]+) \./#\1 #; s#/$##; s#^(.* usr/share/(man|doc)/.*)\.gz$#\1#' |
		grep -vE ' usr/share/doc/tdcrypt[a-z-]*/(copyright|changelog)$' |
		grep -vE ' usr/share/lintian(/|$)' |
		grep -vE ' usr/share/doc/tdcrypt-(kbs|agent)$' | grep -vE ' \.?$' | sort -u
}
for d in "${DEBS[@]}"; do
	dpkg-deb -c "$d" | awk '{ m = $1; $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); sub(/ -> .*/, ""); print m, $0 }'
done | norm >"$W/debs.list"
(cd "$B/debian/tmp" && find . -printf '%M %p\n' | sed 's#^\([^ ]*\) \./#\1 #') | norm >"$W/meson.list"
if ! diff -u "$W/meson.list" "$W/debs.list" >"$W/contents.diff"; then
	sed 's/^/   /' "$W/contents.diff" | head -40
	bad "the packages and meson install differ (- meson only, + packages only)"
fi
grep -q '^drwx------ etc/tdcrypt$' "$W/debs.list" || bad "etc/tdcrypt is not 0700 in the package"
grep -q '^drwx------ var/lib/tdcrypt$' "$W/debs.list" || bad "var/lib/tdcrypt is not 0700 in the package"

# ---- 4. apt install on this machine's root, in an overlay
stage "apt install ./tdcrypt*.deb (overlay of this machine's root)"
R=$W/root
mkdir -p "$W/ovl/upper" "$W/ovl/work" "$R"
mnt -t overlay overlay -o "lowerdir=/,upperdir=$W/ovl/upper,workdir=$W/ovl/work" "$R" ||
	die "cannot mount an overlay of /"
mnt -t proc proc "$R/proc" && mnt --bind /dev "$R/dev" && mnt -t tmpfs tmpfs "$R/run" &&
	mnt -t tmpfs tmpfs "$R/tmp" || die "chroot mounts"
mkdir -p "$R/tmp/debs"
cp "${DEBS[@]}" "$R/tmp/debs/"
in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root "$@"; }
# the README's command (apt-get: apt's own interface is not for scripts)
in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall \
	-o Dpkg::Use-Pty=0 /tmp/debs/tdcrypt*.deb' >"$W/apt.log" 2>&1 ||
	{ tail -30 "$W/apt.log"; die "apt-get install ./tdcrypt*.deb failed"; }
for p in tdcrypt tdcrypt-kbs tdcrypt-agent; do
	out=$(in_root "$p" --version 2>&1)
	[ "$out" = "$p $VERSION" ] || bad "installed $p --version: '$out'"
done
[ "$(in_root dpkg-query -S /usr/bin/tdcrypt 2>/dev/null)" = "tdcrypt: /usr/bin/tdcrypt" ] ||
	bad "/usr/bin/tdcrypt is not the package's"
pw=$(in_root getent passwd _tdcrypt-kbs) || bad "no system user _tdcrypt-kbs after install"
case $pw in *:/nonexistent:*nologin) ;; *) bad "_tdcrypt-kbs: $pw" ;; esac
for d in /etc/tdcrypt /var/lib/tdcrypt; do
	[ "$(stat -c '%a %U' "$R$d")" = "700 root" ] || bad "$d is $(stat -c '%a %U' "$R$d")"
done
out=$(in_root systemd-analyze verify --man=yes /lib/systemd/system/tdcrypt-kbs.service 2>&1) ||
	bad "systemd-analyze verify exits $?"
[ -z "$out" ] || bad "systemd-analyze verify of the installed unit: $out"
grep -q '^ExecStart=/usr/sbin/tdcrypt-kbs ' "$R/lib/systemd/system/tdcrypt-kbs.service" ||
	bad "the unit does not run /usr/sbin/tdcrypt-kbs"
[ "$(in_root systemctl is-enabled tdcrypt-kbs.service 2>/dev/null)" = disabled ] ||
	bad "the unit is enabled before the broker is configured"
for page in tdcrypt.1 tdcrypt-kbs.8 tdcrypt-agent.8 tdcrypt-policy.5 tdcrypt-kbs.json.5; do
	in_root man -w "${page%.*}" "${page##*.}" >/dev/null 2>&1 ||
		in_root man -w "${page##*.}" "${page%.*}" >/dev/null 2>&1 || bad "man ${page%.*} not found"
done
in_root bash -c 'source /usr/share/bash-completion/completions/tdcrypt && complete -p tdcrypt' \
	>/dev/null 2>&1 || bad "the bash completion does not load"

# the installed broker on the package's layout, as the unit runs it (RuntimeDirectory made
# by hand: no systemd in the chroot)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker.test \
	-keyout "$R/etc/tdcrypt/broker.key" -out "$R/etc/tdcrypt/broker.crt" -days 1 2>/dev/null
in_root tdcrypt sim init /etc/tdcrypt/sim >/dev/null 2>&1 || bad "installed tdcrypt sim init"
in_root tdcrypt-kbs init --db /var/lib/tdcrypt/kbs.db --master-key /etc/tdcrypt/master.key \
	>"$W/init.log" 2>&1 || bad "installed tdcrypt-kbs init: $(cat "$W/init.log")"
sed -e 's#"pccs_url": "[^"]*"#"collateral_dir": "/etc/tdcrypt/sim/collateral", "allow_simulator_root": "/etc/tdcrypt/sim/sim-root.pem"#' \
	-e 's#"listen": "[^"]*"#"listen": "127.0.0.1:0"#' -e '/metrics_listen/d' \
	"$R/usr/share/doc/tdcrypt/examples/kbs.json" >"$R/etc/tdcrypt/kbs.json"
chmod 0600 "$R/etc/tdcrypt/kbs.json"
mkdir -p "$R/run/tdcrypt" && chmod 0700 "$R/run/tdcrypt"
chroot "$R" /usr/sbin/tdcrypt-kbs --config /etc/tdcrypt/kbs.json 2>"$W/kbs.log" &
KBS_PID=$!
for _ in $(seq 100); do
	[ -S "$R/run/tdcrypt/kbs.sock" ] && break
	kill -0 "$KBS_PID" 2>/dev/null || break
	sleep 0.1
done
if [ -S "$R/run/tdcrypt/kbs.sock" ]; then
	uid=$(in_root id -u _tdcrypt-kbs)
	line=$(grep '"event":"sandboxed"' "$W/kbs.log")
	case $line in *"\"uid\":$uid"*) ;; *) bad "the network process is not _tdcrypt-kbs: $line" ;; esac
	case $line in *'"store":"EACCES"'*'"master_key":"EACCES"'* | *'"master_key":"EACCES"'*'"store":"EACCES"'*) ;;
	*) bad "the network process could open the store or the master key: $line" ;; esac
	printf 'k' >"$R/tmp/key"
	in_root tdcrypt secret add s1 --key-file /tmp/key >/dev/null 2>&1 || bad "secret add over the default socket"
	in_root tdcrypt secret list 2>/dev/null | grep -q s1 || bad "secret list does not show s1"
	kill -USR2 "$KBS_PID"
	wait "$KBS_PID" || bad "the broker's drain exits $?"
	KBS_PID=
else
	wait "$KBS_PID" 2>/dev/null
	KBS_PID=
	bad "the installed broker did not start: $(tail -5 "$W/kbs.log")"
fi
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -o Dpkg::Use-Pty=0 \
	tdcrypt-agent tdcrypt-kbs tdcrypt >"$W/purge.log" 2>&1 || bad "purge: $(tail -5 "$W/purge.log")"
[ ! -e "$R/usr/bin/tdcrypt" ] || bad "/usr/bin/tdcrypt left after purge"
[ -f "$R/var/lib/tdcrypt/kbs.db" ] || bad "the purge deleted the store (its keys)"

# ---- 5. the clean Debian 12 test guest
guest=$(ls -t "$CACHE"/guest-*.qcow2 2>/dev/null | head -n1)
if [ -z "$guest" ]; then
	stage "test guest: skipped (no $CACHE/guest-*.qcow2 yet: the e2e stage builds it)"
else
	stage "the test guest ($(basename "$guest")): install, initramfs"
	G=$W/guest
	mkdir -p "$G"
	qemu-img convert -O raw "$guest" "$W/guest.raw" || die "qemu-img convert"
	start=$(partx -g -o START -n 2 "$W/guest.raw") || die "no root partition in the guest"
	LOOP=$(losetup -f --show -o $((start * 512)) "$W/guest.raw") || die "losetup"
	mnt "$LOOP" "$G" && mnt -t proc proc "$G/proc" && mnt --bind /dev "$G/dev" &&
		mnt --bind /sys "$G/sys" && mnt -t tmpfs tmpfs "$G/run" && mnt -t tmpfs tmpfs "$G/tmp" ||
		die "guest mounts"
	in_guest() { chroot "$G" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
	# the plain guest: no tdcrypt integration of `image encrypt`
	rm -f "$G/etc/initramfs-tools/hooks/tdcrypt" "$G/etc/initramfs-tools/scripts/local-top/tdcrypt"
	rm -rf "$G/etc/tdcrypt"
	cp "${DEBS[0]}" "${DEBS[2]}" "$G/tmp/"
	in_guest dpkg -i "/tmp/$(basename "${DEBS[0]}")" "/tmp/$(basename "${DEBS[2]}")" \
		>"$W/guest-dpkg.log" 2>&1 || { tail -20 "$W/guest-dpkg.log"; bad "dpkg -i in the guest"; }
	grep -q 'update-initramfs' "$W/guest-dpkg.log" || bad "the initramfs trigger did not run"
	for p in tdcrypt tdcrypt-agent; do
		out=$(in_guest "$p" --version 2>&1)
		[ "$out" = "$p $VERSION" ] || bad "$p --version in the guest: '$out'"
	done
	initrd=/boot/$(basename "$(ls -t "$G"/boot/initrd.img-* | head -n1)")
	in_guest lsinitramfs "$initrd" >"$W/initrd-1.list" 2>/dev/null || bad "lsinitramfs"
	grep -q 'tdcrypt-agent$' "$W/initrd-1.list" && bad "the agent went into an initramfs without agent.json"
	mkdir -p "$G/etc/tdcrypt"
	echo '{}' >"$G/etc/tdcrypt/agent.json"
	in_guest update-initramfs -u >"$W/guest-initramfs.log" 2>&1 ||
		{ tail -20 "$W/guest-initramfs.log"; bad "update-initramfs with agent.json"; }
	in_guest lsinitramfs "$initrd" >"$W/initrd-2.list" 2>/dev/null || bad "lsinitramfs"
	grep -q 'sbin/tdcrypt-agent$' "$W/initrd-2.list" || bad "no tdcrypt-agent in the initramfs with agent.json"
	grep -q 'etc/tdcrypt/agent.json$' "$W/initrd-2.list" || bad "no agent.json in the initramfs"
	grep -q 'scripts/local-top/tdcrypt$' "$W/initrd-2.list" || bad "no boot script in the initramfs"
fi

stage "done: $fails failed"
[ "$fails" -eq 0 ]
