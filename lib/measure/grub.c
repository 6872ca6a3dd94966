/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What GRUB measures while it runs a grub.cfg (grub-core/commands/tpm.c, script/execute.c,
 * normal/main.c, loader/i386/linux.c of GRUB 2.06, checked against real logs):
 *   - every command line, after expansion, words joined by one space:
 *     digest SHA-384(line), event "grub_cmd: <line>";
 *   - every file it opens from a disk (configs, module lists, kernel, initrd), by the name it
 *     was given: digest SHA-384(file); nothing for files on the memdisk;
 *   - the kernel command line it builds (the kernel path, then each argument re-quoted):
 *     event "kernel_cmdline: <line>".
 * This file replays a grub.cfg over the image's disk to predict those events in order. It
 * knows a subset of GRUB script; outside it, it stops and says where, rather than guess.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tdcrypt/measure.h"

#define MAX_VARS 48
#define MAX_ENTRIES 64
#define MAX_ARGS 64
#define MAX_WORD 4096
#define MAX_DEPTH 8
#define MAX_FILE (256u * 1024u * 1024u)
#define RTMR2 2u
#define STOP 1

struct var {
	char name[32];
	char value[512];
	bool exported;   /* copied into a configfile's context (GRUB's "global" flag) */
};

struct entry {
	char title[128];
	char *body;
};

struct menu {
	size_t n;
	struct entry e[MAX_ENTRIES];
};

struct ctx {
	const struct tdc_grub_image *g;
	const struct tdc_grub_disk *d;
	struct tdc_prediction *p;
	struct tdc_grub_boot *boot;
	bool measure;    /* GRUB extends measurements (tpm module active, and the TEE sees them) */
	bool booted;
	size_t nvars;
	struct var vars[MAX_VARS];
	int depth;
	struct tdc_error *e;
};

struct cmd {
	size_t argc;
	char *argv[MAX_ARGS];
	char *block;     /* menuentry body, raw */
	bool keyword;    /* first word is a shell keyword (if, for, function, ...) */
};

static void cmd_free(struct cmd *c)
{
	for (size_t i = 0; i < c->argc; i++)
		free(c->argv[i]);
	free(c->block);
	memset(c, 0, sizeof(*c));
}

