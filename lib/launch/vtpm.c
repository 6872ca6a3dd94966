/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vTPM of the TCG form: OVMF, GRUB and Linux measure into it what they would measure into
 * RTMRs on a TD, and the simulator replays its event log (lib/agent/quote-sim.c). Only the
 * SHA-384 bank is active, the algorithm of RTMRs.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/proc.h"
#include "tdcrypt/launch.h"

#define SOCKET_WAIT_MS 5000

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

int tdc_vtpm_start(struct tdc_vtpm *v, struct tdc_error *e)
{
	const char *t = getenv("TMPDIR");
	memset(v, 0, sizeof(*v));
	snprintf(v->dir, sizeof(v->dir), "%s/tdcrypt-vtpm.XXXXXX", t && *t == '/' ? t : "/tmp");
	if (!mkdtemp(v->dir))
		return TDC_FAILF(e, TDC_E_IO, "cannot create the vTPM directory", "%s",
				 strerror(errno));
	snprintf(v->socket, sizeof(v->socket), "%s/ctrl", v->dir);
	const char *setup[] = { "swtpm_setup", "--tpm2", "--pcr-banks", "sha384", "--tpmstate",
				v->dir, "--overwrite", NULL };
	int rc = tdc_run("setting up the vTPM (apt-get install swtpm swtpm-tools)", setup, NULL,
			 NULL, e);
	if (rc < 0) {
		nftw(v->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
		return rc;
	}
	char state[300], ctrl[320];
	snprintf(state, sizeof(state), "dir=%s", v->dir);
	snprintf(ctrl, sizeof(ctrl), "type=unixio,path=%s", v->socket);
	pid_t sup = fork();
	if (sup < 0) {
		nftw(v->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
		return TDC_FAILF(e, TDC_E_IO, "cannot start the vTPM", "fork: %s", strerror(errno));
	}
	if (sup == 0) { /* the supervisor: swtpm, then clean up */
		pid_t pid = fork();
		if (pid == 0) {
			execlp("swtpm", "swtpm", "socket", "--tpm2", "--tpmstate", state, "--ctrl",
			       ctrl, "--terminate", (char *)NULL);
			_exit(127);
		}
		int st = 0;
		while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		nftw(v->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
		_exit(0);
	}
	v->pid = (int)sup;
	struct stat st;
	for (int waited = 0; stat(v->socket, &st) < 0; waited += 20) {
		if (waited >= SOCKET_WAIT_MS || waitpid(sup, NULL, WNOHANG) == sup) {
			kill(sup, SIGTERM);
			return TDC_FAIL(e, TDC_E_IO, "swtpm did not start (apt-get install swtpm)");
		}
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}
