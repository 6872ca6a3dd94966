/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's event loop: one thread runs epoll over non-blocking sockets,
 * drives each connection's TLS 1.3 handshake and HTTP exchange as a state
 * machine, and keeps its deadlines in FIFO timer queues (one per timeout
 * length, so each stays sorted by construction). The slow parts of a request
 * (quote verification, collateral, policy, store, audit) run on a small
 * worker pool; results come back through an eventfd. No thread ever blocks
 * on a client. The store is not here: workers ask the keeper (keeper.c) over
 * their own channels, and the keeper also serves the admin socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "kbs/kbs-int.h"
#include "tdcrypt/ratls.h"
#include "util/util.h"
#include "util/wr.h"

/* A request without an event log fits IN_CAP; one with it needs up to IN_MAX. */
#define IN_CAP (TDC_MAX_HTTP_HEADER + 4096u)
#define IN_MAX (TDC_MAX_HTTP_HEADER + TDC_MAX_HTTP_BODY)
#define IDLE_MS 15000
#define LINGER_MS 2000
#define MAX_EVENTS 128
/*
 * Admission (PROTOCOL.md section 7). A handshake that has not finished after
 * STALLED_MS may be closed to make room for a new connection: a real agent
 * finishes in milliseconds, a client that holds slots without finishing loses
 * them first. When no slot can be made, a small busy lane answers `busy` over
 * TLS (server authentication only, no evidence read) so that agents back off;
 * beyond it connections are closed unanswered.
 */
#define STALLED_MS 1000
#define BUSY_MAX 32u
#define BUSY_PER_SOURCE 4u
/*
 * Memory after a flood: glibc keeps freed connection memory in its arenas, so the
 * broker's RSS stayed at its peak (bench-kbs: 146 MiB after 2,000 connections closed,
 * idle 13 MiB). When the connections fall to half of what they were, and at least
 * TRIM_MIN fewer, the loop gives the free pages back (malloc_trim), at most once a second.
 */
#define TRIM_MIN 256u
#define TRIM_EVERY_MS 1000
/* unauthenticated refusals into the audit trail: 10 at once, then 6 a minute */
#define SAMPLE_BURST 10u
#define SAMPLE_PER_MINUTE 6u

/*
 * The metrics listener (PROTOCOL.md section 9): plain HTTP, unauthenticated, so it is
 * kept small: at most OPS_MAX connections (more are closed at accept), a request of at
 * most OPS_IN bytes through the broker's HTTP parser, OPS_MS for the whole exchange.
 * /healthz asks the keeper whether the store answers at most every HEALTH_FRESH_MS.
 */
#define OPS_MAX 8u
#define OPS_IN 2048u
#define OPS_MS 2000
#define HEALTH_FRESH_MS 1000

enum kind { K_LISTEN, K_WAKE, K_CONN, K_CONTROL, K_OPS_LISTEN, K_OPS };
struct evsrc {
	enum kind kind;
};

enum cstate { S_HANDSHAKE, S_READ, S_WORK, S_WRITE, S_LINGER, S_DEAD };
enum tq { TQ_NONE = -1, TQ_HANDSHAKE = 0, TQ_10S, TQ_IDLE, TQ_LINGER, TQ__N };
/* rate-limited log lines, by kind */
enum rl { RL_REFUSED, RL_EVICTED, RL_HANDSHAKE, RL_BUSY, RL_UNAUTHENTICATED, RL__N };
static const char *const rl_name[RL__N] = { "connection_refused", "connection_evicted",
					     "handshake", "busy", "unauthenticated" };

struct conn {
	struct evsrc src;
	int fd;
	SSL *ssl;
	enum cstate st;
	char peer[64];
	uint8_t *in;
	size_t in_len, in_cap;
	struct tdc_secret out;
	size_t out_len, out_pos;
	bool close_after;
	bool busy_lane; /* answered busy after its handshake, holds no slot */
	unsigned nreq;
	uint32_t events;
	int64_t t0_ms, accepted_ms;
	/* where it comes from; its place in that source's list of handshakes */
	struct kbs_source *origin;
	struct conn *hs_prev, *hs_next;
	bool in_hs_list;
	X509 *refused_cert; /* the client certificate the handshake refused, for the audit */
	struct kbs_trust *trust; /* the trust anchor when it was accepted (reload: new ones) */
	/* timer */
	enum tq tq;
	int64_t deadline;
	struct conn *tprev, *tnext;
	/* all connections */
	struct conn *prev, *next;
	struct kbs_peer peer_state; /* used by the worker only while S_WORK */
};

/* The verifier and its trust anchor, shared by the connections accepted while it was
 * current: a reload makes a new one and the old goes with its last connection. Counted
 * by the loop thread only (workers use a job's reference, taken and dropped there). */
struct kbs_trust {
	unsigned refs;
	struct tdc_verifier *verifier;
	bool sim;
};

/* A connection to the metrics listener. */
enum ost { O_FREE, O_READ, O_HEALTH, O_WRITE };
struct ops_conn {
	struct evsrc src;
	int fd;
	enum ost st;
	uint8_t in[OPS_IN];
	size_t in_len;
	char *out;
	size_t out_len, out_pos;
	int64_t deadline;
};

struct job {
	struct job *next;
	struct conn *c;           /* NULL: audit only, no response */
	struct kbs_trust *trust;  /* with a decision to make */
	bool ping;                /* /healthz: does the store answer */
	bool ping_ok;
	char ping_why[200];
	enum kbs_reason preset;   /* KBS_OK: run the decision */
	char preset_detail[512];
	struct kbs_http_req req;
	bool has_req;
	char request_id[33];
	char peer[64];
	X509 *cert;
	bool sampled; /* unauthenticated, and taken as an audit sample */
	int64_t t0_ms;
	/* result */
	struct tdc_secret resp;
	size_t resp_len;
	bool close_after;
};

struct tq_list {
	struct conn *head, *tail;
};

struct tdc_kbs {
	struct tdc_kbs_config cfg;
	struct tdc_kbs_config given; /* as the caller gave it: what a reload compares with */
	struct tdc_kbs_hooks hooks;
	struct kbs_ctx ctx;          /* its collateral; the verifier is the trust's */
	struct kbs_trust *trust;     /* current: for connections accepted from now on */
	/* in-process mode only (tdc_kbs_new): the store and its keeper, as threads */
	struct tdc_store *store;
	struct kbs_keeper *keeper;
	int *keeper_fds; /* the keeper's ends of the channels */
	/* this side's ends: one per worker, and the control channel */
	int *chan;
	int control_fd;
	struct evsrc control_src;
	bool sandboxed;
	struct kbs_sandbox_report sandbox;
	SSL_CTX *ssl_ctx, *busy_ctx;
	int ep, spare_fd;
	struct evsrc listen_src, wake_src;
	int listen_fd, wake_fd;
	int port;
	char sim_sha[65];
	bool has_sim;
	volatile sig_atomic_t stop, drain_req;
	bool draining;
	size_t jobs_out; /* submitted, not yet back */
	/* the metrics listener */
	struct evsrc ops_src;
	int ops_fd, ops_port;
	struct ops_conn ops[OPS_MAX];
	bool health_ok, health_pending;
	int64_t health_ms;
	struct conn *conns;
	struct conn *dead;
	size_t nconns, nbusy;
	struct tq_list tq[TQ__N];
	int64_t tq_ms[TQ__N];
	/* admission */
	struct kbs_sources sources;
	struct kbs_metrics m;
	/* shared by the loop and the workers, under sample_lock */
	pthread_mutex_t sample_lock;
	struct kbs_bucket samples;
	uint64_t unaudited; /* unauthenticated refusals since the last sample */
	struct kbs_ratelog rl[RL__N];
	size_t trim_mark; /* most connections since the last trim */
	int64_t trim_ms;
	bool trim_due;
	/* workers */
	pthread_t *threads;
	unsigned nthreads;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *q_head, *q_tail;
	size_t q_len;
	bool w_stop;
	struct job *done;
};

/* ---- small helpers ---- */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_s(struct tdc_kbs *k)
{
	if (k->cfg.has_at)
		return k->cfg.at;
	return k->hooks.now ? k->hooks.now(k->hooks.arg) : 0;
}

static void emit(struct tdc_kbs *k, json_object *o)
{
	if (k->hooks.log)
		k->hooks.log(k->hooks.arg, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static json_object *log_obj(struct tdc_kbs *k, const char *level, const char *event)
{
	char ts[32];
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ts",
			       json_object_new_string(tdc_time_format(now_s(k), ts, sizeof(ts))));
	json_object_object_add(o, "level", json_object_new_string(level));
	json_object_object_add(o, "event", json_object_new_string(event));
	return o;
}

static void jstr(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v && *v ? json_object_new_string(v) : NULL);
}

static void log_conn(struct tdc_kbs *k, const char *level, const char *event, const char *peer,
		     const char *reason)
{
	json_object *o = log_obj(k, level, event);
	jstr(o, "peer", peer);
	jstr(o, "reason", reason);
	emit(k, o);
}

/* A line about a connection, unless its kind is over its rate: then only counted, and
 * the count is logged when the window ends (flush_suppressed). */
static bool log_allowed(struct tdc_kbs *k, enum rl kind)
{
	pthread_mutex_lock(&k->sample_lock);
	bool ok = kbs_ratelog_allow(&k->rl[kind], mono_ms());
	pthread_mutex_unlock(&k->sample_lock);
	if (!ok)
		atomic_fetch_add(&k->m.log_suppressed, 1);
	return ok;
}

static void log_limited(struct tdc_kbs *k, enum rl kind, const char *level, const char *event,
			const char *peer, const char *reason)
{
	if (log_allowed(k, kind))
		log_conn(k, level, event, peer, reason);
}

/*
 * Every authenticated decision is a durable audit record. Unauthenticated
 * refusals (failed handshakes, evidence or quotes that do not verify) are
 * anyone's to send, so they are counted and only sampled into the audit trail:
 * true if this one is a sample; *skipped is how many were left out before it.
 */
static bool audit_sample(struct tdc_kbs *k, uint64_t *skipped)
{
	pthread_mutex_lock(&k->sample_lock);
	bool take = kbs_bucket_take(&k->samples, mono_ms());
	*skipped = k->unaudited;
	k->unaudited = take ? 0 : k->unaudited + 1;
	pthread_mutex_unlock(&k->sample_lock);
	atomic_fetch_add(&k->m.unauthenticated, 1);
	atomic_fetch_add(take ? &k->m.audit_sampled : &k->m.audit_skipped, 1);
	return take;
}

