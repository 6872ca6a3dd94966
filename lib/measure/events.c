/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Predicted event lists and the fixed UEFI events every boot path shares
 * (TCG PC Client PFP spec 10.4; edk2 Tcg2Dxe/TdTcg2Dxe and DxeTpm2MeasureBootLib
 * for the exact bytes): EV_EFI_ACTION strings are hashed without a NUL, a
 * separator is four zero bytes, the GPT event is UEFI_GPT_DATA.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tdcrypt/measure.h"
#include "util/util.h"
#include "util/wr.h"

#define GPT_HEADER_SIZE 92u /* sizeof(EFI_PARTITION_TABLE_HEADER), whatever HeaderSize says */
#define SECTOR 512u
#define MAX_GPT_ENTRIES 1024u
#define MAX_GPT_ENTRY_SIZE 1024u

static const char *const role_names[] = {
	[TDC_ROLE_OTHER] = "other",
	[TDC_ROLE_FIRMWARE] = "firmware",
	[TDC_ROLE_SEPARATOR] = "separator",
	[TDC_ROLE_GPT] = "gpt",
	[TDC_ROLE_BOOT_APP] = "boot_app",
	[TDC_ROLE_KERNEL] = "kernel",
	[TDC_ROLE_INITRD] = "initrd",
	[TDC_ROLE_CMDLINE] = "cmdline",
	[TDC_ROLE_BOOT_CONFIG] = "boot_config",
	[TDC_ROLE_BOOT_COMMAND] = "boot_command",
};

const char *tdc_event_role_name(enum tdc_event_role r)
{
	return (unsigned)r < sizeof(role_names) / sizeof(role_names[0]) ? role_names[r] : "other";
}

int tdc_event_role_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
		if (!strcmp(s, role_names[i]))
			return (int)i;
	return -1;
}

static struct tdc_pred_event *slot(struct tdc_prediction *p, unsigned rtmr, uint32_t type,
				   enum tdc_event_role role, const char *what,
				   struct tdc_error *e)
{
	if (rtmr >= TDC_RTMR_COUNT) {
		TDC_FAIL(e, TDC_E_USAGE, "no such RTMR");
		return NULL;
	}
	if (p->n == TDC_PRED_MAX_EVENTS) {
		TDC_FAILF(e, TDC_E_LIMIT, "too many predicted events", "limit %u",
			  TDC_PRED_MAX_EVENTS);
		return NULL;
	}
	struct tdc_pred_event *ev = &p->ev[p->n++];
	memset(ev, 0, sizeof(*ev));
	ev->rtmr = rtmr;
	ev->type = type;
	ev->role = role;
	snprintf(ev->what, sizeof(ev->what), "%s", what ? what : "");
	return ev;
}

int tdc_pred_add(struct tdc_prediction *p, unsigned rtmr, uint32_t type, enum tdc_event_role role,
		 const uint8_t *digest, const void *data, size_t len, const char *what,
		 struct tdc_error *e)
{
	struct tdc_pred_event *ev = slot(p, rtmr, type, role, what, e);
	unsigned int n;
	if (!ev)
		return e ? e->code : TDC_E_LIMIT;
	ev->known = true;
	if (digest)
		memcpy(ev->digest, digest, TDC_SHA384_LEN);
	else if (EVP_Digest(data, len, ev->digest, &n, EVP_sha384(), NULL) != 1)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-384 failed");
	return 0;
}

int tdc_pred_add_unknown(struct tdc_prediction *p, unsigned rtmr, uint32_t type,
			 enum tdc_event_role role, const char *what, const char *why,
			 struct tdc_error *e)
{
	struct tdc_pred_event *ev = slot(p, rtmr, type, role, what, e);
	if (!ev)
		return e ? e->code : TDC_E_LIMIT;
	snprintf(ev->why, sizeof(ev->why), "%s", why);
	return 0;
}

void tdc_pred_stop(struct tdc_prediction *p, unsigned rtmr, const char *why)
{
	if (rtmr >= TDC_RTMR_COUNT || p->truncated[rtmr])
		return;
	p->truncated[rtmr] = true;
	snprintf(p->why[rtmr], sizeof(p->why[rtmr]), "%s", why);
}

void tdc_pred_note(struct tdc_prediction *p, const char *fmt, ...)
{
	va_list ap;
	if (p->n_notes == sizeof(p->notes) / sizeof(p->notes[0]))
		return;
	va_start(ap, fmt);
	vsnprintf(p->notes[p->n_notes++], sizeof(p->notes[0]), fmt, ap);
	va_end(ap);
}

