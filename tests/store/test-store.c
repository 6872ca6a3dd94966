/* SPDX-License-Identifier: Apache-2.0 */
/* The broker store: sealing, key file rules, migrations, audit, cache, import, WAL concurrency. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/schema.h"
#include "tdcrypt/store.h"
#include "../pg/test-db.h"
#include "store/db.h"
#include "util/limits.h"
#include "util/util.h"

#define NOW 1751623000

struct fx {
	char dir[64];
	char db[512];
	char key[96];
	struct tdc_store *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tdc-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	tdb_location(f->db, sizeof(f->db), f->dir, "kbs.db");
	snprintf(f->key, sizeof(f->key), "%s/master.key", f->dir);
	if (tdc_store_master_key_create(f->key, NULL) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	tdc_store_close(f->s);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static struct tdc_store *open_ok(const char *db, const char *key)
{
	struct tdc_store *s = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_store_open(db, key, &s, &e) != 0)
		fail_msg("open %s: %s: %s", db, e.reason, e.detail);
	return s;
}

static void put_ok(struct tdc_store *s, const char *id, const char *value, const char *policy)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_store_secret_put(s, id, (const uint8_t *)value, strlen(value), policy, NOW, &e) != 0)
		fail_msg("put %s: %s: %s", id, e.reason, e.detail);
}

static void assert_secret(struct tdc_store *s, const char *id, const char *value)
{
	struct tdc_secret sec = { 0 };
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_store_secret_get(s, id, &sec, &e) != 0)
		fail_msg("get %s: %s: %s", id, e.reason, e.detail);
	assert_int_equal(sec.len, strlen(value));
	assert_memory_equal(sec.data, value, sec.len);
	tdc_secret_free(&sec);
	assert_null(sec.data);
}

static int get_err(struct tdc_store *s, const char *id, struct tdc_error *e)
{
	struct tdc_secret sec = { 0 };
	tdc_error_clear(e);
	int r = tdc_store_secret_get(s, id, &sec, e);
	assert_null(sec.data);
	return r;
}

/* The database under the store, reached as anyone with access to it could (either backend). */
static struct db *raw_open(const char *path)
{
	struct db *d = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (db_open(path, &d, &e) != 0)
		fail_msg("raw open %s: %s: %s", path, e.reason, e.detail);
	return d;
}

static void raw_exec(struct db *d, const char *sql)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	if (db_exec(d, sql, "raw", &e) != 0)
		fail_msg("%s: %s", sql, e.detail);
}

/* Backend-specific tests run where they apply. */
#define SQLITE_ONLY()                                                                      \
	do {                                                                               \
		if (tdb_postgresql())                                                      \
			skip();                                                            \
	} while (0)

static uint8_t *read_all(const char *path, size_t *len)
{
	uint8_t *buf = NULL;
	*len = 0;
	if (access(path, F_OK) != 0)
		return NULL;
	assert_int_equal(tdc_file_read(path, 64u << 20, &buf, len, NULL), 0);
	return buf;
}

/* ---- secret buffers and the master key ---- */

static void test_secret_buffer(void **state)
{
	(void)state;
	struct tdc_secret s = { 0 };
	assert_int_equal(tdc_secret_alloc(10, &s, NULL), 0);
	assert_non_null(s.data);
	assert_int_equal(s.len, 10);
	assert_true(tdc_all_zero(s.data, 10));
	memset(s.data, 0xaa, 10);
	tdc_secret_free(&s);
	assert_null(s.data);
	assert_int_equal(s.len, 0);
	tdc_secret_free(&s); /* again: no-op */
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_secret_alloc(0, &s, &e), TDC_E_USAGE);
}

static void test_master_key_create(void **state)
{
	struct fx *f = *state;
	struct stat st;
	assert_int_equal(stat(f->key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, TDC_STORE_MASTER_KEY_SIZE);
	/* never overwrites an existing key */
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_master_key_create(f->key, &e), TDC_E_IO);
	assert_string_equal(e.reason, "cannot create the master key file");
	/* two keys differ */
	char k2[128];
	snprintf(k2, sizeof(k2), "%s/k2", f->dir);
	assert_int_equal(tdc_store_master_key_create(k2, NULL), 0);
	size_t l1, l2;
	uint8_t *a = read_all(f->key, &l1), *b = read_all(k2, &l2);
	assert_int_equal(l1, 32);
	assert_int_equal(l2, 32);
	assert_memory_not_equal(a, b, 32);
	free(a);
	free(b);
}

