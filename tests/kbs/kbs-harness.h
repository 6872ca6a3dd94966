/* SPDX-License-Identifier: Apache-2.0 */
/* The broker tests' harness (kbs-harness.c): fixtures, an in-process broker, an RA-TLS
 * client, responses and the audit records behind them. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "kbs-test.h"
#include "tdcrypt/kbs.h"
#include "tdcrypt/sim.h"
#include "tdcrypt/store.h"

#define NOW ((int64_t)1750000000)
#define DAY (24 * 3600)
#define SECRET "correct horse battery staple"

/* the fixture (kt_setup): paths in a temporary directory, the simulator PKI, and the
 * test's own store handle (to read the audit) */
extern char dir[256];
extern char p_cert[512], p_key[512], p_db[512], p_mk[512], p_coll[512], p_root[512],
	p_admin[512];
extern struct tdc_sim_pki *pki;
extern struct tdc_store *store;
extern bool verbose;
int kt_setup(void **state);
int kt_teardown(void **state);

/* limits of the next broker_start (0: the broker's default) */
struct kt_limits {
	unsigned max_conns, per_source;
	uint32_t handshake_ms;
	unsigned workers, queue_max;
};
extern struct kt_limits kt_limits;
/* the metrics listener of the next broker_start (NULL: none) */
extern const char *kt_metrics_listen;
/* sees every log line of the brokers (from their threads) */
extern void (*kt_log_hook)(const char *line);

struct broker {
	struct tdc_kbs *k;
	pthread_t t;
	int port;
};

struct agent {
	EVP_PKEY *key;
	X509 *cert;
};

struct tls {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

struct resp {
	int status;
	char error[64];
	char key[256];
	char request_id[40];
	char raw[8192];
};

/* sim: trust the simulator root; at: the verification time; admin: with the socket */
void broker_start(struct broker *b, bool sim, int64_t at, bool admin);
void broker_stop(struct broker *b);

/* mutate may change the sim options (measurements, attributes); bind_other makes
 * the quote bind a different key than the certificate's. */
void agent_make(struct agent *a, void (*mutate)(struct tdc_sim_opts *), bool bind_other);
void agent_free(struct agent *a);
/* A key with the public half of pub and another private half. */
EVP_PKEY *impostor_key(EVP_PKEY *pub);

int tcp_connect(int port);
/* SSL_connect's result; a == NULL: no client certificate */
int tls_open(struct tls *t, int port, const struct agent *a);
void tls_close(struct tls *t);
/* Reads one response (until Content-Length is satisfied or the peer closes). */
size_t tls_read_response(struct tls *t, char *out, size_t cap);
void parse_resp(struct resp *r);
void send_raw(struct tls *t, const void *req, size_t len, struct resp *r);
void post_on(struct tls *t, const char *id, struct resp *r);
/* One request with this JSON body on a fresh connection. */
void post_body(int port, const struct agent *a, const char *id, const char *body,
	       struct resp *r);
/* One request on a fresh connection. */
void post(int port, const struct agent *a, const char *id, struct resp *r);

/* The audit record of request_id. */
void audit_of(const char *request_id, struct tdc_audit_record *out, char *reason, size_t cap,
	      char *verdict, size_t vcap);
/* Asserts the response's status and code, and an audit record whose reason
 * starts with the code and contains `needle`. */
void expect_denied(const struct resp *r, int status, const char *code, const char *needle);
void expect_released(const struct resp *r);

void write_pem_cert(const char *path, X509 *x);
X509 *self_signed(EVP_PKEY *key, const char *cn);

/* The admin socket of a broker started with admin = true: one request line, one reply. */
int admin_connect(void);
void admin_call(int fd, const char *req, char *out, size_t cap);
