/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key broker throughput and memory (issue 3, docs/PERFORMANCE.md).
 *
 * Throughput: an in-process broker (as tests/kbs does: sim PKI, collateral
 * bundle, one secret with a policy pinning the sim MRTD) on 127.0.0.1, and in
 * the same run a bare TLS 1.3 mutual-handshake server with the same key types
 * and the same client-certificate callback (one self-issued P-256 certificate,
 * chain-free) answering one small request. N client threads loop: TCP connect,
 * TLS 1.3 handshake with a pre-generated RA-TLS certificate (a sim quote bound
 * to its key, made before timing starts, one per thread), POST /v1/keys/ID,
 * read the reply, close. Phases alternate (bare, broker) per N so that both see
 * the same machine load. Reports rate, p50/p99 latency and broker/bare.
 *
 * Cost split: the same work piece by piece on one thread (handshake, evidence
 * checks, warm quote verification with the verifier's cache statistics, store
 * reads, the audit write), so a shortfall can be explained without a profiler.
 *
 * Memory (--kbs PATH): runs PATH (tdcrypt-kbs) as a separate process with a
 * temporary config, opens --idle connections that complete the handshake and
 * hold, and reads the broker's VmRSS/VmHWM; then the same with one release per
 * connection kept alive (each connection then also holds its verdict).
 *
 * usage: bench-kbs [--seconds S] [--threads N,N..] [--workers W] [--dir DIR]
 *                  [--only throughput|bare|broker|split|rss] [--kbs PATH] [--idle N]
 * Loopback only; every loop is bounded in time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tdcrypt/kbs.h"
#include "tdcrypt/policy.h"
#include "tdcrypt/ratls.h"
#include "tdcrypt/sim.h"
#include "tdcrypt/store.h"
#include "tdcrypt/verify.h"
#include "util/util.h"
#include "x509/x509.h"

#include "loadgen.h"

#define NOW ((int64_t)1750000000)
#define SECRET_ID "bench-root"
#define WARMUP_S 0.2
#define MAX_THREADS 256
#define IO_TIMEOUT_S 10

static const char request[] = "POST /v1/keys/" SECRET_ID " HTTP/1.1\r\nHost: broker\r\n"
			      "Content-Type: application/json\r\nContent-Length: 2\r\n"
			      "Connection: close\r\n\r\n{}";
static const char request_keepalive[] = "POST /v1/keys/" SECRET_ID " HTTP/1.1\r\nHost: broker\r\n"
					"Content-Length: 0\r\n\r\n";

static struct {
	double seconds;
	size_t n_threads;
	unsigned threads[8];
	unsigned workers;
	const char *dir;
	const char *only;
	const char *kbs;
	unsigned idle;
} opt = { .seconds = 5.0, .workers = TDC_KBS_DEFAULT_WORKERS, .dir = "/tmp", .idle = 1000 };

static char work[512], p_cert[600], p_key[600], p_db[600], p_mk[600], p_coll[600], p_root[600];
static struct tdc_sim_pki *pki;
static struct tdc_sim_opts sim;

struct agent {
	EVP_PKEY *key;
	X509 *cert;
	SSL_CTX *ctx;
};
static struct agent agents[MAX_THREADS];
static size_t n_agents;

/* ---- small helpers ---- */

static void die(const char *what, const struct tdc_error *e)
{
	char buf[512];
	fprintf(stderr, "bench-kbs: %s%s%s\n", what, e ? ": " : "",
		e ? tdc_error_format(e, buf, sizeof(buf)) : "");
	ERR_print_errors_fp(stderr);
	exit(1);
}

static void path_in(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", work, name);
}

static void write_pem_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");
	if (!f || PEM_write_X509(f, x) != 1)
		die(path, NULL);
	fclose(f);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- set-up: sim PKI, collateral, broker credentials, store, agents ---- */

static X509 *self_signed(EVP_PKEY *key, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		die("broker certificate", NULL);
	X509_NAME_free(n);
	return x;
}