static void test_master_key_permissions(void **state)
{
	struct fx *f = *state;
	struct tdc_store *s = NULL;
	struct tdc_error e;
	static const mode_t bad[] = { 0640, 0604, 0660, 0620, 0602 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(chmod(f->key, bad[i]), 0);
		tdc_error_clear(&e);
		assert_int_equal(tdc_store_open(f->db, f->key, &s, &e), TDC_E_USAGE);
		assert_null(s);
		assert_string_equal(e.reason, "master key file is accessible by group or others");
	}
	assert_int_equal(chmod(f->key, 0400), 0);
	s = open_ok(f->db, f->key);
	tdc_store_close(s);
	s = NULL;

	/* wrong size */
	char path[128];
	snprintf(path, sizeof(path), "%s/short.key", f->dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789abcdef0123456789abcde", 31), 31);
	close(fd);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_open(f->db, path, &s, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "master key file has the wrong size");

	/* missing, symlink, directory */
	snprintf(path, sizeof(path), "%s/none.key", f->dir);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_open(f->db, path, &s, &e), TDC_E_IO);
	snprintf(path, sizeof(path), "%s/link.key", f->dir);
	assert_int_equal(symlink(f->key, path), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_open(f->db, path, &s, &e), TDC_E_IO);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_open(f->db, f->dir, &s, &e), TDC_E_IO);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_open(f->db, NULL, &s, &e), TDC_E_USAGE);
	assert_null(s);
}

/* ---- secrets ---- */

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	f->s = open_ok(f->db, f->key);
	put_ok(f->s, "luksKey", "Intel@intel123", NULL);
	put_ok(f->s, "app1", "2333", "{\"mrtd\": [\"" "000102030405060708090a0b0c0d0e0f"
				      "101112131415161718191a1b1c1d1e1f202122232425262728292a2b"
				      "2c2d2e2f" "\"]}");
	assert_secret(f->s, "luksKey", "Intel@intel123");
	assert_secret(f->s, "app1", "2333");

	struct tdc_secret_list l;
	assert_int_equal(tdc_store_secret_list(f->s, &l, NULL), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0].id, "app1");
	assert_true(l.items[0].has_policy);
	assert_string_equal(l.items[1].id, "luksKey");
	assert_false(l.items[1].has_policy);
	assert_int_equal(l.items[1].created, NOW);
	assert_int_equal(l.items[1].rotated, 0);
	tdc_secret_list_free(&l);

	/* reopen: still there */
	tdc_store_close(f->s);
	f->s = open_ok(f->db, f->key);
	assert_secret(f->s, "luksKey", "Intel@intel123");
	int v = 0;
	assert_int_equal(tdc_store_schema_version(f->s, &v, NULL), 0);
	assert_int_equal(v, TDC_STORE_SCHEMA_VERSION);

	if (tdb_postgresql())
		return; /* the server owns its files */
	struct stat st;
	assert_int_equal(stat(f->db, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_secret_errors(void **state)
{
	struct fx *f = *state;
	f->s = open_ok(f->db, f->key);
	put_ok(f->s, "a", "one", NULL);
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_secret_put(f->s, "a", (const uint8_t *)"two", 3, NULL, NOW, &e),
			 TDC_E_USAGE);
	assert_string_equal(e.reason, "secret already exists");
	assert_secret(f->s, "a", "one");

	assert_int_equal(get_err(f->s, "b", &e), TDC_E_NOT_FOUND);
	assert_string_equal(e.reason, TDC_STORE_NO_SUCH_SECRET);

	static const char *const bad_ids[] = { "", "-x", ".x", "a b", "a/b", "a'b", "é" };
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		tdc_error_clear(&e);
		assert_int_equal(tdc_store_secret_put(f->s, bad_ids[i], (const uint8_t *)"x", 1,
						      NULL, NOW, &e),
				 TDC_E_FORMAT);
		assert_string_equal(e.reason, "bad secret ID");
	}
	char long_id[130];
	memset(long_id, 'a', 129);
	long_id[129] = '\0';
	tdc_error_clear(&e);
	assert_int_equal(get_err(f->s, long_id, &e), TDC_E_FORMAT);
	long_id[128] = '\0';
	put_ok(f->s, long_id, "x", NULL);

	uint8_t *big = calloc(1, TDC_MAX_SECRET_SIZE + 1);
	assert_non_null(big);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_secret_put(f->s, "big", big, TDC_MAX_SECRET_SIZE + 1, NULL, NOW, &e), TDC_E_LIMIT);
	assert_int_equal(tdc_store_secret_put(f->s, "big", big, TDC_MAX_SECRET_SIZE, NULL, NOW, NULL), 0);
	free(big);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_secret_put(f->s, "empty", (const uint8_t *)"", 0, NULL, NOW, &e),
			 TDC_E_LIMIT);

	assert_int_equal(tdc_store_secret_delete(f->s, "a", NULL), 0);
	assert_int_equal(get_err(f->s, "a", &e), TDC_E_NOT_FOUND);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_secret_delete(f->s, "a", &e), TDC_E_NOT_FOUND);
	assert_string_equal(e.reason, TDC_STORE_NO_SUCH_SECRET);
}

