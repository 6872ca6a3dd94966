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
#include "kbs-test.h"
#include "tdcrypt/kbs.h"
#include "tdcrypt/measure.h"
#include "tdcrypt/ratls.h"
#include "tdcrypt/sim.h"
#include "tdcrypt/store.h"
#include "util/util.h"

#define NOW ((int64_t)1750000000)
#define DAY (24 * 3600)
#define SECRET "correct horse battery staple"

static char dir[256];
static char p_cert[512], p_key[512], p_db[512], p_mk[512], p_coll[512], p_root[512],
	p_admin[512];
static struct tdc_sim_pki *pki;
static struct tdc_store *store; /* the test's own handle, to read the audit */
static bool verbose;

/* ---- broker in a thread ---- */

struct broker {
	struct tdc_kbs *k;
	pthread_t t;
	int port;
};

static void log_sink(void *arg, const char *line)
{
	(void)arg;
	if (verbose)
		fprintf(stderr, "  kbs: %s\n", line);
}

static void *run_broker(void *arg)
{
	struct broker *b = arg;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (tdc_kbs_run(b->k, &e) < 0)
		fprintf(stderr, "broker loop failed: %s\n", e.reason);
	return NULL;
}

/* sim: trust the simulator root; at: the verification time; admin: with the socket */
static void broker_start(struct broker *b, bool sim, int64_t at, bool admin)
{
	struct tdc_kbs_config c;
	struct tdc_error e;
	tdc_kbs_config_init(&c);
	free(c.listen);
	free(c.admin_socket);
	c.listen = strdup("127.0.0.1:0");
	c.admin_socket = strdup(admin ? p_admin : "");
	c.cert = strdup(p_cert);
	c.key = strdup(p_key);
	c.db = strdup(p_db);
	c.master_key = strdup(p_mk);
	c.collateral_dir = strdup(p_coll);
	c.sim_root = sim ? strdup(p_root) : NULL;
	c.has_at = true;
	c.at = at;
	c.workers = 2;
	tdc_error_clear(&e);
	struct tdc_kbs_hooks h = { .log = log_sink };
	int r = tdc_kbs_new(&c, &h, &b->k, &e);
	if (r < 0)
		fprintf(stderr, "broker: %s %s\n", e.reason, e.detail);
	assert_int_equal(r, 0);
	tdc_kbs_config_free(&c);
	b->port = tdc_kbs_port(b->k);
	assert_true(b->port > 0);
	assert_int_equal(pthread_create(&b->t, NULL, run_broker, b), 0);
}

static void broker_stop(struct broker *b)
{
	tdc_kbs_stop(b->k);
	pthread_join(b->t, NULL);
	tdc_kbs_free(b->k);
}

/* ---- the agent side ---- */

struct agent {
	EVP_PKEY *key;
	X509 *cert;
};

/* mutate may change the sim options (measurements, attributes); bind_other makes
 * the quote bind a different key than the certificate's. */
static void agent_make(struct agent *a, void (*mutate)(struct tdc_sim_opts *), bool bind_other)
{
	struct tdc_sim_opts o;
	EVP_PKEY *qkey = NULL;
	uint8_t *q;
	size_t qlen;
	tdc_sim_opts_default(&o, NOW);
	if (mutate)
		mutate(&o);
	assert_int_equal(tdc_ratls_keygen(&a->key, NULL), 0);
	if (bind_other)
		assert_int_equal(tdc_ratls_keygen(&qkey, NULL), 0);
	assert_int_equal(tdc_ratls_report_data_for_key(qkey ? qkey : a->key, o.td.report_data, NULL),
			 0);
	assert_int_equal(tdc_sim_quote(pki, &o, &q, &qlen, NULL), 0);
	assert_int_equal(tdc_ratls_cert_create(a->key, q, qlen, NOW, TDC_RATLS_CERT_LIFETIME,
					       &a->cert, NULL),
			 0);
	free(q);
	EVP_PKEY_free(qkey);
}

static void agent_free(struct agent *a)
{
	X509_free(a->cert);
	EVP_PKEY_free(a->key);
}

static int tcp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { 5, 0 };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

struct tls {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

static int tls_open(struct tls *t, int port, const struct agent *a)
{
	t->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(t->ctx);
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION);
	/* the agent's broker pinning is not under test here */
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
	if (a) {
		assert_int_equal(SSL_CTX_use_certificate(t->ctx, a->cert), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(t->ctx, a->key), 1);
	}
	t->fd = tcp_connect(port);
	t->ssl = SSL_new(t->ctx);
	SSL_set_fd(t->ssl, t->fd);
	return SSL_connect(t->ssl);
}

static void tls_close(struct tls *t)
{
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	close(t->fd);
	ERR_clear_error();
}

