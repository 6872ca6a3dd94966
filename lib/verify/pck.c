/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PCK certificate chain carried in the quote (steps 2-4): exactly leaf,
 * PCK Platform/Processor CA, pinned root; the PCK CRL must come from the
 * leaf's issuer; chain, CRLs and revocation at now; the SGX extension.
 * Cached by (PEM chain, PCK CRL, root CA CRL) with the windows it relied on.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "util/util.h"
#include "verify/verify_int.h"

static void pck_ent_destroy(struct vfy_entry *ent)
{
	struct vfy_pck_ent *p = (struct vfy_pck_ent *)ent;
	EVP_PKEY_free(p->leaf_key);
	vfy_entry_fini(&p->base);
	free(p);
}

/* Raw DER equality of two names (Intel compares the raw issuer bytes, 4.1.2.4.6). */
static bool same_name_der(const X509_NAME *a, const X509_NAME *b)
{
	const unsigned char *da = NULL, *db = NULL;
	size_t la = 0, lb = 0;
	if (!X509_NAME_get0_der((X509_NAME *)a, &da, &la) ||
	    !X509_NAME_get0_der((X509_NAME *)b, &db, &lb))
		return false;
	return la == lb && memcmp(da, db, la) == 0;
}

static bool name_cn_contains(const X509_NAME *name, const char *needle)
{
	int idx = X509_NAME_get_index_by_NID((X509_NAME *)name, NID_commonName, -1);
	if (idx < 0)
		return false;
	const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	unsigned char *utf8 = NULL;
	int n = ASN1_STRING_to_UTF8(&utf8, s);
	if (n < 0)
		return false;
	bool found =
		strstr((const char *)utf8, needle) != NULL && (size_t)n == strlen((char *)utf8);
	OPENSSL_free(utf8);
	return found;
}

/* PCK CRL against the quote's chain: issuer, signature, window at now. */
static int check_pck_crl(X509_CRL *crl, X509 *leaf, X509 *ca, int64_t now, struct tdc_error *e)
{
	const X509_NAME *crl_issuer = X509_CRL_get_issuer(crl);
	if (!name_cn_contains(crl_issuer, "CA"))
		return TDC_FAIL(e, TDC_E_CRL, "PCK CRL issuer is not a CA");
	if (!same_name_der(crl_issuer, X509_get_issuer_name(leaf)))
		return TDC_FAIL(e, TDC_E_CRL,
				"PCK CRL issuer differs from the PCK certificate's issuer "
				"(Platform vs Processor CA CRL?)");
	return tdc_crl_check(crl, ca, now, "PCK CRL", e);
}

static int pck_build(struct tdc_verifier *v, const struct tdc_quote *q,
		     const struct vfy_crl_ent *root_crl, const struct vfy_crl_ent *pck_crl,
		     const struct vfy_key *key, int64_t now, struct vfy_pck_ent **out,
		     struct tdc_error *e)
{
	STACK_OF(X509) *chain = NULL;
	X509_REVOKED *revoked = NULL;
	struct vfy_pck_ent *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	rc = vfy_entry_init(&p->base, key, pck_ent_destroy, e);
	if (rc < 0)
		goto out;
	if (q->cert_type != TDC_CERT_TYPE_PCK_CHAIN) {
		rc = TDC_FAILF(e, TDC_E_UNSUPPORTED, "quote carries no PCK certificate chain",
			       "certification data type %u", q->cert_type);
		goto out;
	}
	rc = tdc_pem_chain_parse(tdc_rd_ptr(&q->cert_data), tdc_rd_len(&q->cert_data), 3, &chain,
				 e);
	if (rc < 0)
		goto out;
	X509 *leaf = sk_X509_value(chain, 0), *ca = sk_X509_value(chain, 1);
	X509 *root = sk_X509_value(chain, 2);

