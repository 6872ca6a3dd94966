#!/bin/bash
# Build (or reuse from cache) a small Debian 12 guest disk for the end-to-end tests.
#
# Layout (GPT): p1 ESP (FAT16, GRUB EFI removable path), p2 ext4 root holding /boot.
# The disk is assembled from files (debootstrap tree -> mke2fs -d, mtools, sgdisk, dd, qemu-img);
# nothing is mounted. debootstrap itself needs root (it chroots to run maintainer scripts).
#
# The guest boots with systemd; the unit tdcrypt-marker.service prints "TDCRYPT-GUEST-UP ..." on
# ttyS0, then the firmware's event log (TPM, if the VM has one) in base64 between
# TDCRYPT-EVENTLOG-BEGIN/END lines, and powers off, unless the kernel command line has
# tdcrypt.nomarker.
# GRUB is built with its tpm module (it measures from its first command, as distribution builds
# do) and boots with linuxefi, so that the kernel's EFI stub runs and hands Linux the event log.
#
# --init dracut: the guest's initramfs generator is dracut (Debian package dracut, systemd in the
# initramfs, dracut-network for its network modules) instead of initramfs-tools; its own cache key.
#
# Usage: build-guest.sh [--force] [--no-install] [--init initramfs-tools|dracut]
# Env:   TDCRYPT_CACHE (default /var/cache/tdcrypt), TDCRYPT_MIRROR (default: from apt sources),
#        TDCRYPT_GUEST_SIZE (disk size, default 2G)
# Prints the path of the qcow2 image on stdout (and only that); progress and timings go to stderr.
set -euo pipefail

RELEASE=bookworm
# Guest packages on top of minbase. cryptsetup-initramfs: the encrypt step cannot install packages
# offline, so the guest must already carry cryptsetup and its initramfs hook (as cloud images do).
# libssl3/libjson-c5: runtime libraries of the tdcrypt agent.
PACKAGES="linux-image-amd64,initramfs-tools,systemd-sysv,udev,cryptsetup-initramfs,libssl3,libjson-c5"
INIT=initramfs-tools
LATE_PACKAGES=
HOST_PACKAGES="debootstrap qemu-utils gdisk dosfstools mtools e2fsprogs grub-efi-amd64-bin ovmf qemu-system-x86 swtpm swtpm-tools"
ESP_MIB=64

CACHE=${TDCRYPT_CACHE:-/var/cache/tdcrypt}
SIZE=${TDCRYPT_GUEST_SIZE:-2G}
FORCE=0
INSTALL=1
for a in "$@"; do
	case $a in
	--force) FORCE=1 ;;
	--no-install) INSTALL=0 ;;
	--init=*) INIT=${a#--init=} ;;
	--init) INIT=next ;;
	-h|--help) sed -n '2,18p' "$0"; exit 0 ;;
	*) [ "$INIT" = next ] && { INIT=$a; continue; }
	   echo "build-guest.sh: unknown argument $a" >&2; exit 2 ;;
	esac
done
case $INIT in
initramfs-tools) ;;
# dracut conflicts with initramfs-tools, so cryptsetup without its initramfs-tools hook; the
# kernel comes second (apt in the guest): debootstrap's resolver would take initramfs-tools for
# the kernel's "initramfs-tools | linux-initramfs-tool".
# dbus, procps (pgrep), iproute2: dracut's network modules need them in the initramfs.
dracut) PACKAGES="dracut,dracut-network,dbus,procps,iproute2,systemd-sysv,udev,cryptsetup,libssl3,libjson-c5"
	LATE_PACKAGES=linux-image-amd64 ;;
*) echo "build-guest.sh: --init initramfs-tools|dracut, not '$INIT'" >&2; exit 2 ;;
esac

T0=$(date +%s.%N)
log() { printf '[build-guest %6.1fs] %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*" >&2; }

SELF=$(readlink -f "$0")
HASH=$( { cat "$SELF"; echo "$PACKAGES $LATE_PACKAGES"; echo "$RELEASE"; echo "$SIZE"; } | sha256sum | cut -c1-16)
OUT="$CACHE/guest-$HASH.qcow2"
if [ "$FORCE" = 0 ] && [ -s "$OUT" ]; then
	log "cached: $OUT"
	echo "$OUT"
	exit 0
fi

[ "$(id -u)" = 0 ] || { echo "build-guest.sh: debootstrap needs root" >&2; exit 1; }

if [ "$INSTALL" = 1 ]; then
	missing=""
	for p in $HOST_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
	if [ -n "$missing" ]; then
		log "installing host packages:$missing"
		apt-get update -q >&2
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >&2
	fi
fi

# Debian mirror from this machine's apt sources (deb822 first, then one-line format): the first
# URI of an entry whose suites include $RELEASE itself.
find_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk -v rel="$RELEASE" '
			function flush() { if (uri != "" && suites ~ ("(^| )" rel "( |$)") && !enabled_no) { print uri; exit } uri=""; suites=""; enabled_no=0 }
			/^[ \t]*$/ { flush(); next }
			/^URIs:/ { uri=$2 }
			/^Suites:/ { $1=""; suites=$0; sub(/^ +/, "", suites) }
			/^Enabled:[ \t]*no/ { enabled_no=1 }
			END { flush() }' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk -v rel="$RELEASE" '$1 == "deb" {
			i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i+1) == rel) { print $i; exit } }' "$f"
	done
}
MIRROR=${TDCRYPT_MIRROR:-$(find_mirror | head -n1)}
[ -n "$MIRROR" ] || { echo "build-guest.sh: no $RELEASE mirror in apt sources; set TDCRYPT_MIRROR" >&2; exit 1; }

