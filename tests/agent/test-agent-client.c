/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's client side: backoff schedule and the retry loop on a fake clock
 * (nothing sleeps), the strict HTTP/JSON response parser (each check alone),
 * base64, and real attempts over loopback TLS 1.3 against a small in-test broker.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <libcryptsetup.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tdcrypt/agent.h"
#include "util/util.h"
#include "tdcrypt/ratls.h"
#include "tdcrypt/sim.h"

#define NOW 1750000000
#define RID "0123456789abcdef0123456789abcdef"
/* Scripted results: 0 (unset) is "no network"; success is S_OK. */
#define S_OK 100

/* ---- fake clock ---- */

struct fclock {
	int64_t now;
	unsigned sleeps;
	int64_t slept[256];
	uint32_t seed;
};

static int64_t f_now(void *arg)
{
	return ((struct fclock *)arg)->now;
}

static void f_sleep(void *arg, int64_t ms)
{
	struct fclock *c = arg;
	assert_true(ms > 0);
	if (c->sleeps < 256)
		c->slept[c->sleeps] = ms;
	c->sleeps++;
	c->now += ms;
}

static uint32_t f_random(void *arg)
{
	struct fclock *c = arg;
	c->seed = c->seed * 1103515245u + 12345u;
	return c->seed >> 8;
}

/* ---- backoff and the retry loop ---- */

static void test_backoff_delay(void **state)
{
	(void)state;
	for (uint32_t r = 0; r < 1000; r += 7) {
		int64_t d0 = tdc_backoff_delay(500, 10000, 0, r);
		assert_true(d0 >= 250 && d0 <= 500);
		int64_t d3 = tdc_backoff_delay(500, 10000, 3, r);
		assert_true(d3 >= 2000 && d3 <= 4000);
		int64_t d40 = tdc_backoff_delay(500, 10000, 40, r);
		assert_true(d40 >= 5000 && d40 <= 10000);
	}
	assert_int_equal(tdc_backoff_delay(500, 10000, 0, 0), 250);
	assert_int_equal(tdc_backoff_delay(500, 10000, 0, 250), 500);
	assert_int_equal(tdc_backoff_delay(500, 10000, 100, UINT32_MAX), 5000 + UINT32_MAX % 5001);
}

struct script {
	struct fclock *clk;
	int64_t cost;       /* fake ms each attempt takes */
	int results[8][64]; /* per broker, per try; 0 entries = NO_NETWORK */
	const char *reasons[8][64];
	unsigned retry_after[8][64]; /* the Retry-After of each answer, seconds */
	int64_t asked_at[8][64];
	unsigned tries[8];
	int64_t max_deadline_seen;
	int64_t hard_deadline;
};

static int fake_attempt(void *arg, size_t b, int64_t deadline, struct tdc_agent_reply *reply,
			struct tdc_error *e)
{
	struct script *s = arg;
	unsigned t = s->tries[b]++;
	if (t < 64)
		s->asked_at[b][t] = s->clk->now;
	assert_true(deadline <= s->hard_deadline);
	assert_true(deadline > s->clk->now);
	int64_t spend = s->cost < deadline - s->clk->now ? s->cost : deadline - s->clk->now;
	s->clk->now += spend;
	int r = t < 64 ? s->results[b][t] : 0;
	const char *why = t < 64 ? s->reasons[b][t] : NULL;
	if (why)
		snprintf(reply->error, sizeof(reply->error), "%s", why);
	reply->retry_after_s = t < 64 ? s->retry_after[b][t] : 0;
	if (r == S_OK) {
		assert_int_equal(tdc_secret_alloc(32, &reply->key, NULL), 0);
		memset(reply->key.data, 0x5c, 32);
		snprintf(reply->request_id, sizeof(reply->request_id), RID);
		return TDC_ATTEMPT_OK;
	}
	if (r == 0)
		r = TDC_ATTEMPT_NO_NETWORK;
	TDC_FAIL(e, TDC_E_IO, "scripted failure");
	return r;
}

static void cfg(struct tdc_agent_config *c, size_t brokers, uint32_t total_ms)
{
	memset(c, 0, sizeof(*c));
	c->n_brokers = brokers;
	for (size_t i = 0; i < brokers; i++) {
		snprintf(c->brokers[i].host, sizeof(c->brokers[i].host), "broker%zu", i);
		c->brokers[i].port = 50051;
	}
	c->total_timeout_ms = total_ms;
	c->attempt_timeout_ms = 10000;
	c->connect_timeout_ms = 5000;
	c->backoff_initial_ms = 500;
	c->backoff_max_ms = 8000;
}

static int run(struct tdc_agent_config *c, struct script *s, struct tdc_agent_reply *reply)
{
	struct tdc_agent_clock clk = {f_now, f_sleep, f_random, s->clk};
	s->hard_deadline = s->clk->now + c->total_timeout_ms;
	return tdc_agent_fetch(c, &clk, fake_attempt, s, NULL, reply);
}

