/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quote parser tests: every real quote in $TDC_TESTDATA parses with the facts
 * of vectors.json; every structural check fails alone with its code and
 * offset; truncation and byte flips never crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "../ratls/foreign-certs.h"
#include "tdcrypt/quote.h"
#include "util/limits.h"
#include "util/util.h"

/* Offsets in dcap-qvl/tdx_quote (v4, A = 32), see the reference doc A1. */
#define V4_SIG_LEN 632
#define V4_SIG_DATA 636
#define V4_CERT_TYPE 764
#define V4_CERT_SIZE 766
#define V4_QE_REPORT 770
#define V4_AUTH_SIZE 1218
#define V4_AUTH 1220
#define V4_INNER_TYPE 1252
#define V4_INNER_SIZE 1254
#define V4_PEM 1258
#define V4_END 4936 /* end of the signature data; 70 zero bytes follow */

struct blob {
	uint8_t *buf;
	size_t len;
};

static char *data_path(const char *rel)
{
	const char *dir = getenv("TDC_TESTDATA");
	assert_non_null(dir);
	size_t n = strlen(dir) + strlen(rel) + 2;
	char *p = malloc(n);
	assert_non_null(p);
	snprintf(p, n, "%s/%s", dir, rel);
	return p;
}

/* Loads a binary quote, or a hex-text one ("0x" prefix and whitespace allowed). */
static struct blob load(const char *rel)
{
	char *p = data_path(rel);
	struct blob b = { 0 };
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_file_read(p, 4 * TDC_MAX_QUOTE_SIZE, &b.buf, &b.len, &e), 0);
	free(p);
	size_t rl = strlen(rel);
	if (rl > 4 && !strcmp(rel + rl - 4, ".hex")) {
		char *txt = malloc(b.len + 1);
		assert_non_null(txt);
		size_t n = 0;
		size_t i = (b.len > 2 && b.buf[0] == '0' && b.buf[1] == 'x') ? 2 : 0;
		for (; i < b.len; i++)
			if (b.buf[i] != '\n' && b.buf[i] != '\r' && b.buf[i] != ' ')
				txt[n++] = (char)b.buf[i];
		free(b.buf);
		assert_int_equal(tdc_hex_decode_alloc(txt, n, &b.buf, &b.len, "hex", NULL), 0);
		free(txt);
	}
	return b;
}

