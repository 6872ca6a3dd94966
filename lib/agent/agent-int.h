/* SPDX-License-Identifier: Apache-2.0 */
/* Internals shared by the lib/agent files. */
#pragma once

#include "tdcrypt/agent.h"
#include "util/limits.h"

/* Reads a whole file of unknown size (sysfs/configfs/proc report size 0 or 4096),
 * at most max bytes (TDC_E_LIMIT beyond). NUL-terminated, free with free(). */
int tdc_agent_read_small(const char *path, size_t max, uint8_t **out, size_t *len,
			 struct tdc_error *e) TDC_MUST_USE;

/* Formats a line and hands it to the caller's log hook (no-op without one). */
void tdc_agent_say(const struct tdc_agent_events *ev, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
