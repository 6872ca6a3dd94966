/* SPDX-License-Identifier: Apache-2.0 */
/* Internals shared by the lib/sim files. */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tdcrypt/sim.h"
#include "util/wr.h"

struct tdc_sim_pki {
	EVP_PKEY *root_key, *pck_ca_key, *tcb_key, *pck_key, *att_key;
	X509 *root, *pck_ca, *tcb_signer, *pck;
	uint8_t *root_der;
	size_t root_der_len;
	uint8_t att_pub[64]; /* x || y */
};

int tdc_sim_new_key(EVP_PKEY **out, struct tdc_error *e) TDC_MUST_USE;
/* ECDSA-P256-SHA256 over msg, as raw r || s. */
int tdc_sim_sign_raw(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t sig[64],
		     struct tdc_error *e) TDC_MUST_USE;
/* Raw x || y of a P-256 key. */
int tdc_sim_pub_raw(EVP_PKEY *key, uint8_t xy[64], struct tdc_error *e) TDC_MUST_USE;
/* Appends the PEM of cert. */
int tdc_sim_wr_pem(struct tdc_wr *w, X509 *cert, struct tdc_error *e) TDC_MUST_USE;
/* Builds a CRL (DER, malloc'd): issuer name and AKI from issuer, signed by key. */
int tdc_sim_crl(X509 *issuer, EVP_PKEY *key, const struct tdc_sim_window *win,
		const ASN1_INTEGER *const *serials, size_t n, uint8_t **der, size_t *len,
		struct tdc_error *e) TDC_MUST_USE;
/* Writes dir/name (replacing it, never through a symlink) with exactly mode. */
int tdc_sim_write_file(const char *dir, const char *name, const void *data, size_t n,
		       unsigned mode, struct tdc_error *e) TDC_MUST_USE;
