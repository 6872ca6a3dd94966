/* SPDX-License-Identifier: Apache-2.0 */
/* The agent config file and its kernel command line overrides: one test per rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tdcrypt/agent.h"

#define PIN "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HDR "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define LUKS "\"luks\":{\"device\":\"/dev/vda2\",\"name\":\"root\",\"header_sha256\":\"" HDR "\"}"

static const char good[] =
    "{\"brokers\":[\"10.0.2.100:50051\",\"kbs.example\",\"[fd00::1]:4443\"],"
    "\"broker_spki_sha256\":[\"" PIN "\"],\"secret_id\":\"luks-root\"," LUKS ","
    "\"provider\":\"sim\",\"sim_dir\":\"/etc/tdcrypt/sim\","
    "\"timeouts\":{\"total_s\":60,\"attempt_s\":20,\"connect_s\":3},"
    "\"backoff\":{\"initial_ms\":100,\"max_ms\":2000},\"debug\":true}";

static int parse(const char *s, struct tdc_agent_config *c, struct tdc_error *e)
{
	return tdc_agent_config_parse((const uint8_t *)s, strlen(s), c, e);
}

static void test_good(void **state)
{
	struct tdc_agent_config c;
	struct tdc_error e = {0};
	(void)state;
	assert_int_equal(parse(good, &c, &e), 0);
	assert_int_equal(c.n_brokers, 3);
	assert_string_equal(c.brokers[0].host, "10.0.2.100");
	assert_int_equal(c.brokers[0].port, 50051);
	assert_true(c.brokers[0].is_ip);
	assert_string_equal(c.brokers[1].host, "kbs.example");
	assert_int_equal(c.brokers[1].port, 50051);
	assert_false(c.brokers[1].is_ip);
	assert_string_equal(c.brokers[2].host, "fd00::1");
	assert_int_equal(c.brokers[2].port, 4443);
	assert_true(c.brokers[2].is_ip);
	assert_int_equal(c.n_pins, 1);
	assert_int_equal(c.pins[0][0], 0x00);
	assert_int_equal(c.pins[0][31], 0xff);
	assert_string_equal(c.secret_id, "luks-root");
	assert_string_equal(c.luks_device, "/dev/vda2");
	assert_string_equal(c.luks_name, "root");
	assert_int_equal(c.header_sha256[0], 0xff);
	assert_int_equal(c.keyslot, 0);
	assert_int_equal(c.provider, TDC_PROVIDER_SIM);
	assert_int_equal(c.total_timeout_ms, 60000);
	assert_int_equal(c.attempt_timeout_ms, 20000);
	assert_int_equal(c.connect_timeout_ms, 3000);
	assert_int_equal(c.backoff_initial_ms, 100);
	assert_int_equal(c.backoff_max_ms, 2000);
	assert_true(c.debug);
	assert_int_equal(tdc_agent_config_check(&c, &e), 0);
	tdc_agent_config_free(&c);
}

struct bad {
	const char *json;
	int code;
	const char *reason;
};

#define BASE_PIN "\"broker_spki_sha256\":[\"" PIN "\"]"
static const struct bad bads[] = {
    {"{\"brokers\":[\"a:1\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS ",\"extra\":1}", TDC_E_FORMAT,
     "unknown config member"},
    {"{" BASE_PIN ",\"secret_id\":\"s\"," LUKS "}", TDC_E_FORMAT, NULL}, /* no brokers */
    {"{\"brokers\":[]," BASE_PIN ",\"secret_id\":\"s\"," LUKS "}", TDC_E_FORMAT,
     "JSON array too short"},
    {"{\"brokers\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]," BASE_PIN
     ",\"secret_id\":\"s\"," LUKS "}",
     TDC_E_LIMIT, "JSON array too long"},
    {"{\"brokers\":[\"a:0\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS "}", TDC_E_FORMAT,
     "broker address: port out of range"},
    {"{\"brokers\":[\"a:65536\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS "}", TDC_E_FORMAT,
     "broker address: port out of range"},
    {"{\"brokers\":[\"a:x\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS "}", TDC_E_FORMAT,
     "broker address: bad port"},
    {"{\"brokers\":[\"fd00::1\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS "}", TDC_E_FORMAT,
     "broker address: IPv6 literals need brackets"},
    {"{\"brokers\":[\"a b\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS "}", TDC_E_FORMAT,
     "broker address: bad host name"},
    {"{\"brokers\":[1]," BASE_PIN ",\"secret_id\":\"s\"," LUKS "}", TDC_E_FORMAT,
     "broker is not a string"},
    {"{\"brokers\":[\"a\"],\"broker_spki_sha256\":[\"00\"],\"secret_id\":\"s\"," LUKS "}",
     TDC_E_FORMAT, NULL},
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\".hidden\"," LUKS "}", TDC_E_FORMAT,
     "secret_id: 1-64 of [A-Za-z0-9._-], not starting with '.'"},
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"a/b\"," LUKS "}", TDC_E_FORMAT,
     "secret_id: 1-64 of [A-Za-z0-9._-], not starting with '.'"},
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\"}", TDC_E_FORMAT, NULL}, /* no luks */
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\",\"luks\":{\"device\":\"/d\","
     "\"name\":\"r\",\"header_sha256\":\"00\"}}",
     TDC_E_FORMAT, NULL},
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\",\"luks\":{\"device\":\"/d\","
     "\"name\":\"r/x\",\"header_sha256\":\"" HDR "\"}}",
     TDC_E_FORMAT, "luks.name: bad mapping name"},
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\",\"luks\":{\"device\":\"/d\","
     "\"name\":\"r\",\"header_sha256\":\"" HDR "\",\"keyslot\":32}}",
     TDC_E_FORMAT, NULL},
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\",\"luks\":{\"device\":\"/d\","
     "\"name\":\"r\",\"header_sha256\":\"" HDR "\",\"x\":1}}",
     TDC_E_FORMAT, "unknown config member"},
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS ",\"provider\":\"tpm\"}",
     TDC_E_FORMAT, "unknown quote provider"},
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS ",\"timeouts\":{\"total_s\":0}}",
     TDC_E_FORMAT, NULL},
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS ",\"timeouts\":{\"total\":5}}",
     TDC_E_FORMAT, "unknown config member"},
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS ",\"debug\":1}", TDC_E_FORMAT,
     NULL},
    {"{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS "} x", TDC_E_FORMAT, NULL},
    {"[1]", TDC_E_FORMAT, "JSON is not an object"},
};

