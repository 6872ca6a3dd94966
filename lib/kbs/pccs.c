/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Intel PCS / PCCS v4 client (libcurl): TDX TCB info, TD QE identity, PCK
 * CRL and root CA CRL, with the issuer chains from the response headers.
 * Bodies are kept exactly as served (the signatures cover those bytes);
 * lib/collateral normalises them. Every transfer has a total timeout, no
 * redirects are followed, and only http/https are allowed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "kbs/kbs-int.h"
#include "util/limits.h"
#include "util/util.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int kbs_curl_init_once(void)
{
	pthread_once(&curl_once, curl_init);
	return curl_init_rc == CURLE_OK ? 0 : -1;
}

void kbs_pccs_raw_free(struct kbs_pccs_raw *r)
{
	struct tdc_buf *b[] = { &r->tcb_info, &r->tcb_info_chain, &r->qe_identity,
				&r->qe_identity_chain, &r->pck_crl, &r->pck_crl_chain,
				&r->root_ca_crl };
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		free(b[i]->data);
		b[i]->data = NULL;
		b[i]->len = 0;
	}
}

struct xfer {
	struct tdc_buf body;
	bool too_big;
	const char *const *hdr_names; /* accepted names of the issuer-chain header */
	struct tdc_buf chain;
};

static int append(struct tdc_buf *b, const void *p, size_t n, size_t max)
{
	if (b->len + n > max)
		return -1;
	uint8_t *d = realloc(b->data, b->len + n + 1);
	if (!d)
		return -1;
	memcpy(d + b->len, p, n);
	b->len += n;
	d[b->len] = 0;
	b->data = d;
	return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	if (append(&x->body, p, n, TDC_MAX_PCCS_BODY) < 0) {
		x->too_big = true;
		return 0; /* aborts the transfer */
	}
	return n;
}

/* "Name: value\r\n": keeps the value of the issuer-chain header. */
static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	for (const char *const *h = x->hdr_names; h && *h; h++) {
		size_t hl = strlen(*h);
		if (n <= hl || strncasecmp(p, *h, hl) != 0 || p[hl] != ':')
			continue;
		size_t a = hl + 1, b = n;
		while (a < b && (p[a] == ' ' || p[a] == '\t'))
			a++;
		while (b > a && (p[b - 1] == '\r' || p[b - 1] == '\n' || p[b - 1] == ' '))
			b--;
		free(x->chain.data);
		x->chain.data = NULL;
		x->chain.len = 0;
		if (append(&x->chain, p + a, b - a, 4 * TDC_MAX_CHAIN_PEM) < 0)
			x->too_big = true;
		break;
	}
	return n;
}

static int get(const struct kbs_pccs_opts *o, const char *path, const char *const *hdr_names,
	       bool need_chain, struct tdc_buf *body, struct tdc_buf *chain, struct tdc_error *e)
{
	char url[2048];
	struct xfer x;
	long status = 0;
	size_t ulen = strlen(o->url);

	memset(&x, 0, sizeof(x));
	x.hdr_names = hdr_names;
	while (ulen && o->url[ulen - 1] == '/')
		ulen--;
	if ((size_t)snprintf(url, sizeof(url), "%.*s%s", (int)ulen, o->url, path) >= sizeof(url))
		return TDC_FAIL(e, TDC_E_USAGE, "PCCS URL too long");
	CURL *c = curl_easy_init();
	if (!c)
		return TDC_FAIL(e, TDC_E_NOMEM, "cannot create a curl handle");
	long tmo = o->timeout_ms ? (long)o->timeout_ms : (long)TDC_KBS_DEFAULT_PCCS_TIMEOUT_MS;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, tmo);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, tmo < 5000 ? tmo : 5000L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tdcrypt-kbs/0.1");
	if (o->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	CURLcode cr = curl_easy_perform(c);
	if (cr == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);

	int r = 0;
	if (x.too_big)
		r = TDC_FAILF(e, TDC_E_LIMIT, "PCCS response too large", "%s", url);
	else if (cr != CURLE_OK)
		r = TDC_FAILF(e, TDC_E_IO, "PCCS request failed", "%s: %s", url,
			      curl_easy_strerror(cr));
	else if (status != 200)
		r = TDC_FAILF(e, TDC_E_IO, "PCCS request failed", "%s: HTTP %ld", url, status);
	else if (x.body.len == 0)
		r = TDC_FAILF(e, TDC_E_FORMAT, "empty PCCS response", "%s", url);
	else if (need_chain && x.chain.len == 0)
		r = TDC_FAILF(e, TDC_E_FORMAT, "PCCS response without its issuer chain header",
			      "%s: %s", url, hdr_names[0]);
	if (r < 0) {
		free(x.body.data);
		free(x.chain.data);
		return r;
	}
	*body = x.body;
	if (chain)
		*chain = x.chain;
	else
		free(x.chain.data);
	return 0;
}

