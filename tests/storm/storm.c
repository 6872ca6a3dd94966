/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A boot storm (issue 9): many TDs boot at once and each fetches its key from one or
 * more tdcrypt-kbs brokers on 127.0.0.1, --concurrency at a time, through the agent's
 * own client: tdc_agent_fetch (rounds over the brokers, jittered exponential backoff,
 * `busy` and lost connections retried, refusals not) and tdc_agent_attempt for each
 * connection. Agent i starts its broker list at broker i mod n, as a fleet behind DNS
 * round robin would, so that several brokers share the load.
 *
 * Each agent has its own P-256 key and its own simulator quote binding it (the
 * `tdcrypt sim init` directory's PKI and TD), made before the clock starts (about 25 KiB
 * each; --lazy: made when the agent starts, so memory stays bounded by the concurrency). Its sockets are bound to one of --sources loopback
 * addresses 127.0.0.2.. (127.0.0.0/8 is all loopback), so that the broker's per-source
 * limits see a fleet rather than one host.
 *
 * Bounded: at most --agents agents (<= 100,000), --concurrency (<= 4,096) at once; no
 * agent starts after --deadline seconds and every attempt ends by then. Connects to
 * 127.0.0.1 only.
 *
 * --bare KEY: the same storm against the bare TLS 1.3 mutual-handshake server of
 * bench/loadgen.c (certificate --broker-cert, key KEY) instead of brokers: the rate a
 * release is compared with.
 *
 * --json FILE: per agent whether it got the key, its attempts, how many of them were
 * unsettled (finished the handshake, then no answer or `internal`: a broker that made the
 * release's audit record durable may have died or failed before the key went out),
 * latency (agent start to key), the broker that released
 * it and the claims digest that the broker's audit record carries (SHA-256 of the TD
 * report in its quote); totals (completion time, releases/s, p50/p99, lost, duplicates,
 * busy answers, errors by class per attempt). --progress: releases per broker so far,
 * every 50 ms on stderr, for a test that acts mid-storm.
 * Exit status: 0 every agent got the (expected) key, 1 not, 2 usage or set-up error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "loadgen.h"
#include "tdcrypt/agent.h"
#include "tdcrypt/quote.h"
#include "tdcrypt/ratls.h"
#include "tdcrypt/sim.h"
#include "util/util.h"

#define MAX_AGENTS 100000u
#define MAX_CONCURRENCY 4096u
#define MAX_SOURCES 250u
#define THREAD_STACK (512u * 1024u)
#define TD_JSON_MAX (8u * 1024u)
#define MAX_CLASSES 32

static struct {
	struct tdc_agent_config base; /* brokers, pin, secret, timeouts, backoff */
	unsigned agents, concurrency, sources;
	double deadline_s;
	const char *sim_dir, *broker_cert, *bare_key, *json;
	bool lazy, verbose, progress;
	uint8_t expect[TDC_MAX_RELEASED_KEY];
	size_t expect_len;
	bool has_expect;
} opt = { .agents = 100, .concurrency = 10, .deadline_s = 60 };

static struct tdc_sim_pki *pki;
static struct tdc_sim_opts *sim;
static int64_t now_unix;
static char *body; /* the agent's request body, the same for all */

/* an identity made before the clock starts, until its agent runs: kept as objects, since
 * decoding a key again goes through OpenSSL 3.0's decoders and their locks, which cost the
 * load generator more than its handshake */
struct ident {
	EVP_PKEY *key;
	X509 *cert;
};
static struct ident *idents;

struct result {
	double t_start, t_end;
	uint32_t attempts, busy;
	uint32_t unsettled; /* attempts past the handshake, then no answer or `internal` */
	uint8_t got;   /* releases received (the agent stops at the first) */
	int8_t broker; /* the broker that released, -1 */
	uint8_t exit;  /* enum tdc_agent_exit */
	bool started, wrong_key;
	char last_error[40];
	uint8_t digest[32];
};
static struct result *results;

