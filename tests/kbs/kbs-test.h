/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the broker tests: temporary directories and files. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Removes a test directory tree (only files and one level of subdirectories). */
static inline void kt_rmtree(const char *dir)
{
	char cmd[1200];
	if (!dir || strncmp(dir, "/tmp/", 5) != 0)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static inline void kt_path(char *out, size_t cap, const char *dir, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}
