/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Turns a plain ext4 filesystem image into a LUKS2 partition image without device-mapper and
 * without privileges: libcryptsetup writes only the header (crypt_format on a regular file), and
 * we stream AES-256-XTS ourselves over the blocks that the ext4 block bitmap marks in use. Free
 * blocks are neither read nor written, so the output stays sparse (docs/IMAGE-NOTES.md 3.2).
 *
 * Fixed layout: LUKS2, 16 KiB metadata, data offset 16 MiB, aes-xts-plain64, 512-bit volume key,
 * 4096-byte sectors, one keyslot (0) with pbkdf2-sha256 at 1000 iterations: the keyslot secret is a
 * random key of at least 256 bits, not a password, so a costly KDF buys nothing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"

struct tdc_overlay;

#define TDC_IMAGE_DATA_OFFSET (16u * 1024u * 1024u)
#define TDC_IMAGE_LUKS_HDR_SIZE (16u * 1024u)
/* The keyslot secret must be a random key: at least 256 bits. */
#define TDC_IMAGE_MIN_SECRET 32u
#define TDC_IMAGE_MAX_SECRET 512u
#define TDC_IMAGE_PBKDF2_ITER 1000u

struct tdc_image_encrypt_opts {
	const char *src;             /* file holding the plain ext4 fs (4 KiB blocks) */
	uint64_t src_offset;         /* byte offset of the fs in src (e.g. a partition start) */
	const char *out;             /* LUKS2 partition file to create; must not exist */
	const uint8_t *secret;       /* keyslot 0 secret (the broker's disk key) */
	size_t secret_len;
	const char *uuid;            /* LUKS UUID, or NULL for a random one */
	/* optional progress: bytes of in-use blocks done / total; nonzero stops (TDC_E_CANCELLED) */
	int (*progress)(uint64_t done, uint64_t total, void *arg);
	void *progress_arg;
};

struct tdc_image_encrypt_result {
	uint64_t fs_blocks;          /* blocks in the fs */
	uint64_t used_blocks;        /* in-use blocks, encrypted and written */
	uint64_t out_size;           /* size of the output file (header + fs) */
	uint8_t header_sha256[32];   /* SHA-256 of both header areas [0, 32 KiB) (LUKS-HEADER.md) */
	uint8_t vk_sha256[32];       /* SHA-256("tdcrypt-luks2-vk-v1\0" || volume key) */
	char uuid[40];
};

/* Domain tag hashed in front of the volume key for vk_sha256 (includes its NUL). */
#define TDC_IMAGE_VK_TAG "tdcrypt-luks2-vk-v1"

/*
 * Creates opts->out (0600). On failure the output file is removed. Errors: TDC_E_USAGE (bad
 * arguments, secret too short), TDC_E_FORMAT (src is not ext2/3/4, or shorter than its fs),
 * TDC_E_UNSUPPORTED (block size not 4096, fs needs journal recovery or has errors),
 * TDC_E_IO (files), TDC_E_CRYPTO (libcryptsetup/OpenSSL).
 */
int tdc_image_encrypt_ext4(const struct tdc_image_encrypt_opts *o,
			   struct tdc_image_encrypt_result *res, struct tdc_error *e) TDC_MUST_USE;

/* ---- the same in two steps, for builders that need the header digest before the fs is final ---- */

struct tdc_image_fs_info {
	uint64_t blocks, free_blocks;  /* 4096-byte blocks */
	uint8_t uuid[16];
	bool metadata_csum, csum_seed;
};

/* Opens the ext4 fs at src + src_offset with the checks of tdc_image_encrypt_ext4. */
int tdc_image_ext4_check(const char *src, uint64_t src_offset, struct tdc_image_fs_info *info,
			 struct tdc_error *e) TDC_MUST_USE;

struct tdc_image_luks {
	uint64_t size;               /* partition size: data offset + data size */
	uint8_t header_sha256[32];   /* SHA-256 of [0, 32 KiB): what the agent checks */
	uint8_t vk_sha256[32];
	char uuid[40];
};

/*
 * Creates out (O_EXCL, 0600, sparse, data offset + data_size bytes) holding only the LUKS2
 * header with a fresh random volume key behind keyslot 0 (the secret). The volume key is not
 * kept: tdc_image_luks_fill unwraps it again from the keyslot.
 */
int tdc_image_luks_create(const char *out, uint64_t data_size, const uint8_t *secret,
			  size_t secret_len, const char *uuid, struct tdc_image_luks *res,
			  struct tdc_error *e) TDC_MUST_USE;

struct tdc_image_fill_opts {
	const char *header;          /* file made by tdc_image_luks_create */
	const uint8_t *secret;
	size_t secret_len;
	const char *src;             /* plain ext4 at src_offset */
	uint64_t src_offset;
	/* nonzero: src is not read as ext4; blocks [0, whole_blocks) are all encrypted, in use
	 * or not (filesystems without an allocation map we read: fsprobe.h); no overlay */
	uint64_t whole_blocks;
	const struct tdc_overlay *overlay; /* optional: metadata changes over src (overlay.h) */
	const char *dst;             /* existing file; the LUKS partition starts at dst_offset */
	uint64_t dst_offset;
	int (*progress)(uint64_t done, uint64_t total, void *arg); /* as above */
	void *progress_arg;
};

/*
 * Encrypts the in-use blocks of src (or all whole_blocks) into dst at dst_offset + 16 MiB + block * 4096 with the
 * volume key of header's keyslot 0 (TDC_E_SIGNATURE if the secret does not open it). Does not
 * copy the header itself. Returns the blocks written and vk_sha256.
 */
int tdc_image_luks_fill(const struct tdc_image_fill_opts *o, uint64_t *used_blocks,
			uint8_t vk_sha256[32], struct tdc_error *e) TDC_MUST_USE;
