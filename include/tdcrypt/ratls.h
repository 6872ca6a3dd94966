/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RA-TLS for the agent/broker channel (docs/PROTOCOL.md §3-5): the agent's
 * self-signed certificate carrying a TDX quote in the CCC "Interoperable RA-TLS"
 * evidence extension (OID 2.23.133.5.4.9, CBOR tag 60000 over [quote, claims]),
 * and the broker's strict parser and binding checks.
 *
 * REPORTDATA = SHA-256(claims-buffer) || 32 zero bytes, where the claims map holds
 * the SHA-256 of the key's DER SubjectPublicKeyInfo, the tdcrypt domain tag and
 * the protocol version. Time is always an input; nothing here reads the clock.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tdcrypt/error.h"
#include "tdcrypt/quote.h"
#include "util/rd.h"

#define TDC_RATLS_EVIDENCE_OID "2.23.133.5.4.9"
/* IANA CBOR tag "Intel TEE quote" (SGX and TDX ECDSA quotes). */
#define TDC_RATLS_CBOR_TAG_TEE_QUOTE 60000u
/* tdcrypt-domain claim value (13 ASCII bytes, no NUL). */
#define TDC_RATLS_DOMAIN "tdcrypt-ratls"
/* tdcrypt-version claim value and API path version. */
#define TDC_RATLS_VERSION 1
#define TDC_RATLS_DEFAULT_PORT 50051
#define TDC_RATLS_NONCE_MIN 16
#define TDC_RATLS_NONCE_MAX 64
#define TDC_RATLS_DOMAIN_MAX 32
/* Default certificate lifetime and the clock skew put before "now". */
#define TDC_RATLS_CERT_LIFETIME 3600u
#define TDC_RATLS_CERT_SKEW 300

/* Hash algorithm IDs from the IANA Named Information registry (CoSWID hash-entry). */
enum tdc_ratls_hash {
	TDC_RATLS_SHA256 = 1,
	TDC_RATLS_SHA384 = 7,
	TDC_RATLS_SHA512 = 8,
};

struct tdc_ratls_claims {
	int hash_alg;                      /* enum tdc_ratls_hash of pubkey_hash */
	uint8_t pubkey_hash[64];
	size_t pubkey_hash_len;            /* 32, 48 or 64 */
	uint8_t nonce[TDC_RATLS_NONCE_MAX];
	size_t nonce_len;                  /* 0: no nonce claim */
	uint8_t domain[TDC_RATLS_DOMAIN_MAX];
	size_t domain_len;
	uint8_t version;
	size_t ignored;                    /* parser: claims unknown to tdcrypt, skipped */
};

/* A parsed evidence extension. The views point into the parsed bytes (for
 * tdc_ratls_cert_evidence: into the X509's own storage), which must outlive it. */
struct tdc_ratls_evidence {
	struct tdc_rd quote;         /* the quote bytes, exactly as carried */
	struct tdc_rd claims_buffer; /* the bytes hashed into REPORTDATA */
	struct tdc_ratls_claims claims;
};

/* ---- agent side ---- */

/* Fresh EC P-256 key. */
int tdc_ratls_keygen(EVP_PKEY **out, struct tdc_error *e) TDC_MUST_USE;

/*
 * Claims for key: SHA-256 of its DER SubjectPublicKeyInfo, domain
 * TDC_RATLS_DOMAIN, version TDC_RATLS_VERSION, and the nonce when nonce_len > 0
 * (TDC_RATLS_NONCE_MIN..MAX bytes; protocol v1 sends none).
 */
int tdc_ratls_claims_for_key(EVP_PKEY *key, const uint8_t *nonce, size_t nonce_len,
			     struct tdc_ratls_claims *c, struct tdc_error *e) TDC_MUST_USE;

/* The claims-buffer: deterministic CBOR map (PROTOCOL.md §4.3), malloc'd. */
int tdc_ratls_claims_encode(const struct tdc_ratls_claims *c, uint8_t **out, size_t *len,
			    struct tdc_error *e) TDC_MUST_USE;

/* REPORTDATA = SHA-256(claims-buffer) || 0^32. */
int tdc_ratls_report_data(const struct tdc_ratls_claims *c, uint8_t rd[64], struct tdc_error *e)
	TDC_MUST_USE;
/* Same for the v1 claims of key (no nonce): what the agent asks the quote provider for. */
int tdc_ratls_report_data_for_key(EVP_PKEY *key, uint8_t rd[64], struct tdc_error *e)
	TDC_MUST_USE;

/* Extension value: tag(60000)([bstr quote, bstr claims-buffer]), malloc'd. */
int tdc_ratls_ext_encode(const uint8_t *quote, size_t quote_len, const struct tdc_ratls_claims *c,
			 uint8_t **out, size_t *len, struct tdc_error *e) TDC_MUST_USE;

