/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helpers: RA-TLS certificates as other CCC implementations make them
 * (Gramine, Intel SGX SDK, rats-tls), built here with OpenSSL from the shapes
 * described in docs/PROTOCOL.md §4.5 (no certificate is copied from anywhere),
 * around a small synthetic SGX quote.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ratls/cbor.h"
#include "tdcrypt/quote.h"
#include "tdcrypt/ratls.h"
#include "util/wr.h"

/* Gramine's legacy quote OID as its certificates carry it (PROTOCOL.md §4.5). */
#define FT_OID_GRAMINE_LEGACY "0.6.9.42.840.113741.1337.6"
#define FT_OID_SGXSDK_LEGACY "1.2.840.113741.1.13.1"
#define FT_OID_RATLS_TDX_LEGACY "1.2.840.113741.1337.8"
#define FT_OID_IAS_REPORT "1.2.840.113741.1337.2"

/*
 * A synthetic SGX ECDSA quote: the 48-byte header (version, key type 2, bytes
 * 4..7 = tee_type, Intel QE vendor ID), a 384-byte SGX report body with
 * report_data at 320, and a zero-filled 128-byte signature data block. Only the
 * layout is real; nothing in it verifies. malloc'd, *len set.
 */
static inline uint8_t *ft_sgx_quote(uint16_t version, uint32_t tee_type, const uint8_t rd[64],
				    size_t *len)
{
	struct tdc_wr w;
	uint8_t *out = NULL;
	tdc_wr_init_alloc(&w, 4096);
	tdc_wr_u16le(&w, version);
	tdc_wr_u16le(&w, TDC_ATT_KEY_ECDSA_P256);
	tdc_wr_u32le(&w, tee_type);
	tdc_wr_u16le(&w, 9);  /* QE SVN in v3 */
	tdc_wr_u16le(&w, 13); /* PCE SVN in v3 */
	tdc_wr_bytes(&w, tdc_intel_qe_vendor_id, 16);
	tdc_wr_zeros(&w, 20);      /* user data */
	tdc_wr_zeros(&w, 320);     /* report body up to report_data */
	tdc_wr_bytes(&w, rd, 64);  /* report_data */
	tdc_wr_u32le(&w, 128);     /* signature data length */
	tdc_wr_zeros(&w, 128);
	if (tdc_wr_finish(&w, &out, len, NULL) < 0)
		abort();
	return out;
}

/* A self-signed certificate for key with the extensions (OID, value) given, like
 * Gramine's (CN=RATLS, O=GramineDevelopers). The values are used as given. */
static inline X509 *ft_cert(EVP_PKEY *key, const char *const *oids, const uint8_t *const *vals,
			    const size_t *lens, size_t n)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	if (!x || !name || !X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"RATLS",
					-1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
					(const unsigned char *)"GramineDevelopers", -1, -1, 0) ||
	    !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), 978307200) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), 1924991999) || !X509_set_pubkey(x, key))
		abort();
	for (size_t i = 0; i < n; i++) {
		ASN1_OBJECT *obj = OBJ_txt2obj(oids[i], 1);
		ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
		if (!obj || !os || !ASN1_OCTET_STRING_set(os, vals[i], (int)lens[i]))
			abort();
		X509_EXTENSION *xe = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
		if (!xe || !X509_add_ext(x, xe, -1))
			abort();
		X509_EXTENSION_free(xe);
		ASN1_OCTET_STRING_free(os);
		ASN1_OBJECT_free(obj);
	}
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		abort();
	X509_NAME_free(name);
	return x;
}

/* SHA-256 of key's DER SubjectPublicKeyInfo. */
static inline void ft_spki_sha256(EVP_PKEY *key, uint8_t h[32])
{
	unsigned char *der = NULL;
	unsigned int n = 0;
	int dl = i2d_PUBKEY(key, &der);
	if (dl <= 0 || !EVP_Digest(der, (size_t)dl, h, &n, EVP_sha256(), NULL))
		abort();
	OPENSSL_free(der);
}

