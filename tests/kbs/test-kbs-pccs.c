/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PCCS v4 client and the collateral sources against a tiny loopback HTTP
 * server that serves the real Intel collateral of $TDC_TESTDATA the way a
 * PCCS does (PCS bodies, URL-encoded issuer chain headers, DER PCK CRL, hex
 * root CA CRL). The real quote then verifies with what was fetched; a
 * restarted broker works from the store's cache while the PCCS is down;
 * expired collateral is handed on as expired (the broker then fails closed).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kbs-test.h"
#include "../pg/test-db.h"
#include "kbs/kbs-int.h"
#include "tdcrypt/quote.h"
#include "tdcrypt/sim.h"
#include "util/limits.h"
#include "util/util.h"

#define AT "2025-07-04T10:16:31Z"

enum mode { SERVE, FAIL_500, HANG, NO_CHAIN };

struct pccs {
	int fd, port;
	pthread_t t;
	volatile enum mode mode;
	volatile int requests;
	volatile bool stop;
	struct tdc_buf tcb, qe, tcb_chain_enc, qe_chain_enc, crl_chain_enc, pck_crl, root_hex;
};

static struct tdc_collateral coll;
static uint8_t *quote;
static size_t quote_len;
static int64_t at;
static char dir[256];

static void url_encode(const struct tdc_buf *in, struct tdc_buf *out)
{
	out->data = malloc(in->len * 3 + 1);
	assert_non_null(out->data);
	size_t n = 0;
	for (size_t i = 0; i < in->len; i++) {
		uint8_t c = in->data[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.')
			out->data[n++] = c;
		else
			n += (size_t)sprintf((char *)out->data + n, "%%%02X", c);
	}
	out->data[n] = 0;
	out->len = n;
}

static void reply(int fd, int status, const char *hdr, const char *hval, const struct tdc_buf *b)
{
	char head[256];
	int n = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n", status,
			 b ? b->len : 0);
	if (write(fd, head, (size_t)n) < 0)
		return;
	if (hdr && hval) {
		if (write(fd, hdr, strlen(hdr)) < 0 || write(fd, ": ", 2) < 0 ||
		    write(fd, hval, strlen(hval)) < 0 || write(fd, "\r\n", 2) < 0)
			return;
	}
	if (write(fd, "Connection: close\r\n\r\n", 21) < 0)
		return;
	if (b && b->len && write(fd, b->data, b->len) < 0)
		return;
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void *serve(void *arg)
{
	struct pccs *p = arg;
	while (!p->stop) {
		int c = accept(p->fd, NULL, NULL);
		if (c < 0)
			continue;
		if (p->stop) {
			close(c);
			break;
		}
		char req[2048] = "";
		size_t n = 0;
		while (n < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
			ssize_t r = read(c, req + n, sizeof(req) - 1 - n);
			if (r <= 0)
				break;
			n += (size_t)r;
			req[n] = 0;
		}
		p->requests++;
		if (p->mode == HANG) {
			usleep(600 * 1000);
			close(c);
			continue;
		}
		if (p->mode == FAIL_500) {
			reply(c, 500, NULL, NULL, NULL);
		} else if (starts(req, "GET /tdx/certification/v4/tcb?fmspc=B0C06F000000 ")) {
			reply(c, 200, "TCB-Info-Issuer-Chain",
			      p->mode == NO_CHAIN ? NULL : (char *)p->tcb_chain_enc.data, &p->tcb);
		} else if (starts(req, "GET /tdx/certification/v4/qe/identity ")) {
			reply(c, 200, "SGX-Enclave-Identity-Issuer-Chain", (char *)p->qe_chain_enc.data,
			      &p->qe);
		} else if (starts(req, "GET /sgx/certification/v4/pckcrl?ca=platform&encoding=der ")) {
			reply(c, 200, "SGX-PCK-CRL-Issuer-Chain", (char *)p->crl_chain_enc.data,
			      &p->pck_crl);
		} else if (starts(req, "GET /sgx/certification/v4/rootcacrl ")) {
			reply(c, 200, NULL, NULL, &p->root_hex);
		} else {
			reply(c, 404, NULL, NULL, NULL);
		}
		close(c);
	}
	return NULL;
}

static void pccs_start(struct pccs *p)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(tdc_sim_pcs_body("tcbInfo", &coll.tcb_info, coll.tcb_info_sig, &p->tcb,
					  NULL),
			 0);
	assert_int_equal(tdc_sim_pcs_body("enclaveIdentity", &coll.qe_identity,
					  coll.qe_identity_sig, &p->qe, NULL),
			 0);
	url_encode(&coll.tcb_info_chain, &p->tcb_chain_enc);
	url_encode(&coll.qe_identity_chain, &p->qe_chain_enc);
	url_encode(&coll.pck_crl_chain, &p->crl_chain_enc);
	p->pck_crl = coll.pck_crl;
	p->root_hex.data = malloc(coll.root_ca_crl.len * 2 + 1);
	tdc_hex_encode(coll.root_ca_crl.data, coll.root_ca_crl.len, (char *)p->root_hex.data);
	p->root_hex.len = coll.root_ca_crl.len * 2;

	p->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(p->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(p->fd, 16), 0);
	getsockname(p->fd, (struct sockaddr *)&sa, &sl);
	p->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&p->t, NULL, serve, p), 0);
}

