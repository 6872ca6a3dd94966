/* SPDX-License-Identifier: Apache-2.0 */
/* lib/collateral: real Intel PCS documents, loaders, and one failing test per check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tdcrypt/collateral.h"
#include "util/limits.h"
#include "util/util.h"

/* ---- helpers ---- */

static char *td_path(const char *rel)
{
	const char *dir = getenv("TDC_TESTDATA");
	assert_non_null(dir);
	size_t n = strlen(dir) + strlen(rel) + 2;
	char *p = malloc(n);
	assert_non_null(p);
	snprintf(p, n, "%s/%s", dir, rel);
	return p;
}

static uint8_t *td_read(const char *rel, size_t *len)
{
	char *p = td_path(rel);
	uint8_t *d = NULL;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_file_read(p, TDC_MAX_BUNDLE_FILE, &d, len, &e), 0);
	free(p);
	return d;
}

/* Growable string for building test documents. */
struct sb {
	char *s;
	size_t n, cap;
};

static void sb_add(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(k >= 0);
	if (b->n + (size_t)k + 1 > b->cap) {
		b->cap = (b->n + (size_t)k + 1) * 2;
		b->s = realloc(b->s, b->cap);
		assert_non_null(b->s);
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)k;
}

/* Writes the member name k (with its comma) unless it is the one to omit. */
static bool key(struct sb *b, const char *omit, bool *first, const char *k)
{
	if (omit && strcmp(omit, k) == 0)
		return false;
	sb_add(b, "%s\"%s\":", *first ? "" : ",", k);
	*first = false;
	return true;
}

/* Options of the synthetic TCB info; zero means the valid default. */
struct tcb_opts {
	const char *omit;     /* top-level key to leave out */
	const char *fmspc;    /* raw JSON value */
	const char *tcb_type; /* raw JSON value */
	const char *eval;     /* raw JSON value */
	int n_sgx, n_tdx;     /* components in level 0 */
	const char *svn0;     /* raw value of sgx comp 0 svn */
	const char *pcesvn;   /* raw value */
	const char *status;   /* raw value of level 0 tcbStatus */
	int n_levels;	      /* 0: 2, <0: none */
	const char *advisory; /* extra advisory on level 0 */
	int n_adv;	      /* number of advisories on level 1 (default 2) */
	int n_modules;	      /* 0: 1, <0: no tdxModuleIdentities */
	const char *mod_mrsigner;
	const char *mod_isvsvn;
	const char *trailer;
};

/* Level 0 components carry the optional category, the others not (keeps the
 * 256-level document under TDC_MAX_COLLATERAL_JSON). */
static void comps(struct sb *b, int n, bool first_level, const char *svn0)
{
	sb_add(b, "[");
	for (int i = 0; i < n; i++)
		sb_add(b, "%s{\"svn\":%s%s}", i ? "," : "", i == 0 && svn0 ? svn0 : "3",
		       first_level ? ",\"category\":\"BIOS\"" : "");
	sb_add(b, "]");
}

static char *gen_tcb(const struct tcb_opts *o, size_t *len)
{
	struct sb b = { 0 };
	const char *z96 = "\"000000000000000000000000000000000000000000000000"
			  "000000000000000000000000000000000000000000000000\"";
	sb_add(&b, "{");
	bool first = true;
	if (key(&b, o->omit, &first, "id"))
		sb_add(&b, "\"TDX\"");
	if (key(&b, o->omit, &first, "version"))
		sb_add(&b, "3");
	if (key(&b, o->omit, &first, "issueDate"))
		sb_add(&b, "\"2025-01-21T11:14:05Z\"");
	if (key(&b, o->omit, &first, "nextUpdate"))
		sb_add(&b, "\"2025-02-20T11:14:05Z\"");
	if (key(&b, o->omit, &first, "fmspc"))
		sb_add(&b, "%s", o->fmspc ? o->fmspc : "\"00806f050000\"");
	if (key(&b, o->omit, &first, "pceId"))
		sb_add(&b, "\"0000\"");
	if (key(&b, o->omit, &first, "tcbType"))
		sb_add(&b, "%s", o->tcb_type ? o->tcb_type : "0");
	if (key(&b, o->omit, &first, "tcbEvaluationDataNumber"))
		sb_add(&b, "%s", o->eval ? o->eval : "17");
	if (key(&b, o->omit, &first, "tdxModule"))
		sb_add(&b,
		       "{\"mrsigner\":%s,\"attributes\":\"0000000000000000\","
		       "\"attributesMask\":\"FFFFFFFFFFFFFFFF\"}",
		       z96);
	if (o->n_modules >= 0) {
		if (key(&b, o->omit, &first, "tdxModuleIdentities")) {
			int nm = o->n_modules ? o->n_modules : 1;
			sb_add(&b, "[");
			for (int i = 0; i < nm; i++)
				sb_add(&b,
				       "%s{\"id\":\"TDX_%02d\",\"mrsigner\":%s,"
				       "\"attributes\":\"0000000000000000\","
				       "\"attributesMask\":\"FFFFFFFFFFFFFFFF\",\"tcbLevels\":["
				       "{\"tcb\":{\"isvsvn\":%s},\"tcbDate\":\"2024-03-13T00:00:"
				       "00Z\","
				       "\"tcbStatus\":\"UpToDate\"}]}",
				       i ? "," : "", i + 1, o->mod_mrsigner ? o->mod_mrsigner : z96,
				       o->mod_isvsvn ? o->mod_isvsvn : "3");
			sb_add(&b, "]");
		}
	}
	if (key(&b, o->omit, &first, "tcbLevels")) {
		int nl = o->n_levels == 0 ? 2 : o->n_levels < 0 ? 0 : o->n_levels;
		sb_add(&b, "[");
		for (int i = 0; i < nl; i++) {
			sb_add(&b, "%s{\"tcb\":{\"sgxtcbcomponents\":", i ? "," : "");
			comps(&b, i == 0 && o->n_sgx ? o->n_sgx : 16, i == 0,
			      i == 0 ? o->svn0 : NULL);
			sb_add(&b, ",\"pcesvn\":%s,\"tdxtcbcomponents\":",
			       i == 0 && o->pcesvn ? o->pcesvn : "11");
			comps(&b, i == 0 && o->n_tdx ? o->n_tdx : 16, i == 0, NULL);
			sb_add(&b, "},\"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":%s",
			       i == 0 && o->status ? o->status
			       : i == 0		   ? "\"UpToDate\""
						   : "\"OutOfDate\"");
			if (i == 0 && o->advisory)
				sb_add(&b, ",\"advisoryIDs\":[%s]", o->advisory);
			if (i == 1) {
				int na = o->n_adv ? o->n_adv : 2;
				sb_add(&b, ",\"advisoryIDs\":[");
				for (int k = 0; k < na; k++)
					sb_add(&b, "%s\"INTEL-SA-%05d\"", k ? "," : "", k);
				sb_add(&b, "]");
			}
			sb_add(&b, "}");
		}
		sb_add(&b, "]");
	}
	sb_add(&b, "}%s", o->trailer ? o->trailer : "");
	*len = b.n;
	return b.s;
}

