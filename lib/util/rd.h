/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one bounded reader for untrusted bytes (quotes, certificates, CRLs,
 * JSON, network messages). A tdc_rd is a non-owning view of [0, len) with a
 * cursor; every read checks the remaining length first and, on failure,
 * records the absolute offset and the field name in the error.
 *
 * Nothing outside rd.c does arithmetic on pointers into untrusted input:
 * parsers take sub-views (tdc_rd_sub) and hand OpenSSL or hash functions the
 * (tdc_rd_ptr, tdc_rd_len) of a whole view.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"

struct tdc_rd {
	const uint8_t *buf; /* start of this view */
	size_t len;         /* length of this view */
	size_t pos;         /* cursor, 0..len */
	size_t base;        /* absolute offset of buf[0] in the original input */
};

void tdc_rd_init(struct tdc_rd *r, const void *buf, size_t len);

/* Bytes left after the cursor. */
size_t tdc_rd_remaining(const struct tdc_rd *r);
/* Absolute offset of the cursor in the original input. */
size_t tdc_rd_offset(const struct tdc_rd *r);
/* Whole view (ignores the cursor): pointer and length to hand to hash/crypto. */
const uint8_t *tdc_rd_ptr(const struct tdc_rd *r);
size_t tdc_rd_len(const struct tdc_rd *r);
bool tdc_rd_empty(const struct tdc_rd *r);

int tdc_rd_u8(struct tdc_rd *r, uint8_t *out, const char *field, struct tdc_error *e)
	TDC_MUST_USE;
int tdc_rd_u16le(struct tdc_rd *r, uint16_t *out, const char *field, struct tdc_error *e)
	TDC_MUST_USE;
int tdc_rd_u32le(struct tdc_rd *r, uint32_t *out, const char *field, struct tdc_error *e)
	TDC_MUST_USE;
int tdc_rd_u64le(struct tdc_rd *r, uint64_t *out, const char *field, struct tdc_error *e)
	TDC_MUST_USE;
int tdc_rd_u32be(struct tdc_rd *r, uint32_t *out, const char *field, struct tdc_error *e)
	TDC_MUST_USE;

/* Copies n bytes into dst and advances. */
int tdc_rd_copy(struct tdc_rd *r, void *dst, size_t n, const char *field, struct tdc_error *e)
	TDC_MUST_USE;
/* Takes the next n bytes as a sub-view (no copy) and advances. */
int tdc_rd_sub(struct tdc_rd *r, size_t n, struct tdc_rd *sub, const char *field,
	       struct tdc_error *e) TDC_MUST_USE;
/* Takes all remaining bytes as a sub-view. */
void tdc_rd_rest(struct tdc_rd *r, struct tdc_rd *sub);
int tdc_rd_skip(struct tdc_rd *r, size_t n, const char *field, struct tdc_error *e) TDC_MUST_USE;
/* Sub-view of the bytes [from, pos) already consumed, from an earlier tdc_rd_offset-relative
 * mark taken with tdc_rd_mark. Used for "signed bytes = everything read so far". */
size_t tdc_rd_mark(const struct tdc_rd *r);
int tdc_rd_since(const struct tdc_rd *r, size_t mark, struct tdc_rd *sub, struct tdc_error *e)
	TDC_MUST_USE;
/* Fails with TDC_E_FORMAT unless the view is fully consumed. */
int tdc_rd_end(const struct tdc_rd *r, const char *field, struct tdc_error *e) TDC_MUST_USE;

/* View with trailing bytes equal to c removed (e.g. NUL after a PEM chain). */
void tdc_rd_trim_trailing(struct tdc_rd *r, uint8_t c);
/* True if every remaining byte equals c (also true when none remain). */
bool tdc_rd_all_bytes(const struct tdc_rd *r, uint8_t c);
/* Byte at absolute position i of the view (not the cursor); i < tdc_rd_len. */
uint8_t tdc_rd_at(const struct tdc_rd *r, size_t i);
/* Finds the first occurrence of needle in the unread part; on success sets *pos
 * to its position relative to the cursor. */
bool tdc_rd_find(const struct tdc_rd *r, const void *needle, size_t nlen, size_t *pos);
/* Compares the unread part's prefix with s. */
bool tdc_rd_starts_with(const struct tdc_rd *r, const void *s, size_t n);
