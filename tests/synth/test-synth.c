/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The verifier against the synthetic PKI: a baseline that verifies UpToDate,
 * then one test per check where that check alone fails (one knob changed),
 * asserting the exact error code, and every TCB status no real quote shows.
 * Algorithm: ../shared/reference/tdx-quote-verification.md, part A2.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tdcrypt/collateral.h"
#include "tdcrypt/sim.h"
#include "tdcrypt/verify.h"
#include "verify/verify_int.h"

#define NOW ((int64_t)1750000000) /* 2025-06-15T15:06:40Z */
#define DAY (24 * 3600)

struct run {
	struct tdc_sim_pki *pki;
	uint8_t *q;
	size_t qlen;
	struct tdc_collateral c;
	struct tdc_verifier *v;
	struct tdc_verdict out;
	struct tdc_error e;
};

static void run_free(struct run *r)
{
	tdc_verdict_free(&r->out);
	tdc_verifier_free(r->v);
	tdc_collateral_free(&r->c);
	free(r->q);
	tdc_sim_pki_free(r->pki);
	memset(r, 0, sizeof(*r));
}

/* Builds PKI, quote and collateral from o and verifies at now. */
static int run_at(struct run *r, const struct tdc_sim_opts *o, uint32_t min_eval, int64_t now)
{
	struct tdc_error ge;
	const uint8_t *der;
	size_t der_len;

	memset(r, 0, sizeof(*r));
	tdc_error_clear(&ge);
	assert_int_equal(tdc_sim_pki_new(o, &r->pki, &ge), 0);
	assert_int_equal(tdc_sim_quote(r->pki, o, &r->q, &r->qlen, &ge), 0);
	assert_int_equal(tdc_sim_collateral(r->pki, o, &r->c, &ge), 0);
	tdc_sim_root_der(r->pki, &der, &der_len);
	struct tdc_verifier_opts vo = { .test_root_der = der,
					.test_root_der_len = der_len,
					.min_tcb_eval_num = min_eval };
	assert_int_equal(tdc_verifier_new(&vo, &r->v, &ge), 0);
	assert_true(tdc_verifier_is_test_root(r->v));
	tdc_error_clear(&r->e);
	return tdc_verify_quote(r->v, r->q, r->qlen, &r->c, now, &r->out, &r->e);
}

static void show(const char *what, int rc, const struct run *r)
{
	char buf[512];
	print_message("%s: rc %d (%s) status %s: %s\n", what, rc, tdc_err_name(rc),
		      tdc_tcb_status_name(r->out.status),
		      rc ? tdc_error_format(&r->e, buf, sizeof(buf)) : "-");
}

/* Verifies o at NOW and expects rc == code (and, on success, status). */
static void expect_at(const struct tdc_sim_opts *o, uint32_t min_eval, int64_t now, int code,
		      enum tdc_tcb_status status)
{
	struct run r;
	int rc = run_at(&r, o, min_eval, now);
	if (rc != code || (code == 0 && r.out.status != status))
		show("unexpected", rc, &r);
	enum tdc_tcb_status got = r.out.status;
	int ecode = r.e.code;
	run_free(&r); /* before asserting: a failure must not leak */
	assert_int_equal(rc, code);
	if (code == 0)
		assert_int_equal(got, status);
	else
		assert_int_equal(ecode, code);
}

static void expect(const struct tdc_sim_opts *o, int code, enum tdc_tcb_status status)
{
	expect_at(o, 0, NOW, code, status);
}

static void reject(const struct tdc_sim_opts *o, int code)
{
	expect(o, code, TDC_TCB_UNKNOWN);
}

static bool has_advisory(const struct tdc_advisories *a, const char *id)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->id[i], id) == 0)
			return true;
	return false;
}

static struct tdc_sim_opts base(void)
{
	struct tdc_sim_opts o;
	tdc_sim_opts_default(&o, NOW);
	return o;
}

/* ---- baselines ---- */

static void baseline_v4_uptodate(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	struct run r;
	int rc = run_at(&r, &o, 17, NOW);
	if (rc)
		show("baseline", rc, &r);
	assert_int_equal(rc, 0);
	assert_int_equal(r.out.status, TDC_TCB_UP_TO_DATE);
	assert_int_equal(r.out.platform_status, TDC_TCB_UP_TO_DATE);
	assert_int_equal(r.out.qe_status, TDC_TCB_UP_TO_DATE);
	assert_int_equal(r.out.module_status, TDC_TCB_UP_TO_DATE);
	assert_int_equal(r.out.advisories.n, 0);
	assert_memory_equal(r.out.fmspc, o.pck.fmspc, 6);
	assert_memory_equal(r.out.pce_id, o.pck.pce_id, 2);
	assert_int_equal(r.out.tcb_eval_num, 17);
	assert_int_equal(r.out.quote_version, 4);
	assert_int_equal(r.out.body_type, 2);
	assert_int_equal(r.out.qe_isvsvn, 4);
	assert_true(r.out.tcb_date == o.tcb_info.levels[0].tcb_date);
	/* earliest expiry: PCK CRL, TCB info and QE identity all end at NOW + 29 d */
	assert_true(r.out.collateral_not_after == NOW + 29 * DAY);
	assert_memory_equal(r.out.td.report_data, o.td.report_data, 64);
	assert_memory_equal(r.out.td.mrtd, o.td.mrtd, 48);
	run_free(&r);
}

