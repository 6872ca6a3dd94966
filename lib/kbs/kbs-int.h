/* SPDX-License-Identifier: Apache-2.0 */
/* Private to lib/kbs (and its tests): HTTP parsing, the release decision,
 * collateral sources, the PCCS client and the admin protocol. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <json-c/json.h>
#include <openssl/x509.h>

#include "tdcrypt/collateral.h"
#include "tdcrypt/error.h"
#include "tdcrypt/kbs.h"
#include "tdcrypt/quote.h"
#include "tdcrypt/store.h"
#include "tdcrypt/verify.h"
#include "util/limits.h"

/* ---- reason codes (PROTOCOL.md §6.2) ---- */

enum kbs_reason {
	KBS_OK = 0,
	KBS_BAD_REQUEST,
	KBS_UNSUPPORTED_VERSION,
	KBS_NOT_FOUND,
	KBS_METHOD_NOT_ALLOWED,
	KBS_TOO_LARGE,
	KBS_EVIDENCE_INVALID,
	KBS_QUOTE_INVALID,
	KBS_TCB_REFUSED,
	KBS_UNKNOWN_SECRET,
	KBS_POLICY_DENIED,
	KBS_COLLATERAL_UNAVAILABLE,
	KBS_BUSY,
	KBS_TIMEOUT,
	KBS_INTERNAL,
	KBS_HANDSHAKE, /* audit/log only: no HTTP response is possible */
	KBS__REASONS,
};

const char *kbs_reason_code(enum kbs_reason r);
int kbs_reason_http(enum kbs_reason r);

/* ---- HTTP/1.1 request parsing and responses (http.c) ---- */

enum { KBS_HTTP_DONE = 0, KBS_HTTP_MORE = 1, KBS_HTTP_ERROR = -1 };

enum kbs_route { KBS_ROUTE_KEY = 0, KBS_ROUTE_METRICS, KBS_ROUTE_HEALTHZ };

struct kbs_http_req {
	char method[16];
	enum kbs_route route;
	char secret_id[TDC_MAX_KBS_SECRET_ID + 1];
	unsigned version;          /* from the /v<N>/ path prefix */
	bool conn_close;           /* Connection: close */
	size_t header_len;         /* request line + fields + CRLF CRLF */
	size_t body_len;           /* Content-Length */
	char agent[TDC_MAX_KBS_AGENT + 1];
	/* the CC event log of the evidence (PROTOCOL.md section 6.1), decoded; owned */
	uint8_t *event_log;
	size_t event_log_len;
	bool has_ccel_table;
	uint8_t ccel_table[56];
};
void kbs_http_req_free(struct kbs_http_req *req);

/*
 * Parses one request from the first len bytes received (PROTOCOL.md §6.1).
 * KBS_HTTP_MORE: incomplete, read more (never when len reaches the caps);
 * KBS_HTTP_DONE: *req filled, the request is header_len + body_len bytes;
 * KBS_HTTP_ERROR: *reason is the code to answer with, e the full reason.
 * Partial requests are checked as far as they go, so garbage fails early.
 */
int kbs_http_parse(const uint8_t *buf, size_t len, struct kbs_http_req *req,
		   enum kbs_reason *reason, struct tdc_error *e);
/* The same parser for the metrics listener (PROTOCOL.md section 9): only GET /metrics and
 * GET /healthz, Content-Length optional and then 0, no body. */
int kbs_http_parse_ops(const uint8_t *buf, size_t len, struct kbs_http_req *req,
		       enum kbs_reason *reason, struct tdc_error *e);
/* A plain response with Connection: close into *out (malloc'd, *out_len bytes). */
int kbs_http_plain_response(int status, const char *content_type, const char *body,
			    size_t body_len, char **out, size_t *out_len, struct tdc_error *e)
	TDC_MUST_USE;

/*
 * A complete response into *out (locked, wiped on free): status from reason,
 * the headers of §6.2 and a JSON body: the key (base64) when key != NULL,
 * the error code otherwise. secret_id may be NULL. *out_len is the length of
 * the response (out->len is the size of the allocation).
 */
int kbs_http_response(enum kbs_reason reason, const char *request_id, const char *secret_id,
		      const struct tdc_secret *key, bool close, struct tdc_secret *out,
		      size_t *out_len, struct tdc_error *e) TDC_MUST_USE;

/* ---- collateral sources (collateral.c, pccs.c) ---- */

struct kbs_pccs_raw {
	struct tdc_buf tcb_info, tcb_info_chain;
	struct tdc_buf qe_identity, qe_identity_chain;
	struct tdc_buf pck_crl, pck_crl_chain;
	struct tdc_buf root_ca_crl;
};
void kbs_pccs_raw_free(struct kbs_pccs_raw *r);

