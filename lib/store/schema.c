/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's schema, one definition for both backends: each version step has its
 * SQLite text and its PostgreSQL text side by side, creating the same tables, columns,
 * index and append-only rule. Entries are append-only: never edit one that has shipped
 * (the SQLite texts set PRAGMA user_version themselves, as they always did; the step's
 * version is also set after it, in the same transaction, on both backends).
 */
#include <stddef.h>

#include "store/schema.h"
#include "store/store-int.h"

struct migration {
	const char *sqlite, *postgresql;
};

static const struct migration migrations[TDC_STORE_SCHEMA_VERSION] = {
	/* 0 -> 1: the three tables */
	{ "CREATE TABLE secrets ("
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

	  "CREATE TABLE tdc_schema (version INTEGER NOT NULL);"
	  "INSERT INTO tdc_schema VALUES (0);"
	  "CREATE TABLE secrets ("
	  "  id TEXT PRIMARY KEY NOT NULL,"
	  "  ciphertext BYTEA NOT NULL,"
	  "  nonce BYTEA NOT NULL,"
	  "  created BIGINT NOT NULL,"
	  "  rotated BIGINT,"
	  "  policy TEXT"
	  ");"
	  "CREATE TABLE audit ("
	  "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	  "  time BIGINT NOT NULL,"
	  "  request_id TEXT,"
	  "  secret_id TEXT,"
	  "  peer TEXT,"
	  "  claims_digest TEXT,"
	  "  verdict TEXT,"
	  "  decision TEXT NOT NULL CHECK (decision IN ('released', 'denied')),"
	  "  reason TEXT"
	  ");"
	  "CREATE TABLE collateral_cache ("
	  "  key TEXT NOT NULL,"
	  "  kind TEXT NOT NULL,"
	  "  body BYTEA NOT NULL,"
	  "  next_update BIGINT NOT NULL,"
	  "  fetched BIGINT NOT NULL,"
	  "  PRIMARY KEY (key, kind)"
	  ");" },

	/* 1 -> 2: audit lookups by secret, and the audit is append-only */
	{ "CREATE INDEX audit_by_secret ON audit (secret_id, id);"
	  "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	  "  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
	  "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	  "  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
	  "PRAGMA user_version = 2;",

	  "CREATE INDEX audit_by_secret ON audit (secret_id, id);"
	  "CREATE FUNCTION tdc_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS"
	  "  $$ BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$;"
	  "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	  "  FOR EACH ROW EXECUTE FUNCTION tdc_audit_append_only();"
	  "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	  "  FOR EACH ROW EXECUTE FUNCTION tdc_audit_append_only();"
	  "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
	  "  FOR EACH STATEMENT EXECUTE FUNCTION tdc_audit_append_only();" },

	/* 2 -> 3: store metadata (the master key check value) */
	{ "CREATE TABLE meta ("
	  "  name TEXT PRIMARY KEY NOT NULL,"
	  "  value BLOB NOT NULL,"
	  "  nonce BLOB"
	  ") STRICT;"
	  "PRAGMA user_version = 3;",

	  "CREATE TABLE meta ("
	  "  name TEXT PRIMARY KEY NOT NULL,"
	  "  value BYTEA NOT NULL,"
	  "  nonce BYTEA"
	  ");" },
};

int tdc_store_user_version(struct db *d, int *version, struct tdc_error *e)
{
	return db_version(d, version, e);
}

static int step_once(struct db *d, int from, int target, struct tdc_error *e)
{
	TDC_GUARD(db_begin(d, e));
	int v = 0;
	int r = db_migration_lock(d, e);
	if (r == 0)
		r = db_version(d, &v, e);
	if (r == 0 && v > TDC_STORE_SCHEMA_VERSION)
		r = TDC_FAILF(e, TDC_E_UNSUPPORTED, "store schema is newer than this program",
			      "version %d, this program knows up to %d", v,
			      TDC_STORE_SCHEMA_VERSION);
	/* another process may have migrated meanwhile */
	if (r == 0 && v == from && v < target) {
		const struct migration *m = &migrations[v];
		r = db_exec(d, db_kind(d) == DB_POSTGRESQL ? m->postgresql : m->sqlite,
			    "schema migration failed", e);
		if (r == 0)
			r = db_set_version(d, v + 1, e);
	}
	if (r == 0)
		return db_commit(d, e);
	db_rollback(d);
	return r;
}

int tdc_store_migrate(struct db *d, int target, struct tdc_error *e)
{
	if (target < 0 || target > TDC_STORE_SCHEMA_VERSION)
		return TDC_FAILF(e, TDC_E_USAGE, "bad schema version", "%d", target);
	for (;;) {
		int v;
		TDC_GUARD(db_version(d, &v, e));
		if (v > TDC_STORE_SCHEMA_VERSION)
			return TDC_FAILF(e, TDC_E_UNSUPPORTED, "store schema is newer than this program",
					 "version %d, this program knows up to %d", v,
					 TDC_STORE_SCHEMA_VERSION);
		if (v < 0)
			return TDC_FAILF(e, TDC_E_FORMAT, "bad store schema version", "%d", v);
		if (v >= target)
			return 0;
		TDC_GUARD(step_once(d, v, target, e));
	}
}
