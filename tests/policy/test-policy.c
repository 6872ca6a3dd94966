/* SPDX-License-Identifier: Apache-2.0 */
/* Policy engine: parsing (strict, fail closed) and each rule failing alone on a hand-made verdict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "tdcrypt/measure.h"
#include "tdcrypt/policy.h"
#include "util/util.h"

#define H48(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
/* 96 hex digits of one repeated byte */
#define MR(b) H48(b)

/* A healthy TD 1.0 verdict: UpToDate, only SEPT_VE_DISABLE, every register a distinct byte. */
static void good_verdict(struct tdc_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->status = TDC_TCB_UP_TO_DATE;
	v->platform_status = v->qe_status = v->module_status = TDC_TCB_UP_TO_DATE;
	struct tdc_td_report *td = &v->td;
	memset(td->mrseam, 0x01, 48);
	memset(td->mrtd, 0x11, 48);
	memset(td->rtmr[0], 0x20, 48);
	memset(td->rtmr[1], 0x21, 48);
	memset(td->rtmr[2], 0x22, 48);
	memset(td->rtmr[3], 0x23, 48);
	memset(td->mrconfigid, 0x30, 48);
	memset(td->mrowner, 0x31, 48);
	memset(td->mrownerconfig, 0x32, 48);
	td->td_attributes[3] = 0x10; /* bit 28 */
	static const uint8_t xfam[8] = { 0xe7, 0x02, 0x06, 0 };
	memcpy(td->xfam, xfam, 8);
	static const uint8_t svn[16] = { 6, 1, 3 };
	memcpy(td->tee_tcb_svn, svn, 16);
}

static void set_advisories(struct tdc_verdict *v, size_t n, const char *const *ids)
{
	v->advisories.n = n;
	v->advisories.id = calloc(n ? n : 1, sizeof(*v->advisories.id));
	assert_non_null(v->advisories.id);
	for (size_t i = 0; i < n; i++)
		strcpy(v->advisories.id[i], ids[i]);
}

static struct tdc_policy *policy(const char *json)
{
	struct tdc_policy *p = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	int r = tdc_policy_parse(json, strlen(json), &p, &e);
	if (r != 0)
		fail_msg("policy %s: %s: %s", json, e.reason, e.detail);
	return p;
}

/* Evaluates; returns the reason code ("" when allowed). Checks result/return consistency. */
static const char *eval_sim(const char *json, const struct tdc_verdict *v, bool sim)
{
	struct tdc_policy *p = policy(json);
	struct tdc_policy_input in = { .verdict = v, .from_simulator = sim };
	struct tdc_policy_result res;
	struct tdc_error e;
	tdc_error_clear(&e);
	int r = tdc_policy_eval(p, &in, &res, &e);
	assert_int_equal(res.n_rules, 19);
	static char code[32];
	if (r == 0) {
		assert_true(res.allowed);
		assert_null(res.reason_code);
		code[0] = '\0';
	} else {
		assert_int_equal(r, TDC_E_POLICY);
		assert_int_equal(e.code, TDC_E_POLICY);
		assert_false(res.allowed);
		assert_non_null(res.reason_code);
		/* the full reason starts with the code and lands in e */
		assert_int_equal(strncmp(res.reason, res.reason_code, strlen(res.reason_code)), 0);
		assert_string_equal(e.detail, res.reason);
		snprintf(code, sizeof(code), "%s", res.reason_code);
	}
	tdc_policy_result_free(&res);
	tdc_policy_free(p);
	return code;
}

static const char *eval(const char *json, const struct tdc_verdict *v)
{
	return eval_sim(json, v, false);
}

static int parse_err(const char *json, struct tdc_error *e)
{
	struct tdc_policy *p = NULL;
	tdc_error_clear(e);
	int r = tdc_policy_parse(json, strlen(json), &p, e);
	assert_null(p);
	return r;
}

/* ---- defaults ---- */

static void test_default_accepts_good(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	assert_string_equal(eval("{}", &v), "");
}

static void test_default_refuses_debug(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	v.td.td_attributes[0] |= 1;
	assert_string_equal(eval("{}", &v), "debug");
	assert_string_equal(eval("{\"td_attributes\": {\"allow_debug\": false}}", &v), "debug");
	assert_string_equal(eval("{\"td_attributes\": {\"allow_debug\": true}}", &v), "");
}

