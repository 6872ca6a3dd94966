/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "image/fsprobe.h"
#include "util/rd.h"
#include "util/util.h"

/* Superblock locations and fields: ext4 (linux/fs/ext4/ext4.h struct ext4_super_block), XFS
 * (xfs_format.h struct xfs_dsb, big-endian, at byte 0), btrfs (ctree.h struct
 * btrfs_super_block, little-endian, primary copy at 64 KiB). */
#define EXT4_SB_OFF 1024u
#define EXT4_MAGIC 0xef53u
#define XFS_MAGIC 0x58465342u /* "XFSB" */
#define BTRFS_SB_OFF 65536u
#define BTRFS_MAGIC "_BHRfS_M"
#define SB_READ 4096u

const char *tdc_image_fs_name(enum tdc_image_fs t)
{
	switch (t) {
	case TDC_FS_EXT4: return "ext4";
	case TDC_FS_XFS: return "xfs";
	case TDC_FS_BTRFS: return "btrfs";
	default: return "unknown";
	}
}

static int rd_u64be(struct tdc_rd *r, uint64_t *v)
{
	uint32_t hi, lo;

	if (tdc_rd_u32be(r, &hi, NULL, NULL) < 0 || tdc_rd_u32be(r, &lo, NULL, NULL) < 0)
		return -1;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

/* Reads SB_READ bytes at off into buf; false if the partition is too short or the read fails
 * (-errno in *err for a real I/O error). */
static bool read_at(int fd, uint64_t part_off, uint64_t part_len, uint64_t off, uint8_t *buf,
		    int *err)
{
	int r;

	if (part_len < off + SB_READ)
		return false;
	r = tdc_pread_full(fd, buf, SB_READ, part_off + off);
	if (r < 0 && r != -ENODATA)
		*err = r;
	return r == 0;
}

static bool probe_ext4(const uint8_t *sb, struct tdc_image_fs_probe *p)
{
	uint32_t blocks_lo, log_bs;
	uint16_t magic;
	struct tdc_rd r;

	tdc_rd_init(&r, sb, SB_READ);
	if (tdc_rd_skip(&r, 4, NULL, NULL) < 0 || tdc_rd_u32le(&r, &blocks_lo, NULL, NULL) < 0 ||
	    tdc_rd_skip(&r, 0x18 - 8, NULL, NULL) < 0 ||
	    tdc_rd_u32le(&r, &log_bs, NULL, NULL) < 0 ||
	    tdc_rd_skip(&r, 0x38 - 0x1c, NULL, NULL) < 0 ||
	    tdc_rd_u16le(&r, &magic, NULL, NULL) < 0 || magic != EXT4_MAGIC ||
	    tdc_rd_skip(&r, 0x68 - 0x3a, NULL, NULL) < 0 ||
	    tdc_rd_copy(&r, p->uuid, 16, NULL, NULL) < 0)
		return false;
	p->type = TDC_FS_EXT4;
	/* low 32 bits of the block count only: libext2fs checks the full geometry later */
	p->size = log_bs <= 6 ? (uint64_t)blocks_lo << (10 + log_bs) : 0;
	return true;
}

static bool probe_xfs(const uint8_t *sb, struct tdc_image_fs_probe *p)
{
	uint32_t magic, bsize;
	uint64_t dblocks;
	struct tdc_rd r;

	tdc_rd_init(&r, sb, SB_READ);
	if (tdc_rd_u32be(&r, &magic, NULL, NULL) < 0 || magic != XFS_MAGIC ||
	    tdc_rd_u32be(&r, &bsize, NULL, NULL) < 0 || rd_u64be(&r, &dblocks) < 0 ||
	    tdc_rd_skip(&r, 32 - 16, NULL, NULL) < 0 ||
	    tdc_rd_copy(&r, p->uuid, 16, NULL, NULL) < 0)
		return false;
	p->type = TDC_FS_XFS;
	/* XFS block sizes are powers of two from 512 B to 64 KiB */
	if (bsize < 512 || bsize > 65536 || (bsize & (bsize - 1)) || !dblocks ||
	    dblocks > UINT64_MAX / bsize)
		p->size = 0;
	else
		p->size = dblocks * bsize;
	return true;
}

static bool probe_btrfs(const uint8_t *sb, struct tdc_image_fs_probe *p)
{
	uint8_t magic[8];
	uint64_t total;
	struct tdc_rd r;

	tdc_rd_init(&r, sb, SB_READ);
	if (tdc_rd_skip(&r, 0x20, NULL, NULL) < 0 || tdc_rd_copy(&r, p->uuid, 16, NULL, NULL) < 0 ||
	    tdc_rd_skip(&r, 0x40 - 0x30, NULL, NULL) < 0 ||
	    tdc_rd_copy(&r, magic, 8, NULL, NULL) < 0 || memcmp(magic, BTRFS_MAGIC, 8) != 0 ||
	    tdc_rd_skip(&r, 0x70 - 0x48, NULL, NULL) < 0 || tdc_rd_u64le(&r, &total, NULL, NULL) < 0)
		return false;
	p->type = TDC_FS_BTRFS;
	p->size = total;
	return true;
}

int tdc_image_fs_probe(int fd, uint64_t off, uint64_t len, struct tdc_image_fs_probe *out,
		       struct tdc_error *e)
{
	uint8_t sb[SB_READ];
	int err = 0;

	if (fd < 0 || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "fs probe: missing argument");
	memset(out, 0, sizeof(*out));
	/* all three are looked for: two signatures (a filesystem made over another without
	 * wiping it) leave it open which one the guest mounts, so that is refused */
	struct tdc_image_fs_probe c[3] = { 0 };
	bool hit[3] = {
		read_at(fd, off, len, EXT4_SB_OFF, sb, &err) && probe_ext4(sb, &c[0]),
		read_at(fd, off, len, 0, sb, &err) && probe_xfs(sb, &c[1]),
		read_at(fd, off, len, BTRFS_SB_OFF, sb, &err) && probe_btrfs(sb, &c[2]),
	};
	unsigned n = 0;

	if (err < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot read the partition", "%s", strerror(-err));
	for (unsigned i = 0; i < 3; i++)
		if (hit[i] && n++ == 0)
			*out = c[i];
	if (n > 1)
		return TDC_FAILF(e, TDC_E_FORMAT, "partition holds two filesystem signatures",
				 "%s%s%s", hit[0] ? "ext4 " : "", hit[1] ? "xfs " : "",
				 hit[2] ? "btrfs" : "");
	if (!n)
		return 0;
	if (!out->size)
		return TDC_FAILF(e, TDC_E_FORMAT, "filesystem superblock has no valid size", "%s",
				 tdc_image_fs_name(out->type));
	if (out->size > len)
		return TDC_FAILF(e, TDC_E_FORMAT, "filesystem larger than its partition",
				 "%s: %llu > %llu bytes", tdc_image_fs_name(out->type),
				 (unsigned long long)out->size, (unsigned long long)len);
	return 0;
}
