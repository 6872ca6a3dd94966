/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TDVF metadata and MRTD: synthetic firmware images built here (the OVMF GUIDed table at the
 * end, the "TDVF" descriptor it points to), checked against an independent replay of the
 * TDX module's PAGE.ADD / MR.EXTEND records; every refusal of the parser fails alone, with
 * its code and reason; truncations and byte flips never crash. Then Debian's real OVMF.fd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "tdcrypt/measure.h"
#include "util/util.h"
#include "measure-test.h"

#define PAGE 4096u
#define CHUNK 256u
#define RECORD 128u

/* The synthetic image: 64 KiB mapped just below 4 GiB.
 *   [0x0000, 0x2000)  CFV
 *   [0x2000, 0x3000)  not in any section; the TDVF descriptor at 0x2800
 *   [0x3000, 0xf000)  BFV (MR.EXTEND)
 *   [0xf000, 0x10000) not in any section; the GUIDed table and the reset vector at the end
 * plus a TD_HOB and a TEMP_MEM section in low memory. */
#define IMG_LEN 0x10000u
#define IMG_BASE 0xffff0000u
#define DESC_OFF 0x2800u
#define GAP_OFF 0x2100u   /* a byte outside every section, before the descriptor */
#define TAIL_OFF 0xf100u  /* another, in the last page */
#define CFV_BYTE 0x1234u  /* inside the CFV */
#define BFV_BYTE 0x7777u  /* inside the BFV */

/* The small image (truncation and flip loops): 24 KiB.
 *   [0x0000, 0x1000) CFV; [0x1000, 0x2000) descriptor at 0x1800; [0x2000, 0x5000) BFV;
 *   [0x5000, 0x6000) GUIDed table */
#define SMALL_LEN 0x6000u
#define SMALL_DESC 0x1800u

#define MAX_SPEC 40u

/* GUIDed table layout, from the end of the image (see tdvf.c). */
#define T_LENGTH(len) ((len) - 0x32u)          /* u16 table length; entries end here */
#define T_FOOTER(len) ((len) - 0x30u)          /* footer GUID */
#define E1_LEN(len) (T_LENGTH(len) - 18u)      /* the other entry, nearest the footer */
#define E1_GUID(len) (T_LENGTH(len) - 16u)
#define E2_DATA(len) (T_LENGTH(len) - 44u)     /* the TDX metadata offset entry */
#define E2_LEN(len) (T_LENGTH(len) - 40u)
#define E2_GUID(len) (T_LENGTH(len) - 38u)
#define TABLE_LEN (18u + 22u + 22u)

/* Descriptor fields, from the descriptor; section fields, from section i's entry. */
#define D_SIG 0u
#define D_LENGTH 4u
#define D_VERSION 8u
#define D_N 12u
#define S_ENTRY(i) (16u + 32u * (i))

static const uint8_t footer_guid[16] = {
	0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45,
	0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d };
static const uint8_t tdx_guid[16] = {
	0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47,
	0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2 };
/* SEV metadata GUID (dc886566-984a-4798-a75e-5585a7bf67cc): another entry to walk past */
static const uint8_t other_guid[16] = {
	0x66, 0x65, 0x88, 0xdc, 0x4a, 0x98, 0x98, 0x47,
	0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc };

struct spec {
	size_t len;
	size_t desc_off;
	uint32_t n; /* number of entries written and declared */
	struct tdc_tdvf_section s[MAX_SPEC];
};

