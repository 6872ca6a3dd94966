/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The QEMU argument vector of `tdcrypt launch` (include/tdcrypt/launch.h).
 * Every option value that QEMU parses as "key=value,..." gets its commas
 * doubled; the guestfwd command is additionally quoted word by word, because
 * libslirp splits it shell-style (without a shell) before exec'ing it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tdcrypt/launch.h"

/* Where distributions put TDVF (the OVMF build with TDX support). */
static const char *const tdvf_paths[] = {
	"/usr/share/ovmf/OVMF.inteltdx.fd",      /* Ubuntu (canonical/tdx) */
	"/usr/share/edk2/ovmf/OVMF.inteltdx.fd", /* Fedora, CentOS Stream */
	"/usr/share/qemu/OVMF.inteltdx.fd",
	"/usr/share/OVMF/OVMF.inteltdx.fd",
};

const char *tdc_launch_default_firmware(bool tdx)
{
	if (!tdx)
		return TDC_LAUNCH_OVMF;
	for (size_t i = 0; i < sizeof(tdvf_paths) / sizeof(tdvf_paths[0]); i++)
		if (access(tdvf_paths[i], R_OK) == 0)
			return tdvf_paths[i];
	return tdvf_paths[0];
}

const char *tdc_disk_format_name(enum tdc_disk_format f)
{
	return f == TDC_DISK_QCOW2 ? "qcow2" : "raw";
}

void tdc_argv_free(struct tdc_argv *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

/* Appends an owned string; on allocation failure frees s and returns NOMEM. */
static int push_owned(struct tdc_argv *a, char *s, struct tdc_error *e)
{
	if (!s)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 64;
		char **v = realloc(a->v, cap * sizeof(*v));
		if (!v) {
			free(s);
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
	return 0;
}

static int push(struct tdc_argv *a, const char *s, struct tdc_error *e)
{
	return push_owned(a, strdup(s), e);
}

static int pushf(struct tdc_argv *a, struct tdc_error *e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int pushf(struct tdc_argv *a, struct tdc_error *e, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return push_owned(a, n < 0 ? NULL : s, e);
}

char *tdc_qemu_escape(const char *s)
{
	size_t n = strlen(s), commas = 0;
	for (size_t i = 0; i < n; i++)
		commas += s[i] == ',';
	char *out = malloc(n + commas + 1), *p = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		*p++ = s[i];
		if (s[i] == ',')
			*p++ = ',';
	}
	*p = '\0';
	return out;
}

static bool shell_safe(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("_@%+=:,./-", c) != NULL;
}

char *tdc_shell_quote(const char *s)
{
	size_t n = strlen(s), quotes = 0;
	bool safe = n > 0;
	for (size_t i = 0; i < n; i++) {
		safe = safe && shell_safe(s[i]);
		quotes += s[i] == '\'';
	}
	if (safe)
		return strdup(s);
	/* 'abc' with each ' as '\'' (4 bytes instead of 1) */
	char *out = malloc(n + 3 * quotes + 3), *p = out;
	if (!out)
		return NULL;
	*p++ = '\'';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\'') {
			memcpy(p, "'\\''", 4);
			p += 4;
		} else {
			*p++ = s[i];
		}
	}
	*p++ = '\'';
	*p = '\0';
	return out;
}

/* Joins shell-quoted words with spaces. */
static char *join_quoted(const char *const *w, size_t n)
{
	size_t len = 0;
	char **q = calloc(n ? n : 1, sizeof(*q)), *out = NULL;
	if (!q)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!(q[i] = tdc_shell_quote(w[i])))
			goto done;
		len += strlen(q[i]) + 1;
	}
	if (!(out = malloc(len + 1)))
		goto done;
	char *p = out;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(q[i]);
		if (i)
			*p++ = ' ';
		memcpy(p, q[i], l);
		p += l;
	}
	*p = '\0';
done:
	for (size_t i = 0; i < n; i++)
		free(q[i]);
	free(q);
	return out;
}

char *tdc_argv_format(const struct tdc_argv *a)
{
	return join_quoted((const char *const *)a->v, a->n);
}

int tdc_disk_format_detect(const char *path, enum tdc_disk_format *f, struct tdc_error *e)
{
	static const unsigned char qcow_magic[4] = { 'Q', 'F', 'I', 0xfb };
	unsigned char m[4];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot open disk image", "%s: %s", path,
				 strerror(errno));
	ssize_t r = pread(fd, m, sizeof(m), 0);
	int err = errno;
	close(fd);
	if (r < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot read disk image", "%s: %s", path,
				 strerror(err));
	*f = r == (ssize_t)sizeof(m) && !memcmp(m, qcow_magic, sizeof(m)) ? TDC_DISK_QCOW2
									    : TDC_DISK_RAW;
	return 0;
}

