/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/x509: pinned root, PEM chains, CRLs, chain verification at an injected time,
 * raw ECDSA-P256, the PCK SGX extension. Positive cases use real Intel data from
 * $TDC_TESTDATA; negative cases change one thing each (synthetic PKIs are built here).
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
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "util/util.h"
#include "x509/x509.h"

/* ---------- test data helpers ---------- */

static uint8_t *read_testdata(const char *rel, size_t *len)
{
	const char *dir = getenv("TDC_TESTDATA");
	assert_non_null(dir);
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	uint8_t *buf = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	int rc = tdc_file_read(path, 4u << 20, &buf, len, &e);
	if (rc != 0)
		fail_msg("cannot read %s: %s", path, e.reason);
	return buf;
}

static struct json_object *read_json(const char *rel)
{
	size_t len;
	uint8_t *buf = read_testdata(rel, &len);
	struct json_object *j = json_tokener_parse((const char *)buf);
	free(buf);
	assert_non_null(j);
	return j;
}

static const char *json_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	assert_true(json_object_object_get_ex(o, key, &v));
	return json_object_get_string(v);
}

/* The vector with this id from vectors.json (caller puts the root). */
static struct json_object *vector(struct json_object *root, const char *id)
{
	struct json_object *vs;
	assert_true(json_object_object_get_ex(root, "vectors", &vs));
	for (size_t i = 0; i < json_object_array_length(vs); i++) {
		struct json_object *v = json_object_array_get_idx(vs, i);
		if (strcmp(json_str(v, "id"), id) == 0)
			return v;
	}
	fail_msg("no vector %s", id);
	return NULL;
}

static int64_t verify_at(const char *id)
{
	struct json_object *root = read_json("vectors.json");
	int64_t t = 0;
	assert_int_equal(tdc_time_parse(json_str(vector(root, id), "verify_at"), &t, "t", NULL), 0);
	json_object_put(root);
	return t;
}

/* The PEM chain of a quote file: from the first BEGIN CERTIFICATE to the end
 * (trailing NULs included, as in the quote). */
static STACK_OF(X509) *quote_chain(const char *rel)
{
	size_t len;
	uint8_t *q = read_testdata(rel, &len);
	const char *begin = "-----BEGIN CERTIFICATE-----";
	uint8_t *p = memmem(q, len, begin, strlen(begin));
	assert_non_null(p);
	STACK_OF(X509) *sk = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	int rc = tdc_pem_chain_parse(p, len - (size_t)(p - q), 3, &sk, &e);
	if (rc != 0)
		fail_msg("chain parse: %s %s", e.reason, e.detail);
	free(q);
	return sk;
}

static X509_CRL *crl_from_hex(const char *hex)
{
	uint8_t *der;
	size_t len;
	X509_CRL *crl = NULL;
	assert_int_equal(tdc_hex_decode_alloc(hex, strlen(hex), &der, &len, "crl", NULL), 0);
	assert_int_equal(tdc_crl_from_der(der, len, &crl, NULL), 0);
	free(der);
	return crl;
}

static X509_CRL *crl_from_file(const char *rel)
{
	size_t len;
	uint8_t *der = read_testdata(rel, &len);
	X509_CRL *crl = NULL;
	assert_int_equal(tdc_crl_from_der(der, len, &crl, NULL), 0);
	free(der);
	return crl;
}

/* dcap-qvl bundle CRLs: [0] PCK CRL, [1] root CA CRL. */
static void dcapqvl_crls(X509_CRL *crls[2])
{
	struct json_object *c = read_json("dcap-qvl/tdx_quote_collateral.json");
	crls[0] = crl_from_hex(json_str(c, "pck_crl"));
	crls[1] = crl_from_hex(json_str(c, "root_ca_crl"));
	json_object_put(c);
}

static X509 *pinned_root(void)
{
	X509 *root = NULL;
	assert_int_equal(tdc_x509_from_der(tdc_intel_root_ca_der, tdc_intel_root_ca_der_len, &root,
					   NULL),
			 0);
	return root;
}

static int chain_verify(X509 *root, STACK_OF(X509) *chain, X509_CRL **crls, size_t n,
			int64_t now, struct tdc_error *e)
{
	tdc_error_clear(e);
	return tdc_chain_verify(root, chain, crls, n, now, "test chain", e);
}

/* ---------- synthetic PKI ---------- */

static EVP_PKEY *gen_p256(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	assert_non_null(k);
	return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ex);
	assert_int_equal(X509_add_ext(cert, ex, -1), 1);
	X509_EXTENSION_free(ex);
}

/* A v3 certificate for key, signed by issuer_key (self-signed when issuer is NULL). */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
		       long serial, int64_t nb, int64_t na, bool ca)
{
	X509 *x = X509_new();
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
	X509_NAME *name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
						    (const unsigned char *)"tdcrypt test", -1, -1,
						    0),
			 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)cn, -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name),
			 1);
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	add_ext(x, issuer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_ext(x, issuer, NID_key_usage,
		ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	add_ext(x, issuer, NID_subject_key_identifier, "hash");
	if (issuer)
		add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
	assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	return x;
}

static X509_CRL *make_crl(X509 *issuer, EVP_PKEY *key, long revoked_serial, int64_t tu,
			  int64_t nu)
{
	X509_CRL *crl = X509_CRL_new();
	assert_non_null(crl);
	assert_int_equal(X509_CRL_set_version(crl, 1), 1);
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)), 1);
	ASN1_TIME *t = ASN1_TIME_set(NULL, (time_t)tu);
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, t), 1);
	ASN1_TIME_set(t, (time_t)nu);
	assert_int_equal(X509_CRL_set1_nextUpdate(crl, t), 1);
	if (revoked_serial > 0) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *s = ASN1_INTEGER_new();
		ASN1_INTEGER_set(s, revoked_serial);
		assert_int_equal(X509_REVOKED_set_serialNumber(r, s), 1);
		ASN1_TIME_set(t, (time_t)tu);
		assert_int_equal(X509_REVOKED_set_revocationDate(r, t), 1);
		assert_int_equal(X509_CRL_add0_revoked(crl, r), 1);
		ASN1_INTEGER_free(s);
	}
	ASN1_TIME_free(t);
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, NULL, NULL, crl, 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier,
						 "keyid:always");
	assert_non_null(ex);
	assert_int_equal(X509_CRL_add_ext(crl, ex, -1), 1);
	X509_EXTENSION_free(ex);
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	ASN1_INTEGER_set(num, 1);
	assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0), 1);
	ASN1_INTEGER_free(num);
	assert_int_equal(X509_CRL_sort(crl), 1);
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	return crl;
}

