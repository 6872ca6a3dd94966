/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's half of the HTTP/1.1 JSON API (PROTOCOL.md §6): the one request
 * it sends, and a strict parser for the one response it reads. Every byte of
 * the response goes through the bounded reader; the key is decoded straight
 * into locked memory and its base64 text is wiped.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "agent-int.h"
#include "util/json.h"
#include "util/util.h"
#include "util/wr.h"

void tdc_agent_reply_free(struct tdc_agent_reply *r)
{
	if (!r)
		return;
	tdc_secret_free(&r->key);
	memset(r, 0, sizeof(*r));
}

int tdc_agent_request_body(const struct tdc_agent_evidence *ev, char **out, struct tdc_error *e)
{
	struct tdc_wr w;
	uint8_t *buf;
	size_t len;
	tdc_wr_init_alloc(&w, TDC_MAX_HTTP_BODY);
	tdc_wr_str(&w, "{\"agent\":\"tdcrypt-agent/" TDC_AGENT_VERSION "\"");
	if (ev && ev->event_log && ev->has_table) {
		/* base64 needs 4 bytes per 3 (EVP_EncodeBlock writes a NUL after them) */
		size_t cap = 4 * ((ev->event_log_len + 2) / 3) + 1;
		char *b64 = malloc(cap);
		char table[4 * ((TDC_CCEL_TABLE_SIZE + 2) / 3) + 1];
		if (!b64) {
			tdc_wr_free(&w);
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		}
		EVP_EncodeBlock((unsigned char *)b64, ev->event_log, (int)ev->event_log_len);
		EVP_EncodeBlock((unsigned char *)table, ev->ccel_table, TDC_CCEL_TABLE_SIZE);
		tdc_wr_fmt(&w, ",\"ccel_table\":\"%s\",\"event_log\":\"", table);
		tdc_wr_str(&w, b64);
		tdc_wr_str(&w, "\"");
		free(b64);
	}
	tdc_wr_str(&w, "}");
	tdc_wr_u8(&w, 0);
	TDC_GUARD(tdc_wr_finish(&w, &buf, &len, e));
	*out = (char *)buf;
	return 0;
}

int tdc_agent_http_request(const char *host, const char *secret_id, const char *body, char **out,
			   size_t *len, struct tdc_error *e)
{
	struct tdc_wr w;
	uint8_t *buf;
	size_t blen = strlen(body);
	tdc_wr_init_alloc(&w, 2048 + blen);
	tdc_wr_fmt(&w,
		   "POST /v1/keys/%s HTTP/1.1\r\n"
		   "Host: %s\r\n"
		   "Content-Type: application/json\r\n"
		   "Content-Length: %zu\r\n"
		   "Connection: close\r\n"
		   "\r\n",
		   secret_id, host, blen);
	tdc_wr_bytes(&w, body, blen);
	tdc_wr_u8(&w, 0);
	TDC_GUARD(tdc_wr_finish(&w, &buf, len, e));
	*out = (char *)buf;
	(*len)--; /* not the NUL */
	return 0;
}

/* ---- reason codes ---- */

bool tdc_agent_reason_is_stop(const char *code, int http_status)
{
	static const char *const stop[] = {
	    "bad_request",    "unsupported_version", "not_found",     "method_not_allowed",
	    "too_large",      "evidence_invalid",    "quote_invalid", "tcb_refused",
	    "unknown_secret", "policy_denied"};
	static const char *const retry[] = {"collateral_unavailable", "busy", "timeout",
					    "internal"};
	for (size_t i = 0; i < sizeof(stop) / sizeof(stop[0]); i++)
		if (!strcmp(code, stop[i]))
			return true;
	for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
		if (!strcmp(code, retry[i]))
			return false;
	/* A code newer than this agent (§8): go by the status class. */
	return http_status >= 400 && http_status < 500 && http_status != 408;
}

/* ---- response ---- */

struct head {
	int status;
	bool has_length, has_type;
	size_t length;
	unsigned retry_after; /* seconds, 0: none */
	char request_id[33];
};

static bool is_tchar(uint8_t c)
{
	return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c);
}

/* Takes one CRLF-terminated line (without the CRLF); a bare LF is an error. */
static int take_line(struct tdc_rd *r, struct tdc_rd *line, struct tdc_error *e)
{
	size_t pos;
	if (!tdc_rd_find(r, "\r\n", 2, &pos))
		return TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(r), "HTTP line without CRLF",
				   "%s", "");
	size_t at = tdc_rd_offset(r);
	TDC_GUARD(tdc_rd_sub(r, pos, line, "http.line", e));
	TDC_GUARD(tdc_rd_skip(r, 2, "http.crlf", e));
	for (size_t i = 0; i < tdc_rd_len(line); i++) {
		uint8_t c = tdc_rd_at(line, i);
		if (c == '\n' || c == '\r' || c == 0)
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at + i,
					   "bare CR, LF or NUL in HTTP head", "%s", "");
	}
	return 0;
}

