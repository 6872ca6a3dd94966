/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Simulated collateral: TCB info v3 and QE identity v2 JSON, compact and in
 * the field order Intel PCS serves, signed (raw r||s) over the exact bytes;
 * issuer chains as PEM; CRLs as DER.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>

#include "sim-int.h"
#include "util/limits.h"
#include "util/util.h"

static void wr_hex(struct tdc_wr *w, const uint8_t *p, size_t n, bool lower)
{
	const char *d = lower ? "0123456789abcdef" : "0123456789ABCDEF";
	tdc_wr_u8(w, '"');
	for (size_t i = 0; i < n; i++) {
		tdc_wr_u8(w, (uint8_t)d[p[i] >> 4]);
		tdc_wr_u8(w, (uint8_t)d[p[i] & 15]);
	}
	tdc_wr_u8(w, '"');
}

static void wr_time(struct tdc_wr *w, int64_t t)
{
	char s[32];
	tdc_wr_fmt(w, "\"%s\"", tdc_time_format(t, s, sizeof(s)));
}

/* "tcbDate":...,"tcbStatus":...[,"advisoryIDs":[...]] */
static void wr_status(struct tdc_wr *w, int64_t date, const char *status,
		      const char *const adv[TDC_SIM_MAX_ADVISORIES])
{
	tdc_wr_str(w, ",\"tcbDate\":");
	wr_time(w, date);
	tdc_wr_fmt(w, ",\"tcbStatus\":\"%s\"", status ? status : "");
	if (!adv[0])
		return;
	tdc_wr_str(w, ",\"advisoryIDs\":[");
	for (size_t i = 0; i < TDC_SIM_MAX_ADVISORIES && adv[i]; i++)
		tdc_wr_fmt(w, "%s\"%s\"", i ? "," : "", adv[i]);
	tdc_wr_u8(w, ']');
}

static void wr_isv_levels(struct tdc_wr *w, const struct tdc_sim_isv_level *l, size_t n)
{
	tdc_wr_str(w, "\"tcbLevels\":[");
	for (size_t i = 0; i < n; i++) {
		tdc_wr_fmt(w, "%s{\"tcb\":{\"isvsvn\":%u}", i ? "," : "", l[i].isvsvn);
		wr_status(w, l[i].tcb_date, l[i].status, l[i].advisories);
		tdc_wr_u8(w, '}');
	}
	tdc_wr_u8(w, ']');
}

static void wr_components(struct tdc_wr *w, const char *name, const uint8_t svn[16])
{
	tdc_wr_fmt(w, "\"%s\":[", name);
	for (int i = 0; i < 16; i++)
		tdc_wr_fmt(w, "%s{\"svn\":%u}", i ? "," : "", svn[i]);
	tdc_wr_u8(w, ']');
}

