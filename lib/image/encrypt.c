/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>
#include <libcryptsetup.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "image/encrypt.h"
#include "image/overlay.h"
#include "image/xts.h"
#include "util/util.h"

/* Blocks per read/encrypt/write run: 4 MiB (16 MiB measured no faster, and RSS is 3 runs). */
#define RUN_BLOCKS 1024u
/* Writeback window: started as soon as it is written, waited for one window later, so the disk
 * writes while we encrypt and dirty pages stay bounded (instead of one long fsync at the end). */
#define WB_WINDOW (64ull * 1024u * 1024u)

/* libcryptsetup logs to stderr by default; the library must not print. Keep the last error. */
static void cs_log(int level, const char *msg, void *arg)
{
	char *last = arg;

	if (level == CRYPT_LOG_ERROR && last && msg) {
		snprintf(last, 200, "%s", msg);
		last[strcspn(last, "\n")] = '\0';
	}
}


static int open_fs(const char *src, uint64_t src_offset, ext2_filsys *fs, struct tdc_error *e)
{
	char io_opts[40];
	errcode_t err;

	snprintf(io_opts, sizeof(io_opts), "offset=%" PRIu64, src_offset);
	err = ext2fs_open2(src, src_offset ? io_opts : NULL, EXT2_FLAG_64BITS, 0, 0,
			   unix_io_manager, fs);
	if (err == ENOENT || err == EACCES || err == EISDIR)
		return TDC_FAILF(e, TDC_E_IO, "cannot open source", "%s: %s", src,
				 error_message(err));
	if (err)
		return TDC_FAILF(e, TDC_E_FORMAT, "source is not an ext2/3/4 filesystem", "%s: %s",
				 src, error_message(err));
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
static int write_header(const char *path, const char *want_uuid, const uint8_t *secret,
			size_t secret_len, const uint8_t *vk, char uuid_out[40], struct tdc_error *e)
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
	r = crypt_init(&cd, path);
	if (r < 0)
		goto fail;
	crypt_set_log_callback(cd, cs_log, last);
	if ((r = crypt_set_pbkdf_type(cd, &pbkdf)) < 0 ||
	    (r = crypt_set_metadata_size(cd, TDC_IMAGE_LUKS_HDR_SIZE,
					 TDC_IMAGE_DATA_OFFSET - 2 * TDC_IMAGE_LUKS_HDR_SIZE)) < 0 ||
	    (r = crypt_set_data_offset(cd, TDC_IMAGE_DATA_OFFSET / 512)) < 0 ||
	    (r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", want_uuid, (const char *)vk,
			      TDC_XTS_KEY_LEN, &p2)) < 0)
		goto fail;
	r = crypt_keyslot_add_by_volume_key(cd, 0, (const char *)vk, TDC_XTS_KEY_LEN,
					    (const char *)secret, secret_len);
	if (r != 0)
		goto fail;
	uuid = crypt_get_uuid(cd);
	snprintf(uuid_out, 40, "%s", uuid ? uuid : "");
	crypt_free(cd);
	crypt_set_log_callback(NULL, NULL, NULL);
	return 0;
fail:
	crypt_free(cd);
	crypt_set_log_callback(NULL, NULL, NULL);
	return TDC_FAILF(e, r == -EINVAL && want_uuid ? TDC_E_USAGE : TDC_E_CRYPTO,
			 "writing the LUKS2 header failed", "libcryptsetup %d: %s", r, last);
}

/* header_sha256: the agent's digest (docs/LUKS-HEADER.md), SHA-256 over both binary headers and
 * JSON areas [0, 2 * hdr_size); hdr_size is the fixed 16 KiB we format with. */
