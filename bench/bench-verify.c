/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verification throughput: one cold verification of the dcap-qvl vector, then
 * warm verifications (collateral, PCK chain and QE report cached: only the quote's
 * own signature is verified) against ONE raw ECDSA-P256 verify measured with
 * OpenSSL in the same run, the cost no verifier can avoid for a new quote. Then the
 * same two loops on 2 threads sharing the verifier, for its scaling; the raw ECDSA
 * loop's own scaling in the same slices shows what the (shared) machine allows.
 * Slices of every loop alternate, so that all see the same machine load.
 * Then, in the same run, the broker's per-request cost of a CC event log: a 200-event log
 * (a GRUB boot's shape: 6 firmware events in RTMR1, 194 GRUB commands and files in RTMR2)
 * verified (parse, data check, replay against the quote's RTMRs, tdc_evlog_verify) and a
 * policy ruling on all 200 events evaluated, per call, next to one warm verification.
 * usage: bench-verify [TESTDATA_DIR]   (default: $TDC_TESTDATA)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "tdcrypt/measure.h"
#include "tdcrypt/policy.h"
#include "tdcrypt/verify.h"
#include "util/util.h"
#include "util/wr.h"

#define RUN_SECONDS 2.0 /* per loop and thread count */
#define ROUNDS 20
#define MAX_THREADS 2
#define MSG_LEN 632 /* v4 signed bytes: header + TD report */

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
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

/* ---- loops on 1 or 2 threads ---- */

enum loop_kind { LOOP_WARM, LOOP_ECDSA };

/* What every thread of a loop shares (read-only while it runs). */
struct loop_env {
	struct tdc_verifier *v;
	const uint8_t *quote;
	size_t len;
	const struct tdc_collateral *coll;
	int64_t at;
	const struct ecdsa_bench *eb;
	const EVP_MD *md;
};

struct loop_thread {
	pthread_t t;
	const struct loop_env *env;
	enum loop_kind kind;
	pthread_barrier_t *start;
	double seconds, elapsed, cpu;
	unsigned long n;
};

static void *loop_run(void *arg)
{
	struct loop_thread *lt = arg;
	const struct loop_env *env = lt->env;
	struct tdc_error e;
	struct tdc_verdict d;
	pthread_barrier_wait(lt->start);
	double s0 = now_s(), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), s;
	tdc_error_clear(&e);
	do {
		for (int i = 0; i < 8; i++) {
			if (lt->kind == LOOP_ECDSA) {
				ecdsa_once(env->eb, env->md);
				continue;
			}
			if (tdc_verify_quote(env->v, env->quote, env->len, env->coll, env->at, &d,
					     &e) < 0)
				die("warm verification", &e);
			tdc_verdict_free(&d);
		}
		lt->n += 8;
	} while ((s = now_s() - s0) < lt->seconds);
	lt->elapsed = s;
	lt->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
	return NULL;
}

/* Totals of one loop over its slices: calls, thread-seconds, and the CPU time its
 * threads got (per call, it does not depend on how much of the machine others took). */
struct loop_total {
	unsigned long n;
	double thread_s, cpu_s;
	double rate; /* each slice's rate (all its threads together) x its length, summed */
};

/* One slice of `seconds` on `threads` threads; adds to tot. */
static void loop_slice(const struct loop_env *env, enum loop_kind kind, unsigned threads,
		       double seconds, struct loop_total *tot)
{
	struct loop_thread lt[MAX_THREADS];
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, threads);
	for (unsigned i = 0; i < threads; i++) {
		lt[i] = (struct loop_thread){ .env = env, .kind = kind, .start = &start,
					      .seconds = seconds };
		if (pthread_create(&lt[i].t, NULL, loop_run, &lt[i]) != 0)
			die("thread", NULL);
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(lt[i].t, NULL);
		tot->n += lt[i].n;
		tot->thread_s += lt[i].elapsed;
		tot->cpu_s += lt[i].cpu;
		/* each thread ran for its own elapsed time: its rate adds to the slice's */
		tot->rate += (double)lt[i].n / lt[i].elapsed * seconds;
	}
	pthread_barrier_destroy(&start);
}

