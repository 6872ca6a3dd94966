/* SPDX-License-Identifier: Apache-2.0 */
/* The collateral cache: PCS/PCCS responses by (key, kind), shared by every broker on the
 * store, so collateral one broker fetched serves the others. Trust is never taken from
 * the cache: the verifier re-checks signatures and validity windows on every use. */
#include <stdlib.h>
#include <string.h>

#include "store/store-int.h"

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
	struct db_q q;
	db_q_init(&q, "INSERT INTO collateral_cache (key, kind, body, next_update, fetched) "
		      "VALUES ($1, $2, $3, $4, $5) "
		      "ON CONFLICT (key, kind) DO UPDATE SET body = excluded.body, "
		      "next_update = excluded.next_update, fetched = excluded.fetched");
	db_bind_text(&q, 1, key);
	db_bind_text(&q, 2, kind);
	db_bind_blob(&q, 3, body, len);
	db_bind_i64(&q, 4, next_update);
	db_bind_i64(&q, 5, fetched);
	int r = db_run(s->db, &q, "cannot cache collateral", e);
	db_q_free(&q);
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
	struct db_q q;
	db_q_init(&q, "SELECT body, next_update, fetched FROM collateral_cache "
		      "WHERE key = $1 AND kind = $2");
	db_bind_text(&q, 1, key);
	db_bind_text(&q, 2, kind);
	int r = db_step(s->db, &q, "cannot read the collateral cache", e);
	if (r == 1) {
		size_t n;
		const uint8_t *b = db_col_blob(&q, 0, &n);
		*body = b ? malloc(n + 1) : NULL;
		if (!*body) {
			r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		} else {
			if (n)
				memcpy(*body, b, n);
			(*body)[n] = 0;
			*len = n;
			*found = true;
			if (next_update)
				*next_update = db_col_i64(&q, 1);
			if (fetched)
				*fetched = db_col_i64(&q, 2);
			r = 0;
		}
	}
	db_q_free(&q);
	pthread_mutex_unlock(&s->lock);
	return r;
}
