/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin protocol: one JSON object per line in, one per line out, over
 * the broker's local Unix socket (root only; the server checks the peer's
 * credentials). Secret values travel base64-encoded inside the request and
 * are wiped from every buffer after use; no reply ever carries one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "util/json.h"
#include "util/util.h"
#include "kbs/kbs-int.h"
#include "tdcrypt/policy.h"

static json_object *err_reply(const char *code, const char *msg)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(code));
	json_object_object_add(o, "message", json_object_new_string(msg ? msg : ""));
	return o;
}

static json_object *tdc_reply(const struct tdc_error *e)
{
	char buf[400];
	return err_reply(tdc_err_name(e->code), tdc_error_format(e, buf, sizeof(buf)));
}

static json_object *ok_reply(void)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

static const char *str_member(json_object *req, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The shared strict decoder (lib/util/base64.c), straight into a locked buffer. */
static int b64_decode(const char *s, struct tdc_secret *out, struct tdc_error *e)
{
	size_t n = strlen(s);
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > 2 * TDC_MAX_KBS_SECRET + 8)
		return TDC_FAIL(e, TDC_E_FORMAT, "key_b64: not base64 of 1..4096 bytes");
	struct tdc_secret tmp;
	TDC_GUARD(tdc_secret_alloc(n / 4 * 3, &tmp, e));
	size_t len = 0;
	int r = tdc_base64_decode(s, n, tmp.data, tmp.len, &len, e);
	if (r == 0 && (len == 0 || len > TDC_MAX_KBS_SECRET))
		r = TDC_FAILF(e, TDC_E_LIMIT, "key size out of range", "%zu bytes, 1..%u", len,
			      TDC_MAX_KBS_SECRET);
	if (r == 0)
		r = tdc_secret_alloc(len, out, e);
	if (r == 0)
		memcpy(out->data, tmp.data, len);
	tdc_secret_free(&tmp);
	return r;
}

/* The key of an add/rotate request: key_b64, or generate (a byte count). */
static int req_key(json_object *req, struct tdc_secret *key, struct tdc_error *e)
{
	json_object *g;
	const char *b = str_member(req, "key_b64");
	if (b)
		return b64_decode(b, key, e);
	if (json_object_object_get_ex(req, "generate", &g) && json_object_is_type(g, json_type_int)) {
		int64_t n = json_object_get_int64(g);
		if (n < 1 || n > (int64_t)TDC_MAX_KBS_SECRET)
			return TDC_FAILF(e, TDC_E_LIMIT, "generate: size out of range", "1..%u",
					 TDC_MAX_KBS_SECRET);
		TDC_GUARD(tdc_secret_alloc((size_t)n, key, e));
		if (RAND_priv_bytes(key->data, (int)n) != 1) {
			tdc_secret_free(key);
			return TDC_FAIL(e, TDC_E_CRYPTO, "no random bytes");
		}
		return 0;
	}
	return TDC_FAIL(e, TDC_E_USAGE, "key_b64 or generate is required");
}

/* "policy" as an object or a JSON string; NULL if absent. */
static const char *req_policy(json_object *req, bool *present)
{
	json_object *p;
	*present = json_object_object_get_ex(req, "policy", &p) && p;
	if (!*present)
		return NULL;
	if (json_object_is_type(p, json_type_string))
		return json_object_get_string(p);
	return json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN);
}

static json_object *op_add_rotate(struct tdc_store *s, json_object *req, int64_t now, bool rotate)
{
	struct tdc_error e;
	struct tdc_secret key = { 0 };
	bool has_policy;
	const char *id = str_member(req, "id");
	if (!id)
		return err_reply("usage", "id is required");
	tdc_error_clear(&e);
	int r = req_key(req, &key, &e);
	const char *pol = req_policy(req, &has_policy);
	if (r == 0 && rotate)
		r = tdc_store_secret_rotate(s, id, key.data, key.len, now, &e);
	else if (r == 0)
		r = tdc_store_secret_put(s, id, key.data, key.len, pol, now, &e);
	tdc_secret_free(&key);
	if (r < 0)
		return tdc_reply(&e);
	json_object *o = ok_reply();
	json_object_object_add(o, "id", json_object_new_string(id));
	if (!rotate && !has_policy)
		json_object_object_add(o, "warning",
				       json_object_new_string("no policy: the broker releases "
							      "nothing until one is set"));
	return o;
}

static json_object *op_list(struct tdc_store *s)
{
	struct tdc_secret_list l;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_store_secret_list(s, &l, &e) < 0)
		return tdc_reply(&e);
	json_object *o = ok_reply(), *arr = json_object_new_array();
	for (size_t i = 0; i < l.n; i++) {
		json_object *it = json_object_new_object();
		json_object_object_add(it, "id", json_object_new_string(l.items[i].id));
		json_object_object_add(it, "created", json_object_new_int64(l.items[i].created));
		json_object_object_add(it, "rotated", json_object_new_int64(l.items[i].rotated));
		json_object_object_add(it, "has_policy",
				       json_object_new_boolean(l.items[i].has_policy));
		json_object_array_add(arr, it);
	}
	tdc_secret_list_free(&l);
	json_object_object_add(o, "secrets", arr);
	return o;
}

static json_object *op_rm(struct tdc_store *s, json_object *req)
{
	struct tdc_error e;
	const char *id = str_member(req, "id");
	if (!id)
		return err_reply("usage", "id is required");
	tdc_error_clear(&e);
	if (tdc_store_secret_delete(s, id, &e) < 0)
		return tdc_reply(&e);
	return ok_reply();
}

