/* SPDX-License-Identifier: Apache-2.0 */
/* The store's SQL interface (db.h): parameters, and the choice of backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/db-backend.h"

bool db_is_url(const char *path)
{
	return path && (strncmp(path, "postgresql://", 13) == 0 ||
			strncmp(path, "postgres://", 11) == 0);
}

int db_open(const char *path, struct db **out, struct tdc_error *e)
{
	*out = NULL;
	struct db *d = calloc(1, sizeof(*d));
	if (!d)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	int r;
	if (db_is_url(path)) {
		d->kind = DB_POSTGRESQL;
		r = pg_open(d, path, e);
	} else {
		d->kind = DB_SQLITE;
		snprintf(d->where, sizeof(d->where), "%s", path);
		r = sq_open(d, path, e);
	}
	if (r < 0) {
		free(d);
		return r;
	}
	*out = d;
	return 0;
}

void db_close(struct db *d)
{
	if (!d)
		return;
	if (d->kind == DB_POSTGRESQL)
		pg_close(d);
	else
		sq_close(d);
	free(d);
}

enum db_kind db_kind(const struct db *d)
{
	return d->kind;
}

const char *db_where(const struct db *d)
{
	return d->where;
}

struct sqlite3 *db_sqlite(struct db *d)
{
	return d && d->kind == DB_SQLITE ? d->h : NULL;
}

int db_exec(struct db *d, const char *sql, const char *reason, struct tdc_error *e)
{
	return d->kind == DB_POSTGRESQL ? pg_exec(d, sql, reason, e) : sq_exec(d, sql, reason, e);
}

int db_begin(struct db *d, struct tdc_error *e)
{
	TDC_GUARD(db_exec(d, d->kind == DB_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN",
			  "cannot start a transaction", e));
	d->in_tx = true;
	return 0;
}

int db_commit(struct db *d, struct tdc_error *e)
{
	int r = db_exec(d, "COMMIT", "cannot commit", e);
	if (r == 0)
		d->in_tx = false;
	return r;
}

void db_rollback(struct db *d)
{
	struct tdc_error ignored;
	tdc_error_clear(&ignored);
	/* a rollback that fails leaves nothing committed either */
	if (d->in_tx && !d->broken && db_exec(d, "ROLLBACK", "cannot roll back", &ignored) < 0)
		d->broken = d->kind == DB_POSTGRESQL;
	d->in_tx = false;
}

int db_version(struct db *d, int *v, struct tdc_error *e)
{
	return d->kind == DB_POSTGRESQL ? pg_version(d, v, e) : sq_version(d, v, e);
}

int db_set_version(struct db *d, int v, struct tdc_error *e)
{
	return d->kind == DB_POSTGRESQL ? pg_set_version(d, v, e) : sq_set_version(d, v, e);
}

int db_migration_lock(struct db *d, struct tdc_error *e)
{
	/* SQLite: BEGIN IMMEDIATE already holds the file's write lock */
	return d->kind == DB_POSTGRESQL ? pg_migration_lock(d, e) : 0;
}

void db_q_init(struct db_q *q, const char *sql)
{
	memset(q, 0, sizeof(*q));
	q->sql = sql;
}

static struct db_param *param(struct db_q *q, int i)
{
	if (i < 1 || i > DB_MAX_PARAMS)
		abort(); /* a programming error: the SQL is ours */
	if (i > q->nparams)
		q->nparams = i;
	return &q->params[i - 1];
}

void db_bind_text(struct db_q *q, int i, const char *s)
{
	if (!s) {
		db_bind_null(q, i);
		return;
	}
	struct db_param *p = param(q, i);
	p->type = DBP_TEXT;
	p->p = s;
	p->len = strlen(s);
}

void db_bind_text_capped(struct db_q *q, int i, const char *s, size_t cap)
{
	db_bind_text(q, i, s);
	if (s && q->params[i - 1].len > cap)
		q->params[i - 1].len = cap;
}

void db_bind_blob(struct db_q *q, int i, const void *p, size_t len)
{
	struct db_param *b = param(q, i);
	b->type = DBP_BLOB;
	b->p = p ? p : "";
	b->len = len;
}

void db_bind_i64(struct db_q *q, int i, int64_t v)
{
	struct db_param *p = param(q, i);
	p->type = DBP_I64;
	p->i = v;
	snprintf(p->num, sizeof(p->num), "%lld", (long long)v);
}

void db_bind_null(struct db_q *q, int i)
{
	param(q, i)->type = DBP_NULL;
}

int db_step(struct db *d, struct db_q *q, const char *reason, struct tdc_error *e)
{
	q->kind = d->kind;
	return d->kind == DB_POSTGRESQL ? pg_step(d, q, reason, e) : sq_step(d, q, reason, e);
}

int db_run(struct db *d, struct db_q *q, const char *reason, struct tdc_error *e)
{
	int r = db_step(d, q, reason, e);
	return r < 0 ? r : 0;
}

bool db_col_null(struct db_q *q, int i)
{
	return q->kind == DB_POSTGRESQL ? pg_col_null(q, i) : sq_col_null(q, i);
}

const char *db_col_text(struct db_q *q, int i)
{
	return q->kind == DB_POSTGRESQL ? pg_col_text(q, i) : sq_col_text(q, i);
}

const uint8_t *db_col_blob(struct db_q *q, int i, size_t *len)
{
	return q->kind == DB_POSTGRESQL ? pg_col_blob(q, i, len) : sq_col_blob(q, i, len);
}

int64_t db_col_i64(struct db_q *q, int i)
{
	return q->kind == DB_POSTGRESQL ? pg_col_i64(q, i) : sq_col_i64(q, i);
}

void db_q_free(struct db_q *q)
{
	if (q->kind == DB_POSTGRESQL)
		pg_q_free(q);
	else if (q->kind == DB_SQLITE)
		sq_q_free(q);
	q->impl = NULL;
	q->kind = 0;
}
