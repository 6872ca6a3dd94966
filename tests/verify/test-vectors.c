/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Real-vector tests of the DCAP verifier: every vector, quote mutation and
 * collateral mutation in $TDC_TESTDATA/vectors.json, plus the evaluation
 * number floor, the cache (identical verdicts, hits, time re-checked on the
 * warm path) and concurrent use.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tdcrypt/verify.h"
#include "util/util.h"
#include "x509/x509.h"

#define FILE_MAX (4u * 1024u * 1024u)
#define BASE_VECTOR "dcapqvl-v4-uptodate"

static const char *g_dir;
static json_object *g_root;

/* ---- helpers ---- */

static uint8_t *read_rel(const char *rel, size_t *len)
{
	char path[4096];
	uint8_t *buf = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	snprintf(path, sizeof(path), "%s/%s", g_dir, rel);
	if (tdc_file_read(path, FILE_MAX, &buf, len, &e) < 0)
		fail_msg("cannot read %s: %s", path, e.reason);
	return buf;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return json_object_get_string(v);
}

static json_object *jget(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static int64_t jtime(json_object *o, const char *key)
{
	int64_t t;
	const char *s = jstr(o, key);
	assert_non_null(s);
	assert_int_equal(tdc_time_parse(s, &t, key, NULL), 0);
	return t;
}

static json_object *find_vector(const char *id)
{
	json_object *vecs = jget(g_root, "vectors");
	for (size_t i = 0; i < json_object_array_length(vecs); i++) {
		json_object *v = json_object_array_get_idx(vecs, i);
		if (!strcmp(jstr(v, "id"), id))
			return v;
	}
	fail_msg("no vector %s", id);
	return NULL;
}

static void buf_set(struct tdc_buf *b, const uint8_t *data, size_t len)
{
	free(b->data);
	b->data = malloc(len + 1);
	assert_non_null(b->data);
	memcpy(b->data, data, len);
	b->data[len] = 0;
	b->len = len;
}

/* Issuer chain from PEM or DER files (leaf first), as one PEM text. */
static void chain_from_files(json_object *files, struct tdc_buf *out)
{
	BIO *mem = BIO_new(BIO_s_mem());
	assert_non_null(mem);
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		size_t len;
		uint8_t *d = read_rel(json_object_get_string(json_object_array_get_idx(files, i)),
				      &len);
		if (len > 10 && !memcmp(d, "-----BEGIN", 10)) {
			assert_int_equal(BIO_write(mem, d, (int)len), (int)len);
			assert_int_equal(BIO_write(mem, "\n", 1), 1);
		} else {
			const unsigned char *p = d;
			X509 *x = d2i_X509(NULL, &p, (long)len);
			assert_non_null(x);
			assert_int_equal(PEM_write_bio_X509(mem, x), 1);
			X509_free(x);
		}
		free(d);
	}
	char *p;
	long n = BIO_get_mem_data(mem, &p);
	struct tdc_buf raw = { 0 };
	buf_set(&raw, (const uint8_t *)p, (size_t)n);
	BIO_free(mem);
	free(out->data);
	out->data = NULL;
	assert_int_equal(tdc_chain_to_pem(raw.data, raw.len, out, NULL), 0);
	free(raw.data);
}

static void body_into(const char *rel, const char *key, struct tdc_buf *inner, uint8_t sig[64])
{
	size_t len;
	uint8_t *body = read_rel(rel, &len);
	free(inner->data);
	inner->data = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_pcs_body_split(body, len, key, inner, sig, &e) < 0)
		fail_msg("%s: %s", rel, e.reason);
	free(body);
}

static void crl_into(const char *rel, struct tdc_buf *der)
{
	size_t len;
	uint8_t *raw = read_rel(rel, &len);
	free(der->data);
	der->data = NULL;
	assert_int_equal(tdc_crl_to_der(raw, len, der, NULL), 0);
	free(raw);
}

static void load_collateral(json_object *spec, struct tdc_collateral *c)
{
	const char *kind = jstr(spec, "kind");
	memset(c, 0, sizeof(*c));
	const char *base = !strcmp(kind, "dcap-qvl-json") ? jstr(spec, "file")
							  : jstr(spec, "dcap_qvl_base");
	if (base) {
		size_t len;
		uint8_t *j = read_rel(base, &len);
		struct tdc_error e;
		tdc_error_clear(&e);
		if (tdc_collateral_from_dcap_qvl_json(j, len, c, &e) < 0)
			fail_msg("%s: %s", base, e.reason);
		free(j);
	}
	if (!strcmp(kind, "dcap-qvl-json"))
		return;
	assert_string_equal(kind, "files");
	const char *s;
	if ((s = jstr(spec, "tcb_info_body")))
		body_into(s, "tcbInfo", &c->tcb_info, c->tcb_info_sig);
	if ((s = jstr(spec, "qe_identity_body")))
		body_into(s, "enclaveIdentity", &c->qe_identity, c->qe_identity_sig);
	json_object *chain = jget(spec, "tcb_signing_chain");
	if (chain) {
		chain_from_files(chain, &c->tcb_info_chain);
		buf_set(&c->qe_identity_chain, c->tcb_info_chain.data, c->tcb_info_chain.len);
	}
	if ((s = jstr(spec, "pck_crl")))
		crl_into(s, &c->pck_crl);
	if ((s = jstr(spec, "root_ca_crl")))
		crl_into(s, &c->root_ca_crl);
}