/* Control characters would end up in QEMU's option parser or the slirp split. */
static int check_str(const char *s, const char *what, struct tdc_error *e)
{
	if (!s)
		return 0;
	if (!*s)
		return TDC_FAILF(e, TDC_E_USAGE, "empty value", "%s", what);
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return TDC_FAILF(e, TDC_E_USAGE, "control character in value", "%s", what);
	return 0;
}

static int check_opts(const struct tdc_launch_opts *o, struct tdc_error *e)
{
	if (!o->image)
		return TDC_FAIL(e, TDC_E_USAGE, "no disk image");
	if (!o->firmware)
		return TDC_FAIL(e, TDC_E_USAGE, "no firmware (TDVF or OVMF code)");
	if (o->tdx && (o->vars || o->vtpm_socket))
		return TDC_FAIL(e, TDC_E_USAGE, "vars and vTPM are for the TCG form (TDVF has neither)");
	if ((o->initrd || o->append) && !o->kernel)
		return TDC_FAIL(e, TDC_E_USAGE, "initrd/append given without a kernel");
	if (o->memory_mib && (o->memory_mib < 64 || o->memory_mib > TDC_LAUNCH_MAX_MEMORY_MIB))
		return TDC_FAILF(e, TDC_E_USAGE, "memory out of range", "%u MiB", o->memory_mib);
	if (o->cpus > TDC_LAUNCH_MAX_CPUS)
		return TDC_FAILF(e, TDC_E_USAGE, "cpus out of range", "%u", o->cpus);
	if (o->forward_cmd && o->forward_argc == 0)
		return TDC_FAIL(e, TDC_E_USAGE, "empty forward command");
	if (o->image_format != TDC_DISK_RAW && o->image_format != TDC_DISK_QCOW2)
		return TDC_FAIL(e, TDC_E_USAGE, "unknown disk format");
	const struct {
		const char *s, *what;
	} strs[] = {
		{ o->qemu, "qemu" },       { o->image, "image" },   { o->firmware, "firmware" },
		{ o->vars, "vars" },       { o->kernel, "kernel" }, { o->initrd, "initrd" },
		{ o->vtpm_socket, "vTPM socket" },
		{ o->append, "append" },   { o->name, "name" },     { o->serial_log, "serial log" },
		{ o->monitor_socket, "monitor socket" },
	};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		TDC_GUARD(check_str(strs[i].s, strs[i].what, e));
	for (size_t i = 0; o->forward_cmd && i < o->forward_argc; i++)
		TDC_GUARD(check_str(o->forward_cmd[i], "forward command", e));
	return 0;
}

/* "-drive if=pflash,..." / "-drive if=none,..." with the path escaped. */
static int push_drive(struct tdc_argv *a, const char *prefix, const char *path,
		      const char *suffix, struct tdc_error *e)
{
	char *p = tdc_qemu_escape(path);
	if (!p)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	int rc = push(a, "-drive", e);
	if (rc == 0)
		rc = pushf(a, e, "%sfile=%s%s", prefix, p, suffix);
	free(p);
	return rc;
}

