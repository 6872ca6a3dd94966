/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt sim init DIR [--days N] [--firmware FILE]: a simulator directory (test PKI,
 *   matching collateral bundle, sim root PEM, the TD's MRTD computed from the firmware the
 *   launcher uses; agent/README.md).
 * tdcrypt sim quote --dir DIR --report-data HEX --tpm-log FILE -o OUT [--event-log-out F]:
 *   the quote (and CC event log) the agent's sim provider would produce from a vTPM log.
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
#include "tdcrypt/launch.h"
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

static const char sim_init_usage[] =
	"usage: tdcrypt sim init DIR [--days N] [--firmware FILE] [--now EPOCH]\n"
	"  a simulator directory: test PKI, collateral valid N days (default 30), the\n"
	"  simulated root CA, and the TD's MRTD of FILE (default " TDC_LAUNCH_OVMF ")\n";
static const char sim_quote_usage[] =
	"usage: tdcrypt sim quote --dir DIR --report-data HEX(128) --tpm-log FILE -o OUT|-\n"
	"                         [--event-log-out FILE] [--now EPOCH]\n"
	"  the quote (and CC event log) the agent's sim provider makes from a vTPM log\n";

int cmd_sim_init(int argc, char **argv)
{
	const char *dir = NULL, *fw_path = TDC_LAUNCH_OVMF;
	int64_t days = 30, now = (int64_t)time(NULL);
	struct tdc_error e = {0};
	struct tdc_tdvf t;
	uint8_t mrtd[TDC_SHA384_LEN], *fw = NULL;
	size_t fw_len;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--firmware") && i + 1 < argc) {
			fw_path = argv[++i];
		} else if (!strcmp(argv[i], "--days") && i + 1 < argc) {
			if (parse_i64(argv[++i], 1, 3650, &days) < 0)
				goto usage;
		} else if (!strcmp(argv[i], "--now") && i + 1 < argc) {
			if (parse_i64(argv[++i], 0, INT64_MAX / 2, &now) < 0)
				goto usage;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(sim_init_usage, stdout);
			return TDC_EXIT_OK;
		} else if (argv[i][0] != '-' && !dir) {
			dir = argv[i];
		} else {
			goto usage;
		}
	}
	if (!dir)
		goto usage;
	/* The simulated TDX module reports the MRTD of the firmware the launcher boots. */
	int rc = tdc_file_read(fw_path, TDC_TDVF_MAX_IMAGE, &fw, &fw_len, &e);
	if (rc == 0 && (rc = tdc_tdvf_parse(fw, fw_len, &t, &e)) == 0)
		rc = tdc_tdvf_mrtd(fw, fw_len, &t, TDC_MRTD_SINGLE_PASS, mrtd, &e);
	free(fw);
	if (rc < 0) {
		cli_print_error("sim init: firmware", &e);
		fprintf(stderr, "  (--firmware FILE: the TDVF/OVMF image tdcrypt launch uses)\n");
		return cli_exit_for(e.code);
	}
	if (tdc_sim_dir_init(dir, now, (uint32_t)days, mrtd, &e) < 0) {
		cli_print_error("sim init", &e);
		return cli_exit_for(e.code);
	}
	printf("simulator directory %s:\n"
	       "  pki/          test PKI (private keys: the guest's sim provider needs pki/ and "
	       "td.json)\n"
	       "  collateral/   collateral bundle, valid %lld days (broker --collateral-dir)\n"
	       "  sim-root.pem  simulated root CA (broker simulator trust)\n"
	       "  td.json       MRTD of %s and the other TD registers; the RTMRs come from\n"
	       "                the boot's event log (a vTPM's)\n",
	       dir, (long long)days, fw_path);
	return TDC_EXIT_OK;
usage:
	fputs(sim_init_usage, stderr);
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
	const char *dir = NULL, *hex = NULL, *tpm_log = NULL, *out = NULL, *log_out = NULL;
	int64_t now = (int64_t)time(NULL);
	struct tdc_error e = {0};
	struct tdc_agent_evidence ev = {0};
	uint8_t rd[64];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--report-data") && i + 1 < argc)
			hex = argv[++i];
		else if (!strcmp(argv[i], "--tpm-log") && i + 1 < argc)
			tpm_log = argv[++i];
		else if (!strcmp(argv[i], "--event-log-out") && i + 1 < argc)
			log_out = argv[++i];
		else if (!strcmp(argv[i], "-o") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--now") && i + 1 < argc) {
			if (parse_i64(argv[++i], 0, INT64_MAX / 2, &now) < 0)
				goto usage;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(sim_quote_usage, stdout);
			return TDC_EXIT_OK;
		} else
			goto usage;
	}
	if (!dir || !hex || !out || !tpm_log)
		goto usage;
	if (tdc_hex_decode(hex, strlen(hex), rd, sizeof(rd), "--report-data", &e) < 0 ||
	    tdc_sim_dir_quote(dir, tpm_log, rd, now, &ev, &e) < 0 ||
	    write_out(out, ev.quote, ev.quote_len, &e) < 0 ||
	    (log_out && write_out(log_out, ev.event_log, ev.event_log_len, &e) < 0)) {
		tdc_agent_evidence_free(&ev);
		cli_print_error("sim quote", &e);
		return cli_exit_for(e.code);
	}
	tdc_agent_evidence_free(&ev);
	return TDC_EXIT_OK;
usage:
	fputs(sim_quote_usage, stderr);
	return TDC_EXIT_BAD_INPUT;
}
