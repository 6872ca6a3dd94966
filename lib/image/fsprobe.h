/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which filesystem a partition of a guest image holds, from its superblock magic (read through
 * the bounded reader: the image is hostile input). ext4 has the allocated-blocks-only path
 * (encrypt.c with libext2fs); XFS and btrfs are encrypted as whole partitions, because a wrong
 * allocation map would destroy data silently (docs/IMAGE-NOTES.md 13).
 */
#pragma once

#include <stdint.h>

#include "tdcrypt/error.h"

enum tdc_image_fs {
	TDC_FS_UNKNOWN = 0,
	TDC_FS_EXT4,  /* ext2/3/4 */
	TDC_FS_XFS,
	TDC_FS_BTRFS,
};

struct tdc_image_fs_probe {
	enum tdc_image_fs type;
	uint64_t size;      /* bytes the filesystem says it spans (0 if unknown) */
	uint8_t uuid[16];   /* the filesystem's UUID (btrfs: fsid) */
};

/* "ext4", "xfs", "btrfs" or "unknown". */
const char *tdc_image_fs_name(enum tdc_image_fs t);

/*
 * Probes the partition [off, off + len) of the image open on fd. An unrecognised filesystem is
 * not an error (type TDC_FS_UNKNOWN); TDC_E_FORMAT if a recognised superblock is inconsistent
 * (zero or absurd size, bad block size), the fs is larger than its partition, or two
 * signatures are found; TDC_E_IO.
 */
int tdc_image_fs_probe(int fd, uint64_t off, uint64_t len, struct tdc_image_fs_probe *out,
		       struct tdc_error *e) TDC_MUST_USE;
