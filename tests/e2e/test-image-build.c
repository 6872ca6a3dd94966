/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of `tdcrypt image encrypt`'s library path (tdc_image_build) on a tiny synthetic GPT disk:
 * ESP (FAT, mtools) + ext4 root (mke2fs -d with a fake /etc/os-release and /boot), built without
 * debootstrap or root. The layout-only mode (no_guest) is exercised: 3 partitions, ESP bytes
 * identical, /boot content, LUKS2 header valid and digest as recorded, keyslot opens with the
 * key, decrypted root passes e2fsck; error cases leave no OUT and no temp dir. An Ubuntu-like
 * input with its own /boot and BIOS boot partitions keeps both byte for byte. Also the GPT and
 * os-release parsers, check by check. Skipped when e2fsprogs/mtools/dosfstools/gdisk/qemu-img
 * are missing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libcryptsetup.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "image/distro.h"
#include "image/encrypt.h"
#include "image/fsprobe.h"
#include "image/gpt.h"
#include "image/xts.h"
#include "tdcrypt/image.h"
#include "util/util.h"

extern char **environ;

#define MIB (1024u * 1024u)
#define ESP_MIB 33u
#define ROOT_MIB 48u

struct fix {
	char dir[64];
	char disk[128], out[160], tree[128];
	uint8_t secret[32];
	uint8_t esp_sha[32];
};

static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	pid_t pid;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char *argv[] = { "sh", "-c", cmd, NULL };
	if (posix_spawnp(&pid, "sh", NULL, NULL, argv, environ) != 0)
		return -1;
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool have_tools(void)
{
	return sh("PATH=$PATH:/usr/sbin:/sbin; for t in mke2fs debugfs dumpe2fs e2fsck mkfs.vfat "
		  "mcopy mmd sgdisk qemu-img dd; do command -v $t >/dev/null || exit 1; done") == 0;
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 0;

	assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
}

static void file_sha(const char *path, uint64_t off, uint64_t len, uint8_t out[32])
{
	uint8_t *buf = malloc(len);
	int fd = open(path, O_RDONLY);

	assert_non_null(buf);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	sha256(buf, len, out);
	close(fd);
	free(buf);
}

/* Synthetic disk: GPT (sgdisk), ESP with a random BOOTX64.EFI, ext4 root from a tree. */
static void make_disk(struct fix *f, const char *os_release, bool with_esp, bool ext4_root)
{
	char esp[160], root[160];

	snprintf(esp, sizeof(esp), "%s/esp.img", f->dir);
	snprintf(root, sizeof(root), "%s/root.img", f->dir);
	assert_int_equal(sh("set -e; cd %s; rm -rf tree; mkdir -p tree/etc tree/boot/grub "
			    "tree/usr/lib tree/boot/efi; printf '%%s' '%s' > tree/usr/lib/os-release; "
			    "ln -s ../usr/lib/os-release tree/etc/os-release; "
			    "echo 'linux /vmlinuz root=UUID=1 ro' > tree/boot/grub/grub.cfg; "
			    "head -c 200000 /dev/urandom > tree/boot/vmlinuz-6.1.0-test; "
			    "head -c 100000 /dev/urandom > tree/boot/initrd.img-6.1.0-test; "
			    "echo guest > tree/etc/hostname",
			    f->dir, os_release), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; set -e; cd %s; rm -f root.img; "
			    "if [ %d = 1 ]; then mke2fs -q -t ext4 -b 4096 -d tree root.img %uM; "
			    "else head -c %uM /dev/zero > root.img; fi; rm -f esp.img; "
			    "truncate -s %uM esp.img; mkfs.vfat -F 32 esp.img >/dev/null; "
			    "head -c 50000 /dev/urandom > efi.bin; export MTOOLS_SKIP_CHECK=1; "
			    "mmd -i esp.img ::/EFI ::/EFI/BOOT; "
			    "mcopy -i esp.img efi.bin ::/EFI/BOOT/BOOTX64.EFI; rm -f disk.raw; "
			    "truncate -s %uM disk.raw; "
			    "sgdisk --new=1:2048:+%uM -t 1:%s --new=2:0:+%uM -t 2:8304 disk.raw "
			    ">/dev/null; "
			    "dd if=esp.img of=disk.raw bs=1M seek=1 conv=notrunc,sparse status=none; "
			    "dd if=root.img of=disk.raw bs=1M seek=%u conv=notrunc,sparse status=none",
			    f->dir, ext4_root, ROOT_MIB, ROOT_MIB, ESP_MIB,
			    1 + ESP_MIB + ROOT_MIB + 1, ESP_MIB, with_esp ? "EF00" : "8300",
			    ROOT_MIB, 1 + ESP_MIB), 0);
	file_sha(f->disk, MIB, ESP_MIB * MIB, f->esp_sha);
}

static const char DEBIAN[] = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian\"\n"
			     "VERSION_ID=\"12\"\nID=debian\n";

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tdc-imgbuild-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->disk, sizeof(f->disk), "%s/disk.raw", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/out.img", f->dir);
	if (RAND_bytes(f->secret, sizeof(f->secret)) != 1)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	sh("rm -rf %s", f->dir);
	free(f);
	return 0;
}

static void base_opts(struct fix *f, struct tdc_image_build_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->in = f->disk;
	o->out = f->out;
	o->out_format = "raw";
	o->secret = f->secret;
	o->secret_len = sizeof(f->secret);
	o->no_guest = true;
	o->boot_mib = 64;
}

/* No OUT, and no OUT.tmp-* left next to it. */
static void assert_no_output(struct fix *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *de;

	assert_int_equal(access(f->out, F_OK), -1);
	assert_non_null(d);
	while ((de = readdir(d)))
		assert_null(strstr(de->d_name, "out.img.tmp-"));
	closedir(d);
}

static int progress_cb(void *arg, const char *stage, uint64_t done, uint64_t total)
{
	unsigned *n = arg;

	assert_non_null(stage);
	assert_true(done <= total || total == 0);
	(*n)++;
	return 0;
}

/* Copies [off, off+len) of src into a new file. */
static void extract(const char *src, uint64_t off, uint64_t len, const char *dst)
{
	assert_int_equal(sh("dd if=%s of=%s bs=1M skip=%llu count=%llu iflag=skip_bytes,count_bytes "
			    "conv=sparse status=none",
			    src, dst, (unsigned long long)off, (unsigned long long)len), 0);
}

