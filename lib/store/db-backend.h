/* SPDX-License-Identifier: Apache-2.0 */
/* Private to lib/store/db*.c: what each backend provides behind db.h. */
#pragma once

#include "store/db.h"

struct db {
	enum db_kind kind;
	char where[256];
	void *h; /* sqlite3 * or PGconn * */
	bool broken; /* PostgreSQL: the connection failed; reset before the next use */
	bool in_tx;
};

int sq_open(struct db *d, const char *path, struct tdc_error *e) TDC_MUST_USE;
void sq_close(struct db *d);
int sq_exec(struct db *d, const char *sql, const char *reason, struct tdc_error *e) TDC_MUST_USE;
int sq_version(struct db *d, int *v, struct tdc_error *e) TDC_MUST_USE;
int sq_set_version(struct db *d, int v, struct tdc_error *e) TDC_MUST_USE;
int sq_step(struct db *d, struct db_q *q, const char *reason, struct tdc_error *e) TDC_MUST_USE;
bool sq_col_null(struct db_q *q, int i);
const char *sq_col_text(struct db_q *q, int i);
const uint8_t *sq_col_blob(struct db_q *q, int i, size_t *len);
int64_t sq_col_i64(struct db_q *q, int i);
void sq_q_free(struct db_q *q);

int pg_open(struct db *d, const char *url, struct tdc_error *e) TDC_MUST_USE;
void pg_close(struct db *d);
int pg_exec(struct db *d, const char *sql, const char *reason, struct tdc_error *e) TDC_MUST_USE;
int pg_version(struct db *d, int *v, struct tdc_error *e) TDC_MUST_USE;
int pg_set_version(struct db *d, int v, struct tdc_error *e) TDC_MUST_USE;
int pg_migration_lock(struct db *d, struct tdc_error *e) TDC_MUST_USE;
int pg_step(struct db *d, struct db_q *q, const char *reason, struct tdc_error *e) TDC_MUST_USE;
bool pg_col_null(struct db_q *q, int i);
const char *pg_col_text(struct db_q *q, int i);
const uint8_t *pg_col_blob(struct db_q *q, int i, size_t *len);
int64_t pg_col_i64(struct db_q *q, int i);
void pg_q_free(struct db_q *q);
