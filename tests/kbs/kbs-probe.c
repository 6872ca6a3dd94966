/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kbs-probe: an RA-TLS client of the real tdcrypt-kbs for the shell tests (ops.sh). It
 * is a simulated TD of a `tdcrypt sim init` directory: a fresh key, a quote from the
 * directory's PKI and td.json binding it, the RA-TLS certificate; then one connection:
 *   kbs-probe --sim DIR --port P --secret ID [--pin HEX]
 *             [--split-wait FILE]   send half of the request, wait for FILE, the rest
 *             [--again-wait FILE]   after a keep-alive answer, wait for FILE and ask again
 *                                   on the same connection
 * Prints "spki HEX" (the broker certificate's SPKI SHA-256, what an agent pins) after the
 * handshake, "held" when half a request is out, and "response STATUS CODE" per answer
 * (CODE: "released" or the error code). Exit: 0 answered, 6 the pin did not match
 * (like the agent's bad-broker), 4 no connection or handshake, 1 anything else.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "tdcrypt/agent.h"
#include "tdcrypt/ratls.h"
#include "tdcrypt/sim.h"
#include "util/util.h"

static int die(const char *what, const struct tdc_error *e)
{
	char buf[400];
	fprintf(stderr, "kbs-probe: %s: %s\n", what, e ? tdc_error_format(e, buf, sizeof(buf)) : "");
	return 1;
}

/* The simulated TD's key and certificate (quote-sim.c, without an event log). */
static int make_agent(const char *dir, EVP_PKEY **key, X509 **cert)
{
	char path[4096];
	struct tdc_error e;
	struct tdc_sim_td td;
	struct tdc_sim_pki *pki = NULL;
	struct tdc_sim_opts *o = calloc(1, sizeof(*o));
	uint8_t *buf = NULL, *q = NULL;
	size_t len = 0, qlen = 0;
	int64_t now = (int64_t)time(NULL);
	tdc_error_clear(&e);
	snprintf(path, sizeof(path), "%s/td.json", dir);
	if (!o || tdc_file_read(path, 65536, &buf, &len, &e) < 0 ||
	    tdc_sim_td_parse(buf, len, &td, &e) < 0)
		return die("td.json", &e);
	free(buf);
	tdc_sim_opts_default(o, now);
	memcpy(o->td.mrtd, td.mrtd, 48);
	memcpy(o->td.mrconfigid, td.mrconfigid, 48);
	memcpy(o->td.mrowner, td.mrowner, 48);
	memcpy(o->td.mrownerconfig, td.mrownerconfig, 48);
	memcpy(o->td.td_attributes, td.td_attributes, 8);
	memcpy(o->td.xfam, td.xfam, 8);
	snprintf(path, sizeof(path), "%s/pki", dir);
	int r = tdc_sim_pki_load(path, &pki, &e);
	if (r == 0)
		r = tdc_ratls_keygen(key, &e);
	if (r == 0)
		r = tdc_ratls_report_data_for_key(*key, o->td.report_data, &e);
	if (r == 0)
		r = tdc_sim_quote(pki, o, &q, &qlen, &e);
	if (r == 0)
		r = tdc_ratls_cert_create(*key, q, qlen, now, TDC_RATLS_CERT_LIFETIME, cert, &e);
	free(q);
	free(o);
	tdc_sim_pki_free(pki);
	return r < 0 ? die("evidence", &e) : 0;
}

static void wait_for(const char *file)
{
	struct stat st;
	for (int i = 0; i < 600 && stat(file, &st) != 0; i++)
		usleep(50000);
}

static int read_response(SSL *ssl, bool *keep_alive)
{
	char in[8192];
	size_t n = 0;
	for (;;) {
		int r = SSL_read(ssl, in + n, (int)(sizeof(in) - 1 - n));
		if (r <= 0)
			break;
		n += (size_t)r;
		in[n] = 0;
		char *end = strstr(in, "\r\n\r\n"), *cl = strstr(in, "Content-Length: ");
		if (end && cl && n >= (size_t)(end + 4 - in) + strtoul(cl + 16, NULL, 10))
			break;
	}
	in[n] = 0;
	int status = 0;
	char code[64] = "none";
	sscanf(in, "HTTP/1.1 %d", &status);
	char *p = strstr(in, "\"error\":\"");
	if (p)
		sscanf(p + 9, "%63[^\"]", code);
	else if (strstr(in, "\"key\":\""))
		snprintf(code, sizeof(code), "released");
	*keep_alive = strstr(in, "Connection: keep-alive") != NULL;
	printf("response %d %s\n", status, code);
	fflush(stdout);
	return status ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *sim = NULL, *secret = "luks-root", *pin = NULL, *split = NULL, *again = NULL;
	int port = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--sim"))
			sim = argv[i + 1];
		else if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--secret"))
			secret = argv[i + 1];
		else if (!strcmp(argv[i], "--pin"))
			pin = argv[i + 1];
		else if (!strcmp(argv[i], "--split-wait"))
			split = argv[i + 1];
		else if (!strcmp(argv[i], "--again-wait"))
			again = argv[i + 1];
	}
	if (!sim || port <= 0) {
		fprintf(stderr, "usage: kbs-probe --sim DIR --port P [--secret ID] [--pin HEX] "
				"[--split-wait FILE] [--again-wait FILE]\n");
		return 1;
	}
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	if (make_agent(sim, &key, &cert))
		return 1;

	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	/* the broker is checked by its pin below, as the agent does */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_use_certificate(ctx, cert);
	SSL_CTX_use_PrivateKey(ctx, key);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = { 20, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	SSL *ssl = NULL;
	int rc = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		printf("connect-failed\n");
		rc = 4;
		goto out;
	}
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		printf("handshake-failed\n");
		rc = 4;
		goto out;
	}
	X509 *peer = SSL_get0_peer_certificate(ssl);
	unsigned char *der = NULL;
	int dl = peer ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(peer), &der) : -1;
	uint8_t md[32];
	char spki[65] = "";
	if (dl > 0) {
		SHA256(der, (size_t)dl, md);
		tdc_hex_encode(md, sizeof(md), spki);
	}
	OPENSSL_free(der);
	printf("spki %s\n", spki);
	fflush(stdout);
	if (pin && strcmp(pin, spki) != 0) {
		printf("pin-mismatch\n");
		rc = 6;
		goto out;
	}

	char req[512];
	const char body[] = "{\"agent\":\"kbs-probe\"}";
	for (int round = 0; round < (again ? 2 : 1) && rc == 0; round++) {
		int n = snprintf(req, sizeof(req),
				 "POST /v1/keys/%s HTTP/1.1\r\nHost: broker\r\nContent-Type: "
				 "application/json\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n%s",
				 secret, sizeof(body) - 1, again && round == 0 ? "keep-alive" : "close",
				 body);
		int first = split ? n / 2 : n;
		if (SSL_write(ssl, req, first) != first) {
			rc = 1;
			break;
		}
		if (split) {
			printf("held\n");
			fflush(stdout);
			wait_for(split);
			if (SSL_write(ssl, req + first, n - first) != n - first) {
				printf("write-failed\n");
				rc = 1;
				break;
			}
		}
		bool keep = false;
		rc = read_response(ssl, &keep);
		if (again && round == 0) {
			if (!keep) {
				printf("not-kept-alive\n");
				rc = 1;
				break;
			}
			wait_for(again);
		}
	}
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}
