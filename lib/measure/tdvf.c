/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TDVF metadata (the TDVF design guide; QEMU hw/i386/tdvf.c reads the same) and
 * the MRTD the TDX module computes while QEMU adds the firmware's pages.
 *
 * Where the metadata is: the last 0x20 bytes of an OVMF image are the reset
 * vector; before them, at end-0x30, the footer GUID of a table of GUIDed
 * entries that grows backwards (data, u16 length, GUID). The entry with the
 * TDX metadata offset GUID holds a u32: the distance from the end of the
 * image to the "TDVF" descriptor.
 *
 * MRTD is one SHA-384 over 128-byte records: per page "MEM.PAGE.ADD" + GPA;
 * per 256 bytes of an MR.EXTEND section "MR.EXTEND" + GPA, then the 256 bytes.
 */
#include <string.h>

#include <openssl/evp.h>

#include "tdcrypt/measure.h"

#define PAGE 4096u
#define CHUNK 256u
#define RECORD 128u
#define DESC_HEADER 16u
#define SECTION_ENTRY 32u
#define GUID_LEN 16u
/* The footer GUID sits at end-0x30, its u16 table length just before it. */
#define FOOTER_GUID_FROM_END 0x30u
#define FOOTER_LEN 18u /* u16 length + GUID */

/* EFI byte order (first three fields little endian). */
static const uint8_t footer_guid[GUID_LEN] = { /* 96b582de-1fb2-45f7-baea-a366c55a082d */
	0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45,
	0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d };
static const uint8_t tdx_offset_guid[GUID_LEN] = { /* e47a6535-984a-4798-865e-4685a7bf8ec2 */
	0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47,
	0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2 };

const char *tdc_tdvf_type_name(uint32_t type)
{
	switch (type) {
	case TDC_TDVF_BFV:
		return "BFV";
	case TDC_TDVF_CFV:
		return "CFV";
	case TDC_TDVF_TD_HOB:
		return "TD_HOB";
	case TDC_TDVF_TEMP_MEM:
		return "TempMem";
	case 4:
		return "PermMem";
	case 5:
		return "Payload";
	case 6:
		return "PayloadParam";
	default:
		return "unknown";
	}
}

const char *tdc_mrtd_order_name(enum tdc_mrtd_order o)
{
	return o == TDC_MRTD_TWO_PASS ? "two-pass" : "single-pass";
}

/* The u32 value of the TDX metadata offset entry, from the GUIDed table. */
static int find_offset(const uint8_t *img, size_t len, uint32_t *off, struct tdc_error *e)
{
	struct tdc_rd r;
	uint8_t guid[GUID_LEN];
	uint16_t tlen;

	if (len < FOOTER_GUID_FROM_END + 2)
		return TDC_FAILF(e, TDC_E_FORMAT, "not a TDVF image", "%zu bytes is too small", len);
	/* [end-0x32, end-0x20): u16 table length, footer GUID */
	tdc_rd_init(&r, img, len);
	TDC_GUARD(tdc_rd_skip(&r, len - FOOTER_GUID_FROM_END - 2, "image", e));
	TDC_GUARD(tdc_rd_u16le(&r, &tlen, "GUIDed table length", e));
	TDC_GUARD(tdc_rd_copy(&r, guid, GUID_LEN, "GUIDed table footer", e));
	if (memcmp(guid, footer_guid, GUID_LEN))
		return TDC_FAIL_AT(e, TDC_E_FORMAT, len - FOOTER_GUID_FROM_END,
				   "not a TDVF image", "no OVMF GUIDed table footer at end-0x30");
	size_t end = len - FOOTER_GUID_FROM_END - 2; /* the entries end here */
	if (tlen < FOOTER_LEN || tlen - FOOTER_LEN > end)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, end, "bad GUIDed table length",
				   "%u bytes", tlen);
	size_t remaining = tlen - FOOTER_LEN;
	/* Walk backwards: each entry is data || u16 len || GUID, len covering all three. */
	while (remaining >= FOOTER_LEN) {
		uint16_t elen;
		tdc_rd_init(&r, img, len);
		TDC_GUARD(tdc_rd_skip(&r, end - FOOTER_LEN, "GUIDed table", e));
		size_t at = tdc_rd_offset(&r);
		TDC_GUARD(tdc_rd_u16le(&r, &elen, "GUIDed entry length", e));
		TDC_GUARD(tdc_rd_copy(&r, guid, GUID_LEN, "GUIDed entry GUID", e));
		if (elen < FOOTER_LEN || elen > remaining)
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "bad GUIDed entry length",
					   "%u bytes, %zu left in the table", elen, remaining);
		if (!memcmp(guid, tdx_offset_guid, GUID_LEN)) {
			if (elen != FOOTER_LEN + 4)
				return TDC_FAIL_AT(e, TDC_E_FORMAT, at,
						   "bad TDX metadata offset entry",
						   "%u bytes of data, expected 4", elen - FOOTER_LEN);
			tdc_rd_init(&r, img, len);
			TDC_GUARD(tdc_rd_skip(&r, end - elen, "GUIDed table", e));
			return tdc_rd_u32le(&r, off, "TDX metadata offset", e);
		}
		end -= elen;
		remaining -= elen;
	}
	return TDC_FAIL(e, TDC_E_UNSUPPORTED,
			"no TDX metadata in this firmware (not a TDVF build; e.g. Debian's "
			"OVMF_CODE_4M.fd has none, /usr/share/ovmf/OVMF.fd has)");
}

