/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Each matching check of lib/verify failing alone (steps 8, 9, 11, 12, 13 and
 * the FMSPC/PCE-ID match), on the parsed dcap-qvl vector with one field
 * changed, plus Intel's status convergence table and the TD 1.5 relaunch
 * check on hand-made levels.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/util.h"
#include "verify/verify_int.h"

struct fixture {
	uint8_t *raw;
	size_t raw_len;
	struct tdc_quote q;
	struct tdc_collateral c;
	struct tdc_tcb_info ti;
	struct tdc_qe_identity qi;
	struct tdc_pck_ext ext;
};

static int setup(void **state)
{
	const char *dir = getenv("TDC_TESTDATA");
	char path[4096];
	struct fixture *f = calloc(1, sizeof(*f));
	STACK_OF(X509) *chain = NULL;
	if (!f || !dir)
		return -1;
	snprintf(path, sizeof(path), "%s/dcap-qvl/tdx_quote", dir);
	if (tdc_file_read(path, 1u << 20, &f->raw, &f->raw_len, NULL) < 0 ||
	    tdc_quote_parse(f->raw, f->raw_len, &f->q, NULL) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/dcap-qvl/tdx_quote_collateral.json", dir);
	if (tdc_collateral_load(path, &f->c, NULL) < 0 ||
	    tdc_tcb_info_parse(f->c.tcb_info.data, f->c.tcb_info.len, &f->ti, NULL) < 0 ||
	    tdc_qe_identity_parse(f->c.qe_identity.data, f->c.qe_identity.len, &f->qi, NULL) < 0)
		return -1;
	if (tdc_pem_chain_parse(tdc_rd_ptr(&f->q.cert_data), tdc_rd_len(&f->q.cert_data), 3, &chain,
				NULL) < 0)
		return -1;
	int rc = tdc_pck_ext_parse(sk_X509_value(chain, 0), &f->ext, NULL);
	sk_X509_pop_free(chain, X509_free);
	*state = f;
	return rc;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tdc_tcb_info_free(&f->ti);
	tdc_qe_identity_free(&f->qi);
	tdc_collateral_free(&f->c);
	free(f->raw);
	free(f);
	return 0;
}

/* Runs steps 11, 9, 12, 13 on (possibly edited) copies; returns the first error. */
static int run(const struct tdc_tcb_info *ti, const struct tdc_qe_identity *qi,
	       const struct tdc_pck_ext *ext, const struct tdc_quote *q, enum tdc_tcb_status *st)
{
	struct vfy_match m = { 0 };
	struct tdc_error e;
	tdc_error_clear(&e);
	TDC_GUARD(vfy_match_module_identity(ti, q, &m, &e));
	TDC_GUARD(vfy_match_qe(qi, &q->qe_report, &m, &e));
	TDC_GUARD(vfy_match_platform(ti, ext, q, &m, &e));
	return vfy_combine(ti, q, &m, st, &e);
}

static void baseline_up_to_date(void **state)
{
	struct fixture *f = *state;
	enum tdc_tcb_status st;
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &f->q, &st), 0);
	assert_int_equal(st, TDC_TCB_UP_TO_DATE);
	assert_int_equal(vfy_pck_matches_tcb_info(&f->ext, &f->ti, NULL), 0);
}

