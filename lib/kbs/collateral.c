/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where the broker gets collateral for a quote: memory, a PCCS (raw responses
 * kept in the store, through the keeper, so a restarted broker works while the
 * PCCS is down), the store's cache, and an offline directory (read once at start:
 * the network process that uses it cannot read the filesystem later). The first
 * source whose collateral is valid at the verification time wins; if none is, the
 * freshest expired set is handed on so that verification fails closed with a
 * precise reason.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/sha.h>
#include <openssl/x509.h>

#include "kbs/kbs-int.h"
#include "util/util.h"
#include "x509/x509.h"

/* Distinct (FMSPC, CA) entries kept in memory; the oldest is dropped beyond. */
#define COLL_MAX_ENTRIES 64
/* Bundles of the offline directory (one, or one per FMSPC) */
#define COLL_MAX_BUNDLES 64
/* After a failed PCCS fetch for an entry, do not try again for this long. */
#define PCCS_RETRY_S 60

struct ent {
	uint8_t fmspc[6];
	bool processor;
	bool has;
	struct tdc_collateral c;
	int64_t next_update;
	const char *source;
	int64_t last_fail; /* PCCS */
	bool tried_fetch;
};

/* FMSPC and PCK CA kind by SHA-256 of a quote's certification data (the PEM
 * chain): every quote of a platform carries the same chain, and parsing it with
 * OpenSSL costs more than the rest of a warm release together. */
#define FMSPC_CACHE 64

struct fmspc_ent {
	bool used;
	uint8_t key[32];
	uint8_t fmspc[6];
	bool processor_ca;
};

struct kbs_coll {
	pthread_mutex_t lock;
	struct fmspc_ent fm[FMSPC_CACHE];
	unsigned fm_next;
	char *dir;
	char *url, *ca;
	uint32_t timeout_ms;
	bool cache; /* the store's collateral cache, through the keeper */
	size_t n;
	struct ent ents[COLL_MAX_ENTRIES];
	/* the offline directory, as read at start (or why it could not be) */
	char dir_error[400];
	size_t nb;
	struct bundle {
		char name[13]; /* FMSPC in hex, or "" for a bundle that serves any */
		struct tdc_collateral c;
	} bundles[COLL_MAX_BUNDLES];
};

int kbs_quote_fmspc(const struct tdc_quote *q, uint8_t fmspc[6], bool *processor_ca,
		    struct tdc_error *e)
{
	STACK_OF(X509) *chain = NULL;
	struct tdc_pck_ext ext;
	TDC_GUARD(tdc_pem_chain_parse(tdc_rd_ptr(&q->cert_data), tdc_rd_len(&q->cert_data), 0,
				      &chain, e));
	int r = 0;
	if (sk_X509_num(chain) < 2)
		r = TDC_FAIL(e, TDC_E_FORMAT, "PCK chain has no issuer");
	if (r == 0)
		r = tdc_pck_ext_parse(sk_X509_value(chain, 0), &ext, e);
	if (r == 0) {
		memcpy(fmspc, ext.fmspc, 6);
		*processor_ca = tdc_x509_cn_contains(sk_X509_value(chain, 1), "Processor");
	}
	sk_X509_pop_free(chain, X509_free);
	return r;
}