static void put16(uint8_t *b, size_t off, uint16_t v)
{
	b[off] = (uint8_t)v;
	b[off + 1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *b, size_t off, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		b[off + i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *b, size_t off, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		b[off + i] = (uint8_t)(v >> (8 * i));
}

static struct tdc_tdvf_section sec(uint32_t type, uint32_t off, uint32_t raw, uint64_t gpa,
				   uint64_t mem, uint32_t attr)
{
	return (struct tdc_tdvf_section){ .data_offset = off, .raw_size = raw, .gpa = gpa,
					  .mem_size = mem, .type = type, .attributes = attr };
}

/* One section of every type, in the order OVMF lists them. */
static struct spec default_spec(void)
{
	struct spec sp = { .len = IMG_LEN, .desc_off = DESC_OFF, .n = 4 };
	sp.s[0] = sec(TDC_TDVF_BFV, 0x3000, 0xc000, IMG_BASE + 0x3000, 0xc000,
		      TDC_TDVF_ATTR_MR_EXTEND);
	sp.s[1] = sec(TDC_TDVF_CFV, 0, 0x2000, IMG_BASE, 0x2000, 0);
	sp.s[2] = sec(TDC_TDVF_TD_HOB, 0, 0, 0x809000, 0x2000, 0);
	sp.s[3] = sec(TDC_TDVF_TEMP_MEM, 0, 0, 0x800000, 0x6000, 0);
	return sp;
}

static struct spec small_spec(void)
{
	struct spec sp = { .len = SMALL_LEN, .desc_off = SMALL_DESC, .n = 4 };
	uint64_t base = 0x100000000ull - SMALL_LEN;
	sp.s[0] = sec(TDC_TDVF_BFV, 0x2000, 0x3000, base + 0x2000, 0x3000,
		      TDC_TDVF_ATTR_MR_EXTEND);
	sp.s[1] = sec(TDC_TDVF_CFV, 0, 0x1000, base, 0x1000, 0);
	sp.s[2] = sec(TDC_TDVF_TD_HOB, 0, 0, 0x809000, 0x1000, 0);
	sp.s[3] = sec(TDC_TDVF_TEMP_MEM, 0, 0, 0x800000, 0x2000, 0);
	return sp;
}

/* The image of sp (malloc'd, exactly sp->len bytes): a byte pattern everywhere, then the
 * descriptor and the GUIDed table. */
static uint8_t *build(const struct spec *sp)
{
	size_t len = sp->len;
	uint8_t *b = malloc(len);
	assert_non_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(i * 31u + (i >> 8) * 7u + 1u);

	uint8_t *d = b + sp->desc_off;
	memcpy(d + D_SIG, "TDVF", 4);
	put32(d, D_LENGTH, 16u + 32u * sp->n);
	put32(d, D_VERSION, 1);
	put32(d, D_N, sp->n);
	for (uint32_t i = 0; i < sp->n; i++) {
		const struct tdc_tdvf_section *s = &sp->s[i];
		put32(d, S_ENTRY(i) + 0, s->data_offset);
		put32(d, S_ENTRY(i) + 4, s->raw_size);
		put64(d, S_ENTRY(i) + 8, s->gpa);
		put64(d, S_ENTRY(i) + 16, s->mem_size);
		put32(d, S_ENTRY(i) + 24, s->type);
		put32(d, S_ENTRY(i) + 28, s->attributes);
	}

	/* the table, backwards from the footer: another entry, then the TDX one */
	memcpy(b + T_FOOTER(len), footer_guid, 16);
	put16(b, T_LENGTH(len), TABLE_LEN);
	memcpy(b + E1_GUID(len), other_guid, 16);
	put16(b, E1_LEN(len), 22);
	put32(b, E1_LEN(len) - 4, 0x12345678u);
	memcpy(b + E2_GUID(len), tdx_guid, 16);
	put16(b, E2_LEN(len), 22);
	put32(b, E2_DATA(len), (uint32_t)(len - sp->desc_off));
	return b;
}

/* ---- the reference: the records the TDX module hashes, written out independently ---- */

static void ref_record(EVP_MD_CTX *md, const char *op, uint64_t gpa)
{
	uint8_t r[RECORD];
	memset(r, 0, sizeof(r));
	assert_true(strlen(op) <= 16);
	memcpy(r, op, strlen(op));
	for (unsigned i = 0; i < 8; i++)
		r[16 + i] = (uint8_t)(gpa >> (8 * i));
	assert_int_equal(EVP_DigestUpdate(md, r, sizeof(r)), 1);
}

static void ref_extend_page(EVP_MD_CTX *md, const uint8_t *img, size_t len, uint64_t off,
			    uint64_t gpa)
{
	assert_true(off + PAGE <= len);
	for (unsigned c = 0; c < PAGE / CHUNK; c++) {
		ref_record(md, "MR.EXTEND", gpa + c * CHUNK);
		assert_int_equal(EVP_DigestUpdate(md, img + off + c * CHUNK, CHUNK), 1);
	}
}

static void ref_mrtd(const uint8_t *img, size_t len, const struct tdc_tdvf_section *s, size_t n,
		     bool two_pass, uint8_t out[48])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int olen = 0;
	assert_non_null(md);
	assert_int_equal(EVP_DigestInit_ex(md, EVP_sha384(), NULL), 1);
	for (size_t i = 0; i < n; i++) {
		bool ext = s[i].attributes & TDC_TDVF_ATTR_MR_EXTEND;
		uint64_t pages = s[i].mem_size / PAGE;
		for (uint64_t p = 0; p < pages; p++) {
			ref_record(md, "MEM.PAGE.ADD", s[i].gpa + p * PAGE);
			if (ext && !two_pass)
				ref_extend_page(md, img, len, s[i].data_offset + p * PAGE,
						s[i].gpa + p * PAGE);
		}
		for (uint64_t p = 0; ext && two_pass && p < pages; p++)
			ref_extend_page(md, img, len, s[i].data_offset + p * PAGE,
					s[i].gpa + p * PAGE);
	}
	assert_int_equal(EVP_DigestFinal_ex(md, out, &olen), 1);
	assert_int_equal(olen, 48);
	EVP_MD_CTX_free(md);
}

static void assert_hex(const uint8_t *b, size_t n, const char *want)
{
	char h[2 * 64 + 1];
	assert_true(n <= 64);
	tdc_hex_encode(b, n, h);
	assert_string_equal(h, want);
}

/* Parses and computes the MRTD of img in both orders; all must succeed. */
static void mrtd_both(const uint8_t *img, size_t len, uint8_t single[48], uint8_t two[48])
{
	struct tdc_tdvf t;
	struct tdc_error e;
	char msg[512];
	tdc_error_clear(&e);
	int r = tdc_tdvf_parse(img, len, &t, &e);
	if (r)
		print_error("parse: %s\n", tdc_error_format(&e, msg, sizeof(msg)));
	assert_int_equal(r, 0);
	assert_int_equal(tdc_tdvf_mrtd(img, len, &t, TDC_MRTD_SINGLE_PASS, single, &e), 0);
	assert_int_equal(tdc_tdvf_mrtd(img, len, &t, TDC_MRTD_TWO_PASS, two, &e), 0);
}

/* Expects the parser to refuse img with code, its error text containing want. */
static void expect_refused(const uint8_t *img, size_t len, int code, const char *want)
{
	struct tdc_tdvf t;
	struct tdc_error e;
	char msg[512];
	tdc_error_clear(&e);
	int r = tdc_tdvf_parse(img, len, &t, &e);
	tdc_error_format(&e, msg, sizeof(msg));
	if (r != code || !strstr(msg, want))
		print_error("got %d (%s): %s; expected %s, \"%s\"\n", r, tdc_err_name(r), msg,
			    tdc_err_name(code), want);
	assert_int_equal(r, code);
	assert_int_equal(e.code, code);
	assert_non_null(e.reason);
	assert_true(e.reason[0] != '\0');
	assert_non_null(strstr(msg, want));
}

/* Builds sp and expects it refused. */
static void expect_spec_refused(const struct spec *sp, int code, const char *want)
{
	uint8_t *b = build(sp);
	expect_refused(b, sp->len, code, want);
	free(b);
}

/* Builds the default image, patches one u32 at off (absolute) and expects it refused. */
static void expect_patch32_refused(size_t off, uint32_t v, int code, const char *want)
{
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	put32(b, off, v);
	expect_refused(b, sp.len, code, want);
	free(b);
}

static void expect_patch16_refused(size_t off, uint16_t v, int code, const char *want)
{
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	put16(b, off, v);
	expect_refused(b, sp.len, code, want);
	free(b);
}

/* ---- valid images ---- */

static void test_valid_image_parses(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	struct tdc_tdvf t;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_tdvf_parse(b, sp.len, &t, &e), 0);
	assert_int_equal(t.version, 1);
	assert_int_equal(t.descriptor_offset, DESC_OFF);
	assert_int_equal(t.n, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(t.s[i].data_offset, sp.s[i].data_offset);
		assert_int_equal(t.s[i].raw_size, sp.s[i].raw_size);
		assert_int_equal(t.s[i].gpa, sp.s[i].gpa);
		assert_int_equal(t.s[i].mem_size, sp.s[i].mem_size);
		assert_int_equal(t.s[i].type, sp.s[i].type);
		assert_int_equal(t.s[i].attributes, sp.s[i].attributes);
	}
	/* a NULL error is allowed */
	assert_int_equal(tdc_tdvf_parse(b, sp.len, &t, NULL), 0);
	free(b);
}

