/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One attempt against one broker (PROTOCOL.md §2, §6): TCP connect, TLS 1.3
 * mutual handshake with the RA-TLS certificate, broker identity by SPKI pin
 * and/or CA, one POST, one strictly parsed response. Non-blocking sockets and
 * poll, so every step ends by the attempt's deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "agent-int.h"
#include "tdcrypt/ratls.h"

#define CIPHERSUITES "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
#define GROUPS "X25519:P-256"

/* The broker's identity (PROTOCOL.md §2.1): CA path with host check, then pins. */
static int verify_broker(X509_STORE_CTX *sctx, void *arg)
{
	const struct tdc_agent_config *c = arg;
	if (c->broker_ca && X509_verify_cert(sctx) != 1)
		return 0;
	if (c->n_pins) {
		X509 *leaf = X509_STORE_CTX_get0_cert(sctx);
		if (!leaf || !tdc_spki_pin_match(leaf, (const uint8_t(*)[32])c->pins, c->n_pins)) {
			X509_STORE_CTX_set_error(sctx, X509_V_ERR_APPLICATION_VERIFICATION);
			return 0;
		}
	}
	return 1;
}

int tdc_agent_tls_ctx(const struct tdc_agent_config *c, EVP_PKEY *key, X509 *cert, SSL_CTX **out,
		      struct tdc_error *e)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	*out = NULL;
	if (!ctx)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SSL_CTX_new failed");
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, CIPHERSUITES) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, GROUPS) != 1 || SSL_CTX_use_certificate(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		SSL_CTX_free(ctx);
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot set up TLS");
	}
	if (c->broker_ca && SSL_CTX_load_verify_locations(ctx, c->broker_ca, NULL) != 1) {
		SSL_CTX_free(ctx);
		return TDC_FAIL_OSSL(e, TDC_E_IO, "cannot load broker_ca");
	}
	/* No resumption, no tickets kept; wipe plaintext record copies (the key). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_CLEANSE_PLAINTEXT |
				     SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, verify_broker, (void *)c);
	*out = ctx;
	return 0;
}

static int wait_fd(int fd, short events, const struct tdc_agent_clock *clk, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - clk->now_ms(clk->arg);
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			return 0;
	}
}

static int connect_one(const struct addrinfo *ai, const struct tdc_agent_clock *clk,
		       int64_t deadline, const struct tdc_agent_events *ev, int *err)
{
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	/* the request follows the client's handshake flight at once: without this, Nagle
	 * holds it until the broker's delayed ACK (40 ms on Linux) */
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	errno = 0;
	if (ev && ev->socket && ev->socket(ev->arg, fd) < 0) {
		*err = errno ? errno : EINVAL;
		close(fd);
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		*err = errno;
		close(fd);
		return -1;
	}
	int r = wait_fd(fd, POLLOUT, clk, deadline), soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
		return fd;
	*err = r < 0 ? -r : soerr ? soerr : errno;
	close(fd);
	return -1;
}

static int tcp_connect(const struct tdc_agent_broker *b, const struct tdc_agent_clock *clk,
		       int64_t deadline, const struct tdc_agent_events *ev, int *out,
		       struct tdc_error *e)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV | (b->is_ip ? AI_NUMERICHOST : 0)};
	struct addrinfo *res = NULL;
	char port[8];
	int err = 0;

	snprintf(port, sizeof(port), "%u", b->port);
	int g = getaddrinfo(b->host, port, &hints, &res);
	if (g != 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot resolve broker", "%s: %s", b->host,
				 gai_strerror(g));
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = connect_one(ai, clk, deadline, ev, &err);
		if (fd >= 0) {
			freeaddrinfo(res);
			*out = fd;
			return 0;
		}
		if (err == ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return TDC_FAILF(e, TDC_E_IO, "cannot connect to broker", "%s:%u: %s", b->host, b->port,
			 strerror(err ? err : ECONNREFUSED));
}

