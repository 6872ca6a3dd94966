/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log (append-only, enforced by triggers) and the collateral cache. */
#include <stdlib.h>
#include <string.h>

#include "store/store-int.h"

/* Binds s cut at cap bytes: an audit record is never refused for its length. */
static void bind_capped(sqlite3_stmt *st, int i, const char *s, size_t cap)
{
	if (!s)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, (int)strnlen(s, cap), SQLITE_STATIC);
}

struct audit_waiter {
	const struct tdc_audit_record *rec;
	int64_t id;
	int rc;
	struct tdc_error err;
	bool done;
	struct audit_waiter *next;
};

static int insert_locked(struct tdc_store *s, const struct tdc_audit_record *rec, int64_t *id,
			 struct tdc_error *e)
{
	sqlite3_stmt *st;
	int r = tdc_store_prepare(s->db,
				  "INSERT INTO audit (time, request_id, secret_id, peer, "
				  "claims_digest, verdict, decision, reason) "
				  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
				  &st, e);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, rec->time);
	bind_capped(st, 2, rec->request_id, TDC_MAX_AUDIT_FIELD);
	bind_capped(st, 3, rec->secret_id, TDC_MAX_AUDIT_FIELD);
	bind_capped(st, 4, rec->peer, TDC_MAX_AUDIT_FIELD);
	bind_capped(st, 5, rec->claims_digest, TDC_MAX_AUDIT_FIELD);
	bind_capped(st, 6, rec->verdict, TDC_MAX_AUDIT_FIELD);
	sqlite3_bind_text(st, 7, rec->decision == TDC_AUDIT_RELEASED ? "released" : "denied", -1,
			  SQLITE_STATIC);
	bind_capped(st, 8, rec->reason, TDC_MAX_AUDIT_REASON);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = STORE_DB_FAIL(e, s->db, "cannot append to the audit log");
	else
		*id = sqlite3_last_insert_rowid(s->db);
	sqlite3_finalize(st);
	return r;
}

/* Writes a batch in one transaction: one fsync for all of it. A record counts
 * as written only once the COMMIT succeeded. */
static void commit_batch(struct tdc_store *s, struct audit_waiter *batch)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	pthread_mutex_lock(&s->lock);
	int r = tdc_store_damaged(s, &e);
	if (r == 0 && sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		r = STORE_DB_FAIL(&e, s->db, "cannot start an audit transaction");
	for (struct audit_waiter *w = batch; r == 0 && w; w = w->next)
		w->rc = insert_locked(s, w->rec, &w->id, &w->err);
	if (r == 0 && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		r = s->damaged ? tdc_store_damaged(s, &e)
			       : STORE_DB_FAIL(&e, s->db, "cannot commit the audit log");
	if (r < 0) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		for (struct audit_waiter *w = batch; w; w = w->next) {
			w->rc = r;
			w->err = e;
		}
	}
	pthread_mutex_unlock(&s->lock);
}

/*
 * Group commit: the caller queues its record; whoever finds no commit in
 * flight becomes the leader and writes everything queued so far. Each caller
 * returns only after its own record is durable (or failed), so "no release
 * without an audit record" holds, with one fsync per batch instead of per
 * release.
 */
int tdc_store_audit_append(struct tdc_store *s, const struct tdc_audit_record *rec,
			   int64_t *id_out, struct tdc_error *e)
{
	if (!s || !rec)
		return TDC_FAIL(e, TDC_E_USAGE, "no store or record");
	if (rec->decision != TDC_AUDIT_DENIED && rec->decision != TDC_AUDIT_RELEASED)
		return TDC_FAIL(e, TDC_E_USAGE, "bad audit decision");

	struct audit_waiter me = { .rec = rec };
	tdc_error_clear(&me.err);
	pthread_mutex_lock(&s->group_lock);
	*s->pending_tail = &me;
	s->pending_tail = &me.next;
	while (!me.done) {
		if (s->leader_active) {
			pthread_cond_wait(&s->group_done, &s->group_lock);
			continue;
		}
		s->leader_active = true;
		struct audit_waiter *batch = s->pending;
		s->pending = NULL;
		s->pending_tail = &s->pending;
		pthread_mutex_unlock(&s->group_lock);
		commit_batch(s, batch);
		pthread_mutex_lock(&s->group_lock);
		/* waiters may return (their record lives on their stack) once done is set */
		for (struct audit_waiter *w = batch, *next; w; w = next) {
			next = w->next;
			w->done = true;
		}
		s->leader_active = false;
		pthread_cond_broadcast(&s->group_done);
	}
	pthread_mutex_unlock(&s->group_lock);

	if (me.rc < 0) {
		if (e && e->code == 0)
			*e = me.err;
		return me.rc;
	}
	if (id_out)
		*id_out = me.id;
	return 0;
}

static void record_free(struct tdc_audit_record *a)
{
	free((char *)a->request_id);
	free((char *)a->secret_id);
	free((char *)a->peer);
	free((char *)a->claims_digest);
	free((char *)a->verdict);
	free((char *)a->reason);
}