static void pccs_stop(struct pccs *p)
{
	p->stop = true;
	/* wake the accept */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p->port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fprintf(stderr, "cannot wake the PCCS thread\n");
	close(c);
	pthread_join(p->t, NULL);
	close(p->fd);
	free(p->tcb.data);
	free(p->qe.data);
	free(p->tcb_chain_enc.data);
	free(p->qe_chain_enc.data);
	free(p->crl_chain_enc.data);
	free(p->root_hex.data);
}

static void url_of(const struct pccs *p, char *out, size_t cap)
{
	snprintf(out, cap, "http://127.0.0.1:%d/", p->port);
}

static int setup(void **state)
{
	(void)state;
	char path[1024];
	const char *td = getenv("TDC_TESTDATA");
	assert_non_null(td);
	snprintf(path, sizeof(path), "%s/dcap-qvl/tdx_quote_collateral.json", td);
	assert_int_equal(tdc_collateral_load(path, &coll, NULL), 0);
	snprintf(path, sizeof(path), "%s/dcap-qvl/tdx_quote", td);
	assert_int_equal(tdc_file_read(path, TDC_MAX_QUOTE_SIZE, &quote, &quote_len, NULL), 0);
	assert_int_equal(tdc_time_parse(AT, &at, "at", NULL), 0);
	snprintf(dir, sizeof(dir), "/tmp/tdc-kbs-pccs-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tdc_collateral_free(&coll);
	free(quote);
	kt_rmtree(dir);
	return 0;
}

static void assert_buf_equal(const struct tdc_buf *a, const struct tdc_buf *b)
{
	assert_int_equal(a->len, b->len);
	assert_memory_equal(a->data, b->data, a->len);
}

static void fetch_matches_bundle(void **state)
{
	(void)state;
	struct pccs p;
	struct kbs_pccs_raw raw;
	struct tdc_collateral c;
	struct tdc_error e;
	char url[64];
	static const uint8_t fmspc[6] = { 0xb0, 0xc0, 0x6f, 0, 0, 0 };
	pccs_start(&p);
	url_of(&p, url, sizeof(url));
	struct kbs_pccs_opts o = { url, NULL, 2000 };
	tdc_error_clear(&e);
	int fr = kbs_pccs_fetch(&o, fmspc, false, &raw, &e);
	if (fr)
		print_message("fetch: %s %s\n", e.reason, e.detail);
	assert_int_equal(fr, 0);
	assert_int_equal(p.requests, 4);
	assert_int_equal(kbs_pccs_to_collateral(&raw, &c, &e), 0);
	assert_buf_equal(&c.tcb_info, &coll.tcb_info);
	assert_memory_equal(c.tcb_info_sig, coll.tcb_info_sig, 64);
	assert_buf_equal(&c.qe_identity, &coll.qe_identity);
	assert_buf_equal(&c.pck_crl, &coll.pck_crl);
	assert_buf_equal(&c.root_ca_crl, &coll.root_ca_crl);
	tdc_collateral_free(&c);
	kbs_pccs_raw_free(&raw);
	pccs_stop(&p);
}

static void fetch_failures(void **state)
{
	(void)state;
	struct pccs p;
	struct kbs_pccs_raw raw;
	struct tdc_error e;
	char url[64];
	static const uint8_t fmspc[6] = { 0xb0, 0xc0, 0x6f, 0, 0, 0 };
	static const uint8_t other[6] = { 0x00, 0x90, 0x6e, 0xd5, 0, 0 };
	pccs_start(&p);
	url_of(&p, url, sizeof(url));
	struct kbs_pccs_opts o = { url, NULL, 300 };

	/* unknown FMSPC: 404 */
	tdc_error_clear(&e);
	assert_int_equal(kbs_pccs_fetch(&o, other, false, &raw, &e), TDC_E_IO);
	assert_non_null(strstr(e.detail, "HTTP 404"));
	/* server error */
	p.mode = FAIL_500;
	tdc_error_clear(&e);
	assert_int_equal(kbs_pccs_fetch(&o, fmspc, false, &raw, &e), TDC_E_IO);
	assert_non_null(strstr(e.detail, "HTTP 500"));
	/* no issuer chain header */
	p.mode = NO_CHAIN;
	tdc_error_clear(&e);
	assert_int_equal(kbs_pccs_fetch(&o, fmspc, false, &raw, &e), TDC_E_FORMAT);
	/* a PCCS that never answers: the timeout */
	p.mode = HANG;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	tdc_error_clear(&e);
	assert_int_equal(kbs_pccs_fetch(&o, fmspc, false, &raw, &e), TDC_E_IO);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 550);
	pccs_stop(&p);
	/* nobody listening */
	tdc_error_clear(&e);
	assert_int_equal(kbs_pccs_fetch(&o, fmspc, false, &raw, &e), TDC_E_IO);
}

