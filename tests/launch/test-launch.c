/* SPDX-License-Identifier: Apache-2.0 */
/* lib/launch: QEMU argument vectors (TDX and TCG), quoting, and the relay. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tdcrypt/launch.h"

/* ---- helpers ---- */

static const char *fwd_words[] = { "/usr/bin/tdcrypt", "forward", "127.0.0.1:41234" };

static struct tdc_launch_opts tcg_opts(void)
{
	return (struct tdc_launch_opts){
		.image = "/img/disk.qcow2",
		.image_format = TDC_DISK_QCOW2,
		.firmware = "/usr/share/OVMF/OVMF_CODE_4M.fd",
		.vars = "/tmp/vars.fd",
		.forward_cmd = fwd_words,
		.forward_argc = 3,
		.ssh_port = 2222,
		.serial_log = "/tmp/serial.log",
	};
}

static struct tdc_launch_opts tdx_opts(void)
{
	struct tdc_launch_opts o = tcg_opts();
	o.tdx = true;
	o.vars = NULL;
	o.firmware = "/usr/share/ovmf/OVMF.inteltdx.fd";
	return o;
}

static bool has(const struct tdc_argv *a, const char *s)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->v[i], s))
			return true;
	return false;
}

static bool has_sub(const struct tdc_argv *a, const char *s)
{
	for (size_t i = 0; i < a->n; i++)
		if (strstr(a->v[i], s))
			return true;
	return false;
}

/* The value following option opt (first occurrence), or NULL. */
static const char *after(const struct tdc_argv *a, const char *opt)
{
	for (size_t i = 0; i + 1 < a->n; i++)
		if (!strcmp(a->v[i], opt))
			return a->v[i + 1];
	return NULL;
}

static const char *netdev(const struct tdc_argv *a)
{
	return after(a, "-netdev");
}

/* ---- TCG form ---- */

static void tcg_never_uses_kvm(void **state)
{
	(void)state;
	struct tdc_launch_opts o = tcg_opts();
	struct tdc_argv a = { 0 };
	assert_int_equal(tdc_launch_argv(&o, &a, NULL), 0);
	assert_string_equal(a.v[0], "qemu-system-x86_64");
	assert_null(a.v[a.n]);
	assert_string_equal(after(&a, "-accel"), "tcg");
	assert_string_equal(after(&a, "-cpu"), "max");
	assert_string_equal(after(&a, "-machine"), "q35");
	assert_false(has_sub(&a, "kvm"));
	assert_false(has_sub(&a, "tdx"));
	assert_false(has(&a, "-enable-kvm"));
	assert_false(has(&a, "-bios"));
	assert_true(has(&a, "if=pflash,format=raw,unit=0,readonly=on,file="
			    "/usr/share/OVMF/OVMF_CODE_4M.fd"));
	assert_true(has(&a, "if=pflash,format=raw,unit=1,file=/tmp/vars.fd"));
	tdc_argv_free(&a);
}

static void common_isolation_options(void **state)
{
	(void)state;
	struct tdc_launch_opts forms[2] = { tcg_opts(), tdx_opts() };
	for (int f = 0; f < 2; f++) {
		struct tdc_argv a = { 0 };
		assert_int_equal(tdc_launch_argv(&forms[f], &a, NULL), 0);
		assert_true(has(&a, "-nodefaults"));
		assert_true(has(&a, "-no-user-config"));
		assert_string_equal(after(&a, "-display"), "none");
		assert_true(has(&a, "-no-reboot"));
		assert_string_equal(after(&a, "-monitor"), "none");
		assert_false(has(&a, "-qmp"));
		assert_false(has(&a, "-vnc"));
		assert_false(has(&a, "-gdb"));
		assert_string_equal(netdev(&a),
				    "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,"
				    "guestfwd=tcp:10.0.2.100:50051-cmd:/usr/bin/tdcrypt forward "
				    "127.0.0.1:41234");
		assert_true(has(&a, "virtio-net-pci,netdev=net0,romfile="));
		assert_true(has(&a, "if=none,id=disk0,file=/img/disk.qcow2,format=qcow2,"
				    "cache=writeback"));
		assert_true(has(&a, "virtio-blk-pci,drive=disk0"));
		assert_string_equal(after(&a, "-chardev"), "file,id=serial0,path=/tmp/serial.log");
		assert_string_equal(after(&a, "-serial"), "chardev:serial0");
		tdc_argv_free(&a);
	}
}