static void test_fetch_deadline(void **state)
{
	struct fclock fc = {.now = 1000000, .seed = 1};
	struct script s = {.clk = &fc, .cost = 700};
	struct tdc_agent_config c;
	struct tdc_agent_reply reply;
	(void)state;
	cfg(&c, 2, 60000);
	assert_int_equal(run(&c, &s, &reply), TDC_AGENT_EXIT_NO_NETWORK);
	/* never past the deadline, and kept trying until close to it */
	assert_true(fc.now <= 1000000 + 60000);
	assert_true(fc.now >= 1000000 + 60000 - 8000 - 2 * 700);
	assert_true(s.tries[0] >= 6 && s.tries[0] == s.tries[1]);
	/* every pause within [d/2, d] of its exponential step, capped at max */
	for (unsigned i = 0; i < fc.sleeps && i < 256; i++) {
		int64_t d = 500ll << (i < 5 ? i : 5);
		if (d > 8000)
			d = 8000;
		assert_true(fc.slept[i] >= d / 2 && fc.slept[i] <= d);
	}
	assert_int_equal(reply.key.data, NULL);
}

static void test_fetch_success_after_retries(void **state)
{
	struct fclock fc = {.now = 0, .seed = 2};
	struct script s = {.clk = &fc, .cost = 100};
	struct tdc_agent_config c;
	struct tdc_agent_reply reply;
	(void)state;
	cfg(&c, 2, 120000);
	s.results[0][0] = TDC_ATTEMPT_DENIED;
	s.reasons[0][0] = "policy_denied";
	s.results[1][0] = TDC_ATTEMPT_NO_NETWORK;
	s.results[1][1] = TDC_ATTEMPT_RETRY;
	s.reasons[1][1] = "busy";
	s.results[1][2] = S_OK;
	assert_int_equal(run(&c, &s, &reply), TDC_AGENT_EXIT_OK);
	assert_int_equal(s.tries[0], 1); /* a "stop" broker is not asked again */
	assert_int_equal(s.tries[1], 3);
	assert_int_equal(fc.sleeps, 2);
	assert_int_equal(reply.key.len, 32);
	assert_int_equal(reply.key.data[31], 0x5c);
	assert_string_equal(reply.request_id, RID);
	tdc_agent_reply_free(&reply);
}

/* busy with Retry-After: that broker is not asked again before then, the others are */
static void test_fetch_busy_retry_after(void **state)
{
	struct fclock fc = {.now = 0, .seed = 4};
	struct script s = {.clk = &fc, .cost = 100};
	struct tdc_agent_config c;
	struct tdc_agent_reply reply;
	(void)state;
	cfg(&c, 1, 120000);
	s.results[0][0] = TDC_ATTEMPT_RETRY;
	s.reasons[0][0] = "busy";
	s.retry_after[0][0] = 20;
	s.results[0][1] = S_OK;
	assert_int_equal(run(&c, &s, &reply), TDC_AGENT_EXIT_OK);
	assert_int_equal(s.tries[0], 2);
	assert_true(s.asked_at[0][1] - s.asked_at[0][0] >= 20000);
	assert_true(s.asked_at[0][1] - s.asked_at[0][0] <= 20000 + 8000);
	tdc_agent_reply_free(&reply);

	/* two brokers: the one that asked for 20 s waits, the other one serves */
	memset(&s, 0, sizeof(s));
	fc = (struct fclock){.now = 0, .seed = 5};
	s.clk = &fc;
	s.cost = 100;
	cfg(&c, 2, 120000);
	s.results[0][0] = TDC_ATTEMPT_RETRY;
	s.reasons[0][0] = "busy";
	s.retry_after[0][0] = 20;
	s.results[1][0] = TDC_ATTEMPT_RETRY;
	s.reasons[1][0] = "busy";
	s.results[1][1] = TDC_ATTEMPT_RETRY;
	s.reasons[1][1] = "busy";
	s.results[1][2] = S_OK;
	assert_int_equal(run(&c, &s, &reply), TDC_AGENT_EXIT_OK);
	assert_int_equal(s.tries[0], 1);
	assert_int_equal(s.tries[1], 3);
	assert_true(fc.now < 20000);
	tdc_agent_reply_free(&reply);

	/* a hostile hint is capped: the agent never waits past TDC_AGENT_MAX_RETRY_AFTER_S */
	memset(&s, 0, sizeof(s));
	fc = (struct fclock){.now = 0, .seed = 6};
	s.clk = &fc;
	s.cost = 100;
	cfg(&c, 1, 300000);
	s.results[0][0] = TDC_ATTEMPT_RETRY;
	s.reasons[0][0] = "busy";
	s.retry_after[0][0] = TDC_AGENT_MAX_RETRY_AFTER_S;
	s.results[0][1] = S_OK;
	assert_int_equal(run(&c, &s, &reply), TDC_AGENT_EXIT_OK);
	assert_true(s.asked_at[0][1] - s.asked_at[0][0] <= TDC_AGENT_MAX_RETRY_AFTER_S * 1000 + 8000);
	tdc_agent_reply_free(&reply);
}

static void test_fetch_all_denied(void **state)
{
	struct fclock fc = {.now = 0, .seed = 3};
	struct script s = {.clk = &fc, .cost = 100};
	struct tdc_agent_config c;
	struct tdc_agent_reply reply;
	(void)state;
	cfg(&c, 2, 120000);
	s.results[0][0] = TDC_ATTEMPT_DENIED;
	s.reasons[0][0] = "tcb_refused";
	s.results[1][0] = TDC_ATTEMPT_DENIED;
	s.reasons[1][0] = "policy_denied";
	assert_int_equal(run(&c, &s, &reply), TDC_AGENT_EXIT_DENIED);
	assert_string_equal(reply.error, "policy_denied");
	assert_int_equal(fc.sleeps, 0);
	assert_int_equal(fc.now, 200);
}

