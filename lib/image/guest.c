/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Changes made inside the guest root before it is encrypted: the agent and its config, the
 * initramfs integration (guest/), fstab, kernel links and boot config; then the guest's own
 * initramfs generator runs in a chroot. Needs root (loop mount + chroot). The same file changes
 * are made in a staging tree for the preparation VM (prep.c), which needs none of that.
 *
 * The guest image is not trusted to be well-formed: every path inside it is resolved with
 * openat2(RESOLVE_IN_ROOT), so a symlink in the guest cannot make us write outside the mount.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <json-c/json.h>

#include "image/build-int.h"
#include "image/proc.h"
#include "util/util.h"

/* Caps on guest files we read and edit (fstab, grub.cfg, ...), and on the agent binary. */
#define MAX_GUEST_TEXT (4u * 1024u * 1024u)
#define MAX_AGENT_BINARY (64u * 1024u * 1024u)
#define AGENT_GUEST_PATH "/usr/local/sbin/tdcrypt-agent"
#define CONFIG_GUEST_PATH "/etc/tdcrypt/agent.json"
#define SIM_GUEST_PATH "/etc/tdcrypt/sim"

static int gr_open(int root, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};

	while (*path == '/')
		path++;
	return (int)syscall(SYS_openat2, root, *path ? path : ".", &how, sizeof(how));
}

/* Opens the parent directory of path (O_PATH) and points *base at the last component. */
static int gr_parent(int root, const char *path, const char **base)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;

	if (n >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, path, n);
	dir[n] = '\0';
	*base = slash ? slash + 1 : path;
	int fd = gr_open(root, dir, O_PATH | O_DIRECTORY, 0);
	return fd < 0 ? -errno : fd;
}

static int gr_mkdir_p(int root, const char *path, mode_t mode)
{
	char p[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(p))
		return -ENAMETOOLONG;
	memcpy(p, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char save = p[i];
		const char *base;
		int fd;

		p[i] = '\0';
		fd = gr_open(root, p, O_PATH | O_DIRECTORY, 0);
		if (fd >= 0) {
			close(fd);
		} else {
			int dfd = gr_parent(root, p, &base);

			if (dfd < 0)
				return dfd;
			if (mkdirat(dfd, base, mode) != 0 && errno != EEXIST) {
				int err = -errno;

				close(dfd);
				return err;
			}
			close(dfd);
		}
		p[i] = save;
	}
	return 0;
}

static bool gr_exists(int root, const char *path)
{
	int fd = gr_open(root, path, O_PATH, 0);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Replaces path with data (a new inode: never writes through a symlink), owner root. */
static int gr_write(int root, const char *path, const void *data, size_t len, mode_t mode,
		    struct tdc_error *e)
{
	char dir[PATH_MAX];
	const char *base;
	const char *slash = strrchr(path, '/');
	int dfd, fd, r = 0;

	snprintf(dir, sizeof(dir), "%.*s", (int)(slash ? slash - path : 0), path);
	if (*dir && gr_mkdir_p(root, dir, 0755) < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create directory in the guest", "%s", dir);
	dfd = gr_parent(root, path, &base);
	if (dfd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot open directory in the guest", "%s: %s", path,
				 strerror(-dfd));
	if (unlinkat(dfd, base, 0) != 0 && errno != ENOENT) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot replace file in the guest", "%s: %s", path,
			      strerror(errno));
		goto out;
	}
	fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot create file in the guest", "%s: %s", path,
			      strerror(errno));
		goto out;
	}
	const uint8_t *p = data;
	size_t left = len;

	while (left && r == 0) {
		ssize_t n = write(fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = TDC_FAILF(e, TDC_E_IO, "cannot write file in the guest", "%s: %s", path,
				      strerror(errno));
		else {
			p += n;
			left -= (size_t)n;
		}
	}
	/* a staging tree as an ordinary user: the prep VM installs it owned by root */
	if (r == 0 && ((geteuid() == 0 && fchown(fd, 0, 0) != 0) || fchmod(fd, mode) != 0 ||
		       fsync(fd) != 0))
		r = TDC_FAILF(e, TDC_E_IO, "cannot set file mode in the guest", "%s: %s", path,
			      strerror(errno));
	close(fd);
out:
	close(dfd);
	return r;
}

