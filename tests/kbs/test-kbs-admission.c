/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admission control of the broker (PROTOCOL.md section 7): what a client that holds
 * connections, floods handshakes or sends unverifiable evidence can no longer do. A
 * legitimate agent is served while another client stalls handshakes at the connection
 * limit or from another address at its per-source limit; at the limit the broker answers
 * busy; a stalled handshake is closed at its deadline; failed handshakes and other
 * unauthenticated refusals are counted and sampled into the audit trail (few durable
 * writes, few log lines), while every authenticated decision is still audited.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kbs-harness.h"

/* ---- every fsync/fdatasync of the process (SQLite's durable writes), counted ---- */

static atomic_ulong n_sync;

int fdatasync(int fd);
int fsync(int fd);

int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	atomic_fetch_add(&n_sync, 1);
	return real(fd);
}

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fsync");
	atomic_fetch_add(&n_sync, 1);
	return real(fd);
}

/* ---- log lines, counted by what they contain ---- */

static atomic_uint n_log_refused, n_log_handshake, n_log_suppressed;
static char last_suppressed[512];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void count_log(const char *line)
{
	if (strstr(line, "\"event\":\"connection_refused\""))
		atomic_fetch_add(&n_log_refused, 1);
	if (strstr(line, "\"event\":\"handshake"))
		atomic_fetch_add(&n_log_handshake, 1);
	if (strstr(line, "\"event\":\"log_suppressed\"")) {
		atomic_fetch_add(&n_log_suppressed, 1);
		pthread_mutex_lock(&log_lock);
		snprintf(last_suppressed, sizeof(last_suppressed), "%s", line);
		pthread_mutex_unlock(&log_lock);
	}
}

static void reset_counts(void)
{
	atomic_store(&n_log_refused, 0);
	atomic_store(&n_log_handshake, 0);
	atomic_store(&n_log_suppressed, 0);
	last_suppressed[0] = 0;
}

/* ---- helpers ---- */

/* A TCP connection from the loopback address src (all of 127/8 is loopback). */
static int connect_from(const char *src, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in me = { .sin_family = AF_INET };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { 5, 0 };
	assert_true(fd >= 0);
	assert_int_equal(inet_pton(AF_INET, src, &me.sin_addr), 1);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* A client that starts a TLS record and never finishes its ClientHello. */
static int stalled_from(const char *src, int port)
{
	int fd = connect_from(src, port);
	assert_int_equal(write(fd, "\x16\x03\x01\x00", 4), 4);
	return fd;
}

static uint64_t metric(const char *name)
{
	char out[2048], key[64];
	int fd = admin_connect();
	admin_call(fd, "{\"op\":\"metrics\"}", out, sizeof(out));
	close(fd);
	snprintf(key, sizeof(key), "\"%s\":", name);
	const char *p = strstr(out, key);
	if (!p)
		fail_msg("no metric %s in %s", name, out);
	return strtoull(p + strlen(key), NULL, 10);
}

/* Waits (up to 10 s) until metric name reaches at least n. */
static void wait_metric(const char *name, uint64_t n)
{
	for (int i = 0; i < 1000 && metric(name) < n; i++)
		usleep(10000);
	assert_true(metric(name) >= n);
}

/* How many audit records the store holds. */
static size_t audit_count(void)
{
	struct tdc_audit_query q = { 0 };
	struct tdc_audit_list l;
	size_t n = 0;
	for (;;) {
		assert_int_equal(tdc_store_audit_list(store, &q, &l, NULL), 0);
		if (l.n == 0)
			break;
		n += l.n;
		q.after_id = l.items[l.n - 1].id;
		tdc_audit_list_free(&l);
	}
	tdc_audit_list_free(&l);
	return n;
}

static void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

/* ---- tests ---- */

/* 25 stalled handshakes against a limit of 20 kept an agent out for its whole deadline:
 * now the oldest stalled one makes room. */
static void stalled_handshakes_do_not_lock_out_an_agent(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	int fds[25];
	kt_limits = (struct kt_limits){ .max_conns = 20 };
	broker_start(&b, true, NOW, true);
	for (size_t i = 0; i < 25; i++)
		fds[i] = stalled_from("127.0.0.1", b.port);
	usleep(1200 * 1000); /* longer than a real handshake takes: they have stalled */
	agent_make(&a, NULL, false);
	post(b.port, &a, "luks-root", &r);
	expect_released(&r);
	assert_true(metric("evicted_handshake") >= 1);
	close_all(fds, 25);
	agent_free(&a);
	broker_stop(&b);
	kt_limits = (struct kt_limits){ 0 };
}

/* One address at its per-source limit: the rest of its connections are refused (a few
 * log lines and a count), and an agent from another address is served at once. */
static void per_source_limit_keeps_others_served(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	int fds[30];
	reset_counts();
	kt_log_hook = count_log;
	kt_limits = (struct kt_limits){ .max_conns = 20, .per_source = 8 };
	broker_start(&b, true, NOW, true);
	for (size_t i = 0; i < 30; i++)
		fds[i] = stalled_from("127.0.0.2", b.port);
	agent_make(&a, NULL, false);
	post(b.port, &a, "luks-root", &r);
	expect_released(&r);
	/* 8 slots and 4 in the busy lane; the other 18 refused */
	wait_metric("refused_source", 18);
	assert_int_equal(metric("refused_limit"), metric("refused_source"));
	assert_true(atomic_load(&n_log_refused) <= 5);
	broker_stop(&b);
	/* what the rate limit left out is said when the broker stops */
	assert_true(atomic_load(&n_log_suppressed) >= 1);
	assert_non_null(strstr(last_suppressed, "\"what\":\"connection_refused\""));
	assert_non_null(strstr(last_suppressed, "\"count\":13"));
	close_all(fds, 30);
	agent_free(&a);
	kt_log_hook = NULL;
	kt_limits = (struct kt_limits){ 0 };
}

/* At the limit, with nothing stalled yet to make room, a client is told busy over TLS
 * (PROTOCOL.md section 6.2), not dropped. */
static void busy_answered_at_the_limit(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct tls t;
	struct resp r;
	int fds[4];
	kt_limits = (struct kt_limits){ .max_conns = 4 };
	broker_start(&b, true, NOW, true);
	for (size_t i = 0; i < 4; i++)
		fds[i] = stalled_from("127.0.0.1", b.port);
	agent_make(&a, NULL, false);
	assert_int_equal(tls_open(&t, b.port, &a), 1);
	post_on(&t, "luks-root", &r);
	tls_close(&t);
	if (r.status != 503)
		print_message("response: %s\n", r.raw);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.error, "busy");
	assert_non_null(strstr(r.raw, "Retry-After: 5\r\n"));
	assert_int_equal(metric("busy"), 1);
	close_all(fds, 4);
	agent_free(&a);
	broker_stop(&b);
	kt_limits = (struct kt_limits){ 0 };
}