/* Round-trips through DER so the objects carry a cached encoding, as parsed ones do. */
static X509 *reparse(X509 *x)
{
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);
	X509 *y = NULL;
	assert_int_equal(tdc_x509_from_der(der, (size_t)len, &y, NULL), 0);
	OPENSSL_free(der);
	X509_free(x);
	return y;
}

#define T0 1700000000LL /* 2023-11-14 */
#define DAY 86400LL

struct pki {
	EVP_PKEY *root_key, *ca_key, *leaf_key;
	X509 *root, *ca, *leaf;
	X509_CRL *root_crl, *ca_crl;
};

static void pki_make(struct pki *p, long revoked_leaf_serial)
{
	p->root_key = gen_p256();
	p->ca_key = gen_p256();
	p->leaf_key = gen_p256();
	p->root = reparse(make_cert("Test Root CA", p->root_key, NULL, p->root_key, 1, T0 - DAY,
				    T0 + 365 * DAY, true));
	p->ca = reparse(make_cert("Test PCK CA", p->ca_key, p->root, p->root_key, 2, T0 - DAY,
				  T0 + 365 * DAY, true));
	p->leaf = reparse(make_cert("Test PCK Certificate", p->leaf_key, p->ca, p->ca_key, 77,
				    T0 - DAY, T0 + 30 * DAY, false));
	p->root_crl = make_crl(p->root, p->root_key, 0, T0 - DAY, T0 + 30 * DAY);
	p->ca_crl = make_crl(p->ca, p->ca_key, revoked_leaf_serial, T0 - DAY, T0 + 30 * DAY);
}

static void pki_free(struct pki *p)
{
	EVP_PKEY_free(p->root_key);
	EVP_PKEY_free(p->ca_key);
	EVP_PKEY_free(p->leaf_key);
	X509_free(p->root);
	X509_free(p->ca);
	X509_free(p->leaf);
	X509_CRL_free(p->root_crl);
	X509_CRL_free(p->ca_crl);
}

static STACK_OF(X509) *stack_of(X509 *a, X509 *b, X509 *c)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *v[3] = { a, b, c };
	for (int i = 0; i < 3; i++) {
		if (!v[i])
			break;
		X509_up_ref(v[i]);
		sk_X509_push(sk, v[i]);
	}
	return sk;
}

/* ---------- root ---------- */

static void root_is_pinned_intel_ca(void **state)
{
	(void)state;
	static const char fp[] = "44A0196B2B99F889B8E149E95B807A350E7424964399E885A7CBB8CCFAB674D3";
	static const char pub_hex[] =
		"040ba9c4c0c0c86193a3fe23d6b02cda10a8bbd4e88e48b4458561a36e705525f567918e2edc88e40d"
		"860bd0cc4ee26aacc988e505a953558c453f6b0904ae7394";
	uint8_t want[32], got[32], pub[65], key_raw[65];
	assert_int_equal(tdc_hex_decode(fp, 64, want, 32, "fp", NULL), 0);
	SHA256(tdc_intel_root_ca_der, tdc_intel_root_ca_der_len, got);
	assert_memory_equal(got, want, 32);

	X509 *root = pinned_root();
	EVP_PKEY *key = NULL;
	assert_int_equal(tdc_x509_p256_key(root, &key, NULL), 0);
	size_t n = 0;
	assert_int_equal(EVP_PKEY_get_octet_string_param(key, "encoded-pub-key", key_raw,
							 sizeof(key_raw), &n),
			 1);
	assert_int_equal(n, 65);
	assert_int_equal(tdc_hex_decode(pub_hex, 130, pub, 65, "pub", NULL), 0);
	assert_memory_equal(key_raw, pub, 65);
	assert_true(tdc_x509_cn_contains(root, "Intel SGX Root CA"));
	assert_false(tdc_x509_cn_contains(root, "PCK"));

	/* the testdata copy is the same certificate */
	size_t len;
	uint8_t *der = read_testdata("dcap-qvl/TrustedRootCA.der", &len);
	assert_int_equal(len, tdc_intel_root_ca_der_len);
	assert_memory_equal(der, tdc_intel_root_ca_der, len);
	free(der);
	EVP_PKEY_free(key);
	X509_free(root);
}

static void from_der_rejects_trailing_byte(void **state)
{
	(void)state;
	uint8_t buf[1024];
	memcpy(buf, tdc_intel_root_ca_der, tdc_intel_root_ca_der_len);
	buf[tdc_intel_root_ca_der_len] = 0;
	X509 *x = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_x509_from_der(buf, tdc_intel_root_ca_der_len + 1, &x, &e),
			 TDC_E_FORMAT);
	assert_null(x);
	tdc_error_clear(&e);
	assert_int_equal(tdc_x509_from_der(buf, tdc_intel_root_ca_der_len - 1, &x, &e),
			 TDC_E_FORMAT);
	assert_null(x);
}

/* ---------- PEM chains ---------- */

static char *root_pem(size_t *len)
{
	X509 *root = pinned_root();
	BIO *b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_X509(b, root), 1);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *out = malloc((size_t)n + 1);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*len = (size_t)n;
	BIO_free(b);
	X509_free(root);
	return out;
}