static void test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct tdc_agent_config c;
		struct tdc_error e = {0};
		int rc = parse(bads[i].json, &c, &e);
		if (rc != bads[i].code || (bads[i].reason && strcmp(e.reason, bads[i].reason)))
			fail_msg("case %zu: rc %d reason '%s'", i, rc, e.reason ? e.reason : "");
	}
}

static void check_fails(const char *json, const char *reason)
{
	struct tdc_agent_config c;
	struct tdc_error e = {0};
	assert_int_equal(parse(json, &c, &e), 0);
	assert_int_equal(tdc_agent_config_check(&c, &e), TDC_E_USAGE);
	assert_string_equal(e.reason, reason);
	tdc_agent_config_free(&c);
}

static void test_check(void **state)
{
	(void)state;
	check_fails("{\"brokers\":[\"a\"],\"secret_id\":\"s\"," LUKS "}",
		    "neither broker_spki_sha256 nor broker_ca: the broker cannot be authenticated");
	check_fails("{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS
		    ",\"provider\":\"sim\"}",
		    "provider sim needs sim_dir");
	check_fails("{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS
		    ",\"timeouts\":{\"total_s\":10,\"attempt_s\":20}}",
		    "timeouts must satisfy connect <= attempt <= total");
	check_fails("{\"brokers\":[\"a\"]," BASE_PIN ",\"secret_id\":\"s\"," LUKS
		    ",\"backoff\":{\"initial_ms\":5000,\"max_ms\":100}}",
		    "backoff.initial_ms > backoff.max_ms");
	/* a CA alone is enough */
	struct tdc_agent_config c;
	struct tdc_error e = {0};
	const char *ca =
	    "{\"brokers\":[\"a\"],\"broker_ca\":\"/ca.pem\",\"secret_id\":\"s\"," LUKS "}";
	assert_int_equal(parse(ca, &c, &e), 0);
	assert_int_equal(tdc_agent_config_check(&c, &e), 0);
	tdc_agent_config_free(&c);
}

