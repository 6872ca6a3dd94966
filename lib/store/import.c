/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Import of the original solution's secret.json: a flat {"id": "passphrase"}
 * object. All or nothing; the passphrase strings inside the parsed JSON are
 * wiped before json-c frees them.
 */
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "store/store-int.h"
#include "util/json.h"

static int parse(const char *json, size_t len, json_object **out, struct tdc_error *e)
{
	/* depth 2: the object and its string members */
	return tdc_json_parse_object_depth((const uint8_t *)json, len, TDC_MAX_IMPORT_JSON, 2,
					   "secret file", out, e);
}

/* Wipes every string value in place (json-c owns the buffers, we own the object). */
static void wipe(json_object *obj)
{
	json_object_object_foreach(obj, key, v)
	{
		(void)key;
		if (json_object_is_type(v, json_type_string))
			OPENSSL_cleanse((char *)json_object_get_string(v),
					(size_t)json_object_get_string_len(v));
	}
}

static int import_all(struct tdc_store *s, json_object *obj, int64_t now, size_t *count,
		      struct tdc_error *e)
{
	if ((size_t)json_object_object_length(obj) > TDC_MAX_IMPORT_SECRETS)
		return TDC_FAILF(e, TDC_E_LIMIT, "too many secrets in the file", "limit %d",
				 TDC_MAX_IMPORT_SECRETS);
	json_object_object_foreach(obj, id, v)
	{
		int r = tdc_store_check_id(id, e);
		if (r < 0)
			return r;
		if (!json_object_is_type(v, json_type_string))
			return TDC_FAILF(e, TDC_E_FORMAT, "secret value is not a string", "%s", id);
		const char *pw = json_object_get_string(v);
		size_t len = (size_t)json_object_get_string_len(v);
		if (strlen(pw) != len)
			return TDC_FAILF(e, TDC_E_FORMAT, "NUL byte in a secret value", "%s", id);
		TDC_GUARD(tdc_store_insert_locked(s, id, (const uint8_t *)pw, len, NULL, now, e));
		(*count)++;
	}
	return 0;
}

int tdc_store_import_flat_json(struct tdc_store *s, const char *json, size_t len, int64_t now,
			       size_t *count, struct tdc_error *e)
{
	if (!s || !count)
		return TDC_FAIL(e, TDC_E_USAGE, "no store or count");
	*count = 0;
	json_object *obj;
	TDC_GUARD(parse(json, len, &obj, e));
	pthread_mutex_lock(&s->lock);
	int r = db_begin(s->db, e);
	if (r == 0)
		r = import_all(s, obj, now, count, e);
	if (r == 0)
		r = db_commit(s->db, e);
	if (r < 0) {
		db_rollback(s->db);
		*count = 0;
	}
	pthread_mutex_unlock(&s->lock);
	wipe(obj);
	json_object_put(obj);
	return r;
}
