/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TDX DCAP quote v4 / v5 parser (layout: shared/reference/tdx-quote-verification.md, A1).
 * Every byte goes through the bounded reader; nested structures are parsed from
 * sub-views and must be consumed exactly. Only the outer quote may carry trailing
 * bytes after the signature data (Intel QVL ignores them); they are recorded, never hashed.
 */
#include <stdbool.h>
#include <string.h>

#include "tdcrypt/quote.h"
#include "util/limits.h"

const uint8_t tdc_intel_qe_vendor_id[16] = {
	0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
	0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
};

static uint64_t le64(const uint8_t b[8])
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

uint64_t tdc_td_attributes(const struct tdc_td_report *td)
{
	return le64(td->td_attributes);
}

uint64_t tdc_td_xfam(const struct tdc_td_report *td)
{
	return le64(td->xfam);
}

const char *tdc_td_attribute_name(unsigned bit)
{
	switch (bit) {
	case 0:
		return "DEBUG";
	case 28:
		return "SEPT_VE_DISABLE";
	case 29:
		return "MIGRATABLE";
	case 30:
		return "PKS";
	case 31:
		return "KL";
	case 62:
		return "TPA";
	case 63:
		return "PERFMON";
	default:
		return NULL;
	}
}

/*
 * Reads a length field and checks it against what is left in r, so that an
 * oversized length is reported at the length field itself, not further on.
 */
static int read_len32(struct tdc_rd *r, uint32_t *out, const char *field, struct tdc_error *e)
{
	size_t off = tdc_rd_offset(r);
	TDC_GUARD(tdc_rd_u32le(r, out, field, e));
	if (*out > tdc_rd_remaining(r))
		return TDC_FAIL_AT(e, TDC_E_FORMAT, off, "length exceeds the enclosing structure",
				   "%s = %u, only %zu bytes follow", field, *out,
				   tdc_rd_remaining(r));
	return 0;
}

/*
 * What kind of quote this is, before anything else is judged (PROTOCOL.md section 4.5):
 * the TEE type decides first, so an SGX quote is named as one and not reported as a
 * version or key-type mismatch. Versions 1-3 exist only for SGX (EPID v1/v2, ECDSA v3);
 * in them bytes 4..7 are not a TEE type (reserved or the EPID group), so the version
 * alone identifies them.
 */
int tdc_quote_check_type(struct tdc_rd *r, struct tdc_quote_type *t, struct tdc_error *e)
{
	if (!r || !t)
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_quote_check_type: NULL argument");
	memset(t, 0, sizeof(*t));
	size_t at = tdc_rd_offset(r);
	TDC_GUARD(tdc_rd_u16le(r, &t->version, "header.version", e));
	TDC_GUARD(tdc_rd_u16le(r, &t->att_key_type, "header.att_key_type", e));
	TDC_GUARD(tdc_rd_u32le(r, &t->tee_type, "header.tee_type", e));

	bool sgx_only_version = t->version >= 1 && t->version <= 3;
	if (t->tee_type == TDC_TEE_TYPE_SGX)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, at + 4, "SGX quote (TEE type 0x0), not TDX",
				   "header.tee_type = 0x%08x (SGX), header.version = %u; a TDX quote "
				   "has tee_type 0x00000081",
				   t->tee_type, t->version);
	if (t->tee_type != TDC_TEE_TYPE_TDX && sgx_only_version)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, at, "SGX quote (TEE type 0x0), not TDX",
				   "header.version = %u is an SGX-only format (its bytes 4..7, "
				   "0x%08x, are not a TEE type); a TDX quote is version 4 or 5 with "
				   "tee_type 0x00000081",
				   t->version, t->tee_type);
	if (t->tee_type != TDC_TEE_TYPE_TDX)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, at + 4, "not a TDX quote",
				   "header.tee_type = 0x%08x (unknown TEE), expected 0x00000081 (TDX)",
				   t->tee_type);
	if (t->version != 4 && t->version != 5)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, at, "unsupported quote version",
				   "header.version = %u, expected 4 or 5 (TDX quote, tee_type 0x81)",
				   t->version);
	if (t->att_key_type != TDC_ATT_KEY_ECDSA_P256)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, at + 2, "unsupported attestation key type",
				   "header.att_key_type = %u, expected 2 (ECDSA P-256)",
				   t->att_key_type);
	return 0;
}