static void test_valid_image_mrtd(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	uint8_t single[48], two[48], want[48];
	mrtd_both(b, sp.len, single, two);
	ref_mrtd(b, sp.len, sp.s, sp.n, false, want);
	assert_memory_equal(single, want, 48);
	ref_mrtd(b, sp.len, sp.s, sp.n, true, want);
	assert_memory_equal(two, want, 48);
	assert_memory_not_equal(single, two, 48);
	free(b);
}

/* A section without MR.EXTEND only: both orders are the same. */
static void test_orders_equal_without_extend(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[0].attributes = 0;
	uint8_t *b = build(&sp);
	uint8_t single[48], two[48], want[48];
	mrtd_both(b, sp.len, single, two);
	ref_mrtd(b, sp.len, sp.s, sp.n, false, want);
	assert_memory_equal(single, want, 48);
	assert_memory_equal(two, want, 48);
	free(b);
}

/* The metadata order counts, not the GPA order. */
static void test_section_order_counts(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	uint8_t a[48], a2[48], c[48], c2[48], want[48];
	mrtd_both(b, sp.len, a, a2);
	free(b);
	struct tdc_tdvf_section tmp = sp.s[2];
	sp.s[2] = sp.s[3];
	sp.s[3] = tmp;
	b = build(&sp);
	mrtd_both(b, sp.len, c, c2);
	ref_mrtd(b, sp.len, sp.s, sp.n, false, want);
	assert_memory_equal(c, want, 48);
	assert_memory_not_equal(a, c, 48);
	free(b);
}

static void test_known_vector(void **state)
{
	(void)state;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t out[48];
	unsigned int olen = 0;
	assert_non_null(md);
	assert_int_equal(EVP_DigestInit_ex(md, EVP_sha384(), NULL), 1);
	ref_record(md, "MEM.PAGE.ADD", 0xffe20000u);
	assert_int_equal(EVP_DigestFinal_ex(md, out, &olen), 1);
	EVP_MD_CTX_free(md);
	assert_hex(out, 48, "d8f262f447c1d4c10821adc791faad39e6fa86679c72eaf618e8f6f5bdeb5457"
			    "c6477341ec011c5670d0f4ae8ecee888");
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(tdc_tdvf_type_name(TDC_TDVF_BFV), "BFV");
	assert_string_equal(tdc_tdvf_type_name(TDC_TDVF_CFV), "CFV");
	assert_string_equal(tdc_tdvf_type_name(TDC_TDVF_TD_HOB), "TD_HOB");
	assert_string_equal(tdc_tdvf_type_name(TDC_TDVF_TEMP_MEM), "TempMem");
	assert_string_equal(tdc_tdvf_type_name(1000), "unknown");
	assert_string_equal(tdc_mrtd_order_name(TDC_MRTD_SINGLE_PASS), "single-pass");
	assert_string_equal(tdc_mrtd_order_name(TDC_MRTD_TWO_PASS), "two-pass");
}

