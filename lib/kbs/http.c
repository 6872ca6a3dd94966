/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's HTTP/1.1 subset (docs/PROTOCOL.md §6): one strict request
 * parser over the bounded reader, and the response builder. Anything the
 * protocol does not need is refused rather than interpreted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "util/json.h"
#include "kbs/kbs-int.h"
#include "util/rd.h"
#include "util/util.h"

static const struct {
	const char *code;
	int http;
} reasons[KBS__REASONS] = {
	[KBS_OK] = { "ok", 200 },
	[KBS_BAD_REQUEST] = { "bad_request", 400 },
	[KBS_UNSUPPORTED_VERSION] = { "unsupported_version", 400 },
	[KBS_NOT_FOUND] = { "not_found", 404 },
	[KBS_METHOD_NOT_ALLOWED] = { "method_not_allowed", 405 },
	[KBS_TOO_LARGE] = { "too_large", 413 },
	[KBS_EVIDENCE_INVALID] = { "evidence_invalid", 403 },
	[KBS_QUOTE_INVALID] = { "quote_invalid", 403 },
	[KBS_TCB_REFUSED] = { "tcb_refused", 403 },
	[KBS_UNKNOWN_SECRET] = { "unknown_secret", 404 },
	[KBS_POLICY_DENIED] = { "policy_denied", 403 },
	[KBS_COLLATERAL_UNAVAILABLE] = { "collateral_unavailable", 503 },
	[KBS_BUSY] = { "busy", 503 },
	[KBS_TIMEOUT] = { "timeout", 408 },
	[KBS_INTERNAL] = { "internal", 500 },
	[KBS_HANDSHAKE] = { "handshake_failed", 0 },
};

const char *kbs_reason_code(enum kbs_reason r)
{
	return (unsigned)r < KBS__REASONS ? reasons[r].code : "internal";
}

int kbs_reason_http(enum kbs_reason r)
{
	return (unsigned)r < KBS__REASONS && reasons[r].http ? reasons[r].http : 500;
}

static const char *status_text(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/* ---- parsing ---- */

static int fail(enum kbs_reason *reason, enum kbs_reason r, struct tdc_error *e, int code,
		size_t off, const char *what, const char *detail)
{
	*reason = r;
	tdc_error_set(e, code, off, __FILE__, __LINE__, what, "%s", detail ? detail : "");
	return KBS_HTTP_ERROR;
}

static bool is_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Bytes of a line still being received: refuse what can never become valid
 * (control bytes, a bare LF) instead of waiting for the timeout. */
static int check_partial(const struct tdc_rd *r, enum kbs_reason *reason, struct tdc_error *e)
{
	struct tdc_rd v = *r;
	uint8_t c, prev = 0;
	while (tdc_rd_u8(&v, &c, "byte", NULL) == 0) {
		if (c == '\n' && prev != '\r')
			return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, tdc_rd_offset(&v) - 1,
				    "bare LF in the header section", NULL);
		if (c < 0x20 && c != '\t' && c != '\r' && c != '\n')
			return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, tdc_rd_offset(&v) - 1,
				    "control byte in the header section", NULL);
		if (prev == '\r' && c != '\n')
			return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, tdc_rd_offset(&v) - 1,
				    "bare CR in the header section", NULL);
		prev = c;
	}
	return 0;
}

/* Reads up to (not including) `stop` or the end into out (cap bytes with NUL).
 * Returns the length, or -1 if it does not fit. */
static long take_until(struct tdc_rd *r, uint8_t stop, char *out, size_t cap)
{
	size_t n = 0;
	uint8_t c;
	while (!tdc_rd_empty(r) && tdc_rd_remaining(r) > 0) {
		struct tdc_rd peek = *r;
		if (tdc_rd_u8(&peek, &c, "byte", NULL) < 0 || c == stop)
			break;
		if (n + 1 >= cap)
			return -1;
		out[n++] = (char)c;
		*r = peek;
	}
	out[n] = '\0';
	return (long)n;
}

