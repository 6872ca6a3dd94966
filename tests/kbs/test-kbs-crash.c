/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Crash consistency of the broker's store (issue 8): the real tdcrypt-kbs, under a
 * write-heavy mix (secrets added and rotated over the admin socket, releases over
 * RA-TLS, each release an audit record), is killed with SIGKILL at a random moment,
 * many times over the same store. After each kill: the store passes integrity_check,
 * every secret opens, every add or rotation the broker acknowledged is there (a value
 * sent but not acknowledged may or may not be), and every release a client received
 * has its audit record.
 *
 * usage (meson): test-kbs-crash TDCRYPT_KBS [ROUNDS]
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
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
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "kbs-harness.h"

#define N_SECRETS 8
#define MAX_RELEASES 4096

static const char *kbs_bin;
static int rounds = 12;

/* What the broker acknowledged, and what was sent since (may or may not have landed). */
struct secret_state {
	char id[32];
	char acked[40];    /* "" : never acknowledged */
	char pending[40];  /* sent, no answer yet */
	/* sent to a broker that was killed, not there at the check after: on PostgreSQL its
	 * COMMIT may still be on its way to the server and land later; once a later write to
	 * the secret is acknowledged it cannot (that write waited for its row lock) */
	char late[4][40];
};
static struct secret_state secrets[N_SECRETS];
static char released[MAX_RELEASES][40];
static atomic_int n_released;
static atomic_bool stop;
static int port;

/* ---- the broker as its own process ---- */

static pid_t spawn(void)
{
	char cfg[600], log[600];
	snprintf(cfg, sizeof(cfg), "%s/crash.json", dir);
	snprintf(log, sizeof(log), "%s/crash.log", dir);
	FILE *f = fopen(cfg, "w");
	assert_non_null(f);
	fprintf(f,
		"{\"listen\":\"127.0.0.1:0\",\"cert\":\"%s\",\"key\":\"%s\",\"db\":\"%s\","
		"\"master_key\":\"%s\",\"collateral_dir\":\"%s\",\"admin_socket\":\"%s\","
		"\"allow_simulator_root\":\"%s\",\"at\":\"@%lld\",\"workers\":2}\n",
		p_cert, p_key, p_db, p_mk, p_coll, p_admin, p_root, (long long)NOW);
	fclose(f);
	unlink(log);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		execl(kbs_bin, kbs_bin, "--config", cfg, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 400; i++) {
		char buf[8192];
		usleep(10000);
		FILE *l = fopen(log, "r");
		if (!l)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, l);
		fclose(l);
		buf[n] = 0;
		char *p = strstr(buf, "\"port\":");
		if (p && strstr(buf, "\"event\":\"listening\"")) {
			port = atoi(p + 7);
			return pid;
		}
		if (strstr(buf, "tdcrypt-kbs: start-up"))
			fail_msg("the broker did not start: %s", buf);
	}
	fail_msg("the broker did not start in 4 s");
	return -1;
}

/* ---- the write-heavy clients ---- */

static bool admin_try(const char *req)
{
	char out[1024];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 2, 0 };
	if (strlen(p_admin) >= sizeof(sa.sun_path)) {
		close(fd);
		return false;
	}
	memcpy(sa.sun_path, p_admin, strlen(p_admin) + 1);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return false;
	}
	size_t n = 0;
	bool ok = write(fd, req, strlen(req)) == (ssize_t)strlen(req) && write(fd, "\n", 1) == 1;
	while (ok && n + 1 < sizeof(out)) {
		ssize_t r = read(fd, out + n, 1);
		if (r != 1) {
			ok = false;
			break;
		}
		if (out[n] == '\n')
			break;
		n++;
	}
	out[n] = 0;
	close(fd);
	return ok && strstr(out, "\"ok\":true") != NULL;
}

static void *admin_writer(void *arg)
{
	(void)arg;
	unsigned seq = 0;
	while (!atomic_load(&stop)) {
		struct secret_state *s = &secrets[seq % N_SECRETS];
		char value[40], b64[64], req[256];
		uint8_t r[8];
		RAND_bytes(r, sizeof(r));
		snprintf(value, sizeof(value), "v%u-%02x%02x%02x%02x", seq, r[0], r[1], r[2], r[3]);
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)value,
				(int)strlen(value));
		snprintf(req, sizeof(req), "{\"op\":\"%s\",\"id\":\"%s\",\"key_b64\":\"%s\"}",
			 s->acked[0] ? "secret.rotate" : "secret.add", s->id, b64);
		snprintf(s->pending, sizeof(s->pending), "%s", value);
		if (!admin_try(req))
			break; /* the broker is gone: what was sent may or may not have landed */
		snprintf(s->acked, sizeof(s->acked), "%s", value);
		s->pending[0] = 0;
		memset(s->late, 0, sizeof(s->late));
		seq++;
	}
	return NULL;
}

