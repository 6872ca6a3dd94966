/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by every module: hex, RFC 3339 times, whole-file reads. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"

/* Decodes exactly out_len bytes from a hex string of exactly 2*out_len
 * characters (either case). Returns TDC_E_FORMAT otherwise. */
int tdc_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_len,
		   const char *field, struct tdc_error *e) TDC_MUST_USE;
/* Decodes a hex string of any even length into a new buffer (free with free()). */
int tdc_hex_decode_alloc(const char *hex, size_t hex_len, uint8_t **out, size_t *out_len,
			 const char *field, struct tdc_error *e) TDC_MUST_USE;
/* Lower-case hex of n bytes into out (needs 2n+1 bytes). */
char *tdc_hex_encode(const uint8_t *in, size_t n, char *out);

/* Parses "YYYY-MM-DDTHH:MM:SSZ" (optionally with fractional seconds, or "+00:00")
 * into seconds since the epoch, UTC. */
int tdc_time_parse(const char *s, int64_t *out, const char *field, struct tdc_error *e)
	TDC_MUST_USE;
/* Formats seconds since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (needs 21 bytes). */
char *tdc_time_format(int64_t t, char *out, size_t len);

/* Reads a whole regular file, refusing files larger than max. *out is
 * NUL-terminated (not counted in *len); free with free(). */
int tdc_file_read(const char *path, size_t max, uint8_t **out, size_t *len,
		  struct tdc_error *e) TDC_MUST_USE;

/* pread/pwrite of exactly len bytes at off (retrying short transfers and EINTR).
 * Return 0 or -errno (-ENODATA at end of file). */
int tdc_pread_full(int fd, void *buf, size_t len, uint64_t off);
int tdc_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Strict RFC 4648 base64 (padding required, canonical) into out (cap bytes). */
int tdc_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len,
		      struct tdc_error *e) TDC_MUST_USE;

/* Constant-time comparison. */
bool tdc_ct_equal(const void *a, const void *b, size_t n);
/* True if all n bytes are zero. */
bool tdc_all_zero(const void *p, size_t n);