/* Runs one SSL call to completion by the deadline. 1 done, 0 clean EOF, <0 error. */
static int ssl_drive(SSL *ssl, int fd, int r, const struct tdc_agent_clock *clk, int64_t deadline,
		     int *ssl_err)
{
	*ssl_err = SSL_get_error(ssl, r);
	if (*ssl_err == SSL_ERROR_WANT_READ || *ssl_err == SSL_ERROR_WANT_WRITE) {
		int w =
		    wait_fd(fd, *ssl_err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, clk, deadline);
		return w < 0 ? w : 1;
	}
	if (*ssl_err == SSL_ERROR_ZERO_RETURN)
		return 0;
	return -EPROTO;
}

/* Text of the TLS alert the peer sent, if the last error is one. */
static const char *received_alert(void)
{
	unsigned long err = ERR_peek_last_error();
	if (ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) >= SSL_AD_REASON_OFFSET)
		return SSL_alert_desc_string_long(ERR_GET_REASON(err) - SSL_AD_REASON_OFFSET);
	return NULL;
}

static int handshake(SSL *ssl, int fd, const struct tdc_agent_clock *clk, int64_t deadline,
		     struct tdc_agent_reply *reply, struct tdc_error *e)
{
	for (;;) {
		int se, r = SSL_connect(ssl);
		if (r == 1)
			return TDC_ATTEMPT_OK;
		int d = ssl_drive(ssl, fd, r, clk, deadline, &se);
		if (d == 1)
			continue;
		if (d == -ETIMEDOUT) {
			TDC_FAIL(e, TDC_E_IO, "TLS handshake timed out");
			return TDC_ATTEMPT_NO_NETWORK;
		}
		long v = SSL_get_verify_result(ssl);
		if (v != X509_V_OK) {
			TDC_FAILF(e, TDC_E_CHAIN, "broker identity check failed", "%s",
				  v == X509_V_ERR_APPLICATION_VERIFICATION
				      ? "SPKI pin mismatch"
				      : X509_verify_cert_error_string(v));
			return TDC_ATTEMPT_BAD_BROKER;
		}
		const char *alert = received_alert();
		if (alert) {
			snprintf(reply->error, sizeof(reply->error), "handshake_refused");
			TDC_FAILF(e, TDC_E_IO, "broker refused the TLS handshake", "alert: %s",
				  alert);
			return TDC_ATTEMPT_DENIED;
		}
		if (se == SSL_ERROR_SYSCALL || d == 0) {
			TDC_FAIL(e, TDC_E_IO, "connection lost during the TLS handshake");
			return TDC_ATTEMPT_NO_NETWORK;
		}
		TDC_FAIL_OSSL(e, TDC_E_IO, "TLS handshake failed");
		return TDC_ATTEMPT_BAD_BROKER;
	}
}

static int exchange(SSL *ssl, int fd, const struct tdc_agent_broker *b, const char *secret_id,
		    const char *body, const struct tdc_agent_clock *clk, int64_t deadline,
		    struct tdc_agent_reply *reply, struct tdc_error *e)
{
	char host[TDC_AGENT_HOST_MAX + 16], *req = NULL;
	size_t req_len, got = 0, sent = 0;
	uint8_t *buf = NULL;
	int res = TDC_ATTEMPT_RETRY;

