/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent/broker channel in one process (docs/PROTOCOL.md §2, §5): TLS 1.3,
 * mutual, over a BIO pair. The broker accepts only a self-signed P-256 client
 * certificate in the handshake and checks the RA-TLS binding afterwards; the
 * agent accepts the broker only by its SPKI SHA-256 pin.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tdcrypt/ratls.h"
#include "util/limits.h"
#include "util/util.h"

#define NOW 1750000000
#define REPORT_DATA_OFF (48 + 520)

struct agent {
	EVP_PKEY *key;  /* the key the certificate names */
	EVP_PKEY *sign; /* the key the agent actually holds (differs in the replay test) */
	X509 *cert;
	uint8_t *quote;
	size_t quote_len;
};

struct broker {
	EVP_PKEY *key;
	X509 *cert;
};

struct verdict {
	int called;
	int ok;
};

static uint8_t pins[1][32];

/* ---- fixtures ---- */

static X509 *plain_self_signed(EVP_PKEY *key, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	assert_true(x && n);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 7));
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
					       -1, 0));
	assert_true(X509_set_subject_name(x, n) && X509_set_issuer_name(x, n));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_true(X509_set_pubkey(x, key));
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	X509_NAME_free(n);
	return x;
}

static void agent_init(struct agent *a)
{
	const char *dir = getenv("TDC_TESTDATA");
	char path[1024];
	uint8_t rd[64];
	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/dcap-qvl/tdx_quote", dir);
	assert_int_equal(tdc_file_read(path, TDC_MAX_QUOTE_SIZE, &a->quote, &a->quote_len, NULL), 0);
	assert_int_equal(tdc_ratls_keygen(&a->key, NULL), 0);
	assert_int_equal(tdc_ratls_report_data_for_key(a->key, rd, NULL), 0);
	memcpy(a->quote + REPORT_DATA_OFF, rd, 64);
	assert_int_equal(tdc_ratls_cert_create(a->key, a->quote, a->quote_len, NOW,
					       TDC_RATLS_CERT_LIFETIME, &a->cert, NULL),
			 0);
	a->sign = a->key;
	EVP_PKEY_up_ref(a->sign);
}

static void agent_free(struct agent *a)
{
	X509_free(a->cert);
	EVP_PKEY_free(a->key);
	EVP_PKEY_free(a->sign);
	free(a->quote);
}

static void broker_init(struct broker *b)
{
	assert_int_equal(tdc_ratls_keygen(&b->key, NULL), 0);
	b->cert = plain_self_signed(b->key, "broker.test");
	assert_int_equal(tdc_spki_sha256(b->cert, pins[0], NULL), 0);
}

static void broker_free(struct broker *b)
{
	X509_free(b->cert);
	EVP_PKEY_free(b->key);
}

/*
 * A key with the public point of pub and an unrelated private scalar: what an
 * attacker who captured the agent's certificate has. OpenSSL's cert/key
 * consistency check compares public keys only, so the handshake proceeds and
 * only the CertificateVerify signature can tell.
 */
static EVP_PKEY *impostor_key(EVP_PKEY *pub)
{
	uint8_t point[65];
	size_t plen = 0;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	BIGNUM *priv = BN_new();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *out = NULL;
	OSSL_PARAM *params;

	assert_true(EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_PUB_KEY, point,
						    sizeof(point), &plen));
	assert_true(BN_rand(priv, 255, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY));
	assert_true(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0));
	assert_true(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, plen));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv));
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_non_null(params);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &out, EVP_PKEY_KEYPAIR, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(priv);
	EVP_PKEY_CTX_free(ctx);
	return out;
}

/* ---- the two verification callbacks ---- */

/* Broker: the peer chain must be exactly one self-issued P-256 certificate (its
 * self-signature adds nothing to CertificateVerify); the RA-TLS evidence is checked
 * after the handshake. Replaces path building. */
static int broker_verify(X509_STORE_CTX *sctx, void *arg)
{
	struct verdict *v = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(sctx);
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(sctx);

	v->called++;
	v->ok = leaf && chain && sk_X509_num(chain) == 1 &&
		tdc_ratls_cert_self_issued(leaf, NULL) == 0;
	if (!v->ok)
		X509_STORE_CTX_set_error(sctx, X509_V_ERR_APPLICATION_VERIFICATION);
	return v->ok;
}

