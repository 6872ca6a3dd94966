/* SPDX-License-Identifier: Apache-2.0 */
/* RA-TLS evidence extension and certificate (docs/PROTOCOL.md §3-5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "foreign-certs.h"
#include "ratls/cbor.h"
#include "tdcrypt/ratls.h"
#include "util/util.h"

#define NOW 1750000000 /* fixed, injected */
#define REPORT_DATA_OFF (48 + 520) /* v4 quote: header + TD report offset of REPORTDATA */

/* A TDX quote header's first 8 bytes (version 4, ECDSA P-256, TEE type 0x81), which the
 * parser checks before the claims (PROTOCOL.md §4.5), and no quote after them. */
static const uint8_t fake_quote[] = "\x04\x00\x02\x00\x81\x00\x00\x00not-a-quote";

/* The v1 claims-buffer for pubkey-hash 00 01 .. 1f (PROTOCOL.md §4.3). */
static const uint8_t claims_vector[98] = {
	0xa3,
	0x6b, 'p', 'u', 'b', 'k', 'e', 'y', '-', 'h', 'a', 's', 'h',
	0x58, 0x24, 0x82, 0x01, 0x58, 0x20,
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
	0x6e, 't', 'd', 'c', 'r', 'y', 'p', 't', '-', 'd', 'o', 'm', 'a', 'i', 'n',
	0x4d, 't', 'd', 'c', 'r', 'y', 'p', 't', '-', 'r', 'a', 't', 'l', 's',
	0x6f, 't', 'd', 'c', 'r', 'y', 'p', 't', '-', 'v', 'e', 'r', 's', 'i', 'o', 'n',
	0x41, 0x01,
};

static void vector_claims(struct tdc_ratls_claims *c)
{
	memset(c, 0, sizeof(*c));
	c->hash_alg = TDC_RATLS_SHA256;
	c->pubkey_hash_len = 32;
	for (int i = 0; i < 32; i++)
		c->pubkey_hash[i] = (uint8_t)i;
	memcpy(c->domain, TDC_RATLS_DOMAIN, 13);
	c->domain_len = 13;
	c->version = TDC_RATLS_VERSION;
}

/* ---- builders for hand-made CBOR ---- */

static void kv(struct tdc_wr *w, const char *key, const void *val, size_t n)
{
	tdc_cbor_put_tstr(w, key);
	tdc_cbor_put_bstr(w, val, n);
}

static void kv_hash(struct tdc_wr *w, unsigned alg, size_t hlen)
{
	uint8_t h[80] = { 0 };
	struct tdc_wr v;
	uint8_t vb[100];
	tdc_wr_init_fixed(&v, vb, sizeof(vb));
	tdc_cbor_put_head(&v, TDC_CBOR_ARRAY, 2);
	tdc_cbor_put_head(&v, TDC_CBOR_UINT, alg);
	tdc_cbor_put_bstr(&v, h, hlen);
	kv(w, "pubkey-hash", vb, tdc_wr_len(&v));
}

static void kv_domain(struct tdc_wr *w)
{
	kv(w, "tdcrypt-domain", TDC_RATLS_DOMAIN, 13);
}

static void kv_version(struct tdc_wr *w)
{
	const uint8_t one = 1;
	kv(w, "tdcrypt-version", &one, 1);
}

/* tag(60000)([bstr quote, bstr claims]) around claims bytes. */
static uint8_t *ext_around(const uint8_t *claims, size_t n, size_t *len)
{
	struct tdc_wr w;
	uint8_t *out;
	tdc_wr_init_alloc(&w, 1u << 20);
	tdc_cbor_put_head(&w, TDC_CBOR_TAG, 60000);
	tdc_cbor_put_head(&w, TDC_CBOR_ARRAY, 2);
	tdc_cbor_put_bstr(&w, fake_quote, sizeof(fake_quote));
	tdc_cbor_put_bstr(&w, claims, n);
	assert_int_equal(tdc_wr_finish(&w, &out, len, NULL), 0);
	return out;
}

static uint8_t *ext_of_writer(struct tdc_wr *cw, size_t *len)
{
	assert_int_equal(tdc_wr_error(cw), 0);
	return ext_around(tdc_wr_data(cw), tdc_wr_len(cw), len);
}

/* Parses buf and expects code at offset (TDC_NO_OFFSET: do not check). */
static void expect_parse(const uint8_t *buf, size_t len, int code, size_t offset)
{
	struct tdc_ratls_evidence ev;
	struct tdc_error e;
	tdc_error_clear(&e);
	int r = tdc_ratls_ext_parse(buf, len, &ev, &e);
	if (r != code) {
		char msg[512];
		print_error("parse returned %d (%s), expected %d\n", r, tdc_error_format(&e, msg, sizeof(msg)),
			    code);
	}
	assert_int_equal(r, code);
	if (code)
		assert_int_equal(e.code, code);
	if (offset != TDC_NO_OFFSET)
		assert_int_equal(e.offset, offset);
}

/* ---- encoder ---- */

static void claims_encode_matches_vector(void **state)
{
	(void)state;
	struct tdc_ratls_claims c;
	uint8_t *buf;
	size_t len;
	vector_claims(&c);
	assert_int_equal(tdc_ratls_claims_encode(&c, &buf, &len, NULL), 0);
	assert_int_equal(len, sizeof(claims_vector));
	assert_memory_equal(buf, claims_vector, len);
	free(buf);

	uint8_t rd[64], want[64] = { 0 };
	unsigned int n;
	assert_int_equal(tdc_ratls_report_data(&c, rd, NULL), 0);
	assert_true(EVP_Digest(claims_vector, sizeof(claims_vector), want, &n, EVP_sha256(), NULL));
	assert_memory_equal(rd, want, 64);
	assert_true(tdc_all_zero(rd + 32, 32));
}