static atomic_uint next_agent, agents_done;
static atomic_ulong busy_total, attempts_total, unsettled_total;
static atomic_ulong released_by[TDC_AGENT_MAX_BROKERS];
static double t_zero, t_deadline;

static struct {
	char name[40];
	unsigned long n;
} classes[MAX_CLASSES];
static size_t n_classes;
static pthread_mutex_t class_lock = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what, const struct tdc_error *e)
{
	char buf[512];
	fprintf(stderr, "storm: %s%s%s\n", what, e ? ": " : "",
		e ? tdc_error_format(e, buf, sizeof(buf)) : "");
	ERR_print_errors_fp(stderr);
	exit(2);
}

static void count_class(const char *name)
{
	pthread_mutex_lock(&class_lock);
	for (int pass = 0; pass < 2; pass++) {
		size_t i = 0;
		while (i < n_classes && strcmp(classes[i].name, name) != 0)
			i++;
		if (i == n_classes && n_classes >= MAX_CLASSES - 1 && pass == 0) {
			name = "other"; /* the last slot takes the rest */
			continue;
		}
		if (i == n_classes)
			snprintf(classes[n_classes++].name, sizeof(classes[0].name), "%s", name);
		classes[i].n++;
		break;
	}
	pthread_mutex_unlock(&class_lock);
}

/* What went wrong with one attempt: the broker's reason code when it gave one,
 * otherwise what the client saw. */
static const char *classify(int r, const struct tdc_agent_reply *rep, const struct tdc_error *e)
{
	const char *why = e->reason ? e->reason : "";
	if (rep->error[0])
		return rep->error;
	if (strstr(why, "timed out"))
		return "timeout";
	if (r == TDC_ATTEMPT_NO_NETWORK)
		return !strncmp(why, "cannot connect", 14) || !strncmp(why, "cannot resolve", 14)
			       ? "connect_failed"
			       : "connection_lost";
	if (r == TDC_ATTEMPT_BAD_BROKER)
		return "bad_broker";
	if (!strncmp(why, "connection lost", 15))
		return "connection_lost";
	return why[0] ? why : "bad_response";
}

/* ---- identities ---- */

/* The audit record's claims digest: SHA-256 of the TD report as carried in the quote. */
static void claims_digest(X509 *cert, uint8_t out[32])
{
	struct tdc_ratls_evidence ev;
	struct tdc_quote q;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_ratls_cert_evidence(cert, &ev, &e) < 0 ||
	    tdc_quote_parse(tdc_rd_ptr(&ev.quote), tdc_rd_len(&ev.quote), &q, &e) < 0)
		die("own quote", &e);
	struct tdc_rd sb = q.signed_bytes, rest;
	sb.pos = 0;
	if (tdc_rd_skip(&sb, TDC_QUOTE_HEADER_SIZE + (q.version >= 5 ? 6u : 0u), "header", &e) < 0)
		die("own quote", &e);
	tdc_rd_rest(&sb, &rest);
	SHA256(tdc_rd_ptr(&rest), tdc_rd_len(&rest), out);
}

static void identity_new(unsigned i, EVP_PKEY **key, X509 **cert)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	if (lg_identity_make(pki, sim, now_unix, key, cert, &e) < 0)
		die("agent identity", &e);
	claims_digest(*cert, results[i].digest);
}

static void *ident_worker(void *arg)
{
	(void)arg;
	for (;;) {
		unsigned i = atomic_fetch_add(&next_agent, 1);
		if (i >= opt.agents)
			return NULL;
		identity_new(i, &idents[i].key, &idents[i].cert);
	}
}

static void identity_take(unsigned i, EVP_PKEY **key, X509 **cert)
{
	*key = idents[i].key;
	*cert = idents[i].cert;
	idents[i].key = NULL;
	idents[i].cert = NULL;
}

/* ---- one agent ---- */

struct agent_run {
	SSL_CTX *ctx;
	struct tdc_agent_config c; /* its own broker order and deadline */
	unsigned index, rot;
	struct sockaddr_in src;
	bool connected; /* this attempt finished its handshake */
	struct result *res;
};