struct loaded {
	json_object *vec;
	uint8_t *quote;
	size_t quote_len;
	struct tdc_collateral coll;
	int64_t at;
};

static void load(json_object *vec, struct loaded *l)
{
	l->vec = vec;
	assert_string_equal(jstr(vec, "quote_format"), "binary");
	l->quote = read_rel(jstr(vec, "quote"), &l->quote_len);
	load_collateral(jget(vec, "collateral"), &l->coll);
	l->at = jtime(vec, "verify_at");
}

static void unload(struct loaded *l)
{
	free(l->quote);
	tdc_collateral_free(&l->coll);
}

static struct tdc_verifier *new_verifier(uint32_t min_eval)
{
	struct tdc_verifier *v = NULL;
	struct tdc_verifier_opts o = { .min_tcb_eval_num = min_eval };
	assert_int_equal(tdc_verifier_new(&o, &v, NULL), 0);
	assert_false(tdc_verifier_is_test_root(v));
	return v;
}

static enum tdc_tcb_status status_of(const char *name)
{
	enum tdc_tcb_status s = TDC_TCB_UNKNOWN;
	if (name)
		assert_int_equal(tdc_tcb_status_parse(name, &s, NULL), 0);
	return s;
}

static void hex_eq(const char *want, const uint8_t *got, size_t n)
{
	char buf[2 * 64 + 1];
	assert_true(n <= 64);
	tdc_hex_encode(got, n, buf);
	assert_int_equal(strlen(want), 2 * n);
	if (strcasecmp(want, buf) != 0)
		fail_msg("want %s, got %s", want, buf);
}

/* Expected error of a FAIL vector, from the research verifier's text. */
static int expected_failure(const char *text)
{
	if (strstr(text, "TCB not supported") || strstr(text, "no matching TCB level"))
		return TDC_E_TCB_NOT_SUPPORTED;
	if (strstr(text, "CRL issuer mismatch"))
		return TDC_E_CRL;
	fail_msg("no expected error code for \"%s\"", text);
	return 0;
}

/* ---- one test per vector ---- */

static void check_facts(json_object *facts, const struct tdc_verdict *d)
{
	if (!facts)
		return;
	assert_int_equal(d->quote_version, json_object_get_int(jget(facts, "version")));
	assert_int_equal(d->body_type, json_object_get_int(jget(facts, "body_type")));
	if (jget(facts, "qe_isvsvn"))
		assert_int_equal(d->qe_isvsvn, json_object_get_int(jget(facts, "qe_isvsvn")));
	const char *s;
	if ((s = jstr(facts, "tee_tcb_svn")))
		hex_eq(s, d->td.tee_tcb_svn, 16);
	if ((s = jstr(facts, "td_attributes")))
		hex_eq(s, d->td.td_attributes, 8);
	if ((s = jstr(facts, "xfam")))
		hex_eq(s, d->td.xfam, 8);
	if ((s = jstr(facts, "mr_td")))
		hex_eq(s, d->td.mrtd, 48);
}