int kbs_coll_quote_fmspc(struct kbs_coll *k, const struct tdc_quote *q, uint8_t fmspc[6],
			 bool *processor_ca, struct tdc_error *e)
{
	uint8_t key[32];
	SHA256(tdc_rd_ptr(&q->cert_data), tdc_rd_len(&q->cert_data), key);
	pthread_mutex_lock(&k->lock);
	for (unsigned i = 0; i < FMSPC_CACHE; i++) {
		if (k->fm[i].used && !memcmp(k->fm[i].key, key, sizeof(key))) {
			memcpy(fmspc, k->fm[i].fmspc, 6);
			*processor_ca = k->fm[i].processor_ca;
			pthread_mutex_unlock(&k->lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&k->lock);
	/* a miss parses outside the lock; failures are not cached */
	TDC_GUARD(kbs_quote_fmspc(q, fmspc, processor_ca, e));
	pthread_mutex_lock(&k->lock);
	struct fmspc_ent *en = &k->fm[k->fm_next++ % FMSPC_CACHE];
	en->used = true;
	memcpy(en->key, key, sizeof(key));
	memcpy(en->fmspc, fmspc, 6);
	en->processor_ca = *processor_ca;
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static int buf_copy(const struct tdc_buf *s, struct tdc_buf *d, struct tdc_error *e)
{
	d->data = NULL;
	d->len = 0;
	if (!s->data)
		return 0;
	d->data = malloc(s->len + 1);
	if (!d->data)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	memcpy(d->data, s->data, s->len);
	d->data[s->len] = 0;
	d->len = s->len;
	return 0;
}

int kbs_collateral_copy(const struct tdc_collateral *s, struct tdc_collateral *d,
			struct tdc_error *e)
{
	memset(d, 0, sizeof(*d));
	memcpy(d->tcb_info_sig, s->tcb_info_sig, 64);
	memcpy(d->qe_identity_sig, s->qe_identity_sig, 64);
	int r = buf_copy(&s->tcb_info, &d->tcb_info, e);
	if (r == 0)
		r = buf_copy(&s->tcb_info_chain, &d->tcb_info_chain, e);
	if (r == 0)
		r = buf_copy(&s->qe_identity, &d->qe_identity, e);
	if (r == 0)
		r = buf_copy(&s->qe_identity_chain, &d->qe_identity_chain, e);
	if (r == 0)
		r = buf_copy(&s->pck_crl, &d->pck_crl, e);
	if (r == 0)
		r = buf_copy(&s->pck_crl_chain, &d->pck_crl_chain, e);
	if (r == 0)
		r = buf_copy(&s->root_ca_crl, &d->root_ca_crl, e);
	if (r < 0)
		tdc_collateral_free(d);
	return r;
}

static int crl_next(const struct tdc_buf *der, int64_t *next, struct tdc_error *e)
{
	X509_CRL *crl = NULL;
	int64_t this_update;
	TDC_GUARD(tdc_crl_from_der(der->data, der->len, &crl, e));
	int r = tdc_crl_window(crl, &this_update, next, e);
	X509_CRL_free(crl);
	return r;
}

int kbs_collateral_next_update(const struct tdc_collateral *c, int64_t *out, struct tdc_error *e)
{
	struct tdc_tcb_info ti;
	struct tdc_qe_identity qi;
	int64_t n1, n2;

	memset(&ti, 0, sizeof(ti));
	memset(&qi, 0, sizeof(qi));
	int r = tdc_tcb_info_parse(c->tcb_info.data, c->tcb_info.len, &ti, e);
	if (r == 0)
		r = tdc_qe_identity_parse(c->qe_identity.data, c->qe_identity.len, &qi, e);
	if (r == 0) {
		*out = ti.next_update < qi.next_update ? ti.next_update : qi.next_update;
		r = crl_next(&c->pck_crl, &n1, e);
	}
	if (r == 0)
		r = crl_next(&c->root_ca_crl, &n2, e);
	if (r == 0) {
		if (n1 < *out)
			*out = n1;
		if (n2 < *out)
			*out = n2;
	}
	tdc_tcb_info_free(&ti);
	tdc_qe_identity_free(&qi);
	return r;
}

static void *xstrdup(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

static bool is_fmspc_name(const char *n)
{
	size_t i = 0;
	for (; n[i]; i++)
		if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f') ||
		      (n[i] >= 'A' && n[i] <= 'F')))
			return false;
	return i == 12;
}

/* A directory of <FMSPC>/ bundles, one bundle (a directory or a dcap-qvl JSON file), or
 * both; at least one must load. */
static int preload_dir(struct kbs_coll *k, struct tdc_error *e)
{
	struct tdc_error first;
	tdc_error_clear(&first);
	DIR *d = opendir(k->dir);
	for (struct dirent *de; d && (de = readdir(d)) != NULL && k->nb < COLL_MAX_BUNDLES;) {
		char path[4096];
		struct stat st;
		if (!is_fmspc_name(de->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", k->dir, de->d_name);
		if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		struct bundle *b = &k->bundles[k->nb];
		memset(b, 0, sizeof(*b));
		if (tdc_collateral_load(path, &b->c, first.code ? NULL : &first) < 0)
			continue;
		for (int i = 0; i < 12; i++)
			b->name[i] = (char)(de->d_name[i] | 0x20); /* lower case */
		k->nb++;
	}
	if (d)
		closedir(d);
	if (k->nb < COLL_MAX_BUNDLES) {
		struct bundle *b = &k->bundles[k->nb];
		memset(b, 0, sizeof(*b));
		if (tdc_collateral_load(k->dir, &b->c, k->nb || first.code ? NULL : &first) == 0)
			k->nb++;
	}
	if (k->nb)
		return 0;
	if (!first.code)
		return TDC_FAILF(e, TDC_E_IO, "no collateral in the offline directory", "%s", k->dir);
	if (e)
		*e = first;
	return first.code;
}

int kbs_coll_new(const char *dir, const struct kbs_pccs_opts *pccs, bool cache,
		 struct kbs_coll **out, struct tdc_error *e)
{
	struct kbs_coll *k = calloc(1, sizeof(*k));
	if (!k)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	pthread_mutex_init(&k->lock, NULL);
	k->dir = xstrdup(dir);
	if (pccs) {
		k->url = xstrdup(pccs->url);
		k->ca = xstrdup(pccs->ca_file);
		k->timeout_ms = pccs->timeout_ms;
	}
	k->cache = cache;
	if ((dir && *dir && !k->dir) || (pccs && pccs->url && !k->url)) {
		kbs_coll_free(k);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	/* an unreadable directory does not stop the broker (a PCCS may serve): every
	 * quote it would have served fails with this reason, which is logged at start */
	struct tdc_error de;
	tdc_error_clear(&de);
	if (k->dir && preload_dir(k, &de) < 0)
		tdc_error_format(&de, k->dir_error, sizeof(k->dir_error));
	*out = k;
	return 0;
}

void kbs_coll_free(struct kbs_coll *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++)
		tdc_collateral_free(&k->ents[i].c);
	for (size_t i = 0; i < k->nb; i++)
		tdc_collateral_free(&k->bundles[i].c);
	pthread_mutex_destroy(&k->lock);
	free(k->dir);
	free(k->url);
	free(k->ca);
	free(k);
}

static struct ent *find(struct kbs_coll *k, const uint8_t fmspc[6], bool processor)
{
	for (size_t i = 0; i < k->n; i++)
		if (!memcmp(k->ents[i].fmspc, fmspc, 6) && k->ents[i].processor == processor)
			return &k->ents[i];
	struct ent *en;
	if (k->n < COLL_MAX_ENTRIES) {
		en = &k->ents[k->n++];
	} else {
		/* drop the oldest entry (index 0) */
		tdc_collateral_free(&k->ents[0].c);
		memmove(&k->ents[0], &k->ents[1], (COLL_MAX_ENTRIES - 1) * sizeof(struct ent));
		en = &k->ents[COLL_MAX_ENTRIES - 1];
	}
	memset(en, 0, sizeof(*en));
	memcpy(en->fmspc, fmspc, 6);
	en->processor = processor;
	return en;
}

/* Takes c (moved) into en when it is fresher than what en holds. */
static void offer(struct ent *en, struct tdc_collateral *c, int64_t next, const char *source)
{
	if (en->has && en->next_update >= next) {
		tdc_collateral_free(c);
		return;
	}
	tdc_collateral_free(&en->c);
	en->c = *c;
	memset(c, 0, sizeof(*c));
	en->has = true;
	en->next_update = next;
	en->source = source;
}

/* ---- store cache of raw PCCS responses ---- */

struct piece {
	const char *kind;
	size_t off; /* of the struct tdc_buf in struct kbs_pccs_raw */
	int key;    /* 0: tcb/<fmspc>, 1: qe, 2: pckcrl/<ca>, 3: rootcacrl */
};

static const struct piece pieces[] = {
	{ "tcb_info", offsetof(struct kbs_pccs_raw, tcb_info), 0 },
	{ "tcb_info_chain", offsetof(struct kbs_pccs_raw, tcb_info_chain), 0 },
	{ "qe_identity", offsetof(struct kbs_pccs_raw, qe_identity), 1 },
	{ "qe_identity_chain", offsetof(struct kbs_pccs_raw, qe_identity_chain), 1 },
	{ "pck_crl", offsetof(struct kbs_pccs_raw, pck_crl), 2 },
	{ "pck_crl_chain", offsetof(struct kbs_pccs_raw, pck_crl_chain), 2 },
	{ "root_ca_crl", offsetof(struct kbs_pccs_raw, root_ca_crl), 3 },
};

static void piece_key(const struct piece *p, const uint8_t fmspc[6], bool processor, char *out,
		      size_t cap)
{
	char fm[13];
	tdc_hex_encode(fmspc, 6, fm);
	switch (p->key) {
	case 0: snprintf(out, cap, "tdx/tcb/%s", fm); break;
	case 1: snprintf(out, cap, "tdx/qe/identity"); break;
	case 2: snprintf(out, cap, "sgx/pckcrl/%s", processor ? "processor" : "platform"); break;
	default: snprintf(out, cap, "sgx/rootcacrl"); break;
	}
}

static struct tdc_buf *piece_buf(struct kbs_pccs_raw *r, const struct piece *p)
{
	return (struct tdc_buf *)((char *)r + p->off);
}

static int cache_put(const struct kbs_pccs_raw *raw, const uint8_t fmspc[6], bool processor,
		     int64_t next, int64_t now, struct tdc_error *e)
{
	char key[64];
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		const struct tdc_buf *b = piece_buf((struct kbs_pccs_raw *)raw, &pieces[i]);
		piece_key(&pieces[i], fmspc, processor, key, sizeof(key));
		TDC_GUARD(kbs_vault_cache_put(key, pieces[i].kind,
					      b->data ? b->data : (const uint8_t *)"", b->len, next,
					      now, e));
	}
	return 0;
}

static int cache_get(const uint8_t fmspc[6], bool processor, struct kbs_pccs_raw *raw,
		     struct tdc_error *e)
{
	char key[64];
	memset(raw, 0, sizeof(*raw));
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		struct tdc_buf *b = piece_buf(raw, &pieces[i]);
		int64_t next, fetched;
		bool found = false;
		piece_key(&pieces[i], fmspc, processor, key, sizeof(key));
		int r = kbs_vault_cache_get(key, pieces[i].kind, &b->data, &b->len, &next,
					    &fetched, &found, e);
		if (r == 0 && !found)
			r = TDC_FAILF(e, TDC_E_IO, "no cached collateral", "%s %s", key,
				      pieces[i].kind);
		if (r < 0) {
			kbs_pccs_raw_free(raw);
			return r;
		}
	}
	return 0;
}

/* ---- sources ---- */

static int from_raw(const struct kbs_pccs_raw *raw, struct tdc_collateral *c, int64_t *next,
		    struct tdc_error *e)
{
	TDC_GUARD(kbs_pccs_to_collateral(raw, c, e));
	int r = kbs_collateral_next_update(c, next, e);
	if (r < 0)
		tdc_collateral_free(c);
	return r;
}

static int from_pccs(struct kbs_coll *k, struct ent *en, int64_t now, struct tdc_error *e)
{
	struct kbs_pccs_raw raw;
	struct tdc_collateral c;
	int64_t next;
	struct kbs_pccs_opts o = { k->url, k->ca, k->timeout_ms };

	if (en->tried_fetch && now - en->last_fail < PCCS_RETRY_S && now >= en->last_fail)
		return TDC_FAIL(e, TDC_E_IO, "PCCS failed recently; not retrying yet");
	int r = kbs_pccs_fetch(&o, en->fmspc, en->processor, &raw, e);
	if (r == 0) {
		r = from_raw(&raw, &c, &next, e);
		if (r == 0 && k->cache)
			(void)cache_put(&raw, en->fmspc, en->processor, next, now, NULL);
		kbs_pccs_raw_free(&raw);
	}
	if (r < 0) {
		en->tried_fetch = true;
		en->last_fail = now;
		return r;
	}
	offer(en, &c, next, "pccs");
	return 0;
}

static int from_cache(struct ent *en, struct tdc_error *e)
{
	struct kbs_pccs_raw raw;
	struct tdc_collateral c;
	int64_t next;
	TDC_GUARD(cache_get(en->fmspc, en->processor, &raw, e));
	int r = from_raw(&raw, &c, &next, e);
	kbs_pccs_raw_free(&raw);
	if (r == 0)
		offer(en, &c, next, "cache");
	return r;
}

static int from_dir(struct kbs_coll *k, struct ent *en, struct tdc_error *e)
{
	char fm[13];
	struct tdc_collateral c;
	int64_t next;
	const struct bundle *b = NULL;

	/* the FMSPC's own bundle, else the one that serves any */
	tdc_hex_encode(en->fmspc, 6, fm);
	for (size_t i = 0; i < k->nb && !b; i++)
		if (!strcmp(k->bundles[i].name, fm))
			b = &k->bundles[i];
	for (size_t i = 0; i < k->nb && !b; i++)
		if (!k->bundles[i].name[0])
			b = &k->bundles[i];
	if (!b && k->dir_error[0])
		return TDC_FAILF(e, TDC_E_IO, "the offline collateral did not load", "%s",
				 k->dir_error);
	if (!b)
		return TDC_FAILF(e, TDC_E_IO, "no offline collateral for this FMSPC", "%s in %s", fm,
				 k->dir);
	TDC_GUARD(kbs_collateral_copy(&b->c, &c, e));
	int r = kbs_collateral_next_update(&c, &next, e);
	if (r < 0) {
		tdc_collateral_free(&c);
		return r;
	}
	offer(en, &c, next, "dir");
	return 0;
}

int kbs_coll_get(struct kbs_coll *k, const uint8_t fmspc[6], bool processor_ca, int64_t now,
		 struct tdc_collateral *out, struct kbs_coll_info *info, struct tdc_error *e)
{
	struct tdc_error first;
	int r;

	tdc_error_clear(&first);
	pthread_mutex_lock(&k->lock);
	struct ent *en = find(k, fmspc, processor_ca);
	bool fresh = en->has && now < en->next_update;
	const char *src = "memory";

	/* each source records the first error only, for the message below */
	if (!fresh && k->url) {
		if (from_pccs(k, en, now, &first) == 0)
			src = en->source;
		fresh = en->has && now < en->next_update;
	}
	if (!fresh && k->cache) {
		if (from_cache(en, first.code ? NULL : &first) == 0)
			src = en->source;
		fresh = en->has && now < en->next_update;
	}
	if (!fresh && k->dir) {
		if (from_dir(k, en, first.code ? NULL : &first) == 0)
			src = en->source;
		fresh = en->has && now < en->next_update;
	}
	if (!en->has) {
		char fm[13], d[300];
		r = first.code ? first.code : TDC_E_IO;
		tdc_error_set(e, r, TDC_NO_OFFSET, __FILE__, __LINE__, "no collateral",
			      "FMSPC %s: %s", tdc_hex_encode(fmspc, 6, fm),
			      first.code ? tdc_error_format(&first, d, sizeof(d)) :
					   "no source configured");
		pthread_mutex_unlock(&k->lock);
		return r;
	}
	r = kbs_collateral_copy(&en->c, out, e);
	info->source = src;
	info->next_update = en->next_update;
	pthread_mutex_unlock(&k->lock);
	return r;
}

const char *kbs_coll_dir_error(const struct kbs_coll *k)
{
	return k->dir_error[0] ? k->dir_error : NULL;
}
