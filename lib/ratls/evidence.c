/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The evidence extension value and the claims-buffer (PROTOCOL.md §4):
 * encoding, the strict fixed-shape parser, and the REPORTDATA binding.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ratls/cbor.h"
#include "tdcrypt/ratls.h"
#include "util/util.h"

/* Claim keys, in deterministic order (shorter encodings first, then bytewise). */
enum claim_id { CLAIM_NONCE, CLAIM_PUBKEY_HASH, CLAIM_DOMAIN, CLAIM_VERSION, CLAIM__COUNT };
static const char *const claim_keys[CLAIM__COUNT] = {
	[CLAIM_NONCE] = "nonce",
	[CLAIM_PUBKEY_HASH] = "pubkey-hash",
	[CLAIM_DOMAIN] = "tdcrypt-domain",
	[CLAIM_VERSION] = "tdcrypt-version",
};

static size_t hash_len(int alg)
{
	switch (alg) {
	case TDC_RATLS_SHA256:
		return 32;
	case TDC_RATLS_SHA384:
		return 48;
	case TDC_RATLS_SHA512:
		return 64;
	default:
		return 0;
	}
}

static int check_claims(const struct tdc_ratls_claims *c, struct tdc_error *e)
{
	if (!hash_len(c->hash_alg) || c->pubkey_hash_len != hash_len(c->hash_alg))
		return TDC_FAILF(e, TDC_E_USAGE, "bad pubkey-hash claim", "alg %d, %zu bytes",
				 c->hash_alg, c->pubkey_hash_len);
	if (c->nonce_len && (c->nonce_len < TDC_RATLS_NONCE_MIN || c->nonce_len > TDC_RATLS_NONCE_MAX))
		return TDC_FAILF(e, TDC_E_USAGE, "bad nonce length", "%zu bytes", c->nonce_len);
	if (c->domain_len > TDC_RATLS_DOMAIN_MAX)
		return TDC_FAIL(e, TDC_E_USAGE, "domain too long");
	return 0;
}

/* Writes the claims map into w. check_claims must have passed: alg < 24 and a
 * 32..64-byte hash, so the pubkey-hash value is 2 + 2 + hash bytes. */
static void put_claims(struct tdc_wr *w, const struct tdc_ratls_claims *c)
{
	tdc_cbor_put_head(w, TDC_CBOR_MAP, c->nonce_len ? 4 : 3);
	if (c->nonce_len) {
		tdc_cbor_put_tstr(w, claim_keys[CLAIM_NONCE]);
		tdc_cbor_put_bstr(w, c->nonce, c->nonce_len);
	}
	/* pubkey-hash: bstr holding the CBOR array [alg, bstr hash] */
	tdc_cbor_put_tstr(w, claim_keys[CLAIM_PUBKEY_HASH]);
	tdc_cbor_put_head(w, TDC_CBOR_BSTR, 4 + c->pubkey_hash_len);
	tdc_cbor_put_head(w, TDC_CBOR_ARRAY, 2);
	tdc_cbor_put_head(w, TDC_CBOR_UINT, (uint64_t)c->hash_alg);
	tdc_cbor_put_bstr(w, c->pubkey_hash, c->pubkey_hash_len);
	tdc_cbor_put_tstr(w, claim_keys[CLAIM_DOMAIN]);
	tdc_cbor_put_bstr(w, c->domain, c->domain_len);
	tdc_cbor_put_tstr(w, claim_keys[CLAIM_VERSION]);
	tdc_cbor_put_bstr(w, &c->version, 1);
}

int tdc_ratls_claims_encode(const struct tdc_ratls_claims *c, uint8_t **out, size_t *len,
			    struct tdc_error *e)
{
	struct tdc_wr w;

	if (!c || !out || !len)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_claims_encode: NULL argument");
	*out = NULL;
	*len = 0;
	TDC_GUARD(check_claims(c, e));
	tdc_wr_init_alloc(&w, TDC_MAX_RATLS_CLAIMS_SIZE);
	put_claims(&w, c);
	return tdc_wr_finish(&w, out, len, e);
}

int tdc_ratls_claims_for_key(EVP_PKEY *key, const uint8_t *nonce, size_t nonce_len,
			     struct tdc_ratls_claims *c, struct tdc_error *e)
{
	unsigned char *der = NULL;
	unsigned int mdlen = 0;

