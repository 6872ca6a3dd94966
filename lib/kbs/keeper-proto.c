/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keeper protocol (docs/ARCHITECTURE.md, "Privilege separation"): what the network
 * process may ask of the keeper that holds the store and the master key. Frames on a
 * stream socketpair: u32le length, then the payload: one op byte and its fields (u32le-
 * prefixed strings and blobs, u64le integers). Both sides read with the bounded reader;
 * the keeper treats every frame as hostile.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "kbs/kbs-int.h"
#include "util/rd.h"
#include "util/wr.h"

static int full_io(int fd, void *buf, size_t n, bool out, struct tdc_error *e)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? TDC_FAIL(e, TDC_E_IO, "keeper channel closed")
				      : TDC_FAILF(e, TDC_E_IO, "keeper channel", "%s", strerror(errno));
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int kbs_frame_send(int fd, const uint8_t *p, size_t n, struct tdc_error *e)
{
	if (n > KBS_KEEPER_MAX_FRAME)
		return TDC_FAILF(e, TDC_E_LIMIT, "keeper frame too large", "%zu bytes", n);
	uint8_t h[4] = { (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24) };
	TDC_GUARD(full_io(fd, h, sizeof(h), true, e));
	return full_io(fd, (void *)p, n, true, e);
}

int kbs_frame_recv(int fd, uint8_t **p, size_t *n, struct tdc_error *e)
{
	uint8_t h[4];
	*p = NULL;
	*n = 0;
	TDC_GUARD(full_io(fd, h, sizeof(h), false, e));
	size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
	if (len == 0 || len > KBS_KEEPER_MAX_FRAME)
		return TDC_FAILF(e, TDC_E_LIMIT, "keeper frame of a bad size", "%zu bytes", len);
	uint8_t *b = malloc(len);
	if (!b)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	int r = full_io(fd, b, len, false, e);
	if (r < 0) {
		free(b);
		return r;
	}
	*p = b;
	*n = len;
	return 0;
}

void kbs_frame_free(uint8_t *p, size_t n)
{
	if (p)
		OPENSSL_cleanse(p, n);
	free(p);
}

/* ---- fields ---- */

void kbs_put_str(struct tdc_wr *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	tdc_wr_u32le(w, (uint32_t)n);
	tdc_wr_bytes(w, s ? s : "", n);
}

void kbs_put_blob(struct tdc_wr *w, const uint8_t *p, size_t n)
{
	tdc_wr_u32le(w, (uint32_t)n);
	tdc_wr_bytes(w, p ? p : (const uint8_t *)"", n);
}

int kbs_get_blob(struct tdc_rd *r, size_t cap, struct tdc_rd *out, const char *field,
		 struct tdc_error *e)
{
	uint32_t n;
	TDC_GUARD(tdc_rd_u32le(r, &n, field, e));
	if (n > cap)
		return TDC_FAILF(e, TDC_E_LIMIT, "keeper field too long", "%s: %u bytes, limit %zu",
				 field, n, cap);
	return tdc_rd_sub(r, n, out, field, e);
}

/* A string field into a malloc'd NUL-terminated copy (NULL when empty): no NUL inside. */
int kbs_get_str(struct tdc_rd *r, size_t cap, char **out, const char *field, struct tdc_error *e)
{
	struct tdc_rd s;
	*out = NULL;
	TDC_GUARD(kbs_get_blob(r, cap, &s, field, e));
	size_t n = tdc_rd_len(&s);
	if (n == 0)
		return 0;
	if (memchr(tdc_rd_ptr(&s), 0, n))
		return TDC_FAILF(e, TDC_E_FORMAT, "NUL in a keeper string", "%s", field);
	char *c = malloc(n + 1);
	if (!c)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	memcpy(c, tdc_rd_ptr(&s), n);
	c[n] = 0;
	*out = c;
	return 0;
}

int kbs_get_i64(struct tdc_rd *r, int64_t *v, const char *field, struct tdc_error *e)
{
	uint64_t u;
	TDC_GUARD(tdc_rd_u64le(r, &u, field, e));
	*v = (int64_t)u;
	return 0;
}

/* ---- audit records ---- */

void kbs_put_record(struct tdc_wr *w, const struct tdc_audit_record *rec)
{
	tdc_wr_u64le(w, (uint64_t)rec->time);
	tdc_wr_u8(w, rec->decision == TDC_AUDIT_RELEASED ? 1 : 0);
	kbs_put_str(w, rec->request_id);
	kbs_put_str(w, rec->secret_id);
	kbs_put_str(w, rec->peer);
	kbs_put_str(w, rec->claims_digest);
	kbs_put_str(w, rec->verdict);
	kbs_put_str(w, rec->reason);
}

void kbs_record_free(struct tdc_audit_record *rec)
{
	free((char *)rec->request_id);
	free((char *)rec->secret_id);
	free((char *)rec->peer);
	free((char *)rec->claims_digest);
	free((char *)rec->verdict);
	free((char *)rec->reason);
	memset(rec, 0, sizeof(*rec));
}

int kbs_get_record(struct tdc_rd *r, struct tdc_audit_record *rec, struct tdc_error *e)
{
	uint8_t released;
	char *s[6] = { NULL };
	static const struct {
		const char *field;
		size_t cap;
	} f[6] = { { "request_id", 64 }, { "secret_id", TDC_MAX_SECRET_ID_LEN },
		   { "peer", 128 },      { "claims_digest", 64 },
		   { "verdict", 64 },    { "reason", KBS_KEEPER_MAX_REASON } };
	memset(rec, 0, sizeof(*rec));
	int rc = kbs_get_i64(r, &rec->time, "record.time", e);
	if (rc == 0)
		rc = tdc_rd_u8(r, &released, "record.decision", e);
	if (rc == 0 && released > 1)
		rc = TDC_FAILF(e, TDC_E_FORMAT, "keeper record of an unknown decision", "%u",
			       released);
	for (int i = 0; rc == 0 && i < 6; i++)
		rc = kbs_get_str(r, f[i].cap, &s[i], f[i].field, e);
	rec->decision = rc == 0 && released ? TDC_AUDIT_RELEASED : TDC_AUDIT_DENIED;
	rec->request_id = s[0];
	rec->secret_id = s[1];
	rec->peer = s[2];
	rec->claims_digest = s[3];
	rec->verdict = s[4];
	rec->reason = s[5];
	if (rc < 0)
		kbs_record_free(rec);
	return rc;
}