static void test_wrong_master_key(void **state)
{
	struct fx *f = *state;
	f->s = open_ok(f->db, f->key);
	put_ok(f->s, "luksKey", "Intel@intel123", NULL);
	tdc_store_close(f->s);
	char other[128];
	snprintf(other, sizeof(other), "%s/other.key", f->dir);
	assert_int_equal(tdc_store_master_key_create(other, NULL), 0);
	/* refused at the open, by the store's key check, not at the first release */
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_open(f->db, other, &f->s, &e), TDC_E_SIGNATURE);
	assert_null(f->s);
	assert_non_null(strstr(e.reason, "wrong master key for this store"));
}

static void test_ciphertext_not_plaintext(void **state)
{
	struct fx *f = *state;
	static const char marker[] = "PLAINTEXT-MARKER-7f3a9c-do-not-store";
	f->s = open_ok(f->db, f->key);
	put_ok(f->s, "marker-secret", marker, NULL);
	if (tdb_postgresql()) {
		/* what a database dump holds (pg_dump, as its operator would take it) */
		char dump[128], cmd[1024];
		snprintf(dump, sizeof(dump), "%s/dump.sql", f->dir);
		snprintf(cmd, sizeof(cmd), "'%s/pg_dump' -d '%s' -f '%s'", getenv("TDC_TEST_PG_BIN"),
			 f->db, dump);
		assert_int_equal(system(cmd), 0);
		size_t len;
		uint8_t *buf = read_all(dump, &len);
		assert_non_null(buf);
		assert_null(memmem(buf, len, marker, strlen(marker)));
		assert_null(memmem(buf, len, "PLAINTEXT-MARKER", 16));
		assert_non_null(memmem(buf, len, "marker-secret", 13));
		free(buf);
		return;
	}
	/* the pages are in the WAL until a checkpoint: look at every file while open, then after */
	for (int pass = 0; pass < 2; pass++) {
		static const char *const suffix[] = { "", "-wal", "-shm" };
		bool id_seen = false;
		for (size_t i = 0; i < 3; i++) {
			char path[600];
			snprintf(path, sizeof(path), "%s%s", f->db, suffix[i]);
			size_t len;
			uint8_t *buf = read_all(path, &len);
			if (!buf)
				continue;
			assert_null(memmem(buf, len, marker, strlen(marker)));
			assert_null(memmem(buf, len, "PLAINTEXT-MARKER", 16));
			id_seen = id_seen || memmem(buf, len, "marker-secret", 13);
			free(buf);
		}
		assert_true(id_seen); /* we did read the right bytes */
		tdc_store_close(f->s);
		f->s = NULL;
	}
}

/* Runs one statement with a blob bound as $1. */
static void raw_update_blob(struct db *d, const char *sql, const uint8_t *b, size_t n)
{
	struct db_q q;
	db_q_init(&q, sql);
	db_bind_blob(&q, 1, b, n);
	assert_int_equal(db_run(d, &q, "raw", NULL), 0);
	assert_int_equal(q.changes, 1);
	db_q_free(&q);
}

static size_t raw_get_blob(struct db *d, const char *sql, uint8_t *out, size_t cap)
{
	struct db_q q;
	size_t n;
	db_q_init(&q, sql);
	assert_int_equal(db_step(d, &q, "raw", NULL), 1);
	const uint8_t *p = db_col_blob(&q, 0, &n);
	assert_true(n <= cap);
	memcpy(out, p, n);
	db_q_free(&q);
	return n;
}