	if (!key || !c || (nonce_len && !nonce))
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_claims_for_key: NULL argument");
	if (nonce_len && (nonce_len < TDC_RATLS_NONCE_MIN || nonce_len > TDC_RATLS_NONCE_MAX))
		return TDC_FAILF(e, TDC_E_USAGE, "bad nonce length", "%zu bytes", nonce_len);
	memset(c, 0, sizeof(*c));
	int n = i2d_PUBKEY(key, &der);
	if (n <= 0)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "cannot encode SubjectPublicKeyInfo");
	int ok = EVP_Digest(der, (size_t)n, c->pubkey_hash, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	if (!ok || mdlen != 32)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-256 failed");
	c->hash_alg = TDC_RATLS_SHA256;
	c->pubkey_hash_len = 32;
	if (nonce_len)
		memcpy(c->nonce, nonce, nonce_len);
	c->nonce_len = nonce_len;
	memcpy(c->domain, TDC_RATLS_DOMAIN, strlen(TDC_RATLS_DOMAIN));
	c->domain_len = strlen(TDC_RATLS_DOMAIN);
	c->version = TDC_RATLS_VERSION;
	return 0;
}

/* rd = SHA-256(buf) || 0^32 */
static int report_data_of(const uint8_t *buf, size_t len, uint8_t rd[64], struct tdc_error *e)
{
	unsigned int mdlen = 0;
	memset(rd, 0, 64);
	if (!EVP_Digest(buf, len, rd, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-256 failed");
	return 0;
}

int tdc_ratls_report_data(const struct tdc_ratls_claims *c, uint8_t rd[64], struct tdc_error *e)
{
	uint8_t *buf;
	size_t len;

	if (!rd)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_report_data: NULL argument");
	TDC_GUARD(tdc_ratls_claims_encode(c, &buf, &len, e));
	int r = report_data_of(buf, len, rd, e);
	free(buf);
	return r;
}

int tdc_ratls_report_data_for_key(EVP_PKEY *key, uint8_t rd[64], struct tdc_error *e)
{
	struct tdc_ratls_claims c;
	TDC_GUARD(tdc_ratls_claims_for_key(key, NULL, 0, &c, e));
	return tdc_ratls_report_data(&c, rd, e);
}

int tdc_ratls_ext_encode(const uint8_t *quote, size_t quote_len, const struct tdc_ratls_claims *c,
			 uint8_t **out, size_t *len, struct tdc_error *e)
{
	struct tdc_wr w;
	uint8_t claims[TDC_MAX_RATLS_CLAIMS_SIZE];
	struct tdc_wr cw;

	if (!quote || !c || !out || !len)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_ext_encode: NULL argument");
	*out = NULL;
	*len = 0;
	if (quote_len == 0 || quote_len > TDC_MAX_QUOTE_SIZE)
		return TDC_FAILF(e, TDC_E_LIMIT, "quote size out of range", "%zu bytes",
				 quote_len);
	TDC_GUARD(check_claims(c, e));
	tdc_wr_init_fixed(&cw, claims, sizeof(claims));
	put_claims(&cw, c);
	if (tdc_wr_error(&cw))
		return TDC_FAIL(e, TDC_E_LIMIT, "claims-buffer too large");
	size_t claims_len = tdc_wr_len(&cw);

	tdc_wr_init_alloc(&w, TDC_MAX_RATLS_EXT_SIZE);
	tdc_cbor_put_head(&w, TDC_CBOR_TAG, TDC_RATLS_CBOR_TAG_TEE_QUOTE);
	tdc_cbor_put_head(&w, TDC_CBOR_ARRAY, 2);
	tdc_cbor_put_bstr(&w, quote, quote_len);
	tdc_cbor_put_bstr(&w, claims, claims_len);
	return tdc_wr_finish(&w, out, len, e);
}

/* ---- parser ---- */

static int parse_pubkey_hash(struct tdc_rd *v, struct tdc_ratls_claims *c, struct tdc_error *e)
{
	uint64_t n, alg;
	struct tdc_rd h;
	size_t at = tdc_rd_offset(v);

	TDC_GUARD(tdc_cbor_get_type(v, TDC_CBOR_ARRAY, &n, "pubkey-hash", e));
	if (n != 2)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at,
				   "pubkey-hash is not a 2-entry array", "%llu entries",
				   (unsigned long long)n);
	at = tdc_rd_offset(v);
	TDC_GUARD(tdc_cbor_get_type(v, TDC_CBOR_UINT, &alg, "pubkey-hash alg", e));
	size_t hl = alg <= 8 ? hash_len((int)alg) : 0;
	if (!hl)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, at, "unsupported pubkey-hash algorithm",
				   "IANA named-information id %llu", (unsigned long long)alg);
	at = tdc_rd_offset(v);
	TDC_GUARD(tdc_cbor_get_str(v, TDC_CBOR_BSTR, 64, &h, "pubkey-hash value", e));
	if (tdc_rd_len(&h) != hl)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "pubkey-hash length does not match alg",
				   "%zu bytes for alg %llu", tdc_rd_len(&h),
				   (unsigned long long)alg);
	TDC_GUARD(tdc_rd_copy(&h, c->pubkey_hash, hl, "pubkey-hash value", e));
	c->hash_alg = (int)alg;
	c->pubkey_hash_len = hl;
	return tdc_rd_end(v, "pubkey-hash", e);
}

