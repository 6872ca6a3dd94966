/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dcap-qvl "QuoteCollateralV3" JSON: one object whose tcb_info/qe_identity
 * strings are the exact signed JSON text, signatures hex r||s, chains PEM,
 * CRLs hex DER. Unknown members are ignored (newer dcap-qvl adds some).
 */
#include <stdlib.h>
#include <string.h>

#include "collateral/json.h"
#include "util/limits.h"
#include "util/util.h"

static int text(json_object *root, const char *key, size_t max, struct tdc_buf *out,
		struct tdc_error *e)
{
	const char *s;
	size_t n;
	TDC_GUARD(tdc_json_str(root, "", key, max, &s, &n, e));
	uint8_t *d = malloc(n + 1);
	if (!d)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	memcpy(d, s, n + 1);
	out->data = d;
	out->len = n;
	return 0;
}

static int chain(json_object *root, const char *key, struct tdc_buf *out, struct tdc_error *e)
{
	const char *s;
	size_t n;
	TDC_GUARD(tdc_json_str(root, "", key, TDC_MAX_CHAIN_PEM, &s, &n, e));
	return tdc_chain_to_pem((const uint8_t *)s, n, out, e);
}

static int crl(json_object *root, const char *key, struct tdc_buf *out, struct tdc_error *e)
{
	const char *s;
	size_t n;
	/* the cap applies to the text as given (hex: half of it is DER) */
	TDC_GUARD(tdc_json_str(root, "", key, TDC_MAX_CRL_SIZE, &s, &n, e));
	return tdc_crl_to_der((const uint8_t *)s, n, out, e);
}

static int fill(json_object *root, struct tdc_collateral *c, struct tdc_error *e)
{
	TDC_GUARD(text(root, "tcb_info", TDC_MAX_COLLATERAL_JSON, &c->tcb_info, e));
	TDC_GUARD(tdc_json_hex(root, "", "tcb_info_signature", c->tcb_info_sig, 64, e));
	TDC_GUARD(chain(root, "tcb_info_issuer_chain", &c->tcb_info_chain, e));
	TDC_GUARD(text(root, "qe_identity", TDC_MAX_COLLATERAL_JSON, &c->qe_identity, e));
	TDC_GUARD(tdc_json_hex(root, "", "qe_identity_signature", c->qe_identity_sig, 64, e));
	TDC_GUARD(chain(root, "qe_identity_issuer_chain", &c->qe_identity_chain, e));
	TDC_GUARD(crl(root, "pck_crl", &c->pck_crl, e));
	TDC_GUARD(chain(root, "pck_crl_issuer_chain", &c->pck_crl_chain, e));
	return crl(root, "root_ca_crl", &c->root_ca_crl, e);
}

int tdc_collateral_from_dcap_qvl_json(const uint8_t *json, size_t len, struct tdc_collateral *c,
				      struct tdc_error *e)
{
	json_object *root;
	if (!c)
		return TDC_FAIL(e, TDC_E_USAGE, "collateral: NULL output");
	memset(c, 0, sizeof(*c));
	TDC_GUARD(tdc_json_parse_object(json, len, TDC_MAX_BUNDLE_FILE, "dcap-qvl collateral",
					&root, e));
	int r = fill(root, c, e);
	json_object_put(root);
	if (r < 0)
		tdc_collateral_free(c);
	return r;
}
