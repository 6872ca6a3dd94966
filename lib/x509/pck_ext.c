/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1; reference doc
 * Part A2, step 4): SEQUENCE OF SEQUENCE { OID, value }. Parsed with OpenSSL's ASN.1
 * decoder, strictly: every SEQUENCE must re-encode to the exact bytes it came from
 * (so only DER is accepted), sub-OIDs are known and unique, lengths are exact.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "util/limits.h"
#include "x509/x509.h"

#define SGX_OID "1.2.840.113741.1.13.1"

enum { TOP_N = 7, TCB_N = 18, CFG_N = 3 };

static pthread_once_t oids_once = PTHREAD_ONCE_INIT;
static ASN1_OBJECT *oid_ext;
static ASN1_OBJECT *oid_top[TOP_N];   /* .1 .. .7 */
static ASN1_OBJECT *oid_tcb[TCB_N];   /* .2.1 .. .2.18 */
static ASN1_OBJECT *oid_cfg[CFG_N];   /* .7.1 .. .7.3 */
static bool oids_ok;

static const char *const top_names[TOP_N] = {
	"PPID (.1)", "TCB (.2)", "PCE-ID (.3)", "FMSPC (.4)", "SGX Type (.5)",
	"Platform Instance ID (.6)", "Configuration (.7)",
};

/* The OIDs live for the whole process (reachable from these statics). */
static void oids_init(void)
{
	char buf[64];

	oid_ext = OBJ_txt2obj(SGX_OID, 1);
	bool ok = oid_ext != NULL;
	for (int i = 0; i < TOP_N; i++) {
		snprintf(buf, sizeof(buf), SGX_OID ".%d", i + 1);
		ok = ok && (oid_top[i] = OBJ_txt2obj(buf, 1)) != NULL;
	}
	for (int i = 0; i < TCB_N; i++) {
		snprintf(buf, sizeof(buf), SGX_OID ".2.%d", i + 1);
		ok = ok && (oid_tcb[i] = OBJ_txt2obj(buf, 1)) != NULL;
	}
	for (int i = 0; i < CFG_N; i++) {
		snprintf(buf, sizeof(buf), SGX_OID ".7.%d", i + 1);
		ok = ok && (oid_cfg[i] = OBJ_txt2obj(buf, 1)) != NULL;
	}
	oids_ok = ok;
}

/* Index of obj in table, or -1. */
static int oid_index(const ASN1_OBJECT *obj, ASN1_OBJECT *const *table, int n)
{
	for (int i = 0; i < n; i++)
		if (OBJ_cmp(obj, table[i]) == 0)
			return i;
	return -1;
}

static void free_seq(STACK_OF(ASN1_TYPE) *seq)
{
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
}

/*
 * Decodes der as a SEQUENCE OF ANY that must be DER (re-encodes to the same bytes)
 * with between min and max elements.
 */
static int decode_seq(const unsigned char *der, long len, int min, int max, const char *what,
		      STACK_OF(ASN1_TYPE) **out, struct tdc_error *e)
{
	*out = NULL;
	const unsigned char *p = der;
	STACK_OF(ASN1_TYPE) *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
	if (!seq) {
		ERR_clear_error();
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: bad ASN.1",
				 "%s: not a SEQUENCE", what);
	}
	unsigned char *re = NULL;
	int relen = i2d_ASN1_SEQUENCE_ANY(seq, &re);
	bool canonical = relen == len && memcmp(re, der, (size_t)len) == 0;
	OPENSSL_free(re);
	if (!canonical) {
		free_seq(seq);
		ERR_clear_error();
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: bad ASN.1",
				 "%s: not DER or trailing bytes", what);
	}
	int n = sk_ASN1_TYPE_num(seq);
	if (n < min || n > max) {
		free_seq(seq);
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: wrong number of entries",
				 "%s: %d entries, expected %d%s%d", what, n, min,
				 min == max ? "" : "..", max);
	}
	*out = seq;
	return 0;
}

/*
 * Splits an element that must be SEQUENCE { OID, value } into its OID's index in
 * table and the value. *inner owns the decoded pair.
 */
static int decode_pair(const ASN1_TYPE *t, ASN1_OBJECT *const *table, int n, const char *what,
		       STACK_OF(ASN1_TYPE) **inner, int *index, const ASN1_TYPE **value,
		       struct tdc_error *e)
{
	if (ASN1_TYPE_get(t) != V_ASN1_SEQUENCE)
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: bad ASN.1",
				 "%s: entry is not a SEQUENCE", what);
	const ASN1_STRING *s = t->value.sequence;
	TDC_GUARD(decode_seq(ASN1_STRING_get0_data(s), ASN1_STRING_length(s), 2, 2, what, inner,
			     e));
	const ASN1_TYPE *oid = sk_ASN1_TYPE_value(*inner, 0);
	if (ASN1_TYPE_get(oid) != V_ASN1_OBJECT) {
		free_seq(*inner);
		*inner = NULL;
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: bad ASN.1",
				 "%s: entry does not start with an OID", what);
	}
	*index = oid_index(oid->value.object, table, n);
	if (*index < 0) {
		char txt[80];
		OBJ_obj2txt(txt, sizeof(txt), oid->value.object, 1);
		free_seq(*inner);
		*inner = NULL;
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: unknown entry", "%s: OID %s",
				 what, txt);
	}
	*value = sk_ASN1_TYPE_value(*inner, 1);
	return 0;
}