static int check_section(const struct tdc_tdvf_section *s, size_t i, size_t len,
			 struct tdc_error *e)
{
	const char *name = tdc_tdvf_type_name(s->type);
	if (s->type > TDC_TDVF_TEMP_MEM)
		return TDC_FAILF(e, TDC_E_UNSUPPORTED, "TDVF section type not supported by QEMU",
				 "section %zu: type %u (%s)", i, s->type, name);
	if (s->attributes & ~(TDC_TDVF_ATTR_MR_EXTEND | TDC_TDVF_ATTR_PAGE_AUG))
		return TDC_FAILF(e, TDC_E_FORMAT, "unknown TDVF section attribute",
				 "section %zu (%s): attributes 0x%x", i, name, s->attributes);
	/* QEMU adds PAGE.AUG sections with PAGE.ADD anyway: the measurement would be ambiguous */
	if (s->attributes & TDC_TDVF_ATTR_PAGE_AUG)
		return TDC_FAILF(e, TDC_E_UNSUPPORTED, "PAGE.AUG TDVF sections are not supported",
				 "section %zu (%s)", i, name);
	if (s->mem_size == 0 || s->mem_size % PAGE || s->gpa % PAGE)
		return TDC_FAILF(e, TDC_E_FORMAT, "unaligned TDVF section",
				 "section %zu (%s): GPA 0x%llx, size 0x%llx (4 KiB units)", i, name,
				 (unsigned long long)s->gpa, (unsigned long long)s->mem_size);
	if (s->gpa + s->mem_size < s->gpa || s->gpa + s->mem_size > (1ull << 32))
		return TDC_FAILF(e, TDC_E_FORMAT, "TDVF section beyond 4 GiB", "section %zu (%s)",
				 i, name);
	if (s->raw_size > s->mem_size)
		return TDC_FAILF(e, TDC_E_FORMAT, "TDVF section data larger than its memory",
				 "section %zu (%s): raw 0x%x > memory 0x%llx", i, name, s->raw_size,
				 (unsigned long long)s->mem_size);
	bool volume = s->type == TDC_TDVF_BFV || s->type == TDC_TDVF_CFV;
	if (volume != (s->raw_size != 0))
		return TDC_FAILF(e, TDC_E_FORMAT, "TDVF section data size wrong for its type",
				 "section %zu (%s): raw size 0x%x", i, name, s->raw_size);
	/* What is read from the file: the raw data, or all memory pages if extended. */
	uint64_t used = s->attributes & TDC_TDVF_ATTR_MR_EXTEND ? s->mem_size : s->raw_size;
	if ((uint64_t)s->data_offset + used > len)
		return TDC_FAILF(e, TDC_E_FORMAT, "TDVF section data outside the image",
				 "section %zu (%s): 0x%x + 0x%llx > %zu bytes (OVMF_CODE.fd alone "
				 "is not a TDVF image: use the combined OVMF.fd)",
				 i, name, s->data_offset, (unsigned long long)used, len);
	if ((s->attributes & TDC_TDVF_ATTR_MR_EXTEND) && !volume)
		return TDC_FAILF(e, TDC_E_FORMAT, "MR.EXTEND on a TDVF section without data",
				 "section %zu (%s)", i, name);
	return 0;
}

