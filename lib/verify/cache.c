/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Content-addressed cache of verified collateral, PCK chains and QE reports
 * (an entry is found by the exact bytes it was built from), and the validity
 * windows that are re-evaluated on every call. A rwlock
 * guards the slots (shared for lookups, exclusive for inserts); reference
 * counts are atomic. The verification work itself runs outside the lock, so
 * two threads may build the same entry once each and the second insert
 * simply adopts the first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "verify/verify_int.h"

void vfy_windows_add(struct vfy_windows *ws, const char *what, int64_t not_before,
		     int64_t not_after)
{
	/* The callers add a fixed, small number of windows; overflow is a bug. */
	if (ws->n >= VFY_MAX_WINDOWS)
		abort();
	ws->w[ws->n++] = (struct vfy_window){ what, not_before, not_after };
}

void vfy_windows_merge(struct vfy_windows *dst, const struct vfy_windows *src)
{
	for (size_t i = 0; i < src->n; i++)
		vfy_windows_add(dst, src->w[i].what, src->w[i].not_before, src->w[i].not_after);
}

int vfy_windows_check(const struct vfy_windows *ws, int64_t now, struct tdc_error *e)
{
	for (size_t i = 0; i < ws->n; i++) {
		const struct vfy_window *w = &ws->w[i];
		if (now >= w->not_before && now <= w->not_after)
			continue;
		char t[32], a[32], b[32];
		tdc_time_format(now, t, sizeof(t));
		tdc_time_format(w->not_before, a, sizeof(a));
		tdc_time_format(w->not_after, b, sizeof(b));
		return TDC_FAILF(e, TDC_E_EXPIRED,
				 now < w->not_before ? "collateral not yet valid"
						     : "collateral expired",
				 "%s valid %s..%s, time is %s", w->what, a, b, t);
	}
	return 0;
}

int64_t vfy_windows_not_after(const struct vfy_windows *ws)
{
	int64_t m = INT64_MAX;
	for (size_t i = 0; i < ws->n; i++)
		if (ws->w[i].not_after < m)
			m = ws->w[i].not_after;
	return m;
}

int vfy_sha256(const struct tdc_verifier *v, const void *a, size_t alen, const void *b,
	       size_t blen, uint8_t out[32], struct tdc_error *e)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned outl = 0;
	int ok = ctx && EVP_DigestInit_ex(ctx, v->sha256, NULL) &&
		 (!alen || EVP_DigestUpdate(ctx, a, alen)) &&
		 (!blen || EVP_DigestUpdate(ctx, b, blen)) &&
		 EVP_DigestFinal_ex(ctx, out, &outl) && outl == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-256 failed");
	return 0;
}

/* ---- keys: exact bytes, a fingerprint to pick candidates ---- */

static uint64_t fp_mix(uint64_t h, uint64_t x)
{
	h ^= x;
	h *= 0x100000001b3ull;
	return h ^ (h >> 29);
}

/* Up to 8 bytes of p at `at` (clamped to the part), as a number. */
static uint64_t fp_sample(const uint8_t *p, size_t len, size_t at)
{
	uint64_t x = 0;
	size_t n = len < 8 ? len : 8;
	if (at > len - n)
		at = len - n;
	memcpy(&x, p + at, n);
	return x;
}

void vfy_key_init(struct vfy_key *k, const struct vfy_part *parts, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n;
	k->parts = parts;
	k->n = n;
	k->len = 0;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = parts[i].p;
		size_t len = parts[i].len;
		k->len += sizeof(uint64_t) + len;
		h = fp_mix(h, len);
		if (!len)
			continue;
		h = fp_mix(h, fp_sample(p, len, 0));
		h = fp_mix(h, fp_sample(p, len, len / 2));
		h = fp_mix(h, fp_sample(p, len, len));
	}
	k->fp = h;
}

/* Byte equality of an entry's inputs with k. */
static bool key_equal(const struct vfy_entry *ent, const struct vfy_key *k)
{
	if (ent->fp != k->fp || ent->in_len != k->len)
		return false;
	const uint8_t *in = ent->in;
	for (size_t i = 0; i < k->n; i++) {
		uint64_t len = k->parts[i].len;
		if (memcmp(in, &len, sizeof(len)) != 0)
			return false;
		in += sizeof(len);
		if (len && memcmp(in, k->parts[i].p, len) != 0)
			return false;
		in += len;
	}
	return true;
}

static bool entries_equal(const struct vfy_entry *a, const struct vfy_entry *b)
{
	return a->fp == b->fp && a->in_len == b->in_len && memcmp(a->in, b->in, a->in_len) == 0;
}

int vfy_entry_init(struct vfy_entry *ent, const struct vfy_key *k,
		   void (*destroy)(struct vfy_entry *ent), struct tdc_error *e)
{
	ent->destroy = destroy;
	ent->refs = 1;
	ent->fp = k->fp;
	ent->in_len = k->len;
	ent->in = malloc(k->len ? k->len : 1);
	if (!ent->in)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	uint8_t *out = ent->in;
	for (size_t i = 0; i < k->n; i++) {
		uint64_t len = k->parts[i].len;
		memcpy(out, &len, sizeof(len));
		out += sizeof(len);
		if (len)
			memcpy(out, k->parts[i].p, len);
		out += len;
	}
	return 0;
}