static int stop(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int stop(struct ctx *x, const char *fmt, ...)
{
	char why[TDC_PRED_WHAT];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	tdc_pred_stop(x->p, RTMR2, why);
	return STOP;
}

static const char *get_var(struct ctx *x, const char *name)
{
	for (size_t i = 0; i < x->nvars; i++)
		if (!strcmp(x->vars[i].name, name))
			return x->vars[i].value;
	return NULL;
}

static int set_var(struct ctx *x, const char *name, const char *value)
{
	size_t i, vl = strlen(value);
	char dev[sizeof(x->vars[0].value)];
	/* GRUB's write hook on $root drops the parentheses of "(hd0,gpt2)" */
	if (!strcmp(name, "root") && vl >= 2 && value[0] == '(' && value[vl - 1] == ')' &&
	    vl - 2 < sizeof(dev)) {
		memcpy(dev, value + 1, vl - 2);
		dev[vl - 2] = '\0';
		value = dev;
	}
	if (strlen(name) >= sizeof(x->vars[0].name) || strlen(value) >= sizeof(x->vars[0].value))
		return stop(x, "variable %.32s too long", name);
	for (i = 0; i < x->nvars && strcmp(x->vars[i].name, name); i++)
		;
	if (i == x->nvars) {
		if (x->nvars == MAX_VARS)
			return stop(x, "too many variables");
		x->nvars++;
		x->vars[i].exported = false;
	}
	snprintf(x->vars[i].name, sizeof(x->vars[i].name), "%s", name);
	snprintf(x->vars[i].value, sizeof(x->vars[i].value), "%s", value);
	return 0;
}

/* ---- tokenizer ---- */

struct src {
	const char *s;
	size_t len, pos;
};

static int peek(const struct src *s)
{
	return s->pos < s->len ? (unsigned char)s->s[s->pos] : -1;
}

struct wbuf {
	char s[MAX_WORD];
	size_t n;
	bool overflow;
};

static void wb_add(struct wbuf *w, char c)
{
	if (w->n + 1 >= sizeof(w->s)) {
		w->overflow = true;
		return;
	}
	w->s[w->n++] = c;
	w->s[w->n] = '\0';
}

static bool name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* $name or ${name}: appends the value; unknown variables GRUB would have set stop us. */
static int expand(struct ctx *x, struct src *s, struct wbuf *w)
{
	char name[64];
	size_t n = 0;
	bool brace = peek(s) == '{';
	if (brace)
		s->pos++;
	while (n + 1 < sizeof(name) && name_char(peek(s)))
		name[n++] = s->s[s->pos++];
	name[n] = '\0';
	if (brace && peek(s) != '}')
		return stop(x, "unsupported ${...} expression");
	if (brace)
		s->pos++;
	if (!n)
		return stop(x, "unsupported $ expression");
	const char *v = get_var(x, name);
	if (!v)
		return stop(x, "variable $%s is not set by the script (GRUB may set it itself)",
			    name);
	while (*v)
		wb_add(w, *v++);
	return 0;
}

/*
 * Reads one command: words until a newline or ';' outside quotes. Quotes are removed and
 * variables expanded; a menuentry's block is kept raw. Returns 0 (c->argc == 0 at the end of
 * the script), STOP, or an error.
 */
static int read_cmd(struct ctx *x, struct src *s, struct cmd *c)
{
	memset(c, 0, sizeof(*c));
	for (;;) {
		int ch = peek(s);
		while (ch == ' ' || ch == '\t' || (ch == '\n' && c->argc == 0) ||
		       (ch == ';' && c->argc == 0) || (ch == '\\' && s->pos + 1 < s->len &&
						       s->s[s->pos + 1] == '\n')) {
			s->pos += ch == '\\' ? 2 : 1;
			ch = peek(s);
		}
		if (ch == '#' ) { /* a comment runs to the end of the line */
			while (peek(s) != -1 && peek(s) != '\n')
				s->pos++;
			continue;
		}
		if (ch == -1 || ch == '\n' || ch == ';') {
			if (ch != -1)
				s->pos++;
			return 0;
		}
		if (c->argc == MAX_ARGS)
			return stop(x, "command with too many words");
		/* a block after menuentry's arguments */
		if (ch == '{' && c->argc > 0 && (!strcmp(c->argv[0], "menuentry") ||
						  !strcmp(c->argv[0], "submenu"))) {
			if (c->block)
				return stop(x, "menuentry with several blocks");
			size_t start = ++s->pos;
			int depth = 1;
			char q = 0;
			while (s->pos < s->len && depth) {
				char k = s->s[s->pos++];
				if (q) {
					if (k == '\\' && q == '"' && s->pos < s->len)
						s->pos++;
					else if (k == q)
						q = 0;
				} else if (k == '\'' || k == '"') {
					q = k;
				} else if (k == '\\' && s->pos < s->len) {
					s->pos++;
				} else if (k == '{') {
					depth++;
				} else if (k == '}') {
					depth--;
				}
			}
			if (depth)
				return stop(x, "unterminated menuentry block");
			size_t n = s->pos - 1 - start;
			if (!(c->block = malloc(n + 1)))
				return TDC_FAIL(x->e, TDC_E_NOMEM, "out of memory");
			memcpy(c->block, s->s + start, n);
			c->block[n] = '\0';
			continue;
		}
		struct wbuf w = { .n = 0 };
		/* lit: the word has text of its own (quotes, even empty, count); a word made only
		 * of unquoted expansions that are empty is no word at all in GRUB */
		bool any = false, quoted = false, lit = false;
		w.s[0] = '\0';
		while ((ch = peek(s)) != -1 && ch != ' ' && ch != '\t' && ch != '\n' && ch != ';') {
			any = true;
			if (ch == '\'') {
				quoted = lit = true;
				s->pos++;
				while ((ch = peek(s)) != -1 && ch != '\'') {
					wb_add(&w, (char)ch);
					s->pos++;
				}
				if (ch == -1)
					return stop(x, "unterminated quote");
				s->pos++;
			} else if (ch == '"') {
				quoted = lit = true;
				s->pos++;
				while ((ch = peek(s)) != -1 && ch != '"') {
					if (ch == '\\' && s->pos + 1 < s->len &&
					    strchr("\\\"$\n", s->s[s->pos + 1])) {
						if (s->s[s->pos + 1] != '\n')
							wb_add(&w, s->s[s->pos + 1]);
						s->pos += 2;
					} else if (ch == '$') {
						s->pos++;
						int r = expand(x, s, &w);
						if (r)
							return r;
					} else {
						wb_add(&w, (char)ch);
						s->pos++;
					}
				}
				if (ch == -1)
					return stop(x, "unterminated quote");
				s->pos++;
			} else if (ch == '\\') {
				s->pos++;
				if (peek(s) == '\n') { /* a line continuation, also inside a word */
					s->pos++;
				} else if (peek(s) != -1) {
					lit = true;
					wb_add(&w, s->s[s->pos++]);
				}
			} else if (ch == '$') {
				s->pos++;
				size_t before = w.n;
				int r = expand(x, s, &w);
				if (r)
					return r;
				for (size_t k = before; k < w.n; k++)
					if (w.s[k] == ' ' || w.s[k] == '\t' || w.s[k] == '\n')
						return stop(x, "an unquoted variable with spaces (split "
							    "into words) is not modelled");
			} else if (strchr("|&<>", ch)) {
				return stop(x, "shell operator '%c' is not modelled", ch);
			} else {
				lit = true;
				wb_add(&w, (char)ch);
				s->pos++;
			}
		}
		if (w.overflow)
			return stop(x, "word longer than %d bytes", MAX_WORD);
		if (!any || (!lit && w.n == 0))
			continue;
		if (c->argc == 0 && !quoted) {
			static const char *const kw[] = { "if", "then", "else", "elif", "fi",
							  "for", "while", "until", "do", "done",
							  "function", "case", "esac", "[", "[[",
							  "!", "{", "}", NULL };
			for (size_t i = 0; kw[i]; i++)
				c->keyword |= !strcmp(w.s, kw[i]);
		}
		if (!(c->argv[c->argc] = strdup(w.s)))
			return TDC_FAIL(x->e, TDC_E_NOMEM, "out of memory");
		c->argc++;
	}
}

/* ---- measurements ---- */

static int measure_string(struct ctx *x, enum tdc_event_role role, const char *prefix,
			  const char *s)
{
	char what[TDC_PRED_WHAT];
	if (!x->measure)
		return 0;
	snprintf(what, sizeof(what), "%s%s", prefix, s);
	return tdc_pred_add(x->p, RTMR2, TDC_EV_IPL, role, NULL, s, strlen(s), what, x->e);
}

static int measure_file(struct ctx *x, enum tdc_event_role role, const char *name,
			const uint8_t *data, size_t len)
{
	if (!x->measure)
		return 0;
	return tdc_pred_add(x->p, RTMR2, TDC_EV_IPL, role, NULL, data, len, name, x->e);
}

/* A GRUB path: "(dev)/path" or "/path" on $root. dev is "memdisk" or "hd0,gptN". */
struct gpath {
	bool memdisk;
	unsigned part;
	const char *path;
};

static int resolve(struct ctx *x, const char *name, struct gpath *gp)
{
	const char *dev, *p = name;
	char buf[64];
	memset(gp, 0, sizeof(*gp));
	if (*p == '(') {
		const char *end = strchr(p, ')');
		if (!end || (size_t)(end - p - 1) >= sizeof(buf))
			return stop(x, "bad GRUB device in %.64s", name);
		memcpy(buf, p + 1, (size_t)(end - p - 1));
		buf[end - p - 1] = '\0';
		dev = buf;
		p = end + 1;
	} else {
		dev = get_var(x, "root");
		if (!dev)
			return stop(x, "$root is not set when %.64s is opened", name);
	}
	if (*p != '/')
		return stop(x, "relative path %.64s is not modelled", name);
	gp->path = p;
	if (!strcmp(dev, "memdisk")) {
		gp->memdisk = true;
		return 0;
	}
	unsigned part;
	char tail;
	if (sscanf(dev, "hd0,gpt%u%c", &part, &tail) != 1 || part == 0)
		return stop(x, "GRUB device (%.32s) is not modelled (only hd0,gptN and memdisk)", dev);
	gp->part = part;
	return 0;
}

/* Reads a file the way GRUB opens it; rc TDC_E_NOT_FOUND if it does not exist. */
static int read_file(struct ctx *x, const struct gpath *gp, uint8_t **buf, size_t *len,
		     struct tdc_error *e)
{
	if (gp->memdisk) {
		struct tdc_rd f;
		TDC_GUARD(tdc_grub_memdisk_file(x->g, gp->path, &f, e));
		if (!(*buf = malloc(tdc_rd_len(&f) + 1)))
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		memcpy(*buf, tdc_rd_ptr(&f), tdc_rd_len(&f));
		(*buf)[tdc_rd_len(&f)] = '\0';
		*len = tdc_rd_len(&f);
		return 0;
	}
	return x->d->read(x->d->arg, gp->part, gp->path, buf, len, e);
}

/* Opens a file as GRUB would and measures it (unless it is on the memdisk). *buf may be NULL
 * when the file does not exist and missing_ok is set. */
static int open_measured(struct ctx *x, const char *name, enum tdc_event_role role, bool missing_ok,
			 uint8_t **buf, size_t *len)
{
	struct gpath gp;
	struct tdc_error fe;
	int r = resolve(x, name, &gp);
	if (r)
		return r;
	tdc_error_clear(&fe);
	*buf = NULL;
	*len = 0;
	r = read_file(x, &gp, buf, len, &fe);
	if (r == TDC_E_NOT_FOUND && missing_ok)
		return 0;
	if (r == TDC_E_NOT_FOUND)
		return stop(x, "GRUB would fail: %.64s does not exist", name);
	if (r < 0) {
		char d[200];
		return TDC_FAILF(x->e, r, "cannot read a file GRUB opens", "%.64s: %s", name,
				 tdc_error_format(&fe, d, sizeof(d)));
	}
	if (!gp.memdisk && (r = measure_file(x, role, name, *buf, *len)) < 0) {
		free(*buf);
		*buf = NULL;
	}
	return r;
}

static bool prefix_on_memdisk(struct ctx *x)
{
	const char *pfx = get_var(x, "prefix");
	return pfx && !strncmp(pfx, "(memdisk)", 9);
}

/* normal.mod reads these lists when it starts and whenever $prefix is set (its write hook). */
static int read_lists(struct ctx *x)
{
	static const char *const lists[] = { "command.lst", "fs.lst", "crypto.lst", "terminal.lst" };
	const char *pfx = get_var(x, "prefix");
	char name[640];
	if (!pfx || prefix_on_memdisk(x))
		return 0;
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		uint8_t *buf;
		size_t len;
		snprintf(name, sizeof(name), "%s/x86_64-efi/%s", pfx, lists[i]);
		int r = open_measured(x, name, TDC_ROLE_BOOT_CONFIG, true, &buf, &len);
		free(buf);
		if (r)
			return r;
	}
	return 0;
}