	snprintf(host, sizeof(host), strchr(b->host, ':') ? "[%s]:%u" : "%s:%u", b->host, b->port);
	if (tdc_agent_http_request(host, secret_id, body, &req, &req_len, e) < 0)
		return TDC_ATTEMPT_RETRY;
	while (sent < req_len) {
		size_t n = 0;
		int se, r = SSL_write_ex(ssl, req + sent, req_len - sent, &n);
		if (r == 1) {
			sent += n;
			continue;
		}
		int d = ssl_drive(ssl, fd, r, clk, deadline, &se);
		if (d == 1)
			continue;
		const char *alert = received_alert();
		if (alert) {
			snprintf(reply->error, sizeof(reply->error), "handshake_refused");
			TDC_FAILF(e, TDC_E_IO, "broker refused our certificate", "alert: %s",
				  alert);
			res = TDC_ATTEMPT_DENIED;
		} else {
			TDC_FAIL(e, TDC_E_IO,
				 d == -ETIMEDOUT ? "sending the request timed out"
						 : "connection lost sending the request");
			res = d == -ETIMEDOUT ? TDC_ATTEMPT_RETRY : TDC_ATTEMPT_NO_NETWORK;
		}
		goto out;
	}
	if (!(buf = malloc(TDC_MAX_HTTP_RESPONSE + 1))) {
		TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		size_t n = 0;
		int se, r = SSL_read_ex(ssl, buf + got, TDC_MAX_HTTP_RESPONSE + 1 - got, &n);
		if (r == 1) {
			got += n;
			if (got > TDC_MAX_HTTP_RESPONSE) {
				TDC_FAIL(e, TDC_E_LIMIT, "response too large");
				goto out;
			}
			continue;
		}
		int d = ssl_drive(ssl, fd, r, clk, deadline, &se);
		if (d == 1)
			continue;
		if (d == 0 || (se == SSL_ERROR_SYSCALL && got > 0))
			break; /* end of the response (Content-Length is checked next) */
		const char *alert = received_alert();
		if (alert && got == 0) {
			/* TLS 1.3: a client certificate the broker refuses shows up here. */
			snprintf(reply->error, sizeof(reply->error), "handshake_refused");
			TDC_FAILF(e, TDC_E_IO, "broker refused our certificate", "alert: %s",
				  alert);
			res = TDC_ATTEMPT_DENIED;
		} else if (d == -ETIMEDOUT) {
			TDC_FAIL(e, TDC_E_IO, "waiting for the response timed out");
		} else {
			TDC_FAIL(e, TDC_E_IO, "connection lost reading the response");
			res = got ? TDC_ATTEMPT_RETRY : TDC_ATTEMPT_NO_NETWORK;
		}
		goto out;
	}
	if (got == 0) {
		/* closed before a word: a broker that stopped or crashed, not a broken reply */
		TDC_FAIL(e, TDC_E_IO, "connection closed before the response");
		res = TDC_ATTEMPT_NO_NETWORK;
		goto out;
	}
	if (tdc_agent_parse_response(buf, got, secret_id, reply, e) < 0)
		goto out; /* a broken reply: maybe a broker mid-upgrade; retry */
	if (reply->http_status == 200)
		res = TDC_ATTEMPT_OK;
	else
		res = tdc_agent_reason_is_stop(reply->error, reply->http_status)
			  ? TDC_ATTEMPT_DENIED
			  : TDC_ATTEMPT_RETRY;
out:
	if (buf) {
		OPENSSL_cleanse(buf, got);
		free(buf);
	}
	free(req);
	return res;
}

int tdc_agent_attempt(SSL_CTX *ctx, const struct tdc_agent_broker *b, const char *secret_id,
		      const char *body, const struct tdc_agent_clock *clk, int64_t deadline_ms, uint32_t connect_ms,
		      const struct tdc_agent_events *ev, struct tdc_agent_reply *reply,
		      struct tdc_error *e)
{
	int fd = -1, res;
	SSL *ssl = NULL;

	tdc_agent_reply_free(reply);
	ERR_clear_error();
	int64_t cdl = clk->now_ms(clk->arg) + connect_ms;
	if (tcp_connect(b, clk, cdl < deadline_ms ? cdl : deadline_ms, ev, &fd, e) < 0)
		return TDC_ATTEMPT_NO_NETWORK;
	if (!(ssl = SSL_new(ctx)) || SSL_set_fd(ssl, fd) != 1 ||
	    (!b->is_ip && SSL_set_tlsext_host_name(ssl, b->host) != 1) ||
	    (b->is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), b->host)
		      : SSL_set1_host(ssl, b->host)) != 1) {
		TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot set up the TLS connection");
		res = TDC_ATTEMPT_RETRY;
		goto out;
	}
	res = handshake(ssl, fd, clk, deadline_ms, reply, e);
	if (res != TDC_ATTEMPT_OK)
		goto out;
	if (ev && ev->mark)
		ev->mark(ev->arg, "connected");
	res = exchange(ssl, fd, b, secret_id, body, clk, deadline_ms, reply, e);
	if (res == TDC_ATTEMPT_OK || res == TDC_ATTEMPT_DENIED || res == TDC_ATTEMPT_RETRY)
		(void)SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	ERR_clear_error();
	return res;
}