static void module_checks(void **state)
{
	struct fixture *f = *state;
	struct tdc_quote q;
	enum tdc_tcb_status st;

	q = f->q;
	q.td.tee_tcb_svn[1] = 2; /* no TDX_02 identity */
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), TDC_E_MODULE_MISMATCH);
	q = f->q;
	q.td.mrsignerseam[47] ^= 1;
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), TDC_E_MODULE_MISMATCH);
	q = f->q;
	q.td.seam_attributes[7] = 0x80;
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), TDC_E_MODULE_MISMATCH);

	/* TDX_03 (isvsvn 3 UpToDate) matches; identity ids compare case-insensitively. */
	q = f->q;
	q.td.tee_tcb_svn[1] = 3;
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), 0);
	assert_int_equal(st, TDC_TCB_UP_TO_DATE);
	struct tdc_tcb_info ti = f->ti;
	struct tdc_module_identity mods[TDC_MAX_MODULE_IDENTITIES];
	assert_true(ti.n_modules <= TDC_MAX_MODULE_IDENTITIES);
	memcpy(mods, ti.modules, ti.n_modules * sizeof(mods[0]));
	for (size_t i = 0; i < ti.n_modules; i++)
		if (!strcmp(mods[i].id, "TDX_03"))
			strcpy(mods[i].id, "tdx_03");
	ti.modules = mods;
	assert_int_equal(run(&ti, &f->qi, &f->ext, &q, &st), 0);

	/* TDX_01 levels: isvsvn 4 UpToDate, 2 OutOfDate; below 2: not supported. */
	q = f->q;
	q.td.tee_tcb_svn[0] = 3;
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), 0);
	assert_int_equal(st, TDC_TCB_OUT_OF_DATE);
	q.td.tee_tcb_svn[0] = 1;
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), TDC_E_TCB_NOT_SUPPORTED);

	/* Version 0: the tdxModule applies, no module level; bytes 0..1 are matched. */
	q = f->q;
	q.td.tee_tcb_svn[1] = 0;
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), 0);
	assert_int_equal(st, TDC_TCB_UP_TO_DATE);
	q.td.tee_tcb_svn[0] = 4; /* below tdxtcbcomponents[0] = 5 */
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), TDC_E_TCB_NOT_SUPPORTED);
	q.td.tee_tcb_svn[0] = 6;
	ti = f->ti;
	ti.has_tdx_module = false;
	assert_int_equal(run(&ti, &f->qi, &f->ext, &q, &st), TDC_E_MODULE_MISMATCH);
}

static void qe_checks(void **state)
{
	struct fixture *f = *state;
	struct tdc_quote q;
	enum tdc_tcb_status st;

	q = f->q;
	q.qe_report.miscselect[0] |= 1;
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), TDC_E_QE_MISMATCH);
	q = f->q;
	q.qe_report.attributes[0] |= 0x02; /* SGX DEBUG: inside the mask */
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), TDC_E_QE_MISMATCH);
	q = f->q;
	q.qe_report.attributes[0] ^= 0x04; /* outside the mask: ignored */
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), 0);
	q = f->q;
	q.qe_report.mr_signer[0] ^= 1;
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), TDC_E_QE_MISMATCH);
	q = f->q;
	q.qe_report.isv_prod_id++;
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), TDC_E_QE_MISMATCH);
	q = f->q;
	q.qe_report.isv_svn = 3; /* the only level is isvsvn 4 */
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), TDC_E_TCB_NOT_SUPPORTED);
}

static void platform_checks(void **state)
{
	struct fixture *f = *state;
	struct tdc_quote q = f->q;
	struct tdc_pck_ext ext;
	enum tdc_tcb_status st;

	ext = f->ext;
	ext.pcesvn = 10; /* second level (pcesvn 5): OutOfDate */
	assert_int_equal(run(&f->ti, &f->qi, &ext, &q, &st), 0);
	assert_int_equal(st, TDC_TCB_OUT_OF_DATE);
	ext.pcesvn = 4;
	assert_int_equal(run(&f->ti, &f->qi, &ext, &q, &st), TDC_E_TCB_NOT_SUPPORTED);
	ext = f->ext;
	ext.sgx_svn[7] = 4; /* below comp08 = 5 of every level */
	assert_int_equal(run(&f->ti, &f->qi, &ext, &q, &st), TDC_E_TCB_NOT_SUPPORTED);
	q.td.tee_tcb_svn[2] = 1; /* SGX matches, TDX comp 2 below every level */
	assert_int_equal(run(&f->ti, &f->qi, &f->ext, &q, &st), TDC_E_TCB_NOT_SUPPORTED);

	ext = f->ext;
	ext.fmspc[5] ^= 1;
	assert_int_equal(vfy_pck_matches_tcb_info(&ext, &f->ti, NULL), TDC_E_COLLATERAL_MISMATCH);
	ext = f->ext;
	ext.pce_id[1] ^= 1;
	assert_int_equal(vfy_pck_matches_tcb_info(&ext, &f->ti, NULL), TDC_E_COLLATERAL_MISMATCH);
}