static bool builtin(struct ctx *x, const char *mod)
{
	for (size_t i = 0; i < x->g->n_builtin; i++)
		if (!strcmp(x->g->builtin[i], mod))
			return true;
	return false;
}

/* The module a command comes from ("" for the GRUB kernel's own commands). */
static const char *command_module(const char *cmd)
{
	static const struct {
		const char *cmd, *mod;
	} map[] = {
		{ "set", "" },           { "unset", "" },          { "export", "" },
		{ "insmod", "" },        { "setparams", "normal" }, { "menuentry", "normal" },
		{ "search", "search" },  { "configfile", "configfile" }, { "source", "configfile" },
		{ "linux", "linux" },    { "initrd", "linux" },    { "linuxefi", "linuxefi" },
		{ "initrdefi", "linuxefi" }, { "serial", "serial" }, { "terminal_input", "terminal" },
		{ "terminal_output", "terminal" }, { "echo", "echo" }, { "boot", "boot" },
		{ "true", "true" },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(map[i].cmd, cmd))
			return map[i].mod;
	return NULL;
}

/* A module GRUB would load: from the memdisk (unmeasured) or from disk (not modelled). */
static int need_module(struct ctx *x, const char *mod)
{
	if (!*mod || builtin(x, mod))
		return 0;
	if (prefix_on_memdisk(x))
		return 0;
	return stop(x, "module %s would be loaded from %.64s (modules read from disk are not "
		    "modelled; build it into the GRUB image)", mod, get_var(x, "prefix"));
}