/* ---- what the MRTD covers ---- */

/* MRTD of the default image with byte off xor'ed, in both orders. */
static void mrtd_flipped(const struct spec *sp, size_t off, uint8_t single[48], uint8_t two[48])
{
	uint8_t *b = build(sp);
	b[off] ^= 0x5a;
	mrtd_both(b, sp->len, single, two);
	free(b);
}

static void test_bfv_byte_counts(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	uint8_t s0[48], t0[48], s1[48], t1[48];
	mrtd_both(b, sp.len, s0, t0);
	free(b);
	mrtd_flipped(&sp, BFV_BYTE, s1, t1);
	assert_memory_not_equal(s0, s1, 48);
	assert_memory_not_equal(t0, t1, 48);
	/* its last byte too */
	mrtd_flipped(&sp, sp.s[0].data_offset + sp.s[0].raw_size - 1, s1, t1);
	assert_memory_not_equal(s0, s1, 48);
	assert_memory_not_equal(t0, t1, 48);
}

static void test_cfv_byte_does_not_count(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	uint8_t s0[48], t0[48], s1[48], t1[48];
	mrtd_both(b, sp.len, s0, t0);
	free(b);
	mrtd_flipped(&sp, CFV_BYTE, s1, t1);
	assert_memory_equal(s0, s1, 48);
	assert_memory_equal(t0, t1, 48);
}

static void test_bytes_outside_sections_do_not_count(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	uint8_t s0[48], t0[48], s1[48], t1[48];
	mrtd_both(b, sp.len, s0, t0);
	free(b);
	mrtd_flipped(&sp, GAP_OFF, s1, t1);
	assert_memory_equal(s0, s1, 48);
	assert_memory_equal(t0, t1, 48);
	mrtd_flipped(&sp, TAIL_OFF, s1, t1);
	assert_memory_equal(s0, s1, 48);
	assert_memory_equal(t0, t1, 48);
	/* the reset vector */
	mrtd_flipped(&sp, sp.len - 1, s1, t1);
	assert_memory_equal(s0, s1, 48);
	assert_memory_equal(t0, t1, 48);
}

/* ---- attributes ---- */

static void test_mr_extend_on_cfv_counts(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[1].attributes = TDC_TDVF_ATTR_MR_EXTEND;
	uint8_t *b = build(&sp);
	uint8_t s0[48], t0[48], s1[48], t1[48], want[48];
	mrtd_both(b, sp.len, s0, t0);
	ref_mrtd(b, sp.len, sp.s, sp.n, false, want);
	assert_memory_equal(s0, want, 48);
	ref_mrtd(b, sp.len, sp.s, sp.n, true, want);
	assert_memory_equal(t0, want, 48);
	free(b);
	mrtd_flipped(&sp, CFV_BYTE, s1, t1);
	assert_memory_not_equal(s0, s1, 48);
	assert_memory_not_equal(t0, t1, 48);
}

static void test_page_aug_unsupported(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[3].attributes = TDC_TDVF_ATTR_PAGE_AUG;
	expect_spec_refused(&sp, TDC_E_UNSUPPORTED, "PAGE.AUG");
	sp = default_spec();
	sp.s[0].attributes = TDC_TDVF_ATTR_MR_EXTEND | TDC_TDVF_ATTR_PAGE_AUG;
	expect_spec_refused(&sp, TDC_E_UNSUPPORTED, "PAGE.AUG");
}

static void test_unknown_attribute(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[1].attributes = 0x4;
	expect_spec_refused(&sp, TDC_E_FORMAT, "unknown TDVF section attribute");
	sp = default_spec();
	sp.s[0].attributes = TDC_TDVF_ATTR_MR_EXTEND | 0x80000000u;
	expect_spec_refused(&sp, TDC_E_FORMAT, "unknown TDVF section attribute");
}

static void test_mr_extend_on_td_hob(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[2].attributes = TDC_TDVF_ATTR_MR_EXTEND;
	expect_spec_refused(&sp, TDC_E_FORMAT, "MR.EXTEND");
}

static void test_mr_extend_on_temp_mem(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[3].attributes = TDC_TDVF_ATTR_MR_EXTEND;
	expect_spec_refused(&sp, TDC_E_FORMAT, "MR.EXTEND");
}

/* ---- malformed: the GUIDed table ---- */

