/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TCB Info v3 (TDX) parser: shape and ranges only. Whether id/version,
 * FMSPC and dates fit the quote and the clock is decided by lib/verify.
 */
#include <stdlib.h>
#include <string.h>

#include "collateral/json.h"
#include "util/limits.h"

#define ROOT "tcbInfo"

/* sgxtcbcomponents / tdxtcbcomponents: exactly 16 {svn, category?, type?}. */
static int components(json_object *tcb, const char *parent, const char *key, uint8_t svn[16],
		      struct tdc_error *e)
{
	json_object *arr, *v;
	size_t n;
	char apath[TDC_JPATH_MAX];
	TDC_GUARD(tdc_json_array(tcb, parent, key, true, 16, 16, &arr, &n, e));
	tdc_jpath_key(apath, parent, key);
	for (size_t i = 0; i < 16; i++) {
		char path[TDC_JPATH_MAX];
		json_object *c = json_object_array_get_idx(arr, i);
		int64_t x;
		tdc_jpath_idx(path, apath, i);
		if (!json_object_is_type(c, json_type_object))
			return TDC_FAILF(e, TDC_E_FORMAT, "wrong JSON type", "%s: expected object",
					 path);
		TDC_GUARD(tdc_json_int(c, path, "svn", 0, UINT8_MAX, &x, e));
		svn[i] = (uint8_t)x;
		/* informational only, but a wrong type means a document we do not understand */
		TDC_GUARD(tdc_json_field(c, path, "category", json_type_string, false, &v, e));
		TDC_GUARD(tdc_json_field(c, path, "type", json_type_string, false, &v, e));
	}
	return 0;
}

static int platform_level(json_object *lv, const char *path, struct tdc_tcb_level *out,
			  struct tdc_error *e)
{
	json_object *tcb;
	char tpath[TDC_JPATH_MAX];
	int64_t x;
	if (!json_object_is_type(lv, json_type_object))
		return TDC_FAILF(e, TDC_E_FORMAT, "wrong JSON type", "%s: expected object", path);
	TDC_GUARD(tdc_json_field(lv, path, "tcb", json_type_object, true, &tcb, e));
	tdc_jpath_key(tpath, path, "tcb");
	TDC_GUARD(components(tcb, tpath, "sgxtcbcomponents", out->sgx_svn, e));
	TDC_GUARD(tdc_json_int(tcb, tpath, "pcesvn", 0, UINT16_MAX, &x, e));
	out->pcesvn = (uint16_t)x;
	TDC_GUARD(components(tcb, tpath, "tdxtcbcomponents", out->tdx_svn, e));
	TDC_GUARD(tdc_json_time(lv, path, "tcbDate", &out->tcb_date, e));
	TDC_GUARD(tdc_json_status(lv, path, "tcbStatus", &out->status, e));
	return tdc_json_advisories(lv, path, &out->advisories, e);
}

static int tdx_module(json_object *root, struct tdc_tcb_info *t, struct tdc_error *e)
{
	json_object *m;
	const char *p = ROOT ".tdxModule";
	TDC_GUARD(tdc_json_field(root, ROOT, "tdxModule", json_type_object, false, &m, e));
	if (!m)
		return 0;
	TDC_GUARD(tdc_json_hex(m, p, "mrsigner", t->module_mrsigner, 48, e));
	TDC_GUARD(tdc_json_hex(m, p, "attributes", t->module_attributes, 8, e));
	TDC_GUARD(tdc_json_hex(m, p, "attributesMask", t->module_attributes_mask, 8, e));
	t->has_tdx_module = true;
	return 0;
}

static int module_identity(json_object *mi, const char *path, struct tdc_module_identity *out,
			   struct tdc_error *e)
{
	if (!json_object_is_type(mi, json_type_object))
		return TDC_FAILF(e, TDC_E_FORMAT, "wrong JSON type", "%s: expected object", path);
	TDC_GUARD(tdc_json_str_copy(mi, path, "id", out->id, sizeof(out->id), e));
	TDC_GUARD(tdc_json_hex(mi, path, "mrsigner", out->mrsigner, 48, e));
	TDC_GUARD(tdc_json_hex(mi, path, "attributes", out->attributes, 8, e));
	TDC_GUARD(tdc_json_hex(mi, path, "attributesMask", out->attributes_mask, 8, e));
	return tdc_json_isv_levels(mi, path, &out->levels, &out->n_levels, e);
}