/* Agent: the broker's leaf must match a configured SPKI pin. */
static int agent_verify(X509_STORE_CTX *sctx, void *arg)
{
	struct verdict *v = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(sctx);

	v->called++;
	v->ok = leaf && tdc_spki_pin_match(leaf, (const uint8_t(*)[32])pins, 1);
	if (!v->ok)
		X509_STORE_CTX_set_error(sctx, X509_V_ERR_APPLICATION_VERIFICATION);
	return v->ok;
}

static SSL_CTX *tls13_ctx(const SSL_METHOD *m)
{
	SSL_CTX *ctx = SSL_CTX_new(m);
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION), 1);
	return ctx;
}

static SSL_CTX *broker_ctx(struct broker *b, struct verdict *v)
{
	SSL_CTX *ctx = tls13_ctx(TLS_server_method());
	assert_int_equal(SSL_CTX_use_certificate(ctx, b->cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, b->key), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, broker_verify, v);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	assert_int_equal(SSL_CTX_set_num_tickets(ctx, 0), 1);
	SSL_CTX_set_max_cert_list(ctx, 80 * 1024);
	return ctx;
}

static SSL_CTX *agent_ctx(struct agent *a, struct verdict *v)
{
	SSL_CTX *ctx = tls13_ctx(TLS_client_method());
	if (a) {
		assert_int_equal(SSL_CTX_use_certificate(ctx, a->cert), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(ctx, a->sign), 1);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, agent_verify, v);
	return ctx;
}

struct conn {
	SSL *c, *s;
	int rc, rs; /* last SSL_do_handshake results */
};

static void conn_open(struct conn *k, SSL_CTX *cctx, SSL_CTX *sctx)
{
	BIO *cb, *sb;
	k->c = SSL_new(cctx);
	k->s = SSL_new(sctx);
	assert_true(k->c && k->s);
	assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(k->c, cb, cb);
	SSL_set_bio(k->s, sb, sb);
	SSL_set_connect_state(k->c);
	SSL_set_accept_state(k->s);
	assert_int_equal(SSL_set_tlsext_host_name(k->c, "broker.test"), 1);
}

static bool would_block(SSL *ssl, int r)
{
	int err = SSL_get_error(ssl, r);
	return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

/* Drives both ends until both finished or one failed. */
static void conn_handshake(struct conn *k)
{
	for (int i = 0; i < 64; i++) {
		k->rc = SSL_do_handshake(k->c);
		if (k->rc <= 0 && !would_block(k->c, k->rc))
			return;
		k->rs = SSL_do_handshake(k->s);
		if (k->rs <= 0 && !would_block(k->s, k->rs))
			return;
		if (k->rc == 1 && k->rs == 1)
			return;
	}
	fail_msg("handshake did not converge");
}

static void conn_close(struct conn *k)
{
	SSL_free(k->c);
	SSL_free(k->s);
	ERR_clear_error();
}

/* ---- tests ---- */

static void mutual_handshake_and_binding(void **state)
{
	(void)state;
	struct agent a;
	struct broker b;
	struct verdict va = { 0 }, vb = { 0 };
	struct conn k;
	agent_init(&a);
	broker_init(&b);
	SSL_CTX *sctx = broker_ctx(&b, &vb), *cctx = agent_ctx(&a, &va);

	conn_open(&k, cctx, sctx);
	conn_handshake(&k);
	assert_int_equal(k.rc, 1);
	assert_int_equal(k.rs, 1);
	assert_int_equal(SSL_version(k.s), TLS1_3_VERSION);
	assert_true(va.called && va.ok);
	assert_true(vb.called && vb.ok);

	/* broker, after the handshake: the key TLS proved is the key the quote binds */
	X509 *peer = SSL_get0_peer_certificate(k.s);
	assert_non_null(peer);
	struct tdc_ratls_evidence ev;
	struct tdc_quote q;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_binding(peer, NULL, 0, &ev, &e), 0);
	assert_int_equal(tdc_ratls_check_quote(&ev, &q, &e), 0);

	/* one request/response over the channel */
	const char req[] = "POST /v1/keys/luks-root HTTP/1.1\r\n";
	char buf[64];
	assert_int_equal(SSL_write(k.c, req, sizeof(req) - 1), (int)sizeof(req) - 1);
	assert_int_equal(SSL_read(k.s, buf, sizeof(buf)), (int)sizeof(req) - 1);
	assert_memory_equal(buf, req, sizeof(req) - 1);
	assert_int_equal(SSL_write(k.s, "ok", 2), 2);
	assert_int_equal(SSL_read(k.c, buf, sizeof(buf)), 2);

	/* no resumption: the broker issued no ticket */
	assert_int_equal(SSL_session_reused(k.s), 0);
	SSL_SESSION *sess = SSL_get1_session(k.c);
	assert_false(sess && SSL_SESSION_is_resumable(sess));
	SSL_SESSION_free(sess);

	conn_close(&k);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	agent_free(&a);
	broker_free(&b);
}