static void vector_test(void **state)
{
	json_object *vec = *state;
	struct loaded l;
	struct tdc_verdict d;
	struct tdc_error e;
	load(vec, &l);
	struct tdc_verifier *v = new_verifier(0);
	tdc_error_clear(&e);
	int rc = tdc_verify_quote(v, l.quote, l.quote_len, &l.coll, l.at, &d, &e);

	json_object *want = jget(vec, "scratch_result");
	const char *result = jstr(want, "result");
	check_facts(jget(vec, "quote_facts"), &d);
	if (!strcmp(result, "FAIL")) {
		int code = expected_failure(jstr(want, "error"));
		if (rc != code)
			fail_msg("%s: want %s, got %s (%s: %s)", jstr(vec, "id"),
				 tdc_err_name(code), tdc_err_name(rc), e.reason, e.detail);
		assert_int_equal(e.code, code);
	} else {
		if (rc != 0)
			fail_msg("%s: %s: %s", jstr(vec, "id"), e.reason, e.detail);
		assert_int_equal(d.status, status_of(jstr(want, "tcb_status")));
		assert_int_equal(d.platform_status, status_of(jstr(want, "platform_level_status")));
		assert_int_equal(d.qe_status, status_of(jstr(want, "qe_identity_status")));
		assert_int_equal(d.module_status,
				 status_of(jstr(want, "tdx_module_identity_status")));
		assert_int_equal(d.tcb_date, jtime(want, "matched_tcb_date"));
		json_object *adv = jget(want, "advisory_ids");
		assert_int_equal(d.advisories.n, json_object_array_length(adv));
		for (size_t i = 0; i < d.advisories.n; i++) {
			bool found = false;
			for (size_t j = 0; j < d.advisories.n; j++)
				found |= !strcmp(
					d.advisories.id[j],
					json_object_get_string(json_object_array_get_idx(adv, i)));
			assert_true(found);
		}
		const char *fm = jstr(jget(vec, "quote_facts"), "fmspc");
		if (fm)
			hex_eq(fm, d.fmspc, 6);
		/* The earliest expiry of everything used is the end of the vector's window. */
		json_object *win = jget(vec, "valid_window");
		const int64_t nb = jtime(win, "not_before"), na = jtime(win, "not_after");
		assert_int_equal(d.collateral_not_after, na);
		/* The window is inclusive and exact, on the warm path too. */
		const int64_t times[4] = { nb, na, nb - 1, na + 1 };
		for (int i = 0; i < 4; i++) {
			struct tdc_verdict d2;
			tdc_error_clear(&e);
			int r2 = tdc_verify_quote(v, l.quote, l.quote_len, &l.coll, times[i], &d2,
						  &e);
			if (r2 != (i < 2 ? 0 : TDC_E_EXPIRED))
				fail_msg("%s: time %d: got %s (%s: %s)", jstr(vec, "id"), i,
					 tdc_err_name(r2), e.reason ? e.reason : "", e.detail);
			tdc_verdict_free(&d2);
		}
		/* The DEBUG vector passes verification; refusing it is the policy's job. */
		const char *pn = jstr(vec, "policy_notes");
		if (pn && strstr(pn, "DEBUG"))
			assert_true(tdc_td_attributes(&d.td) & TDC_TDATTR_DEBUG);
	}
	tdc_verdict_free(&d);
	tdc_verifier_free(v);
	unload(&l);
}

/* ---- mutations of the base vector ---- */

static int quote_mutation_code(const char *expected)
{
	if (strstr(expected, "parse error"))
		return TDC_E_FORMAT;
	if (strstr(expected, "QE report data") || strstr(expected, "QE report_data"))
		return TDC_E_BINDING;
	if (strstr(expected, "signature"))
		return TDC_E_SIGNATURE;
	if (strstr(expected, "unsupported") || strstr(expected, "unknown QE vendor") ||
	    strstr(expected, "TEE type"))
		return TDC_E_UNSUPPORTED;
	fail_msg("no expected code for \"%s\"", expected);
	return 0;
}

static int collateral_mutation_code(const char *expected)
{
	if (strstr(expected, "signature invalid"))
		return TDC_E_SIGNATURE;
	if (strstr(expected, "not signed by the TCB Signing cert"))
		return TDC_E_CHAIN;
	if (strstr(expected, "CRL issuer mismatch"))
		return TDC_E_CRL;
	if (strstr(expected, "not yet valid") || strstr(expected, "expired"))
		return TDC_E_EXPIRED;
	fail_msg("no expected code for \"%s\"", expected);
	return 0;
}

static void apply_quote_mutation(json_object *m, uint8_t *q, size_t *len)
{
	const char *op = jstr(m, "op");
	size_t off = (size_t)json_object_get_int64(jget(m, "offset"));
	assert_true(off < *len);
	if (!strcmp(op, "xor")) {
		q[off] ^= (uint8_t)json_object_get_int(jget(m, "value"));
	} else if (!strcmp(op, "set")) {
		q[off] = (uint8_t)json_object_get_int(jget(m, "value"));
	} else if (!strcmp(op, "le32add")) {
		assert_true(off + 4 <= *len);
		uint32_t x = (uint32_t)q[off] | (uint32_t)q[off + 1] << 8 |
			     (uint32_t)q[off + 2] << 16 | (uint32_t)q[off + 3] << 24;
		x += (uint32_t)json_object_get_int(jget(m, "value"));
		for (int i = 0; i < 4; i++)
			q[off + (size_t)i] = (uint8_t)(x >> (8 * i));
	} else if (!strcmp(op, "truncate")) {
		*len = off;
	} else {
		fail_msg("unknown mutation op %s", op);
	}
}

