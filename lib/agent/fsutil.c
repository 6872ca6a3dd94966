/* SPDX-License-Identifier: Apache-2.0 */
/* Reading pseudo-files (configfs, proc) whose stat size means nothing. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-int.h"

int tdc_agent_read_small(const char *path, size_t max, uint8_t **out, size_t *len,
			 struct tdc_error *e)
{
	*out = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot open file", "%s: %s", path, strerror(errno));
	size_t cap = max < 4096 ? max + 1 : 4096, got = 0;
	uint8_t *buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	for (;;) {
		if (got == cap) {
			if (cap > max)
				break;
			size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			uint8_t *nb = realloc(buf, ncap + 1);
			if (!nb) {
				free(buf);
				close(fd);
				return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			free(buf);
			close(fd);
			return TDC_FAILF(e, TDC_E_IO, "read failed", "%s: %s", path, strerror(err));
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got > max) {
		free(buf);
		return TDC_FAILF(e, TDC_E_LIMIT, "file too large", "%s: limit %zu", path, max);
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}
