/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The QGS message protocol (Intel DCAP qgs_msg_lib; tdx-quote-verification.md
 * A5): a 4-byte big-endian length, then a little-endian message with a 16-byte
 * header {u16 major, u16 minor, u32 type, u32 size, u32 error_code}.
 */
#include <stdlib.h>

#include "agent-int.h"
#include "util/wr.h"

#define QGS_MAJOR 1u
#define QGS_MINOR 1u

int tdc_qgs_encode_get_quote_req(const uint8_t *report, size_t report_len, uint8_t **out,
				 size_t *len, struct tdc_error *e)
{
	struct tdc_wr w;
	if (!report || report_len == 0 || report_len > TDC_TDREPORT_SIZE)
		return TDC_FAIL(e, TDC_E_USAGE, "bad TDREPORT size");
	uint32_t size = (uint32_t)(TDC_QGS_HEADER_SIZE + 8u + report_len);
	tdc_wr_init_alloc(&w, 4u + size);
	tdc_wr_u32be(&w, size);
	tdc_wr_u16le(&w, QGS_MAJOR);
	tdc_wr_u16le(&w, QGS_MINOR);
	tdc_wr_u32le(&w, TDC_QGS_GET_QUOTE_REQ);
	tdc_wr_u32le(&w, size);
	tdc_wr_u32le(&w, 0); /* error_code: responses only */
	tdc_wr_u32le(&w, (uint32_t)report_len);
	tdc_wr_u32le(&w, 0); /* id_list_size: let the QGS pick */
	tdc_wr_bytes(&w, report, report_len);
	return tdc_wr_finish(&w, out, len, e);
}

int tdc_qgs_frame_len(const uint8_t prefix[4], uint32_t *msg_len, struct tdc_error *e)
{
	struct tdc_rd r;
	tdc_rd_init(&r, prefix, 4);
	TDC_GUARD(tdc_rd_u32be(&r, msg_len, "qgs.length", e));
	if (*msg_len < TDC_QGS_HEADER_SIZE)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 0, "QGS message shorter than its header",
				   "%u bytes", *msg_len);
	if (*msg_len > TDC_MAX_QGS_MESSAGE)
		return TDC_FAIL_AT(e, TDC_E_LIMIT, 0, "QGS message too large", "%u bytes, limit %u",
				   *msg_len, TDC_MAX_QGS_MESSAGE);
	return 0;
}

int tdc_qgs_decode_get_quote_resp(const uint8_t *msg, size_t len, struct tdc_rd *quote,
				  struct tdc_error *e)
{
	struct tdc_rd r, id;
	uint16_t major, minor;
	uint32_t type, size, err, id_size, quote_size;

	tdc_rd_init(&r, msg, len);
	TDC_GUARD(tdc_rd_u16le(&r, &major, "qgs.major_version", e));
	TDC_GUARD(tdc_rd_u16le(&r, &minor, "qgs.minor_version", e));
	if (major != QGS_MAJOR)
		return TDC_FAIL_AT(e, TDC_E_UNSUPPORTED, 0, "unsupported QGS message version",
				   "%u.%u", major, minor);
	TDC_GUARD(tdc_rd_u32le(&r, &type, "qgs.type", e));
	if (type != TDC_QGS_GET_QUOTE_RESP)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 4, "QGS message is not GET_QUOTE_RESP",
				   "type %u", type);
	TDC_GUARD(tdc_rd_u32le(&r, &size, "qgs.size", e));
	if (size != len)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 8, "QGS message size mismatch",
				   "header says %u, got %zu", size, len);
	TDC_GUARD(tdc_rd_u32le(&r, &err, "qgs.error_code", e));
	if (err != 0)
		return TDC_FAIL_AT(e, TDC_E_IO, 12, "QGS returned an error", "error_code 0x%x",
				   err);
	TDC_GUARD(tdc_rd_u32le(&r, &id_size, "qgs.selected_id_size", e));
	TDC_GUARD(tdc_rd_u32le(&r, &quote_size, "qgs.quote_size", e));
	if (quote_size == 0)
		return TDC_FAIL_AT(e, TDC_E_FORMAT, 20, "QGS returned an empty quote", "%s", "");
	if (quote_size > TDC_MAX_QUOTE_SIZE)
		return TDC_FAIL_AT(e, TDC_E_LIMIT, 20, "QGS quote too large", "%u bytes, limit %u",
				   quote_size, TDC_MAX_QUOTE_SIZE);
	TDC_GUARD(tdc_rd_sub(&r, id_size, &id, "qgs.selected_id", e));
	TDC_GUARD(tdc_rd_sub(&r, quote_size, quote, "qgs.quote", e));
	return tdc_rd_end(&r, "qgs.trailing", e);
}
