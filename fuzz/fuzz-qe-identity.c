/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: QE Identity v2 parser (the inner, signed object). */
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/collateral.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tdc_qe_identity q;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_qe_identity_parse(data, size, &q, &e) == 0) {
		struct tdc_advisories all = { 0 };
		for (size_t i = 0; i < q.n_levels; i++)
			if (tdc_advisories_merge(&all, &q.levels[i].advisories, NULL) < 0)
				break;
		tdc_advisories_free(&all);
	}
	tdc_qe_identity_free(&q);
	return 0;
}
