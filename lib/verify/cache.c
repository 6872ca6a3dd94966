/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Content-addressed cache of verified collateral and PCK chains, and the
 * validity windows that are re-evaluated on every call. One mutex guards
 * the slots and reference counts; the verification work itself runs
 * outside the lock, so two threads may build the same entry once each and
 * the second insert simply adopts the first.
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

static int digest_parts(const struct tdc_verifier *v, uint8_t out[32], bool with_lengths,
			const void *const *p, const size_t *l, size_t n)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned outl = 0;
	int ok = ctx && EVP_DigestInit_ex(ctx, v->sha256, NULL);
	for (size_t i = 0; ok && i < n; i++) {
		if (!p[i])
			continue;
		if (with_lengths) {
			uint64_t len = l[i];
			ok = EVP_DigestUpdate(ctx, &len, sizeof(len));
		}
		ok = ok && EVP_DigestUpdate(ctx, p[i], l[i]);
	}
	ok = ok && EVP_DigestFinal_ex(ctx, out, &outl) && outl == 32;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int vfy_key(const struct tdc_verifier *v, uint8_t out[32], const void *p0, size_t l0,
	    const void *p1, size_t l1, const void *p2, size_t l2, const void *p3, size_t l3,
	    struct tdc_error *e)
{
	const void *p[4] = { p0, p1, p2, p3 };
	const size_t l[4] = { l0, l1, l2, l3 };
	/* An empty buffer may have a NULL pointer; hash it as empty, not as absent. */
	static const uint8_t empty;
	for (size_t i = 0; i < 4; i++)
		if (!p[i] && l[i] == 0)
			p[i] = &empty;
	if (digest_parts(v, out, true, p, l, 4) < 0)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-256 failed");
	return 0;
}

int vfy_sha256(const struct tdc_verifier *v, const void *a, size_t alen, const void *b,
	       size_t blen, uint8_t out[32], struct tdc_error *e)
{
	const void *p[2] = { a, b };
	const size_t l[2] = { alen, blen };
	if (digest_parts(v, out, false, p, l, 2) < 0)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-256 failed");
	return 0;
}

int vfy_cache_init(struct vfy_cache *c, struct tdc_error *e)
{
	memset(c, 0, sizeof(*c));
	if (pthread_mutex_init(&c->mu, NULL) != 0)
		return TDC_FAIL(e, TDC_E_INTERNAL, "pthread_mutex_init failed");
	return 0;
}

static void entry_unref_locked(struct vfy_entry *ent, struct vfy_entry **dead)
{
	if (--ent->refs == 0)
		*dead = ent;
}

void vfy_cache_fini(struct vfy_cache *c)
{
	for (size_t k = 0; k < VFY__KINDS; k++)
		for (size_t i = 0; i < VFY_CACHE_SLOTS; i++) {
			struct vfy_entry *ent = c->slot[k][i], *dead = NULL;
			if (!ent)
				continue;
			entry_unref_locked(ent, &dead);
			if (dead)
				dead->destroy(dead);
			c->slot[k][i] = NULL;
		}
	pthread_mutex_destroy(&c->mu);
}

struct vfy_entry *vfy_cache_get(struct vfy_cache *c, enum vfy_kind kind, const uint8_t key[32])
{
	struct vfy_entry *found = NULL;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < VFY_CACHE_SLOTS; i++) {
		struct vfy_entry *ent = c->slot[kind][i];
		if (ent && memcmp(ent->key, key, 32) == 0) {
			ent->refs++;
			ent->used = ++c->clock;
			found = ent;
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return found;
}

struct vfy_entry *vfy_cache_put(struct vfy_cache *c, enum vfy_kind kind, struct vfy_entry *ent)
{
	struct vfy_entry **slots = c->slot[kind], *use = NULL, *dead = NULL;

	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < VFY_CACHE_SLOTS && !use; i++)
		if (slots[i] && memcmp(slots[i]->key, ent->key, 32) == 0)
			use = slots[i]; /* another thread got there first */
	if (use) {
		use->refs++;
		use->used = ++c->clock;
	} else {
		/* a free slot, else the least recently used one */
		size_t victim = 0;
		for (size_t i = 0; i < VFY_CACHE_SLOTS; i++) {
			if (!slots[i]) {
				victim = i;
				break;
			}
			if (slots[i]->used < slots[victim]->used)
				victim = i;
		}
		if (slots[victim])
			entry_unref_locked(slots[victim], &dead);
		ent->refs++; /* the slot's reference */
		ent->used = ++c->clock;
		slots[victim] = ent;
		use = ent;
	}
	pthread_mutex_unlock(&c->mu);

	if (use != ent)
		ent->destroy(ent);
	if (dead)
		dead->destroy(dead);
	return use;
}

void vfy_cache_release(struct vfy_cache *c, struct vfy_entry *ent)
{
	struct vfy_entry *dead = NULL;
	if (!ent)
		return;
	pthread_mutex_lock(&c->mu);
	entry_unref_locked(ent, &dead);
	pthread_mutex_unlock(&c->mu);
	if (dead)
		dead->destroy(dead);
}
