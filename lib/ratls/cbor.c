/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "ratls/cbor.h"

int tdc_cbor_put_head(struct tdc_wr *w, unsigned major, uint64_t arg)
{
	uint8_t b[9];
	size_t n;
	uint8_t mt = (uint8_t)(major << 5);

	if (arg < 24) {
		b[0] = mt | (uint8_t)arg;
		n = 1;
	} else if (arg <= 0xff) {
		b[0] = mt | 24;
		n = 2;
	} else if (arg <= 0xffff) {
		b[0] = mt | 25;
		n = 3;
	} else if (arg <= 0xffffffffu) {
		b[0] = mt | 26;
		n = 5;
	} else {
		b[0] = mt | 27;
		n = 9;
	}
	for (size_t i = 1; i < n; i++)
		b[i] = (uint8_t)(arg >> (8 * (n - 1 - i)));
	return tdc_wr_bytes(w, b, n);
}

int tdc_cbor_put_bstr(struct tdc_wr *w, const void *p, size_t n)
{
	tdc_cbor_put_head(w, TDC_CBOR_BSTR, n);
	return tdc_wr_bytes(w, p, n);
}

int tdc_cbor_put_tstr(struct tdc_wr *w, const char *s)
{
	size_t n = strlen(s);
	tdc_cbor_put_head(w, TDC_CBOR_TSTR, n);
	return tdc_wr_bytes(w, s, n);
}

int tdc_cbor_get_head(struct tdc_rd *r, unsigned *major, uint64_t *arg, const char *field,
		      struct tdc_error *e)
{
	size_t at = tdc_rd_offset(r);
	uint8_t ib;
	TDC_GUARD(tdc_rd_u8(r, &ib, field, e));
	unsigned ai = ib & 31u;
	*major = ib >> 5;
	if (ai < 24) {
		*arg = ai;
		return 0;
	}
	if (ai == 31)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "CBOR indefinite length refused",
				   "field %s", field);
	if (ai > 27)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "CBOR reserved additional information",
				   "field %s: %u", field, ai);
	/* 24..27: 1, 2, 4 or 8 argument bytes, big-endian */
	size_t n = (size_t)1 << (ai - 24);
	uint8_t b[8];
	TDC_GUARD(tdc_rd_copy(r, b, n, field, e));
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | b[i];
	/* shortest form: the argument must not fit the next smaller encoding */
	uint64_t min = n == 1 ? 24 : n == 2 ? 0x100 : n == 4 ? 0x10000 : 0x100000000ull;
	if (v < min)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "CBOR argument not in shortest form",
				   "field %s: %llu in %zu bytes", field, (unsigned long long)v, n);
	*arg = v;
	return 0;
}

static const char *major_name(unsigned major)
{
	static const char *const names[] = { "unsigned integer", "negative integer",
					     "byte string",      "text string",
					     "array",            "map",
					     "tag",              "simple/float" };
	return names[major & 7];
}

int tdc_cbor_get_type(struct tdc_rd *r, unsigned major, uint64_t *arg, const char *field,
		      struct tdc_error *e)
{
	size_t at = tdc_rd_offset(r);
	unsigned m;
	TDC_GUARD(tdc_cbor_get_head(r, &m, arg, field, e));
	if (m != major)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "unexpected CBOR type",
				   "field %s: %s where %s expected", field, major_name(m),
				   major_name(major));
	return 0;
}

int tdc_cbor_get_str(struct tdc_rd *r, unsigned major, size_t max, struct tdc_rd *out,
		     const char *field, struct tdc_error *e)
{
	size_t at = tdc_rd_offset(r);
	uint64_t n;
	TDC_GUARD(tdc_cbor_get_type(r, major, &n, field, e));
	if (n > max)
		return TDC_FAIL_AT(e, TDC_E_LIMIT, at, "CBOR string over its cap",
				   "field %s: %llu bytes, cap %zu", field, (unsigned long long)n,
				   max);
	return tdc_rd_sub(r, (size_t)n, out, field, e);
}
