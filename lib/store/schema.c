/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Schema migrations. Each entry moves the schema from version i to i + 1 and
 * sets PRAGMA user_version itself, so the step and its version commit
 * atomically. Entries are append-only: never edit one that has shipped.
 */
#include <stddef.h>

#include "store/schema.h"
#include "store/store-int.h"

static const char *const migrations[TDC_STORE_SCHEMA_VERSION] = {
	/* 0 -> 1: the three tables */
	"CREATE TABLE secrets ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  ciphertext BLOB NOT NULL,"
	"  nonce BLOB NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  rotated INTEGER,"
	"  policy TEXT"
	") STRICT;"
	"CREATE TABLE audit ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL,"
	"  request_id TEXT,"
	"  secret_id TEXT,"
	"  peer TEXT,"
	"  claims_digest TEXT,"
	"  verdict TEXT,"
	"  decision TEXT NOT NULL CHECK (decision IN ('released', 'denied')),"
	"  reason TEXT"
	") STRICT;"
	"CREATE TABLE collateral_cache ("
	"  key TEXT NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  body BLOB NOT NULL,"
	"  next_update INTEGER NOT NULL,"
	"  fetched INTEGER NOT NULL,"
	"  PRIMARY KEY (key, kind)"
	") STRICT;"
	"PRAGMA user_version = 1;",

	/* 1 -> 2: audit lookups by secret, and the audit is append-only */
	"CREATE INDEX audit_by_secret ON audit (secret_id, id);"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
	"PRAGMA user_version = 2;",

	/* 2 -> 3: store metadata (the master key check value) */
	"CREATE TABLE meta ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  value BLOB NOT NULL,"
	"  nonce BLOB"
	") STRICT;"
	"PRAGMA user_version = 3;",
};

int tdc_store_user_version(sqlite3 *db, int *version, struct tdc_error *e)
{
	sqlite3_stmt *st;
	TDC_GUARD(tdc_store_prepare(db, "PRAGMA user_version", &st, e));
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return STORE_DB_FAIL(e, db, "cannot read the schema version");
	}
	*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

static int exec(sqlite3 *db, const char *sql, const char *reason, struct tdc_error *e)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return STORE_DB_FAIL(e, db, reason);
	return 0;
}

static int step_once(sqlite3 *db, int from, int target, struct tdc_error *e)
{
	TDC_GUARD(exec(db, "BEGIN IMMEDIATE", "cannot start the migration", e));
	int v = 0;
	int r = tdc_store_user_version(db, &v, e);
	if (r == 0 && v > TDC_STORE_SCHEMA_VERSION)
		r = TDC_FAILF(e, TDC_E_UNSUPPORTED, "store schema is newer than this program",
			      "version %d, this program knows up to %d", v,
			      TDC_STORE_SCHEMA_VERSION);
	/* another process may have migrated meanwhile */
	if (r == 0 && v == from && v < target)
		r = exec(db, migrations[v], "schema migration failed", e);
	if (r == 0)
		return exec(db, "COMMIT", "cannot commit the migration", e);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

int tdc_store_migrate(sqlite3 *db, int target, struct tdc_error *e)
{
	if (target < 0 || target > TDC_STORE_SCHEMA_VERSION)
		return TDC_FAILF(e, TDC_E_USAGE, "bad schema version", "%d", target);
	for (;;) {
		int v;
		TDC_GUARD(tdc_store_user_version(db, &v, e));
		if (v > TDC_STORE_SCHEMA_VERSION)
			return TDC_FAILF(e, TDC_E_UNSUPPORTED, "store schema is newer than this program",
					 "version %d, this program knows up to %d", v,
					 TDC_STORE_SCHEMA_VERSION);
		if (v < 0)
			return TDC_FAILF(e, TDC_E_FORMAT, "bad store schema version", "%d", v);
		if (v >= target)
			return 0;
		TDC_GUARD(step_once(db, v, target, e));
	}
}