static void test_tampered_ciphertext(void **state)
{
	struct fx *f = *state;
	f->s = open_ok(f->db, f->key);
	put_ok(f->s, "a", "secret-a", NULL);
	put_ok(f->s, "b", "secret-b", NULL);
	struct db *db = raw_open(f->db);
	uint8_t ct[64], nonce[16];
	size_t n = raw_get_blob(db, "SELECT ciphertext FROM secrets WHERE id = 'a'", ct, sizeof(ct));
	assert_int_equal(n, 8 + 16);
	struct tdc_error e;

	/* one flipped bit in the body, then in the tag */
	for (size_t pos = 0; pos < n; pos += n - 1) {
		ct[pos] ^= 1;
		raw_update_blob(db, "UPDATE secrets SET ciphertext = $1 WHERE id = 'a'", ct, n);
		assert_int_equal(get_err(f->s, "a", &e), TDC_E_SIGNATURE);
		assert_string_equal(e.reason, "secret authentication failed");
		ct[pos] ^= 1;
		raw_update_blob(db, "UPDATE secrets SET ciphertext = $1 WHERE id = 'a'", ct, n);
		assert_secret(f->s, "a", "secret-a");
	}

	/* nonce changed */
	size_t nn = raw_get_blob(db, "SELECT nonce FROM secrets WHERE id = 'a'", nonce,
				 sizeof(nonce));
	assert_int_equal(nn, 12);
	nonce[0] ^= 0x80;
	raw_update_blob(db, "UPDATE secrets SET nonce = $1 WHERE id = 'a'", nonce, nn);
	assert_int_equal(get_err(f->s, "a", &e), TDC_E_SIGNATURE);
	nonce[0] ^= 0x80;
	raw_update_blob(db, "UPDATE secrets SET nonce = $1 WHERE id = 'a'", nonce, nn);

	/* a's ciphertext and nonce copied onto b: the AAD binds the ID */
	raw_exec(db, "UPDATE secrets SET ciphertext = (SELECT ciphertext FROM secrets WHERE id = 'a'),"
		     " nonce = (SELECT nonce FROM secrets WHERE id = 'a') WHERE id = 'b'");
	assert_int_equal(get_err(f->s, "b", &e), TDC_E_SIGNATURE);

	/* truncated record */
	raw_update_blob(db, "UPDATE secrets SET ciphertext = $1 WHERE id = 'a'", ct, 16);
	assert_int_equal(get_err(f->s, "a", &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "corrupt secret record");
	raw_update_blob(db, "UPDATE secrets SET nonce = $1 WHERE id = 'b'", nonce, 11);
	assert_int_equal(get_err(f->s, "b", &e), TDC_E_FORMAT);
	db_close(db);
}

static void test_rotate(void **state)
{
	struct fx *f = *state;
	f->s = open_ok(f->db, f->key);
	put_ok(f->s, "k", "old-value", NULL);
	assert_int_equal(tdc_store_secret_rotate(f->s, "k", (const uint8_t *)"new-value-2", 11,
						 NOW + 10, NULL),
			 0);
	assert_secret(f->s, "k", "new-value-2");
	/* random replacement of a given length */
	assert_int_equal(tdc_store_secret_rotate(f->s, "k", NULL, 64, NOW + 20, NULL), 0);
	struct tdc_secret a = { 0 };
	assert_int_equal(tdc_store_secret_get(f->s, "k", &a, NULL), 0);
	assert_int_equal(a.len, 64);
	assert_false(tdc_all_zero(a.data, 64));
	tdc_secret_free(&a);
	struct tdc_secret_list l;
	assert_int_equal(tdc_store_secret_list(f->s, &l, NULL), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0].created, NOW);
	assert_int_equal(l.items[0].rotated, NOW + 20);
	tdc_secret_list_free(&l);
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_secret_rotate(f->s, "nope", NULL, 32, NOW, &e), TDC_E_NOT_FOUND);
	assert_string_equal(e.reason, TDC_STORE_NO_SUCH_SECRET);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_secret_rotate(f->s, "k", NULL, 0, NOW, &e), TDC_E_LIMIT);
}

static void test_policy_set_get(void **state)
{
	struct fx *f = *state;
	f->s = open_ok(f->db, f->key);
	put_ok(f->s, "k", "v", "{\"tcb_status\": [\"UpToDate\", \"SWHardeningNeeded\"]}");
	char *p = NULL;
	assert_int_equal(tdc_store_policy_get(f->s, "k", &p, NULL), 0);
	assert_non_null(p);
	/* stored in canonical form, defaults spelled out */
	assert_non_null(strstr(p, "\"tcb_status\": [ \"UpToDate\", \"SWHardeningNeeded\" ]"));
	assert_non_null(strstr(p, "\"allow_debug\": false"));
	free(p);

	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_policy_set(f->s, "k", "{\"tcb_status\": [\"Revoked\"]}", &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "policy may not allow a revoked TCB");
	assert_int_equal(tdc_store_policy_get(f->s, "k", &p, NULL), 0);
	assert_non_null(strstr(p, "SWHardeningNeeded")); /* unchanged */
	free(p);

	assert_int_equal(tdc_store_policy_set(f->s, "k", NULL, NULL), 0);
	assert_int_equal(tdc_store_policy_get(f->s, "k", &p, NULL), 0);
	assert_null(p);
	assert_int_equal(tdc_store_policy_set(f->s, "k", "{\"allow_simulator\": true}", NULL), 0);

	tdc_error_clear(&e);
	assert_int_equal(tdc_store_policy_get(f->s, "zz", &p, &e), TDC_E_NOT_FOUND);
	assert_string_equal(e.reason, TDC_STORE_NO_SUCH_SECRET);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_policy_set(f->s, "zz", "{}", &e), TDC_E_NOT_FOUND);

	/* a bad policy stops the put: nothing stored */
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_secret_put(f->s, "k2", (const uint8_t *)"v", 1, "{\"x\": 1}", NOW,
					      &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "unknown key in policy");
	assert_int_equal(get_err(f->s, "k2", &e), TDC_E_NOT_FOUND);
}

/* ---- schema ---- */

static bool has_object(struct db *d, const char *name)
{
	struct db_q q;
	db_q_init(&q, tdb_postgresql()
			      ? "SELECT 1 FROM pg_class WHERE relname = $1 "
				"UNION ALL SELECT 1 FROM pg_trigger WHERE tgname = $1"
			      : "SELECT 1 FROM sqlite_master WHERE name = $1");
	db_bind_text(&q, 1, name);
	int r = db_step(d, &q, "raw", NULL);
	assert_true(r >= 0);
	db_q_free(&q);
	return r == 1;
}

