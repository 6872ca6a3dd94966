/* SPDX-License-Identifier: Apache-2.0 */
/* The shared parts of the key-broker load generators (loadgen.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "loadgen.h"
#include "tdcrypt/ratls.h"

double lg_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- agent identities ---- */

int lg_identity_make(const struct tdc_sim_pki *pki, const struct tdc_sim_opts *o, int64_t now,
		     EVP_PKEY **key, X509 **cert, struct tdc_error *e)
{
	struct tdc_sim_opts *q_opts = malloc(sizeof(*q_opts)); /* large: not on the stack */
	uint8_t *q = NULL;
	size_t qlen;
	int rc;
	*key = NULL;
	*cert = NULL;
	if (!q_opts)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	*q_opts = *o;
	if ((rc = tdc_ratls_keygen(key, e)) < 0 ||
	    (rc = tdc_ratls_report_data_for_key(*key, q_opts->td.report_data, e)) < 0 ||
	    (rc = tdc_sim_quote(pki, q_opts, &q, &qlen, e)) < 0 ||
	    (rc = tdc_ratls_cert_create(*key, q, qlen, now, TDC_RATLS_CERT_LIFETIME, cert, e)) < 0) {
		EVP_PKEY_free(*key);
		*key = NULL;
	}
	free(q);
	free(q_opts);
	return rc < 0 ? rc : 0;
}

/* ---- the bare TLS 1.3 mutual-handshake server ---- */

/* The broker's callback, exactly: one self-issued P-256 certificate, no path building. */
static int bare_verify(X509_STORE_CTX *sctx, void *arg)
{
	(void)arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(sctx);
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(sctx);
	int ok = leaf && chain && sk_X509_num(chain) == 1 &&
		 tdc_ratls_cert_self_issued(leaf, NULL) == 0;
	if (!ok)
		X509_STORE_CTX_set_error(sctx, X509_V_ERR_APPLICATION_VERIFICATION);
	return ok;
}

struct bare_conn {
	int fd;
	SSL *ssl;
	int st; /* 0 handshake, 1 read, 2 write */
	char in[1024];
	size_t in_len, out_pos;
};

static void bare_close(struct lg_bare *s, struct bare_conn *c)
{
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->st == 2) {
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
	}
	SSL_free(c->ssl);
	close(c->fd);
	free(c);
	ERR_clear_error();
}

static void bare_want(struct lg_bare *s, struct bare_conn *c, int err)
{
	struct epoll_event ev = { .events = err == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN,
				  .data.ptr = c };
	epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Drives one connection as far as it goes without blocking. */
static void bare_step(struct lg_bare *s, struct bare_conn *c)
{
	for (;;) {
		ERR_clear_error();
		if (c->st == 0) {
			int r = SSL_do_handshake(c->ssl);
			if (r == 1) {
				c->st = 1;
				continue;
			}
			int err = SSL_get_error(c->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
				return bare_want(s, c, err);
			return bare_close(s, c);
		}
		if (c->st == 1) {
			int r = SSL_read(c->ssl, c->in + c->in_len, (int)(sizeof(c->in) - c->in_len - 1));
			if (r > 0) {
				c->in_len += (size_t)r;
				c->in[c->in_len] = 0;
				char *end = strstr(c->in, "\r\n\r\n");
				const char *cl = strstr(c->in, "Content-Length: ");
				size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
				if (end && c->in_len >= (size_t)(end + 4 - c->in) + body)
					c->st = 2;
				else if (c->in_len >= sizeof(c->in) - 1)
					return bare_close(s, c);
				continue;
			}
			int err = SSL_get_error(c->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
				return bare_want(s, c, err);
			return bare_close(s, c);
		}
		int r = SSL_write(c->ssl, s->reply + c->out_pos, (int)(s->reply_len - c->out_pos));
		if (r > 0) {
			c->out_pos += (size_t)r;
			if (c->out_pos == s->reply_len)
				return bare_close(s, c);
			continue;
		}
		int err = SSL_get_error(c->ssl, r);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			return bare_want(s, c, err);
		return bare_close(s, c);
	}
}

static void *bare_loop(void *arg)
{
	struct lg_bare *s = arg;
	struct epoll_event evs[128];
	pthread_setname_np(pthread_self(), "bare-loop");
	for (;;) {
		int n = epoll_wait(s->ep, evs, 128, -1);
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &s->wake)
				return NULL;
			if (p != &s->lfd) {
				bare_step(s, p);
				continue;
			}
			for (;;) {
				int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd < 0)
					break;
				struct bare_conn *c = calloc(1, sizeof(*c));
				if (!c) {
					close(fd);
					continue;
				}
				c->fd = fd;
				c->ssl = SSL_new(s->ctx);
				SSL_set_fd(c->ssl, fd);
				SSL_set_accept_state(c->ssl);
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
				epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
				bare_step(s, c);
			}
		}
	}
}

