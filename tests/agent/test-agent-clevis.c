/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The clevis pin's JWE (lib/agent/clevis.c): round trip; another secret, an altered
 * header, iv, ciphertext or tag do not open; the header carries the brokers, pins, secret
 * ID and salt and nothing else; the pin's config and the JWE are parsed strictly.
 * (tests/agent/clevis.sh runs the pin with Debian's clevis against the real broker.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tdcrypt/agent.h"

static const char PIN[] = "1aec2e4b5223817b0705092378bac150557437a356423a494105c1a430818281";
static const uint8_t KEY[32] = "0123456789abcdef0123456789abcdef";

static void config(struct tdc_agent_config *c, const char *json, int want)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	tdc_agent_config_defaults(c);
	int rc = tdc_clevis_config_parse(json, strlen(json), c, &e);
	if (want == 0 && rc != 0)
		fail_msg("%s: %s", json, e.reason);
	assert_int_equal(rc, want);
}

static char *encrypt(const char *pt)
{
	struct tdc_agent_config c;
	struct tdc_error e;
	char cfg[256], *jwe = NULL;
	tdc_error_clear(&e);
	snprintf(cfg, sizeof(cfg),
		 "{\"broker\":[\"127.0.0.1:5\",\"[::1]:6\",\"kbs.example\"],\"pin\":\"%s\","
		 "\"secret\":\"disk-1\"}",
		 PIN);
	config(&c, cfg, 0);
	assert_int_equal(tdc_clevis_encrypt(&c, KEY, sizeof(KEY), (const uint8_t *)pt,
					    strlen(pt), &jwe, &e),
			 0);
	tdc_agent_config_free(&c);
	return jwe;
}

static int decrypt(const char *jwe, const uint8_t *key, size_t key_len, char *out, size_t cap)
{
	struct tdc_error e;
	struct tdc_secret pt;
	tdc_error_clear(&e);
	int rc = tdc_clevis_decrypt(jwe, strlen(jwe), key, key_len, &pt, &e);
	if (rc == 0) {
		assert_true(pt.len < cap);
		memcpy(out, pt.data, pt.len);
		out[pt.len] = 0;
		tdc_secret_free(&pt);
	}
	return rc;
}

static void test_round_trip(void **state)
{
	(void)state;
	char out[64];
	char *jwe = encrypt("the passphrase");
	assert_int_equal(decrypt(jwe, KEY, sizeof(KEY), out, sizeof(out)), 0);
	assert_string_equal(out, "the passphrase");
	/* a trailing newline (a JWE from a file) is fine */
	char *nl = malloc(strlen(jwe) + 2);
	sprintf(nl, "%s\n", jwe);
	assert_int_equal(decrypt(nl, KEY, sizeof(KEY), out, sizeof(out)), 0);
	free(nl);
	/* two encryptions differ (salt and iv are fresh) */
	char *jwe2 = encrypt("the passphrase");
	assert_string_not_equal(jwe, jwe2);
	free(jwe2);

	struct tdc_agent_config h;
	struct tdc_error e;
	tdc_error_clear(&e);
	tdc_agent_config_defaults(&h);
	assert_int_equal(tdc_clevis_header(jwe, strlen(jwe), &h, &e), 0);
	assert_int_equal(h.n_brokers, 3);
	assert_string_equal(h.brokers[1].host, "::1");
	assert_int_equal(h.brokers[1].port, 6);
	assert_int_equal(h.brokers[2].port, 50051);
	assert_int_equal(h.n_pins, 1);
	assert_string_equal(h.secret_id, "disk-1");
	tdc_agent_config_free(&h);
	free(jwe);
}

static void test_wrong_key(void **state)
{
	(void)state;
	char out[64];
	uint8_t other[32];
	memcpy(other, KEY, sizeof(other));
	other[31] ^= 1;
	char *jwe = encrypt("pw");
	assert_int_equal(decrypt(jwe, other, sizeof(other), out, sizeof(out)), TDC_E_CRYPTO);
	/* a secret too short to be a key is refused, not stretched */
	assert_int_equal(decrypt(jwe, KEY, 8, out, sizeof(out)), TDC_E_USAGE);
	free(jwe);
}