static void test_default_refuses_out_of_date(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	v.status = TDC_TCB_OUT_OF_DATE;
	assert_string_equal(eval("{}", &v), "tcb_status");
	assert_string_equal(eval("{\"tcb_status\": [\"UpToDate\", \"OutOfDate\"]}", &v), "");
	v.status = TDC_TCB_SW_HARDENING_NEEDED;
	assert_string_equal(eval("{\"tcb_status\": [\"UpToDate\", \"OutOfDate\"]}", &v),
			    "tcb_status");
}

static void test_revoked_and_unknown_status_refused(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	v.status = TDC_TCB_REVOKED;
	assert_string_equal(eval("{}", &v), "tcb_status");
	v.status = TDC_TCB_UNKNOWN;
	assert_string_equal(eval("{}", &v), "tcb_status");
	v.status = (enum tdc_tcb_status)99;
	assert_string_equal(eval("{}", &v), "tcb_status");
}

static void test_default_refuses_reserved_bit(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	v.td.td_attributes[0] |= 1 << 5;
	assert_string_equal(eval("{}", &v), "td_attributes");
	assert_string_equal(eval("{\"td_attributes\": {\"allow_bits\": [5]}}", &v), "");
	assert_string_equal(eval("{\"td_attributes\": {\"allow_bits\": [6]}}", &v),
			    "td_attributes");
}

static void test_named_bits_refused_unless_allowed(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		int byte, bit;
	} bits[] = {
		{ "MIGRATABLE", 3, 5 }, { "PKS", 3, 6 }, { "KL", 3, 7 },
		{ "TPA", 7, 6 },        { "PERFMON", 7, 7 },
	};
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		struct tdc_verdict v;
		good_verdict(&v);
		v.td.td_attributes[bits[i].byte] |= (uint8_t)(1u << bits[i].bit);
		assert_string_equal(eval("{}", &v), "td_attributes");
		char json[128];
		snprintf(json, sizeof(json), "{\"td_attributes\": {\"allow_bits\": [\"%s\"]}}",
			 bits[i].name);
		assert_string_equal(eval(json, &v), "");
	}
}

static void test_sept_ve_disable(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	v.td.td_attributes[3] = 0;
	assert_string_equal(eval("{}", &v), "sept_ve_disable");
	assert_string_equal(eval("{\"td_attributes\": {\"require_sept_ve_disable\": false}}", &v),
			    "");
}

static void test_measurement_rules(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		const char *good; /* the verdict's value */
	} mrs[] = {
		{ "mrseam", MR("01") },     { "mrtd", MR("11") },    { "rtmr0", MR("20") },
		{ "rtmr1", MR("21") },      { "rtmr2", MR("22") },   { "rtmr3", MR("23") },
		{ "mrconfigid", MR("30") }, { "mrowner", MR("31") }, { "mrownerconfig", MR("32") },
	};
	struct tdc_verdict v;
	good_verdict(&v);
	for (size_t i = 0; i < sizeof(mrs) / sizeof(mrs[0]); i++) {
		char json[512];
		snprintf(json, sizeof(json), "{\"%s\": [\"%s\"]}", mrs[i].name, MR("ee"));
		assert_string_equal(eval(json, &v), mrs[i].name);
		snprintf(json, sizeof(json), "{\"%s\": [\"%s\", \"%s\"]}", mrs[i].name, MR("ee"),
			 mrs[i].good);
		assert_string_equal(eval(json, &v), "");
	}
	/* upper-case hex is accepted */
	assert_string_equal(eval("{\"mrtd\": [\"" MR("EE") "\", \"" MR("11") "\"]}", &v), "");
}

static void test_xfam(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	assert_string_equal(eval("{\"xfam\": [\"e718060000000000\"]}", &v), "xfam");
	assert_string_equal(eval("{\"xfam\": [\"e718060000000000\", \"e702060000000000\"]}", &v),
			    "");
}

static void test_advisories_refused(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	static const char *const ids[] = { "INTEL-SA-00960", "INTEL-SA-00982" };
	set_advisories(&v, 2, ids);
	assert_string_equal(eval("{}", &v), "");
	assert_string_equal(eval("{\"advisories_refused\": [\"INTEL-SA-00982\"]}", &v),
			    "advisories_refused");
	assert_string_equal(eval("{\"advisories_refused\": [\"INTEL-SA-00001\"]}", &v), "");
	free(v.advisories.id);
}