static void test_build_layout(void **state)
{
	struct fix *f = *state;
	struct tdc_image_build_opts o;
	struct tdc_image_build_result r;
	struct tdc_error e = { 0 };
	struct tdc_gpt g;
	unsigned calls = 0;
	char p2[192], p3[192], plain[192], vk[64];
	uint8_t d[32], hdr[2 * TDC_IMAGE_LUKS_HDR_SIZE];
	size_t vklen = sizeof(vk);
	struct crypt_device *cd = NULL;
	struct stat st;
	int fd;

	if (!have_tools())
		skip();
	make_disk(f, DEBIAN, true, true);
	base_opts(f, &o);
	o.progress = progress_cb;
	o.progress_arg = &calls;
	assert_int_equal(tdc_image_build(&o, &r, &e), 0);
	assert_true(calls >= 4);
	assert_string_equal(r.distro_id, "debian");
	assert_string_equal(r.family, "debian");
	assert_string_equal(r.in_format, "raw");
	assert_string_equal(r.out_format, "raw");
	assert_false(r.guest_modified);
	assert_int_equal(r.root_fs_blocks, ROOT_MIB * 256);
	assert_true(r.root_used_blocks > 0 && r.root_used_blocks < r.root_fs_blocks);
	assert_int_equal(stat(f->out, &st), 0);
	assert_int_equal(r.out_size, (uint64_t)st.st_size);
	assert_true((uint64_t)st.st_blocks * 512 < 32 * MIB); /* sparse */
	{
		DIR *dd = opendir(f->dir);
		struct dirent *de;

		while ((de = readdir(dd)))
			assert_null(strstr(de->d_name, ".tmp-"));
		closedir(dd);
	}

	/* 3 partitions: ESP (same bytes, same GUID), Linux fs, LUKS */
	fd = open(f->out, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(tdc_gpt_read_fd(fd, (uint64_t)st.st_size, &g, &e), 0);
	close(fd);
	assert_int_equal(g.n, 3);
	assert_true(tdc_guid_equal(g.parts[0].type, TDC_GPT_TYPE_ESP));
	assert_true(tdc_guid_equal(g.parts[1].type, TDC_GPT_TYPE_LINUX_FS));
	assert_true(tdc_guid_equal(g.parts[2].type, TDC_GPT_TYPE_LUKS));
	assert_string_equal(r.esp.guid, r.in_esp.guid);
	assert_int_equal(r.esp.size, ESP_MIB * MIB);
	file_sha(f->out, r.esp.offset, r.esp.size, d);
	assert_memory_equal(d, f->esp_sha, 32);
	assert_int_equal(r.boot.size, 64 * MIB);
	assert_int_equal(r.root.size, TDC_IMAGE_DATA_OFFSET + ROOT_MIB * MIB);

	/* /boot: content, the boot -> . link, and the root's old fs UUID */
	snprintf(p2, sizeof(p2), "%s/p2", f->dir);
	extract(f->out, r.boot.offset, r.boot.size, p2);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; debugfs -R 'ls -l /' %s 2>/dev/null | "
			    "grep -q vmlinuz-6.1.0-test", p2), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; debugfs -R 'cat /grub/grub.cfg' %s "
			    "2>/dev/null | grep -q 'linux /vmlinuz'", p2), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; debugfs -R 'stat /boot' %s 2>/dev/null | "
			    "grep -q 'Fast link dest: \"\\.\"'", p2), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; dumpe2fs -h %s 2>/dev/null | "
			    "grep -q 'UUID: *%s'", p2, r.boot_fs_uuid), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; e2fsck -fn %s >/dev/null 2>&1", p2), 0);

	/* LUKS2: header digest as recorded, keyslot opens with the secret (check only) */
	snprintf(p3, sizeof(p3), "%s/p3", f->dir);
	extract(f->out, r.root.offset, r.root.size, p3);
	fd = open(p3, O_RDONLY);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	close(fd);
	sha256(hdr, sizeof(hdr), d);
	assert_memory_equal(d, r.header_sha256, 32);
	assert_int_equal(crypt_init(&cd, p3), 0);
	assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
	assert_string_equal(crypt_get_uuid(cd), r.luks_uuid);
	assert_int_equal(crypt_get_sector_size(cd), 4096);
	assert_int_equal(crypt_activate_by_passphrase(cd, NULL, 0, (const char *)f->secret,
						      sizeof(f->secret), 0), 0);
	f->secret[0] ^= 1;
	assert_true(crypt_activate_by_passphrase(cd, NULL, 0, (const char *)f->secret,
						 sizeof(f->secret), 0) < 0);
	f->secret[0] ^= 1;
	assert_int_equal(crypt_volume_key_get(cd, 0, vk, &vklen, (const char *)f->secret,
					      sizeof(f->secret)), 0);
	crypt_free(cd);

	/* the decrypted data segment is a clean ext4 with the new UUID and the guest's files */
	struct tdc_xts *x = NULL;
	uint8_t *buf = malloc(MIB);
	int in = open(p3, O_RDONLY), out;

	snprintf(plain, sizeof(plain), "%s/plain", f->dir);
	out = open(plain, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(in >= 0 && out >= 0 && buf);
	assert_int_equal(tdc_xts_new(&x, (const uint8_t *)vk, NULL), 0);
	for (uint64_t off = 0; off < ROOT_MIB * MIB; off += MIB) {
		assert_int_equal(pread(in, buf, MIB, (off_t)(TDC_IMAGE_DATA_OFFSET + off)), MIB);
		assert_int_equal(tdc_xts_decrypt(x, buf, MIB / 4096, off / 4096, NULL), 0);
		assert_int_equal(pwrite(out, buf, MIB, (off_t)off), MIB);
	}
	tdc_xts_free(x);
	free(buf);
	close(in);
	close(out);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; e2fsck -fn %s >/dev/null 2>&1", plain), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; debugfs -R 'cat /etc/hostname' %s "
			    "2>/dev/null | grep -q guest", plain), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; dumpe2fs -h %s 2>/dev/null | "
			    "grep -q 'UUID: *%s'", plain, r.root_fs_uuid), 0);
	assert_string_not_equal(r.root_fs_uuid, r.boot_fs_uuid);
}

/*
 * A raw input is read in place in layout-only mode: IN stays byte for byte as it was, and the
 * root's new UUID (an in-memory overlay of its superblocks and descriptors) is in the encrypted
 * root, also without metadata_csum, where the crc16 descriptor checksums hash the UUID.
 */
/* The progress callback stops the build at a given stage (the CLI's Ctrl-C): TDC_E_CANCELLED,
 * no OUT, no work dir, in the middle of the encrypt stage's byte progress and at a stage start. */
struct cancel_at {
	const char *stage;
	bool bytes;    /* only once byte progress of that stage was seen */
	unsigned hits;
};

static int cancel_cb(void *arg, const char *stage, uint64_t done, uint64_t total)
{
	struct cancel_at *c = arg;

	(void)done;
	if (strcmp(stage, c->stage) != 0 || (c->bytes && total == 0))
		return 0;
	c->hits++;
	return 1;
}

static void test_build_cancel(void **state)
{
	struct fix *f = *state;
	static const struct cancel_at cases[] = {
		{ "encrypt", true, 0 }, { "encrypt", false, 0 }, { "inspect", false, 0 },
		{ "convert", false, 0 }, { "qcow2", false, 0 },
	};
	struct tdc_image_build_opts o;
	struct tdc_image_build_result r;

	if (!have_tools())
		skip();
	make_disk(f, DEBIAN, true, true);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cancel_at c = cases[i];
		struct tdc_error e = { 0 };

		base_opts(f, &o);
		if (!strcmp(c.stage, "qcow2"))
			o.out_format = "qcow2";
		o.progress = cancel_cb;
		o.progress_arg = &c;
		assert_int_equal(tdc_image_build(&o, &r, &e), TDC_E_CANCELLED);
		assert_int_equal(c.hits, 1);
		assert_no_output(f);
	}
}

