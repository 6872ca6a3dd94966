/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt quote verify FILE --collateral PATH [--at TIME] [--json]
 *     [--min-tcb-eval N] [--test-root-ca-for-testing-only DER_OR_PEM_FILE]
 * Full Intel DCAP verification of a TDX quote at one trusted time. This is
 * the only place that reads the wall clock (when --at is absent).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/pem.h>

#include "cli.h"
#include "tdcrypt/verify.h"
#include "util/limits.h"
#include "util/util.h"


struct args {
	const char *quote;
	struct cli_verify_opts v;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tdcrypt quote verify FILE --collateral PATH [--at TIME] [--json]\n"
		"                            [--min-tcb-eval N]\n"
		"                            [--test-root-ca-for-testing-only DER_OR_PEM_FILE]\n"
		"  FILE          binary quote or hex text\n"
		"  --collateral  dcap-qvl collateral JSON file, or a directory bundle\n"
		"  --at          verification time: RFC 3339 (2025-07-04T10:16:31Z) or @UNIX;\n"
		"                default: now\n"
		"  --json        print the verdict as JSON\n"
		"  --min-tcb-eval  refuse collateral with a lower tcbEvaluationDataNumber\n"
		"exit: 0 UpToDate, 1 verified with another status, 2 rejected, 3 bad input\n");
}

static int parse_args(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		int used = cli_verify_opt(argc, argv, &i, &a->v, "quote verify");
		if (used < 0)
			return -1;
		if (used)
			continue;
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			usage(stdout);
			exit(TDC_EXIT_OK);
		} else if (s[0] == '-' && s[1] != '\0') {
			fprintf(stderr,
				"tdcrypt: quote verify: unknown or incomplete option '%s'\n", s);
			return -1;
		} else if (!a->quote) {
			a->quote = s;
		} else {
			fprintf(stderr, "tdcrypt: quote verify: unexpected argument '%s'\n", s);
			return -1;
		}
	}
	if (!a->quote || !a->v.collateral) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static const char *hint_for(int code)
{
	switch (code) {
	case TDC_E_EXPIRED:
		return "fetch fresh collateral (Intel PCS / PCCS) or pass --at with a time inside "
		       "its validity window";
	case TDC_E_STALE:
		return "fetch collateral with a newer tcbEvaluationDataNumber, or lower "
		       "--min-tcb-eval";
	case TDC_E_TCB_NOT_SUPPORTED:
		return "the platform's TCB is below every level Intel lists: update the "
		       "BIOS/microcode/TDX module, and check the TCB info is for this FMSPC";
	case TDC_E_COLLATERAL_MISMATCH:
		return "the collateral belongs to another platform: fetch the TCB info for this "
		       "quote's FMSPC";
	case TDC_E_CRL:
		return "use the PCK CRL of the CA that issued this quote's PCK certificate "
		       "(pckcrl?ca=platform or ca=processor) and Intel's root CA CRL";
	case TDC_E_SIGNATURE:
		return "the quote or the collateral was altered or corrupted: obtain a fresh quote "
		       "or re-fetch the collateral";
	case TDC_E_CHAIN:
		return "a certificate chain does not lead to the Intel SGX Root CA: check where "
		       "the quote and collateral come from";
	case TDC_E_REVOKED:
		return "a certificate or TCB level is revoked: this platform must not be trusted";
	case TDC_E_BINDING:
		return "the QE report does not vouch for the attestation key: the quote is "
		       "corrupted or forged";
	case TDC_E_QE_MISMATCH:
		return "the quoting enclave is not the one the QE identity describes: re-fetch "
		       "the TD QE identity";
	case TDC_E_MODULE_MISMATCH:
		return "the TDX module is not described by the TCB info: fetch current TCB info";
	case TDC_E_FORMAT:
	case TDC_E_UNSUPPORTED:
	case TDC_E_LIMIT:
		return "check that FILE is a TDX DCAP quote (v4/v5) and PATH is collateral for it";
	default:
		return NULL;
	}
}

static void print_hex_line(const char *label, const uint8_t *p, size_t n)
{
	char buf[2 * 64 + 1];
	printf("  %-16s %s\n", label, tdc_hex_encode(p, n, buf));
}