struct kbs_pccs_opts {
	const char *url;      /* base, without the trailing /sgx or /tdx */
	const char *ca_file;  /* NULL: system default */
	uint32_t timeout_ms;
};

/* curl_global_init, once per process (thread-safe); 0 on success. */
int kbs_curl_init_once(void);

/* GETs the four v4 resources for fmspc (and the PCK CRL of the platform or
 * processor CA) with their issuer chain headers. */
int kbs_pccs_fetch(const struct kbs_pccs_opts *o, const uint8_t fmspc[6], bool processor_ca,
		   struct kbs_pccs_raw *out, struct tdc_error *e) TDC_MUST_USE;
/* Normalises raw responses into collateral (body split, chains, CRLs to DER). */
int kbs_pccs_to_collateral(const struct kbs_pccs_raw *r, struct tdc_collateral *c,
			   struct tdc_error *e) TDC_MUST_USE;

/* Earliest nextUpdate of the TCB info, QE identity and both CRLs. */
int kbs_collateral_next_update(const struct tdc_collateral *c, int64_t *out, struct tdc_error *e)
	TDC_MUST_USE;
int kbs_collateral_copy(const struct tdc_collateral *src, struct tdc_collateral *dst,
			struct tdc_error *e) TDC_MUST_USE;

struct kbs_coll;
/* Collateral for quotes: in memory, then the PCCS (stored in the store's
 * cache), then the store's cache, then the offline directory. */
/* dir (read at once, bundles kept in memory) and pccs may be NULL; cache: the store's
 * collateral cache through the keeper (the calling threads have keeper channels). */
int kbs_coll_new(const char *dir, const struct kbs_pccs_opts *pccs, bool cache,
		 struct kbs_coll **out, struct tdc_error *e) TDC_MUST_USE;
void kbs_coll_free(struct kbs_coll *k);
/* Why the offline directory did not load at start, or NULL. */
const char *kbs_coll_dir_error(const struct kbs_coll *k);
/* The FMSPC and PCK CA kind (platform or processor) of a parsed quote's PCK chain. */
int kbs_quote_fmspc(const struct tdc_quote *q, uint8_t fmspc[6], bool *processor_ca,
		    struct tdc_error *e) TDC_MUST_USE;

/* kbs_quote_fmspc, remembered by the SHA-256 of the quote's certification data.
 * The result only selects collateral; the verifier checks the chain itself. */
int kbs_coll_quote_fmspc(struct kbs_coll *k, const struct tdc_quote *q, uint8_t fmspc[6],
			 bool *processor_ca, struct tdc_error *e) TDC_MUST_USE;

struct kbs_coll_info {
	const char *source;  /* "memory", "pccs", "cache" (store) or "dir" */
	int64_t next_update; /* earliest nextUpdate of the pieces */
};
/*
 * A copy of the collateral for (fmspc, ca) at now; release with
 * tdc_collateral_free. Sources in order: memory, PCCS (stored in the cache),
 * the store's cache, the offline directory; the first one valid at now wins,
 * otherwise the freshest expired one is returned (verification then fails
 * closed). Thread-safe.
 */
int kbs_coll_get(struct kbs_coll *k, const uint8_t fmspc[6], bool processor_ca, int64_t now,
		 struct tdc_collateral *out, struct kbs_coll_info *info, struct tdc_error *e)
	TDC_MUST_USE;

/* ---- the release decision (decide.c) ---- */

struct kbs_ctx {
	struct tdc_verifier *verifier;
	struct kbs_coll *coll;
	bool sim_trusted;
};

/* What the first request of a connection established, kept for the next ones. */
struct kbs_peer {
	bool checked;
	enum kbs_reason reason; /* KBS_OK if the evidence and quote verified */
	char detail[512];
	char verdict[48];
	char claims_digest[65];
	unsigned version;
	struct tdc_verdict v;
};
void kbs_peer_free(struct kbs_peer *p);

struct kbs_decision {
	enum kbs_reason reason;
	char detail[1200];    /* full reason, for audit and log */
	bool authenticated;   /* the quote verified and is bound to the TLS key */
	char verdict[48];     /* TCB status or verification error name */
	char claims_digest[65];
	struct tdc_secret key; /* filled by the release */
};
void kbs_decision_free(struct kbs_decision *d);