static int parse_claim_value(enum claim_id id, struct tdc_rd *v, struct tdc_ratls_claims *c,
			     struct tdc_error *e)
{
	size_t n = tdc_rd_len(v);
	size_t at = tdc_rd_offset(v);

	switch (id) {
	case CLAIM_NONCE:
		if (n < TDC_RATLS_NONCE_MIN || n > TDC_RATLS_NONCE_MAX)
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "nonce length out of range",
					   "%zu bytes", n);
		c->nonce_len = n;
		return tdc_rd_copy(v, c->nonce, n, "nonce", e);
	case CLAIM_PUBKEY_HASH:
		return parse_pubkey_hash(v, c, e);
	case CLAIM_DOMAIN:
		if (n > TDC_RATLS_DOMAIN_MAX)
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "tdcrypt-domain too long",
					   "%zu bytes", n);
		c->domain_len = n;
		return tdc_rd_copy(v, c->domain, n, "tdcrypt-domain", e);
	case CLAIM_VERSION:
		if (n != 1)
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "tdcrypt-version is not one byte",
					   "%zu bytes", n);
		return tdc_rd_copy(v, &c->version, 1, "tdcrypt-version", e);
	default:
		return TDC_FAIL(e, TDC_E_INTERNAL, "claim id");
	}
}

/* Which known claim key k is, or CLAIM__COUNT. */
static enum claim_id claim_lookup(const struct tdc_rd *k)
{
	for (int i = 0; i < CLAIM__COUNT; i++) {
		size_t n = strlen(claim_keys[i]);
		if (tdc_rd_len(k) == n && tdc_rd_starts_with(k, claim_keys[i], n))
			return (enum claim_id)i;
	}
	return CLAIM__COUNT;
}

/* Deterministic (RFC 8949 4.2.1) order of two text keys: the bytewise order of their
 * encodings, i.e. shorter first, then bytewise. <0, 0 (equal), >0. */
static int key_order(const struct tdc_rd *a, const struct tdc_rd *b)
{
	size_t na = tdc_rd_len(a), nb = tdc_rd_len(b);
	if (na != nb)
		return na < nb ? -1 : 1;
	return na ? memcmp(tdc_rd_ptr(a), tdc_rd_ptr(b), na) : 0;
}

/*
 * The claims map. Claims tdcrypt does not know are skipped (the CCC format says a
 * verifier ignores them; they stay covered by REPORTDATA, which hashes the whole
 * buffer), but their keys must be text strings and their values byte strings as the
 * format says. The required claims are checked before the key order, so that a claims
 * map from another implementation (usually in insertion order) is reported as lacking
 * tdcrypt's claims rather than as badly ordered.
 */
