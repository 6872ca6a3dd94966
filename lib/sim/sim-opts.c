/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The baseline simulated platform: one PCK whose TCB equals the newest TCB
 * level, TDX module 1.x (TDX_01), a TD_QE shaped like Intel's current one.
 */
#include <string.h>

#include "tdcrypt/sim.h"

#define DAY (24 * 3600)

static const uint8_t pck_sgx_svn[16] = { 7, 7, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0 };
static const uint8_t intel_vendor_id[16] = { 0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
					     0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07 };
/* Intel's TD_QE MRSIGNER. */
static const uint8_t qe_mrsigner[32] = { 0xdc, 0x9e, 0x2a, 0x7c, 0x6f, 0x94, 0x8f, 0x17,
					 0x47, 0x4e, 0x34, 0xa7, 0xfc, 0x43, 0xed, 0x03,
					 0x0f, 0x7c, 0x15, 0x63, 0xf1, 0xba, 0xbd, 0xdf,
					 0x63, 0x40, 0xc8, 0x2e, 0x0e, 0x54, 0xa8, 0xc5 };

static struct tdc_sim_window around(int64_t now, int64_t before, int64_t after)
{
	return (struct tdc_sim_window){ now - before, now + after };
}

static void platform_level(struct tdc_sim_tcb_level *l, const uint8_t sgx[16], uint16_t pcesvn,
			   uint8_t module_svn, uint8_t microcode, int64_t date, const char *status)
{
	memset(l, 0, sizeof(*l));
	memcpy(l->sgx_svn, sgx, 16);
	l->pcesvn = pcesvn;
	l->tdx_svn[0] = module_svn;
	l->tdx_svn[1] = 1;
	l->tdx_svn[2] = microcode;
	l->tcb_date = date;
	l->status = status;
}

static void tcb_info_default(struct tdc_sim_tcb_info *t, const struct tdc_sim_pck *pck,
			     int64_t now)
{
	t->id = "TDX";
	t->version = 3;
	t->dates = around(now, DAY, 29 * DAY);
	memcpy(t->fmspc, pck->fmspc, 6);
	memcpy(t->pce_id, pck->pce_id, 2);
	t->tcb_type = 0;
	t->tcb_eval_num = 17;
	t->has_tdx_module = true;
	memset(t->module_attributes_mask, 0xff, 8);

	t->has_module_identities = true;
	t->n_modules = 1;
	struct tdc_sim_module *m = &t->modules[0];
	m->id = "TDX_01";
	memset(m->attributes_mask, 0xff, 8);
	m->n_levels = 2;
	m->levels[0] = (struct tdc_sim_isv_level){ 5, now - 100 * DAY, "UpToDate", { NULL } };
	m->levels[1] = (struct tdc_sim_isv_level){ 3, now - 400 * DAY, "OutOfDate",
						   { "INTEL-SA-00960", NULL } };

	uint8_t older[16];
	memcpy(older, pck->sgx_svn, 16);
	older[0]--;
	older[1]--;
	older[7]--;
	uint8_t oldest[16];
	memcpy(oldest, older, 16);
	oldest[0] -= 2;
	oldest[1] -= 2;
	oldest[7]--;

	t->n_levels = 3;
	platform_level(&t->levels[0], pck->sgx_svn, pck->pcesvn, 5, 2, now - 100 * DAY,
		       "UpToDate");
	platform_level(&t->levels[1], older, pck->pcesvn, 3, 2, now - 400 * DAY, "OutOfDate");
	t->levels[1].advisories[0] = "INTEL-SA-00960";
	t->levels[1].advisories[1] = "INTEL-SA-00982";
	platform_level(&t->levels[2], oldest, (uint16_t)(pck->pcesvn - 2), 2, 1, now - 700 * DAY,
		       "OutOfDate");
	t->levels[2].advisories[0] = "INTEL-SA-00837";
	t->levels[2].advisories[1] = "INTEL-SA-00960";
	t->levels[2].advisories[2] = "INTEL-SA-00982";
}

