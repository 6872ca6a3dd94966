/* SPDX-License-Identifier: Apache-2.0 */
/* Private to lib/store: the store handle and helpers shared by its files. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "tdcrypt/store.h"
#include "util/limits.h"


#define TDC_GCM_NONCE_SIZE 12
#define TDC_GCM_TAG_SIZE 16

struct audit_waiter;

struct tdc_store {
	sqlite3 *db;
	pthread_mutex_t lock;      /* one call at a time on db */
	struct tdc_secret seal_key; /* derived from the master key */
	/* audit group commit: records queued while a commit is in flight are
	 * written together by the next leader, in one transaction (one fsync) */
	pthread_mutex_t group_lock;
	pthread_cond_t group_done;
	struct audit_waiter *pending;
	struct audit_waiter **pending_tail;
	bool leader_active;
	/* integrity.c: the broker's exclusive lock, and the WAL it must keep writing to */
	int lock_fd;
	char *wal_path;
	int wal_fd;
	dev_t wal_dev;
	ino_t wal_ino;
	off_t wal_max;
	bool wal_seen, damaged;
	char damage[300];
};

/* Records the SQLite error of db into e as TDC_E_IO. */
int tdc_store_db_fail(struct tdc_error *e, sqlite3 *db, const char *file, int line,
		      const char *reason);
#define STORE_DB_FAIL(e, db, reason) tdc_store_db_fail((e), (db), __FILE__, __LINE__, (reason))

/* Prepares a static SQL statement. */
int tdc_store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct tdc_error *e)
	TDC_MUST_USE;

/* Checks a secret ID (see store.h). */
int tdc_store_check_id(const char *id, struct tdc_error *e) TDC_MUST_USE;

/* Loads the master key file (permission checks) and derives the sealing key. */
int tdc_store_load_key(const char *path, struct tdc_secret *seal_key, struct tdc_error *e)
	TDC_MUST_USE;

/* AES-256-GCM with the secret ID as AAD. ct gets len + TDC_GCM_TAG_SIZE bytes
 * (malloc'd); nonce is fresh random. */
int tdc_store_seal(const struct tdc_secret *key, const char *id, const uint8_t *pt, size_t len,
		   uint8_t nonce[TDC_GCM_NONCE_SIZE], uint8_t **ct, size_t *ct_len,
		   struct tdc_error *e) TDC_MUST_USE;
int tdc_store_unseal(const struct tdc_secret *key, const char *id, const uint8_t *nonce,
		     size_t nonce_len, const uint8_t *ct, size_t ct_len, struct tdc_secret *out,
		     struct tdc_error *e) TDC_MUST_USE;

/* Inserts a new secret row; caller holds the lock. policy_canon may be NULL. */
int tdc_store_insert_locked(struct tdc_store *s, const char *id, const uint8_t *data, size_t len,
			    const char *policy_canon, int64_t now, struct tdc_error *e)
	TDC_MUST_USE;

/* Validates policy JSON and returns its canonical form (malloc'd); NULL in, NULL out. */
int tdc_store_canon_policy(const char *policy_json, char **out, struct tdc_error *e)
	TDC_MUST_USE;

/* ---- integrity.c ---- */

/* An exclusive, non-blocking flock on "<db>.lock"; *fd holds it until closed. */
int tdc_store_lock(const char *db, int *fd, struct tdc_error *e) TDC_MUST_USE;
/* PRAGMA quick_check (full: integrity_check); path names the file in the error. */
int tdc_store_quick_check(sqlite3 *db, bool full, const char *path, struct tdc_error *e)
	TDC_MUST_USE;
/* Verifies (or, at the first open, writes) the sealed master-key check value. */
int tdc_store_key_check(struct tdc_store *s, struct tdc_error *e) TDC_MUST_USE;
/* Remembers the WAL the store writes to and checks it after every commit. */
int tdc_store_watch_wal(struct tdc_store *s, const char *db, struct tdc_error *e) TDC_MUST_USE;
/* 0, or the error that says the store was damaged under it (caller holds the lock). */
int tdc_store_damaged(struct tdc_store *s, struct tdc_error *e) TDC_MUST_USE;
/* Before sqlite3_close: a damaged store is closed without its checkpoint. */
void tdc_store_close_checked(struct tdc_store *s);
/* After sqlite3_close: the WAL descriptor goes. */
void tdc_store_unwatch_wal(struct tdc_store *s);