static void test_migrations(void **state)
{
	struct fx *f = *state;
	/* version 0: an existing database with something else in it */
	struct db *d = raw_open(f->db);
	raw_exec(d, "CREATE TABLE unrelated (x INTEGER)");
	int v = -1;
	assert_int_equal(tdc_store_user_version(d, &v, NULL), 0);
	assert_int_equal(v, 0);
	/* step to 1 only, as an older release would have left it */
	assert_int_equal(tdc_store_migrate(d, 1, NULL), 0);
	assert_int_equal(tdc_store_user_version(d, &v, NULL), 0);
	assert_int_equal(v, 1);
	assert_true(has_object(d, "secrets"));
	assert_true(has_object(d, "audit"));
	assert_true(has_object(d, "collateral_cache"));
	assert_false(has_object(d, "audit_no_delete"));
	raw_exec(d, "INSERT INTO audit (time, decision) VALUES (1, 'denied')");
	raw_exec(d, "DELETE FROM audit");
	/* a second run is a no-op */
	assert_int_equal(tdc_store_migrate(d, 1, NULL), 0);
	db_close(d);

	/* the store's open finishes the job */
	f->s = open_ok(f->db, f->key);
	assert_int_equal(tdc_store_schema_version(f->s, &v, NULL), 0);
	assert_int_equal(v, TDC_STORE_SCHEMA_VERSION);
	tdc_store_close(f->s);
	f->s = NULL;
	d = raw_open(f->db);
	assert_true(has_object(d, "audit_by_secret"));
	assert_true(has_object(d, "audit_no_delete"));
	assert_true(has_object(d, "meta"));
	assert_true(has_object(d, "unrelated"));
	db_close(d);

	/* a fresh one goes 0 -> TDC_STORE_SCHEMA_VERSION in one open */
	char path[512];
	tdb_location(path, sizeof(path), f->dir, "fresh.db");
	struct tdc_store *s = open_ok(path, f->key);
	assert_int_equal(tdc_store_schema_version(s, &v, NULL), 0);
	assert_int_equal(v, TDC_STORE_SCHEMA_VERSION);
	tdc_store_close(s);

	/* a database from the future is refused, untouched */
	d = raw_open(path);
	assert_int_equal(db_set_version(d, 99, NULL), 0);
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_migrate(d, 2, &e), TDC_E_UNSUPPORTED);
	db_close(d);
	tdc_error_clear(&e);
	s = NULL;
	assert_int_equal(tdc_store_open(path, f->key, &s, &e), TDC_E_UNSUPPORTED);
	assert_null(s);
	assert_string_equal(e.reason, "store schema is newer than this program");
	if (tdb_postgresql())
		return;

	/* not a database at all */
	snprintf(path, sizeof(path), "%s/junk.db", f->dir);
	FILE *jf = fopen(path, "w");
	assert_non_null(jf);
	fputs("this is not an SQLite database, just some junk text long enough to matter\n", jf);
	fclose(jf);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_open(path, f->key, &s, &e), TDC_E_IO);
	assert_null(s);
}

/* ---- audit ---- */

