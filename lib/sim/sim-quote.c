/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Simulated TDX quotes v4/v5: the layout of tdx-quote-verification.md A1,
 * written with the capped writer, signed by the PKI's attestation and PCK keys.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "sim-int.h"
#include "util/limits.h"

#define MAX_QE_AUTH_DATA 64

static void wr_td_report(struct tdc_wr *w, const struct tdc_td_report *td, bool td15)
{
	tdc_wr_bytes(w, td->tee_tcb_svn, 16);
	tdc_wr_bytes(w, td->mrseam, 48);
	tdc_wr_bytes(w, td->mrsignerseam, 48);
	tdc_wr_bytes(w, td->seam_attributes, 8);
	tdc_wr_bytes(w, td->td_attributes, 8);
	tdc_wr_bytes(w, td->xfam, 8);
	tdc_wr_bytes(w, td->mrtd, 48);
	tdc_wr_bytes(w, td->mrconfigid, 48);
	tdc_wr_bytes(w, td->mrowner, 48);
	tdc_wr_bytes(w, td->mrownerconfig, 48);
	for (int i = 0; i < 4; i++)
		tdc_wr_bytes(w, td->rtmr[i], 48);
	tdc_wr_bytes(w, td->report_data, 64);
	if (td15) {
		tdc_wr_bytes(w, td->tee_tcb_svn2, 16);
		tdc_wr_bytes(w, td->mrservicetd, 48);
	}
}

/* The 384-byte SGX REPORTBODY of the QE. */
static int qe_report(const struct tdc_sim_qe_report *q, const uint8_t report_data[64],
		     uint8_t out[384], struct tdc_error *e)
{
	struct tdc_wr w;
	tdc_wr_init_fixed(&w, out, 384);
	tdc_wr_bytes(&w, q->cpu_svn, 16);
	tdc_wr_bytes(&w, q->miscselect, 4);
	tdc_wr_zeros(&w, 12 + 16); /* reserved, isv_ext_prod_id */
	tdc_wr_bytes(&w, q->attributes, 16);
	tdc_wr_bytes(&w, q->mr_enclave, 32);
	tdc_wr_zeros(&w, 32);
	tdc_wr_bytes(&w, q->mr_signer, 32);
	tdc_wr_zeros(&w, 32 + 64); /* reserved, config_id */
	tdc_wr_u16le(&w, q->isv_prod_id);
	tdc_wr_u16le(&w, q->isv_svn);
	tdc_wr_u16le(&w, q->config_svn);
	tdc_wr_zeros(&w, 42 + 16); /* reserved, isv_family_id */
	tdc_wr_bytes(&w, report_data, 64);
	if (tdc_wr_error(&w) || tdc_wr_len(&w) != 384)
		return TDC_FAIL(e, TDC_E_INTERNAL, "QE report layout");
	return 0;
}

/* The PEM chain leaf || PCK CA || root. */
static int pem_chain(const struct tdc_sim_pki *pki, bool nul, uint8_t **out, size_t *len,
		     struct tdc_error *e)
{
	struct tdc_wr w;
	tdc_wr_init_alloc(&w, TDC_MAX_PCK_CHAIN_SIZE);
	int rc = tdc_sim_wr_pem(&w, pki->pck, e);
	if (rc == 0)
		rc = tdc_sim_wr_pem(&w, pki->pck_ca, e);
	if (rc == 0)
		rc = tdc_sim_wr_pem(&w, pki->root, e);
	if (rc == 0 && nul)
		tdc_wr_u8(&w, 0);
	if (rc < 0) {
		tdc_wr_free(&w);
		return rc;
	}
	return tdc_wr_finish(&w, out, len, e);
}