static void test_fetch_bad_broker(void **state)
{
	struct fclock fc = {.now = 0, .seed = 4};
	struct script s = {.clk = &fc, .cost = 100};
	struct tdc_agent_config c;
	struct tdc_agent_reply reply;
	(void)state;
	cfg(&c, 1, 120000);
	s.results[0][0] = TDC_ATTEMPT_BAD_BROKER;
	assert_int_equal(run(&c, &s, &reply), TDC_AGENT_EXIT_BAD_BROKER);
	assert_int_equal(s.tries[0], 1);
	assert_int_equal(fc.sleeps, 0);
}

static void test_fetch_retry_reason_until_deadline(void **state)
{
	struct fclock fc = {.now = 0, .seed = 5};
	struct script s = {.clk = &fc, .cost = 50};
	struct tdc_agent_config c;
	struct tdc_agent_reply reply;
	(void)state;
	cfg(&c, 1, 20000);
	for (int i = 0; i < 64; i++) {
		s.results[0][i] = TDC_ATTEMPT_RETRY;
		s.reasons[0][i] = "collateral_unavailable";
	}
	assert_int_equal(run(&c, &s, &reply), TDC_AGENT_EXIT_DENIED);
	assert_string_equal(reply.error, "collateral_unavailable");
	assert_true(fc.now <= 20000);
	assert_true(s.tries[0] >= 4);
}

/* ---- HTTP response parsing ---- */

static char *resp(int status, const char *extra_headers, const char *body)
{
	static char buf[20000];
	snprintf(buf, sizeof(buf),
		 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
		 "%sContent-Length: %zu\r\n\r\n%s",
		 status, extra_headers, strlen(body), body);
	return buf;
}

static int parse(const char *s, struct tdc_agent_reply *r, struct tdc_error *e)
{
	return tdc_agent_parse_response((const uint8_t *)s, strlen(s), "luks-root", r, e);
}

static void test_http_ok(void **state)
{
	struct tdc_agent_reply r;
	struct tdc_error e = {0};
	(void)state;
	const char *s =
	    resp(200, "X-Request-Id: " RID "\r\n",
		 "{\"request_id\":\"" RID "\",\"secret_id\":\"luks-root\","
		 "\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"future\":1}");
	assert_int_equal(parse(s, &r, &e), 0);
	assert_int_equal(r.http_status, 200);
	assert_int_equal(r.key.len, 32);
	for (int i = 0; i < 32; i++)
		assert_int_equal(r.key.data[i], i);
	assert_string_equal(r.request_id, RID);
	assert_string_equal(r.error, "");
	tdc_agent_reply_free(&r);

	s = resp(403, "", "{\"request_id\":\"" RID "\",\"error\":\"policy_denied\"}");
	assert_int_equal(parse(s, &r, &e), 0);
	assert_int_equal(r.http_status, 403);
	assert_string_equal(r.error, "policy_denied");
	assert_null(r.key.data);
	assert_true(tdc_agent_reason_is_stop(r.error, r.http_status));
	assert_int_equal(r.retry_after_s, 0);

	/* busy with a Retry-After: the hint is kept, capped; a date or junk is no hint */
	s = resp(503, "Retry-After: 5\r\n", "{\"request_id\":\"" RID "\",\"error\":\"busy\"}");
	assert_int_equal(parse(s, &r, &e), 0);
	assert_string_equal(r.error, "busy");
	assert_int_equal(r.retry_after_s, 5);
	s = resp(503, "Retry-After: 9999\r\n", "{\"request_id\":\"" RID "\",\"error\":\"busy\"}");
	assert_int_equal(parse(s, &r, &e), 0);
	assert_int_equal(r.retry_after_s, TDC_AGENT_MAX_RETRY_AFTER_S);
	s = resp(503, "Retry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n",
		 "{\"request_id\":\"" RID "\",\"error\":\"busy\"}");
	assert_int_equal(parse(s, &r, &e), 0);
	assert_int_equal(r.retry_after_s, 0);
}

