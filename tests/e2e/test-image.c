/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of lib/image: the LUKS2 XTS tweak convention and tdc_image_encrypt_ext4.
 * The encrypt tests make small ext4 images with e2fsprogs (mke2fs, debugfs); skipped without. */
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
#include <ext2fs/ext2fs.h>
#include <libcryptsetup.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "image/encrypt.h"
#include "image/overlay.h"
#include "image/xts.h"
#include "util/util.h"

extern char **environ;

/* Volume key and ciphertext digests of zero sectors 0 and 5, produced by libcryptsetup 2.6.1's
 * own offline encryption (crypt_reencrypt_run, LUKS2, aes-xts-plain64, sector 4096). */
static const char KAT_VK[] =
	"3d632d28c3db7e8ff1edf2c216e36c4555aeb7f09169514818ab203836d92a04"
	"f72f8dc5178607b91ad6885d2cb536b1547eed57222cc1073edb21171ae5cb7a";
static const char KAT_S0[] = "f1239c5ca96364b16ef3d4d35660a2fccafe6dbc9252d028ca6355b6c80bb637";
static const char KAT_S5[] = "1a85b28b292e2f3cc82b6f86f41dc1ae34be0e14e7502aa4d6e16936d622a057";

static void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 0;

	assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
}

static void assert_hex(const uint8_t *got, size_t n, const char *hex)
{
	char buf[129];

	assert_true(n * 2 < sizeof(buf));
	assert_string_equal(tdc_hex_encode(got, n, buf), hex);
}

static void test_xts_kat(void **state)
{
	uint8_t vk[64], d[32];
	uint8_t *buf = calloc(6, TDC_XTS_SECTOR);
	struct tdc_xts *x = NULL;
	struct tdc_error e;

	(void)state;
	assert_non_null(buf);
	assert_int_equal(tdc_hex_decode(KAT_VK, strlen(KAT_VK), vk, sizeof(vk), "vk", NULL), 0);
	assert_int_equal(tdc_xts_new(&x, vk, &e), 0);
	assert_int_equal(tdc_xts_encrypt(x, buf, 6, 0, &e), 0);
	sha256(buf, TDC_XTS_SECTOR, d);
	assert_hex(d, 32, KAT_S0);
	sha256(buf + 5 * TDC_XTS_SECTOR, TDC_XTS_SECTOR, d);
	assert_hex(d, 32, KAT_S5);
	/* the same sector encrypted alone, with its index, gives the same ciphertext */
	memset(buf, 0, TDC_XTS_SECTOR);
	assert_int_equal(tdc_xts_encrypt(x, buf, 1, 5, &e), 0);
	sha256(buf, TDC_XTS_SECTOR, d);
	assert_hex(d, 32, KAT_S5);
	tdc_xts_free(x);
	free(buf);
}

static void test_xts_roundtrip(void **state)
{
	uint8_t key[64];
	uint8_t *a = malloc(3 * TDC_XTS_SECTOR), *b = malloc(3 * TDC_XTS_SECTOR);
	struct tdc_xts *x = NULL;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
	assert_int_equal(RAND_bytes(a, 3 * TDC_XTS_SECTOR), 1);
	memcpy(b, a, 3 * TDC_XTS_SECTOR);
	assert_int_equal(tdc_xts_new(&x, key, NULL), 0);
	assert_int_equal(tdc_xts_encrypt(x, b, 3, 7, NULL), 0);
	assert_memory_not_equal(a, b, TDC_XTS_SECTOR);
	assert_int_equal(tdc_xts_decrypt(x, b, 3, 7, NULL), 0);
	assert_memory_equal(a, b, 3 * TDC_XTS_SECTOR);
	/* wrong sector number: the tweak matters */
	assert_int_equal(tdc_xts_encrypt(x, b, 1, 7, NULL), 0);
	assert_int_equal(tdc_xts_decrypt(x, b, 1, 8, NULL), 0);
	assert_memory_not_equal(a, b, TDC_XTS_SECTOR);
	tdc_xts_free(x);
	free(a);
	free(b);
}