static void test_audit(void **state)
{
	struct fx *f = *state;
	f->s = open_ok(f->db, f->key);
	struct tdc_audit_record r1 = {
		.time = NOW, .request_id = "req-1", .secret_id = "luksKey",
		.peer = "127.0.0.1:40000", .claims_digest = "ab12", .verdict = "UpToDate",
		.decision = TDC_AUDIT_RELEASED, .reason = NULL,
	};
	struct tdc_audit_record r2 = {
		.time = NOW + 1, .request_id = "req-2", .secret_id = "luksKey",
		.peer = "127.0.0.1:40001", .claims_digest = "cd34", .verdict = "UpToDate",
		.decision = TDC_AUDIT_DENIED, .reason = "mrtd: got 11..; expected any of: ee..",
	};
	char longreason[5000];
	memset(longreason, 'r', sizeof(longreason) - 1);
	longreason[sizeof(longreason) - 1] = '\0';
	struct tdc_audit_record r3 = {
		.time = NOW + 2, .secret_id = "other", .decision = TDC_AUDIT_DENIED,
		.verdict = "signature", .reason = longreason,
	};
	int64_t id1 = 0, id2 = 0, id3 = 0;
	assert_int_equal(tdc_store_audit_append(f->s, &r1, &id1, NULL), 0);
	assert_int_equal(tdc_store_audit_append(f->s, &r2, &id2, NULL), 0);
	assert_int_equal(tdc_store_audit_append(f->s, &r3, &id3, NULL), 0);
	assert_true(id1 < id2 && id2 < id3);

	struct tdc_audit_list l;
	assert_int_equal(tdc_store_audit_list(f->s, NULL, &l, NULL), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.items[0].id, id1);
	assert_int_equal(l.items[0].time, NOW);
	assert_string_equal(l.items[0].request_id, "req-1");
	assert_string_equal(l.items[0].peer, "127.0.0.1:40000");
	assert_string_equal(l.items[0].claims_digest, "ab12");
	assert_int_equal(l.items[0].decision, TDC_AUDIT_RELEASED);
	assert_null(l.items[0].reason);
	assert_int_equal(l.items[1].decision, TDC_AUDIT_DENIED);
	assert_string_equal(l.items[1].reason, r2.reason);
	assert_null(l.items[2].request_id);
	assert_int_equal(strlen(l.items[2].reason), 2048); /* cut at the cap */
	tdc_audit_list_free(&l);

	struct tdc_audit_query q = { .secret_id = "luksKey" };
	assert_int_equal(tdc_store_audit_list(f->s, &q, &l, NULL), 0);
	assert_int_equal(l.n, 2);
	tdc_audit_list_free(&l);
	q = (struct tdc_audit_query){ .after_id = id1, .limit = 1 };
	assert_int_equal(tdc_store_audit_list(f->s, &q, &l, NULL), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0].id, id2);
	tdc_audit_list_free(&l);

	struct tdc_error e;
	tdc_error_clear(&e);
	struct tdc_audit_record bad = { .decision = (enum tdc_audit_decision)7 };
	assert_int_equal(tdc_store_audit_append(f->s, &bad, NULL, &e), TDC_E_USAGE);

	/* append-only, even for someone with the database */
	struct db *db = raw_open(f->db);
	assert_int_equal(db_exec(db, "DELETE FROM audit", "raw", NULL), TDC_E_IO);
	assert_int_equal(db_exec(db, "UPDATE audit SET decision = 'released'", "raw", NULL),
			 TDC_E_IO);
	if (tdb_postgresql())
		assert_int_equal(db_exec(db, "TRUNCATE audit", "raw", NULL), TDC_E_IO);
	db_close(db);
	assert_int_equal(tdc_store_audit_list(f->s, NULL, &l, NULL), 0);
	assert_int_equal(l.n, 3);
	tdc_audit_list_free(&l);
}

/* ---- collateral cache ---- */

static void test_collateral_cache(void **state)
{
	struct fx *f = *state;
	f->s = open_ok(f->db, f->key);
	uint8_t *body = NULL;
	size_t len = 0;
	int64_t nu = 0, fe = 0;
	bool found = true;
	assert_int_equal(tdc_store_collateral_get(f->s, "B0C06F000000", "tcb_info", &body, &len,
						  &nu, &fe, &found, NULL),
			 0);
	assert_false(found);
	assert_null(body);

	assert_int_equal(tdc_store_collateral_put(f->s, "B0C06F000000", "tcb_info",
						  (const uint8_t *)"{\"a\":1}", 7, NOW + 100, NOW,
						  NULL),
			 0);
	assert_int_equal(tdc_store_collateral_put(f->s, "B0C06F000000", "tcb_info",
						  (const uint8_t *)"{\"a\":2}\0x", 9, NOW + 200,
						  NOW + 1, NULL),
			 0);
	assert_int_equal(tdc_store_collateral_put(f->s, "", "pck_crl", NULL, 0, 0, 0, NULL),
			 TDC_E_LIMIT);
	assert_int_equal(tdc_store_collateral_put(f->s, "platform", "pck_crl", NULL, 0, NOW, NOW,
						  NULL),
			 0);
	assert_int_equal(tdc_store_collateral_get(f->s, "B0C06F000000", "tcb_info", &body, &len,
						  &nu, &fe, &found, NULL),
			 0);
	assert_true(found);
	assert_int_equal(len, 9);
	assert_memory_equal(body, "{\"a\":2}\0x", 9);
	assert_int_equal(nu, NOW + 200);
	assert_int_equal(fe, NOW + 1);
	free(body);
	assert_int_equal(tdc_store_collateral_get(f->s, "platform", "pck_crl", &body, &len, NULL,
						  NULL, &found, NULL),
			 0);
	assert_true(found);
	assert_int_equal(len, 0);
	free(body);
}

/* ---- import ---- */