static void test_advisories_allowed_only(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	assert_string_equal(eval("{\"advisories_allowed_only\": []}", &v), "");
	static const char *const ids[] = { "INTEL-SA-00960", "INTEL-SA-00982" };
	set_advisories(&v, 2, ids);
	assert_string_equal(eval("{\"advisories_allowed_only\": []}", &v),
			    "advisories_allowed_only");
	assert_string_equal(eval("{\"advisories_allowed_only\": [\"INTEL-SA-00960\"]}", &v),
			    "advisories_allowed_only");
	assert_string_equal(
		eval("{\"advisories_allowed_only\": [\"INTEL-SA-00982\", \"INTEL-SA-00960\"]}",
		     &v),
		"");
	free(v.advisories.id);
}

static void test_min_tee_tcb_svn(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v); /* 06 01 03 00 ... */
	assert_string_equal(eval("{\"min_tee_tcb_svn\": \"06010300000000000000000000000000\"}", &v),
			    "");
	assert_string_equal(eval("{\"min_tee_tcb_svn\": \"05000000000000000000000000000000\"}", &v),
			    "");
	/* component-wise: a higher first byte does not make up for a lower third one */
	v.td.tee_tcb_svn[0] = 9;
	assert_string_equal(eval("{\"min_tee_tcb_svn\": \"06010400000000000000000000000000\"}", &v),
			    "tee_tcb_svn");
	assert_string_equal(eval("{\"min_tee_tcb_svn\": \"00000000000000000000000000000001\"}", &v),
			    "tee_tcb_svn");
}

static void test_mrservicetd(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	v.td.mrservicetd[7] = 1;
	/* TD 1.0: the field does not exist, nothing to check */
	assert_string_equal(eval("{}", &v), "");
	v.td.is_td15 = true;
	assert_string_equal(eval("{}", &v), "mrservicetd");
	assert_string_equal(eval("{\"mrservicetd_zero\": false}", &v), "");
	v.td.mrservicetd[7] = 0;
	assert_string_equal(eval("{}", &v), "");
}

static void test_simulator(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	assert_string_equal(eval_sim("{}", &v, true), "simulator");
	assert_string_equal(eval_sim("{\"allow_simulator\": false}", &v, true), "simulator");
	assert_string_equal(eval_sim("{\"allow_simulator\": true}", &v, true), "");
	assert_string_equal(eval_sim("{\"allow_simulator\": true}", &v, false), "");
}

/* Every rule is listed even when an earlier one failed; the first failure is the code. */
static void test_all_rules_listed(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	v.td.td_attributes[0] |= 1;
	struct tdc_policy *p = policy("{\"mrtd\": [\"" MR("ee") "\"]}");
	struct tdc_policy_input in = { .verdict = &v };
	struct tdc_policy_result res;
	assert_int_equal(tdc_policy_eval(p, &in, &res, NULL), TDC_E_POLICY);
	assert_string_equal(res.reason_code, "debug");
	size_t fails = 0;
	bool saw_mrtd = false;
	for (size_t i = 0; i < res.n_rules; i++) {
		fails += !res.rules[i].pass;
		if (strcmp(res.rules[i].name, "mrtd") == 0) {
			saw_mrtd = true;
			assert_false(res.rules[i].pass);
			assert_true(res.rules[i].configured);
			assert_string_equal(res.rules[i].actual, MR("11"));
			assert_non_null(strstr(res.rules[i].expected, MR("ee")));
		}
		if (strcmp(res.rules[i].name, "rtmr2") == 0)
			assert_false(res.rules[i].configured);
	}
	assert_true(saw_mrtd);
	assert_int_equal(fails, 2);

	char *json = NULL;
	assert_int_equal(tdc_policy_result_to_json(&res, &json, NULL), 0);
	assert_non_null(strstr(json, "\"reason_code\":\"debug\""));
	assert_non_null(strstr(json, "\"name\":\"mrtd\",\"pass\":false"));
	free(json);

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	tdc_policy_result_print(&res, f);
	fclose(f);
	assert_non_null(strstr(buf, "FAIL  debug"));
	assert_non_null(strstr(buf, "FAIL  mrtd"));
	assert_non_null(strstr(buf, "PASS  tcb_status"));
	assert_non_null(strstr(buf, "decision: deny (debug)"));
	free(buf);

	tdc_policy_result_free(&res);
	tdc_policy_free(p);
}

static void test_allowed_result_json(void **state)
{
	(void)state;
	struct tdc_verdict v;
	good_verdict(&v);
	struct tdc_policy *p = policy("{}");
	struct tdc_policy_input in = { .verdict = &v };
	struct tdc_policy_result res;
	assert_int_equal(tdc_policy_eval(p, &in, &res, NULL), 0);
	char *json = NULL;
	assert_int_equal(tdc_policy_result_to_json(&res, &json, NULL), 0);
	assert_non_null(strstr(json, "\"allowed\":true,\"reason_code\":null"));
	free(json);
	tdc_policy_result_free(&res);
	tdc_policy_free(p);
}

