/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The simulator on its own: the quotes it makes have the documented layout
 * and parse; every signature checks with plain OpenSSL; the certificates
 * chain under X509_V_FLAG_X509_STRICT with CRL checking; the collateral
 * parses back to what was asked for; save/load round-trips; each "break"
 * knob breaks exactly what it says.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "tdcrypt/collateral.h"
#include "tdcrypt/quote.h"
#include "tdcrypt/sim.h"
#include "x509/x509.h"

#define NOW ((int64_t)1750000000) /* 2025-06-15T15:06:40Z */
#define DAY (24 * 3600)

struct fx {
	struct tdc_sim_opts o;
	struct tdc_sim_pki *pki;
	uint8_t *q;
	size_t qlen;
	struct tdc_quote pq;
};

static void fx_quote(struct fx *f)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	if (!f->pki)
		assert_int_equal(tdc_sim_pki_new(&f->o, &f->pki, &e), 0);
	free(f->q);
	f->q = NULL;
	assert_int_equal(tdc_sim_quote(f->pki, &f->o, &f->q, &f->qlen, &e), 0);
}

static void fx_free(struct fx *f)
{
	free(f->q);
	tdc_sim_pki_free(f->pki);
}

static void free_coll(struct tdc_collateral *c)
{
	tdc_collateral_free(c);
}

static X509 *root_of(const struct tdc_sim_pki *pki)
{
	const uint8_t *der;
	size_t len;
	X509 *x = NULL;
	tdc_sim_root_der(pki, &der, &len);
	assert_int_equal(tdc_x509_from_der(der, len, &x, NULL), 0);
	return x;
}

static STACK_OF(X509) *chain_of(const struct tdc_quote *q)
{
	STACK_OF(X509) *sk = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_pem_chain_parse(tdc_rd_ptr(&q->cert_data), tdc_rd_len(&q->cert_data),
					     3, &sk, &e),
			 0);
	return sk;
}

/* Quote signature, QE report signature and QE binding, checked directly. */
static int check_quote_crypto(const struct tdc_quote *q)
{
	EVP_PKEY *att = NULL, *pck = NULL;
	int rc = tdc_p256_key_from_raw(q->attestation_key, &att, NULL);
	if (rc == 0)
		rc = tdc_ecdsa_p256_verify(att, tdc_rd_ptr(&q->signed_bytes),
					   tdc_rd_len(&q->signed_bytes), q->signature, "quote",
					   NULL);
	STACK_OF(X509) *sk = chain_of(q);
	if (rc == 0)
		rc = tdc_x509_p256_key(sk_X509_value(sk, 0), &pck, NULL);
	if (rc == 0)
		rc = tdc_ecdsa_p256_verify(pck, tdc_rd_ptr(&q->qe_report_bytes),
					   tdc_rd_len(&q->qe_report_bytes), q->qe_report_signature,
					   "qe", NULL);
	if (rc == 0) {
		uint8_t buf[64 + 64], h[32];
		memcpy(buf, q->attestation_key, 64);
		memcpy(buf + 64, tdc_rd_ptr(&q->qe_auth_data), tdc_rd_len(&q->qe_auth_data));
		SHA256(buf, 64 + tdc_rd_len(&q->qe_auth_data), h);
		static const uint8_t zero[32];
		if (memcmp(h, q->qe_report.report_data, 32) != 0 ||
		    memcmp(zero, q->qe_report.report_data + 32, 32) != 0)
			rc = TDC_E_BINDING;
	}
	sk_X509_pop_free(sk, X509_free);
	EVP_PKEY_free(att);
	EVP_PKEY_free(pck);
	return rc;
}

