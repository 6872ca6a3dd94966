/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PEM certificate chains and their verification to the pinned root at an injected
 * time (Intel QVL 4.1.2.4.3-7). The X509_STORE holds only the pinned root; the
 * wall clock is never consulted.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "util/limits.h"
#include "util/rd.h"
#include "util/util.h"
#include "x509/x509.h"

static const char pem_begin[] = "-----BEGIN CERTIFICATE-----";

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Advances r over whitespace. */
static void skip_space(struct tdc_rd *r)
{
	uint8_t c;
	while (!tdc_rd_empty(r) && tdc_rd_remaining(r) > 0 &&
	       is_space(tdc_rd_at(r, tdc_rd_len(r) - tdc_rd_remaining(r)))) {
		if (tdc_rd_u8(r, &c, NULL, NULL) < 0)
			break;
	}
}

/*
 * Reads one PEM block from bio and decodes it as exactly one DER certificate.
 * PEM_read_bio (not PEM_read_bio_X509) so that encryption headers are refused
 * instead of prompting for a password, and so that the DER must be consumed whole.
 */
static int read_one(BIO *bio, size_t index, X509 **out, struct tdc_error *e)
{
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long dlen = 0;
	int rc = 0;

	if (PEM_read_bio(bio, &name, &header, &data, &dlen) != 1) {
		rc = TDC_FAIL_OSSL(e, TDC_E_FORMAT, "PEM chain: bad PEM block");
	} else if (strcmp(name, "CERTIFICATE") != 0) {
		rc = TDC_FAILF(e, TDC_E_FORMAT, "PEM chain: not a certificate",
			       "block %zu is \"%s\"", index, name);
	} else if (header[0] != '\0') {
		rc = TDC_FAILF(e, TDC_E_FORMAT, "PEM chain: unexpected PEM headers",
			       "block %zu", index);
	} else if (dlen <= 0) {
		rc = TDC_FAILF(e, TDC_E_FORMAT, "PEM chain: empty PEM block", "block %zu", index);
	} else {
		rc = tdc_x509_from_der(data, (size_t)dlen, out, e);
	}
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	return rc;
}

int tdc_pem_chain_parse(const uint8_t *pem, size_t len, size_t expected, STACK_OF(X509) **out,
			struct tdc_error *e)
{
	if (!pem || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "PEM chain: bad argument");
	*out = NULL;
	if (len > TDC_MAX_CHAIN_PEM)
		return TDC_FAILF(e, TDC_E_LIMIT, "PEM chain: too large", "%zu bytes, limit %u", len,
				 TDC_MAX_CHAIN_PEM);
	size_t max = expected > 0 ? expected : TDC_MAX_CHAIN_CERTS;
	if (max > TDC_MAX_CHAIN_CERTS)
		return TDC_FAILF(e, TDC_E_LIMIT, "PEM chain: too many certificates expected",
				 "%zu, limit %d", expected, TDC_MAX_CHAIN_CERTS);

	/* Quotes pad the chain with NULs: trim them, then only whitespace may separate
	 * or follow the certificates. */
	struct tdc_rd r;
	tdc_rd_init(&r, pem, len);
	tdc_rd_trim_trailing(&r, 0);

	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *bio = BIO_new_mem_buf(tdc_rd_ptr(&r), (int)tdc_rd_len(&r));
	int rc = 0;
	if (!sk || !bio) {
		rc = TDC_FAIL_OSSL(e, TDC_E_NOMEM, "PEM chain: out of memory");
		goto out;
	}
	for (;;) {
		skip_space(&r);
		if (tdc_rd_remaining(&r) == 0)
			break;
		if (!tdc_rd_starts_with(&r, pem_begin, sizeof(pem_begin) - 1)) {
			rc = TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(&r),
					 "PEM chain: unexpected data", "after certificate %d",
					 sk_X509_num(sk));
			goto out;
		}
		if ((size_t)sk_X509_num(sk) >= max) {
			rc = TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(&r),
					 "PEM chain: too many certificates", "expected %s%zu",
					 expected ? "" : "at most ", max);
			goto out;
		}
		/* The BIO sits exactly where r's cursor is: both skip the same whitespace
		 * (PEM_read_bio skips it line by line, and we just checked that only
		 * whitespace precedes the BEGIN line). */
		X509 *x = NULL;
		rc = read_one(bio, (size_t)sk_X509_num(sk), &x, e);
		if (rc < 0)
			goto out;
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			rc = TDC_FAIL_OSSL(e, TDC_E_NOMEM, "PEM chain: out of memory");
			goto out;
		}
		/* Re-sync r with what the BIO consumed. */
		size_t consumed = tdc_rd_len(&r) - (size_t)BIO_pending(bio);
		size_t pos = tdc_rd_len(&r) - tdc_rd_remaining(&r);
		if (consumed < pos || tdc_rd_skip(&r, consumed - pos, "PEM chain", e) < 0) {
			rc = TDC_FAIL(e, TDC_E_INTERNAL, "PEM chain: reader out of sync");
			goto out;
		}
	}
	if (sk_X509_num(sk) == 0) {
		rc = TDC_FAIL(e, TDC_E_FORMAT, "PEM chain: no certificate");
		goto out;
	}
	if (expected > 0 && (size_t)sk_X509_num(sk) != expected) {
		rc = TDC_FAILF(e, TDC_E_FORMAT, "PEM chain: wrong number of certificates",
			       "%d, expected %zu", sk_X509_num(sk), expected);
		goto out;
	}
	*out = sk;
	sk = NULL;
