/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GRUB: the events tdc_grub_predict expects GRUB 2.06 to measure for a grub.cfg, over an
 * in-memory GRUB image (built-in modules, memdisk tar) and disk (partitions by filesystem UUID,
 * files by path); where it must stop rather than guess; the module area of real and synthetic
 * GRUB EFI images (tdc_grub_image_parse, tdc_grub_memdisk_file).
 *
 * The expected sequences follow what Debian's GRUB 2.06-13 measured in QEMU/OVMF with a vTPM
 * (its "set debug=tpm" trace): the module lists are read after "set prefix=" but not at
 * configfile; configfile sees exported variables only; an unquoted empty variable is no word.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "tdcrypt/measure.h"
#include "util/util.h"

#define UUID "0f6e1b2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
#define ESP_UUID "1234-ABCD"

/* ---- a memdisk: a ustar archive ---- */

struct tfile {
	const char *name;
	const void *data;
	size_t len;
};

static size_t round512(size_t n)
{
	return (n + 511u) / 512u * 512u;
}

/* 512-byte headers (name at 0, size in octal at 124, typeflag '0' at 156, "ustar" at 257), data
 * padded to 512, two zero blocks at the end. */
static uint8_t *tar_build(const struct tfile *f, size_t n, size_t *out_len)
{
	size_t len = 1024, off = 0;
	for (size_t i = 0; i < n; i++)
		len += 512 + round512(f[i].len);
	uint8_t *t = calloc(1, len);
	assert_non_null(t);
	for (size_t i = 0; i < n; i++) {
		uint8_t *h = t + off;
		size_t nl = strlen(f[i].name);
		memcpy(h, f[i].name, nl < 100 ? nl : 100);
		snprintf((char *)h + 100, 8, "%07o", 0644u);
		snprintf((char *)h + 108, 8, "%07o", 0u);
		snprintf((char *)h + 116, 8, "%07o", 0u);
		snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)f[i].len);
		snprintf((char *)h + 136, 12, "%011o", 0u);
		h[156] = '0';
		memcpy(h + 257, "ustar", 6);
		memcpy(h + 263, "00", 2);
		memset(h + 148, ' ', 8);
		unsigned sum = 0;
		for (size_t k = 0; k < 512; k++)
			sum += h[k];
		snprintf((char *)h + 148, 8, "%06o", sum);
		if (f[i].len)
			memcpy(h + 512, f[i].data, f[i].len);
		off += 512 + round512(f[i].len);
	}
	*out_len = len;
	return t;
}

/* ---- the disk GRUB sees: partitions and their files ---- */

#define MAX_PARTS 4
#define MAX_FILES 32

struct dfile {
	unsigned part;
	char path[128];
	uint8_t *data;
	size_t len;
};

struct disk {
	size_t nparts;
	struct {
		unsigned num;
		char uuid[64];
	} parts[MAX_PARTS];
	size_t nfiles;
	struct dfile files[MAX_FILES];
	size_t reads;
};

static unsigned disk_find_uuid(void *arg, const char *uuid)
{
	struct disk *d = arg;
	for (size_t i = 0; i < d->nparts; i++)
		if (!strcmp(d->parts[i].uuid, uuid))
			return d->parts[i].num;
	return 0;
}

static int disk_read(void *arg, unsigned part, const char *path, uint8_t **buf, size_t *len,
		     struct tdc_error *e)
{
	struct disk *d = arg;
	d->reads++;
	for (size_t i = 0; i < d->nfiles; i++) {
		const struct dfile *f = &d->files[i];
		if (f->part != part || strcmp(f->path, path))
			continue;
		*buf = malloc(f->len + 1);
		if (!*buf)
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		if (f->len)
			memcpy(*buf, f->data, f->len);
		(*buf)[f->len] = '\0';
		*len = f->len;
		return 0;
	}
	return TDC_FAILF(e, TDC_E_NOT_FOUND, "no such file", "(hd0,gpt%u)%s", part, path);
}

/* ---- a GRUB image, a disk, a prediction ---- */

struct fx {
	struct tdc_grub_image g;
	uint8_t *tar;
	size_t tar_len;
	struct disk disk;
	struct tdc_grub_disk d;
	struct tdc_prediction *p;
	struct tdc_grub_boot boot;
	struct tdc_error e;
};

static const char *const builtin_modules[] = {
	"normal", "search", "search_fs_uuid", "configfile", "linux", "linuxefi", "serial",
	"terminal", "echo", "boot", "true", "tpm", "part_gpt", "ext2", "fat",
};

static void fx_memdisk(struct fx *f, const struct tfile *files, size_t n)
{
	free(f->tar);
	f->tar = tar_build(files, n, &f->tar_len);
	f->g.has_memdisk = true;
	tdc_rd_init(&f->g.memdisk, f->tar, f->tar_len);
}

/* A grub-mkstandalone image: the modules above built in, tpm among them, the prefix on the
 * memdisk and the embedded config as its boot/grub/grub.cfg; plus more memdisk files. */
static struct fx *fx_new_with(const char *embedded, const struct tfile *more, size_t nmore)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->p = calloc(1, sizeof(*f->p));
	assert_non_null(f->p);
	snprintf(f->g.version, sizeof(f->g.version), "2.06-13+deb12u2");
	f->g.major = 2;
	f->g.minor = 6;
	for (size_t i = 0; i < sizeof(builtin_modules) / sizeof(builtin_modules[0]); i++)
		snprintf(f->g.builtin[f->g.n_builtin++], sizeof(f->g.builtin[0]), "%s",
			 builtin_modules[i]);
	f->g.tpm_builtin = true;
	snprintf(f->g.prefix, sizeof(f->g.prefix), "(memdisk)/boot/grub");
	struct tfile files[8];
	assert_true(nmore < 8);
	files[0] = (struct tfile){ "boot/grub/grub.cfg", embedded, strlen(embedded) };
	for (size_t i = 0; i < nmore; i++)
		files[i + 1] = more[i];
	fx_memdisk(f, files, nmore + 1);
	f->d.arg = &f->disk;
	f->d.find_uuid = disk_find_uuid;
	f->d.read = disk_read;
	tdc_error_clear(&f->e);
	return f;
}

static struct fx *fx_new(const char *embedded)
{
	return fx_new_with(embedded, NULL, 0);
}

static void fx_part(struct fx *f, unsigned num, const char *uuid)
{
	assert_true(f->disk.nparts < MAX_PARTS);
	f->disk.parts[f->disk.nparts].num = num;
	snprintf(f->disk.parts[f->disk.nparts].uuid, sizeof(f->disk.parts[0].uuid), "%s", uuid);
	f->disk.nparts++;
}

static void fx_file(struct fx *f, unsigned part, const char *path, const void *data, size_t len)
{
	assert_true(f->disk.nfiles < MAX_FILES);
	struct dfile *df = &f->disk.files[f->disk.nfiles++];
	df->part = part;
	snprintf(df->path, sizeof(df->path), "%s", path);
	df->data = malloc(len ? len : 1);
	assert_non_null(df->data);
	if (len)
		memcpy(df->data, data, len);
	df->len = len;
}

static void fx_text(struct fx *f, unsigned part, const char *path, const char *text)
{
	fx_file(f, part, path, text, strlen(text));
}

static void fx_free(struct fx *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->disk.nfiles; i++)
		free(f->disk.files[i].data);
	tdc_grub_boot_free(&f->boot);
	free(f->tar);
	free(f->p);
	free(f);
}

static void dump(const struct tdc_prediction *p)
{
	for (size_t i = 0; i < p->n; i++)
		print_message("  event %zu: rtmr %u type 0x%x role %s%s: %s\n", i, p->ev[i].rtmr,
			      p->ev[i].type, tdc_event_role_name(p->ev[i].role),
			      p->ev[i].known ? "" : " (unknown)", p->ev[i].what);
	for (unsigned r = 0; r < TDC_RTMR_COUNT; r++)
		if (p->truncated[r])
			print_message("  RTMR%u stopped: %s\n", r, p->why[r]);
}

/* Predicts and expects success (a stop is still success). */
static void fx_run(struct fx *f, bool measure)
{
	int r = tdc_grub_predict(&f->g, &f->d, measure, f->p, &f->boot, &f->e);
	if (r != 0) {
		char msg[512];
		print_error("tdc_grub_predict: %d: %s\n", r, tdc_error_format(&f->e, msg, sizeof(msg)));
		dump(f->p);
	}
	assert_int_equal(r, 0);
}

/* ---- expected events ---- */

struct want {
	const char *what;  /* the event text */
	const void *data;  /* what its digest is the SHA-384 of */
	size_t len;
	enum tdc_event_role role;
};

#define W_CMD(s) { "grub_cmd: " s, s, sizeof(s) - 1, TDC_ROLE_BOOT_COMMAND }
#define W_KCMD(s) { "kernel_cmdline: " s, s, sizeof(s) - 1, TDC_ROLE_CMDLINE }
#define W_FILE(name, d, n, role) { name, d, n, role }

static void sha384(const void *data, size_t len, uint8_t out[TDC_SHA384_LEN])
{
	unsigned int n;
	assert_int_equal(EVP_Digest(data, len, out, &n, EVP_sha384(), NULL), 1);
	assert_int_equal(n, TDC_SHA384_LEN);
}

/* ev is w: RTMR2, EV_IPL, known, the role, SHA-384 of the data, the text (as far as it fits). */
static bool event_is(const struct tdc_pred_event *ev, const struct want *w, char *why, size_t cap)
{
	uint8_t d[TDC_SHA384_LEN];
	char what[TDC_PRED_WHAT];
	sha384(w->data, w->len, d);
	snprintf(what, sizeof(what), "%s", w->what);
	if (ev->rtmr != 2 || ev->type != TDC_EV_IPL || !ev->known)
		snprintf(why, cap, "rtmr %u type 0x%x known %d", ev->rtmr, ev->type, ev->known);
	else if (ev->role != w->role)
		snprintf(why, cap, "role %s, want %s", tdc_event_role_name(ev->role),
			 tdc_event_role_name(w->role));
	else if (strcmp(ev->what, what))
		snprintf(why, cap, "text [%s], want [%s]", ev->what, what);
	else if (memcmp(ev->digest, d, sizeof(d)))
		snprintf(why, cap, "digest differs (text [%s])", ev->what);
	else
		return true;
	return false;
}