static void wr_tcb_info(struct tdc_wr *w, const struct tdc_sim_tcb_info *t)
{
	tdc_wr_fmt(w, "{\"id\":\"%s\",\"version\":%u,\"issueDate\":", t->id ? t->id : "",
		   t->version);
	wr_time(w, t->dates.from);
	tdc_wr_str(w, ",\"nextUpdate\":");
	wr_time(w, t->dates.to);
	tdc_wr_str(w, ",\"fmspc\":");
	wr_hex(w, t->fmspc, 6, t->fmspc_lower);
	tdc_wr_str(w, ",\"pceId\":");
	wr_hex(w, t->pce_id, 2, false);
	tdc_wr_fmt(w, ",\"tcbType\":%u,\"tcbEvaluationDataNumber\":%u", t->tcb_type,
		   t->tcb_eval_num);
	if (t->has_tdx_module) {
		tdc_wr_str(w, ",\"tdxModule\":{\"mrsigner\":");
		wr_hex(w, t->module_mrsigner, 48, false);
		tdc_wr_str(w, ",\"attributes\":");
		wr_hex(w, t->module_attributes, 8, false);
		tdc_wr_str(w, ",\"attributesMask\":");
		wr_hex(w, t->module_attributes_mask, 8, false);
		tdc_wr_u8(w, '}');
	}
	if (t->has_module_identities) {
		tdc_wr_str(w, ",\"tdxModuleIdentities\":[");
		for (size_t i = 0; i < t->n_modules && i < TDC_SIM_MAX_MODULES; i++) {
			const struct tdc_sim_module *m = &t->modules[i];
			tdc_wr_fmt(w, "%s{\"id\":\"%s\",\"mrsigner\":", i ? "," : "",
				   m->id ? m->id : "");
			wr_hex(w, m->mrsigner, 48, false);
			tdc_wr_str(w, ",\"attributes\":");
			wr_hex(w, m->attributes, 8, false);
			tdc_wr_str(w, ",\"attributesMask\":");
			wr_hex(w, m->attributes_mask, 8, false);
			tdc_wr_u8(w, ',');
			wr_isv_levels(w, m->levels,
				      m->n_levels < TDC_SIM_MAX_LEVELS ? m->n_levels
								       : TDC_SIM_MAX_LEVELS);
			tdc_wr_u8(w, '}');
		}
		tdc_wr_u8(w, ']');
	}
	tdc_wr_str(w, ",\"tcbLevels\":[");
	for (size_t i = 0; i < t->n_levels && i < TDC_SIM_MAX_LEVELS; i++) {
		const struct tdc_sim_tcb_level *l = &t->levels[i];
		tdc_wr_fmt(w, "%s{\"tcb\":{", i ? "," : "");
		wr_components(w, "sgxtcbcomponents", l->sgx_svn);
		tdc_wr_fmt(w, ",\"pcesvn\":%u,", l->pcesvn);
		wr_components(w, "tdxtcbcomponents", l->tdx_svn);
		tdc_wr_u8(w, '}');
		wr_status(w, l->tcb_date, l->status, l->advisories);
		tdc_wr_u8(w, '}');
	}
	tdc_wr_str(w, "]}");
}

static void wr_qe_identity(struct tdc_wr *w, const struct tdc_sim_qe_identity *q)
{
	tdc_wr_fmt(w, "{\"id\":\"%s\",\"version\":%u,\"issueDate\":", q->id ? q->id : "",
		   q->version);
	wr_time(w, q->dates.from);
	tdc_wr_str(w, ",\"nextUpdate\":");
	wr_time(w, q->dates.to);
	tdc_wr_fmt(w, ",\"tcbEvaluationDataNumber\":%u,\"miscselect\":", q->tcb_eval_num);
	wr_hex(w, q->miscselect, 4, false);
	tdc_wr_str(w, ",\"miscselectMask\":");
	wr_hex(w, q->miscselect_mask, 4, false);
	tdc_wr_str(w, ",\"attributes\":");
	wr_hex(w, q->attributes, 16, false);
	tdc_wr_str(w, ",\"attributesMask\":");
	wr_hex(w, q->attributes_mask, 16, false);
	tdc_wr_str(w, ",\"mrsigner\":");
	wr_hex(w, q->mrsigner, 32, false);
	tdc_wr_fmt(w, ",\"isvprodid\":%u,", q->isvprodid);
	wr_isv_levels(w, q->levels,
		      q->n_levels < TDC_SIM_MAX_LEVELS ? q->n_levels : TDC_SIM_MAX_LEVELS);
	tdc_wr_u8(w, '}');
}

/* Finishes a text build into a tdc_buf, NUL-terminated beyond len. */
static int wr_to_buf(struct tdc_wr *w, struct tdc_buf *b, struct tdc_error *e)
{
	tdc_wr_u8(w, 0);
	TDC_GUARD(tdc_wr_finish(w, &b->data, &b->len, e));
	b->len--;
	return 0;
}

/* Signs the JSON with the TCB signer, or with a fresh key when other_key. */
static int sign_json(const struct tdc_sim_pki *pki, const struct tdc_buf *json, bool other_key,
		     uint8_t sig[64], struct tdc_error *e)
{
	EVP_PKEY *k = pki->tcb_key;
	if (other_key)
		TDC_GUARD(tdc_sim_new_key(&k, e));
	int rc = tdc_sim_sign_raw(k, json->data, json->len, sig, e);
	if (other_key)
		EVP_PKEY_free(k);
	return rc;
}