static int module_identities(json_object *root, struct tdc_tcb_info *t, struct tdc_error *e)
{
	json_object *arr;
	size_t n;
	TDC_GUARD(tdc_json_array(root, ROOT, "tdxModuleIdentities", false, 0,
				 TDC_MAX_MODULE_IDENTITIES, &arr, &n, e));
	if (!arr || n == 0)
		return 0;
	t->modules = calloc(n, sizeof(*t->modules));
	if (!t->modules)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	t->n_modules = n;
	for (size_t i = 0; i < n; i++) {
		char path[TDC_JPATH_MAX];
		tdc_jpath_idx(path, ROOT ".tdxModuleIdentities", i);
		TDC_GUARD(module_identity(json_object_array_get_idx(arr, i), path, &t->modules[i],
					  e));
	}
	return 0;
}

static int platform_levels(json_object *root, struct tdc_tcb_info *t, struct tdc_error *e)
{
	json_object *arr;
	size_t n;
	TDC_GUARD(
		tdc_json_array(root, ROOT, "tcbLevels", true, 1, TDC_MAX_TCB_LEVELS, &arr, &n, e));
	t->levels = calloc(n, sizeof(*t->levels));
	if (!t->levels)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	t->n_levels = n;
	for (size_t i = 0; i < n; i++) {
		char path[TDC_JPATH_MAX];
		tdc_jpath_idx(path, ROOT ".tcbLevels", i);
		TDC_GUARD(
			platform_level(json_object_array_get_idx(arr, i), path, &t->levels[i], e));
	}
	return 0;
}

static int parse_root(json_object *root, struct tdc_tcb_info *t, struct tdc_error *e)
{
	int64_t x;
	TDC_GUARD(tdc_json_str_copy(root, ROOT, "id", t->id, sizeof(t->id), e));
	TDC_GUARD(tdc_json_int(root, ROOT, "version", 0, INT32_MAX, &x, e));
	t->version = (unsigned)x;
	TDC_GUARD(tdc_json_time(root, ROOT, "issueDate", &t->issue_date, e));
	TDC_GUARD(tdc_json_time(root, ROOT, "nextUpdate", &t->next_update, e));
	TDC_GUARD(tdc_json_hex(root, ROOT, "fmspc", t->fmspc, sizeof(t->fmspc), e));
	TDC_GUARD(tdc_json_hex(root, ROOT, "pceId", t->pce_id, sizeof(t->pce_id), e));
	TDC_GUARD(tdc_json_int(root, ROOT, "tcbType", 0, INT32_MAX, &x, e));
	t->tcb_type = (unsigned)x;
	TDC_GUARD(tdc_json_int(root, ROOT, "tcbEvaluationDataNumber", 0, UINT32_MAX, &x, e));
	t->tcb_eval_num = (uint32_t)x;
	TDC_GUARD(tdx_module(root, t, e));
	TDC_GUARD(module_identities(root, t, e));
	return platform_levels(root, t, e);
}

int tdc_tcb_info_parse(const uint8_t *json, size_t len, struct tdc_tcb_info *out,
		       struct tdc_error *e)
{
	json_object *root;
	if (!out)
		return TDC_FAIL(e, TDC_E_USAGE, "tcb_info_parse: NULL output");
	memset(out, 0, sizeof(*out));
	TDC_GUARD(tdc_json_parse_object(json, len, TDC_MAX_COLLATERAL_JSON, ROOT, &root, e));
	int r = parse_root(root, out, e);
	json_object_put(root);
	if (r < 0)
		tdc_tcb_info_free(out);
	return r;
}

void tdc_tcb_info_free(struct tdc_tcb_info *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->modules && i < t->n_modules; i++)
		tdc_isv_levels_free(t->modules[i].levels, t->modules[i].n_levels);
	free(t->modules);
	for (size_t i = 0; t->levels && i < t->n_levels; i++)
		tdc_advisories_free(&t->levels[i].advisories);
	free(t->levels);
	memset(t, 0, sizeof(*t));
}