/*
 * Self-signed certificate for key (PROTOCOL.md §3) whose evidence extension
 * value is ext (used as given). Valid from now - TDC_RATLS_CERT_SKEW to
 * now + lifetime.
 */
int tdc_ratls_cert_create_ext(EVP_PKEY *key, const uint8_t *ext, size_t ext_len, int64_t now,
			      uint32_t lifetime, X509 **out, struct tdc_error *e) TDC_MUST_USE;
/* The agent's certificate: v1 claims of key, the quote, as above. The quote
 * must have been made for tdc_ratls_report_data_for_key(key). */
int tdc_ratls_cert_create(EVP_PKEY *key, const uint8_t *quote, size_t quote_len, int64_t now,
			  uint32_t lifetime, X509 **out, struct tdc_error *e) TDC_MUST_USE;

/* ---- broker side ---- */

/*
 * Parses an evidence extension value strictly (PROTOCOL.md §4.4): fixed shape,
 * deterministic CBOR, size caps, no trailing bytes, no duplicate claims; claims
 * tdcrypt does not know are skipped and counted in claims.ignored, the ones it
 * requires stay required. Before the claims, the quote's header must name a TDX
 * quote (tdc_quote_check_type), so evidence from another TEE is refused as what
 * it is (§4.5). Checks structure only, not the binding.
 */
int tdc_ratls_ext_parse(const uint8_t *der, size_t len, struct tdc_ratls_evidence *ev,
			struct tdc_error *e) TDC_MUST_USE;

/*
 * Finds the one 2.23.133.5.4.9 extension of cert and parses it. A certificate
 * without one that carries another RA-TLS implementation's extension (Gramine,
 * Intel SGX SDK, rats-tls, Open Enclave legacy OIDs) is refused naming it and,
 * for a quote, its TEE ("SGX quote (TEE type 0x0), not TDX"); PROTOCOL.md §4.5.
 */
int tdc_ratls_cert_evidence(X509 *cert, struct tdc_ratls_evidence *ev, struct tdc_error *e)
	TDC_MUST_USE;

/*
 * What the broker's handshake callback checks: cert has an EC P-256 key and is
 * self-issued (issuer = subject). Its self-signature is not verified: TLS 1.3's
 * CertificateVerify, signed by that key over a transcript that contains the
 * certificate, proves more (PROTOCOL.md 2, 5.1).
 */
int tdc_ratls_cert_self_issued(X509 *cert, struct tdc_error *e) TDC_MUST_USE;
/* tdc_ratls_cert_self_issued and a valid self-signature: for a certificate checked
 * without a handshake (nothing else shows that its key holder made it). */
int tdc_ratls_cert_self_signed(X509 *cert, struct tdc_error *e) TDC_MUST_USE;

/*
 * Full certificate check short of the quote (PROTOCOL.md §5.1 steps 2-3), for a
 * certificate seen without a handshake: tdc_ratls_cert_evidence (first, so that a
 * foreign certificate is named before its key type is judged),
 * tdc_ratls_cert_self_signed, domain, version, the nonce (nonce_len 0: must be
 * absent; else must be equal), and pubkey-hash == hash of the certificate's actual
 * SubjectPublicKeyInfo. Fills ev.
 */
int tdc_ratls_cert_check(X509 *cert, const uint8_t *nonce, size_t nonce_len,
			 struct tdc_ratls_evidence *ev, struct tdc_error *e) TDC_MUST_USE;
/* tdc_ratls_cert_check without tdc_ratls_cert_self_signed, for the peer certificate
 * of a TLS 1.3 handshake that the broker's callback (tdc_ratls_cert_self_issued)
 * accepted: the handshake proved possession of its key. */
int tdc_ratls_cert_binding(X509 *cert, const uint8_t *nonce, size_t nonce_len,
			   struct tdc_ratls_evidence *ev, struct tdc_error *e) TDC_MUST_USE;

/* REPORTDATA binding (§5.1 step 4): report_data == SHA-256(claims-buffer) || 0^32,
 * compared in constant time. TDC_E_BINDING otherwise. */
int tdc_ratls_check_report_data(const struct tdc_ratls_evidence *ev, const uint8_t report_data[64],
				struct tdc_error *e) TDC_MUST_USE;

/* Parses ev's quote into q (tdc_quote_parse; views point into the evidence) and
 * checks its REPORTDATA with tdc_ratls_check_report_data. */
int tdc_ratls_check_quote(const struct tdc_ratls_evidence *ev, struct tdc_quote *q,
			  struct tdc_error *e) TDC_MUST_USE;

/* ---- broker identity (agent side) ---- */

/* SHA-256 of cert's DER SubjectPublicKeyInfo. */
int tdc_spki_sha256(X509 *cert, uint8_t out[32], struct tdc_error *e) TDC_MUST_USE;
/* True if cert's SPKI SHA-256 equals one of the n pins (constant-time compares). */
bool tdc_spki_pin_match(X509 *cert, const uint8_t (*pins)[32], size_t n);