static json_object *op_policy_set(struct tdc_store *s, json_object *req)
{
	struct tdc_error e;
	bool present;
	const char *id = str_member(req, "id");
	const char *pol = req_policy(req, &present);
	if (!id || !present)
		return err_reply("usage", "id and policy are required (policy null removes it)");
	tdc_error_clear(&e);
	if (tdc_store_policy_set(s, id, pol, &e) < 0)
		return tdc_reply(&e);
	return ok_reply();
}

static json_object *op_policy_show(struct tdc_store *s, json_object *req)
{
	struct tdc_error e;
	char *pol = NULL;
	const char *id = str_member(req, "id");
	if (!id)
		return err_reply("usage", "id is required");
	tdc_error_clear(&e);
	if (tdc_store_policy_get(s, id, &pol, &e) < 0)
		return tdc_reply(&e);
	json_object *o = ok_reply();
	json_object_object_add(o, "policy", pol ? json_tokener_parse(pol) : NULL);
	free(pol);
	return o;
}

static json_object *op_import(struct tdc_store *s, json_object *req, int64_t now)
{
	struct tdc_error e;
	size_t count = 0;
	const char *json = str_member(req, "json");
	if (!json)
		return err_reply("usage", "json (the content of secret.json) is required");
	tdc_error_clear(&e);
	if (tdc_store_import_flat_json(s, json, strlen(json), now, &count, &e) < 0)
		return tdc_reply(&e);
	json_object *o = ok_reply();
	json_object_object_add(o, "imported", json_object_new_int64((int64_t)count));
	json_object_object_add(o, "warning",
			       json_object_new_string("the imported secrets were stored in "
						      "plaintext in secret.json: delete that file "
						      "securely; they have no policy yet"));
	return o;
}

static json_object *op_audit(struct tdc_store *s, json_object *req)
{
	struct tdc_audit_query q = { 0 };
	struct tdc_audit_list l;
	struct tdc_error e;
	json_object *v;
	q.secret_id = str_member(req, "secret_id");
	if (json_object_object_get_ex(req, "after", &v))
		q.after_id = json_object_get_int64(v);
	if (json_object_object_get_ex(req, "limit", &v) && json_object_get_int64(v) > 0)
		q.limit = (size_t)json_object_get_int64(v);
	tdc_error_clear(&e);
	if (tdc_store_audit_list(s, &q, &l, &e) < 0)
		return tdc_reply(&e);
	json_object *o = ok_reply(), *arr = json_object_new_array();
	for (size_t i = 0; i < l.n; i++) {
		const struct tdc_audit_record *a = &l.items[i];
		json_object *it = json_object_new_object();
#define S(k, f) json_object_object_add(it, k, a->f ? json_object_new_string(a->f) : NULL)
		json_object_object_add(it, "id", json_object_new_int64(a->id));
		json_object_object_add(it, "time", json_object_new_int64(a->time));
		S("request_id", request_id);
		S("secret_id", secret_id);
		S("peer", peer);
		S("claims_digest", claims_digest);
		S("verdict", verdict);
		json_object_object_add(it, "decision",
				       json_object_new_string(a->decision == TDC_AUDIT_RELEASED ?
								      "released" :
								      "denied"));
		S("reason", reason);
#undef S
		json_object_array_add(arr, it);
	}
	tdc_audit_list_free(&l);
	json_object_object_add(o, "records", arr);
	return o;
}

/* Wipes every string of the request (it may hold key_b64). */
static void wipe_strings(json_object *o)
{
	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, k, v)
		{
			(void)k;
			wipe_strings(v);
		}
	} else if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			wipe_strings(json_object_array_get_idx(o, i));
	} else if (json_object_is_type(o, json_type_string)) {
		OPENSSL_cleanse((char *)json_object_get_string(o),
				(size_t)json_object_get_string_len(o));
	}
}

static json_object *op_metrics(json_object *(*metrics)(void *), void *marg)
{
	json_object *m = metrics ? metrics(marg) : NULL;
	if (!m)
		return err_reply("unavailable", "the network process did not answer");
	json_object *o = ok_reply();
	json_object_object_add(o, "metrics", m);
	return o;
}

char *kbs_admin_handle(struct tdc_store *s, json_object *(*metrics)(void *arg), void *marg,
		       const char *line, size_t len, int64_t now)
{
	json_object *req = NULL, *rep;
	struct tdc_error e;
	char buf[400];

	tdc_error_clear(&e);
	if (tdc_json_parse_object((const uint8_t *)line, len, TDC_MAX_ADMIN_LINE, "admin request",
				  &req, &e) < 0) {
		rep = err_reply("format", tdc_error_format(&e, buf, sizeof(buf)));
	} else {
		const char *op = str_member(req, "op");
		if (!op)
			rep = err_reply("usage", "op is required");
		else if (!strcmp(op, "secret.add"))
			rep = op_add_rotate(s, req, now, false);
		else if (!strcmp(op, "secret.rotate"))
			rep = op_add_rotate(s, req, now, true);
		else if (!strcmp(op, "secret.list"))
			rep = op_list(s);
		else if (!strcmp(op, "secret.rm"))
			rep = op_rm(s, req);
		else if (!strcmp(op, "secret.import"))
			rep = op_import(s, req, now);
		else if (!strcmp(op, "policy.set"))
			rep = op_policy_set(s, req);
		else if (!strcmp(op, "policy.show"))
			rep = op_policy_show(s, req);
		else if (!strcmp(op, "audit.list"))
			rep = op_audit(s, req);
		else if (!strcmp(op, "metrics"))
			rep = op_metrics(metrics, marg);
		else
			rep = err_reply("usage", "unknown op");
		wipe_strings(req);
		json_object_put(req);
	}
	const char *txt = json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN);
	char *out = strdup(txt ? txt : "{\"ok\":false,\"error\":\"nomem\"}");
	json_object_put(rep);
	return out;
}
