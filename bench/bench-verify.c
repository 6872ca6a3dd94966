/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verification throughput on one core: one cold verification of the
 * dcap-qvl vector, then warm (cached collateral and PCK chain) verifications
 * for about 2 s, against the ceiling set by the two ECDSA-P256 verifies every
 * quote needs (quote signature, QE report signature), measured in the same
 * run with OpenSSL directly.
 * Then, in the same run, the broker's per-request cost of a CC event log: a 200-event log
 * (a GRUB boot's shape: 6 firmware events in RTMR1, 194 GRUB commands and files in RTMR2)
 * verified (parse, data check, replay against the quote's RTMRs, tdc_evlog_verify) and a
 * policy ruling on all 200 events evaluated, per call, next to one warm verification.
 * usage: bench-verify [TESTDATA_DIR]   (default: $TDC_TESTDATA)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "tdcrypt/measure.h"
#include "tdcrypt/policy.h"
#include "tdcrypt/verify.h"
#include "util/util.h"
#include "util/wr.h"

#define RUN_SECONDS 2.0
#define ROUNDS 20
#define MSG_LEN 632 /* v4 signed bytes: header + TD report */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const struct tdc_error *e)
{
	char buf[512];
	fprintf(stderr, "bench-verify: %s: %s\n", what,
		e ? tdc_error_format(e, buf, sizeof(buf)) : "");
	exit(1);
}

/* Raw OpenSSL ECDSA-P256-SHA256 verify with a pre-built key, fresh digest context each time
 * (as a verifier must do). */
struct ecdsa_bench {
	EVP_PKEY *key;
	uint8_t msg[MSG_LEN], sig[80];
	size_t sig_len;
};

static void ecdsa_setup(struct ecdsa_bench *b)
{
	b->sig_len = sizeof(b->sig);
	for (size_t i = 0; i < sizeof(b->msg); i++)
		b->msg[i] = (uint8_t)(i * 7 + 1);
	b->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!b->key || !ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, b->key) != 1 ||
	    EVP_DigestSign(ctx, b->sig, &b->sig_len, b->msg, sizeof(b->msg)) != 1)
		die("ECDSA setup", NULL);
	EVP_MD_CTX_free(ctx);
}

static void ecdsa_once(const struct ecdsa_bench *b, const EVP_MD *md)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestVerifyInit(ctx, NULL, md, NULL, b->key) != 1 ||
	    EVP_DigestVerify(ctx, b->sig, b->sig_len, b->msg, sizeof(b->msg)) != 1)
		die("ECDSA verify", NULL);
	EVP_MD_CTX_free(ctx);
}

#define LOG_EVENTS 200