static void no_forward_no_ssh_is_fully_isolated(void **state)
{
	(void)state;
	struct tdc_launch_opts o = tcg_opts();
	struct tdc_argv a = { 0 };
	o.forward_cmd = NULL;
	o.forward_argc = 0;
	o.ssh_port = 0;
	o.serial_log = NULL;
	assert_int_equal(tdc_launch_argv(&o, &a, NULL), 0);
	assert_string_equal(netdev(&a), "user,id=net0,restrict=on");
	assert_string_equal(after(&a, "-serial"), "stdio");
	assert_false(has_sub(&a, "hostfwd"));
	assert_false(has_sub(&a, "guestfwd"));
	tdc_argv_free(&a);
}

static void hostfwd_is_loopback_only(void **state)
{
	(void)state;
	struct tdc_launch_opts o = tcg_opts();
	struct tdc_argv a = { 0 };
	o.ssh_port = 65535;
	assert_int_equal(tdc_launch_argv(&o, &a, NULL), 0);
	const char *n = netdev(&a);
	assert_non_null(strstr(n, "hostfwd=tcp:127.0.0.1:65535-:22"));
	/* exactly one hostfwd, and no wildcard form "tcp::PORT" */
	assert_null(strstr(strstr(n, "hostfwd=") + 1, "hostfwd="));
	assert_null(strstr(n, "tcp::"));
	tdc_argv_free(&a);
}

/* ---- TDX form ---- */

static void tdx_form(void **state)
{
	(void)state;
	struct tdc_launch_opts o = tdx_opts();
	struct tdc_argv a = { 0 };
	o.memory_mib = 4096;
	o.cpus = 4;
	assert_int_equal(tdc_launch_argv(&o, &a, NULL), 0);
	assert_string_equal(after(&a, "-accel"), "kvm");
	assert_string_equal(after(&a, "-cpu"), "host");
	assert_string_equal(after(&a, "-machine"),
			    "q35,kernel-irqchip=split,confidential-guest-support=tdx0,"
			    "memory-backend=ram1,smm=off");
	assert_true(has(&a, "{\"qom-type\":\"tdx-guest\",\"id\":\"tdx0\","
			    "\"quote-generation-socket\":{\"type\":\"vsock\",\"cid\":\"2\","
			    "\"port\":\"4050\"}}"));
	assert_true(has(&a, "memory-backend-ram,id=ram1,size=4096M"));
	assert_string_equal(after(&a, "-m"), "4096M");
	assert_string_equal(after(&a, "-smp"), "4");
	assert_string_equal(after(&a, "-bios"), "/usr/share/ovmf/OVMF.inteltdx.fd");
	/* TDVF cannot be pflash; no TCG in a TD */
	assert_false(has_sub(&a, "pflash"));
	assert_false(has_sub(&a, "tcg"));
	tdc_argv_free(&a);
}

static void tdx_qgs_override(void **state)
{
	(void)state;
	struct tdc_launch_opts o = tdx_opts();
	struct tdc_argv a = { 0 };
	o.qgs_cid = 3;
	o.qgs_port = 4051;
	assert_int_equal(tdc_launch_argv(&o, &a, NULL), 0);
	assert_true(has_sub(&a, "\"cid\":\"3\",\"port\":\"4051\""));
	tdc_argv_free(&a);
}

static void direct_kernel_boot(void **state)
{
	(void)state;
	struct tdc_launch_opts forms[2] = { tcg_opts(), tdx_opts() };
	for (int f = 0; f < 2; f++) {
		struct tdc_argv a = { 0 };
		forms[f].kernel = "/k/vmlinuz";
		forms[f].initrd = "/k/initrd.img";
		forms[f].append = "root=/dev/mapper/root console=ttyS0 a,b";
		assert_int_equal(tdc_launch_argv(&forms[f], &a, NULL), 0);
		assert_string_equal(after(&a, "-kernel"), "/k/vmlinuz");
		assert_string_equal(after(&a, "-initrd"), "/k/initrd.img");
		/* -append is not a key=value option: the comma stays single */
		assert_string_equal(after(&a, "-append"), "root=/dev/mapper/root console=ttyS0 a,b");
		tdc_argv_free(&a);
	}
}