/* A connection that does not finish TLS is closed at the handshake deadline. */
static void stalled_handshake_closed_at_its_deadline(void **state)
{
	(void)state;
	struct broker b;
	char c;
	kt_limits = (struct kt_limits){ .handshake_ms = 300 };
	broker_start(&b, true, NOW, true);
	int fd = stalled_from("127.0.0.1", b.port);
	/* closed by the broker (EOF), well before the 5 s receive timeout */
	assert_int_equal(read(fd, &c, 1), 0);
	assert_int_equal(metric("handshake_timeout"), 1);
	close(fd);
	broker_stop(&b);
	kt_limits = (struct kt_limits){ 0 };
}

/* 200 replays of an agent's certificate without its key: counted, sampled into the audit
 * trail, a few log lines; not 200 durable writes. */
static void failed_handshakes_sampled_not_each_fsynced(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	reset_counts();
	kt_log_hook = count_log;
	broker_start(&b, true, NOW, true);
	size_t audit0 = audit_count();
	unsigned long sync0 = atomic_load(&n_sync);
	agent_make(&a, NULL, false);
	EVP_PKEY *real = a.key;
	a.key = impostor_key(real);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 200; i++) {
		struct tls t;
		char buf[16];
		tls_open(&t, b.port, &a);
		assert_true(SSL_read(t.ssl, buf, sizeof(buf)) <= 0);
		tls_close(&t);
	}
	/* the records are written by the workers: wait until no more come */
	size_t added = 0;
	for (int quiet = 0; quiet < 50; quiet++) {
		size_t n = audit_count() - audit0;
		quiet = n == added ? quiet : 0;
		added = n;
		usleep(10000);
	}
	unsigned long syncs = atomic_load(&n_sync) - sync0;
	print_message("200 failed handshakes: %zu audit records, %lu fsyncs, %u log lines\n",
		      added, syncs, atomic_load(&n_log_handshake));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* the bounds follow from the rates, not from how fast this machine is: a burst of
	 * 10 samples and 6 a minute; 5 log lines per 10 s window and a count per window */
	unsigned secs = (unsigned)(t1.tv_sec - t0.tv_sec) + 1;
	size_t max_samples = 10 + secs / 10 + 1;
	unsigned max_lines = 6 * (secs / 10 + 1);
	assert_true(added >= 10 && added <= max_samples);
	assert_true(syncs <= 3 * added);
	assert_int_equal(metric("handshake_failed"), 200);
	uint64_t sampled = metric("audit_sampled");
	assert_int_equal(added, sampled);
	assert_int_equal(metric("audit_skipped"), 200 - sampled);
	assert_true(atomic_load(&n_log_handshake) <= sampled + max_lines);
	EVP_PKEY_free(real);
	agent_free(&a);
	broker_stop(&b);
	kt_log_hook = NULL;
}

/* Unverifiable evidence (a quote bound to another key) is anyone's to send: sampled.
 * A verified TD refused by the policy is an authenticated decision: every one audited. */
static void only_authenticated_decisions_all_audited(void **state)
{
	(void)state;
	struct broker b;
	struct agent bad, good;
	struct resp r;
	broker_start(&b, true, NOW, true);
	agent_make(&bad, NULL, true);
	agent_make(&good, NULL, false);
	size_t audit0 = audit_count();
	for (int i = 0; i < 40; i++) {
		post(b.port, &bad, "luks-root", &r);
		assert_string_equal(r.error, "evidence_invalid");
	}
	size_t after_bad = audit_count();
	assert_true(after_bad - audit0 <= 12);
	assert_int_equal(metric("unauthenticated"), 40);
	for (int i = 0; i < 20; i++) {
		post(b.port, &good, "other-mrtd", &r);
		expect_denied(&r, 403, "policy_denied", "mrtd");
	}
	assert_int_equal(audit_count() - after_bad, 20);
	assert_int_equal(metric("denied"), 60);
	agent_free(&bad);
	agent_free(&good);
	broker_stop(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stalled_handshakes_do_not_lock_out_an_agent),
		cmocka_unit_test(per_source_limit_keeps_others_served),
		cmocka_unit_test(busy_answered_at_the_limit),
		cmocka_unit_test(stalled_handshake_closed_at_its_deadline),
		cmocka_unit_test(failed_handshakes_sampled_not_each_fsynced),
		cmocka_unit_test(only_authenticated_decisions_all_audited),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, kt_setup, kt_teardown);
}