static int bind_source(void *arg, int fd)
{
	struct agent_run *a = arg;
	int one = 1;
	/* the port is picked at connect time, per destination: no early exhaustion */
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	return bind(fd, (struct sockaddr *)&a->src, sizeof(a->src));
}

static void on_mark(void *arg, const char *event)
{
	struct agent_run *a = arg;
	if (!strcmp(event, "connected"))
		a->connected = true;
}

static void agent_log(void *arg, int level, const char *msg)
{
	struct agent_run *a = arg;
	if (level == 0)
		fprintf(stderr, "storm: agent %u: %s\n", a->index, msg);
}

static int attempt(void *arg, size_t i, int64_t deadline_ms, struct tdc_agent_reply *reply,
		   struct tdc_error *e)
{
	struct agent_run *a = arg;
	struct tdc_agent_events ev = { .socket = bind_source, .mark = on_mark, .arg = a };
	a->connected = false;
	int r = tdc_agent_attempt(a->ctx, &a->c.brokers[i], a->c.secret_id, body,
				  tdc_agent_real_clock(), deadline_ms, a->c.connect_timeout_ms, &ev,
				  reply, e);
	a->res->attempts++;
	atomic_fetch_add(&attempts_total, 1);
	if (r == TDC_ATTEMPT_OK) {
		size_t b = (i + a->rot) % a->c.n_brokers;
		a->res->got++;
		a->res->broker = (int8_t)b;
		atomic_fetch_add(&released_by[b], 1);
		return r;
	}
	/* the broker may have made the release's audit record durable and then lost the answer
	 * (a crash) or failed after it (`internal`, e.g. a database that went away as the
	 * commit returned): the audit may then hold more records for this agent than keys */
	if (a->connected && (reply->http_status == 0 || reply->http_status == 500)) {
		a->res->unsettled++;
		atomic_fetch_add(&unsettled_total, 1);
	}
	const char *cls = classify(r, reply, e);
	if (!strcmp(cls, "busy")) {
		a->res->busy++;
		atomic_fetch_add(&busy_total, 1);
	}
	snprintf(a->res->last_error, sizeof(a->res->last_error), "%s", cls);
	count_class(cls);
	return r;
}

/*
 * The agent's TLS context (tdc_agent_tls_ctx), made once per worker thread and given each
 * agent's own key and certificate in turn: SSL_CTX_new costs more than the client's
 * whole handshake in OpenSSL 3.0, and on a shared machine the load generator's CPU is
 * taken from the brokers it measures. A real agent makes one context per boot.
 */
static SSL_CTX *agent_ctx(SSL_CTX **ctx, EVP_PKEY *key, X509 *cert)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	if (!*ctx) {
		if (tdc_agent_tls_ctx(&opt.base, key, cert, ctx, &e) < 0)
			die("agent TLS context", &e);
	} else if (SSL_CTX_use_certificate(*ctx, cert) != 1 ||
		   SSL_CTX_use_PrivateKey(*ctx, key) != 1 || SSL_CTX_check_private_key(*ctx) != 1) {
		die("agent TLS context", NULL);
	}
	return *ctx;
}