static void sim_quote_v4_layout(void **state)
{
	(void)state;
	struct fx f = { 0 };
	struct tdc_error e;
	tdc_sim_opts_default(&f.o, NOW);
	fx_quote(&f);

	/* fixed offsets of the reference doc, A1 (v4, A = 32) */
	assert_int_equal(f.q[0], 4);
	assert_int_equal(f.q[4], 0x81);
	assert_int_equal(f.q[764] | f.q[765] << 8, 6);
	assert_int_equal(f.q[1218] | f.q[1219] << 8, 32);
	assert_int_equal(f.q[1252] | f.q[1253] << 8, 5);
	assert_memory_equal(f.q + 1258, "-----BEGIN CERTIFICATE-----", 27);
	assert_int_equal(f.q[f.qlen - 1], 0); /* PEM NUL */

	tdc_error_clear(&e);
	assert_int_equal(tdc_quote_parse(f.q, f.qlen, &f.pq, &e), 0);
	assert_int_equal(f.pq.version, 4);
	assert_int_equal(f.pq.body_type, 2);
	assert_int_equal(tdc_rd_len(&f.pq.signed_bytes), 632);
	assert_int_equal(f.pq.total_len, f.qlen);
	assert_int_equal(f.pq.trailing_len, 0);
	assert_int_equal(f.pq.cert_type, 5);
	assert_memory_equal(f.pq.user_data, f.o.user_data, 20);
	assert_memory_equal(f.pq.td.tee_tcb_svn, f.o.td.tee_tcb_svn, 16);
	assert_memory_equal(f.pq.td.mrseam, f.o.td.mrseam, 48);
	assert_memory_equal(f.pq.td.td_attributes, f.o.td.td_attributes, 8);
	assert_memory_equal(f.pq.td.xfam, f.o.td.xfam, 8);
	assert_memory_equal(f.pq.td.mrtd, f.o.td.mrtd, 48);
	assert_memory_equal(f.pq.td.rtmr, f.o.td.rtmr, sizeof(f.o.td.rtmr));
	assert_memory_equal(f.pq.td.report_data, f.o.td.report_data, 64);
	assert_false(f.pq.td.is_td15);
	assert_memory_equal(f.pq.qe_report.cpu_svn, f.o.qe.cpu_svn, 16);
	assert_memory_equal(f.pq.qe_report.attributes, f.o.qe.attributes, 16);
	assert_memory_equal(f.pq.qe_report.mr_signer, f.o.qe.mr_signer, 32);
	assert_int_equal(f.pq.qe_report.isv_prod_id, 2);
	assert_int_equal(f.pq.qe_report.isv_svn, 4);
	assert_int_equal(tdc_rd_len(&f.pq.qe_auth_data), 32);
	assert_int_equal(check_quote_crypto(&f.pq), 0);
	fx_free(&f);
}

static void sim_quote_v5_layouts(void **state)
{
	(void)state;
	struct fx f = { 0 };
	tdc_sim_opts_default(&f.o, NOW);
	f.o.quote_version = 5;
	f.o.body_type = 3;
	f.o.td.mrservicetd[5] = 0x77;
	f.o.trailing_bytes = 70;
	fx_quote(&f);
	assert_int_equal(tdc_quote_parse(f.q, f.qlen, &f.pq, NULL), 0);
	assert_int_equal(f.pq.version, 5);
	assert_int_equal(f.pq.body_type, 3);
	assert_true(f.pq.td.is_td15);
	assert_int_equal(tdc_rd_len(&f.pq.signed_bytes), 54 + 648);
	assert_memory_equal(f.pq.td.tee_tcb_svn2, f.o.td.tee_tcb_svn2, 16);
	assert_memory_equal(f.pq.td.mrservicetd, f.o.td.mrservicetd, 48);
	assert_int_equal(f.pq.trailing_len, 70);
	assert_int_equal(check_quote_crypto(&f.pq), 0);

	f.o.body_type = 2;
	f.o.trailing_bytes = 0;
	fx_quote(&f);
	assert_int_equal(tdc_quote_parse(f.q, f.qlen, &f.pq, NULL), 0);
	assert_int_equal(f.pq.body_type, 2);
	assert_false(f.pq.td.is_td15);
	assert_int_equal(tdc_rd_len(&f.pq.signed_bytes), 54 + 584);
	assert_int_equal(check_quote_crypto(&f.pq), 0);

	f.o.body_type = 1;
	struct tdc_error e;
	tdc_error_clear(&e);
	free(f.q);
	f.q = NULL;
	assert_int_equal(tdc_sim_quote(f.pki, &f.o, &f.q, &f.qlen, &e), TDC_E_USAGE);
	fx_free(&f);
}

