/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Matching the quote against verified collateral (steps 9, 11, 12, 13):
 * TDX module identity, QE identity, platform TCB level, and Intel's
 * convergence of the statuses including the TD 1.5 relaunch check.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"
#include "verify/verify_int.h"

static bool is_isv_status(enum tdc_tcb_status s)
{
	return s == TDC_TCB_UP_TO_DATE || s == TDC_TCB_OUT_OF_DATE || s == TDC_TCB_REVOKED;
}

static bool is_platform_status(enum tdc_tcb_status s)
{
	switch (s) {
	case TDC_TCB_UP_TO_DATE:
	case TDC_TCB_SW_HARDENING_NEEDED:
	case TDC_TCB_CONFIGURATION_NEEDED:
	case TDC_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED:
	case TDC_TCB_OUT_OF_DATE:
	case TDC_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED:
	case TDC_TCB_REVOKED:
		return true;
	default:
		return false;
	}
}

static const struct tdc_module_identity *find_module(const struct tdc_tcb_info *ti, uint8_t ver)
{
	char want[8];
	snprintf(want, sizeof(want), "TDX_%02X", ver);
	for (size_t i = 0; i < ti->n_modules; i++)
		if (strcasecmp(ti->modules[i].id, want) == 0)
			return &ti->modules[i];
	return NULL;
}

int vfy_match_module_identity(const struct tdc_tcb_info *ti, const struct tdc_quote *q,
			      struct vfy_match *m, struct tdc_error *e)
{
	const uint8_t ver = q->td.tee_tcb_svn[1];
	const uint8_t *mrsigner, *attributes;

	m->module = NULL;
	if (ver == 0) {
		/* TDX 1.0 modules: the TCB info's tdxModule applies, no module TCB level. */
		if (!ti->has_tdx_module)
			return TDC_FAIL(e, TDC_E_MODULE_MISMATCH, "TCB info has no tdxModule");
		mrsigner = ti->module_mrsigner;
		attributes = ti->module_attributes;
	} else {
		m->module = find_module(ti, ver);
		if (!m->module)
			return TDC_FAILF(
				e, TDC_E_MODULE_MISMATCH,
				"TCB info has no identity for this TDX module version",
				"TEE_TCB_SVN[1] = %u, no \"TDX_%02X\" in tdxModuleIdentities", ver,
				ver);
		mrsigner = m->module->mrsigner;
		attributes = m->module->attributes;
	}
	if (memcmp(q->td.mrsignerseam, mrsigner, 48) != 0)
		return TDC_FAIL(e, TDC_E_MODULE_MISMATCH,
				"MRSIGNERSEAM differs from the TDX module identity's mrsigner");
	/* Intel's rule: every SEAMATTRIBUTES byte zero and equal to the expected value
	 * (the mask is ignored). */
	for (size_t i = 0; i < 8; i++)
		if (q->td.seam_attributes[i] != 0 || attributes[i] != 0)
			return TDC_FAILF(e, TDC_E_MODULE_MISMATCH, "SEAMATTRIBUTES not zero",
					 "byte %zu: quote %02x, expected %02x", i,
					 q->td.seam_attributes[i], attributes[i]);
	return 0;
}

int vfy_match_qe(const struct tdc_qe_identity *qi, const struct tdc_qe_report *r,
		 struct vfy_match *m, struct tdc_error *e)
{
	for (size_t i = 0; i < 4; i++)
		if ((r->miscselect[i] & qi->miscselect_mask[i]) != qi->miscselect[i])
			return TDC_FAIL(e, TDC_E_QE_MISMATCH,
					"QE MISCSELECT does not match the QE identity");
	for (size_t i = 0; i < 16; i++)
		if ((r->attributes[i] & qi->attributes_mask[i]) != qi->attributes[i])
			return TDC_FAIL(e, TDC_E_QE_MISMATCH,
					"QE ATTRIBUTES do not match the QE identity");
	if (memcmp(r->mr_signer, qi->mrsigner, 32) != 0)
		return TDC_FAIL(e, TDC_E_QE_MISMATCH, "QE MRSIGNER differs from the QE identity");
	if (r->isv_prod_id != qi->isvprodid)
		return TDC_FAILF(e, TDC_E_QE_MISMATCH, "QE ISVPRODID differs from the QE identity",
				 "report %u, identity %u", r->isv_prod_id, qi->isvprodid);

