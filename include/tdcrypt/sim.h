/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Synthetic DCAP PKI for tests and the quote simulator: a root CA, a PCK
 * Platform CA, a TCB signing certificate, a PCK leaf with the SGX extension
 * and a QE attestation key (all EC P-256, made with OpenSSL), and generators
 * for TDX quotes (v4/v5) and collateral (TCB info, QE identity, CRLs) signed
 * by them. Every field a verifier checks has a knob in struct tdc_sim_opts,
 * so a test can start from a baseline that verifies UpToDate and break one
 * thing. Nothing here is trusted by production code: a verifier accepts it
 * only with tdc_verifier_opts.test_root_der = tdc_sim_root_der().
 * Times are always injected (opts); the wall clock is never read.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/collateral.h"
#include "tdcrypt/error.h"
#include "tdcrypt/quote.h"

#define TDC_SIM_MAX_LEVELS 8
#define TDC_SIM_MAX_ADVISORIES 4
#define TDC_SIM_MAX_MODULES 4
#define TDC_SIM_MAX_REVOKED 8

/* The verifier finds each certificate's role by the substrings Intel uses
 * ("Intel SGX PCK Platform CA", "SGX PCK Certificate", "Intel SGX TCB Signing");
 * the "tdcrypt SIM" prefix and O=tdcrypt simulation mark them as simulated. */
#define TDC_SIM_ROOT_CN "tdcrypt simulated SGX Root CA"
#define TDC_SIM_PCK_CA_CN "tdcrypt SIM Intel SGX PCK Platform CA"
#define TDC_SIM_PCK_CN "tdcrypt SIM Intel SGX PCK Certificate"
#define TDC_SIM_TCB_SIGNER_CN "tdcrypt SIM Intel SGX TCB Signing"

/* [from, to] in seconds since the epoch: notBefore/notAfter, thisUpdate/nextUpdate
 * or issueDate/nextUpdate. */
struct tdc_sim_window {
	int64_t from, to;
};

/* A level keyed by one ISV SVN (QE identity, TDX module identity). Status is
 * the raw PCS string, so tests can also emit unknown ones. Advisories: the
 * first NULL ends the list. */
struct tdc_sim_isv_level {
	uint16_t isvsvn;
	int64_t tcb_date;
	const char *status;
	const char *advisories[TDC_SIM_MAX_ADVISORIES];
};

struct tdc_sim_tcb_level {
	uint8_t sgx_svn[16];
	uint16_t pcesvn;
	uint8_t tdx_svn[16];
	int64_t tcb_date;
	const char *status;
	const char *advisories[TDC_SIM_MAX_ADVISORIES];
};

struct tdc_sim_module {
	const char *id; /* "TDX_01" */
	uint8_t mrsigner[48];
	uint8_t attributes[8];
	uint8_t attributes_mask[8];
	size_t n_levels;
	struct tdc_sim_isv_level levels[TDC_SIM_MAX_LEVELS];
};

/* TCB Info v3 (TDX), emitted compact in Intel's field order. */
struct tdc_sim_tcb_info {
	const char *id;      /* "TDX" */
	unsigned version;    /* 3 */
	struct tdc_sim_window dates; /* issueDate, nextUpdate */
	uint8_t fmspc[6];
	uint8_t pce_id[2];
	bool fmspc_lower;    /* emit fmspc in lower case (PCS responses vary) */
	unsigned tcb_type;
	uint32_t tcb_eval_num;
	bool has_tdx_module;
	uint8_t module_mrsigner[48];
	uint8_t module_attributes[8];
	uint8_t module_attributes_mask[8];
	bool has_module_identities; /* emit "tdxModuleIdentities" (absent in 2023 data) */
	size_t n_modules;
	struct tdc_sim_module modules[TDC_SIM_MAX_MODULES];
	size_t n_levels;
	struct tdc_sim_tcb_level levels[TDC_SIM_MAX_LEVELS];
};