static void test_cmdline(void **state)
{
	struct tdc_agent_config c;
	struct tdc_error e = {0};
	(void)state;
	assert_int_equal(parse(good, &c, &e), 0);
	const char *cl =
	    "BOOT_IMAGE=/vmlinuz root=/dev/mapper/root tdcrypt.broker=192.168.1.5:7000,"
	    "kbs2 tdcrypt.provider=\"configfs\" tdcrypt.timeout=5 tdcrypt.nomarker "
	    "quiet\n";
	c.debug = false;
	assert_int_equal(tdc_agent_config_cmdline(&c, cl, strlen(cl), &e), 0);
	assert_int_equal(c.n_brokers, 2);
	assert_string_equal(c.brokers[0].host, "192.168.1.5");
	assert_int_equal(c.brokers[0].port, 7000);
	assert_string_equal(c.brokers[1].host, "kbs2");
	assert_int_equal(c.provider, TDC_PROVIDER_CONFIGFS);
	assert_int_equal(c.total_timeout_ms, 5000);
	assert_true(c.attempt_timeout_ms <= 5000 && c.connect_timeout_ms <= c.attempt_timeout_ms);
	assert_false(c.debug);
	assert_int_equal(tdc_agent_config_cmdline(&c, "tdcrypt.debug", 13, &e), 0);
	assert_true(c.debug);
	assert_int_equal(tdc_agent_config_cmdline(&c, "tdcrypt.provider=vsock", 22, &e), 0);
	assert_int_equal(c.provider, TDC_PROVIDER_TDX_GUEST);
	/* pins are not overridable: the word is ignored */
	assert_int_equal(tdc_agent_config_cmdline(&c, "tdcrypt.pin=00", 14, &e), 0);
	assert_int_equal(c.n_pins, 1);

	static const struct {
		const char *s;
		const char *reason;
	} bad[] = {
	    {"tdcrypt.broker=", "empty broker address"},
	    {"tdcrypt.broker", "tdcrypt.broker needs a value"},
	    {"tdcrypt.broker=a:99999", "broker address: port out of range"},
	    {"tdcrypt.provider=x", "unknown quote provider"},
	    {"tdcrypt.timeout=0", "tdcrypt.timeout: out of range"},
	    {"tdcrypt.timeout=1x", "tdcrypt.timeout: seconds expected"},
	    {"tdcrypt.broker=a,b,c,d,e,f,g,h,i", "tdcrypt.broker: too many brokers"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tdc_error e2 = {0};
		int rc = tdc_agent_config_cmdline(&c, bad[i].s, strlen(bad[i].s), &e2);
		if (rc >= 0 || strcmp(e2.reason, bad[i].reason))
			fail_msg("case %zu: rc %d reason '%s'", i, rc, e2.reason ? e2.reason : "");
	}
	assert_int_equal(c.n_brokers, 2); /* failed overrides left the list alone */
	tdc_agent_config_free(&c);
}

static void test_load_missing(void **state)
{
	struct tdc_agent_config c;
	struct tdc_error e = {0};
	(void)state;
	assert_int_equal(tdc_agent_config_load("/nonexistent/agent.json", &c, &e), TDC_E_IO);
	tdc_agent_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),         cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_check),        cmocka_unit_test(test_cmdline),
	    cmocka_unit_test(test_load_missing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
