/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The smallest CBOR needed for the RA-TLS evidence (PROTOCOL.md §4): item heads
 * written shortest-form through the capped writer, and read back through the
 * bounded reader with shortest-form and type checks. No general decoder: the
 * callers read a fixed shape, one item at a time.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"
#include "util/limits.h"
#include "util/rd.h"
#include "util/wr.h"

enum tdc_cbor_major {
	TDC_CBOR_UINT = 0,
	TDC_CBOR_NINT = 1,
	TDC_CBOR_BSTR = 2,
	TDC_CBOR_TSTR = 3,
	TDC_CBOR_ARRAY = 4,
	TDC_CBOR_MAP = 5,
	TDC_CBOR_TAG = 6,
	TDC_CBOR_SIMPLE = 7,
};

/* Writes a head (major type, argument) in shortest form. Sticky errors, as wr. */
int tdc_cbor_put_head(struct tdc_wr *w, unsigned major, uint64_t arg);
/* Writes a byte string / text string (head and content). */
int tdc_cbor_put_bstr(struct tdc_wr *w, const void *p, size_t n);
int tdc_cbor_put_tstr(struct tdc_wr *w, const char *s);

/*
 * Reads one head. Refuses indefinite lengths and reserved additional info
 * (TDC_E_FORMAT), and non-shortest arguments (TDC_E_FORMAT).
 */
int tdc_cbor_get_head(struct tdc_rd *r, unsigned *major, uint64_t *arg, const char *field,
		      struct tdc_error *e) TDC_MUST_USE;
/* Reads a head that must be of type major (TDC_E_FORMAT otherwise). */
int tdc_cbor_get_type(struct tdc_rd *r, unsigned major, uint64_t *arg, const char *field,
		      struct tdc_error *e) TDC_MUST_USE;
/*
 * Reads a byte or text string (major) of at most max bytes (TDC_E_LIMIT) as a
 * sub-view of r.
 */
int tdc_cbor_get_str(struct tdc_rd *r, unsigned major, size_t max, struct tdc_rd *out,
		     const char *field, struct tdc_error *e) TDC_MUST_USE;
