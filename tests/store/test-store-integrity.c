/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store cannot rot silently (issue 8): a damaged file is refused at open (the
 * corrupt store of ../shared/evidence too), one broker per store, a WAL truncated under
 * a live store fails the next commit and is kept out of the database, and backups are
 * online, checked, and restored only into a store no broker holds.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "tdcrypt/store.h"

#define NOW 1751623000

struct fx {
	char dir[64], db[96], key[96], path[160];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tdc-integrity-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/kbs.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/master.key", f->dir);
	if (tdc_store_master_key_create(f->key, NULL) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static const char *in_dir(struct fx *f, const char *name)
{
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, name);
	return f->path;
}

static struct tdc_store *open_ok(const char *db, const char *key, unsigned flags)
{
	struct tdc_store *s = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_store_open_ex(db, key, flags, &s, &e) != 0)
		fail_msg("open %s: %s: %s", db, e.reason, e.detail);
	return s;
}

static void put_ok(struct tdc_store *s, const char *id, const char *value)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_store_secret_put(s, id, (const uint8_t *)value, strlen(value), NULL, NOW, &e) != 0)
		fail_msg("put %s: %s: %s", id, e.reason, e.detail);
}

static int audit(struct tdc_store *s, const char *request_id, struct tdc_error *e)
{
	struct tdc_audit_record r = { .time = NOW, .request_id = request_id, .secret_id = "a",
				      .decision = TDC_AUDIT_RELEASED, .reason = "released: test" };
	return tdc_store_audit_append(s, &r, NULL, e);
}

static void check_value(struct tdc_store *s, const char *id, const char *value)
{
	struct tdc_secret v;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_store_secret_get(s, id, &v, &e) != 0)
		fail_msg("get %s: %s: %s", id, e.reason, e.detail);
	assert_int_equal(v.len, strlen(value));
	assert_memory_equal(v.data, value, v.len);
	tdc_secret_free(&v);
}

/* SQLite's own integrity_check of a closed store file, without the store's code. */
static bool file_intact(const char *db)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	bool ok = sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
		  sqlite3_step(st) == SQLITE_ROW &&
		  !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	sqlite3_close(h);
	return ok;
}

static void zero_page(const char *db, unsigned page)
{
	uint8_t z[4096] = { 0 };
	int fd = open(db, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, z, sizeof(z), (off_t)(page - 1) * 4096), (ssize_t)sizeof(z));
	close(fd);
}

/* ---- tests ---- */

/* Zero pages in the file: the open says the store is damaged and what to do. */
static void damaged_store_refused_at_open(void **state)
{
	struct fx *f = *state;
	struct tdc_store *s = open_ok(f->db, f->key, 0);
	put_ok(s, "a", "value-a");
	tdc_store_close(s);
	assert_true(file_intact(f->db));
	zero_page(f->db, 2);
	struct tdc_error e;
	tdc_error_clear(&e);
	s = NULL;
	assert_int_equal(tdc_store_open(f->db, f->key, &s, &e), TDC_E_IO);
	assert_null(s);
	assert_string_equal(e.reason, "the store is damaged");
	assert_non_null(strstr(e.detail, "Page 2"));
	assert_non_null(strstr(e.detail, "tdcrypt-kbs restore"));
}

/* The store found corrupt after a hostile run (../shared/evidence): refused at open. */
static void evidence_store_refused_at_open(void **state)
{
	struct fx *f = *state;
	const char *ev = getenv("TDC_EVIDENCE");
	char src[512], cmd[1200];
	snprintf(src, sizeof(src), "%s/kbs-store-corruption/corrupt-kbs.db", ev ? ev : ".");
	if (access(src, R_OK) != 0)
		skip();
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, f->db);
	assert_int_equal(system(cmd), 0);
	chmod(f->db, 0600);
	struct tdc_store *s = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_open(f->db, f->key, &s, &e), TDC_E_IO);
	assert_string_equal(e.reason, "the store is damaged");
	assert_non_null(strstr(e.detail, "Page 2"));
	assert_non_null(strstr(e.detail, "Page 3"));
	assert_non_null(strstr(e.detail, "Page 9"));
}

/* One broker per store: a second exclusive open and a restore are refused while it
 * runs; readers (tdcrypt-kbs check, backup) are not. */
