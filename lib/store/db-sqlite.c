/* SPDX-License-Identifier: Apache-2.0 */
/* db.h on SQLite: one file in WAL mode, synchronous=FULL, defensive. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/db-backend.h"

/* How long a writer waits for another process's transaction. */
#define BUSY_TIMEOUT_MS 5000

static int fail(struct tdc_error *e, sqlite3 *db, const char *reason)
{
	return tdc_error_set(e, TDC_E_IO, TDC_NO_OFFSET, __FILE__, __LINE__, reason, "sqlite: %s",
			     db ? sqlite3_errmsg(db) : "out of memory");
}

int sq_exec(struct db *d, const char *sql, const char *reason, struct tdc_error *e)
{
	if (sqlite3_exec(d->h, sql, NULL, NULL, NULL) != SQLITE_OK)
		return fail(e, d->h, reason);
	return 0;
}

int sq_open(struct db *d, const char *path, struct tdc_error *e)
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
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
					 SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
				 NULL);
	if (rc != SQLITE_OK) {
		int r = fail(e, db, "cannot open the store");
		sqlite3_close(db);
		return r;
	}
	d->h = db;
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	/* the schema is ours: refuse tricks a crafted database file could play */
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	/* WAL: readers never block the writer; FULL: an audit record that was
	 * acknowledged survives power loss; secure_delete: rotated ciphertext is overwritten */
	int r = sq_exec(d, "PRAGMA journal_mode = WAL", "cannot enable WAL", e);
	if (r == 0)
		r = sq_exec(d, "PRAGMA synchronous = FULL", "cannot set synchronous", e);
	if (r == 0)
		r = sq_exec(d, "PRAGMA secure_delete = ON", "cannot set secure_delete", e);
	if (r == 0)
		r = sq_exec(d, "PRAGMA foreign_keys = ON", "cannot set foreign_keys", e);
	if (r < 0) {
		sqlite3_close(db);
		d->h = NULL;
	}
	return r;
}

void sq_close(struct db *d)
{
	sqlite3_close(d->h);
	d->h = NULL;
}

int sq_version(struct db *d, int *v, struct tdc_error *e)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return fail(e, d->h, "cannot read the schema version");
	int rc = sqlite3_step(st);
	*v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : fail(e, d->h, "cannot read the schema version");
}

int sq_set_version(struct db *d, int v, struct tdc_error *e)
{
	char sql[48];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
	return sq_exec(d, sql, "cannot set the schema version", e);
}

static int bind(sqlite3_stmt *st, const struct db_q *q)
{
	for (int i = 0; i < q->nparams; i++) {
		const struct db_param *p = &q->params[i];
		int rc = SQLITE_OK;
		switch (p->type) {
		case DBP_NULL: rc = sqlite3_bind_null(st, i + 1); break;
		case DBP_TEXT: rc = sqlite3_bind_text(st, i + 1, p->p, (int)p->len, SQLITE_STATIC); break;
		/* zeroblob keeps an empty blob a BLOB, not NULL */
		case DBP_BLOB:
			rc = p->len ? sqlite3_bind_blob(st, i + 1, p->p, (int)p->len, SQLITE_STATIC)
				    : sqlite3_bind_zeroblob(st, i + 1, 0);
			break;
		case DBP_I64: rc = sqlite3_bind_int64(st, i + 1, p->i); break;
		}
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

int sq_step(struct db *d, struct db_q *q, const char *reason, struct tdc_error *e)
{
	if (q->done)
		return 0;
	if (!q->started) {
		sqlite3_stmt *st;
		q->started = true;
		if (sqlite3_prepare_v2(d->h, q->sql, -1, &st, NULL) != SQLITE_OK)
			return fail(e, d->h, reason);
		q->impl = st;
		if (sqlite3_bind_parameter_count(st) != q->nparams || bind(st, q) != SQLITE_OK)
			return TDC_FAILF(e, TDC_E_INTERNAL, reason, "parameters of: %s", q->sql);
	}
	int rc = sqlite3_step(q->impl);
	if (rc == SQLITE_ROW)
		return 1;
	q->done = true;
	if (rc == SQLITE_DONE) {
		q->changes = sqlite3_changes64(d->h);
		return 0;
	}
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
		q->failure = DB_ERR_UNIQUE;
	return fail(e, d->h, reason);
}

bool sq_col_null(struct db_q *q, int i)
{
	return sqlite3_column_type(q->impl, i) == SQLITE_NULL;
}

const char *sq_col_text(struct db_q *q, int i)
{
	return (const char *)sqlite3_column_text(q->impl, i);
}

const uint8_t *sq_col_blob(struct db_q *q, int i, size_t *len)
{
	const uint8_t *p = sqlite3_column_blob(q->impl, i);
	*len = (size_t)sqlite3_column_bytes(q->impl, i);
	return p ? p : (const uint8_t *)"";
}

int64_t sq_col_i64(struct db_q *q, int i)
{
	return sqlite3_column_int64(q->impl, i);
}

void sq_q_free(struct db_q *q)
{
	sqlite3_finalize(q->impl);
}
