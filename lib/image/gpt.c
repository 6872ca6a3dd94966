/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "image/gpt.h"
#include "util/rd.h"
#include "util/util.h"

/* C12A7328-F81F-11D2-BA4B-00A0C93EC93B */
const uint8_t TDC_GPT_TYPE_ESP[16] = { 0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
				       0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };
/* 0FC63DAF-8483-4772-8E79-3D69D8477DE4 */
const uint8_t TDC_GPT_TYPE_LINUX_FS[16] = { 0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
					    0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4 };
/* 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 */
const uint8_t TDC_GPT_TYPE_ROOT_X86_64[16] = { 0xe3, 0xbc, 0x68, 0x4f, 0xcd, 0xe8, 0xb1, 0x4d,
					       0x96, 0xe7, 0xfb, 0xca, 0xf9, 0x84, 0xb7, 0x09 };
/* CA7D7CCB-63ED-4C53-861C-1742536059CC */
const uint8_t TDC_GPT_TYPE_LUKS[16] = { 0xcb, 0x7c, 0x7d, 0xca, 0xed, 0x63, 0x53, 0x4c,
					0x86, 0x1c, 0x17, 0x42, 0x53, 0x60, 0x59, 0xcc };
/* 21686148-6449-6E6F-744E-656564454649 ("Hah!IdontNeedEFI"): GRUB's BIOS boot partition */
const uint8_t TDC_GPT_TYPE_BIOS_BOOT[16] = { 0x48, 0x61, 0x68, 0x21, 0x49, 0x64, 0x6f, 0x6e,
					     0x74, 0x4e, 0x65, 0x65, 0x64, 0x45, 0x46, 0x49 };

#define HDR_MIN 92u
#define WRITE_ENTRIES 128u
#define ENTRY_SIZE 128u
#define ARRAY_SECTORS (WRITE_ENTRIES * ENTRY_SIZE / TDC_GPT_SECTOR)

uint32_t tdc_crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
	}
	return ~c;
}

bool tdc_guid_equal(const uint8_t a[16], const uint8_t b[16])
{
	return memcmp(a, b, 16) == 0;
}

char *tdc_guid_format(const uint8_t g[16], char out[37])
{
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", g[3],
		 g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13],
		 g[14], g[15]);
	return out;
}

char *tdc_uuid_format(const uint8_t u[16], char out[37])
{
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
		 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
		 u[14], u[15]);
	return out;
}

int tdc_guid_parse(const char *s, uint8_t g[16])
{
	static const int pos[16] = { 6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34 };

	if (!s || strlen(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
		return TDC_E_FORMAT;
	for (int i = 0; i < 16; i++) {
		unsigned v;
		char hex[3] = { s[pos[i]], s[pos[i] + 1], 0 };
		char *end;

		if (!isxdigit((unsigned char)hex[0]) || !isxdigit((unsigned char)hex[1]))
			return TDC_E_FORMAT;
		v = (unsigned)strtoul(hex, &end, 16);
		if (*end)
			return TDC_E_FORMAT;
		g[i] = (uint8_t)v;
	}
	return 0;
}

int tdc_guid_random(uint8_t g[16], struct tdc_error *e)
{
	if (RAND_bytes(g, 16) != 1)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "no randomness for a GUID");
	g[7] = (uint8_t)((g[7] & 0x0f) | 0x40); /* version 4 (third field, little-endian) */
	g[8] = (uint8_t)((g[8] & 0x3f) | 0x80); /* variant 1 */
	return 0;
}

static int parse_pmbr(struct tdc_rd *r, struct tdc_error *e)
{
	struct tdc_rd mbr, part;
	uint8_t type, sig[2];

	TDC_GUARD(tdc_rd_sub(r, TDC_GPT_SECTOR, &mbr, "pmbr", e));
	TDC_GUARD(tdc_rd_skip(&mbr, 446, "pmbr.boot_code", e));
	TDC_GUARD(tdc_rd_sub(&mbr, 64, &part, "pmbr.partitions", e));
	TDC_GUARD(tdc_rd_copy(&mbr, sig, 2, "pmbr.signature", e));
	if (sig[0] != 0x55 || sig[1] != 0xaa)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 510, "not a disk image: no MBR signature",
				   "%02x%02x", sig[0], sig[1]);
	for (int i = 0; i < 4; i++) {
		TDC_GUARD(tdc_rd_skip(&part, 4, "pmbr.entry", e));
		TDC_GUARD(tdc_rd_u8(&part, &type, "pmbr.type", e));
		if (type == 0xee)
			return 0;
		TDC_GUARD(tdc_rd_skip(&part, 11, "pmbr.entry", e));
	}
	return TDC_FAIL_AT(e, TDC_E_FORMAT, 446, "no GPT: the MBR has no protective partition",
			   NULL);
}

