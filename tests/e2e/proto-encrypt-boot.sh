#!/bin/bash
# PROTOTYPE / TEST ONLY: prove the encrypted boot path for issue 4 before the real builder exists.
#
# Takes the plain guest from build-guest.sh, and produces ESP + clear /boot + LUKS2 root where the
# root ciphertext is written by ENC_TOOL (approach (b) in docs/IMAGE-NOTES.md: crypt_format +
# userspace AES-XTS of allocated ext4 blocks only). The unlock uses the guest's stock
# cryptsetup-initramfs with a keyfile baked into the initramfs - NOT how tdcrypt will unlock (the
# agent fetches the key); it only proves layout, ciphertext and boot config.
#
# Needs root: it loop-mounts the guest root and chroots to run update-initramfs (the real builder
# must not; see the notes for the unprivileged options).
#
# Usage: proto-encrypt-boot.sh GUEST.qcow2 ENC_TOOL OUT.qcow2
#   ENC_TOOL: build-*/tests/e2e/encrypt-tool (lib/image) once tests/e2e is registered in meson
#   ENC_TOOL is called as: LUKS_UUID=<uuid> ENC_TOOL enc SRC_FS_IMAGE OUT_PART KEYFILE
set -euo pipefail
IN=$(readlink -f "$1"); ENC=$(readlink -f "$2"); OUT=$3
[ "$(id -u)" = 0 ] || { echo "needs root (test only)" >&2; exit 1; }
T0=$(date +%s.%N)
log() { printf '[proto %6.1fs] %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*" >&2; }

W=$(mktemp -d /tmp/tdcrypt-proto.XXXXXX)
MNT=$W/mnt
cleanup() {
	local m
	for m in dev/pts dev sys proc ""; do mountpoint -q "$MNT/$m" 2>/dev/null && umount "$MNT/$m"; done
	[ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT

log "convert input to raw"
qemu-img convert -f qcow2 -O raw "$IN" "$W/in.raw"
# Partition 2 of build-guest.sh's layout is the root.
read -r RSTART REND < <(sgdisk -i 2 "$W/in.raw" | awk '/First sector/{s=$3} /Last sector/{e=$3} END{print s, e}')
dd if="$W/in.raw" of="$W/root.img" bs=512 skip="$RSTART" count=$(( REND - RSTART + 1 )) conv=sparse status=none
rm -f "$W/in.raw"

LUKS_UUID=$(cat /proc/sys/kernel/random/uuid)
BOOT_UUID=$(cat /proc/sys/kernel/random/uuid)
head -c 32 /dev/urandom > "$W/disk.key"    # throwaway key; real: from the broker

log "modify root (loop mount + chroot: TEST ONLY)"
mkdir -p "$MNT"
mount -o loop "$W/root.img" "$MNT"
for m in proc sys dev dev/pts; do mount --bind "/$m" "$MNT/$m"; done
install -d -m 0700 "$MNT/etc/keys"
install -m 0400 "$W/disk.key" "$MNT/etc/keys/root.key"
echo "root UUID=$LUKS_UUID /etc/keys/root.key luks,discard,initramfs" > "$MNT/etc/crypttab"
cat > "$MNT/etc/fstab" <<EOF
/dev/mapper/root	/	ext4	errors=remount-ro	0	1
UUID=$BOOT_UUID	/boot	ext4	defaults	0	2
EOF
mkdir -p "$MNT/etc/cryptsetup-initramfs"
cat > "$MNT/etc/cryptsetup-initramfs/conf-hook" <<'EOF'
CRYPTSETUP=y
KEYFILE_PATTERN="/etc/keys/*.key"
EOF
echo UMASK=0077 > "$MNT/etc/initramfs-tools/conf.d/umask"
# Kernel symlinks inside /boot from now on (the / symlinks live on the encrypted root).
echo "do_symlinks = yes" > "$MNT/etc/kernel-img.conf"; echo "link_in_boot = yes" >> "$MNT/etc/kernel-img.conf"
KVER=$(basename "$(ls -d "$MNT"/lib/modules/* | sort -V | tail -n1)")
ln -sfn "vmlinuz-$KVER" "$MNT/boot/vmlinuz"; ln -sfn "initrd.img-$KVER" "$MNT/boot/initrd.img"
rm -f "$MNT/vmlinuz" "$MNT/vmlinuz.old" "$MNT/initrd.img" "$MNT/initrd.img.old"
cat > "$MNT/boot/grub/grub.cfg" <<EOF
set timeout=0
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
menuentry 'Debian (encrypted root)' {
	search --no-floppy --fs-uuid --set=root $BOOT_UUID
	linux /vmlinuz root=/dev/mapper/root ro console=ttyS0 panic=-1
	initrd /initrd.img
}
EOF
log "update-initramfs in chroot"
chroot "$MNT" update-initramfs -u -k "$KVER" >"$W/update-initramfs.log" 2>&1 || { cat "$W/update-initramfs.log" >&2; exit 1; }
grep -i -E "warn|error" "$W/update-initramfs.log" >&2 || true  # expected: cannot resolve the not-yet-existing LUKS device
log "initramfs: $(du -m "$MNT/boot/initrd.img-$KVER" | cut -f1) MiB; crypt files: $(chroot "$MNT" lsinitramfs "/boot/initrd.img-$KVER" | grep -c -E 'sbin/cryptsetup$|cryptroot/crypttab|keyfiles/')"
# /boot becomes its own clear partition; the copy left on the root is hidden under the mount.
mke2fs -q -t ext4 -b 4096 -L boot -U "$BOOT_UUID" -d "$MNT/boot" "$W/boot.img" 256M >&2
for m in dev/pts dev sys proc ""; do umount "$MNT/$m"; done
e2fsck -fy "$W/root.img" >/dev/null 2>&1 || true

log "encrypt root with $ENC"
/usr/bin/time -f '[proto] encrypt: %e s, max RSS %M KiB' env LUKS_UUID="$LUKS_UUID" "$ENC" enc "$W/root.img" "$W/luks.img" "$W/disk.key" >&2
cryptsetup open --test-passphrase --key-file "$W/disk.key" "$W/luks.img"

log "ESP + disk"
cat > "$W/grub-esp.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $BOOT_UUID
set prefix=(\$root)/grub
configfile /grub/grub.cfg
EOF
grub-mkstandalone -O x86_64-efi -o "$W/BOOTX64.EFI" \
	--modules="part_gpt ext2 fat search search_fs_uuid configfile linux normal serial terminal echo" \
	--locales= --fonts= --themes= "boot/grub/grub.cfg=$W/grub-esp.cfg"
truncate -s 64M "$W/esp.img"; mkfs.vfat -F 16 -n ESP "$W/esp.img" >/dev/null
MTOOLS_SKIP_CHECK=1 mmd -i "$W/esp.img" ::/EFI ::/EFI/BOOT
MTOOLS_SKIP_CHECK=1 mcopy -i "$W/esp.img" "$W/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
LMIB=$(( $(stat -c %s "$W/luks.img") / 1048576 ))
truncate -s $(( 1 + 64 + 256 + LMIB + 1 ))M "$W/disk.raw"
sgdisk --clear --new=1:1MiB:+64MiB --typecode=1:EF00 --change-name=1:esp \
	--new=2:0:+256MiB --typecode=2:8300 --change-name=2:boot \
	--new=3:0:+${LMIB}MiB --typecode=3:8309 --change-name=3:root "$W/disk.raw" >/dev/null
[ "$(sgdisk -p "$W/disk.raw" | grep -cE '^ +[123] ')" = 3 ]
dd if="$W/esp.img" of="$W/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$W/boot.img" of="$W/disk.raw" bs=1M seek=65 conv=notrunc,sparse status=none
dd if="$W/luks.img" of="$W/disk.raw" bs=1M seek=321 conv=notrunc,sparse status=none
qemu-img convert -f raw -O qcow2 "$W/disk.raw" "$OUT"
log "done: $OUT ($(du -m "$OUT" | cut -f1) MiB allocated, luks part $(du -m "$W/luks.img" | cut -f1) of $LMIB MiB)"
