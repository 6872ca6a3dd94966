/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest step as an ordinary user (prep.h): stage the changed files, write a payload disk
 * and /tdcrypt-prep into the private raw copy (debugfs, no mount), boot the guest's own kernel
 * and initrd under QEMU with init=/tdcrypt-prep, read its verdict off the serial log. The key
 * never enters the VM: the LUKS2 header exists already, the VM only sees the clear root and
 * the agent config (header digest, brokers, pins).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/build-int.h"
#include "image/prep.h"
#include "image/proc.h"
#include "util/rd.h"
#include "util/util.h"

#define MIB (1024u * 1024u)
#define MAX_STAGED (4u * 1024u * 1024u)
#define MAX_SERIAL_LOG (16u * 1024u * 1024u)
#define PREP_GUEST_PATH "/tdcrypt-prep"
#define PREP_MEM "2048"
#define PREP_SMP "2"
#define PREP_SANDBOX "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

/* ---- serial log (guest-controlled) ---- */

static void printable(char *dst, size_t cap, const struct tdc_rd *src)
{
	size_t n = tdc_rd_remaining(src), i;

	if (!cap)
		return;
	if (n > cap - 1)
		n = cap - 1;
	for (i = 0; i < n; i++) {
		uint8_t c = tdc_rd_at(src, tdc_rd_mark(src) + i);

		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

/* Decimal of at most 6 digits at the cursor; false if none. */
static bool rd_uint(struct tdc_rd *r, unsigned *out)
{
	unsigned v = 0, n = 0;

	while (!tdc_rd_empty(r) && n < 6) {
		uint8_t c = tdc_rd_at(r, tdc_rd_mark(r));

		if (c < '0' || c > '9')
			break;
		v = v * 10 + (unsigned)(c - '0');
		n++;
		if (tdc_rd_skip(r, 1, "digit", NULL) < 0)
			break;
	}
	*out = v;
	return n > 0;
}

static bool rd_lit(struct tdc_rd *r, const char *s)
{
	size_t n = strlen(s);

	if (!tdc_rd_starts_with(r, s, n))
		return false;
	return tdc_rd_skip(r, n, "literal", NULL) == 0;
}

/* One line (without its end): the part after a known prefix. */
static void scan_line(struct tdc_rd *line, struct tdc_prep_status *st)
{
	unsigned a, b;

	if (rd_lit(line, TDC_PREP_STEP)) {
		if (rd_uint(line, &a) && rd_lit(line, "/") && rd_uint(line, &b) && rd_lit(line, " ") &&
		    a <= b) {
			st->step = a;
			st->steps = b;
			printable(st->step_name, sizeof(st->step_name), line);
		}
	} else if (rd_lit(line, TDC_PREP_OK)) {
		if (rd_lit(line, "count=") && rd_uint(line, &a) && tdc_rd_empty(line)) {
			st->ok = true;
			st->count = a;
		}
	} else if (rd_lit(line, TDC_PREP_FAIL)) {
		size_t sp;
		struct tdc_rd code;

		st->failed = true;
		if (!tdc_rd_find(line, " ", 1, &sp))
			sp = tdc_rd_remaining(line);
		if (tdc_rd_sub(line, sp, &code, "code", NULL) == 0)
			printable(st->fail_code, sizeof(st->fail_code), &code);
		(void)rd_lit(line, " ");
		printable(st->fail_text, sizeof(st->fail_text), line);
	}
}

void tdc_prep_scan(const uint8_t *log, size_t len, struct tdc_prep_status *st)
{
	struct tdc_rd r;

	memset(st, 0, sizeof(*st));
	tdc_rd_init(&r, log, len);
	while (!tdc_rd_empty(&r) && !st->ok && !st->failed) {
		size_t nl;
		struct tdc_rd line;

		if (!tdc_rd_find(&r, "\n", 1, &nl))
			nl = tdc_rd_remaining(&r);
		if (tdc_rd_sub(&r, nl, &line, "line", NULL) != 0)
			break;
		if (!tdc_rd_empty(&r) && tdc_rd_skip(&r, 1, "newline", NULL) < 0)
			break;
		/* the serial console may put \r (and kernel messages) anywhere: the marker must
		 * start the line, a trailing \r is dropped */
		tdc_rd_trim_trailing(&line, '\r');
		while (tdc_rd_starts_with(&line, "\r", 1) && tdc_rd_skip(&line, 1, "cr", NULL) == 0)
			;
		scan_line(&line, st);
	}
}

int tdc_prep_manifest_file(char *dst, size_t cap, mode_t mode, const char *path,
			   struct tdc_error *e)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789._+@/-";

	if (!path || path[0] != '/' || path[1] == '\0' || strspn(path, ok) != strlen(path) ||
	    strstr(path, "/../") || strstr(path, "/./") || strstr(path, "//") ||
	    (strlen(path) >= 3 && !strcmp(path + strlen(path) - 3, "/..")))
		return TDC_FAILF(e, TDC_E_USAGE, "payload path not allowed", "%s",
				 path ? path : "(null)");
	if (mode & ~(mode_t)07777)
		return TDC_FAIL(e, TDC_E_USAGE, "payload mode not allowed");
	if (snprintf(dst, cap, "file %04o %s\n", (unsigned)mode, path) >= (int)cap)
		return TDC_FAIL(e, TDC_E_LIMIT, "payload path too long");
	return 0;
}

/* ---- host side ---- */

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int path_join(char *dst, size_t cap, const char *a, const char *b, struct tdc_error *e)
{
	if (snprintf(dst, cap, "%s%s", a, b) >= (int)cap)
		return TDC_FAIL(e, TDC_E_USAGE, "path too long");
	return 0;
}

static int mkdir_p(const char *path, struct tdc_error *e)
{
	char p[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(p))
		return TDC_FAIL(e, TDC_E_USAGE, "path too long");
	memcpy(p, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];

		p[i] = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return TDC_FAILF(e, TDC_E_IO, "cannot create directory", "%s: %s", p,
					 strerror(errno));
		p[i] = c;
	}
	return 0;
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode,
		      struct tdc_error *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	const uint8_t *p = data;
	int r = 0;

	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create file", "%s: %s", path,
				 strerror(errno));
	while (len && r == 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = TDC_FAILF(e, TDC_E_IO, "cannot write file", "%s: %s", path,
				      strerror(errno));
		else {
			p += n;
			len -= (size_t)n;
		}
	}
	if (close(fd) != 0 && r == 0)
		r = TDC_FAILF(e, TDC_E_IO, "cannot write file", "%s: %s", path, strerror(errno));
	return r;
}