static void check_events_at(const struct tdc_prediction *p, size_t first, const struct want *w,
			    size_t n)
{
	char why[512];
	bool ok = p->n >= first + n;
	for (size_t i = 0; ok && i < n; i++) {
		if (!event_is(&p->ev[first + i], &w[i], why, sizeof(why))) {
			print_error("event %zu: %s\n", first + i, why);
			ok = false;
		}
	}
	if (!ok) {
		print_error("want %zu events from %zu, have %zu:\n", n, first, p->n);
		dump(p);
	}
	assert_true(ok);
}

/* Exactly these events. */
static void check_events(const struct tdc_prediction *p, const struct want *w, size_t n)
{
	if (p->n != n) {
		print_error("have %zu events, want %zu\n", p->n, n);
		dump(p);
	}
	assert_int_equal(p->n, n);
	check_events_at(p, 0, w, n);
}

#define CHECK_EVENTS(p, arr) check_events((p), (arr), sizeof(arr) / sizeof((arr)[0]))

static void assert_not_stopped(const struct tdc_prediction *p)
{
	if (p->truncated[2]) {
		print_error("RTMR2 stopped: %s\n", p->why[2]);
		dump(p);
	}
	assert_false(p->truncated[2]);
}

static void assert_stopped(const struct tdc_prediction *p, const char *needle)
{
	if (!p->truncated[2] || !strstr(p->why[2], needle)) {
		print_error("want a stop mentioning [%s], have truncated %d [%s]\n", needle,
			    p->truncated[2], p->why[2]);
		dump(p);
	}
	assert_true(p->truncated[2]);
	assert_non_null(strstr(p->why[2], needle));
}

/* ---- the layout of the project's test guest (tests/e2e/build-guest.sh) ---- */

static const char guest_esp_cfg[] = "search --no-floppy --fs-uuid --set=root " UUID "\n"
				    "set prefix=($root)/boot/grub\n"
				    "configfile /boot/grub/grub.cfg\n";
#define GUEST_BODY                                                          \
	"\n\tsearch --no-floppy --fs-uuid --set=root " UUID "\n"            \
	"\tlinuxefi /vmlinuz root=UUID=" UUID " ro console=ttyS0 panic=-1\n" \
	"\tinitrdefi /initrd.img\n"
static const char guest_cfg[] = "set timeout=0\n"
				"serial --unit=0 --speed=115200\n"
				"terminal_input serial\n"
				"terminal_output serial\n"
				"menuentry 'Debian' {" GUEST_BODY "}\n";
#define GUEST_ARGS "root=UUID=" UUID " ro console=ttyS0 panic=-1"

static uint8_t kernel[3001];
static uint8_t initrd[1203];

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 31u + seed + (i >> 7));
}

static struct fx *guest(void)
{
	struct fx *f = fx_new(guest_esp_cfg);
	fill(kernel, sizeof(kernel), 1);
	kernel[0] = 'M';
	kernel[1] = 'Z';
	fill(initrd, sizeof(initrd), 7);
	fx_part(f, 1, ESP_UUID);
	fx_part(f, 2, UUID);
	fx_text(f, 2, "/boot/grub/grub.cfg", guest_cfg);
	fx_file(f, 2, "/vmlinuz", kernel, sizeof(kernel));
	fx_file(f, 2, "/initrd.img", initrd, sizeof(initrd));
	return f;
}

static void check_guest_boot(const struct tdc_grub_boot *b)
{
	assert_string_equal(b->kernel_path, "/vmlinuz");
	assert_int_equal(b->kernel_len, sizeof(kernel));
	assert_memory_equal(b->kernel, kernel, sizeof(kernel));
	assert_int_equal(b->n_initrd, 1);
	assert_int_equal(b->initrd_len, sizeof(initrd));
	assert_memory_equal(b->initrd, initrd, sizeof(initrd));
	assert_string_equal(b->cmdline, "BOOT_IMAGE=/vmlinuz " GUEST_ARGS);
	assert_string_equal(b->loader, "linuxefi");
	assert_string_equal(b->title, "Debian");
}

static void check_guest_events(const struct tdc_prediction *p)
{
	const struct want w[] = {
		W_CMD("search --no-floppy --fs-uuid --set=root " UUID),
		W_CMD("set prefix=(hd0,gpt2)/boot/grub"),
		W_CMD("configfile /boot/grub/grub.cfg"),
		W_FILE("/boot/grub/grub.cfg", guest_cfg, sizeof(guest_cfg) - 1,
		       TDC_ROLE_BOOT_CONFIG),
		W_CMD("set timeout=0"),
		W_CMD("serial --unit=0 --speed=115200"),
		W_CMD("terminal_input serial"),
		W_CMD("terminal_output serial"),
		W_CMD("menuentry Debian {" GUEST_BODY "}"),
		W_CMD("setparams Debian"),
		W_CMD("search --no-floppy --fs-uuid --set=root " UUID),
		W_CMD("linuxefi /vmlinuz " GUEST_ARGS),
		W_FILE("/vmlinuz", kernel, sizeof(kernel), TDC_ROLE_KERNEL),
		W_KCMD("/vmlinuz " GUEST_ARGS),
		W_CMD("initrdefi /initrd.img"),
		W_FILE("/initrd.img", initrd, sizeof(initrd), TDC_ROLE_INITRD),
	};
	assert_int_equal(sizeof(w) / sizeof(w[0]), 16);
	CHECK_EVENTS(p, w);
	assert_not_stopped(p);
}

static void test_guest_layout(void **state)
{
	(void)state;
	struct fx *f = guest();
	fx_run(f, true);
	check_guest_events(f->p);
	check_guest_boot(&f->boot);
	/* the predicted list replays */
	assert_int_equal(tdc_pred_finish(f->p, NULL), 0);
	assert_true(f->p->predicted[2]);
	fx_free(f);
}

static void test_guest_not_measured(void **state)
{
	(void)state;
	struct fx *f = guest();
	fx_run(f, false);
	assert_int_equal(f->p->n, 0);
	assert_not_stopped(f->p);
	check_guest_boot(&f->boot);
	fx_free(f);
}

static void test_guest_without_tpm_module(void **state)
{
	(void)state;
	struct fx *f = guest();
	f->g.tpm_builtin = false;
	fx_run(f, true);
	assert_int_equal(f->p->n, 0);
	assert_not_stopped(f->p);
	check_guest_boot(&f->boot);
	fx_free(f);
}

/* ---- words: quotes, variables, escapes ---- */

static void test_quoting(void **state)
{
	(void)state;
	struct fx *f = fx_new("echo   \"x  y\"   'p  q'\tr\\ s pre'mid'post \"a\\\\b\\\"c\\$d\" 'a\\b'\n"
			      "echo one; echo two # a comment\n"
			      "# a whole comment line; echo never\n"
			      "  \techo \"multi\n"
			      "line\"\n");
	fx_run(f, true);
	const struct want w[] = {
		W_CMD("echo x  y p  q r s premidpost a\\b\"c$d a\\b"),
		W_CMD("echo one"),
		W_CMD("echo two"),
		W_CMD("echo multi\nline"),
	};
	CHECK_EVENTS(f->p, w);
	assert_not_stopped(f->p);
	fx_free(f);
}

static void test_expansion(void **state)
{
	(void)state;
	struct fx *f = fx_new("set a=one\n"
			      "set b=\"two  words\"\n"
			      "c=three\n"
			      "echo $a ${a}x x$a \"$b\" \"<${b}>\" '$a' \\$a $c\n"
			      "set a=\"$a$c\"\n"
			      "echo $a\n");
	fx_run(f, true);
	const struct want w[] = {
		W_CMD("set a=one"),
		W_CMD("set b=two  words"),
		W_CMD("c=three"),
		W_CMD("echo one onex xone two  words <two  words> $a $a three"),
		W_CMD("set a=onethree"),
		W_CMD("echo onethree"),
	};
	CHECK_EVENTS(f->p, w);
	assert_not_stopped(f->p);
	fx_free(f);
}

/* What Debian's GRUB 2.06 measured: "echo a $empty b" is "echo a b", "echo \"$empty\" c" keeps
 * the empty word ("echo  c"), a backslash-newline inside a word joins the lines. */
static void test_empty_words_and_continuations(void **state)
{
	(void)state;
	struct fx *f = fx_new("set empty=\n"
			      "echo a $empty b\n"
			      "echo \"$empty\" c\n"
			      "echo '' d\n"
			      "echo x\\\ny z\n"
			      "echo e \\\n  f\n");
	fx_run(f, true);
	const struct want w[] = {
		W_CMD("set empty="),
		W_CMD("echo a b"),
		W_CMD("echo  c"),
		W_CMD("echo  d"),
		W_CMD("echo xy z"),
		W_CMD("echo e f"),
	};
	CHECK_EVENTS(f->p, w);
	assert_not_stopped(f->p);
	fx_free(f);
}

/* grub_create_loader_cmdline: a backslash before \ ' ", double quotes around an argument with
 * a space (as Debian's GRUB measured "a b" and 'q"\'). */