static int parse_header(struct tdc_rd *r, struct tdc_quote *q, struct tdc_error *e)
{
	struct tdc_quote_type t;
	TDC_GUARD(tdc_quote_check_type(r, &t, e));
	q->version = t.version;
	q->att_key_type = t.att_key_type;
	q->tee_type = t.tee_type;

	/* was QE SVN / PCE SVN in v3; reserved since v4 and deliberately not interpreted */
	TDC_GUARD(tdc_rd_skip(r, 4, "header.reserved", e));

	size_t off = tdc_rd_offset(r);
	TDC_GUARD(tdc_rd_copy(r, q->qe_vendor_id, 16, "header.qe_vendor_id", e));
	if (memcmp(q->qe_vendor_id, tdc_intel_qe_vendor_id, 16) != 0)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, off, "unknown QE vendor",
				   "header.qe_vendor_id is not Intel's "
				   "939a7233f79c4ca9940a0db3957f0607");

	return tdc_rd_copy(r, q->user_data, 20, "header.user_data", e);
}

/* v5 only: body type and size; returns the body size to expect. */
static int parse_v5_body_desc(struct tdc_rd *r, struct tdc_quote *q, uint32_t *size,
			      struct tdc_error *e)
{
	size_t off = tdc_rd_offset(r);
	TDC_GUARD(tdc_rd_u16le(r, &q->body_type, "body.type", e));
	uint32_t want;
	switch (q->body_type) {
	case TDC_BODY_TD10:
		want = TDC_TD_REPORT10_SIZE;
		break;
	case TDC_BODY_TD15:
		want = TDC_TD_REPORT15_SIZE;
		break;
	case TDC_BODY_SGX:
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, off, "SGX report body in a TDX quote",
				   "body.type = 1 (SGX enclave report); TDX needs 2 or 3");
	default:
		return TDC_FAIL_AT(e, TDC_E_FORMAT, off, "unknown quote body type",
				   "body.type = %u, expected 2 (TD 1.0) or 3 (TD 1.5)",
				   q->body_type);
	}

	off = tdc_rd_offset(r);
	TDC_GUARD(tdc_rd_u32le(r, size, "body.size", e));
	if (*size != want)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, off, "body size does not match body type",
				   "body.size = %u, type %u needs %u", *size, q->body_type, want);
	return 0;
}

static int parse_td_report(struct tdc_rd *r, size_t size, struct tdc_td_report *td,
			   struct tdc_error *e)
{
	struct tdc_rd b;
	TDC_GUARD(tdc_rd_sub(r, size, &b, "td_report", e));
	TDC_GUARD(tdc_rd_copy(&b, td->tee_tcb_svn, 16, "td_report.tee_tcb_svn", e));
	TDC_GUARD(tdc_rd_copy(&b, td->mrseam, 48, "td_report.mrseam", e));
	TDC_GUARD(tdc_rd_copy(&b, td->mrsignerseam, 48, "td_report.mrsignerseam", e));
	TDC_GUARD(tdc_rd_copy(&b, td->seam_attributes, 8, "td_report.seam_attributes", e));
	TDC_GUARD(tdc_rd_copy(&b, td->td_attributes, 8, "td_report.td_attributes", e));
	TDC_GUARD(tdc_rd_copy(&b, td->xfam, 8, "td_report.xfam", e));
	TDC_GUARD(tdc_rd_copy(&b, td->mrtd, 48, "td_report.mrtd", e));
	TDC_GUARD(tdc_rd_copy(&b, td->mrconfigid, 48, "td_report.mrconfigid", e));
	TDC_GUARD(tdc_rd_copy(&b, td->mrowner, 48, "td_report.mrowner", e));
	TDC_GUARD(tdc_rd_copy(&b, td->mrownerconfig, 48, "td_report.mrownerconfig", e));
	static const char *const rtmr_names[4] = {
		"td_report.rtmr0", "td_report.rtmr1", "td_report.rtmr2", "td_report.rtmr3",
	};
	for (int i = 0; i < 4; i++)
		TDC_GUARD(tdc_rd_copy(&b, td->rtmr[i], 48, rtmr_names[i], e));
	TDC_GUARD(tdc_rd_copy(&b, td->report_data, 64, "td_report.report_data", e));
	if (size == TDC_TD_REPORT15_SIZE) {
		td->is_td15 = true;
		TDC_GUARD(tdc_rd_copy(&b, td->tee_tcb_svn2, 16, "td_report.tee_tcb_svn2", e));
		TDC_GUARD(tdc_rd_copy(&b, td->mrservicetd, 48, "td_report.mrservicetd", e));
	}
	return tdc_rd_end(&b, "td_report", e);
}

