/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Step 4, the QE report: signed by the PCK leaf's key, its report data binding
 * the attestation key and the QE auth data, matched against the QE identity.
 * All of it is byte-identical in every quote of one platform's QE, so the
 * verdict is cached by exactly the bytes it depends on; the windows
 * of the QE identity and of the PCK certificate it relied on are re-checked at
 * the verification time on every call, hit or miss.
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

static void qe_report_ent_destroy(struct vfy_entry *ent)
{
	vfy_entry_fini(ent);
	free(ent);
}

/* The checks themselves, in Intel's order; on success a new entry (refs = 1). */
static int qe_report_build(struct tdc_verifier *v, const struct tdc_quote *q,
			   const struct vfy_pck_ent *pck, const struct vfy_qe_ent *qe,
			   const struct vfy_key *key, struct vfy_qe_report_ent **out,
			   struct tdc_error *e)
{
	struct vfy_match m = { 0 };
	TDC_GUARD(vfy_qe_report_signature(pck->leaf_key, q, e));
	TDC_GUARD(vfy_qe_binding(v, q, e));
	TDC_GUARD(vfy_match_qe(&qe->id, &q->qe_report, &m, e));

	struct vfy_qe_report_ent *r = calloc(1, sizeof(*r));
	if (!r)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	int rc = vfy_entry_init(&r->base, key, qe_report_ent_destroy, e);
	if (rc < 0) {
		qe_report_ent_destroy(&r->base);
		return rc;
	}
	r->qe_level = (size_t)(m.qe_level - qe->id.levels);
	vfy_windows_merge(&r->win, &qe->win);
	vfy_windows_add(&r->win, "PCK certificate", pck->leaf_not_before, pck->leaf_not_after);
	*out = r;
	return 0;
}

int vfy_qe_report(struct tdc_verifier *v, const struct tdc_quote *q,
		  const struct vfy_pck_ent *pck, const struct vfy_qe_ent *qe, int64_t now,
		  struct vfy_match *m, struct tdc_error *e)
{
	struct vfy_key key;
	struct vfy_qe_report_ent *r = NULL;
	const struct vfy_part parts[] = {
		{ tdc_rd_ptr(&q->qe_report_bytes), tdc_rd_len(&q->qe_report_bytes) },
		{ q->qe_report_signature, sizeof(q->qe_report_signature) },
		{ q->attestation_key, sizeof(q->attestation_key) },
		{ tdc_rd_ptr(&q->qe_auth_data), tdc_rd_len(&q->qe_auth_data) },
		{ pck->leaf_sha256, sizeof(pck->leaf_sha256) },
		vfy_entry_part(&qe->base),
	};
	vfy_key_init(&key, parts, sizeof(parts) / sizeof(parts[0]));

	struct vfy_entry *hit = vfy_cache_get(&v->cache, VFY_QE_REPORT, &key);
	if (hit) {
		atomic_fetch_add_explicit(&v->qe_report_hits, 1, memory_order_relaxed);
		r = (struct vfy_qe_report_ent *)hit;
	} else {
		atomic_fetch_add_explicit(&v->qe_report_misses, 1, memory_order_relaxed);
		TDC_GUARD(qe_report_build(v, q, pck, qe, &key, &r, e));
		r = (struct vfy_qe_report_ent *)vfy_cache_put(&v->cache, VFY_QE_REPORT, &r->base);
	}
	int rc = vfy_windows_check(&r->win, now, e);
	if (rc == 0 && r->qe_level >= qe->id.n_levels)
		rc = TDC_FAIL(e, TDC_E_INTERNAL, "cached QE level outside the QE identity");
	if (rc == 0)
		m->qe_level = &qe->id.levels[r->qe_level];
	/* only the index is kept: the QE identity entry it points into is the caller's */
	vfy_cache_release(&v->cache, &r->base);
	return rc;
}
