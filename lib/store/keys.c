/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The master key file and secret sealing. The master key is never used
 * directly: HKDF derives the sealing key, so the same file can later key
 * other purposes without reuse. Sealing is AES-256-GCM, fresh 96-bit random
 * nonce per write, AAD = domain tag || NUL || secret ID.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "store/store-int.h"
#include "util/rd.h"

static const char seal_info[] = "tdcrypt store secret sealing key v1";
static const char aad_tag[] = "tdcrypt/secret/v1";

int tdc_store_master_key_create(const char *path, struct tdc_error *e)
{
	if (!path)
		return TDC_FAIL(e, TDC_E_USAGE, "no master key path");
	uint8_t key[TDC_STORE_MASTER_KEY_SIZE];
	if (RAND_priv_bytes(key, sizeof(key)) != 1)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot generate the master key");
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		OPENSSL_cleanse(key, sizeof(key));
		return TDC_FAILF(e, TDC_E_IO, "cannot create the master key file", "%s: %s", path,
				 strerror(errno));
	}
	int r = 0;
	size_t done = 0;
	while (done < sizeof(key)) {
		ssize_t n = write(fd, key + done, sizeof(key) - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = TDC_FAILF(e, TDC_E_IO, "cannot write the master key file", "%s: %s",
				      path, strerror(errno));
			break;
		}
		done += (size_t)n;
	}
	OPENSSL_cleanse(key, sizeof(key));
	if (r == 0 && fsync(fd) < 0)
		r = TDC_FAILF(e, TDC_E_IO, "cannot sync the master key file", "%s: %s", path,
			      strerror(errno));
	close(fd);
	if (r < 0)
		unlink(path);
	return r;
}

static int read_master(const char *path, struct tdc_secret *mk, struct tdc_error *e)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot open the master key file", "%s: %s", path,
				 strerror(errno));
	struct stat st;
	int r = 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		r = TDC_FAILF(e, TDC_E_IO, "master key is not a regular file", "%s", path);
	else if (st.st_mode & (S_IRWXG | S_IRWXO))
		r = TDC_FAILF(e, TDC_E_USAGE, "master key file is accessible by group or others",
			      "%s: mode %03o, expected 0600", path, (unsigned)(st.st_mode & 0777));
	else if (st.st_uid != geteuid() && st.st_uid != 0)
		r = TDC_FAILF(e, TDC_E_USAGE, "master key file has a foreign owner",
			      "%s: uid %u", path, (unsigned)st.st_uid);
	else if (st.st_size != TDC_STORE_MASTER_KEY_SIZE)
		r = TDC_FAILF(e, TDC_E_FORMAT, "master key file has the wrong size",
			      "%s: %lld bytes, expected %d", path, (long long)st.st_size,
			      TDC_STORE_MASTER_KEY_SIZE);
	if (r == 0)
		r = tdc_secret_alloc(TDC_STORE_MASTER_KEY_SIZE, mk, e);
	size_t done = 0;
	while (r == 0 && done < mk->len) {
		ssize_t n = read(fd, mk->data + done, mk->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = TDC_FAILF(e, TDC_E_IO, "short read of the master key file", "%s", path);
		else
			done += (size_t)n;
	}
	close(fd);
	if (r < 0)
		tdc_secret_free(mk);
	return r;
}

int tdc_store_load_key(const char *path, struct tdc_secret *seal_key, struct tdc_error *e)
{
	if (!path)
		return TDC_FAIL(e, TDC_E_USAGE, "no master key path");
	struct tdc_secret mk = { 0 };
	TDC_GUARD(read_master(path, &mk, e));
	int r = tdc_secret_alloc(32, seal_key, e);
	EVP_KDF *kdf = r == 0 ? EVP_KDF_fetch(NULL, "HKDF", NULL) : NULL;
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (r == 0) {
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, mk.data, mk.len),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)seal_info,
							  sizeof(seal_info) - 1),
			OSSL_PARAM_construct_end(),
		};
		if (!kctx || EVP_KDF_derive(kctx, seal_key->data, seal_key->len, params) != 1)
			r = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot derive the sealing key");
	}
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	tdc_secret_free(&mk);
	if (r < 0)
		tdc_secret_free(seal_key);
	return r;
}

