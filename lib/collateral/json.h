/* SPDX-License-Identifier: Apache-2.0 */
/* Private to lib/collateral: JSON getters for collateral-specific shapes. */
#pragma once

#include "tdcrypt/collateral.h"
#include "util/json.h"

/* tcbStatus member (one of the PCS strings). */
int tdc_json_status(json_object *obj, const char *parent, const char *key, enum tdc_tcb_status *out,
		    struct tdc_error *e) TDC_MUST_USE;

/* Optional "advisoryIDs" of a level. */
int tdc_json_advisories(json_object *level, const char *parent, struct tdc_advisories *out,
			struct tdc_error *e) TDC_MUST_USE;

/* "tcbLevels" of the form [{tcb{isvsvn}, tcbDate, tcbStatus, advisoryIDs?}]
 * (QE identity, TDX module identity). On failure *levels may be partly
 * filled: release with tdc_isv_levels_free. */
int tdc_json_isv_levels(json_object *obj, const char *parent, struct tdc_isv_level **levels,
			size_t *n, struct tdc_error *e) TDC_MUST_USE;
void tdc_isv_levels_free(struct tdc_isv_level *levels, size_t n);