	m->qe_level = NULL;
	for (size_t i = 0; i < qi->n_levels && !m->qe_level; i++)
		if (qi->levels[i].isvsvn <= r->isv_svn)
			m->qe_level = &qi->levels[i];
	if (!m->qe_level)
		return TDC_FAILF(e, TDC_E_TCB_NOT_SUPPORTED, "no QE identity TCB level matches",
				 "QE ISVSVN %u", r->isv_svn);
	if (!is_isv_status(m->qe_level->status))
		return TDC_FAILF(e, TDC_E_UNSUPPORTED, "unrecognised QE TCB status", "%s",
				 tdc_tcb_status_name(m->qe_level->status));
	return 0;
}

static bool sgx_ok(const struct tdc_pck_ext *ext, const struct tdc_tcb_level *l)
{
	for (size_t i = 0; i < 16; i++)
		if (ext->sgx_svn[i] < l->sgx_svn[i])
			return false;
	return ext->pcesvn >= l->pcesvn;
}

static bool tdx_ok(const uint8_t svn[16], const struct tdc_tcb_level *l)
{
	/* With a module version, bytes 0 and 1 are judged by the module identity. */
	for (size_t i = svn[1] > 0 ? 2 : 0; i < 16; i++)
		if (svn[i] < l->tdx_svn[i])
			return false;
	return true;
}

int vfy_match_platform(const struct tdc_tcb_info *ti, const struct tdc_pck_ext *ext,
		       const struct tdc_quote *q, struct vfy_match *m, struct tdc_error *e)
{
	m->sgx_level = m->tdx_level = NULL;
	for (size_t i = 0; i < ti->n_levels && !m->tdx_level; i++) {
		const struct tdc_tcb_level *l = &ti->levels[i];
		if (!sgx_ok(ext, l))
			continue;
		if (!m->sgx_level)
			m->sgx_level = l;
		if (tdx_ok(q->td.tee_tcb_svn, l))
			m->tdx_level = l;
	}
	if (!m->sgx_level)
		return TDC_FAILF(e, TDC_E_TCB_NOT_SUPPORTED, "no TCB level matches the platform",
				 "PCK SGX components / PCESVN %u below every level", ext->pcesvn);
	if (!m->tdx_level)
		return TDC_FAIL(e, TDC_E_TCB_NOT_SUPPORTED,
				"no TCB level matches the platform's TEE_TCB_SVN");
	if (!is_platform_status(m->tdx_level->status) || !is_platform_status(m->sgx_level->status))
		return TDC_FAILF(e, TDC_E_UNSUPPORTED, "unrecognised platform TCB status", "%s",
				 tdc_tcb_status_name(m->tdx_level->status));

	m->module_level = NULL;
	if (m->module) {
		const uint8_t isvsvn = q->td.tee_tcb_svn[0];
		for (size_t i = 0; i < m->module->n_levels && !m->module_level; i++)
			if (isvsvn >= m->module->levels[i].isvsvn)
				m->module_level = &m->module->levels[i];
		if (!m->module_level)
			return TDC_FAILF(e, TDC_E_TCB_NOT_SUPPORTED,
					 "no TDX module TCB level matches",
					 "%s: TEE_TCB_SVN[0] = %u", m->module->id, isvsvn);
		if (!is_isv_status(m->module_level->status))
			return TDC_FAILF(e, TDC_E_UNSUPPORTED, "unrecognised TDX module TCB status",
					 "%s", tdc_tcb_status_name(m->module_level->status));
	}
	return 0;
}

/* Intel convergeTcbStatusWith{TdxModule,Qe}TcbStatus: an OutOfDate module or QE
 * degrades the status; a Revoked one revokes it. */
static enum tdc_tcb_status converge(enum tdc_tcb_status s, enum tdc_tcb_status other)
{
	if (other == TDC_TCB_OUT_OF_DATE) {
		if (s == TDC_TCB_UP_TO_DATE || s == TDC_TCB_SW_HARDENING_NEEDED)
			return TDC_TCB_OUT_OF_DATE;
		if (s == TDC_TCB_CONFIGURATION_NEEDED ||
		    s == TDC_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED)
			return TDC_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED;
	}
	if (other == TDC_TCB_REVOKED)
		return TDC_TCB_REVOKED;
	return s;
}