static void ext_encode_shape(void **state)
{
	(void)state;
	struct tdc_ratls_claims c;
	uint8_t *ext;
	size_t len;
	vector_claims(&c);
	assert_int_equal(tdc_ratls_ext_encode(fake_quote, sizeof(fake_quote), &c, &ext, &len, NULL), 0);
	const uint8_t head[] = { 0xd9, 0xea, 0x60, 0x82, 0x54 };
	assert_int_equal(len, sizeof(head) + sizeof(fake_quote) + 2 + sizeof(claims_vector));
	assert_memory_equal(ext, head, sizeof(head));
	assert_memory_equal(ext + len - sizeof(claims_vector), claims_vector, sizeof(claims_vector));

	struct tdc_ratls_evidence ev;
	assert_int_equal(tdc_ratls_ext_parse(ext, len, &ev, NULL), 0);
	assert_int_equal(tdc_rd_len(&ev.quote), sizeof(fake_quote));
	assert_memory_equal(tdc_rd_ptr(&ev.quote), fake_quote, sizeof(fake_quote));
	assert_int_equal(tdc_rd_len(&ev.claims_buffer), sizeof(claims_vector));
	assert_int_equal(ev.claims.hash_alg, 1);
	assert_memory_equal(ev.claims.pubkey_hash, c.pubkey_hash, 32);
	assert_int_equal(ev.claims.version, 1);
	assert_int_equal(ev.claims.nonce_len, 0);
	free(ext);
}

static void encoder_refuses_bad_claims(void **state)
{
	(void)state;
	struct tdc_ratls_claims c;
	uint8_t *out;
	size_t len;
	struct tdc_error e;

	vector_claims(&c);
	c.pubkey_hash_len = 31;
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_claims_encode(&c, &out, &len, &e), TDC_E_USAGE);
	vector_claims(&c);
	c.hash_alg = 2;
	assert_int_equal(tdc_ratls_claims_encode(&c, &out, &len, NULL), TDC_E_USAGE);
	vector_claims(&c);
	c.nonce_len = 8;
	assert_int_equal(tdc_ratls_claims_encode(&c, &out, &len, NULL), TDC_E_USAGE);
	vector_claims(&c);
	assert_int_equal(tdc_ratls_ext_encode(fake_quote, 0, &c, &out, &len, NULL), TDC_E_LIMIT);
	assert_int_equal(tdc_ratls_ext_encode(fake_quote, TDC_MAX_QUOTE_SIZE + 1, &c, &out, &len,
					      NULL),
			 TDC_E_LIMIT);
}

static void nonce_round_trip(void **state)
{
	(void)state;
	struct tdc_ratls_claims c;
	uint8_t *ext;
	size_t len;
	struct tdc_ratls_evidence ev;
	vector_claims(&c);
	memset(c.nonce, 0xab, 32);
	c.nonce_len = 32;
	assert_int_equal(tdc_ratls_ext_encode(fake_quote, sizeof(fake_quote), &c, &ext, &len, NULL), 0);
	assert_int_equal(tdc_ratls_ext_parse(ext, len, &ev, NULL), 0);
	assert_int_equal(ev.claims.nonce_len, 32);
	assert_memory_equal(ev.claims.nonce, c.nonce, 32);
	free(ext);
}

/* ---- CBOR structure: each check alone ---- */

static void good_claims_writer(struct tdc_wr *w, uint8_t *buf, size_t cap)
{
	tdc_wr_init_fixed(w, buf, cap);
	tdc_cbor_put_head(w, TDC_CBOR_MAP, 3);
	kv_hash(w, 1, 32);
	kv_domain(w);
	kv_version(w);
}

static void parse_accepts_hand_made(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t b[256];
	size_t len;
	good_claims_writer(&w, b, sizeof(b));
	uint8_t *ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, 0, TDC_NO_OFFSET);
	free(ext);
}

static void parse_wrong_tag(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t b[256];
	size_t len;
	good_claims_writer(&w, b, sizeof(b));
	uint8_t *ext = ext_of_writer(&w, &len);
	ext[2] = 0x61; /* tag 60001: TEE report */
	expect_parse(ext, len, TDC_E_UNSUPPORTED, 0);
	ext[0] = 0x82; /* an array, not a tag */
	expect_parse(ext, len, TDC_E_FORMAT, 0);
	free(ext);
}

static void parse_wrong_array(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t b[256];
	size_t len;
	good_claims_writer(&w, b, sizeof(b));
	uint8_t *ext = ext_of_writer(&w, &len);
	ext[3] = 0x83; /* 3 entries */
	expect_parse(ext, len, TDC_E_FORMAT, 3);
	ext[3] = 0xa2; /* a map */
	expect_parse(ext, len, TDC_E_FORMAT, 3);
	free(ext);
}

static void parse_truncated(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t b[256];
	size_t len;
	good_claims_writer(&w, b, sizeof(b));
	size_t clen = tdc_wr_len(&w);
	uint8_t *ext = ext_of_writer(&w, &len);
	/* the claims-buffer content starts clen bytes before the end */
	expect_parse(ext, len - 1, TDC_E_FORMAT, len - clen);
	/* cut inside a head argument: tag bytes */
	expect_parse(ext, 2, TDC_E_FORMAT, 1);
	expect_parse(ext, 0, TDC_E_FORMAT, 0);
	free(ext);
}

static void parse_trailing(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t b[256];
	size_t len;
	good_claims_writer(&w, b, sizeof(b));
	uint8_t *ext = ext_of_writer(&w, &len);
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, ext, len);
	longer[len] = 0x00;
	expect_parse(longer, len + 1, TDC_E_FORMAT, len);
	free(longer);
	free(ext);

	/* trailing byte inside the claims-buffer, after the map */
	good_claims_writer(&w, b, sizeof(b));
	tdc_wr_u8(&w, 0x00);
	size_t clen = tdc_wr_len(&w);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_FORMAT, len - 1);
	(void)clen;
	free(ext);

	/* trailing byte inside the pubkey-hash value, after the array */
	uint8_t vb[64], h[32] = { 0 };
	struct tdc_wr v;
	tdc_wr_init_fixed(&v, vb, sizeof(vb));
	tdc_cbor_put_head(&v, TDC_CBOR_ARRAY, 2);
	tdc_cbor_put_head(&v, TDC_CBOR_UINT, 1);
	tdc_cbor_put_bstr(&v, h, 32);
	tdc_wr_u8(&v, 0x00);
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 3);
	kv(&w, "pubkey-hash", vb, tdc_wr_len(&v));
	kv_domain(&w);
	kv_version(&w);
	ext = ext_of_writer(&w, &len);
	/* offset: ext head (5) + quote (17) + claims head (2) + map (1) + key (12) + bstr head (2) + 36 */
	expect_parse(ext, len, TDC_E_FORMAT, 5 + sizeof(fake_quote) + 2 + 1 + 12 + 2 + 36);
	free(ext);
}