/* Applies a collateral mutation; may change the time. */
static void apply_collateral_mutation(json_object *m, json_object *base_vec,
				      struct tdc_collateral *c, int64_t *at)
{
	const char *name = jstr(m, "name");
	json_object *win = jget(base_vec, "valid_window");
	if (!strcmp(name, "tcb-info-edited") || !strcmp(name, "qe-identity-edited")) {
		const bool tcb = !strcmp(name, "tcb-info-edited");
		const char *from = tcb ? "\"tcbEvaluationDataNumber\":17" : "\"isvprodid\":2";
		struct tdc_buf *b = tcb ? &c->tcb_info : &c->qe_identity;
		char *p = strstr((char *)b->data, from);
		assert_non_null(p);
		p[strlen(from) - 1] += 1; /* 17 -> 18, 2 -> 3 */
	} else if (!strcmp(name, "tcb-info-signature-edited")) {
		c->tcb_info_sig[63] ^= 1;
	} else if (!strcmp(name, "tcb-chain-is-pck-ca")) {
		assert_true(c->pck_crl_chain.len > 0);
		buf_set(&c->tcb_info_chain, c->pck_crl_chain.data, c->pck_crl_chain.len);
	} else if (!strcmp(name, "pck-crl-is-root-crl")) {
		buf_set(&c->pck_crl, c->root_ca_crl.data, c->root_ca_crl.len);
	} else if (!strcmp(name, "time-before-window")) {
		*at = jtime(win, "not_before") - 1;
	} else if (!strcmp(name, "time-after-window")) {
		*at = jtime(win, "not_after") + 1;
	} else {
		fail_msg("unknown collateral mutation %s", name);
	}
}

/* Shared warm verifier: cache entries of the good collateral must not mask a mutation. */
static struct tdc_verifier *g_warm;

static void expect_reject(struct tdc_verifier *v, const struct loaded *l, const uint8_t *q,
			  size_t qlen, const struct tdc_collateral *c, int64_t at, int code,
			  const char *name)
{
	struct tdc_verdict d;
	struct tdc_error e;
	tdc_error_clear(&e);
	int rc = tdc_verify_quote(v, q, qlen, c, at, &d, &e);
	if (rc != code)
		fail_msg("%s: want %s, got %s (%s: %s)", name, tdc_err_name(code),
			 tdc_err_name(rc), e.reason ? e.reason : "", e.detail);
	assert_int_equal(e.code, code);
	assert_true(d.status == TDC_TCB_UNKNOWN);
	tdc_verdict_free(&d);
	(void)l;
}

static void quote_mutation_test(void **state)
{
	json_object *m = *state;
	struct loaded l;
	load(find_vector(BASE_VECTOR), &l);
	size_t len = l.quote_len;
	apply_quote_mutation(m, l.quote, &len);
	int code = quote_mutation_code(jstr(m, "expected"));
	struct tdc_verifier *v = new_verifier(0);
	expect_reject(v, &l, l.quote, len, &l.coll, l.at, code, jstr(m, "name"));
	expect_reject(g_warm, &l, l.quote, len, &l.coll, l.at, code, jstr(m, "name"));
	tdc_verifier_free(v);
	unload(&l);
}

static void collateral_mutation_test(void **state)
{
	json_object *m = *state;
	json_object *base = find_vector(BASE_VECTOR);
	struct loaded l;
	load(base, &l);
	int64_t at = l.at;
	apply_collateral_mutation(m, base, &l.coll, &at);
	int code = collateral_mutation_code(jstr(m, "expected"));
	struct tdc_verifier *v = new_verifier(0);
	expect_reject(v, &l, l.quote, l.quote_len, &l.coll, at, code, jstr(m, "name"));
	expect_reject(g_warm, &l, l.quote, l.quote_len, &l.coll, at, code, jstr(m, "name"));
	tdc_verifier_free(v);
	unload(&l);
}

/* ---- fixed tests ---- */

static void base_verify(struct tdc_verifier *v, const struct loaded *l, struct tdc_verdict *d)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	int rc = tdc_verify_quote(v, l->quote, l->quote_len, &l->coll, l->at, d, &e);
	if (rc != 0)
		fail_msg("%s: %s", e.reason, e.detail);
	assert_int_equal(d->status, TDC_TCB_UP_TO_DATE);
}

static void eval_floor_rejects_stale(void **state)
{
	(void)state;
	struct loaded l;
	struct tdc_verdict d;
	struct tdc_error e;
	load(find_vector(BASE_VECTOR), &l);
	struct tdc_verifier *v = new_verifier(18); /* the bundle has eval 17 */
	tdc_error_clear(&e);
	assert_int_equal(tdc_verify_quote(v, l.quote, l.quote_len, &l.coll, l.at, &d, &e),
			 TDC_E_STALE);
	assert_int_equal(e.code, TDC_E_STALE);
	tdc_verdict_free(&d);
	/* Warm, then stale again: the floor is not a cached verdict either. */
	tdc_verifier_free(v);
	v = new_verifier(17);
	base_verify(v, &l, &d);
	tdc_verdict_free(&d);
	tdc_verifier_free(v);
	unload(&l);
}

