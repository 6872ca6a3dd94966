/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: PCS body split, then the TCB info parser on the inner bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tdcrypt/collateral.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tdc_buf inner;
	uint8_t sig[64];
	if (tdc_pcs_body_split(data, size, "tcbInfo", &inner, sig, NULL) == 0) {
		/* the span lies inside the input and is itself one JSON object */
		if (inner.len > size || !memmem(data, size, inner.data, inner.len))
			abort();
		struct tdc_tcb_info t;
		if (tdc_tcb_info_parse(inner.data, inner.len, &t, NULL) == 0)
			tdc_tcb_info_free(&t);
		free(inner.data);
	}
	return 0;
}
