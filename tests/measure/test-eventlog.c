/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CC event logs: the real CCEL of a TD replays to the RTMRs of the quote from the same boot,
 * any change to what was measured breaks that, and malformed logs are refused. Plus the CCEL
 * table, the simulator's vTPM-to-CC mapping and the event data check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "tdcrypt/measure.h"
#include "tdcrypt/quote.h"
#include "util/limits.h"
#include "util/util.h"
#include "util/wr.h"

struct blob {
	uint8_t *p;
	size_t n;
};

static struct blob load(const char *rel)
{
	char path[1024];
	struct blob b = { 0 };
	const char *dir = getenv("TDC_TESTDATA");
	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(tdc_file_read(path, 4u << 20, &b.p, &b.n, NULL), 0);
	return b;
}

/* RTMRs of the cos-113 quote, from the same boot as the CCEL. */
static void quote_rtmrs(uint8_t rtmr[4][48])
{
	struct blob q = load("go-tdx-guest/ccel/cos-113-tdx-quote.dat");
	struct tdc_quote qq;
	assert_int_equal(tdc_quote_parse(q.p, q.n, &qq, NULL), 0);
	memcpy(rtmr, qq.td.rtmr, 4 * 48);
	free(q.p);
}

/* parse + replay + data check equal the quote? */
static bool replays_to(const uint8_t *log, size_t len, const uint8_t want[4][48])
{
	struct tdc_evlog l;
	uint8_t got[4][48];
	if (tdc_evlog_parse(log, len, TDC_EVLOG_CC, &l, NULL) < 0)
		return false;
	bool ok = tdc_evlog_replay(&l, got, NULL) == 0 && !memcmp(got, want, sizeof(got)) &&
		  tdc_evlog_check_data(&l, NULL) == 0;
	tdc_evlog_free(&l);
	return ok;
}

static void test_real_ccel_replays_to_quote(void **state)
{
	(void)state;
	struct blob b = load("go-tdx-guest/ccel/ccel_data.dat");
	struct tdc_evlog l;
	uint8_t want[4][48], got[4][48];
	struct tdc_error e;
	tdc_error_clear(&e);
	quote_rtmrs(want);
	assert_int_equal(tdc_evlog_parse(b.p, b.n, TDC_EVLOG_CC, &l, &e), 0);
	assert_int_equal(l.n, 43);
	assert_int_equal(l.len, 18101); /* then 0xFF up to the 256 KiB area */
	assert_int_equal(l.n_algs, 1);
	assert_int_equal(l.algs[0], TDC_TPM_ALG_SHA384);
	assert_int_equal(tdc_evlog_replay(&l, got, &e), 0);
	assert_memory_equal(got[0], want[0], 48);
	assert_memory_equal(got[1], want[1], 48);
	assert_memory_equal(got[2], want[2], 48);
	assert_true(tdc_all_zero(got[3], 48));
	/* every event whose digest is a hash of its data agrees with it */
	assert_int_equal(tdc_evlog_check_data(&l, &e), 0);
	/* descriptions */
	char d[128];
	tdc_event_describe(&l.ev[14], d, sizeof(d));
	assert_string_equal(d, "Calling EFI Application from Boot Option");
	tdc_event_describe(&l.ev[16], d, sizeof(d));
	assert_string_equal(d, "GPT, 12 partitions");
	tdc_event_describe(&l.ev[17], d, sizeof(d));
	assert_string_equal(d, "\\EFI\\BOOT\\BOOTX64.EFI");
	tdc_event_describe(&l.ev[3], d, sizeof(d));
	assert_string_equal(d, "PK (1097 bytes)");
	assert_string_equal(tdc_event_type_name(l.ev[0].type), "EV_EFI_HANDOFF_TABLES2");
	tdc_evlog_free(&l);
	/* the used part alone replays the same */
	assert_true(replays_to(b.p, 18101, want));
	free(b.p);
}

/* Any change to what was measured breaks the replay: every byte of every digest, every MR
 * index, every event left out, every event cut short, and the data of every event whose digest
 * is a hash of it. */
