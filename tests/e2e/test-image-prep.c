/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The preparation VM's pure parts (lib/image/prep.c): the serial log verdict (guest-controlled
 * bytes: first OK/FAIL wins, markers only at a line start, non-printable bytes masked, numbers
 * bounded), the payload manifest lines (paths the prep script takes as is), and which guest step
 * AUTO picks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "image/prep.h"
#include "tdcrypt/image.h"

static void scan(const char *log, struct tdc_prep_status *st)
{
	tdc_prep_scan((const uint8_t *)log, strlen(log), st);
}

static void test_scan_ok(void **state)
{
	struct tdc_prep_status st;

	(void)state;
	scan("[    1.0] kernel noise\r\nTDCRYPT-PREP-STEP 1/6 payload\r\n"
	     "update-initramfs: Generating /boot/initrd.img-6.1.0\n"
	     "TDCRYPT-PREP-STEP 3/6 update-initramfs\nTDCRYPT-PREP-OK count=2\r\n"
	     "TDCRYPT-PREP-FAIL late \"ignored\"\n", &st);
	assert_true(st.ok);
	assert_false(st.failed);
	assert_int_equal(st.count, 2);
	assert_int_equal(st.step, 3);
	assert_int_equal(st.steps, 6);
	assert_string_equal(st.step_name, "update-initramfs");
}

static void test_scan_fail(void **state)
{
	struct tdc_prep_status st;

	(void)state;
	scan("TDCRYPT-PREP-STEP 2/6 links\nTDCRYPT-PREP-FAIL libs missing: libjson-c.so.5 \x1b[31m"
	     "\x01\nTDCRYPT-PREP-OK count=1\n", &st);
	assert_true(st.failed);
	assert_false(st.ok);
	assert_string_equal(st.fail_code, "libs");
	assert_string_equal(st.fail_text, "missing: libjson-c.so.5 ?[31m?");
	/* a line that only contains the marker later on is not a verdict */
	scan("x TDCRYPT-PREP-OK count=1\n  TDCRYPT-PREP-FAIL a b\n", &st);
	assert_false(st.ok);
	assert_false(st.failed);
	/* no newline at the end, no text after the code */
	scan("TDCRYPT-PREP-FAIL generator", &st);
	assert_true(st.failed);
	assert_string_equal(st.fail_code, "generator");
	assert_string_equal(st.fail_text, "");
}

static void test_scan_malformed(void **state)
{
	struct tdc_prep_status st;
	char big[600];

	(void)state;
	/* OK needs exactly count=<digits> */
	scan("TDCRYPT-PREP-OK count=\nTDCRYPT-PREP-OK count=3x\nTDCRYPT-PREP-OK 3\n", &st);
	assert_false(st.ok);
	/* numbers are bounded (6 digits), steps must not exceed their total */
	scan("TDCRYPT-PREP-OK count=99999999999\n", &st);
	assert_false(st.ok);
	scan("TDCRYPT-PREP-STEP 7/6 x\nTDCRYPT-PREP-STEP 1/x y\n", &st);
	assert_int_equal(st.step, 0);
	/* an overlong text is cut to the field */
	memset(big, 'A', sizeof(big));
	memcpy(big, "TDCRYPT-PREP-FAIL c ", 20);
	big[sizeof(big) - 1] = '\0';
	scan(big, &st);
	assert_true(st.failed);
	assert_int_equal(strlen(st.fail_text), sizeof(st.fail_text) - 1);
	/* NUL bytes in the log: bounded by len, masked */
	static const uint8_t nul[] = "TDCRYPT-PREP-FAIL x a\0b\n";
	tdc_prep_scan(nul, sizeof(nul) - 1, &st);
	assert_true(st.failed);
	assert_string_equal(st.fail_text, "a?b");
	tdc_prep_scan(NULL, 0, &st);
	assert_false(st.ok || st.failed);
}

static void test_manifest(void **state)
{
	char line[128];
	struct tdc_error e = { 0 };

	(void)state;
	assert_int_equal(tdc_prep_manifest_file(line, sizeof(line), 0755,
						"/usr/local/sbin/tdcrypt-agent", &e), 0);
	assert_string_equal(line, "file 0755 /usr/local/sbin/tdcrypt-agent\n");
	assert_int_equal(tdc_prep_manifest_file(line, sizeof(line), 0600,
						"/etc/tdcrypt/sim/pki/ca@1.pem", &e), 0);
	static const char *const bad[] = { "relative", "/", "/a b", "/a\nb", "/a/../b", "/a/..",
					   "/a/./b", "//a", "/a$b", "/a;b", "/a'b", NULL };
	for (size_t i = 0; bad[i]; i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(tdc_prep_manifest_file(line, sizeof(line), 0644, bad[i], &e),
				 TDC_E_USAGE);
	}
	memset(&e, 0, sizeof(e));
	assert_int_equal(tdc_prep_manifest_file(line, sizeof(line), 010644, "/a", &e), TDC_E_USAGE);
	memset(&e, 0, sizeof(e));
	assert_int_equal(tdc_prep_manifest_file(line, 12, 0644, "/etc/fstab", &e), TDC_E_LIMIT);
}

static void test_guest_step_pick(void **state)
{
	(void)state;
	assert_int_equal(tdc_image_guest_step_pick(TDC_GUEST_STEP_AUTO, 0), TDC_GUEST_STEP_CHROOT);
	assert_int_equal(tdc_image_guest_step_pick(TDC_GUEST_STEP_AUTO, 1000), TDC_GUEST_STEP_VM);
	assert_int_equal(tdc_image_guest_step_pick(TDC_GUEST_STEP_VM, 0), TDC_GUEST_STEP_VM);
	assert_int_equal(tdc_image_guest_step_pick(TDC_GUEST_STEP_CHROOT, 1000),
			 TDC_GUEST_STEP_CHROOT);
	assert_string_equal(tdc_image_guest_step_name(TDC_GUEST_STEP_VM), "vm");
	assert_string_equal(tdc_image_guest_step_name(TDC_GUEST_STEP_CHROOT), "chroot");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_ok),
		cmocka_unit_test(test_scan_fail),
		cmocka_unit_test(test_scan_malformed),
		cmocka_unit_test(test_manifest),
		cmocka_unit_test(test_guest_step_pick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