static void run_agent(unsigned i, SSL_CTX **ctx)
{
	struct result *res = &results[i];
	struct agent_run *a = calloc(1, sizeof(*a));
	struct tdc_agent_events log_ev = { .log = agent_log };
	struct tdc_agent_reply reply;
	struct tdc_error e;
	EVP_PKEY *key;
	X509 *cert;

	if (!a)
		die("out of memory", NULL);
	tdc_error_clear(&e);
	if (opt.lazy)
		identity_new(i, &key, &cert);
	else
		identity_take(i, &key, &cert);
	a->ctx = agent_ctx(ctx, key, cert);
	a->c = opt.base;
	a->index = i;
	a->res = res;
	a->rot = i % opt.base.n_brokers;
	for (size_t k = 0; k < opt.base.n_brokers; k++)
		a->c.brokers[k] = opt.base.brokers[(k + a->rot) % opt.base.n_brokers];
	a->src.sin_family = AF_INET;
	a->src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + i % opt.sources);
	log_ev.arg = a;

	res->broker = -1;
	res->started = true;
	res->t_start = lg_mono();
	double left = t_deadline - res->t_start;
	a->c.total_timeout_ms = left > 0.001 ? (uint32_t)(left * 1000) : 1;
	res->exit = (uint8_t)tdc_agent_fetch(&a->c, tdc_agent_real_clock(), attempt, a,
					     opt.verbose ? &log_ev : NULL, &reply);
	res->t_end = lg_mono();
	if (res->exit == TDC_AGENT_EXIT_OK && opt.has_expect &&
	    (reply.key.len != opt.expect_len ||
	     CRYPTO_memcmp(reply.key.data, opt.expect, opt.expect_len) != 0))
		res->wrong_key = true;
	tdc_agent_reply_free(&reply);
	X509_free(cert);
	EVP_PKEY_free(key);
	free(a);
	atomic_fetch_add(&agents_done, 1);
}

static void *agent_worker(void *arg)
{
	SSL_CTX *ctx = NULL;
	(void)arg;
	for (;;) {
		unsigned i = atomic_fetch_add(&next_agent, 1);
		if (i >= opt.agents || lg_mono() >= t_deadline)
			break;
		run_agent(i, &ctx);
	}
	SSL_CTX_free(ctx);
	return NULL;
}

/* ---- set-up ---- */

static void load_sim(void)
{
	char path[4096];
	struct tdc_sim_td td;
	struct tdc_error e;
	uint8_t *buf;
	size_t len;
	tdc_error_clear(&e);
	snprintf(path, sizeof(path), "%s/pki", opt.sim_dir);
	if (tdc_sim_pki_load(path, &pki, &e) < 0)
		die(path, &e);
	snprintf(path, sizeof(path), "%s/td.json", opt.sim_dir);
	if (tdc_file_read(path, TD_JSON_MAX, &buf, &len, &e) < 0 ||
	    tdc_sim_td_parse(buf, len, &td, &e) < 0)
		die(path, &e);
	free(buf);
	if (!(sim = calloc(1, sizeof(*sim))))
		die("out of memory", NULL);
	/* the simulated TDX module: the directory's TD, the simulator's default RTMRs */
	tdc_sim_opts_default(sim, now_unix);
	memcpy(sim->td.mrtd, td.mrtd, 48);
	memcpy(sim->td.mrconfigid, td.mrconfigid, 48);
	memcpy(sim->td.mrowner, td.mrowner, 48);
	memcpy(sim->td.mrownerconfig, td.mrownerconfig, 48);
	memcpy(sim->td.td_attributes, td.td_attributes, 8);
	memcpy(sim->td.xfam, td.xfam, 8);
}

static void broker_pin(void)
{
	struct tdc_error e;
	FILE *f = fopen(opt.broker_cert, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	tdc_error_clear(&e);
	if (f)
		fclose(f);
	if (!x || tdc_spki_sha256(x, opt.base.pins[0], &e) < 0)
		die(opt.broker_cert, x ? &e : NULL);
	opt.base.n_pins = 1;
	X509_free(x);
}

static void add_broker(const char *s, size_t len)
{
	struct tdc_error e;
	struct tdc_agent_broker *b = &opt.base.brokers[opt.base.n_brokers];
	tdc_error_clear(&e);
	if (opt.base.n_brokers == TDC_AGENT_MAX_BROKERS)
		die("too many brokers (at most 8)", NULL);
	if (tdc_agent_broker_parse(s, len, b, &e) < 0)
		die("--brokers", &e);
	/* loopback only: this program makes load, it must not make it anywhere else */
	if (!b->is_ip || strcmp(b->host, "127.0.0.1") != 0)
		die("--brokers: only 127.0.0.1 is allowed", NULL);
	opt.base.n_brokers++;
}

static void parse_brokers(const char *s)
{
	while (*s) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		add_broker(s, len);
		s += len + (comma ? 1 : 0);
	}
}