static void parse_oversize(void **state)
{
	(void)state;
	/* whole extension over its cap */
	size_t big = TDC_MAX_RATLS_EXT_SIZE + 1;
	uint8_t *buf = calloc(1, big);
	expect_parse(buf, big, TDC_E_LIMIT, 0);
	free(buf);

	/* quote length one past TDC_MAX_QUOTE_SIZE (declared; the data is not there) */
	const uint8_t q[] = { 0xd9, 0xea, 0x60, 0x82, 0x5a, 0x00, 0x01, 0x00, 0x01 };
	expect_parse(q, sizeof(q), TDC_E_LIMIT, 4);
	/* a 64-bit length */
	const uint8_t q8[] = { 0xd9, 0xea, 0x60, 0x82, 0x5b, 0xff, 0xff, 0xff, 0xff,
			       0xff, 0xff, 0xff, 0xff };
	expect_parse(q8, sizeof(q8), TDC_E_LIMIT, 4);

	/* claims-buffer over 512 bytes */
	uint8_t *claims = calloc(1, TDC_MAX_RATLS_CLAIMS_SIZE + 1);
	size_t len;
	uint8_t *ext = ext_around(claims, TDC_MAX_RATLS_CLAIMS_SIZE + 1, &len);
	expect_parse(ext, len, TDC_E_LIMIT, 5 + sizeof(fake_quote));
	free(ext);
	free(claims);

	/* more than 16 claims */
	struct tdc_wr w;
	uint8_t b[256];
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, TDC_MAX_RATLS_CLAIMS + 1);
	kv_hash(&w, 1, 32);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_LIMIT, 5 + sizeof(fake_quote) + 2);
	free(ext);

	/* a claim key over 32 bytes */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 3);
	kv(&w, "a-claim-key-of-thirty-three-bytes", "x", 1);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_LIMIT, 5 + sizeof(fake_quote) + 2 + 1);
	free(ext);
}

static void parse_duplicate_key(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t b[256];
	size_t len;
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 4);
	kv_hash(&w, 1, 32);
	size_t dup_at = tdc_wr_len(&w);
	kv_hash(&w, 1, 32);
	kv_domain(&w);
	kv_version(&w);
	uint8_t *ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_FORMAT, 5 + sizeof(fake_quote) + 2 + dup_at);
	free(ext);
}

static void parse_order_missing_unknown(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t b[256];
	size_t len, at;
	uint8_t *ext;
	const size_t base = 5 + sizeof(fake_quote) + 2;

	/* domain before pubkey-hash: not deterministic order */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 3);
	kv_domain(&w);
	at = tdc_wr_len(&w);
	kv_hash(&w, 1, 32);
	kv_version(&w);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_FORMAT, base + at);
	free(ext);

	/* version missing */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 2);
	kv_hash(&w, 1, 32);
	kv_domain(&w);
	at = tdc_wr_len(&w);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_FORMAT, base + at);
	free(ext);

	/* an unknown claim out of order (it sorts first): ignored, but the order still holds */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 4);
	kv_hash(&w, 1, 32);
	kv_domain(&w);
	kv_version(&w);
	at = tdc_wr_len(&w);
	kv(&w, "key_0", "value_0", 7);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_FORMAT, base + at);
	free(ext);

	/* a claim value that is not a byte string */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 3);
	kv_hash(&w, 1, 32);
	kv_domain(&w);
	tdc_cbor_put_tstr(&w, "tdcrypt-version");
	at = tdc_wr_len(&w);
	tdc_cbor_put_head(&w, TDC_CBOR_UINT, 1);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_FORMAT, base + at);
	free(ext);

	/* a version of two bytes */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 3);
	kv_hash(&w, 1, 32);
	kv_domain(&w);
	kv(&w, "tdcrypt-version", "\x00\x01", 2);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_FORMAT, TDC_NO_OFFSET);
	free(ext);

	/* a nonce shorter than 16 bytes */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 4);
	kv(&w, "nonce", "short", 5);
	kv_hash(&w, 1, 32);
	kv_domain(&w);
	kv_version(&w);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_FORMAT, base + 1 + 6 + 1);
	free(ext);
}

static void parse_hash_entry(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t b[256];
	size_t len;
	uint8_t *ext;
	/* base + map head + "pubkey-hash" key + bstr head */
	const size_t val = 5 + sizeof(fake_quote) + 2 + 1 + 12 + 2;

	/* SHA-384 and SHA-512 are accepted (CCC: verifiers must support 1, 7, 8) */
	const unsigned algs[] = { 7, 8 };
	const size_t lens[] = { 48, 64 };
	for (int i = 0; i < 2; i++) {
		tdc_wr_init_fixed(&w, b, sizeof(b));
		tdc_cbor_put_head(&w, TDC_CBOR_MAP, 3);
		kv_hash(&w, algs[i], lens[i]);
		kv_domain(&w);
		kv_version(&w);
		ext = ext_of_writer(&w, &len);
		expect_parse(ext, len, 0, TDC_NO_OFFSET);
		free(ext);
	}
	/* unknown algorithm (2 = sha-256-128); its 19-byte value has a one-byte head */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 3);
	kv_hash(&w, 2, 16);
	kv_domain(&w);
	kv_version(&w);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_UNSUPPORTED, val - 1 + 1);
	free(ext);
	/* length does not match the algorithm */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 3);
	kv_hash(&w, 1, 48);
	kv_domain(&w);
	kv_version(&w);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_FORMAT, val + 2);
	free(ext);
}

static void parse_nested_too_deep(void **state)
{
	(void)state;
	/* tag(60000)([[[[...]]]]): an array where the quote byte string belongs */
	uint8_t deep[64];
	memcpy(deep, "\xd9\xea\x60", 3);
	memset(deep + 3, 0x82, sizeof(deep) - 4);
	deep[sizeof(deep) - 1] = 0x40;
	expect_parse(deep, sizeof(deep), TDC_E_FORMAT, 4);

	/* nested tags */
	const uint8_t tags[] = { 0xd9, 0xea, 0x60, 0xd9, 0xea, 0x60, 0x82, 0x41, 0x00, 0x41, 0x00 };
	expect_parse(tags, sizeof(tags), TDC_E_FORMAT, 3);

	/* pubkey-hash holding an array inside its array */
	struct tdc_wr w, v;
	uint8_t b[256], vb[64];
	size_t len;
	tdc_wr_init_fixed(&v, vb, sizeof(vb));
	tdc_cbor_put_head(&v, TDC_CBOR_ARRAY, 2);
	tdc_cbor_put_head(&v, TDC_CBOR_ARRAY, 2);
	tdc_cbor_put_head(&v, TDC_CBOR_ARRAY, 2);
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 3);
	kv(&w, "pubkey-hash", vb, tdc_wr_len(&v));
	kv_domain(&w);
	kv_version(&w);
	uint8_t *ext = ext_of_writer(&w, &len);
	/* the 3-byte value has a one-byte head; the inner array follows the outer one */
	expect_parse(ext, len, TDC_E_FORMAT, 5 + sizeof(fake_quote) + 2 + 1 + 12 + 1 + 1);
	free(ext);

	/* a map as a claim key */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 3);
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 1);
	ext = ext_of_writer(&w, &len);
	/* a 2-byte claims-buffer has a one-byte head */
	expect_parse(ext, len, TDC_E_FORMAT, 5 + sizeof(fake_quote) + 1 + 1);
	free(ext);
}

