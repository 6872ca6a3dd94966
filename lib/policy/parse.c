/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy JSON: strict parsing (json-c strict grammar, every key known, exact
 * types, hex lengths, caps) and the canonical form. Anything doubtful is an
 * error at load time, so evaluation never has to guess.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "policy/policy-int.h"
#include "util/json.h"
#include "util/util.h"

#define JPATH_MAX 96

const struct tdc_policy_mr_desc tdc_policy_mrs[TDC_PMR__COUNT] = {
	[TDC_PMR_MRSEAM] = { "mrseam", offsetof(struct tdc_td_report, mrseam) },
	[TDC_PMR_MRTD] = { "mrtd", offsetof(struct tdc_td_report, mrtd) },
	[TDC_PMR_RTMR0] = { "rtmr0", offsetof(struct tdc_td_report, rtmr[0]) },
	[TDC_PMR_RTMR1] = { "rtmr1", offsetof(struct tdc_td_report, rtmr[1]) },
	[TDC_PMR_RTMR2] = { "rtmr2", offsetof(struct tdc_td_report, rtmr[2]) },
	[TDC_PMR_RTMR3] = { "rtmr3", offsetof(struct tdc_td_report, rtmr[3]) },
	[TDC_PMR_MRCONFIGID] = { "mrconfigid", offsetof(struct tdc_td_report, mrconfigid) },
	[TDC_PMR_MROWNER] = { "mrowner", offsetof(struct tdc_td_report, mrowner) },
	[TDC_PMR_MROWNERCONFIG] = { "mrownerconfig",
				    offsetof(struct tdc_td_report, mrownerconfig) },
};

static void policy_defaults(struct tdc_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->require_sept_ve_disable = true;
	p->tcb_status[TDC_TCB_UP_TO_DATE] = true;
	p->mrservicetd_zero = true;
}

void tdc_policy_free(struct tdc_policy *p)
{
	if (!p)
		return;
	for (int i = 0; i < TDC_PMR__COUNT; i++)
		free(p->mr[i].v);
	free(p->xfam);
	for (int i = 0; i < 4; i++) {
		for (size_t j = 0; j < p->events[i].n; j++)
			free(p->events[i].ev[j].digest);
		free(p->events[i].ev);
	}
	free(p->refused.id);
	free(p->allowed_only.id);
	free(p);
}

/* Paths are for error messages only: a long unknown key is simply cut short. */
static void jpath(char *out, const char *parent, const char *key)
{
	int n;
	if (parent && *parent)
		n = snprintf(out, JPATH_MAX, "%.40s.%.50s", parent, key);
	else
		n = snprintf(out, JPATH_MAX, "%.90s", key);
	(void)n;
}

static void jpath_idx(char *out, const char *parent, size_t i)
{
	int n = snprintf(out, JPATH_MAX, "%.70s[%zu]", parent, i);
	(void)n;
}

static int want_type(json_object *v, json_type t, const char *path, struct tdc_error *e)
{
	if (!json_object_is_type(v, t))
		return TDC_FAILF(e, TDC_E_FORMAT, "wrong JSON type in policy", "%s: expected %s",
				 path, json_type_to_name(t));
	return 0;
}

/* Array of 1..max elements (min 0 if empty_ok). */
static int get_array(json_object *v, const char *path, bool empty_ok, size_t max, size_t *n,
		     struct tdc_error *e)
{
	TDC_GUARD(want_type(v, json_type_array, path, e));
	*n = json_object_array_length(v);
	if (*n == 0 && !empty_ok)
		return TDC_FAILF(e, TDC_E_FORMAT, "empty list in policy",
				 "%s: leave the key out to accept any value", path);
	if (*n > max)
		return TDC_FAILF(e, TDC_E_LIMIT, "too many values in policy", "%s: %zu, limit %zu",
				 path, *n, max);
	return 0;
}

