/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keeper as the network process's adversary would see it: every frame on a worker
 * channel is hostile. Each case sends one malformed or out-of-role request and checks
 * that it is refused, that nothing was released or recorded, and (where the channel
 * survives) that a good request still works afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "kbs-test.h"
#include "../pg/test-db.h"
#include "kbs/kbs-int.h"
#include "util/rd.h"
#include "util/wr.h"

static const uint8_t KEY[32] = { 0x5a, 0x5a, 0x01, 0x02 };

struct fx {
	char dir[64];
	struct tdc_store *s;
	struct kbs_keeper *k;
	int fd; /* the network process's end */
};

static int64_t fixed_now(void *arg)
{
	(void)arg;
	return 1764000000;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char db[512], mk[128];
	int sv[2];
	snprintf(f->dir, sizeof(f->dir), "/tmp/tdc-keeper.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	tdb_location(db, sizeof(db), f->dir, "kbs.db");
	kt_path(mk, sizeof(mk), f->dir, "master.key");
	assert_int_equal(tdc_store_master_key_create(mk, NULL), 0);
	assert_int_equal(tdc_store_open(db, mk, &f->s, NULL), 0);
	assert_int_equal(tdc_store_secret_put(f->s, "s1", KEY, sizeof(KEY), NULL, fixed_now(NULL), NULL), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct kbs_keeper_opts ko = { NULL, fixed_now, NULL, NULL, -1 };
	assert_int_equal(kbs_keeper_start(f->s, &ko, &sv[1], 1, &f->k, NULL), 0);
	f->fd = sv[0];
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	close(f->fd);
	kbs_keeper_stop(f->k);
	tdc_store_close(f->s);
	kt_rmtree(f->dir);
	free(f);
	return 0;
}

static size_t audit_count(struct fx *f)
{
	struct tdc_audit_list l;
	struct tdc_audit_query q = { NULL, 0, 0 };
	assert_int_equal(tdc_store_audit_list(f->s, &q, &l, NULL), 0);
	size_t n = l.n;
	tdc_audit_list_free(&l);
	return n;
}

static struct tdc_audit_record rec(enum tdc_audit_decision d, const char *secret)
{
	struct tdc_audit_record r = { 0, fixed_now(NULL), "req-1", secret, "127.0.0.1:1",
				      "00", "UpToDate", d, d == TDC_AUDIT_RELEASED ? "ok" : "policy" };
	return r;
}

/* Sends a built frame; returns the reply's status byte (or -1: the channel ended). The
 * reply's key bytes, if any, land in key/keylen. */
static int ask(struct fx *f, struct tdc_wr *w, uint8_t *key, size_t *keylen)
{
	uint8_t *p = NULL, *rep = NULL, st;
	size_t n = 0, rn = 0;
	assert_int_equal(tdc_wr_finish(w, &p, &n, NULL), 0);
	assert_int_equal(kbs_frame_send(f->fd, p, n, NULL), 0);
	kbs_frame_free(p, n);
	if (kbs_frame_recv(f->fd, &rep, &rn, NULL) < 0)
		return -1;
	struct tdc_rd r;
	tdc_rd_init(&r, rep, rn);
	assert_int_equal(tdc_rd_u8(&r, &st, "status", NULL), 0);
	if (st == KST_OK && key) {
		uint64_t id;
		struct tdc_rd k;
		assert_int_equal(tdc_rd_u64le(&r, &id, "id", NULL), 0);
		assert_int_equal(kbs_get_blob(&r, 1024, &k, "key", NULL), 0);
		*keylen = tdc_rd_len(&k);
		memcpy(key, tdc_rd_ptr(&k), *keylen);
	}
	kbs_frame_free(rep, rn);
	return st;
}

static int release(struct fx *f, const struct tdc_audit_record *r, uint8_t *key, size_t *len)
{
	struct tdc_wr w;
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, KOP_RELEASE);
	kbs_put_record(&w, r);
	return ask(f, &w, key, len);
}

static void good_release_then_one_record(void **state)
{
	struct fx *f = *state;
	uint8_t key[64];
	size_t n = 0;
	struct tdc_audit_record r = rec(TDC_AUDIT_RELEASED, "s1");
	assert_int_equal(release(f, &r, key, &n), KST_OK);
	assert_int_equal(n, sizeof(KEY));
	assert_memory_equal(key, KEY, n);
	assert_int_equal(audit_count(f), 1);
}

static void audit_of_a_release_refused(void **state)
{
	struct fx *f = *state;
	struct tdc_wr w;
	struct tdc_audit_record r = rec(TDC_AUDIT_RELEASED, "s1");
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, KOP_AUDIT);
	kbs_put_record(&w, &r);
	assert_int_equal(ask(f, &w, NULL, NULL), KST_ERROR);
	assert_int_equal(audit_count(f), 0);
}

