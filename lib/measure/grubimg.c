/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The module area of a GRUB EFI image (grub-mkimage / grub-mkstandalone): a PE
 * section "mods" holding a module info header ("mimg") and objects: ELF modules
 * built into the core, the memdisk (a tar), the prefix, an early config. What
 * GRUB will measure depends on it: nothing unless the tpm module is built in,
 * nothing on a TD unless that module knows the CC measurement protocol, no
 * event for files it reads from the memdisk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tdcrypt/measure.h"
#include "util/util.h"

#define MODULE_INFO_MAGIC 0x676d696du /* "mimg" */
#define OBJ_ELF 0u
#define OBJ_MEMDISK 1u
#define OBJ_CONFIG 2u
#define OBJ_PREFIX 3u
#define TAR_BLOCK 512u

/* EFI_CC_MEASUREMENT_PROTOCOL_GUID 96751a3d-72f4-41a6-a794-ed5d0e67ae6b, EFI byte order */
static const uint8_t cc_guid[16] = { 0x3d, 0x1a, 0x75, 0x96, 0xf4, 0x72, 0xa6, 0x41,
				     0xa7, 0x94, 0xed, 0x5d, 0x0e, 0x67, 0xae, 0x6b };

/* The "mods" section of a PE image, as a view. */
static int find_mods(const uint8_t *img, size_t len, struct tdc_rd *mods, struct tdc_error *e)
{
	struct tdc_rd r;
	uint16_t mz, nsect, optsize;
	uint32_t lfanew, sig;

	tdc_rd_init(&r, img, len);
	TDC_GUARD(tdc_rd_u16le(&r, &mz, "DOS header", e));
	if (mz != 0x5a4d)
		return TDC_FAIL(e, TDC_E_UNSUPPORTED, "not an EFI (PE) image");
	TDC_GUARD(tdc_rd_skip(&r, 0x3c - 2, "DOS header", e));
	TDC_GUARD(tdc_rd_u32le(&r, &lfanew, "e_lfanew", e));
	tdc_rd_init(&r, img, len);
	TDC_GUARD(tdc_rd_skip(&r, lfanew, "e_lfanew", e));
	TDC_GUARD(tdc_rd_u32le(&r, &sig, "PE signature", e));
	if (sig != 0x00004550)
		return TDC_FAIL(e, TDC_E_UNSUPPORTED, "not an EFI (PE) image");
	TDC_GUARD(tdc_rd_skip(&r, 2, "COFF header", e));
	TDC_GUARD(tdc_rd_u16le(&r, &nsect, "NumberOfSections", e));
	TDC_GUARD(tdc_rd_skip(&r, 12, "COFF header", e));
	TDC_GUARD(tdc_rd_u16le(&r, &optsize, "SizeOfOptionalHeader", e));
	TDC_GUARD(tdc_rd_skip(&r, 2u + optsize, "optional header", e));
	for (unsigned i = 0; i < nsect; i++) {
		char name[8];
		uint32_t size, ptr;
		TDC_GUARD(tdc_rd_copy(&r, name, sizeof(name), "section name", e));
		TDC_GUARD(tdc_rd_skip(&r, 8, "section header", e));
		TDC_GUARD(tdc_rd_u32le(&r, &size, "SizeOfRawData", e));
		TDC_GUARD(tdc_rd_u32le(&r, &ptr, "PointerToRawData", e));
		TDC_GUARD(tdc_rd_skip(&r, 16, "section header", e));
		if (memcmp(name, "mods\0\0\0\0", 8))
			continue;
		struct tdc_rd all;
		tdc_rd_init(&all, img, len);
		TDC_GUARD(tdc_rd_skip(&all, ptr, "mods section", e));
		return tdc_rd_sub(&all, size, mods, "mods section", e);
	}
	return TDC_FAIL(e, TDC_E_UNSUPPORTED, "no GRUB module area in this EFI image (not GRUB?)");
}

