/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Collateral verification (steps 2, 5, 6): the root CA CRL, and TCB info /
 * QE identity signed by the Intel SGX TCB Signing certificate. Verified and
 * parsed results are cached by content; issue/next-update dates, CRL and
 * certificate windows, and the evaluation-number floor are checked on every
 * call.
 */
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "verify/verify_int.h"

int vfy_is_root(const struct tdc_verifier *v, X509 *cert, const char *what, struct tdc_error *e)
{
	if (X509_cmp(cert, v->root) != 0)
		return TDC_FAILF(e, TDC_E_CHAIN, "root certificate is not the trust anchor",
				 "%s: last certificate differs from the pinned %s root", what,
				 v->test_root ? "test" : "Intel SGX");
	return 0;
}

/* ---- CRLs ---- */

static void crl_ent_destroy(struct vfy_entry *ent)
{
	struct vfy_crl_ent *c = (struct vfy_crl_ent *)ent;
	X509_CRL_free(c->crl);
	vfy_entry_fini(&c->base);
	free(c);
}

static int crl_build(const struct tdc_buf *der, const struct vfy_key *key, const char *what,
		     struct vfy_crl_ent **out, struct tdc_error *e)
{
	struct vfy_crl_ent *c = calloc(1, sizeof(*c));
	if (!c)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	int64_t this_update, next_update;
	int rc = vfy_entry_init(&c->base, key, crl_ent_destroy, e);
	if (rc == 0)
		rc = tdc_crl_from_der(der->data, der->len, &c->crl, e);
	if (rc == 0)
		rc = tdc_crl_window(c->crl, &this_update, &next_update, e);
	if (rc < 0) {
		crl_ent_destroy(&c->base);
		return rc;
	}
	vfy_windows_add(&c->win, what, this_update, next_update);
	*out = c;
	return 0;
}

int vfy_root_crl(struct tdc_verifier *v, const struct tdc_buf *der, int64_t now,
		 struct vfy_crl_ent **out, struct tdc_error *e)
{
	struct vfy_key key;
	struct vfy_crl_ent *c = NULL;

	*out = NULL;
	if (!der->data || der->len == 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "collateral has no root CA CRL");
	const struct vfy_part parts[] = { { der->data, der->len } };
	vfy_key_init(&key, parts, 1);

	struct vfy_entry *hit = vfy_cache_get(&v->cache, VFY_ROOT_CRL, &key);
	if (hit) {
		atomic_fetch_add_explicit(&v->collateral_hits, 1, memory_order_relaxed);
		c = (struct vfy_crl_ent *)hit;
	} else {
		atomic_fetch_add_explicit(&v->collateral_misses, 1, memory_order_relaxed);
		TDC_GUARD(crl_build(der, &key, "root CA CRL", &c, e));
		/* Signed by the trust anchor, issuer = root; its window is re-checked below. */
		int rc = tdc_crl_check(c->crl, v->root, now, "root CA CRL", e);
		if (rc < 0) {
			crl_ent_destroy(&c->base);
			return rc;
		}
		c = (struct vfy_crl_ent *)vfy_cache_put(&v->cache, VFY_ROOT_CRL, &c->base);
	}
	int rc = vfy_windows_check(&c->win, now, e);
	if (rc < 0) {
		vfy_cache_release(&v->cache, &c->base);
		return rc;
	}
	*out = c;
	return 0;
}

int vfy_pck_crl(struct tdc_verifier *v, const struct tdc_buf *der, struct vfy_crl_ent **out,
		struct tdc_error *e)
{
	struct vfy_key key;
	struct vfy_crl_ent *c = NULL;

	*out = NULL;
	const struct vfy_part parts[] = { { der->data, der->len } };
	vfy_key_init(&key, parts, 1);
	struct vfy_entry *hit = vfy_cache_get(&v->cache, VFY_PCK_CRL, &key);
	if (hit) {
		atomic_fetch_add_explicit(&v->collateral_hits, 1, memory_order_relaxed);
		*out = (struct vfy_crl_ent *)hit;
		return 0;
	}
	atomic_fetch_add_explicit(&v->collateral_misses, 1, memory_order_relaxed);
	TDC_GUARD(crl_build(der, &key, "PCK CRL", &c, e));
	*out = (struct vfy_crl_ent *)vfy_cache_put(&v->cache, VFY_PCK_CRL, &c->base);
	return 0;
}

/* ---- TCB Signing chain ---- */

