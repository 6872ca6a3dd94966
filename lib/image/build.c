/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdc_image_build: input disk -> private sparse raw copy -> GPT -> root ext4 + os-release ->
 * LUKS2 header (its digest goes into the agent config) -> guest changes (guest.c) -> new /boot
 * fs -> root fs UUID changed -> output GPT: ESP (bytes as is), /boot, LUKS2 (in-use blocks only)
 * -> qcow2 -> atomic rename. Everything temporary lives in OUT.tmp-XXXXXX next to OUT.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "image/build-int.h"
#include "image/xts.h"
#include "image/prep.h"
#include "image/proc.h"
#include "util/rd.h"
#include "util/util.h"

#define MIB (1024u * 1024u)
#define COPY_CHUNK MIB
/* Smallest root fs we accept: below this there is no guest worth booting. */
#define MIN_ROOT_BYTES (32u * MIB)
#define MAX_QEMU_INFO (1024u * 1024u)
#define EXT_SB_SIZE 1024u

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int tdc_build_stage(struct build *b, const char *stage, struct tdc_error *e)
{
	b->stage = stage;
	b->watch_file = NULL;
	if (b->o->progress && b->o->progress(b->o->progress_arg, stage, 0, 0) != 0)
		return TDC_FAIL(e, TDC_E_CANCELLED, "interrupted");
	return 0;
}

int tdc_build_tick(void *arg)
{
	struct build *b = arg;
	uint64_t done = 0;
	struct stat st;

	if (!b->o->progress)
		return 0;
	if (b->watch_file && b->watch_total && stat(b->watch_file, &st) == 0) {
		done = (uint64_t)st.st_blocks * 512u;
		if (done > b->watch_total)
			done = b->watch_total;
	}
	return b->o->progress(b->o->progress_arg, b->stage ? b->stage : "", done,
			      b->watch_file ? b->watch_total : 0);
}

static int fill_progress(uint64_t done, uint64_t total, void *arg)
{
	struct build *b = arg;

	return b->o->progress ? b->o->progress(b->o->progress_arg, "encrypt", done, total) : 0;
}


