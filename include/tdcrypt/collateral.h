/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Intel PCS/PCCS collateral: the raw pieces as served (what the signatures
 * cover), loaders for the three accepted forms, and typed parsers for
 * TCB Info v3 (TDX) and QE Identity v2 (TD_QE).
 * Parsing here checks shape only; signatures, chains and times are checked
 * by lib/verify.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "tdcrypt/error.h"
#include "util/limits.h"

enum tdc_tcb_status {
	TDC_TCB_UNKNOWN = 0,
	TDC_TCB_UP_TO_DATE,
	TDC_TCB_SW_HARDENING_NEEDED,
	TDC_TCB_CONFIGURATION_NEEDED,
	TDC_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED,
	TDC_TCB_OUT_OF_DATE,
	TDC_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED,
	TDC_TCB_REVOKED,
	TDC_TCB_TD_RELAUNCH_ADVISED,
	TDC_TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
	TDC_TCB__COUNT,
};

/* PCS spelling: "UpToDate", "SWHardeningNeeded", ... */
const char *tdc_tcb_status_name(enum tdc_tcb_status s);
/* Parses a PCS status string; unknown strings are TDC_E_FORMAT (fail closed). */
int tdc_tcb_status_parse(const char *s, enum tdc_tcb_status *out, struct tdc_error *e)
	TDC_MUST_USE;

struct tdc_advisories {
	size_t n;
	char (*id)[TDC_MAX_ADVISORY_LEN + 1]; /* malloc'd array of n NUL-terminated IDs */
};

/* Platform TCB level of a TDX TCB Info. */
struct tdc_tcb_level {
	uint8_t sgx_svn[16];
	uint16_t pcesvn;
	uint8_t tdx_svn[16];
	int64_t tcb_date;
	enum tdc_tcb_status status;
	struct tdc_advisories advisories;
};

/* A level keyed by one ISV SVN (QE identity, TDX module identity). */
struct tdc_isv_level {
	uint16_t isvsvn;
	int64_t tcb_date;
	enum tdc_tcb_status status;
	struct tdc_advisories advisories;
};

struct tdc_module_identity {
	char id[16]; /* "TDX_01", ... */
	uint8_t mrsigner[48];
	uint8_t attributes[8];
	uint8_t attributes_mask[8];
	size_t n_levels;
	struct tdc_isv_level *levels;
};

struct tdc_tcb_info {
	char id[8]; /* "TDX" */
	unsigned version; /* 3 */
	int64_t issue_date;
	int64_t next_update;
	uint8_t fmspc[6];
	uint8_t pce_id[2];
	unsigned tcb_type;
	uint32_t tcb_eval_num;
	bool has_tdx_module;
	uint8_t module_mrsigner[48];
	uint8_t module_attributes[8];
	uint8_t module_attributes_mask[8];
	size_t n_modules;
	struct tdc_module_identity *modules;
	size_t n_levels;
	struct tdc_tcb_level *levels; /* in document order (PCS: newest first) */
};

struct tdc_qe_identity {
	char id[16]; /* "TD_QE" */
	unsigned version; /* 2 */
	int64_t issue_date;
	int64_t next_update;
	uint32_t tcb_eval_num;
	uint8_t miscselect[4];
	uint8_t miscselect_mask[4];
	uint8_t attributes[16];
	uint8_t attributes_mask[16];
	uint8_t mrsigner[32];
	uint16_t isvprodid;
	size_t n_levels;
	struct tdc_isv_level *levels;
};

/* Parses the inner tcbInfo object (the exact signed bytes). */
int tdc_tcb_info_parse(const uint8_t *json, size_t len, struct tdc_tcb_info *out,
		       struct tdc_error *e) TDC_MUST_USE;
void tdc_tcb_info_free(struct tdc_tcb_info *t);
/* Parses the inner enclaveIdentity object (the exact signed bytes). */
int tdc_qe_identity_parse(const uint8_t *json, size_t len, struct tdc_qe_identity *out,
			  struct tdc_error *e) TDC_MUST_USE;
void tdc_qe_identity_free(struct tdc_qe_identity *q);

void tdc_advisories_free(struct tdc_advisories *a);
/* Appends the IDs of src not yet in dst. */
int tdc_advisories_merge(struct tdc_advisories *dst, const struct tdc_advisories *src,
			 struct tdc_error *e) TDC_MUST_USE;

struct tdc_buf {
	uint8_t *data; /* malloc'd, NUL-terminated beyond len for text */
	size_t len;
};

/* Raw collateral for one quote, normalised: JSON as the exact signed bytes,
 * signatures as raw r||s, chains as PEM, CRLs as DER. */
struct tdc_collateral {
	struct tdc_buf tcb_info;          /* inner tcbInfo object */
	uint8_t tcb_info_sig[64];
	struct tdc_buf tcb_info_chain;    /* PEM: TCB Signing cert, then root */
	struct tdc_buf qe_identity;       /* inner enclaveIdentity object */
	uint8_t qe_identity_sig[64];
	struct tdc_buf qe_identity_chain; /* PEM: TCB Signing cert, then root */
	struct tdc_buf pck_crl;           /* DER */
	struct tdc_buf pck_crl_chain;     /* PEM: PCK CA, root (may be empty) */
	struct tdc_buf root_ca_crl;       /* DER */
};

void tdc_collateral_free(struct tdc_collateral *c);

/*
 * Splits a PCS response body {"<key>":{...},"signature":"<128 hex>"} into
 * the exact bytes of the inner object and the raw signature. key is
 * "tcbInfo" or "enclaveIdentity". The inner bytes are never re-serialised.
 */
int tdc_pcs_body_split(const uint8_t *body, size_t len, const char *key, struct tdc_buf *inner,
		       uint8_t sig[64], struct tdc_error *e) TDC_MUST_USE;

/* Normalises a CRL given as DER, PEM, or hex-encoded DER (PCCS rootcacrl) to DER. */
int tdc_crl_to_der(const uint8_t *in, size_t len, struct tdc_buf *der, struct tdc_error *e)
	TDC_MUST_USE;

/* Normalises an issuer chain given as PEM or URL-encoded PEM (HTTP header value). */
int tdc_chain_to_pem(const uint8_t *in, size_t len, struct tdc_buf *pem, struct tdc_error *e)
	TDC_MUST_USE;

/* dcap-qvl "QuoteCollateralV3" JSON bundle (see ../shared/testdata/tdx/README.md). */
int tdc_collateral_from_dcap_qvl_json(const uint8_t *json, size_t len, struct tdc_collateral *c,
				      struct tdc_error *e) TDC_MUST_USE;

/*
 * Directory bundle, one file per PCS/PCCS response (names in docs):
 *   tcb_info.json            PCS body {"tcbInfo":...,"signature":...}
 *   tcb_info_issuer_chain.pem  TCB-Info-Issuer-Chain (PEM or URL-encoded)
 *   qe_identity.json         PCS body {"enclaveIdentity":...,"signature":...}
 *   qe_identity_issuer_chain.pem  (optional: defaults to the TCB info chain)
 *   pck_crl.der              PCK CRL (DER, PEM or hex)
 *   pck_crl_issuer_chain.pem (optional)
 *   root_ca_crl.der          Root CA CRL (DER, PEM or hex)
 */
int tdc_collateral_from_dir(const char *dir, struct tdc_collateral *c, struct tdc_error *e)
	TDC_MUST_USE;

/* A path that is a directory (bundle) or a file (dcap-qvl JSON). */
int tdc_collateral_load(const char *path, struct tdc_collateral *c, struct tdc_error *e)
	TDC_MUST_USE;
