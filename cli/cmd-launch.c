/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt launch --image DISK [--tdx | --no-tdx] [...]: start (or --print) the
 * QEMU command line for an encrypted guest; the argument vector comes from
 * lib/launch and is exec'd directly, never through a shell.
 * tdcrypt forward HOST:PORT: the stdio <-> TCP relay QEMU's guestfwd runs for
 * each guest connection to the broker address. It must stay silent (its
 * stderr is the guest's connection too).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "tdcrypt/launch.h"

/* Where distributions put TDVF (the OVMF build with TDX support). */
static const char *const tdvf_paths[] = {
	"/usr/share/ovmf/OVMF.inteltdx.fd",          /* Ubuntu (canonical/tdx) */
	"/usr/share/edk2/ovmf/OVMF.inteltdx.fd",     /* Fedora, CentOS Stream */
	"/usr/share/qemu/OVMF.inteltdx.fd",
	"/usr/share/OVMF/OVMF.inteltdx.fd",
};

struct args {
	struct tdc_launch_opts o;
	const char *format, *vars_template, *broker_forward;
	bool print, tdx_set;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tdcrypt launch --image DISK [--tdx | --no-tdx] [options]\n"
		"  --tdx             a TD on QEMU >= 10.1 with KVM (default)\n"
		"  --no-tdx          TCG emulation with OVMF, for tests and demos (never KVM)\n"
		"  --memory SIZE     guest memory, e.g. 2G, 1536M (default 2G)\n"
		"  --cpus N          vCPUs (default 2)\n"
		"  --firmware FILE   TDX: TDVF (OVMF.inteltdx.fd, searched in /usr/share);\n"
		"                    no-TDX: OVMF code (default " TDC_LAUNCH_OVMF_CODE ")\n"
		"  --vars FILE       no-TDX: writable OVMF vars (created from the template if\n"
		"                    missing; default: a private copy that disappears with QEMU)\n"
		"  --vars-template F default " TDC_LAUNCH_OVMF_VARS "\n"
		"  --kernel K [--initrd I] [--append CMDLINE]   direct kernel boot\n"
		"  --broker-forward [HOST:]PORT   the guest's " TDC_LAUNCH_GUEST_BROKER_ADDR
		":50051 reaches the broker\n"
		"                    there (HOST default 127.0.0.1) through `tdcrypt forward`;\n"
		"                    nothing else is reachable (restrict=on)\n"
		"  --guest-broker-port N   guest-side port of that forward (default 50051)\n"
		"  --ssh-port N      forward 127.0.0.1:N to the guest's port 22\n"
		"  --serial-log FILE serial console to FILE (default: stdio)\n"
		"  --monitor-socket PATH   QEMU monitor on a Unix socket (default: none)\n"
		"  --format raw|qcow2      disk format (default: detected)\n"
		"  --snapshot        discard the guest's disk writes\n"
		"  --qemu PATH       default " TDC_LAUNCH_QEMU "\n"
		"  --name NAME       guest name\n"
		"  --print           print the command line (shell-quoted) instead of running it\n"
		"usage: tdcrypt forward [HOST:]PORT   (stdio <-> TCP relay, used by --broker-forward)\n");
}