static int verify_store(X509 *root, X509 *leaf, X509 *mid, X509_CRL *c1, X509_CRL *c2,
			int64_t when)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	assert_non_null(st);
	assert_non_null(ctx);
	X509_STORE_add_cert(st, root);
	if (c1)
		X509_STORE_add_crl(st, c1);
	if (c2)
		X509_STORE_add_crl(st, c2);
	if (mid)
		sk_X509_push(untrusted, mid);
	assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, untrusted), 1);
	X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_flags(p, X509_V_FLAG_X509_STRICT | X509_V_FLAG_CRL_CHECK |
					       X509_V_FLAG_CRL_CHECK_ALL);
	X509_VERIFY_PARAM_set_time(p, (time_t)when);
	int ok = X509_verify_cert(ctx);
	int err = ok == 1 ? 0 : X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	sk_X509_free(untrusted);
	return err;
}

static X509_CRL *crl_of(const struct tdc_buf *b)
{
	X509_CRL *c = NULL;
	assert_int_equal(tdc_crl_from_der(b->data, b->len, &c, NULL), 0);
	return c;
}

static X509 *first_cert(const struct tdc_buf *pem)
{
	STACK_OF(X509) *sk = NULL;
	assert_int_equal(tdc_pem_chain_parse(pem->data, pem->len, 2, &sk, NULL), 0);
	X509 *x = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	return x;
}

static void sim_pki_chains_strictly(void **state)
{
	(void)state;
	struct fx f = { 0 };
	struct tdc_collateral c;
	tdc_sim_opts_default(&f.o, NOW);
	fx_quote(&f);
	assert_int_equal(tdc_sim_collateral(f.pki, &f.o, &c, NULL), 0);
	assert_int_equal(tdc_quote_parse(f.q, f.qlen, &f.pq, NULL), 0);

	X509 *root = root_of(f.pki);
	STACK_OF(X509) *sk = chain_of(&f.pq);
	X509 *leaf = sk_X509_value(sk, 0), *ca = sk_X509_value(sk, 1);
	X509_CRL *pck_crl = crl_of(&c.pck_crl), *root_crl = crl_of(&c.root_ca_crl);
	X509 *signer = first_cert(&c.tcb_info_chain);

	assert_int_equal(X509_cmp(root, sk_X509_value(sk, 2)), 0);
	assert_true(tdc_x509_cn_contains(leaf, "SGX PCK Certificate"));
	assert_true(tdc_x509_cn_contains(ca, "SGX PCK Platform CA"));
	assert_true(tdc_x509_cn_contains(signer, "SGX TCB Signing"));

	assert_int_equal(verify_store(root, leaf, ca, pck_crl, root_crl, NOW), 0);
	assert_int_equal(verify_store(root, signer, NULL, root_crl, NULL, NOW), 0);
	/* the injected time matters: PCK CRL window is [NOW-1d, NOW+29d] */
	assert_int_equal(verify_store(root, leaf, ca, pck_crl, root_crl, NOW + 30 * DAY),
			 X509_V_ERR_CRL_HAS_EXPIRED);
	assert_int_not_equal(verify_store(root, leaf, ca, pck_crl, root_crl, NOW - 200 * DAY), 0);

	/* the x509 module agrees */
	X509_CRL *crls[2] = { root_crl, pck_crl };
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_chain_verify(root, sk, crls, 2, NOW, "pck", &e), 0);
	assert_int_equal(tdc_crl_check(pck_crl, ca, NOW, "pck crl", NULL), 0);
	assert_int_equal(tdc_crl_check(root_crl, root, NOW, "root crl", NULL), 0);

	X509_free(signer);
	X509_CRL_free(pck_crl);
	X509_CRL_free(root_crl);
	sk_X509_pop_free(sk, X509_free);
	X509_free(root);
	free_coll(&c);
	fx_free(&f);
}

