/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt-agent: runs in the initramfs, fetches the disk key from a broker over
 * RA-TLS and unlocks the LUKS2 root. All logic is in lib/agent; this file reads
 * the options, prints, and maps the result to the exit code (agent/README.md).
 */
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tdcrypt/agent.h"

struct out {
	bool debug;
	struct timespec start;
};

static double since(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void on_log(void *arg, int level, const char *msg)
{
	struct out *o = arg;
	if (level == 0 || o->debug)
		fprintf(stderr, "tdcrypt-agent: %s\n", msg);
}

/* One line per milestone, on the monotonic clock, for the boot-latency benchmark. */
static void on_mark(void *arg, const char *event)
{
	struct out *o = arg;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!strcmp(event, "start"))
		o->start = now;
	fprintf(stderr,
		"tdcrypt-agent: timestamp event=%s monotonic=%lld.%06ld since_start_ms=%.3f\n",
		event, (long long)now.tv_sec, now.tv_nsec / 1000, since(&o->start, &now));
}

/* sd_notify(3)'s READY=1 without libsystemd: one datagram to $NOTIFY_SOCKET (a path, or
 * "@name" for an abstract address). Nothing to do outside a Type=notify unit. */
static void on_ready(void *arg)
{
	const char *s = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static const char msg[] = "READY=1\nSTATUS=serving the disk key once\n";
	(void)arg;
	if (!s || (s[0] != '/' && s[0] != '@') || strlen(s) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, s, strlen(s));
	if (s[0] == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(s))) < 0)
		fprintf(stderr, "tdcrypt-agent: cannot notify systemd\n");
	close(fd);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tdcrypt-agent [--config FILE] [--cmdline FILE] [--no-activate]\n"
		"                     [--serve-key SOCKET | --crypttab SOCKET] [--debug]\n"
		"  --config FILE   agent config (default " TDC_AGENT_DEFAULT_CONFIG ")\n"
		"  --cmdline FILE  kernel command line for tdcrypt.* overrides "
		"(default " TDC_AGENT_DEFAULT_CMDLINE ")\n"
		"  --no-activate   check the header and the key, map nothing\n"
		"  --serve-key SOCKET  check the header and the key, then serve the key once to\n"
		"                  systemd-cryptsetup (crypttab key file SOCKET), map nothing\n"
		"  --crypttab SOCKET  print the volume's crypttab line with key file SOCKET, exit\n"
		"exit codes: 0 ok, 2 config, 3 no quote, 4 no network, 5 denied, 6 bad broker,\n"
		"            7 bad LUKS header, 8 unlock failed, 9 internal\n");
}

static int read_cmdline(const char *path, struct tdc_agent_config *c, bool explicit_path)
{
	struct tdc_error e = {0};
	char buf[512];
	FILE *f = fopen(path, "re");
	if (!f) {
		if (explicit_path) {
			fprintf(stderr, "tdcrypt-agent: config: cannot read %s\n", path);
			return -1;
		}
		return 0; /* no /proc: no overrides */
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&line, &cap, '\0', f);
	fclose(f);
	int rc = n > 0 ? tdc_agent_config_cmdline(c, line, (size_t)n, &e) : 0;
	free(line);
	if (rc < 0)
		fprintf(stderr, "tdcrypt-agent: config: kernel command line: %s\n",
			tdc_error_format(&e, buf, sizeof(buf)));
	return rc;
}

int main(int argc, char **argv)
{
	const char *config = TDC_AGENT_DEFAULT_CONFIG, *cmdline = NULL, *crypttab = NULL;
	struct tdc_agent_run_opts ro = {0};
	struct tdc_agent_config c;
	struct tdc_error e = {0};
	struct out o = {0};
	struct tdc_agent_events ev = {.log = on_log, .mark = on_mark, .ready = on_ready,
				      .arg = &o};
	char buf[512];
	bool debug = false;

	clock_gettime(CLOCK_MONOTONIC, &o.start);
	/* OpenSSL writes to the socket with write(): a broker that resets the connection
	 * mid-request must be a failed attempt (retried), not a SIGPIPE that ends the boot */
	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc) {
			config = argv[++i];
		} else if (!strcmp(argv[i], "--cmdline") && i + 1 < argc) {
			cmdline = argv[++i];
		} else if (!strcmp(argv[i], "--crypttab") && i + 1 < argc) {
			crypttab = argv[++i];
		} else if (!strcmp(argv[i], "--serve-key") && i + 1 < argc) {
			ro.serve_socket = argv[++i];
		} else if (!strcmp(argv[i], "--no-activate")) {
			ro.no_activate = true;
		} else if (!strcmp(argv[i], "--debug")) {
			debug = true;
		} else if (!strcmp(argv[i], "--version")) {
			printf("tdcrypt-agent %s\n", TDC_AGENT_VERSION);
			return 0;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return TDC_AGENT_EXIT_CONFIG;
		}
	}
	if (tdc_agent_config_load(config, &c, &e) < 0) {
		fprintf(stderr, "tdcrypt-agent: config: %s: %s\n", config,
			tdc_error_format(&e, buf, sizeof(buf)));
		return TDC_AGENT_EXIT_CONFIG;
	}
	if (crypttab) { /* for the initramfs generator: no run */
		int rc = tdc_keysock_crypttab_line(&c, crypttab, buf, sizeof(buf), &e);
		if (rc == 0)
			fputs(buf, stdout);
		else
			fprintf(stderr, "tdcrypt-agent: config: %s\n",
				tdc_error_format(&e, buf, sizeof(buf)));
		tdc_agent_config_free(&c);
		return rc == 0 ? 0 : TDC_AGENT_EXIT_CONFIG;
	}
	if (read_cmdline(cmdline ? cmdline : TDC_AGENT_DEFAULT_CMDLINE, &c, cmdline != NULL) < 0) {
		tdc_agent_config_free(&c);
		return TDC_AGENT_EXIT_CONFIG;
	}
	o.debug = debug || c.debug;

	int code = tdc_agent_run(&c, &ro, tdc_agent_real_clock(), &ev);
	fprintf(stderr, "tdcrypt-agent: exit %d (%s)\n", code, tdc_agent_exit_name(code));
	tdc_agent_config_free(&c);
	return code;
}
