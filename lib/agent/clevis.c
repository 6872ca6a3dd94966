/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The clevis pin "tdcrypt" (docs/ARCHITECTURE.md, "The clevis pin"). clevis hands the pin
 * a plaintext (the passphrase of a new LUKS keyslot) and stores what the pin returns, a
 * compact JWE, in the LUKS2 header; unlocking hands the JWE back. The JWE's key comes
 * from a tdcrypt secret that the broker releases only to an attested TD:
 *
 *   CEK = HKDF-SHA256(ikm = the secret, salt = 32 random bytes, info = TDC_CLEVIS_INFO)
 *   JWE = {"alg":"dir","enc":"A256GCM","clevis":{"pin":"tdcrypt","tdcrypt":{broker, pin,
 *          secret, salt}}} with AES-256-GCM over the plaintext (AAD: the encoded header)
 *
 * The header is readable by anyone holding the disk: it names where the key is (broker
 * addresses, their SPKI pins, the secret's ID, the salt) and nothing that opens it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "agent-int.h"
#include "util/json.h"
#include "util/rd.h"
#include "util/util.h"

#define SALT_LEN 32
#define IV_LEN 12
#define TAG_LEN 16
#define CEK_LEN 32

/* ---- base64url (RFC 7515 §2: no padding) ---- */

static char *b64url(const uint8_t *in, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	if (!out)
		return NULL;
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = 0;
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	return out;
}

/* Strict: the alphabet of base64url, no padding, canonical (through tdc_base64_decode). */
static int unb64url(struct tdc_rd *in, uint8_t *out, size_t cap, size_t *len, const char *what,
		    struct tdc_error *e)
{
	size_t n = tdc_rd_remaining(in);
	if (n % 4 == 1 || n > 4 * (cap / 3 + 1))
		return TDC_FAILF(e, TDC_E_FORMAT, "bad base64url", "%s", what);
	char *std = malloc(n + 3);
	if (!std)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		uint8_t c = tdc_rd_at(in, i);
		if (c == '+' || c == '/' || c == '=') {
			free(std);
			return TDC_FAILF(e, TDC_E_FORMAT, "bad base64url", "%s", what);
		}
		std[i] = c == '-' ? '+' : c == '_' ? '/' : (char)c;
	}
	size_t m = n;
	while (m % 4)
		std[m++] = '=';
	int rc = tdc_base64_decode(std, m, out, cap, len, e);
	free(std);
	return rc < 0 ? TDC_FAILF(e, TDC_E_FORMAT, "bad base64url", "%s", what) : 0;
}

/* ---- the pin's configuration, and the same members in the JWE header ---- */

/* A string, or an array of 1..max strings. */
static int str_list(json_object *o, const char *key, size_t max, json_object **items, size_t *n,
		    struct tdc_error *e)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return TDC_FAILF(e, TDC_E_FORMAT, "missing member", "\"%s\"", key);
	if (json_object_is_type(v, json_type_string)) {
		items[0] = v;
		*n = 1;
		return 0;
	}
	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0 ||
	    json_object_array_length(v) > max)
		return TDC_FAILF(e, TDC_E_FORMAT, "must be a string or 1-8 strings", "\"%s\"", key);
	*n = json_object_array_length(v);
	for (size_t i = 0; i < *n; i++) {
		items[i] = json_object_array_get_idx(v, i);
		if (!json_object_is_type(items[i], json_type_string))
			return TDC_FAILF(e, TDC_E_FORMAT, "not a string", "\"%s\"[%zu]", key, i);
	}
	return 0;
}

