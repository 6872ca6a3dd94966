/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PCS response body {"<key>":{...},"signature":"<hex r||s>"} -> the exact
 * bytes of the inner object (what Intel signed) and the raw signature.
 *
 * Two passes: a strict json-c parse proves the body is one object with
 * exactly the two members and a well-formed signature; a raw scan of the
 * same bytes then finds the inner object's span, using json-c only to find
 * where the inner value ends. Nothing is re-serialised.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collateral/json.h"
#include "util/limits.h"
#include "util/rd.h"
#include "util/util.h"

#define KEY_MAX 32

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_ws(struct tdc_rd *r)
{
	while (!tdc_rd_empty(r) && is_ws(tdc_rd_at(r, tdc_rd_mark(r))))
		if (tdc_rd_skip(r, 1, NULL, NULL) < 0)
			break;
}

static void trim_trailing_ws(struct tdc_rd *r)
{
	size_t before;
	do {
		before = tdc_rd_remaining(r);
		tdc_rd_trim_trailing(r, ' ');
		tdc_rd_trim_trailing(r, '\t');
		tdc_rd_trim_trailing(r, '\n');
		tdc_rd_trim_trailing(r, '\r');
	} while (tdc_rd_remaining(r) != before);
}

/* Skips whitespace, then requires the literal s. */
static int expect(struct tdc_rd *r, const char *s, struct tdc_error *e)
{
	skip_ws(r);
	size_t n = strlen(s);
	if (!tdc_rd_starts_with(r, s, n))
		return TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(r), "unexpected PCS body layout",
				   "expected '%s'", s);
	return tdc_rd_skip(r, n, s, e);
}

/* Length of the JSON value at the cursor. The body already passed the strict
 * parse, so the lenient tokener (which stops at the value's last byte instead
 * of rejecting what follows) ends exactly where that value ends. */
static int value_span(const struct tdc_rd *r, size_t *n, struct tdc_error *e)
{
	struct tdc_rd copy = *r, tail;
	tdc_rd_rest(&copy, &tail);
	json_tokener *tok = json_tokener_new_ex(TDC_MAX_JSON_DEPTH);
	if (!tok)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	json_object *v =
		json_tokener_parse_ex(tok, (const char *)tdc_rd_ptr(&tail), (int)tdc_rd_len(&tail));
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	bool ok = v && json_object_is_type(v, json_type_object);
	json_object_put(v);
	if (!ok)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(r), "bad PCS body",
				   "inner value is not a JSON object");
	*n = end;
	return 0;
}

/* Strict pass: exactly {key: object, "signature": 128-hex string}. */
static int check_members(const uint8_t *body, size_t len, const char *key, uint8_t sig[64],
			 struct tdc_error *e)
{
	json_object *root, *v;
	TDC_GUARD(tdc_json_parse_object(body, len, TDC_MAX_COLLATERAL_JSON, "PCS body", &root, e));
	int r = 0;
	if (json_object_object_length(root) != 2)
		r = TDC_FAILF(e, TDC_E_FORMAT, "bad PCS body",
			      "%d members, expected %s and signature",
			      json_object_object_length(root), key);
	if (r == 0)
		r = tdc_json_field(root, "", key, json_type_object, true, &v, e);
	if (r == 0)
		r = tdc_json_hex(root, "", "signature", sig, 64, e);
	json_object_put(root);
	return r;
}

int tdc_pcs_body_split(const uint8_t *body, size_t len, const char *key, struct tdc_buf *inner,
		       uint8_t sig[64], struct tdc_error *e)
{
	char lit[KEY_MAX + 8];
	uint8_t raw_sig[64];
	size_t n = 0;
	struct tdc_rd r, in, hex;

	if (!inner || !sig || !key)
		return TDC_FAIL(e, TDC_E_USAGE, "pcs_body_split: NULL argument");
	inner->data = NULL;
	inner->len = 0;
	if (!body || strlen(key) == 0 || strlen(key) > KEY_MAX || strpbrk(key, "\"\\"))
		return TDC_FAIL(e, TDC_E_USAGE, "pcs_body_split: bad key");

	TDC_GUARD(check_members(body, len, key, raw_sig, e));

	tdc_rd_init(&r, body, len);
	snprintf(lit, sizeof(lit), "\"%s\"", key);
	TDC_GUARD(expect(&r, "{", e));
	TDC_GUARD(expect(&r, lit, e));
	TDC_GUARD(expect(&r, ":", e));
	skip_ws(&r);
	TDC_GUARD(value_span(&r, &n, e));
	TDC_GUARD(tdc_rd_sub(&r, n, &in, key, e));
	/* json-c also swallows whitespace after the value: not part of the object */
	trim_trailing_ws(&in);
	TDC_GUARD(expect(&r, ",", e));
	TDC_GUARD(expect(&r, "\"signature\"", e));
	TDC_GUARD(expect(&r, ":", e));
	TDC_GUARD(expect(&r, "\"", e));
	/* the raw text must be the 128 digits themselves, not an escaped form */
	TDC_GUARD(tdc_rd_sub(&r, 128, &hex, "signature", e));
	TDC_GUARD(expect(&r, "\"", e));
	TDC_GUARD(expect(&r, "}", e));
	skip_ws(&r);
	TDC_GUARD(tdc_rd_end(&r, "PCS body", e));

	uint8_t check[64];
	TDC_GUARD(tdc_hex_decode((const char *)tdc_rd_ptr(&hex), tdc_rd_len(&hex), check, 64,
				 "signature", e));
	if (memcmp(check, raw_sig, 64) != 0)
		return TDC_FAIL(e, TDC_E_INTERNAL, "PCS body: signature scan mismatch");

	/* the span must itself be exactly one object (it is what lib/verify parses) */
	json_object *obj;
	TDC_GUARD(tdc_json_parse_object(tdc_rd_ptr(&in), tdc_rd_len(&in), TDC_MAX_COLLATERAL_JSON,
					key, &obj, e));
	json_object_put(obj);

	uint8_t *copy = malloc(tdc_rd_len(&in) + 1);
	if (!copy)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	memcpy(copy, tdc_rd_ptr(&in), tdc_rd_len(&in));
	copy[tdc_rd_len(&in)] = '\0';
	inner->data = copy;
	inner->len = tdc_rd_len(&in);
	memcpy(sig, raw_sig, 64);
	return 0;
}
