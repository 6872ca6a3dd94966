/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "util/rd.h"

void tdc_rd_init(struct tdc_rd *r, const void *buf, size_t len)
{
	r->buf = buf;
	r->len = buf ? len : 0;
	r->pos = 0;
	r->base = 0;
}

size_t tdc_rd_remaining(const struct tdc_rd *r)
{
	return r->len - r->pos;
}

size_t tdc_rd_offset(const struct tdc_rd *r)
{
	return r->base + r->pos;
}

const uint8_t *tdc_rd_ptr(const struct tdc_rd *r)
{
	return r->buf;
}

size_t tdc_rd_len(const struct tdc_rd *r)
{
	return r->len;
}

bool tdc_rd_empty(const struct tdc_rd *r)
{
	return r->pos == r->len;
}

static int short_read(const struct tdc_rd *r, size_t n, const char *field, struct tdc_error *e)
{
	return TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(r), "truncated input",
			   "field %s needs %zu bytes, %zu left", field ? field : "?", n,
			   tdc_rd_remaining(r));
}

/* Copies n bytes at the cursor into dst (may be NULL to skip) and advances. */
static int take(struct tdc_rd *r, size_t n, uint8_t *dst, const char *field, struct tdc_error *e)
{
	if (tdc_rd_remaining(r) < n)
		return short_read(r, n, field, e);
	if (dst && n)
		memcpy(dst, r->buf + r->pos, n);
	r->pos += n;
	return 0;
}

int tdc_rd_u8(struct tdc_rd *r, uint8_t *out, const char *field, struct tdc_error *e)
{
	return take(r, 1, out, field, e);
}

int tdc_rd_u16le(struct tdc_rd *r, uint16_t *out, const char *field, struct tdc_error *e)
{
	uint8_t p[2] = { 0 };
	TDC_GUARD(take(r, 2, p, field, e));
	*out = (uint16_t)(p[0] | (p[1] << 8));
	return 0;
}

int tdc_rd_u32le(struct tdc_rd *r, uint32_t *out, const char *field, struct tdc_error *e)
{
	uint8_t p[4] = { 0 };
	TDC_GUARD(take(r, 4, p, field, e));
	*out = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
	return 0;
}

int tdc_rd_u32be(struct tdc_rd *r, uint32_t *out, const char *field, struct tdc_error *e)
{
	uint8_t p[4] = { 0 };
	TDC_GUARD(take(r, 4, p, field, e));
	*out = (uint32_t)p[3] | ((uint32_t)p[2] << 8) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[0] << 24);
	return 0;
}

int tdc_rd_u64le(struct tdc_rd *r, uint64_t *out, const char *field, struct tdc_error *e)
{
	uint8_t p[8] = { 0 };
	TDC_GUARD(take(r, 8, p, field, e));
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	*out = v;
	return 0;
}

int tdc_rd_copy(struct tdc_rd *r, void *dst, size_t n, const char *field, struct tdc_error *e)
{
	return take(r, n, dst, field, e);
}

int tdc_rd_sub(struct tdc_rd *r, size_t n, struct tdc_rd *sub, const char *field,
	       struct tdc_error *e)
{
	if (tdc_rd_remaining(r) < n)
		return short_read(r, n, field, e);
	sub->buf = r->buf + r->pos;
	sub->len = n;
	sub->pos = 0;
	sub->base = tdc_rd_offset(r);
	r->pos += n;
	return 0;
}

void tdc_rd_rest(struct tdc_rd *r, struct tdc_rd *sub)
{
	sub->buf = r->buf + r->pos;
	sub->len = tdc_rd_remaining(r);
	sub->pos = 0;
	sub->base = tdc_rd_offset(r);
	r->pos = r->len;
}

int tdc_rd_skip(struct tdc_rd *r, size_t n, const char *field, struct tdc_error *e)
{
	return take(r, n, NULL, field, e);
}

size_t tdc_rd_mark(const struct tdc_rd *r)
{
	return r->pos;
}

int tdc_rd_since(const struct tdc_rd *r, size_t mark, struct tdc_rd *sub, struct tdc_error *e)
{
	if (mark > r->pos)
		return TDC_FAIL(e, TDC_E_INTERNAL, "reader mark after cursor");
	sub->buf = r->buf + mark;
	sub->len = r->pos - mark;
	sub->pos = 0;
	sub->base = r->base + mark;
	return 0;
}

int tdc_rd_end(const struct tdc_rd *r, const char *field, struct tdc_error *e)
{
	if (!tdc_rd_empty(r))
		return TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(r), "unexpected trailing bytes",
				   "%zu bytes left after %s", tdc_rd_remaining(r),
				   field ? field : "structure");
	return 0;
}

void tdc_rd_trim_trailing(struct tdc_rd *r, uint8_t c)
{
	while (r->len > r->pos && r->buf[r->len - 1] == c)
		r->len--;
}

bool tdc_rd_all_bytes(const struct tdc_rd *r, uint8_t c)
{
	for (size_t i = r->pos; i < r->len; i++)
		if (r->buf[i] != c)
			return false;
	return true;
}

uint8_t tdc_rd_at(const struct tdc_rd *r, size_t i)
{
	return i < r->len ? r->buf[i] : 0;
}

bool tdc_rd_find(const struct tdc_rd *r, const void *needle, size_t nlen, size_t *pos)
{
	size_t rem = tdc_rd_remaining(r);
	if (nlen == 0 || nlen > rem)
		return false;
	const uint8_t *hay = r->buf + r->pos;
	const uint8_t *hit = memmem(hay, rem, needle, nlen);
	if (!hit)
		return false;
	*pos = (size_t)(hit - hay);
	return true;
}

bool tdc_rd_starts_with(const struct tdc_rd *r, const void *s, size_t n)
{
	return tdc_rd_remaining(r) >= n && memcmp(r->buf + r->pos, s, n) == 0;
}
