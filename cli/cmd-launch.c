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

#include <openssl/evp.h>

#include "cli.h"
#include "tdcrypt/image.h"
#include "tdcrypt/launch.h"
#include "tdcrypt/policy.h"
#include "util/util.h"

struct args {
	struct tdc_launch_opts o;
	const char *format, *vars_template, *broker_forward, *policy, *boot;
	bool print, tdx_set, no_vtpm;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tdcrypt launch --image DISK [--tdx | --no-tdx] [options]\n"
		"  --tdx             a TD on QEMU >= 10.1 with KVM (default)\n"
		"  --no-tdx          TCG emulation with OVMF and a vTPM (the quote simulator's TD),\n"
		"                    for tests and demos (never KVM)\n"
		"  --policy FILE     take the firmware, boot path, target and memory from the\n"
		"                    policy's reference block (tdcrypt policy from-image), and\n"
		"                    refuse a firmware file whose SHA-256 differs from it\n"
		"  --memory SIZE     guest memory, e.g. 2G, 1536M (default 2G)\n"
		"  --cpus N          vCPUs (default 2)\n"
		"  --firmware FILE   TDX: TDVF (OVMF.inteltdx.fd, searched in /usr/share);\n"
		"                    no-TDX: default " TDC_LAUNCH_OVMF " (as -bios)\n"
		"  --vars FILE       no-TDX: OVMF code (--firmware) + writable vars as pflash\n"
		"                    (created from the template if missing)\n"
		"  --vars-template F default " TDC_LAUNCH_OVMF_VARS "\n"
		"  --no-vtpm         no-TDX: no vTPM (then the simulator has no measurements)\n"
		"  --boot uefi|direct  uefi (default): the firmware boots the disk's loader;\n"
		"                    direct: QEMU -kernel/-initrd/-append with what the disk's GRUB\n"
		"                    would boot (its default entry, read from the clear /boot)\n"
		"  --kernel K [--initrd I] [--append CMDLINE]   direct kernel boot of these files\n"
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
		} else if (!strcmp(s, "--no-vtpm")) {
			a->no_vtpm = true;
		} else if (OPT("--policy")) {
			a->policy = v;
		} else if (OPT("--boot")) {
			if (strcmp(v, "uefi") && strcmp(v, "direct")) {
				fprintf(stderr, "tdcrypt: launch: --boot uefi|direct\n");
				return -1;
			}
			a->boot = v;
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
	if (a->boot && !strcmp(a->boot, "direct") && a->o.kernel) {
		fprintf(stderr, "tdcrypt: launch: --boot direct takes the kernel from the image; "
				"--kernel is another way\n");
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

/* An already-unlinked file holding data, as /dev/fd/N for QEMU (which inherits it). */
static int fd_file(const uint8_t *data, size_t len, char *path, size_t cap)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR, 0600); /* not O_CLOEXEC: QEMU opens /dev/fd/N */
	size_t done = 0;
	while (fd >= 0 && done < len) {
		ssize_t w = write(fd, data + done, len - done);
		if (w <= 0) {
			close(fd);
			fd = -1;
			break;
		}
		done += (size_t)w;
	}
	if (fd < 0) {
		fprintf(stderr, "tdcrypt: launch: cannot write a temporary file in %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	snprintf(path, cap, "/dev/fd/%d", fd);
	return 0;
}

/* --policy: firmware, boot path, target and memory as the reference values were made. */
static int follow_policy(struct args *a)
{
	uint8_t *buf, *fw;
	size_t len, fw_len;
	struct tdc_error e = { 0 };
	struct tdc_policy *p;
	struct tdc_policy_reference r;
	static char firmware[512];

	if (tdc_file_read(a->policy, TDC_MAX_POLICY_JSON, &buf, &len, &e) < 0 ||
	    tdc_policy_parse((const char *)buf, len, &p, &e) < 0) {
		free(buf);
		cli_print_error("launch: --policy", &e);
		return -1;
	}
	free(buf);
	tdc_policy_get_reference(p, &r);
	tdc_policy_free(p);
	if (!r.present || !r.firmware[0] || !r.firmware_sha256[0]) {
		fprintf(stderr, "tdcrypt: launch: %s has no reference block with the firmware "
				"(make it with tdcrypt policy from-image)\n", a->policy);
		return -1;
	}
	snprintf(firmware, sizeof(firmware), "%s", r.firmware);
	if (a->o.firmware && strcmp(a->o.firmware, firmware)) {
		fprintf(stderr, "tdcrypt: launch: --firmware %s, but the policy was made for %s\n",
			a->o.firmware, firmware);
		return -1;
	}
	a->o.firmware = firmware;
	if (tdc_file_read(firmware, TDC_TDVF_MAX_IMAGE, &fw, &fw_len, &e) < 0) {
		cli_print_error("launch: firmware", &e);
		return -1;
	}
	uint8_t d[32];
	unsigned int dl;
	char hex[65];
	EVP_Digest(fw, fw_len, d, &dl, EVP_sha256(), NULL);
	free(fw);
	if (strcasecmp(tdc_hex_encode(d, sizeof(d), hex), r.firmware_sha256)) {
		fprintf(stderr, "tdcrypt: launch: %s changed since the policy was made (sha256 %s, "
				"policy %s): the TD would not match its reference values\n",
			firmware, hex, r.firmware_sha256);
		return -1;
	}
	bool tdx = strcmp(r.target, "sim") != 0;
	if (a->tdx_set && a->o.tdx != tdx) {
		fprintf(stderr, "tdcrypt: launch: the policy is for target %s\n", r.target);
		return -1;
	}
	a->o.tdx = tdx;
	if (r.boot[0] && !a->boot)
		a->boot = !strcmp(r.boot, "direct") ? "direct" : "uefi";
	if (r.memory_mib && !a->o.memory_mib)
		a->o.memory_mib = r.memory_mib;
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
	struct tdc_vtpm vtpm;
	char self[PATH_MAX], target[300], kernel_fd[32], initrd_fd[32];
	static char append[4096];
	const char *fwd[3];
	uint16_t port;

	if (parse_args(argc, argv, &a) < 0) {
		usage(stderr);
		return TDC_EXIT_BAD_INPUT;
	}
	if (a.policy && follow_policy(&a) < 0)
		return TDC_EXIT_BAD_INPUT;
	if (a.format) {
		a.o.image_format = !strcmp(a.format, "qcow2") ? TDC_DISK_QCOW2 : TDC_DISK_RAW;
	} else if (tdc_disk_format_detect(a.o.image, &a.o.image_format, &e) < 0) {
		cli_print_error("launch", &e);
		return cli_exit_for(e.code);
	}
	if (!a.o.firmware)
		a.o.firmware = tdc_launch_default_firmware(a.o.tdx);
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

	if (a.boot && !strcmp(a.boot, "direct")) {
		/* what the image's GRUB would boot: the same extraction tdcrypt measure uses */
		struct tdc_direct_boot db;
		if (tdc_image_direct_boot(a.o.image, &db, &e) < 0) {
			cli_print_error("launch: --boot direct", &e);
			return cli_exit_for(e.code);
		}
		snprintf(append, sizeof(append), "%s", db.cmdline);
		int r = fd_file(db.kernel, db.kernel_len, kernel_fd, sizeof(kernel_fd));
		if (r == 0 && db.initrd)
			r = fd_file(db.initrd, db.initrd_len, initrd_fd, sizeof(initrd_fd));
		if (r < 0) {
			tdc_direct_boot_free(&db);
			return TDC_EXIT_INTERNAL;
		}
		a.o.kernel = kernel_fd;
		a.o.initrd = db.initrd ? initrd_fd : NULL;
		a.o.append = append;
		tdc_direct_boot_free(&db);
	}
	bool want_vtpm = !a.o.tdx && !a.no_vtpm;
	if (a.print) {
		if (!a.o.tdx && a.o.vars)
			printf("# first: cp %s %s\n", a.vars_template, a.o.vars);
		if (want_vtpm) {
			printf("# first: swtpm_setup --tpm2 --pcr-banks sha384 --tpmstate DIR; "
			       "swtpm socket --tpm2 --tpmstate dir=DIR --ctrl type=unixio,path=DIR/ctrl "
			       "--terminate &\n");
			a.o.vtpm_socket = "DIR/ctrl";
		}
	} else {
		if (!readable(a.o.firmware)) {
			fprintf(stderr, "tdcrypt: launch: firmware %s not readable%s\n", a.o.firmware,
				a.o.tdx ? " (give the TDVF image with --firmware)"
					: " (apt-get install ovmf)");
			return TDC_EXIT_BAD_INPUT;
		}
		if (!a.o.tdx && a.o.vars && create_vars(a.vars_template, a.o.vars) < 0)
			return TDC_EXIT_BAD_INPUT;
		if (want_vtpm) {
			if (tdc_vtpm_start(&vtpm, &e) < 0) {
				cli_print_error("launch: vTPM", &e);
				return TDC_EXIT_BAD_INPUT;
			}
			a.o.vtpm_socket = vtpm.socket;
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
