/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the PE/COFF Authenticode digest must never crash or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tdcrypt/measure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tdc_error e;
	uint8_t digest[TDC_SHA384_LEN];

	tdc_error_clear(&e);
	int r = tdc_pe_authenticode(data, size, digest, &e);
	if (r != 0 && (e.code != r || !e.reason ||
		       (e.offset != TDC_NO_OFFSET && e.offset > size)))
		abort();
	return 0;
}