static void agent_refuses_unpinned_broker(void **state)
{
	(void)state;
	struct agent a;
	struct broker b, rogue;
	struct verdict va = { 0 }, vb = { 0 };
	struct conn k;
	agent_init(&a);
	broker_init(&rogue);
	broker_init(&b); /* the pin is b's */
	SSL_CTX *sctx = broker_ctx(&rogue, &vb), *cctx = agent_ctx(&a, &va);

	conn_open(&k, cctx, sctx);
	conn_handshake(&k);
	assert_true(k.rc <= 0);
	assert_true(va.called && !va.ok);
	assert_int_equal(SSL_get_verify_result(k.c), X509_V_ERR_APPLICATION_VERIFICATION);
	assert_int_equal(vb.called, 0); /* the agent never sent its certificate */

	conn_close(&k);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	agent_free(&a);
	broker_free(&b);
	broker_free(&rogue);
}

static void replayed_certificate_without_key(void **state)
{
	(void)state;
	struct agent a;
	struct broker b;
	struct verdict va = { 0 }, vb = { 0 };
	struct conn k;
	char buf[8];
	agent_init(&a);
	broker_init(&b);
	/* the attacker presents the captured certificate but holds another private scalar */
	EVP_PKEY_free(a.sign);
	a.sign = impostor_key(a.key);
	SSL_CTX *sctx = broker_ctx(&b, &vb), *cctx = agent_ctx(&a, &va);

	conn_open(&k, cctx, sctx);
	conn_handshake(&k);
	/* TLS 1.3: the client may think it is done; the broker is not */
	assert_true(k.rs <= 0);
	assert_int_equal(SSL_get_error(k.s, k.rs), SSL_ERROR_SSL);
	assert_false(SSL_is_init_finished(k.s));
	assert_true(vb.called && vb.ok); /* the certificate itself was fine */
	/* what failed is the CertificateVerify signature */
	unsigned long err, last = 0;
	while ((err = ERR_get_error()) != 0)
		last = err;
	assert_int_equal(ERR_GET_REASON(last), SSL_R_BAD_SIGNATURE);
	/* the agent learns of the refusal from the alert on its first read */
	if (k.rc == 1)
		assert_true(SSL_read(k.c, buf, sizeof(buf)) <= 0);

	conn_close(&k);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	agent_free(&a);
	broker_free(&b);
}

static void broker_refuses_missing_or_ca_chain(void **state)
{
	(void)state;
	struct broker b;
	struct verdict va = { 0 }, vb = { 0 };
	struct conn k;
	broker_init(&b);

	/* no client certificate */
	SSL_CTX *sctx = broker_ctx(&b, &vb), *cctx = agent_ctx(NULL, &va);
	conn_open(&k, cctx, sctx);
	conn_handshake(&k);
	assert_true(k.rs <= 0);
	conn_close(&k);
	SSL_CTX_free(cctx);

	/* a client certificate issued by someone else (not self-signed) */
	struct agent a;
	agent_init(&a);
	X509_NAME *n = X509_NAME_new();
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"ca",
					       -1, -1, 0));
	assert_true(X509_set_issuer_name(a.cert, n));
	assert_true(X509_sign(a.cert, a.key, EVP_sha256()) > 0);
	X509_NAME_free(n);
	cctx = agent_ctx(&a, &va);
	vb.called = 0;
	conn_open(&k, cctx, sctx);
	conn_handshake(&k);
	assert_true(k.rs <= 0);
	assert_true(vb.called && !vb.ok);
	conn_close(&k);

	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	agent_free(&a);
	broker_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mutual_handshake_and_binding),
		cmocka_unit_test(agent_refuses_unpinned_broker),
		cmocka_unit_test(replayed_certificate_without_key),
		cmocka_unit_test(broker_refuses_missing_or_ca_chain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