static bool valid_secret_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > TDC_MAX_KBS_SECRET_ID || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* /v<N>/keys/<id>: the route decides between 404, unsupported_version and 400. */
static int parse_target(const char *t, struct kbs_http_req *req, enum kbs_reason *reason,
			struct tdc_error *e)
{
	if (strchr(t, '?') || strchr(t, '%') || strchr(t, '#'))
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET,
			    "query string or percent-encoding in the request target", t);
	if (strncmp(t, "/v", 2) != 0 || t[2] < '1' || t[2] > '9')
		return fail(reason, KBS_NOT_FOUND, e, TDC_E_FORMAT, TDC_NO_OFFSET, "unknown path",
			    t);
	unsigned v = 0;
	const char *p = t + 2;
	while (*p >= '0' && *p <= '9' && v < 1000)
		v = v * 10 + (unsigned)(*p++ - '0');
	if (*p != '/')
		return fail(reason, KBS_NOT_FOUND, e, TDC_E_FORMAT, TDC_NO_OFFSET, "unknown path",
			    t);
	if (strncmp(p, "/keys/", 6) != 0)
		return fail(reason, KBS_NOT_FOUND, e, TDC_E_FORMAT, TDC_NO_OFFSET, "unknown path",
			    t);
	if (v != 1) {
		char d[64];
		snprintf(d, sizeof(d), "API version %u, this broker serves 1", v);
		return fail(reason, KBS_UNSUPPORTED_VERSION, e, TDC_E_UNSUPPORTED, TDC_NO_OFFSET,
			    "unsupported API version", d);
	}
	p += 6;
	if (!valid_secret_id(p))
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET,
			    "invalid secret ID in the request target", t);
	memcpy(req->secret_id, p, strlen(p) + 1);
	req->version = v;
	return 0;
}

/* The metrics listener's two paths (PROTOCOL.md section 9); nothing else. */
static int parse_ops_target(const char *t, struct kbs_http_req *req, enum kbs_reason *reason,
			    struct tdc_error *e)
{
	if (!strcmp(t, "/metrics"))
		req->route = KBS_ROUTE_METRICS;
	else if (!strcmp(t, "/healthz"))
		req->route = KBS_ROUTE_HEALTHZ;
	else
		return fail(reason, KBS_NOT_FOUND, e, TDC_E_FORMAT, TDC_NO_OFFSET, "unknown path",
			    NULL);
	return 0;
}

static int parse_request_line(struct tdc_rd *line, struct kbs_http_req *req, bool ops,
			      enum kbs_reason *reason, struct tdc_error *e)
{
	char target[TDC_MAX_HTTP_REQUEST_LINE + 1];
	uint8_t sp;
	long n = take_until(line, ' ', req->method, sizeof(req->method));
	if (n <= 0 || tdc_rd_u8(line, &sp, "SP", NULL) < 0)
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, tdc_rd_offset(line),
			    "malformed request line", "method");
	for (long i = 0; i < n; i++)
		if (!is_tchar((uint8_t)req->method[i]))
			return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, (size_t)i,
				    "malformed request line", "method");
	n = take_until(line, ' ', target, sizeof(target));
	if (n <= 0 || tdc_rd_u8(line, &sp, "SP", NULL) < 0 || target[0] != '/')
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, tdc_rd_offset(line),
			    "malformed request line", "request target");
	for (long i = 0; i < n; i++)
		if ((uint8_t)target[i] <= 0x20 || (uint8_t)target[i] >= 0x7f)
			return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET,
				    "malformed request line", "request target");
	if (tdc_rd_remaining(line) != 8 || !tdc_rd_starts_with(line, "HTTP/1.1", 8))
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, tdc_rd_offset(line),
			    "malformed request line", "HTTP version (only HTTP/1.1)");
	if (ops) {
		TDC_GUARD(parse_ops_target(target, req, reason, e) < 0 ? KBS_HTTP_ERROR : 0);
		if (strcmp(req->method, "GET") != 0)
			return fail(reason, KBS_METHOD_NOT_ALLOWED, e, TDC_E_FORMAT, TDC_NO_OFFSET,
				    "method not allowed", req->method);
		return 0;
	}
	TDC_GUARD(parse_target(target, req, reason, e) < 0 ? KBS_HTTP_ERROR : 0);
	if (strcmp(req->method, "POST") != 0)
		return fail(reason, KBS_METHOD_NOT_ALLOWED, e, TDC_E_FORMAT, TDC_NO_OFFSET,
			    "method not allowed", req->method);
	return 0;
}