static void test_http_bad(void **state)
{
	static const char okbody[] = "{\"request_id\":\"" RID "\",\"secret_id\":\"luks-root\","
				     "\"key\":\"AAEC\"}";
	char big[6000];
	memset(big, 'A', sizeof(big));
	big[sizeof(big) - 1] = 0;
	char bigbody[6200];
	snprintf(bigbody, sizeof(bigbody),
		 "{\"request_id\":\"" RID "\",\"secret_id\":\"luks-root\",\"key\":\"%s\"}", big);
	char many[2000] = "";
	for (int i = 0; i < 33; i++)
		strcat(many, "X-A: b\r\n");
	struct {
		const char *text;
		int code;
		const char *reason;
		bool build; /* text is a body for resp(200, hdr) */
		const char *hdr;
	} bad[] = {
	    {"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", TDC_E_FORMAT,
	     "bare CR, LF or NUL in HTTP head", false, NULL},
	    {"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
	     TDC_E_FORMAT, "not an HTTP/1.1 response", false, NULL},
	    {"HTTP/1.1 2x0 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
	     TDC_E_FORMAT, "bad HTTP status code", false, NULL},
	    {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}", TDC_E_FORMAT,
	     "response without Content-Length", false, NULL},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", TDC_E_FORMAT,
	     "response without Content-Type", false, NULL},
	    {"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\n{}",
	     TDC_E_FORMAT, "response is not JSON", false, NULL},
	    {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
	     "Content-Length: 2\r\n\r\n{}",
	     TDC_E_FORMAT, "duplicate Content-Length", false, NULL},
	    {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: -2\r\n\r\n{}",
	     TDC_E_FORMAT, "bad Content-Length", false, NULL},
	    {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
	     "Content-Length: 2\r\n\r\n{}",
	     TDC_E_FORMAT, "Transfer-Encoding is not allowed", false, NULL},
	    {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n folded\r\n"
	     "Content-Length: 2\r\n\r\n{}",
	     TDC_E_FORMAT, "bad HTTP header name (obs-fold or junk)", false, NULL},
	    {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{}",
	     TDC_E_FORMAT, "response body truncated", false, NULL},
	    {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}x",
	     TDC_E_FORMAT, "unexpected trailing bytes", false, NULL},
	    {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n",
	     TDC_E_FORMAT, "HTTP line without CRLF", false, NULL},
	    {"{\"request_id\":\"" RID "\",", TDC_E_FORMAT, "truncated JSON", true, ""},
	    {"{\"request_id\":\"" RID "\",\"secret_id\":\"luks-root\"}", TDC_E_FORMAT,
	     "a success without a key", true, ""},
	    {"{\"request_id\":\"" RID "\",\"secret_id\":\"other\",\"key\":\"AAEC\"}", TDC_E_FORMAT,
	     "the broker released another secret", true, ""},
	    {"{\"request_id\":\"" RID "\",\"secret_id\":\"luks-root\",\"key\":\"AAE=\","
	     "\"error\":\"x\"}",
	     TDC_E_FORMAT, "a success that carries an error", true, ""},
	    {"{\"request_id\":\"ABC\",\"secret_id\":\"luks-root\",\"key\":\"AAEC\"}", TDC_E_FORMAT,
	     "bad request_id in response", true, ""},
	    {"{\"secret_id\":\"luks-root\",\"key\":\"AAEC\"}", TDC_E_FORMAT, NULL, true, ""},
	    {okbody, TDC_E_FORMAT, "X-Request-Id differs from the body's request_id", true,
	     "X-Request-Id: ffffffffffffffffffffffffffffffff\r\n"},
	    {"{\"request_id\":\"" RID "\",\"secret_id\":\"luks-root\",\"key\":\"AA=C\"}",
	     TDC_E_FORMAT, "bad base64 character", true, ""},
	    {"{\"request_id\":\"" RID "\",\"secret_id\":\"luks-root\",\"key\":\"AAB=\"}",
	     TDC_E_FORMAT, "non-canonical base64", true, ""},
	    {"{\"request_id\":\"" RID "\",\"secret_id\":\"luks-root\",\"key\":\"AAE\"}",
	     TDC_E_FORMAT, "bad base64 length", true, ""},
	    {bigbody, TDC_E_LIMIT, "bad key size", true, ""},
	    {okbody, TDC_E_LIMIT, "too many HTTP header fields", true, many},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tdc_agent_reply r;
		struct tdc_error e = {0};
		const char *text = bad[i].build ? resp(200, bad[i].hdr, bad[i].text) : bad[i].text;
		int rc = parse(text, &r, &e);
		if (rc != bad[i].code || (bad[i].reason && strcmp(e.reason, bad[i].reason)))
			fail_msg("case %zu: rc %d reason '%s'", i, rc, e.reason ? e.reason : "");
		assert_null(r.key.data);
	}
	/* refusals: a key in a refusal, a refusal without a code, a bad code */
	struct tdc_agent_reply r;
	struct tdc_error e = {0};
	assert_int_equal(parse(resp(403, "",
				    "{\"request_id\":\"" RID "\",\"error\":\"policy_denied\","
				    "\"key\":\"AAEC\"}"),
			       &r, &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "a refusal that carries a key");
	tdc_error_clear(&e);
	assert_int_equal(parse(resp(500, "", "{\"request_id\":\"" RID "\"}"), &r, &e),
			 TDC_E_FORMAT);
	assert_string_equal(e.reason, "a refusal without a reason code");
	tdc_error_clear(&e);
	assert_int_equal(
	    parse(resp(500, "", "{\"request_id\":\"" RID "\",\"error\":\"Bad Code\"}"), &r, &e),
	    TDC_E_FORMAT);
	assert_string_equal(e.reason, "bad reason code in response");
	assert_int_equal(r.http_status, 500);
}

static void test_reason_codes(void **state)
{
	(void)state;
	assert_true(tdc_agent_reason_is_stop("policy_denied", 403));
	assert_true(tdc_agent_reason_is_stop("unknown_secret", 404));
	assert_true(tdc_agent_reason_is_stop("quote_invalid", 403));
	assert_false(tdc_agent_reason_is_stop("busy", 503));
	assert_false(tdc_agent_reason_is_stop("collateral_unavailable", 503));
	assert_false(tdc_agent_reason_is_stop("internal", 500));
	assert_false(tdc_agent_reason_is_stop("timeout", 408));
	/* codes newer than the agent go by status class */
	assert_true(tdc_agent_reason_is_stop("new_refusal", 403));
	assert_false(tdc_agent_reason_is_stop("new_outage", 503));
}