static void test_import_flat_json(void **state)
{
	struct fx *f = *state;
	f->s = open_ok(f->db, f->key);
	static const char src[] = "{\"app1\": \"2333\", \"luksKey\": \"Intel@intel123\"}\n";
	size_t count = 99;
	assert_int_equal(tdc_store_import_flat_json(f->s, src, strlen(src), NOW, &count, NULL), 0);
	assert_int_equal(count, 2);
	assert_secret(f->s, "app1", "2333");
	assert_secret(f->s, "luksKey", "Intel@intel123");
	char *p = (char *)1;
	assert_int_equal(tdc_store_policy_get(f->s, "app1", &p, NULL), 0);
	assert_null(p); /* imported secrets have no policy */

	/* all or nothing: one existing ID stops the whole file */
	struct tdc_error e;
	static const char again[] = "{\"new1\": \"x\", \"app1\": \"y\"}";
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_import_flat_json(f->s, again, strlen(again), NOW, &count, &e),
			 TDC_E_USAGE);
	assert_string_equal(e.reason, "secret already exists");
	assert_int_equal(count, 0);
	assert_int_equal(get_err(f->s, "new1", &e), TDC_E_NOT_FOUND);
	assert_secret(f->s, "app1", "2333");

	static const struct {
		const char *json;
		int code;
		const char *reason;
	} bad[] = {
		{ "{\"a\": 1}", TDC_E_FORMAT, "secret value is not a string" },
		{ "{\"a\": {\"b\": \"c\"}}", TDC_E_LIMIT, "JSON nested too deeply" },
		{ "{\"bad id\": \"x\"}", TDC_E_FORMAT, "bad secret ID" },
		{ "{\"a\": \"\"}", TDC_E_LIMIT, "bad secret size" },
		{ "[\"a\"]", TDC_E_FORMAT, "JSON is not an object" },
		{ "{\"a\": \"x\"", TDC_E_FORMAT, "truncated JSON" },
		{ "{\"a\": \"x\\u0000y\"}", TDC_E_FORMAT, "NUL byte in a secret value" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tdc_error_clear(&e);
		assert_int_equal(tdc_store_import_flat_json(f->s, bad[i].json, strlen(bad[i].json),
							    NOW, &count, &e),
				 bad[i].code);
		assert_string_equal(e.reason, bad[i].reason);
		assert_int_equal(count, 0);
	}
	struct tdc_secret_list l;
	assert_int_equal(tdc_store_secret_list(f->s, &l, NULL), 0);
	assert_int_equal(l.n, 2);
	tdc_secret_list_free(&l);
}

/* ---- concurrency ---- */

struct worker {
	const char *db, *key;
	int index;
	int failures;
};

#define WORKERS 4
#define PER_WORKER 25

