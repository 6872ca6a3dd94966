/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Authenticode digests of synthetic PE/COFF images (PE32+ and PE32) against an independent
 * digest written from the edk2 rules: what is left out (CheckSum, the certificate-table entry,
 * the certificate table) does not count, everything else does; images edk2 would not measure
 * are refused; truncations and byte flips never crash. Kernels in /boot are only printed.
 */
#include <glob.h>
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

#define LFANEW 0x80u
#define MAX_SECT 100u

struct pe_spec {
	bool pe32;           /* PE32 (0x10b) rather than PE32+ (0x20b) */
	bool no_dos;         /* no DOS header: the PE signature at offset 0 */
	uint32_t nrva;       /* NumberOfRvaAndSizes */
	uint32_t hdr_size;   /* SizeOfHeaders */
	uint16_t nsect;
	struct {
		uint32_t ptr, size;
	} s[MAX_SECT];
	size_t trailing;     /* bytes after the sections' data, before the certificate table */
	uint32_t cert_size;  /* the certificate table, at the end (0: none) */
};

/* Where things are in an image built from a spec. */
struct pe_layout {
	size_t len, lfanew, coff, opt, checksum, dirs, sect, sum, cert;
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

static uint16_t get16(const uint8_t *b, size_t off)
{
	return (uint16_t)(b[off] | b[off + 1] << 8);
}

static uint32_t get32(const uint8_t *b, size_t off)
{
	return (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
	       (uint32_t)b[off + 3] << 24;
}

/* Two sections, listed out of file order (.text after .data in the file), and a certificate
 * table at the end. */
static struct pe_spec default_spec(void)
{
	struct pe_spec sp = { .nrva = 16, .hdr_size = 0x400, .nsect = 2, .cert_size = 0x100 };
	sp.s[0].ptr = 0x600; /* .text */
	sp.s[0].size = 0x400;
	sp.s[1].ptr = 0x400; /* .data */
	sp.s[1].size = 0x200;
	return sp;
}

static struct pe_layout layout(const struct pe_spec *sp)
{
	struct pe_layout l = { 0 };
	l.lfanew = sp->no_dos ? 0 : LFANEW;
	l.coff = l.lfanew + 4;
	l.opt = l.coff + 20;
	l.checksum = l.opt + 64;
	l.dirs = l.opt + (sp->pe32 ? 96 : 112);
	l.sect = l.dirs + 8u * sp->nrva;
	l.sum = sp->hdr_size;
	for (unsigned i = 0; i < sp->nsect; i++)
		l.sum += sp->s[i].size;
	l.cert = l.sum + sp->trailing;
	l.len = l.cert + sp->cert_size;
	return l;
}

/* The image of sp, malloc'd, exactly l.len bytes; a byte pattern wherever no field is. */
static uint8_t *build(const struct pe_spec *sp, struct pe_layout *out)
{
	struct pe_layout l = layout(sp);
	uint8_t *b = malloc(l.len);
	assert_non_null(b);
	for (size_t i = 0; i < l.len; i++)
		b[i] = (uint8_t)(i * 13u + (i >> 8) * 5u + 3u);
	if (!sp->no_dos) {
		b[0] = 'M';
		b[1] = 'Z';
		put32(b, 0x3c, (uint32_t)l.lfanew);
	}
	memcpy(b + l.lfanew, "PE\0\0", 4);
	put16(b, l.coff + 0, sp->pe32 ? 0x014c : 0x8664);           /* Machine */
	put16(b, l.coff + 2, sp->nsect);                            /* NumberOfSections */
	put16(b, l.coff + 16, (uint16_t)(l.sect - l.opt));          /* SizeOfOptionalHeader */
	put16(b, l.opt + 0, sp->pe32 ? 0x10b : 0x20b);              /* Magic */
	put32(b, l.opt + 60, sp->hdr_size);                         /* SizeOfHeaders */
	put32(b, l.opt + 64, 0xc0ffee00u);                          /* CheckSum */
	put32(b, l.dirs - 4, sp->nrva);                             /* NumberOfRvaAndSizes */
	if (sp->nrva > 4) {
		put32(b, l.dirs + 32, sp->cert_size ? (uint32_t)l.cert : 0);
		put32(b, l.dirs + 36, sp->cert_size);
	}
	for (unsigned i = 0; i < sp->nsect; i++) {
		size_t h = l.sect + 40u * i;
		memcpy(b + h, i == 0 ? ".text\0\0\0" : ".data\0\0\0", 8);
		put32(b, h + 16, sp->s[i].size);                    /* SizeOfRawData */
		put32(b, h + 20, sp->s[i].ptr);                     /* PointerToRawData */
	}
	if (out)
		*out = l;
	return b;
}

/* ---- the expected digest, from the edk2 rules (DxeTpm2MeasureBootLib HashPeImage) ---- */

static void upd(EVP_MD_CTX *md, const uint8_t *b, size_t len, size_t from, size_t to)
{
	assert_true(from <= to && to <= len);
	assert_int_equal(EVP_DigestUpdate(md, b + from, to - from), 1);
}

/* sorted: sections by PointerToRawData (a stable insertion sort, as edk2), else as listed */
static void expected(const uint8_t *b, size_t len, bool sorted, uint8_t out[48])
{
	size_t lfanew = (b[0] == 'M' && b[1] == 'Z') ? get32(b, 0x3c) : 0;
	size_t coff = lfanew + 4, opt = coff + 20;
	unsigned nsect = get16(b, coff + 2);
	size_t sect = opt + get16(b, coff + 16);
	bool pe32 = get16(b, opt) == 0x10b;
	uint32_t hdr = get32(b, opt + 60);
	size_t checksum = opt + 64, dirs = opt + (pe32 ? 96 : 112);
	uint32_t nrva = get32(b, dirs - 4);
	uint32_t ptr[MAX_SECT], size[MAX_SECT];
	unsigned int olen = 0;

	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_non_null(md);
	assert_int_equal(EVP_DigestInit_ex(md, EVP_sha384(), NULL), 1);
	upd(md, b, len, 0, checksum);
	if (nrva <= 4) {
		upd(md, b, len, checksum + 4, hdr);
	} else {
		upd(md, b, len, checksum + 4, dirs + 8 * 4);
		upd(md, b, len, dirs + 8 * 5, hdr);
	}
	assert_true(nsect <= MAX_SECT);
	for (unsigned i = 0; i < nsect; i++) {
		uint32_t p = get32(b, sect + 40u * i + 20), s = get32(b, sect + 40u * i + 16);
		unsigned pos = i;
		while (sorted && pos > 0 && p < ptr[pos - 1]) {
			ptr[pos] = ptr[pos - 1];
			size[pos] = size[pos - 1];
			pos--;
		}
		ptr[pos] = p;
		size[pos] = s;
	}
	size_t sum = hdr;
	for (unsigned i = 0; i < nsect; i++) {
		if (!size[i])
			continue;
		upd(md, b, len, ptr[i], (size_t)ptr[i] + size[i]);
		sum += size[i];
	}
	uint32_t cert_size = nrva > 4 ? get32(b, dirs + 8 * 4 + 4) : 0;
	if (len > sum) {
		assert_true(len >= sum + cert_size);
		upd(md, b, len, sum, len - cert_size);
	}
	assert_int_equal(EVP_DigestFinal_ex(md, out, &olen), 1);
	EVP_MD_CTX_free(md);
}

static void digest_ok(const uint8_t *b, size_t len, uint8_t out[48])
{
	struct tdc_error e;
	char msg[512];
	tdc_error_clear(&e);
	int r = tdc_pe_authenticode(b, len, out, &e);
	if (r)
		print_error("authenticode: %s\n", tdc_error_format(&e, msg, sizeof(msg)));
	assert_int_equal(r, 0);
}

/* The library's digest of the spec's image equals the expected one. */
static void check_spec(const struct pe_spec *sp)
{
	struct pe_layout l;
	uint8_t *b = build(sp, &l);
	uint8_t got[48], want[48];
	digest_ok(b, l.len, got);
	expected(b, l.len, true, want);
	assert_memory_equal(got, want, 48);
	free(b);
}

static void expect_refused(const uint8_t *b, size_t len, int code, const char *want)
{
	struct tdc_error e;
	uint8_t d[48];
	char msg[512];
	tdc_error_clear(&e);
	int r = tdc_pe_authenticode(b, len, d, &e);
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

/* The digest of the default image with the u32 at off changed (or a byte xor'ed). */
static void digest_patched32(const struct pe_spec *sp, size_t off, uint32_t v, uint8_t out[48])
{
	struct pe_layout l;
	uint8_t *b = build(sp, &l);
	put32(b, off, v);
	digest_ok(b, l.len, out);
	free(b);
}

static void digest_flipped(const struct pe_spec *sp, size_t off, uint8_t out[48])
{
	struct pe_layout l;
	uint8_t *b = build(sp, &l);
	assert_true(off < l.len);
	b[off] ^= 0x41;
	digest_ok(b, l.len, out);
	free(b);
}

static void base_digest(const struct pe_spec *sp, uint8_t out[48], struct pe_layout *l)
{
	uint8_t *b = build(sp, l);
	digest_ok(b, l->len, out);
	free(b);
}

/* ---- digests ---- */

static void test_pe32plus_two_sections(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t *b = build(&sp, &l);
	uint8_t got[48], want[48], unsorted[48];
	digest_ok(b, l.len, got);
	expected(b, l.len, true, want);
	assert_memory_equal(got, want, 48);
	/* the file order counts, not the section table's */
	expected(b, l.len, false, unsorted);
	assert_memory_not_equal(got, unsorted, 48);
	/* a NULL error is allowed */
	assert_int_equal(tdc_pe_authenticode(b, l.len, got, NULL), 0);
	free(b);
}

static void test_pe32plus_trailing_data(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.trailing = 0x123;
	check_spec(&sp);
	/* and without a certificate table */
	sp.cert_size = 0;
	check_spec(&sp);
}

static void test_pe32plus_no_certificate(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.cert_size = 0;
	check_spec(&sp);
}

static void test_pe32_four_directories(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.pe32 = true;
	sp.nrva = 4;
	sp.cert_size = 0;
	sp.trailing = 0x80;
	check_spec(&sp);
	/* no certificate-table entry: the 8 bytes where it would be are hashed (here the first
	 * section header's name) */
	struct pe_layout l = layout(&sp);
	uint8_t d0[48], d1[48];
	base_digest(&sp, d0, &l);
	digest_flipped(&sp, l.dirs + 32, d1);
	assert_memory_not_equal(d0, d1, 48);
}

static void test_pe32_with_certificate(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.pe32 = true;
	sp.trailing = 0x40;
	check_spec(&sp);
}

static void test_pe32plus_five_directories(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.nrva = 5; /* the certificate table is the last entry */
	check_spec(&sp);
}

static void test_no_dos_header(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.no_dos = true;
	check_spec(&sp);
}

/* SizeOfRawData 0 sections are skipped; a section may start right after the headers. */
static void test_empty_section(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.nsect = 3;
	sp.s[2].ptr = 0x12345678u; /* never read */
	sp.s[2].size = 0;
	check_spec(&sp);
}

static void test_96_sections(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.nsect = 96;
	sp.hdr_size = 0x1200;
	sp.s[0].ptr = 0x1400;
	sp.s[1].ptr = 0x1200;
	check_spec(&sp);
}

/* ---- what is left out ---- */

static void test_checksum_excluded(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t d0[48], d1[48];
	base_digest(&sp, d0, &l);
	digest_patched32(&sp, l.checksum, 0x12345678u, d1);
	assert_memory_equal(d0, d1, 48);
	sp.pe32 = true;
	base_digest(&sp, d0, &l);
	digest_patched32(&sp, l.checksum, 0, d1);
	assert_memory_equal(d0, d1, 48);
}

static void test_certificate_bytes_excluded(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.trailing = 0x20;
	struct pe_layout l;
	uint8_t d0[48], d1[48];
	base_digest(&sp, d0, &l);
	digest_flipped(&sp, l.cert, d1);
	assert_memory_equal(d0, d1, 48);
	digest_flipped(&sp, l.len - 1, d1);
	assert_memory_equal(d0, d1, 48);
}

static void test_certificate_entry_excluded(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t d0[48], d1[48];
	base_digest(&sp, d0, &l);
	/* its file offset: not used for the digest, which takes the table from the end */
	digest_patched32(&sp, l.dirs + 32, 0x7fff0000u, d1);
	assert_memory_equal(d0, d1, 48);
	digest_patched32(&sp, l.dirs + 32, 0, d1);
	assert_memory_equal(d0, d1, 48);
}

/* ---- what counts ---- */

static void test_section_byte_counts(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t d0[48], d1[48];
	base_digest(&sp, d0, &l);
	for (unsigned i = 0; i < sp.nsect; i++) {
		digest_flipped(&sp, sp.s[i].ptr, d1);
		assert_memory_not_equal(d0, d1, 48);
		digest_flipped(&sp, sp.s[i].ptr + sp.s[i].size - 1, d1);
		assert_memory_not_equal(d0, d1, 48);
	}
}

static void test_header_byte_counts(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t d0[48], d1[48];
	base_digest(&sp, d0, &l);
	size_t at[] = {
		0x40,                /* DOS stub */
		l.coff + 4,          /* TimeDateStamp */
		l.opt + 56,          /* SizeOfImage, just before SizeOfHeaders and CheckSum */
		l.checksum + 4,      /* just after it */
		l.dirs + 31,         /* just before the certificate entry */
		l.dirs + 40,         /* just after it */
		l.sect,              /* a section name */
		sp.hdr_size - 1,     /* the last header byte */
	};
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		digest_flipped(&sp, at[i], d1);
		if (!memcmp(d0, d1, 48))
			print_error("header byte 0x%zx does not count\n", at[i]);
		assert_memory_not_equal(d0, d1, 48);
	}
}

static void test_trailing_byte_counts(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.trailing = 0x30;
	struct pe_layout l;
	uint8_t d0[48], d1[48];
	base_digest(&sp, d0, &l);
	digest_flipped(&sp, l.sum, d1);
	assert_memory_not_equal(d0, d1, 48);
	digest_flipped(&sp, l.cert - 1, d1);
	assert_memory_not_equal(d0, d1, 48);
}

/* ---- refused ---- */

static void test_no_pe_signature(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t *b = build(&sp, &l);
	b[l.lfanew + 1] = 'X';
	expect_refused(b, l.len, TDC_E_UNSUPPORTED, "not a PE image");
	free(b);
	/* no "MZ": the signature is looked for at 0 */
	b = build(&sp, &l);
	b[0] = 'Z';
	expect_refused(b, l.len, TDC_E_UNSUPPORTED, "not a PE image");
	free(b);
}

static void test_unknown_optional_magic(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t *b = build(&sp, &l);
	put16(b, l.opt, 0x107); /* ROM image */
	expect_refused(b, l.len, TDC_E_UNSUPPORTED, "unknown PE optional header");
	free(b);
}

static void test_section_beyond_file(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t *b = build(&sp, &l);
	/* .text's data would end one byte after the file */
	put32(b, l.sect + 20, (uint32_t)(l.len - sp.s[0].size + 1));
	expect_refused(b, l.len, TDC_E_FORMAT, "PE section");
	free(b);
	/* a pointer that wraps in 32 bits */
	b = build(&sp, &l);
	put32(b, l.sect + 20, 0xffffff00u);
	expect_refused(b, l.len, TDC_E_FORMAT, "PE section");
	free(b);
}

static void test_headers_beyond_file(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t *b = build(&sp, &l);
	put32(b, l.opt + 60, (uint32_t)l.len + 1);
	expect_refused(b, l.len, TDC_E_FORMAT, "bad PE headers");
	free(b);
}

static void test_section_table_beyond_file(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t *b = build(&sp, &l);
	put16(b, l.coff + 16, 0xfff0); /* SizeOfOptionalHeader */
	expect_refused(b, l.len, TDC_E_FORMAT, "bad PE headers");
	free(b);
}

static void test_certificate_too_large(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.trailing = 0x10;
	struct pe_layout l;
	uint8_t *b = build(&sp, &l);
	/* one byte more than there is after the sections */
	put32(b, l.dirs + 36, (uint32_t)(l.len - l.sum + 1));
	expect_refused(b, l.len, TDC_E_FORMAT, "PE certificate table beyond the file");
	free(b);
	/* exactly what there is: nothing trailing is hashed */
	b = build(&sp, &l);
	put32(b, l.dirs + 36, (uint32_t)(l.len - l.sum));
	uint8_t d[48], want[48];
	digest_ok(b, l.len, d);
	expected(b, l.len, true, want);
	assert_memory_equal(d, want, 48);
	free(b);
}

static void test_too_many_sections(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	sp.nsect = 96;
	sp.hdr_size = 0x1200;
	sp.s[0].ptr = 0x1400;
	sp.s[1].ptr = 0x1200;
	struct pe_layout l;
	uint8_t *b = build(&sp, &l);
	put16(b, l.coff + 2, 97);
	expect_refused(b, l.len, TDC_E_LIMIT, "too many PE sections");
	put16(b, l.coff + 2, 0xffff);
	expect_refused(b, l.len, TDC_E_LIMIT, "too many PE sections");
	free(b);
}

static int authenticode(const uint8_t *b, size_t len, struct tdc_error *e)
{
	uint8_t d[48];
	return tdc_pe_authenticode(b, len, d, e);
}

static void test_truncation(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t *b = build(&sp, &l);
	/* the image without its certificate table is whole: edk2 measures it (nothing after
	 * the sections to hash) */
	mt_check_prefixes(b, l.len, authenticode, l.sum);
	free(b);
}

static void test_header_flips(void **state)
{
	(void)state;
	struct pe_spec sp = default_spec();
	struct pe_layout l;
	uint8_t *b = build(&sp, &l);
	size_t ok = 0, failed = 0;
	for (size_t i = 0; i < l.sect + 40u * sp.nsect; i++) {
		uint8_t orig = b[i];
		for (unsigned x = 1; x < 256; x++) {
			struct tdc_error e;
			uint8_t d[48];
			tdc_error_clear(&e);
			b[i] = (uint8_t)(orig ^ x);
			int r = tdc_pe_authenticode(b, l.len, d, &e);
			if (r) {
				mt_check_refusal(r, &e);
				failed++;
			} else {
				ok++;
			}
		}
		b[i] = orig;
	}
	print_message("%zu header flips hashed, %zu refused\n", ok, failed);
	assert_true(ok > 0 && failed > 0);
	free(b);
}

/* ---- the build machine's kernels: printed, not asserted ---- */

static void test_boot_kernels(void **state)
{
	(void)state;
	glob_t g;
	size_t shown = 0;
	if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0) {
		print_message("no /boot/vmlinuz-*, skipped\n");
		skip();
	}
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *p = g.gl_pathv[i];
		uint8_t *k, d[48];
		size_t len;
		char h[97], msg[512];
		struct tdc_error e;
		tdc_error_clear(&e);
		if (access(p, R_OK) != 0 || tdc_file_read(p, TDC_PE_MAX_IMAGE, &k, &len, &e) < 0) {
			print_message("%s: not readable\n", p);
			continue;
		}
		if (tdc_pe_authenticode(k, len, d, &e) == 0)
			print_message("%s: Authenticode SHA-384 %s\n", p, tdc_hex_encode(d, 48, h));
		else
			print_message("%s: %s\n", p, tdc_error_format(&e, msg, sizeof(msg)));
		shown++;
		free(k);
	}
	globfree(&g);
	if (!shown)
		skip();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pe32plus_two_sections),
		cmocka_unit_test(test_pe32plus_trailing_data),
		cmocka_unit_test(test_pe32plus_no_certificate),
		cmocka_unit_test(test_pe32_four_directories),
		cmocka_unit_test(test_pe32_with_certificate),
		cmocka_unit_test(test_pe32plus_five_directories),
		cmocka_unit_test(test_no_dos_header),
		cmocka_unit_test(test_empty_section),
		cmocka_unit_test(test_96_sections),
		cmocka_unit_test(test_checksum_excluded),
		cmocka_unit_test(test_certificate_bytes_excluded),
		cmocka_unit_test(test_certificate_entry_excluded),
		cmocka_unit_test(test_section_byte_counts),
		cmocka_unit_test(test_header_byte_counts),
		cmocka_unit_test(test_trailing_byte_counts),
		cmocka_unit_test(test_no_pe_signature),
		cmocka_unit_test(test_unknown_optional_magic),
		cmocka_unit_test(test_section_beyond_file),
		cmocka_unit_test(test_headers_beyond_file),
		cmocka_unit_test(test_section_table_beyond_file),
		cmocka_unit_test(test_certificate_too_large),
		cmocka_unit_test(test_too_many_sections),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_header_flips),
		cmocka_unit_test(test_boot_kernels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