static void test_too_small(void **state)
{
	(void)state;
	uint8_t b[0x31];
	memset(b, 0, sizeof(b));
	expect_refused(b, sizeof(b), TDC_E_FORMAT, "too small");
	expect_refused(b, 0, TDC_E_FORMAT, "too small");
	/* the footer GUID fits, its length does not */
	uint8_t *c = malloc(0x31);
	assert_non_null(c);
	memset(c, 0, 0x31);
	memcpy(c + 1, footer_guid, 16);
	expect_refused(c, 0x31, TDC_E_FORMAT, "too small");
	free(c);
}

static void test_no_footer(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	b[T_FOOTER(sp.len) + 15] ^= 1;
	expect_refused(b, sp.len, TDC_E_FORMAT, "no OVMF GUIDed table footer");
	free(b);
}

static void test_table_length_too_big(void **state)
{
	(void)state;
	/* the entries would start before the image */
	expect_patch16_refused(T_LENGTH(IMG_LEN), (uint16_t)(T_LENGTH(IMG_LEN) + 18u + 1u),
			       TDC_E_FORMAT, "bad GUIDed table length");
	expect_patch16_refused(T_LENGTH(IMG_LEN), 0xffff, TDC_E_FORMAT,
			       "bad GUIDed table length");
}

static void test_table_length_short(void **state)
{
	(void)state;
	expect_patch16_refused(T_LENGTH(IMG_LEN), 17, TDC_E_FORMAT, "bad GUIDed table length");
	expect_patch16_refused(T_LENGTH(IMG_LEN), 0, TDC_E_FORMAT, "bad GUIDed table length");
}

static void test_entry_length_zero(void **state)
{
	(void)state;
	expect_patch16_refused(E1_LEN(IMG_LEN), 0, TDC_E_FORMAT, "bad GUIDed entry length");
	expect_patch16_refused(E2_LEN(IMG_LEN), 0, TDC_E_FORMAT, "bad GUIDed entry length");
}

static void test_entry_length_beyond_table(void **state)
{
	(void)state;
	/* 44 bytes of entries: the first may not claim 45, the second not 23 */
	expect_patch16_refused(E1_LEN(IMG_LEN), 45, TDC_E_FORMAT, "bad GUIDed entry length");
	expect_patch16_refused(E2_LEN(IMG_LEN), 23, TDC_E_FORMAT, "bad GUIDed entry length");
}

static void test_tdx_entry_wrong_size(void **state)
{
	(void)state;
	/* the TDX entry as the only one, with 8 bytes of data */
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	put16(b, E1_LEN(sp.len), 18u + 26u);
	memcpy(b + E1_GUID(sp.len), tdx_guid, 16);
	expect_refused(b, sp.len, TDC_E_FORMAT, "bad TDX metadata offset entry");
	free(b);
}

static void test_no_tdx_entry(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	b[E2_GUID(sp.len)] ^= 0x80;
	expect_refused(b, sp.len, TDC_E_UNSUPPORTED, "no TDX metadata");
	free(b);
	/* an empty table */
	expect_patch16_refused(T_LENGTH(IMG_LEN), 18, TDC_E_UNSUPPORTED, "no TDX metadata");
	/* a table that ends before the TDX entry */
	expect_patch16_refused(T_LENGTH(IMG_LEN), 18 + 22, TDC_E_UNSUPPORTED, "no TDX metadata");
	/* the smallest image with a table: an empty one */
	uint8_t c[0x32];
	memset(c, 0, sizeof(c));
	put16(c, 0, 18);
	memcpy(c + 2, footer_guid, 16);
	expect_refused(c, sizeof(c), TDC_E_UNSUPPORTED, "no TDX metadata");
}

/* ---- malformed: the descriptor ---- */

static void test_offset_beyond_image(void **state)
{
	(void)state;
	expect_patch32_refused(E2_DATA(IMG_LEN), IMG_LEN + 1u, TDC_E_FORMAT,
			       "TDX metadata offset outside the image");
	expect_patch32_refused(E2_DATA(IMG_LEN), 0xffffffffu, TDC_E_FORMAT,
			       "TDX metadata offset outside the image");
	/* too close to the end for a descriptor header */
	expect_patch32_refused(E2_DATA(IMG_LEN), 8, TDC_E_FORMAT,
			       "TDX metadata offset outside the image");
}

static void test_descriptor_beyond_image(void **state)
{
	(void)state;
	/* a descriptor 24 bytes before the end: its header fits, its section entries do not */
	struct spec sp = default_spec();
	uint8_t *b = build(&sp);
	memmove(b + sp.len - 24, b + sp.desc_off, 16);
	put32(b, E2_DATA(sp.len), 24);
	expect_refused(b, sp.len, TDC_E_FORMAT, "truncated");
	free(b);
}

static void test_wrong_signature(void **state)
{
	(void)state;
	expect_patch32_refused(DESC_OFF + D_SIG, 0x58564454u /* "TDVX" */, TDC_E_FORMAT,
			       "no TDVF descriptor");
}

static void test_version_2(void **state)
{
	(void)state;
	expect_patch32_refused(DESC_OFF + D_VERSION, 2, TDC_E_UNSUPPORTED,
			       "unsupported TDVF metadata version");
}

static void test_one_section(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.n = 1;
	expect_spec_refused(&sp, TDC_E_FORMAT, "bad number of TDVF sections");
	sp.n = 0;
	expect_spec_refused(&sp, TDC_E_FORMAT, "bad number of TDVF sections");
}