static int run_script(struct ctx *x, const char *text, size_t len, struct menu *m);
static int boot_default(struct ctx *x, struct menu *m);

/* GRUB's loader command line: each argument re-quoted (grub-core/lib/cmdline.c). */
static int loader_cmdline(struct ctx *x, const struct cmd *c, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 1; i < c->argc; i++) {
		const char *a = c->argv[i];
		bool space = strchr(a, ' ') != NULL;
		if (i > 1 && n + 1 < cap)
			out[n++] = ' ';
		if (space && n + 1 < cap)
			out[n++] = '"';
		for (; *a; a++) {
			if (strchr("\\'\"", *a) && n + 1 < cap)
				out[n++] = '\\';
			if (n + 1 < cap)
				out[n++] = *a;
		}
		if (space && n + 1 < cap)
			out[n++] = '"';
		if (n + 1 >= cap)
			return stop(x, "kernel command line too long");
	}
	out[n] = '\0';
	return 0;
}

static int do_linux(struct ctx *x, const struct cmd *c)
{
	uint8_t *k;
	size_t klen;
	char line[sizeof(x->boot->cmdline) - 16];
	if (c->argc < 2)
		return stop(x, "%s without a kernel", c->argv[0]);
	int r = open_measured(x, c->argv[1], TDC_ROLE_KERNEL, false, &k, &klen);
	if (r)
		return r;
	if ((r = loader_cmdline(x, c, line, sizeof(line))) != 0 ||
	    (r = measure_string(x, TDC_ROLE_CMDLINE, "kernel_cmdline: ", line)) < 0) {
		free(k);
		return r;
	}
	free(x->boot->kernel);
	x->boot->kernel = k;
	x->boot->kernel_len = klen;
	snprintf(x->boot->kernel_path, sizeof(x->boot->kernel_path), "%s", c->argv[1]);
	snprintf(x->boot->cmdline, sizeof(x->boot->cmdline), "BOOT_IMAGE=%s", line);
	snprintf(x->boot->loader, sizeof(x->boot->loader), "%s", c->argv[0]);
	return 0;
}

