/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The quote's own cryptography (steps 7, 8, 10): the QE report signed by
 * the PCK key, the QE report binding the attestation key, and the quote
 * signed by the attestation key. These run on every call; nothing cached.
 */
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "verify/verify_int.h"

/* Offset of report_data inside the SGX REPORTBODY. */
#define QE_REPORT_DATA_OFF 320

int vfy_qe_report_signature(EVP_PKEY *pck_key, const struct tdc_quote *q, struct tdc_error *e)
{
	return tdc_ecdsa_p256_verify(pck_key, tdc_rd_ptr(&q->qe_report_bytes),
				     tdc_rd_len(&q->qe_report_bytes), q->qe_report_signature,
				     "QE report signature", e);
}

int vfy_qe_binding(const struct tdc_verifier *v, const struct tdc_quote *q, struct tdc_error *e)
{
	uint8_t h[32];
	size_t at = q->qe_report_bytes.base + QE_REPORT_DATA_OFF;

	TDC_GUARD(vfy_sha256(v, q->attestation_key, sizeof(q->attestation_key),
			     tdc_rd_ptr(&q->qe_auth_data), tdc_rd_len(&q->qe_auth_data), h, e));
	if (!tdc_ct_equal(h, q->qe_report.report_data, 32))
		return TDC_FAIL_AT(
			e, TDC_E_BINDING, at, "QE report data does not bind the attestation key",
			"report_data[0..32] != SHA-256(attestation key || QE auth data)");
	if (!tdc_all_zero(q->qe_report.report_data + 32, 32))
		return TDC_FAIL_AT(e, TDC_E_BINDING, at + 32, "QE report data has non-zero padding",
				   "report_data[32..64] must be zero");
	return 0;
}

struct vfy_key_ent {
	struct vfy_entry base;
	EVP_PKEY *key;
};

static void key_ent_destroy(struct vfy_entry *ent)
{
	struct vfy_key_ent *k = (struct vfy_key_ent *)ent;
	EVP_PKEY_free(k->key);
	free(k);
}

static int attestation_key(struct tdc_verifier *v, const struct tdc_quote *q,
			   struct vfy_key_ent **out, struct tdc_error *e)
{
	uint8_t id[32];
	TDC_GUARD(vfy_sha256(v, q->attestation_key, sizeof(q->attestation_key), NULL, 0, id, e));
	struct vfy_entry *hit = vfy_cache_get(&v->cache, VFY_ATT_KEY, id);
	if (hit) {
		*out = (struct vfy_key_ent *)hit;
		return 0;
	}
	struct vfy_key_ent *k = calloc(1, sizeof(*k));
	if (!k)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	memcpy(k->base.key, id, 32);
	k->base.refs = 1;
	k->base.destroy = key_ent_destroy;
	int rc = tdc_p256_key_from_raw(q->attestation_key, &k->key, e);
	if (rc < 0) {
		key_ent_destroy(&k->base);
		return rc;
	}
	*out = (struct vfy_key_ent *)vfy_cache_put(&v->cache, VFY_ATT_KEY, &k->base);
	return 0;
}

int vfy_quote_signature(struct tdc_verifier *v, const struct tdc_quote *q, struct tdc_error *e)
{
	struct vfy_key_ent *k = NULL;
	TDC_GUARD(attestation_key(v, q, &k, e));
	if (!k)
		return TDC_FAIL(e, TDC_E_INTERNAL, "attestation key cache returned nothing");
	int rc = tdc_ecdsa_p256_verify(k->key, tdc_rd_ptr(&q->signed_bytes),
				       tdc_rd_len(&q->signed_bytes), q->signature,
				       "quote signature", e);
	vfy_cache_release(&v->cache, &k->base);
	return rc;
}
