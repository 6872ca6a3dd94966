/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The capped builder, mirror of the bounded reader (rd.h): appends
 * little/big-endian integers, bytes and text to a caller buffer or to a
 * growing malloc'd buffer, never past a hard cap. Errors are sticky: after
 * the first failure every call is a no-op returning that error, so a
 * builder can write a whole structure and check once, at tdc_wr_finish.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"

struct tdc_wr {
	uint8_t *buf; /* caller's buffer, or malloc'd when owned */
	size_t len;   /* bytes written */
	size_t cap;   /* bytes allocated in buf */
	size_t max;   /* hard cap on len */
	bool owned;   /* buf is ours to grow and free */
	int err;      /* first error (sticky), 0 if none */
	size_t err_at; /* length at which the first error happened */
};

/* Writes into buf[0, cap); never allocates. */
void tdc_wr_init_fixed(struct tdc_wr *w, void *buf, size_t cap);
/* Writes into a malloc'd buffer that grows up to max bytes. */
void tdc_wr_init_alloc(struct tdc_wr *w, size_t max);

int tdc_wr_u8(struct tdc_wr *w, uint8_t v);
int tdc_wr_u16le(struct tdc_wr *w, uint16_t v);
int tdc_wr_u32le(struct tdc_wr *w, uint32_t v);
int tdc_wr_u64le(struct tdc_wr *w, uint64_t v);
int tdc_wr_u32be(struct tdc_wr *w, uint32_t v);
int tdc_wr_bytes(struct tdc_wr *w, const void *p, size_t n);
int tdc_wr_zeros(struct tdc_wr *w, size_t n);
/* Text without its NUL. */
int tdc_wr_str(struct tdc_wr *w, const char *s);
int tdc_wr_fmt(struct tdc_wr *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes n zero bytes and stores their offset in *off, to be patched later
 * (e.g. a length field known only once what follows is written). */
int tdc_wr_reserve(struct tdc_wr *w, size_t n, size_t *off);
/* Overwrite bytes already written; out of range is TDC_E_USAGE (sticky). */
int tdc_wr_patch_u16le(struct tdc_wr *w, size_t off, uint16_t v);
int tdc_wr_patch_u32le(struct tdc_wr *w, size_t off, uint32_t v);
int tdc_wr_patch_bytes(struct tdc_wr *w, size_t off, const void *p, size_t n);

size_t tdc_wr_len(const struct tdc_wr *w);
/* The bytes written so far (e.g. to sign them), or NULL after an error. */
const uint8_t *tdc_wr_data(const struct tdc_wr *w);
int tdc_wr_error(const struct tdc_wr *w);

/*
 * Ends the build. On success hands over the buffer (malloc'd when the writer
 * owns it, the caller's buffer otherwise) and its length; on failure frees
 * an owned buffer, sets *out = NULL, *len = 0 and records the error in e.
 * out may be NULL to discard.
 */
int tdc_wr_finish(struct tdc_wr *w, uint8_t **out, size_t *len, struct tdc_error *e)
	TDC_MUST_USE;
/* Discards the build (frees an owned buffer). Safe after finish. */
void tdc_wr_free(struct tdc_wr *w);
