/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker end to end on loopback: an in-process tdcrypt-kbs (ephemeral port,
 * temporary store, simulator PKI and collateral bundle, fixed time) and an
 * RA-TLS client built from lib/ratls and lib/sim quotes. The happy path, and
 * each refusal with its reason code and audit record; the broker survives
 * garbage and oversized requests and serves the next good one.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../ratls/foreign-certs.h"
#include "../pg/test-db.h"
#include "kbs-harness.h"
#include "store/db.h"
#include "tdcrypt/kbs.h"
#include "tdcrypt/measure.h"
#include "tdcrypt/ratls.h"
#include "tdcrypt/sim.h"
#include "tdcrypt/store.h"
#include "util/util.h"


/* ---- tests ---- */

static void release_happy_path(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	broker_start(&b, true, NOW, false);
	agent_make(&a, NULL, false);
	post(b.port, &a, "luks-root", &r);
	expect_released(&r);
	assert_non_null(strstr(r.raw, "Cache-Control: no-store\r\n"));
	assert_non_null(strstr(r.raw, "X-Request-Id: "));
	agent_free(&a);
	broker_stop(&b);
}

static size_t released_records(void)
{
	struct tdc_audit_list l;
	size_t n = 0;
	assert_int_equal(tdc_store_audit_list(store, NULL, &l, NULL), 0);
	for (size_t i = 0; i < l.n; i++)
		n += l.items[i].decision == TDC_AUDIT_RELEASED;
	tdc_audit_list_free(&l);
	return n;
}

static void pg_read_only(struct db *d, bool on)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "DO $$ BEGIN EXECUTE format('ALTER DATABASE %%I SET "
		 "default_transaction_read_only = %s', current_database()); END $$",
		 on ? "on" : "off");
	assert_int_equal(db_exec(d, sql, "test", NULL), 0);
	/* every session of the store ends; their next ones see the setting */
	assert_int_equal(db_exec(d, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
				    "WHERE datname = current_database() AND pid <> pg_backend_pid()",
				 "test", NULL),
			 0);
}

/* PostgreSQL stops taking writes (a full disk, a demoted primary): no key leaves without
 * its audit record, and the broker serves again once the database does. */
static void read_only_store_refuses_release(void **state)
{
	(void)state;
	if (!tdb_postgresql())
		skip(); /* SQLite: the WAL watchdog and crash tests (store-integrity, kbs-crash) */
	struct broker b;
	struct agent a;
	struct resp r;
	struct db *d;
	broker_start(&b, true, NOW, false);
	agent_make(&a, NULL, false);
	post(b.port, &a, "luks-root", &r);
	expect_released(&r);
	size_t before = released_records();
	assert_int_equal(db_open(p_db, &d, NULL), 0);
	pg_read_only(d, true);
	post(b.port, &a, "luks-root", &r);
	assert_int_equal(r.status, 500);
	assert_string_equal(r.error, "internal");
	assert_string_equal(r.key, "");
	assert_int_equal(released_records(), before);
	pg_read_only(d, false);
	db_close(d);
	post(b.port, &a, "luks-root", &r);
	expect_released(&r);
	assert_int_equal(released_records(), before + 1);
	agent_free(&a);
	broker_stop(&b);
}

/* Waits (bounded) until the broker's metrics show queue depth q: progress is observed,
 * never assumed after a sleep. */
static void wait_for_queue(unsigned q)
{
	char out[8192], want[32];
	snprintf(want, sizeof(want), "\"queue\":%u,", q);
	for (int i = 0; i < 400; i++) {
		int fd = admin_connect();
		admin_call(fd, "{\"op\":\"metrics\"}", out, sizeof(out));
		close(fd);
		if (strstr(out, want))
			return;
		usleep(50 * 1000);
	}
	fail_msg("the queue never reached %u: %s", q, out);
}

/* Waits (bounded) until a session of the store waits for the test's table lock. */
static void wait_for_lock_waiter(struct db *d)
{
	for (int i = 0; i < 400; i++) {
		struct db_q q;
		db_q_init(&q, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
			      "AND datname = current_database()");
		assert_int_equal(db_step(d, &q, "test", NULL), 1);
		int64_t n = db_col_i64(&q, 0);
		db_q_free(&q);
		if (n > 0)
			return;
		usleep(50 * 1000);
	}
	fail_msg("the worker never reached the store");
}

