/* SPDX-License-Identifier: Apache-2.0 */
/* Strict RFC 4648 base64 decoding (padding required, canonical only), for everything that
 * arrives base64-encoded: released keys at the agent, event logs at the broker. */
#include "util/rd.h"
#include "util/util.h"

static int b64_value(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int tdc_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len,
		      struct tdc_error *e)
{
	struct tdc_rd r;
	size_t n = 0;

	*out_len = 0;
	if (len == 0 || len % 4 != 0)
		return TDC_FAILF(e, TDC_E_FORMAT, "bad base64 length", "%zu characters", len);
	tdc_rd_init(&r, in, len);
	while (!tdc_rd_empty(&r)) {
		uint8_t q[4];
		int v[4], pad = 0;
		size_t at = tdc_rd_offset(&r);
		TDC_GUARD(tdc_rd_copy(&r, q, 4, "base64", e));
		bool last = tdc_rd_empty(&r);
		for (int i = 0; i < 4; i++) {
			if (q[i] == '=' && last && i >= 2) {
				pad++;
				v[i] = 0;
				continue;
			}
			v[i] = b64_value(q[i]);
			if (v[i] < 0 || pad)
				return TDC_FAIL_AT(e, TDC_E_FORMAT, at + (size_t)i,
						   "bad base64 character", "0x%02x", q[i]);
		}
		uint32_t bits = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
				(uint32_t)v[3];
		/* Canonical encodings only: the bits that padding drops must be zero. */
		if ((pad == 1 && (bits & 0xff)) || (pad == 2 && (bits & 0xffff)))
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "non-canonical base64", "%s", "");
		size_t k = 3 - (size_t)pad;
		if (n + k > cap)
			return TDC_FAILF(e, TDC_E_LIMIT, "decoded value too large", "limit %zu",
					 cap);
		for (size_t i = 0; i < k; i++)
			out[n++] = (uint8_t)(bits >> (16 - 8 * i));
		bits = 0;
	}
	*out_len = n;
	return 0;
}

