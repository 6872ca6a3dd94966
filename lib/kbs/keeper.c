/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keeper: the only part of the broker that holds the store and the master key
 * (docs/ARCHITECTURE.md, "Privilege separation"). It answers the network process's
 * workers, one thread per worker channel, with exactly these: the policy of a secret;
 * release a secret for a decision (the secret read, the "released" audit record made
 * durable, then the key sent); record a denial; read and write the collateral cache.
 * It serves the root-only admin socket itself, so admin traffic never passes through
 * the network process. Every frame from the network process is hostile input.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "kbs/kbs-int.h"
#include "util/json.h"
#include "util/rd.h"
#include "util/util.h"
#include "util/wr.h"

#define ADMIN_MAX 16u
#define ADMIN_MS 30000
/* SQLite's unused cache goes back after this many requests */
#define RELEASE_MEMORY_EVERY 2048u

struct chan {
	struct kbs_keeper *k;
	int fd;
	pthread_t t;
	bool started;
};

struct admin_conn {
	int fd;
	char peer[64];
	struct tdc_secret buf; /* may hold a secret: locked, wiped */
	size_t len;
	int64_t deadline;
};

struct kbs_keeper {
	struct tdc_store *store;
	struct kbs_keeper_opts o;
	struct chan *chans;
	size_t n;
	atomic_uint served;
	/* the control channel to the network process (metrics), one request at a time */
	pthread_mutex_t control_lock;
	/* admin socket */
	int admin_fd, wake[2];
	pthread_t admin_t;
	bool admin_started;
	struct admin_conn conns[ADMIN_MAX];
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void klog(struct kbs_keeper *k, const char *level, const char *event, const char *peer,
		 const char *reason)
{
	if (!k->o.log)
		return;
	char ts[32];
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ts", json_object_new_string(tdc_time_format(
						  k->o.now(k->o.arg), ts, sizeof(ts))));
	json_object_object_add(o, "level", json_object_new_string(level));
	json_object_object_add(o, "event", json_object_new_string(event));
	if (peer)
		json_object_object_add(o, "peer", json_object_new_string(peer));
	if (reason)
		json_object_object_add(o, "reason", json_object_new_string(reason));
	k->o.log(k->o.arg, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

/* ---- answers ---- */

static void put_error(struct tdc_wr *w, const struct tdc_error *e)
{
	tdc_wr_u8(w, KST_ERROR);
	tdc_wr_u32le(w, (uint32_t)(e->code ? e->code : TDC_E_INTERNAL));
	kbs_put_str(w, e->reason ? e->reason : "keeper error");
	kbs_put_str(w, e->detail);
}

static void op_policy(struct kbs_keeper *k, struct tdc_rd *r, struct tdc_wr *w)
{
	struct tdc_error e;
	char *id = NULL, *policy = NULL;
	tdc_error_clear(&e);
	int rc = kbs_get_str(r, TDC_MAX_SECRET_ID_LEN, &id, "secret_id", &e);
	if (rc == 0)
		rc = tdc_rd_end(r, "policy request", &e);
	if (rc == 0)
		rc = tdc_store_policy_get(k->store, id, &policy, &e);
	if (rc == 0) {
		tdc_wr_u8(w, KST_OK);
		tdc_wr_u8(w, policy != NULL);
		kbs_put_str(w, policy);
	} else {
		put_error(w, &e);
	}
	free(id);
	free(policy);
}

/* The secret first (so that a "released" record never stands for a key that was not
 * there), then its record made durable, then the key. */
static void op_release(struct kbs_keeper *k, struct tdc_rd *r, struct tdc_wr *w)
{
	struct tdc_error e;
	struct tdc_audit_record rec;
	struct tdc_secret key = { 0 };
	int64_t id = 0;
	tdc_error_clear(&e);
	int rc = kbs_get_record(r, &rec, &e);
	if (rc < 0) {
		put_error(w, &e);
		return;
	}
	rc = tdc_rd_end(r, "release request", &e);
	if (rc == 0 && (rec.decision != TDC_AUDIT_RELEASED || !rec.secret_id))
		rc = TDC_FAIL(&e, TDC_E_USAGE, "a release names its secret and is a release");
	if (rc == 0)
		rc = tdc_store_secret_get(k->store, rec.secret_id, &key, &e);
	if (rc == 0 && key.len > TDC_MAX_KBS_SECRET)
		rc = TDC_FAILF(&e, TDC_E_LIMIT, "secret larger than the protocol allows",
			       "%s: %zu bytes, limit %u", rec.secret_id, key.len, TDC_MAX_KBS_SECRET);
	if (rc == 0)
		rc = tdc_store_audit_append(k->store, &rec, &id, &e);
	if (rc == 0) {
		tdc_wr_u8(w, KST_OK);
		tdc_wr_u64le(w, (uint64_t)id);
		kbs_put_blob(w, key.data, key.len);
	} else {
		put_error(w, &e);
	}
	tdc_secret_free(&key);
	kbs_record_free(&rec);
}

static void op_audit(struct kbs_keeper *k, struct tdc_rd *r, struct tdc_wr *w)
{
	struct tdc_error e;
	struct tdc_audit_record rec;
	int64_t id = 0;
	tdc_error_clear(&e);
	int rc = kbs_get_record(r, &rec, &e);
	if (rc < 0) {
		put_error(w, &e);
		return;
	}
	rc = tdc_rd_end(r, "audit request", &e);
	/* a "released" record only ever comes with a release */
	if (rc == 0 && rec.decision != TDC_AUDIT_DENIED)
		rc = TDC_FAIL(&e, TDC_E_USAGE, "only denials are recorded on their own");
	if (rc == 0)
		rc = tdc_store_audit_append(k->store, &rec, &id, &e);
	if (rc == 0) {
		tdc_wr_u8(w, KST_OK);
		tdc_wr_u64le(w, (uint64_t)id);
	} else {
		put_error(w, &e);
	}
	kbs_record_free(&rec);
}

static void op_cache_get(struct kbs_keeper *k, struct tdc_rd *r, struct tdc_wr *w)
{
	struct tdc_error e;
	char *key = NULL, *kind = NULL;
	uint8_t *body = NULL;
	size_t len = 0;
	int64_t next = 0, fetched = 0;
	bool found = false;
	tdc_error_clear(&e);
	int rc = kbs_get_str(r, 128, &key, "key", &e);
	if (rc == 0)
		rc = kbs_get_str(r, 64, &kind, "kind", &e);
	if (rc == 0)
		rc = tdc_rd_end(r, "cache request", &e);
	if (rc == 0)
		rc = tdc_store_collateral_get(k->store, key, kind, &body, &len, &next, &fetched,
					      &found, &e);
	if (rc < 0) {
		put_error(w, &e);
	} else if (!found) {
		tdc_wr_u8(w, KST_NOT_FOUND);
	} else {
		tdc_wr_u8(w, KST_OK);
		kbs_put_blob(w, body, len);
		tdc_wr_u64le(w, (uint64_t)next);
		tdc_wr_u64le(w, (uint64_t)fetched);
	}
	free(body);
	free(key);
	free(kind);
}

static void op_cache_put(struct kbs_keeper *k, struct tdc_rd *r, struct tdc_wr *w)
{
	struct tdc_error e;
	char *key = NULL, *kind = NULL;
	struct tdc_rd body;
	int64_t next = 0, fetched = 0;
	tdc_error_clear(&e);
	int rc = kbs_get_str(r, 128, &key, "key", &e);
	if (rc == 0)
		rc = kbs_get_str(r, 64, &kind, "kind", &e);
	if (rc == 0)
		rc = kbs_get_blob(r, TDC_MAX_CACHE_BODY, &body, "body", &e);
	if (rc == 0)
		rc = kbs_get_i64(r, &next, "next_update", &e);
	if (rc == 0)
		rc = kbs_get_i64(r, &fetched, "fetched", &e);
	if (rc == 0)
		rc = tdc_rd_end(r, "cache request", &e);
	if (rc == 0)
		rc = tdc_store_collateral_put(k->store, key, kind, tdc_rd_ptr(&body),
					      tdc_rd_len(&body), next, fetched, &e);
	if (rc == 0)
		tdc_wr_u8(w, KST_OK);
	else
		put_error(w, &e);
	free(key);
	free(kind);
}

/* The store answers a read: what /healthz means by "the store is reachable". */
static void op_ping(struct kbs_keeper *k, struct tdc_rd *r, struct tdc_wr *w)
{
	struct tdc_error e;
	int version = 0;
	tdc_error_clear(&e);
	int rc = tdc_rd_end(r, "ping", &e);
	if (rc == 0)
		rc = tdc_store_schema_version(k->store, &version, &e);
	if (rc == 0)
		tdc_wr_u8(w, KST_OK);
	else
		put_error(w, &e);
}

static void *serve(void *arg)
{
	struct chan *c = arg;
	struct kbs_keeper *k = c->k;
	for (;;) {
		uint8_t *req, *rep = NULL, op;
		size_t n, rn = 0;
		struct tdc_error e;
		struct tdc_rd r;
		struct tdc_wr w;
		tdc_error_clear(&e);
		if (kbs_frame_recv(c->fd, &req, &n, &e) < 0)
			break; /* the network process is gone (or misbehaved): this channel ends */
		tdc_rd_init(&r, req, n);
		tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
		if (tdc_rd_u8(&r, &op, "op", NULL) < 0)
			op = 0;
		switch (op) {
		case KOP_POLICY: op_policy(k, &r, &w); break;
		case KOP_RELEASE: op_release(k, &r, &w); break;
		case KOP_AUDIT: op_audit(k, &r, &w); break;
		case KOP_CACHE_GET: op_cache_get(k, &r, &w); break;
		case KOP_CACHE_PUT: op_cache_put(k, &r, &w); break;
		case KOP_PING: op_ping(k, &r, &w); break;
		default:
			TDC_FAILF(&e, TDC_E_USAGE, "unknown keeper op", "%u", op);
			put_error(&w, &e);
		}
		kbs_frame_free(req, n);
		int rc = tdc_wr_finish(&w, &rep, &rn, &e);
		if (rc == 0)
			rc = kbs_frame_send(c->fd, rep, rn, &e);
		kbs_frame_free(rep, rn);
		if (rc < 0)
			break;
		if (atomic_fetch_add(&k->served, 1) % RELEASE_MEMORY_EVERY == RELEASE_MEMORY_EVERY - 1) {
			tdc_store_release_memory(k->store);
			malloc_trim(0);
		}
	}
	shutdown(c->fd, SHUT_RDWR);
	return NULL;
}

/* ---- metrics, asked of the network process ---- */

static json_object *net_metrics(void *arg)
{
	struct kbs_keeper *k = arg;
	uint8_t op = KOP_METRICS, *rep = NULL;
	size_t n = 0;
	json_object *m = NULL;
	if (k->o.control_fd < 0)
		return NULL;
	pthread_mutex_lock(&k->control_lock);
	if (kbs_frame_send(k->o.control_fd, &op, 1, NULL) == 0 &&
	    kbs_frame_recv(k->o.control_fd, &rep, &n, NULL) == 0) {
		struct tdc_rd r, js;
		uint8_t st;
		tdc_rd_init(&r, rep, n);
		if (tdc_rd_u8(&r, &st, "status", NULL) == 0 && st == KST_OK &&
		    kbs_get_blob(&r, 65536, &js, "metrics", NULL) == 0)
			if (tdc_json_parse_object(tdc_rd_ptr(&js), tdc_rd_len(&js), 65536,
						  "metrics", &m, NULL) < 0)
				m = NULL;
	}
	pthread_mutex_unlock(&k->control_lock);
	kbs_frame_free(rep, n);
	return m;
}

/* ---- reload, sent to the network process ---- */

/* the broker's certificate chain and key, and the simulator root (PEM) */
#define RELOAD_MAX_CERT (256u * 1024u)
#define RELOAD_MAX_KEY (64u * 1024u)
#define RELOAD_MAX_ROOT (64u * 1024u)

/* The frame for the network process: the files of next as they are now, and its limits. */
static int reload_frame(const struct tdc_kbs_config *next, uint8_t **out, size_t *n,
			struct tdc_error *e)
{
	uint8_t *cert = NULL, *key = NULL, *root = NULL;
	size_t cl = 0, kl = 0, rl = 0;
	int rc = tdc_file_read(next->cert, RELOAD_MAX_CERT, &cert, &cl, e);
	if (rc == 0)
		rc = tdc_file_read(next->key, RELOAD_MAX_KEY, &key, &kl, e);
	if (rc == 0 && next->sim_root && *next->sim_root)
		rc = tdc_file_read(next->sim_root, RELOAD_MAX_ROOT, &root, &rl, e);
	if (rc == 0) {
		struct tdc_wr w;
		tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
		tdc_wr_u8(&w, KOP_RELOAD);
		kbs_put_blob(&w, cert, cl);
		kbs_put_blob(&w, key, kl);
		kbs_put_blob(&w, root, rl);
		tdc_wr_u32le(&w, next->min_tcb_eval_num);
		tdc_wr_u32le(&w, next->max_conns_per_source);
		tdc_wr_u32le(&w, next->queue_max);
		rc = tdc_wr_finish(&w, out, n, e);
	}
	free(cert);
	if (key)
		OPENSSL_cleanse(key, kl);
	free(key);
	free(root);
	return rc;
}

static int reload(struct kbs_keeper *k, const struct tdc_kbs_config *running,
		  const struct tdc_kbs_config *next, char spki[65], struct tdc_error *e)
{
	uint8_t *req = NULL, *rep = NULL, st = 0;
	size_t n = 0, rn = 0;
	if (k->o.control_fd < 0)
		return TDC_FAIL(e, TDC_E_USAGE, "no network process to reload");
	TDC_GUARD(tdc_kbs_config_check(next, e));
	TDC_GUARD(tdc_kbs_config_reloadable(running, next, e));
	TDC_GUARD(reload_frame(next, &req, &n, e));
	pthread_mutex_lock(&k->control_lock);
	int rc = kbs_frame_send(k->o.control_fd, req, n, e);
	if (rc == 0)
		rc = kbs_frame_recv(k->o.control_fd, &rep, &rn, e);
	pthread_mutex_unlock(&k->control_lock);
	kbs_frame_free(req, n);
	if (rc < 0)
		return rc;
	/* the network process's answer: status, then its fingerprint or its error */
	struct tdc_rd r;
	char *a = NULL, *b = NULL;
	uint32_t code = 0;
	tdc_rd_init(&r, rep, rn);
	rc = tdc_rd_u8(&r, &st, "reload status", e);
	if (rc == 0 && st == KST_OK) {
		rc = kbs_get_str(&r, 64, &a, "spki_sha256", e);
		if (rc == 0)
			snprintf(spki, 65, "%s", a ? a : "");
	} else if (rc == 0) {
		rc = tdc_rd_u32le(&r, &code, "reload error", e);
		if (rc == 0)
			rc = kbs_get_str(&r, 512, &a, "reload error", e);
		if (rc == 0)
			rc = kbs_get_str(&r, 1024, &b, "reload error", e);
		if (rc == 0)
			rc = TDC_FAILF(e, TDC_E_USAGE, "the network process refused the reload",
				       "%s%s%s", a ? a : "?", b ? ": " : "", b ? b : "");
	}
	free(a);
	free(b);
	kbs_frame_free(rep, rn);
	return rc;
}

int kbs_keeper_reload(struct kbs_keeper *k, const struct tdc_kbs_config *running,
		      const struct tdc_kbs_config *next, struct tdc_error *e)
{
	char spki[65] = "", buf[600];
	int rc = next ? reload(k, running, next, spki, e)
		      : (e && e->code ? e->code : TDC_FAIL(e, TDC_E_USAGE, "no configuration"));
	if (rc < 0) {
		klog(k, "error", "reload_failed", NULL,
		     e ? tdc_error_format(e, buf, sizeof(buf)) : "reload failed");
		return rc;
	}
	snprintf(buf, sizeof(buf), "certificate spki_sha256 %s", spki);
	klog(k, "info", "reloaded", NULL, buf);
	return 0;
}

/* ---- the admin socket ---- */

static int listen_admin(struct kbs_keeper *k, struct tdc_error *e)
{
	const char *path = k->o.admin_socket;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	if (!path)
		return TDC_FAIL(e, TDC_E_USAGE, "no admin socket path");
	if (strlen(path) >= sizeof(sa.sun_path))
		return TDC_FAILF(e, TDC_E_USAGE, "admin socket path too long", "%s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* the parent directory: created private if missing */
	char dir[sizeof(sa.sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return TDC_FAILF(e, TDC_E_IO, "cannot create the admin socket directory",
					 "%s: %s", dir, strerror(errno));
	}
	/* a stale socket from an earlier run is replaced; a live one (another broker on this
	 * host, possible with a shared PostgreSQL store) and anything else are not touched */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return TDC_FAILF(e, TDC_E_IO, "admin socket path exists and is not a socket",
					 "%s", path);
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (probe >= 0)
			close(probe);
		if (live)
			return TDC_FAILF(e, TDC_E_USAGE, "the admin socket is in use by a running broker",
					 "%s: give each broker on a host its own admin_socket", path);
		unlink(path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create the admin socket", "%s",
				 strerror(errno));
	/* created 0600 from the start: no window where others could connect */
	mode_t old = umask(0177);
	int b = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (b < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
		int err = errno;
		close(fd);
		return TDC_FAILF(e, TDC_E_IO, "cannot listen on the admin socket", "%s: %s", path,
				 strerror(err));
	}
	k->admin_fd = fd;
	return 0;
}

static void admin_close(struct admin_conn *c)
{
	close(c->fd);
	c->fd = -1;
	tdc_secret_free(&c->buf);
	c->len = 0;
}

static void admin_accept(struct kbs_keeper *k)
{
	for (;;) {
		int fd = accept4(k->admin_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct ucred cr;
		socklen_t cl = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
		    (cr.uid != 0 && cr.uid != geteuid())) {
			char why[64];
			snprintf(why, sizeof(why), "uid %u is not root", (unsigned)cr.uid);
			klog(k, "warning", "admin_refused", "unix", why);
			close(fd);
			continue;
		}
		struct admin_conn *c = NULL;
		for (size_t i = 0; i < ADMIN_MAX && !c; i++)
			if (k->conns[i].fd < 0)
				c = &k->conns[i];
		/* admin clients are local and few; the line buffer may hold a secret */
		if (!c || tdc_secret_alloc(TDC_MAX_ADMIN_LINE, &c->buf, NULL) < 0) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->len = 0;
		c->deadline = mono_ms() + ADMIN_MS;
		snprintf(c->peer, sizeof(c->peer), "unix:uid=%u,pid=%d", (unsigned)cr.uid,
			 (int)cr.pid);
	}
}

/* Admin requests are local, small and rare: handled inline, replies written with a short
 * blocking timeout. */
static void admin_read(struct kbs_keeper *k, struct admin_conn *c)
{
	for (;;) {
		if (c->len >= c->buf.len) {
			klog(k, "warning", "admin_refused", c->peer, "request line too long");
			admin_close(c);
			return;
		}
		ssize_t n = recv(c->fd, c->buf.data + c->len, c->buf.len - c->len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			admin_close(c);
			return;
		}
		c->len += (size_t)n;
		c->deadline = mono_ms() + ADMIN_MS;
		uint8_t *nl;
		while ((nl = memchr(c->buf.data, '\n', c->len)) != NULL) {
			size_t line = (size_t)(nl - c->buf.data);
			char *rep = kbs_admin_handle(k->store, net_metrics, k,
						     (const char *)c->buf.data, line,
						     k->o.now(k->o.arg));
			OPENSSL_cleanse(c->buf.data, line + 1);
			memmove(c->buf.data, c->buf.data + line + 1, c->len - line - 1);
			c->len -= line + 1;
			OPENSSL_cleanse(c->buf.data + c->len, line + 1);
			klog(k, "info", "admin", c->peer, NULL);
			if (!rep) {
				admin_close(c);
				return;
			}
			size_t len = strlen(rep), off = 0;
			rep[len] = '\n';
			struct timeval tv = { 2, 0 };
			int fl = fcntl(c->fd, F_GETFL);
			fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
			setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			while (off < len + 1) {
				ssize_t w = send(c->fd, rep + off, len + 1 - off, MSG_NOSIGNAL);
				if (w <= 0)
					break;
				off += (size_t)w;
			}
			fcntl(c->fd, F_SETFL, fl);
			free(rep);
			if (off < len + 1) {
				admin_close(c);
				return;
			}
		}
	}
}

static void *admin_loop(void *arg)
{
	struct kbs_keeper *k = arg;
	for (;;) {
		struct pollfd p[ADMIN_MAX + 2];
		struct admin_conn *who[ADMIN_MAX + 2] = { NULL };
		size_t n = 0;
		int64_t now = mono_ms(), next = -1;
		p[n++] = (struct pollfd){ .fd = k->wake[0], .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = k->admin_fd, .events = POLLIN };
		for (size_t i = 0; i < ADMIN_MAX; i++) {
			struct admin_conn *c = &k->conns[i];
			if (c->fd < 0)
				continue;
			if (c->deadline <= now) {
				admin_close(c);
				continue;
			}
			if (next < 0 || c->deadline < next)
				next = c->deadline;
			who[n] = c;
			p[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
		}
		int r = poll(p, n, next < 0 ? -1 : (int)(next - now));
		if (r < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN)
			admin_accept(k);
		for (size_t i = 2; i < n; i++)
			if (p[i].revents && who[i]->fd >= 0)
				admin_read(k, who[i]);
	}
	return NULL;
}

/* ---- life cycle ---- */

int kbs_keeper_start(struct tdc_store *s, const struct kbs_keeper_opts *o, const int *fds,
		     size_t n, struct kbs_keeper **out, struct tdc_error *e)
{
	*out = NULL;
	struct kbs_keeper *k = calloc(1, sizeof(*k));
	if (!k || !(k->chans = calloc(n ? n : 1, sizeof(*k->chans)))) {
		free(k);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	k->store = s;
	k->o = *o;
	k->n = n;
	k->admin_fd = k->wake[0] = k->wake[1] = -1;
	for (size_t i = 0; i < ADMIN_MAX; i++)
		k->conns[i].fd = -1;
	pthread_mutex_init(&k->control_lock, NULL);
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		k->chans[i] = (struct chan){ .k = k, .fd = fds[i] };
		if (pthread_create(&k->chans[i].t, NULL, serve, &k->chans[i]) != 0)
			r = TDC_FAIL(e, TDC_E_INTERNAL, "cannot start a keeper thread");
		else
			k->chans[i].started = true;
	}
	if (r == 0 && o->admin_socket && *o->admin_socket) {
		if (pipe2(k->wake, O_CLOEXEC) < 0)
			r = TDC_FAILF(e, TDC_E_IO, "cannot create a pipe", "%s", strerror(errno));
		if (r == 0)
			r = listen_admin(k, e);
		if (r == 0 && pthread_create(&k->admin_t, NULL, admin_loop, k) != 0)
			r = TDC_FAIL(e, TDC_E_INTERNAL, "cannot start the admin thread");
		else if (r == 0)
			k->admin_started = true;
	}
	if (r < 0) {
		kbs_keeper_stop(k);
		return r;
	}
	*out = k;
	return 0;
}

void kbs_keeper_stop(struct kbs_keeper *k)
{
	if (!k)
		return;
	if (k->admin_started) {
		ssize_t w = write(k->wake[1], "x", 1);
		(void)w;
		pthread_join(k->admin_t, NULL);
	}
	for (size_t i = 0; i < ADMIN_MAX; i++)
		if (k->conns[i].fd >= 0)
			admin_close(&k->conns[i]);
	if (k->admin_fd >= 0) {
		close(k->admin_fd);
		unlink(k->o.admin_socket);
	}
	for (int i = 0; i < 2; i++)
		if (k->wake[i] >= 0)
			close(k->wake[i]);
	/* the channels end when the network side closes them; make sure they do */
	for (size_t i = 0; i < k->n; i++)
		if (k->chans[i].started) {
			shutdown(k->chans[i].fd, SHUT_RDWR);
			pthread_join(k->chans[i].t, NULL);
		}
	pthread_mutex_destroy(&k->control_lock);
	free(k->chans);
	free(k);
}
