/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AES-256-XTS on 4096-byte sectors with the tweak LUKS2/dm-crypt use for "aes-xts-plain64"
 * with sector_size 4096: plain64 of the sector number counted in 512-byte units (dm-crypt
 * without iv_large_sectors), i.e. 4 KiB sector n of the data segment has tweak 8n. Verified
 * against libcryptsetup's own encryption (docs/IMAGE-NOTES.md 3.2).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"

#define TDC_XTS_SECTOR 4096u
/* Two AES-256 keys. */
#define TDC_XTS_KEY_LEN 64u

struct tdc_xts;

/* Keeps its own copy of the key schedule; the caller may wipe key afterwards. */
int tdc_xts_new(struct tdc_xts **out, const uint8_t key[TDC_XTS_KEY_LEN], struct tdc_error *e)
	TDC_MUST_USE;
void tdc_xts_free(struct tdc_xts *x);

/* En/decrypts n whole sectors in place; first is the 4096-byte sector index within the
 * data segment (not the byte offset on disk). */
int tdc_xts_encrypt(struct tdc_xts *x, uint8_t *buf, size_t n, uint64_t first,
		    struct tdc_error *e) TDC_MUST_USE;
int tdc_xts_decrypt(struct tdc_xts *x, uint8_t *buf, size_t n, uint64_t first,
		    struct tdc_error *e) TDC_MUST_USE;
