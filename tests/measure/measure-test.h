/* SPDX-License-Identifier: Apache-2.0 */
/* Shared checks of the measurement parser tests (include after cmocka.h). */
#pragma once

#include <stdlib.h>
#include <string.h>
#include "tdcrypt/error.h"

/* A refusal is one of the input error codes, with a reason to show. */
static inline void mt_check_refusal(int r, const struct tdc_error *e)
{
	assert_true(r == TDC_E_FORMAT || r == TDC_E_UNSUPPORTED || r == TDC_E_LIMIT);
	assert_int_equal(e->code, r);
	assert_non_null(e->reason);
	assert_true(e->reason[0] != '\0');
}

typedef int (*mt_parse_fn)(const uint8_t *buf, size_t len, struct tdc_error *e);

/*
 * Every proper prefix of a valid input is refused with a reason, except a length in
 * `valid_at` (SIZE_MAX: none). Each prefix is an exact-size copy, so that ASan sees any
 * read past its end.
 */
static inline void mt_check_prefixes(const uint8_t *b, size_t len, mt_parse_fn parse,
				     size_t valid_at)
{
	for (size_t n = 0; n < len; n++) {
		uint8_t *c = malloc(n ? n : 1);
		assert_non_null(c);
		memcpy(c, b, n);
		struct tdc_error e;
		tdc_error_clear(&e);
		int r = parse(c, n, &e);
		if (n == valid_at) {
			assert_int_equal(r, 0);
		} else {
			if (r == 0)
				print_error("prefix of %zu bytes accepted\n", n);
			assert_int_not_equal(r, 0);
			mt_check_refusal(r, &e);
		}
		free(c);
	}
}
