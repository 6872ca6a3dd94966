/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a direct kernel boot measures about the kernel: QEMU copies the bzImage
 * to the firmware through fw_cfg after writing its boot-protocol fields into
 * the setup header, and OVMF measures that patched image (Authenticode) when it
 * loads it. The fields and values below are QEMU's x86_load_linux (identical in
 * 7.2 and 10.x) for a kernel loaded high on the q35 machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tdcrypt/measure.h"

#define HDR_SETUP_SECTS 0x1f1u
#define HDR_VID_MODE 0x1fau
#define HDR_MAGIC 0x202u
#define HDR_VERSION 0x206u
#define HDR_KERNEL_VERSION 0x20eu
#define HDR_TYPE_OF_LOADER 0x210u
#define HDR_LOADFLAGS 0x211u
#define HDR_RAMDISK_IMAGE 0x218u
#define HDR_RAMDISK_SIZE 0x21cu
#define HDR_HEAP_END_PTR 0x224u
#define HDR_CMD_LINE_PTR 0x228u
#define HDR_INITRD_ADDR_MAX 0x22cu
#define HDR_XLOADFLAGS 0x236u
#define HDR_END 0x250u

#define LOADED_HIGH 0x01u
#define CAN_USE_HEAP 0x80u
#define XLF_CAN_BE_LOADED_ABOVE_4G 0x02u
/* QEMU's layout for a kernel loaded high: setup at 0x10000, command line at 0x20000. */
#define QEMU_REAL_ADDR 0x10000u
#define QEMU_CMDLINE_ADDR 0x20000u
/* q35: ACPI tables reserved below the top of low memory (pc.c). */
#define Q35_ACPI_DATA_SIZE 0x28000u

static uint32_t get(const uint8_t *k, size_t off, unsigned n)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint32_t)k[off + i] << (8 * i);
	return v;
}

static void put(uint8_t *k, size_t off, uint32_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		k[off + i] = (uint8_t)(v >> (8 * i));
}

int tdc_bzimage_parse(const uint8_t *k, size_t len, struct tdc_bzimage *out, struct tdc_error *e)
{
	struct tdc_rd r;
	uint8_t hdr[HDR_END];
	uint8_t pe[4];

	memset(out, 0, sizeof(*out));
	if (len > TDC_KERNEL_MAX_IMAGE)
		return TDC_FAILF(e, TDC_E_LIMIT, "kernel image too large", "%zu bytes", len);
	tdc_rd_init(&r, k, len);
	TDC_GUARD(tdc_rd_copy(&r, hdr, sizeof(hdr), "bzImage setup header", e));
	if (memcmp(hdr + HDR_MAGIC, "HdrS", 4))
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, HDR_MAGIC, "not a Linux bzImage",
				   "%s", "no \"HdrS\" setup header");
	out->protocol = (uint16_t)get(hdr, HDR_VERSION, 2);
	out->loadflags = hdr[HDR_LOADFLAGS];
	out->xloadflags = out->protocol >= 0x20c ? (uint16_t)get(hdr, HDR_XLOADFLAGS, 2) : 0;
	out->initrd_addr_max = out->protocol >= 0x203 ? get(hdr, HDR_INITRD_ADDR_MAX, 4) : 0;
	unsigned sects = hdr[HDR_SETUP_SECTS] ? hdr[HDR_SETUP_SECTS] : 4u;
	out->setup_size = (sects + 1) * 512u;
	if (out->setup_size > len)
		return TDC_FAILF(e, TDC_E_FORMAT, "bzImage shorter than its setup",
				 "%u setup bytes, %zu in the file", out->setup_size, len);
	/* the PE header an EFI stub kernel carries at e_lfanew */
	uint32_t lfanew = get(hdr, 0x3c, 4);
	tdc_rd_init(&r, k, len);
	out->efi_stub = hdr[0] == 'M' && hdr[1] == 'Z' && tdc_rd_skip(&r, lfanew, NULL, NULL) == 0 &&
			tdc_rd_copy(&r, pe, 4, NULL, NULL) == 0 && !memcmp(pe, "PE\0\0", 4);
	/* kernel_version: offset of a NUL-terminated string, minus 0x200 */
	uint32_t vo = (uint32_t)get(hdr, HDR_KERNEL_VERSION, 2);
	if (out->protocol >= 0x200 && vo) {
		tdc_rd_init(&r, k, len);
		if (tdc_rd_skip(&r, vo + 0x200u, NULL, NULL) == 0) {
			size_t i = 0;
			uint8_t c;
			while (i + 1 < sizeof(out->version) && tdc_rd_u8(&r, &c, NULL, NULL) == 0 &&
			       c >= 0x20 && c < 0x7f)
				out->version[i++] = (char)c;
			out->version[i] = '\0';
			if (sscanf(out->version, "%u.%u", &out->major, &out->minor) != 2)
				out->major = out->minor = 0;
		}
	}
	return 0;
}