/* broker, pin, secret (and salt, in a header) into c. */
static int parse_members(json_object *o, bool header, struct tdc_agent_config *c,
			 uint8_t salt[SALT_LEN], struct tdc_error *e)
{
	json_object *items[TDC_AGENT_MAX_BROKERS > TDC_AGENT_MAX_PINS ? TDC_AGENT_MAX_BROKERS
								       : TDC_AGENT_MAX_PINS];
	size_t n;
	const char *s;
	size_t len;
	json_object_object_foreach (o, key, val) {
		(void)val;
		if (strcmp(key, "broker") && strcmp(key, "pin") && strcmp(key, "secret") &&
		    (!header || strcmp(key, "salt")))
			return TDC_FAILF(e, TDC_E_FORMAT, "unknown member", "\"%s\" (%s)", key,
					 header ? "JWE header" : "broker, pin, secret");
	}
	TDC_GUARD(str_list(o, "broker", TDC_AGENT_MAX_BROKERS, items, &n, e));
	for (size_t i = 0; i < n; i++)
		TDC_GUARD(tdc_agent_broker_parse(json_object_get_string(items[i]),
						 (size_t)json_object_get_string_len(items[i]),
						 &c->brokers[i], e));
	c->n_brokers = n;
	/* no CA alternative: a file named by the disk would be the disk's to choose */
	TDC_GUARD(str_list(o, "pin", TDC_AGENT_MAX_PINS, items, &n, e));
	for (size_t i = 0; i < n; i++)
		TDC_GUARD(tdc_hex_decode(json_object_get_string(items[i]),
					 (size_t)json_object_get_string_len(items[i]), c->pins[i],
					 32, "pin (SHA-256 of the broker's SPKI, 64 hex)", e));
	c->n_pins = n;
	TDC_GUARD(tdc_json_str(o, NULL, "secret", TDC_AGENT_SECRET_ID_MAX, &s, &len, e));
	if (!tdc_agent_secret_id_ok(s, len))
		return TDC_FAIL(e, TDC_E_FORMAT,
				"secret: 1-64 of [A-Za-z0-9._-], not starting with '.'");
	memcpy(c->secret_id, s, len + 1);
	if (header) {
		struct tdc_rd r;
		size_t got = 0;
		uint8_t tmp[SALT_LEN + 3];
		TDC_GUARD(tdc_json_str(o, NULL, "salt", 64, &s, &len, e));
		tdc_rd_init(&r, s, len);
		TDC_GUARD(unb64url(&r, tmp, sizeof(tmp), &got, "salt", e));
		if (got != SALT_LEN)
			return TDC_FAIL(e, TDC_E_FORMAT, "salt: not 32 bytes");
		memcpy(salt, tmp, SALT_LEN);
	}
	return 0;
}

int tdc_clevis_config_parse(const char *json, size_t len, struct tdc_agent_config *c,
			    struct tdc_error *e)
{
	json_object *o;
	TDC_GUARD(tdc_json_parse_object_depth((const uint8_t *)json, len, TDC_CLEVIS_MAX_HEADER,
					      3, "clevis tdcrypt config", &o, e));
	int rc = parse_members(o, false, c, NULL, e);
	json_object_put(o);
	return rc;
}

static json_object *broker_json(const struct tdc_agent_broker *b)
{
	char s[TDC_AGENT_HOST_MAX + 16];
	snprintf(s, sizeof(s), strchr(b->host, ':') ? "[%s]:%u" : "%s:%u", b->host, b->port);
	return json_object_new_string(s);
}

static char *header_b64(const struct tdc_agent_config *c, const uint8_t salt[SALT_LEN])
{
	json_object *h = json_object_new_object(), *cl = json_object_new_object(),
		    *t = json_object_new_object(), *br = json_object_new_array(),
		    *pins = json_object_new_array();
	char hex[65], *salt64 = b64url(salt, SALT_LEN), *out = NULL;
	bool ok = h && cl && t && br && pins && salt64;
	for (size_t i = 0; ok && i < c->n_brokers; i++)
		ok = json_object_array_add(br, broker_json(&c->brokers[i])) == 0;
	for (size_t i = 0; ok && i < c->n_pins; i++)
		ok = json_object_array_add(pins, json_object_new_string(
							 tdc_hex_encode(c->pins[i], 32, hex))) == 0;
	ok = ok && tdc_json_add(t, "broker", br) == 0;
	br = NULL;
	ok = ok && tdc_json_add(t, "pin", pins) == 0;
	pins = NULL;
	ok = ok && tdc_json_add(t, "secret", json_object_new_string(c->secret_id)) == 0 &&
	     tdc_json_add(t, "salt", json_object_new_string(salt64)) == 0 &&
	     tdc_json_add(cl, "pin", json_object_new_string("tdcrypt")) == 0 &&
	     tdc_json_add(cl, "tdcrypt", t) == 0;
	t = NULL;
	ok = ok && tdc_json_add(h, "alg", json_object_new_string("dir")) == 0 &&
	     tdc_json_add(h, "enc", json_object_new_string("A256GCM")) == 0 &&
	     tdc_json_add(h, "clevis", cl) == 0;
	cl = NULL;
	if (ok) {
		const char *js = json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN);
		out = b64url((const uint8_t *)js, strlen(js));
	}
	json_object_put(h);
	json_object_put(cl);
	json_object_put(t);
	json_object_put(br);
	json_object_put(pins);
	free(salt64);
	return out;
}

static int derive(const uint8_t *key, size_t key_len, const uint8_t salt[SALT_LEN],
		  uint8_t cek[CEK_LEN], struct tdc_error *e)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *k = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, SALT_LEN),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)TDC_CLEVIS_INFO,
						  strlen(TDC_CLEVIS_INFO)),
		OSSL_PARAM_construct_end(),
	};
	int ok = k && key_len >= 16 && EVP_KDF_derive(k, cek, CEK_LEN, p) == 1;
	EVP_KDF_CTX_free(k);
	EVP_KDF_free(kdf);
	if (!ok)
		return TDC_FAIL(e, key_len < 16 ? TDC_E_USAGE : TDC_E_CRYPTO,
				key_len < 16 ? "the secret is shorter than 16 bytes"
					     : "HKDF failed");
	return 0;
}

