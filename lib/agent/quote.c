/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The provider chain: the configured provider, or auto-detection (configfs-tsm,
 * then /dev/tdx_guest + QGS). The simulator is never auto-detected. Whatever
 * answers, the quote must parse and carry exactly our REPORTDATA.
 */
#include <stdlib.h>
#include <string.h>

#include "agent-int.h"
#include "tdcrypt/quote.h"
#include "util/util.h"

/* A quote from one provider (the simulator's comes with its event log; for the others the
 * caller reads the firmware's, tdc_agent_read_ccel). */
static int from(enum tdc_agent_provider p, const struct tdc_agent_config *c, const uint8_t rd[64],
		int64_t now, struct tdc_agent_evidence *ev, struct tdc_error *e)
{
	struct tdc_tsm_opts t = {.root = c->tsm_root};
	struct tdc_tdx_guest_opts g = {0};
	switch (p) {
	case TDC_PROVIDER_CONFIGFS:
		return tdc_tsm_get_quote(&t, rd, &ev->quote, &ev->quote_len, e);
	case TDC_PROVIDER_TDX_GUEST:
		return tdc_tdx_guest_get_quote(&g, rd, &ev->quote, &ev->quote_len, e);
	case TDC_PROVIDER_SIM:
		if (!c->sim_dir)
			return TDC_FAIL(e, TDC_E_USAGE, "provider sim needs sim_dir");
		return tdc_sim_dir_quote(c->sim_dir, c->tpm_log, rd, now, ev, e);
	default:
		return TDC_FAIL(e, TDC_E_USAGE, "bad provider");
	}
}

int tdc_agent_quote_check(const uint8_t *quote, size_t *len, const uint8_t rd[64],
			  struct tdc_error *e)
{
	struct tdc_quote q;
	TDC_GUARD(tdc_quote_parse(quote, *len, &q, e));
	if (!tdc_ct_equal(q.td.report_data, rd, 64))
		return TDC_FAIL(e, TDC_E_BINDING,
				"the quote does not carry the requested REPORTDATA");
	/* Providers may pad to a fixed buffer size; the certificate carries the quote only. */
	*len = q.total_len;
	return 0;
}

int tdc_agent_get_quote(const struct tdc_agent_config *c, const uint8_t report_data[64],
			int64_t now, struct tdc_agent_evidence *ev, enum tdc_agent_provider *used,
			struct tdc_error *e)
{
	enum tdc_agent_provider order[2];
	size_t n = 0;
	int rc = TDC_E_UNSUPPORTED;

	memset(ev, 0, sizeof(*ev));
	if (c->provider != TDC_PROVIDER_AUTO) {
		order[n++] = c->provider;
	} else {
		if (tdc_tsm_available(c->tsm_root))
			order[n++] = TDC_PROVIDER_CONFIGFS;
		if (tdc_tdx_guest_available(NULL))
			order[n++] = TDC_PROVIDER_TDX_GUEST;
		if (n == 0)
			return TDC_FAIL(
			    e, TDC_E_UNSUPPORTED,
			    "no quote provider: neither configfs-tsm nor /dev/tdx_guest");
	}
	for (size_t i = 0; i < n; i++) {
		rc = from(order[i], c, report_data, now, ev, e);
		if (rc == 0)
			rc = tdc_agent_quote_check(ev->quote, &ev->quote_len, report_data, e);
		if (rc == 0) {
			if (used)
				*used = order[i];
			return 0;
		}
		tdc_agent_evidence_free(ev);
	}
	return rc;
}