static void setup_files(void)
{
	struct tdc_collateral c;
	struct tdc_error e;
	const uint8_t *der;
	size_t der_len;
	char mrtd[97], policy[512];
	struct tdc_store *store = NULL;

	snprintf(work, sizeof(work), "%s/tdc-bench-kbs-XXXXXX", opt.dir);
	if (!mkdtemp(work))
		die("mkdtemp", NULL);
	path_in(p_cert, sizeof(p_cert), "broker.crt");
	path_in(p_key, sizeof(p_key), "broker.key");
	path_in(p_db, sizeof(p_db), "kbs.db");
	path_in(p_mk, sizeof(p_mk), "master.key");
	path_in(p_coll, sizeof(p_coll), "collateral");
	path_in(p_root, sizeof(p_root), "sim-root.pem");

	tdc_error_clear(&e);
	tdc_sim_opts_default(&sim, NOW);
	if (tdc_sim_pki_new(&sim, &pki, &e) < 0 || tdc_sim_collateral(pki, &sim, &c, &e) < 0 ||
	    tdc_sim_collateral_save(&c, p_coll, &e) < 0)
		die("simulator PKI", &e);
	tdc_collateral_free(&c);
	tdc_sim_root_der(pki, &der, &der_len);
	const unsigned char *p = der;
	X509 *root = d2i_X509(NULL, &p, (long)der_len);
	if (!root)
		die("sim root", NULL);
	write_pem_cert(p_root, root);
	X509_free(root);

	/* broker TLS credentials: P-256, like the agent's */
	EVP_PKEY *bk;
	if (tdc_ratls_keygen(&bk, &e) < 0)
		die("broker key", &e);
	X509 *bc = self_signed(bk, "broker.bench");
	write_pem_cert(p_cert, bc);
	FILE *f = fopen(p_key, "w");
	if (!f || PEM_write_PrivateKey(f, bk, NULL, NULL, 0, NULL, NULL) != 1)
		die(p_key, NULL);
	fclose(f);
	chmod(p_key, 0600);
	X509_free(bc);
	EVP_PKEY_free(bk);

	uint8_t secret[32];
	RAND_bytes(secret, sizeof(secret));
	tdc_hex_encode(sim.td.mrtd, 48, mrtd);
	snprintf(policy, sizeof(policy), "{\"allow_simulator\":true,\"mrtd\":[\"%s\"]}", mrtd);
	if (tdc_store_master_key_create(p_mk, &e) < 0 || tdc_store_open(p_db, p_mk, &store, &e) < 0 ||
	    tdc_store_secret_put(store, SECRET_ID, secret, sizeof(secret), policy, NOW, &e) < 0)
		die("store", &e);
	tdc_store_close(store);
	OPENSSL_cleanse(secret, sizeof(secret));
}

static SSL_CTX *client_ctx(const struct agent *a)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
		die("client TLS context", NULL);
	/* the broker's identity (pin) is not what is measured; the agent's own check is a
	 * SHA-256 over the SPKI, negligible next to the handshake */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate(ctx, a->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, a->key) != 1)
		die("client certificate", NULL);
	return ctx;
}

/* One RA-TLS identity: fresh key, sim quote binding it, certificate, client context. */
static void agent_make(struct agent *a)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	if (lg_identity_make(pki, &sim, NOW, &a->key, &a->cert, &e) < 0)
		die("agent certificate", &e);
	a->ctx = client_ctx(a);
}

static void agents_free(void)
{
	for (size_t i = 0; i < n_agents; i++) {
		SSL_CTX_free(agents[i].ctx);
		X509_free(agents[i].cert);
		EVP_PKEY_free(agents[i].key);
	}
	n_agents = 0;
}

/* ---- the in-process broker ---- */

static atomic_ulong log_lines;

static void log_sink(void *arg, const char *line)
{
	(void)arg;
	(void)line;
	atomic_fetch_add_explicit(&log_lines, 1, memory_order_relaxed);
}

static int64_t fixed_now(void *arg)
{
	(void)arg;
	return NOW;
}

static void fill_config(struct tdc_kbs_config *c)
{
	tdc_kbs_config_init(c);
	free(c->listen);
	free(c->admin_socket);
	c->listen = strdup("127.0.0.1:0");
	c->admin_socket = strdup("");
	c->cert = strdup(p_cert);
	c->key = strdup(p_key);
	c->db = strdup(p_db);
	c->master_key = strdup(p_mk);
	c->collateral_dir = strdup(p_coll);
	c->sim_root = strdup(p_root);
	c->workers = opt.workers;
}

struct broker {
	struct tdc_kbs *k;
	pthread_t t;
	int port;
};