/* AES-256-GCM one way or the other; tag in/out. */
static int gcm(bool enc, const uint8_t cek[CEK_LEN], const uint8_t iv[IV_LEN], const char *aad,
	       const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[TAG_LEN])
{
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	int l = 0, l2 = 0;
	int ok = x && EVP_CipherInit_ex(x, EVP_aes_256_gcm(), NULL, cek, iv, enc) == 1 &&
		 EVP_CipherUpdate(x, NULL, &l, (const uint8_t *)aad, (int)strlen(aad)) == 1 &&
		 (n == 0 || EVP_CipherUpdate(x, out, &l, in, (int)n) == 1) &&
		 (enc || EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1) &&
		 EVP_CipherFinal_ex(x, out + (n ? l : 0), &l2) == 1 &&
		 (!enc || EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1);
	EVP_CIPHER_CTX_free(x);
	return ok ? 0 : -1;
}

int tdc_clevis_encrypt(const struct tdc_agent_config *c, const uint8_t *key, size_t key_len,
		       const uint8_t *pt, size_t pt_len, char **jwe, struct tdc_error *e)
{
	uint8_t salt[SALT_LEN], iv[IV_LEN], tag[TAG_LEN], cek[CEK_LEN];
	uint8_t *ct = NULL;
	char *hdr = NULL, *iv64 = NULL, *ct64 = NULL, *tag64 = NULL;
	int rc = 0;
	*jwe = NULL;
	if (pt_len == 0 || pt_len > TDC_CLEVIS_MAX_PLAINTEXT)
		return TDC_FAIL(e, TDC_E_LIMIT, "plaintext: 1 to 16 KiB");
	if (RAND_bytes(salt, sizeof(salt)) != 1 || RAND_bytes(iv, sizeof(iv)) != 1)
		return TDC_FAIL(e, TDC_E_CRYPTO, "no random bytes");
	TDC_GUARD(derive(key, key_len, salt, cek, e));
	if (!(hdr = header_b64(c, salt)) || !(ct = malloc(pt_len))) {
		rc = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		goto out;
	}
	if (gcm(true, cek, iv, hdr, pt, pt_len, ct, tag) < 0) {
		rc = TDC_FAIL(e, TDC_E_CRYPTO, "AES-256-GCM failed");
		goto out;
	}
	iv64 = b64url(iv, IV_LEN);
	ct64 = b64url(ct, pt_len);
	tag64 = b64url(tag, TAG_LEN);
	size_t n = strlen(hdr) + (iv64 ? strlen(iv64) : 0) + (ct64 ? strlen(ct64) : 0) +
		   (tag64 ? strlen(tag64) : 0) + 5;
	if (!iv64 || !ct64 || !tag64 || !(*jwe = malloc(n))) {
		rc = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		goto out;
	}
	/* compact serialization; "dir": the encrypted key is empty */
	snprintf(*jwe, n, "%s..%s.%s.%s", hdr, iv64, ct64, tag64);
out:
	OPENSSL_cleanse(cek, sizeof(cek));
	free(ct);
	free(hdr);
	free(iv64);
	free(ct64);
	free(tag64);
	return rc;
}

/* The five parts of a compact JWE, as views of the input. */
struct parts {
	struct tdc_rd p[5];
};

static int split(const char *jwe, size_t len, struct parts *out, struct tdc_error *e)
{
	struct tdc_rd r;
	if (len > TDC_CLEVIS_MAX_JWE)
		return TDC_FAIL(e, TDC_E_LIMIT, "JWE too large");
	tdc_rd_init(&r, jwe, len);
	tdc_rd_trim_trailing(&r, '\n');
	for (int i = 0; i < 5; i++) {
		size_t pos;
		if (i < 4) {
			if (!tdc_rd_find(&r, ".", 1, &pos))
				return TDC_FAIL(e, TDC_E_FORMAT, "not a compact JWE (5 parts)");
			TDC_GUARD(tdc_rd_sub(&r, pos, &out->p[i], "JWE part", e));
			TDC_GUARD(tdc_rd_skip(&r, 1, "JWE dot", e));
		} else {
			tdc_rd_rest(&r, &out->p[4]);
			if (tdc_rd_find(&out->p[4], ".", 1, &pos))
				return TDC_FAIL(e, TDC_E_FORMAT, "not a compact JWE (5 parts)");
		}
	}
	return 0;
}