/* "2G", "1536M", "1536" (MiB) */
static int parse_mem(const char *s, uint32_t *mib)
{
	char num[32];
	size_t n = strlen(s);
	uint32_t mult = 1;
	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	if (num[n - 1] == 'G' || num[n - 1] == 'g') {
		mult = 1024;
		num[n - 1] = '\0';
	} else if (num[n - 1] == 'M' || num[n - 1] == 'm') {
		num[n - 1] = '\0';
	}
	uint32_t v;
	if (cli_parse_u32(num, 1, TDC_LAUNCH_MAX_MEMORY_MIB / mult, &v) < 0)
		return -1;
	*mib = v * mult;
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	a->o.tdx = true;
	a->vars_template = TDC_LAUNCH_OVMF_VARS;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint32_t u;
#define OPT(name) (!strcmp(s, name) && v && ++i)
		if (!strcmp(s, "--tdx") || !strcmp(s, "--no-tdx")) {
			if (a->tdx_set && a->o.tdx != !strcmp(s, "--tdx")) {
				fprintf(stderr, "tdcrypt: launch: --tdx and --no-tdx conflict\n");
				return -1;
			}
			a->o.tdx = !strcmp(s, "--tdx");
			a->tdx_set = true;
		} else if (!strcmp(s, "--print")) {
			a->print = true;
		} else if (!strcmp(s, "--snapshot")) {
			a->o.snapshot = true;
		} else if (OPT("--image")) {
			a->o.image = v;
		} else if (OPT("--format")) {
			a->format = v;
		} else if (OPT("--memory")) {
			if (parse_mem(v, &a->o.memory_mib) < 0 || a->o.memory_mib < 64) {
				fprintf(stderr, "tdcrypt: launch: bad --memory '%s'\n", v);
				return -1;
			}
		} else if (OPT("--cpus")) {
			if (cli_parse_u32(v, 1, TDC_LAUNCH_MAX_CPUS, &a->o.cpus) < 0) {
				fprintf(stderr, "tdcrypt: launch: bad --cpus '%s'\n", v);
				return -1;
			}
		} else if (OPT("--firmware")) {
			a->o.firmware = v;
		} else if (OPT("--vars")) {
			a->o.vars = v;
		} else if (OPT("--vars-template")) {
			a->vars_template = v;
		} else if (OPT("--kernel")) {
			a->o.kernel = v;
		} else if (OPT("--initrd")) {
			a->o.initrd = v;
		} else if (OPT("--append")) {
			a->o.append = v;
		} else if (OPT("--broker-forward")) {
			a->broker_forward = v;
		} else if (OPT("--guest-broker-port")) {
			if (cli_parse_u32(v, 1, 65535, &u) < 0) {
				fprintf(stderr, "tdcrypt: launch: bad --guest-broker-port '%s'\n", v);
				return -1;
			}
			a->o.guest_broker_port = (uint16_t)u;
		} else if (OPT("--ssh-port")) {
			if (cli_parse_u32(v, 1, 65535, &u) < 0) {
				fprintf(stderr, "tdcrypt: launch: bad --ssh-port '%s'\n", v);
				return -1;
			}
			a->o.ssh_port = (uint16_t)u;
		} else if (OPT("--serial-log")) {
			a->o.serial_log = v;
		} else if (OPT("--monitor-socket")) {
			a->o.monitor_socket = v;
		} else if (OPT("--qemu")) {
			a->o.qemu = v;
		} else if (OPT("--name")) {
			a->o.name = v;
		} else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			usage(stdout);
			exit(TDC_EXIT_OK);
		} else {
			fprintf(stderr, "tdcrypt: launch: unknown or incomplete option '%s'\n", s);
			return -1;
		}
#undef OPT
	}
	if (!a->o.image) {
		fprintf(stderr, "tdcrypt: launch: --image is required\n");
		return -1;
	}
	if (a->o.tdx && a->o.vars) {
		fprintf(stderr, "tdcrypt: launch: --vars is for --no-tdx (TDVF has no pflash)\n");
		return -1;
	}
	if (a->format && strcmp(a->format, "raw") && strcmp(a->format, "qcow2")) {
		fprintf(stderr, "tdcrypt: launch: --format must be raw or qcow2\n");
		return -1;
	}
	return 0;
}

/* A private, already-unlinked copy of the vars template, as /dev/fd/N for QEMU. */
static int private_vars(const char *tmpl, char *path, size_t cap)
{
	int in = open(tmpl, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		fprintf(stderr, "tdcrypt: launch: cannot open %s: %s (apt-get install ovmf)\n",
			tmpl, strerror(errno));
		return -1;
	}
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	/* not O_CLOEXEC: QEMU inherits it and opens /dev/fd/N */
	int out = open(dir, O_TMPFILE | O_RDWR, 0600);
	char buf[65536];
	ssize_t r = 0;
	while (out >= 0 && (r = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)r) != r) {
			r = -1;
			break;
		}
	close(in);
	if (out < 0 || r < 0) {
		fprintf(stderr, "tdcrypt: launch: cannot make a vars copy in %s: %s\n", dir,
			strerror(errno));
		if (out >= 0)
			close(out);
		return -1;
	}
	snprintf(path, cap, "/dev/fd/%d", out);
	return 0;
}

/* --vars FILE that does not exist yet: a 0600 copy of the template. */
static int create_vars(const char *tmpl, const char *path)
{
	if (access(path, F_OK) == 0)
		return 0;
	int in = open(tmpl, O_RDONLY | O_CLOEXEC);
	int out = in < 0 ? -1 : open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	char buf[65536];
	ssize_t r = 0;
	while (out >= 0 && (r = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)r) != r) {
			r = -1;
			break;
		}
	int err = errno;
	if (in >= 0)
		close(in);
	if (out < 0 || r < 0 || close(out) < 0) {
		fprintf(stderr, "tdcrypt: launch: cannot create %s from %s: %s\n", path, tmpl,
			strerror(err));
		if (out >= 0)
			unlink(path);
		return -1;
	}
	return 0;
}

static bool readable(const char *p)
{
	return access(p, R_OK) == 0;
}