static void *broker_loop(void *arg)
{
	struct broker *b = arg;
	struct tdc_error e;
	pthread_setname_np(pthread_self(), "kbs-loop");
	tdc_error_clear(&e);
	if (tdc_kbs_run(b->k, &e) < 0)
		die("broker loop", &e);
	return NULL;
}

static void broker_start(struct broker *b)
{
	struct tdc_kbs_config c;
	struct tdc_error e;
	fill_config(&c);
	tdc_error_clear(&e);
	/* the sim PKI's time, as a clock hook (no "fixed time" warning) */
	struct tdc_kbs_hooks h = { .log = log_sink, .now = fixed_now };
	/* the worker threads inherit this thread's name: it labels them in a profile */
	char name[16] = "";
	pthread_getname_np(pthread_self(), name, sizeof(name));
	pthread_setname_np(pthread_self(), "kbs-worker");
	int r = tdc_kbs_new(&c, &h, &b->k, &e);
	pthread_setname_np(pthread_self(), name);
	if (r < 0)
		die("broker", &e);
	tdc_kbs_config_free(&c);
	b->port = tdc_kbs_port(b->k);
	if (pthread_create(&b->t, NULL, broker_loop, b) != 0)
		die("broker thread", NULL);
}

static void broker_stop(struct broker *b)
{
	tdc_kbs_stop(b->k);
	pthread_join(b->t, NULL);
	tdc_kbs_free(b->k);
}

/* ---- the bare TLS 1.3 mutual-handshake server (loadgen.c) ---- */

static void bare_start(struct lg_bare *s)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	if (lg_bare_start(s, p_cert, p_key, SECRET_ID, &e) < 0)
		die("bare server", &e);
}

/* ---- the client loop ---- */

static int tcp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { IO_TIMEOUT_S, 0 };
	int one = 1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Closes with RST: the client never sits in TIME_WAIT, so short runs of many
 * connections do not run out of loopback ports. */