/* Reads a guest file; ENOENT gives *out = NULL and returns 0. */
static int gr_read(int root, const char *path, uint8_t **out, size_t *len, struct tdc_error *e)
{
	char proc[64];
	int fd = gr_open(root, path, O_RDONLY, 0), r;

	*out = NULL;
	*len = 0;
	if (fd < 0)
		return errno == ENOENT ? 0
				       : TDC_FAILF(e, TDC_E_IO, "cannot open guest file", "%s: %s",
						   path, strerror(errno));
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	r = tdc_file_read(proc, MAX_GUEST_TEXT, out, len, e);
	close(fd);
	return r;
}

static int host_read(const char *path, size_t max, uint8_t **out, size_t *len,
		     struct tdc_error *e)
{
	return tdc_file_read(path, max, out, len, e);
}

static int copy_host_file(int root, const char *host, const char *guest, mode_t mode,
			  size_t max, struct tdc_error *e)
{
	uint8_t *buf;
	size_t len;
	int r;

	TDC_GUARD(host_read(host, max, &buf, &len, e));
	r = gr_write(root, guest, buf, len, mode, e);
	free(buf);
	return r;
}

static int do_mount(struct build *b, const char *what, const char *const *argv, const char *at,
		    struct tdc_error *e)
{
	if (b->n_mounts == BUILD_MAX_MOUNTS)
		return TDC_FAIL(e, TDC_E_INTERNAL, "too many mounts");
	TDC_GUARD(tdc_run(what, argv, NULL, NULL, e));
	snprintf(b->mounts[b->n_mounts++], PATH_MAX, "%s", at);
	return 0;
}

void tdc_build_unmount_all(struct build *b)
{
	while (b->n_mounts > 0) {
		const char *m = b->mounts[b->n_mounts - 1];

		if (umount(m) != 0 && umount2(m, MNT_DETACH) != 0) {
			b->mounts_stuck = true;
			return;
		}
		b->n_mounts--;
	}
}

static void unmount_down_to(struct build *b, int keep)
{
	while (b->n_mounts > keep) {
		const char *m = b->mounts[b->n_mounts - 1];

		if (umount(m) != 0 && umount2(m, MNT_DETACH) != 0) {
			b->mounts_stuck = true;
			return;
		}
		b->n_mounts--;
	}
}

static int bind_pseudo(struct build *b, struct tdc_error *e)
{
	static const struct {
		const char *dir, *type, *src;
	} m[] = {
		{ "proc", "proc", NULL }, { "sys", "sysfs", NULL }, { "dev", NULL, "/dev" },
		{ "dev/pts", NULL, "/dev/pts" }, { "run", "tmpfs", NULL },
	};
	char at[PATH_MAX];

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		struct stat st;

		if (snprintf(at, sizeof(at), "%s/%s", b->mnt, m[i].dir) >= (int)sizeof(at))
			return TDC_FAIL(e, TDC_E_USAGE, "path too long");
		/* a guest symlink here would point the mount at a host path */
		if (lstat(at, &st) != 0 || !S_ISDIR(st.st_mode))
			return TDC_FAILF(e, TDC_E_UNSUPPORTED, "guest lacks a plain directory",
					 "/%s", m[i].dir);
		const char *argv_bind[] = { "mount", "--bind", m[i].src, at, NULL };
		const char *argv_fs[] = { "mount", "-t", m[i].type, m[i].type, at, NULL };

		TDC_GUARD(do_mount(b, "mounting pseudo filesystems for the chroot",
				   m[i].src ? argv_bind : argv_fs, at, e));
	}
	return 0;
}

/* ---- text edits ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sbuf *s, const char *p, size_t n)
{
	if (s->oom)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;

		while (cap < s->len + n + 1)
			cap *= 2;
		char *np = realloc(s->p, cap);
		if (!np) {
			s->oom = true;
			return;
		}
		s->p = np;
		s->cap = cap;
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void sb_str(struct sbuf *s, const char *str)
{
	sb_add(s, str, strlen(str));
}

/* Next whitespace-separated word of [p, end). */
static const char *word(const char *p, const char *end, size_t *n)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	const char *w = p;

	while (p < end && *p != ' ' && *p != '\t')
		p++;
	*n = (size_t)(p - w);
	return w;
}

static int put_text(int root, const char *path, struct sbuf *s, mode_t mode,
		    struct tdc_error *e)
{
	if (s->oom)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	return gr_write(root, path, s->p ? s->p : "", s->len, mode, e);
}

/* ---- agent config ---- */