static int parse_str(const char *s, size_t expected, struct tdc_error *e, int *count)
{
	STACK_OF(X509) *sk = NULL;
	tdc_error_clear(e);
	int rc = tdc_pem_chain_parse((const uint8_t *)s, strlen(s), expected, &sk, e);
	*count = sk ? sk_X509_num(sk) : -1;
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

static void pem_chain_parse_strict(void **state)
{
	(void)state;
	size_t n;
	char *one = root_pem(&n);
	char buf[8192];
	struct tdc_error e;
	int count;

	/* whitespace around and between, trailing NULs: fine */
	snprintf(buf, sizeof(buf), " \n%s\r\n\n%s\t\n", one, one);
	assert_int_equal(parse_str(buf, 2, &e, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(parse_str(buf, 0, &e, &count), 0);
	assert_int_equal(count, 2);
	{
		uint8_t nul[4096];
		memset(nul, 0, sizeof(nul));
		memcpy(nul, one, n);
		STACK_OF(X509) *sk = NULL;
		assert_int_equal(tdc_pem_chain_parse(nul, n + 100, 1, &sk, NULL), 0);
		assert_int_equal(sk_X509_num(sk), 1);
		sk_X509_pop_free(sk, X509_free);
	}

	/* 2 certificates when 3 are expected */
	assert_int_equal(parse_str(buf, 3, &e, &count), TDC_E_FORMAT);
	assert_int_equal(count, -1);
	/* 2 when 1 is expected */
	assert_int_equal(parse_str(buf, 1, &e, &count), TDC_E_FORMAT);

	/* junk after the last certificate */
	snprintf(buf, sizeof(buf), "%s%sjunk\n", one, one);
	assert_int_equal(parse_str(buf, 2, &e, &count), TDC_E_FORMAT);
	assert_int_equal(e.offset, 2 * n);
	/* junk between certificates */
	snprintf(buf, sizeof(buf), "%sx\n%s", one, one);
	assert_int_equal(parse_str(buf, 2, &e, &count), TDC_E_FORMAT);
	assert_int_equal(e.offset, n);
	/* junk before */
	snprintf(buf, sizeof(buf), "hello\n%s", one);
	assert_int_equal(parse_str(buf, 1, &e, &count), TDC_E_FORMAT);
	assert_int_equal(e.offset, 0);
	/* a NUL between certificates is junk too */
	{
		uint8_t nul[8192];
		memcpy(nul, one, n);
		nul[n] = 0;
		memcpy(nul + n + 1, one, n);
		STACK_OF(X509) *sk = NULL;
		tdc_error_clear(&e);
		assert_int_equal(tdc_pem_chain_parse(nul, 2 * n + 1, 2, &sk, &e), TDC_E_FORMAT);
		assert_null(sk);
	}
	/* other PEM types, empty input, broken base64 */
	assert_int_equal(parse_str("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
				   1, &e, &count),
			 TDC_E_FORMAT);
	assert_int_equal(parse_str("  \n", 0, &e, &count), TDC_E_FORMAT);
	snprintf(buf, sizeof(buf), "%s", one);
	buf[40] = '*';
	assert_int_equal(parse_str(buf, 1, &e, &count), TDC_E_FORMAT);
	/* encrypted PEM headers are refused (no password prompt) */
	snprintf(buf, sizeof(buf),
		 "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n"
		 "DEK-Info: AES-128-CBC,00000000000000000000000000000000\n\n%s",
		 strstr(one, "\n") + 1);
	assert_int_equal(parse_str(buf, 1, &e, &count), TDC_E_FORMAT);
	/* more than the cap when expected = 0 */
	snprintf(buf, sizeof(buf), "%s%s%s%s%s", one, one, one, one, one);
	assert_int_equal(parse_str(buf, 0, &e, &count), TDC_E_FORMAT);
	free(one);
}

/* ---------- real chain ---------- */

static void real_pck_chain_verifies(void **state)
{
	(void)state;
	struct tdc_error e;
	int64_t now = verify_at("dcapqvl-v4-uptodate");
	STACK_OF(X509) *chain = quote_chain("dcap-qvl/tdx_quote");
	X509 *root = pinned_root();
	X509_CRL *crls[2];
	dcapqvl_crls(crls);

	assert_int_equal(sk_X509_num(chain), 3);
	assert_true(tdc_x509_cn_contains(sk_X509_value(chain, 0), "SGX PCK Certificate"));
	assert_true(tdc_x509_cn_contains(sk_X509_value(chain, 1), "SGX PCK Platform CA"));

	int rc = chain_verify(root, chain, crls, 2, now, &e);
	if (rc)
		fail_msg("%s: %s", e.reason, e.detail);
	/* without CRLs, and without the chain's copy of the root */
	assert_int_equal(chain_verify(root, chain, NULL, 0, now, &e), 0);
	X509 *last = sk_X509_pop(chain);
	assert_int_equal(chain_verify(root, chain, crls, 2, now, &e), 0);
	sk_X509_push(chain, last);

	/* the explicit CRL checks */
	tdc_error_clear(&e);
	assert_int_equal(tdc_crl_check(crls[0], sk_X509_value(chain, 1), now, "PCK CRL", &e), 0);
	assert_int_equal(tdc_crl_check(crls[1], root, now, "root CRL", &e), 0);
	int64_t tu, nu;
	assert_int_equal(tdc_crl_window(crls[0], &tu, &nu, NULL), 0);
	int64_t want_tu, want_nu;
	assert_int_equal(tdc_time_parse("2025-06-19T10:00:35Z", &want_tu, "t", NULL), 0);
	assert_int_equal(tdc_time_parse("2025-07-19T10:00:35Z", &want_nu, "t", NULL), 0);
	assert_int_equal(tu, want_tu);
	assert_int_equal(nu, want_nu);
	/* the PCK CRL is issued by the intermediate, not by the root */
	tdc_error_clear(&e);
	assert_int_equal(tdc_crl_check(crls[0], root, now, "PCK CRL", &e), TDC_E_CRL);
	assert_string_equal(e.reason, "CRL issuer mismatch");

	X509_CRL_free(crls[0]);
	X509_CRL_free(crls[1]);
	X509_free(root);
	sk_X509_pop_free(chain, X509_free);
}

/* The TCB signing chain (2 certificates) verifies with the root CRL alone. */
static void real_tcb_signing_chain_verifies(void **state)
{
	(void)state;
	struct tdc_error e;
	int64_t now = verify_at("dcapqvl-v4-uptodate");
	struct json_object *c = read_json("dcap-qvl/tdx_quote_collateral.json");
	const char *pem = json_str(c, "tcb_info_issuer_chain");
	STACK_OF(X509) *chain = NULL;
	assert_int_equal(tdc_pem_chain_parse((const uint8_t *)pem, strlen(pem), 2, &chain, NULL),
			 0);
	X509_CRL *root_crl = crl_from_hex(json_str(c, "root_ca_crl"));
	X509 *root = pinned_root();
	int rc = chain_verify(root, chain, &root_crl, 1, now, &e);
	if (rc)
		fail_msg("%s: %s", e.reason, e.detail);
	assert_true(tdc_x509_cn_contains(sk_X509_value(chain, 0), "Intel SGX TCB Signing"));
	/* the PCK CRL is no CRL for this chain */
	X509_CRL *pck = crl_from_hex(json_str(c, "pck_crl"));
	X509_CRL *both[2] = { root_crl, pck };
	assert_int_equal(chain_verify(root, chain, both, 2, now, &e), TDC_E_CRL);
	assert_string_equal(e.reason, "CRL issuer mismatch");
	X509_CRL_free(pck);
	X509_CRL_free(root_crl);
	X509_free(root);
	sk_X509_pop_free(chain, X509_free);
	json_object_put(c);
}

static void leaf_validity_window_is_enforced(void **state)
{
	(void)state;
	struct tdc_error e;
	STACK_OF(X509) *chain = quote_chain("dcap-qvl/tdx_quote");
	X509 *root = pinned_root();
	int64_t nb, na;
	assert_int_equal(tdc_x509_window(sk_X509_value(chain, 0), &nb, &na, NULL), 0);
	assert_true(nb < na);

	assert_int_equal(chain_verify(root, chain, NULL, 0, nb, &e), 0);
	/* OpenSSL treats notAfter itself as expired (X509_cmp_time), so the last good
	 * second is notAfter - 1 */
	assert_int_equal(chain_verify(root, chain, NULL, 0, na - 1, &e), 0);
	assert_int_equal(chain_verify(root, chain, NULL, 0, nb - 1, &e), TDC_E_EXPIRED);
	assert_non_null(strstr(e.detail, "depth 0"));
	assert_non_null(strstr(e.detail, "SGX PCK Certificate"));
	assert_int_equal(chain_verify(root, chain, NULL, 0, na + 1, &e), TDC_E_EXPIRED);
	assert_non_null(strstr(e.detail, "depth 0"));
	X509_free(root);
	sk_X509_pop_free(chain, X509_free);
}

static void expired_crl_is_rejected(void **state)
{
	(void)state;
	struct tdc_error e;
	STACK_OF(X509) *chain = quote_chain("dcap-qvl/tdx_quote");
	X509 *root = pinned_root();
	X509_CRL *crls[2];
	dcapqvl_crls(crls);
	int64_t tu, nu;
	assert_int_equal(tdc_crl_window(crls[0], &tu, &nu, NULL), 0);

	/* the certificates are valid long after the PCK CRL's nextUpdate */
	assert_int_equal(chain_verify(root, chain, NULL, 0, nu + 1, &e), 0);
	assert_int_equal(chain_verify(root, chain, crls, 2, nu - 1, &e), 0);
	assert_int_equal(chain_verify(root, chain, crls, 2, nu + 1, &e), TDC_E_EXPIRED);
	assert_string_equal(e.reason, "CRL expired");
	assert_int_equal(chain_verify(root, chain, crls, 2, tu, &e), 0);
	assert_int_equal(chain_verify(root, chain, crls, 2, tu - 1, &e), TDC_E_EXPIRED);
	assert_string_equal(e.reason, "CRL not yet valid");

	tdc_error_clear(&e);
	assert_int_equal(tdc_crl_check(crls[0], sk_X509_value(chain, 1), nu + 1, "PCK CRL", &e),
			 TDC_E_EXPIRED);
	X509_CRL_free(crls[0]);
	X509_CRL_free(crls[1]);
	X509_free(root);
	sk_X509_pop_free(chain, X509_free);
}

/* Processor-CA CRL against a Platform-CA PCK chain (vector zkdcap-v4-wrong-pck-crl). */
static void wrong_pck_crl_is_issuer_mismatch(void **state)
{
	(void)state;
	struct tdc_error e;
	int64_t now = verify_at("zkdcap-v4-wrong-pck-crl");
	STACK_OF(X509) *chain = quote_chain("zkdcap/quote_tdx_00806f050000.dat");
	X509 *root = pinned_root();
	X509_CRL *crls[2] = { crl_from_file("zkdcap/pck_processor_crl.der"),
			      crl_from_file("zkdcap/intel_root_ca_crl.der") };
	X509_CRL *good = crl_from_file("zkdcap/pck_platform_crl.der");

	assert_int_equal(chain_verify(root, chain, crls, 2, now, &e), TDC_E_CRL);
	assert_string_equal(e.reason, "CRL issuer mismatch");
	tdc_error_clear(&e);
	assert_int_equal(tdc_crl_check(crls[0], sk_X509_value(chain, 1), now, "PCK CRL", &e),
			 TDC_E_CRL);
	assert_string_equal(e.reason, "CRL issuer mismatch");

	/* the right CRL verifies (control) */
	X509_CRL_free(crls[0]);
	crls[0] = good;
	int rc = chain_verify(root, chain, crls, 2, now, &e);
	if (rc)
		fail_msg("%s: %s", e.reason, e.detail);
	/* with CRLs, every level needs one: the root CRL alone leaves the leaf uncovered */
	assert_int_equal(chain_verify(root, chain, &crls[1], 1, now, &e), TDC_E_CRL);
	X509_CRL_free(crls[0]);
	X509_CRL_free(crls[1]);
	X509_free(root);
	sk_X509_pop_free(chain, X509_free);
}

static void wrong_root_is_rejected(void **state)
{
	(void)state;
	struct tdc_error e;
	int64_t now = verify_at("dcapqvl-v4-uptodate");
	STACK_OF(X509) *chain = quote_chain("dcap-qvl/tdx_quote");
	EVP_PKEY *k = gen_p256();
	X509 *fake = reparse(make_cert("Intel SGX Root CA", k, NULL, k, 1, now - DAY, now + DAY,
				       true));
	/* the chain's own root differs from the anchor */
	assert_int_equal(chain_verify(fake, chain, NULL, 0, now, &e), TDC_E_CHAIN);
	assert_string_equal(e.reason, "chain root is not the pinned root");
	/* without its root, the chain does not lead to the anchor */
	X509 *last = sk_X509_pop(chain);
	assert_int_equal(chain_verify(fake, chain, NULL, 0, now, &e), TDC_E_CHAIN);
	assert_non_null(strstr(e.detail, "depth 1"));
	sk_X509_push(chain, last);
	/* a certificate off the path is refused even though OpenSSL would skip it */
	X509 *root = pinned_root();
	STACK_OF(X509) *padded = stack_of(sk_X509_value(chain, 0), fake, sk_X509_value(chain, 1));
	assert_int_equal(chain_verify(root, padded, NULL, 0, now, &e), TDC_E_CHAIN);
	sk_X509_pop_free(padded, X509_free);
	X509_free(root);
	X509_free(fake);
	EVP_PKEY_free(k);
	sk_X509_pop_free(chain, X509_free);
}

static void synthetic_pki_verifies_and_revokes(void **state)
{
	(void)state;
	struct tdc_error e;
	struct pki p;

	/* control: CRL without the leaf */
	pki_make(&p, 0);
	STACK_OF(X509) *chain = stack_of(p.leaf, p.ca, p.root);
	X509_CRL *crls[2] = { p.ca_crl, p.root_crl };
	int rc = chain_verify(p.root, chain, crls, 2, T0, &e);
	if (rc)
		fail_msg("%s: %s", e.reason, e.detail);
	sk_X509_pop_free(chain, X509_free);
	pki_free(&p);

	pki_make(&p, 77);
	chain = stack_of(p.leaf, p.ca, p.root);
	crls[0] = p.ca_crl;
	crls[1] = p.root_crl;
	assert_int_equal(chain_verify(p.root, chain, crls, 2, T0, &e), TDC_E_REVOKED);
	assert_non_null(strstr(e.detail, "depth 0"));
	assert_non_null(strstr(e.detail, "Test PCK Certificate"));
	/* and without CRLs, no revocation check */
	assert_int_equal(chain_verify(p.root, chain, NULL, 0, T0, &e), 0);
	sk_X509_pop_free(chain, X509_free);
	pki_free(&p);
}

static void crl_with_bad_signature_is_rejected(void **state)
{
	(void)state;
	struct tdc_error e;
	struct pki p;
	pki_make(&p, 0);
	/* a CRL with the CA's name, signed by the root's key */
	X509_CRL *forged = make_crl(p.ca, p.root_key, 0, T0 - DAY, T0 + DAY);
	X509_CRL *crls[2] = { forged, p.root_crl };
	STACK_OF(X509) *chain = stack_of(p.leaf, p.ca, NULL);
	assert_int_equal(chain_verify(p.root, chain, crls, 2, T0, &e), TDC_E_CRL);
	assert_string_equal(e.reason, "CRL signature invalid");
	X509_CRL_free(forged);
	sk_X509_pop_free(chain, X509_free);
	pki_free(&p);
}

static void crl_without_next_update_is_rejected(void **state)
{
	(void)state;
	struct tdc_error e;
	struct pki p;
	pki_make(&p, 0);
	X509_CRL *crl = X509_CRL_new();
	assert_int_equal(X509_CRL_set_version(crl, 1), 1);
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(p.ca)), 1);
	ASN1_TIME *t = ASN1_TIME_set(NULL, (time_t)(T0 - DAY));
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, t), 1);
	ASN1_TIME_free(t);
	assert_true(X509_CRL_sign(crl, p.ca_key, EVP_sha256()) > 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_crl_check(crl, p.ca, T0, "PCK CRL", &e), TDC_E_CRL);
	assert_string_equal(e.reason, "CRL has no nextUpdate");
	X509_CRL_free(crl);
	pki_free(&p);
}

