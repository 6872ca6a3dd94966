/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: TCB Info v3 parser (the inner, signed object). */
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/collateral.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tdc_tcb_info t;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_tcb_info_parse(data, size, &t, &e) == 0) {
		/* touch the result so the parser's output is checked by the sanitizers */
		for (size_t i = 0; i < t.n_levels; i++)
			(void)tdc_tcb_status_name(t.levels[i].status);
		tdc_tcb_info_free(&t);
	}
	tdc_tcb_info_free(&t);
	return 0;
}