static int write_config(struct build *b, int root, struct tdc_error *e)
{
	const struct tdc_image_build_opts *o = b->o;
	json_object *c = json_object_new_object(), *arr, *l;
	char hex[65], dev[128];
	const char *txt;
	int r;

	if (!c)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	arr = json_object_new_array();
	for (size_t i = 0; i < o->n_brokers; i++)
		json_object_array_add(arr, json_object_new_string(o->brokers[i]));
	json_object_object_add(c, "brokers", arr);
	arr = json_object_new_array();
	for (size_t i = 0; i < o->n_pins; i++)
		json_object_array_add(arr, json_object_new_string(o->pins[i]));
	json_object_object_add(c, "broker_spki_sha256", arr);
	json_object_object_add(c, "secret_id", json_object_new_string(o->secret_id));
	l = json_object_new_object();
	snprintf(dev, sizeof(dev), "/dev/disk/by-uuid/%s", b->lk.uuid);
	json_object_object_add(l, "device", json_object_new_string(dev));
	json_object_object_add(l, "name", json_object_new_string(b->luks_name));
	json_object_object_add(l, "header_sha256",
			       json_object_new_string(tdc_hex_encode(b->lk.header_sha256, 32, hex)));
	json_object_object_add(l, "keyslot", json_object_new_int(0));
	json_object_object_add(c, "luks", l);
	if (o->total_timeout_s) {
		json_object *t = json_object_new_object();
		uint32_t s = o->total_timeout_s;

		json_object_object_add(t, "total_s", json_object_new_int((int32_t)s));
		json_object_object_add(t, "attempt_s", json_object_new_int(s < 45 ? (int32_t)s : 45));
		json_object_object_add(t, "connect_s", json_object_new_int(s < 5 ? (int32_t)s : 5));
		json_object_object_add(c, "timeouts", t);
	}
	if (o->sim_dir) {
		json_object_object_add(c, "provider", json_object_new_string("sim"));
		json_object_object_add(c, "sim_dir", json_object_new_string(SIM_GUEST_PATH));
	}
	txt = json_object_to_json_string_ext(c, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!txt) {
		json_object_put(c);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	struct sbuf s = { 0 };

	sb_str(&s, txt);
	sb_str(&s, "\n");
	r = put_text(root, CONFIG_GUEST_PATH, &s, 0644, e);
	free(s.p);
	json_object_put(c);
	return r;
}

/* TESTS ONLY: the simulator's PKI goes into the guest so that the agent can sign sim quotes. */
static int copy_sim_dir(int root, const char *host, struct tdc_error *e)
{
	char src[PATH_MAX], dst[PATH_MAX];
	DIR *d;
	struct dirent *de;

	/* copy every regular file of DIR and DIR/pki (what tdc_sim_dir_quote reads) */
	for (int level = 0; level < 2; level++) {
		snprintf(src, sizeof(src), "%s%s", host, level ? "/pki" : "");
		d = opendir(src);
		if (!d) {
			if (level)
				return 0;
			return TDC_FAILF(e, TDC_E_IO, "cannot read the sim directory", "%s: %s",
					 src, strerror(errno));
		}
		while ((de = readdir(d))) {
			struct stat st;
			char path[PATH_MAX];

			if (snprintf(path, sizeof(path), "%s/%s", src, de->d_name) >=
			    (int)sizeof(path))
				continue;
			if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
				continue;
			snprintf(dst, sizeof(dst), "%s%s/%s", SIM_GUEST_PATH, level ? "/pki" : "",
				 de->d_name);
			int r = copy_host_file(root, path, dst, st.st_mode & 0600 ? 0600 : 0644,
					       MAX_GUEST_TEXT, e);
			if (r < 0) {
				closedir(d);
				return r;
			}
		}
		closedir(d);
	}
	return 0;
}

/* fstab: root -> /dev/mapper/NAME, a /boot line by fs UUID right after it; with the input's own
 * /boot partition its line (which named that partition, find_boot_part) stays as it was. */
static int edit_fstab(struct build *b, int root, struct tdc_error *e)
{
	uint8_t *in;
	size_t len;
	struct sbuf s = { 0 };
	char line[512];
	bool have_root = false;
	int r;

	TDC_GUARD(gr_read(root, "/etc/fstab", &in, &len, e));
	sb_str(&s, "# tdcrypt: the root is LUKS2, unlocked in the initramfs by tdcrypt-agent;\n"
		   "# /boot is a clear ext4 partition.\n");
	for (const char *p = (const char *)in, *end = p + len; in && p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t n1, n2, n3, n4;
		const char *w1 = word(p, le, &n1), *w2 = word(w1 + n1, le, &n2);
		const char *w3 = word(w2 + n2, le, &n3), *w4 = word(w3 + n3, le, &n4);

		if (n1 && w1[0] != '#' && n2 == 1 && w2[0] == '/') {
			snprintf(line, sizeof(line), "/dev/mapper/%s\t/\text4\t%.*s\t0\t1\n",
				 b->luks_name, n4 ? (int)n4 : 17, n4 ? w4 : "errors=remount-ro");
			sb_str(&s, line);
			snprintf(line, sizeof(line), "UUID=%s\t/boot\text4\tdefaults\t0\t2\n",
				 b->boot_uuid);
			if (!b->boot_part)
				sb_str(&s, line);
			have_root = true;
		} else if (!b->boot_part && n1 && w1[0] != '#' && n2 == 5 &&
			   !memcmp(w2, "/boot", 5)) {
			free(in);
			free(s.p);
			return TDC_FAIL(e, TDC_E_UNSUPPORTED,
					"the guest already has a separate /boot partition");
		} else {
			sb_add(&s, p, (size_t)(le - p));
			sb_str(&s, "\n");
		}
		(void)w3;
		(void)n3;
		p = nl ? nl + 1 : end;
	}
	if (!have_root) {
		snprintf(line, sizeof(line), "/dev/mapper/%s\t/\text4\terrors=remount-ro\t0\t1\n",
			 b->luks_name);
		sb_str(&s, line);
		snprintf(line, sizeof(line), "UUID=%s\t/boot\text4\tdefaults\t0\t2\n",
			 b->boot_uuid);
		if (!b->boot_part)
			sb_str(&s, line);
	}
	r = put_text(root, "/etc/fstab", &s, 0644, e);
	free(in);
	free(s.p);
	return r;
}

static int note_crypttab(struct build *b, int root, struct tdc_error *e)
{
	uint8_t *in;
	size_t len;
	struct sbuf s = { 0 };
	char note[256];
	int r;

	TDC_GUARD(gr_read(root, "/etc/crypttab", &in, &len, e));
	if (in)
		sb_add(&s, (const char *)in, len);
	if (len && in[len - 1] != '\n')
		sb_str(&s, "\n");
	snprintf(note, sizeof(note),
		 "# %s (the root) has no entry on purpose: tdcrypt-agent unlocks it in the\n"
		 "# initramfs with the key from the broker (/etc/tdcrypt/agent.json).\n",
		 b->luks_name);
	sb_str(&s, note);
	r = put_text(root, "/etc/crypttab", &s, 0644, e);
	free(in);
	free(s.p);
	return r;
}

/* Kernel command line words: root=... -> root=/dev/mapper/NAME; extra appended once. */
static void edit_cmdline(struct build *b, struct sbuf *s, const char *p, const char *end)
{
	const char *extra = b->o->extra_cmdline;
	bool had_root = false, had_panic = false;
	char rootw[160];

	snprintf(rootw, sizeof(rootw), "root=/dev/mapper/%s", b->luks_name);
	while (p < end) {
		size_t n;
		const char *w = word(p, end, &n);

		sb_add(s, p, (size_t)(w - p)); /* the whitespace before */
		if (n > 5 && !memcmp(w, "root=", 5)) {
			sb_str(s, rootw);
			had_root = true;
		} else {
			had_panic |= n > 6 && !memcmp(w, "panic=", 6);
			sb_add(s, w, n);
		}
		p = w + n;
	}
	if (!had_root) {
		sb_str(s, " ");
		sb_str(s, rootw);
	}
	/* initramfs-tools' own failure paths open a shell unless panic= is set */
	if (!had_panic)
		sb_str(s, " panic=-1");
	if (extra && *extra) {
		sb_str(s, " ");
		sb_str(s, extra);
	}
}

/* grub.cfg-style: "linux", "linuxefi", "linux16" lines; BLS entries: "options" lines. */
static int edit_boot_config(struct build *b, int root, const char *path, bool bls,
			    unsigned *edited, struct tdc_error *e)
{
	uint8_t *in;
	size_t len;
	struct sbuf s = { 0 };
	int r;

	TDC_GUARD(gr_read(root, path, &in, &len, e));
	if (!in)
		return 0;
	for (const char *p = (const char *)in, *end = p + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t n1, n2;
		const char *w1 = word(p, le, &n1);
		const char *w2 = word(w1 + n1, le, &n2);
		bool kernel = !bls && ((n1 == 5 && !memcmp(w1, "linux", 5)) ||
				       (n1 == 8 && !memcmp(w1, "linuxefi", 8)) ||
				       (n1 == 7 && !memcmp(w1, "linux16", 7)));
		bool options = bls && n1 == 7 && !memcmp(w1, "options", 7);

		if (kernel && n2) {
			sb_add(&s, p, (size_t)(w2 + n2 - p)); /* keyword and kernel path */
			edit_cmdline(b, &s, w2 + n2, le);
			(*edited)++;
		} else if (options) {
			sb_add(&s, p, (size_t)(w1 + n1 - p));
			edit_cmdline(b, &s, w1 + n1, le);
			(*edited)++;
		} else {
			sb_add(&s, p, (size_t)(le - p));
		}
		if (nl)
			sb_str(&s, "\n");
		p = nl ? nl + 1 : end;
	}
	r = put_text(root, path, &s, 0644, e);
	free(in);
	free(s.p);
	return r;
}

static int edit_boot_configs(struct build *b, int root, struct tdc_error *e)
{
	static const char *const cfgs[] = { "/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", NULL };
	unsigned edited = 0;
	DIR *d;

	for (size_t i = 0; cfgs[i]; i++)
		TDC_GUARD(edit_boot_config(b, root, cfgs[i], false, &edited, e));
	/* BLS entries (RHEL-style) */
	int fd = gr_open(root, "/boot/loader/entries", O_RDONLY | O_DIRECTORY, 0);

	if (fd >= 0 && (d = fdopendir(fd))) {
		struct dirent *de;
		char path[PATH_MAX];
		int r = 0;

		while (r == 0 && (de = readdir(d))) {
			size_t n = strlen(de->d_name);

			if (n < 6 || strcmp(de->d_name + n - 5, ".conf"))
				continue;
			snprintf(path, sizeof(path), "/boot/loader/entries/%s", de->d_name);
			r = edit_boot_config(b, root, path, true, &edited, e);
		}
		closedir(d);
		if (r < 0)
			return r;
	} else if (fd >= 0) {
		close(fd);
	}
	if (gr_exists(root, "/etc/kernel/cmdline")) {
		uint8_t *in;
		size_t len;
		struct sbuf s = { 0 };

		TDC_GUARD(gr_read(root, "/etc/kernel/cmdline", &in, &len, e));
		while (len && (in[len - 1] == '\n' || in[len - 1] == ' '))
			len--;
		edit_cmdline(b, &s, (const char *)in, (const char *)in + len);
		sb_str(&s, "\n");
		int r = put_text(root, "/etc/kernel/cmdline", &s, 0644, e);
		free(in);
		free(s.p);
		TDC_GUARD(r);
	}
	if (b->o->extra_cmdline && *b->o->extra_cmdline && gr_exists(root, "/etc/default/grub")) {
		uint8_t *in;
		size_t len;
		struct sbuf s = { 0 };

		TDC_GUARD(gr_read(root, "/etc/default/grub", &in, &len, e));
		sb_add(&s, (const char *)in, len);
		sb_str(&s, "\n# tdcrypt\nGRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX ");
		sb_str(&s, b->o->extra_cmdline);
		sb_str(&s, "\"\n");
		int r = put_text(root, "/etc/default/grub", &s, 0644, e);
		free(in);
		free(s.p);
		TDC_GUARD(r);
	}
	if (edited == 0)
		return TDC_FAIL(e, TDC_E_UNSUPPORTED,
				"no kernel command line found in /boot (grub.cfg or BLS entries)");
	return 0;
}

/* kernel-img.conf: the links are kept in /boot from now on. */
static int edit_kernel_img_conf(int root, struct tdc_error *e)
{
	uint8_t *in;
	size_t len;
	struct sbuf s = { 0 };
	int r = gr_read(root, "/etc/kernel-img.conf", &in, &len, e);

	if (r < 0)
		return r;
	for (const char *p = (const char *)in, *end = p + len; in && p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t n;
		const char *w = word(p, le, &n);

		if (!((n == 12 && !memcmp(w, "link_in_boot", 12)) ||
		      (n == 11 && !memcmp(w, "do_symlinks", 11)))) {
			sb_add(&s, p, (size_t)(le - p));
			sb_str(&s, "\n");
		}
		p = nl ? nl + 1 : end;
	}
	sb_str(&s, "# tdcrypt: / is encrypted, kernel links live in the clear /boot\n"
		   "do_symlinks = yes\nlink_in_boot = yes\n");
	r = put_text(root, "/etc/kernel-img.conf", &s, 0644, e);
	free(in);
	free(s.p);
	return r;
}

/* Debian's linux-base keeps /vmlinuz and /initrd.img links in /, which is now encrypted:
 * move them into /boot (link_in_boot) so GRUB finds them and kernel updates maintain them. */
static int kernel_links(int root, struct tdc_error *e)
{
	static const char *const links[] = { "vmlinuz", "vmlinuz.old", "initrd.img",
					      "initrd.img.old", NULL };
	int rootdir = gr_open(root, "/", O_PATH | O_DIRECTORY, 0);
	int bootdir = gr_open(root, "/boot", O_PATH | O_DIRECTORY, 0);
	bool moved = false;
	int r = 0;

	if (rootdir < 0 || bootdir < 0) {
		r = TDC_FAIL(e, TDC_E_IO, "cannot open the guest root or /boot");
		goto out;
	}
	for (size_t i = 0; links[i]; i++) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(rootdir, links[i], target, sizeof(target) - 1);

		if (n <= 0)
			continue;
		target[n] = '\0';
		const char *base = strrchr(target, '/');

		base = base ? base + 1 : target;
		(void)unlinkat(bootdir, links[i], 0);
		if (symlinkat(base, bootdir, links[i]) != 0 || unlinkat(rootdir, links[i], 0) != 0) {
			r = TDC_FAILF(e, TDC_E_IO, "cannot move kernel link into /boot", "%s: %s",
				      links[i], strerror(errno));
			goto out;
		}
		moved = true;
	}
	if (moved)
		r = edit_kernel_img_conf(root, e);
out:
	if (rootdir >= 0)
		close(rootdir);
	if (bootdir >= 0)
		close(bootdir);
	return r;
}