static void test_base64(void **state)
{
	uint8_t out[8];
	size_t n;
	(void)state;
	assert_int_equal(tdc_base64_decode("Zm9vYg==", 8, out, sizeof(out), &n, NULL), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "foob", 4);
	assert_int_equal(tdc_base64_decode("Zm9vYmE=", 8, out, sizeof(out), &n, NULL), 0);
	assert_int_equal(n, 5);
	assert_int_equal(tdc_base64_decode("Zm9v", 4, out, sizeof(out), &n, NULL), 0);
	assert_int_equal(n, 3);
	assert_int_equal(tdc_base64_decode("Zm=v", 4, out, sizeof(out), &n, NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_base64_decode("Zm9v====", 8, out, sizeof(out), &n, NULL),
			 TDC_E_FORMAT);
	assert_int_equal(tdc_base64_decode("Zg==Zg==", 8, out, sizeof(out), &n, NULL),
			 TDC_E_FORMAT);
	assert_int_equal(tdc_base64_decode("Zm9vYmFyYmF6", 12, out, 8, &n, NULL), TDC_E_LIMIT);
	assert_int_equal(tdc_base64_decode("", 0, out, 8, &n, NULL), TDC_E_FORMAT);
}

static void test_http_request(void **state)
{
	char *req;
	size_t len;
	(void)state;
	char *body;
	assert_int_equal(tdc_agent_request_body(NULL, &body, NULL), 0);
	assert_int_equal(tdc_agent_http_request("10.0.2.100:50051", "luks-root", body, &req, &len,
						NULL), 0);
	free(body);
	/* the body names this build's version; its length follows */
	const char *want_body = "{\"agent\":\"tdcrypt-agent/" TDC_AGENT_VERSION "\"}";
	char want[256];
	snprintf(want, sizeof(want),
		 "POST /v1/keys/luks-root HTTP/1.1\r\n"
		 "Host: 10.0.2.100:50051\r\n"
		 "Content-Type: application/json\r\n"
		 "Content-Length: %zu\r\n"
		 "Connection: close\r\n"
		 "\r\n"
		 "%s",
		 strlen(want_body), want_body);
	assert_string_equal(req, want);
	assert_int_equal(len, strlen(req));
	free(req);

	/* with an event log: the log and the CCEL table, base64 */
	struct tdc_agent_evidence ev = { .event_log = (uint8_t *)"foob", .event_log_len = 4,
					 .has_table = true };
	tdc_ccel_table_build(4, 0, ev.ccel_table);
	assert_int_equal(tdc_agent_request_body(&ev, &body, NULL), 0);
	assert_non_null(strstr(body, "\"event_log\":\"Zm9vYg==\""));
	assert_non_null(strstr(body, "\"ccel_table\":\"Q0NFTD"));
	free(body);
}

/* ---- loopback TLS against an in-test broker ---- */

struct server {
	int lfd;
	uint16_t port;
	SSL_CTX *ctx;
	const char *response; /* NULL: accept TCP, then say nothing */
	bool saw_ratls;       /* the client presented a proper RA-TLS certificate */
	char path[128];
	char peer[INET_ADDRSTRLEN]; /* the client's source address */
	pthread_t th;
};

static int accept_any(X509_STORE_CTX *sctx, void *arg)
{
	(void)arg;
	return tdc_ratls_cert_self_signed(X509_STORE_CTX_get0_cert(sctx), NULL) == 0;
}

static X509 *self_signed(EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	assert_true(x && n);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 9));
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
					       (const unsigned char *)"broker.test", -1, -1, 0));
	assert_true(X509_set_subject_name(x, n) && X509_set_issuer_name(x, n));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_true(X509_set_pubkey(x, key));
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	X509_NAME_free(n);
	return x;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	struct sockaddr_in pa;
	socklen_t pl = sizeof(pa);
	int fd = accept(s->lfd, (struct sockaddr *)&pa, &pl);
	if (fd < 0)
		return NULL;
	inet_ntop(AF_INET, &pa.sin_addr, s->peer, sizeof(s->peer));
	if (!s->response) {
		char b[64];
		while (read(fd, b, sizeof(b)) > 0)
			;
		close(fd);
		return NULL;
	}
	SSL *ssl = SSL_new(s->ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) == 1) {
		static char req[256 * 1024];
		size_t got = 0, n, clen;
		while (got < sizeof(req) - 1 &&
		       SSL_read_ex(ssl, req + got, sizeof(req) - 1 - got, &n)) {
			got += n;
			req[got] = 0;
			char *body = strstr(req, "\r\n\r\n"), *cl = strstr(req, "Content-Length: ");
			if (body && cl && sscanf(cl + 16, "%zu", &clen) == 1 &&
			    strlen(body + 4) >= clen)
				break;
		}
		sscanf(req, "POST %127s", s->path);
		X509 *peer = SSL_get1_peer_certificate(ssl);
		struct tdc_ratls_evidence ev;
		s->saw_ratls = peer && tdc_ratls_cert_check(peer, NULL, 0, &ev, NULL) == 0;
		X509_free(peer);
		SSL_write_ex(ssl, s->response, strlen(s->response), &n);
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	close(fd);
	return NULL;
}

struct world {
	EVP_PKEY *bkey, *akey;
	X509 *bcert, *acert;
	uint8_t pin[32];
};