static void cache_hit_gives_identical_verdict(void **state)
{
	(void)state;
	struct loaded l;
	struct tdc_verdict a, b;
	struct tdc_verifier_stats s1, s2;
	load(find_vector(BASE_VECTOR), &l);
	struct tdc_verifier *v = new_verifier(0);
	base_verify(v, &l, &a);
	tdc_verifier_stats(v, &s1);
	assert_int_equal(s1.pck_misses, 1);
	assert_int_equal(s1.pck_hits, 0);
	assert_true(s1.collateral_misses >= 3);
	base_verify(v, &l, &b);
	tdc_verifier_stats(v, &s2);
	assert_int_equal(s2.pck_misses, 1);
	assert_int_equal(s2.pck_hits, 1);
	assert_int_equal(s2.collateral_misses, s1.collateral_misses);
	assert_true(s2.collateral_hits >= s1.collateral_hits + 3);

	/* Identical verdicts, field by field. */
	assert_int_equal(a.status, b.status);
	assert_int_equal(a.platform_status, b.platform_status);
	assert_int_equal(a.qe_status, b.qe_status);
	assert_int_equal(a.module_status, b.module_status);
	assert_int_equal(a.tcb_date, b.tcb_date);
	assert_memory_equal(a.fmspc, b.fmspc, 6);
	assert_memory_equal(a.pce_id, b.pce_id, 2);
	assert_int_equal(a.tcb_eval_num, b.tcb_eval_num);
	assert_int_equal(a.collateral_not_after, b.collateral_not_after);
	assert_int_equal(a.quote_version, b.quote_version);
	assert_int_equal(a.body_type, b.body_type);
	assert_int_equal(a.qe_isvsvn, b.qe_isvsvn);
	assert_memory_equal(&a.td, &b.td, sizeof(a.td));
	assert_int_equal(a.advisories.n, b.advisories.n);
	for (size_t i = 0; i < a.advisories.n; i++)
		assert_string_equal(a.advisories.id[i], b.advisories.id[i]);
	tdc_verdict_free(&a);
	tdc_verdict_free(&b);
	tdc_verifier_free(v);
	unload(&l);
}

static void warm_path_rechecks_time(void **state)
{
	(void)state;
	json_object *base = find_vector(BASE_VECTOR);
	json_object *win = jget(base, "valid_window");
	struct loaded l;
	struct tdc_verdict d;
	struct tdc_error e;
	load(base, &l);
	struct tdc_verifier *v = new_verifier(0);
	base_verify(v, &l, &d);
	tdc_verdict_free(&d);
	const int64_t nb = jtime(win, "not_before"), na = jtime(win, "not_after");
	const int64_t times[] = { nb - 1, na + 1, nb, na, INT64_MIN / 2, INT64_MAX / 2 };
	const int want[] = { TDC_E_EXPIRED, TDC_E_EXPIRED, 0, 0, TDC_E_EXPIRED, TDC_E_EXPIRED };
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		tdc_error_clear(&e);
		int rc = tdc_verify_quote(v, l.quote, l.quote_len, &l.coll, times[i], &d, &e);
		if (rc != want[i])
			fail_msg("time %zu: want %d got %d (%s: %s)", i, want[i], rc, e.reason,
				 e.detail);
		tdc_verdict_free(&d);
	}
	struct tdc_verifier_stats s;
	tdc_verifier_stats(v, &s);
	assert_int_equal(s.pck_misses, 1); /* all served from the cache */
	assert_int_equal(s.qe_report_misses, 1);
	tdc_verifier_free(v);
	unload(&l);
}

/* Verifies q at l->at and expects code; returns the verifier's stats after. */
static void expect_code(struct tdc_verifier *v, const struct loaded *l, const uint8_t *q,
			int code, const char *what, struct tdc_verifier_stats *st)
{
	struct tdc_verdict d;
	struct tdc_error e;
	tdc_error_clear(&e);
	int rc = tdc_verify_quote(v, q, l->quote_len, &l->coll, l->at, &d, &e);
	tdc_verdict_free(&d);
	if (rc != code)
		fail_msg("%s: want %s, got %s (%s: %s)", what, tdc_err_name(code), tdc_err_name(rc),
			 e.reason, e.detail);
	tdc_verifier_stats(v, st);
}

/* The QE report verdict (step 4) is cached by content: after a hit of the real quote,
 * one byte changed in the QE report, its signature, the QE auth data or the
 * attestation key is a new key (a miss) and is refused; a change the quote signature
 * covers hits the QE report entry and is still refused, because the quote's own
 * signature is checked on every call. */