int cmd_launch(int argc, char **argv)
{
	struct args a;
	struct tdc_error e = { 0 };
	struct tdc_argv qv = { 0 };
	char self[PATH_MAX], vars_fd[32], target[300];
	const char *fwd[3];
	uint16_t port;

	if (parse_args(argc, argv, &a) < 0) {
		usage(stderr);
		return TDC_EXIT_BAD_INPUT;
	}
	if (a.format) {
		a.o.image_format = !strcmp(a.format, "qcow2") ? TDC_DISK_QCOW2 : TDC_DISK_RAW;
	} else if (tdc_disk_format_detect(a.o.image, &a.o.image_format, &e) < 0) {
		cli_print_error("launch", &e);
		return cli_exit_for(e.code);
	}
	if (!a.o.firmware && a.o.tdx) {
		a.o.firmware = tdvf_paths[0];
		for (size_t i = 0; i < sizeof(tdvf_paths) / sizeof(tdvf_paths[0]); i++)
			if (readable(tdvf_paths[i])) {
				a.o.firmware = tdvf_paths[i];
				break;
			}
	} else if (!a.o.firmware) {
		a.o.firmware = TDC_LAUNCH_OVMF_CODE;
	}
	if (a.broker_forward) {
		char host[256];
		if (tdc_hostport_parse(a.broker_forward, host, sizeof(host), &port, &e) < 0) {
			cli_print_error("launch: --broker-forward", &e);
			return TDC_EXIT_BAD_INPUT;
		}
		/* QEMU runs this program for every guest connection. */
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0) {
			fprintf(stderr, "tdcrypt: launch: cannot find own executable\n");
			return TDC_EXIT_INTERNAL;
		}
		self[n] = '\0';
		snprintf(target, sizeof(target), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
			 port);
		fwd[0] = self;
		fwd[1] = "forward";
		fwd[2] = target;
		a.o.forward_cmd = fwd;
		a.o.forward_argc = 3;
	}

	if (a.print) {
		if (!a.o.tdx && !a.o.vars) {
			printf("# first: cp %s vars.fd\n", a.vars_template);
			a.o.vars = "vars.fd";
		}
	} else {
		if (!readable(a.o.firmware)) {
			fprintf(stderr, "tdcrypt: launch: firmware %s not readable%s\n", a.o.firmware,
				a.o.tdx ? " (give the TDVF image with --firmware)"
					: " (apt-get install ovmf)");
			return TDC_EXIT_BAD_INPUT;
		}
		if (!a.o.tdx && !a.o.vars) {
			if (private_vars(a.vars_template, vars_fd, sizeof(vars_fd)) < 0)
				return TDC_EXIT_BAD_INPUT;
			a.o.vars = vars_fd;
		} else if (!a.o.tdx && create_vars(a.vars_template, a.o.vars) < 0) {
			return TDC_EXIT_BAD_INPUT;
		}
	}

	if (tdc_launch_argv(&a.o, &qv, &e) < 0) {
		cli_print_error("launch", &e);
		return cli_exit_for(e.code);
	}
	if (a.print) {
		char *s = tdc_argv_format(&qv);
		if (!s) {
			tdc_argv_free(&qv);
			fprintf(stderr, "tdcrypt: launch: out of memory\n");
			return TDC_EXIT_INTERNAL;
		}
		printf("%s\n", s);
		free(s);
		tdc_argv_free(&qv);
		return TDC_EXIT_OK;
	}
	fflush(NULL);
	execvp(qv.v[0], qv.v);
	fprintf(stderr, "tdcrypt: launch: cannot run %s: %s\n", qv.v[0], strerror(errno));
	tdc_argv_free(&qv);
	return TDC_EXIT_INTERNAL;
}

int cmd_forward(int argc, char **argv)
{
	struct tdc_error e = { 0 };
	char host[256];
	uint16_t port;
	int sock;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: tdcrypt forward [HOST:]PORT\n"
		       "  copies stdin to a TCP connection to HOST:PORT (default host 127.0.0.1) and\n"
		       "  the connection to stdout; run by QEMU's guestfwd (tdcrypt launch\n"
		       "  --broker-forward). Prints nothing, ever: its stderr is the guest's socket.\n");
		return TDC_EXIT_OK;
	}
	/* Nothing may reach fd 2: it is the guest's connection (see the header). */
	if (argc != 2 || tdc_hostport_parse(argv[1], host, sizeof(host), &port, &e) < 0)
		return TDC_EXIT_BAD_INPUT;
	signal(SIGPIPE, SIG_IGN);
	if (tdc_relay_connect(host, port, TDC_RELAY_CONNECT_MS, &sock, &e) < 0)
		return TDC_EXIT_INTERNAL;
	int rc = tdc_relay_run(STDIN_FILENO, STDOUT_FILENO, sock, TDC_RELAY_IDLE_MS, &e);
	close(sock);
	return rc < 0 ? TDC_EXIT_INTERNAL : TDC_EXIT_OK;
}