int tdc_tdvf_parse(const uint8_t *img, size_t len, struct tdc_tdvf *out, struct tdc_error *e)
{
	struct tdc_rd r;
	uint32_t off, sig, dlen, n;
	size_t n_hob = 0, n_bfv = 0;

	memset(out, 0, sizeof(*out));
	if (len > TDC_TDVF_MAX_IMAGE)
		return TDC_FAILF(e, TDC_E_LIMIT, "firmware image too large", "%zu bytes, limit %u",
				 len, TDC_TDVF_MAX_IMAGE);
	TDC_GUARD(find_offset(img, len, &off, e));
	if (off > len || off < DESC_HEADER)
		return TDC_FAILF(e, TDC_E_FORMAT, "TDX metadata offset outside the image",
				 "0x%x from the end of %zu bytes", off, len);
	out->descriptor_offset = len - off;
	tdc_rd_init(&r, img, len);
	TDC_GUARD(tdc_rd_skip(&r, out->descriptor_offset, "image", e));
	size_t at = tdc_rd_offset(&r);
	TDC_GUARD(tdc_rd_u32le(&r, &sig, "TDVF.Signature", e));
	TDC_GUARD(tdc_rd_u32le(&r, &dlen, "TDVF.Length", e));
	TDC_GUARD(tdc_rd_u32le(&r, &out->version, "TDVF.Version", e));
	TDC_GUARD(tdc_rd_u32le(&r, &n, "TDVF.NumberOfSectionEntries", e));
	if (sig != 0x46564454u) /* "TDVF" */
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "no TDVF descriptor at the metadata offset",
				   "signature 0x%08x", sig);
	if (out->version != 1)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, at + 8, "unsupported TDVF metadata version",
				   "%u, expected 1", out->version);
	if (n < 2 || n > TDC_TDVF_MAX_SECTIONS)
		return TDC_FAIL_AT(e, n > TDC_TDVF_MAX_SECTIONS ? TDC_E_LIMIT : TDC_E_FORMAT,
				   at + 12, "bad number of TDVF sections", "%u (2..%u)", n,
				   TDC_TDVF_MAX_SECTIONS);
	if (dlen != DESC_HEADER + SECTION_ENTRY * n)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, at + 4, "TDVF descriptor length mismatch",
				   "%u for %u sections", dlen, n);
	for (uint32_t i = 0; i < n; i++) {
		struct tdc_tdvf_section *s = &out->s[i];
		TDC_GUARD(tdc_rd_u32le(&r, &s->data_offset, "TDVF section DataOffset", e));
		TDC_GUARD(tdc_rd_u32le(&r, &s->raw_size, "TDVF section RawDataSize", e));
		TDC_GUARD(tdc_rd_u64le(&r, &s->gpa, "TDVF section MemoryAddress", e));
		TDC_GUARD(tdc_rd_u64le(&r, &s->mem_size, "TDVF section MemoryDataSize", e));
		TDC_GUARD(tdc_rd_u32le(&r, &s->type, "TDVF section Type", e));
		TDC_GUARD(tdc_rd_u32le(&r, &s->attributes, "TDVF section Attributes", e));
		TDC_GUARD(check_section(s, i, len, e));
		n_hob += s->type == TDC_TDVF_TD_HOB;
		n_bfv += s->type == TDC_TDVF_BFV;
		for (uint32_t j = 0; j < i; j++) {
			const struct tdc_tdvf_section *o = &out->s[j];
			if (s->gpa < o->gpa + o->mem_size && o->gpa < s->gpa + s->mem_size)
				return TDC_FAILF(e, TDC_E_FORMAT, "overlapping TDVF sections",
						 "sections %u and %u", j, i);
		}
	}
	out->n = n;
	if (n_hob != 1 || n_bfv == 0)
		return TDC_FAILF(e, TDC_E_FORMAT, "TDVF needs one TD_HOB and a BFV",
				 "%zu TD_HOB, %zu BFV sections", n_hob, n_bfv);
	return 0;
}

