/* SPDX-License-Identifier: Apache-2.0 */
/*
 * db.h on PostgreSQL (libpq): one connection per store handle, used under the store's
 * lock. Durability is the server's COMMIT with synchronous_commit on (set per session,
 * whatever the server's default). A connection that failed is reset before its next
 * use, outside a transaction; a transaction whose connection failed is lost and its
 * statement fails, so the caller (a release waiting for its audit record) fails closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store/db-backend.h"

#define CONNECT_TIMEOUT_S "5"
/* a statement never waits longer than this (a hung server must not hang the keeper) */
#define SESSION_SETUP                                                                      \
	"SET synchronous_commit = on; SET statement_timeout = '15s'; "                     \
	"SET lock_timeout = '10s'; SET client_min_messages = warning"
/* the key of the advisory lock that serialises schema migrations across brokers */
#define MIGRATION_LOCK_KEY "7307295"

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message; /* lib/ never logs; errors are returned */
}

static int fail_msg(struct tdc_error *e, const char *reason, const char *msg)
{
	char m[300];
	snprintf(m, sizeof(m), "%s", msg && *msg ? msg : "unknown error");
	size_t n = strlen(m);
	while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
		m[--n] = 0;
	return tdc_error_set(e, TDC_E_IO, TDC_NO_OFFSET, __FILE__, __LINE__, reason,
			     "postgresql: %s", m);
}

static int setup_session(struct db *d, struct tdc_error *e)
{
	PGresult *res = PQexec(d->h, SESSION_SETUP);
	int r = PQresultStatus(res) == PGRES_COMMAND_OK
			? 0
			: fail_msg(e, "cannot set up the database session", PQerrorMessage(d->h));
	PQclear(res);
	return r;
}

