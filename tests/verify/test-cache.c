/* SPDX-License-Identifier: Apache-2.0 */
/* The verifier's cache and validity windows (lib/verify/cache.c), in isolation. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "verify/verify_int.h"

struct item {
	struct vfy_entry base;
	int id;
};

static atomic_int destroyed;

static void item_destroy(struct vfy_entry *ent)
{
	atomic_fetch_add(&destroyed, 1);
	vfy_entry_fini(ent);
	free(ent);
}

/* The key of item id: its 4 bytes. */
struct id_key {
	int id;
	struct vfy_part part;
	struct vfy_key k;
};

static const struct vfy_key *key_of(int id, struct id_key *ik)
{
	ik->id = id;
	ik->part = (struct vfy_part){ &ik->id, sizeof(ik->id) };
	vfy_key_init(&ik->k, &ik->part, 1);
	return &ik->k;
}

static struct item *item_new(int id)
{
	struct id_key ik;
	struct item *it = calloc(1, sizeof(*it));
	assert_non_null(it);
	assert_int_equal(vfy_entry_init(&it->base, key_of(id, &ik), item_destroy, NULL), 0);
	it->id = id;
	return it;
}

static struct vfy_cache *cache_new(void)
{
	struct vfy_cache *c = malloc(sizeof(*c));
	assert_non_null(c);
	assert_int_equal(vfy_cache_init(c, NULL), 0);
	atomic_store(&destroyed, 0);
	return c;
}

static void cache_free(struct vfy_cache *c)
{
	vfy_cache_fini(c);
	free(c);
}

static void put_release(struct vfy_cache *c, int id)
{
	struct vfy_entry *e = vfy_cache_put(c, VFY_PCK, &item_new(id)->base);
	vfy_cache_release(c, e);
}

static bool present(struct vfy_cache *c, int id)
{
	struct id_key k;
	struct vfy_entry *e = vfy_cache_get(c, VFY_PCK, key_of(id, &k));
	if (!e)
		return false;
	assert_int_equal(((struct item *)e)->id, id);
	vfy_cache_release(c, e);
	return true;
}

static void get_after_put(void **state)
{
	(void)state;
	struct vfy_cache *c = cache_new();
	struct id_key k;
	assert_null(vfy_cache_get(c, VFY_PCK, key_of(7, &k)));
	put_release(c, 7);
	assert_true(present(c, 7));
	/* Kinds are separate namespaces. */
	assert_null(vfy_cache_get(c, VFY_TCB_INFO, key_of(7, &k)));
	cache_free(c);
	assert_int_equal(atomic_load(&destroyed), 1);
}

static void bounded_lru(void **state)
{
	(void)state;
	struct vfy_cache *c = cache_new();
	for (int i = 0; i < VFY_CACHE_SLOTS; i++)
		put_release(c, i);
	assert_true(present(c, 0)); /* 0 is now the most recently used */
	put_release(c, 1000);
	assert_true(present(c, 0));
	assert_false(present(c, 1)); /* the least recently used went */
	assert_int_equal(atomic_load(&destroyed), 1);
	for (int i = 2000; i < 2100; i++)
		put_release(c, i);
	int n = 0;
	for (int i = 2000; i < 2100; i++)
		n += present(c, i);
	assert_int_equal(n, VFY_CACHE_SLOTS);
	cache_free(c);
	assert_int_equal(atomic_load(&destroyed), VFY_CACHE_SLOTS + 1 + 100);
}

static void evicted_entry_lives_while_referenced(void **state)
{
	(void)state;
	struct vfy_cache *c = cache_new();
	struct vfy_entry *held = vfy_cache_put(c, VFY_PCK, &item_new(-1)->base);
	for (int i = 0; i < VFY_CACHE_SLOTS; i++)
		put_release(c, i);
	assert_false(present(c, -1));
	assert_int_equal(atomic_load(&destroyed), 0);
	assert_int_equal(((struct item *)held)->id, -1); /* still valid (ASan would say) */
	vfy_cache_release(c, held);
	assert_int_equal(atomic_load(&destroyed), 1);
	cache_free(c);
}

static void duplicate_put_adopts_existing(void **state)
{
	(void)state;
	struct vfy_cache *c = cache_new();
	struct vfy_entry *a = vfy_cache_put(c, VFY_PCK, &item_new(5)->base);
	struct vfy_entry *b = vfy_cache_put(c, VFY_PCK, &item_new(5)->base);
	assert_ptr_equal(a, b);
	assert_int_equal(atomic_load(&destroyed), 1); /* the second copy */
	vfy_cache_release(c, a);
	vfy_cache_release(c, b);
	assert_true(present(c, 5));
	cache_free(c);
}