static int hash_header(int fd, uint8_t out[32], struct tdc_error *e)
{
	uint8_t *hdr = malloc(2 * TDC_IMAGE_LUKS_HDR_SIZE);
	uint64_t hdr_size = 0;
	unsigned int len = 0;
	int r = 0;

	if (!hdr)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if (tdc_pread_full(fd, hdr, 2 * TDC_IMAGE_LUKS_HDR_SIZE, 0) < 0) {
		r = TDC_FAIL(e, TDC_E_IO, "cannot read back the LUKS2 header");
		goto out;
	}
	for (int i = 0; i < 8; i++)
		hdr_size = hdr_size << 8 | hdr[8 + i];
	if (memcmp(hdr, "LUKS\xba\xbe", 6) != 0 || hdr_size != TDC_IMAGE_LUKS_HDR_SIZE ||
	    memcmp(hdr + TDC_IMAGE_LUKS_HDR_SIZE, "SKUL\xba\xbe", 6) != 0) {
		r = TDC_FAIL(e, TDC_E_INTERNAL, "unexpected LUKS2 header layout");
		goto out;
	}
	if (EVP_Digest(hdr, 2 * TDC_IMAGE_LUKS_HDR_SIZE, out, &len, EVP_sha256(), NULL) != 1)
		r = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "sha256 failed");
out:
	free(hdr);
	return r;
}

static int hash_vk(const uint8_t *vk, uint8_t out[32], struct tdc_error *e)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;
	int r = 0;

	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, TDC_IMAGE_VK_TAG, sizeof(TDC_IMAGE_VK_TAG)) != 1 ||
	    EVP_DigestUpdate(md, vk, TDC_XTS_KEY_LEN) != 1 ||
	    EVP_DigestFinal_ex(md, out, &len) != 1)
		r = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "sha256 failed");
	EVP_MD_CTX_free(md);
	return r;
}

struct wb {
	int fd;
	uint64_t start, end;         /* written, writeback not started: [start, end) */
	uint64_t prev_start, prev_end; /* writeback started, not waited for */
};

/* Advisory only: errors surface in the final fsync. */
static void wb_note(struct wb *w, uint64_t off, uint64_t len, int last)
{
	if (w->end == w->start)
		w->start = off;
	w->end = off + len;
	if (!last && w->end - w->start < WB_WINDOW)
		return;
	(void)sync_file_range(w->fd, (off64_t)w->start, (off64_t)(w->end - w->start),
			      SYNC_FILE_RANGE_WRITE);
	if (w->prev_end > w->prev_start)
		(void)sync_file_range(w->fd, (off64_t)w->prev_start,
				      (off64_t)(w->prev_end - w->prev_start),
				      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
					      SYNC_FILE_RANGE_WAIT_AFTER);
	w->prev_start = w->start;
	w->prev_end = w->end;
	w->start = w->end;
}

/*
 * Double buffering: the calling thread reads and encrypts run k+1 while a writer thread writes
 * run k and waits for its writeback, so AES-XTS and the pread copy overlap the disk instead of
 * adding to it (docs/PERFORMANCE.md, image). Buffers circulate in order: the encryptor fills
 * slot i % NBUF once the writer has released it. Memory: NBUF runs, whatever the image size.
 */
#define NBUF 3u

struct slot {
	uint8_t *buf;
	uint64_t at;                 /* output offset */
	size_t len;                  /* bytes; 0 = free */
};

struct pipeline {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct slot s[NBUF];
	unsigned int head, tail;     /* next slot to fill / to write */
	int done;                    /* encryptor finished or stopped: writer drains and exits */
	int werr;                    /* first write error (-errno), stops the encryptor */
	int fd;
	int direct;                  /* fd is O_DIRECT: no page cache, so no writeback to pace */
	int fd_buffered;             /* the same file without O_DIRECT */
};

static void *writer_main(void *arg)
{
	struct pipeline *p = arg;
	struct wb w = { .fd = p->fd_buffered };

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct slot *sl = &p->s[p->tail % NBUF];

		while (!sl->len && !p->done)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!sl->len)
			break; /* done and drained */
		pthread_mutex_unlock(&p->mu);
		int r = p->werr ? 0 : tdc_pwrite_full(p->fd, sl->buf, sl->len, sl->at);

		if (r == -EINVAL && p->direct) {
			/* a filesystem that opens O_DIRECT but refuses the write: go buffered */
			p->direct = 0;
			p->fd = p->fd_buffered;
			r = tdc_pwrite_full(p->fd, sl->buf, sl->len, sl->at);
		}

		if (r == 0 && !p->werr && !p->direct)
			wb_note(&w, sl->at, sl->len, 0);
		pthread_mutex_lock(&p->mu);
		if (r < 0 && !p->werr)
			p->werr = r;
		sl->len = 0;
		p->tail++;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	if (!p->werr && (w.end > w.start || w.prev_end > w.prev_start))
		wb_note(&w, w.end, 0, 1);
	return NULL;
}