static int do_initrd(struct ctx *x, const struct cmd *c)
{
	/* GRUB refuses (upstream) or crashes (Debian's initrdefi) before its loader has a kernel */
	const char *loader = !strcmp(c->argv[0], "initrdefi") ? "linuxefi" : "linux";
	if (!x->boot->kernel || strcmp(x->boot->loader, loader))
		return stop(x, "%s without a kernel loaded by %s", c->argv[0], loader);
	free(x->boot->initrd);
	x->boot->initrd = NULL;
	x->boot->initrd_len = 0;
	x->boot->n_initrd = 0;
	for (size_t i = 1; i < c->argc; i++) {
		uint8_t *f;
		size_t flen;
		int r = open_measured(x, c->argv[i], TDC_ROLE_INITRD, false, &f, &flen);
		if (r)
			return r;
		/* several initrds are concatenated, each after the first 4-byte aligned */
		size_t pad = x->boot->initrd_len % 4 ? 4 - x->boot->initrd_len % 4 : 0;
		uint8_t *n = realloc(x->boot->initrd, x->boot->initrd_len + pad + flen + 1);
		if (!n) {
			free(f);
			return TDC_FAIL(x->e, TDC_E_NOMEM, "out of memory");
		}
		memset(n + x->boot->initrd_len, 0, pad);
		memcpy(n + x->boot->initrd_len + pad, f, flen);
		free(f);
		x->boot->initrd = n;
		x->boot->initrd_len += pad + flen;
		x->boot->n_initrd++;
	}
	return 0;
}