/* force: at the end, whatever the windows */
static void flush_suppressed(struct tdc_kbs *k, bool force)
{
	int64_t now = force ? INT64_MAX / 2 : mono_ms();
	for (int i = 0; i < RL__N; i++) {
		pthread_mutex_lock(&k->sample_lock);
		uint64_t n = kbs_ratelog_due(&k->rl[i], now);
		pthread_mutex_unlock(&k->sample_lock);
		if (!n)
			continue;
		json_object *o = log_obj(k, "warning", "log_suppressed");
		jstr(o, "what", rl_name[i]);
		json_object_object_add(o, "count", json_object_new_int64((int64_t)n));
		json_object_object_add(o, "window_s",
				       json_object_new_int(KBS_RATELOG_WINDOW_MS / 1000));
		emit(k, o);
	}
}

static void ssl_err_text(char *out, size_t cap)
{
	unsigned long err, last = 0;
	while ((err = ERR_get_error()) != 0)
		last = err;
	if (last)
		ERR_error_string_n(last, out, cap);
	else
		snprintf(out, cap, "connection closed");
}

/* ---- trust ---- */

static struct kbs_trust *trust_get(struct kbs_trust *t)
{
	if (t)
		t->refs++;
	return t;
}

static void trust_put(struct kbs_trust *t)
{
	if (t && --t->refs == 0) {
		tdc_verifier_free(t->verifier);
		free(t);
	}
}

/* root: the simulator root (PEM or DER), or NULL for Intel's. */
static int root_der(const uint8_t *buf, size_t len, uint8_t **der, size_t *der_len,
		    char sha[65], struct tdc_error *e);

static int trust_new(const uint8_t *root, size_t root_len, uint32_t min_tcb_eval_num,
		     struct kbs_trust **out, char sha[65], struct tdc_error *e)
{
	uint8_t *der = NULL;
	size_t der_len = 0;
	*out = NULL;
	struct kbs_trust *t = calloc(1, sizeof(*t));
	if (!t)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	int r = root ? root_der(root, root_len, &der, &der_len, sha, e) : 0;
	if (r == 0) {
		struct tdc_verifier_opts vo = { .test_root_der = der,
						.test_root_der_len = der_len,
						.min_tcb_eval_num = min_tcb_eval_num };
		r = tdc_verifier_new(&vo, &t->verifier, e);
	}
	free(der);
	if (r < 0) {
		free(t);
		return r;
	}
	t->sim = root != NULL;
	t->refs = 1;
	*out = t;
	return 0;
}

/* ---- timers ---- */

static void timer_del(struct tdc_kbs *k, struct conn *c)
{
	if (c->tq == TQ_NONE)
		return;
	struct tq_list *l = &k->tq[c->tq];
	if (c->tprev)
		c->tprev->tnext = c->tnext;
	else
		l->head = c->tnext;
	if (c->tnext)
		c->tnext->tprev = c->tprev;
	else
		l->tail = c->tprev;
	c->tprev = c->tnext = NULL;
	c->tq = TQ_NONE;
}

static void timer_set(struct tdc_kbs *k, struct conn *c, enum tq q)
{
	timer_del(k, c);
	struct tq_list *l = &k->tq[q];
	c->tq = q;
	c->deadline = mono_ms() + k->tq_ms[q];
	c->tprev = l->tail;
	c->tnext = NULL;
	if (l->tail)
		l->tail->tnext = c;
	else
		l->head = c;
	l->tail = c;
}

static int next_timeout(struct tdc_kbs *k)
{
	int64_t best = -1, now = mono_ms();
	for (int i = 0; i < TQ__N; i++)
		if (k->tq[i].head && (best < 0 || k->tq[i].head->deadline < best))
			best = k->tq[i].head->deadline;
	pthread_mutex_lock(&k->sample_lock);
	for (int i = 0; i < RL__N; i++) {
		int64_t end = k->rl[i].window_ms + KBS_RATELOG_WINDOW_MS;
		if (k->rl[i].suppressed && (best < 0 || end < best))
			best = end;
	}
	pthread_mutex_unlock(&k->sample_lock);
	if (k->trim_due && (best < 0 || k->trim_ms + TRIM_EVERY_MS < best))
		best = k->trim_ms + TRIM_EVERY_MS;
	for (unsigned i = 0; i < OPS_MAX; i++)
		if (k->ops[i].st != O_FREE && (best < 0 || k->ops[i].deadline < best))
			best = k->ops[i].deadline;
	if (best < 0)
		return -1;
	return best <= now ? 0 : (int)(best - now > 60000 ? 60000 : best - now);
}

/* ---- connections ---- */