static void test_build_direct_nocsum(void **state)
{
	struct fix *f = *state;
	struct tdc_image_build_opts o;
	struct tdc_image_build_result r;
	struct tdc_error e = { 0 };
	const uint64_t disk = (1 + ESP_MIB + ROOT_MIB + 1) * (uint64_t)MIB;
	uint8_t before[32], after[32];
	char p3[192], plain[192], vk[64];
	size_t vklen = sizeof(vk);
	struct crypt_device *cd = NULL;

	if (!have_tools())
		skip();
	make_disk(f, DEBIAN, true, true);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; set -e; cd %s; rm -f root.img; "
			    "mke2fs -q -t ext4 -b 4096 -O ^metadata_csum,uninit_bg -d tree root.img "
			    "%uM; dd if=root.img of=disk.raw bs=1M seek=%u conv=notrunc,sparse "
			    "status=none",
			    f->dir, ROOT_MIB, 1 + ESP_MIB), 0);
	file_sha(f->disk, 0, disk, before);
	base_opts(f, &o);
	assert_int_equal(tdc_image_build(&o, &r, &e), 0);
	file_sha(f->disk, 0, disk, after);
	assert_memory_equal(before, after, 32);
	assert_true(r.root_used_blocks > 0);

	snprintf(p3, sizeof(p3), "%s/p3", f->dir);
	extract(f->out, r.root.offset, r.root.size, p3);
	assert_int_equal(crypt_init(&cd, p3), 0);
	assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
	assert_int_equal(crypt_volume_key_get(cd, 0, vk, &vklen, (const char *)f->secret,
					      sizeof(f->secret)), 0);
	crypt_free(cd);

	struct tdc_xts *x = NULL;
	uint8_t *buf = malloc(MIB);
	int in = open(p3, O_RDONLY), out;

	snprintf(plain, sizeof(plain), "%s/plain", f->dir);
	out = open(plain, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(in >= 0 && out >= 0 && buf);
	assert_int_equal(tdc_xts_new(&x, (const uint8_t *)vk, NULL), 0);
	for (uint64_t off = 0; off < ROOT_MIB * MIB; off += MIB) {
		assert_int_equal(pread(in, buf, MIB, (off_t)(TDC_IMAGE_DATA_OFFSET + off)), MIB);
		assert_int_equal(tdc_xts_decrypt(x, buf, MIB / 4096, off / 4096, NULL), 0);
		assert_int_equal(pwrite(out, buf, MIB, (off_t)off), MIB);
	}
	tdc_xts_free(x);
	free(buf);
	close(in);
	close(out);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; e2fsck -fn %s >/dev/null 2>&1", plain), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; dumpe2fs -h %s 2>/dev/null | "
			    "grep -q 'UUID: *%s'", plain, r.root_fs_uuid), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; dumpe2fs -h %s 2>/dev/null | "
			    "grep 'features:' | grep -q uninit_bg", plain), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; debugfs -R 'cat /etc/hostname' %s "
			    "2>/dev/null | grep -q guest", plain), 0);
}

static void test_build_qcow2(void **state)
{
	struct fix *f = *state;
	struct tdc_image_build_opts o;
	struct tdc_image_build_result r;
	struct tdc_error e = { 0 };
	char q[160];

	if (!have_tools())
		skip();
	make_disk(f, DEBIAN, true, true);
	snprintf(q, sizeof(q), "%s/disk.qcow2", f->dir);
	assert_int_equal(sh("qemu-img convert -f raw -O qcow2 %s %s", f->disk, q), 0);
	base_opts(f, &o);
	o.in = q;
	o.out_format = NULL; /* as the input */
	assert_int_equal(tdc_image_build(&o, &r, &e), 0);
	assert_string_equal(r.in_format, "qcow2");
	assert_string_equal(r.out_format, "qcow2");
	assert_int_equal(sh("qemu-img info %s | grep -q 'file format: qcow2'", f->out), 0);
}

static void expect_fail(struct fix *f, struct tdc_image_build_opts *o, int code,
			const char *reason_part)
{
	struct tdc_image_build_result r;
	struct tdc_error e = { 0 };

	assert_int_equal(tdc_image_build(o, &r, &e), code);
	assert_non_null(e.reason);
	if (reason_part && !strstr(e.reason, reason_part))
		fail_msg("reason '%s' lacks '%s'", e.reason, reason_part);
	assert_no_output(f);
}

static void test_build_errors(void **state)
{
	struct fix *f = *state;
	struct tdc_image_build_opts o;

	if (!have_tools())
		skip();
	base_opts(f, &o);

	/* not a disk image */
	assert_int_equal(sh("head -c 4M /dev/urandom > %s", f->disk), 0);
	expect_fail(f, &o, TDC_E_FORMAT, "not a disk image");
	/* missing input */
	o.in = "/nonexistent/disk.raw";
	expect_fail(f, &o, TDC_E_IO, "cannot read input");
	o.in = f->disk;
	/* unknown distribution */
	make_disk(f, "ID=plan9\nID_LIKE=\"bell-labs\"\n", true, true);
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "unknown distribution");
	/* no ESP */
	make_disk(f, DEBIAN, false, true);
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "no EFI system partition");
	/* no root: the Linux partition is not ext4 */
	make_disk(f, DEBIAN, true, false);
	expect_fail(f, &o, TDC_E_FORMAT, "no root partition");
	/* bad secret, bad format */
	make_disk(f, DEBIAN, true, true);
	o.secret_len = 31;
	expect_fail(f, &o, TDC_E_USAGE, "secret");
	o.secret_len = sizeof(f->secret);
	o.out_format = "vmdk";
	expect_fail(f, &o, TDC_E_USAGE, "output format");
	o.out_format = "raw";
	/* the guest path needs a secret ID, brokers, pins */
	o.no_guest = false;
	expect_fail(f, &o, TDC_E_USAGE, "secret ID");
	o.no_guest = true;
	/* /boot larger than the partition: too small */
	o.boot_mib = 16;
	assert_int_equal(sh("set -e; cd %s; head -c 20M /dev/urandom > tree/boot/big; "
			    "PATH=$PATH:/usr/sbin:/sbin mke2fs -q -F -t ext4 -b 4096 -d tree root.img "
			    "%uM; dd if=root.img of=disk.raw bs=1M seek=%u conv=notrunc,sparse "
			    "status=none", f->dir, ROOT_MIB, 1 + ESP_MIB), 0);
	expect_fail(f, &o, TDC_E_LIMIT, "too small");
}

/* Rebuilds the root of f's disk from its tree after cmd changed the tree. */
static void rebuild_root(struct fix *f, const char *cmd)
{
	assert_int_equal(sh("set -e; cd %s; %s; PATH=$PATH:/usr/sbin:/sbin mke2fs -q -F -t ext4 "
			    "-b 4096 -d tree root.img %uM; dd if=root.img of=disk.raw bs=1M seek=%u "
			    "conv=notrunc,sparse status=none", f->dir, cmd, ROOT_MIB, 1 + ESP_MIB), 0);
}

/* A full disk at OUT, made with RLIMIT_FSIZE (unprivileged, no tmpfs mount needed): EFBIG past the
 * limit as ENOSPC on a full disk. With the limit below the input's copy or below the output disk,
 * sizing the sparse files fails first (a write failing mid-stream in the encrypt pipeline is
 * test-image's test_encrypt_pipeline_stops). Clear error, nothing left behind. */
static void test_build_out_full(void **state)
{
	struct fix *f = *state;
	struct tdc_image_build_opts o;
	struct tdc_image_build_result r;
	struct rlimit old, lim;
	void (*old_sig)(int);

	if (!have_tools())
		skip();
	make_disk(f, DEBIAN, true, true);
	base_opts(f, &o);
	for (rlim_t mib = 8; mib <= 96; mib += 88) {
		struct tdc_error e = { 0 };
		int rc;

		assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
		lim = old;
		lim.rlim_cur = mib * MIB;
		old_sig = signal(SIGXFSZ, SIG_IGN);
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
		rc = tdc_image_build(&o, &r, &e);
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
		signal(SIGXFSZ, old_sig);
		assert_int_equal(rc, TDC_E_IO);
		assert_non_null(strstr(e.detail, "File too large"));
		assert_no_output(f);
	}
}

/* A root without /boot (nothing to boot from): a clear refusal, no output. */
static void test_build_no_boot(void **state)
{
	struct fix *f = *state;
	struct tdc_image_build_opts o;

	if (!have_tools())
		skip();
	make_disk(f, DEBIAN, true, true);
	rebuild_root(f, "rm -rf tree/boot");
	base_opts(f, &o);
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "has no /boot directory");
}

