/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the TDVF metadata parser and the MRTD replay (both orders) must never
 * crash or read out of bounds; what the parser accepts, the replay must hash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tdcrypt/measure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every page added is hashed, measured or not: a TEMP_MEM section may span GiBs. Past this,
 * the replay is skipped to keep executions fast (the code path is the same). */
#define MAX_REPLAYED_MEMORY (64ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tdc_tdvf t;
	struct tdc_error e;
	uint8_t mrtd[TDC_SHA384_LEN];
	uint64_t mem = 0;

	tdc_error_clear(&e);
	int r = tdc_tdvf_parse(data, size, &t, &e);
	if (r != 0) {
		if (e.code != r || !e.reason || (e.offset != TDC_NO_OFFSET && e.offset > size))
			abort();
		return 0;
	}
	if (t.n < 2 || t.n > TDC_TDVF_MAX_SECTIONS || t.descriptor_offset >= size)
		abort();
	for (size_t i = 0; i < t.n; i++) {
		const struct tdc_tdvf_section *s = &t.s[i];
		uint64_t used = s->attributes & TDC_TDVF_ATTR_MR_EXTEND ? s->mem_size : s->raw_size;
		if (s->type > TDC_TDVF_TEMP_MEM || s->mem_size == 0 || s->mem_size % 4096 ||
		    s->gpa % 4096 || s->gpa + s->mem_size > (1ull << 32) ||
		    s->raw_size > s->mem_size || (uint64_t)s->data_offset + used > size)
			abort();
		mem += s->mem_size;
	}
	if (mem > MAX_REPLAYED_MEMORY)
		return 0;
	if (tdc_tdvf_mrtd(data, size, &t, TDC_MRTD_SINGLE_PASS, mrtd, NULL) != 0 ||
	    tdc_tdvf_mrtd(data, size, &t, TDC_MRTD_TWO_PASS, mrtd, NULL) != 0)
		abort();
	return 0;
}