static int machine_args(const struct tdc_launch_opts *o, uint32_t mem, uint32_t cpus,
			struct tdc_argv *a, struct tdc_error *e)
{
	if (o->tdx) {
		TDC_GUARD(push(a, "-accel", e));
		TDC_GUARD(push(a, "kvm", e));
		TDC_GUARD(push(a, "-cpu", e));
		TDC_GUARD(push(a, "host", e));
		/* QEMU >= 10.1 (docs/system/i386/tdx.rst); SMM cannot work in a TD. */
		TDC_GUARD(push(a, "-machine", e));
		TDC_GUARD(push(a, "q35,kernel-irqchip=split,confidential-guest-support=tdx0,"
				  "memory-backend=ram1,smm=off", e));
		TDC_GUARD(push(a, "-object", e));
		TDC_GUARD(pushf(a, e,
				"{\"qom-type\":\"tdx-guest\",\"id\":\"tdx0\","
				"\"quote-generation-socket\":{\"type\":\"vsock\",\"cid\":\"%u\","
				"\"port\":\"%u\"}}",
				o->qgs_cid ? o->qgs_cid : TDC_LAUNCH_QGS_CID,
				o->qgs_port ? o->qgs_port : TDC_LAUNCH_QGS_PORT));
		TDC_GUARD(push(a, "-object", e));
		TDC_GUARD(pushf(a, e, "memory-backend-ram,id=ram1,size=%uM", mem));
	} else {
		/* TCG only: KVM on the test machines cannot run stock guests, and a
		 * no-TDX launch must never silently pick it (test-environment §9). */
		TDC_GUARD(push(a, "-accel", e));
		TDC_GUARD(push(a, "tcg", e));
		TDC_GUARD(push(a, "-cpu", e));
		TDC_GUARD(push(a, "max", e));
		TDC_GUARD(push(a, "-machine", e));
		TDC_GUARD(push(a, "q35", e));
	}
	TDC_GUARD(push(a, "-m", e));
	TDC_GUARD(pushf(a, e, "%uM", mem));
	TDC_GUARD(push(a, "-smp", e));
	TDC_GUARD(pushf(a, e, "%u", cpus));
	if (o->tdx || !o->vars) {
		/* TD memory is private: the firmware is loaded as RAM, not pflash; the TCG form
		 * does the same by default, so both boot the same firmware the same way. */
		TDC_GUARD(push(a, "-bios", e));
		TDC_GUARD(push(a, o->firmware, e));
	} else {
		TDC_GUARD(push_drive(a, "if=pflash,format=raw,unit=0,readonly=on,", o->firmware,
				     "", e));
		TDC_GUARD(push_drive(a, "if=pflash,format=raw,unit=1,", o->vars, "", e));
	}
	if (o->vtpm_socket) {
		char *p = tdc_qemu_escape(o->vtpm_socket);
		if (!p)
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		int rc = push(a, "-chardev", e);
		if (rc == 0)
			rc = pushf(a, e, "socket,id=vtpm0,path=%s", p);
		free(p);
		TDC_GUARD(rc);
		TDC_GUARD(push(a, "-tpmdev", e));
		TDC_GUARD(push(a, "emulator,id=tpm0,chardev=vtpm0", e));
		TDC_GUARD(push(a, "-device", e));
		TDC_GUARD(push(a, "tpm-tis,tpmdev=tpm0", e));
	}
	return 0;
}

static int console_args(const struct tdc_launch_opts *o, struct tdc_argv *a,
			struct tdc_error *e)
{
	TDC_GUARD(push(a, "-nodefaults", e));
	TDC_GUARD(push(a, "-no-user-config", e));
	TDC_GUARD(push(a, "-display", e));
	TDC_GUARD(push(a, "none", e));
	TDC_GUARD(push(a, "-no-reboot", e));
	if (o->serial_log) {
		char *p = tdc_qemu_escape(o->serial_log);
		if (!p)
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		int rc = push(a, "-chardev", e);
		if (rc == 0)
			rc = pushf(a, e, "file,id=serial0,path=%s", p);
		free(p);
		TDC_GUARD(rc);
		TDC_GUARD(push(a, "-serial", e));
		TDC_GUARD(push(a, "chardev:serial0", e));
	} else {
		TDC_GUARD(push(a, "-serial", e));
		TDC_GUARD(push(a, "stdio", e));
	}
	if (o->monitor_socket) {
		char *p = tdc_qemu_escape(o->monitor_socket);
		if (!p)
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		int rc = push(a, "-chardev", e);
		if (rc == 0)
			rc = pushf(a, e, "socket,id=mon0,path=%s,server=on,wait=off", p);
		free(p);
		TDC_GUARD(rc);
		TDC_GUARD(push(a, "-mon", e));
		TDC_GUARD(push(a, "chardev=mon0,mode=readline", e));
	} else {
		TDC_GUARD(push(a, "-monitor", e));
		TDC_GUARD(push(a, "none", e));
	}
	return 0;
}

