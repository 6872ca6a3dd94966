/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

#include "image/overlay.h"

struct ovl_priv {
	io_channel inner;              /* unix_io_manager, read-only */
	struct tdc_overlay *ov;
};

/* The overlay the next ovl_open binds to (ext2fs_open2 has no argument for it). */
static _Thread_local struct tdc_overlay *ovl_pending;

void tdc_overlay_free(struct tdc_overlay *ov)
{
	if (!ov)
		return;
	for (size_t i = 0; i < ov->n; i++)
		free(ov->v[i].data);
	free(ov->v);
	memset(ov, 0, sizeof(*ov));
}

void tdc_overlay_apply(const struct tdc_overlay *ov, uint8_t *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; ov && i < ov->n; i++) {
		const struct tdc_overlay_ext *x = &ov->v[i];
		uint64_t a = x->off > off ? x->off : off;
		uint64_t b = x->off + x->len < off + len ? x->off + x->len : off + len;

		if (a < b)
			memcpy(buf + (a - off), x->data + (a - x->off), (size_t)(b - a));
	}
}

static errcode_t ovl_add(struct tdc_overlay *ov, uint64_t off, size_t len, const void *data)
{
	if (ov->failed || len > TDC_MAX_EXT4_OVERLAY_BYTES - ov->bytes) {
		ov->failed = 1;
		return EXT2_ET_NO_MEMORY;
	}
	if (ov->n == ov->cap) {
		size_t cap = ov->cap ? ov->cap * 2 : 16;
		struct tdc_overlay_ext *v = realloc(ov->v, cap * sizeof(*v));

		if (!v) {
			ov->failed = 1;
			return EXT2_ET_NO_MEMORY;
		}
		ov->v = v;
		ov->cap = cap;
	}
	uint8_t *d = malloc(len ? len : 1);

	if (!d) {
		ov->failed = 1;
		return EXT2_ET_NO_MEMORY;
	}
	memcpy(d, data, len);
	ov->v[ov->n++] = (struct tdc_overlay_ext){ .off = off, .len = (uint32_t)len, .data = d };
	ov->bytes += len;
	return 0;
}

static size_t ovl_size(io_channel ch, int count)
{
	return count < 0 ? (size_t)-(long)count : (size_t)count * (size_t)ch->block_size;
}

static errcode_t ovl_close(io_channel ch)
{
	struct ovl_priv *p = ch->private_data;

	if (--ch->refcount > 0)
		return 0;
	if (p && p->inner)
		io_channel_close(p->inner);
	free(p);
	free(ch->name);
	free(ch);
	return 0;
}

static errcode_t ovl_set_blksize(io_channel ch, int blksize)
{
	struct ovl_priv *p = ch->private_data;
	errcode_t err = io_channel_set_blksize(p->inner, blksize);

	if (!err)
		ch->block_size = blksize;
	return err;
}

static errcode_t ovl_read_blk64(io_channel ch, unsigned long long block, int count, void *data)
{
	struct ovl_priv *p = ch->private_data;
	errcode_t err = io_channel_read_blk64(p->inner, block, count, data);

	if (!err)
		tdc_overlay_apply(p->ov, data, block * (unsigned long long)ch->block_size,
				  ovl_size(ch, count));
	return err;
}

static errcode_t ovl_read_blk(io_channel ch, unsigned long block, int count, void *data)
{
	return ovl_read_blk64(ch, block, count, data);
}

static errcode_t ovl_write_blk64(io_channel ch, unsigned long long block, int count,
				 const void *data)
{
	struct ovl_priv *p = ch->private_data;

	return ovl_add(p->ov, block * (unsigned long long)ch->block_size, ovl_size(ch, count),
		       data);
}

static errcode_t ovl_write_blk(io_channel ch, unsigned long block, int count, const void *data)
{
	return ovl_write_blk64(ch, block, count, data);
}

static errcode_t ovl_flush(io_channel ch)
{
	(void)ch;
	return 0;
}

static errcode_t ovl_set_option(io_channel ch, const char *option, const char *arg)
{
	struct ovl_priv *p = ch->private_data;

	/* "offset": the inner channel maps block numbers to the partition */
	if (!p->inner->manager->set_option)
		return EXT2_ET_INVALID_ARGUMENT;
	return p->inner->manager->set_option(p->inner, option, arg);
}