	if (!tdc_x509_cn_contains(leaf, "SGX PCK Certificate")) {
		rc = TDC_FAIL(e, TDC_E_CHAIN, "PCK leaf CN lacks \"SGX PCK Certificate\"");
		goto out;
	}
	if (tdc_x509_cn_contains(ca, "Intel SGX PCK Processor CA")) {
		p->processor_ca = true;
	} else if (!tdc_x509_cn_contains(ca, "Intel SGX PCK Platform CA")) {
		rc = TDC_FAIL(e, TDC_E_CHAIN, "PCK intermediate is neither the Platform nor the "
					      "Processor CA");
		goto out;
	}
	rc = vfy_is_root(v, root, "PCK chain", e);
	if (rc < 0)
		goto out;
	rc = check_pck_crl(pck_crl->crl, leaf, ca, now, e);
	if (rc < 0)
		goto out;
	X509_CRL *crls[2] = { root_crl->crl, pck_crl->crl };
	rc = tdc_chain_verify(v->root, chain, crls, 2, now, "PCK chain", e);
	if (rc < 0)
		goto out;
	/* Revocation is part of the chain check; state it explicitly as Intel does (4.1.2.4.7). */
	if (X509_CRL_get0_by_cert(pck_crl->crl, &revoked, leaf) == 1) {
		rc = TDC_FAIL(e, TDC_E_REVOKED, "PCK certificate is on the PCK CRL");
		goto out;
	}
	if (X509_CRL_get0_by_cert(root_crl->crl, &revoked, ca) == 1) {
		rc = TDC_FAIL(e, TDC_E_REVOKED, "PCK CA certificate is on the root CA CRL");
		goto out;
	}
	rc = tdc_pck_ext_parse(leaf, &p->ext, e);
	if (rc < 0)
		goto out;
	rc = tdc_x509_p256_key(leaf, &p->leaf_key, e);
	if (rc < 0)
		goto out;
	unsigned int dlen = 0;
	if (X509_digest(leaf, v->sha256, p->leaf_sha256, &dlen) != 1 || dlen != 32) {
		rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "PCK certificate digest failed");
		goto out;
	}

	static const char *const names[3] = { "PCK certificate", "PCK CA certificate",
					      "root CA certificate" };
	for (int i = 0; i < 3; i++) {
		int64_t nb, na;
		rc = tdc_x509_window(sk_X509_value(chain, i), &nb, &na, e);
		if (rc < 0)
			goto out;
		vfy_windows_add(&p->win, names[i], nb, na);
		if (i == 0) {
			p->leaf_not_before = nb;
			p->leaf_not_after = na;
		}
	}
	vfy_windows_merge(&p->win, &pck_crl->win);
out:
	sk_X509_pop_free(chain, X509_free);
	if (rc < 0) {
		pck_ent_destroy(&p->base);
		return rc;
	}
	*out = p;
	return 0;
}

int vfy_pck_chain(struct tdc_verifier *v, const struct tdc_quote *q,
		  const struct vfy_crl_ent *root_crl, const struct tdc_buf *pck_crl_der,
		  int64_t now, struct vfy_pck_ent **out, struct tdc_error *e)
{
	struct vfy_key key;
	struct vfy_pck_ent *p = NULL;

	*out = NULL;
	if (!pck_crl_der->data || pck_crl_der->len == 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "collateral has no PCK CRL");
	const struct vfy_part parts[] = {
		{ tdc_rd_ptr(&q->cert_data), tdc_rd_len(&q->cert_data) },
		{ pck_crl_der->data, pck_crl_der->len },
		vfy_entry_part(&root_crl->base),
	};
	vfy_key_init(&key, parts, 3);

	struct vfy_entry *hit = vfy_cache_get(&v->cache, VFY_PCK, &key);
	if (hit) {
		atomic_fetch_add_explicit(&v->pck_hits, 1, memory_order_relaxed);
		p = (struct vfy_pck_ent *)hit;
	} else {
		struct vfy_crl_ent *crl = NULL;
		atomic_fetch_add_explicit(&v->pck_misses, 1, memory_order_relaxed);
		TDC_GUARD(vfy_pck_crl(v, pck_crl_der, &crl, e));
		int rc = pck_build(v, q, root_crl, crl, &key, now, &p, e);
		vfy_cache_release(&v->cache, &crl->base);
		if (rc < 0)
			return rc;
		p = (struct vfy_pck_ent *)vfy_cache_put(&v->cache, VFY_PCK, &p->base);
	}
	int rc = vfy_windows_check(&p->win, now, e);
	if (rc < 0) {
		vfy_cache_release(&v->cache, &p->base);
		return rc;
	}
	*out = p;
	return 0;
}

int vfy_pck_matches_tcb_info(const struct tdc_pck_ext *ext, const struct tdc_tcb_info *ti,
			     struct tdc_error *e)
{
	char a[13], b[13];
	if (memcmp(ext->fmspc, ti->fmspc, 6) != 0)
		return TDC_FAILF(e, TDC_E_COLLATERAL_MISMATCH, "TCB info is for another FMSPC",
				 "PCK FMSPC %s, TCB info FMSPC %s",
				 tdc_hex_encode(ext->fmspc, 6, a), tdc_hex_encode(ti->fmspc, 6, b));
	if (memcmp(ext->pce_id, ti->pce_id, 2) != 0)
		return TDC_FAILF(e, TDC_E_COLLATERAL_MISMATCH, "TCB info is for another PCE-ID",
				 "PCK PCE-ID %s, TCB info PCE-ID %s",
				 tdc_hex_encode(ext->pce_id, 2, a),
				 tdc_hex_encode(ti->pce_id, 2, b));
	return 0;
}