static bool has_token(const char *value, const char *token)
{
	char buf[256];
	size_t n0 = strlen(value);
	if (n0 >= sizeof(buf))
		n0 = sizeof(buf) - 1;
	memcpy(buf, value, n0);
	buf[n0] = '\0';
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ' || *t == '\t')
			t++;
		size_t n = strlen(t);
		while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
			t[--n] = '\0';
		if (!strcasecmp(t, token))
			return true;
	}
	return false;
}

struct seen {
	int host, length;
};

static int parse_field(struct tdc_rd *line, struct kbs_http_req *req, struct seen *s,
		       enum kbs_reason *reason, struct tdc_error *e)
{
	char name[64], value[TDC_MAX_HTTP_HEADER + 1];
	size_t off = tdc_rd_offset(line);
	uint8_t c;

	if (tdc_rd_starts_with(line, " ", 1) || tdc_rd_starts_with(line, "\t", 1))
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, off,
			    "obsolete line folding in a header field", NULL);
	long n = take_until(line, ':', name, sizeof(name));
	if (n < 0)
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, off,
			    "header field name too long", NULL);
	if (n == 0 || tdc_rd_u8(line, &c, "colon", NULL) < 0)
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, off,
			    "malformed header field", NULL);
	for (long i = 0; i < n; i++)
		if (!is_tchar((uint8_t)name[i]))
			return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, off + (size_t)i,
				    "malformed header field name", name);
	/* value: OWS, visible bytes (obs-text allowed), OWS */
	size_t vn = 0;
	while (tdc_rd_u8(line, &c, "value", NULL) == 0) {
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT,
				    tdc_rd_offset(line) - 1, "control byte in a header value",
				    name);
		if (vn == 0 && (c == ' ' || c == '\t'))
			continue;
		value[vn++] = (char)c;
	}
	while (vn && (value[vn - 1] == ' ' || value[vn - 1] == '\t'))
		vn--;
	value[vn] = '\0';

	if (!strcasecmp(name, "Content-Length")) {
		if (s->length++)
			return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, off,
				    "Content-Length given more than once", NULL);
		if (vn == 0 || vn > 9 || strspn(value, "0123456789") != vn)
			return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, off,
				    "malformed Content-Length", value);
		size_t len = 0;
		for (size_t i = 0; i < vn; i++)
			len = len * 10 + (size_t)(value[i] - '0');
		req->body_len = len;
	} else if (!strcasecmp(name, "Transfer-Encoding") || !strcasecmp(name, "Expect")) {
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_UNSUPPORTED, off,
			    "header field not supported", name);
	} else if (!strcasecmp(name, "Host")) {
		if (s->host++)
			return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, off,
				    "Host given more than once", NULL);
	} else if (!strcasecmp(name, "Connection")) {
		if (has_token(value, "close"))
			req->conn_close = true;
	}
	return 0;
}

void kbs_http_req_free(struct kbs_http_req *req)
{
	if (!req)
		return;
	free(req->event_log);
	req->event_log = NULL;
	req->event_log_len = 0;
}