static void binding_checks(void **state)
{
	struct fixture *f = *state;
	struct tdc_verifier *v = NULL;
	struct tdc_error e;
	struct tdc_quote q;
	assert_int_equal(tdc_verifier_new(NULL, &v, NULL), 0);
	assert_int_equal(vfy_qe_binding(v, &f->q, NULL), 0);

	q = f->q;
	q.qe_report.report_data[5] ^= 1;
	tdc_error_clear(&e);
	assert_int_equal(vfy_qe_binding(v, &q, &e), TDC_E_BINDING);
	assert_int_equal(e.offset, 770 + 320); /* v4: QE report at 770 */
	q = f->q;
	q.qe_report.report_data[40] = 1;
	tdc_error_clear(&e);
	assert_int_equal(vfy_qe_binding(v, &q, &e), TDC_E_BINDING);
	assert_int_equal(e.offset, 770 + 352);
	q = f->q;
	q.attestation_key[0] ^= 1;
	assert_int_equal(vfy_qe_binding(v, &q, NULL), TDC_E_BINDING);
	tdc_verifier_free(v);
}

/* ---- convergence on hand-made levels ---- */

struct levels {
	struct tdc_tcb_level plat, sgx, latest;
	struct tdc_isv_level module, qe, module2;
	struct tdc_module_identity mod2;
	struct tdc_tcb_info ti;
	struct tdc_quote q;
	struct vfy_match m;
};

static void levels_init(struct levels *l, enum tdc_tcb_status sgx, enum tdc_tcb_status plat,
			int module, enum tdc_tcb_status qe)
{
	memset(l, 0, sizeof(*l));
	l->sgx.status = sgx;
	l->plat.status = plat;
	l->qe.status = qe;
	l->m.sgx_level = &l->sgx;
	l->m.tdx_level = &l->plat;
	l->m.qe_level = &l->qe;
	if (module >= 0) {
		l->module.status = (enum tdc_tcb_status)module;
		l->m.module_level = &l->module;
	}
	l->latest.status = TDC_TCB_UP_TO_DATE;
	l->latest.tdx_svn[0] = 5;
	l->latest.tdx_svn[2] = 2;
	l->ti.levels = &l->latest;
	l->ti.n_levels = 1;
	strcpy(l->mod2.id, "TDX_03");
	l->module2.isvsvn = 7;
	l->mod2.levels = &l->module2;
	l->mod2.n_levels = 1;
	l->ti.modules = &l->mod2;
	l->ti.n_modules = 1;
	l->q.body_type = TDC_BODY_TD10;
}

static enum tdc_tcb_status combined(struct levels *l)
{
	enum tdc_tcb_status st = TDC_TCB_UNKNOWN;
	assert_int_equal(vfy_combine(&l->ti, &l->q, &l->m, &st, NULL), 0);
	return st;
}

#define UTD TDC_TCB_UP_TO_DATE
#define SWH TDC_TCB_SW_HARDENING_NEEDED
#define CFG TDC_TCB_CONFIGURATION_NEEDED
#define CSW TDC_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED
#define OOD TDC_TCB_OUT_OF_DATE
#define OODC TDC_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED
#define REV TDC_TCB_REVOKED