static int refuse_commit(void *arg, const struct tdc_image_build_result *r, struct tdc_error *e)
{
	(void)r;
	(*(unsigned *)arg)++;
	return TDC_FAIL(e, TDC_E_POLICY, "broker refused the key");
}

static void test_build_out_untouched(void **state)
{
	struct fix *f = *state;
	struct tdc_image_build_opts o;
	unsigned commits = 0;
	uint8_t d[32], want[32];

	if (!have_tools())
		skip();
	make_disk(f, DEBIAN, true, true);
	base_opts(f, &o);
	/* an existing OUT is never overwritten */
	assert_int_equal(sh("echo precious > %s", f->out), 0);
	file_sha(f->out, 0, 9, want);
	struct tdc_image_build_result r;
	struct tdc_error e = { 0 };

	assert_int_equal(tdc_image_build(&o, &r, &e), TDC_E_USAGE);
	file_sha(f->out, 0, 9, d);
	assert_memory_equal(d, want, 32);
	unlink(f->out);
	/* a refused commit (key registration) aborts after all the work: no OUT */
	o.commit = refuse_commit;
	o.commit_arg = &commits;
	expect_fail(f, &o, TDC_E_POLICY, "broker refused");
	assert_int_equal(commits, 1);
}

/* ---- input with its own /boot partition (Ubuntu cloud image layout) ---- */

#define SEP_BOOT_MIB 32u
#define SEP_BIOS_MIB 4u
#define SEP_BOOT_UUID "3f2504e0-4f89-41d3-9a0c-0305e82c3301"

/*
 * Like Ubuntu 24.04's cloud images: 14 BIOS boot, 15 ESP, 16 /boot (ext4 "BOOT" with a kernel and
 * grub/), 1 root (ext4, physically last) whose fstab mounts /boot by boot_spec. Offsets in MiB:
 * BIOS 1, ESP 1+4, /boot 1+4+33, root 1+4+33+32.
 */
static void make_sep_boot_disk(struct fix *f, const char *boot_spec)
{
	assert_int_equal(sh("set -e; cd %s; rm -rf tree btree; mkdir -p tree/etc tree/boot "
			    "tree/usr/lib btree/grub; printf '%%s' '%s' > tree/usr/lib/os-release; "
			    "ln -s ../usr/lib/os-release tree/etc/os-release; "
			    "printf 'LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\\n"
			    "# /boot below\\n%s /boot ext4 defaults 0 2\\n"
			    "LABEL=UEFI /boot/efi vfat umask=0077 0 1\\n' > tree/etc/fstab; "
			    "echo guest > tree/etc/hostname; "
			    "echo 'linux /vmlinuz root=LABEL=cloudimg-rootfs ro' > btree/grub/grub.cfg; "
			    "head -c 200000 /dev/urandom > btree/vmlinuz-6.8.0-test; "
			    "head -c 100000 /dev/urandom > btree/initrd.img-6.8.0-test",
			    f->dir, DEBIAN, boot_spec), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; set -e; cd %s; "
			    "rm -f root.img boot.img esp.img bios.img disk.raw; "
			    "mke2fs -q -t ext4 -b 4096 -L cloudimg-rootfs -d tree root.img %uM; "
			    "mke2fs -q -t ext4 -L BOOT -U %s -d btree boot.img %uM; "
			    "truncate -s %uM esp.img; mkfs.vfat -F 32 esp.img >/dev/null; "
			    "head -c 50000 /dev/urandom > efi.bin; export MTOOLS_SKIP_CHECK=1; "
			    "mmd -i esp.img ::/EFI ::/EFI/BOOT; "
			    "mcopy -i esp.img efi.bin ::/EFI/BOOT/BOOTX64.EFI; "
			    "head -c 100000 /dev/urandom > bios.img; truncate -s %uM disk.raw; "
			    "sgdisk --new=14:2048:+%uM -t 14:EF02 --new=15:0:+%uM -t 15:EF00 "
			    "--new=16:0:+%uM -t 16:8300 --new=1:0:+%uM -t 1:8304 disk.raw >/dev/null; "
			    "dd if=bios.img of=disk.raw bs=1M seek=1 conv=notrunc status=none; "
			    "dd if=esp.img of=disk.raw bs=1M seek=%u conv=notrunc,sparse status=none; "
			    "dd if=boot.img of=disk.raw bs=1M seek=%u conv=notrunc,sparse status=none; "
			    "dd if=root.img of=disk.raw bs=1M seek=%u conv=notrunc,sparse status=none",
			    f->dir, ROOT_MIB, SEP_BOOT_UUID, SEP_BOOT_MIB, ESP_MIB,
			    1 + SEP_BIOS_MIB + ESP_MIB + SEP_BOOT_MIB + ROOT_MIB + 1, SEP_BIOS_MIB,
			    ESP_MIB, SEP_BOOT_MIB, ROOT_MIB, 1 + SEP_BIOS_MIB,
			    1 + SEP_BIOS_MIB + ESP_MIB, 1 + SEP_BIOS_MIB + ESP_MIB + SEP_BOOT_MIB),
			 0);
	file_sha(f->disk, (1 + SEP_BIOS_MIB) * (uint64_t)MIB, ESP_MIB * MIB, f->esp_sha);
}