static void close_rst(int fd)
{
	struct linger l = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/* Reads one response; returns its status (0 on a short read). */
static int read_response(SSL *ssl)
{
	char buf[4096];
	size_t n = 0;
	for (;;) {
		int r = SSL_read(ssl, buf + n, (int)(sizeof(buf) - 1 - n));
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = 0;
		char *end = strstr(buf, "\r\n\r\n");
		const char *cl = strstr(buf, "Content-Length: ");
		if (end && cl && n >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
			break;
		if (n >= sizeof(buf) - 1)
			break;
	}
	buf[n] = 0;
	int status = 0;
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		return 0;
	return status;
}

struct client {
	pthread_t t;
	const struct agent *a;
	int port;
	double t_start, t_end; /* counted window */
	double *lat;
	size_t n_lat, cap_lat;
	unsigned long ok, failed, early;
	int last_status;
};

static void *client_loop(void *arg)
{
	struct client *c = arg;
	pthread_setname_np(pthread_self(), "client");
	while (lg_mono() < c->t_end) {
		double t0 = lg_mono();
		int status = 0;
		int fd = tcp_connect(c->port);
		if (fd >= 0) {
			SSL *ssl = SSL_new(c->a->ctx);
			SSL_set_fd(ssl, fd);
			if (SSL_connect(ssl) == 1 &&
			    SSL_write(ssl, request, (int)sizeof(request) - 1) ==
				    (int)sizeof(request) - 1)
				status = read_response(ssl);
			SSL_free(ssl);
			close_rst(fd);
		}
		ERR_clear_error();
		double t1 = lg_mono();
		if (t0 < c->t_start || t1 > c->t_end) {
			c->early++;
			continue;
		}
		if (status != 200) {
			c->failed++;
			c->last_status = status;
			continue;
		}
		c->ok++;
		if (c->n_lat == c->cap_lat) {
			c->cap_lat = c->cap_lat ? 2 * c->cap_lat : 4096;
			c->lat = realloc(c->lat, c->cap_lat * sizeof(double));
			if (!c->lat)
				die("out of memory", NULL);
		}
		c->lat[c->n_lat++] = t1 - t0;
	}
	return NULL;
}

struct result {
	double rate, p50_ms, p99_ms;
	unsigned long ok, failed;
	int last_status;
	double *lat;
	size_t n_lat;
	double seconds;
};

/* One slice: n client threads against port for `seconds` after a short warm-up;
 * counts and latencies are added to r. */
static void run_slice(int port, unsigned n, double seconds, struct result *r)
{
	struct client *cs = calloc(n, sizeof(*cs));
	double start = lg_mono() + WARMUP_S;
	for (unsigned i = 0; i < n; i++) {
		cs[i].a = &agents[i];
		cs[i].port = port;
		cs[i].t_start = start;
		cs[i].t_end = start + seconds;
		if (pthread_create(&cs[i].t, NULL, client_loop, &cs[i]) != 0)
			die("client thread", NULL);
	}
	for (unsigned i = 0; i < n; i++) {
		pthread_join(cs[i].t, NULL);
		r->ok += cs[i].ok;
		r->failed += cs[i].failed;
		if (cs[i].failed)
			r->last_status = cs[i].last_status;
		r->lat = realloc(r->lat, (r->n_lat + cs[i].n_lat + 1) * sizeof(double));
		if (!r->lat)
			die("out of memory", NULL);
		memcpy(r->lat + r->n_lat, cs[i].lat, cs[i].n_lat * sizeof(double));
		r->n_lat += cs[i].n_lat;
		free(cs[i].lat);
	}
	r->seconds += seconds;
	free(cs);
}

static void finish(struct result *r)
{
	qsort(r->lat, r->n_lat, sizeof(double), cmp_double);
	r->rate = r->seconds > 0 ? (double)r->ok / r->seconds : 0;
	if (r->n_lat) {
		r->p50_ms = r->lat[(r->n_lat - 1) / 2] * 1e3;
		r->p99_ms = r->lat[(size_t)((double)(r->n_lat - 1) * 0.99)] * 1e3;
	}
	free(r->lat);
	r->lat = NULL;
}

static void print_result(const char *what, unsigned n, const struct result *r)
{
	printf("  %-7s N=%-3u %8.1f /s   p50 %7.2f ms   p99 %7.2f ms   (%lu ok, %lu failed",
	       what, n, r->rate, r->p50_ms, r->p99_ms, r->ok, r->failed);
	if (r->failed)
		printf(", last status %d", r->last_status);
	printf(")\n");
}

/*
 * Both servers run side by side; the clients alternate between them in slices
 * of SLICE_S (each after its own warm-up), so that both see the same machine
 * load even when other work comes and goes.
 */
#define SLICE_S 1.0

static void throughput(void)
{
	bool both = !opt.only || !strcmp(opt.only, "throughput");
	bool bare_on = both || !strcmp(opt.only, "bare");
	bool broker_on = both || !strcmp(opt.only, "broker");
	unsigned slices = (unsigned)(opt.seconds / SLICE_S + 0.5);
	if (slices == 0)
		slices = 1;
	printf("throughput: %u x %.1f s per server in alternating slices (%.1f s warm-up each), "
	       "broker workers %u, store in %s\n",
	       slices, SLICE_S, WARMUP_S, opt.workers, work);
	for (size_t i = 0; i < opt.n_threads; i++) {
		unsigned n = opt.threads[i];
		struct result rb = { 0 }, rk = { 0 };
		struct lg_bare s;
		struct broker b;
		if (bare_on)
			bare_start(&s);
		if (broker_on)
			broker_start(&b);
		for (unsigned k = 0; k < slices; k++) {
			if (bare_on)
				run_slice(s.port, n, SLICE_S, &rb);
			if (broker_on)
				run_slice(b.port, n, SLICE_S, &rk);
		}
		if (broker_on)
			broker_stop(&b);
		if (bare_on)
			lg_bare_stop(&s);
		finish(&rb);
		finish(&rk);
		if (bare_on)
			print_result("bare", n, &rb);
		if (broker_on)
			print_result("broker", n, &rk);
		if (bare_on && broker_on && rb.rate > 0)
			printf("  ratio   N=%-3u releases/s / bare handshakes/s = %.2f (goal >= 0.50)\n",
			       n, rk.rate / rb.rate);
		fflush(stdout);
	}
}

/* ---- cost split on one thread ---- */

#define SPLIT_S 0.5

/* Calls fn repeatedly for about SPLIT_S seconds; returns microseconds per call. */
static double time_us(void (*fn)(void *), void *arg)
{
	unsigned long n = 0;
	double t0 = lg_mono(), t;
	do {
		fn(arg);
		n++;
		t = lg_mono();
	} while (t - t0 < SPLIT_S);
	return (t - t0) / (double)n * 1e6;
}

struct split_ctx {
	struct tdc_verifier *v;
	struct tdc_collateral coll;
	const struct agent *a;
	struct tdc_store *store;
	const uint8_t *quote;
	size_t quote_len;
};

static void s_self_issued(void *arg)
{
	struct split_ctx *s = arg;
	if (tdc_ratls_cert_self_issued(s->a->cert, NULL) < 0)
		die("self-issued check", NULL);
}

static void s_self_signed(void *arg)
{
	struct split_ctx *s = arg;
	if (tdc_ratls_cert_self_signed(s->a->cert, NULL) < 0)
		die("self-signed check", NULL);
}

/* What the broker does per request (decide.c): evidence, binding, quote parse. */
static void s_cert_check(void *arg)
{
	struct split_ctx *s = arg;
	struct tdc_ratls_evidence ev;
	struct tdc_quote q;
	if (tdc_ratls_cert_binding(s->a->cert, NULL, 0, &ev, NULL) < 0 ||
	    tdc_ratls_check_quote(&ev, &q, NULL) < 0)
		die("evidence check", NULL);
}

static void s_verify(void *arg)
{
	struct split_ctx *s = arg;
	struct tdc_verdict d = { 0 };
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_verify_quote(s->v, s->quote, s->quote_len, &s->coll, NOW, &d, &e) < 0)
		die("verify", &e);
	tdc_verdict_free(&d);
}

/* What the broker's kbs_quote_fmspc does on every request to pick the collateral:
 * the quote's PEM chain through OpenSSL, then the PCK leaf's SGX extension. */
static void s_fmspc(void *arg)
{
	struct split_ctx *s = arg;
	struct tdc_quote q;
	struct tdc_pck_ext ext;
	STACK_OF(X509) *chain = NULL;
	if (tdc_quote_parse(s->quote, s->quote_len, &q, NULL) < 0 ||
	    tdc_pem_chain_parse(tdc_rd_ptr(&q.cert_data), tdc_rd_len(&q.cert_data), 0, &chain,
				NULL) < 0 ||
	    sk_X509_num(chain) < 2 || tdc_pck_ext_parse(sk_X509_value(chain, 0), &ext, NULL) < 0)
		die("PCK chain", NULL);
	sk_X509_pop_free(chain, X509_free);
}

static void s_coll_load(void *arg)
{
	(void)arg;
	struct tdc_collateral c;
	if (tdc_collateral_load(p_coll, &c, NULL) < 0)
		die("collateral", NULL);
	tdc_collateral_free(&c);
}

static void s_policy(void *arg)
{
	struct split_ctx *s = arg;
	char *pj = NULL;
	struct tdc_policy *p = NULL;
	if (tdc_store_policy_get(s->store, SECRET_ID, &pj, NULL) < 0 || !pj ||
	    tdc_policy_parse(pj, strlen(pj), &p, NULL) < 0)
		die("policy", NULL);
	free(pj);
	tdc_policy_free(p);
}

static void s_secret(void *arg)
{
	struct split_ctx *s = arg;
	struct tdc_secret sec;
	if (tdc_store_secret_get(s->store, SECRET_ID, &sec, NULL) < 0)
		die("secret", NULL);
	tdc_secret_free(&sec);
}

static void s_audit(void *arg)
{
	struct split_ctx *s = arg;
	struct tdc_audit_record rec = { .time = NOW,
					.request_id = "00112233445566778899aabbccddeeff",
					.secret_id = SECRET_ID,
					.peer = "127.0.0.1:40000",
					.claims_digest = "-",
					.verdict = "UpToDate",
					.decision = TDC_AUDIT_RELEASED,
					.reason = "ok: bench" };
	if (tdc_store_audit_append(s->store, &rec, NULL, NULL) < 0)
		die("audit", NULL);
}

static void s_handshake(void *arg)
{
	struct split_ctx *s = arg;
	static struct lg_bare srv;
	static bool started;
	if (!arg) {
		if (started)
			lg_bare_stop(&srv);
		started = false;
		return;
	}
	if (!started) {
		bare_start(&srv);
		started = true;
	}
	int fd = tcp_connect(srv.port);
	SSL *ssl = SSL_new(s->a->ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1 ||
	    SSL_write(ssl, request, (int)sizeof(request) - 1) != (int)sizeof(request) - 1 ||
	    read_response(ssl) != 200)
		die("bare handshake", NULL);
	SSL_free(ssl);
	close_rst(fd);
}

static void cost_split(void)
{
	struct split_ctx s = { 0 };
	struct tdc_error e;
	struct tdc_ratls_evidence ev;
	struct tdc_verifier_stats st0, st1;
	const uint8_t *root;
	size_t root_len;

	tdc_error_clear(&e);
	s.a = &agents[0];
	tdc_sim_root_der(pki, &root, &root_len);
	struct tdc_verifier_opts vo = { .test_root_der = root, .test_root_der_len = root_len };
	if (tdc_verifier_new(&vo, &s.v, &e) < 0 || tdc_collateral_load(p_coll, &s.coll, &e) < 0 ||
	    tdc_ratls_cert_evidence(s.a->cert, &ev, &e) < 0 ||
	    tdc_store_open(p_db, p_mk, &s.store, &e) < 0)
		die("split set-up", &e);
	s.quote = tdc_rd_ptr(&ev.quote);
	s.quote_len = tdc_rd_len(&ev.quote);

	printf("cost split, one thread (microseconds per call):\n");
	double t_cold0 = lg_mono();
	s_verify(&s);
	double cold = (lg_mono() - t_cold0) * 1e6;
	tdc_verifier_stats(s.v, &st0);
	double warm = time_us(s_verify, &s);
	tdc_verifier_stats(s.v, &st1);
	double hs = time_us(s_handshake, &s);
	s_handshake(NULL);
	printf("  bare TLS 1.3 mutual connection, client+server  %8.1f  (both sides on this core)\n",
	       hs);
	printf("  handshake callback: P-256, self-issued          %8.1f\n",
	       time_us(s_self_issued, &s));
	printf("  self-signature check                            %8.1f  (not on the release path: "
	       "offline checks only)\n",
	       time_us(s_self_signed, &s));
	printf("  evidence: extension + binding + quote parse     %8.1f\n",
	       time_us(s_cert_check, &s));
	printf("  quote verification, cold (first call)           %8.1f\n", cold);
	printf("  quote verification, warm, same quote again      %8.1f  (cache: collateral %lu hits "
	       "%lu misses, PCK %lu hits %lu misses, QE report %lu hits %lu misses)\n",
	       warm, (unsigned long)(st1.collateral_hits - st0.collateral_hits),
	       (unsigned long)(st1.collateral_misses - st0.collateral_misses),
	       (unsigned long)(st1.pck_hits - st0.pck_hits),
	       (unsigned long)(st1.pck_misses - st0.pck_misses),
	       (unsigned long)(st1.qe_report_hits - st0.qe_report_hits),
	       (unsigned long)(st1.qe_report_misses - st0.qe_report_misses));
	printf("  PCK chain parse for the FMSPC                   %8.1f  (the broker caches it by content)\n",
	       time_us(s_fmspc, &s));
	printf("  collateral bundle load from the directory       %8.1f  (broker keeps it in memory)\n",
	       time_us(s_coll_load, &s));
	printf("  store: policy get + parse                       %8.1f\n", time_us(s_policy, &s));
	printf("  store: secret get (AES-GCM open)                %8.1f\n", time_us(s_secret, &s));
	printf("  store: audit append, alone (one fsync)          %8.1f  (%s; concurrent appends share one)\n",
	       time_us(s_audit, &s), opt.dir);
	tdc_store_close(s.store);
	tdc_collateral_free(&s.coll);
	tdc_verifier_free(s.v);
	fflush(stdout);
}

/* ---- memory of a separate broker process with many connections ---- */

static double cpu_seconds(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long ut = 0, stt = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
		return -1;
	return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

/* Waits until the broker has used no CPU for 300 ms (it finished the handshakes). */
static void settle(pid_t pid)
{
	double last = cpu_seconds(pid);
	for (int i = 0; i < 50; i++) {
		usleep(300 * 1000);
		double c = cpu_seconds(pid);
		if (c == last)
			return;
		last = c;
	}
}

static pid_t kbs_spawn(int *port)
{
	char cfg[700], log[700];
	path_in(cfg, sizeof(cfg), "kbs.json");
	path_in(log, sizeof(log), "kbs.log");
	FILE *f = fopen(cfg, "w");
	if (!f)
		die(cfg, NULL);
	fprintf(f,
		"{\"listen\":\"127.0.0.1:0\",\"cert\":\"%s\",\"key\":\"%s\",\"db\":\"%s\","
		"\"master_key\":\"%s\",\"collateral_dir\":\"%s\",\"admin_socket\":\"\","
		"\"allow_simulator_root\":\"%s\",\"at\":\"@%lld\",\"workers\":%u,"
		"\"max_connections\":%u,\"max_connections_per_source\":%u}\n",
		p_cert, p_key, p_db, p_mk, p_coll, p_root, (long long)NOW, opt.workers,
		2 * opt.idle + 64, 2 * opt.idle + 64);
	fclose(f);
	unlink(log);
	pid_t pid = fork();
	if (pid < 0)
		die("fork", NULL);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		execl(opt.kbs, opt.kbs, "--config", cfg, (char *)NULL);
		_exit(127);
	}
	/* the port from the "listening" log line */
	for (int i = 0; i < 100; i++) {
		char buf[8192];
		usleep(50 * 1000);
		FILE *l = fopen(log, "r");
		if (!l)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, l);
		fclose(l);
		buf[n] = 0;
		char *p = strstr(buf, "\"port\":");
		if (p && strstr(buf, "\"event\":\"listening\"")) {
			*port = atoi(p + 7);
			return pid;
		}
	}
	kill(pid, SIGTERM);
	die("tdcrypt-kbs did not start (see its log in the work directory)", NULL);
	return -1;
}