static void sim_pck_extension_round_trips(void **state)
{
	(void)state;
	struct fx f = { 0 };
	struct tdc_pck_ext x;
	struct tdc_error e;
	tdc_sim_opts_default(&f.o, NOW);
	f.o.pck.sgx_svn[15] = 200;
	f.o.pck.pcesvn = 300; /* needs two INTEGER bytes */
	f.o.pck.sgx_type = 1;
	f.o.pck.dynamic_platform = true;
	f.o.pck.cached_keys = false;
	fx_quote(&f);
	assert_int_equal(tdc_quote_parse(f.q, f.qlen, &f.pq, NULL), 0);
	STACK_OF(X509) *sk = chain_of(&f.pq);
	tdc_error_clear(&e);
	assert_int_equal(tdc_pck_ext_parse(sk_X509_value(sk, 0), &x, &e), 0);
	assert_memory_equal(x.ppid, f.o.pck.ppid, 16);
	assert_memory_equal(x.sgx_svn, f.o.pck.sgx_svn, 16);
	assert_int_equal(x.pcesvn, 300);
	assert_memory_equal(x.cpusvn, f.o.pck.cpusvn, 16);
	assert_memory_equal(x.pce_id, f.o.pck.pce_id, 2);
	assert_memory_equal(x.fmspc, f.o.pck.fmspc, 6);
	assert_int_equal(x.sgx_type, 1);
	assert_true(x.has_platform_instance_id);
	assert_memory_equal(x.platform_instance_id, f.o.pck.platform_instance_id, 16);
	assert_true(x.has_configuration);
	assert_true(x.dynamic_platform);
	assert_false(x.cached_keys);
	assert_true(x.smt_enabled);
	sk_X509_pop_free(sk, X509_free);
	fx_free(&f);
}