static int do_search(struct ctx *x, const struct cmd *c)
{
	const char *var = "root", *uuid = NULL;
	bool by_uuid = false;
	for (size_t i = 1; i < c->argc; i++) {
		const char *a = c->argv[i];
		if (!strcmp(a, "--no-floppy") || !strncmp(a, "--hint", 6))
			continue;
		if (!strcmp(a, "--fs-uuid") || !strcmp(a, "-u"))
			by_uuid = true;
		else if (!strncmp(a, "--set=", 6))
			var = a + 6;
		else if (!strcmp(a, "--set") || !strcmp(a, "-s"))
			var = "root";
		else if (a[0] == '-')
			return stop(x, "search option %.32s is not modelled", a);
		else if (!uuid)
			uuid = a;
		else
			return stop(x, "search with several arguments is not modelled");
	}
	if (!by_uuid || !uuid)
		return stop(x, "only 'search --fs-uuid UUID' is modelled");
	unsigned part = x->d->find_uuid(x->d->arg, uuid);
	if (!part)
		return stop(x, "no partition has the filesystem UUID %.40s GRUB searches", uuid);
	char dev[32];
	snprintf(dev, sizeof(dev), "hd0,gpt%u", part);
	return set_var(x, var, dev);
}

static int do_set(struct ctx *x, const char *assign)
{
	const char *eq = strchr(assign, '=');
	char name[64];
	if (!eq)
		return 0; /* "set name" prints it */
	if ((size_t)(eq - assign) >= sizeof(name))
		return stop(x, "variable name too long");
	memcpy(name, assign, (size_t)(eq - assign));
	name[eq - assign] = '\0';
	int r = set_var(x, name, eq + 1);
	if (r == 0 && !strcmp(name, "prefix"))
		r = read_lists(x); /* normal.mod's hook on $prefix */
	return r;
}

/*
 * configfile: a new menu in a new variable context that starts with the exported variables only
 * (grub_env_context_open) and is dropped afterwards; source: the same menu and variables.
 * Neither reads the module lists (normal.mod reads them only when it starts and when $prefix is
 * set: grub_normal_execute with nested = 1 skips them; seen on Debian's 2.06 as well).
 */
static int do_config(struct ctx *x, const struct cmd *c, struct menu *m)
{
	bool nested = !strcmp(c->argv[0], "configfile");
	uint8_t *buf;
	size_t len;
	int r;
	if (c->argc != 2)
		return stop(x, "%s needs one file", c->argv[0]);
	if (++x->depth > MAX_DEPTH)
		return stop(x, "config files nested too deep");
	if ((r = open_measured(x, c->argv[1], TDC_ROLE_BOOT_CONFIG, false, &buf, &len)) != 0)
		return r;
	if (nested) {
		struct menu *sub = calloc(1, sizeof(*sub));
		struct var *saved = malloc(sizeof(x->vars));
		size_t nsaved = x->nvars, k = 0;
		if (!sub || !saved) {
			free(sub);
			free(saved);
			free(buf);
			return TDC_FAIL(x->e, TDC_E_NOMEM, "out of memory");
		}
		memcpy(saved, x->vars, sizeof(x->vars));
		for (size_t i = 0; i < x->nvars; i++)
			if (x->vars[i].exported)
				x->vars[k++] = x->vars[i];
		x->nvars = k;
		r = run_script(x, (const char *)buf, len, sub);
		if (r == 0 && !x->booted)
			r = boot_default(x, sub);
		memcpy(x->vars, saved, sizeof(x->vars));
		x->nvars = nsaved;
		free(saved);
		for (size_t i = 0; i < sub->n; i++)
			free(sub->e[i].body);
		free(sub);
	} else {
		r = run_script(x, (const char *)buf, len, m);
	}
	free(buf);
	x->depth--;
	return r;
}

