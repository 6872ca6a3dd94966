/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's self-signed RA-TLS certificate (PROTOCOL.md §3) and the broker's
 * checks of a peer certificate against its evidence (§5.1), plus SPKI pins.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tdcrypt/ratls.h"
#include "util/util.h"

int tdc_ratls_keygen(EVP_PKEY **out, struct tdc_error *e)
{
	if (!out)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_keygen: NULL argument");
	*out = EVP_EC_gen(SN_X9_62_prime256v1);
	if (!*out)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "P-256 key generation failed");
	return 0;
}

static int add_conf_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (!ext)
		return 0;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

static int add_evidence_ext(X509 *x, const uint8_t *ext, size_t len)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(TDC_RATLS_EVIDENCE_OID, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *xe = NULL;
	int ok = 0;

	if (obj && os && len <= INT32_MAX && ASN1_OCTET_STRING_set(os, ext, (int)len))
		xe = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
	if (xe)
		ok = X509_add_ext(x, xe, -1);
	X509_EXTENSION_free(xe);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(obj);
	return ok;
}

/* Positive random 128-bit serial. */
static int set_serial(X509 *x)
{
	uint8_t b[16];
	BIGNUM *bn = NULL;
	int ok = 0;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return 0;
	b[0] = (b[0] & 0x7f) | 0x01;
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		ok = 1;
	BN_free(bn);
	return ok;
}

int tdc_ratls_cert_create_ext(EVP_PKEY *key, const uint8_t *ext, size_t ext_len, int64_t now,
			      uint32_t lifetime, X509 **out, struct tdc_error *e)
{
	X509 *x = NULL;
	X509_NAME *name = NULL;
	X509V3_CTX ctx;

	if (!key || !ext || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_cert_create_ext: NULL argument");
	*out = NULL;
	if (now < TDC_RATLS_CERT_SKEW || lifetime == 0)
		return TDC_FAIL(e, TDC_E_USAGE, "bad certificate time");

	x = X509_new();
	name = X509_NAME_new();
	if (!x || !name)
		goto ossl;
	if (!X509_set_version(x, X509_VERSION_3) || !set_serial(x))
		goto ossl;
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)"tdcrypt-agent", -1, -1, 0))
		goto ossl;
	if (!X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name))
		goto ossl;
	if (!ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now - TDC_RATLS_CERT_SKEW)) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(now + lifetime)))
		goto ossl;
	if (!X509_set_pubkey(x, key))
		goto ossl;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (!add_conf_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_conf_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
	    !add_conf_ext(x, &ctx, NID_ext_key_usage, "clientAuth"))
		goto ossl;
	if (!add_evidence_ext(x, ext, ext_len))
		goto ossl;
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		goto ossl;
	X509_NAME_free(name);
	*out = x;
	return 0;
ossl:
	X509_NAME_free(name);
	X509_free(x);
	return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot build the RA-TLS certificate");
}

int tdc_ratls_cert_create(EVP_PKEY *key, const uint8_t *quote, size_t quote_len, int64_t now,
			  uint32_t lifetime, X509 **out, struct tdc_error *e)
{
	struct tdc_ratls_claims c;
	uint8_t *ext = NULL;
	size_t ext_len = 0;

	TDC_GUARD(tdc_ratls_claims_for_key(key, NULL, 0, &c, e));
	TDC_GUARD(tdc_ratls_ext_encode(quote, quote_len, &c, &ext, &ext_len, e));
	int r = tdc_ratls_cert_create_ext(key, ext, ext_len, now, lifetime, out, e);
	free(ext);
	return r;
}

/*
 * Extensions other RA-TLS implementations put their evidence in instead of
 * 2.23.133.5.4.9 (PROTOCOL.md §4.5). quote: the extension value is a raw quote.
 */
static const struct {
	const char *oid;
	const char *what;
	bool quote;
} foreign_exts[] = {
	/* Gramine passes the DER TLV of 1.2.840.113741.1337.6 where mbedTLS wants its value,
	 * so its certificates carry this OID */
	{ "0.6.9.42.840.113741.1337.6", "Gramine's legacy RA-TLS quote extension", true },
	{ "1.2.840.113741.1337.6",
	  "the legacy RA-TLS SGX quote extension (rats-tls; Gramine's intended OID)", true },
	{ "1.2.840.113741.1.13.1", "the Intel SGX SDK's legacy RA-TLS quote extension", true },
	{ "1.2.840.113741.1337.8", "rats-tls's legacy TDX quote extension", true },
	{ "1.2.840.113741.1337.2", "an Intel IAS report (SGX EPID; Gramine, rats-tls)", false },
	{ "1.2.840.113741.1337.14", "an SGX local attestation report (rats-tls)", false },
	{ "1.2.840.113741.1337.20", "an AMD SEV-SNP report (rats-tls)", false },
	{ "1.2.840.113741.1337.22", "an AMD SEV report (rats-tls)", false },
	{ "1.3.6.1.4.1.311.105.1", "an Open Enclave report", false },
	{ "1.2.840.113556.10.1.1", "a legacy Open Enclave report", false },
};