static bool config_needed(enum tdc_tcb_status s)
{
	return s == TDC_TCB_CONFIGURATION_NEEDED || s == TDC_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED ||
	       s == TDC_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED ||
	       s == TDC_TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED;
}

/* Intel's order of TCB levels: descending by (SGX comps, PCESVN, TDX comps). */
static int level_cmp(const struct tdc_tcb_level *a, const struct tdc_tcb_level *b)
{
	int c = memcmp(a->sgx_svn, b->sgx_svn, 16);
	if (c != 0)
		return c;
	if (a->pcesvn != b->pcesvn)
		return a->pcesvn < b->pcesvn ? -1 : 1;
	return memcmp(a->tdx_svn, b->tdx_svn, 16);
}

/*
 * TDRelaunchCheck: a TD 1.5 whose TDX module was updated in place (TD-preserving)
 * reports the new SVNs in TEE_TCB_SVN2; if they reach the newest level, relaunching
 * the TD would make it current.
 */
static int relaunch(const struct tdc_tcb_info *ti, const struct tdc_quote *q,
		    const struct vfy_match *m, enum tdc_tcb_status sgx_status,
		    enum tdc_tcb_status module_status, enum tdc_tcb_status *tdx_status,
		    struct tdc_error *e)
{
	const uint8_t *svn2 = q->td.tee_tcb_svn2;
	const enum tdc_tcb_status qe = m->qe_level->status;

	if (qe == TDC_TCB_OUT_OF_DATE || qe == TDC_TCB_REVOKED)
		return 0;
	if (sgx_status != TDC_TCB_UP_TO_DATE && sgx_status != TDC_TCB_SW_HARDENING_NEEDED &&
	    sgx_status != TDC_TCB_CONFIGURATION_NEEDED &&
	    sgx_status != TDC_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED)
		return 0;
	if (*tdx_status != TDC_TCB_OUT_OF_DATE &&
	    *tdx_status != TDC_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED)
		return 0;
	if (module_status != TDC_TCB_OUT_OF_DATE)
		return 0;
	if (ti->n_levels == 0)
		return TDC_FAIL(e, TDC_E_TCB_NOT_SUPPORTED, "TCB info has no TCB levels");

	const struct tdc_tcb_level *latest = &ti->levels[0];
	for (size_t i = 1; i < ti->n_levels; i++)
		if (level_cmp(&ti->levels[i], latest) > 0)
			latest = &ti->levels[i];

	unsigned module_floor;
	if (svn2[1] == 0) {
		module_floor = latest->tdx_svn[0];
	} else {
		const struct tdc_module_identity *mod2 = find_module(ti, svn2[1]);
		if (!mod2)
			return TDC_FAILF(e, TDC_E_MODULE_MISMATCH,
					 "TCB info has no identity for the updated TDX module",
					 "TEE_TCB_SVN2[1] = %u", svn2[1]);
		if (mod2->n_levels == 0)
			return TDC_FAILF(e, TDC_E_TCB_NOT_SUPPORTED,
					 "TDX module identity has no TCB levels", "%s", mod2->id);
		module_floor = mod2->levels[0].isvsvn; /* the newest module level */
	}
	if (svn2[0] >= module_floor && svn2[2] >= latest->tdx_svn[2])
		*tdx_status = config_needed(sgx_status) || config_needed(*tdx_status)
				      ? TDC_TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED
				      : TDC_TCB_TD_RELAUNCH_ADVISED;
	return 0;
}

int vfy_combine(const struct tdc_tcb_info *ti, const struct tdc_quote *q,
		const struct vfy_match *m, enum tdc_tcb_status *out, struct tdc_error *e)
{
	/* Intel treats "no module identity applies" as OK for the convergence. */
	const enum tdc_tcb_status module_status =
		m->module_level ? m->module_level->status : TDC_TCB_UP_TO_DATE;
	enum tdc_tcb_status s = converge(m->tdx_level->status, module_status);

	if (s != TDC_TCB_REVOKED && q->body_type == TDC_BODY_TD15)
		TDC_GUARD(relaunch(ti, q, m, m->sgx_level->status, module_status, &s, e));
	if (s != TDC_TCB_REVOKED)
		s = converge(s, m->qe_level->status);
	*out = s;
	return 0;
}