static void test_kernel_cmdline_requoting(void **state)
{
	(void)state;
	struct fx *f = fx_new("search --fs-uuid --set=root " UUID "\n"
			      "set opt=\"quiet  splash\"\n"
			      "menuentry 'Q' {\n"
			      "\tlinux /vmlinuz root=UUID=x \"a b\" 'q\"\\' \"$opt\" it\\'s ro\n"
			      "}\n");
	fx_part(f, 2, UUID);
	fx_text(f, 2, "/vmlinuz", "kernel");
	fx_run(f, true);
	const struct want w[] = {
		W_CMD("search --fs-uuid --set=root " UUID),
		W_CMD("set opt=quiet  splash"),
		W_CMD("menuentry Q {\n\tlinux /vmlinuz root=UUID=x \"a b\" 'q\"\\' \"$opt\" "
		      "it\\'s ro\n}"),
		W_CMD("setparams Q"),
		W_CMD("linux /vmlinuz root=UUID=x a b q\"\\ quiet  splash it's ro"),
		W_FILE("/vmlinuz", "kernel", 6, TDC_ROLE_KERNEL),
		W_KCMD("/vmlinuz root=UUID=x \"a b\" q\\\"\\\\ \"quiet  splash\" it\\'s ro"),
	};
	CHECK_EVENTS(f->p, w);
	assert_not_stopped(f->p);
	assert_string_equal(f->boot.cmdline,
			    "BOOT_IMAGE=/vmlinuz root=UUID=x \"a b\" q\\\"\\\\ \"quiet  splash\" "
			    "it\\'s ro");
	assert_string_equal(f->boot.loader, "linux");
	assert_int_equal(f->boot.n_initrd, 0);
	assert_null(f->boot.initrd);
	fx_free(f);
}

/* ---- the module lists normal.mod reads ---- */

/* They are read (if they exist) when $prefix is set, also inside a configfile, and not by
 * configfile or source themselves. */
static void test_module_lists(void **state)
{
	(void)state;
	struct fx *f = fx_new(guest_esp_cfg);
	static const char cfg[] = "set prefix=($root)/boot/grub\n"
				  "source /boot/grub/b.cfg\n"
				  "menuentry 'D' {\n\tlinux /vmlinuz\n}\n";
	fx_part(f, 2, UUID);
	fx_text(f, 2, "/boot/grub/x86_64-efi/command.lst", "*echo: echo\n");
	fx_text(f, 2, "/boot/grub/x86_64-efi/fs.lst", "ext2\n");
	/* no crypto.lst: not measured */
	fx_text(f, 2, "/boot/grub/x86_64-efi/terminal.lst", "iterminal_input: serial\n");
	fx_text(f, 2, "/boot/grub/grub.cfg", cfg);
	fx_text(f, 2, "/boot/grub/b.cfg", "echo in-b\n");
	fx_text(f, 2, "/vmlinuz", "K");
	fx_run(f, true);
#define LISTS                                                                              \
	W_FILE("(hd0,gpt2)/boot/grub/x86_64-efi/command.lst", "*echo: echo\n", 12,          \
	       TDC_ROLE_BOOT_CONFIG),                                                       \
	W_FILE("(hd0,gpt2)/boot/grub/x86_64-efi/fs.lst", "ext2\n", 5, TDC_ROLE_BOOT_CONFIG), \
	W_FILE("(hd0,gpt2)/boot/grub/x86_64-efi/terminal.lst", "iterminal_input: serial\n", 24, \
	       TDC_ROLE_BOOT_CONFIG)
	const struct want w[] = {
		W_CMD("search --no-floppy --fs-uuid --set=root " UUID),
		W_CMD("set prefix=(hd0,gpt2)/boot/grub"),
		LISTS,
		W_CMD("configfile /boot/grub/grub.cfg"),
		W_FILE("/boot/grub/grub.cfg", cfg, sizeof(cfg) - 1, TDC_ROLE_BOOT_CONFIG),
		W_CMD("set prefix=(hd0,gpt2)/boot/grub"),
		LISTS,
		W_CMD("source /boot/grub/b.cfg"),
		W_FILE("/boot/grub/b.cfg", "echo in-b\n", 10, TDC_ROLE_BOOT_CONFIG),
		W_CMD("echo in-b"),
		W_CMD("menuentry D {\n\tlinux /vmlinuz\n}"),
		W_CMD("setparams D"),
		W_CMD("linux /vmlinuz"),
		W_FILE("/vmlinuz", "K", 1, TDC_ROLE_KERNEL),
		W_KCMD("/vmlinuz"),
	};
#undef LISTS
	CHECK_EVENTS(f->p, w);
	assert_not_stopped(f->p);
	assert_string_equal(f->boot.cmdline, "BOOT_IMAGE=/vmlinuz");
	fx_free(f);
}

/* Files on the memdisk (lists, configs, kernels) are never measured; the commands are. */
static void test_memdisk_files_not_measured(void **state)
{
	(void)state;
	static const struct tfile more[] = {
		{ "boot/grub/x86_64-efi/command.lst", "*echo: echo\n", 12 },
		{ "boot/grub/extra.cfg", "echo extra\n", 11 },
		{ "vmlinuz", "memdisk kernel", 14 },
	};
	struct fx *f = fx_new_with("set prefix=(memdisk)/boot/grub\n"
				   "insmod not_built_in\n"
				   "source /boot/grub/extra.cfg\n"
				   "menuentry 'M' {\n\tlinux /vmlinuz ro\n}\n",
				   more, 3);
	fx_run(f, true);
	const struct want w[] = {
		W_CMD("set prefix=(memdisk)/boot/grub"),
		W_CMD("insmod not_built_in"),
		W_CMD("source /boot/grub/extra.cfg"),
		W_CMD("echo extra"),
		W_CMD("menuentry M {\n\tlinux /vmlinuz ro\n}"),
		W_CMD("setparams M"),
		W_CMD("linux /vmlinuz ro"),
		W_KCMD("/vmlinuz ro"),
	};
	CHECK_EVENTS(f->p, w);
	assert_not_stopped(f->p);
	assert_int_equal(f->disk.reads, 0);
	assert_int_equal(f->boot.kernel_len, 14);
	assert_memory_equal(f->boot.kernel, "memdisk kernel", 14);
	fx_free(f);
}

/* ---- configfile: a new menu and variable context ---- */

/* As Debian's GRUB 2.06 ran it: a configfile sees the exported variables only (root, prefix,
 * what the script exports), and what it sets is gone when it returns. */
static void test_configfile_variable_context(void **state)
{
	(void)state;
	struct fx *f = fx_new("search --no-floppy --fs-uuid --set=root " UUID "\n"
			      "set default=1\n"
			      "set v=outer\n"
			      "export v\n"
			      "configfile /boot/grub/inner.cfg\n"
			      "echo $v $root\n"
			      "set root=(hd0,gpt2)\n"
			      "configfile /boot/grub/grub.cfg\n");
	static const char inner[] = "echo $v\nset v=inner\nset root=memdisk\necho $v $root\n";
	static const char cfg[] = "menuentry First {\n\tlinux /vmlinuz first\n}\n"
				  "menuentry Second {\n\tlinux /vmlinuz second\n}\n";
	fx_part(f, 2, UUID);
	fx_text(f, 2, "/boot/grub/inner.cfg", inner);
	fx_text(f, 2, "/boot/grub/grub.cfg", cfg);
	fx_text(f, 2, "/vmlinuz", "K");
	fx_run(f, true);
	const struct want w[] = {
		W_CMD("search --no-floppy --fs-uuid --set=root " UUID),
		W_CMD("set default=1"),
		W_CMD("set v=outer"),
		W_CMD("export v"),
		W_CMD("configfile /boot/grub/inner.cfg"),
		W_FILE("/boot/grub/inner.cfg", inner, sizeof(inner) - 1, TDC_ROLE_BOOT_CONFIG),
		W_CMD("echo outer"),
		W_CMD("set v=inner"),
		W_CMD("set root=memdisk"),
		W_CMD("echo inner memdisk"),
		W_CMD("echo outer hd0,gpt2"),
		/* GRUB's hook on $root drops the parentheses */
		W_CMD("set root=(hd0,gpt2)"),
		W_CMD("configfile /boot/grub/grub.cfg"),
		W_FILE("/boot/grub/grub.cfg", cfg, sizeof(cfg) - 1, TDC_ROLE_BOOT_CONFIG),
		W_CMD("menuentry First {\n\tlinux /vmlinuz first\n}"),
		W_CMD("menuentry Second {\n\tlinux /vmlinuz second\n}"),
		/* default=1 was not exported: the inner menu boots its first entry */
		W_CMD("setparams First"),
		W_CMD("linux /vmlinuz first"),
		W_FILE("/vmlinuz", "K", 1, TDC_ROLE_KERNEL),
		W_KCMD("/vmlinuz first"),
	};
	CHECK_EVENTS(f->p, w);
	assert_not_stopped(f->p);
	assert_string_equal(f->boot.title, "First");
	fx_free(f);
}

/*
 * A trace of Debian's GRUB 2.06-13+deb12u2 (grub-mkstandalone with the guest's modules, OVMF and
 * swtpm under QEMU, "set debug=tpm"): every measurement it logged after "export debug", as
 * (size, first characters of the description). Each predicted event must have that size, that
 * text and the SHA-384 of its string or file.
 */
static const char trace_esp[] = "set debug=tpm\n"
				"export debug\n"
				"search --no-floppy --fs-uuid --set=root " UUID "\n"
				"set default=1\n"
				"set v=outer\n"
				"export v\n"
				"set prefix=($root)/boot/grub\n"
				"configfile /boot/grub/inner.cfg\n"
				"echo $v $root\n"
				"set root=(hd0,gpt2)\n"
				"configfile /boot/grub/grub.cfg\n";
static const char trace_inner[] = "echo $v\n"
				  "set v=inner\n"
				  "set root=memdisk\n"
				  "echo $v $root\n";
static const char trace_cfg[] = "set timeout=0\n"
				"set empty=\n"
				"echo a $empty b\n"
				"echo \"$empty\" c\n"
				"echo '' d\n"
				"echo x\\\n"
				"y z\n"
				"echo e \\\n"
				"  f\n"
				"source /boot/grub/b.cfg\n"
				"set prefix=($root)/boot/grub\n"
				"menuentry 'Debian GNU' --class debian {\n"
				"\tlinuxefi /vmlinuz root=UUID=x \"a b\" 'q\"\\' it\\'s ro\n"
				"\tinitrdefi /initrd.img /initrd2.img\n"
				"}\n"
				"menuentry 'Second' {\n"
				"\techo second\n"
				"}\n";