/* dst = a + b; the work dir's length is checked up front, so this cannot truncate. */
static void join(char *dst, size_t cap, const char *a, const char *b)
{
	if (snprintf(dst, cap, "%s%s", a, b) >= (int)cap)
		dst[0] = '\0';
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static int check_opts(const struct tdc_image_build_opts *o, struct tdc_error *e)
{
	struct stat st;

	if (!o->in || !o->out || !o->secret)
		return TDC_FAIL(e, TDC_E_USAGE, "image: missing input, output or secret");
	if (o->secret_len < TDC_IMAGE_MIN_SECRET || o->secret_len > TDC_IMAGE_MAX_SECRET)
		return TDC_FAILF(e, TDC_E_USAGE, "disk secret must be a random key of 32..512 bytes",
				 "got %zu bytes", o->secret_len);
	if (o->out_format && strcmp(o->out_format, "qcow2") && strcmp(o->out_format, "raw"))
		return TDC_FAILF(e, TDC_E_USAGE, "output format must be qcow2 or raw", "%s",
				 o->out_format);
	if (!o->no_guest) {
		if (!o->secret_id || !o->n_brokers || !o->brokers || !o->n_pins || !o->pins)
			return TDC_FAIL(e, TDC_E_USAGE,
					"image: secret ID, at least one broker and one pin needed");
		if (o->n_brokers > TDC_IMAGE_MAX_BROKERS || o->n_pins > TDC_IMAGE_MAX_PINS)
			return TDC_FAIL(e, TDC_E_USAGE, "image: too many brokers or pins");
		if (!o->agent_path || !o->guest_dir)
			return TDC_FAIL(e, TDC_E_USAGE, "image: agent binary and guest dir needed");
		if (access(o->agent_path, R_OK) != 0)
			return TDC_FAILF(e, TDC_E_IO, "agent binary not readable", "%s: %s",
					 o->agent_path, strerror(errno));
	}
	if (o->luks_name && (!*o->luks_name || strlen(o->luks_name) > 100 ||
			     strspn(o->luks_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
						  "0123456789_-") != strlen(o->luks_name)))
		return TDC_FAIL(e, TDC_E_USAGE, "bad LUKS mapping name");
	if (o->extra_cmdline && strpbrk(o->extra_cmdline, "\n\"'\\;$`"))
		return TDC_FAIL(e, TDC_E_USAGE, "extra kernel command line: bad character");
	if (stat(o->in, &st) != 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot read input", "%s: %s", o->in,
				 strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return TDC_FAILF(e, TDC_E_FORMAT, "not a disk image", "%s: not a file", o->in);
	if (lstat(o->out, &st) == 0)
		return TDC_FAILF(e, TDC_E_USAGE, "output exists (not overwritten)", "%s", o->out);
	return 0;
}

/* qemu-img info: format and virtual size. */
static int probe(struct build *b, struct tdc_error *e)
{
	const char *argv[] = { "qemu-img", "info", "--output=json", b->o->in, NULL };
	json_object *root = NULL, *v;
	char *out = NULL;
	const char *fmt;
	int r;

	r = tdc_run("inspecting the input with qemu-img", argv, NULL, &out, e);
	if (r < 0)
		return r;
	root = json_tokener_parse(out);
	if (!root || !json_object_object_get_ex(root, "format", &v) ||
	    !(fmt = json_object_get_string(v))) {
		r = TDC_FAIL(e, TDC_E_FORMAT, "qemu-img info: unexpected output");
		goto out;
	}
	if (strcmp(fmt, "raw") && strcmp(fmt, "qcow2")) {
		r = TDC_FAILF(e, TDC_E_UNSUPPORTED, "input format not supported (qcow2 or raw)",
			      "%s", fmt);
		goto out;
	}
	snprintf(b->r->in_format, sizeof(b->r->in_format), "%s", fmt);
	if (!json_object_object_get_ex(root, "virtual-size", &v) ||
	    json_object_get_int64(v) <= 0) {
		r = TDC_FAIL(e, TDC_E_FORMAT, "qemu-img info: no virtual size");
		goto out;
	}
	b->r->in_size = (uint64_t)json_object_get_int64(v);
	r = 0;
out:
	json_object_put(root);
	free(out);
	return r;
}

static int read_gpt(struct build *b, const char *path, struct tdc_error *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int r;

	if (fd < 0 || fstat(fd, &st) != 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot open the disk image", "%s: %s", path,
			      strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	b->raw_size = (uint64_t)st.st_size;
	r = tdc_gpt_read_fd(fd, b->raw_size, &b->gpt, e);
	close(fd);
	return r;
}

static void part_info(const struct tdc_gpt_part *p, struct tdc_image_part *out)
{
	out->index = p->index;
	out->offset = p->first_lba * TDC_GPT_SECTOR;
	out->size = (p->last_lba - p->first_lba + 1) * TDC_GPT_SECTOR;
	tdc_guid_format(p->type, out->type);
	tdc_guid_format(p->guid, out->guid);
	snprintf(out->name, sizeof(out->name), "%s", p->name);
}

/* ext2/3/4 superblock of a partition: UUID (text) and label, or false if it is none. */
static bool read_ext_sb(struct build *b, const struct tdc_gpt_part *p, char uuid[37],
			char label[17])
{
	uint8_t sb[EXT_SB_SIZE], u[16];
	uint16_t magic;
	struct tdc_rd r;
	int fd;
	bool ok;

	if ((p->last_lba - p->first_lba + 1) * TDC_GPT_SECTOR < 2 * EXT_SB_SIZE)
		return false;
	fd = open(b->src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = tdc_pread_full(fd, sb, sizeof(sb), p->first_lba * TDC_GPT_SECTOR + EXT_SB_SIZE) == 0;
	close(fd);
	tdc_rd_init(&r, sb, sizeof(sb));
	memset(label, 0, 17);
	ok = ok && tdc_rd_skip(&r, 0x38, NULL, NULL) == 0 &&
	     tdc_rd_u16le(&r, &magic, NULL, NULL) == 0 && magic == 0xef53 &&
	     tdc_rd_skip(&r, 0x68 - 0x3a, NULL, NULL) == 0 &&
	     tdc_rd_copy(&r, u, 16, NULL, NULL) == 0 &&
	     tdc_rd_copy(&r, (uint8_t *)label, 16, NULL, NULL) == 0;
	if (ok)
		tdc_uuid_format(u, uuid);
	return ok;
}

/*
 * The input's own /boot partition, if the root's /etc/fstab mounts one: its /boot line must name
 * an ext2/3/4 partition of this GPT (not the ESP or the root) by UUID=, LABEL= or PARTUUID= (or
 * their /dev/disk/by-* links), and exactly one partition may match. Anything else on /boot
 * (a device name, tmpfs, a partition not in this disk) is refused.
 */
static int find_boot_part(struct build *b, struct tdc_error *e)
{
	static const struct {
		const char *prefix;
		int kind; /* 0 fs UUID, 1 label, 2 partition GUID */
	} specs[] = {
		{ "UUID=", 0 }, { "/dev/disk/by-uuid/", 0 }, { "LABEL=", 1 },
		{ "/dev/disk/by-label/", 1 }, { "PARTUUID=", 2 }, { "/dev/disk/by-partuuid/", 2 },
	};
	struct tdc_error ign = { 0 };
	uint8_t *tab = NULL;
	char *save = NULL, spec[256] = "", *line;
	size_t len;
	int r = 0, kind = -1;
	const char *want = NULL;

	if (tdc_ext4_read_file(b->src, b->root_off, "/etc/fstab", TDC_MAX_FSTAB, &tab, &len,
			       &ign) < 0)
		return ign.code == TDC_E_LIMIT ? TDC_FAIL(e, TDC_E_LIMIT, "/etc/fstab too large")
					       : 0;
	for (line = strtok_r((char *)tab, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char w1[256], w2[16];

		if (sscanf(line, " %255s %15s", w1, w2) != 2 || w1[0] == '#' ||
		    strcmp(w2, "/boot") != 0)
			continue;
		if (spec[0]) {
			r = TDC_FAIL(e, TDC_E_UNSUPPORTED, "/etc/fstab mounts /boot twice");
			goto out;
		}
		snprintf(spec, sizeof(spec), "%s", w1);
	}
	if (!spec[0])
		goto out; /* /boot is a directory of the root */
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]) && !want; i++)
		if (!strncmp(spec, specs[i].prefix, strlen(specs[i].prefix))) {
			want = spec + strlen(specs[i].prefix);
			kind = specs[i].kind;
		}
	if (!want || !*want) {
		r = TDC_FAILF(e, TDC_E_UNSUPPORTED,
			      "/etc/fstab mounts /boot from an unsupported source (need UUID=, "
			      "LABEL= or PARTUUID=)", "%s", spec);
		goto out;
	}
	for (size_t i = 0; i < b->gpt.n; i++) {
		const struct tdc_gpt_part *p = &b->gpt.parts[i];
		char uuid[37], label[17], guid[37];

		if (p == b->esp || p == b->root || p == b->bios || !read_ext_sb(b, p, uuid, label))
			continue;
		tdc_guid_format(p->guid, guid);
		if (!(kind == 0 ? !strcasecmp(want, uuid)
				: kind == 1 ? !strcmp(want, label) : !strcasecmp(want, guid)))
			continue;
		if (b->boot_part) {
			r = TDC_FAILF(e, TDC_E_FORMAT, "two partitions match the /boot of /etc/fstab",
				      "partitions %u and %u: %s", b->boot_part->index, p->index, spec);
			goto out;
		}
		b->boot_part = p;
		snprintf(b->boot_uuid, sizeof(b->boot_uuid), "%s", uuid);
	}
	if (!b->boot_part)
		r = TDC_FAILF(e, TDC_E_UNSUPPORTED,
			      "/etc/fstab mounts /boot from no ext4 partition of this disk", "%s",
			      spec);
out:
	free(tab);
	return r;
}

/*
 * A root that is not ext4 (XFS, btrfs): its files cannot be read without mounting it, so only
 * the layout-only mode takes it, with the input's own ext4 /boot partition (the one ext2/3/4
 * partition besides the ESP and the root: the root's fstab that would name it is unreadable).
 * The whole partition is encrypted and the root keeps its fs UUID (the /boot keeps its own).
 */
static int whole_root(struct build *b, struct tdc_error *e)
{
	const char *fs = tdc_image_fs_name(b->root_probe.type);

	snprintf(b->r->root_fs, sizeof(b->r->root_fs), "%s", fs);
	snprintf(b->r->encrypted, sizeof(b->r->encrypted), "whole-partition");
	snprintf(b->r->encrypted_reason, sizeof(b->r->encrypted_reason),
		 "%s root: only ext4's allocation map is read, so every block is encrypted", fs);
	if (!b->o->no_guest)
		return TDC_FAILF(e, TDC_E_UNSUPPORTED,
				 "the guest step needs an ext4 root (its files are read with "
				 "libext2fs); this root is only taken layout-only (--no-guest)",
				 "root filesystem %s", fs);
	b->fs.blocks = b->root_len / TDC_XTS_SECTOR;
	memcpy(b->fs.uuid, b->root_probe.uuid, 16);
	if (b->root_probe.size > b->fs.blocks * TDC_XTS_SECTOR)
		return TDC_FAIL(e, TDC_E_FORMAT, "root filesystem larger than its partition");
	for (size_t i = 0; i < b->gpt.n; i++) {
		const struct tdc_gpt_part *p = &b->gpt.parts[i];
		char uuid[37], label[17];

		if (p == b->esp || p == b->root || p == b->bios || !read_ext_sb(b, p, uuid, label))
			continue;
		if (b->boot_part)
			return TDC_FAILF(e, TDC_E_UNSUPPORTED,
					 "several ext4 partitions could be the /boot of this root",
					 "%s root; partitions %u and %u", fs, b->boot_part->index,
					 p->index);
		b->boot_part = p;
		snprintf(b->boot_uuid, sizeof(b->boot_uuid), "%s", uuid);
	}
	if (!b->boot_part)
		return TDC_FAILF(e, TDC_E_UNSUPPORTED,
				 "a non-ext4 root needs its own ext4 /boot partition (its /boot "
				 "directory cannot be read without mounting it)", "root filesystem %s",
				 fs);
	return 0;
}

/* Root candidates (Linux fs / root partition types), each probed: the first ext4 one with
 * /etc/os-release, else the first XFS or btrfs one (whole_root); *unknown: the first that
 * holds no filesystem we know (0 if none). */
static int find_root(struct build *b, const struct tdc_gpt_part **other,
		     struct tdc_image_fs_probe *other_probe, unsigned *unknown, uint8_t **osr,
		     size_t *len, struct tdc_error *e)
{
	int fd = open(b->src, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot open the disk image", "%s: %s", b->src,
				 strerror(errno));
	for (size_t i = 0; i < b->gpt.n && !b->root; i++) {
		const struct tdc_gpt_part *p = &b->gpt.parts[i];
		struct tdc_image_fs_probe pr;
		struct tdc_error ign = { 0 };

		if (!tdc_guid_equal(p->type, TDC_GPT_TYPE_LINUX_FS) &&
		    !tdc_guid_equal(p->type, TDC_GPT_TYPE_ROOT_X86_64))
			continue;
		r = tdc_image_fs_probe(fd, p->first_lba * TDC_GPT_SECTOR,
				       (p->last_lba - p->first_lba + 1) * TDC_GPT_SECTOR, &pr, e);
		if (r < 0)
			break;
		if (pr.type == TDC_FS_UNKNOWN) {
			if (!*unknown)
				*unknown = p->index;
			continue;
		}
		if (pr.type != TDC_FS_EXT4) {
			if (!*other) {
				*other = p;
				*other_probe = pr;
			}
			continue;
		}
		if (tdc_ext4_read_file(b->src, p->first_lba * TDC_GPT_SECTOR, "/etc/os-release",
				       TDC_MAX_OS_RELEASE, osr, len, &ign) == 0)
			b->root = p;
		else if (ign.code == TDC_E_LIMIT) /* the root, with a silly os-release */
			r = TDC_FAILF(e, TDC_E_LIMIT, "/etc/os-release too large", "partition %u",
				      p->index);
		if (r < 0)
			break;
	}
	close(fd);
	return r;
}

/* ESP by type; root: find_root. */
static int find_parts(struct build *b, struct tdc_error *e)
{
	const struct tdc_gpt_part *other = NULL;
	struct tdc_image_fs_probe other_probe = { 0 };
	unsigned unknown = 0;
	uint8_t *osr = NULL;
	size_t len = 0;
	int r;

	for (size_t i = 0; i < b->gpt.n; i++) {
		const struct tdc_gpt_part *p = &b->gpt.parts[i];

		if (!b->esp && tdc_guid_equal(p->type, TDC_GPT_TYPE_ESP))
			b->esp = p;
		if (!b->bios && tdc_guid_equal(p->type, TDC_GPT_TYPE_BIOS_BOOT))
			b->bios = p;
	}
	if (!b->esp)
		return TDC_FAIL(e, TDC_E_UNSUPPORTED, "no EFI system partition in the GPT");
	r = find_root(b, &other, &other_probe, &unknown, &osr, &len, e);
	if (r < 0) {
		free(osr);
		return r;
	}
	if (!b->root && other) {
		b->root = other;
		b->root_probe = other_probe;
		b->whole = true;
	}
	if (!b->root && unknown)
		return TDC_FAILF(e, TDC_E_FORMAT,
				 "no root partition found: no filesystem tdcrypt can encrypt "
				 "(ext4, xfs, btrfs)", "partition %u holds an unknown filesystem",
				 unknown);
	if (!b->root)
		return TDC_FAIL(e, TDC_E_FORMAT,
				"no root partition found (ext4 Linux partition with /etc/os-release)");
	part_info(b->esp, &b->r->in_esp);
	part_info(b->root, &b->r->in_root);
	b->root_off = b->r->in_root.offset;
	b->root_len = b->r->in_root.size;
	if (b->whole) {
		snprintf(b->r->family, sizeof(b->r->family), "%s",
			 tdc_distro_family_name(TDC_FAMILY_UNKNOWN));
		TDC_GUARD(whole_root(b, e));
	} else {
		r = tdc_os_release_parse(osr, len, &b->osr, e);
		free(osr);
		TDC_GUARD(r);
		snprintf(b->r->root_fs, sizeof(b->r->root_fs), "ext4");
		snprintf(b->r->encrypted, sizeof(b->r->encrypted), "allocated");
		snprintf(b->r->distro_id, sizeof(b->r->distro_id), "%s", b->osr.id);
		snprintf(b->r->distro_version, sizeof(b->r->distro_version), "%s",
			 b->osr.version_id);
		snprintf(b->r->distro_pretty, sizeof(b->r->distro_pretty), "%s",
			 b->osr.pretty_name);
		snprintf(b->r->family, sizeof(b->r->family), "%s",
			 tdc_distro_family_name(b->osr.family));
		if (b->osr.family == TDC_FAMILY_UNKNOWN)
			return TDC_FAILF(e, TDC_E_UNSUPPORTED,
					 "unknown distribution (supported: Debian/Ubuntu with "
					 "initramfs-tools, RHEL/Fedora/CentOS/Rocky/Alma with dracut)",
					 "ID=%s ID_LIKE=%s", b->osr.id, b->osr.id_like);
		TDC_GUARD(tdc_image_ext4_check(b->src, b->root_off, &b->fs, e));
	}
	if (b->fs.blocks * TDC_XTS_SECTOR > b->root_len)
		return TDC_FAIL(e, TDC_E_FORMAT, "root filesystem larger than its partition");
	if (b->fs.blocks * TDC_XTS_SECTOR < MIN_ROOT_BYTES)
		return TDC_FAILF(e, TDC_E_UNSUPPORTED, "root filesystem too small",
				 "%" PRIu64 " bytes, need %u MiB", b->fs.blocks * TDC_XTS_SECTOR,
				 MIN_ROOT_BYTES / MIB);
	return b->whole ? 0 : find_boot_part(b, e);
}

int tdc_build_boot_fs(struct build *b, const char *src_dir, struct tdc_error *e)
{
	char size[32];
	uint32_t mib = b->o->boot_mib ? b->o->boot_mib : TDC_IMAGE_DEFAULT_BOOT_MIB;
	const char *argv[] = { "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "boot",
			       "-U", b->boot_uuid, "-E", "root_owner=0:0", "-d", src_dir,
			       b->boot_img, size, NULL };
	int r;

	struct tdc_error le = { 0 };

	snprintf(size, sizeof(size), "%" PRIu32 "M", mib);
	r = tdc_run("creating the /boot filesystem", argv, NULL, NULL, &le);
	if (r < 0 && (strstr(le.detail, "llocate") || strstr(le.detail, "space")))
		return TDC_FAILF(e, TDC_E_LIMIT, "/boot partition too small for the guest's /boot",
				 "%" PRIu32 " MiB (raise --boot-size)", mib);
	if (r < 0 && e && !e->code)
		*e = le;
	return r;
}

/* Layout-only path: /boot out of the unmounted root with debugfs. */
static int boot_from_debugfs(struct build *b, struct tdc_error *e)
{
	char dir[PATH_MAX], src[PATH_MAX + 40], cmd[PATH_MAX + 32], boot[PATH_MAX + 8];

	join(dir, sizeof(dir), b->work, "/bootsrc");
	if (mkdir(dir, 0700) != 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create directory", "%s", strerror(errno));
	/* debugfs opens read-only unless -w: reading the input itself is fine */
	snprintf(src, sizeof(src), "%s?offset=%" PRIu64, b->src, b->root_off);
	snprintf(cmd, sizeof(cmd), "rdump /boot %s", dir);
	const char *argv[] = { "debugfs", "-R", cmd, src, NULL };
	TDC_GUARD(tdc_run("copying /boot out of the root with debugfs", argv, NULL, NULL, e));
	snprintf(boot, sizeof(boot), "%s/boot", dir);
	struct stat st;

	if (lstat(boot, &st) != 0 || !S_ISDIR(st.st_mode))
		return TDC_FAIL(e, TDC_E_UNSUPPORTED, "the guest root has no /boot directory");
	snprintf(cmd, sizeof(cmd), "%s/boot", boot);
	if (symlink(".", cmd) != 0 && errno != EEXIST)
		return TDC_FAILF(e, TDC_E_IO, "cannot create /boot/boot link", "%s",
				 strerror(errno));
	return tdc_build_boot_fs(b, boot, e);
}

/* New fs UUID for the root (its old one now names /boot). With metadata_csum the seed keeps
 * the checksums valid without rewriting every metadata block. */
static int new_root_uuid(struct build *b, struct tdc_error *e)
{
	char src[PATH_MAX + 40];
	const char *argv_seed[] = { "tune2fs", "-O", "metadata_csum_seed", "-U", b->root_uuid, src,
				    NULL };
	const char *argv_plain[] = { "tune2fs", "-U", b->root_uuid, src, NULL };
	const char *argv_fsck[] = { "e2fsck", "-f", "-p", src, NULL };

	if (b->whole) /* keeps its UUID: no new /boot takes it over (whole_root) */
		return 0;
	if (b->direct) /* IN is never written: the change lives in memory until encryption */
		return tdc_ext4_set_uuid_overlay(b->src, b->root_off, b->root_new_uuid, &b->ov, e);
	snprintf(src, sizeof(src), "%s?offset=%" PRIu64, b->raw, b->root_off);
	if (b->r->guest_modified && b->boot_part) { /* its grub.cfg and initramfs were rewritten */
		char bsrc[PATH_MAX + 40];
		const char *argv_bfsck[] = { "e2fsck", "-f", "-p", bsrc, NULL };

		snprintf(bsrc, sizeof(bsrc), "%s?offset=%" PRIu64, b->raw,
			 b->boot_part->first_lba * TDC_GPT_SECTOR);
		TDC_GUARD(tdc_run("checking the modified /boot filesystem", argv_bfsck, NULL, NULL,
				  e));
	}
	if (b->r->guest_modified)
		TDC_GUARD(tdc_run("checking the modified root filesystem", argv_fsck, NULL, NULL, e));
	return tdc_run("setting a new root filesystem UUID",
		       b->fs.metadata_csum && !b->fs.csum_seed ? argv_seed : argv_plain, NULL, NULL,
		       e);
}

/* Copies [off, off+len) of src into dst at dst_off, skipping holes and all-zero chunks. */
static int sparse_copy(const char *src_path, uint64_t off, uint64_t len, int dst,
		       uint64_t dst_off, struct tdc_error *e)
{
	int src = open(src_path, O_RDONLY | O_CLOEXEC);
	uint8_t *buf = malloc(COPY_CHUNK);
	uint64_t pos = off, end = off + len;
	int r = 0;

	if (src < 0 || !buf) {
		r = TDC_FAILF(e, src < 0 ? TDC_E_IO : TDC_E_NOMEM, "cannot copy", "%s: %s",
			      src_path, strerror(errno));
		goto out;
	}
	while (pos < end) {
		off_t d = lseek(src, (off_t)pos, SEEK_DATA);

		if (d < 0 || (uint64_t)d >= end)
			break; /* ENXIO: only a hole is left */
		pos = (uint64_t)d / COPY_CHUNK * COPY_CHUNK;
		if (pos < off)
			pos = off;
		size_t n = end - pos < COPY_CHUNK ? (size_t)(end - pos) : COPY_CHUNK;
		ssize_t got = pread(src, buf, n, (off_t)pos);

		if (got <= 0) {
			r = TDC_FAILF(e, TDC_E_IO, "read failed", "%s: %s", src_path,
				      got < 0 ? strerror(errno) : "short file");
			goto out;
		}
		if (!tdc_all_zero(buf, (size_t)got)) {
			size_t done = 0;

			while (done < (size_t)got) {
				ssize_t w = pwrite(dst, buf + done, (size_t)got - done,
						   (off_t)(dst_off + pos - off + done));
				if (w <= 0) {
					r = TDC_FAILF(e, TDC_E_IO, "write failed", "%s",
						      strerror(errno));
					goto out;
				}
				done += (size_t)w;
			}
		}
		pos += (uint64_t)got;
	}
out:
	if (src >= 0)
		close(src);
	free(buf);
	return r;
}

static void set_part(struct tdc_gpt_part *p, unsigned idx, const uint8_t type[16],
		     uint64_t off, uint64_t size, const char *name)
{
	p->index = idx;
	memcpy(p->type, type, 16);
	p->first_lba = off / TDC_GPT_SECTOR;
	p->last_lba = (off + size) / TDC_GPT_SECTOR - 1;
	snprintf(p->name, sizeof(p->name), "%s", name);
}

static int assemble(struct build *b, struct tdc_error *e)
{
	struct tdc_gpt g = { 0 };
	struct stat st;
	uint64_t esp_size = b->r->in_esp.size;
	uint64_t boot_size = (uint64_t)(b->o->boot_mib ? b->o->boot_mib
						       : TDC_IMAGE_DEFAULT_BOOT_MIB) * MIB;
	uint64_t bios_size = 0, boot_in = 0, esp_off = MIB, bios_off, boot_off, root_off, disk;
	int fd, r;

	if (b->boot_part) {
		boot_in = b->boot_part->first_lba * TDC_GPT_SECTOR;
		boot_size = (b->boot_part->last_lba - b->boot_part->first_lba + 1) * TDC_GPT_SECTOR;
	}
	if (b->bios)
		bios_size = (b->bios->last_lba - b->bios->first_lba + 1) * TDC_GPT_SECTOR;
	/* ESP, BIOS boot, /boot, root: the root stays last so it can be grown */
	bios_off = align_up(esp_off + esp_size, MIB);
	boot_off = align_up(bios_off + bios_size, MIB);
	root_off = align_up(boot_off + boot_size, MIB);
	disk = align_up(root_off + b->lk.size, MIB) + MIB;

	g.parts[0] = *b->esp; /* type, GUID, name and attributes as they were */
	g.parts[0].first_lba = esp_off / TDC_GPT_SECTOR;
	g.parts[0].last_lba = (esp_off + esp_size) / TDC_GPT_SECTOR - 1;
	g.parts[0].index = 1;
	set_part(&g.parts[1], 2, TDC_GPT_TYPE_LINUX_FS, boot_off, boot_size, "boot");
	set_part(&g.parts[2], 3, TDC_GPT_TYPE_LUKS, root_off, b->lk.size, "root");
	TDC_GUARD(tdc_guid_random(g.disk_guid, e));
	TDC_GUARD(tdc_guid_random(g.parts[1].guid, e));
	TDC_GUARD(tdc_guid_random(g.parts[2].guid, e));
	if (b->boot_part) { /* as it was too: its PARTUUID may be what something mounts */
		g.parts[1] = *b->boot_part;
		g.parts[1].first_lba = boot_off / TDC_GPT_SECTOR;
		g.parts[1].last_lba = (boot_off + boot_size) / TDC_GPT_SECTOR - 1;
		g.parts[1].index = 2;
	}
	g.n = 3;
	if (b->bios) {
		g.parts[3] = *b->bios;
		g.parts[3].first_lba = bios_off / TDC_GPT_SECTOR;
		g.parts[3].last_lba = (bios_off + bios_size) / TDC_GPT_SECTOR - 1;
		g.parts[3].index = 4;
		g.n = 4;
	}

	fd = open(b->disk, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create the output disk", "%s",
				 strerror(errno));
	if (ftruncate(fd, (off_t)disk) != 0) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot size the output disk", "%s", strerror(errno));
		goto out;
	}
	if ((r = tdc_gpt_write_fd(fd, disk, &g, e)) < 0 ||
	    (r = sparse_copy(b->src, b->r->in_esp.offset, esp_size, fd, esp_off, e)) < 0 ||
	    (b->bios && (r = sparse_copy(b->src, b->bios->first_lba * TDC_GPT_SECTOR, bios_size,
					 fd, bios_off, e)) < 0))
		goto out;
	if (b->boot_part) {
		r = sparse_copy(b->src, boot_in, boot_size, fd, boot_off, e);
	} else if (stat(b->boot_img, &st) != 0 || (uint64_t)st.st_size > boot_size) {
		r = TDC_FAIL(e, TDC_E_INTERNAL, "boot filesystem image has the wrong size");
	} else {
		r = sparse_copy(b->boot_img, 0, (uint64_t)st.st_size, fd, boot_off, e);
	}
	if (r < 0 || (r = sparse_copy(b->luks, 0, TDC_IMAGE_DATA_OFFSET, fd, root_off, e)) < 0)
		goto out;
	if (fsync(fd) != 0) {
		r = TDC_FAILF(e, TDC_E_IO, "fsync failed", "%s", strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;

	if ((r = tdc_build_stage(b, "encrypt", e)) < 0)
		goto out;
	struct tdc_image_fill_opts f = {
		.header = b->luks,
		.secret = b->o->secret,
		.secret_len = b->o->secret_len,
		.src = b->src,
		.src_offset = b->root_off,
		.whole_blocks = b->whole ? b->fs.blocks : 0,
		.overlay = b->direct && !b->whole ? &b->ov : NULL,
		.dst = b->disk,
		.dst_offset = root_off,
		.progress = fill_progress,
		.progress_arg = b,
	};
	double t0 = now_s();
	uint8_t vk_sha[32];

	r = tdc_image_luks_fill(&f, &b->r->root_used_blocks, vk_sha, e);
	b->r->t_encrypt = now_s() - t0;
	if (r < 0)
		goto out;
	if (memcmp(vk_sha, b->lk.vk_sha256, 32) != 0) {
		r = TDC_FAIL(e, TDC_E_INTERNAL, "volume key changed between header and data");
		goto out;
	}
	memcpy(b->r->vk_sha256, vk_sha, 32);
	b->r->root_fs_blocks = b->fs.blocks;
	part_info(&g.parts[0], &b->r->esp);
	part_info(&g.parts[1], &b->r->boot);
	part_info(&g.parts[2], &b->r->root);
	b->r->out_size = disk;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void cleanup(struct build *b)
{
	tdc_build_unmount_all(b);
	/* never walk a tree that may still have the host's /dev or /proc mounted in it */
	if (!*b->work || b->mounts_stuck)
		return;
	nftw(b->work, rm_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static int finish(struct build *b, const char *final, struct tdc_error *e)
{
	struct stat st;
	char dir[PATH_MAX];
	int fd;

	fd = open(final, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		return TDC_FAILF(e, TDC_E_IO, "cannot sync the output", "%s", strerror(errno));
	}
	b->r->out_allocated = (uint64_t)st.st_blocks * 512u;
	/* work files are 0600; the image itself holds no secret: usual mode under the umask */
	mode_t um = umask(022);

	umask(um);
	if (fchmod(fd, 0644 & ~um) != 0) {
		close(fd);
		return TDC_FAILF(e, TDC_E_IO, "cannot set the output mode", "%s", strerror(errno));
	}
	close(fd);
	if (b->o->commit)
		TDC_GUARD(b->o->commit(b->o->commit_arg, b->r, e));
	/* RENAME_NOREPLACE: an OUT that appeared meanwhile is not clobbered */
	if (syscall(SYS_renameat2, AT_FDCWD, final, AT_FDCWD, b->o->out, 1 /* NOREPLACE */) != 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot move the output into place", "%s: %s",
				 b->o->out, strerror(errno));
	snprintf(dir, sizeof(dir), "%s", b->o->out);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	return 0;
}

int tdc_image_build(const struct tdc_image_build_opts *o, struct tdc_image_build_result *res,
		    struct tdc_error *e)
{
	struct build *b;
	double t0 = now_s(), t;
	char final[PATH_MAX];
	int r;

	if (!o || !res)
		return TDC_FAIL(e, TDC_E_USAGE, "image: missing argument");
	memset(res, 0, sizeof(*res));
	TDC_GUARD(check_opts(o, e));
	b = calloc(1, sizeof(*b));
	if (!b)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	b->o = o;
	b->r = res;
	b->luks_name = o->luks_name ? o->luks_name : TDC_IMAGE_DEFAULT_LUKS_NAME;
	snprintf(res->luks_name, sizeof(res->luks_name), "%s", b->luks_name);
	if (strlen(o->out) + 64 >= sizeof(b->work)) {
		r = TDC_FAIL(e, TDC_E_USAGE, "output path too long");
		goto out;
	}
	snprintf(b->work, sizeof(b->work), "%s.tmp-XXXXXX", o->out);
	if (!mkdtemp(b->work)) {
		r = TDC_FAILF(e, TDC_E_IO, "cannot create the work directory next to the output",
			      "%s: %s", b->work, strerror(errno));
		b->work[0] = '\0';
		goto out;
	}
	join(b->raw, sizeof(b->raw), b->work, "/in.raw");
	join(b->luks, sizeof(b->luks), b->work, "/root.luks");
	join(b->boot_img, sizeof(b->boot_img), b->work, "/boot.img");
	join(b->disk, sizeof(b->disk), b->work, "/out.raw");

	/* 1. probe + private raw copy */
	if ((r = tdc_build_stage(b, "convert", e)) < 0 || (r = probe(b, e)) < 0)
		goto out;
	if (!strcmp(res->in_format, "raw") && (r = read_gpt(b, o->in, e)) < 0)
		goto out; /* fail fast on a non-disk before copying it */
	/* layout only from a raw disk: nothing in it changes but the root's UUID (an in-memory
	 * overlay), so IN is read in place instead of copied ('?' would confuse debugfs) */
	b->direct = o->no_guest && !strcmp(res->in_format, "raw") && !strchr(o->in, '?');
	b->src = b->direct ? o->in : b->raw;
	t = now_s();
	if (!b->direct) {
		const char *conv[] = { "qemu-img", "convert", "-f", res->in_format, "-O", "raw",
				       o->in, b->raw, NULL };

		struct stat st;

		b->watch_file = b->raw; /* its allocation grows towards the input's */
		b->watch_total = stat(o->in, &st) == 0 ? (uint64_t)st.st_blocks * 512u : 0;
		r = tdc_run_watch("converting the input to raw", conv, NULL, NULL, tdc_build_tick, b,
				  e);
		b->watch_file = NULL;
		if (r < 0)
			goto out;
	}
	res->t_convert = now_s() - t;

	/* 2. GPT, root, distro */
	t = now_s();
	if ((r = tdc_build_stage(b, "inspect", e)) < 0)
		goto out;
	if ((!b->direct && (r = read_gpt(b, b->raw, e)) < 0) || (r = find_parts(b, e)) < 0)
		goto out;
	if (!b->boot_part) /* the new /boot takes over the root's old fs UUID */
		tdc_uuid_format(b->fs.uuid, b->boot_uuid);
	if (b->whole)
		memcpy(b->root_new_uuid, b->fs.uuid, 16);
	else if ((r = tdc_guid_random(b->root_new_uuid, e)) < 0)
		goto out;
	tdc_uuid_format(b->root_new_uuid, b->root_uuid);
	snprintf(res->boot_fs_uuid, sizeof(res->boot_fs_uuid), "%s", b->boot_uuid);
	snprintf(res->root_fs_uuid, sizeof(res->root_fs_uuid), "%s", b->root_uuid);

	/* 3. header first: the agent config carries its digest */
	if ((r = tdc_image_luks_create(b->luks, b->fs.blocks * TDC_XTS_SECTOR, o->secret,
				       o->secret_len, NULL, &b->lk, e)) < 0)
		goto out;
	memcpy(res->header_sha256, b->lk.header_sha256, 32);
	snprintf(res->luks_uuid, sizeof(res->luks_uuid), "%s", b->lk.uuid);
	res->t_inspect = now_s() - t;

	/* 4. guest changes + /boot */
	t = now_s();
	if (o->no_guest) {
		r = tdc_build_stage(b, "boot partition", e);
		if (r == 0 && !b->boot_part)
			r = boot_from_debugfs(b, e);
	} else {
		enum tdc_image_guest_step step = tdc_image_guest_step_pick(o->guest_step,
									   (unsigned)geteuid());

		snprintf(res->guest_step, sizeof(res->guest_step), "%s",
			 tdc_image_guest_step_name(step));
		r = step == TDC_GUEST_STEP_VM ? tdc_build_guest_vm(b, e) : tdc_build_guest(b, e);
	}
	if (r < 0 || (r = new_root_uuid(b, e)) < 0)
		goto out;
	res->t_guest = now_s() - t;

	/* 5. output disk */
	t = now_s();
	if ((r = tdc_build_stage(b, "assemble", e)) < 0 || (r = assemble(b, e)) < 0)
		goto out;
	if (!b->direct)
		unlink(b->raw); /* the plaintext copy: not needed any more */
	res->t_assemble = now_s() - t - res->t_encrypt;

	t = now_s();
	snprintf(res->out_format, sizeof(res->out_format), "%s",
		 o->out_format ? o->out_format : res->in_format);
	if (!strcmp(res->out_format, "qcow2")) {
		struct stat st;

		if ((r = tdc_build_stage(b, "qcow2", e)) < 0)
			goto out;
		join(final, sizeof(final), b->work, "/out.qcow2");
		const char *argv[] = { "qemu-img", "convert", "-f", "raw", "-O", "qcow2", b->disk,
				       final, NULL };
		b->watch_file = final;
		b->watch_total = stat(b->disk, &st) == 0 ? (uint64_t)st.st_blocks * 512u : 0;
		r = tdc_run_watch("converting the output to qcow2", argv, NULL, NULL, tdc_build_tick,
				  b, e);
		b->watch_file = NULL;
		if (r < 0)
			goto out;
		unlink(b->disk);
	} else {
		snprintf(final, sizeof(final), "%s", b->disk);
	}
	r = finish(b, final, e);
	res->t_output = now_s() - t;
	res->t_total = now_s() - t0;
out:
	cleanup(b);
	tdc_overlay_free(&b->ov);
	OPENSSL_cleanse(b, sizeof(*b));
	free(b);
	return r;
}