static int get_string(json_object *v, const char *path, const char **s, size_t *len,
		      struct tdc_error *e)
{
	TDC_GUARD(want_type(v, json_type_string, path, e));
	*s = json_object_get_string(v);
	*len = (size_t)json_object_get_string_len(v);
	if (strlen(*s) != *len)
		return TDC_FAILF(e, TDC_E_FORMAT, "NUL byte in policy string", "%s", path);
	return 0;
}

static int get_hex(json_object *v, const char *path, uint8_t *out, size_t n, struct tdc_error *e)
{
	const char *s;
	size_t len;
	TDC_GUARD(get_string(v, path, &s, &len, e));
	return tdc_hex_decode(s, len, out, n, path, e);
}

static int get_bool(json_object *v, const char *path, bool *out, struct tdc_error *e)
{
	TDC_GUARD(want_type(v, json_type_boolean, path, e));
	*out = json_object_get_boolean(v);
	return 0;
}

/* A list of fixed-size hex values, any-of; duplicates are refused as likely typos. */
static int parse_hex_list(json_object *v, const char *path, size_t size, size_t *n_out,
			  uint8_t **out, struct tdc_error *e)
{
	size_t n;
	TDC_GUARD(get_array(v, path, false, TDC_MAX_POLICY_VALUES, &n, e));
	uint8_t *vals = calloc(n, size);
	if (!vals)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		char p[JPATH_MAX];
		jpath_idx(p, path, i);
		int r = get_hex(json_object_array_get_idx(v, i), p, vals + i * size, size, e);
		for (size_t j = 0; r == 0 && j < i; j++) {
			if (memcmp(vals + j * size, vals + i * size, size) == 0)
				r = TDC_FAILF(e, TDC_E_FORMAT, "duplicate value in policy",
					      "%s repeats [%zu]", p, j);
		}
		if (r < 0) {
			free(vals);
			return r;
		}
	}
	*n_out = n;
	*out = vals;
	return 0;
}