static int parse_claims(struct tdc_rd *r, struct tdc_ratls_claims *c, struct tdc_error *e)
{
	uint64_t n;
	bool seen[CLAIM__COUNT] = { false };
	struct tdc_rd prev = { 0 };
	size_t disorder_at = TDC_NO_OFFSET;
	size_t map_at = tdc_rd_offset(r);

	TDC_GUARD(tdc_cbor_get_type(r, TDC_CBOR_MAP, &n, "claims", e));
	if (n > TDC_MAX_RATLS_CLAIMS)
		return TDC_FAIL_AT(e, TDC_E_LIMIT, map_at, "too many claims",
				   "%llu, cap %u", (unsigned long long)n, TDC_MAX_RATLS_CLAIMS);
	for (uint64_t i = 0; i < n; i++) {
		struct tdc_rd k, v;
		size_t at = tdc_rd_offset(r);
		TDC_GUARD(tdc_cbor_get_str(r, TDC_CBOR_TSTR, TDC_MAX_RATLS_CLAIM_KEY, &k,
					   "claim key", e));
		enum claim_id id = claim_lookup(&k);
		if (id != CLAIM__COUNT && seen[id])
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "duplicate claim", "%s",
					   claim_keys[id]);
		if (i > 0) {
			int o = key_order(&prev, &k);
			if (o == 0)
				return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "duplicate claim",
						   "key of %zu bytes", tdc_rd_len(&k));
			if (o > 0 && disorder_at == TDC_NO_OFFSET)
				disorder_at = at;
		}
		prev = k;
		const char *name = id != CLAIM__COUNT ? claim_keys[id] : "unknown claim";
		TDC_GUARD(tdc_cbor_get_str(r, TDC_CBOR_BSTR, TDC_MAX_RATLS_CLAIMS_SIZE, &v, name, e));
		if (id == CLAIM__COUNT) {
			c->ignored++;
			continue;
		}
		seen[id] = true;
		TDC_GUARD(parse_claim_value(id, &v, c, e));
		TDC_GUARD(tdc_rd_end(&v, claim_keys[id], e));
	}
	TDC_GUARD(tdc_rd_end(r, "claims", e));
	size_t end = tdc_rd_offset(r);
	if (!seen[CLAIM_PUBKEY_HASH])
		return TDC_FAIL_AT(e, TDC_E_FORMAT, end, "missing claim",
				   "pubkey-hash (required by the CCC evidence format)");
	for (int i = CLAIM_DOMAIN; i < CLAIM__COUNT; i++)
		if (!seen[i])
			return TDC_FAIL_AT(e, TDC_E_FORMAT, end, "missing claim",
					   "%s: not tdcrypt evidence (%llu claims, %zu of them "
					   "unknown to tdcrypt and ignored)",
					   claim_keys[i], (unsigned long long)n, c->ignored);
	if (disorder_at != TDC_NO_OFFSET)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, disorder_at, "claims not in deterministic order",
				   "a key sorts before the one preceding it (RFC 8949 4.2.1: shorter "
				   "keys first, then bytewise)");
	return 0;
}

/* CBOR tags seen in the evidence extension of RA-TLS implementations. */
#define TAG_RATLS_DRAFT_QUOTE 0x1a7501u
static const struct {
	uint64_t tag;
	const char *what;
} evidence_tags[] = {
	{ 60001, "an Intel TEE report (TDX report or SGX report type 2: local, not a quote)" },
	{ 60002, "a legacy SGX report (EREPORT: local, not a quote)" },
	{ TAG_RATLS_DRAFT_QUOTE, "an Intel TEE quote under rats-tls's pre-IANA tag" },
	{ 0x1a7502, "an Intel TEE report under rats-tls's pre-IANA tag (local, not a quote)" },
	{ 0x1a7503, "a legacy SGX report under rats-tls's pre-IANA tag (local, not a quote)" },
	{ 0x1a7504, "an AMD SEV-SNP report (rats-tls)" },
	{ 0x1a7505, "an AMD SEV report (rats-tls)" },
	{ 0x1a7506, "a Hygon CSV report (rats-tls)" },
};

static const char *tag_name(uint64_t tag)
{
	for (size_t i = 0; i < sizeof(evidence_tags) / sizeof(evidence_tags[0]); i++)
		if (evidence_tags[i].tag == tag)
			return evidence_tags[i].what;
	return "unknown to tdcrypt";
}