/* The next free slot's buffer, or NULL once the writer failed. */
static struct slot *pipe_get(struct pipeline *p)
{
	struct slot *sl = &p->s[p->head % NBUF];

	pthread_mutex_lock(&p->mu);
	while (sl->len && !p->werr)
		pthread_cond_wait(&p->cv, &p->mu);
	if (p->werr)
		sl = NULL;
	pthread_mutex_unlock(&p->mu);
	return sl;
}

static void pipe_put(struct pipeline *p, struct slot *sl, uint64_t at, size_t len)
{
	pthread_mutex_lock(&p->mu);
	sl->at = at;
	sl->len = len;
	p->head++;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Stops the writer after what was queued; returns its first error (-errno) or 0. */
static int pipe_finish(struct pipeline *p, pthread_t t)
{
	pthread_mutex_lock(&p->mu);
	p->done = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(t, NULL);
	return p->werr;
}

static int encrypt_runs(const struct tdc_image_fill_opts *o, ext2_filsys fs, int src,
			struct pipeline *p, struct tdc_xts *x, uint64_t *used, struct tdc_error *e)
{
	/* without fs (whole partition): every block is "in use" */
	blk64_t first = fs ? fs->super->s_first_data_block : 0;
	blk64_t last = (fs ? ext2fs_blocks_count(fs->super) : o->whole_blocks) - 1;
	uint64_t total = fs ? ext2fs_blocks_count(fs->super) - ext2fs_free_blocks_count(fs->super)
			    : o->whole_blocks;
	blk64_t b = first;

	total *= TDC_XTS_SECTOR;
	while (b <= last) {
		blk64_t start, end;
		struct slot *sl;
		size_t n;
		int r;

		if (!fs) {
			start = b;
			end = last + 1;
		} else if (ext2fs_find_first_set_block_bitmap2(fs->block_map, b, last, &start)) {
			break; /* ENOENT: no more in-use blocks */
		} else if (ext2fs_find_first_zero_block_bitmap2(fs->block_map, start, last,
								&end)) {
			end = last + 1;
		}
		n = end - start > RUN_BLOCKS ? RUN_BLOCKS : (size_t)(end - start);
		sl = pipe_get(p);
		if (!sl)
			return 0; /* the writer's error is reported by the caller */
		r = tdc_pread_full(src, sl->buf, n * TDC_XTS_SECTOR,
				   o->src_offset + (uint64_t)start * TDC_XTS_SECTOR);
		if (r == -ENODATA)
			return TDC_FAILF(e, TDC_E_FORMAT, "source is shorter than its filesystem",
					 "block %llu", (unsigned long long)start);
		if (r < 0)
			return TDC_FAILF(e, TDC_E_IO, "read failed", "%s", strerror(-r));
		tdc_overlay_apply(o->overlay, sl->buf, (uint64_t)start * TDC_XTS_SECTOR,
				  n * TDC_XTS_SECTOR);
		TDC_GUARD(tdc_xts_encrypt(x, sl->buf, n, start, e));
		pipe_put(p, sl,
			 o->dst_offset + TDC_IMAGE_DATA_OFFSET + (uint64_t)start * TDC_XTS_SECTOR,
			 n * TDC_XTS_SECTOR);
		*used += n;
		b = start + n;
		if (o->progress && o->progress(*used * TDC_XTS_SECTOR, total, o->progress_arg) != 0)
			return TDC_FAIL(e, TDC_E_CANCELLED, "interrupted");
	}
	return 0;
}

/* out_direct: the output opened O_DIRECT (or -1): the runs are 4 KiB aligned in offset, length and
 * memory, so they go from our buffer to the device without a copy into the page cache, which is
 * most of the CPU a buffered write costs; the writer thread then waits on the device while the
 * next run is encrypted. */
static int encrypt_blocks(const struct tdc_image_fill_opts *o, ext2_filsys fs, int src,
			  int out, int out_direct, struct tdc_xts *x, uint64_t *used,
			  struct tdc_error *e)
{
	struct pipeline p = { .fd = out_direct >= 0 ? out_direct : out, .direct = out_direct >= 0,
			      .fd_buffered = out };
	size_t run = (size_t)RUN_BLOCKS * TDC_XTS_SECTOR;
	pthread_t t;
	int r = 0, w;

	for (unsigned int i = 0; i < NBUF; i++)
		if (posix_memalign((void **)&p.s[i].buf, TDC_XTS_SECTOR, run) != 0) {
			p.s[i].buf = NULL;
			r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		}
	if (r == 0 && (pthread_mutex_init(&p.mu, NULL) != 0 ||
		       pthread_cond_init(&p.cv, NULL) != 0 ||
		       pthread_create(&t, NULL, writer_main, &p) != 0))
		r = TDC_FAIL(e, TDC_E_NOMEM, "cannot start the writer thread");
	if (r == 0) {
		r = encrypt_runs(o, fs, src, &p, x, used, e);
		w = pipe_finish(&p, t);
		if (r == 0 && w < 0)
			r = TDC_FAILF(e, TDC_E_IO, "write failed", "%s", strerror(-w));
		pthread_cond_destroy(&p.cv);
		pthread_mutex_destroy(&p.mu);
	}
	for (unsigned int i = 0; i < NBUF; i++) {
		if (p.s[i].buf)
			OPENSSL_cleanse(p.s[i].buf, run); /* plaintext of the last runs */
		free(p.s[i].buf);
	}
	return r;
}

int tdc_image_ext4_check(const char *src, uint64_t src_offset, struct tdc_image_fs_info *info,
			 struct tdc_error *e)
{
	ext2_filsys fs = NULL;
	int r;

	if (!src || !info)
		return TDC_FAIL(e, TDC_E_USAGE, "image: missing argument");
	memset(info, 0, sizeof(*info));
	r = open_fs(src, src_offset, &fs, e);
	if (r == 0) {
		info->blocks = ext2fs_blocks_count(fs->super);
		info->free_blocks = ext2fs_free_blocks_count(fs->super);
		memcpy(info->uuid, fs->super->s_uuid, 16);
		info->metadata_csum = ext2fs_has_feature_metadata_csum(fs->super);
		info->csum_seed = ext2fs_has_feature_csum_seed(fs->super);
	}
	if (fs)
		ext2fs_close_free(&fs);
	return r;
}

int tdc_image_luks_create(const char *out, uint64_t data_size, const uint8_t *secret,
			  size_t secret_len, const char *uuid, struct tdc_image_luks *res,
			  struct tdc_error *e)
{
	uint8_t vk[TDC_XTS_KEY_LEN];
	int fd = -1, r;

	if (!out || !secret || !res)
		return TDC_FAIL(e, TDC_E_USAGE, "image: missing argument");
	if (secret_len < TDC_IMAGE_MIN_SECRET || secret_len > TDC_IMAGE_MAX_SECRET)
		return TDC_FAILF(e, TDC_E_USAGE, "disk secret must be a random key of 32..512 bytes",
				 "got %zu bytes", secret_len);
	if (data_size == 0 || data_size % TDC_XTS_SECTOR)
		return TDC_FAIL(e, TDC_E_USAGE, "LUKS data size must be a multiple of 4096");
	memset(res, 0, sizeof(*res));
	fd = open(out, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create output", "%s: %s", out,
				 strerror(errno));
	res->size = TDC_IMAGE_DATA_OFFSET + data_size;
	if (ftruncate(fd, (off_t)res->size) != 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot size output", "%s", strerror(errno));
		goto out;
	}
	if (RAND_priv_bytes(vk, sizeof(vk)) != 1) {
		r = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "no randomness for the volume key");
		goto out;
	}
	r = write_header(out, uuid, secret, secret_len, vk, res->uuid, e);
	if (r == 0)
		r = hash_header(fd, res->header_sha256, e);
	if (r == 0)
		r = hash_vk(vk, res->vk_sha256, e);
out:
	OPENSSL_cleanse(vk, sizeof(vk));
	close(fd);
	if (r < 0)
		unlink(out);
	return r;
}