/* Feeds the AAD: tag || NUL || id. */
static int aad(EVP_CIPHER_CTX *c, const char *id, bool enc)
{
	int n;
	int (*up)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int) =
		enc ? EVP_EncryptUpdate : EVP_DecryptUpdate;
	return up(c, NULL, &n, (const unsigned char *)aad_tag, sizeof(aad_tag)) == 1 &&
	       up(c, NULL, &n, (const unsigned char *)id, (int)strlen(id)) == 1;
}

int tdc_store_seal(const struct tdc_secret *key, const char *id, const uint8_t *pt, size_t len,
		   uint8_t nonce[TDC_GCM_NONCE_SIZE], uint8_t **ct, size_t *ct_len,
		   struct tdc_error *e)
{
	*ct = NULL;
	*ct_len = 0;
	if (len == 0 || len > TDC_MAX_SECRET_SIZE)
		return TDC_FAILF(e, TDC_E_LIMIT, "bad secret size", "%zu bytes, allowed 1..%u", len,
				 TDC_MAX_SECRET_SIZE);
	if (RAND_bytes(nonce, TDC_GCM_NONCE_SIZE) != 1)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot generate a nonce");
	uint8_t *out = malloc(len + TDC_GCM_TAG_SIZE);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0;
	bool ok = out && c &&
		  EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key->data, nonce) == 1 &&
		  aad(c, id, true) && EVP_EncryptUpdate(c, out, &n, pt, (int)len) == 1 &&
		  EVP_EncryptFinal_ex(c, out + n, &fin) == 1 && (size_t)(n + fin) == len &&
		  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TDC_GCM_TAG_SIZE, out + len) == 1;
	EVP_CIPHER_CTX_free(c);
	if (!ok) {
		free(out);
		return out ? TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "secret encryption failed")
			   : TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	*ct = out;
	*ct_len = len + TDC_GCM_TAG_SIZE;
	return 0;
}

int tdc_store_unseal(const struct tdc_secret *key, const char *id, const uint8_t *nonce,
		     size_t nonce_len, const uint8_t *ct, size_t ct_len, struct tdc_secret *out,
		     struct tdc_error *e)
{
	if (nonce_len != TDC_GCM_NONCE_SIZE || ct_len <= TDC_GCM_TAG_SIZE ||
	    ct_len > TDC_MAX_SECRET_SIZE + TDC_GCM_TAG_SIZE)
		return TDC_FAILF(e, TDC_E_FORMAT, "corrupt secret record",
				 "%s: nonce %zu bytes, ciphertext %zu bytes", id, nonce_len, ct_len);
	size_t len = ct_len - TDC_GCM_TAG_SIZE;
	struct tdc_rd rd, body, tag;
	tdc_rd_init(&rd, ct, ct_len);
	TDC_GUARD(tdc_rd_sub(&rd, len, &body, "secret.ciphertext", e));
	TDC_GUARD(tdc_rd_sub(&rd, TDC_GCM_TAG_SIZE, &tag, "secret.tag", e));
	TDC_GUARD(tdc_secret_alloc(len, out, e));
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c) {
		tdc_secret_free(out);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	int n = 0, fin = 0, r = 0;
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key->data, nonce) != 1 ||
	    !aad(c, id, false) || EVP_DecryptUpdate(c, out->data, &n, tdc_rd_ptr(&body), (int)len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TDC_GCM_TAG_SIZE,
				(void *)tdc_rd_ptr(&tag)) != 1)
		r = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "secret decryption failed");
	else if (EVP_DecryptFinal_ex(c, out->data + n, &fin) != 1)
		r = TDC_FAILF(e, TDC_E_SIGNATURE, "secret authentication failed",
			      "%s: wrong master key, or the stored ciphertext was modified", id);
	EVP_CIPHER_CTX_free(c);
	if (r < 0)
		tdc_secret_free(out);
	return r;
}
