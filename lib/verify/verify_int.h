/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of lib/verify: the verifier object, the content-addressed cache
 * of verified collateral, PCK chains and QE reports, validity windows, and the
 * checks of each verification step (one file per job).
 *
 * Caching rule: an entry holds only time-independent verdicts (signatures,
 * chains, CRL membership, parsing) plus the validity windows of everything
 * it relied on. The windows are re-checked against `now` on every call; a
 * time verdict is never cached.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tdcrypt/verify.h"
#include "x509/x509.h"

/* ---- validity windows (cache.c) ---- */

#define VFY_MAX_WINDOWS 8

struct vfy_window {
	const char *what; /* static name: "PCK CRL", "TCB info", ... */
	int64_t not_before, not_after;
};

struct vfy_windows {
	size_t n;
	struct vfy_window w[VFY_MAX_WINDOWS];
};

void vfy_windows_add(struct vfy_windows *ws, const char *what, int64_t not_before,
		     int64_t not_after);
/* Appends every window of src. */
void vfy_windows_merge(struct vfy_windows *dst, const struct vfy_windows *src);
/* TDC_E_EXPIRED naming the first window that does not contain now. */
int vfy_windows_check(const struct vfy_windows *ws, int64_t now, struct tdc_error *e)
	TDC_MUST_USE;
/* Earliest not_after (INT64_MAX when empty). */
int64_t vfy_windows_not_after(const struct vfy_windows *ws);

/* ---- content-addressed cache (cache.c) ---- */

enum vfy_kind {
	VFY_ROOT_CRL,
	VFY_PCK_CRL,
	VFY_TCB_INFO,
	VFY_QE_IDENTITY,
	VFY_PCK,
	VFY_ATT_KEY, /* attestation keys: stable per QE, so repeated quotes of a platform hit */
	VFY_QE_REPORT, /* step 4: byte-identical in every quote of one platform's QE */
	VFY__KINDS,
};

/* Entries per kind; the least recently used one is evicted. */
#define VFY_CACHE_SLOTS 64

/* One input of a cache key. */
struct vfy_part {
	const void *p; /* may be NULL when len is 0 */
	size_t len;
};

/*
 * A cache key: the exact bytes a step depends on, as parts (not copied). An entry
 * is found only by byte equality with the inputs it was built from (each part with
 * its length, so different splits of the same bytes differ); the fingerprint, a
 * few sampled bytes and the lengths, only picks the candidates to compare. Byte
 * equality costs a memcmp where a SHA-256 of the same ~15 KB of collateral and PCK
 * chain cost a sixth of a warm verification, and it needs no collision resistance.
 */
struct vfy_key {
	const struct vfy_part *parts;
	size_t n;
	size_t len;  /* of the serialised form: each part as u64 length || bytes */
	uint64_t fp;
};

void vfy_key_init(struct vfy_key *k, const struct vfy_part *parts, size_t n);

/* Embedded first in every cached object. The inputs are immutable once inserted;
 * refs and used are atomics, so that lookups share the cache's lock. */
struct vfy_entry {
	uint64_t fp;
	uint8_t *in;   /* the serialised key the entry was built from */
	size_t in_len;
	atomic_uint refs;
	atomic_uint_fast64_t used; /* the cache clock when last looked up (LRU) */
	void (*destroy)(struct vfy_entry *ent);
};

/* Copies k into ent (refs = 1); TDC_E_NOMEM. Every destroy calls vfy_entry_fini. */
int vfy_entry_init(struct vfy_entry *ent, const struct vfy_key *k,
		   void (*destroy)(struct vfy_entry *ent), struct tdc_error *e) TDC_MUST_USE;
void vfy_entry_fini(struct vfy_entry *ent);
/* ent's own key, as one part of a dependent entry's key. */
struct vfy_part vfy_entry_part(const struct vfy_entry *ent);

/*
 * Lookups take the lock shared and only touch atomics; inserts and evictions
 * take it exclusive. The clock advances on inserts only, so a lookup writes
 * nothing shared but the entry's reference count (and its stamp once after
 * each insert): concurrent verifications do not serialise on the cache.
 */