/* What the edits read, copied out of the guest; kept to drop the unchanged ones later. */
#define MAX_STAGED_FILES 8
struct staged {
	char path[64];
	uint8_t *orig;
	size_t len;
};

struct prep {
	struct build *b;
	char stage_root[PATH_MAX];  /* the guest's tree as the payload installs it */
	char payload[PATH_MAX];     /* MANIFEST + root/ */
	struct staged st[MAX_STAGED_FILES];
	size_t n_st;
	char *manifest;
	size_t man_len, man_cap;
	uint64_t payload_bytes;
	double deadline;
	bool timed_out;
};

/* The fs a guest path lives on: the root, or the input's /boot partition for /boot/... */
static void guest_fs(struct prep *p, const char *path, uint64_t *off, const char **inner)
{
	struct build *b = p->b;

	*off = b->root_off;
	*inner = path;
	if (b->boot_part && !strncmp(path, "/boot/", 6)) {
		*off = b->boot_part->first_lba * TDC_GPT_SECTOR;
		*inner = path + 5;
	}
}

static int guest_lookup(struct prep *p, const char *path, uint16_t *mode, struct tdc_error *e)
{
	uint64_t off;
	const char *inner;
	struct tdc_error le = { 0 };
	int r;

	guest_fs(p, path, &off, &inner);
	r = tdc_ext4_lookup(p->b->raw, off, inner, mode, &le);
	if (r == TDC_E_NOT_FOUND) {
		*mode = 0;
		return 0;
	}
	if (r < 0 && e && !e->code)
		*e = le;
	return r;
}

static int stage_file(struct prep *p, const char *path, struct tdc_error *e)
{
	uint64_t off;
	const char *inner;
	uint16_t mode;
	uint8_t *buf;
	size_t len;
	char dst[PATH_MAX], dir[PATH_MAX];

	TDC_GUARD(guest_lookup(p, path, &mode, e));
	if (!mode)
		return 0;
	if (!S_ISREG(mode) && !S_ISLNK(mode))
		return TDC_FAILF(e, TDC_E_UNSUPPORTED, "not a regular file in the guest", "%s",
				 path);
	guest_fs(p, path, &off, &inner);
	TDC_GUARD(tdc_ext4_read_file(p->b->raw, off, inner, MAX_STAGED, &buf, &len, e));
	if (p->n_st == MAX_STAGED_FILES) {
		free(buf);
		return TDC_FAIL(e, TDC_E_INTERNAL, "too many staged files");
	}
	struct staged *s = &p->st[p->n_st++];

	snprintf(s->path, sizeof(s->path), "%s", path);
	s->orig = buf;
	s->len = len;
	TDC_GUARD(path_join(dst, sizeof(dst), p->stage_root, path, e));
	snprintf(dir, sizeof(dir), "%s", dst);
	*strrchr(dir, '/') = '\0';
	TDC_GUARD(mkdir_p(dir, e));
	return write_file(dst, buf, len, 0644, e);
}