static void set_expect_hex(const char *hex)
{
	struct tdc_error e;
	size_t n = strlen(hex);
	tdc_error_clear(&e);
	if (n == 0 || n % 2 || n / 2 > sizeof(opt.expect) ||
	    tdc_hex_decode(hex, n, opt.expect, n / 2, "--expect-key", &e) < 0)
		die("--expect-key: hex, at most 4096 bytes", NULL);
	opt.expect_len = n / 2;
	opt.has_expect = true;
}

static void set_expect_file(const char *path)
{
	struct tdc_error e;
	uint8_t *buf;
	size_t len;
	tdc_error_clear(&e);
	if (tdc_file_read(path, sizeof(opt.expect), &buf, &len, &e) < 0)
		die(path, &e);
	if (len == 0)
		die("--expect-key-file: empty", NULL);
	memcpy(opt.expect, buf, len);
	opt.expect_len = len;
	opt.has_expect = true;
	OPENSSL_cleanse(buf, len);
	free(buf);
}

static unsigned parse_uint(const char *s, unsigned lo, unsigned hi, const char *what)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "storm: %s: %u..%u\n", what, lo, hi);
		exit(2);
	}
	return (unsigned)v;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: storm --brokers 127.0.0.1:PORT[,..] | --bare KEY_PEM\n"
		"             --broker-cert PEM --sim-dir DIR --secret ID\n"
		"             [--agents N] [--concurrency C] [--deadline S] [--sources K]\n"
		"             [--attempt-timeout S] [--backoff INITIAL_MS,MAX_MS] [--lazy]\n"
		"             [--expect-key HEX | --expect-key-file F] [--json FILE|-] [--verbose]\n"
		"             [--progress]\n"
		"  --broker-cert  the brokers' certificate: the agents pin its key (SPKI SHA-256)\n"
		"  --sim-dir      a `tdcrypt sim init` directory (its PKI signs the quotes)\n"
		"  --sources      loopback source addresses 127.0.0.2.. (default C/64 + 1)\n"
		"  --bare KEY     storm the bare TLS 1.3 server (--broker-cert + KEY) instead\n"
		"  --progress     a line 'storm: progress R1 R2..' (releases per broker) every 50 ms\n"
		"defaults: 100 agents, 10 at once, 60 s; timeouts and backoff as the agent's\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	const char *brokers = NULL, *secret = NULL;
	tdc_agent_config_defaults(&opt.base);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--lazy")) {
			opt.lazy = true;
			continue;
		}
		if (!strcmp(a, "--verbose")) {
			opt.verbose = true;
			continue;
		}
		if (!strcmp(a, "--progress")) {
			opt.progress = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--brokers"))
			brokers = v;
		else if (!strcmp(a, "--bare"))
			opt.bare_key = v;
		else if (!strcmp(a, "--broker-cert"))
			opt.broker_cert = v;
		else if (!strcmp(a, "--sim-dir"))
			opt.sim_dir = v;
		else if (!strcmp(a, "--secret"))
			secret = v;
		else if (!strcmp(a, "--agents"))
			opt.agents = parse_uint(v, 1, MAX_AGENTS, "--agents");
		else if (!strcmp(a, "--concurrency"))
			opt.concurrency = parse_uint(v, 1, MAX_CONCURRENCY, "--concurrency");
		else if (!strcmp(a, "--deadline"))
			opt.deadline_s = parse_uint(v, 1, 3600, "--deadline");
		else if (!strcmp(a, "--sources"))
			opt.sources = parse_uint(v, 1, MAX_SOURCES, "--sources");
		else if (!strcmp(a, "--attempt-timeout"))
			opt.base.attempt_timeout_ms = 1000 * parse_uint(v, 1, 600, "--attempt-timeout");
		else if (!strcmp(a, "--backoff")) {
			unsigned lo, hi;
			if (sscanf(v, "%u,%u", &lo, &hi) != 2 || lo == 0 || lo > hi || hi > 600000)
				usage();
			opt.base.backoff_initial_ms = lo;
			opt.base.backoff_max_ms = hi;
		} else if (!strcmp(a, "--expect-key"))
			set_expect_hex(v);
		else if (!strcmp(a, "--expect-key-file"))
			set_expect_file(v);
		else if (!strcmp(a, "--json"))
			opt.json = v;
		else
			usage();
	}
	if (!opt.broker_cert || !opt.sim_dir || !secret || !brokers == !opt.bare_key)
		usage();
	if (strlen(secret) > TDC_AGENT_SECRET_ID_MAX)
		die("--secret: too long", NULL);
	snprintf(opt.base.secret_id, sizeof(opt.base.secret_id), "%s", secret);
	if (brokers)
		parse_brokers(brokers);
	if (!opt.sources)
		opt.sources = opt.concurrency / 64 + 1;
	if (opt.concurrency > opt.agents)
		opt.concurrency = opt.agents;
	if (opt.base.connect_timeout_ms > opt.base.attempt_timeout_ms)
		opt.base.connect_timeout_ms = opt.base.attempt_timeout_ms;
	opt.base.total_timeout_ms = (uint32_t)(opt.deadline_s * 1000);
	if (opt.base.attempt_timeout_ms > opt.base.total_timeout_ms)
		opt.base.attempt_timeout_ms = opt.base.total_timeout_ms;
}

