/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key broker's store: one embedded SQLite database in WAL mode holding
 * secrets (encrypted at rest), their policies, the audit log and the
 * collateral cache. The schema is versioned (PRAGMA user_version) and
 * migrated forward on open; a database newer than this code is refused.
 *
 * Secrets are sealed with AES-256-GCM under a key derived (HKDF-SHA256) from a
 * 32-byte master key file; the AAD binds the secret ID, so a ciphertext moved
 * to another row does not decrypt. Plaintext only ever lives in a struct
 * tdc_secret (locked, excluded from core dumps, wiped on free).
 *
 * A store handle may be shared between threads (calls are serialised); other
 * processes may open the same file concurrently (WAL, busy timeout).
 * Lookups of an unknown secret ID fail with TDC_E_NOT_FOUND (reason
 * TDC_STORE_NO_SUCH_SECRET).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"

#define TDC_STORE_MASTER_KEY_SIZE 32
/* The e->reason of a lookup of an unknown ID (compare with strcmp or ==). */
#define TDC_STORE_NO_SUCH_SECRET "no such secret"
/* Highest schema version this code knows. */
#define TDC_STORE_SCHEMA_VERSION 3

/* ---- secret plaintext buffers ---- */

struct tdc_secret {
	uint8_t *data;
	size_t len;
};

/* Allocates len bytes (len >= 1): mlock'd where permitted (best effort) and
 * MADV_DONTDUMP. Zero-filled. */
int tdc_secret_alloc(size_t len, struct tdc_secret *out, struct tdc_error *e) TDC_MUST_USE;
/* Wipes, unlocks and releases; leaves *s empty. Safe on an empty struct. */
void tdc_secret_free(struct tdc_secret *s);

/* ---- master key ---- */

/* Creates a new random master key file, mode 0600; fails if path exists. */
int tdc_store_master_key_create(const char *path, struct tdc_error *e) TDC_MUST_USE;

/* ---- store ---- */

struct tdc_store;

/*
 * Opens (creating with mode 0600 if absent) the database at path and migrates
 * it to TDC_STORE_SCHEMA_VERSION. The master key file must be a regular file
 * of exactly 32 bytes, not accessible by group or others, owned by the
 * caller or root.
 */
int tdc_store_open(const char *path, const char *master_key_path, struct tdc_store **out,
		   struct tdc_error *e) TDC_MUST_USE;
/*
 * tdc_store_open with flags. Every open checks the store (PRAGMA quick_check) and
 * that the master key is the store's own, and refuses a damaged store or a wrong key.
 * TDC_STORE_EXCLUSIVE: the caller is the broker: the store is locked ("<db>.lock",
 * flock) while open, and a second broker, init or restore is refused.
 */
#define TDC_STORE_EXCLUSIVE 1u
int tdc_store_open_ex(const char *path, const char *master_key_path, unsigned flags,
		      struct tdc_store **out, struct tdc_error *e) TDC_MUST_USE;
/* True if something exists at path (init refuses to make a store over it): a file, or
 * a PostgreSQL database that already holds a schema. */
bool tdc_store_exists(const char *path);
/* path for messages: a URL without its password. Returns out. */
const char *tdc_store_display(const char *path, char *out, size_t cap);
/* True if path is a PostgreSQL URL (postgresql://... or postgres://...). */
bool tdc_store_is_url(const char *path);
void tdc_store_close(struct tdc_store *s);

/* What a check found (tdc_store_check). */
struct tdc_store_health {
	int schema;
	size_t secrets;       /* all of them opened with the master key */
	size_t audit_records;
	int64_t last_audit_id;
	bool full;            /* integrity_check rather than quick_check */
};
/* The structure of the file (quick_check, or integrity_check when full), the master
 * key check, and every secret decrypted (then wiped). */
int tdc_store_check(struct tdc_store *s, bool full, struct tdc_store_health *h,
		    struct tdc_error *e) TDC_MUST_USE;
/* Online backup of the store at db into out (a new file, 0600): one consistent snapshot
 * (SQLite's backup API; a running broker goes on), checked, fsync'd, then renamed into
 * place. No key is needed: secrets stay sealed under the master key. */
int tdc_store_backup(const char *db, const char *out, struct tdc_error *e) TDC_MUST_USE;
/* Offline restore: refused while the store is locked (a broker runs); the backup is
 * checked whole and with master_key before it replaces db (its old WAL and shared
 * memory removed). */
int tdc_store_restore(const char *backup, const char *db, const char *master_key,
		      struct tdc_error *e) TDC_MUST_USE;
/* Gives SQLite's unused cache memory back (after a flood). */
void tdc_store_release_memory(struct tdc_store *s);
int tdc_store_schema_version(struct tdc_store *s, int *version, struct tdc_error *e)
	TDC_MUST_USE;

