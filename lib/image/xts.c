/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "image/xts.h"

struct tdc_xts {
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
};

void tdc_xts_free(struct tdc_xts *x)
{
	if (!x)
		return;
	EVP_CIPHER_CTX_free(x->enc); /* frees and cleanses the key schedule */
	EVP_CIPHER_CTX_free(x->dec);
	free(x);
}

int tdc_xts_new(struct tdc_xts **out, const uint8_t key[TDC_XTS_KEY_LEN], struct tdc_error *e)
{
	struct tdc_xts *x;

	if (!out || !key)
		return TDC_FAIL(e, TDC_E_USAGE, "xts: missing argument");
	*out = NULL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return TDC_FAIL(e, TDC_E_NOMEM, "xts: out of memory");
	x->enc = EVP_CIPHER_CTX_new();
	x->dec = EVP_CIPHER_CTX_new();
	/* OpenSSL refuses XTS keys whose halves are equal; that is the caller's bad key. */
	if (!x->enc || !x->dec ||
	    EVP_CipherInit_ex(x->enc, EVP_aes_256_xts(), NULL, key, NULL, 1) != 1 ||
	    EVP_CipherInit_ex(x->dec, EVP_aes_256_xts(), NULL, key, NULL, 0) != 1) {
		tdc_xts_free(x);
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "xts: key setup failed");
	}
	*out = x;
	return 0;
}

static int xts_run(EVP_CIPHER_CTX *c, uint8_t *buf, size_t n, uint64_t first, struct tdc_error *e)
{
	if (!c || (!buf && n))
		return TDC_FAIL(e, TDC_E_USAGE, "xts: missing argument");
	/* the 512-byte-unit tweak of the last sector must not wrap */
	if (n && (first > (UINT64_MAX / 8) - n))
		return TDC_FAIL(e, TDC_E_USAGE, "xts: sector number out of range");
	for (size_t i = 0; i < n; i++) {
		uint8_t iv[16] = { 0 };
		uint64_t t = (first + i) * (TDC_XTS_SECTOR / 512u);
		int len = 0;

		for (int k = 0; k < 8; k++)
			iv[k] = (uint8_t)(t >> (8 * k));
		/* NULL cipher and key: keep the schedule, set only the tweak */
		if (EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, -1) != 1 ||
		    EVP_CipherUpdate(c, buf + i * TDC_XTS_SECTOR, &len, buf + i * TDC_XTS_SECTOR,
				     (int)TDC_XTS_SECTOR) != 1 ||
		    len != (int)TDC_XTS_SECTOR)
			return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "xts: cipher failed");
	}
	return 0;
}

int tdc_xts_encrypt(struct tdc_xts *x, uint8_t *buf, size_t n, uint64_t first, struct tdc_error *e)
{
	return xts_run(x ? x->enc : NULL, buf, n, first, e);
}

int tdc_xts_decrypt(struct tdc_xts *x, uint8_t *buf, size_t n, uint64_t first, struct tdc_error *e)
{
	return xts_run(x ? x->dec : NULL, buf, n, first, e);
}
