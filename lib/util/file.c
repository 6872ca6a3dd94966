/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

int tdc_file_read(const char *path, size_t max, uint8_t **out, size_t *len, struct tdc_error *e)
{
	*out = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot open file", "%s: %s", path, strerror(errno));

	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return TDC_FAILF(e, TDC_E_IO, "not a regular file", "%s", path);
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return TDC_FAILF(e, TDC_E_LIMIT, "file too large", "%s: %lld bytes, limit %zu", path,
				 (long long)st.st_size, max);
	}
	size_t cap = (size_t)st.st_size;
	uint8_t *buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	size_t got = 0;
	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != cap) {
		free(buf);
		return TDC_FAILF(e, TDC_E_IO, "short read", "%s", path);
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

int tdc_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENODATA;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int tdc_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}