/* The work queue full (a slow store holds the only worker): the next request is answered
 * busy with Retry-After at once, not left to time out; then all are served. */
static void queue_full_answers_busy(void **state)
{
	(void)state;
	if (!tdb_postgresql())
		skip(); /* a table lock is how this test slows the store down */
	struct broker b;
	struct agent a;
	struct resp r;
	struct tls t1, t2;
	struct db *d;
	kt_limits = (struct kt_limits){ .workers = 1, .queue_max = 1 };
	broker_start(&b, true, NOW, true);
	kt_limits = (struct kt_limits){ 0 };
	agent_make(&a, NULL, false);
	assert_int_equal(db_open(p_db, &d, NULL), 0);
	assert_int_equal(db_begin(d, NULL), 0);
	assert_int_equal(db_exec(d, "LOCK TABLE secrets IN ACCESS EXCLUSIVE MODE", "test", NULL), 0);
	const char req[] = "POST /v1/keys/luks-root HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n"
			   "Connection: close\r\n\r\n";
	/* one request on the worker (waiting for the lock), one in the queue */
	assert_int_equal(tls_open(&t1, b.port, &a), 1);
	assert_int_equal(SSL_write(t1.ssl, req, (int)sizeof(req) - 1), (int)sizeof(req) - 1);
	struct db *w;
	assert_int_equal(db_open(p_db, &w, NULL), 0);
	wait_for_lock_waiter(w); /* the worker took it and waits on the store */
	db_close(w);
	assert_int_equal(tls_open(&t2, b.port, &a), 1);
	assert_int_equal(SSL_write(t2.ssl, req, (int)sizeof(req) - 1), (int)sizeof(req) - 1);
	wait_for_queue(1);
	/* the third finds the queue full */
	post(b.port, &a, "luks-root", &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.error, "busy");
	assert_non_null(strstr(r.raw, "Retry-After: "));
	assert_int_equal(db_commit(d, NULL), 0);
	db_close(d);
	struct resp r1, r2;
	tls_read_response(&t1, r1.raw, sizeof(r1.raw));
	parse_resp(&r1);
	tls_read_response(&t2, r2.raw, sizeof(r2.raw));
	parse_resp(&r2);
	expect_released(&r1);
	expect_released(&r2);
	tls_close(&t1);
	tls_close(&t2);
	agent_free(&a);
	broker_stop(&b);
}

static void two_requests_one_connection(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r1, r2;
	struct tls t;
	const char req[] = "POST /v1/keys/luks-root HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n";
	broker_start(&b, true, NOW, false);
	agent_make(&a, NULL, false);
	assert_int_equal(tls_open(&t, b.port, &a), 1);
	send_raw(&t, req, sizeof(req) - 1, &r1);
	expect_released(&r1);
	assert_non_null(strstr(r1.raw, "Connection: keep-alive"));
	send_raw(&t, req, sizeof(req) - 1, &r2);
	expect_released(&r2);
	assert_string_not_equal(r1.request_id, r2.request_id);
	tls_close(&t);
	agent_free(&a);
	broker_stop(&b);
}

static void quote_bound_to_other_key(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	broker_start(&b, true, NOW, false);
	agent_make(&a, NULL, true);
	post(b.port, &a, "luks-root", &r);
	expect_denied(&r, 403, "evidence_invalid", "REPORTDATA");
	agent_free(&a);
	broker_stop(&b);
}

/* Signs cert with another key than its own: a bad self-signature, nothing else changed. */
static void break_self_signature(X509 *cert)
{
	EVP_PKEY *other;
	assert_int_equal(tdc_ratls_keygen(&other, NULL), 0);
	assert_true(X509_sign(cert, other, EVP_sha256()) > 0);
	EVP_PKEY_free(other);
	assert_int_equal(tdc_ratls_cert_self_signed(cert, NULL), TDC_E_SIGNATURE);
	assert_int_equal(tdc_ratls_cert_self_issued(cert, NULL), 0);
}