static void load_avg(double out[3])
{
	if (getloadavg(out, 3) != 3)
		out[0] = out[1] = out[2] = -1;
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
	 * Warm verifications and raw ECDSA verifies, on 1 and on 2 threads, alternate in
	 * short slices, so that all four loops see the same machine load; each gets about
	 * RUN_SECONDS in total.
	 */
	struct ecdsa_bench eb;
	ecdsa_setup(&eb);
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!md)
		die("SHA-256", NULL);
	struct loop_env env = { .v = v, .quote = quote, .len = len, .coll = &coll, .at = at,
				.eb = &eb, .md = md };
	struct tdc_verifier_stats st0, st;
	tdc_verifier_stats(v, &st0);
	struct loop_total warm[MAX_THREADS + 1] = { 0 }, ecdsa[MAX_THREADS + 1] = { 0 };
	double load0[3], load1[3];
	load_avg(load0);
	const double slice = RUN_SECONDS / ROUNDS;
	for (int round = 0; round < ROUNDS; round++)
		for (unsigned th = 1; th <= MAX_THREADS; th++) {
			loop_slice(&env, LOOP_WARM, th, slice, &warm[th]);
			loop_slice(&env, LOOP_ECDSA, th, slice, &ecdsa[th]);
		}
	load_avg(load1);
	EVP_MD_free(md);
	EVP_PKEY_free(eb.key);
	tdc_verifier_stats(v, &st);
	if (st.pck_misses != 1 || st.qe_report_misses != 1)
		die("warm path missed the cache", NULL);

	const double total_s = slice * ROUNDS;
	double warm_rate[MAX_THREADS + 1], ecdsa_rate[MAX_THREADS + 1];
	for (unsigned th = 1; th <= MAX_THREADS; th++) {
		warm_rate[th] = warm[th].rate / total_s;
		ecdsa_rate[th] = ecdsa[th].rate / total_s;
	}
	const double ratio = warm_rate[1] / ecdsa_rate[1];
	const double scaling = warm_rate[2] / warm_rate[1];
	const double machine = ecdsa_rate[2] / ecdsa_rate[1];
	/* CPU microseconds per call: the same ratio, free of the machine's load; and on 2
	 * threads, what sharing the verifier costs each call (cache lines, the lock) */
	double warm_cpu[MAX_THREADS + 1], ecdsa_cpu[MAX_THREADS + 1];
	for (unsigned th = 1; th <= MAX_THREADS; th++) {
		warm_cpu[th] = 1e6 * warm[th].cpu_s / (double)warm[th].n;
		ecdsa_cpu[th] = 1e6 * ecdsa[th].cpu_s / (double)ecdsa[th].n;
	}
	const double ratio_cpu = ecdsa_cpu[1] / warm_cpu[1];

	printf("cold verification:          %.2f ms\n", cold_ms);
	printf("warm verifications, 1 thread: %.0f /s (%lu in %.2f s, %.1f us each; cache hits: "
	       "collateral %lu, PCK %lu, QE report %lu)\n",
	       warm_rate[1], warm[1].n, warm[1].thread_s, 1e6 / warm_rate[1],
	       (unsigned long)(st.collateral_hits - st0.collateral_hits),
	       (unsigned long)(st.pck_hits - st0.pck_hits),
	       (unsigned long)(st.qe_report_hits - st0.qe_report_hits));
	printf("OpenSSL ECDSA-P256 verify, 1 thread: %.0f /s (%lu in %.2f s, %d-byte message)\n",
	       ecdsa_rate[1], ecdsa[1].n, ecdsa[1].thread_s, MSG_LEN);
	printf("warm / one ECDSA verify:    %.3f (goal >= 0.85); by CPU time per call: %.3f "
	       "(%.1f us against %.1f us)\n",
	       ratio, ratio_cpu, warm_cpu[1], ecdsa_cpu[1]);
	printf("2 threads: warm %.0f /s (%.2fx 1 thread, goal >= 1.8), ECDSA %.0f /s (%.2fx: "
	       "what the machine gave)\n",
	       warm_rate[2], scaling, ecdsa_rate[2], machine);
	printf("CPU per call on 2 threads / on 1: warm %.3f, ECDSA %.3f\n", warm_cpu[2] / warm_cpu[1],
	       ecdsa_cpu[2] / ecdsa_cpu[1]);
	printf("load average before %.2f %.2f %.2f, after %.2f %.2f %.2f (%ld cores)\n", load0[0],
	       load0[1], load0[2], load1[0], load1[1], load1[2], sysconf(_SC_NPROCESSORS_ONLN));
	printf("{\"bench\":\"verify\",\"cold_ms\":%.3f,\"warm_per_s\":%.1f,"
	       "\"ecdsa_p256_verify_per_s\":%.1f,\"warm_over_ecdsa\":%.4f,"
	       "\"warm_over_ecdsa_cpu\":%.4f,\"warm_cpu_us\":%.2f,\"ecdsa_cpu_us\":%.2f,"
	       "\"warm_cpu_2threads_over_1\":%.3f,\"ecdsa_cpu_2threads_over_1\":%.3f,"
	       "\"warm_2threads_per_s\":%.1f,\"scaling_2threads\":%.3f,"
	       "\"ecdsa_scaling_2threads\":%.3f,\"load1_before\":%.2f,\"load1_after\":%.2f,"
	       "\"seconds\":%.2f}\n",
	       cold_ms, warm_rate[1], ecdsa_rate[1], ratio, ratio_cpu, warm_cpu[1], ecdsa_cpu[1],
	       warm_cpu[2] / warm_cpu[1], ecdsa_cpu[2] / ecdsa_cpu[1], warm_rate[2], scaling, machine,
	       load0[0], load1[0], total_s);
	const double warm_us = 1e6 / warm_rate[1];

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
	       LOG_EVENTS, log_len, log_us, log_us / warm_us);
	printf("{\"bench\":\"eventlog\",\"events\":%d,\"bytes\":%zu,\"us_per_request\":%.2f,"
	       "\"warm_verify_us\":%.2f}\n",
	       LOG_EVENTS, log_len, log_us, warm_us);
	tdc_verdict_free(&d);
	tdc_policy_free(pol);
	free(ptext);
	free(log);

	tdc_verifier_free(v);
	tdc_collateral_free(&coll);
	free(quote);
	return 0;
}