static void test_build_sep_boot(void **state)
{
	struct fix *f = *state;
	struct tdc_image_build_opts o;
	struct tdc_image_build_result r;
	struct tdc_error e = { 0 };
	struct tdc_gpt in, g;
	struct stat st;
	char p3[192], plain[192], vk[64];
	uint8_t d[32], boot_sha[32], bios_sha[32];
	size_t vklen = sizeof(vk);
	struct crypt_device *cd = NULL;
	const uint64_t boot_in = (1 + SEP_BIOS_MIB + ESP_MIB) * (uint64_t)MIB;
	int fd;

	if (!have_tools())
		skip();
	make_sep_boot_disk(f, "UUID=" SEP_BOOT_UUID);
	file_sha(f->disk, boot_in, SEP_BOOT_MIB * MIB, boot_sha);
	file_sha(f->disk, MIB, SEP_BIOS_MIB * MIB, bios_sha);
	assert_int_equal(stat(f->disk, &st), 0);
	fd = open(f->disk, O_RDONLY);
	assert_int_equal(tdc_gpt_read_fd(fd, (uint64_t)st.st_size, &in, &e), 0);
	close(fd);
	assert_int_equal(in.n, 4);

	base_opts(f, &o);
	o.boot_mib = 64; /* ignored: the input's /boot partition is kept as it is */
	assert_int_equal(tdc_image_build(&o, &r, &e), 0);
	assert_int_equal(r.in_root.index, 1);
	assert_int_equal(r.in_esp.index, 15);
	assert_string_equal(r.boot_fs_uuid, SEP_BOOT_UUID);
	assert_string_not_equal(r.root_fs_uuid, SEP_BOOT_UUID);

	/* ESP, /boot (same GUID), LUKS root, BIOS boot */
	assert_int_equal(stat(f->out, &st), 0);
	fd = open(f->out, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(tdc_gpt_read_fd(fd, (uint64_t)st.st_size, &g, &e), 0);
	close(fd);
	assert_int_equal(g.n, 4);
	assert_true(tdc_guid_equal(g.parts[0].type, TDC_GPT_TYPE_ESP));
	assert_true(tdc_guid_equal(g.parts[1].type, TDC_GPT_TYPE_LINUX_FS));
	assert_true(tdc_guid_equal(g.parts[2].type, TDC_GPT_TYPE_LUKS));
	assert_true(tdc_guid_equal(g.parts[3].type, TDC_GPT_TYPE_BIOS_BOOT));
	assert_true(tdc_guid_equal(g.parts[1].guid, in.parts[3].guid)); /* entry 16 (1, 14, 15, 16) */
	assert_true(tdc_guid_equal(g.parts[3].guid, in.parts[1].guid)); /* entry 14 */
	assert_true(g.parts[2].first_lba > g.parts[1].last_lba &&
		    g.parts[2].first_lba > g.parts[3].last_lba); /* the root stays last */
	file_sha(f->out, r.esp.offset, r.esp.size, d);
	assert_memory_equal(d, f->esp_sha, 32);
	assert_int_equal(r.boot.size, SEP_BOOT_MIB * MIB);
	file_sha(f->out, r.boot.offset, r.boot.size, d);
	assert_memory_equal(d, boot_sha, 32);
	assert_int_equal((g.parts[3].last_lba - g.parts[3].first_lba + 1) * TDC_GPT_SECTOR,
			 SEP_BIOS_MIB * MIB);
	file_sha(f->out, g.parts[3].first_lba * TDC_GPT_SECTOR, SEP_BIOS_MIB * MIB, d);
	assert_memory_equal(d, bios_sha, 32);

	/* LUKS2 root: opens with the secret, decrypts to a clean ext4 with the fstab unchanged */
	snprintf(p3, sizeof(p3), "%s/p3", f->dir);
	extract(f->out, r.root.offset, r.root.size, p3);
	assert_int_equal(crypt_init(&cd, p3), 0);
	assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
	assert_string_equal(crypt_get_uuid(cd), r.luks_uuid);
	assert_int_equal(crypt_volume_key_get(cd, 0, vk, &vklen, (const char *)f->secret,
					      sizeof(f->secret)), 0);
	crypt_free(cd);
	struct tdc_xts *x = NULL;
	uint8_t *buf = malloc(MIB);
	int src = open(p3, O_RDONLY), out;

	snprintf(plain, sizeof(plain), "%s/plain", f->dir);
	out = open(plain, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(src >= 0 && out >= 0 && buf);
	assert_int_equal(tdc_xts_new(&x, (const uint8_t *)vk, NULL), 0);
	for (uint64_t off = 0; off < ROOT_MIB * MIB; off += MIB) {
		assert_int_equal(pread(src, buf, MIB, (off_t)(TDC_IMAGE_DATA_OFFSET + off)), MIB);
		assert_int_equal(tdc_xts_decrypt(x, buf, MIB / 4096, off / 4096, NULL), 0);
		assert_int_equal(pwrite(out, buf, MIB, (off_t)off), MIB);
	}
	tdc_xts_free(x);
	free(buf);
	close(src);
	close(out);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; e2fsck -fn %s >/dev/null 2>&1", plain), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; debugfs -R 'cat /etc/fstab' %s "
			    "2>/dev/null | grep -q '^UUID=%s /boot ext4'", plain, SEP_BOOT_UUID),
			 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; dumpe2fs -h %s 2>/dev/null | "
			    "grep -q 'UUID: *%s'", plain, r.root_fs_uuid), 0);
}

/* The /boot of fstab by label and by PARTUUID; and each refusal of find_boot_part. */
static void test_build_sep_boot_specs(void **state)
{
	struct fix *f = *state;
	struct tdc_image_build_opts o;
	struct tdc_image_build_result r;
	struct tdc_error e = { 0 };
	struct tdc_gpt in;
	struct stat st;
	char spec[64], guid[37];
	int fd;

	if (!have_tools())
		skip();
	base_opts(f, &o);
	make_sep_boot_disk(f, "LABEL=BOOT");
	assert_int_equal(tdc_image_build(&o, &r, &e), 0);
	assert_string_equal(r.boot_fs_uuid, SEP_BOOT_UUID);
	unlink(f->out);

	make_sep_boot_disk(f, "/dev/sda16");
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "unsupported source");
	make_sep_boot_disk(f, "UUID=3f2504e0-4f89-41d3-9a0c-0305e82c3302");
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "no ext4 partition");
	make_sep_boot_disk(f, "LABEL=cloudimg-rootfs"); /* the root itself is no /boot */
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "no ext4 partition");
	make_sep_boot_disk(f, "LABEL=BOOT /boot ext4 defaults 0 2\\nLABEL=BOOT");
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "mounts /boot twice");

	/* PARTUUID: the GUID sgdisk gave entry 16 */
	make_sep_boot_disk(f, "UUID=" SEP_BOOT_UUID);
	assert_int_equal(stat(f->disk, &st), 0);
	fd = open(f->disk, O_RDONLY);
	assert_int_equal(tdc_gpt_read_fd(fd, (uint64_t)st.st_size, &in, &e), 0);
	close(fd);
	snprintf(spec, sizeof(spec), "PARTUUID=%s", tdc_guid_format(in.parts[3].guid, guid));
	make_sep_boot_disk(f, spec);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; sgdisk -u 16:%s %s >/dev/null", guid,
			    f->disk), 0);
	assert_int_equal(tdc_image_build(&o, &r, &e), 0);
	assert_string_equal(r.boot_fs_uuid, SEP_BOOT_UUID);
}

/* ---- GPT parser, check by check ---- */

static uint8_t *gpt_disk(size_t *len, struct tdc_gpt *g)
{
	/* write a table with our writer into a 4 MiB memory file, return its prefix */
	char path[] = "/tmp/tdc-gpt-XXXXXX";
	int fd = mkstemp(path);
	uint8_t *buf = malloc(TDC_GPT_PREFIX);

	assert_true(fd >= 0 && buf);
	unlink(path);
	assert_int_equal(ftruncate(fd, 4 * MIB), 0);
	memset(g, 0, sizeof(*g));
	g->n = 2;
	memcpy(g->parts[0].type, TDC_GPT_TYPE_ESP, 16);
	g->parts[0].first_lba = 2048;
	g->parts[0].last_lba = 4095;
	snprintf(g->parts[0].name, sizeof(g->parts[0].name), "esp");
	memcpy(g->parts[1].type, TDC_GPT_TYPE_LINUX_FS, 16);
	g->parts[1].first_lba = 4096;
	g->parts[1].last_lba = 6143;
	assert_int_equal(tdc_guid_random(g->parts[1].guid, NULL), 0);
	assert_int_equal(tdc_gpt_write_fd(fd, 4 * MIB, g, NULL), 0);
	*len = 2 * 512 + 128 * 128;
	assert_int_equal(pread(fd, buf, *len, 0), (ssize_t)*len);
	close(fd);
	return buf;
}

static void fix_header_crc(uint8_t *buf)
{
	uint32_t c;

	memset(buf + 512 + 16, 0, 4);
	c = tdc_crc32(buf + 512, 92);
	for (int i = 0; i < 4; i++)
		buf[512 + 16 + i] = (uint8_t)(c >> (8 * i));
}