static void want(struct tdc_kbs *k, struct conn *c, uint32_t ev)
{
	if (c->events == ev)
		return;
	struct epoll_event e = { .events = ev, .data.ptr = c };
	if (epoll_ctl(k->ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->events = ev;
}

/* The source's handshakes in accept order: the oldest is the first to evict. */
static void hs_list_add(struct conn *c)
{
	struct kbs_source *o = c->origin;
	c->hs_prev = o->hs_tail;
	c->hs_next = NULL;
	if (o->hs_tail)
		((struct conn *)o->hs_tail)->hs_next = c;
	else
		o->hs_head = c;
	o->hs_tail = c;
	c->in_hs_list = true;
}

static void hs_list_del(struct conn *c)
{
	if (!c->in_hs_list)
		return;
	struct kbs_source *o = c->origin;
	if (c->hs_prev)
		c->hs_prev->hs_next = c->hs_next;
	else
		o->hs_head = c->hs_next;
	if (c->hs_next)
		c->hs_next->hs_prev = c->hs_prev;
	else
		o->hs_tail = c->hs_prev;
	c->hs_prev = c->hs_next = NULL;
	c->in_hs_list = false;
}

static void gauges(struct tdc_kbs *k)
{
	atomic_store(&k->m.open, k->nconns);
	atomic_store(&k->m.open_busy, k->nbusy);
	if (k->nconns > atomic_load(&k->m.peak))
		atomic_store(&k->m.peak, k->nconns);
}

static void conn_close(struct tdc_kbs *k, struct conn *c)
{
	if (c->st == S_DEAD)
		return;
	timer_del(k, c);
	hs_list_del(c);
	epoll_ctl(k->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	SSL_free(c->ssl);
	c->ssl = NULL;
	X509_free(c->refused_cert);
	c->refused_cert = NULL;
	trust_put(c->trust);
	c->trust = NULL;
	tdc_secret_free(&c->out);
	kbs_peer_free(&c->peer_state);
	if (c->in)
		OPENSSL_cleanse(c->in, c->in_cap);
	free(c->in);
	c->in = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else if (k->conns == c)
		k->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->st = S_DEAD;
	if (c->busy_lane) {
		k->nbusy--;
		c->origin->busy--;
	} else {
		k->nconns--;
		c->origin->conns--;
	}
	kbs_source_put(&k->sources, c->origin);
	c->origin = NULL;
	gauges(k);
	/* freed after the current batch of events, which may still name it */
	c->next = k->dead;
	c->prev = NULL;
	k->dead = c;
}

static void reap(struct tdc_kbs *k)
{
	while (k->dead) {
		struct conn *c = k->dead;
		k->dead = c->next;
		free(c);
	}
}

static void conn_start_close(struct tdc_kbs *k, struct conn *c)
{
	if (c->ssl && c->st != S_HANDSHAKE) {
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
	}
	/* send FIN, then drain what the client still sends so that the kernel
	 * does not answer it with a RST that could destroy our response */
	shutdown(c->fd, SHUT_WR);
	c->st = S_LINGER;
	timer_set(k, c, TQ_LINGER);
	want(k, c, EPOLLIN);
}

static void conn_linger(struct tdc_kbs *k, struct conn *c)
{
	uint8_t scratch[4096];
	for (;;) {
		ssize_t n = recv(c->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_close(k, c);
		return;
	}
}

/* ---- jobs ---- */

static void new_request_id(char out[33])
{
	uint8_t r[16];
	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, 0, sizeof(r));
	tdc_hex_encode(r, sizeof(r), out);
}

static struct job *job_new(struct conn *c, const char *peer)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->c = c;
	new_request_id(j->request_id);
	snprintf(j->peer, sizeof(j->peer), "%s", peer);
	j->t0_ms = c ? c->t0_ms : mono_ms();
	return j;
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	X509_free(j->cert);
	trust_put(j->trust);
	tdc_secret_free(&j->resp);
	kbs_http_req_free(&j->req);
	free(j);
}

/* From the loop thread. front: before the queued requests (a health check must not wait
 * behind a storm's verifications to say that the store answers). */
static void submit_at(struct tdc_kbs *k, struct job *j, bool front)
{
	k->jobs_out++;
	pthread_mutex_lock(&k->lock);
	if (front) {
		j->next = k->q_head;
		k->q_head = j;
		if (!k->q_tail)
			k->q_tail = j;
	} else {
		if (k->q_tail)
			k->q_tail->next = j;
		else
			k->q_head = j;
		k->q_tail = j;
	}
	k->q_len++;
	atomic_store(&k->m.queue, k->q_len);
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
}

static void submit(struct tdc_kbs *k, struct job *j)
{
	submit_at(k, j, false);
}

static size_t queue_len(struct tdc_kbs *k)
{
	pthread_mutex_lock(&k->lock);
	size_t n = k->q_len;
	pthread_mutex_unlock(&k->lock);
	return n;
}

static void conn_write(struct tdc_kbs *k, struct conn *c);

/* An answer decided by the loop without the workers (busy): no audit, a rate-limited log. */
static void respond_now(struct tdc_kbs *k, struct conn *c, enum kbs_reason reason,
			const char *detail)
{
	char rid[33];
	new_request_id(rid);
	timer_del(k, c);
	if (kbs_http_response(reason, rid, NULL, NULL, true, &c->out, &c->out_len, NULL) < 0) {
		conn_close(k, c);
		return;
	}
	if (reason == KBS_BUSY)
		atomic_fetch_add(&k->m.busy, 1);
	if (log_allowed(k, RL_BUSY)) {
		json_object *o = log_obj(k, "warning", "request");
		jstr(o, "request_id", rid);
		jstr(o, "peer", c->peer);
		json_object_object_add(o, "status", json_object_new_int(kbs_reason_http(reason)));
		jstr(o, "decision", "denied");
		jstr(o, "reason_code", kbs_reason_code(reason));
		jstr(o, "reason", detail);
		emit(k, o);
	}
	c->out_pos = 0;
	c->close_after = true;
	c->st = S_WRITE;
	timer_set(k, c, TQ_10S);
	conn_write(k, c);
}

/* Hands a parsed request, or a refusal of an unparsable one, to the workers. */
static void dispatch(struct tdc_kbs *k, struct conn *c, const struct kbs_http_req *req,
		     enum kbs_reason preset, const struct tdc_error *e)
{
	if (queue_len(k) >= k->cfg.queue_max) {
		respond_now(k, c, KBS_BUSY, "work queue full");
		return;
	}
	struct job *j = job_new(c, c->peer);
	if (!j) {
		conn_close(k, c);
		return;
	}
	j->preset = preset;
	if (req) {
		j->req = *req;
		j->has_req = true;
	}
	if (e && e->code) {
		char buf[400];
		snprintf(j->preset_detail, sizeof(j->preset_detail), "%s",
			 tdc_error_format(e, buf, sizeof(buf)));
	}
	j->cert = SSL_get1_peer_certificate(c->ssl);
	j->trust = trust_get(c->trust);
	c->nreq++;
	j->close_after = preset != KBS_OK || (req && req->conn_close) ||
			 c->nreq >= TDC_MAX_KBS_REQUESTS_PER_CONN || k->draining;
	/* the request's bytes are consumed; a pipelined next one waits */
	if (req && preset == KBS_OK) {
		size_t used = req->header_len + req->body_len;
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
	} else {
		c->in_len = 0;
	}
	if (c->in_cap > IN_CAP && c->in_len <= IN_CAP) { /* back to the small buffer */
		uint8_t *n = realloc(c->in, IN_CAP);
		if (n) {
			c->in = n;
			c->in_cap = IN_CAP;
		}
	}
	timer_del(k, c);
	c->st = S_WORK;
	want(k, c, 0);
	submit(k, j);
}

/* ---- connection state machine ---- */

static void conn_read(struct tdc_kbs *k, struct conn *c);

/* A non-blocking TLS call returned rc <= 0: if OpenSSL only waits for the socket,
 * arm the right epoll event and say so; otherwise the caller handles the failure. */
static bool ssl_would_block(struct tdc_kbs *k, struct conn *c, int rc)
{
	int err = SSL_get_error(c->ssl, rc);
	if (err == SSL_ERROR_WANT_READ) {
		want(k, c, EPOLLIN);
		return true;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		want(k, c, EPOLLOUT);
		return true;
	}
	return false;
}

/* Counted, logged at a limited rate; a client that got as far as presenting a
 * certificate is an unauthenticated refusal, sampled into the audit trail. */
static void handshake_failed(struct tdc_kbs *k, struct conn *c, enum kbs_hs_class cls,
			     const char *why)
{
	uint64_t skipped = 0;
	atomic_fetch_add(&k->m.handshake[cls], 1);
	X509 *cert = c->busy_lane ? NULL : SSL_get0_peer_certificate(c->ssl);
	if (!cert)
		cert = c->refused_cert;
	struct job *j = cert && audit_sample(k, &skipped) ? job_new(NULL, c->peer) : NULL;
	if (!j) {
		log_limited(k, RL_HANDSHAKE, "info", "handshake_failed", c->peer, why);
		return;
	}
	int n = snprintf(j->preset_detail, sizeof(j->preset_detail),
			 "TLS handshake failed after the client certificate: %s", why);
	if (skipped && n > 0 && (size_t)n < sizeof(j->preset_detail))
		snprintf(j->preset_detail + n, sizeof(j->preset_detail) - (size_t)n,
			 " (%llu unauthenticated refusals not audited before this one)",
			 (unsigned long long)skipped);
	j->preset = KBS_HANDSHAKE;
	j->sampled = true;
	j->cert = X509_dup(cert);
	submit(k, j); /* its audit record has its log line */
}

static void conn_handshake(struct tdc_kbs *k, struct conn *c)
{
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		hs_list_del(c);
		c->st = S_READ;
		c->t0_ms = mono_ms();
		if (c->busy_lane) {
			respond_now(k, c, KBS_BUSY, "connection limit");
			return;
		}
		timer_set(k, c, TQ_10S);
		want(k, c, EPOLLIN);
		conn_read(k, c);
		return;
	}
	if (ssl_would_block(k, c, r))
		return;
	/* the class, from the error before ssl_err_text takes it off the queue */
	enum kbs_hs_class cls = KBS_HS_PROTOCOL;
	int err = SSL_get_error(c->ssl, r);
	unsigned long last = ERR_peek_last_error();
	if (c->refused_cert)
		cls = KBS_HS_CERTIFICATE;
	else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN || !last)
		cls = KBS_HS_CLOSED;
	else if (ERR_GET_LIB(last) == ERR_LIB_SSL &&
		 ERR_GET_REASON(last) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		cls = KBS_HS_NO_CERTIFICATE;
	char why[256];
	ssl_err_text(why, sizeof(why));
	handshake_failed(k, c, cls, why);
	conn_close(k, c);
}

static void conn_read(struct tdc_kbs *k, struct conn *c)
{
	struct kbs_http_req req;
	enum kbs_reason reason;
	struct tdc_error e;

	for (;;) {
		if (c->in_len) {
			tdc_error_clear(&e);
			int r = kbs_http_parse(c->in, c->in_len, &req, &reason, &e);
			if (r == KBS_HTTP_DONE) {
				dispatch(k, c, &req, KBS_OK, NULL);
				return;
			}
			if (r == KBS_HTTP_ERROR) {
				dispatch(k, c, &req, reason, &e);
				return;
			}
			/* The buffer grows to a request's announced size only once its headers
			 * parsed (within the caps), so a connection costs IN_CAP until then. */
			size_t need = req.header_len + req.body_len;
			if (req.header_len && need > c->in_cap && need <= IN_MAX) {
				uint8_t *n = realloc(c->in, need);
				if (!n) {
					conn_close(k, c);
					return;
				}
				c->in = n;
				c->in_cap = need;
			}
			if (c->in_len >= c->in_cap) {
				tdc_error_set(&e, TDC_E_LIMIT, TDC_NO_OFFSET, __FILE__, __LINE__,
					      "request too large", NULL);
				dispatch(k, c, NULL, KBS_TOO_LARGE, &e);
				return;
			}
		}
		ERR_clear_error();
		int n = SSL_read(c->ssl, c->in + c->in_len, (int)(c->in_cap - c->in_len));
		if (n > 0) {
			if (c->in_len == 0) {
				/* the first byte of a request starts its read deadline */
				c->t0_ms = mono_ms();
				timer_set(k, c, TQ_10S);
			}
			c->in_len += (size_t)n;
			continue;
		}
		if (ssl_would_block(k, c, n))
			return;
		if (c->in_len) {
			char why[256];
			ssl_err_text(why, sizeof(why));
			log_conn(k, "info", "incomplete_request", c->peer, why);
		}
		ERR_clear_error();
		conn_close(k, c);
		return;
	}
}

static void conn_write(struct tdc_kbs *k, struct conn *c)
{
	while (c->out_pos < c->out_len) {
		ERR_clear_error();
		int n = SSL_write(c->ssl, c->out.data + c->out_pos, (int)(c->out_len - c->out_pos));
		if (n > 0) {
			c->out_pos += (size_t)n;
			continue;
		}
		if (ssl_would_block(k, c, n))
			return;
		ERR_clear_error();
		conn_close(k, c);
		return;
	}
	tdc_secret_free(&c->out);
	c->out_len = c->out_pos = 0;
	if (c->close_after || k->draining) {
		conn_start_close(k, c);
		return;
	}
	c->st = S_READ;
	timer_set(k, c, c->in_len ? TQ_10S : TQ_IDLE);
	want(k, c, EPOLLIN);
	conn_read(k, c);
}

static void conn_event(struct tdc_kbs *k, struct conn *c, uint32_t ev)
{
	(void)ev;
	switch (c->st) {
	case S_HANDSHAKE: conn_handshake(k, c); break;
	case S_READ: conn_read(k, c); break;
	case S_WRITE: conn_write(k, c); break;
	case S_LINGER: conn_linger(k, c); break;
	case S_WORK:
	case S_DEAD: break;
	}
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
		snprintf(out, cap, "%s:%u", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
		snprintf(out, cap, "[%s]:%u", host, port);
	} else {
		snprintf(out, cap, "unix");
	}
}

/* ---- admission ---- */

enum lane { LANE_NONE, LANE_SLOT, LANE_BUSY };

static bool has_stalled(const struct conn *c, int64_t now)
{
	return c && now - c->accepted_ms >= STALLED_MS;
}

/* The oldest stalled handshake (busy-lane ones aside): the handshake queue is in accept
 * order, and the busy lane puts at most BUSY_MAX connections before it. */
static struct conn *oldest_stalled(struct tdc_kbs *k, int64_t now)
{
	for (struct conn *c = k->tq[TQ_HANDSHAKE].head; c && has_stalled(c, now); c = c->tnext)
		if (!c->busy_lane)
			return c;
	return NULL;
}

static void evict(struct tdc_kbs *k, struct conn *c, bool idle, const char *why)
{
	atomic_fetch_add(idle ? &k->m.evicted_idle : &k->m.evicted_handshake, 1);
	log_limited(k, RL_EVICTED, "info", "connection_evicted", c->peer, why);
	conn_close(k, c);
}

/* Makes room for one more connection from o if it can; otherwise the busy lane, or none. */
static enum lane admit(struct tdc_kbs *k, struct kbs_source *o, const char *peer)
{
	int64_t now = mono_ms();
	const char *full = NULL;
	if (o->conns >= k->cfg.max_conns_per_source) {
		struct conn *v = o->hs_head;
		if (has_stalled(v, now))
			evict(k, v, false, "stalled handshake, per-source limit");
		else
			full = "per-source connection limit";
	}
	if (!full && k->nconns >= k->cfg.max_conns) {
		struct conn *v = oldest_stalled(k, now);
		if (v)
			evict(k, v, false, "stalled handshake, connection limit");
		else if ((v = k->tq[TQ_IDLE].head) != NULL)
			evict(k, v, true, "idle, connection limit");
		else
			full = "connection limit";
	}
	if (!full)
		return LANE_SLOT;
	if (k->nbusy < BUSY_MAX && o->busy < BUSY_PER_SOURCE)
		return LANE_BUSY;
	atomic_fetch_add(&k->m.refused_limit, 1);
	if (o->conns >= k->cfg.max_conns_per_source)
		atomic_fetch_add(&k->m.refused_source, 1);
	log_limited(k, RL_REFUSED, "warning", "connection_refused", peer, full);
	return LANE_NONE;
}

/* Out of file descriptors: the pending connection stays in the backlog and the listening
 * socket stays readable, so take it with the spare descriptor and close it. */
static void shed_one(struct tdc_kbs *k)
{
	if (k->spare_fd < 0)
		return;
	close(k->spare_fd);
	int fd = accept4(k->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	k->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	atomic_fetch_add(&k->m.refused_limit, 1);
	log_limited(k, RL_REFUSED, "warning", "connection_refused", NULL,
		    "out of file descriptors");
}

static struct conn *conn_new(struct tdc_kbs *k, int fd, enum lane lane, struct kbs_source *o,
			     const char *peer)
{
	struct conn *c = calloc(1, sizeof(*c));
	SSL *ssl = c ? SSL_new(lane == LANE_BUSY ? k->busy_ctx : k->ssl_ctx) : NULL;
	uint8_t *in = ssl ? malloc(IN_CAP) : NULL;
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
	if (!in || !SSL_set_fd(ssl, fd) || epoll_ctl(k->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
		free(in);
		SSL_free(ssl);
		free(c);
		return NULL;
	}
	c->src.kind = K_CONN;
	c->fd = fd;
	c->ssl = ssl;
	c->in = in;
	c->in_cap = IN_CAP;
	c->tq = TQ_NONE;
	c->st = S_HANDSHAKE;
	c->events = EPOLLIN;
	c->accepted_ms = mono_ms();
	c->origin = o;
	c->busy_lane = lane == LANE_BUSY;
	c->trust = c->busy_lane ? NULL : trust_get(k->trust);
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	SSL_set_accept_state(ssl);
	SSL_set_app_data(ssl, c);
	if (c->busy_lane) {
		k->nbusy++;
		o->busy++;
	} else {
		k->nconns++;
		o->conns++;
		hs_list_add(c);
		atomic_fetch_add(&k->m.accepted, 1);
	}
	gauges(k);
	c->next = k->conns;
	if (k->conns)
		k->conns->prev = c;
	k->conns = c;
	timer_set(k, c, TQ_HANDSHAKE);
	return c;
}

static void release_memory(struct tdc_kbs *k)
{
	size_t open = k->nconns + k->nbusy;
	if (open > k->trim_mark)
		k->trim_mark = open;
	if (k->trim_mark - open < TRIM_MIN || open > k->trim_mark / 2)
		return;
	int64_t now = mono_ms();
	if (now - k->trim_ms < TRIM_EVERY_MS) {
		k->trim_due = true; /* next_timeout wakes the loop for it */
		return;
	}
	k->trim_ms = now;
	k->trim_mark = open;
	k->trim_due = false;
	malloc_trim(0);
	atomic_fetch_add(&k->m.memory_trims, 1);
}

static void on_accept(struct tdc_kbs *k)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(k->listen_fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				shed_one(k);
			return; /* EAGAIN, or another error: try again on the next event */
		}
		char peer[64];
		format_peer(&ss, peer, sizeof(peer));
		struct kbs_source *o = kbs_source_get(&k->sources, &ss);
		enum lane lane = o ? admit(k, o, peer) : LANE_NONE;
		struct conn *c = lane == LANE_NONE ? NULL : conn_new(k, fd, lane, o, peer);
		if (!c) {
			kbs_source_put(&k->sources, o);
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_handshake(k, c);
	}
}

/* ---- workers ---- */

/* A certificate refused in the handshake (another TEE's RA-TLS, a P-384 key): what it
 * is, for the audit record (PROTOCOL.md section 4.5). */
static void name_certificate(X509 *cert, struct kbs_decision *d)
{
	struct tdc_ratls_evidence ev;
	struct tdc_error e;
	char buf[400];
	tdc_error_clear(&e);
	if (tdc_ratls_cert_check(cert, NULL, 0, &ev, &e) == 0)
		return;
	size_t n = strlen(d->detail);
	snprintf(d->detail + n, sizeof(d->detail) - n, "; the certificate: %s",
		 tdc_error_format(&e, buf, sizeof(buf)));
}

static void work(struct tdc_kbs *k, struct job *j)
{
	struct kbs_decision d;
	int64_t now = now_s(k);
	const char *sid = j->has_req && j->req.secret_id[0] ? j->req.secret_id : NULL;

	memset(&d, 0, sizeof(d));
	if (j->ping) {
		struct tdc_error pe;
		tdc_error_clear(&pe);
		j->ping_ok = kbs_vault_ping(&pe) == 0;
		if (!j->ping_ok)
			tdc_error_format(&pe, j->ping_why, sizeof(j->ping_why));
		return;
	}
	if (j->preset == KBS_OK) {
		struct kbs_ctx x = { j->trust->verifier, k->ctx.coll, j->trust->sim };
		int64_t t0 = mono_us();
		kbs_decide(&x, j->cert, &j->c->peer_state, &j->req, now, &d);
		kbs_hist_add(&k->m.verify, mono_us() - t0);
	} else {
		d.reason = j->preset;
		snprintf(d.detail, sizeof(d.detail), "%s", j->preset_detail);
		snprintf(d.verdict, sizeof(d.verdict), "-");
		snprintf(d.claims_digest, sizeof(d.claims_digest), "-");
		if (j->preset == KBS_HANDSHAKE && j->cert)
			name_certificate(j->cert, &d);
	}

	/* the audit record first: a release that cannot be recorded does not happen. The
	 * keeper makes a release's record durable, then hands over the key. */
	bool authenticated = j->preset == KBS_OK && d.authenticated;
	uint64_t skipped = 0;
	bool record = authenticated || j->sampled || audit_sample(k, &skipped);
	char reason[1300];
	int rn = snprintf(reason, sizeof(reason), "%s: %s", kbs_reason_code(d.reason), d.detail);
	if (skipped && rn > 0 && (size_t)rn < sizeof(reason))
		snprintf(reason + rn, sizeof(reason) - (size_t)rn,
			 " (%llu unauthenticated refusals not audited before this one)",
			 (unsigned long long)skipped);
	struct tdc_audit_record rec = {
		.time = now,
		.request_id = j->request_id,
		.secret_id = sid,
		.peer = j->peer,
		.claims_digest = d.claims_digest,
		.verdict = d.verdict,
		.decision = d.reason == KBS_OK ? TDC_AUDIT_RELEASED : TDC_AUDIT_DENIED,
		.reason = reason,
	};
	int64_t audit_id = 0;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (d.reason == KBS_OK && kbs_vault_release(&rec, &d.key, &audit_id, &e) < 0) {
		/* not released: that is a decision of its own, recorded as one */
		char buf[400];
		bool unknown = e.code == TDC_E_NOT_FOUND;
		d.reason = unknown ? KBS_UNKNOWN_SECRET : KBS_INTERNAL;
		snprintf(d.detail, sizeof(d.detail), "%s: %s", unknown ? "secret" : "release",
			 tdc_error_format(&e, buf, sizeof(buf)));
		snprintf(reason, sizeof(reason), "%s: %s", kbs_reason_code(d.reason), d.detail);
		rec.decision = TDC_AUDIT_DENIED;
		tdc_error_clear(&e);
	}
	if (d.reason != KBS_OK && record && kbs_vault_audit(&rec, &audit_id, &e) < 0) {
		char buf[400];
		d.reason = KBS_INTERNAL;
		snprintf(d.detail, sizeof(d.detail), "audit record not written: %s",
			 tdc_error_format(&e, buf, sizeof(buf)));
		audit_id = -1;
	}

	if (j->preset != KBS_HANDSHAKE)
		atomic_fetch_add(d.reason == KBS_OK ? &k->m.released
						    : &k->m.denied[(unsigned)d.reason < KBS__REASONS
									   ? d.reason
									   : KBS_INTERNAL],
				 1);
	if (!record && d.reason != KBS_OK && !log_allowed(k, RL_UNAUTHENTICATED))
		goto respond;
	json_object *o = log_obj(k, d.reason == KBS_OK ? "info" : "warning",
				 j->c ? "request" : "handshake");
	jstr(o, "request_id", j->request_id);
	jstr(o, "peer", j->peer);
	jstr(o, "secret_id", sid);
	jstr(o, "agent", j->has_req ? j->req.agent : NULL);
	if (j->c)
		json_object_object_add(o, "status",
				       json_object_new_int(d.reason == KBS_OK ?
								   200 :
								   kbs_reason_http(d.reason)));
	jstr(o, "decision", d.reason == KBS_OK ? "released" : "denied");
	jstr(o, "reason_code", kbs_reason_code(d.reason));
	jstr(o, "reason", d.detail);
	jstr(o, "verdict", d.verdict);
	jstr(o, "claims_digest", d.claims_digest);
	json_object_object_add(o, "audit_id",
			       record || d.reason == KBS_OK ? json_object_new_int64(audit_id) : NULL);
	json_object_object_add(o, "duration_ms", json_object_new_int64(mono_ms() - j->t0_ms));
	emit(k, o);

respond:
	if (j->c) {
		j->close_after = j->close_after || d.reason != KBS_OK;
		if (kbs_http_response(d.reason, j->request_id, sid, d.reason == KBS_OK ? &d.key : NULL,
				      j->close_after, &j->resp, &j->resp_len, NULL) < 0)
			j->resp_len = 0;
	}
	kbs_decision_free(&d);
}

struct worker_arg {
	struct tdc_kbs *k;
	int chan;
};

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct tdc_kbs *k = wa->k;
	kbs_vault_bind(wa->chan, &k->m);
	free(wa);
	for (;;) {
		pthread_mutex_lock(&k->lock);
		while (!k->q_head && !k->w_stop)
			pthread_cond_wait(&k->cond, &k->lock);
		if (!k->q_head) {
			pthread_mutex_unlock(&k->lock);
			break;
		}
		struct job *j = k->q_head;
		k->q_head = j->next;
		if (!k->q_head)
			k->q_tail = NULL;
		k->q_len--;
		atomic_store(&k->m.queue, k->q_len);
		pthread_mutex_unlock(&k->lock);

		j->next = NULL;
		work(k, j);
		ERR_clear_error();

		pthread_mutex_lock(&k->lock);
		j->next = k->done;
		k->done = j;
		pthread_mutex_unlock(&k->lock);
		uint64_t one = 1;
		ssize_t w = write(k->wake_fd, &one, sizeof(one));
		(void)w;
	}
	return NULL;
}

static void health_done(struct tdc_kbs *k, const struct job *j);

static void on_done(struct tdc_kbs *k)
{
	pthread_mutex_lock(&k->lock);
	struct job *list = k->done;
	k->done = NULL;
	pthread_mutex_unlock(&k->lock);
	while (list) {
		struct job *j = list;
		list = j->next;
		struct conn *c = j->c;
		k->jobs_out--;
		if (j->ping)
			health_done(k, j);
		if (c && c->st == S_WORK) {
			if (j->resp_len == 0) {
				conn_close(k, c);
			} else {
				c->out = j->resp;
				c->out_len = j->resp_len;
				c->out_pos = 0;
				memset(&j->resp, 0, sizeof(j->resp));
				c->close_after = j->close_after;
				c->st = S_WRITE;
				timer_set(k, c, TQ_10S);
				conn_write(k, c);
			}
		}
		job_free(j);
	}
}

/* ---- timers firing ---- */

static void ops_expire(struct tdc_kbs *k, int64_t now);

static void expire(struct tdc_kbs *k)
{
	int64_t now = mono_ms();
	ops_expire(k, now);
	for (int q = 0; q < TQ__N; q++) {
		while (k->tq[q].head && k->tq[q].head->deadline <= now) {
			struct conn *c = k->tq[q].head;
			timer_del(k, c);
			switch (c->st) {
			case S_HANDSHAKE:
				atomic_fetch_add(&k->m.handshake[KBS_HS_TIMEOUT], 1);
				log_limited(k, RL_HANDSHAKE, "info", "handshake_timeout", c->peer,
					    "TLS not finished in time");
				conn_close(k, c);
				break;
			case S_READ:
				if (c->in_len) {
					struct tdc_error e;
					tdc_error_clear(&e);
					tdc_error_set(&e, TDC_E_IO, TDC_NO_OFFSET, __FILE__,
						      __LINE__, "request not received in time",
						      "%zu bytes after 10 s", c->in_len);
					dispatch(k, c, NULL, KBS_TIMEOUT, &e);
				} else {
					conn_start_close(k, c);
				}
				break;
			default:
				conn_close(k, c);
				break;
			}
		}
	}
}

/* ---- set-up ---- */

static int verify_client(X509_STORE_CTX *sctx, void *arg)
{
	(void)arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(sctx);
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(sctx);
	/* exactly one self-issued P-256 certificate; the evidence is checked per request.
	 * Not its self-signature: the CertificateVerify that follows is signed by the same
	 * key over a transcript containing this certificate (PROTOCOL.md section 5.1). */
	int ok = leaf && chain && sk_X509_num(chain) == 1 &&
		 tdc_ratls_cert_self_issued(leaf, NULL) == 0;
	if (!ok) {
		X509_STORE_CTX_set_error(sctx, X509_V_ERR_APPLICATION_VERIFICATION);
		/* OpenSSL keeps no peer certificate after a refusal: keep it for the audit */
		SSL *ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
		struct conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
		if (c && leaf && !c->refused_cert && X509_up_ref(leaf))
			c->refused_cert = leaf;
	}
	return ok;
}

/* A PEM key is never decrypted with a prompt: an encrypted key is an error. */
static int no_passphrase(char *buf, int size, int rw, void *u)
{
	(void)buf;
	(void)size;
	(void)rw;
	(void)u;
	return 0;
}

/* The leaf, then its chain, from PEM in memory; the key likewise. */
static int use_credentials(SSL_CTX *ctx, const uint8_t *cert, size_t cert_len, const uint8_t *key,
			   size_t key_len, struct tdc_error *e)
{
	int r = 0;
	BIO *b = BIO_new_mem_buf(cert, (int)cert_len);
	X509 *leaf = b ? PEM_read_bio_X509_AUX(b, NULL, no_passphrase, NULL) : NULL;
	if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1)
		r = TDC_FAIL_OSSL(e, TDC_E_IO, "cannot load the broker certificate");
	X509_free(leaf);
	X509 *x;
	while (r == 0 && (x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) != NULL)
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			X509_free(x);
			r = TDC_FAIL_OSSL(e, TDC_E_IO, "cannot load the broker certificate chain");
		}
	if (r == 0) {
		/* the end of the PEM data is not an error; anything else is */
		unsigned long err = ERR_peek_last_error();
		if (err && !(ERR_GET_LIB(err) == ERR_LIB_PEM &&
			     ERR_GET_REASON(err) == PEM_R_NO_START_LINE))
			r = TDC_FAIL_OSSL(e, TDC_E_IO, "cannot load the broker certificate chain");
		ERR_clear_error();
	}
	BIO_free(b);
	if (r < 0)
		return r;
	b = BIO_new_mem_buf(key, (int)key_len);
	EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
	BIO_free(b);
	if (!pk || SSL_CTX_use_PrivateKey(ctx, pk) != 1)
		r = TDC_FAIL_OSSL(e, TDC_E_IO, "cannot load the broker key");
	EVP_PKEY_free(pk);
	if (r == 0 && SSL_CTX_check_private_key(ctx) != 1)
		r = TDC_FAIL_OSSL(e, TDC_E_USAGE, "broker key does not match its certificate");
	return r;
}