/* QE Identity v2 (TD_QE). */
struct tdc_sim_qe_identity {
	const char *id;      /* "TD_QE" */
	unsigned version;    /* 2 */
	struct tdc_sim_window dates;
	uint32_t tcb_eval_num;
	uint8_t miscselect[4];
	uint8_t miscselect_mask[4];
	uint8_t attributes[16];
	uint8_t attributes_mask[16];
	uint8_t mrsigner[32];
	uint16_t isvprodid;
	size_t n_levels;
	struct tdc_sim_isv_level levels[TDC_SIM_MAX_LEVELS];
};

/* Contents of the PCK leaf's SGX extension (7 entries, Platform-CA style). */
struct tdc_sim_pck {
	uint8_t ppid[16];
	uint8_t sgx_svn[16];
	uint16_t pcesvn;
	uint8_t cpusvn[16];
	uint8_t pce_id[2];
	uint8_t fmspc[6];
	int sgx_type;
	uint8_t platform_instance_id[16];
	bool dynamic_platform, cached_keys, smt_enabled;
};

/* The QE report (SGX REPORTBODY) the PCK key signs. */
struct tdc_sim_qe_report {
	uint8_t cpu_svn[16];
	uint8_t miscselect[4];
	uint8_t attributes[16];
	uint8_t mr_enclave[32];
	uint8_t mr_signer[32];
	uint16_t isv_prod_id;
	uint16_t isv_svn;
	uint16_t config_svn;
};

/* Who issues a CRL (issuer DN and signing key). */
enum tdc_sim_crl_issuer {
	TDC_SIM_CRL_PROPER = 0, /* root CRL: the root; PCK CRL: the PCK CA */
	TDC_SIM_CRL_BY_ROOT,    /* issuer = root DN, signed by the root */
	TDC_SIM_CRL_BY_PCK_CA,  /* issuer = PCK CA DN, signed by the PCK CA */
	TDC_SIM_CRL_FORGED,     /* proper issuer DN, signed by an unrelated key */
};

/* How the TCB signing certificate is issued. */
enum tdc_sim_signer_issuer {
	TDC_SIM_SIGNER_PROPER = 0,  /* by the root */
	TDC_SIM_SIGNER_OTHER_ROOT,  /* by another root (other DN, other key) */
	TDC_SIM_SIGNER_FORGED,      /* root's DN and key id, but another key signs */
};

struct tdc_sim_opts {
	/* --- PKI (tdc_sim_pki_new) --- */
	struct tdc_sim_window root_validity;
	struct tdc_sim_window pck_ca_validity;
	struct tdc_sim_window tcb_signer_validity;
	struct tdc_sim_window pck_validity;
	struct tdc_sim_pck pck;
	enum tdc_sim_signer_issuer tcb_signer_issuer;

	/* --- quote (tdc_sim_quote) --- */
	uint16_t quote_version;  /* 4 or 5 */
	uint16_t body_type;      /* v5 only: 2 (TD 1.0) or 3 (TD 1.5) */
	uint16_t att_key_type;   /* 2 */
	uint32_t tee_type;       /* 0x81 */
	uint8_t qe_vendor_id[16];
	uint8_t user_data[20];
	struct tdc_td_report td; /* is_td15 is ignored: body_type decides */
	struct tdc_sim_qe_report qe;
	uint16_t cert_data_type;  /* outer certification data type, 6 */
	uint16_t inner_cert_type; /* inner, 5 (PEM chain) */
	size_t qe_auth_data_len;  /* <= 64; content 00 01 02 .. */
	bool pem_trailing_nul;    /* end the PEM chain with a NUL, as real quotes do */
	size_t trailing_bytes;    /* zero bytes after the signature data */
	bool break_qe_binding;    /* flip a bit of the QE report data hash */
	bool break_qe_report_sig; /* flip a bit of the QE report signature */
	bool break_quote_sig;     /* flip a bit of the quote signature */

