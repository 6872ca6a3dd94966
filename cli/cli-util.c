/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

#include "cli.h"

void cli_print_error(const char *what, const struct tdc_error *e)
{
	char buf[512];
	fprintf(stderr, "tdcrypt: %s: %s [%s]\n", what, tdc_error_format(e, buf, sizeof(buf)),
		tdc_err_name(e->code));
}

int cli_exit_for(int code)
{
	switch (code) {
	case TDC_OK:
		return TDC_EXIT_OK;
	case TDC_E_FORMAT:
	case TDC_E_UNSUPPORTED:
	case TDC_E_LIMIT:
	case TDC_E_IO:
	case TDC_E_USAGE:
		return TDC_EXIT_BAD_INPUT;
	case TDC_E_NOMEM:
	case TDC_E_INTERNAL:
	case TDC_E_CRYPTO:
		return TDC_EXIT_INTERNAL;
	default:
		return TDC_EXIT_REJECTED;
	}
}