/* The broker does not check the client certificate's self-signature (PROTOCOL.md 5.1):
 * the handshake's CertificateVerify is signed by the certificate's key over a transcript
 * that contains the certificate. A certificate with a bad self-signature and a valid
 * handshake therefore gets a key only if the binding holds: the TD's own certificate
 * does; a TD's genuine quote and claims in a certificate for another key, or claims for
 * that key around the TD's quote, do not. */
static void bad_self_signature_needs_binding(void **state)
{
	(void)state;
	struct broker b;
	struct agent td, thief = { 0 };
	struct resp r;
	struct tdc_ratls_evidence ev;
	uint8_t *ext = NULL;
	size_t ext_len = 0;
	broker_start(&b, true, NOW, false);
	agent_make(&td, NULL, false);

	/* 1. the TD's certificate and key, self-signature broken: the binding holds */
	break_self_signature(td.cert);
	post(b.port, &td, "luks-root", &r);
	expect_released(&r);

	/* 2. the TD's quote and claims (its key's hash) around the thief's key */
	assert_int_equal(tdc_ratls_cert_evidence(td.cert, &ev, NULL), 0);
	assert_int_equal(tdc_ratls_ext_encode(tdc_rd_ptr(&ev.quote), tdc_rd_len(&ev.quote),
					      &ev.claims, &ext, &ext_len, NULL),
			 0);
	assert_int_equal(tdc_ratls_keygen(&thief.key, NULL), 0);
	assert_int_equal(tdc_ratls_cert_create_ext(thief.key, ext, ext_len, NOW,
						   TDC_RATLS_CERT_LIFETIME, &thief.cert, NULL),
			 0);
	break_self_signature(thief.cert);
	post(b.port, &thief, "luks-root", &r);
	expect_denied(&r, 403, "evidence_invalid", "pubkey-hash");
	X509_free(thief.cert);

	/* 3. claims for the thief's key around the TD's quote: REPORTDATA does not bind them */
	assert_int_equal(tdc_ratls_cert_create(thief.key, tdc_rd_ptr(&ev.quote),
					       tdc_rd_len(&ev.quote), NOW, TDC_RATLS_CERT_LIFETIME,
					       &thief.cert, NULL),
			 0);
	break_self_signature(thief.cert);
	post(b.port, &thief, "luks-root", &r);
	expect_denied(&r, 403, "evidence_invalid", "REPORTDATA");

	free(ext);
	agent_free(&thief);
	agent_free(&td);
	broker_stop(&b);
}

/* Another CCC implementation's certificate (rats-tls: P-256, so the handshake passes;
 * CCC evidence with an SGX quote and custom claims): the audit record says what it is. */
static void sgx_certificate_named(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	broker_start(&b, true, NOW, false);
	a.cert = ft_ratls_sgx_cert(&a.key);
	post(b.port, &a, "luks-root", &r);
	expect_denied(&r, 403, "evidence_invalid", "SGX quote (TEE type 0x0), not TDX");
	agent_free(&a);
	broker_stop(&b);
}

/* Gramine's legacy certificate (P-384: refused in the handshake): the sampled audit
 * record of the failed handshake still says what it was. */
static void gramine_certificate_named_in_handshake_audit(void **state)
{
	(void)state;
	struct broker b;
	struct agent a = { 0 };
	struct tls t;
	char buf[16];
	uint8_t rd[64] = { 0 };
	size_t qlen;
	struct tdc_audit_query q = { 0 };
	struct tdc_audit_list l;
	int64_t last = 0;

	assert_int_equal(tdc_store_audit_list(store, &q, &l, NULL), 0);
	if (l.n)
		last = l.items[l.n - 1].id;
	tdc_audit_list_free(&l);
	EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
	assert_int_equal(EVP_PKEY_CTX_set_group_name(kc, "secp384r1"), 1);
	assert_int_equal(EVP_PKEY_keygen(kc, &a.key), 1);
	EVP_PKEY_CTX_free(kc);
	ft_spki_sha256(a.key, rd);
	uint8_t *quote = ft_sgx_quote(3, TDC_TEE_TYPE_SGX, rd, &qlen);
	const char *oid = FT_OID_GRAMINE_LEGACY;
	const uint8_t *val = quote;
	a.cert = ft_cert(a.key, &oid, &val, &qlen, 1);
	free(quote);
	broker_start(&b, true, NOW, false);
	tls_open(&t, b.port, &a);
	assert_true(SSL_read(t.ssl, buf, sizeof(buf)) <= 0);
	tls_close(&t);
	q.after_id = last;
	for (int i = 0; i < 200; i++) {
		assert_int_equal(tdc_store_audit_list(store, &q, &l, NULL), 0);
		if (l.n)
			break;
		tdc_audit_list_free(&l);
		usleep(10000);
	}
	assert_int_equal(l.n, 1);
	if (verbose)
		print_message("audit: %s\n", l.items[0].reason);
	assert_non_null(strstr(l.items[0].reason, "handshake_failed"));
	assert_non_null(strstr(l.items[0].reason, "SGX quote (TEE type 0x0), not TDX"));
	tdc_audit_list_free(&l);
	agent_free(&a);
	broker_stop(&b);
}