static void release_of_a_denial_refused(void **state)
{
	struct fx *f = *state;
	uint8_t key[64];
	size_t n = 0;
	struct tdc_audit_record r = rec(TDC_AUDIT_DENIED, "s1");
	assert_int_equal(release(f, &r, key, &n), KST_ERROR);
	assert_int_equal(n, 0);
	assert_int_equal(audit_count(f), 0);
}

static void release_of_unknown_secret_leaves_no_record(void **state)
{
	struct fx *f = *state;
	uint8_t key[64];
	size_t n = 0;
	struct tdc_audit_record r = rec(TDC_AUDIT_RELEASED, "nope");
	assert_int_equal(release(f, &r, key, &n), KST_ERROR);
	r = rec(TDC_AUDIT_RELEASED, NULL);
	assert_int_equal(release(f, &r, key, &n), KST_ERROR);
	assert_int_equal(audit_count(f), 0);
}

static void unknown_decision_byte_refused(void **state)
{
	struct fx *f = *state;
	struct tdc_wr w;
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, KOP_RELEASE);
	tdc_wr_u64le(&w, 1);
	tdc_wr_u8(&w, 2); /* neither denied (0) nor released (1) */
	const char *s[6] = { "r", "s1", "p", "00", "v", "x" };
	for (int i = 0; i < 6; i++)
		kbs_put_str(&w, s[i]);
	assert_int_equal(ask(f, &w, NULL, NULL), KST_ERROR);
	assert_int_equal(audit_count(f), 0);
}

static void truncated_trailing_and_overlong_refused(void **state)
{
	struct fx *f = *state;
	struct tdc_wr w;
	struct tdc_audit_record r = rec(TDC_AUDIT_RELEASED, "s1");
	/* truncated: the record stops after its time */
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, KOP_RELEASE);
	tdc_wr_u64le(&w, 1);
	assert_int_equal(ask(f, &w, NULL, NULL), KST_ERROR);
	/* trailing bytes after a whole record */
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, KOP_RELEASE);
	kbs_put_record(&w, &r);
	tdc_wr_u8(&w, 0);
	assert_int_equal(ask(f, &w, NULL, NULL), KST_ERROR);
	/* a secret id over its cap */
	char big[TDC_MAX_SECRET_ID_LEN + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	r = rec(TDC_AUDIT_RELEASED, big);
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, KOP_RELEASE);
	kbs_put_record(&w, &r);
	assert_int_equal(ask(f, &w, NULL, NULL), KST_ERROR);
	/* a string with a NUL inside */
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, KOP_POLICY);
	tdc_wr_u32le(&w, 3);
	tdc_wr_bytes(&w, "s\0" "1", 3);
	assert_int_equal(ask(f, &w, NULL, NULL), KST_ERROR);
	/* an op the keeper does not serve on a worker channel, and no op at all */
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, KOP_METRICS);
	assert_int_equal(ask(f, &w, NULL, NULL), KST_ERROR);
	/* a reload goes keeper -> network on the control channel, never the other way */
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, KOP_RELOAD);
	assert_int_equal(ask(f, &w, NULL, NULL), KST_ERROR);
	/* a ping carries nothing */
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, KOP_PING);
	tdc_wr_u8(&w, 1);
	assert_int_equal(ask(f, &w, NULL, NULL), KST_ERROR);
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, KOP_PING);
	assert_int_equal(ask(f, &w, NULL, NULL), KST_OK);
	tdc_wr_init_alloc(&w, KBS_KEEPER_MAX_FRAME);
	tdc_wr_u8(&w, 0xee);
	assert_int_equal(ask(f, &w, NULL, NULL), KST_ERROR);
	assert_int_equal(audit_count(f), 0);
	/* the channel still serves */
	uint8_t key[64];
	size_t n = 0;
	r = rec(TDC_AUDIT_RELEASED, "s1");
	assert_int_equal(release(f, &r, key, &n), KST_OK);
	assert_int_equal(audit_count(f), 1);
}

static void oversized_frame_ends_the_channel(void **state)
{
	struct fx *f = *state;
	uint32_t n = KBS_KEEPER_MAX_FRAME + 1;
	uint8_t h[4] = { (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24) };
	uint8_t *rep = NULL;
	size_t rn = 0;
	assert_int_equal(send(f->fd, h, sizeof(h), MSG_NOSIGNAL), 4);
	/* the keeper reads no body: it closes the channel */
	assert_true(kbs_frame_recv(f->fd, &rep, &rn, NULL) < 0);
	assert_int_equal(audit_count(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(good_release_then_one_record, setup, teardown),
		cmocka_unit_test_setup_teardown(audit_of_a_release_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(release_of_a_denial_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(release_of_unknown_secret_leaves_no_record, setup,
						teardown),
		cmocka_unit_test_setup_teardown(unknown_decision_byte_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(truncated_trailing_and_overlong_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(oversized_frame_ends_the_channel, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