static void sim_collateral_parses_back(void **state)
{
	(void)state;
	struct fx f = { 0 };
	struct tdc_collateral c;
	struct tdc_tcb_info ti;
	struct tdc_qe_identity qi;
	struct tdc_error e;
	tdc_sim_opts_default(&f.o, NOW);
	f.o.tcb_info.fmspc_lower = true;
	assert_int_equal(tdc_sim_pki_new(&f.o, &f.pki, NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_sim_collateral(f.pki, &f.o, &c, &e), 0);
	assert_int_equal(c.tcb_info.data[c.tcb_info.len], 0);
	assert_non_null(strstr((char *)c.tcb_info.data, "\"fmspc\":\"b0c06f000000\""));
	/* compact, Intel order */
	assert_memory_equal(c.tcb_info.data, "{\"id\":\"TDX\",\"version\":3,\"issueDate\":\"", 36);

	tdc_error_clear(&e);
	assert_int_equal(tdc_tcb_info_parse(c.tcb_info.data, c.tcb_info.len, &ti, &e), 0);
	assert_string_equal(ti.id, "TDX");
	assert_int_equal(ti.version, 3);
	assert_true(ti.issue_date == NOW - DAY);
	assert_true(ti.next_update == NOW + 29 * DAY);
	assert_memory_equal(ti.fmspc, f.o.pck.fmspc, 6);
	assert_int_equal(ti.tcb_eval_num, 17);
	assert_true(ti.has_tdx_module);
	assert_int_equal(ti.n_modules, 1);
	assert_string_equal(ti.modules[0].id, "TDX_01");
	assert_int_equal(ti.modules[0].n_levels, 2);
	assert_int_equal(ti.modules[0].levels[1].status, TDC_TCB_OUT_OF_DATE);
	assert_int_equal(ti.n_levels, 3);
	assert_int_equal(ti.levels[0].status, TDC_TCB_UP_TO_DATE);
	assert_memory_equal(ti.levels[0].sgx_svn, f.o.pck.sgx_svn, 16);
	assert_int_equal(ti.levels[0].pcesvn, 13);
	assert_int_equal(ti.levels[1].advisories.n, 2);
	assert_string_equal(ti.levels[1].advisories.id[1], "INTEL-SA-00982");
	assert_int_equal(ti.levels[2].pcesvn, 11);
	tdc_tcb_info_free(&ti);

	tdc_error_clear(&e);
	assert_int_equal(tdc_qe_identity_parse(c.qe_identity.data, c.qe_identity.len, &qi, &e), 0);
	assert_string_equal(qi.id, "TD_QE");
	assert_int_equal(qi.version, 2);
	assert_int_equal(qi.isvprodid, 2);
	assert_memory_equal(qi.mrsigner, f.o.qe.mr_signer, 32);
	assert_int_equal(qi.attributes_mask[0], 0xfb);
	assert_int_equal(qi.n_levels, 2);
	assert_int_equal(qi.levels[0].isvsvn, 4);
	tdc_qe_identity_free(&qi);

	/* signatures over the exact bytes, by the TCB signer of the chains */
	X509 *signer = first_cert(&c.tcb_info_chain);
	EVP_PKEY *k = NULL;
	assert_int_equal(tdc_x509_p256_key(signer, &k, NULL), 0);
	assert_int_equal(tdc_ecdsa_p256_verify(k, c.tcb_info.data, c.tcb_info.len, c.tcb_info_sig,
					       "tcb", NULL),
			 0);
	assert_int_equal(tdc_ecdsa_p256_verify(k, c.qe_identity.data, c.qe_identity.len,
					       c.qe_identity_sig, "qe", NULL),
			 0);

	/* the PCS body form splits back into the same bytes */
	struct tdc_buf body, inner = { 0 };
	uint8_t sig[64];
	assert_int_equal(tdc_sim_pcs_body("tcbInfo", &c.tcb_info, c.tcb_info_sig, &body, NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_pcs_body_split(body.data, body.len, "tcbInfo", &inner, sig, &e), 0);
	assert_int_equal(inner.len, c.tcb_info.len);
	assert_memory_equal(inner.data, c.tcb_info.data, inner.len);
	assert_memory_equal(sig, c.tcb_info_sig, 64);
	free(inner.data);
	free(body.data);

	EVP_PKEY_free(k);
	X509_free(signer);
	free_coll(&c);
	fx_free(&f);
}

static bool crl_lists(const struct tdc_buf *crl_der, X509 *cert)
{
	X509_CRL *crl = crl_of(crl_der);
	X509_REVOKED *r = NULL;
	int found = X509_CRL_get0_by_serial(crl, &r, (ASN1_INTEGER *)X509_get0_serialNumber(cert));
	X509_CRL_free(crl);
	return found == 1;
}

static void sim_crl_knobs(void **state)
{
	(void)state;
	struct fx f = { 0 };
	struct tdc_collateral c;
	tdc_sim_opts_default(&f.o, NOW);
	f.o.pck_revoked = true;
	f.o.pck_ca_revoked = true;
	fx_quote(&f);
	assert_int_equal(tdc_quote_parse(f.q, f.qlen, &f.pq, NULL), 0);
	STACK_OF(X509) *sk = chain_of(&f.pq);
	X509 *root = root_of(f.pki);
	assert_int_equal(tdc_sim_collateral(f.pki, &f.o, &c, NULL), 0);
	assert_true(crl_lists(&c.pck_crl, sk_X509_value(sk, 0)));
	assert_true(crl_lists(&c.root_ca_crl, sk_X509_value(sk, 1)));
	X509_CRL *pc = crl_of(&c.pck_crl), *rc = crl_of(&c.root_ca_crl);
	assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(pc)), 3);
	assert_int_equal(verify_store(root, sk_X509_value(sk, 0), sk_X509_value(sk, 1), pc, rc,
				      NOW),
			 X509_V_ERR_CERT_REVOKED);
	X509_CRL_free(pc);
	X509_CRL_free(rc);
	free_coll(&c);

	/* a forged PCK CRL: right issuer name, wrong key */
	f.o.pck_revoked = f.o.pck_ca_revoked = false;
	f.o.pck_crl_issuer = TDC_SIM_CRL_FORGED;
	assert_int_equal(tdc_sim_collateral(f.pki, &f.o, &c, NULL), 0);
	assert_false(crl_lists(&c.pck_crl, sk_X509_value(sk, 0)));
	pc = crl_of(&c.pck_crl);
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(pc),
				       X509_get_subject_name(sk_X509_value(sk, 1))),
			 0);
	EVP_PKEY *cak = X509_get0_pubkey(sk_X509_value(sk, 1));
	assert_int_not_equal(X509_CRL_verify(pc, cak), 1);
	X509_CRL_free(pc);
	free_coll(&c);

	/* a PCK CRL issued by the root */
	f.o.pck_crl_issuer = TDC_SIM_CRL_BY_ROOT;
	assert_int_equal(tdc_sim_collateral(f.pki, &f.o, &c, NULL), 0);
	pc = crl_of(&c.pck_crl);
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(pc), X509_get_subject_name(root)), 0);
	assert_int_equal(X509_CRL_verify(pc, X509_get0_pubkey(root)), 1);
	X509_CRL_free(pc);
	free_coll(&c);

	X509_free(root);
	sk_X509_pop_free(sk, X509_free);
	fx_free(&f);
}