struct vfy_cache {
	pthread_rwlock_t lock;
	atomic_uint_fast64_t clock;
	struct vfy_entry *slot[VFY__KINDS][VFY_CACHE_SLOTS];
};

int vfy_cache_init(struct vfy_cache *c, struct tdc_error *e) TDC_MUST_USE;
void vfy_cache_fini(struct vfy_cache *c);
/* Returns a referenced entry built from exactly k's bytes, or NULL. */
struct vfy_entry *vfy_cache_get(struct vfy_cache *c, enum vfy_kind kind, const struct vfy_key *k);
/*
 * Inserts ent (owned by the caller, refs = 1) and returns the entry to use,
 * still referenced once for the caller: ent itself, or an equal-keyed entry
 * another thread inserted first (ent is then destroyed).
 */
struct vfy_entry *vfy_cache_put(struct vfy_cache *c, enum vfy_kind kind, struct vfy_entry *ent);
void vfy_cache_release(struct vfy_cache *c, struct vfy_entry *ent);

/* ---- the verifier ---- */

struct tdc_verifier {
	X509 *root;
	bool test_root;
	uint32_t min_tcb_eval_num;
	int64_t root_not_before, root_not_after;
	EVP_MD *sha256;
	struct vfy_cache cache;
	atomic_uint_fast64_t collateral_hits, collateral_misses;
	atomic_uint_fast64_t pck_hits, pck_misses;
	atomic_uint_fast64_t qe_report_hits, qe_report_misses;
};

/* SHA-256 of a || b (the QE report data binding). */
int vfy_sha256(const struct tdc_verifier *v, const void *a, size_t alen, const void *b,
	       size_t blen, uint8_t out[32], struct tdc_error *e) TDC_MUST_USE;

/* ---- collateral (collateral_check.c) ---- */

struct vfy_crl_ent {
	struct vfy_entry base;
	X509_CRL *crl;
	struct vfy_windows win;
};

struct vfy_tcb_ent {
	struct vfy_entry base;
	struct tdc_tcb_info info;
	struct vfy_windows win;
};

struct vfy_qe_ent {
	struct vfy_entry base;
	struct tdc_qe_identity id;
	struct vfy_windows win;
};

/* Root CA CRL: parsed, signed by the trust anchor. Windows checked at now. */
int vfy_root_crl(struct tdc_verifier *v, const struct tdc_buf *der, int64_t now,
		 struct vfy_crl_ent **out, struct tdc_error *e) TDC_MUST_USE;
/* PCK CRL: parsed only (its issuer is checked against the quote's PCK chain). */
int vfy_pck_crl(struct tdc_verifier *v, const struct tdc_buf *der, struct vfy_crl_ent **out,
		struct tdc_error *e) TDC_MUST_USE;
/* TCB info: chain, signature, id/version, window, evaluation number. */
int vfy_tcb_info(struct tdc_verifier *v, const struct tdc_collateral *c,
		 const struct vfy_crl_ent *root_crl, int64_t now, struct vfy_tcb_ent **out,
		 struct tdc_error *e) TDC_MUST_USE;
/* QE identity: same checks. */
int vfy_qe_identity(struct tdc_verifier *v, const struct tdc_collateral *c,
		    const struct vfy_crl_ent *root_crl, int64_t now, struct vfy_qe_ent **out,
		    struct tdc_error *e) TDC_MUST_USE;
/* Verifies a TCB Signing issuer chain (PEM: signing cert, root) at now with the root CRL,
 * and returns the signing key plus the windows used. Shared by TCB info and QE identity. */
int vfy_signing_chain(struct tdc_verifier *v, const struct tdc_buf *pem,
		      const struct vfy_crl_ent *root_crl, int64_t now, const char *what,
		      EVP_PKEY **key, struct vfy_windows *win, struct tdc_error *e) TDC_MUST_USE;
/* Checks that cert is byte-identical to the trust anchor. */
int vfy_is_root(const struct tdc_verifier *v, X509 *cert, const char *what, struct tdc_error *e)
	TDC_MUST_USE;

/* ---- PCK chain (pck.c) ---- */