static void qe_identity_default(struct tdc_sim_qe_identity *q, int64_t now)
{
	q->id = "TD_QE";
	q->version = 2;
	q->dates = around(now, DAY, 29 * DAY);
	q->tcb_eval_num = 17;
	memset(q->miscselect_mask, 0xff, 4);
	q->attributes[0] = 0x11;
	memset(q->attributes_mask, 0xff, 8);
	q->attributes_mask[0] = 0xfb;
	memcpy(q->mrsigner, qe_mrsigner, 32);
	q->isvprodid = 2;
	q->n_levels = 2;
	q->levels[0] = (struct tdc_sim_isv_level){ 4, now - 100 * DAY, "UpToDate", { NULL } };
	q->levels[1] = (struct tdc_sim_isv_level){ 2, now - 400 * DAY, "OutOfDate",
						   { "INTEL-SA-00615", NULL } };
}

void tdc_sim_opts_default(struct tdc_sim_opts *o, int64_t now)
{
	memset(o, 0, sizeof(*o));

	o->root_validity = around(now, 2 * 365 * DAY, 20 * 365 * DAY);
	o->pck_ca_validity = around(now, 2 * 365 * DAY, 10 * 365 * DAY);
	o->tcb_signer_validity = around(now, 365 * DAY, 7 * 365 * DAY);
	o->pck_validity = around(now, 180 * DAY, 7 * 365 * DAY);

	struct tdc_sim_pck *p = &o->pck;
	memset(p->ppid, 0x11, 16);
	memcpy(p->sgx_svn, pck_sgx_svn, 16);
	p->pcesvn = 13;
	memcpy(p->cpusvn, pck_sgx_svn, 16);
	static const uint8_t fmspc[6] = { 0xb0, 0xc0, 0x6f, 0x00, 0x00, 0x00 };
	memcpy(p->fmspc, fmspc, 6);
	p->sgx_type = 0;
	memset(p->platform_instance_id, 0x22, 16);
	p->cached_keys = true;
	p->smt_enabled = true;

	o->quote_version = 4;
	o->body_type = 2;
	o->att_key_type = 2;
	o->tee_type = 0x81;
	memcpy(o->qe_vendor_id, intel_vendor_id, 16);
	memset(o->user_data, 0x5a, 16);

	struct tdc_td_report *td = &o->td;
	td->tee_tcb_svn[0] = 5; /* module SVN */
	td->tee_tcb_svn[1] = 1; /* module major version: TDX_01 */
	td->tee_tcb_svn[2] = 2; /* late microcode SVN */
	memset(td->mrseam, 0x5e, 48);
	td->td_attributes[3] = 0x10; /* SEPT_VE_DISABLE */
	static const uint8_t xfam[8] = { 0xe7, 0x02, 0x06, 0x00, 0, 0, 0, 0 };
	memcpy(td->xfam, xfam, 8);
	memset(td->mrtd, 0xa1, 48);
	for (int i = 0; i < 3; i++)
		memset(td->rtmr[i], 0xb0 + i, 48);
	for (int i = 0; i < 64; i++)
		td->report_data[i] = (uint8_t)i;
	memcpy(td->tee_tcb_svn2, td->tee_tcb_svn, 16);

	struct tdc_sim_qe_report *q = &o->qe;
	memcpy(q->cpu_svn, p->cpusvn, 16);
	q->attributes[0] = 0x11;
	memset(q->mr_enclave, 0x3c, 32);
	memcpy(q->mr_signer, qe_mrsigner, 32);
	q->isv_prod_id = 2;
	q->isv_svn = 4;

	o->cert_data_type = 6;
	o->inner_cert_type = 5;
	o->qe_auth_data_len = 32;
	o->pem_trailing_nul = true;

	tcb_info_default(&o->tcb_info, p, now);
	qe_identity_default(&o->qe_identity, now);
	o->root_crl_window = around(now, 10 * DAY, 355 * DAY);
	o->pck_crl_window = around(now, DAY, 29 * DAY);
	o->n_other_revoked = 2;
	o->other_revoked[0] = 0x1234567;
	o->other_revoked[1] = 0xdeadbeefcafe;
}