/* ---- integration, initramfs ---- */

static int install_integration(struct build *b, int root, struct tdc_error *e)
{
	char src[PATH_MAX];
	const char *gd = b->o->guest_dir;

	if (!b->dracut) {
		snprintf(src, sizeof(src), "%s/initramfs-tools/hooks/tdcrypt", gd);
		TDC_GUARD(copy_host_file(root, src, "/etc/initramfs-tools/hooks/tdcrypt", 0755,
					 MAX_GUEST_TEXT, e));
		snprintf(src, sizeof(src), "%s/initramfs-tools/scripts/local-top/tdcrypt", gd);
		TDC_GUARD(copy_host_file(root, src,
					 "/etc/initramfs-tools/scripts/local-top/tdcrypt", 0755,
					 MAX_GUEST_TEXT, e));
		return 0;
	}
	static const char *const files[] = { "module-setup.sh", "tdcrypt-unlock.sh",
					      "tdcrypt-agent.service", NULL };
	char dst[PATH_MAX];

	for (size_t i = 0; files[i]; i++) {
		snprintf(src, sizeof(src), "%s/dracut/90tdcrypt/%s", gd, files[i]);
		snprintf(dst, sizeof(dst), "/usr/lib/dracut/modules.d/90tdcrypt/%s", files[i]);
		TDC_GUARD(copy_host_file(root, src, dst, strstr(files[i], ".service") ? 0644 : 0755,
					 MAX_GUEST_TEXT, e));
	}
	static const char conf[] = "# tdcrypt: unlock the root with tdcrypt-agent\n"
				   "add_dracutmodules+=\" tdcrypt \"\n";
	return gr_write(root, "/etc/dracut.conf.d/90-tdcrypt.conf", conf, sizeof(conf) - 1, 0644,
			e);
}