static int do_menuentry(struct ctx *x, const struct cmd *c, struct menu *m)
{
	const char *title = NULL;
	for (size_t i = 1; i < c->argc; i++) {
		const char *a = c->argv[i];
		if (!strcmp(a, "--class") || !strcmp(a, "--id") || !strcmp(a, "--users")) {
			i++;
			continue;
		}
		if (a[0] == '-' && a[1] == '-')
			continue;
		if (!title)
			title = a;
		else
			return stop(x, "menuentry arguments after the title are not modelled");
	}
	if (!title)
		return stop(x, "menuentry without a title");
	if (m->n == MAX_ENTRIES)
		return stop(x, "too many menu entries");
	struct entry *en = &m->e[m->n++];
	snprintf(en->title, sizeof(en->title), "%s", title);
	if (!(en->body = strdup(c->block)))
		return TDC_FAIL(x->e, TDC_E_NOMEM, "out of memory");
	return 0;
}

static int exec_cmd(struct ctx *x, const struct cmd *c, struct menu *m)
{
	const char *name = c->argv[0];
	int r;
	if (c->keyword)
		return stop(x, "GRUB script construct '%.16s' is not modelled", name);
	bool assign = strchr(name, '=') && name[0] != '=' && c->argc == 1;
	const char *mod = assign ? "" : command_module(name);
	if (!mod)
		return stop(x, "GRUB command '%.32s' is not modelled", name);
	if (!strcmp(name, "menuentry") && !c->block) /* a syntax error: GRUB runs nothing */
		return stop(x, "menuentry without a block");
	/* The command line is measured before the command runs. */
	char line[MAX_WORD * 2];
	size_t n = 0;
	for (size_t i = 0; i < c->argc + (c->block ? 1 : 0) && n < sizeof(line); i++) {
		int k = i < c->argc ? snprintf(line + n, sizeof(line) - n, "%s%s", i ? " " : "",
					       c->argv[i])
				    : snprintf(line + n, sizeof(line) - n, " {%s}", c->block);
		n = k < 0 ? sizeof(line) : n + (size_t)k;
	}
	if (n >= sizeof(line))
		return stop(x, "command line too long");
	if ((r = need_module(x, mod)) != 0)
		return r;
	if ((r = measure_string(x, TDC_ROLE_BOOT_COMMAND, "grub_cmd: ", line)) < 0)
		return r;
	if (assign)
		return do_set(x, name);
	if (!strcmp(name, "set"))
		return c->argc == 2 ? do_set(x, c->argv[1]) : c->argc == 1 ? 0 :
			stop(x, "set with several words");
	if (!strcmp(name, "unset")) {
		for (size_t i = 0; i < x->nvars; i++)
			if (c->argc == 2 && !strcmp(x->vars[i].name, c->argv[1]))
				x->vars[i] = x->vars[--x->nvars];
		return 0;
	}
	if (!strcmp(name, "export")) {
		for (size_t i = 1; i < c->argc; i++) {
			/* GRUB exports an unset variable as "" */
			if (!get_var(x, c->argv[i]) && (r = set_var(x, c->argv[i], "")) != 0)
				return r;
			for (size_t j = 0; j < x->nvars; j++)
				if (!strcmp(x->vars[j].name, c->argv[i]))
					x->vars[j].exported = true;
		}
		return 0;
	}
	if (!strcmp(name, "insmod"))
		return c->argc == 2 ? need_module(x, c->argv[1]) : stop(x, "insmod needs one module");
	if (!strcmp(name, "search"))
		return do_search(x, c);
	if (!strcmp(name, "configfile") || !strcmp(name, "source"))
		return do_config(x, c, m);
	if (!strcmp(name, "menuentry"))
		return do_menuentry(x, c, m);
	if (!strcmp(name, "linux") || !strcmp(name, "linuxefi"))
		return do_linux(x, c);
	if (!strcmp(name, "initrd") || !strcmp(name, "initrdefi"))
		return do_initrd(x, c);
	if (!strcmp(name, "boot")) {
		x->booted = true;
		return 0;
	}
	return 0; /* serial, terminal_*, echo, true, setparams: nothing to measure */
}