struct held {
	int fd;
	SSL *ssl;
};

/* Opens n connections; with_request: one keep-alive release on each. */
static unsigned open_many(int port, unsigned n, bool with_request, struct held *h)
{
	unsigned ok = 0;
	for (unsigned i = 0; i < n; i++) {
		h[i].fd = tcp_connect(port);
		h[i].ssl = NULL;
		if (h[i].fd < 0)
			continue;
		h[i].ssl = SSL_new(agents[i % n_agents].ctx);
		SSL_set_fd(h[i].ssl, h[i].fd);
		if (SSL_connect(h[i].ssl) != 1)
			continue;
		if (with_request &&
		    (SSL_write(h[i].ssl, request_keepalive, (int)sizeof(request_keepalive) - 1) !=
			     (int)sizeof(request_keepalive) - 1 ||
		     read_response(h[i].ssl) != 200))
			continue;
		ok++;
	}
	ERR_clear_error();
	return ok;
}

static void close_many(struct held *h, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		SSL_free(h[i].ssl);
		if (h[i].fd >= 0)
			close_rst(h[i].fd);
	}
	ERR_clear_error();
}

static void memory(void)
{
	int port;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < 2 * (rlim_t)opt.idle + 64)
		fprintf(stderr, "bench-kbs: RLIMIT_NOFILE %lu may be too low for %u connections\n",
			(unsigned long)rl.rlim_cur, opt.idle);
	pid_t pid = kbs_spawn(&port);
	struct held *h = calloc(opt.idle, sizeof(*h));
	printf("memory: %s as a separate process (pid %d, %u workers), %u connections\n", opt.kbs,
	       (int)pid, opt.workers, opt.idle);
	/* one release first, so that the verifier cache, the collateral and SQLite are warm */
	open_many(port, 1, true, h);
	close_many(h, 1);
	settle(pid);
	long base = lg_status_kib(pid, "VmRSS");
	printf("  idle broker after one release:        VmRSS %6ld KiB\n", base);

	double t0 = lg_mono();
	unsigned ok = open_many(port, opt.idle, false, h);
	double t1 = lg_mono();
	settle(pid);
	long rss = lg_status_kib(pid, "VmRSS"), hwm = lg_status_kib(pid, "VmHWM");
	printf("  %u/%u handshaken idle connections:  VmRSS %6ld KiB  VmHWM %6ld KiB  "
	       "(%.1f KiB per connection; opened in %.1f s)\n",
	       ok, opt.idle, rss, hwm, (double)(rss - base) / (ok ? ok : 1), t1 - t0);
	close_many(h, opt.idle);
	settle(pid);

	t0 = lg_mono();
	ok = open_many(port, opt.idle, true, h);
	t1 = lg_mono();
	settle(pid);
	rss = lg_status_kib(pid, "VmRSS");
	hwm = lg_status_kib(pid, "VmHWM");
	printf("  %u/%u connections, one release each, kept alive:  VmRSS %6ld KiB  VmHWM %6ld KiB  "
	       "(%.1f KiB per connection; %.1f s)\n",
	       ok, opt.idle, rss, hwm, (double)(rss - base) / (ok ? ok : 1), t1 - t0);
	printf("  goal: < 262144 KiB (256 MiB) -> %s\n", hwm < 262144 ? "met" : "NOT met");
	close_many(h, opt.idle);
	settle(pid);

	/* floods: does the memory come back once they are over? */
	usleep(1500 * 1000);
	long idle = lg_status_kib(pid, "VmRSS"), worst = 0;
	printf("  floods of %u connections (handshake + one release each, all held, then closed):\n",
	       opt.idle);
	printf("    before: VmRSS %6ld KiB\n", idle);
	for (int f = 1; f <= 4; f++) {
		ok = open_many(port, opt.idle, true, h);
		long peak = lg_status_kib(pid, "VmRSS");
		close_many(h, opt.idle);
		settle(pid);
		usleep(1500 * 1000); /* the broker trims at most once a second */
		rss = lg_status_kib(pid, "VmRSS");
		worst = rss > worst ? rss : worst;
		printf("    after flood %d (%u ok): VmRSS %6ld KiB during, %6ld KiB after (%.2fx idle)\n",
		       f, ok, peak, rss, (double)rss / (double)base);
	}
	printf("  goal: after a flood within 1.2x the idle broker (%ld KiB) -> %s (worst %.2fx)\n",
	       base, (double)worst <= 1.2 * (double)base ? "met" : "NOT met",
	       (double)worst / (double)base);
	free(h);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	fflush(stdout);
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: bench-kbs [--seconds S] [--threads N,N..] [--workers W] [--dir DIR]\n"
		"                 [--only throughput|bare|broker|split|rss] [--kbs PATH] [--idle N]\n"
		"  --threads  client threads per phase (default 2*cores and 64)\n"
		"  --dir      where the temporary store lives (default /tmp; its fsync cost counts)\n"
		"  --kbs      tdcrypt-kbs binary: also measure its RSS with --idle connections\n");
	exit(2);
}