/* Reads one response (until Content-Length is satisfied or the peer closes). */
static size_t tls_read_response(struct tls *t, char *out, size_t cap)
{
	size_t n = 0;
	for (;;) {
		int r = SSL_read(t->ssl, out + n, (int)(cap - 1 - n));
		if (r <= 0)
			break;
		n += (size_t)r;
		out[n] = 0;
		char *hdr_end = strstr(out, "\r\n\r\n");
		char *cl = strstr(out, "Content-Length: ");
		if (hdr_end && cl && n >= (size_t)(hdr_end + 4 - out) + strtoul(cl + 16, NULL, 10))
			break;
	}
	out[n] = 0;
	return n;
}

struct resp {
	int status;
	char error[64];
	char key[256];
	char request_id[40];
	char raw[8192];
};

static void parse_resp(struct resp *r)
{
	char *p;
	r->status = 0;
	r->error[0] = r->key[0] = r->request_id[0] = 0;
	sscanf(r->raw, "HTTP/1.1 %d", &r->status);
	if ((p = strstr(r->raw, "\"error\":\"")))
		sscanf(p + 9, "%63[^\"]", r->error);
	if ((p = strstr(r->raw, "\"key\":\"")))
		sscanf(p + 7, "%255[^\"]", r->key);
	if ((p = strstr(r->raw, "\"request_id\":\"")))
		sscanf(p + 14, "%39[^\"]", r->request_id);
}

static void send_raw(struct tls *t, const void *req, size_t len, struct resp *r)
{
	assert_int_equal(SSL_write(t->ssl, req, (int)len), (int)len);
	tls_read_response(t, r->raw, sizeof(r->raw));
	parse_resp(r);
}