static void parse_non_canonical_heads(void **state)
{
	(void)state;
	/* array(2) written as 0x98 0x02 */
	const uint8_t a[] = { 0xd9, 0xea, 0x60, 0x98, 0x02 };
	expect_parse(a, sizeof(a), TDC_E_FORMAT, 3);
	/* tag 60000 written with four bytes */
	const uint8_t t[] = { 0xda, 0x00, 0x00, 0xea, 0x60, 0x82 };
	expect_parse(t, sizeof(t), TDC_E_FORMAT, 0);
	/* indefinite-length array and byte string */
	const uint8_t i1[] = { 0xd9, 0xea, 0x60, 0x9f };
	expect_parse(i1, sizeof(i1), TDC_E_FORMAT, 3);
	const uint8_t i2[] = { 0xd9, 0xea, 0x60, 0x82, 0x5f };
	expect_parse(i2, sizeof(i2), TDC_E_FORMAT, 4);
	/* reserved additional information 28 */
	const uint8_t r[] = { 0xd9, 0xea, 0x60, 0x82, 0x5c };
	expect_parse(r, sizeof(r), TDC_E_FORMAT, 4);
	/* a byte string of length 5 written as 0x58 0x05 */
	const uint8_t s[] = { 0xd9, 0xea, 0x60, 0x82, 0x58, 0x05, 1, 2, 3, 4, 5 };
	expect_parse(s, sizeof(s), TDC_E_FORMAT, 4);
	/* empty quote */
	const uint8_t q[] = { 0xd9, 0xea, 0x60, 0x82, 0x40, 0x40 };
	expect_parse(q, sizeof(q), TDC_E_FORMAT, 4);
}

/* ---- certificates ---- */

static X509 *der_round_trip(X509 *x)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	assert_true(n > 0);
	const unsigned char *p = der;
	X509 *y = d2i_X509(NULL, &p, n);
	assert_non_null(y);
	OPENSSL_free(der);
	X509_free(x);
	return y;
}

static uint8_t *load_quote(size_t *len)
{
	const char *dir = getenv("TDC_TESTDATA");
	char path[1024];
	uint8_t *buf;
	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/dcap-qvl/tdx_quote", dir);
	assert_int_equal(tdc_file_read(path, TDC_MAX_QUOTE_SIZE, &buf, len, NULL), 0);
	assert_true(*len > REPORT_DATA_OFF + 64);
	return buf;
}

static void cert_round_trip(void **state)
{
	(void)state;
	EVP_PKEY *key;
	X509 *cert;
	uint8_t rd[64];
	size_t qlen;
	struct tdc_ratls_evidence ev;
	struct tdc_quote q;
	struct tdc_error e;

	assert_int_equal(tdc_ratls_keygen(&key, NULL), 0);
	assert_int_equal(tdc_ratls_report_data_for_key(key, rd, NULL), 0);
	uint8_t *quote = load_quote(&qlen);
	memcpy(quote + REPORT_DATA_OFF, rd, 64); /* what the quote provider would do */
	assert_int_equal(tdc_ratls_cert_create(key, quote, qlen, NOW, TDC_RATLS_CERT_LIFETIME, &cert,
					       NULL),
			 0);
	cert = der_round_trip(cert); /* what the broker sees */

	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), 0);
	assert_int_equal(tdc_rd_len(&ev.quote), qlen);
	assert_int_equal(tdc_ratls_check_report_data(&ev, rd, NULL), 0);
	assert_int_equal(tdc_ratls_check_quote(&ev, &q, &e), 0);
	assert_memory_equal(q.td.report_data, rd, 64);

	/* validity: now - skew .. now + lifetime; self-signed; no CA */
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notBefore(cert), NOW - TDC_RATLS_CERT_SKEW), 0);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(cert), NOW + TDC_RATLS_CERT_LIFETIME), 0);
	assert_int_equal(X509_check_ca(cert), 0);

	/* the REPORTDATA of the unpatched quote does not bind this key */
	memset(rd, 0, sizeof(rd));
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_check_report_data(&ev, rd, &e), TDC_E_BINDING);

	X509_free(cert);
	EVP_PKEY_free(key);
	free(quote);
}

static void cert_quote_for_other_key(void **state)
{
	(void)state;
	/* a genuine quote made for key A, re-wrapped in a certificate for key B */
	EVP_PKEY *a, *b;
	X509 *cert;
	uint8_t rd[64];
	size_t qlen;
	struct tdc_ratls_evidence ev;
	struct tdc_quote q;
	struct tdc_error e;
	assert_int_equal(tdc_ratls_keygen(&a, NULL), 0);
	assert_int_equal(tdc_ratls_keygen(&b, NULL), 0);
	assert_int_equal(tdc_ratls_report_data_for_key(a, rd, NULL), 0);
	uint8_t *quote = load_quote(&qlen);
	memcpy(quote + REPORT_DATA_OFF, rd, 64);

	/* 1. B's own claims: the key hash matches, REPORTDATA does not */
	assert_int_equal(tdc_ratls_cert_create(b, quote, qlen, NOW, 60, &cert, NULL), 0);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_check_quote(&ev, &q, &e), TDC_E_BINDING);
	X509_free(cert);

	/* 2. A's claims copied verbatim: REPORTDATA matches, the key hash does not */
	struct tdc_ratls_claims c;
	uint8_t *ext;
	size_t len;
	assert_int_equal(tdc_ratls_claims_for_key(a, NULL, 0, &c, NULL), 0);
	assert_int_equal(tdc_ratls_ext_encode(quote, qlen, &c, &ext, &len, NULL), 0);
	assert_int_equal(tdc_ratls_cert_create_ext(b, ext, len, NOW, 60, &cert, NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), TDC_E_BINDING);
	assert_non_null(strstr(e.reason, "pubkey-hash"));
	X509_free(cert);
	free(ext);

	free(quote);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
}