/* Flip one character of part i (0 header .. 4 tag); every part is authenticated. */
static void test_altered(void **state)
{
	(void)state;
	char out[64];
	for (int part = 0; part < 5; part++) {
		if (part == 1)
			continue; /* empty for "dir" */
		char *jwe = encrypt("pw");
		char *p = jwe;
		for (int i = 0; i < part; i++)
			p = strchr(p, '.') + 1;
		/* the 3rd character: whole bits of the decoded bytes change */
		p[2] = p[2] == 'A' ? 'B' : 'A';
		int rc = decrypt(jwe, KEY, sizeof(KEY), out, sizeof(out));
		assert_true(rc < 0);
		free(jwe);
	}
}

static void test_header_has_no_key(void **state)
{
	(void)state;
	char *jwe = encrypt("SECRET-PASSPHRASE");
	/* the whole JWE is base64url: neither the key nor the plaintext appears as such, and
	 * neither does the header decoded (checked with jose in clevis.sh) */
	assert_null(strstr(jwe, "0123456789abcdef"));
	assert_null(strstr(jwe, "SECRET-PASSPHRASE"));
	assert_non_null(strstr(jwe, "..")); /* dir: no encrypted key */
	free(jwe);
}

static void test_config_strict(void **state)
{
	(void)state;
	struct tdc_agent_config c;
	char buf[300];
	snprintf(buf, sizeof(buf), "{\"broker\":\"h:1\",\"pin\":\"%s\",\"secret\":\"s\",\"key\":\"x\"}", PIN);
	config(&c, buf, TDC_E_FORMAT);
	snprintf(buf, sizeof(buf), "{\"broker\":\"h:1\",\"pin\":\"%s\",\"secret\":\"s\",\"salt\":\"x\"}", PIN);
	config(&c, buf, TDC_E_FORMAT); /* salt is the pin's, in the header only */
	config(&c, "{\"broker\":\"h:1\",\"secret\":\"s\"}", TDC_E_FORMAT);
	snprintf(buf, sizeof(buf), "{\"pin\":\"%s\",\"secret\":\"s\"}", PIN);
	config(&c, buf, TDC_E_FORMAT);
	snprintf(buf, sizeof(buf), "{\"broker\":\"h:1\",\"pin\":\"%s\"}", PIN);
	assert_true(tdc_clevis_config_parse(buf, strlen(buf), &c, &(struct tdc_error){0}) < 0);
	config(&c, "{\"broker\":\"h:1\",\"pin\":\"abcd\",\"secret\":\"s\"}", TDC_E_FORMAT);
	snprintf(buf, sizeof(buf), "{\"broker\":[],\"pin\":\"%s\",\"secret\":\"s\"}", PIN);
	config(&c, buf, TDC_E_FORMAT);
	snprintf(buf, sizeof(buf), "{\"broker\":\"h:1\",\"pin\":\"%s\",\"secret\":\".x\"}", PIN);
	config(&c, buf, TDC_E_FORMAT);
	snprintf(buf, sizeof(buf), "{\"broker\":\"h:1\",\"pin\":[\"%s\",\"%s\"],\"secret\":\"s\"}",
		 PIN, PIN);
	config(&c, buf, 0);
	assert_int_equal(c.n_pins, 2);
	tdc_agent_config_free(&c);
}

static void test_jwe_strict(void **state)
{
	(void)state;
	struct tdc_agent_config h;
	struct tdc_error e;
	const char *bad[] = { "", "a.b.c.d", "a.b.c.d.e.f", "....", "!!!!..a.b.c",
			      /* {"alg":"dir"} */ "eyJhbGciOiJkaXIifQ..AAAA.AAAA.AAAA" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tdc_error_clear(&e);
		tdc_agent_config_defaults(&h);
		assert_true(tdc_clevis_header(bad[i], strlen(bad[i]), &h, &e) < 0);
		tdc_agent_config_free(&h);
	}
	/* a clevis JWE of another pin */
	const char *tang = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIiwiY2xldmlzIjp7InBpbiI6InRhbmcifX0..AAAA.AAAA.AAAA";
	tdc_error_clear(&e);
	tdc_agent_config_defaults(&h);
	assert_int_equal(tdc_clevis_header(tang, strlen(tang), &h, &e), TDC_E_FORMAT);
	tdc_agent_config_free(&h);
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test(test_round_trip),   cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_altered),      cmocka_unit_test(test_header_has_no_key),
		cmocka_unit_test(test_config_strict), cmocka_unit_test(test_jwe_strict),
	};
	return cmocka_run_group_tests(t, NULL, NULL);
}