static void put16(uint8_t *b, size_t off, uint16_t v)
{
	b[off] = (uint8_t)v;
	b[off + 1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *b, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *b, size_t off)
{
	return (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
	       (uint32_t)b[off + 3] << 24;
}

static void assert_hex(const uint8_t *b, size_t n, const char *want)
{
	char h[2 * 128 + 1];
	assert_true(n <= 128);
	tdc_hex_encode(b, n, h);
	assert_string_equal(h, want);
}

/* Parses b and expects failure with the given code at the given absolute offset. */
static void expect_fail(const struct blob *b, int code, size_t offset, const char *field)
{
	struct tdc_quote q;
	struct tdc_error e;
	tdc_error_clear(&e);
	int r = tdc_quote_parse(b->buf, b->len, &q, &e);
	if (r != code || e.offset != offset) {
		char msg[512];
		print_error("got %d (%s) at %zu: %s\n", r, tdc_err_name(r), e.offset,
			    tdc_error_format(&e, msg, sizeof(msg)));
	}
	assert_int_equal(r, code);
	assert_int_equal(e.code, code);
	assert_int_equal(e.offset, offset);
	assert_non_null(e.reason);
	if (field)
		assert_non_null(strstr(e.detail, field));
}

static struct blob v4(void)
{
	struct blob b = load("dcap-qvl/tdx_quote");
	assert_int_equal(b.len, 5006);
	return b;
}

static struct blob v5(void)
{
	struct blob b = load("go-tdx-guest/quote_v5_sample.dat");
	assert_int_equal(b.len, 5006);
	return b;
}

/* ---- (a) real quotes ---- */

static void vectors_quote_facts(void **state)
{
	(void)state;
	char *p = data_path("vectors.json");
	struct json_object *root = json_object_from_file(p);
	free(p);
	assert_non_null(root);
	struct json_object *vecs;
	assert_true(json_object_object_get_ex(root, "vectors", &vecs));
	size_t n = json_object_array_length(vecs);
	assert_true(n >= 9);
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(vecs, i), *x, *f;
		assert_true(json_object_object_get_ex(v, "quote", &x));
		const char *file = json_object_get_string(x);
		assert_true(json_object_object_get_ex(v, "quote_facts", &f));
		struct blob b = load(file);
		struct tdc_quote q;
		struct tdc_error e;
		tdc_error_clear(&e);
		assert_int_equal(tdc_quote_parse(b.buf, b.len, &q, &e), 0);

		assert_true(json_object_object_get_ex(f, "bytes", &x));
		assert_int_equal(b.len, json_object_get_int(x));
		assert_true(json_object_object_get_ex(f, "version", &x));
		assert_int_equal(q.version, json_object_get_int(x));
		assert_true(json_object_object_get_ex(f, "body_type", &x));
		assert_int_equal(q.body_type, json_object_get_int(x));
		assert_true(json_object_object_get_ex(f, "trailing_bytes_after_signature_data",
						      &x));
		assert_int_equal(q.trailing_len, json_object_get_int(x));
		assert_int_equal(q.total_len + q.trailing_len, b.len);
		assert_true(json_object_object_get_ex(f, "td_attributes", &x));
		assert_hex(q.td.td_attributes, 8, json_object_get_string(x));
		assert_true(json_object_object_get_ex(f, "xfam", &x));
		assert_hex(q.td.xfam, 8, json_object_get_string(x));
		assert_true(json_object_object_get_ex(f, "tee_tcb_svn", &x));
		assert_hex(q.td.tee_tcb_svn, 16, json_object_get_string(x));
		assert_true(json_object_object_get_ex(f, "qe_isvsvn", &x));
		assert_int_equal(q.qe_report.isv_svn, json_object_get_int(x));
		assert_true(json_object_object_get_ex(f, "mr_td", &x));
		assert_hex(q.td.mrtd, 48, json_object_get_string(x));
		if (json_object_object_get_ex(f, "tee_tcb_svn2", &x))
			assert_hex(q.td.tee_tcb_svn2, 16, json_object_get_string(x));
		if (json_object_object_get_ex(f, "mr_servicetd_zero", &x))
			assert_int_equal(tdc_all_zero(q.td.mrservicetd, 48),
					 json_object_get_boolean(x));
		assert_int_equal(q.td.is_td15, q.body_type == TDC_BODY_TD15);
		free(b.buf);
	}
	json_object_put(root);
}

/* Every quote file named in the testdata README parses; the PEM is a chain of 3 certs. */
static void all_testdata_quotes_parse(void **state)
{
	(void)state;
	static const struct {
		const char *file;
		uint16_t version, body_type;
		size_t trailing;
	} files[] = {
		{ "dcap-qvl/tdx_quote", 4, 2, 70 },
		{ "dcap-qvl/tdx_quote_outdated", 5, 3, 0 },
		{ "dcap-qvl/tdx-quote.hex", 4, 2, 70 },
		{ "dcap-qvl/quote-from-tappd.hex", 4, 2, 70 },
		{ "go-tdx-guest/tdx_prod_quote_SPR_E4.dat", 4, 2, 39 },
		{ "go-tdx-guest/quote_v5_sample.dat", 5, 3, 0 },
		{ "go-tdx-guest/ccel/cos-113-tdx-quote.dat", 4, 2, 3065 },
		{ "zkdcap/quote_tdx_00806f050000.dat", 4, 2, 3065 },
		{ "zkdcap/quote_v4.dat", 4, 2, 0 },
		{ "trustee/tdx_quote_4.dat", 4, 2, 0 },
		{ "trustee/tdx_quote_5.dat", 5, 3, 0 },
		{ "trustee/tdx_quote_6.dat", 4, 2, 70 },
		{ "trustee/az-tdx-vtpm/td-quote.bin", 4, 2, 70 },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct blob b = load(files[i].file);
		struct tdc_quote q;
		struct tdc_error e;
		tdc_error_clear(&e);
		assert_int_equal(tdc_quote_parse(b.buf, b.len, &q, &e), 0);
		assert_int_equal(q.version, files[i].version);
		assert_int_equal(q.body_type, files[i].body_type);
		assert_int_equal(q.trailing_len, files[i].trailing);
		assert_int_equal(q.att_key_type, 2);
		assert_int_equal(q.tee_type, 0x81);
		assert_memory_equal(q.qe_vendor_id, tdc_intel_qe_vendor_id, 16);
		assert_int_equal(q.cert_type, 5);
		assert_int_equal(tdc_rd_len(&q.qe_report_bytes), 384);
		assert_int_equal(tdc_rd_len(&q.qe_auth_data), 32);
		assert_int_equal(q.qe_report.isv_prod_id, 2);
		/* the PEM holds three certificates and no trailing NUL */
		struct tdc_rd pem = q.cert_data;
		size_t len = tdc_rd_len(&pem), pos, certs = 0;
		assert_true(len > 0);
		assert_int_not_equal(tdc_rd_at(&pem, len - 1), 0);
		while (tdc_rd_find(&pem, "-----BEGIN CERTIFICATE-----", 27, &pos)) {
			certs++;
			assert_int_equal(tdc_rd_skip(&pem, pos + 27, "x", NULL), 0);
		}
		assert_int_equal(certs, 3);
		/* the tail after the signature data is never part of a view */
		assert_true(tdc_rd_offset(&q.cert_data) + tdc_rd_len(&q.cert_data) <= q.total_len);
		free(b.buf);
	}
}

static void v4_layout_offsets(void **state)
{
	(void)state;
	struct blob b = v4();
	struct tdc_quote q;
	assert_int_equal(tdc_quote_parse(b.buf, b.len, &q, NULL), 0);
	assert_ptr_equal(tdc_rd_ptr(&q.signed_bytes), b.buf);
	assert_int_equal(tdc_rd_len(&q.signed_bytes), 632);
	assert_int_equal(tdc_rd_offset(&q.qe_report_bytes), V4_QE_REPORT);
	assert_int_equal(tdc_rd_offset(&q.qe_auth_data), V4_AUTH);
	assert_int_equal(tdc_rd_offset(&q.cert_data), V4_PEM);
	assert_int_equal(tdc_rd_len(&q.cert_data), 3677); /* 3678 minus one NUL */
	assert_int_equal(q.total_len, V4_END);
	assert_memory_equal(q.signature, b.buf + V4_SIG_DATA, 64);
	assert_memory_equal(q.attestation_key, b.buf + V4_SIG_DATA + 64, 64);
	assert_memory_equal(q.qe_report_signature, b.buf + V4_QE_REPORT + 384, 64);
	assert_memory_equal(q.td.report_data, b.buf + 568, 64);
	assert_memory_equal(q.td.rtmr[3], b.buf + 520, 48);
	assert_false(q.td.is_td15);
	assert_true(tdc_all_zero(q.td.mrservicetd, 48));
	assert_hex(q.qe_report.mr_signer, 32,
		   "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5");
	assert_hex(q.qe_report.miscselect, 4, "00000000");
	assert_hex(q.qe_report.attributes, 16, "1500000000000000e700000000000000");
	assert_true(tdc_td_attributes(&q.td) == TDC_TDATTR_SEPT_VE_DISABLE);
	assert_true(tdc_td_xfam(&q.td) == 0x602e7ull);
	free(b.buf);
}

static void v5_layout_offsets(void **state)
{
	(void)state;
	struct blob b = v5();
	struct tdc_quote q;
	assert_int_equal(tdc_quote_parse(b.buf, b.len, &q, NULL), 0);
	assert_int_equal(tdc_rd_len(&q.signed_bytes), 702);
	assert_true(q.td.is_td15);
	assert_memory_equal(q.td.tee_tcb_svn2, b.buf + 54 + 584, 16);
	assert_int_equal(get32(b.buf, 702) + 706, q.total_len);
	assert_int_equal(tdc_rd_offset(&q.qe_report_bytes), V4_QE_REPORT + 70);
	free(b.buf);
}

static void attribute_names(void **state)
{
	(void)state;
	assert_string_equal(tdc_td_attribute_name(0), "DEBUG");
	assert_string_equal(tdc_td_attribute_name(28), "SEPT_VE_DISABLE");
	assert_string_equal(tdc_td_attribute_name(29), "MIGRATABLE");
	assert_string_equal(tdc_td_attribute_name(30), "PKS");
	assert_string_equal(tdc_td_attribute_name(31), "KL");
	assert_string_equal(tdc_td_attribute_name(62), "TPA");
	assert_string_equal(tdc_td_attribute_name(63), "PERFMON");
	assert_null(tdc_td_attribute_name(1));
	assert_null(tdc_td_attribute_name(64));
	struct tdc_td_report td = { .td_attributes = { 1, 0, 0, 0x10, 0, 0, 0, 0x80 } };
	assert_true(tdc_td_attributes(&td) ==
		    (TDC_TDATTR_DEBUG | TDC_TDATTR_SEPT_VE_DISABLE | TDC_TDATTR_PERFMON));
}

/* ---- (b) one test per structural check ---- */

static void rejects_version_3(void **state)
{
	(void)state;
	struct blob b = v4();
	put16(b.buf, 0, 3);
	expect_fail(&b, TDC_E_UNSUPPORTED, 0, "header.version");
	free(b.buf);
}

static void rejects_key_type_3(void **state)
{
	(void)state;
	struct blob b = v4();
	put16(b.buf, 2, 3);
	expect_fail(&b, TDC_E_UNSUPPORTED, 2, "header.att_key_type");
	free(b.buf);
}

static void rejects_tee_type_sgx(void **state)
{
	(void)state;
	struct blob b = v4();
	put32(b.buf, 4, 0);
	expect_fail(&b, TDC_E_UNSUPPORTED, 4, "header.tee_type");
	free(b.buf);
}

static void rejects_vendor_id(void **state)
{
	(void)state;
	struct blob b = v4();
	b.buf[12 + 15] ^= 1;
	expect_fail(&b, TDC_E_UNSUPPORTED, 12, "header.qe_vendor_id");
	free(b.buf);
}

static void rejects_v5_body_type_sgx(void **state)
{
	(void)state;
	struct blob b = v5();
	put16(b.buf, 48, 1);
	expect_fail(&b, TDC_E_UNSUPPORTED, 48, "body.type");
	free(b.buf);
}

static void rejects_v5_body_type_4(void **state)
{
	(void)state;
	struct blob b = v5();
	put16(b.buf, 48, 4);
	expect_fail(&b, TDC_E_FORMAT, 48, "body.type");
	free(b.buf);
}

static void rejects_v5_body_size_mismatch(void **state)
{
	(void)state;
	struct blob b = v5();
	put32(b.buf, 50, 584); /* type 3 needs 648 */
	expect_fail(&b, TDC_E_FORMAT, 50, "body.size");
	put16(b.buf, 48, 2); /* type 2 needs 584 */
	put32(b.buf, 50, 648);
	expect_fail(&b, TDC_E_FORMAT, 50, "body.size");
	free(b.buf);
}

static void rejects_sig_data_len_too_large(void **state)
{
	(void)state;
	struct blob b = v4();
	put32(b.buf, V4_SIG_LEN, (uint32_t)(b.len - V4_SIG_DATA + 1));
	expect_fail(&b, TDC_E_FORMAT, V4_SIG_LEN, "sig_data_len");
	put32(b.buf, V4_SIG_LEN, 0xffffffffu);
	expect_fail(&b, TDC_E_FORMAT, V4_SIG_LEN, "sig_data_len");
	free(b.buf);
}

static void rejects_sig_data_not_filled(void **state)
{
	(void)state;
	struct blob b = v4();
	/* one more (zero) byte claimed by the signature data than its content uses */
	put32(b.buf, V4_SIG_LEN, get32(b.buf, V4_SIG_LEN) + 1);
	expect_fail(&b, TDC_E_FORMAT, V4_END, "signature data");
	free(b.buf);
}

static void rejects_outer_cert_type(void **state)
{
	(void)state;
	struct blob b = v4();
	put16(b.buf, V4_CERT_TYPE, 5);
	expect_fail(&b, TDC_E_FORMAT, V4_CERT_TYPE, "sig_data.cert_type");
	free(b.buf);
}

static void rejects_outer_cert_size_over_sig_data(void **state)
{
	(void)state;
	struct blob b = v4();
	put32(b.buf, V4_CERT_SIZE, get32(b.buf, V4_CERT_SIZE) + 1);
	expect_fail(&b, TDC_E_FORMAT, V4_CERT_SIZE, "sig_data.cert_size");
	free(b.buf);
}

static void rejects_outer_cert_data_not_filled(void **state)
{
	(void)state;
	struct blob b = v4();
	/* grow both the signature data and the type-6 data by one byte (a trailing zero) */
	put32(b.buf, V4_SIG_LEN, get32(b.buf, V4_SIG_LEN) + 1);
	put32(b.buf, V4_CERT_SIZE, get32(b.buf, V4_CERT_SIZE) + 1);
	expect_fail(&b, TDC_E_FORMAT, V4_END, "certification data (type 6)");
	free(b.buf);
}

static void rejects_inner_type_4(void **state)
{
	(void)state;
	struct blob b = v4();
	put16(b.buf, V4_INNER_TYPE, 4);
	expect_fail(&b, TDC_E_UNSUPPORTED, V4_INNER_TYPE, "qe_cert_data.cert_type");
	free(b.buf);
}

static void rejects_inner_type_unknown(void **state)
{
	(void)state;
	struct blob b = v4();
	put16(b.buf, V4_INNER_TYPE, 6);
	expect_fail(&b, TDC_E_FORMAT, V4_INNER_TYPE, "qe_cert_data.cert_type");
	put16(b.buf, V4_INNER_TYPE, 0);
	expect_fail(&b, TDC_E_FORMAT, V4_INNER_TYPE, "qe_cert_data.cert_type");
	free(b.buf);
}

static void rejects_auth_data_too_big(void **state)
{
	(void)state;
	struct blob b = v4();
	put16(b.buf, V4_AUTH_SIZE, TDC_MAX_QE_AUTH_DATA + 1);
	expect_fail(&b, TDC_E_LIMIT, V4_AUTH_SIZE, "qe_auth_data.size");
	free(b.buf);
}

static void rejects_auth_data_over_buffer(void **state)
{
	(void)state;
	struct blob b = v4();
	/* 3716 bytes follow the auth size field inside the type-6 data */
	put16(b.buf, V4_AUTH_SIZE, V4_END - V4_AUTH + 1);
	expect_fail(&b, TDC_E_FORMAT, V4_AUTH_SIZE, "qe_auth_data.size");
	free(b.buf);
}

static void rejects_pem_too_big(void **state)
{
	(void)state;
	struct blob b = v4();
	put32(b.buf, V4_INNER_SIZE, TDC_MAX_PCK_CHAIN_SIZE + 1);
	expect_fail(&b, TDC_E_LIMIT, V4_INNER_SIZE, "qe_cert_data.size");
	free(b.buf);
}

static void rejects_pem_over_buffer(void **state)
{
	(void)state;
	struct blob b = v4();
	put32(b.buf, V4_INNER_SIZE, get32(b.buf, V4_INNER_SIZE) + 1);
	expect_fail(&b, TDC_E_FORMAT, V4_INNER_SIZE, "qe_cert_data.size");
	free(b.buf);
}

static void rejects_pem_not_filling(void **state)
{
	(void)state;
	struct blob b = v4();
	/* a shorter PEM leaves one byte of the type-6 data unused */
	put32(b.buf, V4_INNER_SIZE, get32(b.buf, V4_INNER_SIZE) - 1);
	expect_fail(&b, TDC_E_FORMAT, V4_END - 1, "certification data (type 6)");
	free(b.buf);
}

static void rejects_empty_pem(void **state)
{
	(void)state;
	struct blob b = v4();
	memset(b.buf + V4_PEM, 0, V4_END - V4_PEM);
	expect_fail(&b, TDC_E_FORMAT, V4_PEM, "pck_chain");
	free(b.buf);
}

static void rejects_quote_over_limit(void **state)
{
	(void)state;
	struct blob b = v4();
	/* the same quote padded with zero bytes: exactly at the limit is fine */
	uint8_t *big = calloc(1, TDC_MAX_QUOTE_SIZE + 1);
	assert_non_null(big);
	memcpy(big, b.buf, b.len);
	struct tdc_quote q;
	assert_int_equal(tdc_quote_parse(big, TDC_MAX_QUOTE_SIZE, &q, NULL), 0);
	assert_int_equal(q.trailing_len, TDC_MAX_QUOTE_SIZE - V4_END);
	struct blob over = { big, TDC_MAX_QUOTE_SIZE + 1 };
	expect_fail(&over, TDC_E_LIMIT, TDC_MAX_QUOTE_SIZE, NULL);
	free(big);
	free(b.buf);
}

static void rejects_truncated_header(void **state)
{
	(void)state;
	struct blob b = v4();
	struct blob t = { b.buf, 10 };
	expect_fail(&t, TDC_E_FORMAT, 8, "header.reserved");
	t.len = 0;
	expect_fail(&t, TDC_E_FORMAT, 0, "header.version");
	t.len = V4_SIG_LEN + 2;
	expect_fail(&t, TDC_E_FORMAT, V4_SIG_LEN, "sig_data_len");
	free(b.buf);
}

static void rejects_null_arguments(void **state)
{
	(void)state;
	struct tdc_quote q;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_quote_parse(NULL, 10, &q, &e), TDC_E_USAGE);
	assert_int_equal(tdc_quote_parse((const uint8_t *)"", 0, NULL, NULL), TDC_E_USAGE);
}