/* SGX REPORTBODY (384 bytes) of the quoting enclave. */
static int parse_qe_report(struct tdc_rd *r, struct tdc_quote *q, struct tdc_error *e)
{
	struct tdc_qe_report *qe = &q->qe_report;
	struct tdc_rd b;
	TDC_GUARD(tdc_rd_sub(r, TDC_SGX_REPORT_SIZE, &b, "qe_report", e));
	q->qe_report_bytes = b;
	TDC_GUARD(tdc_rd_copy(&b, qe->cpu_svn, 16, "qe_report.cpu_svn", e));
	TDC_GUARD(tdc_rd_copy(&b, qe->miscselect, 4, "qe_report.miscselect", e));
	TDC_GUARD(tdc_rd_skip(&b, 12, "qe_report.reserved1", e));
	TDC_GUARD(tdc_rd_skip(&b, 16, "qe_report.isv_ext_prod_id", e));
	TDC_GUARD(tdc_rd_copy(&b, qe->attributes, 16, "qe_report.attributes", e));
	TDC_GUARD(tdc_rd_copy(&b, qe->mr_enclave, 32, "qe_report.mr_enclave", e));
	TDC_GUARD(tdc_rd_skip(&b, 32, "qe_report.reserved2", e));
	TDC_GUARD(tdc_rd_copy(&b, qe->mr_signer, 32, "qe_report.mr_signer", e));
	TDC_GUARD(tdc_rd_skip(&b, 32, "qe_report.reserved3", e));
	TDC_GUARD(tdc_rd_skip(&b, 64, "qe_report.config_id", e));
	TDC_GUARD(tdc_rd_u16le(&b, &qe->isv_prod_id, "qe_report.isv_prod_id", e));
	TDC_GUARD(tdc_rd_u16le(&b, &qe->isv_svn, "qe_report.isv_svn", e));
	TDC_GUARD(tdc_rd_skip(&b, 2, "qe_report.config_svn", e));
	TDC_GUARD(tdc_rd_skip(&b, 42, "qe_report.reserved4", e));
	TDC_GUARD(tdc_rd_skip(&b, 16, "qe_report.isv_family_id", e));
	TDC_GUARD(tdc_rd_copy(&b, qe->report_data, 64, "qe_report.report_data", e));
	return tdc_rd_end(&b, "qe_report", e);
}

/* Certification data type 5: the PEM PCK chain (leaf, intermediate, root). */
static int parse_pck_chain(struct tdc_rd *r, struct tdc_quote *q, struct tdc_error *e)
{
	size_t off = tdc_rd_offset(r);
	TDC_GUARD(tdc_rd_u16le(r, &q->cert_type, "qe_cert_data.cert_type", e));
	if (q->cert_type != TDC_CERT_TYPE_PCK_CHAIN) {
		/* 1..4 are legal for Intel but give no PCK chain to verify offline */
		int code = q->cert_type >= 1 && q->cert_type <= 4 ? TDC_E_UNSUPPORTED
								   : TDC_E_FORMAT;
		return TDC_FAIL_AT(e, code, off, "unsupported inner certification data type",
				   "qe_cert_data.cert_type = %u, expected 5 (PCK cert chain)",
				   q->cert_type);
	}

	off = tdc_rd_offset(r);
	uint32_t m;
	TDC_GUARD(tdc_rd_u32le(r, &m, "qe_cert_data.size", e));
	if (m > TDC_MAX_PCK_CHAIN_SIZE)
		return TDC_FAIL_AT(e, TDC_E_LIMIT, off, "PCK chain too large",
				   "qe_cert_data.size = %u, limit %u", m, TDC_MAX_PCK_CHAIN_SIZE);
	if (m > tdc_rd_remaining(r))
		return TDC_FAIL_AT(e, TDC_E_FORMAT, off, "length exceeds the enclosing structure",
				   "qe_cert_data.size = %u, only %zu bytes follow", m,
				   tdc_rd_remaining(r));
	TDC_GUARD(tdc_rd_sub(r, m, &q->cert_data, "qe_cert_data.pck_chain", e));
	tdc_rd_trim_trailing(&q->cert_data, 0);
	if (tdc_rd_len(&q->cert_data) == 0)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, tdc_rd_offset(&q->cert_data),
				   "empty PCK chain", "qe_cert_data.pck_chain has no PEM bytes");
	return 0;
}