static void rsa_leaf_is_rejected(void **state)
{
	(void)state;
	struct tdc_error e;
	struct pki p;
	pki_make(&p, 0);
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	assert_non_null(rsa);
	X509 *leaf = reparse(make_cert("RSA PCK Certificate", rsa, p.ca, p.ca_key, 5, T0 - DAY,
				       T0 + DAY, false));
	STACK_OF(X509) *chain = stack_of(leaf, p.ca, p.root);
	assert_int_equal(chain_verify(p.root, chain, NULL, 0, T0, &e), TDC_E_CHAIN);
	assert_string_equal(e.reason, "certificate key is not EC P-256");
	tdc_error_clear(&e);
	assert_int_equal(tdc_x509_p256_key(leaf, NULL, &e), TDC_E_CHAIN);
	/* and a P-384 CA */
	EVP_PKEY *p384 = EVP_EC_gen("P-384");
	X509 *ca = reparse(make_cert("P-384 CA", p384, p.root, p.root_key, 6, T0 - DAY, T0 + DAY,
				     true));
	tdc_error_clear(&e);
	assert_int_equal(tdc_x509_p256_key(ca, NULL, &e), TDC_E_CHAIN);
	X509_free(ca);
	EVP_PKEY_free(p384);
	sk_X509_pop_free(chain, X509_free);
	X509_free(leaf);
	EVP_PKEY_free(rsa);
	pki_free(&p);
}