static void test_33_sections(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	/* 33 valid, disjoint TEMP_MEM sections after the first four */
	sp.n = 33;
	for (uint32_t i = 4; i < 33; i++)
		sp.s[i] = sec(TDC_TDVF_TEMP_MEM, 0, 0, 0x1000000u + i * PAGE, PAGE, 0);
	expect_spec_refused(&sp, TDC_E_LIMIT, "bad number of TDVF sections");
	/* 32 are fine */
	sp.n = 32;
	uint8_t *b = build(&sp);
	struct tdc_tdvf t;
	assert_int_equal(tdc_tdvf_parse(b, sp.len, &t, NULL), 0);
	assert_int_equal(t.n, 32);
	free(b);
}

static void test_length_mismatch(void **state)
{
	(void)state;
	expect_patch32_refused(DESC_OFF + D_LENGTH, 16u + 32u * 4u + 1u, TDC_E_FORMAT,
			       "TDVF descriptor length mismatch");
	expect_patch32_refused(DESC_OFF + D_LENGTH, 16u + 32u * 3u, TDC_E_FORMAT,
			       "TDVF descriptor length mismatch");
}

/* ---- malformed: sections ---- */

static void test_unaligned_gpa(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[3].gpa += 0x100;
	expect_spec_refused(&sp, TDC_E_FORMAT, "unaligned TDVF section");
}

static void test_unaligned_size(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[3].mem_size += 1;
	expect_spec_refused(&sp, TDC_E_FORMAT, "unaligned TDVF section");
}

static void test_size_zero(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[3].mem_size = 0;
	expect_spec_refused(&sp, TDC_E_FORMAT, "unaligned TDVF section");
}

static void test_raw_larger_than_memory(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[1].raw_size = 0x3000;
	expect_spec_refused(&sp, TDC_E_FORMAT, "TDVF section data larger than its memory");
}

static void test_bfv_without_data(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[0].raw_size = 0;
	expect_spec_refused(&sp, TDC_E_FORMAT, "TDVF section data size wrong for its type");
}

static void test_td_hob_with_data(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[2].raw_size = 0x1000;
	expect_spec_refused(&sp, TDC_E_FORMAT, "TDVF section data size wrong for its type");
}

static void test_data_beyond_file(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	/* the BFV's data would end 0x1000 after the image */
	sp.s[0].data_offset = 0x5000;
	expect_spec_refused(&sp, TDC_E_FORMAT, "TDVF section data outside the image");
	/* a CFV's too, measured or not */
	sp = default_spec();
	sp.s[1].data_offset = 0xf000;
	expect_spec_refused(&sp, TDC_E_FORMAT, "TDVF section data outside the image");
	/* an offset that wraps in 32 bits */
	sp = default_spec();
	sp.s[1].data_offset = 0xfffff000u;
	expect_spec_refused(&sp, TDC_E_FORMAT, "TDVF section data outside the image");
}

static void test_extended_memory_beyond_file(void **state)
{
	(void)state;
	/* MR.EXTEND reads all the section's memory pages from the file, not only its raw data */
	struct spec sp = default_spec();
	sp.s[0].raw_size = 0x1000;
	sp.s[0].data_offset = 0x5000;
	expect_spec_refused(&sp, TDC_E_FORMAT, "TDVF section data outside the image");
}

static void test_overlapping_sections(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	/* the TEMP_MEM's last page is the TD_HOB's first */
	sp.s[3].mem_size = 0xa000;
	expect_spec_refused(&sp, TDC_E_FORMAT, "overlapping TDVF sections");
	/* one inside another */
	sp = default_spec();
	sp.s[3].gpa = sp.s[0].gpa + PAGE;
	sp.s[3].mem_size = PAGE;
	expect_spec_refused(&sp, TDC_E_FORMAT, "overlapping TDVF sections");
}

static void test_adjacent_sections(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	/* TEMP_MEM ends where the TD_HOB starts */
	sp.s[3].mem_size = 0x9000;
	uint8_t *b = build(&sp);
	struct tdc_tdvf t;
	assert_int_equal(tdc_tdvf_parse(b, sp.len, &t, NULL), 0);
	free(b);
}

static void test_two_td_hobs(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[3].type = TDC_TDVF_TD_HOB;
	expect_spec_refused(&sp, TDC_E_FORMAT, "one TD_HOB");
}

static void test_no_td_hob(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[2].type = TDC_TDVF_TEMP_MEM;
	expect_spec_refused(&sp, TDC_E_FORMAT, "one TD_HOB");
}

static void test_no_bfv(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[0].type = TDC_TDVF_CFV;
	expect_spec_refused(&sp, TDC_E_FORMAT, "one TD_HOB and a BFV");
}

static void test_type_4(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[3].type = 4;
	expect_spec_refused(&sp, TDC_E_UNSUPPORTED, "TDVF section type not supported");
	sp.s[3].type = 0xffffffffu;
	expect_spec_refused(&sp, TDC_E_UNSUPPORTED, "TDVF section type not supported");
}