/* The broker's TLS 1.3 context from its certificate chain and key (PEM, in memory: at a
 * reload they come from the keeper); for the busy lane one that asks for no client
 * certificate (it reads no evidence, it only says busy). */
static int make_ssl_ctx(bool busy, const uint8_t *cert, size_t cert_len, const uint8_t *key,
			size_t key_len, SSL_CTX **out, struct tdc_error *e)
{
	*out = NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot create the TLS context");
	int r = 0;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:"
					  "TLS_CHACHA20_POLY1305_SHA256") != 1 ||
	    SSL_CTX_set1_groups_list(ctx, "X25519:P-256") != 1)
		r = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot configure TLS 1.3");
	if (r == 0)
		r = use_credentials(ctx, cert, cert_len, key, key_len, e);
	if (r == 0 && busy) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else if (r == 0) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		SSL_CTX_set_cert_verify_callback(ctx, verify_client, NULL);
	}
	if (r == 0) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		if (SSL_CTX_set_num_tickets(ctx, 0) != 1)
			r = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot disable session tickets");
	}
	if (r < 0) {
		SSL_CTX_free(ctx);
		return r;
	}
	SSL_CTX_set_max_cert_list(ctx, TDC_MAX_KBS_CERT_LIST);
	/* an idle connection holds no TLS record buffers (about 34 KiB each) */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	*out = ctx;
	return 0;
}

