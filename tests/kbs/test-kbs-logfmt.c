/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's log formats (lib/kbs/logfmt.c): the format names, systemd's
 * $JOURNAL_STREAM rule, the text form (a hostile value cannot make a line or a field of
 * its own) and the journal fields (names, PRIORITY from the level, nulls left out).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tdcrypt/kbs.h"

static void test_format_names(void **state)
{
	(void)state;
	struct tdc_error e;
	tdc_error_clear(&e);
	enum tdc_kbs_log_format f;
	assert_int_equal(tdc_kbs_log_format_parse("journal", &f, &e), 0);
	assert_int_equal(f, TDC_KBS_LOG_JOURNAL);
	assert_int_equal(tdc_kbs_log_format_parse("text", &f, &e), 0);
	assert_int_equal(f, TDC_KBS_LOG_TEXT);
	assert_int_equal(tdc_kbs_log_format_parse("json", &f, &e), 0);
	assert_int_equal(f, TDC_KBS_LOG_JSON);
	assert_int_equal(tdc_kbs_log_format_parse("auto", &f, &e), 0);
	assert_int_equal(f, TDC_KBS_LOG_AUTO);
	assert_true(tdc_kbs_log_format_parse("JSON", &f, &e) < 0);
	assert_int_equal(e.code, TDC_E_USAGE);
	assert_true(tdc_kbs_log_format_parse("", &f, &e) < 0);
	assert_true(tdc_kbs_log_format_parse(NULL, &f, &e) < 0);
}

static void test_config_key(void **state)
{
	(void)state;
	struct tdc_kbs_config c;
	struct tdc_error e;
	tdc_error_clear(&e);
	bool help;
	char *ok[] = { "kbs", "--log", "text" }, *bad[] = { "kbs", "--log", "syslog" };
	tdc_kbs_config_init(&c);
	assert_int_equal(tdc_kbs_config_args(3, ok, &c, &help, &e), 0);
	assert_string_equal(c.log, "text");
	assert_true(tdc_kbs_config_args(3, bad, &c, &help, &e) < 0);
	assert_int_equal(e.code, TDC_E_USAGE);
	tdc_kbs_config_free(&c);
}

static void test_journal_stream(void **state)
{
	(void)state;
	assert_true(tdc_kbs_journal_stream_is("64769:1234", 64769, 1234));
	assert_false(tdc_kbs_journal_stream_is("64769:1234", 64769, 1235));
	assert_false(tdc_kbs_journal_stream_is("64769:1234", 64768, 1234));
	assert_false(tdc_kbs_journal_stream_is("64769:12345", 64769, 1234));
	assert_false(tdc_kbs_journal_stream_is("", 0, 0));
	assert_false(tdc_kbs_journal_stream_is(NULL, 0, 0));
}

static void test_text(void **state)
{
	(void)state;
	struct tdc_error e;
	tdc_error_clear(&e);
	char out[512];
	int n = tdc_kbs_log_text("{\"ts\":\"2026-01-01T00:00:00Z\",\"level\":\"warning\","
				 "\"event\":\"request\",\"secret_id\":\"luks-root\",\"status\":403,"
				 "\"agent\":null,\"reason\":\"a b\\n2026 info x=\\\"y\\\"\"}",
				 out, sizeof(out), &e);
	assert_true(n > 0);
	/* the newline and the quotes of a value escaped: still one line, one reason field */
	assert_string_equal(out, "2026-01-01T00:00:00Z warning request secret_id=luks-root "
				 "status=403 reason=\"a b\\x0a2026 info x=\\\"y\\\"\"");
	assert_null(strchr(out, '\n'));
	assert_true(tdc_kbs_log_text("{\"event\":\"x\",\"reason\":\"0123456789\"}", out, 16, &e) < 0);
	assert_true(tdc_kbs_log_text("not json", out, sizeof(out), &e) < 0);
	assert_true(tdc_kbs_log_text("[1]", out, sizeof(out), &e) < 0);
}

static const char *find(char **f, size_t n, const char *name)
{
	size_t l = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (!strncmp(f[i], name, l) && f[i][l] == '=')
			return f[i] + l + 1;
	return NULL;
}

static void test_fields(void **state)
{
	(void)state;
	struct tdc_error e;
	tdc_error_clear(&e);
	char **f;
	size_t n;
	assert_int_equal(tdc_kbs_log_fields("{\"ts\":\"2026-01-01T00:00:00Z\",\"level\":\"info\","
					    "\"event\":\"request\",\"request_id\":\"r-1\","
					    "\"secret_id\":\"luks-root\",\"agent\":null,"
					    "\"duration_ms\":3,\"peer\":\"127.0.0.1:5\"}",
					    &f, &n, &e),
			 0);
	assert_string_equal(find(f, n, "MESSAGE"),
			    "request request_id=r-1 secret_id=luks-root duration_ms=3 peer=127.0.0.1:5");
	assert_string_equal(find(f, n, "PRIORITY"), "6");
	assert_string_equal(find(f, n, "SYSLOG_IDENTIFIER"), "tdcrypt-kbs");
	assert_string_equal(find(f, n, "TDCRYPT_EVENT"), "request");
	assert_string_equal(find(f, n, "TDCRYPT_REQUEST_ID"), "r-1");
	assert_string_equal(find(f, n, "TDCRYPT_SECRET_ID"), "luks-root");
	assert_string_equal(find(f, n, "TDCRYPT_DURATION_MS"), "3");
	assert_null(find(f, n, "TDCRYPT_AGENT"));
	assert_null(find(f, n, "TDCRYPT_LEVEL"));
	tdc_kbs_log_fields_free(f, n);

	const struct {
		const char *level, *pri;
	} lv[] = { { "error", "3" }, { "warning", "4" }, { "WARNING", "4" }, { "other", "5" } };
	for (size_t i = 0; i < sizeof(lv) / sizeof(lv[0]); i++) {
		char line[128];
		snprintf(line, sizeof(line), "{\"level\":\"%s\",\"event\":\"x\",\"a-b.c\":1}", lv[i].level);
		assert_int_equal(tdc_kbs_log_fields(line, &f, &n, &e), 0);
		assert_string_equal(find(f, n, "PRIORITY"), lv[i].pri);
		assert_string_equal(find(f, n, "TDCRYPT_A_B_C"), "1");
		tdc_kbs_log_fields_free(f, n);
	}
	assert_true(tdc_kbs_log_fields("{", &f, &n, &e) < 0);
	assert_null(f);
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test(test_format_names), cmocka_unit_test(test_config_key),
		cmocka_unit_test(test_journal_stream), cmocka_unit_test(test_text),
		cmocka_unit_test(test_fields),
	};
	return cmocka_run_group_tests(t, NULL, NULL);
}