/*
 * PROTOCOL.md §5.1 for one request: evidence and binding of cert, quote
 * verification at now (cached in p for the connection), the request's event log
 * replayed to the quote's RTMRs, then the secret's policy. KBS_OK means "release":
 * the caller asks the keeper for the key (kbs_vault_release). Never fails: the outcome
 * is in d.
 */
void kbs_decide(struct kbs_ctx *x, X509 *cert, struct kbs_peer *p,
		const struct kbs_http_req *req, int64_t now, struct kbs_decision *d);

/* ---- admission (admission.c): used by the event loop thread only ---- */

/* One remote address (every port of a host) and its connections. */
struct kbs_source {
	struct kbs_source *next;
	uint8_t key[17];
	size_t bucket;
	unsigned refs;      /* connections that name it */
	unsigned conns;     /* of those, holding a normal slot */
	unsigned busy;      /* of those, in the busy lane */
	void *hs_head;      /* its connections still in the TLS handshake, oldest first */
	void *hs_tail;
};
struct kbs_sources {
	struct kbs_source **buckets;
	size_t nbuckets, n;
	uint8_t seed[16];
};
int kbs_sources_init(struct kbs_sources *t, size_t expected);
void kbs_sources_free(struct kbs_sources *t);
/* The source of ss, created at the first reference; NULL when out of memory. */
struct kbs_source *kbs_source_get(struct kbs_sources *t, const struct sockaddr_storage *ss);
/* Drops a reference; the source is freed with its last one. */
void kbs_source_put(struct kbs_sources *t, struct kbs_source *s);

/* Token bucket: burst tokens, refilled at per_minute. */
struct kbs_bucket {
	int64_t milli, burst_milli, last_ms;
	unsigned per_minute;
};
void kbs_bucket_init(struct kbs_bucket *b, unsigned burst, unsigned per_minute, int64_t now_ms);
bool kbs_bucket_take(struct kbs_bucket *b, int64_t now_ms);

/* At most KBS_RATELOG_LINES lines of one kind per window; the rest are counted and
 * reported once the window is over ("suppressed", with the count). */
#define KBS_RATELOG_WINDOW_MS 10000
#define KBS_RATELOG_LINES 5
struct kbs_ratelog {
	int64_t window_ms;
	unsigned logged;
	uint64_t suppressed;
};
bool kbs_ratelog_allow(struct kbs_ratelog *r, int64_t now_ms);
/* The count to report now (and a new window), or 0. */
uint64_t kbs_ratelog_due(struct kbs_ratelog *r, int64_t now_ms);

/* ---- counters (metrics.c): one set, rendered as JSON (admin "metrics") and as
 * Prometheus text (the metrics listener) ---- */

/* Fixed histogram buckets, upper bounds in microseconds (PROTOCOL.md section 9). */
#define KBS_HIST_BUCKETS 14
extern const uint32_t kbs_hist_bounds_us[KBS_HIST_BUCKETS];
struct kbs_hist {
	_Atomic uint64_t n[KBS_HIST_BUCKETS + 1]; /* per bucket (not cumulative); last: +Inf */
	_Atomic uint64_t sum_us;
};
void kbs_hist_add(struct kbs_hist *h, int64_t us);

/* Why a TLS handshake did not finish. */
enum kbs_hs_class {
	KBS_HS_TIMEOUT,         /* not finished within the handshake timeout */
	KBS_HS_NO_CERTIFICATE,  /* the client sent no certificate */
	KBS_HS_CERTIFICATE,     /* its certificate was refused (not one self-signed P-256) */
	KBS_HS_PROTOCOL,        /* any other TLS alert or error */
	KBS_HS_CLOSED,          /* the peer closed or reset the connection */
	KBS_HS__N,
};
const char *kbs_hs_class_name(enum kbs_hs_class c);

/* The keeper operations timed (the op byte of the request, in this order). */
enum kbs_store_op {
	KBS_SOP_POLICY,
	KBS_SOP_RELEASE,
	KBS_SOP_AUDIT,
	KBS_SOP_CACHE_GET,
	KBS_SOP_CACHE_PUT,
	KBS_SOP_PING,
	KBS_SOP__N,
};
const char *kbs_store_op_name(enum kbs_store_op op);

