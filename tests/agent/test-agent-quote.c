/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quote providers: configfs-tsm against a fake configfs tree (the hook plays the
 * kernel), the QGS message codec (each malformed response check alone), the
 * /dev/tdx_guest path failing cleanly here, and the simulator (RTMR2 follows
 * the command line; the quote verifies against the directory's own collateral).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "tdcrypt/agent.h"
#include "tdcrypt/sim.h"
#include "tdcrypt/verify.h"
#include "util/limits.h"
#include "util/util.h"
#include "util/wr.h"

#define NOW 1750000000

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tdc-agent-quote-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[512];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void put(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void puts_(const char *dir, const char *name, const char *s)
{
	put(dir, name, s, strlen(s));
}

static size_t get(const char *dir, const char *name, uint8_t *buf, size_t cap)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static unsigned long long generation(const char *dir)
{
	uint8_t b[32] = {0};
	get(dir, "generation", b, sizeof(b) - 1);
	return strtoull((char *)b, NULL, 10);
}

static void set_generation(const char *dir, unsigned long long g)
{
	char s[32];
	snprintf(s, sizeof(s), "%llu\n", g);
	puts_(dir, "generation", s);
}

/* ---- fake configfs-tsm ---- */

struct fake {
	const char *provider;
	unsigned races; /* attempts whose outblob read is raced */
	bool empty_outblob;
	bool bad_generation;
	bool real_quote; /* outblob = a sim quote for the inblob, zero-padded */
	bool wrong_report_data;
	struct tdc_sim_pki *pki;
	unsigned inblob_writes;
};

static void fake_hook(void *arg, enum tdc_tsm_step step, const char *entry, unsigned attempt)
{
	struct fake *f = arg;
	uint8_t in[128];
	switch (step) {
	case TDC_TSM_MKDIR:
		puts_(entry, "provider", f->provider);
		puts_(entry, "generation", f->bad_generation ? "x1\n" : "7\n");
		put(entry, "inblob", "", 0);
		put(entry, "outblob", "", 0);
		break;
	case TDC_TSM_INBLOB:
		f->inblob_writes++;
		assert_int_equal(get(entry, "inblob", in, sizeof(in)), 64);
		set_generation(entry, generation(entry) + 1);
		if (f->empty_outblob) {
			put(entry, "outblob", "", 0);
		} else if (f->real_quote) {
			struct tdc_sim_opts o;
			uint8_t *q, *padded;
			size_t len;
			tdc_sim_opts_default(&o, NOW);
			memcpy(o.td.report_data, in, 64);
			if (f->wrong_report_data)
				o.td.report_data[5] ^= 1;
			assert_int_equal(tdc_sim_quote(f->pki, &o, &q, &len, NULL), 0);
			padded = calloc(1, 8000);
			assert_non_null(padded);
			memcpy(padded, q, len);
			put(entry, "outblob", padded, 8000);
			free(padded);
			free(q);
		} else {
			uint8_t blob[100];
			memcpy(blob, in, 64);
			memset(blob + 64, 0xee, 36);
			put(entry, "outblob", blob, sizeof(blob));
		}
		break;
	case TDC_TSM_OUTBLOB:
		if (attempt < f->races) /* another writer came in between */
			set_generation(entry, generation(entry) + 1);
		break;
	}
}

static int tsm(struct fake *f, const char *name, uint8_t **q, size_t *len, struct tdc_error *e)
{
	uint8_t rd[64];
	for (int i = 0; i < 64; i++)
		rd[i] = (uint8_t)(0x40 + i);
	struct tdc_tsm_opts o = {.root = tmpdir, .name = name, .hook = fake_hook, .hook_arg = f};
	return tdc_tsm_get_quote(&o, rd, q, len, e);
}

static void test_tsm_ok(void **state)
{
	struct fake f = {.provider = "tdx_guest\n"};
	struct tdc_error e = {0};
	uint8_t *q;
	size_t len;
	(void)state;
	assert_true(tdc_tsm_available(tmpdir));
	assert_int_equal(tsm(&f, "ok", &q, &len, &e), 0);
	assert_int_equal(len, 100);
	assert_int_equal(q[0], 0x40);
	assert_int_equal(q[99], 0xee);
	assert_int_equal(f.inblob_writes, 1);
	free(q);
}

static void test_tsm_race_retried(void **state)
{
	struct fake f = {.provider = "tdx_guest", .races = 2};
	struct tdc_error e = {0};
	uint8_t *q;
	size_t len;
	(void)state;
	assert_int_equal(tsm(&f, "race", &q, &len, &e), 0);
	assert_int_equal(f.inblob_writes, 3); /* two raced attempts, then a clean one */
	assert_int_equal(len, 100);
	free(q);
}

static void test_tsm_race_forever(void **state)
{
	struct fake f = {.provider = "tdx_guest", .races = 100};
	struct tdc_error e = {0};
	uint8_t *q = (uint8_t *)1;
	size_t len = 1;
	(void)state;
	assert_int_equal(tsm(&f, "race-forever", &q, &len, &e), TDC_E_IO);
	assert_string_equal(e.reason, "configfs-tsm generation race");
	assert_int_equal(f.inblob_writes, 4);
	assert_null(q);
	assert_int_equal(len, 0);
}

static void test_tsm_wrong_provider(void **state)
{
	struct fake f = {.provider = "sev_guest\n"};
	struct tdc_error e = {0};
	uint8_t *q;
	size_t len;
	(void)state;
	assert_int_equal(tsm(&f, "sev", &q, &len, &e), TDC_E_UNSUPPORTED);
	assert_string_equal(e.reason, "configfs-tsm provider is not tdx_guest");
	assert_int_equal(f.inblob_writes, 0);
}

static void test_tsm_empty_outblob(void **state)
{
	struct fake f = {.provider = "tdx_guest", .empty_outblob = true};
	struct tdc_error e = {0};
	uint8_t *q;
	size_t len;
	(void)state;
	assert_int_equal(tsm(&f, "empty", &q, &len, &e), TDC_E_IO);
	assert_string_equal(e.reason, "configfs-tsm returned an empty quote");
}

static void test_tsm_bad_generation(void **state)
{
	struct fake f = {.provider = "tdx_guest", .bad_generation = true};
	struct tdc_error e = {0};
	uint8_t *q;
	size_t len;
	(void)state;
	assert_int_equal(tsm(&f, "badgen", &q, &len, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "bad configfs-tsm generation");
}

static void test_tsm_no_root(void **state)
{
	struct tdc_error e = {0};
	uint8_t rd[64] = {0}, *q;
	size_t len;
	(void)state;
	struct tdc_tsm_opts o = {.root = "/nonexistent/tsm/report"};
	assert_false(tdc_tsm_available(o.root));
	assert_int_equal(tdc_tsm_get_quote(&o, rd, &q, &len, &e), TDC_E_IO);
	assert_string_equal(e.reason, "cannot create configfs-tsm report entry");
}

/* What the chain does with configfs output: parse, REPORTDATA check, padding trimmed. */
static void test_chain_check(void **state)
{
	struct fake f = {.provider = "tdx_guest", .real_quote = true};
	struct tdc_sim_opts o;
	struct tdc_error e = {0};
	struct tdc_quote pq;
	uint8_t rd[64], *q;
	size_t len;
	(void)state;

	tdc_sim_opts_default(&o, NOW);
	assert_int_equal(tdc_sim_pki_new(&o, &f.pki, NULL), 0);
	for (int i = 0; i < 64; i++)
		rd[i] = (uint8_t)(0x40 + i);
	assert_int_equal(tsm(&f, "chain", &q, &len, &e), 0);
	assert_int_equal(len, 8000);
	assert_int_equal(tdc_agent_quote_check(q, &len, rd, &e), 0);
	assert_int_equal(tdc_quote_parse(q, len, &pq, &e), 0);
	assert_int_equal(pq.trailing_len, 0);
	assert_true(len < 8000);
	free(q);

	f.wrong_report_data = true;
	assert_int_equal(tsm(&f, "chain2", &q, &len, &e), 0);
	assert_int_equal(tdc_agent_quote_check(q, &len, rd, &e), TDC_E_BINDING);
	assert_string_equal(e.reason, "the quote does not carry the requested REPORTDATA");
	free(q);
	tdc_error_clear(&e);
	uint8_t junk[100] = {0};
	len = sizeof(junk);
	assert_int_equal(tdc_agent_quote_check(junk, &len, rd, &e), TDC_E_UNSUPPORTED);
	tdc_sim_pki_free(f.pki);
}

/* ---- QGS ---- */

static void test_qgs_request(void **state)
{
	uint8_t report[TDC_TDREPORT_SIZE], *m;
	size_t len;
	uint32_t n;
	(void)state;
	for (size_t i = 0; i < sizeof(report); i++)
		report[i] = (uint8_t)i;
	assert_int_equal(tdc_qgs_encode_get_quote_req(report, sizeof(report), &m, &len, NULL), 0);
	assert_int_equal(len, 4 + 16 + 8 + 1024);
	assert_int_equal(tdc_qgs_frame_len(m, &n, NULL), 0);
	assert_int_equal(n, 16 + 8 + 1024);
	static const uint8_t head[] = {1, 0, 1, 0, 0, 0, 0, 0, 0x18, 4, 0, 0,
				       0, 0, 0, 0, 0, 4, 0, 0, 0,    0, 0, 0};
	assert_memory_equal(m + 4, head, sizeof(head));
	assert_memory_equal(m + 4 + 24, report, sizeof(report));
	free(m);
	assert_int_equal(tdc_qgs_encode_get_quote_req(report, 0, &m, &len, NULL), TDC_E_USAGE);
}

struct resp {
	uint16_t major;
	uint32_t type;
	int32_t size_delta;
	uint32_t error;
	uint32_t id_size;
	uint32_t quote_size;
	size_t quote_bytes; /* actually present */
	size_t trailing;
};

static uint8_t *make_resp(const struct resp *r, size_t *len)
{
	struct tdc_wr w;
	uint8_t *out;
	size_t total = 16 + 8 + r->id_size + r->quote_bytes + r->trailing;
	tdc_wr_init_alloc(&w, 1 << 20);
	tdc_wr_u16le(&w, r->major);
	tdc_wr_u16le(&w, 1);
	tdc_wr_u32le(&w, r->type);
	tdc_wr_u32le(&w, (uint32_t)((int64_t)total + r->size_delta));
	tdc_wr_u32le(&w, r->error);
	tdc_wr_u32le(&w, r->id_size);
	tdc_wr_u32le(&w, r->quote_size);
	for (uint32_t i = 0; i < r->id_size; i++)
		tdc_wr_u8(&w, 0x1d);
	for (size_t i = 0; i < r->quote_bytes; i++)
		tdc_wr_u8(&w, (uint8_t)(0xa0 + i % 16));
	tdc_wr_zeros(&w, r->trailing);
	assert_int_equal(tdc_wr_finish(&w, &out, len, NULL), 0);
	return out;
}

static void test_qgs_response(void **state)
{
	const struct resp good = {
	    .major = 1, .type = 1, .id_size = 16, .quote_size = 600, .quote_bytes = 600};
	struct tdc_rd q;
	struct tdc_error e = {0};
	size_t len;
	(void)state;

	uint8_t *m = make_resp(&good, &len);
	assert_int_equal(tdc_qgs_decode_get_quote_resp(m, len, &q, &e), 0);
	assert_int_equal(tdc_rd_len(&q), 600);
	assert_int_equal(tdc_rd_ptr(&q)[0], 0xa0);
	free(m);

	static const struct {
		struct resp r;
		int code;
		size_t offset;
		const char *reason;
	} bad[] = {
	    {{2, 1, 0, 0, 16, 600, 600, 0},
	     TDC_E_UNSUPPORTED,
	     0,
	     "unsupported QGS message version"},
	    {{1, 0, 0, 0, 16, 600, 600, 0}, TDC_E_FORMAT, 4, "QGS message is not GET_QUOTE_RESP"},
	    {{1, 1, 1, 0, 16, 600, 600, 0}, TDC_E_FORMAT, 8, "QGS message size mismatch"},
	    {{1, 1, 0, 0x12001, 16, 600, 600, 0}, TDC_E_IO, 12, "QGS returned an error"},
	    {{1, 1, 0, 0, 16, 0, 0, 0}, TDC_E_FORMAT, 20, "QGS returned an empty quote"},
	    {{1, 1, 0, 0, 16, TDC_MAX_QUOTE_SIZE + 1, 10, 0},
	     TDC_E_LIMIT,
	     20,
	     "QGS quote too large"},
	    {{1, 1, 0, 0, 16, 600, 599, 0}, TDC_E_FORMAT, 40, NULL}, /* quote cut short */
	    {{1, 1, 0, 0, 16, 600, 600, 3}, TDC_E_FORMAT, 640, "unexpected trailing bytes"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tdc_error e2 = {0};
		m = make_resp(&bad[i].r, &len);
		int rc = tdc_qgs_decode_get_quote_resp(m, len, &q, &e2);
		free(m);
		if (rc != bad[i].code || e2.offset != bad[i].offset ||
		    (bad[i].reason && strcmp(e2.reason, bad[i].reason)))
			fail_msg("case %zu: rc %d offset %zu reason '%s'", i, rc, e2.offset,
				 e2.reason ? e2.reason : "");
	}
	/* a header cut short */
	m = make_resp(&good, &len);
	assert_int_equal(tdc_qgs_decode_get_quote_resp(m, 10, &q, &e), TDC_E_FORMAT);
	free(m);

	uint8_t p[4] = {0, 0, 0, 15};
	uint32_t n;
	assert_int_equal(tdc_qgs_frame_len(p, &n, NULL), TDC_E_FORMAT);
	uint32_t big = TDC_MAX_QUOTE_SIZE + 1024u + 1u;
	uint8_t p2[4] = {(uint8_t)(big >> 24), (uint8_t)(big >> 16), (uint8_t)(big >> 8),
			 (uint8_t)big};
	assert_int_equal(tdc_qgs_frame_len(p2, &n, NULL), TDC_E_LIMIT);
	p2[3]--;
	assert_int_equal(tdc_qgs_frame_len(p2, &n, NULL), 0);
}

static void test_tdx_guest_absent(void **state)
{
	struct tdc_tdx_guest_opts o = {.device = "/nonexistent/tdx_guest"};
	struct tdc_error e = {0};
	uint8_t rd[64] = {0}, *q;
	size_t len;
	(void)state;
	assert_false(tdc_tdx_guest_available(o.device));
	assert_int_equal(tdc_tdx_guest_get_quote(&o, rd, &q, &len, &e), TDC_E_IO);
	assert_string_equal(e.reason, "cannot open TDX guest device");
}

static void test_auto_never_sim(void **state)
{
	struct tdc_agent_config c = {.provider = TDC_PROVIDER_AUTO,
				     .sim_dir = tmpdir,
				     .tsm_root = (char *)"/nonexistent/tsm"};
	struct tdc_error e = {0};
	uint8_t rd[64] = {0};
	struct tdc_agent_evidence ev;
	(void)state;
	if (tdc_tdx_guest_available(NULL))
		skip();
	assert_int_equal(tdc_agent_get_quote(&c, rd, NOW, &ev, NULL, &e), TDC_E_UNSUPPORTED);
	assert_string_equal(e.reason, "no quote provider: neither configfs-tsm nor /dev/tdx_guest");
}

/* ---- simulator ---- */

/* A vTPM event log: (PCR, type, text) events, SHA-384 of the text as digest. */
struct tpm_ev {
	uint32_t pcr, type;
	const char *text;
};

static void write_tpm_log(const char *path, const struct tpm_ev *evs, size_t n)
{
	struct tdc_evlog_writer *w;
	uint8_t *buf, d[48];
	size_t len;
	unsigned int dl;
	assert_int_equal(tdc_evlog_writer_new(&w, NULL), 0);
	for (size_t i = 0; i < n; i++) {
		EVP_Digest(evs[i].text, strlen(evs[i].text), d, &dl, EVP_sha384(), NULL);
		assert_int_equal(tdc_evlog_writer_add(w, evs[i].pcr, evs[i].type, d, evs[i].text,
						      strlen(evs[i].text), NULL), 0);
	}
	assert_int_equal(tdc_evlog_writer_finish(w, &buf, &len, NULL), 0);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
	free(buf);
}

/* A boot as OVMF + GRUB record it in a vTPM (tests/e2e checks the real thing). */
static const struct tpm_ev boot_a[] = {
	{ 0, 0x8, "firmware version" },            /* PCR 0: MRTD on TDX, dropped */
	{ 7, 0x80000001, "SecureBoot" },
	{ 7, TDC_EV_SEPARATOR, "sep" },
	{ 4, TDC_EV_EFI_ACTION, TDC_ACTION_CALLING_EFI_APP },
	{ 0, TDC_EV_SEPARATOR, "sep" },
	{ 1, TDC_EV_SEPARATOR, "sep" },       /* a second one in RTMR0: dropped */
	{ 2, TDC_EV_SEPARATOR, "sep" },
	{ 4, TDC_EV_SEPARATOR, "sep" },       /* a second one in RTMR1: dropped */
	{ 8, TDC_EV_IPL, "linuxefi /vmlinuz ro" },
	{ 5, TDC_EV_EFI_ACTION, TDC_ACTION_EBS_INVOCATION },
	{ 17, TDC_EV_IPL, "not mapped" },
};

static void replay_expect(const struct tpm_ev *evs, size_t n, uint8_t rtmr[4][48])
{
	static const int map[24] = { -1, 0, 1, 1, 1, 1, 1, 0, 2, 2, 2, 2, 2, 2, 2, 2,
				     -1, -1, -1, -1, -1, -1, -1, -1 };
	bool sep[4] = { false };
	uint8_t buf[96];
	unsigned int dl;
	memset(rtmr, 0, 4 * 48);
	for (size_t i = 0; i < n; i++) {
		int r = map[evs[i].pcr];
		if (r < 0 || (evs[i].type == TDC_EV_SEPARATOR && sep[r]))
			continue;
		sep[r] |= evs[i].type == TDC_EV_SEPARATOR;
		memcpy(buf, rtmr[r], 48);
		EVP_Digest(evs[i].text, strlen(evs[i].text), buf + 48, &dl, EVP_sha384(), NULL);
		EVP_Digest(buf, 96, rtmr[r], &dl, EVP_sha384(), NULL);
	}
}

static void load_root(const char *dir, uint8_t **der, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/sim-root.pem", dir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	int n = i2d_X509(x, NULL);
	assert_true(n > 0);
	*der = malloc((size_t)n);
	uint8_t *p = *der;
	assert_int_equal(i2d_X509(x, &p), n);
	*len = (size_t)n;
	X509_free(x);
}

static void test_sim_dir(void **state)
{
	char dir[512], la[600], lb[600], sub[600];
	struct tdc_error e = {0};
	uint8_t rd[64], mrtd[48], *root, expect[4][48];
	size_t root_len;
	struct tdc_agent_evidence a, b;
	struct tdc_quote p1, p2;
	(void)state;

	snprintf(dir, sizeof(dir), "%s/sim", tmpdir);
	memset(mrtd, 0x5a, sizeof(mrtd));
	assert_int_equal(tdc_sim_dir_init(dir, NOW, 30, mrtd, &e), 0);
	snprintf(la, sizeof(la), "%s/tpm-a", tmpdir);
	snprintf(lb, sizeof(lb), "%s/tpm-b", tmpdir);
	struct tpm_ev boot_b[sizeof(boot_a) / sizeof(boot_a[0])];
	memcpy(boot_b, boot_a, sizeof(boot_a));
	boot_b[8].text = "linuxefi /vmlinuz ro init=/bin/sh"; /* one GRUB event differs */
	write_tpm_log(la, boot_a, sizeof(boot_a) / sizeof(boot_a[0]));
	write_tpm_log(lb, boot_b, sizeof(boot_b) / sizeof(boot_b[0]));
	for (int i = 0; i < 64; i++)
		rd[i] = (uint8_t)(255 - i);
	assert_int_equal(tdc_sim_dir_quote(dir, la, rd, NOW, &a, &e), 0);
	assert_int_equal(tdc_sim_dir_quote(dir, lb, rd, NOW, &b, &e), 0);
	assert_int_equal(tdc_quote_parse(a.quote, a.quote_len, &p1, &e), 0);
	assert_int_equal(tdc_quote_parse(b.quote, b.quote_len, &p2, &e), 0);
	assert_memory_equal(p1.td.report_data, rd, 64);
	assert_memory_equal(p1.td.mrtd, mrtd, 48);
	/* the RTMRs are the replay of the mapped log: PCR 0 and 16+ dropped, one separator per
	 * RTMR */
	replay_expect(boot_a, sizeof(boot_a) / sizeof(boot_a[0]), expect);
	for (int i = 0; i < 4; i++)
		assert_memory_equal(p1.td.rtmr[i], expect[i], 48);
	assert_memory_equal(p1.td.rtmr[1], p2.td.rtmr[1], 48);
	assert_memory_not_equal(p1.td.rtmr[2], p2.td.rtmr[2], 48);
	/* ... and the CC event log that goes with the quote replays to them */
	struct tdc_evlog cc;
	uint8_t rt[4][48];
	assert_true(a.has_table && a.event_log);
	assert_int_equal(tdc_evlog_parse(a.event_log, a.event_log_len, TDC_EVLOG_CC, &cc, &e), 0);
	assert_int_equal(cc.n, 6);
	assert_int_equal(tdc_evlog_replay(&cc, rt, &e), 0);
	assert_memory_equal(rt, p1.td.rtmr, sizeof(rt));
	tdc_evlog_free(&cc);
	struct tdc_ccel_table t;
	assert_int_equal(tdc_ccel_table_parse(a.ccel_table, sizeof(a.ccel_table), &t, &e), 0);
	assert_int_equal(t.laml, a.event_log_len);

	/* It verifies UpToDate against the directory's collateral under the sim root. */
	struct tdc_collateral coll;
	struct tdc_verifier *v;
	struct tdc_verdict verdict;
	load_root(dir, &root, &root_len);
	struct tdc_verifier_opts vo = {.test_root_der = root, .test_root_der_len = root_len};
	assert_int_equal(tdc_verifier_new(&vo, &v, &e), 0);
	snprintf(sub, sizeof(sub), "%s/collateral", dir);
	assert_int_equal(tdc_collateral_from_dir(sub, &coll, &e), 0);
	memset(&verdict, 0, sizeof(verdict));
	int rc = tdc_verify_quote(v, a.quote, a.quote_len, &coll, NOW + 3600, &verdict, &e);
	if (rc) {
		char buf[400];
		fail_msg("verify: %s", tdc_error_format(&e, buf, sizeof(buf)));
	}
	assert_int_equal(verdict.status, TDC_TCB_UP_TO_DATE);
	tdc_verdict_free(&verdict);
	/* the collateral was made for 30 days */
	memset(&verdict, 0, sizeof(verdict));
	assert_int_equal(tdc_verify_quote(v, a.quote, a.quote_len, &coll, NOW + 31 * 86400,
					  &verdict, &e), TDC_E_EXPIRED);
	tdc_verdict_free(&verdict);
	tdc_collateral_free(&coll);
	tdc_verifier_free(v);
	free(root);

	/* The chain with provider sim gives the same measurements. */
	struct tdc_agent_config c = {.provider = TDC_PROVIDER_SIM, .sim_dir = dir, .tpm_log = la};
	enum tdc_agent_provider used;
	struct tdc_agent_evidence c3;
	assert_int_equal(tdc_agent_get_quote(&c, rd, NOW, &c3, &used, &e), 0);
	assert_int_equal(used, TDC_PROVIDER_SIM);
	assert_int_equal(c3.quote_len, a.quote_len);
	assert_int_equal(c3.event_log_len, a.event_log_len);
	tdc_agent_evidence_free(&c3);
	tdc_agent_evidence_free(&a);
	tdc_agent_evidence_free(&b);
}

static void test_sim_td_json(void **state)
{
	struct tdc_sim_td td;
	struct tdc_error e = {0};
	char json[2048];
	const char *h48 = "000000000000000000000000000000000000000000000000000000000000000000000000"
			  "000000000000000000000000";
	(void)state;
#define TD(extra, attrs)                                                                \
	snprintf(json, sizeof(json),                                                    \
		 "{\"mrtd\":\"%s\","                                                  \
		 "\"mrconfigid\":\"%s\",\"mrowner\":\"%s\",\"mrownerconfig\":\"%s\","   \
		 "\"td_attributes\":\"%s\",\"xfam\":\"e702060000000000\"%s}",           \
		 h48, h48, h48, h48, attrs, extra)
	TD("", "0100000000000000");
	assert_int_equal(tdc_sim_td_parse((uint8_t *)json, strlen(json), &td, &e), 0);
	assert_int_equal(td.td_attributes[0], 1); /* a DEBUG TD for broker tests */
	TD(",\"rtmr1\":\"00\"", "0000000000000000");
	assert_int_equal(tdc_sim_td_parse((uint8_t *)json, strlen(json), &td, &e), TDC_E_FORMAT);
	assert_string_equal(e.reason, "unknown member in sim td.json");
	assert_non_null(strstr(e.detail, "event log"));
	tdc_error_clear(&e);
	TD("", "00");
	assert_int_equal(tdc_sim_td_parse((uint8_t *)json, strlen(json), &td, &e), TDC_E_FORMAT);
	tdc_error_clear(&e);
	assert_int_equal(tdc_sim_td_parse((const uint8_t *)"{}", 2, &td, &e), TDC_E_FORMAT);
#undef TD
}

static void test_sim_missing_dir(void **state)
{
	struct tdc_error e = {0};
	uint8_t rd[64] = {0};
	struct tdc_agent_evidence ev;
	char dir[512], log[600];
	(void)state;
	assert_int_equal(tdc_sim_dir_quote("/nonexistent/sim", NULL, rd, NOW, &ev, &e), TDC_E_IO);
	tdc_error_clear(&e);
	assert_int_equal(tdc_sim_dir_init(tmpdir, NOW, 0, NULL, &e), TDC_E_USAGE);
	/* no vTPM log: refused, never invented */
	snprintf(dir, sizeof(dir), "%s/sim2", tmpdir);
	snprintf(log, sizeof(log), "%s/no-such-log", tmpdir);
	assert_int_equal(tdc_sim_dir_init(dir, NOW, 30, NULL, &e), 0);
	tdc_error_clear(&e);
	assert_int_equal(tdc_sim_dir_quote(dir, log, rd, NOW, &ev, &e), TDC_E_UNSUPPORTED);
	assert_non_null(strstr(e.reason, "no TPM event log"));
	/* a log without SHA-384 digests is refused too (checked by the parser tests) */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tsm_ok),
	    cmocka_unit_test(test_tsm_race_retried),
	    cmocka_unit_test(test_tsm_race_forever),
	    cmocka_unit_test(test_tsm_wrong_provider),
	    cmocka_unit_test(test_tsm_empty_outblob),
	    cmocka_unit_test(test_tsm_bad_generation),
	    cmocka_unit_test(test_tsm_no_root),
	    cmocka_unit_test(test_chain_check),
	    cmocka_unit_test(test_qgs_request),
	    cmocka_unit_test(test_qgs_response),
	    cmocka_unit_test(test_tdx_guest_absent),
	    cmocka_unit_test(test_auto_never_sim),
	    cmocka_unit_test(test_sim_dir),
	    cmocka_unit_test(test_sim_td_json),
	    cmocka_unit_test(test_sim_missing_dir),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