static void qe_report_cache_follows_content(void **state)
{
	(void)state;
	struct loaded l;
	struct tdc_verdict d;
	struct tdc_verifier_stats st;
	struct tdc_quote q;
	load(find_vector(BASE_VECTOR), &l);
	assert_int_equal(tdc_quote_parse(l.quote, l.quote_len, &q, NULL), 0);
	const size_t sig_at = q.signed_bytes.base + tdc_rd_len(&q.signed_bytes) + 4;
	const struct {
		const char *what;
		size_t at;
		int code;
		bool qe_miss;
	} cases[] = {
		{ "QE report (first byte)", q.qe_report_bytes.base, TDC_E_SIGNATURE, true },
		{ "QE report (ISVSVN)", q.qe_report_bytes.base + 258, TDC_E_SIGNATURE, true },
		{ "QE report (last byte)", q.qe_report_bytes.base + 383, TDC_E_SIGNATURE, true },
		{ "QE report signature", q.qe_report_bytes.base + 384 + 10, TDC_E_SIGNATURE, true },
		{ "QE auth data", q.qe_auth_data.base, TDC_E_BINDING, true },
		{ "TD report (quote signature)", sig_at - 5, TDC_E_SIGNATURE, false },
		{ "quote signature", sig_at + 1, TDC_E_SIGNATURE, false },
	};
	struct tdc_verifier *v = new_verifier(0);
	base_verify(v, &l, &d);
	tdc_verdict_free(&d);
	base_verify(v, &l, &d);
	tdc_verdict_free(&d);
	tdc_verifier_stats(v, &st);
	assert_int_equal(st.qe_report_misses, 1);
	assert_int_equal(st.qe_report_hits, 1);
	uint8_t *m = malloc(l.quote_len);
	assert_non_null(m);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tdc_verifier_stats before = st;
		memcpy(m, l.quote, l.quote_len);
		m[cases[i].at] ^= 0x01;
		expect_code(v, &l, m, cases[i].code, cases[i].what, &st);
		if (cases[i].qe_miss) {
			assert_int_equal(st.qe_report_misses, before.qe_report_misses + 1);
			assert_int_equal(st.qe_report_hits, before.qe_report_hits);
		} else {
			assert_int_equal(st.qe_report_hits, before.qe_report_hits + 1);
		}
		/* the original still hits and verifies */
		expect_code(v, &l, l.quote, 0, "original", &st);
		assert_int_equal(st.qe_report_hits, before.qe_report_hits + 1 + !cases[i].qe_miss);
	}
	/* another attestation key: a miss, refused (not a point, or not what the QE signed) */
	memcpy(m, l.quote, l.quote_len);
	m[sig_at + 64] ^= 0x01;
	struct tdc_verdict dd;
	tdc_verifier_stats(v, &st);
	struct tdc_verifier_stats before = st;
	assert_true(tdc_verify_quote(v, m, l.quote_len, &l.coll, l.at, &dd, NULL) < 0);
	tdc_verdict_free(&dd);
	tdc_verifier_stats(v, &st);
	assert_int_equal(st.qe_report_hits, before.qe_report_hits);
	free(m);
	tdc_verifier_free(v);
	unload(&l);
}

struct thread_arg {
	struct tdc_verifier *v;
	const struct loaded *l;
	int failures;
};

static void *worker(void *p)
{
	struct thread_arg *a = p;
	for (int i = 0; i < 25; i++) {
		struct tdc_verdict d;
		int rc = tdc_verify_quote(a->v, a->l->quote, a->l->quote_len, &a->l->coll, a->l->at,
					  &d, NULL);
		if (rc != 0 || d.status != TDC_TCB_UP_TO_DATE)
			a->failures++;
		tdc_verdict_free(&d);
	}
	return NULL;
}

static void concurrent_verification(void **state)
{
	(void)state;
	struct loaded l;
	load(find_vector(BASE_VECTOR), &l);
	struct tdc_verifier *v = new_verifier(0); /* cold: the threads race to fill the cache */
	pthread_t t[4];
	struct thread_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ v, &l, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
	}
	struct tdc_verifier_stats s;
	tdc_verifier_stats(v, &s);
	assert_int_equal(s.pck_hits + s.pck_misses, 100);
	assert_true(s.pck_misses <= 4);
	tdc_verifier_free(v);
	unload(&l);
}