static int record(EVP_MD_CTX *md, const char *op, uint64_t gpa, const uint8_t *data)
{
	uint8_t rec[RECORD] = { 0 };
	memcpy(rec, op, strlen(op));
	for (unsigned i = 0; i < 8; i++)
		rec[16 + i] = (uint8_t)(gpa >> (8 * i));
	if (EVP_DigestUpdate(md, rec, sizeof(rec)) != 1)
		return -1;
	return data && EVP_DigestUpdate(md, data, CHUNK) != 1 ? -1 : 0;
}

static int page_add(EVP_MD_CTX *md, uint64_t gpa)
{
	return record(md, "MEM.PAGE.ADD", gpa, NULL);
}

/* The 16 MR.EXTENDs of one page; data is the page's 4096 bytes. */
static int page_extend(EVP_MD_CTX *md, uint64_t gpa, const struct tdc_rd *data)
{
	for (unsigned c = 0; c < PAGE / CHUNK; c++)
		if (record(md, "MR.EXTEND", gpa + c * CHUNK, tdc_rd_ptr(data) + c * CHUNK) < 0)
			return -1;
	return 0;
}

/* One section's records, in the order QEMU and KVM issue them. */
static int section_records(EVP_MD_CTX *md, const uint8_t *img, size_t len,
			   const struct tdc_tdvf_section *s, enum tdc_mrtd_order order,
			   struct tdc_error *e)
{
	bool extend = s->attributes & TDC_TDVF_ATTR_MR_EXTEND;
	uint64_t pages = s->mem_size / PAGE;
	struct tdc_rd all, sec, pg;

	if (extend) { /* checked by tdc_tdvf_parse; the reader checks again */
		tdc_rd_init(&all, img, len);
		TDC_GUARD(tdc_rd_skip(&all, s->data_offset, "TDVF section", e));
		TDC_GUARD(tdc_rd_sub(&all, s->mem_size, &sec, "TDVF section data", e));
	}
	for (uint64_t p = 0; p < pages; p++) {
		uint64_t gpa = s->gpa + p * PAGE;
		if (page_add(md, gpa) < 0)
			return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-384 failed");
		if (!extend || order != TDC_MRTD_SINGLE_PASS)
			continue;
		TDC_GUARD(tdc_rd_sub(&sec, PAGE, &pg, "TDVF page", e));
		if (page_extend(md, gpa, &pg) < 0)
			return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-384 failed");
	}
	for (uint64_t p = 0; extend && order == TDC_MRTD_TWO_PASS && p < pages; p++) {
		TDC_GUARD(tdc_rd_sub(&sec, PAGE, &pg, "TDVF page", e));
		if (page_extend(md, s->gpa + p * PAGE, &pg) < 0)
			return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-384 failed");
	}
	return 0;
}

int tdc_tdvf_mrtd(const uint8_t *img, size_t len, const struct tdc_tdvf *t,
		  enum tdc_mrtd_order order, uint8_t mrtd[TDC_SHA384_LEN], struct tdc_error *e)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;
	int rc = 0;

	if (!md || EVP_DigestInit_ex(md, EVP_sha384(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-384 unavailable");
	}
	for (size_t i = 0; i < t->n && rc == 0; i++)
		rc = section_records(md, img, len, &t->s[i], order, e);
	if (rc == 0 && EVP_DigestFinal_ex(md, mrtd, &n) != 1)
		rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-384 failed");
	EVP_MD_CTX_free(md);
	return rc;
}