static int net_args(const struct tdc_launch_opts *o, struct tdc_argv *a, struct tdc_error *e)
{
	char ssh[64] = "", *fwd = NULL, *fwd_esc = NULL;
	if (o->ssh_port)
		snprintf(ssh, sizeof(ssh), ",hostfwd=tcp:127.0.0.1:%u-:22", o->ssh_port);
	if (o->forward_cmd) {
		fwd = join_quoted(o->forward_cmd, o->forward_argc);
		fwd_esc = fwd ? tdc_qemu_escape(fwd) : NULL;
		free(fwd);
		if (!fwd_esc)
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	int rc = push(a, "-netdev", e);
	/* restrict=on: the guest reaches no host or outside address; the single
	 * guestfwd rule is then its only way out (to the broker). */
	if (rc == 0 && fwd_esc)
		rc = pushf(a, e, "user,id=net0,restrict=on%s,guestfwd=tcp:%s:%u-cmd:%s", ssh,
			   TDC_LAUNCH_GUEST_BROKER_ADDR,
			   o->guest_broker_port ? o->guest_broker_port
						: TDC_LAUNCH_GUEST_BROKER_PORT,
			   fwd_esc);
	else if (rc == 0)
		rc = pushf(a, e, "user,id=net0,restrict=on%s", ssh);
	free(fwd_esc);
	TDC_GUARD(rc);
	TDC_GUARD(push(a, "-device", e));
	/* romfile=: no iPXE option ROM, the firmware does not netboot. */
	TDC_GUARD(push(a, "virtio-net-pci,netdev=net0,romfile=", e));
	return 0;
}

static int build(const struct tdc_launch_opts *o, struct tdc_argv *a, struct tdc_error *e)
{
	uint32_t mem = o->memory_mib ? o->memory_mib : TDC_LAUNCH_DEFAULT_MEMORY_MIB;
	uint32_t cpus = o->cpus ? o->cpus : TDC_LAUNCH_DEFAULT_CPUS;

	TDC_GUARD(push(a, o->qemu ? o->qemu : TDC_LAUNCH_QEMU, e));
	if (o->name) {
		char *p = tdc_qemu_escape(o->name);
		if (!p)
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		int rc = push(a, "-name", e);
		if (rc == 0)
			rc = pushf(a, e, "guest=%s", p);
		free(p);
		TDC_GUARD(rc);
	}
	TDC_GUARD(machine_args(o, mem, cpus, a, e));
	TDC_GUARD(console_args(o, a, e));

	char suffix[96];
	snprintf(suffix, sizeof(suffix), ",format=%s,cache=%s%s%s",
		 tdc_disk_format_name(o->image_format), o->snapshot ? "unsafe" : "writeback",
		 o->snapshot ? ",snapshot=on" : "", o->readonly ? ",readonly=on" : "");
	TDC_GUARD(push_drive(a, "if=none,id=disk0,", o->image, suffix, e));
	TDC_GUARD(push(a, "-device", e));
	TDC_GUARD(push(a, "virtio-blk-pci,drive=disk0", e));

	TDC_GUARD(net_args(o, a, e));
	TDC_GUARD(push(a, "-device", e));
	TDC_GUARD(push(a, "virtio-rng-pci", e));

	if (o->kernel) {
		TDC_GUARD(push(a, "-kernel", e));
		TDC_GUARD(push(a, o->kernel, e));
		if (o->initrd) {
			TDC_GUARD(push(a, "-initrd", e));
			TDC_GUARD(push(a, o->initrd, e));
		}
		if (o->append) {
			TDC_GUARD(push(a, "-append", e));
			TDC_GUARD(push(a, o->append, e));
		}
	}
	return 0;
}

int tdc_launch_argv(const struct tdc_launch_opts *o, struct tdc_argv *out, struct tdc_error *e)
{
	struct tdc_argv a = { 0 };
	if (!o || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "NULL argument");
	TDC_GUARD(check_opts(o, e));
	int rc = build(o, &a, e);
	if (rc < 0) {
		tdc_argv_free(&a);
		return rc;
	}
	*out = a;
	return 0;
}

int tdc_hostport_parse(const char *s, char *host, size_t cap, uint16_t *port,
		       struct tdc_error *e)
{
	const char *h = "127.0.0.1", *p = s;
	size_t hlen = strlen(h);
	if (!s || !host || !port || cap == 0)
		return TDC_FAIL(e, TDC_E_USAGE, "NULL argument");
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':' || close == s + 1)
			return TDC_FAILF(e, TDC_E_USAGE, "bad [address]:port", "'%s'", s);
		h = s + 1;
		hlen = (size_t)(close - h);
		p = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon) {
			if (colon == s || memchr(s, ':', (size_t)(colon - s)))
				return TDC_FAILF(e, TDC_E_USAGE, "bad host:port", "'%s'", s);
			h = s;
			hlen = (size_t)(colon - s);
			p = colon + 1;
		}
	}
	if (hlen >= cap)
		return TDC_FAILF(e, TDC_E_USAGE, "host name too long", "'%s'", s);
	for (size_t i = 0; i < hlen; i++)
		if ((unsigned char)h[i] <= 0x20 || h[i] == 0x7f || h[i] == ',' || h[i] == '/')
			return TDC_FAILF(e, TDC_E_USAGE, "bad character in host", "'%s'", s);
	char *end;
	errno = 0;
	unsigned long v = strtoul(p, &end, 10);
	if (errno || end == p || *end || p[0] == '-' || p[0] == '+' || v == 0 || v > 65535)
		return TDC_FAILF(e, TDC_E_USAGE, "bad port", "'%s'", s);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (uint16_t)v;
	return 0;
}
