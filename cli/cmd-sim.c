/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt sim init DIR [--days N]: a simulator directory (test PKI, matching
 *   collateral bundle, sim root PEM, baseline TD measurements; agent/README.md).
 * tdcrypt sim quote --dir DIR --report-data HEX [--cmdline FILE] -o OUT: the
 *   quote the agent's sim provider would produce (RTMR2 from FILE, default
 *   /proc/cmdline), e.g. to compute a policy's expected measurements.
 * Tests and demos only: nothing here is trusted by a broker unless it is told to.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "tdcrypt/agent.h"
#include "util/util.h"

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || !*s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int cmd_sim_init(int argc, char **argv)
{
	const char *dir = NULL;
	int64_t days = 30, now = (int64_t)time(NULL);
	struct tdc_error e = {0};

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--days") && i + 1 < argc) {
			if (parse_i64(argv[++i], 1, 3650, &days) < 0)
				goto usage;
		} else if (!strcmp(argv[i], "--now") && i + 1 < argc) {
			if (parse_i64(argv[++i], 0, INT64_MAX / 2, &now) < 0)
				goto usage;
		} else if (argv[i][0] != '-' && !dir) {
			dir = argv[i];
		} else {
			goto usage;
		}
	}
	if (!dir)
		goto usage;
	if (tdc_sim_dir_init(dir, now, (uint32_t)days, &e) < 0) {
		cli_print_error("sim init", &e);
		return cli_exit_for(e.code);
	}
	printf("simulator directory %s:\n"
	       "  pki/          test PKI (private keys: the guest's sim provider needs pki/ and "
	       "td.json)\n"
	       "  collateral/   collateral bundle, valid %lld days (broker --collateral-dir)\n"
	       "  sim-root.pem  simulated root CA (broker simulator trust)\n"
	       "  td.json       TD measurements; RTMR2 comes from the kernel command line\n",
	       dir, (long long)days);
	return TDC_EXIT_OK;
usage:
	fprintf(stderr, "usage: tdcrypt sim init DIR [--days N] [--now EPOCH]\n");
	return TDC_EXIT_BAD_INPUT;
}

static int write_out(const char *path, const uint8_t *p, size_t n, struct tdc_error *e)
{
	int fd = !strcmp(path, "-") ? STDOUT_FILENO
				    : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create output", "%s: %s", path,
				 strerror(errno));
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, p + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	if ((fd != STDOUT_FILENO && close(fd) < 0) || done != n)
		return TDC_FAILF(e, TDC_E_IO, "write failed", "%s", path);
	return 0;
}

int cmd_sim_quote(int argc, char **argv)
{
	const char *dir = NULL, *hex = NULL, *cmdline = NULL, *out = NULL;
	int64_t now = (int64_t)time(NULL);
	struct tdc_error e = {0};
	uint8_t rd[64], *quote = NULL;
	size_t len;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--report-data") && i + 1 < argc)
			hex = argv[++i];
		else if (!strcmp(argv[i], "--cmdline") && i + 1 < argc)
			cmdline = argv[++i];
		else if (!strcmp(argv[i], "-o") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--now") && i + 1 < argc) {
			if (parse_i64(argv[++i], 0, INT64_MAX / 2, &now) < 0)
				goto usage;
		} else
			goto usage;
	}
	if (!dir || !hex || !out)
		goto usage;
	if (tdc_hex_decode(hex, strlen(hex), rd, sizeof(rd), "--report-data", &e) < 0 ||
	    tdc_sim_dir_quote(dir, cmdline, rd, now, &quote, &len, &e) < 0 ||
	    write_out(out, quote, len, &e) < 0) {
		free(quote);
		cli_print_error("sim quote", &e);
		return cli_exit_for(e.code);
	}
	free(quote);
	return TDC_EXIT_OK;
usage:
	fprintf(stderr,
		"usage: tdcrypt sim quote --dir DIR --report-data HEX(128) [--cmdline FILE] "
		"-o OUT|- [--now EPOCH]\n");
	return TDC_EXIT_BAD_INPUT;
}