/* Lower-case hex SHA-256 of the DER SubjectPublicKeyInfo of ctx's certificate: what an
 * agent pins (PROTOCOL.md section 2.1). */
static void spki_sha256(SSL_CTX *ctx, char out[65])
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	unsigned char *der = NULL;
	int n = x ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der) : -1;
	out[0] = 0;
	if (n > 0) {
		uint8_t md[32];
		SHA256(der, (size_t)n, md);
		tdc_hex_encode(md, sizeof(md), out);
	}
	OPENSSL_free(der);
}

/* Both contexts (the slots' and the busy lane's), or neither. */
static int make_ssl_ctxs(const uint8_t *cert, size_t cert_len, const uint8_t *key,
			 size_t key_len, SSL_CTX **main_ctx, SSL_CTX **busy_ctx,
			 struct tdc_error *e)
{
	TDC_GUARD(make_ssl_ctx(false, cert, cert_len, key, key_len, main_ctx, e));
	int r = make_ssl_ctx(true, cert, cert_len, key, key_len, busy_ctx, e);
	if (r < 0) {
		SSL_CTX_free(*main_ctx);
		*main_ctx = NULL;
	}
	return r;
}

/* The credentials files as the network process reads them at start (before its
 * sandbox); a reload gets them from the keeper. */
static int load_ssl_ctxs(struct tdc_kbs *k, struct tdc_error *e)
{
	uint8_t *cert = NULL, *key = NULL;
	size_t cl = 0, kl = 0;
	int r = tdc_file_read(k->cfg.cert, 256 * 1024, &cert, &cl, e);
	if (r == 0)
		r = tdc_file_read(k->cfg.key, 64 * 1024, &key, &kl, e);
	if (r == 0)
		r = make_ssl_ctxs(cert, cl, key, kl, &k->ssl_ctx, &k->busy_ctx, e);
	free(cert);
	if (key)
		OPENSSL_cleanse(key, kl);
	free(key);
	return r;
}

/* A listening TCP socket on "ADDR:PORT" / "[V6]:PORT" (what: the option, for errors). */
static int listen_addr(const char *a, const char *what, int *fd_out, int *port_out,
		       struct tdc_error *e)
{
	char host[256], port[16];
	const char *colon;
	if (a[0] == '[') {
		const char *end = strchr(a, ']');
		if (!end || end[1] != ':' || (size_t)(end - a - 1) >= sizeof(host))
			return TDC_FAILF(e, TDC_E_USAGE, "bad listen address", "%s '%s'", what, a);
		snprintf(host, sizeof(host), "%.*s", (int)(end - a - 1), a + 1);
		colon = end + 1;
	} else {
		colon = strrchr(a, ':');
		if (!colon || (size_t)(colon - a) >= sizeof(host))
			return TDC_FAILF(e, TDC_E_USAGE, "bad listen address", "%s '%s' (ADDR:PORT)",
					 what, a);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - a), a);
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int g = getaddrinfo(host[0] && strcmp(host, "*") ? host : NULL, port, &hints, &res);
	if (g != 0)
		return TDC_FAILF(e, TDC_E_USAGE, "bad listen address", "%s '%s': %s", what, a,
				 gai_strerror(g));
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return TDC_FAILF(e, TDC_E_IO, "cannot listen", "%s %s: %s", what, a,
				 strerror(err));
	}
	freeaddrinfo(res);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						    : ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	return 0;
}