/* ---- escaping ---- */

static void commas_doubled_in_option_values(void **state)
{
	(void)state;
	static const char *words[] = { "/opt/a,b/tdcrypt", "forward", "127.0.0.1:1" };
	struct tdc_launch_opts o = tcg_opts();
	struct tdc_argv a = { 0 };
	o.image = "/img/a,b.qcow2";
	o.vars = "/v,ars.fd";
	o.serial_log = "/log,s";
	o.monitor_socket = "/run/m,on.sock";
	o.name = "g,1";
	o.forward_cmd = words;
	assert_int_equal(tdc_launch_argv(&o, &a, NULL), 0);
	assert_true(has_sub(&a, "file=/img/a,,b.qcow2,format=qcow2"));
	assert_true(has(&a, "if=pflash,format=raw,unit=1,file=/v,,ars.fd"));
	assert_true(has(&a, "file,id=serial0,path=/log,,s"));
	assert_true(has(&a, "socket,id=mon0,path=/run/m,,on.sock,server=on,wait=off"));
	assert_true(has(&a, "chardev=mon0,mode=readline"));
	assert_false(has(&a, "-monitor"));
	assert_true(has(&a, "guest=g,,1"));
	assert_non_null(strstr(netdev(&a), "-cmd:/opt/a,,b/tdcrypt forward 127.0.0.1:1"));
	tdc_argv_free(&a);
}

static void forward_words_shell_quoted(void **state)
{
	(void)state;
	static const char *words[] = { "/opt/my dir/tdcrypt", "forward", "it's" };
	struct tdc_launch_opts o = tcg_opts();
	struct tdc_argv a = { 0 };
	o.forward_cmd = words;
	assert_int_equal(tdc_launch_argv(&o, &a, NULL), 0);
	assert_non_null(strstr(netdev(&a), "-cmd:'/opt/my dir/tdcrypt' forward 'it'\\''s'"));
	tdc_argv_free(&a);
}

static void quoting_helpers(void **state)
{
	(void)state;
	char *s;
	s = tdc_qemu_escape(",a,,b,");
	assert_string_equal(s, ",,a,,,,b,,");
	free(s);
	s = tdc_shell_quote("plain/path-1.2_x:y=z,w@h%");
	assert_string_equal(s, "plain/path-1.2_x:y=z,w@h%");
	free(s);
	s = tdc_shell_quote("");
	assert_string_equal(s, "''");
	free(s);
	s = tdc_shell_quote("a b");
	assert_string_equal(s, "'a b'");
	free(s);
	s = tdc_shell_quote("{\"x\":1}");
	assert_string_equal(s, "'{\"x\":1}'");
	free(s);
	s = tdc_shell_quote("'");
	assert_string_equal(s, "''\\'''");
	free(s);
	s = tdc_shell_quote("$(x)");
	assert_string_equal(s, "'$(x)'");
	free(s);

	struct tdc_argv a = { 0 };
	struct tdc_launch_opts o = tcg_opts();
	o.append = "console=ttyS0 x";
	o.kernel = "/k";
	assert_int_equal(tdc_launch_argv(&o, &a, NULL), 0);
	s = tdc_argv_format(&a);
	assert_non_null(strstr(s, "qemu-system-x86_64 -accel tcg -cpu max -machine q35 "));
	assert_non_null(strstr(s, " -append 'console=ttyS0 x'"));
	assert_non_null(strstr(s, " -netdev 'user,id=net0,restrict=on,"));
	free(s);
	tdc_argv_free(&a);
}

static void snapshot_and_readonly(void **state)
{
	(void)state;
	struct tdc_launch_opts o = tcg_opts();
	struct tdc_argv a = { 0 };
	o.snapshot = true;
	o.readonly = true;
	o.image_format = TDC_DISK_RAW;
	o.guest_broker_port = 443;
	o.qemu = "/opt/qemu/bin/qemu-system-x86_64";
	assert_int_equal(tdc_launch_argv(&o, &a, NULL), 0);
	assert_string_equal(a.v[0], "/opt/qemu/bin/qemu-system-x86_64");
	assert_true(has(&a, "if=none,id=disk0,file=/img/disk.qcow2,format=raw,cache=unsafe,"
			    "snapshot=on,readonly=on"));
	assert_true(has_sub(&a, "guestfwd=tcp:10.0.2.100:443-cmd:"));
	tdc_argv_free(&a);
}