int pg_open(struct db *d, const char *url, struct tdc_error *e)
{
	/* the URL's own settings come last and win */
	const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
	const char *const vals[] = { CONNECT_TIMEOUT_S, "tdcrypt-kbs", url, NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if (PQstatus(c) != CONNECTION_OK) {
		int r = fail_msg(e, "cannot connect to the store", PQerrorMessage(c));
		PQfinish(c);
		return r;
	}
	PQsetNoticeProcessor(c, quiet, NULL);
	d->h = c;
	/* where, without the credentials */
	snprintf(d->where, sizeof(d->where), "postgresql://%s:%s/%s", PQhost(c), PQport(c),
		 PQdb(c));
	int r = setup_session(d, e);
	if (r < 0) {
		PQfinish(c);
		d->h = NULL;
	}
	return r;
}

void pg_close(struct db *d)
{
	PQfinish(d->h);
	d->h = NULL;
}

/* Before a use: a failed connection is reset, but never inside a transaction. */
static int usable(struct db *d, const char *reason, struct tdc_error *e)
{
	if (!d->broken && PQstatus(d->h) == CONNECTION_OK)
		return 0;
	if (d->in_tx)
		return TDC_FAILF(e, TDC_E_IO, reason, "postgresql: the connection failed in a "
				 "transaction (%s)", d->where);
	PQreset(d->h);
	if (PQstatus(d->h) != CONNECTION_OK)
		return fail_msg(e, reason, PQerrorMessage(d->h));
	d->broken = false;
	return setup_session(d, e);
}

static void note_broken(struct db *d)
{
	if (PQstatus(d->h) != CONNECTION_OK)
		d->broken = true;
}

int pg_exec(struct db *d, const char *sql, const char *reason, struct tdc_error *e)
{
	/* a ROLLBACK or COMMIT on a dead connection fails, and ends the transaction */
	bool ending = strcmp(sql, "ROLLBACK") == 0 || strcmp(sql, "COMMIT") == 0;
	if (!ending || !d->broken)
		TDC_GUARD(usable(d, reason, e));
	else
		return fail_msg(e, reason, "the connection failed");
	PGresult *res = PQexec(d->h, sql);
	/* a server restarted since the last use: the first statement of a transaction is
	 * safe to send again on a new connection (nothing of it can have happened) */
	if (PQresultStatus(res) != PGRES_COMMAND_OK && !strcmp(sql, "BEGIN") && !d->in_tx &&
	    PQstatus(d->h) != CONNECTION_OK) {
		PQclear(res);
		d->broken = true;
		TDC_GUARD(usable(d, reason, e));
		res = PQexec(d->h, sql);
	}
	ExecStatusType st = PQresultStatus(res);
	int r = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
			? 0
			: fail_msg(e, reason, PQerrorMessage(d->h));
	PQclear(res);
	if (r < 0)
		note_broken(d);
	return r;
}

int pg_migration_lock(struct db *d, struct tdc_error *e)
{
	return pg_exec(d, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")",
		       "cannot lock the schema for a migration", e);
}

int pg_version(struct db *d, int *v, struct tdc_error *e)
{
	struct db_q q;
	*v = 0;
	db_q_init(&q, "SELECT to_regclass('tdc_schema') IS NOT NULL");
	int r = db_step(d, &q, "cannot read the schema version", e);
	bool exists = r == 1 && strcmp(db_col_text(&q, 0), "t") == 0;
	db_q_free(&q);
	if (r < 0 || !exists)
		return r < 0 ? r : 0;
	db_q_init(&q, "SELECT version FROM tdc_schema");
	r = db_step(d, &q, "cannot read the schema version", e);
	if (r == 1)
		*v = (int)db_col_i64(&q, 0);
	else if (r == 0)
		r = TDC_FAIL(e, TDC_E_FORMAT, "the store's schema table is empty");
	db_q_free(&q);
	return r < 0 ? r : 0;
}

int pg_set_version(struct db *d, int v, struct tdc_error *e)
{
	struct db_q q;
	db_q_init(&q, "UPDATE tdc_schema SET version = $1");
	db_bind_i64(&q, 1, v);
	int r = db_run(d, &q, "cannot set the schema version", e);
	db_q_free(&q);
	return r;
}

int pg_step(struct db *d, struct db_q *q, const char *reason, struct tdc_error *e)
{
	if (q->done)
		return 0;
	if (!q->started) {
		q->started = true;
		q->row = -1;
		TDC_GUARD(usable(d, reason, e));
		const char *vals[DB_MAX_PARAMS];
		int lens[DB_MAX_PARAMS], fmts[DB_MAX_PARAMS];
		for (int i = 0; i < q->nparams; i++) {
			const struct db_param *p = &q->params[i];
			vals[i] = p->type == DBP_NULL ? NULL : p->type == DBP_I64 ? p->num : p->p;
			lens[i] = p->type == DBP_I64 ? (int)strlen(p->num) : (int)p->len;
			fmts[i] = p->type == DBP_BLOB || p->type == DBP_TEXT; /* binary: exact length */
		}
		PGresult *res = PQexecParams(d->h, q->sql, q->nparams, NULL, vals, lens, fmts, 0);
		ExecStatusType st = PQresultStatus(res);
		/* a read outside a transaction is sent again once on a new connection */
		if (st != PGRES_TUPLES_OK && !d->in_tx && !strncmp(q->sql, "SELECT ", 7) &&
		    PQstatus(d->h) != CONNECTION_OK) {
			PQclear(res);
			d->broken = true;
			TDC_GUARD(usable(d, reason, e));
			res = PQexecParams(d->h, q->sql, q->nparams, NULL, vals, lens, fmts, 0);
			st = PQresultStatus(res);
		}
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			if (state && strcmp(state, "23505") == 0)
				q->failure = DB_ERR_UNIQUE;
			int r = fail_msg(e, reason, res ? PQresultErrorMessage(res) : PQerrorMessage(d->h));
			PQclear(res);
			note_broken(d);
			q->done = true;
			return r;
		}
		q->impl = res;
		q->rows = PQntuples(res);
		const char *n = PQcmdTuples(res);
		q->changes = n && *n ? strtoll(n, NULL, 10) : 0;
	}
	if (++q->row < q->rows)
		return 1;
	q->done = true;
	return 0;
}

bool pg_col_null(struct db_q *q, int i)
{
	return PQgetisnull(q->impl, q->row, i);
}

const char *pg_col_text(struct db_q *q, int i)
{
	return PQgetisnull(q->impl, q->row, i) ? NULL : PQgetvalue(q->impl, q->row, i);
}

struct blob {
	struct blob *next;
	unsigned char *p;
};

const uint8_t *pg_col_blob(struct db_q *q, int i, size_t *len)
{
	*len = 0;
	if (PQgetisnull(q->impl, q->row, i))
		return (const uint8_t *)"";
	struct blob *b = malloc(sizeof(*b));
	if (!b)
		return NULL;
	b->p = PQunescapeBytea((const unsigned char *)PQgetvalue(q->impl, q->row, i), len);
	if (!b->p) {
		free(b);
		*len = 0;
		return NULL;
	}
	b->next = q->blobs;
	q->blobs = b;
	return b->p;
}

int64_t pg_col_i64(struct db_q *q, int i)
{
	const char *v = pg_col_text(q, i);
	return v ? strtoll(v, NULL, 10) : 0;
}

void pg_q_free(struct db_q *q)
{
	PQclear(q->impl);
	for (struct blob *b = q->blobs, *n; b; b = n) {
		n = b->next;
		PQfreemem(b->p);
		free(b);
	}
	q->blobs = NULL;
}