/* The simulator root as DER (from PEM or DER), and its SHA-256. */
static int root_der(const uint8_t *in, size_t in_len, uint8_t **der, size_t *der_len,
		    char sha[65], struct tdc_error *e)
{
	uint8_t *buf = malloc(in_len ? in_len : 1);
	size_t len = in_len;
	if (!buf)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	memcpy(buf, in, in_len);
	X509 *x = NULL;
	BIO *b = BIO_new_mem_buf(in, (int)in_len);
	if (b)
		x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	if (x) {
		unsigned char *d = NULL;
		int n = i2d_X509(x, &d);
		X509_free(x);
		if (n <= 0) {
			free(buf);
			return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot encode the simulator root");
		}
		uint8_t *copy = realloc(buf, (size_t)n);
		if (!copy) {
			OPENSSL_free(d);
			free(buf);
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		}
		memcpy(copy, d, (size_t)n);
		OPENSSL_free(d);
		buf = copy;
		len = (size_t)n;
	}
	ERR_clear_error();
	uint8_t md[32];
	SHA256(buf, len, md);
	tdc_hex_encode(md, sizeof(md), sha);
	*der = buf;
	*der_len = len;
	return 0;
}

/*
 * Limits and their state. Every connection needs a descriptor: the soft
 * RLIMIT_NOFILE is raised to what max_connections needs (Debian's default is
 * 1024), and max_connections lowered, with a warning, where the hard limit is
 * below it.
 */
static int admission_init(struct tdc_kbs *k, struct tdc_error *e)
{
	const unsigned reserve = BUSY_MAX + 64 + 2 * k->cfg.workers; /* channels, PCCS, spare */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rlim_t need = (rlim_t)k->cfg.max_conns + reserve;
		if (rl.rlim_cur < need && rl.rlim_cur != RLIM_INFINITY) {
			rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need
											   : rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
			(void)getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
			unsigned was = k->cfg.max_conns;
			k->cfg.max_conns = rl.rlim_cur > reserve + 16 ? (unsigned)(rl.rlim_cur - reserve)
								      : 16;
			char why[160];
			snprintf(why, sizeof(why),
				 "max_connections lowered from %u to %u: RLIMIT_NOFILE is %llu", was,
				 k->cfg.max_conns, (unsigned long long)rl.rlim_cur);
			log_conn(k, "warning", "limits", NULL, why);
		}
	}
	if (k->cfg.max_conns_per_source == 0 || k->cfg.max_conns_per_source > k->cfg.max_conns)
		k->cfg.max_conns_per_source = k->cfg.max_conns;
	if (k->cfg.handshake_timeout_ms == 0)
		k->cfg.handshake_timeout_ms = TDC_KBS_DEFAULT_HANDSHAKE_MS;
	const int64_t ms[TQ__N] = { k->cfg.handshake_timeout_ms, 10000, IDLE_MS, LINGER_MS };
	memcpy(k->tq_ms, ms, sizeof(ms));
	kbs_bucket_init(&k->samples, SAMPLE_BURST, SAMPLE_PER_MINUTE, mono_ms());
	k->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (kbs_sources_init(&k->sources, k->cfg.max_conns / 4) < 0 || k->spare_fd < 0)
		return TDC_FAIL(e, TDC_E_NOMEM, "cannot set up admission control");
	return 0;
}