static int pem_pair(X509 *a, X509 *b, struct tdc_buf *out, struct tdc_error *e)
{
	struct tdc_wr w;
	tdc_wr_init_alloc(&w, TDC_MAX_CHAIN_PEM);
	int rc = tdc_sim_wr_pem(&w, a, e);
	if (rc == 0)
		rc = tdc_sim_wr_pem(&w, b, e);
	if (rc < 0) {
		tdc_wr_free(&w);
		return rc;
	}
	return wr_to_buf(&w, out, e);
}

static ASN1_INTEGER *u64_serial(uint64_t v)
{
	BIGNUM *bn = BN_new();
	ASN1_INTEGER *s = NULL;
	if (bn && BN_set_word(bn, v) == 1)
		s = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	return s;
}

/*
 * One CRL. proper_issuer/proper_key are the legitimate issuer; `who` may swap
 * them. The serials of `revoked` go on the list after the unrelated ones.
 */
static int make_crl(const struct tdc_sim_pki *pki, const struct tdc_sim_opts *o,
		    enum tdc_sim_crl_issuer who, X509 *proper_issuer, EVP_PKEY *proper_key,
		    const struct tdc_sim_window *win, X509 *const *revoked, size_t n_revoked,
		    struct tdc_buf *out, struct tdc_error *e)
{
	const ASN1_INTEGER *serials[TDC_SIM_MAX_REVOKED + 4];
	ASN1_INTEGER *owned[TDC_SIM_MAX_REVOKED];
	size_t n = 0, n_owned = 0;
	EVP_PKEY *forged = NULL;
	X509 *issuer = proper_issuer;
	EVP_PKEY *key = proper_key;
	int rc = 0;

	switch (who) {
	case TDC_SIM_CRL_PROPER:
		break;
	case TDC_SIM_CRL_BY_ROOT:
		issuer = pki->root;
		key = pki->root_key;
		break;
	case TDC_SIM_CRL_BY_PCK_CA:
		issuer = pki->pck_ca;
		key = pki->pck_ca_key;
		break;
	case TDC_SIM_CRL_FORGED:
		TDC_GUARD(tdc_sim_new_key(&forged, e));
		key = forged;
		break;
	default:
		return TDC_FAIL(e, TDC_E_USAGE, "unknown CRL issuer");
	}
	for (size_t i = 0; i < o->n_other_revoked && i < TDC_SIM_MAX_REVOKED; i++) {
		if (!(owned[n_owned] = u64_serial(o->other_revoked[i]))) {
			rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "serial");
			goto out;
		}
		serials[n++] = owned[n_owned++];
	}
	for (size_t i = 0; i < n_revoked; i++)
		serials[n++] = X509_get0_serialNumber(revoked[i]);
	rc = tdc_sim_crl(issuer, key, win, serials, n, &out->data, &out->len, e);
out:
	for (size_t i = 0; i < n_owned; i++)
		ASN1_INTEGER_free(owned[i]);
	EVP_PKEY_free(forged);
	return rc;
}

static void coll_clear(struct tdc_collateral *c)
{
	struct tdc_buf *b[] = { &c->tcb_info,    &c->tcb_info_chain, &c->qe_identity,
				&c->qe_identity_chain, &c->pck_crl, &c->pck_crl_chain,
				&c->root_ca_crl };
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
		free(b[i]->data);
	memset(c, 0, sizeof(*c));
}

int tdc_sim_collateral(const struct tdc_sim_pki *pki, const struct tdc_sim_opts *o,
		       struct tdc_collateral *c, struct tdc_error *e)
{
	struct tdc_wr w;
	int rc;

	memset(c, 0, sizeof(*c));