static void world_init(struct world *w)
{
	struct tdc_sim_opts o;
	struct tdc_sim_pki *pki;
	uint8_t *q;
	size_t qlen;
	assert_int_equal(tdc_ratls_keygen(&w->bkey, NULL), 0);
	w->bcert = self_signed(w->bkey);
	assert_int_equal(tdc_spki_sha256(w->bcert, w->pin, NULL), 0);
	assert_int_equal(tdc_ratls_keygen(&w->akey, NULL), 0);
	tdc_sim_opts_default(&o, NOW);
	assert_int_equal(tdc_ratls_report_data_for_key(w->akey, o.td.report_data, NULL), 0);
	assert_int_equal(tdc_sim_pki_new(&o, &pki, NULL), 0);
	assert_int_equal(tdc_sim_quote(pki, &o, &q, &qlen, NULL), 0);
	assert_int_equal(tdc_ratls_cert_create(w->akey, q, qlen, NOW, 3600, &w->acert, NULL), 0);
	free(q);
	tdc_sim_pki_free(pki);
}

static void world_free(struct world *w);
static void server_start(struct server *s, struct world *w, const char *response);
static void server_stop(struct server *s);

/* ---- the whole agent (tdc_agent_run): sim quote, loopback broker, LUKS file ---- */

static const uint8_t passphrase[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
				       11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
				       22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
#define PASS_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

struct marks {
	char seen[128];
};

static void on_mark(void *arg, const char *ev)
{
	struct marks *m = arg;
	strncat(m->seen, ev, sizeof(m->seen) - strlen(m->seen) - 2);
	strcat(m->seen, " ");
}

static void quiet_log(int level, const char *msg, void *usrptr)
{
	(void)level;
	(void)msg;
	(void)usrptr;
}

static void make_luks(const char *path)
{
	struct crypt_device *cd;
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 << 20), 0);
	close(fd);
	crypt_set_log_callback(NULL, quiet_log, NULL);
	assert_int_equal(crypt_init(&cd, path), 0);
	struct crypt_pbkdf_type pb = {.type = CRYPT_KDF_PBKDF2,
				      .hash = "sha256",
				      .iterations = 1000,
				      .flags = CRYPT_PBKDF_NO_BENCHMARK};
	assert_int_equal(crypt_set_pbkdf_type(cd, &pb), 0);
	assert_int_equal(crypt_set_data_offset(cd, 4096), 0);
	struct crypt_params_luks2 p2 = {.sector_size = 4096};
	assert_int_equal(crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, NULL, 64, &p2),
			 0);
	assert_int_equal(crypt_keyslot_add_by_volume_key(cd, 0, NULL, 0, (const char *)passphrase,
							 sizeof(passphrase)),
			 0);
	crypt_free(cd);
}

static int run_agent(const char *response, bool tamper, struct server *s, struct marks *m)
{
	char dir[] = "/tmp/tdc-agent-run-XXXXXX", sim[64], img[64], cl[64], cmd[128];
	struct world w;
	struct tdc_agent_config c;
	struct tdc_agent_events ev = {.mark = on_mark, .arg = m};
	struct tdc_agent_run_opts ro = {.no_activate = true};
	assert_non_null(mkdtemp(dir));
	snprintf(sim, sizeof(sim), "%s/sim", dir);
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	snprintf(cl, sizeof(cl), "%s/cmdline", dir);
	assert_int_equal(tdc_sim_dir_init(sim, NOW, 30, NULL, NULL), 0);
	/* the vTPM log the sim provider turns into RTMRs: one boot loader event */
	struct tdc_evlog_writer *lw;
	uint8_t d[48] = { 1 }, *log;
	size_t loglen;
	assert_int_equal(tdc_evlog_writer_new(&lw, NULL), 0);
	assert_int_equal(tdc_evlog_writer_add(lw, 8, TDC_EV_IPL, d, "x", 1, NULL), 0);
	assert_int_equal(tdc_evlog_writer_finish(lw, &log, &loglen, NULL), 0);
	FILE *f = fopen(cl, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(log, 1, loglen, f), loglen);
	fclose(f);
	free(log);
	make_luks(img);

	world_init(&w); /* only the broker key and its pin are used */
	server_start(s, &w, response);
	memset(&c, 0, sizeof(c));
	c.n_brokers = 1;
	snprintf(c.brokers[0].host, sizeof(c.brokers[0].host), "127.0.0.1");
	c.brokers[0].port = s->port;
	c.brokers[0].is_ip = true;
	c.n_pins = 1;
	memcpy(c.pins[0], w.pin, 32);
	snprintf(c.secret_id, sizeof(c.secret_id), "luks-root");
	c.luks_device = img;
	c.luks_name = (char *)"root";
	assert_int_equal(tdc_luks_header_digest(img, c.header_sha256, NULL), 0);
	if (tamper)
		c.header_sha256[0] ^= 1;
	c.provider = TDC_PROVIDER_SIM;
	c.sim_dir = sim;
	c.tpm_log = cl;
	c.total_timeout_ms = 20000;
	c.attempt_timeout_ms = 10000;
	c.connect_timeout_ms = 2000;
	c.backoff_initial_ms = 100;
	c.backoff_max_ms = 1000;
	int code = tdc_agent_run(&c, &ro, tdc_agent_real_clock(), &ev);
	if (tamper) { /* the broker was never contacted: unblock its accept */
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons(s->port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(fd);
	}
	server_stop(s);
	world_free(&w);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return code;
}

static void test_run_release(void **state)
{
	struct server s;
	struct marks m = {""};
	(void)state;
	assert_int_equal(run_agent(resp(200, "",
					"{\"request_id\":\"" RID "\",\"secret_id\":"
					"\"luks-root\",\"key\":\"" PASS_B64 "\"}"),
				   false, &s, &m),
			 TDC_AGENT_EXIT_OK);
	assert_true(s.saw_ratls);
	assert_string_equal(m.seen, "start quote connected key mapped ");
}

static void test_run_wrong_key(void **state)
{
	struct server s;
	struct marks m = {""};
	(void)state;
	assert_int_equal(run_agent(resp(200, "",
					"{\"request_id\":\"" RID "\",\"secret_id\":"
					"\"luks-root\",\"key\":\"AAAA\"}"),
				   false, &s, &m),
			 TDC_AGENT_EXIT_UNLOCK);
	assert_string_equal(m.seen, "start quote connected key ");
}

static void test_run_denied(void **state)
{
	struct server s;
	struct marks m = {""};
	(void)state;
	assert_int_equal(run_agent(resp(403, "",
					"{\"request_id\":\"" RID "\",\"error\":"
					"\"policy_denied\"}"),
				   false, &s, &m),
			 TDC_AGENT_EXIT_DENIED);
}

static void test_run_bad_header(void **state)
{
	struct server s;
	struct marks m = {""};
	(void)state;
	assert_int_equal(run_agent(resp(200, "", "{}"), true, &s, &m), TDC_AGENT_EXIT_BAD_HEADER);
	assert_string_equal(m.seen, "start "); /* no quote, no connection */
	assert_false(s.saw_ratls);
}

static void world_free(struct world *w)
{
	EVP_PKEY_free(w->bkey);
	EVP_PKEY_free(w->akey);
	X509_free(w->bcert);
	X509_free(w->acert);
}

static void server_start(struct server *s, struct world *w, const char *response)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	memset(s, 0, sizeof(*s));
	s->response = response;
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sa, &sl), 0);
	s->port = ntohs(sa.sin_port);
	s->ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(s->ctx);
	SSL_CTX_set_min_proto_version(s->ctx, TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_use_certificate(s->ctx, w->bcert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, w->bkey), 1);
	SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(s->ctx, accept_any, NULL);
	SSL_CTX_set_num_tickets(s->ctx, 0);
	assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->th, NULL);
	close(s->lfd);
	SSL_CTX_free(s->ctx);
}

