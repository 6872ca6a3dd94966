/* SPDX-License-Identifier: Apache-2.0 */
/* Private to lib/store: the store handle and helpers shared by its files. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/db.h"
#include "tdcrypt/store.h"
#include "util/limits.h"


#define TDC_GCM_NONCE_SIZE 12
#define TDC_GCM_TAG_SIZE 16

struct audit_waiter;

struct tdc_store {
	struct db *db;
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

/* Runs a bound single-row UPDATE/DELETE and frees it; no row touched: unknown ID. */
int tdc_store_change_one(struct tdc_store *s, struct db_q *q, const char *id,
			 const char *reason, struct tdc_error *e) TDC_MUST_USE;

/* Validates policy JSON and returns its canonical form (malloc'd); NULL in, NULL out. */
int tdc_store_canon_policy(const char *policy_json, char **out, struct tdc_error *e)
	TDC_MUST_USE;

/* ---- integrity.c ---- */

/* An exclusive, non-blocking flock on "<db>.lock"; *fd holds it until closed. */
int tdc_store_lock(const char *db, int *fd, struct tdc_error *e) TDC_MUST_USE;
/* SQLite: PRAGMA quick_check (full: integrity_check); PostgreSQL: the server answers
 * (its own checksums and WAL are the server's job). */
int tdc_store_quick_check(struct db *db, bool full, struct tdc_error *e) TDC_MUST_USE;
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