static void unknown_secret(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	broker_start(&b, true, NOW, false);
	agent_make(&a, NULL, false);
	post(b.port, &a, "no-such-secret", &r);
	expect_denied(&r, 404, "unknown_secret", "no such secret");
	agent_free(&a);
	broker_stop(&b);
}

static void set_debug(struct tdc_sim_opts *o)
{
	o->td.td_attributes[0] |= 1; /* DEBUG */
}

static void debug_td_refused(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	broker_start(&b, true, NOW, false);
	agent_make(&a, set_debug, false);
	post(b.port, &a, "luks-root", &r);
	expect_denied(&r, 403, "policy_denied", "debug");
	agent_free(&a);
	broker_stop(&b);
}

static void wrong_mrtd_refused(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	broker_start(&b, true, NOW, false);
	agent_make(&a, NULL, false);
	post(b.port, &a, "other-mrtd", &r);
	expect_denied(&r, 403, "policy_denied", "mrtd");
	agent_free(&a);
	broker_stop(&b);
}

/* ---- CC event logs ---- */

/* A CC event log of two events (an EV_EFI_ACTION in RTMR1, a GRUB command in RTMR2); the
 * quote's RTMRs are its replay, unless extra adds a third event to the log only. */
static uint8_t log_rtmr[4][48];

static void digest_of(const char *s, uint8_t d[48])
{
	unsigned int n;
	EVP_Digest(s, strlen(s), d, &n, EVP_sha384(), NULL);
}

static char *event_log_body(bool extra, bool tamper_text, bool with_table)
{
	struct tdc_evlog_writer *w;
	struct tdc_evlog l;
	uint8_t d[48], *log, table[TDC_CCEL_TABLE_SIZE];
	size_t len;
	char text[] = "grub_cmd: linuxefi /vmlinuz ro";
	assert_int_equal(tdc_evlog_writer_new(&w, NULL), 0);
	digest_of("go", d);
	assert_int_equal(tdc_evlog_writer_add(w, 2, TDC_EV_EFI_ACTION, d, "go", 2, NULL), 0);
	digest_of(text + 10, d);
	if (tamper_text)
		text[12] = 'X';
	assert_int_equal(tdc_evlog_writer_add(w, 3, TDC_EV_IPL, d, text, sizeof(text), NULL), 0);
	if (extra) /* measured, but not into the quote */
		assert_int_equal(tdc_evlog_writer_add(w, 3, TDC_EV_IPL, d, "/x", 3, NULL), 0);
	assert_int_equal(tdc_evlog_writer_finish(w, &log, &len, NULL), 0);
	if (!extra) {
		assert_int_equal(tdc_evlog_parse(log, len, TDC_EVLOG_CC, &l, NULL), 0);
		assert_int_equal(tdc_evlog_replay(&l, log_rtmr, NULL), 0);
		tdc_evlog_free(&l);
	}
	tdc_ccel_table_build(len, 0, table);
	char *b64 = malloc(4 * len / 3 + 8), tb[80];
	assert_non_null(b64);
	EVP_EncodeBlock((unsigned char *)b64, log, (int)len);
	EVP_EncodeBlock((unsigned char *)tb, table, sizeof(table));
	free(log);
	size_t cap = strlen(b64) + 256;
	char *body = malloc(cap);
	assert_non_null(body);
	snprintf(body, cap, "{\"agent\":\"t\"%s%s%s,\"event_log\":\"%s\"}",
		 with_table ? ",\"ccel_table\":\"" : "", with_table ? tb : "", with_table ? "\"" : "",
		 b64);
	free(b64);
	return body;
}