static void test_gpt_parse(void **state)
{
	struct tdc_gpt w, g;
	struct tdc_error e;
	size_t len;
	uint8_t *buf = gpt_disk(&len, &w);
	char s[37];

	(void)state;
	memset(&e, 0, sizeof(e));
	assert_int_equal(tdc_gpt_parse(buf, len, 4 * MIB, &g, &e), 0);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.parts[0].index, 1);
	assert_string_equal(g.parts[0].name, "esp");
	assert_int_equal(g.parts[1].first_lba, 4096);
	assert_memory_equal(g.parts[1].guid, w.parts[1].guid, 16);
	assert_string_equal(tdc_guid_format(TDC_GPT_TYPE_ESP, s),
			    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
	uint8_t back[16];
	assert_int_equal(tdc_guid_parse(s, back), 0);
	assert_memory_equal(back, TDC_GPT_TYPE_ESP, 16);
	assert_int_equal(tdc_guid_parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93z", back), TDC_E_FORMAT);

#define EXPECT(code, off)                                                           \
	do {                                                                        \
		memset(&e, 0, sizeof(e));                                           \
		assert_int_equal(tdc_gpt_parse(bad, len, 4 * MIB, &g, &e), code);   \
		if ((off) != TDC_NO_OFFSET)                                         \
			assert_int_equal(e.offset, (size_t)(off));                  \
	} while (0)
	uint8_t *bad = malloc(len);

	/* no MBR signature */
	memcpy(bad, buf, len);
	bad[510] = 0;
	EXPECT(TDC_E_FORMAT, 510);
	/* MBR without a protective partition */
	memcpy(bad, buf, len);
	bad[446 + 4] = 0x83;
	EXPECT(TDC_E_FORMAT, 446);
	/* header signature */
	memcpy(bad, buf, len);
	bad[512] = 'X';
	EXPECT(TDC_E_FORMAT, 512);
	/* header CRC */
	memcpy(bad, buf, len);
	bad[512 + 40] ^= 1;
	EXPECT(TDC_E_FORMAT, 528);
	/* header size */
	memcpy(bad, buf, len);
	bad[512 + 12] = 10;
	fix_header_crc(bad);
	EXPECT(TDC_E_FORMAT, 524);
	/* my_lba */
	memcpy(bad, buf, len);
	bad[512 + 24] = 2;
	fix_header_crc(bad);
	EXPECT(TDC_E_FORMAT, 536);
	/* last usable beyond the disk */
	memcpy(bad, buf, len);
	bad[512 + 48 + 3] = 0x10;
	fix_header_crc(bad);
	EXPECT(TDC_E_FORMAT, 552);
	/* entry count over the cap */
	memcpy(bad, buf, len);
	bad[512 + 80] = 0;
	bad[512 + 81] = 0x10; /* 4096 entries */
	fix_header_crc(bad);
	EXPECT(TDC_E_LIMIT, TDC_NO_OFFSET);
	/* entry size not a power of two */
	memcpy(bad, buf, len);
	bad[512 + 84] = 200;
	fix_header_crc(bad);
	EXPECT(TDC_E_FORMAT, 596);
	/* entry array elsewhere */
	memcpy(bad, buf, len);
	bad[512 + 72] = 100;
	fix_header_crc(bad);
	EXPECT(TDC_E_FORMAT, 584);
	/* entry array CRC */
	memcpy(bad, buf, len);
	bad[1024 + 40] ^= 1;
	EXPECT(TDC_E_FORMAT, 1024);
	/* partition beyond the usable area (array CRC fixed up) */
	uint32_t c;

	memcpy(bad, buf, len);
	bad[1024 + 128 + 40 + 3] = 0x01; /* partition 2 last LBA += 2^24 */
	c = tdc_crc32(bad + 1024, 128 * 128);
	for (int i = 0; i < 4; i++)
		bad[512 + 88 + i] = (uint8_t)(c >> (8 * i));
	fix_header_crc(bad);
	EXPECT(TDC_E_FORMAT, 1024 + 128);
	/* overlapping partitions */
	memcpy(bad, buf, len);
	bad[1024 + 128 + 32] = 0x00;
	bad[1024 + 128 + 33] = 0x0f; /* partition 2 starts at 3840, inside partition 1 */
	c = tdc_crc32(bad + 1024, 128 * 128);
	for (int i = 0; i < 4; i++)
		bad[512 + 88 + i] = (uint8_t)(c >> (8 * i));
	fix_header_crc(bad);
	EXPECT(TDC_E_FORMAT, 1024 + 128);
	/* truncated prefix: entry array not inside the buffer */
	memset(&e, 0, sizeof(e));
	assert_int_equal(tdc_gpt_parse(buf, 1024 + 100, 4 * MIB, &g, &e), TDC_E_FORMAT);
	/* too small to be a disk */
	memset(&e, 0, sizeof(e));
	assert_int_equal(tdc_gpt_parse(buf, len, 1024, &g, &e), TDC_E_FORMAT);
#undef EXPECT
	free(bad);
	free(buf);
}

static void test_gpt_4k(void **state)
{
	/* a 4096-byte-sector GPT: PMBR at 0, header at 4096 */
	uint8_t *buf = calloc(1, 8192 + 512);
	struct tdc_gpt g;
	struct tdc_error e = { 0 };

	(void)state;
	buf[510] = 0x55;
	buf[511] = 0xaa;
	buf[446 + 4] = 0xee;
	memcpy(buf + 4096, "EFI PART", 8);
	assert_int_equal(tdc_gpt_parse(buf, 8192 + 512, 4 * MIB, &g, &e), TDC_E_UNSUPPORTED);
	free(buf);
}

static void test_os_release(void **state)
{
	struct tdc_os_release o;
	struct tdc_error e = { 0 };
	static const char ubuntu[] = "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n";
	static const char rocky[] = "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"";
	static const char mint[] = "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n";
	static const char odd[] = "# comment\nnoequals\nID='plan9'\n\n";

	(void)state;
	assert_int_equal(tdc_os_release_parse((const uint8_t *)DEBIAN, strlen(DEBIAN), &o, &e), 0);
	assert_string_equal(o.id, "debian");
	assert_string_equal(o.version_id, "12");
	assert_string_equal(o.pretty_name, "Debian GNU/Linux 12 (bookworm)");
	assert_int_equal(o.family, TDC_FAMILY_DEBIAN);
	assert_int_equal(tdc_os_release_parse((const uint8_t *)ubuntu, strlen(ubuntu), &o, &e), 0);
	assert_int_equal(o.family, TDC_FAMILY_DEBIAN);
	assert_int_equal(tdc_os_release_parse((const uint8_t *)rocky, strlen(rocky), &o, &e), 0);
	assert_string_equal(o.id, "rocky");
	assert_string_equal(o.version_id, "9.4");
	assert_int_equal(o.family, TDC_FAMILY_RHEL);
	assert_int_equal(tdc_os_release_parse((const uint8_t *)mint, strlen(mint), &o, &e), 0);
	assert_int_equal(o.family, TDC_FAMILY_DEBIAN);
	assert_int_equal(tdc_os_release_parse((const uint8_t *)odd, strlen(odd), &o, &e), 0);
	assert_string_equal(o.id, "plan9");
	assert_int_equal(o.family, TDC_FAMILY_UNKNOWN);
	assert_string_equal(tdc_distro_family_name(o.family), "unknown");
	uint8_t *big = calloc(1, TDC_MAX_OS_RELEASE + 1);

	assert_int_equal(tdc_os_release_parse(big, TDC_MAX_OS_RELEASE + 1, &o, &e), TDC_E_LIMIT);
	free(big);
}

/* ---- roots that are not ext4: probed by superblock, encrypted whole (fsprobe.h) ---- */

#define XFS_ROOT_MIB 64u
/* mkfs.xfs refuses filesystems below 300 MB unless it believes it runs under xfstests */
#define MKFS_XFS "TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 mkfs.xfs -q -f -K"

static bool have_xfs_tools(void)
{
	return have_tools() &&
	       sh("PATH=$PATH:/usr/sbin:/sbin; command -v mkfs.xfs >/dev/null && "
		  "command -v blkid >/dev/null") == 0;
}

static int probe_file(const char *path, uint64_t len, struct tdc_image_fs_probe *p,
		      struct tdc_error *e)
{
	int fd = open(path, O_RDONLY), r;

	assert_true(fd >= 0);
	r = tdc_image_fs_probe(fd, 0, len, p, e);
	close(fd);
	return r;
}

/* The UUID blkid reads. */
static void blkid_uuid(const char *path, char text[64])
{
	char cmd[300];
	FILE *pp;

	snprintf(cmd, sizeof(cmd), "PATH=$PATH:/usr/sbin:/sbin blkid -p -o value -s UUID %s",
		 path);
	pp = popen(cmd, "r");
	assert_non_null(pp);
	assert_non_null(fgets(text, 64, pp));
	pclose(pp);
	text[strcspn(text, "\n")] = '\0';
}

static void assert_uuid(const uint8_t u[16], const char *path)
{
	char want[64] = "", got[37];

	blkid_uuid(path, want);
	assert_string_equal(tdc_uuid_format(u, got), want);
}

/* Writes n bytes of v at off of path. */
static void poke(const char *path, uint64_t off, const void *v, size_t n)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, v, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static void test_fs_probe(void **state)
{
	struct fix *f = *state;
	struct tdc_image_fs_probe p;
	struct tdc_error e = { 0 };
	char img[160];
	const uint64_t len = XFS_ROOT_MIB * (uint64_t)MIB;

	if (!have_xfs_tools())
		skip();
	snprintf(img, sizeof(img), "%s/fs.img", f->dir);
	/* XFS: type, size, UUID as blkid reads them */
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; set -e; rm -f %s; truncate -s %uM %s; "
			    MKFS_XFS " %s", img, XFS_ROOT_MIB, img, img), 0);
	assert_int_equal(probe_file(img, len, &p, &e), 0);
	assert_int_equal(p.type, TDC_FS_XFS);
	assert_string_equal(tdc_image_fs_name(p.type), "xfs");
	assert_true(p.size > 0 && p.size <= len && p.size % 4096 == 0);
	assert_uuid(p.uuid, img);
	/* larger than its partition */
	assert_int_equal(probe_file(img, p.size - 4096, &p, &e), TDC_E_FORMAT);
	assert_non_null(strstr(e.reason, "larger than its partition"));
	/* a block size that is not a power of two: no valid size */
	poke(img, 4, "\x00\x00\x10\x01", 4);
	e = (struct tdc_error){ 0 };
	assert_int_equal(probe_file(img, len, &p, &e), TDC_E_FORMAT);
	assert_non_null(strstr(e.reason, "no valid size"));
	poke(img, 4, "\x00\x00\x10\x00", 4);
	assert_int_equal(probe_file(img, len, &p, &e), 0);
	/* an ext4 signature left over under it: ambiguous, refused */
	poke(img, 1024 + 0x38, "\x53\xef", 2);
	e = (struct tdc_error){ 0 };
	assert_int_equal(probe_file(img, len, &p, &e), TDC_E_FORMAT);
	assert_non_null(strstr(e.reason, "two filesystem signatures"));
	poke(img, 1024 + 0x38, "\0\0", 2);
	assert_int_equal(probe_file(img, len, &p, &e), 0);
	assert_int_equal(p.type, TDC_FS_XFS);
	/* magic gone: unknown, not an error */
	poke(img, 0, "XFSC", 4);
	assert_int_equal(probe_file(img, len, &p, &e), 0);
	assert_int_equal(p.type, TDC_FS_UNKNOWN);
	/* ext4 */
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; set -e; rm -f %s; "
			    "mke2fs -q -t ext4 -b 4096 %s 40M", img, img), 0);
	assert_int_equal(probe_file(img, len, &p, &e), 0);
	assert_int_equal(p.type, TDC_FS_EXT4);
	assert_int_equal(p.size, 40u * MIB);
	assert_uuid(p.uuid, img);
	/* btrfs, when its mkfs is installed */
	if (sh("PATH=$PATH:/usr/sbin:/sbin; command -v mkfs.btrfs >/dev/null") == 0) {
		/* its smallest filesystem is 109 MiB */
		assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; set -e; rm -f %s; "
				    "truncate -s 128M %s; mkfs.btrfs -q %s", img, img, img), 0);
		assert_int_equal(probe_file(img, 128u * MIB, &p, &e), 0);
		assert_int_equal(p.type, TDC_FS_BTRFS);
		assert_int_equal(p.size, 128u * MIB);
		assert_uuid(p.uuid, img);
		poke(img, 65536 + 0x40, "_BHRfS_X", 8);
		assert_int_equal(probe_file(img, 128u * MIB, &p, &e), 0);
		assert_int_equal(p.type, TDC_FS_UNKNOWN);
	}
	/* random bytes, and a partition too short for any superblock */
	assert_int_equal(sh("head -c 1M /dev/urandom > %s", img), 0);
	assert_int_equal(probe_file(img, MIB, &p, &e), 0);
	assert_int_equal(p.type, TDC_FS_UNKNOWN);
	assert_int_equal(probe_file(img, 100, &p, &e), 0);
	assert_int_equal(p.type, TDC_FS_UNKNOWN);
}