static const struct {
	size_t size;
	const char *text;
} debian_trace[] = {
	{ 0xc, "grub_cmd: export debug" },
	{ 0x4c, "grub_cmd: search --no-floppy --fs-uuid" },
	{ 0xd, "grub_cmd: set default=1" },
	{ 0xb, "grub_cmd: set v=outer" },
	{ 0x8, "grub_cmd: export v" },
	{ 0x1f, "grub_cmd: set prefix=(hd0,gpt2)/boot/grub" },
	{ 0xa, "(hd0,gpt2)/boot/grub/x86_64-efi/command.lst" },
	{ 0x5, "(hd0,gpt2)/boot/grub/x86_64-efi/fs.lst" },
	{ 0xb, "(hd0,gpt2)/boot/grub/x86_64-efi/terminal.lst" },
	{ 0x1f, "grub_cmd: configfile /boot/grub/inner.cfg" },
	{ 0x33, "/boot/grub/inner.cfg" },
	{ 0xa, "grub_cmd: echo outer" },
	{ 0xb, "grub_cmd: set v=inner" },
	{ 0x10, "grub_cmd: set root=memdisk" },
	{ 0x12, "grub_cmd: echo inner memdisk" },
	{ 0x13, "grub_cmd: echo outer hd0,gpt2" },
	{ 0x13, "grub_cmd: set root=(hd0,gpt2)" },
	{ 0x1e, "grub_cmd: configfile /boot/grub/grub.cfg" },
	{ 0x137, "/boot/grub/grub.cfg" },
	{ 0xd, "grub_cmd: set timeout=0" },
	{ 0xa, "grub_cmd: set empty=" },
	{ 0x8, "grub_cmd: echo a b" },
	{ 0x7, "grub_cmd: echo  c" },
	{ 0x7, "grub_cmd: echo  d" },
	{ 0x9, "grub_cmd: echo xy z" },
	{ 0x8, "grub_cmd: echo e f" },
	{ 0x17, "grub_cmd: source /boot/grub/b.cfg" },
	{ 0xa, "/boot/grub/b.cfg" },
	{ 0x9, "grub_cmd: echo in-b" },
	{ 0x1f, "grub_cmd: set prefix=(hd0,gpt2)/boot/grub" },
	{ 0xa, "(hd0,gpt2)/boot/grub/x86_64-efi/command.lst" },
	{ 0x5, "(hd0,gpt2)/boot/grub/x86_64-efi/fs.lst" },
	{ 0xb, "(hd0,gpt2)/boot/grub/x86_64-efi/terminal.lst" },
	{ 0x7f, "grub_cmd: menuentry Debian GNU --class" },
	{ 0x21, "grub_cmd: menuentry Second {" },
	{ 0x14, "grub_cmd: setparams Debian GNU" },
	{ 0x2d, "grub_cmd: linuxefi /vmlinuz root=UUID=x a" },
	{ 0x1000, "/vmlinuz" },
	{ 0x29, "kernel_cmdline: /vmlinuz root=UUID=x \"a b\"" },
	{ 0x22, "grub_cmd: initrdefi /initrd.img" },
	{ 0x7, "/initrd.img" },
	{ 0x4, "/initrd2.img" },
};

static void test_debian_grub_trace(void **state)
{
	(void)state;
	static uint8_t vmlinuz[0x1000];
	struct fx *f = fx_new(trace_esp);
	fx_part(f, 1, ESP_UUID);
	fx_part(f, 2, UUID);
	fx_text(f, 2, "/boot/grub/x86_64-efi/command.lst", "# command\n");
	fx_text(f, 2, "/boot/grub/x86_64-efi/fs.lst", "# fs\n");
	fx_text(f, 2, "/boot/grub/x86_64-efi/terminal.lst", "# terminal\n");
	fx_text(f, 2, "/boot/grub/inner.cfg", trace_inner);
	fx_text(f, 2, "/boot/grub/grub.cfg", trace_cfg);
	fx_text(f, 2, "/boot/grub/b.cfg", "echo in-b\n");
	fill(vmlinuz, sizeof(vmlinuz), 3);
	fx_file(f, 2, "/vmlinuz", vmlinuz, sizeof(vmlinuz));
	fx_text(f, 2, "/initrd.img", "initrd1");
	fx_text(f, 2, "/initrd2.img", "ini2");
	fx_run(f, true);
	assert_not_stopped(f->p);
	size_t n = sizeof(debian_trace) / sizeof(debian_trace[0]);
	/* "set debug=tpm" is measured before the trace starts */
	assert_string_equal(f->p->ev[0].what, "grub_cmd: set debug=tpm");
	if (f->p->n != 1 + n)
		dump(f->p);
	assert_int_equal(f->p->n, 1 + n);
	for (size_t i = 0; i < n; i++) {
		const struct tdc_pred_event *ev = &f->p->ev[1 + i];
		const char *w = ev->what;
		uint8_t d[TDC_SHA384_LEN];
		size_t plen = !strncmp(w, "grub_cmd: ", 10)	     ? 10
			      : !strncmp(w, "kernel_cmdline: ", 16) ? 16
								    : 0;
		if (strncmp(w, debian_trace[i].text, strlen(debian_trace[i].text))) {
			print_error("event %zu: [%s], GRUB logged [%s]\n", 1 + i, w,
				    debian_trace[i].text);
			fail();
		}
		if (plen) {
			assert_int_equal(strlen(w) - plen, debian_trace[i].size);
			sha384(w + plen, strlen(w) - plen, d);
		} else {
			const char *path = w[0] == '(' ? strchr(w, ')') + 1 : w;
			const struct dfile *df = NULL;
			for (size_t k = 0; k < f->disk.nfiles; k++)
				if (!strcmp(f->disk.files[k].path, path))
					df = &f->disk.files[k];
			if (!df) {
				print_error("event %zu: no file %s\n", 1 + i, path);
				fail();
			} else {
				assert_int_equal(df->len, debian_trace[i].size);
				sha384(df->data, df->len, d);
			}
		}
		assert_memory_equal(ev->digest, d, sizeof(d));
	}
	assert_string_equal(f->boot.title, "Debian GNU");
	assert_string_equal(f->boot.cmdline,
			    "BOOT_IMAGE=/vmlinuz root=UUID=x \"a b\" q\\\"\\\\ it\\'s ro");
	assert_int_equal(f->boot.initrd_len, 12); /* "initrd1", a zero, "ini2" */
	assert_memory_equal(f->boot.initrd, "initrd1\0ini2", 12);
	fx_free(f);
}

/* A configfile whose menu is empty returns to the script that ran it. */
static void test_configfile_empty_menu_returns(void **state)
{
	(void)state;
	struct fx *f = fx_new("search --fs-uuid --set=root " UUID "\n"
			      "configfile /empty.cfg\n"
			      "menuentry Outer {\n\tlinux /vmlinuz\n}\n");
	fx_part(f, 2, UUID);
	fx_text(f, 2, "/empty.cfg", "set timeout=0\n");
	fx_text(f, 2, "/vmlinuz", "K");
	fx_run(f, true);
	const struct want w[] = {
		W_CMD("search --fs-uuid --set=root " UUID),
		W_CMD("configfile /empty.cfg"),
		W_FILE("/empty.cfg", "set timeout=0\n", 14, TDC_ROLE_BOOT_CONFIG),
		W_CMD("set timeout=0"),
		W_CMD("menuentry Outer {\n\tlinux /vmlinuz\n}"),
		W_CMD("setparams Outer"),
		W_CMD("linux /vmlinuz"),
		W_FILE("/vmlinuz", "K", 1, TDC_ROLE_KERNEL),
		W_KCMD("/vmlinuz"),
	};
	CHECK_EVENTS(f->p, w);
	assert_not_stopped(f->p);
	fx_free(f);
}

static void nesting(const char *cmd)
{
	char embedded[128], loop[64];
	snprintf(embedded, sizeof(embedded), "search --fs-uuid --set=root %s\n%s /loop.cfg\n", UUID,
		 cmd);
	snprintf(loop, sizeof(loop), "%s /loop.cfg\n", cmd);
	struct fx *f = fx_new(embedded);
	fx_part(f, 2, UUID);
	fx_text(f, 2, "/loop.cfg", loop);
	fx_run(f, true);
	assert_stopped(f->p, "nested too deep");
	/* search, then 8 levels of (command, file), then the 9th command */
	assert_int_equal(f->p->n, 1 + 8 * 2 + 1);
	char line[64];
	snprintf(line, sizeof(line), "grub_cmd: %s /loop.cfg", cmd);
	for (size_t i = 1; i < f->p->n; i += 2)
		assert_string_equal(f->p->ev[i].what, line);
	for (size_t i = 2; i < f->p->n; i += 2) {
		assert_string_equal(f->p->ev[i].what, "/loop.cfg");
		assert_int_equal(f->p->ev[i].role, TDC_ROLE_BOOT_CONFIG);
	}
	assert_null(f->boot.kernel);
	fx_free(f);
}

static void test_configfile_nesting_stops(void **state)
{
	(void)state;
	nesting("configfile");
}

static void test_source_nesting_stops(void **state)
{
	(void)state;
	nesting("source");
}

/* ---- the default entry ---- */

static const char two_entries[] = "menuentry 'First one' {\n\tlinux /vmlinuz one\n}\n"
				  "menuentry 'Second one' --class debian --id second {\n"
				  "\tlinux /vmlinuz two\n}\n";

static struct fx *menu_with_default(const char *def_line)
{
	char cfg[512];
	snprintf(cfg, sizeof(cfg), "search --fs-uuid --set=root %s\n%s%s", UUID, def_line,
		 two_entries);
	struct fx *f = fx_new(cfg);
	fx_part(f, 2, UUID);
	fx_text(f, 2, "/vmlinuz", "K");
	fx_run(f, true);
	return f;
}

