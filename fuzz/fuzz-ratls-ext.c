/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the RA-TLS evidence extension parser (docs/PROTOCOL.md §4.4).
 * Anything accepted without unknown claims must re-encode to the same bytes (the
 * encoding is deterministic) and check against its own REPORTDATA. With unknown
 * claims (skipped, §4.4), the claims tdcrypt knows must survive a re-encoding:
 * it parses again with none ignored and encodes to the same bytes once more. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tdcrypt/ratls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tdc_ratls_evidence ev, ev2;
	struct tdc_error e;
	uint8_t *again = NULL, *third = NULL;
	size_t len = 0, len3 = 0;
	uint8_t rd[64];

	tdc_error_clear(&e);
	if (tdc_ratls_ext_parse(data, size, &ev, &e) < 0)
		return 0;
	if (tdc_ratls_ext_encode(tdc_rd_ptr(&ev.quote), tdc_rd_len(&ev.quote), &ev.claims, &again,
				 &len, NULL) < 0)
		abort();
	if (ev.claims.ignored == 0) {
		if (len != size || memcmp(again, data, size) != 0)
			abort();
		if (tdc_ratls_report_data(&ev.claims, rd, NULL) < 0 ||
		    tdc_ratls_check_report_data(&ev, rd, NULL) < 0)
			abort();
	} else {
		if (tdc_ratls_ext_parse(again, len, &ev2, NULL) < 0 || ev2.claims.ignored != 0)
			abort();
		if (tdc_ratls_ext_encode(tdc_rd_ptr(&ev2.quote), tdc_rd_len(&ev2.quote),
					 &ev2.claims, &third, &len3, NULL) < 0)
			abort();
		if (len3 != len || memcmp(third, again, len) != 0)
			abort();
		free(third);
	}
	free(again);
	return 0;
}
