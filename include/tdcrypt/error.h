/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One error type for the whole library. Functions return 0 or a negative
 * enum tdc_err; details (reason, field, offset, source line, OpenSSL text)
 * go into an optional struct tdc_error that the caller owns.
 * The library never logs: front ends print the error once, at the boundary.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define TDC_MUST_USE __attribute__((warn_unused_result))

enum tdc_err {
	TDC_OK = 0,
	/* input is malformed: bad length, bad field value, trailing data */
	TDC_E_FORMAT = -1,
	/* well-formed but a version/type we do not support */
	TDC_E_UNSUPPORTED = -2,
	/* a signature did not verify (quote, QE report, TCB info, QE identity) */
	TDC_E_SIGNATURE = -3,
	/* a certificate chain did not verify to the trust anchor */
	TDC_E_CHAIN = -4,
	/* a certificate is on a CRL */
	TDC_E_REVOKED = -5,
	/* a CRL is wrong: issuer mismatch, bad signature */
	TDC_E_CRL = -6,
	/* something is outside its validity window at the verification time */
	TDC_E_EXPIRED = -7,
	/* collateral does not belong to this quote (FMSPC, PCE-ID, id/version) */
	TDC_E_COLLATERAL_MISMATCH = -8,
	/* no TCB level matches the platform: TCB not supported */
	TDC_E_TCB_NOT_SUPPORTED = -9,
	/* the quoting enclave does not match the QE identity */
	TDC_E_QE_MISMATCH = -10,
	/* the TDX module does not match the TCB info module identity */
	TDC_E_MODULE_MISMATCH = -11,
	/* the binding between QE report and attestation key is broken */
	TDC_E_BINDING = -12,
	/* a policy rule refused the claims */
	TDC_E_POLICY = -13,
	/* a size limit was exceeded (see lib/util/limits.h) */
	TDC_E_LIMIT = -14,
	TDC_E_IO = -15,
	TDC_E_NOMEM = -16,
	/* the caller used the API wrongly (bad argument) */
	TDC_E_USAGE = -17,
	/* an OpenSSL call failed for a reason that is not the input's fault */
	TDC_E_CRYPTO = -18,
	TDC_E_INTERNAL = -19,
	/* collateral too old: tcbEvaluationDataNumber below the configured minimum */
	TDC_E_STALE = -20,
	/* a named object (secret, policy) does not exist */
	TDC_E_NOT_FOUND = -21,
	/* the caller asked to stop (a progress callback returned nonzero: Ctrl-C) */
	TDC_E_CANCELLED = -22,
	TDC_E__COUNT = 23,
};

#define TDC_NO_OFFSET SIZE_MAX

struct tdc_error {
	int code;               /* enum tdc_err */
	const char *reason;     /* static text: what failed */
	char detail[256];       /* formatted: field, values, OpenSSL error text */
	size_t offset;          /* absolute offset in the input, or TDC_NO_OFFSET */
	const char *file;
	int line;
};

/* Short stable name of a code ("format", "signature", ...), for JSON and logs. */
const char *tdc_err_name(int code);
/* Human text of a code. */
const char *tdc_err_str(int code);

/* Resets *e (e may be NULL). */
void tdc_error_clear(struct tdc_error *e);

/*
 * Records an error into e (may be NULL) and returns code. The first error
 * recorded wins: a later call does not overwrite an earlier one, so the
 * deepest, most precise reason survives the unwinding.
 */
int tdc_error_set(struct tdc_error *e, int code, size_t offset, const char *file, int line,
		  const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

/* As tdc_error_set, appending the first queued OpenSSL error to the detail. */
int tdc_error_set_ossl(struct tdc_error *e, int code, const char *file, int line,
		       const char *reason);

/* Formats "reason: detail (at offset N)" into buf. */
const char *tdc_error_format(const struct tdc_error *e, char *buf, size_t len);

#define TDC_FAIL(e, code, reason) \
	tdc_error_set((e), (code), TDC_NO_OFFSET, __FILE__, __LINE__, (reason), NULL)
#define TDC_FAILF(e, code, reason, ...) \
	tdc_error_set((e), (code), TDC_NO_OFFSET, __FILE__, __LINE__, (reason), __VA_ARGS__)
#define TDC_FAIL_AT(e, code, off, reason, ...) \
	tdc_error_set((e), (code), (off), __FILE__, __LINE__, (reason), __VA_ARGS__)
#define TDC_FAIL_OSSL(e, code, reason) \
	tdc_error_set_ossl((e), (code), __FILE__, __LINE__, (reason))

/* Evaluate an int-returning call; return its error if negative. */
#define TDC_GUARD(call)               \
	do {                          \
		int tdc_r_ = (call);  \
		if (tdc_r_ < 0)       \
			return tdc_r_; \
	} while (0)

/* Return an error unless cond holds. */
#define TDC_ENSURE(cond, e, code, reason)              \
	do {                                           \
		if (!(cond))                           \
			return TDC_FAIL((e), (code), (reason)); \
	} while (0)