static void check_booted_second(const struct fx *f)
{
	const struct want w[] = {
		W_CMD("menuentry Second one --class debian --id second {\n\tlinux /vmlinuz two\n}"),
		W_CMD("setparams Second one"),
		W_CMD("linux /vmlinuz two"),
		W_FILE("/vmlinuz", "K", 1, TDC_ROLE_KERNEL),
		W_KCMD("/vmlinuz two"),
	};
	assert_not_stopped(f->p);
	assert_int_equal(f->p->n, 3 + 5);
	check_events_at(f->p, 3, w, 5);
	assert_string_equal(f->boot.title, "Second one");
	assert_string_equal(f->boot.cmdline, "BOOT_IMAGE=/vmlinuz two");
}

static void test_default_first_without_default(void **state)
{
	(void)state;
	struct fx *f = menu_with_default("set timeout=5\n");
	assert_not_stopped(f->p);
	assert_string_equal(f->boot.title, "First one");
	assert_int_equal(f->p->n, 2 + 2 + 4);
	assert_string_equal(f->p->ev[4].what, "grub_cmd: setparams First one");
	fx_free(f);
}

static void test_default_by_number(void **state)
{
	(void)state;
	struct fx *f = menu_with_default("set default=1\n");
	assert_string_equal(f->p->ev[1].what, "grub_cmd: set default=1");
	check_booted_second(f);
	fx_free(f);
}

static void test_default_by_title(void **state)
{
	(void)state;
	struct fx *f = menu_with_default("set default='Second one'\n");
	assert_string_equal(f->p->ev[1].what, "grub_cmd: set default=Second one");
	check_booted_second(f);
	fx_free(f);
}

/* An exported default reaches the menu of a configfile. */
static void test_default_exported_into_configfile(void **state)
{
	(void)state;
	struct fx *f = fx_new("search --fs-uuid --set=root " UUID "\n"
			      "set default=1\n"
			      "export default\n"
			      "configfile /grub.cfg\n");
	fx_part(f, 2, UUID);
	fx_text(f, 2, "/grub.cfg", two_entries);
	fx_text(f, 2, "/vmlinuz", "K");
	fx_run(f, true);
	assert_not_stopped(f->p);
	assert_string_equal(f->boot.title, "Second one");
	fx_free(f);
}

static void test_default_unknown_stops(void **state)
{
	(void)state;
	struct fx *f = menu_with_default("set default=7\n");
	assert_stopped(f->p, "default entry '7' not found");
	assert_int_equal(f->p->n, 4); /* search, set, the two menuentry commands */
	assert_null(f->boot.kernel);
	fx_free(f);
	f = menu_with_default("set default=Third\n");
	assert_stopped(f->p, "default entry 'Third' not found");
	fx_free(f);
}

/* ---- several initrds ---- */

static void test_several_initrds(void **state)
{
	(void)state;
	struct fx *f = fx_new("search --fs-uuid --set=root " UUID "\n"
			      "menuentry I {\n\tlinux /vmlinuz\n"
			      "\tinitrd /a.img /b.img /c.img\n}\n");
	fx_part(f, 2, UUID);
	fx_text(f, 2, "/vmlinuz", "K");
	fx_text(f, 2, "/a.img", "AAAAA");
	fx_text(f, 2, "/b.img", "BBBBBB");
	fx_text(f, 2, "/c.img", "CCCC");
	fx_run(f, true);
	const struct want w[] = {
		W_CMD("initrd /a.img /b.img /c.img"),
		W_FILE("/a.img", "AAAAA", 5, TDC_ROLE_INITRD),
		W_FILE("/b.img", "BBBBBB", 6, TDC_ROLE_INITRD),
		W_FILE("/c.img", "CCCC", 4, TDC_ROLE_INITRD),
	};
	assert_not_stopped(f->p);
	assert_int_equal(f->p->n, 6 + 4);
	check_events_at(f->p, 6, w, 4);
	/* each file after the first starts 4-byte aligned, the gaps zero */
	static const uint8_t cat[] = "AAAAA\0\0\0BBBBBB\0\0CCCC";
	assert_int_equal(f->boot.n_initrd, 3);
	assert_int_equal(f->boot.initrd_len, sizeof(cat) - 1);
	assert_memory_equal(f->boot.initrd, cat, sizeof(cat) - 1);
	fx_free(f);
}

/* A later initrd command replaces the earlier one. */
static void test_initrd_replaced(void **state)
{
	(void)state;
	struct fx *f = fx_new("search --fs-uuid --set=root " UUID "\n"
			      "menuentry I {\n\tlinux /vmlinuz\n"
			      "\tinitrd /a.img /b.img\n\tinitrd /c.img\n}\n");
	fx_part(f, 2, UUID);
	fx_text(f, 2, "/vmlinuz", "K");
	fx_text(f, 2, "/a.img", "AAAAA");
	fx_text(f, 2, "/b.img", "BBBBBB");
	fx_text(f, 2, "/c.img", "CCCC");
	fx_run(f, true);
	assert_not_stopped(f->p);
	assert_int_equal(f->p->n, 6 + 3 + 2);
	assert_int_equal(f->boot.n_initrd, 1);
	assert_int_equal(f->boot.initrd_len, 4);
	assert_memory_equal(f->boot.initrd, "CCCC", 4);
	fx_free(f);
}

/* ---- where the prediction stops ---- */

/* Runs embedded (and the partition-2 file /s.cfg if given) and expects a stop mentioning
 * needle after exactly n_before events. */
static void stop_case(const char *embedded, const char *s_cfg, const char *needle, size_t n_before)
{
	struct fx *f = fx_new(embedded);
	fx_part(f, 2, UUID);
	if (s_cfg)
		fx_text(f, 2, "/s.cfg", s_cfg);
	fx_text(f, 2, "/vmlinuz", "K");
	fx_run(f, true);
	assert_stopped(f->p, needle);
	if (f->p->n != n_before)
		dump(f->p);
	assert_int_equal(f->p->n, n_before);
	fx_free(f);
}

#define SEARCH "search --fs-uuid --set=root " UUID "\n"

static void test_stop_if(void **state)
{
	(void)state;
	stop_case(SEARCH "if [ -n \"$root\" ]; then\n  echo x\nfi\n", NULL, "'if'", 1);
}

static void test_stop_function(void **state)
{
	(void)state;
	stop_case(SEARCH "function f {\n  echo x\n}\nf\n", NULL, "'function'", 1);
}

static void test_stop_unknown_command(void **state)
{
	(void)state;
	stop_case(SEARCH "load_env\n", NULL, "'load_env'", 1);
}

static void test_stop_search_by_file(void **state)
{
	(void)state;
	stop_case("search --no-floppy --file --set=root /boot/grub/grub.cfg\n", NULL,
		  "search option --file", 1);
}

static void test_stop_search_unknown_uuid(void **state)
{
	(void)state;
	stop_case("search --fs-uuid --set=root deadbeef-0000-4000-8000-000000000000\n", NULL,
		  "no partition has the filesystem UUID deadbeef-0000-4000-8000-000000000000", 1);
}

static void test_stop_search_by_label(void **state)
{
	(void)state;
	stop_case("search --label --set=root root\n", NULL, "search option --label", 1);
}

static void test_stop_variable_never_set(void **state)
{
	(void)state;
	stop_case(SEARCH "echo $cmdpath\n", NULL, "$cmdpath", 1);
	stop_case(SEARCH "echo \"${config_directory}\"\n", NULL, "$config_directory", 1);
}

static void test_stop_module_from_disk(void **state)
{
	(void)state;
	stop_case(SEARCH "set prefix=(hd0,gpt2)/boot/grub\ninsmod foo\n", NULL, "module foo", 3);
	/* a command whose module is not built in, with the prefix on disk */
	stop_case(SEARCH "set prefix=($root)/boot/grub\nsource /s.cfg\n", "chainloader /x.efi\n",
		  "'chainloader'", 4);
}

static void test_insmod_builtin_or_memdisk(void **state)
{
	(void)state;
	struct fx *f = fx_new(SEARCH "insmod foo\nset prefix=($root)/boot/grub\ninsmod linux\n");
	fx_part(f, 2, UUID);
	fx_run(f, true);
	assert_not_stopped(f->p);
	assert_int_equal(f->p->n, 4);
	assert_string_equal(f->p->ev[1].what, "grub_cmd: insmod foo");
	assert_string_equal(f->p->ev[3].what, "grub_cmd: insmod linux");
	fx_free(f);
}

static void test_stop_missing_kernel(void **state)
{
	(void)state;
	stop_case(SEARCH "menuentry x {\n\tlinux /nope ro\n}\n", NULL, "/nope does not exist", 4);
}

static void test_stop_missing_initrd(void **state)
{
	(void)state;
	stop_case(SEARCH "menuentry x {\n\tlinux /vmlinuz\n\tinitrd /nope\n}\n", NULL,
		  "/nope does not exist", 7);
}

static void test_stop_missing_config(void **state)
{
	(void)state;
	stop_case(SEARCH "configfile /nope.cfg\n", NULL, "/nope.cfg does not exist", 2);
}

static void test_stop_initrd_without_kernel(void **state)
{
	(void)state;
	stop_case(SEARCH "menuentry x {\n\tinitrdefi /vmlinuz\n\tlinuxefi /vmlinuz\n}\n", NULL,
		  "initrdefi without a kernel loaded by linuxefi", 4);
	stop_case(SEARCH "menuentry x {\n\tlinux /vmlinuz\n\tinitrdefi /vmlinuz\n}\n", NULL,
		  "initrdefi without a kernel loaded by linuxefi", 7);
}

static void test_stop_unterminated_quote(void **state)
{
	(void)state;
	stop_case(SEARCH "echo \"abc\n", NULL, "unterminated quote", 1);
	stop_case(SEARCH "echo 'abc\n", NULL, "unterminated quote", 1);
}