/* Index of the only extension of cert with oid, -1 if none, -2 if several. */
static int find_ext(X509 *cert, const char *oid)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	if (!obj)
		return -1;
	int idx = X509_get_ext_by_OBJ(cert, obj, -1);
	int again = idx >= 0 ? X509_get_ext_by_OBJ(cert, obj, idx) : -1;
	ASN1_OBJECT_free(obj);
	return again >= 0 ? -2 : idx;
}

/*
 * A certificate without the evidence extension: if it carries another RA-TLS
 * implementation's extension, say which, and for a quote what TEE it is from,
 * as far as its header tells (tdc_quote_check_type).
 */
static int no_evidence(X509 *cert, struct tdc_error *e)
{
	for (size_t i = 0; i < sizeof(foreign_exts) / sizeof(foreign_exts[0]); i++) {
		int idx = find_ext(cert, foreign_exts[i].oid);
		if (idx == -1)
			continue;
		const char *what = foreign_exts[i].what, *oid = foreign_exts[i].oid;
		if (!foreign_exts[i].quote || idx < 0)
			return TDC_FAILF(e, TDC_E_UNSUPPORTED,
					 "RA-TLS certificate of another implementation",
					 "no " TDC_RATLS_EVIDENCE_OID " evidence extension; it carries "
					 "%s (%s)", what, oid);
		ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
		struct tdc_rd r;
		struct tdc_quote_type t;
		struct tdc_error qe;
		tdc_rd_init(&r, os ? ASN1_STRING_get0_data(os) : NULL,
			    os ? (size_t)ASN1_STRING_length(os) : 0);
		tdc_error_clear(&qe);
		if (tdc_quote_check_type(&r, &t, &qe) < 0)
			return TDC_FAILF(e, qe.code, qe.reason,
					 "in %s (%s), not in an " TDC_RATLS_EVIDENCE_OID
					 " evidence extension: %s", what, oid, qe.detail);
		return TDC_FAILF(e, TDC_E_UNSUPPORTED,
				 "TDX quote in a legacy RA-TLS extension, not in the evidence extension",
				 "%s (%s) holds a TDX quote v%u; tdcrypt takes it only in "
				 TDC_RATLS_EVIDENCE_OID " with its claims (PROTOCOL.md 4)",
				 what, oid, t.version);
	}
	return TDC_FAIL(e, TDC_E_FORMAT, "certificate has no evidence extension");
}

int tdc_ratls_cert_evidence(X509 *cert, struct tdc_ratls_evidence *ev, struct tdc_error *e)
{
	if (!cert || !ev)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_cert_evidence: NULL argument");
	memset(ev, 0, sizeof(*ev));
	int idx = find_ext(cert, TDC_RATLS_EVIDENCE_OID);
	if (idx == -1)
		return no_evidence(cert, e);
	if (idx < 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "certificate has more than one evidence extension");
	ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
	if (!os)
		return TDC_FAIL(e, TDC_E_FORMAT, "evidence extension has no value");
	return tdc_ratls_ext_parse(ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os), ev,
				   e);
}

static bool is_p256(EVP_PKEY *pk)
{
	char group[32];
	size_t glen = 0;

	if (!pk || !EVP_PKEY_is_a(pk, "EC"))
		return false;
	if (!EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen))
		return false;
	return strcmp(group, SN_X9_62_prime256v1) == 0;
}

int tdc_ratls_cert_self_issued(X509 *cert, struct tdc_error *e)
{
	if (!cert)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_cert_self_issued: NULL argument");
	if (!is_p256(X509_get0_pubkey(cert)))
		return TDC_FAIL(e, TDC_E_UNSUPPORTED, "RA-TLS certificate key is not EC P-256");
	if (X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(cert)) != 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "RA-TLS certificate is not self-issued");
	return 0;
}

int tdc_ratls_cert_self_signed(X509 *cert, struct tdc_error *e)
{
	TDC_GUARD(tdc_ratls_cert_self_issued(cert, e));
	ERR_clear_error();
	if (X509_verify(cert, X509_get0_pubkey(cert)) != 1) {
		ERR_clear_error();
		return TDC_FAIL(e, TDC_E_SIGNATURE, "RA-TLS certificate self-signature invalid");
	}
	return 0;
}