/* Certificate for key with the given claims around the fake quote. */
static X509 *cert_with_claims(EVP_PKEY *key, const struct tdc_ratls_claims *c)
{
	uint8_t *ext;
	size_t len;
	X509 *cert;
	assert_int_equal(tdc_ratls_ext_encode(fake_quote, sizeof(fake_quote), c, &ext, &len, NULL), 0);
	assert_int_equal(tdc_ratls_cert_create_ext(key, ext, len, NOW, 60, &cert, NULL), 0);
	free(ext);
	return cert;
}

static void cert_domain_version_nonce(void **state)
{
	(void)state;
	EVP_PKEY *key;
	struct tdc_ratls_claims c;
	struct tdc_ratls_evidence ev;
	struct tdc_error e;
	X509 *cert;
	uint8_t nonce[32];
	memset(nonce, 0x5a, sizeof(nonce));
	assert_int_equal(tdc_ratls_keygen(&key, NULL), 0);

	/* wrong domain */
	assert_int_equal(tdc_ratls_claims_for_key(key, NULL, 0, &c, NULL), 0);
	memcpy(c.domain, "gramine-ratls", 13);
	cert = cert_with_claims(key, &c);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), TDC_E_BINDING);
	X509_free(cert);
	/* empty domain */
	c.domain_len = 0;
	cert = cert_with_claims(key, &c);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, NULL), TDC_E_BINDING);
	X509_free(cert);

	/* wrong version */
	assert_int_equal(tdc_ratls_claims_for_key(key, NULL, 0, &c, NULL), 0);
	c.version = 2;
	cert = cert_with_claims(key, &c);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), TDC_E_UNSUPPORTED);
	X509_free(cert);

	/* a nonce where v1 expects none; the expected nonce; a different one */
	assert_int_equal(tdc_ratls_claims_for_key(key, nonce, sizeof(nonce), &c, NULL), 0);
	cert = cert_with_claims(key, &c);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), TDC_E_BINDING);
	assert_int_equal(tdc_ratls_cert_check(cert, nonce, sizeof(nonce), &ev, NULL), 0);
	nonce[31] ^= 1;
	assert_int_equal(tdc_ratls_cert_check(cert, nonce, sizeof(nonce), &ev, NULL), TDC_E_BINDING);
	X509_free(cert);
	/* a nonce expected, none present */
	assert_int_equal(tdc_ratls_claims_for_key(key, NULL, 0, &c, NULL), 0);
	cert = cert_with_claims(key, &c);
	assert_int_equal(tdc_ratls_cert_check(cert, nonce, sizeof(nonce), &ev, NULL), TDC_E_BINDING);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, NULL), 0);
	X509_free(cert);

	/* SHA-384 key hash of the right key is accepted */
	assert_int_equal(tdc_ratls_claims_for_key(key, NULL, 0, &c, NULL), 0);
	{
		unsigned char *der = NULL;
		unsigned int n;
		int dl = i2d_PUBKEY(key, &der);
		assert_true(EVP_Digest(der, (size_t)dl, c.pubkey_hash, &n, EVP_sha384(), NULL));
		OPENSSL_free(der);
		c.hash_alg = TDC_RATLS_SHA384;
		c.pubkey_hash_len = 48;
	}
	cert = cert_with_claims(key, &c);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, NULL), 0);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void cert_wrong_oid_and_duplicates(void **state)
{
	(void)state;
	EVP_PKEY *key;
	X509 *cert;
	struct tdc_ratls_evidence ev;
	struct tdc_error e;
	assert_int_equal(tdc_ratls_keygen(&key, NULL), 0);
	assert_int_equal(tdc_ratls_cert_create(key, fake_quote, sizeof(fake_quote), NOW, 60, &cert,
					       NULL),
			 0);

	/* the same value under the legacy Intel OID (as the reference demo used) */
	ASN1_OBJECT *good = OBJ_txt2obj(TDC_RATLS_EVIDENCE_OID, 1);
	ASN1_OBJECT *legacy = OBJ_txt2obj("1.2.840.113741.1", 1);
	int idx = X509_get_ext_by_OBJ(cert, good, -1);
	assert_true(idx >= 0);
	X509_EXTENSION *x = X509_get_ext(cert, idx);
	X509_EXTENSION *copy = X509_EXTENSION_dup(x);
	assert_int_equal(X509_EXTENSION_set_object(x, legacy), 1);
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), TDC_E_FORMAT);
	assert_non_null(strstr(e.reason, "no evidence"));

	/* two evidence extensions */
	assert_int_equal(X509_EXTENSION_set_object(x, good), 1);
	assert_int_equal(X509_add_ext(cert, copy, -1), 1);
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), TDC_E_FORMAT);
	assert_non_null(strstr(e.reason, "more than one"));

	X509_EXTENSION_free(copy);
	ASN1_OBJECT_free(good);
	ASN1_OBJECT_free(legacy);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void cert_self_signature_and_key_type(void **state)
{
	(void)state;
	EVP_PKEY *key, *other, *p384;
	X509 *cert;
	struct tdc_ratls_evidence ev;
	struct tdc_error e;
	assert_int_equal(tdc_ratls_keygen(&key, NULL), 0);
	assert_int_equal(tdc_ratls_keygen(&other, NULL), 0);

	/* signed by another key: refused without a handshake (tdc_ratls_cert_check); the
	 * handshake callback's check and the broker's per-request check look at the shape
	 * and the binding only, since CertificateVerify proves the key (PROTOCOL.md 5.1) */
	assert_int_equal(tdc_ratls_cert_create(key, fake_quote, sizeof(fake_quote), NOW, 60, &cert,
					       NULL),
			 0);
	assert_int_equal(tdc_ratls_cert_self_signed(cert, NULL), 0);
	assert_true(X509_sign(cert, other, EVP_sha256()) > 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_self_signed(cert, &e), TDC_E_SIGNATURE);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), TDC_E_SIGNATURE);
	assert_int_equal(tdc_ratls_cert_self_issued(cert, NULL), 0);
	assert_int_equal(tdc_ratls_cert_binding(cert, NULL, 0, &ev, NULL), 0);
	X509_free(cert);

	/* issuer differs from subject */
	assert_int_equal(tdc_ratls_cert_create(key, fake_quote, sizeof(fake_quote), NOW, 60, &cert,
					       NULL),
			 0);
	X509_NAME *n = X509_NAME_new();
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"ca",
					       -1, -1, 0));
	assert_true(X509_set_issuer_name(cert, n));
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
	assert_int_equal(tdc_ratls_cert_self_signed(cert, NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_ratls_cert_self_issued(cert, NULL), TDC_E_FORMAT);
	X509_NAME_free(n);
	X509_free(cert);

	/* a P-384 key */
	p384 = EVP_EC_gen("secp384r1");
	assert_non_null(p384);
	assert_int_equal(tdc_ratls_cert_create(p384, fake_quote, sizeof(fake_quote), NOW, 60, &cert,
					       NULL),
			 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), TDC_E_UNSUPPORTED);
	assert_int_equal(tdc_ratls_cert_self_issued(cert, NULL), TDC_E_UNSUPPORTED);
	X509_free(cert);

	EVP_PKEY_free(p384);
	EVP_PKEY_free(other);
	EVP_PKEY_free(key);
}