static void test_real_ccel_changes_break_it(void **state)
{
	(void)state;
	struct blob b = load("go-tdx-guest/ccel/ccel_data.dat");
	struct tdc_evlog l;
	uint8_t want[4][48];
	size_t checked = 0;
	quote_rtmrs(want);
	assert_int_equal(tdc_evlog_parse(b.p, b.n, TDC_EVLOG_CC, &l, NULL), 0);
	size_t used = l.len;
	uint8_t *m = malloc(used);
	assert_non_null(m);
	for (size_t i = 0; i < l.n; i++) {
		const struct tdc_event *ev = &l.ev[i];
		/* index at +0, digest at +4+4+4+2 (one algorithm) */
		size_t digest = ev->offset + 14, data = tdc_rd_offset(&ev->data);
		for (size_t k = 0; k < 48; k++) {
			memcpy(m, b.p, used);
			m[digest + k] ^= 0x01;
			if (replays_to(m, used, want))
				fail_msg("event %zu: digest byte %zu changed, still replays", i, k);
			checked++;
		}
		for (unsigned k = 0; k < 4; k++) { /* the MR index */
			memcpy(m, b.p, used);
			m[ev->offset + k] ^= 0x01;
			if (replays_to(m, used, want))
				fail_msg("event %zu: MR index byte %u changed, still replays", i, k);
			checked++;
		}
		/* the data, where the digest covers it (GRUB strings: after the prefix) */
		bool hashed = false;
		size_t from = 0;
		if (ev->type == TDC_EV_IPL) {
			static const char *const pfx[] = { "grub_cmd: ", "kernel_cmdline: " };
			for (size_t p = 0; p < 2; p++)
				if (tdc_rd_starts_with(&ev->data, pfx[p], strlen(pfx[p]))) {
					hashed = true;
					from = strlen(pfx[p]);
				}
		} else {
			uint32_t t = ev->type;
			hashed = t == TDC_EV_SEPARATOR || t == TDC_EV_EFI_ACTION ||
				 t == TDC_EV_EFI_GPT_EVENT || t == TDC_EV_EFI_VARIABLE_DRIVER_CONFIG ||
				 t == TDC_EV_EFI_VARIABLE_AUTHORITY || t == TDC_EV_EFI_VARIABLE_BOOT;
			if (t == TDC_EV_EFI_VARIABLE_BOOT)
				from = 16 + 8 + 8 + 2 * (size_t)(tdc_rd_at(&ev->data, 16) |
								 tdc_rd_at(&ev->data, 17) << 8);
		}
		size_t dlen = tdc_rd_len(&ev->data) - (ev->type == TDC_EV_IPL ? 1 : 0);
		for (size_t k = from; hashed && k < dlen; k++) {
			memcpy(m, b.p, used);
			m[data + k] ^= 0x01;
			if (replays_to(m, used, want))
				fail_msg("event %zu: data byte %zu changed, still accepted", i, k);
			checked++;
		}
		/* the event left out, and the log cut in the middle of it */
		size_t end = i + 1 < l.n ? l.ev[i + 1].offset : used;
		memcpy(m, b.p, ev->offset);
		memcpy(m + ev->offset, b.p + end, used - end);
		if (ev->type != TDC_EV_NO_ACTION && replays_to(m, used - (end - ev->offset), want))
			fail_msg("event %zu left out, still replays", i);
		if (replays_to(b.p, ev->offset + (end - ev->offset) / 2, want))
			fail_msg("log cut inside event %zu, still replays", i);
		checked += 2;
	}
	print_message("%zu changes to the real CCEL, each refused\n", checked);
	free(m);
	tdc_evlog_free(&l);
	free(b.p);
}

/* ---- malformed logs ---- */

/* A log built field by field: header (spec ID with the given algorithms), then events. */
struct logb {
	struct tdc_wr w;
};

