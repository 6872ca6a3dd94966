/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LUKS2 header validation on image files made here with libcryptsetup (no
 * device-mapper needed): a good header passes and its key checks out through a
 * check-only activation; each rule has its own fixture that fails it alone.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <libcryptsetup.h>

#include "tdcrypt/agent.h"

static char tmpdir[256];
static const uint8_t pass[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
				 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 0};

struct fx {
	const char *type; /* CRYPT_LUKS2 by default */
	const char *mode; /* xts-plain64 */
	size_t key_bytes; /* 64 */
	uint32_t sector;  /* 4096 */
	bool second_keyslot;
	const char *token; /* token JSON */
	bool requirement;
	bool argon2;
};

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tdc-agent-luks-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[512];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void quiet(int level, const char *msg, void *usrptr)
{
	(void)level;
	(void)msg;
	(void)usrptr;
}

static void make(const char *name, const struct fx *f, char *path, size_t cap)
{
	struct crypt_device *cd;
	snprintf(path, cap, "%s/%s.img", tmpdir, name);
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 << 20), 0);
	close(fd);
	crypt_set_log_callback(NULL, quiet, NULL);
	assert_int_equal(crypt_init(&cd, path), 0);
	struct crypt_pbkdf_type pb = {.type = CRYPT_KDF_PBKDF2,
				      .hash = "sha256",
				      .iterations = 1000,
				      .flags = CRYPT_PBKDF_NO_BENCHMARK};
	if (f->argon2)
		pb = (struct crypt_pbkdf_type){.type = CRYPT_KDF_ARGON2ID,
					       .iterations = 4,
					       .max_memory_kb = 32,
					       .parallel_threads = 1,
					       .flags = CRYPT_PBKDF_NO_BENCHMARK};
	assert_int_equal(crypt_set_pbkdf_type(cd, &pb), 0);
	assert_int_equal(crypt_set_data_offset(cd, 4096), 0); /* 2 MiB, in 512-byte sectors */
	const char *type = f->type ? f->type : CRYPT_LUKS2;
	struct crypt_params_luks2 p2 = {.sector_size = f->sector ? f->sector : 4096};
	int r =
	    crypt_format(cd, type, "aes", f->mode ? f->mode : "xts-plain64", NULL, NULL,
			 f->key_bytes ? f->key_bytes : 64, strcmp(type, CRYPT_LUKS2) ? NULL : &p2);
	if (r < 0)
		fail_msg("crypt_format %s: %d", name, r);
	assert_int_equal(
	    crypt_keyslot_add_by_volume_key(cd, 0, NULL, 0, (const char *)pass, sizeof(pass)), 0);
	if (f->second_keyslot)
		assert_int_equal(crypt_keyslot_add_by_volume_key(cd, 1, NULL, 0, "other", 5), 1);
	if (f->token)
		assert_true(crypt_token_json_set(cd, CRYPT_ANY_TOKEN, f->token) >= 0);
	if (f->requirement)
		assert_int_equal(crypt_persistent_flags_set(cd, CRYPT_FLAGS_REQUIREMENTS,
							    CRYPT_REQUIREMENT_OFFLINE_REENCRYPT),
				 0);
	crypt_free(cd);
}

static int validate(const char *path, const uint8_t *digest, struct crypt_device **cd,
		    struct tdc_error *e)
{
	uint8_t d[32];
	if (!digest) {
		int rc = tdc_luks_header_digest(path, d, e);
		if (rc < 0)
			return rc;
		digest = d;
	}
	return tdc_luks_validate(path, digest, 0, cd, e);
}

static void test_good(void **state)
{
	char path[512];
	struct crypt_device *cd;
	struct tdc_error e = {0};
	struct fx f = {0};
	(void)state;
	make("good", &f, path, sizeof(path));
	int rc = validate(path, NULL, &cd, &e);
	if (rc) {
		char buf[400];
		fail_msg("%s", tdc_error_format(&e, buf, sizeof(buf)));
	}
	assert_non_null(cd);
	/* check-only activation: the key opens keyslot 0, nothing is mapped */
	assert_int_equal(tdc_luks_activate(cd, NULL, 0, pass, sizeof(pass), &e), 0);
	uint8_t wrong[32];
	memcpy(wrong, pass, 32);
	wrong[0] ^= 1;
	assert_int_equal(tdc_luks_activate(cd, NULL, 0, wrong, sizeof(wrong), &e), TDC_E_SIGNATURE);
	assert_string_equal(e.reason, "the released key does not open the keyslot");
	crypt_free(cd);
}

static void test_tdcrypt_token_ok(void **state)
{
	char path[512];
	struct crypt_device *cd;
	struct tdc_error e = {0};
	struct fx f = {.token =
			   "{\"type\":\"tdcrypt\",\"keyslots\":[\"0\"],\"secret_id\":\"root\"}"};
	(void)state;
	make("tdctoken", &f, path, sizeof(path));
	assert_int_equal(validate(path, NULL, &cd, &e), 0);
	crypt_free(cd);
}

static void test_digest_mismatch(void **state)
{
	char path[512];
	struct crypt_device *cd = (struct crypt_device *)1;
	struct tdc_error e = {0};
	uint8_t d[32];
	struct fx f = {0};
	(void)state;
	make("digest", &f, path, sizeof(path));
	assert_int_equal(tdc_luks_header_digest(path, d, NULL), 0);
	d[31] ^= 0x80;
	assert_int_equal(validate(path, d, &cd, &e), TDC_E_BINDING);
	assert_string_equal(e.reason, "LUKS header digest mismatch");
	assert_null(cd);

	/* A change anywhere in either header copy moves the digest: the secondary's
	 * JSON area here (hdr_size 16 KiB, so 16384 + 4096). */
	uint8_t before[32], after[32];
	assert_int_equal(tdc_luks_header_digest(path, before, NULL), 0);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, 16384 + 4096 + 2000), 1);
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, 16384 + 4096 + 2000), 1);
	close(fd);
	assert_int_equal(tdc_luks_header_digest(path, after, NULL), 0);
	assert_memory_not_equal(before, after, 32);
	assert_int_equal(validate(path, before, &cd, &e), TDC_E_BINDING);
}