static void spki_pins(void **state)
{
	(void)state;
	EVP_PKEY *key;
	X509 *cert;
	uint8_t pins[3][32];
	assert_int_equal(tdc_ratls_keygen(&key, NULL), 0);
	assert_int_equal(tdc_ratls_cert_create(key, fake_quote, sizeof(fake_quote), NOW, 60, &cert,
					       NULL),
			 0);
	memset(pins, 0x11, sizeof(pins));
	assert_false(tdc_spki_pin_match(cert, (const uint8_t(*)[32])pins, 3));
	assert_int_equal(tdc_spki_sha256(cert, pins[2], NULL), 0);
	assert_true(tdc_spki_pin_match(cert, (const uint8_t(*)[32])pins, 3));
	assert_false(tdc_spki_pin_match(cert, (const uint8_t(*)[32])pins, 2));

	/* the pin is SHA-256 of the DER SubjectPublicKeyInfo, as `openssl pkey -pubout -outform
	 * der | sha256sum` prints */
	unsigned char *der = NULL;
	unsigned int n;
	uint8_t h[32];
	int dl = i2d_PUBKEY(key, &der);
	assert_true(EVP_Digest(der, (size_t)dl, h, &n, EVP_sha256(), NULL));
	OPENSSL_free(der);
	assert_memory_equal(h, pins[2], 32);
	X509_free(cert);
	EVP_PKEY_free(key);
}

/* ---- certificates and evidence of other CCC implementations (PROTOCOL.md §4.5) ---- */

/* Parses buf and returns the code; e gets the error. */
static int parse_err(const uint8_t *buf, size_t len, struct tdc_ratls_evidence *ev,
		     struct tdc_error *e)
{
	tdc_error_clear(e);
	int r = tdc_ratls_ext_parse(buf, len, ev, e);
	return r;
}

static void assert_reason(const struct tdc_error *e, int code, const char *reason_part,
			  const char *detail_part)
{
	char msg[512];
	if (e->code != code || !e->reason || !strstr(e->reason, reason_part) ||
	    (detail_part && !strstr(e->detail, detail_part)))
		print_error("got %d: %s\n", e->code, tdc_error_format(e, msg, sizeof(msg)));
	assert_int_equal(e->code, code);
	assert_non_null(strstr(e->reason, reason_part));
	if (detail_part)
		assert_non_null(strstr(e->detail, detail_part));
}

static void parse_unknown_claims_ignored(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t b[256];
	size_t len;
	struct tdc_ratls_evidence ev;
	struct tdc_error e;
	const size_t base = 5 + sizeof(fake_quote) + 2;

	/* two claims tdcrypt does not know, in deterministic order around its own */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 6);
	kv(&w, "empty", "", 0);
	kv(&w, "key_0", "value_0", 8);
	kv_hash(&w, 1, 32);
	kv_domain(&w);
	kv_version(&w);
	kv(&w, "vendor-claim-xyz-18", "\x01\x02", 2);
	uint8_t *ext = ext_of_writer(&w, &len);
	assert_int_equal(parse_err(ext, len, &ev, &e), 0);
	assert_int_equal(ev.claims.ignored, 3);
	assert_int_equal(ev.claims.hash_alg, TDC_RATLS_SHA256);
	assert_int_equal(ev.claims.version, TDC_RATLS_VERSION);
	assert_int_equal(ev.claims.domain_len, 13);
	assert_int_equal(tdc_rd_len(&ev.claims_buffer), tdc_wr_len(&w));
	free(ext);

	/* an unknown claim's value must still be a byte string (the CCC claim format) */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 4);
	tdc_cbor_put_tstr(&w, "key_0");
	size_t at = tdc_wr_len(&w);
	tdc_cbor_put_head(&w, TDC_CBOR_UINT, 7);
	kv_hash(&w, 1, 32);
	kv_domain(&w);
	kv_version(&w);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_FORMAT, base + at);
	free(ext);

	/* and its key a text string */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 4);
	at = tdc_wr_len(&w);
	tdc_cbor_put_bstr(&w, "key_0", 5);
	tdc_cbor_put_bstr(&w, "v", 1);
	kv_hash(&w, 1, 32);
	kv_domain(&w);
	kv_version(&w);
	ext = ext_of_writer(&w, &len);
	expect_parse(ext, len, TDC_E_FORMAT, base + at);
	free(ext);

	/* a duplicate unknown claim is a duplicate */
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 5);
	kv(&w, "key_0", "a", 1);
	at = tdc_wr_len(&w);
	kv(&w, "key_0", "b", 1);
	kv_hash(&w, 1, 32);
	kv_domain(&w);
	kv_version(&w);
	ext = ext_of_writer(&w, &len);
	assert_int_equal(parse_err(ext, len, &ev, &e), TDC_E_FORMAT);
	assert_reason(&e, TDC_E_FORMAT, "duplicate", NULL);
	assert_int_equal(e.offset, base + at);
	free(ext);
}

/* The unknown claims are in the claims-buffer the quote binds: a certificate with them
 * checks, and they cannot be stripped without breaking REPORTDATA. */