static bool advisory_id_ok(const char *s, size_t len)
{
	if (len == 0 || len > TDC_MAX_ADVISORY_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static int parse_advisories(json_object *v, const char *path, struct tdc_advisories *out,
			    struct tdc_error *e)
{
	size_t n;
	TDC_GUARD(get_array(v, path, true, TDC_MAX_POLICY_ADVISORIES, &n, e));
	if (n == 0)
		return 0;
	out->id = calloc(n, sizeof(*out->id));
	if (!out->id)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		char p[JPATH_MAX];
		const char *s;
		size_t len;
		jpath_idx(p, path, i);
		TDC_GUARD(get_string(json_object_array_get_idx(v, i), p, &s, &len, e));
		if (!advisory_id_ok(s, len))
			return TDC_FAILF(e, TDC_E_FORMAT, "bad advisory ID in policy",
					 "%s: 1..%d characters of A-Z a-z 0-9 - _ .", p,
					 TDC_MAX_ADVISORY_LEN);
		for (size_t j = 0; j < out->n; j++) {
			if (strcmp(out->id[j], s) == 0)
				return TDC_FAILF(e, TDC_E_FORMAT, "duplicate value in policy",
						 "%s repeats [%zu]", p, j);
		}
		memcpy(out->id[out->n++], s, len + 1);
	}
	return 0;
}

static int parse_tcb_status(json_object *v, const char *path, struct tdc_policy *p,
			    struct tdc_error *e)
{
	size_t n;
	TDC_GUARD(get_array(v, path, false, TDC_TCB__COUNT, &n, e));
	memset(p->tcb_status, 0, sizeof(p->tcb_status));
	p->tcb_status_configured = true;
	for (size_t i = 0; i < n; i++) {
		char ip[JPATH_MAX];
		const char *s;
		size_t len;
		enum tdc_tcb_status st;
		jpath_idx(ip, path, i);
		TDC_GUARD(get_string(json_object_array_get_idx(v, i), ip, &s, &len, e));
		if (tdc_tcb_status_parse(s, &st, NULL) < 0)
			return TDC_FAILF(e, TDC_E_FORMAT, "unknown TCB status in policy",
					 "%s: \"%.40s\"", ip, s);
		/* A revoked platform is never acceptable, whatever the policy author wants. */
		if (st == TDC_TCB_REVOKED)
			return TDC_FAILF(e, TDC_E_FORMAT, "policy may not allow a revoked TCB",
					 "%s: \"Revoked\"", ip);
		if (p->tcb_status[st])
			return TDC_FAILF(e, TDC_E_FORMAT, "duplicate value in policy", "%s", ip);
		p->tcb_status[st] = true;
	}
	return 0;
}

static int parse_attr_bit(json_object *v, const char *path, unsigned *bit, struct tdc_error *e)
{
	if (json_object_is_type(v, json_type_int)) {
		int64_t b = json_object_get_int64(v);
		if (b < 0 || b > 63)
			return TDC_FAILF(e, TDC_E_FORMAT, "TD attribute bit out of range",
					 "%s: %lld, expected 0..63", path, (long long)b);
		*bit = (unsigned)b;
	} else if (json_object_is_type(v, json_type_string)) {
		const char *s;
		size_t len;
		unsigned b;
		TDC_GUARD(get_string(v, path, &s, &len, e));
		for (b = 0; b < 64; b++) {
			const char *name = tdc_td_attribute_name(b);
			if (name && strcmp(name, s) == 0)
				break;
		}
		if (b == 64)
			return TDC_FAILF(e, TDC_E_FORMAT, "unknown TD attribute name",
					 "%s: \"%.40s\"", path, s);
		*bit = b;
	} else {
		return TDC_FAILF(e, TDC_E_FORMAT, "wrong JSON type in policy",
				 "%s: expected a bit name or number", path);
	}
	if ((1ull << *bit) & TDC_TDATTR_OWN_RULES)
		return TDC_FAILF(e, TDC_E_FORMAT, "TD attribute bit has its own setting",
				 "%s: use allow_debug / require_sept_ve_disable", path);
	return 0;
}

static int parse_td_attributes(json_object *obj, const char *path, struct tdc_policy *p,
			       struct tdc_error *e)
{
	TDC_GUARD(want_type(obj, json_type_object, path, e));
	p->td_attributes_configured = true;
	json_object_object_foreach(obj, key, v)
	{
		char kp[JPATH_MAX];
		jpath(kp, path, key);
		if (strcmp(key, "allow_debug") == 0) {
			TDC_GUARD(get_bool(v, kp, &p->allow_debug, e));
		} else if (strcmp(key, "require_sept_ve_disable") == 0) {
			TDC_GUARD(get_bool(v, kp, &p->require_sept_ve_disable, e));
		} else if (strcmp(key, "allow_bits") == 0) {
			size_t n;
			TDC_GUARD(get_array(v, kp, true, 64, &n, e));
			for (size_t i = 0; i < n; i++) {
				char ip[JPATH_MAX];
				unsigned bit = 0;
				jpath_idx(ip, kp, i);
				TDC_GUARD(parse_attr_bit(json_object_array_get_idx(v, i), ip, &bit,
							 e));
				if (p->allow_bits & (1ull << bit))
					return TDC_FAILF(e, TDC_E_FORMAT,
							 "duplicate value in policy", "%s", ip);
				p->allow_bits |= 1ull << bit;
			}
		} else {
			return TDC_FAILF(e, TDC_E_FORMAT, "unknown key in policy", "%s", kp);
		}
	}
	return 0;
}

/* A short text member (type, role, what): printable ASCII, bounded. */
static int get_text(json_object *v, const char *path, char *out, size_t cap, struct tdc_error *e)
{
	const char *s;
	size_t len;
	TDC_GUARD(get_string(v, path, &s, &len, e));
	if (len >= cap)
		return TDC_FAILF(e, TDC_E_LIMIT, "text too long in policy", "%s: %zu characters, "
				 "limit %zu", path, len, cap - 1);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return TDC_FAILF(e, TDC_E_FORMAT, "non-printable character in policy text",
					 "%s", path);
	memcpy(out, s, len + 1);
	return 0;
}

static int parse_event(json_object *obj, const char *path, struct tdc_policy_event *ev,
		       struct tdc_error *e)
{
	bool digest = false;
	TDC_GUARD(want_type(obj, json_type_object, path, e));
	json_object_object_foreach(obj, key, v)
	{
		char kp[JPATH_MAX];
		jpath(kp, path, key);
		if (strcmp(key, "digest") == 0) {
			uint8_t *vals = NULL;
			TDC_GUARD(parse_hex_list(v, kp, TDC_MR_SIZE, &ev->n, &vals, e));
			ev->digest = (uint8_t(*)[TDC_MR_SIZE])vals;
			digest = true;
		} else if (strcmp(key, "type") == 0) {
			TDC_GUARD(get_text(v, kp, ev->type, sizeof(ev->type), e));
		} else if (strcmp(key, "role") == 0) {
			TDC_GUARD(get_text(v, kp, ev->role, sizeof(ev->role), e));
		} else if (strcmp(key, "what") == 0) {
			TDC_GUARD(get_text(v, kp, ev->what, sizeof(ev->what), e));
		} else {
			return TDC_FAILF(e, TDC_E_FORMAT, "unknown key in policy", "%s", kp);
		}
	}
	if (!digest)
		return TDC_FAILF(e, TDC_E_FORMAT, "policy event without digest", "%s", path);
	return 0;
}

/* "events": {"rtmr0".."rtmr3": [event, ...]} */
static int parse_events(json_object *obj, const char *path, struct tdc_policy *p,
			struct tdc_error *e)
{
	TDC_GUARD(want_type(obj, json_type_object, path, e));
	json_object_object_foreach(obj, key, v)
	{
		char kp[JPATH_MAX];
		int r = -1;
		jpath(kp, path, key);
		for (int i = 0; i < 4; i++)
			if (!strcmp(key, tdc_policy_mrs[TDC_PMR_RTMR0 + i].name))
				r = i;
		if (r < 0)
			return TDC_FAILF(e, TDC_E_FORMAT, "unknown key in policy",
					 "%s (rtmr0..rtmr3)", kp);
		size_t n;
		TDC_GUARD(get_array(v, kp, false, TDC_MAX_POLICY_EVENTS, &n, e));
		struct tdc_policy_event_list *l = &p->events[r];
		if (!(l->ev = calloc(n, sizeof(*l->ev))))
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		l->n = n;
		for (size_t i = 0; i < n; i++) {
			char ip[JPATH_MAX];
			jpath_idx(ip, kp, i);
			TDC_GUARD(parse_event(json_object_array_get_idx(v, i), ip, &l->ev[i], e));
		}
	}
	return 0;
}

static int parse_reference(json_object *obj, const char *path, struct tdc_policy_reference *r,
			   struct tdc_error *e)
{
	struct {
		const char *key;
		char *out;
		size_t cap;
	} texts[] = {
		{ "tool", r->tool, sizeof(r->tool) },
		{ "target", r->target, sizeof(r->target) },
		{ "boot", r->boot, sizeof(r->boot) },
		{ "firmware", r->firmware, sizeof(r->firmware) },
		{ "firmware_sha256", r->firmware_sha256, sizeof(r->firmware_sha256) },
		{ "mrtd_order", r->mrtd_order, sizeof(r->mrtd_order) },
		{ "qemu", r->qemu, sizeof(r->qemu) },
		{ "image", r->image, sizeof(r->image) },
	};
	TDC_GUARD(want_type(obj, json_type_object, path, e));
	r->present = true;
	json_object_object_foreach(obj, key, v)
	{
		char kp[JPATH_MAX];
		bool done = false;
		jpath(kp, path, key);
		for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]) && !done; i++) {
			if (strcmp(key, texts[i].key))
				continue;
			TDC_GUARD(get_text(v, kp, texts[i].out, texts[i].cap, e));
			done = true;
		}
		if (done)
			continue;
		if (strcmp(key, "memory_mib") == 0) {
			if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
			    json_object_get_int64(v) > (1 << 22))
				return TDC_FAILF(e, TDC_E_FORMAT, "bad memory_mib in policy", "%s",
						 kp);
			r->memory_mib = (uint32_t)json_object_get_int64(v);
			continue;
		}
		return TDC_FAILF(e, TDC_E_FORMAT, "unknown key in policy", "%s", kp);
	}
	if (r->firmware_sha256[0]) {
		uint8_t d[32];
		TDC_GUARD(tdc_hex_decode(r->firmware_sha256, strlen(r->firmware_sha256), d,
					 sizeof(d), "reference.firmware_sha256", e));
	}
	return 0;
}