/* ---- results ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct totals {
	double client_cpu_s; /* this process's CPU (user + system) during the storm */
	double server_cpu_s; /* of it, the bare server's thread (--bare); else -1 */
	double completion_s, rate, p50_ms, p99_ms, max_ms;
	unsigned got, lost, not_started, duplicates, wrong_key;
};

static void totals(struct totals *t)
{
	double *lat = calloc(opt.agents, sizeof(double)), last = t_zero;
	size_t n = 0;
	memset(t, 0, sizeof(*t));
	if (!lat)
		die("out of memory", NULL);
	for (unsigned i = 0; i < opt.agents; i++) {
		const struct result *r = &results[i];
		if (!r->started)
			t->not_started++;
		if (r->started && r->t_end > last)
			last = r->t_end;
		if (r->got > 1)
			t->duplicates++;
		if (r->wrong_key)
			t->wrong_key++;
		if (r->got == 0 || r->wrong_key) {
			t->lost++;
			continue;
		}
		t->got++;
		lat[n++] = (r->t_end - r->t_start) * 1e3;
	}
	t->completion_s = last - t_zero;
	t->rate = t->completion_s > 0 ? (double)t->got / t->completion_s : 0;
	qsort(lat, n, sizeof(double), cmp_double);
	if (n) {
		t->p50_ms = lat[(n - 1) / 2];
		t->p99_ms = lat[(size_t)((double)(n - 1) * 0.99)];
		t->max_ms = lat[n - 1];
	}
	free(lat);
}