static void cert_unknown_claims_bound(void **state)
{
	(void)state;
	EVP_PKEY *key;
	X509 *cert;
	struct tdc_ratls_evidence ev;
	struct tdc_error e;
	struct tdc_wr w, v;
	uint8_t b[256], vb[40], h[32], rd[64];
	size_t len;

	assert_int_equal(tdc_ratls_keygen(&key, NULL), 0);
	ft_spki_sha256(key, h);
	tdc_wr_init_fixed(&v, vb, sizeof(vb));
	tdc_cbor_put_head(&v, TDC_CBOR_ARRAY, 2);
	tdc_cbor_put_head(&v, TDC_CBOR_UINT, 1);
	tdc_cbor_put_bstr(&v, h, 32);
	tdc_wr_init_fixed(&w, b, sizeof(b));
	tdc_cbor_put_head(&w, TDC_CBOR_MAP, 4);
	kv(&w, "key_0", "value_0", 8);
	kv(&w, "pubkey-hash", vb, tdc_wr_len(&v));
	kv_domain(&w);
	kv_version(&w);
	uint8_t *ext = ext_of_writer(&w, &len);
	assert_int_equal(tdc_ratls_cert_create_ext(key, ext, len, NOW, 60, &cert, NULL), 0);
	free(ext);
	cert = der_round_trip(cert);

	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), 0);
	assert_int_equal(ev.claims.ignored, 1);
	ft_report_data(tdc_wr_data(&w), tdc_wr_len(&w), rd);
	assert_int_equal(tdc_ratls_check_report_data(&ev, rd, NULL), 0);
	/* the claims without the unknown one hash differently */
	assert_int_equal(tdc_ratls_report_data(&ev.claims, rd, NULL), 0);
	assert_int_equal(tdc_ratls_check_report_data(&ev, rd, NULL), TDC_E_BINDING);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void parse_required_claims_stay_required(void **state)
{
	(void)state;
	struct tdc_wr w;
	uint8_t b[256];
	size_t len;
	struct tdc_ratls_evidence ev;
	struct tdc_error e;
	uint8_t *ext;
	static const char *const required[] = { "pubkey-hash", "tdcrypt-domain",
						"tdcrypt-version" };

	/* each required claim missing, an unknown claim in its place */
	for (int miss = 0; miss < 3; miss++) {
		tdc_wr_init_fixed(&w, b, sizeof(b));
		tdc_cbor_put_head(&w, TDC_CBOR_MAP, 3);
		kv(&w, "key_0", "value_0", 8);
		if (miss != 0)
			kv_hash(&w, 1, 32);
		if (miss != 1)
			kv_domain(&w);
		if (miss != 2)
			kv_version(&w);
		ext = ext_of_writer(&w, &len);
		assert_int_equal(parse_err(ext, len, &ev, &e), TDC_E_FORMAT);
		assert_reason(&e, TDC_E_FORMAT, "missing claim", required[miss]);
		assert_int_equal(e.offset, len);
		free(ext);
	}

	/* Gramine's claims (pubkey-hash only) and rats-tls's (pubkey-hash, then custom
	 * claims in insertion order) around a TDX quote: not tdcrypt evidence, said so
	 * rather than refused for the key order */
	EVP_PKEY *key;
	assert_int_equal(tdc_ratls_keygen(&key, NULL), 0);
	for (unsigned custom = 0; custom <= 2; custom += 2) {
		size_t clen = ft_ccc_claims(key, custom, b, sizeof(b));
		ext = ext_around(b, clen, &len);
		assert_int_equal(parse_err(ext, len, &ev, &e), TDC_E_FORMAT);
		assert_reason(&e, TDC_E_FORMAT, "missing claim", "tdcrypt-domain");
		assert_non_null(strstr(e.detail, "not tdcrypt evidence"));
		free(ext);
	}
	EVP_PKEY_free(key);
}

static void parse_sgx_quote_named(void **state)
{
	(void)state;
	EVP_PKEY *key;
	struct tdc_ratls_evidence ev;
	struct tdc_error e;
	struct tdc_wr w;
	uint8_t claims[256], rd[64];
	size_t qlen, len;

	assert_int_equal(tdc_ratls_keygen(&key, NULL), 0);
	/* Gramine (one claim) and rats-tls (three, insertion order) around an SGX v3 quote */
	for (unsigned custom = 0; custom <= 2; custom += 2) {
		size_t clen = ft_ccc_claims(key, custom, claims, sizeof(claims));
		ft_report_data(claims, clen, rd);
		uint8_t *q = ft_sgx_quote(3, TDC_TEE_TYPE_SGX, rd, &qlen);
		assert_true(qlen > 255 && qlen < 65536); /* a 3-byte bstr head */
		uint8_t *ext = ft_evidence(60000, q, qlen, claims, clen, &len);
		assert_int_equal(parse_err(ext, len, &ev, &e), TDC_E_UNSUPPORTED);
		assert_reason(&e, TDC_E_UNSUPPORTED, "SGX quote (TEE type 0x0), not TDX",
			      "header.tee_type");
		assert_int_equal(e.offset, 3 + 1 + 3 + 4); /* the quote's tee_type field */
		free(ext);
		free(q);
	}

	/* an SGX v4 quote with all of tdcrypt's claims: still an SGX quote */
	good_claims_writer(&w, claims, sizeof(claims));
	memset(rd, 0, sizeof(rd));
	uint8_t *q = ft_sgx_quote(4, TDC_TEE_TYPE_SGX, rd, &qlen);
	uint8_t *ext = ft_evidence(60000, q, qlen, tdc_wr_data(&w), tdc_wr_len(&w), &len);
	assert_int_equal(parse_err(ext, len, &ev, &e), TDC_E_UNSUPPORTED);
	assert_reason(&e, TDC_E_UNSUPPORTED, "SGX quote", NULL);
	free(ext);

	/* rats-tls's pre-IANA tag 0x1a7501: the quote is named first, then the tag */
	ext = ft_evidence(0x1a7501, q, qlen, tdc_wr_data(&w), tdc_wr_len(&w), &len);
	assert_int_equal(parse_err(ext, len, &ev, &e), TDC_E_UNSUPPORTED);
	assert_reason(&e, TDC_E_UNSUPPORTED, "SGX quote", NULL);
	assert_int_equal(e.offset, 5 + 1 + 3 + 4);
	free(ext);
	ext = ft_evidence(0x1a7501, fake_quote, sizeof(fake_quote), tdc_wr_data(&w),
			  tdc_wr_len(&w), &len);
	assert_int_equal(parse_err(ext, len, &ev, &e), TDC_E_UNSUPPORTED);
	assert_reason(&e, TDC_E_UNSUPPORTED, "not an Intel TEE quote", "pre-IANA");
	free(ext);

	/* a TEE report (tag 60001) is named, not parsed */
	ext = ft_evidence(60001, q, qlen, tdc_wr_data(&w), tdc_wr_len(&w), &len);
	assert_int_equal(parse_err(ext, len, &ev, &e), TDC_E_UNSUPPORTED);
	assert_reason(&e, TDC_E_UNSUPPORTED, "not an Intel TEE quote", "TEE report");
	free(ext);
	free(q);
	EVP_PKEY_free(key);
}

