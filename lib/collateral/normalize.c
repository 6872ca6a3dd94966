/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRLs and issuer chains arrive in several encodings depending on the
 * source (PCS body, PCCS hex, HTTP header). These bring them to one form:
 * CRLs to DER, chains to PEM text. Certificates and CRLs are checked by
 * lib/x509; here we only make sure a CRL is one whole DER structure.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tdcrypt/collateral.h"
#include "util/limits.h"
#include "x509/x509.h"
#include "util/rd.h"
#include "util/util.h"

#define PEM_CRL "-----BEGIN X509 CRL-----"
#define PEM_CERT "-----BEGIN CERTIFICATE-----"
#define URL_CERT "-----BEGIN%20CERTIFICATE-----"

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Narrows r to its content without surrounding whitespace. */
static void trim_ws(struct tdc_rd *r)
{
	while (!tdc_rd_empty(r) && is_ws(tdc_rd_at(r, tdc_rd_mark(r))))
		if (tdc_rd_skip(r, 1, NULL, NULL) < 0)
			break;
	size_t before;
	do {
		before = tdc_rd_remaining(r);
		tdc_rd_trim_trailing(r, ' ');
		tdc_rd_trim_trailing(r, '\t');
		tdc_rd_trim_trailing(r, '\n');
		tdc_rd_trim_trailing(r, '\r');
	} while (tdc_rd_remaining(r) != before);
}

static int buf_dup(const uint8_t *p, size_t n, struct tdc_buf *out, struct tdc_error *e)
{
	uint8_t *d = malloc(n + 1);
	if (!d)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if (n)
		memcpy(d, p, n);
	d[n] = '\0';
	out->data = d;
	out->len = n;
	return 0;
}

/* One whole DER CRL (lib/x509 refuses trailing bytes). */
static int check_der_crl(const uint8_t *der, size_t len, struct tdc_error *e)
{
	X509_CRL *crl = NULL;
	if (len == 0 || der[0] != 0x30)
		return TDC_FAIL(e, TDC_E_FORMAT, "CRL is not DER");
	TDC_GUARD(tdc_crl_from_der(der, len, &crl, e));
	X509_CRL_free(crl);
	return 0;
}

static int crl_from_pem(const struct tdc_rd *r, struct tdc_buf *der, struct tdc_error *e)
{
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long dlen = 0;
	int ret;
	BIO *bio = BIO_new_mem_buf(tdc_rd_ptr(r), (int)tdc_rd_len(r));
	if (!bio)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if (!PEM_read_bio(bio, &name, &header, &data, &dlen) || dlen <= 0) {
		ret = TDC_FAIL_OSSL(e, TDC_E_FORMAT, "cannot decode PEM CRL");
		goto out;
	}
	/* only one CRL: anything but whitespace after it is an error */
	char c;
	while (BIO_read(bio, &c, 1) == 1) {
		if (!is_ws((uint8_t)c)) {
			ret = TDC_FAIL(e, TDC_E_FORMAT, "trailing data after PEM CRL");
			goto out;
		}
	}
	if (strcmp(name, "X509 CRL") != 0) {
		ret = TDC_FAILF(e, TDC_E_FORMAT, "PEM block is not a CRL", "\"%.40s\"", name);
		goto out;
	}
	ret = check_der_crl(data, (size_t)dlen, e);
	if (ret == 0)
		ret = buf_dup(data, (size_t)dlen, der, e);
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	return ret;
}

int tdc_crl_to_der(const uint8_t *in, size_t len, struct tdc_buf *der, struct tdc_error *e)
{
	struct tdc_rd r;
	if (!der)
		return TDC_FAIL(e, TDC_E_USAGE, "crl_to_der: NULL output");
	der->data = NULL;
	der->len = 0;
	if (!in)
		return TDC_FAIL(e, TDC_E_USAGE, "crl_to_der: NULL input");
	if (len > TDC_MAX_CRL_SIZE)
		return TDC_FAILF(e, TDC_E_LIMIT, "CRL too large", "%zu bytes, limit %u", len,
				 TDC_MAX_CRL_SIZE);
	tdc_rd_init(&r, in, len);
	if (tdc_rd_starts_with(&r, "\x30", 1)) {
		TDC_GUARD(check_der_crl(in, len, e));
		return buf_dup(in, len, der, e);
	}
	trim_ws(&r);
	struct tdc_rd body;
	tdc_rd_rest(&r, &body);
	if (tdc_rd_empty(&body))
		return TDC_FAIL(e, TDC_E_FORMAT, "empty CRL");
	if (tdc_rd_starts_with(&body, PEM_CRL, strlen(PEM_CRL)))
		return crl_from_pem(&body, der, e);

	/* PCCS serves the root CA CRL as hex text of the DER */
	uint8_t *bin;
	size_t n;
	TDC_GUARD(tdc_hex_decode_alloc((const char *)tdc_rd_ptr(&body), tdc_rd_len(&body), &bin, &n,
				       "CRL hex", e));
	int ret = check_der_crl(bin, n, e);
	if (ret == 0) {
		bin[n] = '\0'; /* hex_decode_alloc leaves one spare byte */
		der->data = bin;
		der->len = n;
		return 0;
	}
	free(bin);
	return ret;
}

/* Decodes %XX escapes (HTTP header form of the PCS issuer chains). */
static int url_decode(struct tdc_rd *r, struct tdc_buf *out, struct tdc_error *e)
{
	uint8_t *d = malloc(tdc_rd_remaining(r) + 1);
	size_t n = 0;
	if (!d)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	while (!tdc_rd_empty(r)) {
		uint8_t c;
		char hx[2];
		size_t off = tdc_rd_offset(r);
		int ret = tdc_rd_u8(r, &c, "chain", e);
		if (ret == 0 && c == '%') {
			ret = tdc_rd_copy(r, hx, 2, "percent escape", e);
			if (ret == 0)
				ret = tdc_hex_decode(hx, 2, &c, 1, "percent escape", NULL);
			if (ret < 0 || c == 0)
				ret = TDC_FAIL_AT(e, TDC_E_FORMAT, off, "bad URL escape in chain",
						  "at offset %zu", off);
		}
		if (ret < 0) {
			free(d);
			return ret;
		}
		d[n++] = c;
	}
	d[n] = '\0';
	out->data = d;
	out->len = n;
	return 0;
}

int tdc_chain_to_pem(const uint8_t *in, size_t len, struct tdc_buf *pem, struct tdc_error *e)
{
	struct tdc_rd r;
	if (!pem)
		return TDC_FAIL(e, TDC_E_USAGE, "chain_to_pem: NULL output");
	pem->data = NULL;
	pem->len = 0;
	if (!in)
		return TDC_FAIL(e, TDC_E_USAGE, "chain_to_pem: NULL input");
	if (len > TDC_MAX_CHAIN_PEM)
		return TDC_FAILF(e, TDC_E_LIMIT, "issuer chain too large", "%zu bytes, limit %u",
				 len, TDC_MAX_CHAIN_PEM);
	tdc_rd_init(&r, in, len);
	trim_ws(&r);
	if (tdc_rd_starts_with(&r, PEM_CERT, strlen(PEM_CERT)))
		return buf_dup(in, len, pem, e);
	if (tdc_rd_starts_with(&r, URL_CERT, strlen(URL_CERT)))
		return url_decode(&r, pem, e);
	return TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(&r), "issuer chain is not PEM",
			   "expected " PEM_CERT);
}
