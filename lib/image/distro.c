/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

#include "image/distro.h"
#include "util/rd.h"

static const struct {
	const char *id;
	enum tdc_distro_family f;
} families[] = {
	{ "debian", TDC_FAMILY_DEBIAN }, { "ubuntu", TDC_FAMILY_DEBIAN },
	{ "rhel", TDC_FAMILY_RHEL },     { "fedora", TDC_FAMILY_RHEL },
	{ "centos", TDC_FAMILY_RHEL },   { "rocky", TDC_FAMILY_RHEL },
	{ "almalinux", TDC_FAMILY_RHEL }, { "alma", TDC_FAMILY_RHEL },
};

const char *tdc_distro_family_name(enum tdc_distro_family f)
{
	switch (f) {
	case TDC_FAMILY_DEBIAN:
		return "debian";
	case TDC_FAMILY_RHEL:
		return "rhel";
	default:
		return "unknown";
	}
}

static enum tdc_distro_family family_of(const char *word, size_t len)
{
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		if (strlen(families[i].id) == len && !memcmp(families[i].id, word, len))
			return families[i].f;
	return TDC_FAMILY_UNKNOWN;
}

/* Copies a value, dropping one level of quotes, non-printable bytes as '?'. */
static void set_value(char *dst, size_t cap, const struct tdc_rd *line, size_t from, size_t to)
{
	size_t k = 0;

	if (to > from + 1 && (tdc_rd_at(line, from) == '"' || tdc_rd_at(line, from) == '\'') &&
	    tdc_rd_at(line, to - 1) == tdc_rd_at(line, from)) {
		from++;
		to--;
	}
	for (size_t i = from; i < to && k + 1 < cap; i++) {
		uint8_t c = tdc_rd_at(line, i);

		dst[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[k] = '\0';
}

int tdc_os_release_parse(const uint8_t *buf, size_t len, struct tdc_os_release *o,
			 struct tdc_error *e)
{
	struct tdc_rd r;

	if (!buf || !o)
		return TDC_FAIL(e, TDC_E_USAGE, "os-release: missing argument");
	memset(o, 0, sizeof(*o));
	if (len > TDC_MAX_OS_RELEASE)
		return TDC_FAILF(e, TDC_E_LIMIT, "os-release too large", "%zu bytes", len);
	tdc_rd_init(&r, buf, len);
	while (!tdc_rd_empty(&r) && tdc_rd_remaining(&r) > 0) {
		struct tdc_rd line;
		size_t nl, eq = SIZE_MAX;

		if (!tdc_rd_find(&r, "\n", 1, &nl))
			nl = tdc_rd_remaining(&r);
		TDC_GUARD(tdc_rd_sub(&r, nl, &line, "os-release", e));
		if (tdc_rd_remaining(&r))
			TDC_GUARD(tdc_rd_skip(&r, 1, "os-release", e));
		for (size_t i = 0; i < tdc_rd_len(&line); i++)
			if (tdc_rd_at(&line, i) == '=') {
				eq = i;
				break;
			}
		if (eq == SIZE_MAX)
			continue;
#define KEY(k) (eq == sizeof(k) - 1 && tdc_rd_starts_with(&line, k, eq))
		if (KEY("ID"))
			set_value(o->id, sizeof(o->id), &line, eq + 1, tdc_rd_len(&line));
		else if (KEY("ID_LIKE"))
			set_value(o->id_like, sizeof(o->id_like), &line, eq + 1, tdc_rd_len(&line));
		else if (KEY("VERSION_ID"))
			set_value(o->version_id, sizeof(o->version_id), &line, eq + 1,
				  tdc_rd_len(&line));
		else if (KEY("PRETTY_NAME"))
			set_value(o->pretty_name, sizeof(o->pretty_name), &line, eq + 1,
				  tdc_rd_len(&line));
#undef KEY
	}
	o->family = family_of(o->id, strlen(o->id));
	/* ID_LIKE is a space-separated list, closest first */
	for (const char *p = o->id_like; !o->family && *p;) {
		size_t n = strcspn(p, " ");

		o->family = family_of(p, n);
		p += n;
		p += strspn(p, " ");
	}
	return 0;
}

int tdc_ext4_read_file(const char *src, uint64_t src_offset, const char *path, size_t max,
		       uint8_t **out, size_t *len, struct tdc_error *e)
{
	char io_opts[40];
	ext2_filsys fs = NULL;
	ext2_file_t f = NULL;
	ext2_ino_t ino;
	errcode_t err;
	uint64_t size;
	uint8_t *buf = NULL;
	unsigned got = 0;
	int r = 0;

	if (!src || !path || !out || !len)
		return TDC_FAIL(e, TDC_E_USAGE, "ext4: missing argument");
	*out = NULL;
	*len = 0;
	snprintf(io_opts, sizeof(io_opts), "offset=%" PRIu64, src_offset);
	err = ext2fs_open2(src, src_offset ? io_opts : NULL, EXT2_FLAG_64BITS, 0, 0,
			   unix_io_manager, &fs);
	if (err)
		return TDC_FAILF(e, TDC_E_FORMAT, "not an ext2/3/4 filesystem", "%s",
				 error_message(err));
	err = ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino);
	if (err) {
		r = TDC_FAILF(e, TDC_E_IO, "no such file in the filesystem", "%s", path);
		goto out;
	}
	err = ext2fs_file_open(fs, ino, 0, &f);
	if (err) {
		r = TDC_FAILF(e, TDC_E_FORMAT, "cannot open file in the filesystem", "%s: %s",
			      path, error_message(err));
		goto out;
	}
	size = ext2fs_file_get_size(f);
	if (size > max) {
		r = TDC_FAILF(e, TDC_E_LIMIT, "file too large", "%s: %" PRIu64 " bytes", path,
			      size);
		goto out;
	}
	buf = malloc((size_t)size + 1);
	if (!buf) {
		r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		goto out;
	}
	err = ext2fs_file_read(f, buf, (unsigned)size, &got);
	if (err || got != size) {
		r = TDC_FAILF(e, TDC_E_FORMAT, "cannot read file in the filesystem", "%s", path);
		goto out;
	}
	buf[size] = '\0';
	*out = buf;
	*len = (size_t)size;
	buf = NULL;
out:
	free(buf);
	if (f)
		ext2fs_file_close(f);
	ext2fs_close_free(&fs);
	return r;
}

int tdc_ext4_lookup(const char *src, uint64_t src_offset, const char *path, uint16_t *mode,
		    struct tdc_error *e)
{
	char io_opts[40];
	ext2_filsys fs = NULL;
	struct ext2_inode inode;
	ext2_ino_t ino;
	errcode_t err;
	int r = 0;

	if (!src || !path || !mode)
		return TDC_FAIL(e, TDC_E_USAGE, "ext4: missing argument");
	snprintf(io_opts, sizeof(io_opts), "offset=%" PRIu64, src_offset);
	err = ext2fs_open2(src, src_offset ? io_opts : NULL, EXT2_FLAG_64BITS, 0, 0,
			   unix_io_manager, &fs);
	if (err)
		return TDC_FAILF(e, TDC_E_FORMAT, "not an ext2/3/4 filesystem", "%s",
				 error_message(err));
	err = ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino);
	if (err == EXT2_ET_FILE_NOT_FOUND) {
		r = TDC_FAILF(e, TDC_E_NOT_FOUND, "no such file in the filesystem", "%s", path);
	} else if (err || (err = ext2fs_read_inode(fs, ino, &inode))) {
		r = TDC_FAILF(e, TDC_E_FORMAT, "cannot look the file up in the filesystem",
			      "%s: %s", path, error_message(err));
	} else {
		*mode = inode.i_mode;
	}
	ext2fs_close_free(&fs);
	return r;
}