out:
	BIO_free(bio);
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

/* True if a and b have the same DER encoding. */
static bool same_der(X509 *a, X509 *b)
{
	unsigned char *da = NULL, *db = NULL;
	int la = i2d_X509(a, &da), lb = i2d_X509(b, &db);
	bool same = la > 0 && la == lb && memcmp(da, db, (size_t)la) == 0;
	OPENSSL_free(da);
	OPENSSL_free(db);
	return same;
}

static void cn_of(X509 *cert, char *buf, size_t len)
{
	buf[0] = '\0';
	if (!cert || X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf,
					       (int)len) < 0)
		buf[0] = '\0';
}

/* OpenSSL verify error -> tdc_err. */
static int map_verify_error(int err)
{
	switch (err) {
	case X509_V_ERR_CERT_NOT_YET_VALID:
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_CRL_HAS_EXPIRED:
		return TDC_E_EXPIRED;
	case X509_V_ERR_CERT_REVOKED:
		return TDC_E_REVOKED;
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
	case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
	case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
	case X509_V_ERR_DIFFERENT_CRL_SCOPE:
	case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
	case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
		return TDC_E_CRL;
	default:
		return TDC_E_CHAIN;
	}
}

/* Finds the certificate (chain or root) whose subject is the CRL's issuer. */
static X509 *crl_issuer(X509_CRL *crl, X509 *root, STACK_OF(X509) *chain)
{
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);
		if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(c)) == 0)
			return c;
	}
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(root)) == 0)
		return root;
	return NULL;
}

/*
 * Explicit CRL checks before OpenSSL's: each CRL must belong to a certificate on
 * this path (so a Processor-CA CRL given for a Platform-CA chain is "CRL issuer
 * mismatch", not a vague "unable to get CRL"), be signed by it and be current.
 */
static int check_crls(X509 *root, STACK_OF(X509) *chain, X509_CRL **crls, size_t n_crls,
		      int64_t now, const char *what, struct tdc_error *e)
{
	for (size_t i = 0; i < n_crls; i++) {
		if (!crls[i])
			return TDC_FAILF(e, TDC_E_USAGE, "chain verify: NULL CRL", "%s", what);
		X509 *issuer = crl_issuer(crls[i], root, chain);
		if (!issuer) {
			char cn[128] = "";
			X509_NAME_get_text_by_NID(X509_CRL_get_issuer(crls[i]), NID_commonName, cn,
						  sizeof(cn));
			ERR_clear_error();
			return TDC_FAILF(e, TDC_E_CRL, "CRL issuer mismatch",
					 "%s: CRL %zu issued by \"%s\", not by a certificate of the chain",
					 what, i, cn);
		}
		TDC_GUARD(tdc_crl_check(crls[i], issuer, now, what, e));
	}
	return 0;
}

/*
 * Validity windows are checked here, inclusive at both ends as RFC 5280 says
 * (OpenSSL would count the notAfter second as expired); OpenSSL's own time
 * checks are then switched off, and check_crls() does the CRLs' windows.
 */
static int check_window(X509 *cert, int depth, int64_t now, const char *what,
			struct tdc_error *e)
{
	int64_t nb, na;
	TDC_GUARD(tdc_x509_window(cert, &nb, &na, e));
	if (now >= nb && now <= na)
		return 0;
	char cn[128];
	cn_of(cert, cn, sizeof(cn));
	return TDC_FAILF(e, TDC_E_EXPIRED, "certificate outside its validity window",
			 "%s: certificate %s (depth %d, CN \"%s\")", what,
			 now < nb ? "is not yet valid" : "has expired", depth, cn);
}

