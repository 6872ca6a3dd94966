/* SPDX-License-Identifier: Apache-2.0 */
/* Opening the store, and the secrets table. Prepared statements with bound values only. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "store/schema.h"
#include "store/store-int.h"
#include "tdcrypt/policy.h"

/* How long a writer waits for another process's transaction. */
#define BUSY_TIMEOUT_MS 5000

int tdc_store_db_fail(struct tdc_error *e, sqlite3 *db, const char *file, int line,
		      const char *reason)
{
	return tdc_error_set(e, TDC_E_IO, TDC_NO_OFFSET, file, line, reason, "sqlite: %s",
			     db ? sqlite3_errmsg(db) : "out of memory");
}

int tdc_store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct tdc_error *e)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return STORE_DB_FAIL(e, db, "cannot prepare a statement");
	}
	return 0;
}

int tdc_store_check_id(const char *id, struct tdc_error *e)
{
	if (!id)
		return TDC_FAIL(e, TDC_E_USAGE, "no secret ID");
	size_t n = strnlen(id, TDC_MAX_SECRET_ID_LEN + 1);
	if (n == 0 || n > TDC_MAX_SECRET_ID_LEN)
		return TDC_FAILF(e, TDC_E_FORMAT, "bad secret ID", "length %zu, allowed 1..%d", n,
				 TDC_MAX_SECRET_ID_LEN);
	if (id[0] == '.' || id[0] == '-')
		return TDC_FAILF(e, TDC_E_FORMAT, "bad secret ID", "may not start with '%c'", id[0]);
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return TDC_FAILF(e, TDC_E_FORMAT, "bad secret ID",
					 "character %zu: allowed A-Z a-z 0-9 . _ -", i);
	}
	return 0;
}

int tdc_store_canon_policy(const char *policy_json, char **out, struct tdc_error *e)
{
	*out = NULL;
	if (!policy_json)
		return 0;
	struct tdc_policy *p;
	TDC_GUARD(tdc_policy_parse(policy_json, strlen(policy_json), &p, e));
	int r = tdc_policy_to_json(p, out, e);
	tdc_policy_free(p);
	return r;
}

static int exec(sqlite3 *db, const char *sql, const char *reason, struct tdc_error *e)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return STORE_DB_FAIL(e, db, reason);
	return 0;
}

static int open_db(const char *path, sqlite3 **db, struct tdc_error *e)
{
	/* create it 0600 ourselves: SQLite would use 0644 & ~umask (WAL/SHM inherit the mode).
	 * Only a file that does not exist yet: close() on a descriptor of an existing store
	 * would drop every POSIX lock this process holds on it, another connection's too. */
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	else if (errno != EEXIST)
		return TDC_FAILF(e, TDC_E_IO, "cannot open the store", "%s: %s", path,
				 strerror(errno));
	int rc = sqlite3_open_v2(path, db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
					 SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
				 NULL);
	if (rc != SQLITE_OK) {
		int r = STORE_DB_FAIL(e, *db, "cannot open the store");
		sqlite3_close(*db);
		*db = NULL;
		return r;
	}
	sqlite3_extended_result_codes(*db, 1);
	sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
	/* the schema is ours: refuse tricks a crafted database file could play */
	sqlite3_db_config(*db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(*db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	/* WAL: readers never block the writer; FULL: an audit record that was
	 * acknowledged survives power loss; secure_delete: rotated ciphertext is overwritten */
	TDC_GUARD(exec(*db, "PRAGMA journal_mode = WAL", "cannot enable WAL", e));
	TDC_GUARD(exec(*db, "PRAGMA synchronous = FULL", "cannot set synchronous", e));
	TDC_GUARD(exec(*db, "PRAGMA secure_delete = ON", "cannot set secure_delete", e));
	TDC_GUARD(exec(*db, "PRAGMA foreign_keys = ON", "cannot set foreign_keys", e));
	return 0;
}

bool tdc_store_exists(const char *path)
{
	struct stat st;
	return path && lstat(path, &st) == 0;
}

int tdc_store_open(const char *path, const char *master_key_path, struct tdc_store **out,
		   struct tdc_error *e)
{
	return tdc_store_open_ex(path, master_key_path, 0, out, e);
}

int tdc_store_open_ex(const char *path, const char *master_key_path, unsigned flags,
		      struct tdc_store **out, struct tdc_error *e)
{
	if (!out)
		return TDC_FAIL(e, TDC_E_USAGE, "no output");
	*out = NULL;
	if (!path)
		return TDC_FAIL(e, TDC_E_USAGE, "no store path");
	struct tdc_store *s = calloc(1, sizeof(*s));
	if (!s)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return TDC_FAIL(e, TDC_E_INTERNAL, "cannot create a mutex");
	}
	if (pthread_mutex_init(&s->group_lock, NULL) != 0 ||
	    pthread_cond_init(&s->group_done, NULL) != 0) {
		pthread_mutex_destroy(&s->lock);
		free(s);
		return TDC_FAIL(e, TDC_E_INTERNAL, "cannot create a mutex");
	}
	s->pending_tail = &s->pending;
	s->lock_fd = -1;
	s->wal_fd = -1;
	int r = flags & TDC_STORE_EXCLUSIVE ? tdc_store_lock(path, &s->lock_fd, e) : 0;
	if (r == 0)
		r = tdc_store_load_key(master_key_path, &s->seal_key, e);
	if (r == 0)
		r = open_db(path, &s->db, e);
	if (r == 0)
		r = tdc_store_quick_check(s->db, false, path, e);
	if (r == 0)
		r = tdc_store_migrate(s->db, TDC_STORE_SCHEMA_VERSION, e);
	if (r == 0)
		r = tdc_store_key_check(s, e);
	if (r == 0)
		r = tdc_store_watch_wal(s, path, e);
	if (r < 0) {
		tdc_store_close(s);
		return r;
	}
	*out = s;
	return 0;
}

void tdc_store_close(struct tdc_store *s)
{
	if (!s)
		return;
	if (s->db)
		tdc_store_close_checked(s);
	sqlite3_close(s->db);
	tdc_store_unwatch_wal(s);
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* after the database: the lock covers its last checkpoint */
	free(s->wal_path);
	tdc_secret_free(&s->seal_key);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->group_lock);
	pthread_cond_destroy(&s->group_done);
	free(s);
}