static int check_agent_libs(struct build *b, struct tdc_error *e)
{
	const char *argv[] = { "ldd", AGENT_GUEST_PATH, NULL };
	char *out = NULL;
	int r = tdc_run_chroot("checking the agent's libraries in the guest", b->mnt, argv, &out,
			       tdc_build_tick, b, e);

	if (r == 0 && strstr(out, "not found")) {
		char *p = strstr(out, "not found"), *s = p;

		while (s > out && s[-1] != '\n')
			s--;
		while (*s == '\t' || *s == ' ')
			s++;
		r = TDC_FAILF(e, TDC_E_UNSUPPORTED,
			      "the guest lacks shared libraries of tdcrypt-agent", "%.*s",
			      (int)(p - s + 9), s);
	}
	free(out);
	return r;
}

static int regenerate_initramfs(struct build *b, int root, struct tdc_error *e)
{
	bool deb = !b->dracut;
	const char *argv_deb[] = { "update-initramfs", "-u", "-k", "all", NULL };
	const char *argv_rhel[] = { "dracut", "-f", "--regenerate-all", NULL };
	/* Debian's dracut keeps Debian's file names */
	const char *prefix = b->osr.family == TDC_FAMILY_DEBIAN ? "initrd.img-" : "initramfs-";
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	TDC_GUARD(tdc_build_stage(b, deb ? "update-initramfs (guest)" : "dracut (guest)", e));
	TDC_GUARD(tdc_run_chroot("regenerating the initramfs in the guest", b->mnt,
				 deb ? argv_deb : argv_rhel, NULL, tdc_build_tick, b, e));
	fd = gr_open(root, "/boot", O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return TDC_FAIL(e, TDC_E_IO, "cannot list the guest's /boot");
	}
	while (r == 0 && (de = readdir(d))) {
		char path[PATH_MAX];
		char *list = NULL;

		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    strstr(de->d_name, "kdump") || strstr(de->d_name, "rescue"))
			continue;
		snprintf(path, sizeof(path), "/boot/%s", de->d_name);
		const char *ls_deb[] = { "lsinitramfs", path, NULL };
		const char *ls_rhel[] = { "lsinitrd", path, NULL };

		r = tdc_run_chroot("listing the new initramfs", b->mnt, deb ? ls_deb : ls_rhel,
				   &list, tdc_build_tick, b, e);
		if (r == 0 && (!strstr(list, "tdcrypt-agent") || !strstr(list, "tdcrypt/agent.json")))
			r = TDC_FAILF(e, TDC_E_INTERNAL,
				      "the regenerated initramfs lacks the agent or its config",
				      "%s", path);
		free(list);
		if (r == 0)
			b->r->initramfs_count++;
	}
	closedir(d);
	if (r == 0 && b->r->initramfs_count == 0)
		r = TDC_FAIL(e, TDC_E_UNSUPPORTED, "no initramfs found in the guest's /boot");
	return r;
}