	/* --- collateral (tdc_sim_collateral) --- */
	struct tdc_sim_tcb_info tcb_info;
	struct tdc_sim_qe_identity qe_identity;
	bool tcb_info_other_key;    /* TCB info signed by a key other than the signer's */
	bool qe_identity_other_key;
	struct tdc_sim_window root_crl_window;
	struct tdc_sim_window pck_crl_window;
	enum tdc_sim_crl_issuer root_crl_issuer;
	enum tdc_sim_crl_issuer pck_crl_issuer;
	bool pck_revoked;           /* the PCK leaf's serial on the PCK CRL */
	bool pck_ca_revoked;        /* the PCK CA's serial on the root CRL */
	bool tcb_signer_revoked;    /* the TCB signer's serial on the root CRL */
	size_t n_other_revoked;     /* unrelated serials on both CRLs */
	uint64_t other_revoked[TDC_SIM_MAX_REVOKED];
};

/*
 * Fills a baseline at time now: windows around now, one PCK platform whose
 * TCB matches the newest TCB level (UpToDate), TDX module TDX_01, a TD_QE
 * identity shaped like Intel's, a v4 quote. A quote and collateral made from
 * it verify UpToDate at now.
 */
void tdc_sim_opts_default(struct tdc_sim_opts *o, int64_t now);

struct tdc_sim_pki;

/* Generates all keys and certificates. */
int tdc_sim_pki_new(const struct tdc_sim_opts *o, struct tdc_sim_pki **out, struct tdc_error *e)
	TDC_MUST_USE;
void tdc_sim_pki_free(struct tdc_sim_pki *pki);

/* DER of the simulated root (owned by pki): tdc_verifier_opts.test_root_der. */
void tdc_sim_root_der(const struct tdc_sim_pki *pki, const uint8_t **der, size_t *len);

/*
 * Builds a signed quote from o (header, TD report, QE report signed by the
 * PCK key, attestation key binding, PEM chain leaf ‖ PCK CA ‖ root).
 * *out is malloc'd; free with free().
 */
int tdc_sim_quote(const struct tdc_sim_pki *pki, const struct tdc_sim_opts *o, uint8_t **out,
		  size_t *len, struct tdc_error *e) TDC_MUST_USE;

/*
 * Builds collateral for quotes of this PKI: TCB info and QE identity JSON
 * (compact, Intel field order) with raw r‖s signatures, issuer chains (PEM),
 * PCK CRL and root CRL (DER). c is overwritten; free with tdc_collateral_free.
 */
int tdc_sim_collateral(const struct tdc_sim_pki *pki, const struct tdc_sim_opts *o,
		       struct tdc_collateral *c, struct tdc_error *e) TDC_MUST_USE;

/* The PCS response body {"tcbInfo":<json>,"signature":"<hex>"} (and the same for
 * "enclaveIdentity"), as served, built from collateral fields. malloc'd, NUL-terminated. */
int tdc_sim_pcs_body(const char *key, const struct tdc_buf *inner, const uint8_t sig[64],
		     struct tdc_buf *out, struct tdc_error *e) TDC_MUST_USE;

/*
 * Writes c as a collateral directory bundle (the file names of
 * tdc_collateral_from_dir: PCS bodies, issuer chains, DER CRLs) into dir
 * (created if missing). Existing files are replaced.
 */
int tdc_sim_collateral_save(const struct tdc_collateral *c, const char *dir, struct tdc_error *e)
	TDC_MUST_USE;

/*
 * Stores the PKI in dir (created if missing, mode 0700): certificates as PEM
 * (0644) and private keys as PKCS#8 PEM (0600). Existing files are replaced.
 */
int tdc_sim_pki_save(const struct tdc_sim_pki *pki, const char *dir, struct tdc_error *e)
	TDC_MUST_USE;
/* Loads a PKI saved by tdc_sim_pki_save; checks that each key matches its certificate. */
int tdc_sim_pki_load(const char *dir, struct tdc_sim_pki **out, struct tdc_error *e)
	TDC_MUST_USE;