static void test_stop_menuentry_without_block(void **state)
{
	(void)state;
	stop_case(SEARCH "menuentry 'x'\n{\n\tlinux /vmlinuz\n}\n", NULL, "without a block", 1);
	stop_case(SEARCH "menuentry 'x' {\n\tlinux /vmlinuz\n", NULL, "unterminated menuentry", 1);
	stop_case(SEARCH "menuentry 'x' { echo a } { echo b }\n", NULL, "several blocks", 1);
}

static void test_stop_submenu(void **state)
{
	(void)state;
	stop_case(SEARCH "submenu 'Advanced' {\n\tmenuentry y {\n\t\tlinux /vmlinuz\n\t}\n}\n",
		  NULL, "'submenu'", 1);
}

static void test_stop_shell_operator(void **state)
{
	(void)state;
	stop_case(SEARCH "echo a && echo b\n", NULL, "shell operator '&'", 1);
}

static void test_stop_unquoted_variable_with_spaces(void **state)
{
	(void)state;
	stop_case(SEARCH "set a=\"x y\"\necho $a\n", NULL, "unquoted variable with spaces", 2);
}

static void test_stop_early_config(void **state)
{
	(void)state;
	struct fx *f = guest();
	f->g.has_config = true;
	fx_run(f, true);
	assert_stopped(f->p, "early config");
	assert_int_equal(f->p->n, 0);
	fx_free(f);
}

static void test_stop_prefix_not_on_memdisk(void **state)
{
	(void)state;
	struct fx *f = guest();
	snprintf(f->g.prefix, sizeof(f->g.prefix), "(hd0,gpt1)/EFI/debian");
	fx_run(f, true);
	assert_stopped(f->p, "not on its memdisk");
	assert_int_equal(f->p->n, 0);
	assert_int_equal(f->disk.reads, 0);
	fx_free(f);
}

static void test_stop_relative_path_and_device(void **state)
{
	(void)state;
	stop_case(SEARCH "source s.cfg\n", NULL, "relative path s.cfg", 2);
	stop_case(SEARCH "source (hd1,gpt2)/s.cfg\n", NULL, "(hd1,gpt2) is not modelled", 2);
	stop_case(SEARCH "source (hd0,msdos1)/s.cfg\n", NULL, "(hd0,msdos1) is not modelled", 2);
}

/* The stop is the first reason; events before it stay. */
static void test_stop_keeps_first_reason(void **state)
{
	(void)state;
	struct fx *f = fx_new(SEARCH "echo before\nload_env\necho after $nothing\n");
	fx_part(f, 2, UUID);
	fx_run(f, true);
	assert_stopped(f->p, "'load_env'");
	assert_int_equal(f->p->n, 2);
	assert_string_equal(f->p->ev[1].what, "grub_cmd: echo before");
	assert_int_equal(tdc_pred_finish(f->p, NULL), 0);
	assert_false(f->p->predicted[2]);
	fx_free(f);
}

/* A disk that cannot be read is an error, not a stop. */
static int failing_read(void *arg, unsigned part, const char *path, uint8_t **buf, size_t *len,
			struct tdc_error *e)
{
	(void)arg;
	(void)part;
	(void)buf;
	(void)len;
	return TDC_FAILF(e, TDC_E_IO, "read failed", "%s", path);
}

static void test_disk_error(void **state)
{
	(void)state;
	struct fx *f = guest();
	f->d.read = failing_read;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_grub_predict(&f->g, &f->d, true, f->p, &f->boot, &e), TDC_E_IO);
	assert_int_equal(e.code, TDC_E_IO);
	fx_free(f);
}

/* No grub.cfg on the memdisk: GRUB would stop at its prompt; here it is an error. */
static void test_no_embedded_config(void **state)
{
	(void)state;
	struct fx *f = guest();
	static const struct tfile other = { "boot/grub/other.cfg", "echo\n", 5 };
	fx_memdisk(f, &other, 1);
	assert_int_equal(tdc_grub_predict(&f->g, &f->d, true, f->p, &f->boot, NULL),
			 TDC_E_NOT_FOUND);
	f->g.has_memdisk = false;
	assert_int_equal(tdc_grub_predict(&f->g, &f->d, true, f->p, &f->boot, NULL),
			 TDC_E_NOT_FOUND);
	fx_free(f);
}

/* ---- the memdisk tar ---- */

static void test_memdisk_file(void **state)
{
	(void)state;
	struct tdc_grub_image g;
	struct tdc_rd r;
	size_t len;
	static const struct tfile files[] = {
		{ "./boot/grub/a.cfg", "aaa", 3 },
		{ "/boot/grub/empty", "", 0 },
		{ "boot/grub/x86_64-efi/b.mod", "0123456789abcdef0123456789abcdef", 32 },
	};
	memset(&g, 0, sizeof(g));
	uint8_t *tar = tar_build(files, 3, &len);
	g.has_memdisk = true;
	tdc_rd_init(&g.memdisk, tar, len);
	assert_int_equal(tdc_grub_memdisk_file(&g, "boot/grub/a.cfg", &r, NULL), 0);
	assert_int_equal(tdc_rd_len(&r), 3);
	assert_memory_equal(tdc_rd_ptr(&r), "aaa", 3);
	assert_int_equal(tdc_grub_memdisk_file(&g, "/boot/grub/a.cfg", &r, NULL), 0);
	assert_int_equal(tdc_grub_memdisk_file(&g, "boot/grub/empty", &r, NULL), 0);
	assert_int_equal(tdc_rd_len(&r), 0);
	assert_int_equal(tdc_grub_memdisk_file(&g, "boot/grub/x86_64-efi/b.mod", &r, NULL), 0);
	assert_int_equal(tdc_rd_len(&r), 32);
	assert_int_equal(tdc_grub_memdisk_file(&g, "boot/grub/none", &r, NULL), TDC_E_NOT_FOUND);
	assert_int_equal(tdc_grub_memdisk_file(&g, "boot/grub", &r, NULL), TDC_E_NOT_FOUND);
	/* a ustar prefix field */
	uint8_t *h = tar + 512 + 512;
	memset(h, 0, 100);
	memcpy(h, "empty", 5);
	memcpy(h + 345, "boot/grub", 9);
	assert_int_equal(tdc_grub_memdisk_file(&g, "boot/grub/empty", &r, NULL), 0);
	/* not a regular file */
	h[156] = '5';
	assert_int_equal(tdc_grub_memdisk_file(&g, "boot/grub/empty", &r, NULL), TDC_E_NOT_FOUND);
	/* a size beyond the archive is refused, every truncation is safe */
	snprintf((char *)tar + 124, 12, "%011o", 077777777u);
	assert_true(tdc_grub_memdisk_file(&g, "boot/grub/x86_64-efi/b.mod", &r, NULL) < 0);
	snprintf((char *)tar + 124, 12, "%011o", 3u);
	for (size_t n = 0; n <= len; n += 7) {
		tdc_rd_init(&g.memdisk, tar, n);
		assert_true(tdc_grub_memdisk_file(&g, "boot/grub/x86_64-efi/b.mod", &r, NULL) <= 0);
	}
	g.has_memdisk = false;
	assert_int_equal(tdc_grub_memdisk_file(&g, "boot/grub/a.cfg", &r, NULL), TDC_E_NOT_FOUND);
	free(tar);
}