void vfy_entry_fini(struct vfy_entry *ent)
{
	free(ent->in);
	ent->in = NULL;
}

struct vfy_part vfy_entry_part(const struct vfy_entry *ent)
{
	return (struct vfy_part){ ent->in, ent->in_len };
}

/* ---- the cache ---- */

int vfy_cache_init(struct vfy_cache *c, struct tdc_error *e)
{
	pthread_rwlockattr_t attr;
	memset(c, 0, sizeof(*c));
	/* lookups never nest, so an insert may go first: a stream of overlapping lookups
	 * from busy workers cannot starve it */
	int rc = pthread_rwlockattr_init(&attr);
	if (rc == 0)
		rc = pthread_rwlockattr_setkind_np(&attr,
						   PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (rc == 0)
		rc = pthread_rwlock_init(&c->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc != 0)
		return TDC_FAIL(e, TDC_E_INTERNAL, "pthread_rwlock_init failed");
	atomic_init(&c->clock, 0);
	return 0;
}

/* Drops one reference; true if it was the last (the caller destroys ent). */
static bool entry_unref(struct vfy_entry *ent)
{
	return atomic_fetch_sub_explicit(&ent->refs, 1, memory_order_acq_rel) == 1;
}

void vfy_cache_fini(struct vfy_cache *c)
{
	for (size_t k = 0; k < VFY__KINDS; k++)
		for (size_t i = 0; i < VFY_CACHE_SLOTS; i++) {
			struct vfy_entry *ent = c->slot[k][i];
			if (ent && entry_unref(ent))
				ent->destroy(ent);
			c->slot[k][i] = NULL;
		}
	pthread_rwlock_destroy(&c->lock);
}

/* Stamps ent with the clock; written only when it changed, so that repeated lookups
 * of a hot entry do not keep writing its cache line. */
static void touch(struct vfy_cache *c, struct vfy_entry *ent)
{
	uint64_t now = atomic_load_explicit(&c->clock, memory_order_relaxed);
	if (atomic_load_explicit(&ent->used, memory_order_relaxed) != now)
		atomic_store_explicit(&ent->used, now, memory_order_relaxed);
}

struct vfy_entry *vfy_cache_get(struct vfy_cache *c, enum vfy_kind kind, const struct vfy_key *k)
{
	struct vfy_entry *found = NULL;
	pthread_rwlock_rdlock(&c->lock);
	for (size_t i = 0; i < VFY_CACHE_SLOTS; i++) {
		struct vfy_entry *ent = c->slot[kind][i];
		if (ent && key_equal(ent, k)) {
			/* the slot's reference keeps ent alive while the lock is held */
			atomic_fetch_add_explicit(&ent->refs, 1, memory_order_relaxed);
			touch(c, ent);
			found = ent;
			break;
		}
	}
	pthread_rwlock_unlock(&c->lock);
	return found;
}

struct vfy_entry *vfy_cache_put(struct vfy_cache *c, enum vfy_kind kind, struct vfy_entry *ent)
{
	struct vfy_entry **slots = c->slot[kind], *use = NULL, *dead = NULL;

	pthread_rwlock_wrlock(&c->lock);
	uint64_t now = atomic_fetch_add_explicit(&c->clock, 1, memory_order_relaxed) + 1;
	for (size_t i = 0; i < VFY_CACHE_SLOTS && !use; i++)
		if (slots[i] && entries_equal(slots[i], ent))
			use = slots[i]; /* another thread got there first */
	if (use) {
		atomic_fetch_add_explicit(&use->refs, 1, memory_order_relaxed);
		atomic_store_explicit(&use->used, now, memory_order_relaxed);
	} else {
		/* a free slot, else the least recently used one */
		size_t victim = 0;
		for (size_t i = 0; i < VFY_CACHE_SLOTS; i++) {
			if (!slots[i]) {
				victim = i;
				break;
			}
			if (atomic_load_explicit(&slots[i]->used, memory_order_relaxed) <
			    atomic_load_explicit(&slots[victim]->used, memory_order_relaxed))
				victim = i;
		}
		if (slots[victim] && entry_unref(slots[victim]))
			dead = slots[victim];
		atomic_fetch_add_explicit(&ent->refs, 1, memory_order_relaxed); /* the slot's */
		atomic_store_explicit(&ent->used, now, memory_order_relaxed);
		slots[victim] = ent;
		use = ent;
	}
	pthread_rwlock_unlock(&c->lock);

	if (use != ent)
		ent->destroy(ent);
	if (dead)
		dead->destroy(dead);
	return use;
}

void vfy_cache_release(struct vfy_cache *c, struct vfy_entry *ent)
{
	(void)c;
	if (ent && entry_unref(ent))
		ent->destroy(ent);
}
