/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>
#include <libcryptsetup.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "image/encrypt.h"
#include "image/xts.h"

/* Blocks per read/encrypt/write run: 1 MiB. */
#define RUN_BLOCKS 256u

/* libcryptsetup logs to stderr by default; the library must not print. Keep the last error. */
static void cs_log(int level, const char *msg, void *arg)
{
	char *last = arg;

	if (level == CRYPT_LOG_ERROR && last && msg) {
		snprintf(last, 200, "%s", msg);
		last[strcspn(last, "\n")] = '\0';
	}
}

static int full_pread(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENODATA;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int full_pwrite(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int open_fs(const struct tdc_image_encrypt_opts *o, ext2_filsys *fs, struct tdc_error *e)
{
	char io_opts[40];
	errcode_t err;

	snprintf(io_opts, sizeof(io_opts), "offset=%" PRIu64, o->src_offset);
	err = ext2fs_open2(o->src, o->src_offset ? io_opts : NULL, EXT2_FLAG_64BITS, 0, 0,
			   unix_io_manager, fs);
	if (err == ENOENT || err == EACCES || err == EISDIR)
		return TDC_FAILF(e, TDC_E_IO, "cannot open source", "%s: %s", o->src,
				 error_message(err));
	if (err)
		return TDC_FAILF(e, TDC_E_FORMAT, "source is not an ext2/3/4 filesystem", "%s: %s",
				 o->src, error_message(err));
	if ((*fs)->blocksize != TDC_XTS_SECTOR)
		return TDC_FAILF(e, TDC_E_UNSUPPORTED, "filesystem block size must be 4096",
				 "block size %u", (*fs)->blocksize);
	if (ext2fs_has_feature_journal_needs_recovery((*fs)->super))
		return TDC_FAIL(e, TDC_E_UNSUPPORTED, "filesystem journal needs recovery (run e2fsck)");
	if (!((*fs)->super->s_state & EXT2_VALID_FS) || ((*fs)->super->s_state & EXT2_ERROR_FS))
		return TDC_FAIL(e, TDC_E_UNSUPPORTED, "filesystem not clean (run e2fsck)");
	err = ext2fs_read_block_bitmap(*fs);
	if (err)
		return TDC_FAILF(e, TDC_E_FORMAT, "cannot read block bitmap", "%s",
				 error_message(err));
	return 0;
}

/* Header only: crypt_format writes [0, data offset) and leaves the data area untouched. */
static int write_header(const struct tdc_image_encrypt_opts *o, const uint8_t *vk,
			struct tdc_image_encrypt_result *res, struct tdc_error *e)
{
	struct crypt_device *cd = NULL;
	struct crypt_pbkdf_type pbkdf = {
		.type = CRYPT_KDF_PBKDF2,
		.hash = "sha256",
		.iterations = TDC_IMAGE_PBKDF2_ITER,
		.flags = CRYPT_PBKDF_NO_BENCHMARK,
	};
	struct crypt_params_luks2 p2 = { .sector_size = TDC_XTS_SECTOR };
	char last[200] = "";
	const char *uuid;
	int r;

	crypt_set_log_callback(NULL, cs_log, last);
	r = crypt_init(&cd, o->out);
	if (r < 0)
		goto fail;
	crypt_set_log_callback(cd, cs_log, last);
	if ((r = crypt_set_pbkdf_type(cd, &pbkdf)) < 0 ||
	    (r = crypt_set_metadata_size(cd, TDC_IMAGE_LUKS_HDR_SIZE,
					 TDC_IMAGE_DATA_OFFSET - 2 * TDC_IMAGE_LUKS_HDR_SIZE)) < 0 ||
	    (r = crypt_set_data_offset(cd, TDC_IMAGE_DATA_OFFSET / 512)) < 0 ||
	    (r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", o->uuid, (const char *)vk,
			      TDC_XTS_KEY_LEN, &p2)) < 0)
		goto fail;
	r = crypt_keyslot_add_by_volume_key(cd, 0, (const char *)vk, TDC_XTS_KEY_LEN,
					    (const char *)o->secret, o->secret_len);
	if (r != 0)
		goto fail;
	uuid = crypt_get_uuid(cd);
	snprintf(res->uuid, sizeof(res->uuid), "%s", uuid ? uuid : "");
	crypt_free(cd);
	crypt_set_log_callback(NULL, NULL, NULL);
	return 0;
fail:
	crypt_free(cd);
	crypt_set_log_callback(NULL, NULL, NULL);
	return TDC_FAILF(e, r == -EINVAL && o->uuid ? TDC_E_USAGE : TDC_E_CRYPTO,
			 "writing the LUKS2 header failed", "libcryptsetup %d: %s", r, last);
}

static int hash_results(int out, const uint8_t *vk, struct tdc_image_encrypt_result *res,
			struct tdc_error *e)
{
	uint8_t *hdr = malloc(TDC_IMAGE_LUKS_HDR_SIZE);
	uint64_t hdr_size = 0;
	unsigned int len = 0;
	EVP_MD_CTX *md = NULL;
	int r = 0;

	if (!hdr)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if (full_pread(out, hdr, TDC_IMAGE_LUKS_HDR_SIZE, 0) < 0) {
		r = TDC_FAIL(e, TDC_E_IO, "cannot read back the LUKS2 header");
		goto out;
	}
	for (int i = 0; i < 8; i++)
		hdr_size = hdr_size << 8 | hdr[8 + i];
	if (memcmp(hdr, "LUKS\xba\xbe", 6) != 0 || hdr_size != TDC_IMAGE_LUKS_HDR_SIZE) {
		r = TDC_FAIL(e, TDC_E_INTERNAL, "unexpected LUKS2 header layout");
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_Digest(hdr, TDC_IMAGE_LUKS_HDR_SIZE, res->header_sha256, &len,
			      EVP_sha256(), NULL) != 1 ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, TDC_IMAGE_VK_TAG, sizeof(TDC_IMAGE_VK_TAG)) != 1 ||
	    EVP_DigestUpdate(md, vk, TDC_XTS_KEY_LEN) != 1 ||
	    EVP_DigestFinal_ex(md, res->vk_sha256, &len) != 1)
		r = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "sha256 failed");
