/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Authenticode digest of a PE/COFF image, the way edk2's measured boot hashes
 * an image passed to LoadImage (MdePkg PE/COFF rules; Microsoft's
 * "Windows Authenticode Portable Executable Signature Format"):
 *   1. headers up to the CheckSum field, then up to the certificate-table
 *      directory entry (or to SizeOfHeaders when there is none), then the rest
 *      of the headers;
 *   2. every section with raw data, sorted by PointerToRawData;
 *   3. the bytes after SizeOfHeaders + all raw data, minus the certificate table.
 * No padding is added. All offsets come from the image and are checked.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tdcrypt/measure.h"

#define MAX_SECTIONS 96u
#define DIR_SECURITY 4u

struct sect {
	uint32_t ptr, size;
	unsigned index; /* header order: edk2's sort is stable, qsort is not */
};

static int cmp_sect(const void *a, const void *b)
{
	const struct sect *x = a, *y = b;
	if (x->ptr != y->ptr)
		return x->ptr < y->ptr ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Hashes img[from, to), checked against the image. */
static int hash_range(EVP_MD_CTX *md, const uint8_t *img, size_t len, uint64_t from, uint64_t to,
		      const char *what, struct tdc_error *e)
{
	struct tdc_rd r, part;
	if (to < from)
		return TDC_FAILF(e, TDC_E_FORMAT, "bad PE layout", "%s ends before it starts", what);
	tdc_rd_init(&r, img, len);
	TDC_GUARD(tdc_rd_skip(&r, (size_t)from, what, e));
	TDC_GUARD(tdc_rd_sub(&r, (size_t)(to - from), &part, what, e));
	if (tdc_rd_len(&part) && EVP_DigestUpdate(md, tdc_rd_ptr(&part), tdc_rd_len(&part)) != 1)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-384 failed");
	return 0;
}

static int authenticode(EVP_MD_CTX *md, const uint8_t *img, size_t len, struct tdc_error *e)
{
	struct tdc_rd r;
	uint16_t mz, magic, nsect, optsize;
	uint32_t lfanew = 0, sig, hdr_size, nrva, cert_off = 0, cert_size = 0;
	struct sect s[MAX_SECTIONS];
	size_t n = 0;

	if (len > TDC_PE_MAX_IMAGE)
		return TDC_FAILF(e, TDC_E_LIMIT, "PE image too large", "%zu bytes, limit %u", len,
				 TDC_PE_MAX_IMAGE);
	tdc_rd_init(&r, img, len);
	TDC_GUARD(tdc_rd_u16le(&r, &mz, "DOS header", e));
	if (mz == 0x5a4d) { /* "MZ": the PE header is at e_lfanew */
		TDC_GUARD(tdc_rd_skip(&r, 0x3c - 2, "DOS header", e));
		TDC_GUARD(tdc_rd_u32le(&r, &lfanew, "e_lfanew", e));
	}
	tdc_rd_init(&r, img, len);
	TDC_GUARD(tdc_rd_skip(&r, lfanew, "e_lfanew", e));
	TDC_GUARD(tdc_rd_u32le(&r, &sig, "PE signature", e));
	if (sig != 0x00004550) /* "PE\0\0" */
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, lfanew, "not a PE image (no EFI stub?)",
				   "signature 0x%08x", sig);
	TDC_GUARD(tdc_rd_skip(&r, 2, "COFF Machine", e));
	TDC_GUARD(tdc_rd_u16le(&r, &nsect, "COFF NumberOfSections", e));
	TDC_GUARD(tdc_rd_skip(&r, 12, "COFF header", e));
	TDC_GUARD(tdc_rd_u16le(&r, &optsize, "COFF SizeOfOptionalHeader", e));
	TDC_GUARD(tdc_rd_skip(&r, 2, "COFF Characteristics", e));
	size_t opt = tdc_rd_offset(&r);
	TDC_GUARD(tdc_rd_u16le(&r, &magic, "optional header Magic", e));
	bool pe32 = magic == 0x10b;
	if (!pe32 && magic != 0x20b)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, opt, "unknown PE optional header",
				   "magic 0x%04x", magic);
	size_t checksum = opt + 64, dirs = opt + (pe32 ? 96 : 112);
	tdc_rd_init(&r, img, len);
	TDC_GUARD(tdc_rd_skip(&r, opt + 60, "optional header", e));
	TDC_GUARD(tdc_rd_u32le(&r, &hdr_size, "SizeOfHeaders", e));
	tdc_rd_init(&r, img, len);
	TDC_GUARD(tdc_rd_skip(&r, dirs - 4, "optional header", e));
	TDC_GUARD(tdc_rd_u32le(&r, &nrva, "NumberOfRvaAndSizes", e));
	if (nrva > DIR_SECURITY) {
		TDC_GUARD(tdc_rd_skip(&r, 8 * DIR_SECURITY, "data directories", e));
		TDC_GUARD(tdc_rd_u32le(&r, &cert_off, "certificate table offset", e));
		TDC_GUARD(tdc_rd_u32le(&r, &cert_size, "certificate table size", e));
	}
	if (nsect > MAX_SECTIONS)
		return TDC_FAILF(e, TDC_E_LIMIT, "too many PE sections", "%u, limit %u", nsect,
				 MAX_SECTIONS);
	if (hdr_size > len || (uint64_t)opt + optsize + 40u * nsect > len || dirs + 8 > hdr_size)
		return TDC_FAILF(e, TDC_E_FORMAT, "bad PE headers", "SizeOfHeaders 0x%x, %zu bytes",
				 hdr_size, len);
	tdc_rd_init(&r, img, len);
	TDC_GUARD(tdc_rd_skip(&r, opt + optsize, "optional header", e));
	for (unsigned i = 0; i < nsect; i++) {
		uint32_t size, ptr;
		TDC_GUARD(tdc_rd_skip(&r, 16, "section header", e));
		TDC_GUARD(tdc_rd_u32le(&r, &size, "SizeOfRawData", e));
		TDC_GUARD(tdc_rd_u32le(&r, &ptr, "PointerToRawData", e));
		TDC_GUARD(tdc_rd_skip(&r, 16, "section header", e));
		if (size)
			s[n++] = (struct sect){ ptr, size, i };
	}
	qsort(s, n, sizeof(s[0]), cmp_sect);

	TDC_GUARD(hash_range(md, img, len, 0, checksum, "PE headers", e));
	if (nrva > DIR_SECURITY) {
		size_t cert_dir = dirs + 8 * DIR_SECURITY;
		TDC_GUARD(hash_range(md, img, len, checksum + 4, cert_dir, "PE headers", e));
		TDC_GUARD(hash_range(md, img, len, cert_dir + 8, hdr_size, "PE headers", e));
	} else {
		TDC_GUARD(hash_range(md, img, len, checksum + 4, hdr_size, "PE headers", e));
	}
	uint64_t sum = hdr_size;
	for (size_t i = 0; i < n; i++) {
		TDC_GUARD(hash_range(md, img, len, s[i].ptr, (uint64_t)s[i].ptr + s[i].size,
				     "PE section", e));
		sum += s[i].size;
	}
	if (len > sum) {
		if (len < sum + cert_size)
			return TDC_FAILF(e, TDC_E_FORMAT,
					 "PE certificate table beyond the file (firmware would not "
					 "measure this image)", "0x%x bytes at 0x%x", cert_size, cert_off);
		TDC_GUARD(hash_range(md, img, len, sum, len - cert_size, "PE trailing data", e));
	}
	return 0;
}

int tdc_pe_authenticode(const uint8_t *img, size_t len, uint8_t digest[TDC_SHA384_LEN],
			struct tdc_error *e)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;
	int rc;

	if (!md || EVP_DigestInit_ex(md, EVP_sha384(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-384 unavailable");
	}
	rc = authenticode(md, img, len, e);
	if (rc == 0 && EVP_DigestFinal_ex(md, digest, &n) != 1)
		rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-384 failed");
	EVP_MD_CTX_free(md);
	return rc;
}