/* A JSON string (the class names are the library's reason texts and the brokers' codes). */
static void put_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void write_json(FILE *f, const struct totals *t, double setup_s)
{
	fprintf(f, "{\"agents\":%u,\"concurrency\":%u,\"sources\":%u,\"deadline_s\":%g,"
		   "\"identities\":\"%s\",\"setup_s\":%.3f,\"target\":\"%s\",\"brokers\":[",
		opt.agents, opt.concurrency, opt.sources, opt.deadline_s,
		opt.lazy ? "lazy" : "upfront", setup_s, opt.bare_key ? "bare" : "brokers");
	for (size_t b = 0; b < opt.base.n_brokers; b++)
		fprintf(f, "%s{\"address\":\"%s:%u\",\"released\":%lu}", b ? "," : "",
			opt.base.brokers[b].host, opt.base.brokers[b].port,
			(unsigned long)atomic_load(&released_by[b]));
	fprintf(f,
		"],\n \"totals\":{\"got_key\":%u,\"completion_s\":%.3f,\"releases_per_s\":%.1f,"
		"\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,\"client_cpu_s\":%.2f,"
		"\"bare_server_cpu_s\":%.2f,"
		"\"lost\":%u,\"not_started\":%u,"
		"\"duplicates\":%u,\"wrong_key\":%u,\"attempts\":%lu,\"unsettled\":%lu,"
		"\"busy\":%lu,\"errors\":{",
		t->got, t->completion_s, t->rate, t->p50_ms, t->p99_ms, t->max_ms, t->client_cpu_s,
		t->server_cpu_s, t->lost, t->not_started, t->duplicates, t->wrong_key,
		(unsigned long)atomic_load(&attempts_total),
		(unsigned long)atomic_load(&unsettled_total), (unsigned long)atomic_load(&busy_total));
	for (size_t c = 0; c < n_classes; c++) {
		fprintf(f, "%s", c ? "," : "");
		put_str(f, classes[c].name);
		fprintf(f, ":%lu", classes[c].n);
	}
	fprintf(f, "}},\n \"per_agent\":[\n");
	for (unsigned i = 0; i < opt.agents; i++) {
		const struct result *r = &results[i];
		char hex[65];
		fprintf(f,
			"  {\"agent\":%u,\"got\":%s,\"releases\":%u,\"attempts\":%u,"
			"\"unsettled\":%u,\"busy\":%u,\"latency_ms\":%.2f,\"broker\":%d,"
			"\"result\":\"%s\",\"last_error\":",
			i, r->got && !r->wrong_key ? "true" : "false", r->got, r->attempts,
			r->unsettled, r->busy,
			r->started ? (r->t_end - r->t_start) * 1e3 : 0.0, r->got ? r->broker : -1,
			!r->started     ? "not_started"
			: r->wrong_key ? "wrong_key"
				       : tdc_agent_exit_name(r->exit));
		if (r->last_error[0])
			put_str(f, r->last_error);
		else
			fprintf(f, "null");
		fprintf(f, ",\"claims_digest\":\"%s\"}%s\n",
			tdc_hex_encode(r->digest, sizeof(r->digest), hex),
			i + 1 < opt.agents ? "," : "");
	}
	fprintf(f, "]}\n");
}

static void print_summary(const struct totals *t, double setup_s)
{
	fprintf(stderr,
		"storm: %u agents, %u at once, %u source addresses, %s (identities %s in %.1f s)\n"
		"storm: %u got the key in %.2f s: %.1f releases/s, p50 %.1f ms, p99 %.1f ms, "
		"max %.1f ms, load generator CPU %.1f s\n"
		"storm: lost %u (not started %u), duplicates %u, wrong key %u, attempts %lu "
		"(unsettled %lu), busy %lu\n",
		opt.agents, opt.concurrency, opt.sources, opt.bare_key ? "bare server" : "brokers",
		opt.lazy ? "lazy" : "made", setup_s, t->got, t->completion_s, t->rate, t->p50_ms,
		t->p99_ms, t->max_ms, t->client_cpu_s, t->lost, t->not_started, t->duplicates, t->wrong_key,
		(unsigned long)atomic_load(&attempts_total),
		(unsigned long)atomic_load(&unsettled_total), (unsigned long)atomic_load(&busy_total));
	if (t->server_cpu_s >= 0)
		fprintf(stderr, "storm: the bare server's thread used %.1f s CPU\n",
			t->server_cpu_s);
	for (size_t c = 0; c < n_classes; c++)
		fprintf(stderr, "storm:   %-24s %lu\n", classes[c].name, classes[c].n);
}

/* ---- main ---- */

/* One line of releases per broker so far, for a test that acts mid-storm (storm.sh kills a
 * broker once it has served some): the storm's own count, whatever state the brokers are in. */
