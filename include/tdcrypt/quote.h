/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TDX DCAP quote v4 / v5 parser. Pure parsing: no OpenSSL, no I/O.
 * The parsed quote holds copies of every fixed-size field and bounded views
 * (struct tdc_rd) into the caller's buffer for the variable parts, so the
 * buffer must outlive the struct.
 * Layout: ../shared/reference/tdx-quote-verification.md, part A1.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "tdcrypt/error.h"
#include "util/rd.h"

#define TDC_QUOTE_HEADER_SIZE 48
#define TDC_TD_REPORT10_SIZE 584
#define TDC_TD_REPORT15_SIZE 648
#define TDC_SGX_REPORT_SIZE 384
#define TDC_TEE_TYPE_TDX 0x00000081u
#define TDC_TEE_TYPE_SGX 0x00000000u
#define TDC_ATT_KEY_ECDSA_P256 2
#define TDC_CERT_TYPE_QE_REPORT 6
#define TDC_CERT_TYPE_PCK_CHAIN 5

enum tdc_body_type {
	TDC_BODY_SGX = 1,
	TDC_BODY_TD10 = 2, /* TD report 1.0, 584 bytes (v4 always) */
	TDC_BODY_TD15 = 3, /* TD report 1.5, 648 bytes (v5 only) */
};

/* TD attributes bits (TDATTRIBUTES, little-endian u64). */
#define TDC_TDATTR_DEBUG (1ull << 0)
#define TDC_TDATTR_SEPT_VE_DISABLE (1ull << 28)
#define TDC_TDATTR_MIGRATABLE (1ull << 29)
#define TDC_TDATTR_PKS (1ull << 30)
#define TDC_TDATTR_KL (1ull << 31)
#define TDC_TDATTR_TPA (1ull << 62)
#define TDC_TDATTR_PERFMON (1ull << 63)

struct tdc_td_report {
	uint8_t tee_tcb_svn[16];
	uint8_t mrseam[48];
	uint8_t mrsignerseam[48];
	uint8_t seam_attributes[8];
	uint8_t td_attributes[8];
	uint8_t xfam[8];
	uint8_t mrtd[48];
	uint8_t mrconfigid[48];
	uint8_t mrowner[48];
	uint8_t mrownerconfig[48];
	uint8_t rtmr[4][48];
	uint8_t report_data[64];
	/* TD report 1.5 only (zero otherwise) */
	bool is_td15;
	uint8_t tee_tcb_svn2[16];
	uint8_t mrservicetd[48];
};

/* SGX REPORTBODY of the TD quoting enclave. */
struct tdc_qe_report {
	uint8_t cpu_svn[16];
	uint8_t miscselect[4]; /* in-memory (little-endian) byte order, as collateral hex */
	uint8_t attributes[16];
	uint8_t mr_enclave[32];
	uint8_t mr_signer[32];
	uint16_t isv_prod_id;
	uint16_t isv_svn;
	uint8_t report_data[64];
};

struct tdc_quote {
	/* header */
	uint16_t version;
	uint16_t att_key_type;
	uint32_t tee_type;
	uint8_t qe_vendor_id[16];
	uint8_t user_data[20];
	/* body */
	uint16_t body_type; /* enum tdc_body_type; 2 for v4 */
	struct tdc_td_report td;
	/* header || (v5: type || size ||) body: what the attestation key signs */
	struct tdc_rd signed_bytes;
	/* signature data */
	uint8_t signature[64];       /* r || s, big-endian */
	uint8_t attestation_key[64]; /* x || y, big-endian */
	struct tdc_rd qe_report_bytes; /* the 384 bytes the PCK key signs */
	struct tdc_qe_report qe_report;
	uint8_t qe_report_signature[64];
	struct tdc_rd qe_auth_data;
	uint16_t cert_type;        /* inner certification data type (5) */
	struct tdc_rd cert_data;   /* PEM chain, trailing NUL bytes removed */
	/* bookkeeping */
	size_t total_len;          /* bytes consumed by the quote structure */
	size_t trailing_len;       /* ignored bytes after the signature data */
};

/* The first 8 header bytes: what kind of quote it is. */
struct tdc_quote_type {
	uint16_t version;
	uint16_t att_key_type;
	uint32_t tee_type; /* bytes 4..7; not a TEE type in the SGX-only versions 1-3 */
};

/*
 * Reads the first 8 header bytes at r's cursor into t and fails (TDC_E_UNSUPPORTED)
 * unless they name a quote tdc_quote_parse accepts: TDX (tee_type 0x81), version 4 or
 * 5, ECDSA P-256. The TEE type is judged first, so an SGX quote (tee_type 0, or one of
 * the SGX-only versions 1-3) fails as "SGX quote (TEE type 0x0), not TDX", never as a
 * version or key type mismatch; then the version, then the key type. Offsets in e are
 * absolute (r's base), so a sub-view of a larger structure gives offsets in it.
 * tdc_quote_parse starts with this check.
 */
int tdc_quote_check_type(struct tdc_rd *r, struct tdc_quote_type *t, struct tdc_error *e)
	TDC_MUST_USE;

/*
 * Parses and structurally validates a quote: TDX TEE type, version 4/5 and
 * ECDSA-P256 key type (in this order, tdc_quote_check_type), Intel QE vendor
 * ID, v5 body type/size, outer certification data type 6 filled exactly,
 * inner type 5, all lengths inside the buffer. Trailing bytes after the
 * signature data are allowed and recorded (never hashed). Errors carry the
 * absolute offset and field name.
 */
int tdc_quote_parse(const uint8_t *buf, size_t len, struct tdc_quote *q, struct tdc_error *e)
	TDC_MUST_USE;

/* TDATTRIBUTES / XFAM as integers. */
uint64_t tdc_td_attributes(const struct tdc_td_report *td);
uint64_t tdc_td_xfam(const struct tdc_td_report *td);

/* Name of a TD attribute bit ("DEBUG", "SEPT_VE_DISABLE", ...) or NULL if reserved. */
const char *tdc_td_attribute_name(unsigned bit);

/* Intel's QE vendor ID. */
extern const uint8_t tdc_intel_qe_vendor_id[16];