/* A 200-event CC log, its RTMRs, and a policy listing every event of RTMR1 and RTMR2. */
static void make_log(uint8_t **log, size_t *len, uint8_t rtmr[4][48], char **policy)
{
	struct tdc_evlog_writer *w;
	struct tdc_wr pw;
	struct tdc_error e;
	char text[160], hex[97];
	uint8_t d[48];
	unsigned int n;
	tdc_error_clear(&e);
	if (tdc_evlog_writer_new(&w, &e) < 0)
		die("log", &e);
	tdc_wr_init_alloc(&pw, 1u << 20);
	tdc_wr_str(&pw, "{\"events\":{\"rtmr1\":[");
	for (int i = 0; i < LOG_EVENTS; i++) {
		unsigned mr = i < 6 ? 2 : 3;
		int len_text = snprintf(text, sizeof(text),
					"grub_cmd: set variable_%03d=/boot/grub/x86_64-efi/module-%03d.mod "
					"root=UUID=84163f76-96a7-45c5", i, i);
		EVP_Digest(text + 10, (size_t)len_text - 10, d, &n, EVP_sha384(), NULL);
		if (tdc_evlog_writer_add(w, mr, TDC_EV_IPL, d, text, (size_t)len_text + 1, &e) < 0)
			die("log", &e);
		if (i == 6)
			tdc_wr_str(&pw, "],\"rtmr2\":[");
		tdc_wr_fmt(&pw, "%s{\"digest\":[\"%s\"],\"what\":\"event %d\"}", i == 0 || i == 6 ? "" : ",",
			   tdc_hex_encode(d, 48, hex), i);
	}
	tdc_wr_str(&pw, "]}}");
	tdc_wr_u8(&pw, 0);
	size_t plen;
	if (tdc_evlog_writer_finish(w, log, len, &e) < 0 ||
	    tdc_wr_finish(&pw, (uint8_t **)policy, &plen, &e) < 0)
		die("log", &e);
	struct tdc_evlog l;
	if (tdc_evlog_parse(*log, *len, TDC_EVLOG_CC, &l, &e) < 0 || tdc_evlog_replay(&l, rtmr, &e) < 0)
		die("log", &e);
	tdc_evlog_free(&l);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : getenv("TDC_TESTDATA");
	if (!dir) {
		fprintf(stderr, "usage: bench-verify TESTDATA_DIR (or set TDC_TESTDATA)\n");
		return 2;
	}
	char qpath[4096], cpath[4096];
	snprintf(qpath, sizeof(qpath), "%s/dcap-qvl/tdx_quote", dir);
	snprintf(cpath, sizeof(cpath), "%s/dcap-qvl/tdx_quote_collateral.json", dir);

	struct tdc_error e;
	struct tdc_collateral coll;
	struct tdc_verifier *v = NULL;
	struct tdc_verdict d;
	uint8_t *quote;
	size_t len;
	int64_t at;
	tdc_error_clear(&e);
	if (tdc_file_read(qpath, 1u << 20, &quote, &len, &e) < 0)
		die(qpath, &e);
	if (tdc_collateral_load(cpath, &coll, &e) < 0)
		die(cpath, &e);
	if (tdc_time_parse("2025-07-04T10:16:31Z", &at, "time", &e) < 0)
		die("time", &e);
	if (tdc_verifier_new(NULL, &v, &e) < 0)
		die("verifier", &e);

	double t0 = now_s();
	if (tdc_verify_quote(v, quote, len, &coll, at, &d, &e) < 0)
		die("cold verification", &e);
	const double cold_ms = (now_s() - t0) * 1e3;
	if (d.status != TDC_TCB_UP_TO_DATE)
		die("cold verification: not UpToDate", NULL);
	tdc_verdict_free(&d);

	/*
	 * Warm verifications and raw ECDSA verifies alternate in short slices, so that
	 * both see the same machine load; each gets about RUN_SECONDS in total.
	 */
	struct ecdsa_bench eb;
	ecdsa_setup(&eb);
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!md)
		die("SHA-256", NULL);
	unsigned long warm = 0, en = 0;
	double t = 0, et = 0;
	for (int round = 0; round < ROUNDS; round++) {
		double s0 = now_s(), s;
		do {
			for (int i = 0; i < 8; i++) {
				if (tdc_verify_quote(v, quote, len, &coll, at, &d, &e) < 0)
					die("warm verification", &e);
				tdc_verdict_free(&d);
			}
			warm += 8;
		} while ((s = now_s() - s0) < RUN_SECONDS / ROUNDS);
		t += s;
		s0 = now_s();
		do {
			for (int i = 0; i < 16; i++)
				ecdsa_once(&eb, md);
			en += 16;
		} while ((s = now_s() - s0) < RUN_SECONDS / ROUNDS);
		et += s;
	}
	EVP_MD_free(md);
	EVP_PKEY_free(eb.key);
	const double warm_rate = (double)warm / t;

	struct tdc_verifier_stats st;
	tdc_verifier_stats(v, &st);
	if (st.pck_misses != 1)
		die("warm path missed the cache", NULL);

	const double ecdsa = (double)en / et;
	const double ceiling = ecdsa / 2.0;
	const double ratio = warm_rate / ceiling;

	printf("cold verification:        %.2f ms\n", cold_ms);
	printf("warm verifications:       %.0f /s on 1 core (%lu in %.2f s, %.1f us each)\n",
	       warm_rate, warm, t, 1e6 / warm_rate);
	printf("OpenSSL ECDSA-P256 verify: %.0f /s (%lu in %.2f s, %d-byte message)\n", ecdsa, en,
	       et, MSG_LEN);
	printf("ceiling (2 verifies/quote): %.0f /s\n", ceiling);
	printf("warm / ceiling:           %.3f\n", ratio);
	printf("{\"bench\":\"verify\",\"cold_ms\":%.3f,\"warm_per_s\":%.1f,\"ecdsa_p256_verify_per_"
	       "s\":%.1f,"
	       "\"ceiling_per_s\":%.1f,\"warm_over_ceiling\":%.4f,\"seconds\":%.2f}\n",
	       cold_ms, warm_rate, ecdsa, ceiling, ratio, t);

	/* ---- the event log of a request: verify + policy, per call ---- */
	uint8_t *log, rtmr[4][48];
	size_t log_len;
	char *ptext;
	struct tdc_policy *pol;
	make_log(&log, &log_len, rtmr, &ptext);
	if (tdc_policy_parse(ptext, strlen(ptext), &pol, &e) < 0)
		die("policy", &e);
	if (tdc_verify_quote(v, quote, len, &coll, at, &d, &e) < 0)
		die("verification", &e);
	memcpy(d.td.rtmr, rtmr, sizeof(rtmr)); /* the log's TD */
	unsigned long calls = 0;
	double lt = 0, s0 = now_s();
	do {
		for (int i = 0; i < 16; i++) {
			struct tdc_evlog l;
			struct tdc_policy_result res;
			if (tdc_evlog_verify(log, log_len, NULL, (const uint8_t(*)[48])d.td.rtmr, &l,
					     &e) < 0)
				die("event log verify", &e);
			struct tdc_policy_input in = { .verdict = &d, .event_log = &l };
			if (tdc_policy_eval(pol, &in, &res, &e) < 0)
				die("policy on events", &e);
			tdc_policy_result_free(&res);
			tdc_evlog_free(&l);
		}
		calls += 16;
	} while ((lt = now_s() - s0) < RUN_SECONDS / 2);
	const double log_us = 1e6 * lt / (double)calls;
	printf("event log (%d events, %zu bytes) verify + policy on all events: %.1f us per request "
	       "(%.2f x a warm verification)\n",
	       LOG_EVENTS, log_len, log_us, log_us / (1e6 / warm_rate));
	printf("{\"bench\":\"eventlog\",\"events\":%d,\"bytes\":%zu,\"us_per_request\":%.2f,"
	       "\"warm_verify_us\":%.2f}\n",
	       LOG_EVENTS, log_len, log_us, 1e6 / warm_rate);
	tdc_verdict_free(&d);
	tdc_policy_free(pol);
	free(ptext);
	free(log);

	tdc_verifier_free(v);
	tdc_collateral_free(&coll);
	free(quote);
	return 0;
}