/* A staged file the edits left as it was is not installed (its mode and owner stay). */
static void drop_unchanged(struct prep *p)
{
	for (size_t i = 0; i < p->n_st; i++) {
		char dst[PATH_MAX];
		uint8_t *now;
		size_t len;

		if (path_join(dst, sizeof(dst), p->stage_root, p->st[i].path, NULL) < 0 ||
		    tdc_file_read(dst, MAX_STAGED, &now, &len, NULL) < 0)
			continue;
		if (len == p->st[i].len && !memcmp(now, p->st[i].orig, len))
			unlink(dst);
		free(now);
	}
}

static int man_add(struct prep *p, const char *line, struct tdc_error *e)
{
	size_t n = strlen(line);

	if (p->man_len + n + 1 > p->man_cap) {
		size_t cap = p->man_cap ? p->man_cap * 2 : 4096;
		char *np;

		while (cap < p->man_len + n + 1)
			cap *= 2;
		if (!(np = realloc(p->manifest, cap)))
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		p->manifest = np;
		p->man_cap = cap;
	}
	memcpy(p->manifest + p->man_len, line, n + 1);
	p->man_len += n;
	return 0;
}

/* nftw has no argument: the walk's state */
static struct prep *walk_p;
static struct tdc_error *walk_e;

static int walk_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char line[PATH_MAX + 32];

	(void)ftw;
	if (flag == FTW_D || flag == FTW_DP)
		return 0;
	if (flag != FTW_F)
		return TDC_FAILF(walk_e, TDC_E_INTERNAL, "unexpected entry in the payload", "%s",
				 path);
	walk_p->payload_bytes += (uint64_t)st->st_size;
	if (tdc_prep_manifest_file(line, sizeof(line), st->st_mode & 07777,
				   path + strlen(walk_p->stage_root), walk_e) < 0 ||
	    man_add(walk_p, line, walk_e) < 0)
		return -1;
	return 0;
}

static int make_payload(struct prep *p, bool klinks, struct tdc_error *e)
{
	struct build *b = p->b;
	bool deb = b->osr.family == TDC_FAMILY_DEBIAN;
	char line[64], path[PATH_MAX], img[PATH_MAX], size[32];
	int r;

	snprintf(line, sizeof(line), "gen %s\n", deb ? "update-initramfs" : "dracut");
	TDC_GUARD(man_add(p, line, e));
	if (b->boot_part) {
		snprintf(line, sizeof(line), "bootpart %u\n", b->boot_part->index);
		TDC_GUARD(man_add(p, line, e));
	} else {
		TDC_GUARD(man_add(p, "bootsplit\n", e));
	}
	if (klinks)
		TDC_GUARD(man_add(p, "klinks\n", e));
	walk_p = p;
	walk_e = e;
	r = nftw(p->stage_root, walk_cb, 16, FTW_PHYS);
	walk_p = NULL;
	walk_e = NULL;
	if (r != 0)
		return e && e->code ? e->code : TDC_FAIL(e, TDC_E_IO, "cannot walk the payload");
	TDC_GUARD(path_join(path, sizeof(path), p->payload, "/MANIFEST", e));
	TDC_GUARD(write_file(path, p->manifest, p->man_len, 0644, e));
	TDC_GUARD(path_join(img, sizeof(img), b->work, "/payload.img", e));
	snprintf(size, sizeof(size), "%" PRIu64 "M", p->payload_bytes * 2 / MIB + 16);
	const char *argv[] = { "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L",
			       "tdcrypt-payload", "-d", p->payload, img, size, NULL };
	return tdc_run("creating the payload disk", argv, NULL, NULL, e);
}