/* ---- (b2) what kind of quote it is comes first (PROTOCOL.md §4.5) ---- */

static void expect_sgx(const struct blob *b, size_t offset, const char *detail_part)
{
	struct tdc_quote q;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_quote_parse(b->buf, b->len, &q, &e), TDC_E_UNSUPPORTED);
	if (strcmp(e.reason, "SGX quote (TEE type 0x0), not TDX") != 0 || e.offset != offset) {
		char msg[512];
		print_error("got %s at %zu\n", tdc_error_format(&e, msg, sizeof(msg)), e.offset);
	}
	assert_string_equal(e.reason, "SGX quote (TEE type 0x0), not TDX");
	assert_int_equal(e.offset, offset);
	assert_non_null(strstr(e.detail, detail_part));
}

/* A v3 SGX quote (synthetic: header, SGX report body, signature data) is an SGX quote,
 * not an "unsupported quote version". */
static void sgx_v3_named_before_version(void **state)
{
	(void)state;
	uint8_t rd[64] = { 1 };
	struct blob b;
	b.buf = ft_sgx_quote(3, TDC_TEE_TYPE_SGX, rd, &b.len);
	expect_sgx(&b, 4, "header.tee_type = 0x00000000");
	free(b.buf);

	/* the same two fields written into a real TDX quote */
	b = v4();
	put16(b.buf, 0, 3);
	put32(b.buf, 4, TDC_TEE_TYPE_SGX);
	expect_sgx(&b, 4, "header.version = 3");
	/* an SGX-only version whose bytes 4..7 are not a TEE type (EPID v2: the group ID) */
	put16(b.buf, 0, 2);
	put32(b.buf, 4, 0x00000b0a);
	expect_sgx(&b, 0, "SGX-only");
	free(b.buf);
}

