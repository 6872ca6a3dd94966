/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "tdcrypt/error.h"

static const struct {
	const char *name;
	const char *text;
} err_table[TDC_E__COUNT] = {
	[0] = { "ok", "success" },
	[-TDC_E_FORMAT] = { "format", "malformed input" },
	[-TDC_E_UNSUPPORTED] = { "unsupported", "unsupported format or type" },
	[-TDC_E_SIGNATURE] = { "signature", "signature verification failed" },
	[-TDC_E_CHAIN] = { "chain", "certificate chain verification failed" },
	[-TDC_E_REVOKED] = { "revoked", "certificate revoked" },
	[-TDC_E_CRL] = { "crl", "certificate revocation list invalid" },
	[-TDC_E_EXPIRED] = { "expired", "outside validity window" },
	[-TDC_E_COLLATERAL_MISMATCH] = { "collateral-mismatch", "collateral does not match the quote" },
	[-TDC_E_TCB_NOT_SUPPORTED] = { "tcb-not-supported", "no matching TCB level" },
	[-TDC_E_QE_MISMATCH] = { "qe-identity-mismatch", "quoting enclave identity mismatch" },
	[-TDC_E_MODULE_MISMATCH] = { "tdx-module-mismatch", "TDX module identity mismatch" },
	[-TDC_E_BINDING] = { "binding", "attestation key binding broken" },
	[-TDC_E_POLICY] = { "policy", "refused by policy" },
	[-TDC_E_LIMIT] = { "limit", "size limit exceeded" },
	[-TDC_E_IO] = { "io", "input/output error" },
	[-TDC_E_NOMEM] = { "nomem", "out of memory" },
	[-TDC_E_USAGE] = { "usage", "invalid argument" },
	[-TDC_E_CRYPTO] = { "crypto", "cryptographic library failure" },
	[-TDC_E_INTERNAL] = { "internal", "internal error" },
	[-TDC_E_STALE] = { "stale", "collateral older than the configured minimum" },
	[-TDC_E_NOT_FOUND] = { "not-found", "no such object" },
	[-TDC_E_CANCELLED] = { "cancelled", "interrupted" },
};

const char *tdc_err_name(int code)
{
	if (code > 0 || code <= -TDC_E__COUNT)
		return "unknown";
	return err_table[-code].name;
}

const char *tdc_err_str(int code)
{
	if (code > 0 || code <= -TDC_E__COUNT)
		return "unknown error";
	return err_table[-code].text;
}

void tdc_error_clear(struct tdc_error *e)
{
	if (!e)
		return;
	memset(e, 0, sizeof(*e));
	e->offset = TDC_NO_OFFSET;
}

int tdc_error_set(struct tdc_error *e, int code, size_t offset, const char *file, int line,
		  const char *reason, const char *fmt, ...)
{
	if (!e || e->code != 0)
		return code;
	e->code = code;
	e->reason = reason;
	e->offset = offset;
	e->file = file;
	e->line = line;
	e->detail[0] = '\0';
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
		va_end(ap);
	}
	return code;
}

int tdc_error_set_ossl(struct tdc_error *e, int code, const char *file, int line,
		       const char *reason)
{
	unsigned long oe = ERR_peek_error();
	char buf[200] = "";

	if (oe)
		ERR_error_string_n(oe, buf, sizeof(buf));
	ERR_clear_error();
	return tdc_error_set(e, code, TDC_NO_OFFSET, file, line, reason, oe ? "openssl: %s" : NULL,
			     buf);
}

const char *tdc_error_format(const struct tdc_error *e, char *buf, size_t len)
{
	if (!e || e->code == 0) {
		snprintf(buf, len, "ok");
		return buf;
	}
	const char *reason = e->reason ? e->reason : tdc_err_str(e->code);
	if (e->offset != TDC_NO_OFFSET)
		snprintf(buf, len, "%s%s%s (at offset %zu)", reason, e->detail[0] ? ": " : "",
			 e->detail, e->offset);
	else
		snprintf(buf, len, "%s%s%s", reason, e->detail[0] ? ": " : "", e->detail);
	return buf;
}