static void baseline_v5_td15_uptodate(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.quote_version = 5;
	o.body_type = 3;
	struct run r;
	int rc = run_at(&r, &o, 0, NOW);
	if (rc)
		show("v5", rc, &r);
	assert_int_equal(rc, 0);
	assert_int_equal(r.out.status, TDC_TCB_UP_TO_DATE);
	assert_int_equal(r.out.quote_version, 5);
	assert_int_equal(r.out.body_type, 3);
	assert_true(r.out.td.is_td15);
	run_free(&r);
}

static void baseline_v5_td10_uptodate(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.quote_version = 5;
	o.body_type = 2;
	expect(&o, 0, TDC_TCB_UP_TO_DATE);
}

/* Intel ignores the bytes after the signature data; so must we. */
static void trailing_padding_accepted(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.trailing_bytes = 8000 - 4995;
	expect(&o, 0, TDC_TCB_UP_TO_DATE);
}

/* PCS serves fmspc in either case; compare bytes. */
static void fmspc_lower_case_accepted(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info.fmspc_lower = true;
	expect(&o, 0, TDC_TCB_UP_TO_DATE);
}

/* ---- revocation ---- */

static void pck_revoked(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.pck_revoked = true;
	reject(&o, TDC_E_REVOKED);
}

static void pck_ca_on_root_crl(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.pck_ca_revoked = true;
	reject(&o, TDC_E_REVOKED);
}

static void tcb_signer_on_root_crl(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_signer_revoked = true;
	reject(&o, TDC_E_REVOKED);
}

/* ---- platform TCB statuses ---- */

static void platform_status(const char *name, enum tdc_tcb_status want)
{
	struct tdc_sim_opts o = base();
	o.tcb_info.levels[0].status = name;
	o.tcb_info.levels[0].advisories[0] = "INTEL-SA-00615";
	o.tcb_info.levels[0].advisories[1] = "INTEL-SA-00828";
	struct run r;
	int rc = run_at(&r, &o, 0, NOW);
	if (rc || r.out.status != want)
		show(name, rc, &r);
	assert_int_equal(rc, 0);
	assert_int_equal(r.out.status, want);
	assert_int_equal(r.out.platform_status, want);
	assert_true(has_advisory(&r.out.advisories, "INTEL-SA-00615"));
	assert_true(has_advisory(&r.out.advisories, "INTEL-SA-00828"));
	assert_int_equal(r.out.advisories.n, 2);
	run_free(&r);
}

static void status_sw_hardening_needed(void **state)
{
	(void)state;
	platform_status("SWHardeningNeeded", TDC_TCB_SW_HARDENING_NEEDED);
}

static void status_configuration_needed(void **state)
{
	(void)state;
	platform_status("ConfigurationNeeded", TDC_TCB_CONFIGURATION_NEEDED);
}

static void status_configuration_and_sw_hardening_needed(void **state)
{
	(void)state;
	platform_status("ConfigurationAndSWHardeningNeeded",
			TDC_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED);
}

static void status_out_of_date(void **state)
{
	(void)state;
	platform_status("OutOfDate", TDC_TCB_OUT_OF_DATE);
}

static void status_out_of_date_configuration_needed(void **state)
{
	(void)state;
	platform_status("OutOfDateConfigurationNeeded", TDC_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED);
}

/* A platform one SGX recovery behind matches the second level. */
static void older_platform_matches_lower_level(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.pck.sgx_svn[0] = 6; /* level 1 has 6, level 0 has 7 */
	struct run r;
	int rc = run_at(&r, &o, 0, NOW);
	if (rc)
		show("older", rc, &r);
	assert_int_equal(rc, 0);
	assert_int_equal(r.out.status, TDC_TCB_OUT_OF_DATE);
	assert_true(r.out.tcb_date == o.tcb_info.levels[1].tcb_date);
	assert_true(has_advisory(&r.out.advisories, "INTEL-SA-00960"));
	assert_true(has_advisory(&r.out.advisories, "INTEL-SA-00982"));
	run_free(&r);
}

static void tcb_level_revoked(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info.levels[0].status = "Revoked";
	struct run r;
	int rc = run_at(&r, &o, 0, NOW);
	assert_int_equal(rc, TDC_E_REVOKED);
	assert_int_equal(r.out.status, TDC_TCB_REVOKED);
	run_free(&r);
}

/* PCS statuses are a closed set: anything else fails closed. */
static void unknown_status_rejected(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info.levels[0].status = "Bogus";
	reject(&o, TDC_E_FORMAT);
}

/* ---- QE identity TCB ---- */