/* /tdcrypt-prep into the private raw copy's root with debugfs (an ordinary file write). */
static int write_init(struct prep *p, struct tdc_error *e)
{
	struct build *b = p->b;
	char src[PATH_MAX], dev[PATH_MAX + 40], script[PATH_MAX + 256], cmds[PATH_MAX];
	uint8_t *want = NULL, *got = NULL;
	size_t want_len, got_len;
	int r;

	TDC_GUARD(path_join(src, sizeof(src), b->o->guest_dir, "/prep/tdcrypt-prep", e));
	TDC_GUARD(tdc_file_read(src, MAX_STAGED, &want, &want_len, e));
	snprintf(dev, sizeof(dev), "%s?offset=%" PRIu64, b->raw, b->root_off);
	snprintf(script, sizeof(script), "rm " PREP_GUEST_PATH "\nwrite %s " PREP_GUEST_PATH
		 "\nsif " PREP_GUEST_PATH " mode 0100755\nsif " PREP_GUEST_PATH " uid 0\nsif "
		 PREP_GUEST_PATH " gid 0\n", src);
	r = path_join(cmds, sizeof(cmds), b->work, "/debugfs.cmds", e);
	if (r == 0)
		r = write_file(cmds, script, strlen(script), 0600, e);
	const char *argv[] = { "debugfs", "-w", "-f", cmds, dev, NULL };

	if (r == 0)
		r = tdc_run("writing the preparation init into the guest", argv, NULL, NULL, e);
	/* debugfs reports most failures on stderr with exit status 0: read it back */
	if (r == 0 && (tdc_ext4_read_file(b->raw, b->root_off, PREP_GUEST_PATH, MAX_STAGED, &got,
					  &got_len, e) < 0 ||
		       got_len != want_len || memcmp(got, want, want_len)))
		r = e && e->code ? e->code
				 : TDC_FAIL(e, TDC_E_IO, "debugfs did not write " PREP_GUEST_PATH);
	free(want);
	free(got);
	return r;
}

/* After the VM: /tdcrypt-prep out of the root again (the script cannot delete itself and still
 * leave a cleanly read-only root). */
static int remove_init(struct prep *p, struct tdc_error *e)
{
	struct build *b = p->b;
	char dev[PATH_MAX + 40];
	uint16_t mode = 0;
	const char *argv[] = { "debugfs", "-w", "-R", "rm " PREP_GUEST_PATH, dev, NULL };

	snprintf(dev, sizeof(dev), "%s?offset=%" PRIu64, b->raw, b->root_off);
	TDC_GUARD(tdc_run("removing the preparation init from the guest", argv, NULL, NULL, e));
	TDC_GUARD(guest_lookup(p, PREP_GUEST_PATH, &mode, e));
	if (mode)
		return TDC_FAIL(e, TDC_E_IO, "debugfs did not remove " PREP_GUEST_PATH);
	return 0;
}

static int prep_tick(void *arg)
{
	struct prep *p = arg;

	if (mono_s() > p->deadline) {
		p->timed_out = true;
		return 1;
	}
	return tdc_build_tick(p->b);
}