/* ---- refusals: each alone ---- */

static void refusals(void **state)
{
	(void)state;
	struct tdc_argv a = { 0 };
	struct tdc_error e;
	struct tdc_launch_opts o;
	static const char *empty[] = { NULL };

#define REFUSE(mutate, why)                                                       \
	do {                                                                      \
		o = tcg_opts();                                                   \
		mutate;                                                           \
		tdc_error_clear(&e);                                              \
		assert_int_equal(tdc_launch_argv(&o, &a, &e), TDC_E_USAGE);       \
		assert_non_null(strstr(e.reason, why));                           \
		assert_null(a.v);                                                 \
	} while (0)
	REFUSE(o.image = NULL, "no disk image");
	REFUSE(o.firmware = NULL, "no firmware");
	REFUSE((o.tdx = true, o.vtpm_socket = "/s"), "TCG form");
	REFUSE(o.vtpm_socket = "/a\nb", "control character");
	REFUSE(o.initrd = "/i", "without a kernel");
	REFUSE(o.append = "x", "without a kernel");
	REFUSE(o.memory_mib = 63, "memory out of range");
	REFUSE(o.memory_mib = TDC_LAUNCH_MAX_MEMORY_MIB + 1, "memory out of range");
	REFUSE(o.cpus = TDC_LAUNCH_MAX_CPUS + 1, "cpus out of range");
	REFUSE((o.forward_cmd = empty, o.forward_argc = 0), "empty forward command");
	REFUSE(o.image_format = (enum tdc_disk_format)7, "unknown disk format");
	REFUSE(o.image = "/img/a\nb", "control character");
	REFUSE(o.serial_log = "/x\x7f", "control character");
	REFUSE((o.kernel = "/k", o.append = "a\tb"), "control character");
	REFUSE(o.image = "", "empty value");
	static const char *bad_words[] = { "/bin/x", "a\nb" };
	REFUSE((o.forward_cmd = bad_words, o.forward_argc = 2), "control character");
#undef REFUSE
	/* TDX needs no vars */
	o = tdx_opts();
	assert_int_equal(tdc_launch_argv(&o, &a, NULL), 0);
	tdc_argv_free(&a);
	/* TCG without vars: the firmware as -bios, as in a TD; a vTPM on its socket */
	o = tcg_opts();
	o.vars = NULL;
	o.firmware = TDC_LAUNCH_OVMF;
	o.vtpm_socket = "/run/v,tpm";
	assert_int_equal(tdc_launch_argv(&o, &a, NULL), 0);
	assert_string_equal(after(&a, "-bios"), TDC_LAUNCH_OVMF);
	assert_false(has_sub(&a, "pflash"));
	assert_true(has(&a, "socket,id=vtpm0,path=/run/v,,tpm"));
	assert_true(has(&a, "emulator,id=tpm0,chardev=vtpm0"));
	assert_true(has(&a, "tpm-tis,tpmdev=tpm0"));
	tdc_argv_free(&a);
	assert_string_equal(tdc_launch_default_firmware(false), TDC_LAUNCH_OVMF);
	assert_int_equal(tdc_launch_argv(NULL, &a, NULL), TDC_E_USAGE);
}

static void hostport(void **state)
{
	(void)state;
	char h[64];
	uint16_t p;
	struct tdc_error e;
	assert_int_equal(tdc_hostport_parse("127.0.0.1:50051", h, sizeof(h), &p, NULL), 0);
	assert_string_equal(h, "127.0.0.1");
	assert_int_equal(p, 50051);
	assert_int_equal(tdc_hostport_parse("8443", h, sizeof(h), &p, NULL), 0);
	assert_string_equal(h, "127.0.0.1");
	assert_int_equal(p, 8443);
	assert_int_equal(tdc_hostport_parse("[::1]:1", h, sizeof(h), &p, NULL), 0);
	assert_string_equal(h, "::1");
	assert_int_equal(p, 1);
	assert_int_equal(tdc_hostport_parse("broker.example:65535", h, sizeof(h), &p, NULL), 0);
	assert_string_equal(h, "broker.example");
	const char *bad[] = { "0", "65536", "x", "", ":80", "h:", "h:-1", "h:+1", "::1:80",
			      "[::1]80", "[]:80", "a b:80", "a,b:80", "h:80x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tdc_error_clear(&e);
		assert_int_equal(tdc_hostport_parse(bad[i], h, sizeof(h), &p, &e), TDC_E_USAGE);
	}
	tdc_error_clear(&e);
	assert_int_equal(tdc_hostport_parse("abcdefgh:1", h, 8, &p, &e), TDC_E_USAGE);
	assert_non_null(strstr(e.reason, "too long"));
}