static void lb_header(struct logb *b, uint32_t type, const char *sig, uint32_t nalgs,
		      const uint16_t *ids, const uint16_t *sizes)
{
	tdc_wr_init_alloc(&b->w, 1u << 24);
	tdc_wr_u32le(&b->w, 1);
	tdc_wr_u32le(&b->w, type);
	tdc_wr_zeros(&b->w, 20);
	tdc_wr_u32le(&b->w, 16 + 8 + 4 + 4 * nalgs + 1);
	tdc_wr_bytes(&b->w, sig, 16);
	tdc_wr_zeros(&b->w, 8);
	tdc_wr_u32le(&b->w, nalgs);
	for (uint32_t i = 0; i < nalgs; i++) {
		tdc_wr_u16le(&b->w, ids[i]);
		tdc_wr_u16le(&b->w, sizes[i]);
	}
	tdc_wr_u8(&b->w, 0);
}

static void lb_sha384_header(struct logb *b)
{
	static const uint16_t id = TDC_TPM_ALG_SHA384, sz = 48;
	lb_header(b, TDC_EV_NO_ACTION, "Spec ID Event03\0", 1, &id, &sz);
}

static void lb_event(struct logb *b, uint32_t index, uint32_t type, uint32_t count, uint16_t alg,
		     size_t dsize, uint32_t data_len)
{
	tdc_wr_u32le(&b->w, index);
	tdc_wr_u32le(&b->w, type);
	tdc_wr_u32le(&b->w, count);
	for (uint32_t i = 0; i < count; i++) {
		tdc_wr_u16le(&b->w, alg);
		tdc_wr_zeros(&b->w, dsize);
	}
	tdc_wr_u32le(&b->w, data_len);
	tdc_wr_zeros(&b->w, data_len > 4096 ? 4096 : data_len);
}

static int lb_parse(struct logb *b, enum tdc_evlog_kind kind, struct tdc_error *e)
{
	uint8_t *p;
	size_t n;
	struct tdc_evlog l;
	assert_int_equal(tdc_wr_finish(&b->w, &p, &n, NULL), 0);
	tdc_error_clear(e);
	int r = tdc_evlog_parse(p, n, kind, &l, e);
	if (r == 0)
		tdc_evlog_free(&l);
	free(p);
	return r;
}

