/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The verifier object (trust anchor, options, cache) and the orchestration
 * of one verification in Intel QvE/QVL order: collateral first, then the
 * quote; every step must pass, statuses are combined at the end.
 */
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "verify/verify_int.h"

int tdc_verifier_new(const struct tdc_verifier_opts *opts, struct tdc_verifier **out,
		     struct tdc_error *e)
{
	if (!out)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_verifier_new: out is NULL");
	*out = NULL;
	struct tdc_verifier *v = calloc(1, sizeof(*v));
	if (!v)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");

	const uint8_t *der = tdc_intel_root_ca_der;
	size_t der_len = tdc_intel_root_ca_der_len;
	if (opts && opts->test_root_der) {
		der = opts->test_root_der;
		der_len = opts->test_root_der_len;
		v->test_root = true;
	}
	v->min_tcb_eval_num = opts ? opts->min_tcb_eval_num : 0;

	int rc = vfy_cache_init(&v->cache, e);
	if (rc < 0) {
		free(v);
		return rc;
	}
	v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!v->sha256) {
		rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-256 unavailable");
		goto fail;
	}
	rc = tdc_x509_from_der(der, der_len, &v->root, e);
	if (rc == 0)
		rc = tdc_x509_window(v->root, &v->root_not_before, &v->root_not_after, e);
	if (rc < 0)
		goto fail;
	*out = v;
	return 0;
fail:
	tdc_verifier_free(v);
	return rc;
}

void tdc_verifier_free(struct tdc_verifier *v)
{
	if (!v)
		return;
	vfy_cache_fini(&v->cache);
	X509_free(v->root);
	EVP_MD_free(v->sha256);
	free(v);
}

bool tdc_verifier_is_test_root(const struct tdc_verifier *v)
{
	return v && v->test_root;
}

void tdc_verifier_stats(const struct tdc_verifier *v, struct tdc_verifier_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!v)
		return;
	out->collateral_hits = atomic_load_explicit(&v->collateral_hits, memory_order_relaxed);
	out->collateral_misses = atomic_load_explicit(&v->collateral_misses, memory_order_relaxed);
	out->pck_hits = atomic_load_explicit(&v->pck_hits, memory_order_relaxed);
	out->pck_misses = atomic_load_explicit(&v->pck_misses, memory_order_relaxed);
	out->qe_report_hits = atomic_load_explicit(&v->qe_report_hits, memory_order_relaxed);
	out->qe_report_misses = atomic_load_explicit(&v->qe_report_misses, memory_order_relaxed);
}

/* Everything one verification holds from the cache. */
struct run {
	struct vfy_crl_ent *root_crl;
	struct vfy_tcb_ent *tcb;
	struct vfy_qe_ent *qe;
	struct vfy_pck_ent *pck;
};