static int attempt_ev(struct world *w, uint16_t port, bool good_pin, int64_t timeout_ms,
		      const struct tdc_agent_events *ev, struct tdc_agent_reply *reply,
		      struct tdc_error *e)
{
	struct tdc_agent_config c = {.n_pins = 1};
	struct tdc_agent_broker b = {.port = port, .is_ip = true};
	SSL_CTX *ctx;
	snprintf(b.host, sizeof(b.host), "127.0.0.1");
	memcpy(c.pins[0], w->pin, 32);
	if (!good_pin)
		c.pins[0][0] ^= 1;
	assert_int_equal(tdc_agent_tls_ctx(&c, w->akey, w->acert, &ctx, e), 0);
	const struct tdc_agent_clock *clk = tdc_agent_real_clock();
	int r = tdc_agent_attempt(ctx, &b, "luks-root", "{}", clk, clk->now_ms(NULL) + timeout_ms, 2000,
				  ev, reply, e);
	SSL_CTX_free(ctx);
	return r;
}

static int attempt(struct world *w, uint16_t port, bool good_pin, int64_t timeout_ms,
		   struct tdc_agent_reply *reply, struct tdc_error *e)
{
	return attempt_ev(w, port, good_pin, timeout_ms, NULL, reply, e);
}

static void test_tls_release(void **state)
{
	struct world w;
	struct server s;
	struct tdc_agent_reply reply = {0};
	struct tdc_error e = {0};
	char buf[300];
	(void)state;
	world_init(&w);
	server_start(&s, &w,
		     resp(200, "X-Request-Id: " RID "\r\n",
			  "{\"request_id\":\"" RID "\",\"secret_id\":\"luks-root\","
			  "\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}"));
	int r = attempt(&w, s.port, true, 10000, &reply, &e);
	server_stop(&s);
	if (r != TDC_ATTEMPT_OK)
		fail_msg("attempt %d: %s", r, tdc_error_format(&e, buf, sizeof(buf)));
	assert_true(s.saw_ratls);
	assert_string_equal(s.path, "/v1/keys/luks-root");
	assert_int_equal(reply.key.len, 32);
	assert_int_equal(reply.key.data[31], 31);
	tdc_agent_reply_free(&reply);
	world_free(&w);
}

static void test_tls_denied(void **state)
{
	struct world w;
	struct server s;
	struct tdc_agent_reply reply = {0};
	struct tdc_error e = {0};
	(void)state;
	world_init(&w);
	server_start(&s, &w,
		     resp(403, "", "{\"request_id\":\"" RID "\",\"error\":\"policy_denied\"}"));
	assert_int_equal(attempt(&w, s.port, true, 10000, &reply, &e), TDC_ATTEMPT_DENIED);
	server_stop(&s);
	assert_string_equal(reply.error, "policy_denied");
	assert_null(reply.key.data);
	world_free(&w);
}

static void test_tls_busy(void **state)
{
	struct world w;
	struct server s;
	struct tdc_agent_reply reply = {0};
	struct tdc_error e = {0};
	(void)state;
	world_init(&w);
	server_start(
	    &s, &w,
	    resp(503, "Retry-After: 1\r\n", "{\"request_id\":\"" RID "\",\"error\":\"busy\"}"));
	assert_int_equal(attempt(&w, s.port, true, 10000, &reply, &e), TDC_ATTEMPT_RETRY);
	server_stop(&s);
	assert_string_equal(reply.error, "busy");
	world_free(&w);
}