int tdc_store_schema_version(struct tdc_store *s, int *version, struct tdc_error *e)
{
	if (!s || !version)
		return TDC_FAIL(e, TDC_E_USAGE, "no store");
	pthread_mutex_lock(&s->lock);
	int r = tdc_store_user_version(s->db, version, e);
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

int tdc_store_insert_locked(struct tdc_store *s, const char *id, const uint8_t *data, size_t len,
			    const char *policy_canon, int64_t now, struct tdc_error *e)
{
	uint8_t nonce[TDC_GCM_NONCE_SIZE];
	uint8_t *ct;
	size_t ct_len;
	TDC_GUARD(tdc_store_seal(&s->seal_key, id, data, len, nonce, &ct, &ct_len, e));
	sqlite3_stmt *st;
	int r = tdc_store_prepare(s->db,
				  "INSERT INTO secrets (id, ciphertext, nonce, created, rotated, "
				  "policy) VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
				  &st, e);
	if (r == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, ct, (int)ct_len, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, nonce, sizeof(nonce), SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, now);
		bind_text_or_null(st, 5, policy_canon);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			r = TDC_FAILF(e, TDC_E_USAGE, "secret already exists", "%s", id);
		else if (rc != SQLITE_DONE)
			r = STORE_DB_FAIL(e, s->db, "cannot store the secret");
		sqlite3_finalize(st);
	}
	free(ct);
	return r;
}

int tdc_store_secret_put(struct tdc_store *s, const char *id, const uint8_t *data, size_t len,
			 const char *policy_json, int64_t now, struct tdc_error *e)
{
	if (!s || (!data && len))
		return TDC_FAIL(e, TDC_E_USAGE, "no store or data");
	TDC_GUARD(tdc_store_check_id(id, e));
	char *canon;
	TDC_GUARD(tdc_store_canon_policy(policy_json, &canon, e));
	pthread_mutex_lock(&s->lock);
	int r = tdc_store_insert_locked(s, id, data, len, canon, now, e);
	pthread_mutex_unlock(&s->lock);
	free(canon);
	return r;
}