/* A base64 member into out (at most cap bytes, exactly want if want != 0). */
static int b64_member(json_object *val, const char *key, uint8_t *out, size_t cap, size_t want,
		      size_t *got, enum kbs_reason *reason, struct tdc_error *e)
{
	struct tdc_error be;
	char d[300], what[64];
	snprintf(what, sizeof(what), "bad \"%s\" member", key);
	if (!json_object_is_type(val, json_type_string))
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET, what,
			    "a base64 string");
	tdc_error_clear(&be);
	int r = tdc_base64_decode(json_object_get_string(val),
				  (size_t)json_object_get_string_len(val), out, cap, got, &be);
	if (r == TDC_E_LIMIT)
		return fail(reason, KBS_TOO_LARGE, e, TDC_E_LIMIT, TDC_NO_OFFSET, what,
			    "larger than the protocol allows");
	if (r < 0 || (want && *got != want))
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET, what,
			    r < 0 ? tdc_error_format(&be, d, sizeof(d)) : "wrong length");
	return 0;
}

static int parse_body(const struct tdc_rd *body, struct kbs_http_req *req, enum kbs_reason *reason,
		      struct tdc_error *e)
{
	json_object *o;
	struct tdc_error je;
	char d[300];

	if (tdc_rd_len(body) == 0)
		return 0;
	tdc_error_clear(&je);
	if (tdc_json_parse_object(tdc_rd_ptr(body), tdc_rd_len(body), TDC_MAX_HTTP_BODY,
				  "request body", &o, &je) < 0)
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET,
			    "request body is not a JSON object", tdc_error_format(&je, d, sizeof(d)));
	int r = 0;
	json_object_object_foreach(o, key, val)
	{
		if (!strcmp(key, "ccel_table")) {
			size_t got;
			r = b64_member(val, key, req->ccel_table, sizeof(req->ccel_table),
				       sizeof(req->ccel_table), &got, reason, e);
			req->has_ccel_table = r == 0;
			if (r < 0)
				break;
			continue;
		}
		if (!strcmp(key, "event_log")) {
			if (!(req->event_log = malloc(TDC_MAX_EVENT_LOG))) {
				r = fail(reason, KBS_INTERNAL, e, TDC_E_NOMEM, TDC_NO_OFFSET,
					 "out of memory", NULL);
				break;
			}
			if ((r = b64_member(val, key, req->event_log, TDC_MAX_EVENT_LOG, 0,
					    &req->event_log_len, reason, e)) < 0)
				break;
			continue;
		}
		if (strcmp(key, "agent") != 0) {
			r = fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET,
				 "unknown member in the request body", key);
			break;
		}
		const char *s = json_object_get_string(val);
		size_t n = (size_t)json_object_get_string_len(val);
		if (!json_object_is_type(val, json_type_string) || n > TDC_MAX_KBS_AGENT ||
		    strlen(s) != n) {
			r = fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET,
				 "bad \"agent\" member", "a string of at most 64 characters");
			break;
		}
		for (size_t i = 0; i < n && r == 0; i++)
			if ((uint8_t)s[i] < 0x20 || (uint8_t)s[i] > 0x7e)
				r = fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET,
					 "bad \"agent\" member", "printable ASCII only");
		if (r == 0)
			memcpy(req->agent, s, n + 1);
	}
	json_object_put(o);
	if (r == 0 && !req->event_log != !req->has_ccel_table)
		r = fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET,
			 "event_log and ccel_table go together", NULL);
	if (r < 0)
		kbs_http_req_free(req);
	return r;
}

static int parse(const uint8_t *buf, size_t len, bool ops, struct kbs_http_req *req,
		 enum kbs_reason *reason, struct tdc_error *e)
{
	struct tdc_rd r, line;
	size_t pos;
	struct seen s = { 0, 0 };

	memset(req, 0, sizeof(*req));
	*reason = KBS_OK;
	tdc_rd_init(&r, buf, len);