/*
 * ESP (1), ext4 /boot (2, SEP_BOOT_UUID), XFS root (3) made without a mount over random bytes
 * with -K (no discard), so the free space is not zero: a whole-partition encryption must carry
 * it too. with_boot false: no /boot partition. Returns the root's offset.
 */
static uint64_t make_xfs_disk(struct fix *f, bool with_boot)
{
	const unsigned boot_mib = with_boot ? SEP_BOOT_MIB : 0;

	assert_int_equal(sh("set -e; cd %s; rm -rf btree; mkdir -p btree/grub; "
			    "echo 'linux /vmlinuz root=/dev/sda3 ro' > btree/grub/grub.cfg; "
			    "head -c 200000 /dev/urandom > btree/vmlinuz-6.1.0-test", f->dir), 0);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; set -e; cd %s; "
			    "rm -f root.img boot.img esp.img disk.raw; "
			    "head -c %uM /dev/urandom > root.img; " MKFS_XFS " root.img; "
			    "mke2fs -q -t ext4 -L BOOT -U %s -d btree boot.img %uM; "
			    "truncate -s %uM esp.img; mkfs.vfat -F 32 esp.img >/dev/null; "
			    "head -c 50000 /dev/urandom > efi.bin; export MTOOLS_SKIP_CHECK=1; "
			    "mmd -i esp.img ::/EFI ::/EFI/BOOT; "
			    "mcopy -i esp.img efi.bin ::/EFI/BOOT/BOOTX64.EFI; "
			    "truncate -s %uM disk.raw; sgdisk --new=1:2048:+%uM -t 1:EF00 %s "
			    "--new=3:0:+%uM -t 3:8304 disk.raw >/dev/null; "
			    "dd if=esp.img of=disk.raw bs=1M seek=1 conv=notrunc,sparse status=none; "
			    "if [ %u != 0 ]; then dd if=boot.img of=disk.raw bs=1M seek=%u "
			    "conv=notrunc,sparse status=none; fi; "
			    "dd if=root.img of=disk.raw bs=1M seek=%u conv=notrunc status=none",
			    f->dir, XFS_ROOT_MIB, SEP_BOOT_UUID, SEP_BOOT_MIB, ESP_MIB,
			    1 + ESP_MIB + boot_mib + XFS_ROOT_MIB + 1, ESP_MIB,
			    with_boot ? "--new=2:0:+32M -t 2:8300" : "", XFS_ROOT_MIB, boot_mib,
			    1 + ESP_MIB, 1 + ESP_MIB + boot_mib), 0);
	file_sha(f->disk, MIB, ESP_MIB * MIB, f->esp_sha);
	return (1 + ESP_MIB + boot_mib) * (uint64_t)MIB;
}

