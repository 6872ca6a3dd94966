/* SPDX-License-Identifier: Apache-2.0 */
/* Collateral-specific JSON pieces: TCB statuses, advisory lists, ISV SVN levels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collateral/json.h"
#include "util/limits.h"
#include "util/util.h"

int tdc_json_status(json_object *obj, const char *parent, const char *key, enum tdc_tcb_status *out,
		    struct tdc_error *e)
{
	const char *s;
	size_t len;
	TDC_GUARD(tdc_json_str(obj, parent, key, 64, &s, &len, e));
	if (tdc_tcb_status_parse(s, out, NULL) < 0) {
		char path[TDC_JPATH_MAX];
		tdc_jpath_key(path, parent, key);
		return TDC_FAILF(e, TDC_E_FORMAT, "unknown TCB status", "%s: \"%s\"", path, s);
	}
	return 0;
}

int tdc_json_advisories(json_object *level, const char *parent, struct tdc_advisories *out,
			struct tdc_error *e)
{
	json_object *arr;
	size_t n;
	char apath[TDC_JPATH_MAX];
	TDC_GUARD(tdc_json_array(level, parent, "advisoryIDs", false, 0, TDC_MAX_ADVISORIES, &arr,
				 &n, e));
	if (!arr || n == 0)
		return 0;
	out->id = calloc(n, sizeof(*out->id));
	if (!out->id)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	tdc_jpath_key(apath, parent, "advisoryIDs");
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		char path[TDC_JPATH_MAX];
		tdc_jpath_idx(path, apath, i);
		if (!json_object_is_type(v, json_type_string))
			return TDC_FAILF(e, TDC_E_FORMAT, "wrong JSON type", "%s: expected string",
					 path);
		const char *s = json_object_get_string(v);
		size_t len = (size_t)json_object_get_string_len(v);
		if (len == 0 || strlen(s) != len)
			return TDC_FAILF(e, TDC_E_FORMAT, "bad advisory ID", "%s", path);
		if (len > TDC_MAX_ADVISORY_LEN)
			return TDC_FAILF(e, TDC_E_LIMIT, "advisory ID too long",
					 "%s: %zu bytes, limit %d", path, len,
					 TDC_MAX_ADVISORY_LEN);
		memcpy(out->id[i], s, len + 1);
		out->n = i + 1;
	}
	return 0;
}

static int isv_level(json_object *lv, const char *path, struct tdc_isv_level *out,
		     struct tdc_error *e)
{
	json_object *tcb;
	char tpath[TDC_JPATH_MAX];
	int64_t v;
	if (!json_object_is_type(lv, json_type_object))
		return TDC_FAILF(e, TDC_E_FORMAT, "wrong JSON type", "%s: expected object", path);
	TDC_GUARD(tdc_json_field(lv, path, "tcb", json_type_object, true, &tcb, e));
	tdc_jpath_key(tpath, path, "tcb");
	TDC_GUARD(tdc_json_int(tcb, tpath, "isvsvn", 0, UINT16_MAX, &v, e));
	out->isvsvn = (uint16_t)v;
	TDC_GUARD(tdc_json_time(lv, path, "tcbDate", &out->tcb_date, e));
	TDC_GUARD(tdc_json_status(lv, path, "tcbStatus", &out->status, e));
	return tdc_json_advisories(lv, path, &out->advisories, e);
}

int tdc_json_isv_levels(json_object *obj, const char *parent, struct tdc_isv_level **levels,
			size_t *n, struct tdc_error *e)
{
	json_object *arr;
	size_t len;
	char apath[TDC_JPATH_MAX];
	*levels = NULL;
	*n = 0;
	TDC_GUARD(tdc_json_array(obj, parent, "tcbLevels", true, 1, TDC_MAX_TCB_LEVELS, &arr, &len,
				 e));
	struct tdc_isv_level *lv = calloc(len, sizeof(*lv));
	if (!lv)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	*levels = lv;
	*n = len;
	tdc_jpath_key(apath, parent, "tcbLevels");
	for (size_t i = 0; i < len; i++) {
		char path[TDC_JPATH_MAX];
		tdc_jpath_idx(path, apath, i);
		TDC_GUARD(isv_level(json_object_array_get_idx(arr, i), path, &lv[i], e));
	}
	return 0;
}

void tdc_isv_levels_free(struct tdc_isv_level *levels, size_t n)
{
	if (!levels)
		return;
	for (size_t i = 0; i < n; i++)
		tdc_advisories_free(&levels[i].advisories);
	free(levels);
}