static void one_broker_per_store(void **state)
{
	struct fx *f = *state;
	struct tdc_store *broker = open_ok(f->db, f->key, TDC_STORE_EXCLUSIVE);
	put_ok(broker, "a", "value-a");
	struct tdc_store *second = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_open_ex(f->db, f->key, TDC_STORE_EXCLUSIVE, &second, &e),
			 TDC_E_IO);
	assert_string_equal(e.reason, "the store is in use");
	struct tdc_store *reader = open_ok(f->db, f->key, 0);
	check_value(reader, "a", "value-a");
	tdc_store_close(reader);
	/* a reader's close leaves the broker's locks alone: its WAL is still in use */
	assert_int_equal(audit(broker, "after-reader", NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_backup(f->db, in_dir(f, "b.db"), &e), 0);
	assert_int_equal(tdc_store_restore(in_dir(f, "b.db"), f->db, f->key, &e), TDC_E_IO);
	assert_string_equal(e.reason, "the store is in use");
	tdc_store_close(broker);
	/* stopped: the next broker gets the store */
	broker = open_ok(f->db, f->key, TDC_STORE_EXCLUSIVE);
	tdc_store_close(broker);
}

/* POSIX locks this process holds on the file (from /proc/locks). */
static int my_locks(const char *path)
{
	struct stat st;
	char line[256];
	int n = 0;
	assert_int_equal(stat(path, &st), 0);
	FILE *f = fopen("/proc/locks", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		int pid;
		unsigned long ino;
		char kind[16];
		/* "1: POSIX  ADVISORY  READ 1234 fe:01:5678 128 128" */
		if (sscanf(line, "%*d: %15s %*s %*s %d %*x:%*x:%lu", kind, &pid, &ino) == 3 &&
		    !strcmp(kind, "POSIX") && pid == getpid() && ino == (unsigned long)st.st_ino)
			n++;
	}
	fclose(f);
	return n;
}

/* A second handle in the broker's process (tests, tools) opened and closed: the broker
 * keeps its POSIX locks. Before, the open's own open()/close() of the existing file
 * dropped them all, and another process could then take the last-connection path and
 * delete the live WAL under the broker. */
static void second_handle_keeps_the_brokers_locks(void **state)
{
	struct fx *f = *state;
	struct tdc_store *broker = open_ok(f->db, f->key, TDC_STORE_EXCLUSIVE);
	put_ok(broker, "a", "value-a");
	struct tdc_secret_list l;
	assert_int_equal(tdc_store_secret_list(broker, &l, NULL), 0);
	tdc_secret_list_free(&l);
	int before = my_locks(f->db);
	assert_true(before >= 1);
	struct tdc_store *other = open_ok(f->db, f->key, 0);
	tdc_store_close(other);
	assert_int_equal(my_locks(f->db), before);
	tdc_store_close(broker);
}

/*
 * The evidence's mechanism: the live WAL truncated by someone else. Before, the broker
 * went on, and its checkpoint at exit wrote the holes into the database (pages of
 * zeros). Now the next commit fails, the store refuses to go on, and it is closed
 * without a checkpoint: the file keeps its last checkpointed state, whole.
 */
static void truncated_wal_kept_out_of_the_database(void **state)
{
	struct fx *f = *state;
	struct tdc_store *s = open_ok(f->db, f->key, TDC_STORE_EXCLUSIVE);
	put_ok(s, "a", "value-a");
	tdc_store_close(s); /* checkpointed: "a" is in the database file */
	s = open_ok(f->db, f->key, TDC_STORE_EXCLUSIVE);
	put_ok(s, "b", "value-b");
	for (int i = 0; i < 20; i++)
		assert_int_equal(audit(s, "before", NULL), 0);
	char wal[160];
	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	assert_int_equal(truncate(wal, 0), 0);
	struct tdc_error e, eget;
	tdc_error_clear(&e);
	tdc_error_clear(&eget);
	int r = audit(s, "after", &e);
	for (int i = 0; i < 20; i++)
		(void)audit(s, "after", NULL);
	struct tdc_secret v = { 0 };
	int rget = tdc_store_secret_get(s, "a", &v, &eget);
	tdc_secret_free(&v);
	tdc_store_close(s);
	/* the file is whole (before: its checkpoint wrote the WAL's holes into it) */
	assert_true(file_intact(f->db));
	/* the first commit after the truncation failed, and no key left the store after */
	assert_true(r < 0);
	assert_string_equal(e.reason, "the store was damaged behind the broker");
	assert_non_null(strstr(e.detail, "truncated"));
	assert_true(rget < 0);
	assert_string_equal(eget.reason, "the store was damaged behind the broker");
	s = open_ok(f->db, f->key, 0);
	check_value(s, "a", "value-a");
	tdc_store_close(s);
}

