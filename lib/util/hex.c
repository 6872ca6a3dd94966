/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util/util.h"

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int tdc_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_len,
		   const char *field, struct tdc_error *e)
{
	if (!hex || hex_len != 2 * out_len)
		return TDC_FAILF(e, TDC_E_FORMAT, "bad hex length", "%s: expected %zu hex digits, got %zu",
				 field ? field : "hex", 2 * out_len, hex ? hex_len : 0);
	for (size_t i = 0; i < out_len; i++) {
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return TDC_FAILF(e, TDC_E_FORMAT, "bad hex digit", "%s: position %zu",
					 field ? field : "hex", 2 * i);
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int tdc_hex_decode_alloc(const char *hex, size_t hex_len, uint8_t **out, size_t *out_len,
			 const char *field, struct tdc_error *e)
{
	*out = NULL;
	*out_len = 0;
	if (hex_len % 2)
		return TDC_FAILF(e, TDC_E_FORMAT, "bad hex length", "%s: odd number of digits",
				 field ? field : "hex");
	uint8_t *buf = malloc(hex_len / 2 + 1);
	if (!buf)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	int r = tdc_hex_decode(hex, hex_len, buf, hex_len / 2, field, e);
	if (r < 0) {
		free(buf);
		return r;
	}
	*out = buf;
	*out_len = hex_len / 2;
	return 0;
}

char *tdc_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
	return out;
}

bool tdc_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

bool tdc_all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}