static void test_xts_errors(void **state)
{
	uint8_t key[64], buf[TDC_XTS_SECTOR] = { 0 };
	struct tdc_xts *x = NULL;
	struct tdc_error e;

	(void)state;
	tdc_error_clear(&e);
	assert_int_equal(tdc_xts_new(&x, NULL, &e), TDC_E_USAGE);
	assert_null(x);
	/* OpenSSL rejects XTS keys with two equal halves */
	memset(key, 0x11, sizeof(key));
	tdc_error_clear(&e);
	assert_int_equal(tdc_xts_new(&x, key, &e), TDC_E_CRYPTO);
	assert_null(x);
	key[0] = 0x12;
	assert_int_equal(tdc_xts_new(&x, key, NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_xts_encrypt(x, buf, 1, UINT64_MAX / 8, &e), TDC_E_USAGE);
	tdc_error_clear(&e);
	assert_int_equal(tdc_xts_encrypt(x, NULL, 1, 0, &e), TDC_E_USAGE);
	tdc_error_clear(&e);
	assert_int_equal(tdc_xts_decrypt(NULL, buf, 1, 0, &e), TDC_E_USAGE);
	tdc_xts_free(x);
	tdc_xts_free(NULL);
}

/* ---- encrypt --------------------------------------------------------------------------- */

struct fix {
	char dir[64];
	char src[128], out[128], tree[128];
	uint8_t secret[32];
};

static int run(const char *arg0, ...)
{
	const char *argv[16];
	posix_spawn_file_actions_t fa;
	va_list ap;
	pid_t pid;
	int n = 0, st = 0;

	argv[n++] = arg0;
	va_start(ap, arg0);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&pid, arg0, &fa, NULL, (char *const *)argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* An ext4 image (4 KiB blocks unless bs is given) holding a 300 KiB random file. */
static void make_fs(struct fix *f, const char *bs)
{
	char path[160];
	uint8_t *data = malloc(300 * 1024);

	assert_non_null(data);
	assert_int_equal(RAND_bytes(data, 300 * 1024), 1);
	snprintf(path, sizeof(path), "%s/data.bin", f->tree);
	write_file(path, data, 300 * 1024);
	free(data);
	assert_int_equal(run("mke2fs", "-F", "-q", "-t", "ext4", "-b", bs, "-d", f->tree, f->src,
			     "32M", NULL), 0);
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tdc-image-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->src, sizeof(f->src), "%s/fs.img", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/luks.img", f->dir);
	snprintf(f->tree, sizeof(f->tree), "%s/tree", f->dir);
	if (mkdir(f->tree, 0700) != 0 || RAND_bytes(f->secret, sizeof(f->secret)) != 1)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	run("rm", "-rf", f->dir, NULL);
	free(f);
	return 0;
}

static struct tdc_image_encrypt_opts opts(struct fix *f)
{
	return (struct tdc_image_encrypt_opts){
		.src = f->src, .out = f->out, .secret = f->secret, .secret_len = sizeof(f->secret),
	};
}

static int progress(uint64_t done, uint64_t total, void *arg)
{
	uint64_t *last = arg;

	assert_true(done <= total);
	assert_true(done > *last);
	*last = done;
	return 0;
}

/* Decrypts the output with the volume key libcryptsetup unwraps from keyslot 0 and checks every
 * block: in use -> equals the source; free -> a hole in the output. */
static void check_output(struct fix *f, uint64_t src_offset, const struct tdc_image_encrypt_result *r)
{
	struct crypt_device *cd = NULL;
	char vk[64];
	size_t vklen = sizeof(vk);
	uint8_t d[32], *hdr, a[TDC_XTS_SECTOR], b[TDC_XTS_SECTOR];
	struct tdc_xts *x = NULL;
	ext2_filsys fs = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len;
	uint64_t used = 0;
	int in, out;

	assert_int_equal(crypt_init(&cd, f->out), 0);
	assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
	assert_string_equal(crypt_get_cipher(cd), "aes");
	assert_string_equal(crypt_get_cipher_mode(cd), "xts-plain64");
	assert_int_equal(crypt_get_sector_size(cd), 4096);
	assert_int_equal(crypt_get_data_offset(cd), TDC_IMAGE_DATA_OFFSET / 512);
	assert_int_equal(crypt_get_volume_key_size(cd), 64);
	assert_string_equal(crypt_get_uuid(cd), r->uuid);
	assert_int_equal(crypt_volume_key_get(cd, CRYPT_ANY_SLOT, vk, &vklen, (const char *)f->secret,
					      sizeof(f->secret)), 0);
	crypt_free(cd);

	assert_non_null(md);
	assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(md, TDC_IMAGE_VK_TAG, sizeof(TDC_IMAGE_VK_TAG)), 1);
	assert_int_equal(EVP_DigestUpdate(md, vk, 64), 1);
	assert_int_equal(EVP_DigestFinal_ex(md, d, &len), 1);
	EVP_MD_CTX_free(md);
	assert_memory_equal(d, r->vk_sha256, 32);

	out = open(f->out, O_RDONLY);
	in = open(f->src, O_RDONLY);
	assert_true(out >= 0 && in >= 0);
	hdr = malloc(2 * TDC_IMAGE_LUKS_HDR_SIZE);
	assert_non_null(hdr);
	assert_int_equal(pread(out, hdr, 2 * TDC_IMAGE_LUKS_HDR_SIZE, 0), 2 * TDC_IMAGE_LUKS_HDR_SIZE);
	sha256(hdr, 2 * TDC_IMAGE_LUKS_HDR_SIZE, d);
	assert_memory_equal(d, r->header_sha256, 32);
	free(hdr);

	assert_int_equal(tdc_xts_new(&x, (const uint8_t *)vk, NULL), 0);
	if (src_offset) {
		char opt[40];

		snprintf(opt, sizeof(opt), "offset=%llu", (unsigned long long)src_offset);
		assert_int_equal(ext2fs_open2(f->src, opt, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs), 0);
	} else {
		assert_int_equal(ext2fs_open(f->src, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs), 0);
	}
	assert_int_equal(ext2fs_read_block_bitmap(fs), 0);
	assert_int_equal(r->fs_blocks, ext2fs_blocks_count(fs->super));
	assert_int_equal(r->out_size, TDC_IMAGE_DATA_OFFSET + r->fs_blocks * 4096);
	for (blk64_t blk = 0; blk < r->fs_blocks; blk++) {
		off_t pos = (off_t)(TDC_IMAGE_DATA_OFFSET + blk * 4096);

		if (ext2fs_test_block_bitmap2(fs->block_map, blk)) {
			used++;
			assert_int_equal(pread(in, a, 4096, (off_t)(src_offset + blk * 4096)), 4096);
			assert_int_equal(pread(out, b, 4096, pos), 4096);
			assert_int_equal(tdc_xts_decrypt(x, b, 1, blk, NULL), 0);
			assert_memory_equal(a, b, 4096);
		} else {
			off_t data = lseek(out, pos, SEEK_DATA);

			/* a hole here: the next data starts later (or there is none) */
			assert_true(data != pos);
		}
	}
	assert_int_equal(used, r->used_blocks);
	ext2fs_close_free(&fs);
	tdc_xts_free(x);
	close(in);
	close(out);
}

static int have_e2fsprogs(void)
{
	return run("mke2fs", "-V", NULL) == 0;
}

static void test_encrypt_roundtrip(void **state)
{
	struct fix *f = *state;
	struct tdc_image_encrypt_opts o = opts(f);
	struct tdc_image_encrypt_result r;
	struct tdc_error e;
	struct stat st;
	uint64_t last = 0;

	if (!have_e2fsprogs())
		skip();
	make_fs(f, "4096");
	o.uuid = "0b5c3f52-8a8e-4a5e-9d1c-6f2b7e0f1a11";
	o.progress = progress;
	o.progress_arg = &last;
	tdc_error_clear(&e);
	assert_int_equal(tdc_image_encrypt_ext4(&o, &r, &e), 0);
	assert_string_equal(r.uuid, o.uuid);
	assert_true(r.used_blocks > 75 && r.used_blocks < r.fs_blocks);
	assert_int_equal(last, r.used_blocks * 4096);
	assert_int_equal(stat(f->out, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* sparse: allocation is about header + in-use blocks, far below the file size */
	assert_true((uint64_t)st.st_blocks * 512 <= TDC_IMAGE_DATA_OFFSET + r.used_blocks * 4096 + 65536);
	check_output(f, 0, &r);
}

static void test_encrypt_offset(void **state)
{
	struct fix *f = *state;
	struct tdc_image_encrypt_opts o = opts(f);
	struct tdc_image_encrypt_result r;
	char disk[100];

	if (!have_e2fsprogs())
		skip();
	make_fs(f, "4096");
	/* the fs as partition 1 of a disk file, 1 MiB in */
	snprintf(disk, sizeof(disk), "%s/disk.raw", f->dir);
	{
		char ifarg[140], ofarg[140];

		snprintf(ifarg, sizeof(ifarg), "if=%s", f->src);
		snprintf(ofarg, sizeof(ofarg), "of=%s", disk);
		assert_int_equal(run("dd", ifarg, ofarg, "bs=1M", "seek=1", "conv=sparse", NULL), 0);
		assert_int_equal(truncate(disk, 40 * 1024 * 1024), 0);
		snprintf(f->src, sizeof(f->src), "%s", disk);
	}
	o.src = f->src;
	o.src_offset = 1024 * 1024;
	assert_int_equal(tdc_image_encrypt_ext4(&o, &r, NULL), 0);
	check_output(f, o.src_offset, &r);
}

static void expect_fail(struct fix *f, struct tdc_image_encrypt_opts *o, int code, const char *reason)
{
	struct tdc_image_encrypt_result r;
	struct tdc_error e;
	struct stat st;

	tdc_error_clear(&e);
	assert_int_equal(tdc_image_encrypt_ext4(o, &r, &e), code);
	assert_int_equal(e.code, code);
	if (reason)
		assert_string_equal(e.reason, reason);
	/* no half-written output is left behind */
	assert_int_equal(stat(f->out, &st), -1);
}

static void test_encrypt_errors(void **state)
{
	struct fix *f = *state;
	struct tdc_image_encrypt_opts o = opts(f);
	uint8_t junk[65536];

	if (!have_e2fsprogs())
		skip();
	/* arguments */
	o.secret_len = 31;
	expect_fail(f, &o, TDC_E_USAGE, "disk secret must be a random key of 32..512 bytes");
	o.secret_len = 513;
	expect_fail(f, &o, TDC_E_USAGE, "disk secret must be a random key of 32..512 bytes");
	o = opts(f);
	o.out = NULL;
	assert_int_equal(tdc_image_encrypt_ext4(&o, &(struct tdc_image_encrypt_result){ 0 }, NULL),
			 TDC_E_USAGE);
	o = opts(f);
	/* missing source */
	expect_fail(f, &o, TDC_E_IO, "cannot open source");
	/* not a filesystem */
	assert_int_equal(RAND_bytes(junk, sizeof(junk)), 1);
	write_file(f->src, junk, sizeof(junk));
	expect_fail(f, &o, TDC_E_FORMAT, "source is not an ext2/3/4 filesystem");
	/* 1 KiB blocks cannot map onto 4 KiB LUKS sectors */
	make_fs(f, "1024");
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "filesystem block size must be 4096");
	/* a journal that needs replay */
	make_fs(f, "4096");
	assert_int_equal(run("debugfs", "-w", "-R", "feature needs_recovery", f->src, NULL), 0);
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "filesystem journal needs recovery (run e2fsck)");
	/* marked with errors */
	make_fs(f, "4096");
	assert_int_equal(run("debugfs", "-w", "-R", "ssv state 3", f->src, NULL), 0);
	expect_fail(f, &o, TDC_E_UNSUPPORTED, "filesystem not clean (run e2fsck)");
	/* truncated image: in-use blocks past the end of the file */
	make_fs(f, "4096");
	assert_int_equal(truncate(f->src, 5 * 1024 * 1024), 0);
	expect_fail(f, &o, TDC_E_FORMAT, "source is shorter than its filesystem");
	/* bad UUID string is the caller's error */
	make_fs(f, "4096");
	o.uuid = "not-a-uuid";
	expect_fail(f, &o, TDC_E_USAGE, "writing the LUKS2 header failed");
	o.uuid = NULL;
	/* an existing output is never overwritten (nor removed) */
	write_file(f->out, "keep", 4);
	{
		struct tdc_error e;
		struct stat st;

		tdc_error_clear(&e);
		assert_int_equal(tdc_image_encrypt_ext4(&o, &(struct tdc_image_encrypt_result){ 0 }, &e),
				 TDC_E_IO);
		assert_string_equal(e.reason, "cannot create output");
		assert_int_equal(stat(f->out, &st), 0);
		assert_int_equal(st.st_size, 4);
	}
}

/* An ext4 image of 128 MiB holding 48 MiB of random files: a dozen 4 MiB runs, so every buffer
 * of the read/encrypt -> write pipeline is reused several times. */
static void make_big_fs(struct fix *f)
{
	char path[160];
	uint8_t *data = malloc(4 * 1024 * 1024);

	assert_non_null(data);
	for (int i = 0; i < 12; i++) {
		assert_int_equal(RAND_bytes(data, 4 * 1024 * 1024), 1);
		snprintf(path, sizeof(path), "%s/f%02d.bin", f->tree, i);
		/* odd sizes: runs end inside a block group, not on 4 MiB boundaries */
		write_file(path, data, 4 * 1024 * 1024 - (size_t)i * 12288);
	}
	free(data);
	assert_int_equal(run("mke2fs", "-F", "-q", "-t", "ext4", "-b", "4096", "-d", f->tree, f->src,
			     "128M", NULL), 0);
}

static void test_encrypt_pipeline(void **state)
{
	struct fix *f = *state;
	struct tdc_image_encrypt_opts o = opts(f);
	struct tdc_image_encrypt_result r;
	uint64_t last = 0;

	if (!have_e2fsprogs())
		skip();
	make_big_fs(f);
	o.progress = progress;
	o.progress_arg = &last;
	assert_int_equal(tdc_image_encrypt_ext4(&o, &r, NULL), 0);
	assert_true(r.used_blocks * 4096 > 48ull * 1024 * 1024);
	assert_int_equal(last, r.used_blocks * 4096);
	check_output(f, 0, &r);
}

/* The buffered writer (an output offset O_DIRECT cannot take: 512) writes the same ciphertext as
 * the O_DIRECT one, from the same header. */
static void test_encrypt_buffered(void **state)
{
	struct fix *f = *state;
	struct tdc_image_fs_info info;
	struct tdc_image_luks luks;
	uint8_t vk1[32], vk2[32];
	uint64_t u1 = 0, u2 = 0;
	char other[160];

	if (!have_e2fsprogs())
		skip();
	make_big_fs(f);
	assert_int_equal(tdc_image_ext4_check(f->src, 0, &info, NULL), 0);
	assert_int_equal(tdc_image_luks_create(f->out, info.blocks * 4096, f->secret,
					       sizeof(f->secret), NULL, &luks, NULL), 0);
	snprintf(other, sizeof(other), "%s/other.img", f->dir);
	struct tdc_image_fill_opts fo = {
		.header = f->out, .secret = f->secret, .secret_len = sizeof(f->secret),
		.src = f->src, .dst = f->out,
	};
	assert_int_equal(tdc_image_luks_fill(&fo, &u1, vk1, NULL), 0);
	write_file(other, "", 0);
	assert_int_equal(truncate(other, (off_t)(512 + luks.size)), 0);
	fo.dst = other;
	fo.dst_offset = 512;
	assert_int_equal(tdc_image_luks_fill(&fo, &u2, vk2, NULL), 0);
	assert_int_equal(u1, u2);
	assert_memory_equal(vk1, vk2, 32);

	int a = open(f->out, O_RDONLY), b = open(other, O_RDONLY);
	uint8_t *x = malloc(1 << 20), *y = malloc(1 << 20);

	assert_true(a >= 0 && b >= 0 && x && y);
	for (uint64_t off = TDC_IMAGE_DATA_OFFSET; off < luks.size; off += 1 << 20) {
		size_t n = luks.size - off < (1 << 20) ? (size_t)(luks.size - off) : (1 << 20);

		assert_int_equal(pread(a, x, n, (off_t)off), (ssize_t)n);
		assert_int_equal(pread(b, y, n, (off_t)(off + 512)), (ssize_t)n);
		assert_memory_equal(x, y, n);
	}
	free(x);
	free(y);
	close(a);
	close(b);
}

static int stop_after(uint64_t done, uint64_t total, void *arg)
{
	(void)total;
	return done >= *(uint64_t *)arg;
}

/* A write that fails in the writer thread (RLIMIT_FSIZE: EFBIG past the limit, as ENOSPC would be
 * on a full disk) stops the encryption with the write error; a stop from the progress callback
 * in the middle of the pipeline leaves no output. */
static void test_encrypt_pipeline_stops(void **state)
{
	struct fix *f = *state;
	struct tdc_image_encrypt_opts o = opts(f);
	struct tdc_image_luks luks;
	struct tdc_image_fs_info info;
	struct rlimit old, lim;
	struct tdc_error e;
	uint64_t used = 0, at = 20ull * 1024 * 1024;
	uint8_t vks[32];
	void (*old_sig)(int);

	if (!have_e2fsprogs())
		skip();
	make_big_fs(f);
	assert_int_equal(tdc_image_ext4_check(f->src, 0, &info, NULL), 0);
	assert_int_equal(tdc_image_luks_create(f->out, info.blocks * 4096, f->secret,
					       sizeof(f->secret), NULL, &luks, NULL), 0);
	struct tdc_image_fill_opts fo = {
		.header = f->out, .secret = f->secret, .secret_len = sizeof(f->secret),
		.src = f->src, .dst = f->out,
	};
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = TDC_IMAGE_DATA_OFFSET + 24ull * 1024 * 1024;
	old_sig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	tdc_error_clear(&e);
	int r = tdc_image_luks_fill(&fo, &used, vks, &e);

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_sig);
	assert_int_equal(r, TDC_E_IO);
	assert_string_equal(e.reason, "write failed");
	assert_non_null(strstr(e.detail, "File too large"));
	assert_int_equal(unlink(f->out), 0);

	o.progress = stop_after;
	o.progress_arg = &at;
	tdc_error_clear(&e);
	assert_int_equal(tdc_image_encrypt_ext4(&o, &(struct tdc_image_encrypt_result){ 0 }, &e),
			 TDC_E_CANCELLED);
	assert_int_equal(access(f->out, F_OK), -1);
}