static void detect_format(void **state)
{
	(void)state;
	char path[] = "/tmp/tdc-launch-fmt.XXXXXX";
	enum tdc_disk_format f;
	struct tdc_error e;
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(tdc_disk_format_detect(path, &f, NULL), 0);
	assert_int_equal(f, TDC_DISK_RAW); /* empty file */
	assert_int_equal(write(fd, "QFI\xfb\0\0\0\3", 8), 8);
	assert_int_equal(tdc_disk_format_detect(path, &f, NULL), 0);
	assert_int_equal(f, TDC_DISK_QCOW2);
	assert_int_equal(pwrite(fd, "QFI\xfa", 4, 0), 4);
	assert_int_equal(tdc_disk_format_detect(path, &f, NULL), 0);
	assert_int_equal(f, TDC_DISK_RAW);
	close(fd);
	unlink(path);
	tdc_error_clear(&e);
	assert_int_equal(tdc_disk_format_detect(path, &f, &e), TDC_E_IO);
	assert_string_equal(tdc_disk_format_name(TDC_DISK_QCOW2), "qcow2");
}

/* ---- relay ---- */

struct server {
	int lfd;
	size_t expect;     /* bytes to read before replying (then EOF expected) */
	bool upper;        /* reply with the data upper-cased */
	bool hold;         /* accept and then stay silent until the test closes */
	size_t got;
	bool saw_eof;
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	int c = accept(s->lfd, NULL, NULL);
	if (c < 0)
		return NULL;
	size_t cap = s->expect + 1;
	char *buf = malloc(cap);
	ssize_t r = -1;
	while (buf && (r = read(c, buf + s->got, cap - s->got)) > 0)
		s->got += (size_t)r;
	s->saw_eof = r == 0;
	if (buf && !s->hold) {
		for (size_t i = 0; s->upper && i < s->got; i++)
			if (buf[i] >= 'a' && buf[i] <= 'z')
				buf[i] = (char)(buf[i] - 32);
		size_t off = 0;
		while (off < s->got && (r = write(c, buf + off, s->got - off)) > 0)
			off += (size_t)r;
	}
	free(buf);
	close(c);
	return NULL;
}

static uint16_t listen_any(int *lfd)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	*lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(*lfd >= 0);
	assert_int_equal(bind(*lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(*lfd, 4), 0);
	assert_int_equal(getsockname(*lfd, (struct sockaddr *)&sa, &sl), 0);
	return ntohs(sa.sin_port);
}

struct relay_arg {
	int in, out, sock;
	uint32_t idle;
	int rc;
	struct tdc_error e;
};

static void *relay_main(void *arg)
{
	struct relay_arg *r = arg;
	tdc_error_clear(&r->e);
	r->rc = tdc_relay_run(r->in, r->out, r->sock, r->idle, &r->e);
	return NULL;
}

/* One relayed exchange of n bytes: the test side plays QEMU's end of stdio. */
static void relay_roundtrip(size_t n)
{
	int lfd, sp[2], sock;
	pthread_t st, rt;
	struct server s = { .expect = n, .upper = true };
	uint16_t port = listen_any(&lfd);
	s.lfd = lfd;
	assert_int_equal(pthread_create(&st, NULL, server_main, &s), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(tdc_relay_connect("127.0.0.1", port, 2000, &sock, NULL), 0);
	/* like libslirp: stdin and stdout are the same socket */
	struct relay_arg ra = { .in = sp[0], .out = sp[0], .sock = sock, .idle = 10000 };
	assert_int_equal(pthread_create(&rt, NULL, relay_main, &ra), 0);

	char *data = malloc(n), *back = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)('a' + i % 26);
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(sp[1], data + off, n - off);
		assert_true(w > 0);
		off += (size_t)w;
	}
	assert_int_equal(shutdown(sp[1], SHUT_WR), 0);
	size_t got = 0;
	ssize_t r;
	while ((r = read(sp[1], back + got, n + 1 - got)) > 0)
		got += (size_t)r;
	assert_int_equal(r, 0); /* EOF passed back after the server closed */
	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(back[i], data[i] - 32);
	pthread_join(rt, NULL);
	pthread_join(st, NULL);
	assert_int_equal(ra.rc, 0);
	assert_true(s.saw_eof);
	assert_int_equal(s.got, n);
	free(data);
	free(back);
	close(sp[0]);
	close(sp[1]);
	close(sock);
	close(lfd);
}