static void run_release(struct tdc_verifier *v, struct run *r)
{
	if (r->root_crl)
		vfy_cache_release(&v->cache, &r->root_crl->base);
	if (r->tcb)
		vfy_cache_release(&v->cache, &r->tcb->base);
	if (r->qe)
		vfy_cache_release(&v->cache, &r->qe->base);
	if (r->pck)
		vfy_cache_release(&v->cache, &r->pck->base);
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int merge_advisories(const struct vfy_match *m, struct tdc_advisories *out,
			    struct tdc_error *e)
{
	TDC_GUARD(tdc_advisories_merge(out, &m->tdx_level->advisories, e));
	TDC_GUARD(tdc_advisories_merge(out, &m->qe_level->advisories, e));
	if (m->module_level)
		TDC_GUARD(tdc_advisories_merge(out, &m->module_level->advisories, e));
	return 0;
}

static int verify(struct tdc_verifier *v, const uint8_t *quote, size_t len,
		  const struct tdc_collateral *c, int64_t now, struct tdc_verdict *out,
		  struct run *r, struct tdc_error *e)
{
	struct tdc_quote q;
	struct vfy_match m = { 0 };

	/* Step 1: structure. Claims are reported from here on, verified or not. */
	TDC_GUARD(tdc_quote_parse(quote, len, &q, e));
	out->quote_version = q.version;
	out->body_type = q.body_type;
	out->td = q.td;
	out->qe_isvsvn = q.qe_report.isv_svn;

	/* Step 0: the anchor itself must be current. */
	struct vfy_windows anchor = { 0 };
	vfy_windows_add(&anchor, v->test_root ? "test root CA certificate" : "Intel SGX Root CA",
			v->root_not_before, v->root_not_after);
	TDC_GUARD(vfy_windows_check(&anchor, now, e));

	/* Steps 2, 5, 6: root CRL, TCB info, QE identity. */
	TDC_GUARD(vfy_root_crl(v, &c->root_ca_crl, now, &r->root_crl, e));
	TDC_GUARD(vfy_tcb_info(v, c, r->root_crl, now, &r->tcb, e));
	const struct tdc_tcb_info *ti = &r->tcb->info;
	memcpy(out->fmspc, ti->fmspc, 6);
	memcpy(out->pce_id, ti->pce_id, 2);
	out->tcb_eval_num = ti->tcb_eval_num;
	TDC_GUARD(vfy_qe_identity(v, c, r->root_crl, now, &r->qe, e));

	/* Steps 2-4: PCK chain, PCK CRL, SGX extension; then 4.1.2.4.10. */
	TDC_GUARD(vfy_pck_chain(v, &q, r->root_crl, &c->pck_crl, now, &r->pck, e));
	memcpy(out->fmspc, r->pck->ext.fmspc, 6);
	memcpy(out->pce_id, r->pck->ext.pce_id, 2);
	TDC_GUARD(vfy_pck_matches_tcb_info(&r->pck->ext, ti, e));
	out->collateral_not_after = min64(
		min64(vfy_windows_not_after(&r->root_crl->win),
		      vfy_windows_not_after(&r->tcb->win)),
		min64(vfy_windows_not_after(&r->qe->win), vfy_windows_not_after(&r->pck->win)));
	out->collateral_not_after = min64(out->collateral_not_after, v->root_not_after);

	/* Step 11 (identity part), then the quote's own cryptography: 7, 8, 9 (the QE
	 * report, cached by content), 10 (the quote signature, every time). */
	TDC_GUARD(vfy_match_module_identity(ti, &q, &m, e));
	TDC_GUARD(vfy_qe_report(v, &q, r->pck, r->qe, now, &m, e));
	out->qe_status = m.qe_level->status;
	TDC_GUARD(vfy_quote_signature(v, &q, e));

	/* Steps 12, 11 (module level), 13. */
	TDC_GUARD(vfy_match_platform(ti, &r->pck->ext, &q, &m, e));
	out->platform_status = m.tdx_level->status;
	out->tcb_date = m.tdx_level->tcb_date;
	out->module_status = m.module_level ? m.module_level->status : TDC_TCB_UNKNOWN;
	TDC_GUARD(merge_advisories(&m, &out->advisories, e));
	TDC_GUARD(vfy_combine(ti, &q, &m, &out->status, e));
	if (out->status == TDC_TCB_REVOKED)
		return TDC_FAILF(e, TDC_E_REVOKED, "TCB level revoked",
				 "platform %s, QE %s, module %s",
				 tdc_tcb_status_name(out->platform_status),
				 tdc_tcb_status_name(out->qe_status),
				 tdc_tcb_status_name(out->module_status));
	return 0;
}

int tdc_verify_quote(struct tdc_verifier *v, const uint8_t *quote, size_t len,
		     const struct tdc_collateral *c, int64_t now, struct tdc_verdict *out,
		     struct tdc_error *e)
{
	if (!out)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_verify_quote: out is NULL");
	memset(out, 0, sizeof(*out));
	out->status = TDC_TCB_UNKNOWN;
	if (!v || !quote || !c)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_verify_quote: NULL argument");

	struct run r = { 0 };
	int rc = verify(v, quote, len, c, now, out, &r, e);
	run_release(v, &r);
	if (rc < 0 && out->status != TDC_TCB_REVOKED)
		out->status = TDC_TCB_UNKNOWN;
	return rc;
}