static int run_vm(struct prep *p, struct tdc_error *e)
{
	struct build *b = p->b;
	struct tdc_direct_boot db;
	char kernel[PATH_MAX], initrd[PATH_MAX], serial[PATH_MAX + 8], log[PATH_MAX];
	char d_root[PATH_MAX + 64], d_payload[PATH_MAX + 64], d_boot[PATH_MAX + 64];
	char append[sizeof(db.cmdline) + 128];
	uint32_t timeout = b->o->prep_timeout_s ? b->o->prep_timeout_s
						: TDC_IMAGE_DEFAULT_PREP_TIMEOUT_S;
	struct tdc_prep_status st;
	uint8_t *out = NULL;
	size_t out_len = 0;
	int r;

	TDC_GUARD(tdc_image_direct_boot(b->raw, &db, e));
	if ((r = path_join(kernel, sizeof(kernel), b->work, "/prep.vmlinuz", e)) < 0 ||
	    (r = path_join(initrd, sizeof(initrd), b->work, "/prep.initrd", e)) < 0 ||
	    (r = path_join(log, sizeof(log), b->work, "/prep.serial", e)) < 0 ||
	    (r = write_file(kernel, db.kernel, db.kernel_len, 0600, e)) < 0 ||
	    (r = write_file(initrd, db.initrd, db.initrd_len, 0600, e)) < 0)
		goto out;
	if (strpbrk(db.cmdline, "\n\r")) {
		r = TDC_FAIL(e, TDC_E_FORMAT, "the guest's kernel command line has a line break");
		goto out;
	}
	/* rw: the script writes the root; later words win over the entry's "ro" */
	snprintf(append, sizeof(append), "%s rw init=" PREP_GUEST_PATH " console=ttyS0 panic=-1",
		 db.cmdline);
	snprintf(serial, sizeof(serial), "file:%s", log);
	snprintf(d_root, sizeof(d_root), "file=%s,format=raw,if=virtio,cache=unsafe", b->raw);
	snprintf(d_payload, sizeof(d_payload), "file=%s/payload.img,format=raw,if=virtio,readonly=on",
		 b->work);
	/* vdc: the new /boot (empty ext4); none with the input's own /boot partition */
	snprintf(d_boot, sizeof(d_boot), "file=%s,format=raw,if=virtio,cache=unsafe", b->boot_img);
	/* the guest is hostile input: QEMU's seccomp sandbox (no exec, no privilege changes) */
	const char *argv[] = { "qemu-system-x86_64", "-sandbox", PREP_SANDBOX, "-accel",
			       "tcg,thread=multi", "-cpu", "max", "-machine", "q35", "-m", PREP_MEM, "-smp", PREP_SMP, "-nodefaults",
			       "-display", "none", "-no-reboot", "-serial", serial, "-kernel",
			       kernel, "-initrd", initrd, "-append", append, "-drive", d_root,
			       "-drive", d_payload, b->boot_part ? NULL : "-drive", d_boot, NULL };

	TDC_GUARD(tdc_build_stage(b, b->osr.family == TDC_FAMILY_DEBIAN
					     ? "update-initramfs (guest VM)"
					     : "dracut (guest VM)", e));
	p->deadline = mono_s() + timeout;
	r = tdc_run_watch("booting the image to prepare it (QEMU, no root needed)", argv, NULL,
			  NULL, prep_tick, p, e);
	if (r == TDC_E_CANCELLED && p->timed_out) {
		e->code = 0;
		r = TDC_FAILF(e, TDC_E_IO, "the preparation VM did not finish in time",
			      "%" PRIu32 " s", timeout);
	}
	if (r < 0)
		goto out;
	if ((r = tdc_file_read(log, MAX_SERIAL_LOG, &out, &out_len, e)) < 0)
		goto out;
	tdc_prep_scan(out, out_len, &st);
	if (st.failed)
		r = TDC_FAILF(e, TDC_E_UNSUPPORTED, "the guest step failed in the preparation VM",
			      "%s: %s", st.fail_code, st.fail_text);
	else if (!st.ok)
		r = TDC_FAILF(e, TDC_E_IO, "the preparation VM stopped without reporting success",
			      "last step %u/%u %s", st.step, st.steps, st.step_name);
	else if (st.count == 0)
		r = TDC_FAIL(e, TDC_E_UNSUPPORTED, "no initramfs found in the guest's /boot");
	else
		b->r->initramfs_count = st.count;
out:
	free(out);
	tdc_direct_boot_free(&db);
	return r;
}

/* The new /boot the VM fills (vdc): empty, and with a UUID of its own while the VM runs (it
 * takes over the root's old UUID afterwards), else the guest's root=UUID= could find it. */
static int blank_boot_fs(struct build *b, const char *empty_dir, struct tdc_error *e)
{
	char keep[sizeof(b->boot_uuid)];
	uint8_t tmp[16];
	int r;

	TDC_GUARD(tdc_guid_random(tmp, e));
	memcpy(keep, b->boot_uuid, sizeof(keep));
	tdc_uuid_format(tmp, b->boot_uuid);
	r = tdc_build_boot_fs(b, empty_dir, e);
	memcpy(b->boot_uuid, keep, sizeof(keep));
	return r;
}