/* Added to by the loop and the workers. */
struct kbs_metrics {
	_Atomic uint64_t accepted;          /* TCP connections taken into a slot */
	_Atomic uint64_t refused_limit;     /* closed at accept: no slot, no busy lane */
	_Atomic uint64_t refused_source;    /* of those, because of the per-source limit */
	_Atomic uint64_t busy;              /* answered busy (connection limit or queue full) */
	_Atomic uint64_t evicted_handshake; /* stalled handshakes closed for a new connection */
	_Atomic uint64_t evicted_idle;      /* idle keep-alive connections closed likewise */
	_Atomic uint64_t handshake[KBS_HS__N];
	_Atomic uint64_t released;
	_Atomic uint64_t denied[KBS__REASONS]; /* decisions by reason (busy: above) */
	_Atomic uint64_t unauthenticated;   /* refusals before a quote verified */
	_Atomic uint64_t audit_sampled;     /* of those, written to the audit trail */
	_Atomic uint64_t audit_skipped;     /* and left out of it (counted here) */
	_Atomic uint64_t log_suppressed;    /* log lines left out by the rate limit */
	_Atomic uint64_t memory_trims;      /* free memory given back after a flood */
	_Atomic uint64_t ops_refused;       /* metrics listener: over its connection cap */
	_Atomic uint64_t open, open_busy, peak, queue, draining; /* gauges */
	struct kbs_hist verify;             /* the release decision (kbs_decide) */
	struct kbs_hist store[KBS_SOP__N];  /* keeper round trips, by operation */
};
/* {"accepted":N,...} of m (a new object). */
json_object *kbs_metrics_json(const struct kbs_metrics *m);
/* The Prometheus text exposition (format 0.0.4) of m: malloc'd, NUL-terminated. */
char *kbs_metrics_prometheus(const struct kbs_metrics *m, size_t *len);

/* ---- admin protocol (admin.c) ---- */

/*
 * One JSON request line -> one JSON reply (malloc'd, no newline). Ops:
 * secret.add {id, key_b64 | generate, policy?}, secret.list, secret.rm {id},
 * secret.rotate {id, key_b64 | generate}, secret.import {json},
 * policy.set {id, policy}, policy.show {id}, audit.list {secret_id?, after?,
 * limit?}, metrics (the counters of m; m may be NULL). Replies: {"ok":true,...} or
 * {"ok":false,"error":code,"message":..}.
 */
char *kbs_admin_handle(struct tdc_store *s, json_object *(*metrics)(void *arg), void *marg,
		       const char *line, size_t len, int64_t now);

/* ---- privilege separation: the keeper and its protocol (keeper*.c, vault.c) ---- */

#define KBS_KEEPER_MAX_FRAME (TDC_MAX_CACHE_BODY + 65536u)
#define KBS_KEEPER_MAX_REASON 4096u

/* ops, network process -> keeper (worker channels), and keeper -> network (control) */
enum kbs_kop {
	KOP_POLICY = 1,  /* secret_id -> has_policy, policy */
	KOP_RELEASE = 2, /* a "released" record -> audit_id, key */
	KOP_AUDIT = 3,   /* a "denied" record -> audit_id */
	KOP_CACHE_GET = 4,
	KOP_CACHE_PUT = 5,
	KOP_PING = 6,     /* the store answers (/healthz) */
	KOP_METRICS = 16, /* control: -> the network process's counters (JSON) */
	KOP_READY = 17,   /* control: the keeper has the store (status, error) / listening */
	KOP_RELOAD = 18,  /* control: certificate, key, root, limits -> spki_sha256 | error */
};
enum kbs_kst { KST_OK = 0, KST_NOT_FOUND = 1, KST_ERROR = 2 };

struct tdc_wr;
struct tdc_rd;
int kbs_frame_send(int fd, const uint8_t *p, size_t n, struct tdc_error *e) TDC_MUST_USE;
/* *p malloc'd (free with kbs_frame_free, which wipes it). */
int kbs_frame_recv(int fd, uint8_t **p, size_t *n, struct tdc_error *e) TDC_MUST_USE;
void kbs_frame_free(uint8_t *p, size_t n);
void kbs_put_str(struct tdc_wr *w, const char *s);
void kbs_put_blob(struct tdc_wr *w, const uint8_t *p, size_t n);
void kbs_put_record(struct tdc_wr *w, const struct tdc_audit_record *rec);
int kbs_get_blob(struct tdc_rd *r, size_t cap, struct tdc_rd *out, const char *field,
		 struct tdc_error *e) TDC_MUST_USE;
int kbs_get_str(struct tdc_rd *r, size_t cap, char **out, const char *field,
		struct tdc_error *e) TDC_MUST_USE;
int kbs_get_i64(struct tdc_rd *r, int64_t *v, const char *field, struct tdc_error *e)
	TDC_MUST_USE;
/* The strings are malloc'd (kbs_record_free). */
int kbs_get_record(struct tdc_rd *r, struct tdc_audit_record *rec, struct tdc_error *e)
	TDC_MUST_USE;