/* tee_type 0 in a v4 or v5 header: SGX, before the version, the key type or the v5 body. */
static void sgx_tee_type_named_first(void **state)
{
	(void)state;
	struct blob b = v4();
	put32(b.buf, 4, TDC_TEE_TYPE_SGX);
	put16(b.buf, 2, 3); /* a key type tdcrypt does not take, too */
	expect_sgx(&b, 4, "header.version = 4");
	put16(b.buf, 0, 7); /* and a version */
	expect_sgx(&b, 4, "header.version = 7");
	free(b.buf);

	b = v5();
	put32(b.buf, 4, TDC_TEE_TYPE_SGX);
	expect_sgx(&b, 4, "header.version = 5");
	free(b.buf);

	/* an unknown TEE type is reported before an unknown version as well */
	b = v4();
	put32(b.buf, 4, 0x12345678);
	put16(b.buf, 0, 9);
	expect_fail(&b, TDC_E_UNSUPPORTED, 4, "0x12345678");
	free(b.buf);
}

/* tdc_quote_check_type on its own: TDX passes and fills the fields, offsets are those of
 * the enclosing input. */
static void check_type_alone(void **state)
{
	(void)state;
	struct blob b = v5();
	struct tdc_rd r, sub;
	struct tdc_quote_type t;
	struct tdc_error e;
	tdc_rd_init(&r, b.buf, b.len);
	assert_int_equal(tdc_quote_check_type(&r, &t, NULL), 0);
	assert_int_equal(t.version, 5);
	assert_int_equal(t.att_key_type, 2);
	assert_int_equal(t.tee_type, TDC_TEE_TYPE_TDX);
	assert_int_equal(tdc_rd_offset(&r), 8);

	/* an SGX header 100 bytes into a larger input */
	uint8_t buf[200] = { 0 };
	buf[100] = 3;
	buf[102] = 2;
	tdc_rd_init(&r, buf, sizeof(buf));
	assert_int_equal(tdc_rd_skip(&r, 100, "pad", NULL), 0);
	assert_int_equal(tdc_rd_sub(&r, 100, &sub, "quote", NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_quote_check_type(&sub, &t, &e), TDC_E_UNSUPPORTED);
	assert_int_equal(e.offset, 104);
	assert_int_equal(t.version, 3);
	/* too short to tell */
	const uint8_t six[6] = { 3, 0, 2, 0, 0, 0 };
	tdc_rd_init(&r, six, sizeof(six));
	tdc_error_clear(&e);
	assert_int_equal(tdc_quote_check_type(&r, &t, &e), TDC_E_FORMAT);
	assert_int_equal(e.offset, 4);
	free(b.buf);
}

/* ---- (c) robustness ---- */

/* Parses an exact-size heap copy, so ASan sees any read past the end. */
static int parse_copy(const uint8_t *src, size_t n, struct tdc_quote *q, struct tdc_error *e)
{
	uint8_t *c = malloc(n ? n : 1);
	assert_non_null(c);
	if (n)
		memcpy(c, src, n);
	tdc_error_clear(e);
	int r = tdc_quote_parse(c, n, q, e);
	free(c);
	return r;
}

static void check_result(int r, const struct tdc_error *e, const struct tdc_quote *q, size_t n)
{
	if (r == 0) {
		assert_int_equal(q->total_len + q->trailing_len, n);
		return;
	}
	assert_true(r == TDC_E_FORMAT || r == TDC_E_UNSUPPORTED || r == TDC_E_LIMIT);
	assert_int_equal(e->code, r);
	assert_true(e->offset <= n);
}

static void truncate_everywhere(const char *file)
{
	struct blob b = load(file);
	struct tdc_quote q;
	struct tdc_error e;
	assert_int_equal(tdc_quote_parse(b.buf, b.len, &q, NULL), 0);
	size_t end = q.total_len;
	for (size_t n = 0; n <= b.len; n++) {
		int r = parse_copy(b.buf, n, &q, &e);
		check_result(r, &e, &q, n);
		if (n < end)
			assert_int_equal(r, TDC_E_FORMAT);
		else
			assert_int_equal(r, 0);
	}
	free(b.buf);
}

static void truncation_v4(void **state)
{
	(void)state;
	truncate_everywhere("dcap-qvl/tdx_quote");
}

static void truncation_v5(void **state)
{
	(void)state;
	truncate_everywhere("go-tdx-guest/quote_v5_sample.dat");
}

static void xor_everywhere(const char *file)
{
	struct blob b = load(file);
	uint8_t *c = malloc(b.len);
	assert_non_null(c);
	memcpy(c, b.buf, b.len);
	size_t ok = 0, failed = 0;
	for (size_t i = 0; i < 1300 && i < b.len; i++) {
		for (unsigned x = 1; x < 256; x++) {
			struct tdc_quote q;
			struct tdc_error e;
			tdc_error_clear(&e);
			c[i] = (uint8_t)(b.buf[i] ^ x);
			int r = tdc_quote_parse(c, b.len, &q, &e);
			check_result(r, &e, &q, b.len);
			if (r == 0)
				ok++;
			else
				failed++;
		}
		c[i] = b.buf[i];
	}
	/* most flips land in data fields (still parse); the checked fields must fail */
	assert_true(ok > 0 && failed > 0);
	free(c);
	free(b.buf);
}

static void xor_flips_v4(void **state)
{
	(void)state;
	xor_everywhere("dcap-qvl/tdx_quote");
}

static void xor_flips_v5(void **state)
{
	(void)state;
	xor_everywhere("go-tdx-guest/quote_v5_sample.dat");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vectors_quote_facts),
		cmocka_unit_test(all_testdata_quotes_parse),
		cmocka_unit_test(v4_layout_offsets),
		cmocka_unit_test(v5_layout_offsets),
		cmocka_unit_test(attribute_names),
		cmocka_unit_test(rejects_version_3),
		cmocka_unit_test(rejects_key_type_3),
		cmocka_unit_test(rejects_tee_type_sgx),
		cmocka_unit_test(rejects_vendor_id),
		cmocka_unit_test(rejects_v5_body_type_sgx),
		cmocka_unit_test(rejects_v5_body_type_4),
		cmocka_unit_test(rejects_v5_body_size_mismatch),
		cmocka_unit_test(rejects_sig_data_len_too_large),
		cmocka_unit_test(rejects_sig_data_not_filled),
		cmocka_unit_test(rejects_outer_cert_type),
		cmocka_unit_test(rejects_outer_cert_size_over_sig_data),
		cmocka_unit_test(rejects_outer_cert_data_not_filled),
		cmocka_unit_test(rejects_inner_type_4),
		cmocka_unit_test(rejects_inner_type_unknown),
		cmocka_unit_test(rejects_auth_data_too_big),
		cmocka_unit_test(rejects_auth_data_over_buffer),
		cmocka_unit_test(rejects_pem_too_big),
		cmocka_unit_test(rejects_pem_over_buffer),
		cmocka_unit_test(rejects_pem_not_filling),
		cmocka_unit_test(rejects_empty_pem),
		cmocka_unit_test(rejects_quote_over_limit),
		cmocka_unit_test(rejects_truncated_header),
		cmocka_unit_test(rejects_null_arguments),
		cmocka_unit_test(sgx_v3_named_before_version),
		cmocka_unit_test(sgx_tee_type_named_first),
		cmocka_unit_test(check_type_alone),
		cmocka_unit_test(truncation_v4),
		cmocka_unit_test(truncation_v5),
		cmocka_unit_test(xor_flips_v4),
		cmocka_unit_test(xor_flips_v5),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