void tdc_policy_get_reference(const struct tdc_policy *p, struct tdc_policy_reference *out)
{
	*out = p->ref;
}

static int parse_member(const char *key, json_object *v, struct tdc_policy *p,
			struct tdc_error *e)
{
	uint8_t *vals = NULL;
	for (int i = 0; i < TDC_PMR__COUNT; i++) {
		if (strcmp(key, tdc_policy_mrs[i].name) == 0) {
			TDC_GUARD(parse_hex_list(v, key, TDC_MR_SIZE, &p->mr[i].n, &vals, e));
			p->mr[i].v = (uint8_t(*)[TDC_MR_SIZE])vals;
			return 0;
		}
	}
	if (strcmp(key, "version") == 0) {
		if (!json_object_is_type(v, json_type_int) ||
		    json_object_get_int64(v) != TDC_POLICY_VERSION)
			return TDC_FAILF(e, TDC_E_UNSUPPORTED, "unsupported policy version",
					 "version: expected %d", TDC_POLICY_VERSION);
		return 0;
	}
	if (strcmp(key, "xfam") == 0) {
		TDC_GUARD(parse_hex_list(v, key, 8, &p->n_xfam, &vals, e));
		p->xfam = (uint8_t(*)[8])vals;
		return 0;
	}
	if (strcmp(key, "td_attributes") == 0)
		return parse_td_attributes(v, key, p, e);
	if (strcmp(key, "tcb_status") == 0)
		return parse_tcb_status(v, key, p, e);
	if (strcmp(key, "advisories_refused") == 0)
		return parse_advisories(v, key, &p->refused, e);
	if (strcmp(key, "advisories_allowed_only") == 0) {
		p->has_allowed_only = true;
		return parse_advisories(v, key, &p->allowed_only, e);
	}
	if (strcmp(key, "min_tee_tcb_svn") == 0) {
		p->has_min_tee_tcb_svn = true;
		return get_hex(v, key, p->min_tee_tcb_svn, sizeof(p->min_tee_tcb_svn), e);
	}
	if (strcmp(key, "mrservicetd_zero") == 0) {
		p->mrservicetd_configured = true;
		return get_bool(v, key, &p->mrservicetd_zero, e);
	}
	if (strcmp(key, "allow_simulator") == 0) {
		p->simulator_configured = true;
		return get_bool(v, key, &p->allow_simulator, e);
	}
	if (strcmp(key, "events") == 0)
		return parse_events(v, key, p, e);
	if (strcmp(key, "reference") == 0)
		return parse_reference(v, key, &p->ref, e);
	return TDC_FAILF(e, TDC_E_FORMAT, "unknown key in policy", "%s", key);
}

