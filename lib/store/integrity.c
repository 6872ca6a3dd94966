/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keeping the store whole, and noticing when it is not (issue 8).
 *
 * A broker store was found with pages of zeros after a run in which, by every sign in
 * the file, its WAL had been truncated or replaced while the broker had it open: the
 * broker's own page cache kept serving, and its checkpoint at exit copied the holes
 * into the database. So:
 *  - one broker per store: an exclusive flock on "<db>.lock" (a separate file: a second
 *    descriptor of the database itself, once closed, would drop SQLite's POSIX locks);
 *    init and restore refuse a locked store;
 *  - every open runs PRAGMA quick_check and the master-key check, and refuses a
 *    damaged store with what to do about it;
 *  - after every commit the WAL must still be the file the store opened, no shorter
 *    than it was (SQLite never shrinks it here: no journal_size_limit, no TRUNCATE
 *    checkpoints); otherwise the commit fails, the store refuses all further work, and
 *    it is closed without a checkpoint, so the damage stays out of the database;
 *  - backup (online, SQLite's backup API, checked before it is renamed into place) and
 *    restore (offline, checked, stale WAL and shared memory removed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/schema.h"

#include "store/store-int.h"

#define KEY_CHECK_NAME "key_check"
#define KEY_CHECK_AAD "tdcrypt.key-check"
static const char key_check_text[] = "tdcrypt store master key check v1";

static char *path_with(const char *db, const char *suffix)
{
	size_t n = strlen(db) + strlen(suffix) + 1;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s", db, suffix);
	return p;
}

/* ---- one broker per store ---- */

int tdc_store_lock(const char *db, int *fd_out, struct tdc_error *e)
{
	*fd_out = -1;
	char *path = path_with(db, ".lock");
	if (!path)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		int r = TDC_FAILF(e, TDC_E_IO, "cannot open the store's lock file", "%s: %s", path,
				  strerror(errno));
		free(path);
		return r;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;
		close(fd);
		int r = err == EWOULDBLOCK
				? TDC_FAILF(e, TDC_E_IO, "the store is in use",
					    "%s is locked: a broker (or an init or restore) has it open",
					    path)
				: TDC_FAILF(e, TDC_E_IO, "cannot lock the store", "%s: %s", path,
					    strerror(err));
		free(path);
		return r;
	}
	free(path);
	*fd_out = fd;
	return 0;
}

/* ---- checks ---- */

int tdc_store_quick_check(struct db *d, bool full, struct tdc_error *e)
{
	if (db_kind(d) == DB_POSTGRESQL) {
		/* the server keeps its own pages (checksums, WAL); a check is that it answers */
		struct db_q q;
		db_q_init(&q, "SELECT 1");
		int r = db_run(d, &q, "the store does not answer", e);
		db_q_free(&q);
		return r;
	}
	struct db_q q;
	db_q_init(&q, full ? "PRAGMA integrity_check(8)" : "PRAGMA quick_check(8)");
	int r = db_step(d, &q, "the store is damaged", e);
	if (r == 0)
		r = TDC_FAIL(e, TDC_E_IO, "the store is damaged");
	if (r < 0) {
		db_q_free(&q);
		return r;
	}
	const char *first = db_col_text(&q, 0);
	if (first && !strcmp(first, "ok")) {
		db_q_free(&q);
		return 0;
	}
	/* one line for the log: SQLite's report has a line per problem */
	char what[240];
	snprintf(what, sizeof(what), "%s", first ? first : "?");
	for (char *p = what; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	r = TDC_FAILF(e, TDC_E_IO, "the store is damaged",
		      "%s: %s: %s; restore it from a backup (tdcrypt-kbs restore)", db_where(d),
		      full ? "integrity_check" : "quick_check", what);
	db_q_free(&q);
	return r;
}

/* The master key must be the one the store was made with: a sealed constant, written at
 * the first open, that only that key opens. Brokers sharing a database all check it. */
int tdc_store_key_check(struct tdc_store *s, struct tdc_error *e)
{
	struct db_q q;
	db_q_init(&q, "SELECT value, nonce FROM meta WHERE name = $1");
	db_bind_text(&q, 1, KEY_CHECK_NAME);
	int r = db_step(s->db, &q, "cannot read the key check", e);
	if (r == 1) {
		struct tdc_secret pt = { 0 };
		size_t vn, nn;
		const uint8_t *v = db_col_blob(&q, 0, &vn), *n = db_col_blob(&q, 1, &nn);
		bool ok = v && n &&
			  tdc_store_unseal(&s->seal_key, KEY_CHECK_AAD, n, nn, v, vn, &pt, NULL) == 0 &&
			  pt.len == sizeof(key_check_text) - 1 &&
			  memcmp(pt.data, key_check_text, pt.len) == 0;
		tdc_secret_free(&pt);
		db_q_free(&q);
		return ok ? 0
			  : TDC_FAIL(e, TDC_E_SIGNATURE,
				     "wrong master key for this store (its key check does not "
				     "open with this key)");
	}
	db_q_free(&q);
	if (r < 0)
		return r;
	/* first open with this schema: write it (another broker racing us loses to the
	 * primary key, and then its key is checked against the winner's) */
	uint8_t nonce[TDC_GCM_NONCE_SIZE], *ct;
	size_t ct_len;
	TDC_GUARD(tdc_store_seal(&s->seal_key, KEY_CHECK_AAD, (const uint8_t *)key_check_text,
				 sizeof(key_check_text) - 1, nonce, &ct, &ct_len, e));
	db_q_init(&q, "INSERT INTO meta (name, value, nonce) VALUES ($1, $2, $3)");
	db_bind_text(&q, 1, KEY_CHECK_NAME);
	db_bind_blob(&q, 2, ct, ct_len);
	db_bind_blob(&q, 3, nonce, sizeof(nonce));
	r = db_run(s->db, &q, "cannot write the key check", e);
	bool raced = r < 0 && q.failure == DB_ERR_UNIQUE;
	db_q_free(&q);
	free(ct);
	if (raced) {
		tdc_error_clear(e);
		return tdc_store_key_check(s, e);
	}
	return r;
}

/* ---- the WAL must stay the store's own ---- */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * The WAL header (SQLite's file format, section 4.1): magic 0x377f0682 or 0x377f0683,
 * then a checksum of its first 24 bytes. A WAL truncated under the store reads as zeros
 * there even once its frames are written again further on.
 */
static bool wal_header_valid(int fd)
{
	uint8_t h[32];
	if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return false;
	uint32_t magic = be32(h);
	if ((magic & 0xfffffffeu) != 0x377f0682u)
		return false;
	bool big = magic & 1u; /* the words' byte order for the checksum */
	uint32_t s1 = 0, s2 = 0;
	for (int i = 0; i < 24; i += 8) {
		uint32_t x0 = big ? be32(h + i) : (uint32_t)h[i] | (uint32_t)h[i + 1] << 8 |
							 (uint32_t)h[i + 2] << 16 | (uint32_t)h[i + 3] << 24;
		uint32_t x1 = big ? be32(h + i + 4)
				  : (uint32_t)h[i + 4] | (uint32_t)h[i + 5] << 8 |
					    (uint32_t)h[i + 6] << 16 | (uint32_t)h[i + 7] << 24;
		s1 += x0 + s2;
		s2 += x1 + s1;
	}
	return s1 == be32(h + 24) && s2 == be32(h + 28);
}

static bool wal_intact(struct tdc_store *s)
{
	struct stat st;
	if (stat(s->wal_path, &st) < 0) {
		if (!s->wal_seen)
			return true; /* not made yet */
		snprintf(s->damage, sizeof(s->damage), "its WAL %s was removed", s->wal_path);
		return false;
	}
	if (!s->wal_seen) {
		/* our own descriptor, for reading the header: the WAL file carries no locks */
		s->wal_fd = open(s->wal_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (s->wal_fd < 0)
			return true;
		s->wal_seen = true;
		s->wal_dev = st.st_dev;
		s->wal_ino = st.st_ino;
		s->wal_max = st.st_size;
		return true;
	}
	if (st.st_dev != s->wal_dev || st.st_ino != s->wal_ino) {
		snprintf(s->damage, sizeof(s->damage), "its WAL %s was replaced", s->wal_path);
		return false;
	}
	if (st.st_size < s->wal_max || (st.st_size > 0 && !wal_header_valid(s->wal_fd))) {
		snprintf(s->damage, sizeof(s->damage),
			 "its WAL %s was truncated (%lld bytes, was %lld; header %s)", s->wal_path,
			 (long long)st.st_size, (long long)s->wal_max,
			 st.st_size > 0 && wal_header_valid(s->wal_fd) ? "intact" : "gone");
		return false;
	}
	s->wal_max = st.st_size;
	return true;
}

/* Runs after each commit, with the store's lock held by the committing call. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	(void)db;
	(void)name;
	(void)pages;
	struct tdc_store *s = arg;
	if (!s->damaged && !wal_intact(s))
		s->damaged = true;
	return s->damaged ? SQLITE_IOERR : SQLITE_OK;
}

int tdc_store_watch_wal(struct tdc_store *s, const char *db, struct tdc_error *e)
{
	s->wal_path = path_with(db, "-wal");
	if (!s->wal_path)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	(void)wal_intact(s);
	sqlite3_wal_hook(db_sqlite(s->db), wal_hook, s);
	return 0;
}

int tdc_store_damaged(struct tdc_store *s, struct tdc_error *e)
{
	if (!s->damaged)
		return 0;
	return TDC_FAILF(e, TDC_E_IO, "the store was damaged behind the broker",
			 "%s; the broker stops using it and closes it without a checkpoint; "
			 "check it (tdcrypt-kbs check) or restore a backup",
			 s->damage);
}

void tdc_store_close_checked(struct tdc_store *s)
{
	if (s->wal_path && !s->damaged && !wal_intact(s))
		s->damaged = true;
	if (s->damaged)
		sqlite3_db_config(db_sqlite(s->db), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
}

void tdc_store_unwatch_wal(struct tdc_store *s)
{
	if (s->wal_fd >= 0)
		close(s->wal_fd);
	s->wal_fd = -1;
}

/* ---- whole-store check ---- */

int tdc_store_check(struct tdc_store *s, bool full, struct tdc_store_health *h,
		    struct tdc_error *e)
{
	if (!s || !h)
		return TDC_FAIL(e, TDC_E_USAGE, "no store or output");
	memset(h, 0, sizeof(*h));
	pthread_mutex_lock(&s->lock);
	int r = tdc_store_damaged(s, e);
	if (r == 0)
		r = tdc_store_quick_check(s->db, full, e);
	if (r == 0)
		r = tdc_store_key_check(s, e);
	if (r == 0)
		r = tdc_store_user_version(s->db, &h->schema, e);
	struct db_q q;
	db_q_init(&q, "SELECT count(*), coalesce(max(id), 0) FROM audit");
	if (r == 0 && (r = db_step(s->db, &q, "cannot count the audit log", e)) == 1) {
		h->audit_records = (size_t)db_col_i64(&q, 0);
		h->last_audit_id = db_col_i64(&q, 1);
		r = 0;
	}
	db_q_free(&q);
	/* every secret must still open: a damaged row is found now, not at a TD's boot */
	db_q_init(&q, "SELECT id, nonce, ciphertext FROM secrets ORDER BY id");
	while (r == 0 && (r = db_step(s->db, &q, "cannot read the secrets", e)) == 1) {
		struct tdc_secret pt = { 0 };
		size_t nn, cn;
		const char *id = db_col_text(&q, 0);
		const uint8_t *n = db_col_blob(&q, 1, &nn), *c = db_col_blob(&q, 2, &cn);
		r = n && c ? tdc_store_unseal(&s->seal_key, id ? id : "", n, nn, c, cn, &pt, e)
			   : TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		tdc_secret_free(&pt);
		if (r == 0)
			h->secrets++;
	}
	db_q_free(&q);
	pthread_mutex_unlock(&s->lock);
	h->full = full;
	return r < 0 ? r : 0;
}

void tdc_store_release_memory(struct tdc_store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	if (db_sqlite(s->db))
		sqlite3_db_release_memory(db_sqlite(s->db));
	pthread_mutex_unlock(&s->lock);
}

/* ---- backup and restore ---- */

static int fsync_path(const char *path, int flags, struct tdc_error *e)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		int r = TDC_FAILF(e, TDC_E_IO, "cannot sync", "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	close(fd);
	return 0;
}

static int fsync_dir_of(const char *path, struct tdc_error *e)
{
	char *dir = strdup(path);
	if (!dir)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	int r = fsync_path(slash ? dir : ".", O_RDONLY | O_DIRECTORY, e);
	free(dir);
	return r;
}

static int raw_fail(struct tdc_error *e, sqlite3 *db, const char *reason)
{
	return TDC_FAILF(e, TDC_E_IO, reason, "sqlite: %s", db ? sqlite3_errmsg(db) : "out of memory");
}
#define STORE_DB_FAIL(e, db, reason) raw_fail((e), (db), (reason))

/* integrity_check of a copy that is not a store handle (yet) */
static int raw_integrity(sqlite3 *db, const char *path, struct tdc_error *e)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(8)", -1, &st, NULL) != SQLITE_OK)
		return raw_fail(e, db, "the copy is damaged");
	int rc = sqlite3_step(st);
	const char *first = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	int r = first && !strcmp(first, "ok")
			? 0
			: TDC_FAILF(e, TDC_E_IO, "the store is damaged", "%s: integrity_check: %.200s",
				    path, first ? first : sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return r;
}

/* Copies the database src into a new file at dst (mode 0600) with the backup API, in
 * one snapshot, and checks the copy. */
static int copy_db(const char *src, int src_flags, const char *dst, struct tdc_error *e)
{
	sqlite3 *in = NULL, *out = NULL;
	int fd = open(dst, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create the copy", "%s: %s", dst,
				 strerror(errno));
	close(fd); /* a new file no connection has open yet */
	int r = 0;
	if (sqlite3_open_v2(src, &in, src_flags | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK)
		r = STORE_DB_FAIL(e, in, "cannot open the store to copy");
	if (r == 0 && sqlite3_open_v2(dst, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW,
				      NULL) != SQLITE_OK)
		r = STORE_DB_FAIL(e, out, "cannot open the copy");
	if (r == 0) {
		sqlite3_busy_timeout(in, 5000);
		sqlite3_backup *b = sqlite3_backup_init(out, "main", in, "main");
		if (!b) {
			r = STORE_DB_FAIL(e, out, "cannot start the copy");
		} else {
			int rc;
			while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY ||
			       rc == SQLITE_LOCKED)
				sqlite3_sleep(50);
			if (sqlite3_backup_finish(b) != SQLITE_OK || rc != SQLITE_DONE)
				r = STORE_DB_FAIL(e, out, "the copy failed");
		}
	}
	/* the copy is a rollback-journal database file on its own, checked whole */
	if (r == 0 &&
	    sqlite3_exec(out, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK)
		r = STORE_DB_FAIL(e, out, "cannot finish the copy");
	if (r == 0)
		r = raw_integrity(out, dst, e);
	sqlite3_close(in);
	sqlite3_close(out);
	if (r == 0)
		r = fsync_path(dst, O_RDONLY, e);
	if (r < 0)
		unlink(dst);
	return r;
}

int tdc_store_backup(const char *db, const char *out, struct tdc_error *e)
{
	if (!db || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "backup needs the store and an output file");
	if (db_is_url(db))
		return TDC_FAIL(e, TDC_E_UNSUPPORTED,
				"a PostgreSQL store is backed up with the server's tools (pg_dump, "
				"pg_basebackup; docs/OPERATIONS.md)");
	struct stat st;
	if (lstat(out, &st) == 0)
		return TDC_FAILF(e, TDC_E_USAGE, "the backup file exists", "%s", out);
	char *tmp = path_with(out, ".partial");
	if (!tmp)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	unlink(tmp);
	int r = copy_db(db, SQLITE_OPEN_READONLY, tmp, e);
	if (r == 0 && rename(tmp, out) < 0)
		r = TDC_FAILF(e, TDC_E_IO, "cannot move the backup into place", "%s: %s", out,
			      strerror(errno));
	if (r == 0)
		r = fsync_dir_of(out, e);
	if (r < 0)
		unlink(tmp);
	free(tmp);
	return r;
}

int tdc_store_restore(const char *backup, const char *db, const char *master_key,
		      struct tdc_error *e)
{
	if (!backup || !db || !master_key)
		return TDC_FAIL(e, TDC_E_USAGE, "restore needs the backup, the store and its key");
	if (db_is_url(db) || db_is_url(backup))
		return TDC_FAIL(e, TDC_E_UNSUPPORTED,
				"a PostgreSQL store is restored with the server's tools (pg_restore; "
				"docs/OPERATIONS.md)");
	int lock = -1;
	TDC_GUARD(tdc_store_lock(db, &lock, e));
	char *tmp = path_with(db, ".restoring");
	char *wal = path_with(db, "-wal");
	char *shm = path_with(db, "-shm");
	int r = tmp && wal && shm ? 0 : TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if (r == 0) {
		unlink(tmp);
		r = copy_db(backup, SQLITE_OPEN_READONLY, tmp, e);
	}
	/* the backup must open with this master key, migrate and pass the store's checks */
	if (r == 0) {
		struct tdc_store *s = NULL;
		struct tdc_store_health h;
		r = tdc_store_open(tmp, master_key, &s, e);
		if (r == 0)
			r = tdc_store_check(s, true, &h, e);
		tdc_store_close(s); /* the last connection: SQLite folds its WAL in */
	}
	/* the old store's WAL and shared memory would be replayed onto the restored file */
	if (r == 0 && ((unlink(wal) < 0 && errno != ENOENT) || (unlink(shm) < 0 && errno != ENOENT)))
		r = TDC_FAILF(e, TDC_E_IO, "cannot remove the old store's WAL", "%s: %s", wal,
			      strerror(errno));
	if (r == 0 && rename(tmp, db) < 0)
		r = TDC_FAILF(e, TDC_E_IO, "cannot move the restored store into place", "%s: %s",
			      db, strerror(errno));
	if (r == 0)
		r = fsync_dir_of(db, e);
	if (r < 0 && tmp)
		unlink(tmp);
	free(tmp);
	free(wal);
	free(shm);
	close(lock);
	return r;
}