/* Parses a generated TCB info expecting code; on failure checks the path in the detail. */
static void tcb_expect(const struct tcb_opts *o, int code, const char *path)
{
	size_t len;
	char *doc = gen_tcb(o, &len);
	struct tdc_tcb_info t;
	struct tdc_error e;
	tdc_error_clear(&e);
	int r = tdc_tcb_info_parse((const uint8_t *)doc, len, &t, &e);
	if (r != code)
		print_error("got %d (%s: %s), want %d\n", r, e.reason ? e.reason : "", e.detail,
			    code);
	assert_int_equal(r, code);
	if (path)
		assert_non_null(strstr(e.detail, path));
	if (r == 0)
		tdc_tcb_info_free(&t);
	/* free is safe again after success and after failure (struct zeroed) */
	tdc_tcb_info_free(&t);
	free(doc);
}

#define QE_MRSIGNER "DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5"

struct qe_opts {
	const char *omit;
	const char *mrsigner;
	const char *isvprodid;
	const char *isvsvn;
	const char *status;
	const char *trailer;
};

static char *gen_qe(const struct qe_opts *o, size_t *len)
{
	struct sb b = { 0 };
	bool first = true;
	sb_add(&b, "{");
	if (key(&b, o->omit, &first, "id"))
		sb_add(&b, "\"TD_QE\"");
	if (key(&b, o->omit, &first, "version"))
		sb_add(&b, "2");
	if (key(&b, o->omit, &first, "issueDate"))
		sb_add(&b, "\"2025-01-21T12:58:39Z\"");
	if (key(&b, o->omit, &first, "nextUpdate"))
		sb_add(&b, "\"2025-02-20T12:58:39Z\"");
	if (key(&b, o->omit, &first, "tcbEvaluationDataNumber"))
		sb_add(&b, "17");
	if (key(&b, o->omit, &first, "miscselect"))
		sb_add(&b, "\"00000000\"");
	if (key(&b, o->omit, &first, "miscselectMask"))
		sb_add(&b, "\"FFFFFFFF\"");
	if (key(&b, o->omit, &first, "attributes"))
		sb_add(&b, "\"11000000000000000000000000000000\"");
	if (key(&b, o->omit, &first, "attributesMask"))
		sb_add(&b, "\"FBFFFFFFFFFFFFFF0000000000000000\"");
	if (key(&b, o->omit, &first, "mrsigner"))
		sb_add(&b, "%s", o->mrsigner ? o->mrsigner : "\"" QE_MRSIGNER "\"");
	if (key(&b, o->omit, &first, "isvprodid"))
		sb_add(&b, "%s", o->isvprodid ? o->isvprodid : "2");
	if (key(&b, o->omit, &first, "tcbLevels"))
		sb_add(&b,
		       "[{\"tcb\":{\"isvsvn\":%s},\"tcbDate\":\"2024-03-13T00:00:00Z\","
		       "\"tcbStatus\":%s}]",
		       o->isvsvn ? o->isvsvn : "4", o->status ? o->status : "\"UpToDate\"");
	sb_add(&b, "}%s", o->trailer ? o->trailer : "");
	*len = b.n;
	return b.s;
}

static void qe_expect(const struct qe_opts *o, int code, const char *path)
{
	size_t len;
	char *doc = gen_qe(o, &len);
	struct tdc_qe_identity q;
	struct tdc_error e;
	tdc_error_clear(&e);
	int r = tdc_qe_identity_parse((const uint8_t *)doc, len, &q, &e);
	if (r != code)
		print_error("got %d (%s: %s), want %d\n", r, e.reason ? e.reason : "", e.detail,
			    code);
	assert_int_equal(r, code);
	if (path)
		assert_non_null(strstr(e.detail, path));
	tdc_qe_identity_free(&q);
	tdc_qe_identity_free(&q);
	free(doc);
}

/* ECDSA-P256 check of a raw r||s signature with the first certificate of a PEM chain. */
static void assert_sig_ok(const struct tdc_buf *msg, const uint8_t sig[64], const uint8_t *pem,
			  size_t pem_len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
	X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	assert_non_null(cert);
	EVP_PKEY *key = X509_get0_pubkey(cert);
	assert_non_null(key);
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
	assert_int_equal(ECDSA_SIG_set0(s, r, ss), 1);
	unsigned char *der = NULL;
	int dlen = i2d_ECDSA_SIG(s, &der);
	assert_true(dlen > 0);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
	assert_int_equal(EVP_DigestVerify(ctx, der, (size_t)dlen, msg->data, msg->len), 1);
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	ECDSA_SIG_free(s);
	X509_free(cert);
	BIO_free(bio);
}

static void split_file(const char *rel, const char *key, struct tdc_buf *inner, uint8_t sig[64])
{
	size_t len;
	uint8_t *body = td_read(rel, &len);
	struct tdc_error e;
	tdc_error_clear(&e);
	int r = tdc_pcs_body_split(body, len, key, inner, sig, &e);
	if (r)
		print_error("%s: %s %s\n", rel, e.reason, e.detail);
	assert_int_equal(r, 0);
	assert_int_equal(inner->data[inner->len], '\0');
	assert_int_equal(inner->data[0], '{');
	assert_int_equal(inner->data[inner->len - 1], '}');
	free(body);
}

/* ---- status and advisories ---- */

static void status_round_trip(void **state)
{
	(void)state;
	const char *names[] = { "UpToDate",
				"SWHardeningNeeded",
				"ConfigurationNeeded",
				"ConfigurationAndSWHardeningNeeded",
				"OutOfDate",
				"OutOfDateConfigurationNeeded",
				"Revoked",
				"TDRelaunchAdvised",
				"TDRelaunchAdvisedConfigurationNeeded" };
	assert_int_equal(sizeof(names) / sizeof(names[0]), TDC_TCB__COUNT - 1);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		enum tdc_tcb_status s = TDC_TCB_UNKNOWN;
		assert_int_equal(tdc_tcb_status_parse(names[i], &s, NULL), 0);
		assert_int_equal(s, (int)i + 1);
		assert_string_equal(tdc_tcb_status_name(s), names[i]);
	}
}