	/* request line */
	if (!tdc_rd_find(&r, "\r\n", 2, &pos)) {
		if (check_partial(&r, reason, e) < 0)
			return KBS_HTTP_ERROR;
		if (len > TDC_MAX_HTTP_REQUEST_LINE)
			return fail(reason, KBS_TOO_LARGE, e, TDC_E_LIMIT, TDC_NO_OFFSET,
				    "request line too long", "limit 1024 bytes");
		return KBS_HTTP_MORE;
	}
	if (pos + 2 > TDC_MAX_HTTP_REQUEST_LINE)
		return fail(reason, KBS_TOO_LARGE, e, TDC_E_LIMIT, TDC_NO_OFFSET,
			    "request line too long", "limit 1024 bytes");
	if (tdc_rd_sub(&r, pos, &line, "request line", e) < 0 ||
	    tdc_rd_skip(&r, 2, "CRLF", e) < 0)
		return fail(reason, KBS_INTERNAL, e, TDC_E_INTERNAL, TDC_NO_OFFSET, "reader", NULL);
	if (check_partial(&line, reason, e) < 0 ||
	    parse_request_line(&line, req, ops, reason, e) < 0)
		return KBS_HTTP_ERROR;

	/* header fields, up to the empty line */
	for (size_t nfields = 0;;) {
		if (!tdc_rd_find(&r, "\r\n", 2, &pos)) {
			if (check_partial(&r, reason, e) < 0)
				return KBS_HTTP_ERROR;
			if (len >= TDC_MAX_HTTP_HEADER)
				return fail(reason, KBS_TOO_LARGE, e, TDC_E_LIMIT, TDC_NO_OFFSET,
					    "header section too large", "limit 8192 bytes");
			return KBS_HTTP_MORE;
		}
		if (tdc_rd_offset(&r) + pos + 2 > TDC_MAX_HTTP_HEADER)
			return fail(reason, KBS_TOO_LARGE, e, TDC_E_LIMIT, TDC_NO_OFFSET,
				    "header section too large", "limit 8192 bytes");
		if (tdc_rd_sub(&r, pos, &line, "field", e) < 0 || tdc_rd_skip(&r, 2, "CRLF", e) < 0)
			return fail(reason, KBS_INTERNAL, e, TDC_E_INTERNAL, TDC_NO_OFFSET, "reader",
				    NULL);
		if (pos == 0)
			break;
		if (++nfields > TDC_MAX_HTTP_FIELDS)
			return fail(reason, KBS_TOO_LARGE, e, TDC_E_LIMIT, TDC_NO_OFFSET,
				    "too many header fields", "limit 32");
		if (check_partial(&line, reason, e) < 0 ||
		    parse_field(&line, req, &s, reason, e) < 0)
			return KBS_HTTP_ERROR;
	}
	req->header_len = tdc_rd_offset(&r);
	if (!s.host)
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET,
			    "no Host header field", NULL);
	if (ops) {
		/* a GET has no body; one announced is refused rather than skipped */
		if (req->body_len)
			return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET,
				    "a request body on the metrics listener", NULL);
		return KBS_HTTP_DONE;
	}
	if (!s.length)
		return fail(reason, KBS_BAD_REQUEST, e, TDC_E_FORMAT, TDC_NO_OFFSET,
			    "no Content-Length header field", NULL);
	if (req->body_len > TDC_MAX_HTTP_BODY) {
		char lim[48];
		snprintf(lim, sizeof(lim), "limit %u bytes", TDC_MAX_HTTP_BODY);
		return fail(reason, KBS_TOO_LARGE, e, TDC_E_LIMIT, TDC_NO_OFFSET,
			    "request body too large", lim);
	}
	if (tdc_rd_remaining(&r) < req->body_len)
		return KBS_HTTP_MORE;
	struct tdc_rd body;
	if (tdc_rd_sub(&r, req->body_len, &body, "body", e) < 0)
		return fail(reason, KBS_INTERNAL, e, TDC_E_INTERNAL, TDC_NO_OFFSET, "reader", NULL);
	if (parse_body(&body, req, reason, e) < 0)
		return KBS_HTTP_ERROR;
	return KBS_HTTP_DONE;
}