static int status_line(struct tdc_rd *line, struct head *h, struct tdc_error *e)
{
	uint8_t d[4];
	if (!tdc_rd_starts_with(line, "HTTP/1.1 ", 9))
		return TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(line), "not an HTTP/1.1 response",
				   "%s", "");
	TDC_GUARD(tdc_rd_skip(line, 9, "http.version", e));
	TDC_GUARD(tdc_rd_copy(line, d, 3, "http.status", e));
	h->status = 0;
	for (int i = 0; i < 3; i++) {
		if (!isdigit(d[i]))
			return TDC_FAIL_AT(e, TDC_E_FORMAT, 9, "bad HTTP status code", "%s", "");
		h->status = h->status * 10 + (d[i] - '0');
	}
	if (h->status < 100)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 9, "bad HTTP status code", "%d", h->status);
	if (!tdc_rd_empty(line)) {
		TDC_GUARD(tdc_rd_u8(line, &d[3], "http.sp", e));
		if (d[3] != ' ')
			return TDC_FAIL_AT(e, TDC_E_FORMAT, 12, "bad HTTP status line", "%s", "");
	}
	return 0; /* the reason phrase is free text */
}

static int header_line(struct tdc_rd *line, struct head *h, struct tdc_error *e)
{
	char name[64], value[256];
	size_t nl = 0, vl = 0, at = tdc_rd_offset(line);
	uint8_t c;

	for (;;) {
		TDC_GUARD(tdc_rd_u8(line, &c, "http.field-name", e));
		if (c == ':')
			break;
		if (!is_tchar(c))
			return TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(line) - 1,
					   "bad HTTP header name (obs-fold or junk)", "%s", "");
		if (nl + 1 >= sizeof(name))
			return TDC_FAIL_AT(e, TDC_E_LIMIT, at, "HTTP header name too long", "%s",
					   "");
		name[nl++] = (char)c;
	}
	name[nl] = '\0';
	if (nl == 0)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "empty HTTP header name", "%s", "");
	while (!tdc_rd_empty(line)) {
		TDC_GUARD(tdc_rd_u8(line, &c, "http.field-value", e));
		if (vl == 0 && (c == ' ' || c == '\t'))
			continue;
		if (vl + 1 >= sizeof(value))
			return TDC_FAIL_AT(e, TDC_E_LIMIT, at, "HTTP header value too long", "%s",
					   name);
		value[vl++] = (char)c;
	}
	while (vl > 0 && (value[vl - 1] == ' ' || value[vl - 1] == '\t'))
		vl--;
	value[vl] = '\0';

	if (!strcasecmp(name, "Content-Length")) {
		if (h->has_length)
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "duplicate Content-Length", "%s",
					   "");
		if (vl == 0 || vl > 6)
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "bad Content-Length", "'%s'",
					   value);
		h->length = 0;
		for (size_t i = 0; i < vl; i++) {
			if (!isdigit((unsigned char)value[i]))
				return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "bad Content-Length",
						   "'%s'", value);
			h->length = h->length * 10 + (size_t)(value[i] - '0');
		}
		h->has_length = true;
	} else if (!strcasecmp(name, "Transfer-Encoding")) {
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "Transfer-Encoding is not allowed", "%s",
				   "");
	} else if (!strcasecmp(name, "Content-Type")) {
		const char *mt = "application/json";
		size_t ml = strlen(mt);
		if (vl < ml || strncasecmp(value, mt, ml) != 0 ||
		    (vl > ml && value[ml] != ';' && value[ml] != ' '))
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "response is not JSON", "'%s'",
					   value);
		h->has_type = true;
	} else if (!strcasecmp(name, "Retry-After")) {
		/* delta-seconds only (the broker sends no dates); a hint, capped, never an
		 * error: anything else is ignored and the agent's own backoff applies */
		unsigned v = 0;
		bool digits = vl > 0 && vl <= 4;
		for (size_t i = 0; digits && i < vl; i++) {
			digits = isdigit((unsigned char)value[i]);
			v = v * 10 + (unsigned)(value[i] - '0');
		}
		if (digits)
			h->retry_after = v < TDC_AGENT_MAX_RETRY_AFTER_S ? v : TDC_AGENT_MAX_RETRY_AFTER_S;
	} else if (!strcasecmp(name, "X-Request-Id")) {
		if (vl != 32)
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "bad X-Request-Id", "'%s'", value);
		memcpy(h->request_id, value, 33);
	}
	return 0;
}

static bool request_id_ok(const char *s, size_t len)
{
	if (len != 32)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return false;
	return true;
}

static bool reason_ok(const char *s, size_t len, size_t cap)
{
	if (len == 0 || len >= cap)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && s[i] != '_' && !isdigit((unsigned char)s[i]))
			return false;
	return true;
}

static int body_json(json_object *o, const struct head *h, const char *secret_id,
		     struct tdc_agent_reply *r, struct tdc_error *e)
{
	json_object *v, *key = NULL, *err = NULL;
	const char *s;
	size_t len;