# Deterministic UUIDs (derived from the hash) so configs can be written before the filesystems.
mkuuid() { local h; h=$(echo "$HASH-$1" | sha256sum); echo "${h:0:8}-${h:8:4}-4${h:13:3}-a${h:17:3}-${h:20:12}"; }
ROOT_UUID=$(mkuuid root-fs)
ESP_SERIAL=$(echo "$HASH-esp" | sha256sum | cut -c1-8 | tr a-f A-F)

mkdir -p "$CACHE"
W=$(mktemp -d "$CACHE/.build-$HASH.XXXXXX")
cleanup() {
	# debootstrap mounts proc/sys inside the target; make sure nothing is left mounted.
	local m
	for m in proc sys dev/pts dev; do mountpoint -q "$W/root/$m" 2>/dev/null && umount -l "$W/root/$m"; done
	rm -rf "$W"
}
trap cleanup EXIT

log "debootstrap $RELEASE from $MIRROR (packages: $PACKAGES)"
# --merged-usr is the bookworm default; minbase keeps the guest small.
if ! debootstrap --variant=minbase --include="$PACKAGES" "$RELEASE" "$W/root" "$MIRROR" >"$W/debootstrap.log" 2>&1; then
	tail -n 30 "$W/debootstrap.log" >&2
	[ -f "$W/root/debootstrap/debootstrap.log" ] && tail -n 30 "$W/root/debootstrap/debootstrap.log" >&2
	exit 1
fi
log "debootstrap done ($(du -sm "$W/root" | cut -f1) MiB)"

R=$W/root
if [ "$INIT" = dracut ]; then
	# The guest's own dracut settings (before its first initramfs): generic (hostonly off, as
	# Debian ships it: a chroot shows the host's hardware), without what a q35 VM with virtio
	# cannot use, and a fast gzip: a full generic initramfs (176 MiB) takes minutes to
	# compress at -9 on a shared machine, at every build and every image encrypt.
	cat > "$R/etc/dracut.conf.d/10-tdcrypt-e2e.conf" <<-'EOF'
		omit_dracutmodules+=" drm plymouth btrfs lvm mdraid dmraid multipath nvdimm iscsi nbd nfs cifs fcoe fcoe-uefi "
		omit_drivers+=" .*wireless.* .*wifi.* iwl.* ath.* rtw.* brcm.* mt76.* "
		compress="gzip -n -1"
	EOF
fi
if [ -n "$LATE_PACKAGES" ]; then
	log "apt-get install $LATE_PACKAGES (guest)"
	echo "deb $MIRROR $RELEASE main" > "$R/etc/apt/sources.list"
	mount -t proc proc "$R/proc"
	chroot "$R" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $LATE_PACKAGES" >"$W/apt.log" 2>&1 ||
		{ tail -n 30 "$W/apt.log" >&2; umount "$R/proc"; exit 1; }
	umount "$R/proc"
fi
KVER=$(basename "$(ls -d "$R"/lib/modules/* | sort -V | tail -n1)")
[ -f "$R/boot/vmlinuz-$KVER" ] && [ -f "$R/boot/initrd.img-$KVER" ] || {
	echo "build-guest.sh: kernel or initramfs missing in guest" >&2; exit 1; }
# linux-base keeps /vmlinuz and /initrd.img symlinks in / pointing at the newest kernel; grub.cfg
# uses them so kernel updates inside the guest keep booting. Make sure they exist.
[ -e "$R/vmlinuz" ] || ln -sf "boot/vmlinuz-$KVER" "$R/vmlinuz"
[ -e "$R/initrd.img" ] || ln -sf "boot/initrd.img-$KVER" "$R/initrd.img"

# --- guest configuration -------------------------------------------------------------------------
echo tdcrypt-guest > "$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\ttdcrypt-guest\n' > "$R/etc/hosts"
cat > "$R/etc/fstab" <<EOF
# <fs>	<mount point>	<type>	<options>	<dump>	<pass>
UUID=$ROOT_UUID	/	ext4	errors=remount-ro	0	1
UUID=${ESP_SERIAL:0:4}-${ESP_SERIAL:4:4}	/boot/efi	vfat	umask=0077,nofail	0	2
EOF
mkdir -p "$R/boot/efi"
# root without a password is fine for a test guest that has no login on any console.
chroot "$R" passwd -d root >/dev/null

