/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a test's store lives: a file in its directory, or, under tests/pg/with-pg.sh
 * (TDC_TEST_PG_HOST set), a fresh PostgreSQL database of its own on that cluster. The
 * same tests then run on both backends.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <libpq-fe.h>

static inline bool tdb_postgresql(void)
{
	return getenv("TDC_TEST_PG_HOST") != NULL;
}

/* out: "<dir>/<name>" or "postgresql:///tdc_<pid>_<n>?host=...&user=..." (a new database) */
static inline void tdb_location(char *out, size_t cap, const char *in_dir, const char *name)
{
	const char *host = getenv("TDC_TEST_PG_HOST"), *user = getenv("TDC_TEST_PG_USER");
	if (!host) {
		snprintf(out, cap, "%s/%s", in_dir, name);
		return;
	}
	static int n;
	char conn[512], sql[128], db[64];
	snprintf(db, sizeof(db), "tdc_%ld_%d", (long)getpid(), n++);
	snprintf(conn, sizeof(conn), "host=%s user=%s dbname=postgres", host, user ? user : "");
	PGconn *c = PQconnectdb(conn);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "test-db: %s", PQerrorMessage(c));
		abort();
	}
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "test-db: %s", PQerrorMessage(c));
		abort();
	}
	PQclear(r);
	PQfinish(c);
	snprintf(out, cap, "postgresql:///%s?host=%s&user=%s", db, host, user ? user : "");
}