static void test_gpa_beyond_4g(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[3].gpa = 0x100000000ull;
	sp.s[3].mem_size = PAGE;
	expect_spec_refused(&sp, TDC_E_FORMAT, "TDVF section beyond 4 GiB");
	/* crossing 4 GiB */
	sp = default_spec();
	sp.s[0].gpa += 0x2000;
	expect_spec_refused(&sp, TDC_E_FORMAT, "TDVF section beyond 4 GiB");
	/* wrapping around 64 bits */
	sp = default_spec();
	sp.s[3].gpa = 0xfffffffffffff000ull;
	sp.s[3].mem_size = 0x2000;
	expect_spec_refused(&sp, TDC_E_FORMAT, "TDVF section beyond 4 GiB");
}

/* Ends exactly at 4 GiB: accepted. */
static void test_section_up_to_4g(void **state)
{
	(void)state;
	struct spec sp = default_spec();
	sp.s[0].gpa = 0x100000000ull - sp.s[0].mem_size;
	uint8_t *b = build(&sp);
	struct tdc_tdvf t;
	assert_int_equal(tdc_tdvf_parse(b, sp.len, &t, NULL), 0);
	free(b);
}

/* ---- robustness ---- */

static int tdvf_parse(const uint8_t *b, size_t len, struct tdc_error *e)
{
	struct tdc_tdvf t;
	return tdc_tdvf_parse(b, len, &t, e);
}

static void test_truncation(void **state)
{
	(void)state;
	struct spec sp = small_spec();
	uint8_t *b = build(&sp);
	uint8_t single[48], two[48];
	mrtd_both(b, sp.len, single, two); /* the whole image is valid */
	mt_check_prefixes(b, sp.len, tdvf_parse, SIZE_MAX);
	free(b);
}

static uint64_t total_memory(const struct tdc_tdvf *t)
{
	uint64_t m = 0;
	for (size_t i = 0; i < t->n; i++)
		m += t->s[i].mem_size;
	return m;
}

/* Flips every bit pattern of every byte of the metadata (descriptor and GUIDed table). */
static void test_metadata_flips(void **state)
{
	(void)state;
	struct spec sp = small_spec();
	uint8_t *b = build(&sp);
	size_t ranges[2][2] = {
		{ sp.desc_off, sp.desc_off + 16u + 32u * sp.n },
		{ E2_DATA(sp.len), sp.len - 0x20u },
	};
	size_t ok = 0, failed = 0;
	for (size_t k = 0; k < 2; k++) {
		for (size_t i = ranges[k][0]; i < ranges[k][1]; i++) {
			uint8_t orig = b[i];
			for (unsigned x = 1; x < 256; x++) {
				struct tdc_tdvf t;
				struct tdc_error e;
				tdc_error_clear(&e);
				b[i] = (uint8_t)(orig ^ x);
				int r = tdc_tdvf_parse(b, sp.len, &t, &e);
				if (r) {
					mt_check_refusal(r, &e);
					failed++;
					continue;
				}
				ok++;
				assert_true(t.n >= 2 && t.n <= TDC_TDVF_MAX_SECTIONS);
				for (size_t j = 0; j < t.n; j++) {
					const struct tdc_tdvf_section *s = &t.s[j];
					assert_true(s->gpa + s->mem_size <= 0x100000000ull);
					assert_true((uint64_t)s->data_offset + s->raw_size <=
						    sp.len);
				}
				/* hashing 4 GiB of added pages takes a while: skip those */
				if (total_memory(&t) > (64u << 20))
					continue;
				uint8_t m[48];
				assert_int_equal(tdc_tdvf_mrtd(b, sp.len, &t,
							       TDC_MRTD_SINGLE_PASS, m, &e), 0);
				assert_int_equal(tdc_tdvf_mrtd(b, sp.len, &t, TDC_MRTD_TWO_PASS,
							       m, &e), 0);
			}
			b[i] = orig;
		}
	}
	print_message("%zu metadata flips parsed, %zu refused\n", ok, failed);
	assert_true(ok > 0 && failed > 0);
	free(b);
}

/* ---- real firmware ---- */

static bool load_file(const char *path, uint8_t **buf, size_t *len)
{
	if (access(path, R_OK) != 0)
		return false;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_file_read(path, TDC_TDVF_MAX_IMAGE, buf, len, &e), 0);
	return true;
}

#define DEBIAN_OVMF "/usr/share/ovmf/OVMF.fd"
#define DEBIAN_OVMF_SHA256 "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773"