/* LUKS2 partition at off of path: the volume key of keyslot 0 with f's secret. */
static struct tdc_xts *open_luks(struct fix *f, const char *path, uint64_t off, uint64_t len)
{
	char part[192], vk[64];
	size_t vklen = sizeof(vk);
	struct crypt_device *cd = NULL;
	struct tdc_xts *x = NULL;

	snprintf(part, sizeof(part), "%s/luks-part", f->dir);
	extract(path, off, TDC_IMAGE_DATA_OFFSET, part);
	assert_int_equal(sh("truncate -s %llu %s", (unsigned long long)len, part), 0);
	assert_int_equal(crypt_init(&cd, part), 0);
	assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
	assert_int_equal(crypt_volume_key_get(cd, 0, vk, &vklen, (const char *)f->secret,
					      sizeof(f->secret)), 0);
	crypt_free(cd);
	assert_int_equal(tdc_xts_new(&x, (const uint8_t *)vk, NULL), 0);
	return x;
}

static void test_build_xfs_whole(void **state)
{
	struct fix *f = *state;
	struct tdc_image_build_opts o;
	struct tdc_image_build_result r;
	struct tdc_error e = { 0 };
	const uint64_t root_in = make_xfs_disk(f, true), len = XFS_ROOT_MIB * (uint64_t)MIB;
	uint8_t *in = malloc(MIB), *out = malloc(MIB), d[32], boot_sha[32];
	char uuid_text[64] = "", sample[192];
	int fin, fout;

	if (!have_xfs_tools())
		skip();
	assert_non_null(in);
	assert_non_null(out);
	snprintf(sample, sizeof(sample), "%s/root.img", f->dir);
	blkid_uuid(sample, uuid_text);
	file_sha(f->disk, (1 + ESP_MIB) * (uint64_t)MIB, SEP_BOOT_MIB * MIB, boot_sha);

	base_opts(f, &o);
	assert_int_equal(tdc_image_build(&o, &r, &e), 0);
	assert_string_equal(r.root_fs, "xfs");
	assert_string_equal(r.encrypted, "whole-partition");
	assert_non_null(strstr(r.encrypted_reason, "xfs root"));
	assert_int_equal(r.in_root.index, 3);
	assert_int_equal(r.root_fs_blocks, len / 4096);
	assert_int_equal(r.root_used_blocks, len / 4096); /* every block, in use or not */
	assert_string_equal(r.root_fs_uuid, uuid_text);    /* kept: /boot has its own */
	assert_string_equal(r.boot_fs_uuid, SEP_BOOT_UUID);
	assert_int_equal(r.root.size, TDC_IMAGE_DATA_OFFSET + len);
	file_sha(f->out, r.esp.offset, r.esp.size, d);
	assert_memory_equal(d, f->esp_sha, 32);
	file_sha(f->out, r.boot.offset, r.boot.size, d);
	assert_memory_equal(d, boot_sha, 32);

	/* each 1 MiB of the data area decrypts to the input partition's bytes, the XFS
	 * superblock and the random free space alike; and it is ciphertext, not a copy */
	struct tdc_xts *x = open_luks(f, f->out, r.root.offset, r.root.size);

	fin = open(f->disk, O_RDONLY);
	fout = open(f->out, O_RDONLY);
	assert_true(fin >= 0 && fout >= 0);
	for (uint64_t off = 0; off < len; off += MIB) {
		assert_int_equal(pread(fin, in, MIB, (off_t)(root_in + off)), MIB);
		assert_int_equal(pread(fout, out, MIB, (off_t)(r.root.offset +
							      TDC_IMAGE_DATA_OFFSET + off)), MIB);
		assert_memory_not_equal(in, out, 4096);
		assert_int_equal(tdc_xts_decrypt(x, out, MIB / 4096, off / 4096, NULL), 0);
		if (memcmp(in, out, MIB) != 0)
			fail_msg("root MiB %llu does not decrypt to the input",
				 (unsigned long long)(off / MIB));
	}
	/* and the check above can fail: one flipped ciphertext byte */
	assert_int_equal(pread(fout, out, 4096, (off_t)(r.root.offset + TDC_IMAGE_DATA_OFFSET)),
			 4096);
	out[100] ^= 1;
	assert_int_equal(tdc_xts_decrypt(x, out, 1, 0, NULL), 0);
	assert_int_equal(pread(fin, in, 4096, (off_t)root_in), 4096);
	assert_memory_not_equal(in, out, 4096);
	assert_memory_equal(in, "XFSB", 4);
	tdc_xts_free(x);
	close(fin);
	close(fout);
	free(in);
	free(out);
}

static void test_build_xfs_refused(void **state)
{
	struct fix *f = *state;
	struct tdc_image_build_opts o;
	const char *brokers[] = { "https://127.0.0.1:1" };
	struct tdc_error e = { 0 };
	struct tdc_image_build_result r;

	if (!have_xfs_tools())
		skip();
	/* the guest step reads the root with libext2fs: refused before any work, both steps */
	make_xfs_disk(f, true);
	base_opts(f, &o);
	o.no_guest = false;
	o.secret_id = "vm1";
	o.brokers = brokers;
	o.n_brokers = 1;
	o.pins = (const char *[]){ "sha384:00" };
	o.n_pins = 1;
	o.agent_path = "/bin/sh";
	o.guest_dir = f->dir;
	o.guest_step = TDC_GUEST_STEP_CHROOT;
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "guest step needs an ext4 root");
	o.guest_step = TDC_GUEST_STEP_VM;
	assert_int_equal(tdc_image_build(&o, &r, &e), TDC_E_UNSUPPORTED);
	assert_non_null(strstr(e.detail, "root filesystem xfs"));
	assert_no_output(f);
	/* layout only without a /boot partition: the XFS root's /boot cannot be read */
	make_xfs_disk(f, false);
	base_opts(f, &o);
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "needs its own ext4 /boot partition");
	/* a second ext4 partition: which one is /boot is not guessed */
	make_xfs_disk(f, true);
	assert_int_equal(sh("PATH=$PATH:/usr/sbin:/sbin; set -e; cd %s; truncate -s +%uM disk.raw; "
			    "sgdisk -e --new=4:0:+%uM -t 4:8300 disk.raw >/dev/null; "
			    "dd if=boot.img of=disk.raw bs=1M seek=%u conv=notrunc,sparse status=none",
			    f->dir, SEP_BOOT_MIB + 1, SEP_BOOT_MIB,
			    1 + ESP_MIB + SEP_BOOT_MIB + XFS_ROOT_MIB), 0);
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "several ext4 partitions");
	/* an unknown filesystem in the root partition: refused, naming the partition */
	make_xfs_disk(f, true);
	poke(f->disk, (1 + ESP_MIB + SEP_BOOT_MIB) * (uint64_t)MIB, "XFSC", 4);
	e = (struct tdc_error){ 0 };
	assert_int_equal(tdc_image_build(&o, &r, &e), TDC_E_FORMAT);
	assert_non_null(strstr(e.reason, "no filesystem tdcrypt can encrypt"));
	assert_non_null(strstr(e.detail, "partition 3"));
	assert_no_output(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gpt_parse),
		cmocka_unit_test(test_gpt_4k),
		cmocka_unit_test(test_os_release),
		cmocka_unit_test_setup_teardown(test_build_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_direct_nocsum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_qcow2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_out_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_out_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_no_boot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_sep_boot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_sep_boot_specs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fs_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_xfs_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_xfs_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