/* The volume key, unwrapped from keyslot 0 of header with the secret; checks the fixed layout. */
static int unlock_vk(const char *header, const uint8_t *secret, size_t secret_len,
		     uint8_t vk[TDC_XTS_KEY_LEN], struct tdc_error *e)
{
	struct crypt_device *cd = NULL;
	char last[200] = "";
	size_t vklen = TDC_XTS_KEY_LEN;
	const char *c, *m;
	int r;

	crypt_set_log_callback(NULL, cs_log, last);
	r = crypt_init(&cd, header);
	if (r == 0) {
		crypt_set_log_callback(cd, cs_log, last);
		r = crypt_load(cd, CRYPT_LUKS2, NULL);
	}
	if (r < 0) {
		r = TDC_FAILF(e, TDC_E_FORMAT, "cannot load the LUKS2 header", "%s: %s", header,
			      last);
		goto out;
	}
	c = crypt_get_cipher(cd);
	m = crypt_get_cipher_mode(cd);
	if (!c || !m || strcmp(c, "aes") || strcmp(m, "xts-plain64") ||
	    crypt_get_volume_key_size(cd) != (int)TDC_XTS_KEY_LEN ||
	    crypt_get_sector_size(cd) != (int)TDC_XTS_SECTOR ||
	    crypt_get_data_offset(cd) != TDC_IMAGE_DATA_OFFSET / 512) {
		r = TDC_FAIL(e, TDC_E_UNSUPPORTED, "LUKS2 header is not the tdcrypt layout");
		goto out;
	}
	r = crypt_volume_key_get(cd, 0, (char *)vk, &vklen, (const char *)secret, secret_len);
	if (r < 0 || vklen != TDC_XTS_KEY_LEN) {
		OPENSSL_cleanse(vk, TDC_XTS_KEY_LEN);
		r = TDC_FAILF(e, TDC_E_SIGNATURE, "the secret does not open keyslot 0",
			      "libcryptsetup %d: %s", r, last);
		goto out;
	}
	r = 0;
out:
	crypt_free(cd);
	crypt_set_log_callback(NULL, NULL, NULL);
	return r;
}

