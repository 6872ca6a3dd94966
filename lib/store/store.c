/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Opening and closing the store: the backend chosen by the location (a file: SQLite;
 * postgresql://...: PostgreSQL), checked, migrated, and its master key verified. The
 * concerns live in their own files: secrets.c, policies.c, audit.c, collateral.c.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/schema.h"
#include "store/store-int.h"
#include "tdcrypt/policy.h"

int tdc_store_check_id(const char *id, struct tdc_error *e)
{
	if (!id)
		return TDC_FAIL(e, TDC_E_USAGE, "no secret ID");
	size_t n = strnlen(id, TDC_MAX_SECRET_ID_LEN + 1);
	if (n == 0 || n > TDC_MAX_SECRET_ID_LEN)
		return TDC_FAILF(e, TDC_E_FORMAT, "bad secret ID", "length %zu, allowed 1..%d", n,
				 TDC_MAX_SECRET_ID_LEN);
	if (id[0] == '.' || id[0] == '-')
		return TDC_FAILF(e, TDC_E_FORMAT, "bad secret ID", "may not start with '%c'", id[0]);
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return TDC_FAILF(e, TDC_E_FORMAT, "bad secret ID",
					 "character %zu: allowed A-Z a-z 0-9 . _ -", i);
	}
	return 0;
}

int tdc_store_canon_policy(const char *policy_json, char **out, struct tdc_error *e)
{
	*out = NULL;
	if (!policy_json)
		return 0;
	struct tdc_policy *p;
	TDC_GUARD(tdc_policy_parse(policy_json, strlen(policy_json), &p, e));
	int r = tdc_policy_to_json(p, out, e);
	tdc_policy_free(p);
	return r;
}

bool tdc_store_is_url(const char *path)
{
	return db_is_url(path);
}

const char *tdc_store_display(const char *path, char *out, size_t cap)
{
	if (!cap)
		return "";
	snprintf(out, cap, "%s", path ? path : "");
	if (!db_is_url(out))
		return out;
	/* user:password@ -> user@ */
	char *scheme_end = strstr(out, "://");
	char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
	char *slash = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
	if (at && (!slash || at < slash)) {
		char *colon = memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3));
		if (colon)
			memmove(colon, at, strlen(at) + 1);
	}
	/* password=... -> password=*** */
	char *pw = strstr(out, "password=");
	if (pw) {
		char *end = strchr(pw, '&');
		char rest[256];
		snprintf(rest, sizeof(rest), "%s", end ? end : "");
		snprintf(pw, cap - (size_t)(pw - out), "password=***%s", rest);
	}
	return out;
}

bool tdc_store_exists(const char *path)
{
	struct stat st;
	if (db_is_url(path)) {
		/* a database that already holds a schema */
		struct db *d;
		struct tdc_error ignored;
		tdc_error_clear(&ignored);
		int v = 0;
		if (db_open(path, &d, &ignored) < 0)
			return false;
		bool there = db_version(d, &v, &ignored) == 0 && v > 0;
		db_close(d);
		return there;
	}
	return path && lstat(path, &st) == 0;
}

int tdc_store_open(const char *path, const char *master_key_path, struct tdc_store **out,
		   struct tdc_error *e)
{
	return tdc_store_open_ex(path, master_key_path, 0, out, e);
}

int tdc_store_open_ex(const char *path, const char *master_key_path, unsigned flags,
		      struct tdc_store **out, struct tdc_error *e)
{
	if (!out)
		return TDC_FAIL(e, TDC_E_USAGE, "no output");
	*out = NULL;
	if (!path)
		return TDC_FAIL(e, TDC_E_USAGE, "no store path");
	struct tdc_store *s = calloc(1, sizeof(*s));
	if (!s)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return TDC_FAIL(e, TDC_E_INTERNAL, "cannot create a mutex");
	}
	if (pthread_mutex_init(&s->group_lock, NULL) != 0 ||
	    pthread_cond_init(&s->group_done, NULL) != 0) {
		pthread_mutex_destroy(&s->lock);
		free(s);
		return TDC_FAIL(e, TDC_E_INTERNAL, "cannot create a mutex");
	}
	s->pending_tail = &s->pending;
	s->lock_fd = -1;
	s->wal_fd = -1;
	bool file = !db_is_url(path);
	/* one broker per SQLite file; brokers share a PostgreSQL database by design */
	int r = file && (flags & TDC_STORE_EXCLUSIVE) ? tdc_store_lock(path, &s->lock_fd, e) : 0;
	if (r == 0)
		r = tdc_store_load_key(master_key_path, &s->seal_key, e);
	if (r == 0)
		r = db_open(path, &s->db, e);
	if (r == 0)
		r = tdc_store_quick_check(s->db, false, e);
	if (r == 0)
		r = tdc_store_migrate(s->db, TDC_STORE_SCHEMA_VERSION, e);
	if (r == 0)
		r = tdc_store_key_check(s, e);
	if (r == 0 && file)
		r = tdc_store_watch_wal(s, path, e);
	if (r < 0) {
		tdc_store_close(s);
		return r;
	}
	*out = s;
	return 0;
}

void tdc_store_close(struct tdc_store *s)
{
	if (!s)
		return;
	if (s->db && db_sqlite(s->db))
		tdc_store_close_checked(s);
	db_close(s->db);
	tdc_store_unwatch_wal(s);
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* after the database: the lock covers its last checkpoint */
	free(s->wal_path);
	tdc_secret_free(&s->seal_key);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->group_lock);
	pthread_cond_destroy(&s->group_done);
	free(s);
}

int tdc_store_schema_version(struct tdc_store *s, int *version, struct tdc_error *e)
{
	if (!s || !version)
		return TDC_FAIL(e, TDC_E_USAGE, "no store");
	pthread_mutex_lock(&s->lock);
	int r = tdc_store_user_version(s->db, version, e);
	pthread_mutex_unlock(&s->lock);
	return r;
}