/* Each worker has its own handle (as separate processes would): WAL + busy timeout. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct tdc_store *s = NULL;
	if (tdc_store_open(w->db, w->key, &s, NULL) != 0) {
		w->failures++;
		return NULL;
	}
	for (int i = 0; i < PER_WORKER; i++) {
		char id[32];
		snprintf(id, sizeof(id), "w%d-%d", w->index, i);
		struct tdc_audit_record rec = { .time = NOW + i, .secret_id = id,
						.decision = TDC_AUDIT_DENIED, .reason = "test" };
		if (tdc_store_audit_append(s, &rec, NULL, NULL) != 0)
			w->failures++;
		if (tdc_store_secret_put(s, id, (const uint8_t *)id, strlen(id), NULL, NOW, NULL) != 0)
			w->failures++;
		struct tdc_secret sec = { 0 };
		if (tdc_store_secret_get(s, "shared", &sec, NULL) != 0 || sec.len != 6)
			w->failures++;
		tdc_secret_free(&sec);
	}
	tdc_store_close(s);
	return NULL;
}

static void test_concurrent_open(void **state)
{
	struct fx *f = *state;
	f->s = open_ok(f->db, f->key);
	put_ok(f->s, "shared", "shared", NULL);

	/* SQLite: WAL is on and persistent */
	if (!tdb_postgresql()) {
		sqlite3 *db = NULL;
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
		sqlite3_finalize(st);
		sqlite3_close(db);
	}

	/* a second handle sees the first one's writes */
	struct tdc_store *s2 = open_ok(f->db, f->key);
	put_ok(f->s, "from-1", "one", NULL);
	assert_secret(s2, "from-1", "one");
	tdc_store_close(s2);

	pthread_t th[WORKERS];
	struct worker w[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		w[i] = (struct worker){ .db = f->db, .key = f->key, .index = i };
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	/* the shared handle works meanwhile too */
	for (int i = 0; i < PER_WORKER; i++)
		assert_secret(f->s, "shared", "shared");
	for (int i = 0; i < WORKERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	struct tdc_audit_list l;
	assert_int_equal(tdc_store_audit_list(f->s, NULL, &l, NULL), 0);
	assert_int_equal(l.n, WORKERS * PER_WORKER);
	tdc_audit_list_free(&l);
	struct tdc_secret_list sl;
	assert_int_equal(tdc_store_secret_list(f->s, &sl, NULL), 0);
	assert_int_equal(sl.n, WORKERS * PER_WORKER + 2);
	tdc_secret_list_free(&sl);
}

/* Audit group commit: threads sharing one handle each get their own record
 * written, with distinct IDs, and nothing is lost or duplicated. */
#define GROUP_THREADS 8
#define GROUP_PER_THREAD 40

struct group_arg {
	struct tdc_store *s;
	int index;
	int failures;
	int64_t ids[GROUP_PER_THREAD];
};

static void *group_main(void *p)
{
	struct group_arg *g = p;
	for (int i = 0; i < GROUP_PER_THREAD; i++) {
		char rid[32];
		snprintf(rid, sizeof(rid), "g%d-%d", g->index, i);
		struct tdc_audit_record r = { .time = NOW, .request_id = rid, .secret_id = "k",
					      .peer = "127.0.0.1", .claims_digest = "-",
					      .verdict = "UpToDate", .decision = TDC_AUDIT_RELEASED,
					      .reason = "ok" };
		if (tdc_store_audit_append(g->s, &r, &g->ids[i], NULL) != 0)
			g->failures++;
	}
	return NULL;
}

static void test_audit_group_commit(void **state)
{
	struct fx *f = *state;
	f->s = open_ok(f->db, f->key);
	pthread_t th[GROUP_THREADS];
	struct group_arg g[GROUP_THREADS];
	for (int i = 0; i < GROUP_THREADS; i++) {
		g[i] = (struct group_arg){ .s = f->s, .index = i };
		assert_int_equal(pthread_create(&th[i], NULL, group_main, &g[i]), 0);
	}
	for (int i = 0; i < GROUP_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(g[i].failures, 0);
	}
	/* ids are unique and each thread's own are increasing */
	for (int i = 0; i < GROUP_THREADS; i++)
		for (int k = 1; k < GROUP_PER_THREAD; k++)
			assert_true(g[i].ids[k] > g[i].ids[k - 1]);
	struct tdc_audit_list l;
	assert_int_equal(tdc_store_audit_list(f->s, NULL, &l, NULL), 0);
	assert_int_equal(l.n, GROUP_THREADS * GROUP_PER_THREAD);
	tdc_audit_list_free(&l);
}

/* ---- PostgreSQL: the server goes away, or stops taking writes ---- */

static void test_pg_restart_reconnects(void **state)
{
	struct fx *f = *state;
	if (!tdb_postgresql())
		skip();
	f->s = open_ok(f->db, f->key);
	put_ok(f->s, "k", "value-k", NULL);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s'%s/pg_ctl' -D '%s' -m fast -w restart >/dev/null 2>&1",
		 geteuid() == 0 ? "runuser -u postgres -- " : "", getenv("TDC_TEST_PG_BIN"),
		 getenv("TDC_TEST_PG_DIR"));
	assert_int_equal(system(cmd), 0);
	/* a read and an audit append after the restart: a new connection, nothing lost */
	assert_secret(f->s, "k", "value-k");
	struct tdc_audit_record r = { .time = NOW, .secret_id = "k", .decision = TDC_AUDIT_RELEASED };
	assert_int_equal(tdc_store_audit_append(f->s, &r, NULL, NULL), 0);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(tdc_store_audit_append(f->s, &r, NULL, NULL), 0);
	struct tdc_audit_list l;
	assert_int_equal(tdc_store_audit_list(f->s, NULL, &l, NULL), 0);
	assert_int_equal(l.n, 2);
	tdc_audit_list_free(&l);
}

static void test_pg_read_only_refuses_audit(void **state)
{
	struct fx *f = *state;
	if (!tdb_postgresql())
		skip();
	f->s = open_ok(f->db, f->key);
	put_ok(f->s, "k", "value-k", NULL);
	/* the database stops taking writes (a full disk, a demoted primary): the store's
	 * session ends and its next one is read-only */
	struct db *d = raw_open(f->db);
	raw_exec(d, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET "
		    "default_transaction_read_only = on', current_database()); END $$");
	raw_exec(d, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		    "WHERE datname = current_database() AND pid <> pg_backend_pid()");
	struct tdc_audit_record r = { .time = NOW, .secret_id = "k", .decision = TDC_AUDIT_RELEASED };
	struct tdc_error e;
	tdc_error_clear(&e);
	/* the record is refused, so a release waiting for it would be refused too */
	assert_int_equal(tdc_store_audit_append(f->s, &r, NULL, &e), TDC_E_IO);
	assert_non_null(strstr(e.detail, "read-only"));
	assert_secret(f->s, "k", "value-k"); /* reads go on */
	raw_exec(d, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET "
		    "default_transaction_read_only = off', current_database()); END $$");
	db_close(d);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_buffer),
		T(test_master_key_create),
		T(test_master_key_permissions),
		T(test_round_trip),
		T(test_secret_errors),
		T(test_wrong_master_key),
		T(test_ciphertext_not_plaintext),
		T(test_tampered_ciphertext),
		T(test_rotate),
		T(test_policy_set_get),
		T(test_migrations),
		T(test_audit),
		T(test_collateral_cache),
		T(test_import_flat_json),
		T(test_concurrent_open),
		T(test_audit_group_commit),
		T(test_pg_restart_reconnects),
		T(test_pg_read_only_refuses_audit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
