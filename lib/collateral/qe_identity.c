/* SPDX-License-Identifier: Apache-2.0 */
/* QE Identity v2 (TD_QE) parser: shape and ranges only (lib/verify matches it to the QE). */
#include <stdlib.h>
#include <string.h>

#include "collateral/json.h"
#include "util/limits.h"

#define ROOT "enclaveIdentity"

static int parse_root(json_object *root, struct tdc_qe_identity *q, struct tdc_error *e)
{
	int64_t x;
	TDC_GUARD(tdc_json_str_copy(root, ROOT, "id", q->id, sizeof(q->id), e));
	TDC_GUARD(tdc_json_int(root, ROOT, "version", 0, INT32_MAX, &x, e));
	q->version = (unsigned)x;
	TDC_GUARD(tdc_json_time(root, ROOT, "issueDate", &q->issue_date, e));
	TDC_GUARD(tdc_json_time(root, ROOT, "nextUpdate", &q->next_update, e));
	TDC_GUARD(tdc_json_int(root, ROOT, "tcbEvaluationDataNumber", 0, UINT32_MAX, &x, e));
	q->tcb_eval_num = (uint32_t)x;
	TDC_GUARD(tdc_json_hex(root, ROOT, "miscselect", q->miscselect, 4, e));
	TDC_GUARD(tdc_json_hex(root, ROOT, "miscselectMask", q->miscselect_mask, 4, e));
	TDC_GUARD(tdc_json_hex(root, ROOT, "attributes", q->attributes, 16, e));
	TDC_GUARD(tdc_json_hex(root, ROOT, "attributesMask", q->attributes_mask, 16, e));
	TDC_GUARD(tdc_json_hex(root, ROOT, "mrsigner", q->mrsigner, 32, e));
	TDC_GUARD(tdc_json_int(root, ROOT, "isvprodid", 0, UINT16_MAX, &x, e));
	q->isvprodid = (uint16_t)x;
	return tdc_json_isv_levels(root, ROOT, &q->levels, &q->n_levels, e);
}

int tdc_qe_identity_parse(const uint8_t *json, size_t len, struct tdc_qe_identity *out,
			  struct tdc_error *e)
{
	json_object *root;
	if (!out)
		return TDC_FAIL(e, TDC_E_USAGE, "qe_identity_parse: NULL output");
	memset(out, 0, sizeof(*out));
	TDC_GUARD(tdc_json_parse_object(json, len, TDC_MAX_COLLATERAL_JSON, ROOT, &root, e));
	int r = parse_root(root, out, e);
	json_object_put(root);
	if (r < 0)
		tdc_qe_identity_free(out);
	return r;
}

void tdc_qe_identity_free(struct tdc_qe_identity *q)
{
	if (!q)
		return;
	tdc_isv_levels_free(q->levels, q->n_levels);
	memset(q, 0, sizeof(*q));
}
