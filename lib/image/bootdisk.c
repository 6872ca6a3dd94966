/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A disk image as the firmware and GRUB see it, read-only: the GPT (whose bytes the firmware
 * measures), the filesystems by partition number and UUID (GRUB's search --fs-uuid), files
 * out of ext4 (libext2fs) and FAT (mtools). Nothing is mounted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/distro.h"
#include "image/gpt.h"
#include "image/proc.h"
#include "tdcrypt/image.h"
#include "tdcrypt/launch.h"
#include "util/util.h"

#define MAX_BOOT_FILE (256u * 1024u * 1024u)

static void rm_tree(const char *dir)
{
	char p[4200];
	const char *names[] = { "disk.raw", "file", NULL };
	for (size_t i = 0; names[i]; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

void tdc_bootdisk_close(struct tdc_bootdisk *d)
{
	if (!d)
		return;
	free(d->head);
	if (d->tmpdir[0])
		rm_tree(d->tmpdir);
	memset(d, 0, sizeof(*d));
}

static int make_tmpdir(struct tdc_bootdisk *d, struct tdc_error *e)
{
	if (d->tmpdir[0])
		return 0;
	const char *t = getenv("TMPDIR");
	snprintf(d->tmpdir, sizeof(d->tmpdir), "%s/tdcrypt-measure.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(d->tmpdir)) {
		d->tmpdir[0] = '\0';
		return TDC_FAILF(e, TDC_E_IO, "cannot create a temporary directory", "%s",
				 strerror(errno));
	}
	return 0;
}

/* The filesystem UUID GRUB would show for the partition at off, or "" */
static void fs_uuid(int fd, uint64_t off, struct tdc_bootdisk *d, size_t i)
{
	uint8_t sb[1024 + 0x78], bs[0x60];
	d->fs[i].uuid[0] = '\0';
	if (tdc_pread_full(fd, sb, sizeof(sb), off) == 0 && sb[1024 + 0x38] == 0x53 &&
	    sb[1024 + 0x39] == 0xef) {
		tdc_uuid_format(sb + 1024 + 0x68, d->fs[i].uuid);
		return;
	}
	if (tdc_pread_full(fd, bs, sizeof(bs), off) < 0)
		return;
	size_t at = 0;
	if (!memcmp(bs + 0x52, "FAT32", 5))
		at = 0x43;
	else if (!memcmp(bs + 0x36, "FAT", 3))
		at = 0x27;
	if (!at)
		return;
	d->fs[i].fat = true;
	snprintf(d->fs[i].uuid, sizeof(d->fs[i].uuid), "%02x%02x-%02x%02x", bs[at + 3], bs[at + 2],
		 bs[at + 1], bs[at]);
}

int tdc_bootdisk_open(const char *image, struct tdc_bootdisk *d, struct tdc_error *e)
{
	enum tdc_disk_format f;
	struct stat st;
	struct tdc_gpt *gpt = NULL;
	int fd = -1, r;

	memset(d, 0, sizeof(*d));
	TDC_GUARD(tdc_disk_format_detect(image, &f, e));
	if (f == TDC_DISK_QCOW2) {
		TDC_GUARD(make_tmpdir(d, e));
		snprintf(d->raw, sizeof(d->raw), "%s/disk.raw", d->tmpdir);
		const char *argv[] = { "qemu-img", "convert", "-q", "-f", "qcow2", "-O", "raw",
				       image, d->raw, NULL };
		if ((r = tdc_run("reading the qcow2 image", argv, NULL, NULL, e)) < 0)
			goto fail;
	} else {
		snprintf(d->raw, sizeof(d->raw), "%s", image);
	}
	if ((fd = open(d->raw, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot open the disk image", "%s: %s", image,
			      strerror(errno));
		goto fail;
	}
	d->size = (uint64_t)st.st_size;
	d->head_len = d->size < TDC_GPT_PREFIX ? (size_t)d->size : TDC_GPT_PREFIX;
	if (!(d->head = malloc(d->head_len)) || !(gpt = malloc(sizeof(*gpt)))) {
		r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		goto fail;
	}
	if (tdc_pread_full(fd, d->head, d->head_len, 0) < 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot read the disk image", "%s", image);
		goto fail;
	}
	if ((r = tdc_gpt_parse(d->head, d->head_len, d->size, gpt, e)) < 0)
		goto fail;
	for (size_t i = 0; i < gpt->n && d->n_fs < TDC_BOOTDISK_MAX_FS; i++) {
		const struct tdc_gpt_part *p = &gpt->parts[i];
		size_t k = d->n_fs;
		d->fs[k].part = p->index;
		d->fs[k].offset = p->first_lba * TDC_GPT_SECTOR;
		fs_uuid(fd, d->fs[k].offset, d, k);
		if (!d->fs[k].uuid[0])
			continue;
		if (tdc_guid_equal(p->type, TDC_GPT_TYPE_ESP) && d->fs[k].fat && !d->esp)
			d->esp = p->index;
		d->n_fs++;
	}
	free(gpt);
	close(fd);
	return 0;
fail:
	free(gpt);
	if (fd >= 0)
		close(fd);
	tdc_bootdisk_close(d);
	return r;
}

int tdc_bootdisk_read(struct tdc_bootdisk *d, unsigned part, const char *path, uint8_t **buf,
		      size_t *len, struct tdc_error *e)
{
	size_t i;
	*buf = NULL;
	*len = 0;
	for (i = 0; i < d->n_fs && d->fs[i].part != part; i++)
		;
	if (i == d->n_fs)
		return TDC_FAILF(e, TDC_E_NOT_FOUND, "no filesystem on that partition", "%u", part);
	if (!d->fs[i].fat) {
		struct tdc_error fe;
		tdc_error_clear(&fe);
		int r = tdc_ext4_read_file(d->raw, d->fs[i].offset, path, MAX_BOOT_FILE, buf, len, &fe);
		if (r == TDC_E_IO && fe.reason && strstr(fe.reason, "no such file"))
			return TDC_FAILF(e, TDC_E_NOT_FOUND, "no such file", "%s", path);
		if (r < 0 && e)
			*e = fe;
		return r;
	}
	/* FAT: mtools, into a file (binary), then read */
	char img[4200], out[4200], src[600];
	TDC_GUARD(make_tmpdir(d, e));
	snprintf(img, sizeof(img), "%s@@%" PRIu64, d->raw, d->fs[i].offset);
	snprintf(out, sizeof(out), "%s/file", d->tmpdir);
	snprintf(src, sizeof(src), "::%s", path);
	for (char *c = src; *c; c++)
		if (*c == '\\')
			*c = '/';
	unlink(out);
	char *env[] = { "MTOOLS_SKIP_CHECK=1", "PATH=/usr/bin:/bin", NULL };
	const char *argv[] = { "mcopy", "-n", "-i", img, src, out, NULL };
	struct tdc_error fe;
	tdc_error_clear(&fe);
	if (tdc_run("reading the ESP", argv, env, NULL, &fe) < 0)
		return TDC_FAILF(e, TDC_E_NOT_FOUND, "no such file on the ESP", "%s", path);
	int r = tdc_file_read(out, MAX_BOOT_FILE, buf, len, e);
	unlink(out);
	return r;
}

static unsigned grub_find_uuid(void *arg, const char *uuid)
{
	struct tdc_bootdisk *d = arg;
	for (size_t i = 0; i < d->n_fs; i++)
		if (!strcasecmp(d->fs[i].uuid, uuid))
			return d->fs[i].part;
	return 0;
}

static int grub_read(void *arg, unsigned part, const char *path, uint8_t **buf, size_t *len,
		     struct tdc_error *e)
{
	return tdc_bootdisk_read(arg, part, path, buf, len, e);
}

void tdc_bootdisk_grub(struct tdc_bootdisk *d, struct tdc_grub_disk *g)
{
	g->arg = d;
	g->find_uuid = grub_find_uuid;
	g->read = grub_read;
}
