/* SPDX-License-Identifier: Apache-2.0 */
/* The capped writer: byte order, patching, caps and sticky errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/rd.h"
#include "util/wr.h"

static void wr_writes_each_width(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t *out = NULL;
	size_t len = 0;
	static const uint8_t want[] = { 0x01, 0x03, 0x02, 0x07, 0x06, 0x05, 0x04,
					0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0x09, 0x08,
					0x11, 0x12, 0x13, 0x14, 'a', 'b', 0, 0,
					'x', '=', '4', '2' };
	tdc_wr_init_alloc(&w, 1024);
	assert_int_equal(tdc_wr_u8(&w, 1), 0);
	assert_int_equal(tdc_wr_u16le(&w, 0x0203), 0);
	assert_int_equal(tdc_wr_u32le(&w, 0x04050607), 0);
	assert_int_equal(tdc_wr_u64le(&w, 0x08090a0b0c0d0e0full), 0);
	assert_int_equal(tdc_wr_u32be(&w, 0x11121314), 0);
	assert_int_equal(tdc_wr_bytes(&w, "ab", 2), 0);
	assert_int_equal(tdc_wr_zeros(&w, 2), 0);
	assert_int_equal(tdc_wr_str(&w, "x="), 0);
	assert_int_equal(tdc_wr_fmt(&w, "%d", 42), 0);
	assert_int_equal(tdc_wr_finish(&w, &out, &len, NULL), 0);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	free(out);
}

static void wr_round_trips_through_reader(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t *out = NULL;
	size_t len = 0;
	tdc_wr_init_alloc(&w, 64);
	tdc_wr_u16le(&w, 0xbeef);
	tdc_wr_u32le(&w, 0xdeadbeef);
	tdc_wr_u64le(&w, 0x0123456789abcdefull);
	tdc_wr_u32be(&w, 0xcafef00d);
	assert_int_equal(tdc_wr_finish(&w, &out, &len, NULL), 0);

	struct tdc_rd r;
	uint16_t a;
	uint32_t b, d;
	uint64_t c;
	tdc_rd_init(&r, out, len);
	assert_int_equal(tdc_rd_u16le(&r, &a, "a", NULL), 0);
	assert_int_equal(tdc_rd_u32le(&r, &b, "b", NULL), 0);
	assert_int_equal(tdc_rd_u64le(&r, &c, "c", NULL), 0);
	assert_int_equal(tdc_rd_u32be(&r, &d, "d", NULL), 0);
	assert_true(tdc_rd_empty(&r));
	assert_int_equal(a, 0xbeef);
	assert_int_equal(b, 0xdeadbeef);
	assert_true(c == 0x0123456789abcdefull);
	assert_int_equal(d, 0xcafef00d);
	free(out);
}

static void wr_reserve_and_patch(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t *out = NULL;
	size_t len = 0, off = 99, off16 = 99;
	tdc_wr_init_alloc(&w, 64);
	tdc_wr_u8(&w, 0xaa);
	assert_int_equal(tdc_wr_reserve(&w, 4, &off), 0);
	assert_int_equal(off, 1);
	assert_int_equal(tdc_wr_reserve(&w, 2, &off16), 0);
	tdc_wr_bytes(&w, "xyz", 3);
	assert_int_equal(tdc_wr_patch_u32le(&w, off, (uint32_t)(tdc_wr_len(&w) - off - 4)), 0);
	assert_int_equal(tdc_wr_patch_u16le(&w, off16, 0x0102), 0);
	assert_int_equal(tdc_wr_finish(&w, &out, &len, NULL), 0);
	static const uint8_t want[] = { 0xaa, 5, 0, 0, 0, 2, 1, 'x', 'y', 'z' };
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	free(out);
}

static void wr_patch_out_of_range_is_usage(void **state)
{
	(void)state;
	struct tdc_wr w;
	struct tdc_error e;
	uint8_t *out = (uint8_t *)&w;
	size_t len = 7;
	tdc_error_clear(&e);
	tdc_wr_init_alloc(&w, 64);
	tdc_wr_zeros(&w, 4);
	assert_int_equal(tdc_wr_patch_u32le(&w, 1, 0), TDC_E_USAGE);
	assert_int_equal(tdc_wr_u8(&w, 1), TDC_E_USAGE); /* sticky */
	assert_int_equal(tdc_wr_finish(&w, &out, &len, &e), TDC_E_USAGE);
	assert_null(out);
	assert_int_equal(len, 0);
	assert_int_equal(e.code, TDC_E_USAGE);
}