int tdc_image_luks_fill(const struct tdc_image_fill_opts *o, uint64_t *used_blocks,
			uint8_t vk_sha256[32], struct tdc_error *e)
{
	ext2_filsys fs = NULL;
	struct tdc_xts *x = NULL;
	uint8_t vk[TDC_XTS_KEY_LEN];
	uint64_t used = 0, nblocks;
	struct stat st;
	int src = -1, dst = -1, dst_direct = -1, r;

	if (!o || !o->header || !o->secret || !o->src || !o->dst)
		return TDC_FAIL(e, TDC_E_USAGE, "image: missing argument");
	if (o->whole_blocks && o->overlay && o->overlay->n)
		return TDC_FAIL(e, TDC_E_USAGE, "image: no overlay with a whole-partition fill");
	if (!o->whole_blocks) {
		r = open_fs(o->src, o->src_offset, &fs, e);
		if (r < 0)
			goto out;
	}
	nblocks = fs ? ext2fs_blocks_count(fs->super) : o->whole_blocks;
	if (stat(o->header, &st) != 0 ||
	    (uint64_t)st.st_size < TDC_IMAGE_DATA_OFFSET + nblocks * TDC_XTS_SECTOR) {
		r = TDC_FAIL(e, TDC_E_USAGE, "LUKS partition smaller than the filesystem");
		goto out;
	}
	/* blocks the overlay changed are metadata, hence in use; mark them anyway so that no
	 * changed byte can be skipped */
	for (size_t i = 0; o->overlay && i < o->overlay->n; i++) {
		const struct tdc_overlay_ext *ov = &o->overlay->v[i];

		if (!ov->len)
			continue;
		if ((ov->off + ov->len - 1) / TDC_XTS_SECTOR >= nblocks) {
			r = TDC_FAIL(e, TDC_E_INTERNAL, "overlay beyond the filesystem");
			goto out;
		}
		for (uint64_t k = ov->off / TDC_XTS_SECTOR;
		     k <= (ov->off + ov->len - 1) / TDC_XTS_SECTOR; k++)
			ext2fs_mark_block_bitmap2(fs->block_map, k);
	}
	r = unlock_vk(o->header, o->secret, o->secret_len, vk, e);
	if (r < 0)
		goto out;
	r = hash_vk(vk, vk_sha256, e);
	if (r == 0)
		r = tdc_xts_new(&x, vk, e);
	OPENSSL_cleanse(vk, sizeof(vk));
	if (r < 0)
		goto out;
	src = open(o->src, O_RDONLY | O_CLOEXEC);
	dst = open(o->dst, O_RDWR | O_CLOEXEC);
	if (src < 0 || dst < 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot open source or destination", "%s",
			      strerror(errno));
		goto out;
	}
	/* O_DIRECT needs the output's offsets 4 KiB aligned; refused by some filesystems (then
	 * buffered writes with paced writeback) */
	if (o->dst_offset % TDC_XTS_SECTOR == 0)
		dst_direct = open(o->dst, O_WRONLY | O_DIRECT | O_CLOEXEC);
	r = encrypt_blocks(o, fs, src, dst, dst_direct, x, &used, e);
	if (r == 0 && fsync(dst) != 0)
		r = TDC_FAILF(e, TDC_E_IO, "fsync failed", "%s", strerror(errno));
	if (used_blocks)
		*used_blocks = used;