static void qe_level_out_of_date(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.qe.isv_svn = 3; /* levels: 4 UpToDate, 2 OutOfDate */
	struct run r;
	int rc = run_at(&r, &o, 0, NOW);
	if (rc)
		show("qe ood", rc, &r);
	assert_int_equal(rc, 0);
	assert_int_equal(r.out.status, TDC_TCB_OUT_OF_DATE);
	assert_int_equal(r.out.platform_status, TDC_TCB_UP_TO_DATE);
	assert_int_equal(r.out.qe_status, TDC_TCB_OUT_OF_DATE);
	assert_int_equal(r.out.qe_isvsvn, 3);
	assert_true(has_advisory(&r.out.advisories, "INTEL-SA-00615"));
	run_free(&r);
}

static void qe_out_of_date_with_configuration_needed(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.qe.isv_svn = 2;
	o.tcb_info.levels[0].status = "ConfigurationNeeded";
	expect(&o, 0, TDC_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED);
}

static void qe_level_revoked(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.qe_identity.levels[0].status = "Revoked";
	reject(&o, TDC_E_REVOKED);
}

static void qe_isvsvn_below_all_levels(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.qe.isv_svn = 1;
	reject(&o, TDC_E_TCB_NOT_SUPPORTED);
}

/* ---- TDX module identity and TCB ---- */

static void module_out_of_date(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.td.tee_tcb_svn[0] = 3; /* module levels: 5 UpToDate, 3 OutOfDate */
	struct run r;
	int rc = run_at(&r, &o, 0, NOW);
	if (rc)
		show("module ood", rc, &r);
	assert_int_equal(rc, 0);
	assert_int_equal(r.out.status, TDC_TCB_OUT_OF_DATE);
	assert_int_equal(r.out.module_status, TDC_TCB_OUT_OF_DATE);
	assert_true(has_advisory(&r.out.advisories, "INTEL-SA-00960"));
	run_free(&r);
}

static void module_out_of_date_with_configuration_needed(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.td.tee_tcb_svn[0] = 3;
	o.tcb_info.levels[0].status = "ConfigurationNeeded";
	expect(&o, 0, TDC_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED);
}

static void module_out_of_date_with_sw_hardening(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.td.tee_tcb_svn[0] = 3;
	o.tcb_info.levels[0].status = "SWHardeningNeeded";
	expect(&o, 0, TDC_TCB_OUT_OF_DATE);
}

static void module_level_revoked(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info.modules[0].levels[0].status = "Revoked";
	reject(&o, TDC_E_REVOKED);
}

static void module_svn_below_all_levels(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.td.tee_tcb_svn[0] = 2;
	reject(&o, TDC_E_TCB_NOT_SUPPORTED);
}

/* With a module version, TEE_TCB_SVN[0..1] are judged by the module identity,
 * not by the platform level's tdxtcbcomponents. */
static void module_version_skips_tdx_components_0_1(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info.levels[0].tdx_svn[0] = 9;
	o.tcb_info.levels[0].tdx_svn[1] = 9;
	expect(&o, 0, TDC_TCB_UP_TO_DATE);
}

static void module_identity_missing(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info.modules[0].id = "TDX_03";
	reject(&o, TDC_E_MODULE_MISMATCH);
	o.tcb_info.n_modules = 0;
	reject(&o, TDC_E_MODULE_MISMATCH);
}

static void module_id_case_insensitive(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info.modules[0].id = "tdx_01";
	expect(&o, 0, TDC_TCB_UP_TO_DATE);
}

static void module_mrsignerseam_differs(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.td.mrsignerseam[47] = 1;
	reject(&o, TDC_E_MODULE_MISMATCH);
}

static void module_seamattributes_nonzero(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.td.seam_attributes[0] = 1;
	reject(&o, TDC_E_MODULE_MISMATCH);
	/* Intel's rule: all zero, whatever the mask says */
	o.tcb_info.modules[0].attributes_mask[0] = 0;
	reject(&o, TDC_E_MODULE_MISMATCH);
}

/* TDX 1.0 module (major version 0): expectations come from tdxModule and all
 * 16 TDX components take part in level matching. */
static void module_version_0_uses_tdx_module(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.td.tee_tcb_svn[1] = 0;
	for (size_t i = 0; i < o.tcb_info.n_levels; i++)
		o.tcb_info.levels[i].tdx_svn[1] = 0;
	struct run r;
	int rc = run_at(&r, &o, 0, NOW);
	if (rc)
		show("ver0", rc, &r);
	assert_int_equal(rc, 0);
	assert_int_equal(r.out.status, TDC_TCB_UP_TO_DATE);
	assert_int_equal(r.out.module_status, TDC_TCB_UNKNOWN);
	run_free(&r);

	/* component 0 now counts: below level 0, at level 1 (OutOfDate) */
	o.td.tee_tcb_svn[0] = 4;
	expect(&o, 0, TDC_TCB_OUT_OF_DATE);
	o.td.tee_tcb_svn[0] = 5;

	o.td.mrsignerseam[0] = 1;
	reject(&o, TDC_E_MODULE_MISMATCH);
}

/* ---- TD relaunch (v5, TD 1.5) ---- */