static void test_debian_ovmf(void **state)
{
	(void)state;
	uint8_t *b;
	size_t len;
	if (!load_file(DEBIAN_OVMF, &b, &len)) {
		print_message("%s not readable, skipped\n", DEBIAN_OVMF);
		skip();
	}
	struct tdc_tdvf t;
	struct tdc_error e;
	uint8_t single[48], two[48], want[48], sha256[32];
	char hs[97], ht[97], hf[65];
	tdc_error_clear(&e);
	assert_int_equal(tdc_tdvf_parse(b, len, &t, &e), 0);
	assert_int_equal(t.n, 6);
	assert_int_equal(tdc_tdvf_mrtd(b, len, &t, TDC_MRTD_SINGLE_PASS, single, &e), 0);
	assert_int_equal(tdc_tdvf_mrtd(b, len, &t, TDC_MRTD_TWO_PASS, two, &e), 0);
	assert_int_equal(EVP_Digest(b, len, sha256, NULL, EVP_sha256(), NULL), 1);
	tdc_hex_encode(single, 48, hs);
	tdc_hex_encode(two, 48, ht);
	tdc_hex_encode(sha256, 32, hf);
	print_message("%s: %zu bytes, SHA-256 %s\n", DEBIAN_OVMF, len, hf);
	print_message("  MRTD single-pass %s\n", hs);
	print_message("  MRTD two-pass    %s\n", ht);
	/* the reference replay agrees, whatever the build */
	ref_mrtd(b, len, t.s, t.n, false, want);
	assert_memory_equal(single, want, 48);
	ref_mrtd(b, len, t.s, t.n, true, want);
	assert_memory_equal(two, want, 48);
	if (!strcmp(hf, DEBIAN_OVMF_SHA256)) { /* ovmf 2022.11-6+deb12u2 */
		assert_string_equal(hs, "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a"
					"08de4057fb887fed0744d5631a212967fb231c47");
		assert_string_equal(ht, "acccbcc870a381adab0d3919d90a7f268ac3b0364771f202ed4bb4e8"
					"92d045b33db3b32e6924cba830a724eed443f7e1");
		/* its BFV is measured and sits just below 4 GiB */
		assert_int_equal(t.s[0].type, TDC_TDVF_BFV);
		assert_int_equal(t.s[0].attributes, TDC_TDVF_ATTR_MR_EXTEND);
		assert_int_equal(t.s[0].gpa, 0xffe20000u);
	} else {
		print_message("  (not ovmf 2022.11-6+deb12u2: values not asserted)\n");
	}
	free(b);
}

static void test_ovmf_code_alone(void **state)
{
	(void)state;
	uint8_t *b;
	size_t len;
	if (!load_file("/usr/share/OVMF/OVMF_CODE.fd", &b, &len))
		skip();
	expect_refused(b, len, TDC_E_FORMAT, "TDVF section data outside the image");
	free(b);
}

static void test_ovmf_code_4m(void **state)
{
	(void)state;
	uint8_t *b;
	size_t len;
	if (!load_file("/usr/share/OVMF/OVMF_CODE_4M.fd", &b, &len))
		skip();
	expect_refused(b, len, TDC_E_UNSUPPORTED, "no TDX metadata");
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_image_parses),
		cmocka_unit_test(test_valid_image_mrtd),
		cmocka_unit_test(test_orders_equal_without_extend),
		cmocka_unit_test(test_section_order_counts),
		cmocka_unit_test(test_known_vector),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_bfv_byte_counts),
		cmocka_unit_test(test_cfv_byte_does_not_count),
		cmocka_unit_test(test_bytes_outside_sections_do_not_count),
		cmocka_unit_test(test_mr_extend_on_cfv_counts),
		cmocka_unit_test(test_page_aug_unsupported),
		cmocka_unit_test(test_unknown_attribute),
		cmocka_unit_test(test_mr_extend_on_td_hob),
		cmocka_unit_test(test_mr_extend_on_temp_mem),
		cmocka_unit_test(test_too_small),
		cmocka_unit_test(test_no_footer),
		cmocka_unit_test(test_table_length_too_big),
		cmocka_unit_test(test_table_length_short),
		cmocka_unit_test(test_entry_length_zero),
		cmocka_unit_test(test_entry_length_beyond_table),
		cmocka_unit_test(test_tdx_entry_wrong_size),
		cmocka_unit_test(test_no_tdx_entry),
		cmocka_unit_test(test_offset_beyond_image),
		cmocka_unit_test(test_descriptor_beyond_image),
		cmocka_unit_test(test_wrong_signature),
		cmocka_unit_test(test_version_2),
		cmocka_unit_test(test_one_section),
		cmocka_unit_test(test_33_sections),
		cmocka_unit_test(test_length_mismatch),
		cmocka_unit_test(test_unaligned_gpa),
		cmocka_unit_test(test_unaligned_size),
		cmocka_unit_test(test_size_zero),
		cmocka_unit_test(test_raw_larger_than_memory),
		cmocka_unit_test(test_bfv_without_data),
		cmocka_unit_test(test_td_hob_with_data),
		cmocka_unit_test(test_data_beyond_file),
		cmocka_unit_test(test_extended_memory_beyond_file),
		cmocka_unit_test(test_overlapping_sections),
		cmocka_unit_test(test_adjacent_sections),
		cmocka_unit_test(test_two_td_hobs),
		cmocka_unit_test(test_no_td_hob),
		cmocka_unit_test(test_no_bfv),
		cmocka_unit_test(test_type_4),
		cmocka_unit_test(test_gpa_beyond_4g),
		cmocka_unit_test(test_section_up_to_4g),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_metadata_flips),
		cmocka_unit_test(test_debian_ovmf),
		cmocka_unit_test(test_ovmf_code_alone),
		cmocka_unit_test(test_ovmf_code_4m),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