/* The copy for systemd-cryptsetup's header= is the checked bytes plus the keyslot area, and
 * libcryptsetup unlocks through it with the key; a header changed since the check is refused
 * and leaves no file. */
static void test_header_copy(void **state)
{
	char path[512], copy[600];
	struct crypt_device *cd;
	struct tdc_error e = {0};
	struct fx f = {0};
	uint8_t d[32];
	(void)state;
	make("copy", &f, path, sizeof(path));
	snprintf(copy, sizeof(copy), "%s/root.header", tmpdir);
	assert_int_equal(tdc_luks_header_digest(path, d, NULL), 0);
	assert_int_equal(tdc_luks_header_copy(path, d, 2u << 20, copy, &e), 0);
	/* byte for byte [0, 2 MiB) of the device */
	char cmd[3000];
	snprintf(cmd, sizeof(cmd), "cmp -s -n 2097152 '%s' '%s' && test $(stat -c %%s '%s') = 2097152"
		 " && test $(stat -c %%a '%s') = 600", path, copy, copy, copy);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(crypt_init_data_device(&cd, copy, path), 0);
	assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
	assert_true(crypt_activate_by_passphrase(cd, NULL, 0, (const char *)pass, sizeof(pass), 0) >= 0);
	crypt_free(cd);
	/* changed since the check: refused, no copy */
	d[0] ^= 1;
	unlink(copy);
	assert_int_equal(tdc_luks_header_copy(path, d, 2u << 20, copy, &e), TDC_E_BINDING);
	assert_int_equal(access(copy, F_OK), -1);
	d[0] ^= 1;
	/* an offset inside the binary headers cannot be a data offset */
	assert_int_equal(tdc_luks_header_copy(path, d, 4096, copy, &e), TDC_E_LIMIT);
}

struct bad {
	const char *name;
	struct fx f;
	int code;
	const char *reason;
};

static void test_bad(void **state)
{
	static const struct bad bads[] = {
	    {"two-keyslots", {.second_keyslot = true}, TDC_E_POLICY, "LUKS header: keyslots"},
	    {"foreign-token",
	     {.token = "{\"type\":\"clevis\",\"keyslots\":[\"0\"],\"jwe\":{}}"},
	     TDC_E_POLICY,
	     "LUKS header: foreign token"},
	    {"aes-cbc",
	     {.mode = "cbc-essiv:sha256", .key_bytes = 32},
	     TDC_E_POLICY,
	     "LUKS header: cipher"},
	    {"key-256", {.key_bytes = 32}, TDC_E_POLICY, "LUKS header: volume key size"},
	    {"sector-512", {.sector = 512}, TDC_E_POLICY, "LUKS header: sector size"},
	    {"argon2",
	     {.argon2 = true},
	     TDC_E_POLICY,
	     "LUKS header: keyslot kdf must be pbkdf2 (sha256/sha512)"},
	    {"requirement", {.requirement = true}, TDC_E_POLICY, "LUKS header: requirements"},
	    {"luks1", {.type = CRYPT_LUKS1}, TDC_E_FORMAT, "not a LUKS2 header"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		char path[512], buf[400];
		struct crypt_device *cd = NULL;
		struct tdc_error e = {0};
		make(bads[i].name, &bads[i].f, path, sizeof(path));
		int rc = validate(path, NULL, &cd, &e);
		if (rc != bads[i].code || (bads[i].reason && strcmp(e.reason, bads[i].reason)))
			fail_msg("%s: rc %d: %s", bads[i].name, rc,
				 tdc_error_format(&e, buf, sizeof(buf)));
		assert_null(cd);
	}
}

static void test_not_luks(void **state)
{
	char path[512];
	struct crypt_device *cd;
	struct tdc_error e = {0};
	uint8_t d[32] = {0};
	(void)state;
	snprintf(path, sizeof(path), "%s/zeros.img", tmpdir);
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(tdc_luks_validate(path, d, 0, &cd, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "not a LUKS device");
	assert_int_equal(e.offset, 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_luks_validate("/nonexistent/disk", d, 0, &cd, &e), TDC_E_IO);
	/* a header cut short */
	snprintf(path, sizeof(path), "%s/short.img", tmpdir);
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	assert_true(fd >= 0);
	static const uint8_t hdr[16] = {'L', 'U', 'K', 'S', 0xba, 0xbe, 0,    2,
					0,   0,   0,   0,   0,    0,    0x40, 0};
	assert_int_equal(write(fd, hdr, sizeof(hdr)), 16);
	close(fd);
	tdc_error_clear(&e);
	assert_int_equal(tdc_luks_header_digest(path, d, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "device too small for a LUKS2 header");
	/* an hdr_size that is not a LUKS2 size */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t odd = 0x41;
	assert_int_equal(pwrite(fd, &odd, 1, 14), 1);
	close(fd);
	tdc_error_clear(&e);
	assert_int_equal(tdc_luks_header_digest(path, d, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "bad LUKS2 hdr_size");
	assert_int_equal(e.offset, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_tdcrypt_token_ok),
	    cmocka_unit_test(test_digest_mismatch),
	    cmocka_unit_test(test_header_copy),
	    cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_not_luks),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