int tdc_pred_finish(struct tdc_prediction *p, struct tdc_error *e)
{
	uint8_t buf[2 * TDC_SHA384_LEN];
	unsigned int n;

	memset(p->rtmr, 0, sizeof(p->rtmr));
	for (unsigned r = 0; r < TDC_RTMR_COUNT; r++)
		p->predicted[r] = !p->truncated[r];
	for (size_t i = 0; i < p->n; i++) {
		const struct tdc_pred_event *ev = &p->ev[i];
		if (!ev->known) {
			if (p->predicted[ev->rtmr])
				snprintf(p->why[ev->rtmr], sizeof(p->why[0]), "event %zu (%s): %s",
					 i, ev->what, ev->why);
			p->predicted[ev->rtmr] = false;
			continue;
		}
		uint8_t *reg = p->rtmr[ev->rtmr];
		memcpy(buf, reg, TDC_SHA384_LEN);
		memcpy(buf + TDC_SHA384_LEN, ev->digest, TDC_SHA384_LEN);
		if (EVP_Digest(buf, sizeof(buf), reg, &n, EVP_sha384(), NULL) != 1)
			return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-384 failed");
	}
	for (unsigned r = 0; r < TDC_RTMR_COUNT; r++)
		if (!p->predicted[r])
			memset(p->rtmr[r], 0, TDC_SHA384_LEN);
	return 0;
}

int tdc_pred_action(struct tdc_prediction *p, unsigned rtmr, const char *action,
		    struct tdc_error *e)
{
	return tdc_pred_add(p, rtmr, TDC_EV_EFI_ACTION, TDC_ROLE_FIRMWARE, NULL, action,
			    strlen(action), action, e);
}

int tdc_pred_separator(struct tdc_prediction *p, unsigned rtmr, struct tdc_error *e)
{
	static const uint8_t zero[4];
	return tdc_pred_add(p, rtmr, TDC_EV_SEPARATOR, TDC_ROLE_SEPARATOR, NULL, zero,
			    sizeof(zero), "separator", e);
}

int tdc_pred_gpt(struct tdc_prediction *p, unsigned rtmr, const uint8_t *disk, size_t len,
		 struct tdc_error *e)
{
	struct tdc_rd r, hdr, entries;
	uint8_t sig[8];
	uint64_t entries_lba;
	uint32_t count, esize;
	struct tdc_wr w;
	uint8_t *data;
	size_t dlen;
	char what[64];

	tdc_rd_init(&r, disk, len);
	TDC_GUARD(tdc_rd_skip(&r, SECTOR, "protective MBR", e));
	TDC_GUARD(tdc_rd_sub(&r, GPT_HEADER_SIZE, &hdr, "GPT header", e));
	TDC_GUARD(tdc_rd_copy(&hdr, sig, sizeof(sig), "GPT signature", e));
	if (memcmp(sig, "EFI PART", 8))
		return TDC_FAIL_AT(e, TDC_E_FORMAT, SECTOR, "no GPT header at LBA 1", "%s", "");
	/* entry array LBA at 72, count at 80, entry size at 84 */
	TDC_GUARD(tdc_rd_skip(&hdr, 72 - 8, "GPT header", e));
	TDC_GUARD(tdc_rd_u64le(&hdr, &entries_lba, "GPT PartitionEntryLBA", e));
	TDC_GUARD(tdc_rd_u32le(&hdr, &count, "GPT NumberOfPartitionEntries", e));
	TDC_GUARD(tdc_rd_u32le(&hdr, &esize, "GPT SizeOfPartitionEntry", e));
	if (count > MAX_GPT_ENTRIES || esize < 128 || esize > MAX_GPT_ENTRY_SIZE || esize % 8 ||
	    entries_lba > len / SECTOR)
		return TDC_FAILF(e, TDC_E_FORMAT, "bad GPT entry array",
				 "%u entries of %u bytes at LBA %llu", count, esize,
				 (unsigned long long)entries_lba);
	tdc_rd_init(&r, disk, len);
	TDC_GUARD(tdc_rd_skip(&r, (size_t)entries_lba * SECTOR, "GPT entries", e));
	TDC_GUARD(tdc_rd_sub(&r, (size_t)count * esize, &entries, "GPT entries", e));

	uint64_t used = 0;
	for (uint32_t i = 0; i < count; i++) {
		struct tdc_rd ent;
		uint8_t type[16];
		TDC_GUARD(tdc_rd_sub(&entries, esize, &ent, "GPT entry", e));
		TDC_GUARD(tdc_rd_copy(&ent, type, sizeof(type), "GPT entry type", e));
		used += !tdc_all_zero(type, sizeof(type));
	}
	tdc_wr_init_alloc(&w, GPT_HEADER_SIZE + 8 + (size_t)count * esize);
	tdc_wr_bytes(&w, tdc_rd_ptr(&hdr), GPT_HEADER_SIZE);
	tdc_wr_u64le(&w, used);
	entries.pos = 0;
	for (uint32_t i = 0; i < count; i++) {
		struct tdc_rd ent;
		TDC_GUARD(tdc_rd_sub(&entries, esize, &ent, "GPT entry", e));
		if (!tdc_all_zero(tdc_rd_ptr(&ent), 16))
			tdc_wr_bytes(&w, tdc_rd_ptr(&ent), esize);
	}
	TDC_GUARD(tdc_wr_finish(&w, &data, &dlen, e));
	snprintf(what, sizeof(what), "GPT of the boot disk, %llu partitions",
		 (unsigned long long)used);
	int rc = tdc_pred_add(p, rtmr, TDC_EV_EFI_GPT_EVENT, TDC_ROLE_GPT, NULL, data, dlen, what, e);
	free(data);
	return rc;
}
