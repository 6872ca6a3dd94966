/* SPDX-License-Identifier: Apache-2.0 */
/* Strict json-c parsing and typed field getters shared by every JSON reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"
#include "util/limits.h"
#include "util/util.h"

int tdc_json_parse_object(const uint8_t *buf, size_t len, size_t max, const char *what,
			  json_object **out, struct tdc_error *e)
{
	return tdc_json_parse_object_depth(buf, len, max, TDC_MAX_JSON_DEPTH, what, out, e);
}

int tdc_json_parse_object_depth(const uint8_t *buf, size_t len, size_t max, int depth,
				const char *what, json_object **out, struct tdc_error *e)
{
	*out = NULL;
	if (!buf)
		return TDC_FAILF(e, TDC_E_USAGE, "no input", "%s", what);
	if (len > max)
		return TDC_FAILF(e, TDC_E_LIMIT, "JSON document too large",
				 "%s: %zu bytes, limit %zu", what, len, max);
	json_tokener *tok = json_tokener_new_ex(depth);
	if (!tok)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *obj = json_tokener_parse_ex(tok, (const char *)buf, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	int r = 0;
	if (!obj) {
		if (jerr == json_tokener_continue)
			r = TDC_FAIL_AT(e, TDC_E_FORMAT, len, "truncated JSON", "%s", what);
		else if (jerr == json_tokener_error_depth)
			r = TDC_FAILF(e, TDC_E_LIMIT, "JSON nested too deeply", "%s: limit %d",
				      what, depth);
		else
			r = TDC_FAIL_AT(e, TDC_E_FORMAT, end, "invalid JSON", "%s: %s", what,
					json_tokener_error_desc(jerr));
	} else if (end != len) {
		r = TDC_FAIL_AT(e, TDC_E_FORMAT, end, "trailing bytes after JSON", "%s: %zu bytes",
				what, len - end);
	} else if (!json_object_is_type(obj, json_type_object)) {
		r = TDC_FAILF(e, TDC_E_FORMAT, "JSON is not an object", "%s", what);
	}
	if (r < 0) {
		json_object_put(obj);
		return r;
	}
	*out = obj;
	return 0;
}

/* Paths only label errors: a (never expected) overlong one is cut, marked by "...". */
static void path_done(char *out, int n)
{
	if (n < 0 || n >= TDC_JPATH_MAX)
		memcpy(out + TDC_JPATH_MAX - 4, "...", 4);
}

void tdc_jpath_key(char *out, const char *parent, const char *key)
{
	int n;
	if (parent && *parent)
		n = snprintf(out, TDC_JPATH_MAX, "%s.%s", parent, key);
	else
		n = snprintf(out, TDC_JPATH_MAX, "%s", key);
	path_done(out, n);
}

void tdc_jpath_idx(char *out, const char *parent, size_t i)
{
	path_done(out, snprintf(out, TDC_JPATH_MAX, "%s[%zu]", parent ? parent : "", i));
}

static const char *type_name(json_type t)
{
	switch (t) {
	case json_type_object:
		return "object";
	case json_type_array:
		return "array";
	case json_type_string:
		return "string";
	case json_type_int:
		return "integer";
	case json_type_double:
		return "number";
	case json_type_boolean:
		return "boolean";
	default:
		return "null";
	}
}

int tdc_json_field(json_object *obj, const char *parent, const char *key, json_type type,
		   bool required, json_object **val, struct tdc_error *e)
{
	char path[TDC_JPATH_MAX];
	json_object *v = NULL;
	*val = NULL;
	if (!json_object_object_get_ex(obj, key, &v)) {
		if (!required)
			return 0;
		tdc_jpath_key(path, parent, key);
		return TDC_FAILF(e, TDC_E_FORMAT, "missing JSON field", "%s", path);
	}
	if (!json_object_is_type(v, type)) {
		tdc_jpath_key(path, parent, key);
		return TDC_FAILF(e, TDC_E_FORMAT, "wrong JSON type", "%s: expected %s, got %s",
				 path, type_name(type), type_name(json_object_get_type(v)));
	}
	*val = v;
	return 0;
}