static void crl_from_der_is_strict(void **state)
{
	(void)state;
	size_t len;
	uint8_t *der = read_testdata("zkdcap/pck_platform_crl.der", &len);
	uint8_t *more = malloc(len + 1);
	memcpy(more, der, len);
	more[len] = 0;
	X509_CRL *crl = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_crl_from_der(more, len + 1, &crl, &e), TDC_E_FORMAT);
	tdc_error_clear(&e);
	assert_int_equal(tdc_crl_from_der(more, len - 1, &crl, &e), TDC_E_FORMAT);
	assert_null(crl);
	free(more);
	free(der);
}

/* ---------- ECDSA ---------- */

static void sign_raw(EVP_PKEY *k, const uint8_t *msg, size_t len, uint8_t sig[64])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint8_t der[80];
	size_t dlen = sizeof(der);
	assert_int_equal(EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(c, der, &dlen, msg, len), 1);
	EVP_MD_CTX_free(c);
	const unsigned char *p = der;
	ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
	assert_non_null(s);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32), 32);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32), 32);
	ECDSA_SIG_free(s);
}

static void raw_pub(EVP_PKEY *k, uint8_t xy[64])
{
	uint8_t pub[65];
	size_t n = 0;
	assert_int_equal(EVP_PKEY_get_octet_string_param(k, "encoded-pub-key", pub, sizeof(pub),
							 &n),
			 1);
	assert_int_equal(n, 65);
	memcpy(xy, pub + 1, 64);
}

