/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

#include "cli.h"

int cmd_quote_show(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "tdcrypt: quote show: not implemented yet\n");
	return TDC_EXIT_INTERNAL;
}