/* The protected header: alg dir, enc A256GCM, clevis.pin "tdcrypt", its members. */
static int header_of(const struct tdc_rd *p0, struct tdc_agent_config *c, uint8_t salt[SALT_LEN],
		     struct tdc_error *e)
{
	struct tdc_rd r = *p0;
	uint8_t *hj = NULL;
	size_t hlen = 0;
	json_object *h = NULL, *cl, *t, *v;
	int rc;
	if (!(hj = malloc(TDC_CLEVIS_MAX_HEADER)))
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if ((rc = unb64url(&r, hj, TDC_CLEVIS_MAX_HEADER, &hlen, "JWE header", e)) < 0 ||
	    (rc = tdc_json_parse_object_depth(hj, hlen, TDC_CLEVIS_MAX_HEADER, 5, "JWE header", &h,
					      e)) < 0)
		goto out;
	if (!json_object_object_get_ex(h, "alg", &v) || strcmp(json_object_get_string(v), "dir") ||
	    !json_object_object_get_ex(h, "enc", &v) ||
	    strcmp(json_object_get_string(v), "A256GCM")) {
		rc = TDC_FAIL(e, TDC_E_FORMAT, "JWE header: not alg dir, enc A256GCM");
		goto out;
	}
	if (!json_object_object_get_ex(h, "clevis", &cl) ||
	    !json_object_object_get_ex(cl, "pin", &v) ||
	    strcmp(json_object_get_string(v), "tdcrypt") ||
	    !json_object_object_get_ex(cl, "tdcrypt", &t) ||
	    !json_object_is_type(t, json_type_object)) {
		rc = TDC_FAIL(e, TDC_E_FORMAT, "JWE header: not a clevis tdcrypt pin");
		goto out;
	}
	rc = parse_members(t, true, c, salt, e);
out:
	json_object_put(h);
	free(hj);
	return rc;
}

int tdc_clevis_header(const char *jwe, size_t len, struct tdc_agent_config *c,
		      struct tdc_error *e)
{
	struct parts ps;
	uint8_t salt[SALT_LEN];
	TDC_GUARD(split(jwe, len, &ps, e));
	return header_of(&ps.p[0], c, salt, e);
}

int tdc_clevis_decrypt(const char *jwe, size_t len, const uint8_t *key, size_t key_len,
		       struct tdc_secret *pt, struct tdc_error *e)
{
	struct parts ps;
	struct tdc_agent_config hc;
	uint8_t salt[SALT_LEN], iv[IV_LEN + 3], tag[TAG_LEN + 3], cek[CEK_LEN];
	uint8_t *ct = NULL;
	char *aad = NULL;
	size_t n = 0, ivl = 0, tagl = 0;
	int rc;

	memset(pt, 0, sizeof(*pt));
	tdc_agent_config_defaults(&hc);
	TDC_GUARD(split(jwe, len, &ps, e));
	/* the salt from the header that is also the AAD: what is decrypted is what is
	 * authenticated */
	TDC_GUARD(header_of(&ps.p[0], &hc, salt, e));
	if (!tdc_rd_empty(&ps.p[1]))
		return TDC_FAIL(e, TDC_E_FORMAT, "JWE: alg dir has no encrypted key");
	if ((rc = unb64url(&ps.p[2], iv, sizeof(iv), &ivl, "JWE iv", e)) < 0 ||
	    (rc = unb64url(&ps.p[4], tag, sizeof(tag), &tagl, "JWE tag", e)) < 0)
		return rc;
	if (ivl != IV_LEN || tagl != TAG_LEN)
		return TDC_FAIL(e, TDC_E_FORMAT, "JWE: iv of 12 bytes and tag of 16 bytes");
	size_t cap = tdc_rd_remaining(&ps.p[3]) / 4 * 3 + 3;
	if (!(ct = malloc(cap)) || !(aad = malloc(tdc_rd_remaining(&ps.p[0]) + 1))) {
		rc = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = unb64url(&ps.p[3], ct, cap, &n, "JWE ciphertext", e)) < 0)
		goto out;
	if (n == 0 || n > TDC_CLEVIS_MAX_PLAINTEXT) {
		rc = TDC_FAIL(e, TDC_E_LIMIT, "JWE ciphertext: 1 to 16 KiB");
		goto out;
	}
	if ((rc = tdc_rd_copy(&ps.p[0], aad, tdc_rd_remaining(&ps.p[0]), "JWE header", e)) < 0)
		goto out;
	aad[tdc_rd_len(&ps.p[0])] = 0;
	if ((rc = derive(key, key_len, salt, cek, e)) < 0 ||
	    (rc = tdc_secret_alloc(n, pt, e)) < 0)
		goto out;
	if (gcm(false, cek, iv, aad, ct, n, pt->data, tag) < 0) {
		tdc_secret_free(pt);
		rc = TDC_FAIL(e, TDC_E_CRYPTO,
			      "the JWE does not open with this secret (wrong secret or altered JWE)");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(cek, sizeof(cek));
	free(ct);
	free(aad);
	tdc_agent_config_free(&hc);
	return rc;
}
