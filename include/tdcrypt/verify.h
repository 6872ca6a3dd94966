/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Full Intel DCAP verification of a TDX quote against collateral, at an
 * injected time. The verifier object holds the trust anchor and a
 * content-addressed cache of parsed and verified collateral, PCK chains and
 * QE reports, so a warm verification of a quote from a known platform costs
 * little more than the quote's own ECDSA verification. It is safe to share
 * between threads.
 * Algorithm: ../shared/reference/tdx-quote-verification.md, part A2.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "tdcrypt/collateral.h"
#include "tdcrypt/error.h"
#include "tdcrypt/quote.h"

struct tdc_verifier_opts {
	/* Trust anchor. NULL = the pinned Intel SGX Root CA (the only production
	 * setting). Anything else is for tests and the simulator only; front
	 * ends must expose it only through an option that says so. */
	const uint8_t *test_root_der;
	size_t test_root_der_len;
	/* Refuse TCB info / QE identity with a lower tcbEvaluationDataNumber. */
	uint32_t min_tcb_eval_num;
};

struct tdc_verifier;

int tdc_verifier_new(const struct tdc_verifier_opts *opts, struct tdc_verifier **out,
		     struct tdc_error *e) TDC_MUST_USE;
void tdc_verifier_free(struct tdc_verifier *v);
/* True if the verifier trusts a test root rather than Intel's. */
bool tdc_verifier_is_test_root(const struct tdc_verifier *v);

struct tdc_verdict {
	enum tdc_tcb_status status;          /* combined, Intel's table */
	enum tdc_tcb_status platform_status; /* matched platform TCB level */
	enum tdc_tcb_status qe_status;       /* matched QE identity level */
	enum tdc_tcb_status module_status;   /* TDX module level; UNKNOWN if none applies */
	int64_t tcb_date;                    /* of the matched platform level */
	struct tdc_advisories advisories;    /* platform + QE + module levels, merged */
	uint8_t fmspc[6];
	uint8_t pce_id[2];
	uint32_t tcb_eval_num;               /* of the TCB info */
	int64_t collateral_not_after;        /* earliest expiry of everything used */
	uint16_t quote_version;
	uint16_t body_type;
	uint16_t qe_isvsvn;
	struct tdc_td_report td;             /* every claim of the TD report */
};

/*
 * Verifies quote (len bytes) with collateral c at time now (seconds since
 * the epoch). Returns 0 when every check passed; out->status then says how
 * current the platform is (UpToDate, OutOfDate, ...). Returns a negative
 * tdc_err and fills e on rejection; a Revoked status is a rejection
 * (TDC_E_REVOKED) with out->status = TDC_TCB_REVOKED. out is filled as far
 * as verification got; always release it with tdc_verdict_free.
 */
int tdc_verify_quote(struct tdc_verifier *v, const uint8_t *quote, size_t len,
		     const struct tdc_collateral *c, int64_t now, struct tdc_verdict *out,
		     struct tdc_error *e) TDC_MUST_USE;

void tdc_verdict_free(struct tdc_verdict *out);

/* Cache statistics (for benchmarks and tests). */
struct tdc_verifier_stats {
	uint64_t collateral_hits, collateral_misses;
	uint64_t pck_hits, pck_misses;
	uint64_t qe_report_hits, qe_report_misses; /* step 4: QE report, signature, identity */
};
void tdc_verifier_stats(const struct tdc_verifier *v, struct tdc_verifier_stats *out);

struct json_object;
/*
 * JSON view of a verdict for front ends and audit logs: "verified", the
 * combined / platform / QE / module statuses, advisories, collateral facts
 * (tcb_date, fmspc, pce_id, tcb_eval_num, collateral_not_after), the quote
 * version and body type, and every TD claim under "td" (hex; td_attributes
 * also decoded in "td_attributes_flags"). Fields verification did not reach
 * are null. With e carrying an error (e->code != 0):
 * "error": {"code": name, "reason", "detail", "offset"}.
 * *out is a new object owned by the caller (json_object_put).
 */
int tdc_verdict_to_json(const struct tdc_verdict *v, const struct tdc_error *e,
			struct json_object **out) TDC_MUST_USE;
