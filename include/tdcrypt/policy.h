/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-secret release policy: a declarative JSON document evaluated against
 * the verdict of a verified quote. Every rule is optional; what is left out
 * falls back to a default that fails closed (only UpToDate, no DEBUG,
 * SEPT_VE_DISABLE required, no optional TD attribute bits, no simulator).
 *
 * JSON form (all keys optional, unknown keys refused with their path):
 *   {
 *     "version": 1,
 *     "mrtd": ["<96 hex>", ...],        any-of; likewise "rtmr0".."rtmr3",
 *                                       "mrconfigid", "mrowner", "mrownerconfig", "mrseam"
 *     "xfam": ["<16 hex>", ...],         any-of
 *     "td_attributes": {
 *       "allow_debug": false,
 *       "require_sept_ve_disable": true,
 *       "allow_bits": ["PKS", "KL", "PERFMON", "TPA", "MIGRATABLE", 33, ...]
 *     },
 *     "tcb_status": ["UpToDate", ...],   "Revoked" is refused at load
 *     "advisories_refused": ["INTEL-SA-00960", ...],
 *     "advisories_allowed_only": [...],  if present, every advisory must be listed
 *     "min_tee_tcb_svn": "<32 hex>",     component-wise >= on TEE_TCB_SVN
 *     "mrservicetd_zero": true,          TD report 1.5: MRSERVICETD must be zero
 *     "allow_simulator": false,
 *     "events": {                        rule on the CC event log instead of an RTMR value
 *       "rtmr1": [ {"digest": ["<96 hex>", ...], "type": "EV_EFI_ACTION",
 *                   "role": "kernel", "what": "text"}, ... ], ...
 *     },
 *     "reference": {...}                 how the values were produced (tdcrypt measure):
 *                                        target, boot path, firmware file and SHA-256, ...
 *   }
 * An "events" list for an RTMR replaces its value list (both is an error): the evidence must
 * carry an event log that replays to the quote's RTMRs (the broker checks that first), and that
 * RTMR's events, in order, must be exactly as many as listed, each with one of the listed
 * digests. Only digests are compared: type, role and what only explain.
 * Hex values are the bytes as they appear in the TD report (the same hex as
 * `tdcrypt quote show`). REPORTDATA is not a policy field: the broker binds it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tdcrypt/error.h"
#include "tdcrypt/verify.h"

struct tdc_policy;

struct tdc_evlog;

/* What a policy is evaluated against. */
struct tdc_policy_input {
	const struct tdc_verdict *verdict; /* of a quote that passed tdc_verify_quote */
	bool from_simulator;               /* the quote chains to the simulator root */
	/* the CC event log of the evidence, already replayed to the quote's RTMRs; NULL if none */
	const struct tdc_evlog *event_log;
};

/* The "reference" block: what the reference values were computed for (tdcrypt measure).
 * Strings are empty when absent. */
struct tdc_policy_reference {
	bool present;
	char tool[64], target[16], boot[16], firmware[512], firmware_sha256[65];
	char mrtd_order[16], qemu[16], image[512];
	uint32_t memory_mib;
};
void tdc_policy_get_reference(const struct tdc_policy *p, struct tdc_policy_reference *out);

/* One rule of an evaluation. Every rule is listed, configured or not. */
struct tdc_policy_rule_result {
	const char *name; /* static, stable: "mrtd", "debug", "tcb_status", ... */
	bool pass;
	bool configured;  /* false: the rule's default applied */
	char *expected;   /* human text, e.g. "any of: 91eb..., 0a1b..." */
	char *actual;     /* human text of the claim */
};

struct tdc_policy_result {
	bool allowed;
	/* First failing rule's name (static), NULL when allowed: the short
	 * reason code sent to the agent. */
	const char *reason_code;
	/* Full reason for the audit log: "mrtd: 91eb... not in the allowed list (2 values)". */
	char reason[1024];
	size_t n_rules;
	struct tdc_policy_rule_result *rules;
};

/*
 * Parses and validates a policy (len bytes, need not be NUL-terminated).
 * Errors name the JSON path ("td_attributes.allow_bits[2]"): unknown keys,
 * wrong types, bad hex lengths, unknown TCB statuses, "Revoked" allowed,
 * empty or duplicate list values, caps exceeded (TDC_E_LIMIT).
 */
int tdc_policy_parse(const char *json, size_t len, struct tdc_policy **out, struct tdc_error *e)
	TDC_MUST_USE;
void tdc_policy_free(struct tdc_policy *p);

/* Canonical JSON with every effective value, defaults included (malloc'd,
 * free with free()). Parsing it again gives the same policy. */
int tdc_policy_to_json(const struct tdc_policy *p, char **out, struct tdc_error *e) TDC_MUST_USE;

/*
 * Evaluates every rule. Returns 0 if all pass (result->allowed); TDC_E_POLICY
 * if one fails (result filled, e says which rule and why); another negative
 * code on a usage or memory error (result empty). Release result with
 * tdc_policy_result_free in every case.
 */
int tdc_policy_eval(const struct tdc_policy *p, const struct tdc_policy_input *in,
		    struct tdc_policy_result *result, struct tdc_error *e) TDC_MUST_USE;
void tdc_policy_result_free(struct tdc_policy_result *result);

/* Human listing, one rule per line with PASS/FAIL, expected and actual. */
void tdc_policy_result_print(const struct tdc_policy_result *result, FILE *out);
/* {"allowed":..,"reason_code":..,"reason":..,"rules":[{"name","pass","configured",
 * "expected","actual"}]} (malloc'd). */
int tdc_policy_result_to_json(const struct tdc_policy_result *result, char **out,
			      struct tdc_error *e) TDC_MUST_USE;

struct tdc_reference;
/*
 * A policy the predicted boot r satisfies (docs/MEASUREMENT.md): MRTD, every predicted RTMR as
 * its list of events (or its value when nothing extends it), meta as the "reference" block,
 * allow_simulator for the simulator target. RTMRs that could not be predicted are left
 * unpinned. Refuses (TDC_E_UNSUPPORTED) a boot whose kernel, initrd or command line would not
 * be measured, unless allow_unmeasured: such a policy cannot tell a tampered boot.
 * *json is the canonical form (malloc'd).
 */
int tdc_policy_from_reference(const struct tdc_reference *r, const struct tdc_policy_reference *meta,
			      bool allow_unmeasured, char **json, struct tdc_error *e) TDC_MUST_USE;
