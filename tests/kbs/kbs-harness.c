/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker tests' harness: an in-process tdcrypt-kbs (ephemeral port, temporary
 * store, simulator PKI and collateral bundle, fixed time) and an RA-TLS client built
 * from lib/ratls and lib/sim quotes; responses and their audit records.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "kbs-harness.h"
#include "../pg/test-db.h"
#include "tdcrypt/ratls.h"
#include "tdcrypt/sim.h"
#include "util/util.h"

char dir[256];
char p_cert[512], p_key[512], p_db[512], p_mk[512], p_coll[512], p_root[512], p_admin[512];
struct tdc_sim_pki *pki;
struct tdc_store *store;
bool verbose;

struct kt_limits kt_limits;
const char *kt_metrics_listen;
void (*kt_log_hook)(const char *line);

/* ---- broker in a thread ---- */

static void log_sink(void *arg, const char *line)
{
	(void)arg;
	if (verbose)
		fprintf(stderr, "  kbs: %s\n", line);
	if (kt_log_hook)
		kt_log_hook(line);
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
void broker_start(struct broker *b, bool sim, int64_t at, bool admin)
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
	c.metrics_listen = kt_metrics_listen ? strdup(kt_metrics_listen) : NULL;
	if (kt_limits.max_conns)
		c.max_conns = kt_limits.max_conns;
	if (kt_limits.per_source)
		c.max_conns_per_source = kt_limits.per_source;
	if (kt_limits.handshake_ms)
		c.handshake_timeout_ms = kt_limits.handshake_ms;
	if (kt_limits.workers)
		c.workers = kt_limits.workers;
	if (kt_limits.queue_max)
		c.queue_max = kt_limits.queue_max;
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

void broker_stop(struct broker *b)
{
	tdc_kbs_stop(b->k);
	pthread_join(b->t, NULL);
	tdc_kbs_free(b->k);
}

/* ---- the agent side ---- */


/* mutate may change the sim options (measurements, attributes); bind_other makes
 * the quote bind a different key than the certificate's. */
void agent_make(struct agent *a, void (*mutate)(struct tdc_sim_opts *), bool bind_other)
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

void agent_free(struct agent *a)
{
	X509_free(a->cert);
	EVP_PKEY_free(a->key);
}

int tcp_connect(int port)
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


int tls_open(struct tls *t, int port, const struct agent *a)
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

void tls_close(struct tls *t)
{
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	close(t->fd);
	ERR_clear_error();
}

/* Reads one response (until Content-Length is satisfied or the peer closes). */
size_t tls_read_response(struct tls *t, char *out, size_t cap)
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


void parse_resp(struct resp *r)
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

void send_raw(struct tls *t, const void *req, size_t len, struct resp *r)
{
	assert_int_equal(SSL_write(t->ssl, req, (int)len), (int)len);
	tls_read_response(t, r->raw, sizeof(r->raw));
	parse_resp(r);
}

void post_on(struct tls *t, const char *id, struct resp *r)
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
void post_body(int port, const struct agent *a, const char *id, const char *body,
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
void post(int port, const struct agent *a, const char *id, struct resp *r)
{
	struct tls t;
	int c = tls_open(&t, port, a);
	assert_int_equal(c, 1);
	post_on(&t, id, r);
	tls_close(&t);
}

/* The audit record of request_id. */
void audit_of(const char *request_id, struct tdc_audit_record *out, char *reason, size_t cap,
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
void expect_denied(const struct resp *r, int status, const char *code, const char *needle)
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

void expect_released(const struct resp *r)
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

void write_pem_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
}

X509 *self_signed(EVP_PKEY *key, const char *cn)
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

int kt_setup(void **state)
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
	tdb_location(p_db, sizeof(p_db), dir, "kbs.db");
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

int kt_teardown(void **state)
{
	(void)state;
	tdc_store_close(store);
	tdc_sim_pki_free(pki);
	kt_rmtree(dir);
	return 0;
}


EVP_PKEY *impostor_key(EVP_PKEY *pub)
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

/* ---- the admin socket ---- */

int admin_connect(void)
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

void admin_call(int fd, const char *req, char *out, size_t cap)
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