/* Certification data type 6: QE report, its PCK signature, QE auth data, PCK chain. */
static int parse_qe_cert_data(struct tdc_rd *r, struct tdc_quote *q, struct tdc_error *e)
{
	TDC_GUARD(parse_qe_report(r, q, e));
	TDC_GUARD(tdc_rd_copy(r, q->qe_report_signature, 64, "qe_report_signature", e));

	size_t off = tdc_rd_offset(r);
	uint16_t a;
	TDC_GUARD(tdc_rd_u16le(r, &a, "qe_auth_data.size", e));
	if (a > TDC_MAX_QE_AUTH_DATA)
		return TDC_FAIL_AT(e, TDC_E_LIMIT, off, "QE auth data too large",
				   "qe_auth_data.size = %u, limit %u", a, TDC_MAX_QE_AUTH_DATA);
	if (a > tdc_rd_remaining(r))
		return TDC_FAIL_AT(e, TDC_E_FORMAT, off, "length exceeds the enclosing structure",
				   "qe_auth_data.size = %u, only %zu bytes follow", a,
				   tdc_rd_remaining(r));
	TDC_GUARD(tdc_rd_sub(r, a, &q->qe_auth_data, "qe_auth_data", e));

	TDC_GUARD(parse_pck_chain(r, q, e));
	/* Intel checks that the inner structure fills the outer certification data exactly */
	return tdc_rd_end(r, "certification data (type 6)", e);
}

/* ECDSA-P256 signature data (sgx_ecdsa_sig_data_v4_t). */
static int parse_sig_data(struct tdc_rd *r, struct tdc_quote *q, struct tdc_error *e)
{
	TDC_GUARD(tdc_rd_copy(r, q->signature, 64, "sig_data.signature", e));
	TDC_GUARD(tdc_rd_copy(r, q->attestation_key, 64, "sig_data.attestation_key", e));

	size_t off = tdc_rd_offset(r);
	uint16_t type;
	TDC_GUARD(tdc_rd_u16le(r, &type, "sig_data.cert_type", e));
	if (type != TDC_CERT_TYPE_QE_REPORT)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, off, "wrong certification data type",
				   "sig_data.cert_type = %u, expected 6 (QE report certification "
				   "data)", type);

	uint32_t n;
	TDC_GUARD(read_len32(r, &n, "sig_data.cert_size", e));
	struct tdc_rd cert;
	TDC_GUARD(tdc_rd_sub(r, n, &cert, "sig_data.cert_data", e));
	TDC_GUARD(parse_qe_cert_data(&cert, q, e));
	return tdc_rd_end(r, "signature data", e);
}

int tdc_quote_parse(const uint8_t *buf, size_t len, struct tdc_quote *q, struct tdc_error *e)
{
	if (!q || (!buf && len))
		return TDC_FAIL(e, TDC_E_USAGE, "tdc_quote_parse: NULL argument");
	memset(q, 0, sizeof(*q));
	if (len > TDC_MAX_QUOTE_SIZE)
		return TDC_FAIL_AT(e, TDC_E_LIMIT, TDC_MAX_QUOTE_SIZE, "quote too large",
				   "%zu bytes, limit %u", len, TDC_MAX_QUOTE_SIZE);

	struct tdc_rd r;
	tdc_rd_init(&r, buf, len);
	size_t start = tdc_rd_mark(&r);

	TDC_GUARD(parse_header(&r, q, e));
	uint32_t body_size = TDC_TD_REPORT10_SIZE;
	if (q->version == 5)
		TDC_GUARD(parse_v5_body_desc(&r, q, &body_size, e));
	else
		q->body_type = TDC_BODY_TD10;
	TDC_GUARD(parse_td_report(&r, body_size, &q->td, e));
	TDC_GUARD(tdc_rd_since(&r, start, &q->signed_bytes, e));

	uint32_t sig_len;
	TDC_GUARD(read_len32(&r, &sig_len, "sig_data_len", e));
	struct tdc_rd sig;
	TDC_GUARD(tdc_rd_sub(&r, sig_len, &sig, "sig_data", e));
	TDC_GUARD(parse_sig_data(&sig, q, e));

	q->total_len = tdc_rd_offset(&r);
	q->trailing_len = tdc_rd_remaining(&r);
	return 0;
}
