/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRLs and validity windows: DER CRL parsing, the explicit CRL checks of Intel QVL
 * (issuer DN, signature, currency at the injected time), and ASN1_TIME to epoch seconds.
 */
#include <limits.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>

#include "util/limits.h"
#include "util/util.h"
#include "x509/x509.h"

int tdc_crl_from_der(const uint8_t *der, size_t len, X509_CRL **out, struct tdc_error *e)
{
	if (!der || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "CRL: bad argument");
	*out = NULL;
	if (len == 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "CRL: empty");
	if (len > TDC_MAX_CRL_SIZE)
		return TDC_FAILF(e, TDC_E_LIMIT, "CRL: too large", "%zu bytes, limit %u", len,
				 TDC_MAX_CRL_SIZE);
	const unsigned char *p = der;
	X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
	if (!crl)
		return TDC_FAIL_OSSL(e, TDC_E_FORMAT, "CRL: not a DER X.509 CRL");
	/* Re-encoded length == consumed length: no trailing bytes (see tdc_x509_from_der). */
	int used = i2d_X509_CRL(crl, NULL);
	if (used < 0 || (size_t)used != len) {
		X509_CRL_free(crl);
		return TDC_FAILF(e, TDC_E_FORMAT, "CRL: trailing bytes after DER",
				 "%d of %zu bytes used", used, len);
	}
	*out = crl;
	return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* ASN1_TIME (UTCTime or GeneralizedTime, already validated by OpenSSL) to epoch seconds. */
static int asn1_time_epoch(const ASN1_TIME *t, int64_t *out, const char *field,
			   struct tdc_error *e)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
		ERR_clear_error();
		return TDC_FAILF(e, TDC_E_FORMAT, "invalid ASN.1 time", "%s", field);
	}
	*out = days_from_civil((int64_t)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) * 86400 +
	       tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
	return 0;
}

int tdc_x509_window(X509 *cert, int64_t *not_before, int64_t *not_after, struct tdc_error *e)
{
	if (!cert || !not_before || !not_after)
		return TDC_FAIL(e, TDC_E_USAGE, "certificate window: bad argument");
	TDC_GUARD(asn1_time_epoch(X509_get0_notBefore(cert), not_before, "notBefore", e));
	TDC_GUARD(asn1_time_epoch(X509_get0_notAfter(cert), not_after, "notAfter", e));
	return 0;
}

int tdc_crl_window(X509_CRL *crl, int64_t *this_update, int64_t *next_update,
		   struct tdc_error *e)
{
	if (!crl || !this_update || !next_update)
		return TDC_FAIL(e, TDC_E_USAGE, "CRL window: bad argument");
	TDC_GUARD(asn1_time_epoch(X509_CRL_get0_lastUpdate(crl), this_update, "thisUpdate", e));
	/* nextUpdate is optional in X.509 but a CRL without it is never stale: refuse it. */
	if (!X509_CRL_get0_nextUpdate(crl))
		return TDC_FAIL(e, TDC_E_CRL, "CRL has no nextUpdate");
	TDC_GUARD(asn1_time_epoch(X509_CRL_get0_nextUpdate(crl), next_update, "nextUpdate", e));
	return 0;
}

/* Copies the subject CN (or "") into buf. */
static void subject_cn(X509 *cert, char *buf, size_t len)
{
	buf[0] = '\0';
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf,
				      (int)len) < 0)
		buf[0] = '\0';
	ERR_clear_error();
}

bool tdc_x509_cn_contains(X509 *cert, const char *needle)
{
	if (!cert || !needle)
		return false;
	X509_NAME *name = X509_get_subject_name(cert);
	/* Every CN entry, read as its raw ASN.1 string (no truncation, no conversion);
	 * a string with an embedded NUL never matches past it. */
	for (int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1); i >= 0;
	     i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) {
		ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
		if (!s)
			continue;
		const unsigned char *d = ASN1_STRING_get0_data(s);
		int n = ASN1_STRING_length(s);
		size_t nl = strlen(needle);
		if (n >= 0 && memmem(d, (size_t)n, needle, nl))
			return true;
	}
	return false;
}

int tdc_crl_check(X509_CRL *crl, X509 *issuer, int64_t now, const char *what,
		  struct tdc_error *e)
{
	char cn[128];

	if (!what)
		what = "CRL";
	if (!crl || !issuer)
		return TDC_FAILF(e, TDC_E_USAGE, "CRL check: bad argument", "%s", what);
	subject_cn(issuer, cn, sizeof(cn));
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0) {
		char crl_cn[128] = "";
		X509_NAME_get_text_by_NID(X509_CRL_get_issuer(crl), NID_commonName, crl_cn,
					  sizeof(crl_cn));
		ERR_clear_error();
		return TDC_FAILF(e, TDC_E_CRL, "CRL issuer mismatch",
				 "%s: CRL issued by \"%s\", expected \"%s\"", what, crl_cn, cn);
	}
	EVP_PKEY *key = X509_get0_pubkey(issuer);
	if (!key || X509_CRL_verify(crl, key) != 1) {
		unsigned long oe = ERR_peek_error();
		char obuf[120] = "";
		if (oe)
			ERR_error_string_n(oe, obuf, sizeof(obuf));
		ERR_clear_error();
		return TDC_FAILF(e, TDC_E_CRL, "CRL signature invalid", "%s: not signed by \"%s\"%s%s",
				 what, cn, oe ? ": " : "", obuf);
	}
	int64_t this_update, next_update;
	TDC_GUARD(tdc_crl_window(crl, &this_update, &next_update, e));
	if (now < this_update || now > next_update) {
		char a[24], b[24], n[24];
		return TDC_FAILF(e, TDC_E_EXPIRED, now < this_update ? "CRL not yet valid"
								       : "CRL expired",
				 "%s: valid %s..%s, now %s", what,
				 tdc_time_format(this_update, a, sizeof(a)),
				 tdc_time_format(next_update, b, sizeof(b)),
				 tdc_time_format(now, n, sizeof(n)));
	}
	return 0;
}