int kbs_http_parse(const uint8_t *buf, size_t len, struct kbs_http_req *req,
		   enum kbs_reason *reason, struct tdc_error *e)
{
	return parse(buf, len, false, req, reason, e);
}

int kbs_http_parse_ops(const uint8_t *buf, size_t len, struct kbs_http_req *req,
		       enum kbs_reason *reason, struct tdc_error *e)
{
	return parse(buf, len, true, req, reason, e);
}

/* ---- responses ---- */

int kbs_http_plain_response(int status, const char *content_type, const char *body,
			    size_t body_len, char **out, size_t *out_len, struct tdc_error *e)
{
	char head[256];
	int h = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: %s\r\n"
			 "Cache-Control: no-store\r\n"
			 "Content-Length: %zu\r\n"
			 "Connection: close\r\n"
			 "\r\n",
			 status, status_text(status), content_type, body_len);
	if (h < 0 || (size_t)h >= sizeof(head))
		return TDC_FAIL(e, TDC_E_INTERNAL, "response does not fit");
	char *o = malloc((size_t)h + body_len);
	if (!o)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	memcpy(o, head, (size_t)h);
	if (body_len)
		memcpy(o + h, body, body_len);
	*out = o;
	*out_len = (size_t)h + body_len;
	return 0;
}

int kbs_http_response(enum kbs_reason reason, const char *request_id, const char *secret_id,
		      const struct tdc_secret *key, bool close, struct tdc_secret *out,
		      size_t *out_len, struct tdc_error *e)
{
	size_t b64 = key ? 4 * ((key->len + 2) / 3) : 0;
	size_t cap = 1024 + b64;
	int code = key ? 200 : kbs_reason_http(reason);
	char head[512];

	TDC_GUARD(tdc_secret_alloc(cap, out, e));
	char *body = (char *)out->data + 512;
	size_t body_cap = cap - 512;
	int n;
	if (key) {
		n = snprintf(body, body_cap, "{\"request_id\":\"%s\",\"secret_id\":\"%s\",\"key\":\"",
			     request_id, secret_id ? secret_id : "");
		if (n < 0 || (size_t)n + b64 + 3 > body_cap)
			goto toolong;
		EVP_EncodeBlock((unsigned char *)body + n, key->data, (int)key->len);
		memcpy(body + n + b64, "\"}", 3);
		n += (int)b64 + 2;
	} else {
		n = snprintf(body, body_cap, "{\"request_id\":\"%s\",\"error\":\"%s\"}", request_id,
			     kbs_reason_code(reason));
		if (n < 0 || (size_t)n >= body_cap)
			goto toolong;
	}
	size_t body_len = (size_t)n;
	int h = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: application/json\r\n"
			 "Cache-Control: no-store\r\n"
			 "Content-Length: %zu\r\n"
			 "X-Request-Id: %s\r\n"
			 "%s"
			 "Connection: %s\r\n"
			 "\r\n",
			 code, status_text(code), body_len, request_id,
			 reason == KBS_BUSY || reason == KBS_COLLATERAL_UNAVAILABLE ?
				 "Retry-After: 5\r\n" :
				 "",
			 close ? "close" : "keep-alive");
	if (h < 0 || (size_t)h >= sizeof(head))
		goto toolong;
	/* header, then the body moved down right after it */
	memcpy(out->data, head, (size_t)h);
	memmove(out->data + h, body, body_len);
	OPENSSL_cleanse(out->data + h + body_len, cap - (size_t)h - body_len);
	/* out->len stays the allocation size: tdc_secret_free unmaps by it */
	*out_len = (size_t)h + body_len;
	return 0;
toolong:
	tdc_secret_free(out);
	return TDC_FAIL(e, TDC_E_INTERNAL, "response does not fit");
}
