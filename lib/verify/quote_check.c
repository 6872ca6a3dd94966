/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The quote's own signature by the attestation key (step 5, Intel's step 10).
 * It runs on every call: each quote is new, only the imported key is cached.
 */
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "verify/verify_int.h"

struct vfy_key_ent {
	struct vfy_entry base;
	EVP_PKEY *key;
};

static void key_ent_destroy(struct vfy_entry *ent)
{
	struct vfy_key_ent *k = (struct vfy_key_ent *)ent;
	EVP_PKEY_free(k->key);
	vfy_entry_fini(&k->base);
	free(k);
}

static int attestation_key(struct tdc_verifier *v, const struct tdc_quote *q,
			   struct vfy_key_ent **out, struct tdc_error *e)
{
	struct vfy_key id;
	const struct vfy_part parts[] = { { q->attestation_key, sizeof(q->attestation_key) } };
	vfy_key_init(&id, parts, 1);
	struct vfy_entry *hit = vfy_cache_get(&v->cache, VFY_ATT_KEY, &id);
	if (hit) {
		*out = (struct vfy_key_ent *)hit;
		return 0;
	}
	struct vfy_key_ent *k = calloc(1, sizeof(*k));
	if (!k)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	int rc = vfy_entry_init(&k->base, &id, key_ent_destroy, e);
	if (rc == 0)
		rc = tdc_p256_key_from_raw(q->attestation_key, &k->key, e);
	if (rc < 0) {
		key_ent_destroy(&k->base);
		return rc;
	}
	*out = (struct vfy_key_ent *)vfy_cache_put(&v->cache, VFY_ATT_KEY, &k->base);
	return 0;
}

int vfy_quote_signature(struct tdc_verifier *v, const struct tdc_quote *q, struct tdc_error *e)
{
	struct vfy_key_ent *k = NULL;
	TDC_GUARD(attestation_key(v, q, &k, e));
	if (!k)
		return TDC_FAIL(e, TDC_E_INTERNAL, "attestation key cache returned nothing");
	int rc = tdc_ecdsa_p256_verify(k->key, tdc_rd_ptr(&q->signed_bytes),
				       tdc_rd_len(&q->signed_bytes), q->signature,
				       "quote signature", e);
	vfy_cache_release(&v->cache, &k->base);
	return rc;
}