static void sim_signer_issuer_knobs(void **state)
{
	(void)state;
	static const enum tdc_sim_signer_issuer kinds[] = { TDC_SIM_SIGNER_OTHER_ROOT,
							    TDC_SIM_SIGNER_FORGED };
	for (size_t i = 0; i < 2; i++) {
		struct fx f = { 0 };
		struct tdc_collateral c;
		tdc_sim_opts_default(&f.o, NOW);
		f.o.tcb_signer_issuer = kinds[i];
		assert_int_equal(tdc_sim_pki_new(&f.o, &f.pki, NULL), 0);
		assert_int_equal(tdc_sim_collateral(f.pki, &f.o, &c, NULL), 0);
		X509 *root = root_of(f.pki), *signer = first_cert(&c.tcb_info_chain);
		assert_int_not_equal(X509_verify(signer, X509_get0_pubkey(root)), 1);
		bool same_dn = X509_NAME_cmp(X509_get_issuer_name(signer),
					     X509_get_subject_name(root)) == 0;
		assert_true(same_dn == (kinds[i] == TDC_SIM_SIGNER_FORGED));
		X509_CRL *rc = crl_of(&c.root_ca_crl);
		assert_int_not_equal(verify_store(root, signer, NULL, rc, NULL, NOW), 0);
		X509_CRL_free(rc);
		X509_free(signer);
		X509_free(root);
		free_coll(&c);
		fx_free(&f);
	}
}