/* Whole-partition fill (a filesystem without an allocation map we read): every block of the
 * source, whatever it holds, decrypts back to itself; refused with an overlay or a header
 * smaller than the blocks. */
static void test_encrypt_whole(void **state)
{
	struct fix *f = *state;
	struct tdc_image_luks luks;
	struct tdc_error e = { 0 };
	const uint64_t n = 2 * 1024 + 3; /* not a multiple of the 1024-block run */
	uint8_t *plain = malloc(n * 4096), *ct = malloc(n * 4096), vk_sha[32], vk[64];
	size_t vklen = sizeof(vk);
	uint64_t used = 0;
	struct crypt_device *cd = NULL;
	struct tdc_xts *x = NULL;
	int fd;

	assert_true(plain && ct);
	assert_int_equal(RAND_bytes(plain, (int)(n * 4096)), 1);
	memset(plain + 5 * 4096, 0, 3 * 4096); /* zero blocks are encrypted too */
	write_file(f->src, plain, n * 4096);
	assert_int_equal(tdc_image_luks_create(f->out, n * 4096, f->secret, sizeof(f->secret), NULL,
					       &luks, NULL), 0);
	struct tdc_image_fill_opts fo = {
		.header = f->out, .secret = f->secret, .secret_len = sizeof(f->secret),
		.src = f->src, .dst = f->out, .whole_blocks = n,
	};
	assert_int_equal(tdc_image_luks_fill(&fo, &used, vk_sha, &e), 0);
	assert_int_equal(used, n);
	assert_memory_equal(vk_sha, luks.vk_sha256, 32);
	fd = open(f->out, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, ct, n * 4096, TDC_IMAGE_DATA_OFFSET), (ssize_t)(n * 4096));
	close(fd);
	assert_int_equal(crypt_init(&cd, f->out), 0);
	assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
	assert_int_equal(crypt_volume_key_get(cd, 0, (char *)vk, &vklen, (const char *)f->secret,
					      sizeof(f->secret)), 0);
	crypt_free(cd);
	assert_int_equal(tdc_xts_new(&x, (const uint8_t *)vk, NULL), 0);
	for (uint64_t b = 0; b < n; b++) {
		assert_memory_not_equal(ct + b * 4096, plain + b * 4096, 4096);
		assert_int_equal(tdc_xts_decrypt(x, ct + b * 4096, 1, b, NULL), 0);
		if (memcmp(ct + b * 4096, plain + b * 4096, 4096) != 0)
			fail_msg("block %llu does not decrypt to the source", (unsigned long long)b);
	}
	tdc_xts_free(x);
	/* more blocks than the LUKS partition holds */
	fo.whole_blocks = n + 1;
	assert_int_equal(tdc_image_luks_fill(&fo, &used, vk_sha, &e), TDC_E_USAGE);
	assert_non_null(strstr(e.reason, "smaller than the filesystem"));
	/* an overlay (ext4 metadata edits) has no meaning here */
	uint8_t patch[16] = { 0 };
	struct tdc_overlay_ext ext = { .off = 0, .len = 16, .data = patch };
	struct tdc_overlay ov = { .v = &ext, .n = 1 };

	fo.whole_blocks = n;
	fo.overlay = &ov;
	e = (struct tdc_error){ 0 };
	assert_int_equal(tdc_image_luks_fill(&fo, &used, vk_sha, &e), TDC_E_USAGE);
	assert_non_null(strstr(e.reason, "no overlay"));
	free(plain);
	free(ct);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xts_kat),
		cmocka_unit_test(test_xts_roundtrip),
		cmocka_unit_test(test_xts_errors),
		cmocka_unit_test_setup_teardown(test_encrypt_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encrypt_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encrypt_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encrypt_pipeline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encrypt_pipeline_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encrypt_buffered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encrypt_whole, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