/* An OCTET STRING of exactly n bytes, copied into dst. */
static int get_octets(const ASN1_TYPE *v, uint8_t *dst, int n, const char *what,
		      struct tdc_error *e)
{
	if (ASN1_TYPE_get(v) != V_ASN1_OCTET_STRING)
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: wrong type",
				 "%s: expected OCTET STRING", what);
	int len = ASN1_STRING_length(v->value.octet_string);
	if (len != n)
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: wrong length",
				 "%s: %d bytes, expected %d", what, len, n);
	memcpy(dst, ASN1_STRING_get0_data(v->value.octet_string), (size_t)n);
	return 0;
}

/* An INTEGER (or ENUMERATED when enumerated) in [0, max]. */
static int get_uint(const ASN1_TYPE *v, bool enumerated, int64_t max, int64_t *out,
		    const char *what, struct tdc_error *e)
{
	int64_t x;
	int ok;

	if (enumerated) {
		if (ASN1_TYPE_get(v) != V_ASN1_ENUMERATED)
			return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: wrong type",
					 "%s: expected ENUMERATED", what);
		ok = ASN1_ENUMERATED_get_int64(&x, v->value.enumerated);
	} else {
		if (ASN1_TYPE_get(v) != V_ASN1_INTEGER)
			return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: wrong type",
					 "%s: expected INTEGER", what);
		ok = ASN1_INTEGER_get_int64(&x, v->value.integer);
	}
	if (ok != 1) {
		ERR_clear_error();
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: value out of range",
				 "%s: does not fit 64 bits", what);
	}
	if (x < 0 || x > max)
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: value out of range",
				 "%s: %lld, expected 0..%lld", what, (long long)x, (long long)max);
	*out = x;
	return 0;
}

static int parse_tcb(const ASN1_TYPE *v, struct tdc_pck_ext *out, struct tdc_error *e)
{
	static const char what[] = "TCB (.2)";

	if (ASN1_TYPE_get(v) != V_ASN1_SEQUENCE)
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: wrong type",
				 "%s: expected SEQUENCE", what);
	STACK_OF(ASN1_TYPE) *seq = NULL;
	const ASN1_STRING *s = v->value.sequence;
	TDC_GUARD(decode_seq(ASN1_STRING_get0_data(s), ASN1_STRING_length(s), TCB_N, TCB_N, what,
			     &seq, e));
	bool seen[TCB_N] = { false };
	int rc = 0;
	for (int i = 0; rc == 0 && i < TCB_N; i++) {
		STACK_OF(ASN1_TYPE) *pair = NULL;
		const ASN1_TYPE *val = NULL;
		int idx = -1;
		rc = decode_pair(sk_ASN1_TYPE_value(seq, i), oid_tcb, TCB_N, what, &pair, &idx,
				 &val, e);
		if (rc < 0)
			break;
		char sub[40];
		snprintf(sub, sizeof(sub), "TCB (.2.%d)", idx + 1);
		int64_t x = 0;
		if (seen[idx])
			rc = TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: duplicate entry", "%s",
				       sub);
		else if (idx < 16 && (rc = get_uint(val, false, 255, &x, sub, e)) == 0)
			out->sgx_svn[idx] = (uint8_t)x;
		else if (idx == 16 && (rc = get_uint(val, false, 65535, &x, sub, e)) == 0)
			out->pcesvn = (uint16_t)x;
		else if (idx == 17)
			rc = get_octets(val, out->cpusvn, 16, sub, e);
		seen[idx] = true;
		free_seq(pair);
	}
	free_seq(seq);
	return rc;
}

