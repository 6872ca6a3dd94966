/* SPDX-License-Identifier: Apache-2.0 */
/* The secrets: sealed with AES-256-GCM under the master key (keys.c) before they reach
 * the database, so a dump of either backend reveals nothing. Bound values only. */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "store/store-int.h"

int tdc_store_insert_locked(struct tdc_store *s, const char *id, const uint8_t *data, size_t len,
			    const char *policy_canon, int64_t now, struct tdc_error *e)
{
	uint8_t nonce[TDC_GCM_NONCE_SIZE];
	uint8_t *ct;
	size_t ct_len;
	TDC_GUARD(tdc_store_seal(&s->seal_key, id, data, len, nonce, &ct, &ct_len, e));
	struct db_q q;
	db_q_init(&q, "INSERT INTO secrets (id, ciphertext, nonce, created, rotated, policy) "
		      "VALUES ($1, $2, $3, $4, NULL, $5)");
	db_bind_text(&q, 1, id);
	db_bind_blob(&q, 2, ct, ct_len);
	db_bind_blob(&q, 3, nonce, sizeof(nonce));
	db_bind_i64(&q, 4, now);
	db_bind_text(&q, 5, policy_canon);
	int r = db_run(s->db, &q, "cannot store the secret", e);
	if (r < 0 && q.failure == DB_ERR_UNIQUE) {
		tdc_error_clear(e);
		r = TDC_FAILF(e, TDC_E_USAGE, "secret already exists", "%s", id);
	}
	db_q_free(&q);
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
	struct db_q q;
	db_q_init(&q, "SELECT ciphertext, nonce FROM secrets WHERE id = $1");
	db_bind_text(&q, 1, id);
	int r = tdc_store_damaged(s, e);
	if (r == 0)
		r = db_step(s->db, &q, "cannot read the secret", e);
	if (r == 1) {
		size_t ct_len, nonce_len;
		const uint8_t *ct = db_col_blob(&q, 0, &ct_len);
		const uint8_t *nonce = db_col_blob(&q, 1, &nonce_len);
		r = ct && nonce ? tdc_store_unseal(&s->seal_key, id, nonce, nonce_len, ct, ct_len,
						   out, e)
				: TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	} else if (r == 0) {
		r = TDC_FAILF(e, TDC_E_NOT_FOUND, TDC_STORE_NO_SUCH_SECRET, "%s", id);
	}
	db_q_free(&q);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Runs a single-row UPDATE/DELETE already bound; no row touched = unknown ID. */
int tdc_store_change_one(struct tdc_store *s, struct db_q *q, const char *id,
			 const char *reason, struct tdc_error *e)
{
	int r = db_run(s->db, q, reason, e);
	if (r == 0 && q->changes == 0)
		r = TDC_FAILF(e, TDC_E_NOT_FOUND, TDC_STORE_NO_SUCH_SECRET, "%s", id);
	db_q_free(q);
	return r;
}

int tdc_store_secret_delete(struct tdc_store *s, const char *id, struct tdc_error *e)
{
	if (!s)
		return TDC_FAIL(e, TDC_E_USAGE, "no store");
	TDC_GUARD(tdc_store_check_id(id, e));
	pthread_mutex_lock(&s->lock);
	struct db_q q;
	db_q_init(&q, "DELETE FROM secrets WHERE id = $1");
	db_bind_text(&q, 1, id);
	int r = tdc_store_change_one(s, &q, id, "cannot delete the secret", e);
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
	struct db_q q;
	db_q_init(&q, "UPDATE secrets SET ciphertext = $1, nonce = $2, rotated = $3 WHERE id = $4");
	db_bind_blob(&q, 1, ct, ct_len);
	db_bind_blob(&q, 2, nonce, sizeof(nonce));
	db_bind_i64(&q, 3, now);
	db_bind_text(&q, 4, id);
	r = tdc_store_change_one(s, &q, id, "cannot rotate the secret", e);
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
	struct db_q q;
	db_q_init(&q, "SELECT id, created, rotated, CASE WHEN policy IS NULL THEN 0 ELSE 1 END "
		      "FROM secrets ORDER BY id");
	size_t cap = 0;
	int r;
	while ((r = db_step(s->db, &q, "cannot list secrets", e)) == 1) {
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
		const char *id = db_col_text(&q, 0);
		it->id = strdup(id ? id : "");
		if (!it->id) {
			r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
			break;
		}
		it->created = db_col_i64(&q, 1);
		it->rotated = db_col_i64(&q, 2);
		it->has_policy = db_col_i64(&q, 3) != 0;
		out->n++;
	}
	db_q_free(&q);
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		tdc_secret_list_free(out);
	return r < 0 ? r : 0;
}
