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

static int from(enum tdc_agent_provider p, const struct tdc_agent_config *c, const uint8_t rd[64],
		int64_t now, uint8_t **quote, size_t *len, struct tdc_error *e)
{
	struct tdc_tsm_opts t = {.root = c->tsm_root};
	struct tdc_tdx_guest_opts g = {0};
	switch (p) {
	case TDC_PROVIDER_CONFIGFS:
		return tdc_tsm_get_quote(&t, rd, quote, len, e);
	case TDC_PROVIDER_TDX_GUEST:
		return tdc_tdx_guest_get_quote(&g, rd, quote, len, e);
	case TDC_PROVIDER_SIM:
		if (!c->sim_dir)
			return TDC_FAIL(e, TDC_E_USAGE, "provider sim needs sim_dir");
		return tdc_sim_dir_quote(c->sim_dir, c->cmdline_path, rd, now, quote, len, e);
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
			int64_t now, uint8_t **quote, size_t *len, enum tdc_agent_provider *used,
			struct tdc_error *e)
{
	enum tdc_agent_provider order[2];
	size_t n = 0;
	int rc = TDC_E_UNSUPPORTED;

	*quote = NULL;
	*len = 0;
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
		rc = from(order[i], c, report_data, now, quote, len, e);
		if (rc == 0)
			rc = tdc_agent_quote_check(*quote, len, report_data, e);
		if (rc == 0) {
			if (used)
				*used = order[i];
			return 0;
		}
		free(*quote);
		*quote = NULL;
		*len = 0;
	}
	return rc;
}