static void print_human(const struct tdc_verdict *v)
{
	char date[32], fm[13], until[32];
	printf("verified: %s (TCB date %.10s, FMSPC %s, eval %u)\n", tdc_tcb_status_name(v->status),
	       tdc_time_format(v->tcb_date, date, sizeof(date)), tdc_hex_encode(v->fmspc, 6, fm),
	       v->tcb_eval_num);
	printf("  platform %s, QE %s, TDX module %s\n", tdc_tcb_status_name(v->platform_status),
	       tdc_tcb_status_name(v->qe_status),
	       v->module_status == TDC_TCB_UNKNOWN ? "(no module identity)"
						   : tdc_tcb_status_name(v->module_status));
	if (v->advisories.n) {
		printf("  advisories:");
		for (size_t i = 0; i < v->advisories.n; i++)
			printf(" %s", v->advisories.id[i]);
		printf("\n");
	}
	printf("  collateral valid until %s\n",
	       tdc_time_format(v->collateral_not_after, until, sizeof(until)));
	printf("  quote v%u, %s\n", v->quote_version,
	       v->body_type == TDC_BODY_TD15 ? "TD report 1.5" : "TD report 1.0");

	const struct tdc_td_report *td = &v->td;
	print_hex_line("MRTD", td->mrtd, 48);
	for (int i = 0; i < 4; i++) {
		char l[16];
		snprintf(l, sizeof(l), "RTMR%d", i);
		print_hex_line(l, td->rtmr[i], 48);
	}
	print_hex_line("MRCONFIGID", td->mrconfigid, 48);
	print_hex_line("MROWNER", td->mrowner, 48);
	print_hex_line("MROWNERCONFIG", td->mrownerconfig, 48);
	print_hex_line("MRSEAM", td->mrseam, 48);
	print_hex_line("TEE_TCB_SVN", td->tee_tcb_svn, 16);
	if (td->is_td15) {
		print_hex_line("TEE_TCB_SVN2", td->tee_tcb_svn2, 16);
		print_hex_line("MRSERVICETD", td->mrservicetd, 48);
	}
	print_hex_line("XFAM", td->xfam, 8);
	char hex[17];
	printf("  %-16s %s", "TD_ATTRIBUTES", tdc_hex_encode(td->td_attributes, 8, hex));
	uint64_t attr = tdc_td_attributes(td);
	for (unsigned bit = 0; bit < 64; bit++) {
		if (!(attr & (1ull << bit)))
			continue;
		const char *name = tdc_td_attribute_name(bit);
		if (name)
			printf(" %s", name);
		else
			printf(" RESERVED_BIT%u", bit);
	}
	printf("\n");
	print_hex_line("REPORTDATA", td->report_data, 64);
}

static int print_json(const struct tdc_verdict *v, const struct tdc_error *e)
{
	json_object *o = NULL;
	if (tdc_verdict_to_json(v, e, &o) < 0) {
		fprintf(stderr, "tdcrypt: quote verify: out of memory\n");
		return -1;
	}
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return 0;
}

int cmd_quote_verify(int argc, char **argv)
{
	struct args a;
	struct tdc_error e;
	struct cli_verify_inputs in;
	struct tdc_verdict verdict = { 0 };
	int exit_code;

	tdc_error_clear(&e);
	if (parse_args(argc, argv, &a) < 0)
		return TDC_EXIT_BAD_INPUT;
	exit_code = cli_verify_load(&a.v, a.quote, "this verdict means nothing for real TDX platforms",
				    &in);
	if (exit_code != TDC_EXIT_OK)
		goto out;

	int rc = tdc_verify_quote(in.ver, in.quote, in.quote_len, &in.coll, in.now, &verdict, &e);
	if (a.v.json && print_json(&verdict, rc < 0 ? &e : NULL) < 0) {
		exit_code = TDC_EXIT_INTERNAL;
		goto out;
	}
	if (rc < 0) {
		cli_print_error("quote verify", &e);
		const char *hint = hint_for(e.code);
		if (hint)
			fprintf(stderr, "hint: %s\n", hint);
		exit_code = cli_exit_for(e.code);
		goto out;
	}
	if (!a.v.json)
		print_human(&verdict);
	if (verdict.status == TDC_TCB_UP_TO_DATE) {
		exit_code = TDC_EXIT_OK;
	} else {
		fprintf(stderr,
			"note: status %s: the platform needs a firmware/microcode/TDX module "
			"update; a policy may accept this status explicitly\n",
			tdc_tcb_status_name(verdict.status));
		exit_code = TDC_EXIT_DEGRADED;
	}
out:
	tdc_verdict_free(&verdict);
	cli_verify_inputs_free(&in);
	return exit_code;
}
