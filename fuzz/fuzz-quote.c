/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the quote parser must never crash or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tdcrypt/quote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tdc_quote q;
	struct tdc_error e;

	tdc_error_clear(&e);
	int r = tdc_quote_parse(data, size, &q, &e);
	if (r == 0) {
		/* every view lies inside the input, before any trailing bytes */
		if (q.total_len + q.trailing_len != size ||
		    tdc_rd_offset(&q.cert_data) + tdc_rd_len(&q.cert_data) > q.total_len ||
		    tdc_rd_len(&q.signed_bytes) > q.total_len)
			abort();
	} else if (e.code != r || (e.offset != TDC_NO_OFFSET && e.offset > size &&
				   r != TDC_E_LIMIT)) {
		abort();
	}
	return 0;
}
