/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GUID partition tables of disk images with 512-byte logical sectors: a strict reader (protective
 * MBR, primary header and entry array with their CRC32s, bounds of every partition) over the
 * bounded reader, and a writer for the layouts `tdcrypt image encrypt` produces (protective MBR,
 * primary and backup header, 128 entries).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"
#include "util/limits.h"

#define TDC_GPT_SECTOR 512u
/* Caps on untrusted tables (to move to lib/util/limits.h). */
/* Partitions we keep (non-empty entries); images with more are refused. */
#define TDC_GPT_MAX_PARTS 128u
/* Bytes of the disk start a reader needs: PMBR, header, the largest allowed entry array. */
#define TDC_GPT_PREFIX (2u * TDC_GPT_SECTOR + TDC_MAX_GPT_ENTRIES * 128u)

/* GUIDs are kept in their on-disk byte order (first three fields little-endian). */
struct tdc_gpt_part {
	unsigned index;          /* 1-based entry number */
	uint8_t type[16];
	uint8_t guid[16];
	uint64_t first_lba, last_lba;
	uint64_t attrs;
	char name[37];           /* UTF-16LE name, non-ASCII as '?' */
};

struct tdc_gpt {
	uint8_t disk_guid[16];
	uint64_t first_usable, last_usable;
	size_t n;
	struct tdc_gpt_part parts[TDC_GPT_MAX_PARTS];
};

extern const uint8_t TDC_GPT_TYPE_ESP[16];
extern const uint8_t TDC_GPT_TYPE_LINUX_FS[16];
extern const uint8_t TDC_GPT_TYPE_ROOT_X86_64[16];
extern const uint8_t TDC_GPT_TYPE_LUKS[16];
extern const uint8_t TDC_GPT_TYPE_BIOS_BOOT[16];

/*
 * Parses the GPT from the first bytes of a disk (buf: at least the PMBR and header; the entry
 * array must lie inside buf too) of disk_size bytes. TDC_E_FORMAT with the offset for anything
 * malformed ("no protective MBR": not a GPT disk image); TDC_E_UNSUPPORTED for 4 KiB-sector GPTs;
 * TDC_E_LIMIT for tables beyond the caps.
 */
int tdc_gpt_parse(const uint8_t *buf, size_t len, uint64_t disk_size, struct tdc_gpt *g,
		  struct tdc_error *e) TDC_MUST_USE;
/* Reads the prefix of fd (a raw disk image) and parses it. */
int tdc_gpt_read_fd(int fd, uint64_t disk_size, struct tdc_gpt *g, struct tdc_error *e)
	TDC_MUST_USE;
/*
 * Writes PMBR, primary and backup GPT for g (128 entries of 128 bytes) to fd, a disk of
 * disk_size bytes (a multiple of 512, at least 1 MiB). g->first_usable/last_usable are set
 * here. Partitions must be inside the usable range and not overlap (TDC_E_USAGE).
 */
int tdc_gpt_write_fd(int fd, uint64_t disk_size, struct tdc_gpt *g, struct tdc_error *e)
	TDC_MUST_USE;

bool tdc_guid_equal(const uint8_t a[16], const uint8_t b[16]);
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (lower case, 37 bytes with the NUL). */
char *tdc_guid_format(const uint8_t g[16], char out[37]);
int tdc_guid_parse(const char *s, uint8_t g[16]) TDC_MUST_USE;
/* A UUID stored in RFC 4122 (big-endian) byte order, as ext4 and LUKS keep it. */
char *tdc_uuid_format(const uint8_t u[16], char out[37]);
/* A random version-4 GUID (RAND_bytes). */
int tdc_guid_random(uint8_t g[16], struct tdc_error *e) TDC_MUST_USE;
/* CRC-32 (IEEE 802.3, as used by GPT). */
uint32_t tdc_crc32(const uint8_t *p, size_t n);