static void test_eval_usage(void **state)
{
	(void)state;
	struct tdc_policy *p = policy("{}");
	struct tdc_policy_input in = { 0 };
	struct tdc_policy_result res;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_policy_eval(p, &in, &res, &e), TDC_E_USAGE);
	assert_int_equal(res.n_rules, 0);
	tdc_policy_result_free(&res);
	tdc_policy_free(p);
}

/* ---- parsing ---- */

static void test_parse_unknown_key(void **state)
{
	(void)state;
	struct tdc_error e;
	assert_int_equal(parse_err("{\"mrtd\": [\"" MR("11") "\"], \"bogus\": 1}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "unknown key in policy");
	assert_string_equal(e.detail, "bogus");
	assert_int_equal(parse_err("{\"td_attributes\": {\"debug\": false}}", &e), TDC_E_FORMAT);
	assert_string_equal(e.detail, "td_attributes.debug");
	/* REPORTDATA is bound by the broker, never by policy */
	assert_int_equal(parse_err("{\"report_data\": []}", &e), TDC_E_FORMAT);
	assert_string_equal(e.detail, "report_data");
}

static void test_parse_bad_hex(void **state)
{
	(void)state;
	struct tdc_error e;
	/* 94 digits */
	assert_int_equal(parse_err("{\"mrtd\": [\"" MR("11") "\", \"" H48("1") "\"]}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "bad hex length");
	assert_non_null(strstr(e.detail, "mrtd[1]"));
	assert_int_equal(parse_err("{\"rtmr2\": [\"" H48("1g") "\"]}", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "bad hex digit");
	assert_int_equal(parse_err("{\"xfam\": [\"e7020600000000\"]}", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "bad hex length");
	assert_int_equal(parse_err("{\"min_tee_tcb_svn\": \"0601\"}", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "bad hex length");
}

static void test_parse_revoked_refused(void **state)
{
	(void)state;
	struct tdc_error e;
	assert_int_equal(parse_err("{\"tcb_status\": [\"UpToDate\", \"Revoked\"]}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "policy may not allow a revoked TCB");
	assert_string_equal(e.detail, "tcb_status[1]: \"Revoked\"");
	assert_int_equal(parse_err("{\"tcb_status\": [\"Unknown\"]}", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "unknown TCB status in policy");
	assert_int_equal(parse_err("{\"tcb_status\": [\"uptodate\"]}", &e), TDC_E_FORMAT);
	assert_int_equal(parse_err("{\"tcb_status\": []}", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "empty list in policy");
}

static void test_parse_types_and_lists(void **state)
{
	(void)state;
	struct tdc_error e;
	assert_int_equal(parse_err("{\"mrtd\": \"" MR("11") "\"}", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "wrong JSON type in policy");
	assert_int_equal(parse_err("{\"mrtd\": []}", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "empty list in policy");
	assert_int_equal(parse_err("{\"mrtd\": [\"" MR("11") "\", \"" MR("11") "\"]}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "duplicate value in policy");
	assert_int_equal(parse_err("{\"allow_simulator\": 1}", &e), TDC_E_FORMAT);
	assert_string_equal(e.detail, "allow_simulator: expected boolean");
	assert_int_equal(parse_err("{\"td_attributes\": []}", &e), TDC_E_FORMAT);
	assert_int_equal(parse_err("{\"td_attributes\": {\"allow_debug\": \"yes\"}}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.detail, "td_attributes.allow_debug: expected boolean");
	assert_int_equal(parse_err("{\"mrservicetd_zero\": null}", &e), TDC_E_FORMAT);
	assert_int_equal(parse_err("{\"version\": 2}", &e), TDC_E_UNSUPPORTED);
	assert_int_equal(parse_err("{\"advisories_refused\": [\"INTEL SA\"]}", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "bad advisory ID in policy");
	assert_int_equal(parse_err("{\"advisories_refused\": [\"INTEL-SA-00001-XXXXXXXXXXXXXXXXX\"]}",
				   &e),
			 TDC_E_FORMAT);
	assert_int_equal(parse_err("{\"advisories_refused\": [\"A\", \"A\"]}", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "duplicate value in policy");
}

static void test_parse_attribute_bits(void **state)
{
	(void)state;
	struct tdc_error e;
	assert_int_equal(parse_err("{\"td_attributes\": {\"allow_bits\": [\"DEBUG\"]}}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "TD attribute bit has its own setting");
	assert_int_equal(parse_err("{\"td_attributes\": {\"allow_bits\": [28]}}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "TD attribute bit has its own setting");
	assert_int_equal(parse_err("{\"td_attributes\": {\"allow_bits\": [64]}}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "TD attribute bit out of range");
	assert_int_equal(parse_err("{\"td_attributes\": {\"allow_bits\": [-1]}}", &e),
			 TDC_E_FORMAT);
	assert_int_equal(parse_err("{\"td_attributes\": {\"allow_bits\": [\"pks\"]}}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "unknown TD attribute name");
	assert_string_equal(e.detail, "td_attributes.allow_bits[0]: \"pks\"");
	assert_int_equal(parse_err("{\"td_attributes\": {\"allow_bits\": [1.5]}}", &e),
			 TDC_E_FORMAT);
	assert_int_equal(parse_err("{\"td_attributes\": {\"allow_bits\": [\"PKS\", 30]}}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "duplicate value in policy");
}

static void test_parse_syntax_and_caps(void **state)
{
	(void)state;
	struct tdc_error e;
	assert_int_equal(parse_err("{\"mrtd\": [}", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "invalid JSON");
	assert_int_equal(parse_err("{\"allow_simulator\": false", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "truncated JSON");
	assert_int_equal(parse_err("{} {}", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "invalid JSON");
	assert_int_equal(e.offset, 3);
	/* json-c stops at a NUL: the bytes after it are still refused */
	struct tdc_policy *np = NULL;
	tdc_error_clear(&e);
	assert_int_equal(tdc_policy_parse("{}\0x", 4, &np, &e), TDC_E_FORMAT);
	assert_null(np);
	assert_string_equal(e.reason, "trailing bytes after JSON");
	assert_int_equal(e.offset, 2);
	assert_int_equal(parse_err("[]", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "JSON is not an object");
	/* strict mode: no single quotes, no comments */
	assert_int_equal(parse_err("{'mrtd': []}", &e), TDC_E_FORMAT);
	assert_int_equal(parse_err("{\"td_attributes\": {\"allow_bits\": [[[[[[1]]]]]]}}", &e),
			 TDC_E_LIMIT);
	/* trailing newline is fine */
	struct tdc_policy *p = policy("{}\n");
	tdc_policy_free(p);

	/* 65 values: one past the cap */
	size_t cap = 70 * 100 + 64;
	char *big = malloc(cap);
	assert_non_null(big);
	size_t n = (size_t)snprintf(big, cap, "{\"mrtd\": [");
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(big + n, cap - n, "%s\"%096x\"", i ? "," : "", i);
	snprintf(big + n, cap - n, "]}");
	assert_int_equal(parse_err(big, &e), TDC_E_LIMIT);
	assert_string_equal(e.reason, "too many values in policy");
	free(big);

	/* document size cap */
	size_t huge = TDC_MAX_POLICY_JSON + 1;
	big = malloc(huge + 1);
	assert_non_null(big);
	memset(big, ' ', huge);
	big[0] = '{';
	big[huge - 1] = '}';
	big[huge] = '\0';
	assert_int_equal(parse_err(big, &e), TDC_E_LIMIT);
	assert_string_equal(e.reason, "JSON document too large");
	free(big);
}

static void test_canonical_round_trip(void **state)
{
	(void)state;
	const char *src = "{\"mrtd\": [\"" MR("AB") "\", \"" MR("11") "\"], \"rtmr2\": [\"" MR("22")
			  "\"], \"xfam\": [\"e702060000000000\"],"
			  " \"td_attributes\": {\"allow_bits\": [\"PERFMON\", 33, \"PKS\"],"
			  " \"require_sept_ve_disable\": false},"
			  " \"tcb_status\": [\"SWHardeningNeeded\", \"UpToDate\"],"
			  " \"advisories_refused\": [\"INTEL-SA-00960\"],"
			  " \"advisories_allowed_only\": [],"
			  " \"min_tee_tcb_svn\": \"06010300000000000000000000000000\","
			  " \"mrservicetd_zero\": false, \"allow_simulator\": true, \"version\": 1}";
	struct tdc_policy *p = policy(src);
	char *j1 = NULL, *j2 = NULL;
	assert_int_equal(tdc_policy_to_json(p, &j1, NULL), 0);
	struct tdc_policy *q = policy(j1);
	assert_int_equal(tdc_policy_to_json(q, &j2, NULL), 0);
	assert_string_equal(j1, j2);
	assert_non_null(strstr(j1, MR("ab")));
	assert_non_null(strstr(j1, "\"PKS\", 33, \"PERFMON\""));
	assert_non_null(strstr(j1, "\"advisories_allowed_only\": [ ]"));
	/* same decisions from the canonical form */
	struct tdc_verdict v;
	good_verdict(&v);
	v.status = TDC_TCB_SW_HARDENING_NEEDED;
	assert_string_equal(eval(j1, &v), "");
	free(j1);
	free(j2);
	tdc_policy_free(p);
	tdc_policy_free(q);

	/* the default policy shows its defaults */
	p = policy("{}");
	assert_int_equal(tdc_policy_to_json(p, &j1, NULL), 0);
	assert_non_null(strstr(j1, "\"tcb_status\": [ \"UpToDate\" ]"));
	assert_non_null(strstr(j1, "\"allow_debug\": false"));
	assert_non_null(strstr(j1, "\"require_sept_ve_disable\": true"));
	assert_non_null(strstr(j1, "\"allow_simulator\": false"));
	assert_null(strstr(j1, "mrtd"));
	free(j1);
	tdc_policy_free(p);
}

/* ---- events ---- */

/* A CC log: RTMR1 "a", "b"; RTMR2 "c" (digest = SHA-384 of the text). */
static uint8_t *make_log(size_t *len, struct tdc_evlog *l)
{
	static const struct {
		uint32_t mr;
		const char *text;
	} evs[] = { { 2, "a" }, { 2, "b" }, { 3, "c" } };
	struct tdc_evlog_writer *w;
	uint8_t *buf, d[48];
	unsigned int n;
	assert_int_equal(tdc_evlog_writer_new(&w, NULL), 0);
	for (size_t i = 0; i < 3; i++) {
		EVP_Digest(evs[i].text, 1, d, &n, EVP_sha384(), NULL);
		assert_int_equal(tdc_evlog_writer_add(w, evs[i].mr, TDC_EV_EFI_ACTION, d, evs[i].text,
						      1, NULL), 0);
	}
	assert_int_equal(tdc_evlog_writer_finish(w, &buf, len, NULL), 0);
	assert_int_equal(tdc_evlog_parse(buf, *len, TDC_EVLOG_CC, l, NULL), 0);
	return buf;
}

static const char *hex_of(const char *text)
{
	static char hex[4][97];
	static int k;
	uint8_t d[48];
	unsigned int n;
	EVP_Digest(text, strlen(text), d, &n, EVP_sha384(), NULL);
	k = (k + 1) % 4;
	return tdc_hex_encode(d, 48, hex[k]);
}

static const char *eval_log(const char *json, const struct tdc_evlog *log, char *reason,
			    size_t cap)
{
	struct tdc_verdict v;
	struct tdc_policy *p = policy(json);
	struct tdc_policy_input in = { .verdict = &v, .event_log = log };
	struct tdc_policy_result res;
	static char code[32];
	good_verdict(&v);
	int r = tdc_policy_eval(p, &in, &res, NULL);
	snprintf(code, sizeof(code), "%s", r == 0 ? "" : res.reason_code);
	snprintf(reason, cap, "%s", res.reason);
	tdc_policy_result_free(&res);
	tdc_policy_free(p);
	return code;
}

static void test_events_rule(void **state)
{
	(void)state;
	struct tdc_evlog l;
	size_t len;
	uint8_t *buf = make_log(&len, &l);
	char json[2048], reason[1024];

	/* exactly the log's events, in order: allowed (RTMR2 has a list with an alternative) */
	snprintf(json, sizeof(json),
		 "{\"events\":{\"rtmr1\":[{\"digest\":[\"%s\"]},{\"digest\":[\"%s\"]}],"
		 "\"rtmr2\":[{\"digest\":[\"%s\",\"%s\"],\"role\":\"kernel\",\"what\":\"k\"}]}}",
		 hex_of("a"), hex_of("b"), hex_of("x"), hex_of("c"));
	assert_string_equal(eval_log(json, &l, reason, sizeof(reason)), "");
	/* no event log: refused, whatever the registers */
	assert_string_equal(eval_log(json, NULL, reason, sizeof(reason)), "rtmr1");
	assert_non_null(strstr(reason, "no event log in the evidence"));
	/* another digest in second place: that event is named with what the log says */
	snprintf(json, sizeof(json),
		 "{\"events\":{\"rtmr1\":[{\"digest\":[\"%s\"]},{\"digest\":[\"%s\"],"
		 "\"what\":\"the loader\"}]}}", hex_of("a"), hex_of("z"));
	assert_string_equal(eval_log(json, &l, reason, sizeof(reason)), "rtmr1");
	assert_non_null(strstr(reason, "event 1 is EV_EFI_ACTION 'b'"));
	assert_non_null(strstr(reason, "the loader"));
	/* one event too few, one too many */
	snprintf(json, sizeof(json), "{\"events\":{\"rtmr1\":[{\"digest\":[\"%s\"]}]}}",
		 hex_of("a"));
	assert_string_equal(eval_log(json, &l, reason, sizeof(reason)), "rtmr1");
	assert_non_null(strstr(reason, "more events than the policy lists"));
	snprintf(json, sizeof(json),
		 "{\"events\":{\"rtmr2\":[{\"digest\":[\"%s\"]},{\"digest\":[\"%s\"]}]}}",
		 hex_of("c"), hex_of("c"));
	assert_string_equal(eval_log(json, &l, reason, sizeof(reason)), "rtmr2");
	assert_non_null(strstr(reason, "the log ends after 1 events"));
	/* the same order matters */
	snprintf(json, sizeof(json),
		 "{\"events\":{\"rtmr1\":[{\"digest\":[\"%s\"]},{\"digest\":[\"%s\"]}]}}",
		 hex_of("b"), hex_of("a"));
	assert_string_equal(eval_log(json, &l, reason, sizeof(reason)), "rtmr1");
	/* every event that differs is named, not only the first */
	assert_non_null(strstr(reason, "event 0 is EV_EFI_ACTION 'a'"));
	assert_non_null(strstr(reason, "event 1 is EV_EFI_ACTION 'b'"));
	tdc_evlog_free(&l);
	free(buf);
}

static void test_events_parse(void **state)
{
	(void)state;
	struct tdc_error e;
	char json[1024];
	const char *d = MR("ab");
	/* an RTMR pinned twice */
	snprintf(json, sizeof(json), "{\"rtmr1\":[\"%s\"],\"events\":{\"rtmr1\":[{\"digest\":"
		 "[\"%s\"]}]}}", d, d);
	assert_int_equal(parse_err(json, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "an RTMR pinned twice in policy");
	assert_int_equal(parse_err("{\"events\":{\"mrtd\":[]}}", &e), TDC_E_FORMAT);
	assert_int_equal(parse_err("{\"events\":{\"rtmr2\":[]}}", &e), TDC_E_FORMAT);
	assert_int_equal(parse_err("{\"events\":{\"rtmr2\":[{\"what\":\"no digest\"}]}}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "policy event without digest");
	snprintf(json, sizeof(json), "{\"events\":{\"rtmr2\":[{\"digest\":[\"%s\"],\"color\":"
		 "\"red\"}]}}", d);
	assert_int_equal(parse_err(json, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "unknown key in policy");
	snprintf(json, sizeof(json), "{\"events\":{\"rtmr2\":[{\"digest\":[\"%s\"],\"what\":"
		 "\"a\\u0001b\"}]}}", d);
	assert_int_equal(parse_err(json, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "non-printable character in policy text");
	/* the reference block */
	assert_int_equal(parse_err("{\"reference\":{\"firmware_sha256\":\"xyz\"}}", &e),
			 TDC_E_FORMAT);
	assert_int_equal(parse_err("{\"reference\":{\"memory_mib\":0}}", &e), TDC_E_FORMAT);
	assert_int_equal(parse_err("{\"reference\":{\"secret\":\"x\"}}", &e), TDC_E_FORMAT);

	/* canonical form keeps events and the reference block, and parses back the same */
	snprintf(json, sizeof(json),
		 "{\"events\":{\"rtmr2\":[{\"type\":\"EV_IPL\",\"role\":\"cmdline\",\"what\":"
		 "\"kernel_cmdline: /vmlinuz ro\",\"digest\":[\"%s\"]}]},\"reference\":{\"target\":"
		 "\"sim\",\"boot\":\"uefi\",\"firmware\":\"/usr/share/ovmf/OVMF.fd\","
		 "\"firmware_sha256\":\"%s\",\"memory_mib\":1024}}", d,
		 "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773");
	struct tdc_policy *p = policy(json);
	char *c1, *c2;
	assert_int_equal(tdc_policy_to_json(p, &c1, NULL), 0);
	assert_non_null(strstr(c1, "kernel_cmdline: /vmlinuz ro"));
	struct tdc_policy_reference r;
	tdc_policy_get_reference(p, &r);
	assert_true(r.present);
	assert_string_equal(r.firmware, "/usr/share/ovmf/OVMF.fd");
	assert_int_equal(r.memory_mib, 1024);
	tdc_policy_free(p);
	p = policy(c1);
	assert_int_equal(tdc_policy_to_json(p, &c2, NULL), 0);
	assert_string_equal(c1, c2);
	free(c1);
	free(c2);
	tdc_policy_free(p);
}

/* The policy of a predicted boot: MRTD, events of the predicted RTMRs, value of an empty one,
 * nothing for an RTMR that was not predicted; refused when the boot is not measured. */
static void test_from_reference(void **state)
{
	(void)state;
	struct tdc_reference *r = calloc(1, sizeof(*r));
	struct tdc_policy_reference meta = { .present = true };
	struct tdc_error e;
	char *json;
	assert_non_null(r);
	snprintf(meta.target, sizeof(meta.target), "sim");
	snprintf(meta.firmware, sizeof(meta.firmware), "/fw");
	memset(r->mrtd, 0x4c, 48);
	assert_int_equal(tdc_pred_add_unknown(&r->pred, 0, TDC_EV_EFI_VARIABLE_BOOT,
					      TDC_ROLE_FIRMWARE, "BootOrder", "the VM", NULL), 0);
	assert_int_equal(tdc_pred_action(&r->pred, 1, TDC_ACTION_CALLING_EFI_APP, NULL), 0);
	assert_int_equal(tdc_pred_add(&r->pred, 2, TDC_EV_IPL, TDC_ROLE_CMDLINE, NULL, "ro", 2,
				      "kernel_cmdline: /vmlinuz ro", NULL), 0);
	assert_int_equal(tdc_pred_finish(&r->pred, NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_policy_from_reference(r, &meta, false, &json, &e), TDC_E_UNSUPPORTED);
	assert_non_null(strstr(e.detail, "kernel initrd"));
	r->kernel_measured = r->initrd_measured = r->cmdline_measured = true;
	assert_int_equal(tdc_policy_from_reference(r, &meta, false, &json, &e), 0);
	assert_non_null(strstr(json, "\"allow_simulator\": true"));
	assert_non_null(strstr(json, "\"mrtd\": [ \"4c4c"));
	assert_non_null(strstr(json, "\"rtmr1\": [ { \"type\": \"EV_EFI_ACTION\""));
	assert_non_null(strstr(json, "\"what\": \"kernel_cmdline: /vmlinuz ro\""));
	assert_non_null(strstr(json, "\"rtmr3\": [ \"0000")); /* nothing extends it */
	assert_null(strstr(json, "\"rtmr0\"")); /* not predicted: not pinned */
	assert_non_null(strstr(json, "\"firmware\": \"/fw\""));
	free(json);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_accepts_good),
		cmocka_unit_test(test_default_refuses_debug),
		cmocka_unit_test(test_default_refuses_out_of_date),
		cmocka_unit_test(test_revoked_and_unknown_status_refused),
		cmocka_unit_test(test_default_refuses_reserved_bit),
		cmocka_unit_test(test_named_bits_refused_unless_allowed),
		cmocka_unit_test(test_sept_ve_disable),
		cmocka_unit_test(test_measurement_rules),
		cmocka_unit_test(test_xfam),
		cmocka_unit_test(test_advisories_refused),
		cmocka_unit_test(test_advisories_allowed_only),
		cmocka_unit_test(test_min_tee_tcb_svn),
		cmocka_unit_test(test_mrservicetd),
		cmocka_unit_test(test_simulator),
		cmocka_unit_test(test_all_rules_listed),
		cmocka_unit_test(test_allowed_result_json),
		cmocka_unit_test(test_eval_usage),
		cmocka_unit_test(test_parse_unknown_key),
		cmocka_unit_test(test_parse_bad_hex),
		cmocka_unit_test(test_parse_revoked_refused),
		cmocka_unit_test(test_parse_types_and_lists),
		cmocka_unit_test(test_parse_attribute_bits),
		cmocka_unit_test(test_parse_syntax_and_caps),
		cmocka_unit_test(test_canonical_round_trip),
		cmocka_unit_test(test_events_rule),
		cmocka_unit_test(test_events_parse),
		cmocka_unit_test(test_from_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