static void verdict_json(void **state)
{
	(void)state;
	struct loaded l;
	struct tdc_verdict d;
	struct tdc_error e;
	json_object *o = NULL;
	load(find_vector(BASE_VECTOR), &l);
	struct tdc_verifier *v = new_verifier(0);
	base_verify(v, &l, &d);
	assert_int_equal(tdc_verdict_to_json(&d, NULL, &o), 0);
	assert_true(json_object_get_boolean(jget(o, "verified")));
	assert_string_equal(jstr(o, "status"), "UpToDate");
	assert_string_equal(jstr(o, "fmspc"), "b0c06f000000");
	assert_int_equal(json_object_get_int(jget(o, "tcb_eval_num")), 17);
	assert_string_equal(jstr(o, "tcb_date"), "2024-03-13T00:00:00Z");
	json_object *td = jget(o, "td");
	assert_non_null(td);
	assert_string_equal(jstr(td, "mrtd"), "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a"
					      "3520c942a604a407de03ae6dc5f87f27428b2538873118b7");
	assert_string_equal(json_object_get_string(
				    json_object_array_get_idx(jget(td, "td_attributes_flags"), 0)),
			    "SEPT_VE_DISABLE");
	assert_null(jget(o, "error"));
	json_object_put(o);
	tdc_verdict_free(&d);

	/* A rejection carries the error and the claims parsed so far. */
	tdc_error_clear(&e);
	assert_int_equal(tdc_verify_quote(v, l.quote, l.quote_len, &l.coll, 0, &d, &e),
			 TDC_E_EXPIRED);
	assert_int_equal(tdc_verdict_to_json(&d, &e, &o), 0);
	assert_false(json_object_get_boolean(jget(o, "verified")));
	assert_null(jstr(o, "status"));
	json_object *err = jget(o, "error");
	assert_non_null(err);
	assert_string_equal(jstr(err, "code"), "expired");
	assert_non_null(jget(o, "td"));
	json_object_put(o);
	tdc_verdict_free(&d);
	tdc_verifier_free(v);
	unload(&l);
}

static void garbage_is_format_error(void **state)
{
	(void)state;
	struct loaded l;
	struct tdc_verdict d;
	struct tdc_error e;
	load(find_vector(BASE_VECTOR), &l);
	struct tdc_verifier *v = new_verifier(0);
	uint8_t junk[100] = { 0 };
	tdc_error_clear(&e);
	int rc = tdc_verify_quote(v, junk, sizeof(junk), &l.coll, l.at, &d, &e);
	assert_true(rc == TDC_E_FORMAT || rc == TDC_E_UNSUPPORTED);
	assert_int_equal(d.quote_version, 0);
	tdc_verdict_free(&d);
	/* Missing collateral pieces fail closed. */
	struct tdc_collateral empty = { 0 };
	tdc_error_clear(&e);
	assert_int_equal(tdc_verify_quote(v, l.quote, l.quote_len, &empty, l.at, &d, &e),
			 TDC_E_FORMAT);
	tdc_verdict_free(&d);
	tdc_verifier_free(v);
	unload(&l);
}

/* Changes one base64 character inside the signature of the n-th PEM certificate of the
 * quote's chain. The chain is outside everything the quote signs. */
static void tamper_cert(uint8_t *q, size_t len, int n)
{
	static const char end[] = "-----END CERTIFICATE-----";
	size_t pos = 0;
	for (int i = 0; i <= n; i++) {
		uint8_t *p = memmem(q + pos, len - pos, end, sizeof(end) - 1);
		assert_non_null(p);
		pos = (size_t)(p - q) + 1;
	}
	size_t at = pos - 1 - 24; /* inside the last bytes of the ECDSA signature */
	while (q[at] == '\n' || q[at] == '=')
		at--;
	q[at] = q[at] == 'A' ? 'B' : 'A';
}

static void pck_chain_tampering(void **state)
{
	(void)state;
	struct loaded l;
	load(find_vector(BASE_VECTOR), &l);
	for (int n = 0; n < 3; n++) { /* leaf, PCK CA, root */
		uint8_t *q = malloc(l.quote_len);
		assert_non_null(q);
		memcpy(q, l.quote, l.quote_len);
		tamper_cert(q, l.quote_len, n);
		struct tdc_verifier *v = new_verifier(0);
		expect_reject(v, &l, q, l.quote_len, &l.coll, l.at, TDC_E_CHAIN, "tampered cert");
		expect_reject(g_warm, &l, q, l.quote_len, &l.coll, l.at, TDC_E_CHAIN,
			      "tampered cert (warm)");
		tdc_verifier_free(v);
		free(q);
	}
	unload(&l);
}

