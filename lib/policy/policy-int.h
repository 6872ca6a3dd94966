/* SPDX-License-Identifier: Apache-2.0 */
/* Private to lib/policy: the parsed policy and the rule table shared by parse.c and eval.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/collateral.h"
#include "tdcrypt/policy.h"
#include "util/limits.h"
#include "tdcrypt/quote.h"


#define TDC_POLICY_VERSION 1
#define TDC_MR_SIZE 48

/* The 48-byte measurement registers a policy can pin, in evaluation order. */
enum tdc_policy_mr {
	TDC_PMR_MRSEAM,
	TDC_PMR_MRTD,
	TDC_PMR_RTMR0,
	TDC_PMR_RTMR1,
	TDC_PMR_RTMR2,
	TDC_PMR_RTMR3,
	TDC_PMR_MRCONFIGID,
	TDC_PMR_MROWNER,
	TDC_PMR_MROWNERCONFIG,
	TDC_PMR__COUNT,
};

struct tdc_policy_mr_desc {
	const char *name;   /* JSON key and rule name */
	size_t offset;      /* in struct tdc_td_report */
};
extern const struct tdc_policy_mr_desc tdc_policy_mrs[TDC_PMR__COUNT];

/* TD attribute bits with their own rule; never in allow_bits. */
#define TDC_TDATTR_OWN_RULES (TDC_TDATTR_DEBUG | TDC_TDATTR_SEPT_VE_DISABLE)

struct tdc_policy_mr_list {
	size_t n; /* 0: not configured, any value */
	uint8_t (*v)[TDC_MR_SIZE];
};

/* One expected event of an RTMR: any of its digests. */
struct tdc_policy_event {
	size_t n;
	uint8_t (*digest)[TDC_MR_SIZE];
	char type[40], role[16], what[192];
};

struct tdc_policy_event_list {
	size_t n;
	struct tdc_policy_event *ev;
};

struct json_object;
/* The "reference" block as JSON (parse.c), for the canonical form and for new policies. */
struct json_object *tdc_policy_reference_json(const struct tdc_policy_reference *r);

struct tdc_policy {
	struct tdc_policy_mr_list mr[TDC_PMR__COUNT];
	size_t n_xfam; /* 0: any */
	uint8_t (*xfam)[8];

	bool allow_debug;
	bool require_sept_ve_disable;
	uint64_t allow_bits; /* TD attribute bits allowed besides DEBUG / SEPT_VE_DISABLE */
	bool td_attributes_configured;

	bool tcb_status[TDC_TCB__COUNT];
	bool tcb_status_configured;

	struct tdc_advisories refused;
	bool has_allowed_only;
	struct tdc_advisories allowed_only;

	bool has_min_tee_tcb_svn;
	uint8_t min_tee_tcb_svn[16];

	bool mrservicetd_zero;
	bool mrservicetd_configured;
	bool allow_simulator;
	bool simulator_configured;

	/* per RTMR: the expected events (n == 0: not configured) */
	struct tdc_policy_event_list events[4];
	struct tdc_policy_reference ref;
};