int tdc_build_guest_vm(struct build *b, struct tdc_error *e)
{
	static const char *const staged[] = { "/etc/fstab", "/etc/crypttab", "/etc/kernel/cmdline",
					      "/etc/default/grub", "/boot/grub/grub.cfg",
					      "/boot/grub2/grub.cfg", NULL };
	static const char *const links[] = { "/vmlinuz", "/vmlinuz.old", "/initrd.img",
					     "/initrd.img.old", NULL };
	bool deb = b->osr.family == TDC_FAMILY_DEBIAN, klinks = false;
	struct prep *p = calloc(1, sizeof(*p));
	char empty[PATH_MAX];
	uint16_t mode;
	int root = -1, r;

	if (!p)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	p->b = b;
	if ((r = tdc_build_stage(b, "guest: payload", e)) < 0 ||
	    (r = path_join(p->payload, sizeof(p->payload), b->work, "/payload", e)) < 0 ||
	    (r = path_join(p->stage_root, sizeof(p->stage_root), p->payload, "/root", e)) < 0 ||
	    (r = mkdir_p(p->stage_root, e)) < 0)
		goto out;
	/* what the chroot path checks on the mounted tree, from the unmounted fs */
	if ((r = guest_lookup(p, "/boot", &mode, e)) < 0)
		goto out;
	if (!S_ISDIR(mode)) {
		r = TDC_FAIL(e, TDC_E_UNSUPPORTED, "the guest root has no /boot directory");
		goto out;
	}
	bool gen = false;
	const char *const gens[] = { deb ? "/usr/sbin/update-initramfs" : "/usr/bin/dracut",
				     deb ? "/sbin/update-initramfs" : "/usr/sbin/dracut" };

	for (size_t i = 0; i < 2 && r == 0; i++) {
		r = guest_lookup(p, gens[i], &mode, e);
		gen |= mode != 0;
	}
	if (r < 0)
		goto out;
	if (!gen) {
		r = TDC_FAILF(e, TDC_E_UNSUPPORTED, "the guest lacks its initramfs generator", "%s",
			      deb ? "initramfs-tools" : "dracut");
		goto out;
	}
	if ((r = guest_lookup(p, "/boot/loader/entries", &mode, e)) < 0)
		goto out;
	if (mode) { /* the edits list that directory: not done out of the unmounted fs yet */
		r = TDC_FAIL(e, TDC_E_UNSUPPORTED, "BLS entries (/boot/loader/entries) need "
			     "--guest-step chroot (as root) for now");
		goto out;
	}
	for (size_t i = 0; staged[i]; i++)
		if ((r = stage_file(p, staged[i], e)) < 0)
			goto out;
	for (size_t i = 0; deb && links[i] && !klinks; i++) {
		if ((r = guest_lookup(p, links[i], &mode, e)) < 0)
			goto out;
		klinks = S_ISLNK(mode);
	}
	if (klinks && (r = stage_file(p, "/etc/kernel-img.conf", e)) < 0)
		goto out;
	root = open(p->stage_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot open the staging tree", "%s", strerror(errno));
		goto out;
	}
	if ((r = tdc_build_stage(b, "guest: agent, config, integration", e)) < 0 ||
	    (r = tdc_build_guest_staged(b, root, klinks, e)) < 0)
		goto out;
	drop_unchanged(p);
	if ((r = make_payload(p, klinks, e)) < 0 || (r = write_init(p, e)) < 0)
		goto out;
	/* the new /boot, filled by the VM (or a blank vdc with the input's own /boot) */
	if ((r = path_join(empty, sizeof(empty), b->work, "/boot.empty", e)) < 0)
		goto out;
	if (mkdir(empty, 0700) != 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot create directory", "%s", strerror(errno));
		goto out;
	}
	if (!b->boot_part && (r = blank_boot_fs(b, empty, e)) < 0)
		goto out;
	if ((r = run_vm(p, e)) < 0 || (r = remove_init(p, e)) < 0)
		goto out;
	if (!b->boot_part) {
		const char *argv_fsck[] = { "e2fsck", "-f", "-p", b->boot_img, NULL };
		const char *argv_uuid[] = { "tune2fs", "-O", "metadata_csum_seed", "-U",
					    b->boot_uuid, b->boot_img, NULL };

		if ((r = tdc_run("checking the new /boot filesystem", argv_fsck, NULL, NULL, e)) < 0 ||
		    (r = tdc_run("giving /boot the root's old filesystem UUID", argv_uuid, NULL, NULL,
				 e)) < 0)
			goto out;
	}
	b->r->guest_modified = true;
out:
	if (root >= 0)
		close(root);
	for (size_t i = 0; i < p->n_st; i++)
		free(p->st[i].orig);
	free(p->manifest);
	free(p);
	return r;
}

enum tdc_image_guest_step tdc_image_guest_step_pick(enum tdc_image_guest_step req, unsigned euid)
{
	if (req == TDC_GUEST_STEP_CHROOT || req == TDC_GUEST_STEP_VM)
		return req;
	return euid == 0 ? TDC_GUEST_STEP_CHROOT : TDC_GUEST_STEP_VM;
}

const char *tdc_image_guest_step_name(enum tdc_image_guest_step s)
{
	switch (s) {
	case TDC_GUEST_STEP_CHROOT:
		return "chroot";
	case TDC_GUEST_STEP_VM:
		return "vm";
	default:
		return "auto";
	}
}