static void parse_threads(const char *s)
{
	opt.n_threads = 0;
	while (*s && opt.n_threads < 8) {
		char *end;
		unsigned long n = strtoul(s, &end, 10);
		if (end == s || n == 0 || n > MAX_THREADS)
			usage();
		opt.threads[opt.n_threads++] = (unsigned)n;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			usage();
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		bool v = i + 1 < argc;
		if (!strcmp(argv[i], "--seconds") && v)
			opt.seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && v)
			parse_threads(argv[++i]);
		else if (!strcmp(argv[i], "--workers") && v)
			opt.workers = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dir") && v)
			opt.dir = argv[++i];
		else if (!strcmp(argv[i], "--only") && v)
			opt.only = argv[++i];
		else if (!strcmp(argv[i], "--kbs") && v)
			opt.kbs = argv[++i];
		else if (!strcmp(argv[i], "--idle") && v)
			opt.idle = (unsigned)atoi(argv[++i]);
		else
			usage();
	}
	if (opt.seconds <= 0 || opt.workers == 0 || opt.idle == 0 || opt.idle > 20000)
		usage();
	if (opt.n_threads == 0) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		opt.threads[0] = (unsigned)(2 * (cores > 0 ? cores : 1));
		opt.threads[1] = 64;
		opt.n_threads = opt.threads[0] == 64 ? 1 : 2;
	}
	signal(SIGPIPE, SIG_IGN);

	setup_files();
	unsigned need = 1;
	for (size_t i = 0; i < opt.n_threads; i++)
		need = opt.threads[i] > need ? opt.threads[i] : need;
	double t0 = lg_mono();
	for (n_agents = 0; n_agents < need;)
		agent_make(&agents[n_agents++]);
	printf("set-up: %zu RA-TLS agent certificates (sim quote v4, P-256) in %.2f s\n", n_agents,
	       lg_mono() - t0);
	fflush(stdout);

	if (!opt.only || !strcmp(opt.only, "bare") || !strcmp(opt.only, "broker") ||
	    !strcmp(opt.only, "throughput"))
		throughput();
	if (!opt.only || !strcmp(opt.only, "split"))
		cost_split();
	if (opt.kbs && (!opt.only || !strcmp(opt.only, "rss")))
		memory();

	agents_free();
	tdc_sim_pki_free(pki);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
	if (strncmp(work, opt.dir, strlen(opt.dir)) == 0 && system(cmd) != 0)
		fprintf(stderr, "bench-kbs: cannot remove %s\n", work);
	return 0;
}
