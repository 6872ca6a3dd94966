/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Real quotes from $TDC_TESTDATA/vectors.json through the verifier and then
 * the policy engine, with the collateral of each vector at its verify_at time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tdcrypt/policy.h"
#include "tdcrypt/verify.h"
#include "util/util.h"

static const char *g_dir;
static json_object *g_root;
static struct tdc_verifier *g_verifier;

static uint8_t *read_rel(const char *rel, size_t *len)
{
	char path[4096];
	uint8_t *buf = NULL;
	snprintf(path, sizeof(path), "%s/%s", g_dir, rel);
	if (tdc_file_read(path, 4u << 20, &buf, len, NULL) < 0)
		fail_msg("cannot read %s", path);
	return buf;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return json_object_get_string(v);
}

/* A required string member: fails the test if absent, never returns NULL. */
static const char *jreq(json_object *o, const char *key)
{
	const char *s = jstr(o, key);
	if (!s) {
		fail_msg("missing %s", key);
		return "";
	}
	return s;
}

static json_object *jget(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static json_object *find_vector(const char *id)
{
	json_object *vecs = jget(g_root, "vectors");
	for (size_t i = 0; i < json_object_array_length(vecs); i++) {
		json_object *v = json_object_array_get_idx(vecs, i);
		if (strcmp(jstr(v, "id"), id) == 0)
			return v;
	}
	fail_msg("no vector %s", id);
	return NULL;
}

/* The TCB signing chain from PEM or DER files, as PEM. */
static void chain_from_files(json_object *files, struct tdc_buf *out)
{
	BIO *mem = BIO_new(BIO_s_mem());
	assert_non_null(mem);
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		size_t len;
		uint8_t *d = read_rel(json_object_get_string(json_object_array_get_idx(files, i)),
				      &len);
		const unsigned char *p = d;
		X509 *x = len > 10 && memcmp(d, "-----BEGIN", 10) == 0
				  ? NULL
				  : d2i_X509(NULL, &p, (long)len);
		if (x) {
			assert_int_equal(PEM_write_bio_X509(mem, x), 1);
			X509_free(x);
		} else {
			assert_int_equal(BIO_write(mem, d, (int)len), (int)len);
			assert_int_equal(BIO_write(mem, "\n", 1), 1);
		}
		free(d);
	}
	char *p;
	long n = BIO_get_mem_data(mem, &p);
	free(out->data);
	out->data = NULL;
	assert_int_equal(tdc_chain_to_pem((const uint8_t *)p, (size_t)n, out, NULL), 0);
	BIO_free(mem);
}

static void load_collateral(json_object *spec, struct tdc_collateral *c)
{
	memset(c, 0, sizeof(*c));
	const char *kind = jstr(spec, "kind");
	size_t len;
	if (strcmp(kind, "dcap-qvl-json") == 0) {
		uint8_t *j = read_rel(jstr(spec, "file"), &len);
		assert_int_equal(tdc_collateral_from_dcap_qvl_json(j, len, c, NULL), 0);
		free(j);
		return;
	}
	assert_string_equal(kind, "files");
	assert_null(jstr(spec, "dcap_qvl_base")); /* not needed by the vectors used here */
	uint8_t *b = read_rel(jstr(spec, "tcb_info_body"), &len);
	assert_int_equal(tdc_pcs_body_split(b, len, "tcbInfo", &c->tcb_info, c->tcb_info_sig, NULL),
			 0);
	free(b);
	b = read_rel(jstr(spec, "qe_identity_body"), &len);
	assert_int_equal(tdc_pcs_body_split(b, len, "enclaveIdentity", &c->qe_identity,
					    c->qe_identity_sig, NULL),
			 0);
	free(b);
	chain_from_files(jget(spec, "tcb_signing_chain"), &c->tcb_info_chain);
	chain_from_files(jget(spec, "tcb_signing_chain"), &c->qe_identity_chain);
	b = read_rel(jstr(spec, "pck_crl"), &len);
	assert_int_equal(tdc_crl_to_der(b, len, &c->pck_crl, NULL), 0);
	free(b);
	b = read_rel(jstr(spec, "root_ca_crl"), &len);
	assert_int_equal(tdc_crl_to_der(b, len, &c->root_ca_crl, NULL), 0);
	free(b);
}

/* Verifies vector id; the quote must pass verification. */
static void verify_vector(const char *id, struct tdc_verdict *d, json_object **vec_out)
{
	json_object *vec = find_vector(id);
	size_t qlen;
	uint8_t *quote = read_rel(jstr(vec, "quote"), &qlen);
	struct tdc_collateral c;
	load_collateral(jget(vec, "collateral"), &c);
	int64_t at;
	assert_int_equal(tdc_time_parse(jstr(vec, "verify_at"), &at, "verify_at", NULL), 0);
	struct tdc_error e;
	tdc_error_clear(&e);
	memset(d, 0, sizeof(*d));
	if (tdc_verify_quote(g_verifier, quote, qlen, &c, at, d, &e) != 0)
		fail_msg("%s: verification failed: %s: %s", id, e.reason, e.detail);
	free(quote);
	tdc_collateral_free(&c);
	*vec_out = vec;
}

