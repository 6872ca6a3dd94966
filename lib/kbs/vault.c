/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network process's side of the keeper protocol (keeper-proto.c): each worker
 * thread has its own channel, bound at its start, and asks synchronously. Nothing
 * here touches the store: only the keeper does.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "kbs/kbs-int.h"
#include "util/rd.h"
#include "util/wr.h"

_Static_assert(KOP_RELEASE - KOP_POLICY == KBS_SOP_RELEASE && KOP_PING - KOP_POLICY == KBS_SOP_PING,
	       "store operations are timed by op byte");

static _Thread_local int chan_fd = -1;
static _Thread_local struct kbs_metrics *chan_m;

void kbs_vault_bind(int fd, struct kbs_metrics *m)
{
	chan_fd = fd;
	chan_m = m;
}

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sends the request built in w, returns the answer (status read, the rest in *r; free
 * *rep with kbs_frame_free). A keeper error becomes e, with its code. */
static int call(struct tdc_wr *w, uint8_t **rep, size_t *rn, struct tdc_rd *r, uint8_t *status,
		struct tdc_error *e)
{
	uint8_t *req = NULL;
	size_t n = 0;
	*rep = NULL;
	*rn = 0;
	if (chan_fd < 0) {
		tdc_wr_free(w);
		return TDC_FAIL(e, TDC_E_INTERNAL, "no keeper channel on this thread");
	}
	TDC_GUARD(tdc_wr_finish(w, &req, &n, e));
	/* the op byte names the store operation timed (KOP_POLICY .. KOP_PING in order) */
	uint8_t op = req[0];
	int64_t t0 = mono_us();
	int rc = kbs_frame_send(chan_fd, req, n, e);
	kbs_frame_free(req, n);
	if (rc == 0)
		rc = kbs_frame_recv(chan_fd, rep, rn, e);
	if (chan_m && op >= KOP_POLICY && op <= KOP_PING)
		kbs_hist_add(&chan_m->store[op - KOP_POLICY], mono_us() - t0);
	if (rc < 0)
		return rc;
	tdc_rd_init(r, *rep, *rn);
	rc = tdc_rd_u8(r, status, "keeper status", e);
	if (rc == 0 && *status == KST_ERROR) {
		uint32_t code;
		char *reason = NULL, *detail = NULL;
		rc = tdc_rd_u32le(r, &code, "keeper error", e);
		if (rc == 0)
			rc = kbs_get_str(r, 512, &reason, "keeper error", e);
		if (rc == 0)
			rc = kbs_get_str(r, 1024, &detail, "keeper error", e);
		int c = (int)(int32_t)code;
		if (rc == 0)
			rc = tdc_error_set(e, c < 0 && c > -TDC_E__COUNT ? c : TDC_E_INTERNAL,
					   TDC_NO_OFFSET, __FILE__, __LINE__, "keeper",
					   "%s%s%s", reason ? reason : "error", detail ? ": " : "",
					   detail ? detail : "");
		/* the reason is the keeper's: the detail keeps its text */
		free(reason);
		free(detail);
	}
	if (rc < 0) {
		kbs_frame_free(*rep, *rn);
		*rep = NULL;
		*rn = 0;
	}
	return rc;
}

int kbs_vault_policy(const char *secret_id, char **policy, struct tdc_error *e)
{
	struct tdc_wr w;
	struct tdc_rd r;
	uint8_t *rep, st, has;
	size_t rn;
	*policy = NULL;
	tdc_wr_init_alloc(&w, 1024);
	tdc_wr_u8(&w, KOP_POLICY);
	kbs_put_str(&w, secret_id);
	TDC_GUARD(call(&w, &rep, &rn, &r, &st, e));
	int rc = tdc_rd_u8(&r, &has, "has_policy", e);
	char *p = NULL;
	if (rc == 0)
		rc = kbs_get_str(&r, TDC_MAX_POLICY_JSON, &p, "policy", e);
	if (rc == 0 && has && !p)
		rc = TDC_FAIL(e, TDC_E_FORMAT, "keeper sent an empty policy");
	kbs_frame_free(rep, rn);
	if (rc < 0) {
		free(p);
		return rc;
	}
	*policy = has ? p : NULL;
	if (!has)
		free(p);
	return 0;
}