static void status_unknown_fails_closed(void **state)
{
	(void)state;
	enum tdc_tcb_status s = TDC_TCB_UP_TO_DATE;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_tcb_status_parse("Bogus", &s, &e), TDC_E_FORMAT);
	assert_int_equal(tdc_tcb_status_parse("uptodate", &s, NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_tcb_status_parse("Unknown", &s, NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_tcb_status_parse("", &s, NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_tcb_status_parse(NULL, &s, NULL), TDC_E_USAGE);
	assert_string_equal(tdc_tcb_status_name((enum tdc_tcb_status)99), "Unknown");
}

static void advisories_merge_dedups(void **state)
{
	(void)state;
	struct tdc_advisories a = { 0 }, b = { 0 };
	b.n = 3;
	b.id = calloc(3, sizeof(*b.id));
	strcpy(b.id[0], "INTEL-SA-00001");
	strcpy(b.id[1], "INTEL-SA-00002");
	strcpy(b.id[2], "INTEL-SA-00001");
	assert_int_equal(tdc_advisories_merge(&a, &b, NULL), 0);
	assert_int_equal(a.n, 2);
	assert_int_equal(tdc_advisories_merge(&a, &b, NULL), 0);
	assert_int_equal(a.n, 2);
	strcpy(b.id[2], "INTEL-SA-00003");
	assert_int_equal(tdc_advisories_merge(&a, &b, NULL), 0);
	assert_int_equal(a.n, 3);
	assert_string_equal(a.id[2], "INTEL-SA-00003");
	assert_int_equal(tdc_advisories_merge(NULL, &b, NULL), TDC_E_USAGE);
	tdc_advisories_free(&a);
	tdc_advisories_free(&b);
	tdc_advisories_free(&a);
	tdc_advisories_free(NULL);
}

/* ---- real documents ---- */

struct real_tcb {
	const char *file;
	const char *chain; /* signing chain PEM file, or NULL: from a dcap-qvl bundle */
	const char *chain_bundle;
	uint8_t fmspc[6];
	uint32_t eval;
	size_t n_levels;
	size_t n_modules;
	enum tdc_tcb_status first;
	int64_t issue;
};

static void real_tcb_infos(void **state)
{
	(void)state;
	const struct real_tcb cases[] = {
		{ "go-tdx-guest/sample_tcbInfo_response",
		  "go-tdx-guest/derived/tcbInfoIssuerChain.pem",
		  NULL,
		  { 0x50, 0x80, 0x6f, 0, 0, 0 },
		  15,
		  2,
		  0,
		  TDC_TCB_UP_TO_DATE,
		  1687077778 },
		{ "go-tdx-guest/sample_tcbinfo_response_v5",
		  NULL,
		  "dcap-qvl/tdx_quote_outdated_collateral.json",
		  { 0x90, 0xc0, 0x6f, 0, 0, 0 },
		  18,
		  3,
		  2,
		  TDC_TCB_UP_TO_DATE,
		  0 },
		{ "zkdcap/tcbinfov3_00806f050000.json",
		  "zkdcap/tcb_signing_cert.pem",
		  NULL,
		  { 0, 0x80, 0x6f, 0x05, 0, 0 },
		  17,
		  4,
		  2,
		  TDC_TCB_UP_TO_DATE,
		  1737458045 },
		{ "trustee/tcbInfo.json",
		  NULL,
		  "dcap-qvl/tdx_quote_outdated_collateral.json",
		  { 0, 0xa0, 0x6d, 0x08, 0, 0 },
		  17,
		  2,
		  2,
		  TDC_TCB_UP_TO_DATE,
		  0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct real_tcb *c = &cases[i];
		struct tdc_buf inner;
		uint8_t sig[64];
		struct tdc_tcb_info t;
		struct tdc_error e;
		split_file(c->file, "tcbInfo", &inner, sig);
		tdc_error_clear(&e);
		int r = tdc_tcb_info_parse(inner.data, inner.len, &t, &e);
		if (r)
			print_error("%s: %s %s\n", c->file, e.reason, e.detail);
		assert_int_equal(r, 0);
		assert_string_equal(t.id, "TDX");
		assert_int_equal(t.version, 3);
		assert_memory_equal(t.fmspc, c->fmspc, 6);
		assert_int_equal(t.pce_id[0] | t.pce_id[1], 0);
		assert_int_equal(t.tcb_type, 0);
		assert_int_equal(t.tcb_eval_num, c->eval);
		assert_int_equal(t.n_levels, c->n_levels);
		assert_int_equal(t.n_modules, c->n_modules);
		assert_int_equal(t.levels[0].status, c->first);
		assert_true(t.has_tdx_module);
		assert_true(t.next_update - t.issue_date == 30 * 86400);
		if (c->issue)
			assert_true(t.issue_date == c->issue);
		for (size_t k = 1; k < t.n_levels; k++)
			assert_true(t.levels[k].status != TDC_TCB_UP_TO_DATE);

		/* signature over the exact inner bytes verifies with the TCB signing cert */
		if (c->chain) {
			size_t plen;
			uint8_t *pem = td_read(c->chain, &plen);
			assert_sig_ok(&inner, sig, pem, plen);
			free(pem);
		} else {
			struct tdc_collateral col;
			char *p = td_path(c->chain_bundle);
			assert_int_equal(tdc_collateral_load(p, &col, NULL), 0);
			assert_sig_ok(&inner, sig, col.tcb_info_chain.data, col.tcb_info_chain.len);
			tdc_collateral_free(&col);
			free(p);
		}
		tdc_tcb_info_free(&t);
		free(inner.data);
	}
}

static void real_tcb_info_details(void **state)
{
	(void)state;
	struct tdc_buf inner;
	uint8_t sig[64];
	struct tdc_tcb_info t;
	split_file("zkdcap/tcbinfov3_00806f050000.json", "tcbInfo", &inner, sig);
	assert_int_equal(tdc_tcb_info_parse(inner.data, inner.len, &t, NULL), 0);
	/* level 0: sgx 7,7,2,2,3,1,0,3..., no advisories; level 1 OutOfDate with 3 SAs */
	assert_int_equal(t.levels[0].sgx_svn[0], 7);
	assert_int_equal(t.levels[0].sgx_svn[7], 3);
	assert_int_equal(t.levels[0].advisories.n, 0);
	assert_int_equal(t.levels[1].status, TDC_TCB_OUT_OF_DATE);
	assert_int_equal(t.levels[1].advisories.n, 3);
	assert_string_equal(t.levels[1].advisories.id[0], "INTEL-SA-00960");
	assert_int_equal(t.levels[3].advisories.n, 17);
	assert_string_equal(t.modules[0].id, "TDX_03");
	assert_int_equal(t.modules[0].n_levels, 1);
	assert_int_equal(t.modules[0].levels[0].isvsvn, 3);
	assert_string_equal(t.modules[1].id, "TDX_01");
	assert_int_equal(t.modules[1].n_levels, 2);
	assert_int_equal(t.modules[1].levels[1].isvsvn, 2);
	assert_int_equal(t.modules[1].levels[1].status, TDC_TCB_OUT_OF_DATE);
	assert_true(tdc_all_zero(t.module_mrsigner, 48));
	assert_true(tdc_all_zero(t.module_attributes, 8));
	for (int i = 0; i < 8; i++)
		assert_int_equal(t.module_attributes_mask[i], 0xff);
	int64_t d;
	assert_int_equal(tdc_time_parse("2024-03-13T00:00:00Z", &d, NULL, NULL), 0);
	assert_true(t.levels[0].tcb_date == d);
	tdc_tcb_info_free(&t);
	free(inner.data);
}

static const uint8_t qe_mrsigner[32] = { 0xDC, 0x9E, 0x2A, 0x7C, 0x6F, 0x94, 0x8F, 0x17,
					 0x47, 0x4E, 0x34, 0xA7, 0xFC, 0x43, 0xED, 0x03,
					 0x0F, 0x7C, 0x15, 0x63, 0xF1, 0xBA, 0xBD, 0xDF,
					 0x63, 0x40, 0xC8, 0x2E, 0x0E, 0x54, 0xA8, 0xC5 };

static void check_qe(const struct tdc_buf *inner, uint32_t eval)
{
	struct tdc_qe_identity q;
	struct tdc_error e;
	tdc_error_clear(&e);
	int r = tdc_qe_identity_parse(inner->data, inner->len, &q, &e);
	if (r)
		print_error("%s %s\n", e.reason, e.detail);
	assert_int_equal(r, 0);
	assert_string_equal(q.id, "TD_QE");
	assert_int_equal(q.version, 2);
	assert_int_equal(q.tcb_eval_num, eval);
	assert_memory_equal(q.mrsigner, qe_mrsigner, 32);
	assert_int_equal(q.isvprodid, 2);
	assert_int_equal(q.attributes[0], 0x11);
	assert_int_equal(q.attributes_mask[0], 0xfb);
	assert_int_equal(q.miscselect_mask[3], 0xff);
	assert_true(q.n_levels >= 1);
	assert_int_equal(q.levels[0].status, TDC_TCB_UP_TO_DATE);
	assert_true(q.next_update > q.issue_date);
	tdc_qe_identity_free(&q);
}

static void real_qe_identities(void **state)
{
	(void)state;
	const struct {
		const char *file, *chain, *bundle;
		uint32_t eval;
	} cases[] = {
		{ "go-tdx-guest/sample_qeIdentity_response",
		  "go-tdx-guest/derived/qeIdentityIssuerChain.pem", NULL, 15 },
		{ "zkdcap/qeidentityv2_tdx.json", "zkdcap/tcb_signing_cert.pem", NULL, 17 },
		{ "trustee/enclaveIdentity.json", NULL, "dcap-qvl/tdx_quote_collateral.json", 17 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tdc_buf inner;
		uint8_t sig[64];
		split_file(cases[i].file, "enclaveIdentity", &inner, sig);
		check_qe(&inner, cases[i].eval);
		if (cases[i].chain) {
			size_t plen;
			uint8_t *pem = td_read(cases[i].chain, &plen);
			assert_sig_ok(&inner, sig, pem, plen);
			free(pem);
		} else {
			struct tdc_collateral col;
			char *p = td_path(cases[i].bundle);
			assert_int_equal(tdc_collateral_load(p, &col, NULL), 0);
			assert_sig_ok(&inner, sig, col.qe_identity_chain.data,
				      col.qe_identity_chain.len);
			tdc_collateral_free(&col);
			free(p);
		}
		free(inner.data);
	}
}

/* The dcap-qvl bundles: load, parse both documents, verify both signatures, and
 * check that a PCS body rebuilt from the bundle splits back to the same bytes. */
static void dcap_qvl_bundles(void **state)
{
	(void)state;
	const struct {
		const char *file;
		uint8_t fmspc0;
		uint32_t eval;
		size_t n_levels;
	} cases[] = {
		{ "dcap-qvl/tdx_quote_collateral.json", 0xb0, 17, 2 },
		{ "dcap-qvl/tdx_quote_outdated_collateral.json", 0x90, 18, 3 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tdc_collateral c;
		struct tdc_error e;
		char *p = td_path(cases[i].file);
		tdc_error_clear(&e);
		int r = tdc_collateral_load(p, &c, &e);
		if (r)
			print_error("%s: %s %s\n", cases[i].file, e.reason, e.detail);
		assert_int_equal(r, 0);
		free(p);

		struct tdc_tcb_info t;
		assert_int_equal(tdc_tcb_info_parse(c.tcb_info.data, c.tcb_info.len, &t, NULL), 0);
		assert_int_equal(t.fmspc[0], cases[i].fmspc0);
		assert_int_equal(t.tcb_eval_num, cases[i].eval);
		assert_int_equal(t.n_levels, cases[i].n_levels);
		assert_int_equal(t.n_modules, 2);
		tdc_tcb_info_free(&t);
		check_qe(&c.qe_identity, cases[i].eval);
		assert_sig_ok(&c.tcb_info, c.tcb_info_sig, c.tcb_info_chain.data,
			      c.tcb_info_chain.len);
		assert_sig_ok(&c.qe_identity, c.qe_identity_sig, c.qe_identity_chain.data,
			      c.qe_identity_chain.len);

		/* CRLs came as hex and are DER now; chains are PEM text */
		X509_CRL *crl;
		const unsigned char *q = c.pck_crl.data;
		crl = d2i_X509_CRL(NULL, &q, (long)c.pck_crl.len);
		assert_non_null(crl);
		X509_CRL_free(crl);
		q = c.root_ca_crl.data;
		crl = d2i_X509_CRL(NULL, &q, (long)c.root_ca_crl.len);
		assert_non_null(crl);
		X509_CRL_free(crl);
		assert_non_null(
			strstr((char *)c.pck_crl_chain.data, "-----BEGIN CERTIFICATE-----"));

		/* rebuild {"tcbInfo":<inner>,"signature":"<hex>"} and split it back */
		char hex[129];
		struct sb b = { 0 };
		sb_add(&b, "{\"tcbInfo\":%s,\"signature\":\"%s\"}\n", (char *)c.tcb_info.data,
		       tdc_hex_encode(c.tcb_info_sig, 64, hex));
		struct tdc_buf inner;
		uint8_t sig[64];
		assert_int_equal(
			tdc_pcs_body_split((uint8_t *)b.s, b.n, "tcbInfo", &inner, sig, NULL), 0);
		assert_int_equal(inner.len, c.tcb_info.len);
		assert_memory_equal(inner.data, c.tcb_info.data, inner.len);
		assert_memory_equal(sig, c.tcb_info_sig, 64);
		free(inner.data);
		free(b.s);
		tdc_collateral_free(&c);
		tdc_collateral_free(&c);
	}
}

/* ---- TCB info: one failing check at a time ---- */

static void tcb_synthetic_valid(void **state)
{
	(void)state;
	struct tcb_opts o = { 0 };
	tcb_expect(&o, 0, NULL);
	o.fmspc = "\"00806F050000\""; /* either case */
	tcb_expect(&o, 0, NULL);
	struct tcb_opts bounds = { .svn0 = "255",
				   .pcesvn = "65535",
				   .mod_isvsvn = "65535",
				   .n_levels = TDC_MAX_TCB_LEVELS,
				   .n_adv = TDC_MAX_ADVISORIES,
				   .n_modules = TDC_MAX_MODULE_IDENTITIES,
				   .eval = "4294967295" };
	tcb_expect(&bounds, 0, NULL);
	struct tcb_opts nomod = { .n_modules = -1, .omit = "tdxModule" };
	tcb_expect(&nomod, 0, NULL);
	struct tcb_opts adv = { .advisory = "\"INTEL-SA-0000000000000000000001\"" }; /* 31 */
	tcb_expect(&adv, 0, NULL);
	struct tcb_opts ws = { .trailer = " \n" };
	tcb_expect(&ws, 0, NULL);
}

static void tcb_missing_field(void **state)
{
	(void)state;
	const char *keys[] = { "id",	   "version", "issueDate", "nextUpdate",
			       "fmspc",	   "pceId",   "tcbType",   "tcbEvaluationDataNumber",
			       "tcbLevels" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char path[64];
		snprintf(path, sizeof(path), "tcbInfo.%s", keys[i]);
		struct tcb_opts o = { .omit = keys[i] };
		tcb_expect(&o, TDC_E_FORMAT, path);
	}
}

static void tcb_wrong_type(void **state)
{
	(void)state;
	struct tcb_opts a = { .tcb_type = "\"0\"" };
	tcb_expect(&a, TDC_E_FORMAT, "tcbInfo.tcbType");
	struct tcb_opts b = { .eval = "17.0" };
	tcb_expect(&b, TDC_E_FORMAT, "tcbInfo.tcbEvaluationDataNumber");
	struct tcb_opts c = { .fmspc = "6" };
	tcb_expect(&c, TDC_E_FORMAT, "tcbInfo.fmspc");
	struct tcb_opts d = { .pcesvn = "true" };
	tcb_expect(&d, TDC_E_FORMAT, "tcbInfo.tcbLevels[0].tcb.pcesvn");
	struct tcb_opts f = { .tcb_type = "null" };
	tcb_expect(&f, TDC_E_FORMAT, "tcbInfo.tcbType");
	struct tcb_opts g = { .status = "1" };
	tcb_expect(&g, TDC_E_FORMAT, "tcbInfo.tcbLevels[0].tcbStatus");
	struct tcb_opts h = { .advisory = "5" };
	tcb_expect(&h, TDC_E_FORMAT, "tcbInfo.tcbLevels[0].advisoryIDs[0]");
}

static void tcb_component_counts(void **state)
{
	(void)state;
	struct tcb_opts a = { .n_sgx = 15 };
	tcb_expect(&a, TDC_E_FORMAT, "tcbInfo.tcbLevels[0].tcb.sgxtcbcomponents");
	struct tcb_opts b = { .n_tdx = 17 };
	tcb_expect(&b, TDC_E_LIMIT, "tcbInfo.tcbLevels[0].tcb.tdxtcbcomponents");
}

static void tcb_number_ranges(void **state)
{
	(void)state;
	struct tcb_opts a = { .svn0 = "256" };
	tcb_expect(&a, TDC_E_FORMAT, "tcbInfo.tcbLevels[0].tcb.sgxtcbcomponents[0].svn");
	struct tcb_opts b = { .svn0 = "-1" };
	tcb_expect(&b, TDC_E_FORMAT, "sgxtcbcomponents[0].svn");
	struct tcb_opts c = { .pcesvn = "-1" };
	tcb_expect(&c, TDC_E_FORMAT, "tcbInfo.tcbLevels[0].tcb.pcesvn");
	struct tcb_opts d = { .pcesvn = "65536" };
	tcb_expect(&d, TDC_E_FORMAT, "tcbInfo.tcbLevels[0].tcb.pcesvn");
	struct tcb_opts f = { .eval = "4294967296" };
	tcb_expect(&f, TDC_E_FORMAT, "tcbInfo.tcbEvaluationDataNumber");
	struct tcb_opts g = { .eval = "99999999999999999999" };
	tcb_expect(&g, TDC_E_FORMAT, "tcbInfo.tcbEvaluationDataNumber");
	struct tcb_opts h = { .mod_isvsvn = "65536" };
	tcb_expect(&h, TDC_E_FORMAT, "tcbInfo.tdxModuleIdentities[0].tcbLevels[0].tcb.isvsvn");
	struct tcb_opts k = { .svn0 = "3.5" };
	tcb_expect(&k, TDC_E_FORMAT, "sgxtcbcomponents[0].svn");
}

static void tcb_bad_hex(void **state)
{
	(void)state;
	struct tcb_opts a = { .fmspc = "\"00806f05000g\"" };
	tcb_expect(&a, TDC_E_FORMAT, "tcbInfo.fmspc");
	struct tcb_opts b = { .fmspc = "\"00806f0500\"" };
	tcb_expect(&b, TDC_E_FORMAT, "tcbInfo.fmspc");
	struct tcb_opts c = { .mod_mrsigner = "\"00\"" };
	tcb_expect(&c, TDC_E_FORMAT, "tcbInfo.tdxModuleIdentities[0].mrsigner");
}

static void tcb_unknown_status(void **state)
{
	(void)state;
	struct tcb_opts a = { .status = "\"Bogus\"" };
	tcb_expect(&a, TDC_E_FORMAT, "tcbInfo.tcbLevels[0].tcbStatus");
}

static void tcb_level_counts(void **state)
{
	(void)state;
	struct tcb_opts a = { .n_levels = TDC_MAX_TCB_LEVELS + 1 };
	tcb_expect(&a, TDC_E_LIMIT, "tcbInfo.tcbLevels");
	struct tcb_opts b = { .n_levels = -1 };
	tcb_expect(&b, TDC_E_FORMAT, "tcbInfo.tcbLevels");
	struct tcb_opts c = { .n_modules = TDC_MAX_MODULE_IDENTITIES + 1 };
	tcb_expect(&c, TDC_E_LIMIT, "tcbInfo.tdxModuleIdentities");
	struct tcb_opts d = { .n_adv = TDC_MAX_ADVISORIES + 1 };
	tcb_expect(&d, TDC_E_LIMIT, "tcbInfo.tcbLevels[1].advisoryIDs");
}

static void tcb_advisory_too_long(void **state)
{
	(void)state;
	struct tcb_opts a = { .advisory = "\"INTEL-SA-00000000000000000000001\"" }; /* 32 */
	tcb_expect(&a, TDC_E_LIMIT, "tcbInfo.tcbLevels[0].advisoryIDs[0]");
	struct tcb_opts b = { .advisory = "\"\"" };
	tcb_expect(&b, TDC_E_FORMAT, "tcbInfo.tcbLevels[0].advisoryIDs[0]");
}

static void tcb_trailing_garbage(void **state)
{
	(void)state;
	struct tcb_opts a = { .trailer = "x" };
	tcb_expect(&a, TDC_E_FORMAT, NULL);
	struct tcb_opts b = { .trailer = "{}" };
	tcb_expect(&b, TDC_E_FORMAT, NULL);
	/* a NUL ends json-c's input early: must not pass as "the whole document" */
	size_t len;
	char *doc = gen_tcb(&(struct tcb_opts){ .trailer = "\x01" }, &len);
	doc[len - 1] = '\0';
	struct tdc_tcb_info t;
	assert_int_equal(tdc_tcb_info_parse((uint8_t *)doc, len, &t, NULL), TDC_E_FORMAT);
	free(doc);
}

static void tcb_not_json(void **state)
{
	(void)state;
	struct tdc_tcb_info t;
	struct tdc_error e;
	tdc_error_clear(&e);
	const char *s = "{\"id\":'TDX'}";
	assert_int_equal(tdc_tcb_info_parse((const uint8_t *)s, strlen(s), &t, &e), TDC_E_FORMAT);
	assert_int_equal(e.offset, 6);
	s = "[1]";
	assert_int_equal(tdc_tcb_info_parse((const uint8_t *)s, strlen(s), &t, NULL), TDC_E_FORMAT);
	s = "{\"id\":\"TDX\"";
	assert_int_equal(tdc_tcb_info_parse((const uint8_t *)s, strlen(s), &t, NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_tcb_info_parse((const uint8_t *)"", 0, &t, NULL), TDC_E_FORMAT);
	s = "{\"a\":1,}"; /* strict: no trailing comma */
	assert_int_equal(tdc_tcb_info_parse((const uint8_t *)s, strlen(s), &t, NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_tcb_info_parse(NULL, 0, &t, NULL), TDC_E_USAGE);
}

static void tcb_depth_and_size_limits(void **state)
{
	(void)state;
	struct tdc_tcb_info t;
	char deep[64];
	/* TDC_MAX_JSON_DEPTH + 1 nested arrays inside an object */
	size_t n = 0;
	n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"a\":");
	for (int i = 0; i < TDC_MAX_JSON_DEPTH; i++)
		deep[n++] = '[';
	for (int i = 0; i < TDC_MAX_JSON_DEPTH; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	assert_int_equal(tdc_tcb_info_parse((uint8_t *)deep, n, &t, NULL), TDC_E_LIMIT);

	size_t big = TDC_MAX_COLLATERAL_JSON + 1;
	uint8_t *buf = malloc(big);
	memset(buf, ' ', big);
	buf[0] = '{';
	buf[big - 1] = '}';
	assert_int_equal(tdc_tcb_info_parse(buf, big, &t, NULL), TDC_E_LIMIT);
	assert_int_equal(tdc_tcb_info_parse(buf, big - 1 - 1, &t, NULL), TDC_E_FORMAT);
	free(buf);
}

/* ---- QE identity ---- */

static void qe_synthetic(void **state)
{
	(void)state;
	struct qe_opts ok = { 0 };
	qe_expect(&ok, 0, NULL);
	const char *keys[] = { "id",
			       "version",
			       "issueDate",
			       "nextUpdate",
			       "tcbEvaluationDataNumber",
			       "miscselect",
			       "miscselectMask",
			       "attributes",
			       "attributesMask",
			       "mrsigner",
			       "isvprodid",
			       "tcbLevels" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char path[64];
		snprintf(path, sizeof(path), "enclaveIdentity.%s", keys[i]);
		struct qe_opts o = { .omit = keys[i] };
		qe_expect(&o, TDC_E_FORMAT, path);
	}
	struct qe_opts a = {
		.mrsigner = "\"DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8\""
	};
	qe_expect(&a, TDC_E_FORMAT, "enclaveIdentity.mrsigner");
	struct qe_opts b = { .isvprodid = "65536" };
	qe_expect(&b, TDC_E_FORMAT, "enclaveIdentity.isvprodid");
	struct qe_opts c = { .isvsvn = "\"4\"" };
	qe_expect(&c, TDC_E_FORMAT, "enclaveIdentity.tcbLevels[0].tcb.isvsvn");
	struct qe_opts d = { .status = "\"Bogus\"" };
	qe_expect(&d, TDC_E_FORMAT, "enclaveIdentity.tcbLevels[0].tcbStatus");
	struct qe_opts f = { .trailer = ",{}" };
	qe_expect(&f, TDC_E_FORMAT, NULL);
	struct qe_opts g = {
		.mrsigner = "\"DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8CZ\""
	};
	qe_expect(&g, TDC_E_FORMAT, "enclaveIdentity.mrsigner");
}

/* ---- PCS body split ---- */

static const char SIG128[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
			     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static int split_str(const char *body, const char *key, struct tdc_error *e)
{
	struct tdc_buf inner = { (uint8_t *)"x", 1 };
	uint8_t sig[64];
	int r = tdc_pcs_body_split((const uint8_t *)body, strlen(body), key, &inner, sig, e);
	if (r == 0)
		free(inner.data);
	else
		assert_null(inner.data);
	return r;
}

static void body_whitespace_layout(void **state)
{
	(void)state;
	char body[512];
	snprintf(body, sizeof(body),
		 " {\n  \"tcbInfo\" : { \"a\" : [1, 2] } ,\n  \"signature\" : \"%s\"\n}\n\n",
		 SIG128);
	struct tdc_buf inner;
	uint8_t sig[64];
	assert_int_equal(
		tdc_pcs_body_split((uint8_t *)body, strlen(body), "tcbInfo", &inner, sig, NULL), 0);
	assert_int_equal(inner.len, strlen("{ \"a\" : [1, 2] }"));
	assert_memory_equal(inner.data, "{ \"a\" : [1, 2] }", inner.len);
	assert_int_equal(sig[0], 0x01);
	assert_int_equal(sig[63], 0xef);
	free(inner.data);
	/* braces and the signature marker inside strings do not confuse the scan */
	snprintf(body, sizeof(body),
		 "{\"tcbInfo\":{\"s\":\"},\\\"signature\\\":\\\"}\"},\"signature\":\"%s\"}",
		 SIG128);
	assert_int_equal(
		tdc_pcs_body_split((uint8_t *)body, strlen(body), "tcbInfo", &inner, sig, NULL), 0);
	assert_string_equal((char *)inner.data, "{\"s\":\"},\\\"signature\\\":\\\"}\"}");
	free(inner.data);
}

static void body_negative(void **state)
{
	(void)state;
	char body[1024];
	struct tdc_error e;

	/* extra key */
	snprintf(body, sizeof(body), "{\"tcbInfo\":{},\"signature\":\"%s\",\"x\":1}", SIG128);
	tdc_error_clear(&e);
	assert_int_equal(split_str(body, "tcbInfo", &e), TDC_E_FORMAT);
	/* duplicate key (json-c keeps the last: still two members) */
	snprintf(body, sizeof(body), "{\"tcbInfo\":{\"a\":1},\"tcbInfo\":{},\"signature\":\"%s\"}",
		 SIG128);
	assert_int_equal(split_str(body, "tcbInfo", NULL), TDC_E_FORMAT);
	/* short signature */
	snprintf(body, sizeof(body), "{\"tcbInfo\":{},\"signature\":\"%.126s\"}", SIG128);
	tdc_error_clear(&e);
	assert_int_equal(split_str(body, "tcbInfo", &e), TDC_E_FORMAT);
	assert_non_null(strstr(e.detail, "signature"));
	/* non-hex signature */
	snprintf(body, sizeof(body), "{\"tcbInfo\":{},\"signature\":\"%.127sx\"}", SIG128);
	assert_int_equal(split_str(body, "tcbInfo", NULL), TDC_E_FORMAT);
	/* signature as an escaped string: same value, but not the raw digits */
	snprintf(body, sizeof(body), "{\"tcbInfo\":{},\"signature\":\"\\u0030%s\"}", SIG128 + 1);
	assert_int_equal(split_str(body, "tcbInfo", NULL), TDC_E_FORMAT);
	/* missing signature */
	assert_int_equal(split_str("{\"tcbInfo\":{},\"sig\":\"00\"}", "tcbInfo", NULL),
			 TDC_E_FORMAT);
	/* wrong key */
	snprintf(body, sizeof(body), "{\"enclaveIdentity\":{},\"signature\":\"%s\"}", SIG128);
	assert_int_equal(split_str(body, "tcbInfo", NULL), TDC_E_FORMAT);
	assert_int_equal(split_str(body, "enclaveIdentity", NULL), 0);
	/* inner not an object */
	snprintf(body, sizeof(body), "{\"tcbInfo\":[1],\"signature\":\"%s\"}", SIG128);
	assert_int_equal(split_str(body, "tcbInfo", NULL), TDC_E_FORMAT);
	/* signature first: valid JSON but not the layout Intel signs */
	snprintf(body, sizeof(body), "{\"signature\":\"%s\",\"tcbInfo\":{}}", SIG128);
	assert_int_equal(split_str(body, "tcbInfo", NULL), TDC_E_FORMAT);
	/* trailing garbage after the body */
	snprintf(body, sizeof(body), "{\"tcbInfo\":{},\"signature\":\"%s\"}x", SIG128);
	assert_int_equal(split_str(body, "tcbInfo", NULL), TDC_E_FORMAT);
	/* not JSON at all */
	assert_int_equal(split_str("hello", "tcbInfo", NULL), TDC_E_FORMAT);
	/* bad key argument */
	assert_int_equal(split_str(body, "a\"b", NULL), TDC_E_USAGE);
	assert_int_equal(split_str(body, "", NULL), TDC_E_USAGE);
}

/* ---- CRL and chain normalisation ---- */

static void crl_forms(void **state)
{
	(void)state;
	size_t len;
	uint8_t *der = td_read("go-tdx-guest/pckcrl", &len);
	struct tdc_buf out;
	struct tdc_error e;

	/* DER as is */
	assert_int_equal(tdc_crl_to_der(der, len, &out, NULL), 0);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.data, der, len);
	free(out.data);

	/* PEM */
	const unsigned char *q = der;
	X509_CRL *crl = d2i_X509_CRL(NULL, &q, (long)len);
	assert_non_null(crl);
	BIO *bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_X509_CRL(bio, crl), 1);
	char *pem;
	long plen = BIO_get_mem_data(bio, &pem);
	assert_int_equal(tdc_crl_to_der((uint8_t *)pem, (size_t)plen, &out, NULL), 0);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.data, der, len);
	free(out.data);
	/* PEM followed by garbage */
	char *pem2 = malloc((size_t)plen + 4);
	memcpy(pem2, pem, (size_t)plen);
	memcpy(pem2 + plen, "xyz", 4);
	assert_int_equal(tdc_crl_to_der((uint8_t *)pem2, (size_t)plen + 3, &out, NULL),
			 TDC_E_FORMAT);
	free(pem2);
	BIO_free(bio);
	X509_CRL_free(crl);

	/* hex text with a trailing newline */
	char *hex = malloc(2 * len + 2);
	tdc_hex_encode(der, len, hex);
	strcat(hex, "\n");
	assert_int_equal(tdc_crl_to_der((uint8_t *)hex, strlen(hex), &out, NULL), 0);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.data, der, len);
	assert_int_equal(out.data[out.len], 0);
	free(out.data);
	/* odd-length hex */
	hex[2 * len - 1] = '\0';
	tdc_error_clear(&e);
	assert_int_equal(tdc_crl_to_der((uint8_t *)hex, strlen(hex), &out, &e), TDC_E_FORMAT);
	assert_null(out.data);
	free(hex);

	/* DER with one trailing byte */
	uint8_t *der2 = malloc(len + 1);
	memcpy(der2, der, len);
	der2[len] = 0;
	assert_int_equal(tdc_crl_to_der(der2, len + 1, &out, NULL), TDC_E_FORMAT);
	/* truncated DER */
	assert_int_equal(tdc_crl_to_der(der2, len - 1, &out, NULL), TDC_E_FORMAT);
	free(der2);
	free(der);

	/* garbage */
	assert_int_equal(tdc_crl_to_der((const uint8_t *)"garbage", 7, &out, NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_crl_to_der((const uint8_t *)"3000", 4, &out, NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_crl_to_der((const uint8_t *)"\x30\x00", 2, &out, NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_crl_to_der((const uint8_t *)"", 0, &out, NULL), TDC_E_FORMAT);
	const char *notcrl = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
	assert_int_equal(tdc_crl_to_der((const uint8_t *)notcrl, strlen(notcrl), &out, NULL),
			 TDC_E_FORMAT);
	/* size cap */
	uint8_t *big = calloc(1, TDC_MAX_CRL_SIZE + 1);
	big[0] = 0x30;
	assert_int_equal(tdc_crl_to_der(big, TDC_MAX_CRL_SIZE + 1, &out, NULL), TDC_E_LIMIT);
	free(big);
}

static char *url_encode(const uint8_t *in, size_t len)
{
	char *o = malloc(3 * len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_')
			o[n++] = (char)c;
		else
			n += (size_t)sprintf(o + n, "%%%02X", c);
	}
	o[n] = '\0';
	return o;
}

static void chain_forms(void **state)
{
	(void)state;
	size_t len;
	uint8_t *pem = td_read("go-tdx-guest/derived/tcbInfoIssuerChain.pem", &len);
	struct tdc_buf out;

	assert_int_equal(tdc_chain_to_pem(pem, len, &out, NULL), 0);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.data, pem, len);
	free(out.data);

	char *url = url_encode(pem, len);
	assert_non_null(strstr(url, "-----BEGIN%20CERTIFICATE-----"));
	assert_int_equal(tdc_chain_to_pem((uint8_t *)url, strlen(url), &out, NULL), 0);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.data, pem, len);
	assert_int_equal(out.data[out.len], 0);
	free(out.data);

	/* bad escapes */
	struct tdc_error e;
	size_t ul = strlen(url);
	url[ul - 2] = 'G';
	tdc_error_clear(&e);
	assert_int_equal(tdc_chain_to_pem((uint8_t *)url, ul, &out, &e), TDC_E_FORMAT);
	assert_int_equal(e.offset, ul - 3);
	assert_null(out.data);
	assert_int_equal(tdc_chain_to_pem((uint8_t *)url, ul - 2, &out, NULL), TDC_E_FORMAT);
	const char *nul = "-----BEGIN%20CERTIFICATE-----%00";
	assert_int_equal(tdc_chain_to_pem((const uint8_t *)nul, strlen(nul), &out, NULL),
			 TDC_E_FORMAT);
	free(url);

	/* not a chain */
	assert_int_equal(tdc_chain_to_pem((const uint8_t *)"MIIC", 4, &out, NULL), TDC_E_FORMAT);
	assert_int_equal(tdc_chain_to_pem((const uint8_t *)"", 0, &out, NULL), TDC_E_FORMAT);
	/* size cap */
	uint8_t *big = malloc(TDC_MAX_CHAIN_PEM + 1);
	memset(big, '\n', TDC_MAX_CHAIN_PEM + 1);
	memcpy(big, pem, len);
	assert_int_equal(tdc_chain_to_pem(big, TDC_MAX_CHAIN_PEM + 1, &out, NULL), TDC_E_LIMIT);
	assert_int_equal(tdc_chain_to_pem(big, TDC_MAX_CHAIN_PEM, &out, NULL), 0);
	free(out.data);
	free(big);
	free(pem);
}

/* ---- dcap-qvl JSON negatives ---- */

static void dcap_qvl_negative(void **state)
{
	(void)state;
	size_t len;
	uint8_t *js = td_read("dcap-qvl/tdx_quote_collateral.json", &len);
	struct tdc_collateral c;
	struct tdc_error e;

	/* drop one key: rename "qe_identity_signature" */
	char *m = strdup((char *)js);
	char *p = strstr(m, "\"qe_identity_signature\"");
	assert_non_null(p);
	p[1] = 'X';
	tdc_error_clear(&e);
	assert_int_equal(tdc_collateral_from_dcap_qvl_json((uint8_t *)m, len, &c, &e),
			 TDC_E_FORMAT);
	assert_non_null(strstr(e.detail, "qe_identity_signature"));
	assert_null(c.tcb_info.data); /* partial result freed */
	free(m);

	/* odd-length hex CRL (other members as in the real bundle) */
	struct sb b = { 0 };
	sb_add(&b, "{\"x\":1");
	const char *keys[] = { "pck_crl_issuer_chain",	   "root_ca_crl", "pck_crl",
			       "tcb_info_issuer_chain",	   "tcb_info",	  "tcb_info_signature",
			       "qe_identity_issuer_chain", "qe_identity", "qe_identity_signature" };
	json_object *root = json_tokener_parse((char *)js);
	assert_non_null(root);
	for (size_t i = 0; i < 9; i++) {
		json_object *v;
		assert_true(json_object_object_get_ex(root, keys[i], &v));
		const char *s = json_object_get_string(v);
		if (strcmp(keys[i], "root_ca_crl") == 0)
			sb_add(&b, ",\"%s\":\"%s0\"", keys[i], s);
		else
			sb_add(&b, ",\"%s\":%s", keys[i],
			       json_object_to_json_string_ext(
				       v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	sb_add(&b, "}");
	json_object_put(root);
	tdc_error_clear(&e);
	assert_int_equal(tdc_collateral_from_dcap_qvl_json((uint8_t *)b.s, b.n, &c, &e),
			 TDC_E_FORMAT);
	assert_non_null(strstr(e.detail, "odd"));
	free(b.s);

	/* trailing garbage */
	m = malloc(len + 2);
	memcpy(m, js, len);
	memcpy(m + len, "]", 2);
	assert_int_equal(tdc_collateral_from_dcap_qvl_json((uint8_t *)m, len + 1, &c, NULL),
			 TDC_E_FORMAT);
	free(m);
	free(js);

	/* a load of something that does not exist */
	assert_int_equal(tdc_collateral_load("/nonexistent/tdcrypt", &c, NULL), TDC_E_IO);
	tdc_collateral_free(&c);
	tdc_collateral_free(NULL);
}

/* ---- directory bundle ---- */

static void link_td(const char *dir, const char *name, const char *rel)
{
	char dst[512];
	char *src = td_path(rel);
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	assert_int_equal(symlink(src, dst), 0);
	free(src);
}

static void write_file(const char *dir, const char *name, const void *d, size_t n)
{
	char dst[512];
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	FILE *f = fopen(dst, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(d, 1, n, f), n);
	fclose(f);
}

static void rm(const char *dir, const char *name)
{
	char dst[512];
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	assert_int_equal(unlink(dst), 0);
}

static void dir_bundle(void **state)
{
	(void)state;
	char dir[] = "/tmp/tdc-coll-XXXXXX";
	assert_non_null(mkdtemp(dir));
	link_td(dir, "tcb_info.json", "go-tdx-guest/sample_tcbInfo_response");
	link_td(dir, "qe_identity.json", "go-tdx-guest/sample_qeIdentity_response");
	link_td(dir, "tcb_info_issuer_chain.pem", "go-tdx-guest/derived/tcbInfoIssuerChain.pem");
	link_td(dir, "pck_crl.der", "go-tdx-guest/pckcrl");
	link_td(dir, "root_ca_crl.der", "go-tdx-guest/rootcrl.der");

	struct tdc_collateral c;
	struct tdc_error e;
	tdc_error_clear(&e);
	int r = tdc_collateral_load(dir, &c, &e);
	if (r)
		print_error("%s %s\n", e.reason, e.detail);
	assert_int_equal(r, 0);
	struct tdc_tcb_info t;
	assert_int_equal(tdc_tcb_info_parse(c.tcb_info.data, c.tcb_info.len, &t, NULL), 0);
	assert_int_equal(t.tcb_eval_num, 15);
	assert_int_equal(t.n_modules, 0);
	tdc_tcb_info_free(&t);
	check_qe(&c.qe_identity, 15);
	assert_sig_ok(&c.tcb_info, c.tcb_info_sig, c.tcb_info_chain.data, c.tcb_info_chain.len);
	assert_sig_ok(&c.qe_identity, c.qe_identity_sig, c.qe_identity_chain.data,
		      c.qe_identity_chain.len);
	/* defaults: QE chain = TCB chain, PCK CRL chain empty */
	assert_int_equal(c.qe_identity_chain.len, c.tcb_info_chain.len);
	assert_memory_equal(c.qe_identity_chain.data, c.tcb_info_chain.data, c.tcb_info_chain.len);
	assert_int_equal(c.pck_crl_chain.len, 0);
	assert_non_null(c.pck_crl_chain.data);
	size_t dlen;
	uint8_t *der = td_read("go-tdx-guest/pckcrl", &dlen);
	assert_int_equal(c.pck_crl.len, dlen);
	assert_memory_equal(c.pck_crl.data, der, dlen);
	tdc_collateral_free(&c);

	/* alternative forms: URL-encoded chains, hex PCK CRL as .pem, explicit QE chain */
	size_t plen;
	uint8_t *pem = td_read("go-tdx-guest/derived/qeIdentityIssuerChain.pem", &plen);
	char *url = url_encode(pem, plen);
	write_file(dir, "qe_identity_issuer_chain.pem", url, strlen(url));
	link_td(dir, "pck_crl_issuer_chain.pem", "go-tdx-guest/derived/pckCrlIssuerChain.pem");
	rm(dir, "pck_crl.der");
	char *hex = malloc(2 * dlen + 1);
	tdc_hex_encode(der, dlen, hex);
	write_file(dir, "pck_crl.pem", hex, strlen(hex));
	assert_int_equal(tdc_collateral_from_dir(dir, &c, NULL), 0);
	assert_int_equal(c.qe_identity_chain.len, plen);
	assert_memory_equal(c.qe_identity_chain.data, pem, plen);
	assert_memory_equal(c.pck_crl.data, der, dlen);
	assert_non_null(strstr((char *)c.pck_crl_chain.data, "BEGIN CERTIFICATE"));
	tdc_collateral_free(&c);

	/* both names of one piece: ambiguous */
	write_file(dir, "pck_crl.der", der, dlen);
	assert_int_equal(tdc_collateral_from_dir(dir, &c, NULL), TDC_E_FORMAT);
	assert_null(c.tcb_info.data);
	rm(dir, "pck_crl.pem");
	/* a required file missing */
	rm(dir, "root_ca_crl.der");
	tdc_error_clear(&e);
	assert_int_equal(tdc_collateral_from_dir(dir, &c, &e), TDC_E_IO);
	assert_non_null(strstr(e.detail, "root_ca_crl.der"));
	assert_null(c.tcb_info.data);
	/* a body for the wrong document */
	link_td(dir, "root_ca_crl.der", "go-tdx-guest/rootcrl.der");
	rm(dir, "qe_identity.json");
	link_td(dir, "qe_identity.json", "go-tdx-guest/sample_tcbInfo_response");
	assert_int_equal(tdc_collateral_load(dir, &c, NULL), TDC_E_FORMAT);

	const char *names[] = { "tcb_info.json",
				"qe_identity.json",
				"tcb_info_issuer_chain.pem",
				"qe_identity_issuer_chain.pem",
				"pck_crl_issuer_chain.pem",
				"pck_crl.der",
				"root_ca_crl.der" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		rm(dir, names[i]);
	assert_int_equal(rmdir(dir), 0);
	free(hex);
	free(url);
	free(pem);
	free(der);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(status_round_trip),
		cmocka_unit_test(status_unknown_fails_closed),
		cmocka_unit_test(advisories_merge_dedups),
		cmocka_unit_test(real_tcb_infos),
		cmocka_unit_test(real_tcb_info_details),
		cmocka_unit_test(real_qe_identities),
		cmocka_unit_test(dcap_qvl_bundles),
		cmocka_unit_test(tcb_synthetic_valid),
		cmocka_unit_test(tcb_missing_field),
		cmocka_unit_test(tcb_wrong_type),
		cmocka_unit_test(tcb_component_counts),
		cmocka_unit_test(tcb_number_ranges),
		cmocka_unit_test(tcb_bad_hex),
		cmocka_unit_test(tcb_unknown_status),
		cmocka_unit_test(tcb_level_counts),
		cmocka_unit_test(tcb_advisory_too_long),
		cmocka_unit_test(tcb_trailing_garbage),
		cmocka_unit_test(tcb_not_json),
		cmocka_unit_test(tcb_depth_and_size_limits),
		cmocka_unit_test(qe_synthetic),
		cmocka_unit_test(body_whitespace_layout),
		cmocka_unit_test(body_negative),
		cmocka_unit_test(crl_forms),
		cmocka_unit_test(chain_forms),
		cmocka_unit_test(dcap_qvl_negative),
		cmocka_unit_test(dir_bundle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
