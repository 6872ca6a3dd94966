/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ECDSA-P256-SHA256 with raw keys (0x04 || x || y) and raw r || s signatures, the
 * encoding of DCAP quotes and collateral. This is the hot path of the key broker:
 * the SHA-256 EVP_MD is fetched once and the signature is DER-encoded into a
 * stack buffer.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>

#include "util/util.h"
#include "x509/x509.h"

/* Order n of the P-256 group (SEC 2, 2.4.2): r and s must lie in [1, n-1]. */
static const uint8_t p256_order[32] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
	0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
	/* Kept for the life of the process (reachable, so not a leak). */
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static bool is_p256(const EVP_PKEY *key)
{
	char group[32];
	size_t glen = 0;

	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		return false;
	if (!EVP_PKEY_get_group_name(key, group, sizeof(group), &glen))
		return false;
	return strcmp(group, SN_X9_62_prime256v1) == 0;
}

int tdc_x509_p256_key(X509 *cert, EVP_PKEY **out, struct tdc_error *e)
{
	if (!cert)
		return TDC_FAIL(e, TDC_E_USAGE, "certificate key: bad argument");
	if (out)
		*out = NULL;
	EVP_PKEY *key = X509_get0_pubkey(cert);
	if (!key) {
		ERR_clear_error();
		return TDC_FAIL(e, TDC_E_FORMAT, "certificate key: unreadable public key");
	}
	if (!is_p256(key)) {
		char cn[128] = "";
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
					  sizeof(cn));
		ERR_clear_error();
		return TDC_FAILF(e, TDC_E_CHAIN, "certificate key is not EC P-256",
				 "subject CN \"%s\", key type %s", cn, EVP_PKEY_get0_type_name(key));
	}
	if (out) {
		if (!EVP_PKEY_up_ref(key))
			return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "certificate key: up_ref failed");
		*out = key;
	}
	return 0;
}

int tdc_p256_key_from_raw(const uint8_t xy[64], EVP_PKEY **out, struct tdc_error *e)
{
	if (!xy || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "P-256 key: bad argument");
	*out = NULL;

	uint8_t pub[65];
	pub[0] = 0x04; /* uncompressed point */
	memcpy(pub + 1, xy, 64);
	char group[] = SN_X9_62_prime256v1;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)),
		OSSL_PARAM_construct_end(),
	};

	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!ctx)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "P-256 key: no EC implementation");
	EVP_PKEY *key = NULL;
	int ok = EVP_PKEY_fromdata_init(ctx) == 1 &&
		 EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
	EVP_PKEY_CTX_free(ctx);
	if (!ok) {
		/* fromdata decodes the point with EC_POINT_oct2point, which refuses a point
		 * that is not on the curve (and coordinates >= p); infinity has no
		 * uncompressed form and the cofactor of P-256 is 1, so that is the whole
		 * public key check. An extra EVP_PKEY_public_check_quick would cost about
		 * 10% of a verification on this hot path for nothing (tests cover it). */
		EVP_PKEY_free(key);
		return TDC_FAIL_OSSL(e, TDC_E_FORMAT, "attestation key is not a valid P-256 point");
	}
	*out = key;
	return 0;
}

/* True if the 32-byte big-endian scalar is in [1, n-1]. */
static bool scalar_in_range(const uint8_t v[32])
{
	return !tdc_all_zero(v, 32) && memcmp(v, p256_order, 32) < 0;
}

int tdc_ecdsa_p256_verify(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t sig[64],
			  const char *what, struct tdc_error *e)
{
	if (!what)
		what = "ECDSA";
	if (!key || (!msg && len) || !sig)
		return TDC_FAILF(e, TDC_E_USAGE, "ECDSA verify: bad argument", "%s", what);
	if (!scalar_in_range(sig) || !scalar_in_range(sig + 32))
		return TDC_FAILF(e, TDC_E_SIGNATURE, "ECDSA-P256 verification failed",
				 "%s signature invalid: r or s is zero or not below the group order",
				 what);

	pthread_once(&sha256_once, sha256_fetch);
	if (!sha256_md)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "ECDSA verify: SHA-256 unavailable");

	/* DER of ECDSA-Sig-Value for P-256 is at most 72 bytes. */
	uint8_t der[80];
	int der_len = -1;
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL);
	BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL);
	if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
		r = s = NULL; /* owned by es now */
		if (i2d_ECDSA_SIG(es, NULL) <= (int)sizeof(der)) {
			unsigned char *p = der;
			der_len = i2d_ECDSA_SIG(es, &p);
		}
	}
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	if (der_len <= 0)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "ECDSA verify: cannot encode signature");

	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	if (!mctx)
		return TDC_FAIL_OSSL(e, TDC_E_NOMEM, "ECDSA verify: out of memory");
	int rc = -1;
	if (EVP_DigestVerifyInit(mctx, NULL, sha256_md, NULL, key) == 1)
		rc = EVP_DigestVerify(mctx, der, (size_t)der_len, msg, len);
	EVP_MD_CTX_free(mctx);
	if (rc == 1)
		return 0;

	unsigned long oe = ERR_peek_error();
	char obuf[120] = "";
	if (oe)
		ERR_error_string_n(oe, obuf, sizeof(obuf));
	ERR_clear_error();
	if (rc == 0 || !oe)
		return TDC_FAILF(e, TDC_E_SIGNATURE, "ECDSA-P256 verification failed", "%s signature invalid",
				 what);
	return TDC_FAILF(e, TDC_E_SIGNATURE, "ECDSA-P256 verification failed", "%s signature invalid (%s)",
			 what, obuf);
}