static void test_tls_pin_mismatch(void **state)
{
	struct world w;
	struct server s;
	struct tdc_agent_reply reply = {0};
	struct tdc_error e = {0};
	(void)state;
	world_init(&w);
	server_start(&s, &w, resp(200, "", "{}"));
	assert_int_equal(attempt(&w, s.port, false, 10000, &reply, &e), TDC_ATTEMPT_BAD_BROKER);
	server_stop(&s);
	assert_string_equal(e.reason, "broker identity check failed");
	assert_string_equal(s.path, ""); /* no request was sent */
	world_free(&w);
}

static void test_tls_no_network(void **state)
{
	struct world w;
	struct tdc_agent_reply reply = {0};
	struct tdc_error e = {0};
	(void)state;
	world_init(&w);
	/* a port nobody listens on */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	assert_int_equal(attempt(&w, ntohs(sa.sin_port), true, 10000, &reply, &e),
			 TDC_ATTEMPT_NO_NETWORK);
	assert_string_equal(e.reason, "cannot connect to broker");
	world_free(&w);
}

/* The socket hook sees every socket before it connects: a bind there is the source
 * address the broker sees; a hook that fails fails the connect. */
static int bind_src(void *arg, int fd)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int nodelay = 0;
	socklen_t len = sizeof(nodelay);
	/* the agent's own options are already set (no Nagle: the request must not wait) */
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
	assert_int_equal(nodelay, 1);
	inet_pton(AF_INET, arg, &sa.sin_addr);
	return bind(fd, (struct sockaddr *)&sa, sizeof(sa));
}

static int refuse_socket(void *arg, int fd)
{
	(void)arg;
	(void)fd;
	errno = EPERM;
	return -1;
}

static void test_tls_socket_hook(void **state)
{
	struct world w;
	struct server s;
	struct tdc_agent_reply reply = {0};
	struct tdc_error e = {0};
	(void)state;
	world_init(&w);
	server_start(&s, &w,
		     resp(200, "",
			  "{\"request_id\":\"" RID "\",\"secret_id\":\"luks-root\","
			  "\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}"));
	struct tdc_agent_events ev = {.socket = bind_src, .arg = "127.0.0.9"};
	assert_int_equal(attempt_ev(&w, s.port, true, 10000, &ev, &reply, &e), TDC_ATTEMPT_OK);
	server_stop(&s);
	assert_string_equal(s.peer, "127.0.0.9");
	tdc_agent_reply_free(&reply);

	server_start(&s, &w, resp(200, "", "{}"));
	ev.socket = refuse_socket;
	assert_int_equal(attempt_ev(&w, s.port, true, 10000, &ev, &reply, &e),
			 TDC_ATTEMPT_NO_NETWORK);
	server_stop(&s);
	assert_string_equal(e.reason, "cannot connect to broker");
	assert_non_null(strstr(e.detail, strerror(EPERM)));
	assert_string_equal(s.peer, ""); /* nothing connected */
	world_free(&w);
}

/* A broker that takes the request and closes without a word (stopped, crashed) is a lost
 * connection, not a malformed reply. */
static void test_tls_closed_before_response(void **state)
{
	struct world w;
	struct server s;
	struct tdc_agent_reply reply = {0};
	struct tdc_error e = {0};
	(void)state;
	world_init(&w);
	server_start(&s, &w, "");
	assert_int_equal(attempt(&w, s.port, true, 10000, &reply, &e), TDC_ATTEMPT_NO_NETWORK);
	server_stop(&s);
	assert_string_equal(e.reason, "connection closed before the response");
	assert_string_equal(s.path, "/v1/keys/luks-root"); /* the request did arrive */
	world_free(&w);
}

static void test_tls_silent_broker(void **state)
{
	struct world w;
	struct server s;
	struct tdc_agent_reply reply = {0};
	struct tdc_error e = {0};
	(void)state;
	world_init(&w);
	server_start(&s, &w, NULL);
	assert_int_equal(attempt(&w, s.port, true, 300, &reply, &e), TDC_ATTEMPT_NO_NETWORK);
	assert_string_equal(e.reason, "TLS handshake timed out");
	server_stop(&s);
	world_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff_delay),
	    cmocka_unit_test(test_fetch_deadline),
	    cmocka_unit_test(test_fetch_success_after_retries),
	    cmocka_unit_test(test_fetch_busy_retry_after),
	    cmocka_unit_test(test_fetch_all_denied),
	    cmocka_unit_test(test_fetch_bad_broker),
	    cmocka_unit_test(test_fetch_retry_reason_until_deadline),
	    cmocka_unit_test(test_http_ok),
	    cmocka_unit_test(test_http_bad),
	    cmocka_unit_test(test_reason_codes),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_http_request),
	    cmocka_unit_test(test_tls_release),
	    cmocka_unit_test(test_tls_denied),
	    cmocka_unit_test(test_tls_busy),
	    cmocka_unit_test(test_tls_pin_mismatch),
	    cmocka_unit_test(test_tls_no_network),
	    cmocka_unit_test(test_tls_socket_hook),
	    cmocka_unit_test(test_tls_closed_before_response),
	    cmocka_unit_test(test_tls_silent_broker),
	    cmocka_unit_test(test_run_release),
	    cmocka_unit_test(test_run_wrong_key),
	    cmocka_unit_test(test_run_denied),
	    cmocka_unit_test(test_run_bad_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