static void utf16_name(struct tdc_rd *name, char out[37])
{
	size_t k = 0;

	for (size_t i = 0; i + 1 < tdc_rd_len(name) && k < 36; i += 2) {
		unsigned ch = tdc_rd_at(name, i) | (unsigned)tdc_rd_at(name, i + 1) << 8;

		if (ch == 0)
			break;
		out[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	out[k] = '\0';
}

static int parse_entries(struct tdc_rd *arr, uint32_t count, uint32_t esize, uint64_t lo,
			 uint64_t hi, struct tdc_gpt *g, struct tdc_error *e)
{
	static const uint8_t zero[16];

	for (uint32_t i = 0; i < count; i++) {
		struct tdc_gpt_part p = { .index = i + 1 };
		struct tdc_rd ent, name;
		size_t at = tdc_rd_offset(arr);

		TDC_GUARD(tdc_rd_sub(arr, esize, &ent, "gpt.entry", e));
		TDC_GUARD(tdc_rd_copy(&ent, p.type, 16, "gpt.entry.type", e));
		if (tdc_guid_equal(p.type, zero))
			continue;
		TDC_GUARD(tdc_rd_copy(&ent, p.guid, 16, "gpt.entry.guid", e));
		TDC_GUARD(tdc_rd_u64le(&ent, &p.first_lba, "gpt.entry.first_lba", e));
		TDC_GUARD(tdc_rd_u64le(&ent, &p.last_lba, "gpt.entry.last_lba", e));
		TDC_GUARD(tdc_rd_u64le(&ent, &p.attrs, "gpt.entry.attrs", e));
		TDC_GUARD(tdc_rd_sub(&ent, 72, &name, "gpt.entry.name", e));
		utf16_name(&name, p.name);
		if (p.first_lba > p.last_lba || p.first_lba < lo || p.last_lba > hi)
			return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "GPT partition outside the disk",
					   "partition %u: LBA %llu..%llu, usable %llu..%llu", p.index,
					   (unsigned long long)p.first_lba,
					   (unsigned long long)p.last_lba, (unsigned long long)lo,
					   (unsigned long long)hi);
		for (size_t k = 0; k < g->n; k++)
			if (p.first_lba <= g->parts[k].last_lba &&
			    g->parts[k].first_lba <= p.last_lba)
				return TDC_FAIL_AT(e, TDC_E_FORMAT, at, "GPT partitions overlap",
						   "partitions %u and %u", g->parts[k].index,
						   p.index);
		if (g->n == TDC_GPT_MAX_PARTS)
			return TDC_FAILF(e, TDC_E_LIMIT, "too many GPT partitions", "limit %u",
					 TDC_GPT_MAX_PARTS);
		g->parts[g->n++] = p;
	}
	return 0;
}

int tdc_gpt_parse(const uint8_t *buf, size_t len, uint64_t disk_size, struct tdc_gpt *g,
		  struct tdc_error *e)
{
	uint8_t sig[8], hdrcopy[TDC_GPT_SECTOR];
	uint32_t rev, hsize, hcrc, count, esize, acrc;
	uint64_t my_lba, alt_lba, arr_lba, sectors = disk_size / TDC_GPT_SECTOR;
	struct tdc_rd r, hdr, arr;

	if (!buf || !g)
		return TDC_FAIL(e, TDC_E_USAGE, "gpt: missing argument");
	memset(g, 0, sizeof(*g));
	tdc_rd_init(&r, buf, len);
	if (disk_size < 4 * TDC_GPT_SECTOR)
		return TDC_FAILF(e, TDC_E_FORMAT, "not a disk image: too small", "%llu bytes",
				 (unsigned long long)disk_size);
	TDC_GUARD(parse_pmbr(&r, e));
	TDC_GUARD(tdc_rd_sub(&r, TDC_GPT_SECTOR, &hdr, "gpt.header", e));
	TDC_GUARD(tdc_rd_copy(&hdr, sig, 8, "gpt.signature", e));
	if (memcmp(sig, "EFI PART", 8) != 0) {
		if (len >= 4096 + 8 && tdc_rd_len(&r) >= 4096 - 1024 + 8) {
			struct tdc_rd s4 = r;
			uint8_t s[8];

			if (tdc_rd_skip(&s4, 4096 - 1024, NULL, NULL) == 0 &&
			    tdc_rd_copy(&s4, s, 8, NULL, NULL) == 0 && !memcmp(s, "EFI PART", 8))
				return TDC_FAIL(e, TDC_E_UNSUPPORTED,
						"GPT with 4096-byte sectors is not supported");
		}
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 512, "no GPT header", NULL);
	}
	TDC_GUARD(tdc_rd_u32le(&hdr, &rev, "gpt.revision", e));
	TDC_GUARD(tdc_rd_u32le(&hdr, &hsize, "gpt.header_size", e));
	if (hsize < HDR_MIN || hsize > TDC_GPT_SECTOR)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 524, "bad GPT header size", "%u", hsize);
	TDC_GUARD(tdc_rd_u32le(&hdr, &hcrc, "gpt.header_crc", e));
	memcpy(hdrcopy, tdc_rd_ptr(&hdr), TDC_GPT_SECTOR);
	memset(hdrcopy + 16, 0, 4);
	if (tdc_crc32(hdrcopy, hsize) != hcrc)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 528, "GPT header checksum mismatch", NULL);
	TDC_GUARD(tdc_rd_skip(&hdr, 4, "gpt.reserved", e));
	TDC_GUARD(tdc_rd_u64le(&hdr, &my_lba, "gpt.my_lba", e));
	TDC_GUARD(tdc_rd_u64le(&hdr, &alt_lba, "gpt.alternate_lba", e));
	TDC_GUARD(tdc_rd_u64le(&hdr, &g->first_usable, "gpt.first_usable", e));
	TDC_GUARD(tdc_rd_u64le(&hdr, &g->last_usable, "gpt.last_usable", e));
	TDC_GUARD(tdc_rd_copy(&hdr, g->disk_guid, 16, "gpt.disk_guid", e));
	TDC_GUARD(tdc_rd_u64le(&hdr, &arr_lba, "gpt.entries_lba", e));
	TDC_GUARD(tdc_rd_u32le(&hdr, &count, "gpt.entries", e));
	TDC_GUARD(tdc_rd_u32le(&hdr, &esize, "gpt.entry_size", e));
	TDC_GUARD(tdc_rd_u32le(&hdr, &acrc, "gpt.entries_crc", e));
	(void)rev;
	if (my_lba != 1)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 536, "GPT header not at LBA 1", "%llu",
				   (unsigned long long)my_lba);
	if (g->first_usable > g->last_usable || g->last_usable >= sectors || alt_lba >= sectors)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 552, "GPT larger than the disk",
				   "last usable LBA %llu, disk %llu sectors",
				   (unsigned long long)g->last_usable, (unsigned long long)sectors);
	if (count > TDC_MAX_GPT_ENTRIES || esize > TDC_MAX_GPT_ENTRY_SIZE)
		return TDC_FAILF(e, TDC_E_LIMIT, "GPT entry array too large", "%u entries of %u",
				 count, esize);
	if (esize < 128 || (esize & (esize - 1)))
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 596, "bad GPT entry size", "%u", esize);
	if (arr_lba < 2 || arr_lba > len / TDC_GPT_SECTOR)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 584, "GPT entry array not at the disk start",
				   "LBA %llu", (unsigned long long)arr_lba);
	tdc_rd_init(&r, buf, len);
	TDC_GUARD(tdc_rd_skip(&r, (size_t)arr_lba * TDC_GPT_SECTOR, "gpt.entries", e));
	TDC_GUARD(tdc_rd_sub(&r, (size_t)count * esize, &arr, "gpt.entries", e));
	if (tdc_crc32(tdc_rd_ptr(&arr), tdc_rd_len(&arr)) != acrc)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(&arr),
				   "GPT entry array checksum mismatch", NULL);
	return parse_entries(&arr, count, esize, g->first_usable, g->last_usable, g, e);
}