static int empty_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (ftw->level == 0)
		return 0;
	return remove(path) == 0 ? 0 : -1;
}

/* The file changes both guest steps make (the agent binary and the kernel links aside). */
static int guest_files(struct build *b, int root, struct tdc_error *e)
{
	TDC_GUARD(write_config(b, root, e));
	if (b->o->sim_dir)
		TDC_GUARD(copy_sim_dir(root, b->o->sim_dir, e));
	TDC_GUARD(install_integration(b, root, e));
	TDC_GUARD(edit_fstab(b, root, e));
	TDC_GUARD(note_crypttab(b, root, e));
	return edit_boot_configs(b, root, e);
}

int tdc_build_guest_staged(struct build *b, int root, bool kernel_links_found,
			   struct tdc_error *e)
{
	TDC_GUARD(copy_host_file(root, b->o->agent_path, AGENT_GUEST_PATH, 0755, MAX_AGENT_BINARY,
				 e));
	TDC_GUARD(guest_files(b, root, e));
	if (b->osr.family == TDC_FAMILY_DEBIAN && kernel_links_found)
		TDC_GUARD(edit_kernel_img_conf(root, e));
	return 0;
}

int tdc_build_guest(struct build *b, struct tdc_error *e)
{
	const struct tdc_image_build_opts *o = b->o;
	char opts[128], bootdir[PATH_MAX];
	bool deb = b->osr.family == TDC_FAMILY_DEBIAN;
	int root = -1, r;
	struct stat st;

	TDC_GUARD(tdc_build_stage(b, "guest: mount", e));
	if (snprintf(b->mnt, sizeof(b->mnt), "%s/mnt", b->work) >= (int)sizeof(b->mnt))
		return TDC_FAIL(e, TDC_E_USAGE, "path too long");
	if (mkdir(b->mnt, 0700) != 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create mount point", "%s", strerror(errno));
	snprintf(opts, sizeof(opts), "loop,offset=%" PRIu64 ",sizelimit=%" PRIu64, b->root_off,
		 b->root_len);
	const char *mount_argv[] = { "mount", "-t", "ext4", "-o", opts, b->raw, b->mnt, NULL };
	TDC_GUARD(do_mount(b, "mounting the guest root (needs root)", mount_argv, b->mnt, e));
	int keep = b->n_mounts;

	root = open(b->mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot open the mounted root", "%s", strerror(errno));
		goto out;
	}
	if (snprintf(bootdir, sizeof(bootdir), "%s/boot", b->mnt) >= (int)sizeof(bootdir)) {
		r = TDC_FAIL(e, TDC_E_USAGE, "path too long");
		goto out;
	}
	if (lstat(bootdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		r = TDC_FAIL(e, TDC_E_UNSUPPORTED, "the guest root has no /boot directory");
		goto out;
	}
	if (b->boot_part) {
		/* the guest's own /boot partition: update-initramfs/dracut and the boot config
		 * edits must land there, as on the booted guest (bootdir is a plain directory) */
		snprintf(opts, sizeof(opts), "loop,offset=%" PRIu64 ",sizelimit=%" PRIu64,
			 b->boot_part->first_lba * TDC_GPT_SECTOR,
			 (b->boot_part->last_lba - b->boot_part->first_lba + 1) * TDC_GPT_SECTOR);
		const char *boot_argv[] = { "mount", "-t", "ext4", "-o", opts, b->raw, bootdir,
					    NULL };
		if ((r = do_mount(b, "mounting the guest's /boot partition", boot_argv, bootdir,
				  e)) < 0)
			goto out;
		keep = b->n_mounts;
	}
	/* Debian and Ubuntu use initramfs-tools unless dracut replaced it (they conflict) */
	bool itools = gr_exists(root, "/usr/sbin/update-initramfs") ||
		      gr_exists(root, "/sbin/update-initramfs");
	bool dracut = gr_exists(root, "/usr/bin/dracut") || gr_exists(root, "/usr/sbin/dracut");

	b->dracut = deb ? !itools && dracut : dracut;
	if (deb ? !itools && !dracut : !dracut) {
		r = TDC_FAILF(e, TDC_E_UNSUPPORTED, "the guest lacks its initramfs generator", "%s",
			      deb ? "initramfs-tools or dracut" : "dracut");
		goto out;
	}
	if ((r = bind_pseudo(b, e)) < 0)
		goto out;

	if ((r = tdc_build_stage(b, "guest: agent, config, integration", e)) < 0 ||
	    (r = copy_host_file(root, o->agent_path, AGENT_GUEST_PATH, 0755, MAX_AGENT_BINARY, e)) < 0 ||
	    (r = check_agent_libs(b, e)) < 0 || (r = guest_files(b, root, e)) < 0 ||
	    (deb && (r = kernel_links(root, e)) < 0))
		goto out;
	if ((r = regenerate_initramfs(b, root, e)) < 0)
		goto out;
	b->r->guest_modified = true;

	if (b->boot_part) { /* its own /boot partition: nothing to build, the root's /boot is
			     * the (empty) mount point; the last unmount below unmounts it */
		unmount_down_to(b, keep);
		r = b->mounts_stuck ? TDC_FAIL(e, TDC_E_IO, "cannot unmount the chroot's pseudo "
						"filesystems") : 0;
		goto out;
	}
	/* The ESP's GRUB looks for /boot/grub on the fs with the root's old UUID, which the new
	 * /boot partition takes over: "boot -> ." keeps /boot/... paths valid there. */
	int bfd = gr_open(root, "/boot", O_PATH | O_DIRECTORY, 0);
	if (bfd < 0 || (symlinkat(".", bfd, "boot") != 0 && errno != EEXIST)) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot create /boot/boot link", "%s", strerror(errno));
		if (bfd >= 0)
			close(bfd);
		goto out;
	}
	close(bfd);
	unmount_down_to(b, keep);
	if (b->mounts_stuck) {
		r = TDC_FAIL(e, TDC_E_IO, "cannot unmount the chroot's pseudo filesystems");
		goto out;
	}
	if ((r = tdc_build_stage(b, "boot partition", e)) < 0 ||
	    (r = tdc_build_boot_fs(b, bootdir, e)) < 0)
		goto out;
	/* the root's /boot is hidden under the new mount from now on: keep it empty */
	if (nftw(bootdir, empty_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot empty /boot in the root", "%s", strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (root >= 0)
		close(root);
	tdc_build_unmount_all(b);
	if (r == 0 && b->mounts_stuck)
		r = TDC_FAIL(e, TDC_E_IO, "cannot unmount the guest root");
	return r;
}