static int64_t keeper_now(void *arg)
{
	(void)arg;
	return at;
}

static void sources_pccs_cache_and_expiry(void **state)
{
	(void)state;
	struct pccs p;
	struct tdc_store *s;
	struct kbs_coll *k;
	struct tdc_collateral c;
	struct kbs_coll_info info;
	struct tdc_quote q;
	struct tdc_error e;
	char url[64], db[512], mk[512];
	uint8_t fmspc[6];
	bool processor;

	tdb_location(db, sizeof(db), dir, "kbs.db");
	kt_path(mk, sizeof(mk), dir, "master.key");
	assert_int_equal(tdc_store_master_key_create(mk, NULL), 0);
	assert_int_equal(tdc_store_open(db, mk, &s, NULL), 0);
	/* the store's cache is reached through a keeper, as in the broker */
	int sv[2];
	struct kbs_keeper *keeper;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct kbs_keeper_opts ko = { NULL, keeper_now, NULL, NULL, -1 };
	assert_int_equal(kbs_keeper_start(s, &ko, &sv[1], 1, &keeper, NULL), 0);
	kbs_vault_bind(sv[0], NULL);
	assert_int_equal(tdc_quote_parse(quote, quote_len, &q, NULL), 0);
	assert_int_equal(kbs_quote_fmspc(&q, fmspc, &processor, NULL), 0);
	assert_false(processor);
	pccs_start(&p);
	url_of(&p, url, sizeof(url));
	struct kbs_pccs_opts o = { url, NULL, 2000 };

	/* first use: fetched from the PCCS and stored */
	tdc_error_clear(&e);
	assert_int_equal(kbs_coll_new(NULL, &o, true, &k, &e), 0);
	assert_int_equal(kbs_coll_get(k, fmspc, false, at, &c, &info, &e), 0);
	assert_string_equal(info.source, "pccs");
	assert_true(info.next_update > at);
	struct tdc_verifier *v;
	struct tdc_verdict vd;
	assert_int_equal(tdc_verifier_new(NULL, &v, NULL), 0);
	memset(&vd, 0, sizeof(vd));
	tdc_error_clear(&e);
	assert_int_equal(tdc_verify_quote(v, quote, quote_len, &c, at, &vd, &e), 0);
	assert_int_equal(vd.status, TDC_TCB_UP_TO_DATE);
	tdc_verdict_free(&vd);
	tdc_collateral_free(&c);
	/* second use: from memory, no new request */
	int before = p.requests;
	assert_int_equal(kbs_coll_get(k, fmspc, false, at + 60, &c, &info, &e), 0);
	assert_string_equal(info.source, "memory");
	assert_int_equal(p.requests, before);
	tdc_collateral_free(&c);
	kbs_coll_free(k);

	/* the PCCS goes down; a restarted broker works from the store's cache */
	pccs_stop(&p);
	assert_int_equal(kbs_coll_new(NULL, &o, true, &k, &e), 0);
	tdc_error_clear(&e);
	assert_int_equal(kbs_coll_get(k, fmspc, false, at + 120, &c, &info, &e), 0);
	assert_string_equal(info.source, "cache");
	assert_true(info.next_update > at + 120);
	tdc_collateral_free(&c);

	/* PostgreSQL: another broker (its own store handle and keeper) on the same database
	 * finds what this one fetched */
	if (tdb_postgresql()) {
		struct tdc_store *s2;
		struct kbs_keeper *keeper2;
		int sv2[2];
		struct kbs_coll *k2;
		assert_int_equal(tdc_store_open(db, mk, &s2, NULL), 0);
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), 0);
		assert_int_equal(kbs_keeper_start(s2, &ko, &sv2[1], 1, &keeper2, NULL), 0);
		kbs_vault_bind(sv2[0], NULL);
		assert_int_equal(kbs_coll_new(NULL, &o, true, &k2, &e), 0);
		tdc_error_clear(&e);
		assert_int_equal(kbs_coll_get(k2, fmspc, false, at + 120, &c, &info, &e), 0);
		assert_string_equal(info.source, "cache");
		tdc_collateral_free(&c);
		kbs_coll_free(k2);
		close(sv2[0]);
		kbs_vault_bind(sv[0], NULL);
		kbs_keeper_stop(keeper2);
		close(sv2[1]);
		tdc_store_close(s2);
	}

	/* past nextUpdate with the PCCS still down: handed on as expired, and the
	 * verifier refuses it (the broker answers collateral_unavailable) */
	int64_t late = info.next_update + 3600;
	tdc_error_clear(&e);
	assert_int_equal(kbs_coll_get(k, fmspc, false, late, &c, &info, &e), 0);
	assert_true(info.next_update <= late);
	memset(&vd, 0, sizeof(vd));
	tdc_error_clear(&e);
	assert_int_equal(tdc_verify_quote(v, quote, quote_len, &c, late, &vd, &e), TDC_E_EXPIRED);
	tdc_verdict_free(&vd);
	tdc_collateral_free(&c);
	kbs_coll_free(k);

	/* no PCCS, no cache entry, no directory: a clear error */
	static const uint8_t other[6] = { 1, 2, 3, 4, 5, 6 };
	assert_int_equal(kbs_coll_new(NULL, &o, true, &k, &e), 0);
	tdc_error_clear(&e);
	assert_true(kbs_coll_get(k, other, false, at, &c, &info, &e) < 0);
	assert_string_equal(e.reason, "no collateral");
	kbs_coll_free(k);
	tdc_verifier_free(v);
	close(sv[0]);
	kbs_vault_bind(-1, NULL);
	kbs_keeper_stop(keeper);
	close(sv[1]);
	tdc_store_close(s);
}

static void offline_dir_sources(void **state)
{
	(void)state;
	struct kbs_coll *k;
	struct tdc_collateral c;
	struct kbs_coll_info info;
	char path[1024];
	uint8_t fmspc[6] = { 0xb0, 0xc0, 0x6f, 0, 0, 0 };
	/* a dcap-qvl JSON file works as the offline source */
	snprintf(path, sizeof(path), "%s/dcap-qvl/tdx_quote_collateral.json",
		 getenv("TDC_TESTDATA"));
	assert_int_equal(kbs_coll_new(path, NULL, false, &k, NULL), 0);
	assert_int_equal(kbs_coll_get(k, fmspc, false, at, &c, &info, NULL), 0);
	assert_string_equal(info.source, "dir");
	assert_buf_equal(&c.tcb_info, &coll.tcb_info);
	tdc_collateral_free(&c);
	kbs_coll_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fetch_matches_bundle),
		cmocka_unit_test(fetch_failures),
		cmocka_unit_test(sources_pccs_cache_and_expiry),
		cmocka_unit_test(offline_dir_sources),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