static int epoll_add(struct tdc_kbs *k, int fd, struct evsrc *src, struct tdc_error *e)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = src };
	if (epoll_ctl(k->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return TDC_FAILF(e, TDC_E_IO, "epoll_ctl", "%s", strerror(errno));
	return 0;
}

/* ---- the metrics listener (PROTOCOL.md section 9) ---- */

static void ops_close(struct tdc_kbs *k, struct ops_conn *o)
{
	if (o->st == O_FREE)
		return;
	epoll_ctl(k->ep, EPOLL_CTL_DEL, o->fd, NULL);
	close(o->fd);
	o->fd = -1;
	free(o->out);
	o->out = NULL;
	o->st = O_FREE;
}

static void ops_write(struct tdc_kbs *k, struct ops_conn *o)
{
	while (o->out_pos < o->out_len) {
		ssize_t n = send(o->fd, o->out + o->out_pos, o->out_len - o->out_pos,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			o->out_pos += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break;
	}
	shutdown(o->fd, SHUT_WR);
	ops_close(k, o);
}

static void ops_answer(struct tdc_kbs *k, struct ops_conn *o, int status, const char *ctype,
		       const char *body, size_t len)
{
	free(o->out);
	o->out = NULL;
	if (kbs_http_plain_response(status, ctype, body, len, &o->out, &o->out_len, NULL) < 0) {
		ops_close(k, o);
		return;
	}
	o->out_pos = 0;
	o->st = O_WRITE;
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = o };
	epoll_ctl(k->ep, EPOLL_CTL_MOD, o->fd, &ev);
	ops_write(k, o);
}

static void ops_text(struct tdc_kbs *k, struct ops_conn *o, int status, const char *text)
{
	ops_answer(k, o, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* The answer of /healthz from what is known now; false if the store must be asked. */
static bool health_answer(struct tdc_kbs *k, struct ops_conn *o, bool fresh_only)
{
	if (k->draining) {
		ops_text(k, o, 503, "draining\n");
		return true;
	}
	if (fresh_only && (!k->health_ms || mono_ms() - k->health_ms >= HEALTH_FRESH_MS))
		return false;
	if (k->health_ok)
		ops_text(k, o, 200, "ok\n");
	else
		ops_text(k, o, 503, "store unavailable\n");
	return true;
}

static void health_done(struct tdc_kbs *k, const struct job *j)
{
	k->health_pending = false;
	if (k->health_ok != j->ping_ok || !k->health_ms)
		log_conn(k, j->ping_ok ? "info" : "error", "health", NULL,
			 j->ping_ok ? "the store answers" : j->ping_why);
	k->health_ok = j->ping_ok;
	k->health_ms = mono_ms();
	for (unsigned i = 0; i < OPS_MAX; i++)
		if (k->ops[i].st == O_HEALTH)
			health_answer(k, &k->ops[i], false);
}

static void health_check(struct tdc_kbs *k, struct ops_conn *o)
{
	if (health_answer(k, o, true))
		return;
	o->st = O_HEALTH;
	struct epoll_event ev = { .events = 0, .data.ptr = o };
	epoll_ctl(k->ep, EPOLL_CTL_MOD, o->fd, &ev);
	if (k->health_pending)
		return;
	struct job *j = job_new(NULL, "healthz");
	if (!j) {
		ops_text(k, o, 503, "out of memory\n");
		return;
	}
	j->ping = true;
	k->health_pending = true;
	submit_at(k, j, true);
}

static void ops_read(struct tdc_kbs *k, struct ops_conn *o)
{
	for (;;) {
		ssize_t n = recv(o->fd, o->in + o->in_len, sizeof(o->in) - o->in_len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			ops_close(k, o);
			return;
		}
		o->in_len += (size_t)n;
		struct kbs_http_req req;
		enum kbs_reason reason;
		int r = kbs_http_parse_ops(o->in, o->in_len, &req, &reason, NULL);
		kbs_http_req_free(&req);
		if (r == KBS_HTTP_MORE && o->in_len < sizeof(o->in))
			continue;
		if (r == KBS_HTTP_MORE)
			reason = KBS_TOO_LARGE;
		if (r != KBS_HTTP_DONE) {
			char body[64];
			snprintf(body, sizeof(body), "%s\n", kbs_reason_code(reason));
			ops_text(k, o, kbs_reason_http(reason), body);
			return;
		}
		if (req.route == KBS_ROUTE_HEALTHZ) {
			health_check(k, o);
			return;
		}
		size_t len = 0;
		char *text = kbs_metrics_prometheus(&k->m, &len);
		if (!text) {
			ops_text(k, o, 500, "internal\n");
			return;
		}
		ops_answer(k, o, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
		free(text);
		return;
	}
}

static void ops_accept(struct tdc_kbs *k)
{
	for (;;) {
		int fd = accept4(k->ops_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct ops_conn *o = NULL;
		for (unsigned i = 0; i < OPS_MAX && !o; i++)
			if (k->ops[i].st == O_FREE)
				o = &k->ops[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = o };
		if (!o || epoll_ctl(k->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			atomic_fetch_add(&k->m.ops_refused, 1);
			close(fd);
			continue;
		}
		o->src.kind = K_OPS;
		o->fd = fd;
		o->st = O_READ;
		o->in_len = 0;
		o->out = NULL;
		o->out_len = o->out_pos = 0;
		o->deadline = mono_ms() + OPS_MS;
	}
}

static void ops_event(struct tdc_kbs *k, struct ops_conn *o, uint32_t ev)
{
	/* waiting for the keeper, it asks for no events, but a reset is still reported */
	if (o->st == O_HEALTH && (ev & (EPOLLERR | EPOLLHUP)))
		ops_close(k, o);
	else if (o->st == O_READ)
		ops_read(k, o);
	else if (o->st == O_WRITE)
		ops_write(k, o);
}

static void ops_expire(struct tdc_kbs *k, int64_t now)
{
	for (unsigned i = 0; i < OPS_MAX; i++) {
		struct ops_conn *o = &k->ops[i];
		if (o->st == O_FREE || o->deadline > now)
			continue;
		if (o->st == O_HEALTH) {
			o->deadline = now + OPS_MS / 4; /* to write the answer */
			ops_text(k, o, 503, "store did not answer in time\n");
		} else {
			ops_close(k, o);
		}
	}
}

/* ---- reload (a frame from the keeper) and drain ---- */

/* Builds everything new first; swaps only when all of it is there. */
static int apply_reload(struct tdc_kbs *k, struct tdc_rd *r, char spki[65], struct tdc_error *e)
{
	struct tdc_rd cert, key, root;
	uint32_t min_tcb = 0, per_source = 0, queue_max = 0;
	TDC_GUARD(kbs_get_blob(r, 256 * 1024, &cert, "cert", e));
	TDC_GUARD(kbs_get_blob(r, 64 * 1024, &key, "key", e));
	TDC_GUARD(kbs_get_blob(r, 64 * 1024, &root, "sim_root", e));
	TDC_GUARD(tdc_rd_u32le(r, &min_tcb, "min_tcb_eval_num", e));
	TDC_GUARD(tdc_rd_u32le(r, &per_source, "max_connections_per_source", e));
	TDC_GUARD(tdc_rd_u32le(r, &queue_max, "queue_max", e));
	TDC_GUARD(tdc_rd_end(r, "reload", e));
	if ((tdc_rd_len(&root) != 0) != k->has_sim)
		return TDC_FAIL(e, TDC_E_USAGE, "simulator trust cannot be turned on or off by a "
				"reload");
	SSL_CTX *main_ctx = NULL, *busy_ctx = NULL;
	struct kbs_trust *t = NULL;
	char sha[65] = "";
	TDC_GUARD(make_ssl_ctxs(tdc_rd_ptr(&cert), tdc_rd_len(&cert), tdc_rd_ptr(&key),
				tdc_rd_len(&key), &main_ctx, &busy_ctx, e));
	int rc = trust_new(tdc_rd_len(&root) ? tdc_rd_ptr(&root) : NULL, tdc_rd_len(&root),
			   min_tcb, &t, sha, e);
	if (rc < 0) {
		SSL_CTX_free(main_ctx);
		SSL_CTX_free(busy_ctx);
		return rc;
	}
	/* established connections hold their SSL (and so its context) and their trust */
	SSL_CTX_free(k->ssl_ctx);
	SSL_CTX_free(k->busy_ctx);
	k->ssl_ctx = main_ctx;
	k->busy_ctx = busy_ctx;
	trust_put(k->trust);
	k->trust = t;
	k->cfg.min_tcb_eval_num = min_tcb;
	k->cfg.max_conns_per_source =
		per_source == 0 || per_source > k->cfg.max_conns ? k->cfg.max_conns : per_source;
	k->cfg.queue_max = queue_max ? queue_max : TDC_KBS_DEFAULT_QUEUE;
	spki_sha256(k->ssl_ctx, spki);
	return 0;
}

/* Stop accepting; what is not in a request goes now; the rest finishes (tdc_kbs_run). */
static void start_drain(struct tdc_kbs *k)
{
	k->draining = true;
	atomic_store(&k->m.draining, 1);
	if (k->listen_fd >= 0) {
		epoll_ctl(k->ep, EPOLL_CTL_DEL, k->listen_fd, NULL);
		close(k->listen_fd);
		k->listen_fd = -1;
	}
	/* a request already in the socket buffer is in flight too: take it in first, with the
	 * handshake's last flight when the client sent both before we looked */
	for (struct conn *c = k->conns, *next; c; c = next) {
		next = c->next;
		if (c->st == S_HANDSHAKE)
			conn_handshake(k, c);
		else if (c->st == S_READ && c->in_len == 0)
			conn_read(k, c);
	}
	size_t in_flight = 0;
	for (struct conn *c = k->conns, *next; c; c = next) {
		next = c->next;
		if (c->st == S_HANDSHAKE || (c->st == S_READ && c->in_len == 0))
			conn_close(k, c);
		else if (c->st != S_LINGER)
			in_flight++;
	}
	json_object *o = log_obj(k, "info", "draining");
	json_object_object_add(o, "in_flight", json_object_new_int64((int64_t)in_flight));
	emit(k, o);
}

/* ---- the control channel (keeper -> network: metrics, reload) ---- */

static void on_control(struct tdc_kbs *k)
{
	uint8_t *req = NULL, *rep = NULL;
	size_t n = 0, rn = 0;
	struct tdc_wr w;
	if (kbs_frame_recv(k->control_fd, &req, &n, NULL) < 0) {
		/* the keeper is gone: nothing can be released any more */
		log_conn(k, "error", "keeper_lost", NULL, "the keeper closed its control channel");
		k->stop = 1;
		return;
	}
	tdc_wr_init_alloc(&w, 65536);
	if (req[0] == KOP_METRICS) {
		json_object *m = kbs_metrics_json(&k->m);
		const char *t = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
		tdc_wr_u8(&w, KST_OK);
		kbs_put_blob(&w, (const uint8_t *)t, strlen(t));
		json_object_put(m);
	} else if (req[0] == KOP_RELOAD) {
		struct tdc_rd r;
		struct tdc_error e;
		char spki[65] = "";
		tdc_error_clear(&e);
		tdc_rd_init(&r, req + 1, n - 1);
		if (apply_reload(k, &r, spki, &e) == 0) {
			tdc_wr_u8(&w, KST_OK);
			kbs_put_str(&w, spki);
		} else {
			tdc_wr_u8(&w, KST_ERROR);
			tdc_wr_u32le(&w, (uint32_t)e.code);
			kbs_put_str(&w, e.reason);
			kbs_put_str(&w, e.detail);
		}
		ERR_clear_error();
	} else {
		tdc_wr_u8(&w, KST_ERROR);
		tdc_wr_u32le(&w, (uint32_t)TDC_E_USAGE);
		kbs_put_str(&w, "unknown control op");
		kbs_put_str(&w, NULL);
	}
	kbs_frame_free(req, n);
	if (tdc_wr_finish(&w, &rep, &rn, NULL) == 0 &&
	    kbs_frame_send(k->control_fd, rep, rn, NULL) < 0)
		k->stop = 1;
	kbs_frame_free(rep, rn);
}

/* ---- set-up ---- */

/* workers channels to the keeper, and the control channel: socketpairs, this side's ends
 * in k->chan / k->control_fd, the keeper's in theirs[0..workers] (control last). */
static int make_channels(struct tdc_kbs *k, int *theirs, struct tdc_error *e)
{
	k->chan = calloc(k->cfg.workers, sizeof(int));
	if (!k->chan)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	for (unsigned i = 0; i < k->cfg.workers; i++)
		k->chan[i] = -1;
	for (unsigned i = 0; i <= k->cfg.workers; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return TDC_FAILF(e, TDC_E_IO, "cannot create a keeper channel", "%s",
					 strerror(errno));
		if (i < k->cfg.workers)
			k->chan[i] = sv[0];
		else
			k->control_fd = sv[0];
		theirs[i] = sv[1];
	}
	return 0;
}

static struct tdc_kbs *alloc_kbs(const struct tdc_kbs_config *c, const struct tdc_kbs_hooks *h)
{
	struct tdc_kbs *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->listen_fd = k->wake_fd = k->ep = k->spare_fd = k->control_fd = k->ops_fd = -1;
	for (unsigned i = 0; i < OPS_MAX; i++)
		k->ops[i].fd = -1;
	k->ops_src.kind = K_OPS_LISTEN;
	k->listen_src.kind = K_LISTEN;
	k->wake_src.kind = K_WAKE;
	k->control_src.kind = K_CONTROL;
	pthread_mutex_init(&k->lock, NULL);
	pthread_mutex_init(&k->sample_lock, NULL);
	pthread_cond_init(&k->cond, NULL);
	if (h)
		k->hooks = *h;
	/* private copies of the config: one to run with, one as given */
	if (tdc_kbs_config_copy(&k->cfg, c, NULL) < 0 ||
	    tdc_kbs_config_copy(&k->given, c, NULL) < 0) {
		tdc_kbs_config_free(&k->cfg);
		free(k);
		return NULL;
	}
	if (k->cfg.queue_max == 0)
		k->cfg.queue_max = TDC_KBS_DEFAULT_QUEUE;
	if (k->cfg.max_conns == 0)
		k->cfg.max_conns = TDC_KBS_DEFAULT_MAX_CONNS;
	if (k->cfg.workers == 0)
		k->cfg.workers = TDC_KBS_DEFAULT_WORKERS;
	return k;
}

/* Everything of the network side but its threads: TLS, verifier, collateral (the offline
 * directory read now), sockets (the metrics listener too: no listen() in the sandbox),
 * admission. */
static int net_init(struct tdc_kbs *k, struct tdc_error *e)
{
	uint8_t *root = NULL;
	size_t root_len = 0;
	int r = 0;
	if (k->cfg.sim_root && *k->cfg.sim_root)
		r = tdc_file_read(k->cfg.sim_root, 64 * 1024, &root, &root_len, e);
	if (r == 0)
		r = trust_new(root, root_len, k->cfg.min_tcb_eval_num, &k->trust, k->sim_sha, e);
	free(root);
	k->has_sim = r == 0 && k->trust->sim;
	if (r == 0 && kbs_curl_init_once() != 0)
		r = TDC_FAIL(e, TDC_E_INTERNAL, "cannot initialise libcurl");
	if (r == 0) {
		struct kbs_pccs_opts po = { k->cfg.pccs_url, k->cfg.pccs_ca, k->cfg.pccs_timeout_ms };
		r = kbs_coll_new(k->cfg.collateral_dir, &po, true, &k->ctx.coll, e);
	}
	if (r == 0)
		r = load_ssl_ctxs(k, e);
	if (r == 0)
		r = admission_init(k, e);
	if (r == 0) {
		k->ep = epoll_create1(EPOLL_CLOEXEC);
		k->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (k->ep < 0 || k->wake_fd < 0)
			r = TDC_FAILF(e, TDC_E_IO, "cannot create epoll/eventfd", "%s",
				      strerror(errno));
	}
	if (r == 0)
		r = listen_addr(k->cfg.listen, "--listen", &k->listen_fd, &k->port, e);
	if (r == 0)
		r = epoll_add(k, k->listen_fd, &k->listen_src, e);
	if (r == 0 && k->cfg.metrics_listen && *k->cfg.metrics_listen) {
		r = listen_addr(k->cfg.metrics_listen, "--metrics-listen", &k->ops_fd, &k->ops_port,
				e);
		if (r == 0)
			r = epoll_add(k, k->ops_fd, &k->ops_src, e);
	}
	if (r == 0)
		r = epoll_add(k, k->wake_fd, &k->wake_src, e);
	if (r == 0)
		r = epoll_add(k, k->control_fd, &k->control_src, e);
	return r;
}

static int start_workers(struct tdc_kbs *k, struct tdc_error *e)
{
	k->threads = calloc(k->cfg.workers, sizeof(pthread_t));
	if (!k->threads)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	for (unsigned i = 0; i < k->cfg.workers; i++) {
		struct worker_arg *wa = malloc(sizeof(*wa));
		if (!wa)
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		*wa = (struct worker_arg){ k, k->chan[i] };
		if (pthread_create(&k->threads[i], NULL, worker, wa) != 0) {
			free(wa);
			return TDC_FAIL(e, TDC_E_INTERNAL, "cannot start a worker thread");
		}
		k->nthreads++;
	}
	return 0;
}

static void log_started(struct tdc_kbs *k)
{
	json_object *o;
	if (k->sandboxed) {
		const struct kbs_sandbox_report *s = &k->sandbox;
		o = log_obj(k, "info", "sandboxed");
		json_object_object_add(o, "uid", json_object_new_int((int)s->uid));
		json_object_object_add(o, "gid", json_object_new_int((int)s->gid));
		json_object_object_add(o, "no_new_privs", json_object_new_boolean(s->no_new_privs));
		json_object_object_add(o, "landlock_abi", json_object_new_int(s->landlock_abi));
		json_object_object_add(o, "seccomp", json_object_new_boolean(s->seccomp));
		jstr(o, "store", s->store);
		jstr(o, "master_key", s->master_key);
		emit(k, o);
	}
	if (kbs_coll_dir_error(k->ctx.coll))
		log_conn(k, "warning", "collateral_dir", NULL, kbs_coll_dir_error(k->ctx.coll));
	char spki[65];
	spki_sha256(k->ssl_ctx, spki);
	o = log_obj(k, "info", "listening");
	jstr(o, "listen", k->cfg.listen);
	json_object_object_add(o, "port", json_object_new_int(k->port));
	jstr(o, "spki_sha256", spki);
	if (k->ops_fd >= 0) {
		jstr(o, "metrics_listen", k->cfg.metrics_listen);
		json_object_object_add(o, "metrics_port", json_object_new_int(k->ops_port));
	}
	jstr(o, "admin_socket", k->cfg.admin_socket);
	json_object_object_add(o, "workers", json_object_new_int((int)k->cfg.workers));
	jstr(o, "collateral_dir", k->cfg.collateral_dir);
	jstr(o, "pccs_url", k->cfg.pccs_url);
	emit(k, o);
	if (k->has_sim) {
		o = log_obj(k, "WARNING", "simulator_trusted");
		jstr(o, "sim_root_sha256", k->sim_sha);
		jstr(o, "message", "trusting the SIMULATOR root CA instead of Intel's: quotes from "
				   "tdcrypt's simulator are accepted; never use this in production");
		emit(k, o);
	}
	if (k->cfg.has_at) {
		char ts[32];
		o = log_obj(k, "WARNING", "fixed_time");
		jstr(o, "at", tdc_time_format(k->cfg.at, ts, sizeof(ts)));
		jstr(o, "message", "verification time is fixed (--at): testing only");
		emit(k, o);
	}
}

static int64_t keeper_now(void *arg)
{
	return now_s(arg);
}

static void keeper_log(void *arg, const char *line)
{
	struct tdc_kbs *k = arg;
	if (k->hooks.log)
		k->hooks.log(k->hooks.arg, line);
}

/* In one process: the keeper runs as threads beside the network side (tests, embedding).
 * The same channels and the same code as the daemon's two processes. */
int tdc_kbs_new(const struct tdc_kbs_config *c, const struct tdc_kbs_hooks *h,
		struct tdc_kbs **out, struct tdc_error *e)
{
	*out = NULL;
	TDC_GUARD(tdc_kbs_config_check(c, e));
	if (!c->has_at && (!h || !h->now))
		return TDC_FAIL(e, TDC_E_USAGE, "no clock: give hooks.now or a fixed time");
	struct tdc_kbs *k = alloc_kbs(c, h);
	if (!k)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	k->keeper_fds = calloc(k->cfg.workers + 1, sizeof(int));
	int r = k->keeper_fds ? 0 : TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	for (unsigned i = 0; r == 0 && i <= k->cfg.workers; i++)
		k->keeper_fds[i] = -1;
	/* one broker per store: the store stays locked while it runs */
	if (r == 0)
		r = tdc_store_open_ex(k->cfg.db, k->cfg.master_key, TDC_STORE_EXCLUSIVE, &k->store,
				      e);
	if (r == 0)
		r = make_channels(k, k->keeper_fds, e);
	if (r == 0)
		r = net_init(k, e);
	if (r == 0) {
		struct kbs_keeper_opts ko = { keeper_log, keeper_now, k, k->cfg.admin_socket,
					      k->keeper_fds[k->cfg.workers] };
		r = kbs_keeper_start(k->store, &ko, k->keeper_fds, k->cfg.workers, &k->keeper, e);
	}
	if (r == 0)
		r = start_workers(k, e);
	if (r < 0) {
		tdc_kbs_free(k);
		return r;
	}
	log_started(k);
	*out = k;
	return 0;
}

/* ---- the network side as a process of its own (daemon.c) ---- */

int kbs_net_new(const struct tdc_kbs_config *c, const struct tdc_kbs_hooks *h, const int *chan,
		struct tdc_kbs **out, struct tdc_error *e)
{
	*out = NULL;
	struct tdc_kbs *k = alloc_kbs(c, h);
	if (!k)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	k->chan = calloc(k->cfg.workers, sizeof(int));
	if (!k->chan) {
		tdc_kbs_free(k);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	for (unsigned i = 0; i < k->cfg.workers; i++)
		k->chan[i] = chan[i];
	k->control_fd = chan[k->cfg.workers];
	int r = net_init(k, e);
	*out = k; /* even on failure: the control channel tells the keeper */
	return r;
}

int kbs_net_control_fd(const struct tdc_kbs *k)
{
	return k->control_fd;
}

int kbs_net_start(struct tdc_kbs *k, struct tdc_error *e)
{
	TDC_GUARD(kbs_recv_ready(k->control_fd, e));
	TDC_GUARD(kbs_sandbox_enter(k->cfg.user, k->cfg.db, k->cfg.master_key, &k->sandbox, e));
	k->sandboxed = true;
	TDC_GUARD(start_workers(k, e));
	log_started(k);
	if (kbs_send_ready(k->control_fd, NULL) < 0)
		return TDC_FAIL(e, TDC_E_IO, "the keeper is gone");
	return 0;
}

int tdc_kbs_port(const struct tdc_kbs *k)
{
	return k->port;
}

int tdc_kbs_metrics_port(const struct tdc_kbs *k)
{
	return k->ops_fd >= 0 ? k->ops_port : 0;
}

int tdc_kbs_reload(struct tdc_kbs *k, const struct tdc_kbs_config *next, struct tdc_error *e)
{
	struct tdc_kbs_config c;
	if (!k->keeper)
		return TDC_FAIL(e, TDC_E_USAGE, "not a broker in one process");
	TDC_GUARD(tdc_kbs_config_copy(&c, next ? next : &k->given, e));
	int r = kbs_keeper_reload(k->keeper, &k->given, &c, e);
	if (r == 0) {
		tdc_kbs_config_free(&k->given);
		k->given = c;
	} else {
		tdc_kbs_config_free(&c);
	}
	return r;
}

void tdc_kbs_drain(struct tdc_kbs *k)
{
	uint64_t one = 1;
	k->drain_req = 1;
	ssize_t w = write(k->wake_fd, &one, sizeof(one));
	(void)w;
}

const char *tdc_kbs_sim_root_sha256(const struct tdc_kbs *k)
{
	return k->has_sim ? k->sim_sha : NULL;
}

void tdc_kbs_stop(struct tdc_kbs *k)
{
	uint64_t one = 1;
	k->stop = 1;
	ssize_t w = write(k->wake_fd, &one, sizeof(one));
	(void)w;
}

int tdc_kbs_run(struct tdc_kbs *k, struct tdc_error *e)
{
	struct epoll_event evs[MAX_EVENTS];
	while (!k->stop) {
		int n = epoll_wait(k->ep, evs, MAX_EVENTS, next_timeout(k));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return TDC_FAILF(e, TDC_E_IO, "epoll_wait", "%s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			struct evsrc *src = evs[i].data.ptr;
			switch (src->kind) {
			case K_LISTEN:
				if (!k->draining)
					on_accept(k);
				break;
			case K_OPS_LISTEN: ops_accept(k); break;
			case K_OPS: ops_event(k, (struct ops_conn *)src, evs[i].events); break;
			case K_CONTROL: on_control(k); break;
			case K_WAKE: {
				uint64_t v;
				ssize_t rr = read(k->wake_fd, &v, sizeof(v));
				(void)rr;
				on_done(k);
				break;
			}
			case K_CONN: conn_event(k, (struct conn *)src, evs[i].events); break;
			}
		}
		expire(k);
		flush_suppressed(k, false);
		reap(k);
		release_memory(k);
		if (k->drain_req && !k->draining)
			start_drain(k);
		/* drained: every exchange in flight answered and closed, every job back */
		if (k->draining && !k->conns && !k->jobs_out) {
			reap(k);
			emit(k, log_obj(k, "info", "drained"));
			break;
		}
	}
	flush_suppressed(k, true);
	json_object *o = log_obj(k, "info", "stopping");
	emit(k, o);
	return 0;
}

void tdc_kbs_free(struct tdc_kbs *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	k->w_stop = true;
	/* queued work is dropped; the running jobs finish */
	while (k->q_head) {
		struct job *j = k->q_head;
		k->q_head = j->next;
		job_free(j);
	}
	k->q_tail = NULL;
	k->q_len = 0;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
	for (unsigned i = 0; i < k->nthreads; i++)
		pthread_join(k->threads[i], NULL);
	free(k->threads);
	while (k->done) {
		struct job *j = k->done;
		k->done = j->next;
		job_free(j);
	}
	while (k->conns)
		conn_close(k, k->conns);
	reap(k);
	for (unsigned i = 0; i < OPS_MAX; i++)
		ops_close(k, &k->ops[i]);
	if (k->ops_fd >= 0)
		close(k->ops_fd);
	if (k->listen_fd >= 0)
		close(k->listen_fd);
	/* this side's channel ends: the keeper's threads see them close and end */
	for (unsigned i = 0; k->chan && i < k->cfg.workers; i++)
		if (k->chan[i] >= 0)
			close(k->chan[i]);
	free(k->chan);
	if (k->control_fd >= 0)
		close(k->control_fd);
	kbs_keeper_stop(k->keeper);
	for (unsigned i = 0; k->keeper_fds && i <= k->cfg.workers; i++)
		if (k->keeper_fds[i] >= 0)
			close(k->keeper_fds[i]);
	free(k->keeper_fds);
	if (k->wake_fd >= 0)
		close(k->wake_fd);
	if (k->ep >= 0)
		close(k->ep);
	SSL_CTX_free(k->ssl_ctx);
	SSL_CTX_free(k->busy_ctx);
	if (k->spare_fd >= 0)
		close(k->spare_fd);
	kbs_sources_free(&k->sources);
	kbs_coll_free(k->ctx.coll);
	trust_put(k->trust);
	tdc_store_close(k->store);
	tdc_kbs_config_free(&k->cfg);
	tdc_kbs_config_free(&k->given);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
	pthread_mutex_destroy(&k->sample_lock);
	free(k);
}