static errcode_t ovl_open(const char *name, int flags, io_channel *out);

static struct struct_io_manager ovl_manager = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "tdcrypt overlay I/O manager",
	.open = ovl_open,
	.close = ovl_close,
	.set_blksize = ovl_set_blksize,
	.read_blk = ovl_read_blk,
	.write_blk = ovl_write_blk,
	.flush = ovl_flush,
	.set_option = ovl_set_option,
	.read_blk64 = ovl_read_blk64,
	.write_blk64 = ovl_write_blk64,
};

static errcode_t ovl_open(const char *name, int flags, io_channel *out)
{
	io_channel ch = calloc(1, sizeof(*ch));
	struct ovl_priv *p = calloc(1, sizeof(*p));
	errcode_t err = EXT2_ET_NO_MEMORY;

	if (!ovl_pending)
		err = EXT2_ET_BAD_DEVICE_NAME;
	if (!ch || !p || !ovl_pending || !(ch->name = strdup(name)))
		goto fail;
	/* never opened for writing: the file is the caller's input */
	err = unix_io_manager->open(name, flags & ~(IO_FLAG_RW | IO_FLAG_EXCLUSIVE), &p->inner);
	if (err)
		goto fail;
	p->ov = ovl_pending;
	ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	ch->manager = &ovl_manager;
	ch->block_size = p->inner->block_size;
	ch->refcount = 1;
	ch->flags = flags;
	ch->private_data = p;
	*out = ch;
	return 0;
fail:
	if (ch)
		free(ch->name);
	free(ch);
	free(p);
	return err;
}

int tdc_ext4_set_uuid_overlay(const char *src, uint64_t src_offset, const uint8_t uuid[16],
			      struct tdc_overlay *ov, struct tdc_error *e)
{
	char io_opts[40];
	ext2_filsys fs = NULL;
	struct ext2_super_block *sb;
	errcode_t err;

	if (!src || !uuid || !ov)
		return TDC_FAIL(e, TDC_E_USAGE, "overlay: missing argument");
	snprintf(io_opts, sizeof(io_opts), "offset=%" PRIu64, src_offset);
	ovl_pending = ov;
	err = ext2fs_open2(src, src_offset ? io_opts : NULL, EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0,
			   &ovl_manager, &fs);
	ovl_pending = NULL;
	if (err)
		return TDC_FAILF(e, TDC_E_FORMAT, "not an ext2/3/4 filesystem", "%s: %s", src,
				 error_message(err));
	sb = fs->super;
	if (ext2fs_has_feature_stable_inodes(sb) ||
	    (ext2fs_has_feature_ea_inode(sb) && !ext2fs_has_feature_metadata_csum(sb) &&
	     !ext2fs_has_feature_csum_seed(sb))) {
		ext2fs_free(fs);
		return TDC_FAIL(e, TDC_E_UNSUPPORTED,
				"root filesystem UUID cannot be changed (stable_inodes or ea_inode)");
	}
	/* what tune2fs -O metadata_csum_seed -U does: only superblocks (and, with the crc16
	 * group descriptor checksums that hash the UUID, the descriptors) change */
	fs->flags |= EXT2_FLAG_SUPER_ONLY;
	if (ext2fs_has_feature_metadata_csum(sb) && !ext2fs_has_feature_csum_seed(sb)) {
		sb->s_checksum_seed = fs->csum_seed;
		ext2fs_set_feature_csum_seed(sb);
	}
	memcpy(sb->s_uuid, uuid, 16);
	ext2fs_init_csum_seed(fs);
	if (ext2fs_has_group_desc_csum(fs) && !ext2fs_has_feature_metadata_csum(sb)) {
		for (dgrp_t g = 0; g < fs->group_desc_count; g++)
			ext2fs_group_desc_csum_set(fs, g);
		fs->flags &= ~EXT2_FLAG_SUPER_ONLY;
	}
	ext2fs_mark_super_dirty(fs);
	err = ext2fs_close_free(&fs);
	if (ov->failed)
		return TDC_FAIL(e, TDC_E_LIMIT, "filesystem metadata overlay too large");
	if (err)
		return TDC_FAILF(e, TDC_E_IO, "cannot change the root filesystem UUID", "%s",
				 error_message(err));
	return 0;
}