int tdc_store_secret_get(struct tdc_store *s, const char *id, struct tdc_secret *out,
			 struct tdc_error *e)
{
	if (!s || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "no store or output");
	out->data = NULL;
	out->len = 0;
	TDC_GUARD(tdc_store_check_id(id, e));
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st = NULL;
	int r = tdc_store_damaged(s, e);
	if (r == 0)
		r = tdc_store_prepare(s->db, "SELECT ciphertext, nonce FROM secrets WHERE id = ?1",
				      &st, e);
	if (r == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const uint8_t *ct = sqlite3_column_blob(st, 0);
			size_t ct_len = (size_t)sqlite3_column_bytes(st, 0);
			const uint8_t *nonce = sqlite3_column_blob(st, 1);
			size_t nonce_len = (size_t)sqlite3_column_bytes(st, 1);
			r = tdc_store_unseal(&s->seal_key, id, nonce, nonce_len, ct, ct_len, out, e);
		} else if (rc == SQLITE_DONE) {
			r = TDC_FAILF(e, TDC_E_NOT_FOUND, TDC_STORE_NO_SUCH_SECRET, "%s", id);
		} else {
			r = STORE_DB_FAIL(e, s->db, "cannot read the secret");
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Runs a single-row UPDATE/DELETE already bound; no row touched = unknown ID. */
static int step_change(struct tdc_store *s, sqlite3_stmt *st, const char *id, const char *reason,
		       struct tdc_error *e)
{
	int r = 0;
	if (sqlite3_step(st) != SQLITE_DONE)
		r = STORE_DB_FAIL(e, s->db, reason);
	else if (sqlite3_changes(s->db) == 0)
		r = TDC_FAILF(e, TDC_E_NOT_FOUND, TDC_STORE_NO_SUCH_SECRET, "%s", id);
	sqlite3_finalize(st);
	return r;
}

int tdc_store_secret_delete(struct tdc_store *s, const char *id, struct tdc_error *e)
{
	if (!s)
		return TDC_FAIL(e, TDC_E_USAGE, "no store");
	TDC_GUARD(tdc_store_check_id(id, e));
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st;
	int r = tdc_store_prepare(s->db, "DELETE FROM secrets WHERE id = ?1", &st, e);
	if (r == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		r = step_change(s, st, id, "cannot delete the secret", e);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int tdc_store_secret_rotate(struct tdc_store *s, const char *id, const uint8_t *data, size_t len,
			    int64_t now, struct tdc_error *e)
{
	if (!s)
		return TDC_FAIL(e, TDC_E_USAGE, "no store");
	TDC_GUARD(tdc_store_check_id(id, e));
	if (len == 0 || len > TDC_MAX_SECRET_SIZE)
		return TDC_FAILF(e, TDC_E_LIMIT, "bad secret size", "%zu bytes, allowed 1..%u", len,
				 TDC_MAX_SECRET_SIZE);
	struct tdc_secret fresh = { 0 };
	if (!data) {
		TDC_GUARD(tdc_secret_alloc(len, &fresh, e));
		if (RAND_priv_bytes(fresh.data, (int)len) != 1) {
			tdc_secret_free(&fresh);
			return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot generate the new secret");
		}
		data = fresh.data;
	}
	uint8_t nonce[TDC_GCM_NONCE_SIZE];
	uint8_t *ct;
	size_t ct_len;
	int r = tdc_store_seal(&s->seal_key, id, data, len, nonce, &ct, &ct_len, e);
	tdc_secret_free(&fresh);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st;
	r = tdc_store_prepare(s->db,
			      "UPDATE secrets SET ciphertext = ?1, nonce = ?2, rotated = ?3 "
			      "WHERE id = ?4",
			      &st, e);
	if (r == 0) {
		sqlite3_bind_blob(st, 1, ct, (int)ct_len, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, nonce, sizeof(nonce), SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, now);
		sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
		r = step_change(s, st, id, "cannot rotate the secret", e);
	}
	pthread_mutex_unlock(&s->lock);
	free(ct);
	return r;
}

void tdc_secret_list_free(struct tdc_secret_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].id);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

int tdc_store_secret_list(struct tdc_store *s, struct tdc_secret_list *out, struct tdc_error *e)
{
	if (!s || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "no store or output");
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st;
	int r = tdc_store_prepare(s->db,
				  "SELECT id, created, rotated, policy IS NOT NULL FROM secrets "
				  "ORDER BY id",
				  &st, e);
	size_t cap = 0;
	int rc = SQLITE_ROW;
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (out->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct tdc_secret_info *ni = realloc(out->items, ncap * sizeof(*ni));
			if (!ni) {
				r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
				break;
			}
			out->items = ni;
			cap = ncap;
		}
		struct tdc_secret_info *it = &out->items[out->n];
		const char *id = (const char *)sqlite3_column_text(st, 0);
		it->id = strdup(id ? id : "");
		if (!it->id) {
			r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
			break;
		}
		it->created = sqlite3_column_int64(st, 1);
		it->rotated = sqlite3_column_int64(st, 2);
		it->has_policy = sqlite3_column_int(st, 3) != 0;
		out->n++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = STORE_DB_FAIL(e, s->db, "cannot list secrets");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		tdc_secret_list_free(out);
	return r;
}

int tdc_store_policy_set(struct tdc_store *s, const char *id, const char *policy_json,
			 struct tdc_error *e)
{
	if (!s)
		return TDC_FAIL(e, TDC_E_USAGE, "no store");
	TDC_GUARD(tdc_store_check_id(id, e));
	char *canon;
	TDC_GUARD(tdc_store_canon_policy(policy_json, &canon, e));
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st;
	int r = tdc_store_prepare(s->db, "UPDATE secrets SET policy = ?1 WHERE id = ?2", &st, e);
	if (r == 0) {
		bind_text_or_null(st, 1, canon);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
		r = step_change(s, st, id, "cannot set the policy", e);
	}
	pthread_mutex_unlock(&s->lock);
	free(canon);
	return r;
}

int tdc_store_policy_get(struct tdc_store *s, const char *id, char **out, struct tdc_error *e)
{
	if (!s || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "no store or output");
	*out = NULL;
	TDC_GUARD(tdc_store_check_id(id, e));
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st;
	int r = tdc_store_prepare(s->db, "SELECT policy FROM secrets WHERE id = ?1", &st, e);
	if (r == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *p = (const char *)sqlite3_column_text(st, 0);
			if (p && !(*out = strdup(p)))
				r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		} else if (rc == SQLITE_DONE) {
			r = TDC_FAILF(e, TDC_E_NOT_FOUND, TDC_STORE_NO_SUCH_SECRET, "%s", id);
		} else {
			r = STORE_DB_FAIL(e, s->db, "cannot read the policy");
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}
