/* SPDX-License-Identifier: Apache-2.0 */
/*
 * X.509 and ECDSA building blocks for DCAP (OpenSSL 3 only):
 * the pinned Intel SGX Root CA, PEM chains, CRLs, chain verification at an
 * injected time, the PCK certificate's SGX extension, raw r||s ECDSA-P256.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tdcrypt/error.h"

/* Intel SGX Root CA (DER), compiled in. SHA-256 44A0196B...B674D3. */
extern const uint8_t tdc_intel_root_ca_der[];
extern const size_t tdc_intel_root_ca_der_len;

/* Loads a root certificate from DER. */
int tdc_x509_from_der(const uint8_t *der, size_t len, X509 **out, struct tdc_error *e)
	TDC_MUST_USE;

/*
 * Parses a PEM chain (leaf first). Requires exactly `expected` certificates
 * when expected > 0 (at most TDC_MAX_CHAIN_CERTS otherwise); anything other
 * than certificates and whitespace is an error.
 */
int tdc_pem_chain_parse(const uint8_t *pem, size_t len, size_t expected, STACK_OF(X509) **out,
			struct tdc_error *e) TDC_MUST_USE;

/* Parses a DER CRL (must consume all bytes). */
int tdc_crl_from_der(const uint8_t *der, size_t len, X509_CRL **out, struct tdc_error *e)
	TDC_MUST_USE;

/* Public key of a certificate, required to be EC P-256. */
int tdc_x509_p256_key(X509 *cert, EVP_PKEY **out, struct tdc_error *e) TDC_MUST_USE;

/* EC P-256 public key from raw x||y (64 bytes, big-endian). Invalid points fail. */
int tdc_p256_key_from_raw(const uint8_t xy[64], EVP_PKEY **out, struct tdc_error *e)
	TDC_MUST_USE;

/* ECDSA-P256-SHA256 verification of a raw r||s signature over msg.
 * Returns 0 if valid, TDC_E_SIGNATURE if not. `what` names the signature. */
int tdc_ecdsa_p256_verify(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t sig[64],
			  const char *what, struct tdc_error *e) TDC_MUST_USE;

/*
 * Verifies chain (leaf first; the last element may be the root itself, which
 * must then equal `root` byte for byte) up to `root`, at time `now`, with the
 * given CRLs (may be empty) and CRL checking on every level that has one.
 * Errors: TDC_E_CHAIN, TDC_E_EXPIRED, TDC_E_REVOKED, TDC_E_CRL.
 */
int tdc_chain_verify(X509 *root, STACK_OF(X509) *chain, X509_CRL **crls, size_t n_crls,
		     int64_t now, const char *what, struct tdc_error *e) TDC_MUST_USE;

/*
 * Checks a CRL: signed by issuer, issuer DN equal to the issuer's subject,
 * thisUpdate <= now <= nextUpdate.
 */
int tdc_crl_check(X509_CRL *crl, X509 *issuer, int64_t now, const char *what,
		  struct tdc_error *e) TDC_MUST_USE;

/* Window of a certificate / CRL as seconds since the epoch. */
int tdc_x509_window(X509 *cert, int64_t *not_before, int64_t *not_after, struct tdc_error *e)
	TDC_MUST_USE;
int tdc_crl_window(X509_CRL *crl, int64_t *this_update, int64_t *next_update,
		   struct tdc_error *e) TDC_MUST_USE;

/* True if the subject CN of cert contains `needle`. */
bool tdc_x509_cn_contains(X509 *cert, const char *needle);

/* SGX extension (OID 1.2.840.113741.1.13.1) of a PCK certificate. */
struct tdc_pck_ext {
	uint8_t ppid[16];
	uint8_t sgx_svn[16]; /* TCB comp01..16 */
	uint16_t pcesvn;
	uint8_t cpusvn[16];
	uint8_t pce_id[2];
	uint8_t fmspc[6];
	int sgx_type; /* 0 standard, 1 scalable, 2 scalable+integrity */
	bool has_platform_instance_id;
	uint8_t platform_instance_id[16];
	bool has_configuration;
	bool dynamic_platform, cached_keys, smt_enabled;
};

/*
 * Parses the SGX extension strictly: 5 entries (Processor CA) or 7
 * (Platform CA), no duplicates, exact lengths, 18 TCB entries.
 */
int tdc_pck_ext_parse(X509 *pck, struct tdc_pck_ext *out, struct tdc_error *e) TDC_MUST_USE;
/* Same, from the DER of the extension value (for fuzzing). */
int tdc_pck_ext_parse_der(const uint8_t *der, size_t len, struct tdc_pck_ext *out,
			  struct tdc_error *e) TDC_MUST_USE;