static void relay_small_exchange(void **state)
{
	(void)state;
	relay_roundtrip(5);
}

static void relay_large_exchange(void **state)
{
	(void)state;
	relay_roundtrip(3u << 20); /* far beyond the 16 KiB buffers and socket buffers */
}

static void relay_idle_timeout(void **state)
{
	(void)state;
	int lfd, sp[2], sock;
	pthread_t st;
	struct server s = { .expect = 16, .hold = true };
	uint16_t port = listen_any(&lfd);
	s.lfd = lfd;
	assert_int_equal(pthread_create(&st, NULL, server_main, &s), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(tdc_relay_connect("127.0.0.1", port, 2000, &sock, NULL), 0);
	struct relay_arg ra = { .in = sp[0], .out = sp[0], .sock = sock, .idle = 150 };
	relay_main(&ra); /* nobody sends anything */
	assert_int_equal(ra.rc, TDC_E_IO);
	assert_non_null(strstr(ra.e.reason, "idle timeout"));
	close(sock); /* the server sees EOF and ends */
	pthread_join(st, NULL);
	close(sp[0]);
	close(sp[1]);
	close(lfd);
}

static void relay_connect_refused(void **state)
{
	(void)state;
	int lfd, sock = -1;
	struct tdc_error e;
	uint16_t port = listen_any(&lfd);
	close(lfd); /* nothing listens on port any more */
	tdc_error_clear(&e);
	assert_int_equal(tdc_relay_connect("127.0.0.1", port, 2000, &sock, &e), TDC_E_IO);
	assert_non_null(strstr(e.reason, "cannot connect"));
	assert_int_equal(tdc_relay_connect(NULL, 1, 0, &sock, NULL), TDC_E_USAGE);
	assert_int_equal(tdc_relay_run(-1, 1, 2, 10, NULL), TDC_E_USAGE);
}

static void relay_server_reset(void **state)
{
	(void)state;
	int lfd, sp[2], sock;
	uint16_t port = listen_any(&lfd);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(tdc_relay_connect("127.0.0.1", port, 2000, &sock, NULL), 0);
	int c = accept(lfd, NULL, NULL);
	assert_true(c >= 0);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	assert_int_equal(write(sp[1], "x", 1), 1);
	/* RST with unread data pending */
	assert_int_equal(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	usleep(50000);
	close(c);
	struct relay_arg ra = { .in = sp[0], .out = sp[0], .sock = sock, .idle = 2000 };
	relay_main(&ra);
	assert_int_equal(ra.rc, TDC_E_IO);
	close(sp[0]);
	close(sp[1]);
	close(sock);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tcg_never_uses_kvm),
		cmocka_unit_test(common_isolation_options),
		cmocka_unit_test(no_forward_no_ssh_is_fully_isolated),
		cmocka_unit_test(hostfwd_is_loopback_only),
		cmocka_unit_test(tdx_form),
		cmocka_unit_test(tdx_qgs_override),
		cmocka_unit_test(direct_kernel_boot),
		cmocka_unit_test(commas_doubled_in_option_values),
		cmocka_unit_test(forward_words_shell_quoted),
		cmocka_unit_test(quoting_helpers),
		cmocka_unit_test(snapshot_and_readonly),
		cmocka_unit_test(refusals),
		cmocka_unit_test(hostport),
		cmocka_unit_test(detect_format),
		cmocka_unit_test(relay_small_exchange),
		cmocka_unit_test(relay_large_exchange),
		cmocka_unit_test(relay_idle_timeout),
		cmocka_unit_test(relay_connect_refused),
		cmocka_unit_test(relay_server_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