static void wr_alloc_cap_is_exact(void **state)
{
	(void)state;
	struct tdc_wr w;
	struct tdc_error e;
	uint8_t *out = NULL;
	size_t len = 0;

	/* exactly at the cap: fine */
	tdc_wr_init_alloc(&w, 1000);
	assert_int_equal(tdc_wr_zeros(&w, 999), 0);
	assert_int_equal(tdc_wr_u8(&w, 7), 0);
	assert_int_equal(tdc_wr_finish(&w, &out, &len, NULL), 0);
	assert_int_equal(len, 1000);
	assert_int_equal(out[999], 7);
	free(out);

	/* one past the cap: TDC_E_LIMIT, sticky, nothing handed out */
	tdc_error_clear(&e);
	tdc_wr_init_alloc(&w, 1000);
	assert_int_equal(tdc_wr_zeros(&w, 1000), 0);
	assert_int_equal(tdc_wr_u8(&w, 7), TDC_E_LIMIT);
	assert_int_equal(tdc_wr_error(&w), TDC_E_LIMIT);
	assert_null(tdc_wr_data(&w));
	assert_int_equal(tdc_wr_u8(&w, 7), TDC_E_LIMIT);
	assert_int_equal(tdc_wr_fmt(&w, "%s", "more"), TDC_E_LIMIT);
	assert_int_equal(tdc_wr_finish(&w, &out, &len, &e), TDC_E_LIMIT);
	assert_null(out);
	assert_int_equal(e.code, TDC_E_LIMIT);
	assert_non_null(strstr(e.detail, "1000"));

	/* a huge single write does not overflow the size arithmetic */
	tdc_wr_init_alloc(&w, 16);
	tdc_wr_u8(&w, 1);
	assert_int_equal(tdc_wr_zeros(&w, SIZE_MAX), TDC_E_LIMIT);
	tdc_wr_free(&w);
}

static void wr_fixed_buffer_never_overflows(void **state)
{
	(void)state;
	uint8_t buf[8];
	struct tdc_wr w;
	uint8_t *out = NULL;
	size_t len = 0;

	memset(buf, 0xcc, sizeof(buf));
	tdc_wr_init_fixed(&w, buf, 6);
	assert_int_equal(tdc_wr_u32le(&w, 0x01020304), 0);
	assert_int_equal(tdc_wr_u32le(&w, 0x05060708), TDC_E_LIMIT);
	assert_int_equal(tdc_wr_len(&w), 4);
	assert_int_equal(tdc_wr_finish(&w, &out, &len, NULL), TDC_E_LIMIT);
	/* a failed write writes nothing, not even the part that fits */
	assert_memory_equal(buf + 4, "\xcc\xcc\xcc\xcc", 4);

	tdc_wr_init_fixed(&w, buf, sizeof(buf));
	assert_int_equal(tdc_wr_u64le(&w, 1), 0);
	assert_int_equal(tdc_wr_finish(&w, &out, &len, NULL), 0);
	assert_ptr_equal(out, buf);
	assert_int_equal(len, 8);
}

static void wr_long_fmt_and_empty(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t *out = NULL;
	size_t len = 0;
	char big[1001];
	memset(big, 'q', 1000);
	big[1000] = '\0';

	tdc_wr_init_alloc(&w, 4096);
	assert_int_equal(tdc_wr_fmt(&w, "<%s>", big), 0);
	assert_int_equal(tdc_wr_finish(&w, &out, &len, NULL), 0);
	assert_int_equal(len, 1002);
	assert_int_equal(out[0], '<');
	assert_int_equal(out[1001], '>');
	free(out);

	/* long fmt exactly at the cap, then one past it */
	tdc_wr_init_alloc(&w, 1002);
	assert_int_equal(tdc_wr_fmt(&w, "<%s>", big), 0);
	tdc_wr_free(&w);
	tdc_wr_init_alloc(&w, 1001);
	assert_int_equal(tdc_wr_fmt(&w, "<%s>", big), TDC_E_LIMIT);
	tdc_wr_free(&w);

	/* nothing written: a valid empty buffer */
	tdc_wr_init_alloc(&w, 16);
	assert_int_equal(tdc_wr_finish(&w, &out, &len, NULL), 0);
	assert_non_null(out);
	assert_int_equal(len, 0);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(wr_writes_each_width),
		cmocka_unit_test(wr_round_trips_through_reader),
		cmocka_unit_test(wr_reserve_and_patch),
		cmocka_unit_test(wr_patch_out_of_range_is_usage),
		cmocka_unit_test(wr_alloc_cap_is_exact),
		cmocka_unit_test(wr_fixed_buffer_never_overflows),
		cmocka_unit_test(wr_long_fmt_and_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