int tdc_json_int(json_object *obj, const char *parent, const char *key, int64_t min, int64_t max,
		 int64_t *out, struct tdc_error *e)
{
	json_object *v;
	TDC_GUARD(tdc_json_field(obj, parent, key, json_type_int, true, &v, e));
	int64_t x = json_object_get_int64(v);
	/* json-c clamps values beyond int64 to INT64_MIN/MAX, so this also catches those */
	if (x < min || x > max) {
		char path[TDC_JPATH_MAX];
		tdc_jpath_key(path, parent, key);
		return TDC_FAILF(e, TDC_E_FORMAT, "JSON integer out of range",
				 "%s: %lld not in %lld..%lld", path, (long long)x, (long long)min,
				 (long long)max);
	}
	*out = x;
	return 0;
}

int tdc_json_str(json_object *obj, const char *parent, const char *key, size_t max_len,
		 const char **s, size_t *len, struct tdc_error *e)
{
	json_object *v;
	char path[TDC_JPATH_MAX];
	TDC_GUARD(tdc_json_field(obj, parent, key, json_type_string, true, &v, e));
	const char *str = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);
	if (strlen(str) != n) {
		tdc_jpath_key(path, parent, key);
		return TDC_FAILF(e, TDC_E_FORMAT, "NUL inside JSON string", "%s", path);
	}
	if (n > max_len) {
		tdc_jpath_key(path, parent, key);
		return TDC_FAILF(e, TDC_E_LIMIT, "JSON string too long", "%s: %zu bytes, limit %zu",
				 path, n, max_len);
	}
	*s = str;
	*len = n;
	return 0;
}

int tdc_json_str_copy(json_object *obj, const char *parent, const char *key, char *out, size_t cap,
		      struct tdc_error *e)
{
	const char *s;
	size_t n;
	TDC_GUARD(tdc_json_str(obj, parent, key, cap - 1, &s, &n, e));
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int tdc_json_hex(json_object *obj, const char *parent, const char *key, uint8_t *out, size_t n,
		 struct tdc_error *e)
{
	const char *s;
	size_t len;
	char path[TDC_JPATH_MAX];
	/* the length cap only keeps the error text short; hex_decode checks the exact length */
	TDC_GUARD(tdc_json_str(obj, parent, key, SIZE_MAX, &s, &len, e));
	tdc_jpath_key(path, parent, key);
	return tdc_hex_decode(s, len, out, n, path, e);
}

int tdc_json_time(json_object *obj, const char *parent, const char *key, int64_t *out,
		  struct tdc_error *e)
{
	const char *s;
	size_t len;
	char path[TDC_JPATH_MAX];
	TDC_GUARD(tdc_json_str(obj, parent, key, 64, &s, &len, e));
	tdc_jpath_key(path, parent, key);
	return tdc_time_parse(s, out, path, e);
}

int tdc_json_array(json_object *obj, const char *parent, const char *key, bool required, size_t min,
		   size_t max, json_object **arr, size_t *n, struct tdc_error *e)
{
	json_object *v;
	char path[TDC_JPATH_MAX];
	*arr = NULL;
	*n = 0;
	TDC_GUARD(tdc_json_field(obj, parent, key, json_type_array, required, &v, e));
	if (!v)
		return 0;
	size_t len = json_object_array_length(v);
	if (len < min) {
		tdc_jpath_key(path, parent, key);
		return TDC_FAILF(e, TDC_E_FORMAT, "JSON array too short",
				 "%s: %zu elements, need %zu", path, len, min);
	}
	if (len > max) {
		tdc_jpath_key(path, parent, key);
		return TDC_FAILF(e, TDC_E_LIMIT, "JSON array too long",
				 "%s: %zu elements, limit %zu", path, len, max);
	}
	*arr = v;
	*n = len;
	return 0;
}


int tdc_json_add(json_object *obj, const char *key, json_object *v)
{
	if (!v)
		return -1;
	if (json_object_object_add(obj, key, v) < 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}
