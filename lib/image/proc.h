/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Running the external tools the image builder drives (qemu-img, mke2fs, mount, chroot...):
 * no shell, stdin from /dev/null, stdout captured (bounded) for callers that parse it, stderr
 * captured so that a failure's last line ends up in the tdc_error detail. Nothing is printed.
 */
#pragma once

#include <stddef.h>

#include "tdcrypt/error.h"

/* Cap on a captured stdout (qemu-img info JSON, lsinitramfs listings). */
#define TDC_RUN_MAX_OUTPUT (8u * 1024u * 1024u)

/*
 * Runs argv[0] (searched in PATH) with argv; envp NULL keeps the environment. If out is not
 * NULL it receives the NUL-terminated stdout (free with free()), else stdout is discarded.
 * Exit status != 0, a signal, or a missing program: TDC_E_IO with "<argv0>: <last stderr
 * line>" in the detail (what says what was being done).
 */
int tdc_run(const char *what, const char *const *argv, char *const *envp, char **out,
	    struct tdc_error *e) TDC_MUST_USE;
/*
 * While the program runs, tick(arg) is called about every TDC_RUN_TICK_MS (progress, and the
 * caller's chance to stop it): a nonzero return sends SIGTERM (SIGKILL 5 s later) and the run
 * fails with TDC_E_CANCELLED. tick NULL: as tdc_run.
 */
#define TDC_RUN_TICK_MS 200
typedef int (*tdc_run_tick_fn)(void *arg);
int tdc_run_watch(const char *what, const char *const *argv, char *const *envp, char **out,
		  tdc_run_tick_fn tick, void *arg, struct tdc_error *e) TDC_MUST_USE;
/* As tdc_run_watch, in chroot(root) with a minimal PATH/LANG environment. */
int tdc_run_chroot(const char *what, const char *root, const char *const *argv, char **out,
		   tdc_run_tick_fn tick, void *arg, struct tdc_error *e) TDC_MUST_USE;