static void set_log_rtmrs(struct tdc_sim_opts *o)
{
	memcpy(o->td.rtmr, log_rtmr, sizeof(log_rtmr));
}

static void event_log_replayed_and_ruled_on(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	char policy[1024], hex[97], other[97];
	uint8_t d[48];

	char *good = event_log_body(false, false, true); /* sets log_rtmr */
	digest_of("linuxefi /vmlinuz ro", d);
	tdc_hex_encode(d, 48, hex);
	memset(other, 'a', 96);
	other[96] = '\0';
	snprintf(policy, sizeof(policy),
		 "{\"allow_simulator\":true,\"events\":{\"rtmr2\":[{\"digest\":[\"%s\"],"
		 "\"role\":\"kernel\",\"what\":\"grub_cmd: linuxefi /vmlinuz ro\"}]}}", hex);
	assert_int_equal(tdc_store_secret_put(store, "by-events", (const uint8_t *)SECRET,
					      strlen(SECRET), policy, NOW, NULL), 0);
	snprintf(policy, sizeof(policy),
		 "{\"allow_simulator\":true,\"events\":{\"rtmr2\":[{\"digest\":[\"%s\"],"
		 "\"what\":\"another kernel\"}]}}", other);
	assert_int_equal(tdc_store_secret_put(store, "other-events", (const uint8_t *)SECRET,
					      strlen(SECRET), policy, NOW, NULL), 0);
	broker_start(&b, true, NOW, false);
	agent_make(&a, set_log_rtmrs, false);

	/* the log replays to the quote: released, and the policy's events matched */
	post_body(b.port, &a, "by-events", good, &r);
	expect_released(&r);
	/* the same quote without its log: a policy on events cannot be satisfied */
	post(b.port, &a, "by-events", &r);
	expect_denied(&r, 403, "policy_denied", "no event log in the evidence");
	/* another event expected: the failing event is named, with what it measured */
	post_body(b.port, &a, "other-events", good, &r);
	expect_denied(&r, 403, "policy_denied", "event 0 is EV_IPL 'grub_cmd: linuxefi /vmlinuz ro'");
	/* a log that does not replay to the quote's RTMRs */
	char *extra = event_log_body(true, false, true);
	post_body(b.port, &a, "by-events", extra, &r);
	expect_denied(&r, 403, "evidence_invalid", "does not replay to the quote: RTMR2");
	/* a GRUB string whose text is not what its digest measured */
	char *tampered = event_log_body(false, true, true);
	post_body(b.port, &a, "by-events", tampered, &r);
	expect_denied(&r, 403, "evidence_invalid", "event data does not match its digest");
	/* a log without its CCEL table */
	char *no_table = event_log_body(false, false, false);
	post_body(b.port, &a, "by-events", no_table, &r);
	expect_denied(&r, 400, "bad_request", "go together");
	/* a policy on RTMR values still works with a log that replays */
	post_body(b.port, &a, "luks-root", good, &r);
	expect_released(&r);
	free(good);
	free(extra);
	free(tampered);
	free(no_table);
	agent_free(&a);
	broker_stop(&b);
}

static void secret_without_policy_refused(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	broker_start(&b, true, NOW, false);
	agent_make(&a, NULL, false);
	post(b.port, &a, "no-policy", &r);
	expect_denied(&r, 403, "policy_denied", "no policy");
	agent_free(&a);
	broker_stop(&b);
}

static void sim_quote_without_sim_trust(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	broker_start(&b, false, NOW, false);
	agent_make(&a, NULL, false);
	post(b.port, &a, "luks-root", &r);
	expect_denied(&r, 403, "quote_invalid", "quote verification");
	agent_free(&a);
	broker_stop(&b);
}

static void expired_collateral_refused(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	broker_start(&b, true, NOW + 40 * DAY, false);
	agent_make(&a, NULL, false);
	post(b.port, &a, "luks-root", &r);
	expect_denied(&r, 503, "collateral_unavailable", "expired");
	assert_non_null(strstr(r.raw, "Retry-After: "));
	agent_free(&a);
	broker_stop(&b);
}