out:
	tdc_xts_free(x);
	if (fs)
		ext2fs_close_free(&fs);
	if (src >= 0)
		close(src);
	if (dst >= 0)
		close(dst);
	if (dst_direct >= 0)
		close(dst_direct);
	return r;
}

int tdc_image_encrypt_ext4(const struct tdc_image_encrypt_opts *o,
			   struct tdc_image_encrypt_result *res, struct tdc_error *e)
{
	struct tdc_image_fs_info info;
	struct tdc_image_luks luks;
	int r;

	if (!o || !res || !o->src || !o->out || !o->secret)
		return TDC_FAIL(e, TDC_E_USAGE, "image encrypt: missing argument");
	if (o->secret_len < TDC_IMAGE_MIN_SECRET || o->secret_len > TDC_IMAGE_MAX_SECRET)
		return TDC_FAILF(e, TDC_E_USAGE, "disk secret must be a random key of 32..512 bytes",
				 "got %zu bytes", o->secret_len);
	memset(res, 0, sizeof(*res));
	TDC_GUARD(tdc_image_ext4_check(o->src, o->src_offset, &info, e));
	res->fs_blocks = info.blocks;
	TDC_GUARD(tdc_image_luks_create(o->out, info.blocks * TDC_XTS_SECTOR, o->secret,
					o->secret_len, o->uuid, &luks, e));
	res->out_size = luks.size;
	memcpy(res->header_sha256, luks.header_sha256, 32);
	memcpy(res->uuid, luks.uuid, sizeof(res->uuid));
	struct tdc_image_fill_opts f = {
		.header = o->out,
		.secret = o->secret,
		.secret_len = o->secret_len,
		.src = o->src,
		.src_offset = o->src_offset,
		.dst = o->out,
		.progress = o->progress,
		.progress_arg = o->progress_arg,
	};
	r = tdc_image_luks_fill(&f, &res->used_blocks, res->vk_sha256, e);
	if (r < 0)
		unlink(o->out);
	return r;
}
