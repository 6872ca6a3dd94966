/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util/wr.h"

void tdc_wr_init_fixed(struct tdc_wr *w, void *buf, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
	w->cap = buf ? cap : 0;
	w->max = w->cap;
}

void tdc_wr_init_alloc(struct tdc_wr *w, size_t max)
{
	memset(w, 0, sizeof(*w));
	w->owned = true;
	w->max = max;
}

static int fail(struct tdc_wr *w, int code)
{
	if (!w->err) {
		w->err = code;
		w->err_at = w->len;
	}
	return w->err;
}

/* Makes room for n more bytes and returns where they go (NULL on failure). */
static uint8_t *room(struct tdc_wr *w, size_t n)
{
	if (w->err)
		return NULL;
	if (n > w->max - w->len) {
		fail(w, TDC_E_LIMIT);
		return NULL;
	}
	if (w->len + n > w->cap) {
		if (!w->owned) {
			fail(w, TDC_E_LIMIT);
			return NULL;
		}
		size_t ncap = w->cap ? w->cap : 256;
		while (ncap < w->len + n)
			ncap = ncap > w->max / 2 ? w->max : ncap * 2;
		uint8_t *nb = realloc(w->buf, ncap);
		if (!nb) {
			fail(w, TDC_E_NOMEM);
			return NULL;
		}
		w->buf = nb;
		w->cap = ncap;
	}
	uint8_t *p = w->buf + w->len;
	w->len += n;
	return p;
}

int tdc_wr_bytes(struct tdc_wr *w, const void *p, size_t n)
{
	uint8_t *d = room(w, n);
	if (!d)
		return w->err;
	if (n)
		memcpy(d, p, n);
	return 0;
}

int tdc_wr_zeros(struct tdc_wr *w, size_t n)
{
	uint8_t *d = room(w, n);
	if (!d)
		return w->err;
	memset(d, 0, n);
	return 0;
}

int tdc_wr_u8(struct tdc_wr *w, uint8_t v)
{
	return tdc_wr_bytes(w, &v, 1);
}

int tdc_wr_u16le(struct tdc_wr *w, uint16_t v)
{
	const uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	return tdc_wr_bytes(w, b, sizeof(b));
}

int tdc_wr_u32le(struct tdc_wr *w, uint32_t v)
{
	const uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
			       (uint8_t)(v >> 24) };
	return tdc_wr_bytes(w, b, sizeof(b));
}

int tdc_wr_u64le(struct tdc_wr *w, uint64_t v)
{
	TDC_GUARD(tdc_wr_u32le(w, (uint32_t)v));
	return tdc_wr_u32le(w, (uint32_t)(v >> 32));
}

int tdc_wr_u32be(struct tdc_wr *w, uint32_t v)
{
	const uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
			       (uint8_t)v };
	return tdc_wr_bytes(w, b, sizeof(b));
}

int tdc_wr_str(struct tdc_wr *w, const char *s)
{
	return tdc_wr_bytes(w, s, strlen(s));
}

int tdc_wr_fmt(struct tdc_wr *w, const char *fmt, ...)
{
	char small[256];
	va_list ap;

	if (w->err)
		return w->err;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return fail(w, TDC_E_INTERNAL);
	if ((size_t)n < sizeof(small))
		return tdc_wr_bytes(w, small, (size_t)n);

	/* Long output: format into a temporary, so that the NUL never counts
	 * against the cap. */
	if ((size_t)n > w->max - w->len)
		return fail(w, TDC_E_LIMIT);
	char *tmp = malloc((size_t)n + 1);
	if (!tmp)
		return fail(w, TDC_E_NOMEM);
	va_start(ap, fmt);
	vsnprintf(tmp, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int rc = tdc_wr_bytes(w, tmp, (size_t)n);
	free(tmp);
	return rc;
}

int tdc_wr_reserve(struct tdc_wr *w, size_t n, size_t *off)
{
	size_t at = w->len;
	TDC_GUARD(tdc_wr_zeros(w, n));
	*off = at;
	return 0;
}

int tdc_wr_patch_bytes(struct tdc_wr *w, size_t off, const void *p, size_t n)
{
	if (w->err)
		return w->err;
	if (off > w->len || n > w->len - off)
		return fail(w, TDC_E_USAGE);
	if (n)
		memcpy(w->buf + off, p, n);
	return 0;
}

int tdc_wr_patch_u16le(struct tdc_wr *w, size_t off, uint16_t v)
{
	const uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	return tdc_wr_patch_bytes(w, off, b, sizeof(b));
}

int tdc_wr_patch_u32le(struct tdc_wr *w, size_t off, uint32_t v)
{
	const uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
			       (uint8_t)(v >> 24) };
	return tdc_wr_patch_bytes(w, off, b, sizeof(b));
}

size_t tdc_wr_len(const struct tdc_wr *w)
{
	return w->len;
}

const uint8_t *tdc_wr_data(const struct tdc_wr *w)
{
	return w->err ? NULL : w->buf;
}

int tdc_wr_error(const struct tdc_wr *w)
{
	return w->err;
}

void tdc_wr_free(struct tdc_wr *w)
{
	if (w->owned && w->buf) {
		OPENSSL_cleanse(w->buf, w->cap);
		free(w->buf);
	}
	w->buf = NULL;
	w->len = w->cap = 0;
}

int tdc_wr_finish(struct tdc_wr *w, uint8_t **out, size_t *len, struct tdc_error *e)
{
	if (out)
		*out = NULL;
	if (len)
		*len = 0;
	if (w->err) {
		int code = w->err;
		size_t at = w->err_at, max = w->max;
		tdc_wr_free(w);
		w->err = code;
		if (code == TDC_E_LIMIT)
			return TDC_FAILF(e, code, "output too large",
					 "writer cap of %zu bytes exceeded at %zu", max, at);
		if (code == TDC_E_NOMEM)
			return TDC_FAIL(e, code, "out of memory");
		return TDC_FAILF(e, code, "writer misuse", "patch out of range at %zu", at);
	}
	if (!out) {
		tdc_wr_free(w);
		return 0;
	}
	if (w->owned && !w->buf) {
		/* Nothing written: hand back a valid empty allocation. */
		w->buf = malloc(1);
		if (!w->buf)
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	*out = w->buf;
	if (len)
		*len = w->len;
	/* Ownership moves to the caller. */
	w->buf = NULL;
	w->len = w->cap = 0;
	w->owned = false;
	return 0;
}