/* tls_open without assertions (a thread may not fail the test; the broker may be gone). */
static bool try_tls(struct tls *t, const struct agent *a)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { 2, 0 };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t->ssl = NULL;
	t->ctx = SSL_CTX_new(TLS_client_method());
	t->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (!t->ctx || t->fd < 0)
		return false;
	setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_use_certificate(t->ctx, a->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(t->ctx, a->key) != 1 ||
	    connect(t->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return false;
	t->ssl = SSL_new(t->ctx);
	return t->ssl && SSL_set_fd(t->ssl, t->fd) == 1 && SSL_connect(t->ssl) == 1;
}

static void *releaser(void *arg)
{
	struct agent *a = arg;
	while (!atomic_load(&stop)) {
		struct tls t;
		struct resp r;
		if (!try_tls(&t, a)) {
			tls_close(&t);
			usleep(1000);
			continue;
		}
		char req[512];
		const char body[] = "{\"agent\":\"tdcrypt-agent/crash-test\"}";
		int n = snprintf(req, sizeof(req),
				 "POST /v1/keys/luks-root HTTP/1.1\r\nHost: b\r\nContent-Type: "
				 "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
				 sizeof(body) - 1, body);
		if (SSL_write(t.ssl, req, n) == n) {
			tls_read_response(&t, r.raw, sizeof(r.raw));
			parse_resp(&r);
			int i = atomic_load(&n_released);
			if (r.status == 200 && i < MAX_RELEASES) {
				snprintf(released[i], sizeof(released[i]), "%s", r.request_id);
				atomic_store(&n_released, i + 1);
			}
		}
		tls_close(&t);
	}
	return NULL;
}

/* ---- after each kill ---- */

static bool audit_has(struct tdc_store *s, const char *request_id)
{
	struct tdc_audit_query q = { 0 };
	struct tdc_audit_list l;
	for (;;) {
		assert_int_equal(tdc_store_audit_list(s, &q, &l, NULL), 0);
		if (l.n == 0) {
			tdc_audit_list_free(&l);
			return false;
		}
		for (size_t i = 0; i < l.n; i++)
			if (l.items[i].request_id && !strcmp(l.items[i].request_id, request_id) &&
			    l.items[i].decision == TDC_AUDIT_RELEASED) {
				tdc_audit_list_free(&l);
				return true;
			}
		q.after_id = l.items[l.n - 1].id;
		tdc_audit_list_free(&l);
	}
}

static void check_store(int round)
{
	struct tdc_store *s = NULL;
	struct tdc_store_health h;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_store_open(p_db, p_mk, &s, &e) != 0 || tdc_store_check(s, true, &h, &e) != 0)
		fail_msg("round %d: the store after SIGKILL: %s: %s", round, e.reason, e.detail);
	for (int i = 0; i < N_SECRETS; i++) {
		struct secret_state *st = &secrets[i];
		struct tdc_secret v = { 0 };
		int r = tdc_store_secret_get(s, st->id, &v, NULL);
		char got[48] = "";
		if (r == 0)
			snprintf(got, sizeof(got), "%.*s", (int)v.len, (const char *)v.data);
		tdc_secret_free(&v);
		bool late = false;
		for (size_t j = 0; j < 4; j++)
			late = late || (st->late[j][0] && !strcmp(got, st->late[j]));
		bool ok = (st->acked[0] && !strcmp(got, st->acked)) ||
			  (st->pending[0] && !strcmp(got, st->pending)) || late ||
			  (!st->acked[0] && r == TDC_E_NOT_FOUND);
		if (!ok)
			fail_msg("round %d: secret %s is '%s', acknowledged '%s', pending '%s'", round,
				 st->id, got, st->acked, st->pending);
		if (late || (st->pending[0] && !strcmp(got, st->pending))) {
			memset(st->late, 0, sizeof(st->late));
		} else if (st->pending[0]) {
			/* not there yet: it may still land (oldest forgotten beyond four) */
			memmove(st->late[1], st->late[0], sizeof(st->late[0]) * 3);
			snprintf(st->late[0], sizeof(st->late[0]), "%s", st->pending);
		}
		/* what landed is what counts from now on */
		if (r == 0)
			snprintf(st->acked, sizeof(st->acked), "%s", got);
		st->pending[0] = 0;
	}
	int n = atomic_load(&n_released);
	for (int i = 0; i < n; i++)
		if (!audit_has(s, released[i]))
			fail_msg("round %d: release %s reached its client but has no audit record",
				 round, released[i]);
	print_message("round %2d: integrity ok, %zu secrets open, %zu audit records, %d "
		      "releases received so far all audited\n",
		      round, h.secrets, h.audit_records, n);
	tdc_store_close(s);
}

static void sigkill_at_random_points(void **state)
{
	(void)state;
	struct agent a[2];
	tdc_store_close(store); /* the harness's handle: this test opens its own */
	store = NULL;
	for (int i = 0; i < N_SECRETS; i++)
		snprintf(secrets[i].id, sizeof(secrets[i].id), "crash-%d", i);
	agent_make(&a[0], NULL, false);
	agent_make(&a[1], NULL, false);
	for (int round = 1; round <= rounds; round++) {
		pid_t pid = spawn();
		atomic_store(&stop, false);
		pthread_t t[3];
		assert_int_equal(pthread_create(&t[0], NULL, admin_writer, NULL), 0);
		assert_int_equal(pthread_create(&t[1], NULL, releaser, &a[0]), 0);
		assert_int_equal(pthread_create(&t[2], NULL, releaser, &a[1]), 0);
		uint8_t r;
		RAND_bytes(&r, 1);
		usleep(100000 + (unsigned)r * 2000); /* 0.1 .. 0.6 s of writes */
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		atomic_store(&stop, true);
		for (int i = 0; i < 3; i++)
			pthread_join(t[i], NULL);
		check_store(round);
	}
	assert_true(atomic_load(&n_released) > 0);
	agent_free(&a[0]);
	agent_free(&a[1]);
	/* kt_teardown closes the handle it opened */
	assert_int_equal(tdc_store_open(p_db, p_mk, &store, NULL), 0);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test-kbs-crash TDCRYPT_KBS [ROUNDS]\n");
		return 2;
	}
	kbs_bin = argv[1];
	if (argc > 2)
		rounds = atoi(argv[2]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sigkill_at_random_points),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, kt_setup, kt_teardown);
}