static void progress(void)
{
	char line[256];
	size_t n = (size_t)snprintf(line, sizeof(line), "storm: progress");
	for (size_t b = 0; b < opt.base.n_brokers; b++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %lu",
				      (unsigned long)atomic_load(&released_by[b]));
	/* one write: a reader of the file never sees half a line */
	fprintf(stderr, "%s\n", line);
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void start_threads(unsigned n, void *(*fn)(void *), pthread_t *t)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&t[i], &attr, fn, NULL) != 0)
			die("cannot start threads (lower --concurrency)", NULL);
	pthread_attr_destroy(&attr);
}

int main(int argc, char **argv)
{
	struct tdc_error e;
	struct lg_bare bare;
	struct rlimit rl;
	tdc_error_clear(&e);
	parse_args(argc, argv);
	/* a broker that goes away mid-write must not take the whole storm with it */
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.concurrency + 64)
		die("RLIMIT_NOFILE too low for --concurrency", NULL);
	now_unix = (int64_t)time(NULL);
	load_sim();
	broker_pin();
	if (opt.bare_key) {
		if (lg_bare_start(&bare, opt.broker_cert, opt.bare_key, opt.base.secret_id, &e) < 0)
			die("bare server", &e);
		char a[32];
		snprintf(a, sizeof(a), "127.0.0.1:%d", bare.port);
		add_broker(a, strlen(a));
	}
	if (tdc_agent_config_check(&opt.base, &e) < 0)
		die("agent configuration", &e);
	if (tdc_agent_request_body(&(struct tdc_agent_evidence){ 0 }, &body, &e) < 0)
		die("request body", &e);

	results = calloc(opt.agents, sizeof(*results));
	pthread_t *threads = calloc(opt.concurrency, sizeof(pthread_t));
	if (!results || !threads)
		die("out of memory", NULL);
	double t_setup = lg_mono();
	if (!opt.lazy) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		unsigned n = cores > 0 ? (unsigned)cores : 1;
		if (!(idents = calloc(opt.agents, sizeof(*idents))))
			die("out of memory", NULL);
		start_threads(n, ident_worker, threads);
		for (unsigned i = 0; i < n; i++)
			pthread_join(threads[i], NULL);
		atomic_store(&next_agent, 0);
	}
	double setup_s = lg_mono() - t_setup;

	double cpu0 = cpu_seconds(), bare_cpu0 = opt.bare_key ? lg_bare_cpu_seconds(&bare) : 0;
	t_zero = lg_mono();
	t_deadline = t_zero + opt.deadline_s;
	start_threads(opt.concurrency, agent_worker, threads);
	while (opt.progress && atomic_load(&agents_done) < opt.agents && lg_mono() < t_deadline) {
		progress();
		usleep(50 * 1000);
	}
	for (unsigned i = 0; i < opt.concurrency; i++)
		pthread_join(threads[i], NULL);
	if (opt.progress)
		progress();
	double cpu1 = cpu_seconds(), bare_cpu = -1;
	if (opt.bare_key) {
		bare_cpu = lg_bare_cpu_seconds(&bare) - bare_cpu0;
		lg_bare_stop(&bare);
	}

	struct totals t;
	totals(&t);
	/* the load generator's own CPU, without the bare server that shares the process */
	t.client_cpu_s = cpu1 - cpu0 - (bare_cpu > 0 ? bare_cpu : 0);
	t.server_cpu_s = bare_cpu;
	print_summary(&t, setup_s);
	if (opt.json) {
		FILE *f = strcmp(opt.json, "-") ? fopen(opt.json, "w") : stdout;
		if (!f)
			die(opt.json, NULL);
		write_json(f, &t, setup_s);
		if (f != stdout && fclose(f) != 0)
			die(opt.json, NULL);
	}
	for (unsigned i = 0; idents && i < opt.agents; i++) {
		X509_free(idents[i].cert);
		EVP_PKEY_free(idents[i].key);
	}
	free(idents);
	free(results);
	free(threads);
	free(body);
	free(sim);
	tdc_sim_pki_free(pki);
	OPENSSL_cleanse(opt.expect, sizeof(opt.expect));
	return t.lost == 0 ? 0 : 1;
}