static void td_relaunch_advised(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.quote_version = 5;
	o.body_type = 3;
	o.td.tee_tcb_svn[0] = 3;     /* running an OutOfDate module ... */
	o.td.tee_tcb_svn2[0] = 5;    /* ... but the preserved update is current */
	expect(&o, 0, TDC_TCB_TD_RELAUNCH_ADVISED);
	o.tcb_info.levels[0].status = "ConfigurationNeeded";
	expect(&o, 0, TDC_TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED);
	/* the update is not current either: plain OutOfDate */
	o.tcb_info.levels[0].status = "UpToDate";
	o.td.tee_tcb_svn2[0] = 3;
	expect(&o, 0, TDC_TCB_OUT_OF_DATE);
}

/* ---- validity windows (all inclusive) ---- */

enum win_field { W_TCB_INFO, W_QE_ID, W_PCK_CRL, W_ROOT_CRL, W_PCK, W_PCK_CA, W_SIGNER, W_ROOT };

static struct tdc_sim_window *win_of(struct tdc_sim_opts *o, enum win_field f)
{
	switch (f) {
	case W_TCB_INFO: return &o->tcb_info.dates;
	case W_QE_ID: return &o->qe_identity.dates;
	case W_PCK_CRL: return &o->pck_crl_window;
	case W_ROOT_CRL: return &o->root_crl_window;
	case W_PCK: return &o->pck_validity;
	case W_PCK_CA: return &o->pck_ca_validity;
	case W_SIGNER: return &o->tcb_signer_validity;
	default: return &o->root_validity;
	}
}

static void window_case(enum win_field f)
{
	struct tdc_sim_opts o = base();
	struct tdc_sim_window *w = win_of(&o, f);
	/* expired one second ago */
	w->from = NOW - 30 * DAY;
	w->to = NOW - 1;
	reject(&o, TDC_E_EXPIRED);
	/* valid from one second from now */
	w->from = NOW + 1;
	w->to = NOW + 30 * DAY;
	reject(&o, TDC_E_EXPIRED);
	/* the start is inclusive */
	w->from = NOW;
	w->to = NOW + 30 * DAY;
	expect(&o, 0, TDC_TCB_UP_TO_DATE);
}

/* The end is inclusive too (reference A2 step 2: thisUpdate <= now <= nextUpdate;
 * x509.h: the same for tdc_crl_check). */
static void window_end_inclusive(enum win_field f)
{
	struct tdc_sim_opts o = base();
	struct tdc_sim_window *w = win_of(&o, f);
	w->from = NOW - 30 * DAY;
	w->to = NOW;
	expect(&o, 0, TDC_TCB_UP_TO_DATE);
}

static void window_end_inclusive_collateral(void **state)
{
	(void)state;
	window_end_inclusive(W_TCB_INFO);
	window_end_inclusive(W_QE_ID);
}

static void window_end_inclusive_crls(void **state)
{
	(void)state;
	window_end_inclusive(W_PCK_CRL);
	window_end_inclusive(W_ROOT_CRL);
}

static void window_end_inclusive_certs(void **state)
{
	(void)state;
	window_end_inclusive(W_PCK);
	window_end_inclusive(W_PCK_CA);
	window_end_inclusive(W_SIGNER);
	window_end_inclusive(W_ROOT);
}

static void window_tcb_info(void **state)
{
	(void)state;
	window_case(W_TCB_INFO);
}

static void window_qe_identity(void **state)
{
	(void)state;
	window_case(W_QE_ID);
}

static void window_pck_crl(void **state)
{
	(void)state;
	window_case(W_PCK_CRL);
}

static void window_root_crl(void **state)
{
	(void)state;
	window_case(W_ROOT_CRL);
}

static void window_pck_leaf(void **state)
{
	(void)state;
	window_case(W_PCK);
}

static void window_pck_ca(void **state)
{
	(void)state;
	window_case(W_PCK_CA);
}

static void window_tcb_signer(void **state)
{
	(void)state;
	window_case(W_SIGNER);
}

static void window_root(void **state)
{
	(void)state;
	window_case(W_ROOT);
}

/* The cache keeps verdicts, never times: the same collateral is re-checked
 * against each call's now. */
static void cached_collateral_rechecks_time(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	struct run r;
	struct tdc_verifier_stats st;
	assert_int_equal(run_at(&r, &o, 0, NOW), 0);
	tdc_verdict_free(&r.out);
	tdc_error_clear(&r.e);
	assert_int_equal(tdc_verify_quote(r.v, r.q, r.qlen, &r.c, NOW + DAY, &r.out, &r.e), 0);
	assert_int_equal(r.out.status, TDC_TCB_UP_TO_DATE);
	tdc_verifier_stats(r.v, &st);
	assert_true(st.collateral_hits > 0);
	assert_true(st.pck_hits > 0);
	tdc_verdict_free(&r.out);
	tdc_error_clear(&r.e);
	assert_int_equal(tdc_verify_quote(r.v, r.q, r.qlen, &r.c, NOW + 29 * DAY + 1, &r.out,
					  &r.e),
			 TDC_E_EXPIRED);
	tdc_verdict_free(&r.out);
	tdc_error_clear(&r.e);
	assert_int_equal(tdc_verify_quote(r.v, r.q, r.qlen, &r.c, NOW - DAY - 1, &r.out, &r.e),
			 TDC_E_EXPIRED);
	run_free(&r);
}