struct vfy_pck_ent {
	struct vfy_entry base;
	EVP_PKEY *leaf_key;
	uint8_t leaf_sha256[32]; /* of the leaf's DER: the QE report entry's key part */
	int64_t leaf_not_before, leaf_not_after;
	struct tdc_pck_ext ext;
	bool processor_ca;
	struct vfy_windows win;
};

/* The quote's PCK chain verified to the trust anchor with both CRLs at now. */
int vfy_pck_chain(struct tdc_verifier *v, const struct tdc_quote *q,
		  const struct vfy_crl_ent *root_crl, const struct tdc_buf *pck_crl_der,
		  int64_t now, struct vfy_pck_ent **out, struct tdc_error *e) TDC_MUST_USE;
/* FMSPC and PCE-ID of the PCK certificate must equal the TCB info's. */
int vfy_pck_matches_tcb_info(const struct tdc_pck_ext *ext, const struct tdc_tcb_info *ti,
			     struct tdc_error *e) TDC_MUST_USE;

/* ---- the QE report, step 4 (qe_report.c) ---- */

struct vfy_match;

int vfy_qe_report_signature(EVP_PKEY *pck_key, const struct tdc_quote *q, struct tdc_error *e)
	TDC_MUST_USE;
int vfy_qe_binding(const struct tdc_verifier *v, const struct tdc_quote *q, struct tdc_error *e)
	TDC_MUST_USE;

/* A verified QE report: time-independent verdicts and the windows they relied on. */
struct vfy_qe_report_ent {
	struct vfy_entry base;
	size_t qe_level;         /* index of the matched level in the QE identity's levels */
	struct vfy_windows win;  /* the QE identity's and the PCK certificate's */
};

/*
 * Step 4: the QE report signed by the PCK leaf's key, its report data binding the
 * attestation key and QE auth data, and the QE identity match (sets m->qe_level).
 * Cached by exactly what it depends on: the QE report, its signature, the
 * attestation key, the QE auth data, the PCK leaf (its DER's SHA-256) and the QE
 * identity entry's key; the windows are checked at now on every call.
 */
int vfy_qe_report(struct tdc_verifier *v, const struct tdc_quote *q,
		  const struct vfy_pck_ent *pck, const struct vfy_qe_ent *qe, int64_t now,
		  struct vfy_match *m, struct tdc_error *e) TDC_MUST_USE;

/* ---- the quote signature, step 5 (quote_check.c) ---- */

/* The attestation key is imported (and validated as a P-256 point) once per key. */
int vfy_quote_signature(struct tdc_verifier *v, const struct tdc_quote *q, struct tdc_error *e)
	TDC_MUST_USE;

/* ---- TCB matching (tcb_match.c) ---- */

struct vfy_match {
	const struct tdc_module_identity *module;  /* NULL when TEE_TCB_SVN[1] == 0 */
	const struct tdc_isv_level *module_level;  /* NULL when module is NULL */
	const struct tdc_isv_level *qe_level;
	const struct tdc_tcb_level *sgx_level;     /* first level matching SGX comps + PCESVN */
	const struct tdc_tcb_level *tdx_level;     /* first level also matching the TDX comps */
};

/* Step 11 (first half): MRSIGNERSEAM / SEAMATTRIBUTES against the module identity. */
int vfy_match_module_identity(const struct tdc_tcb_info *ti, const struct tdc_quote *q,
			      struct vfy_match *m, struct tdc_error *e) TDC_MUST_USE;
/* Step 9: QE report against the QE identity, and the QE TCB level. */
int vfy_match_qe(const struct tdc_qe_identity *qi, const struct tdc_qe_report *r,
		 struct vfy_match *m, struct tdc_error *e) TDC_MUST_USE;
/* Step 12 and the module TCB level. */
int vfy_match_platform(const struct tdc_tcb_info *ti, const struct tdc_pck_ext *ext,
		       const struct tdc_quote *q, struct vfy_match *m, struct tdc_error *e)
	TDC_MUST_USE;
/* Step 13: combined status (Intel's convergence, TD 1.5 relaunch check). */
int vfy_combine(const struct tdc_tcb_info *ti, const struct tdc_quote *q,
		const struct vfy_match *m, enum tdc_tcb_status *out, struct tdc_error *e)
	TDC_MUST_USE;
