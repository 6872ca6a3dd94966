/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Operating the broker in one process (PROTOCOL.md section 9): the metrics listener's
 * parser (the broker's HTTP parser, narrowed), the Prometheus and JSON renderings of the
 * one set of counters, and tdc_kbs_reload / tdc_kbs_drain on a running broker: a new
 * certificate for new connections while an established one keeps its own, a bad reload
 * that changes nothing, a drain that finishes the request in flight with /healthz 503.
 * The daemon's signals (SIGHUP, SIGUSR2) are tested by ops.sh.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "kbs-harness.h"
#include "kbs/kbs-int.h"
#include "tdcrypt/ratls.h"
#include "util/util.h"

static int parse_ops(const char *req, struct kbs_http_req *r, enum kbs_reason *reason)
{
	int rc = kbs_http_parse_ops((const uint8_t *)req, strlen(req), r, reason, NULL);
	kbs_http_req_free(r);
	return rc;
}

static void ops_parser_takes_only_its_two_paths(void **state)
{
	(void)state;
	struct kbs_http_req r;
	enum kbs_reason why;
	assert_int_equal(parse_ops("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r, &why),
			 KBS_HTTP_DONE);
	assert_int_equal(r.route, KBS_ROUTE_METRICS);
	assert_int_equal(parse_ops("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
				   &r, &why),
			 KBS_HTTP_DONE);
	assert_int_equal(r.route, KBS_ROUTE_HEALTHZ);
	assert_int_equal(parse_ops("GET /metrics HTTP/1.1\r\nHost: x\r\n", &r, &why), KBS_HTTP_MORE);
	assert_int_equal(parse_ops("POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r, &why),
			 KBS_HTTP_ERROR);
	assert_int_equal(why, KBS_METHOD_NOT_ALLOWED);
	assert_int_equal(parse_ops("GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", &r, &why),
			 KBS_HTTP_ERROR);
	assert_int_equal(why, KBS_NOT_FOUND);
	assert_int_equal(parse_ops("GET /v1/keys/luks-root HTTP/1.1\r\nHost: x\r\n\r\n", &r, &why),
			 KBS_HTTP_ERROR);
	assert_int_equal(why, KBS_NOT_FOUND);
	assert_int_equal(parse_ops("GET /metrics HTTP/1.1\r\n\r\n", &r, &why), KBS_HTTP_ERROR);
	assert_int_equal(why, KBS_BAD_REQUEST); /* no Host */
	assert_int_equal(parse_ops("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab",
				   &r, &why),
			 KBS_HTTP_ERROR);
	assert_int_equal(why, KBS_BAD_REQUEST);
	assert_int_equal(parse_ops("GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n", &r, &why),
			 KBS_HTTP_ERROR);
	assert_int_equal(parse_ops("GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
				   "chunked\r\n\r\n",
				   &r, &why),
			 KBS_HTTP_ERROR);
	/* and the key API's parser does not serve the listener's paths */
	const char *m = "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(kbs_http_parse((const uint8_t *)m, strlen(m), &r, &why, NULL),
			 KBS_HTTP_ERROR);
	kbs_http_req_free(&r);
	assert_int_equal(why, KBS_NOT_FOUND);
}

static void counters_rendered_twice_alike(void **state)
{
	(void)state;
	static struct kbs_metrics m;
	memset(&m, 0, sizeof(m));
	atomic_store(&m.released, 3);
	atomic_store(&m.denied[KBS_POLICY_DENIED], 2);
	atomic_store(&m.denied[KBS_QUOTE_INVALID], 1);
	atomic_store(&m.busy, 4);
	atomic_store(&m.handshake[KBS_HS_TIMEOUT], 5);
	atomic_store(&m.handshake[KBS_HS_NO_CERTIFICATE], 6);
	kbs_hist_add(&m.verify, 700);     /* 0.0007 s: le 0.001 */
	kbs_hist_add(&m.verify, 3000000); /* 3 s: le 5 */
	kbs_hist_add(&m.store[KBS_SOP_RELEASE], 1500);
	size_t len = 0;
	char *t = kbs_metrics_prometheus(&m, &len);
	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	const char *want[] = {
		"# TYPE tdcrypt_kbs_releases_total counter\ntdcrypt_kbs_releases_total 3\n",
		"\ntdcrypt_kbs_denials_total{reason=\"policy_denied\"} 2\n",
		"\ntdcrypt_kbs_denials_total{reason=\"quote_invalid\"} 1\n",
		"\ntdcrypt_kbs_denials_total{reason=\"busy\"} 4\n",
		"\ntdcrypt_kbs_handshake_failures_total{class=\"timeout\"} 5\n",
		"\ntdcrypt_kbs_handshake_failures_total{class=\"no_certificate\"} 6\n",
		"# TYPE tdcrypt_kbs_verification_duration_seconds histogram\n",
		"\ntdcrypt_kbs_verification_duration_seconds_bucket{le=\"0.0005\"} 0\n",
		"\ntdcrypt_kbs_verification_duration_seconds_bucket{le=\"0.001\"} 1\n",
		"\ntdcrypt_kbs_verification_duration_seconds_bucket{le=\"2\"} 1\n",
		"\ntdcrypt_kbs_verification_duration_seconds_bucket{le=\"5\"} 2\n",
		"\ntdcrypt_kbs_verification_duration_seconds_bucket{le=\"+Inf\"} 2\n",
		"\ntdcrypt_kbs_verification_duration_seconds_sum 3.000700\n",
		"\ntdcrypt_kbs_verification_duration_seconds_count 2\n",
		"\ntdcrypt_kbs_store_operation_duration_seconds_bucket{op=\"release\",le=\"0.002\"} 1\n",
		"\ntdcrypt_kbs_store_operation_duration_seconds_count{op=\"release\"} 1\n",
		"\ntdcrypt_kbs_store_operation_duration_seconds_count{op=\"audit\"} 0\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!strstr(t, want[i]))
			print_message("missing: %s\n", want[i]);
		assert_non_null(strstr(t, want[i]));
	}
	assert_null(strstr(t, "reason=\"ok\""));
	assert_null(strstr(t, "handshake_failed\""));
	free(t);
	json_object *j = kbs_metrics_json(&m), *v, *by;
	assert_true(json_object_object_get_ex(j, "released", &v));
	assert_int_equal(json_object_get_int64(v), 3);
	assert_true(json_object_object_get_ex(j, "denied", &v));
	assert_int_equal(json_object_get_int64(v), 3);
	assert_true(json_object_object_get_ex(j, "handshake_failed", &v));
	assert_int_equal(json_object_get_int64(v), 6);
	assert_true(json_object_object_get_ex(j, "handshake_timeout", &v));
	assert_int_equal(json_object_get_int64(v), 5);
	assert_true(json_object_object_get_ex(j, "denied_by_reason", &by));
	assert_true(json_object_object_get_ex(by, "policy_denied", &v));
	assert_int_equal(json_object_get_int64(v), 2);
	json_object_put(j);
}

/* ---- a running broker ---- */

/* One plain HTTP exchange with the metrics listener: the status, the body into out. */
static int ops_get(int port, const char *path, char *out, size_t cap)
{
	int fd = tcp_connect(port);
	char req[128], in[65536];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
	assert_int_equal(send(fd, req, (size_t)n, 0), n);
	size_t got = 0;
	ssize_t r;
	while (got < sizeof(in) - 1 && (r = recv(fd, in + got, sizeof(in) - 1 - got, 0)) > 0)
		got += (size_t)r;
	in[got] = 0;
	close(fd);
	int status = 0;
	sscanf(in, "HTTP/1.1 %d", &status);
	const char *body = strstr(in, "\r\n\r\n");
	snprintf(out, cap, "%s", body ? body + 4 : "");
	return status;
}

static void spki_of(SSL *ssl, char out[65])
{
	X509 *x = SSL_get0_peer_certificate(ssl);
	unsigned char *der = NULL;
	int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	uint8_t md[32];
	assert_true(n > 0);
	SHA256(der, (size_t)n, md);
	tdc_hex_encode(md, sizeof(md), out);
	OPENSSL_free(der);
}

/* A new broker certificate and key at p_cert / p_key (key_only: only the key). */
static void new_credentials(bool key_only)
{
	EVP_PKEY *k;
	assert_int_equal(tdc_ratls_keygen(&k, NULL), 0);
	if (!key_only) {
		X509 *x = self_signed(k, "broker2.test");
		write_pem_cert(p_cert, x);
		X509_free(x);
	}
	FILE *f = fopen(p_key, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	EVP_PKEY_free(k);
}

static const char keep_alive_req[] =
	"POST /v1/keys/luks-root HTTP/1.1\r\nHost: broker\r\nContent-Length: 2\r\n\r\n{}";

static void reload_new_certificate_for_new_connections(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct tls old, fresh;
	struct resp r;
	char body[65536], before[65], after[65], kept[65];
	kt_metrics_listen = "127.0.0.1:0";
	broker_start(&b, true, NOW, false);
	kt_metrics_listen = NULL;
	int mport = tdc_kbs_metrics_port(b.k);
	assert_true(mport > 0 && mport != b.port);
	assert_int_equal(ops_get(mport, "/healthz", body, sizeof(body)), 200);
	assert_string_equal(body, "ok\n");
	agent_make(&a, NULL, false);
	assert_int_equal(tls_open(&old, b.port, &a), 1);
	spki_of(old.ssl, before);
	send_raw(&old, keep_alive_req, sizeof(keep_alive_req) - 1, &r);
	expect_released(&r);

	new_credentials(false);
	assert_int_equal(tdc_kbs_reload(b.k, NULL, NULL), 0);
	assert_int_equal(tls_open(&fresh, b.port, &a), 1);
	spki_of(fresh.ssl, after);
	assert_string_not_equal(before, after);
	post_on(&fresh, "luks-root", &r);
	expect_released(&r);
	tls_close(&fresh);
	/* the connection from before keeps its certificate and still serves */
	spki_of(old.ssl, kept);
	assert_string_equal(kept, before);
	post_on(&old, "luks-root", &r);
	expect_released(&r);
	tls_close(&old);

	/* a key that does not match, a non-reloadable change: refused, nothing changes */
	new_credentials(true);
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_true(tdc_kbs_reload(b.k, NULL, &e) < 0);
	assert_non_null(strstr(e.detail, "broker key"));
	struct tdc_kbs_config c;
	tdc_kbs_config_init(&c);
	free(c.listen);
	c.listen = strdup("127.0.0.1:1");
	c.cert = strdup(p_cert);
	c.key = strdup(p_key);
	c.db = strdup(p_db);
	c.master_key = strdup(p_mk);
	c.collateral_dir = strdup(p_coll);
	tdc_error_clear(&e);
	assert_true(tdc_kbs_reload(b.k, &c, &e) < 0);
	tdc_kbs_config_free(&c);
	assert_int_equal(tls_open(&fresh, b.port, &a), 1);
	spki_of(fresh.ssl, kept);
	assert_string_equal(kept, after);
	post_on(&fresh, "luks-root", &r);
	expect_released(&r);
	tls_close(&fresh);

	/* the counters of all that, scraped */
	assert_int_equal(ops_get(mport, "/metrics", body, sizeof(body)), 200);
	assert_non_null(strstr(body, "\ntdcrypt_kbs_releases_total 4\n"));
	assert_non_null(strstr(body, "\ntdcrypt_kbs_verification_duration_seconds_count 4\n"));
	assert_int_equal(ops_get(mport, "/nope", body, sizeof(body)), 404);
	agent_free(&a);
	broker_stop(&b);
}

static void drain_finishes_the_request_in_flight(void **state)
{
	(void)state;
	struct broker b;
	struct agent a;
	struct tls t;
	struct resp r;
	char body[4096];
	kt_metrics_listen = "127.0.0.1:0";
	broker_start(&b, true, NOW, false);
	kt_metrics_listen = NULL;
	int mport = tdc_kbs_metrics_port(b.k);
	agent_make(&a, NULL, false);
	assert_int_equal(tls_open(&t, b.port, &a), 1);
	const char req[] = "POST /v1/keys/luks-root HTTP/1.1\r\nHost: broker\r\nContent-Length: "
			   "2\r\n\r\n{}";
	assert_int_equal(SSL_write(t.ssl, req, 20), 20);
	usleep(100000); /* the first bytes are in: the request is in flight */
	tdc_kbs_drain(b.k);
	int status = 0;
	for (int i = 0; i < 50 && status != 503; i++) {
		status = ops_get(mport, "/healthz", body, sizeof(body));
		if (status != 503)
			usleep(20000);
	}
	assert_int_equal(status, 503);
	assert_string_equal(body, "draining\n");
	/* no new connections */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)b.port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0);
	close(fd);
	send_raw(&t, req + 20, sizeof(req) - 1 - 20, &r);
	expect_released(&r);
	tls_close(&t);
	/* drained: the loop returns by itself */
	pthread_join(b.t, NULL);
	tdc_kbs_free(b.k);
	agent_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ops_parser_takes_only_its_two_paths),
		cmocka_unit_test(counters_rendered_twice_alike),
		cmocka_unit_test_setup_teardown(reload_new_certificate_for_new_connections, kt_setup,
						kt_teardown),
		cmocka_unit_test_setup_teardown(drain_finishes_the_request_in_flight, kt_setup,
						kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