void kbs_record_free(struct tdc_audit_record *rec);

struct kbs_keeper_opts {
	void (*log)(void *arg, const char *json_line); /* may be NULL */
	int64_t (*now)(void *arg);
	void *arg;
	const char *admin_socket; /* "" or NULL: none */
	int control_fd;           /* the keeper's end of the control channel, or -1 */
};
struct kbs_keeper;
/* One serving thread per channel fd (the keeper's ends), and the admin socket. */
int kbs_keeper_start(struct tdc_store *s, const struct kbs_keeper_opts *o, const int *fds,
		     size_t n, struct kbs_keeper **out, struct tdc_error *e) TDC_MUST_USE;
/* Closes the admin socket, ends the channels and joins their threads. */
void kbs_keeper_stop(struct kbs_keeper *k);
/*
 * A reload (SIGHUP), from a thread other than the network side's loop: next is checked
 * against running (tdc_kbs_config_reloadable, tdc_kbs_config_check), its certificate,
 * key and simulator root are read here (the network process's sandbox cannot read
 * them) and sent on the control channel; the network side builds and swaps them or
 * answers why not, keeping what it had. next == NULL: the new configuration did not
 * load and e says why. Logs "reloaded" or "reload_failed" (one line).
 */
int kbs_keeper_reload(struct kbs_keeper *k, const struct tdc_kbs_config *running,
		      const struct tdc_kbs_config *next, struct tdc_error *e) TDC_MUST_USE;

/* The calling thread's channel to the keeper (a worker binds its own at start), and the
 * counters its round trips are timed into (may be NULL). */
void kbs_vault_bind(int fd, struct kbs_metrics *m);
/* The keeper and its store answer. */
int kbs_vault_ping(struct tdc_error *e) TDC_MUST_USE;
/* *policy: malloc'd JSON, or NULL when the secret has none; unknown: TDC_E_NOT_FOUND. */
int kbs_vault_policy(const char *secret_id, char **policy, struct tdc_error *e) TDC_MUST_USE;
/* The keeper reads the secret, makes rec (decision released) durable, then sends the key. */
int kbs_vault_release(const struct tdc_audit_record *rec, struct tdc_secret *key,
		      int64_t *audit_id, struct tdc_error *e) TDC_MUST_USE;
/* A denial (rec->decision denied). */
int kbs_vault_audit(const struct tdc_audit_record *rec, int64_t *audit_id, struct tdc_error *e)
	TDC_MUST_USE;
int kbs_vault_cache_get(const char *key, const char *kind, uint8_t **body, size_t *len,
			int64_t *next_update, int64_t *fetched, bool *found, struct tdc_error *e)
	TDC_MUST_USE;
int kbs_vault_cache_put(const char *key, const char *kind, const uint8_t *body, size_t len,
			int64_t next_update, int64_t fetched, struct tdc_error *e) TDC_MUST_USE;

/* ---- the network side as its own process (server.c, daemon.c) ---- */

/* chan: this side's channel ends, one per worker and the control channel last
 * (taken over). Sets up TLS, the verifier, collateral and the listening socket. */
int kbs_net_new(const struct tdc_kbs_config *c, const struct tdc_kbs_hooks *h, const int *chan,
		struct tdc_kbs **out, struct tdc_error *e) TDC_MUST_USE;
/* Waits for the keeper's READY, enters the sandbox, starts the workers, logs
 * "listening" and answers READY. */
int kbs_net_start(struct tdc_kbs *k, struct tdc_error *e) TDC_MUST_USE;
int kbs_net_control_fd(const struct tdc_kbs *k);
/* READY on the control channel (err NULL or clear: ready). */
int kbs_send_ready(int fd, const struct tdc_error *err);
int kbs_recv_ready(int fd, struct tdc_error *e) TDC_MUST_USE;

/* ---- the network process's sandbox (sandbox.c) ---- */

struct kbs_sandbox_report {
	unsigned uid, gid;
	bool dropped;       /* setuid/setgid to the configured user */
	bool no_new_privs;
	int landlock_abi;   /* 0: not available */
	bool seccomp;
	char store[48], master_key[48]; /* what opening them now gives, e.g. "EACCES" */
};
/*
 * Called in the network process, before its threads start: drops to user (when root),
 * no new privileges, Landlock (read-only access to what name resolution and TLS need),
 * a seccomp allow-list; then checks that the store and the master key no longer open
 * and fails closed if they do.
 */
int kbs_sandbox_enter(const char *user, const char *store, const char *master_key,
		      struct kbs_sandbox_report *rep, struct tdc_error *e) TDC_MUST_USE;