/* The name in an ELF module's .modname section. */
static int elf_modname(const struct tdc_rd *obj, char *out, size_t cap, struct tdc_error *e)
{
	struct tdc_rd r = *obj, sh, strtab, name;
	uint64_t shoff, off, size;
	uint16_t shentsize, shnum, shstrndx;
	uint32_t sname;

	r.pos = 0;
	if (!tdc_rd_starts_with(&r, "\x7f" "ELF\x02", 5))
		return TDC_FAIL(e, TDC_E_FORMAT, "GRUB module is not an ELF64 object");
	TDC_GUARD(tdc_rd_skip(&r, 0x28, "ELF header", e));
	TDC_GUARD(tdc_rd_u64le(&r, &shoff, "e_shoff", e));
	TDC_GUARD(tdc_rd_skip(&r, 0x3a - 0x30, "ELF header", e));
	TDC_GUARD(tdc_rd_u16le(&r, &shentsize, "e_shentsize", e));
	TDC_GUARD(tdc_rd_u16le(&r, &shnum, "e_shnum", e));
	TDC_GUARD(tdc_rd_u16le(&r, &shstrndx, "e_shstrndx", e));
	if (shentsize != 64 || shstrndx >= shnum)
		return TDC_FAIL(e, TDC_E_FORMAT, "bad ELF section table in GRUB module");
	/* the section-name string table */
	r.pos = 0;
	TDC_GUARD(tdc_rd_skip(&r, (size_t)shoff + 64u * shstrndx + 0x18, "ELF sections", e));
	TDC_GUARD(tdc_rd_u64le(&r, &off, "sh_offset", e));
	TDC_GUARD(tdc_rd_u64le(&r, &size, "sh_size", e));
	r.pos = 0;
	TDC_GUARD(tdc_rd_skip(&r, (size_t)off, "ELF strings", e));
	TDC_GUARD(tdc_rd_sub(&r, (size_t)size, &strtab, "ELF strings", e));
	for (unsigned i = 0; i < shnum; i++) {
		r.pos = 0;
		TDC_GUARD(tdc_rd_skip(&r, (size_t)shoff + 64u * i, "ELF sections", e));
		TDC_GUARD(tdc_rd_sub(&r, 64, &sh, "ELF section", e));
		TDC_GUARD(tdc_rd_u32le(&sh, &sname, "sh_name", e));
		TDC_GUARD(tdc_rd_skip(&sh, 0x18 - 4, "ELF section", e));
		TDC_GUARD(tdc_rd_u64le(&sh, &off, "sh_offset", e));
		TDC_GUARD(tdc_rd_u64le(&sh, &size, "sh_size", e));
		struct tdc_rd s = strtab;
		s.pos = 0;
		if (tdc_rd_skip(&s, sname, NULL, NULL) < 0 || !tdc_rd_starts_with(&s, ".modname", 9))
			continue;
		r.pos = 0;
		TDC_GUARD(tdc_rd_skip(&r, (size_t)off, ".modname", e));
		TDC_GUARD(tdc_rd_sub(&r, (size_t)size, &name, ".modname", e));
		size_t n = 0;
		uint8_t c;
		while (n + 1 < cap && tdc_rd_u8(&name, &c, NULL, NULL) == 0 && c)
			out[n++] = (char)c;
		out[n] = '\0';
		return n ? 0 : TDC_FAIL(e, TDC_E_FORMAT, "empty GRUB module name");
	}
	return TDC_FAIL(e, TDC_E_FORMAT, "GRUB module without .modname");
}

/* "GRUB 2.06-13+deb12u2" anywhere in the image (normal.mod, or the memdisk's modules). */
static void find_version(const uint8_t *img, size_t len, struct tdc_grub_image *g)
{
	struct tdc_rd r;
	size_t at;
	tdc_rd_init(&r, img, len);
	while (tdc_rd_find(&r, "GRUB 2.", 7, &at)) {
		if (tdc_rd_skip(&r, at + 5, NULL, NULL) < 0)
			return;
		size_t n = 0;
		struct tdc_rd v = r;
		uint8_t c;
		while (n + 1 < sizeof(g->version) && tdc_rd_u8(&v, &c, NULL, NULL) == 0 &&
		       ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '.' || c == '-' ||
			c == '+' || c == '~'))
			g->version[n++] = (char)c;
		g->version[n] = '\0';
		if (sscanf(g->version, "%u.%u", &g->major, &g->minor) == 2)
			return;
		g->version[0] = '\0';
	}
}

int tdc_grub_image_parse(const uint8_t *efi, size_t len, struct tdc_grub_image *g,
			 struct tdc_error *e)
{
	struct tdc_rd mods, r;
	uint32_t magic, pad;
	uint64_t off, size;