/* normal mode's menu: the default entry, prefixed with setparams, then the implicit boot. */
static int boot_default(struct ctx *x, struct menu *m)
{
	const char *def = get_var(x, "default");
	size_t idx = 0;
	if (m->n == 0)
		return 0;
	if (def && *def) {
		char *end;
		unsigned long v = strtoul(def, &end, 0); /* grub_strtoul (def, &tail, 0) */
		if (*end == '\0') {
			idx = v;
		} else {
			for (idx = 0; idx < m->n && strcmp(m->e[idx].title, def); idx++)
				;
		}
		if (idx >= m->n)
			return stop(x, "default entry '%.40s' not found", def);
	}
	struct entry *en = &m->e[idx];
	char line[200];
	snprintf(line, sizeof(line), "setparams %s", en->title);
	int r = measure_string(x, TDC_ROLE_BOOT_COMMAND, "grub_cmd: ", line);
	if (r < 0)
		return r;
	snprintf(x->boot->title, sizeof(x->boot->title), "%s", en->title);
	if ((r = run_script(x, en->body, strlen(en->body), m)) != 0)
		return r;
	if (!x->boot->kernel)
		return stop(x, "menu entry '%.40s' loads no kernel", en->title);
	x->booted = true;
	return 0;
}

static int run_script(struct ctx *x, const char *text, size_t len, struct menu *m)
{
	struct src s = { text, len, 0 };
	int r = 0;
	for (;;) {
		struct cmd c;
		r = read_cmd(x, &s, &c);
		if (r == 0 && c.argc == 0) {
			cmd_free(&c);
			break;
		}
		if (r == 0)
			r = exec_cmd(x, &c, m);
		cmd_free(&c);
		if (r || x->booted)
			return r;
	}
	/* the end of a config normal mode runs (the embedded one, or a configfile): its menu */
	return r;
}

void tdc_grub_boot_free(struct tdc_grub_boot *b)
{
	if (!b)
		return;
	free(b->kernel);
	free(b->initrd);
	memset(b, 0, sizeof(*b));
}

static int run_config(struct ctx *x, const char *text, size_t len)
{
	struct menu *m = calloc(1, sizeof(*m));
	if (!m)
		return TDC_FAIL(x->e, TDC_E_NOMEM, "out of memory");
	int r = run_script(x, text, len, m);
	if (r == 0 && !x->booted)
		r = boot_default(x, m);
	for (size_t i = 0; i < m->n; i++)
		free(m->e[i].body);
	free(m);
	return r;
}

int tdc_grub_predict(const struct tdc_grub_image *g, const struct tdc_grub_disk *d, bool measure,
		     struct tdc_prediction *p, struct tdc_grub_boot *boot, struct tdc_error *e)
{
	struct ctx *x = calloc(1, sizeof(*x));
	struct tdc_rd cfg;
	char path[200];
	int r;

	memset(boot, 0, sizeof(*boot));
	if (!x)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	x->g = g;
	x->d = d;
	x->p = p;
	x->boot = boot;
	x->e = e;
	x->measure = measure && g->tpm_builtin;
	if (g->has_config) {
		r = stop(x, "the GRUB image has an embedded early config (not modelled)");
		goto out;
	}
	if (strncmp(g->prefix, "(memdisk)", 9)) {
		r = stop(x, "GRUB's prefix %.64s is not on its memdisk (not modelled)", g->prefix);
		goto out;
	}
	if ((r = set_var(x, "prefix", g->prefix)) != 0 || (r = set_var(x, "root", "memdisk")) != 0)
		goto out;
	x->vars[0].exported = x->vars[1].exported = true; /* grub_main exports both */
	/* normal mode runs $prefix/grub.cfg from the memdisk: commands measured, file not */
	snprintf(path, sizeof(path), "%s/grub.cfg", g->prefix + 9);
	if ((r = tdc_grub_memdisk_file(g, path, &cfg, e)) < 0)
		goto out;
	r = run_config(x, (const char *)tdc_rd_ptr(&cfg), tdc_rd_len(&cfg));
out:
	free(x);
	return r < 0 ? r : 0;
}