	tdc_wr_init_alloc(&w, TDC_MAX_COLLATERAL_JSON);
	wr_tcb_info(&w, &o->tcb_info);
	if ((rc = wr_to_buf(&w, &c->tcb_info, e)) < 0 ||
	    (rc = sign_json(pki, &c->tcb_info, o->tcb_info_other_key, c->tcb_info_sig, e)) < 0 ||
	    (rc = pem_pair(pki->tcb_signer, pki->root, &c->tcb_info_chain, e)) < 0)
		goto fail;

	tdc_wr_init_alloc(&w, TDC_MAX_COLLATERAL_JSON);
	wr_qe_identity(&w, &o->qe_identity);
	if ((rc = wr_to_buf(&w, &c->qe_identity, e)) < 0 ||
	    (rc = sign_json(pki, &c->qe_identity, o->qe_identity_other_key, c->qe_identity_sig,
			    e)) < 0 ||
	    (rc = pem_pair(pki->tcb_signer, pki->root, &c->qe_identity_chain, e)) < 0)
		goto fail;

	X509 *pck_rev[1] = { pki->pck };
	X509 *root_rev[2];
	size_t n_root_rev = 0;
	if (o->pck_ca_revoked)
		root_rev[n_root_rev++] = pki->pck_ca;
	if (o->tcb_signer_revoked)
		root_rev[n_root_rev++] = pki->tcb_signer;
	if ((rc = make_crl(pki, o, o->pck_crl_issuer, pki->pck_ca, pki->pck_ca_key,
			   &o->pck_crl_window, pck_rev, o->pck_revoked ? 1 : 0, &c->pck_crl,
			   e)) < 0 ||
	    (rc = pem_pair(pki->pck_ca, pki->root, &c->pck_crl_chain, e)) < 0 ||
	    (rc = make_crl(pki, o, o->root_crl_issuer, pki->root, pki->root_key,
			   &o->root_crl_window, root_rev, n_root_rev, &c->root_ca_crl, e)) < 0)
		goto fail;
	return 0;
fail:
	coll_clear(c);
	return rc;
}

int tdc_sim_pcs_body(const char *key, const struct tdc_buf *inner, const uint8_t sig[64],
		     struct tdc_buf *out, struct tdc_error *e)
{
	struct tdc_wr w;
	char hex[129];

	memset(out, 0, sizeof(*out));
	tdc_wr_init_alloc(&w, TDC_MAX_COLLATERAL_JSON);
	tdc_wr_fmt(&w, "{\"%s\":", key);
	tdc_wr_bytes(&w, inner->data, inner->len);
	tdc_wr_fmt(&w, ",\"signature\":\"%s\"}", tdc_hex_encode(sig, 64, hex));
	return wr_to_buf(&w, out, e);
}

int tdc_sim_collateral_save(const struct tdc_collateral *c, const char *dir, struct tdc_error *e)
{
	struct tdc_buf tcb = { 0 }, qe = { 0 };
	int rc;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return TDC_FAILF(e, TDC_E_IO, "cannot create directory", "%s: %s", dir,
				 strerror(errno));
	if ((rc = tdc_sim_pcs_body("tcbInfo", &c->tcb_info, c->tcb_info_sig, &tcb, e)) < 0 ||
	    (rc = tdc_sim_pcs_body("enclaveIdentity", &c->qe_identity, c->qe_identity_sig, &qe,
				   e)) < 0)
		goto out;
	const struct {
		const char *name;
		const struct tdc_buf *b;
	} files[] = {
		{ "tcb_info.json", &tcb },
		{ "tcb_info_issuer_chain.pem", &c->tcb_info_chain },
		{ "qe_identity.json", &qe },
		{ "qe_identity_issuer_chain.pem", &c->qe_identity_chain },
		{ "pck_crl.der", &c->pck_crl },
		{ "pck_crl_issuer_chain.pem", &c->pck_crl_chain },
		{ "root_ca_crl.der", &c->root_ca_crl },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if ((rc = tdc_sim_write_file(dir, files[i].name, files[i].b->data, files[i].b->len,
					     0644, e)) < 0)
			goto out;
	rc = 0;
out:
	free(tcb.data);
	free(qe.data);
	return rc;
}