static void test_malformed(void **state)
{
	(void)state;
	struct logb b;
	struct tdc_error e;
	static const uint16_t sha256 = TDC_TPM_ALG_SHA256, s32 = 32, bad = 0x1234, s48 = 48;
	static const uint16_t two[] = { TDC_TPM_ALG_SHA384, TDC_TPM_ALG_SHA384 }, sz2[] = { 48, 48 };

	lb_sha384_header(&b);
	lb_event(&b, 2, TDC_EV_EFI_ACTION, 1, TDC_TPM_ALG_SHA384, 48, 4);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), 0); /* the baseline parses */

	lb_header(&b, TDC_EV_SEPARATOR, "Spec ID Event03\0", 1, &s48, &s48);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "not a crypto-agile event log");
	lb_header(&b, TDC_EV_NO_ACTION, "Spec ID Event02\0", 1, &sha256, &s32);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_UNSUPPORTED);
	lb_header(&b, TDC_EV_NO_ACTION, "Spec ID Event03\0", 0, NULL, NULL);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "bad number of digest algorithms");
	lb_header(&b, TDC_EV_NO_ACTION, "Spec ID Event03\0", 1, &bad, &s48);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_UNSUPPORTED);
	assert_string_equal(e.reason, "unknown digest algorithm in log");
	lb_header(&b, TDC_EV_NO_ACTION, "Spec ID Event03\0", 1, &two[0], &s32);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "wrong digest size in log header");
	lb_header(&b, TDC_EV_NO_ACTION, "Spec ID Event03\0", 2, two, sz2);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "digest algorithm listed twice");
	lb_header(&b, TDC_EV_NO_ACTION, "Spec ID Event03\0", 1, &sha256, &s32);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_TPM, &e), TDC_E_UNSUPPORTED);
	assert_non_null(strstr(e.reason, "no SHA-384"));
	static const uint16_t six[6] = { 4, 0xb, 0xc, 0xd, 0x12, 0xc };
	static const uint16_t six_sz[6] = { 20, 32, 48, 64, 32, 48 };
	lb_header(&b, TDC_EV_NO_ACTION, "Spec ID Event03\0", 6, six, six_sz);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_LIMIT);

	/* events */
	lb_sha384_header(&b);
	lb_event(&b, 2, TDC_EV_EFI_ACTION, 2, TDC_TPM_ALG_SHA384, 48, 4);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "event digest count mismatch");
	lb_sha384_header(&b);
	lb_event(&b, 2, TDC_EV_EFI_ACTION, 1, TDC_TPM_ALG_SHA256, 32, 4);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "unexpected digest in event");
	lb_sha384_header(&b);
	lb_event(&b, 2, TDC_EV_EFI_ACTION, 1, TDC_TPM_ALG_SHA384, 48, TDC_EVLOG_MAX_EVENT_DATA + 1);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_LIMIT);
	lb_sha384_header(&b);
	lb_event(&b, 2, TDC_EV_EFI_ACTION, 1, TDC_TPM_ALG_SHA384, 48, 5000); /* 4096 bytes follow */
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "truncated input");
	lb_sha384_header(&b);
	lb_event(&b, 5, TDC_EV_EFI_ACTION, 1, TDC_TPM_ALG_SHA384, 48, 4);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "bad MR index in CC event log");
	lb_sha384_header(&b);
	lb_event(&b, 0, TDC_EV_EFI_ACTION, 1, TDC_TPM_ALG_SHA384, 48, 4); /* MRTD is not extended */
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_FORMAT);
	lb_sha384_header(&b);
	lb_event(&b, 24, TDC_EV_EFI_ACTION, 1, TDC_TPM_ALG_SHA384, 48, 4);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_TPM, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "bad PCR index in event log");
	lb_sha384_header(&b);
	for (unsigned i = 0; i <= TDC_EVLOG_MAX_EVENTS; i++)
		lb_event(&b, 2, TDC_EV_EFI_ACTION, 1, TDC_TPM_ALG_SHA384, 48, 0);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), TDC_E_LIMIT);
	assert_string_equal(e.reason, "too many events in log");
	/* padding: all 0xFF or all zero ends the log; anything else must parse */
	lb_sha384_header(&b);
	lb_event(&b, 2, TDC_EV_EFI_ACTION, 1, TDC_TPM_ALG_SHA384, 48, 4);
	tdc_wr_bytes(&b.w, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), 0);
	lb_sha384_header(&b);
	lb_event(&b, 2, TDC_EV_EFI_ACTION, 1, TDC_TPM_ALG_SHA384, 48, 4);
	tdc_wr_zeros(&b.w, 100);
	assert_int_equal(lb_parse(&b, TDC_EVLOG_CC, &e), 0);
	lb_sha384_header(&b);
	lb_event(&b, 2, TDC_EV_EFI_ACTION, 1, TDC_TPM_ALG_SHA384, 48, 4);
	tdc_wr_bytes(&b.w, "\xff\xff\x00\xff", 4);
	assert_int_not_equal(lb_parse(&b, TDC_EVLOG_CC, &e), 0);

	/* every prefix of the real log: refused or a shorter log, never a crash */
	struct blob real = load("go-tdx-guest/ccel/ccel_data.dat");
	for (size_t n = 0; n < 18101; n += 7) {
		struct tdc_evlog l;
		if (tdc_evlog_parse(real.p, n, TDC_EVLOG_CC, &l, NULL) == 0)
			tdc_evlog_free(&l);
	}
	free(real.p);
}

static void test_replay_needs_cc(void **state)
{
	(void)state;
	struct tdc_evlog l = { .kind = TDC_EVLOG_TPM };
	uint8_t r[4][48];
	assert_int_equal(tdc_evlog_replay(&l, r, NULL), TDC_E_USAGE);
}

/* ---- the CCEL table ---- */