static void ecdsa_verify_cases(void **state)
{
	(void)state;
	static const uint8_t order[32] = {
		0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
		0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
	};
	struct tdc_error e;
	EVP_PKEY *k = gen_p256();
	uint8_t xy[64], sig[64], bad[64];
	uint8_t msg[100];
	memset(msg, 0x5a, sizeof(msg));
	raw_pub(k, xy);
	sign_raw(k, msg, sizeof(msg), sig);
	EVP_PKEY *key = NULL;
	assert_int_equal(tdc_p256_key_from_raw(xy, &key, NULL), 0);

	assert_int_equal(tdc_ecdsa_p256_verify(key, msg, sizeof(msg), sig, "test", NULL), 0);
	/* message changed */
	msg[3] ^= 1;
	tdc_error_clear(&e);
	assert_int_equal(tdc_ecdsa_p256_verify(key, msg, sizeof(msg), sig, "test", &e),
			 TDC_E_SIGNATURE);
	assert_string_equal(e.detail, "test signature invalid");
	msg[3] ^= 1;
	/* signature changed */
	memcpy(bad, sig, 64);
	bad[40] ^= 0x80;
	assert_int_equal(tdc_ecdsa_p256_verify(key, msg, sizeof(msg), bad, "test", NULL),
			 TDC_E_SIGNATURE);
	/* r = 0, s = 0 */
	memcpy(bad, sig, 64);
	memset(bad, 0, 32);
	assert_int_equal(tdc_ecdsa_p256_verify(key, msg, sizeof(msg), bad, "test", NULL),
			 TDC_E_SIGNATURE);
	memcpy(bad, sig, 64);
	memset(bad + 32, 0, 32);
	assert_int_equal(tdc_ecdsa_p256_verify(key, msg, sizeof(msg), bad, "test", NULL),
			 TDC_E_SIGNATURE);
	/* r = n, and s = n: out of range; also r + n (mod 2^256) when r is small is not
	 * representable, so n itself is the boundary case */
	memcpy(bad, sig, 64);
	memcpy(bad, order, 32);
	assert_int_equal(tdc_ecdsa_p256_verify(key, msg, sizeof(msg), bad, "test", NULL),
			 TDC_E_SIGNATURE);
	memcpy(bad, sig, 64);
	memcpy(bad + 32, order, 32);
	assert_int_equal(tdc_ecdsa_p256_verify(key, msg, sizeof(msg), bad, "test", NULL),
			 TDC_E_SIGNATURE);
	memset(bad, 0xff, 64);
	assert_int_equal(tdc_ecdsa_p256_verify(key, msg, sizeof(msg), bad, "test", NULL),
			 TDC_E_SIGNATURE);
	/* n - s is the other valid signature (malleability; ECDSA accepts it, as Intel does) */
	/* empty message */
	sign_raw(k, msg, 0, sig);
	assert_int_equal(tdc_ecdsa_p256_verify(key, msg, 0, sig, "test", NULL), 0);
	assert_int_equal(ERR_peek_error(), 0);
	EVP_PKEY_free(key);
	EVP_PKEY_free(k);
}