static int parse_config(const ASN1_TYPE *v, struct tdc_pck_ext *out, struct tdc_error *e)
{
	static const char what[] = "Configuration (.7)";

	if (ASN1_TYPE_get(v) != V_ASN1_SEQUENCE)
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: wrong type",
				 "%s: expected SEQUENCE", what);
	STACK_OF(ASN1_TYPE) *seq = NULL;
	const ASN1_STRING *s = v->value.sequence;
	/* All three members are optional. */
	TDC_GUARD(decode_seq(ASN1_STRING_get0_data(s), ASN1_STRING_length(s), 0, CFG_N, what,
			     &seq, e));
	bool seen[CFG_N] = { false };
	bool *flags[CFG_N] = { &out->dynamic_platform, &out->cached_keys, &out->smt_enabled };
	int rc = 0;
	for (int i = 0; rc == 0 && i < sk_ASN1_TYPE_num(seq); i++) {
		STACK_OF(ASN1_TYPE) *pair = NULL;
		const ASN1_TYPE *val = NULL;
		int idx = -1;
		rc = decode_pair(sk_ASN1_TYPE_value(seq, i), oid_cfg, CFG_N, what, &pair, &idx,
				 &val, e);
		if (rc < 0)
			break;
		if (seen[idx])
			rc = TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: duplicate entry",
				       "Configuration (.7.%d)", idx + 1);
		else if (ASN1_TYPE_get(val) != V_ASN1_BOOLEAN)
			rc = TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: wrong type",
				       "Configuration (.7.%d): expected BOOLEAN", idx + 1);
		else
			*flags[idx] = val->value.boolean != 0;
		seen[idx] = true;
		free_seq(pair);
	}
	free_seq(seq);
	return rc;
}

int tdc_pck_ext_parse_der(const uint8_t *der, size_t len, struct tdc_pck_ext *out,
			  struct tdc_error *e)
{
	if (!der || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "PCK SGX extension: bad argument");
	memset(out, 0, sizeof(*out));
	if (len == 0 || len > TDC_MAX_PCK_CHAIN_SIZE)
		return TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: bad length", "%zu bytes",
				 len);
	pthread_once(&oids_once, oids_init);
	if (!oids_ok)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "PCK SGX extension: OID setup failed");

	struct tdc_pck_ext ext;
	memset(&ext, 0, sizeof(ext));
	STACK_OF(ASN1_TYPE) *seq = NULL;
	/* Processor-CA PCKs carry .1-.5, Platform-CA PCKs .1-.7; nothing else. */
	TDC_GUARD(decode_seq(der, (long)len, 5, 7, "SGX extension", &seq, e));
	int n = sk_ASN1_TYPE_num(seq);
	int rc = 0;
	if (n == 6)
		rc = TDC_FAIL(e, TDC_E_FORMAT, "PCK SGX extension: 6 entries, expected 5 or 7");
	bool seen[TOP_N] = { false };
	for (int i = 0; rc == 0 && i < n; i++) {
		STACK_OF(ASN1_TYPE) *pair = NULL;
		const ASN1_TYPE *val = NULL;
		int idx = -1;
		rc = decode_pair(sk_ASN1_TYPE_value(seq, i), oid_top, TOP_N, "SGX extension", &pair,
				 &idx, &val, e);
		if (rc < 0)
			break;
		const char *what = top_names[idx];
		int64_t x = 0;
		if (seen[idx]) {
			rc = TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: duplicate entry", "%s",
				       what);
		} else {
			switch (idx) {
			case 0:
				rc = get_octets(val, ext.ppid, 16, what, e);
				break;
			case 1:
				rc = parse_tcb(val, &ext, e);
				break;
			case 2:
				rc = get_octets(val, ext.pce_id, 2, what, e);
				break;
			case 3:
				rc = get_octets(val, ext.fmspc, 6, what, e);
				break;
			case 4:
				rc = get_uint(val, true, 2, &x, what, e);
				ext.sgx_type = (int)x;
				break;
			case 5:
				rc = get_octets(val, ext.platform_instance_id, 16, what, e);
				ext.has_platform_instance_id = true;
				break;
			case 6:
				rc = parse_config(val, &ext, e);
				ext.has_configuration = true;
				break;
			}
		}
		seen[idx] = true;
		free_seq(pair);
	}
	free_seq(seq);
	/* With no duplicates and no unknown OIDs, n entries cover .1..n only if every one of
	 * those is present: report the first missing one. */
	for (int i = 0; rc == 0 && i < n; i++)
		if (!seen[i])
			rc = TDC_FAILF(e, TDC_E_FORMAT, "PCK SGX extension: missing entry", "%s",
				       top_names[i]);
	if (rc == 0)
		*out = ext;
	return rc;
}

int tdc_pck_ext_parse(X509 *pck, struct tdc_pck_ext *out, struct tdc_error *e)
{
	if (!pck || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "PCK SGX extension: bad argument");
	memset(out, 0, sizeof(*out));
	pthread_once(&oids_once, oids_init);
	if (!oids_ok)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "PCK SGX extension: OID setup failed");
	int at = X509_get_ext_by_OBJ(pck, oid_ext, -1);
	if (at < 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "PCK certificate has no SGX extension");
	if (X509_get_ext_by_OBJ(pck, oid_ext, at) >= 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "PCK certificate has more than one SGX extension");
	const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(X509_get_ext(pck, at));
	if (!v)
		return TDC_FAIL(e, TDC_E_FORMAT, "PCK SGX extension: no value");
	return tdc_pck_ext_parse_der(ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v), out,
				     e);
}