static void test_ccel_table(void **state)
{
	(void)state;
	struct blob t = load("go-tdx-guest/ccel/ccel_table.dat");
	struct tdc_ccel_table c;
	struct tdc_error e;
	tdc_error_clear(&e);
	assert_int_equal(tdc_ccel_table_parse(t.p, t.n, &c, &e), 0);
	assert_int_equal(c.cc_type, TDC_CC_TYPE_TDX);
	assert_int_equal(c.laml, 0x40000);
	assert_int_equal(c.lasa, 0xbedbf000);
	t.p[20] ^= 1; /* checksum */
	assert_int_equal(tdc_ccel_table_parse(t.p, t.n, &c, &e), TDC_E_FORMAT);
	t.p[20] ^= 1;
	assert_int_equal(tdc_ccel_table_parse(t.p, t.n - 1, &c, NULL), TDC_E_FORMAT);
	uint8_t b[TDC_CCEL_TABLE_SIZE];
	tdc_ccel_table_build(1234, 0x5000, b);
	assert_int_equal(tdc_ccel_table_parse(b, sizeof(b), &c, NULL), 0);
	assert_int_equal(c.laml, 1234);
	b[36] = 3; /* CC type 3: not TDX */
	b[9] = (uint8_t)(b[9] - 1);
	tdc_error_clear(&e);
	assert_int_equal(tdc_ccel_table_parse(b, sizeof(b), &c, &e), TDC_E_UNSUPPORTED);
	free(t.p);
}

/* ---- the simulator's mapping, and the data check ---- */

static void add(struct tdc_evlog_writer *w, uint32_t pcr, uint32_t type, const char *data,
		size_t len, const char *hashed)
{
	uint8_t d[48];
	unsigned int n;
	EVP_Digest(hashed ? hashed : data, hashed ? strlen(hashed) : len, d, &n, EVP_sha384(), NULL);
	assert_int_equal(tdc_evlog_writer_add(w, pcr, type, d, data, len, NULL), 0);
}

static void test_tpm_to_cc_and_data(void **state)
{
	(void)state;
	struct tdc_evlog_writer *w;
	uint8_t *tpm, *cc;
	size_t tn, cn;
	struct tdc_evlog t, c;
	struct tdc_error e;
	assert_int_equal(tdc_evlog_writer_new(&w, NULL), 0);
	add(w, 0, 0x8, "v", 1, NULL);                         /* PCR 0: dropped */
	add(w, 7, TDC_EV_SEPARATOR, "\0\0\0\0", 4, NULL);      /* RTMR0 */
	add(w, 1, TDC_EV_SEPARATOR, "\0\0\0\0", 4, NULL);      /* second in RTMR0: dropped */
	add(w, 4, TDC_EV_EFI_ACTION, "go", 2, NULL);           /* RTMR1 */
	add(w, 9, TDC_EV_IPL, "grub_cmd: boot", 15, "boot");   /* RTMR2, GRUB string */
	add(w, 9, TDC_EV_IPL, "/vmlinuz", 9, "kernel bytes");  /* a file: data not checkable */
	add(w, 16, TDC_EV_IPL, "x", 1, NULL);                  /* not mapped: dropped */
	assert_int_equal(tdc_evlog_writer_finish(w, &tpm, &tn, NULL), 0);
	assert_int_equal(tdc_evlog_parse(tpm, tn, TDC_EVLOG_TPM, &t, NULL), 0);
	assert_int_equal(tdc_evlog_tpm_to_cc(&t, &cc, &cn, NULL), 0);
	assert_int_equal(tdc_evlog_parse(cc, cn, TDC_EVLOG_CC, &c, NULL), 0);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.ev[0].index, 1);
	assert_int_equal(c.ev[1].index, 2);
	assert_int_equal(c.ev[2].index, 3);
	assert_int_equal(c.ev[3].index, 3);
	tdc_error_clear(&e);
	assert_int_equal(tdc_evlog_check_data(&c, &e), 0);
	/* a GRUB string whose text differs from its digest is caught */
	struct tdc_rd *d = &c.ev[2].data;
	uint8_t *p = (uint8_t *)tdc_rd_ptr(d);
	p[10] = 'B';
	assert_int_equal(tdc_evlog_check_data(&c, &e), TDC_E_BINDING);
	assert_string_equal(e.reason, "event data does not match its digest");
	assert_non_null(strstr(e.detail, "event 2"));
	tdc_evlog_free(&c);
	tdc_evlog_free(&t);
	free(cc);
	free(tpm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_ccel_replays_to_quote),
		cmocka_unit_test(test_real_ccel_changes_break_it),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_replay_needs_cc),
		cmocka_unit_test(test_ccel_table),
		cmocka_unit_test(test_tpm_to_cc_and_data),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