int tdc_ratls_ext_parse(const uint8_t *der, size_t len, struct tdc_ratls_evidence *ev,
			struct tdc_error *e)
{
	struct tdc_rd r;
	uint64_t arg, tag;
	unsigned major;

	if (!der || !ev)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_ext_parse: NULL argument");
	memset(ev, 0, sizeof(*ev));
	if (len > TDC_MAX_RATLS_EXT_SIZE)
		return TDC_FAIL_AT(e, TDC_E_LIMIT, 0, "evidence extension too large",
				   "%zu bytes, cap %u", len, TDC_MAX_RATLS_EXT_SIZE);
	tdc_rd_init(&r, der, len);
	TDC_GUARD(tdc_cbor_get_head(&r, &major, &tag, "evidence tag", e));
	if (major != TDC_CBOR_TAG)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 0, "evidence is not a CBOR tag", "major type %u",
				   major);
	/* the rats-tls draft tag carries the same [quote, claims]: read on to name the TEE */
	if (tag != TDC_RATLS_CBOR_TAG_TEE_QUOTE && tag != TAG_RATLS_DRAFT_QUOTE)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, 0, "evidence type is not an Intel TEE quote",
				   "CBOR tag %llu (0x%llx): %s", (unsigned long long)tag,
				   (unsigned long long)tag, tag_name(tag));
	size_t at = tdc_rd_offset(&r);
	TDC_GUARD(tdc_cbor_get_type(&r, TDC_CBOR_ARRAY, &arg, "evidence array", e));
	if (arg != 2)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "evidence is not a 2-entry array",
				   "%llu entries", (unsigned long long)arg);
	at = tdc_rd_offset(&r);
	TDC_GUARD(tdc_cbor_get_str(&r, TDC_CBOR_BSTR, TDC_MAX_QUOTE_SIZE, &ev->quote, "quote", e));
	if (tdc_rd_len(&ev->quote) == 0)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "empty quote", "%s", "quote");
	TDC_GUARD(tdc_cbor_get_str(&r, TDC_CBOR_BSTR, TDC_MAX_RATLS_CLAIMS_SIZE, &ev->claims_buffer,
				   "claims-buffer", e));
	TDC_GUARD(tdc_rd_end(&r, "evidence", e));

	/* what the quote is, before its claims are judged: an SGX quote from another RA-TLS
	 * stack is named as such, not refused for lacking tdcrypt's claims */
	struct tdc_rd qh = ev->quote;
	struct tdc_quote_type qt;
	TDC_GUARD(tdc_quote_check_type(&qh, &qt, e));
	if (tag != TDC_RATLS_CBOR_TAG_TEE_QUOTE)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, 0, "evidence type is not an Intel TEE quote",
				   "CBOR tag 0x%llx: %s; the TDX quote must be under tag 60000",
				   (unsigned long long)tag, tag_name(tag));

	struct tdc_rd cr = ev->claims_buffer;
	return parse_claims(&cr, &ev->claims, e);
}

int tdc_ratls_check_report_data(const struct tdc_ratls_evidence *ev, const uint8_t report_data[64],
				struct tdc_error *e)
{
	uint8_t want[64];

	if (!ev || !report_data)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_check_report_data: NULL argument");
	TDC_GUARD(report_data_of(tdc_rd_ptr(&ev->claims_buffer), tdc_rd_len(&ev->claims_buffer),
				 want, e));
	if (!tdc_ct_equal(want, report_data, 64)) {
		char a[17], b[17];
		tdc_hex_encode(report_data, 8, a);
		tdc_hex_encode(want, 8, b);
		return TDC_FAILF(e, TDC_E_BINDING, "REPORTDATA does not bind the claims",
				 "quote %s..., SHA-256(claims-buffer) %s...", a, b);
	}
	return 0;
}

int tdc_ratls_check_quote(const struct tdc_ratls_evidence *ev, struct tdc_quote *q,
			  struct tdc_error *e)
{
	if (!ev || !q)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_ratls_check_quote: NULL argument");
	TDC_GUARD(tdc_quote_parse(tdc_rd_ptr(&ev->quote), tdc_rd_len(&ev->quote), q, e));
	return tdc_ratls_check_report_data(ev, q->td.report_data, e);
}
