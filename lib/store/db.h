/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to lib/store: the one SQL interface the store's concerns (secrets.c,
 * policies.c, audit.c, collateral.c, ...) are written against, with two backends:
 * SQLite (db-sqlite.c, a file) and PostgreSQL (db-pg.c, libpq, a URL).
 *
 * SQL is written once, in the subset both accept: parameters are $1, $2, ... numbered
 * in the order of their first use; a value is bound as text, blob, int64 or NULL;
 * results are read as text, blob or int64. Only the schema (schema.c) has a text per
 * dialect.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"

enum db_kind { DB_SQLITE = 1, DB_POSTGRESQL = 2 };

/* A URL postgresql://... or postgres://... (libpq's syntax) selects PostgreSQL. */
bool db_is_url(const char *path);

struct db;
/* SQLite: the file at path, created 0600 if absent. PostgreSQL: a connection. */
int db_open(const char *path, struct db **out, struct tdc_error *e) TDC_MUST_USE;
void db_close(struct db *d);
enum db_kind db_kind(const struct db *d);
/* The location without credentials, for messages. */
const char *db_where(const struct db *d);

/* One or more statements without parameters. */
int db_exec(struct db *d, const char *sql, const char *reason, struct tdc_error *e) TDC_MUST_USE;
/* A write transaction (SQLite: BEGIN IMMEDIATE). */
int db_begin(struct db *d, struct tdc_error *e) TDC_MUST_USE;
int db_commit(struct db *d, struct tdc_error *e) TDC_MUST_USE;
void db_rollback(struct db *d);

/* The schema version (0: no schema yet) and, inside a migration, its update. */
int db_version(struct db *d, int *version, struct tdc_error *e) TDC_MUST_USE;
int db_set_version(struct db *d, int version, struct tdc_error *e) TDC_MUST_USE;
/* Serialises migrations among the processes sharing the database (inside db_begin). */
int db_migration_lock(struct db *d, struct tdc_error *e) TDC_MUST_USE;

#define DB_MAX_PARAMS 10
#define DB_ERR_UNIQUE 1 /* q->failure: a uniqueness constraint refused the row */

struct db_param {
	enum { DBP_NULL, DBP_TEXT, DBP_BLOB, DBP_I64 } type;
	const void *p;
	size_t len;
	int64_t i;
	char num[24]; /* PostgreSQL: the integer as text */
};

/* A statement with its parameters and, once run, its rows. */
struct db_q {
	const char *sql;
	struct db_param params[DB_MAX_PARAMS];
	int nparams;
	int failure;      /* DB_ERR_* after a failed step */
	int64_t changes;  /* rows written by the statement, once done */
	enum db_kind kind; /* of the db that ran it (0: not run) */
	void *impl;       /* the backend's statement or result */
	int row, rows;    /* PostgreSQL: the cursor */
	bool started, done;
	void *blobs;      /* PostgreSQL: decoded bytea, freed with the statement */
};

void db_q_init(struct db_q *q, const char *sql);
/* Parameters by position (1-based). Text and blobs are not copied. */
void db_bind_text(struct db_q *q, int i, const char *s);
/* A text cut at cap bytes (the audit never refuses a record for its length). */
void db_bind_text_capped(struct db_q *q, int i, const char *s, size_t cap);
void db_bind_blob(struct db_q *q, int i, const void *p, size_t len);
void db_bind_i64(struct db_q *q, int i, int64_t v);
void db_bind_null(struct db_q *q, int i);
/* The first call runs the statement. 1: a row is there; 0: done; < 0: error. */
int db_step(struct db *d, struct db_q *q, const char *reason, struct tdc_error *e) TDC_MUST_USE;
/* Columns of the current row (0-based). Text and blobs live until the next step. */
bool db_col_null(struct db_q *q, int i);
const char *db_col_text(struct db_q *q, int i);
const uint8_t *db_col_blob(struct db_q *q, int i, size_t *len);
int64_t db_col_i64(struct db_q *q, int i);
void db_q_free(struct db_q *q);

/* Runs a statement that returns no rows. */
int db_run(struct db *d, struct db_q *q, const char *reason, struct tdc_error *e) TDC_MUST_USE;

/* SQLite only (integrity.c: WAL watch, checks, backup). NULL for PostgreSQL. */
struct sqlite3;
struct sqlite3 *db_sqlite(struct db *d);