static void cert_foreign_named(void **state)
{
	(void)state;
	EVP_PKEY *p384 = EVP_EC_gen("secp384r1"), *p256;
	struct tdc_ratls_evidence ev;
	struct tdc_error e;
	uint8_t h[32], rd[64] = { 0 }, claims[256];
	size_t qlen, elen;
	X509 *cert;
	assert_non_null(p384);

	/* Gramine's legacy certificate: P-384 key, REPORTDATA = SHA-256(SPKI), the raw SGX
	 * quote under its (mis-encoded) legacy OID, no evidence extension */
	ft_spki_sha256(p384, h);
	memcpy(rd, h, 32);
	uint8_t *q = ft_sgx_quote(3, TDC_TEE_TYPE_SGX, rd, &qlen);
	const char *oid = FT_OID_GRAMINE_LEGACY;
	const uint8_t *val = q;
	cert = der_round_trip(ft_cert(p384, &oid, &val, &qlen, 1));
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), TDC_E_UNSUPPORTED);
	assert_reason(&e, TDC_E_UNSUPPORTED, "SGX quote (TEE type 0x0), not TDX", "Gramine");
	assert_non_null(strstr(e.detail, FT_OID_GRAMINE_LEGACY));
	X509_free(cert);

	/* Gramine with both extensions (legacy and CCC): named from the evidence extension,
	 * before its P-384 key is judged */
	size_t clen = ft_ccc_claims(p384, 0, claims, sizeof(claims));
	ft_report_data(claims, clen, rd);
	uint8_t *q2 = ft_sgx_quote(3, TDC_TEE_TYPE_SGX, rd, &qlen);
	uint8_t *ext = ft_evidence(60000, q2, qlen, claims, clen, &elen);
	const char *oids2[2] = { FT_OID_GRAMINE_LEGACY, TDC_RATLS_EVIDENCE_OID };
	const uint8_t *vals2[2] = { q2, ext };
	const size_t lens2[2] = { qlen, elen };
	cert = der_round_trip(ft_cert(p384, oids2, vals2, lens2, 2));
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), TDC_E_UNSUPPORTED);
	assert_reason(&e, TDC_E_UNSUPPORTED, "SGX quote (TEE type 0x0), not TDX", NULL);
	assert_int_equal(tdc_ratls_cert_self_signed(cert, NULL), TDC_E_UNSUPPORTED); /* P-384 */
	X509_free(cert);
	free(ext);
	free(q2);

	/* the Intel SGX SDK's legacy extension */
	oid = FT_OID_SGXSDK_LEGACY;
	cert = ft_cert(p384, &oid, &val, &qlen, 1);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_evidence(cert, &ev, &e), TDC_E_UNSUPPORTED);
	assert_reason(&e, TDC_E_UNSUPPORTED, "SGX quote", "Intel SGX SDK");
	X509_free(cert);

	/* a TDX quote under rats-tls's legacy TDX OID: a TDX quote, in the wrong place */
	size_t tlen;
	uint8_t *tdx = load_quote(&tlen);
	oid = FT_OID_RATLS_TDX_LEGACY;
	val = tdx;
	cert = ft_cert(p384, &oid, &val, &tlen, 1);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_evidence(cert, &ev, &e), TDC_E_UNSUPPORTED);
	assert_reason(&e, TDC_E_UNSUPPORTED, "TDX quote in a legacy RA-TLS extension", "rats-tls");
	X509_free(cert);
	free(tdx);

	/* an EPID/IAS report: another implementation's evidence of another kind */
	oid = FT_OID_IAS_REPORT;
	val = (const uint8_t *)"{\"isvEnclaveQuoteStatus\":\"OK\"}";
	size_t rlen = strlen((const char *)val);
	cert = ft_cert(p384, &oid, &val, &rlen, 1);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_evidence(cert, &ev, &e), TDC_E_UNSUPPORTED);
	assert_reason(&e, TDC_E_UNSUPPORTED, "another implementation", "IAS");
	X509_free(cert);
	free(q);

	/* rats-tls's certificate: P-256 (it passes the broker's handshake check), CCC
	 * evidence, SGX quote, custom claims in insertion order */
	cert = der_round_trip(ft_ratls_sgx_cert(&p256));
	assert_int_equal(tdc_ratls_cert_self_signed(cert, NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ratls_cert_check(cert, NULL, 0, &ev, &e), TDC_E_UNSUPPORTED);
	assert_reason(&e, TDC_E_UNSUPPORTED, "SGX quote (TEE type 0x0), not TDX", NULL);
	X509_free(cert);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(p384);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(claims_encode_matches_vector),
		cmocka_unit_test(ext_encode_shape),
		cmocka_unit_test(encoder_refuses_bad_claims),
		cmocka_unit_test(nonce_round_trip),
		cmocka_unit_test(parse_accepts_hand_made),
		cmocka_unit_test(parse_wrong_tag),
		cmocka_unit_test(parse_wrong_array),
		cmocka_unit_test(parse_truncated),
		cmocka_unit_test(parse_trailing),
		cmocka_unit_test(parse_oversize),
		cmocka_unit_test(parse_duplicate_key),
		cmocka_unit_test(parse_order_missing_unknown),
		cmocka_unit_test(parse_hash_entry),
		cmocka_unit_test(parse_nested_too_deep),
		cmocka_unit_test(parse_non_canonical_heads),
		cmocka_unit_test(cert_round_trip),
		cmocka_unit_test(cert_quote_for_other_key),
		cmocka_unit_test(cert_domain_version_nonce),
		cmocka_unit_test(cert_wrong_oid_and_duplicates),
		cmocka_unit_test(cert_self_signature_and_key_type),
		cmocka_unit_test(spki_pins),
		cmocka_unit_test(parse_unknown_claims_ignored),
		cmocka_unit_test(cert_unknown_claims_bound),
		cmocka_unit_test(parse_required_claims_stay_required),
		cmocka_unit_test(parse_sgx_quote_named),
		cmocka_unit_test(cert_foreign_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