static const char *const tcb_hdrs[] = { "TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain",
					NULL };
static const char *const qe_hdrs[] = { "SGX-Enclave-Identity-Issuer-Chain",
				       "Enclave-Identity-Issuer-Chain", NULL };
static const char *const crl_hdrs[] = { "SGX-PCK-CRL-Issuer-Chain", NULL };

int kbs_pccs_fetch(const struct kbs_pccs_opts *o, const uint8_t fmspc[6], bool processor_ca,
		   struct kbs_pccs_raw *out, struct tdc_error *e)
{
	char path[128], fm[13];

	memset(out, 0, sizeof(*out));
	if (!o || !o->url)
		return TDC_FAIL(e, TDC_E_USAGE, "no PCCS URL");
	tdc_hex_encode(fmspc, 6, fm);
	for (char *p = fm; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	snprintf(path, sizeof(path), "/tdx/certification/v4/tcb?fmspc=%s", fm);
	int r = get(o, path, tcb_hdrs, true, &out->tcb_info, &out->tcb_info_chain, e);
	if (r == 0)
		r = get(o, "/tdx/certification/v4/qe/identity", qe_hdrs, true, &out->qe_identity,
			&out->qe_identity_chain, e);
	if (r == 0) {
		snprintf(path, sizeof(path), "/sgx/certification/v4/pckcrl?ca=%s&encoding=der",
			 processor_ca ? "processor" : "platform");
		/* the PCK CRL chain is optional, as in a directory bundle */
		r = get(o, path, crl_hdrs, false, &out->pck_crl, &out->pck_crl_chain, e);
	}
	if (r == 0)
		r = get(o, "/sgx/certification/v4/rootcacrl", NULL, false, &out->root_ca_crl, NULL,
			e);
	if (r < 0)
		kbs_pccs_raw_free(out);
	return r;
}

int kbs_pccs_to_collateral(const struct kbs_pccs_raw *r, struct tdc_collateral *c,
			   struct tdc_error *e)
{
	memset(c, 0, sizeof(*c));
	int rc = tdc_pcs_body_split(r->tcb_info.data, r->tcb_info.len, "tcbInfo", &c->tcb_info,
				    c->tcb_info_sig, e);
	if (rc == 0)
		rc = tdc_chain_to_pem(r->tcb_info_chain.data, r->tcb_info_chain.len,
				      &c->tcb_info_chain, e);
	if (rc == 0)
		rc = tdc_pcs_body_split(r->qe_identity.data, r->qe_identity.len, "enclaveIdentity",
					&c->qe_identity, c->qe_identity_sig, e);
	if (rc == 0) {
		const struct tdc_buf *qc =
			r->qe_identity_chain.len ? &r->qe_identity_chain : &r->tcb_info_chain;
		rc = tdc_chain_to_pem(qc->data, qc->len, &c->qe_identity_chain, e);
	}
	if (rc == 0)
		rc = tdc_crl_to_der(r->pck_crl.data, r->pck_crl.len, &c->pck_crl, e);
	if (rc == 0 && r->pck_crl_chain.len)
		rc = tdc_chain_to_pem(r->pck_crl_chain.data, r->pck_crl_chain.len,
				      &c->pck_crl_chain, e);
	if (rc == 0)
		rc = tdc_crl_to_der(r->root_ca_crl.data, r->root_ca_crl.len, &c->root_ca_crl, e);
	if (rc < 0)
		tdc_collateral_free(c);
	return rc;
}
