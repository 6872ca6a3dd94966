/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plaintext buffers for secrets and keys: their own pages, so they can be
 * locked (no swap) and left out of core dumps without touching the heap.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "tdcrypt/store.h"

static size_t mapped_size(size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t p = page > 0 ? (size_t)page : 4096;
	return (len + p - 1) / p * p;
}

int tdc_secret_alloc(size_t len, struct tdc_secret *out, struct tdc_error *e)
{
	if (!out)
		return TDC_FAIL(e, TDC_E_USAGE, "no output");
	out->data = NULL;
	out->len = 0;
	if (len == 0 || len > SIZE_MAX / 2)
		return TDC_FAILF(e, TDC_E_USAGE, "bad secret size", "%zu bytes", len);
	size_t size = mapped_size(len);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return TDC_FAIL(e, TDC_E_NOMEM, "cannot map memory for a secret");
	/* best effort: an unprivileged process may be over RLIMIT_MEMLOCK */
	(void)mlock(p, size);
	(void)madvise(p, size, MADV_DONTDUMP);
	out->data = p;
	out->len = len;
	return 0;
}

void tdc_secret_free(struct tdc_secret *s)
{
	if (!s || !s->data)
		return;
	size_t size = mapped_size(s->len);
	OPENSSL_cleanse(s->data, size);
	(void)munlock(s->data, size);
	munmap(s->data, size);
	s->data = NULL;
	s->len = 0;
}
