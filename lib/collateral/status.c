/* SPDX-License-Identifier: Apache-2.0 */
/* TCB status names exactly as Intel PCS spells them. */
#include <string.h>

#include "tdcrypt/collateral.h"

static const char *const names[TDC_TCB__COUNT] = {
	[TDC_TCB_UNKNOWN] = "Unknown",
	[TDC_TCB_UP_TO_DATE] = "UpToDate",
	[TDC_TCB_SW_HARDENING_NEEDED] = "SWHardeningNeeded",
	[TDC_TCB_CONFIGURATION_NEEDED] = "ConfigurationNeeded",
	[TDC_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED] = "ConfigurationAndSWHardeningNeeded",
	[TDC_TCB_OUT_OF_DATE] = "OutOfDate",
	[TDC_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED] = "OutOfDateConfigurationNeeded",
	[TDC_TCB_REVOKED] = "Revoked",
	[TDC_TCB_TD_RELAUNCH_ADVISED] = "TDRelaunchAdvised",
	[TDC_TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED] = "TDRelaunchAdvisedConfigurationNeeded",
};

const char *tdc_tcb_status_name(enum tdc_tcb_status s)
{
	if ((unsigned)s >= TDC_TCB__COUNT)
		return names[TDC_TCB_UNKNOWN];
	return names[s];
}

int tdc_tcb_status_parse(const char *s, enum tdc_tcb_status *out, struct tdc_error *e)
{
	if (!s)
		return TDC_FAIL(e, TDC_E_USAGE, "no TCB status");
	/* "Unknown" is our placeholder, never a PCS value: start at 1 */
	for (unsigned i = TDC_TCB_UNKNOWN + 1; i < TDC_TCB__COUNT; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum tdc_tcb_status)i;
			return 0;
		}
	}
	return TDC_FAILF(e, TDC_E_FORMAT, "unknown TCB status", "\"%.64s\"", s);
}