cat > "$R/usr/local/sbin/tdcrypt-marker" <<'EOF'
#!/bin/sh
# Prints one line the host test waits for, then powers off.
src=$(findmnt -n -o SOURCE /)
echo "TDCRYPT-GUEST-UP root=$src kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/ttyS0
log=/sys/kernel/security/tpm0/binary_bios_measurements
mountpoint -q /sys/kernel/security || mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
if [ -r "$log" ]; then
	{ echo TDCRYPT-EVENTLOG-BEGIN; base64 -w 76 "$log"; echo TDCRYPT-EVENTLOG-END; } > /dev/ttyS0
fi
EOF
chmod 0755 "$R/usr/local/sbin/tdcrypt-marker"
cat > "$R/etc/systemd/system/tdcrypt-marker.service" <<'EOF'
[Unit]
Description=tdcrypt e2e marker: report boot on ttyS0 and power off
ConditionKernelCommandLine=!tdcrypt.nomarker
After=multi-user.target local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/tdcrypt-marker
ExecStartPost=/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/tdcrypt-marker.service \
	"$R/etc/systemd/system/multi-user.target.wants/tdcrypt-marker.service"
# No gettys: nothing logs in, and they would wait on device units.
ln -sf /dev/null "$R/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$R/etc/systemd/system/getty@tty1.service"

# Boot config on the root fs; the ESP only carries a GRUB that finds this file by fs UUID.
mkdir -p "$R/boot/grub"
cat > "$R/boot/grub/grub.cfg" <<EOF
set timeout=0
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
menuentry 'Debian' {
	search --no-floppy --fs-uuid --set=root $ROOT_UUID
	linuxefi /vmlinuz root=UUID=$ROOT_UUID ro console=ttyS0 panic=-1
	initrdefi /initrd.img
}
EOF

# Drop the package cache and logs that only cost space.
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/* \
	"$R"/debootstrap "$R"/var/log/*.log
# Host apt sources for the guest (same mirror), useful for manual debugging only.
echo "deb $MIRROR $RELEASE main" > "$R/etc/apt/sources.list"

# --- filesystems ---------------------------------------------------------------------------------
# Sizes in MiB; the disk is: 1 MiB GPT gap, ESP, root, 1 MiB backup GPT.
case $SIZE in *G) DISK_MIB=$(( ${SIZE%G} * 1024 )) ;; *M) DISK_MIB=${SIZE%M} ;; *) DISK_MIB=$SIZE ;; esac
ROOT_MIB=$(( DISK_MIB - 1 - ESP_MIB - 1 ))
log "root fs: ${ROOT_MIB} MiB ext4 (4 KiB blocks), kernel $KVER"
# -b 4096 so the LUKS2 data segment can use 4096-byte sectors later.
mke2fs -q -t ext4 -b 4096 -L root -U "$ROOT_UUID" -d "$R" "$W/root.img" "${ROOT_MIB}M" >&2
e2fsck -fn "$W/root.img" >/dev/null 2>&1

log "ESP: FAT16 ${ESP_MIB} MiB, GRUB standalone EFI"
cat > "$W/grub-esp.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $ROOT_UUID
set prefix=(\$root)/boot/grub
configfile /boot/grub/grub.cfg
EOF
grub-mkstandalone -O x86_64-efi -o "$W/BOOTX64.EFI" \
	--modules="tpm part_gpt ext2 fat search search_fs_uuid configfile linux linuxefi normal serial terminal echo" \
	--locales= --fonts= --themes= "boot/grub/grub.cfg=$W/grub-esp.cfg"
truncate -s "${ESP_MIB}M" "$W/esp.img"
mkfs.vfat -F 16 -n ESP -i "$ESP_SERIAL" "$W/esp.img" >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$W/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$W/esp.img" "$W/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

log "disk: GPT ${DISK_MIB} MiB"
truncate -s "${DISK_MIB}M" "$W/disk.raw"
sgdisk --clear \
	--new=1:1MiB:+${ESP_MIB}MiB --typecode=1:EF00 --change-name=1:esp \
	--new=2:0:+${ROOT_MIB}MiB --typecode=2:8304 --change-name=2:root \
	--partition-guid=2:"$(mkuuid root-part)" \
	"$W/disk.raw" >/dev/null
# sgdisk exits 0 even on some usage errors: check the table really has both partitions.
[ "$(sgdisk -p "$W/disk.raw" | grep -cE '^ +[12] ')" = 2 ] || { echo "build-guest.sh: sgdisk failed" >&2; exit 1; }
dd if="$W/esp.img" of="$W/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$W/root.img" of="$W/disk.raw" bs=1M seek=$(( 1 + ESP_MIB )) conv=notrunc,sparse status=none
qemu-img convert -q -f raw -O qcow2 "$W/disk.raw" "$W/disk.qcow2"
mv "$W/disk.qcow2" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "done: $OUT ($(du -m "$OUT" | cut -f1) MiB allocated)"
echo "$OUT"