int tdc_sim_quote(const struct tdc_sim_pki *pki, const struct tdc_sim_opts *o, uint8_t **out,
		  size_t *len, struct tdc_error *e)
{
	uint8_t qe[384], qe_sig[64], sig[64], auth[MAX_QE_AUTH_DATA], rdata[64] = { 0 };
	uint8_t *pem = NULL;
	size_t pem_len = 0, sig_len_off, sig_start, cert_len_off, cert_start;
	struct tdc_wr w;
	int rc;

	*out = NULL;
	*len = 0;
	if (o->quote_version != 4 && o->quote_version != 5)
		return TDC_FAILF(e, TDC_E_USAGE, "quote version must be 4 or 5", "%u",
				 o->quote_version);
	if (o->quote_version == 5 && o->body_type != 2 && o->body_type != 3)
		return TDC_FAILF(e, TDC_E_USAGE, "v5 body type must be 2 or 3", "%u", o->body_type);
	if (o->qe_auth_data_len > MAX_QE_AUTH_DATA)
		return TDC_FAIL(e, TDC_E_USAGE, "QE auth data longer than 64 bytes");
	bool td15 = o->quote_version == 5 && o->body_type == 3;

	/* QE report: report_data = SHA-256(attestation key || auth data) || zeros. */
	uint8_t bound[64 + MAX_QE_AUTH_DATA];
	for (size_t i = 0; i < o->qe_auth_data_len; i++)
		auth[i] = (uint8_t)i;
	memcpy(bound, pki->att_pub, 64);
	memcpy(bound + 64, auth, o->qe_auth_data_len);
	SHA256(bound, 64 + o->qe_auth_data_len, rdata);
	if (o->break_qe_binding)
		rdata[0] ^= 0x01;
	TDC_GUARD(qe_report(&o->qe, rdata, qe, e));
	TDC_GUARD(tdc_sim_sign_raw(pki->pck_key, qe, sizeof(qe), qe_sig, e));
	if (o->break_qe_report_sig)
		qe_sig[5] ^= 0x01;
	TDC_GUARD(pem_chain(pki, o->pem_trailing_nul, &pem, &pem_len, e));

	tdc_wr_init_alloc(&w, TDC_MAX_QUOTE_SIZE);
	/* header */
	tdc_wr_u16le(&w, o->quote_version);
	tdc_wr_u16le(&w, o->att_key_type);
	tdc_wr_u32le(&w, o->tee_type);
	tdc_wr_zeros(&w, 4);
	tdc_wr_bytes(&w, o->qe_vendor_id, 16);
	tdc_wr_bytes(&w, o->user_data, 20);
	/* body */
	if (o->quote_version == 5) {
		tdc_wr_u16le(&w, o->body_type);
		tdc_wr_u32le(&w, td15 ? 648 : 584);
	}
	wr_td_report(&w, &o->td, td15);

	/* everything so far is what the attestation key signs */
	if ((rc = tdc_wr_error(&w)) < 0)
		goto done;
	if ((rc = tdc_sim_sign_raw(pki->att_key, tdc_wr_data(&w), tdc_wr_len(&w), sig, e)) < 0)
		goto done;
	if (o->break_quote_sig)
		sig[7] ^= 0x01;

	tdc_wr_reserve(&w, 4, &sig_len_off);
	sig_start = tdc_wr_len(&w);
	tdc_wr_bytes(&w, sig, 64);
	tdc_wr_bytes(&w, pki->att_pub, 64);
	tdc_wr_u16le(&w, o->cert_data_type);
	tdc_wr_reserve(&w, 4, &cert_len_off);
	cert_start = tdc_wr_len(&w);
	tdc_wr_bytes(&w, qe, sizeof(qe));
	tdc_wr_bytes(&w, qe_sig, 64);
	tdc_wr_u16le(&w, (uint16_t)o->qe_auth_data_len);
	tdc_wr_bytes(&w, auth, o->qe_auth_data_len);
	tdc_wr_u16le(&w, o->inner_cert_type);
	tdc_wr_u32le(&w, (uint32_t)pem_len);
	tdc_wr_bytes(&w, pem, pem_len);
	tdc_wr_patch_u32le(&w, cert_len_off, (uint32_t)(tdc_wr_len(&w) - cert_start));
	tdc_wr_patch_u32le(&w, sig_len_off, (uint32_t)(tdc_wr_len(&w) - sig_start));
	tdc_wr_zeros(&w, o->trailing_bytes);
	rc = 0;
done:
	free(pem);
	if (rc < 0) {
		tdc_wr_free(&w);
		return rc;
	}
	return tdc_wr_finish(&w, out, len, e);
}