/* Policy nesting is at most object > object > array > object > array (events). */
#define POLICY_JSON_DEPTH 6

static int parse_json(const char *json, size_t len, json_object **out, struct tdc_error *e)
{
	return tdc_json_parse_object_depth((const uint8_t *)json, len, TDC_MAX_POLICY_JSON,
					   POLICY_JSON_DEPTH, "policy", out, e);
}

int tdc_policy_parse(const char *json, size_t len, struct tdc_policy **out, struct tdc_error *e)
{
	if (!out)
		return TDC_FAIL(e, TDC_E_USAGE, "no output");
	*out = NULL;
	json_object *obj;
	TDC_GUARD(parse_json(json, len, &obj, e));
	struct tdc_policy *p = malloc(sizeof(*p));
	if (!p) {
		json_object_put(obj);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	policy_defaults(p);
	int r = 0;
	json_object_object_foreach(obj, key, v)
	{
		r = parse_member(key, v, p, e);
		if (r < 0)
			break;
	}
	json_object_put(obj);
	for (int i = 0; r == 0 && i < 4; i++)
		if (p->events[i].n && p->mr[TDC_PMR_RTMR0 + i].n)
			r = TDC_FAILF(e, TDC_E_FORMAT, "an RTMR pinned twice in policy",
				      "%s and events.%s: use one of them",
				      tdc_policy_mrs[TDC_PMR_RTMR0 + i].name,
				      tdc_policy_mrs[TDC_PMR_RTMR0 + i].name);
	if (r < 0) {
		tdc_policy_free(p);
		return r;
	}
	*out = p;
	return 0;
}

/* ---- canonical form ---- */


static int append(json_object *arr, json_object *v)
{
	if (!v)
		return -1;
	if (json_object_array_add(arr, v) < 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static json_object *hex_list(const uint8_t *vals, size_t n, size_t size)
{
	json_object *arr = json_object_new_array();
	char hex[2 * TDC_MR_SIZE + 1];
	for (size_t i = 0; arr && i < n; i++) {
		tdc_hex_encode(vals + i * size, size, hex);
		if (append(arr, json_object_new_string(hex)) < 0) {
			json_object_put(arr);
			return NULL;
		}
	}
	return arr;
}

static json_object *advisory_list(const struct tdc_advisories *a)
{
	json_object *arr = json_object_new_array();
	for (size_t i = 0; arr && i < a->n; i++) {
		if (append(arr, json_object_new_string(a->id[i])) < 0) {
			json_object_put(arr);
			return NULL;
		}
	}
	return arr;
}

static json_object *attributes_json(const struct tdc_policy *p)
{
	json_object *o = json_object_new_object();
	json_object *bits = json_object_new_array();
	if (!o || !bits)
		goto fail;
	for (unsigned b = 0; b < 64; b++) {
		if (!(p->allow_bits & (1ull << b)))
			continue;
		const char *name = tdc_td_attribute_name(b);
		if (append(bits, name ? json_object_new_string(name) : json_object_new_int((int)b)) <
		    0)
			goto fail;
	}
	if (tdc_json_add(o, "allow_debug", json_object_new_boolean(p->allow_debug)) < 0 ||
	    tdc_json_add(o, "require_sept_ve_disable",
		json_object_new_boolean(p->require_sept_ve_disable)) < 0)
		goto fail;
	if (tdc_json_add(o, "allow_bits", bits) < 0) {
		bits = NULL;
		goto fail;
	}
	return o;
fail:
	json_object_put(bits);
	json_object_put(o);
	return NULL;
}

static int add_text(json_object *o, const char *key, const char *s)
{
	return *s ? tdc_json_add(o, key, json_object_new_string(s)) : 0;
}

static int add_events(json_object *o, const struct tdc_policy *p)
{
	json_object *all = NULL;
	for (int i = 0; i < 4; i++) {
		const struct tdc_policy_event_list *l = &p->events[i];
		if (!l->n)
			continue;
		if (!all && !(all = json_object_new_object()))
			return -1;
		json_object *arr = json_object_new_array();
		if (!arr || tdc_json_add(all, tdc_policy_mrs[TDC_PMR_RTMR0 + i].name, arr) < 0)
			goto fail;
		for (size_t j = 0; j < l->n; j++) {
			const struct tdc_policy_event *ev = &l->ev[j];
			json_object *eo = json_object_new_object();
			if (!eo || append(arr, eo) < 0 || add_text(eo, "type", ev->type) < 0 ||
			    add_text(eo, "role", ev->role) < 0 || add_text(eo, "what", ev->what) < 0 ||
			    tdc_json_add(eo, "digest", hex_list((const uint8_t *)ev->digest, ev->n,
						       TDC_MR_SIZE)) < 0)
				goto fail;
		}
	}
	return all ? tdc_json_add(o, "events", all) : 0;
fail:
	json_object_put(all);
	return -1;
}

json_object *tdc_policy_reference_json(const struct tdc_policy_reference *r)
{
	json_object *o = json_object_new_object();
	if (!o || add_text(o, "tool", r->tool) < 0 || add_text(o, "target", r->target) < 0 ||
	    add_text(o, "boot", r->boot) < 0 || add_text(o, "firmware", r->firmware) < 0 ||
	    add_text(o, "firmware_sha256", r->firmware_sha256) < 0 ||
	    add_text(o, "mrtd_order", r->mrtd_order) < 0 || add_text(o, "qemu", r->qemu) < 0 ||
	    add_text(o, "image", r->image) < 0 ||
	    (r->memory_mib && tdc_json_add(o, "memory_mib", json_object_new_int((int)r->memory_mib)) < 0)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *policy_json(const struct tdc_policy *p)
{
	json_object *o = json_object_new_object();
	json_object *st = json_object_new_array();
	if (!o || !st)
		goto fail;
	for (int s = 0; s < TDC_TCB__COUNT; s++) {
		if (p->tcb_status[s] &&
		    append(st, json_object_new_string(tdc_tcb_status_name(s))) < 0)
			goto fail;
	}
	if (tdc_json_add(o, "version", json_object_new_int(TDC_POLICY_VERSION)) < 0 ||
	    tdc_json_add(o, "allow_simulator", json_object_new_boolean(p->allow_simulator)) < 0)
		goto fail;
	if (tdc_json_add(o, "tcb_status", st) < 0) {
		st = NULL;
		goto fail;
	}
	st = NULL;
	if (tdc_json_add(o, "advisories_refused", advisory_list(&p->refused)) < 0)
		goto fail;
	if (p->has_allowed_only &&
	    tdc_json_add(o, "advisories_allowed_only", advisory_list(&p->allowed_only)) < 0)
		goto fail;
	if (tdc_json_add(o, "td_attributes", attributes_json(p)) < 0)
		goto fail;
	if (p->n_xfam && tdc_json_add(o, "xfam", hex_list((const uint8_t *)p->xfam, p->n_xfam, 8)) < 0)
		goto fail;
	if (p->has_min_tee_tcb_svn) {
		char hex[33];
		tdc_hex_encode(p->min_tee_tcb_svn, 16, hex);
		if (tdc_json_add(o, "min_tee_tcb_svn", json_object_new_string(hex)) < 0)
			goto fail;
	}
	if (tdc_json_add(o, "mrservicetd_zero", json_object_new_boolean(p->mrservicetd_zero)) < 0)
		goto fail;
	for (int i = 0; i < TDC_PMR__COUNT; i++) {
		if (p->mr[i].n &&
		    tdc_json_add(o, tdc_policy_mrs[i].name,
			hex_list((const uint8_t *)p->mr[i].v, p->mr[i].n, TDC_MR_SIZE)) < 0)
			goto fail;
	}
	if (add_events(o, p) < 0 || (p->ref.present && tdc_json_add(o, "reference", tdc_policy_reference_json(&p->ref)) < 0))
		goto fail;
	return o;
fail:
	json_object_put(st);
	json_object_put(o);
	return NULL;
}

int tdc_policy_to_json(const struct tdc_policy *p, char **out, struct tdc_error *e)
{
	if (!p || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "no policy");
	*out = NULL;
	json_object *o = policy_json(p);
	if (!o)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	const char *s = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	*out = s ? strdup(s) : NULL;
	json_object_put(o);
	if (!*out)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	return 0;
}