/* ---- GRUB EFI images: synthetic ---- */

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void b_put(struct buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	if (n)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void b_zero(struct buf *b, size_t n)
{
	static const uint8_t z[64];
	while (n) {
		size_t k = n < sizeof(z) ? n : sizeof(z);
		b_put(b, z, k);
		n -= k;
	}
}

static void b_align(struct buf *b, size_t a)
{
	b_zero(b, (a - b->n % a) % a);
}

static void le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A minimal ELF64 relocatable with a .modname section (and extra bytes in .text). */
static void elf_module(struct buf *out, const char *name, const void *extra, size_t extra_len)
{
	static const char shstr[] = "\0.shstrtab\0.modname\0.text";
	struct buf b = { 0 };
	uint8_t h[64] = { 0x7f, 'E', 'L', 'F', 2, 1, 1 };
	b_put(&b, h, sizeof(h));
	size_t shstr_off = b.n;
	b_put(&b, shstr, sizeof(shstr));
	size_t name_off = b.n;
	b_put(&b, name, strlen(name) + 1);
	size_t text_off = b.n;
	b_put(&b, extra, extra_len);
	b_align(&b, 8);
	size_t shoff = b.n;
	uint8_t sh[4][64];
	memset(sh, 0, sizeof(sh));
	le32(sh[1], 1); /* .shstrtab */
	le64(sh[1] + 0x18, shstr_off);
	le64(sh[1] + 0x20, sizeof(shstr));
	le32(sh[2], 11); /* .modname */
	le64(sh[2] + 0x18, name_off);
	le64(sh[2] + 0x20, strlen(name) + 1);
	le32(sh[3], 20); /* .text */
	le64(sh[3] + 0x18, text_off);
	le64(sh[3] + 0x20, extra_len);
	b_put(&b, sh, sizeof(sh));
	le64(b.p + 0x28, shoff);
	le16(b.p + 0x3a, 64);
	le16(b.p + 0x3c, 4);
	le16(b.p + 0x3e, 1);
	b_align(&b, 8);
	b_put(out, b.p, b.n);
	free(b.p);
}

static void mod_object(struct buf *mods, uint32_t type, const struct buf *obj)
{
	uint8_t h[8];
	le32(h, type);
	le32(h + 4, (uint32_t)(8 + obj->n));
	b_put(mods, h, 8);
	b_put(mods, obj->p, obj->n);
}

/* EFI_CC_MEASUREMENT_PROTOCOL_GUID in EFI byte order */
static const uint8_t cc_guid[16] = { 0x3d, 0x1a, 0x75, 0x96, 0xf4, 0x72, 0xa6, 0x41,
				     0xa7, 0x94, 0xed, 0x5d, 0x0e, 0x67, 0xae, 0x6b };

struct synth {
	bool cc;          /* the tpm module knows the CC protocol */
	bool config;      /* an early config object */
	bool no_tpm;
	const char *prefix;
	size_t extra_modules;
};

/* A PE image with .text (holding "GRUB 2.12~rc1") and a "mods" section as grub-mkimage lays
 * it out: the module info header, ELF modules, a memdisk, a prefix, maybe a config. */
static struct buf synth_image(const struct synth *s, const uint8_t *tar, size_t tar_len)
{
	struct buf mods = { 0 }, o = { 0 };
	uint8_t info[24] = { 'm', 'i', 'm', 'g' };
	b_put(&mods, info, sizeof(info));
	elf_module(&o, "normal", "x", 1);
	mod_object(&mods, 0, &o);
	o.n = 0;
	if (!s->no_tpm) {
		elf_module(&o, "tpm", s->cc ? cc_guid : (const uint8_t *)"no cc guid here!", 16);
		mod_object(&mods, 0, &o);
		o.n = 0;
	}
	for (size_t i = 0; i < s->extra_modules; i++) {
		char name[24];
		snprintf(name, sizeof(name), "m%zu", i);
		elf_module(&o, name, "", 0);
		mod_object(&mods, 0, &o);
		o.n = 0;
	}
	b_put(&o, tar, tar_len);
	mod_object(&mods, 1, &o); /* memdisk */
	o.n = 0;
	if (s->config) {
		b_put(&o, "set x=1\n", 9);
		b_align(&o, 8);
		mod_object(&mods, 2, &o);
		o.n = 0;
	}
	b_put(&o, s->prefix, strlen(s->prefix) + 1);
	b_align(&o, 8);
	mod_object(&mods, 3, &o); /* prefix */
	o.n = 0;
	b_zero(&o, 8);
	mod_object(&mods, 5, &o); /* a DTB object: ignored */
	free(o.p);
	le64(mods.p + 8, 24);
	le64(mods.p + 16, mods.n);

	/* DOS header, PE header, no optional header, two sections */
	struct buf img = { 0 };
	b_zero(&img, 0x40);
	img.p[0] = 'M';
	img.p[1] = 'Z';
	le32(img.p + 0x3c, 0x40);
	uint8_t pe[24] = { 'P', 'E', 0, 0 };
	le16(pe + 4, 0x8664);
	le16(pe + 6, 2);
	b_put(&img, pe, sizeof(pe));
	size_t sect = img.n;
	b_zero(&img, 2 * 40);
	b_align(&img, 512);
	size_t text = img.n;
	b_put(&img, "....GRUB 2.12~rc1 (x86_64-efi)...", 33);
	b_align(&img, 512);
	size_t mods_off = img.n;
	b_put(&img, mods.p, mods.n);
	b_align(&img, 512);
	memcpy(img.p + sect, ".text\0\0\0", 8);
	le32(img.p + sect + 16, 512);
	le32(img.p + sect + 20, (uint32_t)text);
	memcpy(img.p + sect + 40, "mods\0\0\0\0", 8);
	le32(img.p + sect + 40 + 16, (uint32_t)mods.n);
	le32(img.p + sect + 40 + 20, (uint32_t)mods_off);
	free(mods.p);
	return img;
}

static uint8_t *guest_tar(size_t *len)
{
	const struct tfile f = { "boot/grub/grub.cfg", guest_esp_cfg, sizeof(guest_esp_cfg) - 1 };
	return tar_build(&f, 1, len);
}

static void test_synthetic_image(void **state)
{
	(void)state;
	size_t tar_len;
	uint8_t *tar = guest_tar(&tar_len);
	struct tdc_grub_image *g = calloc(1, sizeof(*g));
	struct tdc_error e;
	struct tdc_rd r;
	assert_non_null(g);
	tdc_error_clear(&e);
	struct synth s = { .prefix = "(memdisk)/boot/grub" };
	struct buf img = synth_image(&s, tar, tar_len);
	assert_int_equal(tdc_grub_image_parse(img.p, img.n, g, &e), 0);
	assert_string_equal(g->version, "2.12~rc1");
	assert_int_equal(g->major, 2);
	assert_int_equal(g->minor, 12);
	assert_int_equal(g->n_builtin, 2);
	assert_string_equal(g->builtin[0], "normal");
	assert_string_equal(g->builtin[1], "tpm");
	assert_true(g->tpm_builtin);
	assert_false(g->cc_capable);
	assert_false(g->has_config);
	assert_string_equal(g->prefix, "(memdisk)/boot/grub");
	assert_true(g->has_memdisk);
	assert_int_equal(tdc_rd_len(&g->memdisk), tar_len);
	assert_int_equal(tdc_grub_memdisk_file(g, "boot/grub/grub.cfg", &r, NULL), 0);
	assert_int_equal(tdc_rd_len(&r), sizeof(guest_esp_cfg) - 1);
	assert_memory_equal(tdc_rd_ptr(&r), guest_esp_cfg, sizeof(guest_esp_cfg) - 1);
	free(img.p);

	s.cc = true;
	s.config = true;
	s.prefix = "(hd0,gpt1)/EFI/debian";
	img = synth_image(&s, tar, tar_len);
	assert_int_equal(tdc_grub_image_parse(img.p, img.n, g, NULL), 0);
	assert_true(g->cc_capable);
	assert_true(g->has_config);
	assert_string_equal(g->prefix, "(hd0,gpt1)/EFI/debian");
	free(img.p);

	s = (struct synth){ .no_tpm = true, .prefix = "(memdisk)/boot/grub" };
	img = synth_image(&s, tar, tar_len);
	assert_int_equal(tdc_grub_image_parse(img.p, img.n, g, NULL), 0);
	assert_false(g->tpm_builtin);
	assert_false(g->cc_capable);
	free(img.p);

	s = (struct synth){ .prefix = "(memdisk)/boot/grub", .extra_modules = TDC_GRUB_MAX_MODULES };
	img = synth_image(&s, tar, tar_len);
	assert_int_equal(tdc_grub_image_parse(img.p, img.n, g, NULL), TDC_E_LIMIT);
	free(img.p);
	free(g);
	free(tar);
}

/* The section table of a PE image: where "mods" is. */
static bool find_section(const uint8_t *img, size_t len, const char *name, size_t *off,
			 size_t *size)
{
	if (len < 0x40)
		return false;
	size_t pe = (size_t)img[0x3c] | (size_t)img[0x3d] << 8 | (size_t)img[0x3e] << 16;
	if (pe + 24 > len)
		return false;
	unsigned nsect = img[pe + 6] | img[pe + 7] << 8;
	size_t opt = (size_t)(img[pe + 20] | img[pe + 21] << 8);
	size_t sh = pe + 24 + opt;
	for (unsigned i = 0; i < nsect && sh + 40 * (i + 1) <= len; i++) {
		const uint8_t *h = img + sh + 40 * i;
		if (strncmp((const char *)h, name, 8))
			continue;
		*size = (size_t)h[16] | (size_t)h[17] << 8 | (size_t)h[18] << 16 |
			(size_t)h[19] << 24;
		*off = (size_t)h[20] | (size_t)h[21] << 8 | (size_t)h[22] << 16 |
		       (size_t)h[23] << 24;
		return true;
	}
	return false;
}

/* Malformed images are refused without reading out of bounds. */
static void check_malformed(const uint8_t *img, size_t len)
{
	struct tdc_grub_image *g = calloc(1, sizeof(*g));
	struct tdc_error e;
	size_t off = 0, size = 0;
	assert_non_null(g);
	assert_true(find_section(img, len, "mods", &off, &size));
	uint8_t *c = malloc(len);
	assert_non_null(c);

	/* not MZ */
	memcpy(c, img, len);
	c[0] = 'X';
	assert_int_equal(tdc_grub_image_parse(c, len, g, NULL), TDC_E_UNSUPPORTED);
	assert_true(tdc_grub_image_parse(c, 0, g, NULL) < 0);
	assert_true(tdc_grub_image_parse((const uint8_t *)"MZ", 2, g, NULL) < 0);
	/* no mods section */
	memcpy(c, img, len);
	size_t pe = (size_t)c[0x3c] | (size_t)c[0x3d] << 8;
	size_t sh = pe + 24 + (size_t)(c[pe + 20] | c[pe + 21] << 8);
	unsigned nsect = c[pe + 6] | c[pe + 7] << 8;
	for (unsigned i = 0; i < nsect; i++)
		if (!strncmp((const char *)c + sh + 40 * i, "mods", 8))
			memcpy(c + sh + 40 * i, "sdom", 4);
	tdc_error_clear(&e);
	assert_int_equal(tdc_grub_image_parse(c, len, g, &e), TDC_E_UNSUPPORTED);
	assert_non_null(strstr(e.reason, "no GRUB module area"));
	/* not a PE signature */
	memcpy(c, img, len);
	c[pe] = 'Q';
	assert_int_equal(tdc_grub_image_parse(c, len, g, NULL), TDC_E_UNSUPPORTED);
	/* no module info magic */
	memcpy(c, img, len);
	c[off] ^= 0xff;
	assert_int_equal(tdc_grub_image_parse(c, len, g, NULL), TDC_E_UNSUPPORTED);
	/* module info offset or size out of range */
	memcpy(c, img, len);
	le64(c + off + 8, 8);
	assert_int_equal(tdc_grub_image_parse(c, len, g, NULL), TDC_E_FORMAT);
	memcpy(c, img, len);
	le64(c + off + 16, (uint64_t)size + 1);
	assert_int_equal(tdc_grub_image_parse(c, len, g, NULL), TDC_E_FORMAT);
	/* the first object's size below its header, then beyond the area */
	memcpy(c, img, len);
	le32(c + off + 24 + 4, 7);
	assert_int_equal(tdc_grub_image_parse(c, len, g, NULL), TDC_E_FORMAT);
	memcpy(c, img, len);
	le32(c + off + 24 + 4, 0xfffffff0u);
	assert_true(tdc_grub_image_parse(c, len, g, NULL) < 0);
	/* an ELF object that is not ELF */
	memcpy(c, img, len);
	c[off + 24 + 8] = 'X';
	assert_int_equal(tdc_grub_image_parse(c, len, g, NULL), TDC_E_FORMAT);
	/* the mods section beyond the file */
	memcpy(c, img, len);
	for (unsigned i = 0; i < nsect; i++)
		if (!strncmp((const char *)c + sh + 40 * i, "mods", 8))
			le32(c + sh + 40 * i + 16, (uint32_t)(len - off + 1));
	assert_true(tdc_grub_image_parse(c, len, g, NULL) < 0);
	/* truncated anywhere before the end of the module area: refused */
	size_t end = off + size;
	size_t step = end / 4099 + 1;
	for (size_t n = 0; n < end; n += step)
		assert_true(tdc_grub_image_parse(img, n, g, NULL) < 0);
	assert_true(tdc_grub_image_parse(img, end - 1, g, NULL) < 0);
	/* byte flips in the module area's headers never crash */
	for (size_t i = 0; i < 64 && off + i < len; i++) {
		memcpy(c, img, len);
		c[off + i] ^= 0x80;
		assert_true(tdc_grub_image_parse(c, len, g, NULL) <= 0);
	}
	free(c);
	free(g);
}

static void test_synthetic_image_malformed(void **state)
{
	(void)state;
	size_t tar_len;
	uint8_t *tar = guest_tar(&tar_len);
	struct synth s = { .prefix = "(memdisk)/boot/grub" };
	struct buf img = synth_image(&s, tar, tar_len);
	check_malformed(img.p, img.n);
	free(img.p);
	free(tar);
}

/* The predictor on a parsed image. */
static void test_synthetic_image_predicts(void **state)
{
	(void)state;
	size_t tar_len;
	uint8_t *tar = guest_tar(&tar_len);
	struct synth s = { .prefix = "(memdisk)/boot/grub" };
	struct buf img = synth_image(&s, tar, tar_len);
	struct fx *f = guest();
	assert_int_equal(tdc_grub_image_parse(img.p, img.n, &f->g, NULL), 0);
	fx_run(f, true);
	/* only normal and tpm are built in: search's module comes from the memdisk (unmeasured),
	 * configfile's would come from the disk once the prefix points there (not modelled) */
	assert_stopped(f->p, "module configfile would be loaded from (hd0,gpt2)/boot/grub");
	assert_int_equal(f->p->n, 2);
	fx_free(f);
	free(img.p);
	free(tar);
}

/* ---- a real GRUB EFI image (grub-mkstandalone) ---- */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-grub-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	(void)state;
	char cmd[128];
	if (!tmpdir[0])
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Builds a standalone image with the given modules and guest_esp_cfg; false if it cannot. */
static bool mkstandalone(const char *modules, const char *out_name, uint8_t **img, size_t *len)
{
	char cfg[128], out[128], cmd[1024];
	if (access("/usr/bin/grub-mkstandalone", X_OK) != 0 ||
	    access("/usr/lib/grub/x86_64-efi/moddep.lst", R_OK) != 0)
		return false;
	snprintf(cfg, sizeof(cfg), "%s/grub.cfg", tmpdir);
	snprintf(out, sizeof(out), "%s/%s", tmpdir, out_name);
	FILE *fp = fopen(cfg, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(guest_esp_cfg, 1, sizeof(guest_esp_cfg) - 1, fp),
			 sizeof(guest_esp_cfg) - 1);
	assert_int_equal(fclose(fp), 0);
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/grub-mkstandalone -O x86_64-efi -o '%s' --modules='%s' "
		 "'boot/grub/grub.cfg=%s' >/dev/null 2>&1",
		 out, modules, cfg);
	if (system(cmd) != 0) {
		print_message("grub-mkstandalone failed: %s\n", cmd);
		return false;
	}
	assert_int_equal(tdc_file_read(out, TDC_PE_MAX_IMAGE, img, len, NULL), 0);
	return true;
}

