/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt quote show FILE [--json]: parse a quote (binary or hex text, FILE may
 * be "-" for stdin) and print every field. Parsing only: nothing is verified.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "tdcrypt/quote.h"
#include "util/limits.h"
#include "util/util.h"

#define LABEL_WIDTH 22

static void usage(FILE *f)
{
	fprintf(f, "usage: tdcrypt quote show FILE [--json]\n"
		   "  FILE  binary quote, or hex text (optionally 0x-prefixed); '-' reads stdin\n");
}

/* ---- human output ---- */

static void kv(const char *label, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kv(const char *label, const char *fmt, ...)
{
	char l[64];
	snprintf(l, sizeof(l), "%s:", label);
	printf("%-*s ", LABEL_WIDTH, l);
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void kv_hex(const char *label, const uint8_t *b, size_t n)
{
	char h[2 * 128 + 1];
	if (n > 128)
		n = 128;
	kv(label, "%s", tdc_hex_encode(b, n, h));
}

/* "DEBUG|SEPT_VE_DISABLE|bit5" or "none" */
static const char *attr_flags(uint64_t v, char *out, size_t len)
{
	size_t used = 0;
	out[0] = '\0';
	for (unsigned bit = 0; bit < 64; bit++) {
		if (!(v & (1ull << bit)))
			continue;
		const char *name = tdc_td_attribute_name(bit);
		char tmp[16];
		if (!name) {
			snprintf(tmp, sizeof(tmp), "bit%u", bit);
			name = tmp;
		}
		int w = snprintf(out + used, len - used, "%s%s", used ? "|" : "", name);
		if (w < 0 || (size_t)w >= len - used)
			break;
		used += (size_t)w;
	}
	if (!used)
		snprintf(out, len, "none");
	return out;
}

static const char *body_type_name(uint16_t t)
{
	switch (t) {
	case TDC_BODY_TD10:
		return "TD report 1.0";
	case TDC_BODY_TD15:
		return "TD report 1.5";
	default:
		return "?";
	}
}

static void print_human(const struct tdc_quote *q)
{
	const struct tdc_td_report *td = &q->td;
	const struct tdc_qe_report *qe = &q->qe_report;
	char h[2 * 128 + 1], flags[512];

	kv("version", "%u", q->version);
	kv("att_key_type", "%u (ECDSA-256-with-P-256)", q->att_key_type);
	kv("tee_type", "0x%08x (TDX)", q->tee_type);
	kv("qe_vendor_id", "%s (Intel)", tdc_hex_encode(q->qe_vendor_id, 16, h));
	kv_hex("user_data", q->user_data, 20);
	kv("body_type", "%u (%s)", q->body_type, body_type_name(q->body_type));
	kv("signed_bytes", "%zu", tdc_rd_len(&q->signed_bytes));

	kv_hex("TEE_TCB_SVN", td->tee_tcb_svn, 16);
	kv_hex("MRSEAM", td->mrseam, 48);
	kv_hex("MRSIGNERSEAM", td->mrsignerseam, 48);
	kv_hex("SEAMATTRIBUTES", td->seam_attributes, 8);
	kv("TDATTRIBUTES", "%s (%s)", tdc_hex_encode(td->td_attributes, 8, h),
	   attr_flags(tdc_td_attributes(td), flags, sizeof(flags)));
	kv_hex("XFAM", td->xfam, 8);
	kv_hex("MRTD", td->mrtd, 48);
	kv_hex("MRCONFIGID", td->mrconfigid, 48);
	kv_hex("MROWNER", td->mrowner, 48);
	kv_hex("MROWNERCONFIG", td->mrownerconfig, 48);
	for (int i = 0; i < 4; i++) {
		char l[16];
		snprintf(l, sizeof(l), "RTMR%d", i);
		kv_hex(l, td->rtmr[i], 48);
	}
	kv_hex("REPORTDATA", td->report_data, 64);
	if (td->is_td15) {
		kv_hex("TEE_TCB_SVN2", td->tee_tcb_svn2, 16);
		kv_hex("MRSERVICETD", td->mrservicetd, 48);
	}

	kv_hex("signature", q->signature, 64);
	kv_hex("attestation_key", q->attestation_key, 64);
	kv("cert_data_type", "%u (QE report certification data)", TDC_CERT_TYPE_QE_REPORT);
	kv_hex("qe_cpusvn", qe->cpu_svn, 16);
	kv_hex("qe_miscselect", qe->miscselect, 4);
	kv_hex("qe_attributes", qe->attributes, 16);
	kv_hex("qe_mrenclave", qe->mr_enclave, 32);
	kv_hex("qe_mrsigner", qe->mr_signer, 32);
	kv("qe_isvprodid", "%u", qe->isv_prod_id);
	kv("qe_isvsvn", "%u", qe->isv_svn);
	kv_hex("qe_report_data", qe->report_data, 64);
	kv_hex("qe_report_signature", q->qe_report_signature, 64);
	kv("qe_auth_data_size", "%zu", tdc_rd_len(&q->qe_auth_data));
	if (tdc_rd_len(&q->qe_auth_data) <= 128)
		kv_hex("qe_auth_data", tdc_rd_ptr(&q->qe_auth_data), tdc_rd_len(&q->qe_auth_data));
	kv("cert_type", "%u (PCK certificate chain)", q->cert_type);
	kv("pck_chain_size", "%zu bytes (trailing NULs removed)", tdc_rd_len(&q->cert_data));
	kv("quote_size", "%zu", q->total_len);
	kv("trailing_bytes", "%zu", q->trailing_len);
}

/* ---- JSON output ---- */

/* The add helpers do nothing once *r is set, so a builder checks once at the end. */
static void add(struct json_object *o, const char *key, struct json_object *v, int *r)
{
	if (*r == 0 && v && json_object_object_add(o, key, v) == 0)
		return;
	json_object_put(v);
	*r = TDC_E_NOMEM;
}

static void add_hex(struct json_object *o, const char *key, const uint8_t *b, size_t n, int *r)
{
	char *h = *r == 0 ? malloc(2 * n + 1) : NULL;
	add(o, key, h ? json_object_new_string(tdc_hex_encode(b, n, h)) : NULL, r);
	free(h);
}

static void add_int(struct json_object *o, const char *key, int64_t v, int *r)
{
	add(o, key, *r == 0 ? json_object_new_int64(v) : NULL, r);
}

static struct json_object *td_attributes_json(const struct tdc_td_report *td)
{
	static const struct {
		const char *key;
		uint64_t bit;
	} flags[] = {
		{ "debug", TDC_TDATTR_DEBUG },
		{ "sept_ve_disable", TDC_TDATTR_SEPT_VE_DISABLE },
		{ "migratable", TDC_TDATTR_MIGRATABLE },
		{ "pks", TDC_TDATTR_PKS },
		{ "kl", TDC_TDATTR_KL },
		{ "tpa", TDC_TDATTR_TPA },
		{ "perfmon", TDC_TDATTR_PERFMON },
	};
	uint64_t v = tdc_td_attributes(td), known = 0;
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	int r = 0;
	add_hex(o, "hex", td->td_attributes, 8, &r);
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		known |= flags[i].bit;
		bool set = (v & flags[i].bit) != 0;
		add(o, flags[i].key, r ? NULL : json_object_new_boolean(set), &r);
	}
	/* set bits without a name are reserved; a policy usually rejects them */
	struct json_object *rsv = r ? NULL : json_object_new_array();
	for (unsigned bit = 0; rsv && bit < 64; bit++) {
		if (!((v & ~known) & (1ull << bit)))
			continue;
		struct json_object *n = json_object_new_int((int)bit);
		if (!n || json_object_array_add(rsv, n) != 0) {
			json_object_put(n);
			r = TDC_E_NOMEM;
			break;
		}
	}
	add(o, "reserved_bits", rsv, &r);
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *td_report_json(const struct tdc_td_report *td)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	int r = 0;
	add_hex(o, "tee_tcb_svn", td->tee_tcb_svn, 16, &r);
	add_hex(o, "mr_seam", td->mrseam, 48, &r);
	add_hex(o, "mr_signer_seam", td->mrsignerseam, 48, &r);
	add_hex(o, "seam_attributes", td->seam_attributes, 8, &r);
	add(o, "td_attributes", td_attributes_json(td), &r);
	add_hex(o, "xfam", td->xfam, 8, &r);
	add_hex(o, "mr_td", td->mrtd, 48, &r);
	add_hex(o, "mr_config_id", td->mrconfigid, 48, &r);
	add_hex(o, "mr_owner", td->mrowner, 48, &r);
	add_hex(o, "mr_owner_config", td->mrownerconfig, 48, &r);
	add_hex(o, "rtmr0", td->rtmr[0], 48, &r);
	add_hex(o, "rtmr1", td->rtmr[1], 48, &r);
	add_hex(o, "rtmr2", td->rtmr[2], 48, &r);
	add_hex(o, "rtmr3", td->rtmr[3], 48, &r);
	add_hex(o, "report_data", td->report_data, 64, &r);
	if (td->is_td15) {
		add_hex(o, "tee_tcb_svn2", td->tee_tcb_svn2, 16, &r);
		add_hex(o, "mr_service_td", td->mrservicetd, 48, &r);
	}
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *qe_report_json(const struct tdc_qe_report *qe)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	int r = 0;
	add_hex(o, "cpu_svn", qe->cpu_svn, 16, &r);
	add_hex(o, "miscselect", qe->miscselect, 4, &r);
	add_hex(o, "attributes", qe->attributes, 16, &r);
	add_hex(o, "mr_enclave", qe->mr_enclave, 32, &r);
	add_hex(o, "mr_signer", qe->mr_signer, 32, &r);
	add_int(o, "isv_prod_id", qe->isv_prod_id, &r);
	add_int(o, "isv_svn", qe->isv_svn, &r);
	add_hex(o, "report_data", qe->report_data, 64, &r);
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int print_json(const struct tdc_quote *q)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return TDC_E_NOMEM;
	int r = 0;
	add_int(o, "version", q->version, &r);
	add_int(o, "att_key_type", q->att_key_type, &r);
	add_int(o, "tee_type", q->tee_type, &r);
	add_hex(o, "qe_vendor_id", q->qe_vendor_id, 16, &r);
	add_hex(o, "user_data", q->user_data, 20, &r);
	add_int(o, "body_type", q->body_type, &r);
	add_int(o, "signed_len", (int64_t)tdc_rd_len(&q->signed_bytes), &r);
	add(o, "td_report", td_report_json(&q->td), &r);
	add_hex(o, "signature", q->signature, 64, &r);
	add_hex(o, "attestation_key", q->attestation_key, 64, &r);
	add_int(o, "cert_data_type", TDC_CERT_TYPE_QE_REPORT, &r);
	add(o, "qe_report", qe_report_json(&q->qe_report), &r);
	add_hex(o, "qe_report_signature", q->qe_report_signature, 64, &r);
	add_hex(o, "qe_auth_data", tdc_rd_ptr(&q->qe_auth_data),
			 tdc_rd_len(&q->qe_auth_data), &r);
	add_int(o, "cert_type", q->cert_type, &r);
	add_int(o, "pck_chain_size", (int64_t)tdc_rd_len(&q->cert_data), &r);
	add_int(o, "quote_size", (int64_t)q->total_len, &r);
	add_int(o, "trailing_bytes", (int64_t)q->trailing_len, &r);
	if (r == 0)
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return r;
}

int cmd_quote_show(int argc, char **argv)
{
	const char *path = NULL;
	bool json = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return TDC_EXIT_OK;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "tdcrypt: quote show: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return TDC_EXIT_BAD_INPUT;
		} else if (path) {
			fprintf(stderr, "tdcrypt: quote show: more than one FILE\n");
			usage(stderr);
			return TDC_EXIT_BAD_INPUT;
		} else {
			path = argv[i];
		}
	}
	if (!path) {
		usage(stderr);
		return TDC_EXIT_BAD_INPUT;
	}

	struct tdc_error e;
	tdc_error_clear(&e);
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = cli_read_quote(path, &buf, &len, &e);
	if (r < 0) {
		cli_print_error("quote show", &e);
		free(buf);
		return cli_exit_for(r);
	}

	struct tdc_quote q;
	r = tdc_quote_parse(buf, len, &q, &e);
	if (r < 0) {
		cli_print_error("quote show", &e);
		free(buf);
		return cli_exit_for(r);
	}
	if (json) {
		r = print_json(&q);
		if (r < 0) {
			free(buf);
			fprintf(stderr, "tdcrypt: quote show: out of memory\n");
			return TDC_EXIT_INTERNAL;
		}
	} else {
		print_human(&q);
	}
	free(buf);
	return fflush(stdout) == 0 ? TDC_EXIT_OK : TDC_EXIT_INTERNAL;
}