static void oversized_and_garbage_requests(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	struct tls t;
	broker_start(&b, true, NOW, false);
	agent_make(&a, NULL, false);

	/* a header section over 8 KiB */
	static char big[10000];
	int n = snprintf(big, sizeof(big), "POST /v1/keys/luks-root HTTP/1.1\r\nHost: b\r\nX-Pad: ");
	memset(big + n, 'a', sizeof(big) - (size_t)n - 5);
	memcpy(big + sizeof(big) - 5, "\r\n\r\n", 4);
	assert_int_equal(tls_open(&t, b.port, &a), 1);
	send_raw(&t, big, sizeof(big) - 1, &r);
	tls_close(&t);
	expect_denied(&r, 413, "too_large", "header section too large");

	/* a body over the cap (an event log's worth) */
	char cl[128];
	snprintf(cl, sizeof(cl), "POST /v1/keys/luks-root HTTP/1.1\r\nHost: b\r\n"
		 "Content-Length: %u\r\n\r\n", TDC_MAX_HTTP_BODY + 1);
	assert_int_equal(tls_open(&t, b.port, &a), 1);
	send_raw(&t, cl, strlen(cl), &r);
	tls_close(&t);
	expect_denied(&r, 413, "too_large", "body too large");

	/* garbage inside TLS */
	const char junk[] = "\x16\x03\x01 GARBAGE \x01\x02\r\n\r\n";
	assert_int_equal(tls_open(&t, b.port, &a), 1);
	send_raw(&t, junk, sizeof(junk) - 1, &r);
	tls_close(&t);
	expect_denied(&r, 400, "bad_request", "");

	/* garbage instead of a TLS handshake: the connection is closed */
	int fd = tcp_connect(b.port);
	char buf[64];
	assert_int_equal(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
	assert_true(read(fd, buf, sizeof(buf)) <= 7); /* at most a TLS alert */
	close(fd);

	/* no client certificate: refused in the handshake */
	assert_int_equal(tls_open(&t, b.port, NULL), 1); /* TLS 1.3: the client thinks it is done */
	assert_true(SSL_read(t.ssl, buf, sizeof(buf)) <= 0);
	tls_close(&t);

	/* wrong method, unknown path, unknown version, bare LF */
	const struct {
		const char *req;
		int status;
		const char *code;
	} cases[] = {
		{ "GET /v1/keys/luks-root HTTP/1.1\r\nHost: b\r\n\r\n", 405, "method_not_allowed" },
		{ "POST /admin HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n", 404, "not_found" },
		{ "POST /v2/keys/luks-root HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n", 400,
		  "unsupported_version" },
		{ "POST /v1/keys/luks-root HTTP/1.1\nHost: b\n\n", 400, "bad_request" },
		{ "POST /v1/keys/luks-root HTTP/1.1\r\nHost: b\r\nContent-Length: 9\r\n\r\n{\"x\":1}  ",
		  400, "bad_request" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(tls_open(&t, b.port, &a), 1);
		send_raw(&t, cases[i].req, strlen(cases[i].req), &r);
		tls_close(&t);
		expect_denied(&r, cases[i].status, cases[i].code, "");
	}

	/* the broker is still up and serves a good request */
	post(b.port, &a, "luks-root", &r);
	expect_released(&r);
	agent_free(&a);
	broker_stop(&b);
}

/* A client that stalls mid-request does not hold up anyone else. */
static void slow_client_does_not_block(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	struct tls slow, hs;
	broker_start(&b, true, NOW, false);
	agent_make(&a, NULL, false);
	assert_int_equal(tls_open(&slow, b.port, &a), 1);
	assert_int_equal(SSL_write(slow.ssl, "POST /v1/keys/luks-root HTTP/1.1\r\nHo", 36), 36);
	/* and one that stops in the middle of its handshake */
	hs.fd = tcp_connect(b.port);
	assert_int_equal(write(hs.fd, "\x16\x03\x01\x00", 4), 4);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	post(b.port, &a, "luks-root", &r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	expect_released(&r);
	assert_true(t1.tv_sec - t0.tv_sec < 3);
	close(hs.fd);
	tls_close(&slow);
	agent_free(&a);
	broker_stop(&b);
}

/* The agent's certificate presented by someone without its private key: the
 * handshake fails at CertificateVerify, and the attempt is audited. */
static void replayed_certificate_without_key(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct tls t;
	char buf[64];
	struct tdc_audit_query q = { 0 };
	struct tdc_audit_list l;
	int64_t last = 0;

	assert_int_equal(tdc_store_audit_list(store, &q, &l, NULL), 0);
	if (l.n)
		last = l.items[l.n - 1].id;
	tdc_audit_list_free(&l);
	broker_start(&b, true, NOW, false);
	agent_make(&a, NULL, false);
	EVP_PKEY *real = a.key;
	a.key = impostor_key(real);
	tls_open(&t, b.port, &a);
	assert_true(SSL_read(t.ssl, buf, sizeof(buf)) <= 0);
	tls_close(&t);
	/* the audit is written by a worker: wait for it */
	q.after_id = last;
	for (int i = 0; i < 200; i++) {
		assert_int_equal(tdc_store_audit_list(store, &q, &l, NULL), 0);
		if (l.n)
			break;
		tdc_audit_list_free(&l);
		usleep(10000);
	}
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0].decision, TDC_AUDIT_DENIED);
	assert_null(l.items[0].secret_id);
	assert_non_null(strstr(l.items[0].reason, "handshake_failed"));
	assert_non_null(strstr(l.items[0].reason, "bad signature"));
	tdc_audit_list_free(&l);
	EVP_PKEY_free(real);
	agent_free(&a);
	broker_stop(&b);
}

/* ---- admin socket ---- */

static void admin_socket_ops(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct resp r;
	char out[65536], req[1024], mrtd[97];
	struct stat st;
	broker_start(&b, true, NOW, true);
	assert_int_equal(stat(p_admin, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	int fd = admin_connect();

	struct tdc_sim_opts o;
	tdc_sim_opts_default(&o, NOW);
	tdc_hex_encode(o.td.mrtd, 48, mrtd);
	/* "hunter2-hunter2" */
	snprintf(req, sizeof(req),
		 "{\"op\":\"secret.add\",\"id\":\"data-disk\",\"key_b64\":\"aHVudGVyMi1odW50ZXIy\","
		 "\"policy\":{\"allow_simulator\":true,\"mrtd\":[\"%s\"]}}",
		 mrtd);
	admin_call(fd, req, out, sizeof(out));
	assert_non_null(strstr(out, "\"ok\":true"));
	admin_call(fd, "{\"op\":\"secret.list\"}", out, sizeof(out));
	assert_non_null(strstr(out, "\"data-disk\""));
	assert_null(strstr(out, "aHVudGVy"));
	admin_call(fd, "{\"op\":\"policy.show\",\"id\":\"data-disk\"}", out, sizeof(out));
	assert_non_null(strstr(out, mrtd));
	admin_call(fd, "{\"op\":\"secret.add\",\"id\":\"x\",\"key_b64\":\"!!\"}", out, sizeof(out));
	assert_non_null(strstr(out, "\"ok\":false"));
	/* the shared strict decoder: non-canonical padding bits and a misplaced '=' refused */
	admin_call(fd, "{\"op\":\"secret.add\",\"id\":\"x\",\"key_b64\":\"QR==\"}", out, sizeof(out));
	assert_non_null(strstr(out, "non-canonical base64"));
	admin_call(fd, "{\"op\":\"secret.add\",\"id\":\"x\",\"key_b64\":\"A=AA\"}", out, sizeof(out));
	assert_non_null(strstr(out, "bad base64 character"));
	admin_call(fd, "not json", out, sizeof(out));
	assert_non_null(strstr(out, "\"ok\":false"));
	admin_call(fd, "{\"op\":\"secret.import\",\"json\":\"{\\\"legacy\\\":\\\"pass\\\"}\"}", out,
		   sizeof(out));
	assert_non_null(strstr(out, "\"imported\":1"));
	assert_non_null(strstr(out, "plaintext"));

	/* the agent gets the new secret */
	agent_make(&a, NULL, false);
	post(b.port, &a, "data-disk", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.key, "aHVudGVyMi1odW50ZXIy");
	/* rotate, then the agent gets the new value */
	admin_call(fd, "{\"op\":\"secret.rotate\",\"id\":\"data-disk\",\"key_b64\":\"bmV3LXZhbHVl\"}",
		   out, sizeof(out));
	assert_non_null(strstr(out, "\"ok\":true"));
	post(b.port, &a, "data-disk", &r);
	assert_string_equal(r.key, "bmV3LXZhbHVl");
	admin_call(fd, "{\"op\":\"audit.list\",\"secret_id\":\"data-disk\"}", out, sizeof(out));
	assert_non_null(strstr(out, "\"decision\":\"released\""));
	assert_null(strstr(out, "bmV3LXZhbHVl"));
	admin_call(fd, "{\"op\":\"secret.rm\",\"id\":\"data-disk\"}", out, sizeof(out));
	assert_non_null(strstr(out, "\"ok\":true"));
	post(b.port, &a, "data-disk", &r);
	expect_denied(&r, 404, "unknown_secret", "");
	close(fd);
	agent_free(&a);
	broker_stop(&b);
	assert_int_not_equal(stat(p_admin, &st), 0); /* removed on exit */
}

static void config_file_and_flags(void **state)
{
	(void)state;
	char path[512];
	struct tdc_kbs_config c;
	struct tdc_error e;
	bool help;
	kt_path(path, sizeof(path), dir, "kbs.json");
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"listen\":\"0.0.0.0:6000\",\"db\":\"/x.db\",\"workers\":3,"
		   "\"at\":\"2025-07-04T10:16:31Z\"}");
	fclose(f);
	char *argv[] = { "kbs", "--listen", "127.0.0.1:7000", "--config", path, NULL };
	tdc_kbs_config_init(&c);
	tdc_error_clear(&e);
	assert_int_equal(tdc_kbs_config_args(5, argv, &c, &help, &e), 0);
	assert_string_equal(c.listen, "127.0.0.1:7000"); /* the flag wins */
	assert_string_equal(c.db, "/x.db");
	assert_int_equal(c.workers, 3);
	assert_true(c.has_at);
	assert_int_equal(c.at, 1751624191);
	tdc_kbs_config_free(&c);

	f = fopen(path, "w");
	fprintf(f, "{\"listen\":\"x\",\"bogus\":1}");
	fclose(f);
	tdc_kbs_config_init(&c);
	tdc_error_clear(&e);
	assert_int_equal(tdc_kbs_config_args(5, argv, &c, &help, &e), TDC_E_FORMAT);
	assert_non_null(strstr(e.detail, "bogus"));
	tdc_kbs_config_free(&c);

	char *bad[] = { "kbs", "--workers", "0", NULL };
	tdc_kbs_config_init(&c);
	assert_int_equal(tdc_kbs_config_args(3, bad, &c, &help, NULL), TDC_E_USAGE);
	tdc_kbs_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(release_happy_path),
		cmocka_unit_test(read_only_store_refuses_release),
		cmocka_unit_test(queue_full_answers_busy),
		cmocka_unit_test(two_requests_one_connection),
		cmocka_unit_test(quote_bound_to_other_key),
		cmocka_unit_test(bad_self_signature_needs_binding),
		cmocka_unit_test(sgx_certificate_named),
		cmocka_unit_test(unknown_secret),
		cmocka_unit_test(debug_td_refused),
		cmocka_unit_test(wrong_mrtd_refused),
		cmocka_unit_test(secret_without_policy_refused),
		cmocka_unit_test(sim_quote_without_sim_trust),
		cmocka_unit_test(expired_collateral_refused),
		cmocka_unit_test(oversized_and_garbage_requests),
		cmocka_unit_test(event_log_replayed_and_ruled_on),
		cmocka_unit_test(slow_client_does_not_block),
		cmocka_unit_test(replayed_certificate_without_key),
		cmocka_unit_test(gramine_certificate_named_in_handshake_audit),
		cmocka_unit_test(admin_socket_ops),
		cmocka_unit_test(config_file_and_flags),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, kt_setup, kt_teardown);
}