bool tdc_qemu_patches_kernel(const struct tdc_qemu_boot *q, bool ovmf_named_blobs)
{
	unsigned v = q->qemu_major * 100 + q->qemu_minor;
	if (v >= 1002)
		return false; /* QEMU 10.2: no header patching for confidential guests */
	return !(v >= 1000 && ovmf_named_blobs);
}

/* Top of the RAM below 4 GiB on q35 (pc_q35_init: lowmem 2 GiB if RAM >= 2.75 GiB). */
static uint64_t below_4g(uint64_t ram)
{
	uint64_t lowmem = ram >= 0xb0000000ull ? 0x80000000ull : 0xb0000000ull;
	return ram >= lowmem ? lowmem : ram;
}

int tdc_qemu_patch_kernel(const uint8_t *k, size_t len, const struct tdc_qemu_boot *q,
			  uint8_t **out, struct tdc_error *e)
{
	struct tdc_bzimage bz;

	*out = NULL;
	TDC_GUARD(tdc_bzimage_parse(k, len, &bz, e));
	if (bz.protocol < 0x202 || !(bz.loadflags & LOADED_HIGH))
		return TDC_FAILF(e, TDC_E_UNSUPPORTED, "kernel not loaded high by QEMU",
				 "boot protocol 0x%x, loadflags 0x%x: not modelled", bz.protocol,
				 bz.loadflags);
	if (q->cmdline && strstr(q->cmdline, "vga="))
		return TDC_FAIL(e, TDC_E_UNSUPPORTED,
				"vga= on the command line changes the kernel QEMU passes (not "
				"modelled): remove it");
	uint8_t *p = malloc(len);
	if (!p)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	memcpy(p, k, len);
	p[HDR_TYPE_OF_LOADER] = 0xb0;
	p[HDR_LOADFLAGS] |= CAN_USE_HEAP;
	put(p, HDR_HEAP_END_PTR, QEMU_CMDLINE_ADDR - QEMU_REAL_ADDR - 0x200u, 2);
	put(p, HDR_CMD_LINE_PTR, QEMU_CMDLINE_ADDR, 4);
	if (q->has_initrd) {
		uint64_t max;
		if (bz.protocol >= 0x20c && (bz.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G))
			max = 0xffffffffull;
		else if (bz.protocol >= 0x203)
			max = bz.initrd_addr_max;
		else
			max = 0x37ffffffull;
		uint64_t top = below_4g(q->memory_bytes);
		if (top < Q35_ACPI_DATA_SIZE + 1 || q->initrd_size >= max) {
			free(p);
			return TDC_FAILF(e, TDC_E_UNSUPPORTED, "initrd does not fit below 4 GiB",
					 "%llu bytes", (unsigned long long)q->initrd_size);
		}
		if (max >= top - Q35_ACPI_DATA_SIZE)
			max = top - Q35_ACPI_DATA_SIZE - 1;
		if (q->initrd_size >= max) {
			free(p);
			return TDC_FAILF(e, TDC_E_UNSUPPORTED, "initrd too large for the guest memory",
					 "%llu bytes", (unsigned long long)q->initrd_size);
		}
		put(p, HDR_RAMDISK_IMAGE, (uint32_t)((max - q->initrd_size) & ~0xfffull), 4);
		put(p, HDR_RAMDISK_SIZE, (uint32_t)q->initrd_size, 4);
	}
	*out = p;
	return 0;
}
