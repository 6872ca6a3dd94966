/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log: append-only (enforced by triggers on both backends), group-committed. */
#include <stdlib.h>
#include <string.h>

#include "store/store-int.h"

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
	struct db_q q;
	db_q_init(&q, "INSERT INTO audit (time, request_id, secret_id, peer, claims_digest, "
		      "verdict, decision, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
		      "RETURNING id");
	db_bind_i64(&q, 1, rec->time);
	db_bind_text_capped(&q, 2, rec->request_id, TDC_MAX_AUDIT_FIELD);
	db_bind_text_capped(&q, 3, rec->secret_id, TDC_MAX_AUDIT_FIELD);
	db_bind_text_capped(&q, 4, rec->peer, TDC_MAX_AUDIT_FIELD);
	db_bind_text_capped(&q, 5, rec->claims_digest, TDC_MAX_AUDIT_FIELD);
	db_bind_text_capped(&q, 6, rec->verdict, TDC_MAX_AUDIT_FIELD);
	db_bind_text(&q, 7, rec->decision == TDC_AUDIT_RELEASED ? "released" : "denied");
	db_bind_text_capped(&q, 8, rec->reason, TDC_MAX_AUDIT_REASON);
	int r = db_step(s->db, &q, "cannot append to the audit log", e);
	if (r == 1) {
		*id = db_col_i64(&q, 0);
		r = db_step(s->db, &q, "cannot append to the audit log", e);
	} else if (r == 0) {
		r = TDC_FAIL(e, TDC_E_IO, "the audit log gave no record id");
	}
	db_q_free(&q);
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
	if (r == 0)
		r = db_begin(s->db, &e);
	for (struct audit_waiter *w = batch; r == 0 && w; w = w->next) {
		w->rc = insert_locked(s, w->rec, &w->id, &w->err);
		if (w->rc < 0) {
			r = w->rc;
			e = w->err;
		}
	}
	if (r == 0) {
		r = db_commit(s->db, &e);
		if (r < 0 && s->damaged) {
			tdc_error_clear(&e);
			r = tdc_store_damaged(s, &e);
		}
	}
	if (r < 0) {
		db_rollback(s->db);
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
static int col_dup(struct db_q *q, int i, const char **out)
{
	const char *t = db_col_text(q, i);
	*out = NULL;
	if (!t)
		return 0;
	*out = strdup(t);
	return *out ? 0 : -1;
}

static int read_record(struct db_q *q, struct tdc_audit_record *a)
{
	memset(a, 0, sizeof(*a));
	a->id = db_col_i64(q, 0);
	a->time = db_col_i64(q, 1);
	const char *d = db_col_text(q, 7);
	a->decision = d && strcmp(d, "released") == 0 ? TDC_AUDIT_RELEASED : TDC_AUDIT_DENIED;
	if (col_dup(q, 2, &a->request_id) < 0 || col_dup(q, 3, &a->secret_id) < 0 ||
	    col_dup(q, 4, &a->peer) < 0 || col_dup(q, 5, &a->claims_digest) < 0 ||
	    col_dup(q, 6, &a->verdict) < 0 || col_dup(q, 8, &a->reason) < 0) {
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
	out->items = calloc(limit, sizeof(*out->items));
	if (!out->items)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	pthread_mutex_lock(&s->lock);
	struct db_q st;
	if (q && q->secret_id) {
		db_q_init(&st, "SELECT id, time, request_id, secret_id, peer, claims_digest, "
			       "verdict, decision, reason FROM audit "
			       "WHERE id > $1 AND secret_id = $2 ORDER BY id LIMIT $3");
		db_bind_text(&st, 2, q->secret_id);
		db_bind_i64(&st, 3, (int64_t)limit);
	} else {
		db_q_init(&st, "SELECT id, time, request_id, secret_id, peer, claims_digest, "
			       "verdict, decision, reason FROM audit "
			       "WHERE id > $1 ORDER BY id LIMIT $2");
		db_bind_i64(&st, 2, (int64_t)limit);
	}
	db_bind_i64(&st, 1, q ? q->after_id : 0);
	int r;
	while (out->n < limit && (r = db_step(s->db, &st, "cannot read the audit log", e)) == 1) {
		if (read_record(&st, &out->items[out->n]) < 0) {
			r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
			break;
		}
		out->n++;
	}
	if (out->n == limit)
		r = 0;
	db_q_free(&st);
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		tdc_audit_list_free(out);
	return r < 0 ? r : 0;
}
