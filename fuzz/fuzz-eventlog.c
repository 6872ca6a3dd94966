/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: CC and TPM event logs (parser, replay, data check, descriptions, the
 * simulator's mapping) must never crash or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tdcrypt/measure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct tdc_evlog *l)
{
	char desc[160];
	uint8_t rtmr[TDC_RTMR_COUNT][TDC_SHA384_LEN];
	for (size_t i = 0; i < l->n; i++) {
		if (tdc_rd_offset(&l->ev[i].data) + tdc_rd_len(&l->ev[i].data) > l->len)
			abort();
		tdc_event_describe(&l->ev[i], desc, sizeof(desc));
		(void)tdc_event_type_name(l->ev[i].type);
	}
	(void)tdc_evlog_check_data(l, NULL);
	if (l->kind == TDC_EVLOG_CC && tdc_evlog_replay(l, rtmr, NULL) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tdc_evlog l;
	if (tdc_evlog_parse(data, size, TDC_EVLOG_CC, &l, NULL) == 0) {
		walk(&l);
		tdc_evlog_free(&l);
	}
	if (tdc_evlog_parse(data, size, TDC_EVLOG_TPM, &l, NULL) == 0) {
		uint8_t *cc;
		size_t n;
		walk(&l);
		if (tdc_evlog_tpm_to_cc(&l, &cc, &n, NULL) == 0) {
			struct tdc_evlog c;
			if (tdc_evlog_parse(cc, n, TDC_EVLOG_CC, &c, NULL) != 0)
				abort(); /* what the simulator writes must parse */
			walk(&c);
			tdc_evlog_free(&c);
			free(cc);
		}
		tdc_evlog_free(&l);
	}
	if (size >= TDC_CCEL_TABLE_SIZE) {
		struct tdc_ccel_table t;
		(void)tdc_ccel_table_parse(data, TDC_CCEL_TABLE_SIZE, &t, NULL);
	}
	return 0;
}