/* A replaced WAL (another file at its name) is noticed likewise. */
static void replaced_wal_noticed(void **state)
{
	struct fx *f = *state;
	struct tdc_store *s = open_ok(f->db, f->key, 0);
	put_ok(s, "a", "value-a");
	char wal[160], cmd[800];
	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s.x' && mv '%s.x' '%s'", wal, wal, wal, wal);
	assert_int_equal(system(cmd), 0);
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_true(audit(s, "after", &e) < 0);
	assert_non_null(strstr(e.detail, "replaced"));
	tdc_store_close(s);
	assert_true(file_intact(f->db));
}

struct writer {
	struct tdc_store *s;
	atomic_bool stop;
	atomic_int written;
};

static void *write_audit(void *arg)
{
	struct writer *w = arg;
	while (!atomic_load(&w->stop))
		if (audit(w->s, "during-backup", NULL) == 0)
			atomic_fetch_add(&w->written, 1);
	return NULL;
}

/* Online backup while the broker writes; restore once it stopped; checked both ways. */
static void backup_online_restore_offline(void **state)
{
	struct fx *f = *state;
	struct tdc_store *s = open_ok(f->db, f->key, TDC_STORE_EXCLUSIVE);
	put_ok(s, "a", "value-a");
	put_ok(s, "b", "value-b");
	struct writer w = { .s = s };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, write_audit, &w), 0);
	while (atomic_load(&w.written) < 50)
		usleep(1000);
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_backup(f->db, in_dir(f, "backup.db"), &e), 0);
	atomic_store(&w.stop, true);
	pthread_join(t, NULL);
	struct stat st;
	assert_int_equal(stat(in_dir(f, "backup.db"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* the output is never overwritten */
	assert_int_equal(tdc_store_backup(f->db, in_dir(f, "backup.db"), &e), TDC_E_USAGE);
	/* later changes, then the restore brings the backup's state back */
	assert_int_equal(tdc_store_secret_delete(s, "a", NULL), 0);
	put_ok(s, "c", "value-c");
	tdc_store_close(s);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_restore(in_dir(f, "backup.db"), f->db, f->key, &e), 0);
	s = open_ok(f->db, f->key, TDC_STORE_EXCLUSIVE);
	struct tdc_store_health h;
	assert_int_equal(tdc_store_check(s, true, &h, NULL), 0);
	assert_int_equal(h.secrets, 2);
	assert_true(h.audit_records >= 50);
	check_value(s, "a", "value-a");
	assert_int_equal(tdc_store_secret_get(s, "c", &(struct tdc_secret){ 0 }, NULL),
			 TDC_E_NOT_FOUND);
	tdc_store_close(s);
}

/* A damaged backup, or one made under another master key, never replaces the store. */
static void bad_backups_refused(void **state)
{
	struct fx *f = *state;
	struct tdc_store *s = open_ok(f->db, f->key, 0);
	put_ok(s, "a", "value-a");
	tdc_store_close(s);
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_backup(f->db, in_dir(f, "good.db"), &e), 0);
	char bad[160];
	snprintf(bad, sizeof(bad), "%s", in_dir(f, "bad.db"));
	assert_int_equal(tdc_store_backup(f->db, bad, &e), 0);
	zero_page(bad, 2);
	tdc_error_clear(&e);
	assert_true(tdc_store_restore(bad, f->db, f->key, &e) < 0);
	assert_non_null(strstr(e.reason, "damaged"));
	/* another key */
	char other[160];
	snprintf(other, sizeof(other), "%s", in_dir(f, "other.key"));
	assert_int_equal(tdc_store_master_key_create(other, NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_store_restore(in_dir(f, "good.db"), f->db, other, &e), TDC_E_SIGNATURE);
	/* the store is untouched by both */
	s = open_ok(f->db, f->key, 0);
	check_value(s, "a", "value-a");
	tdc_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(damaged_store_refused_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(evidence_store_refused_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(one_broker_per_store, setup, teardown),
		cmocka_unit_test_setup_teardown(second_handle_keeps_the_brokers_locks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(truncated_wal_kept_out_of_the_database, setup,
						teardown),
		cmocka_unit_test_setup_teardown(replaced_wal_noticed, setup, teardown),
		cmocka_unit_test_setup_teardown(backup_online_restore_offline, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_backups_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
