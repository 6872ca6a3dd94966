/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the event loop needs to admit connections fairly and to keep refusals
 * cheap: a table of the connections per remote address, a token bucket (for
 * sampling failed handshakes into the audit trail) and a windowed log limiter
 * (a refused flood writes a few lines and a count, not a line per refusal).
 * All of it is used by the loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "kbs/kbs-int.h"

/* ---- connections per source address ---- */

static size_t pow2_at_least(size_t n)
{
	size_t p = 64;
	while (p < n && p < ((size_t)1 << 20))
		p *= 2;
	return p;
}

int kbs_sources_init(struct kbs_sources *t, size_t expected)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = pow2_at_least(expected);
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets)
		return -1;
	/* keyed, so that a client cannot choose addresses that share a bucket */
	if (RAND_bytes(t->seed, sizeof(t->seed)) != 1)
		memset(t->seed, 0, sizeof(t->seed)); /* still correct, only predictable */
	return 0;
}

void kbs_sources_free(struct kbs_sources *t)
{
	for (size_t i = 0; t->buckets && i < t->nbuckets; i++) {
		while (t->buckets[i]) {
			struct kbs_source *s = t->buckets[i];
			t->buckets[i] = s->next;
			free(s);
		}
	}
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

/* The address only: every port of one host is one source. */
static size_t addr_key(const struct sockaddr_storage *ss, uint8_t key[17])
{
	memset(key, 0, 17);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		key[0] = 4;
		memcpy(key + 1, &a->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		key[0] = 6;
		memcpy(key + 1, &a->sin6_addr, 16);
	}
	return 17;
}

static size_t bucket_of(const struct kbs_sources *t, const uint8_t key[17])
{
	uint8_t in[sizeof(t->seed) + 17], d[SHA256_DIGEST_LENGTH];
	memcpy(in, t->seed, sizeof(t->seed));
	memcpy(in + sizeof(t->seed), key, 17);
	SHA256(in, sizeof(in), d);
	size_t h;
	memcpy(&h, d, sizeof(h));
	return h & (t->nbuckets - 1);
}

struct kbs_source *kbs_source_get(struct kbs_sources *t, const struct sockaddr_storage *ss)
{
	uint8_t key[17];
	addr_key(ss, key);
	size_t b = bucket_of(t, key);
	for (struct kbs_source *s = t->buckets[b]; s; s = s->next)
		if (!memcmp(s->key, key, sizeof(key))) {
			s->refs++;
			return s;
		}
	struct kbs_source *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	memcpy(s->key, key, sizeof(key));
	s->bucket = b;
	s->refs = 1;
	s->next = t->buckets[b];
	t->buckets[b] = s;
	t->n++;
	return s;
}

void kbs_source_put(struct kbs_sources *t, struct kbs_source *s)
{
	if (!s || --s->refs > 0)
		return;
	struct kbs_source **p = &t->buckets[s->bucket];
	while (*p && *p != s)
		p = &(*p)->next;
	if (*p)
		*p = s->next;
	t->n--;
	free(s);
}

/* ---- token bucket ---- */

void kbs_bucket_init(struct kbs_bucket *b, unsigned burst, unsigned per_minute, int64_t now_ms)
{
	b->burst_milli = (int64_t)burst * 1000;
	b->per_minute = per_minute;
	b->milli = b->burst_milli;
	b->last_ms = now_ms;
}

bool kbs_bucket_take(struct kbs_bucket *b, int64_t now_ms)
{
	if (now_ms > b->last_ms) {
		/* one token is 1000 milli-tokens; per_minute tokens come in 60,000 ms */
		b->milli += (now_ms - b->last_ms) * (int64_t)b->per_minute / 60;
		if (b->milli > b->burst_milli)
			b->milli = b->burst_milli;
		b->last_ms = now_ms;
	}
	if (b->milli < 1000)
		return false;
	b->milli -= 1000;
	return true;
}

/* ---- log limiter ---- */

bool kbs_ratelog_allow(struct kbs_ratelog *r, int64_t now_ms)
{
	if (now_ms - r->window_ms >= KBS_RATELOG_WINDOW_MS && r->suppressed == 0) {
		r->window_ms = now_ms;
		r->logged = 0;
	}
	if (r->logged < KBS_RATELOG_LINES) {
		r->logged++;
		return true;
	}
	r->suppressed++;
	return false;
}

uint64_t kbs_ratelog_due(struct kbs_ratelog *r, int64_t now_ms)
{
	if (r->suppressed == 0 || now_ms - r->window_ms < KBS_RATELOG_WINDOW_MS)
		return 0;
	uint64_t n = r->suppressed;
	r->suppressed = 0;
	r->window_ms = now_ms;
	r->logged = 0;
	return n;
}