static void convergence_table(void **state)
{
	(void)state;
	static const struct {
		enum tdc_tcb_status plat;
		int module; /* -1: no module identity applies */
		enum tdc_tcb_status qe, want;
	} rows[] = {
		{ UTD, UTD, UTD, UTD }, { SWH, -1, UTD, SWH },	 { CFG, UTD, UTD, CFG },
		{ UTD, OOD, UTD, OOD }, { SWH, OOD, UTD, OOD },	 { CFG, OOD, UTD, OODC },
		{ CSW, OOD, UTD, OODC }, { OOD, OOD, UTD, OOD }, { OODC, OOD, UTD, OODC },
		{ UTD, UTD, OOD, OOD }, { SWH, -1, OOD, OOD },	 { CFG, UTD, OOD, OODC },
		{ CSW, -1, OOD, OODC }, { UTD, REV, UTD, REV },	 { UTD, UTD, REV, REV },
		{ REV, UTD, UTD, REV }, { OOD, -1, UTD, OOD },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct levels l;
		levels_init(&l, rows[i].plat, rows[i].plat, rows[i].module, rows[i].qe);
		enum tdc_tcb_status got = combined(&l);
		if (got != rows[i].want)
			fail_msg("row %zu: want %s, got %s", i, tdc_tcb_status_name(rows[i].want),
				 tdc_tcb_status_name(got));
	}
}

static void relaunch_check(void **state)
{
	(void)state;
	struct levels l;

	/* TD 1.5, module OutOfDate, TEE_TCB_SVN2 reaches the newest level: relaunch. */
	levels_init(&l, UTD, UTD, OOD, UTD);
	l.q.body_type = TDC_BODY_TD15;
	l.q.td.tee_tcb_svn2[0] = 5;
	l.q.td.tee_tcb_svn2[2] = 2;
	assert_int_equal(combined(&l), TDC_TCB_TD_RELAUNCH_ADVISED);
	/* A configuration-needed SGX level carries over. */
	l.sgx.status = CFG;
	l.plat.status = CFG;
	assert_int_equal(combined(&l), TDC_TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED);
	/* SVN2 below the newest level: stays OutOfDate. */
	levels_init(&l, UTD, UTD, OOD, UTD);
	l.q.body_type = TDC_BODY_TD15;
	l.q.td.tee_tcb_svn2[0] = 4;
	l.q.td.tee_tcb_svn2[2] = 2;
	assert_int_equal(combined(&l), OOD);
	/* TD 1.0 bodies never get the relaunch status. */
	levels_init(&l, UTD, UTD, OOD, UTD);
	l.q.td.tee_tcb_svn2[0] = 5;
	l.q.td.tee_tcb_svn2[2] = 2;
	assert_int_equal(combined(&l), OOD);
	/* QE OutOfDate: no relaunch. */
	levels_init(&l, UTD, UTD, OOD, OOD);
	l.q.body_type = TDC_BODY_TD15;
	l.q.td.tee_tcb_svn2[0] = 5;
	l.q.td.tee_tcb_svn2[2] = 2;
	assert_int_equal(combined(&l), OOD);
	/* Updated module version 3: judged by TDX_03's newest level (isvsvn 7). */
	levels_init(&l, UTD, UTD, OOD, UTD);
	l.q.body_type = TDC_BODY_TD15;
	l.q.td.tee_tcb_svn2[1] = 3;
	l.q.td.tee_tcb_svn2[2] = 2;
	l.q.td.tee_tcb_svn2[0] = 7;
	assert_int_equal(combined(&l), TDC_TCB_TD_RELAUNCH_ADVISED);
	l.q.td.tee_tcb_svn2[0] = 6;
	assert_int_equal(combined(&l), OOD);
	/* ... and an unknown updated module version is a module mismatch. */
	l.q.td.tee_tcb_svn2[1] = 9;
	enum tdc_tcb_status st;
	assert_int_equal(vfy_combine(&l.ti, &l.q, &l.m, &st, NULL), TDC_E_MODULE_MISMATCH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(baseline_up_to_date), cmocka_unit_test(module_checks),
		cmocka_unit_test(qe_checks),	       cmocka_unit_test(platform_checks),
		cmocka_unit_test(binding_checks),      cmocka_unit_test(convergence_table),
		cmocka_unit_test(relaunch_check),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
