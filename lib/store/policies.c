/* SPDX-License-Identifier: Apache-2.0 */
/* The release policy of each secret, stored in canonical form (validated on the way in).
 * Read at every request: a change is seen by every broker sharing the store at its next
 * decision. */
#include <stdlib.h>
#include <string.h>

#include "store/store-int.h"

int tdc_store_policy_set(struct tdc_store *s, const char *id, const char *policy_json,
			 struct tdc_error *e)
{
	if (!s)
		return TDC_FAIL(e, TDC_E_USAGE, "no store");
	TDC_GUARD(tdc_store_check_id(id, e));
	char *canon;
	TDC_GUARD(tdc_store_canon_policy(policy_json, &canon, e));
	pthread_mutex_lock(&s->lock);
	struct db_q q;
	db_q_init(&q, "UPDATE secrets SET policy = $1 WHERE id = $2");
	db_bind_text(&q, 1, canon);
	db_bind_text(&q, 2, id);
	int r = tdc_store_change_one(s, &q, id, "cannot set the policy", e);
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
	struct db_q q;
	db_q_init(&q, "SELECT policy FROM secrets WHERE id = $1");
	db_bind_text(&q, 1, id);
	int r = db_step(s->db, &q, "cannot read the policy", e);
	if (r == 1) {
		const char *p = db_col_text(&q, 0);
		r = p && !(*out = strdup(p)) ? TDC_FAIL(e, TDC_E_NOMEM, "out of memory") : 0;
	} else if (r == 0) {
		r = TDC_FAILF(e, TDC_E_NOT_FOUND, TDC_STORE_NO_SUCH_SECRET, "%s", id);
	}
	db_q_free(&q);
	pthread_mutex_unlock(&s->lock);
	return r;
}