int vfy_signing_chain(struct tdc_verifier *v, const struct tdc_buf *pem,
		      const struct vfy_crl_ent *root_crl, int64_t now, const char *what,
		      EVP_PKEY **key, struct vfy_windows *win, struct tdc_error *e)
{
	STACK_OF(X509) *chain = NULL;
	X509_REVOKED *revoked = NULL;
	int64_t nb, na, rnb, rna;

	*key = NULL;
	if (!pem->data || pem->len == 0)
		return TDC_FAILF(e, TDC_E_FORMAT, "collateral has no issuer chain", "%s", what);
	/* PCS serves exactly the TCB Signing certificate and the root. */
	int rc = tdc_pem_chain_parse(pem->data, pem->len, 2, &chain, e);
	if (rc < 0)
		return rc;
	X509 *signer = sk_X509_value(chain, 0), *root = sk_X509_value(chain, 1);

	if (!tdc_x509_cn_contains(signer, "Intel SGX TCB Signing")) {
		rc = TDC_FAILF(e, TDC_E_CHAIN,
			       "issuer chain does not start with a TCB Signing certificate",
			       "%s: subject CN lacks \"Intel SGX TCB Signing\"", what);
		goto out;
	}
	rc = vfy_is_root(v, root, what, e);
	if (rc < 0)
		goto out;
	X509_CRL *crls[1] = { root_crl->crl };
	rc = tdc_chain_verify(v->root, chain, crls, 1, now, what, e);
	if (rc < 0)
		goto out;
	/* tdc_chain_verify checks revocation too; say it again explicitly (Intel 4.1.2.4.8). */
	if (X509_CRL_get0_by_cert(root_crl->crl, &revoked, signer) == 1) {
		rc = TDC_FAILF(e, TDC_E_REVOKED, "TCB Signing certificate is revoked",
			       "%s: serial on the root CA CRL", what);
		goto out;
	}
	rc = tdc_x509_window(signer, &nb, &na, e);
	if (rc == 0)
		rc = tdc_x509_window(root, &rnb, &rna, e);
	if (rc == 0)
		rc = tdc_x509_p256_key(signer, key, e);
	if (rc < 0)
		goto out;
	vfy_windows_add(win, "TCB Signing certificate", nb, na);
	vfy_windows_add(win, "root CA certificate", rnb, rna);
out:
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

/* ---- TCB info ---- */

static void tcb_ent_destroy(struct vfy_entry *ent)
{
	struct vfy_tcb_ent *t = (struct vfy_tcb_ent *)ent;
	tdc_tcb_info_free(&t->info);
	vfy_entry_fini(&t->base);
	free(t);
}

static int check_eval(const struct tdc_verifier *v, uint32_t n, const char *what,
		      struct tdc_error *e)
{
	if (n < v->min_tcb_eval_num)
		return TDC_FAILF(e, TDC_E_STALE, "collateral older than the configured minimum",
				 "%s tcbEvaluationDataNumber %u < minimum %u", what, n,
				 v->min_tcb_eval_num);
	return 0;
}

static int tcb_build(struct tdc_verifier *v, const struct tdc_collateral *c,
		     const struct vfy_crl_ent *root_crl, const struct vfy_key *key, int64_t now,
		     struct vfy_tcb_ent **out, struct tdc_error *e)
{
	EVP_PKEY *pub = NULL;
	struct vfy_tcb_ent *t = calloc(1, sizeof(*t));
	if (!t)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	int rc = vfy_entry_init(&t->base, key, tcb_ent_destroy, e);
	if (rc == 0)
		rc = vfy_signing_chain(v, &c->tcb_info_chain, root_crl, now,
				       "TCB info issuer chain", &pub, &t->win, e);
	if (rc == 0)
		rc = tdc_ecdsa_p256_verify(pub, c->tcb_info.data, c->tcb_info.len, c->tcb_info_sig,
					   "TCB info signature", e);
	EVP_PKEY_free(pub);
	if (rc == 0)
		rc = tdc_tcb_info_parse(c->tcb_info.data, c->tcb_info.len, &t->info, e);
	if (rc < 0)
		goto fail;
	if (strcmp(t->info.id, "TDX") != 0 || t->info.version != 3) {
		rc = TDC_FAILF(e, TDC_E_COLLATERAL_MISMATCH, "TCB info is not TDX TCB info v3",
			       "id \"%s\" version %u", t->info.id, t->info.version);
		goto fail;
	}
	if (t->info.tcb_type != 0) {
		rc = TDC_FAILF(e, TDC_E_UNSUPPORTED, "unsupported TCB info tcbType", "tcbType %u",
			       t->info.tcb_type);
		goto fail;
	}
	vfy_windows_add(&t->win, "TCB info", t->info.issue_date, t->info.next_update);
	*out = t;
	return 0;
fail:
	tcb_ent_destroy(&t->base);
	return rc;
}

int vfy_tcb_info(struct tdc_verifier *v, const struct tdc_collateral *c,
		 const struct vfy_crl_ent *root_crl, int64_t now, struct vfy_tcb_ent **out,
		 struct tdc_error *e)
{
	struct vfy_key key;
	struct vfy_tcb_ent *t = NULL;

	*out = NULL;
	if (!c->tcb_info.data || c->tcb_info.len == 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "collateral has no TCB info");
	const struct vfy_part parts[] = {
		{ c->tcb_info.data, c->tcb_info.len },
		{ c->tcb_info_sig, 64 },
		{ c->tcb_info_chain.data, c->tcb_info_chain.len },
		vfy_entry_part(&root_crl->base),
	};
	vfy_key_init(&key, parts, 4);
	struct vfy_entry *hit = vfy_cache_get(&v->cache, VFY_TCB_INFO, &key);
	if (hit) {
		atomic_fetch_add_explicit(&v->collateral_hits, 1, memory_order_relaxed);
		t = (struct vfy_tcb_ent *)hit;
	} else {
		atomic_fetch_add_explicit(&v->collateral_misses, 1, memory_order_relaxed);
		TDC_GUARD(tcb_build(v, c, root_crl, &key, now, &t, e));
		/* The entry holds no time verdict (only windows), so it may be cached even
		 * when now turns out to be outside the TCB info window. */
		t = (struct vfy_tcb_ent *)vfy_cache_put(&v->cache, VFY_TCB_INFO, &t->base);
	}
	int rc = vfy_windows_check(&t->win, now, e);
	if (rc == 0)
		rc = check_eval(v, t->info.tcb_eval_num, "TCB info", e);
	if (rc < 0) {
		vfy_cache_release(&v->cache, &t->base);
		return rc;
	}
	*out = t;
	return 0;
}

/* ---- QE identity ---- */

static void qe_ent_destroy(struct vfy_entry *ent)
{
	struct vfy_qe_ent *q = (struct vfy_qe_ent *)ent;
	tdc_qe_identity_free(&q->id);
	vfy_entry_fini(&q->base);
	free(q);
}

static int qe_build(struct tdc_verifier *v, const struct tdc_collateral *c,
		    const struct vfy_crl_ent *root_crl, const struct vfy_key *key, int64_t now,
		    struct vfy_qe_ent **out, struct tdc_error *e)
{
	EVP_PKEY *pub = NULL;
	struct vfy_qe_ent *q = calloc(1, sizeof(*q));
	if (!q)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	int rc = vfy_entry_init(&q->base, key, qe_ent_destroy, e);
	if (rc == 0)
		rc = vfy_signing_chain(v, &c->qe_identity_chain, root_crl, now,
				       "QE identity issuer chain", &pub, &q->win, e);
	if (rc == 0)
		rc = tdc_ecdsa_p256_verify(pub, c->qe_identity.data, c->qe_identity.len,
					   c->qe_identity_sig, "QE identity signature", e);
	EVP_PKEY_free(pub);
	if (rc == 0)
		rc = tdc_qe_identity_parse(c->qe_identity.data, c->qe_identity.len, &q->id, e);
	if (rc < 0)
		goto fail;
	if (strcmp(q->id.id, "TD_QE") != 0 || q->id.version != 2) {
		rc = TDC_FAILF(e, TDC_E_COLLATERAL_MISMATCH, "QE identity is not TD_QE identity v2",
			       "id \"%s\" version %u", q->id.id, q->id.version);
		goto fail;
	}
	vfy_windows_add(&q->win, "QE identity", q->id.issue_date, q->id.next_update);
	*out = q;
	return 0;
fail:
	qe_ent_destroy(&q->base);
	return rc;
}

int vfy_qe_identity(struct tdc_verifier *v, const struct tdc_collateral *c,
		    const struct vfy_crl_ent *root_crl, int64_t now, struct vfy_qe_ent **out,
		    struct tdc_error *e)
{
	struct vfy_key key;
	struct vfy_qe_ent *q = NULL;

	*out = NULL;
	if (!c->qe_identity.data || c->qe_identity.len == 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "collateral has no QE identity");
	const struct vfy_part parts[] = {
		{ c->qe_identity.data, c->qe_identity.len },
		{ c->qe_identity_sig, 64 },
		{ c->qe_identity_chain.data, c->qe_identity_chain.len },
		vfy_entry_part(&root_crl->base),
	};
	vfy_key_init(&key, parts, 4);
	struct vfy_entry *hit = vfy_cache_get(&v->cache, VFY_QE_IDENTITY, &key);
	if (hit) {
		atomic_fetch_add_explicit(&v->collateral_hits, 1, memory_order_relaxed);
		q = (struct vfy_qe_ent *)hit;
	} else {
		atomic_fetch_add_explicit(&v->collateral_misses, 1, memory_order_relaxed);
		TDC_GUARD(qe_build(v, c, root_crl, &key, now, &q, e));
		q = (struct vfy_qe_ent *)vfy_cache_put(&v->cache, VFY_QE_IDENTITY, &q->base);
	}
	int rc = vfy_windows_check(&q->win, now, e);
	if (rc == 0)
		rc = check_eval(v, q->id.tcb_eval_num, "QE identity", e);
	if (rc < 0) {
		vfy_cache_release(&v->cache, &q->base);
		return rc;
	}
	*out = q;
	return 0;
}