/* Hash of cert's DER SubjectPublicKeyInfo with IANA alg id. */
static int spki_hash(X509 *cert, int alg, uint8_t *out, size_t *out_len, struct tdc_error *e)
{
	const EVP_MD *md = alg == TDC_RATLS_SHA256 ? EVP_sha256() :
			   alg == TDC_RATLS_SHA384 ? EVP_sha384() :
			   alg == TDC_RATLS_SHA512 ? EVP_sha512() : NULL;
	unsigned char *der = NULL;
	unsigned int mdlen = 0;

	if (!md)
		return TDC_FAILF(e, TDC_E_UNSUPPORTED, "unsupported hash", "id %d", alg);
	int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	if (n <= 0)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot encode SubjectPublicKeyInfo");
	int ok = EVP_Digest(der, (size_t)n, out, &mdlen, md, NULL);
	OPENSSL_free(der);
	if (!ok)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "digest failed");
	*out_len = mdlen;
	return 0;
}

/* §5.1 steps 2-3 on evidence already parsed from cert. */
static int check_binding(X509 *cert, const uint8_t *nonce, size_t nonce_len,
			 const struct tdc_ratls_evidence *ev, struct tdc_error *e)
{
	uint8_t h[EVP_MAX_MD_SIZE];
	size_t hlen = 0;
	const struct tdc_ratls_claims *c = &ev->claims;

	if (c->domain_len != strlen(TDC_RATLS_DOMAIN) ||
	    memcmp(c->domain, TDC_RATLS_DOMAIN, c->domain_len) != 0)
		return TDC_FAILF(e, TDC_E_BINDING, "evidence is not for tdcrypt",
				 "tdcrypt-domain of %zu bytes differs", c->domain_len);
	if (c->version != TDC_RATLS_VERSION)
		return TDC_FAILF(e, TDC_E_UNSUPPORTED, "unsupported tdcrypt-version", "%u, want %u",
				 c->version, TDC_RATLS_VERSION);
	if (nonce_len == 0 && c->nonce_len != 0)
		return TDC_FAIL(e, TDC_E_BINDING, "unexpected nonce claim");
	if (nonce_len && (c->nonce_len != nonce_len || !tdc_ct_equal(c->nonce, nonce, nonce_len)))
		return TDC_FAIL(e, TDC_E_BINDING, "nonce claim missing or different");

	TDC_GUARD(spki_hash(cert, c->hash_alg, h, &hlen, e));
	if (hlen != c->pubkey_hash_len || !tdc_ct_equal(h, c->pubkey_hash, hlen))
		return TDC_FAIL(e, TDC_E_BINDING,
				"pubkey-hash does not match the certificate's public key");
	return 0;
}

int tdc_ratls_cert_check(X509 *cert, const uint8_t *nonce, size_t nonce_len,
			 struct tdc_ratls_evidence *ev, struct tdc_error *e)
{
	if (!cert || !ev || (nonce_len && !nonce))
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_cert_check: NULL argument");
	/* what the certificate is comes first: another implementation's certificate (e.g.
	 * Gramine's, with a P-384 key and an SGX quote) is named, not refused for its key */
	TDC_GUARD(tdc_ratls_cert_evidence(cert, ev, e));
	TDC_GUARD(tdc_ratls_cert_self_signed(cert, e));
	return check_binding(cert, nonce, nonce_len, ev, e);
}

int tdc_ratls_cert_binding(X509 *cert, const uint8_t *nonce, size_t nonce_len,
			   struct tdc_ratls_evidence *ev, struct tdc_error *e)
{
	if (!cert || !ev || (nonce_len && !nonce))
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_cert_binding: NULL argument");
	TDC_GUARD(tdc_ratls_cert_evidence(cert, ev, e));
	return check_binding(cert, nonce, nonce_len, ev, e);
}

int tdc_spki_sha256(X509 *cert, uint8_t out[32], struct tdc_error *e)
{
	size_t n = 0;
	if (!cert || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_spki_sha256: NULL argument");
	return spki_hash(cert, TDC_RATLS_SHA256, out, &n, e);
}

bool tdc_spki_pin_match(X509 *cert, const uint8_t (*pins)[32], size_t n)
{
	uint8_t h[32];
	bool match = false;

	if (!cert || !pins || tdc_spki_sha256(cert, h, NULL) < 0)
		return false;
	/* no early exit: every pin is compared */
	for (size_t i = 0; i < n; i++)
		match |= tdc_ct_equal(h, pins[i], 32);
	return match;
}