	memset(g, 0, sizeof(*g));
	if (len > TDC_PE_MAX_IMAGE)
		return TDC_FAILF(e, TDC_E_LIMIT, "GRUB image too large", "%zu bytes", len);
	TDC_GUARD(find_mods(efi, len, &mods, e));
	TDC_GUARD(tdc_rd_u32le(&mods, &magic, "module info magic", e));
	if (magic != MODULE_INFO_MAGIC)
		return TDC_FAIL(e, TDC_E_UNSUPPORTED, "no GRUB module info in the mods section");
	TDC_GUARD(tdc_rd_u32le(&mods, &pad, "module info", e));
	TDC_GUARD(tdc_rd_u64le(&mods, &off, "module info offset", e));
	TDC_GUARD(tdc_rd_u64le(&mods, &size, "module info size", e));
	if (off < 24 || size > tdc_rd_len(&mods) || off > size)
		return TDC_FAIL(e, TDC_E_FORMAT, "bad GRUB module info");
	r = mods;
	r.pos = 0;
	TDC_GUARD(tdc_rd_skip(&r, (size_t)off, "module info", e));
	r.len = (size_t)size;
	while (!tdc_rd_empty(&r)) {
		uint32_t type, osize;
		struct tdc_rd obj;
		TDC_GUARD(tdc_rd_u32le(&r, &type, "module type", e));
		TDC_GUARD(tdc_rd_u32le(&r, &osize, "module size", e));
		if (osize < 8)
			return TDC_FAIL(e, TDC_E_FORMAT, "bad GRUB module size");
		TDC_GUARD(tdc_rd_sub(&r, osize - 8u, &obj, "GRUB module", e));
		switch (type) {
		case OBJ_ELF: {
			if (g->n_builtin == TDC_GRUB_MAX_MODULES)
				return TDC_FAIL(e, TDC_E_LIMIT, "too many GRUB modules");
			char *name = g->builtin[g->n_builtin++];
			TDC_GUARD(elf_modname(&obj, name, sizeof(g->builtin[0]), e));
			if (!strcmp(name, "tpm")) {
				size_t at;
				g->tpm_builtin = true;
				g->cc_capable = tdc_rd_find(&obj, cc_guid, sizeof(cc_guid), &at);
			}
			break;
		}
		case OBJ_MEMDISK:
			g->has_memdisk = true;
			g->memdisk = obj;
			break;
		case OBJ_CONFIG:
			g->has_config = true;
			break;
		case OBJ_PREFIX: {
			size_t n = 0;
			uint8_t c;
			while (n + 1 < sizeof(g->prefix) && tdc_rd_u8(&obj, &c, NULL, NULL) == 0 && c)
				g->prefix[n++] = (char)c;
			g->prefix[n] = '\0';
			break;
		}
		default: /* public keys, DTBs, ...: nothing measured about them here */
			break;
		}
	}
	find_version(efi, len, g);
	return 0;
}

static uint64_t octal(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n && p[i] >= '0' && p[i] <= '7'; i++)
		v = v * 8 + (uint64_t)(p[i] - '0');
	return v;
}

int tdc_grub_memdisk_file(const struct tdc_grub_image *g, const char *path, struct tdc_rd *out,
			  struct tdc_error *e)
{
	struct tdc_rd r = g->memdisk;
	uint8_t h[TAR_BLOCK];

	if (!g->has_memdisk)
		return TDC_FAILF(e, TDC_E_NOT_FOUND, "no memdisk in the GRUB image", "%s", path);
	while (*path == '/')
		path++;
	r.pos = 0;
	while (tdc_rd_remaining(&r) >= TAR_BLOCK) {
		TDC_GUARD(tdc_rd_copy(&r, h, sizeof(h), "tar header", e));
		if (tdc_all_zero(h, sizeof(h)))
			break;
		char name[260];
		/* ustar: prefix (345, 155 bytes) "/" name (0, 100 bytes) */
		if (h[345])
			snprintf(name, sizeof(name), "%.155s/%.100s", (const char *)h + 345,
				 (const char *)h);
		else
			snprintf(name, sizeof(name), "%.100s", (const char *)h);
		uint64_t size = octal(h + 124, 12);
		struct tdc_rd data;
		TDC_GUARD(tdc_rd_sub(&r, (size_t)size, &data, "tar file", e));
		size_t pad = (size_t)((TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK);
		if (tdc_rd_skip(&r, pad, NULL, NULL) < 0)
			break;
		const char *n = name;
		while (*n == '/' || (n[0] == '.' && n[1] == '/'))
			n += *n == '/' ? 1 : 2;
		if ((h[156] == '0' || h[156] == 0) && !strcmp(n, path)) {
			*out = data;
			return 0;
		}
	}
	return TDC_FAILF(e, TDC_E_NOT_FOUND, "no such file in the GRUB memdisk", "%s", path);
}