/* A broker's 200 on the wire (PROTOCOL.md section 6.2): the same headers and JSON shape,
 * so that the agent's strict parser takes it; the key is 32 zero bytes. */
static void bare_reply(struct lg_bare *s, const char *secret_id)
{
	static const char rid[] = "00000000000000000000000000000000";
	char body[256];
	int n = snprintf(body, sizeof(body),
			 "{\"request_id\":\"%s\",\"secret_id\":\"%s\","
			 "\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}",
			 rid, secret_id);
	s->reply_len = (size_t)snprintf(s->reply, sizeof(s->reply),
					"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
					"Cache-Control: no-store\r\nContent-Length: %d\r\n"
					"X-Request-Id: %s\r\nConnection: close\r\n\r\n%s",
					n, rid, body);
}

/* Same TLS settings as the broker's make_ssl_ctx; one epoll thread, like the broker's loop. */
int lg_bare_start(struct lg_bare *s, const char *cert_pem, const char *key_pem,
		  const char *secret_id, struct tdc_error *e)
{
	memset(s, 0, sizeof(*s));
	if (strlen(secret_id) > 64)
		return TDC_FAIL(e, TDC_E_USAGE, "secret ID too long");
	bare_reply(s, secret_id);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:"
					  "TLS_CHACHA20_POLY1305_SHA256") != 1 ||
	    SSL_CTX_set1_groups_list(ctx, "X25519:P-256") != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert_pem) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key_pem, SSL_FILETYPE_PEM) != 1) {
		SSL_CTX_free(ctx);
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "bare server TLS context");
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, bare_verify, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_max_cert_list(ctx, 80 * 1024);
	s->ctx = ctx;

	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(s->lfd, 1024) < 0 || getsockname(s->lfd, (struct sockaddr *)&sa, &sl) < 0 ||
	    (s->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || pipe(s->wake) < 0) {
		SSL_CTX_free(ctx);
		return TDC_FAIL(e, TDC_E_IO, "bare server socket");
	}
	s->port = ntohs(sa.sin_port);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &s->lfd };
	epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev);
	ev.data.ptr = &s->wake;
	epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake[0], &ev);
	if (pthread_create(&s->t, NULL, bare_loop, s) != 0) {
		SSL_CTX_free(ctx);
		return TDC_FAIL(e, TDC_E_IO, "bare server thread");
	}
	return 0;
}

double lg_bare_cpu_seconds(const struct lg_bare *s)
{
	clockid_t cid;
	struct timespec ts;
	if (pthread_getcpuclockid(s->t, &cid) != 0 || clock_gettime(cid, &ts) != 0)
		return -1;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void lg_bare_stop(struct lg_bare *s)
{
	if (write(s->wake[1], "x", 1) != 1)
		abort();
	pthread_join(s->t, NULL);
	/* connections still open at the end (none in a clean run) are left to exit */
	close(s->lfd);
	close(s->ep);
	close(s->wake[0]);
	close(s->wake[1]);
	SSL_CTX_free(s->ctx);
}

/* ---- a broker's memory ---- */

static long status_kib_one(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t fl = strlen(field);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, fl) && line[fl] == ':')
			v = strtol(line + fl + 1, NULL, 10);
	fclose(f);
	return v;
}

long lg_status_kib(pid_t pid, const char *field)
{
	char path[96];
	long sum = status_kib_one(pid, field);
	if (sum < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	FILE *f = fopen(path, "r");
	int child;
	while (f && fscanf(f, "%d", &child) == 1) {
		long v = status_kib_one(child, field);
		if (v > 0)
			sum += v;
	}
	if (f)
		fclose(f);
	return sum;
}