/* A cached QE report verdict (step 4) never outlives what it relied on: with the QE
 * identity's nextUpdate (or the PCK certificate's notAfter) the earliest expiry, a
 * quote whose QE report hit the cache is refused one second after it. */
static void cached_qe_report_expires_with(enum win_field f, const char *window)
{
	struct tdc_sim_opts o = base();
	struct tdc_sim_window *w = win_of(&o, f);
	w->from = NOW - DAY;
	w->to = NOW + 2 * DAY;
	struct run r;
	struct tdc_verifier_stats st;
	assert_int_equal(run_at(&r, &o, 0, NOW), 0);
	tdc_verdict_free(&r.out);
	tdc_error_clear(&r.e);
	assert_int_equal(tdc_verify_quote(r.v, r.q, r.qlen, &r.c, NOW + 2 * DAY, &r.out, &r.e), 0);
	tdc_verifier_stats(r.v, &st);
	assert_int_equal(st.qe_report_misses, 1);
	assert_int_equal(st.qe_report_hits, 1);
	tdc_verdict_free(&r.out);
	tdc_error_clear(&r.e);
	assert_int_equal(tdc_verify_quote(r.v, r.q, r.qlen, &r.c, NOW + 2 * DAY + 1, &r.out, &r.e),
			 TDC_E_EXPIRED);
	assert_non_null(strstr(r.e.detail, window));
	run_free(&r);
}

static void cached_qe_report_rechecks_time(void **state)
{
	(void)state;
	cached_qe_report_expires_with(W_QE_ID, "QE identity valid");
	cached_qe_report_expires_with(W_PCK, "PCK certificate valid");
}

/* The same, for the QE report entry's own window check alone: the step is called with
 * the collateral and PCK entries obtained while they were valid, at a time past the
 * QE identity's nextUpdate, then past the PCK certificate's notAfter. */