int tdc_chain_verify(X509 *root, STACK_OF(X509) *chain, X509_CRL **crls, size_t n_crls,
		     int64_t now, const char *what, struct tdc_error *e)
{
	if (!what)
		what = "certificate chain";
	if (!root || !chain || (n_crls && !crls))
		return TDC_FAILF(e, TDC_E_USAGE, "chain verify: bad argument", "%s", what);
	int n = sk_X509_num(chain);
	if (n <= 0)
		return TDC_FAILF(e, TDC_E_CHAIN, "empty certificate chain", "%s", what);
	if (n > TDC_MAX_CHAIN_CERTS || n_crls > TDC_MAX_CHAIN_CERTS)
		return TDC_FAILF(e, TDC_E_LIMIT, "chain verify: too many certificates or CRLs",
				 "%s: %d certificates, %zu CRLs", what, n, n_crls);

	TDC_GUARD(tdc_x509_p256_key(root, NULL, e));
	for (int i = 0; i < n; i++)
		TDC_GUARD(tdc_x509_p256_key(sk_X509_value(chain, i), NULL, e));

	/* A trailing self-signed certificate is the chain's copy of the root: it must be
	 * the pinned one, and is then dropped (the store supplies the anchor). */
	int n_untrusted = n;
	X509 *last = sk_X509_value(chain, n - 1);
	if (X509_self_signed(last, 0) == 1) {
		if (!same_der(last, root)) {
			char cn[128];
			cn_of(last, cn, sizeof(cn));
			return TDC_FAILF(e, TDC_E_CHAIN, "chain root is not the pinned root",
					 "%s: self-signed \"%s\" at depth %d", what, cn, n - 1);
		}
		n_untrusted = n - 1;
	}
	ERR_clear_error();

	for (int i = 0; i < n_untrusted; i++)
		TDC_GUARD(check_window(sk_X509_value(chain, i), i, now, what, e));
	TDC_GUARD(check_window(root, n_untrusted, now, what, e));
	TDC_GUARD(check_crls(root, chain, crls, n_crls, now, what, e));

	int rc = 0;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	STACK_OF(X509_CRL) *crl_sk = sk_X509_CRL_new_null();
	if (!store || !ctx || !untrusted || !crl_sk || X509_STORE_add_cert(store, root) != 1) {
		rc = TDC_FAIL_OSSL(e, TDC_E_NOMEM, "chain verify: out of memory");
		goto out;
	}
	for (int i = 1; i < n_untrusted; i++) {
		if (!sk_X509_push(untrusted, sk_X509_value(chain, i))) {
			rc = TDC_FAIL_OSSL(e, TDC_E_NOMEM, "chain verify: out of memory");
			goto out;
		}
	}
	for (size_t i = 0; i < n_crls; i++) {
		if (!sk_X509_CRL_push(crl_sk, crls[i])) {
			rc = TDC_FAIL_OSSL(e, TDC_E_NOMEM, "chain verify: out of memory");
			goto out;
		}
	}
	if (X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), untrusted) != 1) {
		rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "chain verify: context setup failed");
		goto out;
	}
	X509_STORE_CTX_set0_crls(ctx, crl_sk);
	X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
	unsigned long flags = X509_V_FLAG_X509_STRICT | X509_V_FLAG_NO_CHECK_TIME;
	/* With CRLs, every level needs one: the PCK chain gets the PCK CRL (leaf) and the
	 * root CA CRL (intermediate and root), the TCB signing chain the root CA CRL. */
	if (n_crls > 0)
		flags |= X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;
	X509_VERIFY_PARAM_set_flags(param, flags);
	X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
	/* No X509_VERIFY_PARAM_set_time: it would override NO_CHECK_TIME (OpenSSL
	 * tests USE_CHECK_TIME first). Every window was checked above at `now`. */
	X509_VERIFY_PARAM_set_depth(param, TDC_MAX_CHAIN_CERTS);

	if (X509_verify_cert(ctx) != 1) {
		int err = X509_STORE_CTX_get_error(ctx);
		int depth = X509_STORE_CTX_get_error_depth(ctx);
		char cn[128];
		cn_of(X509_STORE_CTX_get_current_cert(ctx), cn, sizeof(cn));
		ERR_clear_error();
		rc = TDC_FAILF(e, map_verify_error(err), "certificate chain verification failed",
			       "%s: %s (depth %d, CN \"%s\")", what,
			       X509_verify_cert_error_string(err), depth, cn);
		goto out;
	}
	/* OpenSSL ignores untrusted certificates it does not need: require that the path
	 * it built is exactly the chain given (plus the pinned root). */
	STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(ctx);
	bool exact = built && sk_X509_num(built) == n_untrusted + 1;
	for (int i = 0; exact && i < n_untrusted; i++)
		exact = X509_cmp(sk_X509_value(built, i), sk_X509_value(chain, i)) == 0;
	if (exact)
		exact = X509_cmp(sk_X509_value(built, n_untrusted), root) == 0;
	if (!exact)
		rc = TDC_FAILF(e, TDC_E_CHAIN, "chain has certificates off the verified path",
			       "%s: %d given", what, n);
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_free(untrusted);
	sk_X509_CRL_free(crl_sk);
	ERR_clear_error();
	return rc;
}