/*
 * Secret IDs: 1..TDC_MAX_SECRET_ID_LEN characters of [A-Za-z0-9._-], not
 * starting with '.' or '-'. Values: 1..TDC_MAX_SECRET_SIZE bytes.
 * policy_json may be NULL (no policy: the broker must refuse to release);
 * otherwise it is validated with tdc_policy_parse and stored in canonical form.
 * now is the caller's clock (seconds since the epoch), recorded only.
 */
int tdc_store_secret_put(struct tdc_store *s, const char *id, const uint8_t *data, size_t len,
			 const char *policy_json, int64_t now, struct tdc_error *e) TDC_MUST_USE;
/* Decrypts into *out (release with tdc_secret_free). A wrong master key or a
 * modified ciphertext fails with TDC_E_SIGNATURE (GCM tag mismatch). */
int tdc_store_secret_get(struct tdc_store *s, const char *id, struct tdc_secret *out,
			 struct tdc_error *e) TDC_MUST_USE;
int tdc_store_secret_delete(struct tdc_store *s, const char *id, struct tdc_error *e)
	TDC_MUST_USE;
/* Replaces the value (fresh nonce); data == NULL generates len random bytes. */
int tdc_store_secret_rotate(struct tdc_store *s, const char *id, const uint8_t *data, size_t len,
			    int64_t now, struct tdc_error *e) TDC_MUST_USE;

struct tdc_secret_info {
	char *id;
	int64_t created;
	int64_t rotated; /* 0 if never */
	bool has_policy;
};
struct tdc_secret_list {
	size_t n;
	struct tdc_secret_info *items;
};
/* All secrets, ordered by ID; never any plaintext. */
int tdc_store_secret_list(struct tdc_store *s, struct tdc_secret_list *out, struct tdc_error *e)
	TDC_MUST_USE;
void tdc_secret_list_free(struct tdc_secret_list *l);

/* policy_json NULL removes the policy. */
int tdc_store_policy_set(struct tdc_store *s, const char *id, const char *policy_json,
			 struct tdc_error *e) TDC_MUST_USE;
/* *out = canonical policy JSON (malloc'd), or NULL if the secret has none. */
int tdc_store_policy_get(struct tdc_store *s, const char *id, char **out, struct tdc_error *e)
	TDC_MUST_USE;

/*
 * Imports the original solution's secret.json: a flat object {"id": "passphrase"}.
 * All or nothing, in one transaction; existing IDs are an error. Imported
 * secrets have no policy. The JSON strings are wiped after use (the caller
 * owns and must wipe json).
 */
int tdc_store_import_flat_json(struct tdc_store *s, const char *json, size_t len, int64_t now,
			       size_t *count, struct tdc_error *e) TDC_MUST_USE;

/* ---- audit ---- */

enum tdc_audit_decision {
	TDC_AUDIT_DENIED = 0,
	TDC_AUDIT_RELEASED = 1,
};

/* Strings may be NULL; overlong ones are cut at their caps (the audit never fails on length). */
struct tdc_audit_record {
	int64_t id;               /* assigned by the store */
	int64_t time;
	const char *request_id;
	const char *secret_id;
	const char *peer;
	const char *claims_digest; /* hex */
	const char *verdict;       /* TCB status or verification error name */
	enum tdc_audit_decision decision;
	const char *reason;
};

int tdc_store_audit_append(struct tdc_store *s, const struct tdc_audit_record *rec,
			   int64_t *id_out, struct tdc_error *e) TDC_MUST_USE;

struct tdc_audit_query {
	const char *secret_id; /* NULL: all */
	int64_t after_id;      /* records with id > after_id */
	size_t limit;          /* 0: TDC_MAX_AUDIT_LIST */
};
struct tdc_audit_list {
	size_t n;
	struct tdc_audit_record *items; /* strings owned by the list */
};
/* Oldest first. */
int tdc_store_audit_list(struct tdc_store *s, const struct tdc_audit_query *q,
			 struct tdc_audit_list *out, struct tdc_error *e) TDC_MUST_USE;
void tdc_audit_list_free(struct tdc_audit_list *l);

/* ---- collateral cache ---- */

/* Upserts (key, kind). */
int tdc_store_collateral_put(struct tdc_store *s, const char *key, const char *kind,
			     const uint8_t *body, size_t len, int64_t next_update, int64_t fetched,
			     struct tdc_error *e) TDC_MUST_USE;
/* *found = false on a miss (not an error). *body is malloc'd. */
int tdc_store_collateral_get(struct tdc_store *s, const char *key, const char *kind,
			     uint8_t **body, size_t *len, int64_t *next_update, int64_t *fetched,
			     bool *found, struct tdc_error *e) TDC_MUST_USE;