void tdc_audit_list_free(struct tdc_audit_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		record_free(&l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

/* Copies a text column (NULL stays NULL). */
static int col_dup(sqlite3_stmt *st, int i, const char **out)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	*out = NULL;
	if (!t)
		return 0;
	*out = strdup(t);
	return *out ? 0 : -1;
}

static int read_record(sqlite3_stmt *st, struct tdc_audit_record *a)
{
	memset(a, 0, sizeof(*a));
	a->id = sqlite3_column_int64(st, 0);
	a->time = sqlite3_column_int64(st, 1);
	const char *d = (const char *)sqlite3_column_text(st, 7);
	a->decision = d && strcmp(d, "released") == 0 ? TDC_AUDIT_RELEASED : TDC_AUDIT_DENIED;
	if (col_dup(st, 2, &a->request_id) < 0 || col_dup(st, 3, &a->secret_id) < 0 ||
	    col_dup(st, 4, &a->peer) < 0 || col_dup(st, 5, &a->claims_digest) < 0 ||
	    col_dup(st, 6, &a->verdict) < 0 || col_dup(st, 8, &a->reason) < 0) {
		record_free(a);
		return -1;
	}
	return 0;
}

int tdc_store_audit_list(struct tdc_store *s, const struct tdc_audit_query *q,
			 struct tdc_audit_list *out, struct tdc_error *e)
{
	if (!s || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "no store or output");
	memset(out, 0, sizeof(*out));
	size_t limit = q && q->limit ? q->limit : TDC_MAX_AUDIT_LIST;
	if (limit > TDC_MAX_AUDIT_LIST)
		limit = TDC_MAX_AUDIT_LIST;
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st;
	int r = tdc_store_prepare(s->db,
				  "SELECT id, time, request_id, secret_id, peer, claims_digest, "
				  "verdict, decision, reason FROM audit "
				  "WHERE (?1 IS NULL OR secret_id = ?1) AND id > ?2 "
				  "ORDER BY id LIMIT ?3",
				  &st, e);
	int rc = SQLITE_DONE;
	if (r == 0) {
		if (q && q->secret_id)
			sqlite3_bind_text(st, 1, q->secret_id, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 1);
		sqlite3_bind_int64(st, 2, q ? q->after_id : 0);
		sqlite3_bind_int64(st, 3, (int64_t)limit);
		out->items = calloc(limit, sizeof(*out->items));
		if (!out->items)
			r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW && out->n < limit) {
		if (read_record(st, &out->items[out->n]) < 0)
			r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		else
			out->n++;
	}
	if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = STORE_DB_FAIL(e, s->db, "cannot read the audit log");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		tdc_audit_list_free(out);
	return r;
}

static int check_cache_key(const char *key, const char *kind, struct tdc_error *e)
{
	if (!key || !kind)
		return TDC_FAIL(e, TDC_E_USAGE, "no cache key or kind");
	size_t a = strnlen(key, TDC_MAX_CACHE_KEY + 1), b = strnlen(kind, TDC_MAX_CACHE_KEY + 1);
	if (a == 0 || a > TDC_MAX_CACHE_KEY || b == 0 || b > TDC_MAX_CACHE_KEY)
		return TDC_FAILF(e, TDC_E_LIMIT, "bad cache key", "key and kind: 1..%d bytes",
				 TDC_MAX_CACHE_KEY);
	return 0;
}

int tdc_store_collateral_put(struct tdc_store *s, const char *key, const char *kind,
			     const uint8_t *body, size_t len, int64_t next_update, int64_t fetched,
			     struct tdc_error *e)
{
	if (!s || (!body && len))
		return TDC_FAIL(e, TDC_E_USAGE, "no store or body");
	TDC_GUARD(check_cache_key(key, kind, e));
	if (len > TDC_MAX_CACHE_BODY)
		return TDC_FAILF(e, TDC_E_LIMIT, "collateral too large to cache",
				 "%zu bytes, limit %u", len, TDC_MAX_CACHE_BODY);
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st;
	int r = tdc_store_prepare(s->db,
				  "INSERT INTO collateral_cache (key, kind, body, next_update, "
				  "fetched) VALUES (?1, ?2, ?3, ?4, ?5) "
				  "ON CONFLICT (key, kind) DO UPDATE SET body = excluded.body, "
				  "next_update = excluded.next_update, fetched = excluded.fetched",
				  &st, e);
	if (r == 0) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
		/* zeroblob keeps an empty body a BLOB, not NULL */
		if (len)
			sqlite3_bind_blob(st, 3, body, (int)len, SQLITE_STATIC);
		else
			sqlite3_bind_zeroblob(st, 3, 0);
		sqlite3_bind_int64(st, 4, next_update);
		sqlite3_bind_int64(st, 5, fetched);
		if (sqlite3_step(st) != SQLITE_DONE)
			r = STORE_DB_FAIL(e, s->db, "cannot cache collateral");
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int tdc_store_collateral_get(struct tdc_store *s, const char *key, const char *kind,
			     uint8_t **body, size_t *len, int64_t *next_update, int64_t *fetched,
			     bool *found, struct tdc_error *e)
{
	if (!s || !body || !len || !found)
		return TDC_FAIL(e, TDC_E_USAGE, "no store or output");
	*body = NULL;
	*len = 0;
	*found = false;
	TDC_GUARD(check_cache_key(key, kind, e));
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st;
	int r = tdc_store_prepare(s->db,
				  "SELECT body, next_update, fetched FROM collateral_cache "
				  "WHERE key = ?1 AND kind = ?2",
				  &st, e);
	if (r == 0) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const void *b = sqlite3_column_blob(st, 0);
			size_t n = (size_t)sqlite3_column_bytes(st, 0);
			*body = malloc(n + 1);
			if (!*body) {
				r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
			} else {
				if (n)
					memcpy(*body, b, n);
				(*body)[n] = 0;
				*len = n;
				*found = true;
				if (next_update)
					*next_update = sqlite3_column_int64(st, 1);
				if (fetched)
					*fetched = sqlite3_column_int64(st, 2);
			}
		} else if (rc != SQLITE_DONE) {
			r = STORE_DB_FAIL(e, s->db, "cannot read the collateral cache");
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}