static void test_real_image(void **state)
{
	(void)state;
	uint8_t *img;
	size_t len;
	if (!mkstandalone("tpm part_gpt ext2 search configfile linuxefi normal", "brief.efi", &img,
			  &len))
		skip();
	struct tdc_grub_image *g = calloc(1, sizeof(*g));
	struct tdc_error e;
	struct tdc_rd r;
	char msg[512];
	assert_non_null(g);
	tdc_error_clear(&e);
	int rc = tdc_grub_image_parse(img, len, g, &e);
	if (rc)
		print_error("%s\n", tdc_error_format(&e, msg, sizeof(msg)));
	assert_int_equal(rc, 0);
	print_message("GRUB %s, %zu built-in modules, memdisk %zu bytes\n", g->version,
		      g->n_builtin, tdc_rd_len(&g->memdisk));
	assert_true(!strncmp(g->version, "2.", 2));
	assert_int_equal(g->major, 2);
	assert_true(g->tpm_builtin);
	assert_false(g->cc_capable); /* Debian 12's 2.06 has no CC measurement support */
	assert_false(g->has_config);
	assert_string_equal(g->prefix, "(memdisk)/boot/grub");
	bool linuxefi = false, tpm = false, normal = false;
	for (size_t i = 0; i < g->n_builtin; i++) {
		linuxefi |= !strcmp(g->builtin[i], "linuxefi");
		tpm |= !strcmp(g->builtin[i], "tpm");
		normal |= !strcmp(g->builtin[i], "normal");
	}
	assert_true(linuxefi && tpm && normal);
	assert_true(g->has_memdisk);
	assert_int_equal(tdc_grub_memdisk_file(g, "boot/grub/grub.cfg", &r, NULL), 0);
	assert_int_equal(tdc_rd_len(&r), sizeof(guest_esp_cfg) - 1);
	assert_memory_equal(tdc_rd_ptr(&r), guest_esp_cfg, sizeof(guest_esp_cfg) - 1);
	/* the other modules travel in the memdisk */
	assert_int_equal(tdc_grub_memdisk_file(g, "boot/grub/x86_64-efi/command.lst", &r, NULL), 0);
	assert_int_equal(tdc_grub_memdisk_file(g, "boot/grub/x86_64-efi/serial.mod", &r, NULL), 0);
	assert_int_equal(tdc_grub_memdisk_file(g, "boot/grub/nothing.cfg", &r, NULL),
			 TDC_E_NOT_FOUND);

	/* serial is not built in: once the prefix is on the disk, GRUB would load it from there */
	struct fx *f = guest();
	memcpy(&f->g, g, sizeof(*g));
	fx_run(f, true);
	assert_stopped(f->p, "module serial");
	assert_int_equal(f->p->n, 5);
	fx_free(f);

	check_malformed(img, len);
	free(g);
	free(img);
}

/* The image the project's test guest boots: the whole boot predicted. */
static void test_real_image_guest(void **state)
{
	(void)state;
	uint8_t *img;
	size_t len;
	if (!mkstandalone("tpm part_gpt ext2 fat search search_fs_uuid configfile linux linuxefi "
			  "normal serial terminal echo",
			  "guest.efi", &img, &len))
		skip();
	struct fx *f = guest();
	assert_int_equal(tdc_grub_image_parse(img, len, &f->g, NULL), 0);
	fx_run(f, true);
	check_guest_events(f->p);
	check_guest_boot(&f->boot);
	fx_free(f);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guest_layout),
		cmocka_unit_test(test_guest_not_measured),
		cmocka_unit_test(test_guest_without_tpm_module),
		cmocka_unit_test(test_quoting),
		cmocka_unit_test(test_expansion),
		cmocka_unit_test(test_empty_words_and_continuations),
		cmocka_unit_test(test_kernel_cmdline_requoting),
		cmocka_unit_test(test_module_lists),
		cmocka_unit_test(test_memdisk_files_not_measured),
		cmocka_unit_test(test_configfile_variable_context),
		cmocka_unit_test(test_debian_grub_trace),
		cmocka_unit_test(test_configfile_empty_menu_returns),
		cmocka_unit_test(test_configfile_nesting_stops),
		cmocka_unit_test(test_source_nesting_stops),
		cmocka_unit_test(test_default_first_without_default),
		cmocka_unit_test(test_default_by_number),
		cmocka_unit_test(test_default_by_title),
		cmocka_unit_test(test_default_exported_into_configfile),
		cmocka_unit_test(test_default_unknown_stops),
		cmocka_unit_test(test_several_initrds),
		cmocka_unit_test(test_initrd_replaced),
		cmocka_unit_test(test_stop_if),
		cmocka_unit_test(test_stop_function),
		cmocka_unit_test(test_stop_unknown_command),
		cmocka_unit_test(test_stop_search_by_file),
		cmocka_unit_test(test_stop_search_unknown_uuid),
		cmocka_unit_test(test_stop_search_by_label),
		cmocka_unit_test(test_stop_variable_never_set),
		cmocka_unit_test(test_stop_module_from_disk),
		cmocka_unit_test(test_insmod_builtin_or_memdisk),
		cmocka_unit_test(test_stop_missing_kernel),
		cmocka_unit_test(test_stop_missing_initrd),
		cmocka_unit_test(test_stop_missing_config),
		cmocka_unit_test(test_stop_initrd_without_kernel),
		cmocka_unit_test(test_stop_unterminated_quote),
		cmocka_unit_test(test_stop_menuentry_without_block),
		cmocka_unit_test(test_stop_submenu),
		cmocka_unit_test(test_stop_shell_operator),
		cmocka_unit_test(test_stop_unquoted_variable_with_spaces),
		cmocka_unit_test(test_stop_early_config),
		cmocka_unit_test(test_stop_prefix_not_on_memdisk),
		cmocka_unit_test(test_stop_relative_path_and_device),
		cmocka_unit_test(test_stop_keeps_first_reason),
		cmocka_unit_test(test_disk_error),
		cmocka_unit_test(test_no_embedded_config),
		cmocka_unit_test(test_memdisk_file),
		cmocka_unit_test(test_synthetic_image),
		cmocka_unit_test(test_synthetic_image_malformed),
		cmocka_unit_test(test_synthetic_image_predicts),
		cmocka_unit_test(test_real_image),
		cmocka_unit_test(test_real_image_guest),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