out:
	EVP_MD_CTX_free(md);
	free(hdr);
	return r;
}

static int encrypt_blocks(const struct tdc_image_encrypt_opts *o, ext2_filsys fs, int src,
			  int out, struct tdc_xts *x, uint8_t *buf,
			  struct tdc_image_encrypt_result *res, struct tdc_error *e)
{
	blk64_t first = fs->super->s_first_data_block;
	blk64_t last = ext2fs_blocks_count(fs->super) - 1;
	uint64_t total = ext2fs_blocks_count(fs->super) - ext2fs_free_blocks_count(fs->super);
	blk64_t b = first;

	total *= TDC_XTS_SECTOR;
	while (b <= last) {
		blk64_t start, end;
		size_t n;
		int r;

		if (ext2fs_find_first_set_block_bitmap2(fs->block_map, b, last, &start))
			break; /* ENOENT: no more in-use blocks */
		if (ext2fs_find_first_zero_block_bitmap2(fs->block_map, start, last, &end))
			end = last + 1;
		n = end - start > RUN_BLOCKS ? RUN_BLOCKS : (size_t)(end - start);
		r = full_pread(src, buf, n * TDC_XTS_SECTOR,
			       o->src_offset + (uint64_t)start * TDC_XTS_SECTOR);
		if (r == -ENODATA)
			return TDC_FAILF(e, TDC_E_FORMAT, "source is shorter than its filesystem",
					 "block %llu", (unsigned long long)start);
		if (r < 0)
			return TDC_FAILF(e, TDC_E_IO, "read failed", "%s", strerror(-r));
		TDC_GUARD(tdc_xts_encrypt(x, buf, n, start, e));
		r = full_pwrite(out, buf, n * TDC_XTS_SECTOR,
				TDC_IMAGE_DATA_OFFSET + (uint64_t)start * TDC_XTS_SECTOR);
		if (r < 0)
			return TDC_FAILF(e, TDC_E_IO, "write failed", "%s", strerror(-r));
		res->used_blocks += n;
		b = start + n;
		if (o->progress)
			o->progress(res->used_blocks * TDC_XTS_SECTOR, total, o->progress_arg);
	}
	return 0;
}

int tdc_image_encrypt_ext4(const struct tdc_image_encrypt_opts *o,
			   struct tdc_image_encrypt_result *res, struct tdc_error *e)
{
	ext2_filsys fs = NULL;
	struct tdc_xts *x = NULL;
	uint8_t vk[TDC_XTS_KEY_LEN];
	uint8_t *buf = NULL;
	int src = -1, out = -1, created = 0, r;

	if (!o || !res || !o->src || !o->out || !o->secret)
		return TDC_FAIL(e, TDC_E_USAGE, "image encrypt: missing argument");
	if (o->secret_len < TDC_IMAGE_MIN_SECRET || o->secret_len > TDC_IMAGE_MAX_SECRET)
		return TDC_FAILF(e, TDC_E_USAGE, "disk secret must be a random key of 32..512 bytes",
				 "got %zu bytes", o->secret_len);
	memset(res, 0, sizeof(*res));

	r = open_fs(o, &fs, e);
	if (r < 0)
		goto out;
	res->fs_blocks = ext2fs_blocks_count(fs->super);
	res->out_size = TDC_IMAGE_DATA_OFFSET + res->fs_blocks * TDC_XTS_SECTOR;

	src = open(o->src, O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot open source", "%s: %s", o->src, strerror(errno));
		goto out;
	}
	out = open(o->out, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot create output", "%s: %s", o->out,
			      strerror(errno));
		goto out;
	}
	created = 1;
	if (ftruncate(out, (off_t)res->out_size) != 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot size output", "%s", strerror(errno));
		goto out;
	}
	if (RAND_priv_bytes(vk, sizeof(vk)) != 1) {
		r = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "no randomness for the volume key");
		goto out;
	}
	r = write_header(o, vk, res, e);
	if (r < 0)
		goto out;
	r = tdc_xts_new(&x, vk, e);
	if (r < 0)
		goto out;
	buf = malloc((size_t)RUN_BLOCKS * TDC_XTS_SECTOR);
	if (!buf) {
		r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		goto out;
	}
	r = encrypt_blocks(o, fs, src, out, x, buf, res, e);
	if (r < 0)
		goto out;
	if (fsync(out) != 0) {
		r = TDC_FAILF(e, TDC_E_IO, "fsync failed", "%s", strerror(errno));
		goto out;
	}
	r = hash_results(out, vk, res, e);
out:
	OPENSSL_cleanse(vk, sizeof(vk));
	if (buf) {
		OPENSSL_cleanse(buf, (size_t)RUN_BLOCKS * TDC_XTS_SECTOR); /* last plaintext run */
		free(buf);
	}
	tdc_xts_free(x);
	if (fs)
		ext2fs_close_free(&fs);
	if (src >= 0)
		close(src);
	if (out >= 0)
		close(out);
	if (r < 0 && created)
		unlink(o->out);
	return r;
}
