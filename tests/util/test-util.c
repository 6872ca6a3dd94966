/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/rd.h"
#include "util/util.h"

static void rd_reads_little_endian(void **state)
{
	(void)state;
	const uint8_t b[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
	struct tdc_rd r;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	tdc_rd_init(&r, b, sizeof(b));
	assert_int_equal(tdc_rd_u8(&r, &u8, "a", NULL), 0);
	assert_int_equal(u8, 1);
	assert_int_equal(tdc_rd_u16le(&r, &u16, "b", NULL), 0);
	assert_int_equal(u16, 0x0302);
	assert_int_equal(tdc_rd_u32le(&r, &u32, "c", NULL), 0);
	assert_int_equal(u32, 0x07060504);
	assert_int_equal(tdc_rd_u64le(&r, &u64, "d", NULL), 0);
	assert_true(u64 == 0x0f0e0d0c0b0a0908ull);
	assert_true(tdc_rd_empty(&r));
}

static void rd_short_read_reports_offset(void **state)
{
	(void)state;
	const uint8_t b[6] = { 0 };
	struct tdc_rd r, sub;
	struct tdc_error e;
	uint32_t v;
	tdc_error_clear(&e);
	tdc_rd_init(&r, b, sizeof(b));
	assert_int_equal(tdc_rd_skip(&r, 3, "x", &e), 0);
	assert_int_equal(tdc_rd_u32le(&r, &v, "field_y", &e), TDC_E_FORMAT);
	assert_int_equal(e.offset, 3);
	assert_non_null(strstr(e.detail, "field_y"));
	/* cursor did not move on failure */
	assert_int_equal(tdc_rd_remaining(&r), 3);
	assert_int_equal(tdc_rd_sub(&r, 2, &sub, "s", NULL), 0);
	assert_int_equal(tdc_rd_offset(&sub), 3);
	assert_int_equal(tdc_rd_end(&r, "z", NULL), TDC_E_FORMAT);
}

static void rd_sub_is_bounded(void **state)
{
	(void)state;
	const uint8_t b[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct tdc_rd r, sub;
	uint32_t v;
	tdc_rd_init(&r, b, sizeof(b));
	assert_int_equal(tdc_rd_sub(&r, 3, &sub, "s", NULL), 0);
	assert_int_equal(tdc_rd_u32le(&sub, &v, "v", NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_rd_sub(&r, 6, &sub, "s2", NULL), TDC_E_FORMAT);
}

static void first_error_wins(void **state)
{
	(void)state;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(TDC_FAIL(&e, TDC_E_SIGNATURE, "first"), TDC_E_SIGNATURE);
	assert_int_equal(TDC_FAIL(&e, TDC_E_FORMAT, "second"), TDC_E_FORMAT);
	assert_int_equal(e.code, TDC_E_SIGNATURE);
	assert_string_equal(e.reason, "first");
	assert_string_equal(tdc_err_name(TDC_E_TCB_NOT_SUPPORTED), "tcb-not-supported");
}

static void hex_roundtrip_and_rejects(void **state)
{
	(void)state;
	uint8_t out[3];
	char txt[7];
	assert_int_equal(tdc_hex_decode("0aFf10", 6, out, 3, "h", NULL), 0);
	assert_string_equal(tdc_hex_encode(out, 3, txt), "0aff10");
	assert_int_equal(tdc_hex_decode("0aFf1", 5, out, 3, "h", NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_hex_decode("0aFg10", 6, out, 3, "h", NULL), TDC_E_FORMAT);
}

static void time_parse(void **state)
{
	(void)state;
	int64_t t;
	char buf[32];
	assert_int_equal(tdc_time_parse("2025-07-04T10:16:31Z", &t, "t", NULL), 0);
	assert_true(t == 1751624191);
	assert_string_equal(tdc_time_format(t, buf, sizeof(buf)), "2025-07-04T10:16:31Z");
	assert_int_equal(tdc_time_parse("2025-07-04T10:16:31.123Z", &t, "t", NULL), 0);
	assert_true(t == 1751624191);
	assert_int_equal(tdc_time_parse("2025-02-30T10:16:31Z", &t, "t", NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_time_parse("2025-07-04 10:16", &t, "t", NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_time_parse("2025-07-04T10:16:31+02:00", &t, "t", NULL), TDC_E_FORMAT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rd_reads_little_endian),
		cmocka_unit_test(rd_short_read_reports_offset),
		cmocka_unit_test(rd_sub_is_bounded),
		cmocka_unit_test(first_error_wins),
		cmocka_unit_test(hex_roundtrip_and_rejects),
		cmocka_unit_test(time_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