static void post_on(struct tls *t, const char *id, struct resp *r)
{
	char req[512];
	const char body[] = "{\"agent\":\"tdcrypt-agent/test\"}";
	int n = snprintf(req, sizeof(req),
			 "POST /v1/keys/%s HTTP/1.1\r\nHost: broker\r\nContent-Type: "
			 "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 id, sizeof(body) - 1, body);
	send_raw(t, req, (size_t)n, r);
}

/* One request with this JSON body on a fresh connection. */
static void post_body(int port, const struct agent *a, const char *id, const char *body,
		      struct resp *r)
{
	struct tls t;
	size_t cap = strlen(body) + 512;
	char *req = malloc(cap);
	assert_non_null(req);
	assert_int_equal(tls_open(&t, port, a), 1);
	int n = snprintf(req, cap,
			 "POST /v1/keys/%s HTTP/1.1\r\nHost: broker\r\nContent-Type: "
			 "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 id, strlen(body), body);
	send_raw(&t, req, (size_t)n, r);
	free(req);
	tls_close(&t);
}

/* One request on a fresh connection. */
static void post(int port, const struct agent *a, const char *id, struct resp *r)
{
	struct tls t;
	int c = tls_open(&t, port, a);
	assert_int_equal(c, 1);
	post_on(&t, id, r);
	tls_close(&t);
}

/* The audit record of request_id. */
static void audit_of(const char *request_id, struct tdc_audit_record *out, char *reason, size_t cap,
		     char *verdict, size_t vcap)
{
	struct tdc_audit_query q = { 0 };
	struct tdc_audit_list l;
	bool found = false;
	assert_int_equal(tdc_store_audit_list(store, &q, &l, NULL), 0);
	for (size_t i = 0; i < l.n; i++) {
		if (l.items[i].request_id && !strcmp(l.items[i].request_id, request_id)) {
			*out = l.items[i];
			snprintf(reason, cap, "%s", l.items[i].reason ? l.items[i].reason : "");
			snprintf(verdict, vcap, "%s", l.items[i].verdict ? l.items[i].verdict : "");
			found = true;
		}
	}
	tdc_audit_list_free(&l);
	if (!found)
		fail_msg("no audit record for request %s", request_id);
}

/* Asserts the response's status and code, and an audit record whose reason
 * starts with the code and contains `needle`. */
static void expect_denied(const struct resp *r, int status, const char *code, const char *needle)
{
	struct tdc_audit_record a;
	char reason[2048], verdict[64];
	if (r->status != status || strcmp(r->error, code) != 0)
		print_message("response: %s\n", r->raw);
	assert_int_equal(r->status, status);
	assert_string_equal(r->error, code);
	assert_int_equal(strlen(r->request_id), 32);
	audit_of(r->request_id, &a, reason, sizeof(reason), verdict, sizeof(verdict));
	if (verbose || !strstr(reason, needle))
		print_message("audit: %s [%s]\n", reason, verdict);
	assert_int_equal(a.decision, TDC_AUDIT_DENIED);
	assert_int_equal(strncmp(reason, code, strlen(code)), 0);
	assert_non_null(strstr(reason, needle));
	assert_int_equal(a.time, NOW > a.time ? a.time : a.time); /* recorded */
}

static void expect_released(const struct resp *r)
{
	struct tdc_audit_record a;
	char reason[2048], verdict[64];
	uint8_t key[128];
	if (r->status != 200)
		print_message("response: %s\n", r->raw);
	assert_int_equal(r->status, 200);
	int n = EVP_DecodeBlock(key, (const unsigned char *)r->key, (int)strlen(r->key));
	assert_true(n >= (int)strlen(SECRET));
	assert_memory_equal(key, SECRET, strlen(SECRET));
	assert_null(strstr(r->raw, "error"));
	audit_of(r->request_id, &a, reason, sizeof(reason), verdict, sizeof(verdict));
	assert_int_equal(a.decision, TDC_AUDIT_RELEASED);
	assert_string_equal(verdict, "UpToDate");
	assert_null(strstr(reason, SECRET));
}

/* ---- fixtures ---- */

static void write_pem_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
}

static X509 *self_signed(EVP_PKEY *key, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	X509_NAME_free(n);
	return x;
}

static int setup(void **state)
{
	(void)state;
	struct tdc_sim_opts o;
	struct tdc_collateral c;
	const uint8_t *der;
	size_t der_len;
	struct tdc_error e;
	char mrtd[97], policy[512];

	verbose = getenv("TDC_KBS_VERBOSE") != NULL;
	snprintf(dir, sizeof(dir), "/tmp/tdc-kbs-XXXXXX");
	assert_non_null(mkdtemp(dir));
	kt_path(p_cert, sizeof(p_cert), dir, "broker.crt");
	kt_path(p_key, sizeof(p_key), dir, "broker.key");
	kt_path(p_db, sizeof(p_db), dir, "kbs.db");
	kt_path(p_mk, sizeof(p_mk), dir, "master.key");
	kt_path(p_coll, sizeof(p_coll), dir, "collateral");
	kt_path(p_root, sizeof(p_root), dir, "sim-root.pem");
	kt_path(p_admin, sizeof(p_admin), dir, "run/kbs.sock");

	tdc_error_clear(&e);
	tdc_sim_opts_default(&o, NOW);
	assert_int_equal(tdc_sim_pki_new(&o, &pki, &e), 0);
	assert_int_equal(tdc_sim_collateral(pki, &o, &c, &e), 0);
	assert_int_equal(tdc_sim_collateral_save(&c, p_coll, &e), 0);
	tdc_collateral_free(&c);
	tdc_sim_root_der(pki, &der, &der_len);
	X509 *root = NULL;
	const unsigned char *p = der;
	root = d2i_X509(NULL, &p, (long)der_len);
	assert_non_null(root);
	write_pem_cert(p_root, root);
	X509_free(root);

	/* broker TLS credentials */
	EVP_PKEY *bk;
	assert_int_equal(tdc_ratls_keygen(&bk, NULL), 0);
	X509 *bc = self_signed(bk, "broker.test");
	write_pem_cert(p_cert, bc);
	FILE *f = fopen(p_key, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, bk, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	X509_free(bc);
	EVP_PKEY_free(bk);

	/* store and secrets */
	assert_int_equal(tdc_store_master_key_create(p_mk, &e), 0);
	assert_int_equal(tdc_store_open(p_db, p_mk, &store, &e), 0);
	tdc_hex_encode(o.td.mrtd, 48, mrtd);
	snprintf(policy, sizeof(policy), "{\"allow_simulator\":true,\"mrtd\":[\"%s\"]}", mrtd);
	assert_int_equal(tdc_store_secret_put(store, "luks-root", (const uint8_t *)SECRET,
					      strlen(SECRET), policy, NOW, &e),
			 0);
	memset(mrtd, '0', 96);
	snprintf(policy, sizeof(policy), "{\"allow_simulator\":true,\"mrtd\":[\"%s\"]}", mrtd);
	assert_int_equal(tdc_store_secret_put(store, "other-mrtd", (const uint8_t *)SECRET,
					      strlen(SECRET), policy, NOW, &e),
			 0);
	assert_int_equal(tdc_store_secret_put(store, "no-policy", (const uint8_t *)SECRET,
					      strlen(SECRET), NULL, NOW, &e),
			 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tdc_store_close(store);
	tdc_sim_pki_free(pki);
	kt_rmtree(dir);
	return 0;
}

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
static EVP_PKEY *impostor_key(EVP_PKEY *pub)
{
	uint8_t point[65];
	size_t plen = 0;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	BIGNUM *priv = BN_new();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *out = NULL;
	assert_true(EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_PUB_KEY, point,
						    sizeof(point), &plen));
	assert_true(BN_rand(priv, 255, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY));
	assert_true(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0));
	assert_true(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, plen));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv));
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &out, EVP_PKEY_KEYPAIR, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(priv);
	EVP_PKEY_CTX_free(ctx);
	return out;
}

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

static int admin_connect(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 5, 0 };
	assert_true(strlen(p_admin) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, p_admin, strlen(p_admin) + 1);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void admin_call(int fd, const char *req, char *out, size_t cap)
{
	size_t n = 0;
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	assert_int_equal(write(fd, "\n", 1), 1);
	while (n + 1 < cap) {
		ssize_t r = read(fd, out + n, 1);
		assert_true(r == 1);
		if (out[n] == '\n')
			break;
		n++;
	}
	out[n] = 0;
}

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
		cmocka_unit_test(two_requests_one_connection),
		cmocka_unit_test(quote_bound_to_other_key),
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
		cmocka_unit_test(admin_socket_ops),
		cmocka_unit_test(config_file_and_flags),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