static void sim_break_knobs(void **state)
{
	(void)state;
	struct fx f = { 0 };
	struct tdc_collateral c;
	tdc_sim_opts_default(&f.o, NOW);

	f.o.break_quote_sig = true;
	fx_quote(&f);
	assert_int_equal(tdc_quote_parse(f.q, f.qlen, &f.pq, NULL), 0);
	assert_int_equal(check_quote_crypto(&f.pq), TDC_E_SIGNATURE);
	f.o.break_quote_sig = false;

	f.o.break_qe_report_sig = true;
	fx_quote(&f);
	assert_int_equal(tdc_quote_parse(f.q, f.qlen, &f.pq, NULL), 0);
	assert_int_equal(check_quote_crypto(&f.pq), TDC_E_SIGNATURE);
	f.o.break_qe_report_sig = false;

	f.o.break_qe_binding = true;
	fx_quote(&f);
	assert_int_equal(tdc_quote_parse(f.q, f.qlen, &f.pq, NULL), 0);
	assert_int_equal(check_quote_crypto(&f.pq), TDC_E_BINDING);
	f.o.break_qe_binding = false;

	/* outer certification data type 5 instead of 6: the parser refuses it */
	f.o.cert_data_type = 5;
	fx_quote(&f);
	assert_int_not_equal(tdc_quote_parse(f.q, f.qlen, &f.pq, NULL), 0);
	f.o.cert_data_type = 6;

	f.o.tcb_info_other_key = true;
	f.o.qe_identity_other_key = true;
	assert_int_equal(tdc_sim_collateral(f.pki, &f.o, &c, NULL), 0);
	X509 *signer = first_cert(&c.tcb_info_chain);
	EVP_PKEY *k = X509_get0_pubkey(signer);
	assert_int_equal(tdc_ecdsa_p256_verify(k, c.tcb_info.data, c.tcb_info.len, c.tcb_info_sig,
					       "tcb", NULL),
			 TDC_E_SIGNATURE);
	assert_int_equal(tdc_ecdsa_p256_verify(k, c.qe_identity.data, c.qe_identity.len,
					       c.qe_identity_sig, "qe", NULL),
			 TDC_E_SIGNATURE);
	X509_free(signer);
	free_coll(&c);

	/* bad arguments */
	struct tdc_error e;
	tdc_error_clear(&e);
	f.o.qe_auth_data_len = 65;
	free(f.q);
	f.q = NULL;
	assert_int_equal(tdc_sim_quote(f.pki, &f.o, &f.q, &f.qlen, &e), TDC_E_USAGE);
	f.o.qe_auth_data_len = 0; /* empty auth data is legal */
	fx_quote(&f);
	assert_int_equal(tdc_quote_parse(f.q, f.qlen, &f.pq, NULL), 0);
	assert_int_equal(check_quote_crypto(&f.pq), 0);
	fx_free(&f);
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[4096];
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static void sim_save_load_round_trips(void **state)
{
	(void)state;
	struct fx f = { 0 };
	struct tdc_sim_pki *loaded = NULL;
	struct tdc_error e;
	char tmpl[] = "/tmp/tdc-sim-XXXXXX";
	char dir[64], p[128];
	struct stat st;

	assert_non_null(mkdtemp(tmpl));
	snprintf(dir, sizeof(dir), "%s/pki", tmpl);
	tdc_sim_opts_default(&f.o, NOW);
	assert_int_equal(tdc_sim_pki_new(&f.o, &f.pki, NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_sim_pki_save(f.pki, dir, &e), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	static const char *keys[] = { "root", "pck-ca", "tcb-signer", "pck", "attestation" };
	for (size_t i = 0; i < 5; i++) {
		snprintf(p, sizeof(p), "%s/%s.key", dir, keys[i]);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	/* saving again replaces the files */
	assert_int_equal(tdc_sim_pki_save(f.pki, dir, NULL), 0);

	tdc_error_clear(&e);
	assert_int_equal(tdc_sim_pki_load(dir, &loaded, &e), 0);
	const uint8_t *a, *b;
	size_t al, bl;
	tdc_sim_root_der(f.pki, &a, &al);
	tdc_sim_root_der(loaded, &b, &bl);
	assert_int_equal(al, bl);
	assert_memory_equal(a, b, al);

	/* the loaded keys sign what the saved certificates certify */
	uint8_t *q = NULL;
	size_t qlen = 0;
	struct tdc_quote pq;
	assert_int_equal(tdc_sim_quote(loaded, &f.o, &q, &qlen, NULL), 0);
	assert_int_equal(tdc_quote_parse(q, qlen, &pq, NULL), 0);
	assert_int_equal(check_quote_crypto(&pq), 0);
	free(q);
	tdc_sim_pki_free(loaded);

	/* a missing file is an I/O error */
	char p2[128];
	snprintf(p, sizeof(p), "%s/attestation.key", dir);
	assert_int_equal(unlink(p), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_sim_pki_load(dir, &loaded, &e), TDC_E_IO);
	assert_null(loaded);
	/* a key that does not match its certificate is refused (pck comes before
	 * attestation) */
	snprintf(p, sizeof(p), "%s/pck.key", dir);
	snprintf(p2, sizeof(p2), "%s/root.key", dir);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(link(p2, p), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_sim_pki_load(dir, &loaded, &e), TDC_E_FORMAT);
	assert_null(loaded);

	rm_tree(dir);
	rmdir(tmpl);
	fx_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sim_quote_v4_layout),
		cmocka_unit_test(sim_quote_v5_layouts),
		cmocka_unit_test(sim_pki_chains_strictly),
		cmocka_unit_test(sim_pck_extension_round_trips),
		cmocka_unit_test(sim_collateral_parses_back),
		cmocka_unit_test(sim_crl_knobs),
		cmocka_unit_test(sim_signer_issuer_knobs),
		cmocka_unit_test(sim_break_knobs),
		cmocka_unit_test(sim_save_load_round_trips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