static void qe_report_entry_checks_its_windows(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.qe_identity.dates = (struct tdc_sim_window){ NOW - DAY, NOW + 2 * DAY };
	o.pck_validity = (struct tdc_sim_window){ NOW - DAY, NOW + 4 * DAY };
	struct run r;
	struct tdc_quote q;
	struct vfy_crl_ent *root_crl = NULL;
	struct vfy_qe_ent *qe = NULL;
	struct vfy_pck_ent *pck = NULL;
	struct vfy_match m = { 0 };
	struct tdc_error e;
	assert_int_equal(run_at(&r, &o, 0, NOW), 0);
	assert_int_equal(tdc_quote_parse(r.q, r.qlen, &q, NULL), 0);
	assert_int_equal(vfy_root_crl(r.v, &r.c.root_ca_crl, NOW, &root_crl, NULL), 0);
	assert_int_equal(vfy_qe_identity(r.v, &r.c, root_crl, NOW, &qe, NULL), 0);
	assert_int_equal(vfy_pck_chain(r.v, &q, root_crl, &r.c.pck_crl, NOW, &pck, NULL), 0);
	assert_int_equal(vfy_qe_report(r.v, &q, pck, qe, NOW, &m, NULL), 0); /* the cached hit */
	assert_non_null(m.qe_level);
	const struct {
		int64_t at;
		int code;
		const char *window;
	} cases[] = {
		{ NOW + 2 * DAY, 0, NULL },
		{ NOW + 2 * DAY + 1, TDC_E_EXPIRED, "QE identity valid" },
		{ NOW - DAY - 1, TDC_E_EXPIRED, "QE identity valid" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		m.qe_level = NULL;
		tdc_error_clear(&e);
		assert_int_equal(vfy_qe_report(r.v, &q, pck, qe, cases[i].at, &m, &e), cases[i].code);
		if (cases[i].window)
			assert_non_null(strstr(e.detail, cases[i].window));
		else
			assert_non_null(m.qe_level);
	}
	struct tdc_verifier_stats st;
	tdc_verifier_stats(r.v, &st);
	assert_int_equal(st.qe_report_misses, 1); /* every call above was a hit */
	vfy_cache_release(&r.v->cache, &qe->base);
	vfy_cache_release(&r.v->cache, &pck->base);
	vfy_cache_release(&r.v->cache, &root_crl->base);
	run_free(&r);

	/* and with the PCK certificate expiring first */
	o = base();
	o.pck_validity = (struct tdc_sim_window){ NOW - DAY, NOW + 2 * DAY };
	assert_int_equal(run_at(&r, &o, 0, NOW), 0);
	assert_int_equal(tdc_quote_parse(r.q, r.qlen, &q, NULL), 0);
	assert_int_equal(vfy_root_crl(r.v, &r.c.root_ca_crl, NOW, &root_crl, NULL), 0);
	assert_int_equal(vfy_qe_identity(r.v, &r.c, root_crl, NOW, &qe, NULL), 0);
	assert_int_equal(vfy_pck_chain(r.v, &q, root_crl, &r.c.pck_crl, NOW, &pck, NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(vfy_qe_report(r.v, &q, pck, qe, NOW + 2 * DAY + 1, &m, &e), TDC_E_EXPIRED);
	assert_non_null(strstr(e.detail, "PCK certificate valid"));
	vfy_cache_release(&r.v->cache, &qe->base);
	vfy_cache_release(&r.v->cache, &pck->base);
	vfy_cache_release(&r.v->cache, &root_crl->base);
	run_free(&r);
}

/* ---- CRL issuers, signer chain, collateral signatures ---- */

static void pck_crl_issued_by_root(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.pck_crl_issuer = TDC_SIM_CRL_BY_ROOT;
	reject(&o, TDC_E_CRL);
}

static void pck_crl_forged(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.pck_crl_issuer = TDC_SIM_CRL_FORGED;
	reject(&o, TDC_E_CRL);
}

static void root_crl_issued_by_pck_ca(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.root_crl_issuer = TDC_SIM_CRL_BY_PCK_CA;
	reject(&o, TDC_E_CRL);
}

static void root_crl_forged(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.root_crl_issuer = TDC_SIM_CRL_FORGED;
	reject(&o, TDC_E_CRL);
}

static void tcb_signer_from_other_root(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_signer_issuer = TDC_SIM_SIGNER_OTHER_ROOT;
	reject(&o, TDC_E_CHAIN);
}

static void tcb_signer_forged(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_signer_issuer = TDC_SIM_SIGNER_FORGED;
	reject(&o, TDC_E_CHAIN);
}

static void tcb_info_signed_by_other_key(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info_other_key = true;
	reject(&o, TDC_E_SIGNATURE);
}

static void qe_identity_signed_by_other_key(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.qe_identity_other_key = true;
	reject(&o, TDC_E_SIGNATURE);
}

/* ---- QE identity match ---- */

static void qe_mrsigner_mismatch(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.qe.mr_signer[31] ^= 1;
	reject(&o, TDC_E_QE_MISMATCH);
}

static void qe_isvprodid_mismatch(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.qe.isv_prod_id = 3;
	reject(&o, TDC_E_QE_MISMATCH);
}

static void qe_attributes_masked(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.qe.attributes[0] |= 0x02; /* DEBUG: inside the mask FB.. */
	reject(&o, TDC_E_QE_MISMATCH);
	o = base();
	o.qe.attributes[0] |= 0x04; /* outside the mask */
	o.qe.attributes[12] = 0xff; /* mask bytes 8..15 are zero */
	expect(&o, 0, TDC_TCB_UP_TO_DATE);
}

static void qe_miscselect_masked(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.qe.miscselect[0] = 1;
	reject(&o, TDC_E_QE_MISMATCH);
	o.qe_identity.miscselect_mask[0] = 0xfe;
	expect(&o, 0, TDC_TCB_UP_TO_DATE);
}

/* ---- collateral identity ---- */

static void fmspc_mismatch(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info.fmspc[5] = 1;
	reject(&o, TDC_E_COLLATERAL_MISMATCH);
}

static void pce_id_mismatch(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info.pce_id[1] = 1;
	reject(&o, TDC_E_COLLATERAL_MISMATCH);
}

static void tcb_info_id_sgx_rejected(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info.id = "SGX";
	reject(&o, TDC_E_COLLATERAL_MISMATCH);
}

static void tcb_info_version_2_rejected(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.tcb_info.version = 2;
	reject(&o, TDC_E_COLLATERAL_MISMATCH);
}

static void qe_identity_id_qe_rejected(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.qe_identity.id = "QE";
	reject(&o, TDC_E_COLLATERAL_MISMATCH);
}

static void min_eval_number(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	expect_at(&o, 17, NOW, 0, TDC_TCB_UP_TO_DATE);
	expect_at(&o, 18, NOW, TDC_E_STALE, TDC_TCB_UNKNOWN);
	/* the QE identity alone being older is enough */
	o.qe_identity.tcb_eval_num = 16;
	expect_at(&o, 17, NOW, TDC_E_STALE, TDC_TCB_UNKNOWN);
}

/* ---- platform TCB matching ---- */

static void no_matching_tcb_level(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.pck.sgx_svn[2] = 1; /* every level wants 2 */
	reject(&o, TDC_E_TCB_NOT_SUPPORTED);
}

static void pcesvn_below_all_levels(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.pck.pcesvn = 10;
	reject(&o, TDC_E_TCB_NOT_SUPPORTED);
}

static void tdx_component_below_all_levels(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.td.tee_tcb_svn[2] = 0; /* late microcode: levels want >= 1 */
	reject(&o, TDC_E_TCB_NOT_SUPPORTED);
}

/* ---- quote structure and signatures ---- */

static void cert_data_type_not_6(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.cert_data_type = 5;
	struct run r;
	int rc = run_at(&r, &o, 0, NOW);
	assert_int_equal(rc, TDC_E_FORMAT);
	assert_int_equal(r.e.offset, 764);
	run_free(&r);
}

static void inner_cert_type_not_5(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.inner_cert_type = 3;
	struct run r;
	int rc = run_at(&r, &o, 0, NOW);
	if (rc != TDC_E_UNSUPPORTED)
		show("inner type", rc, &r);
	assert_int_equal(rc, TDC_E_UNSUPPORTED);
	assert_int_equal(r.e.offset, 1252);
	run_free(&r);
}

static void qe_binding_broken(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.break_qe_binding = true;
	reject(&o, TDC_E_BINDING);
}

static void qe_report_signature_bad(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.break_qe_report_sig = true;
	reject(&o, TDC_E_SIGNATURE);
}

static void quote_signature_bad(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	o.break_quote_sig = true;
	reject(&o, TDC_E_SIGNATURE);
	o.quote_version = 5;
	o.body_type = 3;
	reject(&o, TDC_E_SIGNATURE);
}

/* The production verifier (Intel root pinned) refuses everything simulated;
 * the first thing it meets is the root CA CRL, not issued by Intel's root. */
static void intel_root_refuses_simulated_quote(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	struct run r;
	struct tdc_verifier *prod = NULL;
	assert_int_equal(run_at(&r, &o, 0, NOW), 0);
	struct tdc_verifier_opts vo = { 0 };
	assert_int_equal(tdc_verifier_new(&vo, &prod, NULL), 0);
	assert_false(tdc_verifier_is_test_root(prod));
	tdc_verdict_free(&r.out);
	tdc_error_clear(&r.e);
	int rc = tdc_verify_quote(prod, r.q, r.qlen, &r.c, NOW, &r.out, &r.e);
	if (rc != TDC_E_CRL)
		show("prod", rc, &r);
	assert_int_equal(rc, TDC_E_CRL);
	tdc_verifier_free(prod);
	run_free(&r);
}

/* A quote of another platform (other PKI) against this PKI's root and collateral. */
static void quote_from_other_pki(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	struct run r;
	struct tdc_sim_pki *other = NULL;
	uint8_t *q = NULL;
	size_t qlen = 0;
	assert_int_equal(run_at(&r, &o, 0, NOW), 0);
	assert_int_equal(tdc_sim_pki_new(&o, &other, NULL), 0);
	assert_int_equal(tdc_sim_quote(other, &o, &q, &qlen, NULL), 0);
	tdc_verdict_free(&r.out);
	tdc_error_clear(&r.e);
	int rc = tdc_verify_quote(r.v, q, qlen, &r.c, NOW, &r.out, &r.e);
	if (rc != TDC_E_CHAIN)
		show("other pki", rc, &r);
	free(q);
	tdc_sim_pki_free(other);
	run_free(&r);
	assert_int_equal(rc, TDC_E_CHAIN);
}

static void rm_dir(const char *dir)
{
	static const char *names[] = { "tcb_info.json", "tcb_info_issuer_chain.pem",
				       "qe_identity.json", "qe_identity_issuer_chain.pem",
				       "pck_crl.der", "pck_crl_issuer_chain.pem",
				       "root_ca_crl.der", "root.pem", "root.key", "pck-ca.pem",
				       "pck-ca.key", "tcb-signer.pem", "tcb-signer.key",
				       "pck.pem", "pck.key", "attestation.key" };
	char p[256];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

/* What `tdcrypt sim` does: PKI saved and loaded, collateral written as a
 * directory bundle, loaded by the collateral module, verified. */
static void saved_pki_and_bundle_verify(void **state)
{
	(void)state;
	struct tdc_sim_opts o = base();
	struct tdc_sim_pki *pki = NULL, *loaded = NULL;
	struct tdc_collateral c, c2;
	struct tdc_verifier *v = NULL;
	struct tdc_verdict out;
	struct tdc_error e;
	uint8_t *q = NULL;
	size_t qlen = 0;
	char tmpl[] = "/tmp/tdc-synth-XXXXXX", pki_dir[64], coll_dir[64];

	assert_non_null(mkdtemp(tmpl));
	snprintf(pki_dir, sizeof(pki_dir), "%s/pki", tmpl);
	snprintf(coll_dir, sizeof(coll_dir), "%s/collateral", tmpl);
	tdc_error_clear(&e);
	assert_int_equal(tdc_sim_pki_new(&o, &pki, &e), 0);
	assert_int_equal(tdc_sim_pki_save(pki, pki_dir, &e), 0);
	tdc_sim_pki_free(pki);
	assert_int_equal(tdc_sim_pki_load(pki_dir, &loaded, &e), 0);

	assert_int_equal(tdc_sim_collateral(loaded, &o, &c, &e), 0);
	assert_int_equal(tdc_sim_collateral_save(&c, coll_dir, &e), 0);
	tdc_collateral_free(&c);
	assert_int_equal(tdc_collateral_load(coll_dir, &c2, &e), 0);

	assert_int_equal(tdc_sim_quote(loaded, &o, &q, &qlen, &e), 0);
	const uint8_t *der;
	size_t der_len;
	tdc_sim_root_der(loaded, &der, &der_len);
	struct tdc_verifier_opts vo = { .test_root_der = der, .test_root_der_len = der_len };
	assert_int_equal(tdc_verifier_new(&vo, &v, &e), 0);
	int rc = tdc_verify_quote(v, q, qlen, &c2, NOW, &out, &e);
	char buf[512];
	if (rc)
		print_message("bundle: %s\n", tdc_error_format(&e, buf, sizeof(buf)));
	enum tdc_tcb_status st = out.status;

	tdc_verdict_free(&out);
	tdc_verifier_free(v);
	free(q);
	tdc_collateral_free(&c2);
	tdc_sim_pki_free(loaded);
	rm_dir(pki_dir);
	rm_dir(coll_dir);
	rmdir(tmpl);
	assert_int_equal(rc, 0);
	assert_int_equal(st, TDC_TCB_UP_TO_DATE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(baseline_v4_uptodate),
		cmocka_unit_test(baseline_v5_td15_uptodate),
		cmocka_unit_test(baseline_v5_td10_uptodate),
		cmocka_unit_test(trailing_padding_accepted),
		cmocka_unit_test(fmspc_lower_case_accepted),
		cmocka_unit_test(pck_revoked),
		cmocka_unit_test(pck_ca_on_root_crl),
		cmocka_unit_test(tcb_signer_on_root_crl),
		cmocka_unit_test(status_sw_hardening_needed),
		cmocka_unit_test(status_configuration_needed),
		cmocka_unit_test(status_configuration_and_sw_hardening_needed),
		cmocka_unit_test(status_out_of_date),
		cmocka_unit_test(status_out_of_date_configuration_needed),
		cmocka_unit_test(older_platform_matches_lower_level),
		cmocka_unit_test(tcb_level_revoked),
		cmocka_unit_test(unknown_status_rejected),
		cmocka_unit_test(qe_level_out_of_date),
		cmocka_unit_test(qe_out_of_date_with_configuration_needed),
		cmocka_unit_test(qe_level_revoked),
		cmocka_unit_test(qe_isvsvn_below_all_levels),
		cmocka_unit_test(module_out_of_date),
		cmocka_unit_test(module_out_of_date_with_configuration_needed),
		cmocka_unit_test(module_out_of_date_with_sw_hardening),
		cmocka_unit_test(module_level_revoked),
		cmocka_unit_test(module_svn_below_all_levels),
		cmocka_unit_test(module_version_skips_tdx_components_0_1),
		cmocka_unit_test(module_identity_missing),
		cmocka_unit_test(module_id_case_insensitive),
		cmocka_unit_test(module_mrsignerseam_differs),
		cmocka_unit_test(module_seamattributes_nonzero),
		cmocka_unit_test(module_version_0_uses_tdx_module),
		cmocka_unit_test(td_relaunch_advised),
		cmocka_unit_test(window_tcb_info),
		cmocka_unit_test(window_qe_identity),
		cmocka_unit_test(window_pck_crl),
		cmocka_unit_test(window_root_crl),
		cmocka_unit_test(window_pck_leaf),
		cmocka_unit_test(window_pck_ca),
		cmocka_unit_test(window_tcb_signer),
		cmocka_unit_test(window_root),
		cmocka_unit_test(window_end_inclusive_collateral),
		cmocka_unit_test(window_end_inclusive_crls),
		cmocka_unit_test(window_end_inclusive_certs),
		cmocka_unit_test(cached_collateral_rechecks_time),
		cmocka_unit_test(cached_qe_report_rechecks_time),
		cmocka_unit_test(qe_report_entry_checks_its_windows),
		cmocka_unit_test(pck_crl_issued_by_root),
		cmocka_unit_test(pck_crl_forged),
		cmocka_unit_test(root_crl_issued_by_pck_ca),
		cmocka_unit_test(root_crl_forged),
		cmocka_unit_test(tcb_signer_from_other_root),
		cmocka_unit_test(tcb_signer_forged),
		cmocka_unit_test(tcb_info_signed_by_other_key),
		cmocka_unit_test(qe_identity_signed_by_other_key),
		cmocka_unit_test(qe_mrsigner_mismatch),
		cmocka_unit_test(qe_isvprodid_mismatch),
		cmocka_unit_test(qe_attributes_masked),
		cmocka_unit_test(qe_miscselect_masked),
		cmocka_unit_test(fmspc_mismatch),
		cmocka_unit_test(pce_id_mismatch),
		cmocka_unit_test(tcb_info_id_sgx_rejected),
		cmocka_unit_test(tcb_info_version_2_rejected),
		cmocka_unit_test(qe_identity_id_qe_rejected),
		cmocka_unit_test(min_eval_number),
		cmocka_unit_test(no_matching_tcb_level),
		cmocka_unit_test(pcesvn_below_all_levels),
		cmocka_unit_test(tdx_component_below_all_levels),
		cmocka_unit_test(cert_data_type_not_6),
		cmocka_unit_test(inner_cert_type_not_5),
		cmocka_unit_test(qe_binding_broken),
		cmocka_unit_test(qe_report_signature_bad),
		cmocka_unit_test(quote_signature_bad),
		cmocka_unit_test(intel_root_refuses_simulated_quote),
		cmocka_unit_test(quote_from_other_pki),
		cmocka_unit_test(saved_pki_and_bundle_verify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