/*
 * A CCC claims-buffer as Gramine and rats-tls write it: pubkey-hash first (the
 * SHA-256 of key's SPKI), then the custom claims in insertion order ("key_0":
 * "value_0\0", ... as the rats-tls sample does), n_custom of them. Not in
 * deterministic order when n_custom > 0. Returns the length written into buf.
 */
static inline size_t ft_ccc_claims(EVP_PKEY *key, unsigned n_custom, uint8_t *buf, size_t cap)
{
	struct tdc_wr w, v;
	uint8_t h[32], vb[40];
	ft_spki_sha256(key, h);
	tdc_wr_init_fixed(&v, vb, sizeof(vb));
	tdc_cbor_put_head(&v, TDC_CBOR_ARRAY, 2);
	tdc_cbor_put_head(&v, TDC_CBOR_UINT, TDC_RATLS_SHA256);
	tdc_cbor_put_bstr(&v, h, sizeof(h));
	tdc_wr_init_fixed(&w, buf, cap);
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 1 + n_custom);
	tdc_cbor_put_tstr(&w, "pubkey-hash");
	tdc_cbor_put_bstr(&w, vb, tdc_wr_len(&v));
	for (unsigned i = 0; i < n_custom; i++) {
		char k[16], val[16];
		snprintf(k, sizeof(k), "key_%u", i);
		snprintf(val, sizeof(val), "value_%u", i);
		tdc_cbor_put_tstr(&w, k);
		tdc_cbor_put_bstr(&w, val, strlen(val) + 1);
	}
	if (tdc_wr_error(&w))
		abort();
	return tdc_wr_len(&w);
}

/* tag([bstr quote, bstr claims]) (tag 60000 for the CCC format), malloc'd. */
static inline uint8_t *ft_evidence(uint64_t tag, const uint8_t *quote, size_t qlen,
				   const uint8_t *claims, size_t clen, size_t *len)
{
	struct tdc_wr w;
	uint8_t *out = NULL;
	tdc_wr_init_alloc(&w, 1u << 20);
	tdc_cbor_put_head(&w, TDC_CBOR_TAG, tag);
	tdc_cbor_put_head(&w, TDC_CBOR_ARRAY, 2);
	tdc_cbor_put_bstr(&w, quote, qlen);
	tdc_cbor_put_bstr(&w, claims, clen);
	if (tdc_wr_finish(&w, &out, len, NULL) < 0)
		abort();
	return out;
}

/* REPORTDATA as the CCC format makes it: SHA-256(claims-buffer) || 0^32. */
static inline void ft_report_data(const uint8_t *claims, size_t clen, uint8_t rd[64])
{
	unsigned int n = 0;
	memset(rd, 0, 64);
	if (!EVP_Digest(claims, clen, rd, &n, EVP_sha256(), NULL))
		abort();
}

/*
 * A rats-tls-style certificate (P-256 key, which passes the broker's handshake):
 * the CCC evidence extension with a synthetic SGX v3 quote binding a claims
 * map of pubkey-hash and two custom claims. *key_out receives the key.
 */
static inline X509 *ft_ratls_sgx_cert(EVP_PKEY **key_out)
{
	EVP_PKEY *key = EVP_EC_gen(SN_X9_62_prime256v1);
	uint8_t claims[256], rd[64];
	size_t qlen, elen;
	if (!key)
		abort();
	size_t clen = ft_ccc_claims(key, 2, claims, sizeof(claims));
	ft_report_data(claims, clen, rd);
	uint8_t *q = ft_sgx_quote(3, 0, rd, &qlen);
	uint8_t *ev = ft_evidence(TDC_RATLS_CBOR_TAG_TEE_QUOTE, q, qlen, claims, clen, &elen);
	const char *oid = TDC_RATLS_EVIDENCE_OID;
	const uint8_t *val = ev;
	X509 *x = ft_cert(key, &oid, &val, &elen, 1);
	free(ev);
	free(q);
	*key_out = key;
	return x;
}