int kbs_vault_release(const struct tdc_audit_record *rec, struct tdc_secret *key,
		      int64_t *audit_id, struct tdc_error *e)
{
	struct tdc_wr w;
	struct tdc_rd r, k;
	uint8_t *rep, st;
	size_t rn;
	int64_t id = 0;
	tdc_wr_init_alloc(&w, 8192);
	tdc_wr_u8(&w, KOP_RELEASE);
	kbs_put_record(&w, rec);
	TDC_GUARD(call(&w, &rep, &rn, &r, &st, e));
	int rc = kbs_get_i64(&r, &id, "audit_id", e);
	if (rc == 0)
		rc = kbs_get_blob(&r, TDC_MAX_KBS_SECRET, &k, "key", e);
	if (rc == 0 && tdc_rd_len(&k) == 0)
		rc = TDC_FAIL(e, TDC_E_FORMAT, "keeper sent an empty key");
	if (rc == 0)
		rc = tdc_secret_alloc(tdc_rd_len(&k), key, e);
	if (rc == 0) {
		memcpy(key->data, tdc_rd_ptr(&k), tdc_rd_len(&k));
		*audit_id = id;
	}
	kbs_frame_free(rep, rn); /* wipes the key's copy */
	return rc;
}

int kbs_vault_audit(const struct tdc_audit_record *rec, int64_t *audit_id, struct tdc_error *e)
{
	struct tdc_wr w;
	struct tdc_rd r;
	uint8_t *rep, st;
	size_t rn;
	tdc_wr_init_alloc(&w, 8192);
	tdc_wr_u8(&w, KOP_AUDIT);
	kbs_put_record(&w, rec);
	TDC_GUARD(call(&w, &rep, &rn, &r, &st, e));
	int rc = kbs_get_i64(&r, audit_id, "audit_id", e);
	kbs_frame_free(rep, rn);
	return rc;
}

int kbs_vault_cache_get(const char *key, const char *kind, uint8_t **body, size_t *len,
			int64_t *next_update, int64_t *fetched, bool *found, struct tdc_error *e)
{
	struct tdc_wr w;
	struct tdc_rd r, b;
	uint8_t *rep, st;
	size_t rn;
	*body = NULL;
	*len = 0;
	*found = false;
	tdc_wr_init_alloc(&w, 512);
	tdc_wr_u8(&w, KOP_CACHE_GET);
	kbs_put_str(&w, key);
	kbs_put_str(&w, kind);
	TDC_GUARD(call(&w, &rep, &rn, &r, &st, e));
	int rc = 0;
	if (st == KST_OK) {
		rc = kbs_get_blob(&r, TDC_MAX_CACHE_BODY, &b, "body", e);
		if (rc == 0)
			rc = kbs_get_i64(&r, next_update, "next_update", e);
		if (rc == 0)
			rc = kbs_get_i64(&r, fetched, "fetched", e);
		if (rc == 0 && !(*body = malloc(tdc_rd_len(&b) ? tdc_rd_len(&b) : 1)))
			rc = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		if (rc == 0) {
			memcpy(*body, tdc_rd_ptr(&b), tdc_rd_len(&b));
			*len = tdc_rd_len(&b);
			*found = true;
		}
	}
	kbs_frame_free(rep, rn);
	return rc;
}

int kbs_vault_cache_put(const char *key, const char *kind, const uint8_t *body, size_t len,
			int64_t next_update, int64_t fetched, struct tdc_error *e)
{
	struct tdc_wr w;
	struct tdc_rd r;
	uint8_t *rep, st;
	size_t rn;
	tdc_wr_init_alloc(&w, len + 512);
	tdc_wr_u8(&w, KOP_CACHE_PUT);
	kbs_put_str(&w, key);
	kbs_put_str(&w, kind);
	kbs_put_blob(&w, body, len);
	tdc_wr_u64le(&w, (uint64_t)next_update);
	tdc_wr_u64le(&w, (uint64_t)fetched);
	TDC_GUARD(call(&w, &rep, &rn, &r, &st, e));
	kbs_frame_free(rep, rn);
	return 0;
}

int kbs_vault_ping(struct tdc_error *e)
{
	struct tdc_wr w;
	struct tdc_rd r;
	uint8_t *rep, st;
	size_t rn;
	tdc_wr_init_alloc(&w, 16);
	tdc_wr_u8(&w, KOP_PING);
	TDC_GUARD(call(&w, &rep, &rn, &r, &st, e));
	kbs_frame_free(rep, rn);
	return 0;
}