static void trust_anchor(void **state)
{
	(void)state;
	struct loaded l;
	struct tdc_verdict d;
	struct tdc_verifier *v = NULL;
	size_t der_len;
	load(find_vector(BASE_VECTOR), &l);

	/* The same root given explicitly verifies, and is flagged as a test root. */
	uint8_t *der = read_rel("dcap-qvl/TrustedRootCA.der", &der_len);
	struct tdc_verifier_opts o = { .test_root_der = der, .test_root_der_len = der_len };
	assert_int_equal(tdc_verifier_new(&o, &v, NULL), 0);
	assert_true(tdc_verifier_is_test_root(v));
	base_verify(v, &l, &d);
	tdc_verdict_free(&d);
	tdc_verifier_free(v);
	free(der);

	/* Any other anchor rejects Intel's collateral and quote. */
	STACK_OF(X509) *chain = NULL;
	assert_int_equal(tdc_pem_chain_parse(l.coll.tcb_info_chain.data, l.coll.tcb_info_chain.len,
					     2, &chain, NULL), 0);
	unsigned char *other = NULL;
	int other_len = i2d_X509(sk_X509_value(chain, 0), &other);
	assert_true(other_len > 0);
	sk_X509_pop_free(chain, X509_free);
	o = (struct tdc_verifier_opts){ .test_root_der = other,
					.test_root_der_len = (size_t)other_len };
	assert_int_equal(tdc_verifier_new(&o, &v, NULL), 0);
	struct tdc_error e;
	tdc_error_clear(&e);
	int rc = tdc_verify_quote(v, l.quote, l.quote_len, &l.coll, l.at, &d, &e);
	assert_true(rc == TDC_E_CRL || rc == TDC_E_CHAIN);
	tdc_verdict_free(&d);
	tdc_verifier_free(v);
	OPENSSL_free(other);
	unload(&l);
}

static int group_setup(void **state)
{
	(void)state;
	g_warm = NULL;
	struct tdc_verifier_opts o = { 0 };
	if (tdc_verifier_new(&o, &g_warm, NULL) < 0)
		return -1;
	/* Warm the shared verifier with the good base collateral. */
	json_object *vecs = jget(g_root, "vectors");
	for (size_t i = 0; i < json_object_array_length(vecs); i++) {
		json_object *vec = json_object_array_get_idx(vecs, i);
		if (strcmp(jstr(vec, "id"), BASE_VECTOR) != 0)
			continue;
		struct loaded l;
		struct tdc_verdict d;
		load(vec, &l);
		int rc = tdc_verify_quote(g_warm, l.quote, l.quote_len, &l.coll, l.at, &d, NULL);
		tdc_verdict_free(&d);
		unload(&l);
		return rc;
	}
	return -1;
}

static int group_teardown(void **state)
{
	(void)state;
	tdc_verifier_free(g_warm);
	return 0;
}

int main(void)
{
	g_dir = getenv("TDC_TESTDATA");
	if (!g_dir) {
		fprintf(stderr, "TDC_TESTDATA not set\n");
		return 1;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/vectors.json", g_dir);
	g_root = json_object_from_file(path);
	if (!g_root) {
		fprintf(stderr, "cannot read %s\n", path);
		return 1;
	}

	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(eval_floor_rejects_stale),
		cmocka_unit_test(cache_hit_gives_identical_verdict),
		cmocka_unit_test(warm_path_rechecks_time),
		cmocka_unit_test(qe_report_cache_follows_content),
		cmocka_unit_test(concurrent_verification),
		cmocka_unit_test(verdict_json),
		cmocka_unit_test(garbage_is_format_error),
		cmocka_unit_test(pck_chain_tampering),
		cmocka_unit_test(trust_anchor),
	};
	json_object *vecs = jget(g_root, "vectors");
	json_object *qm = jget(jget(g_root, "quote_mutations"), "mutations");
	json_object *cm = jget(jget(g_root, "collateral_mutations"), "mutations");
	size_t nv = json_object_array_length(vecs), nq = json_object_array_length(qm),
	       nc = json_object_array_length(cm);
	size_t nf = sizeof(fixed) / sizeof(fixed[0]), n = 0;
	struct CMUnitTest *tests = calloc(nf + nv + nq + nc, sizeof(*tests));
	char (*names)[96] = calloc(nv + nq + nc, sizeof(*names));
	if (!tests || !names)
		return 1;
	for (size_t i = 0; i < nf; i++)
		tests[n++] = fixed[i];
	size_t k = 0;
	for (size_t i = 0; i < nv; i++, k++) {
		json_object *o = json_object_array_get_idx(vecs, i);
		snprintf(names[k], sizeof(names[k]), "vector:%s", jstr(o, "id"));
		tests[n++] = (struct CMUnitTest){ names[k], vector_test, NULL, NULL, o };
	}
	for (size_t i = 0; i < nq; i++, k++) {
		json_object *o = json_object_array_get_idx(qm, i);
		snprintf(names[k], sizeof(names[k]), "quote-mutation:%s", jstr(o, "name"));
		tests[n++] = (struct CMUnitTest){ names[k], quote_mutation_test, NULL, NULL, o };
	}
	for (size_t i = 0; i < nc; i++, k++) {
		json_object *o = json_object_array_get_idx(cm, i);
		snprintf(names[k], sizeof(names[k]), "collateral-mutation:%s", jstr(o, "name"));
		tests[n++] =
			(struct CMUnitTest){ names[k], collateral_mutation_test, NULL, NULL, o };
	}
	int rc = _cmocka_run_group_tests("verify-vectors", tests, n, group_setup, group_teardown);
	free(tests);
	free(names);
	json_object_put(g_root);
	return rc;
}
