/* SPDX-License-Identifier: Apache-2.0 */
/* The verdict: release, and its JSON view (CLI --json, broker audit log). */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "util/util.h"
#include "verify/verify_int.h"

void tdc_verdict_free(struct tdc_verdict *out)
{
	if (!out)
		return;
	tdc_advisories_free(&out->advisories);
	memset(&out->advisories, 0, sizeof(out->advisories));
}

/* Builder that remembers the first allocation failure instead of checking each call. */
struct jb {
	bool failed;
};

static void put(struct jb *b, json_object *obj, const char *key, json_object *val)
{
	/* val == NULL is a JSON null; allocation failures are caught at the call sites that
	 * can fail (strings, numbers) via jstr/jint. */
	if (!obj || json_object_object_add(obj, key, val) != 0) {
		json_object_put(val);
		b->failed = true;
	}
}

static json_object *jstr(struct jb *b, const char *s)
{
	json_object *o = json_object_new_string(s);
	if (!o)
		b->failed = true;
	return o;
}

static json_object *jint(struct jb *b, int64_t n)
{
	json_object *o = json_object_new_int64(n);
	if (!o)
		b->failed = true;
	return o;
}

static json_object *jhex(struct jb *b, const uint8_t *p, size_t n)
{
	char buf[2 * 64 + 1];
	if (n > 64) {
		b->failed = true;
		return NULL;
	}
	return jstr(b, tdc_hex_encode(p, n, buf));
}

static json_object *jtime(struct jb *b, int64_t t)
{
	char buf[32];
	if (t == 0)
		return NULL;
	return jstr(b, tdc_time_format(t, buf, sizeof(buf)));
}

static json_object *jstatus(struct jb *b, enum tdc_tcb_status s)
{
	return s == TDC_TCB_UNKNOWN ? NULL : jstr(b, tdc_tcb_status_name(s));
}

static json_object *td_json(struct jb *b, const struct tdc_td_report *td)
{
	json_object *o = json_object_new_object();
	if (!o) {
		b->failed = true;
		return NULL;
	}
	put(b, o, "mrtd", jhex(b, td->mrtd, 48));
	for (int i = 0; i < 4; i++) {
		char k[8];
		snprintf(k, sizeof(k), "rtmr%d", i);
		put(b, o, k, jhex(b, td->rtmr[i], 48));
	}
	put(b, o, "mrconfigid", jhex(b, td->mrconfigid, 48));
	put(b, o, "mrowner", jhex(b, td->mrowner, 48));
	put(b, o, "mrownerconfig", jhex(b, td->mrownerconfig, 48));
	put(b, o, "mrseam", jhex(b, td->mrseam, 48));
	put(b, o, "mrsignerseam", jhex(b, td->mrsignerseam, 48));
	put(b, o, "seam_attributes", jhex(b, td->seam_attributes, 8));
	put(b, o, "td_attributes", jhex(b, td->td_attributes, 8));

	json_object *flags = json_object_new_array();
	if (!flags)
		b->failed = true;
	uint64_t attr = tdc_td_attributes(td);
	for (unsigned bit = 0; flags && bit < 64; bit++) {
		if (!(attr & (1ull << bit)))
			continue;
		const char *name = tdc_td_attribute_name(bit);
		char buf[24];
		if (!name) {
			snprintf(buf, sizeof(buf), "RESERVED_BIT%u", bit);
			name = buf;
		}
		json_object *s = jstr(b, name);
		if (!s || json_object_array_add(flags, s) != 0) {
			json_object_put(s);
			b->failed = true;
		}
	}
	put(b, o, "td_attributes_flags", flags);
	put(b, o, "xfam", jhex(b, td->xfam, 8));
	put(b, o, "tee_tcb_svn", jhex(b, td->tee_tcb_svn, 16));
	put(b, o, "tee_tcb_svn2", td->is_td15 ? jhex(b, td->tee_tcb_svn2, 16) : NULL);
	put(b, o, "mrservicetd", td->is_td15 ? jhex(b, td->mrservicetd, 48) : NULL);
	put(b, o, "report_data", jhex(b, td->report_data, 64));
	return o;
}

static json_object *error_json(struct jb *b, const struct tdc_error *e)
{
	json_object *o = json_object_new_object();
	if (!o) {
		b->failed = true;
		return NULL;
	}
	put(b, o, "code", jstr(b, tdc_err_name(e->code)));
	put(b, o, "reason", jstr(b, e->reason ? e->reason : tdc_err_str(e->code)));
	put(b, o, "detail", e->detail[0] ? jstr(b, e->detail) : NULL);
	put(b, o, "offset", e->offset == TDC_NO_OFFSET ? NULL : jint(b, (int64_t)e->offset));
	return o;
}

int tdc_verdict_to_json(const struct tdc_verdict *v, const struct tdc_error *e,
			struct json_object **out)
{
	struct jb b = { 0 };
	if (!out || !v)
		return TDC_FAIL(NULL, TDC_E_USAGE, "tdc_verdict_to_json: NULL argument");
	*out = NULL;
	const bool failed = e && e->code != 0;
	json_object *o = json_object_new_object();
	if (!o)
		return TDC_E_NOMEM;

	put(&b, o, "verified", json_object_new_boolean(!failed));
	put(&b, o, "status", jstatus(&b, v->status));
	put(&b, o, "platform_status", jstatus(&b, v->platform_status));
	put(&b, o, "qe_status", jstatus(&b, v->qe_status));
	put(&b, o, "module_status", jstatus(&b, v->module_status));

	json_object *adv = json_object_new_array();
	if (!adv)
		b.failed = true;
	for (size_t i = 0; adv && i < v->advisories.n; i++) {
		json_object *s = jstr(&b, v->advisories.id[i]);
		if (!s || json_object_array_add(adv, s) != 0) {
			json_object_put(s);
			b.failed = true;
		}
	}
	put(&b, o, "advisories", adv);

	const bool have_fmspc = !tdc_all_zero(v->fmspc, 6) || v->tcb_eval_num != 0;
	put(&b, o, "tcb_date", jtime(&b, v->tcb_date));
	put(&b, o, "fmspc", have_fmspc ? jhex(&b, v->fmspc, 6) : NULL);
	put(&b, o, "pce_id", have_fmspc ? jhex(&b, v->pce_id, 2) : NULL);
	put(&b, o, "tcb_eval_num", v->tcb_eval_num ? jint(&b, v->tcb_eval_num) : NULL);
	put(&b, o, "collateral_not_after", jtime(&b, v->collateral_not_after));
	const bool parsed = v->quote_version != 0;
	put(&b, o, "quote_version", parsed ? jint(&b, v->quote_version) : NULL);
	put(&b, o, "body_type", parsed ? jint(&b, v->body_type) : NULL);
	put(&b, o, "qe_isvsvn", parsed ? jint(&b, v->qe_isvsvn) : NULL);
	put(&b, o, "td", parsed ? td_json(&b, &v->td) : NULL);
	if (failed)
		put(&b, o, "error", error_json(&b, e));

	if (b.failed) {
		json_object_put(o);
		return TDC_E_NOMEM;
	}
	*out = o;
	return 0;
}
