/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A copy-on-write view of an ext4 filesystem inside a file that must not be written (the input
 * disk): libext2fs reads through to the file, its writes stay in memory as byte extents. The
 * layout-only builder uses it to give the root a new UUID without a private copy of the disk; the
 * encryptor then applies the extents to what it reads. Only metadata lands here (superblocks,
 * group descriptors), so the memory is small; it is capped at TDC_MAX_EXT4_OVERLAY_BYTES.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"
#include "util/limits.h"

/* Cap on the bytes libext2fs may write into an overlay (to move to lib/util/limits.h). */

struct tdc_overlay_ext {
	uint64_t off;                  /* byte offset from the filesystem start */
	uint32_t len;
	uint8_t *data;
};

struct tdc_overlay {
	struct tdc_overlay_ext *v;     /* in write order: later extents win */
	size_t n, cap;
	size_t bytes;
	int failed;                    /* a write could not be kept (memory, cap) */
};

void tdc_overlay_free(struct tdc_overlay *ov);
/* Patches buf, which holds the filesystem bytes [off, off + len), with the overlay. */
void tdc_overlay_apply(const struct tdc_overlay *ov, uint8_t *buf, uint64_t off, size_t len);

/*
 * Gives the ext4 fs at src + src_offset the fs UUID uuid as `tune2fs -U` does (on metadata_csum
 * without metadata_csum_seed the seed feature is turned on, so no checksum changes), writing only
 * into ov. TDC_E_FORMAT (not ext4), TDC_E_UNSUPPORTED (a feature that would need every metadata
 * block rewritten), TDC_E_LIMIT (overlay cap).
 */
int tdc_ext4_set_uuid_overlay(const char *src, uint64_t src_offset, const uint8_t uuid[16],
			      struct tdc_overlay *ov, struct tdc_error *e) TDC_MUST_USE;