static void invalid_point_is_rejected(void **state)
{
	(void)state;
	struct tdc_error e;
	EVP_PKEY *k = gen_p256();
	uint8_t xy[64];
	raw_pub(k, xy);
	EVP_PKEY *key = NULL;
	xy[63] ^= 1; /* y no longer matches x */
	tdc_error_clear(&e);
	assert_int_equal(tdc_p256_key_from_raw(xy, &key, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "attestation key is not a valid P-256 point");
	assert_null(key);
	memset(xy, 0, 64); /* (0, 0): not on the curve (infinity has no affine form) */
	assert_int_equal(tdc_p256_key_from_raw(xy, &key, NULL), TDC_E_FORMAT);
	memset(xy, 0xff, 64); /* coordinates >= p */
	assert_int_equal(tdc_p256_key_from_raw(xy, &key, NULL), TDC_E_FORMAT);
	assert_null(key);
	assert_int_equal(ERR_peek_error(), 0);
	EVP_PKEY_free(k);
}

/* The quote signature of a real v4 quote: header + TD report [0, 632), signed with the
 * attestation key that follows the 4-byte signature data length and the signature. */
static void real_quote_signature_verifies(void **state)
{
	(void)state;
	size_t len;
	uint8_t *q = read_testdata("dcap-qvl/tdx_quote", &len);
	assert_true(len > 636 + 128);
	EVP_PKEY *key = NULL;
	assert_int_equal(tdc_p256_key_from_raw(q + 636 + 64, &key, NULL), 0);
	assert_int_equal(tdc_ecdsa_p256_verify(key, q, 632, q + 636, "quote", NULL), 0);
	q[100] ^= 1;
	assert_int_equal(tdc_ecdsa_p256_verify(key, q, 632, q + 636, "quote", NULL),
			 TDC_E_SIGNATURE);
	EVP_PKEY_free(key);
	free(q);
}

/* ---------- PCK SGX extension ---------- */

static void real_pck_extension(void **state)
{
	(void)state;
	struct tdc_error e;
	STACK_OF(X509) *chain = quote_chain("dcap-qvl/tdx_quote");
	struct tdc_pck_ext ext;
	tdc_error_clear(&e);
	int rc = tdc_pck_ext_parse(sk_X509_value(chain, 0), &ext, &e);
	if (rc)
		fail_msg("%s: %s", e.reason, e.detail);

	struct json_object *root = read_json("vectors.json");
	struct json_object *facts;
	assert_true(json_object_object_get_ex(vector(root, "dcapqvl-v4-uptodate"), "quote_facts",
					      &facts));
	uint8_t fmspc[6];
	assert_int_equal(tdc_hex_decode(json_str(facts, "fmspc"), 12, fmspc, 6, "fmspc", NULL), 0);
	assert_memory_equal(ext.fmspc, fmspc, 6);
	static const uint8_t b0c06f[6] = { 0xb0, 0xc0, 0x6f, 0x00, 0x00, 0x00 };
	assert_memory_equal(ext.fmspc, b0c06f, 6);
	struct json_object *v;
	assert_true(json_object_object_get_ex(facts, "pck_pcesvn", &v));
	assert_int_equal(ext.pcesvn, json_object_get_int(v));
	assert_int_equal(ext.pcesvn, 11);
	assert_true(json_object_object_get_ex(facts, "pck_sgx_tcb_comps", &v));
	assert_int_equal(json_object_array_length(v), 16);
	for (int i = 0; i < 16; i++)
		assert_int_equal(ext.sgx_svn[i],
				 json_object_get_int(json_object_array_get_idx(v, (size_t)i)));
	static const uint8_t comps[16] = { 3, 3, 2, 2, 4, 1, 0, 5 };
	assert_memory_equal(ext.sgx_svn, comps, 16);
	/* in real certificates CPUSVN bytes equal the component SVNs */
	assert_memory_equal(ext.cpusvn, ext.sgx_svn, 16);
	/* Platform-CA PCK: 7 entries */
	assert_true(ext.has_platform_instance_id);
	assert_true(ext.has_configuration);
	assert_int_equal(ext.pce_id[0], 0);
	assert_int_equal(ext.pce_id[1], 0);
	json_object_put(root);

	/* the zkdcap PCK too (FMSPC 00806F050000) */
	STACK_OF(X509) *z = quote_chain("zkdcap/quote_tdx_00806f050000.dat");
	assert_int_equal(tdc_pck_ext_parse(sk_X509_value(z, 0), &ext, NULL), 0);
	static const uint8_t f2[6] = { 0x00, 0x80, 0x6f, 0x05, 0x00, 0x00 };
	assert_memory_equal(ext.fmspc, f2, 6);
	/* a certificate without the extension */
	tdc_error_clear(&e);
	assert_int_equal(tdc_pck_ext_parse(sk_X509_value(z, 1), &ext, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "PCK certificate has no SGX extension");
	sk_X509_pop_free(z, X509_free);
	sk_X509_pop_free(chain, X509_free);
}

/* A tiny DER writer for building extension values. */
struct der {
	uint8_t b[2048];
	size_t n;
};

static void der_raw(struct der *d, const void *p, size_t n)
{
	assert_true(d->n + n <= sizeof(d->b));
	memcpy(d->b + d->n, p, n);
	d->n += n;
}

static void der_tlv(struct der *d, uint8_t tag, const void *p, size_t n)
{
	uint8_t h[4] = { tag };
	size_t hn;
	if (n < 128) {
		h[1] = (uint8_t)n;
		hn = 2;
	} else if (n < 256) {
		h[1] = 0x81;
		h[2] = (uint8_t)n;
		hn = 3;
	} else {
		h[1] = 0x82;
		h[2] = (uint8_t)(n >> 8);
		h[3] = (uint8_t)n;
		hn = 4;
	}
	der_raw(d, h, hn);
	der_raw(d, p, n);
}

/* SEQUENCE { OID 1.2.840.113741.1.13.1.a[.b], value } appended to d. */
static void der_entry(struct der *d, int a, int b, const struct der *value)
{
	static const uint8_t base[] = { 0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01 };
	uint8_t oid[16];
	size_t on = sizeof(base);
	memcpy(oid, base, on);
	oid[on++] = (uint8_t)a;
	if (b > 0)
		oid[on++] = (uint8_t)b;
	struct der pair = { .n = 0 };
	der_tlv(&pair, 0x06, oid, on);
	der_raw(&pair, value->b, value->n);
	der_tlv(d, 0x30, pair.b, pair.n);
}

static void der_octets(struct der *v, size_t n, uint8_t fill)
{
	uint8_t b[32];
	memset(b, fill, sizeof(b));
	v->n = 0;
	der_tlv(v, 0x04, b, n);
}

static void der_int(struct der *v, uint8_t tag, long x)
{
	uint8_t b[3];
	size_t n;
	if (x < 0x80) {
		b[0] = (uint8_t)x;
		n = 1;
	} else if (x < 0x8000) {
		b[0] = (uint8_t)(x >> 8);
		b[1] = (uint8_t)x;
		n = 2;
	} else {
		b[0] = 0;
		b[1] = (uint8_t)(x >> 8);
		b[2] = (uint8_t)x;
		n = 3;
	}
	v->n = 0;
	der_tlv(v, tag, b, n);
}

struct ext_spec {
	int entries;          /* 5 or 7 (or 6: .1-.6) */
	int dup;              /* top-level sub-OID to repeat (0: none) */
	int skip;             /* top-level sub-OID to leave out (0: none) */
	size_t fmspc_len;
	int tcb_entries;      /* 18 */
	long comp1;           /* value of .2.1 */
	long sgx_type;
};

static const struct ext_spec good_spec = { 7, 0, 0, 6, 18, 3, 1 };

static void build_ext(const struct ext_spec *s, struct der *out)
{
	struct der body = { .n = 0 }, v, tcb = { .n = 0 }, cfg = { .n = 0 };
	for (int i = 1; i <= s->tcb_entries; i++) {
		if (i <= 16)
			der_int(&v, 0x02, i == 1 ? s->comp1 : i);
		else if (i == 17)
			der_int(&v, 0x02, 11);
		else
			der_octets(&v, 16, 7);
		der_entry(&tcb, 2, i, &v);
	}
	for (int i = 1; i <= 3; i++) {
		uint8_t t = i == 2 ? 0x00 : 0xff;
		v.n = 0;
		der_tlv(&v, 0x01, &t, 1);
		der_entry(&cfg, 7, i, &v);
	}
	for (int i = 1; i <= s->entries + (s->skip ? 1 : 0); i++) {
		if (i == s->skip)
			continue;
		for (int rep = 0; rep < (i == s->dup ? 2 : 1); rep++) {
			switch (i) {
			case 1:
				der_octets(&v, 16, 0x11);
				break;
			case 2:
				v.n = 0;
				der_tlv(&v, 0x30, tcb.b, tcb.n);
				break;
			case 3:
				der_octets(&v, 2, 0);
				break;
			case 4:
				der_octets(&v, s->fmspc_len, 0xb0);
				break;
			case 5:
				der_int(&v, 0x0a, s->sgx_type);
				break;
			case 6:
				der_octets(&v, 16, 0x66);
				break;
			case 7:
				v.n = 0;
				der_tlv(&v, 0x30, cfg.b, cfg.n);
				break;
			}
			der_entry(&body, i, 0, &v);
		}
	}
	out->n = 0;
	der_tlv(out, 0x30, body.b, body.n);
}

static int parse_spec(const struct ext_spec *s, struct tdc_pck_ext *ext, struct tdc_error *e)
{
	struct der d;
	build_ext(s, &d);
	tdc_error_clear(e);
	return tdc_pck_ext_parse_der(d.b, d.n, ext, e);
}

static void pck_extension_synthetic(void **state)
{
	(void)state;
	struct tdc_error e;
	struct tdc_pck_ext ext;
	struct ext_spec s = good_spec;

	/* 7 entries */
	int rc = parse_spec(&s, &ext, &e);
	if (rc)
		fail_msg("%s: %s", e.reason, e.detail);
	assert_int_equal(ext.sgx_svn[0], 3);
	assert_int_equal(ext.sgx_svn[15], 16);
	assert_int_equal(ext.pcesvn, 11);
	assert_int_equal(ext.sgx_type, 1);
	assert_int_equal(ext.fmspc[5], 0xb0);
	assert_true(ext.has_platform_instance_id && ext.has_configuration);
	assert_true(ext.dynamic_platform && !ext.cached_keys && ext.smt_enabled);
	/* 5 entries (Processor CA) */
	s.entries = 5;
	assert_int_equal(parse_spec(&s, &ext, &e), 0);
	assert_false(ext.has_platform_instance_id || ext.has_configuration);
	/* comp SVN 255 is the top of the range */
	s.comp1 = 255;
	assert_int_equal(parse_spec(&s, &ext, &e), 0);
	assert_int_equal(ext.sgx_svn[0], 255);

	/* 6 entries */
	s = good_spec;
	s.entries = 6;
	assert_int_equal(parse_spec(&s, &ext, &e), TDC_E_FORMAT);
	/* duplicate .4 in place of .3: 5 entries .1 .2 .4 .4 .5 */
	s = good_spec;
	s.entries = 4;
	s.dup = 4;
	s.skip = 3;
	assert_int_equal(parse_spec(&s, &ext, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "PCK SGX extension: duplicate entry");
	assert_non_null(strstr(e.detail, ".4"));
	/* FMSPC of 5 bytes */
	s = good_spec;
	s.fmspc_len = 5;
	assert_int_equal(parse_spec(&s, &ext, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "PCK SGX extension: wrong length");
	assert_non_null(strstr(e.detail, "FMSPC (.4)"));
	/* TCB with 17 entries */
	s = good_spec;
	s.tcb_entries = 17;
	assert_int_equal(parse_spec(&s, &ext, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "PCK SGX extension: wrong number of entries");
	assert_non_null(strstr(e.detail, "TCB (.2)"));
	/* comp SVN 256 */
	s = good_spec;
	s.comp1 = 256;
	assert_int_equal(parse_spec(&s, &ext, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "PCK SGX extension: value out of range");
	assert_non_null(strstr(e.detail, ".2.1"));
	/* missing .5 (with .6 in its place: still 5 entries) */
	s = good_spec;
	s.entries = 5;
	s.skip = 5;
	assert_int_equal(parse_spec(&s, &ext, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "PCK SGX extension: missing entry");
	assert_non_null(strstr(e.detail, ".5"));
	/* SGX type out of range */
	s = good_spec;
	s.sgx_type = 3;
	assert_int_equal(parse_spec(&s, &ext, &e), TDC_E_FORMAT);
	assert_non_null(strstr(e.detail, "SGX Type (.5)"));

	/* trailing byte, and a BER (non-minimal) length */
	struct der d;
	build_ext(&good_spec, &d);
	d.b[d.n] = 0;
	tdc_error_clear(&e);
	assert_int_equal(tdc_pck_ext_parse_der(d.b, d.n + 1, &ext, &e), TDC_E_FORMAT);
	assert_int_equal(tdc_pck_ext_parse_der(d.b, d.n - 1, &ext, NULL), TDC_E_FORMAT);
	struct der ber = { .n = 0 };
	uint8_t hdr[5] = { 0x30, 0x83, 0, (uint8_t)((d.n - 4) >> 8), (uint8_t)(d.n - 4) };
	assert_int_equal(d.b[1], 0x82); /* the good one uses a 2-byte length */
	der_raw(&ber, hdr, 5);
	der_raw(&ber, d.b + 4, d.n - 4);
	assert_int_equal(tdc_pck_ext_parse_der(ber.b, ber.n, &ext, NULL), TDC_E_FORMAT);
	/* on failure nothing partial is left in out */
	assert_true(tdc_all_zero(&ext, sizeof(ext)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(root_is_pinned_intel_ca),
		cmocka_unit_test(from_der_rejects_trailing_byte),
		cmocka_unit_test(pem_chain_parse_strict),
		cmocka_unit_test(real_pck_chain_verifies),
		cmocka_unit_test(real_tcb_signing_chain_verifies),
		cmocka_unit_test(leaf_validity_window_is_enforced),
		cmocka_unit_test(expired_crl_is_rejected),
		cmocka_unit_test(wrong_pck_crl_is_issuer_mismatch),
		cmocka_unit_test(wrong_root_is_rejected),
		cmocka_unit_test(synthetic_pki_verifies_and_revokes),
		cmocka_unit_test(crl_with_bad_signature_is_rejected),
		cmocka_unit_test(crl_without_next_update_is_rejected),
		cmocka_unit_test(rsa_leaf_is_rejected),
		cmocka_unit_test(crl_from_der_is_strict),
		cmocka_unit_test(ecdsa_verify_cases),
		cmocka_unit_test(invalid_point_is_rejected),
		cmocka_unit_test(real_quote_signature_verifies),
		cmocka_unit_test(real_pck_extension),
		cmocka_unit_test(pck_extension_synthetic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