static void windows_are_inclusive(void **state)
{
	(void)state;
	struct vfy_windows w = { 0 };
	struct tdc_error e;
	vfy_windows_add(&w, "A", 100, 200);
	vfy_windows_add(&w, "B", 150, 300);
	assert_int_equal(vfy_windows_not_after(&w), 200);
	assert_int_equal(vfy_windows_check(&w, 150, NULL), 0);
	assert_int_equal(vfy_windows_check(&w, 200, NULL), 0);
	tdc_error_clear(&e);
	assert_int_equal(vfy_windows_check(&w, 201, &e), TDC_E_EXPIRED);
	assert_non_null(strstr(e.detail, "A valid"));
	tdc_error_clear(&e);
	assert_int_equal(vfy_windows_check(&w, 149, &e), TDC_E_EXPIRED);
	assert_non_null(strstr(e.detail, "B valid"));
	struct vfy_windows empty = { 0 };
	assert_int_equal(vfy_windows_not_after(&empty), INT64_MAX);
}

/* An entry is found only by the exact bytes it was built from: the split into parts
 * counts, every byte counts (also one the fingerprint does not sample), and a key that
 * is equal is found again. */
static bool found_by(struct vfy_cache *c, const struct vfy_part *parts, size_t n)
{
	struct vfy_key k;
	vfy_key_init(&k, parts, n);
	struct vfy_entry *e = vfy_cache_get(c, VFY_QE_REPORT, &k);
	vfy_cache_release(c, e);
	return e != NULL;
}

static void keys_are_exact_bytes(void **state)
{
	(void)state;
	struct vfy_cache *c = cache_new();
	uint8_t big[300];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	const struct vfy_part stored[] = { { "ab", 2 }, { "c", 1 }, { big, sizeof(big) } };
	struct vfy_key k;
	vfy_key_init(&k, stored, 3);
	struct item *it = calloc(1, sizeof(*it));
	assert_non_null(it);
	assert_int_equal(vfy_entry_init(&it->base, &k, item_destroy, NULL), 0);
	vfy_cache_release(c, vfy_cache_put(c, VFY_QE_REPORT, &it->base));

	uint8_t copy[300];
	memcpy(copy, big, sizeof(big));
	const struct vfy_part same[] = { { "ab", 2 }, { "c", 1 }, { copy, sizeof(copy) } };
	assert_true(found_by(c, same, 3));
	const struct vfy_part split[] = { { "a", 1 }, { "bc", 2 }, { big, sizeof(big) } };
	assert_false(found_by(c, split, 3));
	const struct vfy_part fewer[] = { { "ab", 2 }, { "c", 1 } };
	assert_false(found_by(c, fewer, 2));
	const struct vfy_part more[] = { { "ab", 2 }, { "c", 1 }, { big, sizeof(big) }, { NULL, 0 } };
	assert_false(found_by(c, more, 4));
	for (size_t at = 0; at < sizeof(copy); at += 37) { /* sampled or not, each byte decides */
		copy[at] ^= 0x80;
		assert_false(found_by(c, same, 3));
		copy[at] ^= 0x80;
	}
	assert_true(found_by(c, same, 3));
	cache_free(c);

	/* Plain SHA-256 of the concatenation (used for the QE binding). */
	struct tdc_verifier *v = NULL;
	uint8_t h[32];
	assert_int_equal(tdc_verifier_new(NULL, &v, NULL), 0);
	static const uint8_t abc[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
		0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
		0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
	};
	assert_int_equal(vfy_sha256(v, "a", 1, "bc", 2, h, NULL), 0);
	assert_memory_equal(h, abc, 32);
	tdc_verifier_free(v);
}

static struct vfy_cache *g_shared;

static void *churn(void *p)
{
	int base = *(int *)p;
	for (int i = 0; i < 2000; i++) {
		int id = base + (i % 97);
		struct id_key k;
		struct vfy_entry *e = vfy_cache_get(g_shared, VFY_PCK, key_of(id, &k));
		if (!e)
			e = vfy_cache_put(g_shared, VFY_PCK, &item_new(id)->base);
		if (((struct item *)e)->id != id)
			abort();
		vfy_cache_release(g_shared, e);
	}
	return NULL;
}

static void concurrent_churn(void **state)
{
	(void)state;
	g_shared = cache_new();
	pthread_t t[4];
	int bases[4] = { 0, 50, 100, 150 }; /* overlapping key ranges */
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, churn, &bases[i]), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	cache_free(g_shared);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(get_after_put),
		cmocka_unit_test(bounded_lru),
		cmocka_unit_test(evicted_entry_lives_while_referenced),
		cmocka_unit_test(duplicate_put_adopts_existing),
		cmocka_unit_test(windows_are_inclusive),
		cmocka_unit_test(keys_are_exact_bytes),
		cmocka_unit_test(concurrent_churn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
