/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt eventlog show LOG [--tpm] [--json]: the events of a CC event log (a TD's CCEL data)
 * and the RTMRs it replays to; with --tpm, a vTPM log as the quote simulator turns it into a
 * CC event log. For comparing what a boot measured with what tdcrypt measure predicted.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "tdcrypt/measure.h"
#include "util/limits.h"
#include "util/util.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: tdcrypt eventlog show LOG [--tpm] [--json]\n"
		   "  LOG: CC event log data (/sys/firmware/acpi/tables/data/CCEL), or with --tpm a\n"
		   "  TPM 2.0 event log (binary_bios_measurements), mapped to RTMRs as the quote\n"
		   "  simulator maps it. Prints each event and the RTMRs the log replays to.\n");
}

int cmd_eventlog_show(int argc, char **argv)
{
	const char *path = NULL;
	bool tpm = false, json = false;
	struct tdc_error e = { 0 };
	uint8_t *buf = NULL, *cc = NULL;
	size_t len, cc_len;
	struct tdc_evlog l;
	uint8_t rtmr[TDC_RTMR_COUNT][TDC_SHA384_LEN];
	char hex[2 * TDC_SHA384_LEN + 1], desc[200];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--tpm"))
			tpm = true;
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return TDC_EXIT_OK;
		} else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			usage(stderr);
			return TDC_EXIT_BAD_INPUT;
		}
	}
	if (!path) {
		usage(stderr);
		return TDC_EXIT_BAD_INPUT;
	}
	if (tdc_file_read(path, TDC_MAX_CCEL_AREA, &buf, &len, &e) < 0)
		goto fail;
	if (tpm) {
		if (tdc_evlog_parse(buf, len, TDC_EVLOG_TPM, &l, &e) < 0)
			goto fail;
		int rc = tdc_evlog_tpm_to_cc(&l, &cc, &cc_len, &e);
		tdc_evlog_free(&l);
		if (rc < 0)
			goto fail;
		free(buf);
		buf = cc;
		len = cc_len;
	}
	if (tdc_evlog_parse(buf, len, TDC_EVLOG_CC, &l, &e) < 0)
		goto fail;
	if (tdc_evlog_replay(&l, rtmr, &e) < 0) {
		tdc_evlog_free(&l);
		goto fail;
	}
	json_object *o = json ? json_object_new_object() : NULL;
	json_object *evs = json ? json_object_new_array() : NULL;
	for (size_t i = 0; i < l.n; i++) {
		const struct tdc_event *ev = &l.ev[i];
		const char *t = tdc_event_type_name(ev->type);
		tdc_event_describe(ev, desc, sizeof(desc));
		tdc_hex_encode(ev->sha384, TDC_SHA384_LEN, hex);
		if (!json) {
			char reg[8] = "  -  ";
			if (ev->type != TDC_EV_NO_ACTION)
				snprintf(reg, sizeof(reg), "RTMR%u", ev->index - 1);
			printf("%4zu %s %-33s %s\n     %s\n", i, reg, t ? t : "?", hex, desc);
			continue;
		}
		json_object *j = json_object_new_object();
		json_object_object_add(j, "rtmr", ev->type == TDC_EV_NO_ACTION ? NULL :
				       json_object_new_int((int)ev->index - 1));
		json_object_object_add(j, "type", json_object_new_string(t ? t : "?"));
		json_object_object_add(j, "digest", json_object_new_string(hex));
		json_object_object_add(j, "what", json_object_new_string(desc));
		json_object_array_add(evs, j);
	}
	if (json) {
		json_object *r = json_object_new_array();
		for (unsigned i = 0; i < TDC_RTMR_COUNT; i++)
			json_object_array_add(r, json_object_new_string(
							 tdc_hex_encode(rtmr[i], TDC_SHA384_LEN, hex)));
		json_object_object_add(o, "events", evs);
		json_object_object_add(o, "rtmrs", r);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		for (unsigned i = 0; i < TDC_RTMR_COUNT; i++)
			printf("RTMR%u %s\n", i, tdc_hex_encode(rtmr[i], TDC_SHA384_LEN, hex));
	}
	tdc_evlog_free(&l);
	free(buf);
	return TDC_EXIT_OK;
fail:
	free(buf);
	cli_print_error("eventlog show", &e);
	return cli_exit_for(e.code);
}