	TDC_GUARD(tdc_json_str(o, NULL, "request_id", 64, &s, &len, e));
	if (!request_id_ok(s, len))
		return TDC_FAIL(e, TDC_E_FORMAT, "bad request_id in response");
	if (h->request_id[0] && strcmp(h->request_id, s) != 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "X-Request-Id differs from the body's request_id");
	memcpy(r->request_id, s, 33);
	TDC_GUARD(tdc_json_field(o, NULL, "key", json_type_string, false, &key, e));
	TDC_GUARD(tdc_json_field(o, NULL, "error", json_type_string, false, &err, e));

	if (h->status != 200) {
		if (key)
			return TDC_FAIL(e, TDC_E_FORMAT, "a refusal that carries a key");
		if (!err)
			return TDC_FAIL(e, TDC_E_FORMAT, "a refusal without a reason code");
		s = json_object_get_string(err);
		len = (size_t)json_object_get_string_len(err);
		if (!reason_ok(s, len, sizeof(r->error)))
			return TDC_FAIL(e, TDC_E_FORMAT, "bad reason code in response");
		memcpy(r->error, s, len + 1);
		return 0;
	}
	if (err)
		return TDC_FAIL(e, TDC_E_FORMAT, "a success that carries an error");
	if (!key)
		return TDC_FAIL(e, TDC_E_FORMAT, "a success without a key");
	TDC_GUARD(tdc_json_field(o, NULL, "secret_id", json_type_string, true, &v, e));
	if (strcmp(json_object_get_string(v), secret_id) != 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "the broker released another secret");
	s = json_object_get_string(key);
	len = (size_t)json_object_get_string_len(key);
	if (len == 0 || len > (TDC_MAX_RELEASED_KEY + 2) / 3 * 4)
		return TDC_FAILF(e, TDC_E_LIMIT, "bad key size", "%zu base64 characters", len);
	/* Always one page-sized buffer, so shrinking len below never changes
	 * how many pages tdc_secret_free unmaps. */
	TDC_GUARD(tdc_secret_alloc(TDC_MAX_RELEASED_KEY, &r->key, e));
	size_t n;
	int rc = tdc_base64_decode(s, len, r->key.data, r->key.len, &n, e);
	if (rc < 0 || n == 0) {
		tdc_secret_free(&r->key);
		return rc < 0 ? rc : TDC_FAIL(e, TDC_E_FORMAT, "empty key");
	}
	r->key.len = n;
	return 0;
}

/* json-c keeps its own copy of every string: wipe the key's base64 text. */
static void wipe_key_text(json_object *o)
{
	json_object *k;
	if (o && json_object_object_get_ex(o, "key", &k) &&
	    json_object_is_type(k, json_type_string))
		OPENSSL_cleanse((char *)json_object_get_string(k),
				(size_t)json_object_get_string_len(k));
}

int tdc_agent_parse_response(const uint8_t *buf, size_t len, const char *secret_id,
			     struct tdc_agent_reply *r, struct tdc_error *e)
{
	struct tdc_rd rd, line, body;
	struct head h;
	json_object *o = NULL;
	size_t fields = 0;

	memset(r, 0, sizeof(*r));
	memset(&h, 0, sizeof(h));
	if (len > TDC_MAX_HTTP_RESPONSE)
		return TDC_FAILF(e, TDC_E_LIMIT, "response too large", "limit %u",
				 TDC_MAX_HTTP_RESPONSE);
	tdc_rd_init(&rd, buf, len);
	TDC_GUARD(take_line(&rd, &line, e));
	TDC_GUARD(status_line(&line, &h, e));
	r->http_status = h.status;
	for (;;) {
		TDC_GUARD(take_line(&rd, &line, e));
		if (tdc_rd_empty(&line))
			break;
		if (++fields > TDC_MAX_HTTP_HEADERS)
			return TDC_FAIL(e, TDC_E_LIMIT, "too many HTTP header fields");
		TDC_GUARD(header_line(&line, &h, e));
	}
	if (!h.has_length)
		return TDC_FAIL(e, TDC_E_FORMAT, "response without Content-Length");
	if (!h.has_type)
		return TDC_FAIL(e, TDC_E_FORMAT, "response without Content-Type");
	if (tdc_rd_remaining(&rd) < h.length)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, len, "response body truncated",
				   "%zu of %zu bytes", tdc_rd_remaining(&rd), h.length);
	TDC_GUARD(tdc_rd_sub(&rd, h.length, &body, "http.body", e));
	TDC_GUARD(tdc_rd_end(&rd, "http.body", e));
	TDC_GUARD(tdc_json_parse_object(tdc_rd_ptr(&body), tdc_rd_len(&body), TDC_MAX_HTTP_RESPONSE,
					"response body", &o, e));
	int rc = body_json(o, &h, secret_id, r, e);
	wipe_key_text(o);
	json_object_put(o);
	if (rc < 0) {
		int status = r->http_status;
		tdc_agent_reply_free(r);
		r->http_status = status;
	}
	r->retry_after_s = h.retry_after;
	return rc;
}