/* Reason code of evaluating json against d ("" when released). */
static const char *decide(const char *json, const struct tdc_verdict *d)
{
	struct tdc_policy *p = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_policy_parse(json, strlen(json), &p, &e) != 0)
		fail_msg("policy: %s: %s", e.reason, e.detail);
	struct tdc_policy_input in = { .verdict = d, .from_simulator = false };
	struct tdc_policy_result res;
	int r = tdc_policy_eval(p, &in, &res, NULL);
	static char code[32];
	const char *rc = r == 0 || !res.reason_code ? "" : res.reason_code;
	snprintf(code, sizeof(code), "%s", rc);
	assert_true(r == 0 || r == TDC_E_POLICY);
	tdc_policy_result_free(&res);
	tdc_policy_free(p);
	return code;
}

static void test_debug_td_refused(void **state)
{
	(void)state;
	struct tdc_verdict d;
	json_object *vec;
	verify_vector("trustee-v4-debug-with-gotdxguest-collateral", &d, &vec);
	assert_int_equal(d.status, TDC_TCB_UP_TO_DATE);
	assert_string_equal(decide("{}", &d), "debug");
	/* an explicit opt-in is the only way through */
	assert_string_equal(decide("{\"td_attributes\": {\"allow_debug\": true}}", &d), "");
	tdc_verdict_free(&d);
}

static void test_sept_ve_off_refused(void **state)
{
	(void)state;
	struct tdc_verdict d;
	json_object *vec;
	verify_vector("zkdcap-v4b-uptodate-septve-off", &d, &vec);
	assert_int_equal(d.status, TDC_TCB_UP_TO_DATE);
	assert_string_equal(decide("{}", &d), "sept_ve_disable");
	tdc_verdict_free(&d);
}

static void test_mrtd_pin(void **state)
{
	(void)state;
	struct tdc_verdict d;
	json_object *vec;
	verify_vector("dcapqvl-v4-uptodate", &d, &vec);
	const char *mrtd = jreq(jget(vec, "quote_facts"), "mr_td");
	assert_int_equal(strlen(mrtd), 96);
	char json[512];
	snprintf(json, sizeof(json), "{\"mrtd\": [\"%s\"]}", mrtd);
	assert_string_equal(decide(json, &d), "");
	assert_string_equal(decide("{}", &d), "");
	/* the same value with its last digit changed */
	char other[97];
	memcpy(other, mrtd, 97);
	other[95] = other[95] == '0' ? '1' : '0';
	snprintf(json, sizeof(json), "{\"mrtd\": [\"%s\"]}", other);
	assert_string_equal(decide(json, &d), "mrtd");
	/* and every pinned field from the quote facts at once */
	const char *xfam = jreq(jget(vec, "quote_facts"), "xfam");
	const char *svn = jreq(jget(vec, "quote_facts"), "tee_tcb_svn");
	snprintf(json, sizeof(json),
		 "{\"mrtd\": [\"%s\"], \"xfam\": [\"%s\"], \"min_tee_tcb_svn\": \"%s\"}", mrtd, xfam,
		 svn);
	assert_string_equal(decide(json, &d), "");
	tdc_verdict_free(&d);
}

static void test_out_of_date_with_advisories(void **state)
{
	(void)state;
	struct tdc_verdict d;
	json_object *vec;
	verify_vector("zkdcap-v4-outofdate", &d, &vec);
	assert_int_equal(d.status, TDC_TCB_OUT_OF_DATE);
	assert_string_equal(decide("{}", &d), "tcb_status");
	assert_string_equal(decide("{\"tcb_status\": [\"UpToDate\", \"OutOfDate\"]}", &d), "");
	assert_string_equal(decide("{\"tcb_status\": [\"OutOfDate\"], "
				   "\"advisories_refused\": [\"INTEL-SA-00982\"]}",
				   &d),
			    "advisories_refused");
	assert_string_equal(decide("{\"tcb_status\": [\"OutOfDate\"], "
				   "\"advisories_allowed_only\": [\"INTEL-SA-00960\"]}",
				   &d),
			    "advisories_allowed_only");
	tdc_verdict_free(&d);
}

static int setup(void **state)
{
	(void)state;
	g_dir = getenv("TDC_TESTDATA");
	if (!g_dir)
		return -1;
	char path[4096];
	snprintf(path, sizeof(path), "%s/vectors.json", g_dir);
	g_root = json_object_from_file(path);
	if (!g_root) {
		fprintf(stderr, "cannot read %s (set TDC_TESTDATA)\n", path);
		return -1;
	}
	struct tdc_verifier_opts o = { 0 };
	return tdc_verifier_new(&o, &g_verifier, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tdc_verifier_free(g_verifier);
	json_object_put(g_root);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_debug_td_refused),
		cmocka_unit_test(test_sept_ve_off_refused),
		cmocka_unit_test(test_mrtd_pin),
		cmocka_unit_test(test_out_of_date_with_advisories),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