int tdc_gpt_read_fd(int fd, uint64_t disk_size, struct tdc_gpt *g, struct tdc_error *e)
{
	size_t len = disk_size < TDC_GPT_PREFIX ? (size_t)disk_size : TDC_GPT_PREFIX;
	uint8_t *buf = malloc(TDC_GPT_PREFIX);
	int r;

	if (!buf)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	r = tdc_pread_full(fd, buf, len, 0);
	if (r < 0)
		r = TDC_FAILF(e, TDC_E_IO, "cannot read the disk image", "%s", strerror(-r));
	else
		r = tdc_gpt_parse(buf, len, disk_size, g, e);
	free(buf);
	return r;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void make_header(uint8_t *h, const struct tdc_gpt *g, uint64_t my, uint64_t alt,
			uint64_t arr, uint32_t arr_crc)
{
	memset(h, 0, TDC_GPT_SECTOR);
	memcpy(h, "EFI PART", 8);
	put_u32(h + 8, 0x00010000u);
	put_u32(h + 12, HDR_MIN);
	put_u64(h + 24, my);
	put_u64(h + 32, alt);
	put_u64(h + 40, g->first_usable);
	put_u64(h + 48, g->last_usable);
	memcpy(h + 56, g->disk_guid, 16);
	put_u64(h + 72, arr);
	put_u32(h + 80, WRITE_ENTRIES);
	put_u32(h + 84, ENTRY_SIZE);
	put_u32(h + 88, arr_crc);
	put_u32(h + 16, tdc_crc32(h, HDR_MIN));
}

int tdc_gpt_write_fd(int fd, uint64_t disk_size, struct tdc_gpt *g, struct tdc_error *e)
{
	uint64_t sectors = disk_size / TDC_GPT_SECTOR, last = sectors - 1;
	uint8_t mbr[TDC_GPT_SECTOR] = { 0 }, hdr[TDC_GPT_SECTOR];
	uint8_t *arr;
	uint32_t crc;
	int r;

	if (disk_size % TDC_GPT_SECTOR || disk_size < (1u << 20))
		return TDC_FAIL(e, TDC_E_USAGE, "gpt: bad disk size");
	if (g->n > WRITE_ENTRIES)
		return TDC_FAIL(e, TDC_E_USAGE, "gpt: too many partitions");
	g->first_usable = 2 + ARRAY_SECTORS;
	g->last_usable = last - 1 - ARRAY_SECTORS;
	for (size_t i = 0; i < g->n; i++) {
		const struct tdc_gpt_part *p = &g->parts[i];

		if (p->first_lba < g->first_usable || p->last_lba > g->last_usable ||
		    p->first_lba > p->last_lba)
			return TDC_FAILF(e, TDC_E_USAGE, "gpt: partition outside the disk", "%zu",
					 i + 1);
		for (size_t k = 0; k < i; k++)
			if (p->first_lba <= g->parts[k].last_lba &&
			    g->parts[k].first_lba <= p->last_lba)
				return TDC_FAIL(e, TDC_E_USAGE, "gpt: partitions overlap");
	}
	arr = calloc(WRITE_ENTRIES, ENTRY_SIZE);
	if (!arr)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	for (size_t i = 0; i < g->n; i++) {
		uint8_t *ent = arr + i * ENTRY_SIZE;
		const struct tdc_gpt_part *p = &g->parts[i];

		memcpy(ent, p->type, 16);
		memcpy(ent + 16, p->guid, 16);
		put_u64(ent + 32, p->first_lba);
		put_u64(ent + 40, p->last_lba);
		put_u64(ent + 48, p->attrs);
		for (size_t k = 0; k < 36 && p->name[k]; k++)
			ent[56 + 2 * k] = (uint8_t)p->name[k];
	}
	crc = tdc_crc32(arr, WRITE_ENTRIES * ENTRY_SIZE);
	/* protective MBR: one 0xEE partition from LBA 1 over the disk (capped at 2^32-1) */
	mbr[446 + 1] = 0x00;
	mbr[446 + 2] = 0x02;
	mbr[446 + 4] = 0xee;
	mbr[446 + 5] = 0xff;
	mbr[446 + 6] = 0xff;
	mbr[446 + 7] = 0xff;
	put_u32(mbr + 446 + 8, 1);
	put_u32(mbr + 446 + 12, sectors - 1 > 0xffffffffu ? 0xffffffffu : (uint32_t)(sectors - 1));
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	r = tdc_pwrite_full(fd, mbr, sizeof(mbr), 0);
	make_header(hdr, g, 1, last, 2, crc);
	if (r == 0)
		r = tdc_pwrite_full(fd, hdr, sizeof(hdr), TDC_GPT_SECTOR);
	if (r == 0)
		r = tdc_pwrite_full(fd, arr, WRITE_ENTRIES * ENTRY_SIZE, 2 * TDC_GPT_SECTOR);
	make_header(hdr, g, last, 1, last - ARRAY_SECTORS, crc);
	if (r == 0)
		r = tdc_pwrite_full(fd, arr, WRITE_ENTRIES * ENTRY_SIZE,
			       (last - ARRAY_SECTORS) * TDC_GPT_SECTOR);
	if (r == 0)
		r = tdc_pwrite_full(fd, hdr, sizeof(hdr), last * TDC_GPT_SECTOR);
	free(arr);
	if (r < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot write the partition table", "%s",
				 strerror(-r));
	return 0;
}
